// Socket options (vs_setsockopt / vs_getsockopt; numbers in api-constants.ts). Buffer sizes
// follow Linux's vsock_update_buffer_size; timeouts are nanoseconds (< 0 forever, 0 never wait).
import {
  SO_ERROR,
  SO_RCVLOWAT,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  SO_TYPE,
  SOCK_SEQPACKET,
  SOCK_STREAM,
  SO_VM_SOCKETS_BUFFER_MAX_SIZE,
  SO_VM_SOCKETS_BUFFER_MIN_SIZE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  SO_VM_SOCKETS_CONNECT_TIMEOUT,
} from "./api-constants";
import {
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  OWE_CREDIT_REPLY,
  OWE_CREDIT_UPDATE,
  RECEIVE_BUFFER_CAPACITY,
} from "../vsock-protocol/connection";
import { EINVAL, EOPNOTSUPP } from "../vsock-protocol/errors";
import { Socket } from "../vsock-protocol/socket-table";
import { VIRTIO_VSOCK_TYPE_SEQPACKET } from "../wire/vsock-header";

// Linux vsock_update_buffer_size: clamp to [min, max]; a live connection tells the peer. A lower
// size never revokes credit already granted: the advertised window shrinks as it drains (credit.ts).
function applyBufferSize(s: Socket, size: u64): void {
  let value = size > <u64>s.bufferMax ? s.bufferMax : <u32>size;
  if (value < s.bufferMin) value = s.bufferMin;
  s.bufferSize = value;
  const c = s.conn;
  if (c != null && c.state == CONN_ESTABLISHED && c.bufAlloc != value) {
    c.bufAlloc = value;
    c.owed |= OWE_CREDIT_REPLY;
  } else if (c != null && c.state == CONN_CONNECTING) {
    c.bufAlloc = value;
  }
}

// 0 or the errno (positive).
export function setOption(s: Socket, option: i32, value: i64): i32 {
  if (option == SO_VM_SOCKETS_BUFFER_SIZE) {
    if (value < 0) return EINVAL;
    applyBufferSize(s, <u64>value);
  } else if (option == SO_VM_SOCKETS_BUFFER_MIN_SIZE || option == SO_VM_SOCKETS_BUFFER_MAX_SIZE) {
    // The receive buffer is preallocated: no size above its capacity.
    if (value < 0 || value > <i64>RECEIVE_BUFFER_CAPACITY) return EINVAL;
    if (option == SO_VM_SOCKETS_BUFFER_MIN_SIZE) s.bufferMin = <u32>value;
    else s.bufferMax = <u32>value;
    applyBufferSize(s, <u64>s.bufferSize);
  } else if (option == SO_VM_SOCKETS_CONNECT_TIMEOUT) {
    if (value <= 0) return EINVAL;
    s.connectTimeout = value;
  } else if (option == SO_RCVLOWAT) {
    // Linux vsock_set_rcvlowat: no more than the buffer holds, 0 means 1. A reader now waiting
    // for more than is buffered needs the peer to send: unreported reads go out as credit at once
    // (virtio_transport_notify_set_rcvlowat), or a sender held by an old window never wakes it.
    if (value < 0 || value > <i64>s.bufferSize) return EINVAL;
    s.rcvLowat = value == 0 ? 1 : <u32>value;
    const c = s.conn;
    if (c != null && c.state == CONN_ESTABLISHED && c.rx.count < s.rcvLowat && c.fwdCnt != c.lastFwdCntSent) {
      c.owed |= OWE_CREDIT_UPDATE;
    }
  } else if (option == SO_RCVTIMEO) {
    s.recvTimeout = value < 0 ? -1 : value;
  } else if (option == SO_SNDTIMEO) {
    s.sendTimeout = value < 0 ? -1 : value;
  } else {
    return EOPNOTSUPP;
  }
  return 0;
}

// Writes the value (i64) at valueOut; 0 or the errno (positive).
export function getOption(s: Socket, option: i32, valueOut: usize): i32 {
  let value: i64 = 0;
  if (option == SO_VM_SOCKETS_BUFFER_SIZE) value = s.bufferSize;
  else if (option == SO_VM_SOCKETS_BUFFER_MIN_SIZE) value = s.bufferMin;
  else if (option == SO_VM_SOCKETS_BUFFER_MAX_SIZE) value = s.bufferMax;
  else if (option == SO_VM_SOCKETS_CONNECT_TIMEOUT) value = s.connectTimeout;
  else if (option == SO_RCVTIMEO) value = s.recvTimeout;
  else if (option == SO_SNDTIMEO) value = s.sendTimeout;
  else if (option == SO_RCVLOWAT) value = s.rcvLowat;
  else if (option == SO_TYPE) value = s.type == VIRTIO_VSOCK_TYPE_SEQPACKET ? SOCK_SEQPACKET : SOCK_STREAM;
  else if (option == SO_ERROR) {
    const c = s.conn;
    if (c != null) {
      value = c.error;
      c.error = 0;
    }
  } else return EOPNOTSUPP;
  if (valueOut != 0) store<i64>(valueOut, value);
  return 0;
}
