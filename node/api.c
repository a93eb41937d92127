/* The client API: JSON over HTTP. Routes are matched here; reads open one store
 * read transaction per request; submissions go to submit.c. */
#include "node/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_JSON "application/json"

static node *api_node; /* for response counters; one node per process */

static void count_response(int status)
{
    if (api_node && status >= 100 && status < 600) api_node->health.api_responses[status / 100]++;
}

static void respond_json(net_http_req *req, int status, json_t *body, const char *const *headers)
{
    count_response(status);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    KN_REQUIRE(text != NULL);
    net_http_respond(req, status, API_JSON, text, strlen(text), headers);
    free(text);
}

void node__api_error_headers(net_http_req *req, int status, int err, const char *message,
                             const char *const *headers)
{
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", kn_errname(err), "message",
                          message ? message : kn_strerror(err));
    respond_json(req, status, e, headers);
}

void node__api_error(net_http_req *req, int status, int err, const char *message)
{
    node__api_error_headers(req, status, err, message, NULL);
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];
    KN_REQUIRE(n <= 64);
    kn_hex(hex, p, n);
    return json_string(hex);
}

void node__api_pending(net_http_req *req, const uint8_t id[KN_HASH_BYTES])
{
    json_t *o = json_pack("{s:o,s:s}", "id", hex_json(id, KN_HASH_BYTES), "status", "pending");
    respond_json(req, 202, o, NULL);
}

static json_t *result_json(int32_t result)
{
    if (result == 0) return json_pack("{s:s}", "code", "ok");
    return json_pack("{s:s,s:s}", "code", kn_errname(result), "message", kn_strerror(result));
}

static json_t *record_json(const uint8_t id[KN_HASH_BYTES], const ledger_tx_record *rec)
{
    return json_pack("{s:o,s:s,s:I,s:i,s:o}", "id", hex_json(id, KN_HASH_BYTES), "status",
                     "committed", "height", (json_int_t)rec->height, "index", (int)rec->index,
                     "result", result_json(rec->result));
}

void node__api_committed(net_http_req *req, const uint8_t id[KN_HASH_BYTES],
                         const ledger_tx_record *rec)
{
    respond_json(req, 200, record_json(id, rec), NULL);
}

/* ---------------------------------------------------------------- handlers */

/* True when the query string holds exactly the parameter "name=value". */
static bool query_has(const char *query, const char *param)
{
    size_t n = strlen(param);
    for (const char *p = query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL)
        if (strncmp(p, param, n) == 0 && (p[n] == '\0' || p[n] == '&')) return true;
    return false;
}

/* A decimal height with nothing else around it. */
static bool parse_height(const char *s, uint64_t *out)
{
    if (!*s || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s)) return false;
    *out = strtoull(s, NULL, 10);
    return true;
}

static void post_txs(node *n, net_http_req *req)
{
    size_t len;
    const uint8_t *body = net_http_body(req, &len);
    bool wait = query_has(net_http_query(req), "wait=commit");
    const char *type = net_http_header(req, "content-type");
    if (type && strncasecmp(type, "application/msgpack", 19) == 0) {
        node__submit_client(n, req, body, len, wait);
        return;
    }
    /* JSON form: {"tx": "<hex of the msgpack bytes>"} */
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    const char *hex = json_string_value(json_object_get(root, "tx"));
    size_t hex_len = hex ? strlen(hex) : 0;
    uint8_t *tx = hex_len && hex_len % 2 == 0 ? malloc(hex_len / 2) : NULL;
    if (!tx || kn_unhex(tx, hex_len / 2, hex, hex_len))
        node__api_error(req, 400, KN_EDECODE,
                        "expected application/msgpack, or JSON {\"tx\": \"<hex>\"}");
    else
        node__submit_client(n, req, tx, hex_len / 2, wait);
    free(tx);
    json_decref(root);
}

static void get_tx(node *n, net_http_req *req, store_txn *t, const char *arg)
{
    uint8_t id[KN_HASH_BYTES];
    ledger_tx_record rec;
    if (kn_unhex(id, sizeof id, arg, strlen(arg))) {
        node__api_error(req, 400, KN_EINVAL, "transaction id must be 64 hex digits");
    } else if (ledger_tx_record_get(t, id, &rec) == 0) {
        node__api_committed(req, id, &rec);
    } else if (node__mempool_find(&n->mempool, id)) {
        node__api_pending(req, id);
    } else {
        node__api_error(req, 404, KN_ENOTFOUND, "no such transaction");
    }
}

typedef struct balances_ctx {
    store_txn *t;
    json_t *list;
} balances_ctx;

static void add_balance(void *ctx, const char *code, int64_t balance)
{
    balances_ctx *b = ctx;
    ledger_currency c;
    json_t *o = json_pack("{s:s,s:I}", "currency", code, "balance", (json_int_t)balance);
    if (ledger_currency_get(b->t, code, &c) == 0) json_object_set_new(o, "scale", json_integer(c.scale));
    json_array_append_new(b->list, o);
}

static void get_account(node *n, net_http_req *req, store_txn *t, const char *arg)
{
    uint8_t pk[KN_PK_BYTES];
    if (kn_unhex(pk, sizeof pk, arg, strlen(arg))) {
        node__api_error(req, 400, KN_EINVAL, "account id is a public key: 64 hex digits");
        return;
    }
    balances_ctx ctx = {t, json_array()};
    if (ledger_balances_each(t, pk, add_balance, &ctx)) {
        json_decref(ctx.list);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, json_pack("{s:o,s:o}", "account", hex_json(pk, KN_PK_BYTES), "balances", ctx.list), NULL);
}

static json_t *currency_json(store_txn *t, const ledger_currency *c)
{
    int64_t supply = 0, holders = 0;
    if (ledger_supply_get(t, c->code, &supply)) supply = 0;
    if (ledger_holders_get(t, c->code, &holders)) holders = 0;
    return json_pack("{s:s,s:s,s:s,s:i,s:I,s:o,s:I,s:I}", "code", c->code, "name", c->name,
                     "city", c->city, "scale", (int)c->scale, "max_supply",
                     (json_int_t)c->max_supply, "issuer", hex_json(c->issuer, KN_PK_BYTES),
                     "supply", (json_int_t)supply, "holders", (json_int_t)holders);
}

typedef struct currencies_ctx {
    store_txn *t;
    json_t *list;
} currencies_ctx;

static void add_currency(void *ctx, const ledger_currency *c)
{
    currencies_ctx *cc = ctx;
    json_array_append_new(cc->list, currency_json(cc->t, c));
}

static void get_currencies(node *n, net_http_req *req, store_txn *t, const char *arg)
{
    if (arg) {
        ledger_currency c;
        if (ledger_currency_get(t, arg, &c)) node__api_error(req, 404, KN_ENOCURRENCY, NULL);
        else respond_json(req, 200, currency_json(t, &c), NULL);
        return;
    }
    currencies_ctx ctx = {t, json_array()};
    if (ledger_currencies_each(t, add_currency, &ctx)) {
        json_decref(ctx.list);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, json_pack("{s:o}", "currencies", ctx.list), NULL);
}

static json_t *cert_json(node *n, const uint8_t *p, size_t len)
{
    kn_cur c = kn_cur_make(p, len);
    cons_cert cert;
    if (cons_cert_decode(&c, &cert)) return json_null();
    json_t *sigs = json_array();
    for (uint32_t i = 0; i < cert.n_sigs; i++) {
        uint32_t v = cert.sigs[i].validator;
        json_array_append_new(sigs, json_pack("{s:i,s:s,s:o}", "validator", (int)v, "name",
                                              v < n->cfg->valset.n ? n->cfg->validators[v].name : "",
                                              "signature", hex_json(cert.sigs[i].sig, KN_SIG_BYTES)));
    }
    return json_pack("{s:I,s:i,s:o,s:o}", "height", (json_int_t)cert.height, "round",
                     (int)cert.round, "block_id", hex_json(cert.block_id, KN_HASH_BYTES),
                     "signatures", sigs);
}

static json_t *block_json(node *n, const ledger_block_view *v, json_t *txs, json_t *cert)
{
    const ledger_header *h = &v->hdr;
    const char *proposer = h->proposer < n->cfg->valset.n ? n->cfg->validators[h->proposer].name : "";
    return json_pack("{s:I,s:o,s:I,s:s,s:o,s:o,s:o,s:o,s:o}", "height", (json_int_t)h->height,
                     "id", hex_json(v->block_id, KN_HASH_BYTES), "time_ms",
                     (json_int_t)h->time_ms, "proposer", proposer, "prev_id",
                     hex_json(h->prev_id, KN_HASH_BYTES), "state_hash",
                     hex_json(h->state_hash, KN_HASH_BYTES), "txs", txs, "certificate", cert,
                     "last_certificate", v->last_cert.n ? cert_json(n, v->last_cert.p, v->last_cert.n) : json_null());
}

static void get_block(node *n, net_http_req *req, store_txn *t, const char *arg)
{
    uint64_t height = n->chain.height;
    const uint8_t *p, *cp;
    size_t len, clen;
    ledger_block_view v;
    if (strcmp(arg, "latest") != 0 && !parse_height(arg, &height)) {
        node__api_error(req, 400, KN_EINVAL, "height must be a decimal number or \"latest\"");
        return;
    }
    if (height == 0 || ledger_block_get(t, height, &p, &len) || ledger_cert_get(t, height, &cp, &clen)) {
        node__api_error(req, 404, KN_ENOTFOUND, "no block at that height");
        return;
    }
    if (ledger_block_decode(p, len, &v)) {
        node__api_error(req, 500, KN_ESTORE, "stored block does not decode");
        return;
    }
    json_t *txs = json_array();
    static ledger_tx tx; /* loop thread only */
    for (uint32_t i = 0; i < v.hdr.n_txs; i++)
        if (ledger_tx_decode(v.txs[i].p, v.txs[i].n, &tx) == 0)
            json_array_append_new(txs, hex_json(tx.id, KN_HASH_BYTES));
    respond_json(req, 200, block_json(n, &v, txs, cert_json(n, cp, clen)), NULL);
    ledger_block_view_free(&v);
}

static json_t *validator_json(node *n, uint32_t i, uint64_t now)
{
    const node_validator_info *info = &n->cfg->validators[i];
    const node__peer_state *p = &n->peer[i];
    bool self = i == n->cfg->self;
    json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:b,s:I,s:i,s:I}", "name", info->name, "city",
                          info->city, "public_key", hex_json(n->cfg->valset.v[i].pk, KN_PK_BYTES),
                          "power", (json_int_t)n->cfg->valset.v[i].power, "online",
                          node__peer_online(n, i), "height",
                          (json_int_t)(self ? n->chain.height : p->height), "missed_recent",
                          (int)node__health_missed(n, i), "proposed",
                          (json_int_t)n->health.proposed[i]);
    if (self) json_object_set_new(o, "last_seen_ms_ago", json_integer(0));
    else if (p->last_seen_ms)
        json_object_set_new(o, "last_seen_ms_ago", json_integer((json_int_t)(now - p->last_seen_ms)));
    if (p->vote_height)
        json_object_set_new(o, "last_vote", json_pack("{s:I,s:i}", "height", (json_int_t)p->vote_height,
                                                      "round", (int)p->vote_round));
    return o;
}

static json_t *names_json(node *n, uint64_t mask)
{
    json_t *list = json_array();
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        if (mask >> i & 1) json_array_append_new(list, json_string(n->cfg->validators[i].name));
    return list;
}

static json_t *recent_blocks_json(node *n)
{
    const node__health *hl = &n->health;
    json_t *list = json_array();
    for (uint32_t i = 0; i < hl->n_blocks; i++) {
        const node__recent_block *b =
            &hl->blocks[node__ring_index(i, hl->n_blocks, hl->next_block, NODE_RECENT_BLOCKS)];
        const char *proposer = b->proposer < n->cfg->valset.n ? n->cfg->validators[b->proposer].name : "";
        json_array_append_new(list, json_pack("{s:I,s:I,s:i,s:s}", "height", (json_int_t)b->height,
                                              "time_ms", (json_int_t)b->time_ms, "txs", (int)b->txs,
                                              "proposer", proposer));
    }
    return list;
}

static json_t *evidence_json(node *n)
{
    const node__health *hl = &n->health;
    json_t *list = json_array();
    for (uint32_t i = 0; i < hl->n_evidence; i++) {
        const node__evidence *e =
            &hl->evidence[node__ring_index(i, hl->n_evidence, hl->next_evidence, NODE_EVIDENCE_MAX)];
        json_array_append_new(list, json_pack("{s:s,s:I,s:i,s:s}", "validator",
                                              n->cfg->validators[e->validator].name, "height",
                                              (json_int_t)e->height, "round", (int)e->round, "kind",
                                              e->type == CONS_PREVOTE ? "double_prevote" : "double_precommit"));
    }
    return list;
}

static json_t *peers_json(node *n)
{
    json_t *list = json_array();
    for (uint32_t i = 0; i < n->cfg->valset.n; i++) {
        if (i == n->cfg->self) continue;
        json_t *o = json_pack("{s:s,s:b}", "name", n->cfg->validators[i].name, "up", n->peer[i].up);
        if (n->peer[i].up && n->peer[i].rtt_us)
            json_object_set_new(o, "rtt_ms", json_real(n->peer[i].rtt_us / 1000.0));
        json_array_append_new(list, o);
    }
    return list;
}

static void get_status(node *n, net_http_req *req)
{
    uint64_t now = kn_mono_ms();
    json_t *validators = json_array();
    for (uint32_t i = 0; i < n->cfg->valset.n; i++)
        json_array_append_new(validators, validator_json(n, i, now));
    json_t *consensus = json_pack("{s:I,s:i,s:s,s:o,s:o}", "height", (json_int_t)cons_height(n->cons),
                                  "round", (int)cons_round(n->cons), "step",
                                  cons_step_name(cons_step(n->cons)), "prevotes",
                                  names_json(n, cons_voted_mask(n->cons, CONS_PREVOTE)), "precommits",
                                  names_json(n, cons_voted_mask(n->cons, CONS_PRECOMMIT)));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:I,s:i,s:s,s:o,s:o,s:I,s:{s:i,s:i},s:I}", "chain_id", n->chain_id, "node",
        n->cfg->name, "version", NODE_VERSION, "height", (json_int_t)n->chain.height, "round",
        (int)cons_round(n->cons), "step", cons_step_name(cons_step(n->cons)), "last_block_id",
        hex_json(n->chain.last_block_id, KN_HASH_BYTES), "state_hash",
        hex_json(n->chain.state_hash, KN_HASH_BYTES), "last_block_time_ms",
        (json_int_t)n->chain.last_time_ms, "mempool", "size", (int)n->mempool.count, "max",
        (int)n->mempool.max, "uptime_s", (json_int_t)((kn_now_ms() - n->started_ms) / 1000));
    json_object_set_new(o, "consensus", consensus);
    json_object_set_new(o, "validators", validators);
    json_object_set_new(o, "peers", peers_json(n));
    json_object_set_new(o, "recent_blocks", recent_blocks_json(n));
    json_object_set_new(o, "evidence", evidence_json(n));
    respond_json(req, 200, o, NULL);
}

/* ---------------------------------------------------------------- routing */

typedef void (*read_handler)(node *n, net_http_req *req, store_txn *t, const char *arg);

static void with_read_txn(node *n, net_http_req *req, read_handler h, const char *arg)
{
    store_txn *t;
    if (store_begin(n->store, false, &t)) {
        node__api_error(req, 503, KN_ESTORE, NULL);
        return;
    }
    h(n, req, t, arg);
    store_abort(t);
}

/* The part of path after prefix, or NULL when path does not start with it or
 * the rest is empty or has another '/'. */
static const char *route_arg(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || path[n] == '\0' || strchr(path + n, '/')) return NULL;
    return path + n;
}

static void get_metrics(node *n, net_http_req *req)
{
    kn_buf b = {0};
    node__metrics_text(n, &b);
    count_response(200);
    net_http_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
    kn_buf_free(&b);
}

static void get_dashboard(node *n, net_http_req *req)
{
    count_response(200);
    net_http_respond(req, 200, "text/html; charset=utf-8", node__dashboard_html,
                     node__dashboard_html_len, NULL);
}

/* The route of a path, whatever the method; post_only routes take POST, the
 * others GET. */
static enum node_api_route route_of(const char *path)
{
    if (strcmp(path, "/v1/txs") == 0) return NODE_ROUTE_TXS_POST;
    if (strcmp(path, "/v1/status") == 0) return NODE_ROUTE_STATUS;
    if (route_arg(path, "/v1/txs/")) return NODE_ROUTE_TXS_GET;
    if (route_arg(path, "/v1/accounts/")) return NODE_ROUTE_ACCOUNTS;
    if (strcmp(path, "/v1/currencies") == 0 || route_arg(path, "/v1/currencies/"))
        return NODE_ROUTE_CURRENCIES;
    if (route_arg(path, "/v1/blocks/")) return NODE_ROUTE_BLOCKS;
    if (strcmp(path, "/metrics") == 0) return NODE_ROUTE_METRICS;
    if (strcmp(path, "/v1/events") == 0) return NODE_ROUTE_EVENTS;
    if (strcmp(path, "/dashboard") == 0 || strcmp(path, "/") == 0) return NODE_ROUTE_DASHBOARD;
    return NODE_ROUTE_OTHER;
}

void node__api_handle(void *ctx, net_http_req *req)
{
    node *n = ctx;
    api_node = n;
    const char *path = net_http_path(req);
    const char *method = net_http_method(req);
    enum node_api_route route = route_of(path);
    n->health.api_requests[route]++;
    const char *wanted = route == NODE_ROUTE_TXS_POST ? "POST" : "GET";
    if (route == NODE_ROUTE_OTHER) {
        node__api_error(req, 404, KN_ENOTFOUND, "no such route");
        return;
    }
    if (strcmp(method, wanted) != 0) {
        static const char *const allow_get[] = {"allow", "GET", NULL};
        static const char *const allow_post[] = {"allow", "POST", NULL};
        node__api_error_headers(req, 405, KN_EMETHOD, NULL,
                                route == NODE_ROUTE_TXS_POST ? allow_post : allow_get);
        return;
    }
    switch (route) {
    case NODE_ROUTE_TXS_POST: post_txs(n, req); break;
    case NODE_ROUTE_STATUS: get_status(n, req); break;
    case NODE_ROUTE_TXS_GET: with_read_txn(n, req, get_tx, route_arg(path, "/v1/txs/")); break;
    case NODE_ROUTE_ACCOUNTS:
        with_read_txn(n, req, get_account, route_arg(path, "/v1/accounts/"));
        break;
    case NODE_ROUTE_CURRENCIES:
        with_read_txn(n, req, get_currencies, route_arg(path, "/v1/currencies/"));
        break;
    case NODE_ROUTE_BLOCKS: with_read_txn(n, req, get_block, route_arg(path, "/v1/blocks/")); break;
    case NODE_ROUTE_METRICS: get_metrics(n, req); break;
    case NODE_ROUTE_DASHBOARD: get_dashboard(n, req); break;
    case NODE_ROUTE_EVENTS: node__events_subscribe(n, req); break;
    default: KN_REQUIRE(!"route without a handler");
    }
}
