/*
 * sim: a deterministic simulation of a Koinon consortium in one process and one
 * thread. Every validator runs the real consensus core, the real ledger on a
 * real LMDB store and real Ed25519 keys; only the network, the clock and the
 * faults are simulated, all driven by one PRNG seeded by the run's seed, so a
 * seed replays a run exactly.
 *
 * Owns: the world (event queue, simulated clock and network, fault schedule),
 * the simulated driver of each validator instance (honest or Byzantine), the
 * workload of client transactions, and the checkers. See README.md for the
 * fault model and what each checker checks.
 *
 * Files: world.c (PRNG, event queue, network, faults, the run loop), driver.c
 * (the consensus driver of one instance, catch-up, mempool), byz.c (Byzantine
 * behaviours), check.c (checkers), workload.c (genesis, keys, transactions),
 * main.c (command line and totals).
 */
#ifndef KOINON_SIM_H
#define KOINON_SIM_H

#include "common/common.h"
#include "consensus/consensus.h"
#include "node/ledger/ledger.h"
#include "store/store.h"

#include <sodium.h>

#define SIM_VALIDATORS_MAX 7
#define SIM_NODES_MAX 10          /* validators plus Twins instances */
#define SIM_PROPOSALS_MAX 16      /* cached proposed blocks per instance */
#define SIM_FUTURE_MAX 64         /* messages kept for the next height */
#define SIM_MEMPOOL_MAX 128       /* transactions per instance */
#define SIM_BLOCK_TXS_MAX 16      /* transactions per proposed block */
#define SIM_CATCHUP_BLOCKS_MAX 16 /* blocks per fetch reply */
#define SIM_OWN_VOTES_MAX 64    /* own votes kept per height, as the daemon */
#define SIM_CLIENTS 6
#define SIM_HEIGHTS_MAX 4096      /* bound on heights of one run */
#define SIM_EVENTS_MAX 2000000    /* bound on events of one run */
#define SIM_MAP_BYTES (64ull << 20)

#define SIM_TICK_MS 100
#define SIM_HEARTBEAT_MS 1000
#define SIM_STATUS_MS 1000
#define SIM_CATCHUP_RETRY_MS 1000
#define SIM_DRIFT_MS 5000
#define SIM_LIVENESS_HEIGHTS 5      /* K: heights every correct validator must add */
#define SIM_LIVENESS_BOUND_MS 60000 /* ... within this much simulated time */
#define SIM_STALL_MS 30000          /* --safety-only: no new height this long is a stall */
#define SIM_GENESIS_TIME_MS 1700000000000ull

/* ---------------------------------------------------------------- PRNG */

typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng *r, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi);
/* True with probability pm / 1000. */
bool sim_rng_pm(sim_rng *r, uint32_t pm);

/* ---------------------------------------------------------------- configuration */

enum sim_byz_mode {
    SIM_BYZ_EQUIVOCATE = 1 << 0, /* two different blocks for one round */
    SIM_BYZ_DOUBLE_VOTE = 1 << 1, /* conflicting prevotes/precommits to different peers */
    SIM_BYZ_INVALID = 1 << 2,    /* invalid blocks, proposed and voted for */
    SIM_BYZ_WITHHOLD = 1 << 3,   /* votes withheld from some or all peers */
    SIM_BYZ_TWINS = 1 << 4,      /* a second instance with the same key */
};

enum sim_fault {
    SIM_F_LOSS,
    SIM_F_DUP,
    SIM_F_PARTITION,
    SIM_F_CRASH,
    SIM_F_CRASH_PERSIST,
    SIM_F_CRASH_COMMIT,
    SIM_F_EQUIVOCATE,
    SIM_F_DOUBLE_VOTE,
    SIM_F_INVALID,
    SIM_F_WITHHOLD,
    SIM_F_TWINS,
    SIM_F_COUNT
};
extern const char *const sim_fault_names[SIM_F_COUNT];

typedef struct sim_config {
    uint32_t n;
    uint64_t powers[SIM_VALIDATORS_MAX];
    uint32_t byz_modes[SIM_VALIDATORS_MAX]; /* 0: correct */
    uint32_t loss_pm, dup_pm;
    uint32_t latency_min_ms, latency_jitter_ms;
    uint32_t partitions, crashes, crash_persist_pm, crash_commit_pm;
    uint32_t fault_ms;        /* faults happen in [0, fault_ms); then a stable period */
    uint32_t tx_interval_ms;  /* mean gap between injected transactions */
} sim_config;

void sim_config_pick(sim_config *cfg, sim_rng *r);
/* One line describing the configuration (for failure reports). */
void sim_config_describe(const sim_config *cfg, char *out, size_t cap);

/* ---------------------------------------------------------------- events */

enum sim_event_kind {
    SIM_EV_DELIVER = 1,
    SIM_EV_TIMEOUT,
    SIM_EV_TICK,
    SIM_EV_TX,
    SIM_EV_CRASH,
    SIM_EV_RESTART,
    SIM_EV_PARTITION,
    SIM_EV_HEAL,
    SIM_EV_FAULTS_END,
};

typedef struct sim_event {
    uint64_t at_ms;
    uint64_t seq;
    uint8_t kind;
    uint32_t node, from;
    uint32_t incarnation;
    uint8_t step;
    uint64_t height;
    uint32_t round;
    uint8_t *msg; /* owned, for deliveries */
    size_t len;
} sim_event;

/* Peer messages: msgpack arrays whose first element is the type. */
enum sim_msg {
    SIM_MSG_PROPOSAL = 1, /* [1, proposal..., block bin] */
    SIM_MSG_VOTE,         /* [2, vote...] */
    SIM_MSG_STATUS,       /* [3, height] */
    SIM_MSG_GET_BLOCKS,   /* [4, from, count] */
    SIM_MSG_BLOCKS,       /* [5, [[block, cert]...]] */
    SIM_MSG_TX,           /* [6, tx bin] */
};

/* ---------------------------------------------------------------- instances */

typedef struct sim_proposal {
    bool used;
    uint8_t block_id[KN_HASH_BYTES];
    kn_buf block;
} sim_proposal;

typedef struct sim_mp_entry {
    uint8_t id[KN_HASH_BYTES];
    uint64_t expiry_height;
    kn_buf bytes;
} sim_mp_entry;

typedef struct sim_future {
    uint32_t from;
    kn_buf msg;
} sim_future;

typedef struct sim_node {
    uint32_t id;        /* instance index */
    uint32_t validator; /* index in the validator set */
    uint32_t byz;       /* enum sim_byz_mode bits; 0 for a correct validator */
    bool up;
    bool crash_pending; /* crashed inside an event: torn down after it */
    uint32_t incarnation;
    char dir[320];
    store_env *store;
    cons_state *cons;
    ledger_chain chain;
    sim_proposal proposals[SIM_PROPOSALS_MAX];
    kn_buf own_proposal; /* the latest proposal message at this height */
    cons_vote own_votes[SIM_OWN_VOTES_MAX]; /* every vote signed at this height */
    uint32_t n_own_votes;
    uint8_t stored_valid_id[KN_HASH_BYTES]; /* the valid block whose bytes are stored */
    sim_future future[SIM_FUTURE_MAX];
    uint32_t n_future;
    bool value_pending;
    uint64_t value_height;
    uint32_t value_round;
    uint64_t last_commit_ms, last_repeat_ms, last_status_ms, catchup_asked_ms;
    uint64_t peer_height[SIM_NODES_MAX];
    sim_mp_entry mempool[SIM_MEMPOOL_MAX];
    uint32_t mempool_n;
    /* Byzantine instances: the last block proposed to them, for conflicting votes. */
    bool byz_seen;
    uint64_t byz_seen_height;
    uint8_t byz_seen_id[KN_HASH_BYTES];
} sim_node;

/* ---------------------------------------------------------------- checkers' state */

typedef struct sim_decided {
    bool has_block, has_state;
    uint8_t block_id[KN_HASH_BYTES];
    uint8_t state_hash[KN_HASH_BYTES];
} sim_decided;

typedef struct sim_signed {
    uint32_t validator;
    uint64_t height;
    uint32_t round;
    uint8_t step;
    bool nil;
    uint8_t block_id[KN_HASH_BYTES];
} sim_signed;

/* ---------------------------------------------------------------- the world */

typedef struct sim_world {
    uint64_t seed;
    sim_rng rng;
    sim_config cfg;
    char cfg_line[512];
    bool verbose, debug;
    bool safety_only;        /* a liveness failure is a stall, not a violation */
    bool stalled;

    uint64_t now_ms, seq, events;
    sim_event *heap;
    size_t heap_n, heap_cap;

    char chain_id[KN_CHAIN_ID_MAX + 1];
    cons_valset vs;
    cons_config timeouts;
    kn_keypair vkeys[SIM_VALIDATORS_MAX];
    kn_keypair clients[SIM_CLIENTS];
    ledger_genesis genesis;
    uint64_t tx_nonce;
    uint32_t txs_made;
    kn_buf sent_txs[64]; /* recent transactions, re-injected as duplicates */
    uint32_t n_sent_txs;

    char root[256]; /* temp dir holding one store per instance */
    sim_node nodes[SIM_NODES_MAX];
    uint32_t n_nodes;

    bool faults_on;
    bool partitioned;
    uint8_t side[SIM_NODES_MAX];
    uint32_t crash_persist_left, crash_commit_left;

    /* Liveness: set when the faults end. */
    bool stable;
    uint64_t live_target, live_deadline_ms, live_bound_ms;
    uint64_t progress_ms; /* when a correct validator last reached a new height */
    bool done;

    /* Checkers. */
    sim_decided *decided; /* indexed by height */
    uint64_t decided_max;
    sim_signed *signed_log;
    size_t signed_n, signed_cap;

    /* Outcome. */
    bool violated;
    char violation[512];
    uint64_t faults[SIM_F_COUNT];
    uint64_t heights, txs_committed, tx_failed, evidence, evidence_recorded;
    uint64_t own_block_missing; /* the core asked to re-propose a block it lost */
    crypto_generichash_state trace;
    uint8_t digest[KN_HASH_BYTES];
} sim_world;

/* world.c */
void sim_schedule(sim_world *w, sim_event *ev);
void sim_send(sim_world *w, uint32_t from, uint32_t to, const kn_buf *msg);
void sim_broadcast(sim_world *w, uint32_t from, const kn_buf *msg);
void sim_trace(sim_world *w, const void *p, size_t n);
void sim_crash(sim_world *w, sim_node *n, enum sim_fault why);
bool sim_correct(const sim_node *n);
/* Runs one seed; returns 0, or 1 after a violation (w->violation says which). */
int sim_run(sim_world *w, uint64_t seed, bool verbose, bool safety_only);
void sim_world_free(sim_world *w);

/* driver.c */
KN_MUST int sim_node_start(sim_world *w, sim_node *n);
void sim_node_stop(sim_world *w, sim_node *n);
void sim_node_on_message(sim_world *w, sim_node *n, uint32_t from, const uint8_t *p, size_t len);
void sim_node_on_timeout(sim_world *w, sim_node *n, const sim_event *ev);
void sim_node_tick(sim_world *w, sim_node *n);
/* Admits a client transaction into the mempool and gossips it. */
void sim_node_submit(sim_world *w, sim_node *n, const uint8_t *tx, size_t len);
void sim_node_run_actions(sim_world *w, sim_node *n, cons_actions *acts);
void sim_node_keep_proposal(sim_node *n, const uint8_t id[KN_HASH_BYTES], const uint8_t *p,
                            size_t len);
/* Builds a block on n's tip for height h; writes it and its id. */
KN_MUST int sim_node_build_block(sim_world *w, sim_node *n, uint64_t h, kn_buf *block,
                                 uint8_t id[KN_HASH_BYTES]);
void sim_encode_proposal_msg(const cons_proposal *p, const uint8_t *block, size_t len,
                             kn_buf *msg);
void sim_encode_vote_msg(const cons_vote *v, kn_buf *msg);

/* byz.c: hooks of a Byzantine instance. Each returns true when it has sent
 * the message itself (the honest path then sends nothing). */
bool sim_byz_proposal(sim_world *w, sim_node *n, const cons_proposal *p, const kn_buf *block);
bool sim_byz_vote(sim_world *w, sim_node *n, const cons_vote *v);
void sim_byz_saw_proposal(sim_world *w, sim_node *n, const cons_proposal *p);

/* check.c: each returns false after recording a violation. */
bool sim_check_signed(sim_world *w, const sim_node *n, const sim_signed *s);
bool sim_check_block(sim_world *w, const sim_node *n, const ledger_block_view *v,
                     const ledger_tx *txs, const uint8_t (*ids)[KN_HASH_BYTES],
                     const uint8_t *cert, size_t cert_len);
bool sim_check_state(sim_world *w, const sim_node *n);
void sim_check_liveness(sim_world *w);
void sim_check_final(sim_world *w);
void sim_violation(sim_world *w, const char *checker, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* workload.c */
void sim_workload_setup(sim_world *w);
/* Makes the next client transaction (some break a ledger rule on purpose). */
void sim_workload_next(sim_world *w, kn_buf *tx);

#endif
