// The call mesh: one PeerJS MediaConnection per remote peer, deduplicated by peer id. It is the
// first implementation of the media transport (transport.js); the mesh's own words are call and
// hang up, the interface's connect and disconnect.
//
// Rules:
// - The joiner calls every peer in its `welcome.peers`; members only answer. So for each pair
//   exactly one side calls, and it calls only after the other side is provably registered.
// - We answer only members of our roster (`isMember`). The caller's offer comes on the PeerJS
//   socket and the `peer-joined` that names it on the room socket: nothing orders the two, so a
//   call from a stranger is held (HOLD_MS) for the roster to catch up, then refused. Incoming
//   calls also wait until our own `welcome` has arrived (which also sets the ICE servers: PeerJS
//   reads `peer.options.config` whenever it creates an RTCPeerConnection).
// - A new call with a peer replaces the old one (a reconnecting peer calls again). If two calls
//   cross in flight (both sides re-joined at once), the one placed by the larger peer id wins on
//   both sides, so they never close each other's.
// - A call is over when PeerJS closes it, when its RTCPeerConnection becomes "failed", or when
//   the room says the peer left; the owner of the tile hears "ended". Nothing here listens to the
//   signalling sockets: media flows peer to peer, so a connected call outlives a dropped PeerJS
//   or room socket (PeerJS's own `disconnect()` keeps its connections too).
import { Transport } from "./transport.js";
import { log } from "./util.js";

/** A call that has not connected by then is given up (and placed again by its caller). */
const CONNECT_TIMEOUT_MS = 20_000;
/** How long a call from a peer not (yet) in our roster, or before our welcome, is held. */
export const HOLD_MS = 5_000;

/**
 * Events (transport.js): "call" (peerId, outgoing) when a call is placed or answered, "stream"
 * (peerId, MediaStream), "state" (peerId, connectionState), "ended" (peerId, why).
 */
export class Mesh extends Transport {
  /** isMember(peerId): is that peer in our roster (the room seats it)? */
  constructor(media, { isMember }) {
    super({ isMember });
    this.media = media;
    this.pcs = new Map(); // peerId → RTCPeerConnection of the current call: read by stats and tests
    this.peer = null;
    this.entries = new Map(); // peerId → entry
    this.ready = false;
    this.held = new Map(); // peerId → {call, timer}: incoming calls we may not answer yet
    this._onCall = (call) => this._incoming(call);
  }

  /** Uses this Peer for new calls and listens for its incoming calls. */
  attach(peer) {
    if (this.peer === peer) return;
    this.peer?.off?.("call", this._onCall);
    this.peer = peer;
    peer.on("call", this._onCall);
  }

  /** Our welcome arrived: set the ICE servers, then answer what was waiting. */
  setReady(iceServers) {
    if (this.peer) {
      this.peer.options.config = {
        ...this.peer.options.config,
        iceServers: Array.isArray(iceServers) ? iceServers : [],
      };
    }
    this.ready = true;
    this.admit();
  }

  /** The roster changed (or our welcome came): answer the held calls we now may. */
  admit() {
    for (const [peerId, h] of [...this.held]) {
      if (!this.ready || !this.isMember(peerId)) continue;
      this._release(peerId);
      this._incoming(h.call);
    }
  }

  has(peerId) {
    return this.entries.has(peerId);
  }

  remotes() {
    return [...this.entries.keys()];
  }

  // The transport interface in the mesh's words: which side calls is the room's decision (the
  // later joiner, see roster.js), so connect() is simply a call.
  connect(peerId) {
    return this.call(peerId);
  }

  disconnect(peerId, why = "left") {
    this.hangup(peerId, why);
  }

  disconnectAll(why = "left") {
    this.hangupAll(why);
  }

  publish() {
    this.syncAll();
  }

  undeliverable(peerId) {
    this.unavailable(peerId);
  }

  peerConnections() {
    return this.pcs;
  }

  /** Calls `peerId`, replacing any call we have with it. */
  call(peerId) {
    if (!this.peer || this.peer.disconnected || this.peer.destroyed) return false;
    let call;
    try {
      call = this.peer.call(peerId, this.media.outgoingStream(), {
        constraints: { offerToReceiveAudio: true, offerToReceiveVideo: true },
      });
    } catch (e) {
      log("call failed", e);
      return false;
    }
    if (!call) return false;
    this._install(peerId, call, true);
    return true;
  }

  /** Ends the call with `peerId` (the room said it left), and refuses one held from it. Emits "ended". */
  hangup(peerId, why = "left") {
    this._refuse(peerId, why);
    const entry = this.entries.get(peerId);
    if (entry) this._end(entry, why);
  }

  hangupAll(why = "left") {
    for (const entry of [...this.entries.values()]) this._end(entry, why);
    for (const peerId of [...this.held.keys()]) this._refuse(peerId, why);
  }

  /** Re-points every call's senders at the current local tracks (mute, camera, screen…). */
  syncAll() {
    for (const entry of this.entries.values()) this.media.syncSenders(entry.pc);
  }

  /**
   * PeerJS could not deliver our offer to `peerId` (EXPIRE). It reports that only on the Peer,
   * never on the call, which would otherwise wait forever.
   */
  unavailable(peerId) {
    const entry = this.entries.get(peerId);
    if (entry && entry.outgoing && !entry.answered) this._end(entry, "unavailable");
  }

  connectionState(peerId) {
    return this.entries.get(peerId)?.pc?.connectionState ?? null;
  }

  remoteStream(peerId) {
    return this.entries.get(peerId)?.stream ?? null;
  }

  // ----- internals -------------------------------------------------------------------------

  _incoming(call) {
    const peerId = call.peer;
    if (!this.ready || !this.isMember(peerId)) {
      this._hold(call);
      return;
    }
    const old = this.entries.get(peerId);
    if (old && old.outgoing && !old.answered && this.peer?.id && this.peer.id > peerId) {
      // Crossed calls: ours (placed by the larger id) wins; the other side drops its own.
      log("glare: keeping our call to", peerId);
      call.close();
      return;
    }
    try {
      call.answer(this.media.outgoingStream());
    } catch (e) {
      log("answer failed", e);
      call.close();
      return;
    }
    this._install(peerId, call, false);
  }

  _install(peerId, call, outgoing) {
    const old = this.entries.get(peerId);
    const entry = { peerId, call, outgoing, pc: call.peerConnection ?? null, stream: null, answered: !outgoing };
    this.entries.set(peerId, entry);
    if (old) this._dispose(old);

    call.on("stream", (stream) => {
      if (this.entries.get(peerId) !== entry) return;
      entry.answered = true;
      if (entry.stream === stream) return;
      entry.stream = stream;
      this.emit("stream", peerId, stream);
    });
    call.on("close", () => this._end(entry, "closed"));
    call.on("error", (e) => log("call error", peerId, e?.type, e?.message));

    const pc = entry.pc;
    if (!pc) {
      this._end(entry, "failed");
      return;
    }
    this.pcs.set(peerId, pc);
    this.media.syncSenders(pc);
    const onState = () => {
      if (this.entries.get(peerId) !== entry) return;
      const s = pc.connectionState;
      if (s === "connected") entry.answered = true;
      this.emit("state", peerId, s);
      if (s === "failed" || s === "closed") this._end(entry, "failed");
    };
    pc.addEventListener("connectionstatechange", onState);
    const timer = setTimeout(() => {
      if (this.entries.get(peerId) === entry && pc.connectionState !== "connected") this._end(entry, "timeout");
    }, CONNECT_TIMEOUT_MS);
    entry.offState = () => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", onState);
    };
    this.emit("call", peerId, outgoing);
  }

  /** Holds a call until admit() lets it in or HOLD_MS passes; only the newest per peer. */
  _hold(call) {
    const peerId = call.peer;
    this._refuse(peerId, "replaced");
    const timer = setTimeout(() => this._refuse(peerId, "not a member"), HOLD_MS);
    this.held.set(peerId, { call, timer });
  }

  _release(peerId) {
    const h = this.held.get(peerId);
    if (!h) return null;
    clearTimeout(h.timer);
    this.held.delete(peerId);
    return h.call;
  }

  /** Closes a held call unanswered: no RTCPeerConnection is made, the caller gets nothing. */
  _refuse(peerId, why) {
    const call = this._release(peerId);
    if (!call) return;
    log("refusing call from", peerId, why);
    try { call.close(); } catch {}
  }

  /** Drops a replaced entry quietly (no "ended": the tile stays for the new call). */
  _dispose(entry) {
    entry.offState?.();
    if (this.pcs.get(entry.peerId) === entry.pc) this.pcs.delete(entry.peerId);
    try { entry.call.close(); } catch {}
  }

  _end(entry, why) {
    if (this.entries.get(entry.peerId) !== entry) return;
    this.entries.delete(entry.peerId);
    this._dispose(entry);
    this.emit("ended", entry.peerId, why);
  }
}
