// The event queue (virtio 1.2 5.10.6.4): a few 4-byte buffers the device completes with an event
// id. The only event is TRANSPORT_RESET; the device (device.ts) re-reads the CID when one comes.
import { CACHE_LINE, dmaAllocate } from "../virtio/dma";
import { SplitQueue } from "../virtio/split-queue";
import { countDrop, DROP_EVENT_SHORT, DROP_EVENT_UNKNOWN } from "./drops";

const EVENT_BUFFER_COUNT: u32 = 4;
const EVENT_BUFFER_SIZE: u32 = 4; // struct virtio_vsock_event { le32 id; }
const EVENT_BUFFER_STRIDE: usize = 16;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: u32 = 0;
// What an event buffer holds while posted: no event has this id, so a completion the device never
// wrote is refused (event_unknown) instead of reading as TRANSPORT_RESET (id 0).
const EVENT_ID_BLANK: u32 = 0xffffffff;

let buffers: usize = 0;
const toPost = new StaticArray<usize>(EVENT_BUFFER_COUNT);

export function eventsAllocateOnce(): void {
  if (buffers == 0) buffers = dmaAllocate(<usize>EVENT_BUFFER_COUNT * EVENT_BUFFER_STRIDE, CACHE_LINE);
}

function postEvent(q: SplitQueue, buffer: usize): void {
  store<u32>(buffer, EVENT_ID_BLANK);
  q.stage(buffer, EVENT_BUFFER_SIZE, true);
  q.publish(buffer);
}

// Posts every event buffer; before DRIVER_OK (VSOCK.md rule 2).
export function eventsFill(q: SplitQueue): void {
  const count = q.size < EVENT_BUFFER_COUNT ? q.size : EVENT_BUFFER_COUNT;
  for (let i: u32 = 0; i < count; i++) postEvent(q, buffers + <usize>i * EVENT_BUFFER_STRIDE);
}

// Takes the completed events and posts their buffers again; true when one was TRANSPORT_RESET
// (the events after it stay on the ring for the next call).
export function eventsTake(q: SplitQueue): bool {
  let reset = false;
  let recycled: u32 = 0;
  while (!reset) {
    const head = q.popUsed();
    if (head < 0) break;
    const buffer = q.token(head);
    const id = load<u32>(buffer);
    q.release(head);
    if (recycled < EVENT_BUFFER_COUNT) unchecked((toPost[recycled++] = buffer));
    if (!q.usedLengthValid) continue; // the queue counted and logged it (used_too_long)
    if (q.usedLength < EVENT_BUFFER_SIZE) countDrop(DROP_EVENT_SHORT, q.usedLength);
    else if (id != VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) countDrop(DROP_EVENT_UNKNOWN, id);
    else reset = true;
  }
  // Posted again only after the loop, for the same reason as rx (see rx.ts, toPost).
  for (let i: u32 = 0; i < recycled; i++) postEvent(q, unchecked(toPost[i]));
  q.kick();
  return reset;
}
