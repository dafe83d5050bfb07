// The backend's log lines, in the project's format on stderr:
// `[<s.micros>] <level> <subsystem>: <message> key=value ...` (time since the backend started).
const started = process.hrtime.bigint();
export type Level = "error" | "warn" | "info" | "debug";
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold = ORDER[(process.env.VHOST_USER_LOG as Level) ?? "info"] ?? ORDER.info;
let sink: (line: string) => void = (line) => process.stderr.write(line + "\n");

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}

/** Tests collect lines instead of printing them. */
export function setLogSink(write: (line: string) => void): void {
  sink = write;
}

export function logEnabled(level: Level): boolean {
  return ORDER[level] <= threshold;
}

export function log(level: Level, subsystem: string, message: string, fields: Record<string, unknown> = {}): void {
  if (!logEnabled(level)) return;
  const micros = (process.hrtime.bigint() - started) / 1000n;
  const stamp = `${micros / 1_000_000n}.${(micros % 1_000_000n).toString().padStart(6, "0")}`;
  const kv = Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === "string" && /\s/.test(v) ? JSON.stringify(v) : String(v)}`);
  sink(`[${stamp}] ${level} ${subsystem}: ${message}${kv.join("")}`);
}
