// Fuzzing the test-peer's command parser (assembly/apps/test-peer/): seeded lines, half of them
// well-formed commands with random arguments and half mutated or raw bytes, sent on one control
// connection. Invariants: every line gets exactly one answer of the documented shape
// (`<ret> <errno|OK> <bytes> <crc32>[ key=value ...]`), no wasm trap, no device violation, and the
// echo service and the test-peer still serve afterwards. Blocking stays bounded: every socket the
// firmware opens for the fuzzer gets 1 ms timeouts before the next line.
import { SeededRandom } from "../sim/seeded-random";
import { Machine, SimHang } from "../sim/machine";
import type { HostSocket } from "../../tools/vsock-model/host";

const WORDS = ["socket", "bind", "listen", "accept", "connect", "send", "recv", "shutdown", "close",
  "setsockopt", "getsockopt", "poll", "wait", "sockname", "peername", "inq", "outq", "info", "frob", ""];
const ARGS = ["stream", "seqpacket", "any", "rd", "wr", "rdwr", "peek", "dontwait", "all", "nullbuf", "in", "out",
  "none", "in,out", "rdhup", "in,rdhup,", "linger", "buffer_size", "rcvtimeo", "sndtimeo", "connect_timeout", "rcvlowat", "error",
  "buffer_max_size", "0", "1", "2", "3", "4", "5", "6", "33", "1234", "1239", "4096", "65536", "262145",
  "-1", "4294967295", "4294967296", "99999999999999999999", "0x10", "1e3", "\u00e9", "\t"];
const ANSWER = /^-?\d+ (OK|E[A-Z0-9]+) \d+ [0-9a-f]{8}( [a-z_]+=[^ ]*)*$/;

export interface LineFuzzResult {
  failure: string | null;
  lines: number;
  answers: number;
  okAnswers: number;
}

// A command the grammar accepts, on one of the fuzzer's sockets (or a wrong fd now and then).
function validCommand(r: SeededRandom, fds: number[]): string {
  const fd = fds.length && r.below(8) !== 0 ? r.pick(fds) : r.pick([0, 3, 4, 999]);
  const port = r.pick(["any", "1234", "1239", "5000", "5001", "4050"]);
  const templates = [
    "socket stream", "socket stream", "socket seqpacket", "info",
    `bind ${fd} ${port}`, `listen ${fd} ${r.below(5)}`, `accept ${fd}`, `connect ${fd} 2 ${r.pick([4050, 5000, 1234])}`,
    `send ${fd} ${r.pick([0, 1, 100, 70000])}${r.below(2) ? " dontwait" : ""}`, `recv ${fd} ${r.pick([0, 1, 512])} dontwait${r.below(2) ? " peek" : ""}`,
    `shutdown ${fd} ${r.pick(["rd", "wr", "rdwr"])}`, `close ${fd}`, `poll ${fd} ${r.pick(["in", "out", "none"])} ${r.below(3)}`,
    `wait ${fd} ${r.below(3)} ${r.below(3)}`, `getsockopt ${fd} ${r.pick(["buffer_size", "rcvtimeo", "error"])}`,
    `setsockopt ${fd} buffer_size ${r.pick([0, 4096, 262144, 1 << 30])}`, `sockname ${fd}`, `peername ${fd}`,
  ];
  return r.pick(templates);
}

function randomLine(r: SeededRandom, fds: number[]): Uint8Array {
  const kind = r.below(10);
  if (kind < 4) return new TextEncoder().encode(validCommand(r, fds));
  if (kind < 7) {
    const words = [r.pick(WORDS)];
    for (let n = r.below(6); n > 0; n--) {
      const roll = r.below(4);
      if (roll === 0 && fds.length) words.push(String(r.pick(fds)));
      else if (roll === 1) words.push(String(r.below(3) === 0 ? r.nextU32() : r.below(70000)));
      else words.push(r.pick(ARGS));
    }
    return new TextEncoder().encode(words.join(r.below(8) === 0 ? "  " : " "));
  }
  if (kind < 9) {
    // A well-formed line with bytes flipped, cut or repeated.
    const base = new TextEncoder().encode(`${r.pick(WORDS)} ${fds.length ? r.pick(fds) : 3} ${r.pick(ARGS)}`);
    const out = Array.from(base);
    for (let n = 1 + r.below(3); n > 0; n--) {
      const at = r.below(out.length + 1);
      const op = r.below(3);
      if (op === 0) out.splice(at, 0, r.below(256));
      else if (op === 1) out.splice(at, 1);
      else out.splice(at, 0, ...out.slice(0, r.below(400)));
    }
    return new Uint8Array(out.filter((b) => b !== 0x0a));
  }
  return r.bytes(r.below(600)).map((b) => (b === 0x0a ? 0x20 : b));
}

class LineClient {
  private text = "";
  readonly answers: string[] = [];
  constructor(readonly m: Machine, readonly h: HostSocket) {}
  collect(): void {
    this.text += Buffer.from(this.h.take()).toString("latin1");
    let at: number;
    while ((at = this.text.indexOf("\n")) >= 0) {
      this.answers.push(this.text.slice(0, at));
      this.text = this.text.slice(at + 1);
    }
  }
  /** Sends one line and returns its answer, or null if none came within the rounds. */
  ask(line: Uint8Array, rounds = 400): string | null {
    const before = this.answers.length;
    const withNewline = new Uint8Array(line.length + 1);
    withNewline.set(line);
    withNewline[line.length] = 0x0a;
    this.h.send(withNewline);
    this.m.runUntil(() => {
      this.collect();
      return this.answers.length > before;
    }, rounds);
    return this.answers.length > before ? this.answers[before] : null;
  }
}

export async function fuzzTestPeerLines(seed: number, count: number, wasmPath = "build/unit/firmware.wasm"): Promise<LineFuzzResult> {
  const r = new SeededRandom(seed);
  const m = await Machine.create({ wasmPath, guestCid: 33 });
  const result: LineFuzzResult = { failure: null, lines: 0, answers: 0, okAnswers: 0 };
  const fail = (why: string) => {
    result.failure = `seed ${seed} line ${result.lines}: ${why}`;
    return result;
  };
  try {
    if (!m.init()) return fail("boot failed");
    m.poll(3);
    const h = m.host.connect(1239);
    if (!m.runUntil(() => h.state === "connected", 100)) return fail("no control connection");
    const c = new LineClient(m, h);
    const fds: number[] = [];
    const lines: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const line = randomLine(r, fds);
      lines.push(line);
      result.lines++;
      const answer = c.ask(line);
      if (answer === null) return fail(`no answer to ${JSON.stringify(Buffer.from(line).toString("latin1"))}`);
      result.answers++;
      if (!ANSWER.test(answer)) return fail(`malformed answer ${JSON.stringify(answer)}`);
      const [ret, errno] = answer.split(" ");
      if (errno === "OK") result.okAnswers++;
      const text = Buffer.from(line).toString("latin1").trim();
      // A new socket: bound every blocking call on it before the next line.
      if (/^(socket|accept) /.test(text) && errno === "OK" && Number(ret) >= 3) {
        fds.push(Number(ret));
        for (const option of ["rcvtimeo", "sndtimeo", "connect_timeout"]) {
          const a = c.ask(new TextEncoder().encode(`setsockopt ${ret} ${option} 1`));
          if (a === null || !a.startsWith("0 OK ")) return fail(`setsockopt ${ret} ${option} 1 -> ${a}`);
        }
      }
      if (m.aborts.length) return fail(`wasm aborted: ${m.aborts[0].message}`);
      if (m.device!.violations.length) return fail(`device violation: ${m.device!.violations[0]}`);
    }
    // Both services still serve.
    const info = c.ask(new TextEncoder().encode("info"));
    if (info === null || !info.startsWith("0 OK ")) return fail(`info after the run: ${info}`);
    const echo = m.host.connect(1234);
    if (!m.runUntil(() => echo.state === "connected", 200)) return fail("echo: no connection after the run");
    echo.send("ping");
    if (!m.runUntil(() => echo.received.length === 4, 400)) return fail("echo: no answer after the run");
    return result;
  } catch (e) {
    if (e instanceof SimHang) return fail(`hang: ${e.message}`);
    return fail(`exception: ${(e as Error).stack}`);
  }
}
