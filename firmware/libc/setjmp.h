/* Freestanding shim: wasm-rt.h names jmp_buf; the runtime never unwinds (a trap ends the run). */
#ifndef FW_SHIM_SETJMP_H
#define FW_SHIM_SETJMP_H
typedef long jmp_buf[8];
#endif
