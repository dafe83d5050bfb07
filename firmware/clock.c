#include "clock.h"

#include "cpu.h"

#define PIT_HZ 1193182u
#define PIT_CHANNEL2 0x42
#define PIT_COMMAND 0x43
#define PIT_GATE_PORT 0x61 /* bit 0: channel 2 gate, bit 1: speaker, bit 5: channel 2 output */
#define CALIBRATION_MS 10u
#define FALLBACK_HZ 1000000000ull

static uint64_t tsc_hz;
static uint64_t tsc_at_reset;
static uint64_t ns_per_tick_q32; /* nanoseconds per TSC tick, 32.32 fixed point */
static int estimated;

uint64_t clock_calibrate(uint64_t reset_tsc) {
  tsc_at_reset = reset_tsc;
  const uint32_t count = PIT_HZ / (1000 / CALIBRATION_MS);
  /* Channel 2 counts only while its gate is high; the speaker stays off. */
  outb(PIT_GATE_PORT, (uint8_t)((inb(PIT_GATE_PORT) & ~0x02) | 0x01));
  /* Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count): OUT2 rises after `count` ticks. */
  outb(PIT_COMMAND, 0xb0);
  outb(PIT_CHANNEL2, (uint8_t)(count & 0xff));
  outb(PIT_CHANNEL2, (uint8_t)(count >> 8));
  uint64_t start = rdtsc();
  uint64_t polls = 0;
  while (!(inb(PIT_GATE_PORT) & 0x20)) {
    if (++polls > 50000000ull) break; /* no PIT: do not hang the boot */
  }
  uint64_t ticks = rdtsc() - start;
  if (!(inb(PIT_GATE_PORT) & 0x20) || ticks == 0) {
    tsc_hz = FALLBACK_HZ;
    estimated = 1;
  } else {
    tsc_hz = ticks * (1000 / CALIBRATION_MS);
  }
  ns_per_tick_q32 = (1000000000ull << 32) / tsc_hz;
  return tsc_hz;
}

uint64_t clock_ns_at(uint64_t tsc) {
  return (uint64_t)(((unsigned __int128)(tsc - tsc_at_reset) * ns_per_tick_q32) >> 32);
}

uint64_t clock_ns(void) { return clock_ns_at(rdtsc()); }

uint64_t clock_hz(void) { return tsc_hz; }

int clock_is_estimated(void) { return estimated; }
