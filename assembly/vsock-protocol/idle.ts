// The idle policy of the main loop: after polls that moved nothing for IDLE_SPIN_NS (an answer
// often follows within microseconds), halt until the device interrupts or the next deadline.
// A polling vCPU keeps a host CPU busy that the device's worker and its peers need.
import { clockNs, waitForInterrupt } from "../platform/imports";
import { connectionAt } from "./connection-table";
import { CONN_CLOSING, CONN_CONNECTING } from "./connection";
import { deviceArmInterrupts, deviceDisarmInterrupts } from "../vsock-device/device";
import { vsockTransmitBeforeHalt } from "./stack";

// Idle polls before halting.
export const IDLE_SPIN_NS: u64 = 50_000;
// The longest halt: timers without an interrupt of their own (app retries, counter reports,
// deferred log lines) run late by at most this.
export const IDLE_HALT_MAX_NS: u64 = 4_000_000;

let idle = false;
let idleSince: u64 = 0;
let halts: u64 = 0;

// The earliest connect or close deadline, 0 when no connection has one.
function nextConnectionDeadline(): u64 {
  let earliest: u64 = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state != CONN_CONNECTING && c.state != CONN_CLOSING) continue;
    if (earliest == 0 || c.deadline < earliest) earliest = c.deadline;
  }
  return earliest;
}

// How long the next halt may last, 0 when a deadline is already due.
export function idleHaltTimeout(now: u64): u64 {
  const deadline = nextConnectionDeadline();
  if (deadline == 0) return IDLE_HALT_MAX_NS;
  if (deadline <= now) return 0;
  return deadline - now < IDLE_HALT_MAX_NS ? deadline - now : IDLE_HALT_MAX_NS;
}

// Called after every poll of the main loop with whether that poll moved a packet.
export function idleAfterPoll(progressed: bool): void {
  if (progressed) {
    idle = false;
    return;
  }
  const now = clockNs();
  if (!idle) {
    idle = true;
    idleSince = now;
    return;
  }
  if (now - idleSince < IDLE_SPIN_NS) return;
  const timeout = idleHaltTimeout(now);
  if (timeout == 0) return;
  // Armed first, then one last look at the rings (inside deviceArmInterrupts) and at what we owe
  // the device (vsockTransmitBeforeHalt): an entry that lands after that raises the interrupt
  // the halt waits for. Nothing owed may wait for the halt's timer: it is no promise.
  if (deviceArmInterrupts()) {
    if (vsockTransmitBeforeHalt()) {
      idle = false; // a packet left: answers often follow within microseconds
    } else {
      halts++;
      waitForInterrupt(timeout);
    }
  }
  deviceDisarmInterrupts();
}

export function idleHalts(): u64 {
  return halts;
}
