// The vsock protocol engine. One receive entry point dispatches every packet on
// (connection state, op) in one place, like Linux's virtio_transport_recv_pkt; vsockPoll drives
// everything: received packets, the event queue, owed control packets, data, timers.
import { clockNs, platformIdle } from "../platform/imports";
import { LEVEL_DEBUG, LEVEL_INFO, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import {
  deviceGuestCid,
  eventPoll,
  rxHeader,
  rxNext,
  rxPayload,
  rxPayloadLength,
  rxRelease,
  txFlush,
  vsockDeviceInit,
} from "./device";
import {
  Connection,
  CONN_CLOSING,
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  CONN_FREE,
  OWE_CREDIT_REPLY,
  OWE_RESPONSE,
  RECEIVE_BUFFER_CAPACITY,
  SEND_BUFFER_CAPACITY,
} from "./connection";
import { connectionAt, connectionTableInit, findConnection, liveConnectionCount, allocateConnection, logConnectionOpened } from "./connection-table";
import { clearResets, nextResetLocalPort, nextResetPeerCid, nextResetPeerPort, popReset, queueReset, resetsQueued } from "./control-queue";
import { updatePeerCredit } from "./credit";
import { endConnection, resetConnection } from "./lifecycle";
import { backlogFull, enqueueAccept } from "./listener";
import {
  headerDstPort,
  headerFlags,
  headerLen,
  headerOp,
  headerSrcCid,
  headerSrcPort,
  headerType,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_INVALID,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_MASK,
  VIRTIO_VSOCK_TYPE_STREAM,
  VMADDR_CID_HOST,
  opName,
} from "./packet";
import { findListener, MAX_SOCKETS, socketForFd, Socket, socketTableInit } from "./socket-table";
import { ECONNRESET, EPROTO, ETIMEDOUT } from "./errors";
import { hasWork, localCid, packetsSentCount, sendReset, serviceConnection, setLocalCid } from "./transmit";
import { traceHeader } from "./trace";

// Packets handled per poll before yielding to the rest of the loop (a flood cannot starve it).
const RX_BUDGET: i32 = 512;

let started = false;
let serviceStart: i32 = 0; // round-robin start, so a congested tx queue is shared fairly
let packetsReceived: u64 = 0;

export function vsockStart(): bool {
  if (!vsockDeviceInit()) return false;
  connectionTableInit();
  socketTableInit();
  setLocalCid(deviceGuestCid());
  started = true;
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("stack up");
    logKv("cid", localCid());
    logKv("max_connections", MAX_CONNECTIONS);
    logKv("max_sockets", MAX_SOCKETS);
    logKv("rx_buffer", RECEIVE_BUFFER_CAPACITY);
    logKv("tx_buffer", SEND_BUFFER_CAPACITY);
    logEnd();
  }
  return true;
}

export function vsockStarted(): bool {
  return started;
}

export function vsockConnectionCount(): i32 {
  return liveConnectionCount();
}

// One round; true when a packet moved. A round that moved nothing lets the platform use the
// moment (platformIdle), whichever loop polls (the main loop or a blocking socket call).
export function vsockPoll(): bool {
  if (!started) return false;
  const before = packetsReceived + packetsSentCount();
  const reset = eventPoll();
  if (reset) transportReset();
  for (let budget = RX_BUDGET; budget > 0 && rxNext(); budget--) {
    receivePacket(rxHeader, rxPayload, rxPayloadLength);
    rxRelease();
  }
  runTimers(clockNs());
  transmitPending();
  const progressed = reset || packetsReceived + packetsSentCount() != before;
  if (!progressed) platformIdle();
  return progressed;
}

// ---- receive ----------------------------------------------------------------------------

function logDropped(what: string, h: usize): void {
  if (logBegin(LEVEL_DEBUG, "vsock")) {
    logStr(what);
    logKvStr("op", opName(headerOp(h)));
    logKv("local", headerDstPort(h));
    logKv("peer_cid", headerSrcCid(h));
    logKv("peer_port", headerSrcPort(h));
    logEnd();
  }
}

// RST in answer to a packet nothing here wants. Never in answer to an RST (two stacks would
// otherwise bounce resets forever).
function replyReset(h: usize, why: string): void {
  if (headerOp(h) == VIRTIO_VSOCK_OP_RST) return;
  logDropped(why, h);
  queueReset(headerDstPort(h), headerSrcCid(h), headerSrcPort(h));
}

function receivePacket(h: usize, payload: usize, payloadLength: u32): void {
  traceHeader("rx", h);
  packetsReceived++;
  if (headerSrcCid(h) != VMADDR_CID_HOST) {
    // Only the host talks to us (vhost stamps src_cid 2), and vhost drops anything we send to
    // another cid: such a packet is bogus and gets no reply at all, not even an RST.
    logDropped("packet from a cid other than the host dropped", h);
    return;
  }
  if (headerType(h) != VIRTIO_VSOCK_TYPE_STREAM) {
    replyReset(h, "unsupported socket type: RST");
    return;
  }
  const c = findConnection(headerDstPort(h), headerSrcCid(h), headerSrcPort(h));
  if (c != null) {
    updatePeerCredit(c, h); // every header carries the peer's current credit
    if (c.state == CONN_CONNECTING) receiveConnecting(c, h);
    else if (c.state == CONN_ESTABLISHED) receiveEstablished(c, h, payload, min(payloadLength, headerLen(h)));
    else if (c.state == CONN_CLOSING) receiveClosing(c, h);
    return;
  }
  const listener = findListener(headerDstPort(h));
  if (listener != null) {
    receiveListening(listener, h);
    return;
  }
  replyReset(h, "no socket for tuple: RST");
}

function receiveListening(listener: Socket, h: usize): void {
  if (headerOp(h) != VIRTIO_VSOCK_OP_REQUEST) {
    replyReset(h, "non-REQUEST to a listener: RST");
    return;
  }
  if (backlogFull(listener)) {
    replyReset(h, "backlog full: RST");
    return;
  }
  const c = allocateConnection(headerDstPort(h), headerSrcCid(h), headerSrcPort(h), false);
  if (c == null) {
    replyReset(h, "connection table full: RST");
    return;
  }
  c.bufAlloc = listener.bufferSize;
  updatePeerCredit(c, h);
  c.state = CONN_ESTABLISHED;
  c.established = true;
  c.owed |= OWE_RESPONSE;
  enqueueAccept(listener, c);
  logConnectionOpened(c);
}

function receiveConnecting(c: Connection, h: usize): void {
  const op = headerOp(h);
  if (op == VIRTIO_VSOCK_OP_RESPONSE) {
    c.state = CONN_ESTABLISHED;
    c.established = true;
    logConnectionOpened(c);
  } else if (op == VIRTIO_VSOCK_OP_RST) {
    // Linux's connect() reports ECONNRESET when the host resets our REQUEST (nobody listening).
    endConnection(c, "reset-by-peer", ECONNRESET);
  } else if (op != VIRTIO_VSOCK_OP_INVALID) {
    logDropped("unexpected packet while connecting: RST", h);
    resetConnection(c, "protocol-error", EPROTO);
  }
}

function receiveEstablished(c: Connection, h: usize, payload: usize, length: u32): void {
  const op = headerOp(h);
  if (op == VIRTIO_VSOCK_OP_RW) {
    if (length == 0) return;
    if (<u64>c.rx.count + <u64>length > <u64>c.bufAlloc || length > c.rx.free()) {
      // The peer overran the credit we gave it; Linux drops such a packet too.
      c.dropped += length;
      logDropped("RW beyond our credit dropped", h);
      return;
    }
    c.rx.write(payload, length);
    c.bytesReceived += length;
  } else if (op == VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
    c.owed |= OWE_CREDIT_REPLY;
  } else if (op == VIRTIO_VSOCK_OP_CREDIT_UPDATE) {
    // Nothing more: the header already refreshed the peer's credit; the next poll sends.
  } else if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
    c.peerShutdown |= headerFlags(h) & VIRTIO_VSOCK_SHUTDOWN_MASK;
    if (c.peerShutdown == VIRTIO_VSOCK_SHUTDOWN_MASK) {
      // The peer is done both ways and waits for our RST. Buffered data stays readable, then EOF.
      resetConnection(c, "peer-shutdown");
    }
  } else if (op == VIRTIO_VSOCK_OP_RST) {
    c.peerShutdown = VIRTIO_VSOCK_SHUTDOWN_MASK;
    endConnection(c, "reset-by-peer");
  } else {
    logDropped("unexpected packet on an established connection ignored", h);
  }
}

// We closed and sent (or owe) SHUTDOWN(3): only the peer's answer matters now.
function receiveClosing(c: Connection, h: usize): void {
  const op = headerOp(h);
  if (op == VIRTIO_VSOCK_OP_RST) {
    endConnection(c, "closed");
  } else if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
    c.peerShutdown |= headerFlags(h) & VIRTIO_VSOCK_SHUTDOWN_MASK;
    if (c.peerShutdown == VIRTIO_VSOCK_SHUTDOWN_MASK) resetConnection(c, "closed");
  } else if (op == VIRTIO_VSOCK_OP_RW) {
    c.fwdCnt += min(rxPayloadLength, headerLen(h)); // nobody will read it: count it consumed
  }
}

// ---- timers, transport reset, transmit --------------------------------------------------

function runTimers(now: u64): void {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state == CONN_CONNECTING && now >= c.deadline) {
      endConnection(c, "connect-timeout", ETIMEDOUT);
    } else if (c.state == CONN_CLOSING && now >= c.deadline) {
      resetConnection(c, "close-timeout");
    }
  }
}

// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the host forgot every connection (e.g. after migration)
// and our cid may have changed. Connections end with ECONNRESET; listeners and bound ports stay.
function transportReset(): void {
  const oldCid = localCid();
  setLocalCid(deviceGuestCid());
  clearResets();
  let ended = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state == CONN_FREE) continue;
    ended++;
    c.peerShutdown = VIRTIO_VSOCK_SHUTDOWN_MASK;
    endConnection(c, "transport-reset", ECONNRESET);
  }
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("transport reset");
    logKv("old_cid", oldCid);
    logKv("cid", localCid());
    logKv("connections_reset", ended);
    logKv("conns", <u64>liveConnectionCount());
    logEnd();
  }
}

function transmitPass(): bool {
  while (resetsQueued() > 0) {
    if (!sendReset(nextResetLocalPort(), nextResetPeerCid(), nextResetPeerPort())) return false;
    popReset();
  }
  for (let k = 0; k < MAX_CONNECTIONS; k++) {
    const c = connectionAt((serviceStart + k) % MAX_CONNECTIONS);
    if (c.state == CONN_FREE || !hasWork(c)) continue;
    if (!serviceConnection(c)) {
      serviceStart = c.index; // it goes first next time
      return false;
    }
  }
  return true;
}

function transmitPending(): void {
  if (!transmitPass()) {
    txFlush(); // let the device complete what it has, then reclaim and try once more
    transmitPass();
  }
  txFlush();
}

export function vsockPacketsReceived(): u64 {
  return packetsReceived;
}

