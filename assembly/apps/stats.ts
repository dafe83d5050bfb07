// The stats service (port 1237): every connection gets the protocol counters, exactly the lines
// they add to the log at that moment, and is closed. The host asks with e.g.
// `ncat --vsock 33 1237 </dev/null`; the log then has the same lines (why=request).
import { logCaptureBegin, logCaptureEnd } from "../platform/log";
import { MSG_DONTWAIT } from "../socket-api/api-constants";
import { vs_accept, vs_close, vs_send, vs_settimeout } from "../socket-api/api";
import { logCounters } from "../socket-api/app-support";

export const STATS_PORT: u32 = 1237;
const REPORT_CAPACITY: u32 = 16384; // the counter lines (a few KiB), within one send buffer

let report: usize = 0;

export function statsInit(): void {
  if (report == 0) report = heap.alloc(<usize>REPORT_CAPACITY);
}

// Answers every connection waiting on the listener.
export function statsPoll(listener: i32): void {
  if (listener < 0) return;
  while (true) {
    const fd = vs_accept(listener, 0);
    if (fd < 0) return;
    vs_settimeout(fd, 0);
    logCaptureBegin(report, REPORT_CAPACITY);
    logCounters("request", 1); // conns= counts the other connections, not this one
    const length = logCaptureEnd();
    vs_send(fd, report, length, MSG_DONTWAIT);
    vs_close(fd); // the report goes out before the SHUTDOWN
  }
}
