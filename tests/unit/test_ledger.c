/* The ledger: transaction and block formats, rule errors as block execution
 * records them (with proof that nothing changed), block checks, block
 * execution, the state hash and supply conservation. The money rules one by
 * one are in test_ledger_rules.c, random traffic in test_ledger_property.c. */
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

#define CHAIN "koinon-test"
#define MAP_BYTES (64ull << 20)
#define N_VALIDATORS 4

/* Keys shared by every test: the consortium admin, the issuer admin of each
 * currency (GRAMA's also manages its programme), two merchants (alice, bob), a
 * holder (carol never holds anything unless a test gives her money), the
 * beneficiary whose aid funds the merchants (dave) and validators. */
static kn_keypair admin, grama_issuer, rec_issuer, big_issuer, alice, bob, carol, dave;
static kn_keypair validators[N_VALIDATORS];
static cons_valset valset;

typedef struct fixture {
    char dir[64];
    store_env *env;
    kn_buf last_cert; /* certificate of the tip block, carried by the next */
} fixture;

/* ---------------------------------------------------------------- helpers */

static int group_setup(void **state)
{
    assert_int_equal(kn_crypto_init(), 0);
    kn_log_setup(KN_LOG_ERROR, false);
    kn_keypair *keys[] = {&admin, &grama_issuer, &rec_issuer, &big_issuer,
                          &alice, &bob, &carol, &dave};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) kn_keypair_generate(keys[i]);
    valset.n = N_VALIDATORS;
    for (uint32_t i = 0; i < N_VALIDATORS; i++) {
        kn_keypair_generate(&validators[i]);
        memcpy(valset.v[i].pk, validators[i].pk, KN_PK_BYTES);
        valset.v[i].power = 1;
    }
    assert_int_equal(cons_valset_init(&valset), 0);
    return 0;
}

static void add_currency(ledger_genesis *g, const char *code, uint64_t max_supply,
                         const kn_keypair *issuer)
{
    ledger_currency *c = &g->currencies[g->n_currencies++];
    strcpy(c->code, code);
    snprintf(c->name, sizeof c->name, "%s local currency", code);
    strcpy(c->city, "Santa Coloma");
    c->scale = 2;
    c->max_supply = max_supply;
    c->n_issuer_admins = 1;
    memcpy(c->issuer_admins[0], issuer->pk, KN_PK_BYTES);
    c->issuer_threshold = 1;
}

static void make_genesis(ledger_genesis *g)
{
    memset(g, 0, sizeof *g);
    strcpy(g->chain_id, CHAIN);
    g->time_ms = 1000;
    add_currency(g, "GRAMA", 1000000, &grama_issuer);
    add_currency(g, "REC", 500, &rec_issuer);
    add_currency(g, "BIG", INT64_MAX, &big_issuer);
    g->n_admins = 1;
    memcpy(g->admins[0], admin.pk, KN_PK_BYTES);
}

static void open_store(fixture *f)
{
    strcpy(f->dir, "/tmp/koinon-ledger-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, MAP_BYTES, &f->env), 0);
    ledger_genesis g;
    make_genesis(&g);
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), 0);
    assert_int_equal(store_commit(t), 0);
}

static void close_store(fixture *f)
{
    store_close(f->env);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", f->dir);
    (void)unlink(path);
    assert_int_equal(rmdir(f->dir), 0);
    kn_buf_free(&f->last_cert);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_store(f);
    free(f);
    return 0;
}

/* Issues into the currency's treasury (signed by its issuer admin). */
static ledger_op issue_op(const char *code, uint64_t amount)
{
    ledger_op op = {.kind = LEDGER_OP_ISSUE, .amount = amount};
    strcpy(op.currency, code);
    strcpy(op.ref, "bank-attestation-2024-01");
    return op;
}

static ledger_op grant_op(const char *code, uint32_t role, const kn_keypair *subject,
                          const char *category)
{
    ledger_op op = {.kind = LEDGER_OP_GRANT, .role = role};
    strcpy(op.currency, code);
    memcpy(op.from, subject->pk, KN_PK_BYTES);
    strcpy(op.ref, category);
    return op;
}

static ledger_op programme_op(ledger_programme *def, const char *code, const char *id,
                              uint64_t budget)
{
    memset(def, 0, sizeof *def);
    strcpy(def->currency, code);
    strcpy(def->id, id);
    def->budget = budget;
    def->start_ms = 1000; /* the genesis */
    def->end_ms = 1000000000000ull;
    ledger_op op = {.kind = LEDGER_OP_PROGRAMME};
    strcpy(op.currency, code);
    strcpy(op.programme, id);
    return op;
}

static ledger_op fund_op(const char *code, const char *id, uint64_t amount)
{
    ledger_op op = {.kind = LEDGER_OP_FUND, .amount = amount};
    strcpy(op.currency, code);
    strcpy(op.programme, id);
    return op;
}

/* The batch itself goes in the transaction's payees. */
static ledger_op disburse_op(const char *code, const char *id, const char *batch)
{
    ledger_op op = {.kind = LEDGER_OP_DISBURSE};
    strcpy(op.currency, code);
    strcpy(op.programme, id);
    strcpy(op.ref, batch);
    return op;
}

static ledger_op transfer_op(const char *code, const kn_keypair *from, const kn_keypair *to,
                             uint64_t amount)
{
    ledger_op op = {.kind = LEDGER_OP_TRANSFER, .amount = amount};
    strcpy(op.currency, code);
    memcpy(op.from, from->pk, KN_PK_BYTES);
    memcpy(op.to, to->pk, KN_PK_BYTES);
    return op;
}

/* A payment from dave's aid of the "seed" programme. */
static ledger_op aid_op(const kn_keypair *to, uint64_t amount)
{
    ledger_op op = transfer_op("GRAMA", &dave, to, amount);
    strcpy(op.programme, "seed");
    return op;
}

/* A transaction of operations signed by up to two keys. */
static void make_tx(ledger_tx *tx, uint64_t nonce, const ledger_op *ops, uint32_t n_ops,
                    const kn_keypair *signer1, const kn_keypair *signer2)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, CHAIN);
    tx->nonce = nonce;
    tx->expiry_height = 1000;
    tx->n_ops = n_ops;
    memcpy(tx->ops, ops, n_ops * sizeof *ops);
    if (signer1) assert_int_equal(ledger_tx_sign(tx, signer1), 0);
    if (signer2) assert_int_equal(ledger_tx_sign(tx, signer2), 0);
}

static void one_op_tx(ledger_tx *tx, uint64_t nonce, ledger_op op, const kn_keypair *signer)
{
    make_tx(tx, nonce, &op, 1, signer, NULL);
}

static ledger_chain chain_of(fixture *f)
{
    store_txn *t;
    ledger_chain ch;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_chain_get(t, &ch), 0);
    store_abort(t);
    return ch;
}

static int64_t balance_of(fixture *f, const char *code, const kn_keypair *kp)
{
    store_txn *t;
    int64_t b;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_balance_get(t, code, kp->pk, &b), 0);
    store_abort(t);
    return b;
}

static int64_t supply_of(fixture *f, const char *code)
{
    store_txn *t;
    int64_t s;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_supply_get(t, code, &s), 0);
    store_abort(t);
    return s;
}

static int64_t treasury_of(fixture *f, const char *code)
{
    static const uint8_t zero[KN_PK_BYTES];
    store_txn *t;
    ledger_account a;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_account_get(t, code, zero, LEDGER_SUB_TREASURY, &a), 0);
    store_abort(t);
    return a.balance;
}

static int64_t holders_of(fixture *f, const char *code)
{
    store_txn *t;
    int64_t h;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_holders_get(t, code, &h), 0);
    store_abort(t);
    return h;
}

static void check_invariants(fixture *f)
{
    store_txn *t;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    ledger_check_invariants(t);
    store_abort(t);
}

/* Every key and value of the given tables, in order: two equal snapshots mean
 * nothing in those tables changed. */
static void snapshot(fixture *f, kn_buf *out, bool with_meta)
{
    static const enum store_table all[] = {STORE_STATE, STORE_TXS, STORE_META};
    store_txn *t;
    kn_buf_reset(out);
    assert_int_equal(store_begin(f->env, false, &t), 0);
    for (size_t i = 0; i < (with_meta ? 3u : 1u); i++) {
        store_iter *it;
        const uint8_t *k, *v;
        size_t kl, vl;
        assert_int_equal(store_iter_open(t, all[i], NULL, 0, NULL, 0, &it), 0);
        while (store_iter_next(it, &k, &kl, &v, &vl)) {
            kn_w_array(out, 3);
            kn_w_uint(out, all[i]);
            kn_w_bin(out, k, kl);
            kn_w_bin(out, v, vl);
        }
        store_iter_close(it);
    }
    assert_int_equal(store_error(t), 0);
    store_abort(t);
}

static void assert_same(const kn_buf *a, const kn_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

/* A certificate for (height, block_id) from the first three validators. */
static void make_cert(uint64_t height, const uint8_t block_id[KN_HASH_BYTES], kn_buf *out)
{
    cons_cert cert = {.height = height, .round = 0, .n_sigs = 3};
    memcpy(cert.block_id, block_id, KN_HASH_BYTES);
    for (uint32_t i = 0; i < 3; i++) {
        cons_vote v = {.type = CONS_PRECOMMIT, .height = height, .validator = i};
        memcpy(v.block_id, block_id, KN_HASH_BYTES);
        cons_vote_sign(&v, &validators[i], CHAIN);
        cert.sigs[i].validator = i;
        memcpy(cert.sigs[i].sig, v.sig, KN_SIG_BYTES);
    }
    kn_buf_reset(out);
    cons_cert_encode(&cert, out);
}

/* A proposal at the tip: the block bytes and the ids of its transactions. */
typedef struct built {
    kn_buf block;
    kn_buf tx_bytes[8];
    uint8_t ids[8][KN_HASH_BYTES];
    uint8_t block_id[KN_HASH_BYTES];
} built;

static void build_block(fixture *f, const ledger_tx *txs, uint32_t n, built *b)
{
    assert_true(n <= 8);
    memset(b, 0, sizeof *b);
    ledger_chain ch = chain_of(f);
    ledger_header h = {.height = ch.height + 1, .time_ms = ch.last_time_ms + 1000};
    strcpy(h.chain_id, CHAIN);
    memcpy(h.prev_id, ch.last_block_id, KN_HASH_BYTES);
    memcpy(h.state_hash, ch.state_hash, KN_HASH_BYTES);
    ledger_slice slices[8];
    for (uint32_t i = 0; i < n; i++) {
        ledger_tx_encode(&txs[i], &b->tx_bytes[i]);
        slices[i] = (ledger_slice){b->tx_bytes[i].data, b->tx_bytes[i].len};
        memcpy(b->ids[i], txs[i].id, KN_HASH_BYTES);
    }
    ledger_slice cert = {f->last_cert.data, f->last_cert.len};
    ledger_block_build(&h, slices, (const uint8_t(*)[KN_HASH_BYTES])b->ids, n, &cert, &b->block,
                       b->block_id);
}

static void built_free(built *b)
{
    kn_buf_free(&b->block);
    for (int i = 0; i < 8; i++) kn_buf_free(&b->tx_bytes[i]);
}

/* Checks, decides (with a certificate) and executes a block of txs. */
static void commit_block(fixture *f, const ledger_tx *txs, uint32_t n)
{
    built b;
    build_block(f, txs, n, &b);
    ledger_block_view v;
    assert_int_equal(ledger_block_decode(b.block.data, b.block.len, &v), 0);
    ledger_chain ch = chain_of(f);
    assert_int_equal(ledger_block_check(&v, &ch, &valset, CHAIN,
                                        (const uint8_t(*)[KN_HASH_BYTES])b.ids),
                     0);
    kn_buf cert = {0};
    make_cert(v.hdr.height, v.block_id, &cert);
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    assert_int_equal(
        ledger_block_execute(t, &v, b.block.data, b.block.len, txs, cert.data, cert.len), 0);
    assert_int_equal(store_commit(t), 0);
    kn_buf_free(&f->last_cert);
    f->last_cert = cert;
    ledger_block_view_free(&v);
    built_free(&b);
    check_invariants(f);
}

static ledger_tx_record record_of(fixture *f, const ledger_tx *tx)
{
    store_txn *t;
    ledger_tx_record rec;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_tx_record_get(t, tx->id, &rec), 0);
    store_abort(t);
    return rec;
}

/* Block 1: the GRAMA issuer makes itself programme manager, alice and bob
 * merchants and dave a beneficiary, issues 1010, funds a programme with it and
 * disburses it all to dave, who pays 1000 to alice and 10 to bob; block 2: bob
 * pays the 10 back, so bob has an account at zero and carol has none. Tip is
 * then height 2 and the treasury is empty. */
static void fund(fixture *f)
{
    static ledger_tx txs[2];
    ledger_programme seed;
    ledger_op ops[8] = {
        grant_op("GRAMA", LEDGER_ROLE_PROGRAMME_MANAGER, &grama_issuer, ""),
        grant_op("GRAMA", LEDGER_ROLE_MERCHANT, &alice, "shop"),
        grant_op("GRAMA", LEDGER_ROLE_MERCHANT, &bob, "shop"),
        grant_op("GRAMA", LEDGER_ROLE_BENEFICIARY, &dave, ""),
        issue_op("GRAMA", 1010),
        programme_op(&seed, "GRAMA", "seed", 1010),
        fund_op("GRAMA", "seed", 1010),
        disburse_op("GRAMA", "seed", "seed-1"),
    };
    make_tx(&txs[0], 1, ops, 8, NULL, NULL);
    txs[0].programme_def = seed;
    txs[0].n_payees = 1;
    memcpy(txs[0].payees[0].pk, dave.pk, KN_PK_BYTES);
    txs[0].payees[0].amount = 1010;
    assert_int_equal(ledger_tx_sign(&txs[0], &grama_issuer), 0);
    ledger_op pay[2] = {aid_op(&alice, 1000), aid_op(&bob, 10)};
    make_tx(&txs[1], 2, pay, 2, &dave, NULL);
    commit_block(f, txs, 2);
    assert_int_equal(record_of(f, &txs[0]).result, 0);
    assert_int_equal(record_of(f, &txs[1]).result, 0);
    one_op_tx(&txs[0], 3, transfer_op("GRAMA", &bob, &alice, 10), &bob);
    commit_block(f, txs, 1);
    assert_int_equal(balance_of(f, "GRAMA", &alice), 1010);
    assert_int_equal(balance_of(f, "GRAMA", &bob), 0);
    assert_int_equal(supply_of(f, "GRAMA"), 1010);
}

/* ---------------------------------------------------------------- tx format */

static void tx_roundtrip(void **state)
{
    ledger_op ops[2] = {issue_op("GRAMA", 300), transfer_op("GRAMA", &alice, &bob, 20)};
    ops[1].has_link = true; /* a memo commitment */
    memset(ops[1].link, 0x5a, KN_HASH_BYTES);
    ledger_tx tx, back;
    make_tx(&tx, 77, ops, 2, &grama_issuer, &alice);
    assert_int_equal(tx.n_sigs, 2);
    assert_true(memcmp(tx.sigs[0].pk, tx.sigs[1].pk, KN_PK_BYTES) < 0);
    kn_buf b = {0}, again = {0};
    ledger_tx_encode(&tx, &b);
    assert_int_equal(ledger_tx_decode(b.data, b.len, &back), 0);
    assert_memory_equal(back.id, tx.id, KN_HASH_BYTES);
    assert_string_equal(back.chain_id, CHAIN);
    assert_true(back.nonce == 77 && back.expiry_height == 1000);
    assert_int_equal(back.n_ops, 2);
    assert_int_equal(back.ops[0].kind, LEDGER_OP_ISSUE);
    assert_string_equal(back.ops[0].ref, tx.ops[0].ref);
    assert_true(back.ops[1].amount == 20 && back.ops[1].has_link);
    assert_memory_equal(back.ops[1].link, ops[1].link, KN_HASH_BYTES);
    assert_memory_equal(back.ops[1].to, bob.pk, KN_PK_BYTES);
    assert_string_equal(back.ops[1].programme, "");
    assert_memory_equal(back.sigs, tx.sigs, sizeof tx.sigs[0] * 2);
    ledger_tx_encode(&back, &again);
    assert_same(&b, &again);
    assert_int_equal(ledger_tx_verify(&back, CHAIN), 0);
    /* The id covers the body only: signing again does not change it. */
    kn_buf body = {0};
    uint8_t id[KN_HASH_BYTES];
    ledger_tx_body(&tx, &body);
    kn_hash(id, KN_DOMAIN_TX, body.data, body.len);
    assert_memory_equal(id, tx.id, KN_HASH_BYTES);
    kn_buf_free(&b);
    kn_buf_free(&again);
    kn_buf_free(&body);
}

/* Hand-written encodings of one transfer, each broken in one way. */
enum mangle {
    M_NONE,
    M_LONG_NONCE,  /* nonce 5 as uint16 */
    M_TRAILING,    /* one byte after the transaction */
    M_SIG_ORDER,   /* two signatures, larger key first */
    M_DUP_SIGNER,  /* the same key twice */
    M_ZERO,        /* amount 0 */
    M_SELF,        /* from == to */
    M_NO_OPS,      /* empty operation list */
    M_UNKNOWN_OP,  /* op kind 15 */
    M_SHORT_MEMO,  /* a 16-byte memo commitment */
    M_BAD_PROG,    /* a programme id with a space */
    M_VERSION,     /* version 2 */
    M_LONG_CODE,   /* 13-byte currency code */
    M_NUL_CODE,    /* NUL inside the currency code */
    M_SHORT_PK,    /* a 31-byte key */
};

static void mangled_tx(enum mangle m, kn_buf *b)
{
    const kn_keypair *lo = memcmp(alice.pk, bob.pk, KN_PK_BYTES) < 0 ? &alice : &bob;
    const kn_keypair *hi = lo == &alice ? &bob : &alice;
    uint8_t sig[KN_SIG_BYTES] = {0};
    kn_buf_reset(b);
    kn_w_array(b, 6);
    kn_w_uint(b, m == M_VERSION ? 2 : 1);
    kn_w_str(b, CHAIN, strlen(CHAIN));
    if (m == M_LONG_NONCE) kn_buf_append(b, "\xcd\x00\x05", 3);
    else kn_w_uint(b, 5);
    kn_w_uint(b, 100);
    kn_w_array(b, m == M_NO_OPS ? 0 : 1);
    if (m != M_NO_OPS) {
        kn_w_array(b, 7);
        kn_w_uint(b, m == M_UNKNOWN_OP ? LEDGER_OP_KIND_MAX + 1 : LEDGER_OP_TRANSFER);
        if (m == M_LONG_CODE) kn_w_str(b, "ABCDEFGHIJKLM", 13);
        else if (m == M_NUL_CODE) kn_w_str(b, "GR\0MA", 5);
        else kn_w_str(b, "GRAMA", 5);
        kn_w_bin(b, alice.pk, m == M_SHORT_PK ? 31 : KN_PK_BYTES);
        if (m == M_BAD_PROG) kn_w_str(b, "a b", 3);
        else kn_w_str(b, "", 0);
        kn_w_bin(b, m == M_SELF ? alice.pk : bob.pk, KN_PK_BYTES);
        kn_w_uint(b, m == M_ZERO ? 0 : 25);
        kn_w_bin(b, sig, m == M_SHORT_MEMO ? 16 : 0);
    }
    bool two = m == M_SIG_ORDER || m == M_DUP_SIGNER;
    kn_w_array(b, two ? 2 : 1);
    const kn_keypair *first = m == M_SIG_ORDER ? hi : lo;
    const kn_keypair *second = m == M_SIG_ORDER ? lo : lo;
    kn_w_array(b, 2);
    kn_w_bin(b, first->pk, KN_PK_BYTES);
    kn_w_bin(b, sig, KN_SIG_BYTES);
    if (two) {
        kn_w_array(b, 2);
        kn_w_bin(b, second->pk, KN_PK_BYTES);
        kn_w_bin(b, sig, KN_SIG_BYTES);
    }
    if (m == M_TRAILING) kn_w_nil(b);
}

static void tx_decode_rejects(void **state)
{
    static const struct {
        enum mangle m;
        int err;
    } cases[] = {
        {M_NONE, 0},
        {M_LONG_NONCE, KN_ENONCANON},
        {M_TRAILING, KN_EDECODE},
        {M_SIG_ORDER, KN_ENONCANON},
        {M_DUP_SIGNER, KN_ENONCANON},
        {M_ZERO, KN_EZEROAMOUNT},
        {M_SELF, KN_ESELFPAY},
        {M_NO_OPS, KN_ENOOPS},
        {M_UNKNOWN_OP, KN_EUNKNOWNOP},
        {M_VERSION, KN_EDECODE},
        {M_LONG_CODE, KN_ETOOBIG},
        {M_NUL_CODE, KN_EDECODE},
        {M_SHORT_PK, KN_EDECODE},
        {M_SHORT_MEMO, KN_EINVAL},
        {M_BAD_PROG, KN_EINVAL},
    };
    kn_buf b = {0};
    ledger_tx tx;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mangled_tx(cases[i].m, &b);
        int rc = ledger_tx_decode(b.data, b.len, &tx);
        if (rc != cases[i].err) fail_msg("case %zu: got %s", i, kn_errname(rc));
    }
    /* Truncated at every length: never accepted. */
    mangled_tx(M_NONE, &b);
    for (size_t n = 0; n < b.len; n++) assert_int_not_equal(ledger_tx_decode(b.data, n, &tx), 0);
    kn_buf_free(&b);
}

static void tx_limits(void **state)
{
    ledger_op ops[LEDGER_OPS_MAX];
    for (int i = 0; i < LEDGER_OPS_MAX; i++) ops[i] = transfer_op("GRAMA", &alice, &bob, 1);
    ledger_tx tx, back;
    make_tx(&tx, 1, ops, LEDGER_OPS_MAX, &alice, NULL);
    kn_buf b = {0};
    ledger_tx_encode(&tx, &b);
    assert_int_equal(ledger_tx_decode(b.data, b.len, &back), 0);
    assert_int_equal(back.n_ops, LEDGER_OPS_MAX);
    kn_buf_free(&b);
    uint8_t too_long[LEDGER_TX_BYTES_MAX + 1];
    memset(too_long, 0x90, sizeof too_long);
    assert_int_equal(ledger_tx_decode(too_long, sizeof too_long, &back), KN_ETOOBIG);
    /* One operation over the limit. */
    kn_buf big = {0};
    kn_w_array(&big, 6);
    kn_w_uint(&big, 1);
    kn_w_str(&big, CHAIN, strlen(CHAIN));
    kn_w_uint(&big, 1);
    kn_w_uint(&big, 1);
    kn_w_array(&big, LEDGER_OPS_MAX + 1);
    for (int i = 0; i <= LEDGER_OPS_MAX; i++) {
        kn_w_array(&big, 7);
        kn_w_uint(&big, LEDGER_OP_TRANSFER);
        kn_w_str(&big, "GRAMA", 5);
        kn_w_bin(&big, alice.pk, KN_PK_BYTES);
        kn_w_str(&big, "", 0);
        kn_w_bin(&big, bob.pk, KN_PK_BYTES);
        kn_w_uint(&big, 1);
        kn_w_bin(&big, "", 0);
    }
    kn_w_array(&big, 0);
    assert_int_equal(ledger_tx_decode(big.data, big.len, &back), KN_ETOOBIG);
    kn_buf_free(&big);
    /* Signing past LEDGER_SIGS_MAX distinct keys. */
    one_op_tx(&tx, 1, transfer_op("GRAMA", &alice, &bob, 1), NULL);
    for (int i = 0; i < LEDGER_SIGS_MAX; i++) {
        kn_keypair kp;
        kn_keypair_generate(&kp);
        assert_int_equal(ledger_tx_sign(&tx, &kp), 0);
    }
    assert_int_equal(ledger_tx_sign(&tx, &alice), KN_ETOOBIG);
}

/* ---------------------------------------------------------------- rules */

enum stage { STAGE_VERIFY, STAGE_APPLY };

typedef struct reject_case {
    const char *name;
    void (*build)(ledger_tx *tx);
    enum stage stage;
    int err;
} reject_case;

static void build_tampered_sig(ledger_tx *tx)
{
    one_op_tx(tx, 10, transfer_op("GRAMA", &alice, &bob, 5), &alice);
    tx->sigs[0].sig[7] ^= 0x01;
}

static void build_wrong_chain(ledger_tx *tx)
{
    memset(tx, 0, sizeof *tx);
    strcpy(tx->chain_id, "another-chain");
    tx->expiry_height = 1000;
    tx->n_ops = 1;
    tx->ops[0] = transfer_op("GRAMA", &alice, &bob, 5);
    assert_int_equal(ledger_tx_sign(tx, &alice), 0);
}

static void build_transfer_wrong_signer(ledger_tx *tx)
{
    one_op_tx(tx, 11, transfer_op("GRAMA", &alice, &bob, 5), &bob);
}

static void build_issue_by_non_issuer(ledger_tx *tx)
{
    one_op_tx(tx, 12, issue_op("GRAMA", 5), &alice);
}

static void build_issue_by_other_issuer(ledger_tx *tx)
{
    one_op_tx(tx, 13, issue_op("GRAMA", 5), &rec_issuer);
}

static void build_overdraft(ledger_tx *tx)
{
    one_op_tx(tx, 14, transfer_op("GRAMA", &alice, &bob, 1011), &alice);
}

static void build_overdraft_zero_account(ledger_tx *tx)
{
    one_op_tx(tx, 15, transfer_op("GRAMA", &bob, &alice, 1), &bob);
}

static void build_unknown_currency(ledger_tx *tx)
{
    one_op_tx(tx, 16, transfer_op("NOPE", &alice, &bob, 1), &alice);
}

static void build_unknown_payer(ledger_tx *tx)
{
    one_op_tx(tx, 17, transfer_op("GRAMA", &big_issuer, &bob, 1), &big_issuer);
}

static void build_payer_other_currency(ledger_tx *tx)
{
    one_op_tx(tx, 18, transfer_op("REC", &alice, &bob, 1), &alice);
}

static void build_over_max_supply(ledger_tx *tx)
{
    one_op_tx(tx, 19, issue_op("REC", 501), &rec_issuer);
}

static void build_over_max_supply_total(ledger_tx *tx)
{
    /* 1010 out already; the remaining room is 998990. */
    one_op_tx(tx, 20, issue_op("GRAMA", 998991), &grama_issuer);
}

static void build_expired(ledger_tx *tx)
{
    one_op_tx(tx, 21, transfer_op("GRAMA", &alice, &bob, 1), NULL);
    tx->expiry_height = 2; /* the tip is 2: the next block is 3 */
    assert_int_equal(ledger_tx_sign(tx, &alice), 0);
}

static void build_second_op_fails(ledger_tx *tx)
{
    ledger_op ops[2] = {transfer_op("GRAMA", &alice, &bob, 500),
                        transfer_op("GRAMA", &bob, &carol, 501)};
    make_tx(tx, 22, ops, 2, &alice, &bob);
}

static void build_third_op_unknown_currency(ledger_tx *tx)
{
    ledger_op ops[3] = {issue_op("REC", 100),
                        transfer_op("GRAMA", &alice, &carol, 1),
                        transfer_op("XYZ", &carol, &bob, 1)};
    make_tx(tx, 23, ops, 3, &rec_issuer, &alice);
    assert_int_equal(ledger_tx_sign(tx, &carol), 0);
}

static void build_beyond_largest_supply(ledger_tx *tx)
{
    /* The fixture issued INT64_MAX of BIG, its maximum; one more is refused. */
    one_op_tx(tx, 24, issue_op("BIG", 1), &big_issuer);
}

static void build_route(ledger_tx *tx)
{
    /* carol, without a role, can pay merchants only; the fixture paid her 5. */
    one_op_tx(tx, 25, transfer_op("GRAMA", &carol, &dave, 1), &carol);
}

static const reject_case reject_cases[] = {
    {"tampered signature", build_tampered_sig, STAGE_VERIFY, KN_EBADSIG},
    {"wrong chain", build_wrong_chain, STAGE_VERIFY, KN_EWRONGCHAIN},
    {"transfer not signed by payer", build_transfer_wrong_signer, STAGE_APPLY, KN_EWRONGSIGNER},
    {"issue by a non-issuer", build_issue_by_non_issuer, STAGE_APPLY, KN_EUNAUTHORISED},
    {"issue by another currency's issuer", build_issue_by_other_issuer, STAGE_APPLY,
     KN_EUNAUTHORISED},
    {"overdraft", build_overdraft, STAGE_APPLY, KN_EOVERDRAFT},
    {"overdraft from a zero account", build_overdraft_zero_account, STAGE_APPLY, KN_EOVERDRAFT},
    {"unknown currency", build_unknown_currency, STAGE_APPLY, KN_ENOCURRENCY},
    {"unknown payer account", build_unknown_payer, STAGE_APPLY, KN_ENOACCOUNT},
    {"payer never held the currency", build_payer_other_currency, STAGE_APPLY, KN_ENOACCOUNT},
    {"over max supply", build_over_max_supply, STAGE_APPLY, KN_ESUPPLY},
    {"over max supply in total", build_over_max_supply_total, STAGE_APPLY, KN_ESUPPLY},
    {"expired", build_expired, STAGE_APPLY, KN_EEXPIRED},
    {"second operation fails", build_second_op_fails, STAGE_APPLY, KN_EOVERDRAFT},
    {"third operation fails", build_third_op_unknown_currency, STAGE_APPLY, KN_ENOCURRENCY},
    {"beyond the largest supply", build_beyond_largest_supply, STAGE_APPLY, KN_ESUPPLY},
    {"route not allowed", build_route, STAGE_APPLY, KN_EROUTE},
};

/* Each rejection: the exact error, and every table byte-for-byte unchanged;
 * then, executed in a block, the error is its recorded result and the ledger
 * state is still unchanged. */
static void rule_rejections(void **state)
{
    fixture *f = *state;
    fund(f);
    ledger_tx setup[2];
    one_op_tx(&setup[0], 99, issue_op("BIG", INT64_MAX), &big_issuer);
    one_op_tx(&setup[1], 98, transfer_op("GRAMA", &alice, &carol, 5), &alice);
    commit_block(f, setup, 2);
    assert_int_equal(record_of(f, &setup[0]).result, 0);
    assert_int_equal(record_of(f, &setup[1]).result, 0);
    kn_buf before = {0}, after = {0};
    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const reject_case *rc = &reject_cases[i];
        ledger_tx tx;
        rc->build(&tx);
        snapshot(f, &before, true);
        int got = ledger_tx_verify(&tx, CHAIN);
        if (rc->stage == STAGE_APPLY) {
            if (got) fail_msg("%s: verify failed with %s", rc->name, kn_errname(got));
            store_txn *t;
            assert_int_equal(store_begin(f->env, true, &t), 0);
            ledger_chain ch = chain_of(f);
            got = ledger_tx_apply(t, &tx, ch.height + 1, ch.last_time_ms + 1000);
            assert_int_equal(store_commit(t), 0); /* a rule error never poisons */
        }
        if (got != rc->err) fail_msg("%s: got %s", rc->name, kn_errname(got));
        snapshot(f, &after, true);
        assert_same(&before, &after);
        if (rc->stage != STAGE_APPLY) continue;
        snapshot(f, &before, false);
        commit_block(f, &tx, 1);
        snapshot(f, &after, false);
        assert_same(&before, &after);
        ledger_tx_record rec = record_of(f, &tx);
        if (rec.result != rc->err) fail_msg("%s: recorded %s", rc->name, kn_errname(rec.result));
        assert_true(rec.height == chain_of(f).height && rec.index == 0);
    }
    kn_buf_free(&before);
    kn_buf_free(&after);
}

static void transfers_move_money(void **state)
{
    fixture *f = *state;
    fund(f);
    ledger_tx txs[3];
    /* alice pays bob, bob pays carol in one tx: later ops see earlier ones. */
    ledger_op ops[2] = {transfer_op("GRAMA", &alice, &bob, 300),
                        transfer_op("GRAMA", &bob, &carol, 120)};
    make_tx(&txs[0], 30, ops, 2, &alice, &bob);
    /* Issues land in the treasury; carol pays a merchant back. */
    one_op_tx(&txs[1], 31, issue_op("REC", 200), &rec_issuer);
    one_op_tx(&txs[2], 32, transfer_op("GRAMA", &carol, &alice, 20), &carol);
    commit_block(f, txs, 3);
    assert_int_equal(balance_of(f, "GRAMA", &alice), 730);
    assert_int_equal(balance_of(f, "GRAMA", &bob), 180);
    assert_int_equal(balance_of(f, "GRAMA", &carol), 100);
    assert_int_equal(supply_of(f, "GRAMA"), 1010);
    assert_int_equal(treasury_of(f, "REC"), 200);
    assert_int_equal(balance_of(f, "REC", &rec_issuer), 0);
    assert_int_equal(supply_of(f, "REC"), 200);
    for (int i = 0; i < 3; i++) {
        ledger_tx_record rec = record_of(f, &txs[i]);
        assert_int_equal(rec.result, 0);
        assert_int_equal(rec.index, i);
        assert_true(rec.height == 3);
    }
    /* Issuing up to the maximum exactly is allowed. */
    one_op_tx(&txs[0], 33, issue_op("REC", 300), &rec_issuer);
    commit_block(f, txs, 1);
    assert_int_equal(record_of(f, &txs[0]).result, 0);
    assert_int_equal(supply_of(f, "REC"), 500);
}

static void duplicate_never_applies_twice(void **state)
{
    fixture *f = *state;
    fund(f);
    ledger_tx pay[2];
    one_op_tx(&pay[0], 40, transfer_op("GRAMA", &alice, &carol, 7), &alice);
    pay[1] = pay[0]; /* the same transaction twice in one block */
    commit_block(f, pay, 2);
    assert_int_equal(balance_of(f, "GRAMA", &carol), 7);
    ledger_tx_record first = record_of(f, &pay[0]);
    assert_true(first.height == 3 && first.index == 0 && first.result == 0);
    /* And again in a later block: skipped, record and balances unchanged. */
    kn_buf before = {0}, after = {0};
    snapshot(f, &before, false);
    commit_block(f, pay, 1);
    snapshot(f, &after, false);
    assert_same(&before, &after);
    ledger_tx_record again = record_of(f, &pay[0]);
    assert_memory_equal(&first, &again, sizeof first);
    /* The proposer path sees it as a duplicate. */
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    assert_int_equal(ledger_tx_apply(t, &pay[0], 5, chain_of(f).last_time_ms + 1000), KN_EDUPTX);
    store_abort(t);
    /* A rejected transaction is committed too, with its error, and never retried. */
    ledger_tx bad;
    one_op_tx(&bad, 41, transfer_op("GRAMA", &carol, &bob, 8), &carol);
    commit_block(f, &bad, 1);
    assert_int_equal(record_of(f, &bad).result, KN_EOVERDRAFT);
    one_op_tx(&pay[0], 42, transfer_op("GRAMA", &alice, &carol, 1), &alice);
    pay[1] = bad;
    commit_block(f, pay, 2);
    assert_int_equal(record_of(f, &bad).result, KN_EOVERDRAFT);
    assert_int_equal(balance_of(f, "GRAMA", &carol), 8);
    assert_int_equal(balance_of(f, "GRAMA", &bob), 0);
    kn_buf_free(&before);
    kn_buf_free(&after);
}

/* ---------------------------------------------------------------- blocks */

static void block_roundtrip(void **state)
{
    fixture *f = *state;
    fund(f); /* tip 2, so the next block carries a certificate */
    ledger_tx txs[2];
    one_op_tx(&txs[0], 50, transfer_op("GRAMA", &alice, &bob, 1), &alice);
    one_op_tx(&txs[1], 51, transfer_op("GRAMA", &alice, &carol, 2), &alice);
    built b;
    build_block(f, txs, 2, &b);
    ledger_block_view v;
    assert_int_equal(ledger_block_decode(b.block.data, b.block.len, &v), 0);
    assert_memory_equal(v.block_id, b.block_id, KN_HASH_BYTES);
    assert_true(v.hdr.height == 3 && v.hdr.n_txs == 2);
    assert_string_equal(v.hdr.chain_id, CHAIN);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(v.txs[i].n, b.tx_bytes[i].len);
        assert_memory_equal(v.txs[i].p, b.tx_bytes[i].data, v.txs[i].n);
    }
    assert_int_equal(v.last_cert.n, f->last_cert.len);
    assert_memory_equal(v.last_cert.p, f->last_cert.data, v.last_cert.n);
    kn_buf hdr = {0};
    ledger_header_encode(&v.hdr, &hdr);
    uint8_t id[KN_HASH_BYTES];
    kn_hash(id, KN_DOMAIN_BLOCK, hdr.data, hdr.len);
    assert_memory_equal(id, v.block_id, KN_HASH_BYTES);
    ledger_block_view_free(&v);
    /* Trailing bytes and truncation are refused. */
    kn_w_nil(&b.block);
    assert_int_equal(ledger_block_decode(b.block.data, b.block.len, &v), KN_EDECODE);
    for (size_t n = 0; n + 1 < b.block.len; n += 7)
        assert_int_not_equal(ledger_block_decode(b.block.data, n, &v), 0);
    kn_buf_free(&hdr);
    built_free(&b);
}

/* A header of the block at the tip, changed by one field. */
enum bad_block {
    B_OK,
    B_HEIGHT,
    B_PREV,
    B_STATE,
    B_TIME_EQUAL,
    B_CHAIN,
    B_PROPOSER,
    B_TXS_HASH,
    B_CERT_TAMPERED,
    B_CERT_OTHER_BLOCK,
    B_CERT_MISSING,
    B_CERT_HASH,
};

static int check_bad_block(fixture *f, enum bad_block which)
{
    ledger_chain ch = chain_of(f);
    ledger_tx tx;
    one_op_tx(&tx, 60, transfer_op("GRAMA", &alice, &bob, 1), &alice);
    kn_buf txb = {0}, block = {0}, cert = {0};
    ledger_tx_encode(&tx, &txb);
    ledger_slice slice = {txb.data, txb.len};
    uint8_t ids[1][KN_HASH_BYTES];
    memcpy(ids[0], tx.id, KN_HASH_BYTES);
    ledger_header h = {.height = ch.height + 1, .time_ms = ch.last_time_ms + 1, .proposer = 3};
    strcpy(h.chain_id, CHAIN);
    memcpy(h.prev_id, ch.last_block_id, KN_HASH_BYTES);
    memcpy(h.state_hash, ch.state_hash, KN_HASH_BYTES);
    kn_buf_append(&cert, f->last_cert.data, f->last_cert.len);
    if (which == B_HEIGHT) h.height++;
    if (which == B_PREV) h.prev_id[0] ^= 1;
    if (which == B_STATE) h.state_hash[31] ^= 1;
    if (which == B_TIME_EQUAL) h.time_ms = ch.last_time_ms;
    if (which == B_CHAIN) strcpy(h.chain_id, "koinon-other");
    if (which == B_PROPOSER) h.proposer = N_VALIDATORS;
    if (which == B_CERT_TAMPERED) cert.data[cert.len - 3] ^= 0x40; /* inside the last sig */
    if (which == B_CERT_OTHER_BLOCK) make_cert(ch.height, ch.state_hash, &cert);
    if (which == B_CERT_MISSING) kn_buf_reset(&cert);
    ledger_slice cs = {cert.data, cert.len};
    uint8_t id[KN_HASH_BYTES];
    ledger_block_build(&h, &slice, (const uint8_t(*)[KN_HASH_BYTES])ids, 1, &cs, &block, id);
    if (which == B_TXS_HASH) ids[0][0] ^= 1;
    ledger_block_view v;
    assert_int_equal(ledger_block_decode(block.data, block.len, &v), 0);
    if (which == B_CERT_HASH) v.hdr.last_cert_hash[0] ^= 1;
    int rc = ledger_block_check(&v, &ch, &valset, CHAIN, (const uint8_t(*)[KN_HASH_BYTES])ids);
    ledger_block_view_free(&v);
    kn_buf_free(&txb);
    kn_buf_free(&block);
    kn_buf_free(&cert);
    return rc;
}

static void block_check_rejects(void **state)
{
    fixture *f = *state;
    static const struct {
        enum bad_block which;
        int err;
    } cases[] = {
        {B_OK, 0},
        {B_HEIGHT, KN_EBADBLOCK},
        {B_PREV, KN_EBADBLOCK},
        {B_STATE, KN_EBADBLOCK},
        {B_TIME_EQUAL, KN_EBADBLOCK},
        {B_CHAIN, KN_EBADBLOCK},
        {B_PROPOSER, KN_EBADBLOCK},
        {B_TXS_HASH, KN_EBADBLOCK},
        {B_CERT_TAMPERED, KN_EBADCERT},
        {B_CERT_OTHER_BLOCK, KN_EBADCERT},
        {B_CERT_MISSING, KN_EBADBLOCK},
        {B_CERT_HASH, KN_EBADBLOCK},
    };
    /* At height 1 a certificate is refused and a missing one is right. */
    assert_int_equal(check_bad_block(f, B_OK), 0);
    make_cert(1, chain_of(f).state_hash, &f->last_cert);
    assert_int_equal(check_bad_block(f, B_OK), KN_EBADBLOCK);
    kn_buf_reset(&f->last_cert);
    fund(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = check_bad_block(f, cases[i].which);
        if (rc != cases[i].err) fail_msg("case %zu: got %s", i, kn_errname(rc));
    }
}

/* ---------------------------------------------------------------- execution */

static void chain_advances_and_persists(void **state)
{
    fixture *f = *state;
    ledger_chain g = chain_of(f);
    assert_true(g.height == 0 && g.last_time_ms == 1000);
    ledger_tx tx;
    one_op_tx(&tx, 70, issue_op("GRAMA", 5), &grama_issuer);
    built b;
    build_block(f, &tx, 1, &b);
    commit_block(f, &tx, 1);
    ledger_chain ch = chain_of(f);
    assert_true(ch.height == 1 && ch.last_time_ms == 2000);
    assert_memory_equal(ch.last_block_id, b.block_id, KN_HASH_BYTES);
    assert_memory_not_equal(ch.state_hash, g.state_hash, KN_HASH_BYTES);
    uint8_t cert_hash[KN_HASH_BYTES];
    kn_hash(cert_hash, KN_DOMAIN_BLOCK, f->last_cert.data, f->last_cert.len);
    assert_memory_equal(ch.last_cert_hash, cert_hash, KN_HASH_BYTES);
    /* Reopen: block, certificate and chain are on disk. */
    store_close(f->env);
    assert_int_equal(store_open(f->dir, MAP_BYTES, &f->env), 0);
    store_txn *t;
    const uint8_t *p;
    size_t n;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_block_get(t, 1, &p, &n), 0);
    assert_int_equal(n, b.block.len);
    assert_memory_equal(p, b.block.data, n);
    assert_int_equal(ledger_cert_get(t, 1, &p, &n), 0);
    assert_memory_equal(p, f->last_cert.data, n);
    assert_int_equal(ledger_block_get(t, 2, &p, &n), KN_ENOTFOUND);
    store_abort(t);
    assert_memory_equal(chain_of(f).state_hash, ch.state_hash, KN_HASH_BYTES);
    built_free(&b);
}

/* Two nodes executing the same blocks reach the same state hash; a node that
 * executed a different transaction does not. */
/* The holder count follows balances across zero, in both directions; the
 * currency's own accounts never count. */
static void holder_count_follows_balances(void **state)
{
    fixture *f = *state;
    ledger_tx txs[2];
    assert_int_equal(holders_of(f, "GRAMA"), 0);
    fund(f);
    assert_int_equal(holders_of(f, "GRAMA"), 1); /* alice; dave's aid is spent, bob at 0 */
    one_op_tx(&txs[0], 90, issue_op("GRAMA", 30), &grama_issuer);
    commit_block(f, txs, 1);
    assert_int_equal(holders_of(f, "GRAMA"), 1); /* the treasury does not count */
    one_op_tx(&txs[0], 91, transfer_op("GRAMA", &alice, &bob, 10), &alice);
    commit_block(f, txs, 1);
    assert_int_equal(holders_of(f, "GRAMA"), 2);
    one_op_tx(&txs[0], 92, transfer_op("GRAMA", &bob, &alice, 10), &bob); /* bob to zero */
    one_op_tx(&txs[1], 93, transfer_op("GRAMA", &bob, &alice, 1), &bob);  /* rejected */
    commit_block(f, txs, 2);
    assert_int_equal(holders_of(f, "GRAMA"), 1);
    assert_int_equal(balance_of(f, "GRAMA", &bob), 0);
    assert_int_equal(record_of(f, &txs[1]).result, KN_EOVERDRAFT);
}

/* Two nodes executing the same blocks reach the same state hash; a node that
 * executed a different transaction does not. */
static void state_hash_is_deterministic(void **state)
{
    fixture *f = *state, other = {0}, third = {0};
    open_store(&other);
    open_store(&third);
    /* Same genesis, same keys: same starting hash. */
    assert_memory_equal(chain_of(f).state_hash, chain_of(&other).state_hash, KN_HASH_BYTES);
    fund(f);
    fund(&other);
    fund(&third);
    assert_memory_equal(chain_of(f).state_hash, chain_of(&other).state_hash, KN_HASH_BYTES);
    ledger_tx txs[2];
    one_op_tx(&txs[0], 80, issue_op("GRAMA", 50), &grama_issuer);
    one_op_tx(&txs[1], 81, transfer_op("GRAMA", &alice, &bob, 2000), &alice); /* rejected */
    commit_block(f, txs, 2);
    commit_block(&other, txs, 2);
    assert_memory_equal(chain_of(f).state_hash, chain_of(&other).state_hash, KN_HASH_BYTES);
    one_op_tx(&txs[1], 82, transfer_op("GRAMA", &alice, &bob, 40), &alice);
    commit_block(&third, txs, 2);
    assert_memory_not_equal(chain_of(f).state_hash, chain_of(&third).state_hash, KN_HASH_BYTES);
    /* A node whose balances diverged off the chain (one payment applied
     * outside any block) computes another hash for the very same block, which
     * writes the same keys there: the values are in the hash, not just keys. */
    ledger_tx stray;
    one_op_tx(&stray, 83, transfer_op("GRAMA", &alice, &bob, 1), &alice);
    store_txn *t;
    assert_int_equal(store_begin(other.env, true, &t), 0);
    assert_int_equal(ledger_tx_apply(t, &stray, 4, chain_of(f).last_time_ms), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(balance_of(&other, "GRAMA", &alice), 1009);
    one_op_tx(&txs[0], 84, transfer_op("GRAMA", &alice, &bob, 10), &alice);
    commit_block(f, txs, 1);
    commit_block(&other, txs, 1);
    assert_int_equal(record_of(f, &txs[0]).result, 0);
    assert_int_equal(record_of(&other, &txs[0]).result, 0);
    assert_memory_not_equal(chain_of(f).state_hash, chain_of(&other).state_hash, KN_HASH_BYTES);
    close_store(&other);
    close_store(&third);
}

static void genesis_rules(void **state)
{
    fixture *f = *state;
    ledger_genesis g;
    make_genesis(&g);
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL); /* already has a chain */
    store_abort(t);
    fixture fresh = {0};
    strcpy(fresh.dir, "/tmp/koinon-genesis-XXXXXX");
    assert_non_null(mkdtemp(fresh.dir));
    assert_int_equal(store_open(fresh.dir, MAP_BYTES, &fresh.env), 0);
    assert_int_equal(store_begin(fresh.env, true, &t), 0);
    ledger_chain ch;
    assert_int_equal(ledger_chain_get(t, &ch), KN_ENOTFOUND);
    make_genesis(&g);
    strcpy(g.currencies[1].code, "GRAMA");
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    make_genesis(&g);
    g.currencies[0].code[0] = '\0';
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    make_genesis(&g);
    g.currencies[2].max_supply = 0;
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    make_genesis(&g);
    g.currencies[1].issuer_threshold = 2; /* of one issuer admin */
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    make_genesis(&g);
    g.currencies[1].n_issuer_admins = 0;
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    make_genesis(&g);
    g.admin_threshold = 2; /* of one consortium admin */
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(fresh.env, false, &t), 0);
    assert_int_equal(ledger_chain_get(t, &ch), KN_ENOTFOUND);
    ledger_currency c;
    assert_int_equal(ledger_currency_get(t, "GRAMA", &c), KN_ENOCURRENCY);
    store_abort(t);
    close_store(&fresh);
}

typedef struct listing {
    int n;
    char codes[32][LEDGER_CODE_MAX + 1];
    int64_t amounts[32];
} listing;

static void list_currency(void *ctx, const ledger_currency *c)
{
    listing *l = ctx;
    strcpy(l->codes[l->n++], c->code);
}

static void list_account(void *ctx, const ledger_account *a)
{
    listing *l = ctx;
    assert_true(l->n < 32);
    strcpy(l->codes[l->n], a->currency);
    l->amounts[l->n++] = a->balance;
}

static void reads_and_listings(void **state)
{
    fixture *f = *state;
    fund(f);
    store_txn *t;
    assert_int_equal(store_begin(f->env, false, &t), 0);
    listing l = {0};
    assert_int_equal(ledger_currencies_each(t, list_currency, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.codes[0], "BIG"); /* code order */
    assert_string_equal(l.codes[2], "REC");
    ledger_currency c;
    assert_int_equal(ledger_currency_get(t, "REC", &c), 0);
    assert_true(c.max_supply == 500 && c.scale == 2);
    assert_true(c.n_issuer_admins == 1 && c.issuer_threshold == 1);
    assert_memory_equal(c.issuer_admins[0], rec_issuer.pk, KN_PK_BYTES);
    assert_string_equal(c.city, "Santa Coloma");
    memset(&l, 0, sizeof l);
    assert_int_equal(ledger_accounts_each(t, bob.pk, list_account, &l), 0);
    assert_int_equal(l.n, 1); /* bob's zero GRAMA account exists */
    assert_string_equal(l.codes[0], "GRAMA");
    assert_true(l.amounts[0] == 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(ledger_accounts_each(t, carol.pk, list_account, &l), 0);
    assert_int_equal(l.n, 0);
    uint32_t threshold, n_admins;
    assert_int_equal(ledger_consortium_get(t, &threshold, &n_admins), 0);
    assert_int_equal(n_admins, 1);
    int64_t v;
    assert_int_equal(ledger_balance_get(t, "REC", carol.pk, &v), 0);
    assert_true(v == 0);
    assert_int_equal(ledger_balance_get(t, "NOPE", carol.pk, &v), KN_ENOCURRENCY);
    assert_int_equal(ledger_supply_get(t, "NOPE", &v), KN_ENOCURRENCY);
    assert_int_equal(ledger_currency_get(t, "ABCDEFGHIJKLMNOP", &c), KN_ENOCURRENCY);
    uint8_t unknown[KN_HASH_BYTES] = {1};
    ledger_tx_record rec;
    assert_int_equal(ledger_tx_record_get(t, unknown, &rec), KN_ENOTFOUND);
    assert_int_equal(store_error(t), 0);
    store_abort(t);
}

static void safety_roundtrip(void **state)
{
    fixture *f = *state;
    cons_safety s = {.height = 9, .round = 3, .step = CONS_STEP_PRECOMMIT, .locked_round = 2,
                     .valid_round = -1},
                back;
    memset(s.locked_block, 0xab, KN_HASH_BYTES);
    store_txn *t;
    assert_int_equal(store_begin(f->env, true, &t), 0);
    assert_int_equal(ledger_safety_get(t, &back), KN_ENOTFOUND);
    assert_int_equal(ledger_safety_put(t, &s), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_safety_get(t, &back), 0);
    store_abort(t);
    assert_true(back.height == 9 && back.round == 3 && back.step == CONS_STEP_PRECOMMIT);
    assert_true(back.locked_round == 2 && back.valid_round == -1);
    assert_memory_equal(back.locked_block, s.locked_block, KN_HASH_BYTES);
    assert_memory_equal(back.valid_block, s.valid_block, KN_HASH_BYTES);
}

/* Many small blocks of mixed traffic keep every invariant. */
static void invariants_after_sequences(void **state)
{
    fixture *f = *state;
    const kn_keypair *holders[] = {&alice, &bob, &carol, &rec_issuer};
    static const uint8_t zero[KN_PK_BYTES];
    uint64_t seed = 12345;
    int outcomes[2] = {0, 0};
    fund(f);
    for (int block = 0; block < 20; block++) {
        ledger_tx txs[6];
        for (int i = 0; i < 6; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const kn_keypair *a = holders[(seed >> 33) % 4], *b = holders[(seed >> 40) % 4];
            if (a == b) b = holders[((seed >> 40) + 1) % 4];
            uint64_t amount = 1 + (seed >> 50) % 400;
            uint64_t nonce = 1000 + (uint64_t)block * 10 + (uint64_t)i;
            if (i == 0) one_op_tx(&txs[i], nonce, issue_op("REC", amount % 40 + 1), &rec_issuer);
            else one_op_tx(&txs[i], nonce, transfer_op(i % 2 ? "GRAMA" : "REC", a, b, amount), a);
        }
        commit_block(f, txs, 6);
        for (int i = 0; i < 6; i++) outcomes[record_of(f, &txs[i]).result == 0]++;
    }
    /* The traffic really mixes accepted and rejected transactions. */
    assert_true(outcomes[0] >= 10 && outcomes[1] >= 30);
    /* GRAMA sums to zero over the keys and the currency's own accounts. */
    int64_t sum = 0;
    store_txn *t;
    listing l = {0};
    assert_int_equal(store_begin(f->env, false, &t), 0);
    assert_int_equal(ledger_accounts_each(t, zero, list_account, &l), 0);
    store_abort(t);
    for (int i = 0; i < l.n; i++) sum += strcmp(l.codes[i], "GRAMA") ? 0 : l.amounts[i];
    for (int i = 0; i < 4; i++) sum += balance_of(f, "GRAMA", holders[i]);
    assert_int_equal(sum, 0);
    /* REC was only issued: all of it is in its treasury. */
    assert_int_equal(treasury_of(f, "REC"), supply_of(f, "REC"));
    assert_true(supply_of(f, "REC") <= 500);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tx_roundtrip),
        cmocka_unit_test(tx_decode_rejects),
        cmocka_unit_test(tx_limits),
        T(rule_rejections),
        T(transfers_move_money),
        T(duplicate_never_applies_twice),
        T(block_roundtrip),
        T(block_check_rejects),
        T(chain_advances_and_persists),
        T(holder_count_follows_balances),
        T(state_hash_is_deterministic),
        T(genesis_rules),
        T(reads_and_listings),
        T(safety_roundtrip),
        T(invariants_after_sequences),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
