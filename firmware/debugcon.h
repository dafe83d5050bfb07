/* The debug console (QEMU isa-debugcon at port 0x402): the firmware's only output. */
#ifndef FW_DEBUGCON_H
#define FW_DEBUGCON_H

#include <stdint.h>

#define DEBUGCON_PORT 0x402

/* Complete info and debug lines (C's and the logger's) wait for idle time (debugcon_drain); anything
 * else goes out now, a line at a time, after the lines that wait. */
void debugcon_write(const void *data, uint64_t length);
/* Writes up to max_bytes of the deferred lines; returns how many still wait. */
uint32_t debugcon_drain(uint32_t max_bytes);
/* Everything out now: deferred lines and a partial line (before exit or halt). */
void debugcon_flush(void);
void debugcon_str(const char *text);
void debugcon_dec(uint64_t value);
void debugcon_hex(uint64_t value, int width);
/* "[s.micros] <level> <subsystem>: " with the same clock and shape as the AssemblyScript logger. */
void debugcon_line_start(const char *level, const char *subsystem);
/* The same for a moment logged after the fact (boot milestones from before the clock was calibrated). */
void debugcon_line_start_at(uint64_t ns, const char *level, const char *subsystem);
/* Crash reports: freeze the last complete line logged before the report, then re-emit it. */
void debugcon_freeze_context(void);
void debugcon_replay_context(void);

#endif
