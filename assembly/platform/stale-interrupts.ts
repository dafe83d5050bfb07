// Interrupts left in service that never ran, ended before the idle halt. Every handler of ours
// ends its interrupt before it returns and interrupts are on only inside the halt, so outside a
// handler the local APIC has nothing in service. When it has (the processor priority is not 0),
// the hypervisor marked an interrupt delivered that never reached us: it blocks every vector of
// its priority class and below, the device's and the timer's among them (0x30 and 0x31 share a
// class), and the halt that follows ends never. A microvm guest under the outer VM's nested KVM
// was found exactly so (docs/reliability.md): halted with interrupts on, the device's line raised,
// no exit for seconds. The work such an interrupt stood for is not lost: the caller looks at the
// rings after this, and the timer is armed for each halt.
import { interruptEnd, interruptInService } from "./imports";
import { LEVEL_WARN, logBegin, logEnd, logKv, logKvHex, logStr } from "./log";

// More than the classes our three vectors use: a priority that does not fall after this many
// ends is not ours to fix (a task priority someone else set), and the halt still has its timer.
const MAX_ENDS: i32 = 4;

let ended: u64 = 0;

// Before each idle halt: one APIC read, and an end of interrupt for each one found in service.
export function endStaleInterrupts(): void {
  for (let i = 0; i < MAX_ENDS; i++) {
    const priority = interruptInService();
    if (priority == 0) return;
    interruptEnd();
    ended++;
    // The first, then every power of two: a hypervisor that does it often still cannot flood the log.
    if ((ended & (ended - 1)) == 0 && logBegin(LEVEL_WARN, "apic")) {
      logStr("interrupt in service outside any handler (delivered by the hypervisor, never run): ended it before halting");
      logKvHex("priority", priority);
      logKv("count", ended);
      logEnd();
    }
  }
}

export function staleInterruptsEnded(): u64 {
  return ended;
}
