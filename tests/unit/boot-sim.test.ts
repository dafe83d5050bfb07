// The real unit build of the firmware (build/unit/firmware.wasm; `make unit-wasm` first) boots
// on the simulated q35 machine: banner, one pci: line per function, the vsock device comes up
// without a single violation of vhost's rules, and the exit path works through fw_cfg.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Machine, SimExit } from "../sim/machine";
import { PciBridge } from "../sim/pci-bridge";
import { MemoryBackedBar, PciFunction } from "../sim/pci-function";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../sim/pci-config";

const Q35 = [
  ["00:00.0", "8086:29c0"],
  ["00:1f.0", "8086:2918"],
  ["00:1f.2", "8086:2922"],
  ["00:1f.3", "8086:2930"],
];

test("boot: banner and a pci: line with vendor:device for every q35 function and the vsock function", async () => {
  const m = await Machine.create({ guestCid: 33 });
  const ok = m.init();
  assert.match(m.log[0], /^\[\d+\.\d{6}\] info boot: vsockfw /, m.logText());
  for (const [bdf, id] of [...Q35, ["00:01.0", "1af4:1053"]]) {
    assert.equal(m.logLines(new RegExp(`info pci: ${bdf} ${id} class=`)).length, 1, `${bdf} ${id}\n${m.logText()}`);
  }
  assert.equal(m.logLines(/pci: 00:01\.0 1af4:1053 class=078000/).length, 1);
  assert.equal(ok, true, m.logText());
  assert.equal(m.device!.started, true);
  assert.equal(m.device!.status, 0x0f, "ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK");
  assert.ok(m.device!.features & (1n << 32n), "VERSION_1 negotiated");
  assert.deepEqual(m.device!.violations, []);
  assert.deepEqual(m.unknownAccesses, []);
  assert.deepEqual(m.aborts, []);
});

test("boot without a vsock device: the q35 functions are found and fw_init() says false", async () => {
  const m = await Machine.create({ vsock: false });
  assert.equal(m.init(), false);
  for (const [bdf, id] of Q35) assert.equal(m.logLines(`pci: ${bdf} ${id}`).length, 1, m.logText());
  assert.equal(m.logLines(/pci: \S+ 1af4:/).length, 0, "no virtio function on the bus");
  assert.ok(m.logLines(/ error /).length >= 1, m.logText());
});

test("boot with the device refusing FEATURES_OK fails cleanly with FAILED set", async () => {
  const m = await Machine.create({ refuseFeatures: true });
  assert.equal(m.init(), false, m.logText());
  assert.ok(m.vsockFunction!.status & 0x80, `status 0x${m.vsockFunction!.status.toString(16)}`);
  assert.equal(m.device!.started, false);
});

test("main() with opt/vsockfw/exit=ready ends through the exit import with status 0", async () => {
  const m = await Machine.create({ options: { exit: "ready" } });
  assert.throws(() => m.exports.main(), (e: unknown) => e instanceof SimExit && e.code === 0, m.logText());
  assert.equal(m.exitCode, 0);
  assert.equal(m.logLines("exit requested").length, 1);
});

test("the device model against the firmware: a host connection to the echo port round-trips", async () => {
  const m = await Machine.create({ guestCid: 33 });
  assert.equal(m.init(), true, m.logText());
  const socket = m.host.connect(1234);
  assert.ok(m.runUntil(() => socket.state === "connected", 1000), `state ${socket.state}\n${m.logText()}`);
  const message = new TextEncoder().encode("ping through the simulated vhost");
  socket.send(message);
  assert.ok(m.runUntil(() => socket.received.length >= message.length, 1000), m.logText());
  assert.deepEqual(socket.received, message);
  assert.deepEqual(m.device!.violations, []);
  for (const p of m.device!.sentByGuest) assert.equal(p.header.srcCid, 33n);
});

test("boot with a bridge: the function behind it is numbered, logged and reachable through the window", async () => {
  const m = await Machine.create({
    extraFunctions: (bus) => {
      bus.add(new PciBridge(0, 2));
      const nic = bus.add(new PciFunction(1, 0, 0, { vendorId: 0x1234, deviceId: 0x0011, classCode: 0x020000 }));
      nic.addBar({ index: 0, kind: "mem32", size: 0x1000, handler: new MemoryBackedBar(0x1000) });
    },
  });
  assert.equal(m.init(), true, m.logText());
  assert.equal(m.logLines(/info pci: 00:02\.0 1b36:0001 class=060400 bridge=01-01/).length, 1, m.logText());
  assert.equal(m.logLines(/info pci: 01:00\.0 1234:0011 class=020000/).length, 1, m.logText());
  const nic = m.bus.find(1, 0, 0)!;
  const bar = nic.barAddress(0);
  assert.notEqual(bar, 0n);
  assert.equal(nic.memoryEnabled, false, "no driver claimed it: it does not decode");
  // What a driver claiming it would do: the bridge must already forward the window.
  nic.set16(PCI_COMMAND, nic.command | PCI_COMMAND_MEMORY);
  assert.equal(m.bus.mmioRead(bar, 4), 0n, "routed through the bridge window");
  assert.deepEqual(m.device!.violations, []);
});

test("the device model against the firmware: TRANSPORT_RESET with a new cid is taken up", async () => {
  const m = await Machine.create({ guestCid: 33 });
  assert.equal(m.init(), true, m.logText());
  const before = m.host.connect(1234);
  assert.ok(m.runUntil(() => before.state === "connected", 1000));
  assert.equal(m.device!.transportReset(34), true, "an event buffer was posted");
  m.poll(5);
  assert.equal(m.exports.vs_local_cid(), 34n);
  assert.equal(before.state, "reset");
  const after = m.host.connect(1234);
  assert.ok(m.runUntil(() => after.state === "connected", 1000), m.logText());
  assert.deepEqual(m.device!.violations, []);
});
