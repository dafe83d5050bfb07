// The virtio-vsock packet header (virtio 1.2, "Socket Device"): 44 little-endian bytes.
// wasm is little-endian, so plain loads and stores give the wire format.

export const VSOCK_HEADER_SIZE: u32 = 44;
export const VIRTIO_VSOCK_MAX_PKT_BUF_SIZE: u32 = 65536; // payload cap per packet (vhost drops larger)

// Field offsets.
export const HDR_SRC_CID: usize = 0; // u64
export const HDR_DST_CID: usize = 8; // u64
export const HDR_SRC_PORT: usize = 16; // u32
export const HDR_DST_PORT: usize = 20; // u32
export const HDR_LEN: usize = 24; // u32
export const HDR_TYPE: usize = 28; // u16
export const HDR_OP: usize = 30; // u16
export const HDR_FLAGS: usize = 32; // u32
export const HDR_BUF_ALLOC: usize = 36; // u32
export const HDR_FWD_CNT: usize = 40; // u32

export const VIRTIO_VSOCK_TYPE_STREAM: u32 = 1;
export const VIRTIO_VSOCK_TYPE_SEQPACKET: u32 = 2;

export const VIRTIO_VSOCK_OP_INVALID: u32 = 0;
export const VIRTIO_VSOCK_OP_REQUEST: u32 = 1;
export const VIRTIO_VSOCK_OP_RESPONSE: u32 = 2;
export const VIRTIO_VSOCK_OP_RST: u32 = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN: u32 = 4;
export const VIRTIO_VSOCK_OP_RW: u32 = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE: u32 = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST: u32 = 7;

// SHUTDOWN flags on the wire.
export const VIRTIO_VSOCK_SHUTDOWN_RCV: u32 = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND: u32 = 2;
export const VIRTIO_VSOCK_SHUTDOWN_MASK: u32 = 3;

// SEQPACKET RW flags: the packet ends a message (EOM), and that message ends a record (EOR, MSG_EOR).
export const VIRTIO_VSOCK_SEQ_EOM: u32 = 1;
export const VIRTIO_VSOCK_SEQ_EOR: u32 = 2;

export const VMADDR_CID_HOST: u64 = 2;
export const VMADDR_CID_ANY: u32 = 0xffffffff;
export const VMADDR_PORT_ANY: u32 = 0xffffffff;

// @ts-ignore: decorator
@inline export function headerSrcCid(h: usize): u64 { return load<u64>(h + HDR_SRC_CID); }
// @ts-ignore: decorator
@inline export function headerDstCid(h: usize): u64 { return load<u64>(h + HDR_DST_CID); }
// @ts-ignore: decorator
@inline export function headerSrcPort(h: usize): u32 { return load<u32>(h + HDR_SRC_PORT); }
// @ts-ignore: decorator
@inline export function headerDstPort(h: usize): u32 { return load<u32>(h + HDR_DST_PORT); }
// @ts-ignore: decorator
@inline export function headerLen(h: usize): u32 { return load<u32>(h + HDR_LEN); }
// @ts-ignore: decorator
@inline export function headerType(h: usize): u32 { return <u32>load<u16>(h + HDR_TYPE); }
// @ts-ignore: decorator
@inline export function headerOp(h: usize): u32 { return <u32>load<u16>(h + HDR_OP); }
// @ts-ignore: decorator
@inline export function headerFlags(h: usize): u32 { return load<u32>(h + HDR_FLAGS); }
// @ts-ignore: decorator
@inline export function headerBufAlloc(h: usize): u32 { return load<u32>(h + HDR_BUF_ALLOC); }
// @ts-ignore: decorator
@inline export function headerFwdCnt(h: usize): u32 { return load<u32>(h + HDR_FWD_CNT); }

// Writes a complete header (a STREAM one unless `type` says otherwise).
export function writeHeader(
  h: usize,
  srcCid: u64,
  srcPort: u32,
  dstCid: u64,
  dstPort: u32,
  op: u32,
  flags: u32,
  len: u32,
  bufAlloc: u32,
  fwdCnt: u32,
  type: u32 = VIRTIO_VSOCK_TYPE_STREAM,
): void {
  store<u64>(h + HDR_SRC_CID, srcCid);
  store<u64>(h + HDR_DST_CID, dstCid);
  store<u32>(h + HDR_SRC_PORT, srcPort);
  store<u32>(h + HDR_DST_PORT, dstPort);
  store<u32>(h + HDR_LEN, len);
  store<u16>(h + HDR_TYPE, <u16>type);
  store<u16>(h + HDR_OP, <u16>op);
  store<u32>(h + HDR_FLAGS, flags);
  store<u32>(h + HDR_BUF_ALLOC, bufAlloc);
  store<u32>(h + HDR_FWD_CNT, fwdCnt);
}

export function opName(op: u32): string {
  switch (op) {
    case VIRTIO_VSOCK_OP_REQUEST: return "REQUEST";
    case VIRTIO_VSOCK_OP_RESPONSE: return "RESPONSE";
    case VIRTIO_VSOCK_OP_RST: return "RST";
    case VIRTIO_VSOCK_OP_SHUTDOWN: return "SHUTDOWN";
    case VIRTIO_VSOCK_OP_RW: return "RW";
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE: return "CREDIT_UPDATE";
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST: return "CREDIT_REQUEST";
  }
  return "UNKNOWN";
}
