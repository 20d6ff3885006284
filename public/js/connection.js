// Our identity in a room and the two sockets that carry it:
// - the PeerJS socket (`/room/{room}/peerjs`), which owns our peer id and carries call signalling;
// - the room socket (`/room/{room}/ws`), which puts that peer id in the roster.
//
// The identity is (peer id, token): the token is ours (PeerJS lets the app choose it), so after a
// network drop the same id can be registered again (`peer.reconnect()`, which keeps the Peer and
// with it every call) and the room socket re-joins with it. Within the server's grace period the
// seat is still ours: the welcome says `resumed` and the others saw only `peer-presence`. After it
// the seat is fresh and the others saw us leave. Reconnecting retries with backoff (and at once when
// the browser comes back online) until it works or GIVE_UP_MS passes. A Peer is destroyed only on
// leave (or when its id is lost): destroying it would close every call.
/* global Peer */
import { CLIENT, CLOSE, ERROR, LEAVE_REASON, SERVER } from "./protocol.js";
import { RoomSocket, roomSocketUrl } from "./room-socket.js";
import { Emitter, log, randomId } from "./util.js";

const OPEN_TIMEOUT_MS = 8000;
const JOIN_TIMEOUT_MS = 8000;
const BACKOFF_FIRST_MS = 500;
/** Backoff cap while our seat is probably still held (the server's GRACE_MS is 20 s by default). */
const BACKOFF_GRACE_MAX_MS = 3000;
const GRACE_GUESS_MS = 30_000;
const BACKOFF_MAX_MS = 15_000;
/** Join attempts for one click: the lobby's sockets may be closed under us (join window, 4002). */
const JOIN_ATTEMPTS = 3;
const GIVE_UP_MS = 120_000;

/** Room-socket errors that answer a `join` (other errors concern later frames). */
const JOIN_ERRORS = new Set([
  ERROR.ROOM_FULL, ERROR.INVALID_NAME, ERROR.UNKNOWN_PEER, ERROR.BAD_TOKEN, ERROR.ALREADY_JOINED,
  ERROR.BAD_REQUEST, ERROR.RATE_LIMITED, ERROR.BAD_JSON, ERROR.UNKNOWN_TYPE, ERROR.INTERNAL,
]);

export class JoinError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/**
 * Events:
 * - "peer" (Peer): a new Peer object exists (attach call handlers to it)
 * - "frame" (frame): a server frame other than the answer to our own join
 * - "welcome" (welcome, {rejoin, resumed}): we are in the roster again after a reconnect
 *   (`resumed`: the same seat, the others kept their calls with us)
 * - "status" ("connected" | "reconnecting")
 * - "fatal" (code, message): cannot continue (room-full after a reconnect, gave up, replaced…)
 * - "unavailable" (peerId): PeerJS could not deliver a call to that peer
 */
export class Connection extends Emitter {
  constructor(room) {
    super();
    this.room = room;
    this.peer = null;
    this.peerId = null;
    this.token = randomId(18); // proves ownership of our peer id; URL-safe
    this.socket = null;
    this.joined = false; // in the roster on the current socket
    this.wantJoined = false; // the user joined and has not left
    this.joinInfo = null; // {name, media} for (re-)joins
    this.reconnecting = false;
    this._wake = null; // resolves the current backoff sleep early
    this._joinWait = null;
    this._peerWaiters = new Set();

    addEventListener("online", () => {
      if (this.reconnecting) this._wake?.();
      else if (this.wantJoined) this.socket?.probe(); // did we survive the outage?
    });
  }

  peerOptions() {
    const secure = location.protocol === "https:";
    return {
      host: location.hostname,
      port: Number(location.port) || (secure ? 443 : 80),
      secure,
      path: `/room/${this.room}/`,
      token: this.token,
      // No ICE servers until the room tells us which (welcome.iceServers): no RTCPeerConnection
      // is created before then (see mesh.js), so nothing ever uses this default.
      config: { iceServers: [] },
      debug: globalThis.__edgeMeetDebug ? 2 : 0,
    };
  }

  /**
   * Connects both sockets ahead of the join click (it makes joining faster). Never throws. The
   * server closes them (4002) if no join follows within its join window; join() reopens them.
   */
  async prepare() {
    try {
      await this._ensurePeer();
      await this._ensureSocket();
    } catch (e) {
      log("prepare failed (will retry on join)", e);
    }
  }

  /** Joins the room; resolves with the welcome, rejects with a JoinError. */
  async join(name, media) {
    this.joinInfo = { name, media };
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= JOIN_ATTEMPTS;
      try {
        await this._ensurePeer();
        await this._ensureSocket();
      } catch (e) {
        if (!last) continue;
        throw new JoinError("network", "Could not reach the meeting server.");
      }
      try {
        const welcome = await this._sendJoin();
        this.wantJoined = true;
        return welcome;
      } catch (e) {
        if (last) throw e;
        // The room does not know our PeerJS socket (the join window closed it, or it died
        // unnoticed): register again.
        if (e.code === ERROR.UNKNOWN_PEER || e.code === ERROR.BAD_TOKEN) {
          try { this.peer?.disconnect(); } catch {}
          continue;
        }
        // The room socket closed under the join (the join window ended just then): reopen it.
        if (e.code === "network") continue;
        throw e;
      }
    }
  }

  /** Sends a frame on the room socket (false if it is not connected). */
  send(frame) {
    if (!this.joined) return false;
    return this.socket?.send(frame) ?? false;
  }

  /** Leaves for good: tells the room, closes both sockets. */
  leave() {
    this.wantJoined = false;
    this.reconnecting = false;
    this._wake?.();
    if (this.socket?.isOpen && this.joined) this.socket.send({ type: CLIENT.LEAVE });
    this.joined = false;
    this.socket?.close(CLOSE.NORMAL, "left");
    this.socket = null;
    try { this.peer?.destroy(); } catch {}
  }

  /** For tests: drop both sockets as a network failure would (no leave frame). */
  dropForTest() {
    const ws = this.peer?.socket?._socket;
    try { ws?.close(); } catch {}
    this.socket?.abort(4999, "test drop");
  }

  // ----- PeerJS --------------------------------------------------------------------------

  _ensurePeer() {
    const p = this.peer;
    if (p && p.open && !p.disconnected && !p.destroyed) return Promise.resolve(p);
    if (!p || p.destroyed || this._freshIdentity) {
      this._newPeer();
    } else if (p.disconnected) {
      try { p.reconnect(); } catch { this._newPeer(); }
    }
    return this._waitOpen();
  }

  _newPeer() {
    if (typeof Peer !== "function") throw new JoinError("no-peerjs", "The PeerJS client did not load.");
    const old = this.peer;
    if (old) {
      old.removeAllListeners?.();
      try { old.destroy(); } catch {}
    }
    this._freshIdentity = false;
    const peer = this.peerId ? new Peer(this.peerId, this.peerOptions()) : new Peer(this.peerOptions());
    this.peer = peer;
    peer.on("open", (id) => {
      if (this.peer !== peer) return;
      this.peerId = id;
      for (const w of [...this._peerWaiters]) w.resolve(peer);
    });
    peer.on("error", (err) => {
      if (this.peer !== peer) return;
      log("peer error", err?.type, err?.message);
      if (err?.type === "peer-unavailable") {
        // "Could not connect to peer X": our offer to X expired on the server.
        const m = /peer (.+)$/.exec(err.message ?? "");
        if (m) this.emit("unavailable", m[1]);
        return;
      }
      if (err?.type === "unavailable-id") {
        // Someone else holds our id (cannot happen with our token unless the server lost it):
        // start over with a fresh identity on the next attempt.
        this.peerId = null;
        this.token = randomId(18);
        this._freshIdentity = true;
      }
      for (const w of [...this._peerWaiters]) w.reject(new Error(err?.type || "peer error"));
    });
    peer.on("disconnected", () => {
      if (this.peer !== peer) return;
      log("peer disconnected");
      for (const w of [...this._peerWaiters]) w.reject(new Error("peer disconnected"));
      if (!this.wantJoined) return;
      this.socket?.probe(); // the same outage may have cut the room socket without telling us
      this._startReconnect("peerjs socket closed");
    });
    peer.on("close", () => {
      if (this.peer !== peer) return;
      if (this.wantJoined) this._startReconnect("peer destroyed");
    });
    this.emit("peer", peer);
  }

  _waitOpen() {
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (p) => { done(); resolve(p); },
        reject: (e) => { done(); reject(e); },
      };
      const timer = setTimeout(() => w.reject(new Error("peer open timeout")), OPEN_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        this._peerWaiters.delete(w);
      };
      this._peerWaiters.add(w);
      const p = this.peer;
      if (p?.open && !p.disconnected) w.resolve(p);
    }).catch((e) => {
      // Leave the Peer in a state the next attempt can recover from.
      const p = this.peer;
      if (p && !p.open) {
        if (!p.id && !this.peerId) {
          p.removeAllListeners?.();
          try { p.destroy(); } catch {}
          this.peer = null;
        } else if (!p.disconnected && !p.destroyed) {
          try { p.disconnect(); } catch {}
        }
      }
      throw e;
    });
  }

  // ----- room socket ---------------------------------------------------------------------

  async _ensureSocket() {
    if (this.socket?.isOpen) return this.socket;
    if (this._opening && this.socket && !this.socket.closed) {
      await this._opening.catch(() => {}); // the lobby's pre-connect is still opening it
      if (this.socket?.isOpen) return this.socket;
    }
    this.socket?.close();
    const s = new RoomSocket(roomSocketUrl(this.room));
    this.socket = s;
    this.joined = false;
    s.on("frame", (f) => {
      if (this.socket === s) this._frame(f);
    });
    s.on("close", (ev) => {
      if (this.socket !== s) return;
      log("room socket closed", ev);
      this.joined = false;
      this._joinWait?.reject(new JoinError("network", "Connection lost while joining."));
      if (this.wantJoined) this._startReconnect("room socket closed");
    });
    this._opening = s.open(OPEN_TIMEOUT_MS);
    try {
      await this._opening;
    } finally {
      this._opening = null;
    }
    return s;
  }

  _sendJoin() {
    const { name, media } = this.joinInfo;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._joinWait = null;
        reject(new JoinError("timeout", "The meeting server did not answer."));
      }, JOIN_TIMEOUT_MS);
      this._joinWait = {
        resolve: (w) => { clearTimeout(timer); this._joinWait = null; resolve(w); },
        reject: (e) => { clearTimeout(timer); this._joinWait = null; reject(e); },
      };
      const ok = this.socket.send({
        type: CLIENT.JOIN,
        peerId: this.peerId,
        token: this.token,
        name,
        media: typeof media === "function" ? media() : media,
      });
      if (!ok) this._joinWait.reject(new JoinError("network", "Connection lost while joining."));
    });
  }

  _frame(f) {
    if (this._joinWait) {
      if (f.type === SERVER.WELCOME) {
        this.joined = true;
        this._joinWait.resolve(f);
        return;
      }
      if (f.type === SERVER.ERROR && JOIN_ERRORS.has(f.code)) {
        this._joinWait.reject(new JoinError(f.code, f.message));
        return;
      }
    }
    if (f.type === SERVER.LEFT) {
      this.joined = false;
      if (f.reason === LEAVE_REASON.LEAVE) return;
      if (f.reason === LEAVE_REASON.REPLACED) {
        // Our own reconnect replaces seats only from sockets we have dropped already (their
        // frames never get here), so on the current socket it is another window.
        this.wantJoined = false;
        this.emit("fatal", "replaced", "You joined this meeting from another window.");
        return;
      }
      // "gone": our seat expired (we were away for the whole grace period): join again, fresh.
      if (this.wantJoined) this._startReconnect(`left: ${f.reason}`);
      return;
    }
    this.emit("frame", f);
  }

  // ----- reconnect -----------------------------------------------------------------------

  async _startReconnect(why) {
    if (this.reconnecting || !this.wantJoined) return;
    this.reconnecting = true;
    log("reconnecting:", why);
    this.emit("status", "reconnecting");
    const started = Date.now();
    let attempt = 0;
    let quickRetried = false;
    // Give the browser a moment to notice that the other socket died too.
    await this._sleep(150);
    while (this.wantJoined && this.reconnecting) {
      try {
        await this._ensurePeer();
        await this._ensureSocket();
        if (this.joined) {
          // Only the PeerJS socket dropped: the room socket kept our seat and told us everything
          // meanwhile, so there is nothing to join again.
          this.reconnecting = false;
          this.emit("status", "connected");
          return;
        }
        const welcome = await this._sendJoin();
        if (!this.wantJoined) return;
        this.reconnecting = false;
        this.emit("welcome", welcome, { rejoin: true, resumed: welcome.resumed === true });
        this.emit("status", "connected");
        return;
      } catch (e) {
        log("reconnect attempt failed", e?.code || e?.message);
        if (e instanceof JoinError) {
          if (e.code === ERROR.ROOM_FULL || e.code === ERROR.INVALID_NAME) {
            this.reconnecting = false;
            this.wantJoined = false;
            this.emit("fatal", e.code, e.message);
            return;
          }
          if (e.code === ERROR.UNKNOWN_PEER || e.code === ERROR.BAD_TOKEN) {
            // The room does not know our PeerJS socket: cycle it.
            try { this.peer?.disconnect(); } catch {}
          }
          if (e.code === ERROR.ALREADY_JOINED && !quickRetried) {
            // The server still seats our old socket (it has not noticed it died): drop it and
            // join again from a new socket at once, which takes the seat over.
            this.socket?.close();
            quickRetried = true;
            continue;
          }
        }
      }
      attempt++;
      if (Date.now() - started > GIVE_UP_MS) {
        this.reconnecting = false;
        this.emit("fatal", "lost", "The connection to the meeting was lost.");
        return;
      }
      // Retry often while the seat is probably still held: coming back inside the grace period
      // is what keeps the others from seeing us leave.
      const cap = Date.now() - started < GRACE_GUESS_MS ? BACKOFF_GRACE_MAX_MS : BACKOFF_MAX_MS;
      const base = Math.min(BACKOFF_FIRST_MS * 2 ** (attempt - 1), cap);
      await this._sleep(base * (0.75 + Math.random() * 0.5));
    }
  }

  /** Restarts reconnecting after a "lost" fatal (the user pressed "Try again"). */
  retry() {
    this.wantJoined = true;
    this._startReconnect("user retry");
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this._wake = done;
    }).finally(() => { this._wake = null; });
  }
}
