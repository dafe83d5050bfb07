// Guest physical memory as a device sees it (DMA). The device model reads and writes rings and
// buffers only through this interface, so the same model runs over the wasm memory in unit tests
// and over mmapped guest RAM regions in the vhost-user backend. All values are little-endian.

export class GuestMemoryError extends Error {
  constructor(
    readonly address: number,
    readonly length: number,
  ) {
    super(`guest memory access outside RAM: 0x${address.toString(16)} +${length}`);
    this.name = "GuestMemoryError";
  }
}

export interface GuestMemory {
  read8(address: number): number;
  read16(address: number): number;
  read32(address: number): number;
  read64(address: number): bigint;
  write8(address: number, value: number): void;
  write16(address: number, value: number): void;
  write32(address: number, value: number): void;
  write64(address: number, value: bigint): void;
  /** A copy of `length` bytes. */
  readBytes(address: number, length: number): Uint8Array;
  writeBytes(address: number, bytes: Uint8Array): void;
  /** True when [address, address + length) lies inside one region. */
  contains(address: number, length: number): boolean;
}

/** One contiguous piece of guest RAM. `bytes()` is called on every access (wasm memory can grow). */
export interface MemoryRegion {
  guestAddress: number;
  bytes(): Uint8Array;
}

/** Guest memory made of one or more regions (wasm memory: one; vhost-user: one per mapped fd). */
export class RegionGuestMemory implements GuestMemory {
  constructor(private readonly regions: MemoryRegion[]) {}

  /** Bytes and offset for an access that must fit in one region; throws GuestMemoryError. */
  private locate(address: number, length: number): { bytes: Uint8Array; offset: number } {
    if (!Number.isSafeInteger(address) || address < 0 || length < 0) throw new GuestMemoryError(address, length);
    for (const region of this.regions) {
      const bytes = region.bytes();
      const offset = address - region.guestAddress;
      if (offset >= 0 && offset + length <= bytes.length) return { bytes, offset };
    }
    throw new GuestMemoryError(address, length);
  }

  private view(address: number, length: number): DataView {
    const { bytes, offset } = this.locate(address, length);
    return new DataView(bytes.buffer, bytes.byteOffset + offset, length);
  }

  contains(address: number, length: number): boolean {
    try {
      this.locate(address, length);
      return true;
    } catch {
      return false;
    }
  }

  read8(address: number): number {
    return this.view(address, 1).getUint8(0);
  }
  read16(address: number): number {
    return this.view(address, 2).getUint16(0, true);
  }
  read32(address: number): number {
    return this.view(address, 4).getUint32(0, true);
  }
  read64(address: number): bigint {
    return this.view(address, 8).getBigUint64(0, true);
  }
  write8(address: number, value: number): void {
    this.view(address, 1).setUint8(0, value);
  }
  write16(address: number, value: number): void {
    this.view(address, 2).setUint16(0, value, true);
  }
  write32(address: number, value: number): void {
    this.view(address, 4).setUint32(0, value >>> 0, true);
  }
  write64(address: number, value: bigint): void {
    this.view(address, 8).setBigUint64(0, BigInt.asUintN(64, value), true);
  }
  readBytes(address: number, length: number): Uint8Array {
    const { bytes, offset } = this.locate(address, length);
    return bytes.slice(offset, offset + length);
  }
  writeBytes(address: number, data: Uint8Array): void {
    const { bytes, offset } = this.locate(address, data.length);
    bytes.set(data, offset);
  }
}

/** The wasm linear memory placed at guest physical `base` (identity mapping: DMA = base + wasm pointer). */
export function wasmGuestMemory(memory: WebAssembly.Memory, base: number): RegionGuestMemory {
  return new RegionGuestMemory([{ guestAddress: base, bytes: () => new Uint8Array(memory.buffer) }]);
}
