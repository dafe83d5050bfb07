/* A freestanding wasm2c runtime: linear memory at a fixed physical address, static tables,
 * no malloc, no signals, no setjmp. A trap is reported on the debug console and ends the run. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "crash-report.h"
#include "debugcon.h"
#include "runtime.h"
#include "wasm-rt.h"

#ifndef LINEAR_MEMORY_BASE
#error "LINEAR_MEMORY_BASE must be set by the build (physical address of wasm address 0)"
#endif
#ifndef LINEAR_MEMORY_PAGES
#error "LINEAR_MEMORY_PAGES must be set by the build (the region reserved for linear memory)"
#endif

#define WASM_PAGE_SIZE 65536u
#define MAX_FUNC_TYPES 128
#define MAX_TYPE_ARITY 16
#define MAX_TABLE_ELEMENTS 4096

uint32_t wasm_rt_call_stack_depth;
uint32_t wasm_rt_saved_call_stack_depth;
static bool initialized;
static wasm_rt_memory_t *the_memory;

void wasm_rt_init(void) { initialized = true; }
bool wasm_rt_is_initialized(void) { return initialized; }
void wasm_rt_free(void) {}

const char *wasm_rt_strerror(wasm_rt_trap_t trap) {
  switch (trap) {
    case WASM_RT_TRAP_NONE: return "none";
    case WASM_RT_TRAP_OOB: return "out-of-bounds memory access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid conversion";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_CALL_INDIRECT: return "bad indirect call";
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught exception";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
  }
  return "unknown";
}

void wasm_rt_trap(wasm_rt_trap_t code) {
  if (crash_report_running()) crash_fault_during_report("wasm trap", wasm_rt_strerror(code));
  crash_report_begin("wasm-trap", FW_EXIT_WASM_TRAP);
  debugcon_str("\n");
  debugcon_line_start("error", "wasm");
  debugcon_str("trap kind=");
  debugcon_str(wasm_rt_strerror(code));
  debugcon_str(" depth=");
  debugcon_dec(wasm_rt_call_stack_depth);
  debugcon_str("\n");
  debugcon_line_start("error", "wasm");
  debugcon_str("last log line before the trap follows\n");
  debugcon_replay_context();
  crash_report_finish(); /* last packets, connections, device reset, exit code 2 */
}

/* Function signatures, for call_indirect type checks. */
typedef struct {
  uint32_t param_count, result_count;
  wasm_rt_type_t types[MAX_TYPE_ARITY];
} func_type_t;
static func_type_t func_types[MAX_FUNC_TYPES];
static uint32_t func_type_count;

uint32_t wasm_rt_register_func_type(uint32_t param_count, uint32_t result_count, ...) {
  func_type_t candidate = {param_count, result_count, {0}};
  uint32_t arity = param_count + result_count;
  if (arity > MAX_TYPE_ARITY) wasm_rt_trap(WASM_RT_TRAP_CALL_INDIRECT);
  va_list args;
  va_start(args, result_count);
  for (uint32_t i = 0; i < arity; i++) candidate.types[i] = va_arg(args, wasm_rt_type_t);
  va_end(args);
  for (uint32_t i = 0; i < func_type_count; i++) {
    func_type_t *known = &func_types[i];
    bool same = known->param_count == param_count && known->result_count == result_count;
    for (uint32_t j = 0; same && j < arity; j++) same = known->types[j] == candidate.types[j];
    if (same) return i + 1;
  }
  if (func_type_count == MAX_FUNC_TYPES) wasm_rt_trap(WASM_RT_TRAP_CALL_INDIRECT);
  func_types[func_type_count] = candidate;
  return ++func_type_count;
}

/* Exceptions (the wasm exception-handling proposal) are not used by asc output. */
uint32_t wasm_rt_register_tag(uint32_t size) {
  (void)size;
  return 0;
}
void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values) {
  (void)tag, (void)size, (void)values;
}
void wasm_rt_throw(void) { wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION); }

/* Linear memory is zero at power-on (QEMU's RAM starts zeroed), not after a warm reset (QEMU's
 * system_reset keeps RAM). This record survives a warm reset (the reset vector neither copies nor
 * zeroes .noinit): how much of linear memory was ever handed to the module. Memory above that is
 * still zero from power-on and is not written again: under nested KVM the first write to a page
 * is a nested page fault, and the emulated CPU zeroes one string iteration at a time. At power-on
 * the record reads all zero; a record that is neither all zero nor consistent means something
 * overwrote it, and then every byte handed out is zeroed as before. */
#define DIRTY_RECORD_MAGIC 0x5a4d4c57u /* "WLMZ" */
static volatile struct { /* volatile: C would assume it starts zeroed, as statics do */
  uint32_t magic;
  uint32_t check; /* ~(magic ^ dirty_bytes): a torn or scribbled record fails it */
  uint64_t dirty_bytes;
} dirty_record __attribute__((section(".noinit"), aligned(64)));

static uint64_t dirty_bytes; /* linear memory bytes that may hold data from before this reset */

static void dirty_record_load(void) {
  uint64_t all = (uint64_t)LINEAR_MEMORY_PAGES * WASM_PAGE_SIZE;
  uint32_t expected = ~(uint32_t)(DIRTY_RECORD_MAGIC ^ (uint32_t)dirty_record.dirty_bytes);
  if (dirty_record.magic == 0 && dirty_record.check == 0 && dirty_record.dirty_bytes == 0)
    dirty_bytes = 0; /* power-on: all of RAM is zero */
  else if (dirty_record.magic == DIRTY_RECORD_MAGIC && dirty_record.check == expected && dirty_record.dirty_bytes <= all)
    dirty_bytes = dirty_record.dirty_bytes;
  else
    dirty_bytes = all;
}

/* Called before `bytes` of linear memory are handed out: after a reset, all of it may be dirty. */
static void dirty_record_extend(uint64_t bytes) {
  if (bytes <= dirty_record.dirty_bytes && dirty_record.magic == DIRTY_RECORD_MAGIC) return;
  dirty_record.magic = 0; /* a reset in the middle leaves an inconsistent record: all dirty */
  dirty_record.dirty_bytes = bytes;
  dirty_record.check = ~(uint32_t)(DIRTY_RECORD_MAGIC ^ (uint32_t)bytes);
  dirty_record.magic = DIRTY_RECORD_MAGIC;
}

/* Makes [start, end) of linear memory read zero, writing only what may be dirty. */
static void zero_linear(uint8_t *base, uint64_t start, uint64_t end) {
  if (end > dirty_bytes) end = dirty_bytes;
  if (start < end) memset(base + start, 0, end - start); /* string.c: 8 bytes per iteration */
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *memory, uint32_t initial_pages, uint32_t max_pages) {
  if (max_pages > LINEAR_MEMORY_PAGES || initial_pages > max_pages) {
    debugcon_line_start("error", "wasm");
    debugcon_str("module wants more linear memory than the build reserved\n");
    fw_exit(FW_EXIT_WASM_TRAP);
  }
  memory->data = (uint8_t *)(uintptr_t)LINEAR_MEMORY_BASE;
  memory->pages = initial_pages;
  memory->max_pages = max_pages;
  memory->size = initial_pages * WASM_PAGE_SIZE;
  dirty_record_load();
  zero_linear(memory->data, 0, memory->size);
  dirty_record_extend(memory->size);
  the_memory = memory;
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *memory, uint32_t delta) {
  uint32_t old_pages = memory->pages;
  uint64_t new_pages = (uint64_t)old_pages + delta;
  if (new_pages > memory->max_pages) return UINT32_MAX;
  zero_linear(memory->data, memory->size, new_pages * WASM_PAGE_SIZE);
  dirty_record_extend(new_pages * WASM_PAGE_SIZE);
  memory->pages = (uint32_t)new_pages;
  memory->size = (uint32_t)(new_pages * WASM_PAGE_SIZE);
  return old_pages;
}

void wasm_rt_free_memory(wasm_rt_memory_t *memory) { (void)memory; }

/* Tables live in one static pool; asc emits one small funcref table. */
static wasm_rt_funcref_t funcref_pool[MAX_TABLE_ELEMENTS];
static uint32_t funcref_pool_used;

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *table, uint32_t elements, uint32_t max_elements) {
  uint32_t reserve = max_elements < MAX_TABLE_ELEMENTS ? max_elements : elements;
  if (funcref_pool_used + reserve > MAX_TABLE_ELEMENTS) wasm_rt_trap(WASM_RT_TRAP_OOB);
  table->data = &funcref_pool[funcref_pool_used];
  table->size = elements;
  table->max_size = reserve;
  funcref_pool_used += reserve;
}
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *table) { (void)table; }
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *table, uint32_t delta, wasm_rt_funcref_t init) {
  uint32_t old_size = table->size;
  if ((uint64_t)old_size + delta > table->max_size) return UINT32_MAX;
  for (uint32_t i = old_size; i < old_size + delta; i++) table->data[i] = init;
  table->size = old_size + delta;
  return old_size;
}

uint8_t *fw_memory(void) { return the_memory ? the_memory->data : (uint8_t *)(uintptr_t)LINEAR_MEMORY_BASE; }
uint32_t fw_memory_size(void) { return the_memory ? the_memory->size : 0; }
