// Shared set-up for the device-layer tests (tests/unit/device-*.test.ts): a simulated machine
// whose wasm exports the device layer's test hooks (assembly/vsock/device-test-exports.ts,
// re-exported by assembly/main.ts), and helpers to read packets and write tx headers.
import assert from "node:assert/strict";
import { Machine, MachineOptions } from "../sim/machine";
import { decodeHeader, encodeHeader, VsockHeader, VSOCK_HEADER_SIZE } from "../../tools/vsock-model/vsock-packet";

export const WASM_PATH = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";

// Names from assembly/vsock/device.ts (COUNTER_*, DROP_*).
export const COUNTER_RX_PACKETS = 0;
export const COUNTER_TX_PACKETS = 1;
export const COUNTER_TRANSPORT_RESETS = 2;
export const COUNTER_RX_NOTIFIES = 3;
export const COUNTER_TX_NOTIFIES = 4;
export const COUNTER_EVENT_NOTIFIES = 5;
export const COUNTER_TX_NOTIFIES_SUPPRESSED = 6;
export const DROP_RX_SHORT = 0;
export const DROP_RX_LEN_MISMATCH = 1;
export const DROP_RX_USED_TOO_LONG = 2;
export const DROP_EVENT_SHORT = 3;
export const DROP_EVENT_UNKNOWN = 4;
export const DROP_TX_INVALID = 5;

export const TX_BUFFER_COUNT_MAX = 32;
export const RX_BUFFER_DATA_SIZE = 16384;
export const RX_BUFFER_COUNT_MAX = 64;

export interface DeviceMachineOptions extends MachineOptions {
  splitRx?: boolean;
}

/** A machine with the device layer's hooks; the device is not brought up yet. */
export async function deviceMachine(options: DeviceMachineOptions = {}): Promise<Machine> {
  const m = await Machine.create({ wasmPath: WASM_PATH, ...options });
  assert.equal(
    typeof m.exports.fw_device_init,
    "function",
    `${WASM_PATH} lacks the device test hooks: main.ts must re-export ./vsock/device-test-exports`,
  );
  m.exports.fw_set_rx_layout(options.splitRx ? 1 : 0);
  return m;
}

/** A machine with the device brought up (asserts it came up). */
export async function deviceUp(options: DeviceMachineOptions = {}): Promise<Machine> {
  const m = await deviceMachine(options);
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  return m;
}

export function counter(m: Machine, name: number): number {
  return Number(m.exports.fw_device_counter(name));
}

export function drops(m: Machine, kind: number): number {
  return Number(m.exports.fw_device_drop_count(kind));
}

export interface RxPacket {
  header: VsockHeader;
  payload: Uint8Array;
  headerPointer: number;
  payloadPointer: number;
}

/** The next rx packet through rxNext(), released before returning; null when none. */
export function rxTake(m: Machine, release = true): RxPacket | null {
  if (!m.exports.fw_device_rx_next()) return null;
  const headerPointer = m.exports.fw_device_rx_header() >>> 0;
  const payloadPointer = m.exports.fw_device_rx_payload() >>> 0;
  const length = m.exports.fw_device_rx_payload_length() >>> 0;
  const packet = {
    header: decodeHeader(m.read(headerPointer, VSOCK_HEADER_SIZE)),
    payload: m.read(payloadPointer, length),
    headerPointer,
    payloadPointer,
  };
  if (release) m.exports.fw_device_rx_release();
  return packet;
}

/** Fills an acquired tx buffer with a packet from the guest to the host (header + payload). */
export function writeTxPacket(m: Machine, buffer: number, fields: Partial<VsockHeader>, payload = new Uint8Array(0)): void {
  const header: VsockHeader = {
    srcCid: m.device!.guestCid,
    dstCid: 2n,
    srcPort: 5000,
    dstPort: 6000,
    len: payload.length,
    type: 1,
    op: 5,
    flags: 0,
    bufAlloc: 65536,
    fwdCnt: 0,
    ...fields,
  };
  m.write(buffer, encodeHeader(header));
  m.write(buffer + VSOCK_HEADER_SIZE, payload);
}

/** Bytes 0..n-1 of a recognisable pattern. */
export function pattern(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
