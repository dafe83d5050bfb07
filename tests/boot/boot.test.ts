// Boots the real image under QEMU TCG and checks what the log must say. Needs `make image`
// (and the SELFTEST images for the crash reports); `make test` builds them first.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { bootFirmware, timestampMicros } from "./qemu.ts";

const IMAGE = process.env.FIRMWARE_IMAGE ?? "build/firmware.bin";
const CPU_EXCEPTION_IMAGE = "build/selftest-cpu-exception/firmware.bin";
const WASM_TRAP_IMAGE = "build/selftest-wasm-trap/firmware.bin";
const REPORT_FAULT_IMAGE = "build/selftest-report-fault/firmware.bin";
const EXIT_AFTER_BOOT = { exit: "ready" };
const FW_EXIT_NO_DEVICE = 1;
const FW_EXIT_WASM_TRAP = 2;
const FW_EXIT_CPU_EXCEPTION = 3;

// The common part of every crash report (firmware/crash-report.c), here for a crash before the
// device came up: no packets yet, no connection table, no device to reset; then the clean end.
// (tests/e2e/crash_check.py checks a report with real packets and connections in it.)
function assertCrashReportEnd(lines: string[], from: number, kind: string, code: number): void {
  const expected = [
    /error crash: last packets total=0 shown=0$/,
    /error crash: connections none: the stack was not started$/,
    /error crash: no device to reset$/,
    new RegExp(`error crash: end of report kind=${kind} outcome=halt exit_code=${code}$`),
    new RegExp(`info boot: exit code=${code}$`),
  ];
  assert.equal(lines.length, from + expected.length, `report lines:\n${lines.slice(from).join("\n")}`);
  expected.forEach((pattern, i) => assert.match(lines[from + i], pattern));
}

function pciLine(lines: string[], bdf: string, ids: string): string | undefined {
  return lines.find((line) => new RegExp(`info pci: ${bdf} ${ids} class=`).test(line));
}

test("boots under TCG: banner, q35 functions and an added virtio-rng in the PCI list", async () => {
  const run = await bootFirmware({
    image: IMAGE,
    fwCfg: EXIT_AFTER_BOOT,
    extraArgs: ["-device", "virtio-rng-pci-non-transitional"],
  });
  assert.equal(run.timedOut, false, `QEMU did not exit; log:\n${run.log}`);
  // No vsock device in this machine, so the firmware reports that and exits with its code for it.
  assert.equal(run.firmwareExitCode, FW_EXIT_NO_DEVICE, run.log);
  assert.match(run.log, /info boot: long mode tsc_hz=\d{6,}/);
  assert.match(run.log, /info boot: runtime up memory_base=0x1000000/);
  assert.match(run.log, /info boot: vsockfw \d+\.\d+\.\d+ build=\d+ tsc_hz=\d+ log_level=\d/);
  assert.ok(pciLine(run.lines, "00:00.0", "8086:29c0"), "q35 host bridge missing");
  assert.ok(pciLine(run.lines, "00:1f.0", "8086:2918"), "ICH9 LPC missing");
  assert.ok(pciLine(run.lines, "00:1f.2", "8086:2922"), "ICH9 AHCI (function 2 of a multi-function device) missing");
  assert.ok(pciLine(run.lines, "00:1f.3", "8086:2930"), "ICH9 SMBus missing");
  assert.ok(pciLine(run.lines, "00:01.0", "1af4:1044"), "virtio-rng-pci-non-transitional missing");
  assert.match(run.log, /info pci: scan done functions=5 buses=1/);
  // Every line carries a timestamp, and they never go backwards.
  const stamps = run.lines.map(timestampMicros);
  assert.ok(stamps.every((stamp) => stamp !== null), `a line without a timestamp in:\n${run.log}`);
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i]! >= stamps[i - 1]!, `time went backwards at line ${i}`);
});

test("follows a PCIe root port: the bridge gets bus numbers and the device behind it is found", async () => {
  const run = await bootFirmware({
    image: IMAGE,
    fwCfg: EXIT_AFTER_BOOT,
    extraArgs: ["-device", "pcie-root-port,id=rp1,chassis=1", "-device", "virtio-rng-pci-non-transitional,bus=rp1"],
  });
  assert.equal(run.timedOut, false, run.log);
  assert.match(run.log, /info pci: 00:01\.0 1b36:000c class=060400 bridge=01-01/);
  assert.ok(pciLine(run.lines, "01:00.0", "1af4:1044"), `device behind the root port missing:\n${run.log}`);
  assert.match(run.log, /scan done functions=6 buses=2/);
});

test("a CPU exception is reported with vector, error code, RIP and CR2, the crash report follows, then the run ends", { skip: !existsSync(CPU_EXCEPTION_IMAGE) && "no selftest image" }, async () => {
  const run = await bootFirmware({ image: CPU_EXCEPTION_IMAGE });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_CPU_EXCEPTION, run.log);
  assert.match(run.log, /error cpu: exception vector=14 name="#PF page fault" error=0x0 rip=0x[0-9a-f]{16} rsp=0x[0-9a-f]{16} cr2=0x0000123456789000/);
  // The report replays the last line logged before the fault: the self-test's announcement.
  const report = run.lines.findIndex((line) => line.includes("last log line before the exception"));
  assert.ok(report > 0, run.log);
  assert.match(run.lines[report + 1], /warn selftest: reading unmapped address/);
  assertCrashReportEnd(run.lines, report + 2, "cpu-exception", FW_EXIT_CPU_EXCEPTION);
});

test("a wasm trap is reported with its kind and the last log line, the crash report follows, then the run ends", { skip: !existsSync(WASM_TRAP_IMAGE) && "no selftest image" }, async () => {
  const run = await bootFirmware({ image: WASM_TRAP_IMAGE });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_WASM_TRAP, run.log);
  assert.match(run.log, /error wasm: trap kind=unreachable executed/);
  const report = run.lines.findIndex((line) => line.includes("last log line before the trap"));
  assert.ok(report > 0, run.log);
  assert.match(run.lines[report + 1], /warn selftest: executing unreachable/);
  assertCrashReportEnd(run.lines, report + 2, "wasm-trap", FW_EXIT_WASM_TRAP);
});

test("a trap inside the crash report is noted, that section is cut short, and the report still ends cleanly", { skip: !existsSync(REPORT_FAULT_IMAGE) && "no selftest image" }, async () => {
  const run = await bootFirmware({ image: REPORT_FAULT_IMAGE });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_WASM_TRAP, run.log);
  const first = run.lines.findIndex((line) => /error wasm: trap kind=unreachable executed/.test(line));
  assert.ok(first > 0, run.log);
  const expected = [
    /error wasm: last log line before the trap follows$/,
    /warn selftest: executing unreachable/,
    /error crash: last packets total=0 shown=0$/,
    /error crash: wasm trap \(unreachable executed\) while reading the connection table: that part is cut short$/,
    /error crash: no device to reset$/,
    /error crash: end of report kind=wasm-trap outcome=halt exit_code=2$/,
    /info boot: exit code=2$/,
  ];
  assert.equal(run.lines.length, first + 1 + expected.length, `report lines:\n${run.lines.slice(first).join("\n")}`);
  expected.forEach((pattern, i) => assert.match(run.lines[first + 1 + i], pattern));
});

test("boots under KVM when this machine has it", { skip: !existsSync("/dev/kvm") && "no /dev/kvm" }, async () => {
  const run = await bootFirmware({ image: IMAGE, accel: "kvm", fwCfg: EXIT_AFTER_BOOT, timeoutMs: 60_000 });
  assert.equal(run.timedOut, false, run.log);
  assert.equal(run.firmwareExitCode, FW_EXIT_NO_DEVICE, run.log);
  assert.match(run.log, /info pci: scan done functions=4 buses=1/);
});
