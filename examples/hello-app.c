/* Example C application: an uppercase echo service on vsock port 2000.
 * Build: make image APP=examples/hello-app.c   Try (from the host): echo hello | ncat --vsock 33 2000
 * Serves up to MAX_CLIENTS connections at once with vsock_poll; each reply is the client's bytes
 * with a-z turned into A-Z. A client's connection closes after it shuts down its sending side. */
#include <stdint.h>

#include "vsock.h"

#define PORT 2000
#define MAX_CLIENTS 8
#define CHUNK 4096

static char buffer[CHUNK];

static void uppercase(char *p, int n) {
  for (int i = 0; i < n; i++)
    if (p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 'a' + 'A');
}

int app_main(void) {
  int listener = vsock_socket();
  if (listener < 0 || vsock_bind(listener, VSOCK_CID_ANY, PORT) < 0 || vsock_listen(listener, MAX_CLIENTS) < 0)
    return 1;
  vsock_settimeout(listener, 0);
  vsock_log("hello-app: uppercase echo listening port=2000");

  struct vsock_pollfd fds[1 + MAX_CLIENTS];
  int clients[MAX_CLIENTS];
  for (int i = 0; i < MAX_CLIENTS; i++) clients[i] = -1;

  for (;;) {
    int n = 0;
    fds[n].fd = listener;
    fds[n].events = VSOCK_POLLIN;
    n++;
    for (int i = 0; i < MAX_CLIENTS; i++) {
      if (clients[i] < 0) continue;
      fds[n].fd = clients[i];
      fds[n].events = VSOCK_POLLIN;
      n++;
    }
    if (vsock_poll(fds, n, -1) <= 0) continue;

    if (fds[0].revents & VSOCK_POLLIN) {
      for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i] >= 0) continue;
        int fd = vsock_accept(listener, 0, 0);
        if (fd < 0) break;
        clients[i] = fd; /* blocking: a reply waits for room rather than getting lost */
      }
    }
    for (int k = 1; k < n; k++) {
      if (!(fds[k].revents & (VSOCK_POLLIN | VSOCK_POLLHUP | VSOCK_POLLERR))) continue;
      int fd = fds[k].fd;
      int got = vsock_recv(fd, buffer, sizeof buffer, VSOCK_MSG_DONTWAIT);
      if (got == -VSOCK_EAGAIN) continue;
      if (got > 0) {
        uppercase(buffer, got);
        if (vsock_send(fd, buffer, (size_t)got, 0) == got) continue;
      }
      vsock_close(fd); /* EOF, error, or a failed send */
      for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] == fd) clients[i] = -1;
    }
  }
}
