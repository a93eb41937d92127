/*
 * The full invariant scan (ledger_check_invariants): recomputes from the raw
 * records everything the rules keep incrementally, and aborts on the first
 * disagreement. For tests and debug builds; it costs a scan of the state.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define MOD "ledger"

typedef struct audit_currency {
    ledger_currency cur;
    __int128 sum;                              /* of every account's balance */
    int64_t positive[LEDGER_ACC_KIND_MAX + 1]; /* accounts with money, by kind */
} audit_currency;

typedef struct audit {
    uint32_t n;
    audit_currency c[LEDGER_CURRENCIES_MAX];
} audit;

static void add_currency(void *ctx, const ledger_currency *cur)
{
    audit *a = ctx;
    KN_REQUIRE(a->n < LEDGER_CURRENCIES_MAX);
    memset(&a->c[a->n], 0, sizeof a->c[a->n]);
    a->c[a->n++].cur = *cur;
}

static audit_currency *find(audit *a, const char *code)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (strcmp(a->c[i].cur.code, code) == 0) return &a->c[i];
    return NULL;
}

static void add_account(void *ctx, const ledger_account *acct)
{
    audit_currency *c = find(ctx, acct->currency);
    KN_REQUIRE(c != NULL); /* an account in a currency that does not exist */
    KN_REQUIRE(acct->balance >= acct->floor);
    KN_REQUIRE(acct->kind >= 1 && acct->kind <= LEDGER_ACC_KIND_MAX);
    c->sum += acct->balance;
    c->positive[acct->kind] += acct->balance > 0;
}

/* Every account, whoever owns it: one scan of the "A" records. */
static bool scan_accounts(store_txn *t, audit *a)
{
    store_iter *it;
    if (store_iter_open(t, STORE_STATE, "A", 1, NULL, 0, &it)) return false;
    const uint8_t *k, *v;
    size_t kl, vl;
    uint8_t owner[KN_PK_BYTES];
    bool first = true;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl > 1 + KN_PK_BYTES);
        if (!first && memcmp(owner, k + 1, KN_PK_BYTES) == 0) continue;
        first = false;
        memcpy(owner, k + 1, KN_PK_BYTES);
        /* ledger_accounts_each decodes the owner's records for us. */
        if (ledger_accounts_each(t, owner, add_account, a)) break;
    }
    store_iter_close(it);
    return store_error(t) == 0;
}

/* The daily changes of the money keys hold, added up over every day. */
static int64_t held_over_days(store_txn *t, const char *code)
{
    ledger__key prefix;
    ledger__key_tag(&prefix, 'F');
    ledger__key_str(&prefix, code);
    store_iter *it;
    KN_REQUIRE(store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it) == 0);
    const uint8_t *k, *v;
    size_t kl, vl;
    int64_t held = 0, change;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl == (size_t)prefix.n + 5);
        if (k[kl - 1] != LEDGER__FG_HELD) continue;
        change = ledger__amount_of(v, vl);
        held += change;
    }
    store_iter_close(it);
    return held;
}

static void check_currency(store_txn *t, const audit_currency *c)
{
    const char *code = c->cur.code;
    ledger_currency_stats st;
    KN_REQUIRE(ledger_currency_stats_get(t, code, &st) == 0);
    KN_REQUIRE(c->sum == 0);
    KN_REQUIRE(st.supply >= 0 && (uint64_t)st.supply <= c->cur.max_supply);
    for (uint32_t kind = 1; kind <= LEDGER_ACC_KIND_MAX; kind++)
        KN_REQUIRE(st.holders[kind] == c->positive[kind]);
    KN_REQUIRE(held_over_days(t, code) == st.outstanding);
}

/* A cycle's positions by currency, and what its obligations make each pay. */
typedef struct cycle_audit {
    uint32_t n;
    struct {
        char code[LEDGER_CODE_MAX + 1];
        int64_t position, settles;
    } c[LEDGER_CURRENCIES_MAX];
    int64_t obligations, settled;
} cycle_audit;

static int64_t *settles_of(cycle_audit *ca, const char *code)
{
    for (uint32_t i = 0; i < ca->n; i++)
        if (strcmp(ca->c[i].code, code) == 0) return &ca->c[i].settles;
    KN_REQUIRE(!"an obligation of a currency without a position");
}

static void add_position(void *ctx, const char *code, int64_t position)
{
    cycle_audit *ca = ctx;
    KN_REQUIRE(ca->n < LEDGER_CURRENCIES_MAX);
    strcpy(ca->c[ca->n].code, code);
    ca->c[ca->n].position = position;
    ca->c[ca->n++].settles = 0;
}

static void add_obligation(void *ctx, const ledger_obligation *o)
{
    cycle_audit *ca = ctx;
    KN_REQUIRE(o->amount > 0);
    *settles_of(ca, o->debtor) -= o->amount;
    *settles_of(ca, o->creditor) += o->amount;
    ca->obligations++;
    ca->settled += o->settled;
}

/* Every cycle's positions sum to zero; a closed cycle's obligations settle
 * exactly its positions, and its counts match them. */
static void check_cycles(store_txn *t)
{
    uint64_t current;
    KN_REQUIRE(ledger_cycle_current(t, &current) == 0);
    for (uint64_t n = 1; n <= current; n++) {
        static cycle_audit ca; /* too big for a stack frame in the daemon */
        ledger_cycle cy;
        memset(&ca, 0, sizeof ca);
        KN_REQUIRE(ledger_cycle_get(t, n, &cy) == 0);
        KN_REQUIRE(ledger_cycle_positions_each(t, n, add_position, &ca) == 0);
        __int128 sum = 0;
        for (uint32_t i = 0; i < ca.n; i++) sum += ca.c[i].position;
        KN_REQUIRE(sum == 0);
        if (!cy.closed) continue;
        KN_REQUIRE(ledger_cycle_obligations_each(t, n, add_obligation, &ca) == 0);
        for (uint32_t i = 0; i < ca.n; i++) KN_REQUIRE(ca.c[i].settles == ca.c[i].position);
        KN_REQUIRE(ca.obligations == cy.obligations && ca.settled == cy.settled_count);
    }
}

typedef struct programme_audit {
    store_txn *t;
} programme_audit;

static void check_programme(void *ctx, const ledger_programme *pg)
{
    programme_audit *pa = ctx;
    ledger_programme p;
    ledger_programme_stats st;
    KN_REQUIRE(ledger_programme_get(pa->t, pg->currency, pg->id, &p, &st) == 0);
    KN_REQUIRE(st.funded >= 0 && (uint64_t)st.funded <= pg->budget);
    KN_REQUIRE(st.disbursed >= 0 && st.disbursed <= st.funded);
    KN_REQUIRE(st.spent >= 0 && st.returned >= 0 && st.expired >= 0);
    ledger_account acct;
    static const uint8_t zero[KN_PK_BYTES];
    KN_REQUIRE(ledger_account_get(pa->t, pg->currency, zero, pg->id, &acct) == 0);
    KN_REQUIRE(acct.balance >= 0 && acct.balance <= st.funded - st.disbursed);
}

/* Disbursed per beneficiary per period ("q") within the programme's cap. */
static void check_caps(store_txn *t)
{
    store_iter *it;
    if (store_iter_open(t, STORE_STATE, "q", 1, NULL, 0, &it)) return;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        char code[LEDGER_CODE_MAX + 1], id[LEDGER_ID_MAX + 1];
        size_t cn = k[1];
        KN_REQUIRE(cn >= 1 && cn <= LEDGER_CODE_MAX && kl > 2 + cn);
        size_t in = k[2 + cn];
        KN_REQUIRE(in >= 1 && in <= LEDGER_ID_MAX && kl == 3 + cn + in + KN_PK_BYTES + 8);
        memcpy(code, k + 2, cn);
        code[cn] = '\0';
        memcpy(id, k + 3 + cn, in);
        id[in] = '\0';
        ledger_programme pg;
        int64_t got;
        kn_cur c = kn_cur_make(v, vl);
        KN_REQUIRE(kn_r_int(&c, &got) == 0 && c.left == 0);
        KN_REQUIRE(ledger_programme_get(t, code, id, &pg, NULL) == 0);
        KN_REQUIRE(got > 0 && (pg.cap == 0 || (uint64_t)got <= pg.cap));
    }
    store_iter_close(it);
}

/* Reversed so far ("x") never above the original transfer ("X"). */
static void check_reversals(store_txn *t)
{
    store_iter *it;
    if (store_iter_open(t, STORE_STATE, "x", 1, NULL, 0, &it)) return;
    const uint8_t *k, *v, *p;
    size_t kl, vl, n;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        uint8_t key[1 + KN_HASH_BYTES + 2];
        KN_REQUIRE(kl == sizeof key);
        memcpy(key, k, kl);
        key[0] = 'X';
        KN_REQUIRE(store_get(t, STORE_STATE, key, sizeof key, &p, &n) == 0);
        kn_cur c = kn_cur_make(p, n), cv = kn_cur_make(v, vl);
        uint32_t fields;
        uint64_t amount;
        int64_t reversed;
        KN_REQUIRE(kn_r_array(&c, &fields) == 0 && fields == 5);
        for (int i = 0; i < 4; i++) KN_REQUIRE(kn_r_skip(&c) == 0);
        KN_REQUIRE(kn_r_uint(&c, &amount) == 0 && kn_r_int(&cv, &reversed) == 0);
        KN_REQUIRE(reversed > 0 && (uint64_t)reversed <= amount);
    }
    store_iter_close(it);
}

void ledger_check_invariants(store_txn *t)
{
    static audit a; /* too big for a stack frame in the daemon */
    a.n = 0;
    if (ledger_currencies_each(t, add_currency, &a) || !scan_accounts(t, &a)) {
        KN_WARN(MOD, "invariant scan skipped", "err=%s", kn_errname(store_error(t)));
        return;
    }
    programme_audit pa = {t};
    for (uint32_t i = 0; i < a.n; i++) {
        check_currency(t, &a.c[i]);
        KN_REQUIRE(ledger_programmes_each(t, a.c[i].cur.code, check_programme, &pa) == 0);
    }
    check_caps(t);
    check_reversals(t);
    check_cycles(t);
}
