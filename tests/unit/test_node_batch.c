/* The envelope of POST /v1/txs/batch: what node__batch_check accepts (an
 * array of bin and nothing else) and what it refuses, with the exact error,
 * before any transaction of the batch is looked at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "node/internal.h"

/* An array of n bins of len bytes each. */
static void batch_of(kn_buf *b, uint32_t n, size_t len)
{
    static const uint8_t zeros[300];
    kn_buf_reset(b);
    kn_w_array(b, n);
    for (uint32_t i = 0; i < n; i++) kn_w_bin(b, zeros, len);
}

static void accepts_arrays_of_bin(void **state)
{
    kn_buf b = {0};
    uint32_t count = 99;
    batch_of(&b, 0, 0);
    assert_int_equal(node__batch_check(b.data, b.len, 10, &count), 0);
    assert_int_equal(count, 0);
    batch_of(&b, 3, 300); /* bin 16 lengths */
    assert_int_equal(node__batch_check(b.data, b.len, 10, &count), 0);
    assert_int_equal(count, 3);
    batch_of(&b, 10, 1); /* exactly the limit */
    assert_int_equal(node__batch_check(b.data, b.len, 10, &count), 0);
    assert_int_equal(count, 10);
    batch_of(&b, 17, 0); /* array 16 header */
    assert_int_equal(node__batch_check(b.data, b.len, 17, &count), 0);
    assert_int_equal(count, 17);
    kn_buf_free(&b);
}

static void refuses_too_many_from_the_header(void **state)
{
    kn_buf b = {0};
    uint32_t count = 99;
    batch_of(&b, 11, 1);
    assert_int_equal(node__batch_check(b.data, b.len, 10, &count), KN_ETOOBIG);
    assert_int_equal(count, 99); /* untouched on failure */
    /* A header that announces a million elements is refused without reading on. */
    const uint8_t huge[] = {0xdd, 0x00, 0x0f, 0x42, 0x40};
    assert_int_equal(node__batch_check(huge, sizeof huge, NODE_BATCH_TXS_MAX, &count), KN_ETOOBIG);
    kn_buf_free(&b);
}

static void refuses_everything_else_as_malformed(void **state)
{
    kn_buf b = {0};
    uint32_t count = 99;
    assert_int_equal(node__batch_check(NULL, 0, 10, &count), KN_EDECODE); /* empty body */
    const uint8_t bin_alone[] = {0xc4, 0x01, 0x00};
    assert_int_equal(node__batch_check(bin_alone, sizeof bin_alone, 10, &count), KN_EDECODE);
    const uint8_t str_element[] = {0x91, 0xa1, 'x'};
    assert_int_equal(node__batch_check(str_element, sizeof str_element, 10, &count), KN_EDECODE);
    const uint8_t nested[] = {0x91, 0x91, 0xc4, 0x00};
    assert_int_equal(node__batch_check(nested, sizeof nested, 10, &count), KN_EDECODE);
    const uint8_t short_array[] = {0x92, 0xc4, 0x00}; /* two announced, one there */
    assert_int_equal(node__batch_check(short_array, sizeof short_array, 10, &count), KN_EDECODE);
    const uint8_t truncated_bin[] = {0x91, 0xc4, 0x05, 0x00};
    assert_int_equal(node__batch_check(truncated_bin, sizeof truncated_bin, 10, &count),
                     KN_EDECODE);
    const uint8_t long_header[] = {0xdc, 0x00, 0x01, 0xc4, 0x00}; /* array 16 for one */
    assert_int_equal(node__batch_check(long_header, sizeof long_header, 10, &count), KN_EDECODE);
    const uint8_t long_bin[] = {0x91, 0xc5, 0x00, 0x01, 0x00}; /* bin 16 for one byte */
    assert_int_equal(node__batch_check(long_bin, sizeof long_bin, 10, &count), KN_EDECODE);
    batch_of(&b, 2, 4);
    kn_w_nil(&b); /* a trailing byte */
    assert_int_equal(node__batch_check(b.data, b.len, 10, &count), KN_EDECODE);
    assert_int_equal(count, 99);
    kn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_arrays_of_bin),
        cmocka_unit_test(refuses_too_many_from_the_header),
        cmocka_unit_test(refuses_everything_else_as_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
