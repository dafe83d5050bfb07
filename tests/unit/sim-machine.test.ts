// The Machine's env imports, checked with a small hand-written wasm module (no firmware needed):
// debugcon, isa-debug-exit, fw_cfg, abort decoding, unknown accesses, clock, barrier, scratch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Machine, SimExit, SimTrap } from "../sim/machine";

// Every import the firmware may use, re-exported one to one so the test can call it.
const WAT = `(module
  (import "env" "port_in8" (func $in8 (param i32) (result i32)))
  (import "env" "port_in16" (func $in16 (param i32) (result i32)))
  (import "env" "port_in32" (func $in32 (param i32) (result i32)))
  (import "env" "port_out8" (func $out8 (param i32 i32)))
  (import "env" "port_out16" (func $out16 (param i32 i32)))
  (import "env" "port_out32" (func $out32 (param i32 i32)))
  (import "env" "mmio_read32" (func $mr32 (param i64) (result i32)))
  (import "env" "mmio_read64" (func $mr64 (param i64) (result i64)))
  (import "env" "mmio_write32" (func $mw32 (param i64 i32)))
  (import "env" "memory_base" (func $base (result i64)))
  (import "env" "barrier" (func $barrier))
  (import "env" "clock_ns" (func $clock (result i64)))
  (import "env" "clock_hz" (func $hz (result i64)))
  (import "env" "log_write" (func $log (param i32 i32)))
  (import "env" "exit" (func $exit (param i32)))
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1 4)
  ;; AssemblyScript string layout: u32 byte length at ptr-4, UTF-16LE at ptr.
  (data (i32.const 0x100) "\\0a\\00\\00\\00o\\00o\\00p\\00s\\00!\\00")
  (data (i32.const 0x200) "\\06\\00\\00\\00a\\00.\\00t\\00")
  (data (i32.const 0x300) "one line\\ntwo ")
  (data (i32.const 0x320) "halves\\n")
  (func (export "in8") (param i32) (result i32) (call $in8 (local.get 0)))
  (func (export "in16") (param i32) (result i32) (call $in16 (local.get 0)))
  (func (export "in32") (param i32) (result i32) (call $in32 (local.get 0)))
  (func (export "out8") (param i32 i32) (call $out8 (local.get 0) (local.get 1)))
  (func (export "out16") (param i32 i32) (call $out16 (local.get 0) (local.get 1)))
  (func (export "out32") (param i32 i32) (call $out32 (local.get 0) (local.get 1)))
  (func (export "mr32") (param i64) (result i32) (call $mr32 (local.get 0)))
  (func (export "mr64") (param i64) (result i64) (call $mr64 (local.get 0)))
  (func (export "mw32") (param i64 i32) (call $mw32 (local.get 0) (local.get 1)))
  (func (export "base") (result i64) (call $base))
  (func (export "barrier") (call $barrier))
  (func (export "clock") (result i64) (call $clock))
  (func (export "hz") (result i64) (call $hz))
  (func (export "log") (param i32 i32) (call $log (local.get 0) (local.get 1)))
  (func (export "exit") (param i32) (call $exit (local.get 0)))
  (func (export "fail") (call $abort (i32.const 0x104) (i32.const 0x204) (i32.const 12) (i32.const 5)))
)`;

let wasm: Uint8Array | null = null;
function module(): Uint8Array {
  if (wasm) return wasm;
  const dir = mkdtempSync(join(tmpdir(), "vsockfw-sim-"));
  writeFileSync(join(dir, "m.wat"), WAT);
  const r = spawnSync("wat2wasm", [join(dir, "m.wat"), "-o", join(dir, "m.wasm")], { encoding: "utf8" });
  assert.equal(r.status, 0, `wat2wasm (apt: wabt): ${r.stderr}`);
  wasm = readFileSync(join(dir, "m.wasm"));
  return wasm;
}

async function machine(options = {}) {
  return Machine.create({ wasmBytes: module(), ...options });
}

test("debugcon (port 0x402) and log_write collect whole lines, even when a line comes in pieces", async () => {
  const m = await machine();
  for (const c of "first\n") m.exports.out8(0x402, c.charCodeAt(0));
  m.exports.log(0x300, 13);
  assert.deepEqual(m.log, ["first", "one line"]);
  m.exports.log(0x320, 7);
  assert.deepEqual(m.log, ["first", "one line", "two halves"]);
  assert.equal(m.logText(), "first\none line\ntwo halves");
  assert.deepEqual(m.logLines(/two/), ["two halves"]);
  assert.equal(m.exports.in8(0x402), 0xe9);
});

test("isa-debug-exit (0xf4) and the exit import record the code and unwind with SimExit", async () => {
  const m = await machine();
  assert.throws(() => m.exports.out32(0xf4, 3), (e: unknown) => e instanceof SimExit && e.code === 3);
  assert.equal(m.exitCode, 3);
  const n = await machine();
  assert.throws(() => n.exports.exit(0), SimExit);
  assert.equal(n.exitCode, 0);
});

test("abort decodes AssemblyScript strings and throws SimTrap", async () => {
  const m = await machine();
  assert.throws(
    () => m.exports.fail(),
    (e: unknown) => e instanceof SimTrap && e.abortMessage === "oops!" && e.file === "a.t" && e.line === 12 && e.column === 5,
  );
  assert.equal(m.aborts.length, 1);
});

test("fw_cfg: signature, file directory and an option's bytes through 0x510/0x511", async () => {
  const m = await machine({ options: { exit: "ready" }, fwCfgFiles: { "etc/other": "x" } });
  const readBytes = (n: number) => Array.from({ length: n }, () => m.exports.in8(0x511));
  m.exports.out16(0x510, 0);
  assert.equal(String.fromCharCode(...readBytes(4)), "QEMU");
  m.exports.out16(0x510, 0x19);
  const dir = readBytes(4 + 2 * 64);
  assert.equal((dir[0] << 24) | (dir[1] << 16) | (dir[2] << 8) | dir[3], 2, "two files, big-endian count");
  const names = [0, 1].map((i) => String.fromCharCode(...dir.slice(4 + 64 * i + 8, 4 + 64 * i + 64)).replace(/\0+$/, ""));
  assert.deepEqual(names, ["etc/other", "opt/vsockfw/exit"]);
  const selector = (dir[4 + 64 + 4] << 8) | dir[4 + 64 + 5];
  m.exports.out16(0x510, selector);
  assert.equal(String.fromCharCode(...readBytes(5)), "ready");
  assert.equal(m.exports.in8(0x511), 0, "past the end reads 0");
  const none = await machine({ fwCfg: false });
  none.exports.out16(0x510, 0);
  assert.equal(none.exports.in8(0x511), 0xff, "no fw_cfg: all ones");
});

test("unknown ports and MMIO read all ones and are recorded", async () => {
  const m = await machine();
  assert.equal(m.exports.in16(0x80) & 0xffff, 0xffff);
  assert.equal(m.exports.mr32(0xfee00000n) >>> 0, 0xffffffff);
  assert.equal(m.exports.mr64(0xfee00000n), -1n);
  m.exports.mw32(0xfee00000n, 5);
  m.exports.out8(0x70, 1);
  assert.deepEqual(
    m.unknownAccesses.map((a) => [a.kind, a.op, a.width]),
    [["port", "read", 2], ["mmio", "read", 4], ["mmio", "read", 8], ["mmio", "write", 4], ["port", "write", 1]],
  );
});

test("clock moves 1 us per read and by advance(); memory_base, clock_hz and barrier", async () => {
  const m = await machine({ clockHz: 3_000_000_000n });
  assert.equal(m.exports.clock(), 1000n);
  assert.equal(m.exports.clock(), 2000n);
  m.advance(5_000_000n);
  assert.equal(m.exports.clock(), 5_003_000n);
  assert.equal(m.clock, 5_003_000n);
  assert.equal(m.exports.base(), 0x1000000n);
  assert.equal(m.exports.hz(), 3_000_000_000n);
  m.exports.barrier();
  m.exports.barrier();
  assert.equal(m.barrierCount, 2);
});

test("config cycles from the wasm reach the q35 bus; scratch memory lies beyond the module's pages", async () => {
  const m = await machine();
  m.exports.out32(0xcf8, 0x8000f800); // 00:1f.0
  assert.equal(m.exports.in32(0xcfc) >>> 0, 0x29188086);
  assert.equal(m.exports.in8(0xcfe), 0x18);
  const p = m.scratch(100);
  const q = m.scratch(100);
  assert.ok(p >= 65536 && q >= p + 100);
  m.write(p, "abc");
  assert.deepEqual([...m.read(p, 3)], [97, 98, 99]);
  assert.equal(m.guestMemory.read8(m.memoryBase + p + 1), 98, "guest memory = wasm memory at memory_base");
});

test("without vsock there is no device and no 1af4 function", async () => {
  const m = await machine({ vsock: false });
  assert.equal(m.device, null);
  assert.equal(m.bus.all().some((f) => f.identity.vendorId === 0x1af4), false);
  assert.equal(m.bus.all().length, 4);
});

test("seeded randomness replays from its seed", async () => {
  const { SeededRandom } = await import("../sim/seeded-random");
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const first = [a.nextU32(), a.nextU32(), a.below(10)];
  assert.deepEqual([b.nextU32(), b.nextU32(), b.below(10)], first);
  assert.notDeepEqual([new SeededRandom(43).nextU32()], [first[0]]);
  assert.deepEqual(new SeededRandom(7).bytes(8), new SeededRandom(7).bytes(8));
  assert.ok(first[2] >= 0 && first[2] < 10);
});
