// The hostile half of the simulated vsock device, for the fuzzer. It sits between the honest
// host (tools/vsock-model/host.ts) and the device model (tools/vsock-model/vsock-device.ts) without changing
// either: it takes over the host's "send to guest" link, so it can hold packets back and let
// them go in another order or not at all, and it uses the device's own hostile seams (inject,
// corruptNextUsed, injectUsed, setGuestCid, transportReset) and the device side of the rings for
// the rest. The other way, it takes the device's filter of guest packets (fromGuestFilter): those
// it can hold, reorder, drop, duplicate or change before the host sees them. Which connections its
// moves could have corrupted ("tainted") the case runner works out from what they return.
import type { Machine } from "../sim/machine";
import type { DeviceSplitQueue, UsedEntry } from "../../tools/vsock-model/split-ring";
import type { HeaderFields, VsockHeader, VsockPacket } from "../../tools/vsock-model/vsock-packet";
import type { Queue } from "./actions";

interface HeldPacket {
  header: VsockHeader;
  payload: Uint8Array;
  reply: boolean;
}

const QUEUE_INDEX: Record<Queue, number> = { rx: 0, tx: 1, event: 2 };
export type ReleaseOrder = "fifo" | "interleave" | "reverse";

/** Packets in the order a release lets them go: as they came, interleaved across tuples (each tuple's order kept), or reversed. */
function releaseOrder<P extends { header: VsockHeader }>(packets: P[], order: ReleaseOrder, pick: number): P[] {
  if (order === "fifo") return packets;
  if (order === "reverse") return packets.slice().reverse();
  const byTuple = new Map<string, P[]>();
  for (const p of packets) {
    const key = `${p.header.srcPort}:${p.header.dstPort}`;
    if (!byTuple.has(key)) byTuple.set(key, []);
    byTuple.get(key)!.push(p);
  }
  const lanes = [...byTuple.values()];
  const out: P[] = [];
  let x = pick >>> 0 || 1;
  while (lanes.some((l) => l.length > 0)) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const live = lanes.filter((l) => l.length > 0);
    out.push(live[(x >>> 8) % live.length].shift()!);
  }
  return out;
}

export class HostileDevice {
  holding = false;
  readonly held: HeldPacket[] = [];
  /** Used entries written that answer no real completion (forged, duplicated): the driver may see that many extra. */
  forgedUsed = 0;
  /** Guest -> host: held packets, and a change waiting for the next packet. */
  txHolding = false;
  readonly txHeld: VsockPacket[] = [];
  private txNext: ((p: VsockPacket) => VsockPacket[]) | null = null;
  private readonly forward: (header: VsockHeader, payload: Uint8Array, reply: boolean) => void;

  constructor(private readonly m: Machine) {
    const link = m.host.link;
    const original = link.sendToGuest;
    this.forward = (header, payload, reply) => original.call(link, header, payload, reply);
    link.sendToGuest = (header, payload, reply) => {
      if (this.holding) this.held.push({ header, payload, reply });
      else this.forward(header, payload, reply);
    };
    m.device!.fromGuestFilter = (p) => {
      const next = this.txNext;
      this.txNext = null;
      const out = next ? next(p) : [p];
      if (!this.txHolding) return out;
      this.txHeld.push(...out);
      return [];
    };
  }

  private get device() {
    return this.m.device!;
  }

  queue(name: Queue): DeviceSplitQueue | null {
    return this.device.queues[QUEUE_INDEX[name]] ?? null;
  }

  /** Lets every held packet go (see releaseOrder). */
  release(order: ReleaseOrder, pick: number): HeldPacket[] {
    this.holding = false;
    const out = releaseOrder(this.held.splice(0), order, pick);
    for (const p of out) this.forward(p.header, p.payload, p.reply);
    return out;
  }

  /** Lets every held guest packet reach the host (see releaseOrder). */
  txRelease(order: ReleaseOrder, pick: number): VsockPacket[] {
    this.txHolding = false;
    const out = releaseOrder(this.txHeld.splice(0), order, pick);
    for (const p of out) this.m.host.receive(p.header, p.payload);
    return out;
  }

  /** Loses one held guest packet (returns it, or null when nothing is held). */
  txDrop(pick: number): VsockPacket | null {
    if (this.txHeld.length === 0) return null;
    return this.txHeld.splice((pick >>> 0) % this.txHeld.length, 1)[0];
  }

  /** The next guest packet goes through `change` on its way to the host (null: none does). */
  changeNextTx(change: ((p: VsockPacket) => VsockPacket[]) | null): void {
    this.txNext = change;
  }

  /** Loses one held packet (returns it, or null when nothing is held). */
  dropHeld(pick: number): HeldPacket | null {
    if (this.held.length === 0) return null;
    return this.held.splice((pick >>> 0) % this.held.length, 1)[0];
  }

  /** A raw packet for the guest, exactly as given (no splitting; `usedLength` forces the used length). */
  inject(header: HeaderFields, payload: Uint8Array, usedLength?: number): void {
    this.device.inject(header, payload, usedLength === undefined ? {} : { usedLength });
  }

  /** The next used entry on `queue` goes through `mutate`. False when the queue is not running. */
  corruptNextUsed(name: Queue, mutate: (entry: UsedEntry) => UsedEntry[]): boolean {
    if (!this.queue(name)) return false;
    this.device.corruptNextUsed(QUEUE_INDEX[name], mutate);
    return true;
  }

  injectUsed(name: Queue, id: number, len: number): boolean {
    if (!this.queue(name)) return false;
    this.device.injectUsed(QUEUE_INDEX[name], id, len);
    this.forgedUsed++;
    return true;
  }

  /** Writes a used idx `ahead` entries past the device's own (the device writes its real one with its next entry). */
  usedIdxJump(name: Queue, ahead: number): boolean {
    const q = this.queue(name);
    if (!q) return false;
    this.device.memory!.write16(q.usedAddr + 2, (q.usedIdx + ahead) & 0xffff);
    return true;
  }

  /** Writes every queue's real used idx again (what the device does with its next entry anyway). */
  restoreUsedIdx(): void {
    for (const q of this.device.queues) if (q) this.device.memory!.write16(q.usedAddr + 2, q.usedIdx);
  }

  /** The heads the driver has posted and the device has not taken yet, in avail order. */
  postedHeads(name: Queue): number[] {
    const q = this.queue(name);
    if (!q) return [];
    const heads: number[] = [];
    const memory = this.device.memory!;
    const pending = (memory.read16(q.availAddr + 2) - q.lastAvailIdx) & 0xffff;
    for (let i = 0; i < Math.min(pending, q.size); i++) {
      heads.push(memory.read16(q.availAddr + 4 + 2 * ((q.lastAvailIdx + i) % q.size)));
    }
    return heads;
  }

  /** An event with any id and used length, written into the next posted event buffer. */
  rawEvent(id: number, len: number): boolean {
    const q = this.queue("event");
    if (!q || this.device.brokenQueues.has(2)) return false;
    const chain = q.pop();
    if (!chain) return false;
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, id >>> 0, true);
    q.scatter(chain, bytes);
    q.pushUsed(chain.head, len);
    return true;
  }
}
