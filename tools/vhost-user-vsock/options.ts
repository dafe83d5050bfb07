// Command line, compatible with vhost-device-vsock's: either one VM
//   --guest-cid N --socket PATH --uds-path PATH
// or several, each `--vm guest-cid=N,socket=PATH,uds-path=PATH[,groups=a+b]` (repeated).
// Extras: --fault RULE (faults.ts, repeated; applies to every VM), --log-level LEVEL,
// --forward-tcp [ADDR:]PORT=[CID:]GUESTPORT (tcp-forward.ts, repeated).
import { FaultRule, parseFaultRule } from "./faults";
import { Level } from "./log";
import { parseForwardSpec, TcpForwardSpec } from "./tcp-forward";
import { VmConfig } from "./vm";

export interface BackendOptions {
  vms: VmConfig[];
  faults: FaultRule[];
  logLevel: Level;
  forwards: TcpForwardSpec[];
}

export const USAGE = `usage: vhost-user-vsock --guest-cid N --socket PATH --uds-path PATH [--groups a+b]
       vhost-user-vsock --vm guest-cid=N,socket=PATH,uds-path=PATH[,groups=a+b] [--vm ...]
options: --no-seqpacket (offer no VIRTIO_VSOCK_F_SEQPACKET: a STREAM-only device)
         --fault DIR:ACTION[:op=RW][:port=N][:skip=N][:count=N|all][:delay-ms=N][:corrupt=op|len|payload]
         --log-level error|warn|info|debug
         --forward-tcp [ADDR:]PORT=[CID:]GUESTPORT   a host TCP port to a guest vsock port (ADDR: 127.0.0.1)`;

const RESERVED_CIDS = new Set([0, 1, 2]);

function cid(text: string, where: string): number {
  if (!/^\d+$/.test(text) || RESERVED_CIDS.has(Number(text)) || Number(text) > 0xffffffff) throw new Error(`${where}: guest cid must be a number >= 3, got ${text}`);
  return Number(text);
}

function groups(text: string | undefined): string[] {
  return (text ?? "default").split("+").filter((g) => g.length > 0);
}

export function parseVmSpec(spec: string): VmConfig {
  const fields = new Map<string, string>();
  for (const part of spec.split(",")) {
    const at = part.indexOf("=");
    if (at <= 0) throw new Error(`--vm ${spec}: expected key=value, got ${part}`);
    fields.set(part.slice(0, at), part.slice(at + 1));
  }
  for (const key of fields.keys()) {
    if (!["guest-cid", "socket", "uds-path", "groups", "tx-buffer-size"].includes(key)) throw new Error(`--vm ${spec}: unknown key ${key}`);
  }
  const socket = fields.get("socket");
  const udsPath = fields.get("uds-path");
  if (!fields.has("guest-cid") || !socket || !udsPath) throw new Error(`--vm ${spec}: guest-cid, socket and uds-path are required`);
  return { guestCid: cid(fields.get("guest-cid")!, "--vm"), socket, udsPath, groups: groups(fields.get("groups")) };
}

export function parseArguments(argv: string[]): BackendOptions {
  const single: Partial<Record<"guest-cid" | "socket" | "uds-path" | "groups", string>> = {};
  const vms: VmConfig[] = [];
  const faults: FaultRule[] = [];
  const forwards: TcpForwardSpec[] = [];
  let logLevel: Level = "info";
  let seqpacket = true;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--guest-cid":
      case "--socket":
      case "--uds-path":
      case "--groups":
        single[arg.slice(2) as keyof typeof single] = next();
        break;
      case "--vm":
        vms.push(parseVmSpec(next()));
        break;
      case "--fault":
        faults.push(parseFaultRule(next()));
        break;
      case "--forward-tcp":
        forwards.push(parseForwardSpec(next()));
        break;
      case "--log-level": {
        const level = next();
        if (!["error", "warn", "info", "debug"].includes(level)) throw new Error(`--log-level ${level}`);
        logLevel = level as Level;
        break;
      }
      case "--no-seqpacket":
        seqpacket = false;
        break;
      case "-h":
      case "--help":
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  const givenSingle = Object.keys(single).length > 0;
  if (givenSingle && vms.length > 0) throw new Error("give either --guest-cid/--socket/--uds-path or --vm, not both");
  if (givenSingle) {
    if (!single["guest-cid"] || !single.socket || !single["uds-path"]) throw new Error(`--guest-cid, --socket and --uds-path go together\n${USAGE}`);
    vms.push({ guestCid: cid(single["guest-cid"], "--guest-cid"), socket: single.socket, udsPath: single["uds-path"], groups: groups(single.groups) });
  }
  if (vms.length === 0) throw new Error(USAGE);
  if (!seqpacket) for (const vm of vms) vm.seqpacket = false;
  const seen = new Set<string>();
  for (const vm of vms) {
    for (const key of [`cid ${vm.guestCid}`, `socket ${vm.socket}`, `uds-path ${vm.udsPath}`]) {
      if (seen.has(key)) throw new Error(`two VMs share ${key}`);
      seen.add(key);
    }
  }
  for (const f of forwards) {
    if (f.guestCid === undefined ? vms.length !== 1 : !vms.some((vm) => vm.guestCid === f.guestCid)) {
      throw new Error(`--forward-tcp ${f.address}:${f.port}: ${f.guestCid === undefined ? "name the CID (several VMs)" : `no VM with cid ${f.guestCid}`}`);
    }
  }
  return { vms, faults, logLevel, forwards };
}
