; The IDT: one stub per architectural exception (0-31) that normalises the stack (vectors without
; an error code push a 0) and calls the C reporter fw_exception(vector, error, rip, rsp), which logs
; and stops. Lives in .text, so it runs from RAM.
BITS 64
%include "layout.inc"

extern fw_exception
global idt_install

%define IDT_ENTRIES 32
; Vectors for which the CPU pushes an error code.
%define HAS_ERROR_CODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

section .text
%assign vector 0
%rep IDT_ENTRIES
exception_stub_ %+ vector:
  %if HAS_ERROR_CODE(vector) == 0
    push    0
  %endif
    push    vector
    jmp     exception_common
%assign vector vector + 1
%endrep

exception_common:
    mov     rdi, [rsp]               ; vector
    mov     rsi, [rsp + 8]           ; error code
    mov     rdx, [rsp + 16]          ; RIP of the faulting instruction
    mov     rcx, [rsp + 40]          ; RSP at the time of the fault
    and     rsp, -16                 ; the SysV ABI wants a 16-byte aligned stack at the call
    call    fw_exception             ; does not return

; Fills the IDT with 64-bit interrupt gates to the stubs above and loads it.
idt_install:
    lea     rdi, [rel idt]
    lea     rsi, [rel stub_table]
    mov     ecx, IDT_ENTRIES
.entry:
    mov     rax, [rsi]
    mov     [rdi], ax                ; offset 15:0
    mov     word [rdi + 2], CODE64_SELECTOR
    mov     word [rdi + 4], 0x8E00   ; present, DPL 0, 64-bit interrupt gate, IST 0
    shr     rax, 16
    mov     [rdi + 6], ax            ; offset 31:16
    shr     rax, 16
    mov     [rdi + 8], eax           ; offset 63:32
    mov     dword [rdi + 12], 0
    add     rdi, 16
    add     rsi, 8
    loop    .entry
    lidt    [rel idt_descriptor]
    ret

section .data
align 8
stub_table:
%assign vector 0
%rep IDT_ENTRIES
    dq exception_stub_ %+ vector
%assign vector vector + 1
%endrep

idt_descriptor:
    dw IDT_ENTRIES * 16 - 1
    dq idt

section .bss
align 16
idt:
    resb IDT_ENTRIES * 16
