//! The PeerJS half of the hub: which socket owns which peer id, relaying between them, and the
//! offline queues of ids that are not connected.
//!
//! | situation | room (`membership`) | global `/peerjs` |
//! | --- | --- | --- |
//! | registry full, new id | the oldest id nobody is seated as is closed (4002) to make room | "concurrent user limit" ERROR |
//! | seated member's PeerJS socket closes | id reserved for its token until the seat ends | id freed |
//! | id registered but never seated | closed after `JOIN_WINDOW_MS` (4002) | lives while it heartbeats |
//! | OFFER/ANSWER/CANDIDATE/LEAVE | relayed only between two seated members; an OFFER from or to anyone else is EXPIREd | relayed to any id |
//! | frame for a known id without a socket | queued (bounded), delivered when it re-registers | queued (bounded) |
//! | frame dropped by a queue bound | EXPIRE to the sender | EXPIRE to the sender |

use super::{close, close_socket, send, Admission, Attachment, Effect, Effects, Hub, Role, Sid, SocketKind};
use crate::peerjs::{self, Incoming, MsgType, Outgoing};
use crate::queue::Pushed;

/// A registered PeerJS id: the socket that owns it (none while its seated member reconnects) and
/// the token that proved it.
#[derive(Debug)]
pub(super) struct Registration {
    pub sid: Option<Sid>,
    pub token: String,
    /// When the current socket registered it (eviction takes the oldest first).
    pub since: u64,
}

impl Hub {
    /// A PeerJS socket from `client` asks to register `id` with `token` (its query already
    /// passed [`peerjs::check_params`]).
    pub fn on_peerjs_open(&mut self, sid: Sid, id: &str, token: &str, client: &str, now: u64) -> Admission {
        if self.client_full(client) {
            return Admission::Refused { frame: peerjs::error_frame(peerjs::MSG_LIMIT) };
        }
        let mut fx = Vec::new();
        let replaced = match self.registry.get(id) {
            Some(reg) if reg.token != token => return Admission::Refused { frame: peerjs::id_taken_frame() },
            // Same id, same token: the client reconnected (or its reserved seat's id comes back).
            // Unlike peerjs-server (peerjs#1289) the new socket gets OPEN, and the old one is
            // closed rather than left orphaned.
            Some(reg) => reg.sid,
            None if self.registry.len() >= self.config.peerjs_limit => {
                // A room never lets ids that nobody is seated as crowd out a guest: the oldest
                // such id gives up its place. Seated ids (at most ROOM_CAP) are never evicted.
                match self.config.membership.then(|| self.oldest_unseated_id()).flatten() {
                    Some(victim) => self.close_unseated(victim, "the room needed this place", now, &mut fx),
                    None => return Admission::Refused { frame: peerjs::error_frame(peerjs::MSG_LIMIT) },
                }
                None
            }
            None => None,
        };
        if let Some(old) = replaced.and_then(|old| self.sockets.remove(&old).map(|s| (old, s.since))) {
            close_socket(&mut fx, old.0, old.1, close::REPLACED, "replaced by a new connection");
        }
        self.registry.insert(id.to_owned(), Registration { sid: Some(sid), token: token.to_owned(), since: now });
        self.add_socket(sid, SocketKind::PeerJs { id: id.to_owned() }, client, now, &mut fx);
        if !self.roster.contains_key(id) {
            self.mark_unseated(sid, now, &mut fx);
        }
        let role = Role::PeerJs { id: id.to_owned(), token: token.to_owned() };
        fx.push(Effect::Attach { sid, attachment: Attachment { sid, since: now, role, client: client.to_owned() } });
        send(&mut fx, sid, peerjs::open_frame());
        if let Some(queue) = self.queues.take(id) {
            for (_, frame) in queue.frames {
                send(&mut fx, sid, frame);
            }
        }
        self.refresh_presence(id, now, &mut fx);
        Admission::Accepted(self.finish(fx))
    }

    /// The PeerJS socket registered longest ago whose id nobody is seated as.
    fn oldest_unseated_id(&self) -> Option<Sid> {
        self.registry
            .iter()
            .filter(|(id, _)| !self.roster.contains_key(*id))
            .filter_map(|(id, r)| r.sid.map(|sid| (r.since, id, sid)))
            .min()
            .map(|(_, _, sid)| sid)
    }

    /// A registration found in an attachment after a wake-up; the newest socket wins a dispute.
    pub(super) fn restore_registration(&mut self, sid: Sid, id: String, token: String, since: u64) -> SocketKind {
        if let Some(old) = self.registry.insert(id.clone(), Registration { sid: Some(sid), token, since }) {
            if let Some(old) = old.sid {
                self.retire_silently(old);
            }
        }
        SocketKind::PeerJs { id }
    }

    pub(super) fn peerjs_frame(&mut self, sid: Sid, src: &str, text: &str, now: u64, fx: &mut Effects) {
        // Non-JSON, JSON that is not an object, or fields of the wrong type: ignored, socket kept
        // (peerjs-server logs and ignores them too).
        let Ok(msg) = serde_json::from_str::<Incoming>(text) else { return };
        let Some(kind) = msg.kind.as_deref().and_then(MsgType::parse).filter(|k| k.is_relayed()) else {
            return; // liveness was already refreshed; HEARTBEAT and other types are ignored
        };
        let Some(dst) = msg.dst.as_deref().filter(|d| !d.is_empty()) else {
            // LEAVE without dst unregisters the sender (peerjs-server's removeClientById);
            // other frames without a destination are dropped.
            if kind == MsgType::Leave {
                self.leave_registry(sid, src, now, fx);
            }
            return;
        };
        // The roster is the authority: in a room, media signalling flows only between two seated
        // members (reconnecting ones included). A caller that is not seated, or that calls
        // someone who is not, learns only that the call cannot be delivered.
        if self.config.membership && !(self.roster.contains_key(src) && self.roster.contains_key(dst)) {
            if kind == MsgType::Offer {
                send(fx, sid, peerjs::expire_frame(dst, src));
            }
            return;
        }
        let frame = Outgoing { kind, src, dst, payload: msg.payload }.to_json();
        match self.registry.get(dst).and_then(|r| r.sid) {
            Some(to) => send(fx, to, frame),
            None if kind.is_queued() => match self.queues.push(dst, src, frame, now, self.config.expire_timeout_ms) {
                Pushed::Queued(Some(deadline)) => self.schedule(deadline, fx),
                Pushed::Queued(None) => {}
                Pushed::Dropped => send(fx, sid, peerjs::expire_frame(dst, src)),
            },
            None => {}
        }
    }

    /// `src` sent LEAVE without `dst`: its socket stays open but owns nothing.
    fn leave_registry(&mut self, sid: Sid, src: &str, now: u64, fx: &mut Effects) {
        let (since, client) = self.sockets.get_mut(&sid).map_or((now, String::new()), |sock| {
            sock.kind = SocketKind::Retired;
            sock.unseated_since = None;
            (sock.since, sock.client.clone())
        });
        fx.push(Effect::Attach { sid, attachment: Attachment { sid, since, role: Role::Retired, client } });
        self.unregister(sid, src, false, now, fx);
    }

    /// Socket `sid` no longer owns `id` (closed, timed out, or left). A seated member's id stays
    /// reserved for its token, and the member is reconnecting; any other id is freed.
    pub(super) fn unregister(&mut self, sid: Sid, id: &str, timed_out: bool, now: u64, fx: &mut Effects) {
        let Some(reg) = self.registry.get_mut(id).filter(|r| r.sid == Some(sid)) else { return };
        if self.roster.contains_key(id) {
            reg.sid = None;
            self.refresh_presence(id, now, fx);
            return;
        }
        self.registry.remove(id);
        // A socket that closed keeps its inbound queue (a quick reload still gets the messages);
        // one dropped as dead loses it, as in peerjs-server.
        if timed_out {
            self.queues.take(id);
        }
    }

    /// The EXPIRE of every queue whose first message is older than `EXPIRE_TIMEOUT_MS`: one per
    /// distinct sender still connected.
    pub(super) fn expire_queues(&mut self, now: u64, fx: &mut Effects) {
        for (unreachable, senders) in self.queues.expire(now, self.config.expire_timeout_ms) {
            for sender in senders {
                if let Some(to) = self.registry.get(&sender).and_then(|r| r.sid) {
                    send(fx, to, peerjs::expire_frame(&unreachable, &sender));
                }
            }
        }
    }
}
