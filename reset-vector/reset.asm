; The reset vector: the CPU's first instruction is fetched from 0xFFFFFFF0 (CS base 0xFFFF0000,
; IP 0xFFF0), 16 bytes below the top of the 4 GiB space where the flash ends. There is room only
; for a jump, so that is all this file holds. The linker pins .resetvec at 0xFFFFFFF0.
BITS 16

extern rom16_entry
global reset_vector

section .resetvec progbits alloc exec nowrite align=1
reset_vector:
    jmp     near rom16_entry        ; rel16: rom16_entry lies in the same 64 KiB segment
    times 16 - ($ - $$) db 0xf4     ; hlt padding to the end of the address space
