//! The room half of the hub: the roster (who is in the meeting, under which PeerJS id), chat and
//! media state, on room sockets.

use std::rc::Rc;

use super::{close_socket, send, Attachment, Effect, Effects, Hub, Sid, SocketKind};
use crate::limits::{validate_name, validate_text, CHAT_MAX_CHARS, NAME_MAX_CHARS};
use crate::protocol::{
    ChatRecord, ClientFrame, ErrorCode, LeaveReason, MediaPatch, MediaState, Member, RoomLimits, ServerFrame,
};

/// Budget for chat history inside a `welcome` frame, in (estimated) bytes of JSON: far below
/// the runtime's 1 MiB limit on a sent message even for 200 long messages.
pub const WELCOME_CHAT_BUDGET: usize = 512 * 1024;

/// One member's place in the roster.
#[derive(Debug)]
pub(super) struct Seat {
    /// The room socket the member joined on.
    pub sid: Sid,
    pub member: Member,
    /// Join order. `joined_at` ties within one millisecond (the Workers clock stands still
    /// during a burst of events), so `welcome.peers` is sorted by this as well.
    pub order: u64,
}

impl Hub {
    /// A seat found in a room socket's attachment after a wake-up; the newest socket wins.
    pub(super) fn restore_seat(&mut self, sid: Sid, member: Member) -> SocketKind {
        let peer_id = member.peer_id.clone();
        // Restored in connection order: the best join order left for equal `joined_at`.
        self.joins += 1;
        let order = self.joins;
        if let Some(old) = self.roster.insert(peer_id.clone(), Seat { sid, member, order }) {
            self.retire_silently(old.sid);
        }
        SocketKind::Room { peer_id: Some(peer_id) }
    }

    /// After a restore: a member whose PeerJS socket closed while the object slept (its close
    /// event may be lost with the eviction) is unreachable, so it leaves, and the room hears so
    /// with the first event after the wake-up.
    pub(super) fn unseat_orphans(&mut self, fx: &mut Effects) {
        let mut orphans: Vec<String> =
            self.roster.keys().filter(|p| !self.registry.contains_key(*p)).cloned().collect();
        orphans.sort();
        for peer_id in orphans {
            self.unseat(&peer_id, LeaveReason::Disconnected, fx);
        }
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
            (ClientFrame::Leave, Some(peer_id)) => {
                self.roster.remove(&peer_id);
                if let Some(sock) = self.sockets.get_mut(&sid) {
                    sock.kind = SocketKind::Room { peer_id: None };
                }
                self.attach_member(sid, None, fx);
                send_frame(fx, sid, &ServerFrame::Left { reason: LeaveReason::Leave });
                self.broadcast(&ServerFrame::PeerLeft { peer_id, reason: LeaveReason::Leave }, None, fx);
            }
        }
    }

    fn join(&mut self, sid: Sid, j: Joining, now: u64, fx: &mut Effects) {
        let name = match validate_name(&j.name) {
            Ok(n) => n,
            Err(why) => return self.room_error(sid, ErrorCode::InvalidName, why, fx),
        };
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
        // Re-joining with the same peer id from a new socket is a reconnect: the new socket takes
        // the seat and the old one is closed. The cap counts people, so it does not apply.
        if let Some(old) = self.roster.remove(&j.peer_id) {
            send_frame(fx, old.sid, &ServerFrame::Left { reason: LeaveReason::Replaced });
            if let Some(sock) = self.sockets.remove(&old.sid) {
                close_socket(fx, old.sid, sock.since, super::close::REPLACED, "joined from another connection");
            }
        } else if self.roster.len() >= self.config.room_cap {
            let msg = format!("this room is full ({} people)", self.config.room_cap);
            return self.room_error(sid, ErrorCode::RoomFull, msg, fx);
        }
        let mut state = MediaState::default();
        state.apply(&j.media);
        let member = Member { peer_id: j.peer_id.clone(), name, media: state, joined_at: now };
        let mut seats: Vec<&Seat> = self.roster.values().collect();
        seats.sort_by_key(|s| (s.member.joined_at, s.order));
        let peers: Vec<Member> = seats.into_iter().map(|s| s.member.clone()).collect();
        self.joins += 1;
        self.roster.insert(j.peer_id.clone(), Seat { sid, member: member.clone(), order: self.joins });
        if let Some(sock) = self.sockets.get_mut(&sid) {
            sock.kind = SocketKind::Room { peer_id: Some(j.peer_id) };
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
            if let Some(sid) = self.roster.get(&record.peer_id).map(|s| s.sid) {
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

    /// The room socket `sid` of member `peer_id` is gone (closed or timed out).
    pub(super) fn vacate(&mut self, sid: Sid, peer_id: &str, reason: LeaveReason, fx: &mut Effects) {
        if self.roster.get(peer_id).is_some_and(|s| s.sid == sid) {
            self.roster.remove(peer_id);
            self.broadcast(&ServerFrame::PeerLeft { peer_id: peer_id.to_owned(), reason }, None, fx);
        }
    }

    /// A member whose PeerJS id is gone leaves the roster; its room socket stays open, unjoined.
    pub(super) fn unseat(&mut self, peer_id: &str, reason: LeaveReason, fx: &mut Effects) {
        let Some(seat) = self.roster.remove(peer_id) else { return };
        if let Some(sock) = self.sockets.get_mut(&seat.sid) {
            sock.kind = SocketKind::Room { peer_id: None };
            send_frame(fx, seat.sid, &ServerFrame::Left { reason });
            self.attach_member(seat.sid, None, fx);
        }
        self.broadcast(&ServerFrame::PeerLeft { peer_id: peer_id.to_owned(), reason }, None, fx);
    }

    fn attach_member(&self, sid: Sid, member: Option<Member>, fx: &mut Effects) {
        if let Some(sock) = self.sockets.get(&sid) {
            let role = super::Role::Room { member };
            fx.push(Effect::Attach { sid, attachment: Attachment { sid, since: sock.since, role } });
        }
    }

    pub(super) fn room_error(&self, sid: Sid, code: ErrorCode, message: impl Into<String>, fx: &mut Effects) {
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
