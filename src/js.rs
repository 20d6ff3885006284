//! The few workerd APIs that `worker` 0.8 does not wrap, or wraps in a way that costs on the hot
//! path, declared directly with wasm-bindgen.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{js_sys, web_sys, State, WebSocket};

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen through `send(data)` with an already-made JS string: a broadcast converts
    /// its frame from UTF-8 once, not once per recipient as `send_with_str` would.
    pub type RawSocket;

    #[wasm_bindgen(method, catch, js_name = send)]
    pub fn send_value(this: &RawSocket, data: &JsValue) -> std::result::Result<(), JsValue>;

    /// `DurableObjectState`, for the one hibernation method `worker` 0.8 does not wrap.
    pub type HibernationState;

    #[wasm_bindgen(method, catch, js_name = getWebSocketAutoResponseTimestamp)]
    fn get_web_socket_auto_response_timestamp(
        this: &HibernationState,
        ws: &web_sys::WebSocket,
    ) -> std::result::Result<JsValue, JsValue>;

    /// `DurableObjectStorage`, for a `setAlarm` that is issued before the handler returns:
    /// `worker`'s `set_alarm` is an `async fn`, which calls into JS only when first polled.
    pub type RawStorage;

    #[wasm_bindgen(method, getter)]
    pub fn storage(this: &HibernationState) -> RawStorage;

    #[wasm_bindgen(method, catch, js_name = setAlarm)]
    pub fn set_alarm_at(this: &RawStorage, epoch_ms: f64) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// The state object as the raw bindings above see it.
pub fn hibernation(state: &State) -> &HibernationState {
    state.as_raw().unchecked_ref()
}

/// When the runtime last answered a HEARTBEAT on `ws` by itself (ms), if it ever did.
pub fn auto_response_time(state: &State, ws: &WebSocket) -> Option<u64> {
    let t = hibernation(state).get_web_socket_auto_response_timestamp(ws.as_ref()).ok()?;
    t.dyn_ref::<js_sys::Date>().map(|d| d.get_time() as u64)
}

/// The socket as a [`RawSocket`].
pub fn raw(ws: &WebSocket) -> &RawSocket {
    ws.as_ref().unchecked_ref()
}
