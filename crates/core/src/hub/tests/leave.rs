use super::*;

// ===== room: media, leave, close, timeouts ==============================================

#[test]
fn media_patch_merges_and_is_broadcast_to_all_including_sender() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 7);
    member_in(&mut hub, 2, 102, "b", "Bob", 8);
    hub.on_text(101, &media_frame(MediaPatch { mic: Some(true), camera: Some(true), ..Default::default() }), 9);
    let fx = hub.on_text(101, r#"{"type":"media","camera":false,"hand":true}"#, 10);
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
fn leave_tells_self_and_others_and_allows_rejoin() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 3);
    member_in(&mut hub, 2, 102, "b", "Bob", 4);
    member_in(&mut hub, 3, 103, "c", "Cy", 5);
    let fx = hub.on_text(102, &leave_frame(), 6);
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
    let fx = hub.on_text(102, &join_frame("b", "tok-b", "Bobby"), 7);
    assert!(matches!(&room_to(&fx, 102)[0], ServerFrame::Welcome { me, .. } if me.name == "Bobby"));
    assert_eq!(recipients(&fx), vec![102, 101, 103]);
}

#[test]
fn room_socket_close_broadcasts_peer_left_closed() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_room_open(103, 0);
    let fx = hub.on_close(101);
    assert_eq!(fx, vec![send_frame(102, &ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Closed })]);
    assert_eq!(hub.stats().members, 1);
    // The PeerJS id stays registered: a new room socket may join with it.
    hub.on_room_open(104, 6);
    assert!(matches!(
        &room_to(&hub.on_text(104, &join_frame("a", "tok-a", "Ada"), 7), 104)[0],
        ServerFrame::Welcome { .. }
    ));
    // Closing an un-joined socket tells nobody.
    assert_eq!(hub.on_close(103), vec![]);
}

#[test]
fn peerjs_close_of_a_member_removes_it_as_disconnected() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 2);
    member_in(&mut hub, 2, 102, "b", "Bob", 3);
    member_in(&mut hub, 3, 103, "c", "Cy", 4);
    let fx = hub.on_close(1);
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
    assert_eq!(only_error(&hub.on_text(101, &chat_frame("hi"), 11), 101), ErrorCode::NotJoined);
    assert_eq!(hub.on_close(101), vec![], "no second peer-left");
    // A PeerJS LEAVE without dst does the same.
    let fx = hub.on_text(2, r#"{"type":"LEAVE"}"#, 13);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::Left { reason: LeaveReason::Disconnected }]);
    assert_eq!(
        room_to(&fx, 103),
        vec![ServerFrame::PeerLeft { peer_id: "b".into(), reason: LeaveReason::Disconnected }]
    );
}

#[test]
fn room_socket_alive_timeout() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    // Everyone but room socket 101 is alive.
    let fx = hub.on_alarm(ALIVE, &[(1, ALIVE), (2, ALIVE), (102, ALIVE)]);
    assert_eq!(
        fx,
        vec![
            retire(101, 0),
            Effect::Close { sid: 101, code: close::ALIVE_TIMEOUT, reason: "alive timeout" },
            send_frame(102, &ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Timeout }),
            Effect::SetAlarm { at_ms: 2 * ALIVE },
        ]
    );
    assert_eq!(hub.stats().members, 1);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn peerjs_alive_timeout_of_a_member_tells_its_room_socket() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_alarm(ALIVE, &[(2, ALIVE), (101, ALIVE), (102, ALIVE)]);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT)]);
    assert_eq!(room_to(&fx, 101), vec![ServerFrame::Left { reason: LeaveReason::Timeout }]);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Timeout }]);
}

#[test]
fn whole_member_timing_out_gets_no_frame_after_its_close() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_alarm(ALIVE, &[(2, ALIVE), (102, ALIVE)]);
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

// ===== room: reconnect =====================================================================
// A reloaded page joins again with the same PeerJS id; others must not see it leave and come back
// as two people, and the cap counts people, not sockets.

#[test]
fn rejoin_from_a_new_socket_replaces_the_old_one() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    member_in(&mut hub, 3, 103, "c", "Cy", 0); // the room is full
    hub.on_room_open(104, 10);
    let fx = hub.on_text(104, &join_frame("a", "tok-a", "Ada 2"), 11);
    let me = member("a", "Ada 2", 11);
    let joined = ServerFrame::PeerJoined { peer: me.clone() };
    assert_eq!(
        fx,
        vec![
            send_frame(101, &ServerFrame::Left { reason: LeaveReason::Replaced }),
            retire(101, 0),
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
    assert_eq!(hub.on_close(101), vec![]);
    assert_eq!(hub.on_text(101, &chat_frame("ghost"), 12), vec![]);
    assert_eq!(recipients(&hub.on_text(104, &chat_frame("back"), 13)), vec![102, 103, 104]);
}
