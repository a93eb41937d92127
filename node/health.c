/* Health of the consortium as this node sees it: recent blocks, who signed
 * their certificates, who proposed, evidence of equivocation, peer round trips,
 * and the counters and histograms behind /metrics. Everything is fixed-size
 * rings and arrays updated on the loop thread; reading them costs nothing. */
#include "node/internal.h"

#include <string.h>

const uint64_t node__hist_bounds_ms[NODE_HIST_BUCKETS] = {10,  25,   50,   100,  250,  500,
                                                          1000, 2500, 5000, 10000, 30000};

void node__hist_observe(node__hist *h, uint64_t ms)
{
    for (int i = 0; i < NODE_HIST_BUCKETS; i++)
        if (ms <= node__hist_bounds_ms[i]) h->buckets[i]++;
    h->count++;
    h->sum_ms += ms;
}

void node__health_on_commit(node *n, const ledger_header *hdr, const uint8_t *cert_bytes,
                            size_t cert_len, uint64_t prev_time_ms)
{
    node__health *hl = &n->health;
    node__recent_block *b = &hl->blocks[hl->next_block];
    b->height = hdr->height;
    b->time_ms = hdr->time_ms;
    b->txs = hdr->n_txs;
    b->proposer = hdr->proposer;
    hl->next_block = (hl->next_block + 1) % NODE_RECENT_BLOCKS;
    if (hl->n_blocks < NODE_RECENT_BLOCKS) hl->n_blocks++;
    if (hdr->proposer < CONS_VALIDATORS_MAX) hl->proposed[hdr->proposer]++;
    if (prev_time_ms && hdr->time_ms > prev_time_ms)
        node__hist_observe(&hl->block_interval, hdr->time_ms - prev_time_ms);

    /* Who signed the certificate: a validator absent from it missed the vote
     * (or its precommit arrived after the quorum was reached). */
    kn_cur c = kn_cur_make(cert_bytes, cert_len);
    cons_cert cert;
    uint64_t mask = 0;
    if (cons_cert_decode(&c, &cert) == 0)
        for (uint32_t i = 0; i < cert.n_sigs; i++)
            if (cert.sigs[i].validator < 64) mask |= 1ull << cert.sigs[i].validator;
    hl->signed_mask[hl->next_mask] = mask;
    hl->next_mask = (hl->next_mask + 1) % NODE_MISSED_WINDOW;
    if (hl->n_masks < NODE_MISSED_WINDOW) hl->n_masks++;
}

uint32_t node__health_missed(const node *n, uint32_t v)
{
    uint32_t missed = 0;
    for (uint32_t i = 0; i < n->health.n_masks; i++)
        if (!(n->health.signed_mask[i] >> v & 1)) missed++;
    return missed;
}

void node__health_on_evidence(node *n, const cons_vote *a)
{
    node__health *hl = &n->health;
    node__evidence *e = &hl->evidence[hl->next_evidence];
    e->validator = a->validator;
    e->height = a->height;
    e->round = a->round;
    e->type = a->type;
    hl->next_evidence = (hl->next_evidence + 1) % NODE_EVIDENCE_MAX;
    if (hl->n_evidence < NODE_EVIDENCE_MAX) hl->n_evidence++;
    hl->evidence_total++;
}

/* The i-th oldest entry of a ring of size cap whose next write goes to next. */
uint32_t node__ring_index(uint32_t i, uint32_t count, uint32_t next, uint32_t cap)
{
    return (next + cap - count + i) % cap;
}

/* ---------------------------------------------------------------- ping */

void node__send_ping(node *n)
{
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, NODE_MSG_PING);
    kn_w_uint(&msg, kn_mono_us());
    node__broadcast(n, &msg);
    kn_buf_free(&msg);
}

void node__on_ping_msg(node *n, uint32_t peer, kn_cur *c, bool pong)
{
    uint64_t sent_us;
    if (kn_r_uint(c, &sent_us)) return;
    if (pong) {
        uint64_t now = kn_mono_us();
        if (sent_us <= now && now - sent_us < UINT32_MAX) n->peer[peer].rtt_us = (uint32_t)(now - sent_us);
        return;
    }
    /* Echo the sender's own clock value: round trips need no synchronised clocks. */
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, NODE_MSG_PONG);
    kn_w_uint(&msg, sent_us);
    node__send(n, peer, &msg);
    kn_buf_free(&msg);
}

void node__health_late_precommit(node *n, const cons_vote *v)
{
    /* A precommit for the block just committed that arrived after the quorum:
     * the validator did vote, so it should not count as missed. */
    node__health *hl = &n->health;
    if (hl->n_masks == 0 || v->type != CONS_PRECOMMIT || v->nil || v->validator >= 64) return;
    if (memcmp(v->block_id, n->chain.last_block_id, KN_HASH_BYTES) != 0) return;
    uint32_t last = (hl->next_mask + NODE_MISSED_WINDOW - 1) % NODE_MISSED_WINDOW;
    hl->signed_mask[last] |= 1ull << v->validator;
}
