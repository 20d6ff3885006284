// The room WebSocket (`/room/{room}/ws`): JSON frames in both directions, a heartbeat, and a
// liveness check. One RoomSocket is one connection; reconnecting makes a new one.
import { CLIENT, CLOSE, HEARTBEAT } from "./protocol.js";
import { Emitter, log } from "./util.js";

// HEARTBEAT: the exact bytes the server answers without waking the room (protocol.js).
const HEARTBEAT_MS = 10_000;
/** With no frame at all (not even a heartbeat echo) for this long the connection is dead. */
const SILENCE_MS = 25_000;

export function roomSocketUrl(room) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/room/${encodeURIComponent(room)}/ws`;
}

/**
 * Events: "frame" (parsed server frame), "close" ({code, reason}) once, when the connection ends
 * for any reason other than our own close().
 */
export class RoomSocket extends Emitter {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.closed = false;
    this.lastRx = 0;
    this.echoSeen = false; // the server answers heartbeats; only then is silence meaningful
    this._timer = null;
    this._probe = null;
  }

  /** Opens the socket; resolves when open, rejects if it closes first or takes too long. */
  open(timeoutMs = 8000) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this._end(4900, "open timeout");
        reject(new Error("room socket open timeout"));
      }, timeoutMs);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.lastRx = Date.now();
        this._timer = setInterval(() => this._tick(), HEARTBEAT_MS);
        resolve();
      };
      ws.onmessage = (ev) => this._message(ev.data);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          this.closed = true;
          reject(new Error(`room socket closed (${ev.code})`));
          return;
        }
        this._end(ev.code, ev.reason);
      };
      ws.onerror = () => {}; // a close event always follows
    });
  }

  get isOpen() {
    return !this.closed && this.ws?.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  /**
   * Checks the connection now: sends a heartbeat and, if the server is known to echo them,
   * declares the socket dead when no frame arrives within `ms`.
   */
  probe(ms = 4000) {
    if (!this.isOpen) return;
    const before = this.lastRx;
    this.send(HEARTBEAT);
    if (!this.echoSeen) return;
    clearTimeout(this._probe);
    this._probe = setTimeout(() => {
      if (this.lastRx === before) this._end(4901, "probe timeout");
    }, ms);
  }

  /** Closes without emitting "close" (we meant it). */
  close(code = CLOSE.NORMAL, reason = "bye") {
    if (this.closed) return;
    this.closed = true;
    this._stop();
    try { this.ws?.close(code, reason); } catch {}
  }

  /** Ends the connection as a network failure would: "close" is emitted (used by dropForTest). */
  abort(code, reason) {
    this._end(code, reason);
  }

  _tick() {
    if (this.echoSeen && Date.now() - this.lastRx > SILENCE_MS) {
      this._end(4902, "silent");
      return;
    }
    this.send(HEARTBEAT);
  }

  _message(data) {
    this.lastRx = Date.now();
    if (typeof data !== "string") return;
    if (data === HEARTBEAT) {
      this.echoSeen = true;
      return;
    }
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === CLIENT.HEARTBEAT) {
      this.echoSeen = true;
      return;
    }
    log("rx", frame.type, frame);
    this.emit("frame", frame);
  }

  _stop() {
    clearInterval(this._timer);
    clearTimeout(this._probe);
    if (this.ws) this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
  }

  _end(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this._stop();
    try { this.ws?.close(); } catch {}
    this.emit("close", { code, reason });
  }
}
