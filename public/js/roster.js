// The room's roster as the page sees it, and the policy for placing calls again: plain data and
// timers, no DOM and no transport, so tests/node/roster.test.mjs runs it without a browser.
//
// The roster is the authority on who may exchange media with us (the server seats them; calls
// are answered only from it). Members come from `welcome.peers` and change with `peer-joined`,
// `peer-presence`, `peer-left` and `peer-media`; a welcome replaces the whole list, because we
// may have missed frames while our sockets were down.
import { PRESENCE } from "./protocol.js";

/** Who calls whom: the later joiner (then the larger id) calls the earlier one. */
export function laterJoiner(self, member) {
  if (!member || !self) return false;
  return member.joinedAt < self.joinedAt || (member.joinedAt === self.joinedAt && member.peerId < self.peerId);
}

export class Roster {
  constructor() {
    this.self = null; // our Member, from welcome
    this.members = new Map(); // peerId → Member (others only)
  }

  get size() {
    return this.members.size;
  }

  get(peerId) {
    return this.members.get(peerId);
  }

  has(peerId) {
    return this.members.has(peerId);
  }

  values() {
    return this.members.values();
  }

  /** A welcome: our own Member and everyone else. Returns the members it no longer lists. */
  welcome(self, peers) {
    this.self = self;
    const next = new Map((peers ?? []).map((p) => [p.peerId, p]));
    const gone = [...this.members.values()].filter((m) => !next.has(m.peerId));
    this.members = next;
    return gone;
  }

  /** `peer-joined`: returns {member, known}, or null for ourselves (or a frame without a peer). */
  join(peer) {
    if (!peer || peer.peerId === this.self?.peerId) return null;
    const known = this.members.has(peer.peerId);
    this.members.set(peer.peerId, peer);
    return { member: peer, known };
  }

  /** `peer-presence`: returns the member, or null if we do not know it. */
  setPresence(peerId, presence) {
    const m = this.members.get(peerId);
    if (!m) return null;
    m.presence = presence;
    return m;
  }

  /** `peer-media`: returns {member, raised} (raised: the hand went up), or null. */
  setMedia(peerId, media) {
    const m = this.members.get(peerId);
    if (!m) return null;
    const raised = !!media?.hand && !m.media?.hand;
    m.media = media;
    return { member: m, raised };
  }

  /** `peer-left` (or a welcome that no longer lists it): returns the member it was, if any. */
  remove(peerId) {
    const m = this.members.get(peerId);
    this.members.delete(peerId);
    return m;
  }

  /** Do we place the call with this member (rather than answer its call)? */
  weCall(peerId) {
    return laterJoiner(this.self, this.members.get(peerId));
  }

  /** Is its sockets' connection to the room up? A reconnecting member cannot take an offer. */
  isPresent(peerId) {
    const m = this.members.get(peerId);
    return !!m && m.presence !== PRESENCE.RECONNECTING;
  }

  /**
   * The members we owe a call and have none with (`hasCall`): present, and we are the caller.
   * A call that failed while they or we were away is placed again from this list.
   */
  owedCalls(hasCall) {
    return [...this.members.keys()].filter((id) => this.isPresent(id) && this.weCall(id) && !hasCall(id));
  }
}

/**
 * Placing a failed call again: after 1 s, 2 s, 4 s… (at most 15 s), six times, then not until
 * something resets it (the call connected, the member came back, we reconnected). One timer per
 * member; a new schedule replaces the pending one.
 */
export class RetryPolicy {
  constructor({
    tries = 6,
    firstMs = 1000,
    maxMs = 15_000,
    setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (t) => clearTimeout(t),
  } = {}) {
    this.tries = tries;
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    // Kept as plain functions, never called as methods: browsers throw "Illegal invocation" for
    // a setTimeout whose `this` is another object.
    this.setTimer = (fn, ms) => setTimer(fn, ms);
    this.clearTimer = (t) => clearTimer(t);
    this.state = new Map(); // peerId → {n, timer}
  }

  /** Runs `fn` after the next delay for `peerId`; returns that delay, or null when tries are used up. */
  schedule(peerId, fn) {
    const r = this.state.get(peerId) ?? { n: 0, timer: null };
    if (r.n >= this.tries) return null;
    this.clearTimer(r.timer);
    const delay = Math.min(this.firstMs * 2 ** r.n, this.maxMs);
    r.n++;
    r.timer = this.setTimer(fn, delay);
    this.state.set(peerId, r);
    return delay;
  }

  /** Forgets `peerId`: its pending retry is cancelled and its next one starts from the first delay. */
  cancel(peerId) {
    const r = this.state.get(peerId);
    if (r) this.clearTimer(r.timer);
    this.state.delete(peerId);
  }

  cancelAll() {
    for (const id of [...this.state.keys()]) this.cancel(id);
  }

  pending(peerId) {
    return this.state.has(peerId);
  }
}
