// The virtio-vsock device (virtio 1.2, 5.10) as packets: the protocol layer reads validated rx
// packets one at a time, fills tx buffers, and polls the event queue. This file knows queues and
// buffers, nothing about connections. Queues: 0 rx, 1 tx, 2 event.
import { findPciFunction, PciFunction } from "../pci/scan";
import { logBdf } from "../pci/bdf-log";
import { pciAssignResources, pciEnableDevice, pciResourcesAssigned } from "../pci/resources";
import { LEVEL_DEBUG, LEVEL_ERROR, LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logHex, logKv, logKvHex, logStr } from "../platform/log";
import { readVirtioCapabilities, VirtioPciCapabilities } from "../virtio/pci-capabilities";
import { PciTransport } from "../virtio/pci-transport";
import { negotiatedFeatures, virtioDriverOk, virtioFail, virtioNegotiate } from "../virtio/bring-up";
import { VIRTIO_F_EVENT_IDX, VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK, VirtioError } from "../virtio/constants";
import { dmaAllocate } from "../virtio/dma";
import { SplitQueue, VIRTQ_MAX_SIZE } from "../virtio/split-queue";
import { VirtioTransport } from "../virtio/transport";
import { logAccessCosts } from "../virtio/cost-probe";
import { confirmDeviceInterrupts, deviceInterruptsActive, deviceInterruptsOff, routeDeviceInterrupts } from "../virtio/interrupts";
import {
  countRejection,
  logRejections,
  REJECT_CONFIG_UNSTABLE,
  REJECT_EVENT_SHORT,
  REJECT_EVENT_UNKNOWN,
  REJECT_GUEST_CID_INVALID,
  REJECT_RX_LEN_MISMATCH,
  REJECT_RX_SHORT,
  REJECT_RX_USED_EXTRA,
  REJECT_TX_INVALID,
  REJECT_USED_TOO_LONG,
  rejectionCount,
} from "../diag/rejections";

export const VSOCK_HEADER_SIZE: u32 = 44;
export const TX_PAYLOAD_MAX: u32 = 65536;
const HEADER_LEN_OFFSET: usize = 24;
const RX_BLANK_LEN: u32 = 0xffffffff; // the len of a posted rx buffer's blank header

// 16 KiB of payload per rx buffer: a 64 KiB host packet costs 4 buffers instead of Linux's 16,
// and 64 of them (about 1 MiB) stay small next to the connections' receive buffers.
export const RX_BUFFER_DATA_SIZE: u32 = 16384;
export const RX_BUFFER_COUNT_MAX: u32 = 64;
// Each tx buffer holds a whole packet (header + up to 64 KiB): 32 of them is about 2 MiB.
export const TX_BUFFER_COUNT_MAX: u32 = 32;
const EVENT_BUFFER_COUNT: u32 = 4;
const EVENT_BUFFER_SIZE: u32 = 4; // struct virtio_vsock_event { le32 id; }
const BUFFER_ALIGNMENT: usize = 64;
const RX_BUFFER_STRIDE: usize = (<usize>(VSOCK_HEADER_SIZE + RX_BUFFER_DATA_SIZE) + BUFFER_ALIGNMENT - 1) & ~(BUFFER_ALIGNMENT - 1);
const TX_BUFFER_STRIDE: usize = (<usize>(VSOCK_HEADER_SIZE + TX_PAYLOAD_MAX) + BUFFER_ALIGNMENT - 1) & ~(BUFFER_ALIGNMENT - 1);
const EVENT_BUFFER_STRIDE: usize = 16;

const VIRTIO_VSOCK_PCI_VENDOR: u32 = 0x1af4;
const VIRTIO_VSOCK_PCI_DEVICE_MODERN: u32 = 0x1053; // 0x1040 + device type 19
const VIRTIO_VSOCK_PCI_DEVICE_TRANSITIONAL: u32 = 0x1012;
const VIRTIO_VSOCK_CONFIG_GUEST_CID: u32 = 0; // le64
const VIRTIO_VSOCK_CONFIG_SIZE: u32 = 8;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: u32 = 0;
// What an event buffer holds while posted: no event has this id, so a completion the device never
// wrote is refused (event_unknown) instead of reading as TRANSPORT_RESET (id 0).
const EVENT_ID_BLANK: u32 = 0xffffffff;
const CONFIG_READ_ATTEMPTS: i32 = 16;

// No vsock feature bits yet: without any, the device and we speak STREAM (5.10.3).
// SEQPACKET (bit 1) gets accepted once the protocol layer implements it.
const VSOCK_DRIVER_FEATURES: u64 = 0;

export const QUEUE_RX: u32 = 0;
export const QUEUE_TX: u32 = 1;
export const QUEUE_EVENT: u32 = 2;
const QUEUE_COUNT: u32 = 3;

// Drop reasons of this layer (tests name them); each is a firmware-wide rejection reason.
export const DROP_RX_SHORT: i32 = 0; // used length < header
export const DROP_RX_LEN_MISMATCH: i32 = 1; // header len != used length - header
export const DROP_RX_USED_TOO_LONG: i32 = 2; // used length beyond the buffer (the virtqueue rejects it)
export const DROP_EVENT_SHORT: i32 = 3;
export const DROP_EVENT_UNKNOWN: i32 = 4;
export const DROP_TX_INVALID: i32 = 5; // txSubmit with a foreign buffer or a bad length
export const DROP_RX_USED_EXTRA: i32 = 6; // header len < used length - header: extra bytes ignored, packet kept
const DROP_KINDS: i32 = 7;

function dropReason(kind: i32): i32 {
  if (kind == DROP_RX_SHORT) return REJECT_RX_SHORT;
  if (kind == DROP_RX_LEN_MISMATCH) return REJECT_RX_LEN_MISMATCH;
  if (kind == DROP_RX_USED_TOO_LONG) return REJECT_USED_TOO_LONG;
  if (kind == DROP_EVENT_SHORT) return REJECT_EVENT_SHORT;
  if (kind == DROP_EVENT_UNKNOWN) return REJECT_EVENT_UNKNOWN;
  if (kind == DROP_RX_USED_EXTRA) return REJECT_RX_USED_EXTRA;
  return REJECT_TX_INVALID;
}

function dropName(kind: i32): string {
  if (kind == DROP_RX_SHORT) return "rx packet shorter than the header";
  if (kind == DROP_RX_LEN_MISMATCH) return "rx header len disagrees with used length";
  if (kind == DROP_EVENT_SHORT) return "event shorter than 4 bytes";
  if (kind == DROP_EVENT_UNKNOWN) return "unknown event id";
  if (kind == DROP_RX_USED_EXTRA) return "rx used length beyond the header len, extra bytes ignored";
  return "invalid tx submit";
}

let transport: VirtioTransport | null = null;
let rxQueue: SplitQueue | null = null;
let txQueue: SplitQueue | null = null;
let eventQueue: SplitQueue | null = null;
let guestCid: u64 = 0; // the one copy: the protocol asks deviceGuestCid()
let features: u64 = 0;

let rxSplitLayout = false;
let rxBuffers: usize = 0;
let rxBufferCount: u32 = 0;
let rxCurrentHead: i32 = -1;
// Buffers the driver is done with, posted again in one batch (then one notify) when the used
// ring is drained. Posting late also keeps a freed head out of the rings while the device could
// still complete it a second time, so a duplicate completion is recognised as one.
const rxToPost = new StaticArray<usize>(RX_BUFFER_COUNT_MAX);
let rxToPostCount: u32 = 0;
// The packet rxNext() took, until rxRelease(): its header, its payload and the payload's length
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

let txBuffers: usize = 0;
let txBufferCount: u32 = 0;
const txFree = new StaticArray<usize>(TX_BUFFER_COUNT_MAX);
// Who holds each tx buffer, so a double submit or discard cannot corrupt the pool.
const TX_IN_POOL: u8 = 0;
const TX_ACQUIRED: u8 = 1;
const TX_IN_FLIGHT: u8 = 2;
const txState = new StaticArray<u8>(TX_BUFFER_COUNT_MAX);
let txFreeCount: u32 = 0;
let txInFlightCount: i32 = 0;
let eventBuffers: usize = 0;
const eventToPost = new StaticArray<usize>(EVENT_BUFFER_COUNT);

let rxPackets: u64 = 0;
let rxBytes: u64 = 0;
let txPackets: u64 = 0;
let txBytes: u64 = 0;
let transportResets: u64 = 0;
let rxRefills: u64 = 0; // rx buffers posted again after use
let rxUsedExtraBytes: u64 = 0; // used-length bytes past the header's len (tolerated, not payload)

export function deviceGuestCid(): u64 {
  return guestCid;
}

export function deviceNegotiatedFeatures(): u64 {
  return features;
}

// The access-cost probe (virtio/cost-probe.ts) on this device's registers; the event queue takes
// the notifies (it has nothing new, so the device only looks).
export function deviceLogAccessCosts(): void {
  const t = transport;
  if (t != null) logAccessCosts(t, QUEUE_EVENT);
}

// Rx buffers as one descriptor (false, default) or header + data descriptors (true); only the
// unit tests choose. Takes effect at the next vsockDeviceInit().
export function deviceSetRxLayout(split: bool): void {
  rxSplitLayout = split;
}

function countDrop(kind: i32, detail: u64): void {
  const reason = dropReason(kind);
  if (logBegin(countRejection(reason), "vsock-dev")) {
    logStr("dropped: ");
    logStr(dropName(kind));
    logKv("value", detail);
    logKv("count", rejectionCount(reason));
    logEnd();
  }
}

function countRxUsedExtra(extra: u32): void {
  rxUsedExtraBytes += extra;
  countDrop(DROP_RX_USED_EXTRA, extra);
}

export function deviceDropCount(kind: i32): u64 {
  return kind >= 0 && kind < DROP_KINDS ? rejectionCount(dropReason(kind)) : 0;
}

// ---- device config ----

let cidRead: u64 = 0; // the last guest_cid read from the config, checked or not

// guest_cid is a le64 read as two halves; config_generation tells us whether they belong together.
// Sets cidRead; guestCid changes only once the caller has checked it.
function readGuestCid(t: VirtioTransport): bool {
  for (let attempt = 0; attempt < CONFIG_READ_ATTEMPTS; attempt++) {
    const before = t.configGeneration();
    const low = t.readConfig32(VIRTIO_VSOCK_CONFIG_GUEST_CID);
    const high = t.readConfig32(VIRTIO_VSOCK_CONFIG_GUEST_CID + 4);
    const after = t.configGeneration();
    if (after == before) {
      cidRead = (<u64>high << 32) | <u64>low;
      return true;
    }
    if (logBegin(countRejection(REJECT_CONFIG_UNSTABLE), "vsock-dev")) {
      logStr("rejected: guest_cid read while config_generation moved, reading again");
      logKv("generation", before);
      logKv("now", after);
      logKv("count", rejectionCount(REJECT_CONFIG_UNSTABLE));
      logEnd();
    }
  }
  return false;
}

// virtio 1.2 5.10.4: the upper 32 bits of guest_cid are reserved (zero); 0, 1 and 2 (hypervisor,
// local, host) and 0xffffffff (VMADDR_CID_ANY) name no guest. Every valid cid fits a u32.
function guestCidValid(cid: u64): bool {
  return cid > 2 && cid < 0xffffffff;
}

// A device that gives us a reserved cid cannot be used: every packet we sent would claim to come
// from the host, from nobody or from everybody. One error line; the caller sets the device FAILED.
function refuseGuestCid(when: string): void {
  countRejection(REJECT_GUEST_CID_INVALID);
  if (logBegin(LEVEL_ERROR, "vsock-dev")) {
    logStr("guest_cid is reserved or above 32 bits: device set FAILED and left unused");
    logStr(" at=");
    logStr(when);
    logKvHex("guest_cid", cidRead);
    logKv("kept_cid", guestCid);
    logKv("count", rejectionCount(REJECT_GUEST_CID_INVALID));
    logEnd();
  }
}

// ---- rx ----

function postRx(q: SplitQueue, buffer: usize): void {
  // A blank header: a device that "completes" this buffer without writing it (a stale or forged
  // used entry) hands back zeros and a len no used length can cover (rx_len_mismatch), instead of
  // replaying the last packet. (A len of 0 would pass: a header len below the used length is
  // tolerated, as in Linux.)
  memory.fill(buffer, 0, VSOCK_HEADER_SIZE);
  store<u32>(buffer + HEADER_LEN_OFFSET, RX_BLANK_LEN);
  if (rxSplitLayout) {
    q.stage(buffer, VSOCK_HEADER_SIZE, true);
    q.stage(buffer + VSOCK_HEADER_SIZE, RX_BUFFER_DATA_SIZE, true);
  } else {
    q.stage(buffer, VSOCK_HEADER_SIZE + RX_BUFFER_DATA_SIZE, true);
  }
  q.publish(buffer);
}

function recycleRx(q: SplitQueue, head: i32): void {
  const buffer = q.token(head);
  q.release(head);
  if (rxToPostCount < RX_BUFFER_COUNT_MAX) unchecked((rxToPost[rxToPostCount++] = buffer));
}

function flushRx(q: SplitQueue): void {
  if (rxToPostCount == 0) return;
  for (let i: u32 = 0; i < rxToPostCount; i++) postRx(q, unchecked(rxToPost[i]));
  rxRefills += rxToPostCount;
  rxToPostCount = 0;
  q.kick();
}

// The next valid packet from the rx queue, or null when there is none; valid until rxRelease().
export function rxNext(): RxPacket | null {
  if (rxCurrentHead >= 0) rxRelease(); // the caller moved on without releasing
  const q = rxQueue;
  if (q == null) return null;
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
    const len = load<u32>(buffer + HEADER_LEN_OFFSET);
    if (len > used - VSOCK_HEADER_SIZE) {
      countDrop(DROP_RX_LEN_MISMATCH, len);
      recycleRx(q, head);
      continue;
    }
    // Like Linux (virtio_vsock_rx_fill/..._rx_work), the header's len rules and a longer used
    // length is tolerated: the bytes past it are not payload. Counted, first one at warn.
    if (len < used - VSOCK_HEADER_SIZE) countRxUsedExtra(used - VSOCK_HEADER_SIZE - len);
    rxCurrentHead = head;
    rxCurrent.header = buffer;
    rxCurrent.payload = buffer + VSOCK_HEADER_SIZE;
    rxCurrent.payloadLength = len;
    rxPackets++;
    rxBytes += len;
    return rxCurrent;
  }
  // Buffers go back in batches of half the pool: reposting after every packet cost a notify (a VM
  // exit) per packet in request/response traffic, since vhost asks for a kick whenever its send
  // queue runs empty. The device always keeps at least half the buffers.
  if (rxToPostCount * 2 >= rxBufferCount) flushRx(q);
  return null;
}

export function rxRelease(): void {
  const q = rxQueue;
  if (q == null || rxCurrentHead < 0) return;
  recycleRx(q, rxCurrentHead);
  rxCurrentHead = -1;
  rxCurrent.clear();
  // Normally rxNext() reposts once the used ring is drained; do not let the device starve meanwhile.
  if (rxToPostCount * 2 >= rxBufferCount) flushRx(q);
}

// ---- tx ----

function reclaimTx(q: SplitQueue): void {
  while (true) {
    const head = q.popUsed();
    if (head < 0) return;
    const buffer = q.token(head);
    q.release(head);
    const index = txIndex(buffer);
    if (index >= 0 && unchecked(txState[index]) == TX_IN_FLIGHT) {
      unchecked((txState[index] = TX_IN_POOL));
      unchecked((txFree[txFreeCount++] = buffer));
      txInFlightCount--;
    }
  }
}

export function txAcquire(): usize {
  const q = txQueue;
  if (q == null) return 0;
  if (q.inFlight > 0) reclaimTx(q);
  if (txFreeCount == 0) return 0;
  const buffer = unchecked(txFree[--txFreeCount]);
  unchecked((txState[txIndex(buffer)] = TX_ACQUIRED));
  return buffer;
}

// The pool index of a tx buffer, or -1 for anything that is not one.
function txIndex(buffer: usize): i32 {
  if (buffer < txBuffers || buffer >= txBuffers + <usize>txBufferCount * TX_BUFFER_STRIDE) return -1;
  if ((buffer - txBuffers) % TX_BUFFER_STRIDE != 0) return -1;
  return <i32>((buffer - txBuffers) / TX_BUFFER_STRIDE);
}

function isAcquired(buffer: usize): bool {
  const index = txIndex(buffer);
  return index >= 0 && unchecked(txState[index]) == TX_ACQUIRED;
}

// Gives back a buffer from txAcquire() that will not be submitted after all.
export function txDiscard(buffer: usize): void {
  if (!isAcquired(buffer)) return;
  unchecked((txState[txIndex(buffer)] = TX_IN_POOL));
  unchecked((txFree[txFreeCount++] = buffer));
}

export function txSubmit(buffer: usize, payloadLength: u32): void {
  const q = txQueue;
  if (q == null) return;
  if (!isAcquired(buffer) || payloadLength > TX_PAYLOAD_MAX || load<u32>(buffer + HEADER_LEN_OFFSET) != payloadLength) {
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
  unchecked((txState[txIndex(buffer)] = TX_IN_FLIGHT));
  txInFlightCount++;
  txPackets++;
  txBytes += payloadLength;
}

export function txFlush(): void {
  const q = txQueue;
  if (q != null) q.kick();
}

export function txInFlight(): i32 {
  const q = txQueue;
  if (q != null && q.inFlight > 0) reclaimTx(q);
  return txInFlightCount;
}

// ---- idle halt ----

// Before an idle halt: the queues we wait on may interrupt again (rx, events, and tx while
// packets are in flight, so a full tx ring wakes us when it drains). False when a used entry is
// already there (poll instead) or when the device cannot interrupt at all.
export function deviceArmInterrupts(): bool {
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  if (!deviceInterruptsActive() || rx == null || tx == null || events == null) return false;
  let empty = rx.interruptsOn();
  empty = events.interruptsOn() && empty;
  if (txInFlight() > 0) empty = tx.interruptsOn() && empty;
  return empty;
}

// Awake again: polling, so no interrupts (each is an exit under KVM).
export function deviceDisarmInterrupts(): void {
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  if (rx != null) rx.interruptsOff();
  if (tx != null) tx.interruptsOff();
  if (events != null) events.interruptsOff();
}

// ---- events ----

export function eventPoll(): bool {
  const q = eventQueue;
  const t = transport;
  if (q == null || t == null) return false;
  let reset = false;
  let recycled: u32 = 0;
  while (!reset) {
    const head = q.popUsed();
    if (head < 0) break;
    const buffer = q.token(head);
    const id = load<u32>(buffer);
    q.release(head);
    if (recycled < EVENT_BUFFER_COUNT) unchecked((eventToPost[recycled++] = buffer));
    if (!q.usedLengthValid) continue; // the queue counted and logged it (used_too_long)
    if (q.usedLength < EVENT_BUFFER_SIZE) countDrop(DROP_EVENT_SHORT, q.usedLength);
    else if (id != VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) countDrop(DROP_EVENT_UNKNOWN, id);
    else reset = true;
  }
  // Posted again only after the loop, for the same reason as rx (see rxToPost).
  for (let i: u32 = 0; i < recycled; i++) postEvent(q, unchecked(eventToPost[i]));
  q.kick();
  if (!reset) return false;
  transportResets++;
  const previous = guestCid;
  const stable = readGuestCid(t);
  if (stable && !guestCidValid(cidRead)) {
    // Connections end (the caller resets them); the device stops being used, so nothing goes out
    // under a cid that is not ours. The old cid stays what deviceGuestCid() reports.
    refuseGuestCid("transport-reset");
    fail(t, VirtioError.GuestCidInvalid);
    return true;
  }
  if (stable) guestCid = cidRead;
  if (logBegin(stable ? LEVEL_INFO : LEVEL_ERROR, "vsock-dev")) {
    logStr(stable ? "transport reset" : "transport reset; guest_cid unreadable, keeping the old one");
    logKv("old_cid", previous);
    logKv("guest_cid", guestCid);
    logEnd();
  }
  return true;
}

function postEvent(q: SplitQueue, buffer: usize): void {
  store<u32>(buffer, EVENT_ID_BLANK);
  q.stage(buffer, EVENT_BUFFER_SIZE, true);
  q.publish(buffer);
}

// ---- bring-up ----

function queueSizeFor(maximum: u32): u32 {
  let limit = maximum < <u32>QUEUE_SIZE_MAX ? maximum : <u32>QUEUE_SIZE_MAX;
  if (limit > VIRTQ_MAX_SIZE) limit = VIRTQ_MAX_SIZE;
  if (limit == 0) return 0;
  return 1 << (31 - clz(limit)); // split queues are a power of two in size
}

// Finds (or reuses) queue `index`, sized min(device maximum, QUEUE_SIZE_MAX), and enables it.
function setUpQueue(t: VirtioTransport, index: u32, existing: SplitQueue | null): SplitQueue | null {
  const size = queueSizeFor(t.selectQueue(index));
  if (size == 0) return null;
  const eventIdx = (features & VIRTIO_F_EVENT_IDX) != 0;
  let q: SplitQueue;
  if (existing != null && existing.size == size) {
    q = existing;
    q.reset(eventIdx);
  } else {
    q = new SplitQueue(t, index, size, eventIdx);
  }
  return q;
}

function fail(t: VirtioTransport, error: VirtioError): bool {
  virtioFail(t, error);
  deviceInterruptsOff();
  rxQueue = null;
  txQueue = null;
  eventQueue = null;
  transport = null;
  return false;
}

function findDevice(): PciFunction | null {
  const modern = findPciFunction(VIRTIO_VSOCK_PCI_VENDOR, VIRTIO_VSOCK_PCI_DEVICE_MODERN);
  if (modern != null) return modern;
  return findPciFunction(VIRTIO_VSOCK_PCI_VENDOR, VIRTIO_VSOCK_PCI_DEVICE_TRANSITIONAL);
}

function allocateBuffersOnce(): void {
  if (rxBuffers == 0) rxBuffers = dmaAllocate(<usize>RX_BUFFER_COUNT_MAX * RX_BUFFER_STRIDE, BUFFER_ALIGNMENT, false);
  if (txBuffers == 0) txBuffers = dmaAllocate(<usize>TX_BUFFER_COUNT_MAX * TX_BUFFER_STRIDE, BUFFER_ALIGNMENT, false);
  if (eventBuffers == 0) eventBuffers = dmaAllocate(<usize>EVENT_BUFFER_COUNT * EVENT_BUFFER_STRIDE, BUFFER_ALIGNMENT);
}

// Posts every rx and event buffer and fills the tx pool; before DRIVER_OK (VSOCK.md rule 2).
function fillQueues(rx: SplitQueue, tx: SplitQueue, events: SplitQueue): void {
  const perBuffer: u32 = rxSplitLayout ? 2 : 1;
  rxBufferCount = rx.size / perBuffer < RX_BUFFER_COUNT_MAX ? rx.size / perBuffer : RX_BUFFER_COUNT_MAX;
  for (let i: u32 = 0; i < rxBufferCount; i++) postRx(rx, rxBuffers + <usize>i * RX_BUFFER_STRIDE);
  rxCurrentHead = -1;
  rxToPostCount = 0;
  rxCurrent.clear();
  txBufferCount = tx.size < TX_BUFFER_COUNT_MAX ? tx.size : TX_BUFFER_COUNT_MAX;
  txFreeCount = 0;
  for (let i = <i32>txBufferCount - 1; i >= 0; i--) {
    unchecked((txFree[txFreeCount++] = txBuffers + <usize>i * TX_BUFFER_STRIDE));
    unchecked((txState[i] = TX_IN_POOL));
  }
  txInFlightCount = 0;
  const eventCount = events.size < EVENT_BUFFER_COUNT ? events.size : EVENT_BUFFER_COUNT;
  for (let i: u32 = 0; i < eventCount; i++) postEvent(events, eventBuffers + <usize>i * EVENT_BUFFER_STRIDE);
}

function logFound(f: PciFunction): void {
  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("device found ");
    logBdf(f.address);
    logStr(" ");
    logHex(f.vendorId, 4);
    logStr(":");
    logHex(f.deviceId, 4);
    logEnd();
  }
}

export function vsockDeviceInit(): bool {
  const f = findDevice();
  if (f == null) {
    if (logBegin(LEVEL_ERROR, "vsock-dev")) {
      logStr("no virtio-vsock PCI function (1af4:1053 or 1af4:1012)");
      logEnd();
    }
    return false;
  }
  logFound(f);
  if (!pciResourcesAssigned()) pciAssignResources();
  pciEnableDevice(f);

  const caps = new VirtioPciCapabilities();
  const capsError = readVirtioCapabilities(f, caps);
  if (capsError != VirtioError.None) {
    if (logBegin(LEVEL_ERROR, "vsock-dev")) {
      logStr("cannot drive the device: no usable virtio structures");
      logEnd();
    }
    return false;
  }
  const t = new PciTransport(caps);
  transport = t;
  const negotiation = virtioNegotiate(t, VSOCK_DRIVER_FEATURES);
  if (negotiation != VirtioError.None) return fail(t, negotiation);
  features = negotiatedFeatures;
  if (t.configLength() < VIRTIO_VSOCK_CONFIG_SIZE) return fail(t, VirtioError.MissingCapability);
  if (t.queueCount() < QUEUE_COUNT) return fail(t, VirtioError.QueueUnavailable);
  routeDeviceInterrupts(f, t);

  const rx = setUpQueue(t, QUEUE_RX, rxQueue);
  const tx = setUpQueue(t, QUEUE_TX, txQueue);
  const events = setUpQueue(t, QUEUE_EVENT, eventQueue);
  if (rx == null || tx == null || events == null) return fail(t, VirtioError.QueueUnavailable);
  if (!rx.setUp() || !tx.setUp() || !events.setUp()) return fail(t, VirtioError.QueueNotifyOutsideCap);
  confirmDeviceInterrupts(f, t);
  rxQueue = rx;
  txQueue = tx;
  eventQueue = events;
  if (!readGuestCid(t)) return fail(t, VirtioError.ConfigUnstable);
  if (!guestCidValid(cidRead)) {
    refuseGuestCid("bring-up");
    return fail(t, VirtioError.GuestCidInvalid);
  }
  const cid = cidRead;

  allocateBuffersOnce();
  fillQueues(rx, tx, events);
  virtioDriverOk(t);
  const status = t.status();
  if ((status & VIRTIO_STATUS_DRIVER_OK) == 0 || (status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) != 0) {
    return fail(t, VirtioError.DriverOkRefused);
  }
  // The device may only look at the rings now: tell it about the buffers posted above.
  rx.kick();
  events.kick();

  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("queues");
    logKv("rx", rx.size);
    logKv("tx", tx.size);
    logKv("event", events.size);
    logKv("rx_buffers", rxBufferCount);
    logKv("rx_buffer_bytes", RX_BUFFER_DATA_SIZE);
    logStr(rxSplitLayout ? " rx_layout=split" : " rx_layout=single");
    logKv("tx_buffers", txBufferCount);
    logEnd();
  }
  guestCid = cid; // ours only once the device runs: until then the protocol sees the old one (0 at boot)
  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("ready");
    logKv("guest_cid", guestCid);
    logKvHex("features", features);
    logEnd();
  }
  return true;
}

// After a crash (assembly/crash/): a reset stops the device using our buffers before the run ends.
export function deviceResetForCrash(): bool {
  const t = transport;
  if (t == null) return false;
  t.setStatus(0);
  return true;
}

export function deviceLogCounters(): void {
  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("counters");
    logKv("rx_packets", rxPackets);
    logKv("rx_bytes", rxBytes);
    logKv("tx_packets", txPackets);
    logKv("tx_bytes", txBytes);
    logKv("tx_in_flight", txInFlightCount);
    logKv("rx_used_extra_bytes", rxUsedExtraBytes);
    logKv("transport_resets", transportResets);
    logEnd();
  }
  logRejections();
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  if (rx != null) rx.logCounters("rx");
  if (tx != null) tx.logCounters("tx");
  if (events != null) events.logCounters("event");
}

export const COUNTER_RX_PACKETS: i32 = 0;
export const COUNTER_TX_PACKETS: i32 = 1;
export const COUNTER_TRANSPORT_RESETS: i32 = 2;
export const COUNTER_RX_NOTIFIES: i32 = 3;
export const COUNTER_TX_NOTIFIES: i32 = 4;
export const COUNTER_EVENT_NOTIFIES: i32 = 5;
export const COUNTER_TX_NOTIFIES_SUPPRESSED: i32 = 6;
export const COUNTER_RX_REFILLS: i32 = 7;
export const COUNTER_RX_USED_EXTRA_BYTES: i32 = 8;

// One counter by name (COUNTER_*), for tests and the protocol layer's statistics.
export function deviceCounter(name: i32): u64 {
  if (name == COUNTER_RX_PACKETS) return rxPackets;
  if (name == COUNTER_TX_PACKETS) return txPackets;
  if (name == COUNTER_TRANSPORT_RESETS) return transportResets;
  if (name == COUNTER_RX_REFILLS) return rxRefills;
  if (name == COUNTER_RX_USED_EXTRA_BYTES) return rxUsedExtraBytes;
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  if (name == COUNTER_RX_NOTIFIES) return rx != null ? rx.notifies : 0;
  if (name == COUNTER_TX_NOTIFIES) return tx != null ? tx.notifies : 0;
  if (name == COUNTER_EVENT_NOTIFIES) return events != null ? events.notifies : 0;
  if (name == COUNTER_TX_NOTIFIES_SUPPRESSED) return tx != null ? tx.notifiesSuppressed : 0;
  return 0;
}
