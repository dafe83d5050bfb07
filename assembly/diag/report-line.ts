// One line of the crash report: error level, subsystem "crash". The report runs after a trap, which
// may have come while a line was being built or while a service captured the log: every report
// line starts afresh and goes to the log only.
import { LEVEL_ERROR, logCaptureEnd, logDec, logStartLine, logStr } from "../platform/log";

export function reportLine(): void {
  logCaptureEnd();
  logStartLine(LEVEL_ERROR, "crash");
}

// "s.micros", like the log's own timestamps.
export function logSeconds(ns: u64): void {
  const micros = ns / 1000;
  logDec(micros / 1000000);
  logStr(".");
  const fraction = micros % 1000000;
  for (let unit: u64 = 100000; unit > 0; unit /= 10) logDec((fraction / unit) % 10);
}
