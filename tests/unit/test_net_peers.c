/*
 * Peer links: handshake, framing, limits, reconnects, refusals.
 *
 * Each test runs one libuv loop in this thread with several net_peers
 * instances on 127.0.0.1 and bounds its time with a uv timer: when the timer
 * fires before the awaited condition, run_until() returns false and the test
 * fails. Keys are sorted, so node i < node j dials j when i < j.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "net/internal.h"

#define CHAIN "koinon-test"
#define NODES_MAX 4
#define DEADLINE_MS 10000
#define ORDER_MSGS 1000
#define ORDER_MSG_BYTES_MAX (100u << 10)

static kn_keypair keys[NODES_MAX]; /* ascending by public key */
static uint16_t port_base;

typedef struct node {
    net_peers *p;
    uint32_t up[NODES_MAX], down[NODES_MAX];
    uint32_t received[NODES_MAX];
    uint32_t bad; /* messages that were not what the sender sent */
    const size_t *lens; /* expected length of message i, or NULL for msg_size(i) */
} node;

/* ---------------------------------------------------------------- messages */

static size_t msg_size(uint32_t i)
{
    return 1 + (size_t)((i * 2654435761u) % ORDER_MSG_BYTES_MAX);
}

static uint8_t msg_byte(uint32_t i, size_t j)
{
    return (uint8_t)(i * 31u + j * 7u + (j >> 9));
}

static uint8_t *make_msg(uint32_t i, size_t len)
{
    uint8_t *m = malloc(len ? len : 1);
    assert_non_null(m);
    for (size_t j = 0; j < len; j++) m[j] = msg_byte(i, j);
    return m;
}

static void on_up(void *ctx, uint32_t peer)
{
    node *n = ctx;
    n->up[peer]++;
}

static void on_down(void *ctx, uint32_t peer)
{
    node *n = ctx;
    n->down[peer]++;
}

/* Message i from a peer must be the i-th that peer sent, byte for byte. */
static void on_message(void *ctx, uint32_t peer, const uint8_t *msg, size_t len)
{
    node *n = ctx;
    uint32_t i = n->received[peer]++;
    size_t want = n->lens ? n->lens[i] : msg_size(i);
    if (len != want) {
        n->bad++;
        return;
    }
    for (size_t j = 0; j < len; j++) {
        if (msg[j] != msg_byte(i, j)) {
            n->bad++;
            return;
        }
    }
}

static const net_peers_cb callbacks = {on_up, on_down, on_message};

/* ---------------------------------------------------------------- loop */

typedef bool (*pred_fn)(void *arg);

static void deadline_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void flag_close_cb(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* Runs the loop until pred holds (true) or timeout_ms pass (false). */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg, uint64_t timeout_ms)
{
    uv_timer_t t;
    bool expired = false, closed = false;
    assert_int_equal(uv_timer_init(loop, &t), 0);
    t.data = &expired;
    assert_int_equal(uv_timer_start(&t, deadline_cb, timeout_ms, 0), 0);
    while (!expired && !(pred && pred(arg))) uv_run(loop, UV_RUN_ONCE);
    t.data = &closed;
    uv_close((uv_handle_t *)&t, flag_close_cb);
    while (!closed) uv_run(loop, UV_RUN_ONCE);
    return !expired;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    assert_false(run_until(loop, NULL, NULL, ms));
}

static uv_loop_t *loop_new(void)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    assert_non_null(loop);
    assert_int_equal(uv_loop_init(loop), 0);
    return loop;
}

/* Every handle must be closed once the instances have stopped: a leaked
 * handle keeps the loop alive and uv_loop_close fails. */
static void loop_finish(uv_loop_t *loop)
{
    for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT); i++) continue;
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
}

/* ---------------------------------------------------------------- nodes */

static uint16_t port_of(int test, int k)
{
    return (uint16_t)(port_base + test * 10 + k);
}

static void info_of(net_peer_info *out, int test, int k)
{
    memset(out, 0, sizeof *out);
    memcpy(out->pk, keys[k].pk, KN_PK_BYTES);
    snprintf(out->host, sizeof out->host, "127.0.0.1");
    out->port = port_of(test, k);
}

/* Starts node k with peers 0..n-1 (so peer index == node index). */
static void node_start(uv_loop_t *loop, node *n, int test, int k, uint32_t n_peers)
{
    net_peer_info infos[NODES_MAX];
    for (uint32_t i = 0; i < n_peers; i++) info_of(&infos[i], test, (int)i);
    const size_t *lens = n->lens;
    memset(n, 0, sizeof *n);
    n->lens = lens;
    assert_int_equal(net_peers_start(loop, &keys[k], CHAIN, "127.0.0.1", port_of(test, k), infos,
                                     n_peers, &callbacks, n, &n->p),
                     0);
}

typedef struct mesh {
    node *nodes;
    int n;
} mesh;

static bool mesh_up(void *arg)
{
    mesh *m = arg;
    for (int i = 0; i < m->n; i++)
        for (int j = 0; j < m->n; j++)
            if (i != j && m->nodes[i].up[j] != 1) return false;
    return true;
}

static bool mesh_heard(void *arg)
{
    mesh *m = arg;
    for (int i = 0; i < m->n; i++)
        for (int j = 0; j < m->n; j++)
            if (i != j && m->nodes[i].received[j] < 1) return false;
    return true;
}

static int keycmp(const void *a, const void *b)
{
    return memcmp(((const kn_keypair *)a)->pk, ((const kn_keypair *)b)->pk, KN_PK_BYTES);
}

static int setup_keys(void **state)
{
    for (int i = 0; i < NODES_MAX; i++) kn_keypair_generate(&keys[i]);
    qsort(keys, NODES_MAX, sizeof keys[0], keycmp);
    /* Below the kernel's ephemeral range (32768+), where outgoing connections could hold it. */
    port_base = (uint16_t)(20000 + getpid() % 4000);
    return 0;
}

/* ---------------------------------------------------------------- frame layer */

static void frame_roundtrip_and_tampering(void **state)
{
    net__dir tx = {{0}, 0}, rx = {{0}, 0};
    randombytes_buf(tx.key, sizeof tx.key);
    memcpy(rx.key, tx.key, sizeof rx.key);
    uint8_t msg[100];
    randombytes_buf(msg, sizeof msg);
    kn_buf wire = {0}, plain = {0};
    assert_int_equal(net__frame_seal(&tx, msg, sizeof msg, &wire), 0);
    assert_int_equal(wire.len, NET__LEN_BYTES + sizeof msg + NET__TAG_BYTES);

    /* Any flipped bit, in the length, body or tag, is refused; rx stays put. */
    for (size_t i = 0; i < wire.len; i++) {
        wire.data[i] ^= 0x01;
        kn_cur c = kn_cur_make(wire.data, wire.len);
        int rc = net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain);
        assert_true(rc < 0 || (rc == 0 && c.left == wire.len));
        assert_true(rx.nonce == 0);
        wire.data[i] ^= 0x01;
    }
    /* A partial frame waits without consuming. */
    kn_cur part = kn_cur_make(wire.data, wire.len - 1);
    assert_int_equal(net__frame_open(&rx, &part, NET__CIPHER_BYTES_MAX, &plain), 0);
    assert_int_equal(part.left, wire.len - 1);

    kn_cur c = kn_cur_make(wire.data, wire.len);
    assert_int_equal(net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain), 1);
    assert_int_equal(c.left, 0);
    assert_int_equal(plain.len, sizeof msg);
    assert_memory_equal(plain.data, msg, sizeof msg);

    /* Replaying the same frame fails: the counter has moved on. */
    c = kn_cur_make(wire.data, wire.len);
    assert_int_equal(net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain), KN_EBADSIG);
    kn_buf_free(&wire);
    kn_buf_free(&plain);
}

static void frame_limits(void **state)
{
    net__dir tx = {{0}, 0}, rx = {{0}, 0};
    kn_buf wire = {0}, plain = {0};
    /* A header announcing more than the limit fails before the body arrives. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    kn_cur c = kn_cur_make(huge, sizeof huge);
    assert_int_equal(net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain), KN_ETOOBIG);
    static const uint8_t over[] = {0x01, 0x00, 0x00, 0x11}; /* 16 MiB + 17 */
    c = kn_cur_make(over, sizeof over);
    assert_int_equal(net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain), KN_ETOOBIG);
    static const uint8_t tiny[] = {0x00, 0x00, 0x00, 0x0f, 0};
    c = kn_cur_make(tiny, sizeof tiny);
    assert_int_equal(net__frame_open(&rx, &c, NET__CIPHER_BYTES_MAX, &plain), KN_EDECODE);

    assert_int_equal(net__frame_seal(&tx, NULL, NET_FRAME_BYTES_MAX + 1, &wire), KN_ETOOBIG);
    assert_int_equal(wire.len, 0);
    /* The last counter value is never used: the link closes instead. */
    tx.nonce = UINT64_MAX;
    assert_int_equal(net__frame_seal(&tx, (const uint8_t *)"x", 1, &wire), KN_ECLOSED);
    assert_int_equal(wire.len, 0);
    tx.nonce = UINT64_MAX - 1;
    assert_int_equal(net__frame_seal(&tx, (const uint8_t *)"x", 1, &wire), 0);
    kn_buf_free(&wire);
    kn_buf_free(&plain);
}

/* ---------------------------------------------------------------- links */

static void three_nodes_connect(void **state)
{
    uv_loop_t *loop = loop_new();
    node nodes[3] = {0};
    for (int k = 0; k < 3; k++) node_start(loop, &nodes[k], 0, k, 3);
    mesh m = {nodes, 3};
    assert_true(run_until(loop, mesh_up, &m, DEADLINE_MS));
    for (int k = 0; k < 3; k++) {
        assert_true(net_peer_is_up(nodes[k].p, (uint32_t)((k + 1) % 3)));
        assert_false(net_peer_is_up(nodes[k].p, (uint32_t)k)); /* itself */
        uint8_t *msg = make_msg(0, msg_size(0));
        assert_int_equal(net_peers_broadcast(nodes[k].p, msg, msg_size(0)), 2);
        free(msg);
    }
    /* Each node got exactly one message from each other node. */
    assert_true(run_until(loop, mesh_heard, &m, DEADLINE_MS));
    run_for(loop, 20);
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 3; j++) assert_int_equal(nodes[k].received[j], j == k ? 0 : 1);
        assert_int_equal(nodes[k].bad, 0);
    }
    for (int k = 0; k < 3; k++) net_peers_stop(nodes[k].p);
    loop_finish(loop);
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++) assert_int_equal(nodes[k].down[j], 0); /* none after stop */
}

typedef struct want_msgs {
    node *n;
    uint32_t peer;
    uint32_t count;
} want_msgs;

static bool got_msgs(void *arg)
{
    want_msgs *w = arg;
    return w->n->received[w->peer] >= w->count;
}

/* Sends message i..i+count-1 of the msg_size() sequence, riding out EBUSY. */
static void send_sequence(uv_loop_t *loop, net_peers *p, uint32_t peer, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        size_t len = msg_size(i);
        uint8_t *msg = make_msg(i, len);
        int rc;
        while ((rc = net_peer_send(p, peer, msg, len)) == KN_EBUSY) uv_run(loop, UV_RUN_ONCE);
        assert_int_equal(rc, 0);
        free(msg);
    }
}

static void messages_whole_and_in_order(void **state)
{
    uv_loop_t *loop = loop_new();
    node nodes[2] = {0};
    for (int k = 0; k < 2; k++) node_start(loop, &nodes[k], 1, k, 2);
    mesh m = {nodes, 2};
    assert_true(run_until(loop, mesh_up, &m, DEADLINE_MS));
    send_sequence(loop, nodes[0].p, 1, ORDER_MSGS);
    send_sequence(loop, nodes[1].p, 0, ORDER_MSGS);
    want_msgs w1 = {&nodes[1], 0, ORDER_MSGS}, w0 = {&nodes[0], 1, ORDER_MSGS};
    assert_true(run_until(loop, got_msgs, &w1, DEADLINE_MS));
    assert_true(run_until(loop, got_msgs, &w0, DEADLINE_MS));
    run_for(loop, 50); /* nothing extra trails behind */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(nodes[k].received[1 - k], ORDER_MSGS);
        assert_int_equal(nodes[k].bad, 0);
    }
    for (int k = 0; k < 2; k++) net_peers_stop(nodes[k].p);
    loop_finish(loop);
}

static void large_messages_and_limits(void **state)
{
    static const size_t lens[] = {4u << 20, NET_FRAME_BYTES_MAX, 1};
    uv_loop_t *loop = loop_new();
    node nodes[2] = {{0}, {0}};
    nodes[1].lens = lens;
    for (int k = 0; k < 2; k++) node_start(loop, &nodes[k], 2, k, 2);
    uint8_t *big = make_msg(1, NET_FRAME_BYTES_MAX + 1);
    /* Before the link is up; out of range; too big (even while down). */
    assert_int_equal(net_peer_send(nodes[0].p, 1, big, 10), KN_ECLOSED);
    assert_int_equal(net_peer_send(nodes[0].p, 1, big, NET_FRAME_BYTES_MAX + 1), KN_ETOOBIG);
    assert_int_equal(net_peer_send(nodes[0].p, 7, big, 10), KN_EINVAL);
    mesh m = {nodes, 2};
    assert_true(run_until(loop, mesh_up, &m, DEADLINE_MS));
    assert_int_equal(net_peer_send(nodes[0].p, 1, big, NET_FRAME_BYTES_MAX + 1), KN_ETOOBIG);
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t *msg = make_msg(i, lens[i]);
        assert_int_equal(net_peer_send(nodes[0].p, 1, msg, lens[i]), 0);
        free(msg);
    }
    want_msgs w = {&nodes[1], 0, 3};
    assert_true(run_until(loop, got_msgs, &w, DEADLINE_MS));
    assert_int_equal(nodes[1].received[0], 3);
    assert_int_equal(nodes[1].bad, 0);
    assert_true(net_peer_is_up(nodes[0].p, 1)); /* the refused send changed nothing */
    free(big);
    for (int k = 0; k < 2; k++) net_peers_stop(nodes[k].p);
    loop_finish(loop);
}

static void send_queue_is_bounded(void **state)
{
    static const size_t lens[] = {NET_FRAME_BYTES_MAX, NET_FRAME_BYTES_MAX, NET_FRAME_BYTES_MAX,
                                  NET_FRAME_BYTES_MAX, NET_FRAME_BYTES_MAX};
    uv_loop_t *loop = loop_new();
    node nodes[2] = {{0}, {0}};
    nodes[1].lens = lens;
    for (int k = 0; k < 2; k++) node_start(loop, &nodes[k], 3, k, 2);
    mesh m = {nodes, 2};
    assert_true(run_until(loop, mesh_up, &m, DEADLINE_MS));
    /* Without running the loop nothing drains: 64 MiB hold three full frames. */
    uint32_t queued = 0;
    int rc = 0;
    for (uint32_t i = 0; i < 5 && rc == 0; i++) {
        uint8_t *msg = make_msg(i, NET_FRAME_BYTES_MAX);
        rc = net_peer_send(nodes[0].p, 1, msg, NET_FRAME_BYTES_MAX);
        if (rc == 0) queued++;
        free(msg);
    }
    assert_int_equal(rc, KN_EBUSY);
    assert_int_equal(queued, NET_SEND_QUEUE_BYTES_MAX / NET_FRAME_BYTES_MAX - 1);
    want_msgs w = {&nodes[1], 0, queued};
    assert_true(run_until(loop, got_msgs, &w, DEADLINE_MS));
    assert_int_equal(nodes[1].bad, 0);
    /* Once drained, sending works again. */
    uint8_t *msg = make_msg(queued, NET_FRAME_BYTES_MAX);
    assert_int_equal(net_peer_send(nodes[0].p, 1, msg, NET_FRAME_BYTES_MAX), 0);
    free(msg);
    w.count = queued + 1;
    assert_true(run_until(loop, got_msgs, &w, DEADLINE_MS));
    assert_int_equal(nodes[1].bad, 0);
    for (int k = 0; k < 2; k++) net_peers_stop(nodes[k].p);
    loop_finish(loop);
}

typedef struct refusal {
    net_peers *p;
    uint32_t count;
} refusal;

static bool refused_enough(void *arg)
{
    refusal *r = arg;
    return net__peers_refused(r->p) >= r->count;
}

/* Node 0 (smallest key, so it dials) lists nodes 0..3; nodes 1..3 list only
 * themselves. Node 1 must refuse node 0 every time it tries, and nobody comes
 * up. Then the other way round: node 1 lists node 3, which does not list it. */
static void unlisted_key_is_refused(void **state)
{
    uv_loop_t *loop = loop_new();
    net_peer_info all[NODES_MAX], listed[3];
    for (int k = 0; k < NODES_MAX; k++) info_of(&all[k], 4, k);
    for (int k = 1; k < NODES_MAX; k++) listed[k - 1] = all[k];
    node outsider = {0}, n1 = {0}, n3 = {0};
    assert_int_equal(net_peers_start(loop, &keys[0], CHAIN, "127.0.0.1", port_of(4, 0), all,
                                     NODES_MAX, &callbacks, &outsider, &outsider.p),
                     0);
    /* Node 1 lists 1..3 (index 0 is node 1); node 3 lists only itself and 2. */
    assert_int_equal(net_peers_start(loop, &keys[1], CHAIN, "127.0.0.1", port_of(4, 1), listed,
                                     3, &callbacks, &n1, &n1.p),
                     0);
    assert_int_equal(net_peers_start(loop, &keys[3], CHAIN, "127.0.0.1", port_of(4, 3), &listed[1],
                                     2, &callbacks, &n3, &n3.p),
                     0);
    /* Node 0 dials 1 and 3, node 1 dials 3: every link is refused, repeatedly. */
    refusal r1 = {n1.p, 2}, r3 = {n3.p, 2};
    assert_true(run_until(loop, refused_enough, &r1, DEADLINE_MS));
    assert_true(run_until(loop, refused_enough, &r3, DEADLINE_MS));
    for (int k = 0; k < NODES_MAX; k++) {
        assert_int_equal(outsider.up[k], 0);
        assert_int_equal(n1.up[k], 0);
        assert_int_equal(n3.up[k], 0);
    }
    net_peers_stop(outsider.p);
    net_peers_stop(n1.p);
    net_peers_stop(n3.p);
    loop_finish(loop);
}

typedef struct counter_at_least {
    const uint32_t *value;
    uint32_t count;
} counter_at_least;

static bool counter_reached(void *arg)
{
    counter_at_least *c = arg;
    return *c->value >= c->count;
}

/* Restarts node k of a linked pair and waits for the link to come back. */
static void restart_and_relink(uv_loop_t *loop, node nodes[2], int k)
{
    node *other = &nodes[1 - k];
    uint32_t downs = other->down[k], ups = other->up[k];
    net_peers_stop(nodes[k].p);
    counter_at_least down = {&other->down[k], downs + 1};
    assert_true(run_until(loop, counter_reached, &down, DEADLINE_MS));
    assert_false(net_peer_is_up(other->p, (uint32_t)k));
    node_start(loop, &nodes[k], 5, k, 2);
    counter_at_least up = {&other->up[k], ups + 1};
    assert_true(run_until(loop, counter_reached, &up, DEADLINE_MS));
    counter_at_least back = {&nodes[k].up[1 - k], 1};
    assert_true(run_until(loop, counter_reached, &back, DEADLINE_MS));
    assert_int_equal(other->down[k], downs + 1);
    /* The new link carries messages. */
    uint8_t *msg = make_msg(0, msg_size(0));
    assert_int_equal(net_peer_send(other->p, (uint32_t)k, msg, msg_size(0)), 0);
    free(msg);
    want_msgs w = {&nodes[k], (uint32_t)(1 - k), 1};
    assert_true(run_until(loop, got_msgs, &w, DEADLINE_MS));
    assert_int_equal(nodes[k].bad, 0);
}

static void restarted_node_relinks(void **state)
{
    uv_loop_t *loop = loop_new();
    node nodes[2] = {0};
    for (int k = 0; k < 2; k++) node_start(loop, &nodes[k], 5, k, 2);
    mesh m = {nodes, 2};
    assert_true(run_until(loop, mesh_up, &m, DEADLINE_MS));
    restart_and_relink(loop, nodes, 1); /* the acceptor: node 0 redials with backoff */
    restart_and_relink(loop, nodes, 0); /* the dialer: it dials again on start */
    for (int k = 0; k < 2; k++) net_peers_stop(nodes[k].p);
    loop_finish(loop);
}

/* ---------------------------------------------------------------- raw clients */

/* A hand-driven client: sends garbage, or plays node 0's side of the handshake
 * with a chosen role byte and then one good and one tampered frame. */
typedef struct raw_client {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    const uint8_t *garbage;
    size_t garbage_len;
    uint8_t role;
    bool tamper;
    uint8_t eph_pk[NET__EPH_BYTES], eph_sk[crypto_kx_SECRETKEYBYTES];
    net__dir tx, rx;
    kn_buf in, out;
    bool sent_auth, eof, closed;
} raw_client;

static void raw_write_cb(uv_write_t *req, int status)
{
    free(req);
}

static void raw_send(raw_client *c, const void *p, size_t n)
{
    uv_write_t *req = malloc(sizeof *req);
    assert_non_null(req);
    kn_buf_append(&c->out, p, n);
    uv_buf_t b = uv_buf_init((char *)c->out.data + c->out.len - n, (unsigned)n);
    assert_int_equal(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, raw_write_cb), 0);
}

static void raw_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536];
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void raw_send_auth(raw_client *c, const uint8_t *server_eph)
{
    uint8_t rx[NET__KEY_BYTES], tx[NET__KEY_BYTES], transcript[NET__TRANSCRIPT_BYTES];
    assert_int_equal(crypto_kx_client_session_keys(rx, tx, c->eph_pk, c->eph_sk, server_eph), 0);
    memcpy(c->rx.key, rx, sizeof rx);
    memcpy(c->tx.key, tx, sizeof tx);
    net__transcript(transcript, c->eph_pk, server_eph, c->role);
    uint8_t auth[NET__AUTH_BYTES];
    memcpy(auth, keys[0].pk, KN_PK_BYTES);
    kn_sign(auth + KN_PK_BYTES, &keys[0], KN_DOMAIN_HANDSHAKE, CHAIN, transcript,
            sizeof transcript);
    kn_buf frames = {0};
    assert_int_equal(net__frame_seal(&c->tx, auth, sizeof auth, &frames), 0);
    if (c->tamper) {
        uint8_t *good = make_msg(0, msg_size(0));
        assert_int_equal(net__frame_seal(&c->tx, good, msg_size(0), &frames), 0);
        size_t start = frames.len;
        assert_int_equal(net__frame_seal(&c->tx, good, msg_size(0), &frames), 0);
        frames.data[start + NET__LEN_BYTES] ^= 0x80; /* first ciphertext byte */
        free(good);
    }
    raw_send(c, frames.data, frames.len);
    kn_buf_free(&frames);
    c->sent_auth = true;
}

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    raw_client *c = s->data;
    if (nread < 0) {
        c->eof = true;
        uv_read_stop(s);
        return;
    }
    kn_buf_append(&c->in, buf->base, (size_t)nread);
    if (c->garbage || c->sent_auth || c->in.len < NET__EPH_BYTES) return;
    raw_send_auth(c, c->in.data);
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
    raw_client *c = req->data;
    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, raw_alloc_cb, raw_read_cb), 0);
    if (c->garbage) raw_send(c, c->garbage, c->garbage_len);
    else raw_send(c, c->eph_pk, sizeof c->eph_pk);
}

static void raw_connect(uv_loop_t *loop, raw_client *c, uint16_t port)
{
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &addr), 0);
    crypto_kx_keypair(c->eph_pk, c->eph_sk);
    kn_buf_reserve(&c->out, 1 << 20); /* raw_send points into it: no moves */
    assert_int_equal(uv_tcp_init(loop, &c->tcp), 0);
    c->tcp.data = c;
    c->connect_req.data = c;
    assert_int_equal(
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, raw_connect_cb), 0);
}

static bool raw_eof(void *arg)
{
    return ((raw_client *)arg)->eof;
}

static void raw_close_cb(uv_handle_t *h)
{
    ((raw_client *)h->data)->closed = true;
}

static void raw_finish(uv_loop_t *loop, raw_client *c)
{
    uv_close((uv_handle_t *)&c->tcp, raw_close_cb);
    while (!c->closed) uv_run(loop, UV_RUN_ONCE);
    kn_buf_free(&c->in);
    kn_buf_free(&c->out);
}

/* Node 1 listens for node 0, which a raw client impersonates. */
static void raw_session(uv_loop_t *loop, node *server, raw_client *c, uint32_t refused_before)
{
    raw_connect(loop, c, port_of(6, 1));
    assert_true(run_until(loop, raw_eof, c, DEADLINE_MS));
    raw_finish(loop, c);
    assert_true(net__peers_refused(server->p) > refused_before);
}

static void bad_clients_are_closed(void **state)
{
    uv_loop_t *loop = loop_new();
    node server = {0};
    node_start(loop, &server, 6, 1, 2);

    uint8_t junk[200];
    memset(junk, 0xab, sizeof junk); /* a frame length far over the limit */
    raw_client c1 = {.garbage = junk, .garbage_len = sizeof junk};
    raw_session(loop, &server, &c1, 0);

    uint8_t forged[NET__EPH_BYTES + NET__LEN_BYTES + NET__AUTH_BYTES + NET__TAG_BYTES];
    randombytes_buf(forged, sizeof forged); /* right sizes, no valid tag */
    forged[NET__EPH_BYTES] = 0;
    forged[NET__EPH_BYTES + 1] = 0;
    forged[NET__EPH_BYTES + 2] = 0;
    forged[NET__EPH_BYTES + 3] = NET__AUTH_BYTES + NET__TAG_BYTES;
    raw_client c2 = {.garbage = forged, .garbage_len = sizeof forged};
    raw_session(loop, &server, &c2, net__peers_refused(server.p));

    /* A genuine signature by node 0, but made as if by the acceptor. */
    raw_client c3 = {.role = NET__ROLE_ACCEPTOR};
    raw_session(loop, &server, &c3, net__peers_refused(server.p));

    assert_int_equal(server.up[0], 0);
    assert_int_equal(server.received[0], 0);
    net_peers_stop(server.p);
    loop_finish(loop);
}

/* The same client with the right role gets in, delivers one message, and its
 * tampered second frame closes the link. */
static void tampered_frame_closes_link(void **state)
{
    uv_loop_t *loop = loop_new();
    node server = {0};
    node_start(loop, &server, 6, 1, 2);
    raw_client c = {.role = NET__ROLE_DIALER, .tamper = true};
    raw_connect(loop, &c, port_of(6, 1));
    assert_true(run_until(loop, raw_eof, &c, DEADLINE_MS));
    assert_int_equal(server.up[0], 1);
    assert_int_equal(server.received[0], 1);
    assert_int_equal(server.bad, 0);
    assert_int_equal(server.down[0], 1);
    assert_false(net_peer_is_up(server.p, 0));
    /* The server answered with its own auth frame, which verifies. */
    kn_cur in = kn_cur_make(c.in.data, c.in.len);
    const uint8_t *eph;
    kn_buf plain = {0};
    assert_int_equal(kn_cur_take(&in, NET__EPH_BYTES, &eph), 0);
    assert_int_equal(net__frame_open(&c.rx, &in, NET__CIPHER_BYTES_MAX, &plain), 1);
    assert_int_equal(plain.len, NET__AUTH_BYTES);
    assert_memory_equal(plain.data, keys[1].pk, KN_PK_BYTES);
    kn_buf_free(&plain);
    raw_finish(loop, &c);
    net_peers_stop(server.p);
    loop_finish(loop);
}

int main(void)
{
    if (kn_crypto_init()) return 1;
    kn_log_setup(KN_LOG_WARN, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_roundtrip_and_tampering),
        cmocka_unit_test(frame_limits),
        cmocka_unit_test(three_nodes_connect),
        cmocka_unit_test(messages_whole_and_in_order),
        cmocka_unit_test(large_messages_and_limits),
        cmocka_unit_test(send_queue_is_bounded),
        cmocka_unit_test(unlisted_key_is_refused),
        cmocka_unit_test(restarted_node_relinks),
        cmocka_unit_test(bad_clients_are_closed),
        cmocka_unit_test(tampered_frame_closes_link),
    };
    return cmocka_run_group_tests(tests, setup_keys, NULL);
}
