// The vhost-user backend's SEQPACKET way in (tools/vhost-user-vsock/seqpacket-bridge.ts) against a
// fake QEMU whose "guest" is driven packet by packet: the handshake messages, one Unix message per
// vsock message both ways (EOM on the last packet), guest-initiated connects to
// <uds-path>.seqpacket_<port>, refusal, and STREAM beside it. Needs the addon (`make vhost-user-addon`).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import {
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_SEQ_EOM,
  VIRTIO_VSOCK_SEQ_EOR,
  VIRTIO_VSOCK_TYPE_SEQPACKET as SEQ,
  VsockPacket,
} from "../../tools/vsock-model/vsock-packet";
import { addon, EAGAIN, UNIX_SOCK_SEQPACKET } from "../../tools/vhost-user-vsock/addon";
import { VsockBackend } from "../../tools/vhost-user-vsock/backend";
import { setLogSink } from "../../tools/vhost-user-vsock/log";
import { parseArguments } from "../../tools/vhost-user-vsock/options";
import { FakeFrontEnd, waitFor } from "../vhost-user/fake-front-end";
import { addonTest } from "../vhost-user/needs-addon";

const logLines: string[] = [];
let dir = "";
before(() => {
  setLogSink((line) => logLines.push(line));
  dir = mkdtempSync(join(tmpdir(), "vhost-user-seq-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let serial = 0;
async function running() {
  serial++;
  const config = { guestCid: 33, socket: join(dir, `vhost${serial}.sock`), udsPath: join(dir, `vm${serial}.vsock`), groups: ["default"] };
  const b = new VsockBackend([config]);
  await b.start();
  const vm = b.vms[0];
  const q = new FakeFrontEnd(config.socket);
  await q.handshake();
  await q.startRings(64, 48);
  await waitFor(() => vm.device.started, "rings started");
  return { b, vm, config, q };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
}

/** One Unix message, waiting up to 3 s; null at EOF. */
async function recvMessage(fd: number, max = 300000): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(max);
  let n = -EAGAIN;
  await waitFor(() => (n = addon().recvMessage(fd, buffer)) !== -EAGAIN, "a Unix message");
  assert.ok(n >= 0, `recv errno ${-n}`);
  return n === 0 ? null : buffer.slice(0, n);
}

/** The guest's packets for a host port, grouped into messages at EOM: each message's packets. */
function messagesOf(packets: VsockPacket[]): VsockPacket[][] {
  const out: VsockPacket[][] = [];
  let current: VsockPacket[] = [];
  for (const p of packets) {
    current.push(p);
    if (p.header.flags & VIRTIO_VSOCK_SEQ_EOM) {
      out.push(current);
      current = [];
    }
  }
  return out;
}

/** A host client through <uds-path>.seqpacket to guest port `port`, accepted by the fake guest. */
async function connected(q: FakeFrontEnd, udsPath: string, port: number) {
  const fd = addon().connectUnix(`${udsPath}.seqpacket`, UNIX_SOCK_SEQPACKET);
  assert.ok(fd >= 0, `connect errno ${-fd}`);
  assert.equal(addon().sendMessage(fd, new TextEncoder().encode(`CONNECT ${port}\n`)), `CONNECT ${port}\n`.length);
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST && p.header.dstPort === port, "REQUEST");
  assert.equal(request.header.type, SEQ, "a SEQPACKET REQUEST");
  const hostPort = request.header.srcPort;
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RESPONSE, type: SEQ, srcPort: port, dstPort: hostPort });
  const ok = await recvMessage(fd);
  assert.equal(Buffer.from(ok!).toString(), `OK ${hostPort}\n`, "the OK message");
  return { fd, hostPort };
}

addonTest("seqpacket way in: CONNECT/OK as messages, each Unix message one vsock message both ways", async () => {
  const { b, vm, config, q } = await running();
  const { fd, hostPort } = await connected(q, config.udsPath, 1238);
  // Host -> guest: one Unix message each, EOM on the last packet of each.
  const sizes = [1, 4095, 4096, 65537];
  for (const [i, n] of sizes.entries()) assert.equal(addon().sendMessage(fd, bytes(n, i)), n);
  const seen: VsockPacket[] = [];
  await waitFor(() => {
    for (const p of q.receive()) if (p.header.op === VIRTIO_VSOCK_OP_RW && p.header.dstPort === 1238) seen.push(p);
    return messagesOf(seen).length === sizes.length;
  }, "four messages in the guest's rx ring");
  const messages = messagesOf(seen);
  messages.forEach((packets, i) => {
    assert.ok(packets.every((p) => p.header.type === SEQ));
    assert.ok(packets.slice(0, -1).every((p) => (p.header.flags & VIRTIO_VSOCK_SEQ_EOM) === 0), "EOM only on the last packet");
    assert.deepEqual(Buffer.concat(packets.map((p) => p.payload)), Buffer.from(bytes(sizes[i], i)), `message ${i}`);
  });
  // Guest -> host: a message in two packets arrives as one Unix message; EOR does not split it.
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, type: SEQ, srcPort: 1238, dstPort: hostPort }, bytes(3000, 1));
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, type: SEQ, flags: VIRTIO_VSOCK_SEQ_EOM, srcPort: 1238, dstPort: hostPort }, bytes(100, 2));
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, type: SEQ, flags: VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR, srcPort: 1238, dstPort: hostPort }, bytes(7, 3));
  assert.deepEqual(await recvMessage(fd), new Uint8Array(Buffer.concat([bytes(3000, 1), bytes(100, 2)])));
  assert.deepEqual(await recvMessage(fd), bytes(7, 3));
  assert.deepEqual(vm.device.violations, []);
  addon().close(fd);
  q.close();
  b.stop();
});

addonTest("seqpacket way in: a refused connect closes the Unix socket; a bad handshake is logged and closed", async () => {
  const { b, config, q } = await running();
  const fd = addon().connectUnix(`${config.udsPath}.seqpacket`, UNIX_SOCK_SEQPACKET);
  addon().sendMessage(fd, new TextEncoder().encode("CONNECT 1234\n"));
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RST, type: SEQ, srcPort: 1234, dstPort: request.header.srcPort });
  assert.equal(await recvMessage(fd), null, "EOF: refused");
  addon().close(fd);
  const bad = addon().connectUnix(`${config.udsPath}.seqpacket`, UNIX_SOCK_SEQPACKET);
  addon().sendMessage(bad, new TextEncoder().encode("HELLO\n"));
  assert.equal(await recvMessage(bad), null);
  assert.ok(logLines.some((l) => l.includes("seqpacket: bad handshake message")), "logged");
  addon().close(bad);
  q.close();
  b.stop();
});

addonTest("guest-initiated SEQPACKET goes to <uds-path>.seqpacket_<port>; STREAM beside it to <uds-path>_<port>; RST when nothing listens", async () => {
  const { b, vm, config, q } = await running();
  const listenFd = addon().listenUnix(`${config.udsPath}.seqpacket_4060`, 4, UNIX_SOCK_SEQPACKET);
  assert.ok(listenFd >= 0);
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, type: SEQ, srcPort: 50000, dstPort: 4060 });
  const response = await q.receiveUntil((p) => p.header.dstPort === 50000, "answer to the SEQPACKET REQUEST");
  assert.equal(response.header.op, VIRTIO_VSOCK_OP_RESPONSE);
  assert.equal(response.header.type, SEQ);
  let accepted = -EAGAIN;
  await waitFor(() => (accepted = addon().acceptUnix(listenFd)) !== -EAGAIN, "the backend's Unix connect");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, type: SEQ, flags: VIRTIO_VSOCK_SEQ_EOM, srcPort: 50000, dstPort: 4060 }, bytes(500, 9));
  assert.deepEqual(await recvMessage(accepted), bytes(500, 9));
  assert.equal(addon().sendMessage(accepted, bytes(10, 4)), 10);
  const back = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_RW && p.header.dstPort === 50000, "the reply message");
  assert.equal(back.header.flags & VIRTIO_VSOCK_SEQ_EOM, VIRTIO_VSOCK_SEQ_EOM);
  assert.deepEqual(back.payload, bytes(10, 4));
  // STREAM next to it, on its own path.
  const streamBytes: Buffer[] = [];
  const { createServer } = await import("node:net");
  const server = createServer((s) => s.on("data", (c: Buffer) => streamBytes.push(c)));
  await new Promise<void>((resolve) => server.listen(`${config.udsPath}_4061`, resolve));
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 50001, dstPort: 4061 });
  await q.receiveUntil((p) => p.header.dstPort === 50001 && p.header.op === VIRTIO_VSOCK_OP_RESPONSE, "STREAM RESPONSE");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, srcPort: 50001, dstPort: 4061 }, Buffer.from("stream bytes"));
  await waitFor(() => Buffer.concat(streamBytes).toString() === "stream bytes", "stream data");
  // Nothing listens on .seqpacket_4062: RST of the SEQPACKET type.
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, type: SEQ, srcPort: 50002, dstPort: 4062 });
  const refused = await q.receiveUntil((p) => p.header.dstPort === 50002, "answer without a listener");
  assert.equal(refused.header.op, VIRTIO_VSOCK_OP_RST);
  assert.equal(refused.header.type, SEQ);
  assert.deepEqual(vm.device.violations, []);
  void createConnection;
  server.close();
  addon().close(accepted);
  addon().close(listenFd);
  q.close();
  b.stop();
});

addonTest("--no-seqpacket: the backend offers no VIRTIO_VSOCK_F_SEQPACKET (a STREAM-only device)", async () => {
  const options = parseArguments(["--guest-cid", "35", "--socket", join(dir, "ns.sock"), "--uds-path", join(dir, "ns.vsock"), "--no-seqpacket"]);
  assert.equal(options.vms[0].seqpacket, false);
  const b = new VsockBackend(options.vms);
  await b.start();
  const q = new FakeFrontEnd(options.vms[0].socket);
  const answers = await q.handshake();
  assert.equal(answers.features, 0x160000000n, "VERSION_1 | EVENT_IDX | PROTOCOL_FEATURES, no bit 1");
  q.close();
  b.stop();
});
