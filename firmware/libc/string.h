/* Freestanding shim: the generated code's memory functions map to compiler builtins, which
 * inline small fixed-size copies instead of calling firmware/string.c for every 4-byte load. */
#ifndef FW_SHIM_STRING_H
#define FW_SHIM_STRING_H
#include <stddef.h>
void *memcpy(void *, const void *, size_t);
void *memset(void *, int, size_t);
void *memmove(void *, const void *, size_t);
int memcmp(const void *, const void *, size_t);
size_t strlen(const char *);
#define memcpy(d, s, n) __builtin_memcpy(d, s, n)
#define memset(d, v, n) __builtin_memset(d, v, n)
#define memmove(d, s, n) __builtin_memmove(d, s, n)
#define memcmp(a, b, n) __builtin_memcmp(a, b, n)
#endif
