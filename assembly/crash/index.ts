// What the C platform layer needs for crash reports: crash_record() once at boot (where the
// record lives), crash_snapshot() after a trap (fill the connection summary), and
// crash_reset_device() last (stop the device touching guest memory before the run ends).
import { CRASH_RECORD_MAGIC, CRASH_RECORD_VERSION, CR_MAGIC, CR_VERSION, crashRecord } from "./crash-record";
import { connectionSummaryInit, snapshotConnections } from "./connection-summary";
import { packetHistoryInit } from "./packet-history";
import { deviceResetForCrash } from "../vsock/device";
import { SELFTEST_TRAP_DURING_REPORT } from "../platform/selftest";

export function crash_record(): usize {
  if (load<u32>(crashRecord + CR_MAGIC) != CRASH_RECORD_MAGIC) {
    packetHistoryInit();
    connectionSummaryInit();
    store<u32>(crashRecord + CR_VERSION, CRASH_RECORD_VERSION);
    store<u32>(crashRecord + CR_MAGIC, CRASH_RECORD_MAGIC);
  }
  return crashRecord;
}

// True when there was a device to reset.
export function crash_reset_device(): bool {
  return deviceResetForCrash();
}

// Fills the record's connection summary; returns how many entries (-1: the stack never started).
export function crash_snapshot(): i32 {
  if (SELFTEST == SELFTEST_TRAP_DURING_REPORT) unreachable();
  crash_record();
  return snapshotConnections();
}
