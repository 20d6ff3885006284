//! The room protocol on `/room/{room}/ws`: every frame either side may send, in one place.
//!
//! The server, the black-box tests and the load generator all use these types, so there is no
//! second hand-written copy of the protocol to drift. `docs/PROTOCOL.md` is the prose version.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest room id.
pub const ROOM_ID_MAX: usize = 64;
/// The room-id rule as a regular expression, for clients (the meeting app checks links with it).
pub const ROOM_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Room ids are what people type and share: letters, digits, `-` and `_`, at most
/// [`ROOM_ID_MAX`]. Keeping them this plain means no percent-encoding ambiguity and no path
/// tricks (`..`, `%2F`). Same rule as [`ROOM_ID_PATTERN`].
pub fn valid_room_id(id: &str) -> bool {
    (1..=ROOM_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a participant currently sends, as the participant reports it. Everything defaults to
/// off: a client that says nothing claims nothing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaState {
    pub mic: bool,
    pub camera: bool,
    pub screen: bool,
    pub hand: bool,
}

/// A partial media update: only the fields present change.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MediaPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand: Option<bool>,
}

impl MediaState {
    pub fn apply(&mut self, patch: &MediaPatch) {
        self.mic = patch.mic.unwrap_or(self.mic);
        self.camera = patch.camera.unwrap_or(self.camera);
        self.screen = patch.screen.unwrap_or(self.screen);
        self.hand = patch.hand.unwrap_or(self.hand);
    }
}

/// Whether a member's sockets are connected. A socket that drops is a member reconnecting, not
/// leaving: the seat, and the calls with it, stay through the grace period (`GRACE_MS`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    /// Both its room socket and its PeerJS socket are connected.
    #[default]
    Present,
    /// One of them dropped without `leave`; the seat is kept for the member's own token.
    Reconnecting,
}

impl Presence {
    pub const ALL: &'static [Presence] = &[Presence::Present, Presence::Reconnecting];
}

/// One person in the room. `name` is the server-validated name; `peer_id` is the PeerJS id the
/// joiner proved it owns, so other clients can `peer.call(peer_id)` it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub peer_id: String,
    pub name: String,
    pub media: MediaState,
    pub joined_at: u64,
    #[serde(default)]
    pub presence: Presence,
}

/// A chat message as the server recorded it. `id` increases by one per message in a room;
/// `ts` (ms since the epoch) never goes backwards even if the clock does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChatRecord {
    pub id: u64,
    pub peer_id: String,
    pub name: String,
    pub text: String,
    pub ts: u64,
}

/// Frames a client sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum ClientFrame {
    /// Enter the roster as the owner of PeerJS id `peer_id` (proved by its PeerJS `token`).
    Join {
        peer_id: String,
        token: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media: Option<MediaPatch>,
    },
    Chat {
        text: String,
    },
    /// Partial media-state update, fields inline: `{"type":"media","mic":false}`.
    Media(MediaPatch),
    /// Leave the roster; the socket stays open and may join again.
    Leave,
    /// Keep-alive. The exact bytes `{"type":"HEARTBEAT"}` are answered by the runtime without
    /// waking the room; any other spelling reaches the room and only refreshes liveness.
    #[serde(rename = "HEARTBEAT")]
    Heartbeat,
}

impl ClientFrame {
    /// Every `type` a client may send, in declaration order; anything else is `unknown-type`.
    /// A test checks it against the serde names.
    pub const TYPES: &'static [&'static str] = &["join", "chat", "media", "leave", "HEARTBEAT"];
}

/// Why someone left the roster. A dropped socket is not among them: that member is
/// [`Presence::Reconnecting`] until it comes back or the grace period ends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// Sent `leave` (the Leave button, or the page being closed).
    Leave,
    /// Its sockets stayed away for the whole grace period (`GRACE_MS`).
    Gone,
    /// The same seat was taken by a newer room socket with the same token (a reconnect the
    /// server noticed before the old socket's close); only the old socket hears this.
    Replaced,
}

/// Limits a client should know before it hits them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoomLimits {
    pub max_peers: usize,
    pub chat_max_chars: usize,
    pub name_max_chars: usize,
}

/// Frames the server sends on a room socket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum ServerFrame {
    /// Answer to `join`: who you are, who is here (in join order), recent chat (oldest first),
    /// and the ICE servers to give `RTCPeerConnection`.
    Welcome {
        #[serde(rename = "self")]
        me: Member,
        peers: Vec<Member>,
        chat: Vec<ChatRecord>,
        ice_servers: Value,
        limits: RoomLimits,
        /// True when this join took back a seat the same peer id and token still held (a
        /// reconnect within the grace period): the others saw only `peer-presence`, and every
        /// call with them is still up. Absent (older servers) reads as false.
        #[serde(default)]
        resumed: bool,
    },
    PeerJoined {
        peer: Member,
    },
    /// A member's sockets dropped ([`Presence::Reconnecting`]) or are all back
    /// ([`Presence::Present`]). Its seat and calls are unchanged.
    PeerPresence {
        peer_id: String,
        presence: Presence,
    },
    PeerLeft {
        peer_id: String,
        reason: LeaveReason,
    },
    /// You are no longer in the roster (after `leave`, or when the server removed you).
    Left {
        reason: LeaveReason,
    },
    Chat {
        message: ChatRecord,
    },
    PeerMedia {
        peer_id: String,
        media: MediaState,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// Every error a client can cause. The socket stays open after each of them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not UTF-8 text: the room protocol is JSON text frames only.
    BinaryUnsupported,
    /// Over 64 KiB.
    FrameTooLarge,
    /// Not a JSON object.
    BadJson,
    /// `type` missing, not a string, or not one of [`ClientFrame::TYPES`].
    UnknownType,
    /// A known type with a missing or wrongly typed field.
    BadRequest,
    /// Over the per-socket rate limit; one error per burst of dropped frames.
    RateLimited,
    /// `chat`, `media` or `leave` before `join`.
    NotJoined,
    /// `join` on a socket that is already in the roster.
    AlreadyJoined,
    /// The peer id is not registered on this room's PeerJS server.
    UnknownPeer,
    /// The token does not match the one that registered the peer id.
    BadToken,
    InvalidName,
    InvalidText,
    /// The room already holds `ROOM_CAP` members.
    RoomFull,
    /// The server could not store the message; nothing was sent to anyone.
    Internal,
}

impl LeaveReason {
    pub const ALL: &'static [LeaveReason] = &[LeaveReason::Leave, LeaveReason::Gone, LeaveReason::Replaced];
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BinaryUnsupported,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BadRequest,
        ErrorCode::RateLimited,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::UnknownPeer,
        ErrorCode::BadToken,
        ErrorCode::InvalidName,
        ErrorCode::InvalidText,
        ErrorCode::RoomFull,
        ErrorCode::Internal,
    ];
}

impl ServerFrame {
    /// Every `type` the server sends on a room socket, in declaration order (checked against the
    /// serde names by a test).
    pub const TYPES: &'static [&'static str] =
        &["welcome", "peer-joined", "peer-presence", "peer-left", "left", "chat", "peer-media", "error"];

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error { code, message: message.into() }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_have_the_documented_shape() {
        let join: ClientFrame = serde_json::from_value(json!({
            "type": "join", "peerId": "p1", "token": "t", "name": "Ada", "media": {"mic": true}
        }))
        .unwrap();
        assert_eq!(
            join,
            ClientFrame::Join {
                peer_id: "p1".into(),
                token: "t".into(),
                name: "Ada".into(),
                media: Some(MediaPatch { mic: Some(true), ..Default::default() })
            }
        );
        let media: ClientFrame = serde_json::from_str(r#"{"type":"media","hand":true}"#).unwrap();
        assert_eq!(media, ClientFrame::Media(MediaPatch { hand: Some(true), ..Default::default() }));
        assert_eq!(serde_json::to_string(&ClientFrame::Leave).unwrap(), r#"{"type":"leave"}"#);
        assert_eq!(serde_json::to_string(&ClientFrame::Heartbeat).unwrap(), r#"{"type":"HEARTBEAT"}"#);
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let f = ServerFrame::PeerLeft { peer_id: "p".into(), reason: LeaveReason::Gone };
        assert_eq!(f.to_json(), r#"{"type":"peer-left","peerId":"p","reason":"gone"}"#);
        let f = ServerFrame::PeerPresence { peer_id: "p".into(), presence: Presence::Reconnecting };
        assert_eq!(f.to_json(), r#"{"type":"peer-presence","peerId":"p","presence":"reconnecting"}"#);
        let e = ServerFrame::error(ErrorCode::RoomFull, "full");
        assert_eq!(e.to_json(), r#"{"type":"error","code":"room-full","message":"full"}"#);
        let back: ServerFrame = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn media_patch_changes_only_given_fields() {
        let mut m = MediaState { mic: true, camera: true, ..Default::default() };
        m.apply(&MediaPatch { camera: Some(false), hand: Some(true), ..Default::default() });
        assert_eq!(m, MediaState { mic: true, camera: false, screen: false, hand: true });
    }
}
