# HSYNC-OS boot shim: entry headers, the 32-bit entry, the switch to long mode, and the final
# handover to the kernel. Everything else is Rust (main.rs).
#
# One 32-bit entry serves all three protocols; shim_main tells them apart from EAX/EBX.

# ---- Entry headers ---------------------------------------------------------------------------

.section .multiboot, "a"
.ifndef HSYNC_NO_MB1
# Multiboot1 with the a.out kludge (flag 16): QEMU refuses ELF64 without it and takes this path
# before PVH, which is what gives us several modules with strings (notes/boot.md §3.5).
.balign 4
mb1_header:
    .long 0x1BADB002
    .long 0x00010003                                # page-align modules, memory map, addresses
    .long 0x100000000 - (0x1BADB002 + 0x00010003)
    .long mb1_header                                # header_addr
    .long _shim_start                               # load_addr
    .long _load_end                                 # load_end_addr
    .long _bss_end                                  # bss_end_addr
    .long _start32                                  # entry_addr
.endif

# Multiboot2 (GRUB). No EFI boot-services/amd64-entry tags: GRUB exits boot services and enters
# in 32-bit protected mode like everyone else.
.balign 8
mb2_header:
    .long 0xE85250D6
    .long 0                                         # i386 protected mode
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 5, 1                                     # framebuffer, optional
    .long 20
    .long 1024, 768, 32
    .balign 8
    .short 6, 0                                     # modules page-aligned (Limine needs it)
    .long 8
    .short 0, 0                                     # end
    .long 8
mb2_header_end:

# PVH: XEN_ELFNOTE_PHYS32_ENTRY in a 4-aligned note with an 8-byte descriptor (§5.3, §5.4).
.section .note.pvh, "a", @note
.balign 4
    .long 4                                         # namesz
    .long 8                                         # descsz
    .long 18                                        # XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .quad _start32

# ---- 32-bit entry ----------------------------------------------------------------------------

.section .boot, "ax"
.code32
.global _start32
_start32:
    cli
    cld
    # Keep the loader's EAX/EBX: cpuid and rdmsr clobber them.
    mov %eax, %ebp
    mov %ebx, %esi

    # Zero .bss: PVH promises nothing about it; it also holds our stack and page tables.
    mov $_bss_start, %edi
    mov $_bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov $shim_stack_top, %esp

    # Long mode is required; NX is used when present.
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode
    mov $0x100, %edi                                # EFER.LME
    bt $20, %edx
    jnc 1f
    or $0x800, %edi                                 # EFER.NXE
1:

    # Temporary tables: identity map of [0, 4 GiB) in 2 MiB pages, aliased at the HHDM base
    # (PML4[256]) so the handover code can run at its HHDM address while switching tables.
    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8
    mov $boot_pd + 3, %eax
    xor %ecx, %ecx
2:  mov %eax, boot_pdpt(, %ecx, 8)
    add $0x1000, %eax
    inc %ecx
    cmp $4, %ecx
    jb 2b
    xor %ecx, %ecx
3:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                                  # present, writable, 2 MiB
    mov %eax, boot_pd(, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, boot_pd + 4(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 3b

    # Exact control-register values: UEFI leaves extra bits set (notes/boot.md §5.9).
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0x20, %eax                                 # CR4.PAE
    mov %eax, %cr4
    mov $0xC0000080, %ecx                           # IA32_EFER
    mov %edi, %eax
    xor %edx, %edx
    wrmsr
    mov $0x80010011, %eax                           # CR0: PG | WP | ET | PE
    mov %eax, %cr0
    lgdt shim_gdtr
    ljmp $0x28, $long_entry

no_long_mode:
    mov $0x3f8, %dx
    mov $'L', %al
    out %al, %dx
4:  hlt
    jmp 4b

.code64
long_entry:
    mov $0x30, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov %ebp, %edi                                  # loader EAX (zero-extended)
    mov %esi, %esi                                  # loader EBX (zero-extended)
    mov $shim_stack_top, %rsp
    call shim_main
    ud2

# The Limine GDT layout; the kernel gets a copy in bootloader-reclaimable memory.
.section .rodata.gdt, "a"
.balign 16
.global shim_gdt
shim_gdt:
    .quad 0
    .quad 0x00009b000000ffff                        # 0x08 16-bit code
    .quad 0x000093000000ffff                        # 0x10 16-bit data
    .quad 0x00cf9b000000ffff                        # 0x18 32-bit code
    .quad 0x00cf93000000ffff                        # 0x20 32-bit data
    .quad 0x00209b0000000000                        # 0x28 64-bit code
    .quad 0x0000930000000000                        # 0x30 64-bit data
shim_gdt_end:
.balign 8
shim_gdtr:
    .short shim_gdt_end - shim_gdt - 1
    .quad shim_gdt

# ---- Handover --------------------------------------------------------------------------------

# shim_handover(cr3 = rdi, stack_top = rsi, entry = rdx, gdtr = rcx) -> !
#
# Called at its HHDM alias, which both the boot tables and the kernel's tables map; the stack and
# the GDTR are HHDM addresses too. Position-independent: no absolute references.
.section .text.handover, "ax"
.global shim_handover
shim_handover:
    mov %rsi, %rsp
    mov %rdi, %cr3
    lgdt (%rcx)
    push $0x28
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov $0x30, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    push $0                                         # return address: rsp = 8 mod 16 at entry
    push %rdx                                       # consumed by the ret below
    push $2                                         # RFLAGS image, loaded after the xors
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    popfq                                           # RFLAGS = 0x2 (the xors set ZF/PF)
    ret

# ---- Boot tables and stack -------------------------------------------------------------------

.section .bss.boot, "aw", @nobits
.balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096
shim_stack: .skip 64 * 1024
shim_stack_top:
