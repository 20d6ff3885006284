//! The Durable Objects: thin adapters between workerd's hibernation handlers and the core
//! [`Hub`]. Each handler turns a runtime event into a core event, then carries out the effects
//! the core returns. Nothing here decides protocol behaviour.
//!
//! - [`Room`] (`ROOMS`, one per room id) serves the room protocol and the room's PeerJS server,
//!   and keeps the room's chat in its SQLite storage.
//! - [`PeerServer`] (`PEERJS`, one per PeerJS key) is the drop-in global PeerJS server.
//!
//! Hibernation: workerd may evict an object whose sockets are idle and re-create it when one of
//! them speaks. What survives is each socket's attachment (see [`Attachment`]) and storage, so
//! the constructor rebuilds the [`Hub`] from exactly those. HEARTBEAT frames are answered by the
//! runtime's auto-response and never wake the object; their times are read back at the alarm.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::*;

use crate::ice;
use crate::route::{self, Route};
use edge_meet_core::hub::{Attachment, Effect, Hub, HubStats, Role, Sid};
use edge_meet_core::limits::{Config, CHAT_HISTORY};
use edge_meet_core::peerjs;
use edge_meet_core::protocol::ChatRecord;
use edge_meet_core::settings::Settings;

/// The frame the PeerJS client sends every 5 s; the runtime answers it with the same bytes.
/// The peerjs client ignores the echo (a frame without payload); room clients use it as keep-alive.
pub const HEARTBEAT: &str = r#"{"type":"HEARTBEAT"}"#;

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen through `send(data)` with an already-made JS string: a broadcast converts
    /// its frame from UTF-8 once, not once per recipient as `send_with_str` would.
    type RawSocket;

    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_value(this: &RawSocket, data: &JsValue) -> std::result::Result<(), JsValue>;

    /// `DurableObjectState`, for the one hibernation method `worker` 0.8 does not wrap.
    type HibernationState;

    #[wasm_bindgen(method, catch, js_name = getWebSocketAutoResponseTimestamp)]
    fn get_web_socket_auto_response_timestamp(
        this: &HibernationState,
        ws: &web_sys::WebSocket,
    ) -> std::result::Result<JsValue, JsValue>;

    /// `DurableObjectStorage`, for a `setAlarm` that is issued before the handler returns:
    /// `worker`'s `set_alarm` is an `async fn`, which calls into JS only when first polled.
    type RawStorage;

    #[wasm_bindgen(method, getter)]
    fn storage(this: &HibernationState) -> RawStorage;

    #[wasm_bindgen(method, catch, js_name = setAlarm)]
    fn set_alarm_at(this: &RawStorage, epoch_ms: f64) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// How many times each handler ran since this instance was created (stats endpoint): the
/// evidence that heartbeats do not wake the object.
#[derive(Default, Serialize)]
struct Events {
    fetch: Cell<u64>,
    message: Cell<u64>,
    close: Cell<u64>,
    error: Cell<u64>,
    alarm: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Room,
    Global,
}

/// Shared body of both Durable Object classes.
struct Shell {
    state: State,
    kind: Kind,
    settings: Settings,
    hub: RefCell<Hub>,
    /// Open sockets by sid, so effects can reach them without asking the runtime.
    sockets: RefCell<HashMap<Sid, WebSocket>>,
    events: Events,
    /// JS socket object → sid (see [`Shell::sid_of`]).
    sid_cache: js_sys::WeakMap,
    /// Whether the hub has the stored chat history yet.
    chat_loaded: Cell<bool>,
    /// When minted TURN credentials should be renewed (ms); 0 = never minted.
    turn_renew_at: Cell<u64>,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A socket id no other socket of this object has: random, within JavaScript's safe integers
/// because attachments travel through JS numbers.
fn new_sid() -> Sid {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Never seen in workerd; fall back to time plus a counter rather than failing the upgrade.
        return now_ms() ^ (js_sys::Math::random() * 1e9) as u64;
    }
    u64::from_le_bytes(b) & ((1 << 53) - 1)
}

impl Shell {
    fn new(state: State, env: &Env, kind: Kind) -> Shell {
        crate::install_panic_hook();
        let settings = crate::settings_from_env(env);
        let config: Config = match kind {
            Kind::Room => settings.room.clone(),
            Kind::Global => settings.global.clone(),
        };
        match worker_sys::WebSocketRequestResponsePair::new(HEARTBEAT, HEARTBEAT) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_error!("auto-response not set: {e:?}"),
        }
        let mut sockets = HashMap::new();
        let mut restored = Vec::new();
        for ws in state.get_websockets() {
            match ws.deserialize_attachment::<Attachment>() {
                Ok(Some(att)) => {
                    let heartbeat = auto_response_time(&state, &ws);
                    sockets.insert(att.sid, ws);
                    restored.push((att, heartbeat));
                }
                // A socket without a readable attachment cannot be attributed to anyone.
                _ => {
                    let _ = ws.close(Some(1011), Some("state lost"));
                }
            }
        }
        // Chat history is read lazily (see `ensure_chat`): most wake-ups are alarms and relays.
        let hub = Hub::restore(config, restored, Vec::new());
        Shell {
            state,
            kind,
            settings,
            hub: RefCell::new(hub),
            sockets: RefCell::new(sockets),
            events: Events::default(),
            sid_cache: js_sys::WeakMap::new(),
            chat_loaded: Cell::new(false),
            turn_renew_at: Cell::new(0),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        bump(&self.events.fetch);
        let path = req.path();
        match route::parse(&path) {
            Route::RoomSocket { .. } if self.kind == Kind::Room => {
                self.refresh_ice().await;
                let sid = new_sid();
                let pair = self.accept(sid)?;
                let fx = self.hub.borrow_mut().room_opened(sid, now_ms());
                self.execute(fx);
                Response::from_websocket(pair.client)
            }
            Route::PeerJsSocket { .. } => {
                let url = req.url()?;
                let q = crate::peerjs_query(&url);
                if let Err(frame) = peerjs::check_params(q.key(), q.id(), q.token(), &self.settings.peerjs_keys) {
                    return crate::reject_peerjs(&frame);
                }
                let sid = new_sid();
                let (id, token) = (q.id().unwrap_or_default(), q.token().unwrap_or_default());
                let fx = self.hub.borrow_mut().peerjs_opened(sid, id, token, now_ms());
                // A refused socket (ID-TAKEN, limit) never joins the hibernation set: workerd
                // drops a close issued on a hibernatable socket before its 101 is returned.
                if let Some(frame) = refusal(&fx, sid) {
                    return crate::reject_peerjs(&frame);
                }
                let pair = self.accept(sid)?;
                self.execute(fx);
                Response::from_websocket(pair.client)
            }
            Route::PeerJsPeers { .. } => Response::from_json(&self.hub.borrow().peer_ids()),
            Route::Stats { .. } => Response::from_json(&Stats { hub: self.hub.borrow().stats(), events: &self.events }),
            _ => Response::error("Not found", 404),
        }
    }

    /// Accepts the server end of a new socket for hibernation under the given sid.
    fn accept(&self, sid: Sid) -> Result<WebSocketPair> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        self.sockets.borrow_mut().insert(sid, pair.server.clone());
        let key: &js_sys::Object = pair.server.as_ref().as_ref();
        self.sid_cache.set(key, &JsValue::from_f64(sid as f64));
        Ok(pair)
    }

    /// A frame from a socket. Synchronous from end to end: nothing on this path awaits, so the
    /// handler returns no Promise and runs no future machinery per frame (the relay's hot path;
    /// BENCHMARKS.md finding 10).
    fn message(&self, ws: &WebSocket, msg: &JsValue) {
        bump(&self.events.message);
        let Some(sid) = self.sid_of(ws) else { return };
        self.ensure_chat(sid);
        let now = now_ms();
        let fx = match msg.as_string() {
            Some(text) => self.hub.borrow_mut().text(sid, &text, now),
            // A binary frame is refused by its size alone: its bytes are never copied into wasm.
            None => {
                let len = msg.dyn_ref::<js_sys::ArrayBuffer>().map_or(0, |b| b.byte_length() as usize);
                self.hub.borrow_mut().binary(sid, len, now)
            }
        };
        self.execute(fx);
    }

    fn closed(&self, ws: &WebSocket) {
        let Some(sid) = self.sid_of(ws) else { return };
        self.sockets.borrow_mut().remove(&sid);
        let fx = self.hub.borrow_mut().closed(sid, now_ms());
        self.execute(fx);
    }

    async fn alarm(&self) -> Result<Response> {
        bump(&self.events.alarm);
        let heartbeats: Vec<(Sid, u64)> = {
            let sockets = self.sockets.borrow();
            sockets.iter().filter_map(|(sid, ws)| auto_response_time(&self.state, ws).map(|t| (*sid, t))).collect()
        };
        let fx = self.hub.borrow_mut().alarm(now_ms(), &heartbeats);
        self.execute(fx);
        Response::empty()
    }

    /// Carries out the core's effects in order. A failed send is logged and skipped: one dead
    /// socket must never stop a broadcast (its close event will clean it up).
    fn execute(&self, effects: Vec<Effect>) {
        let mut queue = effects.into_iter();
        // The JS string of the last frame sent: a broadcast's sends share one `Rc` frame.
        let mut last: Option<(std::rc::Rc<str>, JsValue)> = None;
        while let Some(effect) = queue.next() {
            match effect {
                Effect::Send { to, frame } => {
                    let js = match &last {
                        Some((f, js)) if std::rc::Rc::ptr_eq(f, &frame) => js.clone(),
                        _ => {
                            let js = JsValue::from_str(&frame);
                            last = Some((frame, js.clone()));
                            js
                        }
                    };
                    if let Some(ws) = self.sockets.borrow().get(&to) {
                        let raw: &RawSocket = ws.as_ref().unchecked_ref();
                        if let Err(e) = raw.send_value(&js) {
                            console_warn!("send to {to} failed: {e:?}");
                        }
                    }
                }
                Effect::Close { sid, code, reason } => {
                    if let Some(ws) = self.sockets.borrow_mut().remove(&sid) {
                        // Retire first: if the object hibernates before the close completes,
                        // the rebuilt hub must not count this socket as anyone.
                        let _ = ws.serialize_attachment(Attachment { sid, since: 0, role: Role::Retired });
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Effect::Attach { sid, attachment } => {
                    if let Some(ws) = self.sockets.borrow().get(&sid) {
                        if let Err(e) = ws.serialize_attachment(&attachment) {
                            console_error!("attachment of {sid} not stored: {e}");
                        }
                    }
                }
                Effect::PersistChat(record) => {
                    if let Err(e) = store_chat(&self.state, &record) {
                        console_error!("chat {} not stored: {e}", record.id);
                        // Nothing of this event goes out: memory must never show what disk lacks.
                        queue = self.hub.borrow_mut().chat_not_stored(&record).into_iter();
                    }
                }
                Effect::SetAlarm { at_ms } => {
                    // Issued now (an absolute time in ms), awaited in the background: the output
                    // gate still holds this event's frames until the alarm is stored, and a
                    // failure is logged.
                    let api: &HibernationState = self.state.as_raw().unchecked_ref();
                    match api.storage().set_alarm_at(at_ms as f64) {
                        Ok(done) => wasm_bindgen_futures::spawn_local(async move {
                            if let Err(e) = wasm_bindgen_futures::JsFuture::from(done).await {
                                console_error!("alarm not set: {e:?}");
                            }
                        }),
                        Err(e) => console_error!("alarm not set: {e:?}"),
                    }
                }
            }
        }
    }

    /// Loads the room's stored chat into the hub before the first frame of a room socket.
    fn ensure_chat(&self, sid: Sid) {
        if self.kind == Kind::Room && !self.chat_loaded.get() && self.hub.borrow().is_room_socket(sid) {
            let chat = load_chat(&self.state);
            self.hub.borrow_mut().load_chat(chat);
            self.chat_loaded.set(true);
        }
    }

    /// The sid of a socket an event came from. Every frame needs it, so it is cached per JS
    /// socket object (a `WeakMap`, one call into JS) instead of deserialising the attachment
    /// each time; the attachment is the fallback and the truth after a wake-up.
    fn sid_of(&self, ws: &WebSocket) -> Option<Sid> {
        let key: &js_sys::Object = ws.as_ref().as_ref();
        if let Some(sid) = self.sid_cache.get(key).as_f64() {
            return Some(sid as Sid);
        }
        let sid = ws.deserialize_attachment::<Attachment>().ok().flatten()?.sid;
        self.sid_cache.set(key, &JsValue::from_f64(sid as f64));
        Some(sid)
    }

    /// Re-mints TURN credentials when configured and due; failures keep the previous list.
    async fn refresh_ice(&self) {
        let Some(key) = self.settings.turn.clone() else { return };
        let now = now_ms();
        if now < self.turn_renew_at.get() {
            return;
        }
        match ice::mint_turn(&key).await {
            Ok(turn) => {
                let base = match self.kind {
                    Kind::Room => &self.settings.room.ice_servers,
                    Kind::Global => &self.settings.global.ice_servers,
                };
                let all = ice::combine(base, &turn);
                self.hub.borrow_mut().set_ice_servers(all);
                self.turn_renew_at.set(now + ice::TURN_TTL_SECS * 1000 / 2);
            }
            Err(e) => {
                console_error!("TURN credentials not minted: {e}");
                // Retry in a minute rather than on every join.
                self.turn_renew_at.set(now + 60_000);
            }
        }
    }
}

#[derive(Serialize)]
struct Stats<'a> {
    #[serde(flatten)]
    hub: HubStats,
    events: &'a Events,
}

/// The frame to send before closing, when the core refused the socket it was just told about.
fn refusal(fx: &[Effect], sid: Sid) -> Option<String> {
    let closes = fx.iter().any(|e| matches!(e, Effect::Close { sid: s, .. } if *s == sid));
    closes.then(|| {
        fx.iter()
            .find_map(|e| match e {
                Effect::Send { to, frame } if *to == sid => Some(frame.to_string()),
                _ => None,
            })
            .unwrap_or_default()
    })
}

fn auto_response_time(state: &State, ws: &WebSocket) -> Option<u64> {
    let api: &HibernationState = state.as_raw().unchecked_ref();
    let t = api.get_web_socket_auto_response_timestamp(ws.as_ref()).ok()?;
    t.dyn_ref::<js_sys::Date>().map(|d| d.get_time() as u64)
}

// ----- chat storage (SQLite) -----------------------------------------------------------------

const CREATE_CHAT: &str = "CREATE TABLE IF NOT EXISTS chat (
    id INTEGER PRIMARY KEY, peer_id TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL)";

#[derive(serde::Deserialize)]
struct ChatRow {
    id: f64,
    peer_id: String,
    name: String,
    text: String,
    ts: f64,
}

fn load_chat(state: &State) -> Vec<ChatRecord> {
    let sql = state.storage().sql();
    let rows = sql.exec(CREATE_CHAT, None).and_then(|_| {
        sql.exec(
            "SELECT id, peer_id, name, text, ts FROM chat ORDER BY id DESC LIMIT ?",
            vec![SqlStorageValue::from(CHAT_HISTORY as i64)],
        )?
        .to_array::<ChatRow>()
    });
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|r| ChatRecord { id: r.id as u64, peer_id: r.peer_id, name: r.name, text: r.text, ts: r.ts as u64 })
            .collect(),
        Err(e) => {
            console_error!("chat history not loaded: {e}");
            Vec::new()
        }
    }
}

/// Chat rows deleted in one batch (see [`store_chat`]).
const CHAT_TRIM_EVERY: u64 = 50;

/// Stores one record and trims the table to the history window. SQLite writes are synchronous
/// and the output gate holds every outgoing frame until they are durable.
fn store_chat(state: &State, r: &ChatRecord) -> Result<()> {
    let sql = state.storage().sql();
    sql.exec(
        "INSERT INTO chat (id, peer_id, name, text, ts) VALUES (?, ?, ?, ?, ?)",
        vec![
            SqlStorageValue::try_from_i64(r.id as i64)?,
            r.peer_id.as_str().into(),
            r.name.as_str().into(),
            r.text.as_str().into(),
            SqlStorageValue::try_from_i64(r.ts as i64)?,
        ],
    )?;
    // Trimming is batched: the table holds at most CHAT_HISTORY + CHAT_TRIM_EVERY rows, and
    // reads take the newest CHAT_HISTORY. One statement per message instead of two.
    if r.id.is_multiple_of(CHAT_TRIM_EVERY) {
        let keep_after = r.id.saturating_sub(CHAT_HISTORY as u64) as i64;
        sql.exec("DELETE FROM chat WHERE id <= ?", vec![SqlStorageValue::from(keep_after)])?;
    }
    Ok(())
}

// ----- the two classes -----------------------------------------------------------------------

/// One meeting room: its roster, chat (persisted) and PeerJS server.
#[durable_object(alarm)]
pub struct Room(Shell);

/// One key of the drop-in global PeerJS server (`/peerjs`).
#[durable_object(alarm)]
pub struct PeerServer(Shell);

// `#[durable_object(alarm)]` exports the constructor, `fetch` and `alarm` (async: they await
// storage and the network). The three WebSocket handlers are exported below as plain
// synchronous methods instead of the macro's `async` ones, which wrap every frame in a future,
// a Promise and a JS closure (BENCHMARKS.md, finding 10).
macro_rules! delegate {
    ($class:ident, $kind:expr) => {
        impl DurableObject for $class {
            fn new(state: State, env: Env) -> Self {
                $class(Shell::new(state, &env, $kind))
            }
            async fn fetch(&self, req: Request) -> Result<Response> {
                self.0.fetch(req).await
            }
            async fn alarm(&self) -> Result<Response> {
                self.0.alarm().await
            }
        }

        #[wasm_bindgen]
        impl $class {
            #[wasm_bindgen(js_name = webSocketMessage)]
            pub fn websocket_message(&self, ws: web_sys::WebSocket, message: JsValue) {
                self.0.message(&ws.into(), &message);
            }

            #[wasm_bindgen(js_name = webSocketClose)]
            pub fn websocket_close(&self, ws: web_sys::WebSocket, code: u16, reason: String, _clean: bool) {
                bump(&self.0.events.close);
                let ws: WebSocket = ws.into();
                // Answer the client's close frame (RFC 6455 §5.5.1); workerd does not do it for
                // hibernatable sockets, and without it clients see 1006 after a 10 s timeout.
                // Echo the client's code when it is one an endpoint may send; 1005/1006/1015
                // are reserved (received, never sent).
                let code = match code {
                    1000..=1003 | 1007..=1014 | 3000..=4999 => code,
                    _ => 1000,
                };
                let _ = ws.close(Some(code), Some(reason));
                self.0.closed(&ws);
            }

            #[wasm_bindgen(js_name = webSocketError)]
            pub fn websocket_error(&self, ws: web_sys::WebSocket, error: JsValue) {
                bump(&self.0.events.error);
                console_warn!("websocket error: {error:?}");
                self.0.closed(&ws.into());
            }
        }
    };
}

delegate!(Room, Kind::Room);
delegate!(PeerServer, Kind::Global);
