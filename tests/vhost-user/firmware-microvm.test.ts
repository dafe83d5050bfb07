// The microvm shape on the vhost-user backend (issue 18): the PVH ELF on QEMU microvm, TCG, with
// vhost-user-vsock-device on virtio-mmio (found from QEMU's own command line, interrupts on I/O
// APIC line 12), and the e2e suite over the backend's Unix sockets, as firmware.test.ts runs it
// on q35. Results in build/vhost-user-e2e/firmware/.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createRig, runSuite, startGreetingListener } from "./harness";
import { QemuGuest, REPO } from "./qemu-guest";

const CID = 33;
const PVH_IMAGE = `${REPO}/build/firmware-pvh.elf`;
const SUITE_ARGS = (process.env.VHOST_USER_SUITE_ARGS ?? "").split(" ").filter((a) => a.length > 0);

test("microvm firmware + vhost-user-vsock-device: the e2e suite over Unix sockets passes", { timeout: 900_000, skip: !existsSync(PVH_IMAGE) && "no PVH image" }, async () => {
  const rig = await createRig("firmware", [{ cid: CID }]);
  const greeting = await startGreetingListener(rig, CID);
  const fwLog = join(rig.results, "debug.log");
  const guest = new QemuGuest({ vhostSocket: rig.vmConfig(CID).socket, debugLog: fwLog, timeoutMs: 840_000, machine: "microvm" });
  try {
    const vm = rig.backend.vm(CID);
    await guest.waitForLog(/info app: ready: cid=33/, 120_000);
    const log = guest.log();
    assert.match(log, /info vsock-dev: device found virtio-mmio base=0xfeb00e00 size=512 irq=12 from=command-line/);
    assert.match(log, /info vsock-dev: interrupts ioapic gsi=12 vector=\d+/);
    assert.doesNotMatch(log, /info pci: scan done/);
    assert.equal(vm.sessions.length, 1, "one vhost-user session");
    const suite = await runSuite(rig, CID, fwLog, SUITE_ARGS, 780_000);
    assert.equal(suite.timedOut, false, "suite.py ran out of time");
    assert.ok(suite.passed > 0, `no e2e summary line:\n${suite.output.slice(-3000)}`);
    assert.equal(suite.failed, 0, `e2e failures (see ${rig.results}/suite.log and debug.log)`);
    assert.deepEqual(vm.device.violations, [], "the firmware never broke a rule the device checks");
  } finally {
    greeting.stop();
    await guest.stop();
    rig.cleanup();
  }
});
