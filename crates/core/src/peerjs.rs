//! The PeerJS server wire protocol (peerjs-server 1.0.2, as the unmodified `peerjs` 1.5.x
//! client expects it): message types, frame shapes, the exact error strings, and the checks made
//! on a socket's query before it is registered. `docs/PEERJS.md` is the prose version.
//!
//! Registration and relay rules live in [`crate::hub`], which owns the sockets; offline queues in
//! [`crate::queue`]. This module is the vocabulary.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// Exact strings of peerjs-server (`src/enums.ts`); clients show them to users as-is.
pub const MSG_NO_PARAMS: &str = "No id, token, or key supplied to websocket server";
pub const MSG_INVALID_KEY: &str = "Invalid key provided";
pub const MSG_LIMIT: &str = "Server has reached its concurrent user limit";
pub const MSG_ID_TAKEN: &str = "ID is taken";

/// The keep-alive frame both protocols use, byte for byte. peerjs sends it every 5 s; the runtime
/// answers these exact bytes itself (an auto-response), so heartbeats never wake an object.
pub const HEARTBEAT_FRAME: &str = r#"{"type":"HEARTBEAT"}"#;

/// Every message type of the PeerJS server protocol, in either direction.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum MsgType {
    /// Server → client: registered.
    Open,
    /// Server → client: refused (`payload.msg` says why); the socket is closed after it.
    Error,
    /// Server → client: the id is held with another token.
    IdTaken,
    /// Client → server keep-alive; never answered by peerjs-server (the runtime echoes ours).
    Heartbeat,
    Offer,
    Answer,
    Candidate,
    /// Client → server without `dst`: unregister me. With `dst`: relayed.
    Leave,
    /// Server → client: your messages to `src` were never delivered.
    Expire,
}

impl MsgType {
    pub const ALL: [MsgType; 9] = [
        MsgType::Open,
        MsgType::Error,
        MsgType::IdTaken,
        MsgType::Heartbeat,
        MsgType::Offer,
        MsgType::Answer,
        MsgType::Candidate,
        MsgType::Leave,
        MsgType::Expire,
    ];

    /// The wire spelling, e.g. `"ID-TAKEN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Open => "OPEN",
            MsgType::Error => "ERROR",
            MsgType::IdTaken => "ID-TAKEN",
            MsgType::Heartbeat => "HEARTBEAT",
            MsgType::Offer => "OFFER",
            MsgType::Answer => "ANSWER",
            MsgType::Candidate => "CANDIDATE",
            MsgType::Leave => "LEAVE",
            MsgType::Expire => "EXPIRE",
        }
    }

    pub fn parse(s: &str) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The types the server relays between peers (with a `dst`). Everything else a client sends,
    /// HEARTBEAT aside, is ignored, as peerjs-server does.
    pub fn is_relayed(self) -> bool {
        matches!(self, MsgType::Offer | MsgType::Answer | MsgType::Candidate | MsgType::Leave | MsgType::Expire)
    }

    /// Relayed types that are queued for an id that is not connected (LEAVE and EXPIRE to an
    /// offline id are dropped, as in peerjs-server).
    pub fn is_queued(self) -> bool {
        matches!(self, MsgType::Offer | MsgType::Answer | MsgType::Candidate)
    }
}

/// A PeerJS frame in either direction, owned. Tests and the load generator use this; the
/// server's relay path uses the borrowed [`Incoming`]/[`Outgoing`] to avoid copying payloads.
/// `kind` is a string, not a [`MsgType`], so that tests can send the types a server must ignore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PeerJsFrame {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl PeerJsFrame {
    /// A frame of a known type with no `src`, `dst` or `payload` (HEARTBEAT, LEAVE…).
    pub fn bare(kind: MsgType) -> Self {
        PeerJsFrame { kind: kind.as_str().to_owned(), src: None, dst: None, payload: None }
    }

    /// A frame for `dst` (what a client sends to relay).
    pub fn to(kind: MsgType, dst: &str, payload: Option<Value>) -> Self {
        PeerJsFrame { kind: kind.as_str().to_owned(), src: None, dst: Some(dst.to_owned()), payload }
    }

    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::parse(&self.kind)
    }
}

/// A client frame as the relay reads it: the payload stays unparsed JSON text.
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub dst: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub payload: Option<&'a RawValue>,
}

/// A relayed frame: exactly `{type, src, dst, payload}` in this order, payload omitted if absent.
#[derive(Serialize)]
pub struct Outgoing<'a> {
    #[serde(rename = "type")]
    pub kind: MsgType,
    pub src: &'a str,
    pub dst: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a RawValue>,
}

impl Outgoing<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub fn open_frame() -> String {
    r#"{"type":"OPEN"}"#.to_owned()
}

/// `{"type":…,"payload":{"msg":…}}` with `type` first, as peerjs-server sends it. A struct, not
/// `serde_json::json!`, whose maps sort their keys (`payload` would come first).
#[derive(Serialize)]
struct MsgFrame<'a> {
    #[serde(rename = "type")]
    kind: MsgType,
    payload: MsgPayload<'a>,
}

#[derive(Serialize)]
struct MsgPayload<'a> {
    msg: &'a str,
}

fn msg_frame(kind: MsgType, msg: &str) -> String {
    serde_json::to_string(&MsgFrame { kind, payload: MsgPayload { msg } }).unwrap_or_default()
}

pub fn error_frame(msg: &str) -> String {
    msg_frame(MsgType::Error, msg)
}

pub fn id_taken_frame() -> String {
    msg_frame(MsgType::IdTaken, MSG_ID_TAKEN)
}

/// The server-made EXPIRE: "`unreachable` never came online for your messages".
pub fn expire_frame(unreachable: &str, sender: &str) -> String {
    Outgoing { kind: MsgType::Expire, src: unreachable, dst: sender, payload: None }.to_json()
}

/// Longest PeerJS id accepted, in bytes. Ids from `GET …/id` are 36-character UUIDs and the
/// meeting app's are shorter; 64 leaves room for hand-picked ids while keeping every frame that
/// names one (`src`/`dst` of each relay, roster entries) small.
pub const ID_MAX: usize = 64;
/// Longest token accepted, in bytes. The peerjs client's own token is
/// `Math.random().toString(36).slice(2)` (about 11 characters), the meeting app's 18.
pub const TOKEN_MAX: usize = 64;

/// The peerjs client's id rule (`lib/utils/validateId.ts`: `/^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$/`):
/// ASCII letters and digits in runs joined by single spaces, `_` or `-`, none at either end.
/// An unmodified client refuses to connect with any other id (its `invalid-id` error), so
/// nothing else reaches us from a real peer; anything else (markup, NUL, newlines, RLO, quotes)
/// is someone writing to the socket by hand, and would be echoed into every relayed frame and
/// the room's roster.
pub fn is_valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() > ID_MAX {
        return false;
    }
    let mut prev_alnum = false;
    for &c in b {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => prev_alnum = true,
            b' ' | b'_' | b'-' if prev_alnum => prev_alnum = false,
            _ => return false,
        }
    }
    // Non-empty and not ending on a separator (an empty id is "not supplied", checked before).
    prev_alnum
}

/// Tokens are compared, never shown, but are kept with the registration and sent back in `join`:
/// 1–[`TOKEN_MAX`] bytes of printable ASCII (U+0020–U+007E), which every client's token is.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= TOKEN_MAX && token.bytes().all(|c| (0x20..=0x7E).contains(&c))
}

/// The WebSocket query checks made before looking at the registry: first peerjs-server's, in
/// its order, then ours on the id and token. `Err` carries the ERROR frame to send before
/// closing. `keys` are the accepted API keys.
pub fn check_params(key: Option<&str>, id: Option<&str>, token: Option<&str>, keys: &[String]) -> Result<(), String> {
    let present = |v: Option<&str>| v.is_some_and(|s| !s.is_empty());
    if !(present(key) && present(id) && present(token)) {
        return Err(error_frame(MSG_NO_PARAMS));
    }
    if !keys.iter().any(|k| Some(k.as_str()) == key) {
        return Err(error_frame(MSG_INVALID_KEY));
    }
    // Not peerjs-server rules (it takes any string), so they come after every check it makes:
    // a query it would refuse gets its answer. peerjs-server has no message for a malformed id;
    // of its messages, "No id, token, or key supplied" is the true one (no usable id was
    // supplied), whereas "ID is taken" would send a client off retrying other ids. The peerjs
    // client reports either ERROR as `server-error` with the message.
    if !id.is_some_and(is_valid_id) || !token.is_some_and(is_valid_token) {
        return Err(error_frame(MSG_NO_PARAMS));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        vec!["peerjs".into()]
    }

    #[test]
    fn params_are_checked_in_peerjs_server_order() {
        let none = error_frame(MSG_NO_PARAMS);
        assert_eq!(check_params(None, Some("a"), Some("t"), &keys()), Err(none.clone()));
        assert_eq!(check_params(Some("peerjs"), Some(""), Some("t"), &keys()), Err(none.clone()));
        assert_eq!(check_params(Some("peerjs"), Some("a"), None, &keys()), Err(none.clone()));
        // Missing params win over a bad key, as in peerjs-server.
        assert_eq!(check_params(Some("bad"), Some("a"), None, &keys()), Err(none.clone()));
        assert_eq!(check_params(Some("bad"), Some("a"), Some("t"), &keys()), Err(error_frame(MSG_INVALID_KEY)));
        assert_eq!(check_params(Some("peerjs"), Some("a"), Some("t"), &keys()), Ok(()));
        let long = "x".repeat(ID_MAX + 1);
        assert_eq!(check_params(Some("peerjs"), Some(&long), Some("t"), &keys()), Err(none.clone()));
        // Our id rule comes after the key check: a bad key is reported as peerjs-server would.
        assert_eq!(check_params(Some("bad"), Some("<b>"), Some("t"), &keys()), Err(error_frame(MSG_INVALID_KEY)));
        assert_eq!(check_params(Some("peerjs"), Some("<b>"), Some("t"), &keys()), Err(none.clone()));
        assert_eq!(check_params(Some("peerjs"), Some("a"), Some("t\n"), &keys()), Err(none));
    }

    #[test]
    fn ids_follow_the_peerjs_client_rule() {
        let uuid = "0b4d7a3e-5f1c-4c1e-9a7b-2f6d8e9c1a2b";
        for id in ["a", "A1", "bob x", "a_b-c d", uuid, "speaker1", &"x".repeat(ID_MAX)] {
            assert!(is_valid_id(id), "{id:?}");
        }
        let bad = [
            "",
            "-a",
            "a-",
            "a--b",
            "a _b",
            " a",
            "a ",
            "<b>x</b>",
            "a\u{0}b",
            "a\nb",
            "a\u{202E}b",
            "a\"b",
            "a'b",
            "é",
            "a.b",
            "a/b",
            "a+b",
        ];
        for id in bad {
            assert!(!is_valid_id(id), "{id:?}");
        }
        assert!(!is_valid_id(&"x".repeat(ID_MAX + 1)));
    }

    #[test]
    fn tokens_are_bounded_printable_ascii() {
        for t in ["t", "tok+plus", "a b", "~!@#$%^&*()", &"t".repeat(TOKEN_MAX)] {
            assert!(is_valid_token(t), "{t:?}");
        }
        for t in ["", "a\nb", "a\u{0}b", "\u{7F}", "é", "a\u{202E}b", &"t".repeat(TOKEN_MAX + 1)] {
            assert!(!is_valid_token(t), "{t:?}");
        }
    }

    #[test]
    fn message_types_spell_as_on_the_wire() {
        for t in MsgType::ALL {
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.as_str()));
            assert_eq!(MsgType::parse(t.as_str()), Some(t));
        }
        assert_eq!(MsgType::parse("offer"), None, "types are case-sensitive, as in peerjs-server");
        assert_eq!(HEARTBEAT_FRAME, serde_json::to_string(&PeerJsFrame::bare(MsgType::Heartbeat)).unwrap());
    }

    #[test]
    fn frames_are_byte_exact() {
        assert_eq!(open_frame(), r#"{"type":"OPEN"}"#);
        assert_eq!(id_taken_frame(), r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#);
        assert_eq!(error_frame(MSG_INVALID_KEY), r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#);
        assert_eq!(expire_frame("b", "a"), r#"{"type":"EXPIRE","src":"b","dst":"a"}"#);
        let payload = RawValue::from_string(r#"{"sdp":{"type":"offer"}}"#.into()).unwrap();
        let out = Outgoing { kind: MsgType::Offer, src: "a", dst: "b", payload: Some(&payload) };
        assert_eq!(out.to_json(), r#"{"type":"OFFER","src":"a","dst":"b","payload":{"sdp":{"type":"offer"}}}"#);
    }
}
