// make bench's iperf3 rows: the firmware under QEMU TCG on the vhost-user backend, its iperf3
// server (5201) reached through the backend's TCP forward by Debian's iperf3 client: forward and
// -R, one and four streams, -t SECONDS each (the receiver's MiB/s from the client's JSON); then
// the Linux stand-in the same way. Writes <out>/iperf3.json, which tools/bench/report.py adds.
//   node --import tsx tests/vhost-user/iperf3-bench.ts [--seconds 5] [--out build/bench] [--guests firmware,linux]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRig } from "./harness";
import { iperf3Client } from "./iperf3-client";
import { QemuGuest } from "./qemu-guest";

const option = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
};
const SECONDS = Number(option("seconds", "5"));
const OUT = option("out", "build/bench");
const CID = 33;
// The Linux stand-in serves iperf3 with Debian's `iperf3 -s` behind a vsock-to-TCP relay in the
// guest (qemu/nested/linux-guest/services.py): the same client, forward and backend.
const GUESTS = option("guests", "firmware,linux").split(",") as ("firmware" | "linux")[];
export const IPERF3_CASES = [
  { name: "forward-1", args: [] as string[] },
  { name: "reverse-1", args: ["-R"] },
  { name: "forward-4", args: ["-P", "4"] },
  { name: "reverse-4", args: ["-R", "-P", "4"] },
];

/** One guest's iperf3 figures (MiB/s by case). */
async function measure(kind: "firmware" | "linux"): Promise<Record<string, number>> {
  const rig = await createRig(`iperf3-bench-${kind}`, [{ cid: CID }], [{ address: "127.0.0.1", port: 0, guestPort: 5201 }]);
  const guest = new QemuGuest({
    guest: kind,
    vhostSocket: rig.vmConfig(CID).socket,
    debugLog: join(rig.results, "debug.log"),
    consoleLog: kind === "linux" ? join(rig.results, "guest-console.log") : undefined,
    timeoutMs: 600_000,
  });
  const figures: Record<string, number> = {};
  try {
    await guest.waitForLog(kind === "linux" ? /ready: cid=33 .*linux stand-in/ : /info app: ready: cid=33 .* iperf3=5201/, 300_000);
    const port = rig.backend.forwards[0].port;
    for (const c of IPERF3_CASES) {
      const r = await iperf3Client(port, ["-t", String(SECONDS), ...c.args], (SECONDS + 60) * 1000);
      if (r.error) throw new Error(`iperf3 ${kind} ${c.name}: ${r.error}`);
      figures[c.name] = Number(r.mibPerSecond.toFixed(2));
      console.log(`iperf3 ${kind} ${c.name}: ${figures[c.name]} MiB/s (${r.receivedBytes} bytes received of ${r.sentBytes} sent)`);
    }
  } finally {
    await guest.stop();
    rig.cleanup();
  }
  return figures;
}

async function main(): Promise<void> {
  const guests: Record<string, { iperf3_mib_s: Record<string, number> }> = {};
  for (const kind of GUESTS) guests[kind] = { iperf3_mib_s: await measure(kind) };
  mkdirSync(OUT, { recursive: true });
  const result = { accel: "tcg", transport: "vhost-user backend, --forward-tcp 127.0.0.1:<port>=5201", seconds: SECONDS, guests };
  writeFileSync(join(OUT, "iperf3.json"), JSON.stringify(result, null, 1) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`iperf3-bench: ${(error as Error).message}`);
    process.exit(1);
  },
);
