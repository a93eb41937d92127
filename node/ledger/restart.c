/*
 * The restart record of the height in progress, kept in STORE_META beside the
 * consensus safety state and written in the same durable transaction:
 *
 *   own_votes:   [[type, height, round, block_id bin32 | nil], ...]
 *                every vote this node signed at the height, without the
 *                signatures (Ed25519 signs deterministically, so signing again
 *                after a restart yields the very same votes);
 *   valid_block: [round, block bin, [vote...]]
 *                the bytes of the block the core holds as its valid value,
 *                and the signed prevotes of the valid round for it (its proof
 *                of lock), in their wire encoding.
 *
 * A node that crashed can then repeat its votes and the proof of its valid
 * value, which its peers need before they prevote that value again (some of
 * the proof's signers may never say it again), and propose the value again.
 */
#include <string.h>

#include "node/ledger/internal.h"

static const char KEY_OWN_VOTES[] = "own_votes";
static const char KEY_VALID_BLOCK[] = "valid_block";

static int put_own_votes(store_txn *t, const cons_vote *kept, uint32_t n_kept,
                         const cons_actions *acts)
{
    uint32_t count = n_kept;
    for (uint32_t i = 0; i < acts->n; i++) count += acts->a[i].kind == CONS_ACT_BROADCAST_VOTE;
    kn_buf b = {0};
    kn_w_array(&b, count);
    for (uint32_t i = 0; i < n_kept; i++) cons_vote_sign_bytes(&kept[i], &b);
    for (uint32_t i = 0; i < acts->n; i++)
        if (acts->a[i].kind == CONS_ACT_BROADCAST_VOTE) cons_vote_sign_bytes(&acts->a[i].u.vote, &b);
    int rc = store_put(t, STORE_META, KEY_OWN_VOTES, strlen(KEY_OWN_VOTES), b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

static int put_valid_value(store_txn *t, uint32_t round, const ledger_valid_value *valid)
{
    kn_buf b = {0};
    kn_w_array(&b, 3);
    kn_w_uint(&b, round);
    kn_w_bin(&b, valid->block.p, valid->block.n);
    kn_w_array(&b, valid->n_proof);
    for (uint32_t i = 0; i < valid->n_proof; i++) cons_vote_encode(&valid->proof[i], &b);
    int rc = store_put(t, STORE_META, KEY_VALID_BLOCK, strlen(KEY_VALID_BLOCK), b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

int ledger_restart_put(store_txn *t, const cons_safety *s, const cons_vote *kept, uint32_t n_kept,
                       const cons_actions *acts, const ledger_valid_value *valid)
{
    int rc = ledger_safety_put(t, s);
    if (!rc) rc = put_own_votes(t, kept, n_kept, acts);
    if (!rc && valid) rc = put_valid_value(t, (uint32_t)s->valid_round, valid);
    return rc;
}

/* One record: [type, height, round, block | nil], as cons_vote_sign_bytes. */
static int decode_vote(kn_cur *c, cons_vote *v)
{
    uint32_t n;
    uint64_t type, round;
    memset(v, 0, sizeof *v);
    if (kn_r_array(c, &n) || n != 4 || kn_r_uint(c, &type) || kn_r_uint(c, &v->height) ||
        kn_r_uint(c, &round) || type < CONS_PREVOTE || type > CONS_PRECOMMIT || round > UINT32_MAX)
        return KN_EDECODE;
    v->type = (uint8_t)type;
    v->round = (uint32_t)round;
    v->nil = kn_r_nil(c);
    return v->nil ? 0 : kn_r_bin_fixed(c, v->block_id, KN_HASH_BYTES);
}

int ledger_own_votes_get(store_txn *t, uint64_t height, cons_vote *out, uint32_t cap,
                         uint32_t *n)
{
    const uint8_t *p;
    size_t len;
    uint32_t count;
    *n = 0;
    int rc = store_get(t, STORE_META, KEY_OWN_VOTES, strlen(KEY_OWN_VOTES), &p, &len);
    if (rc) return rc == KN_ENOTFOUND ? 0 : rc;
    kn_cur c = kn_cur_make(p, len);
    KN_REQUIRE(kn_r_array(&c, &count) == 0);
    for (uint32_t i = 0; i < count; i++) {
        cons_vote v;
        KN_REQUIRE(decode_vote(&c, &v) == 0);
        if (v.height == height && *n < cap) out[(*n)++] = v;
    }
    return 0;
}

int ledger_valid_value_get(store_txn *t, uint32_t *round, ledger_slice *block,
                           cons_vote proof[CONS_VALIDATORS_MAX], uint32_t *n_proof)
{
    const uint8_t *p;
    size_t len;
    uint32_t count, votes = 0;
    uint64_t r;
    *n_proof = 0;
    int rc = store_get(t, STORE_META, KEY_VALID_BLOCK, strlen(KEY_VALID_BLOCK), &p, &len);
    if (rc) return rc;
    kn_cur c = kn_cur_make(p, len);
    KN_REQUIRE(kn_r_array(&c, &count) == 0 && (count == 2 || count == 3) &&
               kn_r_uint(&c, &r) == 0 && r <= UINT32_MAX &&
               kn_r_bin(&c, &block->p, &block->n) == 0);
    if (count == 3) KN_REQUIRE(kn_r_array(&c, &votes) == 0 && votes <= CONS_VALIDATORS_MAX);
    for (uint32_t i = 0; i < votes; i++) KN_REQUIRE(cons_vote_decode(&c, &proof[i]) == 0);
    *round = (uint32_t)r;
    *n_proof = votes;
    return 0;
}
