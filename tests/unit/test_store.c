/* The LMDB store: operations, iterators, the sticky error, child transactions
 * and all-or-nothing commits that survive a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define MAP_BYTES (64ull << 20)

typedef struct fixture {
    char dir[64];
    store_env *env;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/koinon-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, MAP_BYTES, &f->env), 0);
    *state = f;
    return 0;
}

static void remove_dir(const char *dir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[128];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        (void)unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->env);
    remove_dir(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    store_close(f->env);
    assert_int_equal(store_open(f->dir, MAP_BYTES, &f->env), 0);
}

static void put_str(store_txn *t, enum store_table tab, const char *k, const char *v)
{
    assert_int_equal(store_put(t, tab, k, strlen(k), v, strlen(v)), 0);
}

/* Asserts key k holds v (or is absent when v is NULL) in a fresh read txn. */
static void expect(store_env *env, enum store_table tab, const char *k, const char *v)
{
    store_txn *t;
    const uint8_t *p;
    size_t n;
    assert_int_equal(store_begin(env, false, &t), 0);
    int rc = store_get(t, tab, k, strlen(k), &p, &n);
    if (!v) {
        assert_int_equal(rc, KN_ENOTFOUND);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(n, strlen(v));
        assert_memory_equal(p, v, n);
    }
    store_abort(t);
}

static void put_get_del(void **state)
{
    fixture *f = *state;
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    put_str(t, STORE_META, "a", "1");
    put_str(t, STORE_STATE, "a", "2"); /* tables are separate key spaces */
    put_str(t, STORE_META, "b", "3");
    assert_int_equal(store_del(t, STORE_META, "b", 1), 0);
    assert_int_equal(store_del(t, STORE_META, "zz", 2), 0); /* absent: not an error */
    const uint8_t *p;
    size_t n;
    assert_int_equal(store_get(t, STORE_META, "b", 1, &p, &n), KN_ENOTFOUND);
    assert_int_equal(store_error(t), 0); /* absence is not sticky */
    assert_int_equal(store_commit(t), 0);
    expect(f->env, STORE_META, "a", "1");
    expect(f->env, STORE_STATE, "a", "2");
    expect(f->env, STORE_META, "b", NULL);
    assert_true(store_used_bytes(f->env) > 0);
}

static void read_txn_rejects_writes(void **state)
{
    fixture *f = *state;
    store_txn *t;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(store_put(t, STORE_META, "a", 1, "1", 1), KN_EINVAL);
    assert_int_equal(store_error(t), KN_EINVAL);
    store_abort(t);
    expect(f->env, STORE_META, "a", NULL);
}

typedef struct seen {
    int n;
    char keys[16][16];
} seen;

static void collect(store_txn *t, const char *prefix, const char *start, seen *s)
{
    store_iter *it;
    const uint8_t *k, *v;
    size_t kl, vl;
    memset(s, 0, sizeof *s);
    assert_int_equal(store_iter_open(t, STORE_STATE, prefix, strlen(prefix), start,
                                     start ? strlen(start) : 0, &it),
                     0);
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        assert_true(s->n < 16 && kl < 16);
        memcpy(s->keys[s->n++], k, kl);
    }
    store_iter_close(it);
    assert_int_equal(store_error(t), 0);
}

static void iterate_prefix_and_start(void **state)
{
    fixture *f = *state;
    static const char *const keys[] = {"a", "b1", "b2", "b3", "ba", "c", "bz"};
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    for (size_t i = 0; i < 7; i++) put_str(t, STORE_STATE, keys[i], "x");
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->env, false, &t), 0);
    seen s;
    collect(t, "b", NULL, &s);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.keys[0], "b1");
    assert_string_equal(s.keys[4], "bz");
    collect(t, "b", "b2", &s); /* start inside the prefix */
    assert_int_equal(s.n, 4);
    assert_string_equal(s.keys[0], "b2");
    collect(t, "b", "a", &s); /* start below the prefix: the prefix wins */
    assert_int_equal(s.n, 5);
    collect(t, "b", "bzz", &s); /* start past the prefix: nothing */
    assert_int_equal(s.n, 0);
    collect(t, "", NULL, &s); /* everything, in key order */
    assert_int_equal(s.n, 7);
    assert_string_equal(s.keys[0], "a");
    assert_string_equal(s.keys[6], "c");
    collect(t, "d", NULL, &s);
    assert_int_equal(s.n, 0);
    store_abort(t);
}

static void sticky_error_poisons_commit(void **state)
{
    fixture *f = *state;
    uint8_t big[STORE_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    put_str(t, STORE_META, "before", "1");
    assert_int_equal(store_put(t, STORE_META, big, sizeof big, "v", 1), KN_ETOOBIG);
    assert_int_equal(store_error(t), KN_ETOOBIG);
    /* Every later operation returns the first error, reads included. */
    assert_int_equal(store_put(t, STORE_META, "after", 5, "2", 1), KN_ETOOBIG);
    const uint8_t *p;
    size_t n;
    assert_int_equal(store_get(t, STORE_META, "before", 6, &p, &n), KN_ETOOBIG);
    assert_int_equal(store_commit(t), KN_ETOOBIG);
    reopen(f);
    expect(f->env, STORE_META, "before", NULL);
    expect(f->env, STORE_META, "after", NULL);
}

static void child_abort_undoes_only_child(void **state)
{
    fixture *f = *state;
    store_txn *t, *c;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    put_str(t, STORE_STATE, "parent", "1");
    assert_int_equal(store_begin_child(t, &c), 0);
    put_str(c, STORE_STATE, "child", "2");
    put_str(c, STORE_STATE, "parent", "changed");
    store_abort(c);
    assert_int_equal(store_begin_child(t, &c), 0);
    put_str(c, STORE_STATE, "kept", "3");
    assert_int_equal(store_commit(c), 0);
    /* A child's sticky error stays in the child. */
    assert_int_equal(store_begin_child(t, &c), 0);
    assert_int_equal(store_put(c, STORE_STATE, "", 0, "v", 1), KN_EINVAL);
    assert_int_equal(store_commit(c), KN_EINVAL);
    assert_int_equal(store_error(t), 0);
    assert_int_equal(store_commit(t), 0);
    expect(f->env, STORE_STATE, "parent", "1");
    expect(f->env, STORE_STATE, "child", NULL);
    expect(f->env, STORE_STATE, "kept", "3");
}

static void write_block(store_txn *t, uint64_t height)
{
    uint8_t key[8];
    store_height_key(key, height);
    assert_int_equal(store_put(t, STORE_BLOCKS, key, 8, "block", 5), 0);
    assert_int_equal(store_put(t, STORE_CERTS, key, 8, "cert", 4), 0);
    put_str(t, STORE_STATE, "balance", "10");
    put_str(t, STORE_META, "chain", "h1");
}

static void expect_block(store_env *env, uint64_t height, bool present)
{
    uint8_t key[8];
    store_height_key(key, height);
    store_txn *t;
    const uint8_t *p;
    size_t n;
    int want = present ? 0 : KN_ENOTFOUND;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(store_get(t, STORE_BLOCKS, key, 8, &p, &n), want);
    assert_int_equal(store_get(t, STORE_CERTS, key, 8, &p, &n), want);
    store_abort(t);
    expect(env, STORE_STATE, "balance", present ? "10" : NULL);
    expect(env, STORE_META, "chain", present ? "h1" : NULL);
}

static void block_and_state_land_together(void **state)
{
    fixture *f = *state;
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    write_block(t, 1);
    store_abort(t);
    expect_block(f->env, 1, false);
    assert_int_equal(store_begin(f->env, true, &t), 0);
    write_block(t, 1);
    /* A reader opened beside the writer sees the last committed state. */
    store_txn *r;
    const uint8_t *p;
    size_t n;
    assert_int_equal(store_begin(f->env, false, &r), 0);
    assert_int_equal(store_get(r, STORE_STATE, "balance", 7, &p, &n), KN_ENOTFOUND);
    store_abort(r);
    assert_int_equal(store_commit(t), 0);
    reopen(f);
    expect_block(f->env, 1, true);
}

static void iterator_outliving_its_txn(void **state)
{
    fixture *f = *state;
    store_txn *t;
    store_iter *a, *b;
    const uint8_t *k, *v;
    size_t kl, vl;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    put_str(t, STORE_STATE, "k1", "1");
    put_str(t, STORE_STATE, "k2", "2");
    assert_int_equal(store_iter_open(t, STORE_STATE, "k", 1, NULL, 0, &a), 0);
    assert_int_equal(store_iter_open(t, STORE_STATE, "k", 1, NULL, 0, &b), 0);
    assert_true(store_iter_next(a, &k, &kl, &v, &vl));
    store_iter_close(b); /* closing one leaves the other usable */
    assert_true(store_iter_next(a, &k, &kl, &v, &vl));
    assert_memory_equal(k, "k2", 2);
    assert_int_equal(store_commit(t), 0);
    assert_false(store_iter_next(a, &k, &kl, &v, &vl));
    store_iter_close(a);
    expect(f->env, STORE_STATE, "k2", "2");
}

static void height_keys_sort_by_height(void **state)
{
    uint8_t a[8], b[8];
    store_height_key(a, 255);
    store_height_key(b, 256);
    assert_true(memcmp(a, b, 8) < 0);
    store_height_key(a, 0x0102030405060708ull);
    static const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(a, want, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(put_get_del, setup, teardown),
        cmocka_unit_test_setup_teardown(read_txn_rejects_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(iterate_prefix_and_start, setup, teardown),
        cmocka_unit_test_setup_teardown(sticky_error_poisons_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(child_abort_undoes_only_child, setup, teardown),
        cmocka_unit_test_setup_teardown(block_and_state_land_together, setup, teardown),
        cmocka_unit_test_setup_teardown(iterator_outliving_its_txn, setup, teardown),
        cmocka_unit_test(height_keys_sort_by_height),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
