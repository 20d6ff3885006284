// public/js/roster.js without a browser: the roster's reconciliation on welcome and on each
// membership frame, who calls whom, which calls are owed, and the retry backoff.
import assert from "node:assert/strict";
import { describe, mock, test } from "node:test";
import { RetryPolicy, Roster, laterJoiner } from "../../public/js/roster.js";

const member = (peerId, joinedAt, extra = {}) => ({ peerId, joinedAt, name: peerId.toUpperCase(), media: { mic: true }, ...extra });

describe("who calls whom", () => {
  test("the later joiner calls; on a tie the larger id does", () => {
    const me = member("m", 100);
    assert.equal(laterJoiner(me, member("a", 50)), true, "they were here first: we call");
    assert.equal(laterJoiner(me, member("z", 150)), false, "they came later: they call");
    assert.equal(laterJoiner(me, member("a", 100)), true, "tie, our id is larger");
    assert.equal(laterJoiner(me, member("z", 100)), false, "tie, theirs is larger");
    assert.equal(laterJoiner(null, member("a", 1)), false, "no welcome yet");
    assert.equal(laterJoiner(me, undefined), false, "not a member");
  });

  test("exactly one side of every pair calls", () => {
    const people = [member("a", 1), member("b", 1), member("c", 2)];
    for (const x of people) for (const y of people) {
      if (x !== y) assert.notEqual(laterJoiner(x, y), laterJoiner(y, x), `${x.peerId}/${y.peerId}`);
    }
  });
});

describe("Roster", () => {
  test("a welcome replaces the list and reports who is gone", () => {
    const r = new Roster();
    assert.deepEqual(r.welcome(member("m", 10), [member("a", 1), member("b", 2)]), []);
    assert.equal(r.size, 2);
    const gone = r.welcome(member("m", 10), [member("b", 2), member("c", 3)]);
    assert.deepEqual(gone.map((m) => m.peerId), ["a"], "missed a's peer-left while away");
    assert.deepEqual([...r.values()].map((m) => m.peerId), ["b", "c"]);
    assert.equal(r.self.peerId, "m");
  });

  test("peer-joined: ourselves are ignored, a known member is replaced", () => {
    const r = new Roster();
    r.welcome(member("m", 10), []);
    assert.equal(r.join(member("m", 10)), null);
    assert.equal(r.join(undefined), null);
    assert.deepEqual(r.join(member("a", 11)).known, false);
    const again = r.join(member("a", 12));
    assert.equal(again.known, true);
    assert.equal(r.get("a").joinedAt, 12);
  });

  test("peer-presence, peer-media and peer-left change only known members", () => {
    const r = new Roster();
    r.welcome(member("m", 10), [member("a", 1)]);
    assert.equal(r.setPresence("x", "reconnecting"), null);
    assert.equal(r.setPresence("a", "reconnecting").presence, "reconnecting");
    assert.equal(r.isPresent("a"), false);
    r.setPresence("a", "present");
    assert.equal(r.isPresent("a"), true);
    assert.equal(r.setMedia("x", { hand: true }), null);
    assert.equal(r.setMedia("a", { mic: true, hand: true }).raised, true, "the hand went up");
    assert.equal(r.setMedia("a", { mic: false, hand: true }).raised, false, "still up: no new toast");
    assert.deepEqual(r.get("a").media, { mic: false, hand: true });
    assert.equal(r.remove("a").peerId, "a");
    assert.equal(r.remove("a"), undefined);
    assert.equal(r.has("a"), false);
  });

  test("owed calls: present members we call and have no call with", () => {
    const r = new Roster();
    r.welcome(member("m", 10), [
      member("early", 1), member("away", 2, { presence: "reconnecting" }), member("late", 20), member("busy", 3),
    ]);
    assert.equal(r.weCall("early"), true);
    assert.equal(r.weCall("late"), false);
    assert.equal(r.weCall("nobody"), false);
    assert.deepEqual(r.owedCalls((id) => id === "busy"), ["early"]);
  });
});

describe("RetryPolicy", () => {
  test("backs off 1, 2, 4, 8, 15, 15 s, then gives up until cancelled", () => {
    const delays = [];
    const p = new RetryPolicy({ setTimer: (fn, ms) => (delays.push(ms), ms), clearTimer: () => {} });
    for (let i = 0; i < 7; i++) p.schedule("a", () => {});
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 15000, 15000]);
    assert.equal(p.schedule("a", () => {}), null, "tries used up");
    p.cancel("a");
    assert.equal(p.schedule("a", () => {}), 1000, "starts over after a reset");
    assert.equal(p.schedule("b", () => {}), 1000, "per member");
  });

  test("the timer functions are never called as methods (a browser's setTimeout throws then)", () => {
    const calls = [];
    function setTimer() { calls.push(this); return 1; } // strict mode: `this` is undefined unless bound
    function clearTimer() { calls.push(this); }
    const p = new RetryPolicy({ setTimer, clearTimer });
    p.schedule("a", () => {});
    p.cancel("a");
    assert.equal(calls.length, 3);
    assert.ok(calls.every((t) => t === undefined));
  });

  test("a new schedule replaces the pending timer; cancel and cancelAll stop them", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const p = new RetryPolicy();
      const fired = [];
      p.schedule("a", () => fired.push("a1"));
      p.schedule("a", () => fired.push("a2")); // replaces a1, waits 2 s
      p.schedule("b", () => fired.push("b"));
      p.schedule("c", () => fired.push("c"));
      p.cancel("b");
      mock.timers.tick(1000);
      assert.deepEqual(fired, ["c"]);
      assert.equal(p.pending("a"), true);
      p.cancelAll();
      mock.timers.tick(60_000);
      assert.deepEqual(fired, ["c"]);
      assert.equal(p.pending("a"), false);
    } finally {
      mock.timers.reset();
    }
  });
});
