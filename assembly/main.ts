// Firmware entry. The C platform layer calls `main` once the CPU is in long mode and the runtime
// is up; `main` never returns. Unit tests in Node call `fw_init` and `fw_poll` instead, so they
// can step the firmware against the simulated machine.
import { clockHz, clockNs, platformExit } from "./platform/imports";
import { LEVEL_ERROR, LEVEL_INFO, logBegin, logEnd, logKv, logKvStr, logStr } from "./platform/log";
import { runtimeOption } from "./platform/options";
import { pciScan } from "./pci/scan";
import { pciAssignResources } from "./pci/resources";
import { vsockStart } from "./vsock-protocol/stack";
import { deviceLogAccessCosts } from "./vsock-device/device";
import { warnIfEmulated } from "./virtio/cost-probe";
import { virtioMmioNamed } from "./virtio/mmio-probe";
import { appsStart } from "./apps/index";
import { pollOnce, pollOrHalt } from "./main-loop";
import { selfTest } from "./platform/selftest";
import { traceConfigure } from "./diag/trace";
import { countersConfigure, logCounters } from "./vsock-protocol/counters-report";
import { connectionLinesConfigure } from "./vsock-protocol/connection-log";
import { crashPortsStart, SELFTEST_CRASH_WHILE_SERVING } from "./apps/crash-ports";

export * from "./socket-api/api";
// A C application (make image APP=...) turns the default services off before fw_init.
export { apps_set_enabled } from "./apps/index";
// The crash report's view of the stack (firmware/crash-report.c).
export * from "./crash/index";

const VERSION = "0.1.0";

function banner(): void {
  if (logBegin(LEVEL_INFO, "boot")) {
    logStr("vsockfw ");
    logStr(VERSION);
    logKv("build", BUILD_ID);
    logKv("tsc_hz", clockHz());
    logKv("log_level", LOG_LEVEL);
    logEnd();
  }
}

// Brings up everything; false when there is no usable vsock device (the reason is logged).
export function fw_init(): bool {
  banner();
  warnIfEmulated();
  if (SELFTEST != 0) selfTest(SELFTEST);
  // A machine whose command line names its virtio-mmio devices (microvm, Firecracker) has no PCI
  // bus worth a scan: each config access there is an exit for nothing.
  if (!virtioMmioNamed()) {
    pciScan();
    pciAssignResources();
  }
  traceConfigure(runtimeOption("trace"));
  countersConfigure(runtimeOption("counters"));
  connectionLinesConfigure(runtimeOption("connection-lines"));
  if (!vsockStart()) return false;
  if (runtimeOption("cost-probe") == "1") deviceLogAccessCosts();
  appsStart();
  if (SELFTEST == SELFTEST_CRASH_WHILE_SERVING) crashPortsStart();
  return true;
}

// The counters at the end of a run (also called by the C layer before an APP image exits).
export function fw_log_counters(): void {
  logCounters("exit");
}

export function fw_poll(): void {
  pollOnce();
}

export function main(): void {
  const ok = fw_init();
  // Runtime switch for test runs: `-fw_cfg name=opt/vsockfw/exit,string=ready` ends the run
  // through isa-debug-exit once boot is done (status 0 when the device came up, 1 when not).
  if (runtimeOption("exit") == "ready") {
    if (logBegin(LEVEL_INFO, "boot")) {
      logStr("exit requested");
      logKvStr("after", "ready");
      logKv("uptime_us", clockNs() / 1000);
      logEnd();
    }
    if (ok) logCounters("exit");
    platformExit(ok ? 0 : 1);
  }
  if (!ok) {
    if (logBegin(LEVEL_ERROR, "boot")) {
      logStr("no vsock device: halting");
      logEnd();
    }
    platformExit(1);
  }
  while (true) pollOrHalt();
}
