// The transport as a device driver sees it (virtio 1.2 section 4): status, features, queue
// set-up, notifications and device config, with nothing about how they are reached. The PCI
// implementation lives in pci-transport.ts; a device driver (vsock-device/device.ts) uses only this.
export abstract class VirtioTransport {
  abstract status(): u32;
  abstract setStatus(status: u32): void;
  abstract deviceFeatures(): u64;
  abstract setDriverFeatures(features: u64): void;
  // Routes configuration-change interrupts nowhere (we poll).
  abstract disableConfigInterrupt(): void;
  abstract queueCount(): u32;
  // Selects `queue` for the queue calls below; returns its maximum size (0: queue unavailable).
  abstract selectQueue(queue: u32): u32;
  // Gives the selected queue its size and ring addresses (DMA addresses), routes it to the MSI-X
  // entry chosen by routeQueueInterrupts (none by default), and enables it. False when the queue
  // cannot be notified.
  abstract setupQueue(queue: u32, size: u32, descriptors: u64, driverArea: u64, deviceArea: u64): bool;
  // Queues set up from now on interrupt through MSI-X table entry `entry` (VIRTIO_MSI_NO_VECTOR:
  // not at all). The device may refuse: see refusedQueueVectors.
  abstract routeQueueInterrupts(entry: u32): void;
  // How many queues answered NO_VECTOR when given an entry since routeQueueInterrupts.
  abstract refusedQueueVectors(): u32;
  abstract notify(queue: u32): void;
  abstract configGeneration(): u32;
  abstract configLength(): u32;
  // Device-specific config reads; offsets beyond configLength() read as 0.
  abstract readConfig8(offset: u32): u32;
  abstract readConfig32(offset: u32): u32;
}
