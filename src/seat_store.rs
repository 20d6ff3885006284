//! A room's seats in its Durable Object's SQLite storage. A seat outlives its sockets by the
//! grace period, and a restart or a deploy drops every socket (and with them every attachment),
//! so the seat itself must be stored for its member to take it back. One row per member: a room
//! holds at most `ROOM_CAP` of them, written on join and deleted when the seat ends.

use edge_meet_core::hub::SeatRecord;
use worker::{console_error, State};

const CREATE_SEATS: &str = "CREATE TABLE IF NOT EXISTS seats (peer_id TEXT PRIMARY KEY, record TEXT NOT NULL)";

#[derive(serde::Deserialize)]
struct SeatRow {
    record: String,
}

/// Every stored seat; empty if none or unreadable (logged).
pub fn load(state: &State) -> Vec<SeatRecord> {
    let sql = state.storage().sql();
    let rows =
        sql.exec(CREATE_SEATS, None).and_then(|_| sql.exec("SELECT record FROM seats", None)?.to_array::<SeatRow>());
    match rows {
        Ok(rows) => rows.into_iter().filter_map(|r| serde_json::from_str(&r.record).ok()).collect(),
        Err(e) => {
            console_error!("seats not loaded: {e}");
            Vec::new()
        }
    }
}

pub fn save(state: &State, seat: &SeatRecord) -> worker::Result<()> {
    let sql = state.storage().sql();
    let record = serde_json::to_string(seat).map_err(|e| worker::Error::RustError(e.to_string()))?;
    sql.exec(CREATE_SEATS, None)?;
    sql.exec(
        "INSERT OR REPLACE INTO seats (peer_id, record) VALUES (?, ?)",
        vec![seat.member.peer_id.as_str().into(), record.as_str().into()],
    )?;
    Ok(())
}

pub fn drop_seat(state: &State, peer_id: &str) -> worker::Result<()> {
    let sql = state.storage().sql();
    sql.exec(CREATE_SEATS, None)?;
    sql.exec("DELETE FROM seats WHERE peer_id = ?", vec![peer_id.into()])?;
    Ok(())
}
