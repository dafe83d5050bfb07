// The seeded short fuzz run of `make test`: a fixed range of generated cases (tests/fuzz/actions.ts)
// on the simulated machine, every invariant of run-case.ts checked after every action. A failure
// names its seed and is minimised here, so the message carries a short reproducer.
// `make fuzz` runs the same generator for as long as asked (tests/fuzz/fuzz.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { generateCase } from "./actions";
import { minimise } from "./minimise";
import { runActions } from "./run-case";

const FIRST_SEED = Number(process.env.FUZZ_TEST_SEED ?? 1);
const CASES = Number(process.env.FUZZ_TEST_CASES ?? 400);

test(`fuzz: ${CASES} seeded cases from seed ${FIRST_SEED}: no trap, no hang, streams intact, counters consistent`, async () => {
  let chaos = 0;
  let mmio = 0;
  let rejections = 0;
  let delivered = 0;
  let apiCalls = 0;
  let guestToHost = 0;
  for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
    const c = generateCase(seed);
    const result = await runActions(c.actions);
    if (result.failure) {
      const small = await minimise(c.actions, result.failure.kind, 300);
      assert.fail(`seed ${seed}: ${result.failure.message}\nminimised (${small.actions.length} actions): ${JSON.stringify(small.actions)}`);
    }
    if (c.chaos) chaos++;
    if (c.actions.some((a) => a.k === "useMmio")) mmio++;
    rejections += result.stats.rejections;
    delivered += result.stats.delivered;
    apiCalls += result.stats.apiCalls;
    guestToHost += result.stats.guestToHostBytes;
  }
  // The run must have exercised something: both case kinds, many rejections, many packets.
  assert.ok(chaos > CASES / 10 && chaos < CASES / 2, `chaos cases ${chaos}`);
  assert.ok(mmio > CASES / 5 && mmio < CASES / 3, `virtio-mmio cases ${mmio}`); // the microvm shape
  assert.ok(rejections > CASES * 5, `rejections ${rejections}`);
  assert.ok(delivered > CASES * 20, `packets delivered ${delivered}`);
  // The guest-to-host direction and the socket API were worked too.
  assert.ok(apiCalls > CASES, `socket-API calls ${apiCalls}`);
  assert.ok(guestToHost > CASES * 1000, `bytes the host accepted from the firmware's clients ${guestToHost}`);
});

test("the fuzzer finds what it must: without taint tracking a replayed RW is reported", async () => {
  // The invariant checker's own check: a replay of a delivered RW is data the firmware cannot tell
  // from real data; the checker must see the corrupted stream when it is told not to excuse it.
  process.env.FUZZ_SELFTEST_NO_TAINT = "1";
  try {
    const result = await runActions([
      { k: "connect", service: "echo" },
      { k: "send", conn: 0, bytes: 1000 },
      { k: "poll", rounds: 3 },
      { k: "replay", pick: 2 }, // delivered so far: the greeting's RST, the REQUEST, the RW
      { k: "poll", rounds: 3 },
    ]);
    assert.equal(result.failure?.kind, "stream", String(result.failure?.message));
  } finally {
    delete process.env.FUZZ_SELFTEST_NO_TAINT;
  }
});

test("the fuzzer finds what it must, guest to host: without taint tracking a duplicated or reordered guest RW is reported", async () => {
  process.env.FUZZ_SELFTEST_NO_TAINT = "1";
  try {
    const duplicated = await runActions([
      { k: "connect", service: "echo" },
      { k: "poll", rounds: 3 },
      { k: "txDuplicate" }, // the next guest packet: the echo of what follows
      { k: "send", conn: 0, bytes: 1000 },
      { k: "poll", rounds: 3 },
    ]);
    assert.equal(duplicated.failure?.kind, "stream", String(duplicated.failure?.message));
    const reordered = await runActions([
      { k: "hostListen", target: "api" },
      { k: "api", call: "connect", fd: "own", pick: 0, a: 6000, b: 2, len: 0, ptr: "scratch" },
      { k: "poll", rounds: 2 },
      { k: "txHold" },
      { k: "api", call: "send", fd: "own", pick: 0, a: 0, b: 0, len: 100, ptr: "scratch" },
      { k: "api", call: "send", fd: "own", pick: 0, a: 0, b: 0, len: 100, ptr: "scratch" },
      { k: "txRelease", order: "reverse", pick: 0 },
    ]);
    assert.equal(reordered.failure?.kind, "stream", String(reordered.failure?.message));
  } finally {
    delete process.env.FUZZ_SELFTEST_NO_TAINT;
  }
});
