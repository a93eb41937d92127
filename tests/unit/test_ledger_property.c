/* Property test of the money rules: thousands of random operations, valid and
 * invalid (every kind, right and wrong signers, amounts up to int64, block time
 * moving on so that programmes start, end and expire and demurrage accrues),
 * executed block by block. After every block the ledger's own full audit
 * (ledger_check_invariants) runs, and this test checks independently that in
 * every currency the balances of all accounts sum to zero, that no account is
 * below its floor, and that no programme has disbursed more than it was funded
 * nor been funded beyond its budget.
 *
 * KOINON_SEED=<n> reproduces a run (the seed is printed at the start);
 * KOINON_BLOCKS=<n> makes it longer. */
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

#define CHAIN "koinon-property"
#define MAP_BYTES (256ull << 20)
#define MINUTE 60000ull
#define HOUR (60 * MINUTE)
#define T0 1700000000000ull
#define DEFAULT_SEED 0x6b6f696e6f6eull
#define DEFAULT_BLOCKS 800
#define TXS_PER_BLOCK_MAX 12
#define OPS_MIN 3000
#define N_USERS 10
#define TRANSFERS_KEPT 256
#define CODES_MAX 8
#define PROGRAMMES_MAX 256

/* ---------------------------------------------------------------- the world */

enum key {
    K_ADM1, K_ADM2, /* consortium admins: both must sign */
    K_IA1, K_IA2,   /* GRAMA issuer admins (threshold 2); IA1 also of created currencies */
    K_IB,           /* DEM, MUT and FLEX issuer admin */
    K_PM, K_AUD,    /* granted programme manager and auditor in every currency */
    K_USER0,        /* N_USERS keys that get random roles and money */
    K_N = K_USER0 + N_USERS
};

static kn_keypair keys[K_N];
static const uint8_t zero_pk[KN_PK_BYTES];

static const char *const categories[] = {"food", "books"};
static const char *const new_codes[] = {"C1", "C2"};

typedef struct transfer_ref {
    uint8_t tx_id[KN_HASH_BYTES];
    uint16_t op;
    char currency[LEDGER_CODE_MAX + 1];
    uint8_t payee[KN_PK_BYTES];
    uint64_t amount;
} transfer_ref;

/* A programme the rules accepted, so that later operations can find it. */
typedef struct live_programme {
    char currency[LEDGER_CODE_MAX + 1];
    char id[LEDGER_ID_MAX + 1];
    bool expired;
} live_programme;

typedef struct sim {
    char dir[256];
    store_env *env;
    uint64_t time_ms;
    uint64_t nonce;
    uint32_t n_codes; /* currencies known to exist */
    char codes[CODES_MAX][LEDGER_CODE_MAX + 1];
    transfer_ref transfers[TRANSFERS_KEPT]; /* accepted transfers, for reversals */
    uint32_t n_transfers;
    live_programme progs[PROGRAMMES_MAX];
    uint32_t n_progs, next_prog;
    ledger_tx old; /* an earlier transaction, resubmitted now and then */
    bool have_old;
    /* Outcomes: [kind][0] rejected, [kind][1] accepted (single-kind txs). */
    uint32_t by_kind[LEDGER_OP_KIND_MAX + 1][2];
    uint32_t by_error[128];
    uint32_t kind_error[LEDGER_OP_KIND_MAX + 1][128]; /* single-kind txs */
    uint32_t ops, txs, decode_rejected;
} sim;

static sim S;

static void add_admin(ledger_currency *c, int k)
{
    memcpy(c->issuer_admins[c->n_issuer_admins++], keys[k].pk, KN_PK_BYTES);
}

static void genesis_currency(ledger_currency *c, const char *code, uint32_t flags)
{
    memset(c, 0, sizeof *c);
    strcpy(c->code, code);
    strcpy(c->name, code);
    strcpy(c->city, "Santa Coloma");
    c->scale = 2;
    c->max_supply = 1000000000;
    c->flags = flags;
    c->issuer_threshold = 1;
    if (!strcmp(code, "GRAMA")) {
        add_admin(c, K_IA1);
        add_admin(c, K_IA2);
        c->issuer_threshold = 2;
        c->fee_bps = 100;
        c->early_fee_bps = 500;
        c->early_days = 1;
    } else {
        add_admin(c, K_IB);
    }
    if (flags & LEDGER_CUR_DEMURRAGE) {
        c->demurrage_bps = 200;
        c->demurrage_period_ms = HOUR;
    }
}

static void make_genesis(ledger_genesis *g)
{
    memset(g, 0, sizeof *g);
    strcpy(g->chain_id, CHAIN);
    g->time_ms = T0;
    genesis_currency(&g->currencies[0], "GRAMA", LEDGER_CUR_FREEZABLE | LEDGER_CUR_CLAWBACK);
    genesis_currency(&g->currencies[1], "DEM",
                     LEDGER_CUR_DEMURRAGE | LEDGER_CUR_P2P | LEDGER_CUR_HOLDER_REDEEM);
    genesis_currency(&g->currencies[2], "MUT", LEDGER_CUR_MUTUAL_CREDIT | LEDGER_CUR_CLAWBACK);
    genesis_currency(&g->currencies[3], "FLEX",
                     LEDGER_CUR_AUTH_REQUIRED | LEDGER_CUR_P2P | LEDGER_CUR_FREEZABLE);
    g->n_currencies = 4;
    g->n_admins = 2;
    memcpy(g->admins[0], keys[K_ADM1].pk, KN_PK_BYTES);
    memcpy(g->admins[1], keys[K_ADM2].pk, KN_PK_BYTES);
    for (uint32_t i = 0; i < g->n_currencies; i++) strcpy(S.codes[S.n_codes++], g->currencies[i].code);
}

static void open_world(void)
{
    snprintf(S.dir, sizeof S.dir, "%s/koinon-property-XXXXXX", tmp_root());
    assert_non_null(mkdtemp(S.dir));
    assert_int_equal(store_open(S.dir, MAP_BYTES, &S.env), 0);
    ledger_genesis g;
    make_genesis(&g);
    store_txn *t;
    assert_int_equal(store_begin(S.env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), 0);
    assert_int_equal(store_commit(t), 0);
    S.time_ms = T0;
}

static void close_world(void)
{
    store_close(S.env);
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", S.dir);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", S.dir);
    (void)unlink(path);
    (void)rmdir(S.dir);
}

/* ---------------------------------------------------------------- picking */

static int pick_user(void)
{
    return K_USER0 + (int)rnd(N_USERS);
}

static const uint8_t *pick_party(void)
{
    return keys[chance(90) ? pick_user() : (int)rnd(K_N)].pk;
}

static const char *pick_code(void)
{
    if (chance(3)) return chance(50) ? "NOPE" : new_codes[rnd(2)];
    return S.codes[rnd(S.n_codes)];
}

/* Mostly a programme of the currency that has not expired, else any id. */
static void pick_programme(const char *code, char *out)
{
    uint32_t n = 0, live[PROGRAMMES_MAX];
    for (uint32_t i = 0; i < S.n_progs; i++)
        if (!strcmp(S.progs[i].currency, code) && (!S.progs[i].expired || chance(10)))
            live[n++] = i;
    if (n && chance(90)) strcpy(out, S.progs[live[rnd(n)]].id);
    else sprintf(out, "p%u", (unsigned)rnd(S.next_prog + 2));
}

/* A payee: often one of the two merchants, sometimes the treasury. */
static const uint8_t *pick_payee(void)
{
    if (chance(8)) return zero_pk;
    if (chance(40)) return keys[K_USER0 + rnd(2)].pk;
    return pick_party();
}

/* Mostly small, sometimes large, now and then far beyond any balance. */
static uint64_t pick_amount(void)
{
    unsigned r = (unsigned)rnd(100);
    if (r < 70) return rnd_between(1, 100);
    if (r < 90) return rnd_between(100, 5000);
    if (r < 98) return rnd_between(1, 1000000);
    return (uint64_t)INT64_MAX - rnd(1000);
}

static void set_code(ledger_op *op, const char *code)
{
    snprintf(op->currency, sizeof op->currency, "%s", code);
}

/* ---------------------------------------------------------------- operations */

/* Fills the signer list (K_N terminated) with the keys the operation needs. */
typedef struct signers {
    int k[8];
    int n;
} signers;

static void sign_add(signers *s, int k)
{
    for (int i = 0; i < s->n; i++)
        if (s->k[i] == k) return;
    if (s->n < 8) s->k[s->n++] = k;
}

static void issuer_quorum(signers *s, const char *code)
{
    if (!strcmp(code, "GRAMA")) {
        sign_add(s, K_IA1);
        sign_add(s, K_IA2);
    } else {
        sign_add(s, strlen(code) == 2 ? K_IA1 : K_IB); /* C1, C2: created with IA1 */
    }
}

static int key_of(const uint8_t pk[KN_PK_BYTES])
{
    for (int k = 0; k < K_N; k++)
        if (!memcmp(keys[k].pk, pk, KN_PK_BYTES)) return k;
    return -1;
}

static void gen_currency(ledger_tx *tx, ledger_op *op, signers *s)
{
    ledger_currency *c = &tx->currency_def;
    memset(c, 0, sizeof *c);
    strcpy(c->code, chance(80) ? new_codes[rnd(2)] : "GRAMA");
    strcpy(c->name, "created");
    c->scale = (uint8_t)rnd(4);
    c->max_supply = rnd_between(1000, 10000000);
    c->flags = (uint32_t)rnd(LEDGER_CUR_FLAGS_ALL + 1);
    add_admin(c, K_IA1);
    if (chance(30)) add_admin(c, K_IB);
    c->issuer_threshold = 1;
    c->fee_bps = (uint32_t)rnd(300);
    c->early_fee_bps = (uint32_t)rnd(600);
    c->early_days = (uint32_t)rnd(3);
    if (c->flags & LEDGER_CUR_DEMURRAGE) {
        c->demurrage_bps = (uint32_t)rnd_between(1, 500);
        c->demurrage_period_ms = rnd_between(LEDGER_DEMURRAGE_PERIOD_MIN_MS, 2 * HOUR);
    }
    set_code(op, c->code);
    sign_add(s, K_ADM1);
    sign_add(s, K_ADM2);
}

static void gen_role(ledger_op *op, signers *s, bool grant)
{
    op->role = (uint32_t)rnd_between(1, LEDGER_ROLE_MAX);
    set_code(op, op->role == LEDGER_ROLE_CONSORTIUM_ADMIN ? "" : pick_code());
    memcpy(op->from, pick_party(), KN_PK_BYTES);
    /* Managers and auditors lose their roles to random revokes: mostly
     * grants give them back to the keys that act in those roles. */
    if (op->role == LEDGER_ROLE_PROGRAMME_MANAGER && chance(grant ? 80 : 30))
        memcpy(op->from, keys[K_PM].pk, KN_PK_BYTES);
    if (op->role == LEDGER_ROLE_AUDITOR && chance(grant ? 80 : 30))
        memcpy(op->from, keys[K_AUD].pk, KN_PK_BYTES);
    if (grant && op->role == LEDGER_ROLE_MERCHANT) strcpy(op->ref, categories[rnd(2)]);
    if (grant && op->role == LEDGER_ROLE_SSE && chance(40)) op->amount = rnd_between(1, 2000);
    switch (op->role) {
    case LEDGER_ROLE_CONSORTIUM_ADMIN:
    case LEDGER_ROLE_ISSUER_ADMIN: sign_add(s, K_ADM1); sign_add(s, K_ADM2); break;
    case LEDGER_ROLE_PROGRAMME_MANAGER:
    case LEDGER_ROLE_AUDITOR: issuer_quorum(s, op->currency); break;
    case LEDGER_ROLE_SSE:
        if (op->amount) issuer_quorum(s, op->currency);
        else sign_add(s, strcmp(op->currency, "GRAMA") ? K_IB : K_IA1);
        break;
    case LEDGER_ROLE_BENEFICIARY: sign_add(s, chance(50) ? K_PM : K_IB); break;
    default: sign_add(s, strcmp(op->currency, "GRAMA") ? K_IB : K_IA2); break;
    }
}

static void gen_programme(ledger_tx *tx, ledger_op *op, signers *s)
{
    ledger_programme *p = &tx->programme_def;
    memset(p, 0, sizeof *p);
    set_code(op, pick_code());
    strcpy(p->currency, op->currency);
    if (chance(85)) sprintf(p->id, "p%u", S.next_prog++);
    else pick_programme(op->currency, p->id);
    strcpy(op->programme, p->id);
    p->budget = rnd_between(1000, 50000);
    p->start_ms = S.time_ms + rnd(2 * HOUR) - HOUR;
    p->end_ms = p->start_ms + rnd_between(2 * HOUR, 12 * HOUR);
    if (chance(50)) {
        p->cap = rnd_between(50, 500);
        p->period_ms = chance(50) ? rnd_between(HOUR, 3 * HOUR) : 0;
    }
    p->n_categories = (uint32_t)rnd(3);
    for (uint32_t i = 0; i < p->n_categories; i++) strcpy(p->categories[i], categories[i]);
    p->p2p = chance(50);
    p->grace_ms = chance(50) ? rnd(2 * HOUR) : 0;
    sign_add(s, K_PM);
}

static void gen_disburse(ledger_tx *tx, ledger_op *op, signers *s)
{
    set_code(op, pick_code());
    if (chance(40)) strcpy(op->programme, "boot");
    else pick_programme(op->currency, op->programme);
    snprintf(op->ref, sizeof op->ref, "b%u", (unsigned)rnd(1000));
    tx->n_payees = (uint32_t)rnd_between(1, 4);
    for (uint32_t i = 0; i < tx->n_payees; i++) {
        int who = chance(80) ? K_USER0 + 2 + (int)rnd(3) : pick_user();
        memcpy(tx->payees[i].pk, keys[who].pk, KN_PK_BYTES);
        tx->payees[i].amount = chance(90) ? rnd_between(1, 300) : pick_amount();
    }
    sign_add(s, K_PM);
}

static void gen_transfer(ledger_op *op, signers *s)
{
    set_code(op, pick_code());
    unsigned who = (unsigned)rnd(100);
    int payer = who < 40   ? K_USER0 + 2 + (int)rnd(3) /* a beneficiary */
                : who < 70 ? K_USER0 + (int)rnd(2)     /* a merchant */
                : who < 85 ? K_USER0 + 5 + (int)rnd(2) /* an sse */
                           : pick_user();
    memcpy(op->from, keys[payer].pk, KN_PK_BYTES);
    if (who < 40 ? chance(85) : chance(10)) {
        if (chance(75)) strcpy(op->programme, "boot");
        else pick_programme(op->currency, op->programme);
    }
    memcpy(op->to, pick_payee(), KN_PK_BYTES);
    op->amount = chance(85) ? rnd_between(1, 200) : pick_amount();
    op->has_link = chance(20);
    uint64_t salt = splitmix64();
    if (op->has_link) kn_hash(op->link, "koinon-test/memo", &salt, sizeof salt);
    sign_add(s, payer);
}

static void gen_reverse(ledger_op *op, signers *s)
{
    if (S.n_transfers == 0 || chance(10)) {
        set_code(op, pick_code());
        memset(op->link, 0x77, KN_HASH_BYTES);
        op->amount = pick_amount();
        sign_add(s, K_IA1);
        return;
    }
    const transfer_ref *r = &S.transfers[rnd(S.n_transfers)];
    set_code(op, chance(95) ? r->currency : pick_code());
    memcpy(op->link, r->tx_id, KN_HASH_BYTES);
    op->role = chance(95) ? r->op : (uint32_t)rnd(3);
    op->amount = chance(80) ? rnd_between(1, r->amount + r->amount / 5 + 1) : pick_amount();
    strcpy(op->ref, "rev");
    int payee = key_of(r->payee);
    if (payee >= 0 && chance(70)) sign_add(s, payee);
    else issuer_quorum(s, op->currency);
}

/* One random operation with the signers it needs. */
static void gen_op(ledger_tx *tx, ledger_op *op, signers *s)
{
    static const uint8_t weights[LEDGER_OP_KIND_MAX + 1] = {
        [LEDGER_OP_ISSUE] = 6,     [LEDGER_OP_TRANSFER] = 30, [LEDGER_OP_CURRENCY] = 1,
        [LEDGER_OP_GRANT] = 9,     [LEDGER_OP_REVOKE] = 2,    [LEDGER_OP_ACCOUNT] = 4,
        [LEDGER_OP_RETIRE] = 2,    [LEDGER_OP_PROGRAMME] = 4, [LEDGER_OP_FUND] = 6,
        [LEDGER_OP_DISBURSE] = 12, [LEDGER_OP_REDEEM] = 6,    [LEDGER_OP_REVERSE] = 5,
        [LEDGER_OP_CLAWBACK] = 3,  [LEDGER_OP_EXPIRE] = 3,
    };
    unsigned total = 0, r;
    for (int k = 1; k <= LEDGER_OP_KIND_MAX; k++) total += weights[k];
    r = (unsigned)rnd(total);
    uint8_t kind = 1;
    while (r >= weights[kind]) r -= weights[kind++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    switch (kind) {
    case LEDGER_OP_ISSUE:
    case LEDGER_OP_RETIRE:
        set_code(op, pick_code());
        op->amount = chance(80) ? rnd_between(100, 100000) : pick_amount();
        strcpy(op->ref, "reserve");
        issuer_quorum(s, op->currency);
        break;
    case LEDGER_OP_TRANSFER: gen_transfer(op, s); break;
    case LEDGER_OP_CURRENCY: gen_currency(tx, op, s); break;
    case LEDGER_OP_GRANT: gen_role(op, s, true); break;
    case LEDGER_OP_REVOKE: gen_role(op, s, false); break;
    case LEDGER_OP_ACCOUNT:
        set_code(op, pick_code());
        op->role = (uint32_t)rnd_between(1, LEDGER_ACCOUNT_ACTION_MAX);
        if (op->role == LEDGER_ACCOUNT_CLOSE && chance(70)) op->role = LEDGER_ACCOUNT_UNFREEZE;
        memcpy(op->from, pick_party(), KN_PK_BYTES);
        if (op->role == LEDGER_ACCOUNT_CLOSE) sign_add(s, key_of(op->from));
        else sign_add(s, strcmp(op->currency, "GRAMA") ? K_IB : K_IA1);
        break;
    case LEDGER_OP_PROGRAMME: gen_programme(tx, op, s); break;
    case LEDGER_OP_FUND:
        set_code(op, pick_code());
        pick_programme(op->currency, op->programme);
        op->amount = chance(85) ? rnd_between(100, 20000) : pick_amount();
        issuer_quorum(s, op->currency);
        break;
    case LEDGER_OP_DISBURSE: gen_disburse(tx, op, s); break;
    case LEDGER_OP_REDEEM: {
        static const int redeemers[] = {K_USER0, K_USER0 + 1, K_USER0 + 5, K_USER0 + 6};
        int who = chance(70) ? redeemers[rnd(4)] : pick_user();
        set_code(op, pick_code());
        memcpy(op->from, keys[who].pk, KN_PK_BYTES);
        op->amount = pick_amount();
        strcpy(op->ref, "payout");
        sign_add(s, who);
        break;
    }
    case LEDGER_OP_REVERSE: gen_reverse(op, s); break;
    case LEDGER_OP_CLAWBACK:
        set_code(op, pick_code());
        memcpy(op->from, keys[pick_user()].pk, KN_PK_BYTES);
        if (chance(40)) pick_programme(op->currency, op->programme);
        op->amount = pick_amount();
        strcpy(op->ref, "case");
        issuer_quorum(s, op->currency);
        sign_add(s, K_AUD);
        break;
    case LEDGER_OP_EXPIRE:
        set_code(op, pick_code());
        pick_programme(op->currency, op->programme);
        sign_add(s, chance(50) ? K_PM : strcmp(op->currency, "GRAMA") ? K_IB : K_IA1);
        break;
    default: fail_msg("kind %u", kind);
    }
}

/* A random transaction of 1-3 operations; now and then signed by random keys
 * instead of the right ones (or with one of them missing). */
static void gen_tx(ledger_tx *tx)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, CHAIN);
    tx->nonce = ++S.nonce;
    tx->expiry_height = chance(2) ? 1 : 1u << 30; /* a few have expired */
    signers s = {.n = 0};
    uint32_t n = chance(75) ? 1 : (uint32_t)rnd_between(2, 3);
    for (uint32_t i = 0; i < n; i++) gen_op(tx, &tx->ops[tx->n_ops++], &s);
    if (chance(15)) {
        s.n = 0;
        uint32_t m = (uint32_t)rnd_between(1, 3);
        for (uint32_t i = 0; i < m; i++) sign_add(&s, (int)rnd(K_N));
    } else if (s.n > 1 && chance(10)) {
        s.n--; /* a quorum short of one */
    }
    for (int i = 0; i < s.n; i++)
        if (s.k[i] >= 0) assert_int_equal(ledger_tx_sign(tx, &keys[s.k[i]]), 0);
}

/* ---------------------------------------------------------------- blocks */

/* Keeps what decodes and verifies, as a node's mempool would; counts the rest. */
static bool admissible(const ledger_tx *tx, kn_buf *bytes)
{
    ledger_tx *back = malloc(sizeof *back);
    assert_non_null(back);
    kn_buf_reset(bytes);
    ledger_tx_encode(tx, bytes);
    bool ok = ledger_tx_decode(bytes->data, bytes->len, back) == 0 &&
              ledger_tx_verify(back, CHAIN) == 0;
    if (ok) assert_memory_equal(back->id, tx->id, KN_HASH_BYTES);
    free(back);
    return ok;
}

static void remember_transfers(const ledger_tx *tx)
{
    for (uint32_t i = 0; i < tx->n_ops; i++) {
        const ledger_op *op = &tx->ops[i];
        if (op->kind != LEDGER_OP_TRANSFER) continue;
        transfer_ref *r = &S.transfers[S.n_transfers < TRANSFERS_KEPT ? S.n_transfers++
                                                                      : rnd(TRANSFERS_KEPT)];
        memcpy(r->tx_id, tx->id, KN_HASH_BYTES);
        r->op = (uint16_t)i;
        strcpy(r->currency, op->currency);
        memcpy(r->payee, op->to, KN_PK_BYTES);
        r->amount = op->amount;
    }
}

static void note_programme(const ledger_tx *tx)
{
    for (uint32_t i = 0; i < tx->n_ops; i++) {
        const ledger_op *op = &tx->ops[i];
        if (op->kind == LEDGER_OP_EXPIRE) {
            for (uint32_t p = 0; p < S.n_progs; p++)
                if (!strcmp(S.progs[p].currency, op->currency) && !strcmp(S.progs[p].id, op->programme))
                    S.progs[p].expired = true;
        }
        if (op->kind != LEDGER_OP_PROGRAMME || S.n_progs == PROGRAMMES_MAX) continue;
        live_programme *p = &S.progs[S.n_progs++];
        strcpy(p->currency, tx->programme_def.currency);
        strcpy(p->id, tx->programme_def.id);
        p->expired = false;
    }
}

static void note_code(const ledger_tx *tx)
{
    for (uint32_t i = 0; i < tx->n_ops; i++) {
        if (tx->ops[i].kind != LEDGER_OP_CURRENCY) continue;
        for (uint32_t c = 0; c < S.n_codes; c++)
            if (!strcmp(S.codes[c], tx->ops[i].currency)) return;
        if (S.n_codes < CODES_MAX) strcpy(S.codes[S.n_codes++], tx->ops[i].currency);
    }
}

/* What each transaction came to, from the records block execution wrote. */
static void tally(store_txn *t, const ledger_tx *txs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        ledger_tx_record rec;
        assert_int_equal(ledger_tx_record_get(t, txs[i].id, &rec), 0);
        int err = rec.result;
        S.by_error[err ? (unsigned)(err - KN__ERR_BASE) % 128 : 0]++;
        if (txs[i].n_ops == 1) {
            S.by_kind[txs[i].ops[0].kind][err == 0]++;
            S.kind_error[txs[i].ops[0].kind][err ? (unsigned)(err - KN__ERR_BASE) % 128 : 0]++;
        }
        if (err) continue;
        remember_transfers(&txs[i]);
        note_code(&txs[i]);
        note_programme(&txs[i]);
    }
}

_Static_assert(TXS_PER_BLOCK_MAX <= FIXTURE_BLOCK_TXS_MAX, "a block of this test fits the fixture");

static void execute(const ledger_tx *txs, uint32_t n, kn_buf *bytes)
{
    exec_encoded_block(S.env, CHAIN, S.time_ms, txs, bytes, n, tally);
}

/* ---------------------------------------------------------------- independent checks */

typedef struct sums {
    uint32_t n;
    char code[CODES_MAX + 1][LEDGER_CODE_MAX + 1];
    int64_t sum[CODES_MAX + 1];
    uint32_t accounts;
} sums;

static void add_account(void *ctx, const ledger_account *a)
{
    sums *s = ctx;
    if (a->balance < a->floor)
        fail_msg("%s account below its floor: %lld < %lld", a->currency, (long long)a->balance,
                 (long long)a->floor);
    uint32_t i = 0;
    while (i < s->n && strcmp(s->code[i], a->currency)) i++;
    if (i == s->n) {
        assert_true(s->n <= CODES_MAX);
        strcpy(s->code[s->n++], a->currency);
    }
    /* Every balance is within int64 and so is each partial sum of one sign:
     * summing in __int128 would hide nothing, plain checked adds suffice. */
    if (!kn_add_i64(s->sum[i], a->balance, &s->sum[i])) fail_msg("%s sum overflows", a->currency);
    s->accounts++;
}

static void check_programme(void *ctx, const ledger_programme *p)
{
    store_txn *t = ctx;
    ledger_programme back;
    ledger_programme_stats st;
    assert_int_equal(ledger_programme_get(t, p->currency, p->id, &back, &st), 0);
    if (!(st.disbursed >= 0 && st.disbursed <= st.funded && (uint64_t)st.funded <= p->budget))
        fail_msg("programme %s/%s: disbursed %lld, funded %lld, budget %llu", p->currency, p->id,
                 (long long)st.disbursed, (long long)st.funded, (unsigned long long)p->budget);
    ledger_account a;
    assert_int_equal(ledger_account_get(t, p->currency, zero_pk, p->id, &a), 0);
    assert_true(a.balance >= 0 && a.balance <= st.funded - st.disbursed);
}

/* Sums every account of every key the test uses and of the currencies
 * themselves: each currency's sum is zero. */
static void check_independently(void)
{
    store_txn *t;
    sums s = {0};
    assert_int_equal(store_begin(S.env, false, &t), 0);
    assert_int_equal(ledger_accounts_each(t, zero_pk, add_account, &s), 0);
    for (int k = 0; k < K_N; k++)
        assert_int_equal(ledger_accounts_each(t, keys[k].pk, add_account, &s), 0);
    for (uint32_t i = 0; i < s.n; i++)
        if (s.sum[i] != 0) fail_msg("%s sums to %lld", s.code[i], (long long)s.sum[i]);
    for (uint32_t i = 0; i < S.n_codes; i++) {
        int64_t supply;
        ledger_currency c;
        assert_int_equal(ledger_currency_get(t, S.codes[i], &c), 0);
        assert_int_equal(ledger_supply_get(t, S.codes[i], &supply), 0);
        assert_true(supply >= 0 && (uint64_t)supply <= c.max_supply);
        assert_int_equal(ledger_programmes_each(t, S.codes[i], check_programme, t), 0);
    }
    assert_int_equal(store_error(t), 0);
    store_abort(t);
}

/* ---------------------------------------------------------------- the run */

static ledger_op *boot_op(ledger_tx *tx, uint8_t kind, const char *code)
{
    if (tx->n_ops == 0) {
        memset(tx, 0, sizeof *tx);
        strcpy(tx->chain_id, CHAIN);
        tx->nonce = ++S.nonce;
        tx->expiry_height = 1u << 30;
    }
    ledger_op *op = &tx->ops[tx->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    set_code(op, code);
    return op;
}

static void boot_grant(ledger_tx *tx, const char *code, uint32_t role, int k,
                       const char *category, uint64_t credit)
{
    ledger_op *op = boot_op(tx, LEDGER_OP_GRANT, code);
    op->role = role;
    memcpy(op->from, keys[k].pk, KN_PK_BYTES);
    strcpy(op->ref, category);
    op->amount = credit;
}

/* Roles: manager, auditor, two merchants, three beneficiaries, an sse (with
 * credit in MUT, and a second one there); money: an issue, a long programme
 * funded and disbursed to the beneficiaries. */
static void bootstrap_currency(ledger_tx *txs, const char *code)
{
    bool mut = !strcmp(code, "MUT");
    memset(txs, 0, 4 * sizeof *txs);
    boot_grant(&txs[0], code, LEDGER_ROLE_PROGRAMME_MANAGER, K_PM, "", 0);
    boot_grant(&txs[0], code, LEDGER_ROLE_AUDITOR, K_AUD, "", 0);
    boot_grant(&txs[0], code, LEDGER_ROLE_MERCHANT, K_USER0, "food", 0);
    boot_grant(&txs[0], code, LEDGER_ROLE_MERCHANT, K_USER0 + 1, "books", 0);
    for (int b = 2; b <= 4; b++)
        boot_grant(&txs[0], code, LEDGER_ROLE_BENEFICIARY, K_USER0 + b, "", 0);
    boot_grant(&txs[0], code, LEDGER_ROLE_SSE, K_USER0 + 5, "", mut ? 1000 : 0);
    if (mut) boot_grant(&txs[0], code, LEDGER_ROLE_SSE, K_USER0 + 6, "", 500);
    ledger_op *op = boot_op(&txs[0], LEDGER_OP_ISSUE, code);
    op->amount = 1000000;
    strcpy(op->ref, "reserve");
    op = boot_op(&txs[1], LEDGER_OP_PROGRAMME, code);
    ledger_programme *p = &txs[1].programme_def;
    strcpy(p->currency, code);
    strcpy(p->id, "boot");
    strcpy(op->programme, "boot");
    p->budget = 200000;
    p->start_ms = T0;
    p->end_ms = T0 + 1000 * HOUR;
    p->p2p = true;
    op = boot_op(&txs[2], LEDGER_OP_FUND, code);
    strcpy(op->programme, "boot");
    op->amount = 200000;
    op = boot_op(&txs[3], LEDGER_OP_DISBURSE, code);
    strcpy(op->programme, "boot");
    strcpy(op->ref, "boot");
    txs[3].n_payees = 3;
    for (int b = 0; b < 3; b++) {
        memcpy(txs[3].payees[b].pk, keys[K_USER0 + 2 + b].pk, KN_PK_BYTES);
        txs[3].payees[b].amount = 5000;
    }
    signers quorum = {.n = 0};
    issuer_quorum(&quorum, code);
    for (int i = 0; i < quorum.n; i++) {
        assert_int_equal(ledger_tx_sign(&txs[0], &keys[quorum.k[i]]), 0);
        assert_int_equal(ledger_tx_sign(&txs[2], &keys[quorum.k[i]]), 0);
    }
    assert_int_equal(ledger_tx_sign(&txs[1], &keys[K_PM]), 0);
    assert_int_equal(ledger_tx_sign(&txs[3], &keys[K_PM]), 0);
}

static void bootstrap(void)
{
    static const char *codes[] = {"GRAMA", "DEM", "MUT", "FLEX"};
    ledger_tx *txs = calloc(TXS_PER_BLOCK_MAX, sizeof *txs);
    kn_buf bytes[4] = {{0}};
    assert_non_null(txs);
    for (int c = 0; c < 4; c++) {
        bootstrap_currency(txs, codes[c]);
        for (int i = 0; i < 4; i++) assert_true(admissible(&txs[i], &bytes[i]));
        S.time_ms += MINUTE;
        execute(txs, 4, bytes);
        for (int i = 0; i < 4; i++) {
            ledger_tx_record rec;
            store_txn *t;
            assert_int_equal(store_begin(S.env, false, &t), 0);
            assert_int_equal(ledger_tx_record_get(t, txs[i].id, &rec), 0);
            store_abort(t);
            if (rec.result) fail_msg("bootstrap %s tx %d: %s", codes[c], i, kn_errname(rec.result));
        }
    }
    for (int i = 0; i < 4; i++) kn_buf_free(&bytes[i]);
    free(txs);
}

static void one_block(ledger_tx *txs, kn_buf *bytes)
{
    uint32_t n = 0, want = (uint32_t)rnd_between(1, TXS_PER_BLOCK_MAX);
    while (n < want) {
        if (S.have_old && chance(2)) txs[n] = S.old; /* resubmitted: a duplicate */
        else gen_tx(&txs[n]);
        if (!admissible(&txs[n], &bytes[n])) {
            S.decode_rejected++;
            continue;
        }
        for (uint32_t i = 0; i < txs[n].n_ops; i++) S.ops++;
        if (chance(5)) {
            S.old = txs[n];
            S.have_old = true;
        }
        n++;
    }
    /* Mostly minutes apart, sometimes hours: programmes run out and expire,
     * demurrage periods pass. */
    S.time_ms += chance(90) ? rnd_between(1, 20) * MINUTE : rnd_between(1, 6) * HOUR;
    execute(txs, n, bytes);
    S.txs += n;
    check_independently();
}

static void report(uint64_t seed, uint64_t blocks)
{
    printf("[ SEED     ] KOINON_SEED=%llu: %llu blocks, %u txs, %u ops, %u not admitted\n",
           (unsigned long long)seed, (unsigned long long)blocks, S.txs, S.ops, S.decode_rejected);
    for (int k = 1; k <= LEDGER_OP_KIND_MAX; k++) {
        int top = 1;
        for (int e = 1; e < 128; e++)
            if (S.kind_error[k][e] > S.kind_error[k][top]) top = e;
        printf("[ KIND     ] %-10s accepted %4u rejected %4u, mostly %s\n",
               ledger_op_name((uint32_t)k), S.by_kind[k][1], S.by_kind[k][0],
               kn_errname(KN__ERR_BASE + top));
    }
    for (int e = 0; e < 128; e++)
        if (S.by_error[e])
            printf("[ RESULT   ] %-28s %u\n", e ? kn_errname(KN__ERR_BASE + e) : "ok",
                   S.by_error[e]);
}

static void random_blocks_keep_invariants(void **state)
{
    uint64_t seed = env_u64("KOINON_SEED", DEFAULT_SEED);
    uint64_t blocks = env_u64("KOINON_BLOCKS", DEFAULT_BLOCKS);
    printf("[ SEED     ] KOINON_SEED=%llu\n", (unsigned long long)seed);
    fflush(stdout);
    rng_state = seed;
    open_world();
    bootstrap();
    ledger_tx *txs = calloc(TXS_PER_BLOCK_MAX, sizeof *txs);
    kn_buf bytes[TXS_PER_BLOCK_MAX] = {{0}};
    assert_non_null(txs);
    for (uint64_t b = 0; b < blocks; b++) one_block(txs, bytes);
    report(seed, blocks);
    /* The traffic really exercised the rules: most kinds were accepted at
     * least once, and many different rule errors came up. */
    uint32_t kinds_accepted = 0, outcomes = 0;
    for (int k = 1; k <= LEDGER_OP_KIND_MAX; k++) kinds_accepted += S.by_kind[k][1] > 0;
    for (int e = 1; e < 128; e++) outcomes += S.by_error[e] > 0;
    assert_true(S.ops >= (blocks == DEFAULT_BLOCKS ? OPS_MIN : 0));
    assert_true(S.by_error[0] * 10 >= S.txs); /* at least a tenth accepted */
    assert_true(kinds_accepted >= 10 && outcomes >= 15);
    for (int i = 0; i < TXS_PER_BLOCK_MAX; i++) kn_buf_free(&bytes[i]);
    free(txs);
    close_world();
}

static int group_setup(void **state)
{
    assert_int_equal(kn_crypto_init(), 0);
    kn_log_setup(KN_LOG_ERROR, false);
    fixed_keys(keys, K_N, 0x9f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_blocks_keep_invariants),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
