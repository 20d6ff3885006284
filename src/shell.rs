//! The shell both Durable Object classes share: it turns each runtime event into a core event,
//! then carries out the effects the core returns. Nothing here decides protocol behaviour.
//!
//! Hibernation: workerd may evict an object whose sockets are idle and re-create it when one of
//! them speaks. What survives is each socket's attachment (see [`Attachment`]) and storage, so
//! [`Shell::new`] rebuilds the [`Hub`] from exactly those. HEARTBEAT frames are answered by the
//! runtime's auto-response and never wake the object; their times are read back at the alarm.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use edge_meet_core::hub::{Admission, Attachment, Effect, Hub, HubStats, Sid};
use edge_meet_core::limits::MAX_FRAME_BYTES;
use edge_meet_core::peerjs::{self, HEARTBEAT_FRAME};
use edge_meet_core::settings::Settings;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::*;

use crate::route::{self, Route};
use crate::{chat_store, http, ice, js, seat_store};

/// How many times each handler ran since this instance was created (stats endpoint): the
/// evidence that heartbeats do not wake the object.
#[derive(Default, Serialize)]
pub struct Events {
    fetch: Cell<u64>,
    message: Cell<u64>,
    close: Cell<u64>,
    error: Cell<u64>,
    alarm: Cell<u64>,
}

/// Which of the two Durable Object classes a shell serves.
#[derive(Clone, Copy, PartialEq)]
pub enum ObjectKind {
    /// A meeting room (`ROOMS`): room protocol, PeerJS server, chat in SQLite.
    Room,
    /// A key of the global drop-in PeerJS server (`PEERJS`).
    Global,
}

pub struct Shell {
    state: State,
    kind: ObjectKind,
    settings: Rc<Settings>,
    hub: RefCell<Hub>,
    /// Open sockets by sid, so effects can reach them without asking the runtime.
    sockets: RefCell<HashMap<Sid, WebSocket>>,
    events: Events,
    /// JS socket object → sid (see [`Shell::sid_of`]).
    sid_cache: js_sys::WeakMap,
    /// When minted TURN credentials should be renewed (ms); 0 = never minted.
    turn_renew_at: Cell<u64>,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
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
    pub fn new(state: State, env: &Env, kind: ObjectKind) -> Shell {
        crate::install_panic_hook();
        let settings = crate::settings(env);
        let config = match kind {
            ObjectKind::Room => settings.room.clone(),
            ObjectKind::Global => settings.global.clone(),
        };
        match worker_sys::WebSocketRequestResponsePair::new(HEARTBEAT_FRAME, HEARTBEAT_FRAME) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_error!("auto-response not set: {e:?}"),
        }
        let mut sockets = HashMap::new();
        let mut restored = Vec::new();
        for ws in state.get_websockets() {
            match ws.deserialize_attachment::<Attachment>() {
                Ok(Some(att)) => {
                    let heartbeat = js::auto_response_time(&state, &ws);
                    sockets.insert(att.sid, ws);
                    restored.push((att, heartbeat));
                }
                // A socket without a readable attachment cannot be attributed to anyone.
                _ => {
                    let _ = ws.close(Some(1011), Some("state lost"));
                }
            }
        }
        // Seats exist only in rooms; the global PeerJS server has no roster.
        let seats = if kind == ObjectKind::Room { seat_store::load(&state) } else { Vec::new() };
        let hub = Hub::restore(config, restored, seats, now_ms());
        Shell {
            state,
            kind,
            settings,
            hub: RefCell::new(hub),
            sockets: RefCell::new(sockets),
            events: Events::default(),
            sid_cache: js_sys::WeakMap::new(),
            turn_renew_at: Cell::new(0),
        }
    }

    pub async fn fetch(&self, req: Request) -> Result<Response> {
        bump(&self.events.fetch);
        let path = req.path();
        match route::parse(&path) {
            Route::RoomSocket { .. } if self.kind == ObjectKind::Room => {
                self.refresh_ice().await;
                let sid = new_sid();
                let client = http::client_address(&req);
                let admission = self.hub.borrow_mut().on_room_open(sid, &client, now_ms());
                match admission {
                    Admission::Refused { frame } => http::text(429, &format!("{frame}\n")),
                    Admission::Accepted(fx) => {
                        let pair = self.accept(sid)?;
                        self.execute(fx);
                        Response::from_websocket(pair.client)
                    }
                }
            }
            Route::PeerJsSocket { .. } => {
                let q = http::peerjs_query(&req.url()?);
                if let Err(frame) = peerjs::check_params(q.key(), q.id(), q.token(), &self.settings.peerjs_keys) {
                    return http::reject_peerjs(&frame);
                }
                let sid = new_sid();
                let (id, token) = (q.id().unwrap_or_default(), q.token().unwrap_or_default());
                let client = http::client_address(&req);
                let admission = self.hub.borrow_mut().on_peerjs_open(sid, id, token, &client, now_ms());
                match admission {
                    // A refused socket never joins the hibernation set: workerd drops a close
                    // issued on a hibernatable socket before its 101 is returned.
                    Admission::Refused { frame } => http::reject_peerjs(&frame),
                    Admission::Accepted(fx) => {
                        let pair = self.accept(sid)?;
                        self.execute(fx);
                        Response::from_websocket(pair.client)
                    }
                }
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
    /// BENCHMARKS.md, "The WebSocket handlers are synchronous").
    pub fn message(&self, ws: &WebSocket, msg: &JsValue) {
        bump(&self.events.message);
        let Some(sid) = self.sid_of(ws) else { return };
        if self.hub.borrow().wants_chat(sid) {
            let chat = chat_store::load(&self.state);
            self.hub.borrow_mut().load_chat(chat);
        }
        let now = now_ms();
        let fx = match msg.dyn_ref::<js_sys::JsString>() {
            // Refused by length before any copy into wasm: a JS string of n UTF-16 units is at
            // least n bytes of UTF-8, so one longer than the limit in units is over it in bytes.
            Some(s) if s.length() as usize > MAX_FRAME_BYTES => self.hub.borrow_mut().on_oversize(sid, now),
            Some(s) => self.hub.borrow_mut().on_text(sid, &String::from(s), now),
            // A binary frame is refused by its size alone: its bytes are never copied into wasm.
            None => {
                let len = msg.dyn_ref::<js_sys::ArrayBuffer>().map_or(0, |b| b.byte_length() as usize);
                self.hub.borrow_mut().on_binary(sid, len, now)
            }
        };
        self.execute(fx);
    }

    /// The socket closed or failed; `code` is the client's close code (errors have none).
    pub fn closed(&self, ws: &WebSocket, error: bool) {
        bump(if error { &self.events.error } else { &self.events.close });
        let Some(sid) = self.sid_of(ws) else { return };
        self.sockets.borrow_mut().remove(&sid);
        let fx = self.hub.borrow_mut().on_close(sid, now_ms());
        self.execute(fx);
    }

    pub async fn alarm(&self) -> Result<Response> {
        bump(&self.events.alarm);
        let heartbeats: Vec<(Sid, u64)> = {
            let sockets = self.sockets.borrow();
            sockets.iter().filter_map(|(sid, ws)| js::auto_response_time(&self.state, ws).map(|t| (*sid, t))).collect()
        };
        let fx = self.hub.borrow_mut().on_alarm(now_ms(), &heartbeats);
        self.execute(fx);
        Response::empty()
    }

    /// Carries out the core's effects in order. A failed send is logged and skipped: one dead
    /// socket must never stop a broadcast (its close event will clean it up).
    fn execute(&self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        // The JS string of the last frame sent: a broadcast's sends share one `Rc` frame.
        let mut last: Option<(Rc<str>, JsValue)> = None;
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send { to, frame } => {
                    let js = match &last {
                        Some((f, js)) if Rc::ptr_eq(f, &frame) => js.clone(),
                        _ => {
                            let js = JsValue::from_str(&frame);
                            last = Some((frame, js.clone()));
                            js
                        }
                    };
                    if let Some(ws) = self.sockets.borrow().get(&to) {
                        if let Err(e) = js::raw(ws).send_value(&js) {
                            console_warn!("send to {to} failed: {e:?}");
                        }
                    }
                }
                Effect::Close { sid, code, reason } => {
                    if let Some(ws) = self.sockets.borrow_mut().remove(&sid) {
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
                Effect::StoreChat(record) => {
                    let stored = match chat_store::store(&self.state, &record) {
                        Ok(()) => true,
                        Err(e) => {
                            console_error!("chat {} not stored: {e}", record.id);
                            false
                        }
                    };
                    let then = self.hub.borrow_mut().chat_stored(record.id, stored);
                    for e in then.into_iter().rev() {
                        queue.push_front(e);
                    }
                }
                Effect::SaveSeat(seat) => {
                    if let Err(e) = seat_store::save(&self.state, &seat) {
                        console_error!("seat of {} not stored: {e}", seat.member.peer_id);
                    }
                }
                Effect::DropSeat(peer_id) => {
                    if let Err(e) = seat_store::drop_seat(&self.state, &peer_id) {
                        console_error!("seat of {peer_id} not dropped: {e}");
                    }
                }
                Effect::SetAlarm { at_ms } => {
                    // Issued now (an absolute time in ms), awaited in the background: the output
                    // gate still holds this event's frames until the alarm is stored, and a
                    // failure is logged.
                    match js::hibernation(&self.state).storage().set_alarm_at(at_ms as f64) {
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
                    ObjectKind::Room => &self.settings.room.ice_servers,
                    ObjectKind::Global => &self.settings.global.ice_servers,
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
