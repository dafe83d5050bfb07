// Guest RAM as QEMU shares it (SET_MEM_TABLE): each region's fd is mapped MAP_SHARED into
// external ArrayBuffers, in windows of at most WINDOW_BYTES (Node's external buffers stop at
// 4 GiB). Windows overlap by WINDOW_OVERLAP so a buffer crossing a window boundary still fits in
// one of them. The device model sees guest physical addresses; ring addresses arrive as QEMU's
// virtual addresses and are translated here. Mappings are released explicitly (replace, close).
import { GuestMemory, GuestMemoryError, MemoryRegion, RegionGuestMemory } from "../vsock-model/guest-memory";
import { addon, check } from "./addon";
import { MemoryRegionDescription } from "./protocol";

export const WINDOW_BYTES = 1 << 30;
export const WINDOW_OVERLAP = 1 << 20;
const PAGE = 4096;

interface MappedWindow {
  buffer: ArrayBuffer;
  bytes: Uint8Array;
  guestAddress: number;
}

export interface MappedRegion extends MemoryRegionDescription {
  windows: MappedWindow[];
}

/** Maps one region's fd; the caller still owns (and closes) the fd. */
function mapRegion(description: MemoryRegionDescription, fd: number): MappedRegion {
  const size = Number(description.memorySize);
  const guestBase = Number(description.guestPhysAddr);
  const offset = Number(description.mmapOffset);
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(guestBase + size) || !Number.isSafeInteger(offset + size) || size <= 0) {
    throw new Error(`memory region out of range: gpa 0x${description.guestPhysAddr.toString(16)} size 0x${description.memorySize.toString(16)}`);
  }
  const windows: MappedWindow[] = [];
  try {
    for (let start = 0; start < size; start += WINDOW_BYTES) {
      const length = Math.min(size - start, WINDOW_BYTES + WINDOW_OVERLAP);
      const fileOffset = offset + start;
      const aligned = fileOffset - (fileOffset % PAGE);
      const slack = fileOffset - aligned;
      const result = addon().mapShared(fd, aligned, length + slack);
      if (typeof result === "number") check(`mmap of region gpa 0x${guestBase.toString(16)}`, result);
      const buffer = result as ArrayBuffer;
      windows.push({ buffer, bytes: new Uint8Array(buffer, slack, length), guestAddress: guestBase + start });
      if (start + length >= size) break;
    }
  } catch (error) {
    for (const w of windows) addon().unmap(w.buffer);
    throw error;
  }
  return { ...description, windows };
}

/** The guest memory a vhost-user device works on; its table can be replaced while it is in use. */
export class MappedGuestMemory implements GuestMemory {
  private regions: MappedRegion[] = [];
  private memory = new RegionGuestMemory([]);

  get mappedRegions(): readonly MappedRegion[] {
    return this.regions;
  }

  /** Maps the new table, switches to it, then unmaps the old one. Closes every fd it was given. */
  replace(descriptions: MemoryRegionDescription[], fds: number[]): void {
    let next: MappedRegion[] = [];
    try {
      if (fds.length !== descriptions.length) throw new Error(`SET_MEM_TABLE: ${descriptions.length} regions but ${fds.length} fds`);
      next = descriptions.map((d, i) => mapRegion(d, fds[i]));
    } catch (error) {
      for (const r of next) for (const w of r.windows) addon().unmap(w.buffer);
      throw error;
    } finally {
      for (const fd of fds) addon().close(fd);
    }
    const old = this.regions;
    this.regions = next;
    this.memory = new RegionGuestMemory(next.flatMap((r) => r.windows.map((w): MemoryRegion => ({ guestAddress: w.guestAddress, bytes: () => w.bytes }))));
    release(old);
  }

  /** Unmaps everything (disconnect); later accesses fail as outside RAM. */
  clear(): void {
    const old = this.regions;
    this.regions = [];
    this.memory = new RegionGuestMemory([]);
    release(old);
  }

  /** QEMU virtual address -> guest physical address (ring addresses of SET_VRING_ADDR). */
  translate(userAddress: bigint, length: number): number {
    for (const r of this.regions) {
      if (userAddress >= r.userspaceAddr && userAddress + BigInt(length) <= r.userspaceAddr + r.memorySize) {
        return Number(userAddress - r.userspaceAddr + r.guestPhysAddr);
      }
    }
    throw new GuestMemoryError(Number(userAddress), length);
  }

  contains(address: number, length: number): boolean {
    return this.memory.contains(address, length);
  }
  read8(address: number): number {
    return this.memory.read8(address);
  }
  read16(address: number): number {
    return this.memory.read16(address);
  }
  read32(address: number): number {
    return this.memory.read32(address);
  }
  read64(address: number): bigint {
    return this.memory.read64(address);
  }
  write8(address: number, value: number): void {
    this.memory.write8(address, value);
  }
  write16(address: number, value: number): void {
    this.memory.write16(address, value);
  }
  write32(address: number, value: number): void {
    this.memory.write32(address, value);
  }
  write64(address: number, value: bigint): void {
    this.memory.write64(address, value);
  }
  readBytes(address: number, length: number): Uint8Array {
    return this.memory.readBytes(address, length);
  }
  writeBytes(address: number, bytes: Uint8Array): void {
    this.memory.writeBytes(address, bytes);
  }
}

function release(regions: MappedRegion[]): void {
  for (const r of regions) for (const w of r.windows) addon().unmap(w.buffer);
}
