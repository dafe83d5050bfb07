// An iperf3 client (the 3.x control protocol, as iperf_client_api.c drives it) over the simulated
// host's vsock sockets, for the firmware's iperf3 server (port 5201): cookie, PARAM_EXCHANGE with
// a JSON parameter object, CREATE_STREAMS (each stream sends the cookie first), TEST_START and
// TEST_RUNNING, data, TEST_END, EXCHANGE_RESULTS both ways, DISPLAY_RESULTS, IPERF_DONE. Each
// step waits with a bounded number of machine polls and throws, naming the step, when it runs out.
import type { HostSocket } from "../../tools/vsock-model/host";
import type { Machine } from "./machine";

export const IPERF3_PORT = 5201;
export const TEST_START = 1, TEST_RUNNING = 2, TEST_END = 4, PARAM_EXCHANGE = 9, CREATE_STREAMS = 10;
export const CLIENT_TERMINATE = 12, EXCHANGE_RESULTS = 13, DISPLAY_RESULTS = 14, IPERF_DONE = 16;
export const ACCESS_DENIED = -1, SERVER_ERROR = -2;
export const IENUMSTREAMS = 6, IEREVERSEBIDIR = 25, IERECVCOOKIE = 106, IEMESSAGE = 110, IERECVPARAMS = 114;
export const IERECVRESULTS = 117, IEPROTOCOL = 131, IENOMSG = 144;

export interface Iperf3Test {
  parallel?: number;
  reverse?: boolean;
  bidir?: boolean;
  /** Forward: bytes each sending stream sends before TEST_END. */
  bytesPerStream?: number;
  /** -n: the test's byte count (the server stops sending there in reverse). */
  num?: number;
  /** -t seconds (reverse: the server sends that long, on its clock). */
  time?: number;
  len?: number;
  omit?: number;
  /** Members added to (or replacing) the parameter object. */
  extra?: Record<string, unknown>;
}

export interface ServerResults {
  cpu_util_total: number;
  sender_has_retransmits: number;
  streams: { id: number; bytes: number; retransmits: number; jitter: number; errors: number; packets: number; start_time: number; end_time: number }[];
}

export interface Iperf3Outcome {
  states: number[];
  server: ServerResults;
  /** Per stream, in id order: what this client sent and received. */
  sent: number[];
  received: number[];
  ids: number[];
  /** Bytes that came after TEST_END (read, not counted, as iperf3 does). */
  late: number;
}

export class Iperf3ProtocolError extends Error {}

/** iperf3's stream ids: 1, 3, 4, 5, ... (iperf_add_stream). */
export function streamId(index: number): number {
  return index === 0 ? 1 : index + 2;
}

export function makeCookie(seed = 1): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let x = seed >>> 0 || 1;
  let out = "";
  for (let i = 0; i < 36; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out += alphabet[x >>> 27];
  }
  return out;
}

export function bigEndian32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0);
  return out;
}

/** The JSON as iperf3 sends it: a 4-byte big-endian length, then the text. */
export function framedJson(value: unknown): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(value));
  const out = new Uint8Array(4 + text.length);
  out.set(bigEndian32(text.length));
  out.set(text, 4);
  return out;
}

export function cookieBytes(cookie: string): Uint8Array {
  const out = new Uint8Array(37);
  out.set(new TextEncoder().encode(cookie));
  return out;
}

/** The parameter object iperf3 3.12's send_parameters() builds for a test. */
export function parameters(t: Iperf3Test): Record<string, unknown> {
  const p: Record<string, unknown> = { tcp: true, omit: t.omit ?? 0, time: t.num ? 0 : (t.time ?? 10), num: t.num ?? 0, blockcount: 0, parallel: t.parallel ?? 1 };
  if (t.reverse) p.reverse = true;
  if (t.bidir) p.bidirectional = true;
  p.len = t.len ?? 131072;
  p.pacing_timer = 1000;
  p.client_version = "3.12";
  return { ...p, ...(t.extra ?? {}) };
}

/** Reads the control connection's bytes in order. */
export class ControlReader {
  private at = 0;
  constructor(
    private readonly m: Machine,
    readonly socket: HostSocket,
  ) {}

  private waitFor(count: number, step: string, rounds: number): Uint8Array {
    const ok = this.m.runUntil(() => this.socket.received.length >= this.at + count || (this.socket.eof && this.socket.received.length < this.at + count), rounds);
    if (!ok || this.socket.received.length < this.at + count) {
      throw new Iperf3ProtocolError(`${step}: wanted ${count} bytes at ${this.at}, have ${this.socket.received.length - this.at} (eof=${this.socket.eof}, state=${this.socket.state})`);
    }
    const out = this.socket.received.slice(this.at, this.at + count);
    this.at += count;
    return out;
  }

  state(step: string, rounds = 20000): number {
    return (this.waitFor(1, step, rounds)[0] << 24) >> 24;
  }

  /** A state that must be `expected`; a SERVER_ERROR is reported with its two numbers. */
  expect(expected: number, step: string, rounds = 20000): void {
    const got = this.state(step, rounds);
    if (got === SERVER_ERROR) {
      const [code, errno] = this.serverError(step);
      throw new Iperf3ProtocolError(`${step}: SERVER_ERROR ${code} errno ${errno}`);
    }
    if (got !== expected) throw new Iperf3ProtocolError(`${step}: state ${got}, expected ${expected}`);
  }

  /** After SERVER_ERROR: iperf3's error number and errno. */
  serverError(step: string): [number, number] {
    const bytes = this.waitFor(8, `${step} (error numbers)`, 2000);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    return [view.getInt32(0), view.getInt32(4)];
  }

  json(step: string): unknown {
    const length = new DataView(this.waitFor(4, step, 2000).buffer).getUint32(0);
    return JSON.parse(new TextDecoder().decode(this.waitFor(length, step, 20000)));
  }

  get position(): number {
    return this.at;
  }
}

/** Connects a host socket to the iperf3 port and waits for the connection. */
export function connectIperf3(m: Machine): HostSocket {
  const h = m.host.connect(IPERF3_PORT);
  if (!m.runUntil(() => h.state !== "connecting", 200) || h.state !== "connected") throw new Iperf3ProtocolError(`connect: ${h.state}`);
  return h;
}

/**
 * One whole test as iperf3's client runs it; returns the states seen, the server's results and
 * this client's counts. The server's data (reverse) is read as it comes.
 */
export function runIperf3Test(m: Machine, t: Iperf3Test, seed = 1): Iperf3Outcome {
  const cookie = makeCookie(seed);
  const control = connectIperf3(m);
  const reader = new ControlReader(m, control);
  const states: number[] = [];
  control.send(cookieBytes(cookie));
  reader.expect(PARAM_EXCHANGE, "PARAM_EXCHANGE");
  states.push(PARAM_EXCHANGE);
  control.send(framedJson(parameters(t)));
  reader.expect(CREATE_STREAMS, "CREATE_STREAMS");
  states.push(CREATE_STREAMS);
  const parallel = t.parallel ?? 1;
  const count = parallel * (t.bidir ? 2 : 1);
  const streams: HostSocket[] = [];
  for (let i = 0; i < count; i++) {
    const s = connectIperf3(m);
    s.send(cookieBytes(cookie));
    streams.push(s);
  }
  // Client side: bidir's first half sends; otherwise every stream sends unless reverse.
  const clientSends = (i: number) => (t.bidir ? i < parallel : !t.reverse);
  reader.expect(TEST_START, "TEST_START");
  reader.expect(TEST_RUNNING, "TEST_RUNNING");
  states.push(TEST_START, TEST_RUNNING);
  const perStream = t.bytesPerStream ?? 100_000;
  streams.forEach((s, i) => {
    if (clientSends(i)) s.send(new Uint8Array(perStream).fill(i + 1));
  });
  const received = () => streams.reduce((n, s, i) => n + (clientSends(i) ? 0 : s.received.length), 0);
  if (t.num && (t.reverse || t.bidir)) {
    // -n: the client ends the test once it has num bytes (iperf_run_client's check).
    if (!m.runUntil(() => received() >= t.num!, 200000)) throw new Iperf3ProtocolError(`reverse -n: received ${received()} of ${t.num}`);
  } else if (t.reverse || t.bidir) {
    // -t: some data, then the test's time passes on the firmware's clock; the server stops sending.
    m.runUntil(() => received() > 300_000, 20000);
    m.advance(BigInt((t.time ?? 10) + (t.omit ?? 0)) * 1_000_000_000n);
    let last = -1;
    m.runUntil(() => {
      const now = received();
      const settled = now === last;
      last = now;
      return settled;
    }, 200000);
  }
  const countedAtTestEnd = streams.map((s, i) => (clientSends(i) ? 0 : s.received.length));
  // TEST_END follows the last write at once: the data may still be on its way (in the host's send
  // queue here, in the kernel's socket buffers for iperf3), and the server must still count it all.
  control.send(new Uint8Array([TEST_END]));
  reader.expect(EXCHANGE_RESULTS, "EXCHANGE_RESULTS");
  states.push(EXCHANGE_RESULTS);
  const late = streams.reduce((n, s, i) => n + (clientSends(i) ? 0 : s.received.length - countedAtTestEnd[i]), 0);
  const sent = streams.map((s, i) => (clientSends(i) ? perStream : 0));
  // iperf3 counts only what it read before TEST_END (iperf_tcp_recv, TEST_RUNNING only).
  const got = countedAtTestEnd;
  const ids = streams.map((_, i) => streamId(i));
  control.send(
    framedJson({
      cpu_util_total: 1.5,
      cpu_util_user: 0.5,
      cpu_util_system: 1.0,
      sender_has_retransmits: t.reverse ? -1 : 0,
      streams: streams.map((_, i) => ({ id: ids[i], bytes: clientSends(i) ? sent[i] : got[i], retransmits: 0, jitter: 0, errors: 0, packets: 0, start_time: 0, end_time: 10.000012 })),
    }),
  );
  const server = reader.json("server results") as ServerResults;
  reader.expect(DISPLAY_RESULTS, "DISPLAY_RESULTS");
  states.push(DISPLAY_RESULTS);
  for (const s of streams) s.close();
  control.send(new Uint8Array([IPERF_DONE]));
  control.close();
  m.runUntil(() => control.state === "closed" && streams.every((s) => s.state === "closed"), 20000);
  return { states, server, sent, received: got, ids, late };
}
