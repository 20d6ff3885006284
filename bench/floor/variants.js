// The floor plus one of edge-meet's per-message costs at a time, to attribute the gap between
// edge-meet and the floor (BENCHMARKS.md, "Where the time goes"). Not part of `make bench`:
//   node bench/miniflare-serve.mjs floor-variant --port P --var EXTRA=attach,json,sql,fanout
//   target/release/loadgen run --flavour floor --url http://127.0.0.1:P --scenario relay300
// EXTRA (comma-separated):
//   attach  each socket carries an attachment like edge-meet's; every message reads it back
//           (edge-meet finds the sender's sid with deserializeAttachment on every frame)
//   json    every message is parsed and re-serialised with a `src` field added
//   sql     every message is written to SQLite and the table trimmed (INSERT + DELETE), as
//           edge-meet does for each chat message
//   fanout  the outgoing frame is a new string per recipient
//   decode  the outgoing frame is UTF-8 encoded once and decoded into a new JS string per
//           recipient, exactly what wasm-bindgen's `send_with_str(&str)` does on every call
const HEARTBEAT = '{"type":"HEARTBEAT"}';
const OPEN = '{"type":"OPEN"}';
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

export class Room {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.extra = new Set(String(env.EXTRA || "").split(",").filter(Boolean));
    this.events = { fetch: 0, message: 0, close: 0, error: 0, alarm: 0 };
    this.seq = 0;
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT, HEARTBEAT));
    if (this.extra.has("sql")) {
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS chat (id INTEGER PRIMARY KEY, peer_id TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL)");
    }
  }

  async fetch(request) {
    this.events.fetch++;
    if (request.headers.get("Upgrade") !== "websocket") {
      return Response.json({ sockets: this.ctx.getWebSockets().length, events: this.events, extra: [...this.extra] });
    }
    const url = new URL(request.url);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    if (this.extra.has("attach")) {
      const id = url.searchParams.get("id") || "";
      const token = url.searchParams.get("token") || "";
      server.serializeAttachment({ sid: Math.floor(Math.random() * 2 ** 53), since: Date.now(), role: { PeerJs: { id, token } } });
    }
    server.send(OPEN);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    this.events.message++;
    let src = "";
    if (this.extra.has("attach")) src = ws.deserializeAttachment()?.role?.PeerJs?.id ?? "";
    let out = message;
    if (this.extra.has("json")) {
      const m = JSON.parse(message);
      out = JSON.stringify({ type: m.type, src, dst: m.dst, payload: m.payload, text: m.text });
    }
    if (this.extra.has("sql")) {
      const id = ++this.seq;
      this.ctx.storage.sql.exec("INSERT INTO chat (id, peer_id, name, text, ts) VALUES (?, ?, ?, ?, ?)", id, src, "name", out.slice(0, 64), Date.now());
      this.ctx.storage.sql.exec("DELETE FROM chat WHERE id <= ?", id - 200);
    }
    const fanout = this.extra.has("fanout");
    const bytes = this.extra.has("decode") ? encoder.encode(out) : null;
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) {
        const frame = bytes ? decoder.decode(bytes) : fanout ? (" " + out).slice(1) : out;
        try { other.send(frame); } catch {}
      }
    }
  }

  webSocketClose(ws, code) {
    this.events.close++;
    try { ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye"); } catch {}
  }

  webSocketError() {
    this.events.error++;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const m = /^\/room\/([A-Za-z0-9_-]{1,64})(\/.*)?$/.exec(url.pathname);
    if (!m) return new Response("Not found\n", { status: 404 });
    return env.ROOMS.get(env.ROOMS.idFromName(m[1])).fetch(request);
  },
};
