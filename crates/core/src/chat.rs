//! Room chat: the in-memory window of recent messages and the rules that make ids and
//! timestamps trustworthy. Storage is the shell's job; this decides what a record is.

use std::collections::VecDeque;

use crate::limits::CHAT_HISTORY;
use crate::protocol::ChatRecord;

#[derive(Debug, Default)]
pub struct ChatLog {
    recent: VecDeque<ChatRecord>,
    last_id: u64,
    last_ts: u64,
}

impl ChatLog {
    /// Rebuilds the window from stored records (any order; the newest `CHAT_HISTORY` are kept).
    pub fn restore(mut records: Vec<ChatRecord>) -> Self {
        records.sort_by_key(|r| r.id);
        let skip = records.len().saturating_sub(CHAT_HISTORY);
        let recent: VecDeque<ChatRecord> = records.into_iter().skip(skip).collect();
        let last_id = recent.back().map_or(0, |r| r.id);
        let last_ts = recent.back().map_or(0, |r| r.ts);
        ChatLog { recent, last_id, last_ts }
    }

    /// Builds and keeps the next record. Timestamps are forced strictly increasing: clients
    /// sort and de-duplicate by them, and a wall clock may step backwards.
    pub fn append(&mut self, peer_id: &str, name: &str, text: &str, now: u64) -> ChatRecord {
        self.last_id += 1;
        self.last_ts = now.max(self.last_ts + 1);
        let record = ChatRecord {
            id: self.last_id,
            peer_id: peer_id.to_owned(),
            name: name.to_owned(),
            text: text.to_owned(),
            ts: self.last_ts,
        };
        self.recent.push_back(record.clone());
        if self.recent.len() > CHAT_HISTORY {
            self.recent.pop_front();
        }
        record
    }

    /// Forgets a record whose storage write failed, so memory never shows what disk lacks.
    /// The id is not reused: ids only promise to increase.
    pub fn forget(&mut self, id: u64) {
        self.recent.retain(|r| r.id != id);
    }

    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &ChatRecord> + ExactSizeIterator {
        self.recent.iter()
    }

    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_timestamps_strictly_increase_even_if_the_clock_steps_back() {
        let mut log = ChatLog::default();
        let a = log.append("p", "n", "1", 5000);
        let b = log.append("p", "n", "2", 5000);
        let c = log.append("p", "n", "3", 1000);
        assert_eq!((a.id, b.id, c.id), (1, 2, 3));
        assert_eq!((a.ts, b.ts, c.ts), (5000, 5001, 5002));
    }

    #[test]
    fn keeps_only_the_newest_window_and_restores_it() {
        let mut log = ChatLog::default();
        for i in 0..CHAT_HISTORY + 5 {
            log.append("p", "n", &i.to_string(), i as u64);
        }
        assert_eq!(log.len(), CHAT_HISTORY);
        assert_eq!(log.recent().next().unwrap().text, "5");
        let stored: Vec<ChatRecord> = log.recent().rev().cloned().collect();
        let mut again = ChatLog::restore(stored);
        assert_eq!(again.len(), CHAT_HISTORY);
        let next = again.append("p", "n", "x", 0);
        assert_eq!(next.id, CHAT_HISTORY as u64 + 6);
        assert!(next.ts > (CHAT_HISTORY + 4) as u64);
    }

    #[test]
    fn forget_removes_a_record() {
        let mut log = ChatLog::default();
        let a = log.append("p", "n", "1", 1);
        log.append("p", "n", "2", 2);
        log.forget(a.id);
        assert_eq!(log.recent().map(|r| r.text.as_str()).collect::<Vec<_>>(), vec!["2"]);
    }
}
