use super::*;

// ===== restore after hibernation ============================================================
// Attachments are all that survive eviction: the rebuilt hub must own exactly what they say.

#[test]
fn restore_rebuilds_registry_roster_chat_and_alarm() {
    let mut shell = Shell::default();
    let mut stored: Vec<ChatRecord> = Vec::new();
    let mut hub = Sim::new(cfg());
    // Carry out effects as the shell would: attachments, and chat written to storage.
    let run = |fx: Vec<Effect>, shell: &mut Shell, stored: &mut Vec<ChatRecord>| {
        stored.extend(persisted(&fx));
        shell.apply(&fx);
    };
    run(hub.on_peerjs_open(1, "a", "tok-a", 0), &mut shell, &mut stored);
    run(hub.on_peerjs_open(2, "b", "tok-b", 100), &mut shell, &mut stored);
    run(hub.on_peerjs_open(3, "c", "tok-c", 200), &mut shell, &mut stored);
    run(hub.on_peerjs_open(4, "d", "tok-d", 250), &mut shell, &mut stored);
    run(hub.on_room_open(101, 300), &mut shell, &mut stored);
    run(hub.on_room_open(102, 300), &mut shell, &mut stored);
    run(hub.on_room_open(103, 300), &mut shell, &mut stored); // stays un-joined
    run(hub.on_text(101, &join_frame("a", "tok-a", "Ada"), 400), &mut shell, &mut stored);
    run(hub.on_text(102, &join_frame("b", "tok-b", "Bob"), 500), &mut shell, &mut stored);
    run(
        hub.on_text(101, &media_frame(MediaPatch { hand: Some(true), ..Default::default() }), 550),
        &mut shell,
        &mut stored,
    );
    run(hub.on_text(101, &chat_frame("one"), 600), &mut shell, &mut stored);
    run(hub.on_text(102, &chat_frame("two"), 700), &mut shell, &mut stored);
    run(hub.on_text(3, r#"{"type":"LEAVE"}"#, 800), &mut shell, &mut stored); // sid 3 retired
    run(hub.on_peerjs_open(5, "d", "tok-d", 900), &mut shell, &mut stored); // sid 4 closed by us
    run(hub.on_peerjs_open(6, "e", "tok-e", 950), &mut shell, &mut stored);
    run(hub.on_close(6), &mut shell, &mut stored); // client closed: not listed any more
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
    let mut hub = Sim::restore(cfg(), sockets, stored.clone());
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string(), "d".to_string()]);
    assert_eq!(hub.stats().members, 2);
    assert_eq!(hub.stats().chat, 0, "chat is read from storage only when a room socket speaks");

    // The first event re-arms the alarm for the earliest deadline: silent socket 103.
    let fx = hub.on_text(2, &offer("a", 1), 6_000);
    assert_eq!(alarms(&fx), vec![300 + ALIVE]);
    assert_eq!(pj_to(&fx, 1), vec![relayed_offer("b", "a", 1)]);
    assert_eq!(alarms(&hub.on_text(1, &offer("b", 2), 6_001)), Vec::<u64>::new(), "only once");

    // Registry: ids are held against other tokens, by the newest socket.
    assert_eq!(closes(&hub.on_peerjs_open(7, "a", "evil", 6_002)), vec![(7, close::NORMAL)]);
    assert_eq!(closes(&hub.on_peerjs_open(7, "d", "evil", 6_002)), vec![(7, close::NORMAL)]);
    // "d" never joined: a member's OFFER to it is refused with EXPIRE, never relayed or queued.
    assert_eq!(pj_to(&hub.on_text(1, &offer("d", 3), 6_003), 1), vec![expire_for("d", "a")]);
    // Retired sockets own nothing: their frames are ignored and "c" is free.
    assert_eq!(hub.on_text(3, &offer("a", 4), 6_004), vec![]);
    assert_eq!(hub.on_text(4, &offer("a", 5), 6_004), vec![]);
    assert_eq!(hub.on_close(4), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string(), "d".to_string()]);
    let fx = hub.on_peerjs_open(8, "c", "new", 6_006);
    assert_eq!(raw_to(&fx, 8), vec![open()]);

    // Roster and chat: a newcomer sees the restored members (with their media) and history.
    hub.on_room_open(104, 6_007);
    let fx = hub.on_text(104, &join_frame("c", "new", "Cy"), 6_008);
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
    let fx = hub.on_text(101, &chat_frame("three"), 6_009);
    let rec = persisted(&fx).remove(0);
    assert_eq!((rec.id, rec.name.as_str(), rec.peer_id.as_str()), (3, "Ada", "a"));
    assert!(rec.ts > stored[1].ts);
    // The un-joined restored room socket is still un-joined; a restored member is already joined.
    assert_eq!(only_error(&hub.on_text(103, &chat_frame("x"), 6_010), 103), ErrorCode::NotJoined);
    assert_eq!(only_error(&hub.on_text(102, &join_frame("b", "tok-b", "B"), 6_011), 102), ErrorCode::AlreadyJoined);
    // PeerJS close of a restored member makes it reconnecting, told to the others.
    let fx = hub.on_close(2);
    let away = ServerFrame::PeerPresence { peer_id: "b".into(), presence: Presence::Reconnecting };
    assert_eq!(room_to(&fx, 101), vec![away]);
    assert_eq!(room_to(&fx, 102), vec![]);
    // Liveness continues from the restored heartbeat times: "d" (sid 5) has sent nothing since
    // its heartbeat at 5 000, every other socket has been active after 6 000.
    let fx = hub.on_alarm(5_000 + ALIVE, &[]);
    assert_eq!(closes(&fx), vec![(5, close::ALIVE_TIMEOUT)]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "c".to_string()]);
}

#[test]
fn restore_first_event_alarm_and_duplicate_claims() {
    // Two attachments claiming one id (a socket the runtime had not yet closed): the newest wins.
    let att = |sid: Sid, since: u64, role: Role| (att(sid, since, role), None);
    let pj = |id: &str, token: &str| Role::PeerJs { id: id.into(), token: token.into() };
    let m = |id: &str| Role::Room { member: Some(member(id, id, 0)) };
    let mut hub = Sim::restore(
        cfg(),
        vec![att(2, 20, pj("a", "new")), att(1, 10, pj("a", "old")), att(102, 30, m("a")), att(101, 5, m("a"))],
        vec![],
    );
    assert_eq!(hub.stats().members, 1);
    assert_eq!(hub.stats().registered, 1);
    // First event (even a no-op one) asks for the alarm: the oldest socket, 5 + ALIVE.
    assert_eq!(hub.on_text(999, "junk", 40), vec![Effect::SetAlarm { at_ms: 5 + ALIVE }]);
    assert_eq!(hub.on_text(999, "junk", 41), vec![]);
    // Old sockets own nothing: they cannot speak as "a" nor release it.
    assert_eq!(hub.on_text(1, &offer("a", 1), 42), vec![]);
    assert_eq!(hub.on_text(101, &chat_frame("as a"), 42), vec![]);
    assert_eq!(hub.stats().chat, 0);
    assert_eq!(hub.on_close(1), vec![]);
    assert_eq!(hub.on_close(101), vec![]);
    assert_eq!(hub.peer_ids(), vec!["a".to_string()]);
    assert_eq!(hub.stats().members, 1);
    assert_eq!(closes(&hub.on_peerjs_open(3, "a", "old", 43)), vec![(3, close::NORMAL)]);
    assert_eq!(raw_to(&hub.on_peerjs_open(3, "a", "new", 44), 3), vec![open()]);
}

#[test]
fn restore_then_alarm_first() {
    let att = att(1, 0, Role::PeerJs { id: "a".into(), token: "t".into() });
    let mut hub = Sim::restore(global_cfg(), vec![(att, Some(ALIVE - 1))], vec![]);
    // Woken by an early alarm: nothing dies, the alarm is re-armed at the heartbeat's deadline.
    assert_eq!(hub.on_alarm(ALIVE, &[]), vec![Effect::SetAlarm { at_ms: 2 * ALIVE - 1 }]);
}

#[test]
fn member_whose_peerjs_socket_vanished_while_asleep_is_reconnecting_on_wake() {
    // Two members; b's PeerJS socket closed while the object was evicted, so only its room
    // socket's attachment survives. Its seat (in storage) holds: b is reconnecting, not gone.
    let mut hub = Sim::new(cfg());
    let mut shell = Shell::default();
    for (pj, room, id) in [(1, 101, "a"), (2, 102, "b")] {
        shell.apply(&peer(&mut hub, pj, id, 0));
        shell.apply(&hub.on_room_open(room, 0));
        shell.apply(&hub.on_text(room, &join_frame(id, &tok(id), id), 0));
    }
    shell.gone(2);
    let seats: Vec<SeatRecord> = hub.seats.values().cloned().collect();
    assert_eq!(seats.len(), 2);
    let restored = shell.att.values().map(|a| (a.clone(), None)).collect();
    let mut hub = Sim::restore_seats(cfg(), restored, vec![], seats, 10);
    assert_eq!(hub.stats().members, 2);
    assert_eq!(hub.stats().reconnecting, 1);
    let fx = hub.on_text(101, r#"{"type":"HEARTBEAT","n":1}"#, 10);
    let away = ServerFrame::PeerPresence { peer_id: "b".into(), presence: Presence::Reconnecting };
    assert_eq!(room_to(&fx, 101), vec![away]);
    assert_eq!(room_to(&fx, 102), vec![]);
    // Its id is still b's: only b's token may register it, and that makes b present again.
    assert_eq!(closes(&hub.on_peerjs_open(9, "b", "thief", 11)), vec![(9, close::NORMAL)]);
    let fx = hub.on_peerjs_open(3, "b", "tok-b", 12);
    let back = ServerFrame::PeerPresence { peer_id: "b".into(), presence: Presence::Present };
    assert_eq!(room_to(&fx, 101), vec![back]);
}

#[test]
fn a_restart_that_drops_every_socket_keeps_every_seat_for_the_grace_period() {
    // A deploy or a crash: no socket survives, only storage. Each member comes back with its
    // token and resumes; nobody is told anyone left.
    let mut hub = Sim::new(cfg());
    for (pj, room, id) in [(1, 101, "a"), (2, 102, "b"), (3, 103, "c")] {
        member_in(&mut hub, pj, room, id, id, 0);
    }
    let seats: Vec<SeatRecord> = hub.seats.values().cloned().collect();
    let mut hub = Sim::restore_seats(cfg(), vec![], vec![], seats, 1_000);
    assert_eq!((hub.stats().members, hub.stats().reconnecting), (3, 3));
    // a and b come back (PeerJS first, then the room socket, as the page does).
    for (pj, room, id) in [(4, 104, "a"), (5, 105, "b")] {
        peer(&mut hub, pj, id, 2_000);
        hub.on_room_open(room, 2_000);
        let fx = hub.on_text(room, &join_frame(id, &tok(id), id), 2_001);
        assert!(matches!(&room_to(&fx, room)[0], ServerFrame::Welcome { resumed: true, .. }), "{fx:?}");
        assert!(room_to(&fx, 104).iter().all(|f| !matches!(f, ServerFrame::PeerJoined { .. })));
    }
    assert_eq!(hub.stats().reconnecting, 1);
    // c never comes back: its seat ends a grace period after the restart.
    let beats: Vec<(Sid, u64)> = [4, 5, 104, 105].iter().map(|s| (*s, 1_000 + GRACE)).collect();
    let fx = hub.on_alarm(1_000 + GRACE, &beats);
    let gone = ServerFrame::PeerLeft { peer_id: "c".into(), reason: LeaveReason::Gone };
    assert_eq!(room_to(&fx, 104), vec![gone.clone()]);
    assert_eq!(room_to(&fx, 105), vec![gone]);
    assert!(!hub.seats.contains_key("c"));
}
