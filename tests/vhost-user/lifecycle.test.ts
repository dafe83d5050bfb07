// The backend across guest and QEMU lifecycles with the real device path: a guest reboot (QEMU's
// system_reset: the rings stop with GET_VRING_BASE/SET_VRING_ENABLE 0 and start again) and a
// QEMU that exits and is started again on the same backend socket (a new vhost-user session).
// QEMU 7.2's vhost-user-vsock cannot use `-chardev ...,reconnect=N`: its realize fails before the
// asynchronous connect completes ("Failed to set msg fds"), so a restarted QEMU is the reconnect.
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { addon } from "../../tools/vhost-user-vsock/addon";
import { createRig } from "./harness";
import { echo, pattern } from "./hybrid-client";
import { QemuGuest } from "./qemu-guest";

const CID = 33;
const READY = /info app: ready: cid=33/;

async function echoOk(udsPath: string, seed: number): Promise<void> {
  const data = pattern(100_000, seed);
  const back = await echo(udsPath, data);
  assert.ok(back.equals(data), `echo: ${back.length} bytes back`);
}

test("guest reboot: the rings restart and the host side keeps working", { timeout: 180_000 }, async () => {
  const rig = await createRig("reboot", [{ cid: CID }]);
  const monitor = join(rig.sockets, "monitor.sock");
  const config = rig.vmConfig(CID);
  const vm = rig.backend.vm(CID);
  const guest = new QemuGuest({
    vhostSocket: config.socket,
    debugLog: join(rig.results, "debug.log"),
    timeoutMs: 150_000,
    allowReboot: true,
    extraArgs: ["-monitor", `unix:${monitor},server=on,wait=off`],
  });
  try {
    await guest.waitForLog(READY, 60_000);
    await echoOk(config.udsPath, 1);
    const session = vm.session!;
    const m = createConnection(monitor);
    await new Promise((resolve) => m.once("connect", resolve));
    m.write("system_reset\n");
    const end = Date.now() + 60_000;
    while (guest.log().split("\n").filter((l) => READY.test(l)).length < 2) {
      assert.ok(Date.now() < end && !guest.exited, "the firmware came up again after the reset");
      await new Promise((r) => setTimeout(r, 100));
    }
    m.destroy();
    assert.equal(vm.session, session, "same vhost-user session across the reboot");
    assert.ok(session.counters.stops >= 1 && session.counters.starts >= 2, `rings stopped and restarted: ${JSON.stringify(session.counters)}`);
    await echoOk(config.udsPath, 2);
    assert.deepEqual(vm.device.violations, []);
  } finally {
    await guest.stop();
    rig.cleanup();
  }
});

test("QEMU exits and starts again on the same backend: a new session, mappings of the old one released", { timeout: 180_000 }, async () => {
  const rig = await createRig("restart", [{ cid: CID }]);
  const config = rig.vmConfig(CID);
  const vm = rig.backend.vm(CID);
  const mappedBefore = addon().mappedBytes();
  for (const round of [1, 2]) {
    const guest = new QemuGuest({ vhostSocket: config.socket, debugLog: join(rig.results, `debug-${round}.log`), timeoutMs: 120_000 });
    try {
      await guest.waitForLog(READY, 60_000);
      assert.ok(addon().mappedBytes() - mappedBefore >= 255 << 20, "guest RAM mapped (256 MiB less the 0xc0000-0x100000 hole)");
      await echoOk(config.udsPath, 10 + round);
    } finally {
      await guest.stop();
    }
    const end = Date.now() + 10_000;
    while (vm.session !== null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(vm.session, null, "session closed when QEMU went away");
    assert.equal(addon().mappedBytes(), mappedBefore, "its guest RAM unmapped");
  }
  assert.equal(vm.sessions.length, 2);
  rig.cleanup();
});
