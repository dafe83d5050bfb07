// The socket API, exported from the wasm (main.ts re-exports this file: keep only exported
// functions here). File descriptors, Linux errno values negated on failure (errors.ts), and
// Python-socket semantics:
//   vs_socket(type) -> fd                 type SOCK_STREAM (1; 0 too) or SOCK_SEQPACKET (5), else -ESOCKTNOSUPPORT
//   vs_bind(fd, cid, port)                VMADDR_CID_ANY / VMADDR_PORT_ANY (0xffffffff)
//   vs_listen(fd, backlog)                vs_accept(fd, addrOut) -> fd, *addrOut = { u32 cid; u32 port }
//   vs_connect(fd, cid, port)             vs_send / vs_recv(fd, buf, len, flags) -> bytes (recv: 0 = EOF)
//   vs_recvmsg(fd, buf, len, flags, flagsOut): recv, and *flagsOut (u32) = MSG_TRUNC | MSG_EOR
//   SEQPACKET: one send is one message, one recv one message (message-calls.ts)
//   vs_shutdown(fd, how)                  vs_close(fd)
//   vs_settimeout(fd, ns)                 -1 blocks forever (default), 0 never blocks (EAGAIN/EINPROGRESS), > 0 timeout
//   vs_setsockopt(fd, option, value) / vs_getsockopt(fd, option, valueOut): options in api-constants.ts
//   vs_getsockname / vs_getpeername(fd, addrOut), vs_poll(fds, count, timeoutNs), vs_local_cid()
//   vs_staging() / vs_staging_size(): a buffer inside linear memory for C callers (firmware/vsock-api.c)
// Buffers and out-pointers must lie inside linear memory (-EFAULT otherwise; 0 means "none" for
// the address and option outputs, and is never a data buffer).
// Timeouts: recv/accept/send give -EAGAIN when their timeout passes (like Linux SO_RCVTIMEO);
// connect waits at most min(connect timeout (2 s), send timeout) and then gives -ETIMEDOUT.
// Blocking calls loop on vsockPoll() until progress or their deadline (clock_ns).
import { clockNs } from "../platform/imports";
import { LEVEL_DEBUG, LEVEL_INFO, logBegin, logEnd, logKv, logKvSigned, logKvStr, logStr } from "../platform/log";
import {
  ADDR_SIZE,
  MSG_DONTWAIT,
  MSG_PEEK,
  SOCK_SEQPACKET,
  SOCK_STREAM,
  POLLERR,
  POLLFD_SIZE,
  POLLHUP,
  POLLNVAL,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SO_RCVTIMEO,
} from "./api-constants";
import {
  Connection,
  CONN_CLOSED,
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  OWE_CREDIT_UPDATE,
  OWE_REQUEST,
  OWE_SHUTDOWN,
} from "../vsock-protocol/connection";
import { findConnection, freeConnection } from "../vsock-protocol/connection-table";
import { creditUpdateDue, sendRoom } from "../vsock-protocol/credit";
import {
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAGAIN,
  EALREADY,
  EBADF,
  EINPROGRESS,
  EINVAL,
  EISCONN,
  ETIMEDOUT,
  EMFILE,
  ENETDOWN,
  ENOBUFS,
  ENOTCONN,
  EPIPE,
  ESOCKTNOSUPPORT,
  errnoName,
} from "../vsock-protocol/errors";
import { lastMessageFlags, recvMessage, sendMessage } from "./message-calls";
import { deviceSeqpacket } from "../vsock-device/device";
import { allocateOrReclaim, closeByApplication, resetPending } from "../vsock-protocol/lifecycle";
import { oldestPending, removeFromAcceptQueue } from "../vsock-protocol/listener";
import {
  VIRTIO_VSOCK_SHUTDOWN_MASK,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VMADDR_CID_ANY,
  VMADDR_PORT_ANY,
  VIRTIO_VSOCK_TYPE_SEQPACKET,
} from "../wire/vsock-header";
import { allocateEphemeralPort, portInUse } from "./ports";
import { socketEvents } from "./readiness";
import { getOption, setOption } from "./socket-options";
import {
  allocateSocket,
  MAX_SOCKETS,
  Socket,
  SOCK_CONNECTED,
  SOCK_FREE,
  SOCK_LISTENING,
  SOCK_OPEN,
  socketForFd,
} from "../vsock-protocol/socket-table";
import { vsockPoll, vsockStarted } from "../vsock-protocol/stack";
import { localCid } from "../vsock-protocol/transmit";
import { peerCidAllowed } from "../vsock-protocol/siblings";

// One SEQPACKET message passes through it whole (C callers): the largest message, 256 KiB.
const STAGING_SIZE: u32 = 262144;
const EFAULT: i32 = 14; // Linux's value; errors.ts has no name for it yet
let staging: usize = 0;

// Every error is one debug line (subsystem `sock`). EAGAIN and EINPROGRESS are flow, not errors.
function fail(call: string, fd: i32, errno: i32): i32 {
  if (errno != EAGAIN && errno != EINPROGRESS && logBegin(LEVEL_DEBUG, "sock")) {
    logStr(call);
    logKvSigned("fd", fd);
    logKvStr("error", errnoName(errno));
    logEnd();
  }
  return -errno;
}

// Absolute deadline for a wait of `timeout` ns (< 0: never).
function deadlineAfter(timeout: i64): u64 {
  return timeout < 0 ? U64.MAX_VALUE : clockNs() + <u64>timeout;
}

// A wasm load or store outside linear memory traps, and a trap takes the whole firmware down: a
// caller's bad pointer must come back as EFAULT instead.
function inMemory(pointer: usize, length: u64): bool {
  const size = <u64>memory.size() << 16;
  if (length == 0) return <u64>pointer <= size; // a bulk copy traps past the end even for 0 bytes
  return pointer != 0 && <u64>pointer + length <= size;
}

// An optional output (0: the caller wants none).
function outputOk(pointer: usize, length: usize): bool {
  return pointer == 0 || inMemory(pointer, <u64>length);
}

function writeAddress(addrOut: usize, cid: u32, port: u32): void {
  if (addrOut == 0) return;
  store<u32>(addrOut, cid);
  store<u32>(addrOut + 4, port);
}

// A connection that ended before it was ever established (refused, timed out).
function failedConnect(c: Connection): bool {
  return c.state == CONN_CLOSED && !c.established;
}

let seqpacketRefusalLogged = false;

// A type other than STREAM or SEQPACKET, or SEQPACKET on a device that did not negotiate
// VIRTIO_VSOCK_F_SEQPACKET: ESOCKTNOSUPPORT, as Linux's vsock_create and vsock_assign_transport.
function typeRefused(type: i32): i32 {
  if (logBegin(type == SOCK_SEQPACKET && !seqpacketRefusalLogged ? LEVEL_INFO : LEVEL_DEBUG, "sock")) {
    if (type == SOCK_SEQPACKET) {
      seqpacketRefusalLogged = true;
      logStr("SEQPACKET socket refused: the device did not offer VIRTIO_VSOCK_F_SEQPACKET");
    } else {
      logStr("socket type not supported (1 stream, 5 seqpacket)");
    }
    logKvSigned("type", type);
    logEnd();
  }
  return fail("socket", -1, ESOCKTNOSUPPORT);
}

export function vs_socket(type: i32): i32 {
  if (!vsockStarted()) return fail("socket", -1, ENETDOWN);
  if (type != 0 && type != SOCK_STREAM && type != SOCK_SEQPACKET) return typeRefused(type);
  if (type == SOCK_SEQPACKET && !deviceSeqpacket()) return typeRefused(type);
  const s = allocateSocket();
  if (s == null) return fail("socket", -1, EMFILE);
  if (type == SOCK_SEQPACKET) s.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
  return s.fd();
}

export function vs_bind(fd: i32, cid: u32, port: u32): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("bind", fd, EBADF);
  if (s.state != SOCK_OPEN || s.bound) return fail("bind", fd, EINVAL);
  if (cid != VMADDR_CID_ANY && <u64>cid != localCid()) return fail("bind", fd, EADDRNOTAVAIL);
  if (port == VMADDR_PORT_ANY) {
    port = allocateEphemeralPort();
    if (port == 0) return fail("bind", fd, EADDRNOTAVAIL);
  } else if (portInUse(port)) {
    return fail("bind", fd, EADDRINUSE);
  }
  s.bound = true;
  s.ownsPort = true;
  s.boundCid = cid;
  s.localPort = port;
  return 0;
}

export function vs_listen(fd: i32, backlog: i32): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("listen", fd, EBADF);
  if (s.state == SOCK_CONNECTED || !s.bound) return fail("listen", fd, EINVAL);
  // A backlog of n admits n connections waiting for accept; the rest are refused with RST.
  s.backlog = backlog < 1 ? 1 : backlog > MAX_CONNECTIONS ? MAX_CONNECTIONS : backlog;
  s.state = SOCK_LISTENING;
  if (logBegin(LEVEL_DEBUG, "sock")) {
    logStr("listening");
    logKv("port", s.localPort);
    logKv("backlog", s.backlog);
    logEnd();
  }
  return 0;
}

export function vs_accept(fd: i32, addrOut: usize): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("accept", fd, EBADF);
  if (s.state != SOCK_LISTENING) return fail("accept", fd, EINVAL);
  if (!outputOk(addrOut, ADDR_SIZE)) return fail("accept", fd, EFAULT);
  const deadline = deadlineAfter(s.recvTimeout);
  while (true) {
    const c = oldestPending(s);
    if (c != null) {
      const child = allocateSocket();
      if (child == null) return fail("accept", fd, EMFILE); // it stays queued
      removeFromAcceptQueue(s, c);
      c.fd = child.fd();
      child.state = SOCK_CONNECTED;
      child.conn = c;
      child.bound = true;
      child.ownsPort = false; // the listener owns the port
      child.boundCid = s.boundCid;
      child.localPort = s.localPort;
      child.bufferSize = s.bufferSize;
      child.bufferMin = s.bufferMin;
      child.bufferMax = s.bufferMax;
      child.rcvLowat = s.rcvLowat;
      child.connectTimeout = s.connectTimeout;
      writeAddress(addrOut, <u32>c.peerCid, c.peerPort);
      return child.fd();
    }
    if (s.recvTimeout == 0 || clockNs() >= deadline) return fail("accept", fd, EAGAIN);
    vsockPoll();
  }
}

export function vs_connect(fd: i32, cid: u32, port: u32): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("connect", fd, EBADF);
  if (s.state == SOCK_LISTENING) return fail("connect", fd, EINVAL);
  if (s.state == SOCK_CONNECTED) {
    const old = s.conn!;
    if (old.state == CONN_CONNECTING) {
      if (s.sendTimeout == 0) return fail("connect", fd, EALREADY);
      return waitConnected(s, old);
    }
    if (!failedConnect(old)) return fail("connect", fd, EISCONN);
    // A failed connect leaves the socket unconnected; trying again is allowed (Linux too). After a
    // timeout, a port connect() picked itself is given up for a fresh one: the peer may have seen
    // the old REQUEST late, and a packet of that stale connection (its RESPONSE, its data) must not
    // land in the new one under the same tuple (vsock has no sequence numbers to tell them apart).
    // Linux keeps the port; a port the application bound stays, with the RST sent on the timeout.
    if (s.autoBound && old.error == ETIMEDOUT) s.bound = false;
    freeConnection(old);
    s.conn = null;
    s.state = SOCK_OPEN;
  }
  // Only the host is reachable (vhost drops guest packets whose dst_cid is not 2), and sibling
  // VMs a vhost-user backend routes to, when configured (siblings.ts).
  if (!peerCidAllowed(<u64>cid)) return fail("connect", fd, EADDRNOTAVAIL);
  if (port == VMADDR_PORT_ANY) return fail("connect", fd, EINVAL);
  if (!s.bound) {
    const ephemeral = allocateEphemeralPort();
    if (ephemeral == 0) return fail("connect", fd, EADDRNOTAVAIL);
    s.bound = true;
    s.ownsPort = true;
    s.autoBound = true;
    s.boundCid = VMADDR_CID_ANY;
    s.localPort = ephemeral;
  }
  if (findConnection(s.localPort, <u64>cid, port) != null) return fail("connect", fd, EADDRINUSE);
  const c = allocateOrReclaim(s.localPort, <u64>cid, port, true, null);
  if (c == null) return fail("connect", fd, ENOBUFS);
  if (s.type == VIRTIO_VSOCK_TYPE_SEQPACKET) c.makeSeqpacket();
  c.bufAlloc = s.bufferSize;
  c.state = CONN_CONNECTING;
  c.owed = OWE_REQUEST;
  c.fd = fd;
  let timeout = s.connectTimeout;
  if (s.sendTimeout > 0 && s.sendTimeout < timeout) timeout = s.sendTimeout;
  c.deadline = clockNs() + <u64>timeout;
  s.state = SOCK_CONNECTED;
  s.conn = c;
  if (s.sendTimeout == 0) {
    vsockPoll(); // the REQUEST goes out now; POLLOUT (or POLLERR) tells the outcome
    return fail("connect", fd, EINPROGRESS);
  }
  return waitConnected(s, c);
}

// The connection's deadline (stack timers) bounds this loop.
function waitConnected(s: Socket, c: Connection): i32 {
  while (c.state == CONN_CONNECTING) vsockPoll();
  if (failedConnect(c)) return fail("connect", s.fd(), c.error);
  return 0;
}

// The connection behind a connected socket, or null (then *why holds the errno).
let lookupError: i32 = 0;
function connectedConnection(fd: i32): Connection | null {
  const s = socketForFd(fd);
  if (s == null) {
    lookupError = EBADF;
    return null;
  }
  if (s.state != SOCK_CONNECTED) {
    lookupError = ENOTCONN;
    return null;
  }
  const c = s.conn!;
  if (c.state == CONN_CONNECTING || failedConnect(c)) {
    lookupError = ENOTCONN;
    return null;
  }
  return c;
}

export function vs_send(fd: i32, buf: usize, len: u32, flags: i32): i32 {
  const c = connectedConnection(fd);
  if (c == null) return fail("send", fd, lookupError);
  if (!inMemory(buf, <u64>len)) return fail("send", fd, EFAULT);
  const s = socketForFd(fd)!;
  const nonBlocking = s.sendTimeout == 0 || (flags & MSG_DONTWAIT) != 0;
  const deadline = deadlineAfter(s.sendTimeout);
  if (c.seqpacket()) {
    const r = sendMessage(c, buf, len, flags, nonBlocking, deadline);
    return r >= 0 ? r : fail("send", fd, -r);
  }
  let total: u32 = 0;
  while (true) {
    if (c.error != 0) return total > 0 ? <i32>total : fail("send", fd, c.error);
    if (
      c.state != CONN_ESTABLISHED ||
      (c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 ||
      (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0
    ) {
      return total > 0 ? <i32>total : fail("send", fd, EPIPE);
    }
    // Bytes wait in the send buffer and leave on the next poll: small writes coalesce. The socket
    // holds no more than its buffer size, in flight included (credit.ts sendRoom).
    total += c.tx.write(buf + total, min(len - total, sendRoom(c)));
    if (total == len) return <i32>total;
    if (nonBlocking || clockNs() >= deadline) return total > 0 ? <i32>total : fail("send", fd, EAGAIN);
    vsockPoll();
  }
}

export function vs_recv(fd: i32, buf: usize, len: u32, flags: i32): i32 {
  const c = connectedConnection(fd);
  if (c == null) return fail("recv", fd, lookupError);
  const s = socketForFd(fd)!;
  const nonBlocking = s.recvTimeout == 0 || (flags & MSG_DONTWAIT) != 0;
  const deadline = deadlineAfter(s.recvTimeout);
  if (!inMemory(buf, <u64>len)) {
    // SEQPACKET as Linux: the message whose copy fails is taken and lost (vsock_test cases 9 and
    // 13); a STREAM's bytes stay. A peek takes nothing either way.
    if (c.seqpacket() && (flags & MSG_PEEK) == 0) {
      const r = recvMessage(c, 0, 0, flags, nonBlocking, deadline);
      if (r < 0) return fail("recv", fd, -r);
    }
    return fail("recv", fd, EFAULT);
  }
  if (c.seqpacket()) {
    // len 0 still takes (or, with MSG_PEEK | MSG_TRUNC, measures) a message, as in Linux.
    const r = recvMessage(c, buf, len, flags, nonBlocking, deadline);
    return r >= 0 ? r : fail("recv", fd, -r);
  }
  if (len == 0) return 0;
  // A blocking read waits for min(SO_RCVLOWAT, len) bytes, as Linux's (sock_rcvlowat); a
  // non-blocking one, an ended stream or the timeout take what there is.
  const target = min(s.rcvLowat, len);
  while (true) {
    if ((c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0) return 0; // SHUT_RD: EOF at once, like Linux
    const ended = c.error != 0 || (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 || c.state != CONN_ESTABLISHED;
    const enough = c.rx.count >= target;
    const expired = !enough && !nonBlocking && !ended && clockNs() >= deadline; // the clock only while waiting
    if (c.rx.count > 0 && (enough || nonBlocking || ended || expired)) {
      if ((flags & MSG_PEEK) != 0) return <i32>c.rx.peek(buf, len);
      const n = c.rx.read(buf, len);
      c.fwdCnt += n;
      // Below a raised SO_RCVLOWAT the reader waits for more: report what was read (Linux's
      // low_rx_bytes). At the default of 1 that would be an update whenever a read empties the
      // buffer, which credit.ts's threshold deliberately avoids (one packet per read).
      const lowRx = s.rcvLowat > 1 && c.rx.count < s.rcvLowat && c.fwdCnt != c.lastFwdCntSent;
      if (c.state == CONN_ESTABLISHED && (creditUpdateDue(c) || lowRx)) c.owed |= OWE_CREDIT_UPDATE;
      return <i32>n;
    }
    if (c.error != 0) return fail("recv", fd, c.error); // transport reset
    // Only data ends a read: EOF once the peer shut its sending side or the connection ended.
    if ((c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 || c.state != CONN_ESTABLISHED) return 0;
    if (nonBlocking || expired) return fail("recv", fd, EAGAIN);
    vsockPoll();
  }
}

// recv, and the received message's MSG_TRUNC | MSG_EOR in *flagsOut (a u32; 0 on STREAM, 0: none wanted).
export function vs_recvmsg(fd: i32, buf: usize, len: u32, flags: i32, flagsOut: usize): i32 {
  if (!outputOk(flagsOut, 4)) return fail("recvmsg", fd, EFAULT);
  const r = vs_recv(fd, buf, len, flags);
  const c = connectedConnection(fd);
  if (flagsOut != 0) store<u32>(flagsOut, r >= 0 && c != null && c.seqpacket() ? <u32>lastMessageFlags : 0);
  return r;
}

export function vs_shutdown(fd: i32, how: i32): i32 {
  let bits: u32 = 0;
  if (how == SHUT_RD) bits = VIRTIO_VSOCK_SHUTDOWN_RCV;
  else if (how == SHUT_WR) bits = VIRTIO_VSOCK_SHUTDOWN_SEND;
  else if (how == SHUT_RDWR) bits = VIRTIO_VSOCK_SHUTDOWN_MASK;
  else return fail("shutdown", fd, EINVAL);
  const c = connectedConnection(fd);
  if (c == null) return fail("shutdown", fd, lookupError);
  c.localShutdown |= bits;
  // The SHUTDOWN packet follows any buffered data (transmit.ts orders it).
  if (c.state == CONN_ESTABLISHED && (c.shutdownSent & bits) != bits) c.owed |= OWE_SHUTDOWN;
  return 0;
}

export function vs_close(fd: i32): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("close", fd, EBADF);
  if (s.state == SOCK_LISTENING) {
    // Connections nobody accepted are refused now rather than left to time out.
    let c = oldestPending(s);
    while (c != null) {
      resetPending(c, "listener-closed");
      c = oldestPending(s);
    }
  } else if (s.state == SOCK_CONNECTED) {
    closeByApplication(s.conn!);
  }
  s.conn = null;
  s.state = SOCK_FREE;
  return 0;
}

export function vs_settimeout(fd: i32, ns: i64): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("settimeout", fd, EBADF);
  s.recvTimeout = ns < 0 ? -1 : ns;
  s.sendTimeout = s.recvTimeout;
  return 0;
}

export function vs_setsockopt(fd: i32, option: i32, value: i64): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("setsockopt", fd, EBADF);
  const errno = setOption(s, option, value);
  return errno == 0 ? 0 : fail("setsockopt", fd, errno);
}

export function vs_getsockopt(fd: i32, option: i32, valueOut: usize): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("getsockopt", fd, EBADF);
  if (!outputOk(valueOut, 8)) return fail("getsockopt", fd, EFAULT);
  const errno = getOption(s, option, valueOut);
  return errno == 0 ? 0 : fail("getsockopt", fd, errno);
}

export function vs_getsockname(fd: i32, addrOut: usize): i32 {
  const s = socketForFd(fd);
  if (s == null) return fail("getsockname", fd, EBADF);
  if (!outputOk(addrOut, ADDR_SIZE)) return fail("getsockname", fd, EFAULT);
  if (s.state == SOCK_CONNECTED) writeAddress(addrOut, <u32>localCid(), s.localPort);
  else if (s.bound) writeAddress(addrOut, s.boundCid, s.localPort);
  else writeAddress(addrOut, VMADDR_CID_ANY, VMADDR_PORT_ANY);
  return 0;
}

export function vs_getpeername(fd: i32, addrOut: usize): i32 {
  const c = connectedConnection(fd);
  if (c == null) return fail("getpeername", fd, lookupError);
  if (!outputOk(addrOut, ADDR_SIZE)) return fail("getpeername", fd, EFAULT);
  writeAddress(addrOut, <u32>c.peerCid, c.peerPort);
  return 0;
}

// fds: `count` entries of { i32 fd; i16 events; i16 revents }. Returns how many have revents != 0.
// POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not (like Linux).
export function vs_poll(fds: usize, count: i32, timeoutNs: i64): i32 {
  if (count < 0 || count > MAX_SOCKETS * 4) return fail("poll", -1, EINVAL);
  if (!inMemory(fds, <u64>count * POLLFD_SIZE)) return fail("poll", -1, EFAULT);
  const deadline = deadlineAfter(timeoutNs);
  while (true) {
    vsockPoll();
    let ready: i32 = 0;
    for (let i = 0; i < count; i++) {
      const entry = fds + <usize>i * POLLFD_SIZE;
      const wanted = <i32>load<u16>(entry + 4) | POLLERR | POLLHUP | POLLNVAL;
      const revents = socketEvents(load<i32>(entry)) & wanted;
      store<u16>(entry + 6, <u16>revents);
      if (revents != 0) ready++;
    }
    if (ready > 0 || timeoutNs == 0 || clockNs() >= deadline) return ready;
  }
}

export function vs_local_cid(): u64 {
  return localCid();
}

// C callers' buffers live outside linear memory: they copy through this one.
export function vs_staging(): usize {
  if (staging == 0) staging = heap.alloc(<usize>STAGING_SIZE);
  return staging;
}

export function vs_staging_size(): u32 {
  return STAGING_SIZE;
}
