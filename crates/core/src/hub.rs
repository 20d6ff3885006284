//! The state machine of one Durable Object: its sockets, the PeerJS registry and offline
//! queues, the room roster and chat. Events go in (a socket opened, sent a frame, closed; the
//! alarm fired), [`Effect`]s come out for the shell to carry out. Nothing here touches
//! `worker`, so `cargo test` runs every rule natively.
//!
//! Two kinds of socket share one object, because joining the room must be proved against the
//! PeerJS registry of the same room:
//! - a **PeerJS socket** speaks the PeerJS server protocol and owns one peer id;
//! - a **room socket** speaks the room protocol ([`crate::protocol`]) and, once joined, is
//!   the roster entry of one PeerJS id it proved it owns (by presenting that id's token).

use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::chat::ChatLog;
use crate::limits::{
    validate_name, validate_text, Config, TokenBucket, CHAT_MAX_CHARS, MAX_FRAME_BYTES, NAME_MAX_CHARS,
};
use crate::peerjs::{self, Incoming, Outgoing, Queues, RELAYED};
use crate::protocol::{ChatRecord, ClientFrame, ErrorCode, LeaveReason, MediaState, Member, RoomLimits, ServerFrame};

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
}

/// What the shell must do. Effects of one event are carried out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a text frame. One frame shared by many sends is serialised once.
    Send { to: Sid, frame: Rc<str> },
    /// Close a socket; the shell also marks its attachment [`Role::Retired`] so it is never
    /// restored, whatever the runtime does with the socket afterwards.
    Close { sid: Sid, code: u16, reason: &'static str },
    /// Store this as the socket's attachment: what must survive hibernation.
    Attach { sid: Sid, attachment: Attachment },
    /// Write the chat record to storage. If that fails the shell must skip the rest of this
    /// event's effects (the broadcast) and call [`Hub::chat_not_stored`].
    PersistChat(ChatRecord),
    /// Make sure the object's alarm fires no later than this (ms since the epoch).
    SetAlarm { at_ms: u64 },
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
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Role {
    /// Registered PeerJS socket.
    PeerJs { id: String, token: String },
    /// Room socket; `member` once joined.
    Room { member: Option<Member> },
    /// Owns nothing: closed by the server, or unregistered by a PeerJS LEAVE without `dst`.
    Retired,
}

#[derive(Debug)]
enum Kind {
    PeerJs {
        id: String,
    },
    Room {
        peer_id: Option<String>,
    },
    /// Still connected but owns nothing (see [`Role::Retired`]); its frames are ignored.
    Inert,
}

#[derive(Debug)]
struct Socket {
    kind: Kind,
    since: u64,
    last_seen: u64,
    bucket: TokenBucket,
    /// True while frames are being dropped by the rate limit, so only the first gets an error.
    limited: bool,
}

#[derive(Debug)]
struct Registration {
    sid: Sid,
    token: String,
}

#[derive(Debug)]
struct Seat {
    sid: Sid,
    member: Member,
    /// Fix (core tests): join order. `joined_at` ties within one millisecond (the Workers clock
    /// stands still during a burst of events), so `welcome.peers` is sorted by this as well.
    order: u64,
}

/// Counts for the stats endpoint, tests and benchmarks.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HubStats {
    pub sockets: usize,
    pub registered: usize,
    pub members: usize,
    pub queued: usize,
    pub chat: usize,
}

pub struct Hub {
    config: Config,
    sockets: HashMap<Sid, Socket>,
    registry: HashMap<String, Registration>,
    roster: HashMap<String, Seat>,
    queues: Queues,
    chat: ChatLog,
    /// The alarm time the shell was last asked for; `None` if unknown or none pending.
    alarm_at: Option<u64>,
    /// Set after a restore: the next event recomputes the alarm from every deadline.
    rescan_alarm: bool,
    /// Last [`Seat::order`] handed out.
    joins: u64,
    /// Effects decided during a restore, sent ahead of the first event's own.
    pending: Effects,
}

type Effects = Vec<Effect>;

impl Hub {
    pub fn new(config: Config) -> Self {
        Hub {
            config,
            sockets: HashMap::new(),
            registry: HashMap::new(),
            roster: HashMap::new(),
            queues: Queues::default(),
            chat: ChatLog::default(),
            alarm_at: None,
            rescan_alarm: false,
            pending: Vec::new(),
            joins: 0,
        }
    }

    /// Rebuilds the object after hibernation or a restart from what survived: each open socket's
    /// attachment with the time the runtime last answered its heartbeat, and stored chat.
    /// Offline queues are memory-only; they live ~5 s, well under the idle time before
    /// hibernation, and a lost one costs a sender its EXPIRE, not a message to a live peer.
    pub fn restore(config: Config, sockets: Vec<(Attachment, Option<u64>)>, chat: Vec<ChatRecord>) -> Self {
        let mut hub = Hub::new(config);
        hub.chat = ChatLog::restore(chat);
        // Older connections first, so if two sockets ever claim one id the newest wins.
        let mut sockets = sockets;
        sockets.sort_by_key(|(a, _)| a.since);
        for (att, heartbeat) in sockets {
            let last_seen = heartbeat.unwrap_or(0).max(att.since);
            let kind = match att.role {
                Role::PeerJs { id, token } => {
                    if let Some(old) = hub.registry.insert(id.clone(), Registration { sid: att.sid, token }) {
                        hub.retire_silently(old.sid);
                    }
                    Kind::PeerJs { id }
                }
                Role::Room { member: Some(member) } => {
                    let peer_id = member.peer_id.clone();
                    // Restored in connection order: the best join order left for equal `joined_at`.
                    hub.joins += 1;
                    let order = hub.joins;
                    if let Some(old) = hub.roster.insert(peer_id.clone(), Seat { sid: att.sid, member, order }) {
                        hub.retire_silently(old.sid);
                    }
                    Kind::Room { peer_id: Some(peer_id) }
                }
                Role::Room { member: None } => Kind::Room { peer_id: None },
                Role::Retired => Kind::Inert,
            };
            let rate = hub.rate_for(&kind);
            hub.sockets.insert(
                att.sid,
                Socket { kind, since: att.since, last_seen, bucket: TokenBucket::new(rate, last_seen), limited: false },
            );
        }
        // A member whose PeerJS socket closed while the object slept (its close event may be
        // lost with the eviction) is unreachable: it leaves, and the room hears so with the
        // first event after the wake-up.
        let mut orphans: Vec<String> = hub.roster.keys().filter(|p| !hub.registry.contains_key(*p)).cloned().collect();
        orphans.sort();
        let mut pending = Vec::new();
        for peer_id in orphans {
            hub.unseat(&peer_id, LeaveReason::Disconnected, &mut pending);
        }
        hub.pending = pending;
        hub.rescan_alarm = true;
        hub
    }

    fn retire_silently(&mut self, sid: Sid) {
        if let Some(s) = self.sockets.get_mut(&sid) {
            s.kind = Kind::Inert;
        }
    }

    fn rate_for(&self, kind: &Kind) -> crate::limits::Rate {
        match kind {
            Kind::PeerJs { .. } => self.config.peerjs_rate,
            _ => self.config.room_rate,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the ICE server list sent in future `welcome`s (fresh TURN credentials).
    pub fn set_ice_servers(&mut self, ice: serde_json::Value) {
        self.config.ice_servers = ice;
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            sockets: self.sockets.len(),
            registered: self.registry.len(),
            members: self.roster.len(),
            queued: self.queues.len(),
            chat: self.chat.len(),
        }
    }

    /// Whether `sid` is a room-protocol socket: the shell reads stored chat only when one of
    /// those first speaks, so wake-ups for heartbeats sweeps and PeerJS relays never touch it.
    pub fn is_room_socket(&self, sid: Sid) -> bool {
        matches!(self.sockets.get(&sid).map(|s| &s.kind), Some(Kind::Room { .. }))
    }

    /// Installs the stored chat history. The shell calls it once, before the first room frame
    /// (the only events that read or append chat).
    pub fn load_chat(&mut self, records: Vec<ChatRecord>) {
        self.chat = ChatLog::restore(records);
    }

    /// Registered PeerJS ids, for the discovery endpoint.
    pub fn peer_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.registry.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every open socket with its sid, for sweeps after a wake-up.
    pub fn sids(&self) -> Vec<Sid> {
        self.sockets.keys().copied().collect()
    }

    // ----- events -------------------------------------------------------------------------

    /// A PeerJS socket was accepted with query parameters that passed [`peerjs::check_params`].
    pub fn peerjs_opened(&mut self, sid: Sid, id: &str, token: &str, now: u64) -> Effects {
        let mut fx = Vec::new();
        let replaced = match self.registry.get(id) {
            Some(reg) if reg.token != token => {
                send(&mut fx, sid, peerjs::id_taken_frame());
                fx.push(Effect::Close { sid, code: close::NORMAL, reason: "ID is taken" });
                return self.finish(fx);
            }
            // Same id, same token: the client reconnected before we saw its old socket close.
            // Unlike peerjs-server (peerjs#1289) the new socket gets OPEN, and the old one is
            // closed rather than left orphaned.
            Some(reg) => Some(reg.sid),
            None if self.registry.len() >= self.config.peerjs_limit => {
                send(&mut fx, sid, peerjs::error_frame(peerjs::MSG_LIMIT));
                fx.push(Effect::Close { sid, code: close::NORMAL, reason: peerjs::MSG_LIMIT });
                return self.finish(fx);
            }
            None => None,
        };
        if let Some(old) = replaced {
            self.sockets.remove(&old);
            fx.push(Effect::Close { sid: old, code: close::REPLACED, reason: "replaced by a new connection" });
        }
        self.registry.insert(id.to_owned(), Registration { sid, token: token.to_owned() });
        self.add_socket(sid, Kind::PeerJs { id: id.to_owned() }, now, &mut fx);
        fx.push(Effect::Attach {
            sid,
            attachment: Attachment {
                sid,
                since: now,
                role: Role::PeerJs { id: id.to_owned(), token: token.to_owned() },
            },
        });
        send(&mut fx, sid, peerjs::open_frame());
        if let Some(queue) = self.queues.take(id) {
            for (_, frame) in queue.frames {
                send(&mut fx, sid, frame);
            }
        }
        self.finish(fx)
    }

    /// A room socket was accepted.
    pub fn room_opened(&mut self, sid: Sid, now: u64) -> Effects {
        let mut fx = Vec::new();
        self.add_socket(sid, Kind::Room { peer_id: None }, now, &mut fx);
        fx.push(Effect::Attach { sid, attachment: Attachment { sid, since: now, role: Role::Room { member: None } } });
        self.finish(fx)
    }

    fn add_socket(&mut self, sid: Sid, kind: Kind, now: u64, fx: &mut Effects) {
        let rate = self.rate_for(&kind);
        self.sockets.insert(
            sid,
            Socket { kind, since: now, last_seen: now, bucket: TokenBucket::new(rate, now), limited: false },
        );
        self.schedule(now + self.config.alive_timeout_ms, fx);
    }

    /// A binary frame of `len` bytes arrived. Neither protocol uses binary frames.
    pub fn binary(&mut self, sid: Sid, len: usize, now: u64) -> Effects {
        let mut fx = Vec::new();
        if let Some(code) = self.admit(sid, len, now, &mut fx) {
            if code {
                self.room_error(sid, ErrorCode::BinaryUnsupported, "binary frames are not supported", &mut fx);
            }
        }
        self.finish(fx)
    }

    /// A text frame arrived.
    pub fn text(&mut self, sid: Sid, text: &str, now: u64) -> Effects {
        let mut fx = Vec::new();
        if self.admit(sid, text.len(), now, &mut fx).is_some() {
            match self.sockets.get(&sid).map(|s| &s.kind) {
                Some(Kind::PeerJs { id }) => {
                    let id = id.clone();
                    self.peerjs_frame(&id, text, now, &mut fx);
                }
                Some(Kind::Room { .. }) => self.room_frame(sid, text, now, &mut fx),
                _ => {}
            }
        }
        self.finish(fx)
    }

    /// Liveness, size and rate checks common to every frame. `Some(is_room)` when the frame
    /// should be processed.
    fn admit(&mut self, sid: Sid, len: usize, now: u64, fx: &mut Effects) -> Option<bool> {
        let sock = self.sockets.get_mut(&sid)?;
        sock.last_seen = sock.last_seen.max(now);
        let is_room = matches!(sock.kind, Kind::Room { .. });
        if matches!(sock.kind, Kind::Inert) {
            return None;
        }
        if !sock.bucket.take(now) {
            let first = !sock.limited;
            sock.limited = true;
            if first && is_room {
                self.room_error(sid, ErrorCode::RateLimited, "too many messages; slow down", fx);
            }
            return None;
        }
        sock.limited = false;
        if len > MAX_FRAME_BYTES {
            if is_room {
                self.room_error(sid, ErrorCode::FrameTooLarge, "frames are limited to 64 KiB", fx);
            }
            return None;
        }
        Some(is_room)
    }

    /// A socket closed (client close, or error). Its state goes; nothing is sent to it.
    pub fn closed(&mut self, sid: Sid, _now: u64) -> Effects {
        let mut fx = Vec::new();
        if let Some(sock) = self.sockets.remove(&sid) {
            self.release(sid, sock.kind, false, &mut fx);
        }
        self.finish(fx)
    }

    /// The alarm fired. `heartbeats` are the times the runtime last auto-answered a HEARTBEAT
    /// on each socket (those never reach [`Hub::text`]).
    pub fn alarm(&mut self, now: u64, heartbeats: &[(Sid, u64)]) -> Effects {
        let mut fx = Vec::new();
        for (sid, at) in heartbeats {
            if let Some(s) = self.sockets.get_mut(sid) {
                s.last_seen = s.last_seen.max(*at);
            }
        }
        let alive = self.config.alive_timeout_ms;
        let mut dead: Vec<Sid> =
            self.sockets.iter().filter(|(_, s)| s.last_seen + alive <= now).map(|(k, _)| *k).collect();
        dead.sort();
        for sid in dead {
            if let Some(sock) = self.sockets.remove(&sid) {
                fx.push(Effect::Close { sid, code: close::ALIVE_TIMEOUT, reason: "alive timeout" });
                self.release(sid, sock.kind, true, &mut fx);
            }
        }
        for (unreachable, senders) in self.queues.expire(now, self.config.expire_timeout_ms) {
            for sender in senders {
                if let Some(reg) = self.registry.get(&sender) {
                    send(&mut fx, reg.sid, peerjs::expire_frame(&unreachable, &sender));
                }
            }
        }
        // The fired alarm is spent: compute the next one from scratch.
        self.alarm_at = None;
        self.rescan_alarm = true;
        self.finish(fx)
    }

    /// The storage write of a chat record failed: forget it and tell its sender.
    pub fn chat_not_stored(&mut self, record: &ChatRecord) -> Effects {
        self.chat.forget(record.id);
        let mut fx = Vec::new();
        if let Some(seat) = self.roster.get(&record.peer_id) {
            let sid = seat.sid;
            self.room_error(sid, ErrorCode::Internal, "the message could not be stored; try again", &mut fx);
        }
        fx
    }

    // ----- PeerJS ----------------------------------------------------------------------------

    fn peerjs_frame(&mut self, src: &str, text: &str, now: u64, fx: &mut Effects) {
        // Non-JSON, JSON that is not an object, or fields of the wrong type: ignored, socket kept
        // (peerjs-server logs and ignores them too).
        let Ok(msg) = serde_json::from_str::<Incoming>(text) else { return };
        let Some(kind) = msg.kind.as_deref() else { return };
        if kind == "HEARTBEAT" || !RELAYED.contains(&kind) {
            return; // liveness was already refreshed; other types are ignored
        }
        let dst = msg.dst.as_deref();
        let Some(dst) = dst.filter(|d| !d.is_empty()) else {
            // LEAVE without dst unregisters the sender (peerjs-server's removeClientById);
            // other frames without a destination are dropped.
            if kind == "LEAVE" {
                if let Some(reg) = self.registry.get(src) {
                    let sid = reg.sid;
                    let since = self.sockets.get_mut(&sid).map_or(now, |sock| {
                        sock.kind = Kind::Inert;
                        sock.since
                    });
                    fx.push(Effect::Attach { sid, attachment: Attachment { sid, since, role: Role::Retired } });
                    self.release(sid, Kind::PeerJs { id: src.to_owned() }, false, fx);
                }
            }
            return;
        };
        let frame = Outgoing { kind, src, dst, payload: msg.payload }.to_json();
        if let Some(reg) = self.registry.get(dst) {
            send(fx, reg.sid, frame);
        } else if kind != "LEAVE" && kind != "EXPIRE" {
            if let Some(deadline) = self.queues.push(dst, src, frame, now, self.config.expire_timeout_ms) {
                self.schedule(deadline, fx);
            }
        }
    }

    /// Drops what a closed (or timed-out, or unregistered) socket owned and tells the room.
    fn release(&mut self, sid: Sid, kind: Kind, timed_out: bool, fx: &mut Effects) {
        match kind {
            Kind::PeerJs { id } => {
                if self.registry.get(&id).is_some_and(|r| r.sid == sid) {
                    self.registry.remove(&id);
                    // A socket that closed keeps its inbound queue (a quick reload still gets
                    // the messages); one dropped as dead loses it, as in peerjs-server.
                    if timed_out {
                        self.queues.take(&id);
                    }
                    let reason = if timed_out { LeaveReason::Timeout } else { LeaveReason::Disconnected };
                    self.unseat(&id, reason, fx);
                }
            }
            Kind::Room { peer_id: Some(peer_id) } => {
                if self.roster.get(&peer_id).is_some_and(|s| s.sid == sid) {
                    self.roster.remove(&peer_id);
                    let reason = if timed_out { LeaveReason::Timeout } else { LeaveReason::Closed };
                    self.broadcast(&ServerFrame::PeerLeft { peer_id, reason }, None, fx);
                }
            }
            Kind::Room { peer_id: None } | Kind::Inert => {}
        }
    }

    /// A member whose PeerJS id is gone leaves the roster: nobody can call it any more.
    fn unseat(&mut self, peer_id: &str, reason: LeaveReason, fx: &mut Effects) {
        let Some(seat) = self.roster.remove(peer_id) else { return };
        if let Some(sock) = self.sockets.get_mut(&seat.sid) {
            sock.kind = Kind::Room { peer_id: None };
            send_frame(fx, seat.sid, &ServerFrame::Left { reason });
            fx.push(Effect::Attach {
                sid: seat.sid,
                attachment: Attachment { sid: seat.sid, since: sock.since, role: Role::Room { member: None } },
            });
        }
        self.broadcast(&ServerFrame::PeerLeft { peer_id: peer_id.to_owned(), reason }, None, fx);
    }

    // ----- room protocol ---------------------------------------------------------------------

    fn room_frame(&mut self, sid: Sid, text: &str, now: u64, fx: &mut Effects) {
        // One parse for a good frame; only a bad one is looked at again, to name what is wrong.
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                let (code, message) = classify_bad_frame(text, &e);
                return self.room_error(sid, code, message, fx);
            }
        };
        let joined = match self.sockets.get(&sid).map(|s| &s.kind) {
            Some(Kind::Room { peer_id }) => peer_id.clone(),
            _ => return,
        };
        match (frame, joined) {
            (ClientFrame::Heartbeat, _) => {}
            (ClientFrame::Join { .. }, Some(_)) => {
                self.room_error(sid, ErrorCode::AlreadyJoined, "this socket has already joined", fx)
            }
            (ClientFrame::Join { peer_id, token, name, media }, None) => {
                self.join(sid, peer_id, &token, &name, media.unwrap_or_default(), now, fx)
            }
            (_, None) => self.room_error(sid, ErrorCode::NotJoined, "send \"join\" first", fx),
            (ClientFrame::Chat { text }, Some(peer_id)) => self.chat(sid, &peer_id, &text, now, fx),
            (ClientFrame::Media(patch), Some(peer_id)) => {
                let Some(seat) = self.roster.get_mut(&peer_id) else { return };
                seat.member.media.apply(&patch);
                let member = seat.member.clone();
                self.attach_member(sid, Some(member.clone()), fx);
                self.broadcast(&ServerFrame::PeerMedia { peer_id, media: member.media }, None, fx);
            }
            (ClientFrame::Leave, Some(peer_id)) => {
                self.roster.remove(&peer_id);
                if let Some(sock) = self.sockets.get_mut(&sid) {
                    sock.kind = Kind::Room { peer_id: None };
                }
                self.attach_member(sid, None, fx);
                send_frame(fx, sid, &ServerFrame::Left { reason: LeaveReason::Leave });
                self.broadcast(&ServerFrame::PeerLeft { peer_id, reason: LeaveReason::Leave }, None, fx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        sid: Sid,
        peer_id: String,
        token: &str,
        name: &str,
        media: crate::protocol::MediaPatch,
        now: u64,
        fx: &mut Effects,
    ) {
        let name = match validate_name(name) {
            Ok(n) => n,
            Err(why) => return self.room_error(sid, ErrorCode::InvalidName, why, fx),
        };
        match self.registry.get(&peer_id) {
            None => {
                return self.room_error(
                    sid,
                    ErrorCode::UnknownPeer,
                    "that peer id is not connected to this room's PeerJS server",
                    fx,
                )
            }
            Some(reg) if reg.token != token => {
                return self.room_error(sid, ErrorCode::BadToken, "the token does not match that peer id", fx)
            }
            Some(_) => {}
        }
        // Re-joining with the same peer id from a new socket is a reconnect: the new socket takes
        // the seat and the old one is closed. The cap counts people, so it does not apply.
        if let Some(old) = self.roster.remove(&peer_id) {
            send_frame(fx, old.sid, &ServerFrame::Left { reason: LeaveReason::Replaced });
            self.sockets.remove(&old.sid);
            fx.push(Effect::Close { sid: old.sid, code: close::REPLACED, reason: "joined from another connection" });
        } else if self.roster.len() >= self.config.room_cap {
            let msg = format!("this room is full ({} people)", self.config.room_cap);
            return self.room_error(sid, ErrorCode::RoomFull, msg, fx);
        }
        let mut state = MediaState::default();
        state.apply(&media);
        let member = Member { peer_id: peer_id.clone(), name, media: state, joined_at: now };
        let mut seats: Vec<&Seat> = self.roster.values().collect();
        seats.sort_by_key(|s| (s.member.joined_at, s.order));
        let peers: Vec<Member> = seats.into_iter().map(|s| s.member.clone()).collect();
        self.joins += 1;
        self.roster.insert(peer_id.clone(), Seat { sid, member: member.clone(), order: self.joins });
        if let Some(sock) = self.sockets.get_mut(&sid) {
            sock.kind = Kind::Room { peer_id: Some(peer_id) };
        }
        self.attach_member(sid, Some(member.clone()), fx);
        let welcome = ServerFrame::Welcome {
            me: member.clone(),
            peers,
            chat: self.history_for_welcome(),
            ice_servers: self.config.ice_servers.clone(),
            limits: RoomLimits {
                max_peers: self.config.room_cap,
                chat_max_chars: CHAT_MAX_CHARS,
                name_max_chars: NAME_MAX_CHARS,
            },
        };
        send_frame(fx, sid, &welcome);
        self.broadcast(&ServerFrame::PeerJoined { peer: member }, Some(sid), fx);
    }

    /// The newest chat records whose JSON fits in [`WELCOME_CHAT_BUDGET`], oldest first, so a
    /// welcome frame stays far below the runtime's 1 MiB message limit even for 200 long messages.
    fn history_for_welcome(&self) -> Vec<ChatRecord> {
        let mut budget = WELCOME_CHAT_BUDGET;
        let mut out: Vec<ChatRecord> = Vec::new();
        for r in self.chat.recent().rev() {
            let size = r.text.len() * 2 + r.name.len() * 2 + r.peer_id.len() + 96;
            if size > budget {
                break;
            }
            budget -= size;
            out.push(r.clone());
        }
        out.reverse();
        out
    }

    fn chat(&mut self, sid: Sid, peer_id: &str, text: &str, now: u64, fx: &mut Effects) {
        if let Err(why) = validate_text(text) {
            return self.room_error(sid, ErrorCode::InvalidText, why, fx);
        }
        let Some(seat) = self.roster.get(peer_id) else { return };
        // The name comes from the roster, never from the frame: nobody can speak as someone else.
        let record = self.chat.append(peer_id, &seat.member.name.clone(), text, now);
        fx.push(Effect::PersistChat(record.clone()));
        self.broadcast(&ServerFrame::Chat { message: record }, None, fx);
    }

    fn attach_member(&self, sid: Sid, member: Option<Member>, fx: &mut Effects) {
        if let Some(sock) = self.sockets.get(&sid) {
            fx.push(Effect::Attach {
                sid,
                attachment: Attachment { sid, since: sock.since, role: Role::Room { member } },
            });
        }
    }

    fn room_error(&mut self, sid: Sid, code: ErrorCode, message: impl Into<String>, fx: &mut Effects) {
        send_frame(fx, sid, &ServerFrame::error(code, message));
    }

    /// Sends to every roster member (except `except`), serialising the frame once.
    fn broadcast(&self, frame: &ServerFrame, except: Option<Sid>, fx: &mut Effects) {
        let json: Rc<str> = frame.to_json().into();
        let mut sids: Vec<Sid> = self.roster.values().map(|s| s.sid).filter(|s| Some(*s) != except).collect();
        sids.sort(); // deterministic order for tests
        for to in sids {
            fx.push(Effect::Send { to, frame: json.clone() });
        }
    }

    // ----- alarm -----------------------------------------------------------------------------

    /// Asks for an alarm at `deadline` if none is due earlier. Deadlines only appear when a
    /// socket opens or a queue starts, so ordinary traffic never touches the alarm.
    fn schedule(&mut self, deadline: u64, fx: &mut Effects) {
        if self.alarm_at.is_none_or(|at| deadline < at) {
            self.alarm_at = Some(deadline);
            fx.push(Effect::SetAlarm { at_ms: deadline });
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        let alive = self.config.alive_timeout_ms;
        let sockets = self.sockets.values().map(|s| s.last_seen + alive).min();
        let queues = self.queues.next_deadline(self.config.expire_timeout_ms);
        sockets.into_iter().chain(queues).min()
    }

    fn finish(&mut self, mut fx: Effects) -> Effects {
        if !self.pending.is_empty() {
            let mut first = std::mem::take(&mut self.pending);
            first.append(&mut fx);
            fx = first;
        }
        if self.rescan_alarm {
            self.rescan_alarm = false;
            if let Some(at) = self.next_deadline() {
                self.alarm_at = None;
                self.schedule(at, &mut fx);
            }
        }
        fx
    }
}

/// Why a room frame did not parse: not JSON or not an object (`bad-json`), no known `type`
/// (`unknown-type`), or a known type with missing or mistyped fields (`bad-request`).
fn classify_bad_frame(text: &str, err: &serde_json::Error) -> (ErrorCode, String) {
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return (ErrorCode::BadJson, "frames must be JSON objects".into()),
        Err(_) => return (ErrorCode::BadJson, "frame is not valid JSON".into()),
    };
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some(kind) if ClientFrame::TYPES.contains(&kind) => (ErrorCode::BadRequest, format!("{kind}: {err}")),
        _ => (ErrorCode::UnknownType, "unknown or missing \"type\"".into()),
    }
}

/// Budget for chat history inside a `welcome` frame, in (estimated) bytes of JSON.
pub const WELCOME_CHAT_BUDGET: usize = 512 * 1024;

fn send(fx: &mut Effects, to: Sid, frame: String) {
    fx.push(Effect::Send { to, frame: frame.into() });
}

fn send_frame(fx: &mut Effects, to: Sid, frame: &ServerFrame) {
    send(fx, to, frame.to_json());
}
