// A fake QEMU for the backend's unit tests: it speaks vhost-user over a real Unix socket (fds as
// SCM_RIGHTS through the addon), shares "guest RAM" as a memfd laid out like q35's (a hole at
// 0xa0000-0x100000, so two regions) and plays a tiny virtio-vsock driver on the rings in it.
import { RegionGuestMemory } from "../../tools/vsock-model/guest-memory";
import { DriverQueue } from "../sim/test-driver";
import { splitRingSizes } from "../../tools/vsock-model/split-ring";
import { HeaderFields, VSOCK_HEADER_SIZE, VsockPacket, completeHeader, decodeHeader, encodeHeader } from "../../tools/vsock-model/vsock-packet";
import { addon, check } from "../../tools/vhost-user-vsock/addon";
import {
  FLAG_NEED_REPLY,
  HEADER_SIZE,
  MemoryRegionDescription,
  Message,
  Request,
  VERSION,
  decodeHeader as decodeMessageHeader,
  encodeConfig,
  encodeMemoryTable,
  encodeMessage,
  encodeVringAddress,
  encodeVringState,
  u64Payload,
} from "../../tools/vhost-user-vsock/protocol";

export const RAM_BYTES = 4 << 20;
export const LOW_RAM_END = 0xa0000;
export const HIGH_RAM_START = 0x100000;
/** QEMU's virtual addresses of the two regions (anything distinct from the guest physical ones). */
export const USER_LOW = 0x7f0000000000n;
export const USER_HIGH = 0x7f0010000000n;
const RING_AREA = 0x200000;
const BUFFER_AREA = 0x280000;
const RX_BUFFER_BYTES = 4096;

/** Resolves once `predicate` holds, letting the event loop run (watch callbacks) in between. */
export async function waitFor(predicate: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export class FakeFrontEnd {
  readonly fd: number;
  readonly memfd: number;
  readonly ram: ArrayBuffer;
  readonly memory: RegionGuestMemory;
  readonly regions: MemoryRegionDescription[];
  readonly kickFds: number[] = [];
  readonly callFds: number[] = [];
  queues: DriverQueue[] = [];
  private heap = BUFFER_AREA;
  private readonly rxBuffers = new Map<number, number>();
  private readonly replies: Message[] = [];
  private readonly watchHandle: object;
  guestCid = 33n;

  /** What the driver accepts: VERSION_1 | PROTOCOL_FEATURES | VIRTIO_VSOCK_F_SEQPACKET (a firmware that takes SEQPACKET). */
  driverFeatures = (1n << 32n) | (1n << 30n) | (1n << 1n);

  constructor(socketPath: string) {
    this.fd = check("connect", addon().connectUnix(socketPath));
    this.memfd = check("memfd", addon().memfd("fake-guest-ram", RAM_BYTES));
    const ram = addon().mapShared(this.memfd, 0, RAM_BYTES);
    if (typeof ram === "number") throw new Error(`mmap: ${ram}`);
    this.ram = ram;
    this.memory = new RegionGuestMemory([
      { guestAddress: 0, bytes: () => new Uint8Array(this.ram, 0, LOW_RAM_END) },
      { guestAddress: HIGH_RAM_START, bytes: () => new Uint8Array(this.ram, HIGH_RAM_START) },
    ]);
    this.regions = [
      { guestPhysAddr: 0n, memorySize: BigInt(LOW_RAM_END), userspaceAddr: USER_LOW, mmapOffset: 0n },
      { guestPhysAddr: BigInt(HIGH_RAM_START), memorySize: BigInt(RAM_BYTES - HIGH_RAM_START), userspaceAddr: USER_HIGH, mmapOffset: BigInt(HIGH_RAM_START) },
    ];
    this.watchHandle = addon().watch(this.fd, () => this.readReply());
  }

  private readReply(): void {
    const header = new Uint8Array(HEADER_SIZE);
    const head = addon().recvExact(this.fd, header);
    if (head.n !== HEADER_SIZE) {
      addon().unwatch(this.watchHandle);
      this.closedByBackend = true;
      return;
    }
    const h = decodeMessageHeader(header);
    const payload = new Uint8Array(h.size);
    if (h.size > 0) addon().recvExact(this.fd, payload);
    this.replies.push({ ...h, payload, fds: head.fds });
  }

  closedByBackend = false;

  send(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], flags = VERSION): void {
    check("sendmsg", addon().sendWithFds(this.fd, encodeMessage(request, flags, payload), fds));
  }

  /** Sends and waits for the reply. */
  async call(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], flags = VERSION): Promise<Message> {
    this.send(request, payload, fds, flags);
    await waitFor(() => this.replies.length > 0 || this.closedByBackend, `reply to request ${request}`);
    const reply = this.replies.shift();
    if (!reply) throw new Error(`backend closed the connection instead of answering ${request}`);
    return reply;
  }

  async callU64(request: number): Promise<bigint> {
    const reply = await this.call(request);
    return new DataView(reply.payload.buffer).getBigUint64(0, true);
  }

  /** What QEMU 7.2 sends when vhost-user-vsock-pci is created (before the guest runs). */
  async handshake(): Promise<{ features: bigint; protocolFeatures: bigint; queues: bigint; cid: bigint }> {
    const features = await this.callU64(Request.GET_FEATURES);
    const protocolFeatures = await this.callU64(Request.GET_PROTOCOL_FEATURES);
    this.send(Request.SET_PROTOCOL_FEATURES, u64Payload(protocolFeatures));
    const queues = await this.callU64(Request.GET_QUEUE_NUM);
    this.send(Request.SET_OWNER);
    await this.callU64(Request.GET_FEATURES);
    for (let q = 0; q < 2; q++) {
      this.callFds[q] = check("eventfd", addon().eventfdCreate());
      this.send(Request.SET_VRING_CALL, u64Payload(BigInt(q)), [this.callFds[q]]);
      const err = check("eventfd", addon().eventfdCreate());
      this.send(Request.SET_VRING_ERR, u64Payload(BigInt(q)), [err]);
      addon().close(err); // the backend holds its own copy
    }
    const config = await this.call(Request.GET_CONFIG, encodeConfig({ offset: 0, size: 8, flags: 0, data: new Uint8Array(8) }));
    const cid = new DataView(config.payload.buffer).getBigUint64(12, true);
    this.guestCid = cid;
    return { features, protocolFeatures, queues, cid };
  }

  /** The driver's start: features, memory table (acked), rings, enable; rx buffers posted first. */
  async startRings(size = 16, rxCount = 8, base = 0): Promise<bigint> {
    this.send(Request.SET_FEATURES, u64Payload(this.driverFeatures));
    const ack = await this.call(Request.SET_MEM_TABLE, encodeMemoryTable(this.regions), [this.memfd, this.memfd], VERSION | FLAG_NEED_REPLY);
    const status = new DataView(ack.payload.buffer).getBigUint64(0, true);
    this.queues = [];
    this.heap = BUFFER_AREA;
    this.rxBuffers.clear();
    const ringBytes = splitRingSizes(size).desc + 4096 + splitRingSizes(size).used;
    for (let q = 0; q < 2; q++) {
      const ring = new DriverQueue(this.memory, q, size, RING_AREA + q * ((ringBytes + 4095) & ~4095));
      // A restarted driver continues where the device said it stopped.
      ring.availIdx = base;
      ring.lastUsed = base;
      this.memory.write16(ring.avail + 2, base);
      this.memory.write16(ring.used + 2, base);
      this.queues.push(ring);
    }
    for (let i = 0; i < rxCount; i++) this.postRx();
    for (let q = 0; q < 2; q++) {
      const ring = this.queues[q];
      this.send(Request.SET_VRING_NUM, encodeVringState({ index: q, num: size }));
      this.send(Request.SET_VRING_BASE, encodeVringState({ index: q, num: base }));
      this.send(Request.SET_VRING_ADDR, encodeVringAddress({ index: q, flags: 0, desc: this.user(ring.desc), used: this.user(ring.used), avail: this.user(ring.avail), log: 0n }));
      if (this.kickFds[q] >= 0) addon().close(this.kickFds[q]);
      this.kickFds[q] = check("eventfd", addon().eventfdCreate());
      this.send(Request.SET_VRING_KICK, u64Payload(BigInt(q)), [this.kickFds[q]]);
    }
    for (let q = 0; q < 2; q++) this.send(Request.SET_VRING_ENABLE, encodeVringState({ index: q, num: 1 }));
    return status;
  }

  /** GET_VRING_BASE on both rings (what QEMU does when the guest resets the device). */
  async stopRings(): Promise<number[]> {
    const bases: number[] = [];
    for (let q = 0; q < 2; q++) {
      const reply = await this.call(Request.GET_VRING_BASE, encodeVringState({ index: q, num: 0 }));
      bases.push(new DataView(reply.payload.buffer).getUint32(4, true));
    }
    return bases;
  }

  /** QEMU's virtual address of a guest physical address. */
  user(gpa: number): bigint {
    return gpa >= HIGH_RAM_START ? USER_HIGH + BigInt(gpa - HIGH_RAM_START) : USER_LOW + BigInt(gpa);
  }

  alloc(bytes: number): number {
    const at = this.heap;
    this.heap = (this.heap + bytes + 15) & ~15;
    if (this.heap > RAM_BYTES) throw new Error("fake guest heap exhausted");
    return at;
  }

  postRx(): void {
    const addr = this.alloc(RX_BUFFER_BYTES);
    const head = this.queues[0].add([{ addr, len: RX_BUFFER_BYTES, writable: true }]);
    this.rxBuffers.set(head, addr);
  }

  kick(queue: number): void {
    addon().eventfdWrite(this.kickFds[queue], 1);
  }

  /** Interrupts the backend signalled on a queue since the last call (the call eventfd's counter). */
  calls(queue: number): number {
    const n = addon().eventfdRead(this.callFds[queue]);
    return n > 0 ? n : 0;
  }

  /**
   * One packet into the tx ring (header and payload in one descriptor), kicked. `at` places it at
   * a chosen guest address; `descriptor` posts a raw (possibly bad) descriptor instead.
   */
  sendPacket(fields: HeaderFields, payload: Uint8Array = new Uint8Array(0), options: { at?: number; descriptor?: { addr: number; len: number } } = {}): void {
    const header = completeHeader(fields, {
      srcCid: this.guestCid, dstCid: 2n, srcPort: 0, dstPort: 0, len: payload.length, type: 1, op: 5, flags: 0, bufAlloc: 262144, fwdCnt: 0,
    });
    const addr = options.at ?? this.alloc(VSOCK_HEADER_SIZE + payload.length);
    if (!options.descriptor) {
      this.memory.writeBytes(addr, encodeHeader(header));
      this.memory.writeBytes(addr + VSOCK_HEADER_SIZE, payload);
    }
    const d = options.descriptor ?? { addr, len: VSOCK_HEADER_SIZE + payload.length };
    this.queues[1].add([{ ...d, writable: false }]);
    this.kick(1);
  }

  /** Packets the backend put into rx buffers since the last call (buffers reposted and kicked). */
  receive(): VsockPacket[] {
    const packets: VsockPacket[] = [];
    for (const { id, len } of this.queues[0].takeUsed()) {
      const addr = this.rxBuffers.get(id)!;
      this.rxBuffers.delete(id);
      const bytes = this.memory.readBytes(addr, len);
      packets.push({ header: decodeHeader(bytes), payload: bytes.slice(VSOCK_HEADER_SIZE) });
      this.postRx();
    }
    if (packets.length > 0) this.kick(0);
    return packets;
  }

  /** Packets until `predicate` matches one (returns it; others collected in `seen`). */
  async receiveUntil(predicate: (p: VsockPacket) => boolean, what: string, seen: VsockPacket[] = []): Promise<VsockPacket> {
    let found: VsockPacket | undefined;
    await waitFor(() => {
      for (const p of this.receive()) {
        seen.push(p);
        if (!found && predicate(p)) found = p;
      }
      return found !== undefined;
    }, what);
    return found!;
  }

  close(): void {
    if (!this.closedByBackend) addon().unwatch(this.watchHandle);
    this.closedByBackend = true;
    addon().close(this.fd);
    for (const fd of [...this.kickFds, ...this.callFds, this.memfd]) if (fd >= 0) addon().close(fd);
    addon().unmap(this.ram);
  }
}
