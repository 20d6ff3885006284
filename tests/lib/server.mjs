// Starts the real Worker under `wrangler dev` (workerd) on a free loopback port with a fresh
// persistence directory, for the Node test suites. The bundle must already be built
// (`bash scripts/build.sh`); EDGE_MEET_SKIP_BUILD=1 keeps each start from rebuilding.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
  let output = "";
  let child = null;
  let kill = () => {};

  // One wrangler process (and its workerd) on `port`. Each one is killed when this process exits,
  // whichever way the test ends, and its process group goes with it.
  async function spawnOne() {
    const c = spawn("npx", args, {
      cwd: ROOT,
      detached: true, // own process group, so stop() takes workerd down with wrangler
      stdio: ["ignore", opts.log ? "inherit" : "pipe", opts.log ? "inherit" : "pipe"],
      env: { ...process.env, EDGE_MEET_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false", BROWSER: "none", CI: "true" },
    });
    child = c;
    c.stdout?.on("data", (d) => { output += d; });
    c.stderr?.on("data", (d) => { output += d; });
    kill = () => { try { process.kill(-c.pid, "SIGKILL"); } catch {} };
    process.on("exit", kill);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
      try {
        const res = await fetch(`${url}/peerjs`);
        if (res.ok) break;
      } catch {}
      if (Date.now() > deadline) { kill(); throw new Error(`wrangler dev did not start in 60 s:\n${output}`); }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function killOne() {
    const c = child;
    kill();
    process.off("exit", kill);
    // SIGKILL of the group: `c` is npx; wait for it, then until nothing answers on the port.
    await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", r)));
    for (let i = 0; i < 50; i++) {
      try { await fetch(`${url}/peerjs`, { signal: AbortSignal.timeout(500) }); } catch { return; }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  await spawnOne();
  return {
    url, port, persistDir, wsUrl: `ws://127.0.0.1:${port}`,
    output: () => output,
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
