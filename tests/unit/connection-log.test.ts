// Connection lines cost a VM exit per byte on the debug console, so past a burst the firmware folds
// them into one `connections folded` line a second (assembly/vsock-protocol/connection-log.ts). These tests
// hold the policy: every connection is accounted for, every opened line has its closed line, and a
// human pace is never folded.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import type { HostSocket } from "../../tools/vsock-model/host";
import { connectionLines } from "./connection-lines";
import { ECHO_PORT, connCount, guest, noViolations } from "./vsock-helpers";

function echoCycle(m: Machine, i: number, end: "close" | "reset" = "close"): void {
  const h: HostSocket = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100), `cycle ${i}`);
  h.send(`x${i}`);
  assert.ok(m.runUntil(() => h.received.length === `x${i}`.length, 100), `cycle ${i} echo`);
  if (end === "reset") h.reset();
  else h.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 1000), `cycle ${i} closed`);
}

function tuples(lines: string[]): string[] {
  return lines.map((l) => / local=\d+ peer=\d+:\d+/.exec(l)![0]).sort();
}

test("a burst beyond 32 connections is folded; every opened line has its closed line", async () => {
  const { m } = await guest();
  for (let i = 0; i < 40; i++) echoCycle(m, i);
  m.advance(1_000_000_000n);
  m.poll(2);
  const lines = connectionLines(m);
  assert.equal(lines.openedLines, 32, "the burst is logged in full");
  assert.equal(lines.foldedOpened, 8);
  assert.equal(lines.foldedClosed, 8);
  assert.deepEqual(tuples(m.logLines("connection closed")), tuples(m.logLines("connection opened")));
  const folded = m.logLines("connections folded");
  assert.equal(folded.length, 1);
  assert.match(folded[0], / opened=8 closed=8 peer-shutdown=8 rx_bytes=\d+ tx_bytes=\d+ ms=\d+ conns=0$/);
  noViolations(m);
});

test("connections at a human pace are never folded", async () => {
  const { m } = await guest();
  for (let i = 0; i < 60; i++) {
    echoCycle(m, i);
    m.advance(300_000_000n); // a little slower than the 4 a second that stay in full
  }
  const lines = connectionLines(m);
  assert.equal(lines.openedLines, 60);
  assert.equal(lines.closedLines, 60);
  assert.equal(m.logLines("connections folded").length, 0);
});

test("folded closes keep their end reasons", async () => {
  const { m } = await guest();
  for (let i = 0; i < 32; i++) echoCycle(m, i);
  for (let i = 32; i < 37; i++) echoCycle(m, i, "reset");
  m.advance(1_000_000_000n);
  m.poll(2);
  assert.match(m.logLines("connections folded")[0], / opened=5 closed=5 reset-by-peer=5 /);
});

test("connection-lines=all logs every connection in full, whatever the pace", async () => {
  const { m } = await guest({ options: { "connection-lines": "all" } });
  for (let i = 0; i < 40; i++) echoCycle(m, i);
  m.advance(1_000_000_000n);
  m.poll(2);
  const lines = connectionLines(m);
  assert.equal(lines.openedLines, 40);
  assert.equal(lines.closedLines, 40);
  assert.equal(m.logLines("connections folded").length, 0);
});
