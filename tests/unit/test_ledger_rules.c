/* The money rules of docs/LEDGER.md, table by table: every operation with each
 * of its rejection paths (the exact error, and the whole ledger state
 * byte-for-byte unchanged) and its accepted cases (the exact balances and
 * figures afterwards); decoding and verification rejections; demurrage and fee
 * arithmetic; exchange between cities, its rounding, settlement cycles and
 * their netting; statistics and the account history.
 *
 * One world is built once (genesis plus the setup below, committed). Each case
 * runs in its own write transaction on top of it: an optional extra setup, the
 * transaction under test at its block time, the checks, then an abort, so no
 * case sees another's effects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/ledger/ledger.h"
#include "tests/unit/ledger_fixture.h"

#define CHAIN "koinon-rules"
#define MAP_BYTES (64ull << 20)
#define HOUR 3600000ull
#define DAY LEDGER_DAY_MS
#define T0 1700000000000ull /* genesis */
#define TS (T0 + 2 * DAY)   /* the world is built at this time */
#define TC (TS + HOUR)      /* default block time of a case */
#define T_END (T0 + 31 * DAY)   /* end of "aid" and "free" */
#define T_SWEEP (T0 + 38 * DAY) /* end + grace of "aid" */

/* Keys by role in the world. 0 is "no key", K_ZERO the all-zero key (the
 * currency's own accounts; as a payee, the treasury). */
enum key {
    K_NONE,
    K_ADM1, K_ADM2, K_ADM3, /* consortium admins, majority threshold */
    K_IA1, K_IA2,           /* GRAMA issuer admins, threshold 2 */
    K_IB,                   /* FLEX, DEM and MUT issuer admin, threshold 1 */
    K_PM, K_PM2,            /* programme managers (PM in GRAMA, FLEX, DEM) */
    K_AUD,                  /* GRAMA auditor */
    K_FOOD, K_BOOK,         /* merchants, categories "food" and "books" */
    K_SSE, K_CLR,           /* GRAMA sse and clearing; MUT sse with credit */
    K_BEN1, K_BEN2, K_BEN3, /* beneficiaries */
    K_HOLD1, K_HOLD2,       /* keys without a role */
    K_OUT,                  /* never anything */
    K_ZERO,
    K_N
};

static kn_keypair keys[K_N];

static const uint8_t *pk_of(int k)
{
    return keys[k].pk;
}

typedef struct world {
    char dir[256];
    store_env *env;
    uint64_t nonce;
    uint64_t height;
    uint8_t saved[8][KN_HASH_BYTES]; /* ids of setup transactions, for reverse */
    store_txn *open; /* a case's transaction, aborted if a failed check left it */
} world;

static world W;

/* ---------------------------------------------------------------- templates */

static void add_admin(ledger_currency *c, int k)
{
    memcpy(c->issuer_admins[c->n_issuer_admins++], pk_of(k), KN_PK_BYTES);
}

/* The currencies of the genesis, and those the cases create. */
static void currency_template(const char *code, ledger_currency *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->code, sizeof c->code, "%s", code);
    snprintf(c->name, sizeof c->name, "%s local money", code);
    strcpy(c->city, "Santa Coloma");
    c->scale = 2;
    c->max_supply = 1000000;
    c->issuer_threshold = 1;
    if (!strcmp(code, "GRAMA")) {
        c->flags = LEDGER_CUR_FREEZABLE | LEDGER_CUR_CLAWBACK;
        add_admin(c, K_IA1);
        add_admin(c, K_IA2);
        c->issuer_threshold = 2;
        c->fee_bps = 100;
        c->early_fee_bps = 500;
        c->early_days = 30;
    } else if (!strcmp(code, "FLEX")) {
        c->flags = LEDGER_CUR_AUTH_REQUIRED | LEDGER_CUR_P2P | LEDGER_CUR_HOLDER_REDEEM;
        add_admin(c, K_IB);
    } else if (!strcmp(code, "DEM")) {
        c->flags = LEDGER_CUR_DEMURRAGE | LEDGER_CUR_P2P | LEDGER_CUR_HOLDER_REDEEM;
        c->demurrage_bps = 100;
        c->demurrage_period_ms = DAY;
        add_admin(c, K_IB);
    } else if (!strcmp(code, "MUT")) {
        c->flags = LEDGER_CUR_MUTUAL_CREDIT;
        add_admin(c, K_IB);
    } else if (!strcmp(code, "TRN") || !strcmp(code, "BCN")) { /* other cities */
        c->flags = LEDGER_CUR_FREEZABLE;
        add_admin(c, K_IB);
    } else if (!strcmp(code, "MC2")) {
        c->flags = LEDGER_CUR_MUTUAL_CREDIT;
        add_admin(c, K_IA1);
        add_admin(c, K_IA2);
        c->issuer_threshold = 2;
    } else { /* NEWC and any other new code */
        c->flags = LEDGER_CUR_P2P;
        c->scale = 0;
        c->max_supply = 5000;
        add_admin(c, K_IA1);
        c->fee_bps = 10;
        c->early_fee_bps = 20;
        c->early_days = 1;
    }
}

static void programme_template(const char *code, const char *id, ledger_programme *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->currency, sizeof p->currency, "%s", code);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->start_ms = T0 + DAY;
    p->end_ms = T_END;
    p->budget = 10000;
    p->p2p = true;
    if (!strcmp(id, "aid")) { /* food only, capped per week, a week of grace */
        p->budget = 20000;
        p->cap = 1000;
        p->period_ms = 7 * DAY;
        p->n_categories = 1;
        strcpy(p->categories[0], "food");
        p->p2p = false;
        p->grace_ms = 7 * DAY;
    } else if (!strcmp(id, "later")) {
        p->budget = 1000;
        p->start_ms = T0 + 40 * DAY;
        p->end_ms = T0 + 50 * DAY;
    } else if (!strcmp(id, "big")) {
        p->cap = 10;
    } else if (!strcmp(id, "dx")) {
        p->budget = 5000;
        p->end_ms = T0 + 400 * DAY;
    } else if (!strcmp(id, "new")) {
        p->budget = 500;
        p->start_ms = T0 + 3 * DAY;
        p->end_ms = T0 + 10 * DAY;
        p->cap = 100;
        p->period_ms = DAY;
        p->n_categories = 2;
        strcpy(p->categories[0], "food");
        strcpy(p->categories[1], "books");
        p->p2p = false;
        p->grace_ms = DAY;
    }
    /* "free", "fx": the defaults (no cap, any category, p2p, no grace). */
}

/* ---------------------------------------------------------------- building txs */

/* One operation, its fields by kind as in ledger.h. */
typedef struct op_spec {
    uint8_t kind;
    const char *code;
    int subject;      /* transfer, redeem: payer; grant, revoke, account, clawback: subject */
    const char *prog; /* payer's programme, programme id */
    int to;           /* transfer payee */
    uint64_t amount;  /* amount; grant: credit limit */
    uint32_t role;    /* role, action, reverse op index */
    const char *ref;  /* reference, category, batch id */
    int orig;         /* reverse: index in W.saved, -1 for an id never seen */
    bool memo;
    struct {
        int key;
        uint64_t amount;
    } pay[3]; /* disburse */
    const char *counter;  /* rate: quote; exchange: receiver's currency; settle: creditor */
    uint64_t num, den;    /* rate */
    uint64_t start, end;  /* rate window */
    uint64_t limit;       /* exchange: send-max */
    uint64_t cycle;       /* close, settle */
    uint8_t mode;         /* exchange mode, netting, clearing direction */
} op_spec;

#define ISSUE(c, a) {.kind = LEDGER_OP_ISSUE, .code = c, .amount = a, .ref = "reserve-att-1"}
#define RETIRE(c, a) {.kind = LEDGER_OP_RETIRE, .code = c, .amount = a, .ref = "ret-1"}
#define PAY(c, f, p, t, a) {.kind = LEDGER_OP_TRANSFER, .code = c, .subject = f, .prog = p, .to = t, .amount = a}
#define CURRENCY(c) {.kind = LEDGER_OP_CURRENCY, .code = c}
#define GRANT(c, r, s, cat, lim) {.kind = LEDGER_OP_GRANT, .code = c, .role = r, .subject = s, .ref = cat, .amount = lim}
#define REVOKE(c, r, s) {.kind = LEDGER_OP_REVOKE, .code = c, .role = r, .subject = s}
#define ACCOUNT(c, act, s) {.kind = LEDGER_OP_ACCOUNT, .code = c, .role = act, .subject = s}
#define PROGRAMME(c, id) {.kind = LEDGER_OP_PROGRAMME, .code = c, .prog = id}
#define FUND(c, p, a) {.kind = LEDGER_OP_FUND, .code = c, .prog = p, .amount = a}
#define DISBURSE(c, p, b, ...) {.kind = LEDGER_OP_DISBURSE, .code = c, .prog = p, .ref = b, .pay = {__VA_ARGS__}}
#define REDEEM(c, f, a) {.kind = LEDGER_OP_REDEEM, .code = c, .subject = f, .amount = a, .ref = "payout-1"}
#define REVERSE(c, o, i, a) {.kind = LEDGER_OP_REVERSE, .code = c, .orig = o, .role = i, .amount = a, .ref = "rev-1"}
#define CLAWBACK(c, s, p, a) {.kind = LEDGER_OP_CLAWBACK, .code = c, .subject = s, .prog = p, .amount = a, .ref = "case-1"}
#define EXPIRE(c, p) {.kind = LEDGER_OP_EXPIRE, .code = c, .prog = p}
#define RATE(b, q, n, d, s, e)                                                             \
    {.kind = LEDGER_OP_RATE, .code = b, .counter = q, .num = n, .den = d, .start = s, .end = e}
#define XSEND(a, f, b, r, amt)                                                             \
    {.kind = LEDGER_OP_EXCHANGE, .code = a, .subject = f, .counter = b, .to = r,           \
     .mode = LEDGER_EXCHANGE_SEND, .amount = amt}
#define XDELIVER(a, f, b, r, amt, max)                                                     \
    {.kind = LEDGER_OP_EXCHANGE, .code = a, .subject = f, .counter = b, .to = r,           \
     .mode = LEDGER_EXCHANGE_DELIVER, .amount = amt, .limit = max}
#define CYCLE_CLOSE(n, net) {.kind = LEDGER_OP_CLOSE, .code = "", .cycle = n, .mode = net}
#define SETTLE(debtor, creditor, n, amt)                                                   \
    {.kind = LEDGER_OP_SETTLE, .code = debtor, .counter = creditor, .cycle = n,           \
     .amount = amt, .ref = "wire-1"}
#define CLEARING_FUND(c, a)                                                                \
    {.kind = LEDGER_OP_CLEARING, .code = c, .mode = LEDGER_CLEARING_FUND, .amount = a}
#define CLEARING_RETURN(c, a)                                                              \
    {.kind = LEDGER_OP_CLEARING, .code = c, .mode = LEDGER_CLEARING_RETURN, .amount = a}
#define BILATERAL LEDGER_NETTING_BILATERAL
#define MULTILATERAL LEDGER_NETTING_MULTILATERAL

#define R_CONS LEDGER_ROLE_CONSORTIUM_ADMIN
#define R_ISSUER LEDGER_ROLE_ISSUER_ADMIN
#define R_PM LEDGER_ROLE_PROGRAMME_MANAGER
#define R_AUD LEDGER_ROLE_AUDITOR
#define R_MERCH LEDGER_ROLE_MERCHANT
#define R_SSE LEDGER_ROLE_SSE
#define R_BEN LEDGER_ROLE_BENEFICIARY
#define R_CLR LEDGER_ROLE_CLEARING

static void add_op(ledger_tx *tx, const op_spec *s)
{
    assert_true(tx->n_ops < LEDGER_OPS_MAX);
    ledger_op *op = &tx->ops[tx->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = s->kind;
    snprintf(op->currency, sizeof op->currency, "%s", s->code ? s->code : "");
    snprintf(op->programme, sizeof op->programme, "%s", s->prog ? s->prog : "");
    snprintf(op->ref, sizeof op->ref, "%s", s->ref ? s->ref : "");
    if (s->subject) memcpy(op->from, pk_of(s->subject), KN_PK_BYTES);
    if (s->to) memcpy(op->to, pk_of(s->to), KN_PK_BYTES);
    op->amount = s->amount;
    op->role = s->role;
    snprintf(op->counter, sizeof op->counter, "%s", s->counter ? s->counter : "");
    op->num = s->num;
    op->den = s->den;
    op->start_ms = s->start;
    op->end_ms = s->end;
    op->limit = s->limit;
    op->cycle = s->cycle;
    op->mode = s->mode;
    switch (s->kind) {
    case LEDGER_OP_CURRENCY:
        currency_template(op->currency, &tx->currency_def);
        break;
    case LEDGER_OP_PROGRAMME:
        programme_template(op->currency, op->programme, &tx->programme_def);
        break;
    case LEDGER_OP_DISBURSE:
        tx->n_payees = 0;
        for (int i = 0; i < 3 && s->pay[i].key; i++) {
            memcpy(tx->payees[i].pk, pk_of(s->pay[i].key), KN_PK_BYTES);
            tx->payees[i].amount = s->pay[i].amount;
            tx->n_payees++;
        }
        break;
    case LEDGER_OP_REVERSE:
        if (s->orig >= 0) memcpy(op->link, W.saved[s->orig], KN_HASH_BYTES);
        else memset(op->link, 0xee, KN_HASH_BYTES);
        break;
    case LEDGER_OP_TRANSFER:
    case LEDGER_OP_EXCHANGE:
        op->has_link = s->memo;
        if (s->memo) kn_hash(op->link, "memo", "lunch, salt 7f3a", 16);
        break;
    default:
        break;
    }
}

static void tx_start(ledger_tx *tx)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, CHAIN);
    tx->nonce = ++W.nonce;
    tx->expiry_height = 1u << 30;
}

/* Signs with each key of a 0-terminated list. */
static void tx_sign_all(ledger_tx *tx, const int *signers)
{
    for (int i = 0; signers[i]; i++) assert_int_equal(ledger_tx_sign(tx, &keys[signers[i]]), 0);
}

/* Every case also runs through the mempool's check first: it must reach the
 * same verdict as the apply and write nothing. */
static int apply_at(store_txn *t, const ledger_tx *tx, uint64_t at_ms)
{
    uint8_t before[KN_HASH_BYTES], after[KN_HASH_BYTES];
    uint64_t h = ++W.height;
    state_digest(t, before);
    int checked = ledger_tx_check(t, tx, h, at_ms);
    state_digest(t, after);
    assert_memory_equal(before, after, KN_HASH_BYTES);
    int applied = ledger_tx_apply(t, tx, h, at_ms);
    assert_int_equal(checked, applied);
    return applied;
}

/* Applies one operation that must be accepted; returns nothing, keeps its id
 * in W.saved[slot] when slot >= 0. */
static void do_ok_slot(store_txn *t, uint64_t at_ms, op_spec s, int slot, const int *signers)
{
    ledger_tx tx;
    tx_start(&tx);
    add_op(&tx, &s);
    tx_sign_all(&tx, signers);
    int rc = apply_at(t, &tx, at_ms);
    if (rc) fail_msg("setup op %u (%s) failed: %s", s.kind, ledger_op_name(s.kind), kn_errname(rc));
    if (slot >= 0) memcpy(W.saved[slot], tx.id, KN_HASH_BYTES);
}

#define DO(t, at, spec, ...) do_ok_slot(t, at, (op_spec)spec, -1, (const int[]){__VA_ARGS__, 0})
#define DO_SAVE(t, at, slot, spec, ...)                                                    \
    do_ok_slot(t, at, (op_spec)spec, slot, (const int[]){__VA_ARGS__, 0})

/* ---------------------------------------------------------------- reads */

static int64_t bal(store_txn *t, const char *code, int k, const char *sub)
{
    ledger_account a;
    int rc = ledger_account_get(t, code, pk_of(k), sub, &a);
    if (rc == KN_ENOACCOUNT) return 0;
    if (rc) fail_msg("account %s/%d/%s: %s", code, k, sub, kn_errname(rc));
    return a.balance;
}

static ledger_account acc(store_txn *t, const char *code, int k, const char *sub)
{
    ledger_account a;
    int rc = ledger_account_get(t, code, pk_of(k), sub, &a);
    if (rc) fail_msg("account %s/%d/%s: %s", code, k, sub, kn_errname(rc));
    return a;
}

#define ASSERT_BAL(code, k, sub, v) assert_int_equal(bal(t, code, k, sub), (int64_t)(v))
#define TREASURY(code, v) ASSERT_BAL(code, K_ZERO, LEDGER_SUB_TREASURY, v)

static ledger_currency_stats cstats(store_txn *t, const char *code)
{
    ledger_currency_stats s;
    assert_int_equal(ledger_currency_stats_get(t, code, &s), 0);
    return s;
}

static ledger_programme_stats pstats(store_txn *t, const char *code, const char *id)
{
    ledger_programme p;
    ledger_programme_stats s;
    assert_int_equal(ledger_programme_get(t, code, id, &p, &s), 0);
    return s;
}

static uint32_t roles_mask(store_txn *t, const char *code, int k)
{
    ledger_roles r;
    int rc = ledger_roles_get(t, code, pk_of(k), &r);
    if (rc == KN_ENOTFOUND) return 0;
    assert_int_equal(rc, 0);
    return r.mask;
}

static int64_t supply(store_txn *t, const char *code)
{
    int64_t s;
    assert_int_equal(ledger_supply_get(t, code, &s), 0);
    return s;
}

/* ---------------------------------------------------------------- the world */

static void make_genesis(ledger_genesis *g)
{
    memset(g, 0, sizeof *g);
    strcpy(g->chain_id, CHAIN);
    g->time_ms = T0;
    static const char *codes[] = {"GRAMA", "FLEX", "DEM", "MUT"};
    for (size_t i = 0; i < 4; i++) currency_template(codes[i], &g->currencies[g->n_currencies++]);
    g->n_admins = 3;
    memcpy(g->admins[0], pk_of(K_ADM1), KN_PK_BYTES);
    memcpy(g->admins[1], pk_of(K_ADM2), KN_PK_BYTES);
    memcpy(g->admins[2], pk_of(K_ADM3), KN_PK_BYTES);
    g->admin_threshold = 0; /* a majority: two of three */
}

/* GRAMA after the world: issuing -100000, treasury 92000, aid 3600 (funded
 * 5000, disbursed 1400, spent 300), free 2000 (funded 3000, disbursed 1000,
 * spent 100); BEN1 aid 500 free 400; BEN2 aid 600 free 500; FOOD 150; HOLD1
 * 250; every role holder's main account open at 0. */
static void world_grama(store_txn *t)
{
    DO(t, TS, GRANT("GRAMA", R_PM, K_PM, "", 0), K_IA1, K_IA2);
    DO(t, TS, GRANT("GRAMA", R_PM, K_PM2, "", 0), K_IA1, K_IA2);
    DO(t, TS, GRANT("GRAMA", R_AUD, K_AUD, "", 0), K_IA1, K_IA2);
    DO(t, TS, GRANT("GRAMA", R_MERCH, K_FOOD, "food", 0), K_IA1);
    DO(t, TS, GRANT("GRAMA", R_MERCH, K_BOOK, "books", 0), K_IA2);
    DO(t, TS, GRANT("GRAMA", R_SSE, K_SSE, "", 0), K_IA1);
    DO(t, TS, GRANT("GRAMA", R_CLR, K_CLR, "", 0), K_IA1);
    DO(t, TS, GRANT("GRAMA", R_BEN, K_BEN1, "", 0), K_PM);
    DO(t, TS, GRANT("GRAMA", R_BEN, K_BEN2, "", 0), K_PM);
    DO(t, TS, GRANT("GRAMA", R_BEN, K_BEN3, "", 0), K_IA1);
    DO(t, TS, ISSUE("GRAMA", 100000), K_IA1, K_IA2);
    DO(t, TS, PROGRAMME("GRAMA", "aid"), K_PM);
    DO(t, TS, PROGRAMME("GRAMA", "free"), K_PM);
    DO(t, TS, FUND("GRAMA", "aid", 5000), K_IA1, K_IA2);
    DO(t, TS, FUND("GRAMA", "free", 3000), K_IA1, K_IA2);
    DO(t, TS, DISBURSE("GRAMA", "aid", "b1", {K_BEN1, 800}, {K_BEN2, 600}), K_PM);
    DO(t, TS, DISBURSE("GRAMA", "free", "f1", {K_BEN1, 500}, {K_BEN2, 500}), K_PM);
    DO(t, TS, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 300), K_BEN1);
    DO(t, TS, PAY("GRAMA", K_BEN1, "free", K_FOOD, 100), K_BEN1);
    DO(t, TS, PAY("GRAMA", K_FOOD, "", K_HOLD1, 250), K_FOOD);
}

/* FLEX (auth_required, p2p, holder_redeem): treasury 8000, fx 1000, BEN1 fx
 * 600, FOOD 300, HOLD1 100 (authorised); HOLD2 not authorised. */
static void world_flex(store_txn *t)
{
    DO(t, TS, GRANT("FLEX", R_PM, K_PM, "", 0), K_IB);
    DO(t, TS, GRANT("FLEX", R_BEN, K_BEN1, "", 0), K_IB);
    DO(t, TS, GRANT("FLEX", R_MERCH, K_FOOD, "food", 0), K_IB);
    DO(t, TS, ACCOUNT("FLEX", LEDGER_ACCOUNT_AUTHORISE, K_HOLD1), K_IB);
    DO(t, TS, ISSUE("FLEX", 10000), K_IB);
    DO(t, TS, PROGRAMME("FLEX", "fx"), K_PM);
    DO(t, TS, FUND("FLEX", "fx", 2000), K_IB);
    DO(t, TS, DISBURSE("FLEX", "fx", "x1", {K_BEN1, 1000}), K_PM);
    DO(t, TS, PAY("FLEX", K_BEN1, "fx", K_FOOD, 400), K_BEN1);
    DO(t, TS, PAY("FLEX", K_FOOD, "", K_HOLD1, 100), K_FOOD);
}

/* DEM (1% a day, p2p, holder_redeem): treasury 8000, dx 1000, BEN1 dx 0,
 * FOOD 400 and HOLD1 600, both last charged at TS. */
static void world_dem(store_txn *t)
{
    DO(t, TS, GRANT("DEM", R_PM, K_PM, "", 0), K_IB);
    DO(t, TS, GRANT("DEM", R_BEN, K_BEN1, "", 0), K_IB);
    DO(t, TS, GRANT("DEM", R_MERCH, K_FOOD, "food", 0), K_IB);
    DO(t, TS, ISSUE("DEM", 10000), K_IB);
    DO(t, TS, PROGRAMME("DEM", "dx"), K_PM);
    DO(t, TS, FUND("DEM", "dx", 2000), K_IB);
    DO(t, TS, DISBURSE("DEM", "dx", "d1", {K_BEN1, 1000}), K_PM);
    DO(t, TS, PAY("DEM", K_BEN1, "dx", K_FOOD, 1000), K_BEN1);
    DO(t, TS, PAY("DEM", K_FOOD, "", K_HOLD1, 600), K_FOOD);
}

/* MUT (mutual credit): SSE (limit 1000) at -300, CLR (limit 500) at +300. */
static void world_mut(store_txn *t)
{
    DO(t, TS, GRANT("MUT", R_SSE, K_SSE, "", 1000), K_IB);
    DO(t, TS, GRANT("MUT", R_SSE, K_CLR, "", 500), K_IB);
    DO(t, TS, PAY("MUT", K_SSE, "", K_CLR, 300), K_SSE);
}

static void open_store(world *w)
{
    snprintf(w->dir, sizeof w->dir, "%s/koinon-rules-XXXXXX", tmp_root());
    assert_non_null(mkdtemp(w->dir));
    assert_int_equal(store_open(w->dir, MAP_BYTES, &w->env), 0);
    ledger_genesis g;
    make_genesis(&g);
    store_txn *t;
    assert_int_equal(store_begin(w->env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), 0);
    assert_int_equal(store_commit(t), 0);
}

static void close_store(world *w)
{
    store_close(w->env);
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", w->dir);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", w->dir);
    (void)unlink(path);
    (void)rmdir(w->dir);
}

static int group_setup(void **state)
{
    assert_int_equal(kn_crypto_init(), 0);
    kn_log_setup(KN_LOG_ERROR, false);
    /* Key k from the seed {k, 0x5e}; K_NONE and K_ZERO are no key pairs. */
    fixed_keys(keys + K_ADM1, K_ZERO - K_ADM1, 0x5e);
    open_store(&W);
    store_txn *t;
    assert_int_equal(store_begin(W.env, true, &t), 0);
    world_grama(t);
    world_flex(t);
    world_dem(t);
    world_mut(t);
    ledger_check_invariants(t);
    assert_int_equal(store_commit(t), 0);
    return 0;
}

static int group_teardown(void **state)
{
    if (W.open) store_abort(W.open);
    close_store(&W);
    return 0;
}

/* ---------------------------------------------------------------- the runner */

typedef struct rule_case {
    const char *name;
    void (*setup)(store_txn *t); /* more state, applied before; NULL: the world */
    op_spec op;
    int signers[6]; /* 0-terminated */
    uint64_t at_ms; /* block time; 0: TC */
    int err;
    void (*tweak)(ledger_tx *tx);  /* more operations or a changed definition */
    void (*check)(store_txn *t);   /* an accepted case: the exact figures */
} rule_case;

static void case_tx(const rule_case *c, ledger_tx *tx)
{
    tx_start(tx);
    add_op(tx, &c->op);
    if (c->tweak) c->tweak(tx);
    tx_sign_all(tx, c->signers);
}

/* The transaction is well formed (it decodes to itself and its signatures
 * verify), so whatever it gets comes from the rules. */
static void assert_well_formed(const rule_case *c, const ledger_tx *tx)
{
    kn_buf b = {0}, again = {0};
    ledger_tx_encode(tx, &b);
    ledger_tx *back = malloc(sizeof *back);
    assert_non_null(back);
    int rc = ledger_tx_decode(b.data, b.len, back);
    if (rc) fail_msg("%s: does not decode: %s", c->name, kn_errname(rc));
    assert_memory_equal(back->id, tx->id, KN_HASH_BYTES);
    ledger_tx_encode(back, &again);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    rc = ledger_tx_verify(back, CHAIN);
    if (rc) fail_msg("%s: does not verify: %s", c->name, kn_errname(rc));
    free(back);
    kn_buf_free(&b);
    kn_buf_free(&again);
}

/* Runs one case; returns false (after printing why) when the error differs. */
/* A failed check jumps out of a case with its write transaction open, which
 * would block every later case: the next one aborts it first. */
static store_txn *case_begin(bool write)
{
    if (W.open) store_abort(W.open);
    W.open = NULL;
    assert_int_equal(store_begin(W.env, write, &W.open), 0);
    return W.open;
}

static void case_end(void)
{
    store_abort(W.open);
    W.open = NULL;
}

static bool run_case(const rule_case *c)
{
    store_txn *t = case_begin(true);
    if (c->setup) c->setup(t);
    ledger_tx tx;
    case_tx(c, &tx);
    assert_well_formed(c, &tx);
    uint8_t before[KN_HASH_BYTES], after[KN_HASH_BYTES];
    state_digest(t, before);
    int got = apply_at(t, &tx, c->at_ms ? c->at_ms : TC);
    assert_int_equal(store_error(t), 0); /* a rule error never poisons */
    bool ok = got == c->err;
    if (!ok) {
        printf("[  CASE  ] %s: got %s, want %s\n", c->name, kn_errname(got), kn_errname(c->err));
    } else if (got) {
        state_digest(t, after);
        if (memcmp(before, after, KN_HASH_BYTES)) fail_msg("%s: rejected but state changed", c->name);
    } else if (c->check) {
        c->check(t);
    }
    if (ok) ledger_check_invariants(t); /* a wrong result may have broken one: reported */
    case_end();
    return ok;
}

static void run_cases(const rule_case *cases, size_t n)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) failed += !run_case(&cases[i]);
    if (failed) fail_msg("%zu of %zu cases got another result", failed, n);
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

/* ---------------------------------------------------------------- setups */

static void s_freeze_hold1(store_txn *t)
{
    DO(t, TC, ACCOUNT("GRAMA", LEDGER_ACCOUNT_FREEZE, K_HOLD1), K_IA1);
}

static void s_freeze_food(store_txn *t)
{
    DO(t, TC, ACCOUNT("GRAMA", LEDGER_ACCOUNT_FREEZE, K_FOOD), K_IA1);
}

static void s_freeze_ben3(store_txn *t)
{
    DO(t, TC, ACCOUNT("GRAMA", LEDGER_ACCOUNT_FREEZE, K_BEN3), K_IA1);
}

static void s_close_ben3(store_txn *t)
{
    DO(t, TC, ACCOUNT("GRAMA", LEDGER_ACCOUNT_CLOSE, K_BEN3), K_BEN3);
}

static void s_out_issuer(store_txn *t)
{
    DO(t, TC, GRANT("GRAMA", R_ISSUER, K_OUT, "", 0), K_ADM1, K_ADM2);
}

static void s_out_issuer_ia2_revoked(store_txn *t)
{
    s_out_issuer(t);
    DO(t, TC, REVOKE("GRAMA", R_ISSUER, K_IA2), K_ADM1, K_ADM2);
}

static void s_mc2(store_txn *t)
{
    DO(t, TC, CURRENCY("MC2"), K_ADM1, K_ADM2);
}

static void s_expire_aid(store_txn *t)
{
    DO(t, T_SWEEP, EXPIRE("GRAMA", "aid"), K_PM);
}

static void s_expire_free(store_txn *t)
{
    DO(t, T_END, EXPIRE("GRAMA", "free"), K_PM);
}

/* ---------------------------------------------------------------- currency */

static void chk_newc(store_txn *t)
{
    ledger_currency c;
    assert_int_equal(ledger_currency_get(t, "NEWC", &c), 0);
    assert_string_equal(c.name, "NEWC local money");
    assert_string_equal(c.city, "Santa Coloma");
    assert_true(c.scale == 0 && c.max_supply == 5000 && c.flags == LEDGER_CUR_P2P);
    assert_true(c.n_issuer_admins == 1 && c.issuer_threshold == 1);
    assert_memory_equal(c.issuer_admins[0], pk_of(K_IA1), KN_PK_BYTES);
    assert_true(c.fee_bps == 10 && c.early_fee_bps == 20 && c.early_days == 1);
    assert_true(roles_mask(t, "NEWC", K_IA1) & (1u << R_ISSUER));
    ledger_currency_stats s = cstats(t, "NEWC");
    assert_true(s.supply == 0 && s.issued == 0 && s.outstanding == 0);
}

static void chk_newc_issued(store_txn *t)
{
    TREASURY("NEWC", 100);
    assert_int_equal(supply(t, "NEWC"), 100);
}

static void tw_issue_newc(ledger_tx *tx)
{
    add_op(tx, &(op_spec)ISSUE("NEWC", 100));
}

static void currency_rules(void **state)
{
    static const rule_case cases[] = {
        {"two of three admins", NULL, CURRENCY("NEWC"), {K_ADM1, K_ADM2}, 0, 0, NULL, chk_newc},
        {"all three admins", NULL, CURRENCY("NEWC"), {K_ADM3, K_ADM2, K_ADM1}, 0, 0, NULL,
         chk_newc},
        {"one admin", NULL, CURRENCY("NEWC"), {K_ADM1}, 0, KN_EQUORUM, NULL, NULL},
        {"one admin among others", NULL, CURRENCY("NEWC"), {K_ADM2, K_IA1, K_IB}, 0, KN_EQUORUM, NULL, NULL},
        {"no admin", NULL, CURRENCY("NEWC"), {K_IA1, K_IA2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"code exists", NULL, CURRENCY("GRAMA"), {K_ADM1, K_ADM2}, 0, KN_EEXISTS, NULL, NULL},
        {"later op sees it", NULL, CURRENCY("NEWC"), {K_ADM1, K_ADM2, K_IA1}, 0, 0,
         tw_issue_newc, chk_newc_issued},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- grant */

static void chk_out_cons(store_txn *t)
{
    assert_true(roles_mask(t, "", K_OUT) & (1u << R_CONS));
    uint32_t thr, n;
    assert_int_equal(ledger_consortium_get(t, &thr, &n), 0);
    assert_int_equal(n, 4);
}

static void chk_out_issuer(store_txn *t)
{
    assert_true(roles_mask(t, "GRAMA", K_OUT) & (1u << R_ISSUER));
}

static void chk_out_pm(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_OUT), 1u << R_PM);
}

static void chk_out_auditor(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_OUT), 1u << R_AUD);
}

static void chk_out_merchant(store_txn *t)
{
    ledger_roles r;
    assert_int_equal(ledger_roles_get(t, "GRAMA", pk_of(K_OUT), &r), 0);
    assert_int_equal(r.mask, 1u << R_MERCH);
    assert_string_equal(r.category, "food");
    ledger_account a = acc(t, "GRAMA", K_OUT, "");
    assert_true(a.kind == LEDGER_ACC_MERCHANT && a.balance == 0 && a.floor == 0);
}

static void chk_out_clearing(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_OUT), 1u << R_CLR);
    assert_int_equal(acc(t, "GRAMA", K_OUT, "").kind, LEDGER_ACC_CLEARING);
}

static void chk_out_sse(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_OUT), 1u << R_SSE);
    ledger_account a = acc(t, "GRAMA", K_OUT, "");
    assert_true(a.kind == LEDGER_ACC_SSE && a.floor == 0);
}

static void chk_out_sse_credit(store_txn *t)
{
    ledger_roles r;
    assert_int_equal(ledger_roles_get(t, "MUT", pk_of(K_OUT), &r), 0);
    assert_true(r.mask == 1u << R_SSE && r.credit_limit == 700);
    ledger_account a = acc(t, "MUT", K_OUT, "");
    assert_true(a.kind == LEDGER_ACC_SSE && a.floor == -700);
}

static void chk_out_ben(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_OUT), 1u << R_BEN);
    assert_int_equal(acc(t, "GRAMA", K_OUT, "").kind, LEDGER_ACC_HOLDER);
}

static void chk_out_flex_merchant(store_txn *t)
{
    assert_true(acc(t, "FLEX", K_OUT, "").flags & LEDGER_ACCF_AUTHORISED);
}

static void chk_food_also_sse(store_txn *t)
{
    /* merchant takes precedence over sse for the main account's kind */
    assert_int_equal(roles_mask(t, "GRAMA", K_FOOD), (1u << R_MERCH) | (1u << R_SSE));
    assert_int_equal(acc(t, "GRAMA", K_FOOD, "").kind, LEDGER_ACC_MERCHANT);
}

static void grant_rules(void **state)
{
    static const rule_case cases[] = {
        {"consortium admin by the quorum", NULL, GRANT("", R_CONS, K_OUT, "", 0),
         {K_ADM1, K_ADM3}, 0, 0, NULL, chk_out_cons},
        {"consortium admin by one admin", NULL, GRANT("", R_CONS, K_OUT, "", 0), {K_ADM1}, 0,
         KN_EQUORUM, NULL, NULL},
        {"consortium admin by issuers", NULL, GRANT("", R_CONS, K_OUT, "", 0), {K_IA1, K_IA2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"issuer admin by the consortium quorum", NULL, GRANT("GRAMA", R_ISSUER, K_OUT, "", 0),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_out_issuer},
        {"issuer admin by one consortium admin", NULL, GRANT("GRAMA", R_ISSUER, K_OUT, "", 0),
         {K_ADM2}, 0, KN_EQUORUM, NULL, NULL},
        {"issuer admin by the issuer quorum", NULL, GRANT("GRAMA", R_ISSUER, K_OUT, "", 0),
         {K_IA1, K_IA2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"manager by the issuer quorum", NULL, GRANT("GRAMA", R_PM, K_OUT, "", 0), {K_IA1, K_IA2},
         0, 0, NULL, chk_out_pm},
        {"manager by one issuer of two", NULL, GRANT("GRAMA", R_PM, K_OUT, "", 0), {K_IA1}, 0,
         KN_EQUORUM, NULL, NULL},
        {"manager by consortium admins", NULL, GRANT("GRAMA", R_PM, K_OUT, "", 0),
         {K_ADM1, K_ADM2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"auditor by the issuer quorum", NULL, GRANT("GRAMA", R_AUD, K_OUT, "", 0),
         {K_IA1, K_IA2}, 0, 0, NULL, chk_out_auditor},
        {"auditor by one issuer of two", NULL, GRANT("GRAMA", R_AUD, K_OUT, "", 0), {K_IA2}, 0,
         KN_EQUORUM, NULL, NULL},
        {"merchant by one issuer", NULL, GRANT("GRAMA", R_MERCH, K_OUT, "food", 0), {K_IA2}, 0, 0,
         NULL, chk_out_merchant},
        {"merchant by a manager", NULL, GRANT("GRAMA", R_MERCH, K_OUT, "food", 0), {K_PM}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"merchant by another currency's issuer", NULL, GRANT("GRAMA", R_MERCH, K_OUT, "food", 0),
         {K_IB}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"clearing by one issuer", NULL, GRANT("GRAMA", R_CLR, K_OUT, "", 0), {K_IA1}, 0, 0, NULL,
         chk_out_clearing},
        {"clearing by a holder", NULL, GRANT("GRAMA", R_CLR, K_OUT, "", 0), {K_HOLD1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"sse without limit by one issuer", NULL, GRANT("GRAMA", R_SSE, K_OUT, "", 0), {K_IA1}, 0,
         0, NULL, chk_out_sse},
        {"sse with credit by the quorum", NULL, GRANT("MUT", R_SSE, K_OUT, "", 700), {K_IB}, 0, 0,
         NULL, chk_out_sse_credit},
        {"sse with credit by one issuer of two", s_mc2, GRANT("MC2", R_SSE, K_OUT, "", 700),
         {K_IA1}, 0, KN_EQUORUM, NULL, NULL},
        {"sse with credit without mutual credit", NULL, GRANT("GRAMA", R_SSE, K_OUT, "", 700),
         {K_IA1, K_IA2}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"beneficiary by a manager", NULL, GRANT("GRAMA", R_BEN, K_OUT, "", 0), {K_PM2}, 0, 0,
         NULL, chk_out_ben},
        {"beneficiary by one issuer", NULL, GRANT("GRAMA", R_BEN, K_OUT, "", 0), {K_IA2}, 0, 0,
         NULL, chk_out_ben},
        {"beneficiary by an auditor", NULL, GRANT("GRAMA", R_BEN, K_OUT, "", 0), {K_AUD}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"beneficiary by another currency's manager", NULL, GRANT("MUT", R_BEN, K_OUT, "", 0),
         {K_PM}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"grant authorises the account", NULL, GRANT("FLEX", R_MERCH, K_OUT, "food", 0), {K_IB},
         0, 0, NULL, chk_out_flex_merchant},
        {"second role, kind by precedence", NULL, GRANT("GRAMA", R_SSE, K_FOOD, "", 0), {K_IA1},
         0, 0, NULL, chk_food_also_sse},
        {"unknown currency", NULL, GRANT("NOPE", R_MERCH, K_OUT, "food", 0), {K_IA1}, 0,
         KN_ENOCURRENCY, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- revoke */

static void chk_food_not_merchant(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_FOOD), 0);
    assert_int_equal(acc(t, "GRAMA", K_FOOD, "").kind, LEDGER_ACC_HOLDER);
    ASSERT_BAL("GRAMA", K_FOOD, "", 150); /* the money stays */
}

static void chk_ia2_revoked(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_IA2) & (1u << R_ISSUER), 0);
    assert_true(roles_mask(t, "GRAMA", K_OUT) & (1u << R_ISSUER));
}

static void chk_adm3_revoked(store_txn *t)
{
    uint32_t thr, n;
    assert_int_equal(ledger_consortium_get(t, &thr, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(roles_mask(t, "", K_ADM3), 0);
}

static void chk_clr_not_sse(store_txn *t)
{
    assert_int_equal(roles_mask(t, "MUT", K_CLR), 0);
    ASSERT_BAL("MUT", K_CLR, "", 300);
}

static void chk_ben3_revoked(store_txn *t)
{
    assert_int_equal(roles_mask(t, "GRAMA", K_BEN3), 0);
}

static void revoke_rules(void **state)
{
    static const rule_case cases[] = {
        {"merchant by one issuer", NULL, REVOKE("GRAMA", R_MERCH, K_FOOD), {K_IA1}, 0, 0, NULL,
         chk_food_not_merchant},
        {"merchant by a holder", NULL, REVOKE("GRAMA", R_MERCH, K_FOOD), {K_HOLD1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"role not held", NULL, REVOKE("GRAMA", R_MERCH, K_HOLD1), {K_IA1}, 0, KN_ENOROLE, NULL, NULL},
        {"other role than held", NULL, REVOKE("GRAMA", R_CLR, K_FOOD), {K_IA1}, 0, KN_ENOROLE, NULL, NULL},
        {"issuer below threshold", NULL, REVOKE("GRAMA", R_ISSUER, K_IA2), {K_ADM1, K_ADM2}, 0,
         KN_ELASTADMIN, NULL, NULL},
        {"last issuer", NULL, REVOKE("DEM", R_ISSUER, K_IB), {K_ADM1, K_ADM2}, 0, KN_ELASTADMIN, NULL, NULL},
        {"issuer with a third one", s_out_issuer, REVOKE("GRAMA", R_ISSUER, K_IA2),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_ia2_revoked},
        {"issuer by one consortium admin", s_out_issuer, REVOKE("GRAMA", R_ISSUER, K_IA2),
         {K_ADM1}, 0, KN_EQUORUM, NULL, NULL},
        {"consortium admin, majority left", NULL, REVOKE("", R_CONS, K_ADM3), {K_ADM1, K_ADM2}, 0,
         0, NULL, chk_adm3_revoked},
        {"consortium admin by one", NULL, REVOKE("", R_CONS, K_ADM3), {K_ADM1}, 0, KN_EQUORUM, NULL, NULL},
        {"sse below zero", NULL, REVOKE("MUT", R_SSE, K_SSE), {K_IB}, 0, KN_ENONZERO, NULL, NULL},
        {"sse above zero", NULL, REVOKE("MUT", R_SSE, K_CLR), {K_IB}, 0, 0, NULL,
         chk_clr_not_sse},
        {"manager by one issuer of two", NULL, REVOKE("GRAMA", R_PM, K_PM2), {K_IA1}, 0,
         KN_EQUORUM, NULL, NULL},
        {"auditor by a holder", NULL, REVOKE("GRAMA", R_AUD, K_AUD), {K_HOLD1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"beneficiary by a manager", NULL, REVOKE("GRAMA", R_BEN, K_BEN3), {K_PM}, 0, 0, NULL,
         chk_ben3_revoked},
        {"unknown currency", NULL, REVOKE("NOPE", R_MERCH, K_FOOD), {K_IA1}, 0, KN_ENOCURRENCY, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- account */

static void chk_hold2_authorised(store_txn *t)
{
    ledger_account a = acc(t, "FLEX", K_HOLD2, "");
    assert_true(a.flags == LEDGER_ACCF_AUTHORISED && a.balance == 0 && a.kind == LEDGER_ACC_HOLDER);
}

static void chk_hold1_frozen(store_txn *t)
{
    ledger_account a = acc(t, "GRAMA", K_HOLD1, "");
    assert_true((a.flags & LEDGER_ACCF_FROZEN) && a.balance == 250);
}

static void chk_hold1_unfrozen(store_txn *t)
{
    assert_int_equal(acc(t, "GRAMA", K_HOLD1, "").flags & LEDGER_ACCF_FROZEN, 0);
}

static void chk_ben3_closed(store_txn *t)
{
    assert_true(acc(t, "GRAMA", K_BEN3, "").flags & LEDGER_ACCF_CLOSED);
}

#define AUTHORISE(c, s) ACCOUNT(c, LEDGER_ACCOUNT_AUTHORISE, s)
#define FREEZE(c, s) ACCOUNT(c, LEDGER_ACCOUNT_FREEZE, s)
#define UNFREEZE(c, s) ACCOUNT(c, LEDGER_ACCOUNT_UNFREEZE, s)
#define CLOSE(c, s) ACCOUNT(c, LEDGER_ACCOUNT_CLOSE, s)

static void account_rules(void **state)
{
    static const rule_case cases[] = {
        {"authorise by the issuer", NULL, AUTHORISE("FLEX", K_HOLD2), {K_IB}, 0, 0, NULL,
         chk_hold2_authorised},
        {"authorise by a holder", NULL, AUTHORISE("FLEX", K_HOLD2), {K_HOLD2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"authorise by another currency's issuer", NULL, AUTHORISE("FLEX", K_HOLD2), {K_IA1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"authorise in an unknown currency", NULL, AUTHORISE("NOPE", K_HOLD2), {K_IB}, 0,
         KN_ENOCURRENCY, NULL, NULL},
        {"freeze by one issuer", NULL, FREEZE("GRAMA", K_HOLD1), {K_IA2}, 0, 0, NULL,
         chk_hold1_frozen},
        {"freeze by a manager", NULL, FREEZE("GRAMA", K_HOLD1), {K_PM}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"freeze not freezable", NULL, FREEZE("FLEX", K_HOLD1), {K_IB}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"freeze no account", NULL, FREEZE("GRAMA", K_OUT), {K_IA1}, 0, KN_ENOACCOUNT, NULL, NULL},
        {"unfreeze by one issuer", s_freeze_hold1, UNFREEZE("GRAMA", K_HOLD1), {K_IA2}, 0, 0,
         NULL, chk_hold1_unfrozen},
        {"unfreeze by the holder", s_freeze_hold1, UNFREEZE("GRAMA", K_HOLD1), {K_HOLD1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"unfreeze not freezable", NULL, UNFREEZE("FLEX", K_HOLD1), {K_IB}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"unfreeze no account", NULL, UNFREEZE("GRAMA", K_OUT), {K_IA1}, 0, KN_ENOACCOUNT, NULL, NULL},
        {"close at zero", NULL, CLOSE("GRAMA", K_BEN3), {K_BEN3}, 0, 0, NULL, chk_ben3_closed},
        {"close with money", NULL, CLOSE("GRAMA", K_HOLD1), {K_HOLD1}, 0, KN_ENONZERO, NULL, NULL},
        {"close by an issuer", NULL, CLOSE("GRAMA", K_BEN3), {K_IA1, K_IA2}, 0, KN_EWRONGSIGNER, NULL, NULL},
        {"close frozen", s_freeze_ben3, CLOSE("GRAMA", K_BEN3), {K_BEN3}, 0, KN_EFROZEN, NULL, NULL},
        {"close no account", NULL, CLOSE("GRAMA", K_OUT), {K_OUT}, 0, KN_ENOACCOUNT, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- issue, retire */

static void chk_issued_1000(store_txn *t)
{
    TREASURY("GRAMA", 93000);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_ISSUING, -101000);
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.supply == 101000 && s.issued == 101000 && s.retired == 0);
}

static void chk_issued_max(store_txn *t)
{
    assert_int_equal(supply(t, "GRAMA"), 1000000);
}

static void chk_flex_issued(store_txn *t)
{
    TREASURY("FLEX", 8100);
    assert_int_equal(supply(t, "FLEX"), 10100);
}

static void issue_rules(void **state)
{
    static const rule_case cases[] = {
        {"issuer quorum", NULL, ISSUE("GRAMA", 1000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_issued_1000},
        {"quorum and more signers", NULL, ISSUE("GRAMA", 1000), {K_IA1, K_HOLD1, K_IA2}, 0, 0,
         NULL, chk_issued_1000},
        {"up to the maximum supply", NULL, ISSUE("GRAMA", 900000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_issued_max},
        {"beyond the maximum supply", NULL, ISSUE("GRAMA", 900001), {K_IA1, K_IA2}, 0,
         KN_ESUPPLY, NULL, NULL},
        {"one issuer of two", NULL, ISSUE("GRAMA", 1000), {K_IA2}, 0, KN_EQUORUM, NULL, NULL},
        {"one issuer and a holder", NULL, ISSUE("GRAMA", 1000), {K_IA2, K_HOLD1}, 0, KN_EQUORUM, NULL, NULL},
        {"a holder", NULL, ISSUE("GRAMA", 1000), {K_HOLD1}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"consortium admins", NULL, ISSUE("GRAMA", 1000), {K_ADM1, K_ADM2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"another currency's issuer", NULL, ISSUE("GRAMA", 1000), {K_IB}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"threshold one", NULL, ISSUE("FLEX", 100), {K_IB}, 0, 0, NULL, chk_flex_issued},
        {"an issuer granted later counts", s_out_issuer, ISSUE("GRAMA", 1000), {K_OUT, K_IA1}, 0,
         0, NULL, chk_issued_1000},
        {"a revoked issuer does not", s_out_issuer_ia2_revoked, ISSUE("GRAMA", 1000),
         {K_IA1, K_IA2}, 0, KN_EQUORUM, NULL, NULL},
        {"unknown currency", NULL, ISSUE("NOPE", 1000), {K_IA1, K_IA2}, 0, KN_ENOCURRENCY, NULL, NULL},
    };
    RUN(cases);
}

static void chk_retired_2000(store_txn *t)
{
    TREASURY("GRAMA", 90000);
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.supply == 98000 && s.issued == 100000 && s.retired == 2000);
}

static void chk_retired_all(store_txn *t)
{
    TREASURY("GRAMA", 0);
    assert_int_equal(supply(t, "GRAMA"), 8000);
}

/* MUT has issued nothing; the clearing agent pays 100 of credit-made money
 * back to the treasury. */
static void s_credit_in_treasury(store_txn *t)
{
    DO(t, TC, PAY("MUT", K_CLR, "", K_ZERO, 100), K_CLR);
}

static void retire_rules(void **state)
{
    static const rule_case cases[] = {
        {"issuer quorum", NULL, RETIRE("GRAMA", 2000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_retired_2000},
        {"the whole treasury", NULL, RETIRE("GRAMA", 92000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_retired_all},
        {"beyond the treasury", NULL, RETIRE("GRAMA", 92001), {K_IA1, K_IA2}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"one issuer of two", NULL, RETIRE("GRAMA", 2000), {K_IA2}, 0, KN_EQUORUM, NULL, NULL},
        {"a manager", NULL, RETIRE("GRAMA", 2000), {K_PM}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"unknown currency", NULL, RETIRE("NOPE", 1), {K_IA1, K_IA2}, 0, KN_ENOCURRENCY, NULL, NULL},
        {"credit-made money, never issued", s_credit_in_treasury, RETIRE("MUT", 100), {K_IB}, 0,
         KN_EOVERDRAFT, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- programme, fund */

static void chk_prog_new(store_txn *t)
{
    ledger_programme p;
    ledger_programme_stats s;
    assert_int_equal(ledger_programme_get(t, "GRAMA", "new", &p, &s), 0);
    assert_string_equal(p.currency, "GRAMA");
    assert_string_equal(p.id, "new");
    assert_memory_equal(p.manager, pk_of(K_PM), KN_PK_BYTES);
    assert_true(p.budget == 500 && p.start_ms == T0 + 3 * DAY && p.end_ms == T0 + 10 * DAY);
    assert_true(p.cap == 100 && p.period_ms == DAY && !p.p2p && p.grace_ms == DAY);
    assert_int_equal(p.n_categories, 2);
    assert_string_equal(p.categories[1], "books");
    assert_true(s.funded == 0 && s.disbursed == 0 && s.beneficiaries == 0 && !s.has_expired);
    ledger_account a = acc(t, "GRAMA", K_ZERO, "new");
    assert_true(a.kind == LEDGER_ACC_PROGRAMME && a.balance == 0);
}

static void chk_flex_aid(store_txn *t)
{
    ledger_programme p;
    ledger_programme_stats s;
    assert_int_equal(ledger_programme_get(t, "FLEX", "aid", &p, &s), 0);
    assert_int_equal(p.budget, 20000);
}

static void s_revoke_pm2(store_txn *t)
{
    DO(t, TC, REVOKE("GRAMA", R_PM, K_PM2), K_IA1, K_IA2);
}

static void programme_rules(void **state)
{
    static const rule_case cases[] = {
        {"by a manager", NULL, PROGRAMME("GRAMA", "new"), {K_PM}, 0, 0, NULL, chk_prog_new},
        {"id in use", NULL, PROGRAMME("GRAMA", "aid"), {K_PM}, 0, KN_EEXISTS, NULL, NULL},
        {"same id in another currency", NULL, PROGRAMME("FLEX", "aid"), {K_PM}, 0, 0, NULL,
         chk_flex_aid},
        {"by the issuer quorum", NULL, PROGRAMME("GRAMA", "new"), {K_IA1, K_IA2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"by another currency's manager", NULL, PROGRAMME("MUT", "new"), {K_PM}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"by a revoked manager", s_revoke_pm2, PROGRAMME("GRAMA", "new"), {K_PM2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"unknown currency", NULL, PROGRAMME("NOPE", "new"), {K_PM}, 0, KN_ENOCURRENCY, NULL, NULL},
    };
    RUN(cases);
}

static void chk_fund_1000(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 4600);
    TREASURY("GRAMA", 91000);
    assert_int_equal(pstats(t, "GRAMA", "aid").funded, 6000);
}

static void chk_fund_to_budget(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 18600);
    TREASURY("GRAMA", 77000);
    assert_int_equal(pstats(t, "GRAMA", "aid").funded, 20000);
}

static void s_treasury_low(store_txn *t)
{
    DO(t, TC, RETIRE("GRAMA", 91500), K_IA1, K_IA2);
}

static void fund_rules(void **state)
{
    static const rule_case cases[] = {
        {"issuer quorum", NULL, FUND("GRAMA", "aid", 1000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_fund_1000},
        {"up to the budget", NULL, FUND("GRAMA", "aid", 15000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_fund_to_budget},
        {"beyond the budget", NULL, FUND("GRAMA", "aid", 15001), {K_IA1, K_IA2}, 0, KN_EBUDGET, NULL, NULL},
        {"beyond the treasury", s_treasury_low, FUND("GRAMA", "aid", 501), {K_IA1, K_IA2}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"one issuer of two", NULL, FUND("GRAMA", "aid", 1000), {K_IA1}, 0, KN_EQUORUM, NULL, NULL},
        {"the manager", NULL, FUND("GRAMA", "aid", 1000), {K_PM}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"unknown programme", NULL, FUND("GRAMA", "nope", 1000), {K_IA1, K_IA2}, 0,
         KN_ENOPROGRAMME, NULL, NULL},
        {"another currency's programme", NULL, FUND("FLEX", "aid", 10), {K_IB}, 0,
         KN_ENOPROGRAMME, NULL, NULL},
        {"expired programme", s_expire_free, FUND("GRAMA", "free", 10), {K_IA1, K_IA2}, T_END,
         KN_EPROGEXPIRED, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- disburse */

static void chk_disb_ben3(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN3, "aid", 700);
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 2900);
    ledger_programme_stats s = pstats(t, "GRAMA", "aid");
    assert_true(s.funded == 5000 && s.disbursed == 2100 && s.beneficiaries == 3);
    assert_int_equal(acc(t, "GRAMA", K_BEN3, "aid").kind, LEDGER_ACC_BENEFICIARY);
}

static void chk_disb_three(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN3, "aid", 100);
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 700);
    ASSERT_BAL("GRAMA", K_BEN2, "aid", 1000);
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 2900);
    ASSERT_BAL("GRAMA", K_BEN1, "", 0); /* aid never lands in the main account */
    ledger_programme_stats s = pstats(t, "GRAMA", "aid");
    assert_true(s.disbursed == 2100 && s.beneficiaries == 3);
}

static void chk_disb_ben3_100(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN3, "aid", 100);
}

static void chk_disb_next_period(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 1500);
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 2600);
}

static void chk_disb_free(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN3, "free", 2000);
    ASSERT_BAL("GRAMA", K_ZERO, "free", 0);
    assert_int_equal(pstats(t, "GRAMA", "free").disbursed, 3000);
}

static void s_later(store_txn *t)
{
    DO(t, TC, PROGRAMME("GRAMA", "later"), K_PM);
    DO(t, TC, FUND("GRAMA", "later", 500), K_IA1, K_IA2);
}

static void s_revoke_ben2(store_txn *t)
{
    DO(t, TC, REVOKE("GRAMA", R_BEN, K_BEN2), K_PM);
}

#define B2(...) DISBURSE("GRAMA", "aid", "b2", __VA_ARGS__)

static void disburse_rules(void **state)
{
    static const rule_case cases[] = {
        {"one new beneficiary", NULL, B2({K_BEN3, 700}), {K_PM}, 0, 0, NULL, chk_disb_ben3},
        {"three at once", NULL, B2({K_BEN3, 100}, {K_BEN1, 200}, {K_BEN2, 400}), {K_PM}, 0, 0,
         NULL, chk_disb_three},
        {"batch id reused", NULL, DISBURSE("GRAMA", "aid", "b1", {K_BEN3, 100}), {K_PM}, 0,
         KN_EDUPBATCH, NULL, NULL},
        {"another programme's batch id", NULL, DISBURSE("GRAMA", "aid", "f1", {K_BEN3, 100}),
         {K_PM}, 0, 0, NULL, chk_disb_ben3_100},
        {"up to the cap", NULL, B2({K_BEN1, 200}), {K_PM}, 0, 0, NULL, NULL},
        {"beyond the cap", NULL, B2({K_BEN1, 201}), {K_PM}, 0, KN_ECAP, NULL, NULL},
        {"beyond the cap, last ms of the period", NULL, B2({K_BEN1, 201}), {K_PM},
         T0 + 8 * DAY - 1, KN_ECAP, NULL, NULL},
        {"next period", NULL, B2({K_BEN1, 1000}), {K_PM}, T0 + 8 * DAY, 0, NULL,
         chk_disb_next_period},
        {"beyond the cap in the next period", NULL, B2({K_BEN1, 1001}), {K_PM}, T0 + 8 * DAY,
         KN_ECAP, NULL, NULL},
        {"one key twice beyond the cap", NULL, B2({K_BEN3, 600}, {K_BEN3, 600}), {K_PM}, 0,
         KN_ECAP, NULL, NULL},
        {"not a beneficiary", NULL, B2({K_HOLD1, 10}), {K_PM}, 0, KN_ENOTBENEFICIARY, NULL, NULL},
        {"all or nothing", NULL, B2({K_BEN3, 10}, {K_HOLD1, 10}), {K_PM}, 0,
         KN_ENOTBENEFICIARY, NULL, NULL},
        {"revoked beneficiary", s_revoke_ben2, B2({K_BEN2, 10}), {K_PM}, 0, KN_ENOTBENEFICIARY, NULL, NULL},
        {"frozen beneficiary", s_freeze_ben3, B2({K_BEN3, 10}), {K_PM}, 0, KN_EFROZEN, NULL, NULL},
        {"before the start", s_later, DISBURSE("GRAMA", "later", "l1", {K_BEN3, 10}), {K_PM}, 0,
         KN_EINACTIVE, NULL, NULL},
        {"at the end", NULL, B2({K_BEN3, 10}), {K_PM}, T_END, KN_EINACTIVE, NULL, NULL},
        {"last ms", NULL, B2({K_BEN3, 10}), {K_PM}, T_END - 1, 0, NULL, NULL},
        {"after expiry", s_expire_aid, B2({K_BEN3, 10}), {K_PM}, T_SWEEP, KN_EPROGEXPIRED, NULL, NULL},
        {"the whole programme account", NULL, DISBURSE("GRAMA", "free", "f2", {K_BEN3, 2000}),
         {K_PM}, 0, 0, NULL, chk_disb_free},
        {"beyond the programme account", NULL, DISBURSE("GRAMA", "free", "f2", {K_BEN3, 2001}),
         {K_PM}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"beyond the budget", NULL, DISBURSE("GRAMA", "free", "f2", {K_BEN3, 9001}), {K_PM}, 0,
         KN_EBUDGET, NULL, NULL},
        {"another manager", NULL, B2({K_BEN3, 100}), {K_PM2}, 0, 0, NULL, chk_disb_ben3_100},
        {"an issuer admin", NULL, B2({K_BEN3, 10}), {K_IA1, K_IA2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"unknown programme", NULL, DISBURSE("GRAMA", "nope", "b2", {K_BEN3, 10}), {K_PM}, 0,
         KN_ENOPROGRAMME, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- transfer: routes */

static void chk_hold1_food_50(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 200);
    ASSERT_BAL("GRAMA", K_FOOD, "", 200);
}

static void chk_hold1_sse(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 240);
    ASSERT_BAL("GRAMA", K_SSE, "", 10);
}

static void chk_hold1_clr(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 240);
    ASSERT_BAL("GRAMA", K_CLR, "", 10);
}

static void chk_hold1_treasury(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 240);
    TREASURY("GRAMA", 92010);
    assert_int_equal(supply(t, "GRAMA"), 100000);
}

static void chk_dem_p2p(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 500);
    ASSERT_BAL("DEM", K_HOLD2, "", 100);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 0);
}

static void chk_food_hold2(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    ledger_account a = acc(t, "GRAMA", K_HOLD2, ""); /* opened by the money */
    assert_true(a.balance == 10 && a.kind == LEDGER_ACC_HOLDER && a.received_ms == TC);
}

static void chk_food_book(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    ASSERT_BAL("GRAMA", K_BOOK, "", 10);
}

static void chk_food_ben1_main(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "", 10);
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 500);
}

static void s_hold1_pays_sse_clr(store_txn *t)
{
    DO(t, TC, PAY("GRAMA", K_HOLD1, "", K_SSE, 50), K_HOLD1);
    DO(t, TC, PAY("GRAMA", K_HOLD1, "", K_CLR, 50), K_HOLD1);
}

static void chk_sse_hold2(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_SSE, "", 30);
    ASSERT_BAL("GRAMA", K_HOLD2, "", 20);
}

static void chk_clr_hold2(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_CLR, "", 30);
    ASSERT_BAL("GRAMA", K_HOLD2, "", 20);
}

static void chk_hold1_all(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 0);
    ASSERT_BAL("GRAMA", K_FOOD, "", 400);
}

static void chk_flex_food_hold1(store_txn *t)
{
    ASSERT_BAL("FLEX", K_FOOD, "", 290);
    ASSERT_BAL("FLEX", K_HOLD1, "", 110);
}

static void chk_food_treasury(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    TREASURY("GRAMA", 92010);
}

static void chk_chain(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 50);
    ASSERT_BAL("GRAMA", K_HOLD2, "", 0);
    ASSERT_BAL("GRAMA", K_BOOK, "", 100);
}

static void tw_then_overdraw(ledger_tx *tx)
{
    add_op(tx, &(op_spec)PAY("GRAMA", K_HOLD1, "", K_FOOD, 201));
}

static void tw_then_hold2_pays_book(ledger_tx *tx)
{
    add_op(tx, &(op_spec)PAY("GRAMA", K_HOLD2, "", K_BOOK, 100));
}

static void tw_then_unknown_currency(ledger_tx *tx)
{
    add_op(tx, &(op_spec)PAY("XYZ", K_HOLD1, "", K_FOOD, 1));
}

static void transfer_route_rules(void **state)
{
    static const rule_case cases[] = {
        {"holder to merchant", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 50), {K_HOLD1}, 0, 0, NULL,
         chk_hold1_food_50},
        {"holder to sse", NULL, PAY("GRAMA", K_HOLD1, "", K_SSE, 10), {K_HOLD1}, 0, 0, NULL,
         chk_hold1_sse},
        {"holder to clearing", NULL, PAY("GRAMA", K_HOLD1, "", K_CLR, 10), {K_HOLD1}, 0, 0, NULL,
         chk_hold1_clr},
        {"holder to the treasury", NULL, PAY("GRAMA", K_HOLD1, "", K_ZERO, 10), {K_HOLD1}, 0, 0,
         NULL, chk_hold1_treasury},
        {"holder to holder", NULL, PAY("GRAMA", K_HOLD1, "", K_HOLD2, 10), {K_HOLD1}, 0,
         KN_EROUTE, NULL, NULL},
        {"holder to a beneficiary", NULL, PAY("GRAMA", K_HOLD1, "", K_BEN3, 10), {K_HOLD1}, 0,
         KN_EROUTE, NULL, NULL},
        {"holder to holder with p2p", NULL, PAY("DEM", K_HOLD1, "", K_HOLD2, 100), {K_HOLD1}, 0, 0,
         NULL, chk_dem_p2p},
        {"merchant to a new holder", NULL, PAY("GRAMA", K_FOOD, "", K_HOLD2, 10), {K_FOOD}, 0, 0,
         NULL, chk_food_hold2},
        {"merchant to merchant", NULL, PAY("GRAMA", K_FOOD, "", K_BOOK, 10), {K_FOOD}, 0, 0, NULL,
         chk_food_book},
        {"merchant to a beneficiary's main", NULL, PAY("GRAMA", K_FOOD, "", K_BEN1, 10), {K_FOOD},
         0, 0, NULL, chk_food_ben1_main},
        {"merchant to the treasury", NULL, PAY("GRAMA", K_FOOD, "", K_ZERO, 10), {K_FOOD}, 0, 0,
         NULL, chk_food_treasury},
        {"sse to holder", s_hold1_pays_sse_clr, PAY("GRAMA", K_SSE, "", K_HOLD2, 20), {K_SSE}, 0,
         0, NULL, chk_sse_hold2},
        {"clearing to holder", s_hold1_pays_sse_clr, PAY("GRAMA", K_CLR, "", K_HOLD2, 20),
         {K_CLR}, 0, 0, NULL, chk_clr_hold2},
        {"signed by the payee", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 10), {K_FOOD}, 0,
         KN_EWRONGSIGNER, NULL, NULL},
        {"signed by an issuer quorum", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 10),
         {K_IA1, K_IA2}, 0, KN_EWRONGSIGNER, NULL, NULL},
        {"the whole balance", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 250), {K_HOLD1}, 0, 0, NULL,
         chk_hold1_all},
        {"beyond the balance", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 251), {K_HOLD1}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"payer without an account", NULL, PAY("GRAMA", K_OUT, "", K_FOOD, 1), {K_OUT}, 0,
         KN_ENOACCOUNT, NULL, NULL},
        {"payer at zero", NULL, PAY("GRAMA", K_BOOK, "", K_FOOD, 1), {K_BOOK}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"unknown currency", NULL, PAY("NOPE", K_HOLD1, "", K_FOOD, 1), {K_HOLD1}, 0,
         KN_ENOCURRENCY, NULL, NULL},
        {"frozen payer", s_freeze_hold1, PAY("GRAMA", K_HOLD1, "", K_FOOD, 10), {K_HOLD1}, 0,
         KN_EFROZEN, NULL, NULL},
        {"frozen payer pays back its issuer", s_freeze_hold1, PAY("GRAMA", K_HOLD1, "", K_ZERO, 10),
         {K_HOLD1}, 0, 0, NULL, chk_hold1_treasury},
        {"frozen payee", s_freeze_food, PAY("GRAMA", K_HOLD1, "", K_FOOD, 10), {K_HOLD1}, 0,
         KN_EFROZEN, NULL, NULL},
        {"closed payee", s_close_ben3, PAY("GRAMA", K_FOOD, "", K_BEN3, 10), {K_FOOD}, 0,
         KN_EACCCLOSED, NULL, NULL},
        {"closed payer", s_close_ben3, PAY("GRAMA", K_BEN3, "", K_FOOD, 1), {K_BEN3}, 0,
         KN_EACCCLOSED, NULL, NULL},
        {"unauthorised payee", NULL, PAY("FLEX", K_FOOD, "", K_HOLD2, 10), {K_FOOD}, 0,
         KN_ENOTAUTHACC, NULL, NULL},
        {"authorised payee", NULL, PAY("FLEX", K_FOOD, "", K_HOLD1, 10), {K_FOOD}, 0, 0, NULL,
         chk_flex_food_hold1},
        {"with a memo commitment", NULL, {.kind = LEDGER_OP_TRANSFER, .code = "GRAMA",
                                          .subject = K_HOLD1, .prog = "", .to = K_FOOD,
                                          .amount = 50, .memo = true},
         {K_HOLD1}, 0, 0, NULL, chk_hold1_food_50},
        {"second op overdraws", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 50), {K_HOLD1}, 0,
         KN_EOVERDRAFT, tw_then_overdraw, NULL},
        {"second op unknown currency", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 50), {K_HOLD1}, 0,
         KN_ENOCURRENCY, tw_then_unknown_currency, NULL},
        {"later op spends what an earlier one paid", NULL, PAY("GRAMA", K_FOOD, "", K_HOLD2, 100),
         {K_FOOD, K_HOLD2}, 0, 0, tw_then_hold2_pays_book, chk_chain},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- transfer: aid */

typedef struct spent_list {
    int n;
    char category[8][LEDGER_CATEGORY_MAX + 1];
    int64_t amount[8];
} spent_list;

static void collect_spent(void *ctx, const char *category, int64_t amount)
{
    spent_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->category[l->n], sizeof l->category[0], "%s", category);
    l->amount[l->n++] = amount;
}

static int64_t spent_on(store_txn *t, const char *prog, const char *category)
{
    spent_list l = {0};
    assert_int_equal(ledger_programme_spent_each(t, "GRAMA", prog, collect_spent, &l), 0);
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.category[i], category)) return l.amount[i];
    return 0;
}

static void chk_aid_food(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 400);
    ASSERT_BAL("GRAMA", K_FOOD, "", 250);
    assert_int_equal(pstats(t, "GRAMA", "aid").spent, 400);
    assert_int_equal(spent_on(t, "aid", "food"), 400);
}

static void chk_free_p2p(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "free", 300);
    ASSERT_BAL("GRAMA", K_BEN2, "", 100);
    ASSERT_BAL("GRAMA", K_BEN2, "free", 500);
    assert_int_equal(spent_on(t, "free", "p2p"), 100);
    assert_int_equal(pstats(t, "GRAMA", "free").spent, 200);
}

static void chk_aid_treasury(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 400);
    TREASURY("GRAMA", 92100);
}

static void chk_free_book(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "free", 350);
    ASSERT_BAL("GRAMA", K_BOOK, "", 50);
    assert_int_equal(spent_on(t, "free", "books"), 50);
    assert_int_equal(spent_on(t, "free", "food"), 100);
}

static void chk_aid_last_ms(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 490);
}

static void s_food_pays_ben1(store_txn *t)
{
    DO(t, TC, PAY("GRAMA", K_FOOD, "", K_BEN1, 20), K_FOOD);
}

static void chk_ben1_main_food(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "", 0);
    ASSERT_BAL("GRAMA", K_FOOD, "", 150);
    assert_int_equal(pstats(t, "GRAMA", "aid").spent, 300); /* not aid */
}

static void transfer_aid_rules(void **state)
{
    static const rule_case cases[] = {
        {"aid at a merchant of the category", NULL, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 100),
         {K_BEN1}, 0, 0, NULL, chk_aid_food},
        {"aid at another category", NULL, PAY("GRAMA", K_BEN1, "aid", K_BOOK, 10), {K_BEN1}, 0,
         KN_ECATEGORY, NULL, NULL},
        {"aid at any category", NULL, PAY("GRAMA", K_BEN1, "free", K_BOOK, 50), {K_BEN1}, 0, 0,
         NULL, chk_free_book},
        {"aid to a beneficiary without p2p", NULL, PAY("GRAMA", K_BEN1, "aid", K_BEN2, 10),
         {K_BEN1}, 0, KN_EROUTE, NULL, NULL},
        {"aid to a beneficiary with p2p", NULL, PAY("GRAMA", K_BEN1, "free", K_BEN2, 100),
         {K_BEN1}, 0, 0, NULL, chk_free_p2p},
        {"aid to a holder", NULL, PAY("GRAMA", K_BEN1, "free", K_HOLD1, 10), {K_BEN1}, 0,
         KN_EROUTE, NULL, NULL},
        {"aid to an sse", NULL, PAY("GRAMA", K_BEN1, "free", K_SSE, 10), {K_BEN1}, 0, KN_EROUTE, NULL, NULL},
        {"aid to clearing", NULL, PAY("GRAMA", K_BEN1, "free", K_CLR, 10), {K_BEN1}, 0,
         KN_EROUTE, NULL, NULL},
        {"aid back to the treasury", NULL, PAY("GRAMA", K_BEN1, "aid", K_ZERO, 100), {K_BEN1}, 0,
         0, NULL, chk_aid_treasury},
        {"aid beyond the sub-account", NULL, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 501), {K_BEN1},
         0, KN_EOVERDRAFT, NULL, NULL},
        {"aid at the last ms", NULL, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 10), {K_BEN1}, T_END - 1,
         0, NULL, chk_aid_last_ms},
        {"aid at the end", NULL, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 10), {K_BEN1}, T_END, KN_EINACTIVE, NULL, NULL},
        {"aid after expiry", s_expire_aid, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 10), {K_BEN1},
         T_SWEEP, KN_EPROGEXPIRED, NULL, NULL},
        {"aid of an unknown programme", NULL, PAY("GRAMA", K_BEN1, "nope", K_FOOD, 10), {K_BEN1},
         0, KN_ENOACCOUNT, NULL, NULL},
        {"aid not received", NULL, PAY("GRAMA", K_BEN3, "aid", K_FOOD, 10), {K_BEN3}, 0,
         KN_ENOACCOUNT, NULL, NULL},
        {"aid spent by another key", NULL, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 10), {K_BEN2}, 0,
         KN_EWRONGSIGNER, NULL, NULL},
        {"a beneficiary's own money", s_food_pays_ben1, PAY("GRAMA", K_BEN1, "", K_FOOD, 20),
         {K_BEN1}, 0, 0, NULL, chk_ben1_main_food},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- redeem */

static void chk_redeem_early(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 50);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_FEES, 5);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_ISSUING, -99905);
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.redeemed == 95 && s.fees == 5 && s.supply == 99905 && s.issued == 100000);
}

static void chk_redeem_late(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 0);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_FEES, 1); /* 1.5 rounded down */
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.redeemed == 149 && s.fees == 1 && s.supply == 99851);
}

static void chk_redeem_fee_zero(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 51);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_FEES, 0); /* 0.99 rounded down */
    assert_int_equal(cstats(t, "GRAMA").redeemed, 99);
}

static void chk_dem_holder_redeem(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 500);
    ledger_currency_stats s = cstats(t, "DEM");
    assert_true(s.redeemed == 100 && s.fees == 0 && s.supply == 9900);
}

static void s_hold1_pays_sse_100(store_txn *t)
{
    DO(t, TC, PAY("GRAMA", K_HOLD1, "", K_SSE, 100), K_HOLD1);
}

static void s_hold1_pays_clr_100(store_txn *t)
{
    DO(t, TC, PAY("GRAMA", K_HOLD1, "", K_CLR, 100), K_HOLD1);
}

static void chk_sse_redeem(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_SSE, "", 0);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_FEES, 5);
    assert_int_equal(cstats(t, "GRAMA").redeemed, 95);
}

static void chk_dem_redeem_after_charge(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 0);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 18);
    ledger_currency_stats s = cstats(t, "DEM");
    assert_true(s.supply == 9418 && s.demurrage == 18 && s.redeemed == 582);
}

static void redeem_rules(void **state)
{
    static const rule_case cases[] = {
        {"merchant, early fee", NULL, REDEEM("GRAMA", K_FOOD, 100), {K_FOOD}, 0, 0, NULL,
         chk_redeem_early},
        {"merchant, early fee at the last ms", NULL, REDEEM("GRAMA", K_FOOD, 100), {K_FOOD},
         TS + 30 * DAY - 1, 0, NULL, chk_redeem_early},
        {"merchant, normal fee rounded down", NULL, REDEEM("GRAMA", K_FOOD, 150), {K_FOOD},
         TS + 30 * DAY, 0, NULL, chk_redeem_late},
        {"merchant, fee rounded to zero", NULL, REDEEM("GRAMA", K_FOOD, 99), {K_FOOD},
         TS + 30 * DAY, 0, NULL, chk_redeem_fee_zero},
        {"beyond the balance", NULL, REDEEM("GRAMA", K_FOOD, 151), {K_FOOD}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"not signed by the account", NULL, REDEEM("GRAMA", K_FOOD, 10), {K_IA1, K_IA2}, 0,
         KN_EWRONGSIGNER, NULL, NULL},
        {"sse", s_hold1_pays_sse_100, REDEEM("GRAMA", K_SSE, 100), {K_SSE}, 0, 0, NULL,
         chk_sse_redeem},
        {"clearing", s_hold1_pays_clr_100, REDEEM("GRAMA", K_CLR, 100), {K_CLR}, 0,
         KN_EFORBIDDEN, NULL, NULL},
        {"holder", NULL, REDEEM("GRAMA", K_HOLD1, 10), {K_HOLD1}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"beneficiary's own money", s_food_pays_ben1, REDEEM("GRAMA", K_BEN1, 20),
         {K_BEN1}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"holder with holder_redeem", NULL, REDEEM("DEM", K_HOLD1, 100), {K_HOLD1}, 0, 0, NULL,
         chk_dem_holder_redeem},
        {"frozen merchant", s_freeze_food, REDEEM("GRAMA", K_FOOD, 10), {K_FOOD}, 0, KN_EFROZEN, NULL, NULL},
        {"never below zero on credit", NULL, REDEEM("MUT", K_SSE, 1), {K_SSE}, 0, KN_EOVERDRAFT, NULL, NULL},
        /* CLR's 300 were made by SSE's credit: nothing was issued, so redeeming
         * them would take the supply below zero. */
        {"credit-made money beyond the supply", NULL, REDEEM("MUT", K_CLR, 300), {K_CLR}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"demurrage first, then short", NULL, REDEEM("DEM", K_HOLD1, 600), {K_HOLD1},
         TS + 3 * DAY, KN_EOVERDRAFT, NULL, NULL},
        {"demurrage first, then all", NULL, REDEEM("DEM", K_HOLD1, 582), {K_HOLD1}, TS + 3 * DAY,
         0, NULL, chk_dem_redeem_after_charge},
        {"unknown currency", NULL, REDEEM("NOPE", K_FOOD, 10), {K_FOOD}, 0, KN_ENOCURRENCY, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- reverse */

static void s_paid(store_txn *t)
{
    DO_SAVE(t, TC, 1, PAY("GRAMA", K_HOLD1, "", K_FOOD, 100), K_HOLD1);
}

static void s_paid_rev60(store_txn *t)
{
    s_paid(t);
    DO(t, TC, REVERSE("GRAMA", 1, 0, 60), K_FOOD);
}

static void s_paid_spent(store_txn *t)
{
    s_paid(t);
    DO(t, TC, PAY("GRAMA", K_FOOD, "", K_HOLD2, 200), K_FOOD);
}

static void s_issue_saved(store_txn *t)
{
    DO_SAVE(t, TC, 2, ISSUE("GRAMA", 10), K_IA1, K_IA2);
}

static void s_aid_paid(store_txn *t)
{
    DO_SAVE(t, TC, 3, PAY("GRAMA", K_BEN1, "aid", K_FOOD, 100), K_BEN1);
}

static void s_aid_paid_expired(store_txn *t)
{
    s_aid_paid(t);
    s_expire_aid(t);
}

/* One transaction of two payments: to FOOD 10 (op 0), to BOOK 20 (op 1). */
static void s_two_payments(store_txn *t)
{
    ledger_tx tx;
    tx_start(&tx);
    add_op(&tx, &(op_spec)PAY("GRAMA", K_HOLD1, "", K_FOOD, 10));
    add_op(&tx, &(op_spec)PAY("GRAMA", K_HOLD1, "", K_BOOK, 20));
    tx_sign_all(&tx, (const int[]){K_HOLD1, 0});
    assert_int_equal(apply_at(t, &tx, TC), 0);
    memcpy(W.saved[4], tx.id, KN_HASH_BYTES);
}

static void chk_rev_60(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 210);
    ASSERT_BAL("GRAMA", K_FOOD, "", 190);
}

static void chk_rev_all(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 250);
    ASSERT_BAL("GRAMA", K_FOOD, "", 150);
}

static void chk_rev_aid(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 500);
    ASSERT_BAL("GRAMA", K_FOOD, "", 150);
    TREASURY("GRAMA", 92000);
}

static void chk_rev_aid_expired(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 0);
    ASSERT_BAL("GRAMA", K_FOOD, "", 150);
    TREASURY("GRAMA", 96700); /* 92000 + 3600 + 400 + 600 swept, + 100 reversed */
}

static void chk_rev_op1(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BOOK, "", 0);
    ASSERT_BAL("GRAMA", K_FOOD, "", 160);
    ASSERT_BAL("GRAMA", K_HOLD1, "", 240);
}

static void reverse_rules(void **state)
{
    static const rule_case cases[] = {
        {"by the payee, in part", s_paid, REVERSE("GRAMA", 1, 0, 60), {K_FOOD}, 0, 0, NULL,
         chk_rev_60},
        {"by the issuer quorum, in full", s_paid, REVERSE("GRAMA", 1, 0, 100), {K_IA1, K_IA2}, 0,
         0, NULL, chk_rev_all},
        {"by one issuer of two", s_paid, REVERSE("GRAMA", 1, 0, 100), {K_IA1}, 0, KN_EQUORUM, NULL, NULL},
        {"by the payer", s_paid, REVERSE("GRAMA", 1, 0, 100), {K_HOLD1}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"beyond the original", s_paid, REVERSE("GRAMA", 1, 0, 101), {K_FOOD}, 0, KN_EREVERSAL, NULL, NULL},
        {"together beyond the original", s_paid_rev60, REVERSE("GRAMA", 1, 0, 41), {K_FOOD}, 0,
         KN_EREVERSAL, NULL, NULL},
        {"together up to the original", s_paid_rev60, REVERSE("GRAMA", 1, 0, 40), {K_FOOD}, 0, 0,
         NULL, chk_rev_all},
        {"payee spent it", s_paid_spent, REVERSE("GRAMA", 1, 0, 100), {K_FOOD}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"unknown transaction", s_paid, REVERSE("GRAMA", -1, 0, 10), {K_FOOD}, 0,
         KN_ENOTRANSFER, NULL, NULL},
        {"op index beyond it", s_paid, REVERSE("GRAMA", 1, 1, 10), {K_FOOD}, 0, KN_ENOTRANSFER, NULL, NULL},
        {"not a transfer", s_issue_saved, REVERSE("GRAMA", 2, 0, 10), {K_IA1, K_IA2}, 0,
         KN_ENOTRANSFER, NULL, NULL},
        {"another currency", s_paid, REVERSE("FLEX", 1, 0, 10), {K_IB}, 0, KN_ENOTRANSFER, NULL, NULL},
        {"second op of a transaction", s_two_payments, REVERSE("GRAMA", 4, 1, 20), {K_BOOK}, 0, 0,
         NULL, chk_rev_op1},
        {"payee of another op", s_two_payments, REVERSE("GRAMA", 4, 1, 10), {K_FOOD}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"aid back to the sub-account", s_aid_paid, REVERSE("GRAMA", 3, 0, 100), {K_FOOD}, 0, 0,
         NULL, chk_rev_aid},
        {"aid after expiry to the treasury", s_aid_paid_expired, REVERSE("GRAMA", 3, 0, 100),
         {K_FOOD}, T_SWEEP, 0, NULL, chk_rev_aid_expired},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- clawback */

static void chk_claw_hold1(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 150);
    TREASURY("GRAMA", 92100);
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.clawed_back == 100 && s.supply == 100000);
}

static void chk_claw_aid(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 300);
    TREASURY("GRAMA", 92200);
    assert_int_equal(cstats(t, "GRAMA").clawed_back, 200);
    assert_int_equal(pstats(t, "GRAMA", "aid").returned, 200);
}

static void chk_claw_frozen(store_txn *t)
{
    ledger_account a = acc(t, "GRAMA", K_HOLD1, "");
    assert_true(a.balance == 150 && (a.flags & LEDGER_ACCF_FROZEN));
}

static void s_flex_auditor(store_txn *t)
{
    DO(t, TC, GRANT("FLEX", R_AUD, K_AUD, "", 0), K_IB);
}

static void clawback_rules(void **state)
{
    static const rule_case cases[] = {
        {"quorum and auditor", NULL, CLAWBACK("GRAMA", K_HOLD1, "", 100), {K_IA1, K_IA2, K_AUD},
         0, 0, NULL, chk_claw_hold1},
        {"aid", NULL, CLAWBACK("GRAMA", K_BEN1, "aid", 200), {K_IA1, K_IA2, K_AUD}, 0, 0, NULL,
         chk_claw_aid},
        {"frozen account", s_freeze_hold1, CLAWBACK("GRAMA", K_HOLD1, "", 100),
         {K_IA1, K_IA2, K_AUD}, 0, 0, NULL, chk_claw_frozen},
        {"without an auditor", NULL, CLAWBACK("GRAMA", K_HOLD1, "", 100), {K_IA1, K_IA2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"auditor and one issuer of two", NULL, CLAWBACK("GRAMA", K_HOLD1, "", 100),
         {K_IA1, K_AUD}, 0, KN_EQUORUM, NULL, NULL},
        {"auditor alone", NULL, CLAWBACK("GRAMA", K_HOLD1, "", 100), {K_AUD}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"currency without clawback", s_flex_auditor, CLAWBACK("FLEX", K_HOLD1, "", 10),
         {K_IB, K_AUD}, 0, KN_EFORBIDDEN, NULL, NULL},
        {"beyond the balance", NULL, CLAWBACK("GRAMA", K_HOLD1, "", 251), {K_IA1, K_IA2, K_AUD},
         0, KN_EOVERDRAFT, NULL, NULL},
        {"no account", NULL, CLAWBACK("GRAMA", K_OUT, "", 10), {K_IA1, K_IA2, K_AUD}, 0,
         KN_ENOACCOUNT, NULL, NULL},
        {"unknown programme", NULL, CLAWBACK("GRAMA", K_BEN1, "nope", 10), {K_IA1, K_IA2, K_AUD},
         0, KN_ENOACCOUNT, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- expire */

static void chk_expired_aid(store_txn *t)
{
    TREASURY("GRAMA", 96700);
    ASSERT_BAL("GRAMA", K_ZERO, "aid", 0);
    ASSERT_BAL("GRAMA", K_BEN1, "aid", 0);
    ASSERT_BAL("GRAMA", K_BEN2, "aid", 0);
    ASSERT_BAL("GRAMA", K_BEN1, "free", 400); /* other programmes keep theirs */
    ledger_programme_stats s = pstats(t, "GRAMA", "aid");
    /* All that went back at expiry: the programme account's 3600 and the
     * beneficiaries' unspent 1100. */
    assert_true(s.has_expired && s.returned == 4700 && s.expired == 4700);
    assert_true(s.funded == 5000 && s.disbursed == 1400 && s.spent == 300);
    assert_int_equal(supply(t, "GRAMA"), 100000);
}

static void chk_expired_free(store_txn *t)
{
    TREASURY("GRAMA", 94900);
    assert_true(pstats(t, "GRAMA", "free").has_expired);
}

static void expire_rules(void **state)
{
    static const rule_case cases[] = {
        {"by the manager after end and grace", NULL, EXPIRE("GRAMA", "aid"), {K_PM}, T_SWEEP, 0,
         NULL, chk_expired_aid},
        {"by an issuer admin", NULL, EXPIRE("GRAMA", "aid"), {K_IA2}, T_SWEEP, 0, NULL,
         chk_expired_aid},
        {"by another manager", NULL, EXPIRE("GRAMA", "aid"), {K_PM2}, T_SWEEP, 0, NULL,
         chk_expired_aid},
        {"one ms early", NULL, EXPIRE("GRAMA", "aid"), {K_PM}, T_SWEEP - 1, KN_ENOTENDED, NULL, NULL},
        {"in the grace period", NULL, EXPIRE("GRAMA", "aid"), {K_PM}, T_END, KN_ENOTENDED, NULL, NULL},
        {"while running", NULL, EXPIRE("GRAMA", "aid"), {K_PM}, 0, KN_ENOTENDED, NULL, NULL},
        {"without grace, at the end", NULL, EXPIRE("GRAMA", "free"), {K_PM}, T_END, 0, NULL,
         chk_expired_free},
        {"by a holder", NULL, EXPIRE("GRAMA", "aid"), {K_HOLD1}, T_SWEEP, KN_EUNAUTHORISED, NULL, NULL},
        {"by the auditor", NULL, EXPIRE("GRAMA", "aid"), {K_AUD}, T_SWEEP, KN_EUNAUTHORISED, NULL, NULL},
        {"twice", s_expire_aid, EXPIRE("GRAMA", "aid"), {K_PM}, T_SWEEP, KN_EPROGEXPIRED, NULL, NULL},
        {"unknown programme", NULL, EXPIRE("GRAMA", "nope"), {K_PM}, T_SWEEP, KN_ENOPROGRAMME, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- demurrage */

static void chk_dem_three_periods(store_txn *t)
{
    ledger_account h = acc(t, "DEM", K_HOLD1, ""), f = acc(t, "DEM", K_FOOD, "");
    assert_int_equal(h.balance, 600 - 18 - 100);
    assert_int_equal(f.balance, 400 - 12 + 100);
    assert_true(h.demurrage_ms == TS + 3 * DAY && f.demurrage_ms == TS + 3 * DAY);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 30);
    ledger_currency_stats s = cstats(t, "DEM");
    assert_true(s.demurrage == 30 && s.supply == 10000);
}

static void chk_dem_none_yet(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 500);
    ASSERT_BAL("DEM", K_FOOD, "", 500);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 0);
}

static void s_dem_599(store_txn *t)
{
    DO(t, TS, PAY("DEM", K_HOLD1, "", K_FOOD, 1), K_HOLD1);
}

static void chk_dem_round_down(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 599 - 5 - 1); /* 5.99 charged as 5 */
    ASSERT_BAL("DEM", K_FOOD, "", 401 - 4 + 1);  /* 4.01 charged as 4 */
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 9);
}

static void s_dem_mid_period(store_txn *t)
{
    DO(t, TS + DAY + 20 * HOUR, PAY("DEM", K_HOLD1, "", K_FOOD, 1), K_HOLD1);
}

static void chk_dem_whole_periods(store_txn *t)
{
    /* After the setup: HOLD1 600-6-1 = 593, FOOD 400-4+1 = 397, clocks at
     * TS + 1 day. 1 day 5 hours later, one more whole period. */
    ledger_account h = acc(t, "DEM", K_HOLD1, "");
    assert_int_equal(h.balance, 593 - 5 - 1);
    assert_int_equal(h.demurrage_ms, TS + 2 * DAY);
    ASSERT_BAL("DEM", K_FOOD, "", 397 - 3 + 1);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 6 + 4 + 5 + 3);
}

static void s_dem_late_aid(store_txn *t)
{
    DO(t, TS + 150 * DAY, DISBURSE("DEM", "dx", "d2", {K_BEN1, 100}), K_PM);
}

static void chk_dem_capped(store_txn *t)
{
    ASSERT_BAL("DEM", K_FOOD, "", 10); /* 150% of 400 charged as 400 */
    ASSERT_BAL("DEM", K_BEN1, "dx", 90);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 400);
    ASSERT_BAL("DEM", K_HOLD1, "", 600); /* untouched: not charged */
}

static void chk_dem_all_left(store_txn *t)
{
    ASSERT_BAL("DEM", K_HOLD1, "", 0);
    ASSERT_BAL("DEM", K_FOOD, "", 388 + 582);
}

static void chk_grama_no_demurrage(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_HOLD1, "", 150);
    ASSERT_BAL("GRAMA", K_FOOD, "", 250);
    ASSERT_BAL("GRAMA", K_ZERO, LEDGER_SUB_DEMURRAGE, 0);
}

static void chk_dem_own_accounts(store_txn *t)
{
    TREASURY("DEM", 7900);
    ASSERT_BAL("DEM", K_ZERO, "dx", 1100);
}

static void demurrage_rules(void **state)
{
    static const rule_case cases[] = {
        {"three whole periods", NULL, PAY("DEM", K_HOLD1, "", K_FOOD, 100), {K_HOLD1},
         TS + 3 * DAY + 5 * HOUR, 0, NULL, chk_dem_three_periods},
        {"within the first period", NULL, PAY("DEM", K_HOLD1, "", K_FOOD, 100), {K_HOLD1},
         TS + DAY - 1, 0, NULL, chk_dem_none_yet},
        {"rounded down", s_dem_599, PAY("DEM", K_HOLD1, "", K_FOOD, 1), {K_HOLD1}, TS + DAY, 0,
         NULL, chk_dem_round_down},
        {"clock moves by whole periods", s_dem_mid_period, PAY("DEM", K_HOLD1, "", K_FOOD, 1),
         {K_HOLD1}, TS + 2 * DAY + 5 * HOUR, 0, NULL, chk_dem_whole_periods},
        {"capped at the balance", s_dem_late_aid, PAY("DEM", K_BEN1, "dx", K_FOOD, 10), {K_BEN1},
         TS + 150 * DAY, 0, NULL, chk_dem_capped},
        {"short after the charge", NULL, PAY("DEM", K_HOLD1, "", K_FOOD, 583), {K_HOLD1},
         TS + 3 * DAY, KN_EOVERDRAFT, NULL, NULL},
        {"all that is left after the charge", NULL, PAY("DEM", K_HOLD1, "", K_FOOD, 582),
         {K_HOLD1}, TS + 3 * DAY, 0, NULL, chk_dem_all_left},
        {"not without the flag", NULL, PAY("GRAMA", K_HOLD1, "", K_FOOD, 100), {K_HOLD1},
         TS + 20 * DAY, 0, NULL, chk_grama_no_demurrage},
        {"not on the currency's own accounts", NULL, FUND("DEM", "dx", 100), {K_IB},
         TS + 3 * DAY, 0, NULL, chk_dem_own_accounts},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- mutual credit */

static void chk_mut_to_limit(store_txn *t)
{
    ledger_account a = acc(t, "MUT", K_SSE, "");
    assert_true(a.balance == -1000 && a.floor == -1000 && a.kind == LEDGER_ACC_SSE);
    ASSERT_BAL("MUT", K_CLR, "", 1000);
    assert_int_equal(supply(t, "MUT"), 0);
}

static void chk_mut_clr_credit(store_txn *t)
{
    ASSERT_BAL("MUT", K_CLR, "", -500);
    ASSERT_BAL("MUT", K_SSE, "", 500);
}

static void s_mut_hold1_sse(store_txn *t)
{
    DO(t, TC, GRANT("MUT", R_SSE, K_HOLD1, "", 0), K_IB);
}

static void s_mut_hold2_paid(store_txn *t)
{
    DO(t, TC, PAY("MUT", K_CLR, "", K_HOLD2, 100), K_CLR);
}

static void chk_mut_holder_pays(store_txn *t)
{
    ASSERT_BAL("MUT", K_HOLD2, "", 0);
    ASSERT_BAL("MUT", K_SSE, "", -200);
    ASSERT_BAL("MUT", K_CLR, "", 200);
}

static void mutual_credit_rules(void **state)
{
    static const rule_case cases[] = {
        {"down to the limit", NULL, PAY("MUT", K_SSE, "", K_CLR, 700), {K_SSE}, 0, 0, NULL,
         chk_mut_to_limit},
        {"beyond the limit", NULL, PAY("MUT", K_SSE, "", K_CLR, 701), {K_SSE}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"the other sse's credit", NULL, PAY("MUT", K_CLR, "", K_SSE, 800), {K_CLR}, 0, 0, NULL,
         chk_mut_clr_credit},
        {"beyond the other's limit", NULL, PAY("MUT", K_CLR, "", K_SSE, 801), {K_CLR}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"sse granted without credit", s_mut_hold1_sse, PAY("MUT", K_HOLD1, "", K_SSE, 1),
         {K_HOLD1}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"sse of a currency without credit", NULL, PAY("GRAMA", K_SSE, "", K_HOLD1, 1), {K_SSE}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"holder pays an sse back", s_mut_hold2_paid, PAY("MUT", K_HOLD2, "", K_SSE, 100),
         {K_HOLD2}, 0, 0, NULL, chk_mut_holder_pays},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- between cities: setups */

/* TRN, a second city (issuer IB, freezable): BOOK is a merchant there, SSE an
 * sse entity and CLR a clearing agent; HOLD2 holds 10 TRN without a role.
 * BOOK holds 1000 TRN. The clearing floats: GRAMA 10000 (its treasury drops
 * to 82000), TRN 10000, MUT 1000 (issued for it). Rates in force from TS to
 * T_END: GRAMA->TRN 3/2, TRN->GRAMA 2/3, MUT->GRAMA 1/1, GRAMA->MUT 1/1, and
 * to the unit of account GRAMA->EUR 9/10, TRN->EUR 3/5; MUT has none. */
static void s_fx(store_txn *t)
{
    DO(t, TC, CURRENCY("TRN"), K_ADM1, K_ADM2);
    DO(t, TC, GRANT("TRN", R_MERCH, K_BOOK, "books", 0), K_IB);
    DO(t, TC, GRANT("TRN", R_SSE, K_SSE, "", 0), K_IB);
    DO(t, TC, GRANT("TRN", R_CLR, K_CLR, "", 0), K_IB);
    DO(t, TC, ISSUE("TRN", 100000), K_IB);
    DO(t, TC, PAY("TRN", K_ZERO, "", K_BOOK, 1000), K_IB);
    DO(t, TC, PAY("TRN", K_ZERO, "", K_HOLD2, 10), K_IB);
    DO(t, TC, ISSUE("MUT", 1000), K_IB);
    DO(t, TC, CLEARING_FUND("GRAMA", 10000), K_IA1, K_IA2);
    DO(t, TC, CLEARING_FUND("TRN", 10000), K_IB);
    DO(t, TC, CLEARING_FUND("MUT", 1000), K_IB);
    DO(t, TC, RATE("GRAMA", "TRN", 3, 2, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("TRN", "GRAMA", 2, 3, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("MUT", "GRAMA", 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("GRAMA", "MUT", 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("GRAMA", LEDGER_UNIT, 9, 10, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("TRN", LEDGER_UNIT, 3, 5, TS, T_END), K_ADM1, K_ADM2);
}

static void s_fx_pair_later(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("GRAMA", "TRN", 3, 2, TC + HOUR, T_END), K_ADM1, K_ADM2);
}

static void s_fx_pair_ending(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("GRAMA", "TRN", 3, 2, TS, TC + HOUR), K_ADM1, K_ADM2);
}

static void s_fx_eur_later(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("GRAMA", LEDGER_UNIT, 9, 10, TC + HOUR, T_END), K_ADM1, K_ADM2);
}

static void s_fx_eur_ending(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("GRAMA", LEDGER_UNIT, 9, 10, TS, TC + HOUR), K_ADM1, K_ADM2);
}

static void s_fx_ben1_main(store_txn *t)
{
    s_fx(t);
    s_food_pays_ben1(t);
}

static void s_fx_clr_paid(store_txn *t)
{
    s_fx(t);
    s_hold1_pays_clr_100(t);
}

/* TRN's float down to 10. */
static void s_fx_low_float(store_txn *t)
{
    s_fx(t);
    DO(t, TC, CLEARING_RETURN("TRN", 9990), K_IB);
}

static void s_fx_freeze_food(store_txn *t)
{
    s_fx(t);
    s_freeze_food(t);
}

static void s_fx_freeze_book(store_txn *t)
{
    s_fx(t);
    DO(t, TC, FREEZE("TRN", K_BOOK), K_IB);
}

static void s_fx_dem_float(store_txn *t)
{
    s_fx(t);
    DO(t, TC, CLEARING_FUND("DEM", 1000), K_IB);
}

/* Cycle 1: FOOD sends 10 GRAMA to BOOK (worth floor(10 * 9/10) = 9: GRAMA
 * owes TRN 9), BOOK sends 100 TRN to FOOD (floor(100 * 3/5) = 60: TRN owes
 * GRAMA 60). Positions GRAMA -9 + 60 = +51, TRN +9 - 60 = -51. */
static void s_fx_traded(store_txn *t)
{
    s_fx(t);
    DO(t, TC, XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 10), K_FOOD);
    DO(t, TC, XSEND("TRN", K_BOOK, "GRAMA", K_FOOD, 100), K_BOOK);
}

/* Either netting gives one obligation: TRN pays GRAMA 51. */
static void s_fx_closed(store_txn *t)
{
    s_fx_traded(t);
    DO(t, TC, CYCLE_CLOSE(1, BILATERAL), K_ADM1, K_ADM2);
}

static void s_fx_settled(store_txn *t)
{
    s_fx_closed(t);
    DO(t, TC, SETTLE("TRN", "GRAMA", 1, 51), K_IA1);
}

static void s_closed_empty(store_txn *t)
{
    DO(t, TC, CYCLE_CLOSE(1, MULTILATERAL), K_ADM1, K_ADM2);
}

/* BCN, a third city (issuer IB): HOLD2 is a merchant there with 100 BCN; its
 * float is 1000. Rates TRN->BCN 1/1, BCN->GRAMA 1/1, BCN->EUR 1/1. Then a
 * circle worth 10 cents each way:
 *   FOOD sends 12 GRAMA to BOOK:  gets 18 TRN, worth floor(12 * 9/10) = 10
 *   BOOK sends 17 TRN to HOLD2:   gets 17 BCN, worth floor(17 * 3/5) = 10
 *   HOLD2 sends 10 BCN to FOOD:   gets 10 GRAMA, worth 10
 * so GRAMA owes TRN 10, TRN owes BCN 10, BCN owes GRAMA 10: every position 0. */
static void s_circle(store_txn *t)
{
    s_fx(t);
    DO(t, TC, CURRENCY("BCN"), K_ADM1, K_ADM2);
    DO(t, TC, GRANT("BCN", R_MERCH, K_HOLD2, "books", 0), K_IB);
    DO(t, TC, ISSUE("BCN", 10000), K_IB);
    DO(t, TC, PAY("BCN", K_ZERO, "", K_HOLD2, 100), K_IB);
    DO(t, TC, CLEARING_FUND("BCN", 1000), K_IB);
    DO(t, TC, RATE("TRN", "BCN", 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("BCN", "GRAMA", 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("BCN", LEDGER_UNIT, 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 12), K_FOOD);
    DO(t, TC, XSEND("TRN", K_BOOK, "BCN", K_HOLD2, 17), K_BOOK);
    DO(t, TC, XSEND("BCN", K_HOLD2, "GRAMA", K_FOOD, 10), K_HOLD2);
}

/* The circle and once more FOOD to BOOK, 12 GRAMA worth 10: GRAMA owes TRN
 * 20. Positions GRAMA -10, TRN +10, BCN 0. */
static void s_circle_plus(store_txn *t)
{
    s_circle(t);
    DO(t, TC, XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 12), K_FOOD);
}

static void s_circle_bilateral(store_txn *t)
{
    s_circle(t);
    DO(t, TC, CYCLE_CLOSE(1, BILATERAL), K_ADM1, K_ADM2);
}

static void s_circle_two_settled(store_txn *t)
{
    s_circle_bilateral(t);
    DO(t, TC, SETTLE("GRAMA", "TRN", 1, 10), K_IB);
    DO(t, TC, SETTLE("TRN", "BCN", 1, 10), K_IB);
}

/* ---------------------------------------------------------------- between cities: reads */

#define CLEARING_BAL(code, v) ASSERT_BAL(code, K_ZERO, LEDGER_SUB_CLEARING, v)

typedef struct pos_list {
    int n;
    char code[8][LEDGER_CODE_MAX + 1];
    int64_t amount[8];
} pos_list;

static void collect_position(void *ctx, const char *code, int64_t amount)
{
    pos_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->code[l->n], sizeof l->code[0], "%s", code);
    l->amount[l->n++] = amount;
}

/* A currency's position in a cycle: 0 when it has none. The positions sum to
 * zero in every cycle. */
static int64_t position(store_txn *t, uint64_t cycle, const char *code)
{
    pos_list l = {0};
    int64_t sum = 0, found = 0;
    assert_int_equal(ledger_cycle_positions_each(t, cycle, collect_position, &l), 0);
    for (int i = 0; i < l.n; i++) {
        sum += l.amount[i];
        if (!strcmp(l.code[i], code)) found = l.amount[i];
    }
    assert_int_equal(sum, 0);
    return found;
}

typedef struct ob_list {
    int n;
    ledger_obligation o[8];
} ob_list;

static void collect_obligation(void *ctx, const ledger_obligation *o)
{
    ob_list *l = ctx;
    assert_true(l->n < 8);
    l->o[l->n++] = *o;
}

static ob_list obligations(store_txn *t, uint64_t cycle)
{
    ob_list l = {0};
    assert_int_equal(ledger_cycle_obligations_each(t, cycle, collect_obligation, &l), 0);
    return l;
}

/* The obligation of debtor to creditor, which must exist. */
static ledger_obligation obligation(const ob_list *l, const char *debtor, const char *creditor)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->o[i].debtor, debtor) && !strcmp(l->o[i].creditor, creditor)) return l->o[i];
    fail_msg("no obligation of %s to %s", debtor, creditor);
    return l->o[0];
}

static ledger_cycle cycle_of(store_txn *t, uint64_t number)
{
    ledger_cycle c;
    assert_int_equal(ledger_cycle_get(t, number, &c), 0);
    assert_int_equal(c.number, number);
    return c;
}

static uint64_t current_cycle(store_txn *t)
{
    uint64_t n;
    assert_int_equal(ledger_cycle_current(t, &n), 0);
    return n;
}

static ledger_rate rate_of(store_txn *t, const char *base, const char *quote)
{
    ledger_rate r;
    assert_int_equal(ledger_rate_get(t, base, quote, &r), 0);
    assert_string_equal(r.base, base);
    assert_string_equal(r.quote, quote);
    return r;
}

static void count_rate(void *ctx, const ledger_rate *r)
{
    (void)r;
    (*(int *)ctx)++;
}

static int rates_count(store_txn *t)
{
    int n = 0;
    assert_int_equal(ledger_rates_each(t, count_rate, &n), 0);
    return n;
}

/* ---------------------------------------------------------------- rate */

static void chk_rate_new(store_txn *t)
{
    ledger_rate r = rate_of(t, "GRAMA", "FLEX");
    assert_true(r.num == 5 && r.den == 4 && r.start_ms == TS && r.end_ms == T_END);
    assert_int_equal(r.set_height, W.height);
    ledger_rate back;
    assert_int_equal(ledger_rate_get(t, "FLEX", "GRAMA", &back), KN_ENOTFOUND); /* one way */
    assert_int_equal(rates_count(t), 1);
}

static void chk_rate_eur(store_txn *t)
{
    ledger_rate r = rate_of(t, "FLEX", LEDGER_UNIT);
    assert_true(r.num == 1 && r.den == 100);
}

static void chk_rate_ends_soon(store_txn *t)
{
    assert_int_equal(rate_of(t, "GRAMA", "FLEX").end_ms, TC + 1);
}

static void chk_rate_starts_later(store_txn *t)
{
    assert_int_equal(rate_of(t, "GRAMA", "FLEX").start_ms, T_END);
}

static void chk_rate_replaced(store_txn *t)
{
    ledger_rate r = rate_of(t, "GRAMA", "TRN");
    assert_true(r.num == 7 && r.den == 4 && r.start_ms == TC && r.end_ms == T_END);
    assert_int_equal(r.set_height, W.height);
    assert_int_equal(rates_count(t), 6); /* replaced, not added */
    r = rate_of(t, "TRN", "GRAMA"); /* the other direction stays */
    assert_true(r.num == 2 && r.den == 3);
}

/* The new rate 2/1 at once: 10 GRAMA deliver 20 TRN; the value is still
 * floor(10 * 9/10) = 9. */
static void chk_rate_then_exchange(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    CLEARING_BAL("GRAMA", 10010);
    CLEARING_BAL("TRN", 9980);
    ASSERT_BAL("TRN", K_BOOK, "", 1020);
    assert_int_equal(position(t, 1, "GRAMA"), -9);
    assert_int_equal(position(t, 1, "TRN"), 9);
}

/* A new pair GRAMA->DEM at 1/2: 10 GRAMA deliver 5 DEM. */
static void chk_new_pair_then_exchange(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    CLEARING_BAL("GRAMA", 10010);
    CLEARING_BAL("DEM", 995);
    ASSERT_BAL("DEM", K_FOOD, "", 405);
    assert_int_equal(position(t, 1, "GRAMA"), -9);
    assert_int_equal(position(t, 1, "DEM"), 9);
}

static void tw_then_send_10(ledger_tx *tx)
{
    add_op(tx, &(op_spec)XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 10));
}

static void tw_then_send_dem(ledger_tx *tx)
{
    add_op(tx, &(op_spec)XSEND("GRAMA", K_FOOD, "DEM", K_FOOD, 10));
}

static void tw_then_rate_dem(ledger_tx *tx)
{
    add_op(tx, &(op_spec)RATE("GRAMA", "DEM", 1, 2, TS, T_END));
}

static void rate_rules(void **state)
{
    static const rule_case cases[] = {
        {"by the consortium quorum", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, T_END),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_rate_new},
        {"by all three admins", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, T_END),
         {K_ADM1, K_ADM2, K_ADM3}, 0, 0, NULL, chk_rate_new},
        {"by one admin", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, T_END), {K_ADM1}, 0, KN_EQUORUM,
         NULL, NULL},
        {"by one admin and issuers", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, T_END),
         {K_ADM3, K_IA1, K_IB}, 0, KN_EQUORUM, NULL, NULL},
        {"by issuer admins", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, T_END), {K_IA1, K_IA2, K_IB},
         0, KN_EUNAUTHORISED, NULL, NULL},
        {"to the unit of account", NULL, RATE("FLEX", LEDGER_UNIT, 1, 100, TS, T_END),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_rate_eur},
        {"unknown base", NULL, RATE("NOPE", "GRAMA", 1, 1, TS, T_END), {K_ADM1, K_ADM2}, 0,
         KN_ENOCURRENCY, NULL, NULL},
        {"unknown quote", NULL, RATE("GRAMA", "NOPE", 1, 1, TS, T_END), {K_ADM1, K_ADM2}, 0,
         KN_ENOCURRENCY, NULL, NULL},
        {"the unit of account as base", NULL, RATE(LEDGER_UNIT, "GRAMA", 1, 1, TS, T_END),
         {K_ADM1, K_ADM2}, 0, KN_ENOCURRENCY, NULL, NULL},
        {"end already past", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, TC - 1), {K_ADM1, K_ADM2}, 0,
         KN_ERATEEXPIRED, NULL, NULL},
        {"end long past", NULL, RATE("GRAMA", "FLEX", 5, 4, T0, T0 + 1), {K_ADM1, K_ADM2}, 0,
         KN_ERATEEXPIRED, NULL, NULL},
        {"end one ms ahead", NULL, RATE("GRAMA", "FLEX", 5, 4, TS, TC + 1), {K_ADM1, K_ADM2}, 0,
         0, NULL, chk_rate_ends_soon},
        {"starting later", NULL, RATE("GRAMA", "FLEX", 5, 4, T_END, T_END + DAY),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_rate_starts_later},
        {"replacing a rate", s_fx, RATE("GRAMA", "TRN", 7, 4, TC, T_END), {K_ADM1, K_ADM2}, 0, 0,
         NULL, chk_rate_replaced},
        {"replaced and used in one transaction", s_fx, RATE("GRAMA", "TRN", 2, 1, TC, T_END),
         {K_ADM1, K_ADM2, K_FOOD}, 0, 0, tw_then_send_10, chk_rate_then_exchange},
        {"a new pair used in its transaction", s_fx_dem_float,
         RATE("GRAMA", "DEM", 1, 2, TS, T_END), {K_ADM1, K_ADM2, K_FOOD}, 0, 0, tw_then_send_dem,
         chk_new_pair_then_exchange},
        {"exchange before its rate in one transaction", s_fx_dem_float,
         XSEND("GRAMA", K_FOOD, "DEM", K_FOOD, 10), {K_ADM1, K_ADM2, K_FOOD}, 0,
         KN_EUNKNOWNPAIR, tw_then_rate_dem, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- exchange */

/* Send 10 GRAMA at 3/2: 15 TRN arrive; worth floor(10 * 9/10) = 9 cents. */
static void chk_send_10(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 140);
    CLEARING_BAL("GRAMA", 10010);
    CLEARING_BAL("TRN", 9985);
    ASSERT_BAL("TRN", K_BOOK, "", 1015);
    TREASURY("GRAMA", 82000);
    TREASURY("TRN", 88990);
    assert_int_equal(supply(t, "GRAMA"), 100000);
    assert_int_equal(supply(t, "TRN"), 100000);
    assert_int_equal(position(t, 1, "GRAMA"), -9);
    assert_int_equal(position(t, 1, "TRN"), 9);
    ledger_cycle c = cycle_of(t, 1);
    assert_true(!c.closed && !c.settled && c.exchanges == 1 && c.value == 9);
    assert_int_equal(current_cycle(t), 1);
}

/* Deliver 7 TRN at 3/2: pay ceil(7 * 2/3) = ceil(4.67) = 5 GRAMA, worth
 * floor(5 * 9/10) = floor(4.5) = 4 cents: the value rounds down. */
static void chk_deliver_7(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 145);
    CLEARING_BAL("GRAMA", 10005);
    CLEARING_BAL("TRN", 9993);
    ASSERT_BAL("TRN", K_BOOK, "", 1007);
    assert_int_equal(position(t, 1, "GRAMA"), -4);
    assert_int_equal(position(t, 1, "TRN"), 4);
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.exchanges == 1 && c.value == 4);
}

/* Send 100 TRN at 2/3: floor(66.67) = 66 GRAMA arrive; worth floor(100 *
 * 3/5) = 60 cents at TRN's rate. */
static void chk_send_back_100(store_txn *t)
{
    ASSERT_BAL("TRN", K_BOOK, "", 900);
    CLEARING_BAL("TRN", 10100);
    CLEARING_BAL("GRAMA", 9934);
    ASSERT_BAL("GRAMA", K_FOOD, "", 216);
    assert_int_equal(position(t, 1, "TRN"), -60);
    assert_int_equal(position(t, 1, "GRAMA"), 60);
}

/* A clearing agent pays 100 GRAMA: 150 TRN to the sse entity, worth 90. */
static void chk_clr_to_sse(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_CLR, "", 0);
    CLEARING_BAL("GRAMA", 10100);
    CLEARING_BAL("TRN", 9850);
    ASSERT_BAL("TRN", K_SSE, "", 150);
    assert_int_equal(position(t, 1, "TRN"), 90);
}

/* 20 GRAMA to MUT at 1/1, worth 18: MUT needs no rate to the unit. */
static void chk_send_to_mut(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 130);
    CLEARING_BAL("GRAMA", 10020);
    CLEARING_BAL("MUT", 980);
    ASSERT_BAL("MUT", K_SSE, "", -280);
    assert_int_equal(position(t, 1, "MUT"), 18);
    assert_int_equal(position(t, 1, "GRAMA"), -18);
}

/* All of FOOD's 150: 225 TRN arrive, worth 135. */
static void chk_send_all(store_txn *t)
{
    ASSERT_BAL("GRAMA", K_FOOD, "", 0);
    CLEARING_BAL("GRAMA", 10150);
    CLEARING_BAL("TRN", 9775);
    ASSERT_BAL("TRN", K_BOOK, "", 1225);
    assert_int_equal(position(t, 1, "TRN"), 135);
}

/* The float of 10 entirely: deliver 10 TRN for ceil(20/3) = 7 GRAMA. */
static void chk_float_emptied(store_txn *t)
{
    CLEARING_BAL("TRN", 0);
    ASSERT_BAL("TRN", K_BOOK, "", 1010);
    ASSERT_BAL("GRAMA", K_FOOD, "", 143);
    CLEARING_BAL("GRAMA", 10007);
    TREASURY("TRN", 98980);
    assert_int_equal(position(t, 1, "TRN"), 6); /* floor(7 * 9/10) */
}

#define FX_FOOD_BOOK(amt) XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, amt)

static void s_fx_dem_rates(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("DEM", "GRAMA", 1, 1, TS, T_END), K_ADM1, K_ADM2);
    DO(t, TC, RATE("DEM", LEDGER_UNIT, 1, 1, TS, T_END), K_ADM1, K_ADM2);
}

/* Three whole days after FOOD was last charged: 1% a day of 400 = 12 first,
 * then the 100 paid. The clearing accounts are the currency's own: not
 * charged. */
static void chk_dem_payer_charged(store_txn *t)
{
    ASSERT_BAL("DEM", K_FOOD, "", 400 - 12 - 100);
    ASSERT_BAL("DEM", K_ZERO, LEDGER_SUB_DEMURRAGE, 12);
    CLEARING_BAL("DEM", 100);
    CLEARING_BAL("GRAMA", 9900);
    ASSERT_BAL("GRAMA", K_BOOK, "", 100);
    assert_int_equal(position(t, 1, "DEM"), -100);
}

static void s_fx_mut_eur(store_txn *t)
{
    s_fx(t);
    DO(t, TC, RATE("MUT", LEDGER_UNIT, 1, 1, TS, T_END), K_ADM1, K_ADM2);
}

static void s_fx_exchanged(store_txn *t)
{
    s_fx(t);
    DO_SAVE(t, TC, 5, XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 10), K_FOOD);
}

static void tw_then_deliver_5(ledger_tx *tx)
{
    add_op(tx, &(op_spec)XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 5, 0));
}

static void tw_then_deliver_4(ledger_tx *tx)
{
    add_op(tx, &(op_spec)XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 4, 0));
}

/* Deliver 6 (pay ceil(12/3) = 4) and 4 (pay ceil(8/3) = 3): the float of 10
 * exactly; values floor(4 * 0.9) = 3 and floor(3 * 0.9) = 2. */
static void chk_two_deliveries(store_txn *t)
{
    CLEARING_BAL("TRN", 0);
    ASSERT_BAL("TRN", K_BOOK, "", 1010);
    ASSERT_BAL("GRAMA", K_FOOD, "", 143);
    assert_int_equal(position(t, 1, "TRN"), 5);
    assert_int_equal(cycle_of(t, 1).exchanges, 2);
}

static void exchange_rules(void **state)
{
    static const rule_case cases[] = {
        {"send", s_fx, FX_FOOD_BOOK(10), {K_FOOD}, 0, 0, NULL, chk_send_10},
        {"send with a memo", s_fx, {.kind = LEDGER_OP_EXCHANGE, .code = "GRAMA",
                                    .subject = K_FOOD, .counter = "TRN", .to = K_BOOK,
                                    .mode = LEDGER_EXCHANGE_SEND, .amount = 10, .memo = true},
         {K_FOOD}, 0, 0, NULL, chk_send_10},
        {"deliver, value rounded down", s_fx, XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 7, 0),
         {K_FOOD}, 0, 0, NULL, chk_deliver_7},
        {"deliver within the send-max", s_fx, XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 7, 5),
         {K_FOOD}, 0, 0, NULL, chk_deliver_7},
        {"deliver beyond the send-max", s_fx, XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 7, 4),
         {K_FOOD}, 0, KN_ESENDMAX, NULL, NULL},
        {"send the other way", s_fx, XSEND("TRN", K_BOOK, "GRAMA", K_FOOD, 100), {K_BOOK}, 0, 0,
         NULL, chk_send_back_100},
        {"clearing agent to sse entity", s_fx_clr_paid, XSEND("GRAMA", K_CLR, "TRN", K_SSE, 100),
         {K_CLR}, 0, 0, NULL, chk_clr_to_sse},
        {"receiver's currency without a rate to the unit", s_fx,
         XSEND("GRAMA", K_FOOD, "MUT", K_SSE, 20), {K_FOOD}, 0, 0, NULL, chk_send_to_mut},
        {"the payer's whole balance", s_fx, FX_FOOD_BOOK(150), {K_FOOD}, 0, 0, NULL,
         chk_send_all},
        {"beyond the payer's balance", s_fx, FX_FOOD_BOOK(151), {K_FOOD}, 0, KN_EOVERDRAFT, NULL,
         NULL},
        {"deliver costing beyond the payer's balance", s_fx,
         XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 226, 0), {K_FOOD}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"the whole clearing float", s_fx_low_float,
         XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 10, 0), {K_FOOD}, 0, 0, NULL,
         chk_float_emptied},
        {"beyond the clearing float", s_fx_low_float,
         XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 11, 0), {K_FOOD}, 0, KN_ECLEARINGFLOOR, NULL,
         NULL},
        {"send beyond the clearing float", s_fx_low_float, FX_FOOD_BOOK(8), {K_FOOD}, 0,
         KN_ECLEARINGFLOOR, NULL, NULL}, /* 12 TRN would arrive */
        {"converts to zero", s_fx, XSEND("TRN", K_BOOK, "GRAMA", K_FOOD, 1), {K_BOOK}, 0,
         KN_ETOOSMALL, NULL, NULL}, /* floor(1 * 2/3) = 0 */
        {"worth zero cents", s_fx, FX_FOOD_BOOK(1), {K_FOOD}, 0, KN_ETOOSMALL, NULL,
         NULL}, /* 1 TRN arrives, but floor(1 * 9/10) = 0 */
        {"deliver worth zero cents", s_fx, XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 1, 0),
         {K_FOOD}, 0, KN_ETOOSMALL, NULL, NULL}, /* pays ceil(2/3) = 1, worth 0 */
        {"unknown pair", s_fx, XSEND("GRAMA", K_FOOD, "DEM", K_FOOD, 10), {K_FOOD}, 0,
         KN_EUNKNOWNPAIR, NULL, NULL},
        {"pair before its start", s_fx_pair_later, FX_FOOD_BOOK(10), {K_FOOD}, 0, KN_ENORATE,
         NULL, NULL},
        {"pair from its start", s_fx_pair_later, FX_FOOD_BOOK(10), {K_FOOD}, TC + HOUR, 0, NULL,
         chk_send_10},
        {"pair at its last ms", s_fx_pair_ending, FX_FOOD_BOOK(10), {K_FOOD}, TC + HOUR - 1, 0,
         NULL, chk_send_10},
        {"pair at its end", s_fx_pair_ending, FX_FOOD_BOOK(10), {K_FOOD}, TC + HOUR,
         KN_ERATEEXPIRED, NULL, NULL},
        {"payer's currency without a rate to the unit", s_fx,
         XSEND("MUT", K_CLR, "GRAMA", K_FOOD, 10), {K_CLR}, 0, KN_ENORATE, NULL, NULL},
        {"rate to the unit before its start", s_fx_eur_later, FX_FOOD_BOOK(10), {K_FOOD}, 0,
         KN_ENORATE, NULL, NULL},
        {"rate to the unit after its end", s_fx_eur_ending, FX_FOOD_BOOK(10), {K_FOOD},
         TC + HOUR, KN_ENORATE, NULL, NULL},
        {"payer a holder", s_fx, XSEND("GRAMA", K_HOLD1, "TRN", K_BOOK, 10), {K_HOLD1}, 0,
         KN_ENOEXCHANGE, NULL, NULL},
        {"payer a beneficiary", s_fx_ben1_main, XSEND("GRAMA", K_BEN1, "TRN", K_BOOK, 10),
         {K_BEN1}, 0, KN_ENOEXCHANGE, NULL, NULL},
        {"receiver a holder", s_fx, XSEND("GRAMA", K_FOOD, "TRN", K_HOLD2, 10), {K_FOOD}, 0,
         KN_ENOEXCHANGE, NULL, NULL},
        {"receiver with roles elsewhere only", s_fx, XSEND("GRAMA", K_FOOD, "TRN", K_FOOD, 10),
         {K_FOOD}, 0, KN_ENOEXCHANGE, NULL, NULL},
        {"signed by the receiver", s_fx, FX_FOOD_BOOK(10), {K_BOOK}, 0, KN_EWRONGSIGNER, NULL,
         NULL},
        {"signed by the issuer quorum", s_fx, FX_FOOD_BOOK(10), {K_IA1, K_IA2}, 0,
         KN_EWRONGSIGNER, NULL, NULL},
        /* K_SSE is at -300 on its MUT credit line of 1000. */
        {"on mutual credit", s_fx_mut_eur, XSEND("MUT", K_SSE, "GRAMA", K_FOOD, 10), {K_SSE}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"frozen payer", s_fx_freeze_food, FX_FOOD_BOOK(10), {K_FOOD}, 0, KN_EFROZEN, NULL, NULL},
        {"frozen receiver", s_fx_freeze_book, FX_FOOD_BOOK(10), {K_FOOD}, 0, KN_EFROZEN, NULL,
         NULL},
        {"payer charged demurrage first", s_fx_dem_rates,
         XSEND("DEM", K_FOOD, "GRAMA", K_BOOK, 100), {K_FOOD}, TS + 3 * DAY + 5 * HOUR, 0, NULL,
         chk_dem_payer_charged},
        {"short after the demurrage charge", s_fx_dem_rates,
         XSEND("DEM", K_FOOD, "GRAMA", K_BOOK, 389), {K_FOOD}, TS + 3 * DAY + 5 * HOUR,
         KN_EOVERDRAFT, NULL, NULL},
        {"two within the float together", s_fx_low_float,
         XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 6, 0), {K_FOOD}, 0, 0, tw_then_deliver_4,
         chk_two_deliveries},
        {"two beyond the float together", s_fx_low_float,
         XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 6, 0), {K_FOOD}, 0, KN_ECLEARINGFLOOR,
         tw_then_deliver_5, NULL},
        /* Reversal: an exchange is not a transfer: its legs go through the clearing
         * accounts and into a cycle's positions, and stay there. */
        {"an exchange, by its receiver", s_fx_exchanged, REVERSE("TRN", 5, 0, 10), {K_BOOK}, 0,
         KN_ENOTRANSFER, NULL, NULL},
        {"an exchange, in the payer's currency", s_fx_exchanged, REVERSE("GRAMA", 5, 0, 10),
         {K_IA1, K_IA2}, 0, KN_ENOTRANSFER, NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- clearing float */

static void chk_float_funded(store_txn *t)
{
    TREASURY("GRAMA", 91000);
    CLEARING_BAL("GRAMA", 1000);
    ledger_account a = acc(t, "GRAMA", K_ZERO, LEDGER_SUB_CLEARING);
    assert_true(a.kind == LEDGER_ACC_CLEARING_HOUSE && a.floor == 0);
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.supply == 100000 && s.outstanding == 2400); /* not held by keys */
}

static void chk_float_returned(store_txn *t)
{
    TREASURY("GRAMA", 86000);
    CLEARING_BAL("GRAMA", 6000);
}

static void chk_float_all_returned(store_txn *t)
{
    TREASURY("GRAMA", 92000);
    CLEARING_BAL("GRAMA", 0);
}

/* After the trades GRAMA's float is 10000 + 10 - 66 = 9944. */
static void chk_float_after_trades(store_txn *t)
{
    TREASURY("GRAMA", 82000 + 9944);
    CLEARING_BAL("GRAMA", 0);
}

static void clearing_rules(void **state)
{
    static const rule_case cases[] = {
        {"fund by the issuer quorum", NULL, CLEARING_FUND("GRAMA", 1000), {K_IA1, K_IA2}, 0, 0,
         NULL, chk_float_funded},
        {"fund by one issuer of two", NULL, CLEARING_FUND("GRAMA", 1000), {K_IA1}, 0, KN_EQUORUM,
         NULL, NULL},
        {"fund by consortium admins", NULL, CLEARING_FUND("GRAMA", 1000), {K_ADM1, K_ADM2}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"fund by another currency's issuer", NULL, CLEARING_FUND("GRAMA", 1000), {K_IB}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"fund beyond the treasury", NULL, CLEARING_FUND("GRAMA", 92001), {K_IA1, K_IA2}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"return by the issuer quorum", s_fx, CLEARING_RETURN("GRAMA", 4000), {K_IA1, K_IA2}, 0,
         0, NULL, chk_float_returned},
        {"return all", s_fx, CLEARING_RETURN("GRAMA", 10000), {K_IA1, K_IA2}, 0, 0, NULL,
         chk_float_all_returned},
        {"return beyond the clearing balance", s_fx, CLEARING_RETURN("GRAMA", 10001),
         {K_IA1, K_IA2}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"return with nothing funded", NULL, CLEARING_RETURN("GRAMA", 1), {K_IA1, K_IA2}, 0,
         KN_EOVERDRAFT, NULL, NULL},
        {"return all after trades", s_fx_traded, CLEARING_RETURN("GRAMA", 9944), {K_IA1, K_IA2},
         0, 0, NULL, chk_float_after_trades},
        {"return beyond after trades", s_fx_traded, CLEARING_RETURN("GRAMA", 9945),
         {K_IA1, K_IA2}, 0, KN_EOVERDRAFT, NULL, NULL},
        {"return by one issuer of two", s_fx, CLEARING_RETURN("GRAMA", 1), {K_IA2}, 0,
         KN_EQUORUM, NULL, NULL},
        {"return by a clearing agent", s_fx, CLEARING_RETURN("GRAMA", 1), {K_CLR}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"unknown currency", NULL, CLEARING_FUND("NOPE", 1), {K_IA1, K_IA2}, 0, KN_ENOCURRENCY,
         NULL, NULL},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- close */

static void chk_closed_empty(store_txn *t)
{
    assert_int_equal(current_cycle(t), 2);
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.closed && c.settled); /* no obligation: settled at once */
    assert_true(c.opened_ms == T0 && c.closed_ms == TC && c.closed_height == W.height);
    assert_true(c.netting == MULTILATERAL && c.exchanges == 0 && c.value == 0);
    assert_true(c.obligations == 0 && c.settled_count == 0);
    assert_int_equal(obligations(t, 1).n, 0);
    c = cycle_of(t, 2);
    assert_true(!c.closed && !c.settled && c.opened_ms == TC && c.exchanges == 0);
    ledger_cycle none;
    assert_int_equal(ledger_cycle_get(t, 3, &none), KN_ENOCYCLE);
    assert_int_equal(ledger_cycle_get(t, 0, &none), KN_ENOCYCLE);
    ob_list l = {0};
    assert_int_equal(ledger_cycle_obligations_each(t, 2, collect_obligation, &l), KN_ECYCLEOPEN);
}

static void chk_closed_second(store_txn *t)
{
    assert_int_equal(current_cycle(t), 3);
    assert_true(cycle_of(t, 2).closed && cycle_of(t, 2).settled);
}

/* The positions stay as they were at close; one payment under either netting. */
static void chk_closed_traded(store_txn *t, uint8_t netting)
{
    assert_int_equal(current_cycle(t), 2);
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.closed && !c.settled && c.netting == netting);
    assert_true(c.exchanges == 2 && c.value == 69 && c.obligations == 1 && c.settled_count == 0);
    assert_int_equal(position(t, 1, "GRAMA"), 51);
    assert_int_equal(position(t, 1, "TRN"), -51);
    ob_list l = obligations(t, 1);
    assert_int_equal(l.n, 1);
    ledger_obligation o = obligation(&l, "TRN", "GRAMA");
    assert_true(o.amount == 51 && !o.settled && o.ref[0] == 0);
    assert_int_equal(position(t, 2, "GRAMA"), 0);
    assert_int_equal(cycle_of(t, 2).exchanges, 0);
    CLEARING_BAL("GRAMA", 9944); /* closing moves no money */
    CLEARING_BAL("TRN", 10085);
}

static void chk_closed_traded_bilateral(store_txn *t)
{
    chk_closed_traded(t, BILATERAL);
}

static void chk_closed_traded_multilateral(store_txn *t)
{
    chk_closed_traded(t, MULTILATERAL);
}

/* A later exchange counts in cycle 2; cycle 1 keeps its figures. */
static void chk_next_cycle_counts(store_txn *t)
{
    assert_int_equal(position(t, 2, "GRAMA"), -9);
    assert_int_equal(position(t, 2, "TRN"), 9);
    ledger_cycle c = cycle_of(t, 2);
    assert_true(!c.closed && c.exchanges == 1 && c.value == 9);
    c = cycle_of(t, 1);
    assert_true(c.exchanges == 2 && c.value == 69 && c.obligations == 1);
    assert_int_equal(position(t, 1, "GRAMA"), 51);
    ob_list l = obligations(t, 1);
    assert_true(l.n == 1 && obligation(&l, "TRN", "GRAMA").amount == 51);
}

/* Multilateral: the circle cancels, nothing to pay, settled at close. */
static void chk_circle_multilateral(store_txn *t)
{
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.closed && c.settled && c.obligations == 0);
    assert_true(c.exchanges == 3 && c.value == 30);
    assert_int_equal(obligations(t, 1).n, 0);
    assert_int_equal(position(t, 1, "GRAMA"), 0);
    assert_int_equal(position(t, 1, "TRN"), 0);
    assert_int_equal(position(t, 1, "BCN"), 0);
}

/* Bilateral: each pair pays its own net, so three payments of 10. */
static void chk_circle_bilateral(store_txn *t)
{
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.closed && !c.settled && c.obligations == 3 && c.settled_count == 0);
    ob_list l = obligations(t, 1);
    assert_int_equal(l.n, 3);
    assert_int_equal(obligation(&l, "GRAMA", "TRN").amount, 10);
    assert_int_equal(obligation(&l, "TRN", "BCN").amount, 10);
    assert_int_equal(obligation(&l, "BCN", "GRAMA").amount, 10);
}

/* Multilateral: GRAMA pays TRN its net 10 and that is all. */
static void chk_circle_plus_multilateral(store_txn *t)
{
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.obligations == 1 && !c.settled && c.exchanges == 4 && c.value == 40);
    ob_list l = obligations(t, 1);
    assert_int_equal(l.n, 1);
    assert_int_equal(obligation(&l, "GRAMA", "TRN").amount, 10);
    assert_int_equal(position(t, 1, "GRAMA"), -10);
    assert_int_equal(position(t, 1, "TRN"), 10);
    assert_int_equal(position(t, 1, "BCN"), 0);
}

/* Bilateral: GRAMA pays TRN its gross 20, the rest of the circle 10 each. */
static void chk_circle_plus_bilateral(store_txn *t)
{
    ob_list l = obligations(t, 1);
    assert_int_equal(l.n, 3);
    assert_int_equal(cycle_of(t, 1).obligations, 3);
    assert_int_equal(obligation(&l, "GRAMA", "TRN").amount, 20);
    assert_int_equal(obligation(&l, "TRN", "BCN").amount, 10);
    assert_int_equal(obligation(&l, "BCN", "GRAMA").amount, 10);
}

static void tw_close_then_pay(ledger_tx *tx)
{
    add_op(tx, &(op_spec)PAY("GRAMA", K_FOOD, "", K_HOLD1, 1));
}

static void close_rules(void **state)
{
    static const rule_case cases[] = {
        {"an empty cycle by the consortium quorum", NULL, CYCLE_CLOSE(1, MULTILATERAL),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_closed_empty},
        {"by one admin", NULL, CYCLE_CLOSE(1, MULTILATERAL), {K_ADM2}, 0, KN_EQUORUM, NULL, NULL},
        {"by issuer admins", NULL, CYCLE_CLOSE(1, MULTILATERAL), {K_IA1, K_IA2, K_IB}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"the same cycle twice", s_closed_empty, CYCLE_CLOSE(1, MULTILATERAL), {K_ADM1, K_ADM2},
         0, KN_ECYCLECLOSED, NULL, NULL},
        {"the next cycle", s_closed_empty, CYCLE_CLOSE(2, BILATERAL), {K_ADM1, K_ADM3}, 0, 0,
         NULL, chk_closed_second},
        {"a future cycle", NULL, CYCLE_CLOSE(2, MULTILATERAL), {K_ADM1, K_ADM2}, 0, KN_ENOCYCLE,
         NULL, NULL},
        {"a future cycle after a close", s_closed_empty, CYCLE_CLOSE(3, MULTILATERAL),
         {K_ADM1, K_ADM2}, 0, KN_ENOCYCLE, NULL, NULL},
        {"after trades, bilateral", s_fx_traded, CYCLE_CLOSE(1, BILATERAL), {K_ADM1, K_ADM2}, 0,
         0, NULL, chk_closed_traded_bilateral},
        {"after trades, multilateral", s_fx_traded, CYCLE_CLOSE(1, MULTILATERAL),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_closed_traded_multilateral},
        {"later exchanges count in the next cycle", s_fx_closed, FX_FOOD_BOOK(10), {K_FOOD}, 0,
         0, NULL, chk_next_cycle_counts},
        {"a circle, multilateral", s_circle, CYCLE_CLOSE(1, MULTILATERAL), {K_ADM1, K_ADM2}, 0, 0,
         NULL, chk_circle_multilateral},
        {"a circle, bilateral", s_circle, CYCLE_CLOSE(1, BILATERAL), {K_ADM1, K_ADM2}, 0, 0, NULL,
         chk_circle_bilateral},
        {"a circle and more, multilateral", s_circle_plus, CYCLE_CLOSE(1, MULTILATERAL),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_circle_plus_multilateral},
        {"a circle and more, bilateral", s_circle_plus, CYCLE_CLOSE(1, BILATERAL),
         {K_ADM1, K_ADM2}, 0, 0, NULL, chk_circle_plus_bilateral},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- settle */

static void chk_settled_51(store_txn *t)
{
    ob_list l = obligations(t, 1);
    assert_int_equal(l.n, 1);
    ledger_obligation o = obligation(&l, "TRN", "GRAMA");
    assert_true(o.settled && o.amount == 51 && o.settled_height == W.height);
    assert_string_equal(o.ref, "wire-1");
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.settled && c.settled_count == 1 && c.obligations == 1);
    CLEARING_BAL("GRAMA", 9944); /* paid off the ledger */
    CLEARING_BAL("TRN", 10085);
}

static void chk_circle_one_settled(store_txn *t)
{
    ledger_cycle c = cycle_of(t, 1);
    assert_true(!c.settled && c.settled_count == 1 && c.obligations == 3);
    ob_list l = obligations(t, 1);
    assert_true(obligation(&l, "GRAMA", "TRN").settled);
    assert_false(obligation(&l, "TRN", "BCN").settled);
    assert_false(obligation(&l, "BCN", "GRAMA").settled);
}

static void chk_circle_all_settled(store_txn *t)
{
    ledger_cycle c = cycle_of(t, 1);
    assert_true(c.settled && c.settled_count == 3 && c.obligations == 3);
    ob_list l = obligations(t, 1);
    for (int i = 0; i < l.n; i++) assert_true(l.o[i].settled);
}

static void s_circle_multilateral(store_txn *t)
{
    s_circle(t);
    DO(t, TC, CYCLE_CLOSE(1, MULTILATERAL), K_ADM1, K_ADM2);
}

static void settle_rules(void **state)
{
    static const rule_case cases[] = {
        {"by an issuer admin of the creditor", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51),
         {K_IA1}, 0, 0, NULL, chk_settled_51},
        {"by the creditor's other issuer admin", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51),
         {K_IA2}, 0, 0, NULL, chk_settled_51},
        {"by both cities' issuer admins", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51),
         {K_IA1, K_IB}, 0, 0, NULL, chk_settled_51},
        {"by the debtor's issuer admin", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51), {K_IB}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"by a holder", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51), {K_HOLD1}, 0,
         KN_EUNAUTHORISED, NULL, NULL},
        {"by the consortium quorum", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 51),
         {K_ADM1, K_ADM2}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"amount short", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 50), {K_IA1}, 0, KN_ESETTLEAMOUNT,
         NULL, NULL},
        {"amount over", s_fx_closed, SETTLE("TRN", "GRAMA", 1, 52), {K_IA1}, 0, KN_ESETTLEAMOUNT,
         NULL, NULL},
        {"the other direction", s_fx_closed, SETTLE("GRAMA", "TRN", 1, 51), {K_IB}, 0,
         KN_ENOOBLIGATION, NULL, NULL},
        {"a pair without exchanges", s_fx_closed, SETTLE("DEM", "GRAMA", 1, 51), {K_IA1}, 0,
         KN_ENOOBLIGATION, NULL, NULL},
        {"twice", s_fx_settled, SETTLE("TRN", "GRAMA", 1, 51), {K_IA1}, 0, KN_ESETTLED, NULL,
         NULL},
        {"the open cycle", s_fx_traded, SETTLE("TRN", "GRAMA", 1, 51), {K_IA1}, 0, KN_ECYCLEOPEN,
         NULL, NULL},
        {"the open cycle after a close", s_fx_closed, SETTLE("TRN", "GRAMA", 2, 51), {K_IA1}, 0,
         KN_ECYCLEOPEN, NULL, NULL},
        {"beyond the open cycle", s_fx_closed, SETTLE("TRN", "GRAMA", 3, 51), {K_IA1}, 0,
         KN_ENOCYCLE, NULL, NULL},
        {"beyond the open first cycle", s_fx_traded, SETTLE("TRN", "GRAMA", 2, 51), {K_IA1}, 0,
         KN_ENOCYCLE, NULL, NULL},
        {"a cancelled circle", s_circle_multilateral, SETTLE("GRAMA", "TRN", 1, 10), {K_IB}, 0,
         KN_ENOOBLIGATION, NULL, NULL},
        {"one of three", s_circle_bilateral, SETTLE("GRAMA", "TRN", 1, 10), {K_IB}, 0, 0, NULL,
         chk_circle_one_settled},
        {"the debtor's admin in a circle", s_circle_bilateral, SETTLE("BCN", "GRAMA", 1, 10),
         {K_IB}, 0, KN_EUNAUTHORISED, NULL, NULL},
        {"the last of three", s_circle_two_settled, SETTLE("BCN", "GRAMA", 1, 10), {K_IA2}, 0, 0,
         NULL, chk_circle_all_settled},
    };
    RUN(cases);
}

/* ---------------------------------------------------------------- exchange arithmetic */

static void exchange_amounts_exact(void **state)
{
    enum { SEND = LEDGER_EXCHANGE_SEND, DELIVER = LEDGER_EXCHANGE_DELIVER };
    const uint64_t max = INT64_MAX, term = LEDGER_RATE_TERM_MAX;
    const struct {
        uint64_t num, den;
        uint8_t mode;
        uint64_t amount;
        int err;
        uint64_t pay, get;
    } cases[] = {
        {3, 2, SEND, 10, 0, 10, 15},
        {1, 3, SEND, 7, 0, 7, 2},       /* floor(7/3) */
        {1, 3, DELIVER, 2, 0, 6, 2},    /* ceil(2 * 3) */
        {3, 2, DELIVER, 7, 0, 5, 7},    /* ceil(14/3) = ceil(4.67) */
        {2, 3, DELIVER, 1, 0, 2, 1},    /* ceil(3/2) */
        {2, 3, DELIVER, 2, 0, 3, 2},    /* exactly 3 */
        {1, 3, SEND, 1, KN_ETOOSMALL, 0, 0},
        {1, 3, SEND, 2, KN_ETOOSMALL, 0, 0},
        {1, 3, SEND, 3, 0, 3, 1},
        {1, term, SEND, term - 1, KN_ETOOSMALL, 0, 0},
        {1, term, SEND, term, 0, term, 1},
        {1, 1, SEND, max, 0, max, max},
        {1, 1, DELIVER, max, 0, max, max},
        {3, 2, SEND, max, KN_EOVERFLOW, 0, 0},            /* 1.5 * INT64_MAX arrives */
        {1, 2, DELIVER, max, KN_EOVERFLOW, 0, 0},         /* 2 * INT64_MAX to pay */
        {1, 2, DELIVER, max / 2, 0, max - 1, max / 2},    /* 2 * 4611686018427387903 */
        {1, 2, DELIVER, max / 2 + 1, KN_EOVERFLOW, 0, 0}, /* INT64_MAX + 1 to pay */
        {1, 2, SEND, max + 1, KN_EOVERFLOW, 0, 0},        /* pays beyond int64 */
        /* The products need more than 64 bits; the results do not. */
        {term, term, SEND, max, 0, max, max},
        {term - 1, term, SEND, max, 0, max, 9223372036845552434ull}, /* floor(max * (1 - 1e-12)) */
        {term, 1, DELIVER, max, 0, 9223373, max},         /* ceil(max / 1e12) */
        {1, term, DELIVER, 9223372, 0, 9223372000000000000ull, 9223372},
        {1, term, DELIVER, 9223373, KN_EOVERFLOW, 0, 0},
        {term, 1, SEND, 9223372, 0, 9223372, 9223372000000000000ull},
        {term, 1, SEND, 9223373, KN_EOVERFLOW, 0, 0},
    };
    size_t failed = 0, n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t pay = 0, get = 0;
        int got = ledger_exchange_amounts(cases[i].num, cases[i].den, cases[i].mode,
                                          cases[i].amount, &pay, &get);
        bool ok = got == cases[i].err && (got || (pay == cases[i].pay && get == cases[i].get));
        if (ok) continue;
        printf("[  CASE  ] %s %llu at %llu/%llu: got %s pay %llu get %llu, want %s pay %llu "
               "get %llu\n",
               cases[i].mode == SEND ? "send" : "deliver", (unsigned long long)cases[i].amount,
               (unsigned long long)cases[i].num, (unsigned long long)cases[i].den,
               kn_errname(got), (unsigned long long)pay, (unsigned long long)get,
               kn_errname(cases[i].err), (unsigned long long)cases[i].pay,
               (unsigned long long)cases[i].get);
        failed++;
    }
    if (failed) fail_msg("%zu of %zu exchange amounts differ", failed, n);
}

/* ---------------------------------------------------------------- decoding */

typedef struct decode_case {
    const char *name;
    op_spec op;
    void (*tweak)(ledger_tx *tx);
    int err;
} decode_case;

static void tw_scale(ledger_tx *tx) { tx->currency_def.scale = 19; }
static void tw_flags(ledger_tx *tx) { tx->currency_def.flags |= LEDGER_CUR_FLAGS_ALL + 1; }
static void tw_no_admin(ledger_tx *tx) { tx->currency_def.n_issuer_admins = 0; }
static void tw_threshold_zero(ledger_tx *tx) { tx->currency_def.issuer_threshold = 0; }
static void tw_threshold_high(ledger_tx *tx) { tx->currency_def.issuer_threshold = 2; }
static void tw_fee(ledger_tx *tx) { tx->currency_def.fee_bps = LEDGER_BPS + 1; }
static void tw_early_fee(ledger_tx *tx) { tx->currency_def.early_fee_bps = LEDGER_BPS + 1; }
static void tw_dem_bps(ledger_tx *tx)
{
    tx->currency_def.flags |= LEDGER_CUR_DEMURRAGE;
    tx->currency_def.demurrage_period_ms = DAY;
    tx->currency_def.demurrage_bps = LEDGER_BPS + 1;
}
static void tw_dem_period(ledger_tx *tx)
{
    tx->currency_def.flags |= LEDGER_CUR_DEMURRAGE;
    tx->currency_def.demurrage_bps = 10;
    tx->currency_def.demurrage_period_ms = LEDGER_DEMURRAGE_PERIOD_MIN_MS - 1;
}
static void tw_max_supply_zero(ledger_tx *tx) { tx->currency_def.max_supply = 0; }
static void tw_max_supply_big(ledger_tx *tx) { tx->currency_def.max_supply = (uint64_t)INT64_MAX + 1; }
static void tw_two_currencies(ledger_tx *tx) { add_op(tx, &(op_spec)CURRENCY("NEWD")); }
static void tw_two_programmes(ledger_tx *tx) { add_op(tx, &(op_spec)PROGRAMME("GRAMA", "new2")); }
static void tw_two_batches(ledger_tx *tx)
{
    add_op(tx, &(op_spec)DISBURSE("GRAMA", "aid", "b9", {K_BEN1, 1}));
}
static void tw_no_payees(ledger_tx *tx) { tx->n_payees = 0; }
static void tw_prog_end(ledger_tx *tx) { tx->programme_def.end_ms = tx->programme_def.start_ms; }
static void tw_prog_budget(ledger_tx *tx) { tx->programme_def.budget = 0; }
static void tw_then_expire(ledger_tx *tx) { add_op(tx, &(op_spec)EXPIRE("GRAMA", "aid")); }
static void tw_then_pay(ledger_tx *tx) { add_op(tx, &(op_spec)PAY("GRAMA", K_FOOD, "", K_HOLD1, 1)); }
static void tw_no_ops(ledger_tx *tx) { tx->n_ops = 0; }
static void tw_huge_amount(ledger_tx *tx) { tx->ops[0].amount = (uint64_t)INT64_MAX + 1; }
static void tw_then_close(ledger_tx *tx) { add_op(tx, &(op_spec)CYCLE_CLOSE(1, MULTILATERAL)); }

static void decode_rejections(void **state)
{
    static const decode_case cases[] = {
        {"currency well formed", CURRENCY("NEWC"), NULL, 0},
        {"scale above 18", CURRENCY("NEWC"), tw_scale, KN_EINVAL},
        {"unknown flag", CURRENCY("NEWC"), tw_flags, KN_EINVAL},
        {"no issuer admin", CURRENCY("NEWC"), tw_no_admin, KN_EINVAL},
        {"threshold zero", CURRENCY("NEWC"), tw_threshold_zero, KN_EINVAL},
        {"threshold above the admins", CURRENCY("NEWC"), tw_threshold_high, KN_EINVAL},
        {"fee above one", CURRENCY("NEWC"), tw_fee, KN_EINVAL},
        {"early fee above one", CURRENCY("NEWC"), tw_early_fee, KN_EINVAL},
        {"demurrage above one", CURRENCY("NEWC"), tw_dem_bps, KN_EINVAL},
        {"demurrage period too short", CURRENCY("NEWC"), tw_dem_period, KN_EINVAL},
        {"empty code", CURRENCY(""), NULL, KN_EDECODE},
        {"max supply zero", CURRENCY("NEWC"), tw_max_supply_zero, KN_EINVAL},
        {"max supply beyond int64", CURRENCY("NEWC"), tw_max_supply_big, KN_EINVAL},
        {"two currency definitions", CURRENCY("NEWC"), tw_two_currencies, KN_EINVAL},
        {"programme well formed", PROGRAMME("GRAMA", "new"), NULL, 0},
        {"programme id empty", PROGRAMME("GRAMA", ""), NULL, KN_EDECODE},
        {"programme id with a space", PROGRAMME("GRAMA", "a b"), NULL, KN_EINVAL},
        {"programme id like an own account", PROGRAMME("GRAMA", "#fees"), NULL, KN_EINVAL},
        {"programme end not after start", PROGRAMME("GRAMA", "new"), tw_prog_end, KN_EINVAL},
        {"programme budget zero", PROGRAMME("GRAMA", "new"), tw_prog_budget, KN_EINVAL},
        {"two programme definitions", PROGRAMME("GRAMA", "new"), tw_two_programmes, KN_EINVAL},
        {"merchant category named like SSE spending", GRANT("GRAMA", R_MERCH, K_OUT, "sse", 0),
         NULL, KN_EINVAL},
        {"merchant category otherwise", GRANT("GRAMA", R_MERCH, K_OUT, "sse2", 0), NULL, 0},
        {"role zero", GRANT("GRAMA", 0, K_OUT, "", 0), NULL, KN_EINVAL},
        {"role beyond the last", GRANT("GRAMA", LEDGER_ROLE_MAX + 1, K_OUT, "", 0), NULL,
         KN_EINVAL},
        {"revoke role beyond the last", REVOKE("GRAMA", LEDGER_ROLE_MAX + 1, K_OUT), NULL,
         KN_EINVAL},
        {"action zero", ACCOUNT("GRAMA", 0, K_OUT), NULL, KN_EINVAL},
        {"action beyond the last", ACCOUNT("GRAMA", LEDGER_ACCOUNT_ACTION_MAX + 1, K_OUT), NULL,
         KN_EINVAL},
        {"two batches", DISBURSE("GRAMA", "aid", "b8", {K_BEN1, 1}), tw_two_batches, KN_EINVAL},
        {"batch without payees", DISBURSE("GRAMA", "aid", "b8", {K_BEN1, 1}), tw_no_payees,
         KN_EINVAL},
        {"payee amount zero", DISBURSE("GRAMA", "aid", "b8", {K_BEN1, 0}), NULL, KN_EZEROAMOUNT},
        {"expire then another op", EXPIRE("GRAMA", "aid"), tw_then_pay, KN_EINVAL},
        {"another op then expire", PAY("GRAMA", K_FOOD, "", K_HOLD1, 1), tw_then_expire,
         KN_EINVAL},
        {"transfer zero", PAY("GRAMA", K_FOOD, "", K_HOLD1, 0), NULL, KN_EZEROAMOUNT},
        {"issue zero", ISSUE("GRAMA", 0), NULL, KN_EZEROAMOUNT},
        {"retire zero", RETIRE("GRAMA", 0), NULL, KN_EZEROAMOUNT},
        {"fund zero", FUND("GRAMA", "aid", 0), NULL, KN_EZEROAMOUNT},
        {"redeem zero", REDEEM("GRAMA", K_FOOD, 0), NULL, KN_EZEROAMOUNT},
        {"reverse zero", REVERSE("GRAMA", -1, 0, 0), NULL, KN_EZEROAMOUNT},
        {"clawback zero", CLAWBACK("GRAMA", K_HOLD1, "", 0), NULL, KN_EZEROAMOUNT},
        {"amount beyond int64", PAY("GRAMA", K_FOOD, "", K_HOLD1, 1), tw_huge_amount, KN_EOVERFLOW},
        {"self pay", PAY("GRAMA", K_HOLD1, "", K_HOLD1, 1), NULL, KN_ESELFPAY},
        {"issue without reserve reference", {.kind = LEDGER_OP_ISSUE, .code = "GRAMA",
                                             .amount = 1},
         NULL, KN_EDECODE},
        {"no operations", ISSUE("GRAMA", 1), tw_no_ops, KN_ENOOPS},
        {"rate well formed", RATE("GRAMA", "TRN", LEDGER_RATE_TERM_MAX, 1, TS, T_END), NULL, 0},
        {"rate to the unit well formed", RATE("GRAMA", LEDGER_UNIT, 1, LEDGER_RATE_TERM_MAX, TS,
                                              T_END),
         NULL, 0},
        {"rate numerator zero", RATE("GRAMA", "TRN", 0, 1, TS, T_END), NULL, KN_EINVAL},
        {"rate denominator zero", RATE("GRAMA", "TRN", 1, 0, TS, T_END), NULL, KN_EINVAL},
        {"rate numerator beyond 10^12", RATE("GRAMA", "TRN", LEDGER_RATE_TERM_MAX + 1, 1, TS,
                                             T_END),
         NULL, KN_EINVAL},
        {"rate denominator beyond 10^12", RATE("GRAMA", "TRN", 1, LEDGER_RATE_TERM_MAX + 1, TS,
                                               T_END),
         NULL, KN_EINVAL},
        {"exchange well formed", XDELIVER("GRAMA", K_FOOD, "TRN", K_BOOK, 5, 9), NULL, 0},
        {"exchange zero", XSEND("GRAMA", K_FOOD, "TRN", K_BOOK, 0), NULL, KN_EZEROAMOUNT},
        {"exchange mode zero", {.kind = LEDGER_OP_EXCHANGE, .code = "GRAMA", .subject = K_FOOD,
                                .counter = "TRN", .to = K_BOOK, .amount = 5},
         NULL, KN_EINVAL},
        {"close well formed", CYCLE_CLOSE(1, BILATERAL), NULL, 0},
        {"close then another op", CYCLE_CLOSE(1, MULTILATERAL), tw_close_then_pay, KN_EINVAL},
        {"another op then close", PAY("GRAMA", K_FOOD, "", K_HOLD1, 1), tw_then_close,
         KN_EINVAL},
        {"close netting zero", CYCLE_CLOSE(1, 0), NULL, KN_EINVAL},
        {"settle well formed", SETTLE("TRN", "GRAMA", 1, 51), NULL, 0},
        {"settle zero", SETTLE("TRN", "GRAMA", 1, 0), NULL, KN_EZEROAMOUNT},
        {"clearing well formed", CLEARING_RETURN("GRAMA", 1), NULL, 0},
        {"clearing zero", CLEARING_FUND("GRAMA", 0), NULL, KN_EZEROAMOUNT},
        {"clearing direction zero", {.kind = LEDGER_OP_CLEARING, .code = "GRAMA", .amount = 1},
         NULL, KN_EINVAL},
    };
    size_t failed = 0, n = sizeof cases / sizeof cases[0];
    ledger_tx *tx = malloc(sizeof *tx), *back = malloc(sizeof *back);
    assert_true(tx && back);
    kn_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        tx_start(tx);
        add_op(tx, &cases[i].op);
        if (cases[i].tweak) cases[i].tweak(tx);
        assert_int_equal(ledger_tx_sign(tx, &keys[K_HOLD1]), 0);
        kn_buf_reset(&b);
        ledger_tx_encode(tx, &b);
        int got = ledger_tx_decode(b.data, b.len, back);
        if (got == cases[i].err) continue;
        printf("[  CASE  ] decode %s: got %s, want %s\n", cases[i].name, kn_errname(got),
               kn_errname(cases[i].err));
        failed++;
    }
    kn_buf_free(&b);
    free(tx);
    free(back);
    if (failed) fail_msg("%zu of %zu decode cases got another result", failed, n);
}

/* The encoder refuses unknown kinds, so these are patched into the bytes of a
 * one-issue transaction: [..., [[1, "GRAMA", ...]], ...]. */
static void decode_unknown_kinds(void **state)
{
    static const uint8_t kinds[] = {0, LEDGER_OP_KIND_MAX + 1, 0x7f};
    ledger_tx tx, back;
    kn_buf b = {0};
    tx_start(&tx);
    add_op(&tx, &(op_spec)ISSUE("GRAMA", 1));
    assert_int_equal(ledger_tx_sign(&tx, &keys[K_IA1]), 0);
    ledger_tx_encode(&tx, &b);
    uint8_t *at = memmem(b.data, b.len, "\x91\x94\x01\xa5GRAMA", 9);
    assert_non_null(at);
    assert_int_equal(ledger_tx_decode(b.data, b.len, &back), 0);
    for (size_t i = 0; i < sizeof kinds; i++) {
        at[2] = kinds[i];
        assert_int_equal(ledger_tx_decode(b.data, b.len, &back), KN_EUNKNOWNOP);
    }
    kn_buf_free(&b);
}

static void verify_rejections(void **state)
{
    ledger_tx tx;
    tx_start(&tx);
    add_op(&tx, &(op_spec)PAY("GRAMA", K_HOLD1, "", K_FOOD, 5));
    assert_int_equal(ledger_tx_verify(&tx, CHAIN), KN_EWRONGSIGNER); /* no signature */
    assert_int_equal(ledger_tx_sign(&tx, &keys[K_HOLD1]), 0);
    assert_int_equal(ledger_tx_sign(&tx, &keys[K_FOOD]), 0);
    assert_int_equal(ledger_tx_verify(&tx, CHAIN), 0);
    assert_true(ledger_tx_signed_by(&tx, pk_of(K_FOOD)));
    assert_false(ledger_tx_signed_by(&tx, pk_of(K_BOOK)));
    assert_int_equal(ledger_tx_verify(&tx, "koinon-other"), KN_EWRONGCHAIN);
    ledger_tx bad = tx;
    bad.sigs[1].sig[3] ^= 0x10;
    assert_int_equal(ledger_tx_verify(&bad, CHAIN), KN_EBADSIG);
    bad = tx;
    bad.ops[0].amount = 6; /* the body no longer matches the signatures */
    assert_int_equal(ledger_tx_verify(&bad, CHAIN), KN_EBADSIG);
    /* A tx for another chain, signed for it: refused here whatever its signatures. */
    bad = tx;
    strcpy(bad.chain_id, "koinon-other");
    bad.n_sigs = 0;
    assert_int_equal(ledger_tx_sign(&bad, &keys[K_HOLD1]), 0);
    assert_int_equal(ledger_tx_verify(&bad, CHAIN), KN_EWRONGCHAIN);
}

/* ---------------------------------------------------------------- figures */

typedef struct acc_list {
    int n;
    ledger_account a[64];
} acc_list;

static void collect_account(void *ctx, const ledger_account *a)
{
    acc_list *l = ctx;
    assert_true(l->n < 64);
    l->a[l->n++] = *a;
}

typedef struct key_list {
    int n;
    uint8_t pk[8][KN_PK_BYTES];
} key_list;

static void collect_key(void *ctx, const uint8_t pk[KN_PK_BYTES])
{
    key_list *l = ctx;
    assert_true(l->n < 8);
    memcpy(l->pk[l->n++], pk, KN_PK_BYTES);
}

static void count_item(void *ctx, const void *item)
{
    (*(int *)ctx)++;
}

static void count_currency(void *ctx, const ledger_currency *c)
{
    count_item(ctx, c);
}

static void count_programme(void *ctx, const ledger_programme *p)
{
    count_item(ctx, p);
}

static void count_roles(void *ctx, const ledger_roles *r)
{
    count_item(ctx, r);
}

static void chk_currency_figures(store_txn *t)
{
    ledger_currency_stats s = cstats(t, "GRAMA");
    assert_true(s.supply == 100000 && s.issued == 100000 && s.retired == 0 && s.redeemed == 0);
    assert_true(s.fees == 0 && s.demurrage == 0 && s.clawed_back == 0);
    assert_int_equal(s.outstanding, 2400); /* 500 + 400 + 600 + 500 + 150 + 250 */
    assert_int_equal(s.holders[LEDGER_ACC_BENEFICIARY], 4);
    assert_int_equal(s.holders[LEDGER_ACC_MERCHANT], 1);
    assert_int_equal(s.holders[LEDGER_ACC_HOLDER], 1);
    assert_int_equal(s.holders[LEDGER_ACC_SSE], 0);
    assert_int_equal(s.holders[LEDGER_ACC_CLEARING], 0);
    int64_t h;
    assert_int_equal(ledger_holders_get(t, "GRAMA", &h), 0);
    assert_int_equal(h, 6);
    s = cstats(t, "MUT");
    assert_true(s.supply == 0 && s.outstanding == 0 && s.holders[LEDGER_ACC_SSE] == 1);
    assert_int_equal(ledger_holders_get(t, "MUT", &h), 0);
    assert_int_equal(h, 1);
    s = cstats(t, "DEM");
    assert_true(s.supply == 10000 && s.outstanding == 1000);
    assert_true(s.holders[LEDGER_ACC_MERCHANT] == 1 && s.holders[LEDGER_ACC_HOLDER] == 1);
    assert_int_equal(s.holders[LEDGER_ACC_BENEFICIARY], 0); /* BEN1's dx is at zero */
    assert_int_equal(ledger_currency_stats_get(t, "NOPE", &s), KN_ENOCURRENCY);
}

static void chk_programme_figures(store_txn *t)
{
    ledger_programme_stats a = pstats(t, "GRAMA", "aid"), f = pstats(t, "GRAMA", "free");
    assert_true(a.funded == 5000 && a.disbursed == 1400 && a.spent == 300);
    assert_true(a.returned == 0 && a.expired == 0 && a.beneficiaries == 2 && !a.has_expired);
    assert_true(f.funded == 3000 && f.disbursed == 1000 && f.spent == 100 && f.beneficiaries == 2);
    assert_int_equal(spent_on(t, "aid", "food"), 300);
    assert_int_equal(spent_on(t, "aid", "books"), 0);
    int n = 0;
    assert_int_equal(ledger_programmes_each(t, "GRAMA", count_programme, &n), 0);
    assert_int_equal(n, 2);
    ledger_programme p;
    assert_int_equal(ledger_programme_get(t, "GRAMA", "nope", &p, &a), KN_ENOPROGRAMME);
    assert_int_equal(ledger_programme_get(t, "NOPE", "aid", &p, &a), KN_ENOCURRENCY);
}

static void chk_listings(store_txn *t)
{
    acc_list l = {0};
    assert_int_equal(ledger_accounts_each(t, pk_of(K_BEN1), collect_account, &l), 0);
    assert_int_equal(l.n, 7); /* GRAMA main aid free, FLEX main fx, DEM main dx */
    for (int i = 1; i < l.n; i++) /* a main account comes first in its currency */
        if (!strcmp(l.a[i].currency, l.a[i - 1].currency)) assert_true(l.a[i].sub[0] != 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(ledger_accounts_each(t, pk_of(K_OUT), collect_account, &l), 0);
    assert_int_equal(l.n, 0);
    key_list k = {0};
    assert_int_equal(ledger_role_holders_each(t, "GRAMA", R_MERCH, collect_key, &k), 0);
    assert_int_equal(k.n, 2);
    assert_true(memcmp(k.pk[0], k.pk[1], KN_PK_BYTES) < 0);
    memset(&k, 0, sizeof k);
    assert_int_equal(ledger_role_holders_each(t, "GRAMA", R_BEN, collect_key, &k), 0);
    assert_int_equal(k.n, 3);
    memset(&k, 0, sizeof k);
    assert_int_equal(ledger_role_holders_each(t, "", R_CONS, collect_key, &k), 0);
    assert_int_equal(k.n, 3);
    int n = 0;
    assert_int_equal(ledger_currencies_each(t, count_currency, &n), 0);
    assert_int_equal(n, 4);
    n = 0;
    assert_int_equal(ledger_roles_each(t, pk_of(K_FOOD), count_roles, &n), 0);
    assert_int_equal(n, 3); /* merchant in GRAMA, FLEX and DEM */
    uint32_t thr, admins;
    assert_int_equal(ledger_consortium_get(t, &thr, &admins), 0);
    assert_int_equal(admins, 3);
}

/* The currency's own accounts and the keys' accounts sum to zero. */
static void chk_own_accounts(store_txn *t)
{
    static const int keyed[] = {K_FOOD, K_HOLD1, K_BEN1, K_BEN2};
    acc_list l = {0};
    int64_t sum = 0;
    assert_int_equal(ledger_accounts_each(t, pk_of(K_ZERO), collect_account, &l), 0);
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.a[i].currency, "GRAMA")) sum += l.a[i].balance;
    assert_int_equal(sum, -2400);
    for (size_t i = 0; i < sizeof keyed / sizeof keyed[0]; i++) {
        acc_list m = {0};
        assert_int_equal(ledger_accounts_each(t, pk_of(keyed[i]), collect_account, &m), 0);
        for (int j = 0; j < m.n; j++)
            if (!strcmp(m.a[j].currency, "GRAMA")) sum += m.a[j].balance;
    }
    assert_int_equal(sum, 0);
}

static void world_figures(void **state)
{
    store_txn *t = case_begin(false);
    chk_currency_figures(t);
    chk_programme_figures(t);
    chk_listings(t);
    chk_own_accounts(t);
    assert_int_equal(store_error(t), 0);
    case_end();
}

/* ---------------------------------------------------------------- history */

/* Executes one block of txs at time_ms on top of w's chain (no certificate
 * checks: this is about what execution records). */
static void exec_block(world *w, uint64_t time_ms, const ledger_tx *txs, uint32_t n)
{
    assert_true(n <= 8);
    exec_block_with(w->env, CHAIN, time_ms, txs, n, ledger_tx_encode);
}

static void one_tx(ledger_tx *tx, op_spec s, const int *signers)
{
    tx_start(tx);
    add_op(tx, &s);
    tx_sign_all(tx, signers);
}

#define ONE(tx, spec, ...) one_tx(tx, (op_spec)spec, (const int[]){__VA_ARGS__, 0})

typedef struct move_list {
    int n;
    ledger_movement m[16];
} move_list;

static void collect_move(void *ctx, const ledger_movement *m)
{
    move_list *l = ctx;
    assert_true(l->n < 16);
    l->m[l->n++] = *m;
}

/* Blocks 1-3: roles, money and aid (block 1), BEN1 pays FOOD 10 and 20
 * (block 2), then 30, FOOD pays HOLD1 5, and one tx paying 1 and 2 (block 3). */
static void history_chain(world *h, ledger_tx *txs)
{
    ONE(&txs[0], GRANT("GRAMA", R_PM, K_PM, "", 0), K_IA1, K_IA2);
    ONE(&txs[1], GRANT("GRAMA", R_MERCH, K_FOOD, "food", 0), K_IA1);
    ONE(&txs[2], GRANT("GRAMA", R_BEN, K_BEN1, "", 0), K_IA1);
    ONE(&txs[3], ISSUE("GRAMA", 10000), K_IA1, K_IA2);
    ONE(&txs[4], PROGRAMME("GRAMA", "free"), K_PM);
    ONE(&txs[5], FUND("GRAMA", "free", 3000), K_IA1, K_IA2);
    ONE(&txs[6], DISBURSE("GRAMA", "free", "f1", {K_BEN1, 1000}), K_PM);
    exec_block(h, TS, txs, 7);
    ONE(&txs[0], PAY("GRAMA", K_BEN1, "free", K_FOOD, 10), K_BEN1);
    ONE(&txs[1], PAY("GRAMA", K_BEN1, "free", K_FOOD, 20), K_BEN1);
    exec_block(h, TS + 1000, txs, 2);
    ONE(&txs[0], PAY("GRAMA", K_BEN1, "free", K_FOOD, 30), K_BEN1);
    ONE(&txs[1], PAY("GRAMA", K_FOOD, "", K_HOLD1, 5), K_FOOD);
    tx_start(&txs[2]);
    add_op(&txs[2], &(op_spec)PAY("GRAMA", K_BEN1, "free", K_FOOD, 1));
    add_op(&txs[2], &(op_spec)PAY("GRAMA", K_BEN1, "free", K_FOOD, 2));
    tx_sign_all(&txs[2], (const int[]){K_BEN1, 0});
    exec_block(h, TS + 2000, txs, 3);
}

static void assert_move(const ledger_movement *m, uint64_t height, uint32_t index, uint32_t op,
                        int64_t amount, int counterparty, const char *counterparty_sub)
{
    assert_true(m->height == height && m->index == index && m->op == op);
    assert_int_equal(m->kind, LEDGER_OP_TRANSFER);
    assert_string_equal(m->currency, "GRAMA");
    assert_string_equal(m->sub, "");
    assert_int_equal(m->amount, amount);
    assert_memory_equal(m->counterparty, pk_of(counterparty), KN_PK_BYTES);
    assert_string_equal(m->counterparty_sub, counterparty_sub);
}

static void history_pages(void **state)
{
    world h = {0};
    open_store(&h);
    ledger_tx *txs = calloc(8, sizeof *txs);
    assert_non_null(txs);
    history_chain(&h, txs);
    store_txn *t;
    assert_int_equal(store_begin(h.env, false, &t), 0);
    move_list l = {0};
    bool more;
    uint8_t next[LEDGER_CURSOR_BYTES];
    assert_int_equal(ledger_history_page(t, pk_of(K_FOOD), NULL, 4, collect_move, &l, &more, next),
                     0);
    assert_true(l.n == 4 && more);
    assert_move(&l.m[0], 3, 2, 1, 2, K_BEN1, "free"); /* newest first */
    assert_move(&l.m[1], 3, 2, 0, 1, K_BEN1, "free");
    assert_move(&l.m[2], 3, 1, 0, -5, K_HOLD1, "");
    assert_move(&l.m[3], 3, 0, 0, 30, K_BEN1, "free");
    assert_memory_equal(l.m[1].tx_id, txs[2].id, KN_HASH_BYTES);
    uint8_t cursor[LEDGER_CURSOR_BYTES];
    memcpy(cursor, next, sizeof cursor);
    assert_int_equal(ledger_history_page(t, pk_of(K_FOOD), cursor, 4, collect_move, &l, &more, next),
                     0);
    assert_true(l.n == 6 && !more);
    assert_move(&l.m[4], 2, 1, 0, 20, K_BEN1, "free");
    assert_move(&l.m[5], 2, 0, 0, 10, K_BEN1, "free");
    /* One at a time: the same six, in the same order. */
    move_list one = {0};
    const uint8_t *at = NULL;
    for (int page = 0; page < 6; page++) {
        assert_int_equal(ledger_history_page(t, pk_of(K_FOOD), at, 1, collect_move, &one, &more,
                                             next),
                         0);
        assert_int_equal(more, page < 5);
        memcpy(cursor, next, sizeof cursor);
        at = cursor;
    }
    assert_int_equal(one.n, 6);
    for (int i = 0; i < 6; i++) assert_memory_equal(&one.m[i], &l.m[i], sizeof l.m[i]);
    /* Exactly a page's worth: no more. */
    memset(&one, 0, sizeof one);
    assert_int_equal(ledger_history_page(t, pk_of(K_FOOD), NULL, 6, collect_move, &one, &more, next),
                     0);
    assert_true(one.n == 6 && !more);
    /* The payer's side: BEN1's aid account, the disbursement oldest. */
    memset(&l, 0, sizeof l);
    assert_int_equal(ledger_history_page(t, pk_of(K_BEN1), NULL, 16, collect_move, &l, &more, next),
                     0);
    assert_true(l.n == 6 && !more);
    assert_true(l.m[0].amount == -2 && !strcmp(l.m[0].sub, "free"));
    assert_true(l.m[5].kind == LEDGER_OP_DISBURSE && l.m[5].amount == 1000 && l.m[5].height == 1);
    assert_memory_equal(l.m[5].counterparty, pk_of(K_ZERO), KN_PK_BYTES);
    /* Nothing for a key that never moved money. */
    memset(&l, 0, sizeof l);
    assert_int_equal(ledger_history_page(t, pk_of(K_OUT), NULL, 16, collect_move, &l, &more, next),
                     0);
    assert_true(l.n == 0 && !more);
    store_abort(t);
    free(txs);
    close_store(&h);
}

/* ---------------------------------------------------------------- limits */

#define BIG_N 300 /* beneficiaries: more than one sweep chunk */

static void big_pk(uint32_t i, uint8_t pk[KN_PK_BYTES])
{
    kn_hash(pk, "koinon-test/beneficiary", &i, sizeof i);
}

/* Grants in transactions of LEDGER_OPS_MAX operations. */
static void grant_many(store_txn *t, uint32_t n)
{
    ledger_tx *tx = malloc(sizeof *tx);
    assert_non_null(tx);
    for (uint32_t i = 0; i < n;) {
        tx_start(tx);
        for (; i < n && tx->n_ops < LEDGER_OPS_MAX; i++) {
            add_op(tx, &(op_spec)GRANT("DEM", R_BEN, K_OUT, "", 0));
            big_pk(i, tx->ops[tx->n_ops - 1].from);
        }
        tx_sign_all(tx, (const int[]){K_IB, 0});
        assert_int_equal(apply_at(t, tx, TS), 0);
    }
    free(tx);
}

/* The largest transaction: a full batch (1 each) beside 15 payments of 1
 * from HOLD1 to FOOD, all charging demurrage. */
static void full_batch(store_txn *t, uint32_t first, uint32_t n, const char *batch)
{
    ledger_tx *tx = malloc(sizeof *tx);
    assert_non_null(tx);
    tx_start(tx);
    add_op(tx, &(op_spec)DISBURSE("DEM", "big", batch, {K_BEN1, 1}));
    tx->n_payees = n;
    for (uint32_t i = 0; i < n; i++) {
        big_pk(first + i, tx->payees[i].pk);
        tx->payees[i].amount = 1;
    }
    while (tx->n_ops < LEDGER_OPS_MAX) add_op(tx, &(op_spec)PAY("DEM", K_HOLD1, "", K_FOOD, 1));
    tx_sign_all(tx, (const int[]){K_PM, K_HOLD1, 0});
    assert_well_formed(&(rule_case){.name = batch}, tx);
    int rc = apply_at(t, tx, TS + 5 * DAY);
    if (rc) fail_msg("batch %s: %s", batch, kn_errname(rc));
    free(tx);
}

static void chk_big_swept(store_txn *t)
{
    TREASURY("DEM", 8000); /* 7000 + 700 left in the programme + 300 swept */
    ASSERT_BAL("DEM", K_ZERO, "big", 0);
    for (uint32_t i = 0; i < BIG_N; i += 149) {
        ledger_account a;
        uint8_t pk[KN_PK_BYTES];
        big_pk(i, pk);
        assert_int_equal(ledger_account_get(t, "DEM", pk, "big", &a), 0);
        assert_int_equal(a.balance, 0);
    }
    ledger_programme_stats s = pstats(t, "DEM", "big");
    assert_true(s.disbursed == BIG_N && s.beneficiaries == BIG_N && s.expired == 1000);
    ASSERT_BAL("DEM", K_HOLD1, "", 600 - 30 - 45); /* 5 days of 1%, then 45 paid */
    ASSERT_BAL("DEM", K_FOOD, "", 400 - 20 + 45);
}

static void limits_full_batches_and_big_sweep(void **state)
{
    store_txn *t = case_begin(true);
    grant_many(t, BIG_N);
    DO(t, TS, PROGRAMME("DEM", "big"), K_PM);
    DO(t, TS, FUND("DEM", "big", 1000), K_IB);
    full_batch(t, 0, LEDGER_PAYEES_MAX, "g1");
    full_batch(t, LEDGER_PAYEES_MAX, LEDGER_PAYEES_MAX, "g2");
    full_batch(t, 2 * LEDGER_PAYEES_MAX, BIG_N - 2 * LEDGER_PAYEES_MAX, "g3");
    ledger_check_invariants(t);
    TREASURY("DEM", 7000);
    DO(t, T_END, EXPIRE("DEM", "big"), K_PM);
    chk_big_swept(t);
    ledger_check_invariants(t);
    case_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_rejections),
        cmocka_unit_test(decode_unknown_kinds),
        cmocka_unit_test(verify_rejections),
        cmocka_unit_test(world_figures),
        cmocka_unit_test(currency_rules),
        cmocka_unit_test(grant_rules),
        cmocka_unit_test(revoke_rules),
        cmocka_unit_test(account_rules),
        cmocka_unit_test(issue_rules),
        cmocka_unit_test(retire_rules),
        cmocka_unit_test(programme_rules),
        cmocka_unit_test(fund_rules),
        cmocka_unit_test(disburse_rules),
        cmocka_unit_test(transfer_route_rules),
        cmocka_unit_test(transfer_aid_rules),
        cmocka_unit_test(redeem_rules),
        cmocka_unit_test(reverse_rules),
        cmocka_unit_test(clawback_rules),
        cmocka_unit_test(expire_rules),
        cmocka_unit_test(demurrage_rules),
        cmocka_unit_test(mutual_credit_rules),
        cmocka_unit_test(rate_rules),
        cmocka_unit_test(exchange_rules),
        cmocka_unit_test(exchange_amounts_exact),
        cmocka_unit_test(clearing_rules),
        cmocka_unit_test(close_rules),
        cmocka_unit_test(settle_rules),
        cmocka_unit_test(history_pages),
        cmocka_unit_test(limits_full_batches_and_big_sweep),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
