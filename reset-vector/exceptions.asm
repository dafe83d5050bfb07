; The IDT: one stub per architectural exception (0-31) that normalises the stack (vectors without
; an error code push a 0) and calls the C reporter fw_exception(vector, error, rip, rsp), which logs
; and stops. Lives in .text, so it runs from RAM. Interrupt vectors (interrupts.asm) are added by
; firmware/apic.c through idt_set_gate.
BITS 64
%include "layout.inc"

extern fw_exception
global idt_install, idt_set_gate

%define EXCEPTION_ENTRIES 32
%define IDT_ENTRIES 256              ; vectors past 31 stay absent (#NP) until idt_set_gate
; Vectors for which the CPU pushes an error code.
%define HAS_ERROR_CODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

section .text
%assign vector 0
%rep EXCEPTION_ENTRIES
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

; Fills the IDT's exception entries with 64-bit interrupt gates to the stubs above and loads it.
idt_install:
    xor     edi, edi
.entry:
    lea     rsi, [rel stub_table]
    mov     rsi, [rsi + rdi * 8]
    call    idt_set_gate             ; keeps rdi
    inc     edi
    cmp     edi, EXCEPTION_ENTRIES
    jb      .entry
    lidt    [rel idt_descriptor]
    ret

; idt_set_gate(vector rdi, handler rsi): a present 64-bit interrupt gate (interrupts stay off in
; the handler). Clobbers rax and rdx only.
idt_set_gate:
    movzx   eax, dil
    shl     eax, 4
    lea     rdx, [rel idt]
    add     rdx, rax
    mov     rax, rsi
    mov     [rdx], ax                ; offset 15:0
    mov     word [rdx + 2], CODE64_SELECTOR
    mov     word [rdx + 4], 0x8E00   ; present, DPL 0, 64-bit interrupt gate, IST 0
    shr     rax, 16
    mov     [rdx + 6], ax            ; offset 31:16
    shr     rax, 16
    mov     [rdx + 8], eax           ; offset 63:32
    mov     dword [rdx + 12], 0
    ret

section .data
align 8
stub_table:
%assign vector 0
%rep EXCEPTION_ENTRIES
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
