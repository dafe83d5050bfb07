// Runtime options from QEMU's fw_cfg device: `-fw_cfg name=opt/vsockfw/<name>,string=<value>`.
// Read with fw_cfg's DMA interface when the device offers it (two port writes per item: a port exit
// per byte costs ~0.5 s for the file directory under some hypervisors), byte by byte otherwise.
// Boot-time only: it allocates.
import { barrier, memoryBase, portIn32, portIn8, portOut16, portOut32 } from "./imports";
import { logDebug } from "./log";

const FW_CFG_SELECTOR: u32 = 0x510;
const FW_CFG_DATA: u32 = 0x511;
const FW_CFG_DMA_HIGH: u32 = 0x514; // big-endian address of an FWCfgDmaAccess; writing the low half starts it
const FW_CFG_DMA_LOW: u32 = 0x518;
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_ID: u16 = 0x0001;
const FW_CFG_FILE_DIR: u16 = 0x0019;
const FW_CFG_VERSION_DMA: u32 = 1 << 1;
const FW_CFG_DMA_CTL_ERROR: u32 = 0x01;
const FW_CFG_DMA_CTL_READ: u32 = 0x02;
const FW_CFG_DMA_CTL_SELECT: u32 = 0x08;
const FW_CFG_DMA_SIGNATURE_HIGH: u32 = 0x51454d55; // "QEMU" of "QEMU CFG", big-endian

const FILE_ENTRY_BYTES: i32 = 64; // be32 size, be16 select, u16 reserved, char name[56]
const FILE_NAME_BYTES: i32 = 56;
const MAX_FILES: u32 = 256;
// Entries read with the directory's count in one DMA transfer (QEMU's q35 has about 20 files;
// past the item's end the device writes zeros). More files take a second transfer.
const DIRECTORY_FIRST_READ: u32 = 64;
const MAX_OPTION_BYTES: u32 = 256;
const OPTION_PREFIX = "opt/vsockfw/";

let present: i32 = -1; // unknown until first asked
let dmaAvailable = false;
// FWCfgDmaAccess: be32 control, be32 length, be64 address. 16-byte aligned inside the buffer.
const dmaDescriptor = new StaticArray<u8>(32);

function bigEndian32(bytes: usize): u32 {
  return bswap<u32>(load<u32>(bytes));
}

// Reads `length` bytes of item `selector` into wasm memory at `destination`.
function readItem(selector: u16, destination: usize, length: u32): bool {
  if (dmaAvailable) {
    const access = (changetype<usize>(dmaDescriptor) + 15) & ~(<usize>15);
    store<u32>(access, bswap<u32>((<u32>selector << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ));
    store<u32>(access + 4, bswap<u32>(length));
    store<u64>(access + 8, bswap<u64>(memoryBase() + <u64>destination));
    barrier();
    const physical = memoryBase() + <u64>access;
    portOut32(FW_CFG_DMA_HIGH, bswap<u32>(<u32>(physical >> 32)));
    portOut32(FW_CFG_DMA_LOW, bswap<u32>(<u32>physical));
    barrier();
    // QEMU completes the transfer within the port write; the control word then reads 0 or ERROR.
    return (bigEndian32(access) & FW_CFG_DMA_CTL_ERROR) == 0;
  }
  portOut16(FW_CFG_SELECTOR, selector);
  for (let i: u32 = 0; i < length; i++) store<u8>(destination + i, <u8>portIn8(FW_CFG_DATA));
  return true;
}

export function fwCfgPresent(): bool {
  if (present < 0 && bswap<u32>(portIn32(FW_CFG_DMA_HIGH)) == FW_CFG_DMA_SIGNATURE_HIGH) {
    // The DMA address register reads back "QEMU CFG": one exit says fw_cfg is there with DMA
    // (the signature and ID items byte by byte cost ten).
    present = 1;
    dmaAvailable = true;
    logDebug("boot", "fw_cfg dma");
  }
  if (present < 0) {
    portOut16(FW_CFG_SELECTOR, FW_CFG_SIGNATURE);
    let signature: u32 = 0;
    for (let i = 0; i < 4; i++) signature = (signature << 8) | portIn8(FW_CFG_DATA);
    present = signature == 0x51454d55 ? 1 : 0; // "QEMU"
    if (present == 1) {
      portOut16(FW_CFG_SELECTOR, FW_CFG_ID);
      let features: u32 = 0;
      for (let i = 0; i < 4; i++) features |= portIn8(FW_CFG_DATA) << (8 * i); // little-endian
      dmaAvailable = (features & FW_CFG_VERSION_DMA) != 0;
      logDebug("boot", dmaAvailable ? "fw_cfg dma" : "fw_cfg no dma");
    }
  }
  return present == 1;
}

// The file directory, read once (one DMA transfer under fw_cfg DMA): every option looks in it.
let directory: StaticArray<u8> | null = null;
let directoryCount: u32 = 0;

function readDirectory(): bool {
  if (directory != null) return true;
  if (dmaAvailable) {
    let entries = new StaticArray<u8>(4 + <i32>DIRECTORY_FIRST_READ * FILE_ENTRY_BYTES);
    if (!readItem(FW_CFG_FILE_DIR, changetype<usize>(entries), <u32>entries.length)) return false;
    let count = bigEndian32(changetype<usize>(entries));
    if (count > MAX_FILES) count = MAX_FILES;
    if (count > DIRECTORY_FIRST_READ) {
      entries = new StaticArray<u8>(4 + <i32>count * FILE_ENTRY_BYTES);
      if (!readItem(FW_CFG_FILE_DIR, changetype<usize>(entries), <u32>entries.length)) return false;
    }
    directory = entries;
    directoryCount = count;
    return true;
  }
  const countBytes = new StaticArray<u8>(4);
  if (!readItem(FW_CFG_FILE_DIR, changetype<usize>(countBytes), 4)) return false;
  let count = bigEndian32(changetype<usize>(countBytes));
  if (count > MAX_FILES) count = MAX_FILES;
  // The directory is one item: its count, then the entries. Read it whole.
  const entries = new StaticArray<u8>(4 + <i32>count * FILE_ENTRY_BYTES);
  if (!readItem(FW_CFG_FILE_DIR, changetype<usize>(entries), <u32>entries.length)) return false;
  directory = entries;
  directoryCount = count;
  return true;
}

// Whether the entry's NUL-terminated name is OPTION_PREFIX + name, compared in place: under an
// emulating hypervisor every guest instruction costs, and building a string per entry did not pay.
function entryNamed(entry: usize, name: string): bool {
  const prefixLength = OPTION_PREFIX.length;
  const total = prefixLength + name.length;
  if (total >= FILE_NAME_BYTES) return false;
  for (let i = 0; i < total; i++) {
    const wanted = i < prefixLength ? OPTION_PREFIX.charCodeAt(i) : name.charCodeAt(i - prefixLength);
    if (<i32>load<u8>(entry + 8 + i) != wanted) return false;
  }
  return load<u8>(entry + 8 + total) == 0;
}

// The value of option `name`, or "" when it is absent (or there is no fw_cfg).
export function runtimeOption(name: string): string {
  if (!fwCfgPresent() || !readDirectory()) return "";
  const entries = directory!;
  for (let i: u32 = 0; i < directoryCount; i++) {
    const entry = changetype<usize>(entries) + 4 + <usize>i * FILE_ENTRY_BYTES;
    if (!entryNamed(entry, name)) continue;
    let size = bigEndian32(entry);
    if (size > MAX_OPTION_BYTES) size = MAX_OPTION_BYTES;
    const selector = bswap<u16>(load<u16>(entry + 4));
    const value = new StaticArray<u8>(<i32>size);
    if (!readItem(selector, changetype<usize>(value), size)) return "";
    let text = "";
    for (let j = 0; j < <i32>size; j++) {
      const c = value[j];
      if (c == 0) break;
      text += String.fromCharCode(c);
    }
    return text.trim();
  }
  return "";
}
