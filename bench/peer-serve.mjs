// peerjs-server (npm `peer`, 1.x) through its library API, as a benchmark baseline.
//   node bench/peer-serve.mjs --port P
// Same defaults as `npx peerjs --port P` (path "/", key "peerjs", alive_timeout 90 s) except
// concurrent_limit, raised so that the join storm measures the server rather than its cap.
// An 'error' listener is required: without one a non-JSON frame kills the process (peerjs-server
// emits 'error' for it, and Node throws an unhandled 'error' event). GET /__bench/stats counts the frames the
// server handled (its 'message' events: every frame, HEARTBEAT included, runs JS).
// Prints "READY <url>"; exits on SIGTERM/SIGINT.
import { PeerServer } from "peer";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const events = { connection: 0, message: 0, heartbeat: 0, disconnect: 0, error: 0 };

const app = PeerServer({ port, host: "127.0.0.1", path: "/", concurrent_limit: 1_000_000 }, () => {
  console.log(`READY http://127.0.0.1:${port}/`);
});
app.on("connection", () => events.connection++);
app.on("disconnect", () => events.disconnect++);
app.on("error", () => events.error++);
app.on("message", (_client, message) => {
  events.message++;
  if (message?.type === "HEARTBEAT") events.heartbeat++;
});
app.get("/__bench/stats", (_req, res) => res.json({ events }));

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
