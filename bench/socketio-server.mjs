// The original design's room fan-out on Socket.IO (a Node "Teams clone": Express, Socket.IO, PeerJS),
// kept as a comparison baseline for edge-meet's room protocol:
//   join-room(roomId, userId)  -> socket.join(room); socket.to(room).emit("call-connected", userId)
//   send(roomId, message)      -> io.to(room).emit("receive", {message, name})
//   leave(roomId, userId) / disconnect -> socket.to(room).emit("call-disconnected", userId)
// Harness additions, neither changes the fan-out: join-room acknowledges when its last argument
// is a callback (so a load generator knows the join happened), and GET /__bench/stats counts
// handler invocations. Default engine.io settings except pingInterval, which the benchmark sets
// to 5 s (PING_INTERVAL_MS) to match the PeerJS clients' 5 s heartbeat in the idle scenario.
//   node bench/socketio-server.mjs --port P
// Prints "READY <url>"; exits on SIGTERM/SIGINT.
import { createServer } from "node:http";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const events = { connection: 0, join: 0, send: 0, leave: 0, disconnect: 0, pong: 0 };

const http = createServer((req, res) => {
  if (req.url === "/__bench/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ sockets: io.engine.clientsCount, events }));
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(http, {
  pingInterval: Number(process.env.PING_INTERVAL_MS || 25000),
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
});

const users_ = {};

io.on("connection", (socket) => {
  events.connection++;
  // Engine.IO heartbeats: the server pings, each client pong is a packet handled in JS.
  socket.conn.on("packet", (packet) => {
    if (packet.type === "pong") events.pong++;
  });
  socket.on("join-room", (roomId, userId, ack) => {
    events.join++;
    users_[socket.id] = userId;
    socket.join(roomId);
    socket.to(roomId).emit("call-connected", userId);
    socket.on("disconnect", () => {
      socket.to(roomId).emit("call-disconnected", userId);
    });
    socket.on("leave", (roomId2, userId2) => {
      events.leave++;
      socket.to(roomId2).emit("call-disconnected", userId2);
    });
    if (typeof ack === "function") ack();
  });
  socket.on("send", (roomId, message) => {
    events.send++;
    io.to(roomId).emit("receive", { message, name: users_[socket.id] });
  });
  socket.on("disconnect", () => {
    events.disconnect++;
    delete users_[socket.id];
  });
});

http.listen(port, "127.0.0.1", () => console.log(`READY http://127.0.0.1:${port}/`));

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
