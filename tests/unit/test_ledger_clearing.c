/* Exchange between cities, settlement cycles and the daily report figures
 * (docs/LEDGER.md, "Between cities" and "Reports").
 *
 * clearing_random_blocks: a seeded property test. Four to six currencies with
 * random rates, funded clearing accounts and random merchants; random send and
 * deliver exchanges (valid and not), rate replacements, float moves, role
 * changes, closes with random netting and settlements, right and wrong. A model
 * kept by the test predicts every transaction: one the model finds nothing
 * against must be accepted with the exact amounts, one it finds a reason
 * against must be refused with one of those reasons. After every block: the
 * ledger's full audit; every balance, float and supply as the model has them;
 * the positions of every cycle sum to zero and match the model; a closed
 * cycle's obligations reproduce its positions and are exactly those its netting
 * requires; and refused settlements leave the state byte for byte unchanged.
 * KOINON_SEED=<n> reproduces a run (the seed is printed at the start and on
 * failure); KOINON_BLOCKS=<n> makes it longer.
 *
 * report_figures_by_day and report_rejections: the report figures of small
 * scenarios on known days, each expected number worked out by hand beside it. */
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

#define CHAIN "koinon-clearing"
#define MAP_BYTES (256ull << 20)
#define MINUTE 60000ull
#define HOUR (60 * MINUTE)
#define DAY LEDGER_DAY_MS
#define T0 1700000000000ull
#define DEFAULT_SEED 0x636c656172ull
#define DEFAULT_BLOCKS 300
#define TXS_PER_BLOCK_MAX 10
#define CUR_MAX 6
#define N_USERS 8
#define CYCLES_MAX 160
#define OBLIGATIONS_MAX (CUR_MAX * CUR_MAX)
#define EUR CUR_MAX /* index of the unit of account as a rate's quote */

/* ---------------------------------------------------------------- keys */

enum key {
    K_ADM1, K_ADM2,                /* consortium admins: both must sign */
    K_ISS0,                        /* issuer admin of currency i is K_ISS0 + i */
    K_USER0 = K_ISS0 + CUR_MAX,    /* keys that trade */
    K_N = K_USER0 + N_USERS
};

static kn_keypair keys[K_N];
static const uint8_t zero_pk[KN_PK_BYTES];

static const uint8_t *pk_of(int k)
{
    return keys[k].pk;
}

/* ---------------------------------------------------------------- randomness */

/* The seed of this run (ledger_fixture.h keeps the generator), for messages. */
static uint64_t seed_used;

/* ---------------------------------------------------------------- a store */

typedef struct chain {
    char dir[256];
    store_env *env;
    uint64_t nonce;
} chain;

static void chain_open(chain *c, const ledger_genesis *g)
{
    snprintf(c->dir, sizeof c->dir, "%s/koinon-clearing-XXXXXX", tmp_root());
    assert_non_null(mkdtemp(c->dir));
    assert_int_equal(store_open(c->dir, MAP_BYTES, &c->env), 0);
    store_txn *t;
    assert_int_equal(store_begin(c->env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, g), 0);
    assert_int_equal(store_commit(t), 0);
}

static void chain_close(chain *c)
{
    store_close(c->env);
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", c->dir);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", c->dir);
    (void)unlink(path);
    (void)rmdir(c->dir);
}

static void genesis_start(ledger_genesis *g, uint64_t time_ms)
{
    memset(g, 0, sizeof *g);
    strcpy(g->chain_id, CHAIN);
    g->time_ms = time_ms;
    g->n_admins = 2;
    memcpy(g->admins[0], pk_of(K_ADM1), KN_PK_BYTES);
    memcpy(g->admins[1], pk_of(K_ADM2), KN_PK_BYTES);
    g->admin_threshold = 2;
}

static ledger_currency *genesis_currency(ledger_genesis *g, const char *code, int issuer)
{
    ledger_currency *c = &g->currencies[g->n_currencies++];
    memset(c, 0, sizeof *c);
    snprintf(c->code, sizeof c->code, "%s", code);
    snprintf(c->name, sizeof c->name, "%s money", code);
    strcpy(c->city, "a city");
    c->scale = 2;
    c->max_supply = 1000000000000ull;
    memcpy(c->issuer_admins[0], pk_of(issuer), KN_PK_BYTES);
    c->n_issuer_admins = 1;
    c->issuer_threshold = 1;
    return c;
}

/* ---------------------------------------------------------------- building txs */

static void tx_new(chain *c, ledger_tx *tx)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, CHAIN);
    tx->nonce = ++c->nonce;
    tx->expiry_height = 1u << 30;
}

static ledger_op *op_add(ledger_tx *tx, uint8_t kind, const char *code)
{
    assert_true(tx->n_ops < LEDGER_OPS_MAX);
    ledger_op *op = &tx->ops[tx->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    snprintf(op->currency, sizeof op->currency, "%s", code);
    return op;
}

static void op_issue(ledger_tx *tx, const char *code, uint64_t amount)
{
    ledger_op *op = op_add(tx, LEDGER_OP_ISSUE, code);
    op->amount = amount;
    strcpy(op->ref, "reserve");
}

static void op_retire(ledger_tx *tx, const char *code, uint64_t amount)
{
    ledger_op *op = op_add(tx, LEDGER_OP_RETIRE, code);
    op->amount = amount;
    strcpy(op->ref, "retire");
}

static void op_grant(ledger_tx *tx, const char *code, uint32_t role, int k, const char *category)
{
    ledger_op *op = op_add(tx, LEDGER_OP_GRANT, code);
    op->role = role;
    memcpy(op->from, pk_of(k), KN_PK_BYTES);
    snprintf(op->ref, sizeof op->ref, "%s", category);
}

static void op_revoke(ledger_tx *tx, const char *code, uint32_t role, int k)
{
    ledger_op *op = op_add(tx, LEDGER_OP_REVOKE, code);
    op->role = role;
    memcpy(op->from, pk_of(k), KN_PK_BYTES);
}

/* from NULL: the treasury pays; to NULL: pays the treasury. */
static void op_pay(ledger_tx *tx, const char *code, const uint8_t *from, const char *programme,
                   const uint8_t *to, uint64_t amount)
{
    ledger_op *op = op_add(tx, LEDGER_OP_TRANSFER, code);
    memcpy(op->from, from ? from : zero_pk, KN_PK_BYTES);
    snprintf(op->programme, sizeof op->programme, "%s", programme);
    memcpy(op->to, to ? to : zero_pk, KN_PK_BYTES);
    op->amount = amount;
}

static void op_clearing(ledger_tx *tx, const char *code, uint8_t direction, uint64_t amount)
{
    ledger_op *op = op_add(tx, LEDGER_OP_CLEARING, code);
    op->mode = direction;
    op->amount = amount;
}

static void op_rate(ledger_tx *tx, const char *base, const char *quote, uint64_t num,
                    uint64_t den, uint64_t start_ms, uint64_t end_ms)
{
    ledger_op *op = op_add(tx, LEDGER_OP_RATE, base);
    snprintf(op->counter, sizeof op->counter, "%s", quote);
    op->num = num;
    op->den = den;
    op->start_ms = start_ms;
    op->end_ms = end_ms;
}

static void op_exchange(ledger_tx *tx, const char *code, int from, const char *to_code, int to,
                        uint8_t mode, uint64_t amount, uint64_t send_max)
{
    ledger_op *op = op_add(tx, LEDGER_OP_EXCHANGE, code);
    memcpy(op->from, pk_of(from), KN_PK_BYTES);
    snprintf(op->counter, sizeof op->counter, "%s", to_code);
    memcpy(op->to, pk_of(to), KN_PK_BYTES);
    op->mode = mode;
    op->amount = amount;
    op->limit = send_max;
}

static void op_close(ledger_tx *tx, uint64_t cycle, uint8_t netting)
{
    ledger_op *op = op_add(tx, LEDGER_OP_CLOSE, "");
    op->cycle = cycle;
    op->mode = netting;
}

static void op_settle(ledger_tx *tx, const char *debtor, const char *creditor, uint64_t cycle,
                      uint64_t amount)
{
    ledger_op *op = op_add(tx, LEDGER_OP_SETTLE, debtor);
    snprintf(op->counter, sizeof op->counter, "%s", creditor);
    op->cycle = cycle;
    op->amount = amount;
    snprintf(op->ref, sizeof op->ref, "wire-%llu-%s", (unsigned long long)cycle, debtor);
}

static void tx_sign(ledger_tx *tx, int k)
{
    assert_int_equal(ledger_tx_sign(tx, &keys[k]), 0);
}

/* Encodes a transaction as a node admits it: it must decode to itself and
 * verify. */
static void tx_bytes(const ledger_tx *tx, kn_buf *b)
{
    ledger_tx *back = malloc(sizeof *back);
    assert_non_null(back);
    kn_buf_reset(b);
    ledger_tx_encode(tx, b);
    int rc = ledger_tx_decode(b->data, b->len, back);
    if (rc) fail_msg("KOINON_SEED=%llu: a generated tx (%s, %u ops) does not decode: %s",
                     (unsigned long long)seed_used, ledger_op_name(tx->ops[0].kind), tx->n_ops,
                     kn_errname(rc));
    assert_memory_equal(back->id, tx->id, KN_HASH_BYTES);
    assert_int_equal(ledger_tx_verify(back, CHAIN), 0);
    free(back);
}

_Static_assert(TXS_PER_BLOCK_MAX <= FIXTURE_BLOCK_TXS_MAX, "a block of this test fits the fixture");

/* Executes one block of txs at time_ms on top of the chain, then the full
 * audit. */
static void exec_block(chain *c, uint64_t time_ms, const ledger_tx *txs, uint32_t n)
{
    assert_true(n <= TXS_PER_BLOCK_MAX);
    exec_block_with(c->env, CHAIN, time_ms, txs, n, tx_bytes);
}

static int tx_result(chain *c, const ledger_tx *tx)
{
    store_txn *t;
    ledger_tx_record rec;
    assert_int_equal(store_begin(c->env, false, &t), 0);
    assert_int_equal(ledger_tx_record_get(t, tx->id, &rec), 0);
    store_abort(t);
    return rec.result;
}

/* ================================================================ the model */

typedef struct rate_m {
    bool set;
    uint64_t num, den, start_ms, end_ms;
} rate_m;

typedef struct obligation_m {
    int debtor, creditor;
    int64_t amount;
    bool settled;
} obligation_m;

typedef struct cycle_m {
    int64_t position[CUR_MAX];
    int64_t owed[CUR_MAX][CUR_MAX]; /* value of [debtor]'s exchanges into [creditor] */
    int64_t exchanges, value;
    bool closed;
    uint8_t netting;
    bool known; /* obligations worked out (after the closing block) */
    uint32_t n_obligations;
    obligation_m obligations[OBLIGATIONS_MAX];
} cycle_m;

/* What the ledger must hold. Accounts are the keys' main accounts; each
 * currency's treasury and clearing account; the floats are also followed as
 * funded less returned, plus what payers paid in, less what receivers got. */
typedef struct model {
    int64_t balance[CUR_MAX][K_N];
    int64_t treasury[CUR_MAX], clearing[CUR_MAX], issued[CUR_MAX];
    int64_t float_net[CUR_MAX], paid_in[CUR_MAX], paid_out[CUR_MAX];
    uint32_t roles[CUR_MAX][K_N];
    rate_m rate[CUR_MAX][CUR_MAX + 1];
    uint64_t cycle; /* the open one */
    cycle_m cycles[CYCLES_MAX + 2];
} model;

typedef struct world {
    chain c;
    uint64_t time_ms;
    uint32_t n_cur;
    char codes[CUR_MAX][LEDGER_CODE_MAX + 1];
    model m;
    /* Counts of outcomes, to show the traffic was real. */
    uint32_t accepted[LEDGER_OP_KIND_MAX + 1], refused[LEDGER_OP_KIND_MAX + 1];
    uint32_t by_error[160];
    uint32_t probes;
} world;

static world R;
static model scratch; /* a transaction's effects until all of its operations pass */

#define ROLE_BIT(r) (1u << (r))
#define BUSINESS                                                                           \
    (ROLE_BIT(LEDGER_ROLE_MERCHANT) | ROLE_BIT(LEDGER_ROLE_SSE) | ROLE_BIT(LEDGER_ROLE_CLEARING))

/* The errors a transaction may get: empty means it must be accepted. */
typedef struct errset {
    int n;
    int e[16];
} errset;

static void may(errset *s, int err)
{
    for (int i = 0; i < s->n; i++)
        if (s->e[i] == err) return;
    assert_true(s->n < 16);
    s->e[s->n++] = err;
}

static bool allowed(const errset *s, int err)
{
    for (int i = 0; i < s->n; i++)
        if (s->e[i] == err) return true;
    return false;
}

static bool signed_by(const ledger_tx *tx, int k)
{
    return ledger_tx_signed_by(tx, pk_of(k));
}

static int cur_index(const char *code)
{
    if (!strcmp(code, LEDGER_UNIT)) return EUR;
    for (uint32_t i = 0; i < R.n_cur; i++)
        if (!strcmp(R.codes[i], code)) return (int)i;
    fail_msg("unknown code %s", code);
    return -1;
}

static int key_index(const uint8_t pk[KN_PK_BYTES])
{
    for (int k = 0; k < K_N; k++)
        if (!memcmp(pk_of(k), pk, KN_PK_BYTES)) return k;
    fail_msg("unknown key");
    return -1;
}

/* Consortium quorum: both admins. */
static void consortium_signers(const ledger_tx *tx, errset *s)
{
    int n = signed_by(tx, K_ADM1) + signed_by(tx, K_ADM2);
    if (n == 0) may(s, KN_EUNAUTHORISED);
    else if (n < 2) may(s, KN_EQUORUM);
}

/* A rate in force at now: 0, or why not (pair: as the pair; unit: as the
 * payer's rate to the unit, where an ended one may read either way). */
static void rate_in_force(const rate_m *r, uint64_t now, bool pair, errset *s)
{
    if (!r->set) may(s, pair ? KN_EUNKNOWNPAIR : KN_ENORATE);
    else if (now < r->start_ms) may(s, KN_ENORATE);
    else if (now >= r->end_ms) {
        may(s, pair ? KN_ERATEEXPIRED : KN_ENORATE);
        if (!pair) may(s, KN_ERATEEXPIRED);
    }
}

typedef struct amounts {
    bool known;
    __int128 pay, get, value;
} amounts;

/* Independent arithmetic: docs/LEDGER.md's formulas in 128 bits. */
static amounts exchange_math(const ledger_op *op, const rate_m *pair, const rate_m *unit)
{
    amounts a = {0};
    __int128 x = op->amount;
    if (op->mode == LEDGER_EXCHANGE_SEND) {
        a.pay = x;
        a.get = x * pair->num / pair->den;
    } else {
        a.get = x;
        a.pay = (x * pair->den + pair->num - 1) / pair->num;
    }
    if (unit) a.value = a.pay * unit->num / unit->den;
    a.known = true;
    return a;
}

static void predict_exchange(model *m, const ledger_tx *tx, const ledger_op *op, uint64_t now,
                             errset *s)
{
    int a = cur_index(op->currency), b = cur_index(op->counter);
    int payer = key_index(op->from), receiver = key_index(op->to);
    if (!signed_by(tx, payer)) may(s, KN_EWRONGSIGNER);
    if (!(m->roles[a][payer] & BUSINESS)) may(s, KN_ENOEXCHANGE);
    if (!(m->roles[b][receiver] & BUSINESS)) may(s, KN_ENOEXCHANGE);
    errset pair_err = {0}, unit_err = {0};
    rate_in_force(&m->rate[a][b], now, true, &pair_err);
    rate_in_force(&m->rate[a][EUR], now, false, &unit_err);
    for (int i = 0; i < pair_err.n; i++) may(s, pair_err.e[i]);
    for (int i = 0; i < unit_err.n; i++) may(s, unit_err.e[i]);
    if (pair_err.n) return; /* nothing can be computed without the pair's rate */
    amounts x = exchange_math(op, &m->rate[a][b], unit_err.n ? NULL : &m->rate[a][EUR]);
    if (x.pay > INT64_MAX || x.get > INT64_MAX) {
        may(s, KN_EOVERFLOW);
        return;
    }
    if (x.get == 0) may(s, KN_ETOOSMALL);
    if (!unit_err.n && x.value == 0) may(s, KN_ETOOSMALL);
    if (!unit_err.n && x.value > INT64_MAX) may(s, KN_EOVERFLOW);
    if (op->mode == LEDGER_EXCHANGE_DELIVER && op->limit && x.pay > op->limit) may(s, KN_ESENDMAX);
    if (x.pay > m->balance[a][payer]) may(s, KN_EOVERDRAFT);
    if (x.get > m->clearing[b]) may(s, KN_ECLEARINGFLOOR);
    if (s->n) return;
    int64_t pay = (int64_t)x.pay, get = (int64_t)x.get, v = (int64_t)x.value;
    m->balance[a][payer] -= pay;
    m->clearing[a] += pay;
    m->paid_in[a] += pay;
    m->clearing[b] -= get;
    m->paid_out[b] += get;
    m->balance[b][receiver] += get;
    cycle_m *cy = &m->cycles[m->cycle];
    cy->position[a] -= v;
    cy->position[b] += v;
    cy->owed[a][b] += v;
    cy->exchanges++;
    cy->value += v;
}

static void predict_rate(model *m, const ledger_tx *tx, const ledger_op *op, uint64_t now,
                         errset *s)
{
    consortium_signers(tx, s);
    if (op->end_ms <= now) may(s, KN_ERATEEXPIRED);
    if (s->n) return;
    m->rate[cur_index(op->currency)][cur_index(op->counter)] =
        (rate_m){true, op->num, op->den, op->start_ms, op->end_ms};
}

static void predict_clearing(model *m, const ledger_tx *tx, const ledger_op *op, errset *s)
{
    int c = cur_index(op->currency);
    int64_t amount = (int64_t)op->amount;
    if (!signed_by(tx, K_ISS0 + c)) may(s, KN_EUNAUTHORISED);
    bool fund = op->mode == LEDGER_CLEARING_FUND;
    if (amount > (fund ? m->treasury[c] : m->clearing[c])) may(s, KN_EOVERDRAFT);
    if (s->n) return;
    int64_t d = fund ? amount : -amount;
    m->treasury[c] -= d;
    m->clearing[c] += d;
    m->float_net[c] += d;
}

static void predict_close(model *m, const ledger_tx *tx, const ledger_op *op, uint64_t now,
                          errset *s)
{
    consortium_signers(tx, s);
    if (op->cycle < m->cycle) may(s, KN_ECYCLECLOSED);
    if (op->cycle > m->cycle) may(s, KN_ENOCYCLE);
    if (s->n) return;
    m->cycles[m->cycle].closed = true;
    m->cycles[m->cycle].netting = op->mode;
    m->cycle++;
    memset(&m->cycles[m->cycle], 0, sizeof m->cycles[m->cycle]);
}

static void predict_settle(model *m, const ledger_tx *tx, const ledger_op *op, errset *s)
{
    int debtor = cur_index(op->currency), creditor = cur_index(op->counter);
    if (!signed_by(tx, K_ISS0 + creditor)) may(s, KN_EUNAUTHORISED);
    if (op->cycle > m->cycle) {
        may(s, KN_ENOCYCLE);
        return;
    }
    if (op->cycle == m->cycle) {
        may(s, KN_ECYCLEOPEN);
        return;
    }
    cycle_m *cy = &m->cycles[op->cycle];
    assert_true(cy->known); /* closes end their block */
    obligation_m *o = NULL;
    for (uint32_t i = 0; i < cy->n_obligations; i++)
        if (cy->obligations[i].debtor == debtor && cy->obligations[i].creditor == creditor)
            o = &cy->obligations[i];
    if (!o) {
        may(s, KN_ENOOBLIGATION);
        return;
    }
    if (o->settled) may(s, KN_ESETTLED);
    if ((int64_t)op->amount != o->amount) may(s, KN_ESETTLEAMOUNT);
    if (!s->n) o->settled = true;
}

static void predict_role(model *m, const ledger_tx *tx, const ledger_op *op, errset *s)
{
    int c = cur_index(op->currency), k = key_index(op->from);
    if (!signed_by(tx, K_ISS0 + c)) may(s, KN_EUNAUTHORISED);
    bool held = m->roles[c][k] & ROLE_BIT(op->role);
    if (op->kind == LEDGER_OP_REVOKE && !held) may(s, KN_ENOROLE);
    if (s->n) return;
    if (op->kind == LEDGER_OP_GRANT) m->roles[c][k] |= ROLE_BIT(op->role);
    else m->roles[c][k] &= ~ROLE_BIT(op->role);
}

/* What a transaction must come to: its operations in order on a copy of the
 * model, kept only when every one passes; the first one that cannot pass
 * decides the possible errors. */
static errset predict(const ledger_tx *tx, uint64_t now)
{
    errset s = {0};
    scratch = R.m;
    for (uint32_t i = 0; i < tx->n_ops && !s.n; i++) {
        const ledger_op *op = &tx->ops[i];
        switch (op->kind) {
        case LEDGER_OP_EXCHANGE: predict_exchange(&scratch, tx, op, now, &s); break;
        case LEDGER_OP_RATE: predict_rate(&scratch, tx, op, now, &s); break;
        case LEDGER_OP_CLEARING: predict_clearing(&scratch, tx, op, &s); break;
        case LEDGER_OP_CLOSE: predict_close(&scratch, tx, op, now, &s); break;
        case LEDGER_OP_SETTLE: predict_settle(&scratch, tx, op, &s); break;
        case LEDGER_OP_GRANT:
        case LEDGER_OP_REVOKE: predict_role(&scratch, tx, op, &s); break;
        default: fail_msg("no model for %s", ledger_op_name(op->kind));
        }
    }
    if (!s.n) R.m = scratch;
    return s;
}

/* ================================================================ generating */

static int pick_user(void)
{
    return K_USER0 + (int)rnd(N_USERS);
}

/* Mostly a key that may exchange in the currency. */
static int pick_trader(int c)
{
    int candidates[N_USERS], n = 0;
    for (int k = K_USER0; k < K_N; k++)
        if (R.m.roles[c][k] & BUSINESS) candidates[n++] = k;
    if (n && chance(92)) return candidates[rnd((uint64_t)n)];
    return pick_user();
}

/* Mostly small terms, now and then up to the limit of 10^12. */
static uint64_t pick_term(void)
{
    unsigned r = (unsigned)rnd(100);
    if (r < 75) return rnd_between(1, 12);
    if (r < 95) return rnd_between(1, 5000);
    return rnd_between(1, LEDGER_RATE_TERM_MAX);
}

static uint64_t pick_amount(void)
{
    unsigned r = (unsigned)rnd(100);
    if (r < 10) return rnd_between(1, 3);
    if (r < 75) return rnd_between(1, 3000);
    if (r < 97) return rnd_between(1, 100000);
    return rnd_between(1, INT64_MAX);
}

static void gen_exchange(ledger_tx *tx, char *what, size_t what_n)
{
    int a = (int)rnd(R.n_cur), b = (int)rnd(R.n_cur - 1);
    b += b >= a;
    int payer = pick_trader(a), receiver = pick_trader(b);
    uint8_t mode = chance(50) ? LEDGER_EXCHANGE_SEND : LEDGER_EXCHANGE_DELIVER;
    uint64_t amount = pick_amount(), send_max = 0;
    if (mode == LEDGER_EXCHANGE_DELIVER && chance(40))
        send_max = rnd_between(1, amount < INT64_MAX / 4 ? amount * 2 + 10 : INT64_MAX);
    bool with_rate = chance(10); /* a new rate for its pair, in the same transaction */
    if (with_rate)
        op_rate(tx, R.codes[a], R.codes[b], pick_term(), pick_term(), R.time_ms - HOUR,
                R.time_ms + rnd_between(1, 30 * 24) * HOUR);
    op_exchange(tx, R.codes[a], payer, R.codes[b], receiver, mode, amount, send_max);
    if (with_rate) {
        tx_sign(tx, K_ADM1);
        tx_sign(tx, K_ADM2);
    }
    tx_sign(tx, chance(95) ? payer : pick_user());
    snprintf(what, what_n, "exchange %s %llu %s from user %d to %s user %d (send-max %llu)",
             mode == LEDGER_EXCHANGE_SEND ? "send" : "deliver", (unsigned long long)amount,
             R.codes[a], payer - K_USER0, R.codes[b], receiver - K_USER0,
             (unsigned long long)send_max);
}

/* A new rate: mostly in force for a while, sometimes later, ending soon or
 * already past. */
static void gen_rate(ledger_tx *tx, char *what, size_t what_n)
{
    int base = (int)rnd(R.n_cur), quote;
    if (chance(30)) quote = EUR;
    else {
        quote = (int)rnd(R.n_cur - 1);
        quote += quote >= base;
    }
    uint64_t num = quote == EUR ? rnd_between(1, 1000) : pick_term();
    uint64_t den = quote == EUR ? rnd_between(1, 1000) : pick_term();
    uint64_t start = R.time_ms - rnd(DAY), end = R.time_ms + rnd_between(1, 60 * 24) * HOUR;
    unsigned r = (unsigned)rnd(100);
    if (r < 10) start = R.time_ms + rnd_between(1, 12) * HOUR;
    if (r < 10) end = start + DAY;
    if (r >= 10 && r < 15) end = R.time_ms - rnd_between(1, 5) * MINUTE;
    if (end <= start) start = end - 1;
    const char *q = quote == EUR ? LEDGER_UNIT : R.codes[quote];
    op_rate(tx, R.codes[base], q, num, den, start, end);
    tx_sign(tx, K_ADM1);
    if (chance(92)) tx_sign(tx, K_ADM2);
    snprintf(what, what_n, "rate %s->%s %llu/%llu", R.codes[base], q, (unsigned long long)num,
             (unsigned long long)den);
}

static void gen_clearing(ledger_tx *tx, char *what, size_t what_n)
{
    int c = (int)rnd(R.n_cur);
    bool fund = chance(60);
    uint64_t amount = chance(90) ? rnd_between(1, 200000) : rnd_between(1, 100000000);
    op_clearing(tx, R.codes[c], fund ? LEDGER_CLEARING_FUND : LEDGER_CLEARING_RETURN, amount);
    tx_sign(tx, chance(93) ? K_ISS0 + c : K_ISS0 + (int)rnd(R.n_cur));
    snprintf(what, what_n, "clearing %s %s %llu", fund ? "fund" : "return", R.codes[c],
             (unsigned long long)amount);
}

static void gen_role(ledger_tx *tx, char *what, size_t what_n)
{
    static const uint32_t roles[] = {LEDGER_ROLE_MERCHANT, LEDGER_ROLE_SSE, LEDGER_ROLE_CLEARING};
    int c = (int)rnd(R.n_cur), k = pick_user();
    uint32_t role = roles[rnd(3)];
    bool held = R.m.roles[c][k] & ROLE_BIT(role);
    if (held) op_revoke(tx, R.codes[c], role, k);
    else op_grant(tx, R.codes[c], role, k, role == LEDGER_ROLE_MERCHANT ? "food" : "");
    tx_sign(tx, K_ISS0 + c);
    snprintf(what, what_n, "%s %s %s user %d", held ? "revoke" : "grant", ledger_role_name(role),
             R.codes[c], k - K_USER0);
}

/* Mostly the open cycle; now and then one already closed or not yet open. */
static void gen_close(ledger_tx *tx, char *what, size_t what_n)
{
    uint64_t cycle = R.m.cycle;
    unsigned r = (unsigned)rnd(100);
    if (r < 8 && cycle > 1) cycle -= rnd_between(1, cycle - 1);
    else if (r < 12) cycle += rnd_between(1, 3);
    uint8_t netting = chance(50) ? LEDGER_NETTING_BILATERAL : LEDGER_NETTING_MULTILATERAL;
    op_close(tx, cycle, netting);
    tx_sign(tx, K_ADM1);
    if (chance(93)) tx_sign(tx, K_ADM2);
    snprintf(what, what_n, "close %llu %s", (unsigned long long)cycle,
             netting == LEDGER_NETTING_BILATERAL ? "bilateral" : "multilateral");
}

/* An obligation of a closed cycle, settled or not. */
static bool pick_obligation(uint64_t *cycle, obligation_m **out, bool unsettled)
{
    for (int tries = 0; tries < 20; tries++) {
        if (R.m.cycle < 2) return false;
        uint64_t n = rnd_between(1, R.m.cycle - 1);
        cycle_m *cy = &R.m.cycles[n];
        if (!cy->n_obligations) continue;
        obligation_m *o = &cy->obligations[rnd(cy->n_obligations)];
        if (unsettled && o->settled) continue;
        *cycle = n;
        *out = o;
        return true;
    }
    return false;
}

/* Mostly an unsettled obligation with its exact amount by its creditor; else
 * a wrong amount, signer, pair or cycle, or one already settled. */
static void gen_settle(ledger_tx *tx, char *what, size_t what_n)
{
    uint64_t cycle = rnd_between(1, R.m.cycle + 1);
    obligation_m *o = NULL, any = {0};
    if (!pick_obligation(&cycle, &o, chance(85))) {
        any.debtor = (int)rnd(R.n_cur);
        any.creditor = (int)((any.debtor + 1 + rnd(R.n_cur - 1)) % R.n_cur);
        any.amount = (int64_t)rnd_between(1, 1000);
        o = &any;
    }
    int64_t amount = o->amount;
    unsigned r = (unsigned)rnd(100);
    if (r < 12) amount += chance(50) && amount > 1 ? -(int64_t)rnd_between(1, (uint64_t)amount - 1)
                                                   : (int64_t)rnd_between(1, 100);
    int debtor = o->debtor, creditor = o->creditor;
    if (r >= 12 && r < 16) debtor = o->creditor, creditor = o->debtor;
    op_settle(tx, R.codes[debtor], R.codes[creditor], cycle, (uint64_t)amount);
    tx_sign(tx, r >= 16 && r < 21 ? K_ISS0 + debtor : K_ISS0 + creditor);
    snprintf(what, what_n, "settle %s->%s cycle %llu amount %lld", R.codes[debtor],
             R.codes[creditor], (unsigned long long)cycle, (long long)amount);
}

/* ================================================================ checking */

static void die(const char *what, const char *detail)
{
    fail_msg("KOINON_SEED=%llu (block time %llu): %s: %s", (unsigned long long)seed_used,
             (unsigned long long)R.time_ms, what, detail);
}

static void check_balances(store_txn *t)
{
    char msg[200];
    for (uint32_t c = 0; c < R.n_cur; c++) {
        const char *code = R.codes[c];
        const model *m = &R.m;
        for (int k = K_USER0; k < K_N; k++) {
            int64_t b;
            assert_int_equal(ledger_balance_get(t, code, pk_of(k), &b), 0);
            if (b == m->balance[c][k]) continue;
            snprintf(msg, sizeof msg, "%s user %d holds %lld, model %lld", code, k - K_USER0,
                     (long long)b, (long long)m->balance[c][k]);
            die("balance", msg);
        }
        ledger_account tr, cl;
        assert_int_equal(ledger_account_get(t, code, zero_pk, LEDGER_SUB_TREASURY, &tr), 0);
        assert_int_equal(ledger_account_get(t, code, zero_pk, LEDGER_SUB_CLEARING, &cl), 0);
        int64_t supply;
        assert_int_equal(ledger_supply_get(t, code, &supply), 0);
        /* The float is what the treasury put in, plus what payers paid into it,
         * less what it paid receivers: no money lost or made on the way. */
        int64_t float_expected = m->float_net[c] + m->paid_in[c] - m->paid_out[c];
        if (tr.balance != m->treasury[c] || cl.balance != m->clearing[c] ||
            cl.balance != float_expected || supply != m->issued[c] || cl.balance < 0) {
            snprintf(msg, sizeof msg,
                     "%s treasury %lld/%lld clearing %lld/%lld/%lld supply %lld/%lld", code,
                     (long long)tr.balance, (long long)m->treasury[c], (long long)cl.balance,
                     (long long)m->clearing[c], (long long)float_expected, (long long)supply,
                     (long long)m->issued[c]);
            die("treasury, float or supply", msg);
        }
    }
}

typedef struct pos_list {
    int n;
    int cur[CUR_MAX];
    int64_t amount[CUR_MAX];
} pos_list;

static void collect_position(void *ctx, const char *code, int64_t amount)
{
    pos_list *l = ctx;
    assert_true(l->n < CUR_MAX);
    l->cur[l->n] = cur_index(code);
    l->amount[l->n++] = amount;
}

typedef struct ob_list {
    uint32_t n;
    ledger_obligation o[OBLIGATIONS_MAX];
} ob_list;

static void collect_obligation(void *ctx, const ledger_obligation *o)
{
    ob_list *l = ctx;
    assert_true(l->n < OBLIGATIONS_MAX);
    l->o[l->n++] = *o;
}

/* The obligations docs/LEDGER.md requires. Bilateral: each pair's net, paid
 * by the side that owes more. Multilateral: debtors and creditors in the
 * order of the position records, each payment the smaller of what is still
 * owed and still due. */
static void expected_obligations(cycle_m *cy, const pos_list *order)
{
    cy->n_obligations = 0;
    if (cy->netting == LEDGER_NETTING_BILATERAL) {
        for (uint32_t a = 0; a < R.n_cur; a++)
            for (uint32_t b = a + 1; b < R.n_cur; b++) {
                int64_t net = cy->owed[a][b] - cy->owed[b][a];
                if (net == 0) continue;
                cy->obligations[cy->n_obligations++] = net > 0
                    ? (obligation_m){(int)a, (int)b, net, false}
                    : (obligation_m){(int)b, (int)a, -net, false};
            }
        cy->known = true;
        return;
    }
    int64_t left[CUR_MAX];
    for (int i = 0; i < order->n; i++) left[i] = order->amount[i];
    int d = 0, c = 0;
    for (;;) {
        while (d < order->n && left[d] >= 0) d++;
        while (c < order->n && left[c] <= 0) c++;
        if (d == order->n || c == order->n) break;
        int64_t pay = -left[d] < left[c] ? -left[d] : left[c];
        cy->obligations[cy->n_obligations++] =
            (obligation_m){order->cur[d], order->cur[c], pay, false};
        left[d] += pay;
        left[c] -= pay;
    }
    cy->known = true;
}

static void check_obligations(store_txn *t, uint64_t n, cycle_m *cy, const ledger_cycle *lc)
{
    char msg[200];
    ob_list l = {0};
    assert_int_equal(ledger_cycle_obligations_each(t, n, collect_obligation, &l), 0);
    int64_t net[CUR_MAX] = {0};
    uint32_t settled = 0;
    for (uint32_t i = 0; i < l.n; i++) {
        int d = cur_index(l.o[i].debtor), c = cur_index(l.o[i].creditor);
        if (l.o[i].amount <= 0 || d == c) die("obligation", "not a payment");
        net[d] -= l.o[i].amount;
        net[c] += l.o[i].amount;
        settled += l.o[i].settled;
        bool found = false;
        for (uint32_t j = 0; j < cy->n_obligations; j++) {
            obligation_m *o = &cy->obligations[j];
            if (o->debtor != d || o->creditor != c) continue;
            found = o->amount == l.o[i].amount && o->settled == l.o[i].settled;
        }
        if (found) continue;
        snprintf(msg, sizeof msg, "cycle %llu (%s): %s pays %s %lld%s is not what the netting "
                 "requires", (unsigned long long)n,
                 cy->netting == LEDGER_NETTING_BILATERAL ? "bilateral" : "multilateral",
                 l.o[i].debtor, l.o[i].creditor, (long long)l.o[i].amount,
                 l.o[i].settled ? " (settled)" : "");
        die("obligations", msg);
    }
    for (uint32_t c = 0; c < R.n_cur; c++)
        if (net[c] != cy->position[c]) {
            snprintf(msg, sizeof msg, "cycle %llu: %s receives less pays %lld, position %lld",
                     (unsigned long long)n, R.codes[c], (long long)net[c],
                     (long long)cy->position[c]);
            die("obligations do not reproduce the positions", msg);
        }
    uint32_t want_settled = 0;
    for (uint32_t j = 0; j < cy->n_obligations; j++) want_settled += cy->obligations[j].settled;
    bool all = want_settled == cy->n_obligations;
    if (l.n != cy->n_obligations || lc->obligations != (int64_t)l.n ||
        lc->settled_count != (int64_t)settled || settled != want_settled || lc->settled != all) {
        snprintf(msg, sizeof msg, "cycle %llu: %u obligations (model %u, figure %lld), settled %u "
                 "(model %u, figure %lld, flag %d)", (unsigned long long)n, l.n,
                 cy->n_obligations, (long long)lc->obligations, settled, want_settled,
                 (long long)lc->settled_count, lc->settled);
        die("obligation counts", msg);
    }
}

static void check_cycle(store_txn *t, uint64_t n)
{
    char msg[200];
    cycle_m *cy = &R.m.cycles[n];
    ledger_cycle lc;
    assert_int_equal(ledger_cycle_get(t, n, &lc), 0);
    pos_list l = {0};
    assert_int_equal(ledger_cycle_positions_each(t, n, collect_position, &l), 0);
    int64_t sum = 0, got[CUR_MAX] = {0};
    for (int i = 0; i < l.n; i++) {
        sum += l.amount[i];
        got[l.cur[i]] = l.amount[i];
    }
    if (sum != 0) die("positions", "do not sum to zero");
    for (uint32_t c = 0; c < R.n_cur; c++)
        if (got[c] != cy->position[c]) {
            snprintf(msg, sizeof msg, "cycle %llu %s: %lld, model %lld", (unsigned long long)n,
                     R.codes[c], (long long)got[c], (long long)cy->position[c]);
            die("position", msg);
        }
    if (lc.closed != cy->closed || lc.exchanges != cy->exchanges || lc.value != cy->value ||
        (cy->closed && lc.netting != cy->netting)) {
        snprintf(msg, sizeof msg, "cycle %llu: closed %d/%d exchanges %lld/%lld value %lld/%lld",
                 (unsigned long long)n, lc.closed, cy->closed, (long long)lc.exchanges,
                 (long long)cy->exchanges, (long long)lc.value, (long long)cy->value);
        die("cycle figures", msg);
    }
    if (!cy->closed) {
        ob_list none = {0};
        assert_int_equal(ledger_cycle_obligations_each(t, n, collect_obligation, &none),
                         KN_ECYCLEOPEN);
        return;
    }
    if (!cy->known) expected_obligations(cy, &l);
    check_obligations(t, n, cy, &lc);
}

static void check_cycles(store_txn *t)
{
    uint64_t current;
    assert_int_equal(ledger_cycle_current(t, &current), 0);
    if (current != R.m.cycle) die("open cycle", "differs from the model");
    for (uint64_t n = 1; n <= current; n++) check_cycle(t, n);
    ledger_cycle none;
    assert_int_equal(ledger_cycle_get(t, current + 1, &none), KN_ENOCYCLE);
}

/* A settlement with a wrong amount, or one already made, applied to the
 * committed state: refused with its error, every byte as it was. */
static void probe_refused_settlement(void)
{
    uint64_t cycle;
    obligation_m *o;
    if (!pick_obligation(&cycle, &o, false)) return;
    ledger_tx *tx = malloc(sizeof *tx);
    assert_non_null(tx);
    tx_new(&R.c, tx);
    bool wrong = !o->settled || chance(50);
    op_settle(tx, R.codes[o->debtor], R.codes[o->creditor], cycle,
              (uint64_t)(o->amount + (wrong ? 1 : 0)));
    tx_sign(tx, K_ISS0 + o->creditor);
    int want = o->settled && !wrong ? KN_ESETTLED : KN_ESETTLEAMOUNT;
    store_txn *t;
    uint8_t before[KN_HASH_BYTES], after[KN_HASH_BYTES];
    assert_int_equal(store_begin(R.c.env, true, &t), 0);
    state_digest(t, before);
    int got = ledger_tx_apply(t, tx, 1u << 20, R.time_ms);
    state_digest(t, after);
    store_abort(t);
    free(tx);
    R.probes++;
    if (o->settled && wrong && got == KN_ESETTLED) got = KN_ESETTLEAMOUNT; /* either reads */
    if (got != want) die("refused settlement", kn_errname(got));
    if (memcmp(before, after, KN_HASH_BYTES)) die("refused settlement", "changed the state");
}

/* ================================================================ the run */

static void bootstrap_rates(void)
{
    ledger_tx *tx = calloc(1, sizeof *tx);
    assert_non_null(tx);
    for (uint32_t a = 0; a < R.n_cur; a++) {
        tx_new(&R.c, tx);
        for (uint32_t b = 0; b <= R.n_cur; b++) {
            bool unit = b == R.n_cur;
            if (b == a || (!unit && chance(12)) || (unit && chance(8))) continue;
            uint64_t num = unit ? rnd_between(1, 1000) : pick_term();
            uint64_t den = unit ? rnd_between(1, 1000) : pick_term();
            op_rate(tx, R.codes[a], unit ? LEDGER_UNIT : R.codes[b], num, den, T0, T0 + 1000 * DAY);
        }
        if (!tx->n_ops) continue;
        tx_sign(tx, K_ADM1);
        tx_sign(tx, K_ADM2);
        R.time_ms += MINUTE;
        errset e = predict(tx, R.time_ms);
        assert_int_equal(e.n, 0);
        exec_block(&R.c, R.time_ms, tx, 1);
        assert_int_equal(tx_result(&R.c, tx), 0);
    }
    free(tx);
}

/* Per currency: an issue, random business roles (a holder otherwise), money
 * for every user, a float. */
static void bootstrap_currency(uint32_t c, ledger_tx *txs)
{
    static const uint32_t roles[] = {LEDGER_ROLE_MERCHANT, LEDGER_ROLE_SSE, LEDGER_ROLE_CLEARING};
    const char *code = R.codes[c];
    int iss = K_ISS0 + (int)c;
    model *m = &R.m;
    tx_new(&R.c, &txs[0]);
    op_issue(&txs[0], code, 100000000);
    m->issued[c] = m->treasury[c] = 100000000;
    for (int k = K_USER0; k < K_N; k++) {
        if (chance(40)) continue;
        uint32_t role = roles[rnd(3)];
        op_grant(&txs[0], code, role, k, role == LEDGER_ROLE_MERCHANT ? "food" : "");
        m->roles[c][k] |= ROLE_BIT(role);
    }
    tx_sign(&txs[0], iss);
    tx_new(&R.c, &txs[1]);
    for (int k = K_USER0; k < K_N; k++) {
        int64_t amount = (int64_t)rnd_between(10000, 300000);
        op_pay(&txs[1], code, NULL, "", pk_of(k), (uint64_t)amount);
        m->treasury[c] -= amount;
        m->balance[c][k] = amount;
    }
    tx_sign(&txs[1], iss);
    tx_new(&R.c, &txs[2]);
    int64_t fl = (int64_t)rnd_between(10000, 2000000);
    op_clearing(&txs[2], code, LEDGER_CLEARING_FUND, (uint64_t)fl);
    m->treasury[c] -= fl;
    m->clearing[c] = m->float_net[c] = fl;
    tx_sign(&txs[2], iss);
    R.time_ms += MINUTE;
    exec_block(&R.c, R.time_ms, txs, 3);
    for (int i = 0; i < 3; i++) {
        int rc = tx_result(&R.c, &txs[i]);
        if (rc) fail_msg("bootstrap %s tx %d: %s", code, i, kn_errname(rc));
    }
}

static void open_random_world(void)
{
    static const char *const codes[CUR_MAX] = {"SVQ", "TRN", "GIRONA", "BCN", "ZZ", "A1"};
    memset(&R, 0, sizeof R);
    R.n_cur = (uint32_t)rnd_between(4, CUR_MAX);
    ledger_genesis *g = malloc(sizeof *g);
    assert_non_null(g);
    genesis_start(g, T0);
    for (uint32_t c = 0; c < R.n_cur; c++) {
        strcpy(R.codes[c], codes[c]);
        genesis_currency(g, codes[c], K_ISS0 + (int)c);
    }
    chain_open(&R.c, g);
    free(g);
    R.time_ms = T0;
    R.m.cycle = 1;
    ledger_tx *txs = calloc(3, sizeof *txs);
    assert_non_null(txs);
    for (uint32_t c = 0; c < R.n_cur; c++) bootstrap_currency(c, txs);
    free(txs);
    bootstrap_rates();
}

typedef struct planned {
    ledger_tx tx;
    errset expect;
    char what[200];
} planned;

static planned plan[TXS_PER_BLOCK_MAX];

/* A block of random transactions, each predicted in turn; a close ends its
 * block, so that the obligations it fixes are worked out before any
 * settlement of them. */
static uint32_t plan_block(void)
{
    uint32_t n = 0, want = (uint32_t)rnd_between(1, TXS_PER_BLOCK_MAX);
    bool closed = false;
    while (n < want && !closed) {
        planned *p = &plan[n];
        tx_new(&R.c, &p->tx);
        unsigned r = (unsigned)rnd(100);
        if (r < 62) gen_exchange(&p->tx, p->what, sizeof p->what);
        else if (r < 70) gen_rate(&p->tx, p->what, sizeof p->what);
        else if (r < 77) gen_clearing(&p->tx, p->what, sizeof p->what);
        else if (r < 80) gen_role(&p->tx, p->what, sizeof p->what);
        else if (r < 91) gen_settle(&p->tx, p->what, sizeof p->what);
        else if (r < 94 && R.m.cycle < CYCLES_MAX) {
            gen_close(&p->tx, p->what, sizeof p->what);
            closed = true;
        } else {
            gen_exchange(&p->tx, p->what, sizeof p->what);
        }
        p->expect = predict(&p->tx, R.time_ms);
        n++;
    }
    return n;
}

static void check_results(uint32_t n)
{
    char msg[400];
    for (uint32_t i = 0; i < n; i++) {
        const planned *p = &plan[i];
        int got = tx_result(&R.c, &p->tx);
        uint8_t kind = p->tx.ops[p->tx.n_ops - 1].kind;
        if (got) R.refused[kind]++;
        else R.accepted[kind]++;
        R.by_error[got ? (unsigned)(got - KN__ERR_BASE) % 160 : 0]++;
        if (p->expect.n == 0 ? got == 0 : allowed(&p->expect, got)) continue;
        int len = snprintf(msg, sizeof msg, "%s: got %s, want %s", p->what,
                           got ? kn_errname(got) : "accepted", p->expect.n ? "one of" : "accepted");
        for (int e = 0; e < p->expect.n && len < (int)sizeof msg - 40; e++)
            len += snprintf(msg + len, sizeof msg - (size_t)len, " %s", kn_errname(p->expect.e[e]));
        die("transaction result", msg);
    }
}

static void one_block(void)
{
    R.time_ms += chance(85) ? rnd_between(1, 30) * MINUTE : rnd_between(1, 12) * HOUR;
    uint32_t n = plan_block();
    static ledger_tx txs[TXS_PER_BLOCK_MAX];
    for (uint32_t i = 0; i < n; i++) txs[i] = plan[i].tx;
    exec_block(&R.c, R.time_ms, txs, n);
    check_results(n);
    store_txn *t;
    assert_int_equal(store_begin(R.c.env, false, &t), 0);
    check_balances(t);
    check_cycles(t);
    assert_int_equal(store_error(t), 0);
    store_abort(t);
    if (chance(15)) probe_refused_settlement();
}

static void print_outcomes(uint64_t blocks)
{
    printf("[ SEED     ] KOINON_SEED=%llu: %llu blocks, %u currencies, %llu cycles, %u probes\n",
           (unsigned long long)seed_used, (unsigned long long)blocks, R.n_cur,
           (unsigned long long)R.m.cycle, R.probes);
    for (int k = 1; k <= LEDGER_OP_KIND_MAX; k++)
        if (R.accepted[k] + R.refused[k])
            printf("[ KIND     ] %-10s accepted %5u refused %5u\n", ledger_op_name((uint32_t)k),
                   R.accepted[k], R.refused[k]);
    for (int e = 0; e < 160; e++)
        if (R.by_error[e])
            printf("[ RESULT   ] %-24s %u\n", e ? kn_errname(KN__ERR_BASE + e) : "ok",
                   R.by_error[e]);
}

static void clearing_random_blocks(void **state)
{
    seed_used = env_u64("KOINON_SEED", DEFAULT_SEED);
    uint64_t blocks = env_u64("KOINON_BLOCKS", DEFAULT_BLOCKS);
    printf("[ SEED     ] KOINON_SEED=%llu\n", (unsigned long long)seed_used);
    fflush(stdout);
    rng_state = seed_used;
    open_random_world();
    for (uint64_t b = 0; b < blocks; b++) one_block();
    print_outcomes(blocks);
    /* The traffic reached the rules: exchanges both ways, closes and
     * settlements accepted, and the main refusals seen. */
    assert_true(R.accepted[LEDGER_OP_EXCHANGE] >= blocks);
    if (blocks >= DEFAULT_BLOCKS) {
        assert_true(R.accepted[LEDGER_OP_CLOSE] >= 3 && R.accepted[LEDGER_OP_SETTLE] >= 3);
        assert_true(R.refused[LEDGER_OP_EXCHANGE] >= blocks / 4);
        assert_true(R.refused[LEDGER_OP_SETTLE] >= 3);
    }
    chain_close(&R.c);
}

/* ================================================================ report figures */

/* The report world: genesis at the start of day D1.
 *   LOC (p2p, 1% redemption fee early or not), OTH, DMX (1% demurrage a day,
 *   clawback, p2p); one issuer admin for all three.
 * Keys: HOLD and HOLD2 hold money without a role; BEN is a beneficiary of
 * LOC; FOOD a merchant ("food") in LOC and DMX; SSE an sse entity of LOC;
 * OMER a merchant of OTH; PM manages LOC's aid; AUD audits DMX. */
#define D1 19800u
#define AT(day, hours) ((uint64_t)(day) * DAY + (uint64_t)(hours) * HOUR)
#define ISS K_ISS0
#define HOLD (K_USER0 + 0)
#define HOLD2 (K_USER0 + 1)
#define BEN (K_USER0 + 2)
#define FOOD (K_USER0 + 3)
#define SSE (K_USER0 + 4)
#define OMER (K_USER0 + 5)
#define PM (K_USER0 + 6)
#define AUD (K_USER0 + 7)

static void report_genesis(chain *c)
{
    ledger_genesis *g = malloc(sizeof *g);
    assert_non_null(g);
    genesis_start(g, AT(D1, 0));
    ledger_currency *cur = genesis_currency(g, "LOC", ISS);
    cur->flags = LEDGER_CUR_P2P;
    cur->fee_bps = 100;
    cur->early_fee_bps = 100;
    cur->early_days = 0;
    genesis_currency(g, "OTH", ISS);
    cur = genesis_currency(g, "DMX", ISS);
    cur->flags = LEDGER_CUR_DEMURRAGE | LEDGER_CUR_CLAWBACK | LEDGER_CUR_P2P;
    cur->demurrage_bps = 100;
    cur->demurrage_period_ms = DAY;
    chain_open(c, g);
    free(g);
}

/* One operation per transaction: the block is txs[0..n). */
typedef struct block_b {
    chain *c;
    uint32_t n;
    ledger_tx txs[TXS_PER_BLOCK_MAX];
} block_b;

static ledger_tx *next_tx(block_b *b)
{
    assert_true(b->n < TXS_PER_BLOCK_MAX);
    ledger_tx *tx = &b->txs[b->n++];
    tx_new(b->c, tx);
    return tx;
}

static void block_run(block_b *b, uint64_t time_ms)
{
    exec_block(b->c, time_ms, b->txs, b->n);
    for (uint32_t i = 0; i < b->n; i++) {
        int rc = tx_result(b->c, &b->txs[i]);
        if (rc) fail_msg("report scenario tx %u (%s): %s", i, ledger_op_name(b->txs[i].ops[0].kind),
                         kn_errname(rc));
    }
    b->n = 0;
}

/* Day D1, 01:00: roles, OTH's float, rates, LOC's aid programme. */
static void report_day1_setup(block_b *b)
{
    ledger_tx *tx = next_tx(b);
    op_grant(tx, "LOC", LEDGER_ROLE_PROGRAMME_MANAGER, PM, "");
    op_grant(tx, "LOC", LEDGER_ROLE_BENEFICIARY, BEN, "");
    op_grant(tx, "LOC", LEDGER_ROLE_MERCHANT, FOOD, "food");
    op_grant(tx, "LOC", LEDGER_ROLE_SSE, SSE, "");
    op_grant(tx, "OTH", LEDGER_ROLE_MERCHANT, OMER, "books");
    op_grant(tx, "OTH", LEDGER_ROLE_CLEARING, HOLD2, "");
    op_grant(tx, "DMX", LEDGER_ROLE_MERCHANT, FOOD, "food");
    op_grant(tx, "DMX", LEDGER_ROLE_AUDITOR, AUD, "");
    op_issue(tx, "OTH", 10000);
    op_clearing(tx, "OTH", LEDGER_CLEARING_FUND, 5000);
    tx_sign(tx, ISS);
    tx = next_tx(b);
    op_rate(tx, "LOC", "OTH", 1, 1, AT(D1, 0), AT(D1 + 100, 0));
    op_rate(tx, "LOC", LEDGER_UNIT, 1, 1, AT(D1, 0), AT(D1 + 100, 0));
    tx_sign(tx, K_ADM1);
    tx_sign(tx, K_ADM2);
    tx = next_tx(b);
    ledger_op *op = op_add(tx, LEDGER_OP_PROGRAMME, "LOC");
    strcpy(op->programme, "aid");
    ledger_programme *p = &tx->programme_def;
    strcpy(p->currency, "LOC");
    strcpy(p->id, "aid");
    p->budget = 600;
    p->start_ms = AT(D1, 0);
    p->end_ms = AT(D1 + 3, 0); /* spent until D4, then swept */
    tx_sign(tx, PM);
    block_run(b, AT(D1, 1));
}

/* Day D1, 02:00 and 03:00: money in and the first round of spending. */
static void report_day1_money(block_b *b, uint8_t dmx_payment_id[KN_HASH_BYTES])
{
    ledger_tx *tx = next_tx(b);
    op_issue(tx, "LOC", 10000);
    op_pay(tx, "LOC", NULL, "", pk_of(HOLD), 1000);
    ledger_op *op = op_add(tx, LEDGER_OP_FUND, "LOC");
    strcpy(op->programme, "aid");
    op->amount = 600;
    op_issue(tx, "DMX", 5000);
    op_retire(tx, "DMX", 1000);
    op_pay(tx, "DMX", NULL, "", pk_of(HOLD), 1000);
    tx_sign(tx, ISS);
    tx = next_tx(b);
    op = op_add(tx, LEDGER_OP_DISBURSE, "LOC");
    strcpy(op->programme, "aid");
    strcpy(op->ref, "batch-1");
    tx->n_payees = 1;
    memcpy(tx->payees[0].pk, pk_of(BEN), KN_PK_BYTES);
    tx->payees[0].amount = 600;
    tx_sign(tx, PM);
    block_run(b, AT(D1, 2));

    tx = next_tx(b);
    op_pay(tx, "LOC", pk_of(BEN), "aid", pk_of(FOOD), 500);
    tx_sign(tx, BEN);
    tx = next_tx(b);
    op_pay(tx, "LOC", pk_of(HOLD), "", pk_of(SSE), 100);
    tx_sign(tx, HOLD);
    tx = next_tx(b);
    op_pay(tx, "DMX", pk_of(HOLD), "", pk_of(FOOD), 300);
    tx_sign(tx, HOLD);
    memcpy(dmx_payment_id, tx->id, KN_HASH_BYTES);
    tx = next_tx(b);
    op = op_add(tx, LEDGER_OP_REVERSE, "DMX");
    memcpy(op->link, dmx_payment_id, KN_HASH_BYTES);
    op->amount = 100;
    strcpy(op->ref, "refund-1");
    tx_sign(tx, FOOD);
    tx = next_tx(b);
    op = op_add(tx, LEDGER_OP_CLAWBACK, "DMX");
    memcpy(op->from, pk_of(HOLD), KN_PK_BYTES);
    op->amount = 50;
    strcpy(op->ref, "case-1");
    tx_sign(tx, ISS);
    tx_sign(tx, AUD);
    block_run(b, AT(D1, 3));
}

/* Day D2: respending, redemption, an exchange out, a p2p payment. D1 + 2:
 * nothing in LOC; DMX charges demurrage; in OTH a merchant and a clearing
 * agent pay each other. D1 + 3: the sweep and a return. */
static void report_later_days(block_b *b)
{
    ledger_tx *tx = next_tx(b);
    op_pay(tx, "LOC", pk_of(FOOD), "", pk_of(SSE), 200);
    op_exchange(tx, "LOC", FOOD, "OTH", OMER, LEDGER_EXCHANGE_SEND, 50, 0);
    tx_sign(tx, FOOD);
    tx = next_tx(b);
    ledger_op *op = op_add(tx, LEDGER_OP_REDEEM, "LOC");
    memcpy(op->from, pk_of(SSE), KN_PK_BYTES);
    op->amount = 150;
    strcpy(op->ref, "payout-1");
    tx_sign(tx, SSE);
    tx = next_tx(b);
    op_pay(tx, "LOC", pk_of(HOLD), "", pk_of(HOLD2), 40);
    tx_sign(tx, HOLD);
    block_run(b, AT(D1 + 1, 1));

    tx = next_tx(b);
    op_pay(tx, "DMX", pk_of(HOLD), "", pk_of(FOOD), 10);
    tx_sign(tx, HOLD);
    tx = next_tx(b);
    op_pay(tx, "OTH", pk_of(OMER), "", pk_of(HOLD2), 20);
    tx_sign(tx, OMER);
    tx = next_tx(b);
    op_pay(tx, "OTH", pk_of(HOLD2), "", pk_of(OMER), 5);
    tx_sign(tx, HOLD2);
    block_run(b, AT(D1 + 2, 4));

    tx = next_tx(b);
    op = op_add(tx, LEDGER_OP_EXPIRE, "LOC");
    strcpy(op->programme, "aid");
    tx_sign(tx, PM);
    tx = next_tx(b);
    op_pay(tx, "LOC", pk_of(HOLD), "", NULL, 30);
    tx_sign(tx, HOLD);
    block_run(b, AT(D1 + 3, 1));
}

typedef struct category_list {
    int n;
    char name[8][LEDGER_CATEGORY_MAX + 1];
    int64_t amount[8];
} category_list;

static void collect_category(void *ctx, const char *category, int64_t amount)
{
    category_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->name[l->n], sizeof l->name[0], "%s", category);
    l->amount[l->n++] = amount;
}

/* Expected figures, in ledger_report's order; flows not listed are zero. */
typedef struct want {
    int64_t issued, retired, treasury_paid, disbursed, injected, spent, respent, other, returned;
    int64_t redeemed, fees, demurrage, clawed_back, expired, reversed, in, out;
    int64_t start, end, avg, lm3, retention, velocity;
    const char *cat[3];
    int64_t cat_amount[3];
} want;

static void assert_report(store_txn *t, const char *code, uint32_t from, uint32_t to,
                          const want *w)
{
    ledger_report r;
    category_list l = {0};
    int rc = ledger_report_get(t, code, from, to, &r, collect_category, &l);
    if (rc) fail_msg("report %s [D1%+d, D1%+d): %s", code, (int)(from - D1), (int)(to - D1),
                     kn_errname(rc));
    const int64_t got[] = {r.issued, r.retired, r.treasury_paid, r.disbursed, r.injected,
                           r.spent, r.respent, r.other_payments, r.returned, r.redeemed, r.fees,
                           r.demurrage, r.clawed_back, r.expired, r.reversed, r.exchanged_in,
                           r.exchanged_out, r.outstanding_start, r.outstanding_end,
                           r.outstanding_avg, r.lm3_bps, r.retention_bps, r.velocity_bps};
    const int64_t exp[] = {w->issued, w->retired, w->treasury_paid, w->disbursed, w->injected,
                           w->spent, w->respent, w->other, w->returned, w->redeemed, w->fees,
                           w->demurrage, w->clawed_back, w->expired, w->reversed, w->in, w->out,
                           w->start, w->end, w->avg, w->lm3, w->retention, w->velocity};
    static const char *const names[] = {
        "issued", "retired", "treasury_paid", "disbursed", "injected", "spent", "respent",
        "other_payments", "returned", "redeemed", "fees", "demurrage", "clawed_back", "expired",
        "reversed", "exchanged_in", "exchanged_out", "outstanding_start", "outstanding_end",
        "outstanding_avg", "lm3_bps", "retention_bps", "velocity_bps"};
    int wrong = 0;
    for (size_t i = 0; i < sizeof got / sizeof got[0]; i++) {
        if (got[i] == exp[i]) continue;
        printf("[  CASE  ] report %s [D1%+d, D1%+d): %s %lld, want %lld\n", code, (int)(from - D1),
               (int)(to - D1), names[i], (long long)got[i], (long long)exp[i]);
        wrong++;
    }
    assert_string_equal(r.currency, code);
    assert_true(r.from_day == from && r.to_day == to);
    int n_cat = 0;
    while (n_cat < 3 && w->cat[n_cat]) n_cat++;
    bool cats_ok = l.n == n_cat;
    for (int i = 0; cats_ok && i < n_cat; i++)
        cats_ok = !strcmp(l.name[i], w->cat[i]) && l.amount[i] == w->cat_amount[i];
    if (!cats_ok) {
        printf("[  CASE  ] report %s [D1%+d, D1%+d): spending by category:", code,
               (int)(from - D1), (int)(to - D1));
        for (int i = 0; i < l.n; i++) printf(" %s %lld", l.name[i], (long long)l.amount[i]);
        printf("\n");
        wrong++;
    }
    if (wrong) fail_msg("report %s [D1%+d, D1%+d): %d figures differ", code, (int)(from - D1),
                        (int)(to - D1), wrong);
}

/* LOC, by hand. Held by keys at the end of each day:
 *   D1: HOLD 1000 - 100 = 900, BEN's aid 600 - 500 = 100, FOOD 500, SSE 100 -> 1600
 *   D2: FOOD 500 - 200 - 50 = 250, SSE 100 + 200 - 150 = 150, HOLD 900 - 40 = 860,
 *       HOLD2 40, BEN 100 -> 1400 (the fee of 1 sits in #fees, not with a key)
 *   D3: no movement -> 1400
 *   D4: BEN's 100 swept, HOLD returns 30 -> 1270
 * L (local payments) = spent + respent + other_payments. */
static void report_loc(store_txn *t)
{
    /* D1: R1 = 1000 + 600 = 1600, R2 = min(600, 1600) = 600, R3 = 0;
     * lm3 = 10000 * 2200 / 1600 = 13750; retention = 600 / 600 = 10000;
     * velocity = 10000 * 600 / 1600 = 3750. */
    assert_report(t, "LOC", D1, D1 + 1,
                  &(want){.issued = 10000, .treasury_paid = 1000, .disbursed = 600,
                          .injected = 1600, .spent = 600, .start = 0, .end = 1600, .avg = 1600,
                          .lm3 = 13750, .retention = 10000, .velocity = 3750,
                          .cat = {"food", "sse"}, .cat_amount = {500, 100}});
    /* D2: L = 0 + 200 + 40 = 240; redeemed 150 - fee floor(150 * 1%) = 1 -> 149;
     * retention = 10000 * 240 / (240 + 149 + 1 + 50) = 2400000 / 440 = 5454;
     * velocity = 10000 * 240 / 1400 = 1714; lm3 0 (nothing injected). */
    assert_report(t, "LOC", D1 + 1, D1 + 2,
                  &(want){.respent = 200, .other = 40, .redeemed = 149, .fees = 1, .out = 50,
                          .start = 1600, .end = 1400, .avg = 1400, .retention = 5454,
                          .velocity = 1714});
    /* D1-D2: L = 600 + 200 + 40 = 840; R3 = min(200, 600) = 200;
     * lm3 = 10000 * (1600 + 600 + 200) / 1600 = 15000;
     * retention = 8400000 / (840 + 149 + 1 + 50) = 8400000 / 1040 = 8076;
     * avg = (1600 + 1400) / 2 = 1500; velocity = 8400000 / 1500 = 5600. */
    assert_report(t, "LOC", D1, D1 + 2,
                  &(want){.issued = 10000, .treasury_paid = 1000, .disbursed = 600,
                          .injected = 1600, .spent = 600, .respent = 200, .other = 40,
                          .redeemed = 149, .fees = 1, .out = 50, .start = 0, .end = 1400,
                          .avg = 1500, .lm3 = 15000, .retention = 8076, .velocity = 5600,
                          .cat = {"food", "sse"}, .cat_amount = {500, 100}});
    /* D3: no movement at all. */
    assert_report(t, "LOC", D1 + 2, D1 + 3, &(want){.start = 1400, .end = 1400, .avg = 1400});
    /* D1-D3: avg = floor((1600 + 1400 + 1400) / 3) = floor(1466.7) = 1466;
     * velocity = floor(8400000 / 1466) = floor(5729.9) = 5729. */
    assert_report(t, "LOC", D1, D1 + 3,
                  &(want){.issued = 10000, .treasury_paid = 1000, .disbursed = 600,
                          .injected = 1600, .spent = 600, .respent = 200, .other = 40,
                          .redeemed = 149, .fees = 1, .out = 50, .start = 0, .end = 1400,
                          .avg = 1466, .lm3 = 15000, .retention = 8076, .velocity = 5729,
                          .cat = {"food", "sse"}, .cat_amount = {500, 100}});
    /* D4: the sweep and a return; no local payment: every ratio 0. */
    assert_report(t, "LOC", D1 + 3, D1 + 4,
                  &(want){.returned = 30, .expired = 100, .start = 1400, .end = 1270,
                          .avg = 1270});
    /* D1-D4: avg = floor((1600 + 1400 + 1400 + 1270) / 4) = floor(1417.5) = 1417;
     * velocity = floor(8400000 / 1417) = floor(5928.0) = 5928. */
    assert_report(t, "LOC", D1, D1 + 4,
                  &(want){.issued = 10000, .treasury_paid = 1000, .disbursed = 600,
                          .injected = 1600, .spent = 600, .respent = 200, .other = 40,
                          .returned = 30, .redeemed = 149, .fees = 1, .expired = 100, .out = 50,
                          .start = 0, .end = 1270, .avg = 1417, .lm3 = 15000,
                          .retention = 8076, .velocity = 5928, .cat = {"food", "sse"},
                          .cat_amount = {500, 100}});
    /* Before the chain began, and a day after its last block. */
    assert_report(t, "LOC", D1 - 5, D1, &(want){0});
    assert_report(t, "LOC", D1 + 4, D1 + 5, &(want){.start = 1270, .end = 1270, .avg = 1270});
}

/* OTH: what arrived by exchange, from its clearing account (its own float
 * moves count nowhere), then OMER (a merchant) pays HOLD2 (a clearing agent)
 * 20 and HOLD2 pays OMER 5: neither is spending nor re-spending, both are
 * other payments. */
static void report_oth(store_txn *t)
{
    assert_report(t, "OTH", D1, D1 + 1, &(want){.issued = 10000});
    /* D2: L = 0: every ratio 0. */
    assert_report(t, "OTH", D1 + 1, D1 + 2, &(want){.in = 50, .end = 50, .avg = 50});
    /* D3: L = 25; retention 25 / 25 = 10000; velocity 10000 * 25 / 50 = 5000. */
    assert_report(t, "OTH", D1 + 2, D1 + 3,
                  &(want){.other = 25, .start = 50, .end = 50, .avg = 50, .retention = 10000,
                          .velocity = 5000});
    /* D1-D3: avg = floor((0 + 50 + 50) / 3) = 33; velocity = floor(250000 / 33) = 7575. */
    assert_report(t, "OTH", D1, D1 + 3,
                  &(want){.issued = 10000, .other = 25, .in = 50, .end = 50, .avg = 33,
                          .retention = 10000, .velocity = 7575});
}

/* DMX, by hand. D1: issue 5000, retire 1000, the treasury pays HOLD 1000;
 * HOLD pays FOOD 300 (spent, food), FOOD refunds 100 (reversed), 50 clawed
 * back from HOLD: HOLD 750, FOOD 200 -> 950 held. D3 at 04:00, two whole
 * days after both accounts were last charged: HOLD 750 * 2% = 15, FOOD
 * 200 * 2% = 4 -> demurrage 19; HOLD pays FOOD 10 -> 931 held. */
static void report_dmx(store_txn *t)
{
    /* lm3 = 10000 * (1000 + 300) / 1000 = 13000; velocity = 3000000 / 950 = 3157. */
    assert_report(t, "DMX", D1, D1 + 1,
                  &(want){.issued = 5000, .retired = 1000, .treasury_paid = 1000,
                          .injected = 1000, .spent = 300, .clawed_back = 50, .reversed = 100,
                          .end = 950, .avg = 950, .lm3 = 13000, .retention = 10000,
                          .velocity = 3157, .cat = {"food"}, .cat_amount = {300}});
    /* D2: balances read as last charged: no demurrage without a use. */
    assert_report(t, "DMX", D1 + 1, D1 + 2, &(want){.start = 950, .end = 950, .avg = 950});
    /* D3: velocity = 100000 / 931 = 107. */
    assert_report(t, "DMX", D1 + 2, D1 + 3,
                  &(want){.spent = 10, .demurrage = 19, .start = 950, .end = 931, .avg = 931,
                          .retention = 10000, .velocity = 107, .cat = {"food"},
                          .cat_amount = {10}});
    /* D1-D3: avg = floor((950 + 950 + 931) / 3) = floor(943.7) = 943;
     * lm3 = 10000 * (1000 + 310) / 1000 = 13100; velocity = floor(3100000 / 943) = 3287. */
    assert_report(t, "DMX", D1, D1 + 3,
                  &(want){.issued = 5000, .retired = 1000, .treasury_paid = 1000,
                          .injected = 1000, .spent = 310, .demurrage = 19, .clawed_back = 50,
                          .reversed = 100, .end = 931, .avg = 943, .lm3 = 13100,
                          .retention = 10000, .velocity = 3287, .cat = {"food"},
                          .cat_amount = {310}});
}

static void report_figures_by_day(void **state)
{
    chain c = {0};
    report_genesis(&c);
    block_b *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->c = &c;
    uint8_t payment_id[KN_HASH_BYTES];
    report_day1_setup(b);
    report_day1_money(b, payment_id);
    report_later_days(b);
    free(b);
    store_txn *t;
    assert_int_equal(store_begin(c.env, false, &t), 0);
    report_loc(t);
    report_oth(t);
    report_dmx(t);
    /* The report is a read: from a write transaction it changes nothing. */
    store_abort(t);
    assert_int_equal(store_begin(c.env, true, &t), 0);
    uint8_t before[KN_HASH_BYTES], after[KN_HASH_BYTES];
    state_digest(t, before);
    ledger_report r;
    assert_int_equal(ledger_report_get(t, "LOC", D1, D1 + 4, &r, NULL, NULL), 0);
    assert_int_equal(r.velocity_bps, 5928); /* no callback needed */
    state_digest(t, after);
    assert_memory_equal(before, after, KN_HASH_BYTES);
    store_abort(t);
    chain_close(&c);
}

static void report_rejections(void **state)
{
    chain c = {0};
    report_genesis(&c);
    store_txn *t;
    assert_int_equal(store_begin(c.env, false, &t), 0);
    ledger_report r;
    assert_int_equal(ledger_report_get(t, "LOC", D1, D1, &r, NULL, NULL), KN_EINVAL);
    assert_int_equal(ledger_report_get(t, "LOC", D1 + 1, D1, &r, NULL, NULL), KN_EINVAL);
    assert_int_equal(ledger_report_get(t, "NOPE", D1, D1 + 1, &r, NULL, NULL), KN_ENOCURRENCY);
    /* A currency with nothing yet: all zero. */
    assert_int_equal(ledger_report_get(t, "OTH", D1, D1 + 7, &r, NULL, NULL), 0);
    assert_true(r.issued == 0 && r.outstanding_end == 0 && r.outstanding_avg == 0);
    assert_true(r.lm3_bps == 0 && r.retention_bps == 0 && r.velocity_bps == 0);
    store_abort(t);
    chain_close(&c);
}

static int group_setup(void **state)
{
    assert_int_equal(kn_crypto_init(), 0);
    kn_log_setup(KN_LOG_ERROR, false);
    fixed_keys(keys, K_N, 0xc1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_rejections),
        cmocka_unit_test(report_figures_by_day),
        cmocka_unit_test(clearing_random_blocks),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
