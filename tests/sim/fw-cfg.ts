// QEMU's fw_cfg device through its legacy I/O ports: 16-bit selector at 0x510, byte-wide data at
// 0x511. Enough for the firmware's runtime options: the signature, the ID item and a file
// directory (big-endian, as QEMU writes it).
export const FW_CFG_SELECTOR_PORT = 0x510;
export const FW_CFG_DATA_PORT = 0x511;
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

  constructor(files: Record<string, string | Uint8Array> = {}) {
    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.items.set(FW_CFG_ID, Uint8Array.of(1, 0, 0, 0)); // traditional interface only, no DMA
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
}
