// One vhost-user connection from QEMU (the front-end) to this back-end: reads messages exactly
// (12-byte header, then exactly the payload, so fds land on the right message), keeps the
// vrings' setup, maps guest RAM, and starts/stops the vsock device model on the rx/tx rings.
// The event queue stays in QEMU (GET_QUEUE_NUM = 2). A malformed message ends the session,
// never the process.
import { SimVsockDevice, RX_QUEUE, TX_QUEUE, QueueAddresses } from "../vsock-model/vsock-device";
import { splitRingSizes } from "../vsock-model/split-ring";
import { addon, EAGAIN } from "./addon";
import { MappedGuestMemory } from "./guest-ram";
import { log, logEnabled } from "./log";
import {
  CONFIG_HEADER_SIZE,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  HEADER_SIZE,
  MAX_PAYLOAD,
  Message,
  PROTOCOL_F_CONFIG,
  PROTOCOL_F_MQ,
  PROTOCOL_F_REPLY_ACK,
  ProtocolError,
  Request,
  VERSION,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
  decodeConfig,
  decodeHeader,
  decodeMemoryTable,
  decodeU64,
  decodeVringAddress,
  decodeVringState,
  encodeConfig,
  encodeMessage,
  encodeVringState,
  requestName,
  u64Payload,
} from "./protocol";

import { VIRTIO_VSOCK_F_SEQPACKET } from "../vsock-model/vsock-packet";

/** SEQPACKET too (issue 15): the device model carries it, and host programs reach it over <uds-path>.seqpacket. */
export const OFFERED_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES | VIRTIO_VSOCK_F_SEQPACKET;
export const OFFERED_PROTOCOL_FEATURES = PROTOCOL_F_MQ | PROTOCOL_F_REPLY_ACK | PROTOCOL_F_CONFIG;
/** Only rx and tx are handed to the back-end; QEMU keeps the event queue. */
export const QUEUE_COUNT = 2;
export const MAX_QUEUE_SIZE = 32768;
const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
const VSOCK_CONFIG_SIZE = 8;

/** What QEMU told us about one vring. Addresses are QEMU virtual addresses. */
export class Vring {
  size = 0;
  base = 0;
  desc = 0n;
  used = 0n;
  avail = 0n;
  addressed = false;
  kickFd = -1;
  callFd = -1;
  errFd = -1;
  /** Without PROTOCOL_FEATURES a ring is enabled by its kick; with them, by SET_VRING_ENABLE. */
  enabled = false;
  kicked = false;
  kickWatch: object | null = null;
  /** Addresses as the device model needs them (guest physical), filled at start. */
  started: QueueAddresses | null = null;

  constructor(readonly index: number) {}
}

export interface SessionCounters {
  messages: number;
  kicks: number;
  calls: number;
  starts: number;
  stops: number;
}

export class VhostUserSession {
  readonly vrings = [new Vring(0), new Vring(1)];
  readonly memory = new MappedGuestMemory();
  readonly counters: SessionCounters = { messages: 0, kicks: 0, calls: 0, starts: 0, stops: 0 };
  /** Requests in arrival order (tests compare it with what QEMU sends). */
  readonly requests: string[] = [];
  features = 0n;
  protocolFeatures = 0n;
  closed = false;
  /** When the session began and when each request was first seen (hrtime ns): handshake timings. */
  readonly openedAt = process.hrtime.bigint();
  readonly firstSeen = new Map<string, bigint>();
  ringsStartedAt: bigint | null = null;
  private watchHandle: object | null = null;
  private readonly header = new Uint8Array(HEADER_SIZE);

  /** OFFERED_FEATURES, without SEQPACKET when this VM's device model does not offer it (--no-seqpacket). */
  offeredFeatures(): bigint {
    return this.device.deviceFeatures() & VIRTIO_VSOCK_F_SEQPACKET ? OFFERED_FEATURES : OFFERED_FEATURES & ~VIRTIO_VSOCK_F_SEQPACKET;
  }

  constructor(
    readonly fd: number,
    readonly device: SimVsockDevice,
    private readonly onClose: (session: VhostUserSession, reason: string) => void = () => {},
    /** Called after the guest's tx ring was processed (host bridges resume what waited for credit). */
    private readonly afterKick: () => void = () => {},
  ) {
    // The device model decided already (flags, or used_event with EVENT_IDX, whose flags it ignores).
    device.onUsed = (queueIndex) => this.signal(queueIndex, true);
  }

  start(): void {
    this.watchHandle = addon().watch(this.fd, () => this.onReadable());
  }

  get deviceRunning(): boolean {
    return this.device.started;
  }

  // ---- reading messages ----
  private onReadable(): void {
    if (this.closed) return;
    try {
      const message = this.readMessage();
      if (!message) return;
      this.handle(message);
    } catch (error) {
      this.close(error instanceof ProtocolError ? `protocol error: ${error.message}` : `error: ${(error as Error).stack ?? error}`);
    }
  }

  private readMessage(): Message | null {
    const head = addon().recvExact(this.fd, this.header);
    if (head.n !== HEADER_SIZE) {
      for (const fd of head.fds) addon().close(fd);
      this.close(head.n === 0 ? "front-end closed the connection" : head.n < 0 ? `recvmsg failed: errno ${-head.n}` : "connection closed inside a header");
      return null;
    }
    const header = decodeHeader(this.header);
    if (header.size > MAX_PAYLOAD) {
      for (const fd of head.fds) addon().close(fd);
      throw new ProtocolError(`${requestName(header.request)} with a ${header.size}-byte payload`);
    }
    const payload = new Uint8Array(header.size);
    const fds = head.fds;
    if (header.size > 0) {
      const body = addon().recvExact(this.fd, payload);
      fds.push(...body.fds);
      if (body.n !== header.size) {
        for (const fd of fds) addon().close(fd);
        this.close(`connection closed inside the payload of ${requestName(header.request)}`);
        return null;
      }
    }
    return { ...header, payload, fds };
  }

  private reply(message: Message, payload: Uint8Array): void {
    const n = addon().sendWithFds(this.fd, encodeMessage(message.request, VERSION | FLAG_REPLY, payload), []);
    if (n < 0) this.close(`reply to ${requestName(message.request)} failed: errno ${-n}`);
  }

  /** REPLY_ACK: a message that asked for a reply and has none of its own gets a u64 status (0 = ok). */
  private ack(message: Message, ok: boolean): void {
    if (message.flags & FLAG_NEED_REPLY && this.protocolFeatures & PROTOCOL_F_REPLY_ACK) this.reply(message, u64Payload(ok ? 0n : 1n));
  }

  // ---- dispatch ----
  handle(message: Message): void {
    this.counters.messages++;
    const name = requestName(message.request);
    this.requests.push(name);
    if (!this.firstSeen.has(name)) this.firstSeen.set(name, process.hrtime.bigint());
    if (logEnabled("debug")) log("debug", "vhost-user", name, { size: message.size, fds: message.fds.length, flags: `0x${message.flags.toString(16)}` });
    let ok = true;
    const unusedFds = (fds: number[]) => fds.forEach((fd) => addon().close(fd));
    switch (message.request) {
      case Request.GET_FEATURES:
        this.reply(message, u64Payload(this.offeredFeatures()));
        unusedFds(message.fds);
        return;
      case Request.SET_FEATURES:
        this.features = decodeU64(message.payload, name);
        if (this.features & ~this.offeredFeatures()) log("warn", "vhost-user", "front-end set features we did not offer", { features: `0x${this.features.toString(16)}` });
        this.device.negotiatedFeatures = this.features; // e.g. whether the guest may send SEQPACKET
        break;
      case Request.GET_PROTOCOL_FEATURES:
        this.reply(message, u64Payload(OFFERED_PROTOCOL_FEATURES));
        unusedFds(message.fds);
        return;
      case Request.SET_PROTOCOL_FEATURES:
        this.protocolFeatures = decodeU64(message.payload, name) & OFFERED_PROTOCOL_FEATURES;
        break;
      case Request.GET_QUEUE_NUM:
        this.reply(message, u64Payload(BigInt(QUEUE_COUNT)));
        unusedFds(message.fds);
        return;
      case Request.SET_OWNER:
        break;
      case Request.RESET_OWNER:
        this.stopDevice("RESET_OWNER");
        break;
      case Request.SET_MEM_TABLE:
        this.setMemTable(message);
        break;
      case Request.SET_VRING_NUM: {
        const state = decodeVringState(message.payload, name);
        const vring = this.vring(state.index, name);
        if (state.num === 0 || state.num > MAX_QUEUE_SIZE || (state.num & (state.num - 1)) !== 0) throw new ProtocolError(`${name}: queue size ${state.num}`);
        vring.size = state.num;
        break;
      }
      case Request.SET_VRING_ADDR: {
        const address = decodeVringAddress(message.payload);
        const vring = this.vring(address.index, name);
        vring.desc = address.desc;
        vring.used = address.used;
        vring.avail = address.avail;
        vring.addressed = true;
        break;
      }
      case Request.SET_VRING_BASE: {
        const state = decodeVringState(message.payload, name);
        this.vring(state.index, name).base = state.num & 0xffff;
        break;
      }
      case Request.GET_VRING_BASE: {
        const state = decodeVringState(message.payload, name);
        const vring = this.vring(state.index, name);
        this.stopDevice(name);
        this.stopKick(vring);
        vring.kicked = false;
        vring.enabled = false;
        this.reply(message, encodeVringState({ index: vring.index, num: vring.base }));
        unusedFds(message.fds);
        return;
      }
      case Request.SET_VRING_KICK:
      case Request.SET_VRING_CALL:
      case Request.SET_VRING_ERR:
        this.setVringFd(message);
        break;
      case Request.SET_VRING_ENABLE: {
        const state = decodeVringState(message.payload, name);
        const vring = this.vring(state.index, name);
        vring.enabled = state.num !== 0;
        if (!vring.enabled) this.stopDevice(name);
        break;
      }
      case Request.GET_CONFIG: {
        const access = decodeConfig(message.payload);
        const config = new Uint8Array(VSOCK_CONFIG_SIZE);
        new DataView(config.buffer).setBigUint64(0, this.device.guestCid, true);
        const data = new Uint8Array(access.size);
        if (access.offset < VSOCK_CONFIG_SIZE) data.set(config.subarray(access.offset, Math.min(VSOCK_CONFIG_SIZE, access.offset + access.size)));
        this.reply(message, encodeConfig({ ...access, data }));
        unusedFds(message.fds);
        return;
      }
      case Request.SET_CONFIG:
        ok = false; // guest_cid is read-only
        break;
      default:
        log("warn", "vhost-user", "unsupported request", { request: name, size: message.size });
        ok = false;
    }
    if (message.request !== Request.SET_MEM_TABLE && message.request !== Request.SET_VRING_KICK && message.request !== Request.SET_VRING_CALL && message.request !== Request.SET_VRING_ERR) {
      unusedFds(message.fds);
    }
    this.ack(message, ok);
    this.maybeStartDevice();
  }

  private vring(index: number, what: string): Vring {
    const vring = this.vrings[index];
    if (!vring) throw new ProtocolError(`${what}: vring ${index} (only ${QUEUE_COUNT})`);
    return vring;
  }

  private setMemTable(message: Message): void {
    const regions = decodeMemoryTable(message.payload);
    const wasRunning = this.device.started;
    if (wasRunning) this.stopDevice("SET_MEM_TABLE");
    this.memory.replace(regions, message.fds);
    log("info", "vhost-user", "memory table", {
      regions: regions.length,
      ...Object.fromEntries(regions.map((r, i) => [`r${i}`, `0x${r.guestPhysAddr.toString(16)}+0x${r.memorySize.toString(16)}`])),
    });
  }

  private setVringFd(message: Message): void {
    const name = requestName(message.request);
    const value = decodeU64(message.payload, name);
    const vring = this.vring(Number(value & VRING_INDEX_MASK), name);
    const noFd = (value & VRING_NOFD_MASK) !== 0n;
    if (!noFd && message.fds.length !== 1) {
      message.fds.forEach((fd) => addon().close(fd));
      throw new ProtocolError(`${name}: expected one fd, got ${message.fds.length}`);
    }
    const fd = noFd ? -1 : message.fds[0];
    if (noFd) message.fds.forEach((f) => addon().close(f));
    if (message.request === Request.SET_VRING_KICK) {
      this.stopKick(vring);
      vring.kickFd = fd;
      vring.kicked = true;
      // Without PROTOCOL_FEATURES the kick itself enables the ring.
      if (!(this.features & VHOST_USER_F_PROTOCOL_FEATURES)) vring.enabled = true;
      if (fd >= 0) vring.kickWatch = addon().watch(fd, () => this.onKick(vring));
    } else if (message.request === Request.SET_VRING_CALL) {
      if (vring.callFd >= 0) addon().close(vring.callFd);
      vring.callFd = fd;
      // A call fd that arrives after the rings started may have missed a notification.
      if (fd >= 0 && this.device.started) this.signal(vring.index, true);
    } else {
      if (vring.errFd >= 0) addon().close(vring.errFd);
      vring.errFd = fd;
    }
  }

  private stopKick(vring: Vring): void {
    if (vring.kickWatch) addon().unwatch(vring.kickWatch);
    vring.kickWatch = null;
    if (vring.kickFd >= 0) addon().close(vring.kickFd);
    vring.kickFd = -1;
  }

  // ---- rings ----
  private ready(vring: Vring): boolean {
    return vring.size > 0 && vring.addressed && vring.kicked && vring.enabled && this.memory.mappedRegions.length > 0;
  }

  private maybeStartDevice(): void {
    if (this.closed || this.device.started || !this.vrings.every((v) => this.ready(v))) return;
    let queues: QueueAddresses[];
    try {
      queues = this.vrings.map((v) => {
        const sizes = splitRingSizes(v.size);
        const used = this.memory.translate(v.used, sizes.used);
        return {
          index: v.index,
          size: v.size,
          enabled: true,
          desc: BigInt(this.memory.translate(v.desc, sizes.desc)),
          driver: BigInt(this.memory.translate(v.avail, sizes.avail)),
          device: BigInt(used),
          lastAvailIdx: v.base,
          usedIdx: this.memory.read16(used + 2),
          eventIdx: (this.features & VIRTIO_F_EVENT_IDX) !== 0n,
        };
      });
    } catch (error) {
      log("error", "vhost-user", "ring addresses outside guest RAM: rings not started", { error: (error as Error).message });
      return;
    }
    for (const v of this.vrings) v.started = queues[v.index];
    this.counters.starts++;
    this.ringsStartedAt ??= process.hrtime.bigint();
    log("info", "vhost-user", "rings started", {
      cid: this.device.guestCid,
      rx: `${queues[RX_QUEUE].size}@${queues[RX_QUEUE].lastAvailIdx}`,
      tx: `${queues[TX_QUEUE].size}@${queues[TX_QUEUE].lastAvailIdx}`,
    });
    this.guarded("start", () => this.device.activate(this.memory, queues));
    this.afterKick();
  }

  /** Stops the device model (both rings); each vring keeps where it stopped for GET_VRING_BASE. */
  private stopDevice(why: string): void {
    if (!this.device.started) return;
    for (const v of this.vrings) {
      const q = this.device.queues[v.index];
      if (q) v.base = q.lastAvailIdx;
      v.started = null;
    }
    this.device.reset();
    this.counters.stops++;
    log("info", "vhost-user", "rings stopped", { cid: this.device.guestCid, why, rx_base: this.vrings[RX_QUEUE].base, tx_base: this.vrings[TX_QUEUE].base });
  }

  private onKick(vring: Vring): void {
    if (vring.kickFd < 0) return;
    const value = addon().eventfdRead(vring.kickFd);
    if (value === -EAGAIN) return;
    this.counters.kicks++;
    this.guarded(`kick ${vring.index}`, () => this.device.notify(vring.index));
    if (vring.index === TX_QUEUE) this.afterKick();
  }

  /** Errors from the device model are contained per call: logged, never fatal to the process. */
  private guarded(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      log("error", "vhost-user", `device model failed during ${what}`, { error: (error as Error).message });
    }
  }

  /** Interrupts the guest through the call eventfd unless the driver asked for none. */
  signal(queueIndex: number, force = false): void {
    const vring = this.vrings[queueIndex];
    if (!vring || vring.callFd < 0) return;
    if (!force && vring.started) {
      try {
        if (this.memory.read16(Number(vring.started.driver)) & VIRTQ_AVAIL_F_NO_INTERRUPT) return;
      } catch {
        return;
      }
    }
    this.counters.calls++;
    addon().eventfdWrite(vring.callFd, 1);
  }

  /** Ends the session: rings stopped, watches removed, fds closed, guest RAM unmapped. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.stopDevice("disconnect");
    if (this.device.onUsed) this.device.onUsed = null;
    if (this.watchHandle) addon().unwatch(this.watchHandle);
    this.watchHandle = null;
    for (const v of this.vrings) {
      this.stopKick(v);
      if (v.callFd >= 0) addon().close(v.callFd);
      if (v.errFd >= 0) addon().close(v.errFd);
      v.callFd = v.errFd = -1;
    }
    addon().close(this.fd);
    this.memory.clear();
    log("info", "vhost-user", "session closed", { cid: this.device.guestCid, reason });
    this.onClose(this, reason);
  }
}

export { CONFIG_HEADER_SIZE };
