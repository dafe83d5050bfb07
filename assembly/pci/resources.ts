// PCI resource assignment. Nothing ran before us (no BIOS), so every BAR still holds its reset
// value and no bridge forwards anything: we size each BAR, give it a naturally aligned address from
// a fixed window and open every bridge's windows over what was assigned below it. A function's own
// decoding stays off until a driver claims it (pciEnableDevice), as in edk2: a device nobody
// drives never answers on the bus, and under a hypervisor each decode change re-maps the guest's
// address space (1-3 ms per function under nested KVM). A BAR that does not fit is logged and
// skipped, and its address space is never enabled for that function (an unassigned BAR would
// otherwise decode at address 0, on top of RAM).
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { countRejection, REJECT_BAR_UNASSIGNABLE } from "../diag/rejections";
import { logBdf } from "./bdf-log";
import {
  bdfBus,
  configRead16,
  configRead32,
  configWrite16,
  configWrite32,
  configWrite8,
  PCI_BAR0,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_BRIDGE,
  PCI_HEADER_TYPE_MASK,
  PCI_IO_BASE,
  PCI_IO_BASE_UPPER16,
  PCI_MEMORY_BASE,
  PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32,
  PCI_PREF_MEMORY_BASE,
} from "./config";
import { MAX_PCI_FUNCTIONS, PciFunction, pciFunctions } from "./scan";

// q35 with little RAM: 0x80000000..0xfc000000 is unused, but 0xb0000000..0xbfffffff is the MMCONFIG
// window and 0xfec00000+ holds the IOAPIC, HPET and LAPIC. Memory BARs come from the part above
// MMCONFIG, all below 4 GiB (the identity map covers it, and 32-bit BARs can reach it).
export const MEMORY_WINDOW_START: u64 = 0xc0000000;
export const MEMORY_WINDOW_END: u64 = 0xfc000000;
// I/O BARs go above the chipset's fixed ports (0xcf8, debugcon 0x402, fw_cfg 0x510, ...).
export const IO_WINDOW_START: u32 = 0xc000;
export const IO_WINDOW_END: u32 = 0x10000;

// Type 1 windows: memory base/limit hold address bits 31:20, I/O base/limit bits 15:12.
const BRIDGE_MEMORY_GRANULE: u64 = 0x100000;
const BRIDGE_IO_GRANULE: u32 = 0x1000;
const MAX_BRIDGE_DEPTH: i32 = 8;

export const PCI_BAR_COUNT: i32 = 6;
const BRIDGE_BAR_COUNT: i32 = 2;

// Low bits of a BAR (PCI Local Bus 3.0, 6.2.5.1).
const BAR_IO_SPACE: u32 = 1;
const BAR_MEMORY_TYPE_MASK: u32 = 6;
const BAR_MEMORY_TYPE_64: u32 = 4;
const BAR_MEMORY_PREFETCHABLE: u32 = 8;
const BAR_MEMORY_ADDRESS_MASK: u32 = 0xfffffff0;
const BAR_IO_ADDRESS_MASK: u32 = 0xfffffffc;

export const BAR_KIND_NONE: u8 = 0;
export const BAR_KIND_MEMORY32: u8 = 1;
export const BAR_KIND_MEMORY64: u8 = 2;
export const BAR_KIND_IO: u8 = 3;

// What we assigned, per (function slot in pciFunctions, BAR index). Unassigned: address 0, size 0.
const BAR_SLOTS: i32 = MAX_PCI_FUNCTIONS * PCI_BAR_COUNT;
const barAddresses = new StaticArray<u64>(BAR_SLOTS);
const barSizes = new StaticArray<u64>(BAR_SLOTS);
const barKinds = new StaticArray<u8>(BAR_SLOTS);
// Per function slot: the decoders (PCI_COMMAND_IO / _MEMORY) whose BARs all got addresses, which
// pciEnableDevice may turn on.
const usableDecoders = new StaticArray<u32>(MAX_PCI_FUNCTIONS);

let memoryCursor: u64 = MEMORY_WINDOW_START;
let ioCursor: u32 = IO_WINDOW_START;
let barsAssigned: i32 = 0;
let assignedOnce = false;
let barsSkipped: i32 = 0;

// Per-function outcome of assignBar, so the caller knows which decoders it may turn on.
let wantMemory = false;
let wantIo = false;
let brokenMemory = false;
let brokenIo = false;

function alignUp(value: u64, alignment: u64): u64 {
  return (value + alignment - 1) & ~(alignment - 1);
}

function functionSlot(f: PciFunction): i32 {
  for (let i = 0; i < pciFunctions.length; i++) {
    if (pciFunctions[i].address == f.address) return i;
  }
  return -1;
}

function barSlot(f: PciFunction, index: i32): i32 {
  if (index < 0 || index >= PCI_BAR_COUNT) return -1;
  const slot = functionSlot(f);
  if (slot < 0 || slot >= MAX_PCI_FUNCTIONS) return -1;
  return slot * PCI_BAR_COUNT + index;
}

// The address assigned to BAR `index` of `f` (a port number for an I/O BAR), 0 when none was.
export function barAddress(f: PciFunction, index: i32): u64 {
  const s = barSlot(f, index);
  return s < 0 ? 0 : unchecked(barAddresses[s]);
}

// The size of BAR `index` of `f` when it was assigned, else 0.
export function barSize(f: PciFunction, index: i32): u64 {
  const s = barSlot(f, index);
  return s < 0 ? 0 : unchecked(barSizes[s]);
}

export function barKind(f: PciFunction, index: i32): u8 {
  const s = barSlot(f, index);
  return s < 0 ? BAR_KIND_NONE : unchecked(barKinds[s]);
}

// Whether BAR `index` of `f` got an address in memory space (32- or 64-bit): where device
// structures and tables may live.
export function isMemoryBar(f: PciFunction, index: i32): bool {
  const kind = barKind(f, index);
  return kind == BAR_KIND_MEMORY32 || kind == BAR_KIND_MEMORY64;
}

function logBar(level: i32, f: PciFunction, index: i32, kind: u8, prefetchable: bool, message: string): bool {
  if (!logBegin(level, "pci")) return false;
  logBdf(f.address);
  logKv("bar", index);
  logStr(kind == BAR_KIND_IO ? " io" : kind == BAR_KIND_MEMORY64 ? " mem64" : " mem32");
  if (prefetchable) logStr(" pref");
  logStr(" ");
  logStr(message);
  return true;
}

// Sizes BAR `index` (decoding is off), assigns it, and returns how many BAR registers it used.
// Config accesses are VM exits, so each register is probed and assigned in one run (config.ts
// selects it once): no read of the reset value first, no restore after the probe; a BAR that is
// not assigned is written back to 0 (its reset value) on the rare paths that skip it.
function assignBar(f: PciFunction, slot: i32, index: i32, count: i32): i32 {
  const offset = PCI_BAR0 + 4 * <u32>index;
  configWrite32(f.address, offset, 0xffffffff);
  const mask = configRead32(f.address, offset);
  const isIo = (mask & BAR_IO_SPACE) != 0;
  const is64 = !isIo && (mask & BAR_MEMORY_TYPE_MASK) == BAR_MEMORY_TYPE_64;
  const used = is64 ? 2 : 1;
  if (is64 && index + 1 >= count) {
    configWrite32(f.address, offset, 0);
    return used; // a 64-bit BAR cannot start in the last slot
  }

  let size: u64 = 0;
  if (isIo) {
    let m = mask & BAR_IO_ADDRESS_MASK;
    if (m != 0 && (m & 0xffff0000) == 0) m |= 0xffff0000; // 16-bit decoders leave the top bits 0
    size = m == 0 ? 0 : <u64>(~m + 1);
  } else if (is64) {
    configWrite32(f.address, offset + 4, 0xffffffff);
    const maskHigh = configRead32(f.address, offset + 4);
    const m = (<u64>maskHigh << 32) | <u64>(mask & BAR_MEMORY_ADDRESS_MASK);
    size = m == 0 ? 0 : ~m + 1;
  } else {
    const m = mask & BAR_MEMORY_ADDRESS_MASK;
    size = m == 0 ? 0 : <u64>(~m + 1);
  }
  if (size == 0) return used; // not implemented (reads 0 whatever we write): never trusted

  const kind = isIo ? BAR_KIND_IO : is64 ? BAR_KIND_MEMORY64 : BAR_KIND_MEMORY32;
  const prefetchable = !isIo && (mask & BAR_MEMORY_PREFETCHABLE) != 0;
  let address: u64 = 0;
  let fits = false;
  if (isIo) {
    address = alignUp(<u64>ioCursor, size);
    fits = size <= 0x10000 && address + size <= <u64>IO_WINDOW_END;
  } else {
    address = alignUp(memoryCursor, size);
    fits = size <= MEMORY_WINDOW_END && address + size <= MEMORY_WINDOW_END;
  }
  if (!fits) {
    if (isIo) brokenIo = true;
    else brokenMemory = true;
    barsSkipped++;
    clearBar(f, offset, is64);
    if (logBar(countRejection(REJECT_BAR_UNASSIGNABLE), f, index, kind, prefetchable, "does not fit: skipped")) {
      logKvHex("size", size);
      logKvHex("window_free", isIo ? <u64>IO_WINDOW_END - <u64>ioCursor : MEMORY_WINDOW_END - memoryCursor);
      logEnd();
    }
    return used;
  }

  // Each half written and read back while it is selected. Read back: a device that does not
  // take the address must not get decoding enabled.
  configWrite32(f.address, offset, <u32>address);
  let readBack = <u64>(configRead32(f.address, offset) & (isIo ? BAR_IO_ADDRESS_MASK : BAR_MEMORY_ADDRESS_MASK));
  if (is64) {
    configWrite32(f.address, offset + 4, <u32>(address >> 32));
    readBack |= <u64>configRead32(f.address, offset + 4) << 32;
  }
  if (readBack != address) {
    if (isIo) brokenIo = true;
    else brokenMemory = true;
    barsSkipped++;
    clearBar(f, offset, is64);
    if (logBar(countRejection(REJECT_BAR_UNASSIGNABLE), f, index, kind, prefetchable, "did not take its address: skipped")) {
      logKvHex("wrote", address);
      logKvHex("read", readBack);
      logEnd();
    }
    return used;
  }

  if (isIo) {
    ioCursor = <u32>(address + size);
    wantIo = true;
  } else {
    memoryCursor = address + size;
    wantMemory = true;
  }
  const s = slot * PCI_BAR_COUNT + index;
  unchecked((barAddresses[s] = address));
  unchecked((barSizes[s] = size));
  unchecked((barKinds[s] = kind));
  barsAssigned++;
  if (logBar(LEVEL_INFO, f, index, kind, prefetchable, "assigned")) {
    logKvHex("addr", address);
    logKvHex("size", size);
    logEnd();
  }
  return used;
}

// Back to the reset value: a skipped BAR holds no probe pattern or half-taken address.
function clearBar(f: PciFunction, offset: u32, is64: bool): void {
  configWrite32(f.address, offset, 0);
  if (is64) configWrite32(f.address, offset + 4, 0);
}

function isBridge(f: PciFunction): bool {
  return (f.headerType & PCI_HEADER_TYPE_MASK) == PCI_HEADER_BRIDGE;
}

// Sizes and assigns every BAR of one function with decoding off, and records which decoders a
// driver may turn on. Bridges forward for the devices below them, so theirs go on in
// assignBridge. Returns the command register value it left (decoding off).
function assignFunction(f: PciFunction, slot: i32): u32 {
  const type = f.headerType & PCI_HEADER_TYPE_MASK;
  const count = type == 0 ? PCI_BAR_COUNT : type == PCI_HEADER_BRIDGE ? BRIDGE_BAR_COUNT : 0;
  let command = configRead16(f.address, PCI_COMMAND);
  // At reset decoding is off already; only a warm start can find it on (and then it must go off
  // before the all-ones probes).
  if ((command & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)) != 0) {
    command &= ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    configWrite16(f.address, PCI_COMMAND, command);
  }
  for (let i = 0; i < PCI_BAR_COUNT; i++) {
    const s = slot * PCI_BAR_COUNT + i;
    unchecked((barAddresses[s] = 0));
    unchecked((barSizes[s] = 0));
    unchecked((barKinds[s] = BAR_KIND_NONE));
  }
  wantMemory = false;
  wantIo = false;
  brokenMemory = false;
  brokenIo = false;
  for (let i = 0; i < count; ) i += assignBar(f, slot, i, count);
  let decoders: u32 = 0;
  if (wantMemory && !brokenMemory) decoders |= PCI_COMMAND_MEMORY;
  if (wantIo && !brokenIo) decoders |= PCI_COMMAND_IO;
  unchecked((usableDecoders[slot] = decoders));
  if (brokenMemory || brokenIo) {
    if (logBegin(LEVEL_WARN, "pci")) {
      logBdf(f.address);
      logStr(" left with decoding off:");
      if (brokenMemory) logStr(" memory");
      if (brokenIo) logStr(" io");
      logEnd();
    }
  }
  return command;
}

// Opens a bridge's memory and I/O windows over everything assigned on the buses below it.
// Everything (prefetchable BARs too) goes in the non-prefetchable window below 4 GiB, which
// a bridge may forward to any BAR; the prefetchable window stays closed.
function assignBridge(bridge: PciFunction, command: u32, depth: i32): void {
  const memoryStart = alignUp(memoryCursor, BRIDGE_MEMORY_GRANULE);
  const ioStart = <u32>alignUp(<u64>ioCursor, <u64>BRIDGE_IO_GRANULE);
  memoryCursor = memoryStart;
  ioCursor = ioStart;
  assignBus(bridge.secondaryBus, depth + 1);
  const memoryEnd = alignUp(memoryCursor, BRIDGE_MEMORY_GRANULE);
  const ioEnd = <u32>alignUp(<u64>ioCursor, <u64>BRIDGE_IO_GRANULE);
  const a = bridge.address;
  if (memoryEnd > memoryStart) {
    configWrite16(a, PCI_MEMORY_BASE, <u32>(memoryStart >> 16) & 0xfff0);
    configWrite16(a, PCI_MEMORY_BASE + 2, <u32>((memoryEnd - 1) >> 16) & 0xfff0);
    command |= PCI_COMMAND_MEMORY;
    memoryCursor = memoryEnd; // the whole window belongs to the bridge: nothing else goes in it
  } else {
    configWrite16(a, PCI_MEMORY_BASE, 0xfff0); // base above limit: closed
    configWrite16(a, PCI_MEMORY_BASE + 2, 0);
    memoryCursor = memoryStart;
  }
  if (ioEnd > ioStart) {
    configWrite8(a, PCI_IO_BASE, (ioStart >> 8) & 0xf0);
    configWrite8(a, PCI_IO_BASE + 1, ((ioEnd - 1) >> 8) & 0xf0);
    command |= PCI_COMMAND_IO;
    ioCursor = ioEnd;
  } else {
    configWrite8(a, PCI_IO_BASE, 0xf0);
    configWrite8(a, PCI_IO_BASE + 1, 0);
    ioCursor = ioStart;
  }
  configWrite32(a, PCI_IO_BASE_UPPER16, 0);
  configWrite32(a, PCI_PREF_MEMORY_BASE, 0x0000fff0);
  configWrite32(a, PCI_PREF_BASE_UPPER32, 0);
  configWrite32(a, PCI_PREF_LIMIT_UPPER32, 0);
  // A bridge forwards its devices' DMA upstream only with bus mastering on.
  command |= PCI_COMMAND_MASTER;
  configWrite16(a, PCI_COMMAND, command);
  if (logBegin(LEVEL_INFO, "pci")) {
    logBdf(a);
    logStr(" bridge windows");
    logKv("bus", bridge.secondaryBus);
    if (memoryEnd > memoryStart) {
      logKvHex("mem", memoryStart);
      logKvHex("mem_end", memoryEnd - 1);
    } else logStr(" mem=closed");
    if (ioEnd > ioStart) {
      logKvHex("io", ioStart);
      logKvHex("io_end", ioEnd - 1);
    } else logStr(" io=closed");
    logEnd();
  }
}

function assignBus(bus: u32, depth: i32): void {
  for (let slot = 0; slot < pciFunctions.length && slot < MAX_PCI_FUNCTIONS; slot++) {
    const f = pciFunctions[slot];
    if (bdfBus(f.address) != bus) continue;
    const command = assignFunction(f, slot);
    if (isBridge(f) && f.secondaryBus != 0) {
      // The bridge's own BARs, if it has any, decode too: its windows are on anyway.
      if (depth < MAX_BRIDGE_DEPTH) assignBridge(f, command | unchecked(usableDecoders[slot]), depth);
      else if (logBegin(LEVEL_WARN, "pci")) {
        logBdf(f.address);
        logStr(" bridge nested too deep: devices below it get no resources");
        logEnd();
      }
    }
  }
}

// Assigns resources to every function pciScan() found (call it after pciScan). Idempotent: a
// second call starts again from the bottom of both windows.
export function pciAssignResources(): void {
  memoryCursor = MEMORY_WINDOW_START;
  ioCursor = IO_WINDOW_START;
  barsAssigned = 0;
  barsSkipped = 0;
  assignBus(0, 0);
  assignedOnce = true;
  if (logBegin(LEVEL_INFO, "pci")) {
    logStr("resources assigned");
    logKv("bars", barsAssigned);
    logKv("skipped", barsSkipped);
    logKvHex("mem_used", memoryCursor - MEMORY_WINDOW_START);
    logKvHex("io_used", ioCursor - IO_WINDOW_START);
    logEnd();
  }
}

export function pciResourcesAssigned(): bool {
  return assignedOnce;
}

// Claims a function for its driver: turns on the decoders whose BARs were all assigned, lets it
// master the bus (DMA to our rings) and silences its legacy interrupt line (we poll), in one
// config write. Only the device we drive gets this: idle devices never decode or DMA.
export function pciEnableDevice(f: PciFunction): void {
  const slot = functionSlot(f);
  const decoders = slot >= 0 && slot < MAX_PCI_FUNCTIONS ? unchecked(usableDecoders[slot]) : 0;
  const command = configRead16(f.address, PCI_COMMAND);
  configWrite16(f.address, PCI_COMMAND, command | decoders | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
}
