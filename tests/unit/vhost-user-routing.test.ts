// The backend's command line (vhost-device-vsock's), sibling routing between two fake QEMUs and
// the fault injector's rules, all without a real VM.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW } from "../../tools/vsock-model/vsock-packet";
import { VsockBackend } from "../../tools/vhost-user-vsock/backend";
import { parseFaultRule } from "../../tools/vhost-user-vsock/faults";
import { setLogSink } from "../../tools/vhost-user-vsock/log";
import { parseArguments } from "../../tools/vhost-user-vsock/options";
import { FakeFrontEnd, waitFor } from "../vhost-user/fake-front-end";
import { addonTest } from "../vhost-user/needs-addon";

let dir = "";
before(() => {
  setLogSink(() => {});
  dir = mkdtempSync(join(tmpdir(), "vhost-user-routing-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("command line: vhost-device-vsock's single-VM flags and repeated --vm with groups", () => {
  const one = parseArguments(["--guest-cid", "33", "--socket", "/tmp/a.sock", "--uds-path=/tmp/a.vsock"]);
  assert.deepEqual(one.vms, [{ guestCid: 33, socket: "/tmp/a.sock", udsPath: "/tmp/a.vsock", groups: ["default"] }]);
  const two = parseArguments([
    "--vm", "guest-cid=3,socket=/tmp/3.sock,uds-path=/tmp/3.vsock,groups=a+b",
    "--vm", "guest-cid=4,socket=/tmp/4.sock,uds-path=/tmp/4.vsock",
    "--fault", "to-guest:drop:op=RW:skip=2:count=all",
  ]);
  assert.deepEqual(two.vms.map((v) => [v.guestCid, v.groups]), [[3, ["a", "b"]], [4, ["default"]]]);
  assert.deepEqual(two.faults, [{ direction: "to-guest", action: "drop", op: VIRTIO_VSOCK_OP_RW, skip: 2, count: Infinity }]);
  for (const bad of [
    ["--guest-cid", "2", "--socket", "s", "--uds-path", "u"],
    ["--guest-cid", "33", "--socket", "s"],
    ["--vm", "guest-cid=3,socket=s"],
    ["--vm", "guest-cid=3,socket=s,uds-path=u", "--vm", "guest-cid=3,socket=t,uds-path=v"],
    ["--vm", "guest-cid=3,socket=s,uds-path=u,colour=red"],
    ["--guest-cid", "3", "--socket", "s", "--uds-path", "u", "--vm", "guest-cid=4,socket=t,uds-path=v"],
    [],
  ]) {
    assert.throws(() => parseArguments(bad), undefined, bad.join(" "));
  }
  assert.throws(() => parseFaultRule("sideways:drop"));
  assert.throws(() => parseFaultRule("to-guest:explode"));
  assert.throws(() => parseFaultRule("to-guest:drop:count=x"));
  assert.deepEqual(parseFaultRule("from-guest:corrupt:corrupt=len:port=1234"), { direction: "from-guest", action: "corrupt", corrupt: "len", port: 1234 });
});

async function pair(groupsA: string[], groupsB: string[]) {
  const configs = [
    { guestCid: 3, socket: join(dir, `a${groupsA}${groupsB}.sock`), udsPath: join(dir, `a${groupsA}${groupsB}.vsock`), groups: groupsA },
    { guestCid: 4, socket: join(dir, `b${groupsA}${groupsB}.sock`), udsPath: join(dir, `b${groupsA}${groupsB}.vsock`), groups: groupsB },
  ];
  const backend = new VsockBackend(configs);
  await backend.start();
  const [a, b] = configs.map((c) => new FakeFrontEnd(c.socket));
  for (const q of [a, b]) {
    await q.handshake();
    await q.startRings();
  }
  await waitFor(() => backend.vms.every((vm) => vm.device.started), "both VMs running");
  return { backend, a, b };
}

addonTest("siblings in one group: packets to the other CID arrive untouched in its rx ring, both ways", async () => {
  const { backend, a, b } = await pair(["g1", "g2"], ["g2"]);
  a.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, dstCid: 4, srcPort: 5000, dstPort: 1234 });
  const request = await b.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST, "REQUEST at cid 4");
  assert.deepEqual([request.header.srcCid, request.header.dstCid, request.header.srcPort, request.header.dstPort], [3n, 4n, 5000, 1234]);
  b.sendPacket({ op: VIRTIO_VSOCK_OP_RW, dstCid: 3, srcPort: 1234, dstPort: 5000 }, Buffer.from("pong"));
  const data = await a.receiveUntil((p) => p.header.op === VIRTIO_VSOCK_OP_RW, "RW at cid 3");
  assert.equal(Buffer.from(data.payload).toString(), "pong");
  assert.equal(data.header.srcCid, 4n);
  assert.equal(backend.router.routed, 2);
  // An unknown CID: RST from that address at once.
  a.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, dstCid: 99, srcPort: 5001, dstPort: 1 });
  const rst = await a.receiveUntil((p) => p.header.dstPort === 5001, "RST from cid 99");
  assert.deepEqual([rst.header.op, rst.header.srcCid], [VIRTIO_VSOCK_OP_RST, 99n]);
  a.close();
  b.close();
  backend.stop();
});

addonTest("VMs in different groups cannot reach each other (RST), and a stopped sibling answers RST", async () => {
  const { backend, a, b } = await pair(["red"], ["blue"]);
  a.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, dstCid: 4, srcPort: 5000, dstPort: 1234 });
  const rst = await a.receiveUntil((p) => p.header.dstPort === 5000, "RST");
  assert.equal(rst.header.op, VIRTIO_VSOCK_OP_RST);
  assert.deepEqual(b.receive(), []);
  assert.equal(backend.router.routed, 0);
  a.close();
  b.close();
  backend.stop();
  const same = await pair(["x"], ["x"]);
  await same.b.stopRings();
  same.a.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, dstCid: 4, srcPort: 5002, dstPort: 1234 });
  const stopped = await same.a.receiveUntil((p) => p.header.dstPort === 5002, "RST from a stopped sibling");
  assert.equal(stopped.header.op, VIRTIO_VSOCK_OP_RST);
  same.a.close();
  same.b.close();
  same.backend.stop();
});

addonTest("fault rules: drop after skip, duplicate, corrupt op, delay; no TRANSPORT_RESET from a backend", async () => {
  const { backend, a, b } = await pair(["f"], ["f"]);
  const faults = backend.faultsFor(3);
  // Guest 3 -> guest 4 RW packets pass through 3's from-guest filter.
  faults.add({ direction: "from-guest", action: "drop", op: VIRTIO_VSOCK_OP_RW, skip: 1 });
  faults.add({ direction: "from-guest", action: "duplicate", op: VIRTIO_VSOCK_OP_CREDIT_UPDATE });
  faults.add({ direction: "from-guest", action: "corrupt", op: VIRTIO_VSOCK_OP_REQUEST });
  faults.add({ direction: "from-guest", action: "delay", op: VIRTIO_VSOCK_OP_RST, delayMs: 150 });
  const seen: { header: { op: number; srcPort: number } }[] = [];
  for (let i = 0; i < 3; i++) a.sendPacket({ op: VIRTIO_VSOCK_OP_RW, dstCid: 4, srcPort: 10 + i, dstPort: 1 }, Buffer.from(`rw${i}`));
  a.sendPacket({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, dstCid: 4, srcPort: 20, dstPort: 1 });
  a.sendPacket({ op: VIRTIO_VSOCK_OP_REQUEST, dstCid: 4, srcPort: 30, dstPort: 1 });
  const sentAt = Date.now();
  a.sendPacket({ op: VIRTIO_VSOCK_OP_RST, dstCid: 4, srcPort: 40, dstPort: 1 });
  await b.receiveUntil((p) => p.header.srcPort === 40, "the delayed RST", seen as never);
  assert.ok(Date.now() - sentAt >= 140, "RST held back ~150 ms");
  const ports = seen.map((p) => p.header.srcPort);
  assert.deepEqual(ports.filter((p) => p < 20), [10, 12], "the second RW (port 11) dropped");
  assert.equal(ports.filter((p) => p === 20).length, 2, "CREDIT_UPDATE duplicated");
  assert.deepEqual(seen.filter((p) => p.header.srcPort === 30).map((p) => p.header.op), [99], "REQUEST op corrupted");
  assert.deepEqual(faults.rules.map((r) => r.applied), [1, 1, 1, 1]);
  assert.throws(() => faults.transportReset(), /event queue/);
  a.close();
  b.close();
  backend.stop();
});
