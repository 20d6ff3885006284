//! Every limit the server enforces, and the validation of user-supplied text.
//!
//! Limits a deployment may want to change are fields of [`Config`] (filled from `wrangler.toml`
//! vars by the shell); the rest are constants here, so that `docs/PROTOCOL.md` and the code
//! cannot disagree about a number without one of them visibly changing.

use serde_json::Value;

// The text rules live in their own file (their Unicode tables are long); re-exported so that
// `limits::validate_name` stays the one path the hub uses.
#[path = "text.rs"]
mod text;
pub use text::{is_visible, validate_name, validate_text, Invalid};

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
        let refill = elapsed.saturating_mul(u64::from(self.rate.per_sec));
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
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
}
