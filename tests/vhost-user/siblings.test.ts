// Guest to guest through the backend: two firmware VMs in one sibling group, each serving echo
// and each running the peer client (opt/vsockfw/peer) against the other's echo; the backend
// routes by CID. Results in build/vhost-user-e2e/siblings/.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createRig } from "./harness";
import { QemuGuest } from "./qemu-guest";

const BYTES = 1 << 20;

test("two firmware VMs in one group echo 1 MiB through each other, routed by the backend", { timeout: 300_000 }, async () => {
  const rig = await createRig("siblings", [
    { cid: 33, groups: ["lab"] },
    { cid: 34, groups: ["lab"] },
  ]);
  const guests = [33, 34].map((cid) => {
    const other = cid === 33 ? 34 : 33;
    return new QemuGuest({
      vhostSocket: rig.vmConfig(cid).socket,
      debugLog: join(rig.results, `debug-${cid}.log`),
      fwCfg: { siblings: String(other), peer: `${other}:1234:${BYTES}` },
      timeoutMs: 240_000,
    });
  });
  try {
    for (const [i, cid] of [33, 34].entries()) {
      const other = cid === 33 ? 34 : 33;
      const line = await guests[i].waitForLog(/app: peer echo (ok|failed)/, 180_000);
      assert.match(line, new RegExp(`info app: peer echo ok cid=${other} port=1234 bytes=${BYTES} us=\\d+`), `cid ${cid}: ${line}`);
      // The sibling's client may still be running, and info lines reach the log while idle: wait.
      // cid served its sibling (waitForLog fails the test when the line never comes).
      await guests[i].waitForLog(new RegExp(`connection opened dir=in local=1234 peer=${other}:\\d+`), 60_000);
    }
    assert.ok(rig.backend.router.routed > 2 * (BYTES / 65536), `packets routed: ${rig.backend.router.routed}`);
    for (const vm of rig.backend.vms) assert.deepEqual(vm.device.violations, [], `cid ${vm.guestCid}`);
  } finally {
    for (const g of guests) await g.stop();
    rig.cleanup();
  }
});
