// The few system calls Node cannot make by itself, for the vhost-user backend: Unix sockets that
// carry file descriptors (SCM_RIGHTS), shared mappings of guest RAM exposed as external
// ArrayBuffers (unmapped explicitly), eventfds, and watching an fd on Node's own libuv loop.
// Errors come back as negative errno values (JS decides what is fatal); only misuse throws.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define MAX_FDS 16

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, NULL, "addon: N-API call failed: " #call); \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "addon: missing arguments");
    return -1;
  }
  return 0;
}

static int get_int(napi_env env, napi_value value, int64_t *out) {
  if (napi_get_value_int64(env, value, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "addon: expected a number");
    return -1;
  }
  return 0;
}

static int get_path(napi_env env, napi_value value, struct sockaddr_un *address) {
  size_t length = 0;
  memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, value, address->sun_path, sizeof address->sun_path, &length) != napi_ok ||
      length >= sizeof address->sun_path - 1) {
    napi_throw_type_error(env, NULL, "addon: expected a socket path shorter than 107 bytes");
    return -1;
  }
  return 0;
}

static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)data, &buffer, &offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "addon: expected a Uint8Array");
    return -1;
  }
  return 0;
}

// An optional trailing argument: the Unix socket type, 1 (SOCK_STREAM, the default) or 5
// (SOCK_SEQPACKET: each send one message, the SEQPACKET way in of the backend).
static int get_socket_type(napi_env env, napi_callback_info info, size_t index, int *type) {
  napi_value argv[4];
  size_t argc = 4;
  int64_t value = SOCK_STREAM;
  *type = SOCK_STREAM;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc <= index) return 0;
  if (get_int(env, argv[index], &value)) return -1;
  if (value != SOCK_STREAM && value != SOCK_SEQPACKET) {
    napi_throw_type_error(env, NULL, "addon: socket type must be 1 (stream) or 5 (seqpacket)");
    return -1;
  }
  *type = (int)value;
  return 0;
}

// A SEQPACKET message must fit the sender's buffer whole (Linux refuses a larger one with EMSGSIZE;
// the default, wmem_default, is ~208 KiB): ask for 1 MiB (the kernel caps it at twice wmem_max,
// ~416 KiB by default), enough for the largest vsock message (256 KiB).
static void seqpacket_buffers(int fd) {
  int type = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_SEQPACKET) return;
  int bytes = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

// listenUnix(path, backlog[, type]) -> fd (non-blocking) | -errno
static napi_value listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un address;
  int64_t backlog;
  int type;
  if (get_args(env, info, 2, argv) || get_path(env, argv[0], &address) || get_int(env, argv[1], &backlog) ||
      get_socket_type(env, info, 2, &type))
    return NULL;
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return number(env, -errno);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || listen(fd, (int)backlog) < 0) {
    int error = errno;
    close(fd);
    return number(env, -error);
  }
  return number(env, fd);
}

// acceptUnix(fd) -> connected fd (blocking) | -errno (-EAGAIN: nobody waiting)
static napi_value accept_unix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &fd)) return NULL;
  int connection = accept4((int)fd, NULL, NULL, SOCK_CLOEXEC);
  if (connection >= 0) seqpacket_buffers(connection);
  return number(env, connection < 0 ? -errno : connection);
}

// connectUnix(path[, type]) -> connected fd (blocking) | -errno
static napi_value connect_unix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un address;
  int type;
  if (get_args(env, info, 1, argv) || get_path(env, argv[0], &address) || get_socket_type(env, info, 1, &type)) return NULL;
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return number(env, -errno);
  seqpacket_buffers(fd);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    int error = errno;
    close(fd);
    return number(env, -error);
  }
  return number(env, fd);
}

// recvExact(fd, bytes) -> { n, fds }: fills `bytes` completely unless the peer closes (n short,
// 0 at EOF) or fails (n = -errno). Every fd that arrives with these bytes is returned.
static napi_value recv_exact(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd;
  uint8_t *data;
  size_t length;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &length)) return NULL;
  int fds[MAX_FDS * 4];
  size_t fd_count = 0, done = 0;
  ssize_t status = 0;
  while (done < length) {
    union {
      char buffer[CMSG_SPACE(sizeof(int) * MAX_FDS)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {data + done, length - done};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    ssize_t n = recvmsg((int)fd, &message, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = -errno;
      break;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *incoming = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        if (fd_count < sizeof fds / sizeof fds[0]) fds[fd_count++] = incoming[i];
        else close(incoming[i]);
      }
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  napi_value result, fd_array;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "n", number(env, status < 0 ? (double)status : (double)done)));
  CHECK(napi_create_array_with_length(env, fd_count, &fd_array));
  for (size_t i = 0; i < fd_count; i++) CHECK(napi_set_element(env, fd_array, (uint32_t)i, number(env, fds[i])));
  CHECK(napi_set_named_property(env, result, "fds", fd_array));
  return result;
}

// sendWithFds(fd, bytes, fds[]) -> bytes sent | -errno (all of `bytes`, in one sendmsg when it fits)
static napi_value send_with_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t fd;
  uint8_t *data;
  size_t length;
  uint32_t fd_count = 0;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &length)) return NULL;
  CHECK(napi_get_array_length(env, argv[2], &fd_count));
  if (fd_count > MAX_FDS) {
    napi_throw_range_error(env, NULL, "addon: too many fds");
    return NULL;
  }
  union {
    char buffer[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  size_t done = 0;
  while (done < length || (length == 0 && done == 0)) {
    struct iovec iov = {data + done, length - done};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
    if (done == 0 && fd_count > 0) {
      message.msg_control = control.buffer;
      message.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
      struct cmsghdr *c = CMSG_FIRSTHDR(&message);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
      for (uint32_t i = 0; i < fd_count; i++) {
        napi_value element;
        int64_t value;
        CHECK(napi_get_element(env, argv[2], i, &element));
        if (get_int(env, element, &value)) return NULL;
        ((int *)CMSG_DATA(c))[i] = (int)value;
      }
    }
    ssize_t n = sendmsg((int)fd, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return number(env, -errno);
    done += (size_t)n;
    if (length == 0) break;
  }
  return number(env, (double)done);
}

// ---- shared mappings ----------------------------------------------------------------------
// Each mapping is an external ArrayBuffer. unmap() releases it at once and detaches the buffer
// (views then have length 0, so a stale access fails instead of touching freed memory); the GC
// finalizer only unmaps what was not released explicitly.
typedef struct Mapping {
  void *address;
  size_t length;
  int unmapped;
  struct Mapping *next;
} Mapping;

static Mapping *mappings = NULL;
static double mapped_bytes = 0;

static void forget_mapping(Mapping *m) {
  for (Mapping **p = &mappings; *p; p = &(*p)->next) {
    if (*p == m) {
      *p = m->next;
      return;
    }
  }
}

static void release_mapping(Mapping *m) {
  if (m->unmapped) return;
  munmap(m->address, m->length);
  m->unmapped = 1;
  mapped_bytes -= (double)m->length;
}

static void finalize_mapping(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  Mapping *m = hint;
  release_mapping(m);
  forget_mapping(m);
  free(m);
}

// mapShared(fd, offset, length) -> ArrayBuffer over MAP_SHARED memory (offset page-aligned) | -errno
static napi_value map_shared(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t fd, offset, length;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &fd) || get_int(env, argv[1], &offset) ||
      get_int(env, argv[2], &length))
    return NULL;
  if (length <= 0 || offset < 0 || (offset & (sysconf(_SC_PAGESIZE) - 1)) != 0) return number(env, -EINVAL);
  void *address = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, (off_t)offset);
  if (address == MAP_FAILED) return number(env, -errno);
  Mapping *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(address, (size_t)length);
    return number(env, -ENOMEM);
  }
  m->address = address;
  m->length = (size_t)length;
  m->next = mappings;
  mappings = m;
  mapped_bytes += (double)length;
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, address, (size_t)length, finalize_mapping, m, &buffer) != napi_ok) {
    release_mapping(m);
    forget_mapping(m);
    free(m);
    napi_throw_error(env, NULL, "addon: cannot wrap the mapping in an ArrayBuffer");
    return NULL;
  }
  return buffer;
}

// unmap(arrayBuffer) -> true when this call released it
static napi_value unmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  size_t length;
  if (get_args(env, info, 1, argv)) return NULL;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &data, &length));
  napi_value result;
  for (Mapping *m = mappings; m; m = m->next) {
    if (m->address == data && !m->unmapped) {
      release_mapping(m);
      CHECK(napi_detach_arraybuffer(env, argv[0]));
      napi_get_boolean(env, true, &result);
      return result;
    }
  }
  napi_get_boolean(env, false, &result);
  return result;
}

// mappedBytes() -> bytes currently mapped (tests check that replaced mappings are released)
static napi_value mapped_bytes_now(napi_env env, napi_callback_info info) {
  (void)info;
  return number(env, mapped_bytes);
}

// ---- fds ---------------------------------------------------------------------------------
// memfd(name, size) -> fd | -errno (guest RAM for the fake-QEMU tests)
static napi_value memfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[64];
  size_t name_length;
  int64_t size;
  if (get_args(env, info, 2, argv) || get_int(env, argv[1], &size)) return NULL;
  CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_length));
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return number(env, -errno);
  if (ftruncate(fd, (off_t)size) < 0) {
    int error = errno;
    close(fd);
    return number(env, -error);
  }
  return number(env, fd);
}

// eventfdCreate() -> non-blocking eventfd | -errno
static napi_value eventfd_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return number(env, fd < 0 ? -errno : fd);
}

// eventfdRead(fd) -> counter (> 0) | -errno (-EAGAIN: nothing signalled)
static napi_value eventfd_read_value(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  uint64_t value = 0;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &fd)) return NULL;
  ssize_t n = read((int)fd, &value, sizeof value);
  if (n != sizeof value) return number(env, n < 0 ? -errno : -EIO);
  return number(env, (double)value);
}

// eventfdWrite(fd, value) -> 0 | -errno
static napi_value eventfd_write_value(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd, value;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd) || get_int(env, argv[1], &value)) return NULL;
  uint64_t v = (uint64_t)value;
  ssize_t n = write((int)fd, &v, sizeof v);
  return number(env, n == sizeof v ? 0 : n < 0 ? -errno : -EIO);
}

// close(fd) -> 0 | -errno
static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &fd)) return NULL;
  return number(env, close((int)fd) < 0 ? -errno : 0);
}

// ---- SEQPACKET Unix sockets: one call, one message, never blocking ----------------------------
// recvMessage(fd, bytes) -> the message's full length (more than bytes.length: it was cut to
// fit; the rest is gone), 0 at EOF, or -errno (-EAGAIN: nothing waiting).
static napi_value recv_message(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd;
  uint8_t *data;
  size_t length;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &length)) return NULL;
  ssize_t n = recv((int)fd, data, length, MSG_DONTWAIT | MSG_TRUNC);
  return number(env, n < 0 ? -errno : (double)n);
}

// sendMessage(fd, bytes) -> bytes.length | -errno (-EAGAIN: no room now; -EMSGSIZE: over the socket's limit)
static napi_value send_message(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd;
  uint8_t *data;
  size_t length;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &length)) return NULL;
  ssize_t n = send((int)fd, data, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  return number(env, n < 0 ? -errno : (double)n);
}

// shutdownFd(fd, how) -> 0 | -errno
static napi_value shutdown_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd, how;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd) || get_int(env, argv[1], &how)) return NULL;
  return number(env, shutdown((int)fd, (int)how) < 0 ? -errno : 0);
}

// ---- watching fds on Node's loop ------------------------------------------------------------
// watch(fd, callback[, events]) -> handle; the callback runs (with the poll status and the events
// that fired: 1 readable, 2 writable) whenever fd is ready for `events` (default 1).
// watchEvents(handle, events) changes what it waits for (libuv allows one poll handle per fd).
// unwatch(handle) stops it; the fd must be unwatched before it is closed.
typedef struct Watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int active;
} Watch;

static void watch_closed(uv_handle_t *handle) {
  free(handle->data);
}

static void watch_fired(uv_poll_t *poll, int status, int events) {
  Watch *w = poll->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, arguments[2], result;
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && callback && napi_get_global(env, &receiver) == napi_ok) {
    arguments[0] = number(env, status);
    arguments[1] = number(env, ((events & UV_READABLE) ? 1 : 0) | ((events & UV_WRITABLE) ? 2 : 0));
    // A throwing callback becomes an uncaught exception (the JS side catches its own errors).
    napi_make_callback(env, w->context, receiver, callback, 2, arguments, &result);
  }
  napi_close_handle_scope(env, scope);
}

static void stop_watch(Watch *w) {
  if (!w->active) return;
  w->active = 0;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->context);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static napi_value watch(napi_env env, napi_callback_info info) {
  napi_value argv[2], name, handle;
  int64_t fd;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &fd)) return NULL;
  struct uv_loop_s *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Watch *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "addon: out of memory");
    return NULL;
  }
  w->env = env;
  w->poll.data = w;
  int error = uv_poll_init(loop, &w->poll, (int)fd);
  if (error) {
    free(w);
    napi_throw_error(env, NULL, uv_strerror(error));
    return NULL;
  }
  CHECK(napi_create_reference(env, argv[1], 1, &w->callback));
  CHECK(napi_create_string_utf8(env, "vhost-user-watch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &w->context));
  w->active = 1;
  int wanted = UV_READABLE;
  napi_value all[3];
  size_t argc = 3;
  int64_t events = 1;
  if (napi_get_cb_info(env, info, &argc, all, NULL, NULL) == napi_ok && argc >= 3 && get_int(env, all[2], &events) == 0)
    wanted = ((events & 1) ? UV_READABLE : 0) | ((events & 2) ? UV_WRITABLE : 0);
  error = uv_poll_start(&w->poll, wanted, watch_fired);
  if (error) {
    stop_watch(w);
    napi_throw_error(env, NULL, uv_strerror(error));
    return NULL;
  }
  CHECK(napi_create_external(env, w, NULL, NULL, &handle));
  return handle;
}

static napi_value watch_events(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Watch *w;
  int64_t events;
  if (get_args(env, info, 2, argv) || get_int(env, argv[1], &events)) return NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&w));
  if (!w->active) return number(env, -EBADF);
  int wanted = ((events & 1) ? UV_READABLE : 0) | ((events & 2) ? UV_WRITABLE : 0);
  int error = wanted ? uv_poll_start(&w->poll, wanted, watch_fired) : uv_poll_stop(&w->poll);
  return number(env, error);
}

static napi_value unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Watch *w;
  if (get_args(env, info, 1, argv)) return NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&w));
  stop_watch(w);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptUnix", NULL, accept_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectUnix", NULL, connect_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvExact", NULL, recv_exact, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendWithFds", NULL, send_with_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapShared", NULL, map_shared, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mappedBytes", NULL, mapped_bytes_now, NULL, NULL, NULL, napi_enumerable, NULL},
      {"memfd", NULL, memfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdCreate", NULL, eventfd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdRead", NULL, eventfd_read_value, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdWrite", NULL, eventfd_write_value, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchEvents", NULL, watch_events, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvMessage", NULL, recv_message, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendMessage", NULL, send_message, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shutdownFd", NULL, shutdown_fd, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
