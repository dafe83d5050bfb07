// The SEQPACKET way in for host programs. vhost-device-vsock defines none; this one stays close to
// its hybrid protocol, over AF_UNIX SOCK_SEQPACKET sockets, where one Unix message is one vsock
// message (docs/seqpacket.md#the-vhost-user-backend):
//   host-initiated: connect to <uds-path>.seqpacket, send the message "CONNECT <port>\n"; once the
//     guest accepts, the message "OK <host port>\n" comes back, then messages both ways. A refused
//     or timed-out connect just closes the Unix socket.
//   guest-initiated: a SEQPACKET connect to CID 2 port P goes to <uds-path>.seqpacket_<P> (an
//     AF_UNIX SOCK_SEQPACKET listener); RST when nothing listens there.
// Node's `net` has no SOCK_SEQPACKET, so the native addon makes the calls (recv/send of one message,
// never blocking, and a libuv poll on the fd). Empty messages are not carried: a Unix recv of 0
// bytes is EOF, and a vsock send of 0 bytes sends nothing.
import { HostListener, HostMessage, HostSocket, SHUT_WR } from "../vsock-model/host";
import { SimVsockDevice } from "../vsock-model/vsock-device";
import { VIRTIO_VSOCK_TYPE_SEQPACKET } from "../vsock-model/vsock-packet";
import { addon, EAGAIN, UNIX_SOCK_SEQPACKET, WATCH_READABLE, WATCH_WRITABLE } from "./addon";
import { MAX_CONNECT_LINE, removeStaleSocket, SEND_HIGH_WATER, SEND_LOW_WATER } from "./host-side-limits";
import { log } from "./log";

/** The largest vsock message (the firmware's and Linux's default buffer); one more byte shows a longer one. */
export const MAX_MESSAGE = 262144;
const EMSGSIZE = 90;
const EPIPE = 32;

const receiveBuffer = new Uint8Array(MAX_MESSAGE + 1);

/** One vsock SEQPACKET connection joined to one Unix SOCK_SEQPACKET socket. */
class SeqpacketPipe {
  private readonly watch: object;
  private readonly toUnix: Uint8Array[] = [];
  private readingUnix = true;
  private pausedForCredit = false;
  private pausedForUnix = false;
  private unixEnded = false;
  private done = false;

  constructor(
    readonly vsock: HostSocket,
    readonly fd: number,
    private readonly bridge: SeqpacketBridge,
  ) {
    bridge.pipes.add(this);
    if (bridge.creditWithheld) vsock.pauseReading(true);
    vsock.onMessage((message) => this.fromGuest(message));
    vsock.onChange(() => this.vsockChanged());
    this.watch = addon().watch(fd, (status, events) => this.ready(status, events), WATCH_READABLE);
  }

  private events(): number {
    return (this.readingUnix ? WATCH_READABLE : 0) | (this.toUnix.length > 0 ? WATCH_WRITABLE : 0);
  }

  private rewatch(): void {
    if (!this.done) addon().watchEvents(this.watch, this.events());
  }

  private ready(status: number, events: number): void {
    if (this.done) return;
    if (status < 0) return this.close("poll error");
    if (events & WATCH_WRITABLE) this.flush();
    if (events & WATCH_READABLE) this.fromUnix();
  }

  /** Unix messages to the guest, until none waits or the guest's credit is far behind. */
  private fromUnix(): void {
    while (!this.done && this.readingUnix) {
      if (this.vsock.pendingSendBytes > SEND_HIGH_WATER) {
        this.pausedForCredit = true;
        this.readingUnix = false;
        break;
      }
      const n = addon().recvMessage(this.fd, receiveBuffer);
      if (n === -EAGAIN) break;
      if (n < 0) return this.close(`recv errno ${-n}`);
      if (n === 0) {
        // The Unix peer shut its sending side (or closed): the guest reads EOF after the messages.
        this.readingUnix = false;
        this.unixEnded = true;
        if (this.vsock.state === "connected") this.vsock.shutdown(SHUT_WR);
        break;
      }
      if (n > MAX_MESSAGE) {
        this.bridge.dropped++;
        log("warn", "uds", "seqpacket: message over 256 KiB from the Unix side dropped", { bytes: n, port: this.vsock.peerPort });
        continue;
      }
      const r = this.vsock.sendMessage(receiveBuffer.slice(0, n));
      if (r === -EMSGSIZE) {
        this.bridge.dropped++;
        log("warn", "uds", "seqpacket: message larger than the guest's buffer dropped", { bytes: n, guest_buf_alloc: this.vsock.peerBufAlloc });
      } else if (r === -EPIPE) {
        return this.close("the guest reads no more");
      }
    }
    this.rewatch();
  }

  /** After the guest sent credit: resume reading the Unix side if it waited for it. */
  resumeIfCredit(): void {
    if (this.pausedForCredit && this.vsock.pendingSendBytes < SEND_LOW_WATER && !this.unixEnded) {
      this.pausedForCredit = false;
      this.readingUnix = true;
      this.fromUnix();
    }
  }

  private fromGuest(message: HostMessage): void {
    if (this.done) return;
    this.toUnix.push(message.bytes);
    this.flush();
  }

  /** Guest messages to the Unix peer; while it has no room, the guest is held back by credit. */
  private flush(): void {
    while (this.toUnix.length > 0) {
      const r = addon().sendMessage(this.fd, this.toUnix[0]);
      if (r === -EAGAIN) break;
      if (r < 0) return this.close(`send errno ${-r}`);
      this.toUnix.shift();
    }
    const full = this.toUnix.length > 0;
    if (full !== this.pausedForUnix) {
      this.pausedForUnix = full;
      if (!this.bridge.creditWithheld) this.vsock.pauseReading(full); // fwd_cnt stops: as a slow Linux reader
    }
    this.rewatch();
    if (!full) this.vsockChanged();
  }

  private vsockChanged(): void {
    if (this.done || (this.toUnix.length > 0 && this.vsock.state !== "reset")) return;
    if (this.vsock.eof) addon().shutdownFd(this.fd, SHUT_WR); // the guest will send no more
    if (this.vsock.state === "reset") this.close("reset by the guest");
    else if (this.vsock.state === "closed" && !this.vsock.closing) this.close("closed");
  }

  close(why: string): void {
    if (this.done) return;
    this.done = true;
    this.bridge.pipes.delete(this);
    addon().unwatch(this.watch);
    addon().close(this.fd);
    log("debug", "uds", "seqpacket pipe closed", { port: this.vsock.peerPort, why });
    if (this.vsock.state === "connected" || this.vsock.state === "connecting") this.vsock.closeDiscarding();
  }
}

export class SeqpacketBridge {
  readonly pipes = new Set<SeqpacketPipe>();
  creditWithheld = false;
  connectsFromHost = 0;
  connectsFromGuest = 0;
  /** Messages that could not be carried (over 256 KiB, or over the guest's buffer). */
  dropped = 0;
  private listenFd = -1;
  private listenWatch: object | null = null;
  readonly path: string;

  constructor(
    readonly udsPath: string,
    readonly device: SimVsockDevice,
  ) {
    this.path = `${udsPath}.seqpacket`;
  }

  start(): void {
    removeStaleSocket(this.path);
    const fd = addon().listenUnix(this.path, 64, UNIX_SOCK_SEQPACKET);
    if (fd < 0) throw new Error(`listen on ${this.path}: errno ${-fd}`);
    this.listenFd = fd;
    this.listenWatch = addon().watch(fd, () => this.accept());
  }

  stop(): void {
    if (this.listenWatch) addon().unwatch(this.listenWatch);
    if (this.listenFd >= 0) addon().close(this.listenFd);
    this.listenWatch = null;
    this.listenFd = -1;
    removeStaleSocket(this.path);
    for (const pipe of [...this.pipes]) pipe.close("backend stopping");
  }

  private accept(): void {
    for (;;) {
      const fd = addon().acceptUnix(this.listenFd);
      if (fd === -EAGAIN) return;
      if (fd < 0) {
        log("warn", "uds", "seqpacket accept failed", { errno: -fd });
        return;
      }
      this.handshake(fd);
    }
  }

  /** The client's first message: "CONNECT <port>\n". */
  private handshake(fd: number): void {
    const line = new Uint8Array(MAX_CONNECT_LINE + 1);
    const watch = addon().watch(fd, () => {
      const n = addon().recvMessage(fd, line);
      if (n === -EAGAIN) return;
      addon().unwatch(watch);
      const text = n > 0 && n <= MAX_CONNECT_LINE ? Buffer.from(line.subarray(0, n)).toString("latin1") : "";
      const match = /^CONNECT (\d{1,10})\r?\n?$/.exec(text);
      if (!match || Number(match[1]) > 0xffffffff) {
        if (n > 0) log("warn", "uds", "seqpacket: bad handshake message: closed", { message: JSON.stringify(text.slice(0, MAX_CONNECT_LINE)) });
        addon().close(fd);
        return;
      }
      this.connectToGuest(fd, Number(match[1]));
    });
  }

  private connectToGuest(fd: number, port: number): void {
    this.connectsFromHost++;
    const vsock = this.device.host.connect(port, undefined, VIRTIO_VSOCK_TYPE_SEQPACKET);
    let answered = false;
    vsock.onChange(() => {
      if (answered) return;
      if (vsock.state === "connected") {
        answered = true;
        const ok = new TextEncoder().encode(`OK ${vsock.localPort}\n`);
        if (addon().sendMessage(fd, ok) !== ok.length) {
          addon().close(fd);
          vsock.close();
          return;
        }
        new SeqpacketPipe(vsock, fd, this);
      } else if (vsock.state === "closed" || vsock.state === "reset") {
        answered = true; // refused (RST) or timed out: the client sees the socket close
        log("debug", "uds", "seqpacket connect refused", { port, error: vsock.error ?? "closed" });
        addon().close(fd);
      }
    });
  }

  /** A guest SEQPACKET connect to CID 2 port P: <uds-path>.seqpacket_<P>, or RST when nothing listens. */
  listenerFor(port: number): HostListener | null {
    const path = `${this.path}_${port}`;
    const fd = addon().connectUnix(path, UNIX_SOCK_SEQPACKET);
    if (fd < 0) {
      log("debug", "uds", "guest seqpacket connect: nothing listens", { path, errno: -fd });
      return null;
    }
    this.connectsFromGuest++;
    const listener = new HostListener(this.device.host, port, 1, VIRTIO_VSOCK_TYPE_SEQPACKET);
    listener.onAccept((vsock) => new SeqpacketPipe(vsock, fd, this));
    return listener;
  }

  afterGuestActivity(): void {
    for (const pipe of this.pipes) pipe.resumeIfCredit();
  }

  setCreditWithheld(withheld: boolean): void {
    this.creditWithheld = withheld;
    for (const pipe of this.pipes) pipe.vsock.pauseReading(withheld);
  }
}
