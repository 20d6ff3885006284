// Shared helpers for the browser tests: one Chromium per test file, one browser context per
// person, assertions on real decoded frames (getStats via window.__pcs), and a TCP proxy that can
// cut one person's network. Every person's page is opened with the app's debug hook on
// (public/js/debug.js), which is what puts window.__edgeMeet and window.__pcs there.
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join as pathJoin, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ARTIFACTS = pathJoin(dirname(fileURLToPath(import.meta.url)), "artifacts");

export const CHROMIUM_ARGS = [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-gpu",
  "--no-first-run",
  // getDisplayMedia in headless: pick the (fake) entire screen without a picker.
  "--auto-select-desktop-capture-source=Entire screen",
  "--mute-audio",
];

export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

export function artifactPath(name) {
  if (!existsSync(ARTIFACTS)) mkdirSync(ARTIFACTS, { recursive: true });
  const ignore = pathJoin(ARTIFACTS, ".gitignore");
  if (!existsSync(ignore)) writeFileSync(ignore, "*\n!.gitignore\n");
  return pathJoin(ARTIFACTS, name);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A person: their own browser context (own storage, own camera), on the room page.
 * Records uncaught errors, CSP violations and dialogs (alert() must never run).
 */
export async function openPerson(browser, baseUrl, room, name, opts = {}) {
  const ctx = await browser.newContext({
    viewport: opts.viewport ?? { width: 1280, height: 720 },
    isMobile: opts.isMobile ?? false,
    hasTouch: opts.isMobile ?? false,
    deviceScaleFactor: 1,
  });
  await ctx.addInitScript(enableHooks);
  await ctx.addInitScript(recordToasts);
  if (opts.initScript) await ctx.addInitScript(opts.initScript);
  const page = await ctx.newPage();
  const p = { name, ctx, page, errors: [], dialogs: [], csp: [], consoleErrors: [] };
  page.on("pageerror", (e) => p.errors.push(e.message));
  page.on("console", (m) => {
    const t = m.text();
    if (/Content Security Policy/i.test(t)) p.csp.push(t);
    if (m.type() === "error") p.consoleErrors.push(t);
  });
  page.on("dialog", (d) => {
    p.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  const q = name == null ? "" : `?name=${encodeURIComponent(name)}`;
  await page.goto(`${baseUrl}/room/${room}${q}`);
  if (opts.join !== false) await join(p);
  return p;
}

/** Runs in the page before its scripts: turns on the debug hook (public/js/debug.js). */
function enableHooks() {
  globalThis.__edgeMeetHooks = true;
}

/**
 * Runs in the page before its scripts: keeps the text of every toast ever shown in
 * window.__toastLog, so a test can check a toast that came and went while it was busy elsewhere.
 */
function recordToasts() {
  window.__toastLog = [];
  const watch = () =>
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) if (n.classList?.contains("toast")) window.__toastLog.push(n.textContent);
      }
    }).observe(document.body, { childList: true, subtree: true });
  if (document.body) watch();
  else document.addEventListener("DOMContentLoaded", watch);
}

/** Waits until the page has shown a toast containing `text` (now or earlier). */
export async function waitForToast(page, text, timeout = 10_000) {
  await page.waitForFunction((t) => window.__toastLog?.some((x) => x.includes(t)), text, { timeout });
}

/** Clicks Join in the lobby and waits for the call screen. */
export async function join(p, timeout = 15_000) {
  await p.page.getByTestId("join-button").click();
  await p.page.waitForFunction(() => document.body.dataset.screen === "call", null, { timeout });
}

/** Waits until the page shows exactly `n` remote videos that all have decoded a frame. */
export async function waitForRemoteVideos(page, n, timeout = 20_000) {
  await page.waitForFunction(
    (n) => {
      const v = [...document.querySelectorAll('video[data-testid="remote-video"]')];
      return v.length === n && v.every((x) => x.readyState >= 2 && x.videoWidth > 0);
    },
    n,
    { timeout },
  );
}

/** Remote peer ids shown as videos on the page. */
export function remotePeerIds(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('video[data-testid="remote-video"]')].map((v) => v.dataset.peerId),
  );
}

/** {peerId: summed framesDecoded of inbound-rtp video} for every RTCPeerConnection in __pcs. */
export function framesDecoded(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const [id, pc] of window.__pcs ?? new Map()) {
      let n = 0;
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && (r.kind === "video" || r.mediaType === "video")) n += r.framesDecoded ?? 0;
      });
      out[id] = n;
    }
    return out;
  });
}

/**
 * Samples framesDecoded twice, `ms` apart, and returns {peerId: delta} for the peers shown as
 * remote videos. Retries a few times so one slow sample on a busy machine is not a failure;
 * the caller asserts every delta is > 0.
 */
export async function frameDeltas(page, { ms = 500, tries = 6 } = {}) {
  let deltas = {};
  for (let i = 0; i < tries; i++) {
    const ids = await remotePeerIds(page);
    const a = await framesDecoded(page);
    await sleep(ms);
    const b = await framesDecoded(page);
    deltas = Object.fromEntries(ids.map((id) => [id, (b[id] ?? 0) - (a[id] ?? NaN)]));
    if (ids.length && Object.values(deltas).every((d) => d > 0)) return deltas;
  }
  return deltas;
}

/** The current peer id of a person (their own welcome). */
export function selfPeerId(page) {
  return page.evaluate(() => window.__edgeMeet?.self?.peerId ?? null);
}

/**
 * A TCP proxy in front of the server, so one person's network can be cut for real: cut() resets
 * every connection and refuses new ones until restore(). WebRTC media does not go through it.
 */
export function startProxy(targetPort) {
  const live = new Set();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy?.() ?? client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    live.add(pair);
    const end = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        cut() {
          refusing = true;
          for (const { client, upstream } of live) {
            client.resetAndDestroy?.() ?? client.destroy();
            upstream.destroy();
          }
          live.clear();
        },
        restore() {
          refusing = false;
        },
        close() {
          this.cut();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}

/**
 * Init script: the page's camera asks for 320x180 at 15 fps, so a machine with two cores can run
 * several people decoding each other for a minute without dropping behind.
 */
export function smallVideo() {
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = (c = {}) => {
    if (!c.video) return orig(c);
    const v = typeof c.video === "object" ? c.video : {};
    return orig({ ...c, video: { ...v, width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } } });
  };
}

/**
 * Samples framesDecoded of every remote video on every page every `everyMs` until stop().
 * `expect` maps a person's name to the peer ids it must be decoding all along; a stream that is
 * missing, or whose count does not rise (or drops: a new RTCPeerConnection), is a window without
 * progress. stop() returns {windows, minFrames, longestGapMs, maxWindowMs, stalls} where a
 * window is one interval between two samples of one stream, and a gap is the time between two
 * samples that showed progress.
 */
export function sampleFrames(people, expect, { everyMs = 500 } = {}) {
  let running = true;
  const windows = [];
  const stalls = [];
  const lastProgress = new Map(); // "name→peer" → time of the last sample that showed progress
  let longestGapMs = 0;
  let maxWindowMs = 0;
  const loop = (async () => {
    let prev = null;
    while (running) {
      const t = Date.now();
      const snap = await Promise.all(people.map((p) => framesDecoded(p.page).catch(() => ({}))));
      const t1 = Date.now();
      if (prev) {
        maxWindowMs = Math.max(maxWindowMs, t1 - prev.t);
        people.forEach((p, i) => {
          for (const id of expect[p.name]) {
            const key = `${p.name}→${id}`;
            const frames = (snap[i][id] ?? NaN) - (prev.snap[i][id] ?? NaN);
            windows.push(frames);
            if (frames > 0) {
              longestGapMs = Math.max(longestGapMs, t1 - (lastProgress.get(key) ?? prev.t));
              lastProgress.set(key, t1);
            } else {
              stalls.push({ key, at: new Date(t1).toISOString(), frames });
            }
          }
        });
      } else {
        for (const p of people) for (const id of expect[p.name]) lastProgress.set(`${p.name}→${id}`, t1);
      }
      prev = { t: t1, snap };
      await sleep(Math.max(0, everyMs - (Date.now() - t)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const numeric = windows.map((w) => (Number.isNaN(w) ? -1 : w));
      return { windows: windows.length, minFrames: Math.min(...numeric), longestGapMs, maxWindowMs, stalls };
    },
  };
}

/** Marks every RTCPeerConnection in the page's __pcs; pcTags() then tells whether they are the same objects. */
export function tagPcs(page) {
  return page.evaluate(() => {
    for (const [id, pc] of window.__pcs) pc.__tag ??= `${id}:${Math.random().toString(36).slice(2)}`;
    return [...window.__pcs.values()].map((pc) => pc.__tag).sort();
  });
}

export function pcTags(page) {
  return page.evaluate(() => [...window.__pcs.values()].map((pc) => pc.__tag ?? "new").sort());
}

/** Every toast the page has shown that says someone left or dropped out. */
export function leftToasts(page) {
  return page.evaluate(() => (window.__toastLog ?? []).filter((t) => / left\b|lost connection/.test(t)));
}
