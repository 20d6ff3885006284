//! Deployment settings: `wrangler.toml` vars (and secrets) → the limits of each object. Pure: it
//! takes a lookup function, so `cargo test` checks the parsing natively. [`VARS`] is the one
//! place a var's default is written; a test pins `wrangler.toml` and `docs/PROTOCOL.md` to it.

use serde_json::Value;

use crate::limits::{default_ice_servers, Config, Rate};

/// A `[vars]` entry: its name, its default exactly as `wrangler.toml` spells it, and what it does.
#[derive(Debug)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub what: &'static str,
}

/// Every var a deployment may set, in the order `wrangler.toml` lists them.
pub const VARS: &[Var] = &[
    Var { name: "ROOM_CAP", default: "6", what: "members per room" },
    Var { name: "ROOM_PEERJS_LIMIT", default: "32", what: "PeerJS ids registered at once in one room" },
    Var { name: "PEERJS_LIMIT", default: "5000", what: "PeerJS ids at once per key on the global /peerjs server" },
    Var { name: "PEERJS_KEYS", default: "peerjs", what: "accepted PeerJS API keys, comma-separated" },
    Var { name: "ALIVE_TIMEOUT_MS", default: "60000", what: "close sockets silent for this long" },
    Var {
        name: "EXPIRE_TIMEOUT_MS",
        default: "5000",
        what: "EXPIRE to senders of messages for an id that never came online",
    },
    Var { name: "RATE_PER_SEC", default: "10", what: "room-protocol frames per second per socket (0 = unlimited)" },
    Var { name: "RATE_BURST", default: "20", what: "room-protocol frames in a burst" },
    Var { name: "PEERJS_RATE_PER_SEC", default: "100", what: "PeerJS frames per second per socket (0 = unlimited)" },
    Var { name: "PEERJS_RATE_BURST", default: "200", what: "PeerJS frames in a burst" },
    Var { name: "GRACE_MS", default: "20000", what: "a member whose sockets dropped keeps its seat this long" },
    Var {
        name: "JOIN_WINDOW_MS",
        default: "15000",
        what: "unjoined room sockets and PeerJS ids nobody is seated as are closed after this",
    },
    Var { name: "CLIENT_SOCKET_LIMIT", default: "32", what: "sockets one client address may open in one room" },
    Var {
        name: "PEERJS_CLIENT_LIMIT",
        default: "64",
        what: "PeerJS ids one client address may hold per key on the global server",
    },
    Var { name: "ALLOW_DISCOVERY", default: "false", what: "`GET {prefix}{key}/peers` lists ids when \"true\"" },
    Var {
        name: "ALLOWED_ORIGINS",
        default: "",
        what: "extra browser origins allowed to open sockets, comma-separated",
    },
    Var { name: "ICE_SERVERS", default: "", what: "JSON RTCIceServer list; empty = public STUN" },
    Var { name: "TURN_KEY_ID", default: "", what: "Cloudflare TURN key id; with secret TURN_KEY_API_TOKEN adds TURN" },
    Var { name: "TURN_API_BASE", default: "", what: "empty = https://rtc.live.cloudflare.com/v1/turn/keys" },
    Var { name: "DEBUG_STATS", default: "false", what: "\"true\" exposes {prefix}stats counters (tests, benchmarks)" },
];

/// The accepted range of each numeric var, inclusive. A value outside it is clamped to the nearest
/// end (and reported in [`Settings::clamped`]): one mistyped var must not take a deployment down,
/// and every deadline and counter computed from a var stays far from `u64` overflow (an
/// `ALIVE_TIMEOUT_MS` near `u64::MAX` once wrapped and closed every socket at once).
pub const RANGES: &[(&str, u64, u64)] = &[
    // A full mesh of 50 is 1,225 calls; far past what browsers hold up (see ROOM_CAP's default).
    ("ROOM_CAP", 1, 50),
    // Each registration is a socket of the object; 0 would refuse everyone.
    ("ROOM_PEERJS_LIMIT", 1, 1_000),
    ("PEERJS_LIMIT", 1, 100_000),
    // Below 1 s a socket dies between two frames of a live client; above 1 h a dead one lingers.
    ("ALIVE_TIMEOUT_MS", 1_000, 3_600_000),
    // Below 100 ms a peer loading the page could never receive its first OFFER; 10 min bounds
    // how long a queue holds memory.
    ("EXPIRE_TIMEOUT_MS", 100, 600_000),
    // 0 = unlimited. A burst of 0 would refuse every frame (the bucket starts with `burst` tokens).
    ("RATE_PER_SEC", 0, 10_000),
    ("RATE_BURST", 1, 100_000),
    ("PEERJS_RATE_PER_SEC", 0, 100_000),
    ("PEERJS_RATE_BURST", 1, 100_000),
    // 0 = a dropped socket ends the seat at once; above 5 min a crashed tab's tile lingers.
    ("GRACE_MS", 0, 300_000),
    // Below 1 s a page cannot open its sockets and join; 10 min bounds a lobby's sockets.
    ("JOIN_WINDOW_MS", 1_000, 600_000),
    // A person holds 2 sockets; below 2 nobody could join.
    ("CLIENT_SOCKET_LIMIT", 2, 10_000),
    ("PEERJS_CLIENT_LIMIT", 1, 100_000),
];

/// The default of a var in [`VARS`] (empty for a name that is not there).
pub fn default_of(name: &str) -> &'static str {
    VARS.iter().find(|v| v.name == name).map_or("", |v| v.default)
}

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
    /// One line per var that was not used as given (out of [`RANGES`], or not a number), saying
    /// what was used instead. The shell logs them once per isolate.
    pub clamped: Vec<String>,
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
    /// Every var at its default.
    pub fn defaults() -> Settings {
        Settings::from_lookup(|_| None)
    }

    /// `get(name)` returns a var or secret, `None` when unset. Malformed numbers fall back to
    /// the default and numbers outside [`RANGES`] are clamped, rather than failing every request
    /// of the deployment; both are listed in [`Settings::clamped`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Settings {
        let raw = |name: &str| get(name).unwrap_or_else(|| default_of(name).to_owned());
        let clamped = std::cell::RefCell::new(Vec::new());
        let num = |name: &str| -> u64 {
            let (min, max) = RANGES.iter().find(|r| r.0 == name).map_or((0, u64::MAX), |r| (r.1, r.2));
            let given = raw(name);
            let text = given.trim();
            let value = match text.parse::<u64>() {
                Ok(v) => v,
                // All digits yet unparsable: beyond u64, so above any range.
                Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
                Err(_) => {
                    let d = default_of(name).parse().unwrap_or(min).clamp(min, max);
                    clamped.borrow_mut().push(format!("{name}={given:?} is not a whole number; using the default {d}"));
                    return d;
                }
            };
            let used = value.clamp(min, max);
            if used != value {
                let side = if value < min { "below" } else { "above" };
                clamped.borrow_mut().push(format!("{name}={text} is {side} the range {min}..={max}; using {used}"));
            }
            used
        };
        // Every value is within `RANGES`, far below `u32::MAX` and `usize::MAX` (32-bit wasm).
        let small = |name: &str| -> u32 { u32::try_from(num(name)).unwrap_or(u32::MAX) };
        let count = |name: &str| -> usize { usize::try_from(num(name)).unwrap_or(usize::MAX) };
        let list = |name: &str| -> Vec<String> {
            raw(name).split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let rate = |per: &str, burst: &str| Rate { per_sec: small(per), burst: small(burst) };
        let room = Config {
            room_cap: count("ROOM_CAP"),
            peerjs_limit: count("ROOM_PEERJS_LIMIT"),
            alive_timeout_ms: num("ALIVE_TIMEOUT_MS"),
            expire_timeout_ms: num("EXPIRE_TIMEOUT_MS"),
            room_rate: rate("RATE_PER_SEC", "RATE_BURST"),
            peerjs_rate: rate("PEERJS_RATE_PER_SEC", "PEERJS_RATE_BURST"),
            ice_servers: parse_ice_servers(Some(&raw("ICE_SERVERS"))),
            grace_ms: num("GRACE_MS"),
            join_window_ms: num("JOIN_WINDOW_MS"),
            client_limit: count("CLIENT_SOCKET_LIMIT"),
            membership: true,
        };
        let global = Config {
            peerjs_limit: count("PEERJS_LIMIT"),
            client_limit: count("PEERJS_CLIENT_LIMIT"),
            membership: false,
            ..room.clone()
        };
        let mut peerjs_keys = list("PEERJS_KEYS");
        if peerjs_keys.is_empty() {
            peerjs_keys = list_of(default_of("PEERJS_KEYS"));
        }
        let flag = |name: &str| raw(name).trim().eq_ignore_ascii_case("true");
        let turn = match (get("TURN_KEY_ID"), get("TURN_KEY_API_TOKEN")) {
            (Some(id), Some(token)) if !id.trim().is_empty() && !token.trim().is_empty() => Some(TurnKey {
                key_id: id.trim().to_owned(),
                api_token: token.trim().to_owned(),
                api_base: Some(raw("TURN_API_BASE").trim().trim_end_matches('/').to_owned())
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
            clamped: clamped.into_inner(),
        }
    }
}

fn list_of(s: &str) -> Vec<String> {
    s.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// `ICE_SERVERS`: a JSON array of RTCIceServer objects. Unset or blank means the public STUN
/// default; `[]` means none (tests, LAN-only deployments); anything that is not a JSON array of
/// objects each with `urls` is ignored in favour of the default.
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
    fn defaults_are_the_documented_values() {
        let s = Settings::defaults();
        assert_eq!(s.room.room_cap, 6);
        assert_eq!(s.room.peerjs_limit, 32);
        assert_eq!(s.global.peerjs_limit, 5000);
        assert_eq!(s.room.alive_timeout_ms, 60_000);
        assert_eq!(s.room.expire_timeout_ms, 5_000);
        assert_eq!(s.room.room_rate, Rate { per_sec: 10, burst: 20 });
        assert_eq!(s.room.peerjs_rate, Rate { per_sec: 100, burst: 200 });
        assert_eq!(s.peerjs_keys, vec!["peerjs"]);
        assert!(!s.allow_discovery && !s.debug_stats && s.turn.is_none());
        assert_eq!(s.room.ice_servers, default_ice_servers());
    }

    /// `wrangler.toml`'s `[vars]` as `name → value`.
    fn wrangler_vars() -> Vec<(String, String)> {
        let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../wrangler.toml"))
            .expect("wrangler.toml at the repository root");
        let vars = toml.split("\n[vars]\n").nth(1).expect("a [vars] table");
        let vars = vars.split("\n[").next().unwrap_or_default();
        vars.lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once('=')?;
                let value = rest.trim().strip_prefix('"')?.split('"').next()?;
                Some((name.trim().to_owned(), value.to_owned()))
            })
            .collect()
    }

    #[test]
    fn wrangler_toml_lists_every_var_at_its_default_in_order() {
        let listed = wrangler_vars();
        let expected: Vec<(String, String)> = VARS.iter().map(|v| (v.name.into(), v.default.into())).collect();
        assert_eq!(listed, expected, "wrangler.toml [vars] and settings::VARS disagree");
    }

    #[test]
    fn protocol_md_documents_every_var_with_its_default() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md"))
            .expect("docs/PROTOCOL.md");
        for v in VARS {
            let shown = if v.default.is_empty() { "empty".to_owned() } else { format!("`{}`", v.default) };
            let row = format!("| `{}` | {} |", v.name, shown);
            assert!(doc.contains(&row), "docs/PROTOCOL.md has no settings row starting {row}");
        }
    }

    #[test]
    fn protocol_md_documents_every_range() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md"))
            .expect("docs/PROTOCOL.md");
        for (name, min, max) in RANGES {
            let row = format!("| `{name}` | {min} | {max} |");
            assert!(doc.contains(&row), "docs/PROTOCOL.md has no range row {row}");
        }
    }

    #[test]
    fn every_default_parses() {
        for v in VARS {
            let same = settings(&[(v.name, v.default)]);
            let d = Settings::defaults();
            assert_eq!(format!("{:?}", same.room), format!("{:?}", d.room), "{}", v.name);
        }
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
        assert_eq!(s.clamped, vec!["ALIVE_TIMEOUT_MS=\"nope\" is not a whole number; using the default 60000"]);
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
        assert_eq!(settings(&[("PEERJS_KEYS", " , ")]).peerjs_keys, vec!["peerjs"]);
    }

    #[test]
    fn numbers_are_clamped_to_their_range_and_reported() {
        let max = u64::MAX.to_string();
        let s = settings(&[
            ("ALIVE_TIMEOUT_MS", &max),
            ("EXPIRE_TIMEOUT_MS", "99999999999999999999999"),
            ("ROOM_CAP", "0"),
            ("RATE_BURST", "0"),
            ("PEERJS_RATE_PER_SEC", "4294967301"),
            ("PEERJS_LIMIT", "-3"),
        ]);
        assert_eq!(s.room.alive_timeout_ms, 3_600_000);
        assert_eq!(s.room.expire_timeout_ms, 600_000);
        assert_eq!(s.room.room_cap, 1);
        assert_eq!(s.room.room_rate, Rate { per_sec: 10, burst: 1 });
        // 2^32 + 5 used to be cast to 5 frames per second.
        assert_eq!(s.room.peerjs_rate.per_sec, 100_000);
        assert_eq!(s.global.peerjs_limit, 5000, "not a number: the default");
        assert_eq!(s.global.alive_timeout_ms, 3_600_000, "the global server gets the same clamp");
        assert_eq!(s.clamped.len(), 6, "{:#?}", s.clamped);
        let max_line = "ALIVE_TIMEOUT_MS=18446744073709551615 is above the range 1000..=3600000; using 3600000";
        assert!(s.clamped.iter().any(|l| l == max_line), "{:#?}", s.clamped);
        assert!(s.clamped.iter().any(|l| l == "ROOM_CAP=0 is below the range 1..=50; using 1"), "{:#?}", s.clamped);
        assert!(s.clamped.iter().any(|l| l.starts_with("PEERJS_LIMIT=\"-3\" is not a whole number")));
        // In range: used as given, nothing reported.
        let s = settings(&[("ALIVE_TIMEOUT_MS", "1000"), ("EXPIRE_TIMEOUT_MS", "600000"), ("RATE_PER_SEC", "0")]);
        assert_eq!((s.room.alive_timeout_ms, s.room.expire_timeout_ms, s.room.room_rate.per_sec), (1000, 600_000, 0));
        assert!(s.clamped.is_empty(), "{:?}", s.clamped);
    }

    #[test]
    fn every_numeric_var_has_a_range_holding_its_default() {
        for v in VARS.iter().filter(|v| v.default.parse::<u64>().is_ok()) {
            let Some(&(_, min, max)) = RANGES.iter().find(|r| r.0 == v.name) else {
                panic!("{} is numeric but has no entry in settings::RANGES", v.name)
            };
            let d: u64 = v.default.parse().unwrap_or_default();
            assert!((min..=max).contains(&d), "{}: default {d} outside {min}..={max}", v.name);
        }
        for (name, ..) in RANGES {
            assert!(VARS.iter().any(|v| v.name == *name), "RANGES names {name}, which VARS does not list");
        }
        assert!(Settings::defaults().clamped.is_empty());
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
