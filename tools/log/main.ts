// The log tool: `npm run log -- [build/debug.log] [options]` (see --help and README "Log format").
// Without filters it prints the summary; with --level/--subsystem/--conn the matching lines;
// --follow keeps printing as the log grows; --pcap writes the packet trace as a pcap file.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import chalk from "chalk";
import { isProblem, parseLine, parseLog } from "./parse.ts";
import { isFiltering, makeFilter, parseLevel, type Filter } from "./filter.ts";
import { follow } from "./follow.ts";
import { pcapFile } from "./pcap.ts";
import { renderLine, renderSummary } from "./render.ts";
import { summarize } from "./summary.ts";
import { describeTracePacket } from "./trace.ts";

interface Options {
  level?: string;
  subsystem?: string[];
  conn?: string;
  follow?: boolean;
  pcap?: string;
  packets?: boolean;
  connections: number;
}

function positiveInt(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError("a whole number");
  return Number(text);
}

// Without a file: the newest debug.log under build/ (make run's direct run writes build/debug.log,
// its outer-VM demo build/demo/, the e2e runs build/e2e*/).
function newestLog(): string {
  const candidates = ["build/debug.log"];
  if (existsSync("build")) {
    for (const d of readdirSync("build")) candidates.push(join("build", d, "debug.log"));
  }
  const present = candidates.filter((f) => existsSync(f));
  present.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return present[0] ?? "build/debug.log";
}

function run(file: string | undefined, o: Options): number {
  file ??= newestLog();
  const filter: Filter = {
    level: o.level !== undefined ? parseLevel(o.level) : undefined,
    subsystems: o.subsystem?.flatMap((s) => s.split(",")).filter((s) => s.length > 0),
    conn: o.conn,
  };
  if (o.follow) {
    const keep = makeFilter(filter, []); // connection numbers need the whole log: ports and addresses work
    const stop = follow(file, true, (raw, n) => {
      const r = parseLine(raw, n);
      if (isProblem(r)) {
        if (!isFiltering(filter) && raw.trim() !== "") console.log(chalk.gray(`(line ${n}: ${r.reason}) ${r.text}`));
      } else if (keep(r)) {
        console.log(renderLine(r));
      }
    });
    process.on("SIGINT", () => {
      stop();
      process.exit(0);
    });
    return -1; // keeps running
  }
  if (!existsSync(file)) {
    console.error(`log: no log at ${file} (run \`make run\` or the e2e suite first, or name a file)`);
    return 2;
  }
  const { records, problems } = parseLog(readFileSync(file, "latin1"));
  const summary = summarize(records, problems);
  if (o.pcap) {
    writeFileSync(o.pcap, pcapFile(summary.tracePackets));
    console.log(`log: ${summary.tracePackets.length} traced packets -> ${o.pcap} (pcap, LINKTYPE_VSOCK 271; tshark -r ${o.pcap})`);
    if (summary.tracePackets.length === 0) {
      console.log("log: no trace lines in this log: boot with -fw_cfg name=opt/vsockfw/trace,string=1 or build with TRACE=1");
    }
    if (summary.traceProblems.length > 0) console.log(`log: ${summary.traceProblems.length} trace lines skipped (malformed)`);
    return 0;
  }
  if (o.packets) {
    // The trace decoded: the type (STREAM, SEQPACKET) and the flags by name (EOM|EOR, RCV|SEND).
    for (const p of summary.tracePackets) console.log(describeTracePacket(p));
    if (summary.tracePackets.length === 0) console.log("log: no trace lines in this log (opt/vsockfw/trace=1 or TRACE=1)");
    return 0;
  }
  if (isFiltering(filter)) {
    const keep = makeFilter(filter, summary.connections);
    for (const r of records) if (keep(r)) console.log(renderLine(r));
    if (problems.length > 0) console.error(chalk.gray(`log: ${problems.length} lines skipped (not in the log format)`));
    return 0;
  }
  console.log(renderSummary(summary, file, o.connections));
  return 0;
}

// `npm run log -- ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const program = new Command()
  .name("npm run log --")
  .description("Summarise, filter or follow the firmware's debugcon log; write its packet trace as pcap.")
  .argument("[file]", "the log (default: the newest build/debug.log or build/*/debug.log)")
  .option("-l, --level <level>", "lines of this level and worse (error, warn, info, debug)")
  .option("-s, --subsystem <names...>", "lines of these subsystems (boot, pci, virtio, vsock-dev, vsock, sock, app, trace, ...)")
  .option("-c, --conn <spec>", "lines of one connection: a port (1234), a peer (2:5000) or a summary number (#3)")
  .option("-f, --follow", "keep printing lines as the log grows (Ctrl-C stops)")
  .option("--pcap <out.pcap>", "write the traced packets as pcap (LINKTYPE_VSOCK) for tshark/Wireshark")
  .option("--packets", "list the traced packets decoded: op, type (STREAM, SEQPACKET), flags by name (EOM|EOR)")
  .option("--connections <n>", "connections listed one by one in the summary", positiveInt, 20)
  .showHelpAfterError();

program.action((file: string | undefined, options: Options) => {
  try {
    const status = run(file, options);
    if (status >= 0) process.exitCode = status;
  } catch (error) {
    console.error(`log: ${(error as Error).message}`);
    process.exitCode = 2;
  }
});
program.parse();
