// The idle halt's interrupt handlers (reset-vector/interrupts.asm), run natively in user space by
// tests/unit/native/interrupt-at-halt.c: an interrupt a hypervisor delivers in STI's shadow, before
// the HLT ran, must return past the HLT (or the firmware halts with its wake-up spent: the
// microvm guest that stopped for good, docs/reliability.md), and be counted; one taken anywhere
// else returns where it was taken. Assembled with nasm and built with clang, as the image is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: "utf8" });
  assert.equal(result.error, undefined, `${command}: ${result.error}`);
  return result;
}

test("an interrupt taken at the idle HLT returns past it and is counted; one elsewhere returns where it was", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "interrupt-at-halt-"));
  try {
    const object = path.join(dir, "interrupts.o");
    const program = path.join(dir, "interrupt-at-halt");
    const nasm = run("nasm", ["-f", "elf64", "-Ireset-vector/", "-o", object, "reset-vector/interrupts.asm"]);
    assert.equal(nasm.status, 0, nasm.stderr);
    const clang = run("clang", ["-O1", "-Wall", "-Wl,-z,noexecstack", "-o", program, "tests/unit/native/interrupt-at-halt.c", object]);
    assert.equal(clang.status, 0, clang.stderr);
    const result = run(program, []);
    assert.equal(result.status, 0, `the handlers returned to the wrong place:\n${result.stdout}${result.stderr}`);
    for (const handler of ["device", "timer", "spurious"]) {
      assert.match(result.stdout, new RegExp(`^${handler}: taken at the HLT -> returned to HLT\\+1 \\(counted 1\\); taken at the STI -> HLT-1 \\(counted 0\\): ok$`, "m"));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
