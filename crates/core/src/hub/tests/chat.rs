use super::*;

// ===== room: names and chat ===========================================================
// Chat records are built server-side so nobody can speak as someone else or rewrite history.

const XSS: &str = "<img src=x onerror=alert(1)>";

#[test]
fn names_are_trimmed_and_html_stays_literal() {
    let mut hub = Sim::new(cfg());
    let fx = member_in(&mut hub, 1, 101, "a", "   Ada Lovelace \t", 0);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::Welcome { me, .. } if me.name == "Ada Lovelace"));
    let fx = member_in(&mut hub, 2, 102, "b", XSS, 1);
    assert!(matches!(&room_to(&fx, 101)[0], ServerFrame::PeerJoined { peer } if peer.name == XSS));
    assert!(raw_to(&fx, 101)[0].contains(XSS), "not escaped or altered on the wire");
    let fx = hub.on_text(102, &chat_frame(XSS), 2);
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
fn chat_record_is_built_server_side_and_persisted_before_sending() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_room_open(103, 0); // not joined: hears nothing
    let spoof = r#"{"type":"chat","text":"hello\nworld","name":"Bob","peerId":"b","id":99,"ts":1}"#;
    let fx = hub.on_text(101, spoof, 1000);
    let rec = ChatRecord { id: 1, peer_id: "a".into(), name: "Ada".into(), text: "hello\nworld".into(), ts: 1000 };
    let frame = ServerFrame::Chat { message: rec.clone() };
    assert_eq!(fx, vec![Effect::StoreChat(rec), send_frame(101, &frame), send_frame(102, &frame)]);

    // Ids increase by one; ts strictly increases even when the clock stands still or steps back.
    let a = persisted(&hub.on_text(102, &chat_frame("two"), 1000));
    let b = persisted(&hub.on_text(101, &chat_frame("three"), 400));
    let c = persisted(&hub.on_text(101, &chat_frame("four"), 5000));
    assert_eq!((a[0].id, b[0].id, c[0].id), (2, 3, 4));
    assert_eq!((a[0].ts, b[0].ts, c[0].ts), (1001, 1002, 5000));
    assert_eq!((a[0].name.as_str(), a[0].peer_id.as_str()), ("Bob", "b"));
}

#[test]
fn invalid_chat_text_is_refused() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    for text in ["", "  \n\t ", "bell\u{0007}", "rtl\u{202E}", &"x".repeat(CHAT_MAX_CHARS + 1)] {
        assert_eq!(only_error(&hub.on_text(101, &chat_frame(text), 1), 101), ErrorCode::InvalidText);
    }
    assert_eq!(hub.stats().chat, 0);
    assert_eq!(persisted(&hub.on_text(101, &chat_frame(&"x".repeat(CHAT_MAX_CHARS)), 2)).len(), 1);
}

#[test]
fn history_window_is_replayed_oldest_first() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    let extra = 5;
    for i in 0..CHAT_HISTORY + extra {
        hub.on_text(101, &chat_frame(&format!("m{i}")), 10 + i as u64);
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
fn chat_not_stored_is_forgotten_and_only_its_sender_hears() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    member_in(&mut hub, 2, 102, "b", "Bob", 0);
    hub.on_text(101, &chat_frame("kept"), 1);
    hub.storage_fails = true;
    let fx = hub.on_text(101, &chat_frame("lost"), 2);
    let rec = persisted(&fx).remove(0);
    let err = ServerFrame::error(ErrorCode::Internal, "the message could not be stored; try again");
    assert_eq!(fx, vec![Effect::StoreChat(rec), send_frame(101, &err)], "nothing goes to anyone else");
    assert_eq!(hub.stats().chat, 1);
    hub.storage_fails = false;
    // The next message does not reuse the id; the welcome shows only what was stored.
    assert_eq!(persisted(&hub.on_text(102, &chat_frame("next"), 3))[0].id, 3);
    let fx = member_in(&mut hub, 3, 103, "c", "Cy", 4);
    match &room_to(&fx, 103)[0] {
        ServerFrame::Welcome { chat, .. } => {
            assert_eq!(chat.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), vec!["kept", "next"])
        }
        f => panic!("{f:?}"),
    }
    // A sender that left before its write failed gets nothing, and nothing panics.
    hub.storage_fails = true;
    let fx = hub.on_text(101, &chat_frame("late"), 5);
    let rec = persisted(&fx).remove(0);
    hub.on_text(101, &leave_frame(), 6);
    assert_eq!(hub.hub.chat_stored(rec.id, false), vec![], "already settled");
}

#[test]
fn a_failed_chat_write_keeps_the_rest_of_the_event() {
    // The alarm that a restore re-arms rides on the first event's effects; a chat write failing
    // in that event must not lose it (it would when the shell dropped the rest of the queue).
    let pj = att(1, 0, Role::PeerJs { id: "a".into(), token: tok("a") });
    let room = att(101, 0, Role::Room { member: Some(member("a", "Ada", 0)) });
    let mut hub = Sim::restore(cfg(), vec![(pj, Some(50)), (room, Some(50))], vec![]);
    hub.storage_fails = true;
    let fx = hub.on_text(101, &chat_frame("x"), 100);
    let err = ServerFrame::error(ErrorCode::Internal, "the message could not be stored; try again");
    let rec = persisted(&fx).remove(0);
    assert_eq!(fx, vec![Effect::StoreChat(rec), send_frame(101, &err), Effect::SetAlarm { at_ms: 50 + ALIVE }]);
}
