// The virtio transport over MMIO (virtio 1.2, 4.2; version 2, the modern layout): one register
// window per device, 32-bit registers, device config from offset 0x100. Its interrupt is a wire
// (a GSI of the I/O APIC) that stays raised until the driver acknowledges InterruptStatus.
import { mmioRead32, mmioRead8, mmioWrite32 } from "../platform/imports";
import { ioapicMask, ioapicRouteEdge } from "../platform/ioapic";
import { logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { countRejection, REJECT_MMIO_REGISTER_INVALID, rejectionCount } from "../diag/rejections";
import { VirtioTransport } from "./transport";

// Registers (4.2.2), offsets in the window.
export const MMIO_MAGIC_VALUE: u64 = 0x000;
export const MMIO_VERSION: u64 = 0x004;
export const MMIO_DEVICE_ID: u64 = 0x008;
const MMIO_DEVICE_FEATURES: u64 = 0x010;
const MMIO_DEVICE_FEATURES_SEL: u64 = 0x014;
const MMIO_DRIVER_FEATURES: u64 = 0x020;
const MMIO_DRIVER_FEATURES_SEL: u64 = 0x024;
const MMIO_QUEUE_SEL: u64 = 0x030;
const MMIO_QUEUE_NUM_MAX: u64 = 0x034;
const MMIO_QUEUE_NUM: u64 = 0x038;
const MMIO_QUEUE_READY: u64 = 0x044;
const MMIO_QUEUE_NOTIFY: u64 = 0x050;
const MMIO_INTERRUPT_STATUS: u64 = 0x060;
const MMIO_INTERRUPT_ACK: u64 = 0x064;
const MMIO_STATUS: u64 = 0x070;
const MMIO_QUEUE_DESC_LOW: u64 = 0x080;
const MMIO_QUEUE_DRIVER_LOW: u64 = 0x090;
const MMIO_QUEUE_DEVICE_LOW: u64 = 0x0a0;
const MMIO_CONFIG_GENERATION: u64 = 0x0fc;
export const MMIO_CONFIG: u64 = 0x100;

export const VIRTIO_MMIO_MAGIC: u32 = 0x74726976; // "virt", little-endian
export const VIRTIO_MMIO_VERSION_MODERN: u32 = 2;
const INTERRUPT_USED_BUFFER: u32 = 1 << 0;
const INTERRUPT_CONFIG_CHANGE: u32 = 1 << 1;
export const MMIO_NO_IRQ: u32 = 0xffffffff;
const MAX_QUEUES: u32 = 8; // more than any device type we drive

export class MmioTransport extends VirtioTransport {
  private routed: bool = false;
  private selected: i32 = -1; // the QueueSel the device holds (-1: not known)

  // `base` and `size`: the register window (checked by mmio-probe.ts); `irq`: its I/O APIC line,
  // or MMIO_NO_IRQ when nobody named one (then the device is polled).
  constructor(readonly base: u64, readonly size: u64, readonly irq: u32) {
    super();
  }

  status(): u32 {
    return mmioRead32(this.base + MMIO_STATUS) & 0xff;
  }

  setStatus(status: u32): void {
    if (status == 0) this.selected = -1; // a reset may clear QueueSel
    mmioWrite32(this.base + MMIO_STATUS, status & 0xff);
  }

  deviceFeatures(): u64 {
    mmioWrite32(this.base + MMIO_DEVICE_FEATURES_SEL, 0);
    const low = mmioRead32(this.base + MMIO_DEVICE_FEATURES);
    mmioWrite32(this.base + MMIO_DEVICE_FEATURES_SEL, 1);
    const high = mmioRead32(this.base + MMIO_DEVICE_FEATURES);
    return (<u64>high << 32) | <u64>low;
  }

  setDriverFeatures(features: u64): void {
    mmioWrite32(this.base + MMIO_DRIVER_FEATURES_SEL, 0);
    mmioWrite32(this.base + MMIO_DRIVER_FEATURES, <u32>features);
    mmioWrite32(this.base + MMIO_DRIVER_FEATURES_SEL, 1);
    mmioWrite32(this.base + MMIO_DRIVER_FEATURES, <u32>(features >> 32));
  }

  // virtio-mmio has no config-interrupt routing: a config change only sets a bit of
  // InterruptStatus, which acknowledgeInterrupt clears with the rest.
  disableConfigInterrupt(): void {}

  // No register says how many queues there are, and counting them costs two exits a queue: the
  // limit is reported, and a queue past the device's end answers QueueNumMax 0 when it is set up
  // (the driver then gives up with "queue unavailable", as for a PCI queue of size 0).
  queueCount(): u32 {
    return MAX_QUEUES;
  }

  selectQueue(queue: u32): u32 {
    mmioWrite32(this.base + MMIO_QUEUE_SEL, queue);
    this.selected = <i32>queue;
    return mmioRead32(this.base + MMIO_QUEUE_NUM_MAX);
  }

  setupQueue(queue: u32, size: u32, descriptors: u64, driverArea: u64, deviceArea: u64): bool {
    // Right after selectQueue (the device driver's order) QueueSel already holds it: one exit less.
    if (this.selected != <i32>queue) mmioWrite32(this.base + MMIO_QUEUE_SEL, queue);
    this.selected = -1;
    // 4.2.3.2: a queue must not be in use before the driver sets it up; after a reset none is.
    // A device that says otherwise would read rings we have not written yet.
    const ready = mmioRead32(this.base + MMIO_QUEUE_READY);
    if (ready != 0) {
      if (logBegin(countRejection(REJECT_MMIO_REGISTER_INVALID), "virtio")) {
        logStr("rejected: virtio-mmio queue already ready before set-up");
        logKvHex("base", this.base);
        logKv("queue", queue);
        logKvHex("queue_ready", ready);
        logKv("count", rejectionCount(REJECT_MMIO_REGISTER_INVALID));
        logEnd();
      }
      return false;
    }
    mmioWrite32(this.base + MMIO_QUEUE_NUM, size);
    this.write64(MMIO_QUEUE_DESC_LOW, descriptors);
    this.write64(MMIO_QUEUE_DRIVER_LOW, driverArea);
    this.write64(MMIO_QUEUE_DEVICE_LOW, deviceArea);
    mmioWrite32(this.base + MMIO_QUEUE_READY, 1);
    return true;
  }

  notify(queue: u32): void {
    mmioWrite32(this.base + MMIO_QUEUE_NOTIFY, queue); // no NOTIFICATION_DATA: the queue index
  }

  configGeneration(): u32 {
    return mmioRead32(this.base + MMIO_CONFIG_GENERATION);
  }

  configLength(): u32 {
    return this.size > MMIO_CONFIG ? <u32>(this.size - MMIO_CONFIG) : 0;
  }

  readConfig8(offset: u32): u32 {
    if (<u64>offset + 1 > <u64>this.configLength()) return 0;
    return mmioRead8(this.base + MMIO_CONFIG + <u64>offset);
  }

  readConfig32(offset: u32): u32 {
    if (<u64>offset + 4 > <u64>this.configLength()) return 0;
    return mmioRead32(this.base + MMIO_CONFIG + <u64>offset);
  }

  // ---- interrupts: the device's line through the I/O APIC ----
  canInterrupt(): bool {
    return this.irq != MMIO_NO_IRQ;
  }

  routeInterrupts(vector: u32): bool {
    this.routed = ioapicRouteEdge(this.irq, vector);
    return this.routed;
  }

  // Every queue of the device shares the one line: nothing per queue to confirm.
  confirmInterrupts(): bool {
    if (!this.routed) ioapicMask(this.irq);
    return this.routed;
  }

  interruptProblem(): string {
    return "no I/O APIC line gsi=" + this.irq.toString();
  }

  interruptRoute(): string {
    return "ioapic gsi=" + this.irq.toString();
  }

  // Only the bits the device set: writing others is meaningless, and a bit set after the read
  // stays for the next halt (the caller looks at the rings after this, so nothing is missed).
  acknowledgeInterrupt(): void {
    const pending = mmioRead32(this.base + MMIO_INTERRUPT_STATUS) & (INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE);
    if (pending != 0) mmioWrite32(this.base + MMIO_INTERRUPT_ACK, pending);
  }

  private write64(register: u64, value: u64): void {
    mmioWrite32(this.base + register, <u32>value);
    mmioWrite32(this.base + register + 4, <u32>(value >> 32));
  }
}
