/* vsock.h over the wasm's socket exports (assembly/socket-api/api.ts). C buffers lie outside the
 * wasm's linear memory, so data passes through the staging buffer the wasm exports
 * (vs_staging/vs_staging_size), one staging-sized chunk per call. Linked only into APP= builds. */
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "debugcon.h"
#include "runtime.h"
#include "vsock.h"

static uint32_t staging_address; /* wasm address */
static uint32_t staging_size;

static uint8_t *staging(void) {
  if (staging_size == 0) {
    staging_address = Z_fwZ_vs_staging(&fw_instance);
    staging_size = Z_fwZ_vs_staging_size(&fw_instance);
  }
  return fw_memory() + staging_address;
}

static void copy_bytes(void *dst, const void *src, size_t n) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  while (n--) *d++ = *s++;
}

static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int vsock_socket_of_type(int type) { return (int32_t)Z_fwZ_vs_socket(&fw_instance, (u32)type); }

int vsock_bind(int fd, uint32_t cid, uint32_t port) {
  return (int32_t)Z_fwZ_vs_bind(&fw_instance, (u32)fd, cid, port);
}

int vsock_listen(int fd, int backlog) { return (int32_t)Z_fwZ_vs_listen(&fw_instance, (u32)fd, (u32)backlog); }

/* The {u32 cid; u32 port} the wasm writes into staging. */
static void read_address(const uint8_t *at, uint32_t *cid, uint32_t *port) {
  if (cid) *cid = load_u32(at);
  if (port) *port = load_u32(at + 4);
}

int vsock_accept(int fd, uint32_t *cid, uint32_t *port) {
  uint8_t *s = staging();
  int r = (int32_t)Z_fwZ_vs_accept(&fw_instance, (u32)fd, staging_address);
  if (r >= 0) read_address(s, cid, port);
  return r;
}

int vsock_connect(int fd, uint32_t cid, uint32_t port) {
  return (int32_t)Z_fwZ_vs_connect(&fw_instance, (u32)fd, cid, port);
}

int vsock_send(int fd, const void *buf, size_t len, int flags) {
  uint8_t *s = staging();
  const uint8_t *from = buf;
  size_t total = 0;
  if (len > 0x7fffffff) len = 0x7fffffff;
  if (len > staging_size) {
    /* A SEQPACKET message must reach the wasm in one call; staging holds the largest one. */
    int64_t type = 0;
    if (vsock_getsockopt(fd, VSOCK_SO_TYPE, &type) == 0 && type == VSOCK_SOCK_SEQPACKET) return -VSOCK_EMSGSIZE;
  }
  while (total < len) {
    uint32_t chunk = len - total < staging_size ? (uint32_t)(len - total) : staging_size;
    copy_bytes(s, from + total, chunk);
    int r = (int32_t)Z_fwZ_vs_send(&fw_instance, (u32)fd, staging_address, chunk, (u32)flags);
    if (r < 0) return total > 0 ? (int)total : r;
    total += (uint32_t)r;
    if ((uint32_t)r < chunk) break; /* non-blocking or timed out: report what went */
  }
  return (int)total;
}

int vsock_recvmsg(int fd, void *buf, size_t len, int flags, int *msg_flags) {
  uint8_t *s = staging();
  uint32_t chunk = len < staging_size ? (uint32_t)len : staging_size;
  /* the flags word goes right after the data in staging (staging_size is a multiple of 4) */
  uint32_t flags_address = msg_flags ? staging_address + staging_size - 4 : 0;
  if (msg_flags && chunk > staging_size - 4) chunk = staging_size - 4;
  int r = msg_flags ? (int32_t)Z_fwZ_vs_recvmsg(&fw_instance, (u32)fd, staging_address, chunk, (u32)flags, flags_address)
                    : (int32_t)Z_fwZ_vs_recv(&fw_instance, (u32)fd, staging_address, chunk, (u32)flags);
  /* with MSG_TRUNC, r is the message's real length: only chunk bytes were copied */
  if (r > 0) copy_bytes(buf, s, (uint32_t)r < chunk ? (size_t)r : chunk);
  if (msg_flags) *msg_flags = r >= 0 ? (int)load_u32(s + staging_size - 4) : 0;
  return r;
}

int vsock_recv(int fd, void *buf, size_t len, int flags) { return vsock_recvmsg(fd, buf, len, flags, NULL); }

int vsock_shutdown(int fd, int how) { return (int32_t)Z_fwZ_vs_shutdown(&fw_instance, (u32)fd, (u32)how); }

int vsock_close(int fd) { return (int32_t)Z_fwZ_vs_close(&fw_instance, (u32)fd); }

int vsock_settimeout(int fd, int64_t timeout_ns) {
  return (int32_t)Z_fwZ_vs_settimeout(&fw_instance, (u32)fd, (u64)timeout_ns);
}

int vsock_setsockopt(int fd, int option, int64_t value) {
  return (int32_t)Z_fwZ_vs_setsockopt(&fw_instance, (u32)fd, (u32)option, (u64)value);
}

int vsock_getsockopt(int fd, int option, int64_t *value) {
  uint8_t *s = staging();
  int r = (int32_t)Z_fwZ_vs_getsockopt(&fw_instance, (u32)fd, (u32)option, staging_address);
  if (r == 0 && value) {
    uint64_t v = (uint64_t)load_u32(s) | (uint64_t)load_u32(s + 4) << 32;
    *value = (int64_t)v;
  }
  return r;
}

int vsock_getsockname(int fd, uint32_t *cid, uint32_t *port) {
  uint8_t *s = staging();
  int r = (int32_t)Z_fwZ_vs_getsockname(&fw_instance, (u32)fd, staging_address);
  if (r == 0) read_address(s, cid, port);
  return r;
}

int vsock_getpeername(int fd, uint32_t *cid, uint32_t *port) {
  uint8_t *s = staging();
  int r = (int32_t)Z_fwZ_vs_getpeername(&fw_instance, (u32)fd, staging_address);
  if (r == 0) read_address(s, cid, port);
  return r;
}

int vsock_poll(struct vsock_pollfd *fds, int count, int64_t timeout_ns) {
  uint8_t *s = staging();
  if (count < 0 || (uint32_t)count * sizeof(struct vsock_pollfd) > staging_size) return -VSOCK_EINVAL;
  /* struct vsock_pollfd has the wasm's layout (i32, i16, i16; little-endian) */
  copy_bytes(s, fds, (size_t)count * sizeof(struct vsock_pollfd));
  int r = (int32_t)Z_fwZ_vs_poll(&fw_instance, staging_address, (u32)count, (u64)timeout_ns);
  if (r >= 0) copy_bytes(fds, s, (size_t)count * sizeof(struct vsock_pollfd));
  return r;
}

uint64_t vsock_local_cid(void) { return Z_fwZ_vs_local_cid(&fw_instance); }

void vsock_service(void) { Z_fwZ_fw_poll(&fw_instance); }

uint64_t vsock_clock_ns(void) { return clock_ns(); }

void vsock_log(const char *message) {
  char line[200];
  size_t n = 0;
  /* printable ASCII only, so an app's message cannot fake or tear log lines */
  while (message[n] && n < sizeof line - 1) {
    char c = message[n];
    line[n++] = (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  line[n++] = '\n';
  debugcon_line_start("info", "app");
  debugcon_write(line, n);
}
