//! Black-box test support: start the real Worker under `wrangler dev` (workerd), talk to it over
//! plain HTTP and WebSockets, and speak both wire protocols with the core's own types.
//!
//! Process hygiene: every server runs in its own process group led by a small `sh` that holds
//! the read end of a pipe whose write end only this test process has. When the pipe closes —
//! `Drop`, a normal exit, a panic, or even SIGKILL of the test binary — `read` returns and the
//! shell SIGKILLs every other member of its group (npx, wrangler, workerd), reaps them, deletes
//! the temporary directories it was told to, and exits. Nothing is left running.

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_meet_core::protocol::{ChatRecord, ClientFrame, ErrorCode, Member, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The repository: this package lives in its `tests/` directory.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The checkout whose `build/` and `wrangler.toml` are served: this crate, unless
/// `EDGE_MEET_TEST_ROOT` names another one (to run these tests against a patched copy).
pub fn root() -> PathBuf {
    std::env::var_os("EDGE_MEET_TEST_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(ROOT))
}
/// The exact heartbeat bytes the runtime auto-answers.
pub const HEARTBEAT: &str = edge_meet_core::peerjs::HEARTBEAT_FRAME;
pub const OPEN: &str = r#"{"type":"OPEN"}"#;
pub const ID_TAKEN: &str = r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#;
pub const ERR_NO_PARAMS: &str =
    r#"{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}}"#;
pub const ERR_INVALID_KEY: &str = r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#;
pub const ERR_LIMIT: &str = r#"{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}"#;
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

// ----- ids ------------------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique within this run: `prefix-<pid><n>`; only `[A-Za-z0-9-]`, so it is a valid room
/// id and a valid PeerJS id.
pub fn uid(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}x{n}x{}", std::process::id(), nanos % 10_000)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

// ----- building and starting the server -------------------------------------------------------

static BUILT: Mutex<bool> = Mutex::new(false);

/// Builds the Worker bundle once if `build/index.js` is missing (`EDGE_MEET_TEST_REBUILD=1`
/// forces a build even if it exists).
pub fn ensure_built() {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return;
    }
    let force = std::env::var("EDGE_MEET_TEST_REBUILD").is_ok_and(|v| v == "1");
    if force || !root().join("build/index.js").exists() {
        eprintln!("[support] building the Worker: bash scripts/build.sh");
        let status = Command::new("bash")
            .arg("scripts/build.sh")
            .current_dir(root())
            .env_remove("EDGE_MEET_SKIP_BUILD")
            .status()
            .expect("could not run bash scripts/build.sh");
        assert!(status.success(), "bash scripts/build.sh failed: {status}");
        assert!(root().join("build/index.js").exists(), "build did not produce build/index.js");
    }
    *built = true;
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-meet-{tag}-{}", uid("t")));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// One `wrangler dev` on a free loopback port.
pub struct Server {
    pub port: u16,
    pub persist_dir: PathBuf,
    vars: Vec<(String, String)>,
    work_dir: PathBuf,
    own_persist: bool,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pub started_in: Duration,
}

impl Server {
    /// Starts a server with a fresh persistence directory. `DEBUG_STATS=true` and
    /// `ICE_SERVERS=[]` are set unless `vars` overrides them.
    pub fn start(vars: &[(&str, &str)]) -> Server {
        Server::start_on(vars, None)
    }

    /// Starts on `persist` (kept when the server stops) or a fresh directory (deleted).
    pub fn start_on(vars: &[(&str, &str)], persist: Option<PathBuf>) -> Server {
        ensure_built();
        let mut all: Vec<(String, String)> =
            vec![("DEBUG_STATS".into(), "true".into()), ("ICE_SERVERS".into(), "[]".into())];
        for (k, v) in vars {
            all.retain(|(k2, _)| k2 != k);
            all.push((k.to_string(), v.to_string()));
        }
        let own_persist = persist.is_none();
        let persist_dir = persist.unwrap_or_else(|| temp_dir("state"));
        let mut server = Server {
            port: 0,
            persist_dir,
            vars: all,
            work_dir: temp_dir("log"),
            own_persist,
            child: None,
            stdin: None,
            started_in: Duration::ZERO,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let t0 = Instant::now();
        self.port = free_port();
        let log = self.work_dir.join(format!("wrangler-{}.log", self.port));
        let persist_to_delete = if self.own_persist { self.persist_dir.display().to_string() } else { String::new() };
        // scripts/group-leader.sh: the server's process group dies with this test process.
        let mut cmd = Command::new("sh");
        cmd.arg(Path::new(ROOT).join("scripts/group-leader.sh"))
            .arg(&log)
            .arg(&self.work_dir)
            .arg(persist_to_delete)
            .args(["npx", "wrangler", "dev", "--ip", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--persist-to")
            .arg(&self.persist_dir)
            .args(["--inspector-port", "0", "--log-level", "warn", "--show-interactive-dev-session=false"]);
        for (k, v) in &self.vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        cmd.current_dir(root())
            .env("EDGE_MEET_SKIP_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("BROWSER", "none")
            .env("CI", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn sh for wrangler dev");
        self.stdin = child.stdin.take();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = http_blocking(self.port, "GET", "/peerjs", &[], b"") {
                if r.status == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                self.stop();
                panic!("wrangler dev did not answer GET /peerjs with 200 within 90 s; log:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        self.started_in = t0.elapsed();
        eprintln!("[support] wrangler dev on port {} ready in {:?}", self.port, self.started_in);
    }

    /// What wrangler printed so far (for failure messages).
    pub fn log(&self) -> String {
        let log = self.work_dir.join(format!("wrangler-{}.log", self.port));
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// SIGKILLs the whole process group and waits until the leader has reaped it.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = Command::new("kill").args(["-9", "--", &format!("-{pgid}")]).status();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Kills the server (like a crash: SIGKILL, no shutdown) and starts a new one on the same
    /// persistence directory. The port changes.
    pub fn restart(&mut self) {
        let _ = std::fs::write(self.work_dir.join("keep-state"), b"");
        self.stop();
        self.work_dir = temp_dir("log");
        self.launch();
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn origin(&self) -> String {
        self.base()
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http(self.port, "GET", path, &[]).await
    }

    pub async fn stats(&self, prefix: &str) -> Value {
        let r = self.get(&format!("{prefix}stats")).await;
        assert_eq!(r.status, 200, "GET {prefix}stats: {r:?}");
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("[support] test failed; last lines of wrangler's log (port {}):\n{}", self.port, tail.join("\n"));
        }
        self.stop();
        if self.own_persist {
            let _ = std::fs::remove_dir_all(&self.persist_dir);
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

// ----- HTTP -----------------------------------------------------------------------------------

#[derive(Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.text();
        let shown: String = text.chars().take(300).collect();
        let more = if shown.len() < text.len() { format!("… ({} bytes)", self.body.len()) } else { String::new() };
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format!("{shown}{more}"))
            .finish()
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends one request with raw bytes and reads the response. A 101 answer returns at once
/// (the connection is then dropped, which closes the socket).
pub fn http_raw_blocking(port: u16, request: &[u8]) -> std::io::Result<HttpResponse> {
    let mut s = StdTcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let body = if status == 101 || status == 204 || status == 304 || request.starts_with(b"HEAD ") {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(body) = dechunk(&rest) {
                break body;
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated chunked body"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else {
        s.read_to_end(&mut rest)?;
        rest
    };
    Ok(HttpResponse { status, headers, body })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a complete chunked body, or `None` if more bytes are needed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_str = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

pub fn http_blocking(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http_raw_blocking(port, &bytes)
}

pub async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let (m, p) = (method.to_string(), path.to_string());
    let h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http_blocking(port, &m, &p, &hr, b"")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A WebSocket upgrade request sent as raw bytes, so any path (even one no URL parser would
/// accept) can be tried. Returns the HTTP answer; 101 means the server accepted the upgrade.
pub async fn upgrade_probe(port: u16, path: &str, origin: Option<&str>) -> HttpResponse {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    let p = path.to_string();
    tokio::task::spawn_blocking(move || http_raw_blocking(port, req.as_bytes()))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("upgrade {p}: {e}"))
}

// ----- WebSocket client -----------------------------------------------------------------------

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One event from a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame from the server (code, reason).
    Close(Option<u16>, String),
    /// The connection ended without a close frame, or failed.
    Gone(String),
}

#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade with this HTTP status.
    Status(u16, String),
    Other(String),
}

pub struct Ws {
    inner: WsStream,
    pub label: String,
    /// Drop the runtime's `{"type":"HEARTBEAT"}` answers instead of returning them.
    pub skip_heartbeat_echo: bool,
    ended: bool,
}

pub async fn try_connect(port: u16, path: &str, origin: Option<&str>) -> Result<Ws, ConnectError> {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    try_connect_with(port, path, &headers).await
}

/// Opens a WebSocket as a client whose edge reports address `ip` (`CF-Connecting-IP`; wrangler
/// dev keeps a client's own header, as Cloudflare's edge would set it).
pub async fn try_connect_from(port: u16, path: &str, ip: &str) -> Result<Ws, ConnectError> {
    try_connect_with(port, path, &[("CF-Connecting-IP", ip)]).await
}

pub async fn try_connect_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Ws, ConnectError> {
    let url = format!("ws://127.0.0.1:{port}{path}");
    let mut req = url.as_str().into_client_request().map_err(|e| ConnectError::Other(format!("{url}: {e}")))?;
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ConnectError::Other(format!("{name}: {e}")))?;
        let value = value.parse().map_err(|e| ConnectError::Other(format!("{name}: {e}")))?;
        req.headers_mut().insert(name, value);
    }
    match tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err(ConnectError::Other(format!("{url}: connect timed out"))),
        Ok(Ok((inner, _))) => Ok(Ws { inner, label: path.to_string(), skip_heartbeat_echo: false, ended: false }),
        Ok(Err(WsError::Http(resp))) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err(ConnectError::Status(resp.status().as_u16(), body))
        }
        Ok(Err(e)) => Err(ConnectError::Other(format!("{url}: {e}"))),
    }
}

pub async fn connect(port: u16, path: &str) -> Ws {
    connect_with_origin(port, path, None).await
}

pub async fn connect_with_origin(port: u16, path: &str, origin: Option<&str>) -> Ws {
    match try_connect(port, path, origin).await {
        Ok(ws) => ws,
        Err(e) => panic!("WebSocket {path} (origin {origin:?}) refused: {e:?}"),
    }
}

impl Ws {
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        if let Err(e) = self.inner.send(Message::text(text)).await {
            panic!("[{}] send failed: {e}", self.label);
        }
    }

    /// Sends without panicking (for sockets the server may already have closed).
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        let text: String = text.into();
        self.inner.send(Message::text(text)).await.is_ok()
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(v.to_string()).await
    }

    pub async fn send_frame<T: serde::Serialize>(&mut self, frame: &T) {
        self.send_text(serde_json::to_string(frame).unwrap()).await
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        if let Err(e) = self.inner.send(Message::binary(data)).await {
            panic!("[{}] send failed: {e}", self.label);
        }
    }

    /// Queues many text frames and flushes once, so they leave back to back.
    pub async fn send_burst(&mut self, frames: impl IntoIterator<Item = String>) {
        for f in frames {
            self.inner.feed(Message::text(f)).await.expect("feed");
        }
        self.inner.flush().await.expect("flush");
    }

    /// The next frame within `wait`, or `None` on timeout. Pings/pongs are skipped.
    pub async fn recv(&mut self, wait: Duration) -> Option<Frame> {
        if self.ended {
            return Some(Frame::Gone("already ended".into()));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return None,
                Ok(n) => n,
            };
            let frame = match next {
                None => Frame::Gone("stream ended".into()),
                Some(Err(e)) => Frame::Gone(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str().to_string();
                    if self.skip_heartbeat_echo && t == HEARTBEAT {
                        continue;
                    }
                    Frame::Text(t)
                }
                Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(Message::Close(c))) => Frame::Close(
                    c.as_ref().map(|c| u16::from(c.code)),
                    c.map(|c| c.reason.to_string()).unwrap_or_default(),
                ),
                Some(Ok(_)) => continue,
            };
            if matches!(frame, Frame::Close(..) | Frame::Gone(_)) {
                self.ended = true;
            }
            return Some(frame);
        }
    }

    /// The next text frame; panics on timeout, binary, or close.
    pub async fn recv_text_within(&mut self, wait: Duration) -> String {
        match self.recv(wait).await {
            Some(Frame::Text(t)) => t,
            other => panic!("[{}] expected a text frame within {wait:?}, got {other:?}", self.label),
        }
    }

    pub async fn recv_text(&mut self) -> String {
        self.recv_text_within(DEFAULT_WAIT).await
    }

    pub async fn recv_json_within(&mut self, wait: Duration) -> Value {
        let t = self.recv_text_within(wait).await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("[{}] not JSON ({e}): {t}", self.label))
    }

    pub async fn recv_json(&mut self) -> Value {
        self.recv_json_within(DEFAULT_WAIT).await
    }

    /// Asserts the next text frame is exactly `expected` (byte for byte).
    pub async fn expect_text(&mut self, expected: &str) {
        let got = self.recv_text().await;
        assert_eq!(got, expected, "[{}] unexpected frame", self.label);
    }

    /// Asserts nothing at all (no frame, no close) arrives for `ms` milliseconds.
    pub async fn expect_no_frame(&mut self, ms: u64) {
        if let Some(f) = self.recv(Duration::from_millis(ms)).await {
            panic!("[{}] expected silence for {ms} ms, got {f:?}", self.label);
        }
    }

    /// Asserts the next event is a close frame with `code` (frames before it fail the test).
    /// Returns how long it took.
    pub async fn expect_close_within(&mut self, code: u16, wait: Duration) -> Duration {
        let t0 = Instant::now();
        match self.recv(wait).await {
            Some(Frame::Close(Some(c), _)) if c == code => t0.elapsed(),
            other => panic!("[{}] expected close {code} within {wait:?}, got {other:?}", self.label),
        }
    }

    pub async fn expect_close(&mut self, code: u16) -> Duration {
        self.expect_close_within(code, DEFAULT_WAIT).await
    }

    /// True when the socket is still open: sends a ping and waits for the pong.
    pub async fn is_open(&mut self) -> bool {
        if self.ended || self.inner.send(Message::Ping(b"p".to_vec().into())).await.is_err() {
            return false;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Ok(Some(Ok(Message::Pong(_)))) => return true,
                Ok(Some(Ok(Message::Ping(_)))) => continue,
                Ok(Some(Ok(Message::Text(t)))) if self.skip_heartbeat_echo && t.as_str() == HEARTBEAT => continue,
                Ok(Some(Ok(m))) => panic!("[{}] unexpected frame while checking liveness: {m:?}", self.label),
                _ => return false,
            }
        }
    }

    /// Sends a close frame (1000) and drops the connection without waiting for the server's
    /// answer (see `client_close_is_answered_with_a_close_frame` for that).
    pub async fn close(mut self) {
        let _ = self.inner.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    }

    /// Sends a close frame with `code` and returns the server's close frame, if one arrives
    /// within `wait` (RFC 6455 §5.5.1: the receiver of a Close must answer with a Close).
    pub async fn close_handshake(mut self, code: u16, wait: Duration) -> Result<(Option<u16>, Duration), String> {
        let t0 = Instant::now();
        self.inner
            .send(Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: "bye".into() })))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return Err(format!("no close frame from the server within {wait:?}")),
                Ok(None) => return Err(format!("connection ended after {:?} without a close frame", t0.elapsed())),
                Ok(Some(Err(e))) => return Err(format!("{e} after {:?}", t0.elapsed())),
                Ok(Some(Ok(Message::Close(c)))) => return Ok((c.map(|c| u16::from(c.code)), t0.elapsed())),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    // ----- room protocol ----------------------------------------------------------------------

    /// The next frame, parsed as a room-protocol [`ServerFrame`].
    pub async fn recv_server_within(&mut self, wait: Duration) -> ServerFrame {
        let t = self.recv_text_within(wait).await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("[{}] not a ServerFrame ({e}): {t}", self.label))
    }

    pub async fn recv_server(&mut self) -> ServerFrame {
        self.recv_server_within(DEFAULT_WAIT).await
    }

    /// Asserts the next frame is a `chat` and returns its record.
    pub async fn expect_chat(&mut self) -> ChatRecord {
        match self.recv_server().await {
            ServerFrame::Chat { message } => message,
            other => panic!("[{}] expected chat, got {other:?}", self.label),
        }
    }

    /// Sends a `chat` frame.
    pub async fn send_chat(&mut self, text: &str) {
        self.send_frame(&ClientFrame::Chat { text: text.to_owned() }).await;
    }

    /// Asserts the next frame is `{"type":"error","code":<code>,...}`; returns the message.
    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.recv_server().await {
            ServerFrame::Error { code: c, message } => {
                assert_eq!(c, code, "[{}] wrong error code (message {message:?})", self.label);
                assert!(!message.is_empty(), "[{}] error without a message", self.label);
                message
            }
            other => panic!("[{}] expected error {code:?}, got {other:?}", self.label),
        }
    }
}

// ----- PeerJS helpers -------------------------------------------------------------------------

/// `{prefix}peerjs?key=..&id=..&token=..&version=1.5.5`, as the 1.5.5 client builds it.
pub fn peerjs_path(prefix: &str, key: &str, id: &str, token: &str) -> String {
    format!("{prefix}peerjs?key={key}&id={id}&token={token}&version=1.5.5")
}

/// Opens a PeerJS socket with key `peerjs` and asserts the first frame is exactly OPEN.
pub async fn peerjs_open(port: u16, prefix: &str, id: &str, token: &str) -> Ws {
    peerjs_open_key(port, prefix, "peerjs", id, token).await
}

pub async fn peerjs_open_key(port: u16, prefix: &str, key: &str, id: &str, token: &str) -> Ws {
    let mut ws = connect(port, &peerjs_path(prefix, key, id, token)).await.labelled(format!("peerjs {prefix}{id}"));
    ws.expect_text(OPEN).await;
    ws
}

pub fn room_prefix(room: &str) -> String {
    format!("/room/{room}/")
}

// ----- room helpers ---------------------------------------------------------------------------

pub fn join_frame(peer_id: &str, token: &str, name: &str) -> Value {
    let join = ClientFrame::Join { peer_id: peer_id.into(), token: token.into(), name: name.into(), media: None };
    serde_json::to_value(join).unwrap_or_default()
}

/// A participant: a registered PeerJS socket plus a joined room socket.
pub struct Client {
    pub id: String,
    pub token: String,
    pub peer: Ws,
    pub room: Ws,
    pub me: Member,
    pub peers: Vec<Member>,
    pub chat: Vec<ChatRecord>,
    pub ice_servers: Value,
    pub limits: edge_meet_core::protocol::RoomLimits,
    /// The welcome said the join took back a seat this id and token still held.
    pub resumed: bool,
}

/// Registers `id` on the room's PeerJS server, opens `/room/{room}/ws` and joins as `name`.
pub async fn join(port: u16, room: &str, id: &str, name: &str) -> Client {
    join_as(port, room, id, name, None).await
}

/// [`join`] with an optional `media` patch in the join frame.
pub async fn join_as(port: u16, room: &str, id: &str, name: &str, media: Option<Value>) -> Client {
    let token = format!("tok{}", uid("t").replace('-', ""));
    join_with(port, room, id, &token, name, media).await
}

/// [`join_as`] with a given token: what a page does when it comes back for its seat.
pub async fn join_with(port: u16, room: &str, id: &str, token: &str, name: &str, media: Option<Value>) -> Client {
    let token = token.to_owned();
    let peer = peerjs_open(port, &room_prefix(room), id, &token).await;
    let mut ws = connect(port, &format!("/room/{room}/ws")).await.labelled(format!("room {room} {id}"));
    let mut frame = join_frame(id, &token, name);
    if let Some(m) = media {
        frame["media"] = m;
    }
    ws.send_json(&frame).await;
    match ws.recv_server().await {
        ServerFrame::Welcome { me, peers, chat, ice_servers, limits, resumed } => {
            Client { id: id.to_string(), token, peer, room: ws, me, peers, chat, ice_servers, limits, resumed }
        }
        other => panic!("join {name} in {room}: expected welcome, got {other:?}"),
    }
}
