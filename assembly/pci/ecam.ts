// Memory-mapped config space (ECAM) on QEMU's q35: its MCH decodes a window once the firmware
// enables PCIEXBAR, as SeaBIOS and OVMF do. Each config access then costs one MMIO exit instead of
// a port select and a port data exit: the scan and resource assignment of the q35 bus went from
// ~260 config exits to about half (tests/unit/pci-config-exits.test.ts). Anything that is not a
// q35 MCH, or a window that does not answer, keeps the ports.
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKvHex, logStr } from "../platform/log";
import { bdf, configRead32, configUseEcam, configWrite32, PCI_VENDOR_ID } from "./config";

const Q35_MCH_IDS: u32 = 0x29c08086; // device << 16 | vendor, as one dword reads them
// MCH PCIEXBAR (config 0x60, 64 bits): bit 0 enables, bits 2:1 give the length (0: 256 MiB, all
// 256 buses), the base is 256 MiB-aligned.
const PCIEXBAR: u32 = 0x60;
const PCIEXBAR_HIGH: u32 = 0x64;
const PCIEXBAR_ENABLE: u32 = 1;
const PCIEXBAR_LENGTH_MASK: u32 = 6;
const PCIEXBAR_BASE_MASK: u32 = 0xf0000000;
// Where SeaBIOS and OVMF put it: q35's RAM below 4 GiB ends at or below it, and the BARs we
// assign start above it (resources.ts, MEMORY_WINDOW_START 0xc0000000).
const ECAM_DEFAULT_BASE: u32 = 0xb0000000;

// Turns the window on where the machine has one; true when config space is memory-mapped now.
export function pciEnableEcam(): bool {
  const host = bdf(0, 0, 0);
  if (configRead32(host, PCI_VENDOR_ID) != Q35_MCH_IDS) return false;
  let bar = configRead32(host, PCIEXBAR);
  if ((bar & PCIEXBAR_ENABLE) != 0 && (bar & PCIEXBAR_LENGTH_MASK) != 0) return false; // fewer buses: keep ports
  if ((bar & PCIEXBAR_ENABLE) == 0) {
    const base = (bar & PCIEXBAR_BASE_MASK) != 0 ? bar & PCIEXBAR_BASE_MASK : ECAM_DEFAULT_BASE;
    if (configRead32(host, PCIEXBAR_HIGH) != 0) configWrite32(host, PCIEXBAR_HIGH, 0);
    bar = base | PCIEXBAR_ENABLE; // length 0: 256 MiB
    configWrite32(host, PCIEXBAR, bar);
  }
  const base = <u64>(bar & PCIEXBAR_BASE_MASK);
  configUseEcam(base);
  // The host bridge must read the same through the window, or the window is not there.
  if (configRead32(host, PCI_VENDOR_ID) != Q35_MCH_IDS) {
    configUseEcam(0);
    if (logBegin(LEVEL_WARN, "pci")) {
      logStr("ecam window does not answer, config space through ports");
      logKvHex("base", base);
      logEnd();
    }
    return false;
  }
  if (logBegin(LEVEL_INFO, "pci")) {
    logStr("ecam");
    logKvHex("base", base);
    logEnd();
  }
  return true;
}
