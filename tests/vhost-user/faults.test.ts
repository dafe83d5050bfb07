// The firmware against a hostile host through the real QEMU device path: the backend's fault
// injector drops, duplicates, corrupts and delays packets, withholds credit, resets connections
// and corrupts used-ring entries; after each fault the firmware must still serve a clean echo and
// never trap. (TRANSPORT_RESET is out of reach: QEMU keeps the event queue; the simulator tests it.)
// Results in build/vhost-user-e2e/faults/.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RW } from "../../tools/vsock-model/vsock-packet";
import { FaultInjector } from "../../tools/vhost-user-vsock/faults";
import { VsockVm } from "../../tools/vhost-user-vsock/vm";
import { createRig, Rig } from "./harness";
import { echo, hybridConnect, pattern, readToEnd, Refused } from "./hybrid-client";
import { QemuGuest } from "./qemu-guest";

const CID = 33;
let rig: Rig;
let guest: QemuGuest;
let vm: VsockVm;
let faults: FaultInjector;
let uds: string;

before(async () => {
  rig = await createRig("faults", [{ cid: CID }]);
  vm = rig.backend.vm(CID);
  faults = rig.backend.faultsFor(CID);
  uds = rig.vmConfig(CID).udsPath;
  guest = new QemuGuest({ vhostSocket: rig.vmConfig(CID).socket, debugLog: join(rig.results, "debug.log"), timeoutMs: 600_000 });
  await guest.waitForLog(/info app: ready: cid=33/, 120_000);
});

after(async () => {
  await guest?.stop();
  rig?.cleanup();
});

/** The firmware is alive and correct: a fresh 64 KiB echo comes back byte for byte, no trap. */
async function stillServes(seed: number): Promise<void> {
  faults.clear();
  const data = pattern(65536, seed);
  const back = await echo(uds, data);
  assert.ok(back.equals(data), `clean echo after the fault: ${back.length} bytes back`);
  assert.doesNotMatch(guest.log(), /error (cpu|wasm|trap)|exception vector|wasm trap/);
}

async function waitUntil(predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("dropped host->guest RW: the echo comes back short by exactly that packet", async () => {
  const rule = faults.add({ direction: "to-guest", action: "drop", op: VIRTIO_VSOCK_OP_RW, port: 1234, skip: 1 });
  const data = pattern(200_000, 1);
  const back = await echo(uds, data);
  assert.equal(rule.applied, 1);
  assert.ok(rule.bytes > 0);
  assert.equal(back.length, data.length - rule.bytes);
  await stillServes(101);
});

test("duplicated host->guest RW: the echo carries that packet twice", async () => {
  const rule = faults.add({ direction: "to-guest", action: "duplicate", op: VIRTIO_VSOCK_OP_RW, port: 1234 });
  const data = pattern(8192, 2);
  const back = await echo(uds, data);
  assert.equal(rule.applied, 1);
  assert.equal(back.length, data.length + rule.bytes);
  await stillServes(102);
});

test("a REQUEST with a corrupted op is refused (RST), the next connect succeeds", async () => {
  const rule = faults.add({ direction: "to-guest", action: "corrupt", corrupt: "op", op: VIRTIO_VSOCK_OP_REQUEST });
  await assert.rejects(hybridConnect(uds, 1234), Refused);
  assert.equal(rule.applied, 1);
  await guest.waitForLog(/warn vsock: rejected: unknown op: RST op=UNKNOWN op_code=99 local=1234/, 5000);
  await stillServes(103);
});

test("an RW whose header claims 100 bytes more than it carries is rejected without harm", async () => {
  const rule = faults.add({ direction: "to-guest", action: "corrupt", corrupt: "len", op: VIRTIO_VSOCK_OP_RW, port: 1234 });
  const c = await hybridConnect(uds, 1234);
  const back = readToEnd(c);
  c.socket.end(pattern(1000, 4));
  const got = await back;
  assert.equal(rule.applied, 1);
  assert.equal(got.length, 0, "the lying packet (all 1000 bytes) was dropped, not echoed");
  await guest.waitForLog(/warn vsock-dev: dropped: rx header len disagrees with used length value=1100/, 5000);
  c.socket.destroy();
  await stillServes(104);
});

test("a REQUEST held back 300 ms: the connect takes that long and works", async () => {
  faults.add({ direction: "to-guest", action: "delay", delayMs: 300, op: VIRTIO_VSOCK_OP_REQUEST });
  const c = await hybridConnect(uds, 1234);
  assert.ok(c.ms >= 290, `connected after ${c.ms.toFixed(0)} ms`);
  c.socket.destroy();
  await stillServes(105);
});

test("withheld credit: the firmware stops at the host's buf_alloc and completes intact once credit returns", async () => {
  faults.withholdCredit(true);
  const data = pattern(1 << 20, 6);
  const c = await hybridConnect(uds, 1234);
  const back = readToEnd(c);
  c.socket.end(data);
  const host = () => vm.device.host.sockets().find((s) => s.localPort === c.hostPort)!;
  await waitUntil(() => host().unreadBytes > 0, "echo data waiting at the host");
  await new Promise((r) => setTimeout(r, 1000));
  const waiting = host().unreadBytes;
  assert.ok(waiting <= host().bufAlloc, `${waiting} bytes held, buf_alloc ${host().bufAlloc}`);
  assert.deepEqual(vm.device.violations, [], "never beyond the host's credit");
  faults.withholdCredit(false);
  const got = await back;
  assert.ok(got.equals(data), `echo after credit returned: ${got.length} bytes`);
  c.socket.destroy();
  await stillServes(106);
});

test("every host connection reset: the Unix sockets close and the firmware drops its connections", async () => {
  const open = await Promise.all([1, 2, 3].map(() => hybridConnect(uds, 1234)));
  const ends = open.map((c) => readToEnd(c));
  await waitUntil(() => /conns=3\b/.test(guest.log().split("\n").filter((l) => /conns=/.test(l)).at(-1) ?? ""), "firmware at conns=3");
  assert.equal(faults.resetConnections(), 3);
  await Promise.all(ends);
  await waitUntil(() => /conns=0\b/.test(guest.log().split("\n").filter((l) => /conns=/.test(l)).at(-1) ?? ""), "firmware back at conns=0");
  await stillServes(107);
});

test("used ring: a duplicated rx completion and an out-of-range id are rejected by the firmware, which keeps serving", async () => {
  faults.corruptNextUsed(0, (entry) => [entry, entry]);
  await stillServes(108);
  await guest.waitForLog(/used entry rejected: duplicate completion queue=0/, 5000);
  faults.corruptNextUsed(0, (entry) => [{ id: 500, len: entry.len }, entry]);
  await stillServes(109);
  await guest.waitForLog(/used entry rejected: id out of range queue=0 id=500/, 5000);
});

test("TRANSPORT_RESET cannot come from a vhost-user backend (QEMU keeps the event queue)", () => {
  assert.throws(() => faults.transportReset(), /event queue/);
});
