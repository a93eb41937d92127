/* The simulated driver of one validator instance: it follows the contract of
 * consensus/consensus.h exactly as the daemon does (node/driver.c), with the
 * simulated network and clock in place of libuv:
 *   - before any proposal or vote of an action list leaves, the core's safety
 *     state is written with ledger_safety_put() in a durable store commit;
 *   - own messages are signed, sent, and fed back to the core;
 *   - NEED_VALUE builds a block from the mempool (at once when transactions
 *     wait or in a later round, otherwise at the heartbeat);
 *   - COMMIT takes the certificate, executes and stores the block, and starts
 *     the next height.
 * A restart rebuilds the core from the store: chain tip and safety state. A
 * node that is behind fetches blocks with their certificates from a peer and
 * applies each one only after the certificate and the block verify. */
#include "tests/sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void restart_consensus(sim_world *w, sim_node *n);

static bool alive(const sim_world *w, const sim_node *n)
{
    return n->up && !n->crash_pending && !w->violated;
}

/* ---------------------------------------------------------------- proposals cache */

static sim_proposal *proposal_find(sim_node *n, const uint8_t id[KN_HASH_BYTES])
{
    for (int i = 0; i < SIM_PROPOSALS_MAX; i++)
        if (n->proposals[i].used && memcmp(n->proposals[i].block_id, id, KN_HASH_BYTES) == 0)
            return &n->proposals[i];
    return NULL;
}

void sim_node_keep_proposal(sim_node *n, const uint8_t id[KN_HASH_BYTES], const uint8_t *p,
                            size_t len)
{
    if (proposal_find(n, id)) return;
    sim_proposal *slot = &n->proposals[0];
    for (int i = 0; i < SIM_PROPOSALS_MAX; i++)
        if (!n->proposals[i].used) {
            slot = &n->proposals[i];
            break;
        }
    kn_buf_reset(&slot->block);
    kn_buf_append(&slot->block, p, len);
    memcpy(slot->block_id, id, KN_HASH_BYTES);
    slot->used = true;
}

static void proposals_clear(sim_node *n)
{
    for (int i = 0; i < SIM_PROPOSALS_MAX; i++) n->proposals[i].used = false;
    kn_buf_reset(&n->own_proposal);
    n->n_own_votes = 0;
}

/* Remembers a signed vote of this height (the oldest goes when full). */
static void keep_own_vote(sim_node *n, const cons_vote *v)
{
    if (n->n_own_votes == SIM_OWN_VOTES_MAX) {
        memmove(&n->own_votes[0], &n->own_votes[1], sizeof n->own_votes[0] * (SIM_OWN_VOTES_MAX - 1));
        n->n_own_votes--;
    }
    n->own_votes[n->n_own_votes++] = *v;
}

/* ---------------------------------------------------------------- encodings */

void sim_encode_proposal_msg(const cons_proposal *p, const uint8_t *block, size_t len, kn_buf *msg)
{
    kn_buf_reset(msg);
    kn_w_array(msg, 3);
    kn_w_uint(msg, SIM_MSG_PROPOSAL);
    cons_proposal_encode(p, msg);
    kn_w_bin(msg, block, len);
}

void sim_encode_vote_msg(const cons_vote *v, kn_buf *msg)
{
    kn_buf_reset(msg);
    kn_w_array(msg, 2);
    kn_w_uint(msg, SIM_MSG_VOTE);
    cons_vote_encode(v, msg);
}

/* ---------------------------------------------------------------- speech */

/* The safety state, the votes of this height and (when the core's valid value
 * changed) the valid block's bytes with their proof, in one durable commit. */
static int persist_safety(sim_node *n, const cons_actions *acts)
{
    cons_safety s;
    cons_safety_get(n->cons, &s);
    sim_proposal *valid = NULL;
    if (s.valid_round >= 0 && memcmp(s.valid_block, n->stored_valid_id, KN_HASH_BYTES) != 0)
        valid = proposal_find(n, s.valid_block);
    cons_vote proof[CONS_VALIDATORS_MAX];
    ledger_valid_value value = {0};
    if (valid)
        value = (ledger_valid_value){{valid->block.data, valid->block.len}, proof,
                                     cons_valid_proof(n->cons, proof)};
    store_txn *t;
    int rc = store_begin(n->store, true, &t);
    if (rc) return rc;
    rc = ledger_restart_put(t, &s, n->own_votes, n->n_own_votes, acts, valid ? &value : NULL);
    rc = rc ? (store_abort(t), rc) : store_commit(t);
    if (!rc && valid) memcpy(n->stored_valid_id, s.valid_block, KN_HASH_BYTES);
    return rc;
}

static void speak_proposal(sim_world *w, sim_node *n, cons_proposal *p)
{
    sim_proposal *prop = proposal_find(n, p->block_id);
    if (!prop) {
        /* What node/driver.c does too: "own proposal block missing". After a
         * restart the core re-proposes its valid value, whose bytes were only
         * in memory. Counted, since it costs liveness. */
        w->own_block_missing++;
        if (w->debug)
            fprintf(stderr, "%6llu n%u own proposal block missing h%llu r%u pol%d\n",
                    (unsigned long long)w->now_ms, n->id, (unsigned long long)p->height,
                    p->round, p->pol_round);
        return;
    }
    cons_proposal_sign(p, &w->vkeys[n->validator], w->chain_id);
    sim_signed s = {.validator = n->validator, .height = p->height, .round = p->round,
                    .step = CONS_STEP_PROPOSE};
    memcpy(s.block_id, p->block_id, KN_HASH_BYTES);
    if (sim_correct(n) && !sim_check_signed(w, n, &s)) return;
    kn_buf *msg = &n->own_proposal;
    sim_encode_proposal_msg(p, prop->block.data, prop->block.len, msg);
    if (!n->byz || !sim_byz_proposal(w, n, p, &prop->block)) sim_broadcast(w, n->id, msg);
    cons_actions acts;
    cons_on_proposal(n->cons, p, true, &acts);
    sim_node_run_actions(w, n, &acts);
}

static void speak_vote(sim_world *w, sim_node *n, cons_vote *v)
{
    cons_vote_sign(v, &w->vkeys[n->validator], w->chain_id);
    sim_signed s = {.validator = n->validator, .height = v->height, .round = v->round,
                    .step = v->type == CONS_PREVOTE ? CONS_STEP_PREVOTE : CONS_STEP_PRECOMMIT,
                    .nil = v->nil};
    memcpy(s.block_id, v->block_id, KN_HASH_BYTES);
    if (sim_correct(n) && !sim_check_signed(w, n, &s)) return;
    keep_own_vote(n, v);
    kn_buf msg = {0};
    sim_encode_vote_msg(v, &msg);
    if (!n->byz || !sim_byz_vote(w, n, v)) sim_broadcast(w, n->id, &msg);
    kn_buf_free(&msg);
    cons_actions acts;
    cons_on_vote(n->cons, v, &acts);
    sim_node_run_actions(w, n, &acts);
}

static void schedule_timeout(sim_world *w, sim_node *n, const cons_action *a)
{
    sim_event ev = {.kind = SIM_EV_TIMEOUT, .node = n->id, .incarnation = n->incarnation};
    ev.at_ms = w->now_ms + a->u.timeout.duration_ms;
    ev.step = a->u.timeout.step;
    ev.height = a->u.timeout.height;
    ev.round = a->u.timeout.round;
    sim_schedule(w, &ev);
}

/* ---------------------------------------------------------------- commit */

static void mempool_after_commit(sim_node *n)
{
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n->mempool_n; i++) {
        sim_mp_entry *e = &n->mempool[i];
        ledger_tx_record rec;
        bool gone = e->expiry_height <= n->chain.height ||
                    ledger_tx_record_get(t, e->id, &rec) == 0;
        if (gone) continue;
        if (kept != i) {
            sim_mp_entry tmp = n->mempool[kept];
            n->mempool[kept] = *e;
            *e = tmp;
        }
        kept++;
    }
    n->mempool_n = kept;
    store_abort(t);
}

static int execute(sim_node *n, const ledger_block_view *v, const uint8_t *block, size_t len,
                   const ledger_tx *txs, const uint8_t *cert, size_t cert_len)
{
    store_txn *t;
    int rc = store_begin(n->store, true, &t);
    if (rc) return rc;
    rc = ledger_block_execute(t, v, block, len, txs, cert, cert_len);
    if (rc) {
        store_abort(t);
        return rc;
    }
    rc = store_commit(t);
    if (rc) return rc;
    if ((rc = store_begin(n->store, false, &t)) == 0) {
        rc = ledger_chain_get(t, &n->chain);
        store_abort(t);
    }
    return rc;
}

static void count_results(sim_world *w, sim_node *n, const ledger_block_view *v,
                          uint8_t (*ids)[KN_HASH_BYTES])
{
    if (!sim_correct(n) || v->hdr.height <= w->heights) return;
    w->heights = v->hdr.height;
    w->progress_ms = w->now_ms;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    for (uint32_t i = 0; i < v->hdr.n_txs; i++) {
        ledger_tx_record rec;
        if (ledger_tx_record_get(t, ids[i], &rec) || rec.height != v->hdr.height) continue;
        w->txs_committed++;
        if (rec.result) w->tx_failed++;
    }
    store_abort(t);
}

/* Checks (correct instances), executes and stores one decided block. A
 * Byzantine instance skips the checkers but never executes a block that does
 * not extend its own tip. */
static int commit_block(sim_world *w, sim_node *n, const uint8_t *block, size_t len,
                        const uint8_t *cert, size_t cert_len, bool restart)
{
    ledger_block_view v;
    int rc = ledger_block_decode(block, len, &v);
    if (rc) return rc;
    ledger_block_txs bt = {0};
    rc = ledger_block_txs_decode(&v, &bt);
    if (!rc && sim_correct(n) &&
        !sim_check_block(w, n, &v, bt.txs, (const uint8_t(*)[KN_HASH_BYTES])bt.ids, cert, cert_len))
        rc = KN_EBADBLOCK;
    if (!rc && !sim_correct(n))
        rc = ledger_block_check(&v, &n->chain, &w->vs, w->chain_id,
                                (const uint8_t(*)[KN_HASH_BYTES])bt.ids);
    if (!rc) rc = execute(n, &v, block, len, bt.txs, cert, cert_len);
    if (!rc) {
        KN_REQUIRE(n->chain.height == v.hdr.height);
        uint8_t head[9] = {'C'};
        memcpy(head + 1, &n->id, 4);
        sim_trace(w, head, 5);
        sim_trace(w, n->chain.state_hash, KN_HASH_BYTES);
        if (sim_correct(n)) (void)sim_check_state(w, n);
        count_results(w, n, &v, bt.ids);
        n->last_commit_ms = w->now_ms;
        mempool_after_commit(n);
        /* Committed and durable, but nobody has heard of it yet. */
        if (w->faults_on && w->crash_commit_left && sim_rng_pm(&w->rng, w->cfg.crash_commit_pm)) {
            w->crash_commit_left--;
            sim_crash(w, n, SIM_F_CRASH_COMMIT);
        }
    }
    ledger_block_view_free(&v);
    ledger_block_txs_free(&bt);
    if (!rc && restart && alive(w, n)) restart_consensus(w, n);
    return rc;
}

static void commit_decided(sim_world *w, sim_node *n, const cons_action *a)
{
    sim_proposal *prop = proposal_find(n, a->u.commit.block_id);
    cons_cert cert;
    /* The core decides only on a proposal it was given as valid, which the
     * cache holds; if a flood of proposals pushed it out, catch-up fetches it. */
    if (!prop) return;
    KN_REQUIRE(cons_commit_cert(n->cons, &cert) == 0);
    kn_buf cert_bytes = {0}, block = {0};
    cons_cert_encode(&cert, &cert_bytes);
    kn_buf_append(&block, prop->block.data, prop->block.len);
    (void)commit_block(w, n, block.data, block.len, cert_bytes.data, cert_bytes.len, true);
    kn_buf_free(&cert_bytes);
    kn_buf_free(&block);
}

/* ---------------------------------------------------------------- actions */

static void maybe_build(sim_world *w, sim_node *n);
static void admit(sim_world *w, sim_node *n, const uint8_t *p, size_t len, bool gossip);

/* As the daemon does: the canonical evidence transaction into the mempool and
 * out to the peers; the ledger records it once. */
static void submit_evidence(sim_world *w, sim_node *n, const cons_action *a)
{
    static ledger_tx tx;
    kn_buf bytes = {0};
    w->evidence++;
    ledger_evidence_tx(&tx, w->chain_id, &a->u.evidence.a, &a->u.evidence.b);
    ledger_tx_encode(&tx, &bytes);
    admit(w, n, bytes.data, bytes.len, true);
    kn_buf_free(&bytes);
}

void sim_node_run_actions(sim_world *w, sim_node *n, cons_actions *acts)
{
    if (!alive(w, n)) return;
    bool speaks = false;
    for (uint32_t i = 0; i < acts->n; i++)
        if (acts->a[i].kind == CONS_ACT_BROADCAST_PROPOSAL ||
            acts->a[i].kind == CONS_ACT_BROADCAST_VOTE)
            speaks = true;
    if (speaks) {
        int rc = persist_safety(n, acts);
        if (rc) {
            sim_violation(w, "harness", "instance %u cannot persist its safety state: %s", n->id,
                          kn_strerror(rc));
            return;
        }
        /* Durable, not yet said: the most dangerous moment to die. */
        if (w->faults_on && w->crash_persist_left &&
            sim_rng_pm(&w->rng, w->cfg.crash_persist_pm)) {
            w->crash_persist_left--;
            sim_crash(w, n, SIM_F_CRASH_PERSIST);
            return;
        }
    }
    for (uint32_t i = 0; i < acts->n && alive(w, n); i++) {
        cons_action *a = &acts->a[i];
        switch (a->kind) {
        case CONS_ACT_BROADCAST_PROPOSAL: speak_proposal(w, n, &a->u.proposal); break;
        case CONS_ACT_BROADCAST_VOTE: speak_vote(w, n, &a->u.vote); break;
        case CONS_ACT_SCHEDULE_TIMEOUT: schedule_timeout(w, n, a); break;
        case CONS_ACT_NEED_VALUE:
            n->value_pending = true;
            n->value_height = a->u.need_value.height;
            n->value_round = a->u.need_value.round;
            maybe_build(w, n);
            break;
        case CONS_ACT_COMMIT: commit_decided(w, n, a); break;
        case CONS_ACT_EVIDENCE: submit_evidence(w, n, a); break;
        default: break;
        }
    }
}

/* ---------------------------------------------------------------- building */

int sim_node_build_block(sim_world *w, sim_node *n, uint64_t h, kn_buf *block,
                         uint8_t id[KN_HASH_BYTES])
{
    ledger_header hdr = {0};
    memcpy(hdr.chain_id, w->chain_id, strlen(w->chain_id) + 1);
    hdr.height = h;
    hdr.time_ms = SIM_GENESIS_TIME_MS + w->now_ms;
    if (hdr.time_ms <= n->chain.last_time_ms) hdr.time_ms = n->chain.last_time_ms + 1;
    memcpy(hdr.prev_id, n->chain.last_block_id, KN_HASH_BYTES);
    memcpy(hdr.state_hash, n->chain.state_hash, KN_HASH_BYTES);
    hdr.proposer = n->validator;
    ledger_slice txs[SIM_BLOCK_TXS_MAX];
    uint8_t ids[SIM_BLOCK_TXS_MAX][KN_HASH_BYTES];
    uint32_t count = 0;
    for (uint32_t i = 0; i < n->mempool_n && count < SIM_BLOCK_TXS_MAX; i++) {
        const sim_mp_entry *e = &n->mempool[i];
        if (e->expiry_height < h) continue;
        txs[count].p = e->bytes.data;
        txs[count].n = e->bytes.len;
        memcpy(ids[count], e->id, KN_HASH_BYTES);
        count++;
    }
    store_txn *t = NULL;
    ledger_slice cert = {NULL, 0};
    int rc = 0;
    if (h > 1) {
        rc = store_begin(n->store, false, &t);
        if (!rc) rc = ledger_cert_get(t, h - 1, &cert.p, &cert.n);
    }
    if (!rc)
        ledger_block_build(&hdr, txs, (const uint8_t(*)[KN_HASH_BYTES])ids, count, &cert, block,
                           id);
    if (t) store_abort(t);
    return rc;
}

static void build_value(sim_world *w, sim_node *n)
{
    kn_buf block = {0};
    uint8_t id[KN_HASH_BYTES];
    n->value_pending = false;
    if (sim_node_build_block(w, n, n->value_height, &block, id)) {
        sim_violation(w, "harness", "instance %u cannot build a block", n->id);
        kn_buf_free(&block);
        return;
    }
    sim_node_keep_proposal(n, id, block.data, block.len);
    kn_buf_free(&block);
    cons_actions acts;
    cons_on_value(n->cons, n->value_height, n->value_round, id, &acts);
    sim_node_run_actions(w, n, &acts);
}

static void maybe_build(sim_world *w, sim_node *n)
{
    if (!n->value_pending || !alive(w, n)) return;
    if (n->value_height != cons_height(n->cons)) {
        n->value_pending = false;
        return;
    }
    bool due = n->mempool_n > 0 || n->value_round > 0 ||
               w->now_ms - n->last_commit_ms >= SIM_HEARTBEAT_MS;
    if (due) build_value(w, n);
}

/* ---------------------------------------------------------------- receiving */

/* The driver's verdict on a proposed or fetched block at n's tip. */
static int check_block(sim_world *w, sim_node *n, const uint8_t *block, size_t len,
                       const uint8_t expected_id[KN_HASH_BYTES])
{
    ledger_block_view v;
    int rc = ledger_block_decode(block, len, &v);
    if (rc) return rc;
    ledger_block_txs bt = {0};
    if (memcmp(v.block_id, expected_id, KN_HASH_BYTES) != 0) rc = KN_EBADBLOCK;
    else if (v.hdr.time_ms > SIM_GENESIS_TIME_MS + w->now_ms + SIM_DRIFT_MS) rc = KN_EBADBLOCK;
    if (!rc) rc = ledger_block_txs_decode(&v, &bt);
    for (uint32_t i = 0; !rc && i < v.hdr.n_txs; i++)
        if (ledger_tx_verify(&bt.txs[i], w->chain_id)) rc = KN_EBADBLOCK;
    if (!rc)
        rc = ledger_block_check(&v, &n->chain, &w->vs, w->chain_id,
                                (const uint8_t(*)[KN_HASH_BYTES])bt.ids);
    ledger_block_view_free(&v);
    ledger_block_txs_free(&bt);
    return rc;
}

static void keep_future(sim_node *n, uint32_t from, const uint8_t *p, size_t len)
{
    if (n->n_future >= SIM_FUTURE_MAX) return;
    sim_future *f = &n->future[n->n_future++];
    f->from = from;
    kn_buf_reset(&f->msg);
    kn_buf_append(&f->msg, p, len);
}

static void on_proposal(sim_world *w, sim_node *n, uint32_t from, kn_cur *c, const uint8_t *whole,
                        size_t whole_len)
{
    cons_proposal p;
    const uint8_t *block;
    size_t len;
    if (cons_proposal_decode(c, &p) || kn_r_bin(c, &block, &len)) return;
    uint64_t h = cons_height(n->cons);
    if (p.height == h + 1) keep_future(n, from, whole, whole_len);
    if (p.height != h || cons_proposal_verify(&p, &w->vs, w->chain_id)) return;
    if (n->byz) sim_byz_saw_proposal(w, n, &p);
    if (!alive(w, n)) return;
    int rc = check_block(w, n, block, len, p.block_id);
    if (rc && w->debug)
        fprintf(stderr, "%6llu n%u rejects the proposal of h%llu r%u: %s\n",
                (unsigned long long)w->now_ms, n->id, (unsigned long long)p.height, p.round,
                kn_strerror(rc));
    if (!rc) sim_node_keep_proposal(n, p.block_id, block, len);
    cons_actions acts;
    cons_on_proposal(n->cons, &p, rc == 0, &acts);
    sim_node_run_actions(w, n, &acts);
}

static void on_vote(sim_world *w, sim_node *n, uint32_t from, kn_cur *c, const uint8_t *whole,
                    size_t whole_len)
{
    cons_vote v;
    if (cons_vote_decode(c, &v)) return;
    uint64_t h = cons_height(n->cons);
    if (v.height == h + 1) keep_future(n, from, whole, whole_len);
    if (v.height != h || cons_vote_verify(&v, &w->vs, w->chain_id)) return;
    cons_actions acts;
    cons_on_vote(n->cons, &v, &acts);
    sim_node_run_actions(w, n, &acts);
}

static void replay_future(sim_world *w, sim_node *n)
{
    uint32_t count = n->n_future;
    sim_future kept[SIM_FUTURE_MAX];
    memcpy(kept, n->future, sizeof kept);
    for (uint32_t i = 0; i < SIM_FUTURE_MAX; i++) n->future[i].msg = (kn_buf){0};
    n->n_future = 0;
    for (uint32_t i = 0; i < count && alive(w, n); i++)
        sim_node_on_message(w, n, kept[i].from, kept[i].msg.data, kept[i].msg.len);
    for (uint32_t i = 0; i < SIM_FUTURE_MAX; i++) kn_buf_free(&kept[i].msg);
}

static void start_height(sim_world *w, sim_node *n)
{
    n->value_pending = false;
    cons_actions acts;
    cons_start_height(n->cons, n->chain.height + 1, &acts);
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, SIM_MSG_STATUS);
    kn_w_uint(&msg, n->chain.height);
    sim_broadcast(w, n->id, &msg);
    kn_buf_free(&msg);
    sim_node_run_actions(w, n, &acts);
    if (alive(w, n)) replay_future(w, n);
}

static void restart_consensus(sim_world *w, sim_node *n)
{
    proposals_clear(n);
    start_height(w, n);
}

/* ---------------------------------------------------------------- catch-up */

static void ask_blocks(sim_world *w, sim_node *n, uint64_t margin)
{
    uint32_t ahead[SIM_NODES_MAX], k = 0;
    for (uint32_t i = 0; i < w->n_nodes; i++)
        if (i != n->id && n->peer_height[i] >= n->chain.height + margin) ahead[k++] = i;
    if (!k) return;
    /* A random peer that is ahead: the best one may be down or cut off. */
    uint32_t peer = ahead[sim_rng_below(&w->rng, k)];
    kn_buf msg = {0};
    kn_w_array(&msg, 3);
    kn_w_uint(&msg, SIM_MSG_GET_BLOCKS);
    kn_w_uint(&msg, n->chain.height + 1);
    kn_w_uint(&msg, SIM_CATCHUP_BLOCKS_MAX);
    sim_send(w, n->id, peer, &msg);
    kn_buf_free(&msg);
    n->catchup_asked_ms = w->now_ms;
}

static void catchup_check(sim_world *w, sim_node *n)
{
    if (n->catchup_asked_ms && w->now_ms - n->catchup_asked_ms < SIM_CATCHUP_RETRY_MS) return;
    /* One block ahead is usually a moment quicker; a stall or a gap means behind. */
    bool stalled = w->now_ms - n->last_commit_ms >= SIM_CATCHUP_RETRY_MS;
    ask_blocks(w, n, stalled ? 1 : 2);
}

static void on_get_blocks(sim_world *w, sim_node *n, uint32_t from, kn_cur *c)
{
    uint64_t first, count;
    if (kn_r_uint(c, &first) || kn_r_uint(c, &count) || first == 0) return;
    if (count > SIM_CATCHUP_BLOCKS_MAX) count = SIM_CATCHUP_BLOCKS_MAX;
    if (first > n->chain.height) return;
    if (n->chain.height - first + 1 < count) count = n->chain.height - first + 1;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    kn_buf body = {0};
    uint32_t sent = 0;
    for (uint64_t h = first; h < first + count; h++) {
        const uint8_t *block, *cert;
        size_t block_len, cert_len;
        if (ledger_block_get(t, h, &block, &block_len) || ledger_cert_get(t, h, &cert, &cert_len))
            break;
        kn_w_array(&body, 2);
        kn_w_bin(&body, block, block_len);
        kn_w_bin(&body, cert, cert_len);
        sent++;
    }
    store_abort(t);
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, SIM_MSG_BLOCKS);
    kn_w_array(&msg, sent);
    kn_buf_append(&msg, body.data, body.len);
    sim_send(w, n->id, from, &msg);
    kn_buf_free(&msg);
    kn_buf_free(&body);
}

#define ALREADY_HAVE 1

static int apply_fetched(sim_world *w, sim_node *n, const uint8_t *block, size_t block_len,
                         const uint8_t *cert_p, size_t cert_len)
{
    kn_cur c = kn_cur_make(cert_p, cert_len);
    cons_cert cert;
    if (cons_cert_decode(&c, &cert) || c.left) return KN_EBADCERT;
    if (cert.height <= n->chain.height) return ALREADY_HAVE;
    if (cert.height != n->chain.height + 1) return KN_EBADCERT;
    int rc = cons_cert_verify(&cert, &w->vs, w->chain_id);
    if (!rc) rc = check_block(w, n, block, block_len, cert.block_id);
    if (!rc) rc = commit_block(w, n, block, block_len, cert_p, cert_len, false);
    return rc;
}

static void on_blocks(sim_world *w, sim_node *n, kn_cur *c)
{
    uint32_t count, applied = 0;
    if (kn_r_array(c, &count)) return;
    int rc = 0;
    for (uint32_t i = 0; i < count && !rc && alive(w, n); i++) {
        uint32_t pair;
        const uint8_t *block, *cert;
        size_t block_len, cert_len;
        if (kn_r_array(c, &pair) || pair != 2 || kn_r_bin(c, &block, &block_len) ||
            kn_r_bin(c, &cert, &cert_len))
            break;
        rc = apply_fetched(w, n, block, block_len, cert, cert_len);
        if (rc == ALREADY_HAVE) rc = 0;
        else if (!rc) applied++;
    }
    n->catchup_asked_ms = 0;
    if (applied && alive(w, n)) restart_consensus(w, n);
}

/* ---------------------------------------------------------------- mempool */

static void admit(sim_world *w, sim_node *n, const uint8_t *p, size_t len, bool gossip)
{
    static ledger_tx tx;
    if (n->mempool_n >= SIM_MEMPOOL_MAX || ledger_tx_decode(p, len, &tx) ||
        ledger_tx_verify(&tx, w->chain_id))
        return;
    for (uint32_t i = 0; i < n->mempool_n; i++)
        if (memcmp(n->mempool[i].id, tx.id, KN_HASH_BYTES) == 0) return;
    store_txn *t;
    ledger_tx_record rec;
    if (store_begin(n->store, false, &t)) return;
    bool committed = ledger_tx_record_get(t, tx.id, &rec) == 0;
    store_abort(t);
    if (committed) return;
    sim_mp_entry *e = &n->mempool[n->mempool_n++];
    memcpy(e->id, tx.id, KN_HASH_BYTES);
    e->expiry_height = tx.expiry_height;
    kn_buf_reset(&e->bytes);
    kn_buf_append(&e->bytes, p, len);
    if (!gossip) return;
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, SIM_MSG_TX);
    kn_w_bin(&msg, p, len);
    sim_broadcast(w, n->id, &msg);
    kn_buf_free(&msg);
}

void sim_node_submit(sim_world *w, sim_node *n, const uint8_t *tx, size_t len)
{
    admit(w, n, tx, len, true);
    maybe_build(w, n);
}

/* ---------------------------------------------------------------- entry points */

void sim_node_on_message(sim_world *w, sim_node *n, uint32_t from, const uint8_t *p, size_t len)
{
    if (!alive(w, n)) return;
    kn_cur c = kn_cur_make(p, len);
    uint32_t fields;
    uint64_t type, height;
    const uint8_t *tx;
    size_t tx_len;
    if (kn_r_array(&c, &fields) || kn_r_uint(&c, &type)) return;
    switch (type) {
    case SIM_MSG_PROPOSAL: on_proposal(w, n, from, &c, p, len); break;
    case SIM_MSG_VOTE: on_vote(w, n, from, &c, p, len); break;
    case SIM_MSG_STATUS:
        if (kn_r_uint(&c, &height)) return;
        n->peer_height[from] = height;
        catchup_check(w, n);
        break;
    case SIM_MSG_GET_BLOCKS: on_get_blocks(w, n, from, &c); break;
    case SIM_MSG_BLOCKS: on_blocks(w, n, &c); break;
    case SIM_MSG_TX:
        if (kn_r_bin(&c, &tx, &tx_len)) return;
        admit(w, n, tx, tx_len, false);
        break;
    default: break;
    }
}

void sim_node_on_timeout(sim_world *w, sim_node *n, const sim_event *ev)
{
    cons_actions acts;
    cons_on_timeout(n->cons, ev->step, ev->height, ev->round, &acts);
    sim_node_run_actions(w, n, &acts);
}

void sim_node_tick(sim_world *w, sim_node *n)
{
    maybe_build(w, n);
    if (!alive(w, n)) return;
    if (w->now_ms - n->last_status_ms >= SIM_STATUS_MS) {
        n->last_status_ms = w->now_ms;
        kn_buf msg = {0};
        kn_w_array(&msg, 2);
        kn_w_uint(&msg, SIM_MSG_STATUS);
        kn_w_uint(&msg, n->chain.height);
        sim_broadcast(w, n->id, &msg);
        kn_buf_free(&msg);
    }
    catchup_check(w, n);
    /* Lost messages are not retransmitted by the network: while the height
     * stalls, repeat what we said in it, as the daemon does: the latest
     * proposal, every vote of the height, the proof of the valid value. */
    if (w->now_ms - n->last_commit_ms < 2u * SIM_HEARTBEAT_MS) return;
    if (w->now_ms - n->last_repeat_ms < SIM_HEARTBEAT_MS) return;
    n->last_repeat_ms = w->now_ms;
    if (n->own_proposal.len) sim_broadcast(w, n->id, &n->own_proposal);
    cons_vote proof[CONS_VALIDATORS_MAX];
    uint32_t n_proof = cons_valid_proof(n->cons, proof);
    kn_buf msg = {0};
    for (uint32_t i = 0; i < n->n_own_votes; i++) {
        sim_encode_vote_msg(&n->own_votes[i], &msg);
        sim_broadcast(w, n->id, &msg);
    }
    for (uint32_t i = 0; i < n_proof; i++) {
        if (proof[i].validator == n->validator) continue;
        sim_encode_vote_msg(&proof[i], &msg);
        sim_broadcast(w, n->id, &msg);
    }
    kn_buf_free(&msg);
}

/* After a restart: the stored valid block of height h back in the cache (one
 * of an older height would only take a slot). */
static void load_valid_block(sim_node *n, store_txn *t, uint64_t h)
{
    uint32_t round, n_proof;
    ledger_slice block;
    ledger_block_view v;
    cons_vote proof[CONS_VALIDATORS_MAX];
    if (ledger_valid_value_get(t, &round, &block, proof, &n_proof) ||
        ledger_block_decode(block.p, block.n, &v))
        return;
    if (v.hdr.height == h) {
        sim_node_keep_proposal(n, v.block_id, block.p, block.n);
        memcpy(n->stored_valid_id, v.block_id, KN_HASH_BYTES);
    }
    ledger_block_view_free(&v);
}

static void feed_vote(sim_world *w, sim_node *n, const cons_vote *v)
{
    cons_actions acts;
    cons_on_vote(n->cons, v, &acts);
    sim_node_run_actions(w, n, &acts);
}

/* After a restart, as the daemon does: signs again the votes cast at the
 * resumed height and feeds them to the core and to the repeat list, then feeds
 * the stored proof of the valid value. */
static void resume_votes(sim_world *w, sim_node *n)
{
    store_txn *t;
    cons_vote votes[SIM_OWN_VOTES_MAX + CONS_ACTIONS_MAX], proof[CONS_VALIDATORS_MAX];
    uint32_t count = 0, n_proof = 0, round;
    ledger_slice block;
    if (store_begin(n->store, false, &t)) return;
    uint32_t cap = (uint32_t)(sizeof votes / sizeof votes[0]);
    int rc = ledger_own_votes_get(t, cons_height(n->cons), votes, cap, &count);
    if (!rc && ledger_valid_value_get(t, &round, &block, proof, &n_proof)) n_proof = 0;
    store_abort(t);
    for (uint32_t i = 0; !rc && i < count && alive(w, n); i++) {
        votes[i].validator = n->validator;
        cons_vote_sign(&votes[i], &w->vkeys[n->validator], w->chain_id);
        keep_own_vote(n, &votes[i]);
        feed_vote(w, n, &votes[i]);
    }
    for (uint32_t i = 0; i < n_proof && alive(w, n); i++)
        if (proof[i].height == cons_height(n->cons) &&
            cons_vote_verify(&proof[i], &w->vs, w->chain_id) == 0)
            feed_vote(w, n, &proof[i]);
}

int sim_node_start(sim_world *w, sim_node *n)
{
    int rc = store_open(n->dir, SIM_MAP_BYTES, &n->store);
    if (rc) return rc;
    n->cons = cons_new(&w->vs, n->validator, &w->timeouts);
    KN_REQUIRE(n->cons != NULL);
    store_txn *t;
    rc = store_begin(n->store, false, &t);
    if (rc) return rc;
    rc = ledger_chain_get(t, &n->chain);
    cons_safety s;
    memset(n->stored_valid_id, 0, KN_HASH_BYTES);
    proposals_clear(n);
    if (!rc && ledger_safety_get(t, &s) == 0 && s.height == n->chain.height + 1) {
        cons_restore(n->cons, &s);
        load_valid_block(n, t, s.height);
    }
    store_abort(t);
    if (rc) return rc;
    n->up = true;
    n->crash_pending = false;
    n->last_commit_ms = w->now_ms;
    n->last_repeat_ms = n->last_status_ms = n->catchup_asked_ms = 0;
    memset(n->peer_height, 0, sizeof n->peer_height);
    start_height(w, n);
    if (alive(w, n)) resume_votes(w, n);
    return 0;
}

void sim_node_stop(sim_world *w, sim_node *n)
{
    (void)w;
    cons_free(n->cons);
    n->cons = NULL;
    store_close(n->store);
    n->store = NULL;
    n->up = false;
    n->crash_pending = false;
    /* Everything in memory is lost: mempool, cached proposals, early messages. */
    n->mempool_n = 0;
    n->n_future = 0;
    n->value_pending = false;
    proposals_clear(n);
}
