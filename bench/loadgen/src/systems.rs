//! Starting and stopping the systems under test, each on a free loopback port, each in its own
//! process group led by a small `sh` that holds a pipe from us: when the pipe closes (we stop
//! it, exit, panic or are killed) the leader SIGKILLs the rest of its group and cleans up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::Flavour;

/// edge-meet's settings for every benchmark run: rate limits off (the load is deliberate),
/// rooms big enough for the 50-member chat, counters on, no ICE servers.
pub const EDGE_VARS: &[(&str, &str)] = &[
    ("DEBUG_STATS", "true"),
    ("ICE_SERVERS", "[]"),
    ("PEERJS_RATE_PER_SEC", "0"),
    ("RATE_PER_SEC", "0"),
    ("ROOM_CAP", "100"),
    ("ROOM_PEERJS_LIMIT", "128"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    Wrangler,
    MiniflareEdge,
    MiniflareFloor,
    Peer,
    SocketIo,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub id: &'static str,
    pub label: &'static str,
    pub flavour: Flavour,
    pub launch: Launch,
}

pub fn all() -> Vec<Spec> {
    vec![
        Spec {
            id: "edge-wrangler",
            label: "edge-meet (wrangler dev)",
            flavour: Flavour::Edge,
            launch: Launch::Wrangler,
        },
        Spec {
            id: "edge-workerd",
            label: "edge-meet (workerd)",
            flavour: Flavour::Edge,
            launch: Launch::MiniflareEdge,
        },
        Spec { id: "peer", label: "peerjs-server", flavour: Flavour::Peer, launch: Launch::Peer },
        Spec { id: "socketio", label: "Socket.IO", flavour: Flavour::Sio, launch: Launch::SocketIo },
        Spec { id: "floor", label: "floor (JS DO)", flavour: Flavour::Floor, launch: Launch::MiniflareFloor },
    ]
}

pub struct Running {
    pub spec: Spec,
    pub port: u16,
    /// The process-group leader; the system is this process's tree.
    pub pid: u32,
    pub started_in: Duration,
    log: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Blocking `GET path` → status (readiness checks).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()
}

impl Running {
    pub fn start(spec: &Spec, root: &Path) -> Result<Running, String> {
        let t0 = Instant::now();
        let port = free_port().map_err(|e| e.to_string())?;
        let work = std::env::temp_dir().join(format!("edge-meet-bench-{}-{}-{port}", spec.id, std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let log = work.join("server.log");
        let node = |script: &str| -> Vec<String> { vec!["node".into(), root.join(script).display().to_string()] };
        let mut argv: Vec<String> = match spec.launch {
            Launch::Wrangler => {
                let mut a: Vec<String> =
                    ["npx", "wrangler", "dev", "--ip", "127.0.0.1", "--port"].map(String::from).to_vec();
                a.push(port.to_string());
                a.push("--persist-to".into());
                a.push(work.join("state").display().to_string());
                a.extend(
                    ["--inspector-port", "0", "--log-level", "warn", "--show-interactive-dev-session=false"]
                        .map(String::from),
                );
                for (k, v) in EDGE_VARS {
                    a.push("--var".into());
                    a.push(format!("{k}:{v}"));
                }
                a
            }
            Launch::MiniflareEdge => {
                let mut a = node("bench/miniflare-serve.mjs");
                a.extend(["edge".into(), "--port".into(), port.to_string()]);
                for (k, v) in EDGE_VARS {
                    a.push("--var".into());
                    a.push(format!("{k}={v}"));
                }
                a
            }
            Launch::MiniflareFloor => {
                let mut a = node("bench/miniflare-serve.mjs");
                a.extend(["floor".into(), "--port".into(), port.to_string()]);
                a
            }
            Launch::Peer => {
                let mut a = node("bench/peer-serve.mjs");
                a.extend(["--port".into(), port.to_string()]);
                a
            }
            Launch::SocketIo => {
                let mut a = node("bench/socketio-server.mjs");
                a.extend(["--port".into(), port.to_string()]);
                a
            }
        };
        let mut cmd = Command::new("sh");
        // scripts/group-leader.sh: the system's process group dies with the load generator.
        cmd.arg(root.join("scripts/group-leader.sh")).arg(&log).arg(&work).arg("").args(argv.drain(..));
        cmd.current_dir(root)
            .env("EDGE_MEET_SKIP_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("BROWSER", "none")
            .env("CI", "true")
            .env("PING_INTERVAL_MS", "5000")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", spec.id))?;
        let stdin = child.stdin.take();
        let pid = child.id();
        let mut running =
            Running { spec: spec.clone(), port, pid, started_in: Duration::ZERO, log, child: Some(child), stdin };
        let probe = match spec.launch {
            Launch::Wrangler | Launch::MiniflareEdge => "/peerjs".to_owned(),
            Launch::MiniflareFloor => "/room/ready/stats".to_owned(),
            Launch::Peer | Launch::SocketIo => "/__bench/stats".to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if http_status(port, &probe) == Some(200) {
                break;
            }
            let exited = running.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some();
            if exited || Instant::now() > deadline {
                let out = running.log_text();
                running.stop();
                return Err(format!("{} did not start (GET {probe} != 200); log:\n{out}", spec.id));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        running.started_in = t0.elapsed();
        Ok(running)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes the leader's pipe (it SIGKILLs the group and cleans up); waits, bounded.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        // SAFETY: kill(2) on our own child's process group.
                        unsafe {
                            libc::kill(-(child.id() as i32), libc::SIGKILL);
                        }
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
