//! The wire: WebSocket connections, the four flavours of server, and the frames each speaks.
//!
//! PeerJS frames and room-protocol frames are built and read with edge-meet's own types
//! (`PeerJsFrame`, `ClientFrame`, `ServerFrame`), never a hand-written copy. Socket.IO has no
//! Rust types here: the few Engine.IO v4 / Socket.IO v5 packets the baseline needs are spelled
//! out in [`sio`].

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use edge_meet_core::peerjs::PeerJsFrame;
use edge_meet_core::protocol::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Res<T> = Result<T, String>;

/// How long any single handshake or expected reply may take before it counts as an error.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// edge-meet: `/room/{room}/peerjs` (PeerJS) and `/room/{room}/ws` (room protocol).
    Edge,
    /// peerjs-server: `/peerjs` (one server, no rooms).
    Peer,
    /// The JavaScript floor: `/room/{room}/...`, every frame relayed to the room's other sockets.
    Floor,
    /// Socket.IO: `/socket.io/?EIO=4&transport=websocket`, `join-room`, `send`/`receive`.
    Sio,
}

impl Flavour {
    pub fn parse(s: &str) -> Res<Flavour> {
        Ok(match s {
            "edge" => Flavour::Edge,
            "peer" => Flavour::Peer,
            "floor" => Flavour::Floor,
            "sio" | "socketio" => Flavour::Sio,
            _ => return Err(format!("unknown flavour {s:?} (edge, peer, floor, sio)")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Edge => "edge",
            Flavour::Peer => "peer",
            Flavour::Floor => "floor",
            Flavour::Sio => "sio",
        }
    }

    /// Speaks PeerJS-style signalling (OPEN, relayed OFFER/ANSWER/CANDIDATE).
    pub fn relays(self) -> bool {
        self != Flavour::Sio
    }

    /// Has a room chat (edge-meet's room protocol, Socket.IO's send/receive, the floor's relay).
    pub fn chats(self) -> bool {
        self != Flavour::Peer
    }
}

/// One server to load: its flavour and base URL (`http://127.0.0.1:PORT`).
#[derive(Clone, Debug)]
pub struct Target {
    pub flavour: Flavour,
    pub base: String,
}

impl Target {
    pub fn new(flavour: Flavour, base: &str) -> Target {
        Target { flavour, base: base.trim_end_matches('/').to_owned() }
    }

    fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// A PeerJS socket URL. `room` empty means "one object for everyone": edge-meet's global
    /// drop-in server (`/peerjs/peerjs`, one Durable Object per key), the floor's room "one".
    pub fn peerjs_url(&self, room: &str, id: &str, token: &str) -> String {
        let ws = self.ws_base();
        let q = format!("key=peerjs&id={id}&token={token}&version=1.5.5");
        match (self.flavour, room) {
            (Flavour::Peer, _) => format!("{ws}/peerjs?{q}"),
            (Flavour::Edge, "") => format!("{ws}/peerjs/peerjs?{q}"),
            (_, "") => format!("{ws}/room/one/peerjs?{q}"),
            _ => format!("{ws}/room/{room}/peerjs?{q}"),
        }
    }

    /// Whether a PeerJS id in `room` must be seated (room socket + `join`) to signal: only in an
    /// edge-meet room, where the roster decides who may relay to whom (docs/PROTOCOL.md). The
    /// global server (`room` empty) keeps peerjs-server's rules: any registered id relays.
    pub fn seats(&self, room: &str) -> bool {
        self.flavour == Flavour::Edge && !room.is_empty()
    }

    pub fn room_ws_url(&self, room: &str) -> String {
        format!("{}/room/{room}/ws", self.ws_base())
    }

    pub fn sio_url(&self) -> String {
        format!("{}/socket.io/?EIO=4&transport=websocket", self.ws_base())
    }

    /// The counters endpoint: per room for workerd systems, one for the Node servers.
    pub fn stats_path(&self, room: &str) -> String {
        match self.flavour {
            Flavour::Edge | Flavour::Floor => format!("/room/{room}/stats"),
            Flavour::Peer | Flavour::Sio => "/__bench/stats".to_owned(),
        }
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(80)
    }
}

// ----- WebSockets ------------------------------------------------------------------------------

/// The first address of 198.18.0.0/15, the range RFC 2544 sets aside for benchmarking (never a
/// real visitor's), and how many it holds.
const CLIENT_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const CLIENT_NET_SIZE: u32 = 1 << 17;

/// A fresh client address for one simulated person: the `CF-Connecting-IP` value every socket
/// of that person carries. edge-meet counts sockets per address (`CLIENT_SOCKET_LIMIT` per room,
/// `PEERJS_CLIENT_LIMIT` per global key) and new sockets per address per minute (`CONNECT_RATE`,
/// 600); real people each have their own address, so the load must not look like one client
/// opening thousands. A header string only: every connection still goes to 127.0.0.1 (wrangler
/// dev and Miniflare keep a client-sent `CF-Connecting-IP`, as Cloudflare's edge would set it).
/// 131,071 addresses (the network address skipped) before one repeats: more than a full suite
/// opens people in a minute, so a repeat never meets a cap or the rate limit.
pub fn client_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Relaxed) % (CLIENT_NET_SIZE - 1) + 1;
    std::net::Ipv4Addr::from(CLIENT_NET + n).to_string()
}

/// Opens a WebSocket as the client at address `ip` (sent as `CF-Connecting-IP`).
pub async fn connect(url: &str, ip: &str) -> Res<Ws> {
    let mut req = url.into_client_request().map_err(|e| format!("connect {url}: {e}"))?;
    let ip_value = HeaderValue::from_str(ip).map_err(|e| format!("connect {url}: address {ip:?}: {e}"))?;
    req.headers_mut().insert("CF-Connecting-IP", ip_value);
    // Nagle off, as browsers and the servers under test have it: this measures latency.
    let fut = connect_async_with_config(req, None, true);
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Err(_) => Err(format!("connect {url}: timed out")),
        Ok(Err(e)) => Err(format!("connect {url}: {e}")),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// The next text frame, skipping control frames. `Ok(None)` when the socket closed.
pub async fn next_text(ws: &mut Ws) -> Res<Option<String>> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Text(t))) => return Ok(Some(t.as_str().to_owned())),
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        }
    }
}

pub async fn next_text_timeout(ws: &mut Ws, d: Duration) -> Res<String> {
    match tokio::time::timeout(d, next_text(ws)).await {
        Err(_) => Err("timed out waiting for a frame".into()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(None)) => Err("socket closed".into()),
        Ok(Ok(Some(t))) => Ok(t),
    }
}

pub async fn send_text(ws: &mut Ws, text: String) -> Res<()> {
    ws.send(Message::text(text)).await.map_err(|e| e.to_string())
}

/// Closes politely (close frame, then wait briefly for the server's), never for long.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.close(None).await;
        // Until the server's close frame (not EOF: workerd may hold the TCP connection a while).
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

// ----- PeerJS -----------------------------------------------------------------------------------

/// The exact bytes the runtime auto-answers (and peerjs clients send every 5 s).
pub fn heartbeat() -> String {
    serde_json::to_string(&ClientFrame::Heartbeat).expect("heartbeat serialises")
}

/// Opens a PeerJS socket from address `ip` and waits for `OPEN` (edge-meet, peerjs-server, floor).
pub async fn open_peerjs(t: &Target, room: &str, id: &str, ip: &str) -> Res<Ws> {
    let token = token_of(id);
    let mut ws = connect(&t.peerjs_url(room, id, &token), ip).await?;
    let first = next_text_timeout(&mut ws, IO_TIMEOUT).await?;
    let frame: PeerJsFrame = serde_json::from_str(&first).map_err(|e| format!("{e}: {first}"))?;
    if frame.kind != "OPEN" {
        return Err(format!("expected OPEN, got {first}"));
    }
    Ok(ws)
}

pub fn token_of(id: &str) -> String {
    format!("tok{id}")
}

/// Payload of a timed relay frame: `s` sequence, `t` send time (µs), and a body shaped like the
/// real thing (an SDP for OFFER, an ICE candidate for CANDIDATE) padded to `size` bytes of frame.
pub fn relay_frame(kind: &str, dst: &str, seq: u64, t: u64, size: usize) -> String {
    let build = |pad: &str| -> String {
        let payload = if kind == "CANDIDATE" {
            json!({"candidate": {"candidate": pad, "sdpMid": "0", "sdpMLineIndex": 0},
                   "type": "media", "connectionId": "mc_bench", "s": seq, "t": t})
        } else {
            json!({"sdp": {"type": "offer", "sdp": pad}, "type": "media", "connectionId": "mc_bench", "s": seq, "t": t})
        };
        let f = PeerJsFrame { kind: kind.to_owned(), src: None, dst: Some(dst.to_owned()), payload: Some(payload) };
        serde_json::to_string(&f).expect("frame serialises")
    };
    let bare = build("");
    let pad_len = size.saturating_sub(bare.len());
    let pad: String =
        "candidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ srflx raddr 0.0.0.0 rport 0 generation 0 "
            .chars()
            .cycle()
            .take(pad_len)
            .collect();
    build(&pad)
}

/// A relayed frame as a receiver sees it: (type, dst, payload).
pub fn read_relay(text: &str) -> Option<PeerJsFrame> {
    serde_json::from_str::<PeerJsFrame>(text).ok()
}

pub fn payload_time(p: &Option<Value>) -> Option<u64> {
    p.as_ref()?.get("t")?.as_u64()
}

/// The same payload sent back to `dst` as an ANSWER (the echo of a round trip).
pub fn echo_frame(dst: &str, payload: Option<Value>) -> String {
    let f = PeerJsFrame { kind: "ANSWER".into(), src: None, dst: Some(dst.to_owned()), payload };
    serde_json::to_string(&f).expect("frame serialises")
}

// ----- edge-meet room protocol --------------------------------------------------------------------

/// Seats PeerJS id `id` (whose socket is open) in `room`, as the meeting page does: opens the
/// room socket from the same address `ip` and joins with the id and its PeerJS token. Returns
/// the room socket after `welcome`; it must stay open: the seat is what lets the id signal.
pub async fn seat(t: &Target, room: &str, id: &str, ip: &str) -> Res<Ws> {
    let mut ws = connect(&t.room_ws_url(room), ip).await?;
    let join = ClientFrame::Join { peer_id: id.to_owned(), token: token_of(id), name: format!("n{id}"), media: None };
    send_text(&mut ws, serde_json::to_string(&join).map_err(|e| e.to_string())?).await?;
    loop {
        let text = next_text_timeout(&mut ws, IO_TIMEOUT).await?;
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Welcome { .. }) => return Ok(ws),
            Ok(ServerFrame::Error { code, message }) => return Err(format!("join refused: {code:?} {message}")),
            _ => continue,
        }
    }
}

/// `{"type":"leave"}`: what the meeting page sends on hang-up.
pub fn leave_frame() -> String {
    serde_json::to_string(&ClientFrame::Leave).expect("leave serialises")
}

/// Ends a seat as the meeting page's Leave does: `leave`, then the room socket's close. A seat
/// whose sockets merely drop is held for `GRACE_MS` (20 s) and its end runs alarms and
/// broadcasts then, inside whichever scenario is being measured by that time. Waiting for the
/// server's close frame means the `leave` (earlier on the same socket) has been handled.
pub async fn leave(mut seat: Ws) {
    let _ = send_text(&mut seat, leave_frame()).await;
    close(seat).await;
}

pub fn chat_frame(text: String) -> String {
    serde_json::to_string(&ClientFrame::Chat { text }).expect("chat serialises")
}

/// The chat text inside a frame a member received, if it is a chat delivery.
pub fn chat_text(flavour: Flavour, frame: &str) -> Option<String> {
    match flavour {
        Flavour::Edge => match serde_json::from_str::<ServerFrame>(frame).ok()? {
            ServerFrame::Chat { message } => Some(message.text),
            _ => None,
        },
        // The floor relays the sender's own frame verbatim.
        Flavour::Floor => match serde_json::from_str::<ClientFrame>(frame).ok()? {
            ClientFrame::Chat { text } => Some(text),
            _ => None,
        },
        Flavour::Sio => {
            let (event, args) = sio::parse_event(frame)?;
            (event == "receive").then(|| args.first()?.get("message")?.as_str().map(str::to_owned))?
        }
        Flavour::Peer => None,
    }
}

// ----- Socket.IO (Engine.IO v4 over WebSocket, Socket.IO v5 packets) ----------------------------

pub mod sio {
    use super::*;

    /// Engine.IO ping (server → client) and pong.
    pub const PING: &str = "2";
    pub const PONG: &str = "3";

    /// Connects from `ip`, completes the Engine.IO open (`0{..}`) and the Socket.IO connect (`40` → `40{sid}`).
    pub async fn connect_io(t: &Target, ip: &str) -> Res<Ws> {
        let mut ws = connect(&t.sio_url(), ip).await?;
        let open = next_text_timeout(&mut ws, IO_TIMEOUT).await?;
        if !open.starts_with('0') {
            return Err(format!("expected engine.io open, got {open}"));
        }
        send_text(&mut ws, "40".into()).await?;
        loop {
            let f = next_text_timeout(&mut ws, IO_TIMEOUT).await?;
            if f.starts_with("40") {
                return Ok(ws);
            }
            if f.starts_with("44") {
                return Err(format!("connect refused: {f}"));
            }
            if f == PING {
                send_text(&mut ws, PONG.into()).await?;
            }
        }
    }

    /// `42["name",args...]`, or `42<ack>[...]` when `ack` is given.
    pub fn event(name: &str, args: &[Value], ack: Option<u64>) -> String {
        let mut v = vec![Value::String(name.to_owned())];
        v.extend(args.iter().cloned());
        let body = serde_json::to_string(&v).expect("event serialises");
        match ack {
            Some(id) => format!("42{id}{body}"),
            None => format!("42{body}"),
        }
    }

    /// An event packet `42["name", ...]` → (name, args).
    pub fn parse_event(frame: &str) -> Option<(String, Vec<Value>)> {
        let body = frame.strip_prefix("42")?;
        let mut arr: Vec<Value> = serde_json::from_str(body).ok()?;
        if arr.is_empty() {
            return None;
        }
        let name = arr.remove(0).as_str()?.to_owned();
        Some((name, arr))
    }

    /// Connects from `ip` and joins `room` as `user`, waiting for the join acknowledgement (`430[]`).
    pub async fn join(t: &Target, room: &str, user: &str, ip: &str) -> Res<Ws> {
        let mut ws = connect_io(t, ip).await?;
        send_text(&mut ws, event("join-room", &[json!(room), json!(user)], Some(0))).await?;
        loop {
            let f = next_text_timeout(&mut ws, IO_TIMEOUT).await?;
            if f.starts_with("430") {
                return Ok(ws);
            }
            if f == PING {
                send_text(&mut ws, PONG.into()).await?;
            }
        }
    }

    pub fn send_chat(room: &str, text: &str) -> String {
        event("send", &[json!(room), json!(text)], None)
    }
}

/// One simulated person: its signalling socket and, in an edge-meet room, its seat.
pub struct Person {
    /// A PeerJS registration (OPEN), or for Socket.IO a connection (joined to its room if any).
    pub signal: Ws,
    /// edge-meet rooms: the room socket after `welcome` (see [`Target::seats`]).
    pub seat: Option<Ws>,
}

impl Person {
    pub fn sockets(&self) -> usize {
        1 + self.seat.is_some() as usize
    }

    /// Leaves as the meeting page does (seat first, see [`leave`]), then closes the signalling
    /// socket: a PeerJS id nobody is seated as is unregistered at once when it closes.
    pub async fn close(self) {
        if let Some(seat) = self.seat {
            leave(seat).await;
        }
        close(self.signal).await;
    }
}

/// Opens one person of a system in `room`, all its sockets from one fresh address
/// ([`client_ip`]): a PeerJS registration (OPEN), seated in edge-meet rooms (the roster relays
/// only between seated members, and closes an unseated id after `JOIN_WINDOW_MS`); for
/// Socket.IO a connection that joined its room (join acknowledged).
pub async fn open_person(t: &Target, room: &str, id: &str) -> Res<Person> {
    let ip = client_ip();
    let signal = match t.flavour {
        // One object for Socket.IO is one server: connected, in no room. (Joining 2,000 sockets
        // to one room would measure the original design's O(n²) "call-connected" fan-out.)
        Flavour::Sio if room.is_empty() => sio::connect_io(t, &ip).await?,
        Flavour::Sio => sio::join(t, room, id, &ip).await?,
        _ => open_peerjs(t, room, id, &ip).await?,
    };
    if !t.seats(room) {
        return Ok(Person { signal, seat: None });
    }
    match seat(t, room, id, &ip).await {
        Ok(s) => Ok(Person { signal, seat: Some(s) }),
        Err(e) => {
            close(signal).await;
            Err(e)
        }
    }
}

// ----- plain HTTP (stats endpoints) --------------------------------------------------------------

/// `GET path` on 127.0.0.1:port, HTTP/1.1; returns (status, body). Reads exactly the body
/// (Content-Length or chunked): workerd keeps the connection open for seconds despite
/// `Connection: close`, so waiting for EOF would stall every read.
pub async fn http_get(port: u16, path: &str) -> Res<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let lower = head.to_ascii_lowercase();
                let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let chunked = lower.contains("transfer-encoding: chunked");
                let complete = match len {
                    Some(l) => body.len() >= l,
                    None if chunked => body.contains("0\r\n\r\n"),
                    None => n == 0,
                };
                if complete || n == 0 {
                    let body = if chunked { dechunk(body) } else { body.to_owned() };
                    return Ok::<_, String>((status, body));
                }
            } else if n == 0 {
                return Err(format!("GET {path}: connection closed before the headers"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.map_err(|_| format!("GET {path}: timed out"))?
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub async fn get_json(port: u16, path: &str) -> Res<Value> {
    let (status, body) = http_get(port, path).await?;
    if status != 200 {
        return Err(format!("GET {path}: HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))
}
