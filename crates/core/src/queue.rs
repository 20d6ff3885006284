//! Offline queues: PeerJS messages waiting for an id that is not connected, as peerjs-server
//! keeps them (`realm.messageQueues`), with bounds it does not have.

use std::collections::HashMap;

use crate::limits::{QUEUE_MAX_BYTES_PER_DST, QUEUE_MAX_BYTES_TOTAL, QUEUE_MAX_PER_DST};

/// Messages waiting for one offline id. The age of a queue runs from its first message, as in
/// peerjs-server, so EXPIRE comes `expire_timeout` after the first undelivered message.
#[derive(Debug)]
pub struct Queue {
    pub created_at: u64,
    /// (sender id, frame ready to send)
    pub frames: Vec<(String, String)>,
    /// Bytes of `frames` (ids and frame text).
    bytes: usize,
}

/// What [`Queues::push`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; `Some(deadline)` when this started a queue (the caller schedules an alarm).
    Queued(Option<u64>),
    /// Over a bound: dropped, and the caller owes the sender an EXPIRE.
    Dropped,
}

/// All offline queues of one object, bounded per destination and in total, by count and bytes.
#[derive(Debug, Default)]
pub struct Queues {
    by_dst: HashMap<String, Queue>,
    total: usize,
    bytes: usize,
}

impl Queues {
    /// Queues `frame` from `src` for `dst`. Over a bound the frame is dropped before anything
    /// is copied: an id that never comes online cannot make the object grow without limit.
    pub fn push(&mut self, dst: &str, src: &str, frame: String, now: u64, expire_ms: u64) -> Pushed {
        let size = frame.len().saturating_add(src.len());
        if self.bytes.saturating_add(size) > QUEUE_MAX_BYTES_TOTAL {
            return Pushed::Dropped;
        }
        if let Some(q) = self.by_dst.get(dst) {
            if q.frames.len() >= QUEUE_MAX_PER_DST || q.bytes.saturating_add(size) > QUEUE_MAX_BYTES_PER_DST {
                return Pushed::Dropped;
            }
        } else if size > QUEUE_MAX_BYTES_PER_DST {
            return Pushed::Dropped;
        }
        let created = !self.by_dst.contains_key(dst);
        let q = self.by_dst.entry(dst.to_owned()).or_insert_with(|| Queue {
            created_at: now,
            frames: Vec::new(),
            bytes: 0,
        });
        q.frames.push((src.to_owned(), frame));
        q.bytes += size;
        self.total += 1;
        self.bytes += size;
        Pushed::Queued(created.then_some(now.saturating_add(expire_ms)))
    }

    /// Takes the queue of `dst` for delivery.
    pub fn take(&mut self, dst: &str) -> Option<Queue> {
        let q = self.by_dst.remove(dst)?;
        self.total -= q.frames.len();
        self.bytes -= q.bytes;
        Some(q)
    }

    /// Removes every queue at least `expire_ms` old; returns `(dst, distinct senders in first-seen order)`.
    pub fn expire(&mut self, now: u64, expire_ms: u64) -> Vec<(String, Vec<String>)> {
        let due: Vec<String> = self
            .by_dst
            .iter()
            .filter(|(_, q)| q.created_at.saturating_add(expire_ms) <= now)
            .map(|(dst, _)| dst.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for dst in due {
            if let Some(q) = self.take(&dst) {
                out.push((dst, senders(&q)));
            }
        }
        out.sort(); // deterministic order for tests and logs
        out
    }

    pub fn next_deadline(&self, expire_ms: u64) -> Option<u64> {
        self.by_dst.values().map(|q| q.created_at.saturating_add(expire_ms)).min()
    }

    pub fn len(&self) -> usize {
        self.total
    }

    /// Bytes queued in the whole object.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The distinct senders of a queue, in first-seen order.
pub fn senders(q: &Queue) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (src, _) in &q.frames {
        if !out.contains(src) {
            out.push(src.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_age_runs_from_first_message_and_senders_are_distinct() {
        let mut q = Queues::default();
        assert_eq!(q.push("b", "a", "1".into(), 1000, 5000), Pushed::Queued(Some(6000)));
        assert_eq!(q.push("b", "c", "2".into(), 3000, 5000), Pushed::Queued(None));
        assert_eq!(q.push("b", "a", "3".into(), 4000, 5000), Pushed::Queued(None));
        assert_eq!(q.next_deadline(5000), Some(6000));
        assert!(q.expire(5999, 5000).is_empty());
        assert_eq!(q.expire(6000, 5000), vec![("b".to_string(), vec!["a".to_string(), "c".to_string()])]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn queues_are_bounded_by_count() {
        let mut q = Queues::default();
        for i in 0..QUEUE_MAX_PER_DST {
            assert!(matches!(q.push("b", "a", i.to_string(), 0, 5000), Pushed::Queued(_)));
        }
        assert_eq!(q.push("b", "a", "x".into(), 0, 5000), Pushed::Dropped);
        assert_eq!(q.len(), QUEUE_MAX_PER_DST);
    }

    #[test]
    fn queues_are_bounded_by_bytes_per_id_and_per_object() {
        let mut q = Queues::default();
        let frame = |kib: usize| "x".repeat(kib * 1024 - 1); // plus the 1-byte sender id
        for _ in 0..4 {
            assert!(matches!(q.push("b", "a", frame(64), 0, 5000), Pushed::Queued(_)));
        }
        assert_eq!(q.bytes(), QUEUE_MAX_BYTES_PER_DST);
        assert_eq!(q.push("b", "a", "y".into(), 0, 5000), Pushed::Dropped, "256 KiB per id");
        let mut i = 0;
        while q.bytes() < QUEUE_MAX_BYTES_TOTAL {
            assert!(matches!(q.push(&format!("d{i}"), "a", frame(64), 0, 5000), Pushed::Queued(_)));
            i += 1;
        }
        assert_eq!(q.bytes(), QUEUE_MAX_BYTES_TOTAL);
        assert_eq!(q.push("new", "a", "y".into(), 0, 5000), Pushed::Dropped, "2 MiB per object");
        let taken = q.take("b").unwrap();
        assert_eq!(taken.frames.len(), 4);
        assert_eq!(q.bytes(), QUEUE_MAX_BYTES_TOTAL - QUEUE_MAX_BYTES_PER_DST);
        assert_eq!(q.push("huge", "a", frame(257), 0, 5000), Pushed::Dropped, "one frame over the per-id budget");
    }

    #[test]
    fn deadlines_saturate() {
        let mut q = Queues::default();
        assert_eq!(q.push("b", "a", "1".into(), u64::MAX - 1, 5000), Pushed::Queued(Some(u64::MAX)));
        assert!(q.expire(u64::MAX - 1, 5000).is_empty());
    }
}
