// The firmware's connection lines, read back: per-connection `connection opened` / `connection
// closed` lines plus the counts in `connections folded` lines (assembly/vsock-protocol/connection-log.ts).
import type { Machine } from "../sim/machine";

export interface ConnectionLines {
  openedLines: number;
  closedLines: number;
  foldedOpened: number;
  foldedClosed: number;
  /** The conns= of the last vsock line that has one. */
  lastConns: number | undefined;
}

function sumField(lines: string[], key: string): number {
  return lines.reduce((n, l) => n + Number(new RegExp(` ${key}=(\\d+)`).exec(l)?.[1] ?? 0), 0);
}

export function connectionLines(m: Machine): ConnectionLines {
  const folded = m.logLines("connections folded");
  const conns = m.log.filter((l) => / vsock: .* conns=\d+$/.test(l));
  return {
    openedLines: m.logLines("connection opened").length,
    closedLines: m.logLines("connection closed").length,
    foldedOpened: sumField(folded, "opened"),
    foldedClosed: sumField(folded, "closed"),
    lastConns: conns.length ? Number(/ conns=(\d+)$/.exec(conns.at(-1)!)![1]) : undefined,
  };
}
