/* Local APIC set-up and the timed halt. The vectors' handlers are in reset-vector/interrupts.asm. */
#include "apic.h"

#include "clock.h"
#include "cpu.h"
#include "debugcon.h"

#define IA32_APIC_BASE 0x1bu
#define APIC_BASE_ENABLE (1ull << 11)
#define APIC_BASE_ADDRESS_MASK 0xffffff000ull
#define LAPIC_ADDRESS 0xfee00000ull /* the MSI address the AssemblyScript side programs */

#define LAPIC_TPR 0x080
#define LAPIC_SVR 0x0f0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3e0
#define SVR_APIC_ENABLE 0x100u
#define LVT_MASKED 0x10000u
#define TIMER_DIVIDE_BY_1 0xbu
#define CPUID_1_EDX_APIC (1u << 9)

/* QEMU's APIC (TCG) and KVM's count the timer at 1 GHz before the divider; measured anyway. */
#define ASSUMED_TIMER_HZ 1000000000ull
#define CALIBRATION_US 200ull
#define MAX_WAIT_NS 1000000000ull

/* 8259 PIC data ports: masked, so the PIT's IRQ 0 never reaches LINT0 (ExtINT after reset in
 * QEMU) with the PIC's reset vector base 8, which is #DF. */
#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_DATA 0xa1

extern void interrupt_device_entry(void);
extern void interrupt_timer_entry(void);
extern void interrupt_spurious_entry(void);
extern void idt_set_gate(uint64_t vector, void (*handler)(void));
extern void cpu_wait_for_interrupt(void);
extern volatile uint64_t interrupt_timer_count;

static int state; /* 0: not tried, 1: ready, -1: no APIC */
static uint64_t timer_hz;

static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(uintptr_t)(LAPIC_ADDRESS + reg); }
static inline void lapic_write(uint32_t reg, uint32_t value) { *(volatile uint32_t *)(uintptr_t)(LAPIC_ADDRESS + reg) = value; }

/* Timer ticks per second against the TSC over ~200 us. Each APIC read is an exit under KVM (tens
 * of us nested): its count is taken somewhere inside it, so the TSC is read on both sides of each
 * read and the midpoints are compared. */
static uint64_t measure_timer_hz(void) {
  uint64_t hz = clock_hz();
  if (hz == 0) return ASSUMED_TIMER_HZ;
  lapic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
  uint64_t before_first = rdtsc();
  uint32_t first = lapic_read(LAPIC_TIMER_CURRENT);
  uint64_t after_first = rdtsc();
  uint64_t wait_ticks = hz / 1000000 * CALIBRATION_US;
  while (rdtsc() - after_first < wait_ticks) cpu_pause();
  uint64_t before_last = rdtsc();
  uint32_t last = lapic_read(LAPIC_TIMER_CURRENT);
  uint64_t after_last = rdtsc();
  lapic_write(LAPIC_TIMER_INITIAL, 0);
  uint64_t elapsed = (before_last + after_last) / 2 - (before_first + after_first) / 2;
  if (elapsed == 0 || first <= last) return ASSUMED_TIMER_HZ;
  /* In kHz first: no 128-bit division in a freestanding build, and no overflow for any rate. */
  uint64_t measured = (uint64_t)(first - last) * (hz / 1000) / elapsed * 1000;
  /* Outside 1 MHz .. 10 GHz the measurement was disturbed: keep the documented rate. */
  if (measured < 1000000ull || measured > 10000000000ull) return ASSUMED_TIMER_HZ;
  return measured;
}

uint32_t apic_init(void) {
  if (state != 0) return state > 0 ? APIC_DEVICE_VECTOR : 0;
  state = -1;
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  if (!(d & CPUID_1_EDX_APIC)) return 0;
  uint64_t base = rdmsr(IA32_APIC_BASE);
  if ((base & APIC_BASE_ADDRESS_MASK) != LAPIC_ADDRESS) return 0; /* moved: not where MSIs go */
  if (!(base & APIC_BASE_ENABLE)) wrmsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE);
  outb(PIC_MASTER_DATA, 0xff);
  outb(PIC_SLAVE_DATA, 0xff);
  idt_set_gate(APIC_DEVICE_VECTOR, interrupt_device_entry);
  idt_set_gate(APIC_TIMER_VECTOR, interrupt_timer_entry);
  idt_set_gate(APIC_SPURIOUS_VECTOR, interrupt_spurious_entry);
  lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
  lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
  lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_1);
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | APIC_TIMER_VECTOR);
  lapic_write(LAPIC_TPR, 0);
  lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | APIC_SPURIOUS_VECTOR);
  timer_hz = measure_timer_hz();
  lapic_write(LAPIC_LVT_TIMER, APIC_TIMER_VECTOR); /* one-shot, unmasked: counts only when started */
  state = 1;
  debugcon_line_start("info", "apic");
  debugcon_str("interrupts ready device_vector=");
  debugcon_dec(APIC_DEVICE_VECTOR);
  debugcon_str(" timer_hz=");
  debugcon_dec(timer_hz);
  debugcon_str("\n");
  return APIC_DEVICE_VECTOR;
}

void apic_wait(uint64_t timeout_ns) {
  if (state <= 0) return;
  if (timeout_ns > MAX_WAIT_NS) timeout_ns = MAX_WAIT_NS;
  uint64_t count = timeout_ns * (timer_hz / 1000) / 1000000; /* kHz: fits 64 bits below 1 s */
  if (count == 0) count = 1;
  if (count > 0xffffffffull) count = 0xffffffffull;
  uint64_t timer_before = interrupt_timer_count;
  lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)count);
  cpu_wait_for_interrupt();
  /* Woken by the device: stop the timer, or it would cut the next halt short. */
  if (interrupt_timer_count == timer_before) lapic_write(LAPIC_TIMER_INITIAL, 0);
}

uint64_t apic_timer_hz(void) { return timer_hz; }
