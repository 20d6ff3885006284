//! The room protocol on `/room/{room}/ws` end to end: three (and more) clients, each with a
//! PeerJS socket and a room socket, against the real Worker.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_meet_blackbox::*;
use edge_meet_core::protocol::{
    ClientFrame, ErrorCode, LeaveReason, MediaPatch, MediaState, Member, Presence, RoomLimits, ServerFrame,
};
use serde_json::json;

const ALLOWED: &str = "https://allowed.example";
/// A short grace period, so that "gone" is seen within a test.
const GRACE: &str = "1500";

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| Server::start(&[("ROOM_CAP", "3"), ("ALLOWED_ORIGINS", ALLOWED), ("GRACE_MS", GRACE)]))
}

fn port() -> u16 {
    server().port
}

async fn expect_frame(ws: &mut Ws, expected: &ServerFrame) {
    let got = ws.recv_server().await;
    assert_eq!(&got, expected, "[{}]", ws.label);
}

/// Waits (`secs` at most) for `peer-left` of `peer_id` and returns how long it took from `since`.
async fn expect_peer_left_within(
    ws: &mut Ws,
    peer_id: &str,
    reason: LeaveReason,
    since: Instant,
    secs: u64,
) -> Duration {
    let got = ws.recv_server_within(Duration::from_secs(secs)).await;
    let elapsed = since.elapsed();
    assert_eq!(got, ServerFrame::PeerLeft { peer_id: peer_id.into(), reason }, "[{}]", ws.label);
    elapsed
}

#[tokio::test]
async fn three_clients_end_to_end() {
    let room = uid("e2e");
    let before = now_ms();
    let mut alice = join_as(port(), &room, "alice", "  Alice  ", Some(json!({"mic": true}))).await;
    let after = now_ms();

    // welcome: self (trimmed name, media patch applied), empty roster and chat, ICE servers
    // from ICE_SERVERS, limits.
    assert_eq!(alice.me.peer_id, "alice");
    assert_eq!(alice.me.name, "Alice");
    assert_eq!(alice.me.media, MediaState { mic: true, ..Default::default() });
    assert!(alice.me.joined_at + 5000 >= before && alice.me.joined_at <= after + 5000, "{:?}", alice.me);
    assert!(alice.peers.is_empty());
    assert!(alice.chat.is_empty());
    assert_eq!(alice.ice_servers, json!([]));
    assert_eq!(alice.limits, RoomLimits { max_peers: 3, chat_max_chars: 2000, name_max_chars: 32 });

    let mut bob = join(port(), &room, "bob", "Bob").await;
    assert_eq!(bob.peers, vec![alice.me.clone()]);
    assert_eq!(bob.me.media, MediaState::default());
    expect_frame(&mut alice.room, &ServerFrame::PeerJoined { peer: bob.me.clone() }).await;

    let mut carol = join(port(), &room, "carol", "Carol").await;
    assert_eq!(carol.peers, vec![alice.me.clone(), bob.me.clone()], "roster in join order");
    for c in [&mut alice, &mut bob] {
        expect_frame(&mut c.room, &ServerFrame::PeerJoined { peer: carol.me.clone() }).await;
    }

    // chat: everyone including the sender; name and peer id from the server, not the frame.
    let mut records = Vec::new();
    let texts = [("alice", "hello <b>world</b> & \"quotes\""), ("bob", "second\nline\ttab"), ("carol", "ünïcødé 👩‍💻")];
    for (who, text) in texts {
        let sender = match who {
            "alice" => &mut alice,
            "bob" => &mut bob,
            _ => &mut carol,
        };
        sender
            .room
            .send_json(
                &json!({"type": "chat", "text": text, "name": "Mallory", "peerId": "mallory", "id": 99, "ts": 1}),
            )
            .await;
        let a = alice.room.expect_chat().await;
        let b = bob.room.expect_chat().await;
        let c = carol.room.expect_chat().await;
        assert_eq!(a, b);
        assert_eq!(a, c);
        let name = match who {
            "alice" => "Alice",
            "bob" => "Bob",
            _ => "Carol",
        };
        assert_eq!((a.peer_id.as_str(), a.name.as_str(), a.text.as_str()), (who, name, text));
        records.push(a);
    }
    assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2, 3], "ids start at 1 and increase");
    assert!(records.windows(2).all(|w| w[1].ts > w[0].ts), "ts strictly increase: {records:?}");
    assert!(records[0].ts + 5000 >= before, "ts is ms since the epoch: {records:?}");

    // media: partial updates broadcast to everyone including the sender.
    bob.room.send_frame(&ClientFrame::Media(MediaPatch { camera: Some(true), ..Default::default() })).await;
    let bob_media = MediaState { camera: true, ..Default::default() };
    for c in [&mut alice, &mut bob, &mut carol] {
        expect_frame(&mut c.room, &ServerFrame::PeerMedia { peer_id: "bob".into(), media: bob_media }).await;
    }
    alice
        .room
        .send_frame(&ClientFrame::Media(MediaPatch { mic: Some(false), hand: Some(true), ..Default::default() }))
        .await;
    let alice_media = MediaState { hand: true, ..Default::default() };
    for c in [&mut alice, &mut bob, &mut carol] {
        expect_frame(&mut c.room, &ServerFrame::PeerMedia { peer_id: "alice".into(), media: alice_media }).await;
    }

    // leave: the leaver hears `left`, the others `peer-left`; the socket stays usable.
    carol.room.send_frame(&ClientFrame::Leave).await;
    expect_frame(&mut carol.room, &ServerFrame::Left { reason: LeaveReason::Leave }).await;
    for c in [&mut alice, &mut bob] {
        expect_frame(&mut c.room, &ServerFrame::PeerLeft { peer_id: "carol".into(), reason: LeaveReason::Leave }).await;
    }
    carol.room.send_chat("am I here?").await;
    carol.room.expect_error(ErrorCode::NotJoined).await;
    alice.room.send_chat("after carol left").await;
    records.push(alice.room.expect_chat().await);
    assert_eq!(bob.room.expect_chat().await, records[3]);
    carol.room.expect_no_frame(300).await;

    // A late joiner gets the whole history and the current media state in its welcome.
    let mut dave = join(port(), &room, "dave", "Dave").await;
    assert_eq!(dave.chat, records, "history replay to a late joiner");
    let mut alice_now = alice.me.clone();
    alice_now.media = alice_media;
    let mut bob_now = bob.me.clone();
    bob_now.media = bob_media;
    assert_eq!(dave.peers, vec![alice_now, bob_now]);
    for c in [&mut alice, &mut bob] {
        expect_frame(&mut c.room, &ServerFrame::PeerJoined { peer: dave.me.clone() }).await;
    }

    // Room is at ROOM_CAP=3: carol's re-join is refused, her socket stays open.
    carol.room.send_json(&join_frame("carol", &carol.token, "Carol")).await;
    let msg = carol.room.expect_error(ErrorCode::RoomFull).await;
    println!("room-full message: {msg}");
    assert!(carol.room.is_open().await);

    // Closing a room socket is not leaving: bob is reconnecting at once, and gone (his seat
    // freed) only when the grace period ends.
    let t0 = Instant::now();
    bob.room.close().await;
    let away = ServerFrame::PeerPresence { peer_id: "bob".into(), presence: Presence::Reconnecting };
    expect_frame(&mut alice.room, &away).await;
    expect_frame(&mut dave.room, &away).await;
    println!("peer-presence reconnecting after room socket close: {:.1?}", t0.elapsed());
    carol.room.send_json(&join_frame("carol", &carol.token, "Carol")).await;
    carol.room.expect_error(ErrorCode::RoomFull).await;
    let la = expect_peer_left_within(&mut alice.room, "bob", LeaveReason::Gone, t0, 4).await;
    let ld = expect_peer_left_within(&mut dave.room, "bob", LeaveReason::Gone, t0, 4).await;
    println!("peer-left gone after the {GRACE} ms grace period: {la:.1?} / {ld:.1?}");

    // Now there is a seat: carol joins again from the same socket.
    carol.room.send_json(&join_frame("carol", &carol.token, "Carol")).await;
    match carol.room.recv_server().await {
        ServerFrame::Welcome { me, peers, chat, .. } => {
            assert_eq!(me.peer_id, "carol");
            assert_eq!(peers.iter().map(|m| m.peer_id.as_str()).collect::<Vec<_>>(), vec!["alice", "dave"]);
            assert_eq!(chat, records);
            for c in [&mut alice, &mut dave] {
                expect_frame(&mut c.room, &ServerFrame::PeerJoined { peer: me.clone() }).await;
            }
        }
        other => panic!("expected welcome, got {other:?}"),
    }

    // Closing the PeerJS socket: carol is reconnecting; when the grace period ends her seat is
    // gone and her open room socket is told so.
    let t0 = Instant::now();
    carol.peer.close().await;
    let away = ServerFrame::PeerPresence { peer_id: "carol".into(), presence: Presence::Reconnecting };
    expect_frame(&mut alice.room, &away).await;
    expect_frame(&mut dave.room, &away).await;
    let lc = carol.room.recv_server_within(Duration::from_secs(4)).await;
    assert_eq!(lc, ServerFrame::Left { reason: LeaveReason::Gone });
    let la = expect_peer_left_within(&mut alice.room, "carol", LeaveReason::Gone, t0, 4).await;
    let ld = expect_peer_left_within(&mut dave.room, "carol", LeaveReason::Gone, t0, 4).await;
    println!("peer-left gone after PeerJS socket close: {la:.1?} / {ld:.1?}");
    // Her room socket is open but no longer joined.
    carol.room.send_chat("x").await;
    carol.room.expect_error(ErrorCode::NotJoined).await;
    alice.room.expect_no_frame(200).await;
    dave.room.expect_no_frame(10).await;
}

#[tokio::test]
async fn abrupt_disconnect_is_reconnecting_within_2s_and_the_seat_resumes_without_churn() {
    let room = uid("abrupt");
    let mut alice = join(port(), &room, "alice", "Alice").await;
    let bob = join(port(), &room, "bob", "Bob").await;
    expect_frame(&mut alice.room, &ServerFrame::PeerJoined { peer: bob.me.clone() }).await;
    // Drop bob's room socket without a close frame (TCP FIN only); keep his PeerJS socket.
    let Client { room: bob_room, peer: _bob_peer, token, .. } = bob;
    let t0 = Instant::now();
    drop(bob_room);
    let got = alice.room.recv_server_within(Duration::from_secs(2)).await;
    assert_eq!(got, ServerFrame::PeerPresence { peer_id: "bob".into(), presence: Presence::Reconnecting });
    println!("peer-presence reconnecting after abrupt TCP drop: {:.1?}", t0.elapsed());
    // Bob's page opens a new room socket and joins with the same id and token: resumed.
    let mut again = connect(port(), &format!("/room/{room}/ws")).await;
    again.send_json(&join_frame("bob", &token, "Bob")).await;
    match again.recv_server().await {
        ServerFrame::Welcome { resumed, peers, .. } => {
            assert!(resumed, "the seat was still his");
            assert_eq!(peers.len(), 1);
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    let back = alice.room.recv_server().await;
    assert_eq!(back, ServerFrame::PeerPresence { peer_id: "bob".into(), presence: Presence::Present });
    alice.room.expect_no_frame(300).await; // no peer-left, no peer-joined
}

#[tokio::test]
async fn reconnect_replaces_the_old_room_socket() {
    let room = uid("replace");
    let mut alice = join(port(), &room, "alice", "Alice").await;
    let mut bob = join(port(), &room, "bob", "Bob").await;
    expect_frame(&mut alice.room, &ServerFrame::PeerJoined { peer: bob.me.clone() }).await;
    let carol = join(port(), &room, "carol", "Carol").await;
    let mut carol_room = carol.room;
    for ws in [&mut alice.room, &mut bob.room] {
        expect_frame(ws, &ServerFrame::PeerJoined { peer: carol.me.clone() }).await;
    }
    alice.room.send_chat("before reconnect").await;
    let rec = alice.room.expect_chat().await;
    bob.room.expect_chat().await;
    carol_room.expect_chat().await;

    // The room is full (3/3), yet the same person reconnecting is allowed: it resumes the seat.
    let mut second = connect(port(), &format!("/room/{room}/ws")).await.labelled("alice #2");
    second.send_json(&join_frame("alice", &alice.token, "Alice Again")).await;
    match second.recv_server().await {
        ServerFrame::Welcome { me, peers, chat, resumed, .. } => {
            assert!(resumed);
            assert_eq!(me.peer_id, "alice");
            assert_eq!(me.name, "Alice", "the seat keeps its name");
            assert_eq!(peers.iter().map(|m| m.peer_id.as_str()).collect::<Vec<_>>(), vec!["bob", "carol"]);
            assert_eq!(chat, vec![rec.clone()]);
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    // Only the old socket hears `left: replaced`, then it is closed with 4000. The others hear
    // nothing at all: no peer-left, no peer-joined, so their calls with alice stay up.
    expect_frame(&mut alice.room, &ServerFrame::Left { reason: LeaveReason::Replaced }).await;
    alice.room.expect_close(4000).await;
    bob.room.expect_no_frame(300).await;
    carol_room.expect_no_frame(10).await;
    // The new socket is the member now.
    second.send_chat("after reconnect").await;
    let r2 = second.expect_chat().await;
    assert_eq!((r2.id, r2.name.as_str()), (rec.id + 1, "Alice"));
    assert_eq!(bob.room.expect_chat().await, r2);
    assert_eq!(carol_room.expect_chat().await, r2);
}

#[tokio::test]
async fn room_full_at_cap_then_seat_frees_on_leave() {
    let room = uid("full");
    let mut members: Vec<Client> = Vec::new();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        let c = join(port(), &room, n, n).await;
        assert_eq!(c.peers.len(), i);
        for m in members.iter_mut() {
            expect_frame(&mut m.room, &ServerFrame::PeerJoined { peer: c.me.clone() }).await;
        }
        members.push(c);
    }
    let token = "tok-d";
    let _peer = peerjs_open(port(), &room_prefix(&room), "d", token).await;
    let mut d = connect(port(), &format!("/room/{room}/ws")).await.labelled("d");
    d.send_json(&join_frame("d", token, "D")).await;
    d.expect_error(ErrorCode::RoomFull).await;
    for m in members.iter_mut() {
        m.room.expect_no_frame(100).await;
    }
    members[0].room.send_frame(&ClientFrame::Leave).await;
    expect_frame(&mut members[0].room, &ServerFrame::Left { reason: LeaveReason::Leave }).await;
    d.send_json(&join_frame("d", token, "D")).await;
    match d.recv_server().await {
        ServerFrame::Welcome { peers, .. } => {
            assert_eq!(peers.iter().map(|m: &Member| m.peer_id.as_str()).collect::<Vec<_>>(), vec!["b", "c"])
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn origin_policy_for_websocket_upgrades() {
    let room = uid("origin");
    let own = server().origin();
    let paths = [
        format!("/room/{room}/ws"),
        peerjs_path(&room_prefix(&room), "peerjs", &uid("o"), "t"),
        peerjs_path("/peerjs/", "peerjs", &uid("o"), "t"),
    ];
    for path in &paths {
        for bad in [
            "https://evil.example",
            "null",
            "https://allowed.example.evil.example",
            "https://allowed.example:8443",
            "http://allowed.example",
            "http://127.0.0.1:1",
        ] {
            match try_connect(port(), path, Some(bad)).await {
                Err(ConnectError::Status(403, _)) => {}
                Err(e) => panic!("{path} with Origin {bad}: expected HTTP 403, got {e:?}"),
                Ok(_) => panic!("{path} with Origin {bad}: upgrade accepted, expected HTTP 403"),
            }
        }
        for good in [Some(own.as_str()), Some(ALLOWED), None] {
            let path =
                if path.contains("id=") { path.replace("id=", &format!("id={}", uid("g"))) } else { path.clone() };
            let mut ws = connect_with_origin(port(), &path, good).await;
            if path.contains("peerjs?") {
                ws.expect_text(OPEN).await;
            } else {
                ws.send_chat("x").await;
                ws.expect_error(ErrorCode::NotJoined).await;
            }
            ws.close().await;
        }
    }
}

#[tokio::test]
async fn client_close_is_answered_with_a_close_frame() {
    // RFC 6455 §5.5.1: the receiver of a Close frame must answer with a Close frame.
    let room = uid("closehs");
    let mut a = join(port(), &room, "a", "A").await;
    let b = join(port(), &room, "b", "B").await;
    expect_frame(&mut a.room, &ServerFrame::PeerJoined { peer: b.me.clone() }).await;
    let t0 = Instant::now();
    // The room learns of the close whether or not the handshake completes.
    let (answer, left) = tokio::join!(
        b.room.close_handshake(1000, Duration::from_secs(2)),
        a.room.recv_server_within(Duration::from_secs(2))
    );
    assert_eq!(left, ServerFrame::PeerPresence { peer_id: "b".into(), presence: Presence::Reconnecting });
    println!("peer-presence {:.1?} after the close frame", t0.elapsed());
    match answer {
        Ok((code, took)) => println!("room socket: server answered close with {code:?} after {took:?}"),
        Err(e) => panic!("room socket: client sent Close(1000): {e}"),
    }
}
