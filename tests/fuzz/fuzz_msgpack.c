/*
 * fuzz_msgpack: the strict msgpack reader (kn_r_* in common/common.h) over
 * arbitrary bytes.
 *
 * Properties:
 *  - a failed read returns KN_EDECODE or KN_ENONCANON and leaves the cursor
 *    where it was;
 *  - a successful typed read, written back with the matching kn_w_* writer,
 *    gives exactly the bytes it consumed (the reader accepts only the
 *    canonical form, which is the form the writer emits);
 *  - kn_r_int and kn_r_uint agree on non-negative values;
 *  - kn_r_skip accepts exactly the values that the typed readers accept (up
 *    to its nesting depth), and the whole value re-encodes to the bytes it
 *    skipped.
 */
#include <string.h>

#include "tests/fuzz/fuzz.h"

/* kn_r_skip's nesting limit (SKIP_DEPTH_MAX in common/msgpack.c): the top
 * value is depth 0, and a value deeper than this is refused. */
#define SKIP_DEPTH 16
/* How deep the re-encoder below follows arrays before it gives up. */
#define NEST_MAX 64
/* Offsets at which every typed reader is tried; past them only the walk runs,
 * which keeps long inputs linear. */
#define TYPED_OFFSETS_MAX 256

static bool same_cur(kn_cur a, kn_cur b)
{
    return a.p == b.p && a.left == b.left;
}

static size_t consumed(kn_cur before, kn_cur after)
{
    FUZZ_CHECK(after.left <= before.left);
    FUZZ_CHECK(after.p == before.p + (before.left - after.left));
    return before.left - after.left;
}

/* After one read from `before`: on error the cursor is unmoved and the code is
 * a reader's; on success the bytes consumed equal the writer's bytes in w. */
static void check_read(kn_cur before, kn_cur after, int rc, const kn_buf *w)
{
    if (rc) {
        FUZZ_CHECK(rc == KN_EDECODE || rc == KN_ENONCANON);
        FUZZ_CHECK(same_cur(before, after));
        return;
    }
    size_t n = consumed(before, after);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(w->len == n);
    FUZZ_CHECK(memcmp(w->data, before.p, n) == 0);
}

static void check_ints(kn_cur at, kn_buf *w)
{
    uint64_t u = 0;
    int64_t i = 0;
    kn_cur cu = at, ci = at;
    int rc_u = kn_r_uint(&cu, &u);
    kn_buf_reset(w);
    if (!rc_u) kn_w_uint(w, u);
    check_read(at, cu, rc_u, w);

    int rc_i = kn_r_int(&ci, &i);
    kn_buf_reset(w);
    if (!rc_i) kn_w_int(w, i);
    check_read(at, ci, rc_i, w);

    /* One number, two readers: they must agree wherever both can hold it. */
    if (!rc_u && u <= (uint64_t)INT64_MAX) {
        FUZZ_CHECK(rc_i == 0 && (uint64_t)i == u && same_cur(cu, ci));
    }
    if (!rc_i && i >= 0) FUZZ_CHECK(rc_u == 0 && (uint64_t)i == u && same_cur(cu, ci));
}

static void check_scalars(kn_cur at, kn_buf *w)
{
    bool v = false;
    kn_cur c = at;
    int rc = kn_r_bool(&c, &v);
    kn_buf_reset(w);
    if (!rc) kn_w_bool(w, v);
    check_read(at, c, rc, w);

    c = at;
    bool nil = kn_r_nil(&c);
    kn_buf_reset(w);
    if (nil) kn_w_nil(w);
    check_read(at, c, nil ? 0 : KN_EDECODE, w);

    uint32_t count = 0;
    c = at;
    rc = kn_r_array(&c, &count);
    kn_buf_reset(w);
    if (!rc) kn_w_array(w, count);
    check_read(at, c, rc, w);
}

static void check_bytes(kn_cur at, kn_buf *w)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    kn_cur c = at;
    int rc = kn_r_bin(&c, &p, &n);
    kn_buf_reset(w);
    if (!rc) {
        FUZZ_CHECK(p + n == c.p); /* the body is borrowed from the input, just before c */
        kn_w_bin(w, p, n);
    }
    check_read(at, c, rc, w);

    uint8_t fixed[KN_HASH_BYTES];
    kn_cur cf = at;
    int rc_f = kn_r_bin_fixed(&cf, fixed, sizeof fixed);
    kn_buf_reset(w);
    if (!rc_f) kn_w_bin(w, fixed, sizeof fixed);
    check_read(at, cf, rc_f, w);
    FUZZ_CHECK(!rc_f == (!rc && n == sizeof fixed));

    const char *s = NULL;
    c = at;
    rc = kn_r_str(&c, &s, &n);
    kn_buf_reset(w);
    if (!rc) {
        FUZZ_CHECK((const uint8_t *)s + n == c.p);
        kn_w_str(w, s, n);
    }
    check_read(at, c, rc, w);
}

/* Decodes one value with the typed readers and writes it back into out.
 * *depth_max is the deepest level reached. */
static int reencode(kn_cur *c, kn_buf *out, int depth, int *depth_max)
{
    if (depth > NEST_MAX || c->left == 0) return KN_EDECODE;
    if (depth > *depth_max) *depth_max = depth;
    uint8_t t = c->p[0];
    int rc;
    if (t <= 0x7f || (t >= 0xcc && t <= 0xcf)) {
        uint64_t u;
        if (!(rc = kn_r_uint(c, &u))) kn_w_uint(out, u);
    } else if (t >= 0xe0 || (t >= 0xd0 && t <= 0xd3)) {
        int64_t i;
        if (!(rc = kn_r_int(c, &i))) kn_w_int(out, i);
    } else if (t == 0xc0) {
        rc = kn_r_nil(c) ? 0 : KN_EDECODE;
        if (!rc) kn_w_nil(out);
    } else if (t == 0xc2 || t == 0xc3) {
        bool b;
        if (!(rc = kn_r_bool(c, &b))) kn_w_bool(out, b);
    } else if (t >= 0xc4 && t <= 0xc6) {
        const uint8_t *p;
        size_t n;
        if (!(rc = kn_r_bin(c, &p, &n))) kn_w_bin(out, p, n);
    } else if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) {
        const char *s;
        size_t n;
        if (!(rc = kn_r_str(c, &s, &n))) kn_w_str(out, s, n);
    } else if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
        uint32_t count;
        if (!(rc = kn_r_array(c, &count))) kn_w_array(out, count);
        for (uint32_t k = 0; !rc && k < count; k++) rc = reencode(c, out, depth + 1, depth_max);
    } else {
        rc = KN_EDECODE; /* maps, floats, extensions and 0xc1 */
    }
    return rc;
}

/* kn_r_skip at `at` against the re-encoder. Returns the cursor after the value
 * (unchanged when skip refused it). */
static kn_cur check_skip(kn_cur at, kn_buf *w)
{
    kn_cur s = at, r = at;
    int rc_skip = kn_r_skip(&s);
    int depth_max = 0;
    kn_buf_reset(w);
    int rc_re = reencode(&r, w, 0, &depth_max);
    if (rc_skip) {
        FUZZ_CHECK(rc_skip == KN_EDECODE || rc_skip == KN_ENONCANON);
        FUZZ_CHECK(same_cur(at, s));
        /* Refused only for a bad value or one nested past the skip depth. */
        FUZZ_CHECK(rc_re != 0 || depth_max > SKIP_DEPTH);
        return at;
    }
    FUZZ_CHECK(rc_re == 0 && depth_max <= SKIP_DEPTH);
    FUZZ_CHECK(same_cur(s, r));
    check_read(at, s, 0, w);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kn_buf w;
    fuzz_init();
    kn_cur all = kn_cur_make(data, size);
    for (size_t off = 0; off <= size && off < TYPED_OFFSETS_MAX; off++) {
        kn_cur at = kn_cur_make(data + off, size - off);
        check_ints(at, &w);
        check_scalars(at, &w);
        check_bytes(at, &w);
    }
    /* Walk the input as a sequence of values, as a decoder of a stream would. */
    kn_cur c = all;
    while (c.left) {
        kn_cur next = check_skip(c, &w);
        if (same_cur(next, c)) break;
        c = next;
    }
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_all_encodings(add, ctx);
}
