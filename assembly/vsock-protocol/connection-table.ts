// The connection pool (MAX_CONNECTIONS, preallocated at boot) and lookup by the full tuple
// (local port, peer cid, peer port): two peers may use the same port numbers, and an accepted
// connection shares its listener's local port, so a port alone never identifies a connection.
import { clockNs } from "../platform/imports";
import { Connection, CONN_FREE } from "./connection";
import { logConnectionClosed, logConnectionOpened as logConnectionLine } from "./connection-log";

export const connections = new StaticArray<Connection>(MAX_CONNECTIONS);
let live: i32 = 0;
let initialized = false;
// Bytes every new connection behaves as if it had already carried each way (0 in the image; the
// unit build's test hooks set it to start the u32 counters near their 4 GiB wrap).
let counterStart: u64 = 0;

export function setCounterStart(bytes: u64): void {
  counterStart = bytes;
}

// Counters as after `bytes` bytes each way: what both peers' u32 counters would read by then.
function startCounters(c: Connection, bytes: u64): void {
  const wrapped = <u32>bytes;
  c.fwdCnt = wrapped;
  c.lastFwdCntSent = wrapped;
  c.creditEnd = wrapped;
  c.txCnt = wrapped;
  c.peerFwdCnt = wrapped;
  c.bytesArrived = bytes;
  c.bytesReceived = bytes;
  c.bytesSent = bytes;
}

export function connectionTableInit(): void {
  if (initialized) return;
  initialized = true;
  for (let i = 0; i < MAX_CONNECTIONS; i++) unchecked((connections[i] = new Connection(i)));
}

// Whether the pool exists (the crash report may run before the stack came up).
export function connectionTableReady(): bool {
  return initialized;
}

// @ts-ignore: decorator
@inline export function connectionAt(index: i32): Connection {
  return unchecked(connections[index]);
}

export function liveConnectionCount(): i32 {
  return live;
}

// The connection packets for this tuple belong to, or null.
export function findConnection(localPort: u32, peerCid: u64, peerPort: u32): Connection | null {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = unchecked(connections[i]);
    if (c.inTable() && c.matches(localPort, peerCid, peerPort)) return c;
  }
  return null;
}

// Whether an outbound connection (even an orphan still closing) holds this local port.
export function portHeldByConnection(port: u32): bool {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = unchecked(connections[i]);
    if (c.state != CONN_FREE && c.outbound && c.localPort == port) return true;
  }
  return false;
}

// A blank connection for this tuple, or null when the pool is exhausted.
export function allocateConnection(localPort: u32, peerCid: u64, peerPort: u32, outbound: bool): Connection | null {
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = unchecked(connections[i]);
    if (c.state != CONN_FREE) continue;
    c.rx.allocate();
    c.tx.allocate();
    c.clear();
    c.localPort = localPort;
    c.peerCid = peerCid;
    c.peerPort = peerPort;
    c.outbound = outbound;
    c.openedAt = clockNs();
    if (counterStart != 0) startCounters(c, counterStart);
    live++;
    return c;
  }
  return null;
}

// Logged once a connection is established (either direction); connection-log.ts decides how.
export function logConnectionOpened(c: Connection): void {
  logConnectionLine(c, live);
}

// Returns the connection to the pool. A connection that was established logs its summary.
export function freeConnection(c: Connection): void {
  if (c.state == CONN_FREE) return;
  const wasEstablished = c.established;
  c.state = CONN_FREE;
  live--;
  if (wasEstablished) logConnectionClosed(c, live);
}
