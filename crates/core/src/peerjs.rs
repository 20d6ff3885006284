//! The PeerJS server wire protocol (peerjs-server 1.0.2, as the unmodified `peerjs` 1.5.x
//! client expects it): message shapes, the exact error strings, and the per-id offline queues.
//!
//! Registration and relay rules live in [`crate::hub`], which owns the sockets; this
//! module is the vocabulary and the queue bookkeeping.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;

use crate::limits::{PEERJS_FIELD_MAX, QUEUE_MAX_PER_DST, QUEUE_MAX_TOTAL};

/// Exact strings of peerjs-server (`src/enums.ts`); clients show them to users as-is.
pub const MSG_NO_PARAMS: &str = "No id, token, or key supplied to websocket server";
pub const MSG_INVALID_KEY: &str = "Invalid key provided";
pub const MSG_LIMIT: &str = "Server has reached its concurrent user limit";
pub const MSG_ID_TAKEN: &str = "ID is taken";

/// The types the server relays between peers. Everything else a client sends (other than
/// HEARTBEAT) is ignored, as peerjs-server does.
pub const RELAYED: &[&str] = &["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"];

/// A PeerJS frame in either direction, owned. Tests and the load generator use this; the
/// server's relay path uses the borrowed [`Incoming`]/[`Outgoing`] to avoid copying payloads.
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
    pub kind: &'a str,
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

// Fix (core tests): `serde_json::json!` sorts keys (no `preserve_order`), which gave
// `{"payload":…,"type":…}`; peerjs-server sends `type` first, so these use an ordered struct.
#[derive(Serialize)]
struct MsgFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    payload: MsgPayload<'a>,
}

#[derive(Serialize)]
struct MsgPayload<'a> {
    msg: &'a str,
}

fn msg_frame(kind: &str, msg: &str) -> String {
    serde_json::to_string(&MsgFrame { kind, payload: MsgPayload { msg } }).unwrap_or_default()
}

pub fn error_frame(msg: &str) -> String {
    msg_frame("ERROR", msg)
}

pub fn id_taken_frame() -> String {
    msg_frame("ID-TAKEN", MSG_ID_TAKEN)
}

/// The server-made EXPIRE: "`unreachable` never came online for your messages".
pub fn expire_frame(unreachable: &str, sender: &str) -> String {
    Outgoing { kind: "EXPIRE", src: unreachable, dst: sender, payload: None }.to_json()
}

/// The WebSocket query checks peerjs-server makes before looking at the registry, in its
/// order. `Err` carries the ERROR frame to send before closing. `keys` are the accepted API keys.
pub fn check_params(key: Option<&str>, id: Option<&str>, token: Option<&str>, keys: &[String]) -> Result<(), String> {
    let present = |v: Option<&str>| v.is_some_and(|s| !s.is_empty());
    if !(present(key) && present(id) && present(token)) {
        return Err(error_frame(MSG_NO_PARAMS));
    }
    if !keys.iter().any(|k| Some(k.as_str()) == key) {
        return Err(error_frame(MSG_INVALID_KEY));
    }
    // Not a peerjs-server rule: ids and tokens live in socket attachments (2 KiB cap), so
    // absurd lengths are refused with the same message a missing one gets.
    if id.map_or(0, str::len) > PEERJS_FIELD_MAX || token.map_or(0, str::len) > PEERJS_FIELD_MAX {
        return Err(error_frame(MSG_NO_PARAMS));
    }
    Ok(())
}

/// Messages waiting for one offline id. The age of a queue runs from its first message, as in
/// peerjs-server, so EXPIRE comes `expire_timeout` after the first undelivered message.
#[derive(Debug)]
pub struct Queue {
    pub created_at: u64,
    /// (sender id, frame ready to send)
    pub frames: Vec<(String, String)>,
}

/// All offline queues of one object, bounded per destination and in total.
#[derive(Debug, Default)]
pub struct Queues {
    by_dst: HashMap<String, Queue>,
    total: usize,
}

impl Queues {
    /// Queues `frame` from `src` for `dst`. Returns the new queue's expiry deadline when this
    /// created a queue (the caller schedules an alarm), `None` otherwise. Over a bound the frame
    /// is dropped: an id that never comes online cannot make the object grow without limit.
    pub fn push(&mut self, dst: &str, src: &str, frame: String, now: u64, expire_ms: u64) -> Option<u64> {
        if self.total >= QUEUE_MAX_TOTAL {
            return None;
        }
        let created = !self.by_dst.contains_key(dst);
        let q = self.by_dst.entry(dst.to_owned()).or_insert_with(|| Queue { created_at: now, frames: Vec::new() });
        if q.frames.len() >= QUEUE_MAX_PER_DST {
            return None;
        }
        q.frames.push((src.to_owned(), frame));
        self.total += 1;
        created.then_some(now + expire_ms)
    }

    /// Takes the queue of `dst` for delivery.
    pub fn take(&mut self, dst: &str) -> Option<Queue> {
        let q = self.by_dst.remove(dst)?;
        self.total -= q.frames.len();
        Some(q)
    }

    /// Removes every queue at least `expire_ms` old; returns `(dst, distinct senders in first-seen order)`.
    pub fn expire(&mut self, now: u64, expire_ms: u64) -> Vec<(String, Vec<String>)> {
        let due: Vec<String> =
            self.by_dst.iter().filter(|(_, q)| q.created_at + expire_ms <= now).map(|(dst, _)| dst.clone()).collect();
        let mut out = Vec::with_capacity(due.len());
        for dst in due {
            if let Some(q) = self.take(&dst) {
                let mut senders: Vec<String> = Vec::new();
                for (src, _) in q.frames {
                    if !senders.contains(&src) {
                        senders.push(src);
                    }
                }
                out.push((dst, senders));
            }
        }
        out.sort(); // deterministic order for tests and logs
        out
    }

    pub fn next_deadline(&self, expire_ms: u64) -> Option<u64> {
        self.by_dst.values().map(|q| q.created_at + expire_ms).min()
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
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
        let long = "x".repeat(PEERJS_FIELD_MAX + 1);
        assert_eq!(check_params(Some("peerjs"), Some(&long), Some("t"), &keys()), Err(none));
    }

    #[test]
    fn frames_are_byte_exact() {
        assert_eq!(open_frame(), r#"{"type":"OPEN"}"#);
        assert_eq!(id_taken_frame(), r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#);
        assert_eq!(error_frame(MSG_INVALID_KEY), r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#);
        assert_eq!(expire_frame("b", "a"), r#"{"type":"EXPIRE","src":"b","dst":"a"}"#);
        let payload = RawValue::from_string(r#"{"sdp":{"type":"offer"}}"#.into()).unwrap();
        let out = Outgoing { kind: "OFFER", src: "a", dst: "b", payload: Some(&payload) };
        assert_eq!(out.to_json(), r#"{"type":"OFFER","src":"a","dst":"b","payload":{"sdp":{"type":"offer"}}}"#);
    }

    #[test]
    fn queue_age_runs_from_first_message_and_senders_are_distinct() {
        let mut q = Queues::default();
        assert_eq!(q.push("b", "a", "1".into(), 1000, 5000), Some(6000));
        assert_eq!(q.push("b", "c", "2".into(), 3000, 5000), None);
        assert_eq!(q.push("b", "a", "3".into(), 4000, 5000), None);
        assert_eq!(q.next_deadline(5000), Some(6000));
        assert!(q.expire(5999, 5000).is_empty());
        assert_eq!(q.expire(6000, 5000), vec![("b".to_string(), vec!["a".to_string(), "c".to_string()])]);
        assert!(q.is_empty());
    }

    #[test]
    fn queues_are_bounded() {
        let mut q = Queues::default();
        for i in 0..QUEUE_MAX_PER_DST + 10 {
            q.push("b", "a", i.to_string(), 0, 5000);
        }
        assert_eq!(q.len(), QUEUE_MAX_PER_DST);
        let mut i = 0;
        while q.len() < QUEUE_MAX_TOTAL {
            q.push(&format!("d{i}"), "a", String::new(), 0, 5000);
            i += 1;
        }
        assert_eq!(q.push("new", "a", String::new(), 0, 5000), None);
        assert_eq!(q.len(), QUEUE_MAX_TOTAL);
        let taken = q.take("b").unwrap();
        assert_eq!(taken.frames.len(), QUEUE_MAX_PER_DST);
        assert_eq!(q.len(), QUEUE_MAX_TOTAL - QUEUE_MAX_PER_DST);
    }
}
