//! Frame-by-frame conformance of the PeerJS servers (per room under `/room/{room}/` and the
//! global drop-in under `/peerjs/`) with what the unmodified client expects (docs/PEERJS.md, the checklist).
//! Every frame is compared byte for byte.
//!
//! Relay, queues and id ownership are peerjs-server's semantics, which the global server keeps
//! exactly: those tests run there, one key each. In a room the roster decides who may signal
//! whom (tests/membership.rs); the tests here that use rooms seat their peers first.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_meet_blackbox::*;

const EXPIRE_MS: u64 = 1500;
/// `PEERJS_LIMIT` of the main server: ids per key on the global server.
const GLOBAL_LIMIT: usize = 8;

/// Main server: short EXPIRE, small limits so the limit ERROR is reachable.
fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        Server::start(&[
            ("EXPIRE_TIMEOUT_MS", "1500"),
            ("ROOM_PEERJS_LIMIT", "5"),
            ("PEERJS_LIMIT", "8"),
            // One key (one object) per test of the global server's peerjs-server semantics.
            ("PEERJS_KEYS", "peerjs,k2,k3,taken,reattach,relay,queue,pct"),
        ])
    })
}

/// Second server: short alive timeout, discovery on, stats off.
fn alive_server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        Server::start(&[("ALIVE_TIMEOUT_MS", "2000"), ("ALLOW_DISCOVERY", "true"), ("DEBUG_STATS", "false")])
    })
}

fn port() -> u16 {
    server().port
}

/// Connects, expects the upgrade to be accepted, then exactly `frame`, then close 1000.
async fn expect_error_then_close(path: &str, frame: &str) {
    let mut ws = connect(port(), path).await.labelled(path);
    ws.expect_text(frame).await;
    ws.expect_close(1000).await;
}

#[tokio::test]
async fn error_frames_are_sent_after_accepting_the_upgrade_then_close() {
    let room = uid("err");
    let p = room_prefix(&room);
    let cases: Vec<(String, &str)> = vec![
        (format!("{p}peerjs"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=peerjs&id=a1&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=peerjs&token=t&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?id=a1&token=t&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=peerjs&id=&token=t&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=peerjs&id=a1&token=&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=&id=a1&token=t"), ERR_NO_PARAMS),
        // Missing parameters are checked before the key (§2.5 steps 2, 3).
        (format!("{p}peerjs?key=wrong&id=a1&version=1.5.5"), ERR_NO_PARAMS),
        (format!("{p}peerjs?key=wrong&id=a1&token=t&version=1.5.5"), ERR_INVALID_KEY),
        ("/peerjs/peerjs".to_string(), ERR_NO_PARAMS),
        ("/peerjs/peerjs?key=nope&id=a1&token=t&version=1.5.5".to_string(), ERR_INVALID_KEY),
        // §2.5 step 1: the query goes through Object.fromEntries, so the last duplicate wins.
        (format!("{p}peerjs?key=peerjs&id=a1&token=t&key=wrong"), ERR_INVALID_KEY),
    ];
    for (path, frame) in &cases {
        expect_error_then_close(path, frame).await;
    }
    // None of those registered anything: the id is free for a proper client.
    let ws = peerjs_open(port(), &p, "a1", "t").await;
    ws.close().await;
}

/// Ids are held to the peerjs client's own rule (`validateId.ts`), so every id an unmodified
/// client would connect with registers, and the order of peerjs-server's checks is kept: our id
/// rule only speaks when peerjs-server would have accepted the query.
#[tokio::test]
async fn ids_the_peerjs_client_accepts_register_and_the_key_is_checked_first() {
    let p = room_prefix(&uid("idrule"));
    let r = server().get(&format!("{p}peerjs/id")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let uuid = r.text();
    let sixty_four = "x".repeat(64);
    // As sent in the query: `%20` and `+` decode to the space the rule allows between runs.
    for id in [uuid.as_str(), "bob%20x", "a_b-c+d", "A1-b2_C3", sixty_four.as_str()] {
        peerjs_open(port(), &p, id, "t").await.close().await;
    }
    // A malformed id with a wrong key: peerjs-server's answer (the key), not ours.
    expect_error_then_close(&format!("{p}peerjs?key=wrong&id=%3Cb%3E&token=t"), ERR_INVALID_KEY).await;
    expect_error_then_close(&format!("{p}peerjs?key=peerjs&id=%3Cb%3E&token=t"), ERR_NO_PARAMS).await;
    expect_error_then_close("/peerjs/peerjs?key=peerjs&id=a--b&token=t", ERR_NO_PARAMS).await;
}

#[tokio::test]
async fn concurrent_user_limit_error() {
    // Global server, key k3: PEERJS_LIMIT ids, then peerjs-server's ERROR.
    let mut global = Vec::new();
    for i in 0..GLOBAL_LIMIT {
        global.push(peerjs_open_key(port(), "/peerjs/", "k3", &format!("g{i}"), "t").await);
    }
    let over = format!("g{GLOBAL_LIMIT}");
    expect_error_then_close(&peerjs_path("/peerjs/", "k3", &over, "t"), ERR_LIMIT).await;
    // A same-token re-attach is not a new registration: allowed at the limit (§2.5 step 5).
    let mut again = connect(port(), &peerjs_path("/peerjs/", "k3", "g0", "t")).await.labelled("g0 again");
    again.expect_text(OPEN).await;
    global[0].expect_close(4000).await;
    // Freeing a slot lets the next one in.
    global.pop().unwrap().close().await;
    let t0 = Instant::now();
    loop {
        let mut ws = connect(port(), &peerjs_path("/peerjs/", "k3", &over, "t")).await;
        let first = ws.recv_text().await;
        if first == OPEN {
            break;
        }
        assert_eq!(first, ERR_LIMIT);
        assert!(t0.elapsed() < Duration::from_secs(2), "slot not freed 2 s after a close");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The limit is per key: k2 still has room.
    let other = peerjs_open_key(port(), "/peerjs/", "k2", "g3", "t").await;
    other.close().await;
}

#[tokio::test]
async fn id_taken_for_another_token_and_owner_unaffected() {
    const K: &str = "taken";
    let p = "/peerjs/".to_string();
    let mut a = peerjs_open_key(port(), &p, K, "alice", "tok-a").await;
    let mut b = peerjs_open_key(port(), &p, K, "bob", "tok-b").await;
    expect_error_then_close(&peerjs_path(&p, K, "alice", "other"), ID_TAKEN).await;
    a.expect_no_frame(300).await;
    b.send_text(r#"{"type":"OFFER","payload":{"k":1},"dst":"alice"}"#).await;
    a.expect_text(r#"{"type":"OFFER","src":"bob","dst":"alice","payload":{"k":1}}"#).await;
    // Closing the owner frees the id at once (§2.5 "Close"): a new token can take it.
    a.close().await;
    let t0 = Instant::now();
    loop {
        let mut ws = connect(port(), &peerjs_path(&p, K, "alice", "other")).await;
        let first = ws.recv_text().await;
        if first == OPEN {
            break;
        }
        assert_eq!(first, ID_TAKEN);
        assert!(t0.elapsed() < Duration::from_secs(2), "id not freed 2 s after its socket closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("id freed {:?} after close", t0.elapsed());
}

#[tokio::test]
async fn reattach_with_same_token_gets_open_and_old_socket_is_closed_4000() {
    const K: &str = "reattach";
    let p = "/peerjs/".to_string();
    let mut old = peerjs_open_key(port(), &p, K, "carol", "tok-c").await;
    let mut b = peerjs_open_key(port(), &p, K, "dave", "tok-d").await;
    let mut new = connect(port(), &peerjs_path(&p, K, "carol", "tok-c")).await.labelled("carol new");
    new.expect_text(OPEN).await;
    old.expect_close(4000).await;
    b.send_text(r#"{"type":"ANSWER","payload":{"x":"y"},"dst":"carol"}"#).await;
    new.expect_text(r#"{"type":"ANSWER","src":"dave","dst":"carol","payload":{"x":"y"}}"#).await;
    // The old socket's close must not unregister the id now owned by the new one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send_text(r#"{"type":"CANDIDATE","payload":{"c":2},"dst":"carol"}"#).await;
    new.expect_text(r#"{"type":"CANDIDATE","src":"dave","dst":"carol","payload":{"c":2}}"#).await;
    b.expect_no_frame(300).await;
}

#[tokio::test]
async fn relay_sets_src_from_the_server_and_keeps_payload_verbatim() {
    const K: &str = "relay";
    let p = "/peerjs/".to_string();
    let mut a = peerjs_open_key(port(), &p, K, "pa", "ta").await;
    let mut b = peerjs_open_key(port(), &p, K, "pb", "tb").await;

    // The captured 1.5.5 key order is type, payload, dst; a spoofed src and extra fields are
    // dropped, and the payload (escapes, unicode, nesting) is relayed exactly as sent.
    let payload = r#"{"sdp":{"type":"offer","sdp":"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\n"},"type":"data","connectionId":"dc_5x1k","metadata":{"n":"é\u00e9\"q"},"label":"chat","reliable":true,"serialization":"json"}"#;
    a.send_text(format!(r#"{{"type":"OFFER","src":"mallory","payload":{payload},"dst":"pb","extra":1}}"#)).await;
    b.expect_text(&format!(r#"{{"type":"OFFER","src":"pa","dst":"pb","payload":{payload}}}"#)).await;

    b.send_text(r#"{"type":"ANSWER","payload":{"sdp":{"type":"answer","sdp":"v=0"},"type":"data","connectionId":"dc_5x1k"},"dst":"pa"}"#).await;
    a.expect_text(r#"{"type":"ANSWER","src":"pb","dst":"pa","payload":{"sdp":{"type":"answer","sdp":"v=0"},"type":"data","connectionId":"dc_5x1k"}}"#).await;

    for kind in ["CANDIDATE", "LEAVE", "EXPIRE"] {
        a.send_text(format!(r#"{{"type":"{kind}","payload":{{"n":[1,2.5,null,true]}},"dst":"pb"}}"#)).await;
        b.expect_text(&format!(r#"{{"type":"{kind}","src":"pa","dst":"pb","payload":{{"n":[1,2.5,null,true]}}}}"#))
            .await;
    }
    // No payload: the key is omitted.
    a.send_text(r#"{"type":"OFFER","dst":"pb"}"#).await;
    b.expect_text(r#"{"type":"OFFER","src":"pa","dst":"pb"}"#).await;
    // To yourself: relayed to yourself.
    a.send_text(r#"{"type":"CANDIDATE","payload":{},"dst":"pa"}"#).await;
    a.expect_text(r#"{"type":"CANDIDATE","src":"pa","dst":"pa","payload":{}}"#).await;

    // Ignored without closing (§2.3 steps 1, 3, 5): non-JSON, non-objects, other types, no dst.
    let ignored = [
        "not json",
        "",
        "42",
        "null",
        "[]",
        r#""OFFER""#,
        r#"{"type":"OPEN"}"#,
        r#"{"type":"ID-TAKEN","dst":"pb"}"#,
        r#"{"type":"ERROR","payload":{"msg":"x"},"dst":"pb"}"#,
        r#"{"type":"FOO","payload":{},"dst":"pb"}"#,
        r#"{"type":"offer","payload":{},"dst":"pb"}"#,
        r#"{"payload":{},"dst":"pb"}"#,
        r#"{"type":"OFFER","payload":{}}"#,
        r#"{"type":"OFFER","payload":{},"dst":""}"#,
        r#"{"type":"ANSWER","payload":{"#,
    ];
    for f in ignored {
        a.send_text(f).await;
    }
    a.send_text(r#"{"type":"OFFER","payload":"marker","dst":"pb"}"#).await;
    b.expect_text(r#"{"type":"OFFER","src":"pa","dst":"pb","payload":"marker"}"#).await;
    a.expect_no_frame(200).await;
    b.expect_no_frame(200).await;
    assert!(a.is_open().await && b.is_open().await, "ignored frames must not close sockets");
}

#[tokio::test]
async fn offline_queue_delivery_and_one_expire_per_pair() {
    const K: &str = "queue";
    let p = "/peerjs/".to_string();
    let mut a = peerjs_open_key(port(), &p, K, "qa", "ta").await;
    let mut b = peerjs_open_key(port(), &p, K, "qb", "tb").await;

    let t0 = Instant::now();
    a.send_text(r#"{"type":"OFFER","payload":{"n":1},"dst":"ghost"}"#).await;
    a.send_text(r#"{"type":"CANDIDATE","payload":{"n":2},"dst":"ghost"}"#).await;
    a.send_text(r#"{"type":"OFFER","payload":{"n":3},"dst":"ghost2"}"#).await;
    a.send_text(r#"{"type":"OFFER","payload":{"n":4},"dst":"late"}"#).await;
    a.send_text(r#"{"type":"CANDIDATE","payload":{"n":5},"dst":"late"}"#).await;
    // LEAVE and EXPIRE to an offline id are dropped, never queued (§2.3, transmission spec).
    a.send_text(r#"{"type":"LEAVE","payload":{"n":6},"dst":"ghost3"}"#).await;
    a.send_text(r#"{"type":"EXPIRE","payload":{"n":7},"dst":"ghost3"}"#).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.send_text(r#"{"type":"OFFER","payload":{"n":8},"dst":"ghost"}"#).await;
    a.send_text(r#"{"type":"OFFER","payload":{"n":9},"dst":"ghost"}"#).await;

    // A late joiner gets OPEN first, then its queue in FIFO order, then nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = peerjs_open_key(port(), &p, K, "late", "tl").await;
    late.expect_text(r#"{"type":"OFFER","src":"qa","dst":"late","payload":{"n":4}}"#).await;
    late.expect_text(r#"{"type":"CANDIDATE","src":"qa","dst":"late","payload":{"n":5}}"#).await;
    let mut g3 = peerjs_open_key(port(), &p, K, "ghost3", "tg").await;
    late.expect_no_frame(100).await;
    g3.expect_no_frame(100).await;

    // EXPIRE: exactly one per (sender, unreachable) pair, ~EXPIRE_TIMEOUT_MS after the first
    // queued message for that destination.
    let window = Duration::from_millis(4000);
    let mut got_a = Vec::new();
    while got_a.len() < 2 {
        let f = a.recv_text_within(window.saturating_sub(t0.elapsed())).await;
        got_a.push((f, t0.elapsed()));
    }
    let fb = b.recv_text_within(window.saturating_sub(t0.elapsed())).await;
    let tb = t0.elapsed();
    let mut frames: Vec<&str> = got_a.iter().map(|(f, _)| f.as_str()).collect();
    frames.sort();
    assert_eq!(
        frames,
        vec![r#"{"type":"EXPIRE","src":"ghost","dst":"qa"}"#, r#"{"type":"EXPIRE","src":"ghost2","dst":"qa"}"#]
    );
    assert_eq!(fb, r#"{"type":"EXPIRE","src":"ghost","dst":"qb"}"#);
    for (f, t) in &got_a {
        println!("EXPIRE timing: {f} after {} ms (EXPIRE_TIMEOUT_MS={EXPIRE_MS})", t.as_millis());
        assert!(t.as_millis() >= 1400 && t.as_millis() <= 4000, "{f} after {t:?}, want 1400..4000 ms");
    }
    // B's first message went out ~200 ms after A's, into the same queue (age from its first
    // message), so B's EXPIRE comes with A's.
    println!("EXPIRE timing: {fb} after {} ms (queue created ~0 ms, B's message at ~200 ms)", tb.as_millis());
    assert!(tb.as_millis() >= 1400 && tb.as_millis() <= 4000, "B's EXPIRE after {tb:?}");

    // Exactly one each: nothing more, also not for the delivered or dropped frames.
    a.expect_no_frame(2000).await;
    b.expect_no_frame(10).await;
    late.expect_no_frame(10).await;
    g3.expect_no_frame(10).await;
    // The expired queue is gone: "ghost" coming online now gets OPEN and nothing else.
    let mut ghost = peerjs_open_key(port(), &p, K, "ghost", "tgh").await;
    ghost.expect_no_frame(300).await;
}

#[tokio::test]
async fn query_is_percent_decoded_and_plus_is_a_space() {
    const K: &str = "pct";
    let p = "/peerjs/".to_string();
    let mut bob = peerjs_open_key(port(), &p, K, "bob%20x", "tok%2Bplus").await;
    let mut c = peerjs_open_key(port(), &p, K, "carl", "tc").await;
    c.send_text(r#"{"type":"OFFER","payload":1,"dst":"bob x"}"#).await;
    bob.expect_text(r#"{"type":"OFFER","src":"carl","dst":"bob x","payload":1}"#).await;
    bob.send_text(r#"{"type":"ANSWER","payload":2,"dst":"carl"}"#).await;
    c.expect_text(r#"{"type":"ANSWER","src":"bob x","dst":"carl","payload":2}"#).await;
    // "bob+x" is the same id as "bob x"; another token is refused.
    expect_error_then_close(&peerjs_path(&p, K, "bob+x", "other"), ID_TAKEN).await;
    // The token was "tok+plus": presenting it decoded the other way is a re-attach.
    let mut again = connect(port(), &peerjs_path(&p, K, "bob+x", "tok%2bplus")).await;
    again.expect_text(OPEN).await;
    bob.expect_close(4000).await;
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            14 => *c == b'4',
            19 => matches!(c, b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

#[tokio::test]
async fn http_endpoints_id_peers_options_description() {
    let room = uid("http");
    let origin = "https://app.example.test";
    let mut ids = Vec::new();
    for prefix in [room_prefix(&room), "/peerjs/".to_string()] {
        let path = format!("{prefix}peerjs/id?ts=17955388230650.13320784521498918&version=1.5.5");
        let r = http(port(), "GET", &path, &[("Origin", origin)]).await;
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let id = r.text();
        assert!(is_uuid_v4(&id), "GET {path}: body {id:?} is not a bare lowercase UUID v4");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin), "GET {path}: {r:?}");
        let vary = r.header("vary").unwrap_or_default().to_ascii_lowercase();
        assert!(vary.split(',').any(|v| v.trim() == "origin"), "GET {path}: Vary {vary:?}");
        ids.push(id);
        // Without Origin (a non-browser client) it works too.
        let r = http(port(), "GET", &format!("{prefix}peerjs/id"), &[]).await;
        assert_eq!(r.status, 200);
        assert!(is_uuid_v4(&r.text()), "{:?}", r.text());
        ids.push(r.text());

        let r = http(port(), "GET", &format!("{prefix}peerjs/peers"), &[("Origin", origin)]).await;
        assert_eq!(r.status, 401, "peers without ALLOW_DISCOVERY: {r:?}");
        assert_eq!(r.text(), "Unauthorized");

        let r = http(
            port(),
            "OPTIONS",
            &format!("{prefix}peerjs/id"),
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
        )
        .await;
        assert_eq!(r.status, 204, "OPTIONS {prefix}peerjs/id: {r:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin), "OPTIONS: {r:?}");
        assert!(r.body.is_empty());
    }
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len(), "ids repeat: {ids:?}");
    // A server-assigned id is usable as is.
    let ws = peerjs_open(port(), &room_prefix(&room), &ids[0], "t").await;
    ws.close().await;

    let r = http(port(), "GET", "/peerjs", &[]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["name"], "PeerJS Server", "{v}");
    let r = http(port(), "GET", "/", &[]).await;
    assert_eq!(r.status, 200, "landing page");
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/html"), "{r:?}");
    // Both pages carry the one CSP of public/_headers (the room page is served by the Worker).
    for path in ["/", "/room/csp-check"] {
        let r = http(port(), "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn discovery_lists_ids_when_enabled_and_stats_are_off_by_default() {
    let s = alive_server();
    let room = uid("disc");
    let p = room_prefix(&room);
    let a = peerjs_open(s.port, &p, "d1", "t").await;
    let b = peerjs_open(s.port, &p, "d2", "t").await;
    let g = peerjs_open(s.port, "/peerjs/", "g1", "t").await;
    let r = http(s.port, "GET", &format!("{p}peerjs/peers"), &[("Origin", "https://x.example")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut ids: Vec<String> = serde_json::from_value(r.json()).unwrap();
    ids.sort();
    assert_eq!(ids, vec!["d1", "d2"]);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://x.example"));
    let r = http(s.port, "GET", "/peerjs/peerjs/peers", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!(["g1"]));
    // DEBUG_STATS=false: the stats endpoints do not exist.
    for path in [format!("{p}stats"), "/peerjs/peerjs/stats".to_string()] {
        let r = http(s.port, "GET", &path, &[]).await;
        assert_eq!(r.status, 404, "GET {path} with DEBUG_STATS=false: {r:?}");
    }
    drop((a, b, g));
}

#[tokio::test]
async fn rooms_and_global_keys_are_isolated() {
    let (rx, ry) = (uid("isox"), uid("isoy"));
    // The same id, seated in two rooms and registered under two global keys: four registries.
    let mut ix = join(port(), &rx, "iso", "Iso").await;
    let mut iy = join(port(), &ry, "iso", "Iso").await;
    let mut ig = peerjs_open_key(port(), "/peerjs/", "peerjs", "iso", "t3").await;
    let mut ik = peerjs_open_key(port(), "/peerjs/", "k2", "iso", "t4").await;
    let mut sx = join(port(), &rx, "sx", "Sx").await;
    let mut sg = peerjs_open_key(port(), "/peerjs/", "k2", "sg", "t").await;
    ix.room.recv_server().await; // peer-joined sx

    sx.peer.send_text(r#"{"type":"OFFER","payload":"x","dst":"iso"}"#).await;
    ix.peer.expect_text(r#"{"type":"OFFER","src":"sx","dst":"iso","payload":"x"}"#).await;
    sg.send_text(r#"{"type":"OFFER","payload":"k","dst":"iso"}"#).await;
    ik.expect_text(r#"{"type":"OFFER","src":"sg","dst":"iso","payload":"k"}"#).await;
    // "sx" exists only in room x: from room y it is no member, so the sender gets EXPIRE.
    iy.peer.send_text(r#"{"type":"OFFER","payload":"y","dst":"sx"}"#).await;
    let t0 = Instant::now();
    iy.peer.expect_text(r#"{"type":"EXPIRE","src":"sx","dst":"iso"}"#).await;
    println!("cross-room EXPIRE after {} ms", t0.elapsed().as_millis());
    iy.peer.expect_no_frame(10).await;
    ig.expect_no_frame(10).await;
    ix.peer.expect_no_frame(10).await;
    ik.expect_no_frame(10).await;
    sx.peer.expect_no_frame(10).await;
    sg.expect_no_frame(10).await;
}

/// The stats object's `events.message`.
async fn message_events(prefix: &str) -> u64 {
    let v = server().stats(prefix).await;
    v["events"]["message"].as_u64().unwrap_or_else(|| panic!("stats without events.message: {v}"))
}

#[tokio::test]
async fn exact_heartbeat_is_answered_by_the_runtime_without_waking_the_object() {
    for prefix in [room_prefix(&uid("hb")), "/peerjs/".to_string()] {
        let key = "peerjs";
        let id = uid("hb");
        let mut a = peerjs_open_key(port(), &prefix, key, &id, "t").await;
        let mut room_ws = if prefix.starts_with("/room/") {
            Some(connect(port(), &format!("{prefix}ws")).await.labelled("room ws"))
        } else {
            None
        };
        let stats_prefix = if prefix == "/peerjs/" { format!("/peerjs/{key}/") } else { prefix.clone() };
        let stats = server().stats(&stats_prefix).await;
        for field in ["sockets", "registered", "members", "queued", "chat"] {
            assert!(stats[field].is_u64(), "stats.{field} missing: {stats}");
        }
        for field in ["fetch", "message", "close", "error", "alarm"] {
            assert!(stats["events"][field].is_u64(), "stats.events.{field} missing: {stats}");
        }
        assert!(stats["registered"].as_u64().unwrap() >= 1, "{stats}");
        let m0 = message_events(&stats_prefix).await;
        const N: usize = 25;
        for _ in 0..N {
            a.send_text(HEARTBEAT).await;
            a.expect_text(HEARTBEAT).await;
        }
        if let Some(ws) = room_ws.as_mut() {
            for _ in 0..5 {
                ws.send_text(HEARTBEAT).await;
                ws.expect_text(HEARTBEAT).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m1 = message_events(&stats_prefix).await;
        println!("heartbeat stats {stats_prefix}: events.message before={m0} after {N}+ exact heartbeats={m1}");
        assert_eq!(m1, m0, "exact heartbeats reached the Durable Object");

        // A differently spelled heartbeat does reach it (and gets no reply): the counter works.
        const M: u64 = 5;
        for _ in 0..M {
            a.send_text(r#"{"type": "HEARTBEAT"}"#).await;
        }
        a.expect_no_frame(300).await;
        let t0 = Instant::now();
        let mut m2 = message_events(&stats_prefix).await;
        while m2 < m1 + M && t0.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m2 = message_events(&stats_prefix).await;
        }
        println!("heartbeat stats {stats_prefix}: after {M} spaced heartbeats events.message={m2}");
        assert_eq!(m2, m1 + M, "spaced heartbeats must each be one message event");
    }
}

#[tokio::test]
async fn silent_sockets_are_closed_4001_and_heartbeating_ones_survive() {
    let s = alive_server();
    let room = uid("alive");
    // PeerJS liveness on the global server (in a room, unseated ids have only the join window);
    // room sockets in a room.
    let p = "/peerjs/".to_string();
    let t0 = Instant::now();
    let mut silent = peerjs_open(s.port, &p, "silent", "t").await;
    let mut silent_room = connect(s.port, &format!("/room/{room}/ws")).await.labelled("silent room");
    let mut hb = peerjs_open(s.port, &p, "hb", "t").await;
    hb.skip_heartbeat_echo = true;
    let mut hb2 = peerjs_open(s.port, &p, "hb2", "t").await;
    let mut hb_room = connect(s.port, &format!("/room/{room}/ws")).await.labelled("hb room");
    hb_room.skip_heartbeat_echo = true;

    let keep_alive = async {
        // Heartbeat every 500 ms for 6 s: the exact spelling (runtime auto-response) on two
        // sockets, a spaced one (reaches the object) on the third.
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            hb.send_text(HEARTBEAT).await;
            hb_room.send_text(HEARTBEAT).await;
            hb2.send_text(r#"{"type": "HEARTBEAT"}"#).await;
            hb.expect_no_frame(0).await;
            if let Some(f) = hb2.recv(Duration::from_millis(500)).await {
                panic!("heartbeating socket got {f:?} after {:?}", t0.elapsed());
            }
        }
    };
    let watch = async {
        let a = silent.expect_close_within(4001, Duration::from_secs(8)).await;
        let ta = t0.elapsed();
        let _ = a;
        let b = silent_room.expect_close_within(4001, Duration::from_secs(8)).await;
        let _ = b;
        (ta, t0.elapsed())
    };
    let ((ta, tb), ()) = tokio::join!(watch, keep_alive);
    println!(
        "alive timeout (ALIVE_TIMEOUT_MS=2000): silent PeerJS socket closed 4001 after {} ms, silent room socket by {} ms",
        ta.as_millis(),
        tb.as_millis()
    );
    assert!(ta >= Duration::from_millis(1800) && ta <= Duration::from_millis(6000), "{ta:?}");
    assert!(tb <= Duration::from_millis(6000), "{tb:?}");
    println!("heartbeating sockets alive after {} ms", t0.elapsed().as_millis());
    assert!(hb.is_open().await, "exact-heartbeat PeerJS socket was closed");
    assert!(hb2.is_open().await, "spaced-heartbeat PeerJS socket was closed");
    assert!(hb_room.is_open().await, "heartbeating room socket was closed");
    // Still registered: relays reach it.
    hb2.send_text(r#"{"type":"OFFER","payload":0,"dst":"hb"}"#).await;
    hb.expect_text(r#"{"type":"OFFER","src":"hb2","dst":"hb","payload":0}"#).await;
    // The dropped id is free again.
    let again = peerjs_open(s.port, &p, "silent", "new-token").await;
    again.close().await;
}

#[tokio::test]
async fn client_close_is_answered_with_a_close_frame() {
    // RFC 6455 §5.5.1: an endpoint that receives a Close frame must send a Close frame in
    // response. Without it a browser's socket stays CLOSING until the TCP connection dies.
    let p = room_prefix(&uid("closehs"));
    for prefix in [p.as_str(), "/peerjs/"] {
        let ws = peerjs_open(port(), prefix, &uid("c"), "t").await;
        match ws.close_handshake(1000, Duration::from_secs(2)).await {
            Ok((code, took)) => println!("{prefix}peerjs: server answered close with {code:?} after {took:?}"),
            Err(e) => panic!("{prefix}peerjs: client sent Close(1000): {e}"),
        }
    }
}
