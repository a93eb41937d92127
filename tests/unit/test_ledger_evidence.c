/* The evidence rule of docs/LEDGER.md ("Evidence of equivocation"): two
 * conflicting signed votes of one validator are recorded once, by anyone,
 * with the height of the block that recorded them. Every refusal has its
 * exact error and leaves the whole ledger state byte for byte unchanged; the
 * canonical transaction is the same whichever order the votes come in. */
#include "tests/unit/ledger_fixture.h"

#include <unistd.h>

#define CHAIN "koinon-evidence"
#define MAP_BYTES (16ull << 20)
#define T0 1700000000000ull
#define N_VALIDATORS 4

enum { K_V0, K_V1, K_V2, K_V3, K_OUTSIDER, K_N };

static kn_keypair keys[K_N];
static char dir[256];
static store_env *env;
static uint64_t block_time_ms = T0;

static const uint8_t block_x[KN_HASH_BYTES] = {0x11, 0x22};
static const uint8_t block_y[KN_HASH_BYTES] = {0x99, 0x01};

/* ---------------------------------------------------------------- helpers */

/* A vote signed by signer for validator index `validator`. */
static cons_vote vote(int signer, uint32_t validator, uint8_t type, uint64_t height,
                      uint32_t round, const uint8_t *block, const char *chain_id)
{
    cons_vote v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.height = height;
    v.round = round;
    v.nil = block == NULL;
    if (block) memcpy(v.block_id, block, KN_HASH_BYTES);
    v.validator = validator;
    cons_vote_sign(&v, &keys[signer], chain_id);
    return v;
}

static cons_vote prevote(uint32_t validator, uint64_t height, uint32_t round,
                         const uint8_t *block)
{
    return vote((int)validator, validator, CONS_PREVOTE, height, round, block, CHAIN);
}

/* The evidence transaction with the votes exactly in the order given (not
 * the canonical one), through its bytes as a node would see it. */
static void as_given(ledger_tx *tx, const cons_vote *a, const cons_vote *b)
{
    ledger_evidence_tx(tx, CHAIN, a, b);
    tx->evidence[0] = *a;
    tx->evidence[1] = *b;
    kn_buf bytes = {0};
    ledger_tx_encode(tx, &bytes);
    assert_int_equal(ledger_tx_decode(bytes.data, bytes.len, tx), 0);
    kn_buf_free(&bytes);
}

static void digest(uint8_t out[KN_HASH_BYTES])
{
    store_txn *t;
    assert_int_equal(store_begin(env, false, &t), 0);
    state_digest(t, out);
    store_abort(t);
}

/* Applies tx in a write transaction that is aborted: its result, and the
 * state must not have changed when it is refused. */
static int try_apply(const ledger_tx *tx)
{
    uint8_t before[KN_HASH_BYTES], after[KN_HASH_BYTES];
    store_txn *t;
    ledger_chain ch;
    digest(before);
    assert_int_equal(store_begin(env, true, &t), 0);
    assert_int_equal(ledger_chain_get(t, &ch), 0);
    int rc = ledger_tx_apply(t, tx, ch.height + 1, block_time_ms + 1);
    if (rc) {
        state_digest(t, after);
        assert_memory_equal(before, after, KN_HASH_BYTES);
    }
    store_abort(t);
    return rc;
}

static void refused(const ledger_tx *tx, int err)
{
    assert_int_equal(ledger_tx_verify(tx, CHAIN), 0);
    assert_int_equal(try_apply(tx), err);
}

/* One block holding tx; returns the recorded result. */
static int commit(const ledger_tx *tx)
{
    kn_buf bytes = {0};
    ledger_tx_encode(tx, &bytes);
    block_time_ms += 1000;
    exec_encoded_block(env, CHAIN, block_time_ms, tx, &bytes, 1, NULL);
    kn_buf_free(&bytes);
    store_txn *t;
    ledger_tx_record rec;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_tx_record_get(t, tx->id, &rec), 0);
    store_abort(t);
    return rec.result;
}

static uint64_t count(void)
{
    store_txn *t;
    uint64_t n = 0;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_evidence_count(t, &n), 0);
    store_abort(t);
    return n;
}

typedef struct seen {
    uint32_t n;
    ledger_evidence e[4];
} seen;

static void collect(void *ctx, const ledger_evidence *e)
{
    seen *s = ctx;
    if (s->n < 4) s->e[s->n] = *e;
    s->n++;
}

static seen recorded(void)
{
    seen s = {0};
    store_txn *t;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_evidence_each(t, collect, &s), 0);
    store_abort(t);
    return s;
}

/* ---------------------------------------------------------------- setup */

static int setup(void **state)
{
    (void)state;
    assert_int_equal(kn_crypto_init(), 0);
    kn_log_setup(KN_LOG_ERROR, false);
    fixed_keys(keys, K_N, 0xe7);
    snprintf(dir, sizeof dir, "%s/koinon-evidence-XXXXXX", tmp_root());
    assert_non_null(mkdtemp(dir));
    assert_int_equal(store_open(dir, MAP_BYTES, &env), 0);
    static ledger_genesis g;
    memset(&g, 0, sizeof g);
    strcpy(g.chain_id, CHAIN);
    g.time_ms = T0;
    g.n_admins = 1;
    memcpy(g.admins[0], keys[K_OUTSIDER].pk, KN_PK_BYTES);
    g.n_validators = N_VALIDATORS;
    for (int i = 0; i < N_VALIDATORS; i++) {
        memcpy(g.validators[i].pk, keys[i].pk, KN_PK_BYTES);
        g.validators[i].power = 1;
    }
    store_txn *t;
    assert_int_equal(store_begin(env, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), 0);
    assert_int_equal(store_commit(t), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(env);
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    (void)unlink(path);
    (void)rmdir(dir);
    return 0;
}

/* ---------------------------------------------------------------- tests */

/* Either order of the votes gives the same bytes and id, which decode back
 * to themselves, and needs no signature. */
static void canonical_transaction(void **state)
{
    (void)state;
    cons_vote a = prevote(1, 5, 0, block_y), b = prevote(1, 5, 0, block_x);
    static ledger_tx ab, ba, back;
    ledger_evidence_tx(&ab, CHAIN, &a, &b);
    ledger_evidence_tx(&ba, CHAIN, &b, &a);
    kn_buf x = {0}, y = {0};
    ledger_tx_encode(&ab, &x);
    ledger_tx_encode(&ba, &y);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.data, y.data, x.len);
    assert_memory_equal(ab.id, ba.id, KN_HASH_BYTES);
    assert_int_equal(ledger_tx_decode(x.data, x.len, &back), 0);
    assert_memory_equal(back.id, ab.id, KN_HASH_BYTES);
    assert_int_equal(back.n_sigs, 0);
    assert_int_equal(back.ops[0].kind, LEDGER_OP_EVIDENCE);
    assert_memory_equal(back.evidence[0].block_id, block_x, KN_HASH_BYTES); /* x < y */
    assert_int_equal(back.expiry_height, 5 + LEDGER_EVIDENCE_EXPIRY_BLOCKS);
    assert_int_equal(ledger_tx_verify(&back, CHAIN), 0);
    assert_int_equal(ledger_tx_verify(&back, "other"), KN_EWRONGCHAIN);
    assert_string_equal(ledger_op_name(LEDGER_OP_EVIDENCE), "evidence");

    /* nil sorts first. */
    cons_vote n = prevote(1, 5, 0, NULL);
    ledger_evidence_tx(&ab, CHAIN, &a, &n);
    assert_true(ab.evidence[0].nil && !ab.evidence[1].nil);
    kn_buf_free(&x);
    kn_buf_free(&y);
}

/* Evidence stands alone, without signatures, for the consortium (""). */
static void decode_shape(void **state)
{
    (void)state;
    cons_vote a = prevote(1, 5, 0, block_x), b = prevote(1, 5, 0, block_y);
    static ledger_tx tx, out;
    kn_buf bytes = {0};

    ledger_evidence_tx(&tx, CHAIN, &a, &b);
    assert_int_equal(ledger_tx_sign(&tx, &keys[K_OUTSIDER]), 0);
    ledger_tx_encode(&tx, &bytes);
    assert_int_equal(ledger_tx_decode(bytes.data, bytes.len, &out), KN_EINVAL);
    assert_int_equal(ledger_tx_verify(&tx, CHAIN), KN_EWRONGSIGNER);

    ledger_evidence_tx(&tx, CHAIN, &a, &b);
    tx.n_ops = 2;
    tx.ops[1] = tx.ops[0];
    kn_buf_reset(&bytes);
    ledger_tx_encode(&tx, &bytes);
    assert_int_equal(ledger_tx_decode(bytes.data, bytes.len, &out), KN_EINVAL);

    ledger_evidence_tx(&tx, CHAIN, &a, &b);
    strcpy(tx.ops[0].currency, "GRAMA");
    kn_buf_reset(&bytes);
    ledger_tx_encode(&tx, &bytes);
    assert_int_equal(ledger_tx_decode(bytes.data, bytes.len, &out), KN_EINVAL);

    /* Truncated anywhere: refused, never read past the end. */
    ledger_evidence_tx(&tx, CHAIN, &a, &b);
    kn_buf_reset(&bytes);
    ledger_tx_encode(&tx, &bytes);
    for (size_t n = 0; n < bytes.len; n++)
        assert_int_not_equal(ledger_tx_decode(bytes.data, n, &out), 0);
    kn_buf_free(&bytes);
}

/* Refusals of votes that are not evidence: each bad_evidence, state unchanged. */
static void not_evidence(void **state)
{
    (void)state;
    static ledger_tx tx;
    cons_vote x = prevote(1, 5, 0, block_x);
    struct {
        const char *what;
        cons_vote other;
    } cases[] = {
        {"same block", prevote(1, 5, 0, block_x)},
        {"another round", prevote(1, 5, 1, block_y)},
        {"another height", prevote(1, 6, 0, block_y)},
        {"another type", vote(1, 1, CONS_PRECOMMIT, 5, 0, block_y, CHAIN)},
        {"another validator", prevote(2, 5, 0, block_y)},
        {"forged: signed by another validator's key", vote(2, 1, CONS_PREVOTE, 5, 0, block_y, CHAIN)},
        {"forged: signed by a key outside the set", vote(K_OUTSIDER, 1, CONS_PREVOTE, 5, 0, block_y, CHAIN)},
        {"signed for another chain", vote(1, 1, CONS_PREVOTE, 5, 0, block_y, "other-chain")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("refused: %s\n", cases[i].what);
        ledger_evidence_tx(&tx, CHAIN, &x, &cases[i].other);
        refused(&tx, KN_EBADEVIDENCE);
    }

    /* A flipped bit in either signature. */
    cons_vote y = prevote(1, 5, 0, block_y);
    for (int which = 0; which < 2; which++) {
        ledger_evidence_tx(&tx, CHAIN, &x, &y);
        tx.evidence[which].sig[7] ^= 0x01;
        refused(&tx, KN_EBADEVIDENCE);
    }
    /* A block id changed after signing. */
    ledger_evidence_tx(&tx, CHAIN, &x, &y);
    tx.evidence[1].block_id[31] ^= 0x80;
    refused(&tx, KN_EBADEVIDENCE);
    /* A validator index beyond the set, signed by the key it claims. */
    cons_vote u = vote(K_OUTSIDER, 7, CONS_PREVOTE, 5, 0, block_x, CHAIN);
    cons_vote w = vote(K_OUTSIDER, 7, CONS_PREVOTE, 5, 0, block_y, CHAIN);
    ledger_evidence_tx(&tx, CHAIN, &u, &w);
    refused(&tx, KN_EBADEVIDENCE);
    assert_int_equal(count(), 0);
    assert_true(ledger_rule_error(KN_EBADEVIDENCE) && ledger_rule_error(KN_EEVIDENCEKNOWN));
    assert_string_equal(kn_errname(KN_EBADEVIDENCE), "bad_evidence");
    assert_string_equal(kn_errname(KN_EEVIDENCEKNOWN), "evidence_known");
}

/* Recorded once: by block execution, with the votes in canonical order and
 * the recording height; then the same, swapped, or another pair of the same
 * slot is evidence_known. A refused one in a block is recorded as refused. */
static void recorded_once(void **state)
{
    (void)state;
    static ledger_tx tx, again;
    cons_vote y = prevote(2, 9, 1, block_y), x = prevote(2, 9, 1, block_x);
    as_given(&tx, &y, &x); /* not canonical: accepted just the same */
    assert_int_equal(try_apply(&tx), 0);
    assert_int_equal(commit(&tx), 0);
    assert_int_equal(count(), 1);
    seen s = recorded();
    assert_int_equal(s.n, 1);
    assert_memory_equal(s.e[0].validator_pk, keys[2].pk, KN_PK_BYTES);
    assert_int_equal(s.e[0].a.validator, 2);
    assert_int_equal(s.e[0].a.height, 9);
    assert_int_equal(s.e[0].a.round, 1);
    assert_int_equal(s.e[0].a.type, CONS_PREVOTE);
    assert_memory_equal(s.e[0].a.block_id, block_x, KN_HASH_BYTES);
    assert_memory_equal(s.e[0].b.block_id, block_y, KN_HASH_BYTES);
    store_txn *t;
    ledger_chain ch;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_chain_get(t, &ch), 0);
    store_abort(t);
    assert_int_equal(s.e[0].recorded_height, ch.height);

    /* The same transaction: its id is committed. */
    assert_int_equal(try_apply(&tx), KN_EDUPTX);
    /* Swapped: another id, the same equivocation. */
    as_given(&again, &x, &y);
    assert_memory_not_equal(again.id, tx.id, KN_HASH_BYTES);
    refused(&again, KN_EEVIDENCEKNOWN);
    /* The canonical one, and a third vote of the same slot. */
    ledger_evidence_tx(&again, CHAIN, &x, &y);
    refused(&again, KN_EEVIDENCEKNOWN);
    cons_vote nil = prevote(2, 9, 1, NULL);
    ledger_evidence_tx(&again, CHAIN, &nil, &x);
    refused(&again, KN_EEVIDENCEKNOWN);
    /* In a block: recorded with its error, nothing else changes. */
    assert_int_equal(commit(&again), KN_EEVIDENCEKNOWN);
    assert_int_equal(count(), 1);

    /* Another slot of the same validator is another record. */
    cons_vote p = vote(2, 2, CONS_PRECOMMIT, 9, 1, block_x, CHAIN);
    cons_vote q = vote(2, 2, CONS_PRECOMMIT, 9, 1, NULL, CHAIN);
    ledger_evidence_tx(&again, CHAIN, &p, &q);
    assert_int_equal(commit(&again), 0);
    assert_int_equal(count(), 2);
    s = recorded();
    assert_int_equal(s.n, 2);
    assert_int_equal(s.e[1].a.type, CONS_PRECOMMIT);
    assert_true(s.e[1].a.nil && !s.e[1].b.nil);

    /* A forged one in a block: recorded as bad_evidence. */
    cons_vote f = vote(K_OUTSIDER, 3, CONS_PREVOTE, 9, 1, block_x, CHAIN);
    cons_vote g = prevote(3, 9, 1, block_y);
    ledger_evidence_tx(&again, CHAIN, &f, &g);
    assert_int_equal(commit(&again), KN_EBADEVIDENCE);
    assert_int_equal(count(), 2);
}

/* The validator set is part of the genesis: refused when malformed. */
static void genesis_validators(void **state)
{
    (void)state;
    store_txn *t;
    cons_validator v;
    assert_int_equal(store_begin(env, false, &t), 0);
    assert_int_equal(ledger_validator_get(t, 3, &v), 0);
    assert_memory_equal(v.pk, keys[3].pk, KN_PK_BYTES);
    assert_int_equal(v.power, 1);
    assert_int_equal(ledger_validator_get(t, N_VALIDATORS, &v), KN_ENOTFOUND);
    store_abort(t);

    char d2[256];
    store_env *e2;
    snprintf(d2, sizeof d2, "%s/koinon-evidence-g-XXXXXX", tmp_root());
    assert_non_null(mkdtemp(d2));
    assert_int_equal(store_open(d2, MAP_BYTES, &e2), 0);
    static ledger_genesis g;
    memset(&g, 0, sizeof g);
    strcpy(g.chain_id, CHAIN);
    g.n_validators = 2;
    memcpy(g.validators[0].pk, keys[0].pk, KN_PK_BYTES);
    memcpy(g.validators[1].pk, keys[0].pk, KN_PK_BYTES);
    g.validators[0].power = g.validators[1].power = 1;
    assert_int_equal(store_begin(e2, true, &t), 0);
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL); /* a key twice */
    memcpy(g.validators[1].pk, keys[1].pk, KN_PK_BYTES);
    g.validators[1].power = 0;
    assert_int_equal(ledger_genesis_apply(t, &g), KN_EINVAL); /* no power */
    store_abort(t);
    store_close(e2);
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", d2);
    (void)unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", d2);
    (void)unlink(path);
    (void)rmdir(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_transaction),
        cmocka_unit_test(decode_shape),
        cmocka_unit_test(not_evidence),
        cmocka_unit_test(recorded_once),
        cmocka_unit_test(genesis_validators),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
