// The pure helpers of public/js/util.js (no DOM needed): room links and codes, avatar initials and
// colours, ids.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { base64url, hueClass, initials, parseRoomInput, randomId } from "../../public/js/util.js";

describe("parseRoomInput", () => {
  test("a bare code is the room id", () => {
    assert.equal(parseRoomInput("abc-DEF_123"), "abc-DEF_123");
    assert.equal(parseRoomInput("  abc  "), "abc", "surrounding space is ignored");
    assert.equal(parseRoomInput("a".repeat(64)), "a".repeat(64));
  });
  test("a pasted link gives its room id, without query, fragment or trailing path", () => {
    assert.equal(parseRoomInput("https://meet.example/room/Xy_9-z"), "Xy_9-z");
    assert.equal(parseRoomInput("https://meet.example/room/Xy_9?name=Ada"), "Xy_9");
    assert.equal(parseRoomInput("https://meet.example/room/Xy_9#top"), "Xy_9");
    assert.equal(parseRoomInput("https://meet.example/room/Xy_9/"), "Xy_9");
    assert.equal(parseRoomInput("join me: http://127.0.0.1:8787/room/abc now"), "abc");
    assert.equal(parseRoomInput("/room/a%2Db"), "a-b", "percent-encoding is decoded");
  });
  test("anything else is null", () => {
    for (const bad of [
      "", "   ", null, undefined, "bad.room", "a".repeat(65), "ünïcode", "https://meet.example/",
      "https://meet.example/room/bad.room", "/room/%E0%A4%A", "/room/a%20b",
    ]) {
      assert.equal(parseRoomInput(bad), null, JSON.stringify(bad));
    }
  });
});

describe("initials", () => {
  test("first letters of the first and last word, upper-cased", () => {
    assert.equal(initials("Ada Lovelace"), "AL");
    assert.equal(initials("ada"), "A");
    assert.equal(initials("  grace  brewster murray hopper "), "GH");
  });
  test("whole characters, not UTF-16 halves", () => {
    assert.equal(initials("😀 smile"), "😀S");
    assert.equal(initials("élodie durand"), "ÉD");
  });
  test("no name is a question mark", () => {
    assert.equal(initials(""), "?");
    assert.equal(initials("   "), "?");
    assert.equal(initials(null), "?");
  });
});

test("hueClass is stable and one of eight", () => {
  assert.equal(hueClass("Ada"), hueClass("Ada"));
  for (const k of ["", "Ada", "Bob", "😀", null]) assert.match(hueClass(k), /^hue-[0-7]$/);
});

test("base64url and randomId: URL-safe, unpadded, 128 bits by default", () => {
  assert.equal(base64url(new Uint8Array([0xfb, 0xff, 0xbf])), "-_-_");
  assert.equal(base64url(new Uint8Array([1])), "AQ");
  const id = randomId();
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(randomId(), id);
});
