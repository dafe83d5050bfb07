// Rewrites a wasm file with its active data segments merged (see data-segments.ts for why).
//   tsx tools/wasm/merge-data-segments.ts IN.wasm OUT.wasm [--max-gap BYTES]
// Works on the binary's sections, so every other byte of the module stays as asc wrote it. Only
// the form asc emits is handled (memory 0, i32.const offsets, no passive segments); anything else
// is refused rather than changed.
import { readFileSync, writeFileSync } from "node:fs";
import { type DataSegment, mergeDataSegments } from "./data-segments.ts";
import { readDataSection, replaceDataSection } from "./wasm-sections.ts";

const DEFAULT_MAX_GAP = 256;

const args = process.argv.slice(2);
const gapAt = args.indexOf("--max-gap");
const maxGap = gapAt >= 0 ? Number(args.splice(gapAt, 2)[1]) : DEFAULT_MAX_GAP;
const [input, output] = args;
if (!input || !output || !Number.isInteger(maxGap) || maxGap < 0) {
  console.error("usage: merge-data-segments.ts IN.wasm OUT.wasm [--max-gap BYTES]");
  process.exit(2);
}
try {
  const wasm = new Uint8Array(readFileSync(input));
  const segments: DataSegment[] = readDataSection(wasm);
  const merged = mergeDataSegments(segments, maxGap);
  writeFileSync(output, replaceDataSection(wasm, merged));
  console.log(`merge-data-segments: ${segments.length} data segments -> ${merged.length}`);
} catch (error) {
  console.error(`merge-data-segments: ${input}: ${(error as Error).message}`);
  process.exit(1);
}
