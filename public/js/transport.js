// The media transport: how our local tracks reach the other members of the room and theirs reach
// us. The room page (room.js) talks only to this interface, so it does not know the topology: the
// mesh (mesh.js: one PeerJS call per remote member) is one implementation; an SFU (one connection
// to a media server that forwards everyone's tracks) is meant to be the second.
//
// Who may exchange media is decided by the room (its roster), never by the transport: the
// transport is told whom to connect and whom to drop, and asks `isMember` before it accepts
// anything a remote side starts (for the mesh, an incoming call).
//
// Methods (the base class below throws for each one an implementation leaves out):
// - attach(signalling)        the signalling object the Connection made (a PeerJS Peer for the
//                             mesh); called again whenever a new one exists
// - setReady(iceServers)      our welcome arrived: use these ICE servers, accept what waited for it
// - admit()                   the roster changed: accept what waited for a member to be named
// - connect(peerId) → bool    start exchanging media with that member ("add a remote member");
//                             replaces a session we have with it; false if it cannot start now
// - disconnect(peerId, why)   stop exchanging media with it ("remove a remote member")
// - disconnectAll(why)        every member (leaving, fatal errors)
// - has(peerId) → bool        is there a session (connecting or connected) with that member?
// - remotes() → peerId[]      the members we have a session with
// - publish()                 send the local tracks as they are now (mute, camera, screen, device
//                             switch): replaces tracks, never renegotiates
// - undeliverable(peerId)     signalling could not reach that member (PeerJS EXPIRE)
// - peerConnections() → Map   every RTCPeerConnection it holds, by the member id it serves (the
//                             mesh: one per member), live: for stats, debugging and the tests
//
// Events (an Emitter, like every module here):
// - "call" (peerId, outgoing)       a session with a member is being set up (outgoing: we started it)
// - "stream" (peerId, MediaStream)  that member's media, once per new stream
// - "state" (peerId, state)         its connection state (RTCPeerConnectionState words)
// - "ended" (peerId, why)           the session is over ("left", "closed", "failed", "timeout",
//                                   "unavailable"); a replaced session ends without it
import { Emitter } from "./util.js";

export const TRANSPORT_METHODS = Object.freeze([
  "attach", "setReady", "admit", "connect", "disconnect", "disconnectAll", "has", "remotes",
  "publish", "undeliverable", "peerConnections",
]);
export const TRANSPORT_EVENTS = Object.freeze(["call", "stream", "state", "ended"]);

/** Base class of a transport: an Emitter whose methods must all be overridden. */
export class Transport extends Emitter {
  /**
   * @param {object} opts
   * @param {(peerId: string) => boolean} opts.isMember  does the room seat that peer?
   */
  constructor({ isMember }) {
    super();
    this.isMember = isMember;
  }
}
for (const name of TRANSPORT_METHODS) {
  Transport.prototype[name] = function () {
    throw new Error(`${this.constructor.name} does not implement Transport.${name}()`);
  };
}

/**
 * The conformance check: throws unless `t` is a Transport that implements every method itself.
 * Cheap, so room.js runs it on the transport it is given.
 */
export function assertTransport(t) {
  if (!(t instanceof Transport)) throw new TypeError("not a Transport");
  const missing = TRANSPORT_METHODS.filter((m) => typeof t[m] !== "function" || t[m] === Transport.prototype[m]);
  if (missing.length) throw new TypeError(`${t.constructor.name} lacks Transport methods: ${missing.join(", ")}`);
  return t;
}
