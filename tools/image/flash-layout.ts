// Places an ELF's load segments into a flash image that ends at 4 GiB, and checks the layout:
// every segment inside the flash, no two overlapping, and a jump in the reset vector's 16 bytes.
import { LoadSegment } from "./elf.ts";

export const FOUR_GIB = 0x1_0000_0000n;
export const RESET_VECTOR = 0xffff_fff0n;
export const ERASED_BYTE = 0xff; // what unprogrammed flash reads as

export class LayoutError extends Error {}

export interface FlashImage {
  image: Uint8Array;
  flashBase: bigint;
  payloadBytes: number; // bytes taken by segments (code, data, reset-vector stages)
  freeBytes: number;
}

const hex = (value: bigint) => "0x" + value.toString(16);

function describe(segment: LoadSegment): string {
  const end = segment.physicalAddress + BigInt(segment.fileBytes.length);
  return `segment ${segment.index} [${hex(segment.physicalAddress)}, ${hex(end)})`;
}

export function parseFlashSize(text: string): number {
  const match = /^(\d+)([KkMm]?)$/.exec(text.trim());
  if (!match) throw new LayoutError(`flash size "${text}" is not a number with an optional K or M suffix`);
  const unit = match[2].toUpperCase() === "M" ? 1 << 20 : match[2].toUpperCase() === "K" ? 1 << 10 : 1;
  const bytes = Number(match[1]) * unit;
  if (bytes < 64 << 10 || bytes > 16 << 20 || (bytes & (bytes - 1)) !== 0) {
    throw new LayoutError(`flash size ${bytes} must be a power of two between 64 KiB and 16 MiB`);
  }
  return bytes;
}

export function buildFlashImage(segments: LoadSegment[], flashBytes: number): FlashImage {
  const flashBase = FOUR_GIB - BigInt(flashBytes);
  const image = new Uint8Array(flashBytes).fill(ERASED_BYTE);
  const sorted = [...segments].sort((a, b) => (a.physicalAddress < b.physicalAddress ? -1 : 1));
  let payloadBytes = 0;
  for (let i = 0; i < sorted.length; i++) {
    const segment = sorted[i];
    const start = segment.physicalAddress;
    const end = start + BigInt(segment.fileBytes.length);
    if (start < flashBase || end > FOUR_GIB) {
      throw new LayoutError(
        `${describe(segment)} does not fit in the ${flashBytes >> 10} KiB flash [${hex(flashBase)}, ${hex(FOUR_GIB)})` +
          (start < flashBase ? ` (it starts ${flashBase - start} bytes below the flash)` : ""),
      );
    }
    const next = sorted[i + 1];
    if (next && next.physicalAddress < end) {
      throw new LayoutError(`${describe(segment)} overlaps ${describe(next)}`);
    }
    image.set(segment.fileBytes, Number(start - flashBase));
    payloadBytes += segment.fileBytes.length;
  }
  checkResetVector(image, flashBase);
  return { image, flashBase, payloadBytes, freeBytes: flashBytes - payloadBytes };
}

// The CPU starts at 0xFFFFFFF0 in real mode; a near jump there must land inside the flash.
function checkResetVector(image: Uint8Array, flashBase: bigint): void {
  const at = Number(RESET_VECTOR - flashBase);
  const opcode = image[at];
  let target: bigint;
  if (opcode === 0xe9) {
    const rel = (image[at + 1] | (image[at + 2] << 8)) << 16 >> 16; // rel16, sign-extended
    target = (RESET_VECTOR + 3n + BigInt(rel)) & 0xffff_ffffn;
  } else if (opcode === 0xeb) {
    const rel = (image[at + 1] << 24) >> 24;
    target = RESET_VECTOR + 2n + BigInt(rel);
  } else {
    throw new LayoutError(`no jump at the reset vector ${hex(RESET_VECTOR)} (found byte 0x${opcode.toString(16)})`);
  }
  // Real mode: the jump stays inside the 64 KiB segment at 0xFFFF0000.
  if (target < 0xffff_0000n || target >= RESET_VECTOR || target < flashBase) {
    throw new LayoutError(`the reset vector jumps to ${hex(target)}, outside the flash's last 64 KiB`);
  }
  if (image[Number(target - flashBase)] === ERASED_BYTE) {
    throw new LayoutError(`the reset vector jumps to ${hex(target)}, which holds no code`);
  }
}
