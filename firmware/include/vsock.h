/* vsock sockets for C applications (`make image APP=path/to/app.c`; the app defines app_main()).
 *
 * The firmware calls fw_init() (device up, stack ready), then app_main() instead of running the
 * default services. Every function returns a value >= 0 on success and a negative Linux errno on
 * failure (-EAGAIN, -ECONNRESET, ...). Blocking calls keep the device serviced while they wait.
 * Only the host (VSOCK_CID_HOST) is reachable; the firmware's own cid is vsock_local_cid().
 * Implemented by firmware/vsock-api.c over the wasm exports vs_* (assembly/socket-api/api.ts). */
#ifndef VSOCK_H
#define VSOCK_H

#include <stddef.h>
#include <stdint.h>

#define VSOCK_CID_ANY 0xffffffffu
#define VSOCK_PORT_ANY 0xffffffffu
#define VSOCK_CID_HOST 2u

/* errno values (Linux) */
#define VSOCK_EPERM 1
#define VSOCK_EINTR 4
#define VSOCK_EBADF 9
#define VSOCK_EAGAIN 11
#define VSOCK_ENOMEM 12
#define VSOCK_EINVAL 22
#define VSOCK_EMFILE 24
#define VSOCK_EPIPE 32
#define VSOCK_EPROTO 71
#define VSOCK_ENOTSOCK 88
#define VSOCK_EMSGSIZE 90
#define VSOCK_ESOCKTNOSUPPORT 94
#define VSOCK_EOPNOTSUPP 95
#define VSOCK_EADDRINUSE 98
#define VSOCK_EADDRNOTAVAIL 99
#define VSOCK_ENETDOWN 100
#define VSOCK_ECONNABORTED 103
#define VSOCK_ECONNRESET 104
#define VSOCK_ENOBUFS 105
#define VSOCK_EISCONN 106
#define VSOCK_ENOTCONN 107
#define VSOCK_ETIMEDOUT 110
#define VSOCK_ECONNREFUSED 111
#define VSOCK_EALREADY 114
#define VSOCK_EINPROGRESS 115

/* vsock_socket type (Linux values; no argument or 0 means STREAM) */
#define VSOCK_SOCK_STREAM 1
#define VSOCK_SOCK_SEQPACKET 5

/* vsock_shutdown how */
#define VSOCK_SHUT_RD 0
#define VSOCK_SHUT_WR 1
#define VSOCK_SHUT_RDWR 2

/* vsock_send / vsock_recv flags */
#define VSOCK_MSG_PEEK 0x2
#define VSOCK_MSG_DONTWAIT 0x40
#define VSOCK_MSG_TRUNC 0x20 /* SEQPACKET recv: return the message's real length; recvmsg: it was cut */
#define VSOCK_MSG_EOR 0x80   /* SEQPACKET send: the message ends a record; recvmsg: it did */

/* vsock_poll events */
#define VSOCK_POLLIN 0x1
#define VSOCK_POLLOUT 0x4
#define VSOCK_POLLERR 0x8
#define VSOCK_POLLHUP 0x10
#define VSOCK_POLLNVAL 0x20

/* vsock_setsockopt / vsock_getsockopt options (64-bit values; times in nanoseconds,
 * timeouts: < 0 wait forever, 0 never wait, > 0 wait that long) */
#define VSOCK_SO_BUFFER_SIZE 0     /* receive buffer advertised to the peer, [MIN, MAX] */
#define VSOCK_SO_BUFFER_MIN_SIZE 1
#define VSOCK_SO_BUFFER_MAX_SIZE 2 /* at most 262144 (preallocated) */
#define VSOCK_SO_TYPE 3            /* get only: VSOCK_SOCK_STREAM or VSOCK_SOCK_SEQPACKET */
#define VSOCK_SO_ERROR 4           /* get only: pending error (positive errno), cleared */
#define VSOCK_SO_CONNECT_TIMEOUT 6 /* default 2 s */
#define VSOCK_SO_RCVLOWAT 18       /* a blocking recv waits for min(this, len) bytes; POLLIN needs this many */
#define VSOCK_SO_RCVTIMEO 20       /* recv and accept */
#define VSOCK_SO_SNDTIMEO 21       /* send (and bounds connect) */

struct vsock_pollfd {
  int32_t fd;
  int16_t events;
  int16_t revents;
};

/* vsock_socket() or vsock_socket(VSOCK_SOCK_STREAM): a stream socket; vsock_socket(VSOCK_SOCK_SEQPACKET):
 * a message socket (-VSOCK_ESOCKTNOSUPPORT when the device did not offer VIRTIO_VSOCK_F_SEQPACKET).
 * SEQPACKET: each send is one message (at most 256 KiB; a larger-than-64 KiB one may be taken in
 * part by a non-blocking send: the next send must pass exactly the rest), each recv one message
 * (cut to len, the rest discarded: see vsock_recvmsg). README "Socket API" has the details. */
int vsock_socket_of_type(int type);
#define vsock_socket(...) vsock_socket_of_type(__VA_ARGS__ + 0)
int vsock_bind(int fd, uint32_t cid, uint32_t port);
int vsock_listen(int fd, int backlog);
/* cid/port may be NULL */
int vsock_accept(int fd, uint32_t *cid, uint32_t *port);
int vsock_connect(int fd, uint32_t cid, uint32_t port);
/* bytes sent / received; recv returns 0 at end of stream */
int vsock_send(int fd, const void *buf, size_t len, int flags);
int vsock_recv(int fd, void *buf, size_t len, int flags);
/* recv, and *msg_flags = VSOCK_MSG_TRUNC (the message was longer than len) | VSOCK_MSG_EOR */
int vsock_recvmsg(int fd, void *buf, size_t len, int flags, int *msg_flags);
int vsock_shutdown(int fd, int how);
int vsock_close(int fd);
/* timeout_ns: -1 blocking (default), 0 non-blocking, > 0 timeout for recv/accept/send */
int vsock_settimeout(int fd, int64_t timeout_ns);
int vsock_setsockopt(int fd, int option, int64_t value);
int vsock_getsockopt(int fd, int option, int64_t *value);
int vsock_getsockname(int fd, uint32_t *cid, uint32_t *port);
int vsock_getpeername(int fd, uint32_t *cid, uint32_t *port);
/* number of entries with revents != 0; timeout_ns as above (-1 forever) */
int vsock_poll(struct vsock_pollfd *fds, int count, int64_t timeout_ns);
uint64_t vsock_local_cid(void);
/* One round of device work (received packets, credit, timers). Blocking calls do this themselves;
 * an app that busy-waits on something else should call it. */
void vsock_service(void);
/* Monotonic time in nanoseconds (the firmware's clock). */
uint64_t vsock_clock_ns(void);
/* One info line on the debug console: "[s.micros] info app: <message>" (ASCII, no newline needed). */
void vsock_log(const char *message);

#endif
