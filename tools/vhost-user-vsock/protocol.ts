// The vhost-user wire format (QEMU docs/interop/vhost-user.rst): a 12-byte little-endian header
// (request, flags, payload size) then the payload; file descriptors travel as SCM_RIGHTS.
// Only what QEMU 7.2 uses for vhost-user-vsock-pci is decoded.

export const HEADER_SIZE = 12;
export const VERSION = 0x1;
export const FLAG_VERSION_MASK = 0x3;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;
/** Larger payloads are refused (the biggest QEMU sends here is SET_MEM_TABLE: 8 + 8 * 32 bytes). */
export const MAX_PAYLOAD = 4096;
export const MAX_MEMORY_REGIONS = 8;

export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
} as const;

export const REQUEST_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Request).map(([name, value]) => [value, name]));

export function requestName(request: number): string {
  return REQUEST_NAMES[request] ?? `REQUEST_${request}`;
}

// Virtio feature bits offered to QEMU: VERSION_1, EVENT_IDX (as the kernel's vhost-vsock; the
// device model honours used_event and avail_event) and vhost-user's PROTOCOL_FEATURES.
export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
export const VHOST_USER_F_PROTOCOL_FEATURES = 1n << 30n;
// Protocol features: MQ (GET_QUEUE_NUM), REPLY_ACK (need_reply), CONFIG (GET_CONFIG; QEMU insists).
export const PROTOCOL_F_MQ = 1n << 0n;
export const PROTOCOL_F_REPLY_ACK = 1n << 3n;
export const PROTOCOL_F_CONFIG = 1n << 9n;

/** SET_VRING_KICK/CALL/ERR payload: queue index in bits 0-7, bit 8 = no fd sent (polling). */
export const VRING_INDEX_MASK = 0xffn;
export const VRING_NOFD_MASK = 0x100n;

export interface MessageHeader {
  request: number;
  flags: number;
  size: number;
}

export interface Message extends MessageHeader {
  payload: Uint8Array;
  fds: number[];
}

export function decodeHeader(bytes: Uint8Array): MessageHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return { request: v.getUint32(0, true), flags: v.getUint32(4, true), size: v.getUint32(8, true) };
}

export function encodeMessage(request: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, payload.length, true);
  bytes.set(payload, HEADER_SIZE);
  return bytes;
}

/** Thrown for a payload too short for its request: the session logs it and drops the connection. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

function view(payload: Uint8Array, need: number, what: string): DataView {
  if (payload.length < need) throw new ProtocolError(`${what}: payload of ${payload.length} bytes, need ${need}`);
  return new DataView(payload.buffer, payload.byteOffset, payload.length);
}

export function u64Payload(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return bytes;
}

export function decodeU64(payload: Uint8Array, what: string): bigint {
  return view(payload, 8, what).getBigUint64(0, true);
}

/** struct vhost_vring_state: SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE. */
export interface VringState {
  index: number;
  num: number;
}

export function decodeVringState(payload: Uint8Array, what: string): VringState {
  const v = view(payload, 8, what);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

export function encodeVringState(state: VringState): Uint8Array {
  const bytes = new Uint8Array(8);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, state.index, true);
  v.setUint32(4, state.num, true);
  return bytes;
}

/** struct vhost_vring_addr: ring addresses in QEMU's virtual address space. */
export interface VringAddress {
  index: number;
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}

export function decodeVringAddress(payload: Uint8Array): VringAddress {
  const v = view(payload, 40, "SET_VRING_ADDR");
  return {
    index: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    desc: v.getBigUint64(8, true),
    used: v.getBigUint64(16, true),
    avail: v.getBigUint64(24, true),
    log: v.getBigUint64(32, true),
  };
}

export function encodeVringAddress(a: VringAddress): Uint8Array {
  const bytes = new Uint8Array(40);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(4, a.flags, true);
  v.setBigUint64(8, a.desc, true);
  v.setBigUint64(16, a.used, true);
  v.setBigUint64(24, a.avail, true);
  v.setBigUint64(32, a.log, true);
  return bytes;
}

/** One VhostUserMemoryRegion of SET_MEM_TABLE. */
export interface MemoryRegionDescription {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
}

export function decodeMemoryTable(payload: Uint8Array): MemoryRegionDescription[] {
  const v = view(payload, 8, "SET_MEM_TABLE");
  const count = v.getUint32(0, true);
  if (count > MAX_MEMORY_REGIONS) throw new ProtocolError(`SET_MEM_TABLE: ${count} regions (at most ${MAX_MEMORY_REGIONS})`);
  view(payload, 8 + 32 * count, "SET_MEM_TABLE");
  const regions: MemoryRegionDescription[] = [];
  for (let i = 0; i < count; i++) {
    const at = 8 + 32 * i;
    regions.push({
      guestPhysAddr: v.getBigUint64(at, true),
      memorySize: v.getBigUint64(at + 8, true),
      userspaceAddr: v.getBigUint64(at + 16, true),
      mmapOffset: v.getBigUint64(at + 24, true),
    });
  }
  return regions;
}

export function encodeMemoryTable(regions: MemoryRegionDescription[]): Uint8Array {
  const bytes = new Uint8Array(8 + 32 * regions.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const at = 8 + 32 * i;
    v.setBigUint64(at, r.guestPhysAddr, true);
    v.setBigUint64(at + 8, r.memorySize, true);
    v.setBigUint64(at + 16, r.userspaceAddr, true);
    v.setBigUint64(at + 24, r.mmapOffset, true);
  });
  return bytes;
}

/** VhostUserConfig: offset, size, flags, then `size` bytes of device config. */
export interface ConfigAccess {
  offset: number;
  size: number;
  flags: number;
  data: Uint8Array;
}

export const CONFIG_HEADER_SIZE = 12;

export function decodeConfig(payload: Uint8Array): ConfigAccess {
  const v = view(payload, CONFIG_HEADER_SIZE, "GET_CONFIG");
  const size = v.getUint32(4, true);
  if (size > MAX_PAYLOAD) throw new ProtocolError(`config access of ${size} bytes`);
  return { offset: v.getUint32(0, true), size, flags: v.getUint32(8, true), data: payload.slice(CONFIG_HEADER_SIZE, CONFIG_HEADER_SIZE + size) };
}

export function encodeConfig(c: ConfigAccess): Uint8Array {
  const bytes = new Uint8Array(CONFIG_HEADER_SIZE + c.size);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, c.offset, true);
  v.setUint32(4, c.size, true);
  v.setUint32(8, c.flags, true);
  bytes.set(c.data.subarray(0, c.size), CONFIG_HEADER_SIZE);
  return bytes;
}
