//! The routing table: request path → [`Route`]. Pure, so every path rule (room-id validation
//! included) is unit-tested natively. The Worker entry and the Durable Objects both use it, so
//! the two can never disagree about what a path means. The room-id rule itself is part of the
//! wire vocabulary ([`edge_meet_core::protocol::valid_room_id`]).
//!
//! ```text
//! /room/{room}                     meeting page
//! /room/{room}/ws                  room-protocol WebSocket
//! /room/{room}/peerjs?key&id&token PeerJS WebSocket (client option path: "/room/{room}/")
//! /room/{room}/{key}/id            PeerJS: new id
//! /room/{room}/{key}/peers         PeerJS: discovery (401 unless ALLOW_DISCOVERY)
//! /room/{room}/stats               counters (DEBUG_STATS only)
//! /peerjs                          drop-in PeerJS server: description
//! /peerjs/peerjs?key&id&token      its WebSocket (client option path: "/peerjs")
//! /peerjs/{key}/id | peers | stats
//! ```

/// Which Durable Object serves a request.
use edge_meet_core::protocol::valid_room_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The room's object (`ROOMS`, named by the room id).
    Room(&'a str),
    /// A global PeerJS key's object (`PEERJS`, named by the key). For the WebSocket the key is
    /// in the query, so it is not known from the path alone.
    Global,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    RoomPage {
        room: &'a str,
    },
    RoomSocket {
        room: &'a str,
    },
    PeerJsSocket {
        target: Target<'a>,
    },
    PeerJsId,
    PeerJsPeers {
        target: Target<'a>,
        key: &'a str,
    },
    Stats {
        target: Target<'a>,
        key: &'a str,
    },
    PeerJsInfo,
    /// A `/room/...` path whose room id is not `[A-Za-z0-9_-]{1,64}`; `page` when it was the
    /// meeting page that was asked for (a mistyped link), not an API or socket path.
    BadRoom {
        page: bool,
    },
    NotFound,
}

pub fn parse(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix('/') else { return Route::NotFound };
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        ["room", room, tail @ ..] => {
            if !valid_room_id(room) {
                return Route::BadRoom { page: matches!(tail, [] | [""]) };
            }
            let target = Target::Room(room);
            match tail {
                [] | [""] => Route::RoomPage { room },
                ["ws"] => Route::RoomSocket { room },
                ["peerjs"] => Route::PeerJsSocket { target },
                ["stats"] => Route::Stats { target, key: "" },
                [_key, "id"] => Route::PeerJsId,
                [key, "peers"] => Route::PeerJsPeers { target, key },
                _ => Route::NotFound,
            }
        }
        ["room"] => Route::BadRoom { page: true },
        ["peerjs"] | ["peerjs", ""] => Route::PeerJsInfo,
        ["peerjs", "peerjs"] => Route::PeerJsSocket { target: Target::Global },
        ["peerjs", _key, "id"] => Route::PeerJsId,
        ["peerjs", key, "peers"] if !key.is_empty() => Route::PeerJsPeers { target: Target::Global, key },
        ["peerjs", key, "stats"] if !key.is_empty() => Route::Stats { target: Target::Global, key },
        _ => Route::NotFound,
    }
}

/// Whether a WebSocket upgrade may proceed. Browsers always send `Origin`; a page on another
/// site must not be able to open sockets into our rooms with a visitor's browser. Clients that
/// send no `Origin` (servers, CLI tools, tests) are not browsers acting for someone else.
pub fn origin_allowed(origin: Option<&str>, own_origin: &str, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(o) => o.eq_ignore_ascii_case(own_origin) || allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
    }
}

/// A random (version 4) UUID, as peerjs-server's `/id` returns, from 16 random bytes.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_paths() {
        assert_eq!(parse("/room/abc"), Route::RoomPage { room: "abc" });
        assert_eq!(parse("/room/abc/"), Route::RoomPage { room: "abc" });
        assert_eq!(parse("/room/a-b_C9/ws"), Route::RoomSocket { room: "a-b_C9" });
        assert_eq!(parse("/room/r1/peerjs"), Route::PeerJsSocket { target: Target::Room("r1") });
        assert_eq!(parse("/room/r1/peerjs/id"), Route::PeerJsId);
        assert_eq!(parse("/room/r1/anykey/id"), Route::PeerJsId);
        assert_eq!(parse("/room/r1/peerjs/peers"), Route::PeerJsPeers { target: Target::Room("r1"), key: "peerjs" });
        assert_eq!(parse("/room/r1/stats"), Route::Stats { target: Target::Room("r1"), key: "" });
        assert_eq!(parse("/room/r1/ws/extra"), Route::NotFound);
        assert_eq!(parse("/room/r1/peerjs/"), Route::NotFound, "peerjs-server refuses {{path}}peerjs/ too");
    }

    #[test]
    fn bad_room_ids_are_refused_whatever_follows() {
        for p in ["/room/a%20b", "/room/..", "/room/<script>", "/room/", "/room"] {
            assert_eq!(parse(p), Route::BadRoom { page: true }, "{p}");
        }
        for p in ["/room/a%20b/ws", "/room/a.b/peerjs", "/room/%2F/x/id"] {
            assert_eq!(parse(p), Route::BadRoom { page: false }, "{p}");
        }
        assert_eq!(parse(&format!("/room/{}", "a".repeat(64))), Route::RoomPage { room: &"a".repeat(64) });
        assert_eq!(parse(&format!("/room/{}/ws", "a".repeat(65))), Route::BadRoom { page: false });
        assert!(!valid_room_id("é"));
    }

    #[test]
    fn global_peerjs_paths() {
        assert_eq!(parse("/peerjs"), Route::PeerJsInfo);
        assert_eq!(parse("/peerjs/"), Route::PeerJsInfo);
        assert_eq!(parse("/peerjs/peerjs"), Route::PeerJsSocket { target: Target::Global });
        assert_eq!(parse("/peerjs/peerjs/id"), Route::PeerJsId);
        assert_eq!(parse("/peerjs/k/peers"), Route::PeerJsPeers { target: Target::Global, key: "k" });
        assert_eq!(parse("/peerjs/k/stats"), Route::Stats { target: Target::Global, key: "k" });
        assert_eq!(parse("/peerjs/k/other"), Route::NotFound);
        assert_eq!(parse("/elsewhere"), Route::NotFound);
        assert_eq!(parse("/"), Route::NotFound, "the landing page is a static asset");
    }

    #[test]
    fn origins() {
        let own = "https://meet.example";
        assert!(origin_allowed(None, own, &[]));
        assert!(origin_allowed(Some("https://meet.example"), own, &[]));
        assert!(!origin_allowed(Some("https://evil.example"), own, &[]));
        assert!(!origin_allowed(Some("null"), own, &[]));
        assert!(origin_allowed(Some("https://app.example"), own, &["https://app.example".into()]));
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }
}
