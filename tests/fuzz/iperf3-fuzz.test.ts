// The iperf3 server's control parser under a hostile client (tests/fuzz/iperf3-actions.ts): a
// fixed range of seeded cases in `make test`; a failure names its seed and the shortest prefix
// of its actions that still fails. IPERF3_FUZZ_CASES / IPERF3_FUZZ_SEED run more or others.
import assert from "node:assert/strict";
import { test } from "node:test";
import { generateIperf3Case } from "./iperf3-actions";
import { runIperf3Case } from "./iperf3-run-case";

const FIRST_SEED = Number(process.env.IPERF3_FUZZ_SEED ?? 1);
const CASES = Number(process.env.IPERF3_FUZZ_CASES ?? 60);

test(`iperf3 fuzz: ${CASES} seeded hostile clients from seed ${FIRST_SEED}: no trap, no hang, nothing left behind, the next test exact`, async () => {
  let refusals = 0;
  for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
    const actions = generateIperf3Case(seed);
    const result = await runIperf3Case(actions);
    if (result.failure) {
      // The shortest failing prefix (cases are short: a linear search is enough).
      let shortest = actions;
      for (let n = 1; n < actions.length; n++) {
        if ((await runIperf3Case(actions.slice(0, n))).failure) {
          shortest = actions.slice(0, n);
          break;
        }
      }
      assert.fail(`seed ${seed}: ${result.failure.message} (action ${result.failure.actionIndex})\nshortest failing prefix: ${JSON.stringify(shortest)}`);
    }
    refusals += result.refusals;
  }
  // The cases must reach the server's error paths, not just bounce off.
  assert.ok(refusals > CASES / 2, `refusals ${refusals}`);
});
