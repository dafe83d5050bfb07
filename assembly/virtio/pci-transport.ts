// The virtio transport over PCI (virtio 1.2, 4.1): registers in the common configuration
// structure, one notify register per queue, device config in its own structure. Every access
// stays inside the region its capability announced.
import { mmioRead16, mmioRead32, mmioRead8, mmioWrite16, mmioWrite32, mmioWrite8 } from "../platform/imports";
import { logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { countRejection, REJECT_NOTIFY_OUTSIDE_CAP, rejectionCount } from "../diag/rejections";
import { msixDisable, msixErrorName, MSIX_OK, msixRouteEntry0 } from "../pci/msix";
import { PciFunction } from "../pci/scan";
import { VIRTIO_MSI_NO_VECTOR } from "./constants";
import { VirtioPciCapabilities } from "./pci-capabilities";
import { VirtioTransport } from "./transport";

// struct virtio_pci_common_cfg (4.1.4.3).
const COMMON_DEVICE_FEATURE_SELECT: u64 = 0x00;
const COMMON_DEVICE_FEATURE: u64 = 0x04;
const COMMON_DRIVER_FEATURE_SELECT: u64 = 0x08;
const COMMON_DRIVER_FEATURE: u64 = 0x0c;
const COMMON_MSIX_CONFIG: u64 = 0x10;
const COMMON_NUM_QUEUES: u64 = 0x12;
const COMMON_DEVICE_STATUS: u64 = 0x14;
const COMMON_CONFIG_GENERATION: u64 = 0x15;
const COMMON_QUEUE_SELECT: u64 = 0x16;
const COMMON_QUEUE_SIZE: u64 = 0x18;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 0x1a;
const COMMON_QUEUE_ENABLE: u64 = 0x1c;
const COMMON_QUEUE_NOTIFY_OFF: u64 = 0x1e;
const COMMON_QUEUE_DESC: u64 = 0x20;
const COMMON_QUEUE_DRIVER: u64 = 0x28;
const COMMON_QUEUE_DEVICE: u64 = 0x30;

export const MAX_VIRTIO_QUEUES: u32 = 8;
const QUEUE_MSIX_ENTRY: u32 = 0; // every queue shares MSI-X table entry 0

export class PciTransport extends VirtioTransport {
  private common: u64;
  private notifyBase: u64;
  private notifyLength: u32;
  private notifyOffMultiplier: u32;
  private device: u64;
  private deviceLength: u32;
  private notifyAddresses: StaticArray<u64> = new StaticArray<u64>(MAX_VIRTIO_QUEUES);
  private notifyReady: StaticArray<bool> = new StaticArray<bool>(MAX_VIRTIO_QUEUES);
  private queueVector: u32 = VIRTIO_MSI_NO_VECTOR;
  private vectorsRefused: u32 = 0;
  private msixResult: i32 = MSIX_OK;
  // The queue_select the device holds and that queue's maximum size (queue_size before the driver
  // writes it): set-up right after selectQueue writes neither again (two exits a queue).
  private selected: i32 = -1;
  private selectedMaxSize: u32 = 0;

  constructor(caps: VirtioPciCapabilities, private readonly f: PciFunction) {
    super();
    this.common = caps.common.address;
    this.notifyBase = caps.notify.address;
    this.notifyLength = caps.notify.length;
    this.notifyOffMultiplier = caps.notifyOffMultiplier; // 0 is legal: one shared doorbell
    this.device = caps.device.address;
    this.deviceLength = caps.device.length;
  }

  disableConfigInterrupt(): void {
    mmioWrite16(this.common + COMMON_MSIX_CONFIG, VIRTIO_MSI_NO_VECTOR);
  }

  status(): u32 {
    return mmioRead8(this.common + COMMON_DEVICE_STATUS);
  }

  setStatus(status: u32): void {
    if (status == 0) this.selected = -1; // a reset may clear queue_select
    mmioWrite8(this.common + COMMON_DEVICE_STATUS, status & 0xff);
  }

  deviceFeatures(): u64 {
    mmioWrite32(this.common + COMMON_DEVICE_FEATURE_SELECT, 0);
    const low = mmioRead32(this.common + COMMON_DEVICE_FEATURE);
    mmioWrite32(this.common + COMMON_DEVICE_FEATURE_SELECT, 1);
    const high = mmioRead32(this.common + COMMON_DEVICE_FEATURE);
    return (<u64>high << 32) | <u64>low;
  }

  setDriverFeatures(features: u64): void {
    mmioWrite32(this.common + COMMON_DRIVER_FEATURE_SELECT, 0);
    mmioWrite32(this.common + COMMON_DRIVER_FEATURE, <u32>features);
    mmioWrite32(this.common + COMMON_DRIVER_FEATURE_SELECT, 1);
    mmioWrite32(this.common + COMMON_DRIVER_FEATURE, <u32>(features >> 32));
  }

  queueCount(): u32 {
    return mmioRead16(this.common + COMMON_NUM_QUEUES);
  }

  selectQueue(queue: u32): u32 {
    mmioWrite16(this.common + COMMON_QUEUE_SELECT, queue);
    this.selected = <i32>queue;
    this.selectedMaxSize = mmioRead16(this.common + COMMON_QUEUE_SIZE);
    return this.selectedMaxSize;
  }

  setupQueue(queue: u32, size: u32, descriptors: u64, driverArea: u64, deviceArea: u64): bool {
    if (queue >= MAX_VIRTIO_QUEUES) return false;
    const known = this.selected == <i32>queue;
    if (!known) mmioWrite16(this.common + COMMON_QUEUE_SELECT, queue);
    this.selected = -1; // the size written below is no longer the maximum
    // Where this queue's doorbell is: notify base + queue_notify_off * multiplier (4.1.4.4),
    // which must leave room for the 16-bit write inside the notify structure.
    const notifyOffset = <u64>mmioRead16(this.common + COMMON_QUEUE_NOTIFY_OFF) * <u64>this.notifyOffMultiplier;
    if (notifyOffset + 2 > <u64>this.notifyLength) {
      if (logBegin(countRejection(REJECT_NOTIFY_OUTSIDE_CAP), "virtio")) {
        logStr("rejected: queue notify address outside the notify structure");
        logKv("queue", queue);
        logKvHex("offset", notifyOffset);
        logKvHex("length", this.notifyLength);
        logKv("count", rejectionCount(REJECT_NOTIFY_OUTSIDE_CAP));
        logEnd();
      }
      return false;
    }
    unchecked((this.notifyAddresses[queue] = this.notifyBase + notifyOffset));
    unchecked((this.notifyReady[queue] = true));
    // queue_size holds the maximum until the driver writes it (4.1.4.3): the maximum stays as is.
    if (!known || size != this.selectedMaxSize) mmioWrite16(this.common + COMMON_QUEUE_SIZE, size);
    mmioWrite16(this.common + COMMON_QUEUE_MSIX_VECTOR, this.queueVector);
    // The device answers NO_VECTOR when it cannot use the entry (4.1.5.1.3).
    if (this.queueVector != VIRTIO_MSI_NO_VECTOR && mmioRead16(this.common + COMMON_QUEUE_MSIX_VECTOR) != this.queueVector) {
      this.vectorsRefused++;
    }
    // 64-bit fields as two 32-bit halves, low first (4.1.3.1 allows it; every device takes it).
    this.write64(COMMON_QUEUE_DESC, descriptors);
    this.write64(COMMON_QUEUE_DRIVER, driverArea);
    this.write64(COMMON_QUEUE_DEVICE, deviceArea);
    mmioWrite16(this.common + COMMON_QUEUE_ENABLE, 1);
    return true;
  }

  // ---- interrupts: MSI-X entry 0 to the vector, every queue routed to that entry ----
  canInterrupt(): bool {
    return true;
  }

  routeInterrupts(vector: u32): bool {
    this.msixResult = msixRouteEntry0(this.f, vector);
    this.queueVector = this.msixResult == MSIX_OK ? QUEUE_MSIX_ENTRY : VIRTIO_MSI_NO_VECTOR;
    this.vectorsRefused = 0;
    return this.msixResult == MSIX_OK;
  }

  // The device answers NO_VECTOR for a queue whose entry it cannot use (4.1.5.1.3): then MSI-X
  // goes off again and the device is polled.
  confirmInterrupts(): bool {
    if (this.msixResult != MSIX_OK) return false;
    if (this.vectorsRefused == 0) return true;
    msixDisable(this.f);
    return false;
  }

  interruptProblem(): string {
    if (this.msixResult != MSIX_OK) return msixErrorName(this.msixResult);
    return "device refused the queue vector queues_refused=" + this.vectorsRefused.toString();
  }

  interruptRoute(): string {
    return "msix entry=" + QUEUE_MSIX_ENTRY.toString();
  }

  acknowledgeInterrupt(): void {} // MSI-X messages are edges: nothing stays raised

  notify(queue: u32): void {
    if (queue < MAX_VIRTIO_QUEUES && unchecked(this.notifyReady[queue])) {
      mmioWrite16(unchecked(this.notifyAddresses[queue]), queue); // no NOTIFICATION_DATA: the queue index
    }
  }

  configGeneration(): u32 {
    return mmioRead8(this.common + COMMON_CONFIG_GENERATION);
  }

  configLength(): u32 {
    return this.deviceLength;
  }

  readConfig8(offset: u32): u32 {
    if (<u64>offset + 1 > <u64>this.deviceLength) return 0;
    return mmioRead8(this.device + <u64>offset);
  }

  readConfig32(offset: u32): u32 {
    if (<u64>offset + 4 > <u64>this.deviceLength) return 0;
    return mmioRead32(this.device + <u64>offset);
  }

  private write64(register: u64, value: u64): void {
    mmioWrite32(this.common + register, <u32>value);
    mmioWrite32(this.common + register + 4, <u32>(value >> 32));
  }
}
