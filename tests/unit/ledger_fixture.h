/* What the ledger unit tests share (test_ledger_rules.c, test_ledger_clearing.c,
 * test_ledger_property.c): a seeded random source, numbers from the
 * environment, a temporary directory, key pairs from fixed seeds, a digest of
 * the ledger state, and executing a block of transactions on top of a chain
 * the way a node does.
 *
 * Everything is static so that each test program keeps its own copy; the
 * functions are inline so that a program which uses only some of them builds
 * without unused-function warnings. The random source is one generator per
 * program: the same seed gives the same run. */
#ifndef KOINON_TESTS_UNIT_LEDGER_FIXTURE_H
#define KOINON_TESTS_UNIT_LEDGER_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/ledger/ledger.h"

/* The most transactions one block of exec_encoded_block() holds. */
#define FIXTURE_BLOCK_TXS_MAX 16

/* ---------------------------------------------------------------- randomness */

/* The state of the splitmix64 generator; a test sets it to its seed. */
static uint64_t rng_state;

static inline uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t rnd(uint64_t n)
{
    return n ? splitmix64() % n : 0;
}

static inline bool chance(unsigned percent)
{
    return rnd(100) < percent;
}

static inline uint64_t rnd_between(uint64_t lo, uint64_t hi)
{
    return lo + rnd(hi - lo + 1);
}

/* ---------------------------------------------------------------- environment */

/* The number in the environment variable name, or fallback when it is unset
 * or empty; anything else fails the test. */
static inline uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 0);
    if (*end) fail_msg("%s=%s is not a number", name, v);
    return n;
}

static inline const char *tmp_root(void)
{
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

/* ---------------------------------------------------------------- keys */

/* Fills pairs[0..n) with keys from fixed seeds: pair i from a seed that
 * starts {i + 1, tag}. The same keys every run, so that a seed reproduces a
 * run; the tag keeps each test's keys apart from another's. */
static inline void fixed_keys(kn_keypair *pairs, int n, uint8_t tag)
{
    for (int i = 0; i < n; i++) {
        uint8_t seed[crypto_sign_SEEDBYTES] = {0};
        seed[0] = (uint8_t)(i + 1);
        seed[1] = tag;
        crypto_sign_seed_keypair(pairs[i].pk, pairs[i].sk, seed);
    }
}

/* ---------------------------------------------------------------- the ledger */

/* A digest of every key and value of the ledger state. */
static inline void state_digest(store_txn *t, uint8_t out[KN_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, KN_HASH_BYTES);
    store_iter *it;
    const uint8_t *k, *v;
    size_t kl, vl;
    assert_int_equal(store_iter_open(t, STORE_STATE, "", 0, NULL, 0, &it), 0);
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        uint64_t lens[2] = {kl, vl};
        crypto_generichash_update(&st, (const uint8_t *)lens, sizeof lens);
        crypto_generichash_update(&st, k, kl);
        crypto_generichash_update(&st, v, vl);
    }
    store_iter_close(it);
    assert_int_equal(store_error(t), 0);
    crypto_generichash_final(&st, out, KN_HASH_BYTES);
}

typedef void executed_fn(store_txn *, const ledger_tx *, uint32_t);
typedef void encode_fn(const ledger_tx *, kn_buf *);

/* Executes one block at time_ms on top of the chain in env: the n txs, whose
 * encodings are bytes, with a one-byte stand-in certificate (execution does
 * not check it). Then the ledger's full audit runs; executed_cb, unless NULL,
 * sees the write transaction and the txs before it commits. The caller keeps
 * txs and bytes. */
static inline void exec_encoded_block(store_env *env, const char *chain_id, uint64_t time_ms,
                                      const ledger_tx *txs, const kn_buf *bytes, uint32_t n,
                                      executed_fn *executed_cb)
{
    store_txn *t;
    ledger_chain ch;
    assert_true(n <= FIXTURE_BLOCK_TXS_MAX);
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_chain_get(t, &ch), 0);
    store_abort(t);
    ledger_header h = {.height = ch.height + 1, .time_ms = time_ms};
    snprintf(h.chain_id, sizeof h.chain_id, "%s", chain_id);
    memcpy(h.prev_id, ch.last_block_id, KN_HASH_BYTES);
    memcpy(h.state_hash, ch.state_hash, KN_HASH_BYTES);
    ledger_slice slices[FIXTURE_BLOCK_TXS_MAX];
    uint8_t ids[FIXTURE_BLOCK_TXS_MAX][KN_HASH_BYTES], block_id[KN_HASH_BYTES];
    for (uint32_t i = 0; i < n; i++) {
        slices[i] = (ledger_slice){bytes[i].data, bytes[i].len};
        memcpy(ids[i], txs[i].id, KN_HASH_BYTES);
    }
    kn_buf block = {0};
    ledger_slice no_cert = {NULL, 0};
    ledger_block_build(&h, slices, (const uint8_t(*)[KN_HASH_BYTES])ids, n, &no_cert, &block,
                       block_id);
    ledger_block_view v;
    assert_int_equal(ledger_block_decode(block.data, block.len, &v), 0);
    static const uint8_t cert[1] = {0xc0};
    assert_int_equal(store_begin(env, true, &t), 0);
    assert_int_equal(ledger_block_execute(t, &v, block.data, block.len, txs, cert, 1), 0);
    ledger_check_invariants(t);
    if (executed_cb) executed_cb(t, txs, n);
    assert_int_equal(store_commit(t), 0);
    ledger_block_view_free(&v);
    kn_buf_free(&block);
}

/* exec_encoded_block() for txs not yet encoded: encode writes each one's
 * bytes (ledger_tx_encode, or a test's own that also checks them). */
static inline void exec_block_with(store_env *env, const char *chain_id, uint64_t time_ms,
                                   const ledger_tx *txs, uint32_t n, encode_fn *encode)
{
    kn_buf bytes[FIXTURE_BLOCK_TXS_MAX] = {{0}};
    assert_true(n <= FIXTURE_BLOCK_TXS_MAX);
    for (uint32_t i = 0; i < n; i++) encode(&txs[i], &bytes[i]);
    exec_encoded_block(env, chain_id, time_ms, txs, bytes, n, NULL);
    for (uint32_t i = 0; i < n; i++) kn_buf_free(&bytes[i]);
}

#endif
