//! What the core asks the shell to do, and what it asks the shell to keep for it.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::protocol::{ChatRecord, Member};

/// Identifies one socket for the lifetime of its connection (the shell keeps it in the socket's
/// attachment, so it survives hibernation).
pub type Sid = u64;

/// Close codes the server uses (documented in `docs/PROTOCOL.md`).
pub mod close {
    /// After an ERROR or ID-TAKEN frame, as peerjs-server closes after them.
    pub const NORMAL: u16 = 1000;
    /// Another connection took over this socket's PeerJS id or roster entry.
    pub const REPLACED: u16 = 4000;
    /// Nothing received for `ALIVE_TIMEOUT_MS`.
    pub const ALIVE_TIMEOUT: u16 = 4001;
    /// RFC 6455 "message too big": the socket kept sending frames over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// In a room: an unjoined room socket, or a PeerJS id nobody is seated as, outlived the join
    /// window, or was the oldest such id when the room needed its place.
    pub const JOIN_WINDOW: u16 = 4002;
}

pub type Effects = Vec<Effect>;

/// What the shell must do. Effects of one event are carried out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a text frame. One frame shared by many sends is serialised once.
    Send { to: Sid, frame: Rc<str> },
    /// Close a socket and forget it. The core always stores a [`Role::Retired`] attachment for it
    /// first, so the socket is never restored as anyone, whatever the runtime does with it after.
    Close { sid: Sid, code: u16, reason: &'static str },
    /// Store this as the socket's attachment: what must survive hibernation.
    Attach { sid: Sid, attachment: Attachment },
    /// Write this chat record to storage now, then report the outcome with
    /// [`super::Hub::chat_stored`] and carry out the effects it returns right after this one.
    /// Nobody is sent the record before it is stored.
    StoreChat(ChatRecord),
    /// Make sure the object's alarm fires no later than this (ms since the epoch).
    SetAlarm { at_ms: u64 },
    /// Keep this seat in storage (a new member): when every socket of the object is gone — a
    /// restart, a deploy — the seat still holds for its token through the grace period.
    SaveSeat(SeatRecord),
    /// The seat of this peer id ended (leave, or the grace period ran out): forget it.
    DropSeat(String),
}

/// A seat as storage keeps it: who sits there, and the token that may take it back.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatRecord {
    pub member: Member,
    pub token: String,
    /// Join order (see the roster's `Seat::order`).
    pub order: u64,
    /// Since when its member has been away (reconnecting): a restart that finds the seat without
    /// sockets continues that grace period rather than starting a new one, so a crashed tab's
    /// seat ends on time even when every wake-up is a fresh instance.
    pub away_since: Option<u64>,
}

/// The answer to a new PeerJS socket.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Accept the socket (for hibernation) and carry out these effects.
    Accepted(Effects),
    /// Do not accept it into the object: send this frame on it and close it. Nothing changed.
    Refused { frame: String },
}

/// Per-socket state that survives hibernation, stored in the socket's attachment. Kept small:
/// workerd allows 2,048 bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Attachment {
    pub sid: Sid,
    /// When the socket connected (ms); with the runtime's last auto-response time it gives the
    /// liveness of a socket after a wake-up.
    pub since: u64,
    pub role: Role,
    /// The client's address (`CF-Connecting-IP`), for the per-client socket limit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
}

/// What a socket is to the object. The same enum is the live state and the attachment.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Role {
    /// Registered PeerJS socket.
    PeerJs { id: String, token: String },
    /// Room socket; `member` once joined.
    Room { member: Option<Member> },
    /// Owns nothing: closed by the server, replaced, or unregistered by a PeerJS LEAVE without
    /// `dst`. Still connected; its frames are ignored.
    Retired,
}
