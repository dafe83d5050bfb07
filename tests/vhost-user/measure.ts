// Figures for the README: one guest (firmware or the Linux stand-in) under TCG on the backend;
// handshake phases from the session's timeline, CONNECT->OK, 64-byte echo round trip, throughput
// each way, and the backend's CPU time per MiB moved (this process runs the backend only: the
// client is measure_client.py in its own process).
//   node --import tsx tests/vhost-user/measure.ts [--guest linux] [--mib 64]
import { join } from "node:path";
import { createRig, run } from "./harness";
import { QemuGuest } from "./qemu-guest";

const linux = process.argv.includes("--guest") && process.argv[process.argv.indexOf("--guest") + 1] === "linux";
const mibArg = process.argv.indexOf("--mib");
const mib = mibArg > 0 ? Number(process.argv[mibArg + 1]) : 64;
const CID = 33;

const ms = (from: bigint | undefined | null, to: bigint | undefined | null) => (from && to ? (Number(to - from) / 1e6).toFixed(1) : "?");

async function main(): Promise<void> {
  const rig = await createRig(linux ? "measure-linux" : "measure-firmware", [{ cid: CID }]);
  const log = join(rig.results, "debug.log");
  const guest = new QemuGuest({ guest: linux ? "linux" : "firmware", vhostSocket: rig.vmConfig(CID).socket, debugLog: log, timeoutMs: 600_000, consoleLog: join(rig.results, "console.log") });
  try {
    await guest.waitForLog(linux ? /ready: cid=33 .*linux stand-in/ : /info app: ready: cid=33/, 300_000);
    const session = rig.backend.vm(CID).session!;
    const cpu: Record<string, NodeJS.CpuUsage> = {};
    const phases: Record<string, number> = {};
    const env = { VSOCK_TRANSPORT: `uds:${rig.vmConfig(CID).udsPath}`, VSOCK_CID: String(CID), MEASURE_MIB: String(mib) };
    // Watch the client's phase lines as they come, so CPU is read at the edges.
    const originalWrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      for (const match of String(chunk).matchAll(/phase (\S+) (begin|end)/g)) {
        if (match[2] === "begin") cpu[match[1]] = process.cpuUsage();
        else {
          const used = process.cpuUsage(cpu[match[1]]);
          phases[match[1]] = (used.user + used.system) / 1000;
        }
      }
      return originalWrite(chunk, ...(rest as []));
    }) as typeof process.stderr.write;
    const result = await run(["python3", "tests/vhost-user/measure_client.py"], env, 500_000);
    process.stderr.write = originalWrite;
    const figures = JSON.parse(result.output.trim().split("\n").at(-1)!);
    const seen = session.firstSeen;
    const table = {
      guest: linux ? "linux" : "firmware",
      "handshake at device creation (connect -> GET_CONFIG) ms": ms(session.openedAt, seen.get("GET_CONFIG")),
      "driver start (SET_FEATURES -> rings running) ms": ms(seen.get("SET_FEATURES"), session.ringsStartedAt),
      "CONNECT -> OK p50 ms": figures.connect_ms_p50,
      "64 B echo round trip p50 / p99 ms": `${figures.echo64_ms_p50} / ${figures.echo64_ms_p99}`,
      "host -> guest MiB/s (sink)": figures.host_to_guest_mib_s,
      "guest -> host MiB/s (source)": figures.guest_to_host_mib_s,
      "backend CPU ms per MiB host -> guest": (phases["host-to-guest"] / mib).toFixed(2),
      "backend CPU ms per MiB guest -> host": (phases["guest-to-host"] / mib).toFixed(2),
    };
    for (const [k, v] of Object.entries(table)) console.log(`${k.padEnd(58)} ${v}`);
  } finally {
    await guest.stop();
    rig.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
