// Tests fail instead of hanging: a firmware call that never returns (a blocking recv, accept or
// connect waiting for something that never comes) throws SimHang from inside the sim's imports,
// naming the call, once it has made more import calls than the machine's budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SimHang } from "../sim/machine";
import { guest } from "./vsock-helpers";

const SMALL_BUDGET = 100_000;

test("a blocking recv that nothing answers fails with SimHang naming the call, not a hang", async () => {
  const { m, g } = await guest({ importBudget: SMALL_BUDGET });
  const lfd = g.listener(6100);
  const h = m.host.connect(6100, 9100);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd; // accepted sockets block by default
  assert.ok(fd >= 0);
  const clockBefore = m.clock;
  assert.throws(() => g.recv(fd, 10), (error: unknown) => {
    if (!(error instanceof SimHang)) return false;
    assert.match(error.message, new RegExp(`^firmware call vs_recv\\(${fd}, `));
    assert.match(error.message, new RegExp(`within ${SMALL_BUDGET} import calls`));
    return true;
  });
  assert.equal(m.importCalls, SMALL_BUDGET + 1, "stopped at the budget");
  assert.ok(m.clock - clockBefore > 10_000_000n, "the simulated clock ran on meanwhile");
});

test("a blocking accept and a blocking connect to a silent host are caught the same way", async () => {
  const { m, g } = await guest({ importBudget: SMALL_BUDGET });
  const lfd = g.listener(6101, 16, false);
  assert.throws(() => g.accept(lfd), (e: unknown) => e instanceof SimHang && /^firmware call vs_accept\(/.test(e.message));
  // A host that swallows our REQUEST: the connect waits for its 2 s timeout, longer than the budget.
  m.host.receive = () => {};
  const fd = g.socket();
  assert.throws(() => g.connect(fd, 7000), (e: unknown) => e instanceof SimHang && /^firmware call vs_connect\(/.test(e.message));
});

test("the budget is per call: many short calls never add up to a hang", async () => {
  const budget = 2000; // boot (fw_init) takes ~800
  const { m } = await guest({ importBudget: budget });
  let calls = 0;
  for (let i = 0; i < 1000; i++) {
    m.poll();
    calls += m.importCalls;
  }
  assert.ok(calls > budget, `${calls} import calls in all`);
});
