// Debian's iperf3 client (3.12, TCP only) against a guest's iperf3 server through the backend's TCP
// forward: runs `iperf3 -c 127.0.0.1 -p <port> -J ...` with a deadline (stopped by its PID) and
// reads the figures from its JSON. Used by the vhost-user suite and the iperf3 bench rows.
import { spawn } from "node:child_process";

export interface Iperf3Report {
  /** The client's whole JSON (-J). */
  json: any;
  sentBytes: number;
  receivedBytes: number;
  /** Receiver's MiB/s (bytes / the receiver's seconds). */
  mibPerSecond: number;
  error: string | null;
}

export function iperf3Client(port: number, args: string[], timeoutMs: number): Promise<Iperf3Report> {
  return new Promise((resolve, reject) => {
    const child = spawn("iperf3", ["-c", "127.0.0.1", "-p", String(port), "-J", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      let json: any;
      try {
        json = JSON.parse(out);
      } catch {
        reject(new Error(`iperf3 ${args.join(" ")}: exit ${code ?? signal}, no JSON: ${out.slice(0, 500)} ${err.slice(0, 500)}`));
        return;
      }
      const end = json.end ?? {};
      const received = end.sum_received ?? {};
      resolve({
        json,
        sentBytes: Number(end.sum_sent?.bytes ?? -1),
        receivedBytes: Number(received.bytes ?? -1),
        mibPerSecond: received.seconds > 0 ? received.bytes / received.seconds / (1 << 20) : 0,
        error: json.error ?? null,
      });
    });
  });
}
