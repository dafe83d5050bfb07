// Finding virtio-mmio devices: the command line's `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`
// entries (Linux's syntax; QEMU microvm's automatic command line and Firecracker write them), or,
// when no entry names one, QEMU microvm's fixed window of transports probed for the magic value.
// A window opens only when its registers say magic "virt", version 2 (modern) and the device type.
import { bootCommandLine, commandLineValues } from "../platform/command-line";
import { mmioRead32 } from "../platform/imports";
import { LEVEL_ERROR, LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logKvHex, logStr } from "../platform/log";
import { MMIO_CONFIG, MMIO_DEVICE_ID, MMIO_MAGIC_VALUE, MMIO_NO_IRQ, MMIO_VERSION, MmioTransport, VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_VERSION_MODERN } from "./mmio-transport";

// QEMU microvm (hw/i386/microvm.c): transports every 512 bytes from 0xfeb00000; 8 of them, or
// 24 with its second I/O APIC (on whenever ACPI is, and then QEMU fills the last one first:
// 0xfeb02e00). Probed only when the command line names no device, which is microvm with ACPI on:
// then the lines are on an I/O APIC that only ACPI describes, so a probed device is polled.
const MICROVM_MMIO_BASE: u64 = 0xfeb00000;
const MICROVM_MMIO_STRIDE: u64 = 512;
const MICROVM_MMIO_TRANSPORTS: u32 = 24;
// Registers up to ConfigGeneration, and at least a few bytes of device config.
const MMIO_MINIMUM_SIZE: u64 = MMIO_CONFIG + 8;
const MMIO_ADDRESS_LIMIT: u64 = 0x1_0000_0000; // the identity map covers the low 4 GiB

export class MmioDeviceEntry {
  constructor(
    readonly base: u64,
    readonly size: u64,
    readonly irq: u32,
  ) {}
}

// A number as Linux's memparse/simple_strtoull read it: decimal or 0x-hex, then an optional
// K/M/G suffix when `suffixes`. -1 when the text is not one.
function parseNumber(text: string, suffixes: bool): i64 {
  let i = 0;
  let radix: u64 = 10;
  if (text.length > 2 && text.charCodeAt(0) == 0x30 && (text.charCodeAt(1) | 0x20) == 0x78) {
    radix = 16;
    i = 2;
  }
  let value: u64 = 0;
  let digits = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let digit: i32 = -1;
    if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
    else if (radix == 16 && (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) digit = (c | 0x20) - 0x61 + 10;
    if (digit < 0) break;
    if (value > 0x0fff_ffff_ffff_ffff) return -1;
    value = value * radix + <u64>digit;
    digits++;
  }
  if (digits == 0) return -1;
  if (suffixes && i == text.length - 1) {
    const unit = text.charCodeAt(i) | 0x20;
    const shift: u64 = unit == 0x6b ? 10 : unit == 0x6d ? 20 : unit == 0x67 ? 30 : 64;
    if (shift == 64 || value > (<u64>0xffff_ffff)) return -1;
    value <<= shift;
    i++;
  }
  if (i != text.length || value > <u64>i64.MAX_VALUE) return -1;
  return <i64>value;
}

// Command-line text inside a log line: bounded, and without the quote that would end the value.
function logQuoted(text: string, limit: i32): void {
  const shown = text.length > limit ? text.substring(0, limit) : text;
  logStr("\"");
  logStr(shown.replaceAll("\"", "'"));
  logStr("\"");
}

function logBadEntry(text: string, why: string): void {
  if (logBegin(LEVEL_WARN, "virtio")) {
    logStr("ignored virtio_mmio.device entry: ");
    logStr(why);
    logStr(" entry=");
    logQuoted(text, 80);
    logEnd();
  }
}

// One entry, or null (logged) when it is malformed or names a window we cannot reach.
export function parseMmioDeviceEntry(text: string): MmioDeviceEntry | null {
  const at = text.indexOf("@");
  const colon = text.indexOf(":", at + 1);
  if (at <= 0 || colon < 0) {
    logBadEntry(text, "not <size>@<base>:<irq>");
    return null;
  }
  const size = parseNumber(text.substring(0, at), true);
  const base = parseNumber(text.substring(at + 1, colon), false);
  const idColon = text.indexOf(":", colon + 1); // an optional platform device id follows
  const irq = parseNumber(text.substring(colon + 1, idColon < 0 ? text.length : idColon), false);
  if (size < 0 || base < 0 || irq < 0) {
    logBadEntry(text, "not <size>@<base>:<irq>");
    return null;
  }
  if (<u64>size < MMIO_MINIMUM_SIZE || <u64>size > 0x10000) {
    logBadEntry(text, "window size outside [264, 64 KiB]");
    return null;
  }
  if ((<u64>base & 3) != 0 || <u64>base + <u64>size > MMIO_ADDRESS_LIMIT || base == 0) {
    logBadEntry(text, "window not 4-byte aligned or not below 4 GiB");
    return null;
  }
  if (irq > 0xff) {
    logBadEntry(text, "irq above 255");
    return null;
  }
  return new MmioDeviceEntry(<u64>base, <u64>size, <u32>irq);
}

let entries: MmioDeviceEntry[] | null = null;

// The command line's entries, parsed once.
export function mmioDevicesNamed(): MmioDeviceEntry[] {
  let list = entries;
  if (list != null) return list;
  list = new Array<MmioDeviceEntry>();
  const values = commandLineValues("virtio_mmio.device");
  for (let i = 0; i < values.length; i++) {
    const entry = parseMmioDeviceEntry(values[i]);
    if (entry != null) list.push(entry);
  }
  entries = list;
  return list;
}

// The device id at `base` when the window holds a modern virtio-mmio device, else 0 (logged
// when `named`: the command line promised a device there).
function modernDeviceId(base: u64, named: bool): u32 {
  const magic = mmioRead32(base + MMIO_MAGIC_VALUE);
  if (magic != VIRTIO_MMIO_MAGIC) {
    if (named && logBegin(LEVEL_WARN, "virtio")) {
      logStr("no virtio-mmio device at a named window");
      logKvHex("base", base);
      logKvHex("magic", magic);
      logEnd();
    }
    return 0;
  }
  const version = mmioRead32(base + MMIO_VERSION);
  if (version != VIRTIO_MMIO_VERSION_MODERN) {
    // An empty transport slot (device id 0) is no news, whatever version it reports.
    if (mmioRead32(base + MMIO_DEVICE_ID) != 0 && logBegin(LEVEL_WARN, "virtio")) {
      logStr(version == 1 ? "virtio-mmio device is legacy (version 1): not driven (QEMU: -global virtio-mmio.force-legacy=false)" : "virtio-mmio device of unknown version: not driven");
      logKvHex("base", base);
      logKv("version", version);
      logEnd();
    }
    return 0;
  }
  return mmioRead32(base + MMIO_DEVICE_ID); // 0: an empty transport slot
}

function opened(base: u64, size: u64, irq: u32, how: string, subsystem: string): MmioTransport {
  if (logBegin(LEVEL_INFO, subsystem)) {
    logStr("device found virtio-mmio");
    logKvHex("base", base);
    logKv("size", size);
    if (irq != MMIO_NO_IRQ) logKv("irq", irq);
    logStr(" from=");
    logStr(how);
    logEnd();
  }
  return new MmioTransport(base, size, irq);
}

// The first virtio-mmio device of type `deviceType`: among the command line's entries when it
// names any (else null; probeMicrovmWindow is the caller's last resort).
// Null when there is none (nothing logged: the caller tries PCI and says what it looked for).
export function openMmioTransport(deviceType: u32, subsystem: string): MmioTransport | null {
  const named = mmioDevicesNamed();
  for (let i = 0; i < named.length; i++) {
    const entry = named[i];
    if (modernDeviceId(entry.base, true) == deviceType) return opened(entry.base, entry.size, entry.irq, "command-line", subsystem);
  }
  if (named.length != 0) {
    if (logBegin(LEVEL_ERROR, subsystem)) {
      logStr("no virtio-mmio device of the type among the command line's entries");
      logKv("device_type", deviceType);
      logKv("entries", named.length);
      logEnd();
    }
    return null;
  }
  return null;
}

// QEMU microvm's window, probed for the magic value (for a loader that passes no command line).
export function probeMicrovmWindow(deviceType: u32, subsystem: string): MmioTransport | null {
  for (let i: u32 = 0; i < MICROVM_MMIO_TRANSPORTS; i++) {
    const base = MICROVM_MMIO_BASE + <u64>i * MICROVM_MMIO_STRIDE;
    if (modernDeviceId(base, false) == deviceType) return opened(base, MICROVM_MMIO_STRIDE, MMIO_NO_IRQ, "probe", subsystem);
  }
  return null;
}

// Whether this boot names virtio-mmio devices (then there is no PCI bus to scan: microvm,
// Firecracker). Logs the command line once, which is where they came from.
export function virtioMmioNamed(): bool {
  const line = bootCommandLine();
  if (line.length != 0 && logBegin(LEVEL_INFO, "boot")) {
    logStr("command line");
    logStr(" text=");
    logQuoted(line, 200);
    logEnd();
  }
  return mmioDevicesNamed().length != 0;
}
