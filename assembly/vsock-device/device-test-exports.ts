// Test hooks: the device layer's packet interface as wasm exports, so the unit tests can drive
// the device layer alone against the simulated machine (the protocol layer is not involved).
// main.ts re-exports this file; everything here is a thin wrapper.
import {
  deviceCounter,
  deviceDropCount,
  deviceGuestCid,
  deviceLogCounters,
  deviceNegotiatedFeatures,
  eventPoll,
  rxHeader,
  rxNext,
  rxPayload,
  rxPayloadLength,
  rxRelease,
  txAcquire,
  txFlush,
  txInFlight,
  txSubmit,
  vsockDeviceInit,
} from "./device";
import { pciScan } from "../pci/scan";
import { logRejections, REJECTION_REASONS, rejectionCount, rejectionKey } from "../diag/rejections";

export { fw_set_rx_layout } from "./device";

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
export function fw_device_rx_next(): bool {
  return rxNext();
}
export function fw_device_rx_header(): usize {
  return rxHeader;
}
export function fw_device_rx_payload(): usize {
  return rxPayload;
}
export function fw_device_rx_payload_length(): u32 {
  return rxPayloadLength;
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
