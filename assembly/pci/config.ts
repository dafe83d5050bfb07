// PCI configuration space through the legacy 0xCF8/0xCFC mechanism (q35 also offers ECAM, but
// port access needs no MMCONFIG set-up and reaches the first 256 bytes, which is all we use).
import { portIn16, portIn32, portIn8, portOut16, portOut32, portOut8 } from "../platform/imports";

const CONFIG_ADDRESS: u32 = 0xcf8;
const CONFIG_DATA: u32 = 0xcfc;

// A function's address: bus << 8 | device << 3 | function (the "BDF").
export function bdf(bus: u32, device: u32, fn: u32): u32 {
  return ((bus & 0xff) << 8) | ((device & 0x1f) << 3) | (fn & 7);
}
export function bdfBus(address: u32): u32 {
  return (address >> 8) & 0xff;
}
export function bdfDevice(address: u32): u32 {
  return (address >> 3) & 0x1f;
}
export function bdfFunction(address: u32): u32 {
  return address & 7;
}

// The register CONFIG_ADDRESS points at. Every port access is a VM exit (costly under nested
// KVM), and we are its only writer, so a run of accesses to one dword selects it only once.
// 0 means "unknown": a real selection always has the enable bit 31 set.
let selected: u32 = 0;

function select(address: u32, offset: u32): void {
  const value = 0x80000000 | (address << 8) | (offset & 0xfc);
  if (value == selected) return;
  portOut32(CONFIG_ADDRESS, value);
  selected = value;
}

export function configRead32(address: u32, offset: u32): u32 {
  select(address, offset);
  return portIn32(CONFIG_DATA);
}
export function configRead16(address: u32, offset: u32): u32 {
  select(address, offset);
  return portIn16(CONFIG_DATA + (offset & 2));
}
export function configRead8(address: u32, offset: u32): u32 {
  select(address, offset);
  return portIn8(CONFIG_DATA + (offset & 3));
}
export function configWrite32(address: u32, offset: u32, value: u32): void {
  select(address, offset);
  portOut32(CONFIG_DATA, value);
}
export function configWrite16(address: u32, offset: u32, value: u32): void {
  select(address, offset);
  portOut16(CONFIG_DATA + (offset & 2), value);
}
export function configWrite8(address: u32, offset: u32, value: u32): void {
  select(address, offset);
  portOut8(CONFIG_DATA + (offset & 3), value);
}

// Standard header offsets (PCI Local Bus 3.0, type 0 and type 1 headers).
export const PCI_VENDOR_ID: u32 = 0x00;
export const PCI_DEVICE_ID: u32 = 0x02;
export const PCI_COMMAND: u32 = 0x04;
export const PCI_STATUS: u32 = 0x06;
export const PCI_REVISION: u32 = 0x08; // revision, prog-if, subclass, class
export const PCI_HEADER_TYPE: u32 = 0x0e;
export const PCI_HEADER_DWORD: u32 = 0x0c; // cache line, latency timer, header type, BIST
export const PCI_BAR0: u32 = 0x10;
export const PCI_CAPABILITY_LIST: u32 = 0x34;
export const PCI_PRIMARY_BUS: u32 = 0x18; // type 1: primary, secondary, subordinate bus numbers
export const PCI_SECONDARY_BUS: u32 = 0x19;
export const PCI_SUBORDINATE_BUS: u32 = 0x1a;
export const PCI_IO_BASE: u32 = 0x1c; // type 1 windows
export const PCI_MEMORY_BASE: u32 = 0x20;
export const PCI_PREF_MEMORY_BASE: u32 = 0x24;
export const PCI_PREF_BASE_UPPER32: u32 = 0x28;
export const PCI_PREF_LIMIT_UPPER32: u32 = 0x2c;
export const PCI_IO_BASE_UPPER16: u32 = 0x30;

export const PCI_COMMAND_IO: u32 = 1 << 0;
export const PCI_COMMAND_MEMORY: u32 = 1 << 1;
export const PCI_COMMAND_MASTER: u32 = 1 << 2;
export const PCI_COMMAND_INTX_DISABLE: u32 = 1 << 10;
export const PCI_STATUS_CAP_LIST: u32 = 1 << 4;

export const PCI_HEADER_TYPE_MASK: u32 = 0x7f;
export const PCI_HEADER_MULTIFUNCTION: u32 = 0x80;
export const PCI_HEADER_BRIDGE: u32 = 1;
