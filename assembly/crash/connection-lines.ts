// The connection table as the crash report prints it: firmware/crash-report.c calls
// crash_log_connections (crash/index.ts) after a trap, which only reads the table. Bounded
// (MAX_CONNECTIONS lines); should the table itself be corrupted, a trap in here is caught by the
// report, which then says so and carries on with its next section.
import { Connection, CONN_CLOSED, CONN_CLOSING, CONN_CONNECTING, CONN_ESTABLISHED, CONN_FREE } from "../vsock-protocol/connection";
import { connectionAt, connectionTableReady, liveConnectionCount } from "../vsock-protocol/connection-table";
import { logDec, logEnd, logKv, logKvSigned, logStr } from "../platform/log";
import { reportLine } from "../diag/report-line";

function stateName(state: i32): string {
  if (state == CONN_FREE) return "free";
  if (state == CONN_CONNECTING) return "connecting";
  if (state == CONN_ESTABLISHED) return "established";
  if (state == CONN_CLOSING) return "closing";
  if (state == CONN_CLOSED) return "closed";
  return "unknown";
}

function inUse(index: i32): bool {
  const c = connectionAt(index);
  return changetype<usize>(c) != 0 && c.state != CONN_FREE;
}

function logConnection(c: Connection): void {
  reportLine();
  logStr("conn");
  logKv("slot", <u32>c.index);
  logStr(" state=");
  logStr(stateName(c.state));
  logStr(c.outbound ? " dir=out" : " dir=in");
  logKv("local", c.localPort);
  logStr(" peer=");
  logDec(c.peerCid);
  logStr(":");
  logDec(c.peerPort);
  logKvSigned("fd", c.fd);
  logKv("rx_bytes", c.bytesReceived);
  logKv("tx_bytes", c.bytesSent);
  logKv("rx_queued", c.rx.count);
  logKv("tx_queued", c.tx.count);
  logKv("buf_alloc", c.bufAlloc);
  logKv("fwd_cnt", c.fwdCnt);
  logKv("peer_buf_alloc", c.peerBufAlloc);
  logKv("peer_fwd_cnt", c.peerFwdCnt);
  logKv("tx_cnt", c.txCnt);
  logKv("peer_shutdown", c.peerShutdown);
  logKv("local_shutdown", c.localShutdown);
  logKv("owed", c.owed);
  logKv("dropped", c.dropped);
  logEnd();
}

// "connections live=.. shown=..", then a line per connection not free; or that there is no table.
export function logConnections(): void {
  reportLine();
  if (!connectionTableReady()) {
    logStr("connections none: the stack was not started");
    logEnd();
    return;
  }
  let shown: u32 = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) if (inUse(i)) shown++;
  logStr("connections");
  logKv("live", <u32>liveConnectionCount());
  logKv("shown", shown);
  logEnd();
  for (let i = 0; i < MAX_CONNECTIONS; i++) if (inUse(i)) logConnection(connectionAt(i));
}
