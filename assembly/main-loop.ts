// The main loop's step, outside main.ts so that the unit build's entry (test-hooks.ts) can export
// it without main.ts exporting it from the image.
import { appsPoll } from "./apps/index";
import { crashPortsPoll, SELFTEST_CRASH_WHILE_SERVING } from "./apps/crash-ports";
import { idleAfterPoll } from "./vsock-protocol/idle";
import { vsockPoll } from "./vsock-protocol/stack";

// One round of progress: device queues, every connection, every service. True when a packet moved.
export function pollOnce(): bool {
  const progressed = vsockPoll();
  appsPoll();
  if (SELFTEST == SELFTEST_CRASH_WHILE_SERVING) crashPortsPoll();
  return progressed;
}

// One round of the main loop: a poll, then the idle policy (which may halt until an interrupt).
export function pollOrHalt(): void {
  idleAfterPoll(pollOnce());
}
