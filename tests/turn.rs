//! Cloudflare TURN credentials, minted by each room for its joiners, against the real Worker.
//!
//! Cloudflare's TURN key API cannot be reached from this machine, so a local HTTP server stands
//! in for it (`TURN_API_BASE` points the Worker at it), answering as Cloudflare documents:
//! `POST {base}/{key_id}/credentials/generate-ice-servers` with `Authorization: Bearer <token>` and
//! `{"ttl": seconds}` returns `{"iceServers": …}` — a list, or (older answers) one object. The
//! stand-in records every request and can also fail or never answer, which is what the Worker
//! must survive: a join always completes, with the configured servers at least.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_meet_blackbox::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY_ID: &str = "key-0123";
const API_TOKEN: &str = "secret-token-xyz";
const STUN: &str = r#"[{"urls":"stun:stun.example.net:3478"}]"#;

/// How the stand-in answers.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Mode {
    List = 0,
    Object = 1,
    Fail = 2,
    Hang = 3,
}

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct FakeCloudflare {
    port: u16,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeCloudflare {
    async fn start() -> FakeCloudflare {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the stand-in");
        let fake = FakeCloudflare {
            port: listener.local_addr().expect("its port").port(),
            mode: Arc::new(AtomicU8::new(Mode::List as u8)),
            seen: Arc::default(),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(f.clone().serve(stream));
            }
        });
        fake
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One HTTP/1.1 request per connection: read the head and a Content-Length body, answer, close.
    async fn serve(self, mut stream: TcpStream) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while data.len() < head_end + length {
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        let body = serde_json::from_slice(&data[head_end..head_end + length]).unwrap_or(Value::Null);
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            request_line: head.lines().next().unwrap_or_default().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body,
        });
        let mode = self.mode.load(Ordering::SeqCst);
        let (status, body) = match mode {
            m if m == Mode::List as u8 => ("201 Created", json!({ "iceServers": [turn_entry("list")] }).to_string()),
            m if m == Mode::Object as u8 => ("201 Created", json!({ "iceServers": turn_entry("object") }).to_string()),
            m if m == Mode::Fail as u8 => ("500 Internal Server Error", r#"{"error":"boom"}"#.to_owned()),
            _ => {
                // Never answers (within the test): the Worker must give up on its own.
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

fn turn_entry(tag: &str) -> Value {
    json!({
        "urls": ["turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:443?transport=tcp"],
        "username": format!("user-{tag}"),
        "credential": format!("cred-{tag}"),
    })
}

fn stun() -> Vec<Value> {
    serde_json::from_str(STUN).expect("STUN list")
}

#[tokio::test]
async fn rooms_mint_turn_credentials_and_survive_a_failing_or_silent_api() {
    let fake = FakeCloudflare::start().await;
    let base = format!("http://127.0.0.1:{}/v1/turn/keys", fake.port);
    let server = Server::start(&[
        ("ICE_SERVERS", STUN),
        ("TURN_KEY_ID", KEY_ID),
        ("TURN_KEY_API_TOKEN", API_TOKEN),
        ("TURN_API_BASE", &base),
    ]);
    let port = server.port;

    // The first joiner of a room gets the configured servers followed by freshly minted TURN.
    let room = uid("turn");
    let ann = join(port, &room, &uid("ann"), "Ann").await;
    let mut expected = stun();
    expected.push(turn_entry("list"));
    assert_eq!(ann.ice_servers, Value::Array(expected.clone()), "STUN then TURN");
    let seen = fake.requests();
    assert_eq!(seen.len(), 1, "one mint for the first joiner: {seen:?}");
    let r = &seen[0];
    assert_eq!(r.request_line, format!("POST /v1/turn/keys/{KEY_ID}/credentials/generate-ice-servers HTTP/1.1"));
    assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {API_TOKEN}").as_str()));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.body, json!({ "ttl": 86_400 }), "credentials live a day");

    // Later joiners of the same room reuse them: no request per join.
    let ben = join(port, &room, &uid("ben"), "Ben").await;
    assert_eq!(ben.ice_servers, Value::Array(expected));
    assert_eq!(fake.requests().len(), 1, "the room minted once");

    // An API answering with one object (older responses) works the same.
    fake.set(Mode::Object);
    let other = join(port, &uid("turn"), &uid("cat"), "Cat").await;
    let mut expected = stun();
    expected.push(turn_entry("object"));
    assert_eq!(other.ice_servers, Value::Array(expected));
    assert_eq!(fake.requests().len(), 2, "a new room mints its own");

    // A failing API: the join still succeeds, with the configured servers only.
    fake.set(Mode::Fail);
    let failed = join(port, &uid("turn"), &uid("dan"), "Dan").await;
    assert_eq!(failed.ice_servers, Value::Array(stun()), "HTTP 500: STUN only");
    assert_eq!(fake.requests().len(), 3);

    // A silent API: the join waits at most the mint timeout (3 s), then goes on without TURN.
    fake.set(Mode::Hang);
    let t0 = Instant::now();
    let silent = join(port, &uid("turn"), &uid("eve"), "Eve").await;
    let waited = t0.elapsed();
    assert_eq!(silent.ice_servers, Value::Array(stun()), "no answer: STUN only");
    assert_eq!(fake.requests().len(), 4, "the request was made");
    assert!(waited >= Duration::from_millis(2_500), "the join waited for the API ({waited:?})");
    assert!(waited < Duration::from_secs(8), "the join gave up on the API ({waited:?})");

    // The room keeps serving: the two in the first room still talk.
    let (mut ann, mut ben) = (ann, ben);
    ann.room.send_chat("still here").await;
    for c in [&mut ann, &mut ben] {
        let mut got = c.room.recv_json().await;
        if got["type"] == "peer-joined" {
            got = c.room.recv_json().await; // Ann saw Ben arrive first
        }
        assert_eq!(got["type"], "chat", "[{}] {got}", c.id);
        assert_eq!(got["message"]["text"], "still here");
    }
}
