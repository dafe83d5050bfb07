// tools/check-layers.ts on small trees in a temporary directory: it must name an import that runs
// up a floor, one into a folder of the same floor, an app that goes around the socket API and a
// tool that imports from tests/, and accept a tree whose imports all run down.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const SCRIPT = path.resolve(import.meta.dirname, "../../tools/check-layers.ts");
const TSX = path.resolve(import.meta.dirname, "../../node_modules/.bin/tsx");

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "check-layers-"));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), text);
  }
  return root;
}

function run(root: string, ...args: string[]): { status: number | null; output: string } {
  const r = spawnSync(TSX, [SCRIPT, "--root", root, ...args], { encoding: "utf8" });
  fs.rmSync(root, { recursive: true, force: true });
  return { status: r.status, output: r.stdout + r.stderr };
}

const CLEAN: Record<string, string> = {
  "assembly/platform/log.ts": `export function log(): void {}\n`,
  "assembly/pci/scan.ts": `import { log } from "../platform/log";\nexport function scan(): void { log(); }\n`,
  "assembly/virtio/queue.ts": `import {\n  scan,\n} from "../pci/scan";\nimport { log } from "../platform/log";\n`,
  "assembly/socket-api/api.ts": `export { scan } from "../pci/scan";\n`,
  "assembly/apps/echo.ts": `import { scan } from "../socket-api/api";\nimport { log } from "../platform/log";\n`,
  "assembly/main.ts": `import { scan } from "./pci/scan";\nexport * from "./socket-api/api";\n`,
  "tools/image.ts": `import fs from "node:fs";\nimport { x } from "./elf";\n`,
  "tools/elf.ts": `export const x = 1;\n`,
};

test("a tree whose imports all run down passes", () => {
  const r = run(tree(CLEAN));
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /check-layers: ok/);
});

test("an import that runs up a floor is named with its file and line", () => {
  const r = run(tree({ ...CLEAN, "assembly/pci/scan.ts": `import { log } from "../platform/log";\nimport { q } from "../virtio/queue";\n` }));
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /assembly\/pci\/scan\.ts:2: import "\.\.\/virtio\/queue": runs up a floor: pci\/ .* imports virtio\//);
  assert.doesNotMatch(r.output, /platform\/log"/);
});

test("an import of the top floor (main.ts) from a folder runs up", () => {
  const r = run(tree({ ...CLEAN, "assembly/virtio/queue.ts": `import { main } from "../main";\n` }));
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /assembly\/virtio\/queue\.ts:1: import "\.\.\/main": runs up a floor/);
});

test("apps/ reaching below the socket API and crash/ importing apps/ (same floor) both fail", () => {
  const r = run(
    tree({
      ...CLEAN,
      "assembly/apps/echo.ts": `import { q } from "../virtio/queue";\n`,
      "assembly/crash/report.ts": `import { echo } from "../apps/echo";\n`,
    }),
  );
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /assembly\/apps\/echo\.ts:1: import "\.\.\/virtio\/queue": apps\/ may import only/);
  assert.match(r.output, /assembly\/crash\/report\.ts:1: import "\.\.\/apps\/echo": imports apps\/, a folder on its own floor/);
});

test("a folder on no floor fails", () => {
  const r = run(tree({ ...CLEAN, "assembly/stray/x.ts": `export const y = 1;\n` }));
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /assembly\/stray\/x\.ts.*on no floor/);
});

test("a tool importing from tests/ fails, unless only assembly/ is checked", () => {
  const files = { ...CLEAN, "tools/elf.ts": `import { sim } from "../tests/sim/machine";\n`, "tests/sim/machine.ts": `export const sim = 1;\n` };
  const full = run(tree(files));
  assert.equal(full.status, 1, full.output);
  assert.match(full.output, /tools\/elf\.ts:1: import "\.\.\/tests\/sim\/machine": tools\/ imports from tests\//);
  const assemblyOnly = run(tree(files), "--assembly-only");
  assert.equal(assemblyOnly.status, 0, assemblyOnly.output);
});

test("the firmware's own tree passes the assembly rules", () => {
  const r = spawnSync(TSX, [SCRIPT, "--assembly-only"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
