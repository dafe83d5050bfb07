// Shared steps of the vhost-user end-to-end tests: a backend in this process (so tests can read
// its counters and inject faults), short socket paths, the e2e suite's greeting listener and
// suite.py run over the Unix-socket transport, with deadlines on every child.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VsockBackend } from "../../tools/vhost-user-vsock/backend";
import { setLogSink } from "../../tools/vhost-user-vsock/log";
import type { TcpForwardSpec } from "../../tools/vhost-user-vsock/tcp-forward";
import { VmConfig } from "../../tools/vhost-user-vsock/vm";
import { REPO } from "./qemu-guest";

export interface Rig {
  backend: VsockBackend;
  /** Socket directory (short paths: sun_path holds 107 bytes). */
  sockets: string;
  /** Where logs and results go (build/vhost-user-e2e/<name>). */
  results: string;
  vmConfig(cid: number): VmConfig;
  backendLog: string[];
  cleanup(): void;
}

export async function createRig(name: string, vms: { cid: number; groups?: string[] }[], forwards: TcpForwardSpec[] = []): Promise<Rig> {
  const sockets = mkdtempSync(join(tmpdir(), "vsockfw-vu-"));
  const results = join(REPO, "build/vhost-user-e2e", name);
  rmSync(results, { recursive: true, force: true });
  mkdirSync(results, { recursive: true });
  const backendLog: string[] = [];
  setLogSink((line) => backendLog.push(line));
  // VHOST_USER_NO_SEQPACKET=1: devices that do not offer SEQPACKET (every STREAM case must still pass).
  const seqpacket = process.env.VHOST_USER_NO_SEQPACKET !== "1";
  const configs = vms.map((v) => ({ guestCid: v.cid, socket: join(sockets, `vhost-${v.cid}.sock`), udsPath: join(sockets, `vm${v.cid}.vsock`), groups: v.groups ?? ["default"], seqpacket }));
  const backend = new VsockBackend(configs, [], forwards);
  await backend.start();
  return {
    backend,
    sockets,
    results,
    backendLog,
    vmConfig: (cid) => configs.find((c) => c.guestCid === cid)!,
    cleanup: () => {
      backend.stop();
      writeFileSync(join(results, "backend.log"), backendLog.join("\n") + "\n");
      rmSync(sockets, { recursive: true, force: true });
    },
  };
}

export interface ChildResult {
  code: number | null;
  output: string;
  timedOut: boolean;
}

/** Runs a command to completion (or its deadline: stopped by its PID), echoing its output to stderr. */
export function run(argv: string[], env: Record<string, string>, timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: REPO, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let timedOut = false;
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stderr.write(chunk);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) process.kill(child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}

/** The e2e suite's greeting listener on <uds-path>_4050; resolves once it listens. */
export async function startGreetingListener(rig: Rig, cid: number): Promise<{ stop: () => void; done: Promise<ChildResult> }> {
  const ready = join(rig.results, "pre.ready");
  const env = { VSOCK_TRANSPORT: `uds:${rig.vmConfig(cid).udsPath}`, RESULTS: rig.results, PRE_READY: ready };
  const child = spawn("python3", ["tests/e2e/greeting_listener.py"], { cwd: REPO, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const done = new Promise<ChildResult>((resolve) => child.on("exit", (code) => resolve({ code, output, timedOut: false })));
  const end = Date.now() + 10_000;
  while (!existsSync(ready) && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  return { stop: () => child.exitCode === null && child.pid && process.kill(child.pid, "SIGTERM"), done };
}

/** tests/e2e/suite.py over the backend's Unix sockets; the parsed "e2e: N passed, M failed". */
export async function runSuite(rig: Rig, cid: number, fwLog: string, args: string[], timeoutMs: number, extraEnv: Record<string, string> = {}) {
  const env = { VSOCK_TRANSPORT: `uds:${rig.vmConfig(cid).udsPath}`, VSOCK_CID: String(cid), FW_LOG: fwLog, RESULTS: rig.results, ...extraEnv };
  const result = await run(["python3", "tests/e2e/suite.py", ...args], env, timeoutMs);
  writeFileSync(join(rig.results, "suite.log"), result.output);
  const summary = /e2e: (\d+) passed, (\d+) failed\s*$/.exec(result.output);
  return { ...result, passed: summary ? Number(summary[1]) : 0, failed: summary ? Number(summary[2]) : -1 };
}
