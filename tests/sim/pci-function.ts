// One PCI function with a type-0 header: 256 bytes of config space, a per-byte write mask, BARs
// that answer sizing (write all-ones, read back the size mask) and a capability list.
import {
  AccessWidth,
  PCI_BAR0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_HEADER_MULTIFUNCTION,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_LATENCY_TIMER,
  PCI_REVISION,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  formatBdf,
} from "./pci-config";

export const PCI_CONFIG_SPACE_SIZE = 256;
const CAPABILITY_AREA_START = 0x40;

/** A device region behind a BAR. Offsets are relative to the BAR's base; values are zero-extended. */
export interface BarHandler {
  read(offset: number, width: AccessWidth): bigint;
  write(offset: number, width: AccessWidth, value: bigint): void;
}

export type BarKind = "mem32" | "mem64" | "io";

export interface BarSpec {
  index: number; // 0..5; a mem64 BAR also occupies index + 1
  kind: BarKind;
  size: number; // power of two (>= 16 for memory, >= 4 for I/O)
  prefetchable?: boolean;
  handler: BarHandler;
}

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  classCode: number; // class << 16 | subclass << 8 | prog-if
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  interruptPin?: number;
}

export class PciConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PciConfigError";
  }
}

/** A BAR (bytes behind it) that remembers what was written: enough for functions nobody drives. */
export class MemoryBackedBar implements BarHandler {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  read(offset: number, width: AccessWidth): bigint {
    let value = 0n;
    for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.bytes[offset + i] ?? 0xff);
    return value;
  }
  write(offset: number, width: AccessWidth, value: bigint): void {
    for (let i = 0; i < width; i++) {
      if (offset + i < this.bytes.length) this.bytes[offset + i] = Number((value >> BigInt(i * 8)) & 0xffn);
    }
  }
}

export class PciFunction {
  readonly config = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly writeMask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly bars: (BarSpec | undefined)[] = new Array(6).fill(undefined);
  private capabilityTail = 0; // offset of the last capability in the list (0: none)
  private capabilityFree = CAPABILITY_AREA_START;

  constructor(
    readonly bus: number,
    readonly device: number,
    readonly fn: number,
    readonly identity: PciIdentity,
  ) {
    this.set16(PCI_VENDOR_ID, identity.vendorId);
    this.set16(PCI_DEVICE_ID, identity.deviceId);
    this.config[PCI_REVISION] = identity.revision ?? 0;
    this.config[PCI_CLASS_PROG] = identity.classCode & 0xff;
    this.config[PCI_CLASS_PROG + 1] = (identity.classCode >> 8) & 0xff;
    this.config[PCI_CLASS_PROG + 2] = (identity.classCode >> 16) & 0xff;
    this.set16(PCI_SUBSYSTEM_VENDOR_ID, identity.subsystemVendorId ?? 0);
    this.set16(PCI_SUBSYSTEM_ID, identity.subsystemId ?? 0);
    this.config[PCI_INTERRUPT_LINE + 1] = identity.interruptPin ?? 0;
    const commandMask =
      PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
    this.setMask16(PCI_COMMAND, commandMask);
    this.writeMask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.writeMask[PCI_LATENCY_TIMER] = 0xff;
    this.writeMask[PCI_INTERRUPT_LINE] = 0xff;
  }

  get name(): string {
    return formatBdf(this.bus, this.device, this.fn);
  }

  // ---- raw config helpers (device side: no write mask) ----
  get8(offset: number): number {
    return this.config[offset];
  }
  get16(offset: number): number {
    return this.config[offset] | (this.config[offset + 1] << 8);
  }
  get32(offset: number): number {
    return (this.get16(offset) | (this.get16(offset + 2) << 16)) >>> 0;
  }
  set16(offset: number, value: number): void {
    this.config[offset] = value & 0xff;
    this.config[offset + 1] = (value >> 8) & 0xff;
  }
  set32(offset: number, value: number): void {
    this.set16(offset, value & 0xffff);
    this.set16(offset + 2, (value >>> 16) & 0xffff);
  }
  private setMask16(offset: number, mask: number): void {
    this.writeMask[offset] = mask & 0xff;
    this.writeMask[offset + 1] = (mask >> 8) & 0xff;
  }
  private setMask32(offset: number, mask: number): void {
    this.setMask16(offset, mask & 0xffff);
    this.setMask16(offset + 2, (mask >>> 16) & 0xffff);
  }

  setMultifunction(on: boolean): void {
    this.config[PCI_HEADER_TYPE] = (this.config[PCI_HEADER_TYPE] & 0x7f) | (on ? PCI_HEADER_MULTIFUNCTION : 0);
  }

  // ---- BARs ----
  addBar(spec: BarSpec): void {
    const { index, kind, size } = spec;
    const last = kind === "mem64" ? index + 1 : index;
    if (index < 0 || last > 5) throw new PciConfigError(`${this.name}: BAR${index} out of range`);
    if (size & (size - 1) || size < (kind === "io" ? 4 : 16)) throw new PciConfigError(`${this.name}: BAR size ${size}`);
    if (this.bars[index] || (kind === "mem64" && this.bars[index + 1])) throw new PciConfigError(`${this.name}: BAR${index} taken`);
    this.bars[index] = spec;
    const offset = PCI_BAR0 + index * 4;
    let typeBits = 0;
    if (kind === "io") typeBits = PCI_BASE_ADDRESS_SPACE_IO;
    else {
      if (kind === "mem64") typeBits |= PCI_BASE_ADDRESS_MEM_TYPE_64;
      if (spec.prefetchable) typeBits |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    }
    this.set32(offset, typeBits);
    const lowMask = (~(size - 1) & (kind === "io" ? ~0x3 : ~0xf)) >>> 0;
    this.setMask32(offset, lowMask);
    if (kind === "mem64") this.setMask32(offset + 4, 0xffffffff);
  }

  /** The address the driver assigned to a BAR (0: none), from the BAR register(s). */
  barAddress(index: number): bigint {
    const bar = this.bars[index];
    if (!bar) return 0n;
    const offset = PCI_BAR0 + index * 4;
    const low = BigInt(this.get32(offset) & (bar.kind === "io" ? ~0x3 : ~0xf)) & 0xffffffffn;
    if (bar.kind !== "mem64") return low;
    return (BigInt(this.get32(offset + 4)) << 32n) | low;
  }

  get command(): number {
    return this.get16(PCI_COMMAND);
  }
  get memoryEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }
  get ioEnabled(): boolean {
    return (this.command & PCI_COMMAND_IO) !== 0;
  }
  get busMasterEnabled(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  // ---- capabilities ----
  /** Appends a capability (`body` is everything after the id and next bytes); returns its offset. */
  addCapability(id: number, body: Uint8Array, at?: number): number {
    const offset = at ?? this.capabilityFree;
    const length = body.length + 2;
    if (offset < CAPABILITY_AREA_START || offset + length > PCI_CONFIG_SPACE_SIZE || offset & 3) {
      throw new PciConfigError(`${this.name}: capability at 0x${offset.toString(16)} does not fit`);
    }
    this.config[offset] = id;
    this.config[offset + 1] = 0;
    this.config.set(body, offset + 2);
    if (this.capabilityTail === 0) this.config[PCI_CAPABILITY_LIST] = offset;
    else this.config[this.capabilityTail + 1] = offset;
    this.capabilityTail = offset;
    this.capabilityFree = Math.max(this.capabilityFree, (offset + length + 3) & ~3);
    this.set16(PCI_STATUS, this.get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    return offset;
  }

  /** The capability list as a driver would walk it (bounded, so a loop cannot hang a test). */
  capabilities(): { id: number; offset: number }[] {
    const found: { id: number; offset: number }[] = [];
    let offset = this.config[PCI_CAPABILITY_LIST] & 0xfc;
    while (offset !== 0 && found.length < 48) {
      found.push({ id: this.config[offset], offset });
      offset = this.config[offset + 1] & 0xfc;
    }
    return found;
  }

  // ---- driver-side config access (what 0xCF8/0xCFC reach) ----
  /** `offset` may be any byte offset; an access must not cross its dword (the bus guarantees it). */
  readConfig(offset: number, width: 1 | 2 | 4): number {
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + this.config[offset + i];
    return value;
  }

  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const byte = Math.floor(value / 2 ** (8 * i)) & 0xff;
      const mask = this.writeMask[at];
      this.config[at] = (this.config[at] & ~mask) | (byte & mask);
    }
  }
}
