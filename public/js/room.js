// The room page (`/room/{room}`): lobby → call, and everything that happens in the call.
import { Chat } from "./chat.js";
import { Connection } from "./connection.js";
import { Lobby, rememberName } from "./lobby.js";
import { LocalMedia } from "./media.js";
import { Mesh } from "./mesh.js";
import { SpeakerDetector } from "./speaker.js";
import { $, Grid, Tile, showError, showScreen, toast } from "./ui.js";
import { ROOM_RE, el, hueClass, icon, initials, log } from "./util.js";

const SELF = "self"; // tile / speaker id of the local participant

function roomFromPath() {
  const m = /^\/room\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return null;
  let id;
  try { id = decodeURIComponent(m[1]); } catch { return null; }
  return ROOM_RE.test(id) ? id : null;
}

class RoomApp {
  constructor(room) {
    this.room = room;
    this.media = new LocalMedia();
    this.conn = new Connection(room);
    this.roster = new Map(); // peerId → Member (others only)
    // Calls are answered only from the roster: the room seats who may call us.
    this.mesh = new Mesh(this.media, { isMember: (id) => this.roster.has(id) });
    this.lobby = new Lobby(this.media);
    this.speaker = new SpeakerDetector((id) => this.grid?.setSpeaking(id));
    this.grid = null;
    this.self = null; // our Member, from welcome
    this.lastWelcome = null; // {resumed, at}: for tests and debugging
    this.hand = false;
    this.phase = "lobby"; // lobby | joining | call | ended
    this.panel = null; // "chat" | "people" | null
    this.sent = null; // media flags last told to the room
    this.retries = new Map(); // peerId → {n, timer}
    this.limits = null;
    this.chat = new Chat({
      list: $("#chat-list"),
      form: $("#chat-form"),
      input: $("#chat-input"),
      badge: $("#chat-badge"),
      send: (text) => this.sendChat(text),
      isOpen: () => this.panel === "chat",
    });
    globalThis.__edgeMeet = this; // debugging and tests (e.g. __edgeMeet.conn.dropForTest())
  }

  // ----- lobby -----------------------------------------------------------------------------

  async start() {
    $("#room-code").textContent = this.room;
    $("#call-room").textContent = this.room;
    document.title = `Meeting ${this.room.slice(0, 12)} · edge-meet`;
    this.wire();
    showScreen("lobby");
    this.lobby.nameInput.focus();
    this.conn.prepare(); // PeerJS id + room socket, while the user looks at the preview
    this.speaker.start();
    // Browsers start audio only after a gesture: wake the mic meter on the first one.
    const wake = () => this.speaker.ctx?.resume().catch(() => {});
    addEventListener("pointerdown", wake, { once: true });
    addEventListener("keydown", wake, { once: true });
    this.meterLoop();
    await this.startMedia();
  }

  async startMedia() {
    this.lobby.setBusy(true, "Starting camera…");
    await this.media.start();
    this.lobby.setBusy(false);
    if (this.media.denied) {
      showError(
        "Camera and microphone are blocked",
        "This page is not allowed to use your camera or microphone. Allow them in your browser's " +
          "address bar (the camera icon), then try again — or join without them: you will still " +
          "see and hear everyone, and they will see your initials.",
        [
          { label: "Try again", primary: true, onClick: () => { showScreen("lobby"); this.startMedia(); } },
          { label: "Join without camera and mic", onClick: () => { showScreen("lobby"); this.lobby.nameInput.focus(); } },
        ],
      );
    }
  }

  meterLoop() {
    const tick = () => {
      if (this.phase === "ended") return;
      this.lobby.setLevel(this.media.state.mic ? this.speaker.level(SELF) : 0);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  wire() {
    const m = this.media;
    m.on("change", () => this.onMediaChange());
    this.lobby.onDevice = (kind, id) => {
      m.useDevice(kind, id).catch(() => toast("That device could not be started.", "error"));
      if (kind === "audiooutput") for (const t of this.grid?.tiles.values() ?? []) t.setSinkId(id);
    };
    $("#join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.join();
    });
    $("#mic-toggle").addEventListener("click", () => {
      m.setMic(!m.state.mic).catch(() => toast("The microphone could not be started. Check the browser's permission.", "error"));
    });
    $("#camera-toggle").addEventListener("click", () => {
      m.setCamera(!m.state.camera).catch(() => toast("The camera could not be started. Check the browser's permission.", "error"));
    });
    $("#screen-toggle").addEventListener("click", () => this.toggleScreen());
    $("#hand-toggle").addEventListener("click", () => this.setHand(!this.hand));
    $("#copy-link").addEventListener("click", () => this.copyLink());
    $("#leave-button").addEventListener("click", () => this.leave());
    $("#chat-toggle").addEventListener("click", () => this.openPanel(this.panel === "chat" ? null : "chat"));
    $("#people-toggle").addEventListener("click", () => this.openPanel(this.panel === "people" ? null : "people"));
    $("#side-close").addEventListener("click", () => this.openPanel(null));
    $("#settings-toggle").addEventListener("click", () => {
      this.media.refreshDevices().then(() => this.lobby.renderDevices());
      $("#settings-dialog").showModal();
    });
    $("#room-full-retry").addEventListener("click", () => location.reload());
    if (!LocalMedia.canShareScreen) $("#screen-toggle").hidden = true;

    this.mesh.on("call", (peerId) => {
      if (this.grid) this.ensureTile(peerId).setStatus("Connecting…");
    });
    this.mesh.on("stream", (peerId, stream) => {
      const t = this.ensureTile(peerId);
      t.setStream(stream);
      t.setSinkId(this.media.speakerId);
      this.speaker.watch(peerId, stream);
    });
    this.mesh.on("state", (peerId, state) => {
      const t = this.grid?.get(peerId);
      if (!t) return;
      if (state === "connected") {
        t.setStatus("");
        this.retries.delete(peerId);
      } else if (state === "disconnected") t.setStatus("Connection unstable…");
    });
    this.mesh.on("ended", (peerId, why) => this.onCallEnded(peerId, why));

    this.conn.on("peer", (peer) => this.mesh.attach(peer));
    this.conn.on("frame", (f) => this.onFrame(f));
    this.conn.on("welcome", (w, opts) => this.onWelcome(w, opts));
    this.conn.on("status", (s) => this.onStatus(s));
    this.conn.on("fatal", (code, message) => this.onFatal(code, message));
    this.conn.on("unavailable", (peerId) => this.mesh.unavailable(peerId));

    addEventListener("pagehide", () => {
      if (this.phase === "call") this.conn.leave();
    });
  }

  async join() {
    const name = this.lobby.name;
    if (!name) {
      this.lobby.setError("Enter your name so the others know who you are.");
      this.lobby.nameInput.focus();
      return;
    }
    if (this.phase !== "lobby") return;
    this.phase = "joining";
    rememberName(name);
    this.speaker.start(); // resume audio in this user gesture
    this.speaker.ctx?.resume().catch(() => {});
    this.lobby.setError("");
    this.lobby.setBusy(true);
    this.name = name;
    try {
      const welcome = await this.conn.join(name, () => this.joinMedia());
      this.onWelcome(welcome, { rejoin: false, resumed: false });
    } catch (e) {
      this.phase = "lobby";
      this.lobby.setBusy(false);
      log("join failed", e);
      if (e.code === "room-full") return this.showRoomFull(e.message);
      if (e.code === "invalid-name") return this.lobby.setError(`That name cannot be used: ${e.message}`);
      this.lobby.setError(`Could not join the meeting. ${e.message || ""} Try again.`);
    }
  }

  joinMedia() {
    return { ...this.media.state, hand: this.hand };
  }

  showRoomFull(message) {
    this.conn.leave();
    const cap = this.limits?.maxPeers;
    $("#room-full-text").textContent =
      (message ? message.replace(/^./, (c) => c.toUpperCase()) + ". " : "") +
      "A meeting holds a limited number of people so that everyone's video stays smooth. " +
      (cap ? `(${cap} at most.) ` : "") + "Try again when someone leaves.";
    this.media.stopAll();
    showScreen("room-full");
  }

  // ----- entering the call, and re-entering after a reconnect ---------------------------

  /**
   * `resumed`: the server kept our seat through a drop (welcome.resumed): the others saw only
   * `peer-presence` and kept their calls with us, so we keep ours and place only the calls we
   * owe and lack. Otherwise the seat is fresh (first join, or the grace period ended and the
   * others saw `peer-left`): we are the newest member and call everyone.
   */
  onWelcome(w, { rejoin, resumed }) {
    if (this.phase === "ended") return;
    const first = this.phase !== "call";
    this.phase = "call";
    this.lastWelcome = { resumed: !!resumed, at: Date.now() };
    this.self = w.self;
    this.limits = w.limits ?? null;
    this.chat.selfId = w.self.peerId;
    if (this.limits?.chatMaxChars) this.chat.setLimit(this.limits.chatMaxChars);
    this.sent = { mic: !!w.self.media?.mic, camera: !!w.self.media?.camera, screen: !!w.self.media?.screen, hand: !!w.self.media?.hand };

    // Roster: whoever is not in the new list is gone (we may have missed their peer-left).
    const peers = new Map((w.peers ?? []).map((p) => [p.peerId, p]));
    for (const id of [...this.roster.keys()]) {
      if (!peers.has(id)) this.removePeer(id, rejoin ? "left while you were away" : null);
    }
    for (const id of [...this.mesh.entries.keys()]) if (!peers.has(id)) this.mesh.hangup(id, "left");
    this.roster = peers;

    // Calls first (they take longest): the joiner calls everyone already here (see mesh.js).
    this.mesh.setReady(w.iceServers); // also answers calls held for the roster
    for (const p of peers.values()) {
      if (resumed) continue;
      this.cancelRetry(p.peerId);
      this.mesh.call(p.peerId);
    }
    if (resumed) this.reconcile();
    if (first) this.enterCallScreen();
    for (const id of this.mesh.entries.keys()) this.ensureTile(id);
    this.chat.add(w.chat ?? []);
    this.renderPeople();
    this.onMediaChange(); // anything toggled while reconnecting
    if (rejoin) toast("Reconnected.", "ok");
  }

  enterCallScreen() {
    // Move the single local video, toggles and device pickers into the call UI.
    this.grid = new Grid($("#grid"));
    const selfTile = new Tile(SELF, { self: true });
    selfTile.adoptVideo($("#local-video"));
    this.grid.add(selfTile);
    $("#media-controls").prepend($("#mic-toggle"), $("#camera-toggle"));
    $("#settings-slot").append($("#devices"));
    showScreen("call");
    this.grid.layout();
    this.onMediaChange();
  }

  ensureTile(peerId) {
    let t = this.grid.get(peerId);
    if (!t) {
      t = this.grid.add(new Tile(peerId));
      t.setStatus("Connecting…");
    }
    const m = this.roster.get(peerId);
    t.setName(m?.name ?? "…");
    t.setMedia(m?.media ?? { mic: true, camera: true });
    t.setPresence(m?.presence);
    return t;
  }

  /**
   * Places the calls we owe (weCall) and have no live call for, to members who are present: a
   * call that failed while they or we were away. A reconnecting member cannot take an offer
   * (its PeerJS socket is down); we call it when its `peer-presence present` comes.
   */
  reconcile() {
    if (this.phase !== "call" || this.conn.reconnecting) return;
    for (const m of this.roster.values()) {
      if (m.presence === "reconnecting" || !this.weCall(m.peerId) || this.mesh.has(m.peerId)) continue;
      this.cancelRetry(m.peerId);
      this.mesh.call(m.peerId);
    }
  }

  removePeer(peerId, reason) {
    const m = this.roster.get(peerId);
    this.roster.delete(peerId);
    this.mesh.hangup(peerId, "left");
    this.grid?.remove(peerId);
    this.speaker.unwatch(peerId);
    this.cancelRetry(peerId);
    if (m && reason) toast(`${m.name} ${reason}.`);
  }

  /** Who calls whom: the later joiner (then the larger id) calls the earlier one. */
  weCall(peerId) {
    const m = this.roster.get(peerId);
    if (!m || !this.self) return false;
    const a = [m.joinedAt, m.peerId];
    const b = [this.self.joinedAt, this.self.peerId];
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  }

  onCallEnded(peerId, why) {
    log("call ended", peerId, why);
    this.grid?.remove(peerId);
    this.speaker.unwatch(peerId);
    if (why === "left" || this.phase !== "call" || this.conn.reconnecting) return;
    // Still in the room: the side that placed the call places it again, with backoff. Not to a
    // member whose sockets are away: if its tab crashed its tile is gone now (the call was the
    // last sign of it) and `peer-left gone` follows; if it comes back, `present` brings the call.
    const m = this.roster.get(peerId);
    if (!m || m.presence === "reconnecting" || !this.weCall(peerId)) return;
    const r = this.retries.get(peerId) ?? { n: 0, timer: null };
    if (r.n >= 6) return;
    clearTimeout(r.timer);
    const delay = Math.min(1000 * 2 ** r.n, 15000);
    r.n++;
    r.timer = setTimeout(() => {
      if (this.phase === "call" && this.roster.has(peerId) && !this.mesh.has(peerId)) {
        this.mesh.call(peerId);
        this.ensureTile(peerId);
      }
    }, delay);
    this.retries.set(peerId, r);
  }

  cancelRetry(peerId) {
    const r = this.retries.get(peerId);
    if (r) clearTimeout(r.timer);
    this.retries.delete(peerId);
  }

  // ----- room frames -------------------------------------------------------------------

  onFrame(f) {
    switch (f.type) {
      case "peer-joined": {
        const p = f.peer;
        if (!p || p.peerId === this.self?.peerId) return;
        const known = this.roster.has(p.peerId);
        this.roster.set(p.peerId, p);
        // They call us (we only answer); their call may already be waiting for this frame.
        this.mesh.admit();
        if (this.grid?.get(p.peerId)) this.ensureTile(p.peerId);
        if (!known) toast(`${p.name} joined.`);
        this.renderPeople();
        break;
      }
      case "peer-presence": {
        // Its sockets dropped without `leave` (or came back): it keeps its seat, we keep the call.
        const m = this.roster.get(f.peerId);
        if (!m) return;
        m.presence = f.presence;
        this.grid?.get(f.peerId)?.setPresence(f.presence);
        if (f.presence === "present") this.reconcile();
        this.renderPeople();
        break;
      }
      case "peer-left": {
        const m = this.roster.get(f.peerId);
        if (!m) {
          this.mesh.hangup(f.peerId, "left");
          this.grid?.remove(f.peerId);
          return;
        }
        // "leave": the Leave button or a closed tab; "gone": away for the whole grace period.
        this.removePeer(f.peerId, f.reason === "leave" ? "left" : "lost connection");
        this.renderPeople();
        break;
      }
      case "peer-media": {
        const m = this.roster.get(f.peerId);
        if (!m) return;
        const raised = f.media?.hand && !m.media?.hand;
        m.media = f.media;
        this.grid?.get(f.peerId)?.setMedia(f.media);
        if (raised) toast(`${m.name} raised their hand.`, "hand");
        this.renderPeople();
        break;
      }
      case "chat": {
        const msg = f.message;
        if (this.chat.add([msg], { live: true }) && this.panel !== "chat" && msg.peerId !== this.self?.peerId) {
          toast(`${msg.name}: ${msg.text.length > 80 ? msg.text.slice(0, 80) + "…" : msg.text}`, "chat");
        }
        break;
      }
      case "error":
        if (f.code === "invalid-text") toast(`Message not sent: ${f.message}`, "error");
        else if (f.code === "rate-limited") toast("You are sending too fast; slow down a little.", "error");
        else toast(`Error: ${f.message || f.code}`, "error");
        break;
      default:
        break;
    }
  }

  onStatus(s) {
    const reconnecting = s === "reconnecting";
    $("#reconnect-banner").hidden = !reconnecting;
    document.body.classList.toggle("reconnecting", reconnecting);
    // Only signalling is down: every call stays up and the mesh stays ready, so a call that
    // reaches us when our PeerJS socket is back is answered. Retries wait for the reconnect.
    if (reconnecting) {
      for (const id of [...this.retries.keys()]) this.cancelRetry(id);
    } else {
      this.reconcile();
    }
  }

  onFatal(code, message) {
    log("fatal", code, message);
    if (code === "room-full") {
      this.teardown();
      return this.showRoomFull(message);
    }
    if (code === "lost") {
      this.mesh.hangupAll("left");
      showError("Connection lost", "We could not reconnect you to the meeting. Check your network connection.", [
        { label: "Try again", primary: true, onClick: () => { showScreen("call"); this.conn.retry(); } },
        { label: "Leave", onClick: () => this.leave() },
      ]);
      return;
    }
    this.teardown();
    showError("You are no longer in this meeting", message || "", [
      { label: "Rejoin", primary: true, onClick: () => location.reload() },
      { label: "Home", onClick: () => { location.href = "/"; } },
    ]);
  }

  // ----- local actions -------------------------------------------------------------------

  onMediaChange() {
    this.lobby.render();
    this.speaker.watch(SELF, this.media.micTrack ? new MediaStream([this.media.micTrack]) : null);
    const st = this.media.state;
    $("#screen-toggle").setAttribute("aria-pressed", String(st.screen));
    $("#screen-toggle").classList.toggle("active", st.screen);
    $("#screen-toggle .ctl-label").textContent = st.screen ? "Stop sharing" : "Share screen";
    $("#screen-toggle").title = st.screen ? "Stop sharing your screen" : "Share your screen";
    if (this.phase !== "call") return;
    const selfTile = this.grid.get(SELF);
    selfTile.setName(this.name, " (You)");
    selfTile.setMedia({ ...st, hand: this.hand });
    this.mesh.syncAll();
    this.sendMedia({ ...st, hand: this.hand });
  }

  sendMedia(now) {
    if (!this.sent || !this.conn.joined) return;
    const patch = {};
    for (const k of ["mic", "camera", "screen", "hand"]) if (now[k] !== this.sent[k]) patch[k] = now[k];
    if (!Object.keys(patch).length) return;
    if (this.conn.send({ type: "media", ...patch })) Object.assign(this.sent, patch);
    this.renderPeople();
  }

  async toggleScreen() {
    if (this.media.screenTrack) {
      this.media.stopScreen();
      return;
    }
    try {
      await this.media.startScreen();
    } catch (e) {
      log("screen share failed", e);
      toast("Screen sharing could not start.", "error");
    }
  }

  setHand(up) {
    this.hand = !!up;
    const b = $("#hand-toggle");
    b.setAttribute("aria-pressed", String(this.hand));
    b.classList.toggle("active", this.hand);
    b.querySelector(".ctl-label").textContent = this.hand ? "Lower hand" : "Raise hand";
    this.onMediaChange();
  }

  sendChat(text) {
    if (!this.conn.joined) {
      toast("Not connected; the message was not sent.", "error");
      return false;
    }
    return this.conn.send({ type: "chat", text });
  }

  async copyLink() {
    const url = `${location.origin}/room/${this.room}`;
    try {
      await navigator.clipboard.writeText(url);
      toast("Invite link copied.", "ok");
    } catch {
      // No clipboard permission: show the link so it can be copied by hand.
      const input = $("#invite-fallback");
      input.value = url;
      input.hidden = false;
      input.select();
      toast("Copy the link shown at the top.", "info");
    }
  }

  openPanel(which) {
    this.panel = which;
    $("#side").hidden = !which;
    $("#chat-panel").hidden = which !== "chat";
    $("#people-panel").hidden = which !== "people";
    $("#side-title").textContent = which === "people" ? "People" : "Chat";
    $("#chat-toggle").setAttribute("aria-pressed", String(which === "chat"));
    $("#people-toggle").setAttribute("aria-pressed", String(which === "people"));
    document.body.classList.toggle("panel-open", !!which);
    if (which === "chat") {
      this.chat.markRead();
      $("#chat-input").focus();
    }
    this.grid?.layout();
  }

  renderPeople() {
    const list = $("#people-list");
    const rows = [];
    if (this.self) rows.push({ peerId: this.self.peerId, name: this.name, media: { ...this.media.state, hand: this.hand }, me: true });
    for (const m of this.roster.values()) rows.push(m);
    list.replaceChildren(
      ...rows.map((m) => {
        const flags = el("span", { className: "person-flags" });
        if (m.presence === "reconnecting") {
          flags.append(el("span", { className: "flag presence", text: "Reconnecting…", attrs: { "data-testid": "participant-reconnecting" } }));
        }
        if (m.media?.hand) flags.append(el("span", { className: "flag hand", attrs: { title: "Hand raised" } }, icon("hand")));
        if (!m.media?.mic) flags.append(el("span", { className: "flag", attrs: { title: "Muted" } }, icon("mic-off")));
        if (!m.media?.camera) flags.append(el("span", { className: "flag", attrs: { title: "Camera off" } }, icon("videocam-off")));
        if (m.media?.screen) flags.append(el("span", { className: "flag", attrs: { title: "Sharing screen" } }, icon("screen")));
        return el(
          "li",
          { className: "person" + (m.presence === "reconnecting" ? " reconnecting" : ""), attrs: { "data-testid": "participant" }, dataset: { peerId: m.peerId } },
          el("span", { className: "person-avatar " + hueClass(m.name), text: initials(m.name) }),
          el("span", { className: "person-name", text: m.name + (m.me ? " (You)" : "") }),
          flags,
        );
      }),
    );
    $("#people-count").textContent = String(rows.length);
  }

  teardown() {
    this.phase = "ended";
    this.conn.leave();
    this.mesh.hangupAll("left");
    this.media.stopAll();
    this.speaker.stop();
    for (const id of [...this.retries.keys()]) this.cancelRetry(id);
  }

  leave() {
    this.teardown();
    showError("You left the meeting", "Thanks for joining.", [
      { label: "Rejoin", primary: true, onClick: () => location.reload() },
      { label: "Home", onClick: () => { location.href = "/"; } },
    ]);
  }
}

function main() {
  const room = roomFromPath();
  if (!room) {
    showError(
      "This meeting link is not valid",
      "Meeting codes are 1–64 letters, digits, '-' or '_'. Check the link you were sent, or start a new meeting.",
      [{ label: "Go to the home page", primary: true, onClick: () => { location.href = "/"; } }],
    );
    return;
  }
  if (typeof RTCPeerConnection !== "function") {
    showError("This browser cannot join video meetings", "Use a current version of Chrome, Edge, Firefox or Safari.", []);
    return;
  }
  if (typeof Peer !== "function") {
    showError("Something went wrong", "Part of the page did not load. Reload the page to try again.", [
      { label: "Reload", primary: true, onClick: () => location.reload() },
    ]);
    return;
  }
  new RoomApp(room).start().catch((e) => {
    console.error(e);
    showError("Something went wrong", String(e?.message ?? e), [{ label: "Reload", primary: true, onClick: () => location.reload() }]);
  });
}

main();
