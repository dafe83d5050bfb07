// The I/O APIC (82093AA) as the firmware programs it, at 0xfec00000: IOREGSEL/IOWIN, 24
// redirection entries (masked after reset), and the boot CPU's local APIC id register (0).
import { AccessWidth } from "./pci-config";

export const IOAPIC_BASE = 0xfec00000n;
const IOAPIC_WINDOW = 0x20n;
const LAPIC_ID = 0xfee00020n;
const LINES = 24;
const MASKED = 1 << 16;

export class SimIoapic {
  private select = 0;
  readonly low: number[] = Array.from({ length: LINES }, () => MASKED);
  readonly high: number[] = new Array<number>(LINES).fill(0);

  handles(address: bigint): boolean {
    return (address >= IOAPIC_BASE && address < IOAPIC_BASE + IOAPIC_WINDOW) || address === LAPIC_ID;
  }

  /** The vector line `gsi` delivers to, or null while it is masked. */
  vector(gsi: number): number | null {
    const entry = this.low[gsi];
    return entry === undefined || entry & MASKED ? null : entry & 0xff;
  }

  /** Whether line `gsi` is edge triggered (bit 15 clear). */
  edgeTriggered(gsi: number): boolean {
    return ((this.low[gsi] ?? 0) & (1 << 15)) === 0;
  }

  read(address: bigint, width: AccessWidth): bigint {
    if (address === LAPIC_ID) return 0n;
    if (width !== 4) return 0n;
    if (address === IOAPIC_BASE) return BigInt(this.select);
    if (address !== IOAPIC_BASE + 0x10n) return 0n;
    if (this.select === 0x01) return BigInt(((LINES - 1) << 16) | 0x20);
    const line = (this.select - 0x10) >> 1;
    if (this.select >= 0x10 && line < LINES) return BigInt(this.select & 1 ? this.high[line] : this.low[line]);
    return 0n;
  }

  write(address: bigint, width: AccessWidth, value: bigint): void {
    if (width !== 4) return;
    const v = Number(value & 0xffffffffn);
    if (address === IOAPIC_BASE) this.select = v & 0xff;
    else if (address === IOAPIC_BASE + 0x10n) {
      const line = (this.select - 0x10) >> 1;
      if (this.select < 0x10 || line >= LINES) return;
      if (this.select & 1) this.high[line] = v;
      else this.low[line] = v;
    }
  }
}
