// The last packets sent and received, raw headers as they were on the ring, so a crash report
// can show what the device and the stack were doing just before (firmware/crash-report.c reads
// the ring straight from linear memory, without calling back into wasm).
import { clockNs } from "../platform/imports";
import { VSOCK_HEADER_SIZE } from "../vsock/packet";
import {
  CR_HISTORY_ADDRESS,
  CR_HISTORY_CAPACITY,
  CR_HISTORY_ENTRY_SIZE,
  CR_HISTORY_TOTAL,
  crashRecord,
} from "./crash-record";

export const HISTORY_CAPACITY: u32 = 32; // a power of two
export const HISTORY_ENTRY_SIZE: u32 = 64;
// Entry fields (byte offsets).
export const HE_TIME_NS: usize = 0; // u64
export const HE_DIRECTION: usize = 8; // u32
export const HE_SEQUENCE: usize = 12; // u32: low 32 bits of the packet's number since boot
export const HE_HEADER: usize = 16; // 44 bytes: the virtio-vsock header

export const DIRECTION_RX: u32 = 1;
export const DIRECTION_TX: u32 = 2;

const history: usize = memory.data(<i32>(HISTORY_CAPACITY * HISTORY_ENTRY_SIZE), 16);

export function packetHistoryInit(): void {
  store<u32>(crashRecord + CR_HISTORY_ADDRESS, <u32>history);
  store<u32>(crashRecord + CR_HISTORY_CAPACITY, HISTORY_CAPACITY);
  store<u32>(crashRecord + CR_HISTORY_ENTRY_SIZE, HISTORY_ENTRY_SIZE);
}

// A few stores per packet; the header is copied as it was, before any validation.
export function recordPacket(direction: u32, header: usize): void {
  const sequence = load<u64>(crashRecord + CR_HISTORY_TOTAL);
  const entry = history + <usize>((<u32>sequence & (HISTORY_CAPACITY - 1)) * HISTORY_ENTRY_SIZE);
  store<u64>(entry + HE_TIME_NS, clockNs());
  store<u32>(entry + HE_DIRECTION, direction);
  store<u32>(entry + HE_SEQUENCE, <u32>sequence);
  memory.copy(entry + HE_HEADER, header, <usize>VSOCK_HEADER_SIZE);
  store<u64>(crashRecord + CR_HISTORY_TOTAL, sequence + 1);
}
