; 64-bit long mode, still in flash: stack, copy .data's initial values out of flash, zero .bss, install the
; IDT, call the C entry. Absolute addresses are loaded with 64-bit immediates: the flash sits at
; 0xFFFFxxxx, which 32-bit sign-extended (small code model) addressing cannot express.
BITS 64
%include "layout.inc"

extern __ram_image_start, __ram_image_lma, __ram_image_copy_bytes
extern __bss_start, __bss_bytes, __stack_top
extern idt_install, fw_entry
global rom64_entry

section .rom64 progbits alloc exec nowrite align=16
rom64_entry:
    mov     ax, DATA_SELECTOR
    mov     ds, ax
    mov     es, ax
    mov     ss, ax
    xor     eax, eax
    mov     fs, ax
    mov     gs, ax
    mov     r12d, esp                ; reset TSC from rom16 (ESP low half, EBP high half)
    shl     rbp, 32
    or      r12, rbp
    mov     rsp, __stack_top

    ; Code and read-only data run in place from flash (rom32's alias at XIP_BASE); .data, written at
    ; run time, has a RAM address and a flash load address: its initial values are copied here.
    ; (The PVH image is loaded at its RAM addresses: its linker script makes the copy 0 bytes.)
    ; Eight bytes per iteration, then the tail (an emulator runs string instructions an iteration
    ; at a time: this copy and clear take an eighth of the iterations of a byte loop).
    mov     rsi, __ram_image_lma
    mov     rdi, __ram_image_start
    mov     rcx, __ram_image_copy_bytes
    shr     rcx, 3
    cld
    rep movsq
    mov     rcx, __ram_image_copy_bytes
    and     rcx, 7
    rep movsb

    mov     rdi, __bss_start
    mov     rcx, __bss_bytes
    shr     rcx, 3
    xor     eax, eax
    rep stosq
    mov     rcx, __bss_bytes
    and     rcx, 7
    rep stosb

    mov     rax, idt_install         ; from here on a CPU exception is reported, not a triple fault
    call    rax
    mov     rdi, r12                 ; fw_entry(reset_tsc); r12 is callee-saved, idt_install keeps it
    mov     rax, fw_entry
    call    rax
.halt:
    cli
    hlt
    jmp     .halt
