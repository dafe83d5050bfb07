// Runs the firmware image in QEMU (q35, TCG unless asked) with isa-debug-exit and a timeout, and
// returns QEMU's exit status and the debugcon log. QEMU is stopped by its own PID on timeout.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface BootResult {
  status: number | null; // QEMU's exit status; isa-debug-exit makes it firmware code * 2 + 1
  firmwareExitCode: number | null;
  timedOut: boolean;
  log: string;
  lines: string[];
  wallMs: number;
}

export interface BootOptions {
  image: string;
  // "pvh": `image` is the PVH ELF, loaded with -kernel (machine q35 through SeaBIOS's PVH loader,
  // or microvm through qboot); "pflash" (default): `image` is the flash image on q35.
  load?: "pflash" | "pvh";
  machine?: string; // -machine value (default q35)
  append?: string; // -append (PVH only)
  accel?: "tcg" | "kvm";
  extraArgs?: string[];
  fwCfg?: Record<string, string>; // opt/vsockfw/<name>=<value>
  timeoutMs?: number;
}

export function bootFirmware(options: BootOptions): Promise<BootResult> {
  const dir = mkdtempSync(join(tmpdir(), "vsockfw-boot-"));
  const logPath = join(dir, "debug.log");
  const args = [
    "-machine", options.machine ?? "q35", "-accel", options.accel ?? "tcg", "-m", "256M", "-nodefaults", "-display", "none", "-nic", "none",
    ...(options.load === "pvh"
      ? ["-kernel", options.image, ...(options.append !== undefined ? ["-append", options.append] : [])]
      : ["-drive", `if=pflash,format=raw,unit=0,file=${options.image},readonly=on`]),
    "-debugcon", `file:${logPath}`, "-global", "isa-debugcon.iobase=0x402",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
    ...Object.entries(options.fwCfg ?? {}).flatMap(([name, value]) => ["-fw_cfg", `name=opt/vsockfw/${name},string=${value}`]),
    ...(options.extraArgs ?? []),
  ];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const qemu = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    qemu.stderr.on("data", (chunk) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill("SIGKILL"); // by its own PID
    }, options.timeoutMs ?? 30_000);
    qemu.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    qemu.on("exit", (status) => {
      clearTimeout(timer);
      let log = "";
      try {
        log = readFileSync(logPath, "latin1");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      if (status !== null && status > 1 && status % 2 === 0 && stderr) log += `\n[qemu stderr] ${stderr}`;
      resolve({
        status,
        firmwareExitCode: status !== null && status % 2 === 1 ? (status - 1) / 2 : null,
        timedOut,
        log,
        lines: log.split("\n").filter((line) => line.length > 0),
        wallMs: Date.now() - started,
      });
    });
  });
}

// The firmware's timestamp of a log line, in microseconds.
export function timestampMicros(line: string): number | null {
  const match = /^\.?\[(\d+)\.(\d{6})\] /.exec(line);
  return match ? Number(match[1]) * 1_000_000 + Number(match[2]) : null;
}
