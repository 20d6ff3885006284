// Local media: microphone, camera, screen share, device choice.
//
// Every call carries exactly one audio and one video sender for its whole life, so turning the
// camera on later, switching devices or sharing the screen is a `replaceTrack` on every call —
// never a renegotiation (PeerJS cannot renegotiate a MediaConnection). When there is nothing to
// send (camera off, no device, permission denied) the sender's track is null: the transceiver
// stays sendrecv but sends nothing, so the person is effectively receive-only until they turn
// something on. PeerJS adds the tracks of the stream it is given to a new RTCPeerConnection, so
// calls are placed/answered with `outgoingStream()`, whose "absent" slots are silent/blank
// placeholder tracks that `syncSenders` immediately swaps for null.
import { Emitter, log } from "./util.js";

export const VIDEO_CONSTRAINTS = {
  width: { ideal: 640 },
  height: { ideal: 360 },
  frameRate: { ideal: 24, max: 30 },
};
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** "denied" | "notfound" | "busy" | "insecure" | "error" */
export function classifyError(err) {
  const n = err?.name ?? "";
  if (n === "NotAllowedError" || n === "SecurityError" || n === "PermissionDeniedError") return "denied";
  if (n === "NotFoundError" || n === "DevicesNotFoundError" || n === "OverconstrainedError") return "notfound";
  if (n === "NotReadableError" || n === "TrackStartError" || n === "AbortError") return "busy";
  if (n === "TypeError" && !navigator.mediaDevices) return "insecure";
  return "error";
}

/**
 * Events: "change" (any state change: tracks, on/off, errors, screen, hand).
 */
export class LocalMedia extends Emitter {
  constructor() {
    super();
    this.micTrack = null;
    this.camTrack = null;
    this.screenTrack = null;
    this.micOn = true; // what the user wants; the mic is muted via track.enabled
    this.camOn = true; // what the user wants; the camera is released when off
    this.hand = false; // a raised hand: reported to the room with the other media flags
    this.micError = null;
    this.camError = null;
    this.devices = { audioinput: [], videoinput: [], audiooutput: [] };
    this.micDeviceId = localStorage.getItem("edge-meet:mic") || "";
    this.camDeviceId = localStorage.getItem("edge-meet:cam") || "";
    this.speakerId = localStorage.getItem("edge-meet:speaker") || "";
    this._placeholders = null;
  }

  static get supported() {
    return !!navigator.mediaDevices?.getUserMedia;
  }

  static get canShareScreen() {
    return !!navigator.mediaDevices?.getDisplayMedia;
  }

  /** Asks for mic and camera (one prompt), then whichever of them works on its own. */
  async start() {
    if (!LocalMedia.supported) {
      this.micError = this.camError = "insecure";
      this.emit("change");
      return;
    }
    this.micError = this.camError = null;
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        audio: this._audioConstraints(),
        video: this._videoConstraints(),
      });
      this._setMic(s.getAudioTracks()[0] ?? null);
      this._setCam(s.getVideoTracks()[0] ?? null);
    } catch (err) {
      const why = classifyError(err);
      log("getUserMedia(audio+video) failed", err?.name, err?.message);
      if (why === "denied") {
        this.micError = this.camError = "denied";
      } else {
        // One of the two may still work (no camera, camera busy, …).
        await this._acquire("audio").catch(() => {});
        await this._acquire("video").catch(() => {});
      }
    }
    if (!this.camTrack) this.camOn = false;
    if (!this.micTrack) this.micOn = false;
    await this.refreshDevices();
    this.emit("change");
  }

  get denied() {
    return this.micError === "denied" && this.camError === "denied";
  }

  /** What is sent: the screen while sharing, else the camera when on. */
  get videoTrack() {
    if (this.screenTrack) return this.screenTrack;
    return this.camOn && this.camTrack?.readyState === "live" ? this.camTrack : null;
  }

  /** The microphone (muting only disables it, so unmuting is instant). */
  get audioTrack() {
    return this.micTrack?.readyState === "live" ? this.micTrack : null;
  }

  /** The media flags reported to the room (the `media` of `join` and of our Member). */
  get state() {
    return {
      mic: !!this.audioTrack && this.micOn,
      camera: !!this.camTrack && this.camOn,
      screen: !!this.screenTrack,
      hand: this.hand,
    };
  }

  setHand(up) {
    this.hand = !!up;
    this.emit("change");
  }

  /** Stream for the local preview: camera or screen, never audio. */
  previewStream() {
    const v = this.videoTrack;
    return v ? new MediaStream([v]) : null;
  }

  /** One audio and one video track, real or placeholder (see the header comment). */
  outgoingStream() {
    const audio = this.audioTrack ?? this._placeholderAudio();
    const video = this.videoTrack ?? this._placeholderVideo();
    return new MediaStream([audio, video].filter(Boolean));
  }

  /** Points each sender of `pc` at the track it should carry now. */
  syncSenders(pc) {
    if (!pc || pc.signalingState === "closed") return;
    for (const t of pc.getTransceivers()) {
      if (t.stopped || t.currentDirection === "stopped") continue;
      const kind = t.receiver?.track?.kind;
      const want = kind === "audio" ? this.audioTrack : kind === "video" ? this.videoTrack : undefined;
      if (want === undefined || t.sender.track === want) continue;
      t.sender.replaceTrack(want).catch((e) => log("replaceTrack failed", e));
    }
  }

  async setMic(on) {
    this.micOn = !!on;
    if (on && !this.audioTrack) {
      try {
        await this._acquire("audio");
      } catch (e) {
        this.micOn = false;
        this.emit("change");
        throw e;
      }
    }
    if (this.micTrack) this.micTrack.enabled = this.micOn;
    this.emit("change");
  }

  async setCamera(on) {
    if (on) {
      if (!this.camTrack || this.camTrack.readyState !== "live") {
        try {
          await this._acquire("video");
        } catch (e) {
          this.camOn = false;
          this.emit("change");
          throw e;
        }
      }
      this.camOn = true;
    } else {
      this.camOn = false;
      this._setCam(null); // release the device: the camera light goes off
    }
    this.emit("change");
  }

  /** Switches to another microphone / camera / speaker. */
  async useDevice(kind, deviceId) {
    if (kind === "audiooutput") {
      this.speakerId = deviceId;
      localStorage.setItem("edge-meet:speaker", deviceId);
      this.emit("change");
      return;
    }
    if (kind === "audioinput") {
      this.micDeviceId = deviceId;
      localStorage.setItem("edge-meet:mic", deviceId);
      if (this.micTrack || this.micOn) await this._acquire("audio");
    } else {
      this.camDeviceId = deviceId;
      localStorage.setItem("edge-meet:cam", deviceId);
      if (this.camOn) await this._acquire("video");
    }
    this.emit("change");
  }

  async refreshDevices() {
    try {
      const list = await navigator.mediaDevices.enumerateDevices();
      const out = { audioinput: [], videoinput: [], audiooutput: [] };
      for (const d of list) if (out[d.kind] && d.deviceId) out[d.kind].push(d);
      this.devices = out;
    } catch {
      // leave the old list
    }
  }

  /** Starts sharing the screen; resolves false if the user cancelled. */
  async startScreen() {
    if (this.screenTrack) return true;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    } catch (e) {
      if (classifyError(e) === "denied") return false; // cancelled in the picker
      throw e;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return false;
    try { track.contentHint = "detail"; } catch {}
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener("ended", () => {
      if (this.screenTrack === track) this.stopScreen();
    });
    this.screenTrack = track;
    this.emit("change");
    return true;
  }

  stopScreen() {
    const t = this.screenTrack;
    if (!t) return;
    this.screenTrack = null;
    t.stop();
    this.emit("change");
  }

  stopAll() {
    this.stopScreen();
    this._setMic(null);
    this._setCam(null);
    if (this._placeholders) {
      this._placeholders.audio?.stop();
      this._placeholders.video?.stop();
      this._placeholders.ctx?.close().catch(() => {});
      this._placeholders = null;
    }
  }

  // ----- internals -------------------------------------------------------------------------

  _audioConstraints() {
    return this.micDeviceId ? { ...AUDIO_CONSTRAINTS, deviceId: { ideal: this.micDeviceId } } : AUDIO_CONSTRAINTS;
  }

  _videoConstraints() {
    return this.camDeviceId ? { ...VIDEO_CONSTRAINTS, deviceId: { ideal: this.camDeviceId } } : VIDEO_CONSTRAINTS;
  }

  async _acquire(kind) {
    try {
      const s = await navigator.mediaDevices.getUserMedia(
        kind === "audio" ? { audio: this._audioConstraints() } : { video: this._videoConstraints() },
      );
      const track = kind === "audio" ? s.getAudioTracks()[0] : s.getVideoTracks()[0];
      if (kind === "audio") {
        this.micError = null;
        this._setMic(track);
      } else {
        this.camError = null;
        this._setCam(track);
      }
      await this.refreshDevices();
    } catch (err) {
      if (kind === "audio") this.micError = classifyError(err);
      else this.camError = classifyError(err);
      throw err;
    }
  }

  _setMic(track) {
    if (this.micTrack && this.micTrack !== track) this.micTrack.stop();
    this.micTrack = track;
    if (track) {
      track.enabled = this.micOn;
      const s = track.getSettings?.();
      if (s?.deviceId) this.micDeviceId = s.deviceId;
      track.addEventListener("ended", () => {
        if (this.micTrack === track) {
          this.micTrack = null;
          this.emit("change");
        }
      });
    }
  }

  _setCam(track) {
    if (this.camTrack && this.camTrack !== track) this.camTrack.stop();
    this.camTrack = track;
    if (track) {
      const s = track.getSettings?.();
      if (s?.deviceId) this.camDeviceId = s.deviceId;
      track.addEventListener("ended", () => {
        if (this.camTrack === track) {
          this.camTrack = null;
          this.camOn = false;
          this.emit("change");
        }
      });
    }
  }

  /** A silent audio track (made only when there is no microphone to send). */
  _placeholderAudio() {
    const ph = (this._placeholders ??= {});
    if (ph.audio === undefined) {
      try {
        ph.ctx = new AudioContext();
        ph.audio = ph.ctx.createMediaStreamDestination().stream.getAudioTracks()[0] ?? null;
      } catch {
        // Without WebAudio the call has no audio sender (offerToReceiveAudio still receives).
        ph.audio = null;
      }
    }
    return ph.audio;
  }

  /** A blank video track that never produces a frame (made only when there is no video). */
  _placeholderVideo() {
    const ph = (this._placeholders ??= {});
    if (ph.video === undefined) {
      const canvas = document.createElement("canvas");
      canvas.width = 16;
      canvas.height = 9;
      ph.video = canvas.captureStream(0).getVideoTracks()[0] ?? null;
    }
    return ph.video;
  }
}
