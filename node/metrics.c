/* GET /metrics: the node's counters in the Prometheus text format. */
#include "node/internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const char *const node__api_routes[NODE_API_ROUTES] = {
    "other", "status", "txs_post", "txs_get", "accounts", "currencies", "blocks", "metrics",
    "dashboard", "events", "rates", "cycles", "reports", "evidence", "txs_batch"};

static void put(kn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(kn_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len > 0) kn_buf_append(b, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

static void family(kn_buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(kn_buf *b, const char *name, const char *help, const node__hist *h)
{
    family(b, name, "histogram", help);
    for (int i = 0; i < NODE_HIST_BUCKETS; i++)
        put(b, "%s_bucket{le=\"%llu\"} %llu\n", name, (unsigned long long)node__hist_bounds_ms[i],
            (unsigned long long)h->buckets[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %llu\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, (unsigned long long)h->sum_ms, name,
        (unsigned long long)h->count);
}

static void by_error(kn_buf *b, const char *name, const char *label, const uint64_t *slots)
{
    for (int slot = 0; slot < NODE_ERR_SLOTS; slot++) {
        if (!slots[slot]) continue;
        int err = slot == 0 ? 0 : KN__ERR_BASE + slot;
        put(b, "%s{%s=\"%s\"} %llu\n", name, label, kn_errname(err),
            (unsigned long long)slots[slot]);
    }
}

static void per_validator(kn_buf *b, node *n)
{
    family(b, "koinon_validator_online", "gauge", "1 when the validator's link is up and it was heard from recently.");
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        put(b, "koinon_validator_online{validator=\"%s\"} %d\n", n->cfg->validators[i].name,
            node__peer_online(n, i) ? 1 : 0);
    family(b, "koinon_votes_missed", "gauge", "Recent commit certificates (of the last 100) without the validator's precommit.");
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        put(b, "koinon_votes_missed{validator=\"%s\"} %u\n", n->cfg->validators[i].name,
            node__health_missed(n, i));
    family(b, "koinon_blocks_proposed_total", "counter", "Committed blocks by proposer since this node started.");
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        put(b, "koinon_blocks_proposed_total{validator=\"%s\"} %llu\n", n->cfg->validators[i].name,
            (unsigned long long)n->health.proposed[i]);
}

/* Resident pages now, from the second field of /proc/self/statm; 0 where
 * there is no such file (the metric then reads 0 rather than failing). */
static unsigned long long resident_bytes(void)
{
    unsigned long long size_pages = 0, resident_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size_pages, &resident_pages) != 2) resident_pages = 0;
    fclose(f);
    long page_bytes = sysconf(_SC_PAGESIZE);
    return page_bytes > 0 ? resident_pages * (unsigned long long)page_bytes : 0;
}

/* CPU and memory of the whole process (every thread, the verification pool
 * included), for benchmarks that compare nodes. */
static void process_figures(kn_buf *b)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) memset(&ru, 0, sizeof ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    family(b, "koinon_process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
    put(b, "koinon_process_cpu_seconds_total %.6f\n", cpu_s);
    family(b, "koinon_process_resident_memory_bytes", "gauge", "Resident memory of the process now.");
    put(b, "koinon_process_resident_memory_bytes %llu\n", resident_bytes());
    /* Linux gives ru_maxrss in KiB. */
    family(b, "koinon_process_max_resident_memory_bytes", "gauge", "Peak resident memory of the process.");
    put(b, "koinon_process_max_resident_memory_bytes %llu\n",
        (unsigned long long)ru.ru_maxrss * 1024ull);
}

void node__metrics_text(node *n, kn_buf *b)
{
    const node__health *hl = &n->health;
    uint32_t peers_up = 0;
    for (uint32_t i = 0; i < n->cfg->valset.n; i++) peers_up += i != n->cfg->self && n->peer[i].up;

    family(b, "koinon_height", "gauge", "Last committed block height.");
    put(b, "koinon_height %llu\n", (unsigned long long)n->chain.height);
    family(b, "koinon_consensus_round", "gauge", "Current consensus round at the next height.");
    put(b, "koinon_consensus_round %u\n", cons_round(n->cons));
    family(b, "koinon_round_changes_total", "counter", "Rounds that ended without a decision.");
    put(b, "koinon_round_changes_total %llu\n", (unsigned long long)hl->round_changes);
    histogram(b, "koinon_block_interval_ms", "Time between consecutive block times.", &hl->block_interval);
    histogram(b, "koinon_commit_latency_ms", "From admission to commit, for transactions submitted to this node.", &hl->commit_latency);
    family(b, "koinon_txs_committed_total", "counter", "Committed transactions by result.");
    by_error(b, "koinon_txs_committed_total", "result", hl->results);
    family(b, "koinon_txs_rejected_total", "counter", "Transactions refused at admission, by reason.");
    by_error(b, "koinon_txs_rejected_total", "reason", hl->rejected);
    family(b, "koinon_mempool_txs", "gauge", "Transactions waiting in the mempool.");
    put(b, "koinon_mempool_txs %u\n", n->mempool.count);
    family(b, "koinon_mempool_max", "gauge", "Mempool capacity.");
    put(b, "koinon_mempool_max %u\n", n->mempool.max);
    family(b, "koinon_peers_up", "gauge", "Validator links that are up.");
    put(b, "koinon_peers_up %u\n", peers_up);
    per_validator(b, n);
    family(b, "koinon_evidence_total", "counter", "Equivocations (two conflicting votes) seen.");
    put(b, "koinon_evidence_total %llu\n", (unsigned long long)hl->evidence_total);
    family(b, "koinon_lmdb_used_bytes", "gauge", "Bytes of the LMDB data file in use.");
    put(b, "koinon_lmdb_used_bytes %llu\n", (unsigned long long)store_used_bytes(n->store));
    family(b, "koinon_api_requests_total", "counter", "API requests by route.");
    for (int i = 0; i < NODE_API_ROUTES; i++)
        put(b, "koinon_api_requests_total{route=\"%s\"} %llu\n", node__api_routes[i],
            (unsigned long long)hl->api_requests[i]);
    family(b, "koinon_api_responses_total", "counter", "API responses by status class.");
    for (int i = 1; i < 6; i++)
        put(b, "koinon_api_responses_total{code=\"%dxx\"} %llu\n", i,
            (unsigned long long)hl->api_responses[i]);
    family(b, "koinon_uptime_seconds", "gauge", "Seconds since the node started.");
    put(b, "koinon_uptime_seconds %llu\n", (unsigned long long)((kn_now_ms() - n->started_ms) / 1000));
    process_figures(b);
}
