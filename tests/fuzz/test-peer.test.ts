// The seeded test-peer command fuzz of `make test` (tests/fuzz/test-peer-lines.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { fuzzTestPeerLines } from "./test-peer-lines";

const SEEDS = Number(process.env.FUZZ_TEST_PEER_SEEDS ?? 8);
const LINES = 150;

test(`test-peer fuzz: ${SEEDS} seeds x ${LINES} lines: one well-formed answer per line, no trap, services alive`, async () => {
  let ok = 0;
  let answers = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await fuzzTestPeerLines(seed, LINES);
    assert.equal(r.failure, null, String(r.failure));
    ok += r.okAnswers;
    answers += r.answers;
  }
  assert.equal(answers, SEEDS * LINES);
  // The run reached real socket calls, not only the parser's refusals.
  assert.ok(ok > SEEDS * 5, `successful commands ${ok}`);
});
