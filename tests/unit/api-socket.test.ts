// The exported socket API: errors, timeouts, poll, names, options (assembly/socket-api/api.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EAGAIN,
  EALREADY,
  EBADF,
  EINPROGRESS,
  EINVAL,
  EISCONN,
  EMFILE,
  ENOTCONN,
  EOPNOTSUPP,
  ETIMEDOUT,
  OP_REQUEST,
  OP_RST,
  EADDRNOTAVAIL,
  GUEST_CID,
  MSG_DONTWAIT,
  MSG_PEEK,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  SEND_BUFFER,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  SO_VM_SOCKETS_BUFFER_MAX_SIZE,
  SO_VM_SOCKETS_BUFFER_MIN_SIZE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  SO_VM_SOCKETS_CONNECT_TIMEOUT,
  VMADDR_CID_ANY,
  guest,
  noViolations,
  text,
} from "./vsock-helpers";

test("bad descriptors and wrong states give the Linux errno, each with a debug line", async () => {
  const { m, g } = await guest();
  assert.equal(g.close(999), -EBADF);
  assert.equal(g.recv(999, 1), -EBADF);
  assert.equal(g.send(-1, "x"), -EBADF);
  const fd = g.socket();
  assert.ok(fd >= 3);
  assert.equal(g.recv(fd, 1), -ENOTCONN);
  assert.equal(g.send(fd, "x"), -ENOTCONN);
  assert.equal(g.listen(fd), -EINVAL, "listen needs bind");
  assert.equal(g.accept(fd).fd, -EINVAL);
  assert.equal(g.shutdown(fd, 7), -EINVAL);
  assert.equal(g.shutdown(fd, 1), -ENOTCONN);
  assert.equal(g.peername(fd).r, -ENOTCONN);
  assert.equal(g.bind(fd, 5400, 77), -EADDRNOTAVAIL, "another cid is not ours");
  assert.equal(g.bind(fd, 5400, GUEST_CID), 0);
  assert.equal(g.bind(fd, 5401), -EINVAL, "already bound");
  assert.equal(g.connect(fd, 5402, 3), -EADDRNOTAVAIL, "only the host (cid 2) is reachable");
  assert.equal(g.setsockopt(fd, 99, 1n), -EOPNOTSUPP);
  assert.ok(m.logLines(/debug sock: close fd=999 error=EBADF/).length === 1);
  assert.ok(m.logLines(/debug sock: bind fd=\d+ error=EADDRNOTAVAIL/).length === 1);
});

test("socket exhaustion gives EMFILE; closing frees the descriptor", async () => {
  const { g } = await guest();
  const fds: number[] = [];
  for (;;) {
    const fd = g.socket();
    if (fd < 0) {
      assert.equal(fd, -EMFILE);
      break;
    }
    fds.push(fd);
    assert.ok(fds.length < 1000);
  }
  assert.equal(new Set(fds).size, fds.length);
  g.close(fds[10]);
  assert.equal(g.socket(), fds[10]);
});

test("timeouts: non-blocking EAGAIN, a recv timeout, and blocking recv woken by the host", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5403);
  assert.equal(g.accept(lfd).fd, -EAGAIN);
  const h = m.host.connect(5403, 9403);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  g.settimeout(fd, 0n);
  assert.equal(g.recv(fd, 10), -EAGAIN);
  g.settimeout(fd, 3_000_000n); // 3 ms
  const clockBefore = m.clock;
  assert.equal(g.recv(fd, 10), -EAGAIN);
  assert.ok(m.clock - clockBefore >= 3_000_000n, "waited the full timeout");
  assert.ok(m.clock - clockBefore < 10_000_000n);
  // Blocking forever: data that arrives is returned.
  g.settimeout(fd, -1n);
  h.send("now");
  assert.equal(text(g.recv(fd, 10) as Uint8Array), "now");
  // A blocking recv whose answer only exists after our own send leaves inside the wait.
  h.onData((bytes, socket) => {
    if (text(bytes) === "ping") socket.send("pong");
  });
  assert.equal(g.send(fd, "ping"), 4);
  assert.equal(text(g.recv(fd, 10) as Uint8Array), "pong");
  assert.equal(g.getsockopt(fd, SO_RCVTIMEO), -1n);
  assert.equal(g.setsockopt(fd, SO_RCVTIMEO, 0n), 0);
  assert.equal(g.recv(fd, 10), -EAGAIN);
  assert.equal(g.setsockopt(fd, SO_SNDTIMEO, 0n), 0);
  assert.equal(g.getsockopt(fd, SO_SNDTIMEO), 0n);
});

test("blocking send waits for room and returns once everything is buffered", async () => {
  // A host buffer of one send buffer's size: the socket (256 KiB) then holds 64 KiB in flight
  // and a full send buffer behind it.
  const { m, g } = await guest({ hostBufAlloc: SEND_BUFFER });
  const lfd = g.listener(5404);
  const h = m.host.connect(5404, 9404);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  const big = new Uint8Array(3 * SEND_BUFFER).fill(0x5a);
  assert.equal(g.send(fd, big), big.length, "blocking send polls the device until all is queued");
  assert.ok(m.runUntil(() => h.received.length === big.length, 100));
  // With a host that stops reading, a send timeout returns the partial count, then EAGAIN.
  h.pauseReading(true);
  g.setsockopt(fd, SO_SNDTIMEO, 2_000_000n);
  let total = 0;
  let last = 0;
  for (let i = 0; i < 10 && last >= 0; i++) {
    last = g.send(fd, big);
    if (last > 0) total += last;
  }
  assert.equal(last, -EAGAIN, "the timeout ends a send that cannot progress");
  assert.ok(h.unreadBytes > 0);
  assert.equal(h.unreadBytes, SEND_BUFFER, "in flight: the host's buffer");
  assert.equal(total, h.unreadBytes + SEND_BUFFER, "what the host's credit let out plus our full send buffer");
  h.pauseReading(false);
  assert.ok(m.runUntil(() => h.received.length === big.length + total, 1000));
  noViolations(m);
});

test("MSG_PEEK leaves the bytes; MSG_DONTWAIT never blocks", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5405);
  const h = m.host.connect(5405, 9405);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  assert.equal(g.recv(fd, 10, MSG_DONTWAIT), -EAGAIN);
  h.send("peekaboo");
  m.poll(2);
  assert.equal(text(g.recv(fd, 4, MSG_PEEK) as Uint8Array), "peek");
  assert.equal(text(g.recv(fd, 100) as Uint8Array), "peekaboo");
});

test("vs_poll over many descriptors: POLLIN on listeners and data, POLLOUT, POLLHUP, POLLNVAL", async () => {
  const { m, g } = await guest();
  const l1 = g.listener(5406);
  const l2 = g.listener(5407);
  let [ready, rev] = g.poll([[l1, POLLIN], [l2, POLLIN], [555, POLLIN]], 0n);
  assert.equal(ready, 1);
  assert.deepEqual(rev, [0, 0, POLLNVAL]);
  const h = m.host.connect(5407, 9407);
  [ready, rev] = g.poll([[l1, POLLIN], [l2, POLLIN]], 1_000_000n);
  assert.equal(ready, 1, "the REQUEST arrives while vs_poll waits");
  assert.deepEqual(rev, [0, POLLIN]);
  const fd = g.accept(l2).fd;
  assert.equal(h.state, "connected");
  [ready, rev] = g.poll([[fd, POLLIN | POLLOUT]], 0n);
  assert.deepEqual(rev, [POLLOUT]);
  h.send("data");
  [ready, rev] = g.poll([[fd, POLLIN]], 1_000_000n);
  assert.deepEqual(rev, [POLLIN]);
  const clock = m.clock;
  [ready, rev] = g.poll([[l1, POLLIN]], 2_000_000n);
  assert.equal(ready, 0);
  assert.ok(m.clock - clock >= 2_000_000n, "waited for the timeout");
  h.close();
  [ready, rev] = g.poll([[fd, POLLIN]], 1_000_000n);
  assert.ok(rev[0] & POLLIN);
  assert.ok(rev[0] & POLLHUP, "peer closed both ways: hang-up");
});

test("connect states: EINPROGRESS, EALREADY, then EISCONN; names on both ends", async () => {
  const { m, g } = await guest();
  const hl = m.host.listen(6400);
  const fd = g.socket();
  g.settimeout(fd, 0n);
  // Hold the host's answer back for one poll so the second connect sees the attempt in flight.
  assert.equal(g.connect(fd, 6400), -EINPROGRESS);
  const second = g.connect(fd, 6400);
  assert.ok(second === -EALREADY || second === -EISCONN, `second connect: ${second}`);
  assert.ok(m.runUntil(() => (g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLOUT) !== 0, 100));
  assert.equal(g.connect(fd, 6400), -EISCONN);
  const hs = hl.accept()!;
  const name = g.sockname(fd);
  assert.deepEqual([name.r, name.cid, name.port], [0, GUEST_CID, hs.peerPort]);
  const peer = g.peername(fd);
  assert.deepEqual([peer.r, peer.cid, peer.port], [0, 2, 6400]);
  const unbound = g.socket();
  const un = g.sockname(unbound);
  assert.deepEqual([un.cid, un.port], [VMADDR_CID_ANY, VMADDR_CID_ANY]);
  assert.equal(m.exports.vs_local_cid(), BigInt(GUEST_CID));
});

test("buffer size options clamp like Linux; connect timeout option round-trips", async () => {
  const { g } = await guest();
  const fd = g.socket();
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE), 262144n);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_MIN_SIZE), 128n);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_MAX_SIZE), 262144n);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 1n << 30n), 0);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE), 262144n, "clamped to the max");
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 10n), 0);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE), 128n, "clamped to the min");
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_MAX_SIZE, 1n << 20n), -EINVAL, "beyond the preallocated buffer");
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_MAX_SIZE, 4096n), 0);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 8192n), 0);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE), 4096n);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_CONNECT_TIMEOUT), 2_000_000_000n);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_CONNECT_TIMEOUT, 5_000_000_000n), 0);
  assert.equal(g.getsockopt(fd, SO_VM_SOCKETS_CONNECT_TIMEOUT), 5_000_000_000n);
});

test("the staging buffer for C callers lies inside linear memory", async () => {
  const { m } = await guest();
  const base = m.exports.vs_staging();
  const size = m.exports.vs_staging_size();
  assert.equal(size, 262144, "one whole SEQPACKET message (256 KiB) fits");
  assert.ok(base > 0 && base + size <= m.memory.buffer.byteLength);
  assert.equal(m.exports.vs_staging(), base, "stable across calls");
});

test("a connect that timed out: an RST follows its REQUEST, and a retry takes a fresh port unless one was bound", async () => {
  const { m, g } = await guest();
  const receive = m.host.receive.bind(m.host);
  m.host.receive = () => {}; // a host that swallows everything: the connect runs into its timeout
  const fd = g.socket();
  g.settimeout(fd, 300_000_000n);
  const before = m.device!.sentByGuest.length;
  assert.equal(g.connect(fd, 7100), -ETIMEDOUT);
  m.poll(2);
  const first = g.sockname(fd).port;
  const sent = m.device!.sentByGuest.slice(before).filter((p) => p.header.srcPort === first);
  assert.deepEqual(sent.map((p) => p.header.op), [OP_REQUEST, OP_RST], "REQUEST, then an RST when it timed out");
  // The peer may have seen that REQUEST late: the retry must not meet its stale connection.
  assert.equal(g.connect(fd, 7100), -ETIMEDOUT);
  assert.notEqual(g.sockname(fd).port, first, "a fresh ephemeral port for the retry");
  // An explicitly bound port is the application's: it stays.
  const bound = g.socket();
  assert.equal(g.bind(bound, 7777), 0);
  g.settimeout(bound, 300_000_000n);
  assert.equal(g.connect(bound, 7100), -ETIMEDOUT);
  assert.equal(g.connect(bound, 7100), -ETIMEDOUT);
  assert.equal(g.sockname(bound).port, 7777);
  m.host.receive = receive;
});
