use super::*;

// ===== PeerJS: relay =================================================================
// The server is the only authority on `src`: peers trust it to know who is calling.

#[test]
fn relays_every_relayed_type_with_src_from_the_registry() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    for kind in ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"] {
        let text =
            format!(r#"{{"type":"{kind}","payload":{{"x":[1,"two",null]}},"dst":"b","src":"mallory","extra":true}}"#);
        let fx = hub.on_text(1, &text, 10);
        assert_eq!(
            fx,
            vec![send(2, &format!(r#"{{"type":"{kind}","src":"a","dst":"b","payload":{{"x":[1,"two",null]}}}}"#))],
            "{kind}"
        );
    }
}

#[test]
fn payload_omitted_when_absent_and_self_relay_works() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.on_text(1, r#"{"type":"LEAVE","dst":"b"}"#, 1);
    assert_eq!(fx, vec![send(2, r#"{"type":"LEAVE","src":"a","dst":"b"}"#)]);
    let fx = hub.on_text(1, &offer("a", 9), 2);
    assert_eq!(recipients(&fx), vec![1]);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("a", "a", 9)]);
    // Escaped strings in dst are decoded before lookup.
    let fx = hub.on_text(1, r#"{"type":"ANSWER","dst":"\u0062","payload":{}}"#, 3);
    assert_eq!(fx, vec![send(2, r#"{"type":"ANSWER","src":"a","dst":"b","payload":{}}"#)]);
}

#[test]
fn ignored_frames_send_nothing_and_keep_the_socket() {
    let mut hub = Sim::new(global_cfg());
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
        assert_eq!(hub.on_text(1, j, 1 + i as u64), vec![], "{j}");
    }
    assert_eq!(hub.on_binary(1, 10, 100), vec![], "binary frames are ignored on PeerJS sockets");
    // Still registered, still relaying, nothing queued.
    assert_eq!(hub.stats().queued, 0);
    let fx = hub.on_text(1, &offer("b", 1), 200);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 1)]);
}

// ===== PeerJS: offline queues and EXPIRE ===================================================
// EXPIRE is the only way a peerjs client learns that an id is unknown ("peer-unavailable").

#[test]
fn unknown_dst_is_queued_with_one_alarm_at_first_message_plus_expire() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    assert_eq!(hub.on_text(1, &offer("ghost", 1), 100), vec![Effect::SetAlarm { at_ms: 100 + EXPIRE }]);
    assert_eq!(hub.on_text(1, &offer("ghost", 2), 200), vec![], "a second message starts no alarm");
    assert_eq!(hub.on_text(1, &offer("ghost2", 3), 300), vec![], "a later deadline needs no new alarm");
    assert_eq!(hub.stats().queued, 3);
    // LEAVE and EXPIRE are never queued.
    assert_eq!(hub.on_text(1, r#"{"type":"LEAVE","dst":"ghost3"}"#, 301), vec![]);
    assert_eq!(hub.on_text(1, r#"{"type":"EXPIRE","dst":"ghost3"}"#, 302), vec![]);
    assert_eq!(hub.stats().queued, 3);

    // Early alarm: nothing sent, the alarm is re-armed for the same deadline.
    let fx = hub.on_alarm(100 + EXPIRE - 1, &[]);
    assert_eq!(fx, vec![Effect::SetAlarm { at_ms: 100 + EXPIRE }]);
    // At the deadline: one EXPIRE for "ghost" (two messages, one sender), queue gone.
    let fx = hub.on_alarm(100 + EXPIRE, &[]);
    assert_eq!(
        fx,
        vec![send(1, r#"{"type":"EXPIRE","src":"ghost","dst":"a"}"#), Effect::SetAlarm { at_ms: 300 + EXPIRE }]
    );
    assert_eq!(hub.stats().queued, 1);
    let fx = hub.on_alarm(300 + EXPIRE + 50, &[]);
    assert_eq!(pj_to(&fx, 1), vec![expire_for("ghost2", "a")]);
    assert_eq!(hub.stats().queued, 0);
    // Nothing is left to expire.
    let fx = hub.on_alarm(300 + EXPIRE + 60, &[]);
    assert_eq!(recipients(&fx), Vec::<Sid>::new());
}

#[test]
fn one_expire_per_distinct_sender_and_none_to_departed_senders() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    peer(&mut hub, 3, "c", 0);
    hub.on_text(1, &offer("ghost", 1), 10);
    hub.on_text(2, &offer("ghost", 2), 11);
    hub.on_text(1, &offer("ghost", 3), 12);
    hub.on_text(3, &offer("ghost", 4), 13);
    hub.on_close(3); // "c" will not get its EXPIRE
    let fx = hub.on_alarm(10 + EXPIRE, &[]);
    assert_eq!(recipients(&fx), vec![1, 2]);
    assert_eq!(pj_to(&fx, 1), vec![expire_for("ghost", "a")]);
    assert_eq!(pj_to(&fx, 2), vec![expire_for("ghost", "b")]);
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn expire_goes_to_the_senders_current_socket() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    hub.on_text(1, &offer("ghost", 1), 10);
    hub.on_peerjs_open(2, "a", "tok-a", 20); // re-attach
    let fx = hub.on_alarm(10 + EXPIRE, &[]);
    assert_eq!(recipients(&fx), vec![2]);
}

#[test]
fn dst_registering_before_expiry_gets_frames_and_no_expire_follows() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    hub.on_text(1, &offer("b", 1), 100);
    hub.on_text(1, &offer("b", 2), 150);
    let fx = hub.on_peerjs_open(2, "b", "tok-b", 100 + EXPIRE - 1);
    assert_eq!(pj_to(&fx, 2)[1..], [relayed_offer("a", "b", 1), relayed_offer("a", "b", 2)]);
    for t in [100 + EXPIRE, 100 + EXPIRE * 5] {
        let fx = hub.on_alarm(t, &[(1, t), (2, t)]);
        assert_eq!(recipients(&fx), Vec::<Sid>::new(), "no EXPIRE after delivery");
    }
}
