/* The simulated world: PRNG, fault configuration, event queue, network and the
 * run loop of one seed. Nothing here reads the clock: time is now_ms, moved
 * forward only by taking the next event from the queue. */
#include "tests/sim/sim.h"

#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const sim_fault_names[SIM_F_COUNT] = {
    "loss", "duplicate", "partition", "crash", "crash_after_persist", "crash_after_commit",
    "equivocation", "double_vote", "invalid_block", "withheld_vote", "twins",
};

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
    KN_REQUIRE(n > 0);
    return sim_rng_next(r) % n;
}

uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi)
{
    KN_REQUIRE(lo <= hi);
    return lo + sim_rng_below(r, hi - lo + 1);
}

bool sim_rng_pm(sim_rng *r, uint32_t pm)
{
    return sim_rng_below(r, 1000) < pm;
}

/* ---------------------------------------------------------------- configuration */

static uint64_t total_power(const sim_config *c)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < c->n; i++) t += c->powers[i];
    return t;
}

static void pick_powers(sim_config *c, sim_rng *r)
{
    static const uint64_t p1[] = {10, 10, 10, 1}, p2[] = {3, 1, 1, 1},
                          p3[] = {3, 3, 3, 3, 1, 1, 1};
    const uint64_t *fixed = NULL;
    switch (sim_rng_below(r, 6)) {
    case 0: fixed = p1, c->n = 4; break;
    case 1: fixed = p2, c->n = 4; break;
    case 2: fixed = p3, c->n = 7; break;
    case 3:
        c->n = (uint32_t)sim_rng_range(r, 4, SIM_VALIDATORS_MAX);
        for (uint32_t i = 0; i < c->n; i++) c->powers[i] = sim_rng_range(r, 1, 5);
        return;
    default:
        c->n = (uint32_t)sim_rng_range(r, 4, SIM_VALIDATORS_MAX);
        for (uint32_t i = 0; i < c->n; i++) c->powers[i] = 1;
        return;
    }
    for (uint32_t i = 0; i < c->n; i++) c->powers[i] = fixed[i];
}

/* Byzantine validators: in random order, add each whose power keeps the faulty
 * total strictly under a third; light validators first in the 3,3,3,3,1,1,1
 * profile would be the same set, so no preference is needed. */
static void pick_byzantine(sim_config *c, sim_rng *r)
{
    if (sim_rng_pm(r, 350)) return;
    uint64_t total = total_power(c), faulty = 0;
    uint32_t want = (uint32_t)sim_rng_range(r, 1, c->n);
    uint32_t order[SIM_VALIDATORS_MAX];
    for (uint32_t i = 0; i < c->n; i++) order[i] = i;
    for (uint32_t i = c->n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)sim_rng_below(r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t k = 0; k < c->n && want > 0; k++) {
        uint32_t i = order[k];
        if ((faulty + c->powers[i]) * 3 >= total) continue;
        faulty += c->powers[i];
        uint32_t modes = 0;
        while (!modes) modes = (uint32_t)sim_rng_below(r, 32);
        c->byz_modes[i] = modes;
        want--;
    }
}

void sim_config_pick(sim_config *c, sim_rng *r)
{
    memset(c, 0, sizeof *c);
    pick_powers(c, r);
    pick_byzantine(c, r);
    c->loss_pm = sim_rng_pm(r, 700) ? (uint32_t)sim_rng_range(r, 0, 300) : 0;
    c->dup_pm = sim_rng_pm(r, 500) ? (uint32_t)sim_rng_range(r, 0, 200) : 0;
    c->latency_min_ms = (uint32_t)sim_rng_range(r, 1, 20);
    c->latency_jitter_ms = (uint32_t)sim_rng_range(r, 0, sim_rng_pm(r, 300) ? 1500 : 200);
    c->partitions = (uint32_t)sim_rng_range(r, 0, 3);
    c->crashes = (uint32_t)sim_rng_range(r, 0, 4);
    c->crash_persist_pm = sim_rng_pm(r, 400) ? (uint32_t)sim_rng_range(r, 1, 30) : 0;
    c->fault_ms = (uint32_t)sim_rng_range(r, 10000, 25000);
    c->crash_commit_pm = sim_rng_pm(r, 400) ? (uint32_t)sim_rng_range(r, 20, 150) : 0;
    c->tx_interval_ms = (uint32_t)sim_rng_range(r, 150, 800);
}

void sim_config_describe(const sim_config *c, char *out, size_t cap)
{
    size_t len = 0;
#define PUT(...)                                                                   \
    do {                                                                           \
        int k = snprintf(out + len, cap - len, __VA_ARGS__);                       \
        if (k > 0) len = (size_t)k < cap - len ? len + (size_t)k : cap - 1;        \
    } while (0)
    PUT("n=%u powers=", c->n);
    for (uint32_t i = 0; i < c->n; i++) PUT("%s%llu", i ? "," : "", (unsigned long long)c->powers[i]);
    PUT(" byzantine=");
    bool any = false;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->byz_modes[i]) continue;
        PUT("%s%u:", any ? "," : "", i);
        any = true;
        static const char *names[] = {"equivocate", "double_vote", "invalid", "withhold", "twins"};
        bool first = true;
        for (int b = 0; b < 5; b++)
            if (c->byz_modes[i] & (1u << b)) {
                PUT("%s%s", first ? "" : "+", names[b]);
                first = false;
            }
    }
    if (!any) PUT("none");
    PUT(" loss=%u%% dup=%u%% latency=%u+%ums partitions=%u crashes=%u crash_after_persist=%u%% "
        "crash_after_commit=%u%% fault_ms=%u tx_every=%ums",
        c->loss_pm / 10, c->dup_pm / 10, c->latency_min_ms, c->latency_jitter_ms, c->partitions,
        c->crashes, c->crash_persist_pm / 10, c->crash_commit_pm / 10, c->fault_ms,
        c->tx_interval_ms);
#undef PUT
}

/* ---------------------------------------------------------------- event queue */

static bool ev_before(const sim_event *a, const sim_event *b)
{
    return a->at_ms != b->at_ms ? a->at_ms < b->at_ms : a->seq < b->seq;
}

void sim_schedule(sim_world *w, sim_event *ev)
{
    ev->seq = w->seq++;
    if (w->heap_n == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 1024;
        w->heap = realloc(w->heap, w->heap_cap * sizeof *w->heap);
        KN_REQUIRE(w->heap != NULL);
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_before(ev, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = *ev;
}

static sim_event pop_event(sim_world *w)
{
    sim_event top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_event *best = &last;
        if (l < w->heap_n && ev_before(&w->heap[l], best)) m = l, best = &w->heap[l];
        if (r < w->heap_n && ev_before(&w->heap[r], best)) m = r;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->heap_n) w->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- network */

void sim_trace(sim_world *w, const void *p, size_t n)
{
    crypto_generichash_update(&w->trace, p, n);
}

bool sim_correct(const sim_node *n)
{
    return n->byz == 0;
}

static bool link_open(const sim_world *w, uint32_t a, uint32_t b)
{
    return !w->partitioned || w->side[a] == w->side[b];
}

static void deliver_later(sim_world *w, uint32_t from, uint32_t to, const kn_buf *msg)
{
    sim_event ev = {.kind = SIM_EV_DELIVER, .node = to, .from = from};
    uint64_t jitter = w->cfg.latency_jitter_ms;
    if (w->stable && jitter > 200) jitter = 200; /* bounded delay after the faults */
    ev.at_ms = w->now_ms + w->cfg.latency_min_ms + sim_rng_below(&w->rng, jitter + 1);
    ev.msg = malloc(msg->len);
    KN_REQUIRE(ev.msg != NULL);
    memcpy(ev.msg, msg->data, msg->len);
    ev.len = msg->len;
    sim_schedule(w, &ev);
}

void sim_send(sim_world *w, uint32_t from, uint32_t to, const kn_buf *msg)
{
    if (from == to || to >= w->n_nodes || !msg->len) return;
    if (!link_open(w, from, to)) return;
    if (w->faults_on && sim_rng_pm(&w->rng, w->cfg.loss_pm)) {
        w->faults[SIM_F_LOSS]++;
        return;
    }
    deliver_later(w, from, to, msg);
    if (w->faults_on && sim_rng_pm(&w->rng, w->cfg.dup_pm)) {
        w->faults[SIM_F_DUP]++;
        deliver_later(w, from, to, msg);
    }
}

void sim_broadcast(sim_world *w, uint32_t from, const kn_buf *msg)
{
    for (uint32_t i = 0; i < w->n_nodes; i++) sim_send(w, from, i, msg);
}

/* ---------------------------------------------------------------- faults */

void sim_crash(sim_world *w, sim_node *n, enum sim_fault why)
{
    if (!n->up || n->crash_pending) return;
    n->crash_pending = true;
    w->faults[why]++;
    sim_event ev = {.kind = SIM_EV_RESTART, .node = n->id};
    ev.at_ms = w->now_ms + sim_rng_range(&w->rng, 100, 6000);
    if (ev.at_ms > w->cfg.fault_ms) ev.at_ms = w->cfg.fault_ms;
    sim_schedule(w, &ev);
}

static void start_partition(sim_world *w)
{
    uint32_t count[2] = {0, 0};
    for (uint32_t i = 0; i < w->n_nodes; i++) {
        w->side[i] = (uint8_t)sim_rng_below(&w->rng, 2);
        count[w->side[i]]++;
    }
    if (!count[0] || !count[1]) w->side[0] ^= 1; /* both sides non-empty (n >= 4) */
    /* Twins go to opposite sides: each side then sees one of them. */
    for (uint32_t i = 0; i < w->n_nodes; i++)
        for (uint32_t j = i + 1; j < w->n_nodes; j++)
            if (w->nodes[i].validator == w->nodes[j].validator) w->side[j] = !w->side[i];
    w->partitioned = true;
    w->faults[SIM_F_PARTITION]++;
}

static void schedule_faults(sim_world *w)
{
    const sim_config *c = &w->cfg;
    for (uint32_t i = 0; i < c->partitions; i++) {
        sim_event ev = {.kind = SIM_EV_PARTITION};
        ev.at_ms = sim_rng_range(&w->rng, 500, c->fault_ms - 1000);
        sim_schedule(w, &ev);
        sim_event heal = {.kind = SIM_EV_HEAL};
        heal.at_ms = ev.at_ms + sim_rng_range(&w->rng, 1000, 8000);
        if (heal.at_ms > c->fault_ms) heal.at_ms = c->fault_ms;
        sim_schedule(w, &heal);
    }
    for (uint32_t i = 0; i < c->crashes; i++) {
        sim_event ev = {.kind = SIM_EV_CRASH};
        ev.node = (uint32_t)sim_rng_below(&w->rng, w->n_nodes);
        ev.at_ms = sim_rng_range(&w->rng, 200, c->fault_ms - 200);
        sim_schedule(w, &ev);
    }
    sim_event end = {.kind = SIM_EV_FAULTS_END, .at_ms = c->fault_ms};
    sim_schedule(w, &end);
}

/* ---------------------------------------------------------------- setup */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int make_nodes(sim_world *w)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(w->root, sizeof w->root, "%s/koinon-sim-XXXXXX", base);
    if (!mkdtemp(w->root)) return KN_EIO;
    for (uint32_t v = 0; v < w->cfg.n; v++) {
        uint32_t copies = (w->cfg.byz_modes[v] & SIM_BYZ_TWINS) ? 2 : 1;
        for (uint32_t k = 0; k < copies; k++) {
            KN_REQUIRE(w->n_nodes < SIM_NODES_MAX);
            sim_node *n = &w->nodes[w->n_nodes];
            n->id = w->n_nodes++;
            n->validator = v;
            n->byz = w->cfg.byz_modes[v];
            if (k) w->faults[SIM_F_TWINS]++;
            snprintf(n->dir, sizeof n->dir, "%s/node%u", w->root, n->id);
            if (mkdir(n->dir, 0700)) return KN_EIO;
            store_env *env;
            store_txn *t;
            int rc = store_open(n->dir, SIM_MAP_BYTES, &env);
            if (rc) return rc;
            rc = store_begin(env, true, &t);
            if (!rc) {
                rc = ledger_genesis_apply(t, &w->genesis);
                rc = rc ? (store_abort(t), rc) : store_commit(t);
            }
            store_close(env);
            if (rc) return rc;
        }
    }
    for (uint32_t i = 0; i < w->n_nodes; i++) {
        int rc = sim_node_start(w, &w->nodes[i]);
        if (rc) return rc;
        sim_event tick = {.kind = SIM_EV_TICK, .node = i, .incarnation = 0};
        tick.at_ms = sim_rng_range(&w->rng, 1, SIM_TICK_MS);
        sim_schedule(w, &tick);
    }
    return 0;
}

static void setup(sim_world *w, uint64_t seed)
{
    w->seed = seed;
    sim_rng_seed(&w->rng, seed);
    sim_config_pick(&w->cfg, &w->rng);
    sim_config_describe(&w->cfg, w->cfg_line, sizeof w->cfg_line);
    crypto_generichash_init(&w->trace, NULL, 0, KN_HASH_BYTES);
    snprintf(w->chain_id, sizeof w->chain_id, "koinon-sim");
    w->timeouts = (cons_config){.timeout_propose_ms = 1000,
                                .timeout_prevote_ms = 500,
                                .timeout_precommit_ms = 500,
                                .timeout_delta_ms = 100};
    sim_workload_setup(w);
    w->faults_on = true;
    w->crash_persist_left = 4;
    w->crash_commit_left = 3;
    w->decided = calloc(SIM_HEIGHTS_MAX + 1, sizeof *w->decided);
    KN_REQUIRE(w->decided != NULL);
}

/* ---------------------------------------------------------------- the loop */

static void restart_node(sim_world *w, sim_node *n)
{
    if (n->up) return;
    n->incarnation++;
    if (sim_node_start(w, n)) {
        sim_violation(w, "harness", "instance %u cannot restart from its store", n->id);
        return;
    }
    sim_event tick = {.kind = SIM_EV_TICK, .node = n->id, .incarnation = n->incarnation};
    tick.at_ms = w->now_ms + SIM_TICK_MS;
    sim_schedule(w, &tick);
}

static void end_faults(sim_world *w)
{
    w->faults_on = false;
    w->partitioned = false;
    w->stable = true;
    uint64_t top = 0;
    for (uint32_t i = 0; i < w->n_nodes; i++) restart_node(w, &w->nodes[i]);
    for (uint32_t i = 0; i < w->n_nodes; i++)
        if (sim_correct(&w->nodes[i]) && w->nodes[i].chain.height > top)
            top = w->nodes[i].chain.height;
    w->live_target = top + SIM_LIVENESS_HEIGHTS;
    /* A height can wait for one full proposer rotation: a correct validator
     * locked on a value only lets it through when someone who knows that
     * value proposes it, and with weights like 10,10,10,1 the light one's
     * turn comes once in 31 rounds, each longer than the last. */
    uint64_t rotation_ms = 0;
    const cons_config *t = &w->timeouts;
    for (uint64_t r = 0; r < w->vs.schedule_len; r++)
        rotation_ms += t->timeout_propose_ms + t->timeout_prevote_ms + t->timeout_precommit_ms +
                       3 * r * t->timeout_delta_ms;
    w->live_bound_ms = SIM_LIVENESS_BOUND_MS + rotation_ms;
    w->live_deadline_ms = w->now_ms + w->live_bound_ms;
}

static void inject_tx(sim_world *w)
{
    kn_buf tx = {0};
    sim_workload_next(w, &tx);
    sim_node *n = &w->nodes[sim_rng_below(&w->rng, w->n_nodes)];
    if (n->up) sim_node_submit(w, n, tx.data, tx.len);
    kn_buf_free(&tx);
    sim_event ev = {.kind = SIM_EV_TX};
    ev.at_ms = w->now_ms + sim_rng_range(&w->rng, 1, 2 * w->cfg.tx_interval_ms);
    sim_schedule(w, &ev);
}

static void handle(sim_world *w, sim_event *ev)
{
    sim_node *n = ev->kind == SIM_EV_DELIVER || ev->kind == SIM_EV_TIMEOUT ||
                          ev->kind == SIM_EV_TICK || ev->kind == SIM_EV_CRASH ||
                          ev->kind == SIM_EV_RESTART
                      ? &w->nodes[ev->node]
                      : NULL;
    switch (ev->kind) {
    case SIM_EV_DELIVER:
        if (n->up && link_open(w, ev->from, ev->node))
            sim_node_on_message(w, n, ev->from, ev->msg, ev->len);
        break;
    case SIM_EV_TIMEOUT:
        if (n->up && ev->incarnation == n->incarnation) sim_node_on_timeout(w, n, ev);
        break;
    case SIM_EV_TICK:
        if (!n->up || ev->incarnation != n->incarnation) break;
        sim_node_tick(w, n);
        ev->at_ms = w->now_ms + SIM_TICK_MS;
        sim_schedule(w, ev);
        break;
    case SIM_EV_TX: inject_tx(w); break;
    case SIM_EV_CRASH:
        if (w->faults_on) sim_crash(w, n, SIM_F_CRASH);
        break;
    case SIM_EV_RESTART: restart_node(w, n); break;
    case SIM_EV_PARTITION:
        if (w->faults_on) start_partition(w);
        break;
    case SIM_EV_HEAL: w->partitioned = false; break;
    case SIM_EV_FAULTS_END: end_faults(w); break;
    default: KN_REQUIRE(!"unknown event");
    }
    /* Crashes decided inside the event take effect now: the in-memory core and
     * everything not in the store is gone. */
    for (uint32_t i = 0; i < w->n_nodes; i++)
        if (w->nodes[i].crash_pending) sim_node_stop(w, &w->nodes[i]);
}

static void trace_event(sim_world *w, const sim_event *ev)
{
    uint8_t head[1 + 8 + 4 + 4];
    head[0] = ev->kind;
    memcpy(head + 1, &ev->at_ms, 8);
    memcpy(head + 9, &ev->node, 4);
    memcpy(head + 13, &ev->from, 4);
    sim_trace(w, head, sizeof head);
    if (ev->msg) sim_trace(w, ev->msg, ev->len);
}

/* SIM_DEBUG=1 in the environment: one line per event on stderr. */
static void debug_event(const sim_world *w, const sim_event *ev)
{
    static const char *kinds[] = {"?", "deliver", "timeout", "tick", "tx", "crash", "restart",
                                  "partition", "heal", "faults_end"};
    if (ev->kind == SIM_EV_TICK || ev->kind == SIM_EV_TX) return;
    fprintf(stderr, "%6llu %-10s n%u", (unsigned long long)w->now_ms, kinds[ev->kind], ev->node);
    if (ev->kind == SIM_EV_DELIVER && ev->len > 1) {
        fprintf(stderr, " from%u type%u", ev->from, ev->msg[1]);
        kn_cur c = kn_cur_make(ev->msg + 2, ev->len - 2);
        cons_vote v;
        cons_proposal p;
        if (ev->msg[1] == SIM_MSG_VOTE && cons_vote_decode(&c, &v) == 0)
            fprintf(stderr, " vote t%u h%llu r%u v%u %s", v.type, (unsigned long long)v.height,
                    v.round, v.validator, v.nil ? "nil" : "blk");
        if (ev->msg[1] == SIM_MSG_PROPOSAL && cons_proposal_decode(&c, &p) == 0)
            fprintf(stderr, " prop h%llu r%u pol%d by%u", (unsigned long long)p.height, p.round,
                    p.pol_round, p.proposer);
    }
    if (ev->kind == SIM_EV_TIMEOUT)
        fprintf(stderr, " step%u h%llu r%u", ev->step, (unsigned long long)ev->height, ev->round);
    fprintf(stderr, " |");
    for (uint32_t i = 0; i < w->n_nodes; i++) {
        const sim_node *n = &w->nodes[i];
        if (!n->up) fprintf(stderr, " [down]");
        else
            fprintf(stderr, " [%llu %llu/%u/%u pv%llx]", (unsigned long long)n->chain.height,
                    (unsigned long long)cons_height(n->cons), cons_round(n->cons), cons_step(n->cons),
                    (unsigned long long)cons_voted_mask(n->cons, CONS_PREVOTE));
    }
    fprintf(stderr, "\n");
}

static void loop(sim_world *w)
{
    while (w->heap_n && !w->violated && !w->done) {
        sim_event ev = pop_event(w);
        KN_REQUIRE(ev.at_ms >= w->now_ms);
        w->now_ms = ev.at_ms;
        if (++w->events > SIM_EVENTS_MAX) {
            sim_violation(w, "harness", "more than %d events", SIM_EVENTS_MAX);
            free(ev.msg);
            break;
        }
        trace_event(w, &ev);
        handle(w, &ev);
        if (w->debug) debug_event(w, &ev);
        free(ev.msg);
        if (w->stable) sim_check_liveness(w);
    }
}

int sim_run(sim_world *w, uint64_t seed, bool verbose, bool safety_only)
{
    memset(w, 0, sizeof *w);
    w->safety_only = safety_only;
    w->verbose = verbose;
    w->debug = getenv("SIM_DEBUG") != NULL;
    setup(w, seed);
    if (make_nodes(w)) {
        sim_violation(w, "harness", "cannot create the stores under %s", w->root);
    } else {
        schedule_faults(w);
        sim_event tx = {.kind = SIM_EV_TX, .at_ms = 50};
        sim_schedule(w, &tx);
        loop(w);
        if (!w->violated && !w->done) sim_violation(w, "harness", "event queue ran dry");
        if (!w->violated) sim_check_final(w);
    }
    crypto_generichash_final(&w->trace, w->digest, sizeof w->digest);
    return w->violated ? 1 : 0;
}

void sim_world_free(sim_world *w)
{
    for (uint32_t i = 0; i < w->n_nodes; i++) {
        sim_node *n = &w->nodes[i];
        if (n->up) sim_node_stop(w, n);
        for (uint32_t k = 0; k < SIM_MEMPOOL_MAX; k++) kn_buf_free(&n->mempool[k].bytes);
        for (uint32_t k = 0; k < SIM_PROPOSALS_MAX; k++) kn_buf_free(&n->proposals[k].block);
        for (uint32_t k = 0; k < SIM_FUTURE_MAX; k++) kn_buf_free(&n->future[k].msg);
        kn_buf_free(&n->own_proposal);
    }
    while (w->heap_n) free(pop_event(w).msg);
    free(w->heap);
    free(w->decided);
    free(w->signed_log);
    for (uint32_t i = 0; i < 64; i++) kn_buf_free(&w->sent_txs[i]);
    if (w->root[0]) nftw(w->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (uint32_t i = 0; i < SIM_VALIDATORS_MAX; i++) kn_keypair_wipe(&w->vkeys[i]);
}
