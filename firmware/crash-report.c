/* The crash report's common part. Runs after the trap or exception line: the last packets and the
 * connection table (printed by wasm: crash_log_packets and crash_log_connections, which only read),
 * a device reset (so the device stops writing guest memory), then the run ends through
 * isa-debug-exit or a halt. A fault inside one section cuts that section short and the report
 * goes on with the next one. */
#include <stdint.h>

#include "cpu.h"
#include "crash-report.h"
#include "debugcon.h"
#include "runtime.h"

enum { STAGE_NONE, STAGE_HEADER, STAGE_PACKETS, STAGE_CONNECTIONS, STAGE_DEVICE, STAGE_END };
static const char *const stage_names[] = {"-", "writing the first lines", "printing the last packets",
                                          "reading the connection table", "resetting the device", "ending the run"};
#define MAX_FAULTS_DURING_REPORT 4

static Z_fw_instance_t *instance; /* set once the instance exists: its exports may be called */
static volatile int stage = STAGE_NONE;
static const char *report_kind = "unknown";
static uint32_t report_exit_code;
static int faults_during_report;

void crash_report_wasm_ready(Z_fw_instance_t *ready) { instance = ready; }

int crash_report_running(void) { return stage != STAGE_NONE; }

void crash_report_begin(const char *kind, uint32_t exit_code) {
  stage = STAGE_HEADER;
  report_kind = kind;
  report_exit_code = exit_code;
  debugcon_freeze_context();
}

static void line(void) { debugcon_line_start("error", "crash"); }

/* Each call into wasm starts at depth 0: the trap may have come at any depth (even "call stack
 * exhausted"). */
static void run_stage(int current) {
  if (!instance) {
    if (current == STAGE_PACKETS) {
      line();
      debugcon_str("last packets and connections unavailable: the wasm instance never came up\n");
    }
    return;
  }
  wasm_rt_call_stack_depth = 0;
  if (current == STAGE_PACKETS) Z_fwZ_crash_log_packets(instance);
  if (current == STAGE_CONNECTIONS) Z_fwZ_crash_log_connections(instance);
  if (current == STAGE_DEVICE) {
    int reset = (int)Z_fwZ_crash_reset_device(instance);
    line();
    debugcon_str(reset ? "device reset: it no longer uses our buffers\n" : "no device to reset\n");
  }
}

static __attribute__((noreturn)) void run_remaining_stages(void) {
  while (stage < STAGE_END) run_stage(stage++); /* advanced first: a fault inside resumes with the next */
  stage = STAGE_END + 1;
  line();
  debugcon_str("end of report kind=");
  debugcon_str(report_kind);
  debugcon_str(" outcome=halt exit_code=");
  debugcon_dec(report_exit_code);
  debugcon_str("\n");
  fw_exit(report_exit_code);
}

void crash_report_finish(void) {
  if (stage < STAGE_PACKETS) stage = STAGE_PACKETS;
  run_remaining_stages();
}

void crash_fault_during_report(const char *what, const char *detail) {
  int during = stage - 1; /* the section that was running */
  if (during < STAGE_HEADER) during = STAGE_HEADER;
  if (during > STAGE_END) during = STAGE_END;
  if (++faults_during_report > MAX_FAULTS_DURING_REPORT || stage > STAGE_END) {
    /* Printing itself fails: end without another word. */
    outl(FW_ISA_DEBUG_EXIT_PORT, report_exit_code);
    halt_forever();
  }
  if (stage <= STAGE_HEADER) stage = STAGE_PACKETS;
  debugcon_str("\n");
  line();
  debugcon_str(what);
  debugcon_str(" (");
  debugcon_str(detail);
  debugcon_str(") while ");
  debugcon_str(stage_names[during]);
  debugcon_str(": that part is cut short\n");
  run_remaining_stages();
}
