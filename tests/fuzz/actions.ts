// What one fuzz case does, as a list of plain JSON actions: the honest host's moves, the hostile
// device's moves (tests/fuzz/hostile-device.ts) and the passing of time. A case is generated
// from a seed (tests/sim/seeded-random.ts), and every random choice an action needs at run time
// is stored in the action itself, so a saved list replays exactly and can be shortened freely.
import { SeededRandom } from "../sim/seeded-random";
import type { VsockHeader } from "../../tools/vsock-model/vsock-packet";

export type Service = "echo" | "sink" | "source" | "seqecho"; // seqecho: the SEQPACKET echo (1238)
export type Queue = "rx" | "tx" | "event";
/** Host listeners for the firmware's own clients: the boot greeting, the peer client, the fuzzer's API sockets. */
export type HostTarget = "greeting" | "peer" | "api";

// The firmware's socket API, called directly (tests/fuzz/api-misuse.ts).
export type ApiCall =
  | "socket" | "bind" | "listen" | "accept" | "connect" | "send" | "recv" | "shutdown" | "close"
  | "settimeout" | "setsockopt" | "getsockopt" | "getsockname" | "getpeername" | "poll";
/** own: one of the fuzzer's open sockets; closed: one it closed; invalid: a number no socket can have. */
export type FdChoice = "own" | "closed" | "invalid";
/** scratch: a valid buffer; null: 0; straddle: runs past the end of memory; beyond, huge: wholly outside it. */
export type PointerChoice = "scratch" | "null" | "straddle" | "beyond" | "huge";
export interface ApiAction {
  k: "api";
  call: ApiCall;
  fd: FdChoice;
  pick: number;
  a: number; // the call's first number (port, backlog, how, option, flags, count, ns)
  b: number; // its second (cid, option value, poll timeout)
  len: number;
  ptr: PointerChoice;
}

export type Action =
  // The honest host (Linux-like sockets of tools/vsock-model/host.ts). `conn` picks a fuzz connection
  // slot (modulo the live ones at run time).
  | { k: "connect"; service: Service }
  | { k: "send"; conn: number; bytes: number } // on a seqecho connection: one message of that size
  | { k: "messageBurst"; conn: number; count: number; bytes: number } // seqecho: many messages at once (credit pressure)
  | { k: "sourceRequest"; conn: number; count: number }
  | { k: "shutdownWrite"; conn: number }
  | { k: "close"; conn: number }
  | { k: "reset"; conn: number }
  | { k: "pauseReading"; conn: number; paused: boolean }
  // Time and scheduling.
  | { k: "poll"; rounds: number }
  | { k: "advance"; ms: number }
  // Host -> guest packets: hold them back, then let them go in another order, or lose one.
  | { k: "hold" }
  | { k: "release"; order: "fifo" | "interleave" | "reverse"; pick: number }
  | { k: "dropHeld"; pick: number }
  // Guest -> host packets (after the device took them from the tx ring): the same, and copies.
  | { k: "txHold" }
  | { k: "txRelease"; order: "fifo" | "interleave" | "reverse"; pick: number }
  | { k: "txDrop"; pick: number }
  | { k: "txDuplicate" } // the next one reaches the host twice
  | { k: "txMutate"; field: MutableField; value: number } // the next one with one field changed
  // Copies of packets already delivered, replayed or with one field changed, and raw garbage.
  | { k: "replay"; pick: number }
  | { k: "mutate"; pick: number; field: MutableField; value: number; usedLength?: number }
  | { k: "garbage"; header: GarbageHeader; payload: number; usedLength?: number }
  // Many REQUESTs at once from new tuples: beyond the backlog and the connection table.
  | { k: "requestFlood"; service: Service; count: number; firstPort: number }
  // Used rings.
  | { k: "usedDuplicate"; queue: Queue }
  | { k: "usedBadId"; queue: Queue; id: number; len: number }
  | { k: "usedIdxJump"; queue: Queue; ahead: number }
  // Used-ring damage the driver cannot tell from real completions (chaos cases only).
  | { k: "usedLength"; queue: Queue; len: number }
  | { k: "usedLose"; queue: Queue }
  | { k: "usedForge"; queue: Queue; pick: number; len: number }
  // Event queue and device config.
  | { k: "transportReset"; newCid: number | null }
  | { k: "rawEvent"; id: number; len: number }
  | { k: "configBump" }
  | { k: "cidLie"; cid: number }
  // The guest-to-host direction: the host listens for the firmware's own clients (boot greeting,
  // peer client with `bytes` to send, the API sockets' connects) and the moves above act on what it accepts.
  | { k: "hostListen"; target: HostTarget; bytes?: number }
  // The machine: the case's first action in one case in four, which boots it on QEMU microvm's shape
  // (the vsock device on virtio-mmio, tests/sim/virtio-mmio.ts) instead of PCI; then the hostile
  // device may also lie in the registers the firmware reads while it serves (the next `reads`
  // reads of one answer `value`), or raise its interrupt line with nothing new on the rings.
  | { k: "useMmio" }
  | { k: "mmioLie"; register: MmioRegister; value: number; reads: number }
  | { k: "mmioSpuriousInterrupt"; status: number }
  | ApiAction;

/** virtio-mmio registers the firmware reads after boot. */
export type MmioRegister = "interruptStatus" | "configGeneration";

// A packet header as a fuzz case stores it: the simulator's header with plain-number cids (JSON).
export type GarbageHeader = Omit<VsockHeader, "srcCid" | "dstCid"> & { srcCid: number; dstCid: number };
export type MutableField = keyof GarbageHeader;
export const MUTABLE_FIELDS: readonly MutableField[] = ["srcCid", "dstCid", "srcPort", "dstPort", "len", "type", "op", "flags", "bufAlloc", "fwdCnt"];

/** Actions that make damage the firmware cannot detect on the rings: only chaos cases use them. */
export const CHAOS_KINDS = new Set<Action["k"]>(["usedLength", "usedLose", "usedForge"]);

export interface FuzzCase {
  seed: number;
  chaos: boolean;
  actions: Action[];
}

/** Host port of the peer client (opt/vsockfw/peer) and of the listener the API sockets connect to. */
export const PEER_PORT = 5001;
export const API_PORT = 6000;
const INTERESTING_U32 = [0, 1, 2, 3, 7, 33, 34, 43, 44, 45, 1234, 1235, 1236, 4050, 0x7fff, 0x8000, 0xffff, 0x10000, 0x10001, 0x40000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const PORTS = [1234, 1235, 1236, 4050, 5000, 0, 0xffffffff];

function interesting(r: SeededRandom): number {
  return r.below(3) === 0 ? r.nextU32() : r.pick(INTERESTING_U32);
}

// Picks an index by weight.
function weighted(r: SeededRandom, weights: readonly number[]): number {
  let roll = r.below(weights.reduce((a, b) => a + b, 0));
  for (let i = 0; i < weights.length; i++) {
    if (roll < weights[i]) return i;
    roll -= weights[i];
  }
  return weights.length - 1;
}

// Mostly data, so streams get long; ending moves are rarer.
const HOST_WEIGHTS = [10, 45, 8, 8, 5, 3, 8, 6];
// SEQPACKET message sizes: around a page, a packet, the 64 KiB send buffer, and the largest (256 KiB).
const MESSAGE_SIZES = [1, 17, 4095, 4096, 65536, 65537, 200000, 262144];

function hostAction(r: SeededRandom): Action {
  const conn = r.nextU32();
  switch (weighted(r, HOST_WEIGHTS)) {
    case 0:
      return { k: "connect", service: r.pick(["echo", "echo", "sink", "source", "seqecho", "seqecho"] as const) };
    case 1:
      if (r.below(4) === 0) return { k: "send", conn, bytes: r.pick(MESSAGE_SIZES) };
      return { k: "send", conn, bytes: r.pick([1, 17, 100, 1000, 4096, 16384, 16385, 65536, 70000, 200000]) };
    case 7:
      return { k: "messageBurst", conn, count: r.pick([2, 10, 100, 500]), bytes: r.pick([0, 1, 100, 3000, 70000]) };
    case 2:
      return { k: "sourceRequest", conn, count: r.pick([0, 1, 1000, 65536, 100000, 300000]) };
    case 3:
      return { k: "shutdownWrite", conn };
    case 4:
      return { k: "close", conn };
    case 5:
      return { k: "reset", conn };
    default:
      return { k: "pauseReading", conn, paused: r.below(3) === 0 };
  }
}

function timeAction(r: SeededRandom): Action {
  if (r.below(10) < 3) return { k: "advance", ms: r.pick([1, 1, 10, 100, 1000, 2500, 9000]) };
  return { k: "poll", rounds: 1 + r.below(8) };
}

// Hostile moves by weight. (A table by name: the list of weights this replaced had drifted one
// place from its switch, so requestFlood never ran outside chaos cases and usedForge never.)
const HOSTILE_WEIGHTS: [Action["k"], number][] = [
  ["hold", 6], ["release", 6], ["dropHeld", 2], ["replay", 6], ["mutate", 14], ["garbage", 10],
  ["usedDuplicate", 5], ["usedBadId", 4], ["usedIdxJump", 3], ["transportReset", 1], ["rawEvent", 3],
  ["configBump", 2], ["cidLie", 1], ["requestFlood", 2],
  ["txHold", 4], ["txRelease", 4], ["txDrop", 1], ["txDuplicate", 2], ["txMutate", 4],
];
const CHAOS_WEIGHTS: [Action["k"], number][] = [["usedLength", 3], ["usedLose", 3], ["usedForge", 3]];
const MMIO_WEIGHTS: [Action["k"], number][] = [["mmioLie", 6], ["mmioSpuriousInterrupt", 4]];
const ORDERS = ["fifo", "interleave", "interleave", "reverse"] as const;

function hostileAction(r: SeededRandom, chaos: boolean, mmio: boolean): Action {
  const queue = r.pick(["rx", "rx", "rx", "tx", "event"] as const);
  const table = HOSTILE_WEIGHTS.concat(chaos ? CHAOS_WEIGHTS : [], mmio ? MMIO_WEIGHTS : []);
  const kind = table[weighted(r, table.map(([, weight]) => weight))][0];
  switch (kind) {
    case "hold":
    case "txHold":
    case "configBump":
    case "txDuplicate":
      return { k: kind };
    case "release":
    case "txRelease":
      return { k: kind, order: r.pick(ORDERS), pick: r.nextU32() };
    case "dropHeld":
    case "txDrop":
    case "replay":
      return { k: kind, pick: r.nextU32() };
    case "mutate": {
      const usedLength = r.below(4) === 0 ? r.pick([0, 1, 43, 44, 45, 100, 16428, 16429, 0xffffffff]) : undefined;
      return { k: "mutate", pick: r.nextU32(), field: r.pick(MUTABLE_FIELDS), value: interesting(r), usedLength };
    }
    case "txMutate":
      // Not dst_cid: the device routes by it (another cid is a drop, which txDrop covers).
      return { k: "txMutate", field: r.pick(MUTABLE_FIELDS.filter((f) => f !== "dstCid")), value: interesting(r) };
    case "garbage": {
      const header: GarbageHeader = {
        srcCid: r.below(4) === 0 ? interesting(r) : 2,
        dstCid: r.below(4) === 0 ? interesting(r) : 33,
        srcPort: r.below(2) === 0 ? interesting(r) : 30000 + r.below(4),
        dstPort: r.pick(PORTS),
        len: r.below(4) === 0 ? interesting(r) : -1, // -1: the payload's length
        type: r.below(4) === 0 ? r.below(5) : 1,
        op: r.below(10),
        flags: interesting(r),
        bufAlloc: interesting(r),
        fwdCnt: interesting(r),
      };
      const usedLength = r.below(4) === 0 ? r.pick([0, 20, 44, 45, 16428, 16429, 0x7fffffff]) : undefined;
      return { k: "garbage", header, payload: r.pick([0, 1, 100, 16384, 16385]), usedLength };
    }
    case "usedDuplicate":
    case "usedLose":
      return { k: kind, queue };
    case "usedBadId":
      return { k: "usedBadId", queue, id: r.pick([128, 129, 1000, 0xffff, 0x10000, 0xffffffff]), len: interesting(r) };
    case "usedIdxJump":
      return { k: "usedIdxJump", queue, ahead: 129 + r.below(60000) };
    case "transportReset":
      return { k: "transportReset", newCid: r.below(3) === 0 ? 3 + r.below(100) : null };
    case "rawEvent":
      return { k: "rawEvent", id: r.pick([1, 2, 0xffffffff]), len: r.pick([0, 1, 3, 4, 8]) };
    case "cidLie":
      return { k: "cidLie", cid: 3 + r.below(100) };
    case "requestFlood":
      return { k: "requestFlood", service: r.pick(["echo", "sink", "source", "seqecho"] as const), count: r.pick([10, 65, 100, 200]), firstPort: 50000 + r.below(10000) };
    case "usedLength":
      return { k: "usedLength", queue, len: interesting(r) };
    case "mmioLie":
      return { k: "mmioLie", register: r.pick(["interruptStatus", "configGeneration"] as const), value: interesting(r), reads: 1 + r.below(20) };
    case "mmioSpuriousInterrupt":
      return { k: "mmioSpuriousInterrupt", status: r.pick([1, 2, 3, 0xffffffff]) };
    default:
      return { k: "usedForge", queue, pick: r.nextU32(), len: interesting(r) };
  }
}

const API_CALLS: readonly ApiCall[] = ["socket", "bind", "listen", "accept", "connect", "connect", "send", "send", "send", "recv", "recv", "shutdown", "close", "settimeout", "setsockopt", "getsockopt", "getsockname", "getpeername", "poll"];
const LENGTHS = [0, 1, 100, 4096, 65536, 65537, 300000, 0x7fffffff, 0xffffffff];
const NANOSECONDS = [0, 1000, 1_000_000, 5_000_000]; // never -1: a blocking call nothing answers rightly blocks forever

function apiAction(r: SeededRandom): ApiAction {
  const call = r.pick(API_CALLS);
  const fd = r.pick(["own", "own", "own", "own", "closed", "invalid"] as const);
  const ptr = r.pick(["scratch", "scratch", "scratch", "scratch", "null", "straddle", "beyond", "huge"] as const);
  const len = r.pick(LENGTHS);
  let a = 0;
  let b = 0;
  switch (call) {
    case "bind":
      a = r.pick([0, 1, 1023, 1024, 1234, 7000 + r.below(4), 0xffffffff]);
      b = r.pick([0xffffffff, 0xffffffff, 33, 2, 0, 3]);
      break;
    case "listen":
      a = r.pick([-0x80000000, -1, 0, 1, 16, 1000, 0x7fffffff]);
      break;
    case "connect":
      a = r.pick([API_PORT, API_PORT, API_PORT, 4051, 1234, 0, 0xffffffff]); // not 4050: the greeting's listener
      b = r.pick([2, 2, 2, 2, 33, 1, 3, 0xffffffff]);
      break;
    case "send":
    case "recv":
      a = r.pick([0, 0, 0x40, 0x2, 0x42, -1]);
      break;
    case "shutdown":
      a = r.pick([-1, 0, 1, 2, 3]);
      break;
    case "settimeout":
      a = r.pick(NANOSECONDS);
      break;
    case "setsockopt":
    case "getsockopt":
      a = r.pick([-1, 0, 1, 2, 3, 4, 6, 18, 20, 21, 99]);
      b = r.pick([-1, 0, 1, 127, 128, 4096, 65536, 262144, 262145, 0x7fffffff]);
      break;
    case "poll":
      a = r.pick([-1, 0, 1, 2, 5, 300, 1000]);
      b = r.pick([0, 0, 1000, 1_000_000]);
      break;
  }
  return { k: "api", call, fd, pick: r.nextU32(), a, b, len, ptr };
}

// A few calls in a row, as an app makes them: mostly on its sockets, with valid buffers, to the
// host's collector, so that connections get established and carry data between the misuses.
function apiBurst(r: SeededRandom): ApiAction[] {
  const burst: ApiAction[] = [];
  for (let n = 1 + r.below(6); n > 0; n--) {
    const a = apiAction(r);
    if (r.below(2) === 0) {
      a.fd = "own";
      a.ptr = "scratch";
      if (a.call === "connect") [a.a, a.b] = [API_PORT, 2];
      if (a.call === "send" || a.call === "recv") a.len = r.pick([1, 100, 4096, 65536]);
    }
    burst.push(a);
  }
  return burst;
}

// The host listens for the firmware's own clients, now or later in the case.
function hostListen(r: SeededRandom): Action {
  const target = r.pick(["greeting", "peer", "api"] as const);
  return target === "peer" ? { k: "hostListen", target, bytes: r.pick([1, 1000, 65536, 300000]) } : { k: "hostListen", target };
}

/** The machine a case boots: microvm's virtio-mmio shape when its actions say so. */
export function bootTransport(actions: readonly Action[]): "pci" | "mmio" {
  return actions.some((a) => a.k === "useMmio") ? "mmio" : "pci";
}

/** The boot options a case needs: the peer client runs when the case listens for it. */
export function bootOptions(actions: readonly Action[]): Record<string, string> {
  const peer = actions.find((a) => a.k === "hostListen" && a.target === "peer");
  return peer && peer.k === "hostListen" ? { peer: `2:${PEER_PORT}:${peer.bytes ?? 65536}` } : {};
}

/**
 * A case from its seed: 40-160 actions, a fifth of them hostile; one case in four is a chaos case.
 * Every other case also works the guest-to-host direction: the host listens for the firmware's
 * clients, and bursts of direct socket-API calls (api-misuse.ts) run between the other moves.
 */
export function generateCase(seed: number): FuzzCase {
  const r = new SeededRandom(seed);
  const chaos = r.below(4) === 0;
  const guestSide = r.below(2) === 0;
  const length = 40 + r.below(121);
  // Not drawn from r, so the PCI cases of every other seed stay what they were.
  const mmio = (seed >>> 0) % 4 === 3;
  const actions: Action[] = mmio ? [{ k: "useMmio" }, { k: "connect", service: "echo" }] : [{ k: "connect", service: "echo" }];
  if (guestSide) actions.push({ k: "hostListen", target: "api" });
  for (let i = 0; i < length; i++) {
    const roll = r.below(20);
    if (roll < 8) actions.push(hostAction(r));
    else if (roll < 13) actions.push(timeAction(r));
    else if (roll < 17 || !guestSide) actions.push(hostileAction(r, chaos, mmio));
    else if (roll < 18) actions.push(hostListen(r));
    else actions.push(...apiBurst(r));
  }
  return { seed, chaos, actions };
}
