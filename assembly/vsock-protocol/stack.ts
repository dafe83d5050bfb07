// The vsock protocol engine. One receive entry point dispatches every packet on
// (connection state, op) in one place, like Linux's virtio_transport_recv_pkt; vsockPoll drives
// everything: received packets, the event queue, owed control packets, data, timers.
import { clockNs, platformIdle } from "../platform/imports";
import { LEVEL_DEBUG, LEVEL_INFO, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import {
  deviceSeqpacket,
  eventPoll,
  rxNext,
  rxRelease,
  txFlush,
  vsockDeviceInit,
} from "../vsock-device/device";
import {
  Connection,
  CONN_CLOSING,
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  CONN_FREE,
  OWE_CREDIT_REPLY,
  OWE_CREDIT_UPDATE,
  OWE_CREDIT_REQUEST,
  OWE_RESPONSE,
  RECEIVE_BUFFER_CAPACITY,
  SEND_BUFFER_CAPACITY,
} from "./connection";
import { connectionAt, connectionTableInit, findConnection, liveConnectionCount, logConnectionOpened } from "./connection-table";
import { clearResets, nextResetLocalPort, nextResetPeerCid, nextResetPeerPort, nextResetType, popReset, queueReset, resetsQueued } from "./control-queue";
import { creditUpdateDue, receiveAllowed, stalledByOwnSize, updatePeerCredit } from "./credit";
import { MESSAGE_BYTES_TAKEN, MESSAGE_QUEUE_FULL, MESSAGE_TOO_LONG, receiveMessageBytes } from "./messages";
import { allocateOrReclaim, endConnection, resetByTransport, resetConnection } from "./lifecycle";
import { backlogFull, enqueueAccept, overShare } from "./listener";
import {
  headerDstCid,
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
  VIRTIO_VSOCK_TYPE_SEQPACKET,
  VIRTIO_VSOCK_TYPE_STREAM,
  opName,
} from "../wire/vsock-header";
import { findListener, MAX_SOCKETS, socketForFd, Socket, socketTableInit } from "./socket-table";
import { ECONNRESET, ENOBUFS, EPROTO, ETIMEDOUT } from "./errors";
import { hasWork, localCid, packetsSentCount, sendReset, serviceConnection } from "./transmit";
import { traceHeader } from "../diag/trace";
import { peerCidAllowed } from "./siblings";
import { countRx } from "../diag/counters";
import { countersPoll } from "./counters-report";
import { connectionLogPoll } from "./connection-log";
import {
  countRejection,
  REJECT_BACKLOG_FULL,
  REJECT_CONNECTION_TABLE_FULL,
  REJECT_DST_CID,
  REJECT_LISTENER_OVER_SHARE,
  REJECT_MESSAGE_QUEUE_FULL,
  REJECT_MESSAGE_TOO_LONG,
  REJECT_NO_SOCKET,
  REJECT_NOT_REQUEST_TO_LISTENER,
  REJECT_RW_BEYOND_CREDIT,
  REJECT_SEQPACKET_NOT_NEGOTIATED,
  REJECT_SRC_CID,
  REJECT_TYPE_MISMATCH,
  REJECT_UNEXPECTED_OP,
  REJECT_UNKNOWN_OP,
  REJECT_UNKNOWN_TYPE,
  rejectionCount,
} from "../diag/rejections";
import { DIRECTION_RX, recordPacket } from "../diag/packet-history";

// Packets handled per poll before yielding to the rest of the loop (a flood cannot starve it).
const RX_BUDGET: i32 = 512;

let started = false;
let serviceStart: i32 = 0; // round-robin start, so a congested tx queue is shared fairly
let packetsReceived: u64 = 0;

export function vsockStart(): bool {
  if (!vsockDeviceInit()) return false;
  connectionTableInit();
  socketTableInit();
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
  const cidBefore = localCid();
  const reset = eventPoll(); // a transport reset may give us a new CID
  if (reset) transportReset(cidBefore);
  for (let budget = RX_BUDGET; budget > 0; budget--) {
    const packet = rxNext();
    if (packet == null) break;
    receivePacket(packet.header, packet.payload, packet.payloadLength);
    rxRelease();
  }
  const now = clockNs();
  runTimers(now);
  transmitPending();
  countersPoll(now);
  connectionLogPoll(now, liveConnectionCount());
  const progressed = reset || packetsReceived + packetsSentCount() != before;
  if (!progressed) platformIdle();
  return progressed;
}

// ---- receive ----------------------------------------------------------------------------

function logDropped(what: string, h: usize): void {
  if (logBegin(LEVEL_DEBUG, "vsock")) {
    logStr(what);
    logPacketFields(h);
    logEnd();
  }
}

function logPacketFields(h: usize): void {
  logKvStr("op", opName(headerOp(h)));
  if (headerOp(h) == VIRTIO_VSOCK_OP_INVALID || headerOp(h) > VIRTIO_VSOCK_OP_CREDIT_REQUEST) logKv("op_code", headerOp(h));
  logKv("local", headerDstPort(h));
  logKv("peer_cid", headerSrcCid(h));
  logKv("peer_port", headerSrcPort(h));
}

// A packet refused for `reason`: counted, logged (warn the first time, then debug), dropped.
function rejectPacket(reason: i32, what: string, h: usize): void {
  if (logBegin(countRejection(reason), "vsock")) {
    logStr("rejected: ");
    logStr(what);
    logPacketFields(h);
    logKv("type", headerType(h));
    logKv("dst_cid", headerDstCid(h));
    logKv("len", headerLen(h));
    logKv("count", rejectionCount(reason));
    logEnd();
  }
}

// Refused, and answered with an RST, as Linux's virtio_transport_reset_no_sock does. Never an
// RST in answer to an RST (two stacks would otherwise bounce resets forever).
function rejectWithReset(reason: i32, what: string, h: usize): void {
  rejectPacket(reason, what, h);
  if (headerOp(h) == VIRTIO_VSOCK_OP_RST) return;
  // The RST has the packet's type (Linux's peer drops one of another type); a type neither STREAM
  // nor SEQPACKET is answered as STREAM, so that nothing unknown goes on the wire.
  const type = headerType(h) == VIRTIO_VSOCK_TYPE_SEQPACKET ? VIRTIO_VSOCK_TYPE_SEQPACKET : VIRTIO_VSOCK_TYPE_STREAM;
  queueReset(headerDstPort(h), headerSrcCid(h), headerSrcPort(h), type);
}

function knownOp(op: u32): bool {
  return op >= VIRTIO_VSOCK_OP_REQUEST && op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST;
}

function receivePacket(h: usize, payload: usize, payloadLength: u32): void {
  countRx(h);
  traceHeader("rx", h, payloadLength);
  recordPacket(DIRECTION_RX, h);
  packetsReceived++;
  if (!peerCidAllowed(headerSrcCid(h))) {
    // Only the host talks to us (vhost stamps src_cid 2), and vhost drops anything we send to
    // another cid: such a packet is bogus and gets no reply at all, not even an RST. Sibling VMs
    // (siblings.ts) are the one exception, when a vhost-user backend routes between guests.
    rejectPacket(REJECT_SRC_CID, "packet from a cid other than the host", h);
    return;
  }
  if (headerDstCid(h) != localCid()) {
    // Not for us (e.g. still addressed to the cid we had before a transport reset): no reply.
    rejectPacket(REJECT_DST_CID, "packet for another cid", h);
    return;
  }
  const type = headerType(h);
  if (type != VIRTIO_VSOCK_TYPE_STREAM && type != VIRTIO_VSOCK_TYPE_SEQPACKET) {
    rejectWithReset(REJECT_UNKNOWN_TYPE, "unsupported socket type: RST", h);
    return;
  }
  if (type == VIRTIO_VSOCK_TYPE_SEQPACKET && !deviceSeqpacket()) {
    // No RST: it would itself be a SEQPACKET packet, which this device never agreed to carry.
    rejectPacket(REJECT_SEQPACKET_NOT_NEGOTIATED, "SEQPACKET packet from a device without VIRTIO_VSOCK_F_SEQPACKET", h);
    return;
  }
  const c = findConnection(headerDstPort(h), headerSrcCid(h), headerSrcPort(h));
  if (!knownOp(headerOp(h))) {
    // Linux ignores an unknown op on a connection and resets it without one.
    if (c != null) rejectPacket(REJECT_UNKNOWN_OP, "unknown op on a connection: ignored", h);
    else rejectWithReset(REJECT_UNKNOWN_OP, "unknown op: RST", h);
    return;
  }
  if (c != null && type != c.type) {
    // Linux answers with an RST and drops the packet (virtio_transport_recv_pkt). The peer has
    // then forgotten the tuple, so ours ends too, rather than wait on a peer that will not answer.
    rejectWithReset(REJECT_TYPE_MISMATCH, "packet type is not the connection's: RST", h);
    if (headerOp(h) != VIRTIO_VSOCK_OP_RST) resetConnection(c, "protocol-error", EPROTO);
    return;
  }
  if (c != null) {
    updatePeerCredit(c, h); // every header carries the peer's current credit
    if (headerOp(h) == VIRTIO_VSOCK_OP_RW) c.bytesArrived += min(payloadLength, headerLen(h));
    if (c.state == CONN_CONNECTING) receiveConnecting(c, h);
    else if (c.state == CONN_ESTABLISHED) receiveEstablished(c, h, payload, min(payloadLength, headerLen(h)));
    else if (c.state == CONN_CLOSING) receiveClosing(c, h, payloadLength);
    return;
  }
  const listener = findListener(headerDstPort(h));
  if (listener != null) {
    receiveListening(listener, h);
    return;
  }
  if (headerOp(h) == VIRTIO_VSOCK_OP_RST) {
    logDropped("RST for no socket ignored", h); // the normal end of a tuple we already forgot
    return;
  }
  rejectWithReset(REJECT_NO_SOCKET, "no socket for tuple: RST", h);
}

function receiveListening(listener: Socket, h: usize): void {
  if (headerType(h) != listener.type) {
    rejectWithReset(REJECT_TYPE_MISMATCH, "packet type is not the listener's: RST", h);
    return;
  }
  if (headerOp(h) != VIRTIO_VSOCK_OP_REQUEST) {
    if (headerOp(h) == VIRTIO_VSOCK_OP_RST) logDropped("RST to a listener ignored", h);
    else rejectWithReset(REJECT_NOT_REQUEST_TO_LISTENER, "non-REQUEST to a listener: RST", h);
    return;
  }
  if (backlogFull(listener)) {
    rejectWithReset(REJECT_BACKLOG_FULL, "backlog full: RST", h);
    return;
  }
  const c = allocateOrReclaim(headerDstPort(h), headerSrcCid(h), headerSrcPort(h), false, listener);
  if (c == null) {
    if (overShare(listener)) rejectWithReset(REJECT_LISTENER_OVER_SHARE, "listener over its share of a full table: RST", h);
    else rejectWithReset(REJECT_CONNECTION_TABLE_FULL, "connection table full: RST", h);
    return;
  }
  if (listener.type == VIRTIO_VSOCK_TYPE_SEQPACKET) c.makeSeqpacket();
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
  } else {
    // Linux answers anything else with RST and fails the connect with EPROTO.
    rejectPacket(REJECT_UNEXPECTED_OP, "unexpected packet while connecting: RST", h);
    resetConnection(c, "protocol-error", EPROTO);
  }
}

function receiveEstablished(c: Connection, h: usize, payload: usize, length: u32): void {
  const op = headerOp(h);
  if (op == VIRTIO_VSOCK_OP_RW) {
    // A SEQPACKET packet may be empty and still end a message (EOM).
    if (length == 0 && !c.seqpacket()) return;
    if (length > 0 && !receiveAllowed(c, length)) {
      // The peer overran the credit we gave it; Linux drops such a packet too.
      c.dropped += length;
      rejectPacket(REJECT_RW_BEYOND_CREDIT, "RW beyond our credit dropped", h);
      return;
    }
    if (c.seqpacket()) {
      receiveMessage(c, h, payload, length);
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
    rejectPacket(REJECT_UNEXPECTED_OP, "REQUEST or RESPONSE on an established connection ignored", h);
  }
}

// SEQPACKET payload: cut into messages at EOM (messages.ts); only its refusals are decided here.
function receiveMessage(c: Connection, h: usize, payload: usize, length: u32): void {
  const outcome = receiveMessageBytes(c, headerFlags(h), payload, length);
  // A message that is still arriving cannot be read, so no read would report the consumption
  // the peer has not heard of yet; without it a peer short of credit for the message's rest
  // would wait forever. Linux sends an update after every message read; this sends one only
  // when the peer's view of our free space is low (the same rule as for reads).
  if (outcome == MESSAGE_BYTES_TAKEN && c.rxPartial > 0 && creditUpdateDue(c)) c.owed |= OWE_CREDIT_UPDATE;
  if (outcome == MESSAGE_TOO_LONG) {
    // Its bytes were counted consumed: tell the peer, whose credit had run out on it.
    rejectPacket(REJECT_MESSAGE_TOO_LONG, "message larger than the receive buffer: discarded up to its EOM", h);
    if (creditUpdateDue(c)) c.owed |= OWE_CREDIT_UPDATE;
  } else if (outcome == MESSAGE_QUEUE_FULL) {
    rejectPacket(REJECT_MESSAGE_QUEUE_FULL, "more messages queued than the connection tracks: RST", h);
    resetConnection(c, "protocol-error", ENOBUFS);
  }
}

// We closed and sent (or owe) SHUTDOWN(3): only the peer's answer matters now.
function receiveClosing(c: Connection, h: usize, payloadLength: u32): void {
  const op = headerOp(h);
  if (op == VIRTIO_VSOCK_OP_RST) {
    endConnection(c, "local-close");
  } else if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
    c.peerShutdown |= headerFlags(h) & VIRTIO_VSOCK_SHUTDOWN_MASK;
    if (c.peerShutdown == VIRTIO_VSOCK_SHUTDOWN_MASK) resetConnection(c, "local-close");
  } else if (op == VIRTIO_VSOCK_OP_RW) {
    c.fwdCnt += min(payloadLength, headerLen(h)); // nobody will read it: count it consumed
  } else if (op == VIRTIO_VSOCK_OP_REQUEST || op == VIRTIO_VSOCK_OP_RESPONSE) {
    rejectPacket(REJECT_UNEXPECTED_OP, "REQUEST or RESPONSE on a closing connection ignored", h);
  }
}

// ---- timers, transport reset, transmit --------------------------------------------------

// How long a connection stalled by its own buffer size waits before its first CREDIT_REQUEST.
const CREDIT_PROBE_NS: u64 = 10_000_000;

function runTimers(now: u64): void {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state == CONN_CONNECTING && now >= c.deadline) {
      // An RST after the REQUEST (Linux sends none): a REQUEST that reached the peer late must not
      // leave it a half-open connection, which a retried connect from the same port (the socket
      // keeps its port) would then meet with the old one's credit and state.
      resetConnection(c, "connect-timeout", ETIMEDOUT);
    } else if (c.state == CONN_CLOSING && now >= c.deadline) {
      resetConnection(c, "close-timeout");
    }
    if (c.state != CONN_ESTABLISHED || !stalledByOwnSize(c)) {
      c.creditProbeAt = 0;
      c.creditProbes = 0;
    } else if (c.creditProbeAt == 0) {
      c.creditProbeAt = now + CREDIT_PROBE_NS;
    } else if (now >= c.creditProbeAt) {
      // A peer that reads nothing is asked ever less often (10 ms, doubling up to 1.28 s).
      c.owed |= OWE_CREDIT_REQUEST;
      c.creditProbes = min(c.creditProbes + 1, 7);
      c.creditProbeAt = now + (CREDIT_PROBE_NS << c.creditProbes);
    }
  }
}

// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the host forgot every connection (e.g. after migration)
// and our cid may have changed. Live connections end with ECONNRESET, each state as Linux
// (lifecycle.ts resetByTransport); listeners and bound ports stay.
function transportReset(oldCid: u64): void {
  clearResets();
  let ended = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    if (resetByTransport(connectionAt(i))) ended++;
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
    if (!sendReset(nextResetLocalPort(), nextResetPeerCid(), nextResetPeerPort(), nextResetType())) return false;
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

// The last look before the main loop halts, with the device's interrupts armed: whatever is owed
// goes now. The apps run after a poll's own transmit and may have queued packets since (a
// SHUTDOWN, a REQUEST), and packets that found every tx buffer in flight may find one free now:
// the device can complete tx after the poll looked and before tx interrupts were armed, and that
// completion raises no interrupt. True when a packet left (then the loop must not halt).
export function vsockTransmitBeforeHalt(): bool {
  if (!started) return false;
  const before = packetsSentCount();
  transmitPending();
  return packetsSentCount() != before;
}

export function vsockPacketsReceived(): u64 {
  return packetsReceived;
}

