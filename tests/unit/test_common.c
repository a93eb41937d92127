/* Canonical encoding and signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"

static void roundtrip_uints(void **state)
{
    static const uint64_t values[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
                                      0xffffffffull, 0x100000000ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        kn_buf b = {0};
        kn_w_uint(&b, values[i]);
        kn_cur c = kn_cur_make(b.data, b.len);
        uint64_t v;
        assert_int_equal(kn_r_uint(&c, &v), 0);
        assert_true(v == values[i]);
        assert_int_equal(c.left, 0);
        kn_buf_free(&b);
    }
}

static void roundtrip_ints(void **state)
{
    static const int64_t values[] = {0, -1, -32, -33, -128, -129, -32768, -32769,
                                     INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        kn_buf b = {0};
        kn_w_int(&b, values[i]);
        kn_cur c = kn_cur_make(b.data, b.len);
        int64_t v;
        assert_int_equal(kn_r_int(&c, &v), 0);
        assert_true(v == values[i]);
        assert_int_equal(c.left, 0);
        kn_buf_free(&b);
    }
}

static void rejects_long_forms(void **state)
{
    /* 5 as uint8, 200 as uint16, -1 as int8, a 3-element array as array16,
     * a 1-byte string as str8: each has a shorter form, so each is refused. */
    static const uint8_t u8_small[] = {0xcc, 0x05};
    static const uint8_t u16_small[] = {0xcd, 0x00, 0xc8};
    static const uint8_t i8_small[] = {0xd0, 0xff};
    static const uint8_t arr16_small[] = {0xdc, 0x00, 0x03};
    static const uint8_t str8_small[] = {0xd9, 0x01, 'a'};
    uint64_t u;
    int64_t i;
    uint32_t n;
    const char *s;
    size_t sl;
    kn_cur c = kn_cur_make(u8_small, sizeof u8_small);
    assert_int_equal(kn_r_uint(&c, &u), KN_ENONCANON);
    assert_int_equal(c.left, sizeof u8_small); /* cursor unmoved */
    c = kn_cur_make(u16_small, sizeof u16_small);
    assert_int_equal(kn_r_uint(&c, &u), KN_ENONCANON);
    c = kn_cur_make(i8_small, sizeof i8_small);
    assert_int_equal(kn_r_int(&c, &i), KN_ENONCANON);
    c = kn_cur_make(arr16_small, sizeof arr16_small);
    assert_int_equal(kn_r_array(&c, &n), KN_ENONCANON);
    c = kn_cur_make(str8_small, sizeof str8_small);
    assert_int_equal(kn_r_str(&c, &s, &sl), KN_ENONCANON);
}

static void rejects_truncation(void **state)
{
    static const uint8_t bin_short[] = {0xc4, 0x05, 1, 2};
    const uint8_t *p;
    size_t n;
    kn_cur c = kn_cur_make(bin_short, sizeof bin_short);
    assert_int_equal(kn_r_bin(&c, &p, &n), KN_EDECODE);
    assert_int_equal(c.left, sizeof bin_short);
}

static void signature_binds_everything(void **state)
{
    kn_keypair kp, other;
    kn_keypair_generate(&kp);
    kn_keypair_generate(&other);
    uint8_t msg[40], sig[KN_SIG_BYTES];
    memset(msg, 7, sizeof msg);
    kn_sign(sig, &kp, KN_DOMAIN_TX, "chain-a", msg, sizeof msg);
    assert_int_equal(kn_verify(sig, kp.pk, KN_DOMAIN_TX, "chain-a", msg, sizeof msg), 0);
    assert_int_equal(kn_verify(sig, kp.pk, KN_DOMAIN_TX, "chain-b", msg, sizeof msg), KN_EBADSIG);
    assert_int_equal(kn_verify(sig, kp.pk, KN_DOMAIN_VOTE, "chain-a", msg, sizeof msg),
                     KN_EBADSIG);
    assert_int_equal(kn_verify(sig, other.pk, KN_DOMAIN_TX, "chain-a", msg, sizeof msg),
                     KN_EBADSIG);
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] ^= 1;
        assert_int_equal(kn_verify(sig, kp.pk, KN_DOMAIN_TX, "chain-a", msg, sizeof msg),
                         KN_EBADSIG);
        msg[i] ^= 1;
    }
    for (size_t i = 0; i < sizeof sig; i++) {
        sig[i] ^= 0x80;
        assert_int_equal(kn_verify(sig, kp.pk, KN_DOMAIN_TX, "chain-a", msg, sizeof msg),
                         KN_EBADSIG);
        sig[i] ^= 0x80;
    }
}

static void error_names_roundtrip(void **state)
{
    assert_string_equal(kn_errname(KN_EOVERDRAFT), "insufficient_funds");
    assert_int_equal(kn_errcode("insufficient_funds"), KN_EOVERDRAFT);
    assert_int_equal(kn_errcode("no_such_error"), 0);
    assert_string_equal(kn_strerror(KN_EBUSY), "resource is busy, retry later");
}

static void keyfile_roundtrip(void **state)
{
    char dir[] = "/tmp/koinon-key-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/k.json", dir);
    kn_keypair kp, back;
    kn_keypair_generate(&kp);
    assert_int_equal(kn_keyfile_write(path, &kp), 0);
    assert_int_equal(kn_keyfile_write(path, &kp), KN_EIO); /* never overwrites */
    assert_int_equal(kn_keyfile_read(path, &back), 0);
    assert_memory_equal(kp.pk, back.pk, KN_PK_BYTES);
    assert_memory_equal(kp.sk, back.sk, KN_SK_BYTES);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unlink(path);
    rmdir(dir);
}

static void log_module_switches(void **state)
{
    assert_int_equal(kn_log_modules("net=debug,cons=warn"), 0);
    assert_int_equal(kn_log_modules(""), 0);
    static const char *const bad[] = {"net", "net=loud", "=debug", "net=debug,", "net=debug,,cons=warn",
                                      "averyveryverylongmodulename=debug"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kn_log_modules(bad[i]) != KN_EINVAL) fail_msg("accepted \"%s\"", bad[i]);
    enum kn_log_level level;
    assert_int_equal(kn_log_level_parse("warn", 4, &level), 0);
    assert_int_equal(level, KN_LOG_WARN);
    assert_int_equal(kn_log_level_parse("warning", 7, &level), KN_EINVAL);
}

/* One JSON object per line, with the caller's pairs as members. */
static void log_lines_are_json(void **state)
{
    char path[] = "/tmp/koinon-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    kn_log_setup(KN_LOG_INFO, true);
    KN_WARN("cons", "round change", "height=%d reason=\"%s\" waiting_for=%s", 7,
            "no proposal in time", "athens");
    KN_DEBUG("cons", "hidden", "x=%d", 1); /* below the level: not written */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    kn_log_setup(KN_LOG_INFO, false);

    json_error_t err;
    json_t *line = json_load_file(path, JSON_DISABLE_EOF_CHECK, &err);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(line, "mod")), "cons");
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "round change");
    assert_string_equal(json_string_value(json_object_get(line, "height")), "7");
    assert_string_equal(json_string_value(json_object_get(line, "reason")), "no proposal in time");
    assert_string_equal(json_string_value(json_object_get(line, "waiting_for")), "athens");
    json_decref(line);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    char text[1024] = {0};
    FILE *f = fopen(path, "r");
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strchr(text, '\n'));
    assert_null(strchr(strchr(text, '\n') + 1, '\n')); /* exactly one line */
    unlink(path);
}

int main(void)
{
    if (kn_crypto_init()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_uints),      cmocka_unit_test(roundtrip_ints),
        cmocka_unit_test(rejects_long_forms),   cmocka_unit_test(rejects_truncation),
        cmocka_unit_test(signature_binds_everything), cmocka_unit_test(error_names_roundtrip),
        cmocka_unit_test(keyfile_roundtrip),     cmocka_unit_test(log_module_switches),
        cmocka_unit_test(log_lines_are_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
