//! edge-meet: browser video meetings served entirely from the edge.
//!
//! Data flows one way: workerd event → adapter → pure core → effects → adapter → workerd.
//!
//! - [`edge_meet_core`] (crates/core): protocol types, the per-object state machine, limits and
//!   settings parsing; plain Rust, unit-tested natively.
//! - [`route`]: path → route, the one routing table.
//! - [`room_object`]: the Durable Objects (one per room, one per global PeerJS key).
//! - [`ice`]: ICE servers and Cloudflare TURN credentials.
//! - this file: the Worker's fetch entry. It answers what needs no room (pages, new PeerJS ids,
//!   malformed PeerJS upgrades) and hands everything else to the right Durable Object.

pub mod chat_store;
pub mod http;
pub mod ice;
pub mod js;
pub mod room_object;
pub mod route;
pub mod seat_store;
pub mod shell;

use std::rc::Rc;
use std::sync::Once;

use edge_meet_core::protocol::ROOM_ID_MAX;
use edge_meet_core::settings::Settings;
use http::{cors, json_headers, peerjs_query, preflight, reject_peerjs, text};
use route::{Route, Target};
use worker::*;

/// peerjs-server's `GET {path}` answer (its `app.json`), for clients that probe it.
const PEERJS_INFO: &str = r#"{"name":"PeerJS Server","description":"A server side element to broker connections between PeerJS clients.","website":"https://peerjs.com/"}"#;

static PANIC_HOOK: Once = Once::new();

/// Adds `console_error_panic_hook`'s readable message and stack in front of `worker`'s own hook,
/// which must keep running: it flags the instance for re-initialisation after a panic.
pub fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let worker_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            console_error_panic_hook::hook(info);
            worker_hook(info);
        }));
    });
}

thread_local! {
    /// Vars and secrets cannot change within an isolate (a new deployment is a new isolate), so
    /// they are parsed once and shared by the fetch entry and every object of this isolate.
    static SETTINGS: std::cell::OnceCell<Rc<Settings>> = const { std::cell::OnceCell::new() };
}

/// The deployment's settings, parsed from `env` on first use in this isolate.
pub fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| {
            let settings = Settings::from_lookup(|name| {
                env.var(name).map(|v| v.to_string()).or_else(|_| env.secret(name).map(|s| s.to_string())).ok()
            });
            for line in &settings.clamped {
                console_warn!("{line}");
            }
            Rc::new(settings)
        })
        .clone()
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    install_panic_hook();
    let path = req.path();
    match route::parse(&path) {
        Route::RoomPage { .. } => page_asset(&env, "/room").await,
        Route::BadRoom { page } => {
            // A person who followed a mangled link gets the meeting page, which explains it in
            // full; programs get the plain message. Both with status 400.
            let wants_html = req.headers().get("Accept")?.is_some_and(|a| a.contains("text/html"));
            if page && wants_html {
                return Ok(page_asset(&env, "/room").await?.with_status(400));
            }
            text(400, &format!("Invalid room id: use 1 to {ROOM_ID_MAX} letters, digits, '-' or '_'.\n"))
        }
        Route::NotFound => text(404, "Not found\n"),
        Route::PeerJsInfo => cors(&req, Response::ok(PEERJS_INFO)?.with_headers(json_headers())),
        Route::PeerJsId => {
            if req.method() == Method::Options {
                return preflight(&req);
            }
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| Error::RustError(e.to_string()))?;
            cors(&req, Response::ok(route::uuid_v4(bytes))?)
        }
        Route::PeerJsPeers { target, key } => {
            if req.method() == Method::Options {
                return preflight(&req);
            }
            let settings = settings(&env);
            if !settings.allow_discovery {
                return cors(&req, Response::error("Unauthorized", 401)?);
            }
            let resp = stub(&env, target, key)?.fetch_with_request(req.clone()?).await?;
            cors(&req, resp)
        }
        Route::Stats { target, key } => {
            if !settings(&env).debug_stats {
                return text(404, "Not found\n");
            }
            stub(&env, target, key)?.fetch_with_request(req).await
        }
        Route::RoomSocket { room } => {
            if let Some(refusal) = refuse_upgrade(&req, &env)? {
                return Ok(refusal);
            }
            if let Some(refusal) = refuse_by_rate(&req, &env).await? {
                return Ok(refusal);
            }
            stub(&env, Target::Room(room), "")?.fetch_with_request(req).await
        }
        Route::PeerJsSocket { target } => {
            if let Some(refusal) = refuse_upgrade(&req, &env)? {
                return Ok(refusal);
            }
            if let Some(refusal) = refuse_by_rate(&req, &env).await? {
                return Ok(refusal);
            }
            let settings = settings(&env);
            let q = peerjs_query(&req.url()?);
            if let Err(frame) = edge_meet_core::peerjs::check_params(q.key(), q.id(), q.token(), &settings.peerjs_keys)
            {
                return reject_peerjs(&frame);
            }
            let key = q.key().unwrap_or_default().to_owned();
            stub(&env, target, &key)?.fetch_with_request(req).await
        }
    }
}

/// The Durable Object for a target: the room's, or the global key's.
fn stub(env: &Env, target: Target<'_>, key: &str) -> Result<Stub> {
    match target {
        Target::Room(room) => env.durable_object("ROOMS")?.get_by_name(room),
        Target::Global => env.durable_object("PEERJS")?.get_by_name(key),
    }
}

/// `Some(response)` when a WebSocket upgrade must not proceed: not a GET (405), not an upgrade
/// (426), or a browser on a foreign origin (403). Checked here, before any Durable Object sees
/// the request, so a refused upgrade registers nothing.
fn refuse_upgrade(req: &Request, env: &Env) -> Result<Option<Response>> {
    // RFC 6455 §4.1: the opening handshake is a GET. workerd answers any other method's
    // WebSocket response with a 500, and only after the object had registered the PeerJS id.
    if req.method() != Method::Get {
        let mut refusal = text(405, "WebSocket upgrades use GET\n")?;
        refusal.headers_mut().set("Allow", "GET")?;
        return Ok(Some(refusal));
    }
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Ok(Some(text(426, "Expected a WebSocket upgrade\n")?));
    }
    let origin = req.headers().get("Origin")?;
    let own = req.url()?.origin().ascii_serialization();
    if !route::origin_allowed(origin.as_deref(), &own, &settings(env).allowed_origins) {
        return Ok(Some(text(403, "WebSocket origin not allowed\n")?));
    }
    Ok(None)
}

/// `Some(429)` when this client address opened too many sockets lately, across every room and
/// key: the platform's Rate Limiting binding `CONNECT_RATE` counts them per address at the edge
/// location (a limit that spans rooms cannot live in any one room's object).
async fn refuse_by_rate(req: &Request, env: &Env) -> Result<Option<Response>> {
    let client = http::client_address(req);
    if client.is_empty() || js::rate_allows(env, "CONNECT_RATE", &client).await {
        return Ok(None);
    }
    Ok(Some(text(429, "Too many new connections from your address; try again in a minute\n")?))
}

/// The meeting page, one static file for every room. Its security headers (a strict CSP among
/// them) come from `public/_headers`, which the assets binding applies here too, so the static
/// pages and this one share a single definition.
async fn page_asset(env: &Env, asset: &str) -> Result<Response> {
    env.assets("ASSETS")?.fetch(format!("https://assets.invalid{asset}"), None).await
}
