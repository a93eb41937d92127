/*
 * Block execution: applies a decided block's transactions, records their
 * results, stores the block and its certificate, advances the chain metadata,
 * and computes the state hash every validator must agree on. Also the supply
 * checks: per block for the currencies it touched, and the full scan.
 *
 * The state hash is a running BLAKE2b over the previous state hash, the block
 * id and every write the block makes to STORE_STATE and STORE_TXS, in order
 * (internal.h gives the exact bytes). All writes of the rules go through
 * ledger__put(), so nothing can change state without changing the hash, and a
 * rejected transaction (which writes nothing but its record) leaves only its
 * record in the hash.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define MOD "ledger"
#define RECORD_FIELDS 3

static void hash_len(crypto_generichash_state *h, size_t n)
{
    uint8_t be[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    crypto_generichash_update(h, be, sizeof be);
}

int ledger__put(store_txn *t, ledger__exec *ex, enum store_table tab, const void *key,
                size_t klen, const void *val, size_t vlen)
{
    int rc = store_put(t, tab, key, klen, val, vlen);
    if (rc || !ex) return rc;
    KN_REQUIRE(tab == STORE_STATE || tab == STORE_TXS);
    uint8_t table = (uint8_t)tab;
    crypto_generichash_update(&ex->hash, &table, 1);
    hash_len(&ex->hash, klen);
    crypto_generichash_update(&ex->hash, key, klen);
    hash_len(&ex->hash, vlen);
    crypto_generichash_update(&ex->hash, val, vlen);
    return 0;
}

static void exec_init(ledger__exec *ex, const ledger_chain *ch,
                      const uint8_t block_id[KN_HASH_BYTES])
{
    static const uint8_t zero = 0;
    crypto_generichash_init(&ex->hash, NULL, 0, KN_HASH_BYTES);
    crypto_generichash_update(&ex->hash, (const uint8_t *)KN_DOMAIN_STATE,
                              strlen(KN_DOMAIN_STATE));
    crypto_generichash_update(&ex->hash, &zero, 1);
    crypto_generichash_update(&ex->hash, ch->state_hash, KN_HASH_BYTES);
    crypto_generichash_update(&ex->hash, block_id, KN_HASH_BYTES);
}

/* [height, index, result]: written once per transaction id, ever. */
static int record(store_txn *t, ledger__exec *ex, const uint8_t id[KN_HASH_BYTES],
                  uint64_t height, uint32_t index, int result)
{
    kn_buf b = {0};
    kn_w_array(&b, RECORD_FIELDS);
    kn_w_uint(&b, height);
    kn_w_uint(&b, index);
    kn_w_int(&b, result);
    int rc = ledger__put(t, ex, STORE_TXS, id, KN_HASH_BYTES, b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

static int execute_tx(store_txn *t, ledger__exec *ex, const ledger_tx *tx, uint64_t height,
                      uint32_t index, uint64_t time_ms)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_TXS, tx->id, KN_HASH_BYTES, &p, &n);
    if (rc == 0) return 0; /* committed before: never applied twice, record kept */
    if (rc != KN_ENOTFOUND) return rc;
    int result = ledger__tx_apply(t, ex, tx, height, index, time_ms);
    /* Rule failures are results to record; a store failure ends the block. */
    if (store_error(t)) return store_error(t);
    KN_REQUIRE(result != KN_EDUPTX);
    return record(t, ex, tx->id, height, index, result);
}

static int store_block(store_txn *t, uint64_t height, const uint8_t *block, size_t block_len,
                       const uint8_t *cert, size_t cert_len)
{
    uint8_t key[8];
    store_height_key(key, height);
    int rc = store_put(t, STORE_BLOCKS, key, sizeof key, block, block_len);
    if (!rc && cert_len) rc = store_put(t, STORE_CERTS, key, sizeof key, cert, cert_len);
    return rc;
}

int ledger_block_execute(store_txn *t, const ledger_block_view *v, const uint8_t *block_bytes,
                         size_t block_len, const ledger_tx *txs, const uint8_t *cert_bytes,
                         size_t cert_len)
{
    ledger_chain ch;
    int rc = ledger_chain_get(t, &ch);
    if (rc) return rc;
    /* A decided block that does not extend our tip, or that disagrees with our
     * state, means this node diverged from the others: stop, do not fork. */
    KN_REQUIRE(v->hdr.height == ch.height + 1);
    KN_REQUIRE(memcmp(v->hdr.prev_id, ch.last_block_id, KN_HASH_BYTES) == 0);
    KN_REQUIRE(memcmp(v->hdr.state_hash, ch.state_hash, KN_HASH_BYTES) == 0);
    ledger__exec ex;
    exec_init(&ex, &ch, v->block_id);
    for (uint32_t i = 0; i < v->hdr.n_txs && !rc; i++)
        rc = execute_tx(t, &ex, &txs[i], v->hdr.height, i, v->hdr.time_ms);
    if (!rc) rc = store_block(t, v->hdr.height, block_bytes, block_len, cert_bytes, cert_len);
    if (rc) return rc;
    ch.height = v->hdr.height;
    memcpy(ch.last_block_id, v->block_id, KN_HASH_BYTES);
    crypto_generichash_final(&ex.hash, ch.state_hash, KN_HASH_BYTES);
    ch.last_time_ms = v->hdr.time_ms;
    memset(ch.last_cert_hash, 0, KN_HASH_BYTES);
    if (cert_len) kn_hash(ch.last_cert_hash, KN_DOMAIN_BLOCK, cert_bytes, cert_len);
    rc = ledger__chain_put(t, &ch);
    return rc ? rc : store_error(t);
}

