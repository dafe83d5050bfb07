/* Freestanding shim: assertions in generated code are compiled out. */
#ifndef FW_SHIM_ASSERT_H
#define FW_SHIM_ASSERT_H
#define assert(condition) ((void)0)
#endif
