//! Resident memory and CPU time of a server's whole process tree, read from /proc. A system is
//! everything started for it: wrangler's Node process and both of its workerd children,
//! Miniflare's Node process and its workerd, or a single Node process.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/<pid>/stat times.
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

struct Stat {
    ppid: u32,
    /// utime + stime + cutime + cstime, in ticks: the process's own CPU time plus that of its
    /// children that already exited (those are no longer in the tree, so nothing is counted twice).
    ticks: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let ppid = f.get(1)?.parse().ok()?;
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Some(Stat { ppid, ticks: t(11) + t(12) + t(13) + t(14) })
}

/// `root` and every process descending from it.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some(st) = read_stat(pid) {
                    children.entry(st.ppid).or_default().push(pid);
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied());
        }
        i += 1;
    }
    out
}

fn rss_kb(pid: u32) -> u64 {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sum of VmRSS over the tree, in KiB. Shared pages (the workerd binary) count once per
/// process, as `ps` would show them; the per-socket figures use differences, where they cancel.
pub fn tree_rss_kb(root: u32) -> u64 {
    tree(root).into_iter().map(rss_kb).sum()
}

/// CPU seconds used so far by the tree.
pub fn tree_cpu_s(root: u32) -> f64 {
    let ticks: u64 = tree(root).into_iter().filter_map(read_stat).map(|s| s.ticks).sum();
    ticks as f64 / clk_tck()
}

/// The process names of the tree, for the report ("node, workerd, workerd").
pub fn tree_names(root: u32) -> Vec<String> {
    tree(root)
        .into_iter()
        .skip(1)
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}
