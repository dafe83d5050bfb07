// --follow: prints lines as the firmware writes them (the file may not exist yet, and may be
// replaced by a new run: then it starts again from the top). A partial last line waits for its
// newline. Runs until interrupted.
import { closeSync, openSync, readSync, statSync } from "node:fs";

const POLL_MS = 200;

export function follow(path: string, fromStart: boolean, onLine: (raw: string, lineNumber: number) => void): () => void {
  let offset = -1;
  let lineNumber = 0;
  let pending = "";
  const buffer = Buffer.alloc(1 << 16);
  const tick = () => {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return; // not there (yet)
    }
    if (offset < 0) offset = fromStart ? 0 : size;
    if (size < offset) {
      offset = 0; // truncated or replaced: a new run
      lineNumber = 0;
      pending = "";
    }
    if (size === offset) return;
    const fd = openSync(path, "r");
    try {
      while (offset < size) {
        const n = readSync(fd, buffer, 0, Math.min(buffer.length, size - offset), offset);
        if (n <= 0) break;
        offset += n;
        pending += buffer.subarray(0, n).toString("latin1");
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          onLine(pending.slice(0, newline), ++lineNumber);
          pending = pending.slice(newline + 1);
        }
      }
    } finally {
      closeSync(fd);
    }
  };
  tick();
  const timer = setInterval(tick, POLL_MS);
  return () => clearInterval(timer);
}
