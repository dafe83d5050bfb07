// The same suite as firmware.test.ts with the firmware under KVM instead of TCG, wherever /dev/kvm
// can be opened: real interrupts, halts and exits instead of TCG's. This machine kind's KVM
// emulates every guest instruction (the cost probe logs ~6 us per code step, against ~4 ns under
// TCG), so the large transfers are divided by E2E_SCALE and the connect cycles cut to 50: the
// cases and their checks are the same. Results in build/vhost-user-e2e/firmware-kvm/.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createRig, runSuite, startGreetingListener } from "./harness";
import { kvmUsable, QemuGuest } from "./qemu-guest";

const CID = 33;
const usable = kvmUsable();

test("firmware under KVM + vhost-user backend: the e2e suite over Unix sockets passes", { timeout: 900_000, skip: usable ? false : "no usable /dev/kvm here" }, async () => {
  const rig = await createRig("firmware-kvm", [{ cid: CID }]);
  const greeting = await startGreetingListener(rig, CID);
  const fwLog = join(rig.results, "debug.log");
  const guest = new QemuGuest({ vhostSocket: rig.vmConfig(CID).socket, debugLog: fwLog, timeoutMs: 840_000, accel: "kvm", fwCfg: { "cost-probe": "1" } });
  try {
    const vm = rig.backend.vm(CID);
    await guest.waitForLog(/info app: ready: cid=33/, 120_000);
    const probe = guest.log().split("\n").find((l) => l.includes("info probe: costs"));
    assert.ok(probe, "the cost probe logged its line");
    console.log(`vhost-user kvm: ${probe!.replace(/^.*probe: /, "")}`);
    // The boot's own check names an emulating hypervisor exactly when the probe measures one.
    const step = Number(/ code_step_ns=(\d+)/.exec(probe!)![1]);
    const warned = guest.log().includes("warn boot: the hypervisor runs this firmware instruction by instruction");
    assert.equal(warned, step >= 500, `boot warning ${warned ? "given" : "missing"} with a ${step} ns code step`);
    const suite = await runSuite(rig, CID, fwLog, ["--cycles", "50"], 780_000, { E2E_SCALE: "64" });
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
