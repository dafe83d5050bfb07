// Runs one iperf3 fuzz case (iperf3-actions.ts) on the simulated machine. After every action: no
// wasm trap or abort, no hang (the machine's import budget), no device-checked rule broken. At
// the end the hostile client goes away; then, once the idle and close timeouts passed, nothing of
// it may be left (no connection, no socket but the listeners, no buffered byte), the echo
// service answers and an honest iperf3 test completes with exact counts.
import { Machine, SimHang, SimTrap } from "../sim/machine";
import type { HostSocket } from "../../tools/vsock-model/host";
import { bigEndian32, cookieBytes, IPERF3_PORT, makeCookie, runIperf3Test } from "../sim/iperf3-client";
import { Iperf3Action, jsonText } from "./iperf3-actions";

const WASM_PATH = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";
const COOKIE = makeCookie(4242);
const OTHER_COOKIE = makeCookie(77);

export interface Iperf3CaseResult {
  failure: { message: string; actionIndex: number } | null;
  /** How many times the server answered SERVER_ERROR or ACCESS_DENIED (the run must hit them). */
  refusals: number;
}

function pickSocket(sockets: HostSocket[], conn: number): HostSocket | null {
  const live = sockets.filter((s) => s.state === "connected");
  return live.length === 0 ? null : live[conn % live.length];
}

function act(m: Machine, a: Iperf3Action, sockets: HostSocket[]): void {
  const s = "conn" in a ? pickSocket(sockets, a.conn) : null;
  switch (a.k) {
    case "control":
    case "stream": {
      const h = m.host.connect(IPERF3_PORT);
      sockets.push(h);
      m.runUntil(() => h.state !== "connecting", 50);
      if (a.k === "stream" && h.state === "connected") h.send(cookieBytes(COOKIE)); // streams open with the cookie
      return;
    }
    case "cookie":
      s?.send(cookieBytes(a.good ? COOKIE : OTHER_COOKIE).subarray(0, a.cut));
      return;
    case "length":
      s?.send(bigEndian32(a.value));
      return;
    case "json": {
      const body = new TextEncoder().encode(jsonText(a.kind, a.seed));
      const declared = a.declared === "exact" ? body.length : a.declared === "short" ? Math.max(0, body.length - 3) : body.length + 50;
      s?.send(bigEndian32(declared));
      if (body.length > 0) s?.send(body);
      return;
    }
    case "state":
      s?.send(new Uint8Array([a.value & 0xff]));
      return;
    case "data":
      s?.send(new Uint8Array(a.bytes).fill(0x5a));
      return;
    case "close":
      s?.close();
      return;
    case "reset":
      s?.reset();
      return;
    case "poll":
      m.poll(a.rounds);
      return;
    case "advance":
      m.advance(BigInt(a.ms) * 1_000_000n);
      m.poll(3);
      return;
  }
}

function check(m: Machine): void {
  if (m.aborts.length > 0) throw new Error(`wasm abort: ${m.aborts[0].message}`);
  if (m.device!.violations.length > 0) throw new Error(`device rule broken: ${m.device!.violations[0]}`);
}

export async function runIperf3Case(actions: readonly Iperf3Action[]): Promise<Iperf3CaseResult> {
  const m = await Machine.create({ wasmPath: WASM_PATH, guestCid: 33 });
  if (!m.init()) return { failure: { message: "boot failed", actionIndex: -1 }, refusals: 0 };
  m.poll(3);
  const listeners = m.exports.vsock_open_socket_count();
  const sockets: HostSocket[] = [];
  let index = -1;
  try {
    for (index = 0; index < actions.length; index++) {
      act(m, actions[index], sockets);
      m.poll(2);
      check(m);
    }
    // The client leaves; the idle limit (30 s) and the close timeouts (8 s) pass.
    index = actions.length;
    for (const s of sockets) s.close();
    for (let i = 0; i < 3; i++) {
      m.advance(31_000_000_000n);
      m.poll(20);
    }
    check(m);
    const conns = m.exports.vsock_connection_count();
    if (conns !== 0) throw new Error(`${conns} connections left after the client went away`);
    const open = m.exports.vsock_open_socket_count();
    if (open !== listeners) throw new Error(`${open - listeners} sockets left open`);
    if (m.exports.vsock_buffered_bytes() !== 0n) throw new Error("bytes left in connection buffers");
    const echo = m.host.connect(1234);
    m.runUntil(() => echo.state === "connected", 100);
    echo.send("ok");
    if (!m.runUntil(() => echo.received.length === 2, 500)) throw new Error("echo service does not answer");
    echo.close();
    const r = runIperf3Test(m, { parallel: 2, bytesPerStream: 30_000 }, 5);
    if (!r.server.streams.every((s) => s.bytes === 30_000)) throw new Error(`honest test after the case: ${JSON.stringify(r.server.streams)}`);
    check(m);
  } catch (error) {
    const kind = error instanceof SimHang ? "hang: " : error instanceof SimTrap ? "trap: " : "";
    return { failure: { message: kind + (error as Error).message, actionIndex: index }, refusals: 0 };
  }
  const refusals = m.logLines(/iperf3: (test aborted|busy|data stream with a wrong cookie)/).length;
  return { failure: null, refusals };
}
