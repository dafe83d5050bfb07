// Socket-API misuse for the fuzzer: the firmware's exported vs_* calls (assembly/socket-api/api.ts)
// made the way a careless app would make them: wrong, closed and never-open fds, calls in the
// wrong state (accept on a non-listener, send before connect, listen or bind twice, recv after
// shutdown), odd, zero and huge lengths, pointers outside linear memory. Each call must return
// its documented value or a negative errno, never trap; a call whose buffer lies outside memory
// must fail. The sockets it uses are its own (or numbers no socket can have), so the firmware's
// services and the host's other connections must not notice (run-case.ts keeps checking them).
// What its sockets send reaches the host's collector on API_PORT: run-case.ts checks that the
// host received a prefix of the bytes the sends accepted (`streamFor`).
import type { Machine } from "../sim/machine";
import type { ApiAction, PointerChoice } from "./actions";

const FD_BASE = 3;
const MAX_SOCKETS = 80; // MAX_CONNECTIONS + 16 (assembly/vsock-protocol/socket-table.ts)
const MAX_OWN_SOCKETS = 8; // leaves the connection table to the services
const SCRATCH_SIZE = 262144;
const INVALID_FDS = [-1, 0, 1, 2, FD_BASE + MAX_SOCKETS, 1000, 0x7fffffff, -0x80000000];
const EBADF = 9;
const EFAULT = 14;
const EINPROGRESS = 115;
/** assembly/vsock-protocol/errors.ts, and EFAULT for buffers outside memory. */
const ERRNOS = new Set([1, 4, EBADF, 11, 12, EFAULT, 22, 24, 32, 71, 88, 95, 98, 99, 100, 103, 104, 105, 106, 107, 110, 111, 114, EINPROGRESS]);
const SO_VM_SOCKETS_CONNECT_TIMEOUT = 6;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;
const OWN_CONNECT_TIMEOUT_NS = 5_000_000n; // so that no wait of a blocking call outlasts the step budget
const SHORT_WAIT_NS = 5_000_000;

/** Bytes one guest connection's sends were accepted with, in order. */
export class SentStream {
  private readonly chunks: Uint8Array[] = [];
  private joined: Uint8Array | null = null;

  add(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.joined = null;
  }

  bytes(): Uint8Array {
    if (!this.joined) {
      this.joined = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of this.chunks) {
        this.joined.set(c, at);
        at += c.length;
      }
    }
    return this.joined;
  }
}

export class ApiMisuse {
  readonly own: number[] = [];
  private readonly closed: number[] = [];
  private readonly streams = new Map<number, SentStream>(); // by the guest's local port
  private readonly scratch: number;
  private readonly out: number; // addresses and option values the calls write back
  private serial = 0;
  calls = 0;

  constructor(private readonly m: Machine) {
    // The buffer last: it ends where memory ends, so a length past it is outside memory.
    this.out = m.scratch(16);
    this.scratch = m.scratch(SCRATCH_SIZE);
  }

  private get x(): Record<string, any> {
    return this.m.exports;
  }

  /** What the host should have received from the guest's port, or null when no API socket used it. */
  streamFor(guestPort: number): SentStream | null {
    return this.streams.get(guestPort) ?? null;
  }

  private fd(a: ApiAction): number | null {
    if (a.fd === "own" && this.own.length === 0) {
      const fd = this.x.vs_socket(); // an app calls socket() first
      if (fd >= 0) this.adopt(fd);
    }
    if (a.fd === "own" && this.own.length > 0) return this.own[a.pick % this.own.length];
    if (a.fd === "closed" && this.closed.length > 0) {
      const fd = this.closed[a.pick % this.closed.length];
      // Reused since by another socket (maybe a service's): not ours to misuse.
      return this.x.vs_getsockname(fd, 0) === -EBADF ? fd : null;
    }
    return INVALID_FDS[a.pick % INVALID_FDS.length];
  }

  // A straddling buffer always crosses the end of memory: one that fits before the end would be
  // an ordinary buffer in whatever lies there, and once the allocator has grown memory past the
  // scratch pages that is the heap (a 1-byte recv at size - 4 wrote into its last free block and
  // the next allocation trapped: the fuzzer's own bug, seed 408256650).
  private pointer(choice: PointerChoice, length: number): number {
    const size = this.m.memory.buffer.byteLength;
    if (choice === "straddle" && length < 2) choice = "beyond";
    switch (choice) {
      case "scratch":
        return this.scratch;
      case "null":
        return 0;
      case "straddle":
        return size - Math.min(4, Math.floor(length / 2));
      case "beyond":
        return size + 4096;
      default:
        return 0xfffffff0;
    }
  }

  private inMemory(pointer: number, length: number): boolean {
    return pointer !== 0 && pointer + length <= this.m.memory.buffer.byteLength;
  }

  // A socket of ours never blocks longer than the fuzzer lets it (a blocking call that nothing
  // answers rightly waits forever; that is the app's bug, not the firmware's).
  private adopt(fd: number): void {
    this.own.push(fd);
    this.x.vs_settimeout(fd, 0n);
    this.x.vs_setsockopt(fd, SO_VM_SOCKETS_CONNECT_TIMEOUT, OWN_CONNECT_TIMEOUT_NS);
  }

  private localPort(fd: number): number {
    this.x.vs_getsockname(fd, this.out);
    return new DataView(this.m.memory.buffer).getUint32(this.out + 4, true);
  }

  /** Makes the call; returns what broke the contract, or null. */
  run(a: ApiAction): string | null {
    const x = this.x;
    if (a.call === "socket") {
      if (this.own.length >= MAX_OWN_SOCKETS) return null;
      const fd = x.vs_socket();
      if (fd >= 0) this.adopt(fd);
      return this.judge(a, fd, { fd: true });
    }
    const fd = this.fd(a);
    if (fd === null) return null;
    this.calls++;
    const length = a.len >>> 0;
    const pointer = this.pointer(a.ptr, length);
    switch (a.call) {
      case "bind":
        return this.judge(a, x.vs_bind(fd, a.b, a.a), {});
      case "listen":
        return this.judge(a, x.vs_listen(fd, a.a), {});
      case "accept": {
        const addr = a.ptr === "null" ? 0 : pointer;
        const r = x.vs_accept(fd, addr);
        if (r >= 0) this.adopt(r);
        return this.judge(a, r, { fd: true, buffer: addr === 0 ? undefined : [addr, 8] });
      }
      case "connect": {
        const r = x.vs_connect(fd, a.b, a.a);
        if (r === 0 || r === -EINPROGRESS) {
          // A new stream for the port, but not for a retry after a failed connect (nothing was sent):
          // the host may still hold the first attempt's socket and take the retry for it.
          const port = this.localPort(fd);
          if ((this.streams.get(port)?.bytes().length ?? 1) > 0) this.streams.set(port, new SentStream());
        }
        return this.judge(a, r, {});
      }
      case "send": {
        if (pointer === this.scratch) this.fill(Math.min(length, SCRATCH_SIZE));
        const r = x.vs_send(fd, pointer, length, a.a);
        if (r > 0) {
          const sent = this.m.read(pointer, r);
          const port = this.localPort(fd);
          if (!this.streams.has(port)) this.streams.set(port, new SentStream());
          this.streams.get(port)!.add(sent);
        }
        return this.judge(a, r, { max: length, buffer: [pointer, length] });
      }
      case "recv":
        return this.judge(a, x.vs_recv(fd, pointer, length, a.a), { max: length, buffer: [pointer, length] });
      case "shutdown":
        return this.judge(a, x.vs_shutdown(fd, a.a), {});
      case "close": {
        const r = x.vs_close(fd);
        const at = this.own.indexOf(fd);
        if (r === 0 && at >= 0) this.closed.push(...this.own.splice(at, 1));
        return this.judge(a, r, {});
      }
      case "settimeout":
        return this.judge(a, x.vs_settimeout(fd, BigInt(Math.min(a.a, SHORT_WAIT_NS))), {});
      case "setsockopt": {
        const waits = a.a === SO_RCVTIMEO || a.a === SO_SNDTIMEO || a.a === SO_VM_SOCKETS_CONNECT_TIMEOUT;
        const value = waits && a.b > 0 ? Math.min(a.b, SHORT_WAIT_NS) : a.b; // never -1 for the waits: see adopt()
        return this.judge(a, x.vs_setsockopt(fd, a.a, BigInt(waits && value < 0 ? 0 : value)), {});
      }
      case "getsockopt": {
        const out = a.ptr === "null" ? 0 : pointer;
        return this.judge(a, x.vs_getsockopt(fd, a.a, out), { buffer: out === 0 ? undefined : [out, 8] });
      }
      case "getsockname":
      case "getpeername": {
        const out = a.ptr === "null" ? 0 : pointer;
        const r = a.call === "getsockname" ? x.vs_getsockname(fd, out) : x.vs_getpeername(fd, out);
        return this.judge(a, r, { buffer: out === 0 ? undefined : [out, 8] });
      }
      case "poll": {
        const count = a.a;
        if (pointer === this.scratch) this.pollEntries(a, Math.max(0, Math.min(count, 16)));
        const r = x.vs_poll(pointer, count, BigInt(Math.min(a.b, SHORT_WAIT_NS)));
        return this.judge(a, r, { max: Math.max(count, 0), buffer: count > 0 ? [pointer, count * 8] : undefined });
      }
    }
    return null;
  }

  private fill(length: number): void {
    const bytes = new Uint8Array(this.m.memory.buffer, this.scratch, length);
    const seed = ++this.serial * 41;
    for (let i = 0; i < length; i++) bytes[i] = (seed + i * 13 + (i >>> 7)) & 0xff;
  }

  private pollEntries(a: ApiAction, count: number): void {
    const view = new DataView(this.m.memory.buffer);
    for (let i = 0; i < count; i++) {
      const own = this.own.length > 0 && (a.pick >>> i) % 3 !== 0;
      const fd = own ? this.own[(a.pick + i) % this.own.length] : INVALID_FDS[(a.pick + i) % INVALID_FDS.length];
      view.setInt32(this.scratch + i * 8, fd, true);
      view.setUint16(this.scratch + i * 8 + 4, 0x1 | 0x4, true); // POLLIN | POLLOUT
      view.setUint16(this.scratch + i * 8 + 6, 0xffff, true); // the call must overwrite it
    }
  }

  /** The contract: a negative errno, or the call's success value; never success on a buffer outside memory. */
  private judge(a: ApiAction, r: unknown, expect: { fd?: boolean; max?: number; buffer?: [number, number] }): string | null {
    const what = () => `${a.call}(fd=${a.fd}, a=${a.a}, b=${a.b}, len=${a.len}, ptr=${a.ptr}) returned ${String(r)}`;
    if (typeof r !== "number" || !Number.isInteger(r)) return `${what()}: not an integer`;
    if (r < 0) return ERRNOS.has(-r) ? null : `${what()}: not a known errno`;
    if (expect.buffer && expect.buffer[1] > 0 && !this.inMemory(...expect.buffer)) {
      return `${what()}: success with a buffer outside linear memory`;
    }
    if (expect.fd) return r >= FD_BASE && r < FD_BASE + MAX_SOCKETS ? null : `${what()}: not an fd`;
    if (expect.max !== undefined) return r <= expect.max ? null : `${what()}: more than asked for`;
    return r === 0 ? null : `${what()}: want 0 or a negative errno`;
  }
}
