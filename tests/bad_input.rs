//! Malformed and hostile input, each answered as documented (error code, HTTP status, or
//! silently ignored for PeerJS), while well-behaved clients in the same room keep chatting:
//! after every case a speaker sends a chat and the watcher must receive exactly it next.

use std::time::{Duration, Instant};

use edge_meet_blackbox::*;
use edge_meet_core::protocol::{ErrorCode, ServerFrame};
use serde_json::{json, Value};

const ROOM: &str = "hostile";

struct Bench {
    port: u16,
    watcher: Client,
    speakers: Vec<Client>,
    /// Hostile clients that joined: they receive every chat too.
    extra: Vec<Client>,
    /// Room sockets of members whose PeerJS socket a case uses on its own.
    extra_rooms: Vec<Ws>,
    probes: usize,
    cases: Vec<String>,
}

impl Bench {
    /// Records that `case` was checked and proves the room still works: a speaker chats and
    /// the watcher (and both speakers) receive exactly that message next.
    async fn done(&mut self, case: &str) {
        self.cases.push(case.to_string());
        eprintln!("case {}: {case}", self.cases.len());
        self.probes += 1;
        let text = format!("probe {} after: {case}", self.probes);
        let i = self.probes % self.speakers.len();
        self.speakers[i].room.send_chat(&text).await;
        let r = self.watcher.room.expect_chat().await;
        assert_eq!(r.text, text, "watcher after case {case:?}");
        assert_eq!(r.peer_id, self.speakers[i].id);
        for s in self
            .speakers
            .iter_mut()
            .chain(self.extra.iter_mut())
            .map(|c| &mut c.room)
            .chain(self.extra_rooms.iter_mut())
        {
            assert_eq!(s.expect_chat().await, r, "member after case {case:?}");
        }
        // Two speakers take turns, each well under RATE_PER_SEC.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    /// Every joined socket except the watcher's.
    fn others(&mut self) -> impl Iterator<Item = &mut Ws> {
        self.speakers.iter_mut().chain(self.extra.iter_mut()).map(|c| &mut c.room).chain(self.extra_rooms.iter_mut())
    }

    async fn hostile_room_socket(&self) -> Ws {
        connect(self.port, &format!("/room/{ROOM}/ws")).await.labelled("hostile room")
    }

    /// A fresh unjoined room socket sends `frame`; expects error `code` and the socket open.
    async fn room_case(&mut self, case: &str, frame: Msg, code: ErrorCode) {
        let mut h = self.hostile_room_socket().await;
        match frame {
            Msg::Text(t) => h.send_text(t).await,
            Msg::Binary(b) => h.send_binary(b).await,
        }
        let msg = h.expect_error(code).await;
        assert!(h.is_open().await, "case {case:?}: socket closed after error ({msg})");
        h.close().await;
        self.done(case).await;
    }

    async fn http_case(&mut self, case: &str, method: &str, path: &str, status: u16) -> HttpResponse {
        let r = http(self.port, method, path, &[]).await;
        assert_eq!(r.status, status, "case {case:?}: {method} {path}: {r:?}");
        self.done(case).await;
        r
    }

    async fn upgrade_case(&mut self, case: &str, path: &str, status: u16) {
        let r = upgrade_probe(self.port, path, None).await;
        assert_eq!(r.status, status, "case {case:?}: upgrade {path}: {r:?}");
        if status == 400 {
            let ct = r.header("content-type").unwrap_or_default();
            assert!(ct.starts_with("text/plain"), "case {case:?}: 400 with content-type {ct:?}");
        }
        self.done(case).await;
    }

    /// An upgrade to a path no socket lives at: refused with a 4xx (never accepted).
    async fn bad_ws_path_case(&mut self, case: &str, path: &str) {
        let r = upgrade_probe(self.port, path, None).await;
        assert!((400..500).contains(&r.status), "case {case:?}: upgrade {path}: {r:?}");
        self.done(case).await;
    }
}

enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

fn t(s: &str) -> Msg {
    Msg::Text(s.to_string())
}

fn j(v: Value) -> Msg {
    Msg::Text(v.to_string())
}

#[tokio::test]
async fn hostile_input_never_disturbs_a_well_behaved_room() {
    let server = Server::start(&[
        ("RATE_PER_SEC", "10"),
        ("RATE_BURST", "20"),
        ("PEERJS_RATE_PER_SEC", "20"),
        ("PEERJS_RATE_BURST", "30"),
    ]);
    let port = server.port;
    let t_start = Instant::now();
    let mut watcher = join(port, ROOM, "watcher", "Watcher").await;
    let s1 = join(port, ROOM, "speaker1", "Speaker One").await;
    let s2 = join(port, ROOM, "speaker2", "Speaker Two").await;
    for m in [&s1.me, &s2.me] {
        match watcher.room.recv_server().await {
            ServerFrame::PeerJoined { peer } => assert_eq!(&peer, m),
            other => panic!("{other:?}"),
        }
    }
    let mut s1 = s1;
    match s1.room.recv_server().await {
        ServerFrame::PeerJoined { peer } => assert_eq!(peer, s2.me),
        other => panic!("{other:?}"),
    }
    let mut b = Bench {
        port,
        watcher,
        speakers: vec![s1, s2],
        extra: Vec::new(),
        extra_rooms: Vec::new(),
        probes: 0,
        cases: Vec::new(),
    };
    b.done("baseline").await;
    b.cases.clear();

    // ----- room socket, not joined: malformed frames ----------------------------------------
    b.room_case("not JSON", t("not json"), ErrorCode::BadJson).await;
    b.room_case("truncated JSON", t(r#"{"type":"chat","text":"#), ErrorCode::BadJson).await;
    b.room_case("JSON array", t("[1,2]"), ErrorCode::BadJson).await;
    b.room_case("JSON string", t(r#""join""#), ErrorCode::BadJson).await;
    b.room_case("JSON null", t("null"), ErrorCode::BadJson).await;
    b.room_case("JSON number", t("12"), ErrorCode::BadJson).await;
    b.room_case("empty text frame", t(""), ErrorCode::BadJson).await;
    b.room_case("object without type", t("{}"), ErrorCode::UnknownType).await;
    b.room_case("unknown type", j(json!({"type": "nope"})), ErrorCode::UnknownType).await;
    b.room_case("numeric type", j(json!({"type": 42})), ErrorCode::UnknownType).await;
    b.room_case("null type", j(json!({"type": null})), ErrorCode::UnknownType).await;
    b.room_case("wrong-case type", j(json!({"type": "JOIN", "peerId": "x"})), ErrorCode::UnknownType).await;
    b.room_case("server frame type", j(json!({"type": "welcome"})), ErrorCode::UnknownType).await;
    b.room_case("PeerJS frame on room socket", j(json!({"type": "OFFER", "dst": "watcher"})), ErrorCode::UnknownType)
        .await;
    b.room_case("binary frame", Msg::Binary(vec![0, 1, 2, 255]), ErrorCode::BinaryUnsupported).await;
    b.room_case(
        "binary frame holding valid JSON",
        Msg::Binary(br#"{"type":"chat","text":"hi"}"#.to_vec()),
        ErrorCode::BinaryUnsupported,
    )
    .await;
    let big = |n: usize| {
        let pad = n - r#"{"type":"chat","text":""}"#.len();
        format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(pad))
    };
    b.room_case("text frame of 64 KiB + 1", Msg::Text(big(64 * 1024 + 1)), ErrorCode::FrameTooLarge).await;
    b.room_case("text frame of 200 KiB", Msg::Text(big(200 * 1024)), ErrorCode::FrameTooLarge).await;
    b.room_case("binary frame of 70 KiB", Msg::Binary(vec![b'{'; 70 * 1024]), ErrorCode::FrameTooLarge).await;
    b.room_case("chat before join", j(json!({"type": "chat", "text": "hi"})), ErrorCode::NotJoined).await;
    b.room_case("media before join", j(json!({"type": "media", "mic": true})), ErrorCode::NotJoined).await;
    b.room_case("leave before join", j(json!({"type": "leave"})), ErrorCode::NotJoined).await;
    b.room_case("join without fields", j(json!({"type": "join"})), ErrorCode::BadRequest).await;
    b.room_case(
        "join with numeric peerId",
        j(json!({"type": "join", "peerId": 1, "token": "t", "name": "x"})),
        ErrorCode::BadRequest,
    )
    .await;
    b.room_case("join without name", j(json!({"type": "join", "peerId": "p", "token": "t"})), ErrorCode::BadRequest)
        .await;
    b.room_case("chat without text", j(json!({"type": "chat"})), ErrorCode::BadRequest).await;
    b.room_case("chat with numeric text", j(json!({"type": "chat", "text": 5})), ErrorCode::BadRequest).await;
    b.room_case("media with string value", j(json!({"type": "media", "mic": "yes"})), ErrorCode::BadRequest).await;
    b.room_case("media with unknown field", j(json!({"type": "media", "laser": true})), ErrorCode::BadRequest).await;

    // ----- joins that must be refused -------------------------------------------------------
    let w_token = b.watcher.token.clone();
    let s_id = b.speakers[0].id.clone();
    b.room_case("join with unregistered peer id", j(join_frame("nobody", "t", "N")), ErrorCode::UnknownPeer).await;
    b.room_case("join as the watcher with a wrong token", j(join_frame("watcher", "guess", "W")), ErrorCode::BadToken)
        .await;
    b.room_case("join as a speaker with the watcher's token", j(join_frame(&s_id, &w_token, "S")), ErrorCode::BadToken)
        .await;
    // A peer id (with its right token) registered in another room does not count here.
    let elsewhere = peerjs_open(port, &room_prefix("elsewhere"), "roamer", "rt").await;
    b.room_case("join with a peer id from another room", j(join_frame("roamer", "rt", "R")), ErrorCode::UnknownPeer)
        .await;
    drop(elsewhere);
    let _hn = peerjs_open(port, &room_prefix(ROOM), "namer", "nt").await;
    for (case, name) in [
        ("empty name", "".to_string()),
        ("blank name", "   ".to_string()),
        ("name with BEL", "a\u{0007}b".to_string()),
        ("name with newline", "a\nb".to_string()),
        ("name with NUL", "a\u{0000}b".to_string()),
        ("name with RTL override", "evil\u{202E}txt".to_string()),
        ("name with bidi isolate", "x\u{2066}y".to_string()),
        ("name of 33 characters", "x".repeat(33)),
        ("name of 33 two-byte characters", "é".repeat(33)),
    ] {
        b.room_case(case, j(join_frame("namer", "nt", &name)), ErrorCode::InvalidName).await;
    }

    // ----- a joined hostile client ------------------------------------------------------------
    let html = "<img src=x onerror=alert(1)>";
    let h = join(port, ROOM, "hx", html).await;
    assert_eq!(h.me.name, html, "HTML in names stays literal");
    match b.watcher.room.recv_server().await {
        ServerFrame::PeerJoined { peer } => assert_eq!(peer, h.me),
        other => panic!("{other:?}"),
    }
    for ws in b.others() {
        assert!(matches!(ws.recv_server().await, ServerFrame::PeerJoined { .. }));
    }
    b.extra.push(h);
    b.done("HTML name is accepted literally").await;
    let hx_token = b.extra[0].token.clone();
    for (case, frame, code) in [
        ("join twice", join_frame("hx", &hx_token, "again"), ErrorCode::AlreadyJoined),
        ("blank chat", json!({"type": "chat", "text": "   \n\t "}), ErrorCode::InvalidText),
        ("empty chat", json!({"type": "chat", "text": ""}), ErrorCode::InvalidText),
        ("chat of 2001 characters", json!({"type": "chat", "text": "y".repeat(2001)}), ErrorCode::InvalidText),
        ("chat with NUL", json!({"type": "chat", "text": "a\u{0000}b"}), ErrorCode::InvalidText),
        ("chat with ANSI escape", json!({"type": "chat", "text": "x\u{001b}[31mred"}), ErrorCode::InvalidText),
        ("chat with RTL override", json!({"type": "chat", "text": "a\u{202E}b"}), ErrorCode::InvalidText),
        ("media with null field", json!({"type": "media", "camera": null, "extra": 1}), ErrorCode::BadRequest),
    ] {
        b.extra[0].room.send_json(&frame).await;
        b.extra[0].room.expect_error(code).await;
        b.done(case).await;
    }
    // Spoofed identity in a chat frame: the server uses the roster's name and peer id.
    b.extra[0]
        .room
        .send_json(&json!({"type": "chat", "text": "I am the watcher", "name": "Watcher", "peerId": "watcher"}))
        .await;
    let r = b.watcher.room.expect_chat().await;
    assert_eq!((r.peer_id.as_str(), r.name.as_str(), r.text.as_str()), ("hx", html, "I am the watcher"));
    for ws in b.others() {
        assert_eq!(ws.expect_chat().await, r);
    }
    b.done("chat with spoofed name and peerId").await;

    // Flood past RATE_BURST=20: one rate-limited error for the burst, the rest dropped.
    let mut flooder = join(port, ROOM, "flooder", "Flooder").await;
    assert!(matches!(b.watcher.room.recv_server().await, ServerFrame::PeerJoined { .. }));
    for ws in b.others() {
        assert!(matches!(ws.recv_server().await, ServerFrame::PeerJoined { .. }));
    }
    flooder.room.send_burst((0..60).map(|i| json!({"type": "chat", "text": format!("flood {i}")}).to_string())).await;
    let mut limited = 0;
    let mut echoed = Vec::new();
    while let Some(f) = flooder.room.recv(Duration::from_millis(1500)).await {
        let Frame::Text(txt) = f else { panic!("flooder: {f:?}") };
        match serde_json::from_str::<ServerFrame>(&txt).unwrap() {
            ServerFrame::Chat { message } => echoed.push(message.text),
            ServerFrame::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
            other => panic!("flooder got {other:?}"),
        }
    }
    let mut seen = Vec::new();
    while seen.len() < echoed.len() {
        seen.push(b.watcher.room.expect_chat().await.text);
    }
    b.watcher.room.expect_no_frame(100).await;
    let n = echoed.len();
    for ws in b.others() {
        for _ in 0..n {
            ws.expect_chat().await;
        }
    }
    println!("flood: 60 chats sent at once, {n} admitted, {limited} rate-limited error(s)");
    assert_eq!(seen, echoed);
    let expected_prefix: Vec<String> = (0..n).map(|i| format!("flood {i}")).collect();
    // 19 tokens are left after the join; refills at 10/s while the burst is processed may add a few.
    assert!((17..=26).contains(&n), "admitted {n} of 60 with RATE_BURST=20");
    assert!(
        echoed.iter().take(17).eq(expected_prefix.iter().take(17)),
        "the first frames of a burst are the admitted ones: {echoed:?}"
    );
    assert!((1..=3).contains(&limited), "{limited} rate-limited errors for one burst");
    b.extra.push(flooder);
    b.done("chat flood past the rate limit").await;
    // The bucket refills: the flooder may speak again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    b.extra[1].room.send_json(&json!({"type": "chat", "text": "calm again"})).await;
    let r = b.watcher.room.expect_chat().await;
    assert_eq!((r.text.as_str(), r.peer_id.as_str()), ("calm again", "flooder"));
    for ws in b.others() {
        assert_eq!(ws.expect_chat().await, r);
    }
    b.done("rate limit recovers after a pause").await;
    // A flood of frames that need no answer still gets exactly one rate-limited error.
    let mut quiet = b.hostile_room_socket().await;
    quiet.send_burst((0..60).map(|_| r#"{"type": "HEARTBEAT"}"#.to_string())).await;
    let mut errs = 0;
    while let Some(f) = quiet.recv(Duration::from_millis(800)).await {
        let Frame::Text(txt) = f else { panic!("{f:?}") };
        assert!(matches!(serde_json::from_str(&txt).unwrap(), ServerFrame::Error { code: ErrorCode::RateLimited, .. }));
        errs += 1;
    }
    assert!((1..=3).contains(&errs), "{errs} rate-limited errors");
    b.done("heartbeat flood past the rate limit").await;

    // ----- PeerJS socket: hostile frames are ignored, never answered, socket kept ---------------
    // A seated member's PeerJS socket: in a room only members' signalling is relayed at all.
    let hp_member = join(port, ROOM, "hp", "HP").await;
    assert!(matches!(b.watcher.room.recv_server().await, ServerFrame::PeerJoined { .. }));
    for ws in b.others() {
        assert!(matches!(ws.recv_server().await, ServerFrame::PeerJoined { .. }));
    }
    let Client { peer: mut hp, room: hp_room, .. } = hp_member;
    b.extra_rooms.push(hp_room);
    let peerjs_ignored: Vec<(&str, Msg)> = vec![
        ("PeerJS: not JSON", t("<<<>>>")),
        ("PeerJS: JSON array", t("[]")),
        ("PeerJS: null", t("null")),
        ("PeerJS: OFFER without dst", t(r#"{"type":"OFFER","payload":{}}"#)),
        ("PeerJS: numeric dst", t(r#"{"type":"OFFER","payload":{},"dst":123}"#)),
        ("PeerJS: unknown type", t(r#"{"type":"NUKE","payload":{},"dst":"watcher"}"#)),
        ("PeerJS: OPEN from a client", t(r#"{"type":"OPEN","dst":"watcher"}"#)),
        ("PeerJS: binary frame", Msg::Binary(vec![1, 2, 3])),
        (
            "PeerJS: 70 KiB OFFER",
            Msg::Text(format!(r#"{{"type":"OFFER","payload":"{}","dst":"watcher"}}"#, "z".repeat(70 * 1024))),
        ),
    ];
    for (case, frame) in peerjs_ignored {
        match frame {
            Msg::Text(t) => hp.send_text(t).await,
            Msg::Binary(bin) => hp.send_binary(bin).await,
        }
        hp.expect_no_frame(150).await;
        b.watcher.peer.expect_no_frame(10).await;
        assert!(hp.is_open().await, "{case}: socket closed");
        b.done(case).await;
    }
    // Spoofed src: the watcher sees the real sender.
    hp.send_text(r#"{"type":"OFFER","src":"speaker1","payload":{"sdp":"x"},"dst":"watcher"}"#).await;
    b.watcher.peer.expect_text(r#"{"type":"OFFER","src":"hp","dst":"watcher","payload":{"sdp":"x"}}"#).await;
    b.done("PeerJS: spoofed src").await;
    // Taking the watcher's id with another token.
    let mut thief = connect(port, &peerjs_path(&room_prefix(ROOM), "peerjs", "watcher", "stolen")).await;
    thief.expect_text(ID_TAKEN).await;
    thief.expect_close(1000).await;
    b.watcher.peer.expect_no_frame(100).await;
    b.done("PeerJS: id of a member with another token").await;
    // A relay flood past PEERJS_RATE_BURST=30: the excess is dropped silently.
    hp.send_burst((0..60).map(|i| format!(r#"{{"type":"CANDIDATE","payload":{i},"dst":"watcher"}}"#))).await;
    let mut relayed = Vec::new();
    while let Some(f) = b.watcher.peer.recv(Duration::from_millis(800)).await {
        let Frame::Text(txt) = f else { panic!("{f:?}") };
        relayed.push(txt);
    }
    println!("PeerJS flood: 60 relays sent at once, {} delivered", relayed.len());
    assert!((27..=40).contains(&relayed.len()), "{} of 60 relayed with PEERJS_RATE_BURST=30", relayed.len());
    for (i, f) in relayed.iter().take(27).enumerate() {
        assert_eq!(f, &format!(r#"{{"type":"CANDIDATE","src":"hp","dst":"watcher","payload":{i}}}"#));
    }
    hp.expect_no_frame(10).await;
    assert!(hp.is_open().await);
    b.done("PeerJS: relay flood past the rate limit").await;
    // LEAVE without dst unregisters the sender (peerjs-server's removeClientById); its socket
    // stays open, it can no longer join, and the id is free for a new token. (An id nobody is
    // seated as; a member's id would stay reserved for its token.)
    let mut hq = peerjs_open(port, &room_prefix(ROOM), "hq", "hqt").await;
    hq.send_text(r#"{"type":"LEAVE"}"#).await;
    hq.expect_no_frame(200).await;
    assert!(hq.is_open().await);
    let mut j2 = b.hostile_room_socket().await;
    j2.send_json(&join_frame("hq", "hqt", "HQ")).await;
    j2.expect_error(ErrorCode::UnknownPeer).await;
    let retaken = peerjs_open(port, &room_prefix(ROOM), "hq", "new-token").await;
    drop(retaken);
    b.done("PeerJS: LEAVE without dst").await;

    // ----- URLs -------------------------------------------------------------------------------
    let long = "a".repeat(65);
    let r = b.http_case("room page with a space in the id", "GET", "/room/a%20b", 400).await;
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{r:?}");
    let r = b.http_case("room page with <script> in the id", "GET", "/room/<script>alert(1)</script>", 400).await;
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{r:?}");
    assert!(!r.text().contains("<script>"), "a 400 must not echo markup: {:?}", r.text());
    // A browser following a mangled link gets the meeting page (which explains it), still a 400.
    let r = http(port, "GET", "/room/a%20b", &[("Accept", "text/html,application/xhtml+xml")]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/html"), "{r:?}");
    let r = http(port, "GET", "/room/a%20b/ws", &[("Accept", "text/html")]).await;
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "only pages: {r:?}");
    b.http_case("room page with a 65-character id", "GET", &format!("/room/{long}"), 400).await;
    b.http_case("room page with a 64-character id (valid)", "GET", &format!("/room/{}", "a".repeat(64)), 200).await;
    b.http_case("PeerJS id endpoint with a bad room id", "GET", "/room/a.b/peerjs/id", 400).await;
    b.http_case("stats with a bad room id", "GET", "/room/%3Cx%3E/stats", 400).await;
    b.upgrade_case("room socket with a space in the id", "/room/a%20b/ws", 400).await;
    b.upgrade_case("room socket with a 65-character id", &format!("/room/{long}/ws"), 400).await;
    // The URL parser resolves %2e%2e as "..": the request is for /ws, which does not exist.
    b.upgrade_case("room socket with an encoded .. id", "/room/%2e%2e/ws", 404).await;
    b.upgrade_case("room socket with .. in the path", "/room/x/../../ws", 404).await;
    b.upgrade_case("room socket with a dot in the id", "/room/a.b/ws", 400).await;
    b.upgrade_case("room socket with an encoded slash", "/room/a%2Fb/ws", 400).await;
    b.upgrade_case("room socket with non-ASCII id", "/room/%C3%BCml/ws", 400).await;
    b.upgrade_case("room socket with an empty id", "/room//ws", 400).await;
    b.upgrade_case("PeerJS socket with <script> room", "/room/<script>/peerjs?key=peerjs&id=a&token=b", 400).await;
    b.bad_ws_path_case("ws to /room/{room}/wss", &format!("/room/{ROOM}/wss")).await;
    b.bad_ws_path_case("ws to /room/{room}/ws/extra", &format!("/room/{ROOM}/ws/extra")).await;
    b.bad_ws_path_case(
        "ws to {prefix}peerjs/ (trailing slash)",
        &format!("/room/{ROOM}/peerjs/?key=peerjs&id=a&token=b"),
    )
    .await;
    b.bad_ws_path_case("ws to /peerjs/ws", "/peerjs/ws").await;
    b.bad_ws_path_case("ws to /peerjs/peerjs/peerjs", "/peerjs/peerjs/peerjs?key=peerjs&id=a&token=b").await;
    let r = http(port, "GET", &format!("/room/{ROOM}/ws"), &[]).await;
    assert!((400..500).contains(&r.status), "plain GET of a socket path: {r:?}");
    b.done("plain GET (no upgrade) of a socket path").await;
    // Absurd PeerJS ids and tokens: accepted upgrade, ERROR, close (limits.rs PEERJS_FIELD_MAX).
    for (case, path) in [
        ("PeerJS id of 300 characters", peerjs_path(&room_prefix(ROOM), "peerjs", &"i".repeat(300), "t")),
        ("PeerJS token of 300 characters", peerjs_path(&room_prefix(ROOM), "peerjs", "okid", &"t".repeat(300))),
    ] {
        let mut ws = connect(port, &path).await;
        ws.expect_text(ERR_NO_PARAMS).await;
        ws.expect_close(1000).await;
        b.done(case).await;
    }
    // A huge query string on the room socket is ignored.
    let mut ws = connect(port, &format!("/room/{ROOM}/ws?junk={}", "q".repeat(6000))).await;
    ws.send_text("?").await;
    ws.expect_error(ErrorCode::BadJson).await;
    ws.close().await;
    b.done("room socket with a 6 KB query string").await;
    let evil = try_connect(port, &format!("/room/{ROOM}/ws"), Some("https://evil.example")).await;
    assert!(matches!(evil, Err(ConnectError::Status(403, _))), "{:?}", evil.err());
    b.done("room socket from a foreign Origin").await;

    // The watcher's PeerJS socket saw only what was addressed to it, and everyone is still here.
    b.watcher.peer.expect_no_frame(100).await;
    for ws in b.others() {
        ws.expect_no_frame(10).await;
    }
    let stats = server.stats(&room_prefix(ROOM)).await;
    println!("stats after the hostile run: {stats}");
    assert_eq!(stats["members"], 6, "watcher, 2 speakers, hx, flooder, hp: {stats}");
    println!("{} hostile cases, {} probes delivered, {:?}", b.cases.len(), b.probes, t_start.elapsed());
    assert!(b.cases.len() >= 30);
}
