/* Byzantine behaviours. A Byzantine instance runs the real core and the same
 * driver as a correct one, with its key, but its outgoing proposals and votes
 * pass through these hooks, which may send different things to different
 * peers: a second block for the same round (equivocation), an invalid block
 * and votes for it, a conflicting vote beside the core's own (double voting),
 * votes for every proposal it sees, or nothing at all (withheld votes). Twins
 * are two instances with the same key (world.c creates them); each one behaves
 * as a correct node that does not know about the other.
 *
 * Its own core only ever sees its honest messages, so a Byzantine instance
 * never tries to commit a block it made invalid on purpose. */
#include "tests/sim/sim.h"

#include <string.h>

#define BYZ_ACT_PM 600 /* how often a behaviour fires when its mode is on */

/* A random subset of the other instances, as a bit mask. */
static uint32_t random_subset(sim_world *w, const sim_node *n)
{
    uint32_t mask = 0;
    for (uint32_t i = 0; i < w->n_nodes; i++)
        if (i != n->id && sim_rng_pm(&w->rng, 500)) mask |= 1u << i;
    return mask;
}

static void send_masked(sim_world *w, const sim_node *n, uint32_t mask, const kn_buf *msg)
{
    for (uint32_t i = 0; i < w->n_nodes; i++)
        if (mask & (1u << i)) sim_send(w, n->id, i, msg);
}

static void send_vote(sim_world *w, sim_node *n, uint32_t mask, uint8_t type, uint64_t height,
                      uint32_t round, const uint8_t *block_id)
{
    cons_vote v = {.type = type, .height = height, .round = round, .validator = n->validator};
    v.nil = block_id == NULL;
    if (block_id) memcpy(v.block_id, block_id, KN_HASH_BYTES);
    cons_vote_sign(&v, &w->vkeys[n->validator], w->chain_id);
    kn_buf msg = {0};
    sim_encode_vote_msg(&v, &msg);
    send_masked(w, n, mask, &msg);
    kn_buf_free(&msg);
}

/* A second block for height h: valid (a later time, no transactions) or, when
 * invalid is set, one whose state hash is wrong. */
static int build_variant(sim_world *w, sim_node *n, uint64_t h, bool invalid, kn_buf *block,
                         uint8_t id[KN_HASH_BYTES])
{
    ledger_header hdr = {0};
    memcpy(hdr.chain_id, w->chain_id, strlen(w->chain_id) + 1);
    hdr.height = h;
    hdr.time_ms = SIM_GENESIS_TIME_MS + w->now_ms + 1 + sim_rng_below(&w->rng, 50);
    if (hdr.time_ms <= n->chain.last_time_ms) hdr.time_ms = n->chain.last_time_ms + 1;
    memcpy(hdr.prev_id, n->chain.last_block_id, KN_HASH_BYTES);
    memcpy(hdr.state_hash, n->chain.state_hash, KN_HASH_BYTES);
    if (invalid) hdr.state_hash[0] ^= 0x5a;
    hdr.proposer = n->validator;
    store_txn *t = NULL;
    ledger_slice cert = {NULL, 0};
    int rc = 0;
    if (h > 1) {
        rc = store_begin(n->store, false, &t);
        if (!rc) rc = ledger_cert_get(t, h - 1, &cert.p, &cert.n);
    }
    if (!rc) ledger_block_build(&hdr, NULL, NULL, 0, &cert, block, id);
    if (t) store_abort(t);
    return rc;
}

bool sim_byz_proposal(sim_world *w, sim_node *n, const cons_proposal *p, const kn_buf *block)
{
    bool invalid = (n->byz & SIM_BYZ_INVALID) && sim_rng_pm(&w->rng, BYZ_ACT_PM);
    bool equivocate = !invalid && (n->byz & SIM_BYZ_EQUIVOCATE) && sim_rng_pm(&w->rng, BYZ_ACT_PM);
    if (!invalid && !equivocate) return false;
    kn_buf other = {0}, msg = {0};
    uint8_t other_id[KN_HASH_BYTES];
    if (build_variant(w, n, p->height, invalid, &other, other_id)) {
        kn_buf_free(&other);
        return false;
    }
    w->faults[invalid ? SIM_F_INVALID : SIM_F_EQUIVOCATE]++;
    /* Re-proposing a valid value, it proposes a fresh block to everyone
     * instead, as if it had forgotten the proof of lock. */
    uint32_t mask = p->pol_round >= 0 ? 0 : random_subset(w, n);
    sim_encode_proposal_msg(p, block->data, block->len, &msg);
    send_masked(w, n, mask, &msg);
    cons_proposal q = *p;
    q.pol_round = -1;
    memcpy(q.block_id, other_id, KN_HASH_BYTES);
    cons_proposal_sign(&q, &w->vkeys[n->validator], w->chain_id);
    sim_encode_proposal_msg(&q, other.data, other.len, &msg);
    uint32_t all = ((1u << w->n_nodes) - 1) & ~(1u << n->id);
    send_masked(w, n, all & ~mask, &msg);
    /* ... and vote for the second block: an invalid one to everyone, a valid
     * one to those who got it, pushing it towards a quorum there. */
    uint32_t voters = invalid ? all : all & ~mask;
    send_vote(w, n, voters, CONS_PREVOTE, p->height, p->round, other_id);
    send_vote(w, n, voters, CONS_PRECOMMIT, p->height, p->round, other_id);
    kn_buf_free(&other);
    kn_buf_free(&msg);
    return true;
}

bool sim_byz_vote(sim_world *w, sim_node *n, const cons_vote *v)
{
    if ((n->byz & SIM_BYZ_WITHHOLD) && sim_rng_pm(&w->rng, BYZ_ACT_PM)) {
        w->faults[SIM_F_WITHHOLD]++;
        kn_buf msg = {0};
        sim_encode_vote_msg(v, &msg);
        send_masked(w, n, random_subset(w, n) & random_subset(w, n), &msg);
        kn_buf_free(&msg);
        return true;
    }
    if (!(n->byz & SIM_BYZ_DOUBLE_VOTE) || !sim_rng_pm(&w->rng, BYZ_ACT_PM)) return false;
    /* The conflicting vote: nil against a block, or the last block seen
     * against nil. */
    const uint8_t *other = NULL;
    if (v->nil && n->byz_seen && n->byz_seen_height == v->height) other = n->byz_seen_id;
    else if (v->nil) return false;
    w->faults[SIM_F_DOUBLE_VOTE]++;
    uint32_t mask = random_subset(w, n);
    uint32_t all = ((1u << w->n_nodes) - 1) & ~(1u << n->id);
    kn_buf msg = {0};
    sim_encode_vote_msg(v, &msg);
    send_masked(w, n, mask, &msg);
    kn_buf_free(&msg);
    send_vote(w, n, all & ~mask, v->type, v->height, v->round, other);
    return true;
}

void sim_byz_saw_proposal(sim_world *w, sim_node *n, const cons_proposal *p)
{
    n->byz_seen = true;
    n->byz_seen_height = p->height;
    memcpy(n->byz_seen_id, p->block_id, KN_HASH_BYTES);
    if (!(n->byz & SIM_BYZ_DOUBLE_VOTE) || !sim_rng_pm(&w->rng, BYZ_ACT_PM)) return;
    /* A yes-man: prevote and precommit every proposal, to some of the peers,
     * whatever its own core says. */
    w->faults[SIM_F_DOUBLE_VOTE]++;
    send_vote(w, n, random_subset(w, n), CONS_PREVOTE, p->height, p->round, p->block_id);
    send_vote(w, n, random_subset(w, n), CONS_PRECOMMIT, p->height, p->round, p->block_id);
}
