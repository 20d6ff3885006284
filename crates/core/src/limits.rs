//! Every limit the server enforces, and the validation of user-supplied text.
//!
//! Limits a deployment may want to change are fields of [`Config`] (filled from `wrangler.toml`
//! vars by the shell); the rest are constants here, so that `docs/PROTOCOL.md` and the code
//! cannot disagree about a number without one of them visibly changing.

use serde_json::Value;

/// Largest text frame the server reads, in bytes. An SDP offer is 3–10 KiB; anything near this
/// size is not signalling. Larger frames get `frame-too-large` (room) or are dropped (PeerJS).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Chat messages kept per room (in SQLite and in memory) and replayed to joiners.
pub const CHAT_HISTORY: usize = 200;
/// Longest chat message, in Unicode scalar values.
pub const CHAT_MAX_CHARS: usize = 2000;
/// Longest display name after trimming, in Unicode scalar values.
pub const NAME_MAX_CHARS: usize = 32;
/// Messages waiting for one offline PeerJS id; further ones are dropped (and EXPIREd). A
/// browser's call setup is one OFFER plus a few dozen CANDIDATEs, so this leaves ample room.
pub const QUEUE_MAX_PER_DST: usize = 256;
/// Bytes waiting for one offline id: a call setup is 3–10 KiB of SDP plus ~300 B per candidate,
/// so 256 KiB holds the signalling of dozens of calls.
pub const QUEUE_MAX_BYTES_PER_DST: usize = 256 * 1024;
/// Bytes waiting for all offline ids of one object together: what abuse can make one object
/// hold, far below its 128 MiB memory.
pub const QUEUE_MAX_BYTES_TOTAL: usize = 2 * 1024 * 1024;
/// Longest PeerJS id or token accepted on the WebSocket query, in bytes. peerjs-server has no
/// limit; ours keeps attachments far below workerd's 2,048-byte cap.
pub const PEERJS_FIELD_MAX: usize = 256;

/// Token-bucket parameters: `burst` frames at once, refilled at `per_sec` frames per second.
/// `per_sec == 0` disables the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

/// Deployment settings of one Durable Object, from the vars ([`crate::settings`], where every
/// default is written).
#[derive(Clone, Debug)]
pub struct Config {
    /// Members allowed in a room at once (`ROOM_CAP`). A full mesh beyond 6 rarely holds up.
    pub room_cap: usize,
    /// PeerJS ids registered at once in one object (`PEERJS_LIMIT` for the global server,
    /// `ROOM_PEERJS_LIMIT` for a room); beyond it the PeerJS "concurrent user limit" ERROR.
    pub peerjs_limit: usize,
    /// A socket that sent nothing (not even a HEARTBEAT) for this long is closed (`ALIVE_TIMEOUT_MS`).
    pub alive_timeout_ms: u64,
    /// Age of an offline id's queue before its senders get EXPIRE (`EXPIRE_TIMEOUT_MS`).
    pub expire_timeout_ms: u64,
    /// Rate limit of room-protocol sockets (`RATE_PER_SEC`, `RATE_BURST`).
    pub room_rate: Rate,
    /// Rate limit of PeerJS sockets (`PEERJS_RATE_PER_SEC`, `PEERJS_RATE_BURST`). Generous:
    /// ICE gathering sends bursts, and the PeerJS protocol has no way to say "slow down".
    pub peerjs_rate: Rate,
    /// RTCIceServer list sent to joiners (JSON array).
    pub ice_servers: Value,
    /// A seated member whose sockets dropped keeps its seat (and its PeerJS id, for its own
    /// token) this long (`GRACE_MS`).
    pub grace_ms: u64,
    /// In a room: an unjoined room socket, or a PeerJS id nobody is seated as, lives this long
    /// (`JOIN_WINDOW_MS`).
    pub join_window_ms: u64,
    /// Sockets one client address may hold in one object (`CLIENT_SOCKET_LIMIT` in a room,
    /// `PEERJS_CLIENT_LIMIT` on the global server).
    pub client_limit: usize,
    /// True in a room: signalling is relayed only between seated members, and ids that never
    /// join are closed after the join window. False on the global PeerJS server, which keeps
    /// peerjs-server's semantics (no rooms).
    pub membership: bool,
}

/// A public STUN server: enough for most home networks; TURN is configured separately.
pub fn default_ice_servers() -> Value {
    serde_json::json!([{ "urls": "stun:stun.cloudflare.com:3478" }])
}

/// Per-socket token bucket. Time is passed in (milliseconds) so the core stays deterministic.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    /// Tokens scaled by 1000 to count refills per millisecond without floats.
    milli_tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(rate: Rate, now_ms: u64) -> Self {
        TokenBucket { rate, milli_tokens: u64::from(rate.burst) * 1000, last_ms: now_ms }
    }

    /// Takes one token; false when the frame must be refused.
    pub fn take(&mut self, now_ms: u64) -> bool {
        if self.rate.per_sec == 0 {
            return true;
        }
        let cap = u64::from(self.rate.burst.max(1)) * 1000;
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(self.rate.per_sec)).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Why a name or chat text was refused; the message goes into the error frame.
pub type Invalid = String;

/// Characters that would let one user rearrange how others see text: C0/C1 controls and the
/// bidirectional overrides/isolates (the "Trojan Source" set). Zero-width joiners stay allowed
/// because emoji sequences need them.
fn is_forbidden(c: char, allow_newlines: bool) -> bool {
    if allow_newlines && (c == '\n' || c == '\t') {
        return false;
    }
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Trims a display name and checks it: 1–[`NAME_MAX_CHARS`] visible characters, no control characters.
/// HTML is allowed and stays literal: names travel as JSON strings and clients render text.
pub fn validate_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name must have at least one visible character".into());
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(format!("name is longer than {NAME_MAX_CHARS} characters"));
    }
    if name.chars().any(|c| is_forbidden(c, false)) {
        return Err("name contains control characters".into());
    }
    Ok(name.to_owned())
}

/// Checks a chat message: 1–[`CHAT_MAX_CHARS`] characters with at least one visible one; newlines and tabs
/// are kept, other control characters refused. The text is stored exactly as sent.
pub fn validate_text(text: &str) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err("message is empty".into());
    }
    if text.chars().count() > CHAT_MAX_CHARS {
        return Err(format!("message is longer than {CHAT_MAX_CHARS} characters"));
    }
    if text.chars().any(|c| is_forbidden(c, true)) {
        return Err("message contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let mut b = TokenBucket::new(Rate { per_sec: 10, burst: 20 }, 0);
        assert!((0..20).all(|_| b.take(0)));
        assert!(!b.take(0));
        assert!(!b.take(99), "0.99 tokens after 99 ms");
        assert!(b.take(100), "one token after 100 ms at 10/s");
        assert!(!b.take(100));
        // A long pause refills only up to the burst.
        assert_eq!((0..50).filter(|_| b.take(100_000)).count(), 20);
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let mut b = TokenBucket::new(Rate { per_sec: 0, burst: 0 }, 0);
        assert!((0..10_000).all(|_| b.take(0)));
    }

    #[test]
    fn clock_going_backwards_does_not_mint_tokens() {
        let mut b = TokenBucket::new(Rate { per_sec: 10, burst: 1 }, 1000);
        assert!(b.take(1000));
        assert!(!b.take(500));
        assert!(!b.take(1050));
        assert!(b.take(1100));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Ada  ").unwrap(), "Ada");
        assert!(validate_name("   ").is_err());
        assert!(validate_name("").is_err());
        assert_eq!(validate_name(&"é".repeat(32)).unwrap().chars().count(), 32);
        assert!(validate_name(&"é".repeat(33)).is_err());
        assert!(validate_name("a\u{0007}b").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("evil\u{202E}txt").is_err());
        assert_eq!(validate_name("<b>x</b>").unwrap(), "<b>x</b>");
        assert_eq!(validate_name("👩‍💻").unwrap(), "👩‍💻");
    }

    #[test]
    fn texts_keep_newlines_and_refuse_controls() {
        assert!(validate_text("hi\nthere\tyou").is_ok());
        assert!(validate_text(" \n ").is_err());
        assert!(validate_text("").is_err());
        assert!(validate_text(&"x".repeat(2000)).is_ok());
        assert!(validate_text(&"x".repeat(2001)).is_err());
        assert!(validate_text("bell\u{0007}").is_err());
        assert!(validate_text("a\u{2066}b").is_err());
        assert!(validate_text("<img src=x onerror=alert(1)>").is_ok());
    }
}
