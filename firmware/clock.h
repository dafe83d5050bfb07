/* Monotonic clock: the TSC, its rate from kvmclock under KVM, else measured against the PIT at boot. */
#ifndef FW_CLOCK_H
#define FW_CLOCK_H

#include <stdint.h>

/* Measures the TSC frequency; returns it (also kept for clock_ns/clock_hz). reset_tsc is the TSC
 * read by the first instruction after reset: the clock's zero. */
uint64_t clock_calibrate(uint64_t reset_tsc);
/* Nanoseconds since reset, 0 before calibration. */
uint64_t clock_ns(void);
/* The same clock for a TSC value read earlier (e.g. before calibration). */
uint64_t clock_ns_at(uint64_t tsc);
/* The TSC count at the clock's zero (the reset vector, or the PVH entry), in nanoseconds: under
 * KVM the TSC starts at 0 when the vCPU does, so for a PVH boot this is what ran before the entry
 * (the loader: qboot or SeaBIOS). */
uint64_t clock_zero_since_tsc_start_ns(void);
uint64_t clock_hz(void);
/* True when calibration had to fall back to an assumed frequency. */
int clock_is_estimated(void);
/* Where the TSC rate came from: "kvmclock" (the hypervisor said) or "pit" (measured). */
const char *clock_source(void);

#endif
