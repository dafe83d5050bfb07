// The virtio-vsock device model, behaving like Linux vhost-vsock (drivers/vhost/vsock.c) with
// QEMU's event queue. Transport-independent: it works on DeviceSplitQueues over a GuestMemory, so
// the simulator's PCI function (tests/sim) and the vhost-user backend can both drive it.
//   tx: processed when the driver notifies; each packet validated like vhost (src_cid = guest
//       cid, dst_cid = 2, payload <= 64 KiB, chain long enough), a failing one dropped and
//       recorded in `violations` (a test failure signal), the rest handed to the host side.
//       As in vhost, a chain it cannot parse at all is never returned to the used ring.
//   rx: host -> guest packets queue in order and go into posted rx chains whenever there are
//       some (any layout; a packet larger than a buffer is split across buffers, like vhost).
//   event: TRANSPORT_RESET on demand (missed, and recorded, when no event buffer is posted).
import { GuestMemory } from "./guest-memory";
import { SimHost } from "./host";
import { DeviceSplitQueue, RingError, UsedEntry } from "./split-ring";
import { AccessWidth, QueueAddresses, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VirtioDeviceModel, VirtioTransport } from "./virtio-device";
export type { QueueAddresses };
import {
  HeaderFields,
  VIRTIO_ID_VSOCK,
  VIRTIO_VSOCK_EVENT_SIZE,
  VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
  VIRTIO_VSOCK_F_SEQPACKET,
  VIRTIO_VSOCK_MAX_PKT_BUF_SIZE,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_SEQ_EOM,
  VIRTIO_VSOCK_SEQ_EOR,
  VIRTIO_VSOCK_TYPE_SEQPACKET,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HEADER_SIZE,
  VSOCK_HOST_CID,
  VsockHeader,
  VsockPacket,
  completeHeader,
  decodeHeader,
  describeHeader,
  encodeHeader,
} from "./vsock-packet";

export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
export const EVENT_QUEUE = 2;


/** A packet a fault filter passes on: zero (dropped), one (maybe changed) or several (duplicated). */
export type PacketFilter = (packet: VsockPacket) => VsockPacket[];

/** A host -> guest packet waiting for rx buffers; `sent` bytes of its payload already went out. */
interface OutgoingPacket {
  header: VsockHeader;
  payload: Uint8Array;
  sent: number;
  reply: boolean;
  /** Injected packets go out exactly as given (no splitting, used length may be forced). */
  raw?: { usedLength?: number };
}

export interface SimVsockDeviceOptions {
  guestCid?: number | bigint;
  queueSizeMax?: number;
  /** Offered features (default VERSION_1 | EVENT_IDX | SEQPACKET, like QEMU with kernel vhost). */
  features?: bigint;
  hostBufAlloc?: number;
  /** Host sockets send CREDIT_UPDATE whenever a read empties their queue (Linux >= 6.8). */
  hostCreditUpdateOnDrain?: boolean;
  /** Host sockets cap what they keep in flight at their own buffer size (Linux's TX credit cap). */
  hostCapTxCredit?: boolean;
  now?: () => bigint;
  /** false: keep no packet history (sentByGuest, deliveredToGuest, host sockets' received): a long-running backend. */
  recordPackets?: boolean;
}

export class SimVsockDevice implements VirtioDeviceModel {
  readonly deviceType = VIRTIO_ID_VSOCK;
  readonly numQueues = 3;
  guestCid: bigint;
  readonly offeredFeatures: bigint;
  readonly queueSize: number;
  readonly host: SimHost;
  /** Guest misbehaviour vhost would punish (dropped packets, bad rings): each one is a test failure signal. */
  readonly violations: string[] = [];
  /** Every packet the guest sent that parsed (dropped ones too), in order. */
  readonly sentByGuest: VsockPacket[] = [];
  /** Every packet (or fragment) written into the guest's rx buffers, in order. */
  readonly deliveredToGuest: VsockPacket[] = [];
  /** Event ids written to the event queue. */
  readonly eventsDelivered: number[] = [];
  queues: DeviceSplitQueue[] = [];
  memory: GuestMemory | null = null;
  transport: VirtioTransport | null = null;
  started = false;
  /** Queues that hit a RingError stop (vhost's vq_err), named here. */
  readonly brokenQueues = new Map<number, string>();
  /** Interrupts raised per queue (used entries the driver asked to hear about: flags or used_event). */
  readonly interrupts = [0, 0, 0];
  /** Used-entry batches the driver asked not to be interrupted for, per queue. */
  readonly interruptsSuppressed = [0, 0, 0];
  /** vhost's queued_replies: tx stops while this many replies wait for rx buffers. */
  queuedReplies = 0;
  txStalled = false;
  private readonly outgoing: OutgoingPacket[] = [];
  private processingTx = false;
  private readonly now: () => bigint;
  private readonly recordPackets: boolean;
  // ---- seams for transports other than the PCI function (the vhost-user backend) ----
  /** Called after used entries were written on a queue (vhost-user: signal the call eventfd). */
  onUsed: ((queueIndex: number) => void) | null = null;
  /** Called for every violation as it happens (the backend logs them). */
  onViolation: ((message: string) => void) | null = null;
  /** Guest packets to a cid other than 2: true when a sibling took it (else dropped as vhost does). */
  routeToCid: ((packet: VsockPacket) => boolean) | null = null;
  /** Fault injection: every valid guest -> host packet, and every host -> guest packet, passes here. */
  fromGuestFilter: PacketFilter | null = null;
  toGuestFilter: PacketFilter | null = null;

  constructor(options: SimVsockDeviceOptions = {}) {
    this.guestCid = BigInt(options.guestCid ?? 33);
    this.queueSize = options.queueSizeMax ?? 128;
    this.offeredFeatures = options.features ?? VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_VSOCK_F_SEQPACKET;
    this.now = options.now ?? (() => 0n);
    this.recordPackets = options.recordPackets ?? true;
    this.host = new SimHost(
      {
        guestCid: () => this.guestCid,
        sendToGuest: (header, payload, reply) => this.queueForGuest({ header, payload, sent: 0, reply }),
        violation: (message) => this.violation(message),
        now: () => this.now(),
        seqpacketAllowed: () => (this.features & VIRTIO_VSOCK_F_SEQPACKET) !== 0n,
      },
      { bufAlloc: options.hostBufAlloc, creditUpdateOnDrain: options.hostCreditUpdateOnDrain, capTxCredit: options.hostCapTxCredit, keepReceived: this.recordPackets },
    );
  }

  violation(message: string): void {
    this.violations.push(message);
    this.onViolation?.(message);
  }

  /** After used entries: an interrupt (MSI-X message, ISR bit, vhost-user call) only if the driver wants one. */
  private signalUsed(queueIndex: number): void {
    const q = this.queues[queueIndex];
    if (q && !q.needsInterrupt()) {
      this.interruptsSuppressed[queueIndex]++;
      return;
    }
    this.interrupts[queueIndex]++;
    this.transport?.usedBuffersAdded();
    this.onUsed?.(queueIndex);
  }

  // ---- VirtioDeviceModel ----
  queueSizeMax(): number {
    return this.queueSize;
  }

  deviceFeatures(): bigint {
    return this.offeredFeatures;
  }

  /** What the driver accepted, when a transport other than the PCI function negotiated it (vhost-user SET_FEATURES). */
  negotiatedFeatures: bigint | null = null;

  /** Negotiated features (what the driver accepted), 0 before FEATURES_OK. */
  get features(): bigint {
    if (this.negotiatedFeatures !== null) return this.negotiatedFeatures;
    return this.transport && this.transport.status & 8 ? this.transport.driverFeatures : 0n;
  }

  get status(): number {
    return this.transport?.status ?? 0;
  }

  readConfig(offset: number, width: AccessWidth): bigint | undefined {
    if (offset + width > 8) return undefined;
    return (this.guestCid >> BigInt(offset * 8)) & ((1n << BigInt(width * 8)) - 1n);
  }

  start(transport: VirtioTransport): void {
    this.transport = transport;
    const eventIdx = (this.features & VIRTIO_F_EVENT_IDX) !== 0n;
    const queues = transport.queues.map((q) => ({ index: q.index, size: q.size, enabled: q.enabled, desc: q.desc, driver: q.driver, device: q.device, eventIdx }));
    this.activate(transport.memory, queues);
  }

  /** Starts the device on the given rings (the vhost-user backend calls this directly). */
  activate(memory: GuestMemory, queues: QueueAddresses[]): void {
    this.memory = memory;
    this.queues = [];
    for (const q of queues) {
      if (!q.enabled) this.violation(`queue ${q.index} not enabled at DRIVER_OK`);
      const queue = new DeviceSplitQueue(memory, q.index, q.size, Number(q.desc), Number(q.driver), Number(q.device));
      queue.lastAvailIdx = (q.lastAvailIdx ?? 0) & 0xffff;
      queue.availShadow = queue.lastAvailIdx;
      queue.usedIdx = (q.usedIdx ?? 0) & 0xffff;
      queue.eventIdx = q.eventIdx ?? false;
      this.queues[q.index] = queue;
    }
    this.started = true;
    // vhost_vsock_start kicks every queue once: buffers posted before DRIVER_OK are seen.
    this.processTx();
    this.deliverRx();
  }

  /**
   * Device reset stops the rings only. As with vhost, host sockets and packets already queued for
   * the guest survive: they go out after the next DRIVER_OK, and the guest answers RST for tuples
   * it forgot.
   */
  reset(): void {
    this.started = false;
    this.queues = [];
    this.brokenQueues.clear();
    this.txStalled = false;
  }

  notify(queueIndex: number): void {
    if (!this.started) return;
    if (queueIndex === TX_QUEUE) this.processTx();
    else if (queueIndex === RX_QUEUE) this.deliverRx();
  }

  // ---- tx: guest -> host ----
  private queueOk(index: number): DeviceSplitQueue | null {
    const q = this.queues[index];
    if (!this.started || !q || this.brokenQueues.has(index)) return null;
    return q;
  }

  private ringError(index: number, error: unknown): void {
    if (!(error instanceof RingError) && !(error instanceof Error && error.name === "GuestMemoryError")) throw error;
    this.brokenQueues.set(index, (error as Error).message);
    this.violation(`ring: ${(error as Error).message}`);
  }

  processTx(): void {
    const q = this.queueOk(TX_QUEUE);
    if (!q || this.processingTx) return;
    this.processingTx = true;
    let used = false;
    // Like vhost_vsock_handle_tx_kick: no kicks while the queue is being emptied; wanted again
    // once it is (a stall for replies leaves them off: the rx side restarts tx).
    q.disableNotify();
    try {
      for (;;) {
        const rx = this.queues[RX_QUEUE];
        if (rx && this.queuedReplies >= rx.size) {
          this.txStalled = true; // vhost_vsock_more_replies() said no
          break;
        }
        let chain;
        try {
          chain = q.pop();
        } catch (error) {
          this.ringError(TX_QUEUE, error);
          break;
        }
        if (!chain) {
          if (q.enableNotify()) {
            q.disableNotify(); // the driver published while we looked: go on
            continue;
          }
          break;
        }
        if (chain.writableLength > 0) {
          // vhost: "Unexpected descriptor format for TX": stops this kick, the chain is never returned.
          this.violation(`tx: chain ${chain.head} has device-writable descriptors: not returned, tx stopped until the next notify`);
          break;
        }
        if (this.receiveFromGuest(q.gather(chain), chain.head)) {
          q.pushUsed(chain.head, 0); // vhost returns tx chains with used length 0
          used = true;
        }
      }
    } finally {
      this.processingTx = false;
    }
    if (used) this.signalUsed(TX_QUEUE);
    this.deliverRx();
  }

  /**
   * One tx chain's bytes. Returns false when vhost could not even build a packet from it
   * (vhost_vsock_alloc_skb failed: "Faulted on pkt"): such a chain is never returned to the
   * used ring. Wrongly addressed packets are dropped but their chain is returned.
   */
  private receiveFromGuest(bytes: Uint8Array, head: number): boolean {
    if (bytes.length < VSOCK_HEADER_SIZE || bytes.length > VSOCK_HEADER_SIZE + VIRTIO_VSOCK_MAX_PKT_BUF_SIZE) {
      this.violation(`tx dropped, chain ${head} not returned: it holds ${bytes.length} bytes (header 44, payload <= 64 KiB)`);
      return false;
    }
    const header = decodeHeader(bytes);
    const available = bytes.length - VSOCK_HEADER_SIZE;
    const payload = bytes.slice(VSOCK_HEADER_SIZE, VSOCK_HEADER_SIZE + Math.min(header.len, available));
    if (this.recordPackets) this.sentByGuest.push({ header, payload });
    const what = describeHeader(header);
    if (header.len > VIRTIO_VSOCK_MAX_PKT_BUF_SIZE) {
      this.violation(`tx dropped, chain ${head} not returned: payload > 64 KiB: ${what}`);
      return false;
    }
    if (header.len > available) {
      this.violation(`tx dropped, chain ${head} not returned: chain has ${available} payload bytes: ${what}`);
      return false;
    }
    if (header.srcCid !== this.guestCid) this.violation(`tx dropped: src_cid is not the guest cid ${this.guestCid}: ${what}`);
    else if (header.type === VIRTIO_VSOCK_TYPE_SEQPACKET && !(this.features & VIRTIO_VSOCK_F_SEQPACKET))
      this.violation(`tx: a SEQPACKET packet, but VIRTIO_VSOCK_F_SEQPACKET was not negotiated: ${what}`);
    else if (header.dstCid !== VSOCK_HOST_CID && !this.routeToCid) this.violation(`tx dropped: dst_cid is not 2: ${what}`);
    else for (const p of this.fromGuestFilter ? this.fromGuestFilter({ header, payload }) : [{ header, payload }]) this.fromGuest(p);
    return true;
  }

  private fromGuest(p: VsockPacket): void {
    if (p.header.dstCid === VSOCK_HOST_CID) this.host.receive(p.header, p.payload);
    else if (!this.routeToCid?.(p)) this.violation(`tx dropped: no sibling with cid ${p.header.dstCid}: ${describeHeader(p.header)}`);
  }

  /**
   * A packet for this guest from a sibling VM (or a delayed fault-injected one): queued as the host's
   * packets are (split across rx buffers as needed), not filtered again.
   */
  deliverToGuest(header: VsockHeader, payload: Uint8Array, reply = false): void {
    this.outgoing.push({ header: { ...header }, payload, sent: 0, reply });
    if (reply) this.queuedReplies++;
    if (!this.processingTx) this.deliverRx();
  }

  // ---- rx: host -> guest ----
  private queueForGuest(packet: OutgoingPacket): void {
    if (this.toGuestFilter && !packet.raw) {
      for (const p of this.toGuestFilter({ header: packet.header, payload: packet.payload })) this.deliverToGuest(p.header, p.payload, packet.reply);
      return;
    }
    if (packet.reply) this.queuedReplies++;
    this.outgoing.push(packet);
    if (!this.processingTx) this.deliverRx();
  }

  /** Host -> guest packets still waiting for rx buffers. */
  get pendingToGuest(): number {
    return this.outgoing.length;
  }

  deliverRx(): void {
    const q = this.queueOk(RX_QUEUE);
    if (!q) return;
    let used = false;
    // Like vhost_transport_do_send_pkt: no kicks while packets go out; wanted again when there is
    // nothing left to send, or no buffer to send it in.
    q.disableNotify();
    for (;;) {
      if (this.outgoing.length === 0) {
        q.enableNotify();
        break;
      }
      let chain;
      try {
        chain = q.pop();
      } catch (error) {
        this.ringError(RX_QUEUE, error);
        break;
      }
      if (!chain) {
        if (q.enableNotify()) {
          q.disableNotify(); // buffers arrived while we looked: go on
          continue;
        }
        break;
      }
      used = true;
      if (chain.readableLength > 0) {
        this.violation(`rx: chain ${chain.head} has device-readable descriptors`);
        q.pushUsed(chain.head, 0);
        continue;
      }
      if (chain.writableLength < VSOCK_HEADER_SIZE) {
        this.violation(`rx: buffer of ${chain.writableLength} bytes is smaller than a header`);
        q.pushUsed(chain.head, 0);
        continue;
      }
      const packet = this.outgoing[0];
      const room = chain.writableLength - VSOCK_HEADER_SIZE;
      const left = packet.payload.length - packet.sent;
      const n = Math.min(left, room);
      const last = packet.sent + n === packet.payload.length || packet.raw !== undefined;
      const header = { ...packet.header };
      if (!packet.raw) {
        header.len = n;
        // A split seqpacket message carries EOM/EOR only on its last piece (vhost does this).
        if (!last && header.type === VIRTIO_VSOCK_TYPE_SEQPACKET) header.flags &= ~(VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR);
      }
      const payload = packet.payload.subarray(packet.sent, packet.sent + n);
      const bytes = new Uint8Array(VSOCK_HEADER_SIZE + n);
      bytes.set(encodeHeader(header), 0);
      bytes.set(payload, VSOCK_HEADER_SIZE);
      q.scatter(chain, bytes);
      q.pushUsed(chain.head, packet.raw?.usedLength ?? bytes.length);
      if (this.recordPackets) this.deliveredToGuest.push({ header, payload: payload.slice() });
      packet.sent += n;
      if (last) {
        this.outgoing.shift();
        if (packet.reply) this.queuedReplies--;
      }
    }
    if (used) this.signalUsed(RX_QUEUE);
    const rxSize = this.queues[RX_QUEUE]?.size ?? 0;
    if (this.txStalled && this.queuedReplies < rxSize) {
      this.txStalled = false; // vhost restarts tx once replies drain
      this.processTx();
    }
  }

  // ---- event queue ----
  /**
   * Sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (what QEMU does after migration): every host
   * connection is reset. With `newGuestCid` the config changes first. Returns false (and records
   * a violation) when the driver had no event buffer posted: the event is lost, as in QEMU.
   */
  transportReset(newGuestCid?: number | bigint): boolean {
    if (newGuestCid !== undefined) this.setGuestCid(newGuestCid);
    this.host.resetAll();
    const q = this.queueOk(2);
    if (!q) {
      this.violation("event: transport reset missed: device not started");
      return false;
    }
    let chain;
    try {
      chain = q.pop();
    } catch (error) {
      this.ringError(2, error);
      return false;
    }
    if (!chain) {
      this.violation("event: transport reset missed: no event buffer posted");
      return false;
    }
    if (chain.writableLength < VIRTIO_VSOCK_EVENT_SIZE) {
      this.violation(`event: buffer of ${chain.writableLength} bytes is too small`);
      q.pushUsed(chain.head, 0);
      return false;
    }
    const event = new Uint8Array(VIRTIO_VSOCK_EVENT_SIZE);
    new DataView(event.buffer).setUint32(0, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, true);
    q.scatter(chain, event);
    q.pushUsed(chain.head, VIRTIO_VSOCK_EVENT_SIZE);
    this.eventsDelivered.push(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
    this.signalUsed(EVENT_QUEUE);
    return true;
  }

  // ---- hostile-device hooks (fuzzer seams) ----
  /** Changes guest_cid; the config generation moves unless told otherwise (a lying device). */
  setGuestCid(cid: number | bigint, bumpGeneration = true): void {
    this.guestCid = BigInt(cid);
    if (bumpGeneration) this.transport?.configChanged();
  }

  /** Moves config_generation without changing the config (a device that lies about changes). */
  bumpConfigGeneration(): void {
    this.transport?.configChanged();
  }

  /**
   * Queues a host -> guest packet with arbitrary header fields (defaults: a stream RW from the
   * host to the guest) and delivers it when an rx buffer is free. The header goes out exactly as
   * given, `len` included, without splitting; `usedLength` forces the used-ring length.
   */
  inject(fields: HeaderFields, payload: Uint8Array = new Uint8Array(0), options: { usedLength?: number } = {}): void {
    const header = completeHeader(fields, {
      srcCid: VSOCK_HOST_CID,
      dstCid: this.guestCid,
      srcPort: 0,
      dstPort: 0,
      len: payload.length,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      op: VIRTIO_VSOCK_OP_RW,
      flags: 0,
      bufAlloc: this.host.bufAlloc,
      fwdCnt: 0,
    });
    this.queueForGuest({ header, payload: payload.slice(), sent: 0, reply: false, raw: options });
  }

  /** The next used entry written on `queueIndex` goes through `mutate` (change id/len, drop, duplicate). */
  corruptNextUsed(queueIndex: number, mutate: (entry: UsedEntry) => UsedEntry[]): void {
    const q = this.queues[queueIndex];
    if (!q) throw new Error(`queue ${queueIndex} not started`);
    q.interceptUsed = (entry) => {
      q.interceptUsed = null;
      return mutate(entry);
    };
  }

  /** Writes a used entry that answers no request (any id, any length). */
  injectUsed(queueIndex: number, id: number, len: number): void {
    const q = this.queues[queueIndex];
    if (!q) throw new Error(`queue ${queueIndex} not started`);
    q.pushUsedRaw(id, len);
  }
}

export { VIRTIO_VSOCK_TYPE_STREAM };
