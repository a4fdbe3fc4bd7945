/* SPDX-License-Identifier: MIT */
/* ACPI table tests: parse the tables back out of guest memory as an OS would, and (when the
 * acpica-tools package is installed) have iasl disassemble and recompile them. */
#include "../check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pci/pci.h"
#include "acpi/aml.h"
#include "board/pc/acpi_tables.h"
#include "lib/le.h"

#define MEM_SIZE (2u << 20)

static struct guest_mem mem;
static uint8_t *ram;

static void mem_setup(uint64_t size)
{
    free(ram);
    memset(&mem, 0, sizeof(mem));
    ram = calloc(1, size);
    CHECK(ram && guest_mem_add(&mem, 0, ram, size) == 0, "guest memory");
}

/* A system description table at addr: in the area, whole, named sig, summing to 0. */
static const uint8_t *sdt_at(uint64_t addr, const char *sig)
{
    CHECK(addr >= ACPI_AREA_START && addr < ACPI_AREA_END, "%s at %#llx outside the area", sig,
          (unsigned long long)addr);
    const uint8_t *h = guest_mem_ptr(&mem, addr, 36);
    if (!h)
        return NULL;
    uint32_t len = le_get32(h + 4);
    CHECK(len >= 36 && addr + len <= ACPI_AREA_END, "%s length %u", sig, len);
    const uint8_t *t = guest_mem_ptr(&mem, addr, len);
    if (!t)
        return NULL;
    CHECK(memcmp(t, sig, 4) == 0, "want %s, found %.4s", sig, (const char *)t);
    CHECK(acpi_checksum(t, len) == 0, "%s checksum", sig);
    CHECK(memcmp(t + 10, "REVIRT", 6) == 0, "%s OEM ID", sig);
    return t;
}

static struct acpi_config config(unsigned vcpus)
{
    return (struct acpi_config){.vcpus = vcpus, .ports = ACPI_PORTS_DEFAULT};
}

/* Standard legacy devices, as the VMM describes them. */
static size_t legacy_devices(uint8_t *buf, size_t cap)
{
    struct acpi_aml a;
    acpi_aml_init(&a, buf, cap);
    acpi_aml_isa_device(&a, "COM1", "PNP0501", 1, 0x3f8, 8, 0, 0, 4);
    acpi_aml_isa_device(&a, "PS2K", "PNP0303", 0, 0x60, 1, 0x64, 1, 1);
    acpi_aml_isa_device(&a, "RTC", "PNP0B00", 0, 0x70, 2, 0, 0, -1);
    size_t len = 0;
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    return len;
}

/* The legacy devices plus the PCI host bridge's PCI0, as revirter builds \_SB. */
static size_t platform_devices(uint8_t *buf, size_t cap)
{
    size_t len = legacy_devices(buf, cap);
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host_config hc = {&pio, &mmio, NULL, NULL};
    struct pci_host *h = NULL;
    CHECK_EQ(pci_host_create(&hc, &h), 0);
    struct acpi_aml a;
    acpi_aml_init(&a, buf + len, cap - len);
    if (h)
        pci_host_aml(h, &a);
    size_t pci_len = 0;
    CHECK_EQ(acpi_aml_finish(&a, &pci_len), 0);
    pci_host_destroy(h);
    bus_free(&pio);
    bus_free(&mmio);
    return len + pci_len;
}

struct parsed {
    uint64_t rsdp;
    const uint8_t *xsdt, *rsdt, *fadt, *madt, *dsdt, *facs;
};

static void parse(uint64_t rsdp, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    p->rsdp = rsdp;
    CHECK(rsdp >= ACPI_AREA_START && rsdp < ACPI_AREA_END && rsdp % 16 == 0, "RSDP at %#llx",
          (unsigned long long)rsdp);
    const uint8_t *r = guest_mem_ptr(&mem, rsdp, 36);
    if (!r)
        return;
    CHECK(memcmp(r, "RSD PTR ", 8) == 0, "RSDP signature");
    CHECK_EQ(acpi_checksum(r, 20), 0);
    CHECK_EQ(acpi_checksum(r, 36), 0);
    CHECK_EQ(r[15], 2);
    CHECK_EQ(le_get32(r + 20), 36);
    p->rsdt = sdt_at(le_get32(r + 16), "RSDT");
    p->xsdt = sdt_at(le_get64(r + 24), "XSDT");
    if (!p->xsdt || !p->rsdt)
        return;
    uint32_t n = (le_get32(p->xsdt + 4) - 36) / 8;
    CHECK_EQ(le_get32(p->rsdt + 4), 36 + 4 * n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = le_get64(p->xsdt + 36 + 8 * i);
        CHECK_EQ(le_get32(p->rsdt + 36 + 4 * i), a);
        const uint8_t *t = guest_mem_ptr(&mem, a, 4);
        if (t && memcmp(t, "FACP", 4) == 0)
            p->fadt = sdt_at(a, "FACP");
        else if (t && memcmp(t, "APIC", 4) == 0)
            p->madt = sdt_at(a, "APIC");
    }
    CHECK(p->fadt && p->madt, "XSDT lists FADT and MADT");
    if (!p->fadt)
        return;
    CHECK_EQ(le_get32(p->fadt + 40), le_get64(p->fadt + 140)); /* DSDT == X_DSDT */
    p->dsdt = sdt_at(le_get64(p->fadt + 140), "DSDT");
    uint32_t facs = le_get32(p->fadt + 36);
    CHECK(facs % 64 == 0 && facs >= ACPI_AREA_START && facs < ACPI_AREA_END, "FACS %#x", facs);
    p->facs = guest_mem_ptr(&mem, facs, 64);
    CHECK(p->facs && memcmp(p->facs, "FACS", 4) == 0 && le_get32(p->facs + 4) == 64, "FACS");
}

static void check_fadt(const uint8_t *f)
{
    struct acpi_ports io = ACPI_PORTS_DEFAULT;
    CHECK_EQ(le_get32(f + 4), 276);
    CHECK_EQ(f[8], 6);
    CHECK_EQ(f[131], 3);
    CHECK_EQ(le_get16(f + 46), 9); /* SCI_INT */
    CHECK_EQ(le_get32(f + 48), 0); /* SMI_CMD: ACPI permanently enabled */
    CHECK_EQ(f[52] | f[53], 0);    /* ACPI_ENABLE / ACPI_DISABLE */
    CHECK_EQ(le_get32(f + 56), io.pm1a_evt);
    CHECK_EQ(le_get32(f + 64), io.pm1a_cnt);
    CHECK_EQ(le_get32(f + 76), io.pm_tmr);
    CHECK_EQ(f[88], 4);
    CHECK_EQ(f[89], 2);
    CHECK_EQ(f[91], 4);
    CHECK_EQ(f[108], 0x32); /* CENTURY */
    uint16_t boot = le_get16(f + 109);
    CHECK_EQ(boot & 0x3, 0x3); /* legacy devices, 8042 */
    CHECK_EQ(boot & 0x20, 0);  /* CMOS RTC present */
    uint32_t flags = le_get32(f + 112);
    CHECK_EQ(flags & (1u << 20), 0); /* not hardware-reduced */
    CHECK(flags & (1u << 10), "RESET_REG_SUP");
    CHECK_EQ(flags & (1u << 4), 0); /* fixed power button present */
    /* RESET_REG: system I/O, 8 bits, port 0x60C (clear of PCI's 0xCF8-0xCFF), value 6. */
    CHECK_EQ(f[116], 1);
    CHECK_EQ(f[117], 8);
    CHECK_EQ(le_get64(f + 120), 0x60c);
    CHECK_EQ(f[128], 0x06);
    /* X_ blocks agree with the 32-bit ones. */
    CHECK_EQ(le_get64(f + 148 + 4), io.pm1a_evt);
    CHECK_EQ(f[148 + 1], 32);
    CHECK_EQ(le_get64(f + 172 + 4), io.pm1a_cnt);
    CHECK_EQ(f[172 + 1], 16);
    CHECK_EQ(le_get64(f + 208 + 4), io.pm_tmr);
    CHECK_EQ(le_get64(f + 132), 0); /* X_FIRMWARE_CTRL: FIRMWARE_CTRL is used */
}

static void check_madt(const uint8_t *m, unsigned vcpus)
{
    uint32_t len = le_get32(m + 4);
    CHECK_EQ(le_get32(m + 36), 0xfee00000u);
    CHECK_EQ(le_get32(m + 40) & 1, 1); /* PCAT_COMPAT */
    unsigned cpus = 0, ioapics = 0, isos = 0, nmis = 0;
    bool order_ok = true;
    for (uint32_t off = 44; off < len;) {
        const uint8_t *e = m + off;
        CHECK(e[1] >= 2 && off + e[1] <= len, "entry length %u at %u", e[1], off);
        if (e[1] < 2)
            break;
        switch (e[0]) {
        case 0: /* local APIC */
            CHECK_EQ(e[1], 8);
            if (e[2] != cpus || e[3] != cpus)
                order_ok = false;
            CHECK(cpus < 255, "xAPIC entry for APIC ID %u", cpus);
            CHECK_EQ(le_get32(e + 4) & 1, 1);
            cpus++;
            break;
        case 9: /* local x2APIC */
            CHECK_EQ(e[1], 16);
            if (le_get32(e + 4) != cpus || le_get32(e + 12) != cpus)
                order_ok = false;
            CHECK(cpus >= 255, "x2APIC entry for small ID %u", cpus);
            cpus++;
            break;
        case 1: /* IOAPIC */
            CHECK_EQ(e[1], 12);
            CHECK_EQ(e[2], vcpus < 255 ? vcpus : 254);
            CHECK_EQ(le_get32(e + 4), 0xfec00000u);
            CHECK_EQ(le_get32(e + 8), 0);
            ioapics++;
            break;
        case 2: /* interrupt source override */
            CHECK_EQ(e[1], 10);
            CHECK_EQ(e[2], 0);
            CHECK_EQ(e[3], 9);
            CHECK_EQ(le_get32(e + 4), 9);
            CHECK_EQ(le_get16(e + 8), 0x000d); /* level, active high */
            isos++;
            break;
        case 4:
        case 10:
            nmis++;
            break;
        default:
            CHECK(0, "unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    CHECK_EQ(cpus, vcpus);
    CHECK(order_ok, "APIC IDs and UIDs 0..N-1 in order");
    CHECK_EQ(ioapics, 1);
    CHECK_EQ(isos, 1); /* only the SCI: IRQ 0 is identity-mapped on KVM's default routing */
    CHECK_EQ(nmis, vcpus > 255 ? 2 : 1);
}

/* Name (\_S5_, Package (4) { 5, 5, 0, 0 }) in the DSDT. */
static void check_dsdt_s5(const uint8_t *d)
{
    uint32_t len = le_get32(d + 4);
    static const uint8_t s5[] = {0x08, '\\', '_', 'S', '5', '_', 0x12};
    const uint8_t *hit = NULL;
    for (uint32_t i = 36; i + sizeof(s5) + 10 <= len; i++)
        if (memcmp(d + i, s5, sizeof(s5)) == 0)
            hit = d + i + sizeof(s5);
    CHECK(hit, "\\_S5_ not found");
    if (!hit)
        return;
    CHECK_EQ(hit[1], 4);    /* NumElements */
    CHECK_EQ(hit[2], 0x0a); /* BytePrefix */
    CHECK_EQ(hit[3], ACPI_S5_SLP_TYP);
}

static void verify(unsigned vcpus)
{
    mem_setup(MEM_SIZE);
    struct acpi_config cfg = config(vcpus);
    uint64_t rsdp = 0;
    int ret = acpi_tables_write(&mem, &cfg, &rsdp);
    CHECK(ret == 0, "%u vCPUs: %d", vcpus, ret);
    if (ret)
        return;
    struct parsed p;
    parse(rsdp, &p);
    if (p.fadt)
        check_fadt(p.fadt);
    if (p.madt)
        check_madt(p.madt, vcpus);
    if (p.dsdt)
        check_dsdt_s5(p.dsdt);
}

static void test_acpi_tables_1_vcpu(void)
{
    verify(1);
}

static void test_acpi_tables_8_vcpus(void)
{
    verify(8);
}

static void test_acpi_tables_x2apic(void)
{
    verify(255); /* ID 254 is the last xAPIC one */
    verify(300);
}

/* Linux's acpi_find_root_pointer without a boot-protocol pointer: 16-byte steps through
 * [0xE0000, 0x100000), first valid RSDP wins. */
static void test_acpi_legacy_scan(void)
{
    mem_setup(MEM_SIZE);
    /* A stale RSDP from a previous boot must not survive. */
    memcpy(ram + 0xf0000, "RSD PTR ", 8);
    struct acpi_config cfg = config(2);
    uint64_t rsdp = 0;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), 0);
    uint64_t found = 0;
    int hits = 0;
    for (uint64_t a = ACPI_AREA_START; a < ACPI_AREA_END; a += 16) {
        const uint8_t *r = ram + a;
        if (memcmp(r, "RSD PTR ", 8) == 0 && acpi_checksum(r, 20) == 0) {
            if (!found)
                found = a;
            hits++;
        }
    }
    CHECK_EQ(found, rsdp);
    CHECK_EQ(hits, 1);
}

static void test_acpi_size_and_limits(void)
{
    for (unsigned n = 1; n <= 255; n += 127) {
        struct acpi_config cfg = config(n);
        CHECK_EQ(acpi_tables_size(&cfg), 0x2a8 + 8 * n);
    }
    struct acpi_config big = config(300);
    CHECK_EQ(acpi_tables_size(&big), 0x2a8 + 8 * 255 + 16 * 45 + 12);
    /* Far too many vCPUs: -ENOSPC and guest memory untouched. */
    mem_setup(MEM_SIZE);
    memset(ram + ACPI_AREA_START, 0xa5, ACPI_AREA_END - ACPI_AREA_START);
    struct acpi_config huge = config(20000);
    CHECK(acpi_tables_size(&huge) > ACPI_AREA_END - ACPI_AREA_START, "size %zu",
          acpi_tables_size(&huge));
    uint64_t rsdp = 0;
    CHECK_EQ(acpi_tables_write(&mem, &huge, &rsdp), -ENOSPC);
    CHECK_EQ(ram[ACPI_AREA_START], 0xa5);
    CHECK_EQ(rsdp, 0);
    /* The largest count that fits does fit. */
    unsigned lo = 1, hi = 20000;
    while (lo + 1 < hi) {
        unsigned mid = (lo + hi) / 2;
        struct acpi_config c = config(mid);
        if (acpi_tables_size(&c) <= ACPI_AREA_END - ACPI_AREA_START)
            lo = mid;
        else
            hi = mid;
    }
    struct acpi_config edge = config(lo);
    CHECK_EQ(acpi_tables_write(&mem, &edge, &rsdp), 0);
    edge.vcpus = hi;
    CHECK_EQ(acpi_tables_write(&mem, &edge, &rsdp), -ENOSPC);
    printf("# max vCPUs in the ACPI area: %u\n", lo);
}

static void test_acpi_errors(void)
{
    mem_setup(MEM_SIZE);
    struct acpi_config cfg = config(0);
    uint64_t rsdp = 0;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), -EINVAL);
    /* Guest RAM that ends below the BIOS area. */
    mem_setup(0x80000);
    cfg = config(1);
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), -EFAULT);
    /* An extra table whose header disagrees with its length. */
    mem_setup(MEM_SIZE);
    uint8_t t[44] = {'T', 'E', 'S', 'T', 40};
    struct acpi_table extra = {t, sizeof(t)};
    cfg.extra = &extra;
    cfg.extra_count = 1;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), -EINVAL);
    cfg.sb_aml_len = 4;
    cfg.extra_count = 0;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), -EINVAL); /* AML length without AML */
}

static void test_acpi_extra_table(void)
{
    mem_setup(MEM_SIZE);
    uint8_t t[44] = {'T', 'E', 'S', 'T', 44, 0, 0, 0, 1, 0x77 /* wrong checksum */};
    memcpy(t + 10, "REVIRT", 6);
    t[40] = 0xab;
    struct acpi_table extra = {t, sizeof(t)};
    struct acpi_config cfg = config(2);
    cfg.extra = &extra;
    cfg.extra_count = 1;
    uint64_t rsdp = 0;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), 0);
    struct parsed p;
    parse(rsdp, &p);
    CHECK_EQ((le_get32(p.xsdt + 4) - 36) / 8, 3);
    uint64_t at = le_get64(p.xsdt + 36 + 16);
    const uint8_t *x = sdt_at(at, "TEST");
    CHECK(x && x[40] == 0xab, "extra table copied");
    CHECK_EQ(at % 16, 0);
    CHECK_EQ(ACPI_AREA_START + acpi_tables_size(&cfg), at + sizeof(t)); /* it comes last */
}

static void test_acpi_aml_writer(void)
{
    uint8_t buf[512];
    struct acpi_aml a;
    size_t len = 0;

    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_eisaid(&a, "_HID", "PNP0501");
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01};
    CHECK(len == sizeof(hid) && memcmp(buf, hid, len) == 0, "EisaId encoding");

    /* Integers take the shortest encoding. */
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_int(&a, "A", 0);
    acpi_aml_name_int(&a, "B", 1);
    acpi_aml_name_int(&a, "C", 0x1234);
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    static const uint8_t ints[] = {0x08, 'A',  '_',  '_', '_', 0x00, 0x08, 'B',  '_',  '_',
                                   '_',  0x01, 0x08, 'C', '_', '_',  '_',  0x0b, 0x34, 0x12};
    CHECK(len == sizeof(ints) && memcmp(buf, ints, len) == 0, "integer encoding");

    /* A device of more than 63 bytes needs a two-byte PkgLength. */
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_device_begin(&a, "\\_SB.DEV0");
    for (int i = 0; i < 8; i++)
        acpi_aml_name_string(&a, "STR", "0123456789");
    acpi_aml_end(&a);
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    CHECK_EQ(buf[0], 0x5b);
    CHECK_EQ(buf[1], 0x82);
    CHECK_EQ(buf[2] >> 6, 1);
    CHECK_EQ((buf[2] & 0x0f) | buf[3] << 4, len - 2);
    CHECK_EQ(buf[4], '\\');
    CHECK_EQ(buf[5], 0x2e); /* DualNamePrefix */

    /* Errors are sticky and reported once. */
    const char *bad_names[] = {"lower", "TOOLONG", "1ABC", "A..B", "", "A."};
    for (unsigned i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        acpi_aml_init(&a, buf, sizeof(buf));
        acpi_aml_name_int(&a, bad_names[i], 1);
        CHECK(acpi_aml_finish(&a, &len) == -EINVAL, "name '%s' accepted", bad_names[i]);
    }
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_eisaid(&a, "_HID", "PNP05G1");
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_device_begin(&a, "DEV");
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL); /* unbalanced */
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_crs_io(&a, 0x60, 1); /* outside a resource template */
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, 8);
    acpi_aml_isa_device(&a, "COM1", "PNP0501", 1, 0x3f8, 8, 0, 0, 4);
    CHECK_EQ(acpi_aml_finish(&a, &len), -ENOSPC);
}

/* Bridge windows and package tables, byte for byte as iasl compiles the ASL in the comments. */
static void test_acpi_aml_bridge(void)
{
    uint8_t buf[512];
    struct acpi_aml a;
    size_t len = 0;

    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_crs_begin(&a);
    /* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100) */
    acpi_aml_crs_word_bus(&a, 0, 0xff);
    /* WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
     *         0, 0xD00, 0xFFFF, 0, 0xF300) */
    acpi_aml_crs_word_io(&a, 0xd00, 0xffff);
    /* DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
     *              0, 0xC0000000, 0xDFFFFFFF, 0, 0x20000000) */
    acpi_aml_crs_dword_memory(&a, 0xc0000000u, 0xdfffffffu);
    acpi_aml_end(&a);
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    static const uint8_t crs[] = {
        0x08, '_',  'C',  'R',  'S',  0x11, 0x3f, 0x0a, 0x3c,       /* Name, Buffer (60 bytes) */
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00,                         /* Word, bus, producer fixed */
        0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01, /* 0, 0-0xFF, 0, 0x100 */
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, /* Word, I/O, producer fixed, entire range */
        0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3, /* 0, 0xD00-0xFFFF, 0xF300 */
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, /* DWord, memory, producer fixed, read/write */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, /* granularity, minimum */
        0xff, 0xff, 0xff, 0xdf, 0x00, 0x00, 0x00, 0x00, /* maximum, translation */
        0x00, 0x00, 0x00, 0x20,                         /* length */
        0x79, 0x00};                                    /* end tag */
    CHECK(len == sizeof(crs) && memcmp(buf, crs, len) == 0, "bridge _CRS encoding (%zu)", len);

    /* Name (_PRT, Package () { Package () { 0x1FFFF, Zero, Zero, 0x11 },
     *                          Package () { 0x2FFFF, Zero, Zero, 0x12 } }) */
    const uint64_t prt[8] = {0x1ffff, 0, 0, 0x11, 0x2ffff, 0, 0, 0x12};
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_package_table(&a, "_PRT", prt, 2, 4);
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    static const uint8_t prt_aml[] = {
        0x08, '_',  'P',  'R',  'T',  0x12, 0x1a, 0x02,             /* Name, Package (2) */
        0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00,             /* Package (4), 0x1FFFF */
        0x00, 0x00, 0x0a, 0x11,                                     /* Zero, Zero, 0x11 */
        0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, /* second row */
        0x0a, 0x12};
    CHECK(len == sizeof(prt_aml) && memcmp(buf, prt_aml, len) == 0, "_PRT encoding (%zu)", len);

    /* Errors: descriptors outside a template, inverted ranges, oversized packages. */
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_crs_word_io(&a, 0, 1);
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_crs_begin(&a);
    acpi_aml_crs_word_bus(&a, 2, 1);
    acpi_aml_end(&a);
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_crs_begin(&a);
    acpi_aml_crs_dword_memory(&a, 0x2000, 0x1fff);
    acpi_aml_end(&a);
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_package_table(&a, "_PRT", prt, 256, 1);
    CHECK_EQ(acpi_aml_finish(&a, &len), -EINVAL);
    acpi_aml_init(&a, buf, 20);
    acpi_aml_name_package_table(&a, "_PRT", prt, 2, 4);
    CHECK_EQ(acpi_aml_finish(&a, &len), -ENOSPC);
    /* An empty table is an empty package. */
    acpi_aml_init(&a, buf, sizeof(buf));
    acpi_aml_name_package_table(&a, "EMPT", NULL, 0, 4);
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    CHECK_EQ(len, 8);
}

/* ---------------------------------------------------------------- iasl cross-check */

static char *iasl_path(void)
{
    const char *env = getenv("IASL");
    if (env && *env)
        return access(env, X_OK) == 0 ? strdup(env) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    char *copy = strdup(path), *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/iasl", dir);
        if (access(full, X_OK) == 0) {
            free(copy);
            return strdup(full);
        }
    }
    free(copy);
    return NULL;
}

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

/* Run a command; its output goes to log. Returns the exit status, -1 if it did not run. Any
 * line with "Error" or "Warning" in the log counts as a failure of the table. */
static int run(const char *cmd, const char *log, int *complaints)
{
    char full[8192];
    snprintf(full, sizeof(full), "%s > %s 2>&1", cmd, log);
    int st = system(full);
    *complaints = 0;
    FILE *f = fopen(log, "r");
    if (f) {
        char line[1024];
        while (fgets(line, sizeof(line), f)) {
            /* iasl's own summary line ("0 Errors, 0 Warnings") is not a complaint. */
            if (strstr(line, " 0 Errors") || strstr(line, "Compilation successful"))
                continue;
            if (strstr(line, "Error") || strstr(line, "Warning") || strstr(line, "Invalid")) {
                printf("#   %s", line);
                (*complaints)++;
            }
        }
        fclose(f);
    }
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void iasl_check(const char *iasl, const char *dir, const char *name, const uint8_t *t,
                       size_t len, bool recompile)
{
    char dat[512], cmd[2048], log[512];
    snprintf(dat, sizeof(dat), "%s/%s.dat", dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    CHECK(write_file(dat, t, len), "write %s", dat);
    int complaints = 0;
    snprintf(cmd, sizeof(cmd), "cd %s && %s -d %s.dat", dir, iasl, name);
    CHECK_EQ(run(cmd, log, &complaints), 0);
    CHECK(complaints == 0, "iasl -d %s complained (see above)", name);
    char dsl[512];
    snprintf(dsl, sizeof(dsl), "%s/%s.dsl", dir, name);
    CHECK(access(dsl, R_OK) == 0, "no %s", dsl);
    if (!recompile)
        return;
    /* Compile the disassembly back (-oa: no AML optimisations, so \_S5_ keeps its root
     * prefix): a table iasl understood exactly compiles to the same bytes, apart from the
     * checksum and the compiler ID/revision it stamps in. */
    snprintf(cmd, sizeof(cmd), "cd %s && %s -oa -p %s-re %s.dsl", dir, iasl, name, name);
    snprintf(log, sizeof(log), "%s/%s-re.log", dir, name);
    CHECK_EQ(run(cmd, log, &complaints), 0);
    CHECK(complaints == 0, "iasl recompile of %s complained", name);
    char aml[512];
    snprintf(aml, sizeof(aml), "%s/%s-re.aml", dir, name);
    size_t rlen = 0;
    uint8_t *re = read_file(aml, &rlen);
    CHECK(re && rlen == len, "%s: recompiled %zu bytes, original %zu", name, rlen, len);
    if (re && rlen == len) {
        size_t diffs = 0;
        for (size_t i = 0; i < len; i++)
            if (i != 9 && (i < 28 || i >= 36) && re[i] != t[i])
                diffs++;
        CHECK(diffs == 0, "%s: %zu bytes differ after a disassemble/compile round trip", name,
              diffs);
    }
    free(re);
}

static void test_acpi_iasl(void)
{
    char *iasl = iasl_path();
    if (!iasl) {
        printf("ok %d - test_acpi_iasl # SKIP iasl not found (Debian package acpica-tools)\n",
               ++check_cases);
        return;
    }
    int before = check_failures;
    char dir[] = "/tmp/revirt-acpi-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    mem_setup(MEM_SIZE);
    uint8_t aml[2048];
    struct acpi_config cfg = config(300);
    cfg.sb_aml = aml;
    cfg.sb_aml_len = platform_devices(aml, sizeof(aml));
    uint64_t rsdp = 0;
    CHECK_EQ(acpi_tables_write(&mem, &cfg, &rsdp), 0);
    struct parsed p;
    parse(rsdp, &p);
    if (p.dsdt && p.fadt && p.madt && p.xsdt && p.rsdt && p.facs) {
        /* The RSDP is no SDT: iasl -d does not take it as a file; parse() checked it. */
        iasl_check(iasl, dir, "rsdt", p.rsdt, le_get32(p.rsdt + 4), false);
        iasl_check(iasl, dir, "xsdt", p.xsdt, le_get32(p.xsdt + 4), false);
        iasl_check(iasl, dir, "facs", p.facs, 64, false);
        iasl_check(iasl, dir, "facp", p.fadt, le_get32(p.fadt + 4), true);
        iasl_check(iasl, dir, "apic", p.madt, le_get32(p.madt + 4), true);
        iasl_check(iasl, dir, "dsdt", p.dsdt, le_get32(p.dsdt + 4), true);
    }
    if (check_failures == before) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0, "cleanup");
    } else {
        printf("# iasl files kept in %s\n", dir);
    }
    free(iasl);
    printf("%s %d - test_acpi_iasl\n", check_failures == before ? "ok" : "not ok", ++check_cases);
}

int main(void)
{
    RUN(test_acpi_tables_1_vcpu);
    RUN(test_acpi_tables_8_vcpus);
    RUN(test_acpi_tables_x2apic);
    RUN(test_acpi_legacy_scan);
    RUN(test_acpi_size_and_limits);
    RUN(test_acpi_errors);
    RUN(test_acpi_extra_table);
    RUN(test_acpi_aml_writer);
    RUN(test_acpi_aml_bridge);
    test_acpi_iasl();
    free(ram);
    return check_done();
}
