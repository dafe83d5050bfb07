// The human summary: errors and warnings first, then the boot timeline, devices, connections,
// counters and the trace. Colours (chalk) only on a terminal; tables by cli-table3.
import chalk from "chalk";
import Table from "cli-table3";
import { formatDuration, formatSeconds, type LogRecord } from "./parse.ts";
import { endedBadly, groupConnections, type Summary } from "./summary.ts";
import { traceTypeCounts } from "./trace.ts";

const MAX_ALERTS = 20;
const MAX_PROBLEMS = 10;

function table(head: string[]): Table.Table {
  return new Table({
    head: head.map((h) => chalk.bold(h)),
    style: { head: [], border: [], compact: true },
  });
}

export function levelColour(level: string): (text: string) => string {
  if (level === "error") return chalk.red.bold;
  if (level === "warn") return chalk.yellow;
  if (level === "debug") return chalk.gray;
  return (t: string) => t;
}

/** One log line as written, its level coloured. */
export function renderLine(r: LogRecord): string {
  return levelColour(r.level)(r.raw.replace(/^\.+/, ""));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)];
}

function bytes(n: number): string {
  if (n < 10 * 1024) return `${n} B`;
  if (n < 10 * 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

export function renderSummary(s: Summary, source: string, maxConnections: number): string {
  const out: string[] = [];
  const span = s.firstMicros !== undefined && s.lastMicros !== undefined ? ` from ${formatSeconds(s.firstMicros)} to ${formatSeconds(s.lastMicros)} s` : "";
  out.push(chalk.bold(`${source}: ${s.lines} lines${span}`));
  if (s.firmware.version) {
    out.push(`firmware ${s.firmware.version} build=${s.firmware.build ?? "?"} log_level=${s.firmware.log_level ?? "?"} tsc_hz=${s.firmware.tsc_hz ?? "?"}`);
  }

  // Errors and warnings first.
  if (s.alerts.length > 0) {
    out.push("", chalk.bold(`Errors and warnings (${s.alerts.length})`));
    for (const r of s.alerts.slice(0, MAX_ALERTS)) out.push(`  line ${r.line}: ${renderLine(r)}`);
    if (s.alerts.length > MAX_ALERTS) out.push(`  ... ${s.alerts.length - MAX_ALERTS} more (--level warn lists them all)`);
  } else {
    out.push("", chalk.green("No errors or warnings."));
  }
  const skipped = [...s.problems, ...s.traceProblems];
  if (skipped.length > 0) {
    out.push("", chalk.yellow(`Skipped lines (${skipped.length}): not in the log format`));
    for (const p of skipped.slice(0, MAX_PROBLEMS)) out.push(`  line ${p.line}: ${p.reason}: ${JSON.stringify(p.text)}`);
    if (skipped.length > MAX_PROBLEMS) out.push(`  ... ${skipped.length - MAX_PROBLEMS} more`);
  }

  // Boot timeline.
  out.push("", chalk.bold("Boot timeline"));
  const boot = table(["milestone", "at (s)", "since previous", "line"]);
  let previous: number | undefined;
  for (const m of s.milestones) {
    if (m.micros === undefined) {
      boot.push([m.name, chalk.gray("not logged"), "", ""]);
      continue;
    }
    boot.push([m.name, formatSeconds(m.micros), previous === undefined ? "" : formatDuration(m.micros - previous), String(m.line)]);
    previous = m.micros;
  }
  out.push(boot.toString());
  if (s.exit) out.push(`exit: ${s.exit}`);

  // Devices.
  if (s.devices.length > 0) {
    out.push("", chalk.bold("PCI devices"));
    const devices = table(["bdf", "vendor:device", "class", "what"]);
    for (const d of s.devices) devices.push([d.bdf, d.id, d.pciClass, d.name]);
    out.push(devices.toString());
  }
  const v = s.vsockDevice;
  if (Object.keys(v).length > 0) {
    out.push(`vsock device ${v.found ?? "?"}: guest_cid=${v.guest_cid ?? "?"} features=${v.features ?? "?"} queues rx=${v.rx ?? "?"} tx=${v.tx ?? "?"} event=${v.event ?? "?"} rx_buffers=${v.rx_buffers ?? "?"}x${v.rx_buffer_bytes ?? "?"}`);
  }

  // Connections.
  out.push("", chalk.bold(`Connections (${s.connections.length})`));
  if (s.connections.length > 0) {
    const groups = table(["dir", "port", "count", "open", "rx", "tx", "duration min/median/max", "end reasons"]);
    for (const g of groupConnections(s.connections)) {
      const d = g.durationsMs;
      groups.push([
        g.dir === "in" ? "in" : "out",
        g.dir === "in" ? String(g.local) : `peer ${g.local}`,
        String(g.count),
        String(g.open),
        bytes(g.rxBytes),
        bytes(g.txBytes),
        d.length ? `${Math.min(...d)}/${median(d)}/${Math.max(...d)} ms` : "",
        Object.entries(g.reasons).map(([k, n]) => `${k}=${n}`).join(" "),
      ]);
    }
    out.push(groups.toString());
    // Individual connections: the unusual ones first, then in order.
    const listed = [...s.connections.filter((c) => endedBadly(c) || c.closedMicros === undefined), ...s.connections.filter((c) => !endedBadly(c) && c.closedMicros !== undefined)].slice(0, maxConnections);
    const each = table(["#", "dir", "local", "peer", "opened (s)", "duration", "rx bytes", "tx bytes", "end"]);
    for (const c of listed.sort((a, b) => a.id - b.id)) {
      const end = c.closedMicros === undefined ? chalk.cyan("open") : endedBadly(c) ? chalk.yellow(c.reason ?? "") : c.reason ?? "";
      each.push([String(c.id), c.dir, String(c.local), c.peer, formatSeconds(c.openedMicros), c.durationMs !== undefined ? `${c.durationMs} ms` : "", String(c.rxBytes ?? ""), String(c.txBytes ?? ""), end + (c.dropped ? ` dropped=${c.dropped}` : "")]);
    }
    out.push(each.toString());
    if (s.connections.length > listed.length) out.push(`(${s.connections.length - listed.length} more; --connections N lists more, --conn PORT shows one's lines)`);
  }
  const f = s.folded;
  if (f.lines > 0) {
    const reasons = Object.entries(f.reasons).map(([k, n]) => `${k}=${n}`).join(" ");
    out.push(`Folded (too many to log one by one, ${f.lines} lines): opened ${f.opened}, closed ${f.closed} (${reasons}), rx ${bytes(f.rxBytes)}, tx ${bytes(f.txBytes)}`);
  }

  // Counters.
  const c = s.counters;
  if (c) {
    out.push("", chalk.bold(`Counters (why=${c.why} at ${formatSeconds(c.micros)} s)`));
    const t = c.totals;
    out.push(`  packets rx=${t.rx_packets ?? "?"} tx=${t.tx_packets ?? "?"}; credit updates sent=${t.credit_updates_sent ?? "?"} received=${t.credit_updates_received ?? "?"}; rx refills=${t.rx_refills ?? "?"}; tx stalls credit=${t.tx_stalls_credit ?? "?"} ring=${t.tx_stalls_ring ?? "?"}; drops=${t.drops ?? "?"}`);
    const ops = ["request", "response", "rst", "shutdown", "rw", "credit_update", "credit_request", "other"];
    const byOp = table(["dir", ...ops]);
    for (const dir of ["rx", "tx"]) if (c.packets[dir]) byOp.push([dir, ...ops.map((o) => c.packets[dir][o] ?? "")]);
    out.push(byOp.toString());
    for (const d of c.drops) out.push(`  drop: ${d.reason}: ${d.count}`);
    if (c.device) out.push(`  device: ${Object.entries(c.device).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  } else {
    out.push("", chalk.gray("No counters in this log (they are logged at exit, every N s with opt/vsockfw/counters=N, and on a connection to port 1237)."));
  }

  // Trace.
  if (s.tracePackets.length > 0) {
    const rx = s.tracePackets.filter((p) => p.direction === "rx").length;
    out.push("", chalk.bold(`Packet trace: ${s.tracePackets.length} packets (rx ${rx}, tx ${s.tracePackets.length - rx}); --packets lists them, --pcap FILE writes them for tshark/Wireshark`));
    const t = traceTypeCounts(s.tracePackets);
    out.push(`  by type: STREAM ${t.stream}, SEQPACKET ${t.seqpacket} (messages ended: EOM ${t.eom}, EOR ${t.eor})${t.other ? `, other ${t.other}` : ""}`);
  }
  return out.join("\n");
}
