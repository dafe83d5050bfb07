// What the hypervisor charges for each kind of access the firmware makes, measured at boot on
// request (`-fw_cfg name=opt/vsockfw/cost-probe,string=1`) and logged as one line, so a user can
// see why a path is slow under their accelerator: a port write, an MMIO read and write, a queue
// notify, a clock read, the wake-up latency of a timed halt, and one step of plain guest code
// (which shows a hypervisor that emulates every instruction instead of running it).
// Every access is harmless once the device is up: port 0x80 is the POST port, the MMIO read is
// the device status, the MMIO write re-routes the config interrupt nowhere (as it already is),
// and the notify tells the device about an event queue that has nothing new.
import { clockNs, portOut8, waitForInterrupt } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { VirtioTransport } from "./transport";

const POST_PORT: u32 = 0x80;
const ACCESS_SAMPLES: u64 = 64;
const CLOCK_SAMPLES: u64 = 1000;
const CODE_STEPS: u64 = 20_000;
const HALT_SAMPLES: i32 = 8;
const HALT_TIMEOUT_NS: u64 = 200_000;
// A wait that returns in under half its timeout did not halt (the platform drained deferred log
// bytes instead); the probe waits until the log is empty, within this many tries.
const HALT_TRIES_MAX: i32 = 4096;

let codeSink: u64 = 0; // keeps the plain-code loop from being optimised away

function perSample(start: u64, samples: u64): u64 {
  return (clockNs() - start) / samples;
}

function plainCodeNs(steps: u64 = CODE_STEPS): u64 {
  let x: u64 = 0x9e3779b97f4a7c15;
  const start = clockNs();
  for (let i: u64 = 0; i < steps; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  codeSink += x;
  return perSample(start, steps);
}

// A step of three shifts and xors takes a few ns on any CPU, under TCG or hardware KVM. Some
// hypervisors (a paravirtual KVM in its non-PVM mode, for one) emulate every instruction of a
// guest that is not written for them, at ~1 us each: say so once at boot, so a slow run has its
// reason in the log. 4 x 250 steps cost ~5 us natively, ~6 ms emulated; the fastest of the four
// counts, so a host that preempts the vCPU during one of them does not raise a false alarm.
const EMULATED_STEP_NS: u64 = 500;
const BOOT_CHECK_STEPS: u64 = 250;
const BOOT_CHECK_SAMPLES: i32 = 4;

export function warnIfEmulated(): void {
  let step = plainCodeNs(BOOT_CHECK_STEPS);
  for (let i = 1; i < BOOT_CHECK_SAMPLES && step >= EMULATED_STEP_NS; i++) step = min(step, plainCodeNs(BOOT_CHECK_STEPS));
  if (step < EMULATED_STEP_NS) return;
  if (logBegin(LEVEL_WARN, "boot")) {
    logStr("the hypervisor runs this firmware instruction by instruction (emulated): expect it ~1000x slower than under TCG or hardware KVM");
    logKv("code_step_ns", step);
    logEnd();
  }
}

// The median overshoot of a timed halt past its timeout: the timer interrupt's delivery cost.
function haltWakeNs(): u64 {
  const late = new StaticArray<u64>(HALT_SAMPLES);
  let taken = 0;
  for (let tries = 0; tries < HALT_TRIES_MAX && taken < HALT_SAMPLES; tries++) {
    const start = clockNs();
    waitForInterrupt(HALT_TIMEOUT_NS);
    const elapsed = clockNs() - start;
    if (elapsed < HALT_TIMEOUT_NS / 2) continue;
    unchecked((late[taken++] = elapsed > HALT_TIMEOUT_NS ? elapsed - HALT_TIMEOUT_NS : 0));
  }
  if (taken == 0) return 0;
  // Insertion sort: a handful of samples.
  for (let i = 1; i < taken; i++) {
    const v = unchecked(late[i]);
    let j = i - 1;
    while (j >= 0 && unchecked(late[j]) > v) {
      unchecked((late[j + 1] = late[j]));
      j--;
    }
    unchecked((late[j + 1] = v));
  }
  return unchecked(late[taken / 2]);
}

// Measures and logs `info probe: costs ...` (nanoseconds per operation).
export function logAccessCosts(t: VirtioTransport, notifyQueue: u32): void {
  const code = plainCodeNs();
  let start = clockNs();
  for (let i: u64 = 0; i < CLOCK_SAMPLES; i++) clockNs();
  const clockRead = perSample(start, CLOCK_SAMPLES);
  start = clockNs();
  for (let i: u64 = 0; i < ACCESS_SAMPLES; i++) portOut8(POST_PORT, 0);
  const portWrite = perSample(start, ACCESS_SAMPLES);
  start = clockNs();
  for (let i: u64 = 0; i < ACCESS_SAMPLES; i++) t.status();
  const mmioRead = perSample(start, ACCESS_SAMPLES);
  start = clockNs();
  for (let i: u64 = 0; i < ACCESS_SAMPLES; i++) t.disableConfigInterrupt();
  const mmioWrite = perSample(start, ACCESS_SAMPLES);
  start = clockNs();
  for (let i: u64 = 0; i < ACCESS_SAMPLES; i++) t.notify(notifyQueue);
  const notify = perSample(start, ACCESS_SAMPLES);
  const haltWake = haltWakeNs();
  if (logBegin(LEVEL_INFO, "probe")) {
    logStr("costs");
    logKv("code_step_ns", code);
    logKv("clock_read_ns", clockRead);
    logKv("port_write_ns", portWrite);
    logKv("mmio_read_ns", mmioRead);
    logKv("mmio_write_ns", mmioWrite);
    logKv("notify_ns", notify);
    logKv("halt_wake_ns", haltWake);
    logKv("samples", ACCESS_SAMPLES);
    logEnd();
  }
}
