; Interrupt handlers for the idle halt (firmware/apic.c installs them with idt_set_gate). They do
; nothing but count and acknowledge: the wake-up itself is the work, the main loop polls after it.
; They touch only rax and memory, so they can interrupt any code (the C code has no red zone).
BITS 64

global interrupt_device_entry, interrupt_timer_entry, interrupt_spurious_entry, cpu_wait_for_interrupt
global interrupt_device_count, interrupt_timer_count, interrupt_spurious_count

%define LAPIC_EOI 0xFEE000B0         ; xAPIC end-of-interrupt register (identity-mapped, uncached)

section .text
; The device's MSI-X message.
interrupt_device_entry:
    push    rax
    inc     qword [rel interrupt_device_count]
    mov     eax, LAPIC_EOI
    mov     dword [rax], 0
    pop     rax
    iretq

; The local APIC's one-shot timer: the idle timeout.
interrupt_timer_entry:
    push    rax
    inc     qword [rel interrupt_timer_count]
    mov     eax, LAPIC_EOI
    mov     dword [rax], 0
    pop     rax
    iretq

; The local APIC's spurious vector: never acknowledged (Intel SDM 10.9).
interrupt_spurious_entry:
    inc     qword [rel interrupt_spurious_count]
    iretq

; Interrupts on for exactly one halt: STI's one-instruction shadow means an interrupt already
; pending is taken at the HLT (which then returns), so none is lost between the caller's last
; look at the rings and the halt. Interrupts are off again when this returns.
cpu_wait_for_interrupt:
    sti
    hlt
    cli
    ret

section .bss
align 8
interrupt_device_count: resq 1
interrupt_timer_count: resq 1
interrupt_spurious_count: resq 1
