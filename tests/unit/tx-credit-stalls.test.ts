// Connections that the TX credit cap (Linux's "vsock/virtio: cap TX credit to local buffer size",
// min(peer's buf_alloc, own buffer size) in flight) could hold shut for good, on either side:
// every one must finish. Budgets are in polls and simulated time, never wall-clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EAGAIN,
  MSG_DONTWAIT,
  OP_CREDIT_REQUEST,
  OP_CREDIT_UPDATE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  accepted,
  concat,
  guest,
  noViolations,
  pattern,
  sent,
} from "./vsock-helpers";
import { VIRTIO_VSOCK_TYPE_SEQPACKET } from "../../tools/vsock-model/vsock-packet";

const EMSGSIZE = 90;
const SOCK_SEQPACKET = 5;

test("a capped host sender whose own buffer is far below ours gets our reads reported", async () => {
  // The host keeps at most its own 64 KiB in flight, so our 256 KiB window never looks low to it
  // (free space below 64 KiB): unless our reads are reported anyway, the sender waits for good
  // once it has 64 KiB in flight, and an application that only reads never sends a packet that
  // would carry our fwd_cnt.
  const { m, g, h, fd } = await accepted(6700, 46700, { hostCapTxCredit: true });
  h.bufAlloc = 65536;
  const data = pattern(1024 * 1024, 67);
  assert.equal(h.send(data), data.length);
  const got = g.readAll(fd, data.length, 20000);
  assert.equal(got.length, data.length, `the stream stalled after ${got.length} bytes (host still holds ${h.pendingSendBytes})`);
  assert.deepEqual(got, data);
  noViolations(m);
});

test("reads are still reported lazily when the capped sender's window is as large as ours", async () => {
  // The default sizes (256 KiB both) and 128 KiB sent: the host never runs short of credit, so 32
  // small reads owe it no update (an update per read is what the window rule avoids).
  const { m, g, h, fd } = await accepted(6701, 46701, { hostCapTxCredit: true });
  const from = m.device!.sentByGuest.length;
  const data = pattern(128 * 1024, 68);
  assert.equal(h.send(data), data.length);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let round = 0; round < 20000 && total < data.length; round++) {
    const r = g.recv(fd, 4096, MSG_DONTWAIT);
    if (typeof r !== "number") {
      chunks.push(r);
      total += r.length;
    }
    m.poll();
  }
  assert.deepEqual(concat(chunks), data);
  assert.equal(sent(m, OP_CREDIT_UPDATE, from).length, 0, "CREDIT_UPDATEs for 32 reads of 4 KiB");
  noViolations(m);
});

test("a SEQPACKET message larger than min(peer's buf_alloc, own size) is EMSGSIZE, as Linux", async () => {
  // With at most the own size in flight, a longer message could never arrive whole, and a Linux
  // receiver frees no credit before a message's EOM: the send would wait forever.
  const { m, g } = await guest();
  m.host.listen(6702, 4, VIRTIO_VSOCK_TYPE_SEQPACKET);
  const fd = g.x.vs_socket(SOCK_SEQPACKET);
  assert.ok(fd >= 0);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 65536n), 0);
  assert.equal(g.connect(fd, 6702), 0);
  assert.equal(g.send(fd, pattern(65537, 1), MSG_DONTWAIT), -EMSGSIZE, "one byte over the own size");
  assert.equal(g.send(fd, pattern(65536, 2), MSG_DONTWAIT), 65536, "the own size fits");
  noViolations(m);
});

test("a socket stalled by its own size asks for credit, and stops asking once the window reopens", async () => {
  // A Linux receiver without the drain update (before 6.8 and its backports): only our
  // CREDIT_REQUEST makes it tell us its reads.
  const { m, g, h, fd } = await accepted(6703, 46703);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 65536n), 0);
  const data = pattern(512 * 1024, 69);
  let at = 0;
  for (let round = 0; round < 4000 && at < data.length; round++) {
    const r = g.send(fd, data.subarray(at, at + 65536), MSG_DONTWAIT);
    if (r > 0) at += r;
    else assert.equal(r, -EAGAIN);
    m.advance(1_000_000n);
    m.poll();
  }
  assert.equal(at, data.length, "the stream did not stall");
  assert.ok(m.runUntil(() => h.received.length === data.length, 1000));
  assert.deepEqual(h.received, data);
  // The last 64 KiB may still look unread: one more request learns that it was, then none.
  const idle = () => {
    for (let round = 0; round < 300; round++) {
      m.advance(10_000_000n);
      m.poll();
    }
    return sent(m, OP_CREDIT_REQUEST).length;
  };
  const settled = idle();
  assert.ok(settled >= 7, `CREDIT_REQUESTs: ${settled}`);
  assert.equal(idle(), settled, "once the peer's answer reopened the window, nothing more is asked");
  assert.equal(g.send(fd, pattern(65536, 70), MSG_DONTWAIT), 65536, "the whole own size is free again");
  noViolations(m);
});
