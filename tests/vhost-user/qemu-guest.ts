// A guest under QEMU TCG whose vsock device is vhost-user-vsock-pci on our backend: the firmware
// image (pflash) or the Linux stand-in (Debian kernel + qemu/nested/linux-guest services, host
// root over 9p read-only). Guest RAM is a shared memfd, as vhost-user needs. Every run has a
// deadline and is stopped by its own PID.
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../..");

export interface GuestOptions {
  vhostSocket: string;
  debugLog: string;
  guest?: "firmware" | "linux";
  image?: string;
  /** opt/vsockfw/<name>=<value> for the firmware. */
  fwCfg?: Record<string, string>;
  memoryMiB?: number;
  timeoutMs: number;
  /** Linux guest: its serial console. */
  consoleLog?: string;
  extraArgs?: string[];
  /** true: a reset reboots the guest (default: QEMU exits, -no-reboot). */
  allowReboot?: boolean;
  /** The firmware's machine shape (qemu/machine.sh): q35 (default; pflash image, vhost-user-vsock-pci)
   *  or microvm (the PVH ELF, vhost-user-vsock-device on virtio-mmio). */
  machine?: "q35" | "microvm";
  /** The accelerator (default tcg); the Linux stand-in needs tcg here (see kvmUsable). */
  accel?: "tcg" | "kvm";
}

/** QEMU microvm as qemu/machine.sh runs it: no ACPI, so QEMU names its MMIO devices on the command line. */
export const MICROVM_MACHINE = "microvm,acpi=off,pit=on,pic=off,rtc=off,isa-serial=off";

/** Whether /dev/kvm can be opened here. This machine kind's KVM runs the firmware but cannot
 *  boot a stock Linux kernel, so only firmware guests use it. */
export function kvmUsable(): boolean {
  try {
    closeSync(openSync("/dev/kvm", "r+"));
    return true;
  } catch {
    return false;
  }
}

/** The QEMU command line (also what the README shows). */
export function qemuArgs(o: GuestOptions): string[] {
  const mem = o.memoryMiB ?? (o.guest === "linux" ? 512 : 256);
  const microvm = o.machine === "microvm" && o.guest !== "linux";
  const args = [
    "-machine", microvm ? `${MICROVM_MACHINE},memory-backend=mem` : "q35,memory-backend=mem", "-accel", o.accel ?? "tcg", "-m", `${mem}M`,
    "-object", `memory-backend-memfd,id=mem,size=${mem}M,share=on`,
    "-nodefaults", "-display", "none", "-nic", "none", ...(o.allowReboot ? [] : ["-no-reboot"]),
    "-chardev", `socket,id=char0,path=${o.vhostSocket}`, "-device", `vhost-user-vsock-${microvm ? "device" : "pci"},chardev=char0`,
    "-debugcon", `file:${o.debugLog}`, "-global", "isa-debugcon.iobase=0x402",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
  ];
  if (o.guest === "linux") {
    const kernel = linuxKernelDir();
    args.push(
      "-cpu", "max",
      "-kernel", `${kernel}/vmlinuz`, "-initrd", `${kernel}/initrd.gz`,
      "-append", `console=ttyS0 quiet loglevel=3 rdinit=/init-l2 vsockfw.repo=${REPO}`,
      "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
      "-serial", `file:${o.consoleLog ?? "/dev/null"}`,
    );
  } else if (microvm) {
    args.push("-kernel", o.image ?? `${REPO}/build/firmware-pvh.elf`, "-global", "virtio-mmio.force-legacy=false");
    for (const [name, value] of Object.entries(o.fwCfg ?? {})) args.push("-fw_cfg", `name=opt/vsockfw/${name},string=${value}`);
  } else {
    args.push("-drive", `if=pflash,format=raw,unit=0,file=${o.image ?? `${REPO}/build/firmware.bin`},readonly=on`);
    for (const [name, value] of Object.entries(o.fwCfg ?? {})) args.push("-fw_cfg", `name=opt/vsockfw/${name},string=${value}`);
  }
  return [...args, ...(o.extraArgs ?? [])];
}

let kernelDir: string | null = null;

/** The pinned Debian kernel and the initramfs with the Linux stand-in (qemu/nested/prepare.sh, cached). */
export function linuxKernelDir(): string {
  if (kernelDir) return kernelDir;
  const prepared = spawnSync(`${REPO}/qemu/nested/prepare.sh`, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 600_000 });
  if (prepared.status !== 0) throw new Error("qemu/nested/prepare.sh failed");
  kernelDir = prepared.stdout.trim().split("\n").at(-1)!;
  return kernelDir;
}

export class QemuGuest {
  readonly process: ChildProcess;
  exitCode: number | null = null;
  exited = false;
  stderr = "";
  private readonly timer: NodeJS.Timeout;
  timedOut = false;
  readonly startedAt = Date.now();

  constructor(readonly options: GuestOptions) {
    this.process = spawn("qemu-system-x86_64", qemuArgs(options), { stdio: ["ignore", "ignore", "pipe"] });
    this.process.stderr!.on("data", (chunk) => (this.stderr += chunk));
    this.process.on("exit", (code, signal) => {
      this.exited = true;
      this.exitCode = code ?? (signal ? -1 : null);
      clearTimeout(this.timer);
    });
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.stop();
    }, options.timeoutMs);
  }

  log(): string {
    return existsSync(this.options.debugLog) ? readFileSync(this.options.debugLog, "latin1") : "";
  }

  /** Resolves with the matching line once the debugcon log has one; rejects if QEMU exits or the wait runs out. */
  async waitForLog(pattern: RegExp, ms: number): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const line = this.log().split("\n").find((l) => pattern.test(l));
      if (line) return line;
      if (this.exited) throw new Error(`QEMU exited (${this.exitCode}) before ${pattern}: ${this.stderr.trim()}\n${this.log().slice(-2000)}`);
      if (Date.now() > end) throw new Error(`no ${pattern} within ${ms} ms; log tail:\n${this.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops QEMU by its PID (TERM, then KILL) and waits for it. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const pid = this.process.pid;
    if (pid) process.kill(pid, "SIGTERM");
    const end = Date.now() + 3000;
    while (!this.exited && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if (!this.exited && pid) process.kill(pid, "SIGKILL");
    while (!this.exited) await new Promise((r) => setTimeout(r, 20));
  }
}
