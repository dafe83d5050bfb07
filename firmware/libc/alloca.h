/* Freestanding shim. */
#ifndef FW_SHIM_ALLOCA_H
#define FW_SHIM_ALLOCA_H
#define alloca(size) __builtin_alloca(size)
#endif
