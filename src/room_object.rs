//! The two Durable Object classes. Each is a [`Shell`] around the core's hub:
//!
//! - [`Room`] (`ROOMS`, one per room id) serves the room protocol and the room's PeerJS server,
//!   and keeps the room's chat in its SQLite storage.
//! - [`PeerServer`] (`PEERJS`, one per PeerJS key) is the drop-in global PeerJS server.

use wasm_bindgen::prelude::*;
use worker::*;

use crate::shell::{ObjectKind, Shell};

/// One meeting room: its roster, chat (persisted) and PeerJS server.
#[durable_object(alarm)]
pub struct Room(Shell);

/// One key of the drop-in global PeerJS server (`/peerjs`).
#[durable_object(alarm)]
pub struct PeerServer(Shell);

// `#[durable_object(alarm)]` exports the constructor, `fetch` and `alarm` (async: they await
// storage and the network). The three WebSocket handlers are exported below as plain
// synchronous methods instead of the macro's `async` ones, which wrap every frame in a future,
// a Promise and a JS closure (BENCHMARKS.md, "The WebSocket handlers are synchronous").
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
                self.0.closed(&ws, false);
            }

            #[wasm_bindgen(js_name = webSocketError)]
            pub fn websocket_error(&self, ws: web_sys::WebSocket, error: JsValue) {
                console_warn!("websocket error: {error:?}");
                self.0.closed(&ws.into(), true);
            }
        }
    };
}

delegate!(Room, ObjectKind::Room);
delegate!(PeerServer, ObjectKind::Global);
