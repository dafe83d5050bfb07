// The device side of a split virtqueue (virtio 1.2 section 2.7) over GuestMemory: read the avail
// ring, walk and validate descriptor chains, write used entries. Validation follows vhost: a bad
// chain stops the queue (RingError) instead of being guessed at.
import { GuestMemory } from "./guest-memory";

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_DESC_SIZE = 16;
export const VIRTQ_USED_ELEM_SIZE = 8;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** vring_need_event (virtio 1.2 2.7.10): moving an index from `old` to `next` passes `event`. */
export function vringNeedEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}

export type RingErrorKind = "avail-idx" | "head-index" | "next-index" | "loop" | "indirect" | "order" | "memory" | "used-id";

export class RingError extends Error {
  constructor(
    readonly kind: RingErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "RingError";
  }
}

export interface Descriptor {
  addr: number;
  len: number;
  flags: number;
  writable: boolean;
}

export interface DescriptorChain {
  head: number;
  descriptors: Descriptor[];
  readableLength: number; // bytes the driver gave the device to read
  writableLength: number; // bytes the device may write
}

export interface UsedEntry {
  id: number;
  len: number;
}

/** Byte sizes of the three ring parts for a queue of `size` entries (the event-idx words included). */
export function splitRingSizes(size: number): { desc: number; avail: number; used: number } {
  return { desc: size * VIRTQ_DESC_SIZE, avail: 4 + 2 * size + 2, used: 4 + VIRTQ_USED_ELEM_SIZE * size + 2 };
}

export class DeviceSplitQueue {
  /** Next avail ring slot the device will read (free-running u16). */
  lastAvailIdx = 0;
  /** Value of used->idx as the device last wrote it (free-running u16). */
  usedIdx = 0;
  /** Heads handed out and not yet returned through the used ring. */
  readonly inFlight = new Set<number>();
  /** Hostile-device seam: rewrites each used entry before it is written (may drop or duplicate it). */
  interceptUsed: ((entry: UsedEntry) => UsedEntry[]) | null = null;
  /**
   * VIRTIO_F_EVENT_IDX negotiated: the driver's flags are ignored; used_event (after the avail
   * ring) says which used entry interrupts, avail_event (after the used ring) which avail entry kicks.
   */
  eventIdx = false;
  /** The avail idx the device last read (vhost's avail_idx shadow): what avail_event is set to. */
  availShadow = 0;
  /** used idx at the last interrupt decision (vhost's signalled_used); null: none yet. */
  private signalledUsed: number | null = null;

  constructor(
    readonly memory: GuestMemory,
    readonly index: number,
    readonly size: number,
    readonly descAddr: number,
    readonly availAddr: number,
    readonly usedAddr: number,
  ) {}

  availIdx(): number {
    return this.memory.read16(this.availAddr + 2);
  }

  availFlags(): number {
    return this.memory.read16(this.availAddr);
  }

  /** used_event: the driver wants an interrupt once this used entry is written (EVENT_IDX). */
  usedEvent(): number {
    return this.memory.read16(this.availAddr + 4 + 2 * this.size);
  }

  /** avail_event: the device wants a kick once the driver publishes this avail entry (EVENT_IDX). */
  availEvent(): number {
    return this.memory.read16(this.usedAddr + 4 + VIRTQ_USED_ELEM_SIZE * this.size);
  }

  /**
   * After used entries were written: does the driver want an interrupt? Without EVENT_IDX unless
   * it set VIRTQ_AVAIL_F_NO_INTERRUPT; with it, when the entries passed used_event (vhost_notify).
   */
  needsInterrupt(): boolean {
    const old = this.signalledUsed;
    this.signalledUsed = this.usedIdx;
    if (!this.eventIdx) return (this.availFlags() & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    return old === null || vringNeedEvent(this.usedEvent(), this.usedIdx, old);
  }

  /** The device is busy on this queue: no kicks wanted (vhost_disable_notify; a no-op with EVENT_IDX). */
  disableNotify(): void {
    if (!this.eventIdx) this.memory.write16(this.usedAddr, this.memory.read16(this.usedAddr) | VIRTQ_USED_F_NO_NOTIFY);
  }

  /**
   * Idle: kicks wanted again (vhost_enable_notify): the flag cleared, or avail_event set to the
   * avail idx last read. True when the driver published more meanwhile (the caller goes on).
   */
  enableNotify(): boolean {
    if (this.eventIdx) this.memory.write16(this.usedAddr + 4 + VIRTQ_USED_ELEM_SIZE * this.size, this.availShadow);
    else this.memory.write16(this.usedAddr, this.memory.read16(this.usedAddr) & ~VIRTQ_USED_F_NO_NOTIFY);
    return this.availIdx() !== this.availShadow;
  }

  /** Chains the driver has made available and the device has not taken yet. */
  pending(): number {
    const available = this.availIdx();
    this.availShadow = available;
    const count = (available - this.lastAvailIdx) & 0xffff;
    if (count > this.size) throw new RingError("avail-idx", `queue ${this.index}: avail idx moved by ${count} > size ${this.size}`);
    return count;
  }

  /** Reads the chain at the next avail slot without consuming it. */
  peek(): DescriptorChain | null {
    if (this.pending() === 0) return null;
    const slot = this.lastAvailIdx % this.size;
    const head = this.memory.read16(this.availAddr + 4 + 2 * slot);
    return this.walk(head);
  }

  /** Takes the next available chain, or null when there is none. Throws RingError on a bad chain. */
  pop(): DescriptorChain | null {
    const chain = this.peek();
    if (!chain) return null;
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    this.inFlight.add(chain.head);
    return chain;
  }

  /** Walks the chain starting at `head`, validating indices, loops, flags, order and memory bounds. */
  walk(head: number): DescriptorChain {
    if (head >= this.size) throw new RingError("head-index", `queue ${this.index}: head ${head} >= size ${this.size}`);
    const descriptors: Descriptor[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let index = head;
    for (;;) {
      if (descriptors.length >= this.size) throw new RingError("loop", `queue ${this.index}: chain from ${head} loops`);
      const at = this.descAddr + index * VIRTQ_DESC_SIZE;
      const addr = Number(this.memory.read64(at));
      const len = this.memory.read32(at + 8);
      const flags = this.memory.read16(at + 12);
      const next = this.memory.read16(at + 14);
      if (flags & VIRTQ_DESC_F_INDIRECT) throw new RingError("indirect", `queue ${this.index}: INDIRECT was not offered`);
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (!writable && writableLength > 0) {
        throw new RingError("order", `queue ${this.index}: readable descriptor after a writable one (head ${head})`);
      }
      if (len > 0 && !this.memory.contains(addr, len)) {
        throw new RingError("memory", `queue ${this.index}: descriptor ${index} 0x${addr.toString(16)}+${len} outside RAM`);
      }
      descriptors.push({ addr, len, flags, writable });
      if (writable) writableLength += len;
      else readableLength += len;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= this.size) throw new RingError("next-index", `queue ${this.index}: next ${next} >= size ${this.size}`);
      index = next;
    }
    return { head, descriptors, readableLength, writableLength };
  }

  /** Up to `limit` bytes of the chain's readable part, in order. */
  gather(chain: DescriptorChain, limit = chain.readableLength): Uint8Array {
    const out = new Uint8Array(Math.min(limit, chain.readableLength));
    let done = 0;
    for (const d of chain.descriptors) {
      if (d.writable || done >= out.length) continue;
      const n = Math.min(d.len, out.length - done);
      out.set(this.memory.readBytes(d.addr, n), done);
      done += n;
    }
    return out;
  }

  /** Writes `bytes` across the chain's writable descriptors; returns how many fit. */
  scatter(chain: DescriptorChain, bytes: Uint8Array): number {
    let done = 0;
    for (const d of chain.descriptors) {
      if (!d.writable || done >= bytes.length) continue;
      const n = Math.min(d.len, bytes.length - done);
      this.memory.writeBytes(d.addr, bytes.subarray(done, done + n));
      done += n;
    }
    return done;
  }

  /** Returns a chain to the driver: one used entry, then used->idx. */
  pushUsed(head: number, len: number): void {
    if (!this.inFlight.delete(head)) throw new RingError("used-id", `queue ${this.index}: used id ${head} not in flight`);
    const entries = this.interceptUsed ? this.interceptUsed({ id: head, len }) : [{ id: head, len }];
    for (const e of entries) this.pushUsedRaw(e.id, e.len);
  }

  /** Writes a used entry exactly as given (hostile tests: any id, any length). */
  pushUsedRaw(id: number, len: number): void {
    const slot = this.usedIdx % this.size;
    this.memory.write32(this.usedAddr + 4 + VIRTQ_USED_ELEM_SIZE * slot, id >>> 0);
    this.memory.write32(this.usedAddr + 4 + VIRTQ_USED_ELEM_SIZE * slot + 4, len >>> 0);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.memory.write16(this.usedAddr + 2, this.usedIdx);
  }
}
