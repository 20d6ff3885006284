//! edge-meet load generator.
//!
//! ```text
//! loadgen run --flavour edge|peer|floor|sio --url http://127.0.0.1:PORT --scenario NAME [options]
//!     one scenario against one running server; prints its figures as JSON
//!     scenarios: relay300 relay4k pairs chat join join1 idle
//!     options:   --pid PID (server root: CPU and memory of its process tree) --quick
//!                --pairs N --rooms N --window N --duration S --members N --sockets N
//!                --concurrency N --peers N --interval S --idle-window S
//! loadgen suite [--quick] [--runs N] [--out FILE] [--systems a,b] [--scenarios a,b]
//!     starts every system, runs every scenario against each, prints one table, writes FILE
//! loadgen bundle
//!     bundle sizes only (JSON)
//! ```

mod bundle;
mod net;
mod procfs;
mod report;
mod scenarios;
mod systems;
mod util;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use net::{Flavour, Target};
use scenarios::{ChatParams, IdleParams, JoinParams, PairsParams};

/// Every scenario's parameters for one mode.
#[derive(Clone)]
struct Plan {
    relay300: PairsParams,
    relay4k: PairsParams,
    relay_latency: Duration,
    pairs: PairsParams,
    chat: ChatParams,
    join: JoinParams,
    join1: JoinParams,
    idle: IdleParams,
}

fn plan(quick: bool) -> Plan {
    let s = Duration::from_secs_f64;
    let relay300 = PairsParams {
        pairs: 1,
        rooms: 1,
        kind: "CANDIDATE",
        size: 300,
        window: 16,
        warmup: s(if quick { 0.1 } else { 0.5 }),
        duration: s(if quick { 0.4 } else { 2.0 }),
    };
    Plan {
        relay4k: PairsParams { kind: "OFFER", size: 4096, ..relay300.clone() },
        relay_latency: s(if quick { 0.3 } else { 1.2 }),
        relay300,
        pairs: PairsParams {
            pairs: if quick { 40 } else { 200 },
            rooms: if quick { 20 } else { 100 },
            kind: "CANDIDATE",
            size: 300,
            window: 4,
            warmup: s(if quick { 0.2 } else { 0.5 }),
            duration: s(if quick { 0.6 } else { 2.5 }),
        },
        chat: ChatParams {
            members: 50,
            window: 8,
            warmup: s(if quick { 0.1 } else { 0.5 }),
            duration: s(if quick { 0.5 } else { 2.0 }),
            text_len: 64,
        },
        join: JoinParams {
            sockets: if quick { 200 } else { 2000 },
            rooms: if quick { 50 } else { 500 },
            concurrency: 64,
            settle: s(if quick { 0.3 } else { 1.0 }),
            one_object: false,
        },
        join1: JoinParams {
            sockets: if quick { 200 } else { 1000 },
            rooms: 1,
            concurrency: 64,
            settle: s(if quick { 0.3 } else { 1.0 }),
            one_object: true,
        },
        idle: IdleParams {
            peers: if quick { 100 } else { 500 },
            rooms: if quick { 25 } else { 125 },
            interval: s(5.0),
            window: s(if quick { 5.0 } else { 60.0 }),
        },
    }
}

const SCENARIOS: &[&str] = &["join", "join1", "relay300", "relay4k", "pairs", "chat", "idle"];

async fn run_scenario(name: &str, t: &Target, p: &Plan, pid: Option<u32>) -> Result<Value, String> {
    match name {
        "relay300" => scenarios::relay(t, &p.relay300, p.relay_latency, pid).await,
        "relay4k" => scenarios::relay(t, &p.relay4k, p.relay_latency, pid).await,
        "pairs" => scenarios::pairs(t, &p.pairs, pid).await,
        "chat" => scenarios::chat(t, &p.chat, pid).await,
        "join" => scenarios::join_storm(t, &p.join, pid).await,
        "join1" => scenarios::join_storm(t, &p.join1, pid).await,
        "idle" => scenarios::idle(t, &p.idle, pid).await,
        _ => Err(format!("unknown scenario {name:?} ({})", SCENARIOS.join(", "))),
    }
}

fn applicable(name: &str, f: Flavour) -> bool {
    match name {
        "relay300" | "relay4k" | "pairs" => f.relays(),
        "chat" => f.chats(),
        _ => true,
    }
}

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

// ----- CLI ------------------------------------------------------------------------------------

struct Args {
    flags: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    fn parse(v: &[String]) -> Result<Args, String> {
        let mut flags = HashMap::new();
        let mut switches = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let a = v[i].strip_prefix("--").ok_or_else(|| format!("unexpected argument {:?}", v[i]))?;
            if a == "quick" || a == "help" {
                switches.push(a.to_owned());
                i += 1;
            } else {
                let val = v.get(i + 1).ok_or_else(|| format!("--{a} needs a value"))?;
                flags.insert(a.to_owned(), val.clone());
                i += 2;
            }
        }
        Ok(Args { flags, switches })
    }
    fn has(&self, s: &str) -> bool {
        self.switches.iter().any(|x| x == s)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.flags.get(k).map(String::as_str)
    }
    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, String> {
        self.get(k).map(|v| v.parse::<T>().map_err(|_| format!("--{k}: not a number: {v}"))).transpose()
    }
}

fn usage() -> &'static str {
    "usage:\n  loadgen run --flavour edge|peer|floor|sio --url http://127.0.0.1:PORT --scenario relay300|relay4k|pairs|chat|join|join1|idle [--pid PID] [--quick] [--pairs N --rooms N --window N --duration S --members N --sockets N --concurrency N --peers N --interval S --idle-window S]\n  loadgen suite [--quick] [--runs N] [--out FILE] [--systems id,..] [--scenarios name,..]\n  loadgen bundle\n"
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprint!("{}", usage());
        std::process::exit(2);
    };
    let rest = if cmd.starts_with('-') || cmd == "help" { &argv[..0] } else { &argv[1..] };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{}", usage());
            std::process::exit(2);
        }
    };
    if args.has("help") || cmd == "--help" || cmd == "help" || cmd == "-h" {
        print!("{}", usage());
        return;
    }
    util::now_us(); // start the clock
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = match cmd.as_str() {
        "run" => rt.block_on(cmd_run(&args)),
        "suite" => rt.block_on(cmd_suite(&args)),
        "bundle" => {
            println!("{}", serde_json::to_string_pretty(&bundle::measure(&repo_root())).unwrap());
            Ok(())
        }
        _ => Err(format!("unknown command {cmd:?}\n{}", usage())),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

async fn cmd_run(a: &Args) -> Result<(), String> {
    let flavour = Flavour::parse(a.get("flavour").ok_or("--flavour is required")?)?;
    let url = a.get("url").ok_or("--url is required")?;
    let scenario = a.get("scenario").ok_or("--scenario is required")?;
    let pid: Option<u32> = a.num("pid")?;
    let mut p = plan(a.has("quick"));
    let secs = |k: &str| -> Result<Option<Duration>, String> { Ok(a.num::<f64>(k)?.map(Duration::from_secs_f64)) };
    for pp in [&mut p.relay300, &mut p.relay4k, &mut p.pairs] {
        if let Some(d) = secs("duration")? {
            pp.duration = d;
        }
        if let Some(w) = a.num("window")? {
            pp.window = w;
        }
    }
    if let Some(v) = a.num("pairs")? {
        p.pairs.pairs = v;
    }
    if let Some(v) = a.num("rooms")? {
        p.pairs.rooms = v;
        p.join.rooms = v;
        p.idle.rooms = v;
    }
    if let Some(v) = a.num("members")? {
        p.chat.members = v;
    }
    if let Some(d) = secs("duration")? {
        p.chat.duration = d;
    }
    if let Some(v) = a.num("window")? {
        p.chat.window = v;
    }
    if let Some(v) = a.num("sockets")? {
        p.join.sockets = v;
        p.join1.sockets = v;
    }
    if let Some(v) = a.num("concurrency")? {
        p.join.concurrency = v;
        p.join1.concurrency = v;
    }
    if let Some(v) = a.num("peers")? {
        p.idle.peers = v;
    }
    if let Some(d) = secs("interval")? {
        p.idle.interval = d;
    }
    if let Some(d) = secs("idle-window")? {
        p.idle.window = d;
    }
    let t = Target::new(flavour, url);
    let r = run_scenario(scenario, &t, &p, pid).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"flavour": flavour.name(), "url": url, "scenario": scenario, "result": r})
        )
        .unwrap()
    );
    Ok(())
}

// ----- the suite --------------------------------------------------------------------------------

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned());
    let mem_kb: Option<u64> = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let load = read("/proc/loadavg");
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "mem_gib": mem_kb.map(|k| util::round(k as f64 / 1048576.0, 1)),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "node": node,
        "loadavg_at_start": load.trim(),
    })
}

fn versions(root: &Path) -> Value {
    let v = |p: &str| -> Value {
        std::fs::read_to_string(root.join(p))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(|j| j["version"].clone())
            .unwrap_or(Value::Null)
    };
    json!({
        "wrangler": v("node_modules/wrangler/package.json"),
        "miniflare": v("node_modules/miniflare/package.json"),
        "workerd": v("node_modules/workerd/package.json"),
        "peer": v("node_modules/peer/package.json"),
        "socket.io": v("node_modules/socket.io/package.json"),
    })
}

fn record(raw: &mut report::Raw, sys: &str, scenario: &str, v: &Value) {
    let Some(obj) = v.as_object() else { return };
    for (k, x) in obj {
        if let Some(n) = x.as_f64() {
            raw.entry(sys.to_owned()).or_default().entry(format!("{scenario}.{k}")).or_default().push(n);
        }
    }
}

async fn cmd_suite(a: &Args) -> Result<(), String> {
    let quick = a.has("quick");
    let runs: usize = a.num("runs")?.unwrap_or(if quick { 1 } else { 3 });
    let root = repo_root();
    let out = a.get("out").map(PathBuf::from).unwrap_or_else(|| root.join("bench/results.json"));
    let only_sys: Option<Vec<String>> = a.get("systems").map(|s| s.split(',').map(str::to_owned).collect());
    let only_sc: Option<Vec<String>> = a.get("scenarios").map(|s| s.split(',').map(str::to_owned).collect());
    let specs: Vec<systems::Spec> =
        systems::all().into_iter().filter(|s| only_sys.as_ref().is_none_or(|o| o.iter().any(|x| x == s.id))).collect();
    let scenario_names: Vec<&str> =
        SCENARIOS.iter().copied().filter(|s| only_sc.as_ref().is_none_or(|o| o.iter().any(|x| x == s))).collect();
    let p = plan(quick);
    let t_suite = Instant::now();
    let mut raw: report::Raw = BTreeMap::new();
    let mut details: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    let mut processes: BTreeMap<String, Value> = BTreeMap::new();
    let machine = machine();
    eprintln!(
        "[bench] {} mode, {runs} run(s), systems: {}",
        if quick { "quick" } else { "full" },
        specs.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
    );

    for run in 0..runs {
        eprintln!(
            "[bench] run {}/{runs}: starting systems (load average {})",
            run + 1,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        // Start all systems at once (wrangler dev is the slow one); stop everything on failure.
        let started: Vec<Result<systems::Running, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = specs.iter().map(|s| sc.spawn(|| systems::Running::start(s, &root))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("start panicked".into()))).collect()
        });
        let mut running = Vec::new();
        for r in started {
            match r {
                Ok(s) => running.push(s),
                Err(e) => {
                    drop(running);
                    return Err(e);
                }
            }
        }
        for s in &running {
            eprintln!("[bench]   {} on :{} in {:.1}s", s.spec.id, s.port, s.started_in.as_secs_f64());
            processes.insert(s.spec.id.to_owned(), json!(procfs::tree_names(s.pid)));
        }
        for s in &running {
            let t = Target::new(s.spec.flavour, &s.base());
            for &name in scenario_names.iter().filter(|n| **n != "idle") {
                if !applicable(name, s.spec.flavour) {
                    continue;
                }
                let t0 = Instant::now();
                let r = run_scenario(name, &t, &p, Some(s.pid)).await;
                let v = match r {
                    Ok(v) => {
                        record(&mut raw, s.spec.id, name, &v);
                        v
                    }
                    Err(e) => {
                        eprintln!("[bench]   {} {name}: ERROR {e}", s.spec.id);
                        json!({"error": e})
                    }
                };
                eprintln!("[bench]   {} {name} ({:.1}s): {}", s.spec.id, t0.elapsed().as_secs_f64(), summary(name, &v));
                details.entry(s.spec.id.to_owned()).or_default().entry(name.to_owned()).or_default().push(v);
                // Let the server finish closing this scenario's sockets before the next one.
                tokio::time::sleep(Duration::from_millis(if quick { 200 } else { 500 })).await;
            }
        }
        if scenario_names.contains(&"idle") {
            // Every system idles at once: the load is light (one heartbeat per peer per 5 s) and
            // each system's CPU time is read from its own process tree.
            eprintln!(
                "[bench]   idle: {} peers per system for {:.0}s, all systems at once",
                p.idle.peers,
                p.idle.window.as_secs_f64()
            );
            let mut set = tokio::task::JoinSet::new();
            for s in &running {
                let t = Target::new(s.spec.flavour, &s.base());
                let (id, pid, idle) = (s.spec.id, s.pid, p.idle.clone());
                set.spawn(async move {
                    let rss0 = procfs::tree_rss_kb(pid);
                    let r = scenarios::idle(&t, &idle, Some(pid)).await;
                    (id, r, rss0)
                });
            }
            while let Some(j) = set.join_next().await {
                let Ok((id, r, _rss0)) = j else { continue };
                let v = match r {
                    Ok(v) => {
                        record(&mut raw, id, "idle", &v);
                        v
                    }
                    Err(e) => {
                        eprintln!("[bench]   {id} idle: ERROR {e}");
                        json!({"error": e})
                    }
                };
                eprintln!("[bench]   {id} idle: {}", summary("idle", &v));
                details.entry(id.to_owned()).or_default().entry("idle".into()).or_default().push(v);
            }
        }
        for mut s in running {
            s.stop();
        }
    }

    eprintln!("[bench] bundle sizes and wrangler deploy --dry-run");
    let b = bundle::measure(&root);
    for sys in ["edge-wrangler", "edge-workerd"] {
        if specs.iter().any(|s| s.id == sys) {
            let m = raw.entry(sys.to_owned()).or_default();
            if let Some(x) = b["gzip_kib"].as_f64() {
                m.insert("bundle.gzip_kib".into(), vec![x]);
            }
            if let Some(x) = b["dry_run"]["upload_gzip_kib"].as_f64() {
                m.insert("bundle.upload_gzip_kib".into(), vec![x]);
            }
        }
    }
    if let (true, Some(x)) = (specs.iter().any(|s| s.id == "floor"), b["floor_gzip_kib"].as_f64()) {
        raw.entry("floor".into()).or_default().insert("bundle.gzip_kib".into(), vec![x]);
    }

    let med = report::medians(&raw);
    let labels: Vec<(String, String)> = specs.iter().map(|s| (s.id.to_owned(), s.label.to_owned())).collect();
    let (rows, md) = report::table(&med, &labels, runs);
    let elapsed = t_suite.elapsed().as_secs_f64();
    let mut machine = machine;
    machine["loadavg_at_end"] = json!(std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let doc = json!({
        "mode": if quick { "quick" } else { "full" },
        "runs": runs,
        "elapsed_s": util::round(elapsed, 1),
        "machine": machine,
        "versions": versions(&root),
        "systems": labels.iter().map(|(id, l)| (id.clone(), json!({"label": l, "processes": processes.get(id)}))).collect::<serde_json::Map<_, _>>(),
        "edge_vars": systems::EDGE_VARS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "bundle": b,
        "table": rows,
        "medians": med,
        "runs_detail": details,
        "markdown": md,
    });
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap())
        .map_err(|e| format!("write {}: {e}", out.display()))?;
    println!("{md}");
    eprintln!("[bench] done in {elapsed:.0}s; results: {}", out.display());
    Ok(())
}

/// One line of progress per scenario.
fn summary(name: &str, v: &Value) -> String {
    if let Some(e) = v.get("error") {
        return format!("error: {e}");
    }
    let f = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    match name {
        "relay300" | "relay4k" => {
            format!("{} msgs/s, rtt p50 {} p99 {} ms", f("throughput_msgs_s"), f("rtt_p50_ms"), f("rtt_p99_ms"))
        }
        "pairs" => format!("{} msgs/s, rtt p50 {} p99 {} ms", f("throughput_msgs_s"), f("rtt_p50_ms"), f("rtt_p99_ms")),
        "chat" => {
            format!("{} deliveries/s, p50 {} p99 {} ms", f("deliveries_s"), f("latency_p50_ms"), f("latency_p99_ms"))
        }
        "join" | "join1" => format!(
            "{} opened ({} sockets), {} errors in {} s, {} KB/socket",
            f("opened"),
            f("sockets_held"),
            f("errors"),
            f("time_s"),
            f("kb_per_socket")
        ),
        "idle" => format!(
            "{} heartbeats, {} invocations, {} alarms, cpu {} ms, control {}",
            f("heartbeats"),
            f("handler_invocations"),
            f("alarms"),
            f("server_cpu_ms"),
            f("control")
        ),
        _ => v.to_string(),
    }
}
