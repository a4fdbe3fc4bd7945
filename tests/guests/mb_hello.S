/* SPDX-License-Identifier: MIT */
/* A multiboot v1 test kernel: checks the boot magic, prints a banner and the command line on
 * COM1, then acts on the command line's first word: "crash" triple-faults, "reboot" pulses
 * the i8042 reset line, "poweroff" enters ACPI S5 through PM1a_CNT (port 0x604), "com2" prints
 * a line on COM2 (0x2f8) and exits; anything else leaves through the debug-exit port with 0x21
 * (revirter exits with 67). */
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
    testl $4, (%ebp)
    jz exit
    mov 16(%ebp), %esi
    cmpl $0x73617263, (%esi)    /* "cras" */
    je crash
    cmpl $0x6f626572, (%esi)    /* "rebo" */
    je reboot
    cmpl $0x65776f70, (%esi)    /* "powe" */
    je poweroff
    cmpl $0x326d6f63, (%esi)    /* "com2" */
    jne exit
    mov $com2_line, %esi
    mov $0x2f8, %edi
    call uputs
exit:
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

crash:
    lidt null_idt               /* no IDT: the #UD cannot be delivered, the CPU shuts down */
    ud2
reboot:
    mov $0xfe, %al              /* i8042 command 0xFE: pulse the reset line */
    out %al, $0x64
    jmp 2b
poweroff:
    mov $(5 << 10 | 1 << 13), %ax /* SLP_TYP 5 (\_S5) | SLP_EN */
    mov $0x604, %dx
    out %ax, %dx
    jmp 2b

/* puts(esi) on COM1; uputs(esi) on the UART at edi: poll its THRE bit (LSR, base + 5), then
 * write each byte to THR. */
puts:
    mov $0x3f8, %edi
uputs:
    lea 5(%edi), %edx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    lodsb
    test %al, %al
    jz 4f
    mov %edi, %edx
    out %al, %dx
    jmp uputs
4:  ret

    .section .rodata
banner: .asciz "revirt multiboot ok: cmdline="
newline: .asciz "\n"
com2_line: .asciz "revirt multiboot ok: COM2\n"
    .align 8
null_idt: .word 0
    .long 0
    .section .note.GNU-stack, "", @progbits
