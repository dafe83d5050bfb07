; The PVH entry (Xen's x86/HVM direct boot ABI, which QEMU's -kernel loader, qboot and
; cloud-hypervisor speak): the loader has put this ELF at its link addresses in RAM and enters
; pvh_entry in 32-bit protected mode, paging off, interrupts off, flat CS/DS/ES of unspecified
; selectors, %ebx -> struct hvm_start_info. No GDT of ours is loaded yet and there is no stack.
; From here the flash image's own 32-bit stage (rom32.asm) builds the page tables and enters long
; mode; rom64 then finds nothing to copy (the loader already placed the image: firmware/linker-pvh.ld.in).
BITS 32
%include "layout.inc"

extern rom32_entry, gdt_descriptor
global pvh_entry, pvh_start_info

%define XEN_ELFNOTE_PHYS32_ENTRY 18

; The note the loader looks for. QEMU steps over the name padded to the segment's alignment, so
; the note segment is 4-byte aligned (the ELF note convention on x86-64 too, as Linux's are).
section .note.pvh note alloc noexec nowrite align=4
    dd 4                             ; namesz: "Xen" and its NUL
    dd 4                             ; descsz: a 32-bit physical entry address
    dd XEN_ELFNOTE_PHYS32_ENTRY
    db "Xen", 0
    dd pvh_entry

section .pvh32 progbits alloc exec nowrite align=16
pvh_entry:
    cld
    ; The TSC at entry is this shape's clock zero, kept in ESP:EBP as rom16 keeps the reset TSC.
    ; RDTSC writes EDX:EAX only, so %ebx is still the loader's.
    rdtsc
    mov     esp, eax
    mov     ebp, edx
    mov     [pvh_start_info], ebx    ; .data in RAM, which rom64 neither copies over nor zeroes
    mov     dx, DEBUG_PORT
    mov     al, '.'                  ; the same first byte of the log as after a reset
    out     dx, al
    ; Our own GDT (rom16.asm's, linked into RAM in this image): rom32 and rom64 load the
    ; selectors of that table, and the loader's selectors are unspecified.
    lgdt    [gdt_descriptor]
    jmp     CODE32_SELECTOR:rom32_entry

section .data
align 4
; The physical address of hvm_start_info (0: not booted through PVH; the flash image keeps 0).
pvh_start_info: dd 0
