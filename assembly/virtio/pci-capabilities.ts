// Finds the virtio structures of a modern virtio PCI function (virtio 1.2, 4.1.4): vendor-specific
// capabilities (ID 0x09) that each point at a region inside one of the function's BARs. We take the
// first usable one of each type, ignore types we do not know, bound every read by the capability's
// own length, and reject one whose region does not lie inside its (assigned, memory) BAR.
import { capabilityId, firstCapability, MAX_CAPABILITIES, nextCapability } from "../pci/capability-list";
import { configRead16, configRead32, configRead8, PCI_STATUS, PCI_STATUS_CAP_LIST } from "../pci/config";
import { logBdf } from "../pci/bdf-log";
import { barAddress, barSize, isMemoryBar } from "../pci/resources";
import { PciFunction } from "../pci/scan";
import { LEVEL_DEBUG, LEVEL_WARN, logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { countRejection, REJECT_CAPABILITY_INVALID, rejectionCount } from "../diag/rejections";
import { VirtioError } from "./constants";

export const VIRTIO_PCI_CAP_COMMON_CFG: u32 = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG: u32 = 2;
export const VIRTIO_PCI_CAP_ISR_CFG: u32 = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG: u32 = 4;
export const VIRTIO_PCI_CAP_PCI_CFG: u32 = 5;

const PCI_CAP_ID_VNDR: u32 = 0x09;
// struct virtio_pci_cap: cap_vndr 0, cap_next 1, cap_len 2, cfg_type 3, bar 4, id 5, offset 8, length 12;
// struct virtio_pci_notify_cap adds notify_off_multiplier at 16.
const CAP_LEN: u32 = 2;
const CAP_CFG_TYPE: u32 = 3;
const CAP_BAR: u32 = 4;
const CAP_OFFSET: u32 = 8;
const CAP_LENGTH: u32 = 12;
const CAP_NOTIFY_OFF_MULTIPLIER: u32 = 16;
const VIRTIO_PCI_CAP_SIZE: u32 = 16;
const VIRTIO_PCI_NOTIFY_CAP_SIZE: u32 = 20;

// The common configuration structure up to queue_device (virtio 1.0); later fields are optional.
export const COMMON_CFG_MIN_LENGTH: u32 = 0x38;

// One structure: where it is (physical address) and how many bytes it spans.
export class VirtioPciRegion {
  present: bool = false;
  bar: u32 = 0;
  offset: u32 = 0;
  length: u32 = 0;
  address: u64 = 0;
}

export class VirtioPciCapabilities {
  common: VirtioPciRegion = new VirtioPciRegion();
  notify: VirtioPciRegion = new VirtioPciRegion();
  isr: VirtioPciRegion = new VirtioPciRegion();
  device: VirtioPciRegion = new VirtioPciRegion();
  notifyOffMultiplier: u32 = 0;
  pciCfgOffset: u32 = 0; // config-space offset of the PCI_CFG access window (0: none)
  rejected: i32 = 0;
}

function regionFor(caps: VirtioPciCapabilities, type: u32): VirtioPciRegion | null {
  if (type == VIRTIO_PCI_CAP_COMMON_CFG) return caps.common;
  if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) return caps.notify;
  if (type == VIRTIO_PCI_CAP_ISR_CFG) return caps.isr;
  if (type == VIRTIO_PCI_CAP_DEVICE_CFG) return caps.device;
  return null;
}

function minimumLength(type: u32): u32 {
  if (type == VIRTIO_PCI_CAP_COMMON_CFG) return COMMON_CFG_MIN_LENGTH;
  if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) return 2; // one le16 notify register
  return 1;
}

function reject(f: PciFunction, at: u32, type: u32, why: string): void {
  if (logBegin(countRejection(REJECT_CAPABILITY_INVALID), "virtio")) {
    logBdf(f.address);
    logStr(" capability rejected: ");
    logStr(why);
    logKvHex("at", at);
    logKv("type", type);
    logKv("count", rejectionCount(REJECT_CAPABILITY_INVALID));
    logEnd();
  }
}

// Checks one vendor capability at config offset `at`, whose first dword is `header`, and records
// it if it is the first usable one of its type.
function consider(f: PciFunction, at: u32, header: u32, caps: VirtioPciCapabilities): void {
  // cap_len and cfg_type share the header dword with id and next (one config read, not three).
  const capLength = (header >> (8 * CAP_LEN)) & 0xff;
  const type = (header >> (8 * CAP_CFG_TYPE)) & 0xff;
  if (capLength < VIRTIO_PCI_CAP_SIZE || at + capLength > 256) {
    caps.rejected++;
    reject(f, at, type, "cap_len too small or past config space");
    return;
  }
  if (type == VIRTIO_PCI_CAP_PCI_CFG) {
    if (caps.pciCfgOffset == 0) caps.pciCfgOffset = at;
    return;
  }
  const region = regionFor(caps, type);
  if (region == null || region.present) return; // unknown type, or not the first of its type
  const bar = configRead8(f.address, at + CAP_BAR);
  const offset = configRead32(f.address, at + CAP_OFFSET);
  const length = configRead32(f.address, at + CAP_LENGTH);
  let multiplier: u32 = 0;
  if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
    if (capLength < VIRTIO_PCI_NOTIFY_CAP_SIZE) {
      caps.rejected++;
      reject(f, at, type, "notify cap without notify_off_multiplier");
      return;
    }
    multiplier = configRead32(f.address, at + CAP_NOTIFY_OFF_MULTIPLIER);
  }
  if (logBegin(LEVEL_DEBUG, "virtio")) {
    logBdf(f.address);
    logStr(" capability");
    logKvHex("at", at);
    logKv("type", type);
    logKv("bar", bar);
    logKvHex("offset", offset);
    logKvHex("length", length);
    if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) logKv("notify_off_multiplier", multiplier);
    logEnd();
  }
  if (bar > 5) {
    caps.rejected++;
    reject(f, at, type, "bar index out of range");
    return;
  }
  if (!isMemoryBar(f, <i32>bar)) {
    caps.rejected++;
    reject(f, at, type, "bar not an assigned memory BAR");
    return;
  }
  if (<u64>offset + <u64>length > barSize(f, <i32>bar) || length < minimumLength(type)) {
    caps.rejected++;
    reject(f, at, type, "region outside its BAR or too short");
    return;
  }
  region.present = true;
  region.bar = bar;
  region.offset = offset;
  region.length = length;
  region.address = barAddress(f, <i32>bar) + <u64>offset;
  if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) caps.notifyOffMultiplier = multiplier;
}

// Walks the capability list (bounded, loop-proof) and fills `caps`. Missing COMMON, NOTIFY or
// DEVICE structures are an error; ISR is optional for a driver that polls.
export function readVirtioCapabilities(f: PciFunction, caps: VirtioPciCapabilities): VirtioError {
  if ((configRead16(f.address, PCI_STATUS) & PCI_STATUS_CAP_LIST) != 0) {
    let at = firstCapability(f);
    for (let seen = 0; at != 0 && seen < MAX_CAPABILITIES; seen++) {
      const header = configRead32(f.address, at);
      if (capabilityId(header) == PCI_CAP_ID_VNDR) consider(f, at, header, caps);
      at = nextCapability(header);
    }
  }
  if (caps.common.present && caps.notify.present && caps.device.present) return VirtioError.None;
  if (logBegin(LEVEL_WARN, "virtio")) {
    logBdf(f.address);
    logStr(" missing structures:");
    if (!caps.common.present) logStr(" common");
    if (!caps.notify.present) logStr(" notify");
    if (!caps.device.present) logStr(" device");
    logEnd();
  }
  return caps.rejected > 0 ? VirtioError.CapabilityOutsideBar : VirtioError.MissingCapability;
}
