use super::*;

// ===== membership: the roster decides who may signal whom ===============================
// In a room, a PeerJS registration is not membership: only seated members exchange media, ids
// that never join cannot crowd members out, and each client address has a socket budget.

#[test]
fn a_registered_id_that_never_joined_cannot_call_a_member() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    peer(&mut hub, 2, "eve", 0); // registered in the room, never joins
    let fx = hub.on_text(2, &offer("a", 1), 1);
    assert_eq!(fx, vec![send(2, &peerjs::expire_frame("a", "eve"))], "EXPIRE at once, nothing to the member");
    // Nor can it answer, trickle candidates or LEAVE: dropped, nothing queued.
    for kind in ["ANSWER", "CANDIDATE", "LEAVE"] {
        assert_eq!(hub.on_text(2, &pjf(kind, Some("a"), Some(json!({}))), 2), vec![], "{kind}");
    }
    assert_eq!(hub.stats().queued, 0);
}

#[test]
fn a_member_cannot_signal_someone_who_is_not_seated() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    peer(&mut hub, 2, "eve", 0);
    assert_eq!(hub.on_text(1, &offer("eve", 1), 1), vec![send(1, &peerjs::expire_frame("eve", "a"))]);
    assert_eq!(hub.on_text(1, &offer("nobody", 1), 1), vec![send(1, &peerjs::expire_frame("nobody", "a"))]);
    assert_eq!(hub.stats().queued, 0, "never queued for a non-member");
}

#[test]
fn members_signal_each_other_as_on_peerjs_server() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_text(1, &offer("b", 7), 1);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 7)]);
}

#[test]
fn the_global_server_keeps_peerjs_server_semantics() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(pj_to(&hub.on_text(1, &offer("b", 1), 1), 2), vec![relayed_offer("a", "b", 1)]);
    assert_eq!(alarms(&hub.on_text(1, &offer("later", 2), 1)), vec![1 + EXPIRE], "queued for an offline id");
    // No join window there: an id lives while it heartbeats.
    let beats: Vec<(Sid, u64)> = vec![(1, WINDOW), (2, WINDOW)];
    assert_eq!(closes(&hub.on_alarm(WINDOW + 1, &beats)), vec![]);
}

#[test]
fn unseated_sockets_are_closed_after_the_join_window() {
    let mut hub = Sim::new(Config { alive_timeout_ms: 10 * WINDOW, ..cfg() });
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    peer(&mut hub, 2, "idle", 0);
    let fx = hub.on_room_open(102, 0);
    assert_eq!(alarms(&fx), Vec::<u64>::new(), "the first socket's alarm is earlier or equal");
    let beats: Vec<(Sid, u64)> = vec![(1, WINDOW), (2, WINDOW), (101, WINDOW), (102, WINDOW)];
    assert_eq!(closes(&hub.on_alarm(WINDOW - 1, &beats)), vec![]);
    let fx = hub.on_alarm(WINDOW, &beats);
    assert_eq!(closes(&fx), vec![(2, close::JOIN_WINDOW), (102, close::JOIN_WINDOW)], "heartbeats do not help");
    assert_eq!(hub.peer_ids(), vec!["a".to_string()]);
    // A member that leaves has the join window from its leave.
    hub.on_text(101, &leave_frame(), WINDOW + 10);
    let beats: Vec<(Sid, u64)> = vec![(1, 2 * WINDOW), (101, 2 * WINDOW)];
    assert_eq!(closes(&hub.on_alarm(2 * WINDOW + 9, &beats)), vec![]);
    assert_eq!(
        closes(&hub.on_alarm(2 * WINDOW + 10, &beats)),
        vec![(1, close::JOIN_WINDOW), (101, close::JOIN_WINDOW)]
    );
}

#[test]
fn ids_that_never_join_cannot_lock_a_guest_out() {
    let mut hub = Sim::new(Config { peerjs_limit: 4, ..cfg() });
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    for (i, sid) in (2..=4).enumerate() {
        peer(&mut hub, sid, &format!("squat{i}"), 10 + i as u64);
    }
    assert_eq!(hub.stats().registered, 4, "the registry is full");
    // A guest still gets in: the oldest id nobody is seated as gives up its place.
    let fx = peer(&mut hub, 5, "guest", 20);
    assert_eq!(closes(&fx), vec![(2, close::JOIN_WINDOW)]);
    hub.on_room_open(105, 20);
    let fx = hub.on_text(105, &join_frame("guest", &tok("guest"), "Guest"), 21);
    assert!(matches!(&room_to(&fx, 105)[0], ServerFrame::Welcome { .. }));
    // However often the squatter re-registers, members are never evicted.
    for n in 0..10 {
        peer(&mut hub, 10 + n, &format!("again{n}"), 30 + n);
    }
    assert!(hub.peer_ids().contains(&"a".to_string()) && hub.peer_ids().contains(&"guest".to_string()));
}

#[test]
fn when_every_id_is_seated_the_registry_is_full() {
    let mut hub = Sim::new(Config { peerjs_limit: 2, ..cfg() });
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let refused = hub.hub.on_peerjs_open(3, "c", "tok-c", "", 1);
    assert_eq!(refused, Admission::Refused { frame: peerjs::error_frame(peerjs::MSG_LIMIT) });
}

#[test]
fn one_client_address_has_a_socket_budget() {
    let mut hub = Sim::new(Config { client_limit: 3, ..cfg() });
    for sid in 1..=3 {
        let fx = hub.on_peerjs_open_from(sid, &format!("p{sid}"), "t", "198.51.100.7", 0);
        assert_eq!(raw_to(&fx, sid), vec![open()]);
    }
    let fx = hub.on_peerjs_open_from(4, "p4", "t", "198.51.100.7", 0);
    assert_eq!(raw_to(&fx, 4), vec![peerjs::error_frame(peerjs::MSG_LIMIT)]);
    assert_eq!(closes(&hub.on_room_open_from(104, "198.51.100.7", 0)), vec![(104, 429)], "room sockets count too");
    // Another address is unaffected, and a closed socket frees its place.
    assert_eq!(raw_to(&hub.on_peerjs_open_from(5, "q", "t", "203.0.113.9", 0), 5), vec![open()]);
    hub.on_close(1);
    assert_eq!(raw_to(&hub.on_peerjs_open_from(6, "p6", "t", "198.51.100.7", 1), 6), vec![open()]);
}

#[test]
fn a_queue_over_its_byte_budget_expires_what_it_drops_to_the_sender() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_close(2); // b reconnecting: frames for it are queued
    let big = pjf("CANDIDATE", Some("b"), Some(json!("x".repeat(60 * 1024))));
    let mut expired = 0;
    for n in 0..6 {
        let fx = hub.on_text(1, &big, 1 + n);
        expired += pj_to(&fx, 1).iter().filter(|f| **f == expire_for("b", "a")).count();
    }
    assert_eq!(expired, 2, "4 × 60 KiB fit in 256 KiB, the 5th and 6th are dropped and EXPIREd");
    assert!(hub.stats().queued_bytes <= crate::limits::QUEUE_MAX_BYTES_PER_DST);
    assert_eq!(hub.stats().queued, 4);
}
