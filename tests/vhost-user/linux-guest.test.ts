// The same e2e suite against the reference driver: the Debian-kernel Linux stand-in
// (qemu/nested/linux-guest: vmw_vsock_virtio_transport + python services on the firmware's ports)
// under QEMU TCG on the vhost-user backend. Results in build/vhost-user-e2e/linux/.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createRig, runSuite, startGreetingListener } from "./harness";
import { QemuGuest } from "./qemu-guest";

const CID = 33;
const SUITE_ARGS = (process.env.VHOST_USER_SUITE_ARGS ?? "").split(" ").filter((a) => a.length > 0);

test("Linux guest + vhost-user backend: the e2e suite over Unix sockets passes", { timeout: 900_000 }, async () => {
  const rig = await createRig("linux", [{ cid: CID }]);
  const greeting = await startGreetingListener(rig, CID);
  const log = join(rig.results, "debug.log");
  const guest = new QemuGuest({
    guest: "linux",
    vhostSocket: rig.vmConfig(CID).socket,
    debugLog: log,
    consoleLog: join(rig.results, "guest-console.log"),
    timeoutMs: 840_000,
  });
  try {
    await guest.waitForLog(/info apps: ready: cid=33 .*linux stand-in/, 300_000);
    const suite = await runSuite(rig, CID, log, SUITE_ARGS, 600_000);
    assert.equal(suite.timedOut, false, "suite.py ran out of time");
    assert.ok(suite.passed > 0, `no e2e summary line:\n${suite.output.slice(-3000)}`);
    assert.equal(suite.failed, 0, `e2e failures (see ${rig.results}/suite.log)`);
    assert.deepEqual(rig.backend.vm(CID).device.violations, [], "Linux never broke a rule the device checks");
  } finally {
    greeting.stop();
    await guest.stop();
    rig.cleanup();
  }
});
