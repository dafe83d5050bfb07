// Whether the vsock device can wake us: MSI-X entry 0 to the platform's vector, every queue routed
// to it and the device agreeing (it reads back NO_VECTOR when it cannot). Otherwise we only poll.
import { PciFunction } from "../pci/scan";
import { msixDisable, msixErrorName, MSIX_OK, msixRouteEntry0 } from "../pci/msix";
import { interruptVector } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { VIRTIO_MSI_NO_VECTOR } from "./constants";
import { VirtioTransport } from "./transport";

const QUEUE_ENTRY: u32 = 0; // every queue shares MSI-X table entry 0

let msixResult: i32 = MSIX_OK;
let vector: u32 = 0;
let active = false;
let fallbackLogged = false;

// Before the queues are set up: MSI-X on, and queues set up from now on routed to entry 0.
export function routeDeviceInterrupts(f: PciFunction, t: VirtioTransport): void {
  active = false;
  vector = interruptVector();
  msixResult = msixRouteEntry0(f, vector);
  t.routeQueueInterrupts(msixResult == MSIX_OK ? QUEUE_ENTRY : VIRTIO_MSI_NO_VECTOR);
}

// After the queues are set up: interrupts on when every queue took its vector; else MSI-X off
// again and one line saying why (once per run: a device that refuses keeps refusing).
export function confirmDeviceInterrupts(f: PciFunction, t: VirtioTransport): bool {
  const refused = t.refusedQueueVectors();
  active = msixResult == MSIX_OK && refused == 0;
  if (active) {
    if (logBegin(LEVEL_INFO, "vsock-dev")) {
      logStr("interrupts msix");
      logKv("entry", QUEUE_ENTRY);
      logKv("vector", vector);
      logEnd();
    }
    return true;
  }
  if (msixResult == MSIX_OK) msixDisable(f);
  if (!fallbackLogged && logBegin(LEVEL_WARN, "vsock-dev")) {
    logStr("no interrupts, polling only: ");
    logStr(msixResult != MSIX_OK ? msixErrorName(msixResult) : "device refused the queue vector");
    logKv("queues_refused", refused);
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
