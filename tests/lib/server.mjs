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
 * @returns {Promise<{url: string, wsUrl: string, port: number, persistDir: string, stop: () => Promise<void>}>}
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
  const child = spawn("npx", args, {
    cwd: ROOT,
    detached: true, // own process group, so stop() takes workerd down with wrangler
    stdio: ["ignore", opts.log ? "inherit" : "pipe", opts.log ? "inherit" : "pipe"],
    env: { ...process.env, EDGE_MEET_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false", BROWSER: "none", CI: "true" },
  });
  let output = "";
  child.stdout?.on("data", (d) => { output += d; });
  child.stderr?.on("data", (d) => { output += d; });
  const kill = () => { try { process.kill(-child.pid, "SIGKILL"); } catch {} };
  process.on("exit", kill);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
    try {
      const res = await fetch(`${url}/peerjs`);
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) { kill(); throw new Error(`wrangler dev did not start in 60 s:\n${output}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url, port, persistDir, wsUrl: `ws://127.0.0.1:${port}`,
    output: () => output,
    async stop({ keepState = false } = {}) {
      kill();
      process.off("exit", kill);
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      if (ownDir && !keepState) rmSync(persistDir, { recursive: true, force: true });
    },
  };
}
