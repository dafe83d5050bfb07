// Tx: a pool of whole-packet buffers (header + up to 64 KiB). The protocol acquires one, writes a
// packet into it and submits it; buffers come back when the device has used them. Each buffer's
// holder is tracked, so a double submit or discard cannot corrupt the pool. The device
// (device.ts) owns the queue and passes it in.
import { CACHE_LINE, dmaAllocate } from "../virtio/dma";
import { SplitQueue } from "../virtio/split-queue";
import { HDR_LEN, VSOCK_HEADER_SIZE } from "../wire/vsock-header";
import { countDrop, DROP_TX_INVALID } from "./drops";

export const TX_PAYLOAD_MAX: u32 = 65536;
// Each tx buffer holds a whole packet (header + up to 64 KiB): 32 of them is about 2 MiB.
export const TX_BUFFER_COUNT_MAX: u32 = 32;
const TX_BUFFER_STRIDE: usize = (<usize>(VSOCK_HEADER_SIZE + TX_PAYLOAD_MAX) + CACHE_LINE - 1) & ~(CACHE_LINE - 1);

let buffers: usize = 0;
let bufferCount: u32 = 0;
const free = new StaticArray<usize>(TX_BUFFER_COUNT_MAX);
const TX_IN_POOL: u8 = 0;
const TX_ACQUIRED: u8 = 1;
const TX_IN_FLIGHT: u8 = 2;
const state = new StaticArray<u8>(TX_BUFFER_COUNT_MAX);
let freeCount: u32 = 0;
let inFlightCount: i32 = 0;

let packets: u64 = 0;
let bytes: u64 = 0;

export function txPacketCount(): u64 {
  return packets;
}

export function txByteCount(): u64 {
  return bytes;
}

export function txBufferCount(): u32 {
  return bufferCount;
}

// Buffers submitted and not yet given back by the device (as last reclaimed).
export function txInFlightCount(): i32 {
  return inFlightCount;
}

export function txAllocateOnce(): void {
  if (buffers == 0) buffers = dmaAllocate(<usize>TX_BUFFER_COUNT_MAX * TX_BUFFER_STRIDE, CACHE_LINE, false);
}

// Every buffer back in the pool, as many as the queue can hold.
export function txFill(q: SplitQueue): void {
  bufferCount = q.size < TX_BUFFER_COUNT_MAX ? q.size : TX_BUFFER_COUNT_MAX;
  freeCount = 0;
  for (let i = <i32>bufferCount - 1; i >= 0; i--) {
    unchecked((free[freeCount++] = buffers + <usize>i * TX_BUFFER_STRIDE));
    unchecked((state[i] = TX_IN_POOL));
  }
  inFlightCount = 0;
}

// Takes back the buffers the device has used.
export function txReclaim(q: SplitQueue): void {
  if (q.inFlight == 0) return;
  while (true) {
    const head = q.popUsed();
    if (head < 0) return;
    const buffer = q.token(head);
    q.release(head);
    const index = txIndex(buffer);
    if (index >= 0 && unchecked(state[index]) == TX_IN_FLIGHT) {
      unchecked((state[index] = TX_IN_POOL));
      unchecked((free[freeCount++] = buffer));
      inFlightCount--;
    }
  }
}

// A free buffer (0 when every one is in use).
export function txTake(q: SplitQueue): usize {
  txReclaim(q);
  if (freeCount == 0) return 0;
  const buffer = unchecked(free[--freeCount]);
  unchecked((state[txIndex(buffer)] = TX_ACQUIRED));
  return buffer;
}

// The pool index of a tx buffer, or -1 for anything that is not one.
function txIndex(buffer: usize): i32 {
  if (buffer < buffers || buffer >= buffers + <usize>bufferCount * TX_BUFFER_STRIDE) return -1;
  if ((buffer - buffers) % TX_BUFFER_STRIDE != 0) return -1;
  return <i32>((buffer - buffers) / TX_BUFFER_STRIDE);
}

function isAcquired(buffer: usize): bool {
  const index = txIndex(buffer);
  return index >= 0 && unchecked(state[index]) == TX_ACQUIRED;
}

// Gives back a buffer from txTake() that will not be submitted after all.
export function txDiscard(buffer: usize): void {
  if (!isAcquired(buffer)) return;
  unchecked((state[txIndex(buffer)] = TX_IN_POOL));
  unchecked((free[freeCount++] = buffer));
}

// Puts an acquired buffer holding a packet with `payloadLength` bytes of payload on the queue.
export function txSend(q: SplitQueue, buffer: usize, payloadLength: u32): void {
  if (!isAcquired(buffer) || payloadLength > TX_PAYLOAD_MAX || load<u32>(buffer + HDR_LEN) != payloadLength) {
    countDrop(DROP_TX_INVALID, payloadLength);
    txDiscard(buffer);
    return;
  }
  // One descriptor: header and payload are contiguous, and virtio 1.x devices take any layout.
  q.stage(buffer, VSOCK_HEADER_SIZE + payloadLength, false);
  if (!q.publish(buffer)) {
    countDrop(DROP_TX_INVALID, payloadLength); // cannot happen: the pool is no larger than the queue
    txDiscard(buffer);
    return;
  }
  unchecked((state[txIndex(buffer)] = TX_IN_FLIGHT));
  inFlightCount++;
  packets++;
  bytes += payloadLength;
}
