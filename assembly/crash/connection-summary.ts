// The connection table as the crash report prints it: after a trap firmware/crash-report.c calls
// crash_snapshot (crash/index.ts), which only reads the table and writes fixed-size entries into a static
// area, so the C side can print them. Bounded (MAX_CONNECTIONS entries); should the table itself
// be corrupted, a trap in here is caught by the report, which then says so and carries on.
import { Connection, CONN_FREE } from "../vsock/connection";
import { connectionAt, connectionTableReady, liveConnectionCount } from "../vsock/connection-table";
import {
  CR_CONNECTION_ENTRY_SIZE,
  CR_CONNECTIONS_ADDRESS,
  CR_CONNECTIONS_CAPACITY,
  CR_CONNECTIONS_COUNT,
  CR_CONNECTIONS_LIVE,
  crashRecord,
} from "./crash-record";

export const CONNECTION_ENTRY_SIZE: u32 = 80;
// Entry fields (byte offsets).
export const CE_INDEX: usize = 0; // u32: slot in the table
export const CE_STATE: usize = 4; // u32: CONN_* (connection.ts)
export const CE_PEER_CID: usize = 8; // u64
export const CE_LOCAL_PORT: usize = 16; // u32
export const CE_PEER_PORT: usize = 20; // u32
export const CE_FD: usize = 24; // i32: -1 while queued for accept or after close
export const CE_OUTBOUND: usize = 28; // u8: 1 when we connected
export const CE_PEER_SHUTDOWN: usize = 29; // u8: VIRTIO_VSOCK_SHUTDOWN_* bits the peer sent
export const CE_LOCAL_SHUTDOWN: usize = 30; // u8: bits the application asked for
export const CE_OWED: usize = 31; // u8: OWE_* flags
export const CE_RX_QUEUED: usize = 32; // u32: received, not read yet
export const CE_TX_QUEUED: usize = 36; // u32: written, not sent yet
export const CE_BUF_ALLOC: usize = 40; // u32
export const CE_FWD_CNT: usize = 44; // u32
export const CE_PEER_BUF_ALLOC: usize = 48; // u32
export const CE_PEER_FWD_CNT: usize = 52; // u32
export const CE_TX_CNT: usize = 56; // u32
export const CE_DROPPED: usize = 60; // u32
export const CE_RX_BYTES: usize = 64; // u64
export const CE_TX_BYTES: usize = 72; // u64

const summary: usize = memory.data(<i32>(<u32>MAX_CONNECTIONS * CONNECTION_ENTRY_SIZE), 16);

export function connectionSummaryInit(): void {
  store<u32>(crashRecord + CR_CONNECTIONS_ADDRESS, <u32>summary);
  store<u32>(crashRecord + CR_CONNECTIONS_CAPACITY, <u32>MAX_CONNECTIONS);
  store<u32>(crashRecord + CR_CONNECTION_ENTRY_SIZE, CONNECTION_ENTRY_SIZE);
  store<i32>(crashRecord + CR_CONNECTIONS_COUNT, -1);
}

function summarise(entry: usize, c: Connection): void {
  store<u32>(entry + CE_INDEX, <u32>c.index);
  store<u32>(entry + CE_STATE, <u32>c.state);
  store<u64>(entry + CE_PEER_CID, c.peerCid);
  store<u32>(entry + CE_LOCAL_PORT, c.localPort);
  store<u32>(entry + CE_PEER_PORT, c.peerPort);
  store<i32>(entry + CE_FD, c.fd);
  store<u8>(entry + CE_OUTBOUND, c.outbound ? 1 : 0);
  store<u8>(entry + CE_PEER_SHUTDOWN, <u8>c.peerShutdown);
  store<u8>(entry + CE_LOCAL_SHUTDOWN, <u8>c.localShutdown);
  store<u8>(entry + CE_OWED, <u8>c.owed);
  store<u32>(entry + CE_RX_QUEUED, c.rx.count);
  store<u32>(entry + CE_TX_QUEUED, c.tx.count);
  store<u32>(entry + CE_BUF_ALLOC, c.bufAlloc);
  store<u32>(entry + CE_FWD_CNT, c.fwdCnt);
  store<u32>(entry + CE_PEER_BUF_ALLOC, c.peerBufAlloc);
  store<u32>(entry + CE_PEER_FWD_CNT, c.peerFwdCnt);
  store<u32>(entry + CE_TX_CNT, c.txCnt);
  store<u32>(entry + CE_DROPPED, c.dropped);
  store<u64>(entry + CE_RX_BYTES, c.bytesReceived);
  store<u64>(entry + CE_TX_BYTES, c.bytesSent);
}

// Fills the summary with every connection not free; returns how many (-1: no table yet).
export function snapshotConnections(): i32 {
  store<i32>(crashRecord + CR_CONNECTIONS_COUNT, -1);
  if (!connectionTableReady()) return -1;
  let count = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (changetype<usize>(c) == 0 || c.state == CONN_FREE) continue;
    summarise(summary + <usize>(<u32>count * CONNECTION_ENTRY_SIZE), c);
    count++;
  }
  store<u32>(crashRecord + CR_CONNECTIONS_LIVE, <u32>liveConnectionCount());
  store<i32>(crashRecord + CR_CONNECTIONS_COUNT, count);
  return count;
}
