/*
 * Ledger state: the key layout (documented in internal.h), the read side of
 * the public API, chain metadata, the genesis, the consensus safety state and
 * the full invariant scan.
 *
 * Records here were written by this module; one that no longer decodes means
 * the store is corrupt, which is a broken invariant and aborts rather than
 * letting a validator carry on from state it cannot read.
 */
#include <sodium.h>
#include <string.h>

#include "node/ledger/internal.h"

#define RECORD_VERSION 1
#define CHAIN_FIELDS 5
#define SAFETY_FIELDS 7
#define RECORD_FIELDS 3
#define ACCOUNT_FIELDS 6
#define ROLES_FIELDS 3
#define MOVE_FIELDS 7
#define GENESIS_VERSION 1

static const char KEY_CHAIN[] = "chain";
static const char KEY_GENESIS[] = "genesis";
static const char KEY_SAFETY[] = "safety";
static const uint8_t zero_pk[KN_PK_BYTES];

/* ---------------------------------------------------------------- keys */

void ledger__key_tag(ledger__key *k, char tag)
{
    k->n = 1;
    k->b[0] = (uint8_t)tag;
}

void ledger__key_raw(ledger__key *k, const void *p, size_t n)
{
    KN_REQUIRE(k->n + n <= LEDGER__KEY_MAX);
    memcpy(k->b + k->n, p, n);
    k->n = (uint8_t)(k->n + n);
}

void ledger__key_str(ledger__key *k, const char *s)
{
    size_t n = strlen(s);
    KN_REQUIRE(n <= UINT8_MAX);
    uint8_t len = (uint8_t)n;
    ledger__key_raw(k, &len, 1);
    ledger__key_raw(k, s, n);
}

void ledger__key_u64(ledger__key *k, uint64_t v)
{
    uint8_t be[8];
    store_height_key(be, v);
    ledger__key_raw(k, be, sizeof be);
}

void ledger__key_u32(ledger__key *k, uint32_t v)
{
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ledger__key_raw(k, be, sizeof be);
}

void ledger__key_u16(ledger__key *k, uint16_t v)
{
    uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    ledger__key_raw(k, be, sizeof be);
}

void ledger__key_account(ledger__key *k, const char *code, const uint8_t owner[KN_PK_BYTES],
                         const char *sub)
{
    ledger__key_tag(k, 'A');
    ledger__key_raw(k, owner, KN_PK_BYTES);
    ledger__key_str(k, code);
    ledger__key_str(k, sub);
}

void ledger__key_currency(ledger__key *k, const char *code)
{
    ledger__key_tag(k, 'c');
    ledger__key_raw(k, code, strlen(code)); /* the rest of the key: listed in code order */
}

void ledger__key_roles(ledger__key *k, const char *code, const uint8_t pk[KN_PK_BYTES])
{
    ledger__key_tag(k, 'r');
    ledger__key_raw(k, pk, KN_PK_BYTES);
    ledger__key_str(k, code);
}

void ledger__key_stat(ledger__key *k, const char *code, uint8_t stat)
{
    ledger__key_tag(k, 's');
    ledger__key_str(k, code);
    ledger__key_raw(k, &stat, 1);
}

void ledger__key_count(ledger__key *k, const char *code, uint8_t kind)
{
    ledger__key_tag(k, 'k');
    ledger__key_str(k, code);
    ledger__key_raw(k, &kind, 1);
}

void ledger__key_holders(ledger__key *k, const char *code, uint8_t kind)
{
    ledger__key_tag(k, 'n');
    ledger__key_str(k, code);
    ledger__key_raw(k, &kind, 1);
}

void ledger__key_pstat(ledger__key *k, const char *code, const char *id, uint8_t stat)
{
    ledger__key_tag(k, 'p');
    ledger__key_str(k, code);
    ledger__key_str(k, id);
    ledger__key_raw(k, &stat, 1);
}

void ledger__key_programme(ledger__key *k, const char *code, const char *id)
{
    ledger__key_tag(k, 'P');
    ledger__key_str(k, code);
    ledger__key_str(k, id);
}

void ledger__key_rate(ledger__key *k, const char *base, const char *quote)
{
    ledger__key_tag(k, 'E');
    ledger__key_str(k, base);
    ledger__key_str(k, quote);
}

void ledger__key_cycle(ledger__key *k, uint64_t cycle, uint8_t field)
{
    ledger__key_tag(k, 'y');
    ledger__key_u64(k, cycle);
    ledger__key_raw(k, &field, 1);
}

void ledger__key_position(ledger__key *k, uint64_t cycle, const char *code)
{
    ledger__key_tag(k, 'o');
    ledger__key_u64(k, cycle);
    ledger__key_str(k, code);
}

void ledger__key_pair(ledger__key *k, char tag, uint64_t cycle, const char *debtor,
                      const char *creditor)
{
    ledger__key_tag(k, tag);
    ledger__key_u64(k, cycle);
    ledger__key_str(k, debtor);
    ledger__key_str(k, creditor);
}

void ledger__key_figure(ledger__key *k, const char *code, uint32_t day, uint8_t figure)
{
    ledger__key_tag(k, 'F');
    ledger__key_str(k, code);
    ledger__key_u32(k, day);
    ledger__key_raw(k, &figure, 1);
}

void ledger__key_category(ledger__key *k, const char *code, uint32_t day, const char *category)
{
    ledger__key_tag(k, 'G');
    ledger__key_str(k, code);
    ledger__key_u32(k, day);
    ledger__key_str(k, category);
}

int64_t ledger__amount_of(const uint8_t *p, size_t n)
{
    int64_t v;
    kn_cur c = kn_cur_make(p, n);
    KN_REQUIRE(kn_r_int(&c, &v) == 0 && c.left == 0); /* the ledger wrote it */
    return v;
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

int ledger__get_cell(store_txn *t, const ledger__key *k, int64_t *out)
{
    int rc = ledger__get_amount(t, k->b, k->n, out);
    if (rc == KN_ENOTFOUND) *out = 0;
    return rc == KN_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------- records */

void ledger__account_encode(const ledger_account *a, kn_buf *b)
{
    kn_w_array(b, ACCOUNT_FIELDS);
    kn_w_uint(b, a->kind);
    kn_w_uint(b, a->flags);
    kn_w_int(b, a->balance);
    kn_w_int(b, a->floor);
    kn_w_uint(b, a->demurrage_ms);
    kn_w_uint(b, a->received_ms);
}

int ledger__account_decode(const uint8_t *p, size_t n, ledger_account *a)
{
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t kind = 0, flags = 0;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != ACCOUNT_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &kind);
    if (!rc) rc = kn_r_uint(&c, &flags);
    if (!rc) rc = kn_r_int(&c, &a->balance);
    if (!rc) rc = kn_r_int(&c, &a->floor);
    if (!rc) rc = kn_r_uint(&c, &a->demurrage_ms);
    if (!rc) rc = kn_r_uint(&c, &a->received_ms);
    if (!rc && (c.left || kind == 0 || kind > LEDGER_ACC_KIND_MAX || flags > UINT8_MAX))
        rc = KN_EDECODE;
    a->kind = (uint8_t)kind;
    a->flags = (uint8_t)flags;
    return rc;
}

void ledger__roles_encode(const ledger_roles *r, kn_buf *b)
{
    kn_w_array(b, ROLES_FIELDS);
    kn_w_uint(b, r->mask);
    kn_w_str(b, r->category, strlen(r->category));
    kn_w_uint(b, r->credit_limit);
}

int ledger__roles_decode(const uint8_t *p, size_t n, ledger_roles *r)
{
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t mask = 0;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != ROLES_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &mask);
    if (!rc) rc = ledger__r_text(&c, r->category, 0, LEDGER_CATEGORY_MAX);
    if (!rc) rc = kn_r_uint(&c, &r->credit_limit);
    if (!rc && (c.left || mask > UINT32_MAX)) rc = KN_EDECODE;
    r->mask = (uint32_t)mask;
    return rc;
}

uint8_t ledger__main_kind(uint32_t mask)
{
    if (mask >> LEDGER_ROLE_MERCHANT & 1) return LEDGER_ACC_MERCHANT;
    if (mask >> LEDGER_ROLE_SSE & 1) return LEDGER_ACC_SSE;
    if (mask >> LEDGER_ROLE_CLEARING & 1) return LEDGER_ACC_CLEARING;
    return LEDGER_ACC_HOLDER;
}

/* Splits an "A" key into its identity. */
static void account_identity(const uint8_t *k, size_t kl, ledger_account *a)
{
    KN_REQUIRE(kl > 1 + KN_PK_BYTES + 2);
    memcpy(a->owner, k + 1, KN_PK_BYTES);
    uint8_t n = k[1 + KN_PK_BYTES];
    KN_REQUIRE(n >= 1 && n <= LEDGER_CODE_MAX && kl >= 1 + KN_PK_BYTES + 1u + n + 1u);
    memcpy(a->currency, k + 2 + KN_PK_BYTES, n);
    a->currency[n] = '\0';
    size_t at = 2 + KN_PK_BYTES + n;
    uint8_t m = k[at];
    KN_REQUIRE(m <= LEDGER_SUB_MAX && kl == at + 1 + m);
    memcpy(a->sub, k + at + 1, m);
    a->sub[m] = '\0';
}

/* ---------------------------------------------------------------- currencies */

/* True for a code that can name a currency; anything else cannot exist. */
static bool code_ok(const char *code)
{
    size_t n = strnlen(code, LEDGER_CODE_MAX + 1);
    return n >= 1 && n <= LEDGER_CODE_MAX;
}

int ledger_currency_get(store_txn *t, const char *code, ledger_currency *out)
{
    if (!code_ok(code)) return KN_ENOCURRENCY;
    ledger__key k;
    ledger__key_currency(&k, code);
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOCURRENCY : rc;
    KN_REQUIRE(ledger__currency_decode(p, n, RECORD_VERSION, out) == 0);
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
        KN_REQUIRE(ledger__currency_decode(v, vl, RECORD_VERSION, &cur) == 0);
        cb(ctx, &cur);
    }
    store_iter_close(it);
    return store_error(t);
}

static void count_one(void *ctx, const ledger_currency *c)
{
    (void)c;
    (*(uint32_t *)ctx)++;
}

int ledger__currencies_count(store_txn *t, uint32_t *n)
{
    *n = 0;
    return ledger_currencies_each(t, count_one, n);
}

int ledger_consortium_get(store_txn *t, uint32_t *threshold, uint32_t *n_admins)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, "g", 1, &p, &n);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t th;
    rc = kn_r_array(&c, &fields);
    if (!rc) rc = kn_r_uint(&c, &th);
    KN_REQUIRE(rc == 0 && fields == 1 && c.left == 0 && th <= LEDGER_ADMINS_MAX);
    *threshold = (uint32_t)th;
    ledger__key k;
    int64_t count;
    ledger__key_count(&k, "", LEDGER_ROLE_CONSORTIUM_ADMIN);
    rc = ledger__get_cell(t, &k, &count);
    *n_admins = (uint32_t)count;
    return rc;
}

static int system_balance(store_txn *t, const char *code, const char *sub, int64_t *out)
{
    ledger_account a;
    int rc = ledger_account_get(t, code, zero_pk, sub, &a);
    *out = rc ? 0 : a.balance;
    return rc;
}

int ledger_supply_get(store_txn *t, const char *code, int64_t *supply)
{
    int64_t issuing;
    int rc = system_balance(t, code, LEDGER_SUB_ISSUING, &issuing);
    if (rc) return rc == KN_ENOACCOUNT ? KN_ENOCURRENCY : rc;
    KN_REQUIRE(issuing <= 0 && issuing != INT64_MIN);
    *supply = -issuing;
    return 0;
}

static bool key_kind(uint32_t kind)
{
    return kind == LEDGER_ACC_BENEFICIARY || kind == LEDGER_ACC_MERCHANT ||
           kind == LEDGER_ACC_SSE || kind == LEDGER_ACC_CLEARING || kind == LEDGER_ACC_HOLDER;
}

typedef struct own_sum {
    const char *code;
    int64_t held;
} own_sum;

/* The currency's own accounts but the issuing one: treasury, fees, demurrage
 * sink and programme accounts. */
static void add_own(void *ctx, const ledger_account *a)
{
    own_sum *s = ctx;
    if (strcmp(a->currency, s->code) == 0 && a->kind != LEDGER_ACC_ISSUING) s->held += a->balance;
}

int ledger_currency_stats_get(store_txn *t, const char *code, ledger_currency_stats *out)
{
    memset(out, 0, sizeof *out);
    int rc = ledger_supply_get(t, code, &out->supply);
    int64_t *stat[] = {NULL, &out->issued, &out->retired, &out->redeemed,
                       &out->fees, &out->demurrage, &out->clawed_back};
    for (uint8_t s = LEDGER__ST_ISSUED; s <= LEDGER__ST_CLAWED && !rc; s++) {
        ledger__key k;
        ledger__key_stat(&k, code, s);
        rc = ledger__get_cell(t, &k, stat[s]);
    }
    for (uint8_t kind = 1; kind <= LEDGER_ACC_KIND_MAX && !rc; kind++) {
        ledger__key k;
        ledger__key_holders(&k, code, kind);
        rc = ledger__get_cell(t, &k, &out->holders[kind]);
    }
    /* Held by keys: the supply less what the currency's own accounts hold. */
    own_sum sum = {code, 0};
    if (!rc) rc = ledger_accounts_each(t, zero_pk, add_own, &sum);
    out->outstanding = out->supply - sum.held;
    return rc;
}

int ledger_holders_get(store_txn *t, const char *code, int64_t *holders)
{
    ledger_currency_stats st;
    int rc = ledger_currency_stats_get(t, code, &st);
    if (rc) return rc;
    *holders = 0;
    for (uint32_t kind = 1; kind <= LEDGER_ACC_KIND_MAX; kind++)
        if (key_kind(kind)) *holders += st.holders[kind];
    return 0;
}

/* ---------------------------------------------------------------- accounts */

int ledger_account_get(store_txn *t, const char *code, const uint8_t owner[KN_PK_BYTES],
                       const char *sub, ledger_account *out)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, code, &cur);
    if (rc) return rc;
    if (strlen(sub) > LEDGER_SUB_MAX) return KN_ENOACCOUNT;
    ledger__key k;
    ledger__key_account(&k, code, owner, sub);
    const uint8_t *p;
    size_t n;
    rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOACCOUNT : rc;
    memset(out, 0, sizeof *out);
    account_identity(k.b, k.n, out);
    KN_REQUIRE(ledger__account_decode(p, n, out) == 0);
    return 0;
}

int ledger_balance_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                       int64_t *balance)
{
    ledger_account a;
    int rc = ledger_account_get(t, code, pk, "", &a);
    *balance = rc ? 0 : a.balance;
    return rc == KN_ENOACCOUNT ? 0 : rc;
}

int ledger_accounts_each(store_txn *t, const uint8_t owner[KN_PK_BYTES],
                         void (*cb)(void *ctx, const ledger_account *a), void *ctx)
{
    uint8_t prefix[1 + KN_PK_BYTES] = {'A'};
    memcpy(prefix + 1, owner, KN_PK_BYTES);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix, sizeof prefix, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    ledger_account a;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        memset(&a, 0, sizeof a);
        account_identity(k, kl, &a);
        KN_REQUIRE(ledger__account_decode(v, vl, &a) == 0);
        cb(ctx, &a);
    }
    store_iter_close(it);
    return store_error(t);
}

/* ---------------------------------------------------------------- roles */

int ledger_roles_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                     ledger_roles *out)
{
    if (strlen(code) > LEDGER_CODE_MAX) return KN_ENOTFOUND;
    ledger__key k;
    ledger__key_roles(&k, code, pk);
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    strcpy(out->currency, code);
    KN_REQUIRE(ledger__roles_decode(p, n, out) == 0);
    return out->mask ? 0 : KN_ENOTFOUND;
}

int ledger_roles_each(store_txn *t, const uint8_t pk[KN_PK_BYTES],
                      void (*cb)(void *ctx, const ledger_roles *r), void *ctx)
{
    uint8_t prefix[1 + KN_PK_BYTES] = {'r'};
    memcpy(prefix + 1, pk, KN_PK_BYTES);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix, sizeof prefix, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    ledger_roles r;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        size_t n = k[sizeof prefix];
        KN_REQUIRE(n <= LEDGER_CODE_MAX && kl == sizeof prefix + 1 + n);
        memset(&r, 0, sizeof r);
        memcpy(r.currency, k + sizeof prefix + 1, n);
        KN_REQUIRE(ledger__roles_decode(v, vl, &r) == 0);
        if (r.mask) cb(ctx, &r);
    }
    store_iter_close(it);
    return store_error(t);
}

int ledger_role_holders_each(store_txn *t, const char *code, uint32_t role,
                             void (*cb)(void *ctx, const uint8_t pk[KN_PK_BYTES]), void *ctx)
{
    if (strlen(code) > LEDGER_CODE_MAX || role == 0 || role > LEDGER_ROLE_MAX) return KN_EINVAL;
    ledger__key prefix;
    uint8_t r = (uint8_t)role;
    ledger__key_tag(&prefix, 'R');
    ledger__key_str(&prefix, code);
    ledger__key_raw(&prefix, &r, 1);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl == (size_t)prefix.n + KN_PK_BYTES && vl == 1);
        if (v[0] == 0xc3) cb(ctx, k + prefix.n); /* msgpack true: still held */
    }
    store_iter_close(it);
    return store_error(t);
}

/* ---------------------------------------------------------------- programmes */

static int programme_stats(store_txn *t, const char *code, const char *id,
                           ledger_programme_stats *st)
{
    int64_t has_expired = 0;
    int64_t *field[] = {NULL, &st->funded, &st->disbursed, &st->spent, &st->returned,
                        &st->expired, &st->beneficiaries, &has_expired};
    int rc = 0;
    for (uint8_t s = LEDGER__PS_FUNDED; s <= LEDGER__PS_HAS_EXPIRED && !rc; s++) {
        ledger__key k;
        ledger__key_pstat(&k, code, id, s);
        rc = ledger__get_cell(t, &k, field[s]);
    }
    st->has_expired = has_expired != 0;
    return rc;
}

int ledger_programme_get(store_txn *t, const char *code, const char *id, ledger_programme *out,
                         ledger_programme_stats *stats)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, code, &cur);
    if (rc) return rc;
    if (!ledger__id_ok(id, 1)) return KN_ENOPROGRAMME;
    ledger__key k;
    ledger__key_programme(&k, code, id);
    const uint8_t *p;
    size_t n;
    rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOPROGRAMME : rc;
    KN_REQUIRE(ledger__programme_decode(p, n, RECORD_VERSION, true, out) == 0);
    if (!stats) return 0;
    memset(stats, 0, sizeof *stats);
    return programme_stats(t, code, id, stats);
}

int ledger_programmes_each(store_txn *t, const char *code,
                           void (*cb)(void *ctx, const ledger_programme *p), void *ctx)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, code, &cur);
    if (rc) return rc;
    ledger__key prefix;
    ledger__key_tag(&prefix, 'P');
    ledger__key_str(&prefix, code);
    store_iter *it;
    rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    ledger_programme pg;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(ledger__programme_decode(v, vl, RECORD_VERSION, true, &pg) == 0);
        cb(ctx, &pg);
    }
    store_iter_close(it);
    return store_error(t);
}

int ledger_programme_spent_each(store_txn *t, const char *code, const char *id,
                                void (*cb)(void *ctx, const char *category, int64_t amount),
                                void *ctx)
{
    ledger_programme pg;
    int rc = ledger_programme_get(t, code, id, &pg, NULL);
    if (rc) return rc;
    ledger__key prefix;
    ledger__key_tag(&prefix, 'u');
    ledger__key_str(&prefix, code);
    ledger__key_str(&prefix, id);
    store_iter *it;
    rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        char category[LEDGER_CATEGORY_MAX + 1];
        size_t n = k[prefix.n];
        int64_t amount;
        KN_REQUIRE(n <= LEDGER_CATEGORY_MAX && kl == prefix.n + 1 + n);
        KN_REQUIRE(decode_amount(v, vl, &amount) == 0);
        memcpy(category, k + prefix.n + 1, n);
        category[n] = '\0';
        cb(ctx, category, amount);
    }
    store_iter_close(it);
    return store_error(t);
}

/* ---------------------------------------------------------------- history */

static void movement_decode(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                            ledger_movement *m)
{
    KN_REQUIRE(kl == 1 + KN_PK_BYTES + LEDGER_CURSOR_BYTES);
    const uint8_t *cur = k + 1 + KN_PK_BYTES;
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h = h << 8 | cur[i];
    uint32_t index = (uint32_t)cur[8] << 24 | (uint32_t)cur[9] << 16 | (uint32_t)cur[10] << 8 | cur[11];
    uint16_t op = (uint16_t)(cur[12] << 8 | cur[13]);
    memset(m, 0, sizeof *m);
    m->height = ~h;
    m->index = ~index;
    m->op = (uint16_t)~op;
    kn_cur c = kn_cur_make(v, vl);
    uint32_t fields;
    uint64_t kind;
    int rc = kn_r_array(&c, &fields);
    if (!rc) rc = ledger__r_text(&c, m->currency, 1, LEDGER_CODE_MAX);
    if (!rc) rc = ledger__r_text(&c, m->sub, 0, LEDGER_SUB_MAX);
    if (!rc) rc = kn_r_int(&c, &m->amount);
    if (!rc) rc = kn_r_uint(&c, &kind);
    if (!rc) rc = kn_r_bin_fixed(&c, m->counterparty, KN_PK_BYTES);
    if (!rc) rc = ledger__r_text(&c, m->counterparty_sub, 0, LEDGER_SUB_MAX);
    if (!rc) rc = kn_r_bin_fixed(&c, m->tx_id, KN_HASH_BYTES);
    KN_REQUIRE(rc == 0 && fields == MOVE_FIELDS && c.left == 0 && kind <= UINT8_MAX);
    m->kind = (uint8_t)kind;
}

int ledger_history_page(store_txn *t, const uint8_t owner[KN_PK_BYTES], const uint8_t *cursor,
                        uint32_t limit, void (*cb)(void *ctx, const ledger_movement *m),
                        void *ctx, bool *more, uint8_t next[LEDGER_CURSOR_BYTES])
{
    if (limit == 0 || limit > LEDGER_HISTORY_PAGE_MAX) return KN_EINVAL;
    uint8_t prefix[1 + KN_PK_BYTES] = {'H'}, start[1 + KN_PK_BYTES + LEDGER_CURSOR_BYTES];
    memcpy(prefix + 1, owner, KN_PK_BYTES);
    memcpy(start, prefix, sizeof prefix);
    if (cursor) memcpy(start + sizeof prefix, cursor, LEDGER_CURSOR_BYTES);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix, sizeof prefix, cursor ? start : NULL,
                             cursor ? sizeof start : 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    uint32_t n = 0;
    *more = false;
    ledger_movement m;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        if (n == limit) {
            /* The next page starts at this one: the cursor is its key. */
            KN_REQUIRE(kl == sizeof start);
            memcpy(next, k + sizeof prefix, LEDGER_CURSOR_BYTES);
            *more = true;
            break;
        }
        movement_decode(k, kl, v, vl, &m);
        cb(ctx, &m);
        n++;
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

/* The consortium threshold in force: as given, or a majority of the admins. */
static uint32_t genesis_threshold(const ledger_genesis *g)
{
    return g->admin_threshold ? g->admin_threshold : g->n_admins / 2 + 1;
}

/* KN_EINVAL for a genesis no chain can start from. */
static int genesis_check(const ledger_genesis *g)
{
    size_t idn = strnlen(g->chain_id, KN_CHAIN_ID_MAX + 1);
    if (idn == 0 || idn > KN_CHAIN_ID_MAX) return KN_EINVAL;
    if (g->n_currencies > LEDGER_CURRENCIES_MAX || g->n_admins > LEDGER_ADMINS_MAX)
        return KN_EINVAL;
    if (g->admin_threshold > g->n_admins) return KN_EINVAL;
    if (g->n_validators > CONS_VALIDATORS_MAX) return KN_EINVAL;
    for (uint32_t i = 0; i < g->n_validators; i++) {
        if (sodium_is_zero(g->validators[i].pk, KN_PK_BYTES) || g->validators[i].power == 0)
            return KN_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(g->validators[i].pk, g->validators[j].pk, KN_PK_BYTES) == 0)
                return KN_EINVAL;
    }
    for (uint32_t i = 0; i < g->n_admins; i++) {
        if (sodium_is_zero(g->admins[i], KN_PK_BYTES)) return KN_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(g->admins[i], g->admins[j], KN_PK_BYTES) == 0) return KN_EINVAL;
    }
    for (uint32_t i = 0; i < g->n_currencies; i++) {
        const ledger_currency *cur = &g->currencies[i];
        if (ledger__currency_check(cur)) return KN_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(g->currencies[j].code, cur->code) == 0) return KN_EINVAL;
    }
    return 0;
}

/* [1, chain_id, time_ms, [currency record...], [admin pk...], admin_threshold,
 *  [[validator pk, power]...]]:
 * the genesis state hash is the hash of these bytes, so every node starting
 * from the same genesis starts from the same state hash. */
static void genesis_encode(const ledger_genesis *g, kn_buf *b)
{
    kn_w_array(b, 7);
    kn_w_uint(b, GENESIS_VERSION);
    kn_w_str(b, g->chain_id, strlen(g->chain_id));
    kn_w_uint(b, g->time_ms);
    kn_w_array(b, g->n_currencies);
    for (uint32_t i = 0; i < g->n_currencies; i++)
        ledger__currency_encode(&g->currencies[i], RECORD_VERSION, b);
    kn_w_array(b, g->n_admins);
    for (uint32_t i = 0; i < g->n_admins; i++) kn_w_bin(b, g->admins[i], KN_PK_BYTES);
    kn_w_uint(b, genesis_threshold(g));
    kn_w_array(b, g->n_validators);
    for (uint32_t i = 0; i < g->n_validators; i++) ledger__validator_encode(&g->validators[i], b);
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
    if (!rc) rc = ledger__genesis_state(t, g, genesis_threshold(g));
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
