/*
 * core.c: the Tendermint state machine (Buchman, Kwon, Milosevic, arXiv
 * 1807.04938, Algorithm 1) for one validator. It owns the height/round/step, the
 * lock and valid values, the vote and proposal store of recent rounds, and turns
 * each event into a list of actions for the driver. Line numbers in comments
 * ("line 22") refer to Algorithm 1 of the paper.
 *
 * Memory: everything lives in one block from cons_new(). Votes are kept for a
 * window of ROUND_SLOTS rounds; each slot is tagged with its round and may be
 * recycled for another round, except the current, locked, valid and decided
 * rounds and the round the current proposal cites as its proof of lock. That
 * bounds memory however long a height stalls.
 *
 * Own votes: the core emits unsigned votes and proposals and counts them only
 * when the driver feeds them back signed, exactly like a peer's. The step
 * recorded in the safety state advances when a vote is emitted, so a vote for a
 * (round, step) is emitted at most once, also across cons_restore().
 */
#include "consensus/consensus.h"

#include <stdlib.h>
#include <string.h>

/* Rounds of the current height whose votes are kept. At most five are pinned
 * (current, locked, valid, decided, cited), so there is always room for new
 * rounds. */
#define ROUND_SLOTS 16
#define VOTE_TYPES 2
/* Upper bound on rule firings per event; each rule fires at most once a round and
 * a round skip lands on the highest eligible round, so this is never reached. */
#define RULE_FIRINGS_MAX 64

typedef struct round_slot {
    bool used;
    uint32_t round;
    uint64_t voted[VOTE_TYPES];     /* validators with a counted vote, by type - 1 */
    uint64_t evidenced[VOTE_TYPES]; /* validators already reported as equivocating */
    cons_vote votes[VOTE_TYPES][CONS_VALIDATORS_MAX];
    /* An equivocator's latest vote for a block other than its first vote's
     * (see cons_on_vote). */
    uint64_t has_other[VOTE_TYPES];
    cons_vote other[VOTE_TYPES][CONS_VALIDATORS_MAX];
    bool has_proposal;
    bool proposal_valid; /* the driver's latest verdict on the block */
    int32_t pol_round;
    uint8_t block_id[KN_HASH_BYTES];
} round_slot;

struct cons_state {
    cons_valset vs;
    uint32_t self;
    cons_config cfg;

    /* Safety state (cons_safety). */
    uint64_t height;
    uint32_t round;
    uint8_t step;
    int32_t locked_round;
    uint8_t locked_block[KN_HASH_BYTES];
    int32_t valid_round;
    uint8_t valid_block[KN_HASH_BYTES];

    bool started;  /* cons_start_height ran for height */
    bool restored; /* the next cons_start_height(height) resumes, not restarts */
    bool decided;
    uint32_t decided_round;
    uint8_t decided_block[KN_HASH_BYTES];

    /* Per-round guards, cleared when a round starts. */
    bool awaiting_value;
    bool prevote_timeout_set;   /* line 34 */
    bool prevote_quorum_seen;   /* line 36 */
    bool precommit_timeout_set; /* line 47 */

    cons_actions *out; /* the list of the event being handled */
    round_slot slots[ROUND_SLOTS];
};

/* ---------------------------------------------------------------- helpers */

static bool same_block(const uint8_t a[KN_HASH_BYTES], const uint8_t b[KN_HASH_BYTES])
{
    return memcmp(a, b, KN_HASH_BYTES) == 0;
}

static uint64_t bit(uint32_t validator)
{
    return 1ull << validator;
}

static uint64_t mask_power(const cons_state *c, uint64_t mask)
{
    uint64_t power = 0;
    for (uint32_t i = 0; i < c->vs.n; i++)
        if (mask & bit(i)) power += c->vs.v[i].power;
    return power;
}

static bool vote_is_for(const cons_vote *v, const uint8_t *block_id)
{
    return block_id ? !v->nil && same_block(v->block_id, block_id) : v->nil;
}

/* Validator i's vote of one type for one block (block_id NULL: for nil), its
 * first one or an equivocator's other one; NULL when it cast none. */
static const cons_vote *vote_for(const round_slot *s, uint8_t type, uint32_t i,
                                 const uint8_t *block_id)
{
    const cons_vote *first = &s->votes[type - 1][i], *other = &s->other[type - 1][i];
    if ((s->voted[type - 1] & bit(i)) && vote_is_for(first, block_id)) return first;
    if ((s->has_other[type - 1] & bit(i)) && vote_is_for(other, block_id)) return other;
    return NULL;
}

/* Power of the votes of one type for one block (block_id NULL: for nil). */
static uint64_t power_for(const cons_state *c, const round_slot *s, uint8_t type,
                          const uint8_t *block_id)
{
    uint64_t power = 0;
    for (uint32_t i = 0; i < c->vs.n; i++)
        if (vote_for(s, type, i, block_id)) power += c->vs.v[i].power;
    return power;
}

static bool is_proposer(const cons_state *c)
{
    return c->self != CONS_NO_VALIDATOR && cons_proposer(&c->vs, c->height, c->round) == c->self;
}

static uint32_t timeout_ms(const cons_state *c, uint32_t base_ms)
{
    uint64_t ms = (uint64_t)base_ms + (uint64_t)c->round * c->cfg.timeout_delta_ms;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static cons_action *emit(cons_state *c, enum cons_action_kind kind)
{
    KN_REQUIRE(c->out->n < CONS_ACTIONS_MAX);
    cons_action *a = &c->out->a[c->out->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    return a;
}

static void begin(cons_state *c, cons_actions *out)
{
    out->n = 0;
    c->out = out;
}

/* ---------------------------------------------------------------- round store */

static const round_slot *slot_find(const cons_state *c, uint32_t round)
{
    for (uint32_t i = 0; i < ROUND_SLOTS; i++)
        if (c->slots[i].used && c->slots[i].round == round) return &c->slots[i];
    return NULL;
}

/* The round whose prevotes the current round's proposal cites as its proof of
 * lock (line 28), or -1. */
static int64_t cited_round(const cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    return s && s->has_proposal ? s->pol_round : -1;
}

static bool round_pinned(const cons_state *c, uint32_t round)
{
    return round == c->round || (int64_t)round == c->locked_round ||
           (int64_t)round == c->valid_round || (c->decided && round == c->decided_round) ||
           (int64_t)round == cited_round(c);
}

/* Which slot a new round may take. Free slots first; then the lowest round below
 * the current one (for the round the current proposal cites, whatever its age:
 * its votes may be all that keeps the height from stalling); then, for a future
 * round, the future round with the least sender power (ties: the highest round),
 * so a faulty validator spraying votes for far rounds cannot push out a round
 * that honest validators are filling. */
static round_slot *slot_victim(cons_state *c, uint32_t round)
{
    round_slot *old = NULL, *future = NULL;
    uint64_t future_power = 0;
    for (uint32_t i = 0; i < ROUND_SLOTS; i++) {
        round_slot *s = &c->slots[i];
        if (!s->used) return s;
        if (round_pinned(c, s->round)) continue;
        if (s->round < c->round) {
            if (!old || s->round < old->round) old = s;
            continue;
        }
        uint64_t p = mask_power(c, s->voted[0] | s->voted[1]);
        if (!future || p < future_power || (p == future_power && s->round > future->round)) {
            future = s;
            future_power = p;
        }
    }
    if (old && (old->round < round || (int64_t)round == cited_round(c))) return old;
    if (future && round < c->round) return NULL; /* never evict the future for the past */
    return future;
}

/* The slot of a round, claiming one if the round is new; NULL when the window
 * has no room for it (the message is then dropped). */
static round_slot *slot_get(cons_state *c, uint32_t round)
{
    round_slot *s = (round_slot *)slot_find(c, round);
    if (s) return s;
    s = slot_victim(c, round);
    if (!s) return NULL;
    s->used = true;
    s->round = round;
    s->voted[0] = s->voted[1] = 0;
    s->evidenced[0] = s->evidenced[1] = 0;
    s->has_other[0] = s->has_other[1] = 0;
    s->has_proposal = false;
    return s;
}

/* ---------------------------------------------------------------- speech */

static void schedule_timeout(cons_state *c, uint8_t step, uint32_t base_ms)
{
    cons_action *a = emit(c, CONS_ACT_SCHEDULE_TIMEOUT);
    a->u.timeout.step = step;
    a->u.timeout.height = c->height;
    a->u.timeout.round = c->round;
    a->u.timeout.duration_ms = timeout_ms(c, base_ms);
}

static void broadcast_proposal(cons_state *c, const uint8_t block_id[KN_HASH_BYTES],
                               int32_t pol_round)
{
    cons_action *a = emit(c, CONS_ACT_BROADCAST_PROPOSAL);
    a->u.proposal.height = c->height;
    a->u.proposal.round = c->round;
    a->u.proposal.pol_round = pol_round;
    memcpy(a->u.proposal.block_id, block_id, KN_HASH_BYTES);
    a->u.proposal.proposer = c->self;
}

/* Records the step first: the driver persists the safety state before it signs,
 * so a restarted node knows this vote may already be out. */
static void cast_vote(cons_state *c, uint8_t type, const uint8_t *block_id)
{
    KN_REQUIRE(c->step == (type == CONS_PREVOTE ? CONS_STEP_PROPOSE : CONS_STEP_PREVOTE));
    c->step = type == CONS_PREVOTE ? CONS_STEP_PREVOTE : CONS_STEP_PRECOMMIT;
    if (c->self == CONS_NO_VALIDATOR) return;
    cons_action *a = emit(c, CONS_ACT_BROADCAST_VOTE);
    a->u.vote.type = type;
    a->u.vote.height = c->height;
    a->u.vote.round = c->round;
    a->u.vote.nil = block_id == NULL;
    if (block_id) memcpy(a->u.vote.block_id, block_id, KN_HASH_BYTES);
    a->u.vote.validator = c->self;
}

static void clear_round_guards(cons_state *c)
{
    c->awaiting_value = false;
    c->prevote_timeout_set = false;
    c->prevote_quorum_seen = false;
    c->precommit_timeout_set = false;
}

/* StartRound (lines 11-21). */
static void start_round(cons_state *c, uint32_t round)
{
    c->round = round;
    c->step = CONS_STEP_PROPOSE;
    clear_round_guards(c);
    KN_REQUIRE(slot_get(c, round) != NULL); /* at most 4 pinned of ROUND_SLOTS */
    if (!is_proposer(c)) {
        schedule_timeout(c, CONS_STEP_PROPOSE, c->cfg.timeout_propose_ms);
        return;
    }
    if (c->valid_round >= 0) {
        broadcast_proposal(c, c->valid_block, c->valid_round);
        return;
    }
    c->awaiting_value = true;
    cons_action *a = emit(c, CONS_ACT_NEED_VALUE);
    a->u.need_value.height = c->height;
    a->u.need_value.round = c->round;
}

/* Re-entering a restored (round, step). The votes heard before the restart are
 * gone, so the timeout of the step is scheduled at once: the node then moves on
 * even if nobody repeats those votes, and every timeout path is safe (nil votes
 * or a new round). A proposer at step propose re-sends only validValue, which is
 * what it must have proposed; a value from getValue() is unknown after a restart,
 * so it stays silent rather than risk signing a second, different proposal. */
static void resume_round(cons_state *c)
{
    clear_round_guards(c);
    KN_REQUIRE(slot_get(c, c->round) != NULL);
    switch (c->step) {
    case CONS_STEP_PROPOSE:
        if (is_proposer(c) && c->valid_round >= 0)
            broadcast_proposal(c, c->valid_block, c->valid_round);
        else
            schedule_timeout(c, CONS_STEP_PROPOSE, c->cfg.timeout_propose_ms);
        break;
    case CONS_STEP_PREVOTE:
        c->prevote_timeout_set = true;
        schedule_timeout(c, CONS_STEP_PREVOTE, c->cfg.timeout_prevote_ms);
        break;
    case CONS_STEP_PRECOMMIT:
        c->precommit_timeout_set = true;
        schedule_timeout(c, CONS_STEP_PRECOMMIT, c->cfg.timeout_precommit_ms);
        break;
    default:
        KN_REQUIRE(!"restored step out of range");
    }
}

/* ---------------------------------------------------------------- upon rules */

/* Lines 22-33: the first prevote of the round, on the proposal. A proposal with a
 * proof-of-lock round vr waits for +2/3 prevotes for its block in vr. */
static bool rule_prevote_proposal(cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    if (c->step != CONS_STEP_PROPOSE || !s || !s->has_proposal) return false;
    bool lock_allows;
    if (s->pol_round < 0) {
        lock_allows = c->locked_round == -1 || same_block(c->locked_block, s->block_id);
    } else {
        const round_slot *pol = slot_find(c, (uint32_t)s->pol_round);
        if (!pol || !cons_quorum(&c->vs, power_for(c, pol, CONS_PREVOTE, s->block_id)))
            return false;
        lock_allows = c->locked_round <= s->pol_round || same_block(c->locked_block, s->block_id);
    }
#ifdef CONS_PLANTED_BUG_IGNORE_LOCK
    /* Planted bug, never defined in a real build: exists only so that the
     * simulator (tests/sim) can prove its agreement checker catches a core
     * that prevotes against its lock. */
    lock_allows = true;
#endif
    cast_vote(c, CONS_PREVOTE, s->proposal_valid && lock_allows ? s->block_id : NULL);
    return true;
}

/* Line 34: +2/3 prevotes of any kind while at prevote, once a round. */
static bool rule_timeout_prevote(cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    if (c->step != CONS_STEP_PREVOTE || c->prevote_timeout_set || !s) return false;
    if (!cons_quorum(&c->vs, mask_power(c, s->voted[CONS_PREVOTE - 1]))) return false;
    c->prevote_timeout_set = true;
    schedule_timeout(c, CONS_STEP_PREVOTE, c->cfg.timeout_prevote_ms);
    return true;
}

/* Lines 36-43: the proposal of this round has +2/3 prevotes: lock and precommit
 * it if still at prevote, and in any case remember it as the valid value. */
static bool rule_lock(cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    if (c->step < CONS_STEP_PREVOTE || c->prevote_quorum_seen || !s || !s->has_proposal ||
        !s->proposal_valid)
        return false;
    if (!cons_quorum(&c->vs, power_for(c, s, CONS_PREVOTE, s->block_id))) return false;
    c->prevote_quorum_seen = true;
    if (c->step == CONS_STEP_PREVOTE) {
        c->locked_round = (int32_t)c->round;
        memcpy(c->locked_block, s->block_id, KN_HASH_BYTES);
        cast_vote(c, CONS_PRECOMMIT, s->block_id);
    }
    c->valid_round = (int32_t)c->round;
    memcpy(c->valid_block, s->block_id, KN_HASH_BYTES);
    return true;
}

/* Lines 44-46: +2/3 prevotes for nil. */
static bool rule_precommit_nil(cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    if (c->step != CONS_STEP_PREVOTE || !s) return false;
    if (!cons_quorum(&c->vs, power_for(c, s, CONS_PREVOTE, NULL))) return false;
    cast_vote(c, CONS_PRECOMMIT, NULL);
    return true;
}

/* Line 47: +2/3 precommits of any kind, once a round, at any step. */
static bool rule_timeout_precommit(cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    if (c->precommit_timeout_set || !s) return false;
    if (!cons_quorum(&c->vs, mask_power(c, s->voted[CONS_PRECOMMIT - 1]))) return false;
    c->precommit_timeout_set = true;
    schedule_timeout(c, CONS_STEP_PRECOMMIT, c->cfg.timeout_precommit_ms);
    return true;
}

/* Lines 49-54: a proposal of any round whose block has +2/3 precommits. */
static bool rule_commit(cons_state *c)
{
    for (uint32_t i = 0; i < ROUND_SLOTS; i++) {
        const round_slot *s = &c->slots[i];
        if (!s->used || !s->has_proposal || !s->proposal_valid) continue;
        if (!cons_quorum(&c->vs, power_for(c, s, CONS_PRECOMMIT, s->block_id))) continue;
        c->decided = true;
        c->decided_round = s->round;
        memcpy(c->decided_block, s->block_id, KN_HASH_BYTES);
        cons_action *a = emit(c, CONS_ACT_COMMIT);
        a->u.commit.height = c->height;
        a->u.commit.round = s->round;
        memcpy(a->u.commit.block_id, s->block_id, KN_HASH_BYTES);
        return true;
    }
    return false;
}

/* Line 55: f+1 power of senders in a later round. Jumping straight to the highest
 * such round skips rounds the others have already left. */
static bool rule_round_skip(cons_state *c)
{
    bool found = false;
    uint32_t target = 0;
    for (uint32_t i = 0; i < ROUND_SLOTS; i++) {
        const round_slot *s = &c->slots[i];
        if (!s->used || s->round <= c->round || (found && s->round <= target)) continue;
        uint64_t senders = s->voted[0] | s->voted[1];
        if (s->has_proposal) senders |= bit(cons_proposer(&c->vs, c->height, s->round));
        if (!cons_one_third(&c->vs, mask_power(c, senders))) continue;
        found = true;
        target = s->round;
    }
    if (found) start_round(c, target);
    return found;
}

/* Evaluates the upon-rules until none fires: one event can enable several (a
 * prevote that completes a quorum, then a lock, then a precommit quorum...). */
static void run_rules(cons_state *c)
{
    for (int fired = 0;; fired++) {
        KN_REQUIRE(fired < RULE_FIRINGS_MAX);
        if (c->decided || rule_commit(c)) return;
        if (rule_round_skip(c) || rule_prevote_proposal(c) || rule_timeout_prevote(c) ||
            rule_lock(c) || rule_precommit_nil(c) || rule_timeout_precommit(c))
            continue;
        return;
    }
}

/* ---------------------------------------------------------------- lifecycle */

cons_state *cons_new(const cons_valset *vs, uint32_t self, const cons_config *cfg)
{
    if (!vs || !cfg) return NULL;
    if (self != CONS_NO_VALIDATOR && self >= vs->n) return NULL;
    cons_state *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->vs = *vs;
    /* Recomputed on the copy so the core never trusts a stale schedule. */
    if (cons_valset_init(&c->vs)) {
        free(c);
        return NULL;
    }
#ifdef CONS_PLANTED_BUG_COUNT_VOTES_NOT_POWER
    /* Planted bug, never defined in a real build: exists only so that the
     * simulator (tests/sim) can prove its checkers catch a core that counts
     * heads instead of voting power (the proposer schedule stays weighted). */
    for (uint32_t i = 0; i < c->vs.n; i++) c->vs.v[i].power = 1;
    c->vs.total_power = c->vs.n;
#endif
    c->self = self;
    c->cfg = *cfg;
    c->step = CONS_STEP_PROPOSE;
    c->locked_round = -1;
    c->valid_round = -1;
    return c;
}

void cons_free(cons_state *c)
{
    free(c);
}

void cons_restore(cons_state *c, const cons_safety *s)
{
    /* The safety state comes from our own disk; nonsense there is corruption. */
    KN_REQUIRE(s->step >= CONS_STEP_PROPOSE && s->step <= CONS_STEP_PRECOMMIT);
    KN_REQUIRE(s->locked_round >= -1 && s->locked_round <= (int64_t)s->round);
    KN_REQUIRE(s->valid_round >= -1 && s->valid_round <= (int64_t)s->round);
    c->height = s->height;
    c->round = s->round;
    c->step = s->step;
    c->locked_round = s->locked_round;
    memcpy(c->locked_block, s->locked_block, KN_HASH_BYTES);
    c->valid_round = s->valid_round;
    memcpy(c->valid_block, s->valid_block, KN_HASH_BYTES);
    c->started = false;
    c->decided = false;
    c->restored = true;
}

void cons_safety_get(const cons_state *c, cons_safety *out)
{
    memset(out, 0, sizeof *out);
    out->height = c->height;
    out->round = c->round;
    out->step = c->step;
    out->locked_round = c->locked_round;
    memcpy(out->locked_block, c->locked_block, KN_HASH_BYTES);
    out->valid_round = c->valid_round;
    memcpy(out->valid_block, c->valid_block, KN_HASH_BYTES);
}

void cons_start_height(cons_state *c, uint64_t height, cons_actions *out)
{
    begin(c, out);
    bool resume = c->restored && height == c->height;
    /* Restarting a height we have voted in would reset the step and let the
     * node sign a second vote for a (round, step) it has passed. */
    KN_REQUIRE(resume || height > c->height);
    c->height = height;
    c->started = true;
    c->restored = false;
    c->decided = false;
    for (uint32_t i = 0; i < ROUND_SLOTS; i++) c->slots[i].used = false;
    if (resume) {
        resume_round(c);
    } else {
        c->locked_round = -1;
        c->valid_round = -1;
        memset(c->locked_block, 0, KN_HASH_BYTES);
        memset(c->valid_block, 0, KN_HASH_BYTES);
        start_round(c, 0);
    }
    run_rules(c);
}

/* ---------------------------------------------------------------- events */

static bool proposal_matches(const round_slot *s, const cons_proposal *p)
{
    return s->pol_round == p->pol_round && same_block(s->block_id, p->block_id);
}

void cons_on_proposal(cons_state *c, const cons_proposal *p, bool block_valid, cons_actions *out)
{
    begin(c, out);
    if (!c->started || c->decided || p->height != c->height) return;
    if (p->pol_round < -1 || p->pol_round >= (int64_t)p->round) return;
    if (p->proposer != cons_proposer(&c->vs, p->height, p->round)) return;
    round_slot *s = slot_get(c, p->round);
    if (!s) return;
    if (s->has_proposal) {
        /* First proposal wins: a second, different one from the same proposer
         * is its equivocation, and switching would let it steer our votes. The
         * same proposal again only updates the driver's verdict on the block. */
        if (!proposal_matches(s, p)) return;
        s->proposal_valid = block_valid;
    } else {
        s->has_proposal = true;
        s->proposal_valid = block_valid;
        s->pol_round = p->pol_round;
        memcpy(s->block_id, p->block_id, KN_HASH_BYTES);
    }
    run_rules(c);
}

/* The block of the current round's proposal, or NULL. */
static const uint8_t *proposed_block(const cons_state *c)
{
    const round_slot *s = slot_find(c, c->round);
    return s && s->has_proposal ? s->block_id : NULL;
}

static bool votes_equal(const cons_vote *a, const cons_vote *b)
{
    return a->nil == b->nil && (a->nil || same_block(a->block_id, b->block_id));
}

static void report_equivocation(cons_state *c, round_slot *s, const cons_vote *first,
                                const cons_vote *second)
{
    uint64_t b = bit(second->validator);
    if (s->evidenced[second->type - 1] & b) return;
    s->evidenced[second->type - 1] |= b;
    cons_action *a = emit(c, CONS_ACT_EVIDENCE);
    a->u.evidence.a = *first;
    a->u.evidence.b = *second;
}

void cons_on_vote(cons_state *c, const cons_vote *v, cons_actions *out)
{
    begin(c, out);
    if (!c->started || v->height != c->height || v->validator >= c->vs.n) return;
    if (v->type != CONS_PREVOTE && v->type != CONS_PRECOMMIT) return;
    round_slot *s = slot_get(c, v->round);
    if (!s) return;
    cons_vote *stored = &s->votes[v->type - 1][v->validator];
    if (s->voted[v->type - 1] & bit(v->validator)) {
        /* An equivocator's second vote is evidence, and it still counts for
         * its own block: others may have seen it first, so it can be part of
         * the proof of lock they relay. Counting both votes of validators
         * under a third of the power can never make two quorums of one round
         * for different blocks; the first vote alone still decides what
         * counts once, in "+2/3 of any kind". */
        if (votes_equal(stored, v)) return;
        report_equivocation(c, s, stored, v);
        if (v->nil) return;
        cons_vote *other = &s->other[v->type - 1][v->validator];
        if (s->has_other[v->type - 1] & bit(v->validator)) {
            /* A third vote (Twins can make one) takes the place of the second
             * only when it is for the block the current round's proposal
             * needs votes for. */
            const uint8_t *wanted = proposed_block(c);
            if (votes_equal(other, v) || !wanted || !same_block(v->block_id, wanted)) return;
        }
        *other = *v;
        s->has_other[v->type - 1] |= bit(v->validator);
        run_rules(c);
        return;
    }
    *stored = *v;
    if (stored->nil) memset(stored->block_id, 0, KN_HASH_BYTES); /* not signed: normalise */
    s->voted[v->type - 1] |= bit(v->validator);
    run_rules(c);
}

void cons_on_timeout(cons_state *c, uint8_t step, uint64_t height, uint32_t round,
                     cons_actions *out)
{
    begin(c, out);
    if (!c->started || c->decided || height != c->height || round != c->round) return;
    switch (step) {
    case CONS_STEP_PROPOSE: /* lines 57-60 */
        if (c->step == CONS_STEP_PROPOSE) cast_vote(c, CONS_PREVOTE, NULL);
        break;
    case CONS_STEP_PREVOTE: /* lines 61-64 */
        if (c->step == CONS_STEP_PREVOTE) cast_vote(c, CONS_PRECOMMIT, NULL);
        break;
    case CONS_STEP_PRECOMMIT: /* lines 65-67 */
        if (round == UINT32_MAX) return;
        start_round(c, round + 1);
        break;
    default:
        return;
    }
    run_rules(c);
}

void cons_on_value(cons_state *c, uint64_t height, uint32_t round,
                   const uint8_t block_id[KN_HASH_BYTES], cons_actions *out)
{
    begin(c, out);
    if (!c->started || c->decided || !c->awaiting_value) return;
    if (height != c->height || round != c->round || c->step != CONS_STEP_PROPOSE) return;
    c->awaiting_value = false;
    broadcast_proposal(c, block_id, -1);
}

/* ---------------------------------------------------------------- views */

int cons_commit_cert(const cons_state *c, cons_cert *out)
{
    if (!c->decided) return KN_ENOTFOUND;
    const round_slot *s = slot_find(c, c->decided_round);
    KN_REQUIRE(s != NULL); /* the decided round is pinned */
    memset(out, 0, sizeof *out);
    out->height = c->height;
    out->round = c->decided_round;
    memcpy(out->block_id, c->decided_block, KN_HASH_BYTES);
    uint64_t power = 0;
    for (uint32_t i = 0; i < c->vs.n; i++) {
        const cons_vote *v = vote_for(s, CONS_PRECOMMIT, i, c->decided_block);
        if (!v) continue;
        out->sigs[out->n_sigs].validator = i;
        memcpy(out->sigs[out->n_sigs].sig, v->sig, KN_SIG_BYTES);
        out->n_sigs++;
        power += c->vs.v[i].power;
    }
    KN_REQUIRE(cons_quorum(&c->vs, power)); /* the commit rule saw this quorum */
    return 0;
}

uint32_t cons_valid_proof(const cons_state *c, cons_vote out[CONS_VALIDATORS_MAX])
{
    const round_slot *s = c->valid_round >= 0 ? slot_find(c, (uint32_t)c->valid_round) : NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; s && i < c->vs.n; i++) {
        const cons_vote *v = vote_for(s, CONS_PREVOTE, i, c->valid_block);
        if (v) out[n++] = *v;
    }
    return n;
}

uint64_t cons_height(const cons_state *c)
{
    return c->height;
}

uint32_t cons_round(const cons_state *c)
{
    return c->round;
}

uint8_t cons_step(const cons_state *c)
{
    return c->step;
}

uint64_t cons_voted_mask(const cons_state *c, uint8_t type)
{
    if (type != CONS_PREVOTE && type != CONS_PRECOMMIT) return 0;
    const round_slot *s = slot_find(c, c->round);
    return s ? s->voted[type - 1] : 0;
}

const char *cons_step_name(uint8_t step)
{
    switch (step) {
    case CONS_STEP_PROPOSE: return "propose";
    case CONS_STEP_PREVOTE: return "prevote";
    case CONS_STEP_PRECOMMIT: return "precommit";
    default: return "unknown";
    }
}
