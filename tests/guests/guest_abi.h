/* SPDX-License-Identifier: MIT */
/* The ports and addresses test guests and the harness agree on. */
#ifndef REVIRT_TEST_GUEST_ABI_H
#define REVIRT_TEST_GUEST_ABI_H

#define PORT_REPORT 0x10 /* outl: a value for the harness to check */
#define PORT_DONE 0x11   /* outl: guest_main returned this (0 = the guest saw what it expected) */
#define PORT_INPUT 0x12  /* inl/inw/inb: a value the harness provides */
#define PORT_SYNC 0x13   /* outl: the guest reached a point the harness waits for */

#define GUEST_LOAD 0x100000ull      /* image base */
#define GUEST_RAM_SIZE 0x400000ull  /* RAM at 0 */
#define GUEST_STACK_TOP 0x3f0000ull /* vCPU n: GUEST_STACK_TOP - n * 0x10000 */
#define GUEST_SHARED 0x3f8000ull    /* a page the harness and guests share */
#define GUEST_MMIO 0xc0000000ull    /* unbacked: accesses exit as MMIO */
#define GUEST_RO 0x600000ull        /* a read-only region in some tests */
#define GUEST_DIRTY 0x800000ull     /* a dirty-tracked region in some tests */
#define GUEST_DIRTY_PAGES 16

#endif
