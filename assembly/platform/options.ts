// Runtime options from QEMU's fw_cfg device: `-fw_cfg name=opt/vsockfw/<name>,string=<value>`.
// Read through the legacy I/O ports (selector 0x510, data 0x511). Boot-time only: it allocates.
import { portIn8, portOut16 } from "./imports";

const FW_CFG_SELECTOR: u32 = 0x510;
const FW_CFG_DATA: u32 = 0x511;
const FW_CFG_SIGNATURE: u32 = 0x0000;
const FW_CFG_FILE_DIR: u32 = 0x0019;
const FILE_ENTRY_NAME_BYTES: i32 = 56;
const MAX_OPTION_BYTES: u32 = 256;
const OPTION_PREFIX = "opt/vsockfw/";

function readBigEndian(bytes: i32): u32 {
  let value: u32 = 0;
  for (let i = 0; i < bytes; i++) value = (value << 8) | portIn8(FW_CFG_DATA);
  return value;
}

let present: i32 = -1; // unknown until first asked

export function fwCfgPresent(): bool {
  if (present < 0) {
    portOut16(FW_CFG_SELECTOR, FW_CFG_SIGNATURE);
    let signature = "";
    for (let i = 0; i < 4; i++) signature += String.fromCharCode(portIn8(FW_CFG_DATA));
    present = signature == "QEMU" ? 1 : 0;
  }
  return present == 1;
}

// The value of option `name`, or "" when it is absent (or there is no fw_cfg).
export function runtimeOption(name: string): string {
  if (!fwCfgPresent()) return "";
  const wanted = OPTION_PREFIX + name;
  portOut16(FW_CFG_SELECTOR, FW_CFG_FILE_DIR);
  const count = readBigEndian(4);
  let selector: u32 = 0;
  let size: u32 = 0;
  for (let entry: u32 = 0; entry < count && entry < 4096; entry++) {
    const entrySize = readBigEndian(4);
    const entrySelector = readBigEndian(2);
    readBigEndian(2); // reserved
    let entryName = "";
    let ended = false;
    for (let i = 0; i < FILE_ENTRY_NAME_BYTES; i++) {
      const c = portIn8(FW_CFG_DATA);
      if (c == 0) ended = true;
      if (!ended) entryName += String.fromCharCode(c);
    }
    if (selector == 0 && entryName == wanted) {
      selector = entrySelector;
      size = entrySize;
    }
  }
  if (selector == 0) return "";
  portOut16(FW_CFG_SELECTOR, selector);
  let value = "";
  for (let i: u32 = 0; i < size && i < MAX_OPTION_BYTES; i++) {
    const c = portIn8(FW_CFG_DATA);
    if (c == 0) break;
    value += String.fromCharCode(c);
  }
  return value.trim();
}
