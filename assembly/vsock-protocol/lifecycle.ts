// How a connection ends. Two steps, like Linux: the tuple is released (no more packets reach the
// connection), then the connection returns to the pool once no socket or accept queue holds it.
import { clockNs } from "../platform/imports";
import { logBegin, logEnd, logKv, logStr } from "../platform/log";
import {
  Connection,
  CONN_CLOSED,
  CONN_CLOSING,
  CONN_CONNECTING,
  CONN_ESTABLISHED,
  CONN_FREE,
  OWE_SHUTDOWN,
} from "./connection";
import { allocateConnection, connectionAt, freeConnection } from "./connection-table";
import { queueReset } from "./control-queue";
import { ECONNRESET } from "./errors";
import { oldestPending, overShare, removeFromAcceptQueue } from "./listener";
import { VIRTIO_VSOCK_SHUTDOWN_MASK } from "../wire/vsock-header";
import { countRejection, REJECT_LISTENER_OVER_SHARE, rejectionCount } from "../diag/rejections";
import { MAX_SOCKETS, Socket, SOCK_LISTENING, socketAt, socketForFd } from "./socket-table";

// Linux VSOCK_CLOSE_TIMEOUT: how long a closed connection waits for the peer's RST.
export const CLOSE_TIMEOUT_NS: u64 = 8000000000;

// Releases the tuple. `error` is what the socket reports (0: a clean end, reads drain then EOF).
// `keepQueued`: a connection waiting in an accept queue stays there whatever it holds.
export function endConnection(c: Connection, reason: string, error: i32 = 0, keepQueued: bool = false): void {
  if (c.state == CONN_FREE) return;
  if (c.endReason.length == 0) c.endReason = reason;
  if (error != 0) c.error = error;
  c.state = CONN_CLOSED;
  c.owed = 0;
  c.clearSend();
  if (c.listenerFd >= 0) {
    // Ended before anyone accepted it. With data (a client that wrote and closed at once) it
    // stays queued, like Linux: accept hands it out, reads drain the data, then EOF.
    // Without data it is dropped rather than handed out dead.
    if (keepQueued || (c.rx.count > 0 && error == 0)) return;
    discardPending(c);
    return;
  }
  if (c.fd < 0) freeConnection(c);
}

// TRANSPORT_RESET, per state as Linux (virtio_transport.c virtio_vsock_event_handle runs
// virtio_vsock_reset_sock, sk_state = TCP_CLOSE and sk_err = ECONNRESET, over af_vsock.c's
// connected table, which holds established sockets, children waiting in an accept queue and
// closed sockets still lingering; not a connect in progress). True when c was reset.
//  - connecting: untouched; not in that table: a RESPONSE can still come, else the connect times out.
//  - ended already (CLOSED): untouched. Linux stamps sk_err too, but its reads report EOF (SOCK_DONE
//    was set when the peer ended it); ours keep the buffered data, then EOF.
//  - established, held by a socket: ECONNRESET after the buffered data (Linux loses that data).
//  - established, waiting in an accept queue: stays queued, as in Linux; accept hands it out with
//    ECONNRESET, after its data.
//  - closing (the application closed): freed; the host forgot the tuple, nobody will answer.
export function resetByTransport(c: Connection): bool {
  if (c.state != CONN_ESTABLISHED && c.state != CONN_CLOSING) return false;
  c.peerShutdown = VIRTIO_VSOCK_SHUTDOWN_MASK;
  endConnection(c, "transport-reset", ECONNRESET, true);
  return true;
}

// Removes a not-yet-accepted connection from its listener's queue and frees it.
export function discardPending(c: Connection): void {
  const listener = socketForFd(c.listenerFd);
  if (listener != null) removeFromAcceptQueue(listener, c);
  c.listenerFd = -1;
  freeConnection(c);
}

// Refuses a not-yet-accepted connection: RST (if the peer still has the tuple), then discarded.
export function resetPending(c: Connection, reason: string): void {
  if (c.inTable()) queueReset(c.localPort, c.peerCid, c.peerPort, c.type);
  if (c.endReason.length == 0) c.endReason = reason;
  discardPending(c);
}

// Sends RST (queued: never blocks) and releases the tuple.
export function resetConnection(c: Connection, reason: string, error: i32 = 0): void {
  if (c.inTable()) queueReset(c.localPort, c.peerCid, c.peerPort, c.type);
  endConnection(c, reason, error);
}

// The application closed its socket: start the close handshake, or finish at once.
export function closeByApplication(c: Connection): void {
  c.fd = -1;
  if (c.state == CONN_ESTABLISHED) {
    if (c.peerShutdown == VIRTIO_VSOCK_SHUTDOWN_MASK) {
      // The peer already shut both directions down: it waits for our RST (Linux does the same).
      resetConnection(c, "local-close");
      return;
    }
    // SHUTDOWN(RCV|SEND) goes out after buffered data; then wait for the peer's RST.
    c.localShutdown = VIRTIO_VSOCK_SHUTDOWN_MASK;
    if (c.shutdownSent != VIRTIO_VSOCK_SHUTDOWN_MASK) c.owed |= OWE_SHUTDOWN;
    c.state = CONN_CLOSING;
    c.deadline = clockNs() + CLOSE_TIMEOUT_NS;
    return;
  }
  if (c.state == CONN_CONNECTING) c.endReason = "connect-abandoned";
  // CONNECTING (Linux sends nothing; a late RESPONSE meets an RST), CLOSED, or already CLOSING.
  if (c.state != CONN_CLOSING) freeConnection(c);
}

// ---- capacity ----------------------------------------------------------------------------
// Accept queues (up to 64 per listener), closing connections (held up to 8 s) and outgoing
// connects share one table. When it is full, a slot is taken back from what nobody is using:
//  1. a closing connection whose application is gone and whose SHUTDOWN is out, the one closest
//     to its timeout: it only waits for the peer's RST; ours goes now, as the timeout would send it;
//  2. else the oldest unaccepted connection of the listener holding the most of them, if it holds
//     more than its share (listener.ts LISTENER_SHARE, half the table) and is not the requester:
//     RST, as closing that listener would.
// So a REQUEST flood on one listener takes at most half the table from outgoing connects and
// other listeners. `requester` is the listener asking (null: an outgoing connect).

// A blank connection for the tuple, reclaiming a slot when the table is full; null when none.
export function allocateOrReclaim(localPort: u32, peerCid: u64, peerPort: u32, outbound: bool, requester: Socket | null): Connection | null {
  const c = allocateConnection(localPort, peerCid, peerPort, outbound);
  if (c != null || !reclaimConnection(requester)) return c;
  return allocateConnection(localPort, peerCid, peerPort, outbound);
}

function reclaimConnection(requester: Socket | null): bool {
  let closing: Connection | null = null;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state != CONN_CLOSING || c.fd >= 0 || c.owed != 0 || c.tx.count != 0) continue;
    if (closing == null || c.deadline < closing.deadline) closing = c;
  }
  if (closing != null) {
    resetConnection(closing, "close-reclaimed");
    return true;
  }
  let flooded: Socket | null = null;
  for (let i = 0; i < MAX_SOCKETS; i++) {
    const s = socketAt(i);
    if (s.state != SOCK_LISTENING || s == requester || !overShare(s)) continue;
    if (flooded == null || s.pending > flooded.pending) flooded = s;
  }
  if (flooded == null) return false;
  const victim = oldestPending(flooded)!;
  if (logBegin(countRejection(REJECT_LISTENER_OVER_SHARE), "vsock")) {
    logStr("rejected: listener over its share: its oldest queued connection reset for room");
    logKv("local", flooded.localPort);
    logKv("pending", <u64>flooded.pending);
    logKv("peer_port", victim.peerPort);
    logKv("count", rejectionCount(REJECT_LISTENER_OVER_SHARE));
    logEnd();
  }
  resetPending(victim, "reclaimed");
  return true;
}
