// The transport as a device driver sees it (virtio 1.2 section 4): status, features, queue
// set-up, notifications, device config and the interrupt that wakes the idle halt, with nothing
// about how they are reached. PCI (pci-transport.ts) and MMIO (mmio-transport.ts) implement it;
// a device driver (vsock-device/device.ts) uses only this, so it cannot tell them apart.
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
  // Gives the selected queue its size and ring addresses (DMA addresses), routes it to the
  // interrupt chosen by routeInterrupts (none by default), and enables it. False when the queue
  // cannot be set up (its doorbell lies outside the device, or the device says it is live already).
  abstract setupQueue(queue: u32, size: u32, descriptors: u64, driverArea: u64, deviceArea: u64): bool;
  abstract notify(queue: u32): void;
  abstract configGeneration(): u32;
  abstract configLength(): u32;
  // Device-specific config reads; offsets beyond configLength() read as 0.
  abstract readConfig8(offset: u32): u32;
  abstract readConfig32(offset: u32): u32;

  // ---- the interrupt that ends an idle halt (virtio/interrupts.ts) ----
  // False: this transport has no way to interrupt (the driver polls, silently).
  abstract canInterrupt(): bool;
  // Before the queues are set up: queues set up from now on interrupt at CPU vector `vector`.
  // False when that cannot be arranged (interruptProblem() says why).
  abstract routeInterrupts(vector: u32): bool;
  // After the queues are set up: whether every queue took the route. When not, the transport
  // takes the route down again and interruptProblem() says why.
  abstract confirmInterrupts(): bool;
  abstract interruptProblem(): string;
  // The route for the log ("msix entry=0", "ioapic gsi=12").
  abstract interruptRoute(): string;
  // Before an idle halt: clears what the device has raised, so that its next used buffer raises
  // the interrupt again (virtio-mmio's line; nothing for MSI-X, whose messages are edges).
  abstract acknowledgeInterrupt(): void;
}
