use super::*;

// ===== room: join and welcome ============================================================
// Joining proves ownership of a PeerJS id, so everyone in the roster can be called by that id.

#[test]
fn join_attaches_welcomes_and_announces_to_members_only() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 10);
    member_in(&mut hub, 2, 102, "b", "Bob", 20);
    hub.on_room_open(103, 25); // connected, not joined
    peer(&mut hub, 3, "c", 30);
    hub.on_room_open(104, 30);
    let text = cf(&ClientFrame::Join {
        peer_id: "c".into(),
        token: "tok-c".into(),
        name: "Cy".into(),
        media: Some(MediaPatch { mic: Some(true), ..Default::default() }),
    });
    let fx = hub.on_text(104, &text, 40);
    let me = Member { media: MediaState { mic: true, ..Default::default() }, ..member("c", "Cy", 40) };
    let welcome = ServerFrame::Welcome {
        me: me.clone(),
        peers: vec![member("a", "Ada", 10), member("b", "Bob", 20)],
        chat: vec![],
        ice_servers: json!([{ "urls": "stun:stun.test:3478" }]),
        limits: limits(),
        resumed: false,
    };
    let joined = ServerFrame::PeerJoined { peer: me.clone() };
    assert_eq!(
        fx,
        vec![
            Effect::SaveSeat(SeatRecord { member: me.clone(), token: "tok-c".into(), order: 3 }),
            Effect::Attach { sid: 104, attachment: att(104, 30, Role::Room { member: Some(me) }) },
            send_frame(104, &welcome),
            send_frame(101, &joined),
            send_frame(102, &joined),
        ]
    );
    assert!(raw_to(&fx, 104)[0].contains(r#""self":{"peerId":"c""#), "welcome uses `self`: {:?}", raw_to(&fx, 104));
    assert_eq!(hub.stats().members, 3);
}

#[test]
fn welcome_carries_configured_ice_servers() {
    let mut hub = Sim::new(cfg());
    let turn = json!([{ "urls": ["turn:t.example:3478"], "username": "u", "credential": "c" }]);
    hub.hub.set_ice_servers(turn.clone());
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
fn welcome_lists_peers_in_join_order_even_within_one_millisecond() {
    // Workers' clock does not advance within a burst of events, so joins often share a `now`.
    let mut hub = Sim::new(cfg());
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

// ===== room: join errors and malformed frames ===========================================
// Every client mistake gets a precise error code and leaves the socket usable.

#[test]
fn join_errors_have_codes_and_keep_the_socket() {
    let mut hub = Sim::new(cfg());
    peer(&mut hub, 1, "a", 0);
    hub.on_room_open(101, 0);
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
        assert_eq!(only_error(&hub.on_text(101, text, 1 + i as u64), 101), *code, "{text}");
    }
    assert_eq!(hub.stats().members, 0);
    // Still usable: a good join works on the same socket, with a name of exactly 32 chars.
    let name = "é".repeat(NAME_MAX_CHARS);
    let fx = hub.on_text(101, &join_frame("a", "tok-a", &name), 50);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::Welcome { me, .. } if me.name == name));
    assert_eq!(only_error(&hub.on_text(101, &join_frame("a", "tok-a", "Ada"), 51), 101), ErrorCode::AlreadyJoined);
}

#[test]
fn unknown_peer_after_its_peerjs_socket_left() {
    let mut hub = Sim::new(cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    hub.on_close(1);
    hub.on_text(2, r#"{"type":"LEAVE"}"#, 1);
    hub.on_room_open(101, 2);
    assert_eq!(only_error(&hub.on_text(101, &join_frame("a", "tok-a", "Ada"), 3), 101), ErrorCode::UnknownPeer);
    assert_eq!(only_error(&hub.on_text(101, &join_frame("b", "tok-b", "Bob"), 4), 101), ErrorCode::UnknownPeer);
}

#[test]
fn room_full_counts_members_and_frees_up_after_a_leave() {
    let mut hub = Sim::new(cfg());
    hub.on_room_open(150, 0); // un-joined sockets do not count
    hub.on_room_open(151, 0);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        member_in(&mut hub, 1 + i as Sid, 101 + i as Sid, id, id, 0);
    }
    peer(&mut hub, 4, "d", 0);
    hub.on_room_open(104, 0);
    let fx = hub.on_text(104, &join_frame("d", "tok-d", "Dee"), 1);
    assert_eq!(fx, vec![send_frame(104, &ServerFrame::error(ErrorCode::RoomFull, "this room is full (3 people)"))]);
    assert_eq!(hub.stats().members, CAP);
    hub.on_text(102, &leave_frame(), 2);
    let fx = hub.on_text(104, &join_frame("d", "tok-d", "Dee"), 3);
    assert!(matches!(&room_to(&fx, 104)[0], ServerFrame::Welcome { .. }));
    assert_eq!(hub.stats().members, CAP);
    // A member whose room socket closes keeps its seat through the grace period: still full.
    assert_eq!(only_error(&hub.on_text(102, &join_frame("b", "tok-b", "Bob"), 4), 102), ErrorCode::RoomFull);
    hub.on_close(101);
    hub.on_close(1);
    assert_eq!(only_error(&hub.on_text(102, &join_frame("b", "tok-b", "Bob"), 5), 102), ErrorCode::RoomFull);
    // When it ends, the place is free. (b's own sockets sat unseated past the join window
    // meanwhile and were closed, so b comes back on new ones.)
    let alive: Vec<(Sid, u64)> = [2, 3, 4, 102, 103, 104].iter().map(|s| (*s, 4 + GRACE)).collect();
    let fx = hub.on_alarm(4 + GRACE, &alive);
    assert!(closes(&fx).ends_with(&[(2, close::JOIN_WINDOW), (102, close::JOIN_WINDOW)]), "{fx:?}");
    peer(&mut hub, 5, "b", 5 + GRACE);
    hub.on_room_open(105, 5 + GRACE);
    assert!(matches!(
        &room_to(&hub.on_text(105, &join_frame("b", "tok-b", "Bob"), 5 + GRACE), 105)[0],
        ServerFrame::Welcome { .. }
    ));
}

#[test]
fn not_joined_for_chat_media_leave() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    hub.on_room_open(102, 0);
    for text in [chat_frame("hi"), media_frame(MediaPatch { mic: Some(true), ..Default::default() }), leave_frame()] {
        assert_eq!(only_error(&hub.on_text(102, &text, 1), 102), ErrorCode::NotJoined, "{text}");
    }
    // HEARTBEAT before join is fine and silent.
    assert_eq!(hub.on_text(102, r#"{"type":"HEARTBEAT"}"#, 2), vec![]);
    // After leaving, the socket is un-joined again.
    hub.on_text(101, &leave_frame(), 3);
    assert_eq!(only_error(&hub.on_text(101, &chat_frame("hi"), 4), 101), ErrorCode::NotJoined);
}

#[test]
fn malformed_frames_get_precise_codes() {
    let mut hub = Sim::new(cfg());
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
        assert_eq!(only_error(&hub.on_text(101, text, 1 + i as u64), 101), *code, "{text}");
    }
    // Still joined and usable.
    assert_eq!(hub.stats().members, 1);
    assert!(matches!(&room_to(&hub.on_text(101, &chat_frame("ok"), 100), 101)[0], ServerFrame::Chat { .. }));
}

#[test]
fn binary_and_oversize_room_frames() {
    let mut hub = Sim::new(cfg());
    hub.on_room_open(101, 0);
    assert_eq!(only_error(&hub.on_binary(101, 3, 1), 101), ErrorCode::BinaryUnsupported);
    let mut big = r#"{"type":"HEARTBEAT"}"#.to_string();
    big.push_str(&" ".repeat(MAX_FRAME_BYTES - big.len()));
    assert_eq!(hub.on_text(101, &big, 2), vec![], "exactly 64 KiB is read");
    big.push(' ');
    assert_eq!(only_error(&hub.on_text(101, &big, 3), 101), ErrorCode::FrameTooLarge);
    assert_eq!(only_error(&hub.on_binary(101, MAX_FRAME_BYTES + 1, 4), 101), ErrorCode::FrameTooLarge);
    // Usable afterwards.
    peer(&mut hub, 1, "a", 5);
    assert!(matches!(
        &room_to(&hub.on_text(101, &join_frame("a", "tok-a", "Ada"), 6), 101)[0],
        ServerFrame::Welcome { .. }
    ));
}

#[test]
fn rate_limit_sends_one_error_per_flood_and_recovers() {
    let mut hub = Sim::new(Config { room_rate: Rate { per_sec: 10, burst: 5 }, ..cfg() });
    member_in(&mut hub, 1, 101, "a", "Ada", 0); // the join takes one token
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let mut chats_to_b = 0;
    let mut errors = Vec::new();
    for i in 0..20 {
        let fx = hub.on_text(101, &chat_frame(&format!("m{i}")), 0);
        chats_to_b += room_to(&fx, 102).len();
        errors.extend(room_to(&fx, 101).iter().filter_map(err_code));
        assert_eq!(closes(&fx), vec![]);
    }
    assert_eq!(chats_to_b, 4, "burst 5 minus the join");
    assert_eq!(errors, vec![ErrorCode::RateLimited], "exactly one error for the whole flood");
    assert_eq!(hub.stats().chat, 4);
    // Before a token refills: still dropped, still no second error.
    assert_eq!(hub.on_text(101, &chat_frame("early"), 99), vec![]);
    // After 100 ms at 10/s: one frame goes through.
    let fx = hub.on_text(101, &chat_frame("later"), 100);
    assert_eq!(recipients(&fx), vec![101, 102]);
    // A new flood after service resumed gets its own single error.
    let fx = hub.on_text(101, &chat_frame("again"), 100);
    assert_eq!(only_error(&fx, 101), ErrorCode::RateLimited);
    // Others are unaffected.
    assert_eq!(recipients(&hub.on_text(102, &chat_frame("b"), 100)), vec![101, 102]);
}
