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

/* Machines without port 0x61 (QEMU microvm has a PIT but no speaker port, which reads 0xff):
 * channel 0 counts down from 0xffff in mode 2 and is read through latch commands; 10 ms are
 * counted across its wrap. Its IRQ 0 reaches no CPU (PIC and I/O APIC entries masked).
 * Returns the TSC ticks of 10 ms, 0 when the counter does not move. */
static uint16_t pit_channel0_read(void) {
  outb(PIT_COMMAND, 0x00); /* latch channel 0 */
  uint8_t low = inb(PIT_CHANNEL0);
  return (uint16_t)(low | (inb(PIT_CHANNEL0) << 8));
}

static uint64_t pit_channel0_ticks(uint32_t count) {
  outb(PIT_COMMAND, 0x34); /* channel 0, lobyte/hibyte, mode 2 (rate generator), binary */
  outb(PIT_CHANNEL0, 0xff);
  outb(PIT_CHANNEL0, 0xff);
  uint16_t previous = pit_channel0_read();
  uint64_t start = rdtsc();
  uint32_t elapsed = 0;
  uint64_t polls = 0;
  while (elapsed < count) {
    uint16_t now = pit_channel0_read();
    elapsed += (uint16_t)(previous - now); /* counts down; the wrap comes out right modulo 2^16 */
    previous = now;
    if (++polls > 50000000ull) return 0;
  }
  return rdtsc() - start;
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
  const uint32_t count = PIT_HZ / (1000 / CALIBRATION_MS);
  if (inb(PIT_GATE_PORT) == 0xff) {
    uint64_t ticks = pit_channel0_ticks(count);
    estimated = ticks == 0;
    tsc_hz = ticks == 0 ? FALLBACK_HZ : ticks * (1000 / CALIBRATION_MS);
    ns_per_tick_q32 = (1000000000ull << 32) / tsc_hz;
    return tsc_hz;
  }
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

uint64_t clock_zero_since_tsc_start_ns(void) {
  return (uint64_t)(((unsigned __int128)tsc_at_reset * ns_per_tick_q32) >> 32);
}

uint64_t clock_hz(void) { return tsc_hz; }

int clock_is_estimated(void) { return estimated; }

const char *clock_source(void) { return source; }
