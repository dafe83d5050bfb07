// What a virtio device model and its transport see of each other, independent of the transport:
// the simulator's virtio-pci function and the vhost-user backend both drive the same device.
import { GuestMemory } from "./guest-memory";

export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;

/** Width of a register access in bytes. */
export type AccessWidth = 1 | 2 | 4 | 8;

/** Queue addresses as a transport hands them over (guest physical). */
export interface QueueAddresses {
  index: number;
  size: number;
  enabled: boolean;
  desc: bigint;
  driver: bigint;
  device: bigint;
  /** vhost-user: where the rings resume (SET_VRING_BASE; used idx as found in guest memory). */
  lastAvailIdx?: number;
  usedIdx?: number;
  /** VIRTIO_F_EVENT_IDX negotiated (used_event / avail_event instead of the flags). */
  eventIdx?: boolean;
}

/** The transport as a device model uses it once the driver set DRIVER_OK. */
export interface VirtioTransport {
  readonly memory: GuestMemory;
  readonly status: number;
  readonly driverFeatures: bigint;
  readonly queues: readonly QueueAddresses[];
  /** The device put buffers on a used ring: interrupt the driver if it wants one. */
  usedBuffersAdded(): void;
  /** Device config changed: raise the config interrupt. */
  configChanged(): void;
}

/** What a device type provides to the transport. */
export interface VirtioDeviceModel {
  readonly deviceType: number;
  readonly numQueues: number;
  queueSizeMax(index: number): number;
  deviceFeatures(): bigint;
  /** Device-specific config (offset relative to the DEVICE structure); undefined: outside it. */
  readConfig(offset: number, width: AccessWidth): bigint | undefined;
  /** DRIVER_OK: the device starts using the queues. */
  start(transport: VirtioTransport): void;
  /** Status 0 (or FAILED): drop all queue state. */
  reset(): void;
  notify(queueIndex: number): void;
}
