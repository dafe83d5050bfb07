// Deliberate crashes, compiled in only by `make image SELFTEST=...`, so the tests can prove that a
// CPU exception and a wasm trap each leave a complete report in the log.
import { mmioRead32 } from "./imports";
import { logWarn } from "./log";

export const SELFTEST_CPU_EXCEPTION: i32 = 1;
export const SELFTEST_WASM_TRAP: i32 = 2;

export function selfTest(kind: i32): void {
  if (kind == SELFTEST_CPU_EXCEPTION) {
    logWarn("selftest", "reading unmapped address 0x123456789000 (expect a page fault report)");
    mmioRead32(0x123456789000);
  } else if (kind == SELFTEST_WASM_TRAP) {
    logWarn("selftest", "executing unreachable (expect a wasm trap report)");
    unreachable();
  }
}
