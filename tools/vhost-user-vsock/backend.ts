// The whole backend: one VsockVm per guest, the sibling router between them, and fault
// injectors. main.ts runs it from the command line; tests create it in-process, so they can
// inject faults and read counters while QEMU runs.
import { FaultInjector, FaultRule } from "./faults";
import { SiblingRouter } from "./siblings";
import { TcpForward, TcpForwardSpec } from "./tcp-forward";
import { VmConfig, VsockVm } from "./vm";

export class VsockBackend {
  readonly vms: VsockVm[];
  readonly router: SiblingRouter;
  readonly faults: FaultInjector[];
  readonly forwards: TcpForward[];

  constructor(configs: VmConfig[], rules: FaultRule[] = [], forwards: TcpForwardSpec[] = []) {
    this.vms = configs.map((c) => new VsockVm(c));
    this.forwards = forwards.map((f) => new TcpForward(f, f.guestCid === undefined ? this.vms[0] : this.vm(f.guestCid)));
    this.router = new SiblingRouter(this.vms);
    this.faults = this.vms.map((vm) => new FaultInjector(vm));
    for (const f of this.faults) for (const rule of rules) f.add(rule);
  }

  async start(): Promise<void> {
    for (const vm of this.vms) await vm.start();
    for (const forward of this.forwards) await forward.start();
  }

  vm(cid: number): VsockVm {
    const vm = this.vms.find((v) => v.guestCid === BigInt(cid));
    if (!vm) throw new Error(`no VM with cid ${cid}`);
    return vm;
  }

  faultsFor(cid: number): FaultInjector {
    return this.faults[this.vms.indexOf(this.vm(cid))];
  }

  stop(): void {
    for (const forward of this.forwards) forward.stop();
    for (const vm of this.vms) vm.stop();
  }
}
