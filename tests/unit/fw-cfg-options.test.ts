// Runtime options from fw_cfg at boot (assembly/platform/options.ts), with the exits they cost:
// under nested KVM each port access is an exit and each DMA transfer ~1-6 ms of QEMU's time.
// QEMU's q35 offers DMA: its signature register says so in one read, and the file directory
// comes in one transfer. Without DMA the byte-wide data port still works, one exit per byte.
import assert from "node:assert/strict";
import { test } from "node:test";
import { exitDiff, formatExits } from "../sim/exit-counter";
import { Machine } from "../sim/machine";
import { WASM_PATH } from "./vsock-helpers";

async function bootWith(options: Partial<Parameters<typeof Machine.create>[0]>) {
  const m = await Machine.create({ wasmPath: WASM_PATH, guestCid: 33, ...options });
  const before = m.exitCounts();
  assert.equal(m.init(), true, m.logText());
  return { m, d: exitDiff(m.exitCounts(), before) };
}

// An option with a visible effect at boot: the cost probe logs one line.
const PROBE = { "cost-probe": "1" };
const probeLine = /info probe: costs /;

function manyFiles(n: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`etc/file-${String(i).padStart(3, "0")}`] = "x";
  return files;
}

test("fw_cfg DMA: presence in one read, the directory in one transfer, an option in one more", async () => {
  const { m, d } = await bootWith({ options: PROBE, fwCfgFiles: manyFiles(20) });
  assert.equal(m.logLines(probeLine).length, 1, m.logText());
  assert.equal(m.fwCfg!.transfers.length, 2, JSON.stringify(m.fwCfg!.transfers));
  // 1 signature read, then 2 port writes per transfer.
  assert.equal(d["port.fw-cfg"], 5, formatExits(d));
});

test("fw_cfg DMA: a directory longer than the first read takes a second transfer, options after it are found", async () => {
  // "opt/..." sorts after the 100 "etc/..." files: only the second transfer has its entry.
  const { m, d } = await bootWith({ options: PROBE, fwCfgFiles: manyFiles(100) });
  assert.equal(m.logLines(probeLine).length, 1, m.logText());
  assert.equal(m.fwCfg!.transfers.length, 3, JSON.stringify(m.fwCfg!.transfers));
  assert.equal(d["port.fw-cfg"], 7, formatExits(d));
});

test("fw_cfg without DMA: the byte-wide data port gives the same options", async () => {
  const { m, d } = await bootWith({ options: PROBE, fwCfgDma: false });
  assert.equal(m.logLines(probeLine).length, 1, m.logText());
  assert.equal(m.fwCfg!.transfers.length, 0);
  assert.ok(d["port.fw-cfg"] > 10, formatExits(d));
});

test("no fw_cfg at all: no options, and the firmware still comes up", async () => {
  const { m } = await bootWith({ options: PROBE, fwCfg: false });
  assert.equal(m.logLines(probeLine).length, 0, m.logText());
  assert.equal(m.logLines(/info app: ready: /).length, 1, m.logText());
});
