/* CPU exception report, called by the IDT stubs in reset-vector/exceptions.asm; the rest of the
 * report (packets, connections, device reset, exit) is crash-report.c. */
#include <stdint.h>

#include "cpu.h"
#include "crash-report.h"
#include "debugcon.h"
#include "runtime.h"

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection", "reserved", "reserved",
    "reserved", "reserved", "reserved", "reserved", "#HV hypervisor injection", "#VC VMM communication",
    "#SX security", "reserved"};

__attribute__((noreturn)) void fw_exception(uint64_t vector, uint64_t error_code, uint64_t rip, uint64_t rsp) {
  uint64_t cr2 = read_cr2();
  if (crash_report_running()) {
    crash_fault_during_report("CPU exception", vector < 32 ? exception_names[vector] : "external");
  }
  crash_report_begin("cpu-exception", FW_EXIT_CPU_EXCEPTION);
  debugcon_str("\n");
  debugcon_line_start("error", "cpu");
  debugcon_str("exception vector=");
  debugcon_dec(vector);
  debugcon_str(" name=\"");
  debugcon_str(vector < 32 ? exception_names[vector] : "external");
  debugcon_str("\" error=0x");
  debugcon_hex(error_code, 1);
  debugcon_str(" rip=0x");
  debugcon_hex(rip, 16);
  debugcon_str(" rsp=0x");
  debugcon_hex(rsp, 16);
  debugcon_str(" cr2=0x");
  debugcon_hex(cr2, 16);
  debugcon_str("\n");
  debugcon_line_start("error", "cpu");
  debugcon_str("last log line before the exception follows\n");
  debugcon_replay_context();
  crash_report_finish(); /* last packets, connections, device reset, exit code 3 */
}
