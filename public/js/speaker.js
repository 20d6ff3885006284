// Active-speaker detection: a WebAudio analyser per audio stream, polled a few times a second.
// The loudest source above a threshold becomes the active speaker and keeps it for a short hold,
// so the highlight does not flicker between words.
import { Emitter, log } from "./util.js";

const POLL_MS = 200;
const THRESHOLD = 0.02; // RMS of the loudest frame, 0…1
const HOLD_MS = 1200;
const FRAME_S = 0.01; // level = RMS of the loudest 10 ms frame in the analysed window

// The analyser must hold at least everything heard since the previous poll: a short sound that
// falls between two polls would otherwise never be seen (a one-word "yes", or Chromium's fake
// microphone, which beeps for 20 ms every 500 ms). fftSize is a power of two, at most 32768.
function windowSize(sampleRate) {
  const want = Math.ceil((sampleRate * POLL_MS * 1.25) / 1000);
  let n = 512;
  while (n < want && n < 32768) n *= 2;
  return n;
}

/** Events: "active" (id | null): the active speaker changed. */
export class SpeakerDetector extends Emitter {
  constructor() {
    super();
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

  /** Browsers start audio only after a user gesture: call this in one. */
  resume() {
    this.ctx?.resume().catch(() => {});
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
      analyser.fftSize = windowSize(this.ctx.sampleRate);
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

  /** Recent level of `id` (0…1): the RMS of its loudest 10 ms in the last poll window. For meters too. */
  level(id) {
    const s = this.sources.get(id);
    if (!s) return 0;
    s.analyser.getFloatTimeDomainData(s.buf);
    const frame = Math.max(1, Math.round(this.ctx.sampleRate * FRAME_S));
    let loudest = 0;
    for (let start = 0; start < s.buf.length; start += frame) {
      const end = Math.min(start + frame, s.buf.length);
      let sum = 0;
      for (let i = start; i < end; i++) sum += s.buf[i] * s.buf[i];
      loudest = Math.max(loudest, sum / (end - start));
    }
    return Math.sqrt(loudest);
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
    this.emit("active", id);
  }
}
