// The PVH shape (build/firmware-pvh.elf, issue 18) under QEMU TCG: the same firmware entered
// through QEMU's -kernel loader on q35 (SeaBIOS's pvh.bin) and on microvm (qboot). Neither machine
// here has a vsock device (the vhost-user suite boots microvm with one), so each run ends with
// "no vsock device" after saying how it looked for one.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { bootFirmware, timestampMicros } from "./qemu.ts";

const PVH_IMAGE = process.env.FIRMWARE_PVH_IMAGE ?? "build/firmware-pvh.elf";
const FW_EXIT_NO_DEVICE = 1;
const EXIT_AFTER_BOOT = { exit: "ready" };
const skip = !existsSync(PVH_IMAGE) && "no PVH image (make image)";
// microvm as qemu/machine.sh runs it: ACPI off, so QEMU names its MMIO devices on the command line.
const MICROVM = "microvm,acpi=off,pit=on,pic=off,rtc=off,isa-serial=off";
const MODERN_MMIO = ["-global", "virtio-mmio.force-legacy=false"];

// The firmware's own lines: SeaBIOS writes to the same debug port before the PVH entry, and the
// firmware's first byte is its '.'.
function firmwareLines(log: string): string[] {
  const start = log.indexOf(".[0.000000] info boot: reset");
  assert.ok(start >= 0, `no firmware start in:\n${log}`);
  return log.slice(start).split("\n").filter((line) => line.length > 0);
}

function assertPvhBoot(lines: string[], cmdline: string): void {
  assert.match(lines[0], /^\.\[0\.000000\] info boot: reset$/);
  const pvh = lines.find((line) => line.includes("info boot: pvh start_info="));
  assert.ok(pvh, `no pvh line in:\n${lines.join("\n")}`);
  // The memory map was read (RAM: QEMU's 256 MiB less what the BIOS keeps) and the command line kept.
  const ram = Number(/ram_bytes=(\d+)/.exec(pvh)![1]);
  assert.ok(ram > 200 << 20 && ram <= 256 << 20, pvh);
  assert.match(pvh, /version=1 memmap_entries=[1-9]\d* /);
  assert.match(pvh, new RegExp(`cmdline_bytes=${cmdline.length} entry_after_us=\\d+$`));
  assert.match(lines.join("\n"), /info boot: runtime up memory_base=0x1000000/);
  const stamps = lines.map(timestampMicros);
  assert.ok(stamps.every((stamp) => stamp !== null), `a line without a timestamp in:\n${lines.join("\n")}`);
}

test("PVH on q35: entered through SeaBIOS's PVH loader, reads hvm_start_info, scans PCI", { skip }, async () => {
  const append = "vsockfw.test=q35";
  const run = await bootFirmware({
    image: PVH_IMAGE, load: "pvh", append, fwCfg: EXIT_AFTER_BOOT,
    extraArgs: ["-device", "virtio-rng-pci-non-transitional"],
  });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_NO_DEVICE, run.log);
  const lines = firmwareLines(run.log);
  assertPvhBoot(lines, append);
  assert.match(lines.join("\n"), /info boot: command line text="vsockfw.test=q35"/);
  assert.match(lines.join("\n"), /info pci: 00:01.0 1af4:1044 class=/);
  assert.match(lines.join("\n"), /info pci: scan done functions=5 buses=1/);
});

test("PVH on microvm: the command line names the MMIO device, no PCI scan, a device of another type is passed over", { skip }, async () => {
  const run = await bootFirmware({
    image: PVH_IMAGE, load: "pvh", machine: MICROVM, fwCfg: EXIT_AFTER_BOOT,
    extraArgs: [...MODERN_MMIO, "-device", "virtio-rng-device"],
  });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_NO_DEVICE, run.log);
  const lines = firmwareLines(run.log);
  // QEMU microvm's own command line: the last transport (0xfeb00e00, GSI 12) holds the device.
  assertPvhBoot(lines, " virtio_mmio.device=512@0xfeb00e00:12");
  const text = lines.join("\n");
  assert.match(text, /error vsock-dev: no virtio-mmio device of the type among the command line's entries device_type=19 entries=1/);
  assert.doesNotMatch(text, /info pci: scan done/);
});

test("PVH on microvm with ACPI (no command line entries): the window is probed, a legacy transport is named and left alone", { skip }, async () => {
  const run = await bootFirmware({
    image: PVH_IMAGE, load: "pvh", machine: "microvm", fwCfg: EXIT_AFTER_BOOT,
    extraArgs: ["-device", "virtio-rng-device"], // QEMU's default: force-legacy, version 1
  });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_NO_DEVICE, run.log);
  const lines = firmwareLines(run.log);
  assertPvhBoot(lines, "");
  const text = lines.join("\n");
  const legacy = lines.filter((line) => /warn virtio: virtio-mmio device is legacy \(version 1\): not driven/.test(line));
  assert.equal(legacy.length, 1, text); // the seven empty transports say nothing
  assert.match(legacy[0], /base=0xfeb02e00 version=1$/); // the 24th transport: ACPI brings the second I/O APIC
});
