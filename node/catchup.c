/* Catch-up: peers announce their committed height; a node that is behind asks
 * one of them for the blocks it missed, with their certificates, and applies
 * each one only after its certificate verifies against the validator set. */
#include "node/internal.h"

#include <stdlib.h>
#include <string.h>

void node__send_status(node *n, uint32_t peer_or_all)
{
    kn_buf msg = {0};
    kn_w_array(&msg, 4);
    kn_w_uint(&msg, NODE_MSG_STATUS);
    kn_w_uint(&msg, n->chain.height);
    kn_w_uint(&msg, n->cons ? cons_round(n->cons) : 0);
    kn_w_uint(&msg, n->cons ? cons_step(n->cons) : 0);
    if (peer_or_all == CONS_NO_VALIDATOR) node__broadcast(n, &msg);
    else node__send(n, peer_or_all, &msg);
    kn_buf_free(&msg);
}

uint32_t node__catchup_pick(const node *n, bool stay)
{
    uint32_t nv = n->cfg->valset.n, best = CONS_NO_VALIDATOR;
    for (uint32_t k = stay ? 0 : 1; k <= nv && best == CONS_NO_VALIDATOR; k++) {
        uint32_t i = (n->catchup_peer + k) % nv;
        if (i != n->cfg->self && n->peer[i].up && n->peer[i].height > n->chain.height) best = i;
    }
    return best;
}

/* Asks a peer that is ahead for the blocks after our tip (node__catchup_pick
 * says which). */
static void ask_blocks(node *n, bool stay)
{
    uint32_t best = node__catchup_pick(n, stay);
    if (best == CONS_NO_VALIDATOR) return;
    uint64_t best_height = n->peer[best].height;
    kn_buf msg = {0};
    kn_w_array(&msg, 3);
    kn_w_uint(&msg, NODE_MSG_GET_BLOCKS);
    kn_w_uint(&msg, n->chain.height + 1);
    kn_w_uint(&msg, NODE_CATCHUP_BLOCKS_MAX);
    if (node__send(n, best, &msg) == 0) {
        n->catchup_asked_ms = kn_mono_ms();
        n->catchup_peer = best;
        n->catchup_open = true;
        /* The first request of a catch-up is news; the rest are its steps. */
        bool first = n->catchup_since_ms == 0;
        if (first) {
            n->catchup_since_ms = n->catchup_asked_ms;
            n->catchup_applied = n->catchup_certs_verified = 0;
        }
        kn_log(first ? KN_LOG_INFO : KN_LOG_DEBUG, "sync", "catching up",
               "from=%llu peer_height=%llu peer=%s", (unsigned long long)n->chain.height + 1,
               (unsigned long long)best_height, n->cfg->validators[best].name);
    }
    kn_buf_free(&msg);
}

/* True when some peer has committed at least margin blocks more than us. */
static bool behind(const node *n, uint64_t margin)
{
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        if (i != n->cfg->self && n->peer[i].up && n->peer[i].height >= n->chain.height + margin)
            return true;
    return false;
}

/* Ends a catch-up with one line for operators: how far it went and how fast.
 * Every block it counts was applied after its certificate verified. */
static void finish_catchup(node *n)
{
    uint64_t ms = kn_mono_ms() - n->catchup_since_ms;
    KN_INFO("sync", "caught up",
            "height=%llu blocks=%llu certs_verified=%llu ms=%llu blocks_per_s=%llu",
            (unsigned long long)n->chain.height, (unsigned long long)n->catchup_applied,
            (unsigned long long)n->catchup_certs_verified, (unsigned long long)ms,
            (unsigned long long)(ms ? n->catchup_applied * 1000 / ms : n->catchup_applied));
    n->catchup_since_ms = 0;
}

void node__catchup_tick(node *n)
{
    uint64_t now = kn_mono_ms();
    /* Nothing asked for a while and no peer ahead: the catch-up is over, even
     * if consensus rather than a last batch closed the gap. */
    if (n->catchup_since_ms && now - n->catchup_asked_ms >= NODE_CATCHUP_RETRY_MS && !behind(n, 1))
        finish_catchup(n);
    if (now - n->catchup_asked_ms < NODE_CATCHUP_RETRY_MS) return;
    /* A peer one block ahead is usually just a moment quicker, and consensus
     * replays its messages; only a stall or a wider gap means we are behind. */
    bool stalled = now - n->last_commit_mono_ms >= NODE_CATCHUP_RETRY_MS;
    if (behind(n, 2) || (stalled && behind(n, 1))) ask_blocks(n, false);
}

void node__on_status_msg(node *n, uint32_t peer, kn_cur *c)
{
    uint64_t height, round, step;
    if (kn_r_uint(c, &height) || kn_r_uint(c, &round) || kn_r_uint(c, &step)) return;
    n->peer[peer].height = height;
    node__catchup_tick(n);
}

void node__on_get_blocks_msg(node *n, uint32_t peer, kn_cur *c)
{
    uint64_t from, count;
    if (kn_r_uint(c, &from) || kn_r_uint(c, &count) || from == 0) return;
    if (count > NODE_CATCHUP_BLOCKS_MAX) count = NODE_CATCHUP_BLOCKS_MAX;
    uint64_t last = n->chain.height;
    if (from > last) return;
    if (last - from + 1 < count) count = last - from + 1;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    kn_buf body = {0};
    uint32_t sent = 0;
    size_t bytes = 0;
    for (uint64_t h = from; h < from + count; h++) {
        const uint8_t *block, *cert;
        size_t block_len, cert_len;
        if (ledger_block_get(t, h, &block, &block_len) || ledger_cert_get(t, h, &cert, &cert_len))
            break;
        if (sent > 0 && bytes + block_len + cert_len > NODE_CATCHUP_BYTES_MAX) break;
        kn_w_array(&body, 2);
        kn_w_bin(&body, block, block_len);
        kn_w_bin(&body, cert, cert_len);
        bytes += block_len + cert_len;
        sent++;
    }
    store_abort(t);
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, NODE_MSG_BLOCKS);
    kn_w_array(&msg, sent);
    kn_buf_append(&msg, body.data, body.len);
    node__send(n, peer, &msg);
    kn_buf_free(&msg);
    kn_buf_free(&body);
}

/* Verifies one fetched block and its certificate, then applies it. A height
 * committed since the request went out is skipped (*skipped set, 0 returned). */

static int apply_fetched(node *n, const uint8_t *block, size_t block_len, const uint8_t *cert_p,
                         size_t cert_len, bool *skipped)
{
    *skipped = false;
    kn_cur c = kn_cur_make(cert_p, cert_len);
    cons_cert cert;
    if (cons_cert_decode(&c, &cert) || c.left) return KN_EBADCERT;
    if (cert.height <= n->chain.height) {
        *skipped = true;
        return 0;
    }
    if (cert.height != n->chain.height + 1) return KN_EBADCERT;
    int rc = cons_cert_verify(&cert, &n->cfg->valset, n->chain_id);
    if (rc) return rc;
    n->catchup_certs_verified++;
    uint8_t(*ids)[KN_HASH_BYTES] = NULL;
    rc = node__check_block(n, block, block_len, cert.block_id, &ids);
    free(ids);
    if (rc) return rc;
    return node__commit_block(n, block, block_len, cert_p, cert_len, false);
}

void node__on_blocks_msg(node *n, uint32_t peer, kn_cur *c)
{
    uint32_t count, applied = 0;
    /* Only the answer to our open request counts. */
    if (!n->catchup_open || peer != n->catchup_peer || kn_r_array(c, &count)) return;
    n->catchup_open = false;
    int rc = 0;
    for (uint32_t i = 0; i < count && !rc; i++) {
        uint32_t pair;
        const uint8_t *block, *cert;
        size_t block_len, cert_len;
        /* Some of the batch applied, the rest not: consensus has not been
         * restarted, and a restart must resume from the tip alone. */
        if (applied > 0) NODE_CRASH(MID_CATCHUP);
        if (kn_r_array(c, &pair) || pair != 2 || kn_r_bin(c, &block, &block_len) ||
            kn_r_bin(c, &cert, &cert_len)) {
            rc = KN_EDECODE;
            break;
        }
        bool skipped;
        rc = apply_fetched(n, block, block_len, cert, cert_len, &skipped);
        if (!rc && !skipped) applied++;
    }
    if (rc)
        KN_WARN("sync", "rejected fetched block", "peer=%s height=%llu err=%s",
                n->cfg->validators[peer].name, (unsigned long long)n->chain.height + 1,
                kn_strerror(rc));
    n->catchup_applied += applied;
    if (applied) {
        KN_INFO("sync", "applied fetched blocks", "count=%u height=%llu", applied,
                (unsigned long long)n->chain.height);
        node__restart_consensus(n);
    }
    if (rc || !applied) {
        /* It served nothing usable: believe it is no further than we are until
         * it says otherwise, and let the retry go to another peer. */
        n->peer[peer].height = n->chain.height;
        return;
    }
    n->catchup_asked_ms = 0;
    /* Ask for the next batch at once: waiting for a tick would cap catch-up
     * at one batch per tick. */
    if (behind(n, 1)) ask_blocks(n, true);
    else if (n->catchup_since_ms) finish_catchup(n);
}
