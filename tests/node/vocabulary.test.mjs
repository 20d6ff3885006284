// public/js/protocol.js against tests/vocabulary.json, which `cargo test` writes from the server's
// Rust enums (crates/core/src/vocabulary.rs): any word added, removed or renamed on either side
// fails here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as P from "../../public/js/protocol.js";

const vocab = JSON.parse(readFileSync(new URL("../vocabulary.json", import.meta.url), "utf8"));
const sorted = (a) => [...a].sort();
/** "aliveTimeout" → "ALIVE_TIMEOUT": the JS constants name the same keys. */
const constName = (k) => k.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase();

test("the vocabulary file has exactly the sections protocol.js covers", () => {
  assert.deepEqual(sorted(Object.keys(vocab)), sorted([
    "clientFrames", "serverFrames", "errorCodes", "leaveReasons", "presence", "closeCodes",
    "heartbeat", "roomIdPattern", "limits",
  ]));
});

for (const [section, words] of [
  ["clientFrames", P.CLIENT],
  ["serverFrames", P.SERVER],
  ["errorCodes", P.ERROR],
  ["leaveReasons", P.LEAVE_REASON],
  ["presence", P.PRESENCE],
]) {
  test(`${section}: the same words`, () => {
    assert.deepEqual(sorted(Object.values(words)), sorted(vocab[section]));
    assert.equal(new Set(Object.values(words)).size, Object.values(words).length, "no word twice");
  });
}

test("close codes: the same names and numbers", () => {
  const want = Object.fromEntries(Object.entries(vocab.closeCodes).map(([k, v]) => [constName(k), v]));
  assert.deepEqual({ ...P.CLOSE }, want);
});

test("limits: the same names and numbers", () => {
  const want = Object.fromEntries(Object.entries(vocab.limits).map(([k, v]) => [constName(k), v]));
  assert.deepEqual({ ...P.LIMITS }, want);
});

test("heartbeat bytes and the room-id rule", () => {
  assert.equal(P.HEARTBEAT, vocab.heartbeat);
  assert.equal(JSON.parse(P.HEARTBEAT).type, P.CLIENT.HEARTBEAT);
  assert.equal(P.ROOM_ID_PATTERN, vocab.roomIdPattern);
  assert.equal(P.ROOM_RE.source, new RegExp(vocab.roomIdPattern).source);
});
