/*
 * Ledger state: the key layout (documented in internal.h), the read side of
 * the public API, chain metadata, the genesis, the consensus safety state and
 * the full invariant scan.
 *
 * Records here were written by this module; one that no longer decodes means
 * the store is corrupt, which is a broken invariant and aborts rather than
 * letting a validator carry on from state it cannot read.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define CURRENCY_VERSION 1
#define CURRENCY_FIELDS 7
#define CHAIN_FIELDS 5
#define SAFETY_FIELDS 7
#define RECORD_FIELDS 3
#define GENESIS_VERSION 1

static const char KEY_CHAIN[] = "chain";
static const char KEY_GENESIS[] = "genesis";
static const char KEY_SAFETY[] = "safety";

/* ---------------------------------------------------------------- keys */

static size_t code_key(uint8_t key[LEDGER__KEY_MAX], char tag, const char *code)
{
    size_t n = strlen(code);
    KN_REQUIRE(n >= 1 && n <= LEDGER_CODE_MAX);
    key[0] = (uint8_t)tag;
    memcpy(key + 1, code, n);
    return 1 + n;
}

size_t ledger__key_currency(uint8_t key[LEDGER__KEY_MAX], const char *code)
{
    return code_key(key, 'c', code);
}

size_t ledger__key_issuing(uint8_t key[LEDGER__KEY_MAX], const char *code)
{
    return code_key(key, 'i', code);
}

size_t ledger__key_holders(uint8_t key[LEDGER__KEY_MAX], const char *code)
{
    return code_key(key, 'h', code);
}

size_t ledger__key_holder_count(uint8_t key[LEDGER__KEY_MAX], const char *code)
{
    return code_key(key, 'n', code);
}

size_t ledger__key_balance(uint8_t key[LEDGER__KEY_MAX], const uint8_t pk[KN_PK_BYTES],
                           const char *code)
{
    size_t n = strlen(code);
    KN_REQUIRE(n >= 1 && n <= LEDGER_CODE_MAX);
    key[0] = 'b';
    memcpy(key + 1, pk, KN_PK_BYTES);
    memcpy(key + 1 + KN_PK_BYTES, code, n);
    return 1 + KN_PK_BYTES + n;
}

static int decode_amount(const uint8_t *p, size_t n, int64_t *out)
{
    kn_cur c = kn_cur_make(p, n);
    int rc = kn_r_int(&c, out);
    return rc ? rc : (c.left ? KN_EDECODE : 0);
}

int ledger__get_amount(store_txn *t, const uint8_t *key, size_t klen, int64_t *out)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, key, klen, &p, &n);
    if (rc) return rc;
    KN_REQUIRE(decode_amount(p, n, out) == 0);
    return 0;
}

/* ---------------------------------------------------------------- currencies */

static void encode_currency(const ledger_currency *cur, kn_buf *b)
{
    kn_w_array(b, CURRENCY_FIELDS);
    kn_w_uint(b, CURRENCY_VERSION);
    kn_w_str(b, cur->code, strlen(cur->code));
    kn_w_str(b, cur->name, strlen(cur->name));
    kn_w_str(b, cur->city, strlen(cur->city));
    kn_w_uint(b, cur->scale);
    kn_w_uint(b, cur->max_supply);
    kn_w_bin(b, cur->issuer, KN_PK_BYTES);
}

static int decode_currency(const uint8_t *p, size_t n, ledger_currency *cur)
{
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t version, scale = 0;
    memset(cur, 0, sizeof *cur);
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != CURRENCY_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &version);
    if (!rc && version != CURRENCY_VERSION) rc = KN_EDECODE;
    if (!rc) rc = ledger__r_text(&c, cur->code, 1, LEDGER_CODE_MAX);
    if (!rc) rc = ledger__r_text(&c, cur->name, 0, LEDGER_NAME_MAX);
    if (!rc) rc = ledger__r_text(&c, cur->city, 0, LEDGER_NAME_MAX);
    if (!rc) rc = kn_r_uint(&c, &scale);
    if (!rc && scale > UINT8_MAX) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &cur->max_supply);
    if (!rc) rc = kn_r_bin_fixed(&c, cur->issuer, KN_PK_BYTES);
    if (!rc && c.left) rc = KN_EDECODE;
    cur->scale = (uint8_t)scale;
    return rc;
}

/* True for a code that can name a currency; anything else cannot exist. */
static bool code_ok(const char *code)
{
    size_t n = strnlen(code, LEDGER_CODE_MAX + 1);
    return n >= 1 && n <= LEDGER_CODE_MAX;
}

int ledger_currency_get(store_txn *t, const char *code, ledger_currency *out)
{
    if (!code_ok(code)) return KN_ENOCURRENCY;
    uint8_t key[LEDGER__KEY_MAX];
    size_t klen = ledger__key_currency(key, code);
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, key, klen, &p, &n);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOCURRENCY : rc;
    KN_REQUIRE(decode_currency(p, n, out) == 0);
    return 0;
}

int ledger_currencies_each(store_txn *t, void (*cb)(void *ctx, const ledger_currency *c),
                           void *ctx)
{
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, "c", 1, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    ledger_currency cur;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(decode_currency(v, vl, &cur) == 0);
        cb(ctx, &cur);
    }
    store_iter_close(it);
    return store_error(t);
}

int ledger_supply_get(store_txn *t, const char *code, int64_t *supply)
{
    if (!code_ok(code)) return KN_ENOCURRENCY;
    uint8_t key[LEDGER__KEY_MAX];
    int64_t issuing;
    int rc = ledger__get_amount(t, key, ledger__key_issuing(key, code), &issuing);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOCURRENCY : rc;
    KN_REQUIRE(issuing <= 0 && issuing != INT64_MIN);
    *supply = -issuing;
    return 0;
}

int ledger_holders_get(store_txn *t, const char *code, int64_t *holders)
{
    int64_t supply;
    int rc = ledger_supply_get(t, code, &supply);
    if (rc) return rc;
    uint8_t key[LEDGER__KEY_MAX];
    rc = ledger__get_amount(t, key, ledger__key_holder_count(key, code), holders);
    if (rc == KN_ENOTFOUND) *holders = 0;
    return rc == KN_ENOTFOUND ? 0 : rc;
}

int ledger_balance_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                       int64_t *balance)
{
    int64_t supply;
    int rc = ledger_supply_get(t, code, &supply);
    if (rc) return rc;
    uint8_t key[LEDGER__KEY_MAX];
    rc = ledger__get_amount(t, key, ledger__key_balance(key, pk, code), balance);
    if (rc == KN_ENOTFOUND) {
        *balance = 0;
        return 0;
    }
    return rc;
}

int ledger_balances_each(store_txn *t, const uint8_t pk[KN_PK_BYTES],
                         void (*cb)(void *ctx, const char *code, int64_t balance), void *ctx)
{
    uint8_t prefix[1 + KN_PK_BYTES] = {'b'};
    memcpy(prefix + 1, pk, KN_PK_BYTES);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix, sizeof prefix, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        char code[LEDGER_CODE_MAX + 1];
        int64_t balance;
        size_t cl = kl - sizeof prefix;
        KN_REQUIRE(cl >= 1 && cl <= LEDGER_CODE_MAX);
        KN_REQUIRE(decode_amount(v, vl, &balance) == 0 && balance >= 0);
        memcpy(code, k + sizeof prefix, cl);
        code[cl] = '\0';
        cb(ctx, code, balance);
    }
    store_iter_close(it);
    return store_error(t);
}

/* ---------------------------------------------------------------- records */

int ledger_tx_record_get(store_txn *t, const uint8_t id[KN_HASH_BYTES], ledger_tx_record *out)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_TXS, id, KN_HASH_BYTES, &p, &n);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t index;
    int64_t result;
    rc = kn_r_array(&c, &fields);
    if (!rc && fields != RECORD_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &out->height);
    if (!rc) rc = kn_r_uint(&c, &index);
    if (!rc) rc = kn_r_int(&c, &result);
    KN_REQUIRE(rc == 0 && c.left == 0 && index <= UINT32_MAX && result <= 0 &&
               result >= INT32_MIN);
    out->index = (uint32_t)index;
    out->result = (int32_t)result;
    return 0;
}

int ledger_block_get(store_txn *t, uint64_t height, const uint8_t **p, size_t *n)
{
    uint8_t key[8];
    store_height_key(key, height);
    return store_get(t, STORE_BLOCKS, key, sizeof key, p, n);
}

int ledger_cert_get(store_txn *t, uint64_t height, const uint8_t **p, size_t *n)
{
    uint8_t key[8];
    store_height_key(key, height);
    return store_get(t, STORE_CERTS, key, sizeof key, p, n);
}

/* ---------------------------------------------------------------- chain */

static void chain_encode(const ledger_chain *ch, kn_buf *b)
{
    kn_w_array(b, CHAIN_FIELDS);
    kn_w_uint(b, ch->height);
    kn_w_bin(b, ch->last_block_id, KN_HASH_BYTES);
    kn_w_bin(b, ch->state_hash, KN_HASH_BYTES);
    kn_w_uint(b, ch->last_time_ms);
    kn_w_bin(b, ch->last_cert_hash, KN_HASH_BYTES);
}

int ledger__chain_put(store_txn *t, const ledger_chain *ch)
{
    kn_buf b = {0};
    chain_encode(ch, &b);
    int rc = store_put(t, STORE_META, KEY_CHAIN, strlen(KEY_CHAIN), b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

int ledger_chain_get(store_txn *t, ledger_chain *out)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_META, KEY_CHAIN, strlen(KEY_CHAIN), &p, &n);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    rc = kn_r_array(&c, &fields);
    if (!rc && fields != CHAIN_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &out->height);
    if (!rc) rc = kn_r_bin_fixed(&c, out->last_block_id, KN_HASH_BYTES);
    if (!rc) rc = kn_r_bin_fixed(&c, out->state_hash, KN_HASH_BYTES);
    if (!rc) rc = kn_r_uint(&c, &out->last_time_ms);
    if (!rc) rc = kn_r_bin_fixed(&c, out->last_cert_hash, KN_HASH_BYTES);
    KN_REQUIRE(rc == 0 && c.left == 0);
    return 0;
}

/* ---------------------------------------------------------------- genesis */

/* KN_EINVAL for a genesis no chain can start from. */
static int genesis_check(const ledger_genesis *g)
{
    size_t idn = strnlen(g->chain_id, KN_CHAIN_ID_MAX + 1);
    if (idn == 0 || idn > KN_CHAIN_ID_MAX) return KN_EINVAL;
    if (g->n_currencies > LEDGER_CURRENCIES_MAX || g->n_admins > LEDGER_ADMINS_MAX)
        return KN_EINVAL;
    for (uint32_t i = 0; i < g->n_currencies; i++) {
        const ledger_currency *cur = &g->currencies[i];
        if (!code_ok(cur->code) || cur->max_supply == 0) return KN_EINVAL;
        if (strnlen(cur->name, LEDGER_NAME_MAX + 1) > LEDGER_NAME_MAX ||
            strnlen(cur->city, LEDGER_NAME_MAX + 1) > LEDGER_NAME_MAX)
            return KN_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(g->currencies[j].code, cur->code) == 0) return KN_EINVAL;
    }
    return 0;
}

/* [1, chain_id, time_ms, [currency record...], [admin pk...]]: the genesis
 * state hash is the hash of these bytes, so every node starting from the same
 * genesis starts from the same state hash. */
static void genesis_encode(const ledger_genesis *g, kn_buf *b)
{
    kn_w_array(b, 5);
    kn_w_uint(b, GENESIS_VERSION);
    kn_w_str(b, g->chain_id, strlen(g->chain_id));
    kn_w_uint(b, g->time_ms);
    kn_w_array(b, g->n_currencies);
    for (uint32_t i = 0; i < g->n_currencies; i++) encode_currency(&g->currencies[i], b);
    kn_w_array(b, g->n_admins);
    for (uint32_t i = 0; i < g->n_admins; i++) kn_w_bin(b, g->admins[i], KN_PK_BYTES);
}

static int put_amount(store_txn *t, const uint8_t *key, size_t klen, int64_t v)
{
    kn_buf b = {0};
    kn_w_int(&b, v);
    int rc = ledger__put(t, NULL, STORE_STATE, key, klen, b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

static int genesis_put_currency(store_txn *t, const ledger_currency *cur)
{
    uint8_t key[LEDGER__KEY_MAX];
    kn_buf b = {0};
    encode_currency(cur, &b);
    int rc = store_put(t, STORE_STATE, key, ledger__key_currency(key, cur->code), b.data, b.len);
    kn_buf_free(&b);
    if (!rc) rc = put_amount(t, key, ledger__key_issuing(key, cur->code), 0);
    if (!rc) rc = put_amount(t, key, ledger__key_holders(key, cur->code), 0);
    return rc;
}

static int genesis_put_admin(store_txn *t, const uint8_t pk[KN_PK_BYTES])
{
    static const uint8_t admin_val = 0xc3; /* msgpack true */
    uint8_t key[1 + KN_PK_BYTES] = {'a'};
    memcpy(key + 1, pk, KN_PK_BYTES);
    return store_put(t, STORE_STATE, key, sizeof key, &admin_val, 1);
}

/* The genesis itself and the chain at height 0: no block yet, no certificate,
 * and the state hash of the genesis bytes. */
static int genesis_put_chain(store_txn *t, const ledger_genesis *g)
{
    kn_buf b = {0};
    genesis_encode(g, &b);
    ledger_chain ch;
    memset(&ch, 0, sizeof ch);
    ch.last_time_ms = g->time_ms;
    kn_hash(ch.state_hash, KN_DOMAIN_STATE, b.data, b.len);
    int rc = store_put(t, STORE_META, KEY_GENESIS, strlen(KEY_GENESIS), b.data, b.len);
    kn_buf_free(&b);
    return rc ? rc : ledger__chain_put(t, &ch);
}

int ledger_genesis_apply(store_txn *t, const ledger_genesis *g)
{
    ledger_chain ch;
    int rc = ledger_chain_get(t, &ch);
    if (rc != KN_ENOTFOUND) return rc ? rc : KN_EINVAL;
    rc = genesis_check(g);
    for (uint32_t i = 0; i < g->n_currencies && !rc; i++)
        rc = genesis_put_currency(t, &g->currencies[i]);
    for (uint32_t i = 0; i < g->n_admins && !rc; i++) rc = genesis_put_admin(t, g->admins[i]);
    if (!rc) rc = genesis_put_chain(t, g);
    return rc;
}

/* ---------------------------------------------------------------- safety */

int ledger_safety_put(store_txn *t, const cons_safety *s)
{
    kn_buf b = {0};
    kn_w_array(&b, SAFETY_FIELDS);
    kn_w_uint(&b, s->height);
    kn_w_uint(&b, s->round);
    kn_w_uint(&b, s->step);
    kn_w_int(&b, s->locked_round);
    kn_w_bin(&b, s->locked_block, KN_HASH_BYTES);
    kn_w_int(&b, s->valid_round);
    kn_w_bin(&b, s->valid_block, KN_HASH_BYTES);
    int rc = store_put(t, STORE_META, KEY_SAFETY, strlen(KEY_SAFETY), b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

int ledger_safety_get(store_txn *t, cons_safety *out)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_META, KEY_SAFETY, strlen(KEY_SAFETY), &p, &n);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t round, step;
    int64_t locked, valid;
    memset(out, 0, sizeof *out);
    rc = kn_r_array(&c, &fields);
    if (!rc && fields != SAFETY_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &out->height);
    if (!rc) rc = kn_r_uint(&c, &round);
    if (!rc) rc = kn_r_uint(&c, &step);
    if (!rc) rc = kn_r_int(&c, &locked);
    if (!rc) rc = kn_r_bin_fixed(&c, out->locked_block, KN_HASH_BYTES);
    if (!rc) rc = kn_r_int(&c, &valid);
    if (!rc) rc = kn_r_bin_fixed(&c, out->valid_block, KN_HASH_BYTES);
    KN_REQUIRE(rc == 0 && c.left == 0 && round <= UINT32_MAX && step <= UINT8_MAX);
    KN_REQUIRE(locked >= -1 && locked <= INT32_MAX && valid >= -1 && valid <= INT32_MAX);
    out->round = (uint32_t)round;
    out->step = (uint8_t)step;
    out->locked_round = (int32_t)locked;
    out->valid_round = (int32_t)valid;
    return 0;
}
