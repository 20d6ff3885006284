//! The room half of the hub: the roster (who is in the meeting, under which PeerJS id), chat and
//! media state, on room sockets.

use std::rc::Rc;

use super::registry::Registration;
use super::{close_socket, send, Attachment, Effect, Effects, Hub, SeatRecord, Sid, SocketKind};
use crate::limits::{validate_name, validate_text, CHAT_MAX_CHARS, NAME_MAX_CHARS};
use crate::protocol::{
    ChatRecord, ClientFrame, ErrorCode, LeaveReason, MediaPatch, MediaState, Member, Presence, RoomLimits, ServerFrame,
};

/// Budget for chat history inside a `welcome` frame, in (estimated) bytes of JSON: far below
/// the runtime's 1 MiB limit on a sent message even for 200 long messages.
pub const WELCOME_CHAT_BUDGET: usize = 512 * 1024;

/// One member's place in the roster. It belongs to the member, not to a socket: it outlives
/// its sockets by the grace period, and only the token that took it can take it back.
#[derive(Debug)]
pub(super) struct Seat {
    /// The room socket the member is connected on; `None` while it reconnects.
    pub sid: Option<Sid>,
    pub member: Member,
    /// Join order. `joined_at` ties within one millisecond (the Workers clock stands still
    /// during a burst of events), so `welcome.peers` is sorted by this as well.
    pub order: u64,
    /// Since when the member is reconnecting; the seat ends `grace_ms` later.
    pub away_since: Option<u64>,
}

impl Hub {
    /// Rebuilds the roster after a wake-up or a restart: the stored seats, each on the room
    /// socket whose attachment names it (its media there is the freshest). A seat missing a
    /// socket is reconnecting: since when storage says, else from `now`. A seat's PeerJS id with
    /// no socket stays reserved for its token.
    pub(super) fn restore_roster(
        &mut self,
        seats: Vec<SeatRecord>,
        mut on_socket: Vec<(String, Sid, Member)>,
        now: u64,
        fx: &mut Effects,
    ) {
        // Each seat keeps its stored join order, so the order they are restored in is immaterial.
        for rec in seats {
            let peer_id = rec.member.peer_id.clone();
            match self.registry.get(&peer_id) {
                Some(reg) if reg.token != rec.token => {
                    // Not reachable through the protocol (the id was reserved); keep the live one.
                    fx.push(Effect::DropSeat(peer_id));
                    continue;
                }
                Some(_) => {}
                None => {
                    let reg = Registration { sid: None, token: rec.token.clone(), since: now };
                    self.registry.insert(peer_id.clone(), reg);
                }
            }
            let (sid, member) = match on_socket.iter().position(|(id, _, _)| *id == peer_id) {
                Some(i) => {
                    let (_, sid, member) = on_socket.swap_remove(i);
                    (Some(sid), member)
                }
                None => (None, rec.member),
            };
            self.joins = self.joins.max(rec.order);
            // Its presence is settled below, from the sockets that are connected now.
            let seat = Seat { sid, member, order: rec.order, away_since: rec.away_since };
            self.roster.insert(peer_id, seat);
        }
        // A room socket whose seat storage does not know (written by a build that kept none):
        // seated if its PeerJS id is registered, so its token is known.
        for (peer_id, sid, member) in on_socket {
            match self.registry.get(&peer_id) {
                Some(_) => {
                    self.joins += 1;
                    let seat = Seat { sid: Some(sid), member, order: self.joins, away_since: None };
                    self.roster.insert(peer_id, seat);
                }
                None => {
                    if let Some(s) = self.sockets.get_mut(&sid) {
                        s.kind = SocketKind::Room { peer_id: None };
                    }
                }
            }
        }
        // Presence from what is connected now.
        let mut ids: Vec<String> = self.roster.keys().cloned().collect();
        ids.sort();
        for peer_id in ids {
            let connected = self.seat_connected(&peer_id);
            let Some(seat) = self.roster.get_mut(&peer_id) else { continue };
            match seat.away_since {
                // Away before the wake-up and still away: the room was told then, and its grace
                // period goes on from when it began (the alarm is recomputed after a restore).
                Some(_) if !connected => seat.member.presence = Presence::Reconnecting,
                _ => {
                    seat.member.presence = Presence::Present;
                    seat.away_since = None;
                    self.refresh_presence(&peer_id, now, fx);
                }
            }
        }
        // Sockets without a seat get what is left of their join window.
        if self.config.membership {
            let unseated: Vec<Sid> = self
                .sockets
                .iter()
                .filter(|(_, s)| match &s.kind {
                    SocketKind::Room { peer_id } => peer_id.is_none(),
                    SocketKind::PeerJs { id } => !self.roster.contains_key(id),
                    SocketKind::Retired => false,
                })
                .map(|(sid, _)| *sid)
                .collect();
            for sid in unseated {
                if let Some(s) = self.sockets.get_mut(&sid) {
                    s.unseated_since = Some(s.since);
                }
            }
        }
    }

    /// Recomputes a seat's presence from its sockets: present when both its room socket and its
    /// PeerJS socket are connected, reconnecting otherwise. A change is told to the others, and
    /// a member going away starts its grace period.
    pub(super) fn refresh_presence(&mut self, peer_id: &str, now: u64, fx: &mut Effects) {
        let want = if self.seat_connected(peer_id) { Presence::Present } else { Presence::Reconnecting };
        let Some(seat) = self.roster.get_mut(peer_id) else { return };
        if seat.member.presence == want {
            return;
        }
        seat.member.presence = want;
        seat.away_since = (want == Presence::Reconnecting).then_some(now);
        let (except, member, order, away_since) = (seat.sid, seat.member.clone(), seat.order, seat.away_since);
        if want == Presence::Reconnecting {
            self.schedule(now.saturating_add(self.config.grace_ms), fx);
        }
        // Storage keeps when the member went away (see `SeatRecord::away_since`).
        if let Some(token) = self.registry.get(peer_id).map(|r| r.token.clone()) {
            fx.push(Effect::SaveSeat(SeatRecord { member, token, order, away_since }));
        }
        let frame = ServerFrame::PeerPresence { peer_id: peer_id.to_owned(), presence: want };
        self.broadcast(&frame, except, fx);
    }

    /// Whether the seat of `peer_id` has both its room socket and its PeerJS socket connected.
    fn seat_connected(&self, peer_id: &str) -> bool {
        let pj_live = self.registry.get(peer_id).is_some_and(|r| r.sid.is_some());
        pj_live && self.roster.get(peer_id).is_some_and(|s| s.sid.is_some())
    }

    /// The room socket `sid` of member `peer_id` closed or timed out: the member reconnects.
    pub(super) fn room_socket_gone(&mut self, sid: Sid, peer_id: &str, now: u64, fx: &mut Effects) {
        let Some(seat) = self.roster.get_mut(peer_id).filter(|s| s.sid == Some(sid)) else { return };
        seat.sid = None;
        self.refresh_presence(peer_id, now, fx);
    }

    /// Ends every seat whose member stayed away the whole grace period.
    pub(super) fn end_expired_seats(&mut self, now: u64, fx: &mut Effects) {
        let grace = self.config.grace_ms;
        let mut due: Vec<String> = self
            .roster
            .iter()
            .filter(|(_, s)| s.away_since.is_some_and(|t| t.saturating_add(grace) <= now))
            .map(|(id, _)| id.clone())
            .collect();
        due.sort();
        for peer_id in due {
            self.end_seat(&peer_id, LeaveReason::Gone, now, fx);
        }
    }

    /// The seat of `peer_id` ends (`leave`, or the grace period ran out): the member hears
    /// `left`, everyone else `peer-left`, storage forgets it, and what is still connected of it
    /// has only the join window left.
    fn end_seat(&mut self, peer_id: &str, reason: LeaveReason, now: u64, fx: &mut Effects) {
        let Some(seat) = self.roster.remove(peer_id) else { return };
        fx.push(Effect::DropSeat(peer_id.to_owned()));
        if let Some(sid) = seat.sid {
            if let Some(sock) = self.sockets.get_mut(&sid) {
                sock.kind = SocketKind::Room { peer_id: None };
            }
            self.attach_member(sid, None, fx);
            send_frame(fx, sid, &ServerFrame::Left { reason });
            self.mark_unseated(sid, now, fx);
        }
        match self.registry.get(peer_id).map(|r| r.sid) {
            Some(Some(pj)) => self.mark_unseated(pj, now, fx),
            Some(None) => {
                self.registry.remove(peer_id);
            }
            None => {}
        }
        self.broadcast(&ServerFrame::PeerLeft { peer_id: peer_id.to_owned(), reason }, None, fx);
    }

    pub(super) fn room_frame(&mut self, sid: Sid, text: &str, now: u64, fx: &mut Effects) {
        // One parse for a good frame; only a bad one is looked at again, to name what is wrong.
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                let (code, message) = classify_bad_frame(text, &e);
                return self.room_error(sid, code, message, fx);
            }
        };
        let joined = match self.sockets.get(&sid).map(|s| &s.kind) {
            Some(SocketKind::Room { peer_id }) => peer_id.clone(),
            _ => return,
        };
        match (frame, joined) {
            (ClientFrame::Heartbeat, _) => {}
            (ClientFrame::Join { .. }, Some(_)) => {
                self.room_error(sid, ErrorCode::AlreadyJoined, "this socket has already joined", fx)
            }
            (ClientFrame::Join { peer_id, token, name, media }, None) => {
                self.join(sid, Joining { peer_id, token, name, media: media.unwrap_or_default() }, now, fx)
            }
            (_, None) => self.room_error(sid, ErrorCode::NotJoined, "send \"join\" first", fx),
            (ClientFrame::Chat { text }, Some(peer_id)) => self.chat(sid, &peer_id, &text, now, fx),
            (ClientFrame::Media(patch), Some(peer_id)) => self.media(sid, peer_id, &patch, fx),
            (ClientFrame::Leave, Some(peer_id)) => self.end_seat(&peer_id, LeaveReason::Leave, now, fx),
        }
    }

    fn join(&mut self, sid: Sid, j: Joining, now: u64, fx: &mut Effects) {
        let name = match validate_name(&j.name) {
            Ok(n) => n,
            Err(why) => return self.room_error(sid, ErrorCode::InvalidName, why, fx),
        };
        // The registration is live, or reserved for a seat whose member is reconnecting; either
        // way only its own token proves the id.
        match self.registry.get(&j.peer_id) {
            None => {
                let msg = "that peer id is not connected to this room's PeerJS server";
                return self.room_error(sid, ErrorCode::UnknownPeer, msg, fx);
            }
            Some(reg) if reg.token != j.token => {
                return self.room_error(sid, ErrorCode::BadToken, "the token does not match that peer id", fx)
            }
            Some(_) => {}
        }
        if self.roster.contains_key(&j.peer_id) {
            return self.resume(sid, j, now, fx);
        }
        if self.roster.len() >= self.config.room_cap {
            let msg = format!("this room is full ({} people)", self.config.room_cap);
            return self.room_error(sid, ErrorCode::RoomFull, msg, fx);
        }
        let mut state = MediaState::default();
        state.apply(&j.media);
        let member =
            Member { peer_id: j.peer_id.clone(), name, media: state, joined_at: now, presence: Presence::Present };
        let peers = self.members_except(None);
        self.joins += 1;
        let order = self.joins;
        let seat = Seat { sid: Some(sid), member: member.clone(), order, away_since: None };
        self.roster.insert(j.peer_id.clone(), seat);
        fx.push(Effect::SaveSeat(SeatRecord { member: member.clone(), token: j.token, order, away_since: None }));
        self.seat_sockets(sid, &j.peer_id);
        self.attach_member(sid, Some(member.clone()), fx);
        self.welcome(sid, member.clone(), peers, false, fx);
        self.broadcast(&ServerFrame::PeerJoined { peer: member }, Some(sid), fx);
    }

    /// A join for a seat this token still holds: the member's new room socket takes the seat
    /// back. Nothing is torn down: the others hear `peer-presence` (and `peer-media` if its
    /// media changed meanwhile), never `peer-left`/`peer-joined`, so their calls stay up.
    fn resume(&mut self, sid: Sid, j: Joining, now: u64, fx: &mut Effects) {
        let Some(seat) = self.roster.get_mut(&j.peer_id) else { return };
        let old = seat.sid.replace(sid).filter(|old| *old != sid);
        let before = seat.member.media;
        seat.member.media.apply(&j.media);
        let media = seat.member.media;
        if let Some(old) = old {
            // The same page's previous room socket, which the server had not yet seen close.
            send_frame(fx, old, &ServerFrame::Left { reason: LeaveReason::Replaced });
            if let Some(sock) = self.sockets.remove(&old) {
                close_socket(fx, old, sock.since, super::close::REPLACED, "joined from another connection");
            }
        }
        self.seat_sockets(sid, &j.peer_id);
        if media != before {
            let frame = ServerFrame::PeerMedia { peer_id: j.peer_id.clone(), media };
            self.broadcast(&frame, Some(sid), fx);
        }
        self.refresh_presence(&j.peer_id, now, fx);
        let Some(member) = self.roster.get(&j.peer_id).map(|s| s.member.clone()) else { return };
        self.attach_member(sid, Some(member.clone()), fx);
        let peers = self.members_except(Some(&j.peer_id));
        self.welcome(sid, member, peers, true, fx);
    }

    /// The room socket `sid` and the PeerJS socket of `peer_id` now belong to a seat.
    fn seat_sockets(&mut self, sid: Sid, peer_id: &str) {
        if let Some(sock) = self.sockets.get_mut(&sid) {
            sock.kind = SocketKind::Room { peer_id: Some(peer_id.to_owned()) };
        }
        self.mark_seated(sid);
        if let Some(pj) = self.registry.get(peer_id).and_then(|r| r.sid) {
            self.mark_seated(pj);
        }
    }

    /// Everyone seated but `except`, in join order.
    fn members_except(&self, except: Option<&str>) -> Vec<Member> {
        let mut seats: Vec<&Seat> =
            self.roster.values().filter(|s| Some(s.member.peer_id.as_str()) != except).collect();
        seats.sort_by_key(|s| (s.member.joined_at, s.order));
        seats.into_iter().map(|s| s.member.clone()).collect()
    }

    fn welcome(&mut self, sid: Sid, me: Member, peers: Vec<Member>, resumed: bool, fx: &mut Effects) {
        let welcome = ServerFrame::Welcome {
            me,
            peers,
            chat: self.history_for_welcome(),
            ice_servers: self.config.ice_servers.clone(),
            limits: RoomLimits {
                max_peers: self.config.room_cap,
                chat_max_chars: CHAT_MAX_CHARS,
                name_max_chars: NAME_MAX_CHARS,
            },
            resumed,
        };
        send_frame(fx, sid, &welcome);
    }

    /// The newest chat records whose JSON fits in [`WELCOME_CHAT_BUDGET`], oldest first.
    fn history_for_welcome(&mut self) -> Vec<ChatRecord> {
        let mut budget = WELCOME_CHAT_BUDGET;
        let mut out: Vec<ChatRecord> = Vec::new();
        for r in self.chat_log().recent().rev() {
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
        let Some(name) = self.roster.get(peer_id).map(|s| s.member.name.clone()) else { return };
        // The name comes from the roster, never from the frame: nobody can speak as someone else.
        let record = self.chat_log().append(peer_id, &name, text, now);
        self.storing.push(record.clone());
        fx.push(Effect::StoreChat(record));
    }

    /// The shell's report on an [`Effect::StoreChat`]: a stored record goes to everyone; one
    /// that could not be stored is forgotten (memory never shows what storage lacks) and its
    /// sender is told. The returned effects belong right after the `StoreChat`.
    pub fn chat_stored(&mut self, id: u64, stored: bool) -> Effects {
        let Some(i) = self.storing.iter().position(|r| r.id == id) else { return Vec::new() };
        let record = self.storing.remove(i);
        let mut fx = Vec::new();
        if stored {
            self.broadcast(&ServerFrame::Chat { message: record }, None, &mut fx);
        } else {
            self.chat_log().forget(id);
            if let Some(sid) = self.roster.get(&record.peer_id).and_then(|s| s.sid) {
                let msg = "the message could not be stored; try again";
                self.room_error(sid, ErrorCode::Internal, msg, &mut fx);
            }
        }
        fx
    }

    fn media(&mut self, sid: Sid, peer_id: String, patch: &MediaPatch, fx: &mut Effects) {
        let Some(seat) = self.roster.get_mut(&peer_id) else { return };
        seat.member.media.apply(patch);
        let member = seat.member.clone();
        let media = member.media;
        self.attach_member(sid, Some(member), fx);
        self.broadcast(&ServerFrame::PeerMedia { peer_id, media }, None, fx);
    }

    fn attach_member(&self, sid: Sid, member: Option<Member>, fx: &mut Effects) {
        if let Some(sock) = self.sockets.get(&sid) {
            let role = super::Role::Room { member };
            let attachment = Attachment { sid, since: sock.since, role, client: sock.client.clone() };
            fx.push(Effect::Attach { sid, attachment });
        }
    }

    pub(super) fn room_error(&self, sid: Sid, code: ErrorCode, message: impl Into<String>, fx: &mut Effects) {
        send_frame(fx, sid, &ServerFrame::error(code, message));
    }

    /// Sends to every roster member (except `except`), serialising the frame once.
    fn broadcast(&self, frame: &ServerFrame, except: Option<Sid>, fx: &mut Effects) {
        let json: Rc<str> = frame.to_json().into();
        let mut sids: Vec<Sid> = self.roster.values().filter_map(|s| s.sid).filter(|s| Some(*s) != except).collect();
        sids.sort(); // deterministic order for tests
        for to in sids {
            fx.push(Effect::Send { to, frame: json.clone() });
        }
    }
}

/// The fields of a `join` frame.
struct Joining {
    peer_id: String,
    token: String,
    name: String,
    media: MediaPatch,
}

/// Why a room frame did not parse: not JSON or not an object (`bad-json`), no known `type`
/// (`unknown-type`), or a known type with missing or mistyped fields (`bad-request`).
fn classify_bad_frame(text: &str, err: &serde_json::Error) -> (ErrorCode, String) {
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return (ErrorCode::BadJson, "frames must be JSON objects".into()),
        // Valid JSON whose number no f64 holds (`1e400`): the JSON is fine, the field is not.
        Err(e) if e.to_string().starts_with("number out of range") => {
            return (ErrorCode::BadRequest, "a number is out of range".into())
        }
        Err(_) => return (ErrorCode::BadJson, "frame is not valid JSON".into()),
    };
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some(kind) if ClientFrame::TYPES.contains(&kind) => (ErrorCode::BadRequest, format!("{kind}: {err}")),
        _ => (ErrorCode::UnknownType, "unknown or missing \"type\"".into()),
    }
}

fn send_frame(fx: &mut Effects, to: Sid, frame: &ServerFrame) {
    send(fx, to, frame.to_json());
}
