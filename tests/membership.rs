//! The roster is the authority, and a socket is not a person, against the real Worker: each
//! defect the attack run found (eavesdropping, lock-out, identity hijack, a blip ending calls,
//! unbounded queues and sockets) is a test here that fails without the rule it checks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_meet_blackbox::*;
use edge_meet_core::limits::{QUEUE_MAX_BYTES_PER_DST, QUEUE_MAX_BYTES_TOTAL};
use edge_meet_core::protocol::{ErrorCode, LeaveReason, Presence, ServerFrame};

const WINDOW_MS: u64 = 1500;
const GRACE_MS: u64 = 3000;
const CLIENT_LIMIT: usize = 8;

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        Server::start(&[
            ("JOIN_WINDOW_MS", "1500"),
            ("GRACE_MS", "3000"),
            ("CLIENT_SOCKET_LIMIT", "8"),
            ("PEERJS_CLIENT_LIMIT", "8"),
            ("PEERJS_RATE_PER_SEC", "0"),
            ("DEBUG_STATS", "true"),
        ])
    })
}

fn port() -> u16 {
    server().port
}

fn offer(dst: &str) -> String {
    format!(r#"{{"type":"OFFER","payload":{{"sdp":{{"type":"offer","sdp":"v=0"}},"type":"media"}},"dst":"{dst}"}}"#)
}

fn presence(id: &str, presence: Presence) -> ServerFrame {
    ServerFrame::PeerPresence { peer_id: id.into(), presence }
}

#[tokio::test]
async fn an_id_that_never_joined_cannot_call_a_member() {
    let room = uid("eaves");
    let mut victim = join(port(), &room, "victim", "Victim").await;
    // The eavesdropper learned the id (one brief join, or a guess) and registered in the room.
    let mut eve = peerjs_open(port(), &room_prefix(&room), "eve", "tok-eve").await;
    let t0 = Instant::now();
    eve.send_text(offer("victim")).await;
    eve.expect_text(r#"{"type":"EXPIRE","src":"victim","dst":"eve"}"#).await;
    println!("non-member OFFER: EXPIRE after {:?}", t0.elapsed());
    for kind in ["ANSWER", "CANDIDATE", "LEAVE"] {
        eve.send_text(format!(r#"{{"type":"{kind}","payload":{{}},"dst":"victim"}}"#)).await;
    }
    victim.peer.expect_no_frame(500).await;
    victim.room.expect_no_frame(10).await;
    let stats = server().stats(&room_prefix(&room)).await;
    assert_eq!(stats["queued"], 0, "{stats}");
}

#[tokio::test]
async fn ids_that_never_join_cannot_lock_the_room() {
    // ROOM_PEERJS_LIMIT is 32: one client registers 32 ids and heartbeats them, never joining.
    let room = uid("lock");
    let p = room_prefix(&room);
    let mut squat = Vec::new();
    for i in 0..32 {
        squat.push(
            try_connect_from(port(), &peerjs_path(&p, "peerjs", &format!("sq{i}"), "t"), &format!("198.51.100.{i}"))
                .await
                .expect("squatter accepted"),
        );
    }
    for ws in squat.iter_mut() {
        ws.expect_text(OPEN).await;
    }
    // A guest still gets in, and the oldest squatter gave up its place.
    let t0 = Instant::now();
    let guest = join(port(), &room, "guest", "Guest").await;
    println!("guest joined a room full of 32 unjoined ids in {:?}", t0.elapsed());
    assert!(guest.peers.is_empty());
    squat[0].expect_close(4002).await;
    // The rest go when the join window ends, heartbeats or not.
    let t0 = Instant::now();
    for ws in squat.iter_mut().skip(1) {
        ws.skip_heartbeat_echo = true;
        ws.send_text(HEARTBEAT).await;
    }
    for ws in squat.iter_mut().skip(1) {
        ws.expect_close_within(4002, Duration::from_millis(WINDOW_MS + 3000)).await;
    }
    println!("31 squatters closed 4002 within {:?} of a heartbeat (JOIN_WINDOW_MS={WINDOW_MS})", t0.elapsed());
    // The guest, seated, is untouched.
    let mut guest = guest;
    guest.room.send_chat("still here").await;
    guest.room.expect_chat().await;
}

#[tokio::test]
async fn unjoined_room_sockets_close_after_the_join_window() {
    let room = uid("window");
    let t0 = Instant::now();
    let mut idle = connect(port(), &format!("/room/{room}/ws")).await;
    let took = idle.expect_close_within(4002, Duration::from_millis(WINDOW_MS + 3000)).await;
    println!("unjoined room socket closed 4002 after {:?}", t0.elapsed());
    assert!(took >= Duration::from_millis(WINDOW_MS - 200), "{took:?}");
}

#[tokio::test]
async fn a_dropped_socket_is_reconnecting_and_its_id_cannot_be_hijacked() {
    let room = uid("hijack");
    let p = room_prefix(&room);
    let mut ann = join(port(), &room, "ann", "Ann").await;
    let nadia = join(port(), &room, "nadia", "Nadia").await;
    ann.room.recv_server().await; // peer-joined nadia
    let Client { peer, room: nadia_room, token, .. } = nadia;
    // Nadia's network drops: both sockets go without a word.
    let t0 = Instant::now();
    drop(peer);
    drop(nadia_room);
    assert_eq!(ann.room.recv_server_within(Duration::from_secs(2)).await, presence("nadia", Presence::Reconnecting));
    println!("peer-presence reconnecting {:?} after the drop", t0.elapsed());
    // Ann's client is still trickling candidates to her: queued for Nadia, not for anyone else.
    ann.peer.send_text(r#"{"type":"CANDIDATE","payload":{"candidate":"192.168.1.20"},"dst":"nadia"}"#).await;
    // A thief tries the id with its own token, and to join as her.
    let mut thief = connect(port(), &peerjs_path(&p, "peerjs", "nadia", "thief")).await;
    thief.expect_text(ID_TAKEN).await;
    let mut thief_room = connect(port(), &format!("/room/{room}/ws")).await;
    thief_room.send_json(&join_frame("nadia", "thief", "Nadia")).await;
    thief_room.expect_error(ErrorCode::BadToken).await;
    // Nadia comes back with her token: the queued candidate is hers, the seat resumes.
    let mut back = peerjs_open(port(), &p, "nadia", &token).await;
    back.expect_text(r#"{"type":"CANDIDATE","src":"ann","dst":"nadia","payload":{"candidate":"192.168.1.20"}}"#).await;
    let mut rs = connect(port(), &format!("/room/{room}/ws")).await;
    rs.send_json(&join_frame("nadia", &token, "Nadia")).await;
    assert!(matches!(rs.recv_server().await, ServerFrame::Welcome { resumed: true, .. }));
    assert_eq!(ann.room.recv_server().await, presence("nadia", Presence::Present));
    ann.room.expect_no_frame(300).await; // no peer-left, no peer-joined
    println!("seat resumed {:?} after the drop", t0.elapsed());
}

#[tokio::test]
async fn a_member_who_stays_away_is_gone_after_the_grace_period() {
    let room = uid("grace");
    let mut ann = join(port(), &room, "ann", "Ann").await;
    let zoe = join(port(), &room, "zoe", "Zoe").await;
    ann.room.recv_server().await;
    let t0 = Instant::now();
    drop(zoe);
    assert_eq!(ann.room.recv_server().await, presence("zoe", Presence::Reconnecting));
    let gone = ann.room.recv_server_within(Duration::from_millis(GRACE_MS + 3000)).await;
    let took = t0.elapsed();
    assert_eq!(gone, ServerFrame::PeerLeft { peer_id: "zoe".into(), reason: LeaveReason::Gone });
    println!("peer-left gone {took:?} after the drop (GRACE_MS={GRACE_MS})");
    assert!(took >= Duration::from_millis(GRACE_MS - 200), "{took:?}");
    // Her id is free again after the seat ended.
    let again = peerjs_open(port(), &room_prefix(&room), "zoe", "new").await;
    drop(again);
}

#[tokio::test]
async fn offline_queues_have_a_byte_budget_and_expire_what_they_drop() {
    // A room: frames for a reconnecting member are queued up to 256 KiB.
    let room = uid("qbytes");
    let mut ann = join(port(), &room, "ann", "Ann").await;
    let bob = join(port(), &room, "bob", "Bob").await;
    ann.room.recv_server().await;
    drop(bob.peer); // bob's PeerJS socket is away; his seat (and queue) holds
    ann.room.recv_server().await;
    let chunk = "c".repeat(60 * 1024);
    let frames: Vec<String> =
        (0..40).map(|_| format!(r#"{{"type":"CANDIDATE","payload":"{chunk}","dst":"bob"}}"#)).collect();
    ann.peer.send_burst(frames).await;
    let mut expires = 0;
    while let Some(Frame::Text(t)) = ann.peer.recv(Duration::from_millis(800)).await {
        assert_eq!(t, r#"{"type":"EXPIRE","src":"bob","dst":"ann"}"#);
        expires += 1;
    }
    let stats = server().stats(&room_prefix(&room)).await;
    let bytes = stats["queuedBytes"].as_u64().unwrap_or(u64::MAX) as usize;
    println!(
        "room: 40 × 60 KiB for a reconnecting member: {} queued ({bytes} bytes), {expires} EXPIREd",
        stats["queued"]
    );
    assert!(bytes <= QUEUE_MAX_BYTES_PER_DST, "{stats}");
    assert_eq!(expires, 40 - stats["queued"].as_u64().unwrap_or(0) as usize);

    // The global server: many offline ids together are bounded by the object's 2 MiB.
    let mut s = peerjs_open_key(port(), "/peerjs/", "peerjs", &uid("flood"), "t").await;
    let frames: Vec<String> = (0..80)
        .map(|i| format!(r#"{{"type":"OFFER","payload":"{chunk}","dst":"off{i}x{}"}}"#, std::process::id()))
        .collect();
    s.send_burst(frames).await;
    let mut expires = 0;
    while let Some(Frame::Text(_)) = s.recv(Duration::from_millis(800)).await {
        expires += 1;
    }
    let stats = server().stats("/peerjs/peerjs/").await;
    let bytes = stats["queuedBytes"].as_u64().unwrap_or(u64::MAX) as usize;
    println!("global: 80 × 60 KiB OFFERs to offline ids: {bytes} bytes queued, {expires} EXPIREd at once");
    assert!(bytes <= QUEUE_MAX_BYTES_TOTAL, "{stats}");
    assert!(expires >= 80 - QUEUE_MAX_BYTES_TOTAL / (60 * 1024), "{expires}");
}

#[tokio::test]
async fn a_socket_that_keeps_sending_oversize_frames_is_closed_1009() {
    let room = uid("big");
    let mut ann = join(port(), &room, "ann", "Ann").await;
    let mut big = join(port(), &room, "big", "Big").await;
    ann.room.recv_server().await;
    let huge = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(70 * 1024));
    for _ in 0..2 {
        big.room.send_text(huge.clone()).await;
        big.room.expect_error(ErrorCode::FrameTooLarge).await;
    }
    big.room.send_text(huge.clone()).await;
    big.room.expect_error(ErrorCode::FrameTooLarge).await;
    big.room.expect_close(1009).await;
    // The same on a PeerJS socket (which gets no error frames).
    for _ in 0..3 {
        big.peer
            .try_send_text(format!(r#"{{"type":"OFFER","payload":"{}","dst":"ann"}}"#, "y".repeat(70 * 1024)))
            .await;
    }
    big.peer.expect_close(1009).await;
    // A closed socket is a member reconnecting, whatever closed it.
    assert_eq!(ann.room.recv_server().await, presence("big", Presence::Reconnecting));
    ann.room.send_chat("unaffected").await;
    assert_eq!(ann.room.expect_chat().await.text, "unaffected");
}

#[tokio::test]
async fn one_client_address_has_a_socket_budget_per_room() {
    let room = uid("budget");
    let ip = "203.0.113.50";
    let mut held = Vec::new();
    for i in 0..CLIENT_LIMIT {
        let path = if i % 2 == 0 {
            peerjs_path(&room_prefix(&room), "peerjs", &format!("b{i}"), "t")
        } else {
            format!("/room/{room}/ws")
        };
        held.push(try_connect_from(port(), &path, ip).await.expect("within the budget"));
    }
    match try_connect_from(port(), &format!("/room/{room}/ws"), ip).await {
        Err(ConnectError::Status(429, _)) => {}
        other => panic!("room socket over the budget: {:?}", other.err()),
    }
    let mut over = try_connect_from(port(), &peerjs_path(&room_prefix(&room), "peerjs", "bx", "t"), ip)
        .await
        .expect("PeerJS refusals are frames");
    over.expect_text(ERR_LIMIT).await;
    // Another address, and another room, are unaffected.
    let mut other = try_connect_from(port(), &peerjs_path(&room_prefix(&room), "peerjs", "by", "t"), "203.0.113.51")
        .await
        .expect("other address");
    other.expect_text(OPEN).await;
    let elsewhere = try_connect_from(port(), &format!("/room/{}/ws", uid("budget2")), ip).await;
    assert!(elsewhere.is_ok(), "another room has its own budget");
}

#[tokio::test]
async fn new_sockets_per_address_are_rate_limited_across_rooms() {
    // CONNECT_RATE (wrangler.toml): 600 new sockets a minute per address, over every room. The
    // limiter counts in fixed one-minute windows, so a run that straddles a window boundary may
    // see up to twice that before its first 429; never fewer than the limit.
    let ip = "192.0.2.99";
    let mut accepted = 0;
    let mut refused = false;
    let t0 = Instant::now();
    for i in 0..1300 {
        match try_connect_from(port(), &format!("/room/{}/ws", uid(&format!("rate{i}"))), ip).await {
            Ok(ws) => {
                accepted += 1;
                drop(ws);
            }
            Err(ConnectError::Status(429, _)) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    println!("CONNECT_RATE: {accepted} sockets from one address accepted before 429 ({:?})", t0.elapsed());
    assert!(refused, "no 429 after {accepted} sockets");
    assert!((590..=1210).contains(&accepted), "{accepted}");
    // Another address is not affected.
    assert!(try_connect_from(port(), &format!("/room/{}/ws", uid("rate-other")), "192.0.2.100").await.is_ok());
}
