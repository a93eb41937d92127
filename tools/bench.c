/* `koinon bench`: the throughput and commit latency of a running network, set
 * beside the ceiling this machine's own measured limits allow.
 *
 * The run, in order:
 *   1. This machine's limits, before any load so nothing competes with them:
 *      Ed25519 verifications of a real transfer per second on one core, the
 *      cost of decoding and executing a block of transfers through the ledger
 *      (ledger_block_execute on a temporary store), and the time of a durable
 *      LMDB commit of a block-sized write (store_commit).
 *   2. Setup: fresh keys for --accounts accounts, funded by issue transactions
 *      of the --issuer-key (each account is also granted the merchant role,
 *      so that it may pay any key in a currency without p2p); then every
 *      transfer of the warm-up and the window is signed before the clock
 *      starts, so signing costs the run nothing.
 *   3. Load: batches of pre-signed transfers go out on a fixed schedule
 *      (--rate transfers/s, one batch every --batch / --rate seconds), round
 *      robin over every --node, through POST /v1/txs/batch, from a few sender
 *      threads so a slow answer does not hold the schedule up.
 *   4. Commits: one thread follows GET /v1/events of the first node and
 *      stamps each of our transaction ids with the arrival of the block event
 *      that carries it. Latency is that stamp minus the time its batch left.
 *   5. The window: throughput counts the transfers whose commit arrived in it;
 *      p50 and p99 are over the transfers sent in it. Each node's CPU and
 *      memory come from its /metrics at the window's start and end.
 *
 * Timing targets belong here, never in tests: the integration test only
 * checks that a tiny run reports sane fields. */
#include "node/ledger/ledger.h"
#include "store/store.h"
#include "tools/internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PARSED (-1) /* parse_bench_args: go on with the run */
#define BENCH_NODES_MAX 16
#define BENCH_ACCOUNTS_DEFAULT 1000
#define BENCH_ACCOUNTS_MAX 1000000
#define BENCH_RATE_DEFAULT 20000
#define BENCH_RATE_MAX 1000000
#define BENCH_WARMUP_DEFAULT 5
#define BENCH_DURATION_DEFAULT 30
#define BENCH_DRAIN_DEFAULT 10
#define BENCH_SECONDS_MAX 3600
/* Every transfer is signed and kept in memory before the run (about 260 bytes
 * each with its bookkeeping): this bounds the memory to about half a GB. */
#define BENCH_TXS_MAX 2000000
/* The node's bulk route takes up to about 5000 transactions per request. */
#define BENCH_BATCH_MAX 5000
#define BENCH_INTERVAL_MS_DEFAULT 100 /* batch spacing when --batch is not given */
#define BENCH_SENDERS_MAX 32
#define BENCH_EXPIRY_BLOCKS_DEFAULT 100000
#define BENCH_SIGNERS_MAX 16
/* A funding transaction: one issue, then a merchant grant and a payment from
 * the treasury per account: 1 + 2 x 7 operations, within LEDGER_OPS_MAX. */
#define BENCH_FUND_ACCOUNTS_PER_TX 7
#define BENCH_FUND_BATCH_MAX 500
#define BENCH_CATEGORY "bench"
#define BENCH_REF "koinon bench"
#define BENCH_EVENTS_WAIT_MS 15000
#define BENCH_SETUP_WAIT_MS 120000
#define BENCH_EVENT_BYTES_MAX (16u << 20) /* one block event: 20,000 ids fit */
#define BENCH_POST_TIMEOUT_MS 60000
#define BENCH_REFUSAL_CODES_MAX 16
/* The machine's limits. */
#define BENCH_VERIFY_MS 1000
#define BENCH_BLOCK_TRANSFERS 5000 /* a full block of the devnet's block_txs_max */
#define BENCH_BLOCK_PUTS (2 * BENCH_BLOCK_TRANSFERS) /* payer and payee per transfer */
#define BENCH_BLOCK_BLOB_BYTES (1u << 20)            /* the block's own bytes */
#define BENCH_STATE_KEYS 20000
#define BENCH_STATE_VALUE_BYTES 96
#define BENCH_COMMIT_ROUNDS 5
#define BENCH_APPLY_ACCOUNTS 2000
#define BENCH_STORE_MAP_BYTES (1ull << 30)
/* A planning figure for this kind of machine, used when the apply cost cannot
 * be measured. */
#define BENCH_PLANNED_APPLY_US 23.0

/* ---------------------------------------------------------------- options */

typedef struct bench_opts {
    char nodes[BENCH_NODES_MAX][CLI_URL_MAX];
    uint32_t n_nodes;
    const char *issuer_key;
    const char *currency;
    uint64_t accounts, rate, warmup_s, duration_s, drain_s, batch, senders, expiry_blocks;
    uint64_t validators, cores; /* 0: as the node reports, as the machine has */
    const char *store_dir;
    const char *json_out;
    bool json;
} bench_opts;

static const char bench_usage[] =
    "usage: koinon bench --issuer-key FILE --currency CODE [--node URL]... [--accounts N]\n"
    "         [--rate R] [--warmup S] [--duration S] [--batch N] [--drain S] [--senders N]\n"
    "         [--expiry-blocks N] [--validators V] [--cores C] [--store-dir DIR] [--json]\n"
    "         [--json-out FILE]\n";

static const char bench_help[] =
    "usage: koinon bench --issuer-key FILE --currency CODE [options]\n\n"
    "Measures a running network: committed transfers per second and commit latency\n"
    "(p50, p99, from submission to the block event), refused and pending transfers,\n"
    "and each node's CPU and memory (from its /metrics). In the same run it measures\n"
    "this machine's limits (Ed25519 verifications per second per core, the apply cost\n"
    "of a transfer, a durable block commit) and prints the ceiling they imply beside\n"
    "the rate achieved (docs/PERFORMANCE.md).\n\n"
    "Setup creates --accounts fresh keys, funds them with issue transactions signed\n"
    "by --issuer-key (granting each the merchant role, so any may pay any), and signs\n"
    "every transfer before the clock starts. Transfers go out through POST\n"
    "/v1/txs/batch in batches on a fixed schedule, round robin over the nodes.\n\n"
    "  --node URL            a node API; repeat it or separate URLs by commas\n"
    "                        (default " CLI_NODE_DEFAULT "); the first one's events are followed\n"
    "  --issuer-key FILE     a key that may issue the currency (e.g. keys/issuer-svq.json)\n"
    "  --currency CODE       the currency, e.g. SVQ\n"
    "  --accounts N          accounts to create and pay between (default 1000)\n"
    "  --rate R              transfers per second offered (default 20000)\n"
    "  --warmup S            seconds of load before the window (default 5)\n"
    "  --duration S          seconds of the measured window (default 30)\n"
    "  --batch N             transfers per request (default: 100 ms of the rate, at most 5000)\n"
    "  --drain S             seconds to wait after the load for the last commits (default 10)\n"
    "  --senders N           sending threads (default: the number of nodes, at least 4)\n"
    "  --expiry-blocks N     transfers expire N blocks after the current height (default 100000)\n"
    "  --validators V        validators sharing this machine, for the ceiling\n"
    "                        (default: as many as the node's status lists)\n"
    "  --cores C             cores they share (default: this machine's online CPUs)\n"
    "  --store-dir DIR       where the durable commit is measured: put it on the nodes' disk\n"
    "                        (default $TMPDIR or /tmp)\n"
    "  --json                print the result as one JSON object\n"
    "  --json-out FILE       also write that JSON object to FILE\n"
    "  --help                show this help\n";

enum {
    OPT_NODE = 256,
    OPT_ISSUER_KEY,
    OPT_CURRENCY,
    OPT_ACCOUNTS,
    OPT_RATE,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_BATCH,
    OPT_DRAIN,
    OPT_SENDERS,
    OPT_EXPIRY_BLOCKS,
    OPT_VALIDATORS,
    OPT_CORES,
    OPT_STORE_DIR,
    OPT_JSON,
    OPT_JSON_OUT,
    OPT_HELP
};

/* --node URL[,URL...]: each one checked and added. */
static int add_nodes(bench_opts *o, const char *list)
{
    char copy[BENCH_NODES_MAX * CLI_URL_MAX];
    if (strlen(list) >= sizeof copy) return cli_usage_error(bench_usage, "--node list is too long");
    strcpy(copy, list);
    char *save = NULL;
    for (char *url = strtok_r(copy, ",", &save); url; url = strtok_r(NULL, ",", &save)) {
        if (o->n_nodes == BENCH_NODES_MAX)
            return cli_usage_error(bench_usage, "at most %d nodes", BENCH_NODES_MAX);
        if (cli_parse_node(url, o->nodes[o->n_nodes]))
            return cli_usage_error(bench_usage, "--node must be an http(s) URL, got '%s'", url);
        o->n_nodes++;
    }
    return 0;
}

typedef struct number_opt {
    int id;
    const char *name;
    uint64_t min, max;
    uint64_t *out;
} number_opt;

static int parse_number(const number_opt *table, size_t n, int id, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].id != id) continue;
        if (cli_parse_u64(value, table[i].min, table[i].max, table[i].out) == 0) return 0;
        return cli_usage_error(bench_usage, "--%s must be an integer from %" PRIu64 " to %" PRIu64,
                               table[i].name, table[i].min, table[i].max);
    }
    KN_REQUIRE(!"an option without its entry in the number table");
    return CLI_EXIT_USAGE;
}

/* Fills o from the command line: PARSED, or the exit status when there is
 * nothing more to do (help shown, usage error reported). */
static int parse_bench_args(int argc, char **argv, bench_opts *o)
{
    static const struct option long_opts[] = {
        {"node", required_argument, NULL, OPT_NODE},
        {"issuer-key", required_argument, NULL, OPT_ISSUER_KEY},
        {"currency", required_argument, NULL, OPT_CURRENCY},
        {"accounts", required_argument, NULL, OPT_ACCOUNTS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"senders", required_argument, NULL, OPT_SENDERS},
        {"expiry-blocks", required_argument, NULL, OPT_EXPIRY_BLOCKS},
        {"validators", required_argument, NULL, OPT_VALIDATORS},
        {"cores", required_argument, NULL, OPT_CORES},
        {"store-dir", required_argument, NULL, OPT_STORE_DIR},
        {"json", no_argument, NULL, OPT_JSON},
        {"json-out", required_argument, NULL, OPT_JSON_OUT},
        {"help", no_argument, NULL, OPT_HELP},
        {0}};
    const number_opt numbers[] = {
        {OPT_ACCOUNTS, "accounts", 2, BENCH_ACCOUNTS_MAX, &o->accounts},
        {OPT_RATE, "rate", 1, BENCH_RATE_MAX, &o->rate},
        {OPT_WARMUP, "warmup", 0, BENCH_SECONDS_MAX, &o->warmup_s},
        {OPT_DURATION, "duration", 1, BENCH_SECONDS_MAX, &o->duration_s},
        {OPT_BATCH, "batch", 1, BENCH_BATCH_MAX, &o->batch},
        {OPT_DRAIN, "drain", 0, BENCH_SECONDS_MAX, &o->drain_s},
        {OPT_SENDERS, "senders", 1, BENCH_SENDERS_MAX, &o->senders},
        {OPT_EXPIRY_BLOCKS, "expiry-blocks", 1, 100000000, &o->expiry_blocks},
        {OPT_VALIDATORS, "validators", 1, CONS_VALIDATORS_MAX, &o->validators},
        {OPT_CORES, "cores", 1, 4096, &o->cores},
    };
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_NODE: rc = add_nodes(o, optarg); break;
        case OPT_ISSUER_KEY: o->issuer_key = optarg; break;
        case OPT_CURRENCY: o->currency = optarg; break;
        case OPT_STORE_DIR: o->store_dir = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_JSON_OUT: o->json_out = optarg; break;
        case OPT_HELP: return cli_help(bench_help);
        case ':':
        case '?': return cli_bad_option(c, argv, bench_usage);
        default: rc = parse_number(numbers, sizeof numbers / sizeof numbers[0], c, optarg);
        }
    }
    if (rc) return rc;
    if (optind != argc)
        return cli_usage_error(bench_usage, "unexpected argument '%s'", argv[optind]);
    if (!o->issuer_key) return cli_usage_error(bench_usage, "--issuer-key FILE is required");
    if (!o->currency) return cli_usage_error(bench_usage, "--currency CODE is required");
    size_t code_len = strlen(o->currency);
    if (code_len == 0 || code_len > LEDGER_CODE_MAX)
        return cli_usage_error(bench_usage, "--currency must be 1 to %d characters",
                               LEDGER_CODE_MAX);
    if (o->n_nodes == 0) rc = add_nodes(o, CLI_NODE_DEFAULT);
    return rc ? rc : PARSED;
}

/* ---------------------------------------------------------------- the run's state */

typedef struct refusal {
    char code[64];
    uint64_t n;
} refusal;

typedef struct bench {
    const bench_opts *o;
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t height;
    uint32_t validators;
    kn_keypair issuer;
    kn_keypair *accounts;
    uint64_t funding_minor; /* paid to each account */
    /* Every transaction: the funding ones first, then the transfers. */
    uint32_t n_fund, n_transfers, n_txs;
    uint8_t (*ids)[KN_HASH_BYTES];
    const uint8_t **bytes;
    uint32_t *lens;
    kn_buf arenas[BENCH_SIGNERS_MAX + 1]; /* the encodings; the last one: funding */
    uint32_t *table; /* id -> index + 1, open addressing */
    uint32_t table_mask;
    /* Written by the sender threads (each its own transactions), read after they end. */
    uint64_t *sent_us;
    uint8_t *refused;
    /* Written by the event thread, read after it ends. */
    uint64_t *commit_us;
    int32_t *result;
    /* The schedule. */
    uint32_t batch, n_batches, n_senders;
    uint64_t interval_us, t0_us;
    bool single; /* the nodes have no batch route: one POST per transaction */
    /* Progress, shared. */
    atomic_uint_fast64_t fund_committed, fund_failed, transfers_committed, accepted;
    atomic_bool stop_events, stop_senders, events_up;
    pthread_t events;
    bool events_started;
    /* Event thread only. */
    kn_buf event_text;
    size_t event_scanned;
    uint64_t last_height;
    /* Refusals by code, under the lock. */
    pthread_mutex_t lock;
    refusal refusals[BENCH_REFUSAL_CODES_MAX];
    uint32_t n_refusal_codes;
    uint64_t refused_total;
} bench;

static void count_refusal(bench *B, const char *code, uint64_t n)
{
    pthread_mutex_lock(&B->lock);
    B->refused_total += n;
    uint32_t i = 0;
    while (i < B->n_refusal_codes && strcmp(B->refusals[i].code, code) != 0) i++;
    if (i == B->n_refusal_codes && i < BENCH_REFUSAL_CODES_MAX) {
        snprintf(B->refusals[i].code, sizeof B->refusals[i].code, "%s", code);
        B->n_refusal_codes++;
    }
    if (i < B->n_refusal_codes) B->refusals[i].n += n;
    pthread_mutex_unlock(&B->lock);
}

static void sleep_until_us(uint64_t due_us)
{
    uint64_t now = kn_mono_us();
    if (now >= due_us) return;
    uint64_t d = due_us - now;
    struct timespec ts = {(time_t)(d / 1000000), (long)(d % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------- transactions */

/* The issue of count x amount into the treasury, then for each account a
 * merchant grant and a payment from the treasury. The currency's demo flags
 * have no p2p: a merchant may pay any key, a plain holder only businesses. */
static void fund_tx(ledger_tx *tx, const char *code, const kn_keypair *accounts, uint32_t count,
                    uint64_t amount)
{
    KN_REQUIRE(count >= 1 && count <= BENCH_FUND_ACCOUNTS_PER_TX);
    memset(tx, 0, sizeof *tx);
    ledger_op *issue = &tx->ops[tx->n_ops++];
    issue->kind = LEDGER_OP_ISSUE;
    snprintf(issue->currency, sizeof issue->currency, "%s", code);
    issue->amount = amount * count;
    snprintf(issue->ref, sizeof issue->ref, "%s", BENCH_REF);
    for (uint32_t i = 0; i < count; i++) {
        ledger_op *grant = &tx->ops[tx->n_ops++];
        grant->kind = LEDGER_OP_GRANT;
        snprintf(grant->currency, sizeof grant->currency, "%s", code);
        grant->role = LEDGER_ROLE_MERCHANT;
        memcpy(grant->from, accounts[i].pk, KN_PK_BYTES);
        snprintf(grant->ref, sizeof grant->ref, "%s", BENCH_CATEGORY);
        ledger_op *pay = &tx->ops[tx->n_ops++];
        pay->kind = LEDGER_OP_TRANSFER;
        snprintf(pay->currency, sizeof pay->currency, "%s", code);
        memcpy(pay->to, accounts[i].pk, KN_PK_BYTES); /* from the treasury: from stays zero */
        pay->amount = amount;
    }
}

static void transfer_tx(ledger_tx *tx, const char *code, const kn_keypair *payer,
                        const uint8_t payee[KN_PK_BYTES], uint64_t amount)
{
    memset(tx, 0, sizeof *tx);
    ledger_op *op = &tx->ops[tx->n_ops++];
    op->kind = LEDGER_OP_TRANSFER;
    snprintf(op->currency, sizeof op->currency, "%s", code);
    memcpy(op->from, payer->pk, KN_PK_BYTES);
    memcpy(op->to, payee, KN_PK_BYTES);
    op->amount = amount;
}

/* Chain id, a random nonce and the expiry as `koinon transfer` sets them, one
 * signature, then the bytes appended to out. Sets tx->id. */
static void seal_tx(ledger_tx *tx, const char *chain_id, uint64_t expiry_height,
                    const kn_keypair *signer, kn_buf *out)
{
    snprintf(tx->chain_id, sizeof tx->chain_id, "%s", chain_id);
    randombytes_buf(&tx->nonce, sizeof tx->nonce);
    tx->expiry_height = expiry_height;
    KN_REQUIRE(ledger_tx_sign(tx, signer) == 0); /* one signature always fits */
    size_t before = out->len;
    ledger_tx_encode(tx, out);
    KN_REQUIRE(out->len - before <= LEDGER_TX_BYTES_MAX);
}

/* ---------------------------------------------------------------- the machine's limits */

typedef struct ceiling {
    double verify_us, verify_per_s_core;
    double apply_us;
    bool apply_measured;
    double block_commit_ms;
    uint32_t cores, validators;
    double cpu_bound_per_s, storage_bound_per_s, ceiling_per_s;
} ceiling;

/* The time a node spends checking one transfer's signature: ledger_tx_verify
 * of a decoded, real transfer (its body encoded and hashed, then verified). */
static double measure_verify_us(const char *chain_id)
{
    static ledger_tx tx, decoded;
    kn_keypair a, b;
    kn_keypair_generate(&a);
    kn_keypair_generate(&b);
    kn_buf bytes = {0};
    transfer_tx(&tx, "BENCH", &a, b.pk, 1);
    seal_tx(&tx, chain_id, 1000, &a, &bytes);
    KN_REQUIRE(ledger_tx_decode(bytes.data, bytes.len, &decoded) == 0);
    uint64_t start = kn_mono_us(), now = start, n = 0;
    while (now - start < BENCH_VERIFY_MS * 1000ull) {
        for (int i = 0; i < 64; i++, n++) KN_REQUIRE(ledger_tx_verify(&decoded, chain_id) == 0);
        now = kn_mono_us();
    }
    kn_buf_free(&bytes);
    kn_keypair_wipe(&a);
    kn_keypair_wipe(&b);
    return (double)(now - start) / (double)n;
}

/* A directory of its own under root for a temporary store. */
static int temp_store(const char *root, char *dir, store_env **env)
{
    snprintf(dir, CLI_PATH_MAX, "%s/koinon-bench-XXXXXX", root);
    if (!mkdtemp(dir)) return cli_fail(KN_EIO, "cannot create a directory in %s: %s", root,
                                       strerror(errno));
    int rc = store_open(dir, BENCH_STORE_MAP_BYTES, env);
    if (rc) {
        rmdir(dir);
        return cli_fail(rc, "cannot open a store in %s", dir);
    }
    return 0;
}

static void temp_store_remove(const char *dir, store_env *env)
{
    char path[CLI_PATH_MAX + 16];
    store_close(env);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

static void state_key(uint8_t key[8 + KN_HASH_BYTES], uint32_t k)
{
    memcpy(key, "benchacc", 8);
    kn_hash(key + 8, "koinon/bench/v1", &k, sizeof k);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A block-sized durable write, as a node commits a full block: 10,000 account
 * updates among BENCH_STATE_KEYS existing ones and 1 MiB of block bytes, in
 * one write transaction; the median of a few. */
static int measure_block_commit_ms(const char *root, double *out_ms)
{
    char dir[CLI_PATH_MAX];
    store_env *env;
    if (temp_store(root, dir, &env)) return CLI_EXIT_FAIL;
    uint8_t key[8 + KN_HASH_BYTES], value[BENCH_STATE_VALUE_BYTES];
    uint8_t *blob = malloc(BENCH_BLOCK_BLOB_BYTES);
    KN_REQUIRE(blob != NULL);
    randombytes_buf(blob, BENCH_BLOCK_BLOB_BYTES);
    randombytes_buf(value, sizeof value);
    double ms[BENCH_COMMIT_ROUNDS];
    store_txn *t;
    int rc = store_begin(env, true, &t);
    for (uint32_t k = 0; !rc && k < BENCH_STATE_KEYS; k++) {
        state_key(key, k);
        rc = store_put(t, STORE_STATE, key, sizeof key, value, sizeof value);
    }
    if (!rc) rc = store_commit(t);
    for (uint32_t r = 0; !rc && r < BENCH_COMMIT_ROUNDS; r++) {
        uint64_t start = kn_mono_us();
        rc = store_begin(env, true, &t);
        for (uint32_t j = 0; !rc && j < BENCH_BLOCK_PUTS; j++) {
            state_key(key, randombytes_uniform(BENCH_STATE_KEYS));
            value[0] = (uint8_t)j;
            rc = store_put(t, STORE_STATE, key, sizeof key, value, sizeof value);
        }
        uint8_t height[8];
        store_height_key(height, r + 1);
        if (!rc) rc = store_put(t, STORE_BLOCKS, height, sizeof height, blob, BENCH_BLOCK_BLOB_BYTES);
        if (!rc) rc = store_commit(t);
        ms[r] = (double)(kn_mono_us() - start) / 1000.0;
    }
    free(blob);
    temp_store_remove(dir, env);
    if (rc) return cli_fail(rc, "the durable commit measurement failed in %s", root);
    qsort(ms, BENCH_COMMIT_ROUNDS, sizeof ms[0], cmp_double);
    *out_ms = ms[BENCH_COMMIT_ROUNDS / 2];
    return 0;
}

/* Builds block height+1 of the n encoded transactions on top of the chain in
 * env and executes it as a node does at commit. *exec_us (when not NULL) gets
 * the time of decoding the block and its transactions and executing them,
 * without the durable commit (measured on its own). */
static int execute_block(store_env *env, const char *chain_id, uint64_t time_ms,
                         const ledger_slice *slices, const uint8_t (*ids)[KN_HASH_BYTES],
                         uint32_t n, uint64_t *exec_us)
{
    store_txn *t;
    ledger_chain ch;
    int rc = store_begin(env, false, &t);
    if (rc) return rc;
    rc = ledger_chain_get(t, &ch);
    store_abort(t);
    if (rc) return rc;
    ledger_header h = {.height = ch.height + 1, .time_ms = time_ms};
    snprintf(h.chain_id, sizeof h.chain_id, "%s", chain_id);
    memcpy(h.prev_id, ch.last_block_id, KN_HASH_BYTES);
    memcpy(h.state_hash, ch.state_hash, KN_HASH_BYTES);
    kn_buf block = {0};
    uint8_t block_id[KN_HASH_BYTES];
    ledger_slice no_cert = {NULL, 0};
    ledger_block_build(&h, slices, ids, n, &no_cert, &block, block_id);
    static const uint8_t cert[1] = {0xc0}; /* execution stores it, never checks it */

    /* A node keeps its decoded transactions' memory from block to block:
     * decode once untimed so the timed pass, like a node's, reuses it. */
    static ledger_block_txs bt;
    ledger_block_view v;
    rc = ledger_block_decode(block.data, block.len, &v);
    if (!rc) rc = ledger_block_txs_decode(&v, &bt);
    if (!rc) ledger_block_view_free(&v);
    uint64_t start = kn_mono_us();
    if (!rc) rc = ledger_block_decode(block.data, block.len, &v);
    if (!rc) {
        rc = ledger_block_txs_decode(&v, &bt);
        if (!rc) rc = store_begin(env, true, &t);
        if (!rc) {
            rc = ledger_block_execute(t, &v, block.data, block.len, bt.txs, cert, sizeof cert);
            if (exec_us) *exec_us = kn_mono_us() - start;
            rc = rc ? (store_abort(t), rc) : store_commit(t);
        }
        ledger_block_view_free(&v);
    }
    kn_buf_free(&block);
    return rc;
}

/* n transactions built by the caller into txs[]: their bytes and ids. */
typedef struct tx_list {
    kn_buf bytes[BENCH_APPLY_ACCOUNTS];
    ledger_slice slices[BENCH_APPLY_ACCOUNTS];
    uint8_t ids[BENCH_APPLY_ACCOUNTS][KN_HASH_BYTES];
    uint32_t n;
} tx_list;

static void tx_list_add(tx_list *l, ledger_tx *tx, const char *chain_id, const kn_keypair *signer)
{
    KN_REQUIRE(l->n < BENCH_APPLY_ACCOUNTS);
    seal_tx(tx, chain_id, 1000, signer, &l->bytes[l->n]);
    memcpy(l->ids[l->n], tx->id, KN_HASH_BYTES);
    l->n++;
}

static void tx_list_free(tx_list *l)
{
    for (uint32_t i = 0; i < l->n; i++) kn_buf_free(&l->bytes[i]);
    l->n = 0;
}

static void slices_of(tx_list *l)
{
    for (uint32_t i = 0; i < l->n; i++) l->slices[i] = (ledger_slice){l->bytes[i].data, l->bytes[i].len};
}

/* True when every transaction of l committed with the result ok. */
static bool all_ok(store_env *env, const tx_list *l)
{
    store_txn *t;
    if (store_begin(env, false, &t)) return false;
    bool ok = true;
    for (uint32_t i = 0; ok && i < l->n; i++) {
        ledger_tx_record rec;
        ok = ledger_tx_record_get(t, l->ids[i], &rec) == 0 && rec.result == 0;
    }
    store_abort(t);
    return ok;
}

static void apply_genesis(ledger_genesis *g, const char *chain_id, const kn_keypair *issuer)
{
    memset(g, 0, sizeof *g);
    snprintf(g->chain_id, sizeof g->chain_id, "%s", chain_id);
    g->time_ms = 1000;
    ledger_currency *c = &g->currencies[g->n_currencies++];
    snprintf(c->code, sizeof c->code, "BENCH");
    snprintf(c->name, sizeof c->name, "Bench");
    snprintf(c->city, sizeof c->city, "Bench");
    c->scale = 2;
    c->max_supply = 1000000000000ull;
    c->n_issuer_admins = 1;
    memcpy(c->issuer_admins[0], issuer->pk, KN_PK_BYTES);
    c->issuer_threshold = 1;
    g->n_admins = 1;
    memcpy(g->admins[0], issuer->pk, KN_PK_BYTES);
}

/* The cost per transfer of decoding and executing a block of
 * BENCH_APPLY_ACCOUNTS transfers through the ledger on a temporary store:
 * genesis, a block that funds the accounts, then the timed block. */
static int measure_apply_us(const char *root, double *out_us)
{
    static const char chain_id[] = "koinon-bench-apply";
    static ledger_genesis g;
    static ledger_tx tx;
    static tx_list list;
    static kn_keypair keys[BENCH_APPLY_ACCOUNTS];
    kn_keypair issuer;
    kn_keypair_generate(&issuer);
    for (uint32_t i = 0; i < BENCH_APPLY_ACCOUNTS; i++) kn_keypair_generate(&keys[i]);
    char dir[CLI_PATH_MAX];
    store_env *env;
    if (temp_store(root, dir, &env)) return CLI_EXIT_FAIL;
    apply_genesis(&g, chain_id, &issuer);
    store_txn *t;
    int rc = store_begin(env, true, &t);
    if (!rc) rc = ledger_genesis_apply(t, &g) ? (store_abort(t), KN_EINVAL) : store_commit(t);

    for (uint32_t i = 0; !rc && i < BENCH_APPLY_ACCOUNTS; i += BENCH_FUND_ACCOUNTS_PER_TX) {
        uint32_t n = BENCH_APPLY_ACCOUNTS - i < BENCH_FUND_ACCOUNTS_PER_TX
                         ? BENCH_APPLY_ACCOUNTS - i
                         : BENCH_FUND_ACCOUNTS_PER_TX;
        fund_tx(&tx, "BENCH", &keys[i], n, 100);
        tx_list_add(&list, &tx, chain_id, &issuer);
    }
    slices_of(&list);
    if (!rc) rc = execute_block(env, chain_id, 2000, list.slices,
                                (const uint8_t(*)[KN_HASH_BYTES])list.ids, list.n, NULL);
    bool funded = !rc && all_ok(env, &list);
    tx_list_free(&list);

    uint64_t exec_us = 0;
    for (uint32_t i = 0; funded && i < BENCH_APPLY_ACCOUNTS; i++) {
        uint32_t payee = (i + 1 + randombytes_uniform(BENCH_APPLY_ACCOUNTS - 1)) % BENCH_APPLY_ACCOUNTS;
        transfer_tx(&tx, "BENCH", &keys[i], keys[payee].pk, 1);
        tx_list_add(&list, &tx, chain_id, &keys[i]);
    }
    slices_of(&list);
    if (funded) rc = execute_block(env, chain_id, 3000, list.slices,
                                   (const uint8_t(*)[KN_HASH_BYTES])list.ids, list.n, &exec_us);
    bool applied = funded && !rc && all_ok(env, &list);
    tx_list_free(&list);
    temp_store_remove(dir, env);
    kn_keypair_wipe(&issuer);
    sodium_memzero(keys, sizeof keys);
    if (!applied) return KN_EINVAL; /* the caller falls back on the planning figure */
    *out_us = (double)exec_us / BENCH_APPLY_ACCOUNTS;
    return 0;
}

/* Per transfer, each validator verifies its signature once and applies it
 * once: V validators sharing C cores commit at most C / (V x (verify + apply))
 * transfers per second. Every validator also writes every block durably, on
 * this machine one disk: at most txs per block / (V x commit time). */
static void ceiling_bounds(ceiling *c)
{
    double per_transfer_s = (c->verify_us + c->apply_us) / 1e6;
    c->cpu_bound_per_s = c->cores / (c->validators * per_transfer_s);
    c->storage_bound_per_s =
        BENCH_BLOCK_TRANSFERS / (c->validators * (c->block_commit_ms / 1000.0));
    c->ceiling_per_s = fmin(c->cpu_bound_per_s, c->storage_bound_per_s);
}

static int measure_ceiling(const bench *B, ceiling *c)
{
    const char *root = B->o->store_dir;
    c->cores = B->o->cores ? (uint32_t)B->o->cores : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (c->cores == 0) c->cores = 1;
    c->validators = B->validators;
    c->verify_us = measure_verify_us(B->chain_id);
    c->verify_per_s_core = 1e6 / c->verify_us;
    c->apply_measured = measure_apply_us(root, &c->apply_us) == 0;
    if (!c->apply_measured) {
        fprintf(stderr,
                "koinon: bench: could not measure the apply cost; using the planning figure "
                "of %.0f us\n",
                BENCH_PLANNED_APPLY_US);
        c->apply_us = BENCH_PLANNED_APPLY_US;
    }
    if (measure_block_commit_ms(root, &c->block_commit_ms)) return CLI_EXIT_FAIL;
    ceiling_bounds(c);
    return 0;
}

/* ---------------------------------------------------------------- setup */

static int fetch_status(bench *B)
{
    cli_reply r;
    if (cli_get_json(B->o->nodes[0], "/v1/status", false, &r)) return CLI_EXIT_FAIL;
    int64_t h;
    const char *id = cli_jstr(r.json, "chain_id", "");
    size_t n_validators = json_array_size(json_object_get(r.json, "validators"));
    int rc = 0;
    if (!cli_jint(r.json, "height", &h) || h < 0)
        rc = cli_fail(KN_EDECODE, "node status at %s has no height", B->o->nodes[0]);
    else if (!id[0] || strlen(id) > KN_CHAIN_ID_MAX)
        rc = cli_fail(KN_EDECODE, "node status at %s has no usable chain_id", B->o->nodes[0]);
    else {
        snprintf(B->chain_id, sizeof B->chain_id, "%s", id);
        B->height = (uint64_t)h;
        B->validators = B->o->validators ? (uint32_t)B->o->validators : (uint32_t)n_validators;
        if (B->validators == 0) B->validators = 1;
    }
    cli_reply_free(&r);
    return rc;
}

/* Sizes the run and allocates every per-transaction array. */
static int plan(bench *B)
{
    const bench_opts *o = B->o;
    uint64_t transfers = o->rate * (o->warmup_s + o->duration_s);
    if (transfers > BENCH_TXS_MAX)
        return cli_usage_error(bench_usage,
                               "--rate x (--warmup + --duration) is %" PRIu64
                               " transfers, over the %d this tool pre-signs",
                               transfers, BENCH_TXS_MAX);
    uint64_t batch = o->batch ? o->batch : o->rate * BENCH_INTERVAL_MS_DEFAULT / 1000;
    if (batch < 1) batch = 1;
    if (batch > BENCH_BATCH_MAX) batch = BENCH_BATCH_MAX;
    B->batch = (uint32_t)batch;
    B->interval_us = batch * 1000000ull / o->rate;
    B->n_transfers = (uint32_t)transfers;
    B->n_batches = (uint32_t)((transfers + batch - 1) / batch);
    B->n_senders = (uint32_t)(o->senders ? o->senders : (o->n_nodes > 4 ? o->n_nodes : 4));
    uint64_t n_accounts = o->accounts;
    B->n_fund = (uint32_t)((n_accounts + BENCH_FUND_ACCOUNTS_PER_TX - 1) / BENCH_FUND_ACCOUNTS_PER_TX);
    B->n_txs = B->n_fund + B->n_transfers;
    /* Each account pays at most twice its share (see pick_payer), never more
     * than it was given, whatever order the transfers commit in. */
    B->funding_minor = 2 * ((transfers + n_accounts - 1) / n_accounts) + 2;

    size_t n = B->n_txs;
    B->accounts = calloc(n_accounts, sizeof *B->accounts);
    B->ids = calloc(n, sizeof *B->ids);
    B->bytes = calloc(n, sizeof *B->bytes);
    B->lens = calloc(n, sizeof *B->lens);
    B->sent_us = calloc(n, sizeof *B->sent_us);
    B->refused = calloc(n, sizeof *B->refused);
    B->commit_us = calloc(n, sizeof *B->commit_us);
    B->result = calloc(n, sizeof *B->result);
    uint32_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    B->table = calloc(cap, sizeof *B->table);
    B->table_mask = cap - 1;
    if (!B->accounts || !B->ids || !B->bytes || !B->lens || !B->sent_us || !B->refused ||
        !B->commit_us || !B->result || !B->table)
        return cli_fail(KN_ENOMEM, "cannot allocate the bookkeeping of %zu transactions", n);
    return 0;
}

static uint32_t slot_of(const bench *B, const uint8_t id[KN_HASH_BYTES])
{
    uint64_t h;
    memcpy(&h, id, sizeof h); /* ids are hashes: any 8 bytes spread well */
    return (uint32_t)h & B->table_mask;
}

static void index_add(bench *B, uint32_t i)
{
    uint32_t s = slot_of(B, B->ids[i]);
    while (B->table[s]) s = (s + 1) & B->table_mask;
    B->table[s] = i + 1;
}

/* The index of one of our transactions, or -1. */
static int64_t index_find(const bench *B, const uint8_t id[KN_HASH_BYTES])
{
    for (uint32_t s = slot_of(B, id); B->table[s]; s = (s + 1) & B->table_mask) {
        uint32_t i = B->table[s] - 1;
        if (memcmp(B->ids[i], id, KN_HASH_BYTES) == 0) return i;
    }
    return -1;
}

static void sign_funding(bench *B)
{
    static ledger_tx tx;
    kn_buf *arena = &B->arenas[BENCH_SIGNERS_MAX];
    uint64_t expiry = B->height + B->o->expiry_blocks;
    uint32_t *offsets = calloc(B->n_fund, sizeof *offsets);
    KN_REQUIRE(offsets != NULL);
    for (uint32_t i = 0; i < B->n_fund; i++) {
        uint32_t first = i * BENCH_FUND_ACCOUNTS_PER_TX;
        uint32_t n = (uint32_t)B->o->accounts - first;
        if (n > BENCH_FUND_ACCOUNTS_PER_TX) n = BENCH_FUND_ACCOUNTS_PER_TX;
        fund_tx(&tx, B->o->currency, &B->accounts[first], n, B->funding_minor);
        size_t before = arena->len;
        seal_tx(&tx, B->chain_id, expiry, &B->issuer, arena);
        offsets[i] = (uint32_t)before;
        B->lens[i] = (uint32_t)(arena->len - before);
        memcpy(B->ids[i], tx.id, KN_HASH_BYTES);
    }
    for (uint32_t i = 0; i < B->n_fund; i++) B->bytes[i] = arena->data + offsets[i];
    free(offsets);
}

/* Payer and payee of every transfer, chosen before signing. A payer is drawn
 * at random among the accounts that have paid less than their funding. */
typedef struct pairing {
    uint32_t payer, payee;
} pairing;

static pairing *pick_pairs(const bench *B)
{
    uint32_t n_accounts = (uint32_t)B->o->accounts;
    pairing *p = calloc(B->n_transfers, sizeof *p);
    uint32_t *spent = calloc(n_accounts, sizeof *spent);
    KN_REQUIRE(p != NULL && spent != NULL);
    for (uint32_t i = 0; i < B->n_transfers; i++) {
        uint32_t payer = randombytes_uniform(n_accounts);
        while (spent[payer] >= B->funding_minor) payer = (payer + 1) % n_accounts;
        spent[payer]++;
        uint32_t payee = (payer + 1 + randombytes_uniform(n_accounts - 1)) % n_accounts;
        p[i] = (pairing){payer, payee};
    }
    free(spent);
    return p;
}

typedef struct signer {
    bench *B;
    const pairing *pairs;
    uint32_t index, first, count;
    uint32_t *offsets;
    pthread_t thread;
} signer;

static void *signer_main(void *ctx)
{
    signer *s = ctx;
    bench *B = s->B;
    ledger_tx *tx = malloc(sizeof *tx);
    KN_REQUIRE(tx != NULL);
    kn_buf *arena = &B->arenas[s->index];
    uint64_t expiry = B->height + B->o->expiry_blocks;
    for (uint32_t k = 0; k < s->count; k++) {
        uint32_t t = s->first + k, i = B->n_fund + t;
        const pairing *p = &s->pairs[t];
        transfer_tx(tx, B->o->currency, &B->accounts[p->payer], B->accounts[p->payee].pk, 1);
        size_t before = arena->len;
        seal_tx(tx, B->chain_id, expiry, &B->accounts[p->payer], arena);
        s->offsets[t] = (uint32_t)before;
        B->lens[i] = (uint32_t)(arena->len - before);
        memcpy(B->ids[i], tx->id, KN_HASH_BYTES);
    }
    free(tx);
    return NULL;
}

/* Signs every transfer on as many threads as the machine has cores. */
static void sign_transfers(bench *B, uint32_t cores)
{
    pairing *pairs = pick_pairs(B);
    uint32_t *offsets = calloc(B->n_transfers ? B->n_transfers : 1, sizeof *offsets);
    KN_REQUIRE(offsets != NULL);
    uint32_t n_threads = cores < BENCH_SIGNERS_MAX ? cores : BENCH_SIGNERS_MAX;
    if (n_threads == 0) n_threads = 1;
    signer signers[BENCH_SIGNERS_MAX];
    uint32_t per = (B->n_transfers + n_threads - 1) / n_threads;
    for (uint32_t j = 0; j < n_threads; j++) {
        uint32_t first = j * per < B->n_transfers ? j * per : B->n_transfers;
        uint32_t count = B->n_transfers - first < per ? B->n_transfers - first : per;
        signers[j] = (signer){B, pairs, j, first, count, offsets, 0};
        KN_REQUIRE(pthread_create(&signers[j].thread, NULL, signer_main, &signers[j]) == 0);
    }
    for (uint32_t j = 0; j < n_threads; j++) {
        pthread_join(signers[j].thread, NULL);
        /* The arenas grow while signing; pointers are taken once they are done. */
        for (uint32_t k = 0; k < signers[j].count; k++) {
            uint32_t t = signers[j].first + k;
            B->bytes[B->n_fund + t] = B->arenas[j].data + offsets[t];
        }
    }
    free(offsets);
    free(pairs);
}

/* ---------------------------------------------------------------- submission */

typedef struct poster {
    CURL *h;
    kn_buf reply;
    kn_buf body;
    struct curl_slist *headers;
    char err[CURL_ERROR_SIZE];
} poster;

static size_t reply_cb(char *p, size_t size, size_t nmemb, void *ctx)
{
    kn_buf *b = ctx;
    size_t n = size * nmemb;
    if (n > CLI_REPLY_BYTES_MAX - b->len) return 0;
    kn_buf_append(b, p, n);
    return n;
}

static void poster_init(poster *p)
{
    memset(p, 0, sizeof *p);
    p->h = curl_easy_init();
    KN_REQUIRE(p->h != NULL);
    p->headers = curl_slist_append(NULL, "Content-Type: application/msgpack");
    p->headers = curl_slist_append(p->headers, "Accept: application/json");
    p->headers = curl_slist_append(p->headers, "Expect:");
    curl_easy_setopt(p->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(p->h, CURLOPT_TIMEOUT_MS, (long)BENCH_POST_TIMEOUT_MS);
    curl_easy_setopt(p->h, CURLOPT_USERAGENT, "koinon-bench/" KOINON_VERSION);
    curl_easy_setopt(p->h, CURLOPT_MAXCONNECTS, (long)BENCH_NODES_MAX);
    curl_easy_setopt(p->h, CURLOPT_ERRORBUFFER, p->err);
    curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, reply_cb);
    curl_easy_setopt(p->h, CURLOPT_WRITEDATA, &p->reply);
}

static void poster_free(poster *p)
{
    curl_slist_free_all(p->headers);
    curl_easy_cleanup(p->h);
    kn_buf_free(&p->reply);
    kn_buf_free(&p->body);
}

/* One POST on the poster's kept-alive connection: the HTTP status, or 0 when
 * no answer came (p->err says why). */
static long post(poster *p, const char *node, const char *path, const void *body, size_t n)
{
    char url[CLI_URL_MAX + 32];
    snprintf(url, sizeof url, "%s%s", node, path);
    kn_buf_reset(&p->reply);
    p->err[0] = '\0';
    curl_easy_setopt(p->h, CURLOPT_URL, url);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    long status = 0;
    if (curl_easy_perform(p->h) == CURLE_OK)
        curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* The error code of a refused request: the node's envelope, or the status. */
static void refusal_code(const json_t *reply, long status, char *out, size_t cap)
{
    const char *code = cli_jstr(json_object_get(reply, "error"), "code", NULL);
    if (code)
        snprintf(out, cap, "%s", code);
    else if (status == 0)
        snprintf(out, cap, "no_answer");
    else
        snprintf(out, cap, "http_%ld", status);
}

static void refuse_range(bench *B, uint32_t first, uint32_t n, const char *code)
{
    memset(&B->refused[first], 1, n);
    count_refusal(B, code, n);
}

/* A 200 from the batch route: the transactions it refused, by index. */
static void take_batch_reply(bench *B, uint32_t first, uint32_t n, const json_t *reply)
{
    const json_t *results = json_object_get(reply, "results");
    uint32_t refused = 0;
    size_t k;
    const json_t *r;
    json_array_foreach(results, k, r) {
        const json_t *err = json_object_get(r, "error");
        if (!err) continue;
        int64_t index = (int64_t)k;
        (void)cli_jint(r, "index", &index);
        if (index < 0 || index >= n || B->refused[first + index]) continue;
        B->refused[first + index] = 1;
        count_refusal(B, cli_jstr(err, "code", "unknown"), 1);
        refused++;
    }
    atomic_fetch_add(&B->accepted, n - refused);
}

static void submit_batch(bench *B, poster *p, const char *node, uint32_t first, uint32_t n)
{
    kn_buf_reset(&p->body);
    kn_w_array(&p->body, n);
    for (uint32_t i = first; i < first + n; i++) kn_w_bin(&p->body, B->bytes[i], B->lens[i]);
    uint64_t now = kn_mono_us();
    for (uint32_t i = first; i < first + n; i++) B->sent_us[i] = now;
    long status = post(p, node, "/v1/txs/batch", p->body.data, p->body.len);
    json_t *reply = json_loadb((const char *)p->reply.data, p->reply.len, 0, NULL);
    if (status == 200 && json_is_object(reply)) {
        take_batch_reply(B, first, n, reply);
    } else {
        char code[64];
        refusal_code(reply, status, code, sizeof code);
        refuse_range(B, first, n, code);
    }
    json_decref(reply);
}

/* Without the batch route: one POST /v1/txs per transaction. */
static void submit_each(bench *B, poster *p, const char *node, uint32_t first, uint32_t n)
{
    for (uint32_t i = first; i < first + n; i++) {
        B->sent_us[i] = kn_mono_us();
        long status = post(p, node, "/v1/txs", B->bytes[i], B->lens[i]);
        if (status == 200 || status == 202) {
            atomic_fetch_add(&B->accepted, 1);
            continue;
        }
        json_t *reply = json_loadb((const char *)p->reply.data, p->reply.len, 0, NULL);
        char code[64];
        refusal_code(reply, status, code, sizeof code);
        json_decref(reply);
        refuse_range(B, i, 1, code);
    }
}

static void submit(bench *B, poster *p, const char *node, uint32_t first, uint32_t n)
{
    if (B->single)
        submit_each(B, p, node, first, n);
    else
        submit_batch(B, p, node, first, n);
}

/* Does the node have POST /v1/txs/batch? An empty batch tells: a node without
 * the route answers 404, or 405 when /v1/txs/{id} takes the path. */
static int probe_batch_route(bench *B)
{
    poster p;
    poster_init(&p);
    static const uint8_t empty[1] = {0x90};
    long status = post(&p, B->o->nodes[0], "/v1/txs/batch", empty, sizeof empty);
    poster_free(&p);
    if (status == 0) return cli_fail(KN_ECLOSED, "cannot reach node at %s", B->o->nodes[0]);
    B->single = status == 404 || status == 405;
    if (B->single)
        fprintf(stderr, "koinon: bench: %s has no POST /v1/txs/batch; sending one transaction "
                        "per request (the result is not comparable)\n",
                B->o->nodes[0]);
    return 0;
}

typedef struct sender {
    bench *B;
    uint32_t index;
    pthread_t thread;
} sender;

/* Sender j sends batches j, j + S, j + 2S, ... each at t0 + b x interval, to
 * node b mod N. A late answer delays only this sender's next batch. */
static void *sender_main(void *ctx)
{
    sender *s = ctx;
    bench *B = s->B;
    poster p;
    poster_init(&p);
    for (uint32_t b = s->index; b < B->n_batches; b += B->n_senders) {
        sleep_until_us(B->t0_us + (uint64_t)b * B->interval_us);
        if (atomic_load(&B->stop_senders)) break;
        uint32_t first = B->n_fund + b * B->batch;
        uint32_t n = B->n_txs - first < B->batch ? B->n_txs - first : B->batch;
        submit(B, &p, B->o->nodes[b % B->o->n_nodes], first, n);
    }
    poster_free(&p);
    return NULL;
}

/* ---------------------------------------------------------------- commits: the event stream */

/* One block event: stamps each of our transactions it carries. */
static void take_block(bench *B, const char *data, size_t len, uint64_t now_us)
{
    json_t *block = json_loadb(data, len, 0, NULL);
    int64_t height;
    if (cli_jint(block, "height", &height) && height > 0) B->last_height = (uint64_t)height;
    const json_t *txs = json_object_get(block, "txs");
    size_t k;
    const json_t *tx;
    json_array_foreach(txs, k, tx) {
        const char *hex = cli_jstr(tx, "id", "");
        uint8_t id[KN_HASH_BYTES];
        if (cli_parse_hash(hex, id)) continue;
        int64_t i = index_find(B, id);
        if (i < 0 || B->commit_us[i]) continue;
        B->commit_us[i] = now_us;
        B->result[i] = kn_errcode(cli_jstr(tx, "result", "ok"));
        if (i >= B->n_fund) {
            atomic_fetch_add(&B->transfers_committed, 1);
            continue;
        }
        atomic_fetch_add(&B->fund_committed, 1);
        if (B->result[i]) atomic_fetch_add(&B->fund_failed, 1);
    }
    json_decref(block);
}

/* "event: block\ndata: {...}" (other events and comments are skipped). */
static void take_event(bench *B, const char *text, size_t len, uint64_t now_us)
{
    bool is_block = false;
    const char *data = NULL;
    size_t data_len = 0;
    for (const char *line = text, *end = text + len; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (n == 12 && memcmp(line, "event: block", 12) == 0) is_block = true;
        if (n >= 6 && memcmp(line, "data: ", 6) == 0) {
            data = line + 6;
            data_len = n - 6;
        }
        line += n + 1;
    }
    if (is_block && data) take_block(B, data, data_len, now_us);
}

static size_t events_cb(char *p, size_t size, size_t nmemb, void *ctx)
{
    bench *B = ctx;
    size_t n = size * nmemb;
    uint64_t now_us = kn_mono_us();
    kn_buf *t = &B->event_text;
    if (n > BENCH_EVENT_BYTES_MAX - t->len) return 0; /* ends the stream; it is resumed */
    kn_buf_append(t, p, n);
    atomic_store(&B->events_up, true);
    size_t start = 0;
    for (;;) {
        size_t from = B->event_scanned > start + 1 ? B->event_scanned - 1 : start;
        const uint8_t *end = from < t->len ? memmem(t->data + from, t->len - from, "\n\n", 2) : NULL;
        if (!end) break;
        size_t stop = (size_t)(end - t->data);
        take_event(B, (const char *)t->data + start, stop - start, now_us);
        start = stop + 2;
        B->event_scanned = start;
    }
    memmove(t->data, t->data + start, t->len - start);
    t->len -= start;
    B->event_scanned = t->len;
    return n;
}

static int events_progress_cb(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    bench *B = ctx;
    return atomic_load(&B->stop_events) ? 1 : 0;
}

/* Follows the first node's events until told to stop; a dropped stream is
 * resumed after the last block seen. */
static void *events_main(void *ctx)
{
    bench *B = ctx;
    CURL *h = curl_easy_init();
    KN_REQUIRE(h != NULL);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: text/event-stream");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, events_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, B);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, events_progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, B);
    while (!atomic_load(&B->stop_events)) {
        char url[CLI_URL_MAX + 64];
        snprintf(url, sizeof url, "%s/v1/events?from_height=%" PRIu64, B->o->nodes[0],
                 B->last_height + 1);
        kn_buf_reset(&B->event_text);
        B->event_scanned = 0;
        curl_easy_setopt(h, CURLOPT_URL, url);
        (void)curl_easy_perform(h);
        if (!atomic_load(&B->stop_events)) sleep_until_us(kn_mono_us() + 200000);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

/* Polls until done() or the time is up; false on timeout. */
static bool wait_until(bench *B, bool (*done)(bench *), uint64_t timeout_ms)
{
    uint64_t deadline = kn_mono_us() + timeout_ms * 1000;
    while (!done(B)) {
        if (kn_mono_us() >= deadline) return false;
        sleep_until_us(kn_mono_us() + 20000);
    }
    return true;
}

static bool events_are_up(bench *B)
{
    return atomic_load(&B->events_up);
}

static bool funding_done(bench *B)
{
    return atomic_load(&B->fund_committed) == B->n_fund;
}

static bool transfers_done(bench *B)
{
    return atomic_load(&B->transfers_committed) >= atomic_load(&B->accepted);
}

/* Sends the funding transactions (in batches, round robin) and waits for
 * their commits; any refusal or failed result stops the bench. */
static int fund_accounts(bench *B)
{
    poster p;
    poster_init(&p);
    uint32_t per = B->batch < BENCH_FUND_BATCH_MAX ? B->batch : BENCH_FUND_BATCH_MAX;
    for (uint32_t first = 0, k = 0; first < B->n_fund; first += per, k++) {
        uint32_t n = B->n_fund - first < per ? B->n_fund - first : per;
        submit(B, &p, B->o->nodes[k % B->o->n_nodes], first, n);
    }
    poster_free(&p);
    if (B->refused_total) {
        return cli_fail(KN_EINVAL, "the node refused %" PRIu64 " funding transactions (%s): is "
                                   "--issuer-key an issuer of %s?",
                        B->refused_total, B->refusals[0].code, B->o->currency);
    }
    if (!wait_until(B, funding_done, BENCH_SETUP_WAIT_MS))
        return cli_fail(KN_ETIMEOUT, "funding: %" PRIu64 " of %u transactions committed",
                        (uint64_t)atomic_load(&B->fund_committed), B->n_fund);
    if (atomic_load(&B->fund_failed)) {
        for (uint32_t i = 0; i < B->n_fund; i++)
            if (B->result[i])
                return cli_fail(B->result[i], "a funding transaction committed with an error");
    }
    /* The refusal counts from here on are the load's. */
    B->n_refusal_codes = 0;
    B->refused_total = 0;
    atomic_store(&B->accepted, 0);
    return 0;
}

/* ---------------------------------------------------------------- node metrics */

typedef struct node_sample {
    bool has_cpu, has_rss, has_max_rss;
    double cpu_s, rss_bytes, max_rss_bytes;
} node_sample;

/* The value of an unlabelled Prometheus sample, if the text has it. */
static bool metric(const kn_buf *text, const char *name, double *out)
{
    size_t n = strlen(name);
    const char *p = (const char *)text->data, *end = p + text->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if ((size_t)(line_end - p) > n + 1 && memcmp(p, name, n) == 0 && p[n] == ' ') {
            char value[64];
            size_t len = (size_t)(line_end - p) - n - 1;
            if (len >= sizeof value) return false;
            memcpy(value, p + n + 1, len);
            value[len] = '\0';
            char *stop;
            *out = strtod(value, &stop);
            return stop != value;
        }
        p = line_end + 1;
    }
    return false;
}

static void sample_node(const char *node, node_sample *out)
{
    memset(out, 0, sizeof *out);
    cli_reply r;
    if (cli_http(node, "/metrics", NULL, NULL, 0, CLI_REQUEST_TIMEOUT_MS, &r)) return;
    if (r.status == 200) {
        out->has_cpu = metric(&r.body, "koinon_process_cpu_seconds_total", &out->cpu_s);
        out->has_rss = metric(&r.body, "koinon_process_resident_memory_bytes", &out->rss_bytes);
        out->has_max_rss =
            metric(&r.body, "koinon_process_max_resident_memory_bytes", &out->max_rss_bytes);
    }
    cli_reply_free(&r);
}

/* ---------------------------------------------------------------- results */

typedef struct node_result {
    double cpu_percent; /* < 0: unknown */
    double rss_bytes, max_rss_bytes;
    bool has_rss, has_max_rss;
} node_result;

typedef struct result {
    double offered_per_s, sent_per_s, committed_per_s;
    double p50_ms, p99_ms;
    uint64_t sent_in_window, committed_in_window, latencies;
    uint64_t refused, pending, rejected;
    double window_s;
    node_result nodes[BENCH_NODES_MAX];
    ceiling ceil;
    double ratio;
    double setup_s, sign_s;
} result;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted values. */
static double percentile_ms(const uint64_t *sorted, uint64_t n, double pct)
{
    if (n == 0) return 0;
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    return (double)sorted[rank - 1] / 1000.0;
}

static void compute_result(const bench *B, result *r)
{
    uint64_t w0 = B->t0_us + B->o->warmup_s * 1000000ull;
    uint64_t w1 = w0 + B->o->duration_s * 1000000ull;
    r->window_s = (double)B->o->duration_s;
    r->offered_per_s = (double)B->o->rate;
    uint64_t *lat = malloc((B->n_transfers ? B->n_transfers : 1) * sizeof *lat);
    KN_REQUIRE(lat != NULL);
    for (uint32_t i = B->n_fund; i < B->n_txs; i++) {
        uint64_t c = B->commit_us[i], s = B->sent_us[i];
        if (c >= w0 && c < w1) r->committed_in_window++;
        if (c && B->result[i]) r->rejected++;
        if (!s) continue;
        if (B->refused[i]) {
            r->refused++;
            continue;
        }
        if (!c) r->pending++;
        if (s < w0 || s >= w1) continue;
        r->sent_in_window++;
        if (c) lat[r->latencies++] = c > s ? c - s : 0;
    }
    qsort(lat, r->latencies, sizeof *lat, cmp_u64);
    r->p50_ms = percentile_ms(lat, r->latencies, 50);
    r->p99_ms = percentile_ms(lat, r->latencies, 99);
    free(lat);
    r->sent_per_s = (double)r->sent_in_window / r->window_s;
    r->committed_per_s = (double)r->committed_in_window / r->window_s;
    r->ratio = r->ceil.ceiling_per_s > 0 ? r->committed_per_s / r->ceil.ceiling_per_s : 0;
}

static void node_results(const bench *B, const node_sample *start, const node_sample *end,
                         result *r)
{
    for (uint32_t j = 0; j < B->o->n_nodes; j++) {
        node_result *n = &r->nodes[j];
        n->cpu_percent = -1;
        if (start[j].has_cpu && end[j].has_cpu)
            n->cpu_percent = (end[j].cpu_s - start[j].cpu_s) / r->window_s * 100.0;
        n->has_rss = end[j].has_rss;
        n->rss_bytes = end[j].rss_bytes;
        n->has_max_rss = end[j].has_max_rss;
        n->max_rss_bytes = end[j].max_rss_bytes;
    }
}

static json_t *number_or_null(bool has, double v)
{
    return has ? json_real(v) : json_null();
}

static json_t *result_json(const bench *B, const result *r)
{
    json_t *nodes = json_array(), *refusals = json_object();
    for (uint32_t j = 0; j < B->o->n_nodes; j++) {
        const node_result *n = &r->nodes[j];
        json_array_append_new(
            nodes, json_pack("{s:s, s:o, s:o, s:o}", "url", B->o->nodes[j], "cpu_percent",
                             number_or_null(n->cpu_percent >= 0, n->cpu_percent), "rss_bytes",
                             number_or_null(n->has_rss, n->rss_bytes), "max_rss_bytes",
                             number_or_null(n->has_max_rss, n->max_rss_bytes)));
    }
    for (uint32_t i = 0; i < B->n_refusal_codes; i++)
        json_object_set_new(refusals, B->refusals[i].code, json_integer((json_int_t)B->refusals[i].n));
    const ceiling *c = &r->ceil;
    json_t *ceil_json = json_pack(
        "{s:f, s:f, s:f, s:b, s:f, s:i, s:i, s:f, s:f, s:f}", "verify_per_s_core",
        c->verify_per_s_core, "verify_us", c->verify_us, "apply_us", c->apply_us,
        "apply_measured", c->apply_measured, "block_commit_ms", c->block_commit_ms, "cores",
        (int)c->cores, "validators", (int)c->validators, "cpu_bound_per_s", c->cpu_bound_per_s,
        "storage_bound_per_s", c->storage_bound_per_s, "ceiling_per_s", c->ceiling_per_s);
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f}",
                          "chain_id", B->chain_id, "submission",
                          B->single ? "POST /v1/txs" : "POST /v1/txs/batch", "validators",
                          (int)B->validators, "accounts", (json_int_t)B->o->accounts, "batch",
                          (int)B->batch, "warmup_s", (json_int_t)B->o->warmup_s,
                          "transfers_signed", (json_int_t)B->n_transfers, "window_s", r->window_s,
                          "offered_rate", r->offered_per_s, "sent_per_s", r->sent_per_s,
                          "committed_per_s", r->committed_per_s, "ratio", r->ratio);
    json_object_update_new(
        o, json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "p50_ms", r->p50_ms,
                     "p99_ms", r->p99_ms, "latency_samples", (json_int_t)r->latencies, "refused",
                     (json_int_t)r->refused, "pending", (json_int_t)r->pending, "rejected",
                     (json_int_t)r->rejected, "committed_in_window",
                     (json_int_t)r->committed_in_window, "refusals", refusals, "nodes", nodes,
                     "ceiling", ceil_json));
    return o;
}

static void format_mib(char *out, size_t cap, bool has, double bytes)
{
    if (has)
        snprintf(out, cap, "%.1f", bytes / (1024.0 * 1024.0));
    else
        snprintf(out, cap, "-");
}

static void print_nodes(const bench *B, const result *r)
{
    printf("\n  %-32s %8s %10s %14s\n", "node", "cpu %", "rss MiB", "peak rss MiB");
    for (uint32_t j = 0; j < B->o->n_nodes; j++) {
        const node_result *n = &r->nodes[j];
        char cpu[32], rss[32], max_rss[32];
        if (n->cpu_percent >= 0)
            snprintf(cpu, sizeof cpu, "%.1f", n->cpu_percent);
        else
            snprintf(cpu, sizeof cpu, "-");
        format_mib(rss, sizeof rss, n->has_rss, n->rss_bytes);
        format_mib(max_rss, sizeof max_rss, n->has_max_rss, n->max_rss_bytes);
        printf("  %-32s %8s %10s %14s\n", B->o->nodes[j], cpu, rss, max_rss);
    }
}

static void print_ceiling(const result *r)
{
    const ceiling *c = &r->ceil;
    printf("\n  this machine's limits (measured in this run, before the load)\n");
    printf("    Ed25519 verify of a transfer  %10.0f /s per core (%.1f us)\n", c->verify_per_s_core,
           c->verify_us);
    printf("    decode + apply a transfer     %10.1f us (%s)\n", c->apply_us,
           c->apply_measured ? "a block of 2000 through ledger_block_execute"
                             : "not measured: a planning figure");
    printf("    durable block commit          %10.1f ms (%d account updates + 1 MiB, median of %d)\n",
           c->block_commit_ms, BENCH_BLOCK_PUTS, BENCH_COMMIT_ROUNDS);
    printf("    CPU bound     C / (V x (verify + apply)) = %u / (%u x %.1f us) = %.0f /s\n", c->cores,
           c->validators, c->verify_us + c->apply_us, c->cpu_bound_per_s);
    printf("    storage bound %d txs per block / (V x commit) = %d / (%u x %.1f ms) = %.0f /s\n",
           BENCH_BLOCK_TRANSFERS, BENCH_BLOCK_TRANSFERS, c->validators, c->block_commit_ms,
           c->storage_bound_per_s);
    printf("    ceiling                       %10.0f /s\n", c->ceiling_per_s);
    printf("    achieved                      %10.0f /s = %.1f %% of the ceiling\n",
           r->committed_per_s, r->ratio * 100.0);
}

static void print_result(const bench *B, const result *r)
{
    printf("koinon bench: %u node(s), %u validator(s), chain %s, %" PRIu64 " accounts\n",
           B->o->n_nodes, B->validators, B->chain_id, B->o->accounts);
    printf("  setup %.1f s; %u transfers signed in %.1f s before the clock started\n", r->setup_s,
           B->n_transfers, r->sign_s);
    printf("  load: %.0f transfers/s offered in batches of %u every %.1f ms through %s,\n"
           "        warm-up %" PRIu64 " s, window %.0f s\n\n",
           r->offered_per_s, B->batch, (double)B->interval_us / 1000.0,
           B->single ? "POST /v1/txs (one per request)" : "POST /v1/txs/batch", B->o->warmup_s,
           r->window_s);
    printf("  sent in the window            %10.0f /s\n", r->sent_per_s);
    printf("  committed in the window       %10.0f /s\n", r->committed_per_s);
    printf("  commit latency p50            %10.1f ms\n", r->p50_ms);
    printf("  commit latency p99            %10.1f ms (%" PRIu64 " transfers sent in the window)\n",
           r->p99_ms, r->latencies);
    printf("  refused                       %10" PRIu64, r->refused);
    for (uint32_t i = 0; i < B->n_refusal_codes; i++)
        printf("%s%s %" PRIu64, i ? ", " : " (", B->refusals[i].code, B->refusals[i].n);
    printf("%s\n", B->n_refusal_codes ? ")" : "");
    printf("  rejected at commit            %10" PRIu64 "\n", r->rejected);
    printf("  still pending after the drain %10" PRIu64 "\n", r->pending);
    print_nodes(B, r);
    print_ceiling(r);
}

static int write_json_file(const char *path, const json_t *o)
{
    if (json_dump_file(o, path, JSON_INDENT(2)) == 0) return 0;
    return cli_fail(KN_EIO, "cannot write %s", path);
}

/* ---------------------------------------------------------------- the run */

/* The load, with the window's metrics taken by this thread while the
 * senders run; then the drain. */
static void run_load(bench *B, node_sample *start, node_sample *end)
{
    sender senders[BENCH_SENDERS_MAX];
    B->t0_us = kn_mono_us() + 100000;
    for (uint32_t j = 0; j < B->n_senders; j++) {
        senders[j] = (sender){B, j, 0};
        KN_REQUIRE(pthread_create(&senders[j].thread, NULL, sender_main, &senders[j]) == 0);
    }
    uint64_t w0 = B->t0_us + B->o->warmup_s * 1000000ull;
    uint64_t w1 = w0 + B->o->duration_s * 1000000ull;
    sleep_until_us(w0);
    for (uint32_t j = 0; j < B->o->n_nodes; j++) sample_node(B->o->nodes[j], &start[j]);
    sleep_until_us(w1);
    for (uint32_t j = 0; j < B->o->n_nodes; j++) sample_node(B->o->nodes[j], &end[j]);
    /* Senders that fell behind the schedule stop here: what they have not
     * sent would only load the drain. */
    atomic_store(&B->stop_senders, true);
    for (uint32_t j = 0; j < B->n_senders; j++) pthread_join(senders[j].thread, NULL);
    (void)wait_until(B, transfers_done, B->o->drain_s * 1000);
}

static int setup(bench *B, result *r, const ceiling *c)
{
    uint64_t start = kn_mono_us();
    if (plan(B)) return CLI_EXIT_FAIL;
    for (uint64_t i = 0; i < B->o->accounts; i++) kn_keypair_generate(&B->accounts[i]);
    sign_funding(B);
    uint64_t sign_start = kn_mono_us();
    sign_transfers(B, c->cores);
    r->sign_s = (double)(kn_mono_us() - sign_start) / 1e6;
    for (uint32_t i = 0; i < B->n_txs; i++) index_add(B, i);
    /* The event thread reads the index: it starts once the index is complete. */
    KN_REQUIRE(pthread_create(&B->events, NULL, events_main, B) == 0);
    B->events_started = true;
    if (probe_batch_route(B)) return CLI_EXIT_FAIL;
    if (!wait_until(B, events_are_up, BENCH_EVENTS_WAIT_MS))
        return cli_fail(KN_ETIMEOUT, "no block events from %s/v1/events", B->o->nodes[0]);
    if (fund_accounts(B)) return CLI_EXIT_FAIL;
    r->setup_s = (double)(kn_mono_us() - start) / 1e6;
    return 0;
}

static void bench_free(bench *B)
{
    if (B->accounts) sodium_memzero(B->accounts, B->o->accounts * sizeof *B->accounts);
    kn_keypair_wipe(&B->issuer);
    free(B->accounts);
    free(B->ids);
    free(B->bytes);
    free(B->lens);
    free(B->sent_us);
    free(B->refused);
    free(B->commit_us);
    free(B->result);
    free(B->table);
    for (uint32_t i = 0; i <= BENCH_SIGNERS_MAX; i++) kn_buf_free(&B->arenas[i]);
    kn_buf_free(&B->event_text);
    pthread_mutex_destroy(&B->lock);
}

static int report(const bench *B, result *r)
{
    json_t *o = result_json(B, r);
    int rc = 0;
    if (B->o->json) {
        char *text = json_dumps(o, JSON_INDENT(2));
        KN_REQUIRE(text != NULL);
        printf("%s\n", text);
        free(text);
    } else {
        print_result(B, r);
    }
    if (B->o->json_out) rc = write_json_file(B->o->json_out, o);
    json_decref(o);
    return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    static bench_opts o;
    memset(&o, 0, sizeof o);
    o.accounts = BENCH_ACCOUNTS_DEFAULT;
    o.rate = BENCH_RATE_DEFAULT;
    o.warmup_s = BENCH_WARMUP_DEFAULT;
    o.duration_s = BENCH_DURATION_DEFAULT;
    o.drain_s = BENCH_DRAIN_DEFAULT;
    o.expiry_blocks = BENCH_EXPIRY_BLOCKS_DEFAULT;
    const char *tmp = getenv("TMPDIR");
    o.store_dir = tmp && *tmp ? tmp : "/tmp";
    int rc = parse_bench_args(argc, argv, &o);
    if (rc != PARSED) return rc;

    static bench B; /* large; one run per process */
    memset(&B, 0, sizeof B);
    B.o = &o;
    pthread_mutex_init(&B.lock, NULL);
    static result r;
    memset(&r, 0, sizeof r);
    if (cli_load_key(o.issuer_key, &B.issuer) || fetch_status(&B)) {
        bench_free(&B);
        return CLI_EXIT_FAIL;
    }
    B.last_height = B.height ? B.height - 1 : 0;
    fprintf(stderr, "koinon bench: measuring this machine's limits\n");
    if (measure_ceiling(&B, &r.ceil)) {
        bench_free(&B);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "koinon bench: setting up %" PRIu64 " accounts and signing the transfers\n",
            o.accounts);
    rc = setup(&B, &r, &r.ceil);
    if (!rc) {
        fprintf(stderr, "koinon bench: load for %" PRIu64 " s + %" PRIu64 " s\n", o.warmup_s,
                o.duration_s);
        static node_sample start[BENCH_NODES_MAX], end[BENCH_NODES_MAX];
        run_load(&B, start, end);
        compute_result(&B, &r);
        node_results(&B, start, end, &r);
    }
    atomic_store(&B.stop_events, true);
    if (B.events_started) pthread_join(B.events, NULL);
    if (!rc) rc = report(&B, &r);
    bench_free(&B);
    return rc;
}
