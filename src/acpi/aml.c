/* SPDX-License-Identifier: MIT */
/* AML writer: scopes, devices, names and resource templates as ACPI 6.5 §20.2 encodes them. */
#include "aml.h"

#include <errno.h>
#include <string.h>

#include "lib/le.h"

enum { AML_PKG, AML_CRS };

#define AML_SCOPE_OP 0x10
#define AML_NAME_OP 0x08
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_PREFIX 0x5b
#define AML_DEVICE_OP 0x82
#define AML_ROOT_CHAR '\\'
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f

void acpi_aml_init(struct acpi_aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = buf ? cap : 0;
}

static void aml_fail(struct acpi_aml *a, int err)
{
    if (!a->err)
        a->err = err;
}

static void aml_bytes(struct acpi_aml *a, const void *p, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
}

void acpi_aml_raw(struct acpi_aml *a, const void *p, size_t n)
{
    aml_bytes(a, p, n);
}

static void aml_byte(struct acpi_aml *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

/* Insert n bytes at pos, shifting what follows: lengths are only known when a construct ends. */
static void aml_insert(struct acpi_aml *a, size_t pos, const uint8_t *p, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
    memcpy(a->buf + pos, p, n);
    a->len += n;
}

/* PkgLength counts itself (ACPI 6.5 §20.2.4): 1 byte up to 63, else a lead byte holding the low
 * nibble and the count of following bytes. */
static size_t pkglen_encode(uint8_t out[4], size_t body)
{
    size_t n = body + 1 <= 0x3f ? 1 : body + 2 <= 0xfff ? 2 : body + 3 <= 0xfffff ? 3 : 4;
    size_t total = body + n;
    if (n == 1) {
        out[0] = (uint8_t)total;
        return 1;
    }
    out[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
    for (size_t i = 1; i < n; i++)
        out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
    return n;
}

static size_t int_encode(uint8_t out[9], uint64_t v)
{
    if (v <= 1) {
        out[0] = (uint8_t)v; /* ZeroOp, OneOp */
        return 1;
    }
    size_t bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    out[0] = bytes == 1 ? 0x0a : bytes == 2 ? 0x0b : bytes == 4 ? 0x0c : 0x0e;
    le_put(out + 1, (uint32_t)bytes, v);
    return bytes + 1;
}

static void aml_int(struct acpi_aml *a, uint64_t v)
{
    uint8_t b[9];
    aml_bytes(a, b, int_encode(b, v));
}

static bool seg_char_ok(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* NameString (ACPI 6.5 §20.2.2): segments padded with '_' to four characters. */
static void aml_namestring(struct acpi_aml *a, const char *path)
{
    if (!path) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t out[1 + 2 + 4 * 16];
    size_t n = 0;
    if (*path == AML_ROOT_CHAR) {
        out[n++] = AML_ROOT_CHAR;
        path++;
    }
    uint8_t segs[4 * 16];
    unsigned count = 0;
    while (*path) {
        size_t len = strcspn(path, ".");
        if (len == 0 || len > 4 || count == 16 || !seg_char_ok(path[0], true)) {
            aml_fail(a, -EINVAL);
            return;
        }
        for (size_t i = 0; i < 4; i++) {
            char c = i < len ? path[i] : '_';
            if (!seg_char_ok(c, i == 0)) {
                aml_fail(a, -EINVAL);
                return;
            }
            segs[4 * count + i] = (uint8_t)c;
        }
        count++;
        path += len;
        if (*path == '.' && *++path == '\0') {
            aml_fail(a, -EINVAL);
            return;
        }
    }
    if (count == 0) {
        aml_fail(a, -EINVAL);
        return;
    }
    if (count == 2)
        out[n++] = AML_DUAL_NAME_PREFIX;
    else if (count > 2) {
        out[n++] = AML_MULTI_NAME_PREFIX;
        out[n++] = (uint8_t)count;
    }
    memcpy(out + n, segs, 4 * count);
    aml_bytes(a, out, n + 4 * count);
}

static void aml_open(struct acpi_aml *a, uint8_t kind)
{
    if (a->err)
        return;
    if (a->depth == ACPI_AML_DEPTH) {
        aml_fail(a, -EINVAL);
        return;
    }
    a->kind[a->depth] = kind;
    a->open[a->depth++] = a->len;
}

void acpi_aml_scope_begin(struct acpi_aml *a, const char *path)
{
    aml_byte(a, AML_SCOPE_OP);
    aml_open(a, AML_PKG);
    aml_namestring(a, path);
}

void acpi_aml_device_begin(struct acpi_aml *a, const char *name)
{
    aml_byte(a, AML_EXT_PREFIX);
    aml_byte(a, AML_DEVICE_OP);
    aml_open(a, AML_PKG);
    aml_namestring(a, name);
}

void acpi_aml_end(struct acpi_aml *a)
{
    if (a->err)
        return;
    if (a->depth == 0) {
        aml_fail(a, -EINVAL);
        return;
    }
    size_t start = a->open[--a->depth];
    if (a->kind[a->depth] == AML_CRS) {
        /* End tag with checksum 0, "treated as if the checksum operation succeeded". */
        static const uint8_t end_tag[2] = {0x79, 0x00};
        aml_bytes(a, end_tag, sizeof(end_tag));
        uint8_t size[9];
        aml_insert(a, start, size, int_encode(size, a->len - start));
        if (a->err)
            return;
    }
    uint8_t pl[4];
    aml_insert(a, start, pl, pkglen_encode(pl, a->len - start));
}

void acpi_aml_name_int(struct acpi_aml *a, const char *name, uint64_t value)
{
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, name);
    aml_int(a, value);
}

void acpi_aml_name_string(struct acpi_aml *a, const char *name, const char *value)
{
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, name);
    aml_byte(a, 0x0d); /* StringPrefix: ASCII up to a NUL */
    for (const char *c = value; c && *c; c++) {
        if ((unsigned char)*c > 0x7f) { /* AsciiCharList: 0x01-0x7f */
            aml_fail(a, -EINVAL);
            return;
        }
    }
    aml_bytes(a, value ? value : "", value ? strlen(value) + 1 : 1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void acpi_aml_name_eisaid(struct acpi_aml *a, const char *name, const char *id)
{
    /* Compressed EISA ID (ACPI 6.5 §19.6.47): three 5-bit letters and four hex digits, stored
     * as a big-endian DWORD. */
    if (!id || strlen(id) != 7) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            aml_fail(a, -EINVAL);
            return;
        }
        v = (v << 5) | (uint32_t)(id[i] - 0x40);
    }
    for (int i = 3; i < 7; i++) {
        int h = hexval(id[i]);
        if (h < 0) {
            aml_fail(a, -EINVAL);
            return;
        }
        v = (v << 4) | (uint32_t)h;
    }
    uint8_t dword[5] = {0x0c, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                        (uint8_t)v};
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, name);
    aml_bytes(a, dword, sizeof(dword));
}

/* DefPackage (ACPI 6.5 §20.2.5.4): PackageOp, the length (filled in by acpi_aml_end) and
 * NumElements; the caller adds the elements, then ends it. */
static void package_begin(struct acpi_aml *a, uint8_t count)
{
    aml_byte(a, AML_PACKAGE_OP);
    aml_open(a, AML_PKG);
    aml_byte(a, count);
}

void acpi_aml_name_package(struct acpi_aml *a, const char *name, const uint64_t *values,
                           unsigned count)
{
    if (count > 0xff) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, name);
    package_begin(a, (uint8_t)count);
    for (unsigned i = 0; i < count; i++)
        aml_int(a, values[i]);
    acpi_aml_end(a);
}

void acpi_aml_crs_begin(struct acpi_aml *a)
{
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, "_CRS");
    aml_byte(a, AML_BUFFER_OP);
    aml_open(a, AML_CRS);
}

static bool in_crs(struct acpi_aml *a)
{
    if (a->depth == 0 || a->kind[a->depth - 1] != AML_CRS) {
        aml_fail(a, -EINVAL);
        return false;
    }
    return true;
}

void acpi_aml_crs_io(struct acpi_aml *a, uint16_t base, uint8_t len)
{
    if (!in_crs(a))
        return;
    uint8_t d[8] = {0x47, 0x01, 0, 0, 0, 0, 0x01, len};
    le_put16(d + 2, base);
    le_put16(d + 4, base);
    aml_bytes(a, d, sizeof(d));
}

void acpi_aml_crs_irq(struct acpi_aml *a, uint8_t irq)
{
    if (!in_crs(a))
        return;
    if (irq > 15) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t d[3] = {0x22, 0, 0};
    le_put16(d + 1, (uint16_t)(1u << irq));
    aml_bytes(a, d, sizeof(d));
}

/* Address space resource types and flags (ACPI 6.5 §6.4.3.5). */
#define ADDR_TYPE_MEMORY 0
#define ADDR_TYPE_IO 1
#define ADDR_TYPE_BUS 2
/* General flags: _MAF and _MIF set, _DEC 0 (positive decode), bit 0 clear: a producer. */
#define ADDR_PRODUCER_FIXED 0x0c
#define ADDR_IO_ENTIRE_RANGE 0x03 /* _RNG: ISA and non-ISA ports */
#define ADDR_MEM_RW 0x01          /* _RW set, _MEM 0: non-cacheable */

/* Word (ACPI 6.5 §6.4.3.5.3, large item 0x08) or DWord (§6.4.3.5.2, large item 0x07) Address
 * Space Descriptor without the optional resource source: the same header, then granularity,
 * minimum, maximum, translation offset and length, each width (2 or 4) bytes. */
static void crs_addr(struct acpi_aml *a, unsigned width, uint8_t type, uint8_t type_flags,
                     uint32_t min, uint32_t max)
{
    if (!in_crs(a))
        return;
    if (min > max) {
        aml_fail(a, -EINVAL);
        return;
    }
    uint8_t d[6 + 5 * 4] = {width == 2 ? 0x88 : 0x87, 0, 0, type, ADDR_PRODUCER_FIXED, type_flags};
    le_put16(d + 1, (uint16_t)(3 + 5 * width)); /* the length of what follows */
    /* Granularity 0, minimum, maximum, translation offset 0, length (0 for the whole space:
     * only the low width bytes are kept). */
    const uint32_t field[5] = {0, min, max, 0, max - min + 1};
    for (unsigned i = 0; i < 5; i++)
        le_put(d + 6 + width * i, width, field[i]);
    aml_bytes(a, d, 6 + 5 * width);
}

void acpi_aml_crs_word_bus(struct acpi_aml *a, uint16_t min, uint16_t max)
{
    crs_addr(a, 2, ADDR_TYPE_BUS, 0, min, max);
}

void acpi_aml_crs_word_io(struct acpi_aml *a, uint16_t min, uint16_t max)
{
    crs_addr(a, 2, ADDR_TYPE_IO, ADDR_IO_ENTIRE_RANGE, min, max);
}

void acpi_aml_crs_dword_memory(struct acpi_aml *a, uint32_t min, uint32_t max)
{
    crs_addr(a, 4, ADDR_TYPE_MEMORY, ADDR_MEM_RW, min, max);
}

void acpi_aml_name_package_table(struct acpi_aml *a, const char *name, const uint64_t *values,
                                 unsigned rows, unsigned cols)
{
    /* NumElements is one byte (ACPI 6.5 §20.2.5.4, DefPackage). */
    if (rows > 0xff || cols > 0xff || (rows && cols && !values)) {
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, AML_NAME_OP);
    aml_namestring(a, name);
    package_begin(a, (uint8_t)rows);
    for (unsigned r = 0; r < rows; r++) {
        package_begin(a, (uint8_t)cols);
        for (unsigned c = 0; c < cols; c++)
            aml_int(a, values[(size_t)r * cols + c]);
        acpi_aml_end(a);
    }
    acpi_aml_end(a);
}

void acpi_aml_isa_device(struct acpi_aml *a, const char *name, const char *hid, unsigned uid,
                         uint16_t io0, uint8_t io0_len, uint16_t io1, uint8_t io1_len, int irq)
{
    acpi_aml_device_begin(a, name);
    acpi_aml_name_eisaid(a, "_HID", hid);
    acpi_aml_name_int(a, "_UID", uid);
    acpi_aml_crs_begin(a);
    if (io0_len)
        acpi_aml_crs_io(a, io0, io0_len);
    if (io1_len)
        acpi_aml_crs_io(a, io1, io1_len);
    if (irq >= 0)
        acpi_aml_crs_irq(a, (uint8_t)irq);
    acpi_aml_end(a);
    acpi_aml_end(a);
}

int acpi_aml_finish(struct acpi_aml *a, size_t *len)
{
    if (!a->err && a->depth)
        a->err = -EINVAL;
    if (a->err)
        return a->err;
    *len = a->len;
    return 0;
}
