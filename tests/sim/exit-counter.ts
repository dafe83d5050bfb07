// Exit accounting. Under a hypervisor every port I/O, MMIO access (a notify is an MMIO write),
// debugcon byte and halt of the firmware is a VM exit (10-200 us under nested KVM), so the
// machine counts them, by port class and by MMIO region, per machine. A test snapshots the
// counts before and after a path and budgets the difference. Clock reads (rdtsc) and the
// platform's idle hook are counted too but are no exits.
import { FW_CFG_DATA_PORT, FW_CFG_DMA_HIGH_PORT, FW_CFG_DMA_LOW_PORT, FW_CFG_SELECTOR_PORT } from "./fw-cfg";
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "./pci-config";
import { VirtioMmioRegion } from "./virtio-pci";

export const DEBUGCON_PORT = 0x402;
export const DEBUG_EXIT_PORT = 0xf4;

export type PortClass = "pci-config" | "debugcon" | "fw-cfg" | "debug-exit" | "other";
/** Virtio regions of the device's BARs, or "other" (another function's BAR, LAPIC, nothing). */
export type MmioRegion = VirtioMmioRegion;

const PORT_CLASSES: PortClass[] = ["pci-config", "debugcon", "fw-cfg", "debug-exit", "other"];
const MMIO_REGIONS: MmioRegion[] = ["common-cfg", "isr", "device-cfg", "notify", "msix-table", "msix-pba", "other"];

/**
 * One counter per kind: `port.<class>` (debugcon counts bytes: QEMU takes one per exit),
 * `mmio.<region>.read|write`, `notify.rx|tx|event` (notify writes per queue), `clock` (clock_ns
 * calls), `idle` (env.idle calls), `halt` (wait_for_interrupt calls), `interrupt` (MSI-X
 * interrupts the device raised).
 */
export type ExitCounts = Record<string, number>;

export function portClass(port: number): PortClass {
  if (port === PCI_CONFIG_ADDRESS_PORT || (port >= PCI_CONFIG_DATA_PORT && port < PCI_CONFIG_DATA_PORT + 4)) return "pci-config";
  if (port === DEBUGCON_PORT) return "debugcon";
  if (port === FW_CFG_SELECTOR_PORT || port === FW_CFG_DATA_PORT || port === FW_CFG_DMA_HIGH_PORT || port === FW_CFG_DMA_LOW_PORT) return "fw-cfg";
  if (port === DEBUG_EXIT_PORT) return "debug-exit";
  return "other";
}

export const QUEUE_NAMES = ["rx", "tx", "event"];

/** Every kind with 0, so snapshots and diffs have the same keys whatever happened. */
function zeroCounts(): ExitCounts {
  const counts: ExitCounts = {};
  for (const c of PORT_CLASSES) counts[`port.${c}`] = 0;
  for (const r of MMIO_REGIONS) {
    counts[`mmio.${r}.read`] = 0;
    counts[`mmio.${r}.write`] = 0;
  }
  for (const q of QUEUE_NAMES) counts[`notify.${q}`] = 0;
  for (const k of ["clock", "idle", "halt", "interrupt"]) counts[k] = 0;
  return counts;
}

export class ExitCounter {
  private readonly counts = zeroCounts();

  add(kind: string, n = 1): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }

  snapshot(): ExitCounts {
    return { ...this.counts };
  }
}

export function exitDiff(after: ExitCounts, before: ExitCounts): ExitCounts {
  const d: ExitCounts = {};
  for (const key of Object.keys(after)) d[key] = after[key] - (before[key] ?? 0);
  return d;
}

/** Reads and writes of one MMIO region. */
export function mmioAccesses(d: ExitCounts, region: MmioRegion): number {
  return d[`mmio.${region}.read`] + d[`mmio.${region}.write`];
}

/** Device register exits: every port access but debugcon, every MMIO access. */
export function registerExits(d: ExitCounts, options: { pciConfig?: boolean } = {}): number {
  let n = 0;
  for (const c of PORT_CLASSES) if (c !== "debugcon" && (c !== "pci-config" || options.pciConfig !== false)) n += d[`port.${c}`];
  for (const r of MMIO_REGIONS) n += mmioAccesses(d, r);
  return n;
}

/** Every VM exit: register exits, debugcon bytes and halts. */
export function totalExits(d: ExitCounts, options: { pciConfig?: boolean } = {}): number {
  return registerExits(d, options) + d["port.debugcon"] + d.halt;
}

/** The non-zero counts on one line, `per` dividing each (per packet, per connection). */
export function formatExits(d: ExitCounts, per = 1): string {
  const value = (n: number) => (per === 1 ? String(n) : (n / per).toFixed(3));
  return Object.entries(d)
    .filter(([, n]) => n !== 0)
    .map(([k, n]) => `${k}=${value(n)}`)
    .join(" ");
}
