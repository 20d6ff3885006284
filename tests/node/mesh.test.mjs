// The call-mesh rules of public/js/mesh.js, without a browser: fake PeerJS calls and
// RTCPeerConnections drive dedupe by peer id, crossed calls (glare), calls that arrive before our
// welcome or before the roster names their caller (held, then answered or refused), calls kept
// through a signalling drop, failed connections, undeliverable offers, and the bookkeeping of
// `mesh.pcs` (which the browser tests read stats from).
import assert from "node:assert/strict";
import { afterEach, describe, mock, test } from "node:test";
import { HOLD_MS, Mesh } from "../../public/js/mesh.js";

class FakePC extends EventTarget {
  connectionState = "new";
  signalingState = "stable";
  getTransceivers() { return []; }
  set(state) {
    this.connectionState = state;
    this.dispatchEvent(new Event("connectionstatechange"));
  }
}

class Emitting {
  handlers = {};
  on(t, f) { (this.handlers[t] ??= []).push(f); return this; }
  off(t, f) { this.handlers[t] = (this.handlers[t] ?? []).filter((g) => g !== f); return this; }
  emit(t, ...a) { for (const f of [...(this.handlers[t] ?? [])]) f(...a); }
}

class FakeCall extends Emitting {
  constructor(peer, outgoing) {
    super();
    this.peer = peer;
    this.closed = false;
    this.answeredWith = null;
    this.peerConnection = outgoing ? new FakePC() : null;
  }
  answer(stream) { this.answeredWith = stream; this.peerConnection = new FakePC(); }
  close() {
    if (this.closed) return;
    this.closed = true;
    this.emit("close");
  }
}

class FakePeer extends Emitting {
  constructor(id) {
    super();
    this.id = id;
    this.disconnected = false;
    this.destroyed = false;
    this.options = { config: { iceServers: [] } };
    this.placed = [];
  }
  call(id) {
    const c = new FakeCall(id, true);
    this.placed.push(c);
    return c;
  }
  incoming(from) {
    const c = new FakeCall(from, false);
    this.emit("call", c);
    return c;
  }
}

const media = { outgoingStream: () => ({ fake: "stream" }), syncSenders: () => {} };

const meshes = [];

/** A mesh whose roster is `members` (every peer the test names, unless given). */
function setup(selfId, members = null) {
  const roster = new Set(members ?? []);
  const mesh = new Mesh(media, { isMember: (id) => members === null || roster.has(id) });
  meshes.push(mesh);
  const peer = new FakePeer(selfId);
  mesh.attach(peer);
  const events = [];
  for (const t of ["call", "stream", "ended"]) mesh.on(t, (...a) => events.push([t, ...a]));
  return { mesh, peer, events, roster };
}

describe("mesh rules", () => {
  // Ending every call also clears the connect timers, so the process exits at once.
  afterEach(() => { for (const m of meshes.splice(0)) m.hangupAll(); });

  test("incoming calls wait for our welcome, then get the ICE servers and an answer", () => {
    const { mesh, peer, events } = setup("m");
    const c = peer.incoming("x");
    assert.equal(c.answeredWith, null, "not answered before welcome");
    assert.equal(events.length, 0);
    const ice = [{ urls: "stun:example.org" }];
    mesh.setReady(ice);
    assert.deepEqual(peer.options.config.iceServers, ice, "PeerJS will build PCs with the room's ICE servers");
    assert.ok(c.answeredWith, "answered after welcome");
    assert.equal(mesh.pcs.get("x"), c.peerConnection);
    assert.deepEqual(events, [["call", "x", false]]);
  });

  test("a new call from a peer replaces the old one without ending its tile", () => {
    const { mesh, peer, events } = setup("m");
    mesh.setReady([]);
    const first = peer.incoming("x");
    const second = peer.incoming("x");
    assert.ok(first.closed, "the old call was closed");
    assert.ok(!second.closed);
    assert.equal(mesh.pcs.get("x"), second.peerConnection);
    assert.ok(!events.some(([t]) => t === "ended"), "no 'ended' for a replaced call");
    // Streams of the replaced call are ignored; the new one's are reported once.
    const s = { id: "s" };
    first.emit("stream", { id: "old" });
    second.emit("stream", s);
    second.emit("stream", s); // once per track in PeerJS
    assert.deepEqual(events.filter(([t]) => t === "stream"), [["stream", "x", s]]);
  });

  test("crossed calls: the call placed by the larger peer id survives on both sides", () => {
    // a < b. Each places a call to the other; each then receives the other's call.
    const A = setup("a");
    A.mesh.setReady([]);
    A.mesh.call("b");
    const aToB = A.peer.placed[0];
    const B = setup("b");
    B.mesh.setReady([]);
    B.mesh.call("a");
    const bToA = B.peer.placed[0];

    // b receives a's call while its own is pending: b (larger) keeps its own.
    const atB = B.peer.incoming("a");
    assert.ok(atB.closed && atB.answeredWith === null, "b refuses a's crossing call");
    assert.ok(!bToA.closed, "b keeps its own call");
    // a receives b's call while its own is pending: a (smaller) answers and drops its own.
    const atA = A.peer.incoming("b");
    assert.ok(atA.answeredWith, "a answers b's call");
    assert.ok(aToB.closed, "a drops its own call");
    assert.ok(!A.events.some(([t]) => t === "ended") && !B.events.some(([t]) => t === "ended"));
  });

  test("an answered outgoing call is replaced by a later incoming one (the peer reconnected)", () => {
    const { mesh, peer } = setup("z");
    mesh.setReady([]);
    mesh.call("a");
    const out = peer.placed[0];
    out.peerConnection.set("connected");
    const again = peer.incoming("a");
    assert.ok(again.answeredWith, "accepted although our id is larger");
    assert.ok(out.closed);
  });

  test("a failed connection, a closed call, an undeliverable offer and a hang-up end the call", () => {
    const { mesh, peer, events } = setup("m");
    mesh.setReady([]);
    mesh.call("p1");
    mesh.call("p2");
    mesh.call("p3");
    const c4 = peer.incoming("p4");
    peer.placed[0].peerConnection.set("failed");
    peer.placed[1].close();
    mesh.unavailable("p3");
    mesh.hangup("p4", "left");
    assert.deepEqual(
      events.filter(([t]) => t === "ended"),
      [["ended", "p1", "failed"], ["ended", "p2", "closed"], ["ended", "p3", "unavailable"], ["ended", "p4", "left"]],
    );
    assert.ok(c4.closed);
    assert.equal(mesh.pcs.size, 0, "pcs forgets ended calls");
    assert.equal(mesh.entries.size, 0);
  });

  test("a call that never connects is given up after 20 s; a connected one is kept", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { mesh, peer, events } = setup("m");
      mesh.setReady([]);
      mesh.call("slow");
      mesh.call("fine");
      peer.placed[1].peerConnection.set("connected");
      mock.timers.tick(19_999);
      assert.ok(mesh.has("slow"));
      mock.timers.tick(1);
      assert.deepEqual(events.filter(([t]) => t === "ended"), [["ended", "slow", "timeout"]]);
      assert.ok(mesh.has("fine"));
    } finally {
      mock.timers.reset();
    }
  });

  test("a call from a peer not in the roster is held; the roster update lets it in", () => {
    const { mesh, peer, events, roster } = setup("m", []);
    mesh.setReady([]);
    const c = peer.incoming("x"); // the offer beat the peer-joined that names x
    assert.equal(c.answeredWith, null, "not answered while x is not a member");
    assert.ok(!c.closed, "held, not refused");
    assert.equal(mesh.pcs.size, 0, "no RTCPeerConnection for a stranger");
    mesh.admit(); // a roster change that does not name x
    assert.equal(c.answeredWith, null);
    roster.add("x");
    mesh.admit();
    assert.ok(c.answeredWith, "answered once x is in the roster");
    assert.deepEqual(events, [["call", "x", false]]);
  });

  test("a call held for the roster is refused after HOLD_MS; only the newest per peer is held", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { mesh, peer, events, roster } = setup("m", []);
      mesh.setReady([]);
      const first = peer.incoming("eve");
      const second = peer.incoming("eve");
      assert.ok(first.closed && first.answeredWith === null, "an older held call from the same peer is dropped");
      mock.timers.tick(HOLD_MS - 1);
      assert.ok(!second.closed);
      mock.timers.tick(1);
      assert.ok(second.closed && second.answeredWith === null, "refused unanswered");
      roster.add("eve");
      mesh.admit();
      assert.equal(second.answeredWith, null, "a refused call stays refused");
      assert.deepEqual(events, [], "no call, no tile, nothing ended");
      assert.equal(mesh.pcs.size, 0);
      assert.equal(mesh.held.size, 0);
    } finally {
      mock.timers.reset();
    }
  });

  test("the peer leaving refuses its held call at once", () => {
    const { mesh, peer } = setup("m", []);
    mesh.setReady([]);
    const c = peer.incoming("x");
    mesh.hangup("x", "left");
    assert.ok(c.closed && c.answeredWith === null);
    assert.equal(mesh.held.size, 0);
  });

  test("a signalling drop ends no call: a disconnected Peer keeps its calls, and new ones wait", () => {
    const { mesh, peer, events } = setup("m");
    mesh.setReady([]);
    mesh.call("a");
    const inc = peer.incoming("b");
    peer.placed[0].peerConnection.set("connected");
    inc.peerConnection.set("connected");
    // What PeerJS does when its socket closes: disconnect() keeps the connections.
    peer.disconnected = true;
    peer.emit("disconnected", "m");
    inc.peerConnection.set("disconnected"); // a wobble of the media path is not a failure either
    assert.ok(mesh.has("a") && mesh.has("b"), "both calls kept");
    assert.equal(mesh.pcs.size, 2);
    assert.ok(!events.some(([t]) => t === "ended"));
    assert.equal(mesh.call("c"), false, "no new call without a PeerJS socket");
    // Back: the same calls, and calls work again.
    peer.disconnected = false;
    assert.equal(mesh.call("c"), true);
    assert.equal(mesh.entries.size, 3);
  });

  test("unavailable() leaves a connected call alone", () => {
    const { mesh, peer, events } = setup("m");
    mesh.setReady([]);
    mesh.call("p");
    peer.placed[0].peerConnection.set("connected");
    mesh.unavailable("p");
    assert.ok(mesh.has("p"));
    assert.ok(!events.some(([t]) => t === "ended"));
  });
});
