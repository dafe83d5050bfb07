// The virtio-vsock device (virtio 1.2, 5.10) as packets: the protocol layer reads validated rx
// packets one at a time, fills tx buffers, and polls the event queue. This file owns the transport,
// the three queues (0 rx, 1 tx, 2 event) and the guest CID, and brings the device up; the buffer
// pools are rx.ts, tx.ts and events.ts. It knows nothing about connections.
import { LEVEL_ERROR, LEVEL_INFO, logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { countRejection, logRejections, REJECT_CONFIG_UNSTABLE, REJECT_GUEST_CID_INVALID, rejectionCount } from "../diag/rejections";
import { negotiatedFeatures, virtioDriverOk, virtioFail, virtioNegotiate } from "../virtio/bring-up";
import { VIRTIO_F_EVENT_IDX, VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK, VirtioError } from "../virtio/constants";
import { logAccessCosts } from "../virtio/cost-probe";
import { confirmDeviceInterrupts, deviceInterruptsActive, deviceInterruptsOff, routeDeviceInterrupts } from "../virtio/interrupts";
import { openVirtioTransport } from "../virtio/device-probe";
import { SplitQueue, VIRTQ_MAX_SIZE } from "../virtio/split-queue";
import { VirtioTransport } from "../virtio/transport";
import { eventsAllocateOnce, eventsFill, eventsTake } from "./events";
import {
  rxAllocateOnce,
  rxBufferCount,
  rxByteCount,
  rxFill,
  rxGiveBack,
  rxLayoutSplit,
  RxPacket,
  rxPacketCount,
  rxRefillCount,
  rxTake,
  rxUsedExtraByteCount,
  RX_BUFFER_DATA_SIZE,
} from "./rx";
import { txAllocateOnce, txBufferCount, txByteCount, txFill, txInFlightCount, txPacketCount, txReclaim, txSend, txTake } from "./tx";

export { deviceDropCount } from "./drops";
export { rxSetLayout as deviceSetRxLayout, RxPacket } from "./rx";

const VIRTIO_ID_VSOCK: u32 = 19;
const VIRTIO_VSOCK_PCI_DEVICE_MODERN: u32 = 0x1053; // 0x1040 + device type 19
const VIRTIO_VSOCK_PCI_DEVICE_TRANSITIONAL: u32 = 0x1012;
const VIRTIO_VSOCK_CONFIG_GUEST_CID: u32 = 0; // le64
const VIRTIO_VSOCK_CONFIG_SIZE: u32 = 8;
const CONFIG_READ_ATTEMPTS: i32 = 16;

// VIRTIO_VSOCK_F_SEQPACKET (5.10.3): taken whenever offered. Without it the device and we speak
// STREAM only, and SEQPACKET sockets are refused (ESOCKTNOSUPPORT, socket-api/api.ts).
export const VIRTIO_VSOCK_F_SEQPACKET: u64 = 1 << 1;
const VSOCK_DRIVER_FEATURES: u64 = VIRTIO_VSOCK_F_SEQPACKET;

export const QUEUE_RX: u32 = 0;
export const QUEUE_TX: u32 = 1;
export const QUEUE_EVENT: u32 = 2;
const QUEUE_COUNT: u32 = 3;

let transport: VirtioTransport | null = null;
let rxQueue: SplitQueue | null = null;
let txQueue: SplitQueue | null = null;
let eventQueue: SplitQueue | null = null;
let guestCid: u64 = 0; // the one copy: the protocol asks deviceGuestCid()
let features: u64 = 0;
let transportResets: u64 = 0;

export function deviceGuestCid(): u64 {
  return guestCid;
}

export function deviceNegotiatedFeatures(): u64 {
  return features;
}

export function deviceSeqpacket(): bool {
  return (features & VIRTIO_VSOCK_F_SEQPACKET) != 0;
}

// The access-cost probe (virtio/cost-probe.ts) on this device's registers; the event queue takes
// the notifies (it has nothing new, so the device only looks).
export function deviceLogAccessCosts(): void {
  const t = transport;
  if (t != null) logAccessCosts(t, QUEUE_EVENT);
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

// ---- packets (the pools do the work; the queues are ours) ----

// The next valid packet from the rx queue, or null when there is none; valid until rxRelease().
export function rxNext(): RxPacket | null {
  rxRelease(); // the caller moved on without releasing
  const q = rxQueue;
  if (q == null) return null;
  return rxTake(q);
}

export function rxRelease(): void {
  const q = rxQueue;
  if (q != null) rxGiveBack(q);
}

export function txAcquire(): usize {
  const q = txQueue;
  if (q == null) return 0;
  return txTake(q);
}

export { txDiscard } from "./tx";

export function txSubmit(buffer: usize, payloadLength: u32): void {
  const q = txQueue;
  if (q != null) txSend(q, buffer, payloadLength);
}

export function txFlush(): void {
  const q = txQueue;
  if (q != null) q.kick();
}

export function txInFlight(): i32 {
  const q = txQueue;
  if (q != null) txReclaim(q);
  return txInFlightCount();
}

// ---- idle halt ----

// Before an idle halt: the queues we wait on may interrupt again (rx, events, and tx while
// packets are in flight, so a full tx ring wakes us when it drains). False when a used entry is
// already there (poll instead) or when the device cannot interrupt at all.
export function deviceArmInterrupts(): bool {
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  const t = transport;
  if (!deviceInterruptsActive() || rx == null || tx == null || events == null || t == null) return false;
  t.acknowledgeInterrupt(); // before the rings are looked at: a used entry after this raises it again
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

// True after a TRANSPORT_RESET: the CID has been read again (and kept when unreadable; the device
// set FAILED when reserved), and the caller ends every connection.
export function eventPoll(): bool {
  const q = eventQueue;
  const t = transport;
  if (q == null || t == null) return false;
  if (!eventsTake(q)) return false;
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

export function vsockDeviceInit(): bool {
  const t = openVirtioTransport(VIRTIO_ID_VSOCK, VIRTIO_VSOCK_PCI_DEVICE_MODERN, VIRTIO_VSOCK_PCI_DEVICE_TRANSITIONAL, "vsock-dev");
  if (t == null) {
    if (logBegin(LEVEL_ERROR, "vsock-dev")) {
      logStr("no virtio-vsock device (PCI 1af4:1053 or 1af4:1012, or virtio-mmio device type 19)");
      logEnd();
    }
    return false;
  }
  return vsockDeviceStart(t);
}

// Brings the device up on transport `t`: features, queues, the CID, buffers, DRIVER_OK, and its
// interrupt when the transport has one (else the device is polled).
export function vsockDeviceStart(t: VirtioTransport): bool {
  transport = t;
  const negotiation = virtioNegotiate(t, VSOCK_DRIVER_FEATURES);
  if (negotiation != VirtioError.None) return fail(t, negotiation);
  features = negotiatedFeatures;
  if (t.configLength() < VIRTIO_VSOCK_CONFIG_SIZE) return fail(t, VirtioError.MissingCapability);
  if (t.queueCount() < QUEUE_COUNT) return fail(t, VirtioError.QueueUnavailable);
  routeDeviceInterrupts(t);

  // Each queue set up right after it is selected: the transport then selects it only once.
  const rx = setUpQueue(t, QUEUE_RX, rxQueue);
  if (rx == null) return fail(t, VirtioError.QueueUnavailable);
  if (!rx.setUp()) return fail(t, VirtioError.QueueNotifyOutsideCap);
  const tx = setUpQueue(t, QUEUE_TX, txQueue);
  if (tx == null) return fail(t, VirtioError.QueueUnavailable);
  if (!tx.setUp()) return fail(t, VirtioError.QueueNotifyOutsideCap);
  const events = setUpQueue(t, QUEUE_EVENT, eventQueue);
  if (events == null) return fail(t, VirtioError.QueueUnavailable);
  if (!events.setUp()) return fail(t, VirtioError.QueueNotifyOutsideCap);
  confirmDeviceInterrupts(t);
  rxQueue = rx;
  txQueue = tx;
  eventQueue = events;
  if (!readGuestCid(t)) return fail(t, VirtioError.ConfigUnstable);
  if (!guestCidValid(cidRead)) {
    refuseGuestCid("bring-up");
    return fail(t, VirtioError.GuestCidInvalid);
  }
  const cid = cidRead;

  // Every rx and event buffer posted and the tx pool filled before DRIVER_OK (VSOCK.md rule 2).
  rxAllocateOnce();
  txAllocateOnce();
  eventsAllocateOnce();
  rxFill(rx);
  txFill(tx);
  eventsFill(events);
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
    logKv("rx_buffers", rxBufferCount());
    logKv("rx_buffer_bytes", RX_BUFFER_DATA_SIZE);
    logStr(rxLayoutSplit() ? " rx_layout=split" : " rx_layout=single");
    logKv("tx_buffers", txBufferCount());
    logEnd();
  }
  guestCid = cid; // ours only once the device runs: until then the protocol sees the old one (0 at boot)
  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("ready");
    logKv("guest_cid", guestCid);
    logKvHex("features", features);
    logKv("seqpacket", deviceSeqpacket() ? 1 : 0);
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

// ---- counters ----

export function deviceLogCounters(): void {
  if (logBegin(LEVEL_INFO, "vsock-dev")) {
    logStr("counters");
    logKv("rx_packets", rxPacketCount());
    logKv("rx_bytes", rxByteCount());
    logKv("tx_packets", txPacketCount());
    logKv("tx_bytes", txByteCount());
    logKv("tx_in_flight", txInFlightCount());
    logKv("rx_used_extra_bytes", rxUsedExtraByteCount());
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
  if (name == COUNTER_RX_PACKETS) return rxPacketCount();
  if (name == COUNTER_TX_PACKETS) return txPacketCount();
  if (name == COUNTER_TRANSPORT_RESETS) return transportResets;
  if (name == COUNTER_RX_REFILLS) return rxRefillCount();
  if (name == COUNTER_RX_USED_EXTRA_BYTES) return rxUsedExtraByteCount();
  const rx = rxQueue;
  const tx = txQueue;
  const events = eventQueue;
  if (name == COUNTER_RX_NOTIFIES) return rx != null ? rx.notifies : 0;
  if (name == COUNTER_TX_NOTIFIES) return tx != null ? tx.notifies : 0;
  if (name == COUNTER_EVENT_NOTIFIES) return events != null ? events.notifies : 0;
  if (name == COUNTER_TX_NOTIFIES_SUPPRESSED) return tx != null ? tx.notifiesSuppressed : 0;
  return 0;
}
