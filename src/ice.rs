//! ICE servers for the meeting's RTCPeerConnections: the configured list (`ICE_SERVERS`, or
//! public STUN), plus short-lived Cloudflare TURN credentials when a TURN key is configured.
//! TURN is what makes calls work across symmetric NATs and strict firewalls; its credentials
//! must be minted server-side because the key itself is a long-lived secret.

use serde_json::Value;
use worker::{Fetch, Headers, Method, Request, RequestInit};

/// Lifetime asked for minted credentials. A room object re-mints after half of it, so a joiner
/// always gets credentials valid for at least 12 hours of meeting.
pub const TURN_TTL_SECS: u64 = 86_400;

/// Asks Cloudflare's TURN service for credentials (`generate-ice-servers`).
pub async fn mint_turn(key_id: &str, api_token: &str) -> worker::Result<Vec<Value>> {
    let url = format!("https://rtc.live.cloudflare.com/v1/turn/keys/{key_id}/credentials/generate-ice-servers");
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {api_token}"))?;
    headers.set("Content-Type", "application/json")?;
    let body = serde_json::json!({ "ttl": TURN_TTL_SECS }).to_string();
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let mut resp = Fetch::Request(Request::new_with_init(&url, &init)?).send().await?;
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
