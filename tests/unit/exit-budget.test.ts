// Exit budgets per path. Under a hypervisor every port I/O, MMIO access, notify, debugcon byte
// and halt of the firmware is a VM exit (10-200 us under nested KVM): each path below has a
// budget of device register exits (port I/O other than debugcon, MMIO) measured on the simulated
// machine, per packet or per connection, and a steady-state data path touches no device register
// but the notifications it needs. Debugcon bytes (log lines) are printed, not budgeted: they
// are the log's business (info lines drain while idle). PCI config accesses have their own
// budget (pci-config-exits.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { ExitCounts, exitDiff, formatExits, mmioAccesses, registerExits } from "../sim/exit-counter";
import { HostSocket } from "../../tools/vsock-model/host";
import { Machine } from "../sim/machine";
import { COMMON_Q_SIZE } from "../sim/virtio-pci";
import { ECHO_PORT, OP_RST, OP_RW, SINK_PORT, SOURCE_PORT, WASM_PATH, boot, connCount, guest, noViolations, pattern, sent } from "./vsock-helpers";

/** Polls until a poll moves nothing (the firmware called env.idle), so a path's tail is counted. */
function settle(m: Machine, maxRounds = 1000): void {
  for (let i = 0; i < maxRounds; i++) {
    const idle = m.idleCount;
    m.poll();
    if (m.idleCount > idle) return;
  }
  assert.fail("the machine never settled");
}

/** The exits of `run`, settled afterwards unless told not to. */
function measure(m: Machine, run: () => void, settled = true): ExitCounts {
  const before = m.exitCounts();
  run();
  if (settled) settle(m);
  return exitDiff(m.exitCounts(), before);
}

function report(path: string, d: ExitCounts, per: number, unit: string): void {
  const line = `exits ${path} (per ${unit}, ${per} measured): register=${(registerExits(d) / per).toFixed(3)} ${formatExits(d, per)}`;
  console.log(line);
}

/** No register of the device's configuration on this path: common config, device config, ISR, MSI-X. */
function assertNoConfigAccess(path: string, d: ExitCounts): void {
  for (const region of ["common-cfg", "device-cfg", "isr", "msix-table", "msix-pba"] as const) {
    assert.equal(mmioAccesses(d, region), 0, `${path}: ${region} accessed: ${formatExits(d)}`);
  }
  assert.equal(d["port.pci-config"], 0, `${path}: PCI config accessed`);
  assert.equal(d["port.fw-cfg"], 0, `${path}: fw_cfg accessed`);
  assert.equal(d["port.other"] + mmioAccesses(d, "other"), 0, `${path}: other registers accessed: ${formatExits(d)}`);
}

/** Register exits per unit within budget, and notifications the only register access. */
function assertBudget(path: string, d: ExitCounts, per: number, budget: number): void {
  assertNoConfigAccess(path, d);
  const perUnit = registerExits(d) / per;
  assert.ok(perUnit <= budget, `${path}: ${perUnit.toFixed(3)} register exits per unit > budget ${budget}: ${formatExits(d, per)}`);
}

test("boot: fw_init to ready within its register exit budget (PCI config not counted here)", async () => {
  const m = await Machine.create({ wasmPath: WASM_PATH, guestCid: 33 });
  const d = measure(m, () => assert.equal(m.init(), true, m.logText()), false);
  assert.equal(m.logLines(/info app: ready: /).length, 1);
  report("boot", d, 1, "boot");
  // Besides PCI config: fw_cfg 3 (its DMA signature read, one transfer for the directory; an
  // option set costs one more transfer, tests/unit/fw-cfg-options.test.ts), and the virtio
  // device 65: common config 17 reads + 39 writes (reset, status steps, features, three
  // queues' set-up and vector checks; each queue selected once, its size left at the device's
  // maximum), device config 2 reads (guest_cid, two halves), MSI-X table 5 writes (entry 0
  // masked, address, data, unmasked), the rx and event kicks after DRIVER_OK (2 notifies). The
  // device's count has no margin: one more register access at boot is a change to look at.
  assert.ok(d["mmio.device-cfg.read"] <= 2, `guest_cid read more than once: ${formatExits(d)}`);
  const device = registerExits(d, { pciConfig: false }) - d["port.fw-cfg"];
  assert.ok(device <= 65, `boot: ${device} virtio register exits > 65: ${formatExits(d)}`);
  assert.ok(d["port.fw-cfg"] <= 3, `boot: ${d["port.fw-cfg"]} fw_cfg exits > 3: ${formatExits(d)}`);
});

test("boot: queue_size is written only when the firmware's size is below the device's maximum", async () => {
  for (const maximum of [128, 1024]) {
    const m = await Machine.create({ wasmPath: WASM_PATH, guestCid: 33, queueSizeMax: maximum });
    const writes: number[] = [];
    const fn = m.vsockFunction!;
    const commonWrite = fn.commonWrite.bind(fn);
    fn.commonWrite = (offset, width, value) => {
      if (offset === COMMON_Q_SIZE) writes.push(Number(value));
      commonWrite(offset, width, value);
    };
    assert.equal(m.init(), true, m.logText());
    assert.deepEqual(m.device!.queues.map((q) => q.size), [128, 128, 128], `device maximum ${maximum}`);
    assert.deepEqual(writes, maximum === 128 ? [] : [128, 128, 128], `device maximum ${maximum}`);
  }
});

test("idle poll: a poll that moves nothing makes no exit at all", async () => {
  const m = await boot();
  settle(m);
  const polls = 20;
  const d = measure(m, () => m.poll(polls), false);
  assert.equal(d.idle, polls, "every poll was idle");
  report("idle-poll", d, polls, "poll");
  // Nothing: the rings are plain memory, the kicks only happen for buffers published.
  assert.equal(registerExits(d), 0, formatExits(d));
  assert.equal(d["port.debugcon"], 0, formatExits(d));
});

test("idle main loop: spinning and halting cost the halt itself and no register access", async () => {
  const m = await boot();
  settle(m);
  const d = measure(m, () => {
    for (let i = 0; i < 200; i++) m.exports.fw_poll_or_halt();
  }, false);
  report("idle-loop", d, 200, "round");
  assert.ok(d.halt > 0, "the idle loop halts");
  // Arming and disarming interrupts is a flag in the rings (memory): only the halts are exits.
  assert.equal(registerExits(d), 0, formatExits(d));
  assert.equal(d["port.debugcon"], 0, formatExits(d));
});

test("accept: the host connects to the echo service, 2 notifies per connection", async () => {
  const m = await boot();
  settle(m);
  const n = 20;
  const d = measure(m, () => {
    for (let i = 0; i < n; i++) {
      const h = m.host.connect(ECHO_PORT);
      assert.ok(m.runUntil(() => h.state === "connected", 100));
      settle(m);
    }
  });
  report("accept", d, n, "connection");
  // The RESPONSE (tx notify); the REQUEST's rx buffer goes back with its batch of half the pool
  // (one rx notify per 32 packets).
  assertBudget("accept", d, n, 1.25);
  noViolations(m);
});

test("connect: the firmware connects to a host listener, 1 notify per connection", async () => {
  const { m, g } = await guest();
  settle(m);
  m.host.listen(7000).onAccept(() => {});
  const n = 20;
  const d = measure(m, () => {
    for (let i = 0; i < n; i++) {
      assert.equal(g.connect(g.socket(), 7000), 0);
    }
  });
  assert.equal(connCount(m), n);
  report("connect", d, n, "connection");
  // The REQUEST (tx notify); the RESPONSE's rx buffer goes back with its batch.
  assertBudget("connect", d, n, 1.25);
  noViolations(m);
});

async function sinkConnection() {
  const m = await boot();
  const h = m.host.connect(SINK_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  settle(m);
  return { m, h };
}

test("rx data (host -> guest RW, steady state): one rx notify per poll that took packets, no other register", async () => {
  const { m, h } = await sinkConnection();
  const chunk = pattern(1024);
  for (const batch of [1, 16]) {
    const polls = 64;
    const before = m.device!.deliveredToGuest.length;
    const d = measure(m, () => {
      for (let i = 0; i < polls; i++) {
        for (let k = 0; k < batch; k++) h.send(chunk);
        m.poll();
      }
    });
    const packets = m.device!.deliveredToGuest.length - before;
    assert.equal(packets, polls * batch);
    report(`rx-data batch=${batch}`, d, packets, "packet");
    // The used buffers go back in batches of half the pool: one rx notify per 32 packets, whatever
    // the packets per poll; a CREDIT_UPDATE now and then (tx notify).
    assert.ok(d["notify.rx"] <= polls, `rx notifies ${d["notify.rx"]} > one per poll`);
    assertBudget(`rx-data batch=${batch}`, d, packets, 0.05);
  }
  assert.equal(h.state, "connected");
  noViolations(m);
});

test("tx data (guest -> host RW, steady state): one tx notify per packet, rx notifies only for credit updates", async () => {
  const m = await boot();
  const h = m.host.connect(SOURCE_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  settle(m);
  const from = m.device!.sentByGuest.length;
  const bytes = 4 << 20;
  const d = measure(m, () => {
    h.send(`${bytes}\n`);
    assert.ok(m.runUntil(() => h.received.length >= bytes, 100000));
  });
  const packets = sent(m, OP_RW, from).length;
  report("tx-data", d, packets, "packet");
  // A 64 KiB packet per poll (the send buffer's size), so one tx notify each; the host's
  // CREDIT_UPDATEs (one per 192 KiB read) go back with their batch of rx buffers.
  assertBudget("tx-data", d, packets, 1.1);
  noViolations(m);
});

test("close, both directions: 2 notifies per connection", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(6000);
  settle(m);
  const n = 20;
  const hosts: HostSocket[] = [];
  const fds: number[] = [];
  for (let i = 0; i < 2 * n; i++) {
    const h = m.host.connect(6000);
    assert.ok(m.runUntil(() => h.state === "connected", 100));
    hosts.push(h);
    fds.push(g.accept(lfd).fd);
  }
  settle(m);
  const rstsBefore = sent(m, OP_RST).length;
  const byHost = measure(m, () => {
    for (let i = 0; i < n; i++) {
      hosts[i].close();
      settle(m);
    }
  });
  assert.equal(sent(m, OP_RST).length - rstsBefore, n, "an RST for each host close");
  report("close-by-host", byHost, n, "connection");
  // The host's SHUTDOWN: our RST (tx notify); its rx buffer goes back with its batch.
  assertBudget("close-by-host", byHost, n, 1.25);
  for (let i = 0; i < n; i++) g.close(fds[i]);
  const byGuest = measure(m, () => {
    for (let i = n; i < 2 * n; i++) {
      g.close(fds[i]);
      assert.ok(m.runUntil(() => hosts[i].state === "closed", 100));
    }
  });
  report("close-by-guest", byGuest, n, "connection");
  // Our SHUTDOWN (tx notify); the host's RST: its rx buffer goes back with its batch.
  assertBudget("close-by-guest", byGuest, n, 1.25);
  assert.equal(connCount(m), 0);
  noViolations(m);
});
