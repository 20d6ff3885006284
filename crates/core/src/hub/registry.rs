//! The PeerJS half of the hub: which socket owns which peer id, relaying between them, and the
//! offline queues of ids that are not connected.

use super::{close_socket, send, Admission, Attachment, Effect, Effects, Hub, Role, Sid, SocketKind};
use crate::peerjs::{self, Incoming, MsgType, Outgoing};
use crate::protocol::LeaveReason;

/// A registered PeerJS id: the socket that owns it and the token that proved it.
#[derive(Debug)]
pub(super) struct Registration {
    pub sid: Sid,
    pub token: String,
}

impl Hub {
    /// A PeerJS socket asks to register `id` with `token` (its query already passed
    /// [`peerjs::check_params`]).
    pub fn on_peerjs_open(&mut self, sid: Sid, id: &str, token: &str, now: u64) -> Admission {
        let replaced = match self.registry.get(id) {
            Some(reg) if reg.token != token => return Admission::Refused { frame: peerjs::id_taken_frame() },
            // Same id, same token: the client reconnected before we saw its old socket close.
            // Unlike peerjs-server (peerjs#1289) the new socket gets OPEN, and the old one is
            // closed rather than left orphaned.
            Some(reg) => Some(reg.sid),
            None if self.registry.len() >= self.config.peerjs_limit => {
                return Admission::Refused { frame: peerjs::error_frame(peerjs::MSG_LIMIT) }
            }
            None => None,
        };
        let mut fx = Vec::new();
        if let Some(old) = replaced.and_then(|old| self.sockets.remove(&old).map(|s| (old, s.since))) {
            close_socket(&mut fx, old.0, old.1, super::close::REPLACED, "replaced by a new connection");
        }
        self.registry.insert(id.to_owned(), Registration { sid, token: token.to_owned() });
        self.add_socket(sid, SocketKind::PeerJs { id: id.to_owned() }, now, &mut fx);
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
        Admission::Accepted(self.finish(fx))
    }

    /// A registration found in an attachment after a wake-up; the newest socket wins a dispute.
    pub(super) fn restore_registration(&mut self, sid: Sid, id: String, token: String) -> SocketKind {
        if let Some(old) = self.registry.insert(id.clone(), Registration { sid, token }) {
            self.retire_silently(old.sid);
        }
        SocketKind::PeerJs { id }
    }

    pub(super) fn peerjs_frame(&mut self, src: &str, text: &str, now: u64, fx: &mut Effects) {
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
                self.leave_registry(src, now, fx);
            }
            return;
        };
        let frame = Outgoing { kind, src, dst, payload: msg.payload }.to_json();
        if let Some(reg) = self.registry.get(dst) {
            send(fx, reg.sid, frame);
        } else if kind.is_queued() {
            if let Some(deadline) = self.queues.push(dst, src, frame, now, self.config.expire_timeout_ms) {
                self.schedule(deadline, fx);
            }
        }
    }

    /// `src` sent LEAVE without `dst`: its socket stays open but owns nothing.
    fn leave_registry(&mut self, src: &str, now: u64, fx: &mut Effects) {
        let Some(sid) = self.registry.get(src).map(|r| r.sid) else { return };
        let since = self.sockets.get_mut(&sid).map_or(now, |sock| {
            sock.kind = SocketKind::Retired;
            sock.since
        });
        fx.push(Effect::Attach { sid, attachment: Attachment { sid, since, role: Role::Retired } });
        self.unregister(sid, src, false, fx);
    }

    /// Socket `sid` no longer owns `id` (closed, timed out, or left). A member whose PeerJS id is
    /// gone leaves the roster: nobody can call it any more.
    pub(super) fn unregister(&mut self, sid: Sid, id: &str, timed_out: bool, fx: &mut Effects) {
        if self.registry.get(id).is_none_or(|r| r.sid != sid) {
            return;
        }
        self.registry.remove(id);
        // A socket that closed keeps its inbound queue (a quick reload still gets the messages);
        // one dropped as dead loses it, as in peerjs-server.
        if timed_out {
            self.queues.take(id);
        }
        let reason = if timed_out { LeaveReason::Timeout } else { LeaveReason::Disconnected };
        self.unseat(id, reason, fx);
    }

    /// The EXPIRE of every queue whose first message is older than `EXPIRE_TIMEOUT_MS`: one per
    /// distinct sender still connected.
    pub(super) fn expire_queues(&mut self, now: u64, fx: &mut Effects) {
        for (unreachable, senders) in self.queues.expire(now, self.config.expire_timeout_ms) {
            for sender in senders {
                if let Some(reg) = self.registry.get(&sender) {
                    send(fx, reg.sid, peerjs::expire_frame(&unreachable, &sender));
                }
            }
        }
    }
}
