// SELFTEST=3 images only: the default services plus two ports that crash the firmware while it
// serves, so the e2e crash test sees a report with real packets and live connections in it.
// A connection to 1298 causes a CPU exception (a read of an unmapped address), one to 1299 a
// wasm trap (unreachable). Compiled away in every other image.
import { mmioRead32 } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { vs_accept, vs_bind, vs_listen, vs_settimeout, vs_socket } from "../socket-api/api";
import { SOCK_STREAM } from "../socket-api/api-constants";
import { VMADDR_CID_ANY } from "../socket-api/app-support";

export const SELFTEST_CRASH_WHILE_SERVING: i32 = 3;
export const CPU_EXCEPTION_PORT: u32 = 1298;
export const WASM_TRAP_PORT: u32 = 1299;

let cpuExceptionFd: i32 = -1;
let wasmTrapFd: i32 = -1;

function listenOn(port: u32): i32 {
  const fd = vs_socket(SOCK_STREAM);
  if (fd < 0) return fd;
  vs_settimeout(fd, 0);
  if (vs_bind(fd, VMADDR_CID_ANY, port) < 0 || vs_listen(fd, 1) < 0) return -1;
  return fd;
}

export function crashPortsStart(): void {
  cpuExceptionFd = listenOn(CPU_EXCEPTION_PORT);
  wasmTrapFd = listenOn(WASM_TRAP_PORT);
  if (logBegin(LEVEL_INFO, "selftest")) {
    logStr("crash ports:");
    logKv("cpu_exception", CPU_EXCEPTION_PORT);
    logKv("wasm_trap", WASM_TRAP_PORT);
    logEnd();
  }
}

export function crashPortsPoll(): void {
  if (cpuExceptionFd >= 0 && vs_accept(cpuExceptionFd, 0) >= 0) {
    logWarn("reading unmapped address 0x123456789000 (expect a page fault report)");
    mmioRead32(0x123456789000);
  }
  if (wasmTrapFd >= 0 && vs_accept(wasmTrapFd, 0) >= 0) {
    logWarn("executing unreachable (expect a wasm trap report)");
    unreachable();
  }
}

function logWarn(what: string): void {
  if (logBegin(LEVEL_WARN, "selftest")) {
    logStr(what);
    logEnd();
  }
}
