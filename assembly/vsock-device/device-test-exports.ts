// Test hooks: the device layer's packet interface as wasm exports, so the unit tests can drive
// the device layer alone against the simulated machine (the protocol layer is not involved).
// Only the unit build's second entry (assembly/test-hooks.ts) re-exports this file, so none of it
// reaches the image; everything here is a thin wrapper.
import {
  deviceCounter,
  deviceDropCount,
  deviceGuestCid,
  deviceLogCounters,
  deviceNegotiatedFeatures,
  deviceSetRxLayout,
  eventPoll,
  rxNext,
  RxPacket,
  rxRelease,
  txAcquire,
  txFlush,
  txInFlight,
  txSubmit,
  vsockDeviceInit,
  vsockDeviceStart,
} from "./device";
import { MemoryTransport } from "../virtio/memory-transport";
import { pciScan } from "../pci/scan";
import { logRejections, REJECTION_REASONS, rejectionCount, rejectionKey } from "../diag/rejections";

// The device's counter and drop numbers, and its buffer sizes, as wasm globals: the tests read them
// from here rather than keeping copies.
export {
  COUNTER_EVENT_NOTIFIES,
  COUNTER_RX_NOTIFIES,
  COUNTER_RX_PACKETS,
  COUNTER_RX_REFILLS,
  COUNTER_RX_USED_EXTRA_BYTES,
  COUNTER_TRANSPORT_RESETS,
  COUNTER_TX_NOTIFIES,
  COUNTER_TX_NOTIFIES_SUPPRESSED,
  COUNTER_TX_PACKETS,
} from "./device";
export {
  DROP_EVENT_SHORT,
  DROP_EVENT_UNKNOWN,
  DROP_RX_LEN_MISMATCH,
  DROP_RX_SHORT,
  DROP_RX_USED_EXTRA,
  DROP_RX_USED_TOO_LONG,
  DROP_TX_INVALID,
} from "./drops";
export { RX_BUFFER_COUNT_MAX, RX_BUFFER_DATA_SIZE } from "./rx";
export { TX_BUFFER_COUNT_MAX } from "./tx";

export function fw_set_rx_layout(split: bool): void {
  deviceSetRxLayout(split);
}

// Scans the bus (as fw_init does first) and brings the device up, without the protocol layer.
export function fw_device_init(): bool {
  pciScan();
  return vsockDeviceInit();
}
export function fw_device_guest_cid(): u64 {
  return deviceGuestCid();
}
export function fw_device_features(): u64 {
  return deviceNegotiatedFeatures();
}
// The packet the last fw_device_rx_next took (its fields read 0 once released).
let rxTaken: RxPacket | null = null;
export function fw_device_rx_next(): bool {
  const packet = rxNext();
  if (packet != null) rxTaken = packet;
  return packet != null;
}
export function fw_device_rx_header(): usize {
  const packet = rxTaken;
  return packet != null ? packet.header : 0;
}
export function fw_device_rx_payload(): usize {
  const packet = rxTaken;
  return packet != null ? packet.payload : 0;
}
export function fw_device_rx_payload_length(): u32 {
  const packet = rxTaken;
  return packet != null ? packet.payloadLength : 0;
}
export function fw_device_rx_release(): void {
  rxRelease();
}
export function fw_device_tx_acquire(): usize {
  return txAcquire();
}
export function fw_device_tx_submit(buffer: usize, payloadLength: u32): void {
  txSubmit(buffer, payloadLength);
}
export function fw_device_tx_flush(): void {
  txFlush();
}
export function fw_device_tx_in_flight(): i32 {
  return txInFlight();
}
export function fw_device_event_poll(): bool {
  return eventPoll();
}
export function fw_device_counter(name: i32): u64 {
  return deviceCounter(name);
}
export function fw_device_drop_count(kind: i32): u64 {
  return deviceDropCount(kind);
}
export function fw_device_log_counters(): void {
  deviceLogCounters();
}

// The rejection registry (rejections.ts): reasons are numbered 0..fw_rejection_reasons()-1 and
// named by fw_rejection_key (an AssemblyScript string), so tests look them up by name.
export function fw_rejection_reasons(): i32 {
  return REJECTION_REASONS;
}
export function fw_rejection_key(reason: i32): string {
  return rejectionKey(reason);
}
export function fw_rejection_count(reason: i32): u64 {
  return rejectionCount(reason);
}
export function fw_log_rejections(): void {
  logRejections();
}

// The device alone on a MemoryTransport (no PCI bus, no interrupts): the test plays the device on
// the rings in memory. guest_cid `cid`, every queue `queueMax` entries at most.
let fake: MemoryTransport | null = null;

export function fw_fake_device_start(cid: u64, queueMax: u32): bool {
  const t = new MemoryTransport(0, queueMax);
  fake = t;
  fw_fake_set_cid(cid);
  return vsockDeviceStart(t);
}
// A new guest_cid in the config (config_generation moves), as before a TRANSPORT_RESET event.
export function fw_fake_set_cid(cid: u64): void {
  const t = fake!;
  t.generation++;
  t.config[0] = <u32>cid;
  t.config[1] = <u32>(cid >> 32);
}
export function fw_fake_status(): u32 {
  return fake!.deviceStatus;
}
export function fw_fake_queue_size(queue: u32): u32 {
  return fake!.sizes[queue];
}
// DMA addresses of queue `queue`'s descriptor table (0), driver area (1) and device area (2).
export function fw_fake_queue_area(queue: u32, part: i32): u64 {
  const t = fake!;
  return part == 0 ? t.descriptors[queue] : part == 1 ? t.driverAreas[queue] : t.deviceAreas[queue];
}
export function fw_fake_notifies(queue: u32): u32 {
  return fake!.notifies[queue];
}
