/* The worked example of docs/REPORTS.md on a real ledger: two days of a
 * currency's life (issue, aid, a sale, spending, re-spending, a redemption and
 * an exchange to another city), then the report over each day, over both and
 * over a quiet day, every figure checked against the numbers worked out by
 * hand in that document. Also the refusals of the report itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/ledger/ledger.h"

#define CHAIN "koinon-report"
#define MAP_BYTES (64ull << 20)
#define HOUR 3600000ull
#define DAY1 20759u /* 2026-11-02 */
#define DAY2 (DAY1 + 1)
#define DAY3 (DAY1 + 2)
#define T1 (DAY1 * LEDGER_DAY_MS + 9 * HOUR)
#define T2 (DAY2 * LEDGER_DAY_MS + 9 * HOUR)

enum who { ADMIN, ISSUER, TRN_ISSUER, MANAGER, GROCER, COOP, FAM1, FAM2, FAM3, RESIDENT, TURIN, N_KEYS };

static kn_keypair keys[N_KEYS];
static char dir[64];
static store_env *env;
static store_txn *txn;
static uint64_t nonce;

static ledger_op *op_new(ledger_tx *tx, uint8_t kind, const char *code)
{
    ledger_op *op = &tx->ops[tx->n_ops++];
    op->kind = kind;
    snprintf(op->currency, sizeof op->currency, "%s", code);
    return op;
}

static void tx_new(ledger_tx *tx)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, CHAIN);
    tx->nonce = ++nonce;
    tx->expiry_height = 1000;
}

/* Signs with `signer` and applies at block time t; the rules must accept it. */
static void apply(ledger_tx *tx, enum who signer, uint64_t t)
{
    assert_int_equal(ledger_tx_sign(tx, &keys[signer]), 0);
    assert_int_equal(ledger_tx_apply(txn, tx, 1, t), 0);
}

static void grant(enum who signer, const char *code, uint32_t role, enum who subject,
                  const char *category)
{
    ledger_tx tx;
    tx_new(&tx);
    ledger_op *op = op_new(&tx, LEDGER_OP_GRANT, code);
    op->role = role;
    memcpy(op->from, keys[subject].pk, KN_PK_BYTES);
    snprintf(op->ref, sizeof op->ref, "%s", category ? category : "");
    apply(&tx, signer, T1);
}

static void issue(enum who signer, const char *code, uint64_t amount)
{
    ledger_tx tx;
    tx_new(&tx);
    ledger_op *op = op_new(&tx, LEDGER_OP_ISSUE, code);
    op->amount = amount;
    strcpy(op->ref, "reserve-2026-11");
    apply(&tx, signer, T1);
}

/* A payment in SVQ; with ISSUER as the payer, the treasury pays. */
static void pay(enum who payer, const char *programme, enum who payee, uint64_t amount, uint64_t t)
{
    ledger_tx tx;
    tx_new(&tx);
    ledger_op *op = op_new(&tx, LEDGER_OP_TRANSFER, "SVQ");
    if (payer != ISSUER) memcpy(op->from, keys[payer].pk, KN_PK_BYTES);
    snprintf(op->programme, sizeof op->programme, "%s", programme);
    memcpy(op->to, keys[payee].pk, KN_PK_BYTES);
    op->amount = amount;
    apply(&tx, payer, t);
}

static void rate(const char *base, const char *quote, uint64_t num, uint64_t den)
{
    ledger_tx tx;
    tx_new(&tx);
    ledger_op *op = op_new(&tx, LEDGER_OP_RATE, base);
    strcpy(op->counter, quote);
    op->num = num;
    op->den = den;
    op->end_ms = T2 + 30 * LEDGER_DAY_MS;
    apply(&tx, ADMIN, T1);
}

static void currency(ledger_genesis *g, const char *code, enum who issuer)
{
    ledger_currency *c = &g->currencies[g->n_currencies++];
    snprintf(c->code, sizeof c->code, "%s", code);
    strcpy(c->name, code);
    strcpy(c->city, code);
    c->scale = 2;
    c->max_supply = 100000000;
    c->n_issuer_admins = 1;
    memcpy(c->issuer_admins[0], keys[issuer].pk, KN_PK_BYTES);
    c->issuer_threshold = 1;
    c->fee_bps = c->early_fee_bps = 100; /* a flat 1 % */
}

/* Day 1 and day 2 of the example, in one write transaction. */
static void build_example(void)
{
    for (int i = 0; i < N_KEYS; i++) kn_keypair_generate(&keys[i]);
    strcpy(dir, "/tmp/koinon-report-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(store_open(dir, MAP_BYTES, &env), 0);
    assert_int_equal(store_begin(env, true, &txn), 0);
    static ledger_genesis g;
    memset(&g, 0, sizeof g);
    strcpy(g.chain_id, CHAIN);
    g.time_ms = T1 - HOUR;
    g.n_admins = 1;
    memcpy(g.admins[0], keys[ADMIN].pk, KN_PK_BYTES);
    currency(&g, "SVQ", ISSUER);
    currency(&g, "TRN", TRN_ISSUER);
    assert_int_equal(ledger_genesis_apply(txn, &g), 0);

    /* Day 1: the city issues, funds and disburses aid, sells to a resident. */
    issue(ISSUER, "SVQ", 100000);
    grant(ISSUER, "SVQ", LEDGER_ROLE_PROGRAMME_MANAGER, MANAGER, NULL);
    grant(ISSUER, "SVQ", LEDGER_ROLE_MERCHANT, GROCER, "food");
    grant(ISSUER, "SVQ", LEDGER_ROLE_SSE, COOP, NULL);
    for (enum who f = FAM1; f <= FAM3; f++)
        grant(ISSUER, "SVQ", LEDGER_ROLE_BENEFICIARY, f, NULL);
    ledger_tx tx;
    tx_new(&tx);
    ledger_programme *pg = &tx.programme_def;
    strcpy(pg->currency, "SVQ");
    strcpy(pg->id, "food");
    pg->budget = 60000;
    pg->start_ms = T1 - HOUR;
    pg->end_ms = T2 + 30 * LEDGER_DAY_MS;
    op_new(&tx, LEDGER_OP_PROGRAMME, "SVQ");
    apply(&tx, MANAGER, T1);
    tx_new(&tx);
    ledger_op *op = op_new(&tx, LEDGER_OP_FUND, "SVQ");
    strcpy(op->programme, "food");
    op->amount = 60000;
    apply(&tx, ISSUER, T1);
    tx_new(&tx);
    op = op_new(&tx, LEDGER_OP_DISBURSE, "SVQ");
    strcpy(op->programme, "food");
    strcpy(op->ref, "november");
    for (int i = 0; i < 3; i++) {
        memcpy(tx.payees[i].pk, keys[FAM1 + i].pk, KN_PK_BYTES);
        tx.payees[i].amount = 20000;
    }
    tx.n_payees = 3;
    apply(&tx, MANAGER, T1);
    pay(ISSUER, "", RESIDENT, 15000, T1);

    /* Day 1: spending (45000 + 8000 food, 5000 sse) and re-spending. */
    pay(FAM1, "food", GROCER, 20000, T1);
    pay(FAM2, "food", GROCER, 15000, T1);
    pay(FAM3, "food", GROCER, 10000, T1);
    pay(RESIDENT, "", GROCER, 8000, T1);
    pay(RESIDENT, "", COOP, 5000, T1);
    pay(GROCER, "", COOP, 20000, T1);

    /* The exchange to Turin: rates, and Turin's clearing float. */
    rate("SVQ", "TRN", 3, 2);
    rate("SVQ", LEDGER_UNIT, 1, 1);
    grant(TRN_ISSUER, "TRN", LEDGER_ROLE_MERCHANT, TURIN, "wholesale");
    issue(TRN_ISSUER, "TRN", 10000);
    tx_new(&tx);
    op = op_new(&tx, LEDGER_OP_CLEARING, "TRN");
    op->mode = LEDGER_CLEARING_FUND;
    op->amount = 10000;
    apply(&tx, TRN_ISSUER, T1);

    /* Day 2: re-spending, a redemption and the exchange. */
    pay(COOP, "", GROCER, 3000, T2);
    tx_new(&tx);
    op = op_new(&tx, LEDGER_OP_REDEEM, "SVQ");
    memcpy(op->from, keys[COOP].pk, KN_PK_BYTES);
    op->amount = 10000;
    strcpy(op->ref, "sepa-1");
    apply(&tx, COOP, T2);
    tx_new(&tx);
    op = op_new(&tx, LEDGER_OP_EXCHANGE, "SVQ");
    memcpy(op->from, keys[GROCER].pk, KN_PK_BYTES);
    strcpy(op->counter, "TRN");
    memcpy(op->to, keys[TURIN].pk, KN_PK_BYTES);
    op->mode = LEDGER_EXCHANGE_SEND;
    op->amount = 5000;
    apply(&tx, GROCER, T2);
    ledger_check_invariants(txn);
}

static int setup(void **state)
{
    (void)state;
    build_example();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_abort(txn);
    store_close(env);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct spent {
    int n;
    char name[4][LEDGER_CATEGORY_MAX + 1];
    int64_t amount[4];
} spent;

static void add_spent(void *ctx, const char *category, int64_t amount)
{
    spent *s = ctx;
    assert_true(s->n < 4);
    strcpy(s->name[s->n], category);
    s->amount[s->n++] = amount;
}

static void report(const char *code, uint32_t from, uint32_t to, ledger_report *r, spent *s)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(ledger_report_get(txn, code, from, to, r, add_spent, s), 0);
    assert_string_equal(r->currency, code);
}

static void both_days(void **state)
{
    (void)state;
    ledger_report r;
    spent s;
    report("SVQ", DAY1, DAY3, &r, &s);
    assert_int_equal(r.issued, 100000);
    assert_int_equal(r.disbursed, 60000);
    assert_int_equal(r.treasury_paid, 15000);
    assert_int_equal(r.injected, 75000);
    assert_int_equal(r.spent, 58000); /* 45000 + 8000 at the grocer, 5000 at the cooperative */
    assert_int_equal(s.n, 2);
    assert_string_equal(s.name[0], "food");
    assert_int_equal(s.amount[0], 53000);
    assert_string_equal(s.name[1], "sse");
    assert_int_equal(s.amount[1], 5000);
    assert_int_equal(r.respent, 23000); /* 20000 + 3000 */
    assert_int_equal(r.other_payments, 0);
    assert_int_equal(r.redeemed, 9900);
    assert_int_equal(r.fees, 100);
    assert_int_equal(r.exchanged_out, 5000);
    assert_int_equal(r.exchanged_in, 0);
    assert_int_equal(r.retired + r.returned + r.demurrage + r.clawed_back + r.expired + r.reversed,
                     0);
    assert_int_equal(r.outstanding_start, 0);
    assert_int_equal(r.outstanding_end, 60000); /* 75000 - 10000 - 5000 */
    assert_int_equal(r.outstanding_avg, 67500); /* (75000 + 60000) / 2 */
    assert_int_equal(r.lm3_bps, 20800);         /* (75000 + 58000 + 23000) / 75000 = 2.08 */
    assert_int_equal(r.retention_bps, 8437);    /* 81000 / 96000 = 0.84375 */
    assert_int_equal(r.velocity_bps, 12000);    /* 81000 / 67500 = 1.2 */
}

static void each_day(void **state)
{
    (void)state;
    ledger_report r;
    spent s;
    report("SVQ", DAY1, DAY2, &r, &s);
    assert_int_equal(r.injected, 75000);
    assert_int_equal(r.respent, 20000);
    assert_int_equal(r.outstanding_start, 0);
    assert_int_equal(r.outstanding_end, 75000);
    assert_int_equal(r.outstanding_avg, 75000);
    assert_int_equal(r.lm3_bps, 20400);      /* (75000 + 58000 + 20000) / 75000 = 2.04 */
    assert_int_equal(r.retention_bps, 10000); /* nothing left the local economy */
    assert_int_equal(r.velocity_bps, 10400); /* 78000 / 75000 */

    report("SVQ", DAY2, DAY3, &r, &s);
    assert_int_equal(r.injected + r.spent + r.issued, 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(r.respent, 3000);
    assert_int_equal(r.redeemed, 9900);
    assert_int_equal(r.exchanged_out, 5000);
    assert_int_equal(r.outstanding_start, 75000);
    assert_int_equal(r.outstanding_end, 60000);
    assert_int_equal(r.outstanding_avg, 60000);
    assert_int_equal(r.lm3_bps, 0);         /* nothing injected */
    assert_int_equal(r.retention_bps, 1666); /* 3000 / 18000 */
    assert_int_equal(r.velocity_bps, 500);   /* 3000 / 60000 */

    /* Turin's side of the exchange: 5000 SVQ at 3/2 arrive as 7500 TRN. */
    report("TRN", DAY2, DAY3, &r, &s);
    assert_int_equal(r.exchanged_in, 7500);
    assert_int_equal(r.outstanding_start, 0);
    assert_int_equal(r.outstanding_end, 7500);
}

static void quiet_days_and_refusals(void **state)
{
    (void)state;
    ledger_report r;
    spent s;
    report("SVQ", DAY3, DAY3 + 5, &r, &s);
    assert_int_equal(r.spent + r.respent + r.redeemed + r.injected, 0);
    assert_int_equal(r.outstanding_start, 60000);
    assert_int_equal(r.outstanding_end, 60000);
    assert_int_equal(r.outstanding_avg, 60000);
    assert_int_equal(r.lm3_bps + r.retention_bps + r.velocity_bps, 0);

    /* Days before anything happened: nothing held yet. */
    report("SVQ", DAY1 - 10, DAY1, &r, &s);
    assert_int_equal(r.outstanding_end + r.outstanding_avg + r.issued, 0);

    /* A period that straddles the quiet day: the last day carries over. */
    report("SVQ", DAY2, DAY3 + 1, &r, &s);
    assert_int_equal(r.outstanding_avg, 60000);

    assert_int_equal(ledger_report_get(txn, "SVQ", DAY2, DAY2, &r, NULL, NULL), KN_EINVAL);
    assert_int_equal(ledger_report_get(txn, "SVQ", DAY3, DAY2, &r, NULL, NULL), KN_EINVAL);
    assert_int_equal(ledger_report_get(txn, "NOPE", DAY1, DAY2, &r, NULL, NULL), KN_ENOCURRENCY);
}

static void cycle_of_the_example(void **state)
{
    (void)state;
    ledger_cycle cy;
    assert_int_equal(ledger_cycle_get(txn, 1, &cy), 0);
    assert_false(cy.closed);
    assert_int_equal(cy.exchanges, 1);
    assert_int_equal(cy.value, 5000); /* at SVQ's rate of 1/1 to the euro */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_days),
        cmocka_unit_test(each_day),
        cmocka_unit_test(quiet_days_and_refusals),
        cmocka_unit_test(cycle_of_the_example),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
