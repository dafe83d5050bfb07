// The PVH shape's ELF checks: the XEN_ELFNOTE_PHYS32_ENTRY note a PVH loader enters by, and load
// segments that lie in low RAM (a loader copies them to their physical addresses; QEMU's option-ROM
// path copies the whole span between the lowest and the highest, so one stray segment near 4 GiB
// would make a 4 GiB copy).
import { LoadSegment } from "./elf.ts";

const PT_NOTE = 4;
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
export const PVH_SEGMENT_LIMIT = 0x1000_0000n; // 256 MiB: the image, .bss and the stack lie far below

export class PvhError extends Error {}

// The entry address of the first XEN_ELFNOTE_PHYS32_ENTRY note, read the way QEMU reads it (the
// name padded to the note segment's alignment), and checked the way the ELF note format says
// (padded to 4): the two must agree, or some loader would jump elsewhere.
export function readPvhEntry(file: Uint8Array): number {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const programHeaderOffset = Number(view.getBigUint64(32, true));
  const programHeaderSize = view.getUint16(54, true);
  const programHeaderCount = view.getUint16(56, true);
  for (let i = 0; i < programHeaderCount; i++) {
    const at = programHeaderOffset + i * programHeaderSize;
    if (view.getUint32(at, true) !== PT_NOTE) continue;
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    const align = Number(view.getBigUint64(at + 48, true)) || 1;
    let note = offset;
    while (note + 12 <= offset + size) {
      const nameSize = view.getUint32(note, true);
      const descSize = view.getUint32(note + 4, true);
      const type = view.getUint32(note + 8, true);
      const name = Buffer.from(file.subarray(note + 12, note + 12 + nameSize)).toString("latin1");
      const desc = note + 12 + ((nameSize + 3) & ~3);
      if (name === "Xen\0" && type === XEN_ELFNOTE_PHYS32_ENTRY) {
        if (descSize !== 4 && descSize !== 8) throw new PvhError(`PVH note: entry of ${descSize} bytes (4 or 8 expected)`);
        const qemuDesc = note + 12 + Math.ceil(nameSize / align) * align;
        if (qemuDesc !== desc) throw new PvhError(`PVH note: the note segment's alignment ${align} moves QEMU's view of the entry`);
        return view.getUint32(desc, true);
      }
      note = desc + ((descSize + 3) & ~3);
    }
  }
  throw new PvhError("no XEN_ELFNOTE_PHYS32_ENTRY note (type 18, name \"Xen\")");
}

export function checkPvhSegments(segments: LoadSegment[], entry: number): void {
  let covered = false;
  for (const s of segments) {
    const end = s.physicalAddress + BigInt(s.fileBytes.length);
    if (end > PVH_SEGMENT_LIMIT) {
      throw new PvhError(`segment ${s.index} at 0x${s.physicalAddress.toString(16)} lies above 256 MiB: a PVH loader would copy a huge span`);
    }
    if (s.physicalAddress !== s.virtualAddress) throw new PvhError(`segment ${s.index} is not loaded where it runs`);
    if (BigInt(entry) >= s.physicalAddress && BigInt(entry) < end) covered = true;
  }
  if (!covered) throw new PvhError(`the PVH entry 0x${entry.toString(16)} lies in no load segment`);
}
