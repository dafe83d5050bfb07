// No control packet waits: every RST, RESPONSE and CREDIT_UPDATE a poll queues leaves before the
// firmware halts for good, whatever the tx queue's state was. Seen on the real kernel vhost-vsock:
// right after a burst of echo connections closed, the host connected to a port nobody listens
// on; the firmware logged the rejection at once, but its RST left only when the host's next
// REQUEST arrived 2.2 s later. A halt may end only by an interrupt: its timer is no promise
// (a halt the LAPIC timer should have ended has lasted until the next packet before).
//
// Here the only input after the burst is that one packet, while every tx buffer is in flight and
// the device holds them (vhost completes tx on its own schedule), and the device completes them
// at every possible moment in turn: each exit of the firmware's main loop, or during its halt.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { HostSocket } from "../../tools/vsock-model/host";
import { TX_QUEUE } from "../../tools/vsock-model/vsock-device";
import { VIRTIO_VSOCK_OP_CREDIT_REQUEST } from "../../tools/vsock-model/vsock-packet";
import { ECHO_PORT, OP_CREDIT_UPDATE, OP_RESPONSE, OP_RST, boot, noViolations } from "./vsock-helpers";

const BURST = 40; // more connections than tx buffers (32)
const UNBOUND_PORT = 9999;
const MAIN_LOOP_ROUNDS = 2000;
const VRING_USED_F_NO_NOTIFY = 1;

/**
 * The device takes no tx chain until release(), like vhost while its replies to the guest cannot
 * be delivered: tx notifications off (VRING_USED_F_NO_NOTIFY, so the driver's kicks are
 * suppressed), and on release it takes every chain on its own, as vhost's restart does.
 */
function holdTx(m: Machine): { release: () => void; held: () => boolean } {
  const device = m.device!;
  const txUsedFlags = device.queues[TX_QUEUE].usedAddr;
  const process = device.processTx.bind(device);
  let held = true;
  m.guestMemory.write16(txUsedFlags, VRING_USED_F_NO_NOTIFY);
  device.processTx = () => {
    if (!held) process();
  };
  return {
    release: () => {
      if (!held) return;
      held = false;
      m.guestMemory.write16(txUsedFlags, 0);
      process();
    },
    held: () => held,
  };
}

interface Owed {
  /** What the host sends (the only input after the burst). */
  send: (m: Machine, kept: HostSocket) => void;
  /** Whether the firmware's answer reached the device. */
  answered: (m: Machine, kept: HostSocket) => boolean;
}

const OWED: Record<string, Owed> = {
  "RST to a REQUEST for an unbound port": (() => {
    let h: HostSocket;
    return {
      send: (m) => {
        h = m.host.connect(UNBOUND_PORT);
      },
      answered: (m) => m.device!.sentByGuest.some((p) => p.header.op === OP_RST && p.header.srcPort === UNBOUND_PORT && p.header.dstPort === h.localPort),
    };
  })(),
  "RESPONSE to a REQUEST for the echo service": (() => {
    let h: HostSocket;
    return {
      send: (m) => {
        h = m.host.connect(ECHO_PORT);
      },
      answered: () => h.state === "connected",
    };
  })(),
  "CREDIT_UPDATE to a CREDIT_REQUEST": (() => {
    let from = 0;
    return {
      send: (m, kept) => {
        from = m.device!.sentByGuest.length;
        m.device!.inject({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: kept.localPort, dstPort: ECHO_PORT, fwdCnt: kept.fwdCnt });
      },
      answered: (m, kept) => m.device!.sentByGuest.slice(from).some((p) => p.header.op === OP_CREDIT_UPDATE && p.header.dstPort === kept.localPort),
    };
  })(),
};

/**
 * A burst of echo connections closes while the device holds tx: the firmware's RSTs fill every tx
 * buffer and more wait. Then `owed.send` is the only input. The device completes the held tx at
 * the `releaseAt`-th exit of the main loop (or in its first halt, if that comes first). Returns
 * whether the answer left before any halt that only its timer could end, and how many exits the
 * main loop made before its first halt.
 */
async function run(owed: Owed, releaseAt: number, queueSizeMax?: number): Promise<{ prompt: boolean; exitsBeforeHalt: number; detail: string }> {
  const m = await boot({ queueSizeMax });
  const kept = m.host.connect(ECHO_PORT);
  const burst = Array.from({ length: BURST }, () => m.host.connect(ECHO_PORT));
  assert.ok(m.runUntil(() => kept.state === "connected" && burst.every((h) => h.state === "connected"), 200));
  m.poll(5);
  const tx = holdTx(m);
  for (const h of burst) h.close();
  m.poll(5);
  owed.send(m, kept);

  let exits = 0;
  let exitsBeforeHalt = -1;
  let releasedOn = "halt";
  m.onExit = (kind) => {
    if (++exits < releaseAt || !tx.held()) return;
    releasedOn = kind;
    tx.release();
  };
  m.duringHalt = () => {
    if (exitsBeforeHalt < 0) exitsBeforeHalt = exits;
    tx.release();
  };
  const timeoutWakes = m.haltWakes.timeout;
  const start = m.clock;
  let rounds = 0;
  for (; rounds < MAIN_LOOP_ROUNDS && !owed.answered(m, kept); rounds++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  m.onExit = null;
  m.duringHalt = null;
  const answered = owed.answered(m, kept);
  const prompt = answered && m.haltWakes.timeout === timeoutWakes;
  noViolations(m);
  const detail = `answered=${answered} rounds=${rounds} halts ended by timeout=${m.haltWakes.timeout - timeoutWakes} by interrupt=${m.haltWakes.interrupt} clock=${(m.clock - start) / 1000n} us device completed tx on ${releasedOn}`;
  return { prompt, exitsBeforeHalt, detail };
}

/** Runs the burst once for every moment the device may complete the held tx. */
async function everyCompletionMoment(owed: Owed, queueSizeMax?: number): Promise<void> {
  // First the device completes during the first halt; that tells how many exits come before it.
  const last = await run(owed, Number.MAX_SAFE_INTEGER, queueSizeMax);
  assert.ok(last.prompt, `device completed tx during the first halt: ${last.detail}`);
  assert.ok(last.exitsBeforeHalt > 0, "the main loop halted while tx was held");
  for (let releaseAt = 1; releaseAt <= last.exitsBeforeHalt + 1; releaseAt++) {
    const r = await run(owed, releaseAt, queueSizeMax);
    assert.ok(r.prompt, `device completed tx at exit ${releaseAt} of ${last.exitsBeforeHalt}: ${r.detail}`);
  }
}

for (const [name, owed] of Object.entries(OWED)) {
  test(`after a burst, with every tx buffer in flight: the ${name} leaves before a halt only a timer could end, whenever the device completes tx`, async () => {
    await everyCompletionMoment(owed);
  });
}

test("the same with a 16-entry tx ring, full of in-flight packets", async () => {
  await everyCompletionMoment(OWED["RST to a REQUEST for an unbound port"], 16);
});

test("after a burst of closes with a prompt device, the RST to an unbound port leaves at the next poll", async () => {
  const m = await boot();
  const burst = Array.from({ length: BURST }, () => m.host.connect(ECHO_PORT));
  assert.ok(m.runUntil(() => burst.every((h) => h.state === "connected"), 200));
  for (const h of burst) h.close();
  for (let i = 0; i < 20; i++) m.exports.fw_poll_or_halt();
  const h = m.host.connect(UNBOUND_PORT);
  m.exports.fw_poll_or_halt();
  assert.equal(h.state, "reset");
  assert.equal(h.error, "ECONNRESET");
  noViolations(m);
});
