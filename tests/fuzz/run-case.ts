// Runs one fuzz case on a fresh simulated machine and checks the invariants after every action:
//  - no wasm trap (abort or runtime error) and no exception out of the firmware;
//  - no hang: every action finishes within a budget of firmware steps (clock reads, barriers);
//  - every byte stream the firmware's services delivered is a prefix of what the peer sent
//    (echo: what came back; sink: its "<bytes> <crc32>" answer; source: its pattern), on every
//    connection the hostile device did not itself corrupt (see `taint` below);
//  - counters consistent: rejection counters never go down, each reason seen has exactly one warn
//    line, the firmware accepted no more rx packets than were delivered (plus forged entries),
//    the device saw no more tx packets than the firmware sent, the connection count is in range;
//  - the firmware never sent anything vhost would drop (cids, lengths, ring format);
//  - the guest-to-host direction: what the host accepted from the firmware's own clients is a
//    prefix of what they send (boot greeting, peer client, the API sockets of api-misuse.ts), and
//    the peer client never reads an echo that differs from what it sent;
//  - every direct socket-API call returns its documented value or a negative errno (api-misuse.ts).
// At the end, unless the case damaged the rings in ways no driver can detect (chaos), a fresh
// connection must still be served.
import { crc32 } from "node:zlib";
import { Machine, SimHang, SimTrap } from "../sim/machine";
import type { HostSocket } from "../../tools/vsock-model/host";
import { VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_TYPE_STREAM, VsockHeader, VSOCK_HEADER_SIZE } from "../../tools/vsock-model/vsock-packet";
import { MMIO_CONFIG_GENERATION, MMIO_INTERRUPT_STATUS } from "../sim/virtio-mmio";
import { Action, API_PORT, bootOptions, bootTransport, CHAOS_KINDS, FuzzCase, HostTarget, MutableField, PEER_PORT, Service } from "./actions";
import { ApiMisuse, SentStream } from "./api-misuse";
import { HostileDevice } from "./hostile-device";
import { concat } from "../unit/vsock-helpers";
import { counter, COUNTER_RX_PACKETS, COUNTER_TX_PACKETS } from "../unit/device-harness";

export const WASM_PATH = process.env.VSOCKFW_UNIT_WASM ?? "build/unit/firmware.wasm";
const GUEST_CID = 33;
const SERVICE_PORT: Record<Service, number> = { echo: 1234, sink: 1235, source: 1236, seqecho: 1238 };
const LISTEN_PORT: Record<HostTarget, number> = { greeting: 4050, peer: PEER_PORT, api: API_PORT };
const GREETING = new TextEncoder().encode("Hello, Host! This is a message from the VM.\n"); // assembly/apps/greeting.ts
const MAX_CONNECTIONS = 64;
const MAX_LIVE_FUZZ_CONNECTIONS = 8;
/** Firmware steps (clock reads and barriers) one action may take before it counts as a hang. */
const STEP_BUDGET = 2_000_000;
const OP_RW = 5;
const OP_CREDIT_UPDATE = 6;

export class FuzzFailure extends Error {
  constructor(
    readonly kind: string,
    detail: string,
    readonly actionIndex: number,
  ) {
    super(`${kind}: ${detail}`);
    this.name = "FuzzFailure";
  }
}

class Hang extends Error {}

interface Conn {
  id: number;
  service: Service | HostTarget; // a connection to a service, or one the host accepted from a firmware client
  socket: HostSocket;
  sent: Uint8Array[];
  sentLength: number;
  sentCache: Uint8Array | null;
  sourceCount: number | null;
  tainted: boolean;
  apiStream?: SentStream | null; // api: what the guest socket's sends were accepted with (none before a connect succeeds)
}

export interface CaseResult {
  failure: FuzzFailure | null;
  actionsRun: number;
  stats: { delivered: number; rejections: number; tainted: number; connections: number; apiCalls: number; guestToHostBytes: number };
}

/** Deterministic host data: byte `offset` of connection `id`. */
function hostBytes(id: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const o = offset + i;
    out[i] = (o * 131 + id * 17 + (o >>> 9)) & 0xff;
  }
  return out;
}

/** The source service's bytes (assembly/apps/source-pattern.ts). */
function sourceByte(i: number): number {
  return (i * 7 + (i >>> 8)) & 0xff;
}

/** Sets one header field as the wire would hold the value (type and op are 16 bits), so checks see what the receiver sees. */
function setField(header: VsockHeader, field: MutableField, value: number): void {
  const big = field === "srcCid" || field === "dstCid";
  const narrow = field === "type" || field === "op" ? value & 0xffff : value >>> 0;
  (header as unknown as Record<string, number | bigint>)[field] = big ? BigInt(value >>> 0) : narrow;
}

function firstDifference(got: Uint8Array, want: Uint8Array): number {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return i;
  return got.length > want.length ? want.length : -1;
}

export class CaseRunner {
  m!: Machine;
  hostile!: HostileDevice;
  api!: ApiMisuse;
  private readonly listening = new Set<HostTarget>();
  private peerLogScanned = 0;
  private conns: Conn[] = [];
  private nextConnId = 0;
  private nextHostPort = 20000;
  private chaos = false;
  private cidLied = false;
  /** Host ports a forged or replayed packet was aimed at: the host may see protocol errors there. */
  private touchedHostPorts = new Set<number>();
  private keys: string[] = [];
  private lastCounts: number[] = [];
  private warnLinesSeen = 0;
  private logScanned = 0;
  private steps = 0;
  private actionIndex = -1;
  private violationsChecked = 0;
  private sentChecked = 0;

  static async boot(options: Record<string, string> = {}, transport: "pci" | "mmio" = "pci"): Promise<CaseRunner> {
    const r = new CaseRunner();
    r.m = await Machine.create({ wasmPath: WASM_PATH, guestCid: GUEST_CID, options, transport });
    r.installWatchdog();
    r.hostile = new HostileDevice(r.m);
    r.firmware(() => {
      if (!r.m.init()) throw new FuzzFailure("boot", r.m.logText(), -1);
      r.m.poll(3);
    });
    r.api = new ApiMisuse(r.m); // after boot: its scratch memory lies beyond everything the firmware allocated
    const n = r.m.exports.fw_rejection_reasons();
    for (let i = 0; i < n; i++) r.keys.push(r.m.readString(r.m.exports.fw_rejection_key(i) >>> 0));
    r.lastCounts = r.keys.map(() => 0);
    return r;
  }

  // The clock and barrier imports bump m.clock and m.barrierCount on every call: counting those
  // bounds the firmware's work (every wait loop reads the clock, every ring walk has barriers).
  private installWatchdog(): void {
    const m = this.m;
    for (const field of ["clock", "barrierCount"] as const) {
      let value: unknown = m[field];
      Object.defineProperty(m, field, {
        get: () => value,
        set: (next: unknown) => {
          value = next;
          if (++this.steps > STEP_BUDGET) throw new Hang(`more than ${STEP_BUDGET} firmware steps in one action`);
        },
      });
    }
  }

  /** Runs firmware (or sim code that calls into it); traps, aborts and hangs become failures. */
  // The main loop as it runs on the machine: poll, and halt when idle (the simulated halt lasts
  // until an interrupt or its timeout).
  private idleRounds(rounds: number): void {
    for (let i = 0; i < rounds; i++) {
      this.m.exports.fw_poll_or_halt();
      this.m.host.tick();
    }
  }

  private firmware(work: () => void): void {
    try {
      work();
    } catch (error) {
      if (error instanceof FuzzFailure) throw error;
      if (error instanceof Hang || error instanceof SimHang) throw new FuzzFailure("hang", error.message, this.actionIndex);
      if (error instanceof SimTrap) throw new FuzzFailure("wasm-abort", error.message, this.actionIndex);
      if (error instanceof WebAssembly.RuntimeError) throw new FuzzFailure("wasm-trap", String(error.message), this.actionIndex);
      if (error instanceof Error && (error.name === "RingError" || error.name === "GuestMemoryError") && this.chaos) return;
      throw new FuzzFailure("exception", error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error), this.actionIndex);
    }
  }

  private poll(rounds: number): void {
    this.firmware(() => this.m.poll(rounds));
  }

  private liveConns(): Conn[] {
    return this.conns.filter((c) => c.socket.state === "connecting" || c.socket.state === "connected");
  }

  private connFor(pick: number): Conn | null {
    const live = this.liveConns();
    return live.length === 0 ? null : live[(pick >>> 0) % live.length];
  }


  // Every connection on that host port: the host's accepted ones share their listener's port.
  private taint(hostPort: number): void {
    if (process.env.FUZZ_SELFTEST_NO_TAINT === "1") return; // the fuzzer's own check: must then find replays
    for (const c of this.conns) if (c.socket.localPort === hostPort) c.tainted = true;
  }

  private damagedToHost(hostPort: number): void {
    this.touchedHostPorts.add(hostPort >>> 0);
    this.taint(hostPort >>> 0);
  }

  private taintAll(): void {
    for (const c of this.conns) c.tainted = true;
  }

  // ---- actions ----
  run(action: Action, index: number): void {
    this.actionIndex = index;
    this.steps = 0;
    if (CHAOS_KINDS.has(action.k)) {
      this.chaos = true;
      this.taintAll();
    }
    this.firmware(() => this.apply(action));
    this.check();
  }

  private apply(a: Action): void {
    const m = this.m;
    const h = this.hostile;
    switch (a.k) {
      case "connect": {
        if (this.liveConns().length >= MAX_LIVE_FUZZ_CONNECTIONS) return;
        const type = a.service === "seqecho" ? VIRTIO_VSOCK_TYPE_SEQPACKET : VIRTIO_VSOCK_TYPE_STREAM;
        const socket = m.host.connect(SERVICE_PORT[a.service], this.nextHostPort++, type);
        this.addConn(a.service, socket);
        return;
      }
      case "hostListen":
        if (this.listening.has(a.target)) return;
        this.listening.add(a.target);
        m.host.listen(LISTEN_PORT[a.target]).onAccept((socket) => this.addConn(a.target, socket));
        return;
      case "api": {
        const broken = this.api.run(a);
        if (broken) throw new FuzzFailure("api", broken, this.actionIndex);
        m.poll(1);
        return;
      }
      case "send": {
        const c = this.connFor(a.conn);
        if (!c || c.service === "source") return;
        // The peer client's host side echoes, slowly: the next bytes it has not sent back yet.
        const data = c.service === "peer" ? c.socket.received.slice(c.sentLength, c.sentLength + a.bytes) : hostBytes(c.id, c.sentLength, a.bytes);
        if (data.length === 0) return;
        this.sendToService(c, data);
        return;
      }
      case "messageBurst": {
        const c = this.connFor(a.conn);
        if (!c || c.service !== "seqecho") return;
        for (let i = 0; i < a.count; i++) this.sendToService(c, hostBytes(c.id, c.sentLength, a.bytes));
        return;
      }
      case "sourceRequest": {
        const c = this.connFor(a.conn);
        if (!c || c.service !== "source" || c.sourceCount !== null) return;
        if (c.socket.send(`${a.count}\n`) > 0) c.sourceCount = a.count;
        return;
      }
      case "shutdownWrite":
        this.connFor(a.conn)?.socket.shutdown(1);
        return;
      case "close":
        this.connFor(a.conn)?.socket.close();
        return;
      case "reset":
        this.connFor(a.conn)?.socket.reset();
        return;
      case "pauseReading":
        this.connFor(a.conn)?.socket.pauseReading(a.paused);
        return;
      case "poll":
        m.poll(a.rounds);
        return;
      case "advance":
        m.advance(BigInt(a.ms) * 1_000_000n);
        m.poll(2);
        return;
      case "hold":
        h.holding = true;
        return;
      case "release": {
        // Interleaving tuples is harmless; reversing a tuple's own packets reorders its stream.
        const released = h.release(a.order, a.pick);
        if (a.order === "reverse") for (const p of released) if (p.header.op === OP_RW) this.taint(p.header.srcPort);
        m.poll(2);
        return;
      }
      case "dropHeld": {
        const lost = h.dropHeld(a.pick);
        if (lost) this.taint(lost.header.srcPort);
        return;
      }
      // Guest -> host: whatever the host gets wrong on a tuple it may answer with RST or see as a
      // protocol error; a lost, repeated, reordered or changed RW corrupts that tuple's stream.
      case "txHold":
        h.txHolding = true;
        return;
      case "txRelease": {
        const released = h.txRelease(a.order, a.pick);
        if (a.order === "reverse") for (const p of released) this.damagedToHost(p.header.dstPort);
        m.poll(2);
        return;
      }
      case "txDrop": {
        const lost = h.txDrop(a.pick);
        if (lost) this.damagedToHost(lost.header.dstPort);
        return;
      }
      case "txDuplicate":
        h.changeNextTx((p) => {
          this.damagedToHost(p.header.dstPort);
          return [p, p];
        });
        return;
      case "txMutate":
        h.changeNextTx((p) => {
          const header = { ...p.header };
          setField(header, a.field, a.value);
          this.damagedToHost(p.header.dstPort);
          this.damagedToHost(header.dstPort);
          return [{ header, payload: p.payload }];
        });
        return;
      case "replay":
      case "mutate":
        this.copyPacket(a);
        m.poll(1);
        return;
      case "garbage": {
        const g = a.header;
        const payload = hostBytes(99, 0, a.payload);
        const header = { ...g, srcCid: BigInt(g.srcCid), dstCid: BigInt(g.dstCid), len: g.len < 0 ? payload.length : g.len };
        this.noteCopy(header, payload.length, a.usedLength, false);
        h.inject(header, payload, a.usedLength);
        m.poll(1);
        return;
      }
      case "requestFlood": {
        const guestCid = m.device!.guestCid;
        for (let i = 0; i < a.count; i++) {
          const type = a.service === "seqecho" ? VIRTIO_VSOCK_TYPE_SEQPACKET : VIRTIO_VSOCK_TYPE_STREAM;
          const header = { srcPort: (a.firstPort + i) >>> 0, dstPort: SERVICE_PORT[a.service], op: 1, dstCid: guestCid, len: 0, type };
          h.inject(header, new Uint8Array(0));
        }
        m.poll(3);
        return;
      }
      case "usedDuplicate":
        if (h.corruptNextUsed(a.queue, (e) => [e, e])) h.forgedUsed++;
        return;
      case "usedBadId": {
        const q = h.queue(a.queue);
        if (q && a.id >= q.size) h.injectUsed(a.queue, a.id, a.len);
        m.poll(1);
        return;
      }
      case "usedIdxJump": {
        const q = h.queue(a.queue);
        if (q && a.ahead > q.size && a.ahead < 0x10000) h.usedIdxJump(a.queue, a.ahead);
        m.poll(1);
        return;
      }
      case "usedLength":
        h.corruptNextUsed(a.queue, (e) => [{ id: e.id, len: a.len }]);
        return;
      case "usedLose":
        h.corruptNextUsed(a.queue, () => []);
        return;
      case "usedForge": {
        const heads = h.postedHeads(a.queue);
        if (heads.length > 0) h.injectUsed(a.queue, heads[(a.pick >>> 0) % heads.length], a.len);
        m.poll(1);
        return;
      }
      case "transportReset":
        // Every host connection is reset: their streams end, which the invariants allow.
        m.device!.transportReset(a.newCid ?? undefined);
        this.cidLied = false;
        m.poll(2);
        return;
      case "rawEvent":
        h.rawEvent(a.id, a.len);
        m.poll(1);
        return;
      case "configBump":
        m.device!.bumpConfigGeneration();
        return;
      case "useMmio": // decided at boot (bootTransport)
        return;
      case "mmioLie": {
        // The register says `value` for its next reads. InterruptStatus: the firmware acknowledges
        // only the two bits virtio-mmio defines, and still finds its work on the rings.
        // ConfigGeneration: a guest_cid read across it is read again.
        const device = m.vsockMmio;
        if (!device) return;
        const offset = a.register === "interruptStatus" ? MMIO_INTERRUPT_STATUS : MMIO_CONFIG_GENERATION;
        let left = a.reads;
        device.lies.set(offset, () => {
          if (--left <= 0) device.lies.delete(offset);
          return a.value;
        });
        this.idleRounds(3); // the firmware reads InterruptStatus when it arms for an idle halt
        return;
      }
      case "mmioSpuriousInterrupt":
        // The line rises with nothing new on the rings: a halt ends early, nothing else happens.
        if (m.vsockMmio) m.vsockMmio.raiseInterrupt(a.status);
        this.idleRounds(3);
        return;
      case "cidLie":
        // guest_cid changes without a TRANSPORT_RESET: everything for us now carries a cid we do not have.
        // Packets both ways are lost meanwhile (ours carry the old src_cid, vhost drops them): every stream may have gaps.
        m.device!.setGuestCid(a.cid, true);
        this.cidLied = true;
        this.taintAll();
        return;
    }
  }

  /** Bytes for a service (on seqecho: one message; an empty one sends nothing, as in Linux). */
  private sendToService(c: Conn, data: Uint8Array): void {
    if (data.length === 0 || c.socket.send(data) !== data.length) return;
    c.sent.push(data);
    c.sentLength += data.length;
    c.sentCache = null;
  }

  private addConn(service: Conn["service"], socket: HostSocket): void {
    // After ring damage or during a cid lie nothing is trusted.
    this.conns.push({ id: this.nextConnId++, service, socket, sent: [], sentLength: 0, sentCache: null, sourceCount: null, tainted: this.chaos || this.cidLied });
  }

  /** A replayed or altered copy of a packet already delivered to the guest. */
  private copyPacket(a: Extract<Action, { k: "replay" } | { k: "mutate" }>): void {
    const delivered = this.m.device!.deliveredToGuest;
    if (delivered.length === 0) return;
    const original = delivered[(a.pick >>> 0) % delivered.length];
    const header: VsockHeader = { ...original.header };
    let usedLength: number | undefined;
    if (a.k === "mutate") {
      setField(header, a.field, a.value);
      usedLength = a.usedLength;
    }
    const creditChanged =
      header.bufAlloc !== original.header.bufAlloc || header.fwdCnt !== original.header.fwdCnt || header.srcPort !== original.header.srcPort || header.dstPort !== original.header.dstPort;
    this.noteCopy(header, original.payload.length, usedLength, creditChanged);
    this.hostile.inject(header, original.payload, usedLength);
  }

  // Would the firmware be right to accept this forged packet as genuine? Then it may corrupt the
  // tuple's stream (data it cannot tell from real data, or credit it cannot tell from real credit).
  private noteCopy(header: { srcCid: bigint; dstCid: bigint; srcPort: number; dstPort: number; len: number; type: number; op: number; flags: number }, payloadLength: number, usedLength: number | undefined, creditChanged: boolean): void {
    this.touchedHostPorts.add(header.srcPort >>> 0);
    const used = usedLength ?? VSOCK_HEADER_SIZE + payloadLength;
    // A header len below the used length is taken as Linux takes it (the extra bytes are ignored).
    const consistent = used >= VSOCK_HEADER_SIZE && (header.len >>> 0) <= used - VSOCK_HEADER_SIZE && used <= VSOCK_HEADER_SIZE + 16384;
    // Against the cid the firmware believes it has (a device lying about the cid may differ).
    const firmwareCid = BigInt.asUintN(64, BigInt(this.m.exports.vs_local_cid()));
    const valid = header.srcCid === 2n && header.dstCid === firmwareCid && (header.type === 1 || header.type === 2) && header.op >= 1 && header.op <= 7 && consistent;
    if (!valid) return;
    // Data it cannot tell from real data (on SEQPACKET an empty RW with EOM is a message too), or
    // credit (every header carries it) that can overrun the host.
    const data = header.op === OP_RW && (header.len > 0 || (header.type === 2 && (header.flags & 1) !== 0));
    if (data || creditChanged || header.op === OP_CREDIT_UPDATE) this.taint(header.srcPort >>> 0);
  }

  // ---- invariants ----
  check(): void {
    const m = this.m;
    if (m.aborts.length > 0) throw new FuzzFailure("wasm-abort", m.aborts[0].message, this.actionIndex);
    if (m.exitCode !== null) throw new FuzzFailure("exit", `firmware exited with ${m.exitCode}`, this.actionIndex);
    this.checkCounters();
    this.checkGuestPackets();
    this.checkViolations();
    for (const c of this.conns) if (!c.tainted) this.checkStream(c);
  }

  private checkCounters(): void {
    const m = this.m;
    const counts = this.keys.map((_, i) => Number(m.exports.fw_rejection_count(i)));
    counts.forEach((n, i) => {
      if (n < this.lastCounts[i]) throw new FuzzFailure("counters", `rejection ${this.keys[i]} went down: ${this.lastCounts[i]} -> ${n}`, this.actionIndex);
    });
    this.lastCounts = counts;
    const log = m.log;
    for (; this.logScanned < log.length; this.logScanned++) {
      if (/^\[[0-9.]+\] warn (virtq|vsock|vsock-dev|virtio|pci): .*(rejected|dropped: |does not fit|did not take)/.test(log[this.logScanned])) this.warnLinesSeen++;
    }
    const reasonsSeen = counts.filter((n) => n > 0).length;
    if (this.warnLinesSeen !== reasonsSeen) {
      throw new FuzzFailure("counters", `${this.warnLinesSeen} rejection warn lines for ${reasonsSeen} reasons seen (${this.keys.filter((_, i) => counts[i] > 0).join(" ")})`, this.actionIndex);
    }
    const connections = m.exports.vsock_connection_count();
    if (connections < 0 || connections > MAX_CONNECTIONS) throw new FuzzFailure("counters", `connection count ${connections}`, this.actionIndex);
    const rxPackets = counter(m, COUNTER_RX_PACKETS);
    const delivered = m.device!.deliveredToGuest.length + this.hostile.forgedUsed;
    if (rxPackets > delivered) throw new FuzzFailure("counters", `firmware accepted ${rxPackets} rx packets, the device delivered ${delivered}`, this.actionIndex);
    const txPackets = counter(m, COUNTER_TX_PACKETS);
    const seen = m.device!.sentByGuest.length;
    if (seen > txPackets) throw new FuzzFailure("counters", `device saw ${seen} tx packets, the firmware sent ${txPackets}`, this.actionIndex);
  }

  private checkGuestPackets(): void {
    const sent = this.m.device!.sentByGuest;
    for (; this.sentChecked < sent.length; this.sentChecked++) {
      const h = sent[this.sentChecked].header;
      const what = `tx packet ${this.sentChecked}: op=${h.op} ${h.srcCid}:${h.srcPort} -> ${h.dstCid}:${h.dstPort} len=${h.len} type=${h.type}`;
      if (h.dstCid !== 2n || h.len > 65536 || (h.type !== 1 && h.type !== 2) || h.op < 1 || h.op > 7) throw new FuzzFailure("bad-tx", what, this.actionIndex);
    }
  }

  private checkViolations(): void {
    const violations = this.m.device!.violations;
    for (; this.violationsChecked < violations.length; this.violationsChecked++) {
      const v = violations[this.violationsChecked];
      if (this.excused(v)) continue;
      throw new FuzzFailure("device-violation", v, this.actionIndex);
    }
  }

  private excused(v: string): boolean {
    if (this.chaos) return true; // forged completions can make any ring state look like the driver's fault
    if (v.startsWith("event: transport reset missed")) return true; // the fuzzer reset faster than events were reposted
    if (this.cidLied && v.includes("src_cid is not the guest cid")) return true; // the device lied about our cid
    // An API socket retried connect() after its 5 ms connect timeout while the host's RESPONSE was
    // held back: the firmware sends no RST when a connect times out (Linux does not either), so the
    // retry's REQUEST, from the same bound port, meets a host socket that is still connected.
    if (v.includes(` -> 2:${API_PORT} `) && v.endsWith("on a connected host socket")) return true;
    const hostPort = /host (\d+)<-guest/.exec(v) ?? / -> 2:(\d+) /.exec(v);
    if (hostPort) {
      const port = Number(hostPort[1]);
      if (this.touchedHostPorts.has(port) || this.conns.some((c) => c.socket.localPort === port && c.tainted)) return true;
    }
    return false;
  }

  private sentData(c: Conn): Uint8Array {
    c.sentCache ??= concat(c.sent);
    return c.sentCache;
  }

  private checkStream(c: Conn): void {
    const got = c.socket.received;
    if (c.service === "greeting" || c.service === "peer" || c.service === "api") {
      this.checkGuestStream(c, got);
    } else if (c.service === "echo") {
      const want = this.sentData(c);
      const at = firstDifference(got, want);
      if (at >= 0) throw new FuzzFailure("stream", `echo conn ${c.id} (host port ${c.socket.localPort}): byte ${at} of ${got.length} received differs from the ${want.length} sent`, this.actionIndex);
    } else if (c.service === "seqecho") {
      // Every message back whole, in order: the messages received are the first ones sent.
      const got = c.socket.messages;
      if (got.length > c.sent.length) throw new FuzzFailure("stream", `seqecho conn ${c.id}: ${got.length} messages back, ${c.sent.length} sent`, this.actionIndex);
      got.forEach((message, i) => {
        const at = firstDifference(message.bytes, c.sent[i]);
        if (at >= 0) {
          throw new FuzzFailure("stream", `seqecho conn ${c.id}: message ${i} (${message.bytes.length} bytes back, ${c.sent[i].length} sent) differs at byte ${at}`, this.actionIndex);
        }
      });
    } else if (c.service === "sink") {
      if (got.length === 0) return;
      const text = new TextDecoder().decode(got);
      const match = /^(\d+) ([0-9a-f]{8})\n$/.exec(text);
      if (!match) {
        if (/^\d* ?[0-9a-f]{0,8}$/.test(text) && got.length < 20) return; // still arriving
        throw new FuzzFailure("stream", `sink conn ${c.id}: answer ${JSON.stringify(text.slice(0, 60))}`, this.actionIndex);
      }
      const n = Number(match[1]);
      const want = this.sentData(c);
      if (n > want.length) throw new FuzzFailure("stream", `sink conn ${c.id}: counted ${n} bytes, ${want.length} sent`, this.actionIndex);
      const crc = (crc32(want.subarray(0, n)) >>> 0).toString(16).padStart(8, "0");
      if (crc !== match[2]) throw new FuzzFailure("stream", `sink conn ${c.id}: crc ${match[2]} for ${n} bytes, the sent prefix has ${crc}`, this.actionIndex);
    } else {
      if (got.length === 0) return;
      const limit = c.sourceCount ?? 0;
      if (got.length > limit) throw new FuzzFailure("stream", `source conn ${c.id}: ${got.length} bytes for a request of ${c.sourceCount}`, this.actionIndex);
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== sourceByte(i)) throw new FuzzFailure("stream", `source conn ${c.id}: byte ${i} is ${got[i]}, want ${sourceByte(i)}`, this.actionIndex);
      }
    }
  }

  // What the host accepted from a firmware client must be a prefix of what that client sends.
  private checkGuestStream(c: Conn, got: Uint8Array): void {
    let want: Uint8Array;
    if (c.service === "greeting") want = GREETING;
    else if (c.service === "api") {
      c.apiStream ??= this.api.streamFor(c.socket.peerPort); // bound once there is one: the port may be reused later
      want = c.apiStream?.bytes() ?? new Uint8Array(0);
    } else {
      want = got.map((_, i) => sourceByte(i));
      this.checkPeerOutcome();
    }
    const at = firstDifference(got, want);
    if (at >= 0) throw new FuzzFailure("stream", `${c.service} conn ${c.id} (guest port ${c.socket.peerPort}): byte ${at} of ${got.length} the host received differs from the ${want.length} sent`, this.actionIndex);
  }

  // The peer client checks its echo itself; it must never see bytes that differ from what it sent.
  private checkPeerOutcome(): void {
    const log = this.m.log;
    for (; this.peerLogScanned < log.length; this.peerLogScanned++) {
      const line = log[this.peerLogScanned];
      if (!line.includes("peer echo failed") || !line.includes("mismatch_at")) continue;
      if (this.conns.some((c) => c.service === "peer" && c.tainted)) continue;
      throw new FuzzFailure("stream", `peer client: ${line}`, this.actionIndex);
    }
  }

  // ---- the end of a case ----
  /**
   * The device turns honest (held packets go out, its real used idx is written again, the truth
   * about the cid is told), everything settles, then (no chaos) a fresh connection must be served.
   * No driver can make a device serve: a device that jumps its used idx and never writes another
   * entry (e.g. with every tx buffer waiting behind the bogus idx) stalls that queue for good. What
   * is required is that nothing breaks meanwhile and that service resumes once the device behaves.
   */
  finish(): void {
    this.actionIndex = -2;
    this.steps = 0;
    this.firmware(() => {
      if (this.hostile.held.length > 0 || this.hostile.holding) this.hostile.release("fifo", 0);
      this.hostile.changeNextTx(null);
      this.hostile.txRelease("fifo", 0);
      this.hostile.restoreUsedIdx();
      if (this.cidLied) {
        this.m.device!.transportReset(); // tell the firmware the truth at last
        this.cidLied = false;
      }
      this.m.poll(20);
    });
    this.check();
    if (this.chaos) return;
    this.steps = 0;
    this.firmware(() => {
      const fresh = this.m.host.connect(SERVICE_PORT.echo, 40000);
      const message = hostBytes(1000, 0, 3000);
      fresh.send(message);
      for (let i = 0; i < 400 && fresh.received.length < message.length; i++) {
        this.m.poll();
        if (i % 50 === 49) this.m.advance(10_000_000n);
      }
      if (firstDifference(fresh.received, message) !== -1 || fresh.received.length !== message.length) {
        throw new FuzzFailure("liveness", `a fresh echo connection got ${fresh.received.length} of ${message.length} bytes (state ${fresh.state})`, -2);
      }
    });
    this.check();
  }

  stats(): CaseResult["stats"] {
    return {
      delivered: this.m.device!.deliveredToGuest.length,
      rejections: this.lastCounts.reduce((a, b) => a + b, 0),
      tainted: this.conns.filter((c) => c.tainted).length,
      connections: this.conns.length,
      apiCalls: this.api.calls,
      guestToHostBytes: this.conns.reduce((n, c) => n + (c.service in LISTEN_PORT ? c.socket.received.length : 0), 0),
    };
  }
}

/** Runs a case's actions (all of them, or a subset for the minimiser); never throws. */
export async function runActions(actions: Action[]): Promise<CaseResult> {
  let runner: CaseRunner | null = null;
  let ran = 0;
  try {
    runner = await CaseRunner.boot(bootOptions(actions), bootTransport(actions));
    for (let i = 0; i < actions.length; i++) {
      runner.run(actions[i], i);
      ran++;
    }
    runner.finish();
    return { failure: null, actionsRun: ran, stats: runner.stats() };
  } catch (error) {
    const failure = error instanceof FuzzFailure ? error : new FuzzFailure("exception", String(error instanceof Error ? error.stack : error), ran);
    return { failure, actionsRun: ran, stats: runner?.api ? runner.stats() : { delivered: 0, rejections: 0, tainted: 0, connections: 0, apiCalls: 0, guestToHostBytes: 0 } };
  }
}

export function runCase(c: FuzzCase): Promise<CaseResult> {
  return runActions(c.actions);
}
