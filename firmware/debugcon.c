#include "debugcon.h"

#include "clock.h"
#include "cpu.h"

/* The last line written, kept so a trap or exception report can say what was happening. */
#define LAST_LINE_CAPACITY 256
static char last_line[LAST_LINE_CAPACITY];
static uint32_t last_line_length;
static char current_line[LAST_LINE_CAPACITY];
static uint32_t current_line_length;

static void remember(const uint8_t *data, uint64_t length) {
  for (uint64_t i = 0; i < length; i++) {
    if (current_line_length < LAST_LINE_CAPACITY) current_line[current_line_length++] = (char)data[i];
    if (data[i] == '\n') {
      for (uint32_t j = 0; j < current_line_length; j++) last_line[j] = current_line[j];
      last_line_length = current_line_length;
      current_line_length = 0;
    }
  }
}

/* Under KVM every OUT is a VM exit, and QEMU's debugcon takes one byte per exit: output is
 * collected into whole lines here, and the lines that can wait are written while idle (below). */
#define LINE_BUFFER_CAPACITY 512
static char line_buffer[LINE_BUFFER_CAPACITY];
static uint32_t line_buffer_length;

/* Complete info and debug lines (the logger's and C's) wait here and go out while the firmware is
 * idle (debugcon_drain), so a log line costs no latency on the packet path or during boot. Any
 * direct write (error lines, crash reports, exit) first flushes them, in order. Warn lines wait too:
 * they come from the packet path (a refused packet), and flushing the backlog there stalled the
 * answer behind it, one exit per byte (an RST held 0.6 s behind 8 KB of connection lines). */
#define DEFERRED_CAPACITY 16384
static char deferred[DEFERRED_CAPACITY];
static uint32_t deferred_head, deferred_count;

static void write_deferred(uint32_t count) {
  while (count > 0) {
    uint32_t piece = DEFERRED_CAPACITY - deferred_head;
    if (piece > count) piece = count;
    out_bytes(DEBUGCON_PORT, (const uint8_t *)deferred + deferred_head, piece);
    deferred_head = (deferred_head + piece) % DEFERRED_CAPACITY;
    deferred_count -= piece;
    count -= piece;
  }
  if (deferred_count == 0) deferred_head = 0;
}

static int is_urgent_line(const uint8_t *line, uint64_t length);
static void defer(const uint8_t *bytes, uint64_t length);

/* A complete info or debug line waits with the logger's lines; anything else goes out now, after
 * them. So C milestones during boot cost no exits either, and the order of lines is kept. */
static void flush_line_buffer(void) {
  uint32_t length = line_buffer_length;
  if (length == 0) return;
  line_buffer_length = 0;
  const uint8_t *line = (const uint8_t *)line_buffer;
  if (line[length - 1] == '\n' && !is_urgent_line(line, length)) {
    defer(line, length);
    return;
  }
  write_deferred(deferred_count);
  out_bytes(DEBUGCON_PORT, (const uint8_t *)line_buffer, length);
}

void debugcon_flush(void) {
  write_deferred(deferred_count);
  flush_line_buffer();
}

void debugcon_write(const void *data, uint64_t length) {
  const uint8_t *bytes = (const uint8_t *)data;
  remember(bytes, length);
  for (uint64_t i = 0; i < length; i++) {
    line_buffer[line_buffer_length++] = (char)bytes[i];
    if (bytes[i] == '\n' || line_buffer_length == LINE_BUFFER_CAPACITY) flush_line_buffer();
  }
}

/* "[s.micros] error ...": written at once, never deferred. */
static int is_urgent_line(const uint8_t *line, uint64_t length) {
  for (uint64_t i = 0; i + 2 < length && i < 24; i++) {
    if (line[i] == ']' && line[i + 1] == ' ') return line[i + 2] == 'e';
  }
  return 1; /* not a logger line: keep it in order with the C writers */
}

/* Full: only the oldest bytes that make room go out now, so a burst of lines costs what writing
 * them directly would, never a stall of the whole buffer. */
static void defer(const uint8_t *bytes, uint64_t length) {
  if (length > DEFERRED_CAPACITY - deferred_count) write_deferred(length - (DEFERRED_CAPACITY - deferred_count));
  for (uint64_t i = 0; i < length; i++) {
    deferred[(deferred_head + deferred_count) % DEFERRED_CAPACITY] = (char)bytes[i];
    deferred_count++;
  }
}

uint32_t debugcon_drain(uint32_t max_bytes) {
  uint32_t count = deferred_count < max_bytes ? deferred_count : max_bytes;
  write_deferred(count);
  return deferred_count;
}

void debugcon_str(const char *text) {
  uint64_t length = 0;
  while (text[length]) length++;
  debugcon_write(text, length);
}

void debugcon_dec(uint64_t value) {
  char digits[20];
  int count = 0;
  do {
    digits[sizeof digits - 1 - count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value && count < 20);
  debugcon_write(digits + sizeof digits - count, (uint64_t)count);
}

void debugcon_hex(uint64_t value, int width) {
  char digits[16];
  int count = 0;
  do {
    uint32_t nibble = value & 0xf;
    digits[sizeof digits - 1 - count++] = (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
    value >>= 4;
  } while ((value || count < width) && count < 16);
  debugcon_write(digits + sizeof digits - count, (uint64_t)count);
}

void debugcon_line_start(const char *level, const char *subsystem) {
  debugcon_line_start_at(clock_ns(), level, subsystem);
}

void debugcon_line_start_at(uint64_t ns, const char *level, const char *subsystem) {
  uint64_t micros = ns / 1000;
  char fraction[6];
  uint64_t rest = micros % 1000000;
  for (int i = 5; i >= 0; i--) {
    fraction[i] = (char)('0' + rest % 10);
    rest /= 10;
  }
  debugcon_str("[");
  debugcon_dec(micros / 1000000);
  debugcon_str(".");
  debugcon_write(fraction, sizeof fraction);
  debugcon_str("] ");
  debugcon_str(level);
  debugcon_str(" ");
  debugcon_str(subsystem);
  debugcon_str(": ");
}

/* A crash report writes lines of its own; the context it shows is the line before it began. */
static char context_line[LAST_LINE_CAPACITY];
static uint32_t context_length;
static int context_frozen;

void debugcon_freeze_context(void) {
  if (context_frozen) return;
  context_frozen = 1;
  for (uint32_t i = 0; i < last_line_length; i++) context_line[i] = last_line[i];
  context_length = last_line_length;
}

void debugcon_replay_context(void) {
  if (context_length == 0) {
    debugcon_str("(nothing logged yet)\n");
    return;
  }
  debugcon_write(context_line, context_length);
}
