// The test-peer service (port 1239): every command against the simulated host, and malformed
// input that must get an error answer and leave the service running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { connCount, guest, noViolations, SHUT_WR, text } from "./vsock-helpers";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../tools/vsock-model/virtio-device";
import { VIRTIO_VSOCK_TYPE_SEQPACKET } from "../../tools/vsock-model/vsock-packet";
import { Control, TEST_PEER_PORT } from "./test-peer-helpers";

function crcHex(bytes: Uint8Array): string {
  return (crc32(bytes) >>> 0).toString(16).padStart(8, "0");
}

/** The test-peer's send pattern: byte[i] = (i * 7 + (i >> 8) + seed) & 0xff. */
function sendPattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + Math.floor(i / 256) + seed) & 0xff;
  return out;
}

test("test-peer: listening line, info, and a firmware server a host client talks to", async () => {
  const { m } = await guest();
  assert.equal(m.logLines(/info app: test-peer: listening port=1239$/).length, 1);
  const c = new Control(m);
  const info = c.ok("info");
  assert.equal(info.keys.cid, "33");
  assert.equal(info.keys.max_connections, "64");
  const fd = c.ok("socket stream").ret;
  assert.ok(fd >= 3);
  assert.equal(c.ok(`bind ${fd} 5000`).ret, 0);
  assert.equal(c.ok(`sockname ${fd}`).keys.addr, "4294967295:5000");
  c.ok(`listen ${fd} 4`);
  const h = m.host.connect(5000, 40001);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const acc = c.ok(`accept ${fd}`);
  assert.equal(acc.keys.peer, "2:40001");
  const conn = acc.ret;
  assert.equal(c.ok(`peername ${conn}`).keys.addr, "2:40001");
  // Host -> firmware: recv with peek, then the bytes, with their CRC-32.
  const nothing = c.cmd(`wait ${conn} 5 2`); // 2 ms without data
  assert.equal(nothing.ret, -110);
  assert.equal(nothing.errno, "ETIMEDOUT");
  const data = new TextEncoder().encode("hello test-peer");
  h.send(data);
  assert.equal(c.ok(`wait ${conn} ${data.length} 1000`).ret, data.length);
  assert.equal(c.ok(`inq ${conn}`).ret, data.length);
  const peek = c.ok(`recv ${conn} 5 peek`);
  assert.equal(peek.bytes, 5);
  assert.equal(peek.crc, crcHex(data.subarray(0, 5)));
  const got = c.ok(`recv ${conn} 64`);
  assert.equal(got.bytes, data.length);
  assert.equal(got.crc, crcHex(data));
  assert.equal(c.cmd(`recv ${conn} 64 dontwait`).errno, "EAGAIN");
  // Firmware -> host: 'A' bytes without a seed, the documented pattern with one.
  assert.equal(c.ok(`send ${conn} 3`).crc, crcHex(new TextEncoder().encode("AAA")));
  const seeded = c.ok(`send ${conn} 100000 9`);
  assert.equal(seeded.bytes, 100000);
  const expected = sendPattern(100000, 9);
  assert.equal(seeded.crc, crcHex(expected));
  assert.ok(m.runUntil(() => h.received.length === 100003, 2000));
  assert.equal(text(h.received.subarray(0, 3)), "AAA");
  assert.deepEqual(h.received.subarray(3), expected);
  assert.equal(c.ok(`outq ${conn}`).ret, 0); // everything left for the device
  // poll, shutdown, EOF.
  assert.equal(c.ok(`poll ${conn} out 0`).keys.revents, "out");
  assert.equal(c.ok(`poll ${conn} in 0`).keys.revents, "none");
  h.shutdown(SHUT_WR);
  m.poll(5);
  const eof = c.ok(`recv ${conn} 10`);
  assert.equal(eof.ret, 0);
  assert.equal(eof.keys.eof, "1");
  c.ok(`shutdown ${conn} wr`);
  assert.ok(m.runUntil(() => h.eof, 100));
  assert.equal(c.ok("info").keys.sockets, "2");
  c.ok(`close ${conn}`);
  c.ok(`close ${fd}`);
  assert.equal(c.ok("info").keys.sockets, "0"); // each socket counted once, and let go on close
  h.close();
  assert.ok(m.runUntil(() => connCount(m) === 1, 1000)); // only the control connection is left
  noViolations(m);
});

test("test-peer: firmware as client, socket options, recv all, and the errors the API gives", async () => {
  const { m } = await guest();
  const c = new Control(m);
  const hl = m.host.listen(6000);
  const fd = c.ok("socket stream").ret;
  assert.equal(c.ok(`getsockopt ${fd} rcvtimeo`).keys.value, "10000"); // the test-peer's default
  c.ok(`setsockopt ${fd} buffer_size 131072`);
  assert.equal(c.ok(`getsockopt ${fd} buffer_size`).keys.value, "131072");
  c.ok(`setsockopt ${fd} connect_timeout 500`);
  assert.equal(c.ok(`getsockopt ${fd} connect_timeout`).keys.value, "500");
  c.ok(`setsockopt ${fd} rcvlowat 128`);
  assert.equal(c.ok(`getsockopt ${fd} rcvlowat`).keys.value, "128");
  c.ok(`setsockopt ${fd} rcvlowat 1`);
  assert.equal(c.cmd(`setsockopt ${fd} linger 1`).errno, "EOPNOTSUPP");
  c.ok(`connect ${fd} 2 6000`);
  assert.ok(m.runUntil(() => hl.accepted.length === 1, 100));
  const h = hl.accepted[0];
  assert.equal(c.ok(`getsockopt ${fd} error`).keys.value, "OK");
  const data = sendPattern(300000, 1);
  h.send(data);
  const all = c.ok(`recv ${fd} 300000 all`);
  assert.equal(all.bytes, 300000);
  assert.equal(all.crc, crcHex(data));
  // A second connect on a connected socket, and the invalid buffer of vsock_test case 12.
  assert.equal(c.cmd(`connect ${fd} 2 6000`).errno, "EISCONN");
  h.send("x");
  c.ok(`wait ${fd} 1 1000`);
  assert.equal(c.cmd(`recv ${fd} 512 nullbuf`).errno, "EFAULT");
  assert.equal(c.ok(`recv ${fd} 512 dontwait`).bytes, 1); // the byte is still there
  // The peer closes: send fails with EPIPE, poll reports the hang-up.
  h.close();
  assert.ok(m.runUntil(() => (c.ok(`poll ${fd} rdhup,in 0`).keys.revents ?? "").includes("hup"), 200));
  assert.equal(c.cmd(`send ${fd} 1`).errno, "EPIPE");
  // Connecting to a port nobody listens on: ECONNRESET; a timeout on recv: EAGAIN.
  const fd2 = c.ok("socket stream").ret;
  assert.equal(c.cmd(`connect ${fd2} 2 6001`).errno, "ECONNRESET");
  assert.equal(c.cmd(`bind ${fd2} 6002`).errno, "EINVAL"); // already bound by the connect
  const fd3 = c.ok("socket stream").ret;
  c.ok(`bind ${fd3} any`);
  c.ok(`listen ${fd3}`);
  c.ok(`setsockopt ${fd3} rcvtimeo 2`);
  assert.equal(c.cmd(`accept ${fd3}`).errno, "EAGAIN");
  const ended = c.ok(`wait ${fd2} 1 1`); // a failed connect: nothing will ever come
  assert.equal(ended.ret, 0);
  assert.match(ended.keys.revents, /hup/);
  noViolations(m);
});

test("test-peer: socket seqpacket makes a SEQPACKET socket, or answers ESOCKTNOSUPPORT on a device without the feature", async () => {
  const { m } = await guest();
  const c = new Control(m);
  const fd = c.ok("socket seqpacket").ret;
  assert.ok(fd >= 0, `socket seqpacket answered ${fd}`);
  assert.equal(c.ok(`getsockopt ${fd} type`).keys.value, "5", "SO_TYPE is SOCK_SEQPACKET");
  noViolations(m);
  const without = await guest({ deviceFeatures: VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX });
  const a = new Control(without.m).cmd("socket seqpacket");
  assert.equal(a.ret, -94);
  assert.equal(a.errno, "ESOCKTNOSUPPORT");
  noViolations(without.m);
});

test("test-peer: SEQPACKET send with eor, recv with trunc, and the msg_flags a recv reports", async () => {
  const { m } = await guest();
  const c = new Control(m);
  const listener = c.ok("socket seqpacket").ret;
  c.ok(`bind ${listener} 5001`);
  c.ok(`listen ${listener} 1`);
  const h = m.host.connect(5001, 40002, VIRTIO_VSOCK_TYPE_SEQPACKET);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = c.ok(`accept ${listener}`).ret;
  // Host -> firmware: a 32-byte message ending a record, read into 16 bytes with MSG_TRUNC:
  // ret is the real length, bytes what was copied, flags what recvmsg's msg_flags said.
  const message = sendPattern(32, 4);
  h.sendMessage(message, true);
  assert.equal(c.ok(`wait ${fd} 1 1000`).ret, 32);
  const peeked = c.ok(`recv ${fd} 0 peek trunc`);
  assert.equal(peeked.ret, 32, "MSG_PEEK | MSG_TRUNC measures the message");
  assert.equal(peeked.keys.flags, "trunc,eor");
  const cut = c.ok(`recv ${fd} 16 trunc`);
  assert.deepEqual([cut.ret, cut.bytes, cut.crc, cut.keys.flags], [32, 16, crcHex(message.subarray(0, 16)), "trunc,eor"]);
  h.sendMessage(sendPattern(8, 5), false);
  assert.equal(c.ok(`wait ${fd} 1 1000`).ret, 8);
  const whole = c.ok(`recv ${fd} 64`);
  assert.deepEqual([whole.ret, whole.bytes, whole.keys.flags], [8, 8, undefined], "a whole message without EOR: no flags");
  // Firmware -> host: eor marks the message's end as a record's end; without it, none.
  assert.equal(c.ok(`send ${fd} 10 3 eor`).bytes, 10);
  assert.equal(c.ok(`send ${fd} 20 3`).bytes, 20);
  assert.ok(m.runUntil(() => h.messages.length === 2, 2000));
  assert.deepEqual(h.messages.map((x) => [x.bytes.length, x.eor]), [[10, true], [20, false]]);
  assert.deepEqual(h.messages[0].bytes, sendPattern(10, 3));
  // One send command offers a message just over the API's 256 KiB limit in one call: EMSGSIZE.
  assert.equal(c.cmd(`send ${fd} ${256 * 1024 + 1}`).errno, "EMSGSIZE");
  noViolations(m);
});

test("test-peer: malformed commands get an error answer and the service keeps serving", async () => {
  const { m } = await guest();
  const c = new Control(m);
  const fd = c.ok("socket stream").ret;
  const cases: [string, string][] = [
    ["", "empty"],
    ["   ", "empty"],
    ["frobnicate 1 2", "unknown-command"],
    ["SOCKET stream", "unknown-command"],
    ["socket", "missing-argument"],
    ["socket dgram", "bad-word"],
    ["socket stream extra", "extra-argument"],
    [`bind ${fd} 12x`, "bad-number"],
    [`bind ${fd} 99999999999`, "bad-number"],
    [`bind ${fd} -1`, "bad-number"],
    ["bind abc 1", "bad-number"],
    [`send ${fd} 123456789012345678901`, "bad-number"],
    [`send ${fd} 1000000000`, "length-range"],
    [`send ${fd} 10 300`, "bad-word"],
    [`recv ${fd} 10 sideways`, "bad-word"],
    [`recv ${fd} 300000 peek`, "length-range"],
    [`shutdown ${fd} both`, "bad-word"],
    [`setsockopt ${fd} rcvtimeo -5`, "timeout-range"],
    [`setsockopt ${fd} rcvtimeo 60001`, "timeout-range"],
    [`setsockopt ${fd} nosuchoption 1`, "bad-word"],
    [`poll ${fd} sideways 0`, "bad-word"],
    [`poll ${fd} in,,out 0`, "bad-word"],
    [`inq ${fd} 1`, "extra-argument"],
    [`poll ${fd} in 99999999`, "timeout-range"],
    ["a b c d e f g h i", "extra-argument"],
    ["x".repeat(300), "line-too-long"],
    ["info now", "extra-argument"],
  ];
  for (const [line, reason] of cases) {
    const a = c.cmd(line);
    assert.equal(a.ret, -22, `${JSON.stringify(line)} -> ${a.line}`);
    assert.equal(a.errno, "EINVAL");
    assert.equal(a.keys.parse, reason, `${JSON.stringify(line)} -> ${a.line}`);
  }
  // Wrong fds: not a socket at all, and another service's socket (the echo listener) are EBADF.
  assert.equal(c.cmd("close 999").errno, "EBADF");
  assert.equal(c.cmd("recv 3 10").errno, "EBADF");
  assert.equal(c.cmd(`close ${fd}`).errno, "OK");
  assert.equal(c.cmd(`close ${fd}`).errno, "EBADF"); // already closed
  // A line far longer than the buffer, in pieces, CRLF endings, several commands in one packet.
  const many = c.raw("y".repeat(5000) + "\r\ninfo\r\ninfo\n", 3);
  assert.equal(many[0].keys.parse, "line-too-long");
  assert.equal(many[1].errno, "OK");
  assert.equal(many[2].errno, "OK");
  // Binary garbage.
  const junk = c.raw(new Uint8Array([0, 1, 2, 255, 0x0a]), 1);
  assert.equal(junk[0].keys.parse, "unknown-command");
  // The echo service still works and the test-peer still answers.
  const h = m.host.connect(1234);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  h.send("still here");
  assert.ok(m.runUntil(() => h.received.length === 10, 100));
  assert.equal(c.ok("info").ret, 0);
  noViolations(m);
});

test("test-peer: one control connection at a time; its sockets close with it", async () => {
  const { m } = await guest();
  const c = new Control(m);
  const fd = c.ok("socket stream").ret;
  c.ok(`bind ${fd} 7000`);
  c.ok(`listen ${fd}`);
  const second = m.host.connect(TEST_PEER_PORT);
  assert.ok(m.runUntil(() => second.eof, 200));
  assert.match(text(second.received), /^-16 EBUSY 0 00000000 reason=another-control-connection\n$/);
  second.close();
  // The first control connection ends: its listener goes, so port 7000 is free again.
  c.h.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 2000));
  const again = new Control(m);
  assert.equal(again.ok("info").keys.sockets, "0");
  const fd2 = again.ok("socket stream").ret;
  assert.equal(again.ok(`bind ${fd2} 7000`).ret, 0);
  const refused = m.host.connect(7001);
  assert.ok(m.runUntil(() => refused.state === "reset", 100));
  noViolations(m);
});
