/* The crash report shared by wasm traps and CPU exceptions: after the caller's own first lines,
 * the last packets, the connection table, a device reset, then the end of the run. */
#ifndef FW_CRASH_REPORT_H
#define FW_CRASH_REPORT_H

#include <stdint.h>

#include "runtime.h"

/* At boot, once the wasm instance exists: from then on the report calls its exports. */
void crash_report_wasm_ready(Z_fw_instance_t *instance);
/* Starts a report (freezes the log context). A fault while a report runs is not a new report:
 * it is noted in the report, which carries on with its next section (crash_fault_during_report). */
int crash_report_running(void);
void crash_report_begin(const char *kind, uint32_t exit_code);
__attribute__((noreturn)) void crash_report_finish(void);
__attribute__((noreturn)) void crash_fault_during_report(const char *what, const char *detail);

#endif
