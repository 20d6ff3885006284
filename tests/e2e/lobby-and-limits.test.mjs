// The pages around a call, and the ways a call can go wrong: the landing page, the lobby, bad
// links, a full room (ROOM_CAP=2), joining with camera and mic blocked, a real network drop
// (a TCP proxy in front of the server is cut) lived through with the seat and the call kept, and
// a lobby whose pre-connected sockets the server closed (join window) that still joins.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../lib/server.mjs";
import {
  artifactPath, frameDeltas, join, launch, openPerson, remotePeerIds, selfPeerId, startProxy, waitForRemoteVideos,
} from "./helpers.mjs";

const DENY_MEDIA = () => {
  const deny = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
  navigator.mediaDevices.getUserMedia = deny;
  navigator.mediaDevices.getDisplayMedia = deny;
};

// A short join window, so the lobby test sees the server close the pre-connected sockets.
const JOIN_WINDOW_MS = 4000;

describe("lobby, limits and recovery (ROOM_CAP=2)", { timeout: 180_000 }, () => {
  let server, browser;
  const opened = [];
  const stamp = Date.now().toString(36);

  before(async () => {
    server = await startServer({ vars: { ROOM_CAP: "2", JOIN_WINDOW_MS: String(JOIN_WINDOW_MS) } });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function person(room, name, opts) {
    const p = await openPerson(browser, server.url, room, name, opts);
    opened.push(p);
    return p;
  }

  test("the landing page starts unguessable meetings and joins by link or code", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.url + "/");
    await page.screenshot({ path: artifactPath("home.png") });
    const rooms = [];
    for (let i = 0; i < 2; i++) {
      await page.getByTestId("new-meeting").click();
      await page.waitForURL(/\/room\//);
      rooms.push(new URL(page.url()).pathname.split("/")[2]);
      await page.goBack();
    }
    for (const r of rooms) assert.match(r, /^[A-Za-z0-9_-]{22}$/, "a 128-bit base64url id");
    assert.notEqual(rooms[0], rooms[1]);

    await page.getByTestId("join-code").fill("not a room!");
    await page.getByTestId("join-code-button").click();
    assert.ok(await page.getByTestId("error-message").isVisible(), "an invalid code is refused");
    await page.getByTestId("join-code").fill(`${server.url}/room/abc_DEF-1?x=1`);
    await page.getByTestId("join-code-button").click();
    await page.waitForURL(/\/room\/abc_DEF-1$/);
    await page.getByTestId("join-button").waitFor();
    assert.deepEqual(errors, []);
    await ctx.close();
  });

  test("the lobby previews the camera, lists devices and remembers the name", async () => {
    const p = await person("lobby-" + stamp, "Zed Shaw", { join: false });
    const page = p.page;
    assert.equal(await page.getByTestId("name-input").inputValue(), "Zed Shaw", "?name= pre-fills the name");
    await page.waitForFunction(() => document.querySelector('[data-testid="local-video"]').videoWidth > 0);
    assert.ok((await page.getByTestId("mic-select").locator("option").count()) >= 1);
    assert.ok((await page.getByTestId("camera-select").locator("option").count()) >= 1);
    assert.notEqual(await page.getByTestId("camera-select").inputValue(), "");
    await page.waitForTimeout(300);
    await page.screenshot({ path: artifactPath("lobby.png") });

    // Camera off in the lobby releases the camera and shows initials.
    await page.getByTestId("camera-toggle").click();
    await page.locator("#preview-avatar").waitFor();
    assert.equal(await page.locator("#preview-avatar").textContent(), "ZS");
    assert.equal(await page.evaluate(() => window.__edgeMeet.media.camTrack), null);
    await page.getByTestId("camera-toggle").click();
    await page.waitForFunction(() => window.__edgeMeet.media.camTrack?.readyState === "live");

    // An empty name is refused; a joined name is remembered for next time.
    await page.getByTestId("name-input").fill("   ");
    await page.getByTestId("join-button").click();
    assert.ok(await page.locator("#lobby-error").isVisible());
    assert.equal(await page.evaluate(() => document.body.dataset.screen), "lobby");
    await page.getByTestId("name-input").fill("Zed Shaw");
    await join(p);
    await page.getByTestId("leave-button").click();
    await page.goto(`${server.url}/room/other-${stamp}`);
    assert.equal(await page.getByTestId("name-input").inputValue(), "Zed Shaw", "the name is remembered");

    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const pp = await phone.newPage();
    await pp.goto(`${server.url}/room/lobby-${stamp}?name=Zed`);
    await pp.waitForFunction(() => document.querySelector('[data-testid="local-video"]').videoWidth > 0);
    const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal overflow on a phone (${overflow}px)`);
    await pp.screenshot({ path: artifactPath("lobby-phone.png") });
    await phone.close();
  });

  test("a bad room link is refused by the server and explained by the page", async () => {
    const res = await fetch(`${server.url}/room/bad.room`);
    assert.equal(res.status, 400);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${server.url}/room`); // the page without an id
    await page.getByTestId("error-message").waitFor();
    assert.match(await page.getByTestId("error-message").textContent(), /letters, digits/);
    await ctx.close();
  });

  test("the third person sees the room-full screen", async () => {
    const room = "full-" + stamp;
    const a = await person(room, "Ann");
    const b = await person(room, "Bob");
    await waitForRemoteVideos(a.page, 1);
    const c = await person(room, "Cid", { join: false });
    await c.page.getByTestId("join-button").click();
    await c.page.getByTestId("room-full").waitFor({ timeout: 10_000 });
    assert.match(await c.page.getByTestId("room-full").textContent(), /full/i);
    assert.equal(await c.page.locator('video[data-testid="remote-video"]').count(), 0);
    await c.page.screenshot({ path: artifactPath("room-full.png") });
    // The two inside are undisturbed.
    await a.page.waitForTimeout(500);
    assert.deepEqual(await remotePeerIds(a.page), [await selfPeerId(b.page)]);
    await a.ctx.close();
    await b.ctx.close();
    await c.ctx.close();
  });

  test("a lobby whose pre-connected sockets the server closed (join window) still joins", async () => {
    const room = "window-" + stamp;
    const a = await person(room, "Ann");
    const l = await person(room, "Lou", { join: false });
    // The lobby connected both sockets ahead of the click; the server closes them (4002).
    await l.page.waitForFunction(() => {
      const c = window.__edgeMeet.conn;
      return c.peer?.disconnected && (!c.socket || c.socket.closed);
    }, null, { timeout: JOIN_WINDOW_MS + 10_000 });
    await join(l);
    const lid = await selfPeerId(l.page);
    await waitForRemoteVideos(a.page, 1);
    await waitForRemoteVideos(l.page, 1);
    assert.deepEqual(await remotePeerIds(a.page), [lid]);
    await a.ctx.close();
    await l.ctx.close();
  });

  test("with camera and mic blocked, a person joins receive-only and appears as initials", async () => {
    const room = "recv-" + stamp;
    const a = await person(room, "Ann");
    const r = await person(room, "Rita Levi", { join: false, initScript: DENY_MEDIA });
    await r.page.getByTestId("error-message").waitFor({ timeout: 10_000 });
    assert.match(await r.page.getByTestId("error-message").textContent(), /not allowed|blocked/i);
    await r.page.screenshot({ path: artifactPath("permission-denied.png") });
    await r.page.getByRole("button", { name: /without camera/i }).click();
    assert.ok(await r.page.locator("#lobby-media-notice").isVisible(), "the lobby explains the situation");
    await join(r);
    const rid = await selfPeerId(r.page);

    // Rita receives Ann's video...
    await waitForRemoteVideos(r.page, 1);
    const deltas = await frameDeltas(r.page);
    assert.ok(deltas[await selfPeerId(a.page)] > 0, "the receive-only person decodes video");
    // ...and Ann sees Rita's initials, muted.
    const tile = a.page.locator(`[data-testid="tile"][data-peer-id="${rid}"]`);
    await tile.getByTestId("tile-avatar").waitFor({ timeout: 10_000 });
    assert.equal(await tile.getByTestId("tile-avatar").textContent(), "RL");
    assert.ok(await tile.getByTestId("tile-mic-off").isVisible());
    assert.equal(await tile.getByTestId("tile-name").textContent(), "Rita Levi");
    await a.page.screenshot({ path: artifactPath("receive-only.png") });
    await a.ctx.close();
    await r.ctx.close();
  });

  test("through a network drop a person keeps seat, tile and call, and reconnects with the same identity", async () => {
    const room = "drop-" + stamp;
    const proxy = await startProxy(server.port);
    try {
      const a = await person(room, "Ann");
      const b = await openPerson(browser, proxy.url, room, "Ben"); // Ben's network goes via the proxy
      opened.push(b);
      await waitForRemoteVideos(a.page, 1);
      await waitForRemoteVideos(b.page, 1);
      const bid = await selfPeerId(b.page);
      const benTile = a.page.locator(`[data-testid="tile"][data-peer-id="${bid}"]`);
      await b.page.getByTestId("chat-toggle").click();
      await b.page.getByTestId("chat-input").fill("before the drop");
      await b.page.getByTestId("chat-input").press("Enter");
      await a.page.getByTestId("chat-toggle").click();
      await a.page.getByTestId("chat-message").first().waitFor();
      // The calls are peer to peer: the drop must not replace them.
      const mark = (page) => page.evaluate(() => { for (const pc of window.__pcs.values()) pc.__old = true; });
      const same = (page) => page.evaluate(() => window.__pcs.size === 1 && [...window.__pcs.values()].every((pc) => pc.__old));
      await mark(a.page);
      await mark(b.page);

      proxy.cut();
      await b.page.getByTestId("reconnecting").waitFor({ timeout: 10_000 });
      // The server saw Ben's sockets die: Ann keeps his tile, marked as reconnecting.
      await benTile.getByTestId("tile-reconnecting").waitFor({ timeout: 10_000 });
      await b.page.waitForTimeout(2500); // a few failed attempts while the network is down
      assert.ok(await b.page.getByTestId("reconnecting").isVisible(), "still reconnecting while cut");
      assert.equal(await benTile.count(), 1, "Ann still shows Ben");
      assert.ok((await frameDeltas(a.page))[bid] > 0, "Ann decodes Ben's video during the cut");
      await b.page.screenshot({ path: artifactPath("reconnecting.png") });
      await a.page.screenshot({ path: artifactPath("peer-reconnecting.png") });

      proxy.restore();
      await b.page.getByTestId("reconnecting").waitFor({ state: "hidden", timeout: 20_000 });
      await benTile.getByTestId("tile-reconnecting").waitFor({ state: "hidden", timeout: 10_000 });
      assert.equal(await selfPeerId(b.page), bid, "same peer id after the reconnect");
      assert.equal(await b.page.evaluate(() => window.__edgeMeet.lastWelcome.resumed), true, "the seat was resumed");
      assert.ok(await same(a.page) && await same(b.page), "the same RTCPeerConnection on both sides");
      assert.deepEqual(await remotePeerIds(a.page), [bid]);
      const da = await frameDeltas(a.page);
      const db = await frameDeltas(b.page);
      assert.ok(da[bid] > 0, "Ann decodes Ben's video");
      assert.ok(Object.values(db)[0] > 0, "Ben decodes Ann's video");
      // Chat works again and the history was not duplicated.
      await b.page.getByTestId("chat-input").fill("after the drop");
      await b.page.getByTestId("chat-input").press("Enter");
      // Both pages get the message from the server's fan-out, in no particular order.
      await a.page.getByTestId("chat-message").nth(1).waitFor();
      await b.page.getByTestId("chat-message").nth(1).waitFor();
      assert.equal(await a.page.getByTestId("chat-message").count(), 2, "Ann's history was not duplicated");
      const texts = await b.page.getByTestId("chat-text").allTextContents();
      assert.deepEqual(texts, ["before the drop", "after the drop"]);

      // Only the room socket dies (PeerJS stays up): Ben re-joins into the same seat, no new call.
      const welcomes = await b.page.evaluate(() => window.__edgeMeet.lastWelcome.at);
      await b.page.evaluate(() => window.__edgeMeet.conn.socket.ws.close());
      await b.page.waitForFunction((t) => window.__edgeMeet.lastWelcome.at > t && window.__edgeMeet.conn.joined && !window.__edgeMeet.conn.reconnecting, welcomes, { timeout: 10_000 });
      assert.equal(await b.page.evaluate(() => window.__edgeMeet.lastWelcome.resumed), true, "the seat was resumed");
      assert.equal(await selfPeerId(b.page), bid);
      await benTile.getByTestId("tile-reconnecting").waitFor({ state: "hidden", timeout: 10_000 });
      assert.ok(await same(a.page) && await same(b.page), "still the same RTCPeerConnection on both sides");
      assert.ok((await frameDeltas(a.page))[bid] > 0, "Ann decodes Ben's video");
      assert.ok(Object.values(await frameDeltas(b.page))[0] > 0, "Ben decodes Ann's video");
      const churn = await a.page.evaluate(() => window.__toastLog.filter((t) => /Ben (left|joined|lost)/.test(t)));
      assert.deepEqual(churn, ["Ben joined."], "Ann saw Ben join once and never leave");
    } finally {
      await proxy.close();
    }
  });

  test("no page threw or broke the CSP", () => {
    for (const p of opened) {
      assert.deepEqual(p.errors, [], `${p.name}: uncaught errors`);
      assert.deepEqual(p.csp, [], `${p.name}: CSP violations`);
    }
  });
});
