// Reads the firmware's rejection registry (assembly/diag/rejections.ts) by name, through the
// fw_rejection_* exports: tests and the fuzzer never hard-code the reasons' numbers.
import type { Machine } from "../sim/machine";

/** Every reason's key, in the firmware's order. */
export function rejectionKeys(m: Machine): string[] {
  const keys: string[] = [];
  const n = m.exports.fw_rejection_reasons();
  for (let i = 0; i < n; i++) keys.push(m.readString(m.exports.fw_rejection_key(i) >>> 0));
  return keys;
}

/** Counts by key (every reason, zeros included). */
export function rejectionCounts(m: Machine): Record<string, number> {
  const counts: Record<string, number> = {};
  rejectionKeys(m).forEach((key, i) => {
    counts[key] = Number(m.exports.fw_rejection_count(i));
  });
  return counts;
}

export function rejections(m: Machine, key: string): number {
  const counts = rejectionCounts(m);
  if (!(key in counts)) throw new Error(`no rejection reason named ${key}: ${Object.keys(counts).join(" ")}`);
  return counts[key];
}

/** Reasons counted at least once whose first occurrence did not log exactly one warn line, and reasons with warn lines but no count. */
export function warnOnceViolations(m: Machine): string[] {
  const problems: string[] = [];
  const warnLines = m.logLines(/^\[[0-9.]+\] warn (virtq|vsock|vsock-dev|virtio|pci): .*(rejected|dropped: |does not fit|did not take)/);
  const counts = rejectionCounts(m);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const reasonsSeen = Object.values(counts).filter((n) => n > 0).length;
  if (warnLines.length !== reasonsSeen) {
    problems.push(`${warnLines.length} rejection warn lines for ${reasonsSeen} reasons seen (${total} rejections): ${warnLines.join(" | ")}`);
  }
  return problems;
}
