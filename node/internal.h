/*
 * node internals shared by the files of node/ (never included outside it).
 *
 * Files: node.c (the loop, peers, ticks, shutdown), driver.c (consensus
 * actions, proposals, commits, safety state), catchup.c (fetching missed
 * blocks), mempool.c (bounded pending transactions), submit.c (decoding,
 * off-loop signature verification, admission, clients waiting for commit),
 * api.c (HTTP handlers), config.c, crash.c (crash points for the crash
 * tests).
 */
#ifndef KOINON_NODE_INTERNAL_H
#define KOINON_NODE_INTERNAL_H

#include <uv.h>

#include "net/net.h"
#include "node/node.h"

#define NODE_VERSION "0.1.0"

/* Peer messages: msgpack arrays whose first element is the type. */
enum node_msg {
    NODE_MSG_STATUS = 1,     /* [1, height, round, step] */
    NODE_MSG_PROPOSAL = 2,   /* [2, proposal, block bin] */
    NODE_MSG_VOTE = 3,       /* [3, vote] */
    NODE_MSG_TXS = 4,        /* [4, [tx bin...]] */
    NODE_MSG_GET_BLOCKS = 5, /* [5, from_height, count] */
    NODE_MSG_BLOCKS = 6,     /* [6, [[block bin, cert bin]...]] */
    NODE_MSG_PING = 7,       /* [7, sender's monotonic microseconds] */
    NODE_MSG_PONG = 8,       /* [8, the ping's value echoed] */
};

#define NODE_TICK_MS 100
#define NODE_BLOCK_FILL_MS 50 /* a proposer waits this long after a commit for
                                 transactions still being verified */
#define NODE_PEER_SILENT_MS 3000     /* a peer quiet this long shows as offline */
#define NODE_CATCHUP_BLOCKS_MAX 32   /* blocks asked for in one request */
#define NODE_CATCHUP_BYTES_MAX (8u << 20)
#define NODE_CATCHUP_RETRY_MS 2000
#define NODE_PROPOSALS_MAX 8         /* blocks kept for the current height */
#define NODE_VERIFY_BATCH_MAX 512    /* transactions per verification job */
#define NODE_VERIFY_JOBS_MAX 2       /* jobs in flight: one per core */
#define NODE_VERIFY_QUEUE_MAX 20000  /* decoded, waiting for a job */
#define NODE_GOSSIP_BATCH_MAX 1024   /* transactions per TXS message */
#define NODE_BATCH_TXS_MAX 5000      /* transactions in one POST /v1/txs/batch */
#define NODE_FUTURE_MAX 256          /* early messages kept for the next height */
#define NODE_FUTURE_BYTES_MAX (32u << 20)
#define NODE_OWN_VOTES_MAX 64        /* own votes kept per height (the latest) */
#define NODE_SUBSCRIBERS_MAX 64      /* open GET /v1/events streams */
#define NODE_EVENTS_BACKLOG_MAX 256  /* blocks sent to a subscriber that resumes */

/* ---------------------------------------------------------------- mempool */

typedef struct node__client node__client;
typedef struct node__subscriber node__subscriber;
typedef struct node node;

typedef struct node__mp_entry {
    uint8_t id[KN_HASH_BYTES];
    uint32_t len;
    uint64_t expiry_height;
    uint64_t admitted_ms; /* monotonic; for the commit latency histogram */
    bool local;           /* submitted by a client of this node */
    struct node__mp_entry *prev, *next; /* arrival order */
    struct node__mp_entry *bucket_next;
    node__client *clients; /* waiting for its commit */
    uint8_t bytes[];       /* len of them, in the entry's one allocation */
} node__mp_entry;

typedef struct node__mempool {
    node__mp_entry *head, *tail;
    node__mp_entry **buckets;
    uint32_t n_buckets; /* a power of two */
    uint32_t count, max;
    uint64_t bytes;
} node__mempool;

void node__mempool_init(node__mempool *mp, uint32_t max);
void node__mempool_free(node__mempool *mp);
node__mp_entry *node__mempool_find(const node__mempool *mp, const uint8_t id[KN_HASH_BYTES]);
/* Copies bytes. NULL when full. The id must not be present. */
node__mp_entry *node__mempool_add(node__mempool *mp, const uint8_t id[KN_HASH_BYTES],
                                  const uint8_t *bytes, uint32_t len, uint64_t expiry_height);
/* Unlinks and frees; the entry's clients must have been answered. */
void node__mempool_remove(node__mempool *mp, node__mp_entry *e);

/* ---------------------------------------------------------------- clients */

/* A POST /v1/txs whose answer is not known yet: while its signatures are
 * checked, and (with ?wait=commit) until its transaction commits. */
struct node__client {
    struct node *n;
    net_http_req *req; /* NULL once the client went away */
    bool wait_commit;
    bool in_job; /* referenced by a verification job */
    uint64_t deadline_ms;
    node__mp_entry *entry;
    node__client *entry_next;            /* in entry->clients */
    node__client *wait_prev, *wait_next; /* in n->waiting, by deadline */
};

/* ---------------------------------------------------------------- node */

typedef struct node__proposal {
    bool used;
    uint32_t round;
    uint8_t block_id[KN_HASH_BYTES];
    kn_buf block;
} node__proposal;

/* A verified proposal or vote for the next height, kept to be replayed. */
typedef struct node__future {
    uint8_t type; /* NODE_MSG_PROPOSAL or NODE_MSG_VOTE */
    uint8_t vote_type;
    uint32_t validator;
    uint32_t round;
    kn_buf msg; /* the message after its type */
} node__future;

/* The last thing this node signed: it never signs anything earlier, nor
 * anything different for the same (height, round, step). */
typedef struct node__signed {
    uint64_t height;
    uint32_t round;
    uint8_t step; /* 1 proposal, 2 prevote, 3 precommit */
    bool nil;
    uint8_t block_id[KN_HASH_BYTES];
} node__signed;

/* The signing guard: true when next is strictly later than last in (height,
 * round, step), or the very same message again. */
bool node__may_sign(const node__signed *last, const node__signed *next);

typedef struct node__peer_state {
    uint64_t height; /* last committed height it announced */
    uint64_t last_seen_ms;
    bool up;
    uint32_t rtt_us; /* last ping round trip, 0 before the first */
    uint64_t vote_height; /* the last vote received from it */
    uint32_t vote_round;
} node__peer_state;

/* ---------------------------------------------------------------- health */

#define NODE_RECENT_BLOCKS 60   /* blocks shown in status and the dashboard */
#define NODE_MISSED_WINDOW 100  /* certificates over which missed votes count */
#define NODE_EVIDENCE_MAX 16    /* equivocations kept for status */
#define NODE_HIST_BUCKETS 11
#define NODE_ERR_SLOTS (KN__ERR_END - KN__ERR_BASE) /* slot 0 is ok */
#define NODE_API_ROUTES 15

enum node_api_route {
    NODE_ROUTE_OTHER, NODE_ROUTE_STATUS, NODE_ROUTE_TXS_POST, NODE_ROUTE_TXS_GET,
    NODE_ROUTE_ACCOUNTS, NODE_ROUTE_CURRENCIES, NODE_ROUTE_BLOCKS, NODE_ROUTE_METRICS,
    NODE_ROUTE_DASHBOARD, NODE_ROUTE_EVENTS, NODE_ROUTE_RATES, NODE_ROUTE_CYCLES,
    NODE_ROUTE_REPORTS, NODE_ROUTE_EVIDENCE, NODE_ROUTE_TXS_BATCH
};
extern const char *const node__api_routes[NODE_API_ROUTES];

typedef struct node__hist {
    uint64_t buckets[NODE_HIST_BUCKETS]; /* cumulative, as Prometheus wants */
    uint64_t count, sum_ms;
} node__hist;
extern const uint64_t node__hist_bounds_ms[NODE_HIST_BUCKETS];

typedef struct node__recent_block {
    uint64_t height, time_ms;
    uint32_t txs, proposer;
} node__recent_block;

typedef struct node__evidence {
    uint32_t validator;
    uint64_t height;
    uint32_t round;
    uint8_t type;
} node__evidence;

typedef struct node__health {
    node__recent_block blocks[NODE_RECENT_BLOCKS];
    uint32_t n_blocks, next_block;
    uint64_t signed_mask[NODE_MISSED_WINDOW];
    uint32_t n_masks, next_mask;
    uint64_t proposed[CONS_VALIDATORS_MAX];
    node__evidence evidence[NODE_EVIDENCE_MAX];
    uint32_t n_evidence, next_evidence;
    uint64_t evidence_total;
    node__hist block_interval; /* between consecutive block times */
    node__hist commit_latency; /* admission to commit, for our own clients' txs */
    uint64_t results[NODE_ERR_SLOTS];  /* committed transactions by result */
    uint64_t rejected[NODE_ERR_SLOTS]; /* refused at admission by reason */
    uint64_t round_changes;
    uint64_t api_requests[NODE_API_ROUTES]; /* by route, see node__api_routes */
    uint64_t api_responses[6];  /* by status class 1xx..5xx */
} node__health;

void node__hist_observe(node__hist *h, uint64_t ms);
void node__health_on_commit(node *n, const ledger_header *hdr, const uint8_t *cert,
                            size_t cert_len, uint64_t prev_time_ms);
void node__health_on_evidence(node *n, const cons_vote *a);
/* A verified vote for the height just committed. */
void node__health_late_precommit(node *n, const cons_vote *v);
/* Recent certificates (of NODE_MISSED_WINDOW) without validator v. */
uint32_t node__health_missed(const node *n, uint32_t v);
uint32_t node__ring_index(uint32_t i, uint32_t count, uint32_t next, uint32_t cap);
void node__send_ping(node *n);
void node__on_ping_msg(node *n, uint32_t peer, kn_cur *c, bool pong);
/* Slot of an error code in the health arrays (0 for ok). */
static inline uint32_t node__err_slot(int err)
{
    return err == 0 ? 0 : (uint32_t)(err - KN__ERR_BASE);
}

typedef struct node {
    node_config *cfg;
    const char *chain_id;
    uv_loop_t loop;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    store_env *store;
    net_peers *peers;
    net_http_server *http;
    cons_state *cons;
    node__mempool mempool;

    ledger_chain chain; /* cache of the committed tip */
    uint64_t started_ms;
    uint64_t last_commit_mono_ms;
    bool stopping;
    bool handles_ready; /* tick and signal handles were initialised */

    /* Consensus driver. */
    bool value_pending; /* NEED_VALUE waits for transactions or the heartbeat */
    uint64_t value_height;
    uint32_t value_round;
    node__proposal proposals[NODE_PROPOSALS_MAX];
    node__signed last_signed;
    kn_buf own_proposal; /* our latest proposal message at this height */
    ledger_block_txs block_txs; /* the block being committed, decoded; kept between blocks */
    cons_vote own_votes[NODE_OWN_VOTES_MAX]; /* every vote we signed at this height */
    uint32_t n_own_votes;
    uint8_t stored_valid_id[KN_HASH_BYTES]; /* the valid block whose bytes are on disk */
    node__future future[NODE_FUTURE_MAX]; /* messages for the next height, replayed */
    uint32_t n_future;
    size_t future_bytes;
    uint64_t last_repeat_ms;
    uint64_t last_status_ms;
    uint64_t last_stall_log_ms;
    struct cons_timer *timers;
    bool check_invariants; /* full ledger scan after every block */

    /* Catch-up. */
    node__peer_state peer[CONS_VALIDATORS_MAX];
    uint64_t catchup_asked_ms;
    uint32_t catchup_peer; /* asked last; the next request goes to another */
    bool catchup_open;     /* a request is out and its answer not yet in */
    uint64_t catchup_since_ms;     /* monotonic; when this catch-up began, 0 when none */
    uint64_t catchup_applied;      /* blocks it applied so far */
    uint64_t catchup_certs_verified; /* certificates of fetched blocks that verified */

    /* Submissions. */
    struct node__verify_queue *vq;
    uint32_t jobs_in_flight;
    node__client *wait_head, *wait_tail;
    node__health health;
    node__subscriber *subscribers; /* GET /v1/events streams */
    uint32_t n_subscribers;
} node;

/* driver.c */
KN_MUST int node__driver_start(node *n);
void node__driver_stop(node *n);
void node__on_proposal_msg(node *n, uint32_t peer, kn_cur *c);
void node__on_vote_msg(node *n, uint32_t peer, kn_cur *c);
/* Called when transactions arrive, so a proposer waiting for them can build. */
void node__maybe_build(node *n);
/* Executes a decided block with its certificate; with restart, consensus then
 * starts the next height (catch-up restarts once after a batch). */
KN_MUST int node__commit_block(node *n, const uint8_t *block, size_t block_len,
                               const uint8_t *cert, size_t cert_len, bool restart);
void node__restart_consensus(node *n);
/* Checks a block received from a peer against the committed tip: structure,
 * header, last certificate, transaction signatures (those not already verified
 * in the mempool). Fills ids (n_txs entries, caller frees) on success. */
KN_MUST int node__check_block(node *n, const uint8_t *block, size_t len,
                              const uint8_t expected_id[KN_HASH_BYTES],
                              uint8_t (**ids)[KN_HASH_BYTES]);
void node__driver_tick(node *n, uint64_t now_mono_ms);
/* Sends what this node said at the current height (its latest proposal and
 * every vote), with the proof of its valid value (peers' prevotes their signers
 * may never repeat), to one peer, or to all with CONS_NO_VALIDATOR. */
void node__repeat_own(node *n, uint32_t peer_or_all);
/* Closes the consensus timeouts still pending (at shutdown). */
void node__driver_close_timers(node *n);

/* catchup.c */
void node__on_status_msg(node *n, uint32_t peer, kn_cur *c);
void node__on_get_blocks_msg(node *n, uint32_t peer, kn_cur *c);
void node__on_blocks_msg(node *n, uint32_t peer, kn_cur *c);
void node__catchup_tick(node *n);
void node__send_status(node *n, uint32_t peer_or_all);
/* The peer to ask for the blocks after our tip: one that is up and ahead.
 * With stay, the peer asked last if it still qualifies (it just served a good
 * batch, so a faulty peer costs one retry, not one at every turn); otherwise
 * the next one after it, so peers take turns and one that lies about its
 * height or serves nothing cannot keep us waiting. CONS_NO_VALIDATOR: none. */
uint32_t node__catchup_pick(const node *n, bool stay);

/* submit.c */
void node__submit_init(node *n);
/* True while transactions wait for their signatures to be checked. */
bool node__verifying(const node *n);
void node__submit_free(node *n);
/* A client's transaction bytes (the request is answered now or later). */
void node__submit_client(node *n, net_http_req *req, const uint8_t *tx, size_t len,
                         bool wait_commit);
void node__on_txs_msg(node *n, uint32_t peer, kn_cur *c);

/* The outcome of one transaction of a POST /v1/txs/batch, once settled. */
typedef struct node__batch_result {
    uint8_t id[KN_HASH_BYTES];
    bool has_id;    /* false when the bytes did not decode */
    bool committed; /* committed before: rec is its record */
    int err;        /* 0: accepted (pending, or committed); else why it was refused */
    ledger_tx_record rec;
} node__batch_result;
/* Checks a POST /v1/txs/batch body before anything of it is admitted: one
 * msgpack array of bin (canonical lengths) and nothing after it. 0 with
 * *count set; KN_ETOOBIG for more than txs_max elements (seen from the array
 * header alone); KN_EDECODE for anything else. Reads the bytes only. */
KN_MUST int node__batch_check(const uint8_t *body, size_t len, uint32_t txs_max,
                              uint32_t *count);
/* Every transaction of a body that node__batch_check accepted (count of them)
 * goes the way of node__submit_client without ?wait=commit; the request is
 * answered once all of them are settled (node__api_batch), or dropped if the
 * client leaves first. The body is copied. */
void node__submit_batch(node *n, net_http_req *req, const uint8_t *body, size_t len,
                        uint32_t count);
/* A transaction this node made itself (evidence of equivocation): checked
 * against the committed state on the loop, admitted to the mempool and
 * gossiped; no client waits for it. 0 when pending (now or already),
 * KN_EDUPTX when committed before, else its verification or rule error or
 * KN_EFULL. */
KN_MUST int node__submit_own(node *n, const ledger_tx *tx);
/* After a block commits: answer the waiting clients of its transactions and
 * drop them (and expired ones) from the mempool. */
void node__mempool_after_commit(node *n, const ledger_block_view *v,
                                const uint8_t (*ids)[KN_HASH_BYTES]);
void node__clients_tick(node *n, uint64_t now_ms);

/* api.c */
void node__api_handle(void *ctx, net_http_req *req);
/* {"error":{"code":...,"message":...}} with status; message NULL uses the
 * error's own message. */
void node__api_error(net_http_req *req, int status, int err, const char *message);
void node__api_error_headers(net_http_req *req, int status, int err, const char *message,
                             const char *const *headers);
/* 202 {"id":...,"status":"pending"} */
void node__api_pending(net_http_req *req, const uint8_t id[KN_HASH_BYTES]);
/* 200 {"id","status":"committed","height","index","result":{...}} */
void node__api_committed(net_http_req *req, const uint8_t id[KN_HASH_BYTES],
                         const ledger_tx_record *rec);
/* 200 {"accepted","refused","results":[...]}: one result per transaction of a
 * batch, in input order (docs/API.md, POST /v1/txs/batch). */
void node__api_batch(net_http_req *req, const node__batch_result *results, uint32_t count);

/* The dashboard page, embedded at build time from node/dashboard/index.html. */
extern const char node__dashboard_html[];
extern const size_t node__dashboard_html_len;

/* events.c: GET /v1/events, server-sent events. */
void node__events_subscribe(node *n, net_http_req *req);
void node__events_block(node *n, uint64_t height);
void node__events_validator(node *n, uint32_t v, bool online);
void node__events_evidence(node *n, const cons_vote *a);

/* metrics.c: the Prometheus text of GET /metrics. */
void node__metrics_text(node *n, kn_buf *b);

/* node.c */
bool node__peer_online(const node *n, uint32_t v);
/* Best effort: a peer that is down or saturated misses the message (consensus
 * repeats itself, catch-up asks again); the error is returned for callers that care. */
int node__send(node *n, uint32_t peer, const kn_buf *msg);
void node__broadcast(node *n, const kn_buf *msg);

/* crash.c: crash points for the crash tests (docs/ARCHITECTURE.md, "Crash
 * points"). KOINON_CRASH_AT=<name>[:<n>] makes the process die at once, with
 * NODE_CRASH_EXIT_STATUS and one line on stderr, the n-th time (default 1) the
 * loop thread reaches that point. Only node/ has them: the consensus core and
 * the ledger rules stay pure. */
#define NODE_CRASH_POINTS(X)                                                          \
    X(BEFORE_PERSIST, "before_persist") /* about to speak, nothing written */         \
    X(AFTER_PERSIST, "after_persist")   /* safety state durable, nothing signed */    \
    X(AFTER_SEND, "after_send")         /* one message of an action list sent */      \
    X(MID_COMMIT, "mid_commit")         /* block executed, write txn not committed */ \
    X(AFTER_COMMIT, "after_commit")     /* block durable, next height not started */  \
    X(MID_CATCHUP, "mid_catchup")       /* fetched blocks partly applied */

enum node_crash_point {
#define NODE__CRASH_ENUM(id, name) NODE_CRASH_##id,
    NODE_CRASH_POINTS(NODE__CRASH_ENUM)
#undef NODE__CRASH_ENUM
    NODE_CRASH__COUNT
};

#define NODE_CRASH_EXIT_STATUS 86

/* Set once by node__crash_init; the only cost of an unarmed point. */
extern bool node__crash_armed;

#define NODE_CRASH(id)                                               \
    do {                                                             \
        if (node__crash_armed) node__crash_reached(NODE_CRASH_##id); \
    } while (0)

/* Reads KOINON_CRASH_AT once, at startup. KN_ECONFIG (logged) for a malformed
 * value or an unknown point, so a test with a typo fails instead of waiting
 * for a crash that never comes. */
KN_MUST int node__crash_init(void);
/* Arms the point spec names ("<name>[:<n>]"), or disarms for NULL or "";
 * KN_ECONFIG (nothing armed) when malformed. For node__crash_init and tests. */
KN_MUST int node__crash_arm(const char *spec);
/* Counts a visit to point; ends the process when it is the armed one's n-th. */
void node__crash_reached(enum node_crash_point point);
const char *node__crash_name(enum node_crash_point point);

#endif
