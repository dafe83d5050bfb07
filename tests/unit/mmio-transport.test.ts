// The virtio-mmio transport (issue 18) on the simulated machine: the vsock device on a
// virtio-mmio device at QEMU microvm's 0xfeb00e00 (line 12), found from the command line or by the
// magic value; features, queues, config generation and the I/O APIC line, and a hostile device
// that lies in its registers. The vsock device layer is the same one the PCI tests drive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Machine, MachineOptions } from "../sim/machine";
import { MMIO_CONFIG_GENERATION, MMIO_DEVICE_ID, MMIO_MAGIC_VALUE, MMIO_QUEUE_NUM_MAX, MMIO_QUEUE_READY, MMIO_VERSION } from "../sim/virtio-mmio";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../sim/virtio-pci";
import { ECHO_PORT, GUEST_CID, noViolations, text, WASM_PATH } from "./vsock-helpers";

const MMIO: MachineOptions = { transport: "mmio" };

const connectionsOpen = (m: Machine): number => m.exports.vsock_connection_count();

async function create(options: MachineOptions = {}): Promise<Machine> {
  return Machine.create({ wasmPath: WASM_PATH, guestCid: GUEST_CID, ...MMIO, ...options });
}

async function booted(options: MachineOptions = {}): Promise<Machine> {
  const m = await create(options);
  assert.equal(m.init(), true, m.logText());
  m.poll(3);
  return m;
}

function echo(m: Machine, message: string): string {
  const h = m.host.connect(ECHO_PORT);
  h.send(message);
  for (let i = 0; i < 200 && h.received.length < message.length; i++) m.poll();
  return text(h.received);
}

test("found from the command line: no PCI scan, features VERSION_1 and EVENT_IDX, three queues at their DMA addresses, DRIVER_OK, echo works", async () => {
  const m = await booted({ deviceFeatures: VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX });
  const d = m.vsockMmio!;
  assert.match(m.logText(), /info vsock-dev: device found virtio-mmio base=0xfeb00e00 size=512 irq=12 from=command-line/);
  assert.doesNotMatch(m.logText(), /info pci: scan done/, "the command line named the device: no PCI scan");
  assert.equal(d.driverFeatures, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX);
  assert.equal(d.status, 0x0f, "ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK");
  assert.deepEqual(d.statusWrites.slice(0, 4), [0, 1, 3, 11]);
  for (const q of d.queues) {
    assert.equal(q.enabled, true, `queue ${q.index} ready`);
    assert.ok(q.desc !== 0n && q.driver !== 0n && q.device !== 0n, `queue ${q.index} has its rings`);
    assert.ok(q.desc >= BigInt(m.memoryBase), "rings are DMA addresses (memory base + wasm pointer)");
    assert.equal(q.size, 128);
  }
  assert.equal(echo(m, "over mmio\n"), "over mmio\n");
  noViolations(m);
});

test("the guest_cid comes from the device config at 0x100, read again while the config generation moves", async () => {
  const m = await create({ guestCid: 77 });
  let reads = 0;
  m.vsockMmio!.lies.set(MMIO_CONFIG_GENERATION, (truth) => truth + (reads++ < 3 ? reads : 3));
  assert.equal(m.init(), true, m.logText());
  assert.match(m.logText(), /info vsock-dev: ready guest_cid=77 /);
  assert.equal(m.logLines(/warn vsock-dev: rejected: guest_cid read while config_generation moved/).length, 1, m.logText());
});

test("found by the magic value when no command line names a device (QEMU microvm with ACPI): polled, no interrupt line", async () => {
  const m = await booted({ commandLine: "console=ttyS0" });
  assert.match(m.logText(), /info vsock-dev: device found virtio-mmio base=0xfeb00e00 size=512 from=probe/);
  assert.match(m.logText(), /info pci: scan done functions=4/, "no device named: PCI is scanned first");
  assert.equal(m.ioapic.vector(12), null, "no line routed for a probed device");
  assert.equal(echo(m, "probed\n"), "probed\n");
  noViolations(m);
});

test("interrupts: line 12 of the I/O APIC, edge triggered, to the platform's vector; the halt wakes on a used buffer and the line is acknowledged before the next halt", async () => {
  const m = await booted({ interruptVector: 0x41, deviceFeatures: VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX });
  assert.equal(m.ioapic.vector(12), 0x41);
  assert.equal(m.ioapic.edgeTriggered(12), true);
  assert.equal(m.logLines(/info vsock-dev: interrupts ioapic gsi=12 vector=65$/).length, 1, m.logText());
  const d = m.vsockMmio!;
  for (let i = 0; i < 50; i++) m.exports.fw_poll_or_halt();
  const h = m.host.connect(ECHO_PORT);
  for (let i = 0; i < 50 && connectionsOpen(m) === 0; i++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  // The host writes during three idle halts: each must end on the line's edge, which rises
  // again only because the firmware acknowledged InterruptStatus before halting once more.
  let sends = 0;
  m.duringHalt = () => {
    if (sends === 3) return;
    sends++;
    h.send("wake");
    m.host.tick();
  };
  const wakesBefore = m.haltWakes.interrupt;
  for (let i = 0; i < 400 && h.received.length < 12; i++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  m.duringHalt = null;
  assert.equal(text(h.received), "wakewakewake");
  assert.equal(m.haltWakes.interrupt - wakesBefore, 3, `halts ended by the device's interrupt (timeouts ${m.haltWakes.timeout})`);
  assert.ok(d.acks >= 3, "InterruptStatus acknowledged");
  noViolations(m);
});

test("hostile: a legacy (version 1) device is named and not driven; the run says there is no vsock device", async () => {
  const m = await create({ mmioVersion: 1 });
  assert.equal(m.init(), false);
  assert.match(m.logText(), /warn virtio: virtio-mmio device is legacy \(version 1\): not driven .*base=0xfeb00e00 version=1/);
  assert.equal(m.vsockMmio!.statusWrites.length, 0, "not touched beyond its identity");
});

test("hostile: a window named on the command line that holds no device, or a device of another type, is passed over", async () => {
  const m = await create();
  m.vsockMmio!.lies.set(MMIO_MAGIC_VALUE, () => 0xffffffff);
  assert.equal(m.init(), false);
  assert.match(m.logText(), /warn virtio: no virtio-mmio device at a named window base=0xfeb00e00 magic=0xffffffff/);
  const n = await create();
  n.vsockMmio!.lies.set(MMIO_DEVICE_ID, () => 4);
  assert.equal(n.init(), false);
  assert.match(n.logText(), /error vsock-dev: no virtio-mmio device of the type among the command line's entries device_type=19 entries=1/);
  assert.equal(n.vsockMmio!.statusWrites.length, 0);
});

test("hostile: a queue that says it is ready before set-up is refused, the device set FAILED, nothing posted", async () => {
  const m = await create();
  m.vsockMmio!.lies.set(MMIO_QUEUE_READY, () => 1);
  assert.equal(m.init(), false);
  assert.match(m.logText(), /warn virtio: rejected: virtio-mmio queue already ready before set-up base=0xfeb00e00 queue=0 queue_ready=0x1 count=1/);
  assert.match(m.logText(), /error virtio: device set FAILED: queue set-up refused/);
  assert.ok(m.vsockMmio!.status & 0x80, "FAILED");
  assert.equal(m.vsockMmio!.queues[0].enabled, false);
});

test("hostile: queues that report no size (QueueNumMax 0) or a version that changes after the probe", async () => {
  const m = await create();
  m.vsockMmio!.lies.set(MMIO_QUEUE_NUM_MAX, () => 0);
  assert.equal(m.init(), false);
  assert.match(m.logText(), /error virtio: device set FAILED: queue unavailable/);
  const n = await create();
  let versionReads = 0;
  n.vsockMmio!.lies.set(MMIO_VERSION, (truth) => (versionReads++ === 0 ? truth : 7));
  assert.equal(n.init(), true, "the version is read once, at the probe");
  noViolations(n);
});

test("hostile: a malformed virtio_mmio.device entry is logged and ignored, the good one is used", async () => {
  const m = await booted({ commandLine: 'virtio_mmio.device=512@zz:1 virtio_mmio.device=4@0x1000:5 virtio_mmio.device="x virtio_mmio.device=0x200@0xfeb00e00:12' });
  assert.equal(m.logLines(/warn virtio: ignored virtio_mmio.device entry: not <size>@<base>:<irq> entry="512@zz:1"/).length, 1, m.logText());
  assert.equal(m.logLines(/warn virtio: ignored virtio_mmio.device entry: window size outside \[264, 64 KiB\] entry="4@0x1000:5"/).length, 1);
  assert.equal(m.logLines(/warn virtio: ignored virtio_mmio.device entry: not <size>@<base>:<irq> entry="'x"/).length, 1, "the quote cannot end the log value");
  assert.match(m.logText(), /device found virtio-mmio base=0xfeb00e00 size=512 irq=12 from=command-line/);
  assert.equal(echo(m, "still\n"), "still\n");
});

test("interrupts=off (the measurement switch): no line routed, the loop never halts, the echo still answers", async () => {
  const m = await booted({ options: { interrupts: "off" } });
  assert.equal(m.ioapic.vector(12), null);
  assert.equal(m.logLines(/info vsock-dev: interrupts off by option: polling only$/).length, 1, m.logText());
  for (let i = 0; i < 100; i++) m.exports.fw_poll_or_halt();
  assert.equal(m.waits.length, 0, "no halt without a wake-up");
  assert.equal(echo(m, "spin\n"), "spin\n");
  noViolations(m);
});
