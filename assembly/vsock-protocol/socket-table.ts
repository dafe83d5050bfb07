// Sockets: what a file descriptor refers to. A socket is unbound, bound, listening, or holds one
// connection. Connections and sockets are separate because a connection outlives its socket
// (after close it still owes the peer a SHUTDOWN/RST handshake) and exists before one (while it
// waits in a listener's accept queue).
import { Connection, RECEIVE_BUFFER_CAPACITY } from "./connection";
import { VIRTIO_VSOCK_TYPE_STREAM } from "../wire/vsock-header";

export const MAX_SOCKETS: i32 = MAX_CONNECTIONS + 16; // every connection plus listeners and spare
export const FD_BASE: i32 = 3; // fds start at 3, like a process's first socket after stdio

export const SOCK_FREE: i32 = 0;
export const SOCK_OPEN: i32 = 1; // created, maybe bound
export const SOCK_LISTENING: i32 = 2;
export const SOCK_CONNECTED: i32 = 3; // holds a connection (connecting, established or closed)

export const CONNECT_TIMEOUT_DEFAULT_NS: i64 = 2000000000; // Linux: 2 s
export const BUFFER_MIN_DEFAULT: u32 = 128; // Linux VSOCK_DEFAULT_BUFFER_MIN_SIZE
export const TIMEOUT_BLOCK: i64 = -1; // wait forever
export const TIMEOUT_NONE: i64 = 0; // never wait (EAGAIN)

export class Socket {
  index: i32;
  state: i32 = SOCK_FREE;
  type: u32 = VIRTIO_VSOCK_TYPE_STREAM; // the wire type of its connections (STREAM or SEQPACKET)
  bound: bool = false;
  ownsPort: bool = false; // bound by this socket (not inherited from a listener on accept)
  autoBound: bool = false; // the port is an ephemeral one connect() picked, not one bind() asked for
  boundCid: u32 = 0;
  localPort: u32 = 0;
  backlog: i32 = 0;
  pending: i32 = 0; // connections in this listener's accept queue
  conn: Connection | null = null;
  recvTimeout: i64 = TIMEOUT_BLOCK;
  sendTimeout: i64 = TIMEOUT_BLOCK;
  connectTimeout: i64 = CONNECT_TIMEOUT_DEFAULT_NS;
  bufferSize: u32 = RECEIVE_BUFFER_CAPACITY;
  bufferMin: u32 = BUFFER_MIN_DEFAULT;
  bufferMax: u32 = RECEIVE_BUFFER_CAPACITY;
  rcvLowat: u32 = 1; // SO_RCVLOWAT

  constructor(index: i32) {
    this.index = index;
  }

  fd(): i32 {
    return this.index + FD_BASE;
  }

  open(): void {
    this.state = SOCK_OPEN;
    this.type = VIRTIO_VSOCK_TYPE_STREAM;
    this.bound = false;
    this.ownsPort = false;
    this.autoBound = false;
    this.boundCid = 0xffffffff;
    this.localPort = 0xffffffff;
    this.backlog = 0;
    this.pending = 0;
    this.conn = null;
    this.recvTimeout = TIMEOUT_BLOCK;
    this.sendTimeout = TIMEOUT_BLOCK;
    this.connectTimeout = CONNECT_TIMEOUT_DEFAULT_NS;
    this.bufferSize = RECEIVE_BUFFER_CAPACITY;
    this.bufferMin = BUFFER_MIN_DEFAULT;
    this.bufferMax = RECEIVE_BUFFER_CAPACITY;
    this.rcvLowat = 1;
  }
}

const sockets = new StaticArray<Socket>(MAX_SOCKETS);
let initialized = false;

export function socketTableInit(): void {
  if (initialized) return;
  initialized = true;
  for (let i = 0; i < MAX_SOCKETS; i++) unchecked((sockets[i] = new Socket(i)));
}

// @ts-ignore: decorator
@inline export function socketAt(index: i32): Socket {
  return unchecked(sockets[index]);
}

// The socket behind fd, or null when fd is not an open socket.
export function socketForFd(fd: i32): Socket | null {
  const index = fd - FD_BASE;
  if (!initialized || index < 0 || index >= MAX_SOCKETS) return null;
  const s = unchecked(sockets[index]);
  return s.state == SOCK_FREE ? null : s;
}

export function allocateSocket(): Socket | null {
  if (!initialized) return null;
  for (let i = 0; i < MAX_SOCKETS; i++) {
    const s = unchecked(sockets[i]);
    if (s.state == SOCK_FREE) {
      s.open();
      return s;
    }
  }
  return null;
}

export function portHeldBySocket(port: u32): bool {
  for (let i = 0; i < MAX_SOCKETS; i++) {
    const s = unchecked(sockets[i]);
    if (s.state != SOCK_FREE && s.ownsPort && s.localPort == port) return true;
  }
  return false;
}

export function findListener(port: u32): Socket | null {
  for (let i = 0; i < MAX_SOCKETS; i++) {
    const s = unchecked(sockets[i]);
    if (s.state == SOCK_LISTENING && s.localPort == port) return s;
  }
  return null;
}
