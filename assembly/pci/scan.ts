// PCI enumeration: every bus reachable from bus 0, multi-function aware, bridges followed.
// Nothing ran before us, so bridges have no bus numbers yet: we number them depth-first as we go
// (primary = this bus, secondary = next free bus, subordinate = the last bus found below).
import { LEVEL_INFO, logBegin, logEnd, logHex, logKv, logStr } from "../platform/log";
import {
  bdf,
  bdfBus,
  bdfDevice,
  bdfFunction,
  configRead32,
  configWrite8,
  PCI_HEADER_BRIDGE,
  PCI_HEADER_DWORD,
  PCI_HEADER_MULTIFUNCTION,
  PCI_HEADER_TYPE_MASK,
  PCI_PRIMARY_BUS,
  PCI_REVISION,
  PCI_SECONDARY_BUS,
  PCI_SUBORDINATE_BUS,
  PCI_VENDOR_ID,
} from "./config";

export const MAX_PCI_FUNCTIONS: i32 = 128;

// One discovered function. `secondaryBus` is set for bridges only.
export class PciFunction {
  address: u32 = 0; // BDF, see config.ts
  vendorId: u32 = 0;
  deviceId: u32 = 0;
  classCode: u32 = 0; // class << 16 | subclass << 8 | prog-if
  headerType: u32 = 0;
  secondaryBus: u32 = 0;
  subordinateBus: u32 = 0;
}

export const pciFunctions = new Array<PciFunction>(0);
let nextBus: u32 = 0;

export function findPciFunction(vendorId: u32, deviceId: u32, skip: i32 = 0): PciFunction | null {
  for (let i = 0; i < pciFunctions.length; i++) {
    const f = pciFunctions[i];
    if (f.vendorId == vendorId && f.deviceId == deviceId) {
      if (skip == 0) return f;
      skip--;
    }
  }
  return null;
}

// Three dword reads per function (each costs two port exits): ids, class, header type.
function record(address: u32, ids: u32): PciFunction {
  const f = new PciFunction();
  f.address = address;
  f.vendorId = ids & 0xffff;
  f.deviceId = ids >> 16;
  f.classCode = configRead32(address, PCI_REVISION) >> 8;
  f.headerType = (configRead32(address, PCI_HEADER_DWORD) >> 16) & 0xff;
  if (pciFunctions.length < MAX_PCI_FUNCTIONS) pciFunctions.push(f);
  return f;
}

// An absent function reads all ones; one dword read tells it and gives both ids.
function presentIds(address: u32): u32 {
  const ids = configRead32(address, PCI_VENDOR_ID);
  return (ids & 0xffff) == 0xffff ? 0 : ids;
}

function scanBus(bus: u32, depth: i32): void {
  for (let device: u32 = 0; device < 32; device++) {
    const ids0 = presentIds(bdf(bus, device, 0));
    if (ids0 == 0) continue;
    const f0 = record(bdf(bus, device, 0), ids0);
    // Functions 1-7 exist only behind a multi-function function 0: single-function devices
    // may even answer for them with function 0's registers.
    const functions: u32 = (f0.headerType & PCI_HEADER_MULTIFUNCTION) != 0 ? 8 : 1;
    for (let fn: u32 = 0; fn < functions; fn++) {
      const address = bdf(bus, device, fn);
      let f = f0;
      if (fn != 0) {
        const ids = presentIds(address);
        if (ids == 0) continue;
        f = record(address, ids);
      }
      if ((f.headerType & PCI_HEADER_TYPE_MASK) == PCI_HEADER_BRIDGE && nextBus < 255 && depth < 8) {
        nextBus++;
        f.secondaryBus = nextBus;
        configWrite8(address, PCI_PRIMARY_BUS, bus);
        configWrite8(address, PCI_SECONDARY_BUS, nextBus);
        configWrite8(address, PCI_SUBORDINATE_BUS, 0xff); // open while we look below
        scanBus(nextBus, depth + 1);
        f.subordinateBus = nextBus;
        configWrite8(address, PCI_SUBORDINATE_BUS, nextBus);
      }
    }
  }
}

// Enumerates everything and logs one line per function:
//   pci: 00:01.0 1af4:1053 class=028000 [bridge to 01-02]
export function pciScan(): i32 {
  pciFunctions.length = 0;
  nextBus = 0;
  scanBus(0, 0);
  for (let i = 0; i < pciFunctions.length; i++) {
    const f = pciFunctions[i];
    if (logBegin(LEVEL_INFO, "pci")) {
      logHex(bdfBus(f.address), 2);
      logStr(":");
      logHex(bdfDevice(f.address), 2);
      logStr(".");
      logHex(bdfFunction(f.address), 1);
      logStr(" ");
      logHex(f.vendorId, 4);
      logStr(":");
      logHex(f.deviceId, 4);
      logStr(" class=");
      logHex(f.classCode, 6);
      if (f.secondaryBus != 0) {
        logStr(" bridge=");
        logHex(f.secondaryBus, 2);
        logStr("-");
        logHex(f.subordinateBus, 2);
      }
      logEnd();
    }
  }
  if (logBegin(LEVEL_INFO, "pci")) {
    logStr("scan done");
    logKv("functions", pciFunctions.length);
    logKv("buses", nextBus + 1);
    logEnd();
  }
  return pciFunctions.length;
}
