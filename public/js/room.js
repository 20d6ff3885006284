// The room page (`/room/{room}`): lobby → call, and everything that happens in the call. This is
// where the parts are connected: the Connection (signalling), the Roster and the retry policy
// (roster.js), a media transport (transport.js; the mesh), local media, and the UI pieces.
import { Chat } from "./chat.js";
import { Connection } from "./connection.js";
import { expose } from "./debug.js";
import { Lobby, rememberName } from "./lobby.js";
import { LocalMedia } from "./media.js";
import { Mesh } from "./mesh.js";
import { CLIENT, ERROR, LEAVE_REASON, PRESENCE, ROOM_RE, SERVER } from "./protocol.js";
import { RetryPolicy, Roster } from "./roster.js";
import { SpeakerDetector } from "./speaker.js";
import { assertTransport } from "./transport.js";
import { $, Grid, PeopleList, SidePanels, Tile, renderToggle, showError, showScreen, toast } from "./ui.js";
import { log } from "./util.js";

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
    this.roster = new Roster();
    this.retry = new RetryPolicy();
    // Calls are answered only from the roster: the room seats who may call us.
    this.transport = assertTransport(new Mesh(this.media, { isMember: (id) => this.roster.has(id) }));
    this.lobby = new Lobby(this.media);
    this.speaker = new SpeakerDetector();
    this.grid = null;
    this.people = new PeopleList();
    this.panels = new SidePanels();
    this.name = null;
    this.lastWelcome = null; // {resumed, at}: for tests and debugging
    this.phase = "lobby"; // lobby | joining | call | ended
    this.sent = null; // media flags last told to the room
    this.limits = null;
    this.chat = new Chat({
      list: $("#chat-list"),
      form: $("#chat-form"),
      input: $("#chat-input"),
      badge: $("#chat-badge"),
      send: (text) => this.sendChat(text),
      isOpen: () => this.panels.which === "chat",
    });
    // Only with the debug hook on (debug.js): what the browser tests read and poke.
    const app = this;
    expose({
      __edgeMeet: {
        media: this.media,
        conn: this.conn, // e.g. __edgeMeet.conn.dropForTest()
        transport: this.transport,
        get self() { return app.roster.self; },
        get roster() { return app.roster.members; },
        get lastWelcome() { return app.lastWelcome; },
      },
      __pcs: this.transport.peerConnections(),
    });
  }

  // ----- lobby -----------------------------------------------------------------------------

  async start() {
    $("#room-code").textContent = this.room;
    $("#call-room").textContent = this.room;
    document.title = `Meeting ${this.room.slice(0, 12)} · edge-meet`;
    this.wire();
    showScreen("lobby");
    this.lobby.focusName();
    this.conn.prepare(); // PeerJS id + room socket, while the user looks at the preview
    this.speaker.start();
    // Browsers start audio only after a gesture: wake the mic meter on the first one.
    const wake = () => this.speaker.resume();
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
          { label: "Join without camera and mic", onClick: () => { showScreen("lobby"); this.lobby.focusName(); } },
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
    this.lobby.on("device", (kind, id) => {
      m.useDevice(kind, id).catch(() => toast("That device could not be started.", "error"));
      if (kind === "audiooutput") this.grid?.setSinkId(id);
    });
    this.speaker.on("active", (id) => this.grid?.setSpeaking(id));
    this.panels.on("change", (which) => this.onPanel(which));
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
    $("#hand-toggle").addEventListener("click", () => m.setHand(!m.hand));
    $("#copy-link").addEventListener("click", () => this.copyLink());
    $("#leave-button").addEventListener("click", () => this.leave());
    $("#settings-toggle").addEventListener("click", () => {
      this.media.refreshDevices().then(() => this.lobby.renderDevices());
      $("#settings-dialog").showModal();
    });
    $("#room-full-retry").addEventListener("click", () => location.reload());
    if (!LocalMedia.canShareScreen) $("#screen-toggle").hidden = true;

    const t = this.transport;
    t.on("call", (peerId) => {
      if (this.grid) this.ensureTile(peerId).setStatus("Connecting…");
    });
    t.on("stream", (peerId, stream) => {
      const tile = this.ensureTile(peerId);
      tile.setStream(stream);
      tile.setSinkId(this.media.speakerId);
      this.speaker.watch(peerId, stream);
    });
    t.on("state", (peerId, state) => {
      const tile = this.grid?.get(peerId);
      if (!tile) return;
      if (state === "connected") {
        tile.setStatus("");
        this.retry.cancel(peerId);
      } else if (state === "disconnected") tile.setStatus("Connection unstable…");
    });
    t.on("ended", (peerId, why) => this.onCallEnded(peerId, why));

    this.conn.on("peer", (peer) => t.attach(peer));
    this.conn.on("frame", (f) => this.onFrame(f));
    this.conn.on("welcome", (w, opts) => this.onWelcome(w, opts));
    this.conn.on("status", (s) => this.onStatus(s));
    this.conn.on("fatal", (code, message) => this.onFatal(code, message));
    this.conn.on("unavailable", (peerId) => t.undeliverable(peerId));

    addEventListener("pagehide", () => {
      if (this.phase === "call") this.conn.leave();
    });
  }

  async join() {
    const name = this.lobby.name;
    if (!name) {
      this.lobby.setError("Enter your name so the others know who you are.");
      this.lobby.focusName();
      return;
    }
    if (this.phase !== "lobby") return;
    this.phase = "joining";
    rememberName(name);
    this.speaker.start(); // resume audio in this user gesture
    this.speaker.resume();
    this.lobby.setError("");
    this.lobby.setBusy(true);
    this.name = name;
    try {
      const welcome = await this.conn.join(name, () => this.media.state);
      this.onWelcome(welcome, { rejoin: false, resumed: false });
    } catch (e) {
      this.phase = "lobby";
      this.lobby.setBusy(false);
      log("join failed", e);
      if (e.code === ERROR.ROOM_FULL) return this.showRoomFull(e.message);
      if (e.code === ERROR.INVALID_NAME) return this.lobby.setError(`That name cannot be used: ${e.message}`);
      this.lobby.setError(`Could not join the meeting. ${e.message || ""} Try again.`);
    }
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
    this.limits = w.limits ?? null;
    this.chat.setSelf(w.self.peerId);
    if (this.limits?.chatMaxChars) this.chat.setLimit(this.limits.chatMaxChars);
    const media = w.self.media;
    this.sent = { mic: !!media?.mic, camera: !!media?.camera, screen: !!media?.screen, hand: !!media?.hand };

    // Roster: whoever is not in the new list is gone (we may have missed their peer-left).
    for (const m of this.roster.welcome(w.self, w.peers)) this.forget(m, rejoin ? "left while you were away" : null);
    for (const id of this.transport.remotes()) if (!this.roster.has(id)) this.transport.disconnect(id, "left");

    // Calls first (they take longest): the joiner calls everyone already here (see mesh.js).
    this.transport.setReady(w.iceServers); // also answers calls held for the roster
    if (resumed) {
      this.reconcile();
    } else {
      for (const m of this.roster.values()) {
        this.retry.cancel(m.peerId);
        this.transport.connect(m.peerId);
      }
    }
    if (first) this.enterCallScreen();
    for (const id of this.transport.remotes()) this.ensureTile(id);
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
   * Places the calls we owe and have no live call for, to members who are present: a call that
   * failed while they or we were away. A reconnecting member cannot take an offer (its PeerJS
   * socket is down); we call it when its `peer-presence present` comes.
   */
  reconcile() {
    if (this.phase !== "call" || this.conn.reconnecting) return;
    for (const id of this.roster.owedCalls((peerId) => this.transport.has(peerId))) {
      this.retry.cancel(id);
      this.transport.connect(id);
    }
  }

  /** A member left the room (it is out of the roster already): its call, tile and retries go. */
  forget(member, reason) {
    const id = member.peerId;
    this.transport.disconnect(id, "left");
    this.grid?.remove(id);
    this.speaker.unwatch(id);
    this.retry.cancel(id);
    if (reason) toast(`${member.name} ${reason}.`);
  }

  onCallEnded(peerId, why) {
    log("call ended", peerId, why);
    this.grid?.remove(peerId);
    this.speaker.unwatch(peerId);
    if (why === "left" || this.phase !== "call" || this.conn.reconnecting) return;
    // Still in the room: the side that placed the call places it again, with backoff. Not to a
    // member whose sockets are away: if its tab crashed its tile is gone now (the call was the
    // last sign of it) and `peer-left gone` follows; if it comes back, `present` brings the call.
    if (!this.roster.isPresent(peerId) || !this.roster.weCall(peerId)) return;
    this.retry.schedule(peerId, () => {
      if (this.phase === "call" && this.roster.has(peerId) && !this.transport.has(peerId)) {
        this.transport.connect(peerId);
        this.ensureTile(peerId);
      }
    });
  }

  // ----- room frames -------------------------------------------------------------------

  onFrame(f) {
    switch (f.type) {
      case SERVER.PEER_JOINED: {
        const joined = this.roster.join(f.peer);
        if (!joined) return;
        const id = joined.member.peerId;
        // They call us (we only answer); their call may already be waiting for this frame.
        this.transport.admit();
        if (this.grid?.get(id)) this.ensureTile(id);
        if (!joined.known) toast(`${joined.member.name} joined.`);
        this.renderPeople();
        break;
      }
      case SERVER.PEER_PRESENCE: {
        // Its sockets dropped without `leave` (or came back): it keeps its seat, we keep the call.
        if (!this.roster.setPresence(f.peerId, f.presence)) return;
        this.grid?.get(f.peerId)?.setPresence(f.presence);
        if (f.presence === PRESENCE.PRESENT) this.reconcile();
        this.renderPeople();
        break;
      }
      case SERVER.PEER_LEFT: {
        const m = this.roster.remove(f.peerId);
        if (!m) {
          this.transport.disconnect(f.peerId, "left");
          this.grid?.remove(f.peerId);
          return;
        }
        // "leave": the Leave button or a closed tab; "gone": away for the whole grace period.
        this.forget(m, f.reason === LEAVE_REASON.LEAVE ? "left" : "lost connection");
        this.renderPeople();
        break;
      }
      case SERVER.PEER_MEDIA: {
        const changed = this.roster.setMedia(f.peerId, f.media);
        if (!changed) return;
        this.grid?.get(f.peerId)?.setMedia(f.media);
        if (changed.raised) toast(`${changed.member.name} raised their hand.`, "hand");
        this.renderPeople();
        break;
      }
      case SERVER.CHAT: {
        const msg = f.message;
        if (this.chat.add([msg], { live: true }) && this.panels.which !== "chat" && msg.peerId !== this.roster.self?.peerId) {
          toast(`${msg.name}: ${msg.text.length > 80 ? msg.text.slice(0, 80) + "…" : msg.text}`, "chat");
        }
        break;
      }
      case SERVER.ERROR:
        if (f.code === ERROR.INVALID_TEXT) toast(`Message not sent: ${f.message}`, "error");
        else if (f.code === ERROR.RATE_LIMITED) toast("You are sending too fast; slow down a little.", "error");
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
    // Only signalling is down: every call stays up and the transport stays ready, so a call that
    // reaches us when our PeerJS socket is back is answered. Retries wait for the reconnect.
    if (reconnecting) this.retry.cancelAll();
    else this.reconcile();
  }

  onFatal(code, message) {
    log("fatal", code, message);
    if (code === ERROR.ROOM_FULL) {
      this.teardown();
      return this.showRoomFull(message);
    }
    if (code === "lost") {
      this.transport.disconnectAll("left");
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
    renderToggle($("#screen-toggle"), st.screen, st.screen
      ? { label: "Stop sharing", title: "Stop sharing your screen" }
      : { label: "Share screen", title: "Share your screen" });
    renderToggle($("#hand-toggle"), st.hand, { label: st.hand ? "Lower hand" : "Raise hand" });
    if (this.phase !== "call") return;
    const selfTile = this.grid.get(SELF);
    selfTile.setName(this.name, " (You)");
    selfTile.setMedia(st);
    this.transport.publish();
    this.sendMedia(st);
  }

  sendMedia(now) {
    if (!this.sent || !this.conn.joined) return;
    const patch = {};
    for (const k of ["mic", "camera", "screen", "hand"]) if (now[k] !== this.sent[k]) patch[k] = now[k];
    if (!Object.keys(patch).length) return;
    if (this.conn.send({ type: CLIENT.MEDIA, ...patch })) Object.assign(this.sent, patch);
    this.renderPeople();
  }

  async toggleScreen() {
    if (this.media.state.screen) {
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

  sendChat(text) {
    if (!this.conn.joined) {
      toast("Not connected; the message was not sent.", "error");
      return false;
    }
    return this.conn.send({ type: CLIENT.CHAT, text });
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

  onPanel(which) {
    if (which === "chat") {
      this.chat.markRead();
      $("#chat-input").focus();
    }
    this.grid?.layout();
  }

  renderPeople() {
    const rows = [];
    const self = this.roster.self;
    if (self) rows.push({ peerId: self.peerId, name: this.name, media: this.media.state, me: true });
    rows.push(...this.roster.values());
    this.people.render(rows);
  }

  teardown() {
    this.phase = "ended";
    this.conn.leave();
    this.transport.disconnectAll("left");
    this.media.stopAll();
    this.speaker.stop();
    this.retry.cancelAll();
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
