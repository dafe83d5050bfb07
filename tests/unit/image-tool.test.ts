// The image builder refuses broken layouts with a message that names what is wrong.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readLoadSegments } from "../../tools/image/elf.ts";
import { buildFlashImage, LayoutError, parseFlashSize } from "../../tools/image/flash-layout.ts";

interface SegmentSpec {
  address: bigint;
  bytes: number[];
}

// A minimal ELF64 executable with the given PT_LOAD segments (physical = virtual address).
function makeElf(segments: SegmentSpec[]): Uint8Array {
  const headerSize = 64;
  const phSize = 56;
  let dataOffset = headerSize + phSize * segments.length;
  const total = dataOffset + segments.reduce((sum, s) => sum + s.bytes.length, 0);
  const file = new Uint8Array(total);
  const view = new DataView(file.buffer);
  view.setUint32(0, 0x7f454c46, false);
  file[4] = 2; // ELF64
  file[5] = 1; // little-endian
  view.setUint16(18, 0x3e, true); // x86-64
  view.setBigUint64(32, BigInt(headerSize), true);
  view.setUint16(54, phSize, true);
  view.setUint16(56, segments.length, true);
  segments.forEach((segment, i) => {
    const at = headerSize + i * phSize;
    view.setUint32(at, 1, true); // PT_LOAD
    view.setBigUint64(at + 8, BigInt(dataOffset), true);
    view.setBigUint64(at + 16, segment.address, true);
    view.setBigUint64(at + 24, segment.address, true);
    view.setBigUint64(at + 32, BigInt(segment.bytes.length), true);
    view.setBigUint64(at + 40, BigInt(segment.bytes.length), true);
    file.set(segment.bytes, dataOffset);
    dataOffset += segment.bytes.length;
  });
  return file;
}

const CODE_AT_TOP = { address: 0xffff_f000n, bytes: [0xfa, 0xfc, 0xf4] }; // cli; cld; hlt
// jmp near from 0xFFFFFFF0 to 0xFFFFF000: rel16 = 0xF000 - 0xFFF3.
const RESET_JUMP = { address: 0xffff_fff0n, bytes: [0xe9, 0x0d, 0xf0, ...new Array(13).fill(0xf4)] };
const TWO_MIB = 2 << 20;

test("places segments at their flash offsets and counts payload and free bytes", () => {
  const payload = { address: 0xffe0_0000n, bytes: [1, 2, 3, 4] };
  const flash = buildFlashImage(readLoadSegments(makeElf([payload, CODE_AT_TOP, RESET_JUMP])), TWO_MIB);
  assert.equal(flash.image.length, TWO_MIB);
  assert.deepEqual([...flash.image.subarray(0, 5)], [1, 2, 3, 4, 0xff]);
  assert.deepEqual([...flash.image.subarray(TWO_MIB - 16, TWO_MIB - 13)], [0xe9, 0x0d, 0xf0]);
  assert.equal(flash.payloadBytes, 4 + 3 + 16);
  assert.equal(flash.freeBytes, TWO_MIB - 23);
});

test("rejects a payload that starts below the flash", () => {
  const payload = { address: 0xffd0_0000n, bytes: [1] };
  assert.throws(
    () => buildFlashImage(readLoadSegments(makeElf([payload, CODE_AT_TOP, RESET_JUMP])), TWO_MIB),
    (error: Error) => error instanceof LayoutError && /does not fit in the 2048 KiB flash/.test(error.message) && /1048576 bytes below/.test(error.message),
  );
});

test("rejects overlapping segments and names both", () => {
  const payload = { address: 0xffff_eff0n, bytes: new Array(0x20).fill(0x90) }; // runs 16 bytes into 0xfffff000
  assert.throws(
    () => buildFlashImage(readLoadSegments(makeElf([payload, CODE_AT_TOP, RESET_JUMP])), TWO_MIB),
    /segment 0 \[0xffffeff0, 0xfffff010\) overlaps segment 1 \[0xfffff000, 0xfffff003\)/,
  );
});

test("rejects an image without a jump at the reset vector", () => {
  const noJump = { address: 0xffff_fff0n, bytes: new Array(16).fill(0x90) };
  assert.throws(() => buildFlashImage(readLoadSegments(makeElf([CODE_AT_TOP, noJump])), TWO_MIB), /no jump at the reset vector/);
});

test("rejects a reset jump into erased flash", () => {
  assert.throws(() => buildFlashImage(readLoadSegments(makeElf([RESET_JUMP])), TWO_MIB), /holds no code/);
});

test("flash sizes: powers of two with K/M suffixes", () => {
  assert.equal(parseFlashSize("2M"), TWO_MIB);
  assert.equal(parseFlashSize("4m"), 4 << 20);
  assert.equal(parseFlashSize("512K"), 512 << 10);
  assert.throws(() => parseFlashSize("3M"), /power of two/);
  assert.throws(() => parseFlashSize("big"), /not a number/);
});

test("the command refuses the real firmware in a flash too small for it, and says why", { skip: !existsSync("build/firmware.elf") && "no build/firmware.elf" }, () => {
  const out = join(mkdtempSync(join(tmpdir(), "vsockfw-image-")), "tiny.bin");
  const result = spawnSync("node_modules/.bin/tsx", ["tools/image/main.ts", "build/firmware.elf", out, "--flash-size", "64K"], { encoding: "utf8" });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /does not fit in the 64 KiB flash \[0xffff0000, 0x100000000\)/);
  assert.equal(existsSync(out), false);
});

test("the real image has the reset jump in its last 16 bytes", { skip: !existsSync("build/firmware.bin") && "no build/firmware.bin" }, () => {
  const image = readFileSync("build/firmware.bin");
  assert.equal(image[image.length - 16], 0xe9);
});
