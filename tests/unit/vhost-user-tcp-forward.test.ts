// The backend's TCP forward (--forward-tcp, tools/vhost-user-vsock/tcp-forward.ts) against a fake
// QEMU whose tiny driver plays the guest: each TCP connection is a vsock connection to the guest
// port; bytes, half-close (FIN <-> SHUTDOWN) and reset (RST <-> RST) pass through both ways;
// a guest that refuses resets the TCP connection; many connections at once.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VsockPacket,
} from "../../tools/vsock-model/vsock-packet";
import { VsockBackend } from "../../tools/vhost-user-vsock/backend";
import { setLogSink } from "../../tools/vhost-user-vsock/log";
import { parseArguments } from "../../tools/vhost-user-vsock/options";
import { parseForwardSpec } from "../../tools/vhost-user-vsock/tcp-forward";
import { FakeFrontEnd, waitFor } from "../vhost-user/fake-front-end";
import { addonTest } from "../vhost-user/needs-addon";

const CID = 33;
const GUEST_PORT = 5201;
let dir = "";
before(() => {
  setLogSink(() => {});
  dir = mkdtempSync(join(tmpdir(), "vhost-user-forward-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("--forward-tcp: [ADDR:]PORT=[CID:]GUESTPORT, loopback by default, checked against the VMs", () => {
  assert.deepEqual(parseForwardSpec("5201=5201"), { address: "127.0.0.1", port: 5201, guestPort: 5201 });
  assert.deepEqual(parseForwardSpec("127.0.0.1:15201=5201"), { address: "127.0.0.1", port: 15201, guestPort: 5201 });
  assert.deepEqual(parseForwardSpec("0.0.0.0:80=34:8080"), { address: "0.0.0.0", port: 80, guestPort: 8080, guestCid: 34 });
  assert.deepEqual(parseForwardSpec("[::1]:5201=5201"), { address: "::1", port: 5201, guestPort: 5201 });
  for (const bad of ["5201", "x:5201=5201", "70000=1", "5201=", "5201=5201=1", "5201=99999999999"]) assert.throws(() => parseForwardSpec(bad), undefined, bad);
  const one = parseArguments(["--guest-cid", "33", "--socket", "/tmp/a.sock", "--uds-path", "/tmp/a.vsock", "--forward-tcp", "5201=5201", "--forward-tcp=127.0.0.1:1234=33:1234"]);
  assert.equal(one.forwards.length, 2);
  assert.throws(() => parseArguments(["--guest-cid", "33", "--socket", "s", "--uds-path", "u", "--forward-tcp", "1=34:1"]), /no VM with cid 34/);
  assert.throws(
    () => parseArguments(["--vm", "guest-cid=3,socket=s,uds-path=u", "--vm", "guest-cid=4,socket=t,uds-path=v", "--forward-tcp", "1=1"]),
    /name the CID/,
  );
});

/** A backend with a forward from an ephemeral loopback port, and a fake guest with running rings. */
async function rig(name: string) {
  const config = { guestCid: CID, socket: join(dir, `${name}.sock`), udsPath: join(dir, `${name}.vsock`), groups: ["default"] };
  const backend = new VsockBackend([config], [], [{ address: "127.0.0.1", port: 0, guestPort: GUEST_PORT }]);
  await backend.start();
  const guest = new FakeFrontEnd(config.socket);
  await guest.handshake();
  await guest.startRings(256, 32);
  await waitFor(() => backend.vms[0].device.started, "rings running");
  const forward = backend.forwards[0];
  assert.equal(forward.spec.address, "127.0.0.1");
  const stop = () => {
    guest.close();
    backend.stop();
  };
  return { backend, guest, forward, stop };
}

function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** What a TCP socket saw: data, its FIN ('end'), and how it closed. */
function watchTcp(s: Socket) {
  const seen = { data: Buffer.alloc(0), ended: false, closed: false, error: "" };
  s.on("data", (d: Buffer) => (seen.data = Buffer.concat([seen.data, d])));
  s.on("end", () => (seen.ended = true));
  s.on("error", (e: NodeJS.ErrnoException) => (seen.error = e.code ?? String(e)));
  s.on("close", () => (seen.closed = true));
  return seen;
}

/** The guest's side of the connections: packets by host port. */
class GuestSide {
  readonly byPort = new Map<number, VsockPacket[]>();
  constructor(private readonly guest: FakeFrontEnd) {}
  pump(): void {
    for (const p of this.guest.receive()) {
      const list = this.byPort.get(p.header.srcPort) ?? [];
      list.push(p);
      this.byPort.set(p.header.srcPort, list);
    }
  }
  async until(what: string, predicate: () => boolean): Promise<void> {
    await waitFor(() => {
      this.pump();
      return predicate();
    }, what);
  }
  packets(port: number, op?: number): VsockPacket[] {
    return (this.byPort.get(port) ?? []).filter((p) => op === undefined || p.header.op === op);
  }
  data(port: number): string {
    return Buffer.concat(this.packets(port, VIRTIO_VSOCK_OP_RW).map((p) => Buffer.from(p.payload))).toString();
  }
  requests(): number[] {
    return [...this.byPort.entries()].filter(([, ps]) => ps.some((p) => p.header.op === VIRTIO_VSOCK_OP_REQUEST)).map(([port]) => port);
  }
  send(port: number, op: number, payload = "", flags = 0): void {
    this.guest.sendPacket({ op, srcPort: GUEST_PORT, dstPort: port, flags }, Buffer.from(payload));
  }
}

addonTest("bytes both ways, then half-close each way: TCP FIN -> vsock SHUTDOWN(SEND), vsock SHUTDOWN(SEND) -> TCP FIN", async () => {
  const { guest, forward, stop } = await rig("half");
  const side = new GuestSide(guest);
  const tcp = await tcpConnect(forward.port);
  const seen = watchTcp(tcp);
  tcp.write("cookie-before-the-guest-answers");
  await side.until("REQUEST", () => side.requests().length === 1);
  const port = side.requests()[0];
  assert.equal(side.packets(port)[0].header.dstPort, GUEST_PORT);
  assert.equal(side.data(port), "", "nothing before the guest accepted");
  side.send(port, VIRTIO_VSOCK_OP_RESPONSE);
  await side.until("early bytes", () => side.data(port) === "cookie-before-the-guest-answers");
  side.send(port, VIRTIO_VSOCK_OP_RW, "from the guest");
  await waitFor(() => seen.data.toString() === "from the guest", "guest bytes over TCP");
  // The TCP client half-closes: the guest gets SHUTDOWN with SEND only, and can still send.
  tcp.end();
  await side.until("SHUTDOWN(SEND)", () => side.packets(port, VIRTIO_VSOCK_OP_SHUTDOWN).length === 1);
  assert.equal(side.packets(port, VIRTIO_VSOCK_OP_SHUTDOWN)[0].header.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
  side.send(port, VIRTIO_VSOCK_OP_RW, " and more after the client's FIN");
  await waitFor(() => seen.data.toString() === "from the guest and more after the client's FIN", "bytes after FIN");
  assert.equal(seen.ended, false);
  // The guest half-closes too: TCP FIN, then the connection ends cleanly (no reset).
  side.send(port, VIRTIO_VSOCK_OP_SHUTDOWN, "", VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
  await waitFor(() => seen.ended && seen.closed, "TCP FIN and close");
  assert.equal(seen.error, "");
  await side.until("the host's RST closing the vsock side", () => side.packets(port, VIRTIO_VSOCK_OP_RST).length === 1);
  stop();
});

addonTest("reset both ways: vsock RST -> TCP RST (ECONNRESET), TCP RST -> vsock RST", async () => {
  const { guest, forward, stop } = await rig("reset");
  const side = new GuestSide(guest);
  const a = await tcpConnect(forward.port);
  const seenA = watchTcp(a);
  await side.until("REQUEST a", () => side.requests().length === 1);
  const portA = side.requests()[0];
  side.send(portA, VIRTIO_VSOCK_OP_RESPONSE);
  a.write("x");
  await side.until("a's byte", () => side.data(portA) === "x");
  side.send(portA, VIRTIO_VSOCK_OP_RST);
  await waitFor(() => seenA.closed, "a closed");
  assert.equal(seenA.error, "ECONNRESET", "the guest's RST is a TCP reset");
  assert.equal(seenA.ended, false, "not a FIN");

  const b = await tcpConnect(forward.port);
  watchTcp(b);
  await side.until("REQUEST b", () => side.requests().length === 2);
  const portB = side.requests().find((p) => p !== portA)!;
  side.send(portB, VIRTIO_VSOCK_OP_RESPONSE);
  b.write("y");
  await side.until("b's byte", () => side.data(portB) === "y");
  b.resetAndDestroy();
  await side.until("RST for b", () => side.packets(portB, VIRTIO_VSOCK_OP_RST).length === 1);
  assert.equal(side.packets(portB, VIRTIO_VSOCK_OP_SHUTDOWN).length, 0, "a reset, not a close");
  stop();
});

addonTest("a guest that refuses (RST to the REQUEST) resets the TCP connection", async () => {
  const { guest, forward, stop } = await rig("refuse");
  const side = new GuestSide(guest);
  const tcp = await tcpConnect(forward.port);
  const seen = watchTcp(tcp);
  await side.until("REQUEST", () => side.requests().length === 1);
  side.send(side.requests()[0], VIRTIO_VSOCK_OP_RST);
  await waitFor(() => seen.closed, "closed");
  assert.equal(seen.error, "ECONNRESET");
  assert.equal(forward.refused, 1);
  stop();
});

addonTest("many connections at once: each TCP connection its own vsock connection, bytes never mixed", async () => {
  const { guest, forward, stop } = await rig("many");
  const side = new GuestSide(guest);
  const count = 24;
  const clients = await Promise.all(Array.from({ length: count }, () => tcpConnect(forward.port)));
  const seen = clients.map(watchTcp);
  await side.until(`${count} REQUESTs`, () => side.requests().length === count);
  const ports = side.requests();
  assert.equal(new Set(ports).size, count);
  for (const port of ports) side.send(port, VIRTIO_VSOCK_OP_RESPONSE);
  clients.forEach((c, i) => c.write(`client ${i};`));
  await side.until("every client's bytes", () => ports.every((p) => /^client \d+;$/.test(side.data(p))));
  // Each guest connection echoes what it got; every client must read back exactly its own.
  for (const port of ports) side.send(port, VIRTIO_VSOCK_OP_RW, `echo ${side.data(port)}`);
  await waitFor(() => seen.every((s, i) => s.data.toString() === `echo client ${i};`), "every echo at its own client");
  assert.equal(forward.open.size, count);
  for (const c of clients) c.end();
  for (const port of ports) side.send(port, VIRTIO_VSOCK_OP_SHUTDOWN, "", VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
  await waitFor(() => seen.every((s) => s.closed) && forward.open.size === 0, "all closed");
  assert.equal(forward.accepted, count);
  stop();
});
