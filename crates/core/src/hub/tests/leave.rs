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
            Effect::Attach { sid: 101, attachment: att(101, 7, Role::Room { member: Some(me.clone()) }) },
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
    assert!(hub.seats.contains_key("b"));
    let fx = hub.on_text(102, &leave_frame(), 6);
    let gone = ServerFrame::PeerLeft { peer_id: "b".into(), reason: LeaveReason::Leave };
    assert_eq!(
        fx,
        vec![
            Effect::DropSeat("b".into()),
            Effect::Attach { sid: 102, attachment: att(102, 4, Role::Room { member: None }) },
            send_frame(102, &ServerFrame::Left { reason: LeaveReason::Leave }),
            send_frame(101, &gone),
            send_frame(103, &gone),
        ]
    );
    assert_eq!(hub.stats().members, 2);
    assert!(!hub.seats.contains_key("b"), "storage forgets the seat");
    // The PeerJS registration is untouched, so the same socket can join again (a fresh seat).
    let fx = hub.on_text(102, &join_frame("b", "tok-b", "Bobby"), 7);
    assert!(matches!(&room_to(&fx, 102)[0], ServerFrame::Welcome { me, resumed: false, .. } if me.name == "Bobby"));
    assert_eq!(recipients(&fx), vec![102, 101, 103]);
}

/// `peer-presence` for `id`.
fn presence(id: &str, presence: Presence) -> ServerFrame {
    ServerFrame::PeerPresence { peer_id: id.into(), presence }
}

#[test]
fn a_room_socket_that_closes_leaves_its_member_reconnecting_not_gone() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_room_open(103, 0);
    let fx = hub.on_close(101);
    assert_eq!(fx, vec![send_frame(102, &presence("a", Presence::Reconnecting))]);
    assert_eq!(hub.stats().members, 2);
    assert_eq!(hub.stats().reconnecting, 1);
    // The member's next room socket takes the seat back: a resumed welcome, and the others hear
    // only that it is present again (no peer-left / peer-joined, so no call is torn down).
    hub.on_room_open(104, 6);
    let fx = hub.on_text(104, &join_frame("a", "tok-a", "Ada"), 7);
    let me = member("a", "Ada", 0);
    assert_eq!(
        fx,
        vec![
            send_frame(102, &presence("a", Presence::Present)),
            Effect::Attach { sid: 104, attachment: att(104, 6, Role::Room { member: Some(me.clone()) }) },
            send_frame(
                104,
                &ServerFrame::Welcome {
                    me,
                    peers: vec![member("b", "Bob", 0)],
                    chat: vec![],
                    ice_servers: cfg().ice_servers,
                    limits: limits(),
                    resumed: true,
                }
            ),
        ]
    );
    assert_eq!(hub.stats().reconnecting, 0);
    // Closing an un-joined socket tells nobody.
    assert_eq!(hub.on_close(103), vec![]);
}

#[test]
fn a_member_whose_peerjs_socket_drops_keeps_its_id_for_its_own_token() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 2);
    member_in(&mut hub, 2, 102, "b", "Bob", 3);
    member_in(&mut hub, 3, 103, "c", "Cy", 4);
    let fx = hub.on_close(1);
    let away = presence("a", Presence::Reconnecting);
    assert_eq!(fx, vec![send_frame(102, &away), send_frame(103, &away)], "its own room socket is not told");
    // Nobody else can take the id in the meantime (the identity hijack).
    let refused = hub.hub.on_peerjs_open(9, "a", "thief", "", 5);
    assert_eq!(refused, Admission::Refused { frame: peerjs::id_taken_frame() });
    // Frames for it are queued, and delivered when it registers again with its token.
    assert_eq!(hub.on_text(2, &offer("a", 1), 6), vec![Effect::SetAlarm { at_ms: 6 + EXPIRE }]);
    assert_eq!(hub.stats().queued, 1);
    let fx = hub.on_peerjs_open(4, "a", "tok-a", 7);
    assert_eq!(pj_to(&fx, 4)[1], relayed_offer("b", "a", 1));
    let back = presence("a", Presence::Present);
    assert_eq!(room_to(&fx, 102), vec![back.clone()]);
    assert_eq!(room_to(&fx, 103), vec![back]);
    assert_eq!(hub.stats().reconnecting, 0);
}

#[test]
fn a_peerjs_leave_without_dst_is_a_socket_going_not_a_member_leaving() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_text(2, r#"{"type":"LEAVE"}"#, 13);
    assert_eq!(room_to(&fx, 101), vec![presence("b", Presence::Reconnecting)]);
    assert_eq!(room_to(&fx, 102), vec![]);
}

#[test]
fn the_seat_ends_when_the_grace_period_runs_out() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_close(1);
    let fx = hub.on_close(101);
    assert_eq!(fx, vec![], "already reconnecting: nothing new to tell");
    let beats: Vec<(Sid, u64)> = vec![(2, GRACE - 1), (102, GRACE - 1)];
    assert_eq!(room_to(&hub.on_alarm(GRACE - 1, &beats), 102), vec![]);
    let beats: Vec<(Sid, u64)> = vec![(2, GRACE), (102, GRACE)];
    let fx = hub.on_alarm(GRACE, &beats);
    assert_eq!(
        fx,
        vec![
            Effect::DropSeat("a".into()),
            send_frame(102, &ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Gone }),
            Effect::SetAlarm { at_ms: GRACE + ALIVE },
        ]
    );
    assert_eq!(hub.stats().members, 1);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    // The id is free again: anyone may register it now, as on peerjs-server.
    peer(&mut hub, 5, "a", GRACE + 1);
}

#[test]
fn a_seat_whose_room_socket_is_open_hears_left_gone() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_close(1); // PeerJS only: the room socket stays and heartbeats
    let beats: Vec<(Sid, u64)> = vec![(2, GRACE), (101, GRACE), (102, GRACE)];
    let fx = hub.on_alarm(GRACE, &beats);
    assert_eq!(room_to(&fx, 101), vec![ServerFrame::Left { reason: LeaveReason::Gone }]);
    assert_eq!(room_to(&fx, 102), vec![ServerFrame::PeerLeft { peer_id: "a".into(), reason: LeaveReason::Gone }]);
    assert_eq!(only_error(&hub.on_text(101, &chat_frame("hi"), GRACE + 1), 101), ErrorCode::NotJoined);
}

#[test]
fn room_socket_alive_timeout_makes_the_member_reconnecting() {
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
            send_frame(102, &presence("a", Presence::Reconnecting)),
            Effect::SetAlarm { at_ms: 2 * ALIVE },
        ]
    );
    assert_eq!(hub.stats().members, 2);
    assert_eq!(hub.peer_ids(), vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn whole_member_timing_out_is_told_once_and_gets_nothing_after_its_close() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    let fx = hub.on_alarm(ALIVE, &[(2, ALIVE), (102, ALIVE)]);
    assert_no_send_after_close(&fx);
    assert_eq!(closes(&fx), vec![(1, close::ALIVE_TIMEOUT), (101, close::ALIVE_TIMEOUT)]);
    assert_eq!(room_to(&fx, 102), vec![presence("a", Presence::Reconnecting)], "one presence change: {fx:?}");
    assert_eq!(hub.stats().members, 2);
}

#[test]
fn leave_while_the_peerjs_socket_is_away_frees_the_id() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_close(1);
    hub.on_text(101, &leave_frame(), 5);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()]);
    peer(&mut hub, 3, "a", 6);
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
fn rejoin_from_a_new_socket_replaces_the_old_one_without_churn() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    member_in(&mut hub, 3, 103, "c", "Cy", 0); // the room is full
    hub.on_room_open(104, 10);
    let fx = hub.on_text(104, &join_frame("a", "tok-a", "Ada 2"), 11);
    let me = member("a", "Ada", 0); // the seat keeps its name and join time
    assert_eq!(
        fx,
        vec![
            send_frame(101, &ServerFrame::Left { reason: LeaveReason::Replaced }),
            retire(101, 0),
            Effect::Close { sid: 101, code: close::REPLACED, reason: "joined from another connection" },
            Effect::Attach { sid: 104, attachment: att(104, 10, Role::Room { member: Some(me.clone()) }) },
            send_frame(
                104,
                &ServerFrame::Welcome {
                    me,
                    peers: vec![member("b", "Bob", 0), member("c", "Cy", 0)],
                    chat: vec![],
                    ice_servers: cfg().ice_servers,
                    limits: limits(),
                    resumed: true,
                }
            ),
        ]
    );
    assert_eq!(hub.stats().members, CAP);
    // The old socket is gone: its close and frames do nothing.
    assert_eq!(hub.on_close(101), vec![]);
    assert_eq!(hub.on_text(101, &chat_frame("ghost"), 12), vec![]);
    assert_eq!(recipients(&hub.on_text(104, &chat_frame("back"), 13)), vec![102, 103, 104]);
}

#[test]
fn a_resume_brings_media_changed_while_away() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_close(101);
    hub.on_room_open(104, 10);
    let text = cf(&ClientFrame::Join {
        peer_id: "a".into(),
        token: "tok-a".into(),
        name: "Ada".into(),
        media: Some(MediaPatch { mic: Some(true), ..Default::default() }),
    });
    let fx = hub.on_text(104, &text, 11);
    let media = MediaState { mic: true, ..Default::default() };
    assert_eq!(
        room_to(&fx, 102),
        vec![ServerFrame::PeerMedia { peer_id: "a".into(), media }, presence("a", Presence::Present)]
    );
    assert!(matches!(&room_to(&fx, 104)[0], ServerFrame::Welcome { me, .. } if me.media == media));
}
