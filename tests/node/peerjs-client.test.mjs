// The unmodified `peerjs` npm client (1.5.5) against the real Worker under `wrangler dev`,
// on a room's PeerJS server (path "/room/r1/") and on the global drop-in ("/peerjs").
//
// Node lacks WebSocket (in Node 20) and WebRTC. `ws` stands in for WebSocket; a minimal
// RTCPeerConnection stand-in produces fixed SDP and records what it is given. Everything that
// talks to the server — REST id, WebSocket URL, OPEN/ERROR/ID-TAKEN/EXPIRE handling, the
// OFFER/ANSWER/CANDIDATE frames — is the real client code.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startServer } from "../lib/server.mjs";

const EXPIRE_MS = 1500;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const fakeSdp = (kind) => `v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=${kind}\r\nt=0 0\r\n`;

// ----- stand-ins for what Node lacks (installed before peerjs is imported: it probes support at load)
globalThis.WebSocket = WebSocket;

class FakeDataChannel {
  constructor(label, init = {}) {
    this.label = label;
    this.ordered = init.ordered ?? true;
    this.readyState = "connecting";
    this.binaryType = "blob";
    this.bufferedAmount = 0;
    this.bufferedAmountLowThreshold = 0;
  }
  send() {}
  close() { this.readyState = "closed"; }
  addEventListener() {}
  removeEventListener() {}
}

class FakeRTCPeerConnection {
  constructor(config) {
    this.config = config;
    this.signalingState = "stable";
    this.iceConnectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.candidates = [];
  }
  createDataChannel(label, init) { return new FakeDataChannel(label, init); }
  async createOffer() { return { type: "offer", sdp: fakeSdp("offer") }; }
  async createAnswer() { return { type: "answer", sdp: fakeSdp("answer") }; }
  async setLocalDescription(d) { this.localDescription = d; this.signalingState = d.type === "offer" ? "have-local-offer" : "stable"; }
  async setRemoteDescription(d) { this.remoteDescription = d; this.signalingState = d.type === "offer" ? "have-remote-offer" : "stable"; }
  async addIceCandidate(c) { this.candidates.push(c); }
  addTrack() { return {}; }
  addTransceiver() { return {}; }
  getSenders() { return []; }
  getReceivers() { return []; }
  close() { this.signalingState = "closed"; }
  addEventListener() {}
  removeEventListener() {}
}
globalThis.RTCPeerConnection = FakeRTCPeerConnection;
globalThis.RTCSessionDescription = class { constructor(init) { this.type = init.type; this.sdp = init.sdp; } };
globalThis.RTCIceCandidate = class { constructor(init) { Object.assign(this, init); } };

// "peerjs" resolves to its CommonJS build here; its exports arrive as the default export.
const peerjs = await import("peerjs");
const Peer = peerjs.Peer ?? peerjs.default.Peer;

// ----- helpers
let server;
const peers = [];
let n = 0;
const uniq = (p) => `${p}${process.pid}${++n}`;

function once(emitter, event, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (...args) => { clearTimeout(timer); resolve(args); });
  });
}

async function waitFor(what, pred, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function options(path, extra = {}) {
  return { host: "127.0.0.1", port: server.port, path, secure: false, debug: 0, ...extra };
}

function makePeer(id, opts) {
  const peer = id === undefined ? new Peer(opts) : new Peer(id, opts);
  peers.push(peer);
  return peer;
}

/** A peer that reached `open`; fails on any error before that. */
async function openPeer(id, opts) {
  const peer = makePeer(id, opts);
  const [openedId] = await Promise.race([
    once(peer, "open"),
    once(peer, "error").then(([e]) => { throw new Error(`peer ${id ?? "(auto)"}: ${e.type}: ${e.message}`); }),
  ]);
  return { peer, id: openedId };
}

/**
 * In a room, signalling flows only between seated members: joins `peer` to the room of `path`
 * on a room socket (kept open) with its PeerJS token, as the meeting app does. No-op on the
 * global server, which has no rooms.
 */
async function seat(peer, path) {
  const m = /^\/room\/([^/]+)\/$/.exec(path);
  if (!m) return null;
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/room/${m[1]}/ws`);
  sockets.push(ws);
  await once(ws, "open");
  const welcome = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no welcome within 5000 ms")), 5000);
    ws.on("message", (data) => {
      const f = JSON.parse(String(data));
      if (f.type === "welcome") { clearTimeout(timer); resolve(f); }
      if (f.type === "error") { clearTimeout(timer); reject(new Error(`join: ${f.code}`)); }
    });
  });
  ws.send(JSON.stringify({ type: "join", peerId: peer.id, token: peer.options.token, name: "Node" }));
  return welcome;
}
const sockets = [];

before(async () => {
  server = await startServer({ vars: { EXPIRE_TIMEOUT_MS: String(EXPIRE_MS) } });
});

after(async () => {
  for (const p of peers) { try { p.destroy(); } catch {} }
  for (const ws of sockets) { try { ws.close(); } catch {} }
  await server?.stop();
});

for (const path of ["/room/r1/", "/peerjs"]) {
  describe(`peerjs client with path "${path}"`, () => {
    test("open with a server-assigned id from the REST endpoint", { timeout: 15000 }, async () => {
      const { peer, id } = await openPeer(undefined, options(path));
      assert.match(id, UUID_V4);
      assert.equal(peer.id, id);
      assert.equal(peer.open, true);
      assert.equal(peer.disconnected, false);
    });

    test("OFFER from A reaches B (connection + call), ANSWER and CANDIDATE come back", { timeout: 20000 }, async () => {
      const { peer: a, id: aId } = await openPeer(undefined, options(path));
      const bId = uniq("bob");
      const { peer: b } = await openPeer(bId, options(path));
      await seat(a, path);
      await seat(b, path);

      // Data connection: the real client sends OFFER; B's client builds a DataConnection.
      const incoming = once(b, "connection");
      const conn = a.connect(bId, { label: "chat", metadata: { hello: "wörld" }, serialization: "json", reliable: true });
      const [bconn] = await incoming;
      assert.equal(bconn.peer, aId, "src of the OFFER is A's registered id");
      assert.equal(bconn.connectionId, conn.connectionId);
      assert.match(bconn.connectionId, /^dc_/);
      assert.equal(bconn.label, "chat");
      assert.deepEqual(bconn.metadata, { hello: "wörld" });
      assert.equal(bconn.serialization, "json");
      await waitFor("B's remote offer", () => bconn.peerConnection?.remoteDescription?.type === "offer");
      assert.equal(bconn.peerConnection.remoteDescription.sdp, fakeSdp("offer"));
      // B answered through the server; A's client applied the ANSWER.
      await waitFor("A's remote answer", () => conn.peerConnection?.remoteDescription?.type === "answer");
      assert.equal(conn.peerConnection.remoteDescription.sdp, fakeSdp("answer"));
      // An ICE candidate gathered by A reaches B's peer connection.
      const candidate = { candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", sdpMid: "0", sdpMLineIndex: 0 };
      conn.peerConnection.onicecandidate({ candidate });
      await waitFor("B's ICE candidate", () => bconn.peerConnection.candidates.length === 1);
      assert.deepEqual({ ...bconn.peerConnection.candidates[0] }, candidate);

      // Media call: OFFER with payload.type "media" → B's `call` event.
      const stream = { id: "stream-1", getTracks: () => [], getAudioTracks: () => [], getVideoTracks: () => [] };
      const called = once(b, "call");
      const call = a.call(bId, stream, { metadata: { kind: "camera" } });
      const [bcall] = await called;
      assert.equal(bcall.peer, aId);
      assert.equal(bcall.connectionId, call.connectionId);
      assert.match(bcall.connectionId, /^mc_/);
      assert.deepEqual(bcall.metadata, { kind: "camera" });
    });

    const room = path.startsWith("/room/");
    const when = room ? "at once (in a room only members are reachable)" : "after ~EXPIRE_TIMEOUT_MS";
    test(`connect to an unknown id: peer-unavailable ${when}`, { timeout: 15000 }, async () => {
      const { peer: a } = await openPeer(undefined, options(path));
      await seat(a, path);
      const nobody = uniq("nobody");
      const t0 = Date.now();
      const errored = once(a, "error", 8000);
      a.connect(nobody);
      const [err] = await errored;
      const elapsed = Date.now() - t0;
      console.log(`${path}: peer-unavailable for ${nobody} after ${elapsed} ms (EXPIRE_TIMEOUT_MS=${EXPIRE_MS})`);
      assert.equal(err.type, "peer-unavailable");
      assert.equal(err.message, `Could not connect to peer ${nobody}`);
      if (room) assert.ok(elapsed < 1000, `EXPIRE after ${elapsed} ms`);
      else assert.ok(elapsed >= EXPIRE_MS - 100 && elapsed <= 4000, `EXPIRE after ${elapsed} ms`);
      // Non-fatal: the peer stays connected to the server.
      assert.equal(a.open, true);
      assert.equal(a.disconnected, false);
    });

    test("an id held with another token: unavailable-id", { timeout: 15000 }, async () => {
      const id = uniq("dup");
      const { peer: first } = await openPeer(id, options(path));
      const second = makePeer(id, options(path));
      const [err] = await once(second, "error");
      assert.equal(err.type, "unavailable-id");
      assert.equal(err.message, `ID "${id}" is taken`);
      await waitFor("second peer destroyed", () => second.destroyed);
      assert.equal(second.open, false);
      assert.equal(first.open, true, "the holder keeps its id");
    });

    test("a key the server does not accept: server-error 'Invalid key provided'", { timeout: 15000 }, async () => {
      const p = makePeer(uniq("k"), options(path, { key: "not-a-key" }));
      const [err] = await once(p, "error");
      assert.equal(err.type, "server-error");
      assert.equal(err.message, "Invalid key provided");
    });
  });
}

test("in a room, a registered id that never joined cannot call a member: peer-unavailable, no call", { timeout: 15000 }, async () => {
  const path = "/room/r2/";
  const { peer: member } = await openPeer(uniq("member"), options(path));
  await seat(member, path);
  const { peer: eavesdropper } = await openPeer(uniq("eve"), options(path));
  let called = 0;
  member.on("call", () => called++);
  member.on("connection", () => called++);
  const errored = once(eavesdropper, "error", 5000);
  const stream = { id: "s", getTracks: () => [], getAudioTracks: () => [], getVideoTracks: () => [] };
  const t0 = Date.now();
  eavesdropper.call(member.id, stream);
  const [err] = await errored;
  console.log(`non-member call: ${err.type} after ${Date.now() - t0} ms`);
  assert.equal(err.type, "peer-unavailable");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(called, 0, "the member's client never heard of the call");
});

test("room and global servers are separate registries", { timeout: 15000 }, async () => {
  const shared = uniq("shared");
  // The same id may be held on both at once ...
  const { peer: inRoom } = await openPeer(shared, options("/room/r1/"));
  const { peer: global } = await openPeer(shared, options("/peerjs"));
  // ... and an id that exists only on the global server is unknown in the room.
  const onlyGlobal = uniq("global");
  await openPeer(onlyGlobal, options("/peerjs"));
  const errored = once(inRoom, "error", 8000);
  inRoom.connect(onlyGlobal);
  const [err] = await errored;
  assert.equal(err.type, "peer-unavailable");
  assert.equal(global.open, true);
});
