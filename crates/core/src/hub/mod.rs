//! The state machine of one Durable Object: its sockets, the PeerJS registry and offline
//! queues, the room roster and chat. Events go in (a socket opened, sent a frame, closed; the
//! alarm fired), [`Effect`]s come out for the shell to carry out. Nothing here touches
//! `worker`, so `cargo test` runs every rule natively.
//!
//! Two kinds of socket share one object, because joining the room must be proved against the
//! PeerJS registry of the same room:
//! - a **PeerJS socket** speaks the PeerJS server protocol and owns one peer id
//!   ([`registry`]: registration, relay, offline queues);
//! - a **room socket** speaks the room protocol ([`crate::protocol`]) and, once joined, is
//!   the roster entry of one PeerJS id it proved it owns by presenting that id's token
//!   ([`roster`]: join, chat, media, leave).
//!
//! A socket is not a person. A seated member whose socket drops without `leave` stays seated as
//! [`Presence::Reconnecting`] for the grace period (`GRACE_MS`): its PeerJS id stays reserved
//! for its own token, frames for it are queued, and when its sockets come back nothing is torn
//! down. In a room, the roster is the authority on who may exchange media: signalling is
//! relayed only between seated members, and sockets that never join live only the join window.
//!
//! This file holds what both halves share: the sockets, the per-frame checks (liveness, rate,
//! size), the per-client limit, the alarm, and the rebuild after hibernation.

mod effect;
mod registry;
mod roster;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde::Serialize;

pub use effect::{close, Admission, Attachment, Effect, Effects, Role, SeatRecord, Sid};

use crate::chat::ChatLog;
use crate::limits::{Config, Rate, TokenBucket, MAX_FRAME_BYTES};
use crate::protocol::{ChatRecord, ErrorCode, Presence};
use crate::queue::Queues;
use registry::Registration;
use roster::Seat;

/// What a socket is to the live hub (its attachment, [`Role`], also carries what the hub keeps
/// elsewhere: the token in the registry, the member in the roster).
#[derive(Debug, Clone, PartialEq)]
enum SocketKind {
    PeerJs { id: String },
    Room { peer_id: Option<String> },
    Retired,
}

#[derive(Debug)]
struct Socket {
    kind: SocketKind,
    since: u64,
    last_seen: u64,
    bucket: TokenBucket,
    /// True while frames are being dropped by the rate limit, so only the first gets an error.
    limited: bool,
    /// Over-limit frames received; at [`OVERSIZE_STRIKES`] the socket is closed with 1009.
    oversize: u8,
    /// The client's address (`CF-Connecting-IP`; empty if unknown).
    client: String,
    /// In a room: since when this socket has had no seat (an unjoined room socket, or a PeerJS
    /// socket whose id nobody is seated as). It is closed `join_window_ms` later.
    unseated_since: Option<u64>,
}

/// Over-limit frames a socket may send before it is closed (1009, "message too big"): one can be
/// a client's mistake, three in a row are a client that will not stop.
pub const OVERSIZE_STRIKES: u8 = 3;

/// What the per-frame checks decided about a frame.
enum Admit {
    /// Process it; the socket is of this kind.
    Process,
    /// Drop it (effects, if any, were already added).
    Drop,
}

/// Counts for the stats endpoint, tests and benchmarks.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HubStats {
    pub sockets: usize,
    pub registered: usize,
    pub members: usize,
    /// Seated members whose sockets are away (within the grace period).
    pub reconnecting: usize,
    pub queued: usize,
    pub queued_bytes: usize,
    pub chat: usize,
}

pub struct Hub {
    config: Config,
    sockets: HashMap<Sid, Socket>,
    registry: HashMap<String, Registration>,
    roster: HashMap<String, Seat>,
    queues: Queues,
    /// Chat history; `None` until the shell has loaded it from storage (see [`Hub::wants_chat`]).
    chat: Option<ChatLog>,
    /// Records asked to be stored ([`Effect::StoreChat`]) and not yet confirmed.
    storing: Vec<ChatRecord>,
    /// The alarm time the shell was last asked for; `None` if unknown or none pending.
    alarm_at: Option<u64>,
    /// Set after a restore: the next event recomputes the alarm from every deadline.
    rescan_alarm: bool,
    /// Last [`Seat::order`] handed out.
    joins: u64,
    /// Effects decided during a restore, sent ahead of the first event's own.
    pending: Effects,
}

impl Hub {
    pub fn new(config: Config) -> Self {
        Hub {
            config,
            sockets: HashMap::new(),
            registry: HashMap::new(),
            roster: HashMap::new(),
            queues: Queues::default(),
            chat: None,
            storing: Vec::new(),
            alarm_at: None,
            rescan_alarm: false,
            joins: 0,
            pending: Vec::new(),
        }
    }

    /// Rebuilds the object after hibernation or a restart from what survived: each open socket's
    /// attachment with the time the runtime last answered its heartbeat, and the seats in
    /// storage. A stored seat whose sockets are gone (a restart drops every socket) is
    /// reconnecting, its grace period running from when storage says its member went away, or
    /// from `now` if it was present. Chat is loaded
    /// later, when first needed ([`Hub::wants_chat`]). Offline queues are memory-only; they live
    /// ~5 s, and a lost one costs a sender its EXPIRE, not a message to a live peer.
    pub fn restore(config: Config, sockets: Vec<(Attachment, Option<u64>)>, seats: Vec<SeatRecord>, now: u64) -> Self {
        let mut hub = Hub::new(config);
        // Older connections first, so if two sockets ever claim one id the newest wins.
        let mut sockets = sockets;
        sockets.sort_by_key(|(a, _)| a.since);
        // (peer id, room socket, member) of every seat an attachment names; newest wins.
        let mut seated: Vec<(String, Sid, crate::protocol::Member)> = Vec::new();
        for (att, heartbeat) in sockets {
            let last_seen = heartbeat.unwrap_or(0).max(att.since);
            let kind = match att.role {
                Role::PeerJs { id, token } => hub.restore_registration(att.sid, id, token, att.since),
                Role::Room { member: Some(member) } => {
                    let peer_id = member.peer_id.clone();
                    if let Some(i) = seated.iter().position(|(id, _, _)| *id == peer_id) {
                        let (_, old, _) = seated.swap_remove(i);
                        hub.retire_silently(old);
                    }
                    seated.push((peer_id.clone(), att.sid, member));
                    SocketKind::Room { peer_id: Some(peer_id) }
                }
                Role::Room { member: None } => SocketKind::Room { peer_id: None },
                Role::Retired => SocketKind::Retired,
            };
            let rate = hub.rate_for(&kind);
            hub.sockets.insert(
                att.sid,
                Socket {
                    kind,
                    since: att.since,
                    last_seen,
                    bucket: TokenBucket::new(rate, last_seen),
                    limited: false,
                    oversize: 0,
                    client: att.client,
                    unseated_since: None,
                },
            );
        }
        let mut pending = Vec::new();
        hub.restore_roster(seats, seated, now, &mut pending);
        hub.pending = pending;
        hub.rescan_alarm = true;
        hub
    }

    /// A socket that an attachment of a newer socket displaced: it owns nothing any more.
    fn retire_silently(&mut self, sid: Sid) {
        if let Some(s) = self.sockets.get_mut(&sid) {
            s.kind = SocketKind::Retired;
        }
    }

    fn rate_for(&self, kind: &SocketKind) -> Rate {
        match kind {
            SocketKind::PeerJs { .. } => self.config.peerjs_rate,
            _ => self.config.room_rate,
        }
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
            reconnecting: self.roster.values().filter(|s| s.member.presence == Presence::Reconnecting).count(),
            queued: self.queues.len(),
            queued_bytes: self.queues.bytes(),
            chat: self.chat.as_ref().map_or(0, ChatLog::len),
        }
    }

    /// Whether the shell must call [`Hub::load_chat`] before handing over a frame of `sid`:
    /// chat is read from storage only when a room socket first speaks, so wake-ups for alarms
    /// and PeerJS relays never touch it.
    pub fn wants_chat(&self, sid: Sid) -> bool {
        self.chat.is_none() && matches!(self.sockets.get(&sid).map(|s| &s.kind), Some(SocketKind::Room { .. }))
    }

    /// Installs the stored chat history (newest first or oldest first; it is sorted by id).
    pub fn load_chat(&mut self, records: Vec<ChatRecord>) {
        self.chat = Some(ChatLog::restore(records));
    }

    /// The chat log, loading nothing: an object whose shell never loaded the history (no room
    /// socket spoke yet) starts one from empty, which only happens in a brand-new room.
    fn chat_log(&mut self) -> &mut ChatLog {
        self.chat.get_or_insert_with(ChatLog::default)
    }

    /// Registered PeerJS ids with a connected socket, for the discovery endpoint.
    pub fn peer_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.registry.iter().filter(|(_, r)| r.sid.is_some()).map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids
    }

    // ----- events ----------------------------------------------------------------------------

    /// A room socket asks to be accepted from `client` (its `CF-Connecting-IP`).
    pub fn on_room_open(&mut self, sid: Sid, client: &str, now: u64) -> Admission {
        if self.client_full(client) {
            return Admission::Refused { frame: "too many connections from your address".into() };
        }
        let mut fx = Vec::new();
        self.add_socket(sid, SocketKind::Room { peer_id: None }, client, now, &mut fx);
        self.mark_unseated(sid, now, &mut fx);
        let attachment = Attachment { sid, since: now, role: Role::Room { member: None }, client: client.to_owned() };
        fx.push(Effect::Attach { sid, attachment });
        Admission::Accepted(self.finish(fx))
    }

    /// Whether `client` already holds as many sockets as one client may. A scan rather than a
    /// count kept per address: it runs once per new socket, over at most a few thousand.
    fn client_full(&self, client: &str) -> bool {
        self.sockets.values().filter(|s| s.client == client).take(self.config.client_limit).count()
            >= self.config.client_limit
    }

    fn add_socket(&mut self, sid: Sid, kind: SocketKind, client: &str, now: u64, fx: &mut Effects) {
        let rate = self.rate_for(&kind);
        let socket = Socket {
            kind,
            since: now,
            last_seen: now,
            bucket: TokenBucket::new(rate, now),
            limited: false,
            oversize: 0,
            client: client.to_owned(),
            unseated_since: None,
        };
        self.sockets.insert(sid, socket);
        self.schedule(now.saturating_add(self.config.alive_timeout_ms), fx);
    }

    /// In a room, `sid` now has no seat: it may stay only the join window.
    fn mark_unseated(&mut self, sid: Sid, now: u64, fx: &mut Effects) {
        if !self.config.membership {
            return;
        }
        if let Some(s) = self.sockets.get_mut(&sid) {
            s.unseated_since = Some(now);
        }
        self.schedule(now.saturating_add(self.config.join_window_ms), fx);
    }

    fn mark_seated(&mut self, sid: Sid) {
        if let Some(s) = self.sockets.get_mut(&sid) {
            s.unseated_since = None;
        }
    }

    /// A binary frame of `len` bytes arrived. Neither protocol uses binary frames.
    pub fn on_binary(&mut self, sid: Sid, len: usize, now: u64) -> Effects {
        let mut fx = Vec::new();
        if let Admit::Process = self.admit(sid, len, now, &mut fx) {
            if self.is_room_socket(sid) {
                self.room_error(sid, ErrorCode::BinaryUnsupported, "binary frames are not supported", &mut fx);
            }
        }
        self.finish(fx)
    }

    /// A text frame arrived.
    pub fn on_text(&mut self, sid: Sid, text: &str, now: u64) -> Effects {
        let mut fx = Vec::new();
        if let Admit::Process = self.admit(sid, text.len(), now, &mut fx) {
            match self.sockets.get(&sid).map(|s| &s.kind) {
                Some(SocketKind::PeerJs { id }) => {
                    let id = id.clone();
                    self.peerjs_frame(sid, &id, text, now, &mut fx);
                }
                Some(SocketKind::Room { .. }) => self.room_frame(sid, text, now, &mut fx),
                _ => {}
            }
        }
        self.finish(fx)
    }

    /// A text frame the shell measured as over [`MAX_FRAME_BYTES`] without copying it (its
    /// UTF-16 length alone proves it): refused like any over-limit frame, never read.
    pub fn on_oversize(&mut self, sid: Sid, now: u64) -> Effects {
        let mut fx = Vec::new();
        self.admit(sid, usize::MAX, now, &mut fx);
        self.finish(fx)
    }

    fn is_room_socket(&self, sid: Sid) -> bool {
        matches!(self.sockets.get(&sid).map(|s| &s.kind), Some(SocketKind::Room { .. }))
    }

    /// Liveness, rate and size checks common to every frame, in that order: a frame refused by
    /// the rate limit costs nothing more.
    fn admit(&mut self, sid: Sid, len: usize, now: u64, fx: &mut Effects) -> Admit {
        let Some(sock) = self.sockets.get_mut(&sid) else { return Admit::Drop };
        sock.last_seen = sock.last_seen.max(now);
        let is_room = matches!(sock.kind, SocketKind::Room { .. });
        if sock.kind == SocketKind::Retired {
            return Admit::Drop;
        }
        if !sock.bucket.take(now) {
            let first = !sock.limited;
            sock.limited = true;
            if first && is_room {
                self.room_error(sid, ErrorCode::RateLimited, "too many messages; slow down", fx);
            }
            return Admit::Drop;
        }
        sock.limited = false;
        if len > MAX_FRAME_BYTES {
            sock.oversize = sock.oversize.saturating_add(1);
            let (strikes, since) = (sock.oversize, sock.since);
            if is_room {
                let msg = format!("frames are limited to {} KiB", MAX_FRAME_BYTES / 1024);
                self.room_error(sid, ErrorCode::FrameTooLarge, msg, fx);
            }
            if strikes >= OVERSIZE_STRIKES {
                if let Some(sock) = self.sockets.remove(&sid) {
                    close_socket(fx, sid, since, close::TOO_BIG, "frames over the size limit");
                    self.release(sid, sock.kind, false, now, fx);
                }
            }
            return Admit::Drop;
        }
        Admit::Process
    }

    /// A socket closed (client close, or error). Its state goes; nothing is sent to it. A
    /// member's socket closing is not the member leaving (see [`Presence::Reconnecting`]).
    pub fn on_close(&mut self, sid: Sid, now: u64) -> Effects {
        let mut fx = Vec::new();
        if let Some(sock) = self.sockets.remove(&sid) {
            self.release(sid, sock.kind, false, now, &mut fx);
        }
        self.finish(fx)
    }

    /// The alarm fired. `heartbeats` are the times the runtime last auto-answered a HEARTBEAT
    /// on each socket (those never reach [`Hub::on_text`]). In order: silent sockets are closed,
    /// sockets without a seat past the join window are closed, seats whose member stayed away
    /// the whole grace period end, and old offline queues are EXPIREd.
    pub fn on_alarm(&mut self, now: u64, heartbeats: &[(Sid, u64)]) -> Effects {
        let mut fx = Vec::new();
        for (sid, at) in heartbeats {
            if let Some(s) = self.sockets.get_mut(sid) {
                s.last_seen = s.last_seen.max(*at);
            }
        }
        let alive = self.config.alive_timeout_ms;
        let mut dead: Vec<Sid> =
            self.sockets.iter().filter(|(_, s)| s.last_seen.saturating_add(alive) <= now).map(|(k, _)| *k).collect();
        dead.sort();
        for sid in dead {
            if let Some(sock) = self.sockets.remove(&sid) {
                close_socket(&mut fx, sid, sock.since, close::ALIVE_TIMEOUT, "alive timeout");
                self.release(sid, sock.kind, true, now, &mut fx);
            }
        }
        let window = self.config.join_window_ms;
        let mut idle: Vec<Sid> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.unseated_since.is_some_and(|t| t.saturating_add(window) <= now))
            .map(|(k, _)| *k)
            .collect();
        idle.sort();
        for sid in idle {
            self.close_unseated(sid, "join window ended", now, &mut fx);
        }
        self.end_expired_seats(now, &mut fx);
        self.expire_queues(now, &mut fx);
        // The fired alarm is spent: compute the next one from scratch.
        self.alarm_at = None;
        self.rescan_alarm = true;
        self.finish(fx)
    }

    /// Closes a socket that has no seat (join window over, or its place was needed).
    fn close_unseated(&mut self, sid: Sid, reason: &'static str, now: u64, fx: &mut Effects) {
        if let Some(sock) = self.sockets.remove(&sid) {
            close_socket(fx, sid, sock.since, close::JOIN_WINDOW, reason);
            self.release(sid, sock.kind, false, now, fx);
        }
    }

    /// Drops what a closed (or timed-out, or unregistered) socket owned. A seated member's
    /// socket leaves the seat reconnecting; the seat itself ends only with `leave` or the grace
    /// period.
    fn release(&mut self, sid: Sid, kind: SocketKind, timed_out: bool, now: u64, fx: &mut Effects) {
        match kind {
            SocketKind::PeerJs { id } => self.unregister(sid, &id, timed_out, now, fx),
            SocketKind::Room { peer_id: Some(peer_id) } => self.room_socket_gone(sid, &peer_id, now, fx),
            SocketKind::Room { peer_id: None } | SocketKind::Retired => {}
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
        let sockets = self.sockets.values().map(|s| s.last_seen.saturating_add(alive)).min();
        let queues = self.queues.next_deadline(self.config.expire_timeout_ms);
        let window = self.config.join_window_ms;
        let unseated = self.sockets.values().filter_map(|s| s.unseated_since.map(|t| t.saturating_add(window))).min();
        let grace = self.config.grace_ms;
        let seats = self.roster.values().filter_map(|s| s.away_since.map(|t| t.saturating_add(grace))).min();
        sockets.into_iter().chain(queues).chain(unseated).chain(seats).min()
    }

    /// Every event's effects pass through here: effects decided during a restore go first, and
    /// after a restore or a fired alarm the next alarm is computed from every deadline.
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

fn send(fx: &mut Effects, to: Sid, frame: String) {
    fx.push(Effect::Send { to, frame: frame.into() });
}

/// Retires a socket's attachment, then closes it (see [`Effect::Close`]).
fn close_socket(fx: &mut Effects, sid: Sid, since: u64, code: u16, reason: &'static str) {
    let attachment = Attachment { sid, since, role: Role::Retired, client: String::new() };
    fx.push(Effect::Attach { sid, attachment });
    fx.push(Effect::Close { sid, code, reason });
}
