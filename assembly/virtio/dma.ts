// Memory the device reads and writes. Linear memory is identity-mapped, so the DMA address of wasm
// pointer p is memoryBase() + p; allocations are made once at start-up and never freed.
import { memoryBase } from "../platform/imports";

export const PAGE_SIZE: usize = 4096;
// Packet and event buffers start on a cache line, so no two share one.
export const CACHE_LINE: usize = 64;

let base: u64 = 0;
let baseKnown = false;

export function dmaAddress(pointer: usize): u64 {
  if (!baseKnown) {
    base = memoryBase();
    baseKnown = true;
  }
  return base + <u64>pointer;
}

// Zeroed memory aligned to `alignment` (a power of two). Start-up only: running out of linear
// memory here aborts (a build with too little LINEAR_MEMORY_MIB), it does not return 0.
// Packet buffers pass zeroed = false: every byte is written before it is read (by the device or
// by us), and clearing 3 MiB a second time costs boot time (tens of ms under nested KVM).
export function dmaAllocate(bytes: usize, alignment: usize, zeroed: bool = true): usize {
  const raw = heap.alloc(bytes + alignment - 1);
  const aligned = (raw + alignment - 1) & ~(alignment - 1);
  if (zeroed) memory.fill(aligned, 0, bytes);
  return aligned;
}

export function roundUpToPage(bytes: usize): usize {
  return (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

// Whole pages grown for this one use, so they read zero without having been written: wasm's
// memory.grow hands out zeros (the platform clears only what an earlier boot used). Under nested
// KVM each page the guest first touches is a nested page fault (~100-200 us with the refill after
// it); a pool the device fills need not be touched at boot. Start-up only, never freed; the
// allocator takes the pages after these when it grows (it manages non-adjacent regions).
export function dmaAllocateZeroPages(bytes: usize): usize {
  const first = memory.grow(<i32>((bytes + 0xffff) >> 16));
  if (first < 0) abort("out of linear memory for a DMA pool");
  return <usize>first << 16;
}

