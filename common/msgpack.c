/* Canonical msgpack: msgpack-c's packer writes, a strict cursor reader reads. */
#include "common.h"

#include <msgpack.h>
#include <string.h>

static int write_to_buf(void *data, const char *p, size_t n)
{
    kn_buf_append((kn_buf *)data, p, n);
    return 0;
}

#define PACKER(b)                                                                 \
    msgpack_packer pk;                                                            \
    msgpack_packer_init(&pk, (b), write_to_buf)

void kn_w_array(kn_buf *b, uint32_t n)
{
    PACKER(b);
    (void)msgpack_pack_array(&pk, n);
}

void kn_w_uint(kn_buf *b, uint64_t v)
{
    PACKER(b);
    (void)msgpack_pack_uint64(&pk, v);
}

void kn_w_int(kn_buf *b, int64_t v)
{
    PACKER(b);
    (void)msgpack_pack_int64(&pk, v);
}

void kn_w_bool(kn_buf *b, bool v)
{
    PACKER(b);
    (void)(v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

void kn_w_nil(kn_buf *b)
{
    PACKER(b);
    (void)msgpack_pack_nil(&pk);
}

void kn_w_bin(kn_buf *b, const void *p, size_t n)
{
    PACKER(b);
    (void)msgpack_pack_bin(&pk, n);
    (void)msgpack_pack_bin_body(&pk, p, n);
}

void kn_w_str(kn_buf *b, const char *s, size_t n)
{
    PACKER(b);
    (void)msgpack_pack_str(&pk, n);
    (void)msgpack_pack_str_body(&pk, s, n);
}

/* ---- strict reader ---- */

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Reads a big-endian length or value of n bytes after the tag byte. */
static int read_be(kn_cur *c, size_t n, uint64_t *v)
{
    const uint8_t *p;
    int rc = kn_cur_take(c, n, &p);
    if (rc) return rc;
    *v = load_be(p, n);
    return 0;
}

/* Smallest value that needs a given width: anything lower must use a shorter form. */
static int check_width(uint64_t v, uint64_t min)
{
    return v < min ? KN_ENONCANON : 0;
}

int kn_r_uint(kn_cur *c, uint64_t *v)
{
    kn_cur save = *c;
    const uint8_t *tag;
    int rc = kn_cur_take(c, 1, &tag);
    if (rc) return rc;
    uint64_t x = 0;
    switch (*tag) {
    case 0xcc: rc = read_be(c, 1, &x); if (!rc) rc = check_width(x, 0x80); break;
    case 0xcd: rc = read_be(c, 2, &x); if (!rc) rc = check_width(x, 0x100); break;
    case 0xce: rc = read_be(c, 4, &x); if (!rc) rc = check_width(x, 0x10000); break;
    case 0xcf: rc = read_be(c, 8, &x); if (!rc) rc = check_width(x, 0x100000000ull); break;
    default:
        if (*tag <= 0x7f) x = *tag;
        else rc = KN_EDECODE;
    }
    if (rc) {
        *c = save;
        return rc;
    }
    *v = x;
    return 0;
}

int kn_r_int(kn_cur *c, int64_t *v)
{
    if (c->left == 0) return KN_EDECODE;
    uint8_t t = c->p[0];
    if (t <= 0x7f || (t >= 0xcc && t <= 0xcf)) {
        uint64_t u;
        int rc = kn_r_uint(c, &u);
        if (rc) return rc;
        if (u > (uint64_t)INT64_MAX) {
            c->p -= 9; /* only the 9-byte form can exceed INT64_MAX */
            c->left += 9;
            return KN_EDECODE;
        }
        *v = (int64_t)u;
        return 0;
    }
    kn_cur save = *c;
    const uint8_t *tag;
    int rc = kn_cur_take(c, 1, &tag);
    if (rc) return rc;
    uint64_t raw = 0;
    int64_t x = 0;
    switch (*tag) {
    case 0xd0: rc = read_be(c, 1, &raw); x = (int8_t)raw; if (!rc && x >= -32) rc = KN_ENONCANON; break;
    case 0xd1: rc = read_be(c, 2, &raw); x = (int16_t)raw; if (!rc && x >= -128) rc = KN_ENONCANON; break;
    case 0xd2: rc = read_be(c, 4, &raw); x = (int32_t)raw; if (!rc && x >= -32768) rc = KN_ENONCANON; break;
    case 0xd3: rc = read_be(c, 8, &raw); x = (int64_t)raw; if (!rc && x >= INT32_MIN) rc = KN_ENONCANON; break;
    default:
        if (*tag >= 0xe0) x = (int8_t)*tag;
        else rc = KN_EDECODE;
    }
    if (rc) {
        *c = save;
        return rc;
    }
    *v = x;
    return 0;
}

int kn_r_bool(kn_cur *c, bool *v)
{
    if (c->left == 0 || (c->p[0] != 0xc2 && c->p[0] != 0xc3)) return KN_EDECODE;
    *v = c->p[0] == 0xc3;
    c->p++;
    c->left--;
    return 0;
}

bool kn_r_nil(kn_cur *c)
{
    if (c->left == 0 || c->p[0] != 0xc0) return false;
    c->p++;
    c->left--;
    return true;
}

/* Shared by arrays, strings and bins: a fix form holding up to fix_max in the tag's
 * low bits, then 8-, 16- and 32-bit length forms (tag8 may be 0 when absent). */
static int read_len(kn_cur *c, uint8_t fix_base, uint8_t fix_mask, uint8_t tag8, uint8_t tag16,
                    uint8_t tag32, uint32_t *n)
{
    kn_cur save = *c;
    const uint8_t *tag;
    int rc = kn_cur_take(c, 1, &tag);
    if (rc) return rc;
    uint64_t x = 0;
    uint64_t fix_limit = fix_mask ? (uint64_t)fix_mask + 1 : 0;
    if (fix_mask && (*tag & ~fix_mask) == fix_base) {
        x = *tag & fix_mask;
    } else if (tag8 && *tag == tag8) {
        rc = read_be(c, 1, &x);
        if (!rc) rc = check_width(x, fix_limit);
    } else if (*tag == tag16) {
        rc = read_be(c, 2, &x);
        if (!rc) rc = check_width(x, tag8 ? 0x100 : fix_limit);
    } else if (*tag == tag32) {
        rc = read_be(c, 4, &x);
        if (!rc) rc = check_width(x, 0x10000);
    } else {
        rc = KN_EDECODE;
    }
    if (rc) {
        *c = save;
        return rc;
    }
    *n = (uint32_t)x;
    return 0;
}

int kn_r_array(kn_cur *c, uint32_t *n)
{
    return read_len(c, 0x90, 0x0f, 0, 0xdc, 0xdd, n);
}

static int read_body(kn_cur *c, kn_cur save, uint32_t n, const uint8_t **p)
{
    int rc = kn_cur_take(c, n, p);
    if (rc) *c = save;
    return rc;
}

int kn_r_bin(kn_cur *c, const uint8_t **p, size_t *n)
{
    kn_cur save = *c;
    uint32_t len;
    int rc = read_len(c, 0, 0, 0xc4, 0xc5, 0xc6, &len);
    if (rc) return rc;
    rc = read_body(c, save, len, p);
    if (!rc) *n = len;
    return rc;
}

int kn_r_bin_fixed(kn_cur *c, uint8_t *out, size_t n)
{
    kn_cur save = *c;
    const uint8_t *p;
    size_t len;
    int rc = kn_r_bin(c, &p, &len);
    if (rc) return rc;
    if (len != n) {
        *c = save;
        return KN_EDECODE;
    }
    memcpy(out, p, n);
    return 0;
}

int kn_r_str(kn_cur *c, const char **s, size_t *n)
{
    kn_cur save = *c;
    uint32_t len;
    int rc = read_len(c, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, &len);
    if (rc) return rc;
    const uint8_t *p;
    rc = read_body(c, save, len, &p);
    if (rc) return rc;
    *s = (const char *)p;
    *n = len;
    return 0;
}

#define SKIP_DEPTH_MAX 16

static int skip_depth(kn_cur *c, int depth)
{
    if (depth > SKIP_DEPTH_MAX || c->left == 0) return KN_EDECODE;
    uint8_t t = c->p[0];
    uint64_t u;
    int64_t i;
    bool b;
    const uint8_t *p;
    size_t n;
    const char *s;
    uint32_t count;
    if (t <= 0x7f || (t >= 0xcc && t <= 0xcf)) return kn_r_uint(c, &u);
    if (t >= 0xe0 || (t >= 0xd0 && t <= 0xd3)) return kn_r_int(c, &i);
    if (t == 0xc0) return kn_r_nil(c) ? 0 : KN_EDECODE;
    if (t == 0xc2 || t == 0xc3) return kn_r_bool(c, &b);
    if (t >= 0xc4 && t <= 0xc6) return kn_r_bin(c, &p, &n);
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) return kn_r_str(c, &s, &n);
    if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
        int rc = kn_r_array(c, &count);
        for (uint32_t k = 0; !rc && k < count; k++) rc = skip_depth(c, depth + 1);
        return rc;
    }
    return KN_EDECODE; /* maps, floats and extensions never appear in Koinon data */
}

int kn_r_skip(kn_cur *c)
{
    kn_cur save = *c;
    int rc = skip_depth(c, 0);
    if (rc) *c = save;
    return rc;
}
