// Shared set-up for the device-layer tests (tests/unit/device-*.test.ts): a simulated machine
// whose wasm exports the device layer's test hooks (assembly/vsock-device/device-test-exports.ts,
// re-exported by the unit build's entry assembly/test-hooks.ts), and helpers to read packets and write tx headers.
import assert from "node:assert/strict";
import { Machine, MachineOptions } from "../sim/machine";
import { decodeHeader, encodeHeader, VsockHeader, VSOCK_HEADER_SIZE } from "../../tools/vsock-model/vsock-packet";

export const WASM_PATH = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";

// The device layer's counters and drop kinds by name: their numbers are the unit wasm's exported
// globals of the same names (assembly/vsock-device/device.ts through the unit-only entry), so they
// are defined once, in the firmware.
export const COUNTER_RX_PACKETS = "COUNTER_RX_PACKETS";
export const COUNTER_TX_PACKETS = "COUNTER_TX_PACKETS";
export const COUNTER_TRANSPORT_RESETS = "COUNTER_TRANSPORT_RESETS";
export const COUNTER_RX_NOTIFIES = "COUNTER_RX_NOTIFIES";
export const COUNTER_TX_NOTIFIES = "COUNTER_TX_NOTIFIES";
export const COUNTER_EVENT_NOTIFIES = "COUNTER_EVENT_NOTIFIES";
export const COUNTER_TX_NOTIFIES_SUPPRESSED = "COUNTER_TX_NOTIFIES_SUPPRESSED";
export const COUNTER_RX_REFILLS = "COUNTER_RX_REFILLS";
export const COUNTER_RX_USED_EXTRA_BYTES = "COUNTER_RX_USED_EXTRA_BYTES";
export const DROP_RX_SHORT = "DROP_RX_SHORT";
export const DROP_RX_LEN_MISMATCH = "DROP_RX_LEN_MISMATCH";
export const DROP_RX_USED_TOO_LONG = "DROP_RX_USED_TOO_LONG";
export const DROP_EVENT_SHORT = "DROP_EVENT_SHORT";
export const DROP_EVENT_UNKNOWN = "DROP_EVENT_UNKNOWN";
export const DROP_TX_INVALID = "DROP_TX_INVALID";
export const DROP_RX_USED_EXTRA = "DROP_RX_USED_EXTRA";

// Buffer sizes the tests count against (device.ts; not part of the device's counters).
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
    `${WASM_PATH} lacks the device test hooks: the unit build's entry assembly/test-hooks.ts re-exports them`,
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

/** The number of a device constant (COUNTER_*, DROP_*): the unit wasm's exported global of that name. */
export function deviceConstant(m: Machine, name: string): number {
  const global = m.exports[name];
  assert.ok(global instanceof WebAssembly.Global, `${WASM_PATH} exports no global ${name}`);
  return Number(global.value);
}

export function counter(m: Machine, name: string): number {
  return Number(m.exports.fw_device_counter(deviceConstant(m, name)));
}

export function drops(m: Machine, kind: string): number {
  return Number(m.exports.fw_device_drop_count(deviceConstant(m, kind)));
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
