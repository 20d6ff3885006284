//! Chat and seats survive a crash: wrangler is SIGKILLed and started again on the same
//! persistence directory; a new joiner's welcome has the old chat, new chat ids continue, and
//! every member whose sockets died with the server is reconnecting, its seat held for its token.

use std::time::Instant;

use edge_meet_blackbox::*;
use edge_meet_core::protocol::{ChatRecord, ClientFrame, Presence, ServerFrame};

async fn chat(c: &mut Client, text: &str) -> ChatRecord {
    c.room.send_chat(text).await;
    c.room.expect_chat().await
}

#[tokio::test]
async fn chat_history_survives_a_killed_server() {
    // RATE_PER_SEC=0 disables the room rate limit, so 205 chats can go out in one burst.
    let mut server = Server::start(&[("RATE_PER_SEC", "0")]);
    let room = "persist-room";
    let other_room = "other-room";

    let mut alice = join(server.port, room, "alice", "Alice").await;
    let mut sent = Vec::new();
    for text in ["first", "second <i>line</i>", "third ✓"] {
        sent.push(chat(&mut alice, text).await);
    }
    let mut olga = join(server.port, other_room, "olga", "Olga").await;
    let other = chat(&mut olga, "elsewhere").await;

    // A long history: only the newest CHAT_HISTORY (200) come in a welcome.
    let long_room = "long-room";
    let mut lena = join(server.port, long_room, "lena", "Lena").await;
    lena.room
        .send_burst(
            (1..=205).map(|i| serde_json::to_string(&ClientFrame::Chat { text: format!("m{i}") }).unwrap_or_default()),
        )
        .await;
    let mut long = Vec::new();
    let t_burst = Instant::now();
    for _ in 0..205 {
        match lena.room.recv_server().await {
            ServerFrame::Chat { message } => long.push(message),
            other => panic!("expected chat, got {other:?}"),
        }
    }
    println!("205 chats stored and echoed in {:?}", t_burst.elapsed());
    assert_eq!(long.iter().map(|r| r.id).collect::<Vec<_>>(), (1..=205).collect::<Vec<u64>>());
    let late = join(server.port, long_room, "late", "Late").await;
    assert_eq!(late.chat, long[5..].to_vec(), "welcome carries the newest 200, oldest first");
    drop(late);
    assert_eq!(server.stats("/room/persist-room/").await["chat"], 3);

    // Crash: SIGKILL the whole wrangler/workerd group right after the broadcasts arrived
    // (the server persists before it fans out), no graceful shutdown.
    let t0 = Instant::now();
    server.restart();
    println!("restart (kill + start on the same --persist-to) took {} ms", t0.elapsed().as_millis());
    let (alice_token, olga_token) = (alice.token.clone(), olga.token.clone());
    drop(alice);
    drop(olga);
    drop(lena);

    let mut bob = join(server.port, room, "bob", "Bob").await;
    assert_eq!(bob.chat, sent, "welcome after restart must carry the stored chat, oldest first");
    // Alice's sockets died with the server, her seat did not: she is reconnecting.
    let ids: Vec<(&str, Presence)> = bob.peers.iter().map(|m| (m.peer_id.as_str(), m.presence)).collect();
    assert_eq!(ids, vec![("alice", Presence::Reconnecting)], "{:?}", bob.peers);
    let next = chat(&mut bob, "after restart").await;
    assert_eq!(next.id, sent.last().unwrap().id + 1, "ids continue after a restart");
    assert!(next.ts > sent.last().unwrap().ts);
    assert_eq!(next.name, "Bob");
    assert_eq!(server.stats("/room/persist-room/").await["chat"], 4);

    // Her id is held for her token: another token is refused, hers takes the seat back.
    let mut thief = connect(server.port, &peerjs_path(&room_prefix(room), "peerjs", "alice", "other")).await;
    thief.expect_text(ID_TAKEN).await;
    let alice2 = join_with(server.port, room, "alice", &alice_token, "Alice", None).await;
    assert!(alice2.resumed, "the seat was still hers");
    let mut expected = sent.clone();
    expected.push(next);
    assert_eq!(alice2.chat, expected);
    let back = bob.room.recv_server().await;
    assert_eq!(back, ServerFrame::PeerPresence { peer_id: "alice".into(), presence: Presence::Present });
    // Rooms stay separate.
    let olga2 = join_with(server.port, other_room, "olga", &olga_token, "Olga", None).await;
    assert!(olga2.resumed);
    assert_eq!(olga2.chat, vec![other]);

    // The long room after the restart: still the newest 200, and ids continue at 206.
    let mut late2 = join(server.port, long_room, "late2", "Late Two").await;
    assert_eq!(late2.chat, long[5..].to_vec());
    let n = chat(&mut late2, "after restart").await;
    assert_eq!(n.id, 206);
}
