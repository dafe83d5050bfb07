// Whether the device can wake us: the transport routes its queues to the platform's vector (MSI-X
// on PCI, an I/O APIC line on MMIO) and confirms every queue took it. Otherwise we only poll.
import { interruptVector } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { runtimeOption } from "../platform/options";
import { VirtioTransport } from "./transport";

let vector: u32 = 0;
let routed = false;
let active = false;
let fallbackLogged = false;

// `-fw_cfg name=opt/vsockfw/interrupts,string=off`: the device is polled without ever halting
// (to measure what the interrupt costs against a spinning vCPU). Read once.
let optionRead = false;
let optionOff = false;

function interruptsOffByOption(): bool {
  if (!optionRead) {
    optionOff = runtimeOption("interrupts") == "off";
    optionRead = true;
    if (optionOff && logBegin(LEVEL_INFO, "vsock-dev")) {
      logStr("interrupts off by option: polling only");
      logEnd();
    }
  }
  return optionOff;
}

// Before the queues are set up.
export function routeDeviceInterrupts(t: VirtioTransport): void {
  active = false;
  routed = false;
  if (!t.canInterrupt() || interruptsOffByOption()) return;
  vector = interruptVector();
  routed = vector != 0 && t.routeInterrupts(vector);
}

// After the queues are set up: interrupts on when the route holds; else one line saying why
// (once per run: a device that refuses keeps refusing).
export function confirmDeviceInterrupts(t: VirtioTransport): bool {
  if (!t.canInterrupt() || interruptsOffByOption()) {
    active = false;
    return false;
  }
  active = routed && t.confirmInterrupts();
  if (active) {
    if (logBegin(LEVEL_INFO, "vsock-dev")) {
      logStr("interrupts ");
      logStr(t.interruptRoute());
      logKv("vector", vector);
      logEnd();
    }
    return true;
  }
  if (!fallbackLogged && logBegin(LEVEL_WARN, "vsock-dev")) {
    logStr("no interrupts, polling only: ");
    logStr(vector == 0 ? "no interrupt vector from the platform" : t.interruptProblem());
    logEnd();
  }
  fallbackLogged = true;
  return false;
}

export function deviceInterruptsActive(): bool {
  return active;
}

export function deviceInterruptsOff(): void {
  active = false;
}
