//! Offline queues: PeerJS messages waiting for an id that is not connected, as peerjs-server
//! keeps them (`realm.messageQueues`), with bounds it does not have.

use std::collections::HashMap;

use crate::limits::{QUEUE_MAX_PER_DST, QUEUE_MAX_TOTAL};

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
