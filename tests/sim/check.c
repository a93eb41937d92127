/* The checkers. Each runs where its property could first break and records
 * the first violation; the run then stops. Byzantine instances are never
 * checked: only correct validators owe the properties below.
 *   no_double_sign  a correct validator never signs two different things for
 *                   one (height, round, step), across crashes too;
 *   validity        every block a correct validator commits passes
 *                   ledger_block_check at its tip and every tx signature verifies;
 *   certificate     the certificate stored with it verifies for that block;
 *   agreement       no two correct validators commit different blocks at a height;
 *   state           the same state hash after the same height everywhere;
 *   liveness        after the faults end, every correct validator reaches the
 *                   highest correct height then + K within the bound;
 *   final           at the end, every store passes ledger_check_invariants and
 *                   every stored block and certificate is re-checked. */
#include "tests/sim/sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_violation(sim_world *w, const char *checker, const char *fmt, ...)
{
    if (w->violated) return;
    w->violated = true;
    int k = snprintf(w->violation, sizeof w->violation, "%s: ", checker);
    if (k < 0 || (size_t)k >= sizeof w->violation) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->violation + k, sizeof w->violation - (size_t)k, fmt, ap);
    va_end(ap);
}

static void hex8(char out[17], const uint8_t *p)
{
    kn_hex(out, p, 8);
}

bool sim_check_signed(sim_world *w, const sim_node *n, const sim_signed *s)
{
    for (size_t i = 0; i < w->signed_n; i++) {
        const sim_signed *o = &w->signed_log[i];
        if (o->validator != s->validator || o->height != s->height || o->round != s->round ||
            o->step != s->step)
            continue;
        if (o->nil == s->nil && memcmp(o->block_id, s->block_id, KN_HASH_BYTES) == 0) return true;
        char a[17], b[17];
        hex8(a, o->block_id);
        hex8(b, s->block_id);
        sim_violation(w, "no_double_sign",
                      "validator %u (instance %u) signed %s and %s at height %llu round %u step %s",
                      s->validator, n->id, o->nil ? "nil" : a, s->nil ? "nil" : b,
                      (unsigned long long)s->height, s->round, cons_step_name(s->step));
        return false;
    }
    if (w->signed_n == w->signed_cap) {
        w->signed_cap = w->signed_cap ? 2 * w->signed_cap : 1024;
        w->signed_log = realloc(w->signed_log, w->signed_cap * sizeof *w->signed_log);
        KN_REQUIRE(w->signed_log != NULL);
    }
    w->signed_log[w->signed_n++] = *s;
    return true;
}

static bool check_cert(sim_world *w, const sim_node *n, uint64_t height,
                       const uint8_t block_id[KN_HASH_BYTES], const uint8_t *p, size_t len)
{
    kn_cur c = kn_cur_make(p, len);
    cons_cert cert;
    const char *why = NULL;
    if (!len) why = "no certificate";
    else if (cons_cert_decode(&c, &cert) || c.left) why = "certificate does not decode";
    else if (cert.height != height) why = "certificate is for another height";
    else if (memcmp(cert.block_id, block_id, KN_HASH_BYTES) != 0)
        why = "certificate is for another block";
    else if (cons_cert_verify(&cert, &w->vs, w->chain_id)) why = "cons_cert_verify fails";
    if (!why) return true;
    sim_violation(w, "certificate", "instance %u height %llu: %s", n->id,
                  (unsigned long long)height, why);
    return false;
}

bool sim_check_block(sim_world *w, const sim_node *n, const ledger_block_view *v,
                     const ledger_tx *txs, const uint8_t (*ids)[KN_HASH_BYTES],
                     const uint8_t *cert, size_t cert_len)
{
    uint64_t h = v->hdr.height;
    int rc = ledger_block_check(v, &n->chain, &w->vs, w->chain_id, ids);
    if (rc) {
        sim_violation(w, "validity", "instance %u commits a block at height %llu that fails "
                      "ledger_block_check at its tip %llu: %s",
                      n->id, (unsigned long long)h, (unsigned long long)n->chain.height,
                      kn_strerror(rc));
        return false;
    }
    for (uint32_t i = 0; i < v->hdr.n_txs; i++)
        if (ledger_tx_verify(&txs[i], w->chain_id)) {
            sim_violation(w, "validity", "instance %u height %llu: tx %u does not verify", n->id,
                          (unsigned long long)h, i);
            return false;
        }
    if (!check_cert(w, n, h, v->block_id, cert, cert_len)) return false;
    if (h > SIM_HEIGHTS_MAX) {
        sim_violation(w, "harness", "height %llu over SIM_HEIGHTS_MAX", (unsigned long long)h);
        return false;
    }
    sim_decided *d = &w->decided[h];
    if (!d->has_block) {
        d->has_block = true;
        memcpy(d->block_id, v->block_id, KN_HASH_BYTES);
        if (h > w->decided_max) w->decided_max = h;
        return true;
    }
    if (memcmp(d->block_id, v->block_id, KN_HASH_BYTES) == 0) return true;
    char a[17], b[17];
    hex8(a, d->block_id);
    hex8(b, v->block_id);
    sim_violation(w, "agreement", "height %llu: block %s committed, instance %u commits %s",
                  (unsigned long long)h, a, n->id, b);
    return false;
}

bool sim_check_state(sim_world *w, const sim_node *n)
{
    sim_decided *d = &w->decided[n->chain.height];
    if (!d->has_state) {
        d->has_state = true;
        memcpy(d->state_hash, n->chain.state_hash, KN_HASH_BYTES);
        return true;
    }
    if (memcmp(d->state_hash, n->chain.state_hash, KN_HASH_BYTES) == 0) return true;
    sim_violation(w, "state", "instance %u has another state hash after height %llu", n->id,
                  (unsigned long long)n->chain.height);
    return false;
}

void sim_check_liveness(sim_world *w)
{
    bool all = true;
    for (uint32_t i = 0; i < w->n_nodes; i++) {
        const sim_node *n = &w->nodes[i];
        if (sim_correct(n) && (!n->up || n->chain.height < w->live_target)) all = false;
    }
    if (all) {
        w->done = true;
        return;
    }
    uint64_t since = w->progress_ms > w->live_deadline_ms - w->live_bound_ms
                         ? w->progress_ms
                         : w->live_deadline_ms - w->live_bound_ms;
    if (w->safety_only && w->now_ms - since >= SIM_STALL_MS) {
        /* Counted and reported, but the run still passes: see README.md. */
        w->stalled = true;
        w->done = true;
        return;
    }
    if (w->now_ms < w->live_deadline_ms) return;
    char heights[128] = "";
    size_t len = 0;
    for (uint32_t i = 0; i < w->n_nodes && len < sizeof heights - 24; i++)
        len += (size_t)snprintf(heights + len, sizeof heights - len, "%s%u:%llu", i ? "," : "", i,
                                (unsigned long long)w->nodes[i].chain.height);
    if (w->safety_only) {
        /* Counted and reported, but the run still passes: see README.md. */
        w->stalled = true;
        w->done = true;
        return;
    }
    for (uint32_t i = 0; w->debug && i < w->n_nodes; i++) {
        const sim_node *n = &w->nodes[i];
        if (!n->up) continue;
        cons_safety sf;
        cons_safety_get(n->cons, &sf);
        char lb[17], vb[17];
        hex8(lb, sf.locked_block);
        hex8(vb, sf.valid_block);
        fprintf(stderr, "n%u byz=%u h%llu r%u s%u locked r%d %s valid r%d %s\n", i, n->byz,
                (unsigned long long)sf.height, sf.round, sf.step, sf.locked_round, lb,
                sf.valid_round, vb);
    }
    sim_violation(w, "liveness",
                  "correct validators did not all reach height %llu within %llu ms after the "
                  "faults ended (heights %s)",
                  (unsigned long long)w->live_target, (unsigned long long)w->live_bound_ms,
                  heights);
}

typedef struct evidence_scan {
    sim_world *w;
    const sim_node *n;
    uint64_t count;
} evidence_scan;

/* Recorded evidence names only Byzantine validators: a correct one never
 * signs two different votes for one round and step. */
static void check_evidence(void *ctx, const ledger_evidence *e)
{
    evidence_scan *scan = ctx;
    scan->count++;
    if (e->a.validator < scan->w->cfg.n && scan->w->cfg.byz_modes[e->a.validator]) return;
    sim_violation(scan->w, "evidence",
                  "instance %u records evidence against correct validator %u (height %llu round "
                  "%u)",
                  scan->n->id, e->a.validator, (unsigned long long)e->a.height, e->a.round);
}

static void final_node(sim_world *w, sim_node *n)
{
    store_txn *t;
    if (store_begin(n->store, false, &t)) {
        sim_violation(w, "final", "instance %u: cannot read its store", n->id);
        return;
    }
    ledger_check_invariants(t); /* aborts on a broken invariant */
    for (uint64_t h = 1; h <= n->chain.height && !w->violated; h++) {
        const uint8_t *block, *cert;
        size_t block_len, cert_len;
        ledger_block_view v;
        if (ledger_block_get(t, h, &block, &block_len) || ledger_cert_get(t, h, &cert, &cert_len) ||
            ledger_block_decode(block, block_len, &v)) {
            sim_violation(w, "final", "instance %u: height %llu missing or undecodable", n->id,
                          (unsigned long long)h);
            break;
        }
        if (!w->decided[h].has_block || memcmp(w->decided[h].block_id, v.block_id, KN_HASH_BYTES))
            sim_violation(w, "agreement", "instance %u stores another block at height %llu",
                          n->id, (unsigned long long)h);
        else
            (void)check_cert(w, n, h, v.block_id, cert, cert_len);
        ledger_block_view_free(&v);
    }
    evidence_scan scan = {w, n, 0};
    if (!w->violated && ledger_evidence_each(t, check_evidence, &scan) == 0 &&
        scan.count > w->evidence_recorded)
        w->evidence_recorded = scan.count;
    store_abort(t);
}

void sim_check_final(sim_world *w)
{
    for (uint32_t i = 0; i < w->n_nodes && !w->violated; i++)
        if (sim_correct(&w->nodes[i]) && w->nodes[i].up) final_node(w, &w->nodes[i]);
}
