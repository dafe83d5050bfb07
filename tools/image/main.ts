// Image builder: `tsx tools/image/main.ts <firmware.elf> <firmware.bin> [--flash-size 2M]`.
// Writes the flash image and prints its size summary; a broken layout exits 1 naming what overlaps.
import { readFileSync, writeFileSync } from "node:fs";
import { readLoadSegments } from "./elf.ts";
import { buildFlashImage, parseFlashSize } from "./flash-layout.ts";

function main(argv: string[]): number {
  const positional = argv.filter((arg, i) => !arg.startsWith("--") && argv[i - 1] !== "--flash-size");
  const sizeAt = argv.indexOf("--flash-size");
  if (positional.length !== 2) {
    console.error("usage: tools/image/main.ts <firmware.elf> <firmware.bin> [--flash-size 2M]");
    return 2;
  }
  const [elfPath, imagePath] = positional;
  try {
    const flashBytes = parseFlashSize(sizeAt >= 0 ? argv[sizeAt + 1] ?? "" : "2M");
    const flash = buildFlashImage(readLoadSegments(readFileSync(elfPath)), flashBytes);
    writeFileSync(imagePath, flash.image);
    console.log(
      `image: ${imagePath} flash=${flashBytes} bytes payload=${flash.payloadBytes} bytes ` +
        `free=${flash.freeBytes} bytes (${((100 * flash.payloadBytes) / flashBytes).toFixed(1)}% used)`,
    );
    return 0;
  } catch (error) {
    console.error(`image: ${elfPath}: ${(error as Error).message}`);
    return 1;
  }
}

process.exit(main(process.argv.slice(2)));
