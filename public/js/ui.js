// DOM pieces of the room page: screens, toasts, the video grid and its tiles, the side panels and
// the people list. All user-provided text is set with textContent (via el({text})).
import { PRESENCE } from "./protocol.js";
import { Emitter, el, icon, initials, hueClass } from "./util.js";

export const $ = (sel, root = document) => root.querySelector(sel);

/** Shows exactly one of the page's screens (lobby, permission, call, room-full, error). */
export function showScreen(id) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== id;
  document.body.dataset.screen = id;
}

/** A full-page message with optional action buttons [{label, primary, onClick}]. */
export function showError(title, message, actions = []) {
  $("#error-title").textContent = title;
  $("#error-text").textContent = message;
  const box = $("#error-actions");
  box.replaceChildren();
  for (const a of actions) {
    const b = el("button", { className: a.primary ? "btn primary" : "btn", text: a.label, attrs: { type: "button" } });
    b.addEventListener("click", a.onClick);
    box.append(b);
  }
  showScreen("error-screen");
  box.querySelector("button")?.focus();
}

export function toast(text, kind = "info", ms = 4000) {
  const host = $("#toasts");
  if (!host) return;
  const t = el("div", { className: `toast ${kind}`, text, attrs: { role: kind === "error" ? "alert" : "status" } });
  host.append(t);
  while (host.children.length > 4) host.firstElementChild.remove();
  setTimeout(() => {
    t.classList.add("leaving");
    setTimeout(() => t.remove(), 300);
  }, ms);
}

/** One video tile: a person's video, avatar, name and indicators. */
export class Tile {
  constructor(id, { self = false } = {}) {
    this.id = id;
    this.self = self;
    this.video = null;
    this.avatarText = el("span", { className: "avatar-initials" });
    this.avatar = el("div", { className: "avatar", attrs: { "data-testid": "tile-avatar" } }, this.avatarText);
    this.name = el("span", { className: "tile-name", attrs: { "data-testid": "tile-name" } });
    this.micOff = el("span", { className: "badge-icon mic-off", attrs: { "data-testid": "tile-mic-off", title: "Muted" }, hidden: true }, icon("mic-off"));
    this.hand = el("span", { className: "tile-hand", attrs: { "data-testid": "tile-hand", title: "Hand raised" }, hidden: true }, icon("hand"), el("span", { text: "Hand raised" }));
    this.status = el("span", { className: "tile-status", hidden: true });
    // Said in words (and dimmed video): the person's connection to the meeting dropped, their
    // seat is kept and the call with them stays up until they come back or their seat expires.
    this.presence = el(
      "span",
      { className: "tile-presence", attrs: { "data-testid": "tile-reconnecting", role: "status" }, hidden: true },
      el("span", { className: "spinner", attrs: { "aria-hidden": "true" } }),
      el("span", { text: "Reconnecting…" }),
    );
    this.node = el(
      "div",
      { className: "tile" + (self ? " self" : ""), dataset: { peerId: id }, attrs: { "data-testid": self ? "self-tile" : "tile" } },
      this.avatar,
      el("div", { className: "tile-top" }, this.hand, this.presence, this.status),
      el("div", { className: "tile-bottom" }, this.micOff, this.name),
    );
    if (!self) {
      this.video = el("video", { attrs: { autoplay: true, playsinline: true, "data-testid": "remote-video", "data-peer-id": id } });
      this.node.prepend(this.video);
    }
    this.setCamera(false);
  }

  /** Puts `video` (the local preview element) into this tile. */
  adoptVideo(video) {
    this.video = video;
    this.node.prepend(video);
  }

  setName(name, suffix = "") {
    this.name.textContent = (name || "Guest") + suffix;
    this.avatarText.textContent = initials(name);
    this.avatar.className = "avatar " + hueClass(name || this.id);
  }

  setStream(stream) {
    if (!this.video || this.video.srcObject === stream) return;
    this.video.srcObject = stream;
    this.video.play?.().catch(() => {});
  }

  setSinkId(id) {
    if (this.self || !this.video?.setSinkId || !id) return;
    this.video.setSinkId(id).catch(() => {});
  }

  setCamera(on) {
    this.node.classList.toggle("cam-off", !on);
    this.avatar.hidden = !!on;
  }

  /** media: {mic, camera, screen, hand} */
  setMedia(media) {
    const m = media ?? {};
    this.setCamera(!!(m.camera || m.screen));
    this.node.classList.toggle("screen", !!m.screen);
    this.micOff.hidden = !!m.mic;
    this.node.classList.toggle("mic-off", !m.mic);
    this.hand.hidden = !m.hand;
    this.node.classList.toggle("hand-up", !!m.hand);
    this.node.dataset.mic = m.mic ? "on" : "off";
    this.node.dataset.camera = m.camera ? "on" : "off";
    this.node.dataset.screen = m.screen ? "on" : "off";
    this.node.dataset.hand = m.hand ? "up" : "down";
  }

  /** presence: "present" | "reconnecting" (a member's `presence`; absent means present). */
  setPresence(presence) {
    const away = presence === "reconnecting";
    this.presence.hidden = !away;
    this.node.classList.toggle("reconnecting", away);
    this.node.dataset.presence = away ? "reconnecting" : "present";
  }

  setStatus(text) {
    this.status.textContent = text ?? "";
    this.status.hidden = !text;
  }

  setSpeaking(on) {
    this.node.classList.toggle("speaking", !!on);
  }

  remove() {
    if (this.video && !this.self) {
      this.video.srcObject = null;
    }
    this.node.remove();
  }
}

/**
 * The tile grid. Tiles are sized by JS to the largest size at which all fit (4:3…16:9 on wide
 * stages, 3:5…16:9 on tall ones) and centred — set through CSS custom properties, which the CSP allows.
 */
export class Grid {
  constructor(root) {
    this.root = root;
    this.tiles = new Map();
    this.ro = new ResizeObserver(() => this.layout());
    this.ro.observe(root);
  }

  add(tile) {
    this.tiles.set(tile.id, tile);
    if (tile.self) this.root.prepend(tile.node);
    else this.root.append(tile.node);
    this.layout();
    return tile;
  }

  get(id) {
    return this.tiles.get(id);
  }

  remove(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    this.tiles.delete(id);
    t.remove();
    this.layout();
  }

  /** Plays every remote tile's audio on this output device. */
  setSinkId(deviceId) {
    for (const t of this.tiles.values()) t.setSinkId(deviceId);
  }

  setSpeaking(id) {
    for (const [k, t] of this.tiles) t.setSpeaking(k === id && this.tiles.size > 1);
  }

  layout() {
    const n = this.tiles.size;
    this.root.dataset.count = String(n);
    if (!n) return;
    const W = this.root.clientWidth;
    const H = this.root.clientHeight;
    if (!W || !H) return;
    const gap = 8;
    // Tiles stay between these aspect ratios (video is cropped to fill them): landscape-ish on
    // wide stages, up to portrait on tall ones (phones), so the stage is used well either way.
    const [minA, maxA] = W >= H ? [4 / 3, 16 / 9] : [3 / 5, 16 / 9];
    let best = { w: 0, h: 0, area: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const cw = (W - gap * (cols - 1)) / cols;
      const ch = (H - gap * (rows - 1)) / rows;
      let w = cw;
      let h = Math.min(ch, cw / minA);
      if (w / h > maxA) w = h * maxA;
      if (w / h < minA) h = w / minA;
      if (w * h > best.area) best = { w, h, area: w * h };
    }
    this.root.style.setProperty("--tile-w", Math.floor(best.w) + "px");
    this.root.style.setProperty("--tile-h", Math.floor(best.h) + "px");
  }
}

/** The side panel: chat, people, or closed. Events: "change" (which) after every switch. */
export class SidePanels extends Emitter {
  constructor() {
    super();
    this.which = null; // "chat" | "people" | null
    $("#chat-toggle").addEventListener("click", () => this.toggle("chat"));
    $("#people-toggle").addEventListener("click", () => this.toggle("people"));
    $("#side-close").addEventListener("click", () => this.open(null));
  }

  toggle(which) {
    this.open(this.which === which ? null : which);
  }

  open(which) {
    this.which = which;
    $("#side").hidden = !which;
    $("#chat-panel").hidden = which !== "chat";
    $("#people-panel").hidden = which !== "people";
    $("#side-title").textContent = which === "people" ? "People" : "Chat";
    $("#chat-toggle").setAttribute("aria-pressed", String(which === "chat"));
    $("#people-toggle").setAttribute("aria-pressed", String(which === "people"));
    document.body.classList.toggle("panel-open", !!which);
    this.emit("change", which);
  }
}

/** The People panel: one row per person (us first), with their presence and media flags. */
export class PeopleList {
  constructor(list = $("#people-list"), count = $("#people-count")) {
    this.list = list;
    this.count = count;
  }

  /** rows: [{peerId, name, media, presence, me}] */
  render(rows) {
    this.list.replaceChildren(...rows.map((m) => this._row(m)));
    this.count.textContent = String(rows.length);
  }

  _row(m) {
    const away = m.presence === PRESENCE.RECONNECTING;
    const flags = el("span", { className: "person-flags" });
    if (away) {
      flags.append(el("span", { className: "flag presence", text: "Reconnecting…", attrs: { "data-testid": "participant-reconnecting" } }));
    }
    if (m.media?.hand) flags.append(el("span", { className: "flag hand", attrs: { title: "Hand raised" } }, icon("hand")));
    if (!m.media?.mic) flags.append(el("span", { className: "flag", attrs: { title: "Muted" } }, icon("mic-off")));
    if (!m.media?.camera) flags.append(el("span", { className: "flag", attrs: { title: "Camera off" } }, icon("videocam-off")));
    if (m.media?.screen) flags.append(el("span", { className: "flag", attrs: { title: "Sharing screen" } }, icon("screen")));
    return el(
      "li",
      { className: "person" + (away ? " reconnecting" : ""), attrs: { "data-testid": "participant" }, dataset: { peerId: m.peerId } },
      el("span", { className: "person-avatar " + hueClass(m.name), text: initials(m.name) }),
      el("span", { className: "person-name", text: m.name + (m.me ? " (You)" : "") }),
      flags,
    );
  }
}

/** Reflects a toggle's state: aria-pressed, the active class, its label and its tooltip. */
export function renderToggle(button, on, { label, title } = {}) {
  button.setAttribute("aria-pressed", String(on));
  button.classList.toggle("active", on);
  if (label) button.querySelector(".ctl-label").textContent = label;
  if (title) button.title = title;
}
