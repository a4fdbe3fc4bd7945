/* SPDX-License-Identifier: MIT */
/* A multiboot v1 test kernel: checks the boot magic, prints a banner and the command line on
 * COM1, then leaves through the debug-exit port with 0x21 (revirter exits with 67). */
    .set MB_MAGIC, 0x1badb002
    .set MB_FLAGS, 0x3          /* page-aligned modules, memory info */
    .section .text
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .globl _start
    .code32
_start:
    mov $0x80000, %esp
    cmp $0x2badb002, %eax
    jne bad
    mov %ebx, %ebp              /* multiboot_info */
    mov $banner, %esi
    call puts
    testl $4, (%ebp)            /* flags.cmdline */
    jz 1f
    mov 16(%ebp), %esi
    call puts
1:  mov $newline, %esi
    call puts
    mov $0x21, %eax
    mov $0xf4, %dx
    outl %eax, %dx
bad:
    mov $0x7f, %eax             /* only reached without --debug-exit or a bad magic */
    mov $0xf4, %dx
    outl %eax, %dx
2:  cli
    hlt
    jmp 2b

/* puts(esi): poll the UART's THRE bit, then write each byte to THR. */
puts:
    mov $0x3fd, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    lodsb
    test %al, %al
    jz 4f
    mov $0x3f8, %dx
    out %al, %dx
    jmp puts
4:  ret

    .section .rodata
banner: .asciz "revirt multiboot ok: cmdline="
newline: .asciz "\n"
    .section .note.GNU-stack, "", @progbits
