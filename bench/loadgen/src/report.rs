//! The one table: medians per system, ratios to the baselines and to the floor, targets.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::util::{median, round};

#[derive(Clone, Copy, PartialEq)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy)]
pub enum Target {
    None,
    /// edge ≥ floor / 1.05
    FloorHigher,
    /// edge ≤ floor × 1.05
    FloorLower,
    /// edge ≥ Socket.IO
    SioHigher,
    /// edge ≤ peerjs-server
    PeerLower,
    /// edge == 0
    Zero,
    /// edge ≤ this many
    AtMost(f64),
}

pub struct Row {
    /// `scenario.metric` in the per-run results.
    pub key: &'static str,
    pub label: &'static str,
    pub better: Better,
    pub target: Target,
}

macro_rules! row {
    ($k:expr, $l:expr, $b:ident, $t:expr) => {
        Row { key: $k, label: $l, better: Better::$b, target: $t }
    };
}

pub fn rows() -> Vec<Row> {
    use Target::*;
    vec![
        row!("relay300.throughput_msgs_s", "relay 300 B: throughput, msgs/s", Higher, FloorHigher),
        row!("relay300.rtt_p50_ms", "relay 300 B: RTT p50, ms", Lower, FloorLower),
        row!("relay300.rtt_p99_ms", "relay 300 B: RTT p99, ms", Lower, FloorLower),
        row!("relay300.cpu_us_per_msg", "relay 300 B: server CPU per msg, µs", Lower, None),
        row!("relay4k.throughput_msgs_s", "relay 4 KB: throughput, msgs/s", Higher, FloorHigher),
        row!("relay4k.rtt_p50_ms", "relay 4 KB: RTT p50, ms", Lower, FloorLower),
        row!("relay4k.rtt_p99_ms", "relay 4 KB: RTT p99, ms", Lower, FloorLower),
        row!("relay4k.cpu_us_per_msg", "relay 4 KB: server CPU per msg, µs", Lower, None),
        row!("pairs.throughput_msgs_s", "many pairs: throughput, msgs/s", Higher, None),
        row!("pairs.rtt_p50_ms", "many pairs: RTT p50, ms", Lower, None),
        row!("pairs.rtt_p99_ms", "many pairs: RTT p99, ms", Lower, None),
        row!("pairs.cpu_us_per_msg", "many pairs: server CPU per msg, µs", Lower, None),
        row!("chat.deliveries_s", "chat fan-out: deliveries/s", Higher, SioHigher),
        row!("chat.latency_p50_ms", "chat fan-out: latency p50, ms", Lower, None),
        row!("chat.latency_p99_ms", "chat fan-out: latency p99, ms", Lower, None),
        row!("chat.cpu_us_per_delivery", "chat fan-out: server CPU per delivery, µs", Lower, None),
        row!("join.time_s", "join storm: time to all open/joined, s", Lower, None),
        row!("join.errors", "join storm: errors", Lower, None),
        row!("join.rss_before_mb", "join storm: server RSS before, MB", Lower, None),
        row!("join.rss_after_mb", "join storm: server RSS after, MB", Lower, None),
        row!("join.kb_per_socket", "join storm: memory per socket, KB", Lower, PeerLower),
        row!("join1.time_s", "one object: time to all open, s", Lower, None),
        row!("join1.errors", "one object: errors", Lower, None),
        row!("join1.kb_per_socket", "one object: memory per socket, KB", Lower, PeerLower),
        row!("idle.kb_per_socket", "idle: memory per socket at end, KB", Lower, PeerLower),
        row!("idle.server_cpu_ms", "idle: server CPU over the window, ms", Lower, None),
        row!("idle.cpu_us_per_heartbeat", "idle: server CPU per heartbeat, µs", Lower, None),
        row!("idle.invocations_per_heartbeat", "idle: handler invocations per heartbeat (counted)", Lower, Zero),
        row!("idle.alarms", "idle: DO alarm invocations in the window", Lower, None),
        row!("bundle.gzip_kib", "bundle: wasm + js gzip -9, KiB", Lower, AtMost(250.0)),
        row!("bundle.upload_gzip_kib", "bundle: wrangler dry-run upload gzip, KiB", Lower, AtMost(250.0)),
    ]
}

/// `values[system][row key]` = one number per run.
pub type Raw = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

pub fn medians(raw: &Raw) -> BTreeMap<String, BTreeMap<String, f64>> {
    raw.iter()
        .map(|(sys, m)| (sys.clone(), m.iter().filter_map(|(k, v)| Some((k.clone(), median(v)?))).collect()))
        .collect()
}

fn fmt(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{:.0}", x)
    } else if a >= 100.0 {
        format!("{:.1}", x)
    } else if a >= 1.0 {
        format!("{:.2}", x)
    } else {
        format!("{:.3}", x)
    }
}

pub const EDGE: &str = "edge-workerd";

/// Builds the table: JSON rows and the Markdown text.
pub fn table(
    med: &BTreeMap<String, BTreeMap<String, f64>>,
    systems: &[(String, String)],
    runs: usize,
) -> (Value, String) {
    let get = |sys: &str, key: &str| med.get(sys).and_then(|m| m.get(key)).copied();
    let mut md = String::new();
    md.push_str("| metric |");
    for (_, label) in systems {
        md.push_str(&format!(" {label} |"));
    }
    md.push_str(" edge ÷ peer/SIO | edge ÷ floor | target |\n|---|");
    for _ in systems {
        md.push_str("---:|");
    }
    md.push_str("---:|---:|---|\n");
    let mut json_rows = Vec::new();
    for r in rows() {
        let vals: Vec<Option<f64>> = systems.iter().map(|(id, _)| get(id, r.key)).collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let edge = get(EDGE, r.key);
        let (base_name, base) = match (get("peer", r.key), get("socketio", r.key)) {
            (Some(p), _) => ("peer", Some(p)),
            (None, Some(s)) => ("SIO", Some(s)),
            _ => ("", None),
        };
        let ratio = |b: Option<f64>| edge.zip(b).filter(|(_, b)| *b != 0.0).map(|(e, b)| e / b);
        let r_base = ratio(base);
        let r_floor = ratio(get("floor", r.key));
        let (target_text, met) = match r.target {
            Target::None => (String::new(), None),
            Target::FloorHigher => ("≥ floor ÷ 1.05".into(), r_floor.map(|x| x >= 1.0 / 1.05)),
            Target::FloorLower => ("≤ 1.05 × floor".into(), r_floor.map(|x| x <= 1.05)),
            Target::SioHigher => ("≥ Socket.IO".into(), edge.zip(get("socketio", r.key)).map(|(e, s)| e >= s)),
            Target::PeerLower => ("≤ peerjs-server".into(), edge.zip(get("peer", r.key)).map(|(e, p)| e <= p)),
            Target::Zero => ("= 0".into(), edge.map(|e| e == 0.0)),
            Target::AtMost(x) => (format!("≤ {x}"), edge.map(|e| e <= x)),
        };
        md.push_str(&format!("| {} |", r.label));
        for v in &vals {
            md.push_str(&format!(" {} |", v.map(fmt).unwrap_or_else(|| "n/a".into())));
        }
        let rb = r_base.map(|x| format!("{:.2}× {base_name}", x)).unwrap_or_else(|| "–".into());
        let rf = r_floor.map(|x| format!("{:.2}×", x)).unwrap_or_else(|| "–".into());
        let tg = match met {
            Some(true) => format!("{target_text} ✅"),
            Some(false) => format!("{target_text} ❌"),
            None => target_text.clone(),
        };
        md.push_str(&format!(" {rb} | {rf} | {tg} |\n"));
        json_rows.push(json!({
            "key": r.key, "label": r.label,
            "better": match r.better { Better::Higher => "higher", Better::Lower => "lower" },
            "values": systems.iter().zip(&vals).map(|((id, _), v)| (id.clone(), json!(v.map(|x| round(x, 4))))).collect::<serde_json::Map<_, _>>(),
            "ratio_baseline": r_base.map(|x| round(x, 4)), "baseline": base_name,
            "ratio_floor": r_floor.map(|x| round(x, 4)),
            "target": target_text, "target_met": met,
        }));
    }
    md.push_str(&format!(
        "\nMedians of {runs} run(s). Ratios use the edge-meet (workerd) column, which runs exactly like the floor; \
         \"peer/SIO\" is peerjs-server where it applies, else Socket.IO. n/a: the system has no such feature.\n"
    ));
    (Value::Array(json_rows), md)
}
