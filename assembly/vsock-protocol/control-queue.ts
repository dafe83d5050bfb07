// RST packets waiting for a tx buffer. Receive processing never waits for tx (the host stops
// taking our tx while its own replies cannot be delivered, so blocking rx on tx would deadlock):
// an RST we owe is remembered here by tuple and sent on a later poll. Bounded; when full the
// oldest intent wins and the new one is dropped and counted (the peer's own timeouts cover it).
// Each RST keeps the socket type of what it answers: Linux drops a packet whose type is not its
// socket's, so a STREAM RST would never end a SEQPACKET connection.
import { LEVEL_DEBUG, logBegin, logEnd, logKv, logStr } from "../platform/log";
import { VIRTIO_VSOCK_TYPE_STREAM } from "../wire/vsock-header";

const CONTROL_QUEUE_CAPACITY: i32 = 256;
const localPorts = new StaticArray<u32>(CONTROL_QUEUE_CAPACITY);
const peerCids = new StaticArray<u64>(CONTROL_QUEUE_CAPACITY);
const peerPorts = new StaticArray<u32>(CONTROL_QUEUE_CAPACITY);
const types = new StaticArray<u16>(CONTROL_QUEUE_CAPACITY);
let head: i32 = 0;
let count: i32 = 0;
let droppedResets: u32 = 0;

export function queueReset(localPort: u32, peerCid: u64, peerPort: u32, type: u32 = VIRTIO_VSOCK_TYPE_STREAM): void {
  if (count == CONTROL_QUEUE_CAPACITY) {
    droppedResets++;
    if (logBegin(LEVEL_DEBUG, "vsock")) {
      logStr("control queue full: RST dropped");
      logKv("local", localPort);
      logKv("peer_port", peerPort);
      logKv("dropped", droppedResets);
      logEnd();
    }
    return;
  }
  const slot = (head + count) % CONTROL_QUEUE_CAPACITY;
  unchecked((localPorts[slot] = localPort));
  unchecked((peerCids[slot] = peerCid));
  unchecked((peerPorts[slot] = peerPort));
  unchecked((types[slot] = <u16>type));
  count++;
}

export function resetsQueued(): i32 {
  return count;
}

// The oldest queued RST's fields (valid while resetsQueued() > 0).
export function nextResetLocalPort(): u32 {
  return unchecked(localPorts[head]);
}
export function nextResetPeerCid(): u64 {
  return unchecked(peerCids[head]);
}
export function nextResetPeerPort(): u32 {
  return unchecked(peerPorts[head]);
}

export function nextResetType(): u32 {
  return <u32>unchecked(types[head]);
}

export function popReset(): void {
  head = (head + 1) % CONTROL_QUEUE_CAPACITY;
  count--;
}

export function clearResets(): void {
  head = 0;
  count = 0;
}

export function droppedResetCount(): u32 {
  return droppedResets;
}
