// Merging data segments keeps linear memory's initial image byte for byte, and the rest of the
// module untouched: checked on small cases and on the firmware's own wasm.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { type DataSegment, mergeDataSegments } from "../../tools/wasm/data-segments.ts";
import { readDataSection, replaceDataSection } from "../../tools/wasm/wasm-sections.ts";

function image(segments: DataSegment[]): Uint8Array {
  const end = Math.max(0, ...segments.map((s) => s.offset + s.data.length));
  const memory = new Uint8Array(end);
  for (const s of segments) memory.set(s.data, s.offset);
  return memory;
}

const seg = (offset: number, ...bytes: number[]): DataSegment => ({ offset, data: Uint8Array.from(bytes) });

test("segments closer than the gap limit become one, zero-filled between", () => {
  const merged = mergeDataSegments([seg(20, 5), seg(10, 1, 2), seg(13, 3)], 8);
  assert.equal(merged.length, 1);
  assert.equal(merged[0].offset, 10);
  assert.deepEqual([...merged[0].data], [1, 2, 0, 3, 0, 0, 0, 0, 0, 0, 5]);
});

test("a gap wider than the limit keeps segments apart", () => {
  const merged = mergeDataSegments([seg(0, 1), seg(2, 2), seg(100, 3)], 16);
  assert.deepEqual(
    merged.map((s) => [s.offset, [...s.data]]),
    [
      [0, [1, 0, 2]],
      [100, [3]],
    ],
  );
});

test("overlapping segments are refused", () => {
  assert.throws(() => mergeDataSegments([seg(0, 1, 2, 3), seg(2, 9)], 16), /overlap at offset 2/);
});

// A module with one memory and the given data section, built by hand.
function moduleWith(dataSection: number[]): Uint8Array {
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const memory = [0x05, 0x03, 0x01, 0x00, 0x01]; // one memory, min 1 page
  return Uint8Array.from([...header, ...memory, 0x0b, dataSection.length, ...dataSection]);
}

test("the data section round-trips through read and replace", () => {
  // two active segments: offset 1 -> [7], offset 300 (two-byte LEB) -> [8, 9]
  const wasm = moduleWith([0x02, 0x00, 0x41, 0x01, 0x0b, 0x01, 0x07, 0x00, 0x41, 0xac, 0x02, 0x0b, 0x02, 0x08, 0x09]);
  const segments = readDataSection(wasm);
  assert.deepEqual(
    segments.map((s) => [s.offset, [...s.data]]),
    [
      [1, [7]],
      [300, [8, 9]],
    ],
  );
  assert.deepEqual(replaceDataSection(wasm, segments), wasm);
  const merged = replaceDataSection(wasm, mergeDataSegments(segments, 1000));
  assert.deepEqual(image(readDataSection(merged)), image(segments));
  assert.deepEqual(merged.subarray(0, 13), wasm.subarray(0, 13)); // header and memory section untouched
});

test("passive segments and computed offsets are refused", () => {
  assert.throws(() => readDataSection(moduleWith([0x01, 0x01, 0x01, 0x07])), /passive/);
  assert.throws(() => readDataSection(moduleWith([0x01, 0x00, 0x23, 0x00, 0x0b, 0x01, 0x07])), /not an i32.const/);
});

const FIRMWARE_WASM = "build/firmware.wasm";
test("the firmware is built with its data in a few segments, and they round-trip", { skip: !existsSync(FIRMWARE_WASM) }, () => {
  const wasm = new Uint8Array(readFileSync(FIRMWARE_WASM));
  const segments = readDataSection(wasm);
  const merged = mergeDataSegments(segments, 256);
  assert.deepEqual(image(merged), image(segments));
  assert.ok(merged.length <= 8, `${merged.length} segments after merging`);
  const rewritten = replaceDataSection(wasm, merged);
  assert.deepEqual(image(readDataSection(rewritten)), image(segments));
  assert.deepEqual(replaceDataSection(rewritten, readDataSection(rewritten)), rewritten);
});
