/* The few libc functions the generated code and the compiler rely on. Written with string
 * instructions so the optimiser cannot turn them back into calls to themselves. */
#include <stddef.h>
#include <stdint.h>

/* Eight bytes per iteration, then the tail: as fast as `rep movsb` on hardware with fast string
 * operations, and eight times fewer iterations where string instructions are emulated one
 * iteration at a time (TCG, which runs the nested guest on this project's test machines). */
void *memcpy(void *destination, const void *source, size_t length) {
  void *result = destination;
  size_t words = length >> 3, tail = length & 7;
  __asm__ volatile("rep movsq" : "+D"(destination), "+S"(source), "+c"(words)::"memory");
  __asm__ volatile("rep movsb" : "+D"(destination), "+S"(source), "+c"(tail)::"memory");
  return result;
}

void *memset(void *destination, int value, size_t length) {
  void *result = destination;
  uint64_t pattern = 0x0101010101010101ull * (uint8_t)value;
  size_t words = length >> 3, tail = length & 7;
  __asm__ volatile("rep stosq" : "+D"(destination), "+c"(words) : "a"(pattern) : "memory");
  __asm__ volatile("rep stosb" : "+D"(destination), "+c"(tail) : "a"(pattern) : "memory");
  return result;
}

void *memmove(void *destination, const void *source, size_t length) {
  uint8_t *to = destination;
  const uint8_t *from = source;
  if (to <= from || to >= from + length) return memcpy(destination, source, length);
  /* Overlapping with the destination above the source: copy backwards. */
  to += length - 1;
  from += length - 1;
  __asm__ volatile("std; rep movsb; cld" : "+D"(to), "+S"(from), "+c"(length)::"memory");
  return destination;
}

int memcmp(const void *a, const void *b, size_t length) {
  const uint8_t *x = a, *y = b;
  for (size_t i = 0; i < length; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

size_t strlen(const char *text) {
  size_t length = 0;
  while (text[length]) length++;
  return length;
}
