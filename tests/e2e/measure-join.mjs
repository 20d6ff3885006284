#!/usr/bin/env node
// Measures how long joining a 4-person meeting takes, as the person joining sees it: from the
// click on "Join now" to the first remote video frame on their screen (and to frames from all
// three others). Each run uses a fresh room: three people join first (not timed), then the fourth
// opens the lobby, waits until it is settled, and clicks Join.
//
//   node tests/e2e/measure-join.mjs [--runs 7] [--url http://127.0.0.1:8787]
//
// Without --url it starts its own server (tests/lib/server.mjs, ICE_SERVERS=[]).
import { startServer } from "../lib/server.mjs";
import { launch, openPerson, waitForRemoteVideos } from "./helpers.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const RUNS = Math.max(5, Number(opt("runs", 7)));
const URL_ARG = opt("url", null);

/** In the joiner's page: time the Join click and the first frame of every remote video. */
const INSTRUMENT = () => {
  window.__m = { click: null, frames: {} };
  document.addEventListener("click", (e) => {
    if (e.target.closest?.('[data-testid="join-button"]') && window.__m.click == null) window.__m.click = performance.now();
  }, true);
  new MutationObserver(() => {
    for (const v of document.querySelectorAll('video[data-testid="remote-video"]')) {
      if (v.__watched) continue;
      v.__watched = true;
      const id = v.dataset.peerId;
      const first = () => { window.__m.frames[id] ??= performance.now(); };
      if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(first);
      else v.addEventListener("loadeddata", first, { once: true });
    }
  }).observe(document, { childList: true, subtree: true });
};

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

const server = URL_ARG ? null : await startServer();
const base = URL_ARG ?? server.url;
const browser = await launch();
const first = [];
const all = [];
let failed = 0;
try {
  for (let run = 1; run <= RUNS; run++) {
    const room = `measure-${Date.now().toString(36)}-${run}`;
    const members = [];
    for (const name of ["Ada", "Grace", "Linus"]) members.push(await openPerson(browser, base, room, name));
    for (const m of members) await waitForRemoteVideos(m.page, 2);

    const joiner = await openPerson(browser, base, room, "Margaret", { join: false, initScript: INSTRUMENT });
    // Let the lobby settle (camera preview up, sockets pre-connected) like a person reading it.
    await joiner.page.waitForFunction(() => document.querySelector('[data-testid="local-video"]').videoWidth > 0);
    await joiner.page.waitForTimeout(1000);
    await joiner.page.getByTestId("join-button").click();
    try {
      await waitForRemoteVideos(joiner.page, 3, 30_000);
      await joiner.page.waitForFunction(() => Object.keys(window.__m.frames).length >= 3, null, { timeout: 10_000 });
    } catch (e) {
      const state = await joiner.page.evaluate(() => ({
        screen: document.body.dataset.screen,
        error: document.querySelector("#lobby-error")?.textContent,
        calls: [...(window.__pcs ?? new Map())].map(([k, pc]) => [k.slice(0, 8), pc.connectionState]),
        frames: window.__m.frames,
      }));
      console.log(`run ${run}: FAILED (${e.message.split("\n")[0]}) ${JSON.stringify(state)}`);
      failed++;
      for (const p of [...members, joiner]) await p.ctx.close();
      continue;
    }
    const m = await joiner.page.evaluate(() => window.__m);
    const times = Object.values(m.frames).map((t) => t - m.click);
    const f = Math.min(...times);
    const a = Math.max(...times);
    first.push(f);
    all.push(a);
    console.log(`run ${run}: first remote frame ${f.toFixed(0)} ms, all three ${a.toFixed(0)} ms`);
    for (const p of [...members, joiner]) await p.ctx.close();
  }
} finally {
  await browser.close();
  await server?.stop();
}
if (!first.length) {
  console.log(`all ${RUNS} runs failed`);
  process.exit(1);
}
console.log(
  `\njoin click → first remote frame, ${first.length} runs${failed ? ` (${failed} failed)` : ""}: p50 ${pct(first, 50).toFixed(0)} ms ` +
    `(min ${Math.min(...first).toFixed(0)}, max ${Math.max(...first).toFixed(0)})`,
);
console.log(`join click → frames from all three others: p50 ${pct(all, 50).toFixed(0)} ms`);
