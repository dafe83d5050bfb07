// One guest served by the backend: its vhost-user socket (QEMU connects; after a disconnect the
// next connection takes over: guest reboot, QEMU reconnect), its device model (one per VM for
// the backend's lifetime, so host connections survive ring restarts as with vhost), and its
// Unix-socket host side.
import { SimVsockDevice } from "../vsock-model/vsock-device";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../vsock-model/virtio-device";
import { addon, check, EAGAIN } from "./addon";
import { log } from "./log";
import { VhostUserSession } from "./session";
import { removeStaleSocket } from "./host-side-limits";
import { UdsBridge } from "./uds-bridge";

export interface VmConfig {
  guestCid: number;
  /** The vhost-user socket QEMU connects to. */
  socket: string;
  /** The host side's Unix socket (and the prefix of <uds-path>_<port> for guest connects). */
  udsPath: string;
  /** Sibling groups: VMs sharing one reach each other by CID. */
  groups: string[];
  /** false: VIRTIO_VSOCK_F_SEQPACKET is not offered (a STREAM-only device, as vhost-device-vsock). */
  seqpacket?: boolean;
}

const HOST_TICK_MS = 100;

export class VsockVm {
  readonly device: SimVsockDevice;
  readonly bridge: UdsBridge;
  session: VhostUserSession | null = null;
  /** Every session this VM had (tests check reconnects), newest last. */
  readonly sessions: VhostUserSession[] = [];
  private listenFd = -1;
  private listenWatch: object | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly config: VmConfig) {
    this.device = new SimVsockDevice({
      guestCid: config.guestCid,
      recordPackets: false,
      now: () => process.hrtime.bigint(),
      features: config.seqpacket === false ? VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX : undefined,
    });
    this.device.onViolation = (message) => log("warn", "device", message, { cid: config.guestCid });
    this.bridge = new UdsBridge(config.udsPath, this.device);
  }

  get guestCid(): bigint {
    return this.device.guestCid;
  }

  async start(): Promise<void> {
    await this.bridge.start();
    removeStaleSocket(this.config.socket);
    this.listenFd = check(`listen on ${this.config.socket}`, addon().listenUnix(this.config.socket, 4));
    this.listenWatch = addon().watch(this.listenFd, () => this.accept());
    this.timer = setInterval(() => this.device.host.tick(), HOST_TICK_MS);
    this.timer.unref();
    log("info", "backend", "listening", { cid: this.config.guestCid, socket: this.config.socket, uds: this.config.udsPath, groups: this.config.groups.join("+") });
  }

  private accept(): void {
    const fd = addon().acceptUnix(this.listenFd);
    if (fd === -EAGAIN) return;
    if (fd < 0) {
      log("warn", "backend", "accept failed", { errno: -fd });
      return;
    }
    if (this.session && !this.session.closed) {
      log("warn", "backend", "second front-end refused while one is connected", { cid: this.config.guestCid });
      addon().close(fd);
      return;
    }
    const session = new VhostUserSession(
      fd,
      this.device,
      (s) => {
        if (this.session === s) this.session = null;
      },
      () => this.bridge.afterGuestActivity(),
    );
    this.session = session;
    this.sessions.push(session);
    log("info", "backend", "front-end connected", { cid: this.config.guestCid, session: this.sessions.length });
    session.start();
  }

  /** Closes the session (as if the backend restarted), host connections and the sockets. */
  stop(): void {
    this.session?.close("backend stopping");
    if (this.listenWatch) addon().unwatch(this.listenWatch);
    this.listenWatch = null;
    if (this.listenFd >= 0) addon().close(this.listenFd);
    this.listenFd = -1;
    removeStaleSocket(this.config.socket);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.bridge.stop();
  }
}
