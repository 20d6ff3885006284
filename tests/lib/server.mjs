// Starts the real Worker under `wrangler dev` (workerd) on a free loopback port with a fresh
// persistence directory, for the Node test suites. The bundle must already be built
// (`bash scripts/build.sh`); EDGE_MEET_SKIP_BUILD=1 keeps each start from rebuilding.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A free TCP port on 127.0.0.1 (the OS picks it; we release it just before wrangler binds). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * @param {{vars?: Record<string,string>, persistDir?: string, log?: boolean}} opts
 * @returns {Promise<{url: string, wsUrl: string, port: number, persistDir: string, stop: () => Promise<void>, restart: () => Promise<void>}>}
 */
export async function startServer(opts = {}) {
  const port = await freePort();
  const persistDir = opts.persistDir ?? mkdtempSync(join(tmpdir(), "edge-meet-"));
  const ownDir = !opts.persistDir;
  const args = ["wrangler", "dev", "--ip", "127.0.0.1", "--port", String(port),
    "--persist-to", persistDir, "--inspector-port", "0", "--log-level", opts.log ? "info" : "warn"];
  for (const [k, v] of Object.entries({ DEBUG_STATS: "true", ICE_SERVERS: "[]", ...(opts.vars ?? {}) })) {
    args.push("--var", `${k}:${v}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const leader = join(ROOT, "scripts", "group-leader.sh");
  let child = null;
  let work = null;
  let output = "";

  // One wrangler process (and its workerd) on `port`, under scripts/group-leader.sh (the same
  // leader the Rust suites and the load generator use): it runs wrangler in a process group of
  // its own and blocks on a pipe whose write end only this process holds. When the pipe closes —
  // stop(), a normal exit, a crash, or SIGKILL of the test runner — the leader SIGKILLs the whole
  // group, so no server outlives its test.
  async function spawnOne() {
    work = mkdtempSync(join(tmpdir(), "edge-meet-srv-"));
    const log = join(work, "wrangler.log");
    const c = spawn("sh", [leader, log, work, "", "npx", ...args], {
      cwd: ROOT,
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
      env: { ...process.env, EDGE_MEET_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false", BROWSER: "none", CI: "true" },
    });
    c.stdin.on("error", () => {}); // the leader may already be gone
    // Neither the leader nor its pipe keeps this process alive: when it exits, the pipe closes.
    c.unref();
    c.stdin.unref?.();
    child = { c, log };
    const readLog = () => { try { return readFileSync(log, "utf8"); } catch { return ""; } };
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`wrangler dev exited early:\n${readLog()}`);
      try {
        const res = await fetch(`${url}/peerjs`);
        if (res.ok) break;
      } catch {}
      if (Date.now() > deadline) {
        output = readLog();
        await killOne();
        throw new Error(`wrangler dev did not start in 60 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function killOne() {
    if (!child) return;
    const { c, log } = child;
    child = null;
    try { output += readFileSync(log, "utf8"); } catch {}
    if (opts.log) process.stdout.write(output);
    // Any line (or EOF) tells the leader to SIGKILL the group, reap it and delete its workdir.
    await new Promise((r) => {
      if (c.exitCode !== null || c.signalCode !== null) return r();
      c.ref(); // wait for it: an unref'd child would let the event loop end under this await
      c.once("exit", r);
      try { c.stdin.end("stop\n"); } catch { r(); }
    });
    for (let i = 0; i < 50; i++) {
      try { await fetch(`${url}/peerjs`, { signal: AbortSignal.timeout(500) }); } catch { return; }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  await spawnOne();
  return {
    url, port, persistDir, wsUrl: `ws://127.0.0.1:${port}`,
    output: () => { try { return output + (child ? readFileSync(child.log, "utf8") : ""); } catch { return output; } },
    /**
     * Kills the server (SIGKILL: every socket drops at once, as in a crash or a redeploy) and
     * starts it again on the same port with the same persistence directory. Resolves when it
     * answers again.
     */
    async restart() {
      await killOne();
      await spawnOne();
    },
    async stop({ keepState = false } = {}) {
      await killOne();
      if (ownDir && !keepState) rmSync(persistDir, { recursive: true, force: true });
    },
  };
}
