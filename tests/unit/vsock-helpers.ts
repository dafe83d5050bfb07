// Shared set-up for the protocol, API and apps tests (tests/unit/{vsock,api,apps}-*.test.ts):
// a booted simulated machine and a typed wrapper over the exported vs_* socket API.
import assert from "node:assert/strict";
import { Machine, MachineOptions } from "../sim/machine";
import type { VsockPacket } from "../../tools/vsock-model/vsock-packet";
import {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
} from "../../tools/vsock-model/vsock-packet";

export {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST as OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE as OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST as OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE as OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST as OP_RST,
  VIRTIO_VSOCK_OP_RW as OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN as OP_SHUTDOWN,
};

export const WASM_PATH = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";
export const GUEST_CID = 33;

// errno (assembly/vsock-protocol/errors.ts)
export const EBADF = 9, EAGAIN = 11, EINVAL = 22, EMFILE = 24, EPIPE = 32, EPROTO = 71, EOPNOTSUPP = 95;
export const EADDRINUSE = 98, EADDRNOTAVAIL = 99, ECONNRESET = 104, ENOBUFS = 105, EISCONN = 106;
export const ENOTCONN = 107, ETIMEDOUT = 110, EALREADY = 114, EINPROGRESS = 115;
// assembly/socket-api/api-constants.ts
export const SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;
export const MSG_PEEK = 2, MSG_DONTWAIT = 0x40;
export const POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16, POLLNVAL = 32;
export const SO_VM_SOCKETS_BUFFER_SIZE = 0, SO_VM_SOCKETS_BUFFER_MIN_SIZE = 1, SO_VM_SOCKETS_BUFFER_MAX_SIZE = 2;
export const SO_ERROR = 4, SO_VM_SOCKETS_CONNECT_TIMEOUT = 6, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21;
export const VMADDR_CID_ANY = 0xffffffff, VMADDR_PORT_ANY = 0xffffffff;
export const ECHO_PORT = 1234, SINK_PORT = 1235, SOURCE_PORT = 1236, GREETING_PORT = 4050;
export const RX_WINDOW = 262144;
export const SEND_BUFFER = 65536;
export const MAX_PAYLOAD = 65536;

/** A booted machine (fw_init done, default apps listening). */
export async function boot(options: MachineOptions = {}): Promise<Machine> {
  const m = await Machine.create({ wasmPath: WASM_PATH, guestCid: GUEST_CID, ...options });
  assert.equal(m.init(), true, m.logText());
  m.poll(3); // the boot greeting's first attempt (RST: nobody listens on 4050) settles
  return m;
}

/** Deterministic test data (not the source service's pattern). */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** Packets the guest sent (since index `from`), optionally of one op. */
export function sent(m: Machine, op?: number, from = 0): VsockPacket[] {
  return m.device!.sentByGuest.slice(from).filter((p) => op === undefined || p.header.op === op);
}

export function noViolations(m: Machine): void {
  assert.deepEqual(m.device!.violations, [], "device saw protocol violations");
  assert.deepEqual(m.aborts, [], "wasm aborted");
}

export function connCount(m: Machine): number {
  return m.exports.vsock_connection_count();
}

/**
 * The vs_* API with test-friendly types. Buffers live in a scratch area of wasm memory.
 * accept, recv, send and connect block as the socket's timeouts say (accepted sockets block by
 * default); one that waits for something that never comes throws SimHang, naming the call, once it
 * has made the machine's budget of import calls (tests/sim/machine.ts): a test fails, never hangs.
 */
export class Guest {
  private readonly buffer: number;
  private readonly bufferSize = 1 << 20;
  private readonly addr: number;
  private readonly value: number;

  constructor(readonly m: Machine) {
    this.buffer = m.scratch(this.bufferSize);
    this.addr = m.scratch(16);
    this.value = m.scratch(16);
  }

  get x(): Record<string, any> {
    return this.m.exports;
  }

  socket(): number {
    return this.x.vs_socket();
  }
  bind(fd: number, port: number, cid = VMADDR_CID_ANY): number {
    return this.x.vs_bind(fd, cid, port);
  }
  listen(fd: number, backlog = 16): number {
    return this.x.vs_listen(fd, backlog);
  }
  /** socket + bind + listen, asserting success. */
  listener(port: number, backlog = 16, nonBlocking = true): number {
    const fd = this.socket();
    assert.ok(fd >= 0);
    assert.equal(this.bind(fd, port), 0);
    assert.equal(this.listen(fd, backlog), 0);
    if (nonBlocking) assert.equal(this.settimeout(fd, 0n), 0);
    return fd;
  }
  accept(fd: number): { fd: number; cid: number; port: number } {
    const r = this.x.vs_accept(fd, this.addr);
    if (r < 0) return { fd: r, cid: -1, port: -1 };
    const view = new DataView(this.m.memory.buffer);
    return { fd: r, cid: view.getUint32(this.addr, true), port: view.getUint32(this.addr + 4, true) };
  }
  connect(fd: number, port: number, cid = 2): number {
    return this.x.vs_connect(fd, cid, port);
  }
  send(fd: number, data: Uint8Array | string, flags = 0): number {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    assert.ok(bytes.length <= this.bufferSize);
    this.m.write(this.buffer, bytes);
    return this.x.vs_send(fd, this.buffer, bytes.length, flags);
  }
  /** Returns the bytes read, or the negative errno. */
  recv(fd: number, max = 65536, flags = 0): Uint8Array | number {
    const r = this.x.vs_recv(fd, this.buffer, Math.min(max, this.bufferSize), flags);
    if (r < 0) return r;
    return this.m.read(this.buffer, r);
  }
  shutdown(fd: number, how: number): number {
    return this.x.vs_shutdown(fd, how);
  }
  close(fd: number): number {
    return this.x.vs_close(fd);
  }
  settimeout(fd: number, ns: bigint): number {
    return this.x.vs_settimeout(fd, ns);
  }
  setsockopt(fd: number, option: number, value: bigint): number {
    return this.x.vs_setsockopt(fd, option, value);
  }
  getsockopt(fd: number, option: number): bigint | number {
    const r = this.x.vs_getsockopt(fd, option, this.value);
    if (r < 0) return r;
    return new DataView(this.m.memory.buffer).getBigInt64(this.value, true);
  }
  sockname(fd: number): { r: number; cid: number; port: number } {
    const r = this.x.vs_getsockname(fd, this.addr);
    const view = new DataView(this.m.memory.buffer);
    return { r, cid: view.getUint32(this.addr, true), port: view.getUint32(this.addr + 4, true) };
  }
  peername(fd: number): { r: number; cid: number; port: number } {
    const r = this.x.vs_getpeername(fd, this.addr);
    const view = new DataView(this.m.memory.buffer);
    return { r, cid: view.getUint32(this.addr, true), port: view.getUint32(this.addr + 4, true) };
  }
  /** vs_poll over [fd, events] pairs; returns [ready, revents[]]. */
  poll(entries: [number, number][], timeoutNs: bigint): [number, number[]] {
    const view = new DataView(this.m.memory.buffer);
    entries.forEach(([fd, events], i) => {
      view.setInt32(this.buffer + i * 8, fd, true);
      view.setUint16(this.buffer + i * 8 + 4, events, true);
      view.setUint16(this.buffer + i * 8 + 6, 0, true);
    });
    const ready = this.x.vs_poll(this.buffer, entries.length, timeoutNs);
    const after = new DataView(this.m.memory.buffer);
    return [ready, entries.map((_, i) => after.getUint16(this.buffer + i * 8 + 6, true))];
  }
  /** Reads (non-blocking, polling the machine) until `length` bytes or EOF; returns what came. */
  readAll(fd: number, length: number, maxRounds = 200000): Uint8Array {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let round = 0; round < maxRounds && total < length; round++) {
      const r = this.recv(fd, 65536, MSG_DONTWAIT);
      if (typeof r === "number") {
        assert.equal(r, -EAGAIN, `recv failed: ${r}`);
        this.m.poll();
        continue;
      }
      if (r.length === 0) break;
      chunks.push(r);
      total += r.length;
    }
    return concat(chunks);
  }
  /** Sends everything (non-blocking, polling the machine between attempts). */
  sendAll(fd: number, data: Uint8Array, maxRounds = 200000): number {
    let at = 0;
    for (let round = 0; round < maxRounds && at < data.length; round++) {
      const r = this.send(fd, data.subarray(at, Math.min(data.length, at + 65536)), MSG_DONTWAIT);
      if (r > 0) at += r;
      else {
        assert.equal(r, -EAGAIN, `send failed: ${r}`);
        this.m.poll();
      }
    }
    return at;
  }
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Boots and returns the machine and its socket API. */
export async function guest(options: MachineOptions = {}): Promise<{ m: Machine; g: Guest }> {
  const m = await boot(options);
  return { m, g: new Guest(m) };
}

/**
 * A booted machine with a guest listener on `port` and one connection from host port `hostPort`,
 * accepted. `setup` runs before the host connects (e.g. to set test hooks for new connections).
 */
export async function accepted(port: number, hostPort: number, options: MachineOptions = {}, setup?: (m: Machine) => void) {
  const { m, g } = await guest(options);
  setup?.(m);
  const lfd = g.listener(port);
  const h = m.host.connect(port, hostPort);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  assert.ok(fd >= 0, `accept: ${fd}`);
  return { m, g, h, fd, lfd };
}
