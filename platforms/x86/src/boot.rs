//! The way in: Multiboot v1 (a.out kludge) and PVH entry points, both 32-bit protected
//! mode without paging, converge on a common path that builds an identity map of the
//! low 4 GiB with 2 MiB pages, enters long mode, enables SSE (the prebuilt `core` uses
//! it) and calls the board's `cloister_main(protocol, info)`. The boot map is only for
//! getting there: the board replaces it with `paging::init`'s tables, which leave the
//! private pools out.
//!
//! The board's linker script provides `__image_start`, `__data_end`, `__bss_end` and
//! places `.multiboot_header` first and `.note.Xen` in a PT_NOTE segment with 4-byte
//! alignment (QEMU rejects the PVH note otherwise).

use core::arch::global_asm;

/// `protocol` argument of `cloister_main`.
pub const PROTOCOL_PVH: u32 = 1;
pub const PROTOCOL_MULTIBOOT: u32 = 2;

/// Size of the boot stack, the stack `cloister_main` runs on.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .pushsection .multiboot_header, "a"
    .balign 4
multiboot_header:
    .long 0x1badb002
    .long 0x00010003
    .long -(0x1badb002 + 0x00010003)
    .long multiboot_header
    .long __image_start
    .long __data_end
    .long __bss_end
    .long cloister_multiboot_entry
    .popsection

    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long cloister_pvh_entry
    .balign 4
    .popsection

    .pushsection .boot.text, "ax"
    .code32
    .global cloister_multiboot_entry
cloister_multiboot_entry:
    mov $2, %esi
    jmp 1f

    .global cloister_pvh_entry
cloister_pvh_entry:
    mov $1, %esi
1:
    cli
    cld
    mov $boot_stack_top, %esp

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDn: 512 x 2 MiB, identity. */
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    movl $0, boot_pml4 + 4
    xor %ecx, %ecx
2:
    mov %ecx, %eax
    shl $12, %eax
    add $boot_pd, %eax
    or $0x3, %eax
    mov %eax, boot_pdpt(,%ecx,8)
    movl $0, boot_pdpt + 4(,%ecx,8)
    inc %ecx
    cmp $4, %ecx
    jne 2b
    xor %ecx, %ecx
3:
    mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd + 4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 3b

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax  /* EFER.LME, EFER.NXE */
    and $~(1 << 14), %eax           /* EFER.FFXSR off: FXSAVE must save XMM at ring 0 */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax  /* PG, WP, PE */
    mov %eax, %cr0
    lgdt boot_gdt_pointer
    ljmp $0x08, $4f

    .code64
4:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp

    /* SSE: CR0.EM=0, CR0.MP=1, CR0.TS=0; CR4.OSFXSR|OSXMMEXCPT. */
    mov %cr0, %rax
    and $~((1 << 2) | (1 << 3)), %rax
    or $(1 << 1), %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or $((1 << 9) | (1 << 10)), %rax
    mov %rax, %cr4
    fninit

    mov %esi, %edi      /* protocol */
    mov %ebx, %esi      /* boot information, physical, below 4 GiB */
    call cloister_main
5:
    cli
    hlt
    jmp 5b
    .popsection

    .pushsection .rodata.boot_gdt, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_pointer:
    .word boot_gdt_pointer - boot_gdt - 1
    .long boot_gdt
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    .balign 16
boot_stack:
    .skip {stack_size}
boot_stack_top:
    .popsection
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
