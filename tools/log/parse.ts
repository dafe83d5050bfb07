// Parser for the firmware's debugcon log (README "Log format"):
//   [<seconds.micros>] <level> <subsystem>: <message> key=value ...
// A value is a run of non-space characters or a "double-quoted string". The message is the text
// before the first key=value token. Anything else (a truncated or garbled line) becomes a Problem:
// reported and skipped, never a crash.

export const LEVELS = ["error", "warn", "info", "debug"] as const;
export type Level = (typeof LEVELS)[number];

export interface LogRecord {
  /** 1-based line number in the input. */
  line: number;
  /** Microseconds since reset (the firmware's clock). */
  micros: number;
  level: Level;
  subsystem: string;
  message: string;
  fields: Record<string, string>;
  raw: string;
}

export interface Problem {
  line: number;
  text: string;
  reason: string;
}

export interface ParsedLog {
  records: LogRecord[];
  problems: Problem[];
}

const LINE = /^\.*\[(\d+)\.(\d{6})\] (error|warn|info|debug) ([a-z0-9][a-z0-9_-]*): ?(.*)$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*=/;
const MAX_SHOWN = 200;

/** Splits "message k=v k2="quoted v" ..." into the message and the fields. */
function splitFields(rest: string): { message: string; fields: Record<string, string> } | string {
  const fields: Record<string, string> = {};
  const words: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (rest[i] === " ") i++;
    if (i >= rest.length) break;
    const key = KEY.exec(rest.slice(i));
    if (key) {
      const name = key[0].slice(0, -1);
      i += key[0].length;
      let value: string;
      if (rest[i] === '"') {
        const close = rest.indexOf('"', i + 1);
        if (close < 0) return `unterminated quoted value for ${name}`;
        value = rest.slice(i + 1, close);
        i = close + 1;
      } else {
        const end = rest.indexOf(" ", i);
        value = rest.slice(i, end < 0 ? rest.length : end);
        i = end < 0 ? rest.length : end;
      }
      fields[name] = value;
    } else {
      const end = rest.indexOf(" ", i);
      const word = rest.slice(i, end < 0 ? rest.length : end);
      i = end < 0 ? rest.length : end;
      words.push(word); // after the fields too (e.g. "(estimated: no PIT answer)"): kept with the message
    }
  }
  return { message: words.join(" "), fields };
}

/** One line, or a reason why it is not a log line. */
export function parseLine(raw: string, lineNumber: number): LogRecord | Problem {
  const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
  const shown = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
  const m = LINE.exec(text);
  if (!m) {
    const reason = /^\.*\[\d+\.\d*$/.test(text) || /^\.*\[\d+\.\d{6}\] \w*$/.test(text) ? "truncated line" : "not a log line";
    return { line: lineNumber, text: shown, reason };
  }
  if (/[\u0000-\u0008\u000b-\u001f\u007f-\u00ff\ufffd]/.test(text)) {
    return { line: lineNumber, text: shown.replace(/[\u0000-\u001f\u007f-\u00ff]/g, "?"), reason: "control or invalid bytes" };
  }
  const split = splitFields(m[5]);
  if (typeof split === "string") return { line: lineNumber, text: shown, reason: split };
  return {
    line: lineNumber,
    micros: Number(m[1]) * 1_000_000 + Number(m[2]),
    level: m[3] as Level,
    subsystem: m[4],
    message: split.message,
    fields: split.fields,
    raw: text,
  };
}

export function isProblem(x: LogRecord | Problem): x is Problem {
  return (x as Problem).reason !== undefined;
}

/** A whole log. Blank lines are ignored; a last line without its newline is parsed like the others. */
export function parseLog(text: string): ParsedLog {
  const records: LogRecord[] = [];
  const problems: Problem[] = [];
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((raw, index) => {
    if (raw.trim() === "" || /^\.+$/.test(raw)) return;
    const parsed = parseLine(raw, index + 1);
    if (isProblem(parsed)) problems.push(parsed);
    else records.push(parsed);
  });
  return { records, problems };
}

/** "12.345678" from microseconds. */
export function formatSeconds(micros: number): string {
  return `${Math.floor(micros / 1_000_000)}.${String(micros % 1_000_000).padStart(6, "0")}`;
}

/** "1.5 ms", "2.31 s" */
export function formatDuration(micros: number): string {
  if (micros < 1000) return `${micros} us`;
  if (micros < 1_000_000) return `${(micros / 1000).toFixed(1)} ms`;
  return `${(micros / 1_000_000).toFixed(2)} s`;
}
