//! The scenarios. Each takes a [`Target`] (and optionally the server's root pid, to read CPU
//! time and memory of its process tree) and returns a JSON object of figures.
//!
//! Every loop here is bounded in count and in time: sends stop at a deadline, waits for
//! replies have a grace period, connection attempts have timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, sio, Flavour, Person, Res, Target, Ws};
use crate::procfs;
use crate::util::{now_us, percentile_ms, round, run_tag};

/// After the last send of a timed phase, how long replies may still arrive.
const GRACE: Duration = Duration::from_secs(5);

fn ms(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| json!(round(v, 3)))
}

/// Opens `n` sockets (or people) with at most `concurrency` opens in flight. Returns, per
/// index, the socket (or the error) and how long its open took (µs, handshake to OPEN/joined).
pub async fn open_many<T, F, Fut>(n: usize, concurrency: usize, f: F) -> Vec<(usize, Res<T>, u64)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res<T>> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let f = Arc::new(f);
    let mut set = JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let f = f.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let t0 = now_us();
            let r = f(i).await;
            (i, r, now_us() - t0)
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        if let Ok(x) = r {
            out.push(x);
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    out
}

/// Closes many sockets, a bounded number at a time.
pub async fn close_all(sockets: Vec<Ws>) {
    let mut set = JoinSet::new();
    let sem = Arc::new(Semaphore::new(256));
    for ws in sockets {
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            net::close(ws).await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// [`net::leave`] for many seats, a bounded number at a time.
async fn leave_all(seats: Vec<Ws>) {
    let mut set = JoinSet::new();
    let sem = Arc::new(Semaphore::new(256));
    for ws in seats {
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            net::leave(ws).await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// CPU seconds of the server tree, if we know its root.
fn cpu(pid: Option<u32>) -> Option<f64> {
    pid.map(procfs::tree_cpu_s)
}

// ----- relay: round trips between pairs -----------------------------------------------------------

#[derive(Clone, Debug)]
pub struct PairsParams {
    pub pairs: usize,
    pub rooms: usize,
    /// OFFER-shaped or CANDIDATE-shaped frames.
    pub kind: &'static str,
    /// Bytes per frame on the wire (client → server).
    pub size: usize,
    /// Round trips in flight per pair.
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Outcome of one timed phase over pairs: relayed frames per second (two per round trip),
/// round-trip percentiles, server CPU per relayed frame.
async fn pairs_phase(t: &Target, p: &PairsParams, pid: Option<u32>, label: &str) -> Res<Value> {
    if !t.flavour.relays() {
        return Err("not applicable: this system does not relay PeerJS signalling".into());
    }
    let tag = run_tag();
    let target = t.clone();
    let rooms = p.rooms.max(1);
    let tag2 = tag.clone();
    let label2 = label.to_owned();
    // Person 2i is pair i's caller ("a"), 2i+1 its callee ("b"); both in room i % rooms, each
    // from its own address and, on edge-meet rooms, seated (the roster relays only between
    // seated members). All of it before the measured window, which starts after the last
    // welcome: throughput, RTT and CPU are of relaying alone, as for peerjs-server and the floor.
    let opened = open_many(p.pairs * 2, 32, move |k| {
        let t = target.clone();
        let room = format!("{tag2}-{label2}-{}", (k / 2) % rooms);
        let id = format!("{tag2}{label2}{}{}", if k % 2 == 0 { "a" } else { "b" }, k / 2);
        async move { net::open_person(&t, &room, &id).await }
    })
    .await;
    let mut socks: Vec<Option<Ws>> = Vec::new();
    let mut seats: Vec<Ws> = Vec::new();
    let mut errors = 0;
    for (_, r, _) in opened {
        match r {
            Ok(person) => {
                socks.push(Some(person.signal));
                seats.extend(person.seat);
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("[loadgen] {label}: open failed: {e}");
                }
                socks.push(None);
            }
        }
    }
    if errors > 0 {
        leave_all(seats).await;
        close_all(socks.into_iter().flatten().collect()).await;
        return Err(format!("{errors} people failed to open or join"));
    }
    let start_us = now_us() + p.warmup.as_micros() as u64;
    let end_us = start_us + p.duration.as_micros() as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    // The room sockets stay open through the run (a seat whose room socket drops is
    // "reconnecting"); read so a close from the server is seen and counted.
    let seats_lost = Arc::new(AtomicU64::new(0));
    let seated = seats.len();
    let mut seat_holders = JoinSet::new();
    for ws in seats {
        seat_holders.spawn(hold_seat(ws, seats_lost.clone(), stop_rx.clone()));
    }
    let mut callers = JoinSet::new();
    let mut callees = JoinSet::new();
    for i in 0..p.pairs {
        let a = socks[2 * i].take().expect("opened");
        let b = socks[2 * i + 1].take().expect("opened");
        let a_id = format!("{tag}{label}a{i}");
        let b_id = format!("{tag}{label}b{i}");
        callees.spawn(callee(b, b_id.clone(), a_id.clone(), stop_rx.clone()));
        callers.spawn(caller(a, a_id, b_id, p.kind, p.size, p.window, start_us, end_us));
    }
    // Server CPU over exactly the measured window.
    sleep_until_us(start_us).await;
    let cpu0 = cpu(pid);
    sleep_until_us(end_us).await;
    let cpu1 = cpu(pid);
    let mut rtts: Vec<u64> = Vec::new();
    let mut done = 0u64;
    let mut sockets = Vec::new();
    while let Some(r) = callers.join_next().await {
        if let Ok((ws, samples)) = r {
            done += samples.len() as u64;
            rtts.extend(samples);
            sockets.push(ws);
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = callees.join_next().await {
        if let Ok(ws) = r {
            sockets.push(ws);
        }
    }
    let mut seats = Vec::new();
    while let Some(r) = seat_holders.join_next().await {
        if let Ok(Some(ws)) = r {
            seats.push(ws);
        }
    }
    leave_all(seats).await;
    close_all(sockets).await;
    let secs = p.duration.as_secs_f64();
    let relayed = 2 * done;
    let cpu_s = cpu0.zip(cpu1).map(|(a, b)| b - a);
    let seats_lost = seats_lost.load(Relaxed);
    if seats_lost > 0 {
        eprintln!("[loadgen] {label}: {seats_lost} room sockets closed by the server during the run");
    }
    Ok(json!({
        "pairs": p.pairs, "rooms": rooms, "frame": p.kind, "bytes": p.size, "window": p.window,
        "seated": seated, "seats_lost": seats_lost,
        "seconds": secs, "round_trips": done,
        "throughput_msgs_s": round(relayed as f64 / secs, 1),
        "rtt_p50_ms": ms(percentile_ms(&mut rtts, 50.0)),
        "rtt_p99_ms": ms(percentile_ms(&mut rtts, 99.0)),
        "server_cpu_s": cpu_s.map(|c| round(c, 3)),
        "cpu_us_per_msg": cpu_s.filter(|_| relayed > 0).map(|c| round(c * 1e6 / relayed as f64, 2)),
    }))
}

/// Holds a seat's room socket until `stop`, discarding what it receives (roster broadcasts);
/// `None` (and one more in `lost`) if the server closed it meanwhile.
async fn hold_seat(mut ws: Ws, lost: Arc<AtomicU64>, mut stop: watch::Receiver<bool>) -> Option<Ws> {
    loop {
        tokio::select! {
            m = net::next_text(&mut ws) => {
                if !matches!(m, Ok(Some(_))) {
                    lost.fetch_add(1, Relaxed);
                    return None;
                }
            }
            _ = stop.changed() => return Some(ws),
        }
    }
}

async fn sleep_until_us(t: u64) {
    let now = now_us();
    if t > now {
        sleep(Duration::from_micros(t - now)).await;
    }
}

/// Sends timed frames to `peer` keeping `window` unanswered, until `end_us`; returns the
/// round-trip times (µs) of the echoes received inside [start_us, end_us).
#[allow(clippy::too_many_arguments)]
async fn caller(
    mut ws: Ws,
    me: String,
    peer: String,
    kind: &'static str,
    size: usize,
    window: usize,
    start_us: u64,
    end_us: u64,
) -> (Ws, Vec<u64>) {
    let mut inflight = 0usize;
    let mut seq = 0u64;
    let mut samples = Vec::new();
    let hard_stop = end_us + GRACE.as_micros() as u64;
    loop {
        let now = now_us();
        let sending = now < end_us;
        if (!sending && inflight == 0) || now > hard_stop {
            break;
        }
        tokio::select! {
            biased;
            m = net::next_text(&mut ws) => {
                let Ok(Some(text)) = m else { break };
                let Some(f) = net::read_relay(&text) else { continue };
                if f.kind != "ANSWER" || f.dst.as_deref() != Some(me.as_str()) {
                    continue; // the floor relays its room's other traffic too
                }
                let Some(t) = net::payload_time(&f.payload) else { continue };
                inflight = inflight.saturating_sub(1);
                let now = now_us();
                if now >= start_us && now < end_us {
                    samples.push(now - t);
                }
            }
            _ = std::future::ready(()), if sending && inflight < window => {
                let frame = net::relay_frame(kind, &peer, seq, now_us(), size);
                if net::send_text(&mut ws, frame).await.is_err() {
                    break;
                }
                seq += 1;
                inflight += 1;
            }
            _ = sleep(Duration::from_millis(20)), if !sending || inflight >= window => {}
        }
    }
    (ws, samples)
}

/// Answers every timed frame addressed to `me` with an ANSWER carrying the same payload.
async fn callee(mut ws: Ws, me: String, peer: String, mut stop: watch::Receiver<bool>) -> Ws {
    loop {
        tokio::select! {
            m = net::next_text(&mut ws) => {
                let Ok(Some(text)) = m else { break };
                let Some(f) = net::read_relay(&text) else { continue };
                if f.kind == "ANSWER" || f.dst.as_deref() != Some(me.as_str()) {
                    continue;
                }
                if net::send_text(&mut ws, net::echo_frame(&peer, f.payload)).await.is_err() {
                    break;
                }
            }
            _ = stop.changed() => break,
        }
    }
    ws
}

/// Two peers: a throughput phase (`window` in flight) and a latency phase (one at a time).
pub async fn relay(t: &Target, p: &PairsParams, latency_duration: Duration, pid: Option<u32>) -> Res<Value> {
    let label = format!("r{}", p.size);
    let tput = pairs_phase(t, p, pid, &label).await?;
    let lat_p = PairsParams { window: 1, duration: latency_duration, ..p.clone() };
    let lat = pairs_phase(t, &lat_p, None, &format!("l{}", p.size)).await?;
    Ok(json!({
        "frame": p.kind, "bytes": p.size,
        "throughput_msgs_s": tput["throughput_msgs_s"],
        "loaded_rtt_p50_ms": tput["rtt_p50_ms"], "loaded_rtt_p99_ms": tput["rtt_p99_ms"],
        "cpu_us_per_msg": tput["cpu_us_per_msg"],
        "rtt_p50_ms": lat["rtt_p50_ms"], "rtt_p99_ms": lat["rtt_p99_ms"],
        "throughput_phase": tput, "latency_phase": lat,
    }))
}

/// Many pairs in many rooms signalling at once.
pub async fn pairs(t: &Target, p: &PairsParams, pid: Option<u32>) -> Res<Value> {
    pairs_phase(t, p, pid, "p").await
}

// ----- chat fan-out -----------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct ChatParams {
    pub members: usize,
    /// Messages in flight (sent, not yet delivered to every member) across the room.
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Characters of chat text.
    pub text_len: usize,
}

type Sink = Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>;

struct Tracker {
    /// message id → deliveries still expected
    remaining: Mutex<HashMap<u64, usize>>,
    sem: Semaphore,
    deliveries: AtomicU64,
}

pub async fn chat(t: &Target, p: &ChatParams, pid: Option<u32>) -> Res<Value> {
    if !t.flavour.chats() {
        return Err("not applicable: peerjs-server has no rooms or chat".into());
    }
    let flavour = t.flavour;
    let tag = run_tag();
    let room = format!("{tag}-chat");
    let n = p.members;
    // Members join a few at a time (each join is broadcast to those already in), each person
    // from its own address: 50 people in one room from one address would be one client over
    // edge-meet's CLIENT_SOCKET_LIMIT (32 sockets per room), which no meeting of people is.
    let mut extra: Vec<Ws> = Vec::new(); // edge-meet PeerJS sockets: held, they prove membership
    let mut members: Vec<Ws> = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let mut set = JoinSet::new();
        for &i in chunk {
            let t = t.clone();
            let room = room.clone();
            let id = format!("{tag}m{i}");
            // edge-meet chats on the seat's room socket; the others on their one socket.
            set.spawn(async move {
                net::open_person(&t, &room, &id).await.map(|p| match p.seat {
                    Some(seat) => (Some(p.signal), seat),
                    None => (None, p.signal),
                })
            });
        }
        while let Some(r) = set.join_next().await {
            match r.map_err(|e| e.to_string())? {
                Ok((pj, ws)) => {
                    extra.extend(pj);
                    members.push(ws);
                }
                Err(e) => {
                    if flavour == Flavour::Edge {
                        leave_all(members).await;
                    } else {
                        close_all(members).await;
                    }
                    close_all(extra).await;
                    return Err(format!("chat member failed to join: {e}"));
                }
            }
        }
    }
    // The floor relays to the others only; edge-meet and Socket.IO (io.to(room)) to everyone.
    let expected = if flavour == Flavour::Floor { n - 1 } else { n };
    let tracker = Arc::new(Tracker {
        remaining: Mutex::new(HashMap::new()),
        sem: Semaphore::new(p.window.max(1)),
        deliveries: AtomicU64::new(0),
    });
    let start_us = now_us() + p.warmup.as_micros() as u64;
    let end_us = start_us + p.duration.as_micros() as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks: Vec<Sink> = Vec::new();
    let mut readers = JoinSet::new();
    for (i, ws) in members.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let sink: Sink = Arc::new(tokio::sync::Mutex::new(sink));
        sinks.push(sink.clone());
        let reader = chat_reader(flavour, stream, sink, tracker.clone(), start_us, end_us, stop_rx.clone());
        readers.spawn(async move { (i, reader.await) });
    }
    let pad: String = "lorem ipsum dolor sit amet ".chars().cycle().take(p.text_len.saturating_sub(24)).collect();
    let cpu_task = async {
        sleep_until_us(start_us).await;
        let c0 = cpu(pid);
        sleep_until_us(end_us).await;
        c0.zip(cpu(pid)).map(|(a, b)| b - a)
    };
    let driver = async {
        let mut k: u64 = 0;
        let mut sent_in_window = 0u64;
        let mut send_error = None;
        while now_us() < end_us {
            let left = Duration::from_micros(end_us.saturating_sub(now_us()));
            match tokio::time::timeout(left, tracker.sem.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => break,
            }
            let now = now_us();
            tracker.remaining.lock().unwrap().insert(k, expected);
            let text = format!("{k}:{now}:{pad}");
            let frame = match flavour {
                Flavour::Sio => sio::send_chat(&room, &text),
                _ => net::chat_frame(text),
            };
            let sink = &sinks[(k as usize) % n];
            if let Err(e) = sink.lock().await.send(Message::text(frame)).await {
                send_error = Some(e.to_string());
                break;
            }
            if now >= start_us {
                sent_in_window += 1;
            }
            k += 1;
        }
        (k, sent_in_window, send_error)
    };
    let (cpu_s, (sent, sent_in_window, send_error)) = tokio::join!(cpu_task, driver);
    // Let the last messages arrive, then stop the readers.
    let drain_until = Instant::now() + GRACE;
    while !tracker.remaining.lock().unwrap().is_empty() && Instant::now() < drain_until {
        sleep(Duration::from_millis(20)).await;
    }
    let undelivered = tracker.remaining.lock().unwrap().len();
    let _ = stop_tx.send(true);
    let mut lat: Vec<u64> = Vec::new();
    let mut streams = Vec::new();
    while let Some(r) = readers.join_next().await {
        if let Ok((i, (stream, samples))) = r {
            lat.extend(samples);
            streams.push((i, stream));
        }
    }
    // Readers end in any order; a half only reunites with its own sink.
    streams.sort_by_key(|(i, _)| *i);
    // Reassemble and close politely: edge-meet's seats leave first ([`net::leave`]), then the
    // PeerJS sockets close, so no seat is left reconnecting into the next scenario.
    let mut sockets = Vec::new();
    let mut sinks: Vec<Option<Sink>> = sinks.into_iter().map(Some).collect();
    for (i, stream) in streams {
        if let Some(Ok(m)) = sinks[i].take().map(Arc::try_unwrap) {
            if let Ok(ws) = m.into_inner().reunite(stream) {
                sockets.push(ws);
            }
        }
    }
    if flavour == Flavour::Edge {
        leave_all(sockets).await;
    } else {
        close_all(sockets).await;
    }
    close_all(extra).await;
    if let Some(e) = send_error {
        return Err(format!("chat send failed: {e}"));
    }
    let secs = p.duration.as_secs_f64();
    let deliveries = tracker.deliveries.load(Relaxed);
    Ok(json!({
        "members": n, "window": p.window, "seconds": secs, "expected_per_message": expected,
        "messages_sent": sent, "messages_in_window": sent_in_window, "undelivered_messages": undelivered,
        "deliveries": deliveries,
        "deliveries_s": round(deliveries as f64 / secs, 1),
        "messages_s": round(deliveries as f64 / secs / expected as f64, 1),
        "latency_p50_ms": ms(percentile_ms(&mut lat, 50.0)),
        "latency_p99_ms": ms(percentile_ms(&mut lat, 99.0)),
        "server_cpu_s": cpu_s.map(|c| round(c, 3)),
        "cpu_us_per_delivery": cpu_s.filter(|_| deliveries > 0).map(|c| round(c * 1e6 / deliveries as f64, 2)),
    }))
}

async fn chat_reader(
    flavour: Flavour,
    mut stream: SplitStream<Ws>,
    sink: Sink,
    tracker: Arc<Tracker>,
    start_us: u64,
    end_us: u64,
    mut stop: watch::Receiver<bool>,
) -> (SplitStream<Ws>, Vec<u64>) {
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            m = stream.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if flavour == Flavour::Sio && text.as_str() == sio::PING {
                    let _ = sink.lock().await.send(Message::text(sio::PONG)).await;
                    continue;
                }
                let Some(chat) = net::chat_text(flavour, text.as_str()) else { continue };
                let mut parts = chat.splitn(3, ':');
                let (Some(Ok(id)), Some(Ok(sent))) = (parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>)) else { continue };
                let now = now_us();
                if now >= start_us && now < end_us {
                    samples.push(now - sent);
                    tracker.deliveries.fetch_add(1, Relaxed);
                }
                let mut rem = tracker.remaining.lock().unwrap();
                if let Some(r) = rem.get_mut(&id) {
                    *r -= 1;
                    if *r == 0 {
                        rem.remove(&id);
                        tracker.sem.add_permits(1);
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    (stream, samples)
}

// ----- holding sockets: join storm and idle -----------------------------------------------------

#[derive(Default)]
pub struct HoldCounters {
    /// HEARTBEAT frames sent (PeerJS-style systems), on PeerJS sockets and seats' room sockets.
    pub heartbeats: AtomicU64,
    /// Of those, sent on edge-meet seats' room sockets.
    pub seat_heartbeats: AtomicU64,
    /// Heartbeat echoes received (the runtime's auto-response on workerd systems).
    pub echoes: AtomicU64,
    /// Engine.IO pongs sent in answer to server pings (Socket.IO).
    pub pongs: AtomicU64,
    /// People the server closed a socket of while held.
    pub dropped: AtomicU64,
}

/// How often a seat's room socket heartbeats: the meeting page's `HEARTBEAT_MS`
/// (public/js/room-socket.js). Without it a held seat would be closed by `ALIVE_TIMEOUT_MS`
/// (60 s) during the full idle window.
const SEAT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The next message of an optional socket; never, without one.
async fn next_of(ws: &mut Option<Ws>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// Keeps a person's sockets open until `stop`: answers Socket.IO pings, sends HEARTBEATs when
/// asked to — the signalling socket every `interval`, a seat's room socket every
/// [`SEAT_HEARTBEAT`], each first after `phase` (a fraction of its interval) — counts what
/// happens, then leaves and closes politely ([`Person::close`]).
async fn hold(
    person: Person,
    flavour: Flavour,
    heartbeat: Option<(Duration, f64)>,
    counters: Arc<HoldCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let hb_text = net::heartbeat();
    let Person { mut signal, mut seat } = person;
    let (interval, phase) = heartbeat.unwrap_or((Duration::from_secs(3600), 1.0));
    let send_hb = heartbeat.is_some() && flavour != Flavour::Sio;
    let t0 = Instant::now();
    let mut next_hb = t0 + interval.mul_f64(phase);
    let mut next_seat_hb = t0 + SEAT_HEARTBEAT.mul_f64(phase);
    loop {
        tokio::select! {
            m = signal.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if flavour == Flavour::Sio && t.as_str() == sio::PING {
                        if net::send_text(&mut signal, sio::PONG.into()).await.is_err() { break; }
                        counters.pongs.fetch_add(1, Relaxed);
                    } else if t.as_str() == hb_text {
                        counters.echoes.fetch_add(1, Relaxed);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    counters.dropped.fetch_add(1, Relaxed);
                    if let Some(seat) = seat {
                        net::leave(seat).await;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            m = next_of(&mut seat) => match m {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == hb_text {
                        counters.echoes.fetch_add(1, Relaxed);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    counters.dropped.fetch_add(1, Relaxed);
                    net::close(signal).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(next_hb), if send_hb => {
                if net::send_text(&mut signal, hb_text.clone()).await.is_err() { break; }
                counters.heartbeats.fetch_add(1, Relaxed);
                next_hb += interval;
            }
            _ = tokio::time::sleep_until(next_seat_hb), if send_hb && seat.is_some() => {
                let Some(ws) = seat.as_mut() else { break };
                if net::send_text(ws, hb_text.clone()).await.is_err() { break; }
                counters.heartbeats.fetch_add(1, Relaxed);
                counters.seat_heartbeats.fetch_add(1, Relaxed);
                next_seat_hb += SEAT_HEARTBEAT;
            }
            _ = stop.changed() => break,
        }
    }
    Person { signal, seat }.close().await;
}

#[derive(Clone, Debug)]
pub struct JoinParams {
    pub sockets: usize,
    pub rooms: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Pause between the last open and the "after" memory reading.
    pub settle: Duration,
    /// Everyone in one object (edge-meet: the global `/peerjs` server), which separates the
    /// cost of a socket from the cost of a room.
    pub one_object: bool,
}

/// Join storm: `sockets` sockets into `rooms` rooms as fast as `concurrency` allows, opened as
/// members ([`net::open_person`]): on edge-meet rooms a PeerJS socket and a seated room socket
/// each, as the meeting page joins (an unseated id is closed after `JOIN_WINDOW_MS`, and a full
/// storm on wrangler dev takes about that long); elsewhere one socket each.
pub async fn join_storm(t: &Target, p: &JoinParams, pid: Option<u32>) -> Res<Value> {
    let tag = run_tag();
    let rss0 = pid.map(procfs::tree_rss_kb);
    let target = t.clone();
    let rooms = if p.one_object { 1 } else { p.rooms.max(1) };
    let one = p.one_object;
    let tag2 = tag.clone();
    // Sockets are the unit, as in "memory per socket": a seated member holds two, so half as
    // many members go into the same rooms, the same total and the same sockets per room as on
    // every other system. As many members as sockets would also not fit wrangler dev: its
    // proxy's workerd holds about 5 descriptors per socket, and 4,000 sockets (2,000 seated
    // members) ran it into the 20,000 open-file limit, which killed it mid-storm.
    let sockets_each = if !one && t.seats(&format!("{tag}-j0")) { 2 } else { 1 };
    let members = p.sockets.div_ceil(sockets_each);
    let t0 = now_us();
    let opened = open_many(members, p.concurrency, move |i| {
        let t = target.clone();
        let room = if one { String::new() } else { format!("{tag2}-j{}", i % rooms) };
        let id = format!("{tag2}j{i}");
        async move { net::open_person(&t, &room, &id).await }
    })
    .await;
    let elapsed = (now_us() - t0) as f64 / 1e6;
    let mut sockets = 0u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(HoldCounters::default());
    let mut holders = JoinSet::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut open_lat = Vec::new();
    for (_, r, us) in opened {
        match r {
            Ok(person) => {
                open_lat.push(us);
                sockets += person.sockets() as u64;
                holders.spawn(hold(person, t.flavour, None, counters.clone(), stop_rx.clone()));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let ok = open_lat.len() as u64;
    sleep(p.settle).await;
    let rss1 = pid.map(procfs::tree_rss_kb);
    let _ = stop_tx.send(true);
    let close_deadline = Instant::now() + Duration::from_secs(30);
    while !holders.is_empty() && Instant::now() < close_deadline {
        let _ = tokio::time::timeout(Duration::from_secs(1), holders.join_next()).await;
    }
    holders.abort_all();
    // Memory per socket over the sockets actually held (two per seated edge-meet member).
    let per_socket = rss0.zip(rss1).filter(|_| sockets > 0).map(|(a, b)| (b as f64 - a as f64) / sockets as f64);
    let per_member = rss0.zip(rss1).filter(|_| ok > 0).map(|(a, b)| (b as f64 - a as f64) / ok as f64);
    Ok(json!({
        "sockets": p.sockets, "rooms": rooms, "one_object": one, "concurrency": p.concurrency,
        "members": members, "sockets_per_member": sockets_each,
        "opened": ok, "sockets_held": sockets, "errors": errors, "first_error": first_error,
        "dropped_while_held": counters.dropped.load(Relaxed),
        "time_s": round(elapsed, 3),
        "open_p50_ms": ms(percentile_ms(&mut open_lat.clone(), 50.0)),
        "open_p99_ms": ms(percentile_ms(&mut open_lat, 99.0)),
        "rss_before_mb": rss0.map(|k| round(k as f64 / 1024.0, 1)),
        "rss_after_mb": rss1.map(|k| round(k as f64 / 1024.0, 1)),
        "kb_per_socket": per_socket.map(|k| round(k, 2)),
        "kb_per_member": per_member.map(|k| round(k, 2)),
    }))
}

#[derive(Clone, Debug)]
pub struct IdleParams {
    pub peers: usize,
    pub rooms: usize,
    pub interval: Duration,
    pub window: Duration,
}

/// Handler invocations counted by the server, summed over the rooms used.
#[derive(Default, Debug, Clone, Copy)]
struct Counted {
    /// Handler runs caused by frames (DO webSocketMessage/Close/Error; Node 'message'; Socket.IO pong packets).
    frames: f64,
    /// Of those, frames that were not heartbeats (peerjs-server counts both; the control check
    /// needs the others alone, since the idle sockets keep heartbeating meanwhile).
    non_heartbeat: f64,
    alarms: f64,
    /// DO fetch count, to notice an instance that was evicted and re-created between readings.
    fetches: f64,
}

/// The counters of each room (workerd systems) or of the one server (Node systems).
async fn read_counts(t: &Target, rooms: &[String]) -> Res<Vec<Counted>> {
    let port = t.port();
    let mut out = Vec::new();
    let paths: Vec<String> = match t.flavour {
        Flavour::Edge | Flavour::Floor => rooms.iter().map(|r| t.stats_path(r)).collect(),
        _ => vec![t.stats_path("")],
    };
    for path in paths {
        let v = net::get_json(port, &path).await?;
        let e = &v["events"];
        let g = |k: &str| e[k].as_f64().unwrap_or(0.0);
        let mut c = Counted::default();
        match t.flavour {
            Flavour::Edge | Flavour::Floor => {
                c.frames += g("message") + g("close") + g("error");
                c.non_heartbeat += g("message") + g("close") + g("error");
                c.alarms += g("alarm");
                c.fetches += g("fetch");
            }
            Flavour::Peer => {
                c.frames += g("message");
                c.non_heartbeat += g("message") - g("heartbeat");
            }
            Flavour::Sio => c.frames += g("pong"),
        }
        out.push(c);
    }
    Ok(out)
}

/// What the counters of one room (or server) rose by between two readings, and whether its
/// instance was re-created in between. A workerd object whose fetch count did not go up by
/// exactly our one stats read was evicted and re-created: its counters restarted from 0 after
/// the first reading, so the second alone is what the new instance counted inside the window (a
/// floor: what the old one counted after the first reading is lost). Subtracting the first
/// reading would take away the seats' joins from before the window and go below zero.
fn counted_between(t: &Target, before: &Counted, after: &Counted) -> (Counted, bool) {
    let workerd = matches!(t.flavour, Flavour::Edge | Flavour::Floor);
    if workerd && after.fetches != before.fetches + 1.0 {
        return (*after, true);
    }
    let d = Counted {
        frames: after.frames - before.frames,
        non_heartbeat: after.non_heartbeat - before.non_heartbeat,
        alarms: after.alarms - before.alarms,
        fetches: after.fetches - before.fetches,
    };
    (d, false)
}

/// Idle: `peers` sockets heartbeating every `interval` for `window`. Server CPU time over the
/// window, and the handler invocations the server itself counted (not assumed).
pub async fn idle(t: &Target, p: &IdleParams, pid: Option<u32>) -> Res<Value> {
    let tag = run_tag();
    let rooms_n = p.rooms.max(1);
    let rooms: Vec<String> = (0..rooms_n).map(|r| format!("{tag}-i{r}")).collect();
    let target = t.clone();
    let rooms2 = rooms.clone();
    let tag2 = tag.clone();
    let opened = open_many(p.peers, 32, move |i| {
        let t = target.clone();
        let room = rooms2[i % rooms2.len()].clone();
        let id = format!("{tag2}i{i}");
        // Seated on edge-meet rooms: an unseated id is closed (4002) after JOIN_WINDOW_MS,
        // inside the full idle window, and an idle meeting is of seated people.
        async move { net::open_person(&t, &room, &id).await }
    })
    .await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(HoldCounters::default());
    let mut holders = JoinSet::new();
    let n = opened.len().max(1);
    let mut errors = 0;
    for (i, r, _) in opened {
        match r {
            Ok(person) => {
                // Spread the heartbeats evenly over the interval, as independent clients would be.
                let phase = i as f64 / n as f64;
                holders.spawn(hold(person, t.flavour, Some((p.interval, phase)), counters.clone(), stop_rx.clone()));
            }
            Err(_) => errors += 1,
        }
    }
    if errors > 0 {
        let _ = stop_tx.send(true);
        while holders.join_next().await.is_some() {}
        return Err(format!("{errors} idle sockets failed to open"));
    }
    sleep(Duration::from_millis(500)).await;
    let before = read_counts(t, &rooms).await?;
    let hb0 = counters.heartbeats.load(Relaxed) + counters.pongs.load(Relaxed);
    let seat_hb0 = counters.seat_heartbeats.load(Relaxed);
    let echo0 = counters.echoes.load(Relaxed);
    let cpu0 = cpu(pid);
    sleep(p.window).await;
    let cpu1 = cpu(pid);
    let hb1 = counters.heartbeats.load(Relaxed) + counters.pongs.load(Relaxed);
    let seat_hb1 = counters.seat_heartbeats.load(Relaxed);
    let echo1 = counters.echoes.load(Relaxed);
    let after = read_counts(t, &rooms).await?;
    // Per room (see `counted_between`: an evicted and re-created object counts from 0).
    let mut window = Counted::default();
    let mut restarts = 0;
    for (b, a) in before.iter().zip(&after) {
        let (d, restarted) = counted_between(t, b, a);
        window.frames += d.frames;
        window.alarms += d.alarms;
        restarts += restarted as usize;
    }
    let control = control_check(t, &rooms[0], &tag).await;
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holders.is_empty() && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_secs(1), holders.join_next()).await;
    }
    holders.abort_all();
    let heartbeats = hb1 - hb0;
    let invocations = window.frames;
    let cpu_s = cpu0.zip(cpu1).map(|(a, b)| b - a);
    Ok(json!({
        "peers": p.peers, "rooms": rooms_n, "interval_s": p.interval.as_secs_f64(), "window_s": p.window.as_secs_f64(),
        "heartbeats": heartbeats,
        "seat_heartbeats": seat_hb1 - seat_hb0,
        "heartbeat_kind": if t.flavour == Flavour::Sio { "engine.io pong to server ping" } else { "HEARTBEAT frame" },
        "echoes": echo1 - echo0,
        "handler_invocations": invocations,
        "invocations_per_heartbeat": if heartbeats > 0 { json!(round(invocations / heartbeats as f64, 4)) } else { Value::Null },
        "alarms": window.alarms,
        "instance_restarts": restarts,
        "dropped": counters.dropped.load(Relaxed),
        "control": control,
        "server_cpu_ms": cpu_s.map(|c| round(c * 1e3, 1)),
        "cpu_us_per_heartbeat": cpu_s.filter(|_| heartbeats > 0).map(|c| round(c * 1e6 / heartbeats as f64, 2)),
    }))
}

/// A frame no runtime auto-answers and every server ignores (unknown type): each one must be
/// counted as one handler invocation.
const CONTROL: &str = r#"{"type":"BENCH-CONTROL"}"#;

/// Proves the counter counts: 5 frames that are *not* the auto-answered bytes must show up
/// as exactly 5 more invocations (for workerd systems, in the room they were sent to). Not applicable to Socket.IO (its counter is the pongs).
async fn control_check(t: &Target, room: &str, tag: &str) -> Value {
    if t.flavour == Flavour::Sio {
        return json!("n/a");
    }
    let run = async {
        let mut ws = net::open_peerjs(t, room, &format!("{tag}ctl"), &net::client_ip()).await?;
        sleep(Duration::from_millis(200)).await;
        let c0 = read_counts(t, &[room.to_owned()]).await?[0];
        for _ in 0..5 {
            net::send_text(&mut ws, CONTROL.to_owned()).await?;
        }
        sleep(Duration::from_millis(500)).await;
        let c1 = read_counts(t, &[room.to_owned()]).await?[0];
        net::close(ws).await;
        Ok::<_, String>(c1.non_heartbeat - c0.non_heartbeat)
    };
    match run.await {
        Ok(d) => json!({"sent": 5, "counted": d}),
        Err(e) => json!({"error": e}),
    }
}
