// A control connection to the firmware's test-peer (port 1239) from the simulated host: one
// command line in, one answer line out (assembly/apps/test-peer/).
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import type { HostSocket } from "../../tools/vsock-model/host";

export const TEST_PEER_PORT = 1239;

export interface Answer {
  line: string;
  ret: number;
  errno: string;
  bytes: number;
  crc: string;
  keys: Record<string, string>;
}

export function parseAnswer(line: string): Answer {
  const words = line.split(" ");
  assert.ok(words.length >= 4, `answer has 4 fields: ${JSON.stringify(line)}`);
  assert.match(words[0], /^-?\d+$/);
  assert.match(words[1], /^(OK|E[A-Z0-9]+)$/);
  assert.match(words[2], /^\d+$/);
  assert.match(words[3], /^[0-9a-f]{8}$/);
  const keys: Record<string, string> = {};
  for (const w of words.slice(4)) {
    const at = w.indexOf("=");
    assert.ok(at > 0, `key=value: ${w}`);
    keys[w.slice(0, at)] = w.slice(at + 1);
  }
  return { line, ret: Number(words[0]), errno: words[1], bytes: Number(words[2]), crc: words[3], keys };
}

export class Control {
  readonly h: HostSocket;
  private pending = "";

  constructor(readonly m: Machine) {
    this.h = m.host.connect(TEST_PEER_PORT);
    assert.ok(m.runUntil(() => this.h.state === "connected", 100), "control connection");
  }

  /** Sends raw bytes (no newline added) and returns every answer line that came within `rounds`. */
  raw(text: string | Uint8Array, lines: number, rounds = 2000): Answer[] {
    this.h.send(text);
    const out: Answer[] = [];
    assert.ok(
      this.m.runUntil(() => {
        this.pending += new TextDecoder().decode(this.h.take());
        return this.pending.split("\n").length - 1 >= lines;
      }, rounds),
      `expected ${lines} answer lines, got ${JSON.stringify(this.pending)}`,
    );
    const parts = this.pending.split("\n");
    this.pending = parts.pop()!;
    for (const p of parts) out.push(parseAnswer(p));
    return out;
  }

  cmd(line: string, rounds = 2000): Answer {
    const [a] = this.raw(line + "\n", 1, rounds);
    return a;
  }

  /** A command that must succeed; returns its answer. */
  ok(line: string): Answer {
    const a = this.cmd(line);
    assert.equal(a.errno, "OK", `${line} -> ${a.line}`);
    return a;
  }
}
