// Line filters: level (that level and worse), subsystems, and one connection.
import { LEVELS, type Level, type LogRecord } from "./parse.ts";
import type { Connection } from "./summary.ts";

export interface Filter {
  level?: Level;
  subsystems?: string[];
  /** A port ("1234"), a peer address ("2:5000"), or a connection number from the summary ("#3"). */
  conn?: string;
}

const ADDRESS = /^(\d+):(\d+)$/;

function port(address: string | undefined): string | undefined {
  return address === undefined ? undefined : ADDRESS.exec(address)?.[2];
}

/** Throws on a bad connection spec; returns the predicate for it. */
export function connectionMatcher(spec: string, connections: Connection[]): (r: LogRecord) => boolean {
  if (/^\d+$/.test(spec)) {
    return (r) =>
      r.fields.local === spec || r.fields.port === spec || port(r.fields.peer) === spec ||
      port(r.fields.src) === spec || port(r.fields.dst) === spec;
  }
  if (ADDRESS.test(spec)) {
    return (r) => r.fields.peer === spec || r.fields.src === spec || r.fields.dst === spec;
  }
  const numbered = /^#(\d+)$/.exec(spec);
  if (numbered) {
    const c = connections.find((x) => x.id === Number(numbered[1]));
    if (!c) throw new Error(`no connection ${spec} in this log`);
    const local = String(c.local);
    // Lines about this tuple; trace lines carry it as src/dst (our side is the local port).
    return (r) =>
      (r.fields.local === local && r.fields.peer === c.peer) ||
      (r.fields.src === c.peer && port(r.fields.dst) === local) ||
      (r.fields.dst === c.peer && port(r.fields.src) === local);
  }
  throw new Error(`--conn wants a port (1234), a peer address (2:5000) or a connection number (#3), not "${spec}"`);
}

export function parseLevel(text: string): Level {
  if (!(LEVELS as readonly string[]).includes(text)) throw new Error(`--level wants one of ${LEVELS.join(", ")}`);
  return text as Level;
}

export function isFiltering(f: Filter): boolean {
  return f.level !== undefined || (f.subsystems?.length ?? 0) > 0 || f.conn !== undefined;
}

export function makeFilter(f: Filter, connections: Connection[]): (r: LogRecord) => boolean {
  const maxLevel = f.level === undefined ? LEVELS.length - 1 : LEVELS.indexOf(f.level);
  const subsystems = f.subsystems?.length ? new Set(f.subsystems) : undefined;
  const conn = f.conn !== undefined ? connectionMatcher(f.conn, connections) : undefined;
  return (r) => LEVELS.indexOf(r.level) <= maxLevel && (!subsystems || subsystems.has(r.subsystem)) && (!conn || conn(r));
}
