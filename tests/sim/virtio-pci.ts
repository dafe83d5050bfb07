// A modern virtio PCI function (virtio 1.2 section 4.1) laid out like QEMU 7.2's virtio-pci:
// MSI-X table in BAR1, the four virtio structures in a 64-bit prefetchable BAR4, vendor
// capabilities at the same config offsets QEMU uses. The device type itself (queues, features,
// device config, what a notify does) is a VirtioDeviceModel.
import { GuestMemory } from "../../tools/vsock-model/guest-memory";
import { AccessWidth, PCI_CAP_ID_MSIX, PCI_CAP_ID_VNDR } from "./pci-config";
import { BarHandler, MemoryBackedBar, PciFunction } from "./pci-function";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VirtioDeviceModel, VirtioTransport } from "../../tools/vsock-model/virtio-device";
import {
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FAILED,
  VIRTIO_STATUS_FEATURES_OK,
  VIRTIO_STATUS_NEEDS_RESET,
  writeDeviceStatus,
} from "./device-status";

export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
export const VIRTIO_PCI_MODERN_DEVICE_BASE = 0x1040;

// Vendor capability types.
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;

// Device status bits.
export {
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FAILED,
  VIRTIO_STATUS_FEATURES_OK,
  VIRTIO_STATUS_NEEDS_RESET,
};

export { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 };
export type { VirtioDeviceModel };
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

// Common configuration structure offsets.
export const COMMON_DFSELECT = 0x00;
export const COMMON_DF = 0x04;
export const COMMON_GFSELECT = 0x08;
export const COMMON_GF = 0x0c;
export const COMMON_MSIX = 0x10;
export const COMMON_NUMQ = 0x12;
export const COMMON_STATUS = 0x14;
export const COMMON_CFGGENERATION = 0x15;
export const COMMON_Q_SELECT = 0x16;
export const COMMON_Q_SIZE = 0x18;
export const COMMON_Q_MSIX = 0x1a;
export const COMMON_Q_ENABLE = 0x1c;
export const COMMON_Q_NOFF = 0x1e;
export const COMMON_Q_DESCLO = 0x20;
export const COMMON_Q_DESCHI = 0x24;
export const COMMON_Q_AVAILLO = 0x28;
export const COMMON_Q_AVAILHI = 0x2c;
export const COMMON_Q_USEDLO = 0x30;
export const COMMON_Q_USEDHI = 0x34;

// Where QEMU puts things (BAR4 regions, capability offsets, MSI-X BAR).
export const MODERN_BAR = 4;
export const MSIX_BAR = 1;
export const REGION_COMMON = 0x0000;
export const REGION_ISR = 0x1000;
export const REGION_DEVICE = 0x2000;
export const REGION_NOTIFY = 0x3000;
export const REGION_SIZE = 0x1000;
/** The virtio structure (or MSI-X part) an MMIO access lands in, for exit accounting. */
export type VirtioMmioRegion = "common-cfg" | "isr" | "device-cfg" | "notify" | "msix-table" | "msix-pba" | "other";
const CAP_OFFSETS = { msix: 0x98, pciCfg: 0x84, notify: 0x70, device: 0x60, isr: 0x50, common: 0x40 };

/** One queue's registers as the driver programmed them. */
export interface QueueSetup {
  index: number;
  maxSize: number;
  size: number;
  enabled: boolean;
  msixVector: number;
  notifyOff: number;
  desc: bigint;
  driver: bigint;
  device: bigint;
}

export interface VirtioPciOptions {
  bus?: number;
  device: number;
  fn?: number;
  memory: GuestMemory;
  model: VirtioDeviceModel;
  /** 0 is allowed by the spec (every queue notifies at the same address). */
  notifyOffMultiplier?: number;
  msixVectors?: number;
  classCode?: number;
  /** Test option: never accept FEATURES_OK. */
  refuseFeatures?: boolean;
  onViolation?: (message: string) => void;
}

export class VirtioPciFunction extends PciFunction implements VirtioTransport {
  readonly memory: GuestMemory;
  readonly model: VirtioDeviceModel;
  readonly notifyOffMultiplier: number;
  readonly msixVectors: number;
  refuseFeatures: boolean;
  status = 0;
  configGeneration = 0;
  isr = 0;
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  driverFeatures = 0n;
  msixConfig = VIRTIO_MSI_NO_VECTOR;
  queueSelect = 0;
  queues: QueueSetup[] = [];
  /** Every status value the driver wrote, in order. */
  readonly statusWrites: number[] = [];
  /** Notifications seen per queue index (also before DRIVER_OK). */
  readonly notifyCounts: number[] = [];
  /** Hostile seam: called before each device-config read (a test may change guest_cid in between). */
  beforeDeviceConfigRead: ((offset: number, width: AccessWidth) => void) | null = null;
  private readonly onViolation: (message: string) => void;
  readonly msixTable = new MemoryBackedBar(0x1000);

  constructor(options: VirtioPciOptions) {
    const model = options.model;
    super(options.bus ?? 0, options.device, options.fn ?? 0, {
      vendorId: VIRTIO_PCI_VENDOR_ID,
      deviceId: VIRTIO_PCI_MODERN_DEVICE_BASE + model.deviceType,
      classCode: options.classCode ?? 0x078000,
      revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
      subsystemId: model.deviceType,
      interruptPin: 1,
    });
    this.memory = options.memory;
    this.model = model;
    this.notifyOffMultiplier = options.notifyOffMultiplier ?? 4;
    this.msixVectors = options.msixVectors ?? 3;
    this.refuseFeatures = options.refuseFeatures ?? false;
    this.onViolation = options.onViolation ?? (() => {});
    this.resetQueues();
    const notifyLength = Math.max(REGION_SIZE, this.notifyOffMultiplier * model.numQueues);
    let barSize = REGION_NOTIFY + notifyLength;
    barSize = 2 ** Math.ceil(Math.log2(barSize));
    this.addBar({ index: MSIX_BAR, kind: "mem32", size: 0x1000, handler: this.msixTable });
    this.addBar({ index: MODERN_BAR, kind: "mem64", size: barSize, prefetchable: true, handler: this.modernBar() });
    this.addMsixCapability();
    this.addVirtioCap(CAP_OFFSETS.pciCfg, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 4);
    this.addVirtioCap(CAP_OFFSETS.notify, VIRTIO_PCI_CAP_NOTIFY_CFG, MODERN_BAR, REGION_NOTIFY, notifyLength, 4);
    this.set32(CAP_OFFSETS.notify + 16, this.notifyOffMultiplier);
    this.addVirtioCap(CAP_OFFSETS.device, VIRTIO_PCI_CAP_DEVICE_CFG, MODERN_BAR, REGION_DEVICE, REGION_SIZE);
    this.addVirtioCap(CAP_OFFSETS.isr, VIRTIO_PCI_CAP_ISR_CFG, MODERN_BAR, REGION_ISR, REGION_SIZE);
    this.addVirtioCap(CAP_OFFSETS.common, VIRTIO_PCI_CAP_COMMON_CFG, MODERN_BAR, REGION_COMMON, REGION_SIZE);
    // The PCI_CFG window's bar/offset/length/data fields are driver-writable.
    for (let i = 4; i < 20; i++) if (i !== 5 && i !== 6 && i !== 7) this.writeMask[CAP_OFFSETS.pciCfg + i] = 0xff;
  }

  violation(message: string): void {
    this.onViolation(`virtio-pci: ${message}`);
  }

  private addVirtioCap(at: number, type: number, bar: number, offset: number, length: number, extra = 0): void {
    const body = new Uint8Array(14 + extra);
    const view = new DataView(body.buffer);
    view.setUint8(0, 16 + extra); // cap_len
    view.setUint8(1, type);
    view.setUint8(2, bar);
    view.setUint32(6, offset, true);
    view.setUint32(10, length, true);
    this.addCapability(PCI_CAP_ID_VNDR, body, at);
  }

  private addMsixCapability(): void {
    const body = new Uint8Array(10);
    const view = new DataView(body.buffer);
    view.setUint16(0, this.msixVectors - 1, true); // table size - 1; enable/mask clear
    view.setUint32(2, 0x000 | MSIX_BAR, true); // table at BAR1 + 0
    view.setUint32(6, 0x800 | MSIX_BAR, true); // PBA at BAR1 + 0x800
    const at = this.addCapability(PCI_CAP_ID_MSIX, body, CAP_OFFSETS.msix);
    this.writeMask[at + 3] = 0xc0; // MSI-X enable, function mask
  }

  private resetQueues(): void {
    this.queues = [];
    for (let i = 0; i < this.model.numQueues; i++) {
      const maxSize = this.model.queueSizeMax(i);
      this.queues.push({
        index: i,
        maxSize,
        size: maxSize,
        enabled: false,
        msixVector: VIRTIO_MSI_NO_VECTOR,
        notifyOff: i,
        desc: 0n,
        driver: 0n,
        device: 0n,
      });
      this.notifyCounts[i] ??= 0;
    }
  }

  get driverOk(): boolean {
    return (this.status & VIRTIO_STATUS_DRIVER_OK) !== 0 && (this.status & VIRTIO_STATUS_FAILED) === 0;
  }

  /** Device side: the device config changed (guest_cid); the driver sees a new generation. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.isr |= 2;
  }

  /** Device side: used buffers were added (no interrupts here, but the ISR bit is still kept). */
  usedBuffersAdded(): void {
    this.isr |= 1;
  }

  /** Where an access at `offset` of BAR `bar` lands (counting only; the handlers do the work). */
  mmioRegion(bar: number, offset: number): VirtioMmioRegion {
    if (bar === MSIX_BAR) return offset < 0x800 ? "msix-table" : "msix-pba";
    if (bar !== MODERN_BAR) return "other";
    if (offset < REGION_ISR) return "common-cfg";
    if (offset < REGION_DEVICE) return "isr";
    if (offset < REGION_NOTIFY) return "device-cfg";
    return "notify";
  }

  // ---- BAR4 ----
  private modernBar(): BarHandler {
    return {
      read: (offset, width) => {
        if (offset < REGION_ISR) return this.commonRead(offset, width);
        if (offset < REGION_DEVICE) {
          const value = offset === REGION_ISR ? BigInt(this.isr) : 0n;
          if (offset === REGION_ISR) this.isr = 0; // reading clears
          return value;
        }
        if (offset < REGION_NOTIFY) {
          this.beforeDeviceConfigRead?.(offset - REGION_DEVICE, width);
          return this.model.readConfig(offset - REGION_DEVICE, width) ?? 0n;
        }
        return 0n;
      },
      write: (offset, width, value) => {
        if (offset < REGION_ISR) this.commonWrite(offset, width, value);
        else if (offset >= REGION_NOTIFY) this.notifyWrite(offset - REGION_NOTIFY, width, value);
        else if (offset >= REGION_DEVICE) this.violation(`write to read-only device config at 0x${(offset - REGION_DEVICE).toString(16)}`);
      },
    };
  }

  private selectedQueue(): QueueSetup | undefined {
    return this.queues[this.queueSelect];
  }

  /** Field widths of the common structure; 64-bit fields may be accessed as two 32-bit halves. */
  private static readonly FIELD_WIDTH: Record<number, number> = {
    [COMMON_DFSELECT]: 4, [COMMON_DF]: 4, [COMMON_GFSELECT]: 4, [COMMON_GF]: 4, [COMMON_MSIX]: 2, [COMMON_NUMQ]: 2,
    [COMMON_STATUS]: 1, [COMMON_CFGGENERATION]: 1, [COMMON_Q_SELECT]: 2, [COMMON_Q_SIZE]: 2, [COMMON_Q_MSIX]: 2,
    [COMMON_Q_ENABLE]: 2, [COMMON_Q_NOFF]: 2, [COMMON_Q_DESCLO]: 8, [COMMON_Q_AVAILLO]: 8, [COMMON_Q_USEDLO]: 8,
  };

  /** Splits an access into field accesses; a width that matches no field is a driver bug. */
  private checkWidth(offset: number, width: number): boolean {
    const field = VirtioPciFunction.FIELD_WIDTH[offset];
    if (field === width) return true;
    const base = offset & ~7;
    if (width === 4 && VirtioPciFunction.FIELD_WIDTH[base] === 8 && base >= COMMON_Q_DESCLO) return true;
    this.violation(`common config access of ${width} bytes at 0x${offset.toString(16)}`);
    return false;
  }

  commonRead(offset: number, width: AccessWidth): bigint {
    if (!this.checkWidth(offset, width)) return 0n;
    const q = this.selectedQueue();
    const deviceFeatures = this.model.deviceFeatures();
    const qAddress = (v: bigint | undefined) => {
      const value = v ?? 0n;
      if (width === 8) return value;
      return offset & 4 ? value >> 32n : value & 0xffffffffn;
    };
    switch (offset) {
      case COMMON_DFSELECT: return BigInt(this.deviceFeatureSelect);
      case COMMON_DF: return this.deviceFeatureSelect < 2 ? (deviceFeatures >> BigInt(32 * this.deviceFeatureSelect)) & 0xffffffffn : 0n;
      case COMMON_GFSELECT: return BigInt(this.driverFeatureSelect);
      case COMMON_GF: return this.driverFeatureSelect < 2 ? (this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & 0xffffffffn : 0n;
      case COMMON_MSIX: return BigInt(this.msixConfig);
      case COMMON_NUMQ: return BigInt(this.model.numQueues);
      case COMMON_STATUS: return BigInt(this.status);
      case COMMON_CFGGENERATION: return BigInt(this.configGeneration);
      case COMMON_Q_SELECT: return BigInt(this.queueSelect);
      case COMMON_Q_SIZE: return BigInt(q ? q.size : 0);
      case COMMON_Q_MSIX: return BigInt(q ? q.msixVector : VIRTIO_MSI_NO_VECTOR);
      case COMMON_Q_ENABLE: return q?.enabled ? 1n : 0n;
      case COMMON_Q_NOFF: return BigInt(q ? q.notifyOff : 0);
      case COMMON_Q_DESCLO: case COMMON_Q_DESCHI: return qAddress(q?.desc);
      case COMMON_Q_AVAILLO: case COMMON_Q_AVAILHI: return qAddress(q?.driver);
      case COMMON_Q_USEDLO: case COMMON_Q_USEDHI: return qAddress(q?.device);
    }
    return 0n;
  }

  commonWrite(offset: number, width: AccessWidth, value: bigint): void {
    if (!this.checkWidth(offset, width)) return;
    const v = Number(value & 0xffffffffn);
    const q = this.selectedQueue();
    const setAddress = (old: bigint): bigint => {
      if (width === 8) return value;
      return offset & 4 ? (old & 0xffffffffn) | (BigInt(v) << 32n) : (old & ~0xffffffffn) | BigInt(v);
    };
    const queueField = (name: string): QueueSetup | undefined => {
      if (!q) return undefined; // writes to a queue that does not exist are ignored
      if (q.enabled) this.violation(`queue ${q.index}: ${name} written after queue_enable`);
      return q;
    };
    switch (offset) {
      case COMMON_DFSELECT: this.deviceFeatureSelect = v; return;
      case COMMON_GFSELECT: this.driverFeatureSelect = v; return;
      case COMMON_GF: {
        if (this.status & VIRTIO_STATUS_FEATURES_OK) {
          this.violation("driver features written after FEATURES_OK");
          return;
        }
        if (this.driverFeatureSelect >= 2) return;
        const shift = BigInt(32 * this.driverFeatureSelect);
        this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v) << shift);
        return;
      }
      case COMMON_MSIX: this.msixConfig = v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR; return;
      case COMMON_STATUS: writeDeviceStatus(this, v & 0xff); return;
      case COMMON_Q_SELECT: this.queueSelect = v; return;
      case COMMON_Q_SIZE: {
        const target = queueField("queue_size");
        if (!target) return;
        if (v === 0 || v & (v - 1) || v > target.maxSize) {
          this.violation(`queue ${target.index}: invalid queue_size ${v} (max ${target.maxSize}, power of two)`);
          return;
        }
        target.size = v;
        return;
      }
      case COMMON_Q_MSIX: if (q) q.msixVector = v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR; return;
      case COMMON_Q_ENABLE: {
        if (!q) return;
        if (v !== 1) this.violation(`queue ${q.index}: queue_enable written with ${v}`);
        else q.enabled = true;
        return;
      }
      case COMMON_Q_DESCLO: case COMMON_Q_DESCHI: { const t = queueField("queue_desc"); if (t) t.desc = setAddress(t.desc); return; }
      case COMMON_Q_AVAILLO: case COMMON_Q_AVAILHI: { const t = queueField("queue_driver"); if (t) t.driver = setAddress(t.driver); return; }
      case COMMON_Q_USEDLO: case COMMON_Q_USEDHI: { const t = queueField("queue_device"); if (t) t.device = setAddress(t.device); return; }
    }
    this.violation(`write to read-only common config field at 0x${offset.toString(16)}`);
  }

  /** Device reset: everything the driver set goes back to its initial value. */
  reset(): void {
    this.status = 0;
    this.isr = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.msixConfig = VIRTIO_MSI_NO_VECTOR;
    this.queueSelect = 0;
    this.resetQueues();
    this.model.reset();
  }

  private notifyWrite(offset: number, width: AccessWidth, value: bigint): void {
    const written = Number(value & 0xffffn);
    let queue = written;
    if (this.notifyOffMultiplier !== 0) {
      if (offset % this.notifyOffMultiplier !== 0) this.violation(`notify at unaligned offset 0x${offset.toString(16)}`);
      const notifyOff = Math.floor(offset / this.notifyOffMultiplier);
      const target = this.queues.find((q) => q.notifyOff === notifyOff);
      if (!target) {
        this.violation(`notify at offset 0x${offset.toString(16)} matches no queue`);
        return;
      }
      if (written !== target.index) this.violation(`notify for queue ${target.index} carried value ${written}`);
      queue = target.index;
    }
    if (width !== 2) this.violation(`notify written with ${width} bytes`);
    if (queue >= this.model.numQueues) {
      this.violation(`notify for queue ${queue} that does not exist`);
      return;
    }
    this.notifyCounts[queue]++;
    if (this.driverOk) this.model.notify(queue);
  }

  // ---- PCI_CFG capability: a window into BAR4 through config space ----
  private pciCfgAccess(write: boolean, value: number): number {
    const cap = CAP_OFFSETS.pciCfg;
    const bar = this.config[cap + 4];
    const offset = this.get32(cap + 8);
    const length = this.get32(cap + 12);
    if (bar !== MODERN_BAR || (length !== 1 && length !== 2 && length !== 4) || offset % length !== 0) return 0;
    const handler = this.bars[MODERN_BAR]!.handler;
    if (write) {
      handler.write(offset, length as AccessWidth, BigInt(value >>> 0) & ((1n << BigInt(8 * length)) - 1n));
      return 0;
    }
    return Number(handler.read(offset, length as AccessWidth));
  }

  override readConfig(offset: number, width: 1 | 2 | 4): number {
    const data = CAP_OFFSETS.pciCfg + 16;
    if (offset >= data && offset < data + 4) this.set32(data, this.pciCfgAccess(false, 0));
    return super.readConfig(offset, width);
  }

  override writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    super.writeConfig(offset, width, value);
    const data = CAP_OFFSETS.pciCfg + 16;
    if (offset >= data && offset < data + 4) this.pciCfgAccess(true, this.get32(data));
  }
}
