// The layering rules of the source tree, checked from the imports themselves (issue 20):
//  - assembly/ is built in floors, each folder importing only folders on floors below it (and
//    files of its own folder). An import that runs back up a floor, or sideways into another
//    folder of the same floor, fails the check.
//  - apps/ talks to the stack only through the socket API (socket-api/) and the platform.
//  - nothing under tools/ imports from tests/ (tools are shipped; tests are not).
// Usage: tsx tools/check-layers.ts [--assembly-only] [--root <dir>]
// Exits 1 and names every offending file and import; prints one summary line otherwise.
import fs from "node:fs";
import path from "node:path";

// From the ground up. Files directly in assembly/ (main.ts, the unit-only test-hooks.ts) are the
// top floor. Folders named on one floor may not import each other.
export const FLOORS: readonly (readonly string[])[] = [
  ["platform"], // wasm imports, the log, runtime options, self-tests
  ["wire"], // the virtio-vsock header codec
  ["diag"], // rejections, counters, trace, packet history (a tap the crash report reads)
  ["pci"], // configuration space, bus scan, BARs, MSI-X
  ["virtio"], // transport interface, PCI transport, split queue, bring-up, interrupts, cost probe
  ["vsock-device"], // the virtio-vsock device: its queues, rx/tx buffers, events, the guest CID
  ["vsock-protocol"], // connections, credit, the state machine, transmit, lifecycle
  ["socket-api"], // the vs_* calls and what only they use
  ["apps", "crash"], // the applications; the crash report
];
const TOP_FLOOR = FLOORS.length;

// Folders that may import only some of the floors below them.
export const ONLY_FROM: Readonly<Record<string, readonly string[]>> = {
  apps: ["platform", "socket-api"],
};

const SOURCE = /\.(ts|mts|js|mjs)$/;
const IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^;"'`]*?\sfrom\s+)?["']([^"']+)["']/g;

export interface Violation {
  file: string; // relative to the root
  line: number;
  specifier: string;
  why: string;
}

function walk(dir: string, out: string[]): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (SOURCE.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

function importsOf(file: string): { specifier: string; line: number }[] {
  const text = fs.readFileSync(file, "utf8");
  const found: { specifier: string; line: number }[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const line = text.slice(0, m.index! + m[0].length).split("\n").length;
    found.push({ specifier: m[1], line });
  }
  return found;
}

/** The folder under assembly/ that a path lies in ("" for a file directly in assembly/). */
function folderOf(assemblyDir: string, file: string): string {
  const rel = path.relative(assemblyDir, file);
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] : "";
}

function floorOf(folder: string): number {
  if (folder === "") return TOP_FLOOR;
  return FLOORS.findIndex((floor) => floor.includes(folder));
}

export function checkAssembly(root: string): Violation[] {
  const assemblyDir = path.join(root, "assembly");
  const violations: Violation[] = [];
  for (const file of walk(assemblyDir, [])) {
    const from = folderOf(assemblyDir, file);
    const fromFloor = floorOf(from);
    const rel = path.relative(root, file);
    if (fromFloor < 0) {
      violations.push({ file: rel, line: 1, specifier: "", why: `folder assembly/${from}/ is on no floor (add it to FLOORS)` });
      continue;
    }
    for (const { specifier, line } of importsOf(file)) {
      if (!specifier.startsWith(".")) continue;
      const target = path.resolve(path.dirname(file), specifier);
      if (path.relative(assemblyDir, target).startsWith("..")) {
        violations.push({ file: rel, line, specifier, why: "imports from outside assembly/" });
        continue;
      }
      const to = folderOf(assemblyDir, target);
      if (to === from) continue;
      const toFloor = floorOf(to);
      const toName = to === "" ? "assembly/ (the top floor)" : `${to}/`;
      if (toFloor < 0) {
        violations.push({ file: rel, line, specifier, why: `imports ${toName}, which is on no floor` });
      } else if (toFloor > fromFloor) {
        violations.push({ file: rel, line, specifier, why: `runs up a floor: ${from}/ (floor ${fromFloor}) imports ${toName} (floor ${toFloor})` });
      } else if (toFloor === fromFloor) {
        violations.push({ file: rel, line, specifier, why: `imports ${toName}, a folder on its own floor` });
      } else if (ONLY_FROM[from] && !ONLY_FROM[from].includes(to)) {
        violations.push({ file: rel, line, specifier, why: `${from}/ may import only ${ONLY_FROM[from].join(", ")}; not ${toName}` });
      }
    }
  }
  return violations;
}

export function checkTools(root: string): Violation[] {
  const testsDir = path.join(root, "tests");
  const violations: Violation[] = [];
  for (const file of walk(path.join(root, "tools"), [])) {
    for (const { specifier, line } of importsOf(file)) {
      if (!specifier.startsWith(".")) continue;
      const target = path.resolve(path.dirname(file), specifier);
      if (!path.relative(testsDir, target).startsWith("..")) {
        violations.push({ file: path.relative(root, file), line, specifier, why: "tools/ imports from tests/" });
      }
    }
  }
  return violations;
}

function main(argv: string[]): number {
  const assemblyOnly = argv.includes("--assembly-only");
  const rootAt = argv.indexOf("--root");
  const root = path.resolve(rootAt >= 0 ? argv[rootAt + 1] : path.join(import.meta.dirname, ".."));
  const violations = checkAssembly(root);
  if (!assemblyOnly) violations.push(...checkTools(root));
  for (const v of violations) console.error(`check-layers: ${v.file}:${v.line}: import "${v.specifier}": ${v.why}`);
  if (violations.length > 0) {
    console.error(`check-layers: ${violations.length} import(s) break the layering`);
    return 1;
  }
  console.log(`check-layers: ok (${FLOORS.length} floors under assembly/${assemblyOnly ? "" : "; tools/ imports nothing from tests/"})`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  process.exit(main(process.argv.slice(2)));
}
