// Compressed bombs (permessage-deflate frames of a few KiB that inflate to 8-24 MiB) against the
// real Worker (under `wrangler dev`, and on Miniflare directly), and what compression a client
// is offered.
//
// wrangler.toml sets `no_web_socket_compression`, so the deployed Worker should never negotiate
// permessage-deflate. Locally that cannot be observed: the client's socket is terminated in
// front of our Worker, by miniflare's entry worker and, under `wrangler dev`, first by
// wrangler's proxy worker (ProxyWorker, compatibility date 2023-12-18, compression on), and
// both negotiate permessage-deflate whatever our flags say (the last test records it). So
// locally a bomb is always inflated by the runtime before our code sees it, the worst case.
// The burst is run on both local setups, `wrangler dev` (tests/lib/server.mjs) and the bundle on
// Miniflare directly with wrangler.toml's date, flags and vars (no wrangler proxy), and on both
// it asserts the bounds: every bombing socket is closed with 1009 (the shell refuses a
// frame by its JS string length before copying it into wasm; the third over-limit frame closes
// the socket), the bystander's chat keeps working, and its worst round trip during the burst is
// at most its baseline p50 + the runtime's own work on the bombs + 100 ms. The runtime's own work
// is what happens before any code of ours can look at a frame. Locally that is: the front worker
// (wrangler's proxy, or Miniflare's entry worker, both JavaScript) inflates each frame, turns it
// into a JS string and writes it out again as UTF-8 to our Worker (which negotiates no
// compression), whose runtime turns it into a JS string once more: one inflate and three
// string conversions per frame. Node's zlib and UTF-8 decode of the same frames stand in for
// them (inflateMsTotal and decodeMsTotal, ~120-130 and ~150-340 ms for the 248 MiB here), so the
// tight budget is p50 + inflate + 3 × decode + 100 ms, reported with each run; the assertion is
// the stall bound below (STALL_MS). Our handler refuses each frame by its length, in constant
// time. Deployed, there is no front worker and no compression at all. Measured on 2 cores,
// quiet: 130-950 ms worst; with other heavy jobs running (load average 6-7) wrangler dev once
// stalled 1.9 s.
//
// The bombs are deflated before anything is timed and written to the attackers' TCP sockets
// (ws's `_socket`, after ws negotiated permessage-deflate) as raw compressed frames (RSV1 set,
// masked): the burst arrives at wire speed and this process spends no CPU compressing while
// the bystander measures (2 shared cores).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import zlib from "node:zlib";
import WebSocket from "ws";
import { Miniflare } from "miniflare";
import { startServer, ROOT } from "../lib/server.mjs";

const MIB = 1024 * 1024;
const BOMB_MIB = [8, 16, 24];     // inflated sizes, rotated over each socket's bombs
const BOMBS_PER_SOCKET = 4;       // one past the third, which must close the socket
const PACE_MS = 120;              // bystander chat pace: ~8/s, under RATE_PER_SEC (10/s)
const BASELINE_SAMPLES = 15;
const DURING_MIN_SAMPLES = 10;    // after the burst starts, and at least until every bomber closed
const DURING_MAX_SAMPLES = 60;
const SLACK_MS = 100;             // the allowance beyond the runtime's own inflate
// What is asserted. The tight budget (p50 + inflate + 3 × decode + 100 ms) is printed with every
// run, but locally the front worker's share of the work varies run to run (worst round trips of
// 130-950 ms were seen on a quiet machine), so asserting it would make the suite flaky. The
// defect this guards against, each inflated frame copied into wasm and parsed before its size
// was checked, stalled a room for 2.3-12 s with a burst like this one: 2 s still catches it.
const STALL_MS = 2000;
const PERMESSAGE_DEFLATE = { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true };

let server;   // wrangler dev
let direct;   // Miniflare, no wrangler proxy: {url, wsUrl, stop}
const sockets = [];
let n = 0;
const uniq = (p) => `${p}${process.pid}x${++n}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A socket whose text frames are parsed and kept, with a way to wait for one. */
function open(target, path, opts = {}) {
  const ws = new WebSocket(`${target.wsUrl}${path}`, opts);
  sockets.push(ws);
  ws.frames = [];
  ws.waiters = [];
  ws.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: String(reason), at: performance.now() })));
  ws.on("error", () => {}); // a socket closed under a write; the close event carries the outcome
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    let f;
    try { f = JSON.parse(String(data)); } catch { return; }
    ws.frames.push(f);
    ws.waiters = ws.waiters.filter((w) => !(w.pred(f) && (w.resolve(f), true)));
  });
  return ws;
}

function next(ws, what, pred, ms = 8000) {
  const seen = ws.frames.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    ws.waiters.push({ pred, resolve: (f) => { clearTimeout(timer); resolve(f); } });
  });
}

function opened(ws, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no open within ${ms} ms`)), ms);
    ws.once("open", () => { clearTimeout(timer); resolve(); });
    ws.once("unexpected-response", (_req, res) => { clearTimeout(timer); reject(new Error(`upgrade answered ${res.statusCode}`)); });
  });
}

/** A registered PeerJS id on the room's server (answered with OPEN). */
async function peerjs(target, room, id, token, opts) {
  const ws = open(target, `/room/${room}/peerjs?key=peerjs&id=${id}&token=${token}&version=1.5.5`, opts);
  await opened(ws);
  await next(ws, "OPEN", (f) => f.type === "OPEN");
  return ws;
}

/** A room socket, joined as `id` when given. */
async function roomSocket(target, room, opts, id, token, name) {
  const ws = open(target, `/room/${room}/ws`, opts);
  await opened(ws);
  if (id) {
    ws.send(JSON.stringify({ type: "join", peerId: id, token, name }));
    const f = await next(ws, "welcome", (f) => f.type === "welcome" || f.type === "error");
    assert.equal(f.type, "welcome", `join ${name}: ${JSON.stringify(f)}`);
  }
  return ws;
}

/**
 * A compressed text frame as a client sends it: the JSON `head + "a"*mib MiB + tail`, deflated
 * (sync flush, trailing 00 00 ff ff removed, RFC 7692), RSV1 set, masked. Also how long node's
 * zlib takes to inflate it back (best of 3): the reference for the runtime's own inflate; and,
 * recorded only, how long turning the inflated bytes into a JS string takes (the runtime does that
 * too before our handler can look at the string's length).
 */
function bomb(head, tail, mib) {
  const inflated = Buffer.alloc(head.length + mib * MIB + tail.length, "a");
  inflated.write(head, 0, "latin1");
  inflated.write(tail, head.length + mib * MIB, "latin1");
  const flushed = zlib.deflateRawSync(inflated, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...flushed.subarray(-4)], [0, 0, 0xff, 0xff]);
  const payload = flushed.subarray(0, -4);
  let inflateMs = Infinity;
  let decodeMs = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const back = zlib.inflateRawSync(flushed, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const t1 = performance.now();
    const text = back.toString("utf8"); // what the runtime must also do: the event's data is a JS string
    decodeMs = Math.min(decodeMs, performance.now() - t1);
    inflateMs = Math.min(inflateMs, t1 - t0);
    assert.equal(text.length, inflated.length);
  }
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0xc1, 0x80 | len])
    : len < 65536 ? Buffer.from([0xc1, 0x80 | 126, len >> 8, len & 0xff])
    : Buffer.concat([Buffer.from([0xc1, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3];
  return { frame: Buffer.concat([header, mask, masked]), wire: header.length + 4 + len, inflated: inflated.length, inflateMs, decodeMs };
}

/** One chat round trip of the bystander: send, wait for its own echo. */
async function roundTrip(ws, i) {
  const text = `rtt ${i}`;
  const t0 = performance.now();
  ws.send(JSON.stringify({ type: "chat", text }));
  await next(ws, `echo of "${text}"`, (f) => f.type === "chat" && f.message?.text === text, 10000);
  return performance.now() - t0;
}

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const r1 = (x) => Math.round(x * 10) / 10;

async function stats(target, room) {
  const res = await fetch(`${target.url}/room/${room}/stats`);
  return res.json();
}

/** The bundle on Miniflare with wrangler.toml's date, flags and vars (as bench/miniflare-serve.mjs). */
async function startDirect() {
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)[1];
  const compatibilityFlags = JSON.parse(/^compatibility_flags\s*=\s*(\[[^\]]*\])/m.exec(toml)[1]);
  const bindings = {};
  const section = /^\[vars\]\s*$([\s\S]*?)(^\[|(?![\s\S]))/m.exec(toml)[1];
  for (const m of section.matchAll(/^([A-Z_][A-Z0-9_]*)\s*=\s*"([^"]*)"/gm)) bindings[m[1]] = m[2];
  Object.assign(bindings, { DEBUG_STATS: "true", ICE_SERVERS: "[]" });
  const mf = new Miniflare({
    scriptPath: join(ROOT, "build/index.js"),
    modules: true,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate,
    compatibilityFlags,
    durableObjects: { ROOMS: { className: "Room", useSQLite: true }, PEERJS: { className: "PeerServer", useSQLite: true } },
    bindings,
    host: "127.0.0.1",
    port: 0,
  });
  const url = String(await mf.ready).replace(/\/$/, "");
  return { url, wsUrl: url.replace(/^http/, "ws"), stop: () => mf.dispose() };
}

before(async () => {
  [server, direct] = await Promise.all([startServer(), startDirect()]);
});

after(async () => {
  for (const ws of sockets) { try { ws.terminate(); } catch {} }
  await Promise.allSettled([server?.stop(), direct?.stop()]);
});

/**
 * The burst on one server: a bystander measures chat round trips before and while four sockets
 * offering permessage-deflate bomb the room; asserts the closes and that chat keeps working,
 * and returns the figures for the delay bound.
 */
async function burst(t, target, label) {
  const ROOM = `bombs${label}${process.pid}`;
  // The bystander: a seated member that never offers compression.
  const by = { id: uniq("by"), token: uniq("t") };
  await peerjs(target, ROOM, by.id, by.token);
  const byRoom = await roomSocket(target, ROOM, { perMessageDeflate: false }, by.id, by.token, "Bystander");

  // The attackers, all offering permessage-deflate: one seated member (its room socket and its
  // PeerJS socket) and two room sockets that never join.
  const at = { id: uniq("at"), token: uniq("t") };
  const atPeer = await peerjs(target, ROOM, at.id, at.token, { perMessageDeflate: PERMESSAGE_DEFLATE });
  const bombers = [
    { name: "room-joined", ws: await roomSocket(target, ROOM, { perMessageDeflate: PERMESSAGE_DEFLATE }, at.id, at.token, "Attacker"), kind: "chat" },
    { name: "room-unjoined-1", ws: await roomSocket(target, ROOM, { perMessageDeflate: PERMESSAGE_DEFLATE }), kind: "chat" },
    { name: "room-unjoined-2", ws: await roomSocket(target, ROOM, { perMessageDeflate: PERMESSAGE_DEFLATE }), kind: "chat" },
    { name: "peerjs", ws: atPeer, kind: "offer" },
  ];
  const extensions = bombers.map((b) => b.ws.extensions);
  if (!extensions.every((e) => e.includes("permessage-deflate"))) {
    // What the deployed Worker does (no_web_socket_compression): no compression, no bomb.
    t.skip(`permessage-deflate not negotiated (${JSON.stringify(extensions)}): nothing to inflate`);
    return null;
  }

  // The bombs, built before anything is timed.
  const heads = {
    chat: ['{"type":"chat","text":"', '"}'],
    offer: [`{"type":"OFFER","dst":"${by.id}","payload":{"type":"media","connectionId":"mc_bomb","sdp":{"type":"offer","sdp":"`, '"}}}'],
  };
  const built = {};
  for (const kind of ["chat", "offer"]) for (const mib of BOMB_MIB) built[`${kind}${mib}`] = bomb(...heads[kind], mib);
  const plan = bombers.flatMap((b, s) => Array.from({ length: BOMBS_PER_SOCKET }, (_, i) => ({ b, bomb: built[`${b.kind}${BOMB_MIB[(s + i) % BOMB_MIB.length]}`] })));
  const wireBytes = plan.reduce((a, p) => a + p.bomb.wire, 0);
  const inflatedBytes = plan.reduce((a, p) => a + p.bomb.inflated, 0);
  const inflateMsTotal = plan.reduce((a, p) => a + p.bomb.inflateMs, 0);
  const decodeMsTotal = plan.reduce((a, p) => a + p.bomb.decodeMs, 0);
  const inflateMsEach = Object.fromEntries(BOMB_MIB.map((m) => [m, r1(built[`chat${m}`].inflateMs)]));
  const wireKiBEach = Object.fromEntries(BOMB_MIB.map((m) => [m, r1(built[`chat${m}`].wire / 1024)]));

  // Baseline.
  const before = [];
  for (let i = 0; i < BASELINE_SAMPLES; i++) {
    const t0 = performance.now();
    before.push(await roundTrip(byRoom, `b${i}`));
    await sleep(Math.max(0, PACE_MS - (performance.now() - t0)));
  }
  const messagesBefore = (await stats(target, ROOM)).events.message;

  // The burst: every bomb written at once, while the bystander keeps its pace.
  const burstAt = performance.now();
  for (const { b, bomb } of plan) b.ws._socket.write(bomb.frame);
  const closes = bombers.map((b) => b.ws.closed);
  let allClosed = false;
  Promise.all(closes).then(() => { allClosed = true; });
  const during = [];
  while (during.length < DURING_MAX_SAMPLES && (during.length < DURING_MIN_SAMPLES || !allClosed)) {
    const t0 = performance.now();
    during.push(await roundTrip(byRoom, `d${during.length}`));
    await sleep(Math.max(0, PACE_MS - (performance.now() - t0)));
  }
  const outcomes = await Promise.all(closes.map((c) => Promise.race([c, sleep(5000).then(() => null)])));
  const messagesAfter = (await stats(target, ROOM)).events.message;

  const closeCodes = bombers.map((b, i) => `${b.name}:${outcomes[i] ? outcomes[i].code : "open"}`);
  const detail = bombers.map((b, i) => ({
    socket: b.name,
    close: outcomes[i] && { code: outcomes[i].code, reason: outcomes[i].reason, afterMs: Math.round(outcomes[i].at - burstAt) },
    frameTooLarge: b.ws.frames.filter((f) => f.type === "error" && f.code === "frame-too-large").length,
  }));
  const p50Before = quantile(before, 0.5);
  const p50During = quantile(during, 0.5);
  const maxDuring = Math.max(...during);
  const budget = p50Before + inflateMsTotal + 3 * decodeMsTotal + SLACK_MS;
  console.log(`[figure] compression bombs=${plan.length} wireKiB=${r1(wireBytes / 1024)} inflatedMiB=${r1(inflatedBytes / MIB)} ` +
    `inflateMsEach=${JSON.stringify(inflateMsEach)} inflateMsTotal=${r1(inflateMsTotal)} decodeMsTotal=${r1(decodeMsTotal)} ` +
    `bystander p50 before=${r1(p50Before)} p50 during=${r1(p50During)} max during=${r1(maxDuring)} budget=${r1(budget)} ` +
    `closeCodes=${closeCodes.join(",")} server=${label}`);
  console.log(`[detail] compression server=${label} wireKiBEach=${JSON.stringify(wireKiBEach)} extensions=${JSON.stringify(extensions[0])} ` +
    `handlerMessages=${messagesAfter - messagesBefore - during.length} (bystander's ${during.length} excluded) ` +
    `sockets=${JSON.stringify(detail)} during=${JSON.stringify(during.map(Math.round))}`);

  // Every bomber closed, by our Worker (1009, "frames over the size limit"); a runtime that
  // refused a message over its own limit would show here with its own code and reason.
  for (const [i, o] of outcomes.entries()) {
    assert.ok(o, `${label}: ${bombers[i].name} still open 5 s after the burst`);
    assert.equal(o.code, 1009, `${label}: ${bombers[i].name} closed with ${o.code} "${o.reason}"`);
  }
  // The bystander's chat kept working: every round trip above completed, and one more does.
  await roundTrip(byRoom, "after");
  return { maxDuring, p50Before, inflateMsTotal, decodeMsTotal, budget };
}

test("compressed bombs on Miniflare directly: bombers closed, the bystander's chat never stalls", { timeout: 45000 }, async (t) => {
  const r = await burst(t, direct, "miniflare");
  if (!r) return;
  console.log(`[figure] compression tight budget ${r.maxDuring <= r.budget ? "met" : "missed"}: worst ${r1(r.maxDuring)} ms, budget ${r1(r.budget)} ms`);
  assert.ok(r.maxDuring <= STALL_MS, `the bystander stalled ${r1(r.maxDuring)} ms (> ${STALL_MS} ms)`);
});

test("compressed bombs under wrangler dev: bombers closed, the bystander's chat never stalls", { timeout: 45000 }, async (t) => {
  const r = await burst(t, server, "wrangler-dev");
  if (!r) return;
  console.log(`[figure] compression tight budget ${r.maxDuring <= r.budget ? "met" : "missed"}: worst ${r1(r.maxDuring)} ms, budget ${r1(r.budget)} ms`);
  assert.ok(r.maxDuring <= STALL_MS, `the bystander stalled ${r1(r.maxDuring)} ms (> ${STALL_MS} ms)`);
});

test("compression negotiation as a client sees it locally", { timeout: 20000 }, async () => {
  // The deployed Worker runs with `no_web_socket_compression`: a client offering
  // permessage-deflate would get no Sec-WebSocket-Extensions back. That cannot be observed here:
  // locally the client's socket is terminated by miniflare's entry worker (and under `wrangler
  // dev` first by wrangler's proxy worker), which negotiate compression themselves whatever our
  // flags say. So this records what they negotiate, and asserts only what holds everywhere: a
  // client that offers nothing gets nothing, and the client's view matches the server's answer.
  const token = uniq("t");
  const seen = {};
  for (const [label, target] of [["wrangler-dev", server], ["miniflare", direct]]) {
    for (const [name, offer] of [["offered", { perMessageDeflate: true }], ["not-offered", { perMessageDeflate: false }]]) {
      for (const [kind, path] of [["peerjs", `/room/neg${process.pid}/peerjs?key=peerjs&id=${uniq("neg")}&token=${token}&version=1.5.5`], ["room", `/room/neg${process.pid}/ws`]]) {
        const ws = open(target, path, offer);
        let header;
        ws.once("upgrade", (res) => { header = res.headers["sec-websocket-extensions"]; });
        await opened(ws);
        seen[`${label} ${kind} ${name}`] = header ?? "(none)";
        if (name === "not-offered") assert.equal(header, undefined, `${label} ${kind}: extensions answered to a client that offered none`);
        assert.equal(ws.extensions.includes("permessage-deflate"), /permessage-deflate/.test(header ?? ""));
        ws.terminate();
      }
    }
  }
  console.log(`[figure] compression negotiation (local front workers, not the deployed Worker) ${JSON.stringify(seen)}`);
});
