// The virtio-vsock packet header (virtio 1.2 section 5.10.6): 44 little-endian bytes.
export const VSOCK_HEADER_SIZE = 44;
export const VIRTIO_VSOCK_MAX_PKT_BUF_SIZE = 64 * 1024;
export const VSOCK_HOST_CID = 2n;
export const VIRTIO_ID_VSOCK = 19;

export const VIRTIO_VSOCK_F_STREAM = 1n << 0n;
export const VIRTIO_VSOCK_F_SEQPACKET = 1n << 1n;
export const VIRTIO_VSOCK_F_NO_IMPLIED_STREAM = 1n << 2n;

export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_TYPE_SEQPACKET = 2;

export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;

export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
export const VIRTIO_VSOCK_SEQ_EOM = 1;
export const VIRTIO_VSOCK_SEQ_EOR = 2;

export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;
export const VIRTIO_VSOCK_EVENT_SIZE = 4;

export const OP_NAMES: Record<number, string> = {
  0: "INVALID", 1: "REQUEST", 2: "RESPONSE", 3: "RST", 4: "SHUTDOWN", 5: "RW", 6: "CREDIT_UPDATE", 7: "CREDIT_REQUEST",
};

export interface VsockHeader {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

/** Header fields a test may give when injecting; cids may be plain numbers. */
export type HeaderFields = Partial<Omit<VsockHeader, "srcCid" | "dstCid">> & { srcCid?: bigint | number; dstCid?: bigint | number };

export function encodeHeader(h: VsockHeader): Uint8Array {
  const bytes = new Uint8Array(VSOCK_HEADER_SIZE);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, h.srcCid), true);
  v.setBigUint64(8, BigInt.asUintN(64, h.dstCid), true);
  v.setUint32(16, h.srcPort >>> 0, true);
  v.setUint32(20, h.dstPort >>> 0, true);
  v.setUint32(24, h.len >>> 0, true);
  v.setUint16(28, h.type & 0xffff, true);
  v.setUint16(30, h.op & 0xffff, true);
  v.setUint32(32, h.flags >>> 0, true);
  v.setUint32(36, h.bufAlloc >>> 0, true);
  v.setUint32(40, h.fwdCnt >>> 0, true);
  return bytes;
}

export function decodeHeader(bytes: Uint8Array): VsockHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, VSOCK_HEADER_SIZE);
  return {
    srcCid: v.getBigUint64(0, true),
    dstCid: v.getBigUint64(8, true),
    srcPort: v.getUint32(16, true),
    dstPort: v.getUint32(20, true),
    len: v.getUint32(24, true),
    type: v.getUint16(28, true),
    op: v.getUint16(30, true),
    flags: v.getUint32(32, true),
    bufAlloc: v.getUint32(36, true),
    fwdCnt: v.getUint32(40, true),
  };
}

export function completeHeader(fields: HeaderFields, defaults: VsockHeader): VsockHeader {
  const h = { ...defaults, ...fields } as VsockHeader;
  h.srcCid = BigInt(h.srcCid);
  h.dstCid = BigInt(h.dstCid);
  return h;
}

/** One line for logs and assertion messages. */
export function describeHeader(h: VsockHeader): string {
  return (
    `${OP_NAMES[h.op] ?? `op${h.op}`} ${h.srcCid}:${h.srcPort} -> ${h.dstCid}:${h.dstPort} len=${h.len} type=${h.type}` +
    ` flags=${h.flags} buf_alloc=${h.bufAlloc} fwd_cnt=${h.fwdCnt}`
  );
}

/** A packet as the sim logs it. */
export interface VsockPacket {
  header: VsockHeader;
  payload: Uint8Array;
}
