// Trace lines (subsystem `trace`, see assembly/vsock/trace.ts) as packets:
//   <rx|tx> <OP> src=<cid>:<port> dst=<cid>:<port> len=.. type=.. flags=.. buf_alloc=.. fwd_cnt=.. [data=<hex>]
import type { LogRecord } from "./parse.ts";

export const OPS: Record<string, number> = {
  INVALID: 0, REQUEST: 1, RESPONSE: 2, RST: 3, SHUTDOWN: 4, RW: 5, CREDIT_UPDATE: 6, CREDIT_REQUEST: 7,
};

export interface TracePacket {
  line: number;
  micros: number;
  direction: "rx" | "tx";
  op: number;
  opName: string;
  srcCid: bigint;
  srcPort: number;
  dstCid: bigint;
  dstPort: number;
  len: number;
  type: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
  /** The first payload bytes the firmware logged (possibly fewer than len). */
  data: Uint8Array;
}

const ADDRESS = /^(\d+):(\d+)$/;
const U32 = /^\d{1,10}$/;

function u32(fields: Record<string, string>, key: string): number | undefined {
  const v = fields[key];
  if (v === undefined || !U32.test(v) || Number(v) > 0xffffffff) return undefined;
  return Number(v);
}

/** The packet a trace line describes, or a reason why it does not describe one. */
export function tracePacket(r: LogRecord): TracePacket | string {
  const [direction, opText, ...rest] = r.message.split(" ");
  if (direction !== "rx" && direction !== "tx") return "trace line without rx/tx";
  if (opText === undefined || rest.length > 0) return "trace line without a single op";
  const op = opText in OPS ? OPS[opText] : /^OP\d{1,5}$/.test(opText) ? Number(opText.slice(2)) : undefined;
  if (op === undefined || op > 0xffff) return `unknown op ${opText}`;
  const src = ADDRESS.exec(r.fields.src ?? "");
  const dst = ADDRESS.exec(r.fields.dst ?? "");
  if (!src || !dst) return "trace line without src/dst";
  const len = u32(r.fields, "len"), type = u32(r.fields, "type"), flags = u32(r.fields, "flags");
  const bufAlloc = u32(r.fields, "buf_alloc"), fwdCnt = u32(r.fields, "fwd_cnt");
  if (len === undefined || type === undefined || flags === undefined || bufAlloc === undefined || fwdCnt === undefined) {
    return "trace line with a missing or bad header field";
  }
  const hex = r.fields.data ?? "";
  if (!/^([0-9a-f]{2})*$/.test(hex)) return "trace data is not hex bytes";
  const data = Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
  if (data.length > len) return "trace data longer than len";
  if (BigInt(src[2]) > 0xffffffffn || BigInt(dst[2]) > 0xffffffffn || type > 0xffff) return "field out of range";
  return {
    line: r.line,
    micros: r.micros,
    direction,
    op,
    opName: opText,
    srcCid: BigInt(src[1]),
    srcPort: Number(src[2]),
    dstCid: BigInt(dst[1]),
    dstPort: Number(dst[2]),
    len,
    type,
    flags,
    bufAlloc,
    fwdCnt,
    data,
  };
}

export function isTraceLine(r: LogRecord): boolean {
  return r.subsystem === "trace" && /^(rx|tx) /.test(r.message);
}

/** The header's type by name: STREAM, SEQPACKET, or TYPE<n>. */
export function typeName(type: number): string {
  return type === 1 ? "STREAM" : type === 2 ? "SEQPACKET" : `TYPE${type}`;
}

/** The flags by name where the op gives them one: SEQPACKET RW EOM|EOR, SHUTDOWN RCV|SEND; else hex. */
export function flagsText(p: TracePacket): string {
  const names: [number, string][] =
    p.op === OPS.RW && p.type === 2 ? [[1, "EOM"], [2, "EOR"]] : p.op === OPS.SHUTDOWN ? [[1, "RCV"], [2, "SEND"]] : [];
  if (p.flags === 0) return "0";
  let rest = p.flags;
  const parts: string[] = [];
  for (const [bit, name] of names) {
    if (rest & bit) parts.push(name);
    rest &= ~bit;
  }
  if (rest !== 0) parts.push(`0x${(rest >>> 0).toString(16)}`);
  return parts.join("|");
}

/** One line per packet: direction, op, type, addresses, length, flags by name, credit. */
export function describeTracePacket(p: TracePacket): string {
  const seconds = `${Math.floor(p.micros / 1e6)}.${String(p.micros % 1e6).padStart(6, "0")}`;
  return (
    `[${seconds}] ${p.direction} ${p.opName} ${typeName(p.type)} ${p.srcCid}:${p.srcPort} -> ${p.dstCid}:${p.dstPort}` +
    ` len=${p.len} flags=${flagsText(p)} buf_alloc=${p.bufAlloc} fwd_cnt=${p.fwdCnt}`
  );
}

/** Packets by type, and the SEQPACKET message ends among them (RW with EOM, and with EOR). */
export function traceTypeCounts(packets: TracePacket[]): { stream: number; seqpacket: number; other: number; eom: number; eor: number } {
  const counts = { stream: 0, seqpacket: 0, other: 0, eom: 0, eor: 0 };
  for (const p of packets) {
    if (p.type === 1) counts.stream++;
    else if (p.type === 2) counts.seqpacket++;
    else counts.other++;
    if (p.type === 2 && p.op === OPS.RW && p.flags & 1) counts.eom++;
    if (p.type === 2 && p.op === OPS.RW && p.flags & 2) counts.eor++;
  }
  return counts;
}
