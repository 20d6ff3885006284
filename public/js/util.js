// Small helpers shared by the pages. No DOM state lives here.
import { ROOM_RE } from "./protocol.js";

export { ROOM_RE }; // the room-id rule is a protocol word (protocol.js)

/** base64url without padding. */
export function base64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** An unguessable id: `bytes` random bytes (default 16 = 128 bits) as base64url. */
export function randomId(bytes = 16) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return base64url(a);
}

/** The room id in a pasted link (`…/room/ID…`) or a bare code; null if neither. */
export function parseRoomInput(text) {
  const s = String(text ?? "").trim();
  if (!s) return null;
  if (ROOM_RE.test(s)) return s;
  const m = /\/room\/([^/?#\s]+)/.exec(s);
  if (m) {
    let id = m[1];
    try { id = decodeURIComponent(id); } catch { return null; }
    return ROOM_RE.test(id) ? id : null;
  }
  return null;
}

/** Up to two initials for an avatar ("Ada Lovelace" → "AL", "ada" → "A"). */
export function initials(name) {
  const words = String(name ?? "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const first = (w) => Array.from(w)[0] ?? "";
  const s = words.length === 1 ? first(words[0]) : first(words[0]) + first(words[words.length - 1]);
  return s.toUpperCase();
}

/** A stable avatar colour class for a key (hue-0 … hue-7). */
export function hueClass(key) {
  let h = 0;
  for (const c of String(key ?? "")) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return "hue-" + (h % 8);
}

/** "14:05" in the viewer's locale. */
export function formatTime(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds an element. `props`: className, text (textContent), attrs {name: value}, dataset, hidden.
 * User-provided text only ever goes through `text` (textContent), never HTML.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text != null) node.textContent = props.text;
  if (props.hidden) node.hidden = true;
  for (const [k, v] of Object.entries(props.attrs ?? {})) {
    if (v != null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const [k, v] of Object.entries(props.dataset ?? {})) node.dataset[k] = v;
  for (const c of children) if (c != null) node.append(c);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** `<svg class="icon"><use href="#i-NAME"/></svg>` from the page's sprite. */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("viewBox", "0 0 24 24");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", "#i-" + name);
  svg.append(use);
  return svg;
}

/** A tiny event emitter: on(type, fn) → unsubscribe; emit(type, ...args). */
export class Emitter {
  #handlers = new Map();
  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(fn);
    return () => this.#handlers.get(type)?.delete(fn);
  }
  emit(type, ...args) {
    for (const fn of [...(this.#handlers.get(type) ?? [])]) {
      try { fn(...args); } catch (e) { console.error(`[edge-meet] ${type} handler failed`, e); }
    }
  }
}

export function log(...args) {
  if (globalThis.__edgeMeetDebug) console.log("[edge-meet]", ...args);
}
