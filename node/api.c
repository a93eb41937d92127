/* The client API: JSON over HTTP. Routes are matched here; reads open one store
 * read transaction per request; submissions go to submit.c. */
#include "node/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define API_JSON "application/json"

static void respond_json(net_http_req *req, int status, json_t *body, const char *const *headers)
{
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

static void post_txs(node *n, net_http_req *req)
{
    size_t len;
    const uint8_t *body = net_http_body(req, &len);
    bool wait = strstr(net_http_query(req), "wait=commit") != NULL;
    const char *type = net_http_header(req, "content-type");
    if (type && strncmp(type, "application/msgpack", 19) == 0) {
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
    int64_t supply = 0;
    if (ledger_supply_get(t, c->code, &supply)) supply = 0;
    return json_pack("{s:s,s:s,s:s,s:i,s:I,s:o,s:I}", "code", c->code, "name", c->name, "city",
                     c->city, "scale", (int)c->scale, "max_supply", (json_int_t)c->max_supply,
                     "issuer", hex_json(c->issuer, KN_PK_BYTES), "supply", (json_int_t)supply);
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
    char *end;
    uint64_t height = strcmp(arg, "latest") == 0 ? n->chain.height : strtoull(arg, &end, 10);
    const uint8_t *p, *cp;
    size_t len, clen;
    ledger_block_view v;
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

static json_t *validators_json(node *n)
{
    json_t *list = json_array();
    for (uint32_t i = 0; i < n->cfg->valset.n; i++) {
        const node_validator_info *info = &n->cfg->validators[i];
        json_array_append_new(list, json_pack("{s:s,s:s,s:o,s:I,s:b}", "name", info->name, "city",
                                              info->city, "public_key",
                                              hex_json(n->cfg->valset.v[i].pk, KN_PK_BYTES),
                                              "power", (json_int_t)n->cfg->valset.v[i].power,
                                              "online", node__peer_online(n, i)));
    }
    return list;
}

static void get_status(node *n, net_http_req *req)
{
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:i,s:s,s:o,s:o,s:I,s:{s:i,s:i},s:o,s:I}", "chain_id", n->chain_id,
        "node", n->cfg->name, "version", NODE_VERSION, "height", (json_int_t)n->chain.height,
        "consensus_height", (json_int_t)cons_height(n->cons), "round", (int)cons_round(n->cons),
        "step", cons_step_name(cons_step(n->cons)), "last_block_id",
        hex_json(n->chain.last_block_id, KN_HASH_BYTES), "state_hash",
        hex_json(n->chain.state_hash, KN_HASH_BYTES), "last_block_time_ms",
        (json_int_t)n->chain.last_time_ms, "mempool", "size", (int)n->mempool.count, "max",
        (int)n->mempool.max, "validators", validators_json(n), "uptime_s",
        (json_int_t)((kn_now_ms() - n->started_ms) / 1000));
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

void node__api_handle(void *ctx, net_http_req *req)
{
    node *n = ctx;
    const char *path = net_http_path(req);
    bool get = strcmp(net_http_method(req), "GET") == 0;
    bool post = strcmp(net_http_method(req), "POST") == 0;
    const char *arg;
    if (strcmp(path, "/v1/txs") == 0 && post) post_txs(n, req);
    else if (get && strcmp(path, "/v1/status") == 0) get_status(n, req);
    else if (get && (arg = route_arg(path, "/v1/txs/"))) with_read_txn(n, req, get_tx, arg);
    else if (get && (arg = route_arg(path, "/v1/accounts/"))) with_read_txn(n, req, get_account, arg);
    else if (get && strcmp(path, "/v1/currencies") == 0) with_read_txn(n, req, get_currencies, NULL);
    else if (get && (arg = route_arg(path, "/v1/currencies/"))) with_read_txn(n, req, get_currencies, arg);
    else if (get && (arg = route_arg(path, "/v1/blocks/"))) with_read_txn(n, req, get_block, arg);
    else if (!get && !post) node__api_error(req, 405, KN_EINVAL, "method not allowed");
    else node__api_error(req, 404, KN_ENOTFOUND, "no such route");
}
