// The command line a PVH loader passed (QEMU -append, and microvm's own virtio_mmio.device=
// entries). Read once; "" when the image was not booted through PVH. Boot-time only: it allocates.
import { commandLine } from "./imports";

const COMMAND_LINE_MAX: u32 = 1024; // what firmware/pvh-boot.c keeps

let text: string | null = null;

export function bootCommandLine(): string {
  let line = text;
  if (line != null) return line;
  const buffer = new StaticArray<u8>(<i32>COMMAND_LINE_MAX);
  let length = commandLine(changetype<usize>(buffer), COMMAND_LINE_MAX);
  if (length > COMMAND_LINE_MAX) length = COMMAND_LINE_MAX;
  line = "";
  for (let i: u32 = 0; i < length; i++) line += String.fromCharCode(buffer[<i32>i]);
  text = line;
  return line;
}

// The values of every `name=value` word of the command line, in order.
export function commandLineValues(name: string): string[] {
  const values = new Array<string>();
  const words = bootCommandLine().split(" ");
  const prefix = name + "=";
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word.startsWith(prefix)) values.push(word.substring(prefix.length));
  }
  return values;
}
