// The device side of the split ring walks chains like vhost and refuses malformed ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemoryError, RegionGuestMemory } from "../../tools/vsock-model/guest-memory";
import {
  DeviceSplitQueue,
  RingError,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from "../../tools/vsock-model/split-ring";

const BASE = 0x100000;
const SIZE = 8;
const DESC = BASE;
const AVAIL = BASE + 0x100;
const USED = BASE + 0x200;
const DATA = BASE + 0x1000;

function setup() {
  const ram = new Uint8Array(0x10000);
  const memory = new RegionGuestMemory([{ guestAddress: BASE, bytes: () => ram }]);
  const queue = new DeviceSplitQueue(memory, 1, SIZE, DESC, AVAIL, USED);
  let availIdx = 0;
  const desc = (i: number, addr: number, len: number, flags: number, next = 0) => {
    memory.write64(DESC + 16 * i, BigInt(addr));
    memory.write32(DESC + 16 * i + 8, len);
    memory.write16(DESC + 16 * i + 12, flags);
    memory.write16(DESC + 16 * i + 14, next);
  };
  const offer = (head: number) => {
    memory.write16(AVAIL + 4 + 2 * (availIdx % SIZE), head);
    availIdx = (availIdx + 1) & 0xffff;
    memory.write16(AVAIL + 2, availIdx);
  };
  return { ram, memory, queue, desc, offer };
}

test("guest memory: little-endian accessors and a named error outside RAM", () => {
  const { memory } = setup();
  memory.write64(BASE + 8, 0x0102030405060708n);
  assert.equal(memory.read32(BASE + 8), 0x05060708);
  assert.equal(memory.read16(BASE + 14), 0x0102);
  assert.equal(memory.read8(BASE + 15), 0x01);
  assert.throws(() => memory.read32(BASE - 2), GuestMemoryError);
  assert.throws(() => memory.read32(BASE + 0x10000 - 2), (e: Error) => e.name === "GuestMemoryError");
  assert.equal(memory.contains(BASE + 0xfff0, 16), true);
  assert.equal(memory.contains(BASE + 0xfff0, 17), false);
});

test("a readable chain then a writable one: walked, gathered, returned through the used ring", () => {
  const { memory, queue, desc, offer } = setup();
  memory.writeBytes(DATA, Uint8Array.of(1, 2, 3));
  memory.writeBytes(DATA + 0x100, Uint8Array.of(4, 5));
  desc(3, DATA, 3, VIRTQ_DESC_F_NEXT, 5);
  desc(5, DATA + 0x100, 2, 0);
  desc(0, DATA + 0x200, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
  desc(1, DATA + 0x300, 8, VIRTQ_DESC_F_WRITE);
  offer(3);
  offer(0);
  assert.equal(queue.pending(), 2);
  const out = queue.pop()!;
  assert.deepEqual([out.head, out.readableLength, out.writableLength, out.descriptors.length], [3, 5, 0, 2]);
  assert.deepEqual([...queue.gather(out)], [1, 2, 3, 4, 5]);
  const into = queue.pop()!;
  assert.equal(into.writableLength, 12);
  assert.equal(queue.scatter(into, Uint8Array.of(9, 9, 9, 9, 7, 7)), 6);
  assert.deepEqual([...memory.readBytes(DATA + 0x200, 4)], [9, 9, 9, 9]);
  assert.deepEqual([...memory.readBytes(DATA + 0x300, 2)], [7, 7]);
  queue.pushUsed(0, 6);
  queue.pushUsed(3, 0);
  assert.equal(memory.read16(USED + 2), 2, "used idx");
  assert.deepEqual([memory.read32(USED + 4), memory.read32(USED + 8)], [0, 6]);
  assert.deepEqual([memory.read32(USED + 12), memory.read32(USED + 16)], [3, 0]);
  assert.equal(queue.pop(), null);
  assert.throws(() => queue.pushUsed(3, 0), RingError, "a head cannot be returned twice");
});

function expectRingError(kind: string, build: (s: ReturnType<typeof setup>) => void) {
  const s = setup();
  build(s);
  assert.throws(() => s.queue.pop(), (e: unknown) => e instanceof RingError && e.kind === kind);
}

test("malformed chains are refused with a named kind", () => {
  expectRingError("head-index", (s) => s.offer(SIZE));
  expectRingError("next-index", (s) => {
    s.desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, SIZE + 3);
    s.offer(0);
  });
  expectRingError("loop", (s) => {
    s.desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    s.desc(1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    s.offer(0);
  });
  expectRingError("indirect", (s) => {
    s.desc(0, DATA, 16, VIRTQ_DESC_F_INDIRECT);
    s.offer(0);
  });
  expectRingError("order", (s) => {
    s.desc(0, DATA, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    s.desc(1, DATA, 4, 0);
    s.offer(0);
  });
  expectRingError("memory", (s) => {
    s.desc(0, 0x10, 4, 0);
    s.offer(0);
  });
  expectRingError("avail-idx", (s) => s.memory.write16(AVAIL + 2, SIZE + 1));
});

test("avail idx wraps at 65536", () => {
  const { memory, queue, desc } = setup();
  queue.lastAvailIdx = 0xffff;
  desc(2, DATA, 1, 0);
  memory.write16(AVAIL + 4 + 2 * (0xffff % SIZE), 2);
  memory.write16(AVAIL + 2, 0);
  assert.equal(queue.pending(), 1);
  assert.equal(queue.pop()!.head, 2);
  assert.equal(queue.lastAvailIdx, 0);
});

test("hostile seam: interceptUsed can rewrite, duplicate or drop a used entry", () => {
  const { memory, queue, desc, offer } = setup();
  desc(0, DATA, 4, VIRTQ_DESC_F_WRITE);
  desc(1, DATA, 4, VIRTQ_DESC_F_WRITE);
  offer(0);
  offer(1);
  queue.pop();
  queue.pop();
  queue.interceptUsed = (e) => [{ id: e.id, len: 9999 }, { id: e.id, len: 4 }];
  queue.pushUsed(0, 4);
  queue.interceptUsed = () => [];
  queue.pushUsed(1, 4);
  queue.pushUsedRaw(42, 1);
  assert.equal(memory.read16(USED + 2), 3);
  assert.deepEqual(
    [0, 1, 2].map((i) => [memory.read32(USED + 4 + 8 * i), memory.read32(USED + 8 + 8 * i)]),
    [[0, 9999], [0, 4], [42, 1]],
  );
});

test("vring_need_event: an index move from old to next passes event, with u16 wrap-around", () => {
  assert.equal(vringNeedEvent(5, 6, 5), true, "the entry asked for was written");
  assert.equal(vringNeedEvent(5, 9, 3), true, "passed within a batch");
  assert.equal(vringNeedEvent(5, 5, 3), false, "not yet");
  assert.equal(vringNeedEvent(4, 9, 5), false, "already passed before this batch");
  assert.equal(vringNeedEvent(0xffff, 1, 0xfffe), true, "across the wrap");
  assert.equal(vringNeedEvent(0xffff, 0xffff, 0xfffe), false);
});

test("interrupt decision: the flag without EVENT_IDX; used_event with it (the flag ignored)", () => {
  const { memory, queue, desc, offer } = setup();
  const usedEvent = AVAIL + 4 + 2 * SIZE;
  for (let i = 0; i < 4; i++) {
    desc(i, DATA + 64 * i, 64, VIRTQ_DESC_F_WRITE);
    offer(i);
  }
  const complete = () => {
    const chain = queue.pop()!;
    queue.pushUsed(chain.head, 0);
    return queue.needsInterrupt();
  };
  memory.write16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.equal(complete(), false, "flag set: no interrupt");
  memory.write16(AVAIL, 0);
  assert.equal(complete(), true, "flag clear: interrupt");
  queue.eventIdx = true;
  memory.write16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT); // ignored from now on
  memory.write16(usedEvent, 3); // "interrupt me once entry 3 is written"
  assert.equal(complete(), false, "entry 2 written, the flag ignored");
  assert.equal(complete(), true, "entry 3 written");
});

test("notify suppression: NO_NOTIFY without EVENT_IDX; avail_event at the avail idx last read with it", () => {
  const { memory, queue, desc, offer } = setup();
  const availEvent = USED + 4 + 8 * SIZE;
  desc(0, DATA, 64, VIRTQ_DESC_F_WRITE);
  queue.disableNotify();
  assert.equal(memory.read16(USED) & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY);
  assert.equal(queue.enableNotify(), false, "nothing published meanwhile");
  assert.equal(memory.read16(USED) & VIRTQ_USED_F_NO_NOTIFY, 0);
  queue.eventIdx = true;
  memory.write16(availEvent, 0x1234);
  queue.disableNotify(); // vhost: nothing to do with EVENT_IDX
  assert.equal(memory.read16(USED) & VIRTQ_USED_F_NO_NOTIFY, 0);
  assert.equal(memory.read16(availEvent), 0x1234);
  offer(0);
  assert.equal(queue.pending(), 1); // the device reads avail idx (1)
  offer(0);
  assert.equal(queue.enableNotify(), true, "the driver published after the device looked");
  assert.equal(memory.read16(availEvent), 1, "a kick for the first entry it has not read");
});
