// `tsx tools/image/pvh-check.ts build/firmware-pvh.elf`: checks the PVH ELF (tools/image/pvh-note.ts)
// and prints its entry and size; exits 1 naming what is wrong.
import { readFileSync } from "node:fs";
import { readLoadSegments } from "./elf.ts";
import { checkPvhSegments, readPvhEntry } from "./pvh-note.ts";

function main(argv: string[]): number {
  if (argv.length !== 1) {
    console.error("usage: tools/image/pvh-check.ts <firmware-pvh.elf>");
    return 2;
  }
  try {
    const file = readFileSync(argv[0]);
    const segments = readLoadSegments(file);
    const entry = readPvhEntry(file);
    checkPvhSegments(segments, entry);
    const bytes = segments.reduce((sum, s) => sum + s.fileBytes.length, 0);
    console.log(`image: ${argv[0]} pvh_entry=0x${entry.toString(16)} loaded=${bytes} bytes`);
    return 0;
  } catch (error) {
    console.error(`image: ${argv[0]}: ${(error as Error).message}`);
    return 1;
  }
}

process.exit(main(process.argv.slice(2)));
