// The host side over Unix sockets, in vhost-device-vsock's hybrid protocol:
//   host-initiated: a client connects to <uds-path>, writes "CONNECT <port>\n"; once the guest
//     accepts, it reads "OK <host port>\n" and then the stream; a refused or timed-out connect
//     just closes the Unix socket.
//   guest-initiated: the guest connects to CID 2 port P; the backend connects to <uds-path>_<P>
//     (RST when nothing listens there) and pipes the two together.
// SEQPACKET connections go through <uds-path>.seqpacket instead (seqpacket-bridge.ts).
// Each vsock connection is a HostSocket of the shared device model (Linux-like credit, shutdown,
// RST); this file only moves bytes and end-of-stream between it and a net.Socket.
import { existsSync } from "node:fs";
import { createServer, Server, Socket } from "node:net";
import { HostListener, HostSocket, SHUT_WR } from "../vsock-model/host";
import { SimVsockDevice } from "../vsock-model/vsock-device";
import { VIRTIO_VSOCK_TYPE_SEQPACKET } from "../vsock-model/vsock-packet";
import { addon } from "./addon";
import { MAX_CONNECT_LINE, removeStaleSocket, SEND_HIGH_WATER, SEND_LOW_WATER } from "./host-side-limits";
import { log } from "./log";
import { SeqpacketBridge } from "./seqpacket-bridge";

/**
 * One vsock connection piped to one stream socket: a Unix socket here, a TCP connection for the
 * TCP forward (tcp-forward.ts), where `resets` carries a reset through both ways (TCP RST <->
 * vsock RST) instead of closing.
 */
export class Pipe {
  private pausedForCredit = false;
  private unixEnded = false;
  private done = false;
  private peerReset = false;

  constructor(
    readonly vsock: HostSocket,
    readonly unix: Socket,
    private readonly bridge: UdsBridge,
    /** The Unix peer already half-closed (its EOF came with the handshake, before this pipe). */
    unixEndedEarly = false,
    private readonly resets = false,
  ) {
    bridge.pipes.add(this);
    if (bridge.creditWithheld) vsock.pauseReading(true);
    vsock.onData((bytes) => {
      if (this.unix.destroyed) return;
      if (!this.unix.write(bytes) || this.bridge.creditWithheld) {
        this.vsock.pauseReading(true); // fwd_cnt stops: the guest runs out of credit, as with a slow Linux reader
        this.unix.once("drain", () => {
          if (!this.bridge.creditWithheld) this.vsock.pauseReading(false);
        });
      }
      if (this.vsock.unreadBytes === 0) this.vsockChanged(); // an EOF or close that waited for these bytes
    });
    vsock.onChange(() => this.vsockChanged());
    unix.on("data", (chunk: Buffer) => this.fromUnix(chunk));
    unix.on("end", () => {
      if (this.vsock.state === "connected") this.vsock.shutdown(SHUT_WR);
    });
    unix.on("close", () => this.unixClosed());
    unix.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET") this.peerReset = true; // 'close' follows
    });
    if (unixEndedEarly) vsock.shutdown(SHUT_WR);
  }

  fromUnix(chunk: Uint8Array): void {
    if (this.vsock.send(chunk) < 0) {
      this.unix.destroy(); // the guest shut its receive side or the connection is gone: EPIPE
      return;
    }
    if (this.vsock.pendingSendBytes > SEND_HIGH_WATER && !this.pausedForCredit) {
      this.pausedForCredit = true;
      this.unix.pause();
    }
  }

  /** After the guest sent credit (a tx kick): resume a Unix reader that waited for it. */
  resumeIfCredit(): void {
    if (this.pausedForCredit && this.vsock.pendingSendBytes < SEND_LOW_WATER) {
      this.pausedForCredit = false;
      this.unix.resume();
    }
  }

  private vsockChanged(): void {
    if (this.done) return;
    // Bytes the host side still holds (reading paused for credit or back-pressure) reach the Unix
    // peer before its EOF: the guest's SHUTDOWN or close can arrive while they wait.
    if (this.vsock.unreadBytes > 0 && this.vsock.state !== "reset") return;
    if (this.resets && this.vsock.state === "reset") {
      this.finish();
      this.unix.resetAndDestroy(); // a reset, not a FIN first
      return;
    }
    if (this.vsock.eof && !this.unixEnded) {
      this.unixEnded = true;
      this.unix.end(); // the guest will send no more: half-close toward the Unix peer
    }
    if (this.vsock.state === "reset") {
      this.finish();
      this.unix.destroy();
    } else if (this.vsock.state === "closed" && !this.vsock.closing) {
      this.finish();
      this.unixEnded = true;
      if (this.unix.writableFinished) this.unix.destroy();
      else this.unix.end(() => this.unix.destroy());
    }
  }

  private unixClosed(): void {
    if (this.done) return;
    this.finish();
    if (this.resets && this.peerReset) this.vsock.reset(); // the TCP peer reset: so does the vsock side
    else this.vsock.closeDiscarding(); // SHUTDOWN (unsent bytes dropped), then the guest's RST or the 8 s linger
  }

  private finish(): void {
    this.done = true;
    this.bridge.pipes.delete(this);
  }
}

export class UdsBridge {
  readonly pipes = new Set<Pipe>();
  creditWithheld = false;
  private server: Server | null = null;
  connectsFromHost = 0;
  connectsFromGuest = 0;
  /** The SEQPACKET way in: <uds-path>.seqpacket and <uds-path>.seqpacket_<port> (seqpacket-bridge.ts). */
  readonly seqpacket: SeqpacketBridge;

  constructor(
    readonly udsPath: string,
    readonly device: SimVsockDevice,
  ) {
    this.seqpacket = new SeqpacketBridge(udsPath, device);
    device.host.listenerFor = (port, type) => (type === VIRTIO_VSOCK_TYPE_SEQPACKET ? this.seqpacket.listenerFor(port) : this.listenerFor(port));
  }

  start(): Promise<void> {
    this.seqpacket.start();
    removeStaleSocket(this.udsPath);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => this.hostConnect(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.udsPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  stop(): void {
    this.seqpacket.stop();
    this.server?.close();
    this.server = null;
    removeStaleSocket(this.udsPath);
    for (const pipe of [...this.pipes]) pipe.unix.destroy();
  }

  /** A Unix client of <uds-path>: "CONNECT <port>\n", then the stream. */
  private hostConnect(client: Socket): void {
    let line = Buffer.alloc(0);
    let ended = false; // `printf 'CONNECT 1234\nhi\n' | ncat -U`: the EOF may come right behind the line
    client.on("error", () => {});
    client.once("end", () => (ended = true));
    const onData = (chunk: Buffer) => {
      line = Buffer.concat([line, chunk]);
      const end = line.indexOf(0x0a);
      if (end < 0) {
        if (line.length > MAX_CONNECT_LINE) client.destroy();
        return;
      }
      client.off("data", onData);
      client.pause();
      const match = /^CONNECT (\d{1,10})\r?$/.exec(line.subarray(0, end).toString("latin1"));
      if (!match || Number(match[1]) > 0xffffffff) {
        log("warn", "uds", "bad handshake line: closed", { line: JSON.stringify(line.subarray(0, end).toString("latin1")) });
        client.destroy();
        return;
      }
      this.connectToGuest(client, Number(match[1]), line.subarray(end + 1), () => ended);
    };
    client.on("data", onData);
  }

  private connectToGuest(client: Socket, port: number, early: Uint8Array, endedEarly: () => boolean): void {
    this.connectsFromHost++;
    const vsock = this.device.host.connect(port);
    if (early.length > 0) vsock.send(early); // bytes sent right behind the CONNECT line wait for the connection
    let answered = false;
    vsock.onChange(() => {
      if (answered) return;
      if (vsock.state === "connected") {
        answered = true;
        client.write(`OK ${vsock.localPort}\n`);
        new Pipe(vsock, client, this, endedEarly());
        client.resume();
      } else if (vsock.state === "closed" || vsock.state === "reset") {
        answered = true; // refused (RST) or timed out: the client just sees the socket close
        log("debug", "uds", "connect refused", { port, error: vsock.error ?? "closed" });
        client.destroy();
      }
    });
    client.once("close", () => {
      if (!answered) vsock.close();
    });
  }

  /** The guest connects to CID 2 port P: <uds-path>_<P>, or RST when nothing listens there. */
  private listenerFor(port: number): HostListener | null {
    const path = `${this.udsPath}_${port}`;
    if (!existsSync(path)) return null;
    const fd = addon().connectUnix(path);
    if (fd < 0) {
      log("debug", "uds", "guest connect: nothing listens", { path, errno: -fd });
      return null;
    }
    this.connectsFromGuest++;
    const listener = new HostListener(this.device.host, port, 1);
    listener.onAccept((vsock) => new Pipe(vsock, new Socket({ fd, readable: true, writable: true, allowHalfOpen: true }), this));
    return listener;
  }

  /** Called after the guest's tx ring ran: host senders paused for credit may go on. */
  afterGuestActivity(): void {
    for (const pipe of this.pipes) pipe.resumeIfCredit();
    this.seqpacket.afterGuestActivity();
  }

  /** Fault injection: stop (or restart) consuming guest data, so no credit goes back. */
  setCreditWithheld(withheld: boolean): void {
    this.creditWithheld = withheld;
    for (const pipe of this.pipes) pipe.vsock.pauseReading(withheld);
    this.seqpacket.setCreditWithheld(withheld);
  }
}
