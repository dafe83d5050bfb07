// A VirtioTransport over plain variables, for the unit build only (test-hooks.ts compiles it in;
// the image never does): a device driver can be brought up and driven without a PCI bus, while a
// test plays the device on the rings in memory. It accepts whatever the driver writes, offers
// VERSION_1 plus `features`, and has a small device config (`config32` words) and notify counts.
import { VIRTIO_F_VERSION_1, VIRTIO_STATUS_FEATURES_OK } from "./constants";
import { VirtioTransport } from "./transport";

const QUEUES: u32 = 3;
const CONFIG_WORDS: u32 = 4;

export class MemoryTransport extends VirtioTransport {
  deviceStatus: u32 = 0;
  offered: u64;
  driverFeatures: u64 = 0;
  acceptFeatures: bool = true;
  queueMax: u32;
  selected: u32 = 0;
  generation: u32 = 0;
  readonly config: StaticArray<u32> = new StaticArray<u32>(CONFIG_WORDS);
  // Per queue: size, then the DMA addresses of the descriptor table, driver and device areas.
  readonly sizes: StaticArray<u32> = new StaticArray<u32>(QUEUES);
  readonly descriptors: StaticArray<u64> = new StaticArray<u64>(QUEUES);
  readonly driverAreas: StaticArray<u64> = new StaticArray<u64>(QUEUES);
  readonly deviceAreas: StaticArray<u64> = new StaticArray<u64>(QUEUES);
  readonly notifies: StaticArray<u32> = new StaticArray<u32>(QUEUES);

  constructor(features: u64, queueMax: u32) {
    super();
    this.offered = features | VIRTIO_F_VERSION_1;
    this.queueMax = queueMax;
  }

  status(): u32 {
    return this.deviceStatus;
  }
  setStatus(status: u32): void {
    if (!this.acceptFeatures) status &= ~VIRTIO_STATUS_FEATURES_OK;
    this.deviceStatus = status;
  }
  deviceFeatures(): u64 {
    return this.offered;
  }
  setDriverFeatures(features: u64): void {
    this.driverFeatures = features;
  }
  disableConfigInterrupt(): void {}
  queueCount(): u32 {
    return QUEUES;
  }
  selectQueue(queue: u32): u32 {
    this.selected = queue;
    return queue < QUEUES ? this.queueMax : 0;
  }
  setupQueue(queue: u32, size: u32, descriptors: u64, driverArea: u64, deviceArea: u64): bool {
    if (queue >= QUEUES) return false;
    this.sizes[queue] = size;
    this.descriptors[queue] = descriptors;
    this.driverAreas[queue] = driverArea;
    this.deviceAreas[queue] = deviceArea;
    return true;
  }
  // No interrupts: the driver polls.
  canInterrupt(): bool {
    return false;
  }
  routeInterrupts(vector: u32): bool {
    return false;
  }
  confirmInterrupts(): bool {
    return false;
  }
  interruptProblem(): string {
    return "memory transport";
  }
  interruptRoute(): string {
    return "none";
  }
  acknowledgeInterrupt(): void {}
  notify(queue: u32): void {
    if (queue < QUEUES) this.notifies[queue]++;
  }
  configGeneration(): u32 {
    return this.generation;
  }
  configLength(): u32 {
    return CONFIG_WORDS * 4;
  }
  readConfig8(offset: u32): u32 {
    return offset < CONFIG_WORDS * 4 ? (this.config[offset >> 2] >> ((offset & 3) * 8)) & 0xff : 0;
  }
  readConfig32(offset: u32): u32 {
    return offset + 4 <= CONFIG_WORDS * 4 && (offset & 3) == 0 ? this.config[offset >> 2] : 0;
  }
}
