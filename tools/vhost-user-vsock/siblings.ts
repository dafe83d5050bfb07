// Guest-to-guest routing: a packet a guest sends to a CID other than 2 goes, header untouched,
// into the rx ring of the VM with that CID when both share a group (credit and connection state
// are the two guests' business). Anything else is answered with an RST from the unreachable
// address, so the sender's connect fails at once instead of timing out.
import { VsockPacket } from "../vsock-model/vsock-packet";
import { VIRTIO_VSOCK_OP_RST } from "../vsock-model/vsock-packet";
import { log } from "./log";
import { VsockVm } from "./vm";

export class SiblingRouter {
  routed = 0;
  refused = 0;

  constructor(private readonly vms: VsockVm[]) {
    for (const vm of vms) vm.device.routeToCid = (packet) => this.route(vm, packet);
  }

  /** The VM `from` may reach at `cid`, or null. */
  sibling(from: VsockVm, cid: bigint): VsockVm | null {
    for (const vm of this.vms) {
      if (vm === from || vm.guestCid !== cid) continue;
      if (vm.config.groups.some((g) => from.config.groups.includes(g))) return vm;
    }
    return null;
  }

  private route(from: VsockVm, packet: VsockPacket): boolean {
    const target = this.sibling(from, packet.header.dstCid);
    if (target && target.device.started) {
      this.routed++;
      target.device.deliverToGuest(packet.header, packet.payload);
      return true;
    }
    this.refused++;
    log("debug", "siblings", target ? "sibling not running: RST" : "no sibling with that cid in a shared group: RST", {
      from: from.guestCid,
      to: packet.header.dstCid,
      port: packet.header.dstPort,
    });
    const h = packet.header;
    if (h.op !== VIRTIO_VSOCK_OP_RST) {
      from.device.deliverToGuest(
        { ...h, srcCid: h.dstCid, dstCid: h.srcCid, srcPort: h.dstPort, dstPort: h.srcPort, op: VIRTIO_VSOCK_OP_RST, len: 0, flags: 0, bufAlloc: 0, fwdCnt: 0 },
        new Uint8Array(0),
        true,
      );
    }
    return true;
  }
}
