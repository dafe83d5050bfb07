// Fault injection through the real device path: rules that drop, duplicate, corrupt or delay
// packets in either direction (matched by op and guest port, after `skip` matches, `count`
// times), withheld credit, connection resets and used-ring corruption. Used by the e2e fault
// tests against the firmware and by `--fault` on the command line.
// Not possible here: TRANSPORT_RESET. QEMU keeps the event queue for vhost-user-vsock (only rx
// and tx are handed over), so the backend cannot post an event; QEMU sends one itself only after
// a migration, which vhost-user-vsock does not support.
import { UsedEntry } from "../vsock-model/split-ring";
import { OP_NAMES, VsockHeader, VsockPacket, VSOCK_HOST_CID } from "../vsock-model/vsock-packet";
import { log } from "./log";
import { VsockVm } from "./vm";

export type Direction = "to-guest" | "from-guest";
export type FaultAction = "drop" | "duplicate" | "corrupt" | "delay";
/** What a corruption changes: op (an invalid op 99), len (header claims 100 bytes more than sent), payload (first byte flipped), or a function. */
export type Corruption = "op" | "len" | "payload" | ((packet: VsockPacket) => VsockPacket);

export interface FaultRule {
  direction: Direction;
  action: FaultAction;
  /** Only packets with this op (VIRTIO_VSOCK_OP_*). */
  op?: number;
  /** Only packets of this guest port (dst for to-guest, src for from-guest). */
  port?: number;
  /** Matching packets that pass before the rule applies. */
  skip?: number;
  /** How many matching packets it applies to (default 1; Infinity: all). */
  count?: number;
  delayMs?: number;
  corrupt?: Corruption;
}

export interface ActiveRule extends FaultRule {
  seen: number;
  applied: number;
  /** Payload bytes of the packets it applied to. */
  bytes: number;
}

const OPS_BY_NAME: Record<string, number> = Object.fromEntries(Object.entries(OP_NAMES).map(([value, name]) => [name, Number(value)]));
const INVALID_OP = 99;

export class FaultInjector {
  readonly rules: ActiveRule[] = [];

  constructor(private readonly vm: VsockVm) {
    vm.device.toGuestFilter = (p) => this.filter("to-guest", p);
    vm.device.fromGuestFilter = (p) => this.filter("from-guest", p);
  }

  add(rule: FaultRule): ActiveRule {
    const active = { count: 1, skip: 0, ...rule, seen: 0, applied: 0, bytes: 0 };
    this.rules.push(active);
    log("info", "faults", "rule added", { cid: this.vm.guestCid, rule: describeRule(rule) });
    return active;
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** The host stops reading guest data (fwd_cnt frozen): the guest must wait for credit. */
  withholdCredit(withheld: boolean): void {
    this.vm.bridge.setCreditWithheld(withheld);
  }

  /** RST on every host connection of this VM; returns how many. */
  resetConnections(): number {
    const sockets = this.vm.device.host.sockets().filter((s) => s.state === "connected" || s.state === "connecting");
    for (const s of sockets) s.reset();
    return sockets.length;
  }

  /** The next used entry on queue 0 (rx) or 1 (tx) goes through `mutate` (wrong id/len, dropped, doubled). */
  corruptNextUsed(queueIndex: number, mutate: (entry: UsedEntry) => UsedEntry[]): void {
    this.vm.device.corruptNextUsed(queueIndex, mutate);
  }

  transportReset(): never {
    throw new Error("TRANSPORT_RESET cannot come from a vhost-user backend: QEMU keeps the event queue");
  }

  private matches(rule: ActiveRule, direction: Direction, h: VsockHeader): boolean {
    if (rule.direction !== direction || rule.applied >= (rule.count ?? 1)) return false;
    if (rule.op !== undefined && rule.op !== h.op) return false;
    const guestPort = direction === "to-guest" ? h.dstPort : h.srcPort;
    if (rule.port !== undefined && rule.port !== guestPort) return false;
    rule.seen++;
    return rule.seen > (rule.skip ?? 0);
  }

  private filter(direction: Direction, packet: VsockPacket): VsockPacket[] {
    const rule = this.rules.find((r) => this.matches(r, direction, packet.header));
    if (!rule) return [packet];
    rule.applied++;
    rule.bytes += packet.payload.length;
    log("info", "faults", `${rule.action} ${direction}`, { op: OP_NAMES[packet.header.op] ?? packet.header.op, port: direction === "to-guest" ? packet.header.dstPort : packet.header.srcPort, len: packet.header.len });
    switch (rule.action) {
      case "drop":
        return [];
      case "duplicate":
        return [packet, { header: { ...packet.header }, payload: packet.payload.slice() }];
      case "delay":
        setTimeout(() => this.resend(direction, packet), rule.delayMs ?? 100).unref();
        return [];
      case "corrupt":
        return this.corrupt(direction, packet, rule.corrupt ?? "op");
    }
  }

  private corrupt(direction: Direction, packet: VsockPacket, how: Corruption): VsockPacket[] {
    if (typeof how === "function") return [how(packet)];
    const header = { ...packet.header };
    const payload = packet.payload.slice();
    if (how === "op") header.op = INVALID_OP;
    else if (how === "payload" && payload.length > 0) payload[0] ^= 0xff;
    else if (how === "len") {
      header.len += 100;
      // The device rewrites len when it splits a packet: a lying header must go out raw.
      if (direction === "to-guest") {
        this.vm.device.inject(header, payload);
        return [];
      }
    }
    return [{ header, payload }];
  }

  private resend(direction: Direction, packet: VsockPacket): void {
    if (direction === "to-guest") {
      this.vm.device.deliverToGuest(packet.header, packet.payload);
      return;
    }
    if (packet.header.dstCid === VSOCK_HOST_CID) this.vm.device.host.receive(packet.header, packet.payload);
    else this.vm.device.routeToCid?.(packet);
    this.vm.bridge.afterGuestActivity();
  }
}

export function describeRule(rule: FaultRule): string {
  const parts: string[] = [rule.direction, rule.action];
  if (rule.op !== undefined) parts.push(`op=${OP_NAMES[rule.op] ?? rule.op}`);
  if (rule.port !== undefined) parts.push(`port=${rule.port}`);
  if (rule.skip) parts.push(`skip=${rule.skip}`);
  if (rule.count !== undefined && rule.count !== 1) parts.push(`count=${rule.count}`);
  if (rule.delayMs !== undefined) parts.push(`delay-ms=${rule.delayMs}`);
  if (typeof rule.corrupt === "string") parts.push(`corrupt=${rule.corrupt}`);
  return parts.join(":");
}

/** `--fault DIRECTION:ACTION[:op=RW][:port=N][:skip=N][:count=N|all][:delay-ms=N][:corrupt=op|len|payload]`. */
export function parseFaultRule(text: string): FaultRule {
  const [direction, action, ...options] = text.split(":");
  if (direction !== "to-guest" && direction !== "from-guest") throw new Error(`--fault ${text}: direction must be to-guest or from-guest`);
  if (!["drop", "duplicate", "corrupt", "delay"].includes(action)) throw new Error(`--fault ${text}: action must be drop, duplicate, corrupt or delay`);
  const rule: FaultRule = { direction, action: action as FaultAction };
  for (const option of options) {
    const [key, value] = option.split("=");
    const integer = () => {
      if (!/^\d+$/.test(value ?? "")) throw new Error(`--fault ${text}: ${key} needs a number`);
      return Number(value);
    };
    if (key === "op") {
      rule.op = OPS_BY_NAME[value?.toUpperCase()] ?? integer();
    } else if (key === "port") rule.port = integer();
    else if (key === "skip") rule.skip = integer();
    else if (key === "count") rule.count = value === "all" ? Infinity : integer();
    else if (key === "delay-ms") rule.delayMs = integer();
    else if (key === "corrupt" && ["op", "len", "payload"].includes(value)) rule.corrupt = value as Corruption;
    else throw new Error(`--fault ${text}: unknown option ${option}`);
  }
  return rule;
}
