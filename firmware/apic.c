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
#define MAX_CALIBRATION_MS 5ull
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
extern volatile uint64_t interrupt_before_halt_count;

static int state; /* 0: not tried, 1: ready, -1: no APIC */
static uint64_t timer_hz;

static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(uintptr_t)(LAPIC_ADDRESS + reg); }
static inline void lapic_write(uint32_t reg, uint32_t value) { *(volatile uint32_t *)(uintptr_t)(LAPIC_ADDRESS + reg) = value; }

/* One reading of the timer's current count with the TSC read on both sides. Each APIC read is
 * an exit under KVM (tens of us nested, ms on a loaded host): its count is taken somewhere inside
 * the bracket, so the tightest of a few is kept and its midpoint stands for the moment. */
struct timer_sample {
  uint64_t tsc;
  uint64_t bracket;
  uint32_t count;
};

static struct timer_sample timer_sample(void) {
  struct timer_sample best = {0, ~0ull, 0};
  for (int i = 0; i < 3; i++) {
    uint64_t before = rdtsc();
    uint32_t count = lapic_read(LAPIC_TIMER_CURRENT);
    uint64_t after = rdtsc();
    if (after - before < best.bracket) best = (struct timer_sample){before + (after - before) / 2, after - before, count};
  }
  return best;
}

/* Timer ticks per second against the TSC. The window is at least CALIBRATION_US and 20 times the
 * first bracket, so the brackets' uncertainty stays under ~5% (one boot under load, with a single
 * read at each end of 200 us, measured 646 MHz for QEMU's 1 GHz). */
static uint64_t measure_timer_hz(void) {
  uint64_t hz = clock_hz();
  if (hz == 0) return ASSUMED_TIMER_HZ;
  lapic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
  struct timer_sample first = timer_sample();
  uint64_t wait_ticks = hz / 1000000 * CALIBRATION_US;
  if (wait_ticks < 20 * first.bracket) wait_ticks = 20 * first.bracket;
  if (wait_ticks > hz / 1000 * MAX_CALIBRATION_MS) wait_ticks = hz / 1000 * MAX_CALIBRATION_MS;
  while (rdtsc() - first.tsc < wait_ticks) cpu_pause();
  struct timer_sample last = timer_sample();
  lapic_write(LAPIC_TIMER_INITIAL, 0);
  uint64_t elapsed = last.tsc - first.tsc;
  if (elapsed == 0 || first.count <= last.count) return ASSUMED_TIMER_HZ;
  /* In kHz first: no 128-bit division in a freestanding build, and no overflow for any rate. */
  uint64_t measured = (uint64_t)(first.count - last.count) * (hz / 1000) / elapsed * 1000;
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
  state = 1; /* the timer stays masked until measure_timer_once */
  debugcon_line_start("info", "apic");
  debugcon_str("interrupts ready device_vector=");
  debugcon_dec(APIC_DEVICE_VECTOR);
  debugcon_str("\n");
  return APIC_DEVICE_VECTOR;
}

/* The timer's rate is measured before the first timed halt, not at apic_init: nothing needs it
 * sooner, and its window (1-5 ms of waiting and 8 APIC reads, each an exit) stays out of the
 * time from reset to ready. */
static void measure_timer_once(void) {
  if (timer_hz != 0) return;
  timer_hz = measure_timer_hz();
  lapic_write(LAPIC_LVT_TIMER, APIC_TIMER_VECTOR); /* one-shot, unmasked: counts only when started */
  debugcon_line_start("info", "apic");
  debugcon_str("timer measured timer_hz=");
  debugcon_dec(timer_hz);
  debugcon_str("\n");
}

/* Said once: the hypervisor delivered an interrupt in STI's shadow, which the handlers turned into
 * an ordinary wake-up (reset-vector/interrupts.asm). A memory read per halt, no exit. */
static void report_interrupt_before_halt(void) {
  static int reported;
  if (reported || interrupt_before_halt_count == 0) return;
  reported = 1;
  debugcon_line_start("warn", "apic");
  debugcon_str("an interrupt came before the halt instruction ran (STI shadow not honoured by the hypervisor): woken past it\n");
}

void apic_wait(uint64_t timeout_ns) {
  if (state <= 0) return;
  measure_timer_once();
  if (timeout_ns > MAX_WAIT_NS) timeout_ns = MAX_WAIT_NS;
  uint64_t count = timeout_ns * (timer_hz / 1000) / 1000000; /* kHz: fits 64 bits below 1 s */
  if (count == 0) count = 1;
  if (count > 0xffffffffull) count = 0xffffffffull;
  uint64_t timer_before = interrupt_timer_count;
  lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)count);
  cpu_wait_for_interrupt();
  /* Woken by the device: stop the timer, or it would cut the next halt short. */
  if (interrupt_timer_count == timer_before) lapic_write(LAPIC_TIMER_INITIAL, 0);
  report_interrupt_before_halt();
}

