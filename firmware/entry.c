/* C entry, called by the reset vector in long mode with the RAM image copied and .bss zeroed.
 * Calibrates the clock, brings up the wasm runtime and hands over to AssemblyScript. */
#include <stdint.h>

#include "clock.h"
#include "cpu.h"
#include "crash-report.h"
#include "debugcon.h"
#include "pvh-boot.h"
#include "runtime.h"

Z_fw_instance_t fw_instance;

#ifdef FW_APP
/* `make image APP=app.c`: a C application runs instead of the default services. */
int app_main(void);
#endif

void fw_entry(uint64_t reset_tsc) {
  uint64_t long_mode_tsc = rdtsc(); /* the long-mode milestone: before the 10 ms calibration */
  uint64_t hz = clock_calibrate(reset_tsc);
  debugcon_line_start_at(0, "info", "boot"); /* the clock's zero is the reset TSC */
  debugcon_str("reset\n");
  debugcon_line_start_at(clock_ns_at(long_mode_tsc), "info", "boot");
  debugcon_str("long mode tsc_hz=");
  debugcon_dec(hz);
  debugcon_str(" tsc_source=");
  debugcon_str(clock_source());
  debugcon_str(clock_is_estimated() ? " (estimated: no PIT answer)" : "");
  debugcon_str("\n");

  pvh_boot_read();

  wasm_rt_init();
  Z_fw_init_module();
  Z_fw_instantiate(&fw_instance, 0);
  crash_report_wasm_ready(&fw_instance);
  debugcon_line_start("info", "boot");
  debugcon_str("runtime up memory_base=0x");
  debugcon_hex((uint64_t)(uintptr_t)fw_memory(), 1);
  debugcon_str(" memory_bytes=");
  debugcon_dec(fw_memory_size());
  debugcon_str(" max_pages=");
  debugcon_dec(LINEAR_MEMORY_PAGES);
  debugcon_str("\n");

#ifdef FW_APP
  Z_fwZ_apps_set_enabled(&fw_instance, 0); /* the app serves; the default services stay off */
  if (!Z_fwZ_fw_init(&fw_instance)) fw_exit(FW_EXIT_NO_DEVICE);
  int status = app_main();
  Z_fwZ_fw_log_counters(&fw_instance);
  debugcon_line_start("info", "app");
  debugcon_str("app_main returned ");
  debugcon_dec((uint64_t)(uint32_t)status);
  debugcon_str("\n");
  fw_exit(status == 0 ? FW_EXIT_OK : FW_EXIT_NO_DEVICE);
#else
  Z_fwZ_main(&fw_instance);
  fw_exit(FW_EXIT_OK); /* main never returns; stop cleanly if it ever does */
#endif
}
