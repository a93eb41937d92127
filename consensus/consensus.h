/*
 * consensus: Tendermint BFT (Buchman, Kwon, Milosevic, arXiv 1807.04938) as a pure
 * state machine, plus the canonical encodings of what validators sign.
 *
 * Owns: the validator set and proposer schedule, vote sets per round, the lock and
 * valid-value rules, round timeouts, commit certificates and equivocation
 * detection. It never touches sockets, files, the clock or libuv/LMDB; memory is
 * allocated once in cons_new() and never on the event path.
 *
 * The driver (node/) feeds events in and carries actions out:
 *   - it checks signatures before an event goes in (cons_vote_verify,
 *     cons_proposal_verify) and judges whether a proposed block is valid;
 *   - every call fills a cons_actions list. Before it carries out any
 *     BROADCAST_* action of that list, the driver persists cons_safety_get()
 *     (fsync), then signs, then sends. Its own signed vote or proposal is fed
 *     back in through cons_on_vote()/cons_on_proposal() like a peer's;
 *   - NEED_VALUE asks for a block for (height, round): the driver answers with
 *     cons_on_value(); COMMIT says a block is decided: the driver fetches the
 *     certificate with cons_commit_cert(), applies and stores the block, then
 *     calls cons_start_height(height + 1).
 *
 *     cons_state *c = cons_new(&valset, my_index, &cfg);
 *     cons_actions acts;
 *     cons_start_height(c, 1, &acts);          // or cons_restore() first
 *     for each action: carry it out as above
 */
#ifndef KOINON_CONSENSUS_H
#define KOINON_CONSENSUS_H

#include "common/common.h"

#define CONS_VALIDATORS_MAX 64
#define CONS_ACTIONS_MAX 32
/* Proposer schedule length after dividing powers by their gcd. */
#define CONS_SCHEDULE_MAX 4096
#define CONS_NO_VALIDATOR UINT32_MAX

typedef struct cons_validator {
    uint8_t pk[KN_PK_BYTES];
    uint64_t power;
} cons_validator;

typedef struct cons_valset {
    uint32_t n;
    cons_validator v[CONS_VALIDATORS_MAX];
    uint64_t total_power; /* filled by cons_valset_init */
    uint32_t schedule_len;
    uint8_t schedule[CONS_SCHEDULE_MAX]; /* validator index per slot */
} cons_valset;

/* Sums powers and builds the smooth weighted round-robin proposer schedule.
 * KN_EINVAL for no validators, a zero power, more than CONS_VALIDATORS_MAX, or a
 * power sum that overflows. */
KN_MUST int cons_valset_init(cons_valset *vs);
/* Index of the proposer of (height, round): schedule[(height + round) % len]. */
uint32_t cons_proposer(const cons_valset *vs, uint64_t height, uint32_t round);
/* Index of a public key, or CONS_NO_VALIDATOR. */
uint32_t cons_valset_find(const cons_valset *vs, const uint8_t pk[KN_PK_BYTES]);
/* True when power is strictly more than two thirds of the total. */
bool cons_quorum(const cons_valset *vs, uint64_t power);
/* True when power is at least f+1 (more than a third of the total). */
bool cons_one_third(const cons_valset *vs, uint64_t power);

enum cons_vote_type { CONS_PREVOTE = 1, CONS_PRECOMMIT = 2 };
enum cons_step { CONS_STEP_PROPOSE = 1, CONS_STEP_PREVOTE = 2, CONS_STEP_PRECOMMIT = 3 };

typedef struct cons_vote {
    uint8_t type; /* enum cons_vote_type */
    uint64_t height;
    uint32_t round;
    bool nil; /* a vote for no block; block_id is then all zeros */
    uint8_t block_id[KN_HASH_BYTES];
    uint32_t validator; /* index in the validator set */
    uint8_t sig[KN_SIG_BYTES];
} cons_vote;

typedef struct cons_proposal {
    uint64_t height;
    uint32_t round;
    int32_t pol_round; /* -1 when none */
    uint8_t block_id[KN_HASH_BYTES];
    uint32_t proposer;
    uint8_t sig[KN_SIG_BYTES];
} cons_proposal;

/* What is signed, canonical msgpack:
 *   vote:     [type, height, round, block_id bin32 | nil]
 *   proposal: [height, round, pol_round (int), block_id bin32]
 * under KN_DOMAIN_VOTE / KN_DOMAIN_PROPOSAL and the chain id.
 * On the wire (appended to b):
 *   vote:     [type, height, round, block_id | nil, validator, sig bin64]
 *   proposal: [height, round, pol_round, block_id, proposer, sig bin64] */
void cons_vote_sign_bytes(const cons_vote *v, kn_buf *b);
void cons_vote_encode(const cons_vote *v, kn_buf *b);
KN_MUST int cons_vote_decode(kn_cur *c, cons_vote *v);
void cons_vote_sign(cons_vote *v, const kn_keypair *kp, const char *chain_id);
/* 0, KN_EINVAL (unknown validator index or type), or KN_EBADSIG. */
KN_MUST int cons_vote_verify(const cons_vote *v, const cons_valset *vs, const char *chain_id);

void cons_proposal_sign_bytes(const cons_proposal *p, kn_buf *b);
void cons_proposal_encode(const cons_proposal *p, kn_buf *b);
KN_MUST int cons_proposal_decode(kn_cur *c, cons_proposal *p);
void cons_proposal_sign(cons_proposal *p, const kn_keypair *kp, const char *chain_id);
KN_MUST int cons_proposal_verify(const cons_proposal *p, const cons_valset *vs,
                                 const char *chain_id);

/* Commit certificate: the precommits of +2/3 of the power for one block.
 * Encoding: [height, round, block_id, [[validator, sig bin64], ...]] with the
 * signatures in strictly increasing validator order. */
typedef struct cons_cert_sig {
    uint32_t validator;
    uint8_t sig[KN_SIG_BYTES];
} cons_cert_sig;

typedef struct cons_cert {
    uint64_t height;
    uint32_t round;
    uint8_t block_id[KN_HASH_BYTES];
    uint32_t n_sigs;
    cons_cert_sig sigs[CONS_VALIDATORS_MAX];
} cons_cert;

void cons_cert_encode(const cons_cert *cert, kn_buf *b);
KN_MUST int cons_cert_decode(kn_cur *c, cons_cert *cert);
/* 0 when every signature is a valid precommit for (height, round, block_id) by a
 * distinct validator and their power is a quorum; KN_EBADCERT otherwise. */
KN_MUST int cons_cert_verify(const cons_cert *cert, const cons_valset *vs, const char *chain_id);

/* ---------------------------------------------------------------- the core */

typedef struct cons_config {
    uint32_t timeout_propose_ms;   /* round 0; grows by timeout_delta_ms a round */
    uint32_t timeout_prevote_ms;   /* after +2/3 prevotes for anything */
    uint32_t timeout_precommit_ms; /* after +2/3 precommits for anything */
    uint32_t timeout_delta_ms;
} cons_config;

/* The state that must be durable before the node speaks. Restoring it means the
 * node never signs two different votes or proposals for one (height, round, step). */
typedef struct cons_safety {
    uint64_t height;
    uint32_t round;
    uint8_t step; /* enum cons_step */
    int32_t locked_round; /* -1 when none */
    uint8_t locked_block[KN_HASH_BYTES];
    int32_t valid_round; /* -1 when none */
    uint8_t valid_block[KN_HASH_BYTES];
} cons_safety;

enum cons_action_kind {
    CONS_ACT_BROADCAST_PROPOSAL = 1, /* sign it, send it, feed it back */
    CONS_ACT_BROADCAST_VOTE,         /* sign it, send it, feed it back */
    CONS_ACT_SCHEDULE_TIMEOUT,       /* call cons_on_timeout after duration_ms */
    CONS_ACT_NEED_VALUE,             /* build a block, then cons_on_value */
    CONS_ACT_COMMIT,                 /* decided: apply, store, start next height */
    CONS_ACT_EVIDENCE,               /* two conflicting votes from one validator */
};

typedef struct cons_action {
    enum cons_action_kind kind;
    union {
        cons_proposal proposal; /* unsigned; pol_round and block_id set */
        cons_vote vote;         /* unsigned */
        struct {
            uint8_t step;
            uint64_t height;
            uint32_t round;
            uint32_t duration_ms;
        } timeout;
        struct {
            uint64_t height;
            uint32_t round;
        } need_value;
        struct {
            uint64_t height;
            uint32_t round;
            uint8_t block_id[KN_HASH_BYTES];
        } commit;
        struct {
            cons_vote a, b;
        } evidence;
    } u;
} cons_action;

typedef struct cons_actions {
    uint32_t n;
    cons_action a[CONS_ACTIONS_MAX];
} cons_actions;

typedef struct cons_state cons_state;

/* Allocates the core for one validator set. self is this node's index, or
 * CONS_NO_VALIDATOR for an observer that never votes. NULL on bad arguments.
 * The core copies vs and cfg. */
cons_state *cons_new(const cons_valset *vs, uint32_t self, const cons_config *cfg);
void cons_free(cons_state *c);

/* Resume from durable safety state (before cons_start_height for that height);
 * the node then re-enters the saved height, round and step. */
void cons_restore(cons_state *c, const cons_safety *s);
void cons_safety_get(const cons_state *c, cons_safety *out);

/* Begin a height (round 0, or the restored round when height matches the
 * restored safety state). Clears all vote sets of earlier heights. */
void cons_start_height(cons_state *c, uint64_t height, cons_actions *out);

/* Events. Each resets out->n to 0 and appends the actions it causes.
 * Votes and proposals must have valid signatures already; the core checks
 * heights, rounds, proposer and validator indexes itself and ignores the rest.
 * block_valid is the driver's verdict on the proposed block. */
void cons_on_proposal(cons_state *c, const cons_proposal *p, bool block_valid, cons_actions *out);
void cons_on_vote(cons_state *c, const cons_vote *v, cons_actions *out);
void cons_on_timeout(cons_state *c, uint8_t step, uint64_t height, uint32_t round,
                     cons_actions *out);
void cons_on_value(cons_state *c, uint64_t height, uint32_t round,
                   const uint8_t block_id[KN_HASH_BYTES], cons_actions *out);

/* After CONS_ACT_COMMIT: the certificate from the precommits the core holds. */
KN_MUST int cons_commit_cert(const cons_state *c, cons_cert *out);

/* The signed prevotes the core holds for its valid value in the valid round:
 * the proof of lock that peers need before they prevote a re-proposal of it
 * (Algorithm 1, line 28). Some of them may come from validators that will not
 * say them again, so the driver relays them while the height stalls and keeps
 * them with the valid block across a restart. Returns how many were written. */
uint32_t cons_valid_proof(const cons_state *c, cons_vote out[CONS_VALIDATORS_MAX]);

/* Read-only view for status pages. */
uint64_t cons_height(const cons_state *c);
uint32_t cons_round(const cons_state *c);
uint8_t cons_step(const cons_state *c);
/* Bitmask per validator of who voted type in the current round (n <= 64). */
uint64_t cons_voted_mask(const cons_state *c, uint8_t type);

const char *cons_step_name(uint8_t step);

#endif
