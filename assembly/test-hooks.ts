// Test hooks for the unit build only: the Makefile passes this file as a second entry to the unit
// target (`asc assembly/main.ts assembly/test-hooks.ts --target unit`), so these exports never
// reach the image (tests/unit/image-exports.test.ts checks). Every test-only export lives here or
// in a file only this one re-exports: the device layer's hooks, the main loop's step, connection
// internals the wire does not show, and counters started near their 4 GiB wrap.
import { EINVAL } from "./vsock-protocol/errors";
import { Connection, CONN_FREE } from "./vsock-protocol/connection";
import { connectionAt, findConnection, liveConnectionCount, setCounterStart } from "./vsock-protocol/connection-table";
import { MAX_SOCKETS, SOCK_FREE, socketAt, socketForFd } from "./vsock-protocol/socket-table";
import { setEphemeralRange } from "./socket-api/ports";
import { pollOrHalt } from "./main-loop";

// The device layer alone (fw_device_*), the rejection registry by name (fw_rejection_*), the
// rx layout, and the device's COUNTER_*/DROP_* numbers.
export * from "./vsock-device/device-test-exports";

// One round of the main loop as the image runs it: a poll, then the idle policy.
export function fw_poll_or_halt(): void {
  pollOrHalt();
}

// Live connections.
export function vsock_connection_count(): i32 {
  return liveConnectionCount();
}

// The ephemeral port range connect() picks from; -EINVAL for a range the ports module refuses.
export function vsock_set_ephemeral_range(first: u32, last: u32): i32 {
  return setEphemeralRange(first, last) ? 0 : -EINVAL;
}

// New connections start as if `bytes` bytes had already gone each way (0: a normal start).
export function vsock_test_counter_start(bytes: u64): void {
  setCounterStart(bytes);
}

// The receive accounting of the connection for this tuple, for the simulator's credit-integrity
// invariant, one field at a time (no memory to share): 0 bytes arrived, 1 fwd_cnt, 2 bytes
// buffered, 3 bytes dropped. -1 when the tuple has no connection.
export function vsock_test_rx_accounting(localPort: u32, peerCid: u64, peerPort: u32, field: i32): i64 {
  const c = findConnection(localPort, peerCid, peerPort);
  if (c == null) return -1;
  if (field == 0) return <i64>c.bytesArrived;
  if (field == 1) return <i64>c.fwdCnt;
  if (field == 2) return <i64>c.rx.count;
  return <i64>c.dropped;
}

// One ring of the connection behind fd (0 receive, 1 send): at out, u32 head, count, capacity.
// 1 when fd holds a connection, 0 when not.
export function vsock_test_ring(fd: i32, which: i32, out: usize): i32 {
  const s = socketForFd(fd);
  if (s == null || s.conn == null) return 0;
  const c: Connection = s.conn!;
  const ring = which == 0 ? c.rx : c.tx;
  store<u32>(out, ring.head);
  store<u32>(out + 4, ring.count);
  store<u32>(out + 8, ring.capacity);
  return 1;
}

// Sockets not free (listeners included): what applications hold open.
export function vsock_open_socket_count(): i32 {
  let open = 0;
  for (let i = 0; i < MAX_SOCKETS; i++) if (socketAt(i).state != SOCK_FREE) open++;
  return open;
}

// Bytes held in the receive or send rings of connections still in the table (a freed slot's
// rings are emptied when it is used again).
export function vsock_buffered_bytes(): u64 {
  let total: u64 = 0;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state != CONN_FREE) total += <u64>c.rx.count + <u64>c.tx.count;
  }
  return total;
}
