// The lobby: camera preview, mic/camera toggles, device selection, display name.
// The preview <video>, the two toggles and the device pickers are single elements that move into
// the call screen on join, so each test id exists exactly once on the page.
import { LIMITS } from "./protocol.js";
import { $ } from "./ui.js";
import { Emitter, el, initials, hueClass } from "./util.js";

const NAME_KEY = "edge-meet:name";

export function initialName() {
  const fromUrl = new URLSearchParams(location.search).get("name");
  if (fromUrl && fromUrl.trim()) return fromUrl.trim().slice(0, LIMITS.NAME_MAX_CHARS);
  try { return localStorage.getItem(NAME_KEY) || ""; } catch { return ""; }
}

export function rememberName(name) {
  try { localStorage.setItem(NAME_KEY, name); } catch {}
}

const MEDIA_NOTES = {
  denied: "blocked by the browser",
  notfound: "not found",
  busy: "in use by another app",
  insecure: "unavailable on an insecure (http) page",
  error: "unavailable",
};

/** Events: "device" (kind, deviceId): a device was picked (audioinput, videoinput, audiooutput). */
export class Lobby extends Emitter {
  constructor(media) {
    super();
    this.media = media;
    this.video = $("#local-video");
    this.avatar = $("#preview-avatar");
    this.avatarText = $("#preview-avatar .avatar-initials");
    this.nameInput = $("#name-input");
    this.micBtn = $("#mic-toggle");
    this.camBtn = $("#camera-toggle");
    this.notice = $("#lobby-media-notice");
    this.error = $("#lobby-error");
    this.joinBtn = $("#join-button");
    this.meter = $("#mic-meter");
    this.selects = {
      audioinput: $("#mic-select"),
      videoinput: $("#camera-select"),
      audiooutput: $("#speaker-select"),
    };
    this.nameInput.maxLength = LIMITS.NAME_MAX_CHARS; // the server's limit (room.html repeats it)
    this.nameInput.value = initialName();
    this.nameInput.addEventListener("input", () => {
      this.setError("");
      this.renderAvatar();
    });
    for (const [kind, sel] of Object.entries(this.selects)) {
      sel.addEventListener("change", () => this.emit("device", kind, sel.value));
    }
    this.renderAvatar();
  }

  get name() {
    return this.nameInput.value.trim();
  }

  focusName() {
    this.nameInput.focus();
  }

  renderAvatar() {
    const n = this.name || "?";
    this.avatarText.textContent = initials(n);
    this.avatar.className = "avatar " + hueClass(n);
  }

  setError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  setBusy(busy, label) {
    this.joinBtn.disabled = busy;
    this.joinBtn.textContent = label ?? (busy ? "Joining…" : "Join now");
  }

  /** Reflects the local media state in the preview, toggles, notices and pickers. */
  render() {
    const m = this.media;
    const stream = m.previewStream();
    const track = stream?.getVideoTracks()[0] ?? null;
    if ((this.video.srcObject?.getVideoTracks?.()[0] ?? null) !== track) {
      this.video.srcObject = stream;
      if (stream) this.video.play().catch(() => {});
    }
    this.video.classList.toggle("mirror", !m.screenTrack);
    this.video.classList.toggle("off", !track);
    this.avatar.hidden = !!track;

    const micOn = m.state.mic;
    this.micBtn.setAttribute("aria-pressed", String(micOn));
    this.micBtn.classList.toggle("off", !micOn);
    this.micBtn.title = micOn ? "Mute microphone" : m.micTrack ? "Unmute microphone" : "Turn on microphone";
    this.micBtn.querySelector(".ctl-label").textContent = micOn ? "Mute" : "Unmute";
    const camOn = m.state.camera;
    this.camBtn.setAttribute("aria-pressed", String(camOn));
    this.camBtn.classList.toggle("off", !camOn);
    this.camBtn.title = camOn ? "Turn off camera" : "Turn on camera";
    this.camBtn.querySelector(".ctl-label").textContent = camOn ? "Stop video" : "Start video";

    const notes = [];
    if (m.micError && !m.micTrack) notes.push(`Microphone ${MEDIA_NOTES[m.micError] ?? "unavailable"}.`);
    if (m.camError && !m.camTrack) notes.push(`Camera ${MEDIA_NOTES[m.camError] ?? "unavailable"}.`);
    if (notes.length) {
      const tail = !m.micTrack && !m.camTrack
        ? " You can still join: you will see and hear the others, and they will see your initials."
        : "";
      this.notice.textContent = notes.join(" ") + tail;
      this.notice.hidden = false;
    } else {
      this.notice.hidden = true;
    }
    this.renderDevices();
  }

  renderDevices() {
    const m = this.media;
    const current = {
      audioinput: m.micTrack?.getSettings?.().deviceId || m.micDeviceId,
      videoinput: m.camTrack?.getSettings?.().deviceId || m.camDeviceId,
      audiooutput: m.speakerId,
    };
    const fallback = { audioinput: "Microphone", videoinput: "Camera", audiooutput: "Speaker" };
    for (const [kind, sel] of Object.entries(this.selects)) {
      const list = m.devices[kind] ?? [];
      const field = sel.closest(".field");
      const usable = kind === "audiooutput" ? list.length > 0 && "setSinkId" in HTMLMediaElement.prototype : true;
      if (field) field.hidden = !usable;
      sel.replaceChildren();
      if (!list.length) {
        sel.append(el("option", { text: "None available", attrs: { value: "" } }));
        sel.disabled = true;
        continue;
      }
      sel.disabled = false;
      list.forEach((d, i) => {
        const o = el("option", { text: d.label || `${fallback[kind]} ${i + 1}`, attrs: { value: d.deviceId } });
        if (d.deviceId === current[kind]) o.selected = true;
        sel.append(o);
      });
    }
  }

  /** Level 0…1 for the mic meter. */
  setLevel(level) {
    this.meter.style.setProperty("--level", Math.min(1, level * 4).toFixed(3));
  }
}
