/* Freestanding shim: nothing of stdlib is available (no malloc in this firmware). */
#ifndef FW_SHIM_STDLIB_H
#define FW_SHIM_STDLIB_H
#include <stddef.h>
__attribute__((noreturn)) void abort(void);
#endif
