// What a log says, gathered: boot milestones, devices, connections, counters, errors and warnings,
// trace packets. Pure data (rendering is in render.ts), so tests can check it directly.
import type { LogRecord, Problem } from "./parse.ts";
import { isTraceLine, tracePacket, type TracePacket } from "./trace.ts";

/** The boot milestones and the line that marks each (README "Log format"). */
export const MILESTONES: { name: string; matches: (r: LogRecord) => boolean }[] = [
  { name: "reset", matches: (r) => r.subsystem === "boot" && r.message === "reset" },
  { name: "long mode", matches: (r) => r.subsystem === "boot" && r.message.startsWith("long mode") },
  { name: "runtime up", matches: (r) => r.subsystem === "boot" && r.message.startsWith("runtime up") },
  { name: "pci scan done", matches: (r) => r.subsystem === "pci" && r.message === "scan done" },
  { name: "device up", matches: (r) => r.subsystem === "vsock-dev" && r.message === "ready" },
  { name: "ready", matches: (r) => r.subsystem === "app" && r.message.startsWith("ready") },
];

export interface Milestone {
  name: string;
  micros?: number;
  line?: number;
  detail?: string;
}

export interface Device {
  bdf: string;
  id: string;
  pciClass: string;
  name: string;
}

export interface Connection {
  /** Order of opening, from 1. */
  id: number;
  dir: string;
  local: number;
  peer: string;
  openedMicros: number;
  closedMicros?: number;
  reason?: string;
  rxBytes?: number;
  txBytes?: number;
  durationMs?: number;
  dropped?: number;
  openLine: number;
}

// The fields of a `connections folded` line that are not end reasons.
const FOLDED_FIELDS = new Set(["opened", "closed", "rx_bytes", "tx_bytes", "ms", "conns"]);

export interface Summary {
  firmware: Record<string, string>;
  milestones: Milestone[];
  devices: Device[];
  vsockDevice: Record<string, string>;
  connections: Connection[];
  /** Connections the firmware counted instead of logging one by one (`connections folded` lines:
   *  it folds them when they come faster than the debug console should spend exits on). */
  folded: { lines: number; opened: number; closed: number; reasons: Record<string, number>; rxBytes: number; txBytes: number };
  /** The last counter report (the `counters` and `packets` lines, vsock-dev's, and the rejections by reason). */
  counters?: { why: string; micros: number; totals: Record<string, string>; packets: Record<string, Record<string, string>>; drops: { reason: string; count: string }[]; device?: Record<string, string> };
  alerts: LogRecord[];
  problems: Problem[];
  tracePackets: TracePacket[];
  /** Trace lines that did not describe a packet, with the reason. */
  traceProblems: Problem[];
  firstMicros?: number;
  lastMicros?: number;
  lines: number;
  exit?: string;
}

const KNOWN_DEVICES: Record<string, string> = {
  "8086:29c0": "q35 host bridge",
  "8086:2918": "ICH9 LPC bridge",
  "8086:2922": "ICH9 AHCI",
  "8086:2930": "ICH9 SMBus",
  "1b36:000c": "PCIe root port",
  "1af4:1053": "virtio-vsock (modern)",
  "1af4:1012": "virtio-vsock (transitional)",
};

const PCI_FUNCTION = /^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}:[0-9a-f]{4})$/;
const PEER = /^(\d+):(\d+)$/;

/** "local=1234 peer=2:5000" as a key, for matching closed lines to opened ones. */
function tupleKey(r: LogRecord): string {
  return `${r.fields.dir ?? ""} ${r.fields.local ?? ""} ${r.fields.peer ?? ""}`;
}

export function summarize(records: LogRecord[], problems: Problem[]): Summary {
  const s: Summary = {
    firmware: {},
    milestones: MILESTONES.map((m) => ({ name: m.name })),
    devices: [],
    vsockDevice: {},
    connections: [],
    folded: { lines: 0, opened: 0, closed: 0, reasons: {}, rxBytes: 0, txBytes: 0 },
    alerts: [],
    problems,
    tracePackets: [],
    traceProblems: [],
    lines: records.length + problems.length,
  };
  const open = new Map<string, Connection>();
  let counters: Summary["counters"];
  for (const r of records) {
    s.firstMicros ??= r.micros;
    s.lastMicros = r.micros;
    if (r.level === "error" || r.level === "warn") s.alerts.push(r);
    MILESTONES.forEach((m, i) => {
      if (s.milestones[i].micros === undefined && m.matches(r)) {
        s.milestones[i] = { name: m.name, micros: r.micros, line: r.line, detail: Object.entries(r.fields).map(([k, v]) => `${k}=${v}`).join(" ") };
      }
    });
    if (r.subsystem === "boot" && r.message.startsWith("vsockfw ")) {
      s.firmware = { version: r.message.slice(8), ...r.fields };
    } else if (r.subsystem === "boot" && (r.message === "exit requested" || r.message === "exit")) {
      s.exit = Object.entries(r.fields).map(([k, v]) => `${k}=${v}`).join(" ");
    } else if (r.subsystem === "pci") {
      const f = PCI_FUNCTION.exec(r.message);
      if (f && r.fields.class) s.devices.push({ bdf: f[1], id: f[2], pciClass: r.fields.class, name: KNOWN_DEVICES[f[2]] ?? "" });
    } else if (r.subsystem === "vsock-dev" || r.subsystem === "virtio") {
      if (r.message.startsWith("device found")) s.vsockDevice.found = r.message.slice("device found ".length);
      else if (r.message === "ready" || r.message === "queues" || r.message === "features") Object.assign(s.vsockDevice, r.fields);
      if (r.subsystem === "vsock-dev" && r.message === "counters" && counters) counters.device = r.fields;
    } else if (r.subsystem === "vsock" && r.message === "connection opened") {
      const c: Connection = {
        id: s.connections.length + 1,
        dir: r.fields.dir ?? "?",
        local: Number(r.fields.local ?? NaN),
        peer: PEER.test(r.fields.peer ?? "") ? r.fields.peer : "?",
        openedMicros: r.micros,
        openLine: r.line,
      };
      s.connections.push(c);
      open.set(tupleKey(r), c);
    } else if (r.subsystem === "vsock" && r.message === "connection closed") {
      const key = tupleKey(r);
      let c = open.get(key);
      if (!c) {
        // Opened before the log starts (or its line was lost): still listed.
        const ms = Number(r.fields.duration_ms ?? 0);
        c = { id: s.connections.length + 1, dir: r.fields.dir ?? "?", local: Number(r.fields.local ?? NaN), peer: r.fields.peer ?? "?", openedMicros: Math.max(0, r.micros - ms * 1000), openLine: r.line };
        s.connections.push(c);
      }
      open.delete(key);
      c.closedMicros = r.micros;
      c.reason = r.fields.reason ?? "?";
      c.rxBytes = numberOrUndefined(r.fields.rx_bytes);
      c.txBytes = numberOrUndefined(r.fields.tx_bytes);
      c.durationMs = numberOrUndefined(r.fields.duration_ms);
      c.dropped = numberOrUndefined(r.fields.dropped);
    } else if (r.subsystem === "vsock" && r.message === "connections folded") {
      const f = s.folded;
      f.lines++;
      f.opened += Number(r.fields.opened ?? 0);
      f.closed += Number(r.fields.closed ?? 0);
      f.rxBytes += Number(r.fields.rx_bytes ?? 0);
      f.txBytes += Number(r.fields.tx_bytes ?? 0);
      for (const [key, value] of Object.entries(r.fields)) {
        if (!FOLDED_FIELDS.has(key)) f.reasons[key] = (f.reasons[key] ?? 0) + Number(value);
      }
    } else if (r.subsystem === "vsock" && r.message === "counters") {
      counters = { why: r.fields.why ?? "?", micros: r.micros, totals: r.fields, packets: {}, drops: [] };
      s.counters = counters;
    } else if (r.subsystem === "vsock" && r.message === "packets" && counters) {
      counters.packets[r.fields.dir ?? "?"] = r.fields;
    } else if (r.subsystem === "vsock" && r.message === "rejections" && counters) {
      counters.drops = Object.entries(r.fields).filter(([k]) => k !== "total").map(([reason, count]) => ({ reason, count }));
    } else if (isTraceLine(r)) {
      const p = tracePacket(r);
      if (typeof p === "string") s.traceProblems.push({ line: r.line, text: r.raw, reason: p });
      else s.tracePackets.push(p);
    }
  }
  return s;
}

function numberOrUndefined(v: string | undefined): number | undefined {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

export interface ConnectionGroup {
  dir: string;
  local: number;
  count: number;
  open: number;
  rxBytes: number;
  txBytes: number;
  reasons: Record<string, number>;
  durationsMs: number[];
}

/** Connections by direction and local port (a service, or the greeting client). */
export function groupConnections(connections: Connection[]): ConnectionGroup[] {
  const groups = new Map<string, ConnectionGroup>();
  for (const c of connections) {
    // Outbound connections use ephemeral local ports: group them by peer port instead.
    const local = c.dir === "out" ? Number(c.peer.split(":")[1] ?? NaN) : c.local;
    const key = `${c.dir} ${local}`;
    let g = groups.get(key);
    if (!g) {
      g = { dir: c.dir, local, count: 0, open: 0, rxBytes: 0, txBytes: 0, reasons: {}, durationsMs: [] };
      groups.set(key, g);
    }
    g.count++;
    if (c.closedMicros === undefined) g.open++;
    g.rxBytes += c.rxBytes ?? 0;
    g.txBytes += c.txBytes ?? 0;
    if (c.reason) g.reasons[c.reason] = (g.reasons[c.reason] ?? 0) + 1;
    if (c.durationMs !== undefined) g.durationsMs.push(c.durationMs);
  }
  return [...groups.values()];
}

/** Whether a connection ended in a way worth a look (not a clean close by either side). */
export function endedBadly(c: Connection): boolean {
  return c.reason !== undefined && !["local-close", "peer-shutdown", "closed"].includes(c.reason);
}
