// Active-speaker detection: a WebAudio analyser per audio stream, polled a few times a second.
// The loudest source above a threshold becomes the active speaker and keeps it for a short hold,
// so the highlight does not flicker between words.
import { log } from "./util.js";

const POLL_MS = 200;
const THRESHOLD = 0.02; // RMS of the time-domain signal, 0…1
const HOLD_MS = 1200;

export class SpeakerDetector {
  /** @param {(id: string|null) => void} onActive */
  constructor(onActive) {
    this.onActive = onActive;
    this.ctx = null;
    this.sources = new Map(); // id → {track, source, analyser, buf}
    this.active = null;
    this.activeUntil = 0;
    this.timer = null;
  }

  /** Must be called from a user gesture (the Join click) so the context may start. */
  start() {
    if (this.ctx) return;
    try {
      this.ctx = new AudioContext();
      this.ctx.resume().catch(() => {});
    } catch (e) {
      log("no WebAudio", e);
      return;
    }
    this.timer = setInterval(() => this._poll(), POLL_MS);
  }

  /** Watches the audio of `stream` under `id` (replacing what was watched for it). */
  watch(id, stream) {
    if (!this.ctx) return;
    const track = stream?.getAudioTracks?.()[0];
    const cur = this.sources.get(id);
    if (cur && cur.track === track) return;
    this.unwatch(id);
    if (!track) return;
    try {
      const source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = this.ctx.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser); // not to the destination: the <video> element plays the sound
      this.sources.set(id, { track, source, analyser, buf: new Float32Array(analyser.fftSize) });
    } catch (e) {
      log("analyser failed", e);
    }
  }

  unwatch(id) {
    const cur = this.sources.get(id);
    if (!cur) return;
    this.sources.delete(id);
    try { cur.source.disconnect(); } catch {}
    if (this.active === id) this._set(null);
  }

  /** Current level of `id` (0…1), for meters. */
  level(id) {
    const s = this.sources.get(id);
    if (!s) return 0;
    s.analyser.getFloatTimeDomainData(s.buf);
    let sum = 0;
    for (const v of s.buf) sum += v * v;
    return Math.sqrt(sum / s.buf.length);
  }

  stop() {
    clearInterval(this.timer);
    for (const id of [...this.sources.keys()]) this.unwatch(id);
    this.ctx?.close().catch(() => {});
    this.ctx = null;
  }

  _poll() {
    if (this.ctx?.state === "suspended") this.ctx.resume().catch(() => {});
    let best = null;
    let bestLevel = THRESHOLD;
    for (const [id, s] of this.sources) {
      if (!s.track.enabled || s.track.readyState !== "live") continue;
      const l = this.level(id);
      if (l > bestLevel) {
        best = id;
        bestLevel = l;
      }
    }
    const now = Date.now();
    if (best) {
      this.activeUntil = now + HOLD_MS;
      if (best !== this.active) this._set(best);
    } else if (this.active && now > this.activeUntil) {
      this._set(null);
    }
  }

  _set(id) {
    this.active = id;
    this.onActive(id);
  }
}
