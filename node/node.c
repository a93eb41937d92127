/* The daemon's life: open the store (writing the genesis the first time), start
 * peer links, the API and consensus on one libuv loop, tick, and stop cleanly on
 * SIGINT or SIGTERM. */
#include "node/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int node__send(node *n, uint32_t peer, const kn_buf *msg)
{
    return n->peers ? net_peer_send(n->peers, peer, msg->data, msg->len) : KN_ECLOSED;
}

void node__broadcast(node *n, const kn_buf *msg)
{
    if (n->peers) (void)net_peers_broadcast(n->peers, msg->data, msg->len);
}

bool node__peer_online(const node *n, uint32_t v)
{
    if (v == n->cfg->self) return true;
    return n->peer[v].up && kn_mono_ms() - n->peer[v].last_seen_ms < NODE_PEER_SILENT_MS;
}

/* ---------------------------------------------------------------- peers */

static void peer_up(void *ctx, uint32_t peer)
{
    node *n = ctx;
    n->peer[peer].up = true;
    n->peer[peer].last_seen_ms = kn_mono_ms();
    KN_INFO("node", "validator online", "validator=%s", n->cfg->validators[peer].name);
    node__events_validator(n, peer, true);
    node__send_status(n, peer);
    /* It may have missed what we said at this height (it was down, or just
     * restarted): our proposal and votes may be the quorum it needs. */
    node__repeat_own(n, peer);
}

static void peer_down(void *ctx, uint32_t peer)
{
    node *n = ctx;
    n->peer[peer].up = false;
    KN_WARN("node", "validator offline", "validator=%s", n->cfg->validators[peer].name);
    node__events_validator(n, peer, false);
}

static void peer_message(void *ctx, uint32_t peer, const uint8_t *msg, size_t len)
{
    node *n = ctx;
    kn_cur c = kn_cur_make(msg, len);
    uint32_t count;
    uint64_t type;
    if (peer >= n->cfg->valset.n || kn_r_array(&c, &count) || count < 1 || kn_r_uint(&c, &type))
        return;
    n->peer[peer].last_seen_ms = kn_mono_ms();
    switch (type) {
    case NODE_MSG_STATUS: node__on_status_msg(n, peer, &c); break;
    case NODE_MSG_PROPOSAL: node__on_proposal_msg(n, peer, &c); break;
    case NODE_MSG_VOTE: node__on_vote_msg(n, peer, &c); break;
    case NODE_MSG_TXS: node__on_txs_msg(n, peer, &c); break;
    case NODE_MSG_GET_BLOCKS: node__on_get_blocks_msg(n, peer, &c); break;
    case NODE_MSG_BLOCKS: node__on_blocks_msg(n, peer, &c); break;
    case NODE_MSG_PING: node__on_ping_msg(n, peer, &c, false); break;
    case NODE_MSG_PONG: node__on_ping_msg(n, peer, &c, true); break;
    default:
        KN_DEBUG("node", "unknown peer message", "peer=%s type=%llu",
                 n->cfg->validators[peer].name, (unsigned long long)type);
    }
}

static int start_peers(node *n)
{
    const node_config *cfg = n->cfg;
    net_peer_info *peers = calloc(cfg->valset.n, sizeof *peers);
    KN_REQUIRE(peers != NULL);
    for (uint32_t i = 0; i < cfg->valset.n; i++) {
        memcpy(peers[i].pk, cfg->valset.v[i].pk, KN_PK_BYTES);
        snprintf(peers[i].host, sizeof peers[i].host, "%s", cfg->validators[i].peer_host);
        peers[i].port = cfg->validators[i].peer_port;
    }
    static const net_peers_cb cb = {peer_up, peer_down, peer_message};
    int rc = net_peers_start(&n->loop, &cfg->key, n->chain_id, cfg->peer_host, cfg->peer_port,
                             peers, cfg->valset.n, &cb, n, &n->peers);
    free(peers);
    return rc;
}

/* ---------------------------------------------------------------- store */

static int open_store(node *n)
{
    const node_config *cfg = n->cfg;
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        KN_ERROR("node", "cannot create data directory", "dir=%s err=%s", cfg->data_dir,
                 strerror(errno));
        return KN_EIO;
    }
    int rc = store_open(cfg->data_dir, cfg->map_size_bytes, &n->store);
    if (rc) return rc;
    store_txn *t;
    rc = store_begin(n->store, true, &t);
    if (rc) return rc;
    ledger_chain chain;
    rc = ledger_chain_get(t, &chain);
    if (rc == KN_ENOTFOUND) {
        rc = ledger_genesis_apply(t, &cfg->genesis);
        if (rc == 0) KN_INFO("node", "genesis written", "chain=%s", n->chain_id);
    }
    return rc ? (store_abort(t), rc) : store_commit(t);
}

/* ---------------------------------------------------------------- loop */

static void on_tick(uv_timer_t *h)
{
    node *n = h->data;
    uint64_t now = kn_mono_ms();
    if (now - n->last_status_ms >= n->cfg->heartbeat_ms) {
        n->last_status_ms = now;
        node__send_status(n, CONS_NO_VALIDATOR);
        node__send_ping(n);
    }
    node__clients_tick(n, now);
    node__catchup_tick(n);
    node__driver_tick(n, now);
}

static void on_signal(uv_signal_t *s, int signum)
{
    node *n = s->data;
    if (n->stopping) return;
    KN_INFO("node", "stopping", "signal=%d", signum);
    n->stopping = true;
    uv_stop(&n->loop);
}

static int start(node *n)
{
    int rc = open_store(n);
    if (!rc) rc = node__driver_start(n);
    if (!rc) rc = start_peers(n);
    /* The HTTP layer refuses what is over the larger limit; the API checks
     * each route's own (api.c). */
    size_t body_max = n->cfg->api_body_max_bytes > n->cfg->api_batch_body_max_bytes
                          ? n->cfg->api_body_max_bytes
                          : n->cfg->api_batch_body_max_bytes;
    if (!rc)
        rc = net_http_start(&n->loop, n->cfg->api_host, n->cfg->api_port, body_max,
                            node__api_handle, n, &n->http);
    if (rc) return rc;
    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, on_tick, NODE_TICK_MS, NODE_TICK_MS);
    uv_signal_init(&n->loop, &n->sigint);
    uv_signal_init(&n->loop, &n->sigterm);
    n->sigint.data = n->sigterm.data = n;
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
    n->handles_ready = true;
    KN_INFO("node", "started", "name=%s chain=%s height=%llu api=http://%s:%u peers=%s:%u",
            n->cfg->name, n->chain_id, (unsigned long long)n->chain.height, n->cfg->api_host,
            n->cfg->api_port, n->cfg->peer_host, n->cfg->peer_port);
    return 0;
}

static void stop(node *n)
{
    n->stopping = true;
    if (n->http) net_http_stop(n->http);
    if (n->peers) net_peers_stop(n->peers);
    n->http = NULL;
    n->peers = NULL;
    /* Close our own handles and let pending callbacks finish: verification
     * jobs in flight hold the node and must complete before it is freed. */
    if (n->handles_ready) {
        uv_close((uv_handle_t *)&n->tick, NULL);
        uv_close((uv_handle_t *)&n->sigint, NULL);
        uv_close((uv_handle_t *)&n->sigterm, NULL);
    }
    node__driver_close_timers(n);
    while (n->jobs_in_flight > 0) uv_run(&n->loop, UV_RUN_ONCE);
    /* Connections close over a few loop turns; give them a bounded while. */
    for (int i = 0; i < 200 && uv_loop_alive(&n->loop); i++) uv_run(&n->loop, UV_RUN_NOWAIT);
    node__submit_free(n);
    node__mempool_free(&n->mempool);
    if (n->cons) node__driver_stop(n);
    if (n->store) store_close(n->store);
}

int node_run(node_config *cfg)
{
    node *n = calloc(1, sizeof *n);
    KN_REQUIRE(n != NULL);
    n->cfg = cfg;
    n->chain_id = cfg->genesis.chain_id;
    n->started_ms = kn_now_ms();
#ifdef NDEBUG
    n->check_invariants = getenv("KOINON_CHECK_INVARIANTS") != NULL;
#else
    n->check_invariants = true; /* debug builds audit the whole ledger after every block */
#endif
    KN_REQUIRE(uv_loop_init(&n->loop) == 0);
    node__mempool_init(&n->mempool, cfg->mempool_txs_max);
    node__submit_init(n);

    int rc = node__crash_init();
    if (!rc) rc = start(n);
    if (rc) KN_ERROR("node", "cannot start", "err=%s", kn_strerror(rc));
    else uv_run(&n->loop, UV_RUN_DEFAULT);
    stop(n);
    /* A handle still open would make freeing the node unsafe; the process is
     * exiting, so leave both to it then. */
    if (uv_loop_close(&n->loop) == 0) free(n);
    KN_INFO("node", "stopped", "status=%d", rc ? 1 : 0);
    return rc ? 1 : 0;
}
