// A virtio-mmio device, version 2 (virtio 1.2 section 4.2), laid out like QEMU 7.2's virtio-mmio
// on microvm: a 512-byte register window, device config from 0x100, an interrupt line that stays
// raised while InterruptStatus is not 0. The device type itself is a VirtioDeviceModel (the same
// vsock model the PCI function and the vhost-user backend run). `lies` lets a test make any
// register read say something else: the hostile device.
import { GuestMemory } from "../../tools/vsock-model/guest-memory";
import { AccessWidth, VirtioDeviceModel, VirtioTransport } from "../../tools/vsock-model/virtio-device";
import { QueueSetup, VIRTIO_MSI_NO_VECTOR } from "./virtio-pci";
import { VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_FAILED, VIRTIO_STATUS_FEATURES_OK, writeDeviceStatus } from "./device-status";

export const MMIO_MAGIC_VALUE = 0x000;
export const MMIO_VERSION = 0x004;
export const MMIO_DEVICE_ID = 0x008;
export const MMIO_VENDOR_ID = 0x00c;
export const MMIO_DEVICE_FEATURES = 0x010;
export const MMIO_DEVICE_FEATURES_SEL = 0x014;
export const MMIO_DRIVER_FEATURES = 0x020;
export const MMIO_DRIVER_FEATURES_SEL = 0x024;
export const MMIO_QUEUE_SEL = 0x030;
export const MMIO_QUEUE_NUM_MAX = 0x034;
export const MMIO_QUEUE_NUM = 0x038;
export const MMIO_QUEUE_READY = 0x044;
export const MMIO_QUEUE_NOTIFY = 0x050;
export const MMIO_INTERRUPT_STATUS = 0x060;
export const MMIO_INTERRUPT_ACK = 0x064;
export const MMIO_STATUS = 0x070;
export const MMIO_QUEUE_DESC_LOW = 0x080;
export const MMIO_QUEUE_DESC_HIGH = 0x084;
export const MMIO_QUEUE_DRIVER_LOW = 0x090;
export const MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const MMIO_CONFIG_GENERATION = 0x0fc;
export const MMIO_CONFIG = 0x100;
export const VIRTIO_MMIO_MAGIC = 0x74726976;
export const MICROVM_MMIO_BASE = 0xfeb00e00n; // QEMU microvm's eighth transport, where its first device goes
export const MICROVM_MMIO_IRQ = 12;
export const MMIO_WINDOW = 0x200;

export interface VirtioMmioOptions {
  base?: bigint;
  size?: number;
  memory: GuestMemory;
  model: VirtioDeviceModel;
  version?: number; // 2 (modern) unless a test wants a legacy device
  refuseFeatures?: boolean;
  onViolation?: (message: string) => void;
}

export class VirtioMmioDevice implements VirtioTransport {
  readonly base: bigint;
  readonly size: number;
  readonly memory: GuestMemory;
  readonly model: VirtioDeviceModel;
  readonly version: number;
  refuseFeatures: boolean;
  status = 0;
  configGeneration = 0;
  interruptStatus = 0;
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  driverFeatures = 0n;
  queueSelect = 0;
  queues: QueueSetup[] = [];
  readonly statusWrites: number[] = [];
  readonly notifyCounts: number[] = [];
  /** Rising edges of the interrupt line (InterruptStatus going from 0 to not 0). */
  edges = 0;
  acks = 0;
  /** Hostile seam: a register read answers lies[offset](truth) instead of the truth. */
  readonly lies = new Map<number, (truth: number) => number>();
  private readonly onViolation: (message: string) => void;

  constructor(options: VirtioMmioOptions) {
    this.base = options.base ?? MICROVM_MMIO_BASE;
    this.size = options.size ?? MMIO_WINDOW;
    this.memory = options.memory;
    this.model = options.model;
    this.version = options.version ?? 2;
    this.refuseFeatures = options.refuseFeatures ?? false;
    this.onViolation = options.onViolation ?? (() => {});
    this.resetQueues();
  }

  violation(message: string): void {
    this.onViolation(`virtio-mmio: ${message}`);
  }

  contains(address: bigint, width: number): boolean {
    return address >= this.base && address + BigInt(width) <= this.base + BigInt(this.size);
  }

  get driverOk(): boolean {
    return (this.status & VIRTIO_STATUS_DRIVER_OK) !== 0 && (this.status & VIRTIO_STATUS_FAILED) === 0;
  }

  // ---- VirtioTransport (the model's side) ----
  usedBuffersAdded(): void {
    this.raise(1);
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.raise(2);
  }

  /** Hostile seam: InterruptStatus bits set (and the line raised) with nothing new on the rings. */
  raiseInterrupt(bits: number): void {
    this.raise(bits >>> 0);
  }

  private raise(bit: number): void {
    if (this.interruptStatus === 0) this.edges++;
    this.interruptStatus |= bit;
  }

  // ---- the register window ----
  read(offset: number, width: AccessWidth): bigint {
    if (offset >= MMIO_CONFIG) {
      return this.model.readConfig(offset - MMIO_CONFIG, width) ?? 0n;
    }
    if (width !== 4) {
      this.violation(`register read of ${width} bytes at 0x${offset.toString(16)}`);
      return 0n;
    }
    const truth = this.registerRead(offset);
    const lie = this.lies.get(offset);
    return BigInt((lie ? lie(truth) : truth) >>> 0);
  }

  private registerRead(offset: number): number {
    const q = this.queues[this.queueSelect];
    const features = this.model.deviceFeatures();
    switch (offset) {
      case MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
      case MMIO_VERSION: return this.version;
      case MMIO_DEVICE_ID: return this.model.deviceType;
      case MMIO_VENDOR_ID: return 0x554d4551; // "QEMU"
      case MMIO_DEVICE_FEATURES: return this.deviceFeatureSelect < 2 ? Number((features >> BigInt(32 * this.deviceFeatureSelect)) & 0xffffffffn) : 0;
      case MMIO_QUEUE_NUM_MAX: return q ? q.maxSize : 0;
      case MMIO_QUEUE_READY: return q?.enabled ? 1 : 0;
      case MMIO_INTERRUPT_STATUS: return this.interruptStatus;
      case MMIO_STATUS: return this.status;
      case MMIO_CONFIG_GENERATION: return this.configGeneration;
    }
    this.violation(`read of write-only or unknown register 0x${offset.toString(16)}`);
    return 0;
  }

  write(offset: number, width: AccessWidth, value: bigint): void {
    if (offset >= MMIO_CONFIG) {
      this.violation(`write to device config at 0x${(offset - MMIO_CONFIG).toString(16)}`);
      return;
    }
    if (width !== 4) {
      this.violation(`register write of ${width} bytes at 0x${offset.toString(16)}`);
      return;
    }
    const v = Number(value & 0xffffffffn);
    const q = this.queues[this.queueSelect];
    const queueField = (name: string): QueueSetup | undefined => {
      if (!q) return undefined;
      if (q.enabled) this.violation(`queue ${q.index}: ${name} written while QueueReady`);
      return q;
    };
    const low = (old: bigint) => (old & ~0xffffffffn) | BigInt(v);
    const high = (old: bigint) => (old & 0xffffffffn) | (BigInt(v) << 32n);
    switch (offset) {
      case MMIO_DEVICE_FEATURES_SEL: this.deviceFeatureSelect = v; return;
      case MMIO_DRIVER_FEATURES_SEL: this.driverFeatureSelect = v; return;
      case MMIO_DRIVER_FEATURES: {
        if (this.status & VIRTIO_STATUS_FEATURES_OK) return this.violation("driver features written after FEATURES_OK");
        if (this.driverFeatureSelect >= 2) return;
        const shift = BigInt(32 * this.driverFeatureSelect);
        this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v) << shift);
        return;
      }
      case MMIO_QUEUE_SEL: this.queueSelect = v; return;
      case MMIO_QUEUE_NUM: {
        const t = queueField("QueueNum");
        if (!t) return;
        if (v === 0 || v & (v - 1) || v > t.maxSize) return this.violation(`queue ${t.index}: invalid QueueNum ${v} (max ${t.maxSize})`);
        t.size = v;
        return;
      }
      case MMIO_QUEUE_READY: {
        if (!q) return;
        if (v === 1) {
          if (q.desc === 0n || q.driver === 0n || q.device === 0n) this.violation(`queue ${q.index}: ready without ring addresses`);
          q.enabled = true;
        } else q.enabled = false;
        return;
      }
      case MMIO_QUEUE_NOTIFY: {
        if (v >= this.model.numQueues) return this.violation(`notify for queue ${v} that does not exist`);
        this.notifyCounts[v]++;
        if (this.driverOk) this.model.notify(v);
        return;
      }
      case MMIO_INTERRUPT_ACK:
        // Only the two bits virtio-mmio defines (4.2.2): a driver that acknowledges what a lying
        // InterruptStatus said, unmasked, writes bits that mean nothing.
        if (v & ~3) this.violation(`InterruptACK with undefined bits 0x${v.toString(16)}`);
        this.acks++;
        this.interruptStatus &= ~v;
        return;
      case MMIO_STATUS: return writeDeviceStatus(this, v & 0xff);
      case MMIO_QUEUE_DESC_LOW: { const t = queueField("QueueDesc"); if (t) t.desc = low(t.desc); return; }
      case MMIO_QUEUE_DESC_HIGH: { const t = queueField("QueueDesc"); if (t) t.desc = high(t.desc); return; }
      case MMIO_QUEUE_DRIVER_LOW: { const t = queueField("QueueDriver"); if (t) t.driver = low(t.driver); return; }
      case MMIO_QUEUE_DRIVER_HIGH: { const t = queueField("QueueDriver"); if (t) t.driver = high(t.driver); return; }
      case MMIO_QUEUE_DEVICE_LOW: { const t = queueField("QueueDevice"); if (t) t.device = low(t.device); return; }
      case MMIO_QUEUE_DEVICE_HIGH: { const t = queueField("QueueDevice"); if (t) t.device = high(t.device); return; }
    }
    this.violation(`write to read-only or unknown register 0x${offset.toString(16)}`);
  }

  reset(): void {
    this.status = 0;
    this.interruptStatus = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.queueSelect = 0;
    this.resetQueues();
    this.model.reset();
  }

  private resetQueues(): void {
    this.queues = [];
    for (let i = 0; i < this.model.numQueues; i++) {
      const maxSize = this.model.queueSizeMax(i);
      this.queues.push({ index: i, maxSize, size: maxSize, enabled: false, msixVector: VIRTIO_MSI_NO_VECTOR, notifyOff: 0, desc: 0n, driver: 0n, device: 0n });
      this.notifyCounts[i] ??= 0;
    }
  }
}
