/*
 * fuzz_common.c: the failure hook and the seed encodings shared by the fuzz
 * targets. Seeds are built with the real encoders and signers from fixed keys,
 * so each run starts from the same valid bytes.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/ledger/ledger.h"
#include "tests/fuzz/fuzz.h"

#define SEED_KEYS 4

_Noreturn void fuzz__fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz: property broken at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

void fuzz_init(void)
{
    static bool done;
    if (done) return;
    if (kn_crypto_init() != 0) fuzz__fail(__FILE__, __LINE__, "kn_crypto_init() == 0");
    done = true;
}

static const kn_keypair *seed_key(uint32_t i)
{
    static kn_keypair keys[SEED_KEYS];
    static bool made;
    if (!made) {
        for (uint32_t k = 0; k < SEED_KEYS; k++) {
            uint8_t seed[crypto_sign_SEEDBYTES];
            memset(seed, (int)(0x51 + k), sizeof seed);
            KN_REQUIRE(crypto_sign_seed_keypair(keys[k].pk, keys[k].sk, seed) == 0);
        }
        made = true;
    }
    KN_REQUIRE(i < SEED_KEYS);
    return &keys[i];
}

/* ---------------------------------------------------------------- transactions */

static void make_op(ledger_op *op, uint8_t kind, const char *currency, uint32_t from,
                    uint32_t to, uint64_t amount, const char *ref)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    snprintf(op->currency, sizeof op->currency, "%s", currency);
    memcpy(op->from, seed_key(from)->pk, KN_PK_BYTES);
    memcpy(op->to, seed_key(to)->pk, KN_PK_BYTES);
    op->amount = amount;
    if (ref) snprintf(op->ref, sizeof op->ref, "%s", ref);
}

/* A currency definition with every optional part in use. */
static void make_currency(ledger_tx *tx)
{
    ledger_currency *c = &tx->currency_def;
    snprintf(c->code, sizeof c->code, "GRAMA");
    snprintf(c->name, sizeof c->name, "Grama");
    snprintf(c->city, sizeof c->city, "Santa Coloma");
    c->scale = 2;
    c->max_supply = 1000000000;
    c->flags = LEDGER_CUR_FLAGS_ALL;
    c->n_issuer_admins = 2;
    memcpy(c->issuer_admins[0], seed_key(1)->pk, KN_PK_BYTES);
    memcpy(c->issuer_admins[1], seed_key(2)->pk, KN_PK_BYTES);
    c->issuer_threshold = 2;
    c->fee_bps = 100;
    c->early_fee_bps = 300;
    c->early_days = 30;
    c->demurrage_bps = 50;
    c->demurrage_period_ms = 30 * LEDGER_DAY_MS;
    tx->ops[tx->n_ops++].kind = LEDGER_OP_CURRENCY;
}

static void make_programme(ledger_tx *tx)
{
    ledger_programme *pg = &tx->programme_def;
    snprintf(pg->currency, sizeof pg->currency, "KES");
    snprintf(pg->id, sizeof pg->id, "food-2026");
    pg->budget = 5000000;
    pg->start_ms = 1700000000000;
    pg->end_ms = pg->start_ms + 90 * LEDGER_DAY_MS;
    pg->cap = 20000;
    pg->period_ms = 30 * LEDGER_DAY_MS;
    pg->n_categories = 2;
    snprintf(pg->categories[0], sizeof pg->categories[0], "food");
    snprintf(pg->categories[1], sizeof pg->categories[1], "pharmacy");
    pg->grace_ms = 7 * LEDGER_DAY_MS;
    tx->ops[tx->n_ops++].kind = LEDGER_OP_PROGRAMME;
}

static ledger_op *add_op(ledger_tx *tx, uint8_t kind, const char *programme, const char *ref)
{
    ledger_op *op = &tx->ops[tx->n_ops++];
    op->kind = kind;
    snprintf(op->currency, sizeof op->currency, "KES");
    if (programme) snprintf(op->programme, sizeof op->programme, "%s", programme);
    if (ref) snprintf(op->ref, sizeof op->ref, "%s", ref);
    return op;
}

/* The operations of the money rules beyond issue and transfer. */
static void make_money_ops(ledger_tx *tx, int variant)
{
    ledger_op *op;
    if (variant == 3) {
        make_currency(tx);
        op = add_op(tx, LEDGER_OP_GRANT, NULL, "food");
        op->role = LEDGER_ROLE_MERCHANT;
        memcpy(op->from, seed_key(3)->pk, KN_PK_BYTES);
    } else if (variant == 4) {
        make_programme(tx);
        add_op(tx, LEDGER_OP_FUND, "food-2026", NULL)->amount = 1000000;
        op = add_op(tx, LEDGER_OP_DISBURSE, "food-2026", "batch-0001");
        for (uint32_t i = 0; i < 3; i++) {
            memcpy(tx->payees[i].pk, seed_key(i)->pk, KN_PK_BYTES);
            tx->payees[i].amount = 10000 + i;
        }
        tx->n_payees = 3;
    } else if (variant == 5) {
        op = add_op(tx, LEDGER_OP_TRANSFER, "food-2026", NULL);
        memcpy(op->from, seed_key(1)->pk, KN_PK_BYTES);
        memcpy(op->to, seed_key(2)->pk, KN_PK_BYTES);
        op->amount = 450;
        op->has_link = true;
        memset(op->link, 0x5a, KN_HASH_BYTES);
        op = add_op(tx, LEDGER_OP_REDEEM, NULL, "sepa-2026-0001");
        memcpy(op->from, seed_key(2)->pk, KN_PK_BYTES);
        op->amount = 300;
        op = add_op(tx, LEDGER_OP_REVERSE, NULL, "refund");
        memset(op->link, 0x11, KN_HASH_BYTES);
        op->role = 1;
        op->amount = 50;
        op = add_op(tx, LEDGER_OP_CLAWBACK, "food-2026", "case-77");
        memcpy(op->from, seed_key(3)->pk, KN_PK_BYTES);
        op->amount = 10;
    } else {
        add_op(tx, LEDGER_OP_EXPIRE, "food-2026", NULL);
    }
}

/* The operations between cities: a rate, the float, an exchange and a
 * settlement (variant 7); a cycle's close, which stands alone (variant 8). */
static void make_clearing_ops(ledger_tx *tx, int variant)
{
    if (variant == 8) {
        ledger_op *op = add_op(tx, LEDGER_OP_CLOSE, NULL, NULL);
        op->currency[0] = '\0';
        op->cycle = 3;
        op->mode = LEDGER_NETTING_MULTILATERAL;
        return;
    }
    ledger_op *op = add_op(tx, LEDGER_OP_RATE, NULL, NULL);
    snprintf(op->counter, sizeof op->counter, "TND");
    op->num = 3;
    op->den = 2;
    op->end_ms = 1800000000000ull;
    op = add_op(tx, LEDGER_OP_CLEARING, NULL, NULL);
    op->mode = LEDGER_CLEARING_FUND;
    op->amount = 90000;
    op = add_op(tx, LEDGER_OP_EXCHANGE, NULL, NULL);
    memcpy(op->from, seed_key(1)->pk, KN_PK_BYTES);
    snprintf(op->counter, sizeof op->counter, "TND");
    memcpy(op->to, seed_key(2)->pk, KN_PK_BYTES);
    op->mode = LEDGER_EXCHANGE_DELIVER;
    op->amount = 1500;
    op->limit = 1001;
    op = add_op(tx, LEDGER_OP_SETTLE, NULL, "sepa-settle-0002");
    snprintf(op->counter, sizeof op->counter, "TND");
    op->cycle = 2;
    op->amount = 1000;
}

/* Variant 0: an issue and a transfer signed by both authorising keys.
 * Variant 1: one transfer with large integers (the 8-byte uint form).
 * Variant 2: an issue with a reserve reference long enough for str8.
 * Variants 3-6: a currency definition and a grant; a programme, its funding
 * and a batch; aid spent, a redemption, a reversal and a clawback; an expiry.
 * Variants 7-8: the operations between cities.
 * Variant 9 (built by fuzz_seed_tx): evidence, a nil prevote against a block's. */
static bool make_tx(ledger_tx *tx, int variant)
{
    memset(tx, 0, sizeof *tx);
    snprintf(tx->chain_id, sizeof tx->chain_id, "%s", FUZZ_CHAIN_ID);
    switch (variant) {
    case 0:
        tx->nonce = 7;
        tx->expiry_height = 100;
        tx->n_ops = 2;
        make_op(&tx->ops[0], LEDGER_OP_ISSUE, "KES", 0, 1, 5000, "att-1");
        make_op(&tx->ops[1], LEDGER_OP_TRANSFER, "KES", 1, 2, 1200, NULL);
        break;
    case 1:
        tx->nonce = UINT64_MAX;
        tx->expiry_height = (uint64_t)1 << 40;
        tx->n_ops = 1;
        make_op(&tx->ops[0], LEDGER_OP_TRANSFER, "NAIROBI-CRED", 2, 3, 70000, NULL);
        break;
    case 2:
        tx->nonce = 300;
        tx->expiry_height = 65536;
        tx->n_ops = 1;
        make_op(&tx->ops[0], LEDGER_OP_ISSUE, "X", 3, 0, 128,
                "reserve-attestation/2024/q3/bank-statement-000042");
        break;
    case 3:
    case 4:
    case 5:
    case 6:
        tx->nonce = 1000 + (uint64_t)variant;
        tx->expiry_height = 500;
        make_money_ops(tx, variant);
        break;
    case 7:
    case 8:
        tx->nonce = 2000 + (uint64_t)variant;
        tx->expiry_height = 900;
        make_clearing_ops(tx, variant);
        break;
    default: return false;
    }
    for (uint32_t i = 0; i < 3; i++) KN_REQUIRE(ledger_tx_sign(tx, seed_key(i)) == 0);
    return true;
}

/* Evidence has no signer: the canonical transaction of two conflicting votes. */
static void make_evidence_tx(ledger_tx *tx)
{
    cons_vote a = {.type = CONS_PREVOTE, .height = 41, .round = 2, .validator = 1};
    cons_vote b = a;
    memset(a.block_id, 0xe1, KN_HASH_BYTES);
    b.nil = true;
    cons_vote_sign(&a, seed_key(1), FUZZ_CHAIN_ID);
    cons_vote_sign(&b, seed_key(1), FUZZ_CHAIN_ID);
    ledger_evidence_tx(tx, FUZZ_CHAIN_ID, &a, &b);
}

bool fuzz_seed_tx(kn_buf *b, int variant)
{
    ledger_tx tx;
    if (variant == 9) make_evidence_tx(&tx);
    else if (!make_tx(&tx, variant)) return false;
    ledger_tx_encode(&tx, b);
    return true;
}

/* ---------------------------------------------------------------- consensus */

static void make_cert(cons_cert *cert, uint64_t height, const uint8_t block_id[KN_HASH_BYTES],
                      uint32_t n_signers)
{
    memset(cert, 0, sizeof *cert);
    cert->height = height;
    cert->round = 1;
    memcpy(cert->block_id, block_id, KN_HASH_BYTES);
    for (uint32_t i = 0; i < n_signers; i++) {
        cons_vote v = {.type = CONS_PRECOMMIT, .height = height, .round = 1, .validator = i};
        memcpy(v.block_id, block_id, KN_HASH_BYTES);
        cons_vote_sign(&v, seed_key(i), FUZZ_CHAIN_ID);
        cert->sigs[i].validator = i;
        memcpy(cert->sigs[i].sig, v.sig, KN_SIG_BYTES);
    }
    cert->n_sigs = n_signers;
}

bool fuzz_seed_cert(kn_buf *b, int variant)
{
    uint8_t block_id[KN_HASH_BYTES];
    cons_cert cert;
    if (variant > 1) return false;
    memset(block_id, 0xb1 + variant, sizeof block_id);
    make_cert(&cert, variant ? 1000000 : 5, block_id, variant ? 0 : 3);
    cons_cert_encode(&cert, b);
    return true;
}

/* Variant 0: a prevote for a block; 1: a nil precommit; 2: a vote with the
 * widest integer forms. */
bool fuzz_seed_vote(kn_buf *b, int variant)
{
    cons_vote v = {.type = CONS_PREVOTE, .height = 12, .round = 0, .validator = 1};
    switch (variant) {
    case 0: memset(v.block_id, 0xa7, KN_HASH_BYTES); break;
    case 1: v.type = CONS_PRECOMMIT; v.nil = true; v.round = 200; break;
    case 2: v.height = UINT64_MAX; v.round = UINT32_MAX; v.validator = 3; break;
    default: return false;
    }
    cons_vote_sign(&v, seed_key(v.validator), FUZZ_CHAIN_ID);
    cons_vote_encode(&v, b);
    return true;
}

/* Variant 0: no proof-of-lock round (-1); 1: pol_round 3 in round 5;
 * 2: a round needing the 4-byte form. */
bool fuzz_seed_proposal(kn_buf *b, int variant)
{
    cons_proposal p = {.height = 12, .round = 0, .pol_round = -1, .proposer = 2};
    switch (variant) {
    case 0: break;
    case 1: p.round = 5; p.pol_round = 3; break;
    case 2: p.round = 70000; p.pol_round = 65537; p.height = 1u << 20; break;
    default: return false;
    }
    memset(p.block_id, 0x3c, KN_HASH_BYTES);
    cons_proposal_sign(&p, seed_key(p.proposer), FUZZ_CHAIN_ID);
    cons_proposal_encode(&p, b);
    return true;
}

/* ---------------------------------------------------------------- blocks */

/* Variant 0: height 1, no transactions, no certificate. Variant 1: height 2
 * with every transaction seed and a certificate for block 1. */
bool fuzz_seed_block(kn_buf *b, int variant)
{
    if (variant > 1) return false;
    ledger_header h;
    memset(&h, 0, sizeof h);
    snprintf(h.chain_id, sizeof h.chain_id, "%s", FUZZ_CHAIN_ID);
    h.height = (uint64_t)variant + 1;
    h.time_ms = 1700000000000ull + (uint64_t)variant;
    memset(h.state_hash, 0x5a, KN_HASH_BYTES);
    h.proposer = (uint32_t)variant;
    uint8_t block_id[KN_HASH_BYTES];
    if (variant == 0) {
        ledger_block_build(&h, NULL, NULL, 0, NULL, b, block_id);
        return true;
    }
    memset(h.prev_id, 0x11, KN_HASH_BYTES);
    enum { N_TXS = 3 };
    kn_buf tx_bytes[N_TXS] = {{0}};
    ledger_slice txs[N_TXS];
    uint8_t ids[N_TXS][KN_HASH_BYTES];
    for (int i = 0; i < N_TXS; i++) {
        ledger_tx tx;
        KN_REQUIRE(make_tx(&tx, i));
        ledger_tx_encode(&tx, &tx_bytes[i]);
        txs[i] = (ledger_slice){tx_bytes[i].data, tx_bytes[i].len};
        memcpy(ids[i], tx.id, KN_HASH_BYTES);
    }
    cons_cert cert;
    make_cert(&cert, 1, h.prev_id, 3);
    kn_buf cert_bytes = {0};
    cons_cert_encode(&cert, &cert_bytes);
    ledger_slice last_cert = {cert_bytes.data, cert_bytes.len};
    ledger_block_build(&h, txs, (const uint8_t(*)[KN_HASH_BYTES])ids, N_TXS, &last_cert, b,
                       block_id);
    for (int i = 0; i < N_TXS; i++) kn_buf_free(&tx_bytes[i]);
    kn_buf_free(&cert_bytes);
    return true;
}

/* ---------------------------------------------------------------- loose values */

static void values_ints(kn_buf *b)
{
    static const uint64_t uints[] = {0, 127, 128, 255, 256, 65535, 65536, 0xffffffffull,
                                     0x100000000ull, UINT64_MAX};
    static const int64_t ints[] = {-1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
                                   (int64_t)INT32_MIN - 1, INT64_MIN};
    size_t n_u = sizeof uints / sizeof uints[0], n_i = sizeof ints / sizeof ints[0];
    kn_w_array(b, (uint32_t)(n_u + n_i));
    for (size_t i = 0; i < n_u; i++) kn_w_uint(b, uints[i]);
    for (size_t i = 0; i < n_i; i++) kn_w_int(b, ints[i]);
}

static void values_bytes(kn_buf *b)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 300};
    uint8_t bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)('a' + i % 26);
    size_t n = sizeof lens / sizeof lens[0];
    kn_w_array(b, (uint32_t)(2 * n + 3));
    for (size_t i = 0; i < n; i++) {
        kn_w_str(b, (const char *)bytes, lens[i]);
        kn_w_bin(b, bytes, lens[i]);
    }
    kn_w_nil(b);
    kn_w_bool(b, true);
    kn_w_bool(b, false);
}

/* Variant 0: integers in every width; 1: strings and bins in every length
 * form, nil and bools; 2: an array of 16 (the array16 form); 3: arrays nested
 * 20 deep, past the reader's skip depth. */
bool fuzz_seed_values(kn_buf *b, int variant)
{
    switch (variant) {
    case 0: values_ints(b); break;
    case 1: values_bytes(b); break;
    case 2:
        kn_w_array(b, 16);
        for (uint64_t i = 0; i < 16; i++) kn_w_uint(b, i * 1000);
        break;
    case 3:
        for (int i = 0; i < 20; i++) kn_w_array(b, 1);
        kn_w_nil(b);
        break;
    default: return false;
    }
    return true;
}

void fuzz_seed_each(bool (*build)(kn_buf *b, int variant), fuzz_seed_cb add, void *ctx)
{
    for (int variant = 0;; variant++) {
        kn_buf b = {0};
        bool more = build(&b, variant);
        if (more) add(ctx, b.data, b.len);
        kn_buf_free(&b);
        if (!more) return;
    }
}

void fuzz_seed_all_encodings(fuzz_seed_cb add, void *ctx)
{
    bool (*const builders[])(kn_buf *, int) = {fuzz_seed_tx,       fuzz_seed_block,
                                                fuzz_seed_vote,     fuzz_seed_proposal,
                                                fuzz_seed_cert,     fuzz_seed_values};
    for (size_t i = 0; i < sizeof builders / sizeof builders[0]; i++)
        fuzz_seed_each(builders[i], add, ctx);
}
