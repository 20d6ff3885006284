use super::*;

// ===== PeerJS: LEAVE without dst, close, alive timeout ================================

#[test]
fn leave_without_dst_unregisters_without_closing() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let fx = hub.on_text(1, r#"{"type":"LEAVE"}"#, 50);
    assert_eq!(fx, vec![Effect::Attach { sid: 1, attachment: att(1, 0, Role::Retired) }]);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    // The socket stays open but owns nothing: its frames are ignored.
    assert_eq!(hub.on_text(1, &offer("b", 1), 51), vec![]);
    // Frames to "a" are queued now, and a new token can take the id.
    hub.on_text(2, &offer("a", 2), 52);
    let fx = hub.on_peerjs_open(3, "a", "new-token", 53);
    assert_eq!(pj_to(&fx, 3)[1..], [relayed_offer("b", "a", 2)]);
    // The retired socket's close changes nothing.
    assert_eq!(hub.on_close(1), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
    // An empty dst counts as none, as in peerjs-server (`!dst`).
    let fx = hub.on_text(3, r#"{"type":"LEAVE","dst":""}"#, 55);
    assert_eq!(attaches(&fx)[0].1.role, Role::Retired);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
}

#[test]
fn close_unregisters_at_once_and_reconnect_gets_the_queue() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(hub.on_close(1), vec![], "no LEAVE is broadcast on close");
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    assert_eq!(hub.on_text(2, &offer("a", 1), 20), vec![Effect::SetAlarm { at_ms: 20 + EXPIRE }]);
    // A reload (new token) within the expire timeout gets what was sent meanwhile.
    let fx = hub.on_peerjs_open(3, "a", "reloaded", 20 + EXPIRE - 1);
    assert_eq!(
        pj_to(&fx, 3),
        vec![PeerJsFrame { kind: "OPEN".into(), src: None, dst: None, payload: None }, relayed_offer("b", "a", 1)]
    );
}

#[test]
fn alive_timeout_closes_4001_and_clears_the_queue() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.on_text(2, &offer("ghost", 1), ALIVE - 500);
    // Only "a" is silent for ALIVE ms.
    let fx = hub.on_alarm(ALIVE, &[]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    assert_eq!(fx[..2], [retire(1, 0), Effect::Close { sid: 1, code: close::ALIVE_TIMEOUT, reason: "alive timeout" }]);
    assert_eq!(recipients(&fx), Vec::<Sid>::new(), "no frame before the close");
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    // Its late close event is a no-op.
    assert_eq!(hub.on_close(1), vec![]);
    // A new socket may take the id, and gets only OPEN.
    let fx = hub.on_peerjs_open(3, "a", "x", ALIVE + 2);
    assert_eq!(raw_to(&fx, 3), vec![open()]);
}

#[test]
fn alive_timeout_of_a_dst_drops_its_queue_after_expiry_deadline() {
    // Messages to an id whose socket timed out are queued afresh and expire normally.
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 5);
    let fx = hub.on_alarm(ALIVE, &[(2, ALIVE)]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    hub.on_text(2, &offer("a", 1), ALIVE + 1);
    let fx = hub.on_alarm(ALIVE + 1 + EXPIRE, &[(2, ALIVE + 1 + EXPIRE)]);
    assert_eq!(pj_to(&fx, 2), vec![expire_for("a", "b")]);
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn traffic_and_heartbeats_keep_sockets_alive_without_costing_alarms() {
    let mut hub = Sim::new(global_cfg());
    assert_eq!(alarms(&hub.on_peerjs_open(1, "talker", "t", 0)), vec![ALIVE]);
    assert_eq!(alarms(&hub.on_peerjs_open(2, "beater", "t", 0)), Vec::<u64>::new());
    assert_eq!(alarms(&hub.on_peerjs_open(3, "silent", "t", 0)), Vec::<u64>::new());
    assert_eq!(alarms(&hub.on_room_open(101, 0)), Vec::<u64>::new());
    // Ordinary traffic, HEARTBEATs included, never asks for an alarm.
    for t in (100..ALIVE).step_by(500) {
        assert_eq!(hub.on_text(1, r#"{"type":"HEARTBEAT"}"#, t), vec![]);
        assert_eq!(alarms(&hub.on_text(1, &offer("beater", t), t)), Vec::<u64>::new());
        assert_eq!(hub.on_text(101, r#"{"type":"HEARTBEAT"}"#, t), vec![]);
    }
    // The runtime answered "beater"'s heartbeats (they never reached text()).
    let fx = hub.on_alarm(ALIVE, &[(2, ALIVE - 1), (999, ALIVE)]);
    assert_eq!(closes(&fx), vec![(3, close::ALIVE_TIMEOUT)]);
    // Next deadline: the oldest liveness among survivors.
    let last_talk = (100..ALIVE).step_by(500).last().unwrap();
    assert_eq!(alarms(&fx), vec![(ALIVE - 1 + ALIVE).min(last_talk + ALIVE)]);
    assert_eq!(hub.peer_ids(), vec!["beater".to_string(), "talker".to_string()]);
    // A heartbeat older than what the hub already saw does not shorten liveness.
    let fx = hub.on_alarm(last_talk + ALIVE - 1, &[(1, 0), (2, last_talk + ALIVE - 1)]);
    assert_eq!(closes(&fx), vec![]);
}

#[test]
fn alarm_with_nothing_left_asks_for_none() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    hub.on_close(1);
    assert_eq!(hub.on_alarm(ALIVE, &[]), vec![]);
    // The next socket asks for an alarm again.
    assert_eq!(alarms(&hub.on_peerjs_open(2, "b", "t", ALIVE + 1)), vec![ALIVE + 1 + ALIVE]);
}
