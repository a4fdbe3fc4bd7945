/* SPDX-License-Identifier: MIT */
/* Test guest entry: 64-bit, paging on, RSP and RDI (vCPU index) set by the harness. */
    .section .text.entry, "ax"
    .globl _start
_start:
    and $-16, %rsp          /* the C ABI wants a 16-byte aligned stack at the call */
    call guest_main
    mov $0x11, %dx          /* PORT_DONE: main's return value is the guest's verdict */
    out %eax, %dx
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits
