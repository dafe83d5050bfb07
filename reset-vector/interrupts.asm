; Interrupt handlers for the idle halt (firmware/apic.c installs them with idt_set_gate). They do
; nothing but count and acknowledge: the wake-up itself is the work, the main loop polls after it.
; They touch only rax and memory, so they can interrupt any code (the C code has no red zone).
BITS 64

global interrupt_device_entry, interrupt_timer_entry, interrupt_spurious_entry, cpu_wait_for_interrupt
global cpu_halt_instruction
global interrupt_device_count, interrupt_timer_count, interrupt_spurious_count, interrupt_before_halt_count

%define LAPIC_EOI 0xFEE000B0         ; xAPIC end-of-interrupt register (identity-mapped, uncached)

; An interrupt taken in STI's shadow, before the HLT ran, returns to the HLT: the CPU then halts
; with the wake-up already spent (the timer fired, the device's interrupt was taken) and nothing
; left to end the halt. The architecture holds such an interrupt until the HLT has executed, but a
; hypervisor may not: QEMU's TCG emulating SVM for nested KVM delivers it in the shadow
; (docs/reliability.md). Such an interrupt is the wake-up the halt was for, so it returns past the
; HLT instead, and is counted. Expects rax saved at [rsp], so the frame's RIP is at [rsp + 8].
%macro RETURN_PAST_HALT 0
    lea     rax, [rel cpu_halt_instruction]
    cmp     [rsp + 8], rax
    jne     %%elsewhere
    inc     qword [rsp + 8]              ; HLT is one byte
    inc     qword [rel interrupt_before_halt_count]
%%elsewhere:
%endmacro

section .text
; The device's MSI-X message (or its I/O APIC line).
interrupt_device_entry:
    push    rax
    RETURN_PAST_HALT
    inc     qword [rel interrupt_device_count]
    mov     eax, LAPIC_EOI
    mov     dword [rax], 0
    pop     rax
    iretq

; The local APIC's one-shot timer: the idle timeout.
interrupt_timer_entry:
    push    rax
    RETURN_PAST_HALT
    inc     qword [rel interrupt_timer_count]
    mov     eax, LAPIC_EOI
    mov     dword [rax], 0
    pop     rax
    iretq

; The local APIC's spurious vector: never acknowledged (Intel SDM 10.9).
interrupt_spurious_entry:
    push    rax
    RETURN_PAST_HALT
    inc     qword [rel interrupt_spurious_count]
    pop     rax
    iretq

; Interrupts on for exactly one halt: STI's one-instruction shadow means an interrupt already
; pending is taken at the HLT (which then returns), so none is lost between the caller's last
; look at the rings and the halt. Interrupts are off again when this returns.
cpu_wait_for_interrupt:
    sti
cpu_halt_instruction:
    hlt
    cli
    ret

section .bss
align 8
interrupt_device_count: resq 1
interrupt_timer_count: resq 1
interrupt_spurious_count: resq 1
interrupt_before_halt_count: resq 1
