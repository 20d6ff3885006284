//! Bundle size: gzip of what `build/` holds, and what `wrangler deploy --dry-run` reports.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use crate::util::round;

pub fn gzip_len(bytes: &[u8]) -> usize {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory").len()
}

fn file_sizes(path: &Path) -> Option<(usize, usize)> {
    let b = std::fs::read(path).ok()?;
    Some((b.len(), gzip_len(&b)))
}

fn kib(n: usize) -> f64 {
    round(n as f64 / 1024.0, 1)
}

/// edge-meet's bundle (build/index_bg.wasm + build/index.js), the dry-run upload, and the floor.
pub fn measure(root: &Path) -> Value {
    let wasm = file_sizes(&root.join("build/index_bg.wasm"));
    let js = file_sizes(&root.join("build/index.js"));
    let floor = file_sizes(&root.join("bench/floor/worker.js"));
    let dry = dry_run(root);
    let total_gz = wasm.zip(js).map(|(w, j)| w.1 + j.1);
    json!({
        "wasm_bytes": wasm.map(|x| x.0), "wasm_gzip_bytes": wasm.map(|x| x.1),
        "js_bytes": js.map(|x| x.0), "js_gzip_bytes": js.map(|x| x.1),
        "gzip_kib": total_gz.map(kib),
        "wasm_gzip_kib": wasm.map(|x| kib(x.1)), "js_gzip_kib": js.map(|x| kib(x.1)),
        "floor_gzip_kib": floor.map(|x| kib(x.1)),
        "dry_run": dry,
    })
}

/// Runs `wrangler deploy --dry-run --outdir` (no network: it only bundles) and reads its
/// "Total Upload: X KiB / gzip: Y KiB" line.
fn dry_run(root: &Path) -> Value {
    let out = std::env::temp_dir().join(format!("edge-meet-bench-dry-{}", std::process::id()));
    let res = Command::new("npx")
        .args(["wrangler", "deploy", "--dry-run", "--outdir"])
        .arg(&out)
        .current_dir(root)
        .env("EDGE_MEET_SKIP_BUILD", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true")
        .output();
    let mut files = serde_json::Map::new();
    if let Ok(dir) = std::fs::read_dir(&out) {
        for e in dir.flatten() {
            if let Some((raw, gz)) = file_sizes(&e.path()) {
                files.insert(e.file_name().to_string_lossy().into_owned(), json!({"bytes": raw, "gzip_bytes": gz}));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let Ok(res) = res else { return json!({"error": "could not run npx wrangler"}) };
    let text = format!("{}{}", String::from_utf8_lossy(&res.stdout), String::from_utf8_lossy(&res.stderr));
    let line = text.lines().find(|l| l.contains("Total Upload")).map(|l| l.trim().to_owned());
    // "Total Upload: 735.02 KiB / gzip: 249.12 KiB"
    let num_after = |l: &str, key: &str| -> Option<f64> {
        let rest = &l[l.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    json!({
        "ok": res.status.success(),
        "line": line,
        "upload_kib": line.as_deref().and_then(|l| num_after(l, "Total Upload:")),
        "upload_gzip_kib": line.as_deref().and_then(|l| num_after(l, "gzip:")),
        "files": files,
    })
}
