/* Freestanding shim. The firmware is integer-only (-mgeneral-regs-only, and the Makefile rejects a
 * wasm with f32/f64 instructions); the generated code still defines unused float helpers, which
 * refer to these names. Mapping them to builtins keeps the declarations honest; none is emitted. */
#ifndef FW_SHIM_MATH_H
#define FW_SHIM_MATH_H
#define isnan(x) __builtin_isnan(x)
#define ceil(x) __builtin_ceil(x)
#define ceilf(x) __builtin_ceilf(x)
#define floor(x) __builtin_floor(x)
#define floorf(x) __builtin_floorf(x)
#define fabs(x) __builtin_fabs(x)
#define fabsf(x) __builtin_fabsf(x)
#define nearbyint(x) __builtin_nearbyint(x)
#define nearbyintf(x) __builtin_nearbyintf(x)
#define sqrt(x) __builtin_sqrt(x)
#define sqrtf(x) __builtin_sqrtf(x)
#define trunc(x) __builtin_trunc(x)
#define truncf(x) __builtin_truncf(x)
#endif
