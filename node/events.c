/* GET /v1/events: server-sent events for committed blocks (with their
 * transactions and results), validators going online or offline, and evidence.
 * A client resumes from a height with ?from_height=H or the Last-Event-ID
 * header (the id of a block event is its height): the blocks it missed are
 * sent from the store first. A subscriber too slow to keep up is dropped; it
 * reconnects with Last-Event-ID and loses nothing. */
#include "node/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node__subscriber {
    node *n;
    net_http_req *req;
    node__subscriber *prev, *next;
};

static void unlink_subscriber(node__subscriber *s)
{
    node *n = s->n;
    if (s->prev) s->prev->next = s->next;
    else n->subscribers = s->next;
    if (s->next) s->next->prev = s->prev;
    n->n_subscribers--;
}

static void subscriber_gone(void *arg)
{
    node__subscriber *s = arg;
    unlink_subscriber(s);
    free(s);
}

/* Writes one event; a subscriber that cannot take it is ended. */
static void send_event(node__subscriber *s, const char *text, size_t len)
{
    int rc = net_http_stream_write(s->req, text, len);
    if (rc == 0 || rc == KN_ECLOSED) return; /* closed: gone is on its way */
    KN_WARN("http", "dropping a slow event subscriber", "err=%s", kn_errname(rc));
    net_http_stream_end(s->req);
    unlink_subscriber(s);
    free(s);
}

static void broadcast_event(node *n, const char *text, size_t len)
{
    for (node__subscriber *s = n->subscribers, *next; s; s = next) {
        next = s->next;
        send_event(s, text, len);
    }
}

/* "id: H\nevent: block\ndata: {...}\n\n" */
static char *format_event(const char *type, uint64_t id, json_t *data, size_t *len)
{
    char *json = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    KN_REQUIRE(json != NULL);
    char head[64] = "";
    if (id) snprintf(head, sizeof head, "id: %llu\n", (unsigned long long)id);
    size_t cap = strlen(head) + strlen(type) + strlen(json) + 32;
    char *text = malloc(cap);
    KN_REQUIRE(text != NULL);
    *len = (size_t)snprintf(text, cap, "%sevent: %s\ndata: %s\n\n", head, type, json);
    free(json);
    return text;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * KN_HASH_BYTES + 1];
    KN_REQUIRE(n <= KN_HASH_BYTES);
    kn_hex(hex, p, n);
    return json_string(hex);
}

/* The block event of a stored height: its header fields and every
 * transaction with its result. */
static char *block_event(node *n, store_txn *t, uint64_t height, size_t *len)
{
    const uint8_t *p;
    size_t plen;
    ledger_block_view v;
    if (ledger_block_get(t, height, &p, &plen) || ledger_block_decode(p, plen, &v)) return NULL;
    json_t *txs = json_array();
    static ledger_tx tx; /* loop thread only */
    for (uint32_t i = 0; i < v.hdr.n_txs; i++) {
        ledger_tx_record rec;
        if (ledger_tx_decode(v.txs[i].p, v.txs[i].n, &tx) || ledger_tx_record_get(t, tx.id, &rec))
            continue;
        if (rec.height != height) continue; /* a duplicate skipped by execution */
        json_array_append_new(txs, json_pack("{s:o,s:s}", "id", hex_json(tx.id, KN_HASH_BYTES),
                                             "result", kn_errname(rec.result)));
    }
    const char *proposer =
        v.hdr.proposer < n->cfg->valset.n ? n->cfg->validators[v.hdr.proposer].name : "";
    json_t *data = json_pack("{s:I,s:o,s:I,s:s,s:o}", "height", (json_int_t)height, "id",
                             hex_json(v.block_id, KN_HASH_BYTES), "time_ms",
                             (json_int_t)v.hdr.time_ms, "proposer", proposer, "txs", txs);
    ledger_block_view_free(&v);
    return format_event("block", height, data, len);
}

void node__events_block(node *n, uint64_t height)
{
    if (!n->subscribers) return;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    size_t len;
    char *text = block_event(n, t, height, &len);
    store_abort(t);
    if (!text) return;
    broadcast_event(n, text, len);
    free(text);
}

void node__events_validator(node *n, uint32_t v, bool online)
{
    if (!n->subscribers) return;
    size_t len;
    char *text = format_event("validator", 0,
                              json_pack("{s:s,s:b}", "name", n->cfg->validators[v].name,
                                        "online", online),
                              &len);
    broadcast_event(n, text, len);
    free(text);
}

void node__events_evidence(node *n, const cons_vote *a)
{
    if (!n->subscribers) return;
    size_t len;
    char *text = format_event(
        "evidence", 0,
        json_pack("{s:s,s:I,s:i,s:s}", "validator", n->cfg->validators[a->validator].name,
                  "height", (json_int_t)a->height, "round", (int)a->round, "kind",
                  a->type == CONS_PREVOTE ? "double_prevote" : "double_precommit"),
        &len);
    broadcast_event(n, text, len);
    free(text);
}

/* The first height to send: ?from_height=H, else Last-Event-ID + 1, else none. */
static uint64_t resume_height(net_http_req *req)
{
    const char *q = strstr(net_http_query(req), "from_height=");
    if (q) return strtoull(q + 12, NULL, 10);
    const char *last = net_http_header(req, "last-event-id");
    return last ? strtoull(last, NULL, 10) + 1 : 0;
}

/* Sends the stored blocks from `from` on; false if the subscriber was dropped. */
static bool send_backlog(node *n, node__subscriber *s, uint64_t from)
{
    if (from == 0 || from > n->chain.height) return true;
    if (n->chain.height - from >= NODE_EVENTS_BACKLOG_MAX)
        from = n->chain.height - NODE_EVENTS_BACKLOG_MAX + 1;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return true;
    bool alive = true;
    for (uint64_t h = from; h <= n->chain.height && alive; h++) {
        size_t len;
        char *text = block_event(n, t, h, &len);
        if (!text) break;
        alive = net_http_stream_write(s->req, text, len) == 0;
        free(text);
    }
    store_abort(t);
    if (!alive) {
        net_http_stream_end(s->req);
        unlink_subscriber(s);
        free(s);
    }
    return alive;
}

void node__events_subscribe(node *n, net_http_req *req)
{
    if (n->n_subscribers >= NODE_SUBSCRIBERS_MAX) {
        static const char *const retry[] = {"retry-after", "5", NULL};
        node__api_error_headers(req, 503, KN_EBUSY, "too many event subscribers", retry);
        return;
    }
    node__subscriber *s = calloc(1, sizeof *s);
    KN_REQUIRE(s != NULL);
    s->n = n;
    s->req = req;
    s->next = n->subscribers;
    if (n->subscribers) n->subscribers->prev = s;
    n->subscribers = s;
    n->n_subscribers++;
    net_http_stream_start(req, "text/event-stream", NULL, subscriber_gone, s);
    static const char open[] = ": open\n\n";
    if (net_http_stream_write(req, open, sizeof open - 1)) return;
    (void)send_backlog(n, s, resume_height(req));
}
