/* The wasm module's `env` imports (assembly/platform/imports.ts): CPU instructions and nothing
 * else. Addresses from wasm are physical; the identity mapping makes them directly usable. */
#include <stdint.h>

#include "apic.h"
#include "clock.h"
#include "cpu.h"
#include "debugcon.h"
#include "pvh-boot.h"
#include "runtime.h"

struct Z_env_instance_t;
typedef struct Z_env_instance_t env_t;

u32 Z_envZ_port_in8(env_t *env, u32 port) { (void)env; return inb((uint16_t)port); }
u32 Z_envZ_port_in16(env_t *env, u32 port) { (void)env; return inw((uint16_t)port); }
u32 Z_envZ_port_in32(env_t *env, u32 port) { (void)env; return inl((uint16_t)port); }
void Z_envZ_port_out8(env_t *env, u32 port, u32 value) { (void)env; outb((uint16_t)port, (uint8_t)value); }
void Z_envZ_port_out16(env_t *env, u32 port, u32 value) { (void)env; outw((uint16_t)port, (uint16_t)value); }
void Z_envZ_port_out32(env_t *env, u32 port, u32 value) { (void)env; outl((uint16_t)port, value); }

/* Device registers: volatile accesses of exactly the width asked for. */
u32 Z_envZ_mmio_read8(env_t *env, u64 addr) { (void)env; return *(volatile uint8_t *)(uintptr_t)addr; }
u32 Z_envZ_mmio_read16(env_t *env, u64 addr) { (void)env; return *(volatile uint16_t *)(uintptr_t)addr; }
u32 Z_envZ_mmio_read32(env_t *env, u64 addr) { (void)env; return *(volatile uint32_t *)(uintptr_t)addr; }
u64 Z_envZ_mmio_read64(env_t *env, u64 addr) { (void)env; return *(volatile uint64_t *)(uintptr_t)addr; }
void Z_envZ_mmio_write8(env_t *env, u64 addr, u32 value) { (void)env; *(volatile uint8_t *)(uintptr_t)addr = (uint8_t)value; }
void Z_envZ_mmio_write16(env_t *env, u64 addr, u32 value) { (void)env; *(volatile uint16_t *)(uintptr_t)addr = (uint16_t)value; }
void Z_envZ_mmio_write32(env_t *env, u64 addr, u32 value) { (void)env; *(volatile uint32_t *)(uintptr_t)addr = value; }
void Z_envZ_mmio_write64(env_t *env, u64 addr, u64 value) { (void)env; *(volatile uint64_t *)(uintptr_t)addr = value; }

u64 Z_envZ_memory_base(env_t *env) { (void)env; return (u64)(uintptr_t)fw_memory(); }

void Z_envZ_barrier(env_t *env) { (void)env; memory_fence(); }

u64 Z_envZ_clock_ns(env_t *env) { (void)env; return clock_ns(); }
u64 Z_envZ_clock_hz(env_t *env) { (void)env; return clock_hz(); }

void Z_envZ_log_write(env_t *env, u32 ptr, u32 length) {
  (void)env;
  uint32_t size = fw_memory_size();
  if (ptr > size || length > size - ptr) wasm_rt_trap(WASM_RT_TRAP_OOB);
  debugcon_write(fw_memory() + ptr, length);
}

/* The firmware had nothing to do in its last poll: a few deferred log bytes go out (each byte is
 * an exit under KVM, so a small piece keeps a packet arriving meanwhile from waiting long). */
#define IDLE_DRAIN_BYTES 8
void Z_envZ_idle(env_t *env) {
  (void)env;
  debugcon_drain(IDLE_DRAIN_BYTES);
}

u32 Z_envZ_interrupt_vector(env_t *env) {
  (void)env;
  return apic_init();
}

/* Deferred log bytes still waiting: a piece goes out and the halt is skipped, so the log drains
 * by the main loop's own polling and never waits on a timer interrupt (a halt that nothing ends
 * would hold the log back until the next packet). The CPU is given back once the log is empty. */
#define WAIT_DRAIN_BYTES 64
void Z_envZ_wait_for_interrupt(env_t *env, u64 timeout_ns) {
  (void)env;
  if (debugcon_drain(WAIT_DRAIN_BYTES) != 0) return;
  apic_wait(timeout_ns);
}

/* The boot loader's command line (PVH), copied into wasm memory; its full length is returned. */
u32 Z_envZ_command_line(env_t *env, u32 ptr, u32 capacity) {
  (void)env;
  const char *text;
  uint32_t length = pvh_command_line(&text);
  uint32_t size = fw_memory_size();
  if (ptr > size || capacity > size - ptr) wasm_rt_trap(WASM_RT_TRAP_OOB);
  for (uint32_t i = 0; i < length && i < capacity; i++) fw_memory()[ptr + i] = (uint8_t)text[i];
  return length;
}

void Z_envZ_exit(env_t *env, u32 code) {
  (void)env;
  fw_exit(code);
}

/* AssemblyScript's abort(message, file, line, column): strings are UTF-16LE with their byte
 * length in the 4 bytes before them. Printed ASCII-only and bounded, then the run ends as a trap. */
static void print_as_string(u32 ptr) {
  uint32_t size = fw_memory_size();
  if (ptr == 0 || ptr < 4 || ptr > size) {
    debugcon_str("?");
    return;
  }
  uint32_t bytes = *(uint32_t *)(fw_memory() + ptr - 4);
  if (bytes > size - ptr) bytes = size - ptr;
  if (bytes > 400) bytes = 400;
  for (uint32_t i = 0; i + 1 < bytes; i += 2) {
    uint16_t c = *(uint16_t *)(fw_memory() + ptr + i);
    char ch = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    debugcon_write(&ch, 1);
  }
}

void Z_envZ_abort(env_t *env, u32 message, u32 file, u32 line, u32 column) {
  (void)env;
  debugcon_freeze_context();
  debugcon_line_start("error", "wasm");
  debugcon_str("abort: ");
  print_as_string(message);
  debugcon_str(" at ");
  print_as_string(file);
  debugcon_str(":");
  debugcon_dec(line);
  debugcon_str(":");
  debugcon_dec(column);
  debugcon_str("\n");
  wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
}
