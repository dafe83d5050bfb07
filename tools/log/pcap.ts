// Writes traced packets as a classic pcap file with link type LINKTYPE_VSOCK (271): each record is
// what Linux's vsockmon device captures, so Wireshark's vsock dissector and tshark decode it:
//   struct af_vsockmon_hdr (32 bytes, little-endian): src_cid u64, dst_cid u64, src_port u32,
//     dst_port u32, op u16 (af_vsockmon_op), transport u16 (2 = virtio), len u16 (transport header
//     length: 44), reserved[2]
//   struct virtio_vsock_hdr (44 bytes), then the payload bytes the trace kept.
// A record's captured length is what the trace kept; its original length counts the whole payload.
import { encodeHeader, VSOCK_HEADER_SIZE } from "../vsock-model/vsock-packet.ts";
import type { TracePacket } from "./trace.ts";

export const LINKTYPE_VSOCK = 271;
export const VSOCKMON_HEADER_SIZE = 32;
export const VIRTIO_VSOCK_HEADER_SIZE = VSOCK_HEADER_SIZE;
const AF_VSOCK_TRANSPORT_VIRTIO = 2;
const SNAPLEN = 262144;

export const AF_VSOCK_OP_UNKNOWN = 0;
export const AF_VSOCK_OP_CONNECT = 1;
export const AF_VSOCK_OP_DISCONNECT = 2;
export const AF_VSOCK_OP_CONTROL = 3;
export const AF_VSOCK_OP_PAYLOAD = 4;

/** The vsockmon op for a virtio op, as the kernel's capture tap maps it. */
export function vsockmonOp(virtioOp: number): number {
  switch (virtioOp) {
    case 1: case 2: return AF_VSOCK_OP_CONNECT; // REQUEST, RESPONSE
    case 3: case 4: return AF_VSOCK_OP_DISCONNECT; // RST, SHUTDOWN
    case 5: return AF_VSOCK_OP_PAYLOAD; // RW
    case 6: case 7: return AF_VSOCK_OP_CONTROL; // CREDIT_UPDATE, CREDIT_REQUEST
    default: return AF_VSOCK_OP_UNKNOWN;
  }
}

function record(p: TracePacket): Buffer {
  const headers = VSOCKMON_HEADER_SIZE + VIRTIO_VSOCK_HEADER_SIZE;
  const out = Buffer.alloc(16 + headers + p.data.length);
  out.writeUInt32LE(Math.floor(p.micros / 1_000_000), 0);
  out.writeUInt32LE(p.micros % 1_000_000, 4);
  out.writeUInt32LE(headers + p.data.length, 8);
  out.writeUInt32LE(headers + p.len, 12);
  let o = 16;
  out.writeBigUInt64LE(p.srcCid, o);
  out.writeBigUInt64LE(p.dstCid, o + 8);
  out.writeUInt32LE(p.srcPort, o + 16);
  out.writeUInt32LE(p.dstPort, o + 20);
  out.writeUInt16LE(vsockmonOp(p.op), o + 24);
  out.writeUInt16LE(AF_VSOCK_TRANSPORT_VIRTIO, o + 26);
  out.writeUInt16LE(VIRTIO_VSOCK_HEADER_SIZE, o + 28);
  o += VSOCKMON_HEADER_SIZE;
  out.set(encodeHeader(p), o); // struct virtio_vsock_hdr, laid out by the device model's codec
  out.set(p.data, o + VIRTIO_VSOCK_HEADER_SIZE);
  return out;
}

export function pcapFile(packets: TracePacket[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0); // microsecond timestamps
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeInt32LE(0, 8); // thiszone
  header.writeUInt32LE(0, 12); // sigfigs
  header.writeUInt32LE(SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPE_VSOCK, 20);
  return Buffer.concat([header, ...packets.map(record)]);
}
