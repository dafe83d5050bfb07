; 32-bit protected mode -> 64-bit long mode. Still executing from flash.
BITS 32
%include "layout.inc"

extern rom64_entry, __xip_phys_base, __xip_2m_pages
global rom32_entry

section .rom32 progbits alloc exec nowrite align=16
rom32_entry:
    mov     ax, DATA_SELECTOR
    mov     ds, ax
    mov     es, ax
    mov     ss, ax
    mov     fs, ax
    mov     gs, ax

    ; Clear the page-table area (RAM content is undefined after a warm reset).
    mov     edi, PAGE_TABLES
    mov     ecx, PAGE_TABLES_BYTES / 4
    xor     eax, eax
    rep stosd

    ; PML4[0] -> PDPT; PDPT[0..3] -> the four page directories. One PML4 entry covers 512 GiB.
    mov     dword [PML4], PDPT | PAGE_PRESENT | PAGE_WRITABLE
    mov     edi, PDPT
    mov     eax, PAGE_DIRECTORIES | PAGE_PRESENT | PAGE_WRITABLE
    mov     ecx, 4
.pdpt:
    mov     [edi], eax
    add     eax, 0x1000
    add     edi, 8
    loop    .pdpt

    ; 2048 entries of 2 MiB pages: physical == virtual for all of the low 4 GiB, so BARs assigned
    ; anywhere below 4 GiB are reachable and wasm pointers are DMA addresses (plus a constant).
    mov     edi, PAGE_DIRECTORIES
    xor     ebx, ebx                 ; 2 MiB page index
.pd:
    mov     eax, ebx
    shl     eax, 21
    or      eax, PAGE_PRESENT | PAGE_WRITABLE | PAGE_LARGE
    cmp     ebx, MMIO_START_2M_INDEX
    jb      .cached
    or      eax, PAGE_CACHE_DISABLE | PAGE_WRITE_THROUGH
.cached:
    mov     [edi], eax
    mov     dword [edi + 4], 0
    add     edi, 8
    inc     ebx
    cmp     ebx, 2048
    jb      .pd

    ; The flash image's payload runs in place: its 2 MiB pages appear again at XIP_BASE (below the
    ; wasm memory, within the small code model's 2 GiB), read-only, cached. None in the PVH image.
    mov     edi, PAGE_DIRECTORIES + (XIP_BASE >> 21) * 8
    mov     eax, __xip_phys_base
    or      eax, PAGE_PRESENT | PAGE_LARGE
    mov     ecx, __xip_2m_pages
.xip:
    jecxz   .xip_done
    mov     [edi], eax
    add     eax, 0x200000
    add     edi, 8
    dec     ecx
    jmp     .xip
.xip_done:

    ; Long mode needs PAE paging: CR4.PAE, CR3, then EFER.LME, then CR0.PG (SDM 10.8.5). The jump
    ; through a 64-bit code descriptor leaves compatibility mode.
    mov     eax, cr4
    or      eax, CR4_PAE
    mov     cr4, eax
    mov     eax, PML4
    mov     cr3, eax
    mov     ecx, MSR_EFER
    rdmsr
    or      eax, EFER_LME
    wrmsr
    mov     eax, cr0
    or      eax, CR0_PG
    mov     cr0, eax
    jmp     CODE64_SELECTOR:rom64_entry
