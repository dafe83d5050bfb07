// A split virtqueue (virtio 1.2, 2.7), driver side. The descriptor table, available ring and used
// ring each sit on their own pages of linear memory, allocated once. Descriptors come from a free
// list kept in our own memory (the device can write its rings, never our bookkeeping). Everything
// the device hands back through the used ring is validated before anyone trusts it.
import { barrier } from "../platform/imports";
import { LEVEL_INFO, logBegin, logEnd, logKv, logStr } from "../platform/log";
import {
  countRejection,
  REJECT_USED_BAD_ID,
  REJECT_USED_DUPLICATE,
  REJECT_USED_IDX_JUMP,
  REJECT_USED_NOT_IN_FLIGHT,
  REJECT_USED_TOO_LONG,
  rejectionCount,
} from "../diag/rejections";
import { dmaAddress, dmaAllocate, PAGE_SIZE, roundUpToPage } from "./dma";
import { VirtioTransport } from "./transport";

// 2.7.5 / 2.7.6 / 2.7.8 names.
export const VIRTQ_DESC_F_NEXT: u32 = 1;
export const VIRTQ_DESC_F_WRITE: u32 = 2;
export const VIRTQ_AVAIL_F_NO_INTERRUPT: u32 = 1;
export const VIRTQ_USED_F_NO_NOTIFY: u32 = 1;
export const VIRTQ_MAX_SIZE: u32 = 32768;

const DESCRIPTOR_SIZE: usize = 16; // le64 addr, le32 len, le16 flags, le16 next
const RING_HEADER_SIZE: usize = 4; // le16 flags, le16 idx
const USED_ELEMENT_SIZE: usize = 8; // le32 id, le32 len
export const MAX_CHAIN_LENGTH: i32 = 4;
// What we leave in a used slot once we have read it (and in every slot at reset). A device writes
// each slot before the used idx that covers it, so a slot still holding this mark under the used
// idx was never written: the idx ran ahead of the entries, and the slot's old contents must not
// be taken for a completion. (Devices only ever write used entries; none reads them back.)
const USED_UNWRITTEN_ID: u32 = 0xffffffff;
const USED_UNWRITTEN_LEN: u32 = 0x554e5752; // "RWNU": no honest length, no value the fuzzer picks

// What a descriptor is doing now, as far as we know.
const DESC_FREE: u8 = 0;
const DESC_HEAD_IN_FLIGHT: u8 = 1; // first of a chain the device owns
const DESC_CHAINED: u8 = 2; // later member of a chain (never a valid used id)
const DESC_HEAD_COMPLETED: u8 = 3; // the device returned it; a second return is a duplicate
const DESC_HEAD_RELEASED: u8 = 4; // completed and back on the free list (still a duplicate if returned)

// Used-ring entries we refused, by reason.
export const USED_BAD_ID: i32 = 0; // id >= queue size
export const USED_NOT_IN_FLIGHT: i32 = 1; // id is not the head of a chain the device holds
export const USED_DUPLICATE: i32 = 2; // the same chain returned twice
export const USED_TOO_LONG: i32 = 3; // used length beyond the chain's writable bytes
export const USED_INDEX_JUMP: i32 = 4; // used idx ahead of us by more than the queue size
export const USED_UNWRITTEN: i32 = 5; // used idx covers a slot the device never wrote
const USED_REJECTION_KINDS: i32 = 6;

// The firmware-wide reason (diag/rejections.ts) for each kind.
function rejectionReason(kind: i32): i32 {
  if (kind == USED_BAD_ID) return REJECT_USED_BAD_ID;
  if (kind == USED_NOT_IN_FLIGHT) return REJECT_USED_NOT_IN_FLIGHT;
  if (kind == USED_DUPLICATE) return REJECT_USED_DUPLICATE;
  if (kind == USED_TOO_LONG) return REJECT_USED_TOO_LONG;
  return REJECT_USED_IDX_JUMP;
}

function rejectionName(kind: i32): string {
  if (kind == USED_BAD_ID) return "id out of range";
  if (kind == USED_NOT_IN_FLIGHT) return "id not in flight";
  if (kind == USED_DUPLICATE) return "duplicate completion";
  if (kind == USED_TOO_LONG) return "used length beyond the buffer";
  if (kind == USED_INDEX_JUMP) return "used idx jumped past the queue size";
  return "used idx ahead of the entries the device wrote";
}

// vring_need_event (2.7.10): whether moving an index from `old` to `next` passes `event`.
function needEvent(event: u16, next: u16, old: u16): bool {
  return <u16>(next - event - 1) < <u16>(next - old);
}

function markUnwritten(element: usize): void {
  store<u32>(element, USED_UNWRITTEN_ID);
  store<u32>(element, USED_UNWRITTEN_LEN, 4);
}

export class SplitQueue {
  readonly index: u32;
  readonly size: u32;
  readonly descriptors: usize; // wasm pointers to the three rings
  readonly avail: usize;
  readonly used: usize;
  private transport: VirtioTransport;
  // VIRTIO_F_EVENT_IDX: the device ignores the flags; we ask for interrupts with used_event (the
  // last word of the avail ring) and it asks for kicks with avail_event (the last of the used ring).
  private eventIdx: bool = false;
  private readonly usedEvent: usize;
  private readonly availEvent: usize;
  private armed: bool = false; // interruptsOn() until interruptsOff()

  // Free descriptors form a FIFO: a released chain goes to the back, so a head is used again only
  // after every other free descriptor. A device that completes a chain twice then hits a released
  // head (used_duplicate) instead of the next packet published under the same head.
  private freeHead: u32 = 0;
  private freeTail: u32 = 0;
  freeCount: u32 = 0;
  inFlight: u32 = 0;
  private availIdx: u16 = 0;
  private lastUsedIdx: u16 = 0;
  private unnotified: u32 = 0;
  private nextFree: StaticArray<u16>; // free list, and chain order of an allocated chain
  private state: StaticArray<u8>;
  private chainLength: StaticArray<u8>;
  private chainWritable: StaticArray<u32>;
  private tokens: StaticArray<usize>;

  // A chain being assembled by stage() until publish().
  private stagedCount: i32 = 0;
  private stagedPointer: StaticArray<usize> = new StaticArray<usize>(MAX_CHAIN_LENGTH);
  private stagedLength: StaticArray<u32> = new StaticArray<u32>(MAX_CHAIN_LENGTH);
  private stagedWritable: StaticArray<bool> = new StaticArray<bool>(MAX_CHAIN_LENGTH);

  // Result of the last popUsed().
  usedLength: u32 = 0;
  usedLengthValid: bool = true;

  notifies: u64 = 0;
  notifiesSuppressed: u64 = 0;
  completions: u64 = 0;
  rejections: StaticArray<u64> = new StaticArray<u64>(USED_REJECTION_KINDS);

  // `size` must be a power of two no larger than VIRTQ_MAX_SIZE (the caller checks).
  constructor(transport: VirtioTransport, index: u32, size: u32, eventIdx: bool) {
    this.transport = transport;
    this.index = index;
    this.size = size;
    const descriptorBytes = roundUpToPage(<usize>size * DESCRIPTOR_SIZE);
    const availBytes = roundUpToPage(RING_HEADER_SIZE + 2 * <usize>size + 2);
    const usedBytes = roundUpToPage(RING_HEADER_SIZE + USED_ELEMENT_SIZE * <usize>size + 2);
    const block = dmaAllocate(descriptorBytes + availBytes + usedBytes, PAGE_SIZE);
    this.descriptors = block;
    this.avail = block + descriptorBytes;
    this.used = block + descriptorBytes + availBytes;
    this.usedEvent = block + descriptorBytes + RING_HEADER_SIZE + 2 * <usize>size;
    this.availEvent = block + descriptorBytes + availBytes + RING_HEADER_SIZE + USED_ELEMENT_SIZE * <usize>size;
    this.nextFree = new StaticArray<u16>(size);
    this.state = new StaticArray<u8>(size);
    this.chainLength = new StaticArray<u8>(size);
    this.chainWritable = new StaticArray<u32>(size);
    this.tokens = new StaticArray<usize>(size);
    this.reset(eventIdx);
  }

  // Back to the state after construction: empty rings, every descriptor free, with or without
  // EVENT_IDX (as negotiated). Only while the device is reset (it must not be looking at the rings).
  reset(eventIdx: bool): void {
    this.eventIdx = eventIdx;
    memory.fill(this.descriptors, 0, <usize>this.size * DESCRIPTOR_SIZE);
    memory.fill(this.avail, 0, RING_HEADER_SIZE + 2 * <usize>this.size + 2);
    memory.fill(this.used, 0, RING_HEADER_SIZE + USED_ELEMENT_SIZE * <usize>this.size + 2);
    for (let i: u32 = 0; i < this.size; i++) {
      unchecked((this.nextFree[i] = <u16>(i + 1)));
      unchecked((this.state[i] = DESC_FREE));
      markUnwritten(this.used + RING_HEADER_SIZE + <usize>i * USED_ELEMENT_SIZE);
    }
    this.freeHead = 0;
    this.freeTail = this.size - 1;
    this.freeCount = this.size;
    this.inFlight = 0;
    this.availIdx = 0;
    this.lastUsedIdx = 0;
    this.unnotified = 0;
    this.stagedCount = 0;
    // We poll: ask the device not to interrupt us (interruptsOn() lifts it before an idle halt).
    // With EVENT_IDX the flags stay 0 (2.7.10) and used_event does it.
    this.interruptsOff();
  }

  // Before halting: the device may interrupt us again on its next used entry. True when the
  // used ring is still empty after the request is visible, so a halt cannot miss an entry that
  // arrived before it (the caller polls instead when false).
  interruptsOn(): bool {
    this.armed = true;
    if (this.eventIdx) store<u16>(this.usedEvent, this.lastUsedIdx); // the next entry interrupts
    else store<u16>(this.avail, 0);
    barrier(); // the request must be visible before we look at used idx
    return load<u16>(this.used, 2) == this.lastUsedIdx;
  }

  // Busy again: back to polling without interrupts (each one is an exit under KVM).
  interruptsOff(): void {
    this.armed = false;
    if (this.eventIdx) this.trackUsedEvent();
    else store<u16>(this.avail, <u16>VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  // used_event follows what we consumed: armed, the next entry interrupts; not armed, it names
  // the entry we last read, which the device has passed, so no entry it can write (at most a ring
  // ahead of us) interrupts. One store per entry read, no register access.
  private trackUsedEvent(): void {
    store<u16>(this.usedEvent, this.armed ? this.lastUsedIdx : <u16>(this.lastUsedIdx - 1));
  }

  // Whether interrupts are requested (for tests and counters).
  interruptsRequested(): bool {
    if (this.eventIdx) return this.armed;
    return (<u32>load<u16>(this.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
  }

  // Hands the ring addresses to the device and enables the queue.
  setUp(): bool {
    return this.transport.setupQueue(
      this.index,
      this.size,
      dmaAddress(this.descriptors),
      dmaAddress(this.avail),
      dmaAddress(this.used),
    );
  }

  // Adds one piece (device-readable, or device-writable) to the chain being built.
  stage(pointer: usize, length: u32, writable: bool): void {
    const n = this.stagedCount;
    if (n >= MAX_CHAIN_LENGTH) {
      this.stagedCount = MAX_CHAIN_LENGTH + 1; // publish() will refuse the chain
      return;
    }
    unchecked((this.stagedPointer[n] = pointer));
    unchecked((this.stagedLength[n] = length));
    unchecked((this.stagedWritable[n] = writable));
    this.stagedCount = n + 1;
  }

  // Makes the staged chain available to the device: descriptors, then the avail slot, then a
  // barrier, then avail idx (VSOCK.md rule 13). Does not notify (see kick). False when there are
  // not enough free descriptors; the staged pieces are dropped either way.
  publish(token: usize): bool {
    const n = <u32>this.stagedCount;
    this.stagedCount = 0;
    if (n == 0 || n > <u32>MAX_CHAIN_LENGTH || n > this.freeCount) return false;
    const head = this.freeHead;
    let d = head;
    let writable: u32 = 0;
    for (let i: u32 = 0; i < n; i++) {
      const next = <u32>unchecked(this.nextFree[d]);
      const last = i + 1 == n;
      const isWritable = unchecked(this.stagedWritable[i]);
      const length = unchecked(this.stagedLength[i]);
      const at = this.descriptors + <usize>d * DESCRIPTOR_SIZE;
      store<u64>(at, dmaAddress(unchecked(this.stagedPointer[i])));
      store<u32>(at, length, 8);
      store<u16>(at, <u16>((isWritable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT)), 12);
      store<u16>(at, <u16>(last ? 0 : next), 14);
      unchecked((this.state[d] = i == 0 ? DESC_HEAD_IN_FLIGHT : DESC_CHAINED));
      if (isWritable) writable += length;
      d = next;
    }
    this.freeHead = d;
    this.freeCount -= n;
    unchecked((this.chainLength[head] = <u8>n));
    unchecked((this.chainWritable[head] = writable));
    unchecked((this.tokens[head] = token));
    const slot = <u32>this.availIdx & (this.size - 1);
    store<u16>(this.avail + RING_HEADER_SIZE + <usize>slot * 2, <u16>head);
    barrier();
    this.availIdx++;
    store<u16>(this.avail, this.availIdx, 2);
    this.inFlight++;
    this.unnotified++;
    return true;
  }

  // Tells the device about everything published since the last kick, unless it asked not to be
  // told: VIRTQ_USED_F_NO_NOTIFY, or with EVENT_IDX an avail_event these publishes did not pass.
  // One notification per call at most. True when it notified.
  kick(): bool {
    const added = this.unnotified;
    if (added == 0) return false;
    this.unnotified = 0;
    barrier(); // avail idx must be visible before we read what the device asked for
    let wanted: bool;
    if (this.eventIdx) {
      const old = <u16>(<u32>this.availIdx - added);
      wanted = added > 0xffff || needEvent(load<u16>(this.availEvent), this.availIdx, old);
    } else {
      wanted = (<u32>load<u16>(this.used) & VIRTQ_USED_F_NO_NOTIFY) == 0;
    }
    if (!wanted) {
      this.notifiesSuppressed++;
      return false;
    }
    this.transport.notify(this.index);
    this.notifies++;
    return true;
  }

  // The head of the next chain the device returned, validated, or -1 when there is none.
  // Sets usedLength, and usedLengthValid = false when the device claims to have written more
  // than the chain holds (the chain is still handed back, so its buffer can be reused). Bad
  // entries are counted, logged, and skipped.
  popUsed(): i32 {
    while (true) {
      barrier();
      const usedIdx = load<u16>(this.used, 2);
      if (usedIdx == this.lastUsedIdx) return -1;
      // A device can never be more than a ring ahead of us: such an idx is not trusted, and
      // nothing is consumed until the device writes a sane one again.
      if (<u32>(<u16>(usedIdx - this.lastUsedIdx)) > this.size) {
        this.rejectUsed(USED_INDEX_JUMP, <u32>usedIdx, 0);
        return -1;
      }
      barrier(); // read the entry only after seeing the idx that covers it
      const slot = <u32>this.lastUsedIdx & (this.size - 1);
      const element = this.used + RING_HEADER_SIZE + <usize>slot * USED_ELEMENT_SIZE;
      const id = load<u32>(element);
      const length = load<u32>(element, 4);
      // The idx covers a slot the device never wrote (it ran ahead of its entries, by at most the
      // queue size): its old contents could name a chain in flight now. Nothing is consumed until
      // the device writes the entry; extra entries it did write are rejected one by one below.
      if (id == USED_UNWRITTEN_ID && length == USED_UNWRITTEN_LEN) {
        this.rejectUsed(USED_UNWRITTEN, <u32>usedIdx, 0);
        return -1;
      }
      markUnwritten(element);
      this.lastUsedIdx++;
      if (this.eventIdx) this.trackUsedEvent();
      if (id >= this.size) {
        this.rejectUsed(USED_BAD_ID, id, length);
        continue;
      }
      const state = unchecked(this.state[id]);
      if (state != DESC_HEAD_IN_FLIGHT) {
        const duplicate = state == DESC_HEAD_COMPLETED || state == DESC_HEAD_RELEASED;
        this.rejectUsed(duplicate ? USED_DUPLICATE : USED_NOT_IN_FLIGHT, id, length);
        continue;
      }
      unchecked((this.state[id] = DESC_HEAD_COMPLETED));
      this.inFlight--;
      this.completions++;
      const writable = unchecked(this.chainWritable[id]);
      this.usedLength = length;
      // A device-readable chain (tx) has nothing to write: its used length means nothing.
      this.usedLengthValid = writable == 0 || length <= writable;
      if (!this.usedLengthValid) this.rejectUsed(USED_TOO_LONG, id, length);
      return <i32>id;
    }
    return -1;
  }

  // The token given to publish() for chain `head`.
  token(head: i32): usize {
    return <u32>head < this.size ? unchecked(this.tokens[head]) : 0;
  }

  // Returns a completed chain's descriptors to the back of the free list (once: a second call
  // does nothing).
  release(head: i32): void {
    if (<u32>head >= this.size || unchecked(this.state[head]) != DESC_HEAD_COMPLETED) return;
    unchecked((this.state[head] = DESC_HEAD_RELEASED));
    const n = <u32>unchecked(this.chainLength[head]);
    let last = <u32>head;
    for (let i: u32 = 1; i < n; i++) {
      last = <u32>unchecked(this.nextFree[last]);
      unchecked((this.state[last] = DESC_FREE));
    }
    unchecked((this.chainLength[head] = 0));
    if (this.freeCount == 0) this.freeHead = <u32>head;
    else unchecked((this.nextFree[this.freeTail] = <u16>head));
    this.freeTail = last;
    this.freeCount += n;
  }

  private rejectUsed(kind: i32, id: u32, length: u32): void {
    unchecked((this.rejections[kind] = unchecked(this.rejections[kind]) + 1));
    // The first of each reason (on any queue) at warn; the rest only at debug (no flooding).
    const reason = rejectionReason(kind);
    if (logBegin(countRejection(reason), "virtq")) {
      logStr("used entry rejected: ");
      logStr(rejectionName(kind));
      logKv("queue", this.index);
      logKv("id", id);
      logKv("len", length);
      logKv("count", rejectionCount(reason));
      logEnd();
    }
  }

  rejectionCount(kind: i32): u64 {
    return kind >= 0 && kind < USED_REJECTION_KINDS ? unchecked(this.rejections[kind]) : 0;
  }

  logCounters(name: string): void {
    if (logBegin(LEVEL_INFO, "virtq")) {
      logStr(name);
      logKv("queue", this.index);
      logKv("size", this.size);
      logKv("in_flight", this.inFlight);
      logKv("completions", this.completions);
      logKv("notifies", this.notifies);
      logKv("notifies_suppressed", this.notifiesSuppressed);
      logKv("bad_id", unchecked(this.rejections[USED_BAD_ID]));
      logKv("not_in_flight", unchecked(this.rejections[USED_NOT_IN_FLIGHT]));
      logKv("duplicate", unchecked(this.rejections[USED_DUPLICATE]));
      logKv("too_long", unchecked(this.rejections[USED_TOO_LONG]));
      logKv("idx_jump", unchecked(this.rejections[USED_INDEX_JUMP]));
      logKv("unwritten", unchecked(this.rejections[USED_UNWRITTEN]));
      logEnd();
    }
  }
}
