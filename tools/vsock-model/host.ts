// The host side (CID 2) of the simulated vsock device: sockets a test drives, behaving like
// Linux's af_vsock + virtio_transport_common for one guest. Credit exactly like Linux: every
// packet carries buf_alloc and fwd_cnt; RW only within the guest's advertised window; a
// CREDIT_UPDATE when the app's reads leave the guest seeing less than 64 KiB of free space;
// never a CREDIT_REQUEST; RST to unknown tuples; SHUTDOWN then RST to close. SEQPACKET sockets
// too (virtio_transport_seqpacket_*): one sendMessage is one message, split into packets of at
// most 64 KiB with EOM (and EOR when asked) on the last; received packets are cut into messages at
// EOM; a packet whose type is not its socket's gets an RST, as Linux's virtio_transport_recv_pkt.
import {
  VIRTIO_VSOCK_MAX_PKT_BUF_SIZE,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_SEQ_EOM,
  VIRTIO_VSOCK_SEQ_EOR,
  VIRTIO_VSOCK_TYPE_SEQPACKET,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HOST_CID,
  VsockHeader,
  describeHeader,
} from "./vsock-packet";

/** Linux's timeouts (af_vsock.c VSOCK_DEFAULT_CONNECT_TIMEOUT, virtio_transport_common.c VSOCK_CLOSE_TIMEOUT). */
export const CONNECT_TIMEOUT_NS = 2_000_000_000n;
export const CLOSE_TIMEOUT_NS = 8_000_000_000n;
export const FIRST_EPHEMERAL_PORT = 49152;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
const EPIPE = 32;
const EMSGSIZE = 90;
const SHUTDOWN_MASK = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

/** What the host needs from the device it sits behind. */
export interface GuestLink {
  guestCid(): bigint;
  /** Queue a packet for the guest; `reply` marks packets vhost counts against its reply limit. */
  sendToGuest(header: VsockHeader, payload: Uint8Array, reply: boolean): void;
  violation(message: string): void;
  now(): bigint;
  /** Whether the driver negotiated VIRTIO_VSOCK_F_SEQPACKET (absent: yes). */
  seqpacketAllowed?(): boolean;
}

export type HostSocketState = "connecting" | "connected" | "closed" | "reset";

function concat(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A SEQPACKET message the host app received: its bytes and whether it ended a record (EOR). */
export interface HostMessage {
  bytes: Uint8Array;
  eor: boolean;
}

export class HostSocket {
  state: HostSocketState;
  /** SEQPACKET: every message received so far, in order (see takeMessages; empty without keepReceived). */
  readonly messages: HostMessage[] = [];
  private readonly messageCallbacks: ((message: HostMessage, socket: HostSocket) => void)[] = [];
  private messagesTaken = 0;
  private readonly partialMessage: Uint8Array[] = [];
  /** SEQPACKET: messages queued by sendMessage, bytes of each still to send. */
  private readonly pendingMessages: { left: number; eor: boolean }[] = [];
  private readonly unreadFlags: number[] = [];
  /** Why the socket ended badly: "ECONNRESET", "ETIMEDOUT", "EPROTO" (null: it did not). */
  error: string | null = null;
  /** The guest sent SHUTDOWN with SEND (or RST): no more data will come. */
  eof = false;
  /** SHUTDOWN flags received from the guest (VIRTIO_VSOCK_SHUTDOWN_*). */
  peerShutdown = 0;
  /** SHUTDOWN flags this side has sent. */
  localShutdown = 0;
  // Credit state, with Linux's names (struct virtio_vsock_sock).
  bufAlloc: number;
  fwdCnt = 0;
  lastFwdCnt = 0;
  rxBytes = 0;
  txCnt = 0;
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  /** Packet counters, by what this side sent. */
  creditUpdatesSent = 0;
  /** RW payload bytes sent, in total (not wrapping; includes the host's counterStart). */
  bytesSent = 0;
  /** The credit-integrity check's memory: arrivals it last saw, and whether it already reported. */
  integrityArrived = -1;
  integrityReported = false;
  private paused = false;
  private readonly unread: Uint8Array[] = [];
  private readonly readChunks: Uint8Array[] = [];
  private readCache: Uint8Array | null = null;
  private takeFrom = 0;
  private readonly pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private shutdownAfterPending = 0;
  private closeAfterPending = false;
  /** The app closed (SHUTDOWN sent); the tuple lingers until the guest's RST or the close timeout. */
  closing = false;
  deadline: bigint | null = null;
  private readonly dataCallbacks: ((bytes: Uint8Array, socket: HostSocket) => void)[] = [];
  private readonly changeCallbacks: ((socket: HostSocket) => void)[] = [];

  constructor(
    private readonly host: SimHost,
    readonly localPort: number,
    readonly peerPort: number,
    state: HostSocketState,
    readonly type: number = VIRTIO_VSOCK_TYPE_STREAM,
  ) {
    this.state = state;
    this.bufAlloc = host.bufAlloc;
    // As if counterStart bytes had gone each way: the u32 counters wrap as Linux's do.
    const start = Number(BigInt.asUintN(32, host.counterStart));
    this.txCnt = this.fwdCnt = this.lastFwdCnt = this.peerFwdCnt = start;
    this.bytesSent = Number(host.counterStart);
  }

  get peerCid(): bigint {
    return this.host.link.guestCid();
  }

  /** Bytes the guest may still receive from us (Linux virtio_transport_get_credit). */
  peerCredit(): number {
    const inFlight = (this.txCnt - this.peerFwdCnt) >>> 0;
    // Since "vsock/virtio: cap TX credit to local buffer size": at most min(peer's, own) in flight.
    const window = this.host.capTxCredit ? Math.min(this.peerBufAlloc, this.bufAlloc) : this.peerBufAlloc;
    return Math.max(0, window - inFlight);
  }

  /** Everything the host app has read so far. */
  get received(): Uint8Array {
    this.readCache ??= concat(this.readChunks);
    return this.readCache;
  }

  /** What arrived since the last take(). */
  take(): Uint8Array {
    const all = this.received;
    const out = all.slice(this.takeFrom);
    this.takeFrom = all.length;
    return out;
  }

  /** Bytes received and not read by the app (only while reading is paused). */
  get unreadBytes(): number {
    return this.rxBytes;
  }

  /** Bytes queued by send() and not yet sent (waiting for credit). */
  get pendingSendBytes(): number {
    return this.pendingBytes;
  }

  /** SEQPACKET: each message as the app reads it (before onData sees its bytes). */
  onMessage(callback: (message: HostMessage, socket: HostSocket) => void): void {
    this.messageCallbacks.push(callback);
  }

  onData(callback: (bytes: Uint8Array, socket: HostSocket) => void): void {
    this.dataCallbacks.push(callback);
  }

  /** Called after every guest packet for this socket and when it ends (state, eof, shutdown may have moved). */
  onChange(callback: (socket: HostSocket) => void): void {
    this.changeCallbacks.push(callback);
  }

  changed(): void {
    for (const callback of this.changeCallbacks) callback(this);
  }

  get seqpacket(): boolean {
    return this.type === VIRTIO_VSOCK_TYPE_SEQPACKET;
  }

  /**
   * Queues bytes for the guest; they go out as the guest's credit allows. Returns bytes taken or
   * -EPIPE. On a SEQPACKET socket the bytes are one message (sendMessage).
   */
  send(bytes: Uint8Array | string): number {
    if (this.seqpacket) return this.sendMessage(bytes);
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes.slice();
    if (!this.maySend()) return -EPIPE;
    if (data.length === 0) return 0;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.pump();
    return data.length;
  }

  /**
   * SEQPACKET: queues one message (EOR marks it as a record's end). -EMSGSIZE when it is larger
   * than the guest's buffer (Linux virtio_transport_seqpacket_enqueue), -EPIPE when sending ended;
   * a message of 0 bytes sends nothing (Linux's sendmsg loop never runs).
   */
  sendMessage(bytes: Uint8Array | string, eor = false): number {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes.slice();
    if (!this.maySend()) return -EPIPE;
    if (data.length > this.peerBufAlloc) return -EMSGSIZE;
    if (data.length === 0) return 0;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.pendingMessages.push({ left: data.length, eor });
    this.pump();
    return data.length;
  }

  /** SEQPACKET: the messages received since the last takeMessages(). */
  takeMessages(): HostMessage[] {
    const out = this.messages.slice(this.messagesTaken);
    this.messagesTaken = this.messages.length;
    return out;
  }

  private maySend(): boolean {
    if (this.state === "closed" || this.state === "reset" || this.closing) return false;
    if (this.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND || this.shutdownAfterPending & VIRTIO_VSOCK_SHUTDOWN_SEND) return false;
    return !(this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV);
  }

  /** SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 (sent after the data already queued). */
  shutdown(how: number): void {
    const flags =
      (how === SHUT_RD || how === SHUT_RDWR ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0) |
      (how === SHUT_WR || how === SHUT_RDWR ? VIRTIO_VSOCK_SHUTDOWN_SEND : 0);
    this.shutdownAfterPending |= flags;
    this.pump();
  }

  /** Like close(2): SHUTDOWN(both) after queued data, then wait for the guest's RST (8 s). */
  close(): void {
    if (this.state === "connecting") {
      this.finish("closed");
      return;
    }
    if (this.state !== "connected") return;
    this.closeAfterPending = true;
    this.pump();
  }

  /**
   * close(2) by an app that is gone (vhost-user: its Unix peer closed): bytes a blocked send()
   * still held are dropped, reading resumes (into nowhere), then close() as usual.
   */
  closeDiscarding(): void {
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.pendingMessages.length = 0;
    this.pauseReading(false);
    this.close();
  }

  /** Sends RST now and forgets the connection. */
  reset(): void {
    if (this.state === "connected" || this.state === "connecting") this.host.sendPacket(this, VIRTIO_VSOCK_OP_RST, 0, false);
    this.finish("closed");
  }

  /** A paused app does not read: fwd_cnt stops advancing and no credit updates go out. */
  pauseReading(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.consume();
  }

  // ---- internals (called by SimHost) ----
  finish(state: HostSocketState, error: string | null = null): void {
    this.state = state;
    if (error) this.error = error;
    this.closing = false;
    this.deadline = null;
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.pendingMessages.length = 0;
    this.host.forget(this);
    this.changed();
  }

  /** Moves unread data to the app (unless paused) and sends a credit update when Linux would. */
  consume(): void {
    if (this.paused || this.unread.length === 0) return;
    // Taken first: a callback below may pause or resume reading, which must not see them again.
    const chunks = this.unread.splice(0);
    const flags = this.unreadFlags.splice(0);
    const bytes = concat(chunks);
    this.rxBytes -= bytes.length;
    this.fwdCnt = (this.fwdCnt + bytes.length) >>> 0;
    if (this.host.keepReceived) {
      this.readChunks.push(bytes);
      this.readCache = null;
    }
    // virtio_transport_stream_do_dequeue: update when the free space the guest sees drops below
    // 64 KiB; Linux >= 6.8 also when the read emptied the queue (rx_bytes < SO_RCVLOWAT = 1).
    const fwdCntDelta = (this.fwdCnt - this.lastFwdCnt) >>> 0;
    const freeSpace = this.bufAlloc - fwdCntDelta;
    const drained = this.host.creditUpdateOnDrain && this.rxBytes === 0;
    if (fwdCntDelta !== 0 && (freeSpace < VIRTIO_VSOCK_MAX_PKT_BUF_SIZE || drained) && this.state === "connected" && !this.closing) {
      this.creditUpdatesSent++;
      this.host.sendPacket(this, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, false);
    }
    if (this.seqpacket) this.collectMessages(chunks, flags);
    for (const callback of this.dataCallbacks) callback(bytes, this);
  }

  /** Cuts the unread packets into messages at each EOM (what the app's recvmsg calls would see). */
  private collectMessages(chunks: Uint8Array[], flags: number[]): void {
    chunks.forEach((bytes, i) => {
      this.partialMessage.push(bytes);
      if (!(flags[i] & VIRTIO_VSOCK_SEQ_EOM)) return;
      const message = { bytes: concat(this.partialMessage), eor: (flags[i] & VIRTIO_VSOCK_SEQ_EOR) !== 0 };
      this.partialMessage.length = 0;
      if (this.host.keepReceived) this.messages.push(message);
      for (const callback of this.messageCallbacks) callback(message, this);
    });
  }

  receiveData(payload: Uint8Array, flags = 0): void {
    if (this.closing) return; // the app is gone; nobody reads
    if (this.rxBytes + payload.length > this.bufAlloc) {
      this.host.link.violation(
        `host ${this.localPort}<-guest ${this.peerPort}: RW of ${payload.length} beyond host credit (rx_bytes ${this.rxBytes}, buf_alloc ${this.bufAlloc}): dropped`,
      );
      return;
    }
    this.rxBytes += payload.length;
    this.unread.push(payload);
    this.unreadFlags.push(flags);
    this.consume();
  }

  get hasUnread(): boolean {
    return this.rxBytes > 0;
  }

  /** Sends what credit allows, then any shutdown/close that waited for the data. */
  pump(): void {
    if (this.state !== "connected" || this.closing) return;
    while (this.pendingBytes > 0 && !(this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV)) {
      const message = this.pendingMessages[0];
      const n = Math.min(message?.left ?? this.pendingBytes, this.peerCredit(), VIRTIO_VSOCK_MAX_PKT_BUF_SIZE);
      if (n === 0) break;
      let flags = 0;
      if (message) {
        message.left -= n;
        if (message.left === 0) {
          flags = VIRTIO_VSOCK_SEQ_EOM | (message.eor ? VIRTIO_VSOCK_SEQ_EOR : 0);
          this.pendingMessages.shift();
        }
      }
      const payload = this.takePending(n);
      this.txCnt = (this.txCnt + n) >>> 0;
      this.bytesSent += n;
      this.host.sendPacket(this, VIRTIO_VSOCK_OP_RW, flags, false, payload);
    }
    if (this.pendingBytes > 0 && !(this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV)) return;
    const flags = this.shutdownAfterPending & ~this.localShutdown;
    if (flags && !this.closeAfterPending) {
      this.localShutdown |= flags;
      this.host.sendPacket(this, VIRTIO_VSOCK_OP_SHUTDOWN, flags, false);
    }
    if (this.closeAfterPending) this.closeNow();
  }

  /** virtio_transport_close: RST if the guest already shut down both ways, else SHUTDOWN and linger. */
  private closeNow(): void {
    this.closeAfterPending = false;
    if ((this.peerShutdown & SHUTDOWN_MASK) === SHUTDOWN_MASK) {
      this.host.sendPacket(this, VIRTIO_VSOCK_OP_RST, 0, false);
      this.finish("closed");
      return;
    }
    if ((this.localShutdown & SHUTDOWN_MASK) !== SHUTDOWN_MASK) {
      this.localShutdown = SHUTDOWN_MASK;
      this.host.sendPacket(this, VIRTIO_VSOCK_OP_SHUTDOWN, SHUTDOWN_MASK, false);
    }
    this.state = "closed";
    this.closing = true;
    this.deadline = this.host.link.now() + CLOSE_TIMEOUT_NS;
  }

  private takePending(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const head = this.pending[0];
      const k = Math.min(head.length, n - at);
      out.set(head.subarray(0, k), at);
      at += k;
      if (k === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(k);
    }
    this.pendingBytes -= n;
    return out;
  }
}

export class HostListener {
  readonly queue: HostSocket[] = [];
  private readonly callbacks: ((socket: HostSocket) => void)[] = [];
  /** Every connection this listener ever accepted, in order. */
  readonly accepted: HostSocket[] = [];

  constructor(
    private readonly host: SimHost,
    readonly port: number,
    readonly backlog: number,
    readonly type: number = VIRTIO_VSOCK_TYPE_STREAM,
  ) {}

  accept(): HostSocket | null {
    return this.queue.shift() ?? null;
  }

  onAccept(callback: (socket: HostSocket) => void): void {
    this.callbacks.push(callback);
  }

  /** Stops listening; connections not yet accepted are reset, like Linux. */
  close(): void {
    this.host.unlisten(this);
    for (const s of this.queue.splice(0)) s.reset();
  }

  arrived(socket: HostSocket): void {
    this.accepted.push(socket);
    if (this.callbacks.length > 0) {
      for (const callback of this.callbacks) callback(socket);
    } else {
      this.queue.push(socket);
    }
  }
}

export interface SimHostOptions {
  bufAlloc?: number;
  /** Linux >= 6.8 behaviour: also send CREDIT_UPDATE whenever a read empties the receive queue. */
  creditUpdateOnDrain?: boolean;
  /** Linux with "vsock/virtio: cap TX credit to local buffer size" (January 2026; stable kernels
   * carry it, the outer VM's Debian 6.1.0-56 among them: docs/conformance.md): a socket keeps at most min(guest's buf_alloc, its own bufAlloc) in flight. */
  capTxCredit?: boolean;
  /** false: the sockets keep nothing of what was read (`received` stays empty; onData still sees it). */
  keepReceived?: boolean;
  /** Sockets start as if this many bytes had gone each way (tests of the 4 GiB counter wrap). */
  counterStart?: bigint;
}

/** The firmware's receive accounting for one connection (unit build test hook), u32 counters as numbers. */
export interface GuestRxAccounting {
  /** RW payload bytes that reached the connection, in total (includes the counter start). */
  arrived: number;
  /** Bytes the application consumed (fwd_cnt, wraps at 2^32). */
  fwdCnt: number;
  buffered: number;
  /** Bytes refused as beyond the credit the firmware granted. */
  dropped: number;
}

export class SimHost {
  readonly bufAlloc: number;
  readonly creditUpdateOnDrain: boolean;
  readonly capTxCredit: boolean;
  readonly keepReceived: boolean;
  counterStart: bigint;
  /**
   * The firmware's receive accounting for a socket's tuple (null: no connection there). Set by the
   * machine when the wasm has the unit build's hooks; then every tick checks credit integrity.
   */
  guestAccounting: ((socket: HostSocket) => GuestRxAccounting | null) | null = null;
  /** Just GuestRxAccounting.arrived (the cheap first look). */
  guestArrived: ((socket: HostSocket) => number | null) | null = null;
  /** A REQUEST to a port without a listener: a listener made on demand (vhost-user: `<uds-path>_<port>`), or null for RST. */
  listenerFor: ((port: number, type: number) => HostListener | null) | null = null;
  private readonly connections = new Map<string, HostSocket>();
  private readonly listeners = new Map<number, HostListener>();
  private nextPort = FIRST_EPHEMERAL_PORT;
  /** RSTs sent to tuples the host did not know (vhost's virtio_transport_reset_no_sock). */
  resetsToUnknown = 0;
  /** Packets whose type was not their socket's or listener's (each answered with an RST). */
  typeMismatches = 0;

  constructor(
    readonly link: GuestLink,
    options: SimHostOptions = {},
  ) {
    this.bufAlloc = options.bufAlloc ?? 262144;
    this.creditUpdateOnDrain = options.creditUpdateOnDrain ?? false;
    this.capTxCredit = options.capTxCredit ?? false;
    this.keepReceived = options.keepReceived ?? true;
    this.counterStart = options.counterStart ?? 0n;
  }

  private static key(localPort: number, peerPort: number): string {
    return `${localPort}:${peerPort}`;
  }

  /** Live connections (connecting, connected, or closed and lingering). */
  sockets(): HostSocket[] {
    return [...this.connections.values()];
  }

  listen(port: number, backlog = 128, type = VIRTIO_VSOCK_TYPE_STREAM): HostListener {
    if (this.listeners.has(port)) throw new Error(`host port ${port} already has a listener`);
    const listener = new HostListener(this, port, backlog, type);
    this.listeners.set(port, listener);
    return listener;
  }

  unlisten(listener: HostListener): void {
    if (this.listeners.get(listener.port) === listener) this.listeners.delete(listener.port);
  }

  /** Host -> guest connection: sends REQUEST; the socket is "connecting" until RESPONSE or RST. */
  connect(port: number, hostPort?: number, type = VIRTIO_VSOCK_TYPE_STREAM): HostSocket {
    let local = hostPort ?? this.nextPort++;
    while (hostPort === undefined && this.connections.has(SimHost.key(local, port))) local = this.nextPort++;
    const key = SimHost.key(local, port);
    if (this.connections.has(key)) throw new Error(`host tuple ${key} in use`);
    const socket = new HostSocket(this, local, port, "connecting", type);
    if (type === VIRTIO_VSOCK_TYPE_SEQPACKET && this.link.seqpacketAllowed && !this.link.seqpacketAllowed()) {
      // vhost's seqpacket_allow: no SEQPACKET toward a guest that did not negotiate it, nothing sent.
      socket.finish("closed", "ESOCKTNOSUPPORT");
      return socket;
    }
    this.connections.set(key, socket);
    socket.deadline = this.link.now() + CONNECT_TIMEOUT_NS;
    this.sendPacket(socket, VIRTIO_VSOCK_OP_REQUEST, 0, false);
    return socket;
  }

  forget(socket: HostSocket): void {
    const key = SimHost.key(socket.localPort, socket.peerPort);
    if (this.connections.get(key) === socket) this.connections.delete(key);
  }

  /** Builds a packet for a connection, stamping the credit fields as Linux does at creation. */
  sendPacket(socket: HostSocket, op: number, flags: number, reply: boolean, payload: Uint8Array = new Uint8Array(0)): void {
    socket.lastFwdCnt = socket.fwdCnt;
    this.link.sendToGuest(
      {
        srcCid: VSOCK_HOST_CID,
        dstCid: this.link.guestCid(),
        srcPort: socket.localPort,
        dstPort: socket.peerPort,
        len: payload.length,
        type: socket.type,
        op,
        flags,
        bufAlloc: socket.bufAlloc,
        fwdCnt: socket.fwdCnt,
      },
      payload,
      reply,
    );
  }

  /** RST for a packet that matched no socket (never in answer to an RST). */
  private resetNoSocket(h: VsockHeader): void {
    if (h.op === VIRTIO_VSOCK_OP_RST) return;
    this.resetsToUnknown++;
    this.link.sendToGuest(
      {
        srcCid: VSOCK_HOST_CID,
        dstCid: h.srcCid,
        srcPort: h.dstPort,
        dstPort: h.srcPort,
        len: 0,
        type: h.type,
        op: VIRTIO_VSOCK_OP_RST,
        flags: 0,
        bufAlloc: 0,
        fwdCnt: 0,
      },
      new Uint8Array(0),
      true,
    );
  }

  /** A packet from the guest that passed the device's checks (cids, length). */
  receive(h: VsockHeader, payload: Uint8Array): void {
    if (h.type !== VIRTIO_VSOCK_TYPE_STREAM && h.type !== VIRTIO_VSOCK_TYPE_SEQPACKET) {
      this.resetNoSocket(h);
      return;
    }
    const socket = this.connections.get(SimHost.key(h.dstPort, h.srcPort));
    if (socket && socket.type !== h.type) {
      this.typeMismatches++;
      this.resetNoSocket(h); // Linux: RST, and the packet is dropped; its socket stays as it was
      return;
    }
    if (!socket) {
      const listener =
        this.listeners.get(h.dstPort) ?? (h.op === VIRTIO_VSOCK_OP_REQUEST ? this.listenerFor?.(h.dstPort, h.type) : undefined);
      if (listener && listener.type !== h.type) this.typeMismatches++;
      if (listener && listener.type === h.type && h.op === VIRTIO_VSOCK_OP_REQUEST && listener.queue.length < listener.backlog) {
        this.acceptRequest(listener, h);
      } else {
        this.resetNoSocket(h);
      }
      return;
    }
    // virtio_transport_space_update: every packet carries the sender's credit.
    socket.peerBufAlloc = h.bufAlloc;
    socket.peerFwdCnt = h.fwdCnt;
    if (socket.state === "connecting") this.receiveConnecting(socket, h);
    else this.receiveConnected(socket, h, payload);
    if (socket.state === "connected") socket.pump();
    socket.changed();
  }

  private acceptRequest(listener: HostListener, h: VsockHeader): void {
    const socket = new HostSocket(this, h.dstPort, h.srcPort, "connected", listener.type);
    socket.peerBufAlloc = h.bufAlloc;
    socket.peerFwdCnt = h.fwdCnt;
    this.connections.set(SimHost.key(h.dstPort, h.srcPort), socket);
    this.sendPacket(socket, VIRTIO_VSOCK_OP_RESPONSE, 0, true);
    listener.arrived(socket);
  }

  private receiveConnecting(socket: HostSocket, h: VsockHeader): void {
    if (h.op === VIRTIO_VSOCK_OP_RESPONSE) {
      socket.state = "connected";
      socket.deadline = null;
    } else if (h.op === VIRTIO_VSOCK_OP_RST) {
      socket.finish("reset", "ECONNRESET");
    } else {
      this.link.violation(`protocol: ${describeHeader(h)} on a connecting host socket`);
      this.sendPacket(socket, VIRTIO_VSOCK_OP_RST, 0, true);
      socket.finish("closed", "EPROTO");
    }
  }

  private receiveConnected(socket: HostSocket, h: VsockHeader, payload: Uint8Array): void {
    switch (h.op) {
      case VIRTIO_VSOCK_OP_RW:
        socket.receiveData(payload, h.flags);
        return;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        return; // the space update above is all it carries
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        if (!socket.closing) this.sendPacket(socket, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, false);
        return;
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        socket.peerShutdown |= h.flags & SHUTDOWN_MASK;
        if (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND) socket.eof = true;
        // Both directions shut and nothing left to read: Linux answers with RST and is done.
        if ((socket.peerShutdown & SHUTDOWN_MASK) === SHUTDOWN_MASK && !socket.hasUnread) {
          this.sendPacket(socket, VIRTIO_VSOCK_OP_RST, 0, true);
          socket.eof = true;
          socket.finish("closed");
        }
        return;
      case VIRTIO_VSOCK_OP_RST: {
        socket.eof = true;
        const orderly = socket.closing || (socket.peerShutdown & SHUTDOWN_MASK) === SHUTDOWN_MASK;
        socket.finish(orderly ? "closed" : "reset", orderly ? null : "ECONNRESET");
        return;
      }
      default:
        this.link.violation(`protocol: ${describeHeader(h)} on a connected host socket`);
    }
  }

  /**
   * Credit integrity (issue 19 "No hole, no hang"): this host respects the guest's credit, so every
   * byte it sent must be delivered to the guest's application or still buffered in the firmware.
   * For each connection, from the firmware's own accounting: arrived = consumed (fwd_cnt) +
   * buffered (u32 wrap), nothing refused as beyond credit, and nothing arrived that the host did
   * not send. A failure is a violation naming the connection and the byte counts (once per
   * connection). Cheap: the accounting can only go wrong when bytes arrive, so a connection is
   * looked at only while bytes are in transit, and checked in full only when its arrivals moved.
   */
  checkCreditIntegrity(): void {
    if (!this.guestAccounting || !this.guestArrived) return;
    for (const socket of this.connections.values()) {
      if (socket.integrityReported || socket.integrityArrived === socket.bytesSent) continue;
      const arrived = this.guestArrived(socket);
      if (arrived === null || arrived === socket.integrityArrived) continue;
      const guest = this.guestAccounting(socket);
      if (!guest) continue;
      socket.integrityArrived = guest.arrived;
      const vanished = (guest.arrived - guest.fwdCnt - guest.buffered - guest.dropped) % 2 ** 32;
      if (vanished === 0 && guest.dropped === 0 && guest.arrived <= socket.bytesSent) continue;
      socket.integrityReported = true;
      this.link.violation(
        `credit integrity: connection host ${socket.localPort}<-guest ${socket.peerPort}: the host sent ${socket.bytesSent} bytes, ` +
          `the firmware got ${guest.arrived}: the app consumed fwd_cnt ${guest.fwdCnt}, ${guest.buffered} buffered, ` +
          `${guest.dropped} dropped as beyond credit, ${vanished} vanished`,
      );
    }
  }

  /** Timers: connect timeout (no RST, like Linux) and the close linger (RST when it runs out). */
  tick(): void {
    this.checkCreditIntegrity();
    const now = this.link.now();
    for (const socket of this.sockets()) {
      if (socket.deadline === null || now < socket.deadline) continue;
      if (socket.state === "connecting") socket.finish("closed", "ETIMEDOUT");
      else if (socket.closing) {
        this.sendPacket(socket, VIRTIO_VSOCK_OP_RST, 0, false);
        socket.finish("closed");
      }
    }
  }

  /** TRANSPORT_RESET: every connection is gone (listeners stay). */
  resetAll(): void {
    for (const socket of this.sockets()) {
      socket.eof = true;
      socket.finish("reset", "ECONNRESET");
    }
  }
}
