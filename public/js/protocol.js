// Every wire word of the room protocol the app uses, in one place. The server's Rust enums are
// the authority (crates/core/src/protocol.rs); `cargo test` writes them to tests/vocabulary.json
// and tests/node/vocabulary.test.mjs fails when this file disagrees with that one, so a word
// renamed on one side cannot silently stop matching on the other.

/** `type` of the frames a client sends on the room socket. */
export const CLIENT = Object.freeze({
  JOIN: "join",
  CHAT: "chat",
  MEDIA: "media",
  LEAVE: "leave",
  HEARTBEAT: "HEARTBEAT",
});

/** `type` of the frames the server sends on the room socket. */
export const SERVER = Object.freeze({
  WELCOME: "welcome",
  PEER_JOINED: "peer-joined",
  PEER_PRESENCE: "peer-presence",
  PEER_LEFT: "peer-left",
  LEFT: "left",
  CHAT: "chat",
  PEER_MEDIA: "peer-media",
  ERROR: "error",
});

/** `code` of an `error` frame. */
export const ERROR = Object.freeze({
  BINARY_UNSUPPORTED: "binary-unsupported",
  FRAME_TOO_LARGE: "frame-too-large",
  BAD_JSON: "bad-json",
  UNKNOWN_TYPE: "unknown-type",
  BAD_REQUEST: "bad-request",
  RATE_LIMITED: "rate-limited",
  NOT_JOINED: "not-joined",
  ALREADY_JOINED: "already-joined",
  UNKNOWN_PEER: "unknown-peer",
  BAD_TOKEN: "bad-token",
  INVALID_NAME: "invalid-name",
  INVALID_TEXT: "invalid-text",
  ROOM_FULL: "room-full",
  INTERNAL: "internal",
});

/** `reason` of `peer-left` and `left`: the Leave button or a closed tab, the grace period ran out, another socket took the seat. */
export const LEAVE_REASON = Object.freeze({
  LEAVE: "leave",
  GONE: "gone",
  REPLACED: "replaced",
});

/** A member's `presence` (in the roster and in `peer-presence`). */
export const PRESENCE = Object.freeze({
  PRESENT: "present",
  RECONNECTING: "reconnecting",
});

/** WebSocket close codes the server uses. */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  TOO_BIG: 1009,
  REPLACED: 4000,
  ALIVE_TIMEOUT: 4001,
  JOIN_WINDOW: 4002,
});

/** The exact bytes of a heartbeat: the server echoes them without waking the room. */
export const HEARTBEAT = '{"type":"HEARTBEAT"}';

/** Room ids the server accepts (anything else gets HTTP 400). */
export const ROOM_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$";
export const ROOM_RE = new RegExp(ROOM_ID_PATTERN);

/** The server's text limits, in characters (the welcome repeats chatMaxChars as `limits`). */
export const LIMITS = Object.freeze({
  CHAT_MAX_CHARS: 2000,
  NAME_MAX_CHARS: 32,
});
