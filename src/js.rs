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

    /// A Rate Limiting binding (`[[ratelimits]]` in wrangler.toml): `limit({key})` resolves to
    /// `{success}`. Declared here rather than through `worker::RateLimiter`, whose
    /// serde-wasm-bindgen round trip would add to the bundle for two fields.
    pub type RateLimit;

    #[wasm_bindgen(method, catch)]
    fn limit(this: &RateLimit, options: &JsValue) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// Whether the Rate Limiting binding `binding` lets `key` through now. A deployment without the
/// binding, and a binding that fails, let everything through: the limit protects the service,
/// it must never be what takes it down.
pub async fn rate_allows(env: &worker::Env, binding: &str, key: &str) -> bool {
    let Ok(b) = js_sys::Reflect::get(env, &JsValue::from_str(binding)) else { return true };
    if b.is_undefined() || b.is_null() {
        return true;
    }
    let options = js_sys::Object::new();
    if js_sys::Reflect::set(&options, &"key".into(), &JsValue::from_str(key)).is_err() {
        return true;
    }
    let Ok(promise) = b.unchecked_ref::<RateLimit>().limit(&options) else { return true };
    match worker::wasm_bindgen_futures::JsFuture::from(promise).await {
        Ok(outcome) => js_sys::Reflect::get(&outcome, &"success".into()).ok().and_then(|s| s.as_bool()).unwrap_or(true),
        Err(_) => true,
    }
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
