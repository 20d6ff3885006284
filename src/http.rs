//! Small HTTP and query helpers of the Worker entry and the shell: plain-text answers, CORS as
//! peerjs-server does it, the PeerJS socket query, and PeerJS refusals.

use worker::*;

/// The PeerJS WebSocket query, percent-decoded (`+` as space); the last duplicate wins, as with
/// `Object.fromEntries(searchParams)` in peerjs-server.
#[derive(Default)]
pub struct PeerJsQuery {
    key: Option<String>,
    id: Option<String>,
    token: Option<String>,
}

impl PeerJsQuery {
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

pub fn peerjs_query(url: &Url) -> PeerJsQuery {
    let mut q = PeerJsQuery::default();
    for (k, v) in url.query_pairs() {
        match &*k {
            "key" => q.key = Some(v.into_owned()),
            "id" => q.id = Some(v.into_owned()),
            "token" => q.token = Some(v.into_owned()),
            _ => {}
        }
    }
    q
}

/// PeerJS refusals are frames, not HTTP errors: the client reports `server-error` with the
/// message only if the upgrade succeeds. This needs no Durable Object, so malformed upgrades
/// never reach (or wake) one.
pub fn reject_peerjs(frame: &str) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    pair.server.send_with_str(frame)?;
    pair.server.close(Some(1000), Some("refused"))?;
    Response::from_websocket(pair.client)
}

pub fn text(status: u16, body: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/plain; charset=utf-8")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(headers))
}

pub fn json_headers() -> Headers {
    let h = Headers::new();
    let _ = h.set("Content-Type", "application/json");
    h
}

/// CORS as peerjs-server's default (`cors({origin: true})`): reflect the request's Origin.
pub fn cors(req: &Request, resp: Response) -> Result<Response> {
    let headers = resp.headers().clone();
    if let Some(origin) = req.headers().get("Origin")? {
        headers.set("Access-Control-Allow-Origin", &origin)?;
    }
    headers.append("Vary", "Origin")?;
    Ok(resp.with_headers(headers))
}

pub fn preflight(req: &Request) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")?;
    if let Some(h) = req.headers().get("Access-Control-Request-Headers")? {
        headers.set("Access-Control-Allow-Headers", &h)?;
    }
    cors(req, Response::empty()?.with_status(204).with_headers(headers))
}

/// The client's address as Cloudflare's edge reports it (`CF-Connecting-IP`), for per-client
/// limits; at most 64 bytes (an IPv6 address is at most 45), empty when absent.
pub fn client_address(req: &Request) -> String {
    let ip = req.headers().get("CF-Connecting-IP").ok().flatten().unwrap_or_default();
    if ip.len() > 64 {
        return String::new();
    }
    ip
}
