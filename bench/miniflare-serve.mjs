// Runs a Worker bundle directly on workerd through Miniflare's JS API (no wrangler, no proxy
// worker), the way workers-rs tests its own bundle. Used by the benchmark for two systems:
//   node bench/miniflare-serve.mjs edge  --port P [--var NAME=VALUE ...]   build/index.js (Rust)
//   node bench/miniflare-serve.mjs floor --port P                          bench/floor/worker.js
//   node bench/miniflare-serve.mjs floor-variant --port P --var EXTRA=...  bench/floor/variants.js
// Prints "READY <url>" once it serves; SIGTERM/SIGINT dispose of workerd and exit.
import { Miniflare } from "miniflare";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const mode = args.shift();
let port = 0;
const vars = {};
while (args.length) {
  const a = args.shift();
  if (a === "--port") port = Number(args.shift());
  else if (a === "--var") {
    const kv = args.shift();
    const i = kv.indexOf("=");
    vars[kv.slice(0, i)] = kv.slice(i + 1);
  } else throw new Error(`unknown argument ${a}`);
}

// Same compatibility date as the deployment (wrangler.toml), so runtime behaviour matches.
const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "2026-05-01";

let options;
if (mode === "edge") {
  // Every [vars] default of wrangler.toml, then the overrides given on the command line.
  const bindings = {};
  const section = /^\[vars\]\s*$([\s\S]*?)(^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? "";
  for (const m of section.matchAll(/^([A-Z_][A-Z0-9_]*)\s*=\s*"([^"]*)"/gm)) bindings[m[1]] = m[2];
  Object.assign(bindings, vars);
  options = {
    scriptPath: join(ROOT, "build/index.js"),
    modules: true,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate,
    durableObjects: {
      ROOMS: { className: "Room", useSQLite: true },
      PEERJS: { className: "PeerServer", useSQLite: true },
    },
    // No ASSETS binding: only the pages use it, and they are not benchmarked.
    bindings,
  };
} else if (mode === "floor") {
  options = {
    scriptPath: join(ROOT, "bench/floor/worker.js"),
    modules: true,
    compatibilityDate,
    durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
  };
} else if (mode === "floor-variant") {
  // The floor plus chosen per-message costs (bench/floor/variants.js); attribution only.
  options = {
    scriptPath: join(ROOT, "bench/floor/variants.js"),
    modules: true,
    compatibilityDate,
    durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
    bindings: vars,
  };
} else {
  throw new Error("usage: miniflare-serve.mjs edge|floor|floor-variant --port P [--var NAME=VALUE]");
}

const mf = new Miniflare({ ...options, host: "127.0.0.1", port, log: undefined });
const url = await mf.ready;
console.log(`READY ${url}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try { await mf.dispose(); } finally { process.exit(0); }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
