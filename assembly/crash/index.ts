// What the C crash report (firmware/crash-report.c) calls after a wasm trap or CPU exception, each
// in a stage of its own so a trap inside one cuts only that one short: crash_log_packets (the last
// packets), crash_log_connections (the connection table), then crash_reset_device (stop the
// device touching guest memory before the run ends). The lines go through the logger.
import { logConnections } from "./connection-lines";
import { logLastPackets } from "../diag/packet-history";
import { deviceResetForCrash } from "../vsock-device/device";
import { SELFTEST_TRAP_DURING_REPORT } from "../platform/selftest";

export function crash_log_packets(): void {
  logLastPackets();
}

export function crash_log_connections(): void {
  if (SELFTEST == SELFTEST_TRAP_DURING_REPORT) unreachable();
  logConnections();
}

// True when there was a device to reset.
export function crash_reset_device(): bool {
  return deviceResetForCrash();
}
