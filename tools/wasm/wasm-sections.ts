// Just enough of the wasm binary format (core spec 5.5) to read and replace the data section.
import type { DataSegment } from "./data-segments.ts";

const MAGIC_AND_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const SECTION_DATA = 11;
const SECTION_DATA_COUNT = 12;
const SEGMENT_ACTIVE_MEMORY_0 = 0;
const OP_I32_CONST = 0x41;
const OP_END = 0x0b;

interface Section {
  id: number;
  start: number; // of the id byte
  contentStart: number;
  end: number;
}

class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    public at: number,
  ) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new Error("truncated module");
    return this.bytes[this.at++];
  }
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new Error("LEB128 longer than 5 bytes");
  }
  i32(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = this.byte();
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80 && shift < 35);
    if (b & 0x80) throw new Error("LEB128 longer than 5 bytes");
    return shift < 32 && b & 0x40 ? result | (-1 << shift) : result;
  }
  take(length: number): Uint8Array {
    if (this.at + length > this.bytes.length) throw new Error("truncated module");
    const view = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }
}

function sections(wasm: Uint8Array): Section[] {
  MAGIC_AND_VERSION.forEach((b, i) => {
    if (wasm[i] !== b) throw new Error("not a wasm 1.0 module");
  });
  const found: Section[] = [];
  const r = new Reader(wasm, MAGIC_AND_VERSION.length);
  while (r.at < wasm.length) {
    const start = r.at;
    const id = r.byte();
    const size = r.u32();
    const contentStart = r.at;
    r.take(size);
    found.push({ id, start, contentStart, end: r.at });
  }
  return found;
}

export function readDataSection(wasm: Uint8Array): DataSegment[] {
  const data = sections(wasm).find((s) => s.id === SECTION_DATA);
  if (!data) return [];
  const r = new Reader(wasm.subarray(0, data.end), data.contentStart);
  const count = r.u32();
  const segments: DataSegment[] = [];
  for (let i = 0; i < count; i++) {
    const flags = r.u32();
    if (flags !== SEGMENT_ACTIVE_MEMORY_0) throw new Error(`data segment ${i}: passive or not in memory 0`);
    if (r.byte() !== OP_I32_CONST) throw new Error(`data segment ${i}: offset is not an i32.const`);
    const offset = r.i32() >>> 0;
    if (r.byte() !== OP_END) throw new Error(`data segment ${i}: offset expression longer than one constant`);
    segments.push({ offset, data: r.take(r.u32()).slice() });
  }
  if (r.at !== data.end) throw new Error("data section has bytes after its segments");
  return segments;
}

function u32Leb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value >>>= 7;
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

function i32Leb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (b & 0x40) === 0) || (value === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, content: number[] | Uint8Array): Uint8Array {
  const size = u32Leb(content.length);
  const out = new Uint8Array(1 + size.length + content.length);
  out[0] = id;
  out.set(size, 1);
  out.set(content, 1 + size.length);
  return out;
}

// The module with its data section holding `segments` (and its data count section, when it has
// one, saying how many). Everything else is copied byte for byte.
export function replaceDataSection(wasm: Uint8Array, segments: DataSegment[]): Uint8Array {
  const all = sections(wasm);
  if (!all.some((s) => s.id === SECTION_DATA)) throw new Error("module has no data section");
  const content: number[] = [...u32Leb(segments.length)];
  for (const s of segments) {
    content.push(SEGMENT_ACTIVE_MEMORY_0, OP_I32_CONST, ...i32Leb(s.offset | 0), OP_END, ...u32Leb(s.data.length));
    for (const b of s.data) content.push(b);
  }
  const parts: Uint8Array[] = [wasm.subarray(0, MAGIC_AND_VERSION.length)];
  for (const s of all) {
    if (s.id === SECTION_DATA) parts.push(section(SECTION_DATA, content));
    else if (s.id === SECTION_DATA_COUNT) parts.push(section(SECTION_DATA_COUNT, u32Leb(segments.length)));
    else parts.push(wasm.subarray(s.start, s.end));
  }
  return new Uint8Array(Buffer.concat(parts));
}
