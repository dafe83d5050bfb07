#include "clock.h"

#include "cpu.h"

#define PIT_HZ 1193182u
#define PIT_CHANNEL0 0x40
#define PIT_CHANNEL2 0x42
#define PIT_COMMAND 0x43
#define PIT_GATE_PORT 0x61 /* bit 0: channel 2 gate, bit 1: speaker, bit 5: channel 2 output */
#define CALIBRATION_MS 10u
#define FALLBACK_HZ 1000000000ull

static uint64_t tsc_hz;
static uint64_t tsc_at_reset;
static uint64_t ns_per_tick_q32; /* nanoseconds per TSC tick, 32.32 fixed point */
static int estimated;
static const char *source = "pit";

/* KVM's pvclock (kvmclock) states the TSC rate exactly: tsc_to_system_mul and tsc_shift convert
 * TSC ticks to nanoseconds. Asking costs two MSR writes instead of 10 ms of PIT polling, where each
 * poll is a VM exit. Only when the hypervisor says it is KVM and offers the clock. */
#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u

struct pvclock_time_info {
  volatile uint32_t version;
  uint32_t pad0;
  uint64_t tsc_timestamp;
  uint64_t system_time;
  volatile uint32_t tsc_to_system_mul;
  volatile int8_t tsc_shift;
  uint8_t flags;
  uint8_t pad[2];
};
static struct pvclock_time_info pvclock __attribute__((aligned(64)));

static uint64_t kvmclock_tsc_hz(void) {
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  if (!(c & (1u << 31))) return 0; /* no hypervisor */
  cpuid(KVM_CPUID_SIGNATURE, &a, &b, &c, &d);
  if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d || a < KVM_CPUID_FEATURES) return 0; /* "KVMKVMKVM\0\0\0" */
  cpuid(KVM_CPUID_FEATURES, &a, &b, &c, &d);
  if (!(a & KVM_FEATURE_CLOCKSOURCE2)) return 0;
  pvclock.version = 0;
  wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&pvclock | 1); /* identity-mapped: physical */
  uint32_t mul = 0, version = 0;
  int8_t shift = 0;
  for (int attempt = 0; attempt < 1000; attempt++) {
    version = pvclock.version;
    memory_fence();
    mul = pvclock.tsc_to_system_mul;
    shift = pvclock.tsc_shift;
    memory_fence();
    if (version != 0 && (version & 1) == 0 && version == pvclock.version) break;
    mul = 0;
  }
  wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0); /* the hypervisor stops writing our memory */
  if (mul == 0) return 0;
  uint64_t hz = (1000000000ull << 32) / mul;
  return shift < 0 ? hz << -shift : hz >> shift;
}

/* The PIT counted against the TSC. Channel 2 where the machine has its gate (port 0x61: q35, pc);
 * channel 0 in mode 2 where it has not (QEMU microvm: 0x61 reads 0xff), its IRQ 0 reaching no CPU
 * (PIC and I/O APIC entries masked). A count is latched and read with the TSC on both sides: a vCPU
 * descheduled between the reads (a loaded host) widens the bracket, so the tightest of a few is
 * kept. Waiting for channel 2's terminal count and reading the TSC when a poll saw it once
 * overestimated the rate by up to 1.8x under load (the poll came late): every timer ran slow. */
struct pit_sample {
  uint64_t tsc;     /* midpoint of the bracket */
  uint64_t bracket; /* TSC ticks between the reads around the latch */
  uint16_t count;
};

static uint16_t pit_data_port;
static uint8_t pit_latch_command;

static uint16_t pit_read_count(void) {
  outb(PIT_COMMAND, pit_latch_command);
  uint8_t low = inb(pit_data_port);
  return (uint16_t)(low | (inb(pit_data_port) << 8));
}

static struct pit_sample pit_sample(void) {
  struct pit_sample best = {0, ~0ull, 0};
  for (int i = 0; i < 5; i++) {
    uint64_t before = rdtsc();
    uint16_t count = pit_read_count();
    uint64_t after = rdtsc();
    if (after - before < best.bracket) best = (struct pit_sample){before + (after - before) / 2, after - before, count};
  }
  return best;
}

/* TSC ticks per second over ~CALIBRATION_MS of PIT time; 0 when there is no PIT, 1 when channel 2
 * went past its terminal count (a pause of over 45 ms may have hidden a whole turn: try again).
 * The count goes down from 0xffff and wraps; the elapsed ticks add up poll by poll. */
static uint64_t pit_tsc_hz_once(int gate) {
  const uint32_t window = PIT_HZ / (1000 / CALIBRATION_MS);
  if (gate) {
    /* Channel 2 counts only while its gate is high; the speaker stays off. */
    outb(PIT_GATE_PORT, (uint8_t)((inb(PIT_GATE_PORT) & ~0x02) | 0x01));
    outb(PIT_COMMAND, 0xb0); /* channel 2, lobyte/hibyte, mode 0: OUT2 rises after 55 ms, at zero */
    pit_data_port = PIT_CHANNEL2, pit_latch_command = 0x80;
  } else {
    outb(PIT_COMMAND, 0x34); /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
    pit_data_port = PIT_CHANNEL0, pit_latch_command = 0x00;
  }
  outb(pit_data_port, 0xff);
  outb(pit_data_port, 0xff);
  struct pit_sample first = pit_sample();
  uint16_t previous = first.count;
  uint32_t elapsed = 0;
  for (uint64_t polls = 0; elapsed < window; polls++) {
    if (polls > 5000000ull) return 0; /* the count never moves: no PIT, do not hang the boot */
    uint16_t now = pit_read_count();
    elapsed += (uint16_t)(previous - now);
    previous = now;
  }
  struct pit_sample last = pit_sample();
  if (gate && (inb(PIT_GATE_PORT) & 0x20)) return 1;
  elapsed += (uint16_t)(previous - last.count);
  if (elapsed == 0 || last.tsc <= first.tsc) return 0;
  return (last.tsc - first.tsc) * PIT_HZ / elapsed;
}

static uint64_t pit_tsc_hz(void) {
  int gate = inb(PIT_GATE_PORT) != 0xff;
  for (int attempt = 0; attempt < 3; attempt++) {
    uint64_t hz = pit_tsc_hz_once(gate);
    if (hz != 1) return hz;
  }
  return 0;
}

uint64_t clock_calibrate(uint64_t reset_tsc) {
  tsc_at_reset = reset_tsc;
  uint64_t kvm_hz = kvmclock_tsc_hz();
  if (kvm_hz != 0) {
    tsc_hz = kvm_hz;
    source = "kvmclock";
    ns_per_tick_q32 = (1000000000ull << 32) / tsc_hz;
    return tsc_hz;
  }
  uint64_t hz = pit_tsc_hz();
  if (hz == 0) {
    tsc_hz = FALLBACK_HZ;
    estimated = 1;
  } else {
    tsc_hz = hz;
  }
  ns_per_tick_q32 = (1000000000ull << 32) / tsc_hz;
  return tsc_hz;
}

uint64_t clock_ns_at(uint64_t tsc) {
  return (uint64_t)(((unsigned __int128)(tsc - tsc_at_reset) * ns_per_tick_q32) >> 32);
}

uint64_t clock_ns(void) { return clock_ns_at(rdtsc()); }

uint64_t clock_zero_since_tsc_start_ns(void) {
  return (uint64_t)(((unsigned __int128)tsc_at_reset * ns_per_tick_q32) >> 32);
}

uint64_t clock_hz(void) { return tsc_hz; }

int clock_is_estimated(void) { return estimated; }

const char *clock_source(void) { return source; }
