/* The crash report's common part. Runs after the trap or exception line: the last packets (read
 * straight from linear memory), the connection table (crash_snapshot() in wasm fills a summary;
 * it only reads), a device reset (so the device stops writing guest memory), then the run ends
 * through isa-debug-exit or a halt. Every address the wasm side gave is checked before it is read.
 * A fault inside one section cuts that section short and the report goes on with the next one. */
#include <stdint.h>

#include "cpu.h"
#include "crash-record.h"
#include "crash-report.h"
#include "debugcon.h"
#include "runtime.h"

enum { STAGE_NONE, STAGE_HEADER, STAGE_PACKETS, STAGE_CONNECTIONS, STAGE_DEVICE, STAGE_END };
static const char *const stage_names[] = {"-", "writing the first lines", "printing the last packets",
                                          "reading the connection table", "resetting the device", "ending the run"};
#define MAX_FAULTS_DURING_REPORT 4

static uint32_t record_address; /* wasm address of the crash record, 0 until registered */
static volatile int stage = STAGE_NONE;
static const char *report_kind = "unknown";
static uint32_t report_exit_code;
static int faults_during_report;

void crash_record_register(void) { record_address = Z_fwZ_crash_record(&fw_instance); }

int crash_report_running(void) { return stage != STAGE_NONE; }

void crash_report_begin(const char *kind, uint32_t exit_code) {
  stage = STAGE_HEADER;
  report_kind = kind;
  report_exit_code = exit_code;
  debugcon_freeze_context();
}

static int readable(uint32_t address, uint64_t length) {
  uint32_t size = fw_memory_size();
  return address != 0 && address <= size && length <= size - address;
}
static uint8_t *at(uint32_t address) { return fw_memory() + address; }
static uint16_t load16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t load32(const uint8_t *p) { return load16(p) | (uint32_t)load16(p + 2) << 16; }
static uint64_t load64(const uint8_t *p) { return load32(p) | (uint64_t)load32(p + 4) << 32; }

static void line(void) { debugcon_line_start("error", "crash"); }
static void kv(const char *key, uint64_t value) {
  debugcon_str(" ");
  debugcon_str(key);
  debugcon_str("=");
  debugcon_dec(value);
}

/* "s.micros", like the log's timestamps. */
static void seconds(uint64_t ns) {
  uint64_t micros = ns / 1000;
  char fraction[6];
  uint64_t rest = micros % 1000000;
  for (int i = 5; i >= 0; i--, rest /= 10) fraction[i] = (char)('0' + rest % 10);
  debugcon_dec(micros / 1000000);
  debugcon_str(".");
  debugcon_write(fraction, sizeof fraction);
}

static const char *op_name(uint32_t op) {
  static const char *const names[] = {"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW", "CREDIT_UPDATE",
                                      "CREDIT_REQUEST"};
  return op < sizeof names / sizeof names[0] ? names[op] : "UNKNOWN";
}

static const uint8_t *valid_record(void) {
  if (!readable(record_address, CRASH_RECORD_SIZE)) return 0;
  const uint8_t *r = at(record_address);
  if (load32(r + CR_MAGIC) != CRASH_RECORD_MAGIC || load32(r + CR_VERSION) != CRASH_RECORD_VERSION) return 0;
  return r;
}

static void print_packet(uint64_t number, const uint8_t *e) {
  const uint8_t *h = e + HE_HEADER;
  line();
  debugcon_str("packet");
  kv("n", number);
  debugcon_str(" t=");
  seconds(load64(e + HE_TIME_NS));
  debugcon_str(load32(e + HE_DIRECTION) == HISTORY_DIRECTION_RX ? " rx " : " tx ");
  debugcon_str(op_name(load16(h + VH_OP)));
  debugcon_str(" ");
  debugcon_dec(load64(h + VH_SRC_CID));
  debugcon_str(":");
  debugcon_dec(load32(h + VH_SRC_PORT));
  debugcon_str(" -> ");
  debugcon_dec(load64(h + VH_DST_CID));
  debugcon_str(":");
  debugcon_dec(load32(h + VH_DST_PORT));
  kv("len", load32(h + VH_LEN));
  kv("type", load16(h + VH_TYPE));
  kv("flags", load32(h + VH_FLAGS));
  kv("buf_alloc", load32(h + VH_BUF_ALLOC));
  kv("fwd_cnt", load32(h + VH_FWD_CNT));
  debugcon_str("\n");
}

static void print_packets(void) {
  const uint8_t *r = valid_record();
  if (!r) {
    line();
    debugcon_str("last packets unavailable: no valid crash record\n");
    return;
  }
  uint64_t total = load64(r + CR_HISTORY_TOTAL);
  uint32_t ring = load32(r + CR_HISTORY_ADDRESS), capacity = load32(r + CR_HISTORY_CAPACITY);
  if (load32(r + CR_HISTORY_ENTRY_SIZE) != HISTORY_ENTRY_SIZE || capacity == 0 || capacity > 4096 ||
      !readable(ring, (uint64_t)capacity * HISTORY_ENTRY_SIZE)) {
    line();
    debugcon_str("last packets unavailable: the history's descriptor points outside linear memory\n");
    return;
  }
  uint64_t first = total > capacity ? total - capacity : 0;
  line();
  debugcon_str("last packets");
  kv("total", total);
  kv("shown", total - first);
  debugcon_str("\n");
  for (uint64_t n = first; n < total; n++) {
    const uint8_t *e = at(ring) + (n % capacity) * HISTORY_ENTRY_SIZE;
    if (load32(e + HE_SEQUENCE) != (uint32_t)n) {
      line();
      debugcon_str("packet");
      kv("n", n);
      debugcon_str(" overwritten (being recorded when the crash came)\n");
      continue;
    }
    print_packet(n, e);
  }
}

static const char *state_name(uint32_t state) {
  static const char *const names[] = {"free", "connecting", "established", "closing", "closed"};
  return state < sizeof names / sizeof names[0] ? names[state] : "unknown";
}

static void print_connection(const uint8_t *e) {
  line();
  debugcon_str("conn");
  kv("slot", load32(e + CE_INDEX));
  debugcon_str(" state=");
  debugcon_str(state_name(load32(e + CE_STATE)));
  debugcon_str(e[CE_OUTBOUND] ? " dir=out" : " dir=in");
  kv("local", load32(e + CE_LOCAL_PORT));
  debugcon_str(" peer=");
  debugcon_dec(load64(e + CE_PEER_CID));
  debugcon_str(":");
  debugcon_dec(load32(e + CE_PEER_PORT));
  debugcon_str(" fd=");
  int32_t fd = (int32_t)load32(e + CE_FD);
  if (fd < 0) debugcon_str("-");
  debugcon_dec((uint64_t)(fd < 0 ? -(int64_t)fd : fd));
  kv("rx_bytes", load64(e + CE_RX_BYTES));
  kv("tx_bytes", load64(e + CE_TX_BYTES));
  kv("rx_queued", load32(e + CE_RX_QUEUED));
  kv("tx_queued", load32(e + CE_TX_QUEUED));
  kv("buf_alloc", load32(e + CE_BUF_ALLOC));
  kv("fwd_cnt", load32(e + CE_FWD_CNT));
  kv("peer_buf_alloc", load32(e + CE_PEER_BUF_ALLOC));
  kv("peer_fwd_cnt", load32(e + CE_PEER_FWD_CNT));
  kv("tx_cnt", load32(e + CE_TX_CNT));
  kv("peer_shutdown", e[CE_PEER_SHUTDOWN]);
  kv("local_shutdown", e[CE_LOCAL_SHUTDOWN]);
  kv("owed", e[CE_OWED]);
  kv("dropped", load32(e + CE_DROPPED));
  debugcon_str("\n");
}

static void print_connections(void) {
  const uint8_t *r = valid_record();
  if (!r) {
    line();
    debugcon_str("connections unavailable: no valid crash record\n");
    return;
  }
  /* A trap may have come at any call depth (even "call stack exhausted"): start the count afresh. */
  wasm_rt_call_stack_depth = 0;
  int32_t count = (int32_t)Z_fwZ_crash_snapshot(&fw_instance);
  uint32_t summary = load32(r + CR_CONNECTIONS_ADDRESS), capacity = load32(r + CR_CONNECTIONS_CAPACITY);
  line();
  if (count < 0) {
    debugcon_str("connections none: the stack was not started\n");
    return;
  }
  if (load32(r + CR_CONNECTION_ENTRY_SIZE) != CONNECTION_ENTRY_SIZE || (uint32_t)count > capacity ||
      !readable(summary, (uint64_t)capacity * CONNECTION_ENTRY_SIZE)) {
    debugcon_str("connections unavailable: the summary's descriptor points outside linear memory\n");
    return;
  }
  debugcon_str("connections");
  kv("live", load32(r + CR_CONNECTIONS_LIVE));
  kv("shown", (uint32_t)count);
  debugcon_str("\n");
  for (int32_t i = 0; i < count; i++) print_connection(at(summary) + (uint32_t)i * CONNECTION_ENTRY_SIZE);
}

static void reset_device(void) {
  if (!valid_record()) return;
  wasm_rt_call_stack_depth = 0;
  int reset = (int)Z_fwZ_crash_reset_device(&fw_instance);
  line();
  debugcon_str(reset ? "device reset: it no longer uses our buffers\n" : "no device to reset\n");
}

static __attribute__((noreturn)) void run_remaining_stages(void) {
  while (stage < STAGE_END) {
    int current = stage++; /* advanced first: a fault inside resumes with the next section */
    if (current == STAGE_PACKETS) print_packets();
    else if (current == STAGE_CONNECTIONS) print_connections();
    else if (current == STAGE_DEVICE) reset_device();
  }
  stage = STAGE_END + 1;
  line();
  debugcon_str("end of report kind=");
  debugcon_str(report_kind);
  debugcon_str(" outcome=halt");
  kv("exit_code", report_exit_code);
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
