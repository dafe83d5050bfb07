; 16-bit real mode -> 32-bit protected mode, flat segments.
BITS 16
%include "layout.inc"

extern rom32_entry
global rom16_entry
global gdt_descriptor

section .rom16 progbits alloc exec nowrite align=16
rom16_base:                          ; linked at ROM16_LINEAR (asserted by the linker script)

rom16_entry:
    cli                              ; no IDT yet: an interrupt now would triple-fault
    cld
    ; The TSC at reset: the clock's zero. Kept in ESP:EBP (unused until rom64 sets up a stack, and
    ; there is no RAM we may write yet) and handed to the C entry.
    rdtsc
    mov     esp, eax
    mov     ebp, edx
    mov     dx, DEBUG_PORT
    mov     al, '.'                  ; a sign of life before anything can go wrong
    out     dx, al

    ; LGDT in real mode reads a 6-byte pseudo-descriptor through a segment. CS still has its reset
    ; base 0xFFFF0000, so address the descriptor by its offset in that segment. o32 makes the CPU
    ; take all 32 bits of the base (a 16-bit LGDT would drop the top byte: the GDT is at 0xFFFFFxxx).
    o32 lgdt [cs:(ROM16_LINEAR - ROM16_SEGMENT_BASE) + (gdt_descriptor - rom16_base)]

    ; Protected mode. The far jump reloads CS from the new GDT; o32 gives it a 32-bit offset.
    mov     eax, cr0
    or      eax, CR0_PE
    mov     cr0, eax
    jmp     dword CODE32_SELECTOR:rom32_entry

; The GDT lives in flash. The CPU sets the Accessed bit in a descriptor when it loads a selector,
; which would be a write to flash, so every descriptor has Accessed preset.
align 8
gdt:
    dq 0                             ; null descriptor
    dq 0x00CF9B000000FFFF            ; 0x08: 32-bit code, base 0, limit 4 GiB, accessed
    dq 0x00CF93000000FFFF            ; 0x10: data, base 0, limit 4 GiB, writable, accessed
    dq 0x00AF9B000000FFFF            ; 0x18: 64-bit code (L=1), accessed
gdt_end:

gdt_descriptor:
    dw gdt_end - gdt - 1
    dd gdt                           ; 32-bit linear address (valid in 16-, 32- and 64-bit LGDT)
    dd 0                             ; upper half, so the same descriptor also serves a 64-bit LGDT
