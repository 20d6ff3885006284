// The transport interface (public/js/transport.js): the mesh implements all of it, and the
// conformance check refuses what does not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Mesh } from "../../public/js/mesh.js";
import { TRANSPORT_EVENTS, TRANSPORT_METHODS, Transport, assertTransport } from "../../public/js/transport.js";

const media = { outgoingStream: () => ({}), syncSenders: () => {} };

test("the mesh is a conforming transport", () => {
  const mesh = new Mesh(media, { isMember: () => true });
  assert.equal(assertTransport(mesh), mesh);
  for (const m of TRANSPORT_METHODS) assert.equal(typeof mesh[m], "function", m);
  assert.deepEqual(mesh.remotes(), []);
  assert.equal(mesh.has("x"), false);
  assert.equal(mesh.connect("x"), false, "no session without signalling");
});

test("the conformance check names what is missing", () => {
  class Half extends Transport {
    attach() {}
    has() { return false; }
  }
  assert.throws(() => assertTransport(new Half({ isMember: () => true })), /lacks Transport methods: setReady, admit, connect/);
  assert.throws(() => assertTransport({ on() {}, emit() {} }), /not a Transport/);
  assert.throws(() => new Half({ isMember: () => true }).publish(), /Half does not implement Transport.publish/);
});

test("a transport is an Emitter of the documented events", () => {
  const mesh = new Mesh(media, { isMember: () => true });
  const seen = [];
  for (const e of TRANSPORT_EVENTS) mesh.on(e, (...a) => seen.push([e, ...a]));
  mesh.emit("ended", "p", "left");
  assert.deepEqual(seen, [["ended", "p", "left"]]);
});
