//! A room's seats in its Durable Object's SQLite storage. A seat outlives its sockets by the
//! grace period, and a restart or a deploy drops every socket (and with them every attachment),
//! so the seat itself must be stored for its member to take it back. One row per member: a room
//! holds at most `ROOM_CAP` of them, written on join and on a presence change, deleted when the
//! seat ends. Plain columns read raw: no JSON or serde code in the bundle for them.

use edge_meet_core::hub::SeatRecord;
use edge_meet_core::protocol::{MediaState, Member, Presence};
use worker::{console_error, SqlStorageValue, State};

const CREATE_SEATS: &str = "CREATE TABLE IF NOT EXISTS seats (peer_id TEXT PRIMARY KEY, token TEXT NOT NULL,
    name TEXT NOT NULL, joined_at INTEGER NOT NULL, ord INTEGER NOT NULL, away_since INTEGER, media INTEGER NOT NULL)";

/// Every stored seat; empty if none or unreadable (logged).
pub fn load(state: &State) -> Vec<SeatRecord> {
    let sql = state.storage().sql();
    let cursor = sql
        .exec(CREATE_SEATS, None)
        .and_then(|_| sql.exec("SELECT peer_id, token, name, joined_at, ord, away_since, media FROM seats", None));
    let cursor = match cursor {
        Ok(c) => c,
        Err(e) => {
            console_error!("seats not loaded: {e}");
            return Vec::new();
        }
    };
    cursor.raw().filter_map(|row| seat(&row.ok()?)).collect()
}

fn seat(row: &[SqlStorageValue]) -> Option<SeatRecord> {
    let [SqlStorageValue::String(peer_id), SqlStorageValue::String(token), SqlStorageValue::String(name), joined_at, ord, away, media] =
        row
    else {
        return None;
    };
    let bits = int(media)?;
    let media = MediaState { mic: bits & 1 != 0, camera: bits & 2 != 0, screen: bits & 4 != 0, hand: bits & 8 != 0 };
    let away_since = int(away);
    let presence = if away_since.is_some() { Presence::Reconnecting } else { Presence::Present };
    let member = Member { peer_id: peer_id.clone(), name: name.clone(), media, joined_at: int(joined_at)?, presence };
    Some(SeatRecord { member, token: token.clone(), order: int(ord)?, away_since })
}

/// An INTEGER column as it reaches wasm (a JS number, so possibly a float).
fn int(v: &SqlStorageValue) -> Option<u64> {
    match v {
        SqlStorageValue::Integer(i) => u64::try_from(*i).ok(),
        SqlStorageValue::Float(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

pub fn save(state: &State, seat: &SeatRecord) -> worker::Result<()> {
    let m = &seat.member;
    let media = i64::from(m.media.mic)
        | i64::from(m.media.camera) << 1
        | i64::from(m.media.screen) << 2
        | i64::from(m.media.hand) << 3;
    let away = match seat.away_since {
        Some(t) => SqlStorageValue::try_from_i64(t as i64)?,
        None => SqlStorageValue::Null,
    };
    let sql = state.storage().sql();
    sql.exec(CREATE_SEATS, None)?;
    sql.exec(
        "INSERT OR REPLACE INTO seats (peer_id, token, name, joined_at, ord, away_since, media) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            m.peer_id.as_str().into(),
            seat.token.as_str().into(),
            m.name.as_str().into(),
            SqlStorageValue::try_from_i64(m.joined_at as i64)?,
            SqlStorageValue::try_from_i64(seat.order as i64)?,
            away,
            SqlStorageValue::from(media),
        ],
    )?;
    Ok(())
}

pub fn drop_seat(state: &State, peer_id: &str) -> worker::Result<()> {
    let sql = state.storage().sql();
    sql.exec(CREATE_SEATS, None)?;
    sql.exec("DELETE FROM seats WHERE peer_id = ?", vec![peer_id.into()])?;
    Ok(())
}
