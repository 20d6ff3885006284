//! Rule-by-rule tests of [`Hub`], the state machine of one room's Durable Object.
//!
//! Every test drives the hub through its public events and asserts the exact effects that come
//! out. Frames are built and parsed with the core's own types ([`ClientFrame`], [`ServerFrame`],
//! [`PeerJsFrame`]), so there is no second copy of either protocol to drift; where byte order
//! matters to the unmodified PeerJS client, the raw text is compared too.
//!
//! Sid conventions: PeerJS sockets are 1..=99, room sockets 101..; tokens are `tok-<id>`.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde_json::{json, Value};

use crate::hub::{close, Attachment, Effect, Hub, Role, Sid};
use crate::limits::{Config, Rate, CHAT_HISTORY, CHAT_MAX_CHARS, MAX_FRAME_BYTES, NAME_MAX_CHARS};
use crate::peerjs::{self, PeerJsFrame};
use crate::protocol::{
    ChatRecord, ClientFrame, ErrorCode, LeaveReason, MediaPatch, MediaState, Member, RoomLimits, ServerFrame,
};

// ===== helpers ===================================================================================

const ALIVE: u64 = 10_000;
const EXPIRE: u64 = 1_000;
const CAP: usize = 3;
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
    }
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
            Effect::PersistChat(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn send(to: Sid, frame: &str) -> Effect {
    Effect::Send { to, frame: Rc::from(frame) }
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
    Member { peer_id: peer_id.into(), name: name.into(), media: MediaState::default(), joined_at }
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
fn peer(hub: &mut Hub, sid: Sid, id: &str, now: u64) -> Vec<Effect> {
    let fx = hub.peerjs_opened(sid, id, &tok(id), now);
    assert_eq!(raw_to(&fx, sid).first(), Some(&open()), "{fx:?}");
    fx
}

/// Opens PeerJS socket `pj` for `id` and room socket `room`, and joins as `name`. Returns the
/// join's effects.
#[track_caller]
fn member_in(hub: &mut Hub, pj: Sid, room: Sid, id: &str, name: &str, now: u64) -> Vec<Effect> {
    peer(hub, pj, id, now);
    hub.room_opened(room, now);
    let fx = hub.text(room, &join_frame(id, &tok(id), name), now);
    let frames = room_to(&fx, room);
    assert!(matches!(frames.as_slice(), [ServerFrame::Welcome { .. }]), "join of {id} failed: {frames:?}");
    fx
}

/// The shell's side of attachments: what it would hand to [`Hub::restore`] after hibernation.
#[derive(Default)]
struct Shell {
    att: BTreeMap<Sid, Attachment>,
}

impl Shell {
    fn apply(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::Attach { sid, attachment } => {
                    self.att.insert(*sid, attachment.clone());
                }
                // The shell marks every socket the server closes as Retired.
                Effect::Close { sid, .. } => {
                    if let Some(a) = self.att.get_mut(sid) {
                        a.role = Role::Retired;
                    }
                }
                _ => {}
            }
        }
    }

    /// The client closed the socket: the runtime no longer lists it.
    fn gone(&mut self, sid: Sid) {
        self.att.remove(&sid);
    }
}

// ===== PeerJS: registration (rules 1–4) ===========================================================
// The unmodified peerjs client only fires `open` on {"type":"OPEN"}, and must get it before any
// relayed frame; registration decides who may call whom.

#[test]
fn r1_new_id_gets_attach_then_exactly_open() {
    let mut hub = Hub::new(cfg());
    let fx = hub.peerjs_opened(1, "a", "tok-a", 0);
    assert_eq!(
        fx,
        vec![
            Effect::SetAlarm { at_ms: ALIVE },
            Effect::Attach {
                sid: 1,
                attachment: Attachment {
                    sid: 1,
                    since: 0,
                    role: Role::PeerJs { id: "a".into(), token: "tok-a".into() }
                }
            },
            send(1, r#"{"type":"OPEN"}"#),
        ]
    );
    // A second registration needs no earlier alarm.
    let fx = hub.peerjs_opened(2, "b", "tok-b", 5);
    assert_eq!(alarms(&fx), Vec::<u64>::new());
    assert_eq!(raw_to(&fx, 2), vec![open()]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn r1_queued_frames_follow_open_in_fifo_order() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "b", 0);
    // Sent raw, with the client's own key order: the payload must be relayed byte for byte.
    hub.text(
        1,
        r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0"},"type":"media","n":1},"dst":"a"}"#,
        10,
    );
    hub.text(1, &pjf("CANDIDATE", Some("a"), Some(json!({ "c": 1 }))), 11);
    hub.text(1, &pjf("CANDIDATE", Some("a"), Some(json!({ "c": 2 }))), 12);
    assert_eq!(hub.stats().queued, 3);

    let fx = hub.peerjs_opened(2, "a", "tok-a", 20);
    let attach_at = fx.iter().position(|e| matches!(e, Effect::Attach { sid: 2, .. })).unwrap();
    let open_at = fx.iter().position(|e| matches!(e, Effect::Send { to: 2, .. })).unwrap();
    assert!(attach_at < open_at, "Attach must precede OPEN: {fx:?}");
    assert_eq!(
        raw_to(&fx, 2),
        vec![
            open(),
            r#"{"type":"OFFER","src":"b","dst":"a","payload":{"sdp":{"type":"offer","sdp":"v=0"},"type":"media","n":1}}"#
                .to_string(),
            r#"{"type":"CANDIDATE","src":"b","dst":"a","payload":{"c":1}}"#.to_string(),
            r#"{"type":"CANDIDATE","src":"b","dst":"a","payload":{"c":2}}"#.to_string(),
        ]
    );
    assert_eq!(recipients(&fx), vec![2, 2, 2, 2], "nothing goes to the sender");
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn r2_id_held_with_another_token_is_taken_and_holder_unaffected() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.peerjs_opened(3, "a", "other", 10);
    assert_eq!(
        fx,
        vec![
            send(3, r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#),
            Effect::Close { sid: 3, code: close::NORMAL, reason: "ID is taken" },
        ]
    );
    // The refused socket owns nothing: its frames and its close change nothing.
    assert_eq!(hub.text(3, &offer("b", 1), 11), vec![]);
    assert_eq!(hub.closed(3, 12), vec![]);
    // The holder still owns "a": frames to "a" reach sid 1, and it can still send.
    let fx = hub.text(2, &offer("a", 2), 13);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("b", "a", 2)]);
    let fx = hub.text(1, &offer("b", 3), 14);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 3)]);
    assert_eq!(hub.stats().registered, 2);
}

#[test]
fn r3_same_token_reattach_gets_open_and_closes_old_socket() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.peerjs_opened(3, "a", "tok-a", 100);
    assert_eq!(
        fx,
        vec![
            Effect::Close { sid: 1, code: close::REPLACED, reason: "replaced by a new connection" },
            Effect::Attach {
                sid: 3,
                attachment: Attachment {
                    sid: 3,
                    since: 100,
                    role: Role::PeerJs { id: "a".into(), token: "tok-a".into() }
                }
            },
            send(3, r#"{"type":"OPEN"}"#),
        ]
    );
    // The old socket's own close must not unregister the id now held by sid 3.
    assert_eq!(hub.closed(1, 101), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
    // Traffic for "a" goes to the new socket only; the old one is dead to the hub.
    let fx = hub.text(2, &offer("a", 7), 102);
    assert_eq!(recipients(&fx), vec![3]);
    assert_eq!(pj_to(&fx, 3), vec![relayed_offer("b", "a", 7)]);
    assert_eq!(hub.text(1, &offer("b", 8), 103), vec![]);
    // Another token is still refused.
    let fx = hub.peerjs_opened(4, "a", "evil", 104);
    assert_eq!(closes(&fx), vec![(4, close::NORMAL)]);
}

#[test]
fn r3_reattach_keeps_the_room_seat() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.peerjs_opened(3, "a", "tok-a", 10);
    assert_eq!(recipients(&fx), vec![3], "no roster traffic on a PeerJS re-attach: {fx:?}");
    assert_eq!(hub.closed(1, 11), vec![]);
    assert_eq!(hub.stats().members, 2);
    // "a" is still in the room and can chat.
    let fx = hub.text(101, &chat_frame("still here"), 12);
    assert_eq!(recipients(&fx), vec![101, 102]);
}

#[test]
fn r3_queue_for_an_id_is_replayed_on_the_connection_that_registers_it() {
    // A queue only exists while its id is unregistered; the connection that (re)registers the id
    // after a close gets it, whether it is a new token or the same one.
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.closed(1, 10);
    hub.text(2, &offer("a", 1), 20);
    let fx = hub.peerjs_opened(3, "a", "tok-a", 30);
    assert_eq!(pj_to(&fx, 3)[1..], [relayed_offer("b", "a", 1)]);
}

#[test]
fn r4_registry_limit_refuses_new_ids_but_not_reattach() {
    let mut hub = Hub::new(Config { peerjs_limit: 2, ..cfg() });
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.peerjs_opened(3, "c", "tok-c", 1);
    assert_eq!(
        fx,
        vec![
            send(3, r#"{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}"#),
            Effect::Close { sid: 3, code: close::NORMAL, reason: peerjs::MSG_LIMIT },
        ]
    );
    assert_eq!(hub.stats().registered, 2);
    // Re-attach at the limit is allowed: it does not add an id.
    let fx = hub.peerjs_opened(4, "a", "tok-a", 2);
    assert_eq!(raw_to(&fx, 4), vec![open()]);
    assert_eq!(closes(&fx), vec![(1, close::REPLACED)]);
    // ID-TAKEN wins over the limit for a held id (peerjs-server checks the registry first).
    let fx = hub.peerjs_opened(5, "b", "other", 3);
    assert_eq!(raw_to(&fx, 5), vec![peerjs::id_taken_frame()]);
    // Once someone leaves, a new id fits again.
    hub.closed(2, 4);
    let fx = hub.peerjs_opened(6, "c", "tok-c", 5);
    assert_eq!(raw_to(&fx, 6), vec![open()]);
}

#[test]
fn r5_check_params_frames_are_the_peerjs_server_strings() {
    let keys = vec!["peerjs".to_string()];
    assert_eq!(
        peerjs::check_params(Some("peerjs"), None, Some("t"), &keys),
        Err(r#"{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}}"#.to_string())
    );
    assert_eq!(
        peerjs::check_params(Some("nope"), Some("a"), Some("t"), &keys),
        Err(r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#.to_string())
    );
    assert_eq!(peerjs::check_params(Some("peerjs"), Some("a"), Some("t"), &keys), Ok(()));
}

// ===== PeerJS: relay (rules 6–7) =================================================================
// The server is the only authority on `src`: peers trust it to know who is calling.

#[test]
fn r6_relays_every_relayed_type_with_src_from_the_registry() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    for kind in ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"] {
        let text =
            format!(r#"{{"type":"{kind}","payload":{{"x":[1,"two",null]}},"dst":"b","src":"mallory","extra":true}}"#);
        let fx = hub.text(1, &text, 10);
        assert_eq!(
            fx,
            vec![send(2, &format!(r#"{{"type":"{kind}","src":"a","dst":"b","payload":{{"x":[1,"two",null]}}}}"#))],
            "{kind}"
        );
    }
}

#[test]
fn r6_payload_omitted_when_absent_and_self_relay_works() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.text(1, r#"{"type":"LEAVE","dst":"b"}"#, 1);
    assert_eq!(fx, vec![send(2, r#"{"type":"LEAVE","src":"a","dst":"b"}"#)]);
    let fx = hub.text(1, &offer("a", 9), 2);
    assert_eq!(recipients(&fx), vec![1]);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("a", "a", 9)]);
    // Escaped strings in dst are decoded before lookup.
    let fx = hub.text(1, r#"{"type":"ANSWER","dst":"\u0062","payload":{}}"#, 3);
    assert_eq!(fx, vec![send(2, r#"{"type":"ANSWER","src":"a","dst":"b","payload":{}}"#)]);
}

#[test]
fn r7_ignored_frames_send_nothing_and_keep_the_socket() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let junk = [
        r#"{"type":"HEARTBEAT"}"#,
        r#"{"type":"HEARTBEAT","dst":"b"}"#,
        r#"{"type":"OPEN","dst":"b"}"#,
        r#"{"type":"ERROR","dst":"b","payload":{}}"#,
        r#"{"type":"ID-TAKEN","dst":"b"}"#,
        r#"{"type":"offer","dst":"b"}"#,
        r#"{"type":"DANCE","dst":"b"}"#,
        r#"{"dst":"b","payload":{}}"#,
        r#"{"type":"OFFER"}"#,
        r#"{"type":"OFFER","dst":""}"#,
        r#"{"type":"OFFER","dst":null}"#,
        r#"{"type":5,"dst":"b"}"#,
        r#"{"type":"OFFER","dst":7}"#,
        r#"{"type":["OFFER"],"dst":"b"}"#,
        "not json",
        r#"{"type":"OFFER","dst":"b""#,
        "",
        "[1,2,3]",
        r#"[{"type":"OFFER","dst":"b"}]"#,
        "42",
        "null",
        "true",
        r#""OFFER""#,
    ];
    for (i, j) in junk.iter().enumerate() {
        assert_eq!(hub.text(1, j, 1 + i as u64), vec![], "{j}");
    }
    assert_eq!(hub.binary(1, 10, 100), vec![], "binary frames are ignored on PeerJS sockets");
    // Still registered, still relaying, nothing queued.
    assert_eq!(hub.stats().queued, 0);
    let fx = hub.text(1, &offer("b", 1), 200);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 1)]);
}

// ===== PeerJS: offline queues and EXPIRE (rule 8) ===================================================
// EXPIRE is the only way a peerjs client learns that an id is unknown ("peer-unavailable").

#[test]
fn r8_unknown_dst_is_queued_with_one_alarm_at_first_message_plus_expire() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    assert_eq!(hub.text(1, &offer("ghost", 1), 100), vec![Effect::SetAlarm { at_ms: 100 + EXPIRE }]);
    assert_eq!(hub.text(1, &offer("ghost", 2), 200), vec![], "a second message starts no alarm");
    assert_eq!(hub.text(1, &offer("ghost2", 3), 300), vec![], "a later deadline needs no new alarm");
    assert_eq!(hub.stats().queued, 3);
    // LEAVE and EXPIRE are never queued.
    assert_eq!(hub.text(1, r#"{"type":"LEAVE","dst":"ghost3"}"#, 301), vec![]);
    assert_eq!(hub.text(1, r#"{"type":"EXPIRE","dst":"ghost3"}"#, 302), vec![]);
    assert_eq!(hub.stats().queued, 3);

    // Early alarm: nothing sent, the alarm is re-armed for the same deadline.
    let fx = hub.alarm(100 + EXPIRE - 1, &[]);
    assert_eq!(fx, vec![Effect::SetAlarm { at_ms: 100 + EXPIRE }]);
    // At the deadline: one EXPIRE for "ghost" (two messages, one sender), queue gone.
    let fx = hub.alarm(100 + EXPIRE, &[]);
    assert_eq!(
        fx,
        vec![send(1, r#"{"type":"EXPIRE","src":"ghost","dst":"a"}"#), Effect::SetAlarm { at_ms: 300 + EXPIRE }]
    );
    assert_eq!(hub.stats().queued, 1);
    let fx = hub.alarm(300 + EXPIRE + 50, &[]);
    assert_eq!(pj_to(&fx, 1), vec![expire_for("ghost2", "a")]);
    assert_eq!(hub.stats().queued, 0);
    // Nothing is left to expire.
    let fx = hub.alarm(300 + EXPIRE + 60, &[]);
    assert_eq!(recipients(&fx), Vec::<Sid>::new());
}

#[test]
fn r8_one_expire_per_distinct_sender_and_none_to_departed_senders() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    peer(&mut hub, 3, "c", 0);
    hub.text(1, &offer("ghost", 1), 10);
    hub.text(2, &offer("ghost", 2), 11);
    hub.text(1, &offer("ghost", 3), 12);
    hub.text(3, &offer("ghost", 4), 13);
    hub.closed(3, 14); // "c" will not get its EXPIRE
    let fx = hub.alarm(10 + EXPIRE, &[]);
    assert_eq!(recipients(&fx), vec![1, 2]);
    assert_eq!(pj_to(&fx, 1), vec![expire_for("ghost", "a")]);
    assert_eq!(pj_to(&fx, 2), vec![expire_for("ghost", "b")]);
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn r8_expire_goes_to_the_senders_current_socket() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    hub.text(1, &offer("ghost", 1), 10);
    hub.peerjs_opened(2, "a", "tok-a", 20); // re-attach
    let fx = hub.alarm(10 + EXPIRE, &[]);
    assert_eq!(recipients(&fx), vec![2]);
}

#[test]
fn r8_dst_registering_before_expiry_gets_frames_and_no_expire_follows() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    hub.text(1, &offer("b", 1), 100);
    hub.text(1, &offer("b", 2), 150);
    let fx = hub.peerjs_opened(2, "b", "tok-b", 100 + EXPIRE - 1);
    assert_eq!(pj_to(&fx, 2)[1..], [relayed_offer("a", "b", 1), relayed_offer("a", "b", 2)]);
    for t in [100 + EXPIRE, 100 + EXPIRE * 5] {
        let fx = hub.alarm(t, &[(1, t), (2, t)]);
        assert_eq!(recipients(&fx), Vec::<Sid>::new(), "no EXPIRE after delivery");
    }
}

// ===== PeerJS: LEAVE without dst, close, alive timeout (rules 9–11) ================================

#[test]
fn r9_leave_without_dst_unregisters_without_closing() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.text(1, r#"{"type":"LEAVE"}"#, 50);
    assert_eq!(fx, vec![Effect::Attach { sid: 1, attachment: Attachment { sid: 1, since: 0, role: Role::Retired } }]);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    // The socket stays open but owns nothing: its frames are ignored.
    assert_eq!(hub.text(1, &offer("b", 1), 51), vec![]);
    // Frames to "a" are queued now, and a new token can take the id.
    hub.text(2, &offer("a", 2), 52);
    let fx = hub.peerjs_opened(3, "a", "new-token", 53);
    assert_eq!(pj_to(&fx, 3)[1..], [relayed_offer("b", "a", 2)]);
    // The retired socket's close changes nothing.
    assert_eq!(hub.closed(1, 54), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
    // An empty dst counts as none, as in peerjs-server (`!dst`).
    let fx = hub.text(3, r#"{"type":"LEAVE","dst":""}"#, 55);
    assert_eq!(attaches(&fx)[0].1.role, Role::Retired);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
}

#[test]
fn r10_close_unregisters_at_once_and_reconnect_gets_the_queue() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(hub.closed(1, 10), vec![], "no LEAVE is broadcast on close");
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    assert_eq!(hub.text(2, &offer("a", 1), 20), vec![Effect::SetAlarm { at_ms: 20 + EXPIRE }]);
    // A reload (new token) within the expire timeout gets what was sent meanwhile.
    let fx = hub.peerjs_opened(3, "a", "reloaded", 20 + EXPIRE - 1);
    assert_eq!(
        pj_to(&fx, 3),
        vec![PeerJsFrame { kind: "OPEN".into(), src: None, dst: None, payload: None }, relayed_offer("b", "a", 1)]
    );
}

#[test]
fn r10_alive_timeout_closes_4001_and_clears_the_queue() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.text(2, &offer("ghost", 1), ALIVE - 500);
    // Only "a" is silent for ALIVE ms.
    let fx = hub.alarm(ALIVE, &[]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    assert_eq!(fx[0], Effect::Close { sid: 1, code: close::ALIVE_TIMEOUT, reason: "alive timeout" });
    assert_eq!(recipients(&fx), Vec::<Sid>::new(), "no frame before the close");
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    // Its late close event is a no-op.
    assert_eq!(hub.closed(1, ALIVE + 1), vec![]);
    // A new socket may take the id, and gets only OPEN.
    let fx = hub.peerjs_opened(3, "a", "x", ALIVE + 2);
    assert_eq!(raw_to(&fx, 3), vec![open()]);
}

#[test]
fn r10_alive_timeout_of_a_dst_drops_its_queue_after_expiry_deadline() {
    // Messages to an id whose socket timed out are queued afresh and expire normally.
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 5);
    let fx = hub.alarm(ALIVE, &[(2, ALIVE)]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    hub.text(2, &offer("a", 1), ALIVE + 1);
    let fx = hub.alarm(ALIVE + 1 + EXPIRE, &[(2, ALIVE + 1 + EXPIRE)]);
    assert_eq!(pj_to(&fx, 2), vec![expire_for("a", "b")]);
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn r11_traffic_and_heartbeats_keep_sockets_alive_without_costing_alarms() {
    let mut hub = Hub::new(cfg());
    assert_eq!(alarms(&hub.peerjs_opened(1, "talker", "t", 0)), vec![ALIVE]);
    assert_eq!(alarms(&hub.peerjs_opened(2, "beater", "t", 0)), Vec::<u64>::new());
    assert_eq!(alarms(&hub.peerjs_opened(3, "silent", "t", 0)), Vec::<u64>::new());
    assert_eq!(alarms(&hub.room_opened(101, 0)), Vec::<u64>::new());
    // Ordinary traffic, HEARTBEATs included, never asks for an alarm.
    for t in (100..ALIVE).step_by(500) {
        assert_eq!(hub.text(1, r#"{"type":"HEARTBEAT"}"#, t), vec![]);
        assert_eq!(alarms(&hub.text(1, &offer("beater", t), t)), Vec::<u64>::new());
        assert_eq!(hub.text(101, r#"{"type":"HEARTBEAT"}"#, t), vec![]);
    }
    // The runtime answered "beater"'s heartbeats (they never reached text()).
    let fx = hub.alarm(ALIVE, &[(2, ALIVE - 1), (999, ALIVE)]);
    assert_eq!(closes(&fx), vec![(3, close::ALIVE_TIMEOUT)]);
    // Next deadline: the oldest liveness among survivors.
    let last_talk = (100..ALIVE).step_by(500).last().unwrap();
    assert_eq!(alarms(&fx), vec![(ALIVE - 1 + ALIVE).min(last_talk + ALIVE)]);
    assert_eq!(hub.peer_ids(), vec!["beater".to_string(), "talker".to_string()]);
    // A heartbeat older than what the hub already saw does not shorten liveness.
    let fx = hub.alarm(last_talk + ALIVE - 1, &[(1, 0), (2, last_talk + ALIVE - 1)]);
    assert_eq!(closes(&fx), vec![]);
}

#[test]
fn r11_alarm_with_nothing_left_asks_for_none() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    hub.closed(1, 1);
    assert_eq!(hub.alarm(ALIVE, &[]), vec![]);
    // The next socket asks for an alarm again.
    assert_eq!(alarms(&hub.peerjs_opened(2, "b", "t", ALIVE + 1)), vec![ALIVE + 1 + ALIVE]);
}

// ===== PeerJS: size and rate limits (rule 12) =====================================================
// The PeerJS protocol has no "slow down" or "too large" message: such frames just vanish.

/// An OFFER to `dst` padded with spaces to exactly `len` bytes.
fn offer_of_len(dst: &str, len: usize) -> String {
    let base = offer(dst, 0);
    let mut s = base[..base.len() - 1].to_string();
    s.push_str(&" ".repeat(len - base.len()));
    s.push('}');
    assert_eq!(s.len(), len);
    s
}

#[test]
fn r12_oversize_peerjs_frames_are_dropped_silently() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(hub.text(1, &offer_of_len("b", MAX_FRAME_BYTES + 1), 1), vec![]);
    assert_eq!(hub.text(1, &offer_of_len("ghost", MAX_FRAME_BYTES + 1), 2), vec![]);
    assert_eq!(hub.stats().queued, 0);
    let fx = hub.text(1, &offer_of_len("b", MAX_FRAME_BYTES), 3);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 0)], "exactly 64 KiB is allowed");
    assert_eq!(hub.peer_ids().len(), 2);
}

#[test]
fn r12_peerjs_rate_limit_drops_silently_and_refills() {
    let mut hub = Hub::new(Config { peerjs_rate: Rate { per_sec: 10, burst: 3 }, ..cfg() });
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let mut got = Vec::new();
    for n in 0..6 {
        let fx = hub.text(1, &offer("b", n), 0);
        assert!(recipients(&fx).iter().all(|s| *s == 2), "nothing goes back to the sender: {fx:?}");
        assert_eq!(closes(&fx), vec![]);
        got.extend(pj_to(&fx, 2));
    }
    assert_eq!(got, (0..3).map(|n| relayed_offer("a", "b", n)).collect::<Vec<_>>());
    assert_eq!(hub.text(1, &offer("b", 9), 99), vec![]);
    assert_eq!(pj_to(&hub.text(1, &offer("b", 10), 100), 2), vec![relayed_offer("a", "b", 10)]);
    // The receiver's bucket is its own.
    assert_eq!(pj_to(&hub.text(2, &offer("a", 11), 100), 1), vec![relayed_offer("b", "a", 11)]);
}

// ===== room: join and welcome (rule 13) ============================================================
// Joining proves ownership of a PeerJS id, so everyone in the roster can be called by that id.

#[test]
fn r13_join_attaches_welcomes_and_announces_to_members_only() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 10);
    member_in(&mut hub, 2, 102, "b", "Bob", 20);
    hub.room_opened(103, 25); // connected, not joined
    peer(&mut hub, 3, "c", 30);
    hub.room_opened(104, 30);
    let text = cf(&ClientFrame::Join {
        peer_id: "c".into(),
        token: "tok-c".into(),
        name: "Cy".into(),
        media: Some(MediaPatch { mic: Some(true), ..Default::default() }),
    });
    let fx = hub.text(104, &text, 40);
    let me = Member { media: MediaState { mic: true, ..Default::default() }, ..member("c", "Cy", 40) };
    let welcome = ServerFrame::Welcome {
        me: me.clone(),
        peers: vec![member("a", "Ada", 10), member("b", "Bob", 20)],
        chat: vec![],
        ice_servers: json!([{ "urls": "stun:stun.test:3478" }]),
        limits: limits(),
    };
    let joined = ServerFrame::PeerJoined { peer: me.clone() };
    assert_eq!(
        fx,
        vec![
            Effect::Attach {
                sid: 104,
                attachment: Attachment { sid: 104, since: 30, role: Role::Room { member: Some(me) } }
            },
            send_frame(104, &welcome),
            send_frame(101, &joined),
            send_frame(102, &joined),
        ]
    );
    assert!(raw_to(&fx, 104)[0].contains(r#""self":{"peerId":"c""#), "welcome uses `self`: {:?}", raw_to(&fx, 104));
    assert_eq!(hub.stats().members, 3);
}

#[test]
fn r13_welcome_carries_configured_ice_servers() {
    let mut hub = Hub::new(cfg());
    let turn = json!([{ "urls": ["turn:t.example:3478"], "username": "u", "credential": "c" }]);
    hub.set_ice_servers(turn.clone());
    let fx = member_in(&mut hub, 1, 101, "a", "Ada", 0);
    match &room_to(&fx, 101)[0] {
        ServerFrame::Welcome { ice_servers, limits: l, .. } => {
            assert_eq!(ice_servers, &turn);
            assert_eq!(l, &limits());
        }
        f => panic!("{f:?}"),
    }
}

#[test]
fn r13_welcome_lists_peers_in_join_order_even_within_one_millisecond() {
    // Workers' clock does not advance within a burst of events, so joins often share a `now`.
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "zed", "Zed", 5);
    member_in(&mut hub, 2, 102, "amy", "Amy", 5);
    let fx = member_in(&mut hub, 3, 103, "kim", "Kim", 5);
    match &room_to(&fx, 103)[0] {
        ServerFrame::Welcome { peers, .. } => {
            let ids: Vec<&str> = peers.iter().map(|m| m.peer_id.as_str()).collect();
            assert_eq!(ids, vec!["zed", "amy"]);
        }
        f => panic!("{f:?}"),
    }
}

// ===== room: join errors and malformed frames (rule 14) ===========================================
// Every client mistake gets a precise error code and leaves the socket usable.

#[test]
fn r14_join_errors_have_codes_and_keep_the_socket() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    hub.room_opened(101, 0);
    let cases: Vec<(String, ErrorCode)> = vec![
        (join_frame("nobody", "tok-nobody", "Ada"), ErrorCode::UnknownPeer),
        (join_frame("a", "wrong", "Ada"), ErrorCode::BadToken),
        (join_frame("a", "tok-a", ""), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", "   \t "), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", &"x".repeat(NAME_MAX_CHARS + 1)), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", "a\u{0007}b"), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", "Ada\nBob"), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", "evil\u{202E}txt"), ErrorCode::InvalidName),
        (join_frame("a", "tok-a", "iso\u{2066}late"), ErrorCode::InvalidName),
    ];
    for (i, (text, code)) in cases.iter().enumerate() {
        assert_eq!(only_error(&hub.text(101, text, 1 + i as u64), 101), *code, "{text}");
    }
    assert_eq!(hub.stats().members, 0);
    // Still usable: a good join works on the same socket, with a name of exactly 32 chars.
    let name = "é".repeat(NAME_MAX_CHARS);
    let fx = hub.text(101, &join_frame("a", "tok-a", &name), 50);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::Welcome { me, .. } if me.name == name));
    assert_eq!(only_error(&hub.text(101, &join_frame("a", "tok-a", "Ada"), 51), 101), ErrorCode::AlreadyJoined);
}

#[test]
fn r14_unknown_peer_after_its_peerjs_socket_left() {
    let mut hub = Hub::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.closed(1, 1);
    hub.text(2, r#"{"type":"LEAVE"}"#, 1);
    hub.room_opened(101, 2);
    assert_eq!(only_error(&hub.text(101, &join_frame("a", "tok-a", "Ada"), 3), 101), ErrorCode::UnknownPeer);
    assert_eq!(only_error(&hub.text(101, &join_frame("b", "tok-b", "Bob"), 4), 101), ErrorCode::UnknownPeer);
}

#[test]
fn r14_room_full_counts_members_and_frees_up_after_a_leave() {
    let mut hub = Hub::new(cfg());
    hub.room_opened(150, 0); // un-joined sockets do not count
    hub.room_opened(151, 0);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        member_in(&mut hub, 1 + i as Sid, 101 + i as Sid, id, id, 0);
    }
    peer(&mut hub, 4, "d", 0);
    hub.room_opened(104, 0);
    let fx = hub.text(104, &join_frame("d", "tok-d", "Dee"), 1);
    assert_eq!(fx, vec![send_frame(104, &ServerFrame::error(ErrorCode::RoomFull, "this room is full (3 people)"))]);
    assert_eq!(hub.stats().members, CAP);
    hub.text(102, &leave_frame(), 2);
    let fx = hub.text(104, &join_frame("d", "tok-d", "Dee"), 3);
    assert!(matches!(&room_to(&fx, 104)[0], ServerFrame::Welcome { .. }));
    assert_eq!(hub.stats().members, CAP);
    // A member whose room socket closes frees a seat too.
    assert_eq!(only_error(&hub.text(102, &join_frame("b", "tok-b", "Bob"), 4), 102), ErrorCode::RoomFull);
    hub.closed(101, 5);
    assert!(matches!(
        &room_to(&hub.text(102, &join_frame("b", "tok-b", "Bob"), 6), 102)[0],
        ServerFrame::Welcome { .. }
    ));
}

#[test]
fn r14_not_joined_for_chat_media_leave() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    hub.room_opened(102, 0);
    for text in [chat_frame("hi"), media_frame(MediaPatch { mic: Some(true), ..Default::default() }), leave_frame()] {
        assert_eq!(only_error(&hub.text(102, &text, 1), 102), ErrorCode::NotJoined, "{text}");
    }
    // HEARTBEAT before join is fine and silent.
    assert_eq!(hub.text(102, r#"{"type":"HEARTBEAT"}"#, 2), vec![]);
    // After leaving, the socket is un-joined again.
    hub.text(101, &leave_frame(), 3);
    assert_eq!(only_error(&hub.text(101, &chat_frame("hi"), 4), 101), ErrorCode::NotJoined);
}

#[test]
fn r14_malformed_frames_get_precise_codes() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    let cases: &[(&str, ErrorCode)] = &[
        ("not json", ErrorCode::BadJson),
        ("", ErrorCode::BadJson),
        (r#"{"type":"chat","text":"hi""#, ErrorCode::BadJson),
        ("[1,2]", ErrorCode::BadJson),
        (r#"[{"type":"chat","text":"hi"}]"#, ErrorCode::BadJson),
        (r#""chat""#, ErrorCode::BadJson),
        ("42", ErrorCode::BadJson),
        ("null", ErrorCode::BadJson),
        ("{}", ErrorCode::UnknownType),
        (r#"{"text":"hi"}"#, ErrorCode::UnknownType),
        (r#"{"type":"dance"}"#, ErrorCode::UnknownType),
        (r#"{"type":"CHAT","text":"hi"}"#, ErrorCode::UnknownType),
        (r#"{"type":"OFFER","dst":"b"}"#, ErrorCode::UnknownType),
        (r#"{"type":5}"#, ErrorCode::UnknownType),
        (r#"{"type":null}"#, ErrorCode::UnknownType),
        (r#"{"type":["chat"],"text":"hi"}"#, ErrorCode::UnknownType),
        (r#"{"type":"chat"}"#, ErrorCode::BadRequest),
        (r#"{"type":"chat","text":7}"#, ErrorCode::BadRequest),
        (r#"{"type":"chat","text":null}"#, ErrorCode::BadRequest),
        (r#"{"type":"join"}"#, ErrorCode::BadRequest),
        (r#"{"type":"join","peerId":5,"token":"t","name":"n"}"#, ErrorCode::BadRequest),
        (r#"{"type":"join","peerId":"a","token":"tok-a"}"#, ErrorCode::BadRequest),
        (r#"{"type":"media","mic":"on"}"#, ErrorCode::BadRequest),
        (r#"{"type":"media","volume":3}"#, ErrorCode::BadRequest),
    ];
    for (i, (text, code)) in cases.iter().enumerate() {
        assert_eq!(only_error(&hub.text(101, text, 1 + i as u64), 101), *code, "{text}");
    }
    // Still joined and usable.
    assert_eq!(hub.stats().members, 1);
    assert!(matches!(&room_to(&hub.text(101, &chat_frame("ok"), 100), 101)[0], ServerFrame::Chat { .. }));
}

#[test]
fn r14_binary_and_oversize_room_frames() {
    let mut hub = Hub::new(cfg());
    hub.room_opened(101, 0);
    assert_eq!(only_error(&hub.binary(101, 3, 1), 101), ErrorCode::BinaryUnsupported);
    let mut big = r#"{"type":"HEARTBEAT"}"#.to_string();
    big.push_str(&" ".repeat(MAX_FRAME_BYTES - big.len()));
    assert_eq!(hub.text(101, &big, 2), vec![], "exactly 64 KiB is read");
    big.push(' ');
    assert_eq!(only_error(&hub.text(101, &big, 3), 101), ErrorCode::FrameTooLarge);
    assert_eq!(only_error(&hub.binary(101, MAX_FRAME_BYTES + 1, 4), 101), ErrorCode::FrameTooLarge);
    // Usable afterwards.
    peer(&mut hub, 1, "a", 5);
    assert!(matches!(
        &room_to(&hub.text(101, &join_frame("a", "tok-a", "Ada"), 6), 101)[0],
        ServerFrame::Welcome { .. }
    ));
}

#[test]
fn r14_rate_limit_sends_one_error_per_flood_and_recovers() {
    let mut hub = Hub::new(Config { room_rate: Rate { per_sec: 10, burst: 5 }, ..cfg() });
    member_in(&mut hub, 1, 101, "a", "Ada", 0); // the join takes one token
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let mut chats_to_b = 0;
    let mut errors = Vec::new();
    for i in 0..20 {
        let fx = hub.text(101, &chat_frame(&format!("m{i}")), 0);
        chats_to_b += room_to(&fx, 102).len();
        errors.extend(room_to(&fx, 101).iter().filter_map(err_code));
        assert_eq!(closes(&fx), vec![]);
    }
    assert_eq!(chats_to_b, 4, "burst 5 minus the join");
    assert_eq!(errors, vec![ErrorCode::RateLimited], "exactly one error for the whole flood");
    assert_eq!(hub.stats().chat, 4);
    // Before a token refills: still dropped, still no second error.
    assert_eq!(hub.text(101, &chat_frame("early"), 99), vec![]);
    // After 100 ms at 10/s: one frame goes through.
    let fx = hub.text(101, &chat_frame("later"), 100);
    assert_eq!(recipients(&fx), vec![101, 102]);
    // A new flood after service resumed gets its own single error.
    let fx = hub.text(101, &chat_frame("again"), 100);
    assert_eq!(only_error(&fx, 101), ErrorCode::RateLimited);
    // Others are unaffected.
    assert_eq!(recipients(&hub.text(102, &chat_frame("b"), 100)), vec![101, 102]);
}

// ===== room: names and chat (rules 15–16) ===========================================================
// Chat records are built server-side so nobody can speak as someone else or rewrite history.

const XSS: &str = "<img src=x onerror=alert(1)>";

#[test]
fn r15_names_are_trimmed_and_html_stays_literal() {
    let mut hub = Hub::new(cfg());
    let fx = member_in(&mut hub, 1, 101, "a", "   Ada Lovelace \t", 0);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::Welcome { me, .. } if me.name == "Ada Lovelace"));
    let fx = member_in(&mut hub, 2, 102, "b", XSS, 1);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::PeerJoined { peer } if peer.name == XSS));
    assert!(raw_to(&fx, 101)[0].contains(XSS), "not escaped or altered on the wire");
    let fx = hub.text(102, &chat_frame(XSS), 2);
    match &room_to(&fx, 101)[0] {
        ServerFrame::Chat { message } => {
            assert_eq!(message.text, XSS);
            assert_eq!(message.name, XSS);
        }
        f => panic!("{f:?}"),
    }
    assert!(raw_to(&fx, 101)[0].contains(&format!(r#""text":"{XSS}""#)));
}

#[test]
fn r16_chat_record_is_built_server_side_and_persisted_before_sending() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.room_opened(103, 0); // not joined: hears nothing
    let spoof = r#"{"type":"chat","text":"hello\nworld","name":"Bob","peerId":"b","id":99,"ts":1}"#;
    let fx = hub.text(101, spoof, 1000);
    let rec = ChatRecord { id: 1, peer_id: "a".into(), name: "Ada".into(), text: "hello\nworld".into(), ts: 1000 };
    let frame = ServerFrame::Chat { message: rec.clone() };
    assert_eq!(fx, vec![Effect::PersistChat(rec), send_frame(101, &frame), send_frame(102, &frame)]);

    // Ids increase by one; ts strictly increases even when the clock stands still or steps back.
    let a = persisted(&hub.text(102, &chat_frame("two"), 1000));
    let b = persisted(&hub.text(101, &chat_frame("three"), 400));
    let c = persisted(&hub.text(101, &chat_frame("four"), 5000));
    assert_eq!((a[0].id, b[0].id, c[0].id), (2, 3, 4));
    assert_eq!((a[0].ts, b[0].ts, c[0].ts), (1001, 1002, 5000));
    assert_eq!((a[0].name.as_str(), a[0].peer_id.as_str()), ("Bob", "b"));
}

#[test]
fn r16_invalid_chat_text_is_refused() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    for text in ["", "  \n\t ", "bell\u{0007}", "rtl\u{202E}", &"x".repeat(CHAT_MAX_CHARS + 1)] {
        assert_eq!(only_error(&hub.text(101, &chat_frame(text), 1), 101), ErrorCode::InvalidText);
    }
    assert_eq!(hub.stats().chat, 0);
    assert_eq!(persisted(&hub.text(101, &chat_frame(&"x".repeat(CHAT_MAX_CHARS)), 2)).len(), 1);
}

#[test]
fn r16_history_window_is_replayed_oldest_first() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    let extra = 5;
    for i in 0..CHAT_HISTORY + extra {
        hub.text(101, &chat_frame(&format!("m{i}")), 10 + i as u64);
    }
    let fx = member_in(&mut hub, 2, 102, "b", "Bob", 10_000);
    match &room_to(&fx, 102)[0] {
        ServerFrame::Welcome { chat, .. } => {
            assert_eq!(chat.len(), CHAT_HISTORY);
            assert_eq!(chat[0].text, format!("m{extra}"));
            assert_eq!(chat[0].id, extra as u64 + 1);
            assert_eq!(chat.last().unwrap().id, (CHAT_HISTORY + extra) as u64);
            assert!(chat.windows(2).all(|w| w[0].id + 1 == w[1].id && w[0].ts < w[1].ts));
        }
        f => panic!("{f:?}"),
    }
}

#[test]
fn r16_chat_not_stored_forgets_the_record_and_tells_the_sender() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.text(101, &chat_frame("kept"), 1);
    let rec = persisted(&hub.text(101, &chat_frame("lost"), 2)).remove(0);
    let fx = hub.chat_not_stored(&rec);
    assert_eq!(only_error(&fx, 101), ErrorCode::Internal);
    assert_eq!(hub.stats().chat, 1);
    // The next message does not reuse the id; the welcome shows only what was stored.
    assert_eq!(persisted(&hub.text(102, &chat_frame("next"), 3))[0].id, 3);
    let fx = member_in(&mut hub, 3, 103, "c", "Cy", 4);
    match &room_to(&fx, 103)[0] {
        ServerFrame::Welcome { chat, .. } => {
            assert_eq!(chat.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), vec!["kept", "next"])
        }
        f => panic!("{f:?}"),
    }
    // A sender that is gone gets nothing, and nothing panics.
    hub.text(101, &leave_frame(), 5);
    assert_eq!(hub.chat_not_stored(&rec), vec![]);
}

// ===== room: media, leave, close, timeouts (rules 17–19) ==============================================

#[test]
fn r17_media_patch_merges_and_is_broadcast_to_all_including_sender() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 7);
    member_in(&mut hub, 2, 102, "b", "Bob", 8);
    hub.text(101, &media_frame(MediaPatch { mic: Some(true), camera: Some(true), ..Default::default() }), 9);
    let fx = hub.text(101, r#"{"type":"media","camera":false,"hand":true}"#, 10);
    let media = MediaState { mic: true, camera: false, screen: false, hand: true };
    let frame = ServerFrame::PeerMedia { peer_id: "a".into(), media };
    let me = Member { media, ..member("a", "Ada", 7) };
    assert_eq!(
        fx,
        vec![
            Effect::Attach {
                sid: 101,
                attachment: Attachment { sid: 101, since: 7, role: Role::Room { member: Some(me.clone()) } }
            },
            send_frame(101, &frame),
            send_frame(102, &frame),
        ]
    );
    // A newcomer sees the merged state.
    let fx = member_in(&mut hub, 3, 103, "c", "Cy", 11);
    assert!(matches!(&room_to(&fx, 103)[0], ServerFrame::Welcome { peers, .. } if peers[0] == me));
}

#[test]
fn r18_leave_tells_self_and_others_and_allows_rejoin() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 3);
    member_in(&mut hub, 2, 102, "b", "Bob", 4);
    member_in(&mut hub, 3, 103, "c", "Cy", 5);
    let fx = hub.text(102, &leave_frame(), 6);
    let gone = ServerFrame::PeerLeft { peer_id: "b".into(), reason: LeaveReason::Leave };
    assert_eq!(
        fx,
        vec![
            Effect::Attach {
                sid: 102,
                attachment: Attachment { sid: 102, since: 4, role: Role::Room { member: None } }
            },
            send_frame(102, &ServerFrame::Left { reason: LeaveReason::Leave }),
            send_frame(101, &gone),
            send_frame(103, &gone),
        ]
    );
    assert_eq!(hub.stats().members, 2);
    // The PeerJS registration is untouched, so the same socket can join again.
    let fx = hub.text(102, &join_frame("b", "tok-b", "Bobby"), 7);
    assert!(matches!(&room_to(&fx, 102)[0], ServerFrame::Welcome { me, .. } if me.name == "Bobby"));
    assert_eq!(recipients(&fx), vec![102, 101, 103]);
}

#[test]
fn r19_room_socket_close_broadcasts_peer_left_closed() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.room_opened(103, 0);
    let fx = hub.closed(101, 5);
    assert_eq!(fx, vec![send_frame(102, &ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Closed })]);
    assert_eq!(hub.stats().members, 1);
    // The PeerJS id stays registered: a new room socket may join with it.
    hub.room_opened(104, 6);
    assert!(matches!(
        &room_to(&hub.text(104, &join_frame("a", "tok-a", "Ada"), 7), 104)[0],
        ServerFrame::Welcome { .. }
    ));
    // Closing an un-joined socket tells nobody.
    assert_eq!(hub.closed(103, 8), vec![]);
}

#[test]
fn r19_peerjs_close_of_a_member_removes_it_as_disconnected() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 2);
    member_in(&mut hub, 2, 102, "b", "Bob", 3);
    member_in(&mut hub, 3, 103, "c", "Cy", 4);
    let fx = hub.closed(1, 10);
    let gone = ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Disconnected };
    assert_eq!(
        fx,
        vec![
            send_frame(101, &ServerFrame::Left { reason: LeaveReason::Disconnected }),
            Effect::Attach {
                sid: 101,
                attachment: Attachment { sid: 101, since: 2, role: Role::Room { member: None } }
            },
            send_frame(102, &gone),
            send_frame(103, &gone),
        ]
    );
    assert_eq!(hub.stats().members, 2);
    // The room socket is open but un-joined now.
    assert_eq!(only_error(&hub.text(101, &chat_frame("hi"), 11), 101), ErrorCode::NotJoined);
    assert_eq!(hub.closed(101, 12), vec![], "no second peer-left");
    // A PeerJS LEAVE without dst does the same.
    let fx = hub.text(2, r#"{"type":"LEAVE"}"#, 13);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::Left { reason: LeaveReason::Disconnected }]);
    assert_eq!(
        room_to(&fx, 103),
        vec![ServerFrame::PeerLeft { peer_id: "b".into(), reason: LeaveReason::Disconnected }]
    );
}

#[test]
fn r19_room_socket_alive_timeout() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    // Everyone but room socket 101 is alive.
    let fx = hub.alarm(ALIVE, &[(1, ALIVE), (2, ALIVE), (102, ALIVE)]);
    assert_eq!(
        fx,
        vec![
            Effect::Close { sid: 101, code: close::ALIVE_TIMEOUT, reason: "alive timeout" },
            send_frame(102, &ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Timeout }),
            Effect::SetAlarm { at_ms: 2 * ALIVE },
        ]
    );
    assert_eq!(hub.stats().members, 1);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn r19_peerjs_alive_timeout_of_a_member_tells_its_room_socket() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.alarm(ALIVE, &[(2, ALIVE), (101, ALIVE), (102, ALIVE)]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    assert_eq!(room_to(&fx, 101), vec![ServerFrame::Left { reason: LeaveReason::Timeout }]);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Timeout }]);
}

#[test]
fn r19_whole_member_timing_out_gets_no_frame_after_its_close() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.alarm(ALIVE, &[(2, ALIVE), (102, ALIVE)]);
    assert_no_send_after_close(&fx);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT), (101, close::ALIVE_TIMEOUT)]);
    assert_eq!(room_to(&fx, 102).len(), 1, "one peer-left, not two: {fx:?}");
    assert_eq!(hub.stats().members, 1);
}

#[track_caller]
fn assert_no_send_after_close(fx: &[Effect]) {
    let mut closed = BTreeSet::new();
    for e in fx {
        match e {
            Effect::Close { sid, .. } => {
                closed.insert(*sid);
            }
            Effect::Send { to, .. } | Effect::Attach { sid: to, .. } => {
                assert!(!closed.contains(to), "effect for {to} after its Close: {fx:?}")
            }
            _ => {}
        }
    }
}

// ===== room: reconnect (rule 20) =====================================================================
// A reloaded page joins again with the same PeerJS id; others must not see it leave and come back
// as two people, and the cap counts people, not sockets.

#[test]
fn r20_rejoin_from_a_new_socket_replaces_the_old_one() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    member_in(&mut hub, 3, 103, "c", "Cy", 0); // the room is full
    hub.room_opened(104, 10);
    let fx = hub.text(104, &join_frame("a", "tok-a", "Ada 2"), 11);
    let me = member("a", "Ada 2", 11);
    let joined = ServerFrame::PeerJoined { peer: me.clone() };
    assert_eq!(
        fx,
        vec![
            send_frame(101, &ServerFrame::Left { reason: LeaveReason::Replaced }),
            Effect::Close { sid: 101, code: close::REPLACED, reason: "joined from another connection" },
            Effect::Attach {
                sid: 104,
                attachment: Attachment { sid: 104, since: 10, role: Role::Room { member: Some(me.clone()) } }
            },
            send_frame(
                104,
                &ServerFrame::Welcome {
                    me,
                    peers: vec![member("b", "Bob", 0), member("c", "Cy", 0)],
                    chat: vec![],
                    ice_servers: cfg().ice_servers,
                    limits: limits()
                }
            ),
            send_frame(102, &joined),
            send_frame(103, &joined),
        ]
    );
    assert_eq!(hub.stats().members, CAP);
    // The old socket is gone: its close and frames do nothing.
    assert_eq!(hub.closed(101, 12), vec![]);
    assert_eq!(hub.text(101, &chat_frame("ghost"), 12), vec![]);
    assert_eq!(recipients(&hub.text(104, &chat_frame("back"), 13)), vec![102, 103, 104]);
}

// ===== restore after hibernation (rule 21) ============================================================
// Attachments are all that survive eviction: the rebuilt hub must own exactly what they say.

#[test]
fn r21_restore_rebuilds_registry_roster_chat_and_alarm() {
    let mut shell = Shell::default();
    let mut stored: Vec<ChatRecord> = Vec::new();
    let mut hub = Hub::new(cfg());
    // Carry out effects as the shell would: attachments, and chat written to storage.
    let run = |fx: Vec<Effect>, shell: &mut Shell, stored: &mut Vec<ChatRecord>| {
        stored.extend(persisted(&fx));
        shell.apply(&fx);
    };
    run(hub.peerjs_opened(1, "a", "tok-a", 0), &mut shell, &mut stored);
    run(hub.peerjs_opened(2, "b", "tok-b", 100), &mut shell, &mut stored);
    run(hub.peerjs_opened(3, "c", "tok-c", 200), &mut shell, &mut stored);
    run(hub.peerjs_opened(4, "d", "tok-d", 250), &mut shell, &mut stored);
    run(hub.room_opened(101, 300), &mut shell, &mut stored);
    run(hub.room_opened(102, 300), &mut shell, &mut stored);
    run(hub.room_opened(103, 300), &mut shell, &mut stored); // stays un-joined
    run(hub.text(101, &join_frame("a", "tok-a", "Ada"), 400), &mut shell, &mut stored);
    run(hub.text(102, &join_frame("b", "tok-b", "Bob"), 500), &mut shell, &mut stored);
    run(
        hub.text(101, &media_frame(MediaPatch { hand: Some(true), ..Default::default() }), 550),
        &mut shell,
        &mut stored,
    );
    run(hub.text(101, &chat_frame("one"), 600), &mut shell, &mut stored);
    run(hub.text(102, &chat_frame("two"), 700), &mut shell, &mut stored);
    run(hub.text(3, r#"{"type":"LEAVE"}"#, 800), &mut shell, &mut stored); // sid 3 retired
    run(hub.peerjs_opened(5, "d", "tok-d", 900), &mut shell, &mut stored); // sid 4 closed by us
    run(hub.peerjs_opened(6, "e", "tok-e", 950), &mut shell, &mut stored);
    run(hub.closed(6, 960), &mut shell, &mut stored); // client closed: not listed any more
    shell.gone(6);
    assert_eq!(stored.len(), 2);
    assert_eq!(shell.att[&3].role, Role::Retired);
    assert_eq!(shell.att[&4].role, Role::Retired);
    assert!(!shell.att.contains_key(&6));
    drop(hub);

    // Hibernation. The runtime kept answering heartbeats for every socket but room socket 103.
    let sockets: Vec<(Attachment, Option<u64>)> = shell
        .att
        .values()
        .rev() // order must not matter
        .map(|a| (a.clone(), if a.sid == 103 { None } else { Some(5_000) }))
        .collect();
    let mut hub = Hub::restore(cfg(), sockets, stored.clone());
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string(), "d".to_string()]);
    assert_eq!(hub.stats().members, 2);
    assert_eq!(hub.stats().chat, 2);

    // The first event re-arms the alarm for the earliest deadline: silent socket 103.
    let fx = hub.text(2, &offer("a", 1), 6_000);
    assert_eq!(alarms(&fx), vec![300 + ALIVE]);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("b", "a", 1)]);
    assert_eq!(alarms(&hub.text(1, &offer("b", 2), 6_001)), Vec::<u64>::new(), "only once");

    // Registry: ids are held against other tokens, by the newest socket.
    assert_eq!(closes(&hub.peerjs_opened(7, "a", "evil", 6_002)), vec![(7, close::NORMAL)]);
    assert_eq!(closes(&hub.peerjs_opened(7, "d", "evil", 6_002)), vec![(7, close::NORMAL)]);
    assert_eq!(pj_to(&hub.text(1, &offer("d", 3), 6_003), 5), vec![relayed_offer("a", "d", 3)]);
    // Retired sockets own nothing: their frames are ignored and "c" is free.
    assert_eq!(hub.text(3, &offer("a", 4), 6_004), vec![]);
    assert_eq!(hub.text(4, &offer("a", 5), 6_004), vec![]);
    assert_eq!(hub.closed(4, 6_005), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string(), "d".to_string()]);
    let fx = hub.peerjs_opened(8, "c", "new", 6_006);
    assert_eq!(raw_to(&fx, 8), vec![open()]);

    // Roster and chat: a newcomer sees the restored members (with their media) and history.
    hub.room_opened(104, 6_007);
    let fx = hub.text(104, &join_frame("c", "new", "Cy"), 6_008);
    match &room_to(&fx, 104)[0] {
        ServerFrame::Welcome { peers, chat, .. } => {
            let ada = Member { media: MediaState { hand: true, ..Default::default() }, ..member("a", "Ada", 400) };
            assert_eq!(peers, &vec![ada, member("b", "Bob", 500)]);
            assert_eq!(chat, &stored);
        }
        f => panic!("{f:?}"),
    }
    assert_eq!(recipients(&fx), vec![104, 101, 102]);
    // Restored members chat under their restored names; ids continue.
    let fx = hub.text(101, &chat_frame("three"), 6_009);
    let rec = persisted(&fx).remove(0);
    assert_eq!((rec.id, rec.name.as_str(), rec.peer_id.as_str()), (3, "Ada", "a"));
    assert!(rec.ts > stored[1].ts);
    // The un-joined restored room socket is still un-joined; a restored member is already joined.
    assert_eq!(only_error(&hub.text(103, &chat_frame("x"), 6_010), 103), ErrorCode::NotJoined);
    assert_eq!(only_error(&hub.text(102, &join_frame("b", "tok-b", "B"), 6_011), 102), ErrorCode::AlreadyJoined);
    // PeerJS close of a restored member still reaches its restored room socket.
    let fx = hub.closed(2, 6_012);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::Left { reason: LeaveReason::Disconnected }]);
    // Liveness continues from the restored heartbeat times: "d" (sid 5) has sent nothing since
    // its heartbeat at 5 000, every other socket has been active after 6 000.
    let fx = hub.alarm(5_000 + ALIVE, &[]);
    assert_eq!(closes(&fx), vec![(5, close::ALIVE_TIMEOUT)]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "c".to_string()]);
}

#[test]
fn r21_restore_first_event_alarm_and_duplicate_claims() {
    // Two attachments claiming one id (a socket the runtime had not yet closed): the newest wins.
    let att = |sid: Sid, since: u64, role: Role| (Attachment { sid, since, role }, None);
    let pj = |id: &str, token: &str| Role::PeerJs { id: id.into(), token: token.into() };
    let m = |id: &str| Role::Room { member: Some(member(id, id, 0)) };
    let mut hub = Hub::restore(
        cfg(),
        vec![att(2, 20, pj("a", "new")), att(1, 10, pj("a", "old")), att(102, 30, m("a")), att(101, 5, m("a"))],
        vec![],
    );
    assert_eq!(hub.stats().members, 1);
    assert_eq!(hub.stats().registered, 1);
    // First event (even a no-op one) asks for the alarm: the oldest socket, 5 + ALIVE.
    assert_eq!(hub.text(999, "junk", 40), vec![Effect::SetAlarm { at_ms: 5 + ALIVE }]);
    assert_eq!(hub.text(999, "junk", 41), vec![]);
    // Old sockets own nothing: they cannot speak as "a" nor release it.
    assert_eq!(hub.text(1, &offer("a", 1), 42), vec![]);
    assert_eq!(hub.text(101, &chat_frame("as a"), 42), vec![]);
    assert_eq!(hub.stats().chat, 0);
    assert_eq!(hub.closed(1, 42), vec![]);
    assert_eq!(hub.closed(101, 42), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string()]);
    assert_eq!(hub.stats().members, 1);
    assert_eq!(closes(&hub.peerjs_opened(3, "a", "old", 43)), vec![(3, close::NORMAL)]);
    assert_eq!(raw_to(&hub.peerjs_opened(3, "a", "new", 44), 3), vec![open()]);
}

#[test]
fn r21_restore_then_alarm_first() {
    let att = Attachment { sid: 1, since: 0, role: Role::PeerJs { id: "a".into(), token: "t".into() } };
    let mut hub = Hub::restore(cfg(), vec![(att, Some(ALIVE - 1))], vec![]);
    // Woken by an early alarm: nothing dies, the alarm is re-armed at the heartbeat's deadline.
    assert_eq!(hub.alarm(ALIVE, &[]), vec![Effect::SetAlarm { at_ms: 2 * ALIVE - 1 }]);
}

#[test]
fn r21_member_whose_peerjs_socket_vanished_while_asleep_leaves_on_wake() {
    // Two members; b's PeerJS socket closed while the object was evicted, so only its room
    // socket's attachment survives. Nobody can call b: it must leave, and the room must hear it.
    let mut hub = Hub::new(cfg());
    let mut shell = Shell::default();
    for (pj, room, id) in [(1, 101, "a"), (2, 102, "b")] {
        shell.apply(&peer(&mut hub, pj, id, 0));
        shell.apply(&hub.room_opened(room, 0));
        shell.apply(&hub.text(room, &join_frame(id, &tok(id), id), 0));
    }
    shell.gone(2);
    let restored = shell.att.values().map(|a| (a.clone(), None)).collect();
    let mut hub = Hub::restore(cfg(), restored, vec![]);
    assert_eq!(hub.stats().members, 1);
    let fx = hub.text(101, r#"{"type":"HEARTBEAT","n":1}"#, 10);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::Left { reason: LeaveReason::Disconnected }]);
    assert_eq!(
        room_to(&fx, 101),
        vec![ServerFrame::PeerLeft { peer_id: "b".into(), reason: LeaveReason::Disconnected }]
    );
    assert!(attaches(&fx).contains(&(102, Attachment { sid: 102, since: 0, role: Role::Room { member: None } })));
    // Said once only.
    assert!(room_to(&hub.text(101, r#"{"type":"HEARTBEAT","n":2}"#, 11), 101).is_empty());
}

// ===== unknown sids (rule 22) =========================================================================
// The runtime may deliver events for sockets the hub never saw or already dropped.

#[test]
fn r22_events_for_unknown_or_closed_sids_do_nothing() {
    let mut hub = Hub::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    for sid in [7, 999, u64::MAX] {
        assert_eq!(hub.text(sid, &chat_frame("x"), 1), vec![]);
        assert_eq!(hub.text(sid, &offer("a", 1), 1), vec![]);
        assert_eq!(hub.text(sid, r#"{"type":"LEAVE"}"#, 1), vec![]);
        assert_eq!(hub.binary(sid, 10, 1), vec![]);
        assert_eq!(hub.closed(sid, 1), vec![]);
    }
    hub.closed(101, 2);
    assert_eq!(hub.closed(101, 3), vec![]);
    assert_eq!(hub.text(101, &chat_frame("x"), 3), vec![]);
    assert_eq!(hub.binary(101, 1, 3), vec![]);
    hub.closed(1, 4);
    assert_eq!(hub.closed(1, 5), vec![]);
    assert_eq!(hub.text(1, &offer("a", 1), 5), vec![]);
    let fx = hub.alarm(6, &[(1, 6), (101, 6), (12345, 6)]);
    assert_eq!(fx, vec![]);
    assert_eq!(hub.stats(), crate::hub::HubStats::default());
}

// ===== randomized robustness ==========================================================================
// Garbage from any client must never panic the object nor break service for well-behaved members.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn random_frame(rng: &mut XorShift, valid: &[String]) -> String {
    const TYPES: &[&str] = &[
        "join",
        "chat",
        "media",
        "leave",
        "HEARTBEAT",
        "OFFER",
        "ANSWER",
        "CANDIDATE",
        "LEAVE",
        "EXPIRE",
        "OPEN",
        "ERROR",
        "",
        "chat\u{0}",
        "👩‍💻",
    ];
    const IDS: &[&str] = &["a", "b", "c", "w", "ghost", "", "\u{202E}", "<b>"];
    match rng.below(6) {
        // Random bytes made into a string.
        0 => {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // A valid frame truncated at a random char boundary.
        1 => {
            let f = rng.pick(valid);
            let cut: Vec<usize> = f.char_indices().map(|(i, _)| i).collect();
            f[..*rng.pick(&cut)].to_string()
        }
        // Random type and fields of random types.
        2 => {
            let vals = [
                json!(rng.pick(IDS)),
                json!(rng.next() as i64),
                json!(null),
                json!(true),
                json!([1, "x"]),
                json!({ "mic": true }),
                json!("x".repeat(rng.below(40))),
            ];
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), json!(rng.pick(TYPES)));
            for key in ["dst", "src", "payload", "text", "peerId", "token", "name", "mic", "camera", "media"] {
                if rng.below(3) == 0 {
                    obj.insert(key.into(), rng.pick(&vals).clone());
                }
            }
            Value::Object(obj).to_string()
        }
        // A valid frame, unchanged.
        3 => rng.pick(valid).clone(),
        // A valid frame with one byte replaced.
        4 => {
            let mut b = rng.pick(valid).clone().into_bytes();
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            String::from_utf8_lossy(&b).into_owned()
        }
        // JSON that is not an object, or is huge.
        _ => match rng.below(4) {
            0 => "[]".into(),
            1 => "\"x\"".into(),
            2 => "1e999".into(),
            _ => format!(r#"{{"type":"chat","text":"{}"}}"#, "y".repeat(MAX_FRAME_BYTES)),
        },
    }
}

/// What the randomized test checks about every batch of effects, and counts.
#[derive(Default)]
struct Tally {
    rooms: BTreeSet<Sid>,
    closed: BTreeSet<Sid>,
    seen: BTreeMap<&'static str, usize>,
}

impl Tally {
    /// Every frame parses as its socket's protocol; nothing reaches a socket after its Close.
    fn check(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::Send { to, frame } => {
                    assert!(!self.closed.contains(to), "send to closed {to}: {fx:?}");
                    let kind = if self.rooms.contains(to) {
                        match serde_json::from_str::<ServerFrame>(frame).expect("room frame") {
                            ServerFrame::Error { .. } => "room error",
                            ServerFrame::Chat { .. } => "chat",
                            ServerFrame::Welcome { .. } => "welcome",
                            _ => "other room frame",
                        }
                    } else {
                        match serde_json::from_str::<PeerJsFrame>(frame).expect("PeerJS frame").kind.as_str() {
                            "OPEN" => "OPEN",
                            _ => "other PeerJS frame",
                        }
                    };
                    *self.seen.entry(kind).or_default() += 1;
                }
                Effect::Attach { sid, .. } => assert!(!self.closed.contains(sid), "attach of closed {sid}: {fx:?}"),
                Effect::Close { sid, code, .. } => {
                    self.closed.insert(*sid);
                    let kind = match *code {
                        close::NORMAL => "close 1000",
                        close::REPLACED => "close 4000",
                        close::ALIVE_TIMEOUT => "close 4001",
                        _ => "close (other code)",
                    };
                    *self.seen.entry(kind).or_default() += 1;
                }
                _ => {}
            }
        }
    }
}

#[test]
fn randomized_garbage_never_panics_or_breaks_a_good_member() {
    let config =
        Config { room_rate: Rate { per_sec: 50, burst: 20 }, peerjs_rate: Rate { per_sec: 200, burst: 50 }, ..cfg() };
    let valid: Vec<String> = vec![
        join_frame("a", "tok-a", "Ann"),
        join_frame("b", "tok-b", "Bob"),
        join_frame("c", "tok-c", "Cy"),
        join_frame("c", "bad", "Cy"),
        chat_frame("hello <b>there</b>"),
        chat_frame("more"),
        media_frame(MediaPatch { screen: Some(true), ..Default::default() }),
        leave_frame(),
        r#"{"type":"HEARTBEAT"}"#.into(),
        offer("w", 1),
        offer("b", 1),
        offer("ghost", 2),
        pjf("CANDIDATE", Some("b"), Some(json!({ "candidate": "x" }))),
        pjf("ANSWER", Some("a"), None),
        r#"{"type":"LEAVE"}"#.into(),
        r#"{"type":"EXPIRE","dst":"a"}"#.into(),
    ];
    for seed in [0x9E37_79B9_7F4A_7C15u64, 42, 0xDEAD_BEEF] {
        let mut rng = XorShift(seed);
        let mut hub = Hub::new(config.clone());
        let mut t = Tally::default();
        t.rooms.extend([109, 102, 101, 103]);
        // The well-behaved member "w" (sids 9 and 109) and a noisy one, "b".
        t.check(&member_in(&mut hub, 9, 109, "w", "Good", 0));
        t.check(&member_in(&mut hub, 2, 102, "b", "Bob", 0));
        t.check(&hub.peerjs_opened(1, "a", "tok-a", 0));
        t.check(&hub.peerjs_opened(3, "c", "tok-c", 0));
        t.check(&hub.room_opened(101, 0));
        t.check(&hub.room_opened(103, 0));
        // Noise comes from every socket except w's own; noisy clients also disconnect and
        // reconnect (same or wrong token), so the room keeps changing under the garbage.
        let mut pj_socks: Vec<(Sid, &str)> = vec![(1, "a"), (2, "b"), (3, "c")];
        let mut room_socks: Vec<Sid> = vec![101, 102, 103];
        let mut next_sid: Sid = 1000;
        let mut now = 0;
        for step in 0..4000 {
            now += rng.below(10) as u64;
            let fx = match rng.below(40) {
                0 => {
                    let slot = rng.below(pj_socks.len());
                    let (old, id) = pj_socks[slot];
                    let fx = if rng.below(2) == 0 { hub.closed(old, now) } else { vec![] };
                    t.check(&fx);
                    next_sid += 1;
                    pj_socks[slot] = (next_sid, id);
                    let token = if rng.below(4) == 0 { "wrong".to_string() } else { tok(id) };
                    hub.peerjs_opened(next_sid, id, &token, now)
                }
                1 => {
                    let slot = rng.below(room_socks.len());
                    t.check(&hub.closed(room_socks[slot], now));
                    next_sid += 1;
                    room_socks[slot] = next_sid;
                    t.rooms.insert(next_sid);
                    hub.room_opened(next_sid, now)
                }
                2 if step % 5 == 0 => {
                    let mut beats: Vec<(Sid, u64)> = vec![(9, now), (109, now)];
                    beats.extend(pj_socks.iter().map(|(s, _)| (*s, now)));
                    hub.alarm(now, &beats)
                }
                3 => hub.binary(*rng.pick(&room_socks), rng.below(MAX_FRAME_BYTES * 2), now),
                n => {
                    let sid = if n % 2 == 0 { rng.pick(&pj_socks).0 } else { *rng.pick(&room_socks) };
                    hub.text(sid, &random_frame(&mut rng, &valid), now)
                }
            };
            t.check(&fx);
            if rng.below(500) == 0 {
                let rec = ChatRecord {
                    id: rng.next() % 10,
                    peer_id: "b".into(),
                    name: String::new(),
                    text: String::new(),
                    ts: 0,
                };
                t.check(&hub.chat_not_stored(&rec));
            }
        }
        for kind in [
            "room error",
            "chat",
            "welcome",
            "other room frame",
            "OPEN",
            "other PeerJS frame",
            "close 1000",
            "close 4000",
            "close 4001",
        ] {
            let n = t.seen.get(kind).copied().unwrap_or(0);
            assert!(n > 0, "seed {seed:#x}: no {kind} at all: {:?}", t.seen);
        }
        // The good member still gets its chat delivered, persisted first.
        now += 10_000;
        let fx = hub.text(109, &chat_frame("still works"), now);
        t.check(&fx);
        assert!(matches!(fx.first(), Some(Effect::PersistChat(r)) if r.peer_id == "w" && r.name == "Good"), "{fx:?}");
        let to_self = room_to(&fx, 109);
        assert!(
            matches!(to_self.as_slice(), [ServerFrame::Chat { message }] if message.text == "still works"),
            "seed {seed:#x}: {fx:?}"
        );
        // And its PeerJS socket still relays.
        let fx = hub.text(9, &offer("w", 5), now);
        assert_eq!(pj_to(&fx, 9), vec![relayed_offer("w", "w", 5)]);
        assert!(hub.peer_ids().contains(&"w".to_string()));
    }
}
