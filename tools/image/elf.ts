// Just enough ELF64 reading for the image builder: the loadable segments of a little-endian x86-64
// executable. Anything else is an error that says what is wrong with the file.

export interface LoadSegment {
  index: number;
  physicalAddress: bigint; // where the bytes live in the flash (the load address)
  virtualAddress: bigint;
  fileBytes: Uint8Array;
}

const PT_LOAD = 1;

export class ElfError extends Error {}

export function readLoadSegments(file: Uint8Array): LoadSegment[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 64 || view.getUint32(0, false) !== 0x7f454c46) throw new ElfError("not an ELF file");
  if (file[4] !== 2 || file[5] !== 1) throw new ElfError("not a little-endian ELF64 file");
  if (view.getUint16(18, true) !== 0x3e) throw new ElfError("not an x86-64 ELF file");
  const programHeaderOffset = Number(view.getBigUint64(32, true));
  const programHeaderSize = view.getUint16(54, true);
  const programHeaderCount = view.getUint16(56, true);
  if (programHeaderOffset + programHeaderSize * programHeaderCount > file.length) {
    throw new ElfError("program headers lie outside the file");
  }
  const segments: LoadSegment[] = [];
  for (let i = 0; i < programHeaderCount; i++) {
    const at = programHeaderOffset + i * programHeaderSize;
    if (view.getUint32(at, true) !== PT_LOAD) continue;
    const offset = Number(view.getBigUint64(at + 8, true));
    const virtualAddress = view.getBigUint64(at + 16, true);
    const physicalAddress = view.getBigUint64(at + 24, true);
    const fileSize = Number(view.getBigUint64(at + 32, true));
    if (fileSize === 0) continue; // .bss and the stack: nothing to store
    if (offset + fileSize > file.length) throw new ElfError(`segment ${i} lies outside the file`);
    segments.push({ index: i, physicalAddress, virtualAddress, fileBytes: file.subarray(offset, offset + fileSize) });
  }
  return segments;
}
