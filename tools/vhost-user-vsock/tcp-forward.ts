// The TCP forward: a host TCP port to a guest vsock port, so that a host program with no vsock
// support at all (Debian's iperf3, a browser, nc) reaches a guest service:
//   --forward-tcp [ADDR:]PORT=[CID:]GUESTPORT     e.g. --forward-tcp 127.0.0.1:5201=5201
// ADDR defaults to 127.0.0.1 (loopback only unless the user names another address); CID may be
// left out when the backend serves one VM. Each accepted TCP connection becomes a host-initiated
// vsock connection to the guest port (the same HostSocket as the hybrid protocol's CONNECT), and
// the two are piped (uds-bridge.ts's Pipe) faithfully: bytes both ways with the guest's credit as
// back-pressure, half-close (TCP FIN <-> vsock SHUTDOWN SEND), and reset (TCP RST <-> vsock RST).
// A guest that refuses (RST) or never answers the REQUEST resets the TCP connection, as a closed
// TCP port would.
import { createServer, Server, Socket } from "node:net";
import { log } from "./log";
import { Pipe } from "./uds-bridge";
import type { VsockVm } from "./vm";

export interface TcpForwardSpec {
  address: string;
  /** 0: any free port (tests); `TcpForward.port` tells which. */
  port: number;
  guestPort: number;
  /** The VM's CID; undefined: the backend's only VM. */
  guestCid?: number;
}

const SPEC = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(\d{1,5})=(?:(\d{1,10}):)?(\d{1,10})$/;

export function parseForwardSpec(text: string): TcpForwardSpec {
  const match = SPEC.exec(text);
  if (!match) throw new Error(`--forward-tcp ${text}: expected [ADDR:]PORT=[CID:]GUESTPORT, e.g. 127.0.0.1:5201=5201`);
  const port = Number(match[2]);
  const guestPort = Number(match[4]);
  if (port > 65535) throw new Error(`--forward-tcp ${text}: TCP port ${port} > 65535`);
  if (guestPort > 0xffffffff) throw new Error(`--forward-tcp ${text}: guest port ${guestPort} > 2^32-1`);
  const address = match[1] ? match[1].replace(/^\[|\]$/g, "") : "127.0.0.1";
  const spec: TcpForwardSpec = { address, port, guestPort };
  if (match[3] !== undefined) spec.guestCid = Number(match[3]);
  return spec;
}

export class TcpForward {
  private server: Server | null = null;
  /** Connections forwarded since the start, and those still open. */
  accepted = 0;
  refused = 0;
  readonly open = new Set<Socket>();

  constructor(
    readonly spec: TcpForwardSpec,
    readonly vm: VsockVm,
  ) {}

  /** The TCP port listened on (the given one, or the one the system chose for 0). */
  get port(): number {
    const address = this.server?.address();
    return address && typeof address === "object" ? address.port : this.spec.port;
  }

  start(): Promise<void> {
    // pauseOnConnect: nothing is read before the guest accepted, so early bytes and an early FIN
    // wait in the kernel and then follow the connection in order.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (tcp) => this.connect(tcp));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.spec.port, this.spec.address, () => {
        server.off("error", reject);
        log("info", "forward", "listening", { tcp: `${this.spec.address}:${this.port}`, guest: `${this.vm.config.guestCid}:${this.spec.guestPort}` });
        resolve();
      });
    });
  }

  stop(): void {
    this.server?.close();
    this.server = null;
    for (const tcp of [...this.open]) tcp.destroy();
  }

  private connect(tcp: Socket): void {
    this.accepted++;
    this.open.add(tcp);
    tcp.once("close", () => this.open.delete(tcp));
    tcp.on("error", () => {}); // the pipe (or the close below) handles it
    tcp.setNoDelay(true); // iperf3's control bytes, echo round trips: no Nagle delay on the host side
    const vsock = this.vm.device.host.connect(this.spec.guestPort);
    let answered = false;
    vsock.onChange(() => {
      if (answered) return;
      if (vsock.state === "connected") {
        answered = true;
        new Pipe(vsock, tcp, this.vm.bridge, false, true);
        tcp.resume();
      } else if (vsock.state === "closed" || vsock.state === "reset") {
        answered = true;
        this.refused++;
        log("debug", "forward", "guest refused", { port: this.spec.guestPort, error: vsock.error ?? "closed" });
        tcp.resetAndDestroy(); // like a TCP port nobody listens on
      }
    });
    tcp.once("close", () => {
      if (!answered) vsock.close(); // the TCP client gave up before the guest answered
    });
  }
}
