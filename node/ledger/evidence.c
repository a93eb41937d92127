/*
 * Evidence of equivocation: the validator set the genesis keeps in the state,
 * the evidence rule (docs/LEDGER.md, "Evidence of equivocation") and the
 * reads of recorded evidence.
 *
 * The rule needs the validators' public keys. Block execution and mempool
 * admission see only the store, so the genesis writes the validator set into
 * the state ("V" records, see internal.h) and the rule reads it from there:
 * the verdict is a pure function of the committed state and the transaction,
 * like every other rule, and every validator reaches the same one.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define VALIDATOR_FIELDS 2
#define EVIDENCE_FIELDS 3

/* ---------------------------------------------------------------- validators */

void ledger__key_validator(ledger__key *k, uint32_t index)
{
    ledger__key_tag(k, 'V');
    ledger__key_u32(k, index);
}

void ledger__validator_encode(const cons_validator *v, kn_buf *b)
{
    kn_w_array(b, VALIDATOR_FIELDS);
    kn_w_bin(b, v->pk, KN_PK_BYTES);
    kn_w_uint(b, v->power);
}

int ledger_validator_get(store_txn *t, uint32_t index, cons_validator *out)
{
    ledger__key k;
    const uint8_t *p;
    size_t n;
    ledger__key_validator(&k, index);
    int rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields = 0;
    rc = kn_r_array(&c, &fields);
    if (!rc && fields != VALIDATOR_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_bin_fixed(&c, out->pk, KN_PK_BYTES);
    if (!rc) rc = kn_r_uint(&c, &out->power);
    KN_REQUIRE(rc == 0 && c.left == 0); /* the genesis wrote it */
    return 0;
}

/* ---------------------------------------------------------------- the rule */

void ledger__key_evidence_count(ledger__key *k)
{
    ledger__key_tag(k, 'w');
}

/* One key per equivocation: a validator's two votes of one type in one round. */
static void key_evidence(ledger__key *k, const cons_vote *v)
{
    ledger__key_tag(k, 'W');
    ledger__key_u32(k, v->validator);
    ledger__key_u64(k, v->height);
    ledger__key_u32(k, v->round);
    ledger__key_raw(k, &v->type, 1);
}

static bool same_slot(const cons_vote *a, const cons_vote *b)
{
    return a->validator == b->validator && a->type == b->type && a->height == b->height &&
           a->round == b->round;
}

static bool conflicting(const cons_vote *a, const cons_vote *b)
{
    if (a->nil != b->nil) return true;
    return !a->nil && memcmp(a->block_id, b->block_id, KN_HASH_BYTES) != 0;
}

static bool vote_signed_by(const cons_vote *v, const uint8_t pk[KN_PK_BYTES],
                           const char *chain_id)
{
    kn_buf b = {0};
    cons_vote_sign_bytes(v, &b);
    bool ok = kn_verify(v->sig, pk, KN_DOMAIN_VOTE, chain_id, b.data, b.len) == 0;
    kn_buf_free(&b);
    return ok;
}

int ledger__evidence_check(store_txn *t, const ledger_tx *tx, uint64_t height,
                           ledger__key *key, kn_buf *record)
{
    const cons_vote *a = &tx->evidence[0], *b = &tx->evidence[1];
    if (!same_slot(a, b) || !conflicting(a, b)) return KN_EBADEVIDENCE;
    cons_validator val;
    int rc = ledger_validator_get(t, a->validator, &val);
    if (rc == KN_ENOTFOUND) return KN_EBADEVIDENCE;
    if (rc) return rc;
    if (!vote_signed_by(a, val.pk, tx->chain_id) || !vote_signed_by(b, val.pk, tx->chain_id))
        return KN_EBADEVIDENCE;
    key_evidence(key, a);
    const uint8_t *p;
    size_t n;
    rc = store_get(t, STORE_STATE, key->b, key->n, &p, &n);
    if (rc == 0) return KN_EEVIDENCEKNOWN;
    if (rc != KN_ENOTFOUND) return rc;
    bool ab = ledger_evidence_order(a, b);
    kn_w_array(record, EVIDENCE_FIELDS);
    cons_vote_encode(ab ? a : b, record);
    cons_vote_encode(ab ? b : a, record);
    kn_w_uint(record, height);
    return 0;
}

/* ---------------------------------------------------------------- reads */

int ledger_evidence_count(store_txn *t, uint64_t *count)
{
    ledger__key k;
    int64_t v = 0;
    ledger__key_evidence_count(&k);
    int rc = ledger__get_cell(t, &k, &v);
    KN_REQUIRE(v >= 0);
    *count = (uint64_t)v;
    return rc;
}

static void evidence_decode(const uint8_t *p, size_t n, ledger_evidence *e)
{
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields = 0;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != EVIDENCE_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = cons_vote_decode(&c, &e->a);
    if (!rc) rc = cons_vote_decode(&c, &e->b);
    if (!rc) rc = kn_r_uint(&c, &e->recorded_height);
    KN_REQUIRE(rc == 0 && c.left == 0); /* the rule wrote it */
}

int ledger_evidence_each(store_txn *t, void (*cb)(void *ctx, const ledger_evidence *e),
                         void *ctx)
{
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, "W", 1, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        ledger_evidence e;
        cons_validator val;
        memset(&e, 0, sizeof e);
        evidence_decode(v, vl, &e);
        rc = ledger_validator_get(t, e.a.validator, &val);
        KN_REQUIRE(rc == 0 || rc != KN_ENOTFOUND); /* recorded only for a known validator */
        if (rc) break;
        memcpy(e.validator_pk, val.pk, KN_PK_BYTES);
        cb(ctx, &e);
    }
    store_iter_close(it);
    return rc ? rc : store_error(t);
}
