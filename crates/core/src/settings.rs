//! Deployment settings, read from `wrangler.toml` vars (and secrets) once per isolate or object.
//! Pure: takes a lookup function, so `cargo test` checks the parsing natively.

use crate::limits::{default_ice_servers, Config, Rate};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Rules of a room's Durable Object (its PeerJS limit is `ROOM_PEERJS_LIMIT`).
    pub room: Config,
    /// Rules of a global `/peerjs` key's object (its PeerJS limit is `PEERJS_LIMIT`).
    pub global: Config,
    pub peerjs_keys: Vec<String>,
    pub allow_discovery: bool,
    pub allowed_origins: Vec<String>,
    pub debug_stats: bool,
    /// Cloudflare TURN key id and API token; both set means TURN credentials are minted.
    pub turn: Option<TurnKey>,
}

/// Where and with what a room mints TURN credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnKey {
    pub key_id: String,
    pub api_token: String,
    /// `TURN_API_BASE`: Cloudflare's TURN key API; a var so that a proxy (or the tests' local
    /// stand-in for Cloudflare, which this machine cannot reach) can take its place.
    pub api_base: String,
}

/// Cloudflare's TURN key API, in front of `/{key_id}/credentials/generate-ice-servers`.
pub const TURN_API_BASE: &str = "https://rtc.live.cloudflare.com/v1/turn/keys";

impl Settings {
    /// `get(name)` returns a var or secret, `None` when unset. Malformed numbers fall back to
    /// the default rather than failing every request of the deployment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Settings {
        let base = Config::default();
        let num =
            |name: &str, default: u64| -> u64 { get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default) };
        let list = |name: &str| -> Vec<String> {
            get(name).unwrap_or_default().split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let rate = |per: &str, burst: &str, d: Rate| Rate {
            per_sec: num(per, d.per_sec.into()) as u32,
            burst: num(burst, d.burst.into()) as u32,
        };
        let ice = parse_ice_servers(get("ICE_SERVERS").as_deref());
        let room = Config {
            room_cap: num("ROOM_CAP", base.room_cap as u64).max(1) as usize,
            peerjs_limit: num("ROOM_PEERJS_LIMIT", 32) as usize,
            alive_timeout_ms: num("ALIVE_TIMEOUT_MS", base.alive_timeout_ms).max(1),
            expire_timeout_ms: num("EXPIRE_TIMEOUT_MS", base.expire_timeout_ms),
            room_rate: rate("RATE_PER_SEC", "RATE_BURST", base.room_rate),
            peerjs_rate: rate("PEERJS_RATE_PER_SEC", "PEERJS_RATE_BURST", base.peerjs_rate),
            ice_servers: ice,
        };
        let global = Config { peerjs_limit: num("PEERJS_LIMIT", base.peerjs_limit as u64) as usize, ..room.clone() };
        let mut peerjs_keys = list("PEERJS_KEYS");
        if peerjs_keys.is_empty() {
            peerjs_keys.push("peerjs".to_owned());
        }
        let flag = |name: &str| get(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let turn = match (get("TURN_KEY_ID"), get("TURN_KEY_API_TOKEN")) {
            (Some(id), Some(token)) if !id.trim().is_empty() && !token.trim().is_empty() => Some(TurnKey {
                key_id: id.trim().to_owned(),
                api_token: token.trim().to_owned(),
                api_base: get("TURN_API_BASE")
                    .map(|b| b.trim().trim_end_matches('/').to_owned())
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| TURN_API_BASE.to_owned()),
            }),
            _ => None,
        };
        Settings {
            room,
            global,
            peerjs_keys,
            allow_discovery: flag("ALLOW_DISCOVERY"),
            allowed_origins: list("ALLOWED_ORIGINS"),
            debug_stats: flag("DEBUG_STATS"),
            turn,
        }
    }
}

/// `ICE_SERVERS`: a JSON array of RTCIceServer objects. Unset or blank means the public STUN
/// default; `[]` means none (tests, LAN-only deployments); anything that is not a JSON array of
/// objects each with `urls` is ignored in favour of the default (and logged by the caller).
pub fn parse_ice_servers(raw: Option<&str>) -> Value {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return default_ice_servers() };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(list)) if list.iter().all(|s| s.get("urls").is_some()) => Value::Array(list),
        _ => default_ice_servers(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let s = settings(&[]);
        assert_eq!(s.room.room_cap, 6);
        assert_eq!(s.room.peerjs_limit, 32);
        assert_eq!(s.global.peerjs_limit, 5000);
        assert_eq!(s.room.alive_timeout_ms, 60_000);
        assert_eq!(s.room.expire_timeout_ms, 5_000);
        assert_eq!(s.peerjs_keys, vec!["peerjs"]);
        assert!(!s.allow_discovery && !s.debug_stats && s.turn.is_none());
        assert_eq!(s.room.ice_servers, default_ice_servers());
    }

    #[test]
    fn vars_override_and_bad_numbers_fall_back() {
        let s = settings(&[
            ("ROOM_CAP", "3"),
            ("ALIVE_TIMEOUT_MS", "nope"),
            ("PEERJS_KEYS", "a, b,,"),
            ("ALLOWED_ORIGINS", "https://x.example"),
            ("ALLOW_DISCOVERY", "TRUE"),
            ("RATE_PER_SEC", "0"),
            ("TURN_KEY_ID", "k"),
            ("TURN_KEY_API_TOKEN", "t"),
        ]);
        assert_eq!(s.room.room_cap, 3);
        assert_eq!(s.room.alive_timeout_ms, 60_000);
        assert_eq!(s.peerjs_keys, vec!["a", "b"]);
        assert_eq!(s.allowed_origins, vec!["https://x.example"]);
        assert!(s.allow_discovery);
        assert_eq!(s.room.room_rate.per_sec, 0);
        let turn = TurnKey { key_id: "k".into(), api_token: "t".into(), api_base: TURN_API_BASE.into() };
        assert_eq!(s.turn, Some(turn.clone()));
        let s =
            settings(&[("TURN_KEY_ID", "k"), ("TURN_KEY_API_TOKEN", "t"), ("TURN_API_BASE", "http://127.0.0.1:9/k/ ")]);
        assert_eq!(s.turn, Some(TurnKey { api_base: "http://127.0.0.1:9/k".into(), ..turn }));
        // One of the two missing: no TURN.
        assert_eq!(settings(&[("TURN_KEY_ID", "k"), ("TURN_KEY_API_TOKEN", " ")]).turn, None);
    }

    #[test]
    fn ice_servers_var() {
        assert_eq!(parse_ice_servers(Some("[]")), serde_json::json!([]));
        let turn = r#"[{"urls":"turn:t.example:3478","username":"u","credential":"c"}]"#;
        assert_eq!(parse_ice_servers(Some(turn))[0]["username"], "u");
        assert_eq!(parse_ice_servers(Some("{oops")), default_ice_servers());
        assert_eq!(parse_ice_servers(Some(r#"[{"url":"x"}]"#)), default_ice_servers());
        assert_eq!(parse_ice_servers(Some("  ")), default_ice_servers());
    }
}
