// Rx: the pool of receive buffers on the rx queue, and the packets taken from it one at a time.
// A posted buffer carries a blank header; a completed one is checked (used length against the
// header's len) before the protocol sees it. The device (device.ts) owns the queue and passes it in.
import { CACHE_LINE, dmaAllocateZeroPages } from "../virtio/dma";
import { SplitQueue } from "../virtio/split-queue";
import { HDR_LEN, VSOCK_HEADER_SIZE } from "../wire/vsock-header";
import { countDrop, DROP_RX_LEN_MISMATCH, DROP_RX_SHORT, DROP_RX_USED_EXTRA } from "./drops";

// 16 KiB of payload per rx buffer: a 64 KiB host packet costs 4 buffers instead of Linux's 16,
// and 64 of them (about 1 MiB) stay small next to the connections' receive buffers.
export const RX_BUFFER_DATA_SIZE: u32 = 16384;
export const RX_BUFFER_COUNT_MAX: u32 = 64;
const RX_BLANK_LEN: u32 = 0xffffffff; // the len of a posted rx buffer's blank header
const RX_BUFFER_STRIDE: usize = (<usize>(VSOCK_HEADER_SIZE + RX_BUFFER_DATA_SIZE) + CACHE_LINE - 1) & ~(CACHE_LINE - 1);

// The packet rxTake() took, until rxGiveBack(): its header, its payload and the payload's length
// as validated (the device could rewrite the header's len afterwards; this copy is the one the
// stack trusts). One instance for the whole run, so handing a packet over allocates nothing.
export class RxPacket {
  header: usize = 0;
  payload: usize = 0;
  payloadLength: u32 = 0;

  clear(): void {
    this.header = 0;
    this.payload = 0;
    this.payloadLength = 0;
  }
}
const rxCurrent = new RxPacket();

let splitLayout = false;
let buffers: usize = 0;
let buffersUnwritten = false; // the pool as grown: all zero, never posted, never written
let bufferCount: u32 = 0;
let currentHead: i32 = -1;
// Buffers the driver is done with, posted again in one batch (then one notify) when the used
// ring is drained. Posting late also keeps a freed head out of the rings while the device could
// still complete it a second time, so a duplicate completion is recognised as one.
const toPost = new StaticArray<usize>(RX_BUFFER_COUNT_MAX);
let toPostCount: u32 = 0;

let packets: u64 = 0;
let bytes: u64 = 0;
let refills: u64 = 0; // rx buffers posted again after use
let usedExtraBytes: u64 = 0; // used-length bytes past the header's len (tolerated, not payload)

// Rx buffers as one descriptor (false, default) or header + data descriptors (true); only the
// unit tests choose. Takes effect at the next rxFill().
export function rxSetLayout(split: bool): void {
  splitLayout = split;
}

export function rxLayoutSplit(): bool {
  return splitLayout;
}

export function rxBufferCount(): u32 {
  return bufferCount;
}

export function rxPacketCount(): u64 {
  return packets;
}

export function rxByteCount(): u64 {
  return bytes;
}

export function rxRefillCount(): u64 {
  return refills;
}

export function rxUsedExtraByteCount(): u64 {
  return usedExtraBytes;
}

export function rxAllocateOnce(): void {
  if (buffers != 0) return;
  buffers = dmaAllocateZeroPages(<usize>RX_BUFFER_COUNT_MAX * RX_BUFFER_STRIDE);
  buffersUnwritten = true;
}

// The first fill of a pool still all zero from memory.grow leaves the headers as they are: a
// forged completion of such a buffer replays nothing (its zero header is refused as a packet),
// and writing 64 headers 16 KiB apart would touch 64 pages at boot for nothing.
function postRx(q: SplitQueue, buffer: usize): void {
  if (!buffersUnwritten) blankHeader(buffer);
  if (splitLayout) {
    q.stage(buffer, VSOCK_HEADER_SIZE, true);
    q.stage(buffer + VSOCK_HEADER_SIZE, RX_BUFFER_DATA_SIZE, true);
  } else {
    q.stage(buffer, VSOCK_HEADER_SIZE + RX_BUFFER_DATA_SIZE, true);
  }
  q.publish(buffer);
}

function blankHeader(buffer: usize): void {
  // A blank header: a device that "completes" this buffer without writing it (a stale or forged
  // used entry) hands back zeros and a len no used length can cover (rx_len_mismatch), instead of
  // replaying the last packet. (A len of 0 would pass: a header len below the used length is
  // tolerated, as in Linux.)
  memory.fill(buffer, 0, VSOCK_HEADER_SIZE);
  store<u32>(buffer + HDR_LEN, RX_BLANK_LEN);
}

// Posts every rx buffer the queue has room for; before DRIVER_OK (VSOCK.md rule 2).
export function rxFill(q: SplitQueue): void {
  const perBuffer: u32 = splitLayout ? 2 : 1;
  bufferCount = q.size / perBuffer < RX_BUFFER_COUNT_MAX ? q.size / perBuffer : RX_BUFFER_COUNT_MAX;
  for (let i: u32 = 0; i < bufferCount; i++) postRx(q, buffers + <usize>i * RX_BUFFER_STRIDE);
  buffersUnwritten = false; // a later fill (after a device reset) posts used buffers
  currentHead = -1;
  toPostCount = 0;
  rxCurrent.clear();
}

function recycleRx(q: SplitQueue, head: i32): void {
  const buffer = q.token(head);
  q.release(head);
  if (toPostCount < RX_BUFFER_COUNT_MAX) unchecked((toPost[toPostCount++] = buffer));
}

function flushRx(q: SplitQueue): void {
  if (toPostCount == 0) return;
  for (let i: u32 = 0; i < toPostCount; i++) postRx(q, unchecked(toPost[i]));
  refills += toPostCount;
  toPostCount = 0;
  q.kick();
}

function countRxUsedExtra(extra: u32): void {
  usedExtraBytes += extra;
  countDrop(DROP_RX_USED_EXTRA, extra);
}

// The next valid packet from the rx queue, or null when there is none; valid until rxGiveBack().
export function rxTake(q: SplitQueue): RxPacket | null {
  while (true) {
    const head = q.popUsed();
    if (head < 0) break;
    const buffer = q.token(head);
    const used = q.usedLength;
    if (!q.usedLengthValid) {
      recycleRx(q, head); // the queue counted and logged it (used_too_long)
      continue;
    }
    if (used < VSOCK_HEADER_SIZE) {
      countDrop(DROP_RX_SHORT, used);
      recycleRx(q, head);
      continue;
    }
    const len = load<u32>(buffer + HDR_LEN);
    if (len > used - VSOCK_HEADER_SIZE) {
      countDrop(DROP_RX_LEN_MISMATCH, len);
      recycleRx(q, head);
      continue;
    }
    // Like Linux (virtio_vsock_rx_fill/..._rx_work), the header's len rules and a longer used
    // length is tolerated: the bytes past it are not payload. Counted, first one at warn.
    if (len < used - VSOCK_HEADER_SIZE) countRxUsedExtra(used - VSOCK_HEADER_SIZE - len);
    currentHead = head;
    rxCurrent.header = buffer;
    rxCurrent.payload = buffer + VSOCK_HEADER_SIZE;
    rxCurrent.payloadLength = len;
    packets++;
    bytes += len;
    return rxCurrent;
  }
  // Buffers go back in batches of half the pool: reposting after every packet cost a notify (a VM
  // exit) per packet in request/response traffic, since vhost asks for a kick whenever its send
  // queue runs empty. The device always keeps at least half the buffers.
  if (toPostCount * 2 >= bufferCount) flushRx(q);
  return null;
}

// Gives the packet rxTake() returned back to the pool (nothing when none is held).
export function rxGiveBack(q: SplitQueue): void {
  if (currentHead < 0) return;
  recycleRx(q, currentHead);
  currentHead = -1;
  rxCurrent.clear();
  // Normally rxTake() reposts once the used ring is drained; do not let the device starve meanwhile.
  if (toPostCount * 2 >= bufferCount) flushRx(q);
}
