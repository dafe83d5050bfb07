// Building and sending our packets. Every packet carries src_cid = our guest cid, dst_cid = the
// peer (always the host, CID 2: vhost drops anything else), and our current buf_alloc/fwd_cnt.
import { deviceGuestCid, txAcquire, txSubmit } from "../vsock-device/device";
import {
  Connection,
  CONN_CLOSING,
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  OWE_CREDIT_REPLY,
  OWE_CREDIT_REQUEST,
  OWE_CREDIT_UPDATE,
  OWE_REQUEST,
  OWE_RESPONSE,
  OWE_SHUTDOWN,
} from "./connection";
import { advertiseCredit, peerFreeSpace } from "./credit";
import { messageBytesSent, messagePacketLength } from "./messages";
import {
  VIRTIO_VSOCK_MAX_PKT_BUF_SIZE,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VSOCK_HEADER_SIZE,
  writeHeader,
} from "../wire/vsock-header";
import { traceHeader } from "../diag/trace";
import { countStall, countTx, STALL_CREDIT, STALL_RING } from "../diag/counters";
import { DIRECTION_TX, recordPacket } from "../diag/packet-history";

// Our CID is the device's (it changes at a transport reset); the protocol keeps no copy.
export function localCid(): u64 {
  return deviceGuestCid();
}

let packetsSent: u64 = 0;

export function packetsSentCount(): u64 {
  return packetsSent;
}

function submit(buffer: usize, payloadLength: u32): void {
  countTx(buffer);
  traceHeader("tx", buffer, payloadLength);
  recordPacket(DIRECTION_TX, buffer);
  txSubmit(buffer, payloadLength);
  packetsSent++;
}

// No free tx buffer: counted, and the caller retries on a later poll.
function stalled(): bool {
  countStall(STALL_RING);
  return false;
}

// A packet without payload for connection c. False when no tx buffer is free.
function sendConnectionControl(c: Connection, op: u32, flags: u32): bool {
  const buffer = txAcquire();
  if (buffer == 0) return stalled();
  writeHeader(buffer, localCid(), c.localPort, c.peerCid, c.peerPort, op, flags, 0, advertiseCredit(c), c.fwdCnt, c.type);
  submit(buffer, 0);
  return true;
}

// An RST for a tuple (the connection may already be gone). Never sent in answer to an RST.
export function sendReset(localPort: u32, peerCid: u64, peerPort: u32, type: u32): bool {
  const buffer = txAcquire();
  if (buffer == 0) return stalled();
  writeHeader(buffer, localCid(), localPort, peerCid, peerPort, VIRTIO_VSOCK_OP_RST, 0, 0, 0, 0, type);
  submit(buffer, 0);
  return true;
}

// Moves send-buffer bytes out as RW packets, each <= 64 KiB and within the peer's credit; on a
// SEQPACKET connection no packet spans two messages and each message's last one carries EOM.
// False when the tx queue ran out of buffers (more is left to send).
function sendData(c: Connection): bool {
  while (c.tx.count > 0) {
    const credit = peerFreeSpace(c);
    if (credit == 0) {
      countStall(STALL_CREDIT);
      return true; // the peer's CREDIT_UPDATE (or any header) reopens the window
    }
    let n = min(min(c.tx.count, credit), VIRTIO_VSOCK_MAX_PKT_BUF_SIZE);
    const seqpacket = c.seqpacket();
    if (seqpacket) n = messagePacketLength(c, n);
    const buffer = txAcquire();
    if (buffer == 0) return stalled();
    const flags = seqpacket ? messageBytesSent(c, n) : 0;
    c.tx.read(buffer + VSOCK_HEADER_SIZE, n);
    writeHeader(buffer, localCid(), c.localPort, c.peerCid, c.peerPort, VIRTIO_VSOCK_OP_RW, flags, n, advertiseCredit(c), c.fwdCnt, c.type);
    c.txCnt += n;
    c.bytesSent += n;
    submit(buffer, n);
  }
  return true;
}

// Sends what connection c owes, in protocol order: REQUEST, RESPONSE, data, credit, SHUTDOWN.
// False when the tx queue ran out of buffers (the rest stays owed for the next poll).
export function serviceConnection(c: Connection): bool {
  if (c.owed & OWE_REQUEST) {
    if (!sendConnectionControl(c, VIRTIO_VSOCK_OP_REQUEST, 0)) return false;
    c.owed &= ~OWE_REQUEST;
  }
  if (c.state == CONN_CONNECTING) return true;
  if (c.state != CONN_ESTABLISHED && c.state != CONN_CLOSING) {
    c.owed = 0;
    c.clearSend();
    return true;
  }
  if (c.owed & OWE_RESPONSE) {
    if (!sendConnectionControl(c, VIRTIO_VSOCK_OP_RESPONSE, 0)) return false;
    c.owed &= ~OWE_RESPONSE;
  }
  if (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) {
    c.clearSend(); // the peer will read no more
  } else if (!sendData(c)) {
    return false;
  }
  if (c.owed & (OWE_CREDIT_UPDATE | OWE_CREDIT_REPLY)) {
    // A data packet sent just now already told the peer our fwd_cnt; a CREDIT_REQUEST or a
    // buffer size change is always answered.
    if ((c.owed & OWE_CREDIT_REPLY) != 0 || c.lastFwdCntSent != c.fwdCnt) {
      if (!sendConnectionControl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0)) return false;
    }
    c.owed &= ~(OWE_CREDIT_UPDATE | OWE_CREDIT_REPLY);
  }
  if (c.owed & OWE_CREDIT_REQUEST) {
    if (!sendConnectionControl(c, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0)) return false;
    c.owed &= ~OWE_CREDIT_REQUEST;
  }
  if ((c.owed & OWE_SHUTDOWN) && c.tx.count == 0) {
    if (!sendConnectionControl(c, VIRTIO_VSOCK_OP_SHUTDOWN, c.localShutdown)) return false;
    c.shutdownSent |= c.localShutdown;
    c.owed &= ~OWE_SHUTDOWN;
  }
  return true;
}

// Whether a connection has anything to send (skips idle connections in the poll loop).
// @ts-ignore: decorator
@inline export function hasWork(c: Connection): bool {
  return c.owed != 0 || (c.tx.count > 0 && peerFreeSpace(c) > 0);
}
