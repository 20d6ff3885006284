//! Every wire word of the room protocol in one JSON document, for clients written in another
//! language. `tests/vocabulary.json` holds it; a test here fails when the file is stale
//! (`EDGE_MEET_WRITE_VOCABULARY=1 cargo test -p edge-meet-core vocabulary` rewrites it), and a node
//! test fails when the meeting app's `public/js/protocol.js` disagrees with the file.

use serde_json::{json, Value};

use crate::hub::close;
use crate::limits::{CHAT_MAX_CHARS, NAME_MAX_CHARS};
use crate::peerjs::HEARTBEAT_FRAME;
use crate::protocol::{ClientFrame, ErrorCode, LeaveReason, Presence, ServerFrame, ROOM_ID_PATTERN};

/// The vocabulary document (see the module comment).
pub fn vocabulary() -> Value {
    let names = |v: Vec<Value>| Value::Array(v);
    json!({
        "clientFrames": ClientFrame::TYPES,
        "serverFrames": ServerFrame::TYPES,
        "errorCodes": names(ErrorCode::ALL.iter().map(|c| json!(c)).collect()),
        "leaveReasons": names(LeaveReason::ALL.iter().map(|r| json!(r)).collect()),
        "presence": names(Presence::ALL.iter().map(|p| json!(p)).collect()),
        "closeCodes": {
            "normal": close::NORMAL,
            "replaced": close::REPLACED,
            "aliveTimeout": close::ALIVE_TIMEOUT,
            "joinWindow": close::JOIN_WINDOW,
            "tooBig": close::TOO_BIG,
        },
        "heartbeat": HEARTBEAT_FRAME,
        "roomIdPattern": ROOM_ID_PATTERN,
        "limits": { "chatMaxChars": CHAT_MAX_CHARS, "nameMaxChars": NAME_MAX_CHARS },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChatRecord, MediaPatch, MediaState, Member, Presence, RoomLimits};

    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vocabulary.json");

    #[test]
    fn vocabulary_json_is_current() {
        let want = vocabulary();
        if std::env::var("EDGE_MEET_WRITE_VOCABULARY").is_ok_and(|v| v == "1") {
            let text = serde_json::to_string_pretty(&want).unwrap_or_default() + "\n";
            std::fs::write(FILE, text).expect("write tests/vocabulary.json");
        }
        let have: Value = serde_json::from_str(&std::fs::read_to_string(FILE).expect("tests/vocabulary.json"))
            .expect("tests/vocabulary.json is JSON");
        assert_eq!(
            have, want,
            "tests/vocabulary.json is stale: EDGE_MEET_WRITE_VOCABULARY=1 cargo test -p edge-meet-core vocabulary"
        );
    }

    fn type_of(v: Value) -> String {
        v["type"].as_str().unwrap_or_default().to_owned()
    }

    /// One frame of every variant; the exhaustive match makes a new variant without an example
    /// fail to compile.
    #[test]
    fn client_frame_types_are_the_serde_names() {
        let examples = [
            ClientFrame::Join { peer_id: "p".into(), token: "t".into(), name: "n".into(), media: None },
            ClientFrame::Chat { text: "x".into() },
            ClientFrame::Media(MediaPatch::default()),
            ClientFrame::Leave,
            ClientFrame::Heartbeat,
        ];
        for f in &examples {
            match f {
                ClientFrame::Join { .. }
                | ClientFrame::Chat { .. }
                | ClientFrame::Media(_)
                | ClientFrame::Leave
                | ClientFrame::Heartbeat => {}
            }
        }
        let names: Vec<String> = examples.iter().map(|f| type_of(serde_json::to_value(f).unwrap())).collect();
        assert_eq!(names, ClientFrame::TYPES);
    }

    #[test]
    fn server_frame_types_are_the_serde_names() {
        let m = Member {
            peer_id: "p".into(),
            name: "n".into(),
            media: MediaState::default(),
            joined_at: 0,
            presence: Presence::Present,
        };
        let rec = ChatRecord { id: 1, peer_id: "p".into(), name: "n".into(), text: "t".into(), ts: 0 };
        let limits = RoomLimits { max_peers: 1, chat_max_chars: 1, name_max_chars: 1 };
        let examples = [
            ServerFrame::Welcome {
                me: m.clone(),
                peers: vec![],
                chat: vec![],
                ice_servers: json!([]),
                limits,
                resumed: false,
            },
            ServerFrame::PeerJoined { peer: m },
            ServerFrame::PeerPresence { peer_id: "p".into(), presence: Presence::Reconnecting },
            ServerFrame::PeerLeft { peer_id: "p".into(), reason: LeaveReason::Leave },
            ServerFrame::Left { reason: LeaveReason::Leave },
            ServerFrame::Chat { message: rec },
            ServerFrame::PeerMedia { peer_id: "p".into(), media: MediaState::default() },
            ServerFrame::error(ErrorCode::Internal, "x"),
        ];
        for f in &examples {
            match f {
                ServerFrame::Welcome { .. }
                | ServerFrame::PeerJoined { .. }
                | ServerFrame::PeerPresence { .. }
                | ServerFrame::PeerLeft { .. }
                | ServerFrame::Left { .. }
                | ServerFrame::Chat { .. }
                | ServerFrame::PeerMedia { .. }
                | ServerFrame::Error { .. } => {}
            }
        }
        let names: Vec<String> = examples.iter().map(|f| type_of(serde_json::to_value(f).unwrap())).collect();
        assert_eq!(names, ServerFrame::TYPES);
    }

    #[test]
    fn enum_lists_are_complete() {
        for c in ErrorCode::ALL {
            match c {
                ErrorCode::BinaryUnsupported
                | ErrorCode::FrameTooLarge
                | ErrorCode::BadJson
                | ErrorCode::UnknownType
                | ErrorCode::BadRequest
                | ErrorCode::RateLimited
                | ErrorCode::NotJoined
                | ErrorCode::AlreadyJoined
                | ErrorCode::UnknownPeer
                | ErrorCode::BadToken
                | ErrorCode::InvalidName
                | ErrorCode::InvalidText
                | ErrorCode::RoomFull
                | ErrorCode::Internal => {}
            }
        }
        // Count the variants by an exhaustive index: a new one must be added to `ALL`.
        let index = |c: &ErrorCode| *c as usize;
        let mut seen: Vec<usize> = ErrorCode::ALL.iter().map(index).collect();
        seen.dedup();
        assert_eq!(seen, (0..=ErrorCode::Internal as usize).collect::<Vec<_>>());
        let reasons: Vec<usize> = LeaveReason::ALL.iter().map(|r| *r as usize).collect();
        assert_eq!(reasons, (0..=LeaveReason::Replaced as usize).collect::<Vec<_>>());
    }

    #[test]
    fn room_id_pattern_matches_the_rule() {
        assert_eq!(ROOM_ID_PATTERN, format!("^[A-Za-z0-9_-]{{1,{}}}$", crate::protocol::ROOM_ID_MAX));
    }
}
