// QEMU's fw_cfg device through its I/O ports: 16-bit selector at 0x510, byte-wide data at 0x511,
// and (unless `dma: false`) the DMA interface: a big-endian descriptor address written to 0x514
// (high) and 0x518 (low, which starts the transfer), the registers reading back "QEMU CFG".
// Enough for the firmware's runtime options: the signature, the ID item and a file directory
// (big-endian, as QEMU writes it).
export const FW_CFG_SELECTOR_PORT = 0x510;
export const FW_CFG_DATA_PORT = 0x511;
export const FW_CFG_DMA_HIGH_PORT = 0x514;
export const FW_CFG_DMA_LOW_PORT = 0x518;
const DMA_SIGNATURE_HIGH = 0x51454d55; // "QEMU"
const DMA_SIGNATURE_LOW = 0x20434647; // " CFG"
const DMA_CTL_ERROR = 0x01;
const DMA_CTL_READ = 0x02;
const DMA_CTL_SKIP = 0x04;
const DMA_CTL_SELECT = 0x08;

/** What DMA reaches: guest physical memory. */
export interface FwCfgMemory {
  readBytes(address: number, length: number): Uint8Array;
  writeBytes(address: number, bytes: Uint8Array): void;
}

function byteSwap32(value: number): number {
  return (((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24)) >>> 0;
}
export const FW_CFG_SIGNATURE = 0x0000;
export const FW_CFG_ID = 0x0001;
export const FW_CFG_FILE_DIR = 0x0019;
export const FW_CFG_FILE_FIRST = 0x0020;
const FILE_NAME_BYTES = 56;

export class FwCfg {
  private readonly items = new Map<number, Uint8Array>();
  private selected: Uint8Array = new Uint8Array(0);
  private offset = 0;
  /** Every selector written, in order (a test can check what the firmware asked for). */
  readonly selections: number[] = [];
  /** Every DMA transfer: its control word and length. */
  readonly transfers: { control: number; length: number }[] = [];
  private dmaHigh = 0;

  constructor(
    files: Record<string, string | Uint8Array> = {},
    private readonly memory: FwCfgMemory | null = null,
  ) {
    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.items.set(FW_CFG_ID, Uint8Array.of(memory ? 3 : 1, 0, 0, 0)); // bit 1: the DMA interface
    const names = Object.keys(files).sort();
    const dir = new Uint8Array(4 + 64 * names.length);
    const view = new DataView(dir.buffer);
    view.setUint32(0, names.length);
    names.forEach((name, i) => {
      const value = files[name];
      const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
      const selector = FW_CFG_FILE_FIRST + i;
      this.items.set(selector, bytes);
      const entry = 4 + 64 * i;
      view.setUint32(entry, bytes.length);
      view.setUint16(entry + 4, selector);
      dir.set(new TextEncoder().encode(name).subarray(0, FILE_NAME_BYTES - 1), entry + 8);
    });
    this.items.set(FW_CFG_FILE_DIR, dir);
  }

  select(selector: number): void {
    this.selections.push(selector);
    this.selected = this.items.get(selector & 0x3fff) ?? new Uint8Array(0);
    this.offset = 0;
  }

  /** Next data byte; 0 past the end of the item, as QEMU does. */
  readByte(): number {
    return this.offset < this.selected.length ? this.selected[this.offset++] : 0;
  }

  /** A 32-bit read of 0x514/0x518 as the CPU sees it: the signature's bytes in port order. */
  readDma(port: number): number | undefined {
    if (!this.memory) return undefined;
    if (port === FW_CFG_DMA_HIGH_PORT) return byteSwap32(DMA_SIGNATURE_HIGH);
    if (port === FW_CFG_DMA_LOW_PORT) return byteSwap32(DMA_SIGNATURE_LOW);
    return undefined;
  }

  /** A 32-bit write of 0x514/0x518; the low half runs the transfer its descriptor describes. */
  writeDma(port: number, value: number): boolean {
    if (!this.memory) return false;
    if (port === FW_CFG_DMA_HIGH_PORT) {
      this.dmaHigh = byteSwap32(value);
      return true;
    }
    if (port !== FW_CFG_DMA_LOW_PORT) return false;
    const address = (BigInt(this.dmaHigh) << 32n) | BigInt(byteSwap32(value));
    this.dmaHigh = 0;
    this.transfer(address);
    return true;
  }

  private transfer(address: bigint): void {
    const memory = this.memory!;
    const at = Number(address);
    const descriptor = new DataView(memory.readBytes(at, 16).slice().buffer);
    const control = descriptor.getUint32(0);
    const length = descriptor.getUint32(4);
    const target = Number(descriptor.getBigUint64(8));
    this.transfers.push({ control, length });
    if (control & DMA_CTL_SELECT) this.select(control >>> 16);
    let status = 0;
    if (control & DMA_CTL_READ) {
      const bytes = new Uint8Array(length);
      for (let i = 0; i < length; i++) bytes[i] = this.readByte(); // zeros past the item's end
      memory.writeBytes(target, bytes);
    } else if (control & DMA_CTL_SKIP) {
      this.offset += length;
    } else if (control & ~DMA_CTL_SELECT) {
      status = DMA_CTL_ERROR; // writes are not offered
    }
    const done = new Uint8Array(4);
    new DataView(done.buffer).setUint32(0, status);
    memory.writeBytes(at, done);
  }
}
