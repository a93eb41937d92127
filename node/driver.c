/* The consensus driver: carries the core's actions out (persist, sign, send,
 * schedule, build, commit) and feeds it the peers' proposals and votes.
 *
 * Durability before speech: before any proposal or vote of an action list
 * leaves the node, the core's safety state and the record of the last thing
 * signed are written in one durable store transaction. The signing guard
 * refuses to sign anything that goes back in (height, round, step), or that
 * differs from what was signed at the same point: after a crash the node can
 * repeat itself but never contradict itself. */
#include "node/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char last_signed_key[] = "last_signed";

typedef struct cons_timer {
    uv_timer_t handle;
    node *n;
    struct cons_timer *prev, *next; /* in n->timers, so shutdown can close them */
    uint8_t step;
    uint64_t height;
    uint32_t round;
} cons_timer;

static void run_actions(node *n, cons_actions *acts);
static void start_height(node *n);
static node__proposal *proposal_find(node *n, const uint8_t id[KN_HASH_BYTES]);

/* ---------------------------------------------------------------- signing guard */

static int signed_cmp(const node__signed *a, const node__signed *b)
{
    if (a->height != b->height) return a->height < b->height ? -1 : 1;
    if (a->round != b->round) return a->round < b->round ? -1 : 1;
    if (a->step != b->step) return a->step < b->step ? -1 : 1;
    return 0;
}

bool node__may_sign(const node__signed *last, const node__signed *next)
{
    int cmp = signed_cmp(next, last);
    if (cmp > 0) return true;
    return cmp == 0 && next->nil == last->nil &&
           memcmp(next->block_id, last->block_id, KN_HASH_BYTES) == 0;
}

static void encode_signed(const node__signed *s, kn_buf *b)
{
    kn_w_array(b, 4);
    kn_w_uint(b, s->height);
    kn_w_uint(b, s->round);
    kn_w_uint(b, s->step);
    if (s->nil) kn_w_nil(b);
    else kn_w_bin(b, s->block_id, KN_HASH_BYTES);
}

static int decode_signed(const uint8_t *p, size_t len, node__signed *s)
{
    kn_cur c = kn_cur_make(p, len);
    uint32_t n;
    uint64_t round, step;
    memset(s, 0, sizeof *s);
    if (kn_r_array(&c, &n) || n != 4 || kn_r_uint(&c, &s->height) || kn_r_uint(&c, &round) ||
        kn_r_uint(&c, &step) || round > UINT32_MAX || step > 3)
        return KN_EDECODE;
    s->round = (uint32_t)round;
    s->step = (uint8_t)step;
    s->nil = kn_r_nil(&c);
    if (!s->nil && kn_r_bin_fixed(&c, s->block_id, KN_HASH_BYTES)) return KN_EDECODE;
    return 0;
}

static node__signed signed_of(const cons_action *a)
{
    node__signed s = {0};
    if (a->kind == CONS_ACT_BROADCAST_PROPOSAL) {
        s.height = a->u.proposal.height;
        s.round = a->u.proposal.round;
        s.step = 1;
        memcpy(s.block_id, a->u.proposal.block_id, KN_HASH_BYTES);
    } else {
        s.height = a->u.vote.height;
        s.round = a->u.vote.round;
        s.step = a->u.vote.type == CONS_PREVOTE ? 2 : 3;
        s.nil = a->u.vote.nil;
        memcpy(s.block_id, a->u.vote.block_id, KN_HASH_BYTES);
    }
    return s;
}

/* The valid block's bytes when the core's valid value changed since they were
 * last stored, else NULL. */
static node__proposal *valid_block_to_store(node *n, const cons_safety *s)
{
    if (s->valid_round < 0 || memcmp(s->valid_block, n->stored_valid_id, KN_HASH_BYTES) == 0)
        return NULL;
    return proposal_find(n, s->valid_block);
}

/* Writes the core's safety state, the signing record, the votes of this
 * height and the valid block, durably and together. */
static int persist_safety(node *n, const node__signed *last, const cons_actions *acts)
{
    cons_safety s;
    cons_safety_get(n->cons, &s);
    node__proposal *valid = valid_block_to_store(n, &s);
    cons_vote proof[CONS_VALIDATORS_MAX];
    ledger_valid_value value = {0};
    if (valid)
        value = (ledger_valid_value){{valid->block.data, valid->block.len}, proof,
                                     cons_valid_proof(n->cons, proof)};
    kn_buf b = {0};
    encode_signed(last, &b);
    store_txn *t;
    int rc = store_begin(n->store, true, &t);
    if (rc) goto out;
    rc = store_put(t, STORE_META, last_signed_key, sizeof last_signed_key - 1, b.data, b.len);
    if (!rc)
        rc = ledger_restart_put(t, &s, n->own_votes, n->n_own_votes, acts, valid ? &value : NULL);
    rc = rc ? (store_abort(t), rc) : store_commit(t);
    if (!rc && valid) memcpy(n->stored_valid_id, s.valid_block, KN_HASH_BYTES);
out:
    kn_buf_free(&b);
    return rc;
}

/* Persists before speech, and marks the actions that may not be carried out
 * (kind 0): those the signing guard refuses, and every broadcast when the
 * safety state could not be made durable. */
static void prepare_speech(node *n, cons_actions *acts)
{
    node__signed last = n->last_signed;
    bool speaks = false;
    for (uint32_t i = 0; i < acts->n; i++) {
        cons_action *a = &acts->a[i];
        if (a->kind != CONS_ACT_BROADCAST_PROPOSAL && a->kind != CONS_ACT_BROADCAST_VOTE)
            continue;
        node__signed next = signed_of(a);
        if (!node__may_sign(&last, &next)) {
            KN_ERROR("cons", "refusing to sign a conflicting message",
                     "height=%llu round=%u step=%u", (unsigned long long)next.height, next.round,
                     next.step);
            a->kind = 0;
            continue;
        }
        last = next;
        speaks = true;
    }
    if (!speaks) return;
    NODE_CRASH(BEFORE_PERSIST);
    int rc = persist_safety(n, &last, acts);
    if (rc) {
        KN_ERROR("cons", "cannot persist safety state: staying silent", "err=%s",
                 kn_strerror(rc));
        for (uint32_t i = 0; i < acts->n; i++)
            if (acts->a[i].kind == CONS_ACT_BROADCAST_PROPOSAL ||
                acts->a[i].kind == CONS_ACT_BROADCAST_VOTE)
                acts->a[i].kind = 0;
        return;
    }
    n->last_signed = last;
    NODE_CRASH(AFTER_PERSIST);
}

/* ---------------------------------------------------------------- proposals cache */

static node__proposal *proposal_find(node *n, const uint8_t id[KN_HASH_BYTES])
{
    for (int i = 0; i < NODE_PROPOSALS_MAX; i++)
        if (n->proposals[i].used && memcmp(n->proposals[i].block_id, id, KN_HASH_BYTES) == 0)
            return &n->proposals[i];
    return NULL;
}

static node__proposal *proposal_of_round(node *n, uint32_t round)
{
    for (int i = 0; i < NODE_PROPOSALS_MAX; i++)
        if (n->proposals[i].used && n->proposals[i].round == round) return &n->proposals[i];
    return NULL;
}

/* A slot for a new round's block: a free one, else the oldest round before the
 * current one that holds neither the locked nor the valid value. NULL when every
 * block kept may still be decided. */
static node__proposal *proposal_slot(node *n)
{
    cons_safety s;
    cons_safety_get(n->cons, &s);
    node__proposal *oldest = NULL;
    for (int i = 0; i < NODE_PROPOSALS_MAX; i++) {
        node__proposal *p = &n->proposals[i];
        if (!p->used) return p;
        bool needed = p->round >= cons_round(n->cons) ||
                      (s.locked_round >= 0 && memcmp(p->block_id, s.locked_block, KN_HASH_BYTES) == 0) ||
                      (s.valid_round >= 0 && memcmp(p->block_id, s.valid_block, KN_HASH_BYTES) == 0);
        if (!needed && (!oldest || p->round < oldest->round)) oldest = p;
    }
    return oldest;
}

/* Keeps the block proposed in a round: one block per round, the first one (the
 * core, too, takes only the first proposal of a round). */
static void proposal_keep(node *n, uint32_t round, const uint8_t id[KN_HASH_BYTES],
                          const uint8_t *p, size_t len)
{
    if (proposal_find(n, id) || proposal_of_round(n, round)) return;
    node__proposal *slot = proposal_slot(n);
    if (!slot) return;
    kn_buf_reset(&slot->block);
    kn_buf_append(&slot->block, p, len);
    memcpy(slot->block_id, id, KN_HASH_BYTES);
    slot->round = round;
    slot->used = true;
}

static void proposals_clear(node *n)
{
    for (int i = 0; i < NODE_PROPOSALS_MAX; i++) n->proposals[i].used = false;
    kn_buf_reset(&n->own_proposal);
    n->n_own_votes = 0;
}

/* ---------------------------------------------------------------- actions */

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void timer_close(cons_timer *t)
{
    node *n = t->n;
    if (t->prev) t->prev->next = t->next;
    else n->timers = t->next;
    if (t->next) t->next->prev = t->prev;
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}


/* Names of the validators missing from mask, comma separated. */
static void missing_names(const node *n, uint64_t mask, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n->cfg->valset.n && len < cap; i++)
        if (!(mask >> i & 1))
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                                    n->cfg->validators[i].name);
}

/* Says why a round ended without a decision and whom it waited for. masks are
 * the prevotes and precommits seen in the round that ended. */
static void note_round_change(node *n, const cons_timer *t, uint64_t prevotes, uint64_t precommits)
{
    n->health.round_changes++;
    char waited[512];
    const char *reason = "no proposal in time";
    if (t->step == CONS_STEP_PROPOSE) {
        uint32_t proposer = cons_proposer(&n->cfg->valset, t->height, t->round);
        snprintf(waited, sizeof waited, "%s", n->cfg->validators[proposer].name);
    } else {
        reason = t->step == CONS_STEP_PREVOTE ? "no prevote quorum for one block"
                                              : "no precommit quorum for one block";
        missing_names(n, t->step == CONS_STEP_PREVOTE ? prevotes : precommits, waited,
                      sizeof waited);
    }
    KN_WARN("cons", "round change",
            "height=%llu from_round=%u to_round=%u reason=\"%s\" waiting_for=%s",
            (unsigned long long)t->height, t->round, cons_round(n->cons), reason,
            waited[0] ? waited : "-");
}

static void timer_fired(uv_timer_t *h)
{
    cons_timer *t = h->data;
    node *n = t->n;
    cons_actions acts;
    uint32_t round = cons_round(n->cons);
    uint64_t prevotes = cons_voted_mask(n->cons, CONS_PREVOTE);
    uint64_t precommits = cons_voted_mask(n->cons, CONS_PRECOMMIT);
    cons_on_timeout(n->cons, t->step, t->height, t->round, &acts);
    if (cons_round(n->cons) != round) note_round_change(n, t, prevotes, precommits);
    timer_close(t);
    run_actions(n, &acts);
}

static void schedule_timeout(node *n, const cons_action *a)
{
    cons_timer *t = calloc(1, sizeof *t);
    KN_REQUIRE(t != NULL);
    t->n = n;
    t->step = a->u.timeout.step;
    t->height = a->u.timeout.height;
    t->round = a->u.timeout.round;
    KN_REQUIRE(uv_timer_init(&n->loop, &t->handle) == 0);
    t->handle.data = t;
    t->next = n->timers;
    if (n->timers) n->timers->prev = t;
    n->timers = t;
    KN_REQUIRE(uv_timer_start(&t->handle, timer_fired, a->u.timeout.duration_ms, 0) == 0);
}

static void speak_proposal(node *n, cons_proposal *p)
{
    node__proposal *prop = proposal_find(n, p->block_id);
    if (!prop) {
        KN_ERROR("cons", "own proposal block missing", "height=%llu", (unsigned long long)p->height);
        return;
    }
    cons_proposal_sign(p, &n->cfg->key, n->chain_id);
    kn_buf *msg = &n->own_proposal;
    kn_buf_reset(msg);
    kn_w_array(msg, 3);
    kn_w_uint(msg, NODE_MSG_PROPOSAL);
    cons_proposal_encode(p, msg);
    kn_w_bin(msg, prop->block.data, prop->block.len);
    node__broadcast(n, msg);
    NODE_CRASH(AFTER_SEND);
    KN_INFO("cons", "proposed block", "height=%llu round=%u", (unsigned long long)p->height,
            p->round);
    cons_actions acts;
    cons_on_proposal(n->cons, p, true, &acts);
    run_actions(n, &acts);
}

static void vote_msg(const cons_vote *v, kn_buf *msg)
{
    kn_buf_reset(msg);
    kn_w_array(msg, 2);
    kn_w_uint(msg, NODE_MSG_VOTE);
    cons_vote_encode(v, msg);
}

/* Remembers a signed vote of this height (the oldest goes when full). */
static void keep_own_vote(node *n, const cons_vote *v)
{
    if (n->n_own_votes == NODE_OWN_VOTES_MAX) {
        memmove(&n->own_votes[0], &n->own_votes[1], sizeof n->own_votes[0] * (NODE_OWN_VOTES_MAX - 1));
        n->n_own_votes--;
    }
    n->own_votes[n->n_own_votes++] = *v;
}

static void speak_vote(node *n, cons_vote *v)
{
    cons_vote_sign(v, &n->cfg->key, n->chain_id);
    keep_own_vote(n, v);
    kn_buf msg = {0};
    vote_msg(v, &msg);
    node__broadcast(n, &msg);
    kn_buf_free(&msg);
    NODE_CRASH(AFTER_SEND);
    cons_actions acts;
    cons_on_vote(n->cons, v, &acts);
    run_actions(n, &acts);
}

static void commit_decided(node *n, const cons_action *a)
{
    node__proposal *prop = proposal_find(n, a->u.commit.block_id);
    cons_cert cert;
    if (!prop) {
        /* The core decides only on a proposal it was given, but the block may
         * have left the cache; peers that committed it will serve it. */
        KN_ERROR("cons", "decided block is not cached: fetching it from peers", "height=%llu",
                 (unsigned long long)a->u.commit.height);
        n->catchup_asked_ms = 0;
        return;
    }
    KN_REQUIRE(cons_commit_cert(n->cons, &cert) == 0);
    kn_buf cert_bytes = {0}, block = {0};
    cons_cert_encode(&cert, &cert_bytes);
    /* Committing clears the proposal cache, so keep the block bytes aside. */
    kn_buf_append(&block, prop->block.data, prop->block.len);
    int rc = node__commit_block(n, block.data, block.len, cert_bytes.data, cert_bytes.len, true);
    if (rc)
        KN_ERROR("cons", "cannot commit decided block", "height=%llu err=%s",
                 (unsigned long long)a->u.commit.height, kn_strerror(rc));
    kn_buf_free(&cert_bytes);
    kn_buf_free(&block);
}

/* Puts the evidence of an equivocation on the ledger: the canonical
 * transaction (every node that saw it builds the same id, so the mempools
 * deduplicate it) into our mempool and out to the peers. */
static void submit_evidence(node *n, const cons_action *a)
{
    static ledger_tx tx; /* loop thread only; too large for the stack */
    ledger_evidence_tx(&tx, n->chain_id, &a->u.evidence.a, &a->u.evidence.b);
    int rc = node__submit_own(n, &tx);
    if (rc && rc != KN_EEVIDENCEKNOWN && rc != KN_EDUPTX)
        KN_WARN("cons", "evidence transaction not admitted", "height=%llu err=%s",
                (unsigned long long)a->u.evidence.a.height, kn_errname(rc));
}

static void run_actions(node *n, cons_actions *acts)
{
    if (n->stopping) return;
    prepare_speech(n, acts);
    uint64_t height = cons_height(n->cons);
    for (uint32_t i = 0; i < acts->n; i++) {
        cons_action *a = &acts->a[i];
        /* An earlier action may have led to a commit (through our own vote fed
         * back); what this list still says for the old height is moot. */
        bool speech = a->kind == CONS_ACT_BROADCAST_PROPOSAL || a->kind == CONS_ACT_BROADCAST_VOTE;
        if (n->stopping || (speech && cons_height(n->cons) != height)) continue;
        switch (a->kind) {
        case CONS_ACT_BROADCAST_PROPOSAL: speak_proposal(n, &a->u.proposal); break;
        case CONS_ACT_BROADCAST_VOTE: speak_vote(n, &a->u.vote); break;
        case CONS_ACT_SCHEDULE_TIMEOUT: schedule_timeout(n, a); break;
        case CONS_ACT_NEED_VALUE:
            n->value_pending = true;
            n->value_height = a->u.need_value.height;
            n->value_round = a->u.need_value.round;
            node__maybe_build(n);
            break;
        case CONS_ACT_COMMIT: commit_decided(n, a); break;
        case CONS_ACT_EVIDENCE:
            node__health_on_evidence(n, &a->u.evidence.a);
            node__events_evidence(n, &a->u.evidence.a);
            KN_WARN("cons", "equivocation: two conflicting votes from one validator",
                    "validator=%s height=%llu round=%u",
                    n->cfg->validators[a->u.evidence.a.validator].name,
                    (unsigned long long)a->u.evidence.a.height, a->u.evidence.a.round);
            submit_evidence(n, a);
            break;
        default: break; /* refused by the signing guard */
        }
    }
}

/* ---------------------------------------------------------------- building */

/* Collects mempool transactions for a block at height h. */
static uint32_t collect_txs(node *n, uint64_t h, ledger_slice *txs, uint8_t (*ids)[KN_HASH_BYTES])
{
    uint32_t count = 0;
    size_t bytes = 0;
    for (node__mp_entry *e = n->mempool.head; e && count < n->cfg->block_txs_max; e = e->next) {
        if (e->expiry_height < h) continue;
        if (bytes + e->len + 64 > LEDGER_BLOCK_BYTES_MAX / 2) break;
        txs[count].p = e->bytes;
        txs[count].n = e->len;
        memcpy(ids[count], e->id, KN_HASH_BYTES);
        bytes += e->len;
        count++;
    }
    return count;
}

static void build_value(node *n)
{
    uint64_t h = n->value_height;
    ledger_header hdr = {0};
    memcpy(hdr.chain_id, n->chain_id, strlen(n->chain_id) + 1);
    hdr.height = h;
    hdr.time_ms = kn_now_ms();
    if (hdr.time_ms <= n->chain.last_time_ms) hdr.time_ms = n->chain.last_time_ms + 1;
    memcpy(hdr.prev_id, n->chain.last_block_id, KN_HASH_BYTES);
    memcpy(hdr.state_hash, n->chain.state_hash, KN_HASH_BYTES);
    hdr.proposer = n->cfg->self;

    uint32_t max = n->cfg->block_txs_max;
    ledger_slice *txs = malloc(sizeof *txs * max);
    uint8_t(*ids)[KN_HASH_BYTES] = malloc(KN_HASH_BYTES * (size_t)max);
    KN_REQUIRE(txs != NULL && ids != NULL);
    uint32_t count = collect_txs(n, h, txs, ids);

    store_txn *t = NULL;
    ledger_slice cert = {NULL, 0};
    if (h > 1 && (store_begin(n->store, false, &t) || ledger_cert_get(t, h - 1, &cert.p, &cert.n))) {
        KN_ERROR("cons", "cannot read the previous certificate", "height=%llu",
                 (unsigned long long)h - 1);
        if (t) store_abort(t);
        free(txs);
        free(ids);
        return;
    }
    kn_buf block = {0};
    uint8_t block_id[KN_HASH_BYTES];
    ledger_block_build(&hdr, txs, (const uint8_t(*)[KN_HASH_BYTES])ids, count, &cert, &block,
                       block_id);
    if (t) store_abort(t);
    free(txs);
    free(ids);
    proposal_keep(n, n->value_round, block_id, block.data, block.len);
    kn_buf_free(&block);

    n->value_pending = false;
    cons_actions acts;
    cons_on_value(n->cons, h, n->value_round, block_id, &acts);
    run_actions(n, &acts);
}

void node__maybe_build(node *n)
{
    if (!n->value_pending || n->stopping) return;
    if (n->value_height != cons_height(n->cons) || n->value_round != cons_round(n->cons)) {
        n->value_pending = false;
        return;
    }
    /* Propose at once in a later round (time was lost already). Transactions
     * waiting are proposed at once too, unless more are still being verified:
     * then the block waits for them a little (NODE_BLOCK_FILL_MS after the
     * last commit), so that a busy node makes fewer, fuller blocks, each one
     * a durable commit less. Otherwise an empty block keeps the heartbeat. */
    uint64_t since_commit = kn_mono_ms() - n->last_commit_mono_ms;
    bool fill = node__verifying(n) && n->mempool.count < n->cfg->block_txs_max &&
                since_commit < NODE_BLOCK_FILL_MS;
    bool due = (n->mempool.count > 0 && !fill) || n->value_round > 0 ||
               since_commit >= n->cfg->heartbeat_ms;
    if (due) build_value(n);
}

/* ---------------------------------------------------------------- receiving */

static int check_txs(node *n, const ledger_block_view *v, uint8_t (*ids)[KN_HASH_BYTES])
{
    static ledger_tx tx; /* loop thread only */
    for (uint32_t i = 0; i < v->hdr.n_txs; i++) {
        int rc = ledger_tx_decode(v->txs[i].p, v->txs[i].n, &tx);
        if (rc) return KN_EBADBLOCK;
        memcpy(ids[i], tx.id, KN_HASH_BYTES);
        /* The mempool holds only transactions whose signatures were checked;
         * the id covers the body alone, so the bytes must match too. */
        node__mp_entry *e = node__mempool_find(&n->mempool, tx.id);
        if (e && e->len == v->txs[i].n && memcmp(e->bytes, v->txs[i].p, e->len) == 0) continue;
        if (ledger_tx_verify(&tx, n->chain_id)) return KN_EBADBLOCK;
    }
    return 0;
}

int node__check_block(node *n, const uint8_t *block, size_t len,
                      const uint8_t expected_id[KN_HASH_BYTES], uint8_t (**ids_out)[KN_HASH_BYTES])
{
    ledger_block_view v;
    int rc = ledger_block_decode(block, len, &v);
    if (rc) return rc;
    uint8_t(*ids)[KN_HASH_BYTES] = malloc(KN_HASH_BYTES * (size_t)(v.hdr.n_txs + 1));
    KN_REQUIRE(ids != NULL);
    if (memcmp(v.block_id, expected_id, KN_HASH_BYTES) != 0) rc = KN_EBADBLOCK;
    else if (v.hdr.time_ms > kn_now_ms() + n->cfg->drift_ms) rc = KN_EBADBLOCK;
    if (!rc) rc = check_txs(n, &v, ids);
    if (!rc)
        rc = ledger_block_check(&v, &n->chain, &n->cfg->valset, n->chain_id,
                                (const uint8_t(*)[KN_HASH_BYTES])ids);
    ledger_block_view_free(&v);
    if (rc) {
        free(ids);
        return rc;
    }
    *ids_out = ids;
    return 0;
}

/* Keeps a verified message for the next height, to be replayed when it starts:
 * peers that committed a moment before us are already voting in it. One entry
 * per (kind, validator, round, vote type), so repeats replace rather than pile
 * up, and a byte budget besides the count. */
static void keep_future(node *n, uint8_t type, uint32_t validator, uint32_t round, uint8_t vote_type,
                        kn_cur whole)
{
    node__future *f = NULL;
    for (uint32_t i = 0; i < n->n_future && !f; i++) {
        node__future *e = &n->future[i];
        if (e->type == type && e->validator == validator && e->round == round &&
            e->vote_type == vote_type)
            f = e;
    }
    size_t old = f ? f->msg.len : 0;
    if (n->future_bytes - old + whole.left > NODE_FUTURE_BYTES_MAX) return;
    if (!f) {
        if (n->n_future >= NODE_FUTURE_MAX) return;
        f = &n->future[n->n_future++];
        f->type = type;
        f->validator = validator;
        f->round = round;
        f->vote_type = vote_type;
    }
    n->future_bytes = n->future_bytes - old + whole.left;
    kn_buf_reset(&f->msg);
    kn_buf_append(&f->msg, whole.p, whole.left);
}

void node__on_proposal_msg(node *n, uint32_t peer, kn_cur *c)
{
    kn_cur whole = *c;
    cons_proposal p;
    const uint8_t *block;
    size_t len;
    if (cons_proposal_decode(c, &p) || kn_r_bin(c, &block, &len)) return;
    uint64_t h = cons_height(n->cons);
    if (p.height != h && p.height != h + 1) return;
    /* Cheap checks first: only the round's proposer may propose, and only with
     * its own signature. */
    if (p.proposer != cons_proposer(&n->cfg->valset, p.height, p.round)) return;
    if (cons_proposal_verify(&p, &n->cfg->valset, n->chain_id)) {
        KN_WARN("cons", "proposal with a bad signature", "peer=%s", n->cfg->validators[peer].name);
        return;
    }
    if (p.height == h + 1) {
        keep_future(n, NODE_MSG_PROPOSAL, p.proposer, p.round, 0, whole);
        return;
    }
    int rc = 0;
    if (!proposal_find(n, p.block_id)) { /* a repeat of a block already judged is not checked again */
        node__proposal *same_round = proposal_of_round(n, p.round);
        if (same_round) return; /* a second block for one round: the core keeps the first */
        uint8_t(*ids)[KN_HASH_BYTES] = NULL;
        rc = node__check_block(n, block, len, p.block_id, &ids);
        free(ids);
        if (rc)
            KN_WARN("cons", "invalid proposed block", "peer=%s height=%llu round=%u err=%s",
                    n->cfg->validators[peer].name, (unsigned long long)p.height, p.round,
                    kn_strerror(rc));
        else
            proposal_keep(n, p.round, p.block_id, block, len);
    }
    cons_actions acts;
    cons_on_proposal(n->cons, &p, rc == 0, &acts);
    run_actions(n, &acts);
}

void node__on_vote_msg(node *n, uint32_t peer, kn_cur *c)
{
    kn_cur whole = *c;
    cons_vote v;
    if (cons_vote_decode(c, &v)) return;
    uint64_t h = cons_height(n->cons);
    bool late = v.height + 1 == h && v.height == n->chain.height;
    if (v.height != h && v.height != h + 1 && !late) return;
    if (cons_vote_verify(&v, &n->cfg->valset, n->chain_id)) {
        KN_WARN("cons", "vote with a bad signature", "peer=%s", n->cfg->validators[peer].name);
        return;
    }
    n->peer[v.validator].vote_height = v.height;
    n->peer[v.validator].vote_round = v.round;
    if (v.height == h + 1) {
        keep_future(n, NODE_MSG_VOTE, v.validator, v.round, v.type, whole);
        return;
    }
    if (late) {
        node__health_late_precommit(n, &v);
        return;
    }
    cons_actions acts;
    cons_on_vote(n->cons, &v, &acts);
    run_actions(n, &acts);
}

/* Replays the kept messages into the height that just started. The buffer is
 * emptied first: replaying may keep new messages for the height after. */
static void replay_future(node *n)
{
    uint32_t count = n->n_future;
    node__future *pending = malloc(sizeof *pending * (count + 1));
    KN_REQUIRE(pending != NULL);
    memcpy(pending, n->future, sizeof *pending * count);
    memset(n->future, 0, sizeof n->future[0] * count);
    n->n_future = 0;
    n->future_bytes = 0;
    for (uint32_t i = 0; i < count; i++) {
        kn_cur c = kn_cur_make(pending[i].msg.data, pending[i].msg.len);
        if (!n->stopping && pending[i].type == NODE_MSG_VOTE)
            node__on_vote_msg(n, pending[i].validator, &c);
        else if (!n->stopping)
            node__on_proposal_msg(n, pending[i].validator, &c);
        kn_buf_free(&pending[i].msg);
    }
    free(pending);
}

/* ---------------------------------------------------------------- commit */

static int execute(node *n, const ledger_block_view *v, const uint8_t *block, size_t block_len,
                   const ledger_tx *txs, const uint8_t *cert, size_t cert_len)
{
    store_txn *t;
    int rc = store_begin(n->store, true, &t);
    if (rc) return rc;
    rc = ledger_block_execute(t, v, block, block_len, txs, cert, cert_len);
    if (rc) {
        store_abort(t);
        return rc;
    }
    if (n->check_invariants) ledger_check_invariants(t);
    NODE_CRASH(MID_COMMIT);
    rc = store_commit(t);
    if (rc) return rc;
    NODE_CRASH(AFTER_COMMIT);
    rc = store_begin(n->store, false, &t);
    if (rc) return rc;
    rc = ledger_chain_get(t, &n->chain);
    store_abort(t);
    return rc;
}

/* Counts the committed transactions by their result, for /metrics. */
static void count_results(node *n, const uint8_t (*ids)[KN_HASH_BYTES], uint32_t count)
{
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    for (uint32_t i = 0; i < count; i++) {
        ledger_tx_record rec;
        if (ledger_tx_record_get(t, ids[i], &rec) == 0 && rec.height == n->chain.height)
            n->health.results[node__err_slot(rec.result)]++;
    }
    store_abort(t);
}

int node__commit_block(node *n, const uint8_t *block, size_t block_len, const uint8_t *cert,
                       size_t cert_len, bool restart)
{
    ledger_block_view v;
    int rc = ledger_block_decode(block, block_len, &v);
    if (rc) return rc;
    ledger_block_txs *bt = &n->block_txs;
    rc = ledger_block_txs_decode(&v, bt);
    const uint8_t(*ids)[KN_HASH_BYTES] = (const uint8_t(*)[KN_HASH_BYTES])bt->ids;
    uint64_t prev_time_ms = n->chain.last_time_ms;
    if (!rc) rc = execute(n, &v, block, block_len, bt->txs, cert, cert_len);
    if (!rc) {
        node__health_on_commit(n, &v.hdr, cert, cert_len, prev_time_ms);
        count_results(n, ids, v.hdr.n_txs);
        KN_REQUIRE(n->chain.height == v.hdr.height);
        n->last_commit_mono_ms = kn_mono_ms();
        KN_INFO("cons", "block committed", "height=%llu txs=%u",
                (unsigned long long)v.hdr.height, v.hdr.n_txs);
        node__mempool_after_commit(n, &v, ids);
        node__events_block(n, v.hdr.height);
    }
    ledger_block_view_free(&v);
    if (!rc && restart) node__restart_consensus(n);
    return rc;
}

void node__restart_consensus(node *n)
{
    proposals_clear(n);
    start_height(n);
}

static void start_height(node *n)
{
    n->value_pending = false;
    cons_actions acts;
    cons_start_height(n->cons, n->chain.height + 1, &acts);
    node__send_status(n, CONS_NO_VALIDATOR);
    run_actions(n, &acts);
    replay_future(n);
}

/* ---------------------------------------------------------------- start, tick */

/* Puts the stored valid block of height h back in the proposal cache. A block
 * of an older height is left out: it would take its round's slot. */
static void load_valid_block(node *n, store_txn *t, uint64_t h)
{
    uint32_t round, n_proof;
    ledger_slice block;
    ledger_block_view v;
    cons_vote proof[CONS_VALIDATORS_MAX];
    if (ledger_valid_value_get(t, &round, &block, proof, &n_proof) ||
        ledger_block_decode(block.p, block.n, &v))
        return;
    if (v.hdr.height == h) {
        proposal_keep(n, round, v.block_id, block.p, block.n);
        memcpy(n->stored_valid_id, v.block_id, KN_HASH_BYTES);
    }
    ledger_block_view_free(&v);
}

static void load_restart_state(node *n, store_txn *t)
{
    cons_safety s;
    s.height = 0;
    if (ledger_safety_get(t, &s) == 0 && s.height == n->chain.height + 1) {
        cons_restore(n->cons, &s);
        KN_INFO("cons", "resuming from safety state", "height=%llu round=%u step=%s",
                (unsigned long long)s.height, s.round, cons_step_name(s.step));
    }
    const uint8_t *p;
    size_t len;
    if (store_get(t, STORE_META, last_signed_key, sizeof last_signed_key - 1, &p, &len) == 0)
        KN_REQUIRE(decode_signed(p, len, &n->last_signed) == 0);
    if (s.height == n->chain.height + 1) load_valid_block(n, t, s.height);
}

static void feed_vote(node *n, const cons_vote *v)
{
    cons_actions acts;
    cons_on_vote(n->cons, v, &acts);
    run_actions(n, &acts);
}

/* Signs again the votes this node cast at the height it resumes and feeds them
 * to the core (which counts them) and to the repeat list; then feeds the proof
 * of its valid value, so the core can relay it again. */
static void resume_votes(node *n)
{
    store_txn *t;
    cons_vote votes[NODE_OWN_VOTES_MAX + CONS_ACTIONS_MAX], proof[CONS_VALIDATORS_MAX];
    uint32_t count = 0, n_proof = 0, round;
    ledger_slice block;
    if (store_begin(n->store, false, &t)) return;
    uint32_t cap = (uint32_t)(sizeof votes / sizeof votes[0]);
    int rc = ledger_own_votes_get(t, cons_height(n->cons), votes, cap, &count);
    if (!rc && ledger_valid_value_get(t, &round, &block, proof, &n_proof)) n_proof = 0;
    store_abort(t);
    for (uint32_t i = 0; !rc && i < count && !n->stopping; i++) {
        cons_vote *v = &votes[i];
        v->validator = n->cfg->self;
        cons_vote_sign(v, &n->cfg->key, n->chain_id);
        keep_own_vote(n, v);
        feed_vote(n, v);
    }
    for (uint32_t i = 0; i < n_proof && !n->stopping; i++)
        if (proof[i].height == cons_height(n->cons) &&
            cons_vote_verify(&proof[i], &n->cfg->valset, n->chain_id) == 0)
            feed_vote(n, &proof[i]);
}

int node__driver_start(node *n)
{
    n->cons = cons_new(&n->cfg->valset, n->cfg->self, &n->cfg->timeouts);
    if (!n->cons) return KN_ECONFIG;
    store_txn *t;
    int rc = store_begin(n->store, false, &t);
    if (rc) return rc;
    rc = ledger_chain_get(t, &n->chain);
    proposals_clear(n);
    if (!rc) load_restart_state(n, t); /* may put the valid block in the cache */
    store_abort(t);
    if (rc) return rc;
    n->last_commit_mono_ms = kn_mono_ms();
    start_height(n);
    resume_votes(n);
    return 0;
}

#define STALL_WARN_MS 10000 /* no commit for this long is a stall worth a log line */

/* Logs a stall once per height (and again every STALL_WARN_MS): where
 * consensus is, and which validators it has not heard from in this round. */
/* Time from t to now; 0 for a t after now (a commit during this tick). */
static uint64_t since(uint64_t now_mono_ms, uint64_t t)
{
    return now_mono_ms > t ? now_mono_ms - t : 0;
}

static void warn_stall(node *n, uint64_t now_mono_ms)
{
    if (since(now_mono_ms, n->last_commit_mono_ms) < STALL_WARN_MS ||
        since(now_mono_ms, n->last_stall_log_ms) < STALL_WARN_MS)
        return;
    n->last_stall_log_ms = now_mono_ms;
    char offline[512], no_prevote[512];
    uint64_t online = 0;
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        if (node__peer_online(n, i)) online |= 1ull << i;
    missing_names(n, online, offline, sizeof offline);
    missing_names(n, cons_voted_mask(n->cons, CONS_PREVOTE), no_prevote, sizeof no_prevote);
    KN_WARN("cons", "consensus stalled",
            "height=%llu round=%u step=%s since_ms=%llu offline=%s not_prevoted=%s",
            (unsigned long long)cons_height(n->cons), cons_round(n->cons),
            cons_step_name(cons_step(n->cons)),
            (unsigned long long)since(now_mono_ms, n->last_commit_mono_ms),
            offline[0] ? offline : "-", no_prevote[0] ? no_prevote : "-");
}

void node__driver_tick(node *n, uint64_t now_mono_ms)
{
    node__maybe_build(n);
    warn_stall(n, now_mono_ms);
    /* Messages lost on a dropped link are not retransmitted by it: while the
     * height stalls, repeat what we said in it. */
    if (since(now_mono_ms, n->last_commit_mono_ms) < 2u * n->cfg->heartbeat_ms) return;
    if (since(now_mono_ms, n->last_repeat_ms) < n->cfg->heartbeat_ms) return;
    n->last_repeat_ms = now_mono_ms;
    node__repeat_own(n, CONS_NO_VALIDATOR);
}

static void say_to(node *n, uint32_t peer_or_all, const kn_buf *msg)
{
    if (peer_or_all == CONS_NO_VALIDATOR) node__broadcast(n, msg);
    else node__send(n, peer_or_all, msg);
}

void node__repeat_own(node *n, uint32_t peer_or_all)
{
    cons_vote proof[CONS_VALIDATORS_MAX];
    uint32_t n_proof = cons_valid_proof(n->cons, proof);
    /* The proposal first: it makes the round it cites worth keeping. */
    if (n->own_proposal.len) say_to(n, peer_or_all, &n->own_proposal);
    kn_buf msg = {0};
    for (uint32_t i = 0; i < n->n_own_votes; i++) {
        vote_msg(&n->own_votes[i], &msg);
        say_to(n, peer_or_all, &msg);
    }
    for (uint32_t i = 0; i < n_proof; i++) {
        if (proof[i].validator == n->cfg->self) continue; /* among our own votes */
        vote_msg(&proof[i], &msg);
        say_to(n, peer_or_all, &msg);
    }
    kn_buf_free(&msg);
}

void node__driver_close_timers(node *n)
{
    while (n->timers) timer_close(n->timers);
}

void node__driver_stop(node *n)
{
    for (int i = 0; i < NODE_PROPOSALS_MAX; i++) kn_buf_free(&n->proposals[i].block);
    kn_buf_free(&n->own_proposal);
    ledger_block_txs_free(&n->block_txs);
    for (uint32_t i = 0; i < NODE_FUTURE_MAX; i++) kn_buf_free(&n->future[i].msg);
    cons_free(n->cons);
    n->cons = NULL;
}
