// The landing page: start a new meeting (an unguessable 128-bit id) or join one by link or code.
import { parseRoomInput, randomId } from "./util.js";

const $ = (s) => document.querySelector(s);

function go(room) {
  location.href = `/room/${encodeURIComponent(room)}`;
}

$("#new-meeting").addEventListener("click", () => go(randomId(16)));

$("#join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = parseRoomInput($("#join-code").value);
  const err = $("#join-error");
  if (!room) {
    err.textContent = "That is not a meeting link or code. Codes are letters, digits, '-' and '_' (up to 64).";
    err.hidden = false;
    $("#join-code").focus();
    return;
  }
  err.hidden = true;
  go(room);
});

$("#join-code").addEventListener("input", () => {
  $("#join-error").hidden = true;
});
