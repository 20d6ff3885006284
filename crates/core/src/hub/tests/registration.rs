use super::*;

// ===== PeerJS: registration ===========================================================
// The unmodified peerjs client only fires `open` on {"type":"OPEN"}, and must get it before any
// relayed frame; registration decides who may call whom.

#[test]
fn new_id_gets_attach_then_exactly_open() {
    let mut hub = Sim::new(global_cfg());
    let fx = hub.on_peerjs_open(1, "a", "tok-a", 0);
    assert_eq!(
        fx,
        vec![
            Effect::SetAlarm { at_ms: ALIVE },
            Effect::Attach { sid: 1, attachment: att(1, 0, Role::PeerJs { id: "a".into(), token: "tok-a".into() }) },
            send(1, r#"{"type":"OPEN"}"#),
        ]
    );
    // A second registration needs no earlier alarm.
    let fx = hub.on_peerjs_open(2, "b", "tok-b", 5);
    assert_eq!(alarms(&fx), Vec::<u64>::new());
    assert_eq!(raw_to(&fx, 2), vec![open()]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn queued_frames_follow_open_in_fifo_order() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "b", 0);
    // Sent raw, with the client's own key order: the payload must be relayed byte for byte.
    hub.on_text(
        1,
        r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0"},"type":"media","n":1},"dst":"a"}"#,
        10,
    );
    hub.on_text(1, &pjf("CANDIDATE", Some("a"), Some(json!({ "c": 1 }))), 11);
    hub.on_text(1, &pjf("CANDIDATE", Some("a"), Some(json!({ "c": 2 }))), 12);
    assert_eq!(hub.stats().queued, 3);

    let fx = hub.on_peerjs_open(2, "a", "tok-a", 20);
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
fn id_held_with_another_token_is_taken_and_holder_unaffected() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let refused = hub.hub.on_peerjs_open(3, "a", "other", "", 10);
    let frame = r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#.to_string();
    assert_eq!(refused, Admission::Refused { frame });
    // The refused socket owns nothing: its frames and its close change nothing.
    assert_eq!(hub.on_text(3, &offer("b", 1), 11), vec![]);
    assert_eq!(hub.on_close(3), vec![]);
    // The holder still owns "a": frames to "a" reach sid 1, and it can still send.
    let fx = hub.on_text(2, &offer("a", 2), 13);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("b", "a", 2)]);
    let fx = hub.on_text(1, &offer("b", 3), 14);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 3)]);
    assert_eq!(hub.stats().registered, 2);
}

#[test]
fn same_token_reattach_gets_open_and_closes_old_socket() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.on_peerjs_open(3, "a", "tok-a", 100);
    assert_eq!(
        fx,
        vec![
            Effect::Attach { sid: 1, attachment: att(1, 0, Role::Retired) },
            Effect::Close { sid: 1, code: close::REPLACED, reason: "replaced by a new connection" },
            Effect::Attach { sid: 3, attachment: att(3, 100, Role::PeerJs { id: "a".into(), token: "tok-a".into() }) },
            send(3, r#"{"type":"OPEN"}"#),
        ]
    );
    // The old socket's own close must not unregister the id now held by sid 3.
    assert_eq!(hub.on_close(1), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
    // Traffic for "a" goes to the new socket only; the old one is dead to the hub.
    let fx = hub.on_text(2, &offer("a", 7), 102);
    assert_eq!(recipients(&fx), vec![3]);
    assert_eq!(pj_to(&fx, 3), vec![relayed_offer("b", "a", 7)]);
    assert_eq!(hub.on_text(1, &offer("b", 8), 103), vec![]);
    // Another token is still refused.
    let fx = hub.on_peerjs_open(4, "a", "evil", 104);
    assert_eq!(closes(&fx), vec![(4, close::NORMAL)]);
}

#[test]
fn reattach_keeps_the_room_seat() {
    let mut hub = Sim::new(global_cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_peerjs_open(3, "a", "tok-a", 10);
    assert_eq!(recipients(&fx), vec![3], "no roster traffic on a PeerJS re-attach: {fx:?}");
    assert_eq!(hub.on_close(1), vec![]);
    assert_eq!(hub.stats().members, 2);
    // "a" is still in the room and can chat.
    let fx = hub.on_text(101, &chat_frame("still here"), 12);
    assert_eq!(recipients(&fx), vec![101, 102]);
}

#[test]
fn queue_for_an_id_is_replayed_on_the_connection_that_registers_it() {
    // A queue only exists while its id is unregistered; the connection that (re)registers the id
    // after a close gets it, whether it is a new token or the same one.
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.on_close(1);
    hub.on_text(2, &offer("a", 1), 20);
    let fx = hub.on_peerjs_open(3, "a", "tok-a", 30);
    assert_eq!(pj_to(&fx, 3)[1..], [relayed_offer("b", "a", 1)]);
}

#[test]
fn registry_limit_refuses_new_ids_but_not_reattach() {
    let mut hub = Sim::new(Config { peerjs_limit: 2, ..global_cfg() });
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let frame = r#"{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}"#.to_string();
    assert_eq!(hub.hub.on_peerjs_open(3, "c", "tok-c", "", 1), Admission::Refused { frame });
    assert_eq!(hub.stats().registered, 2);
    // Re-attach at the limit is allowed: it does not add an id.
    let fx = hub.on_peerjs_open(4, "a", "tok-a", 2);
    assert_eq!(raw_to(&fx, 4), vec![open()]);
    assert_eq!(closes(&fx), vec![(1, close::REPLACED)]);
    // ID-TAKEN wins over the limit for a held id (peerjs-server checks the registry first).
    let fx = hub.on_peerjs_open(5, "b", "other", 3);
    assert_eq!(raw_to(&fx, 5), vec![peerjs::id_taken_frame()]);
    // Once someone leaves, a new id fits again.
    hub.on_close(2);
    let fx = hub.on_peerjs_open(6, "c", "tok-c", 5);
    assert_eq!(raw_to(&fx, 6), vec![open()]);
}

#[test]
fn check_params_frames_are_the_peerjs_server_strings() {
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
