// A deliberately small virtio-vsock driver in plain TypeScript, for testing the simulator itself
// without the firmware: it reaches the device only as the firmware does (config ports, MMIO on
// the BARs it assigned, rings in guest RAM), so the sim's tests exercise the same paths.
import { RegionGuestMemory } from "../../tools/vsock-model/guest-memory";
import { PciBus } from "./pci-bus";
import { PCI_BAR0, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "./pci-config";
import { addQ35Functions } from "./q35";
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, splitRingSizes } from "../../tools/vsock-model/split-ring";
import * as V from "./virtio-pci";
import { SimVsockDevice, SimVsockDeviceOptions } from "../../tools/vsock-model/vsock-device";
import { HeaderFields, VSOCK_HEADER_SIZE, VsockPacket, completeHeader, decodeHeader, encodeHeader } from "../../tools/vsock-model/vsock-packet";

export const RIG_RAM_BASE = 0x1000000;
export const RIG_RAM_SIZE = 4 * 1024 * 1024;
export const RIG_BAR4_ADDRESS = 0xe0000000n;
export const RIG_BAR1_ADDRESS = 0xe0100000n;
const TX_SLOTS = 8; // tx buffers rotate: the device consumes each one synchronously on notify
const TX_SLOT_BYTES = VSOCK_HEADER_SIZE + 65536 + 4;

export interface RigOptions extends SimVsockDeviceOptions {
  refuseFeatures?: boolean;
  notifyOffMultiplier?: number;
}

/** A bus with the q35 functions and a vsock function at 00:01.0 over a plain RAM buffer. */
export function createRig(options: RigOptions = {}) {
  const ram = new Uint8Array(RIG_RAM_SIZE);
  const memory = new RegionGuestMemory([{ guestAddress: RIG_RAM_BASE, bytes: () => ram }]);
  let clock = 0n;
  const device = new SimVsockDevice({ ...options, now: () => clock });
  const bus = new PciBus();
  addQ35Functions(bus);
  const fn = new V.VirtioPciFunction({
    device: 1,
    memory,
    model: device,
    refuseFeatures: options.refuseFeatures,
    notifyOffMultiplier: options.notifyOffMultiplier,
    onViolation: (m) => device.violation(m),
  });
  device.transport = fn;
  bus.add(fn);
  const driver = new TinyDriver(bus, memory);
  return { ram, memory, device, bus, fn, driver, host: device.host, advance: (ns: bigint) => ((clock += ns), device.host.tick()) };
}

/** Config space through 0xCF8/0xCFC, as the firmware does it. */
export class ConfigPorts {
  constructor(private readonly bus: PciBus) {}
  private select(bus: number, device: number, fn: number, offset: number): void {
    this.bus.configPortWrite(PCI_CONFIG_ADDRESS_PORT, 4, (0x80000000 | (bus << 16) | (device << 11) | (fn << 8) | (offset & 0xfc)) >>> 0);
  }
  read(bdf: [number, number, number], offset: number, width: 1 | 2 | 4): number {
    this.select(...bdf, offset);
    return this.bus.configPortRead(PCI_CONFIG_DATA_PORT + (offset & 3), width)!;
  }
  write(bdf: [number, number, number], offset: number, width: 1 | 2 | 4, value: number): void {
    this.select(...bdf, offset);
    this.bus.configPortWrite(PCI_CONFIG_DATA_PORT + (offset & 3), width, value);
  }
}

export class DriverQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  availIdx = 0;
  lastUsed = 0;
  private readonly free: number[] = [];
  private readonly chains = new Map<number, number[]>();

  constructor(
    private readonly memory: RegionGuestMemory,
    readonly index: number,
    readonly size: number,
    base: number,
  ) {
    const sizes = splitRingSizes(size);
    this.desc = base;
    this.avail = base + sizes.desc;
    this.used = (this.avail + sizes.avail + 3) & ~3;
    for (let i = 0; i < size; i++) this.free.push(i);
  }

  get end(): number {
    return this.used + splitRingSizes(this.size).used;
  }

  /** Posts one chain; returns its head. */
  add(parts: { addr: number; len: number; writable: boolean }[]): number {
    const ids = parts.map(() => this.free.shift()!);
    parts.forEach((p, i) => {
      const at = this.desc + 16 * ids[i];
      this.memory.write64(at, BigInt(p.addr));
      this.memory.write32(at + 8, p.len);
      const next = i + 1 < parts.length;
      this.memory.write16(at + 12, (next ? VIRTQ_DESC_F_NEXT : 0) | (p.writable ? VIRTQ_DESC_F_WRITE : 0));
      this.memory.write16(at + 14, next ? ids[i + 1] : 0);
    });
    this.memory.write16(this.avail + 4 + 2 * (this.availIdx % this.size), ids[0]);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.memory.write16(this.avail + 2, this.availIdx);
    this.chains.set(ids[0], ids);
    return ids[0];
  }

  /** Used entries since the last call; their descriptors go back to the free list. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const usedIdx = this.memory.read16(this.used + 2);
    while (this.lastUsed !== usedIdx) {
      const slot = this.lastUsed % this.size;
      const id = this.memory.read32(this.used + 4 + 8 * slot);
      const len = this.memory.read32(this.used + 8 + 8 * slot);
      out.push({ id, len });
      const ids = this.chains.get(id);
      if (ids) {
        this.free.push(...ids);
        this.chains.delete(id);
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

export class TinyDriver {
  readonly config: ConfigPorts;
  readonly bdf: [number, number, number] = [0, 1, 0];
  queues: DriverQueue[] = [];
  private heap = RIG_RAM_BASE + 0x1000;
  readonly rxBuffers = new Map<number, { addr: number; len: number; writable: boolean }[]>();
  guestCid = 0n;
  private txArea = 0;
  private txNext = 0;

  constructor(
    readonly bus: PciBus,
    readonly memory: RegionGuestMemory,
  ) {
    this.config = new ConfigPorts(bus);
  }

  alloc(bytes: number, align = 16): number {
    this.heap = (this.heap + align - 1) & ~(align - 1);
    const at = this.heap;
    this.heap += bytes;
    return at;
  }

  /** Sizes the two BARs, places them at fixed addresses and enables memory + bus master. */
  assignBars(): void {
    this.config.write(this.bdf, PCI_BAR0 + 4, 4, Number(RIG_BAR1_ADDRESS));
    this.config.write(this.bdf, PCI_BAR0 + 16, 4, Number(RIG_BAR4_ADDRESS & 0xffffffffn));
    this.config.write(this.bdf, PCI_BAR0 + 20, 4, 0);
    this.config.write(this.bdf, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  }

  read(offset: number, width: 1 | 2 | 4 | 8): bigint {
    return this.bus.mmioRead(RIG_BAR4_ADDRESS + BigInt(offset), width) ?? -1n;
  }
  write(offset: number, width: 1 | 2 | 4 | 8, value: number | bigint): void {
    if (!this.bus.mmioWrite(RIG_BAR4_ADDRESS + BigInt(offset), width, BigInt(value))) throw new Error("write to nothing");
  }
  status(): number {
    return Number(this.read(V.REGION_COMMON + V.COMMON_STATUS, 1));
  }
  setStatus(value: number): void {
    this.write(V.REGION_COMMON + V.COMMON_STATUS, 1, value);
  }

  /** Negotiates `features` and returns the status read back after FEATURES_OK. */
  negotiate(features: bigint = V.VIRTIO_F_VERSION_1): number {
    this.setStatus(0);
    this.setStatus(V.VIRTIO_STATUS_ACKNOWLEDGE);
    this.setStatus(V.VIRTIO_STATUS_ACKNOWLEDGE | V.VIRTIO_STATUS_DRIVER);
    for (const select of [0, 1]) {
      this.write(V.COMMON_GFSELECT, 4, select);
      this.write(V.COMMON_GF, 4, Number((features >> BigInt(32 * select)) & 0xffffffffn));
    }
    this.setStatus(V.VIRTIO_STATUS_ACKNOWLEDGE | V.VIRTIO_STATUS_DRIVER | V.VIRTIO_STATUS_FEATURES_OK);
    return this.status();
  }

  /** Full bring-up: queues of `size`, `rxCount` rx chains of `rxBytes` (split: header then data), 4 event buffers. */
  start(opts: { size?: number; rxCount?: number; rxBytes?: number; rxSplit?: boolean } = {}): void {
    this.assignBars();
    const status = this.negotiate();
    if (!(status & V.VIRTIO_STATUS_FEATURES_OK)) throw new Error("FEATURES_OK refused");
    const size = opts.size ?? 16;
    this.queues = [];
    for (let q = 0; q < 3; q++) {
      this.write(V.COMMON_Q_SELECT, 2, q);
      this.write(V.COMMON_Q_SIZE, 2, size);
      const ring = new DriverQueue(this.memory, q, size, this.alloc(splitRingSizes(size).desc + 4096, 4096));
      this.heap = ring.end;
      this.write(V.COMMON_Q_DESCLO, 4, ring.desc);
      this.write(V.COMMON_Q_DESCHI, 4, 0);
      this.write(V.COMMON_Q_AVAILLO, 8, BigInt(ring.avail));
      this.write(V.COMMON_Q_USEDLO, 4, ring.used);
      this.write(V.COMMON_Q_USEDHI, 4, 0);
      this.write(V.COMMON_Q_MSIX, 2, V.VIRTIO_MSI_NO_VECTOR);
      this.write(V.COMMON_Q_ENABLE, 2, 1);
      this.queues.push(ring);
    }
    for (let i = 0; i < (opts.rxCount ?? 8); i++) this.postRx(opts.rxBytes ?? 4096, opts.rxSplit ?? false);
    for (let i = 0; i < 4; i++) this.queues[2].add([{ addr: this.alloc(4), len: 4, writable: true }]);
    this.guestCid = this.read(V.REGION_DEVICE, 8);
    this.setStatus(this.status() | V.VIRTIO_STATUS_DRIVER_OK);
  }

  postRx(bytes: number, split: boolean): void {
    const parts = split
      ? [{ addr: this.alloc(VSOCK_HEADER_SIZE), len: VSOCK_HEADER_SIZE, writable: true }, { addr: this.alloc(bytes), len: bytes, writable: true }]
      : [{ addr: this.alloc(VSOCK_HEADER_SIZE + bytes), len: VSOCK_HEADER_SIZE + bytes, writable: true }];
    const head = this.queues[0].add(parts);
    this.rxBuffers.set(head, parts);
  }

  notify(queue: number): void {
    this.write(V.REGION_NOTIFY + queue * 4, 2, queue);
  }

  /** Sends one packet (header then payload, two descriptors) and notifies. Buffers are reused once used. */
  send(fields: HeaderFields, payload: Uint8Array = new Uint8Array(0)): void {
    const header = completeHeader(fields, {
      srcCid: this.guestCid, dstCid: 2n, srcPort: 0, dstPort: 0, len: payload.length, type: 1, op: 5, flags: 0, bufAlloc: 65536, fwdCnt: 0,
    });
    if (payload.length > TX_SLOT_BYTES - VSOCK_HEADER_SIZE) throw new Error("payload too large for the test driver");
    this.txArea ||= this.alloc(TX_SLOTS * TX_SLOT_BYTES);
    const h = this.txArea + (this.txNext++ % TX_SLOTS) * TX_SLOT_BYTES;
    this.memory.writeBytes(h, encodeHeader(header));
    const parts = [{ addr: h, len: VSOCK_HEADER_SIZE, writable: false }];
    if (payload.length > 0) {
      this.memory.writeBytes(h + VSOCK_HEADER_SIZE, payload);
      parts.push({ addr: h + VSOCK_HEADER_SIZE, len: payload.length, writable: false });
    }
    this.queues[1].add(parts);
    this.queues[1].takeUsed();
    this.notify(1);
  }

  /** Packets the device wrote into rx buffers since the last call (buffers are reposted, then rx is notified). */
  receive(repost = true): VsockPacket[] {
    const packets: VsockPacket[] = [];
    for (const { id, len } of this.queues[0].takeUsed()) {
      const parts = this.rxBuffers.get(id)!;
      this.rxBuffers.delete(id);
      const bytes = new Uint8Array(len);
      let at = 0;
      for (const p of parts) {
        const n = Math.min(p.len, len - at);
        if (n <= 0) break;
        bytes.set(this.memory.readBytes(p.addr, n), at);
        at += n;
      }
      const header = decodeHeader(bytes);
      packets.push({ header, payload: bytes.slice(VSOCK_HEADER_SIZE) });
      if (repost) this.rxBuffers.set(this.queues[0].add(parts), parts);
    }
    if (repost && packets.length > 0) this.notify(0);
    return packets;
  }
}
