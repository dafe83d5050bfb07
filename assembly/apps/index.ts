// The default applications: echo (1234), sink (1235) and source (1236) services, many
// connections each, the stats service (1237, stats.ts), the iperf3 server (5201,
// iperf3-server.ts), plus the boot greeting to the host. Everything is a non-blocking state
// machine stepped by appsPoll(), so one slow peer never holds up the loop.
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { vs_accept, vs_bind, vs_listen, vs_local_cid, vs_settimeout, vs_socket } from "../socket-api/api";
import { SOCK_SEQPACKET, SOCK_STREAM } from "../socket-api/api-constants";
import { SEQPACKET_ECHO_PORT } from "./seqpacket-echo";
import { VMADDR_CID_ANY } from "../socket-api/app-support";
import { greetingPoll, greetingStart } from "./greeting";
import { peerClientPoll, peerClientStart } from "./peer-client";
import { runtimeOption } from "../platform/options";
import { allowSiblingList } from "../socket-api/app-support";
import { servicesInit, stepSession } from "./services";
import { Session, SERVICE_ECHO, SERVICE_SEQPACKET_ECHO, SERVICE_SINK, SERVICE_SOURCE } from "./session";
import { STATS_PORT, statsInit, statsPoll } from "./stats";
import { iperf3Poll, iperf3Start } from "./iperf3-server";
import { IPERF3_PORT } from "./iperf3-protocol";
import { testPeerPoll, testPeerStart } from "./test-peer/service";

export const ECHO_PORT: u32 = 1234;
export const SINK_PORT: u32 = 1235;
export const SOURCE_PORT: u32 = 1236;

const sessions = new StaticArray<Session>(MAX_CONNECTIONS);
const LISTENERS: i32 = 4;
const listenFds = new StaticArray<i32>(LISTENERS);
const listenServices = new StaticArray<i32>(LISTENERS);
let statsFd: i32 = -1;
let started = false;
let enabled = true;

// A C application (`make image APP=app.c`) runs instead of the default services: the C entry
// calls this (exported from the wasm) with false before fw_init, so nothing listens on 1234-1236.
export function apps_set_enabled(on: bool): void {
  enabled = on;
}

// The SEQPACKET listener is left out, quietly, on a device without VIRTIO_VSOCK_F_SEQPACKET (the
// socket API logs why at info).
function listenOn(port: u32, type: i32 = SOCK_STREAM): i32 {
  const fd = vs_socket(type);
  if (fd < 0) return fd;
  vs_settimeout(fd, 0);
  let r = vs_bind(fd, VMADDR_CID_ANY, port);
  if (r == 0) r = vs_listen(fd, MAX_CONNECTIONS);
  if (r < 0) {
    if (logBegin(LEVEL_WARN, "app")) {
      logStr("cannot listen");
      logKv("port", port);
      logEnd();
    }
    return r;
  }
  return fd;
}

export function appsStart(): void {
  if (started || !enabled) return;
  started = true;
  for (let i = 0; i < MAX_CONNECTIONS; i++) unchecked((sessions[i] = new Session()));
  servicesInit();
  unchecked((listenServices[0] = SERVICE_ECHO));
  unchecked((listenServices[1] = SERVICE_SINK));
  unchecked((listenServices[2] = SERVICE_SOURCE));
  unchecked((listenFds[0] = listenOn(ECHO_PORT)));
  unchecked((listenFds[1] = listenOn(SINK_PORT)));
  unchecked((listenFds[2] = listenOn(SOURCE_PORT)));
  unchecked((listenServices[3] = SERVICE_SEQPACKET_ECHO));
  unchecked((listenFds[3] = listenOn(SEQPACKET_ECHO_PORT, SOCK_SEQPACKET)));
  statsInit();
  statsFd = listenOn(STATS_PORT);
  iperf3Start(listenOn(IPERF3_PORT));
  if (logBegin(LEVEL_INFO, "app")) {
    logStr("ready:");
    logKv("cid", vs_local_cid());
    logKv("echo", ECHO_PORT);
    logKv("sink", SINK_PORT);
    logKv("source", SOURCE_PORT);
    logKv("stats", STATS_PORT);
    logKv("iperf3", IPERF3_PORT);
    if (unchecked(listenFds[3]) >= 0) logKv("seqpacket_echo", SEQPACKET_ECHO_PORT);
    logEnd();
  }
  testPeerStart();
  greetingStart();
  allowSiblingList(runtimeOption("siblings"));
  peerClientStart();
}

function freeSession(): Session | null {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const s = unchecked(sessions[i]);
    if (!s.inUse()) return s;
  }
  return null;
}

// Takes every waiting connection while there is a session for it; the rest wait in the backlog.
function acceptAll(): void {
  for (let k = 0; k < LISTENERS; k++) {
    const listener = unchecked(listenFds[k]);
    if (listener < 0) continue;
    while (true) {
      const session = freeSession();
      if (session == null) return;
      const fd = vs_accept(listener, 0);
      if (fd < 0) break;
      vs_settimeout(fd, 0);
      session.start(fd, unchecked(listenServices[k]));
    }
  }
}

export function appsPoll(): void {
  if (!started) return;
  acceptAll();
  statsPoll(statsFd);
  iperf3Poll();
  testPeerPoll();
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const s = unchecked(sessions[i]);
    if (s.inUse()) stepSession(s);
  }
  greetingPoll();
  peerClientPoll();
}
