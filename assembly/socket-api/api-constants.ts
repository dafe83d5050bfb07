// Numbers of the socket API (assembly/socket-api/api.ts, firmware/include/vsock.h mirrors them).

// vs_socket `type` (Linux values). 0 means SOCK_STREAM, so callers written before SEQPACKET work.
export const SOCK_STREAM: i32 = 1;
export const SOCK_SEQPACKET: i32 = 5;

// vs_shutdown `how` (POSIX).
export const SHUT_RD: i32 = 0;
export const SHUT_WR: i32 = 1;
export const SHUT_RDWR: i32 = 2;

// vs_send/vs_recv flags (Linux values).
export const MSG_PEEK: i32 = 0x2; // recv: copy without consuming
export const MSG_DONTWAIT: i32 = 0x40; // this call only: do not block
// SEQPACKET. recv with MSG_TRUNC returns the message's real length even when the buffer took less
// (Linux recv(2)); vs_recvmsg reports MSG_TRUNC (cut short) and MSG_EOR (it ended a record) in its
// flags output. send with MSG_EOR marks the message's end as a record's (VIRTIO_VSOCK_SEQ_EOR).
export const MSG_TRUNC: i32 = 0x20;
export const MSG_EOR: i32 = 0x80;

// vs_poll events (Linux values). POLLNVAL marks an fd that is not an open socket.
export const POLLIN: i32 = 0x1;
export const POLLOUT: i32 = 0x4;
export const POLLERR: i32 = 0x8;
export const POLLHUP: i32 = 0x10;
export const POLLNVAL: i32 = 0x20;
export const POLLFD_SIZE: usize = 8; // struct { i32 fd; i16 events; i16 revents; } like struct pollfd

// vs_setsockopt/vs_getsockopt option numbers. Values are 64-bit.
// The AF_VSOCK ones keep Linux's numbers (level AF_VSOCK); the SOL_SOCKET-style ones too.
export const SO_VM_SOCKETS_BUFFER_SIZE: i32 = 0; // receive buffer (buf_alloc) in bytes, clamped to [MIN, MAX]
export const SO_VM_SOCKETS_BUFFER_MIN_SIZE: i32 = 1;
export const SO_VM_SOCKETS_BUFFER_MAX_SIZE: i32 = 2; // at most the preallocated 256 KiB
export const SO_TYPE: i32 = 3; // get only: SOCK_STREAM or SOCK_SEQPACKET (Linux SOL_SOCKET's number)
export const SO_ERROR: i32 = 4; // get only: pending error (positive errno), then cleared
export const SO_RCVLOWAT: i32 = 18; // bytes a read waits for and poll's POLLIN needs, 1..buffer size (Linux's)
export const SO_VM_SOCKETS_CONNECT_TIMEOUT: i32 = 6; // nanoseconds (Linux takes a timeval)
export const SO_RCVTIMEO: i32 = 20; // ns for recv/accept: < 0 wait forever, 0 never wait, > 0 timeout
export const SO_SNDTIMEO: i32 = 21; // ns for send (and the connect wait): same encoding

export const ADDR_SIZE: usize = 8; // struct { u32 cid; u32 port; } written by accept/getsockname/getpeername
