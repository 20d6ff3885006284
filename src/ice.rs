//! ICE servers for the meeting's RTCPeerConnections: the configured list (`ICE_SERVERS`, or
//! public STUN), plus short-lived Cloudflare TURN credentials when a TURN key is configured.
//! TURN is what makes calls work across symmetric NATs and strict firewalls; its credentials
//! must be minted server-side because the key itself is a long-lived secret.

use edge_meet_core::settings::TurnKey;
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit};

/// Lifetime asked for minted credentials. A room object re-mints after half of it, so a joiner
/// always gets credentials valid for at least 12 hours of meeting.
pub const TURN_TTL_SECS: u64 = 86_400;

/// How long a join may wait for Cloudflare's answer. Minting happens while the first joiner of
/// a room (and one joiner every 12 hours) opens its room socket; past this, the room serves its
/// configured servers and tries again a minute later.
pub const TURN_MINT_TIMEOUT_MS: u32 = 3_000;

#[wasm_bindgen]
extern "C" {
    /// `AbortSignal.timeout(ms)`: aborts the request, including reading its body, after `ms`.
    #[wasm_bindgen(js_namespace = AbortSignal, js_name = timeout)]
    fn abort_signal_timeout(ms: u32) -> worker::web_sys::AbortSignal;
}

/// Asks Cloudflare's TURN service for credentials (`generate-ice-servers`).
pub async fn mint_turn(key: &TurnKey) -> worker::Result<Vec<Value>> {
    let url = format!("{}/{}/credentials/generate-ice-servers", key.api_base, key.key_id);
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {}", key.api_token))?;
    headers.set("Content-Type", "application/json")?;
    let body = serde_json::json!({ "ttl": TURN_TTL_SECS }).to_string();
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let signal = AbortSignal::from(abort_signal_timeout(TURN_MINT_TIMEOUT_MS));
    let mut resp = Fetch::Request(Request::new_with_init(&url, &init)?).send_with_signal(&signal).await?;
    if !(200..300).contains(&resp.status_code()) {
        return Err(format!("TURN credentials: HTTP {}", resp.status_code()).into());
    }
    let json: Value = resp.json().await?;
    match json.get("iceServers") {
        Some(Value::Array(list)) => Ok(list.clone()),
        Some(one @ Value::Object(_)) => Ok(vec![one.clone()]),
        _ => Err("TURN credentials: no iceServers in the response".into()),
    }
}

/// The configured servers followed by the TURN ones.
pub fn combine(base: &Value, turn: &[Value]) -> Value {
    let mut all = base.as_array().cloned().unwrap_or_default();
    all.extend(turn.iter().cloned());
    Value::Array(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn turn_entries_follow_the_configured_servers() {
        let base = json!([{ "urls": "stun:a" }]);
        let turn = vec![json!({ "urls": ["turn:b"], "username": "u", "credential": "c" })];
        assert_eq!(
            combine(&base, &turn),
            json!([{ "urls": "stun:a" }, { "urls": ["turn:b"], "username": "u", "credential": "c" }])
        );
        assert_eq!(combine(&json!([]), &turn), json!(turn));
        assert_eq!(combine(&base, &[]), base, "a failed mint leaves the list alone");
        assert_eq!(combine(&json!({"not": "a list"}), &turn), json!(turn), "a malformed base is ignored");
    }
}
