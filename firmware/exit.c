/* The end of every run: the last line, then isa-debug-exit (QEMU ends there) or a halt. A file of
 * its own so that the crash report, the runtime and the platform imports all end runs through it
 * without calling each other in a circle. */
#include <stdint.h>

#include "cpu.h"
#include "debugcon.h"
#include "runtime.h"

void fw_exit(uint32_t code) {
  debugcon_line_start("info", "boot");
  debugcon_str("exit code=");
  debugcon_dec(code);
  debugcon_str("\n");
  debugcon_flush();
  outl(FW_ISA_DEBUG_EXIT_PORT, code); /* QEMU ends here when it has isa-debug-exit */
  halt_forever();
}
