//! A room's chat history in its Durable Object's SQLite storage. Writes are synchronous and the
//! output gate holds every outgoing frame of the event until they are durable, so a frame sent
//! after a write can never show what storage lacks.

use edge_meet_core::limits::CHAT_HISTORY;
use edge_meet_core::protocol::ChatRecord;
use worker::{console_error, SqlStorageValue, State};

const CREATE_CHAT: &str = "CREATE TABLE IF NOT EXISTS chat (
    id INTEGER PRIMARY KEY, peer_id TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL)";

/// Chat rows deleted in one batch (see [`store`]).
const TRIM_EVERY: u64 = 50;

#[derive(serde::Deserialize)]
struct ChatRow {
    id: f64,
    peer_id: String,
    name: String,
    text: String,
    ts: f64,
}

/// The newest [`CHAT_HISTORY`] records (newest first); empty if none or unreadable (logged).
pub fn load(state: &State) -> Vec<ChatRecord> {
    let sql = state.storage().sql();
    let rows = sql.exec(CREATE_CHAT, None).and_then(|_| {
        sql.exec(
            "SELECT id, peer_id, name, text, ts FROM chat ORDER BY id DESC LIMIT ?",
            vec![SqlStorageValue::from(CHAT_HISTORY as i64)],
        )?
        .to_array::<ChatRow>()
    });
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|r| ChatRecord { id: r.id as u64, peer_id: r.peer_id, name: r.name, text: r.text, ts: r.ts as u64 })
            .collect(),
        Err(e) => {
            console_error!("chat history not loaded: {e}");
            Vec::new()
        }
    }
}

/// Stores one record and trims the table to the history window.
pub fn store(state: &State, r: &ChatRecord) -> worker::Result<()> {
    let sql = state.storage().sql();
    sql.exec(
        "INSERT INTO chat (id, peer_id, name, text, ts) VALUES (?, ?, ?, ?, ?)",
        vec![
            SqlStorageValue::try_from_i64(r.id as i64)?,
            r.peer_id.as_str().into(),
            r.name.as_str().into(),
            r.text.as_str().into(),
            SqlStorageValue::try_from_i64(r.ts as i64)?,
        ],
    )?;
    // Trimming is batched: the table holds at most CHAT_HISTORY + TRIM_EVERY rows, and reads
    // take the newest CHAT_HISTORY. One statement per message instead of two.
    if r.id.is_multiple_of(TRIM_EVERY) {
        let keep_after = r.id.saturating_sub(CHAT_HISTORY as u64) as i64;
        sql.exec("DELETE FROM chat WHERE id <= ?", vec![SqlStorageValue::from(keep_after)])?;
    }
    Ok(())
}
