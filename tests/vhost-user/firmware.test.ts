// End to end on this machine without any outer VM: the firmware under QEMU TCG with
// vhost-user-vsock-pci on our backend, and the kernel-vhost e2e suite (tests/e2e/suite.py) run
// over the backend's Unix sockets. Results in build/vhost-user-e2e/firmware/.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createRig, runSuite, startGreetingListener } from "./harness";
import { QemuGuest } from "./qemu-guest";

const CID = 33;
const SUITE_ARGS = (process.env.VHOST_USER_SUITE_ARGS ?? "").split(" ").filter((a) => a.length > 0);

test("firmware + vhost-user backend: the e2e suite over Unix sockets passes", { timeout: 900_000 }, async () => {
  const rig = await createRig("firmware", [{ cid: CID }]);
  const greeting = await startGreetingListener(rig, CID);
  const fwLog = join(rig.results, "debug.log");
  const guest = new QemuGuest({ vhostSocket: rig.vmConfig(CID).socket, debugLog: fwLog, timeoutMs: 840_000 });
  try {
    const vm = rig.backend.vm(CID);
    await guest.waitForLog(/info app: ready: cid=33/, 120_000);
    assert.equal(vm.sessions.length, 1, "one vhost-user session");
    assert.ok(vm.device.started, "rings running");
    const suite = await runSuite(rig, CID, fwLog, SUITE_ARGS, 780_000);
    assert.equal(suite.timedOut, false, "suite.py ran out of time");
    assert.ok(suite.passed > 0, `no e2e summary line:\n${suite.output.slice(-3000)}`);
    assert.equal(suite.failed, 0, `e2e failures (see ${rig.results}/suite.log and debug.log)`);
    assert.deepEqual(vm.device.violations, [], "the firmware never broke a rule the device checks");
    assert.ok(vm.session!.counters.kicks > 0 && vm.bridge.connectsFromHost > 0);
  } finally {
    greeting.stop();
    await guest.stop();
    rig.cleanup();
  }
});
