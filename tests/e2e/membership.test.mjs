// Membership is the room's roster, and a seat outlives its sockets: a page that never joined
// cannot get a call answered; a person whose network blips (3 s, 10 s) keeps seat, tile and
// calls (frames decode throughout, nobody is told they left, the RTCPeerConnections are the same
// objects); a real Leave or a closed tab clears the tile within 2 s; a crashed tab (renderer
// killed: no pagehide) is marked reconnecting, loses its tile when the call with it fails, and
// its seat when the grace period ends; a whole-server restart (wrangler killed and started again
// on the same port and storage) is lived through like a blip.
// Figures are printed as `[figure] …` lines.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../lib/server.mjs";
import {
  launch, leftToasts, openPerson, pcTags, remotePeerIds, sampleFrames, selfPeerId, sleep, smallVideo, startProxy,
  tagPcs, waitForRemoteVideos, waitForToast,
} from "./helpers.mjs";

const tileOf = (p, id) => p.page.locator(`[data-testid="tile"][data-peer-id="${id}"]`);

function figure(name, fields) {
  console.log(`[figure] ${name} ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(" ")}`);
}

/** Waits until the page is in the call with no reconnect under way. */
function settled(p, timeout = 20_000) {
  return p.page.waitForFunction(
    () => window.__edgeMeet?.conn.joined && !window.__edgeMeet.conn.reconnecting &&
      !window.__edgeMeet.conn.peer?.disconnected && document.querySelector('[data-testid="reconnecting"]').hidden,
    null, { timeout },
  );
}

async function sendChat(p, text) {
  if (!(await p.page.getByTestId("chat-input").isVisible())) await p.page.getByTestId("chat-toggle").click();
  await p.page.getByTestId("chat-input").fill(text);
  await p.page.getByTestId("chat-input").press("Enter");
}

function waitChat(p, text, timeout = 10_000) {
  return p.page.waitForFunction(
    (t) => [...document.querySelectorAll('[data-testid="chat-text"]')].some((n) => n.textContent === t), text, { timeout },
  );
}

describe("membership and seats that survive drops", { timeout: 420_000 }, () => {
  let server, browser;
  const opened = [];
  const stamp = Date.now().toString(36);

  before(async () => {
    server = await startServer();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function person(url, room, name, opts = {}) {
    const p = await openPerson(browser, url, room, name, { initScript: smallVideo, viewport: { width: 800, height: 450 }, ...opts });
    opened.push(p);
    return p;
  }

  test("a page that never joined gets no answer from a member and no place on its page", async () => {
    const room = "eaves-" + stamp;
    const mia = await person(server.url, room, "Mia");
    const mid = await selfPeerId(mia.page);

    // The eavesdropper: the unmodified peerjs client, served by the app, on a page of the app.
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(server.url + "/");
    await page.addScriptTag({ url: "/vendor/peerjs.min.js" });
    const result = await page.evaluate(async ({ room, mid }) => {
      const opts = (token) => ({
        host: location.hostname, port: Number(location.port), secure: false, path: `/room/${room}/`, token,
        config: { iceServers: [] },
      });
      const open = (peer) => new Promise((resolve) => {
        peer.on("open", (id) => resolve({ id }));
        peer.on("error", (e) => resolve({ error: e.type }));
        setTimeout(() => resolve({ error: "open timeout" }), 10_000);
      });
      // Taking the member's own id with another token is refused.
      const thief = new Peer(mid, opts("thief-" + crypto.randomUUID()));
      const stolen = await open(thief);
      thief.destroy();

      const peer = new Peer(opts("eve-" + crypto.randomUUID()));
      const opened = await open(peer);
      // A fake stream: this page may not use the camera (Permissions-Policy), a canvas will do.
      const canvas = document.createElement("canvas");
      canvas.width = 160;
      canvas.height = 90;
      const g = canvas.getContext("2d");
      const draw = setInterval(() => { g.fillStyle = `hsl(${Date.now() % 360},80%,50%)`; g.fillRect(0, 0, 160, 90); }, 50);
      const errors = [];
      peer.on("error", (e) => errors.push(e.type));
      const call = peer.call(mid, canvas.captureStream(15));
      let remote = false;
      call.on("stream", () => { remote = true; });
      // Longer than the member's hold for the roster (5 s).
      await new Promise((r) => setTimeout(r, 7000));
      clearInterval(draw);
      const state = call.peerConnection?.connectionState ?? null;
      peer.destroy();
      return { stolen, opened, errors, remote, state };
    }, { room, mid });
    await ctx.close();
    figure("eavesdropper", { errors: result.errors.join(",") || "none", pcState: result.state, stolen: result.stolen.error ?? "OPENED" });

    assert.equal(result.stolen.error, "unavailable-id", "the member's id cannot be registered with another token");
    assert.ok(result.opened.id, `the eavesdropper registered a PeerJS id (${JSON.stringify(result.opened)})`);
    assert.equal(result.remote, false, "no remote stream");
    assert.notEqual(result.state, "connected", "no connected RTCPeerConnection");
    assert.ok(result.errors.every((e) => e === "peer-unavailable"), `only peer-unavailable, if anything (${result.errors})`);

    // The member's page: no tile, no call, nothing held, nobody new in People.
    assert.deepEqual(await remotePeerIds(mia.page), []);
    assert.equal(await mia.page.locator('[data-testid="tile"]').count(), 0);
    const inside = await mia.page.evaluate(() => ({ pcs: window.__pcs.size, held: window.__edgeMeet.transport.held.size, roster: window.__edgeMeet.roster.size }));
    assert.deepEqual(inside, { pcs: 0, held: 0, roster: 0 });
    await mia.page.getByTestId("people-toggle").click();
    assert.equal(await mia.page.getByTestId("participant").count(), 1, "only Mia in People");
    await mia.ctx.close();
  });

  test("network blips of 3 s and 10 s: video decodes throughout, the seat, tile and calls stay", async () => {
    const room = "blip-" + stamp;
    const proxy = await startProxy(server.port);
    try {
      const ann = await person(server.url, room, "Ann");
      const bob = await person(server.url, room, "Bob");
      const cy = await person(proxy.url, room, "Cy"); // Cy's signalling goes through the proxy
      const people = [ann, bob, cy];
      const ids = {};
      for (const p of people) ids[p.name] = await selfPeerId(p.page);
      for (const p of people) await waitForRemoteVideos(p.page, 2);
      const expect = Object.fromEntries(people.map((p) => [p.name, people.filter((q) => q !== p).map((q) => ids[q.name])]));
      const tags = {};
      for (const p of people) tags[p.name] = await tagPcs(p.page);

      for (const cutMs of [3000, 10_000]) {
        const sampler = sampleFrames(people, expect);
        await sleep(1500);
        proxy.cut();
        const cutAt = Date.now();
        await cy.page.getByTestId("reconnecting").waitFor({ timeout: 5000 });
        // The others mark Cy's tile (and People row) as reconnecting, and keep it.
        const markMs = [];
        for (const p of [ann, bob]) {
          await tileOf(p, ids.Cy).getByTestId("tile-reconnecting").waitFor({ timeout: Math.max(1000, cutMs - 500) });
          markMs.push(Date.now() - cutAt);
        }
        if (cutMs > 3000) {
          await ann.page.getByTestId("people-toggle").click();
          await ann.page.locator(`[data-testid="participant"][data-peer-id="${ids.Cy}"] [data-testid="participant-reconnecting"]`).waitFor({ timeout: 2000 });
          await ann.page.getByTestId("people-toggle").click();
        }
        await sleep(cutMs - (Date.now() - cutAt));
        for (const p of [ann, bob]) assert.equal(await tileOf(p, ids.Cy).count(), 1, `${p.name} still shows Cy's tile at the end of the cut`);
        proxy.restore();
        const restoredAt = Date.now();
        await settled(cy);
        const backMs = Date.now() - restoredAt;
        for (const p of [ann, bob]) await tileOf(p, ids.Cy).getByTestId("tile-reconnecting").waitFor({ state: "hidden", timeout: 5000 });
        const clearedMs = Date.now() - restoredAt;
        await sleep(1500);
        const s = await sampler.stop();
        figure(`blip${cutMs / 1000}s`, {
          windows: s.windows, minFrames: s.minFrames, longestGapMs: s.longestGapMs, maxWindowMs: s.maxWindowMs,
          markMs: markMs.join(","), reconnectMs: backMs, markClearedMs: clearedMs,
          resumed: await cy.page.evaluate(() => window.__edgeMeet.lastWelcome?.resumed),
        });
        assert.deepEqual(s.stalls, [], `every 500 ms window shows new frames on every page (${s.windows} windows)`);
        assert.equal(await cy.page.evaluate(() => window.__edgeMeet.lastWelcome.resumed), true, "Cy's seat was resumed");
        assert.equal(await selfPeerId(cy.page), ids.Cy);
        for (const p of people) {
          assert.deepEqual(await pcTags(p.page), tags[p.name], `${p.name}: the same RTCPeerConnections (no new call)`);
          assert.deepEqual(await leftToasts(p.page), [], `${p.name}: nobody was said to leave`);
          assert.deepEqual((await remotePeerIds(p.page)).sort(), [...expect[p.name]].sort(), `${p.name}: the same tiles`);
        }
      }

      // Chat both ways after the drops.
      await sendChat(cy, "Cy is back");
      for (const p of [ann, bob]) await waitChat(p, "Cy is back");
      await sendChat(ann, "welcome back, Cy");
      await waitChat(cy, "welcome back, Cy");
      for (const p of people) await p.ctx.close();
    } finally {
      await proxy.close();
    }
  });

  test("Leave, and closing the tab, clear the tile on the others' pages within 2 s", async () => {
    const room = "leave-" + stamp;
    const ann = await person(server.url, room, "Ann");
    const bob = await person(server.url, room, "Bob");
    const dee = await person(server.url, room, "Dee");
    const ids = {};
    for (const p of [ann, bob, dee]) ids[p.name] = await selfPeerId(p.page);
    for (const p of [ann, bob, dee]) await waitForRemoteVideos(p.page, 2);

    await dee.page.getByTestId("leave-button").click();
    const t0 = Date.now();
    const leaveMs = [];
    for (const p of [ann, bob]) {
      await tileOf(p, ids.Dee).waitFor({ state: "detached", timeout: 2000 });
      leaveMs.push(Date.now() - t0);
    }
    await waitForToast(ann.page, "Dee left");

    await bob.ctx.close(); // pagehide sends leave
    const t1 = Date.now();
    await tileOf(ann, ids.Bob).waitFor({ state: "detached", timeout: 2000 });
    const closeMs = Date.now() - t1;
    await waitForToast(ann.page, "Bob left");
    await ann.page.getByTestId("people-toggle").click();
    await ann.page.waitForFunction(() => document.querySelectorAll('[data-testid="participant"]').length === 1, null, { timeout: 2000 });
    figure("leave", { buttonMs: leaveMs.join(","), tabCloseMs: closeMs });
    assert.ok(Math.max(...leaveMs) <= 2000 && closeMs <= 2000);
    await ann.ctx.close();
    await dee.ctx.close();
  });

  test("a crashed tab (no pagehide, no leave) is marked reconnecting, then removed within the grace period", async () => {
    const room = "crash-" + stamp;
    const ann = await person(server.url, room, "Ann");
    const bob = await person(server.url, room, "Bob");
    const bid = await selfPeerId(bob.page);
    await waitForRemoteVideos(ann.page, 1);
    const cdp = await bob.ctx.newCDPSession(bob.page);
    const t0 = Date.now();
    cdp.send("Page.crash").catch(() => {}); // the renderer dies: no pagehide, sockets and media just stop
    await tileOf(ann, bid).getByTestId("tile-reconnecting").waitFor({ timeout: 5000 });
    const markMs = Date.now() - t0;
    // Whichever comes first: the call with Bob fails (its tile goes), or his seat expires (GRACE_MS, 20 s).
    await tileOf(ann, bid).waitFor({ state: "detached", timeout: 25_000 });
    const tileGoneMs = Date.now() - t0;
    figure("crash-tile", { markMs, tileGoneMs, via: await ann.page.evaluate((id) => (window.__edgeMeet.roster.has(id) ? "call-failed" : "seat-gone"), bid) });
    // The seat ends GRACE_MS (20 s) after the drop even if the room hibernated meanwhile.
    await ann.page.waitForFunction((id) => !window.__edgeMeet.roster.has(id), bid, { timeout: 30_000 - (Date.now() - t0) }).catch(async (e) => {
      console.log("crash: still seated", Date.now() - t0, await (await fetch(`${server.url}/room/${room}/stats`)).text(),
        await ann.page.evaluate(() => JSON.stringify({ toasts: window.__toastLog, roster: [...window.__edgeMeet.roster.values()] })));
      throw e;
    });
    const seatGoneMs = Date.now() - t0;
    const toasts = await leftToasts(ann.page);
    figure("crash-seat", { seatGoneMs, toast: JSON.stringify(toasts) });
    assert.deepEqual(toasts, ["Bob lost connection."]);
    assert.equal(await ann.page.locator('[data-testid="tile"]').count(), 0);
    bob.errors.length = 0; // the crash itself is not a page error worth reporting
    await ann.ctx.close();
    await bob.ctx.close().catch(() => {});
  });

  test("a whole-server restart: the call decodes throughout and the seats resume", async () => {
    const room = "restart-" + stamp;
    const ann = await person(server.url, room, "Ann");
    const bob = await person(server.url, room, "Bob");
    const people = [ann, bob];
    const ids = { Ann: await selfPeerId(ann.page), Bob: await selfPeerId(bob.page) };
    for (const p of people) await waitForRemoteVideos(p.page, 1);
    await sendChat(ann, "before the restart");
    await waitChat(bob, "before the restart");
    const tags = { Ann: await tagPcs(ann.page), Bob: await tagPcs(bob.page) };
    const sampler = sampleFrames(people, { Ann: [ids.Bob], Bob: [ids.Ann] });
    await sleep(1500);

    const t0 = Date.now();
    await server.restart();
    const downMs = Date.now() - t0;
    for (const p of people) await settled(p, 30_000);
    const resumeMs = Date.now() - t0;
    await sleep(1500);
    const s = await sampler.stop();
    const resumed = await Promise.all(people.map((p) => p.page.evaluate(() => window.__edgeMeet.lastWelcome?.resumed)));
    figure("restart", {
      windows: s.windows, minFrames: s.minFrames, longestGapMs: s.longestGapMs, maxWindowMs: s.maxWindowMs,
      serverDownMs: downMs, seatsBackMs: resumeMs, resumed: resumed.join(","),
    });
    assert.deepEqual(s.stalls, [], `every 500 ms window shows new frames on both pages (${s.windows} windows)`);
    assert.deepEqual(resumed, [true, true], "both seats resumed");
    for (const p of people) {
      assert.deepEqual(await pcTags(p.page), tags[p.name], `${p.name}: the same RTCPeerConnection`);
      assert.deepEqual(await leftToasts(p.page), [], `${p.name}: nobody was said to leave`);
    }
    await sendChat(bob, "after the restart");
    await waitChat(ann, "after the restart");
    assert.deepEqual(await ann.page.getByTestId("chat-text").allTextContents(), ["before the restart", "after the restart"]);
  });

  test("no page threw or broke the CSP", () => {
    for (const p of opened) {
      assert.deepEqual(p.errors, [], `${p.name}: uncaught errors`);
      assert.deepEqual(p.csp, [], `${p.name}: CSP violations`);
    }
  });
});
