// A listening socket's accept queue: established connections no one has accepted yet.
// The queue lives in the connections themselves (listenerFd + acceptOrder), so it needs no
// memory of its own and a listener accepts any number of times.
import { Connection, CONN_FREE } from "./connection";
import { connectionAt } from "./connection-table";
import { Socket } from "./socket-table";

let nextAcceptOrder: u64 = 1;

// Connections nobody accepted yet share the table with everything else: a listener holding more
// than half of it in them is over its share, and gives them back when others need room
// (lifecycle.ts reclaimConnection).
export const LISTENER_SHARE: i32 = MAX_CONNECTIONS / 2;

export function backlogFull(listener: Socket): bool {
  return listener.pending >= listener.backlog;
}

export function overShare(listener: Socket): bool {
  return listener.pending > LISTENER_SHARE;
}

export function enqueueAccept(listener: Socket, c: Connection): void {
  c.listenerFd = listener.fd();
  c.acceptOrder = nextAcceptOrder++;
  listener.pending++;
}

// The oldest connection waiting in this listener's queue, or null.
export function oldestPending(listener: Socket): Connection | null {
  const fd = listener.fd();
  let best: Connection | null = null;
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = connectionAt(i);
    if (c.state == CONN_FREE || c.listenerFd != fd) continue;
    if (best == null || c.acceptOrder < best.acceptOrder) best = c;
  }
  return best;
}

export function removeFromAcceptQueue(listener: Socket, c: Connection): void {
  if (c.listenerFd != listener.fd()) return;
  c.listenerFd = -1;
  listener.pending--;
}
