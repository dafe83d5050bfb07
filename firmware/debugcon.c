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

void debugcon_write(const void *data, uint64_t length) {
  remember((const uint8_t *)data, length);
  outsb(DEBUGCON_PORT, data, length);
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
