// The iperf3 control parser's fuzz actions: a hostile iperf3 client on the simulated host, as
// plain JSON so a case replays exactly. Cases mostly follow the protocol's order (control
// connection, cookie, length, parameters, streams, state bytes, results) with every step bent:
// wrong or cut cookies, lengths that lie, JSON mutated, cut, nested deep or made of noise,
// unknown state bytes, early closes and resets, time jumps past the idle limit.
import { SeededRandom } from "../sim/seeded-random";

export type JsonKind = "params" | "results" | "mutated" | "truncated" | "nested" | "noise";

export type Iperf3Action =
  | { k: "control" } // a new connection to 5201, used as a control connection
  | { k: "stream" } // a new connection to 5201, used as a data stream
  | { k: "cookie"; conn: number; good: boolean; cut: number } // 37 bytes (or the first `cut`)
  | { k: "length"; conn: number; value: number } // a 4-byte big-endian length alone
  | { k: "json"; conn: number; kind: JsonKind; seed: number; declared: "exact" | "short" | "long" }
  | { k: "state"; conn: number; value: number } // one signed byte
  | { k: "data"; conn: number; bytes: number }
  | { k: "close"; conn: number }
  | { k: "reset"; conn: number }
  | { k: "poll"; rounds: number }
  | { k: "advance"; ms: number };

const STATES = [1, 2, 4, 9, 10, 11, 12, 13, 14, 15, 16, -1, -2, 0, 3, 99, 127, -128];
const LENGTHS = [0, 1, 2, 37, 100, 16383, 16384, 16385, 65536, 0x7fffffff, 0x80000000, 0xffffffff];

function weighted<T>(r: SeededRandom, table: [T, number][]): T {
  let roll = r.below(table.reduce((n, [, w]) => n + w, 0));
  for (const [value, weight] of table) {
    if (roll < weight) return value;
    roll -= weight;
  }
  return table[table.length - 1][0];
}

function step(r: SeededRandom): Iperf3Action {
  const conn = r.nextU32();
  const kind = weighted<Iperf3Action["k"]>(r, [
    ["control", 3], ["stream", 5], ["cookie", 10], ["length", 4], ["json", 12], ["state", 8],
    ["data", 6], ["close", 3], ["reset", 2], ["poll", 12], ["advance", 3],
  ]);
  switch (kind) {
    case "control":
    case "stream":
      return { k: kind };
    case "cookie":
      return { k: "cookie", conn, good: r.below(4) !== 0, cut: r.below(3) === 0 ? r.below(37) : 37 };
    case "length":
      return { k: "length", conn, value: r.pick(LENGTHS) };
    case "json":
      return {
        k: "json",
        conn,
        kind: r.pick(["params", "params", "results", "mutated", "mutated", "truncated", "nested", "noise"] as const),
        seed: r.nextU32(),
        declared: r.pick(["exact", "exact", "exact", "short", "long"] as const),
      };
    case "state":
      return { k: "state", conn, value: r.pick(STATES) };
    case "data":
      return { k: "data", conn, bytes: r.pick([1, 100, 4096, 65536, 300000]) };
    case "close":
    case "reset":
      return { k: kind, conn };
    case "poll":
      return { k: "poll", rounds: 1 + r.below(30) };
    default:
      return { k: "advance", ms: r.pick([1, 100, 2000, 31000]) };
  }
}

/** A case: 10-60 actions, starting like a client (control connection, cookie). */
export function generateIperf3Case(seed: number): Iperf3Action[] {
  const r = new SeededRandom(seed);
  const actions: Iperf3Action[] = [{ k: "control" }];
  if (r.below(4) !== 0) actions.push({ k: "cookie", conn: 0, good: true, cut: 37 }, { k: "poll", rounds: 5 });
  for (let n = 10 + r.below(51); n > 0; n--) actions.push(step(r));
  return actions;
}

/** The JSON text of a `json` action (the same bytes for the same seed). */
export function jsonText(kind: JsonKind, seed: number): string {
  const r = new SeededRandom(seed);
  const value = () => r.pick<unknown>([0, 1, -1, 2 ** 31, 2 ** 53, 1e300, -1e300, 0.5, "x", "", true, false, null, [], {}, [1, [2]], { a: { b: 1 } }]);
  if (kind === "params" || kind === "mutated" || kind === "truncated") {
    const p: Record<string, unknown> = { tcp: true, omit: 0, time: r.pick([0, 1, 10]), num: r.pick([0, 1000, 1 << 20]), blockcount: 0, parallel: 1 + r.below(4), len: 131072, client_version: "3.12" };
    if (r.below(3) === 0) p.reverse = true;
    if (r.below(5) === 0) p.bidirectional = true;
    if (kind === "mutated") for (let i = 1 + r.below(3); i > 0; i--) p[r.pick(["time", "num", "parallel", "len", "omit", "reverse", "udp", "blockcount", "tcp", "zzz"])] = value();
    const text = JSON.stringify(p);
    return kind === "truncated" ? text.slice(0, r.below(text.length)) : text;
  }
  if (kind === "results") {
    const streams = Array.from({ length: r.below(5) }, (_, i) => ({ id: r.below(3) === 0 ? value() : i === 0 ? 1 : i + 2, bytes: r.below(3) === 0 ? value() : r.below(1 << 20), retransmits: 0, jitter: 0, errors: 0, packets: 0 }));
    return JSON.stringify({ cpu_util_total: 1.5, cpu_util_user: 0.5, cpu_util_system: 1, sender_has_retransmits: 0, streams: r.below(5) === 0 ? value() : streams });
  }
  if (kind === "nested") {
    const depth = r.pick([5, 15, 16, 17, 40, 1000]);
    return r.below(2) === 0 ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  }
  let noise = "";
  for (let i = r.below(200); i > 0; i--) noise += String.fromCharCode(r.pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x3a, 0x2c, 0x5c, 0x30, 0x2d, 0x65, 0x2e, 0x20, 0x00, 0x7f, 0x61 + r.below(26)]));
  return noise;
}
