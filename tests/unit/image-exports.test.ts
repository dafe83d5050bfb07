// The image's wasm exports exactly what the C side calls (issue 20): the platform layer, the crash
// report and vsock.h's implementation (firmware/*.c, firmware/include/*.h) reach the wasm through
// wasm2c's Z_fwZ_<export> functions, and nothing else may be exported from the image. The tests'
// hooks come from the unit build's second entry (assembly/test-hooks.ts) and must stay there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const IMAGE_WASM = "build/firmware.wasm";
const UNIT_WASM = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";
const GENERATED_HEADER = "build/fw.h";

function exportsOf(file: string): WebAssembly.ModuleExportDescriptor[] {
  return WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(file)));
}

/** Every wasm export the C sources name (Z_fwZ_<name>), read from firmware/ and its include/. */
function calledFromC(): Set<string> {
  const names = new Set<string>();
  for (const dir of ["firmware", "firmware/include"]) {
    for (const file of readdirSync(dir)) {
      if (!/\.[ch]$/.test(file)) continue;
      for (const m of readFileSync(path.join(dir, file), "utf8").matchAll(/\bZ_fwZ_([A-Za-z0-9_]+)/g)) names.add(m[1]);
    }
  }
  return names;
}

const sorted = (names: Iterable<string>) => [...names].sort();

test("the image exports the functions the C layer calls, its memory, and nothing else", { skip: !existsSync(IMAGE_WASM) && `no ${IMAGE_WASM}` }, () => {
  const exports = exportsOf(IMAGE_WASM);
  const c = calledFromC();
  assert.ok(c.has("main") && c.has("vs_socket") && c.has("crash_log_packets"), `the C sources name the wasm's exports: ${sorted(c).join(" ")}`);
  assert.deepEqual(sorted(exports.filter((e) => e.kind === "function").map((e) => e.name)), sorted(c));
  assert.deepEqual(
    exports.filter((e) => e.kind !== "function").map((e) => `${e.name}:${e.kind}`),
    ["memory:memory"],
    "no globals or tables: the test constants are the unit build's",
  );
});

test("every name the C sources call is declared by wasm2c's header of this image", { skip: !existsSync(GENERATED_HEADER) && `no ${GENERATED_HEADER}` }, () => {
  const header = readFileSync(GENERATED_HEADER, "utf8");
  for (const name of calledFromC()) assert.match(header, new RegExp(`\\bZ_fwZ_${name}\\b`), `${GENERATED_HEADER} declares Z_fwZ_${name}`);
});

test("the test hooks are the unit build's only: each unit-only export is absent from the image", { skip: !existsSync(IMAGE_WASM) && `no ${IMAGE_WASM}` }, () => {
  const image = new Set(exportsOf(IMAGE_WASM).map((e) => e.name));
  const unit = exportsOf(UNIT_WASM).map((e) => e.name);
  for (const hook of ["fw_device_init", "fw_set_rx_layout", "fw_rejection_key", "fw_poll_or_halt", "vsock_test_ring", "vsock_connection_count", "COUNTER_RX_PACKETS", "DROP_TX_INVALID"]) {
    assert.ok(unit.includes(hook), `the unit build exports ${hook}`);
    assert.ok(!image.has(hook), `the image does not export ${hook}`);
  }
  for (const name of image) assert.ok(unit.includes(name), `the unit build runs the image's code: it exports ${name} too`);
});

// The unit build's entry and what only it imports: none of their code may reach the image.
const UNIT_ONLY_FILES = ["assembly/test-hooks", "assembly/vsock-device/device-test-exports", "assembly/virtio/memory-transport"];

test("the image holds no code of the unit-only files (by the function names in build/firmware.wat)", { skip: !existsSync("build/firmware.wat") && "no build/firmware.wat" }, () => {
  const wat = readFileSync("build/firmware.wat", "utf8");
  assert.match(wat, /\$assembly\/vsock-device\/device\//, "the text format names functions by file");
  for (const file of UNIT_ONLY_FILES) {
    assert.ok(existsSync(`${file}.ts`), `${file}.ts exists`);
    assert.ok(!wat.includes(`$${file}/`), `${file}.ts is compiled into the image`);
  }
});
