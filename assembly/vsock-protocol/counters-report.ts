// The counters report: packets by op each way, credit traffic, rx buffer refills and tx stalls,
// then the device layer's own counters and the rejections. The log lines are written only when
// asked: at exit, by the stats service (port 1237), and every N seconds with
// `opt/vsockfw/counters=<seconds>`. The lines:
//   info vsock: counters why=<why> conns=<live> rx_packets=.. tx_packets=.. credit_updates_sent=.. ...
//   info vsock: packets dir=<rx|tx> request=.. response=.. rst=.. shutdown=.. rw=.. credit_update=.. credit_request=.. other=..
// followed by the device layer's own (vsock-dev counters, `rejections total=.. <reason>=..`, per queue).
import { LEVEL_INFO, logEnd, logKv, logKvStr, logStartLine, logStr } from "../platform/log";
import { packetsByOp, packetTotal, STALL_CREDIT, STALL_RING, stallCount } from "../diag/counters";
import { rejectionTotal } from "../diag/rejections";
import { liveConnectionCount } from "./connection-table";
import { COUNTER_RX_REFILLS, deviceCounter, deviceLogCounters } from "../vsock-device/device";
import { VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_UPDATE } from "../wire/vsock-header";

let intervalNs: u64 = 0;
let nextReportNs: u64 = 0;

function logPackets(direction: string, rx: bool): void {
  logStartLine(LEVEL_INFO, "vsock");
  logStr("packets");
  logKvStr("dir", direction);
  logKv("request", packetsByOp(rx, 1));
  logKv("response", packetsByOp(rx, 2));
  logKv("rst", packetsByOp(rx, 3));
  logKv("shutdown", packetsByOp(rx, 4));
  logKv("rw", packetsByOp(rx, 5));
  logKv("credit_update", packetsByOp(rx, 6));
  logKv("credit_request", packetsByOp(rx, 7));
  logKv("other", packetsByOp(rx, 0));
  logEnd();
}

// Every counter, whatever the build's log level (they were asked for). `conns` is the live
// connections but the `asking` ones (the stats service's own request connection).
export function logCounters(why: string, asking: i32 = 0): void {
  logStartLine(LEVEL_INFO, "vsock");
  logStr("counters");
  logKvStr("why", why);
  const live = liveConnectionCount();
  logKv("conns", <u64>(live > asking ? live - asking : 0));
  logKv("rx_packets", packetTotal(true));
  logKv("tx_packets", packetTotal(false));
  logKv("credit_updates_sent", packetsByOp(false, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
  logKv("credit_updates_received", packetsByOp(true, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
  logKv("credit_requests_received", packetsByOp(true, VIRTIO_VSOCK_OP_CREDIT_REQUEST));
  logKv("rx_refills", deviceCounter(COUNTER_RX_REFILLS));
  logKv("tx_stalls_credit", stallCount(STALL_CREDIT));
  logKv("tx_stalls_ring", stallCount(STALL_RING));
  logKv("drops", rejectionTotal());
  logEnd();
  logPackets("rx", true);
  logPackets("tx", false);
  deviceLogCounters();
}

// `opt/vsockfw/counters=<seconds>`: counters every that many seconds (0 or absent: never).
export function countersConfigure(option: string): void {
  let seconds: u64 = 0;
  for (let i = 0; i < option.length; i++) {
    const c = option.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || i >= 6) return;
    seconds = seconds * 10 + <u64>(c - 0x30);
  }
  intervalNs = seconds * 1000000000;
  nextReportNs = 0;
}

export function countersPoll(now: u64): void {
  if (intervalNs == 0) return;
  if (nextReportNs == 0) nextReportNs = now + intervalNs;
  if (now < nextReportNs) return;
  nextReportNs = now + intervalNs;
  logCounters("interval");
}
