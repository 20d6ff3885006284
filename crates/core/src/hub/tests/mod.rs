//! Rule-by-rule tests of [`Hub`], the state machine of one room's Durable Object.
//!
//! Every test drives the hub through its public events and asserts the exact effects that come
//! out. Frames are built and parsed with the core's own types ([`ClientFrame`], [`ServerFrame`],
//! [`PeerJsFrame`]), so there is no second copy of either protocol to drift; where byte order
//! matters to the unmodified PeerJS client, the raw text is compared too.
//!
//! The hub is driven through [`Sim`], a fake shell that does what the Durable Object does with
//! the hub's answers (refused sockets, chat storage confirmed or failed, chat loaded lazily
//! before a room socket's first frame), so the tests exercise the paths production takes.
//!
//! Sid conventions: PeerJS sockets are 1..=99, room sockets 101..; tokens are `tok-<id>`.

mod chat;
mod join;
mod leave;
mod limits;
mod liveness;
mod membership;
mod registration;
mod relay;
mod restore;
mod robustness;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde_json::{json, Value};

use crate::hub::{close, Admission, Attachment, Effect, Effects, Hub, HubStats, Role, SeatRecord, Sid};
use crate::limits::{Config, Rate, CHAT_HISTORY, CHAT_MAX_CHARS, MAX_FRAME_BYTES, NAME_MAX_CHARS};
use crate::peerjs::{self, PeerJsFrame};
use crate::protocol::{
    ChatRecord, ClientFrame, ErrorCode, LeaveReason, MediaPatch, MediaState, Member, Presence, RoomLimits, ServerFrame,
};

/// The hub with a fake shell around it: it carries out what the Durable Object's shell would
/// between the hub's calls, and hands back each event's effects as they are carried out.
struct Sim {
    hub: Hub,
    /// What chat storage holds (oldest first).
    stored: Vec<ChatRecord>,
    /// What seat storage holds, by peer id.
    seats: BTreeMap<String, SeatRecord>,
    /// When set, chat writes fail.
    storage_fails: bool,
    /// The time of the latest event, for events the runtime delivers without one (a close).
    clock: u64,
}

impl Sim {
    fn new(config: Config) -> Sim {
        Sim { hub: Hub::new(config), stored: Vec::new(), seats: BTreeMap::new(), storage_fails: false, clock: 0 }
    }

    /// After hibernation: the sockets' attachments (with heartbeat times) and the chat in storage.
    fn restore(config: Config, sockets: Vec<(Attachment, Option<u64>)>, stored: Vec<ChatRecord>) -> Sim {
        Sim::restore_seats(config, sockets, stored, Vec::new(), 0)
    }

    /// After hibernation or a restart, with the seats storage kept, at `now`.
    fn restore_seats(
        config: Config,
        sockets: Vec<(Attachment, Option<u64>)>,
        stored: Vec<ChatRecord>,
        seats: Vec<SeatRecord>,
        now: u64,
    ) -> Sim {
        let kept = seats.iter().map(|s| (s.member.peer_id.clone(), s.clone())).collect();
        let hub = Hub::restore(config, sockets, seats, now);
        Sim { hub, stored, seats: kept, storage_fails: false, clock: now }
    }

    /// A refused socket is never accepted: the shell sends the refusal frame and closes it.
    fn on_peerjs_open(&mut self, sid: Sid, id: &str, token: &str, now: u64) -> Effects {
        self.on_peerjs_open_from(sid, id, token, "", now)
    }

    fn on_peerjs_open_from(&mut self, sid: Sid, id: &str, token: &str, client: &str, now: u64) -> Effects {
        self.clock = self.clock.max(now);
        match self.hub.on_peerjs_open(sid, id, token, client, now) {
            Admission::Accepted(fx) => self.carry_out(fx),
            Admission::Refused { frame } => {
                vec![send(sid, &frame), Effect::Close { sid, code: close::NORMAL, reason: "refused" }]
            }
        }
    }

    fn on_room_open(&mut self, sid: Sid, now: u64) -> Effects {
        self.on_room_open_from(sid, "", now)
    }

    /// A refused room socket gets an HTTP error instead of the upgrade: nothing to carry out.
    fn on_room_open_from(&mut self, sid: Sid, client: &str, now: u64) -> Effects {
        self.clock = self.clock.max(now);
        match self.hub.on_room_open(sid, client, now) {
            Admission::Accepted(fx) => self.carry_out(fx),
            Admission::Refused { .. } => vec![Effect::Close { sid, code: 429, reason: "refused" }],
        }
    }

    fn on_text(&mut self, sid: Sid, text: &str, now: u64) -> Effects {
        self.clock = self.clock.max(now);
        if self.hub.wants_chat(sid) {
            // Storage returns the newest first, as the shell's SELECT does.
            self.hub.load_chat(self.stored.iter().rev().cloned().collect());
        }
        let fx = self.hub.on_text(sid, text, now);
        self.carry_out(fx)
    }

    fn on_binary(&mut self, sid: Sid, len: usize, now: u64) -> Effects {
        self.clock = self.clock.max(now);
        let fx = self.hub.on_binary(sid, len, now);
        self.carry_out(fx)
    }

    fn on_close(&mut self, sid: Sid) -> Effects {
        let fx = self.hub.on_close(sid, self.clock);
        self.carry_out(fx)
    }

    fn on_alarm(&mut self, now: u64, heartbeats: &[(Sid, u64)]) -> Effects {
        self.clock = self.clock.max(now);
        let fx = self.hub.on_alarm(now, heartbeats);
        self.carry_out(fx)
    }

    fn stats(&self) -> HubStats {
        self.hub.stats()
    }

    fn peer_ids(&self) -> Vec<String> {
        self.hub.peer_ids()
    }

    /// Stores chat as the shell does, splicing the hub's answer in right after the request.
    fn carry_out(&mut self, fx: Effects) -> Effects {
        let mut out = Vec::with_capacity(fx.len());
        for e in fx {
            match &e {
                Effect::SaveSeat(rec) => {
                    self.seats.insert(rec.member.peer_id.clone(), rec.clone());
                }
                Effect::DropSeat(peer_id) => {
                    self.seats.remove(peer_id);
                }
                _ => {}
            }
            if let Effect::StoreChat(record) = &e {
                let ok = !self.storage_fails;
                if ok {
                    self.stored.push(record.clone());
                }
                let id = record.id;
                out.push(e);
                out.extend(self.hub.chat_stored(id, ok));
            } else {
                out.push(e);
            }
        }
        out
    }
}

// ===== helpers ===================================================================================

const ALIVE: u64 = 10_000;
const EXPIRE: u64 = 1_000;
const CAP: usize = 3;
const GRACE: u64 = 20_000;
const WINDOW: u64 = 15_000;
const UNLIMITED: Rate = Rate { per_sec: 0, burst: 0 };

/// Short timeouts, a small room, no rate limits (the rate tests set their own).
fn cfg() -> Config {
    Config {
        room_cap: CAP,
        peerjs_limit: 10,
        alive_timeout_ms: ALIVE,
        expire_timeout_ms: EXPIRE,
        room_rate: UNLIMITED,
        peerjs_rate: UNLIMITED,
        ice_servers: json!([{ "urls": "stun:stun.test:3478" }]),
        grace_ms: GRACE,
        join_window_ms: WINDOW,
        client_limit: 1000,
        membership: true,
    }
}

/// The global `/peerjs` server's rules: no rooms, so no membership.
fn global_cfg() -> Config {
    Config { membership: false, ..cfg() }
}

/// An attachment from an unknown client address.
fn att(sid: Sid, since: u64, role: Role) -> Attachment {
    Attachment { sid, since, role, client: String::new() }
}

fn tok(id: &str) -> String {
    format!("tok-{id}")
}

/// Raw text frames sent to `sid`, in order.
fn raw_to(fx: &[Effect], sid: Sid) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send { to, frame } if *to == sid => Some(frame.to_string()),
            _ => None,
        })
        .collect()
}

/// PeerJS frames sent to `sid`, parsed with the core's [`PeerJsFrame`].
fn pj_to(fx: &[Effect], sid: Sid) -> Vec<PeerJsFrame> {
    raw_to(fx, sid)
        .iter()
        .map(|f| serde_json::from_str(f).unwrap_or_else(|e| panic!("not a PeerJS frame: {f}: {e}")))
        .collect()
}

/// Room frames sent to `sid`, parsed with the core's [`ServerFrame`].
fn room_to(fx: &[Effect], sid: Sid) -> Vec<ServerFrame> {
    raw_to(fx, sid)
        .iter()
        .map(|f| serde_json::from_str(f).unwrap_or_else(|e| panic!("not a room frame: {f}: {e}")))
        .collect()
}

/// Every sid that was sent anything, in effect order (with repeats).
fn recipients(fx: &[Effect]) -> Vec<Sid> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

fn closes(fx: &[Effect]) -> Vec<(Sid, u16)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Close { sid, code, .. } => Some((*sid, *code)),
            _ => None,
        })
        .collect()
}

fn alarms(fx: &[Effect]) -> Vec<u64> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SetAlarm { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect()
}

fn attaches(fx: &[Effect]) -> Vec<(Sid, Attachment)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Attach { sid, attachment } => Some((*sid, attachment.clone())),
            _ => None,
        })
        .collect()
}

fn persisted(fx: &[Effect]) -> Vec<ChatRecord> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StoreChat(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn send(to: Sid, frame: &str) -> Effect {
    Effect::Send { to, frame: Rc::from(frame) }
}

/// The attachment the core stores for a socket it is about to close.
fn retire(sid: Sid, since: u64) -> Effect {
    Effect::Attach { sid, attachment: att(sid, since, Role::Retired) }
}

fn send_frame(to: Sid, frame: &ServerFrame) -> Effect {
    send(to, &frame.to_json())
}

fn open() -> String {
    peerjs::open_frame()
}

// ----- frame builders (the core's types, serialised) ---------------------------------------------

fn pjf(kind: &str, dst: Option<&str>, payload: Option<Value>) -> String {
    let f = PeerJsFrame { kind: kind.into(), src: None, dst: dst.map(Into::into), payload };
    serde_json::to_string(&f).unwrap()
}

fn offer(dst: &str, n: u64) -> String {
    pjf("OFFER", Some(dst), Some(json!({ "sdp": { "type": "offer", "sdp": "v=0" }, "type": "media", "n": n })))
}

/// What the server relays for `offer(dst, n)` from `src`.
fn relayed_offer(src: &str, dst: &str, n: u64) -> PeerJsFrame {
    PeerJsFrame {
        kind: "OFFER".into(),
        src: Some(src.into()),
        dst: Some(dst.into()),
        payload: Some(json!({ "sdp": { "type": "offer", "sdp": "v=0" }, "type": "media", "n": n })),
    }
}

fn expire_for(unreachable: &str, sender: &str) -> PeerJsFrame {
    PeerJsFrame { kind: "EXPIRE".into(), src: Some(unreachable.into()), dst: Some(sender.into()), payload: None }
}

fn cf(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).unwrap()
}

fn join_frame(peer_id: &str, token: &str, name: &str) -> String {
    cf(&ClientFrame::Join { peer_id: peer_id.into(), token: token.into(), name: name.into(), media: None })
}

fn chat_frame(text: &str) -> String {
    cf(&ClientFrame::Chat { text: text.into() })
}

fn media_frame(patch: MediaPatch) -> String {
    cf(&ClientFrame::Media(patch))
}

fn leave_frame() -> String {
    cf(&ClientFrame::Leave)
}

fn member(peer_id: &str, name: &str, joined_at: u64) -> Member {
    Member {
        peer_id: peer_id.into(),
        name: name.into(),
        media: MediaState::default(),
        joined_at,
        presence: Presence::Present,
    }
}

fn limits() -> RoomLimits {
    RoomLimits { max_peers: CAP, chat_max_chars: CHAT_MAX_CHARS, name_max_chars: NAME_MAX_CHARS }
}

fn err_code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Asserts `fx` is exactly one error frame to `sid` (nothing else, in particular no Close) and
/// returns its code.
#[track_caller]
fn only_error(fx: &[Effect], sid: Sid) -> ErrorCode {
    assert_eq!(fx.len(), 1, "expected exactly one error frame, got {fx:?}");
    assert_eq!(recipients(fx), vec![sid]);
    let frames = room_to(fx, sid);
    err_code(&frames[0]).unwrap_or_else(|| panic!("not an error frame: {:?}", frames[0]))
}

// ----- scenario helpers ------------------------------------------------------------------------

/// Registers PeerJS id `id` on `sid` with token `tok-<id>` and checks it got OPEN first.
#[track_caller]
fn peer(hub: &mut Sim, sid: Sid, id: &str, now: u64) -> Vec<Effect> {
    let fx = hub.on_peerjs_open(sid, id, &tok(id), now);
    assert_eq!(raw_to(&fx, sid).first(), Some(&open()), "{fx:?}");
    fx
}

/// Opens PeerJS socket `pj` for `id` and room socket `room`, and joins as `name`. Returns the
/// join's effects.
#[track_caller]
fn member_in(hub: &mut Sim, pj: Sid, room: Sid, id: &str, name: &str, now: u64) -> Vec<Effect> {
    peer(hub, pj, id, now);
    hub.on_room_open(room, now);
    let fx = hub.on_text(room, &join_frame(id, &tok(id), name), now);
    let frames = room_to(&fx, room);
    assert!(matches!(frames.as_slice(), [ServerFrame::Welcome { .. }]), "join of {id} failed: {frames:?}");
    fx
}

/// The runtime's side of attachments: what the shell would hand to [`Hub::restore`] after
/// hibernation.
#[derive(Default)]
struct Shell {
    att: BTreeMap<Sid, Attachment>,
}

impl Shell {
    fn apply(&mut self, fx: &[Effect]) {
        for e in fx {
            if let Effect::Attach { sid, attachment } = e {
                self.att.insert(*sid, attachment.clone());
            }
        }
    }

    /// The client closed the socket: the runtime no longer lists it.
    fn gone(&mut self, sid: Sid) {
        self.att.remove(&sid);
    }
}
