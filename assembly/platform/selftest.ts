// Deliberate crashes, compiled in only by `make image SELFTEST=...`, so the tests can prove that a
// CPU exception and a wasm trap each leave a complete report in the log, even when the report
// itself faults.
import { mmioRead32 } from "./imports";
import { logWarn } from "./log";

export const SELFTEST_CPU_EXCEPTION: i32 = 1;
export const SELFTEST_WASM_TRAP: i32 = 2;
// 3 is assembly/apps/crash-ports.ts (crashes while serving).
// A wasm trap, and a second one inside the crash report (assembly/crash/index.ts): the report
// must note it, cut that section short and still end cleanly.
export const SELFTEST_TRAP_DURING_REPORT: i32 = 4;

export function selfTest(kind: i32): void {
  if (kind == SELFTEST_CPU_EXCEPTION) {
    logWarn("selftest", "reading unmapped address 0x123456789000 (expect a page fault report)");
    mmioRead32(0x123456789000);
  } else if (kind == SELFTEST_WASM_TRAP || kind == SELFTEST_TRAP_DURING_REPORT) {
    logWarn("selftest", "executing unreachable (expect a wasm trap report)");
    unreachable();
  }
}
