// The vhost-user backend against a fake QEMU (tests/vhost-user/fake-front-end.ts): the handshake
// QEMU 7.2 does for vhost-user-vsock-pci, guest RAM mappings and their release, rings over two
// memory regions, the hybrid Unix-socket protocol both ways, ring restarts and bad input.
// Needs build/vhost-user-vsock/addon.node (`make vhost-user-addon`; `make test` builds it).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_SHUTDOWN } from "../../tools/vsock-model/vsock-packet";
import { addon } from "../../tools/vhost-user-vsock/addon";
import { VsockBackend } from "../../tools/vhost-user-vsock/backend";
import { setLogSink } from "../../tools/vhost-user-vsock/log";
import { encodeMessage, encodeVringState, Request } from "../../tools/vhost-user-vsock/protocol";
import { FakeFrontEnd, waitFor } from "../vhost-user/fake-front-end";
import { addonTest } from "../vhost-user/needs-addon";

const logLines: string[] = [];
let dir = "";

before(() => {
  setLogSink((line) => logLines.push(line));
  dir = mkdtempSync(join(tmpdir(), "vhost-user-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let serial = 0;
async function backend(cid = 33, groups = ["default"]) {
  serial++;
  const config = { guestCid: cid, socket: join(dir, `vhost${serial}.sock`), udsPath: join(dir, `vm${serial}.vsock`), groups };
  const b = new VsockBackend([config]);
  await b.start();
  return { b, vm: b.vms[0], config };
}

/** A backend with a fake QEMU whose rings are running. */
async function running(cid = 33) {
  const { b, vm, config } = await backend(cid);
  const q = new FakeFrontEnd(config.socket);
  await q.handshake();
  await q.startRings();
  await waitFor(() => vm.device.started, "rings started");
  return { b, vm, config, q };
}

function unixClient(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path, allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

function collect(s: Socket): { text: () => string; ended: () => boolean; closed: () => boolean } {
  const chunks: Buffer[] = [];
  let ended = false;
  let closed = false;
  s.on("data", (c: Buffer) => chunks.push(c));
  s.on("end", () => (ended = true));
  s.on("close", () => (closed = true));
  s.on("error", () => {});
  return { text: () => Buffer.concat(chunks).toString("latin1"), ended: () => ended, closed: () => closed };
}

addonTest("handshake: features VERSION_1|EVENT_IDX|PROTOCOL_FEATURES|SEQPACKET, protocol MQ|REPLY_ACK|CONFIG, 2 queues, guest_cid in config", async () => {
  const { b, vm, config } = await backend(41);
  const q = new FakeFrontEnd(config.socket);
  const answers = await q.handshake();
  assert.equal(answers.features, 0x160000002n);
  assert.equal(answers.protocolFeatures, 0x209n);
  assert.equal(answers.queues, 2n);
  assert.equal(answers.cid, 41n);
  // A partial config read: the upper half of guest_cid, little-endian.
  const part = await q.call(Request.GET_CONFIG, (() => {
    const p = new Uint8Array(12 + 4);
    new DataView(p.buffer).setUint32(0, 4, true);
    new DataView(p.buffer).setUint32(4, 4, true);
    return p;
  })());
  assert.deepEqual([...part.payload.subarray(12)], [0, 0, 0, 0]);
  assert.deepEqual(vm.session!.requests.slice(0, 6), ["GET_FEATURES", "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM", "SET_OWNER", "GET_FEATURES"]);
  assert.equal(vm.device.started, false, "no rings before the driver starts");
  q.close();
  b.stop();
});

addonTest("SET_MEM_TABLE is acked, maps both regions, is unmapped when replaced and on disconnect", async () => {
  const baseline = addon().mappedBytes();
  const { b, vm, config } = await backend();
  const q = new FakeFrontEnd(config.socket);
  const fakeMapping = addon().mappedBytes() - baseline; // the fake's own view of its RAM
  await q.handshake();
  const status = await q.startRings();
  assert.equal(status, 0n, "REPLY_ACK status 0");
  await waitFor(() => vm.device.started, "rings started");
  const mapped = addon().mappedBytes() - baseline - fakeMapping;
  assert.ok(mapped >= 0xa0000 + (4 << 20) - 0x100000, `backend maps both regions (${mapped} bytes)`);
  // A new table (what QEMU sends on memory changes) replaces the old mappings: same total.
  await q.stopRings();
  await q.startRings();
  await waitFor(() => vm.device.started, "rings restarted");
  assert.equal(addon().mappedBytes() - baseline - fakeMapping, mapped, "old mappings released on replace");
  q.close();
  await waitFor(() => vm.session === null, "session closed");
  assert.equal(addon().mappedBytes() - baseline, 0, "everything unmapped after disconnect");
  assert.equal(vm.device.started, false);
  b.stop();
});

addonTest("host-initiated: CONNECT <port> -> REQUEST in the guest's rx ring, RESPONSE -> OK <hostport>, data both ways, EOF", async () => {
  const { b, vm, config, q } = await running();
  const client = await unixClient(config.udsPath);
  const got = collect(client);
  client.write("CONNECT 1234\nearly bytes");
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST");
  assert.equal(request.header.dstPort, 1234);
  assert.equal(request.header.srcCid, 2n);
  assert.equal(request.header.dstCid, 33n);
  assert.ok(q.calls(0) > 0, "rx used entries signalled through the call eventfd");
  const hostPort = request.header.srcPort;
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 1234, dstPort: hostPort });
  await waitFor(() => got.text().startsWith(`OK ${hostPort}\n`), "OK line");
  const early = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_RW, "queued early bytes");
  assert.equal(Buffer.from(early.payload).toString(), "early bytes");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: hostPort }, Buffer.from("from guest"));
  await waitFor(() => got.text() === `OK ${hostPort}\nfrom guest`, "guest data on the Unix socket");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_SHUTDOWN, flags: 3, srcPort: 1234, dstPort: hostPort });
  await waitFor(() => got.ended(), "EOF after the guest's SHUTDOWN");
  assert.deepEqual(vm.device.violations, []);
  client.destroy();
  q.close();
  b.stop();
});

addonTest("guest data held while credit is withheld reaches the Unix peer before the EOF of the guest's SHUTDOWN", async () => {
  const { b, vm, config, q } = await running();
  const client = await unixClient(config.udsPath);
  const got = collect(client);
  client.write("CONNECT 1234\n");
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST");
  const hostPort = request.header.srcPort;
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 1234, dstPort: hostPort });
  await waitFor(() => got.text() === `OK ${hostPort}\n`, "OK line");
  b.faultsFor(33).withholdCredit(true);
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: hostPort }, Buffer.from("held back"));
  q.sendPacket({ op: VIRTIO_VSOCK_OP_SHUTDOWN, flags: 3, srcPort: 1234, dstPort: hostPort });
  const host = () => vm.device.host.sockets().find((s) => s.localPort === hostPort)!;
  await waitFor(() => host().eof && host().unreadBytes === 9, "SHUTDOWN seen with the bytes unread");
  assert.equal(got.ended(), false, "no EOF while bytes wait");
  b.faultsFor(33).withholdCredit(false);
  await waitFor(() => got.ended(), "EOF after the held bytes");
  assert.equal(got.text(), `OK ${hostPort}\nheld back`);
  assert.deepEqual(vm.device.violations, []);
  client.destroy();
  q.close();
  b.stop();
});

addonTest("host-initiated, EOF right behind the handshake (printf ... | ncat -U): the guest gets the bytes, then SHUTDOWN", async () => {
  const { b, q, config } = await running();
  const client = await unixClient(config.udsPath);
  collect(client);
  client.end("CONNECT 1234\nhello\n");
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 1234, dstPort: request.header.srcPort });
  const seen: { header: { op: number; flags: number }; payload: Uint8Array }[] = [];
  await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_SHUTDOWN, "SHUTDOWN after the data", seen as never);
  const rw = seen.filter((p) => p.header.op === VIRTIO_VSOCK_OP_RW);
  assert.equal(Buffer.concat(rw.map((p) => p.payload)).toString(), "hello\n");
  assert.equal(seen.at(-1)!.header.flags, 2, "SHUTDOWN with SEND only (the Unix peer half-closed)");
  client.destroy();
  q.close();
  b.stop();
});

addonTest("host-initiated to a port nobody listens on: the guest's RST closes the Unix socket without OK", async () => {
  const { b, config, q } = await running();
  const client = await unixClient(config.udsPath);
  const got = collect(client);
  client.write("CONNECT 9999\n");
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RST, srcPort: 9999, dstPort: request.header.srcPort });
  await waitFor(() => got.ended() || got.closed(), "closed");
  assert.equal(got.text(), "");
  // A malformed first line is refused too.
  const bad = await unixClient(config.udsPath);
  const badGot = collect(bad);
  bad.write("HELLO 1234\n");
  await waitFor(() => badGot.ended() || badGot.closed(), "bad handshake closed");
  q.close();
  b.stop();
});

addonTest("guest-initiated: CID 2 port P goes to <uds-path>_P; RST when nothing listens there", async () => {
  const { b, config, q } = await running();
  const received: Buffer[] = [];
  const server = createServer((s) => s.on("data", (c: Buffer) => received.push(c)));
  await new Promise<void>((resolve) => server.listen(`${config.udsPath}_4050`, resolve));
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 50000, dstPort: 4050 });
  const response = await q.receiveUntil((p) => p.header.dstPort === 50000, "answer to REQUEST");
  assert.equal(response.header.op, VIRTIO_VSOCK_OP_RESPONSE);
  q.sendPacket({ op: VIRTIO_VSOCK_OP_RW, srcPort: 50000, dstPort: 4050 }, Buffer.from("Hello, Host!"));
  await waitFor(() => Buffer.concat(received).toString() === "Hello, Host!", "greeting at the listener");
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 50001, dstPort: 4051 });
  const refused = await q.receiveUntil((p) => p.header.dstPort === 50001, "answer to REQUEST without listener");
  assert.equal(refused.header.op, VIRTIO_VSOCK_OP_RST);
  server.close();
  q.close();
  b.stop();
});

addonTest("guest reset: GET_VRING_BASE answers the last avail index, the restarted rings continue from it", async () => {
  const { b, vm, config, q } = await running();
  for (let i = 0; i < 5; i++) q.sendPacket({ op: VIRTIO_VSOCK_OP_RST, srcPort: 1, dstPort: 1 });
  await waitFor(() => vm.device.queues[1]?.lastAvailIdx === 5, "5 tx chains consumed");
  const bases = await q.stopRings();
  assert.equal(vm.device.started, false);
  assert.equal(bases[1], 5);
  assert.equal(bases[0], 0, "no rx buffer was used");
  await q.startRings(16, 8, bases[1]);
  await waitFor(() => vm.device.started, "restarted");
  assert.equal(vm.device.queues[1].lastAvailIdx, 5);
  // The host side still works after the restart.
  const client = await unixClient(config.udsPath);
  client.write("CONNECT 77\n");
  const request = await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST after restart");
  assert.equal(request.header.dstPort, 77);
  client.destroy();
  q.close();
  b.stop();
});

addonTest("QEMU reconnect: a new front-end connection after a disconnect gets a fresh session", async () => {
  const { b, vm, config, q } = await running();
  q.close();
  await waitFor(() => vm.session === null, "first session closed");
  const q2 = new FakeFrontEnd(config.socket);
  await q2.handshake();
  await q2.startRings();
  await waitFor(() => vm.device.started, "second session's rings");
  assert.equal(vm.sessions.length, 2);
  // While one front-end is connected, another is refused.
  const q3 = new FakeFrontEnd(config.socket);
  await waitFor(() => logLines.some((l) => /second front-end refused/.test(l)), "refusal logged");
  q3.close();
  q2.close();
  b.stop();
});

addonTest("bad descriptors are logged and dropped: the queue stops, the backend lives, a restart recovers", async () => {
  const { b, vm, config, q } = await running();
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2 }, new Uint8Array(0), { descriptor: { addr: 0x7fff0000, len: 44 } });
  await waitFor(() => vm.device.violations.length > 0, "violation");
  assert.match(vm.device.violations[0], /outside RAM/);
  assert.ok(logLines.some((l) => /warn device: ring: .*outside RAM/.test(l)), "violation logged");
  assert.ok(vm.device.brokenQueues.has(1));
  // The driver resets the device; the new rings work.
  await q.stopRings();
  await q.startRings();
  await waitFor(() => vm.device.started, "restarted");
  const client = await unixClient(config.udsPath);
  client.write("CONNECT 5\n");
  await q.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST after recovery");
  client.destroy();
  q.close();
  b.stop();
});

addonTest("malformed messages end the session, not the backend: oversized payload, short payload, bad vring index", async () => {
  const { b, vm, config } = await backend();
  const cases: [string, (q: FakeFrontEnd) => void][] = [
    ["oversized", (q) => addon().sendWithFds(q.fd, (() => {
      const m = encodeMessage(Request.SET_MEM_TABLE, 1);
      new DataView(m.buffer).setUint32(8, 1 << 20, true);
      return m;
    })(), [])],
    ["short", (q) => q.send(Request.SET_VRING_NUM, new Uint8Array(4))],
    ["index", (q) => q.send(Request.SET_VRING_NUM, encodeVringState({ index: 7, num: 16 }))],
    ["size", (q) => q.send(Request.SET_VRING_NUM, encodeVringState({ index: 0, num: 100 }))],
    ["kick without fd", (q) => q.send(Request.SET_VRING_KICK, new Uint8Array(8))],
  ];
  for (const [name, misbehave] of cases) {
    const q = new FakeFrontEnd(config.socket);
    await q.handshake();
    misbehave(q);
    await waitFor(() => q.closedByBackend, `${name}: session closed`);
    q.close();
    await waitFor(() => vm.session === null, `${name}: session gone`);
  }
  assert.equal(vm.sessions.length, cases.length);
  assert.ok(logLines.filter((l) => /session closed .*protocol error/.test(l)).length >= cases.length);
  b.stop();
});

addonTest("two regions: a packet in low RAM (below 0xa0000) and one in high RAM both reach the host side", async () => {
  const { b, vm, q } = await running();
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 60000, dstPort: 6000 }, new Uint8Array(0), { at: 0x9f000 });
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 60001, dstPort: 6000 });
  const seen: { header: { dstPort: number; op: number } }[] = [];
  await q.receiveUntil((p) => p.header.dstPort === 60000, "RST for the low-RAM REQUEST", seen as never);
  await waitFor(() => [...seen, ...q.receive()].some((p) => p.header.dstPort === 60001) || seen.some((p) => p.header.dstPort === 60001), "RST for the high-RAM REQUEST");
  assert.deepEqual(vm.device.violations, []);
  // A buffer straddling the hole (0x9fff0 + 44 crosses 0xa0000) is outside RAM: dropped, logged.
  q.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 60002, dstPort: 6000 }, new Uint8Array(0), { descriptor: { addr: 0x9fff0, len: 44 } });
  await waitFor(() => vm.device.violations.length > 0, "violation for the straddling buffer");
  assert.match(vm.device.violations[0], /outside RAM/);
  q.close();
  b.stop();
});
