/* Submissions: transactions from clients and from peers are decoded on the loop
 * (cheap, and it yields the id for de-duplication), their signatures are checked
 * in libuv's thread pool in batches, then they are checked against the
 * committed state and admitted to the mempool. Clients that asked to wait for
 * the commit stay attached to their mempool entry until it commits, expires,
 * or their deadline passes. */
#include "node/internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct tx_batch tx_batch;

typedef struct verify_item {
    uint8_t *bytes;       /* owned, or borrowed from batch */
    uint32_t len;
    node__client *client; /* NULL for a batch's or a peer's transaction */
    tx_batch *batch;      /* or NULL: the batch whose result index this is */
    uint32_t index;
    bool local;           /* came from a client: kept after the client is freed */
    bool admitted;        /* this item put the transaction into the mempool */
    int rc;               /* the verification's result, then the admission's */
    node__mp_entry *entry; /* where it is pending, when rc is 0 */
    ledger_tx tx;          /* last: a reused item clears only what is before */
} verify_item;

typedef struct verify_job {
    uv_work_t work;
    node *n;
    uint32_t count;
    verify_item items[NODE_VERIFY_BATCH_MAX];
    struct verify_job *next;
} verify_job;

/* Finished jobs kept for the next ones: a job is megabytes, and memory freshly
 * mapped costs a page fault per page, more than the work on it. */
#define SPARE_JOBS_MAX NODE_VERIFY_JOBS_MAX

typedef struct node__verify_queue {
    verify_job *head, *tail; /* jobs waiting for a worker; the tail is filling */
    uint32_t items;
    verify_job *spare;
    uint32_t n_spare;
} node__verify_queue;

/* A POST /v1/txs/batch until every transaction of it is settled. One
 * allocation holds the results and a copy of the body, which the queued items
 * borrow instead of copying their bytes one by one; it is freed with the last
 * item settled, whether the client is still there or not. */
struct tx_batch {
    net_http_req *req; /* NULL once the client went away */
    uint32_t count;
    uint32_t unsettled; /* items in the verification queue or a job */
    uint8_t *body;      /* the copy, after the results */
    node__batch_result results[];
};

/* A batch always fits an empty verification queue. */
_Static_assert(NODE_BATCH_TXS_MAX <= NODE_VERIFY_QUEUE_MAX, "batch over the verification queue");

bool node__verifying(const node *n)
{
    return n->jobs_in_flight > 0 || n->vq->items > 0;
}

void node__submit_init(node *n)
{
    n->vq = calloc(1, sizeof *n->vq);
    KN_REQUIRE(n->vq != NULL);
}

/* ---------------------------------------------------------------- clients */

static void wait_unlink(node *n, node__client *cl)
{
    if (cl->wait_prev) cl->wait_prev->wait_next = cl->wait_next;
    else if (n->wait_head == cl) n->wait_head = cl->wait_next;
    if (cl->wait_next) cl->wait_next->wait_prev = cl->wait_prev;
    else if (n->wait_tail == cl) n->wait_tail = cl->wait_prev;
    cl->wait_prev = cl->wait_next = NULL;
}

static void entry_unlink(node__client *cl)
{
    if (!cl->entry) return;
    node__client **link = &cl->entry->clients;
    while (*link && *link != cl) link = &(*link)->entry_next;
    if (*link) *link = cl->entry_next;
    cl->entry = NULL;
    cl->entry_next = NULL;
}

/* The client is done with: answered or gone, and no job holds it. */
static void client_free(node__client *cl)
{
    entry_unlink(cl);
    wait_unlink(cl->n, cl);
    free(cl);
}

static void client_gone(void *arg)
{
    node__client *cl = arg;
    cl->req = NULL;
    if (!cl->in_job) client_free(cl);
}

static void client_attach(node *n, node__client *cl, node__mp_entry *e)
{
    cl->entry = e;
    cl->entry_next = e->clients;
    e->clients = cl;
    cl->deadline_ms = kn_mono_ms() + n->cfg->wait_commit_ms;
    cl->wait_prev = n->wait_tail;
    if (n->wait_tail) n->wait_tail->wait_next = cl;
    else n->wait_head = cl;
    n->wait_tail = cl;
}

static void client_error(node__client *cl, int status, int err)
{
    if (cl->req) node__api_error(cl->req, status, err, NULL);
    client_free(cl);
}

/* Answers a client whose transaction is now known to be pending. */
static void client_pending(node *n, node__client *cl, node__mp_entry *e)
{
    if (!cl->req) {
        client_free(cl);
        return;
    }
    if (cl->wait_commit) {
        client_attach(n, cl, e);
        return;
    }
    node__api_pending(cl->req, e->id);
    client_free(cl);
}

void node__clients_tick(node *n, uint64_t now_ms)
{
    while (n->wait_head && n->wait_head->deadline_ms <= now_ms) {
        node__client *cl = n->wait_head;
        if (cl->req)
            node__api_error(cl->req, 504, KN_ETIMEOUT,
                            "not committed in time; the transaction is still pending");
        client_free(cl);
    }
}

/* ---------------------------------------------------------------- verification */

static void verify_work(uv_work_t *w)
{
    verify_job *job = w->data;
    const char *chain_id = job->n->chain_id;
    for (uint32_t i = 0; i < job->count; i++)
        job->items[i].rc = ledger_tx_verify(&job->items[i].tx, chain_id);
}

static void verify_done(uv_work_t *w, int status);

static void dispatch_jobs(node *n)
{
    node__verify_queue *q = n->vq;
    while (q->head && n->jobs_in_flight < NODE_VERIFY_JOBS_MAX) {
        verify_job *job = q->head;
        q->head = job->next;
        if (!q->head) q->tail = NULL;
        q->items -= job->count;
        job->work.data = job;
        n->jobs_in_flight++;
        KN_REQUIRE(uv_queue_work(&n->loop, &job->work, verify_work, verify_done) == 0);
    }
}

static void job_done(node__verify_queue *q, verify_job *job)
{
    if (q->n_spare >= SPARE_JOBS_MAX) {
        free(job);
        return;
    }
    job->next = q->spare;
    q->spare = job;
    q->n_spare++;
}

/* Takes a place in the verification queue for a decoded transaction; NULL
 * when the queue is full. The caller sets where its bytes are and who waits. */
static verify_item *enqueue_item(node *n, const ledger_tx *tx)
{
    node__verify_queue *q = n->vq;
    if (q->items >= NODE_VERIFY_QUEUE_MAX) return NULL;
    if (!q->tail || q->tail->count == NODE_VERIFY_BATCH_MAX) {
        verify_job *job = q->spare;
        if (job) {
            q->spare = job->next;
            q->n_spare--;
        } else {
            job = malloc(sizeof *job);
            KN_REQUIRE(job != NULL);
        }
        job->n = n;
        job->count = 0;
        job->next = NULL;
        if (q->tail) q->tail->next = job;
        else q->head = job;
        q->tail = job;
    }
    verify_item *it = &q->tail->items[q->tail->count++];
    memset(it, 0, offsetof(verify_item, tx));
    it->tx = *tx;
    q->items++;
    return it;
}

/* Queues a decoded transaction with a copy of its bytes; false when the queue
 * is full. */
static bool enqueue(node *n, const ledger_tx *tx, const uint8_t *bytes, size_t len,
                    node__client *cl)
{
    verify_item *it = enqueue_item(n, tx);
    if (!it) return false;
    it->bytes = malloc(len);
    KN_REQUIRE(it->bytes != NULL);
    memcpy(it->bytes, bytes, len);
    it->len = (uint32_t)len;
    it->client = cl;
    it->local = cl != NULL;
    if (cl) cl->in_job = true;
    return true;
}

/* Runs a verified transaction through the ledger rules against the committed
 * state (read, nothing written) and admits it. */
static int admit(node *n, store_txn *committed, verify_item *it, node__mp_entry **out)
{
    *out = node__mempool_find(&n->mempool, it->tx.id);
    if (*out) return 0;
    int rc = committed ? ledger_tx_check(committed, &it->tx, n->chain.height + 1,
                                         n->chain.last_time_ms)
                       : KN_ESTORE;
    if (rc) return rc;
    *out = node__mempool_add(&n->mempool, it->tx.id, it->bytes, it->len, it->tx.expiry_height);
    if (!*out) return KN_EFULL;
    (*out)->admitted_ms = kn_mono_ms();
    (*out)->local = it->local;
    it->admitted = true;
    return 0;
}

/* 503 with Retry-After: nothing was accepted, the same bytes may come again. */
static void respond_busy(net_http_req *req, int err)
{
    static const char *const retry[] = {"retry-after", "1", NULL};
    node__api_error_headers(req, 503, err, NULL, retry);
}

static int status_for(int err)
{
    if (err == KN_EFULL || err == KN_ESTORE) return 503;
    return ledger_rule_error(err) ? 422 : 400;
}

static void batch_settle(tx_batch *b, uint32_t i, int rc);

static void answer(node *n, verify_item *it)
{
    if (it->batch) {
        batch_settle(it->batch, it->index, it->rc);
        return;
    }
    int rc = it->rc;
    node__mp_entry *e = it->entry;
    node__client *cl = it->client;
    cl->in_job = false;
    if (rc == KN_EFULL || rc == KN_ESTORE) {
        if (cl->req) respond_busy(cl->req, rc);
        client_free(cl);
    } else if (rc) {
        client_error(cl, status_for(rc), rc);
    } else {
        client_pending(n, cl, e);
    }
}

/* One TXS message with the clients' transactions this job admitted (a peer's
 * were gossiped by the node that took them from a client). */
static void gossip_admitted(node *n, const verify_job *job, uint32_t n_gossip)
{
    if (!n_gossip) return;
    kn_buf gossip = {0};
    kn_w_array(&gossip, 2);
    kn_w_uint(&gossip, NODE_MSG_TXS);
    kn_w_array(&gossip, n_gossip);
    for (uint32_t i = 0; i < job->count; i++) {
        const verify_item *it = &job->items[i];
        if (it->local && it->admitted) kn_w_bin(&gossip, it->bytes, it->len);
    }
    node__broadcast(n, &gossip);
    kn_buf_free(&gossip);
}

static void verify_done(uv_work_t *w, int status)
{
    verify_job *job = w->data;
    node *n = job->n;
    n->jobs_in_flight--;
    store_txn *committed = NULL;
    if (store_begin(n->store, false, &committed)) committed = NULL;
    uint32_t n_gossip = 0;
    for (uint32_t i = 0; i < job->count; i++) {
        verify_item *it = &job->items[i];
        if (it->rc == 0) it->rc = admit(n, committed, it, &it->entry);
        if (it->rc) n->health.rejected[node__err_slot(it->rc)]++;
        if (it->local && it->admitted) n_gossip++;
    }
    if (committed) store_abort(committed);
    gossip_admitted(n, job, n_gossip);
    /* Answered after the gossip: the last item of a batch frees the bytes
     * that its items borrow. answer frees the client. */
    for (uint32_t i = 0; i < job->count; i++) {
        verify_item *it = &job->items[i];
        if (!it->batch) free(it->bytes);
        if (it->local) answer(n, it);
    }
    job_done(n->vq, job);
    dispatch_jobs(n);
    node__maybe_build(n);
}

/* ---------------------------------------------------------------- entry points */

/* Known already? Answers the client from the mempool or the committed record. */
static bool answer_known(node *n, node__client *cl, const uint8_t id[KN_HASH_BYTES])
{
    node__mp_entry *e = node__mempool_find(&n->mempool, id);
    if (e) {
        client_pending(n, cl, e);
        return true;
    }
    store_txn *t;
    if (store_begin(n->store, false, &t)) return false;
    ledger_tx_record rec;
    bool known = ledger_tx_record_get(t, id, &rec) == 0;
    store_abort(t);
    if (known) {
        node__api_committed(cl->req, id, &rec);
        client_free(cl);
    }
    return known;
}

void node__submit_client(node *n, net_http_req *req, const uint8_t *bytes, size_t len,
                         bool wait_commit)
{
    static ledger_tx tx; /* loop thread only; too large for the stack of a callback */
    int rc = ledger_tx_decode(bytes, len, &tx);
    if (rc) {
        node__api_error(req, 400, rc, NULL);
        return;
    }
    if (strcmp(tx.chain_id, n->chain_id) != 0) {
        node__api_error(req, 400, KN_EWRONGCHAIN, NULL);
        return;
    }
    node__client *cl = calloc(1, sizeof *cl);
    KN_REQUIRE(cl != NULL);
    cl->n = n;
    cl->req = req;
    cl->wait_commit = wait_commit;
    net_http_defer(req, client_gone, cl);
    if (answer_known(n, cl, tx.id)) return;
    if (n->mempool.count >= n->mempool.max || !enqueue(n, &tx, bytes, len, cl)) {
        respond_busy(req, KN_EFULL);
        client_free(cl);
        return;
    }
    dispatch_jobs(n);
}

void node__on_txs_msg(node *n, uint32_t peer, kn_cur *c)
{
    static ledger_tx tx;
    uint32_t count;
    if (kn_r_array(c, &count) || count > NODE_GOSSIP_BATCH_MAX) return;
    store_txn *t;
    if (store_begin(n->store, false, &t)) return;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p;
        size_t len;
        ledger_tx_record rec;
        if (kn_r_bin(c, &p, &len) || ledger_tx_decode(p, len, &tx)) break;
        if (node__mempool_find(&n->mempool, tx.id) || ledger_tx_record_get(t, tx.id, &rec) == 0)
            continue;
        if (!enqueue(n, &tx, p, len, NULL)) break;
    }
    store_abort(t);
    dispatch_jobs(n);
}

/* ---------------------------------------------------------------- batches */

int node__batch_check(const uint8_t *body, size_t len, uint32_t txs_max, uint32_t *count)
{
    kn_cur c = kn_cur_make(body, len);
    uint32_t n;
    if (kn_r_array(&c, &n)) return KN_EDECODE;
    if (n > txs_max) return KN_ETOOBIG;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        size_t tx_len;
        if (kn_r_bin(&c, &p, &tx_len)) return KN_EDECODE;
    }
    if (c.left != 0) return KN_EDECODE;
    *count = n;
    return 0;
}

static void batch_finish(tx_batch *b)
{
    if (b->req) node__api_batch(b->req, b->results, b->count);
    free(b);
}

static void batch_gone(void *arg)
{
    tx_batch *b = arg;
    KN_REQUIRE(b->unsettled > 0); /* a settled batch was answered and freed */
    b->req = NULL;
}

static void batch_settle(tx_batch *b, uint32_t i, int rc)
{
    KN_REQUIRE(i < b->count && b->unsettled > 0);
    b->results[i].err = rc;
    if (--b->unsettled == 0) batch_finish(b);
}

/* One transaction of a batch, as node__submit_client takes one: a refusal or
 * a known answer goes into its result at once; otherwise it is queued with its
 * bytes borrowed from the batch and settles when its job is done. */
static void batch_take(node *n, store_txn *t, tx_batch *b, uint32_t i, const uint8_t *bytes,
                       size_t len)
{
    static ledger_tx tx; /* loop thread only; too large for the stack of a callback */
    node__batch_result *r = &b->results[i];
    r->err = ledger_tx_decode(bytes, len, &tx);
    if (r->err) return;
    memcpy(r->id, tx.id, KN_HASH_BYTES);
    r->has_id = true;
    if (strcmp(tx.chain_id, n->chain_id) != 0) {
        r->err = KN_EWRONGCHAIN;
        return;
    }
    if (node__mempool_find(&n->mempool, tx.id)) return; /* pending */
    if (t && ledger_tx_record_get(t, tx.id, &r->rec) == 0) {
        r->committed = true;
        return;
    }
    verify_item *it = n->mempool.count < n->mempool.max ? enqueue_item(n, &tx) : NULL;
    if (!it) {
        r->err = KN_EFULL;
        return;
    }
    it->bytes = (uint8_t *)bytes; /* the batch's own copy */
    it->len = (uint32_t)len;
    it->batch = b;
    it->index = i;
    it->local = true;
    b->unsettled++;
}

void node__submit_batch(node *n, net_http_req *req, const uint8_t *body, size_t len,
                        uint32_t count)
{
    tx_batch *b = calloc(1, sizeof *b + (size_t)count * sizeof b->results[0] + len);
    KN_REQUIRE(b != NULL);
    b->req = req;
    b->count = count;
    b->body = (uint8_t *)&b->results[count];
    memcpy(b->body, body, len);
    /* One read transaction for every lookup of a committed id in the batch. */
    store_txn *t = NULL;
    if (store_begin(n->store, false, &t)) t = NULL;
    kn_cur c = kn_cur_make(b->body, len);
    uint32_t n_txs;
    KN_REQUIRE(kn_r_array(&c, &n_txs) == 0 && n_txs == count); /* node__batch_check passed */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p;
        size_t tx_len;
        KN_REQUIRE(kn_r_bin(&c, &p, &tx_len) == 0);
        batch_take(n, t, b, i, p, tx_len);
    }
    if (t) store_abort(t);
    if (b->unsettled == 0) {
        batch_finish(b);
        return;
    }
    net_http_defer(req, batch_gone, b);
    dispatch_jobs(n);
}

/* ---------------------------------------------------------------- own transactions */

static void gossip_one(node *n, const kn_buf *bytes)
{
    kn_buf msg = {0};
    kn_w_array(&msg, 2);
    kn_w_uint(&msg, NODE_MSG_TXS);
    kn_w_array(&msg, 1);
    kn_w_bin(&msg, bytes->data, bytes->len);
    node__broadcast(n, &msg);
    kn_buf_free(&msg);
}

/* Rare and small (evidence has two votes to verify), so checked here on the
 * loop instead of going through the verification queue, which answers a
 * client for every local transaction. */
int node__submit_own(node *n, const ledger_tx *tx)
{
    if (node__mempool_find(&n->mempool, tx->id)) return 0;
    int rc = ledger_tx_verify(tx, n->chain_id);
    store_txn *t = NULL;
    if (!rc) rc = store_begin(n->store, false, &t);
    if (rc) return rc;
    rc = ledger_tx_check(t, tx, n->chain.height + 1, n->chain.last_time_ms);
    store_abort(t);
    if (rc) {
        n->health.rejected[node__err_slot(rc)]++;
        return rc;
    }
    kn_buf bytes = {0};
    ledger_tx_encode(tx, &bytes);
    node__mp_entry *e =
        node__mempool_add(&n->mempool, tx->id, bytes.data, bytes.len, tx->expiry_height);
    if (e) {
        e->admitted_ms = kn_mono_ms();
        gossip_one(n, &bytes);
    }
    kn_buf_free(&bytes);
    if (!e) return KN_EFULL;
    node__maybe_build(n);
    return 0;
}

/* ---------------------------------------------------------------- after a commit */

static void answer_entry(node *n, store_txn *t, node__mp_entry *e)
{
    ledger_tx_record rec;
    bool committed = t && ledger_tx_record_get(t, e->id, &rec) == 0;
    if (committed && e->local)
        node__hist_observe(&n->health.commit_latency, kn_mono_ms() - e->admitted_ms);
    while (e->clients) {
        node__client *cl = e->clients;
        if (cl->req) {
            if (committed) node__api_committed(cl->req, e->id, &rec);
            else node__api_error(cl->req, 422, KN_EEXPIRED, NULL);
        }
        client_free(cl);
    }
    node__mempool_remove(&n->mempool, e);
}

void node__mempool_after_commit(node *n, const ledger_block_view *v,
                                const uint8_t (*ids)[KN_HASH_BYTES])
{
    store_txn *t = NULL;
    if (store_begin(n->store, false, &t)) t = NULL;
    for (uint32_t i = 0; i < v->hdr.n_txs; i++) {
        node__mp_entry *e = node__mempool_find(&n->mempool, ids[i]);
        if (e) answer_entry(n, t, e);
    }
    /* A transaction whose expiry height has passed can never commit now. */
    for (node__mp_entry *e = n->mempool.head, *next; e; e = next) {
        next = e->next;
        if (e->expiry_height <= n->chain.height) answer_entry(n, NULL, e);
    }
    if (t) store_abort(t);
}

void node__submit_free(node *n)
{
    /* Jobs in flight are finished by the loop before it closes; queued ones are
     * dropped with their clients (who are gone with the server). */
    node__verify_queue *q = n->vq;
    while (q && q->head) {
        verify_job *job = q->head;
        q->head = job->next;
        for (uint32_t i = 0; i < job->count; i++) {
            verify_item *it = &job->items[i];
            if (it->batch) {
                batch_settle(it->batch, it->index, KN_ECLOSED);
                continue;
            }
            free(it->bytes);
            if (it->client) free(it->client);
        }
        free(job);
    }
    while (q && q->spare) {
        verify_job *job = q->spare;
        q->spare = job->next;
        free(job);
    }
    while (n->wait_head) client_free(n->wait_head);
    free(q);
    n->vq = NULL;
}
