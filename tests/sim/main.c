/* koinon_sim: runs the deterministic simulation over one seed or a range.
 *
 *   koinon_sim --seed S          one run, with its configuration, outcome and
 *                                the digest of its event trace (replays are
 *                                identical byte for byte)
 *   koinon_sim --seeds A..B      a range; prints failing seeds and the totals
 *   koinon_sim --seeds A..B --expect-violation
 *                                for builds with a planted bug: succeeds as
 *                                soon as a seed reports a violation
 *
 * Exit status: 0 when every run passed (or, with --expect-violation, when one
 * was caught), 1 otherwise, 2 on bad arguments. */
#include "tests/sim/sim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sim_world *current;

/* A broken invariant aborts (KN_REQUIRE): say which seed and configuration
 * did it before the process dies, so the run can be replayed. */
static void on_abort(int sig)
{
    if (current) {
        char line[768];
        int k = snprintf(line, sizeof line,
                         "seed %llu: VIOLATION abort: a broken invariant stopped the process "
                         "(see stderr)\n  config: %s\n  replay: koinon_sim --seed %llu\n",
                         (unsigned long long)current->seed, current->cfg_line,
                         (unsigned long long)current->seed);
        if (k > 0) (void)!write(STDOUT_FILENO, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
    }
    signal(sig, SIG_DFL);
}

static void usage(void)
{
    fprintf(stderr, "usage: koinon_sim [--seed S | --seeds A..B] [--expect-violation] [--safety-only] [-v]\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s) return false;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return *end == 0;
}

static bool parse_range(const char *s, uint64_t *a, uint64_t *b)
{
    const char *dots = strstr(s, "..");
    if (!dots) return false;
    char first[32];
    size_t n = (size_t)(dots - s);
    if (n == 0 || n >= sizeof first) return false;
    memcpy(first, s, n);
    first[n] = 0;
    return parse_u64(first, a) && parse_u64(dots + 2, b) && *a >= 1 && *a <= *b;
}

typedef struct totals {
    uint64_t seeds, heights, txs, tx_failed, events, sim_ms, evidence, evidence_recorded;
    uint64_t violations, stalls;
    uint64_t faults[SIM_F_COUNT];
} totals;

static void print_run(const sim_world *w)
{
    char digest[2 * KN_HASH_BYTES + 1];
    kn_hex(digest, w->digest, KN_HASH_BYTES);
    printf("seed %llu: config %s\n", (unsigned long long)w->seed, w->cfg_line);
    printf("seed %llu: %s heights=%llu txs=%llu (rule failures %llu) events=%llu sim_ms=%llu "
           "evidence seen=%llu recorded=%llu own_block_missing=%llu\n",
           (unsigned long long)w->seed, w->violated ? "FAIL" : w->stalled ? "ok (liveness stall)" : "ok",
           (unsigned long long)w->heights, (unsigned long long)w->txs_committed,
           (unsigned long long)w->tx_failed, (unsigned long long)w->events,
           (unsigned long long)w->now_ms, (unsigned long long)w->evidence,
           (unsigned long long)w->evidence_recorded, (unsigned long long)w->own_block_missing);
    printf("seed %llu: faults", (unsigned long long)w->seed);
    for (int f = 0; f < SIM_F_COUNT; f++)
        printf(" %s=%llu", sim_fault_names[f], (unsigned long long)w->faults[f]);
    printf("\nseed %llu: trace %s\n", (unsigned long long)w->seed, digest);
}

static void print_failure(const sim_world *w)
{
    printf("seed %llu: VIOLATION %s\n  config: %s\n  at sim_ms=%llu; replay: koinon_sim --seed "
           "%llu\n",
           (unsigned long long)w->seed, w->violation, w->cfg_line,
           (unsigned long long)w->now_ms, (unsigned long long)w->seed);
}

static void add_totals(totals *t, const sim_world *w)
{
    t->seeds++;
    t->heights += w->heights;
    t->txs += w->txs_committed;
    t->tx_failed += w->tx_failed;
    t->events += w->events;
    t->sim_ms += w->now_ms;
    t->evidence += w->evidence;
    t->evidence_recorded += w->evidence_recorded;
    t->violations += w->violated;
    t->stalls += w->stalled;
    for (int f = 0; f < SIM_F_COUNT; f++) t->faults[f] += w->faults[f];
}

static void print_totals(const totals *t, bool safety_only)
{
    printf("totals: seeds=%llu heights=%llu txs=%llu (rule failures %llu) events=%llu "
           "sim_s=%llu evidence seen=%llu recorded=%llu\n",
           (unsigned long long)t->seeds, (unsigned long long)t->heights,
           (unsigned long long)t->txs, (unsigned long long)t->tx_failed,
           (unsigned long long)t->events, (unsigned long long)t->sim_ms / 1000,
           (unsigned long long)t->evidence, (unsigned long long)t->evidence_recorded);
    printf("totals: faults");
    for (int f = 0; f < SIM_F_COUNT; f++)
        printf(" %s=%llu", sim_fault_names[f], (unsigned long long)t->faults[f]);
    printf("\n");
    if (safety_only)
        printf("totals: liveness_stalls=%llu (not counted as violations with --safety-only)\n",
               (unsigned long long)t->stalls);
    printf("totals: violations=%llu\n", (unsigned long long)t->violations);
}

int main(int argc, char **argv)
{
    uint64_t first = 1, last = 1000;
    bool one = false, expect = false, verbose = false, safety_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc && parse_u64(argv[i + 1], &first)) {
            last = first;
            one = true;
            i++;
        } else if (!strcmp(argv[i], "--seeds") && i + 1 < argc &&
                   parse_range(argv[i + 1], &first, &last)) {
            i++;
        } else if (!strcmp(argv[i], "--expect-violation")) {
            expect = true;
        } else if (!strcmp(argv[i], "--safety-only")) {
            safety_only = true;
        } else if (!strcmp(argv[i], "-v")) {
            verbose = true;
        } else {
            usage();
            return 2;
        }
    }
    if (kn_crypto_init()) return 2;
    kn_log_setup(KN_LOG_ERROR, false);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGABRT, on_abort);
    sim_world *w = calloc(1, sizeof *w);
    KN_REQUIRE(w != NULL);
    totals t = {0};
    for (uint64_t seed = first; seed <= last; seed++) {
        current = w;
        int rc = sim_run(w, seed, verbose, safety_only || expect);
        add_totals(&t, w);
        if (one || verbose) print_run(w);
        if (rc) print_failure(w);
        if (w->stalled && !one && !verbose)
            printf("seed %llu: liveness stall (--safety-only)\n", (unsigned long long)seed);
        sim_world_free(w);
        if (rc && expect) {
            printf("planted bug caught by seed %llu\n", (unsigned long long)seed);
            free(w);
            return 0;
        }
    }
    current = NULL;
    free(w);
    print_totals(&t, safety_only || expect);
    if (expect) {
        printf("planted bug NOT caught in seeds %llu..%llu\n", (unsigned long long)first,
               (unsigned long long)last);
        return 1;
    }
    return t.violations ? 1 : 0;
}
