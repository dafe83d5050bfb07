// Debian's own iperf3 (3.12, no vsock support) against the firmware's iperf3 server (port 5201)
// under QEMU TCG on the vhost-user backend, through the backend's TCP forward: forward, -R, -P 4,
// --bidir and a short -n run, each checked through the client's JSON (the bytes the receiver counted are
// the bytes the sender sent; -R with -n, see below); ten tests back to back leave conns=0 in the log and in the stats
// service (1237, also forwarded); a malformed client over the forward gets iperf3's error state.
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "node:net";
import { test } from "node:test";
import { createRig } from "./harness";
import { iperf3Client, Iperf3Report } from "./iperf3-client";
import { QemuGuest } from "./qemu-guest";

const CID = 33;
const IPERF3_TIMEOUT_MS = 60_000;

/** Bytes a TCP client gets from a forwarded port after sending `request` (until the guest closes). */
function exchange(port: number, request: Uint8Array, ms = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => s.end(request));
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close from port ${port} within ${ms} ms; got ${got.toString("hex")}`));
    }, ms);
    s.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function checkExact(r: Iperf3Report, what: string): void {
  assert.equal(r.error, null, `${what}: iperf3 says ${r.error}`);
  assert.ok(r.sentBytes > 0, `${what}: nothing sent`);
  assert.equal(r.receivedBytes, r.sentBytes, `${what}: received ${r.receivedBytes} of ${r.sentBytes} sent`);
  console.log(`iperf3 ${what}: ${r.sentBytes} bytes, ${r.mibPerSecond.toFixed(2)} MiB/s`);
}

test("Debian's iperf3 through the TCP forward: forward, -R, -P 4, --bidir, -n; ten in a row leave conns=0; a malformed client", { timeout: 600_000 }, async () => {
  const rig = await createRig("iperf3", [{ cid: CID }], [
    { address: "127.0.0.1", port: 0, guestPort: 5201 },
    { address: "127.0.0.1", port: 0, guestPort: 1237 },
  ]);
  const fwLog = join(rig.results, "debug.log");
  const guest = new QemuGuest({ vhostSocket: rig.vmConfig(CID).socket, debugLog: fwLog, timeoutMs: 580_000 });
  const [iperf3, stats] = rig.backend.forwards.map((f) => f.port);
  try {
    await guest.waitForLog(/info app: ready: cid=33 .* iperf3=5201/, 120_000);
    checkExact(await iperf3Client(iperf3, ["-t", "2"], IPERF3_TIMEOUT_MS), "forward -t 2");
    // -R: with -n the server sends exactly n bytes and the client counts them all.
    checkExact(await iperf3Client(iperf3, ["-n", "100M", "-R"], IPERF3_TIMEOUT_MS), "-R -n 100M");
    // -R -t: iperf3's client counts only what it read before its TEST_END, so bytes still on the
    // way then are sent but not counted (as with iperf3's own server); the test completes.
    const reverseTimed = await iperf3Client(iperf3, ["-t", "2", "-R"], IPERF3_TIMEOUT_MS);
    assert.equal(reverseTimed.error, null);
    assert.ok(reverseTimed.receivedBytes > 0 && reverseTimed.receivedBytes <= reverseTimed.sentBytes);
    console.log(`iperf3 -R -t 2: sent ${reverseTimed.sentBytes}, counted ${reverseTimed.receivedBytes}, ${reverseTimed.mibPerSecond.toFixed(2)} MiB/s`);
    const parallel = await iperf3Client(iperf3, ["-t", "2", "-P", "4"], IPERF3_TIMEOUT_MS);
    checkExact(parallel, "-P 4 -t 2");
    assert.equal(parallel.json.end.streams.length, 4);
    for (const s of parallel.json.end.streams) assert.equal(s.receiver.bytes, s.sender.bytes, "per stream");
    checkExact(await iperf3Client(iperf3, ["-n", "100M", "-P", "4", "-R"], IPERF3_TIMEOUT_MS), "-P 4 -R -n 100M");
    // --bidir: the client's half is counted exactly; the server's half ends at the client's TEST_END.
    const bidir = await iperf3Client(iperf3, ["--bidir", "-P", "2", "-n", "20M"], IPERF3_TIMEOUT_MS);
    checkExact(bidir, "--bidir -P 2 -n 20M");
    const reverseHalf = bidir.json.end.sum_received_bidir_reverse.bytes;
    assert.ok(reverseHalf > 0 && reverseHalf <= bidir.json.end.sum_sent_bidir_reverse.bytes, `bidir reverse half ${reverseHalf}`);
    const short = await iperf3Client(iperf3, ["-n", "2M", "-l", "64K"], IPERF3_TIMEOUT_MS);
    checkExact(short, "-n 2M -l 64K");
    assert.equal(short.sentBytes, 2 << 20, "-n: exactly the bytes asked for");

    // A malformed client over the forward: SERVER_ERROR (-2), IERECVCOOKIE (106), EPROTO (71), closed.
    const badCookie = await exchange(iperf3, Buffer.alloc(37, 0x07));
    assert.equal(badCookie.toString("hex"), "fe0000006a00000047");
    // An oversized JSON length: SERVER_ERROR, IERECVPARAMS (114), EMSGSIZE (90) after PARAM_EXCHANGE (9).
    const cookie = Buffer.concat([Buffer.from("abcdefghijklmnopqrstuvwxyz2345672345"), Buffer.from([0])]);
    const oversized = await exchange(iperf3, Buffer.concat([cookie, Buffer.from([0xff, 0xff, 0xff, 0xff])]));
    assert.equal(oversized.toString("hex"), "09fe000000720000005a");
    assert.match(guest.log(), /warn app: iperf3: test aborted: bad cookie/);

    // Ten tests back to back, then nothing is left.
    for (let i = 0; i < 10; i++) {
      const r = await iperf3Client(iperf3, ["-n", "512K", "-l", "32K", ...(i % 2 ? ["-R"] : [])], IPERF3_TIMEOUT_MS);
      assert.equal(r.error, null, `test ${i}: ${r.error}`);
      assert.equal(r.receivedBytes, r.sentBytes, `test ${i}`);
    }
    // The last test's closes may still be under way when the client exits: ask until they are done.
    let report = "";
    for (let i = 0; i < 20 && !/ conns=0 /.test(report); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 250));
      report = (await exchange(stats, new Uint8Array(0))).toString();
    }
    assert.match(report, /counters why=request conns=0 /, report);
    // The log's last count of live connections (a connection line, or a folded one) reaches 0.
    const lastConns = () => [...guest.log().matchAll(/ conns=(\d+)/g)].at(-1)?.[1];
    for (let i = 0; i < 100 && lastConns() !== "0"; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(lastConns(), "0", "conns=0 in the log");
    assert.match(guest.log(), /iperf3: test done .* tests=17\n/);
    assert.deepEqual(rig.backend.vm(CID).device.violations, []);
  } finally {
    await guest.stop();
    rig.cleanup();
  }
});
