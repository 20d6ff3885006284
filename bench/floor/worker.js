// The floor: the least a hibernating Durable Object can do for signalling, in plain JavaScript.
// One object per room (same paths as edge-meet), every frame relayed verbatim to the object's
// other sockets, HEARTBEAT answered by the runtime's auto-response. No parsing, no registry,
// no storage. A socket gets {"type":"OPEN"} on accept, as a PeerJS server would send.
// GET /room/{room}/stats returns handler invocation counts of the live instance (like edge-meet).

const HEARTBEAT = '{"type":"HEARTBEAT"}';
const OPEN = '{"type":"OPEN"}';

export class Room {
  constructor(ctx) {
    this.ctx = ctx;
    this.events = { fetch: 0, message: 0, close: 0, error: 0, alarm: 0 };
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT, HEARTBEAT));
  }

  async fetch(request) {
    this.events.fetch++;
    if (request.headers.get("Upgrade") !== "websocket") {
      const sockets = this.ctx.getWebSockets().length;
      return Response.json({ sockets, events: this.events });
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    server.send(OPEN);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    this.events.message++;
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) {
        try { other.send(message); } catch {}
      }
    }
  }

  // Complete the closing handshake (a no-op where the runtime already answered it).
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
