/* The client API: JSON over HTTP. Routes are matched here; reads open one store
 * read transaction per request, so each answer is one consistent view of the
 * ledger; submissions go to submit.c. docs/API.md is the contract. */
#include "node/internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
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

static json_t *batch_result_json(uint32_t index, const node__batch_result *r)
{
    if (r->err == 0 && r->committed) return record_json(r->id, &r->rec);
    if (r->err == 0)
        return json_pack("{s:o,s:s}", "id", hex_json(r->id, KN_HASH_BYTES), "status", "pending");
    json_t *o = json_pack("{s:I}", "index", (json_int_t)index);
    if (r->has_id) json_object_set_new(o, "id", hex_json(r->id, KN_HASH_BYTES));
    json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", kn_errname(r->err), "message",
                                              kn_strerror(r->err)));
    return o;
}

void node__api_batch(net_http_req *req, const node__batch_result *results, uint32_t count)
{
    json_t *list = json_array();
    uint32_t refused = 0;
    for (uint32_t i = 0; i < count; i++) {
        refused += results[i].err != 0;
        json_array_append_new(list, batch_result_json(i, &results[i]));
    }
    respond_json(req, 200,
                 json_pack("{s:I,s:I,s:o}", "accepted", (json_int_t)(count - refused), "refused",
                           (json_int_t)refused, "results", list),
                 NULL);
}

/* ---------------------------------------------------------------- handlers */

/* Answers 200 with body, or 500 storage_error (dropping body) when a read
 * behind it failed. */
static void respond_read(net_http_req *req, int rc, json_t *body)
{
    if (rc) {
        json_decref(body);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, body, NULL);
}

/* Answers a read that failed: status with err when that is what it failed
 * with (the request's doing), 500 storage_error for anything else. */
static void read_failed(net_http_req *req, int rc, int err, int status)
{
    if (rc == err)
        node__api_error(req, status, err, NULL);
    else
        node__api_error(req, 500, KN_ESTORE, NULL);
}

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

/* One "name=value" of a query string. */
typedef struct api_param {
    const char *name, *value; /* not NUL-terminated */
    size_t name_len, value_len;
    bool has_value; /* there was an '=' */
} api_param;

/* Takes the next parameter off *q; false at the end of the query. */
static bool next_param(const char **q, api_param *out)
{
    const char *p = *q;
    if (!*p) return false;
    size_t len = strcspn(p, "&");
    const char *eq = memchr(p, '=', len);
    out->name = p;
    out->name_len = eq ? (size_t)(eq - p) : len;
    out->value = eq ? eq + 1 : p + len;
    out->value_len = (size_t)(p + len - out->value);
    out->has_value = eq != NULL;
    *q = p + len + (p[len] == '&');
    return true;
}

/* The index of the parameter's name in names (NULL-ended), each allowed once
 * (seen keeps the mask); -1 for another name, a repeat, or no value. */
static int param_which(const api_param *prm, const char *const *names, uint32_t *seen)
{
    for (int i = 0; names[i] && prm->has_value; i++) {
        if (strlen(names[i]) != prm->name_len || strncmp(names[i], prm->name, prm->name_len))
            continue;
        if (*seen & (1u << i)) return -1;
        *seen |= 1u << i;
        return i;
    }
    return -1;
}

static bool value_is(const api_param *prm, const char *s)
{
    return strlen(s) == prm->value_len && strncmp(s, prm->value, prm->value_len) == 0;
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

/* A msgpack array of bin, each one transaction's bytes: the whole body is
 * checked before any of it is admitted. */
static void post_txs_batch(node *n, net_http_req *req)
{
    size_t len;
    const uint8_t *body = net_http_body(req, &len);
    uint32_t count = 0;
    char message[96];
    if (len > n->cfg->api_batch_body_max_bytes) {
        snprintf(message, sizeof message, "the body is over api_batch_body_max_bytes (%zu)",
                 n->cfg->api_batch_body_max_bytes);
        node__api_error(req, 413, KN_ETOOBIG, message);
        return;
    }
    int rc = node__batch_check(body, len, NODE_BATCH_TXS_MAX, &count);
    if (rc == KN_ETOOBIG) {
        snprintf(message, sizeof message, "a batch holds at most %d transactions",
                 NODE_BATCH_TXS_MAX);
        node__api_error(req, 413, KN_ETOOBIG, message);
    } else if (rc) {
        node__api_error(req, 400, KN_EDECODE,
                        "expected a msgpack array of bin, one transaction each");
    } else {
        node__submit_batch(n, req, body, len, count);
    }
}

/* ---------------------------------------------------------------- paths */

/* A path after "/v1/", split at '/'. Segments are short: the longest is a hex
 * key or transaction id; a longer one matches no route. */
#define API_SEGS_MAX 4
#define API_SEG_BYTES_MAX 80
/* Lists that grow with the ledger (programmes, role holders) are cut here. */
#define API_LIST_MAX 1000
#define API_HISTORY_LIMIT_DEFAULT 50

typedef struct api_path {
    uint32_t n;
    char seg[API_SEGS_MAX][API_SEG_BYTES_MAX + 1];
} api_path;

/* False for a path that is not "/v1/" and 1..API_SEGS_MAX non-empty segments. */
static bool split_path(const char *path, api_path *out)
{
    out->n = 0;
    if (strncmp(path, "/v1/", 4) != 0) return false;
    for (const char *p = path + 4;; p++) {
        size_t len = strcspn(p, "/");
        if (len == 0 || len > API_SEG_BYTES_MAX || out->n == API_SEGS_MAX) return false;
        memcpy(out->seg[out->n], p, len);
        out->seg[out->n++][len] = '\0';
        p += len;
        if (*p == '\0') return true;
    }
}

static bool seg_is(const api_path *p, uint32_t i, const char *s)
{
    return i < p->n && strcmp(p->seg[i], s) == 0;
}

static bool parse_pk(const char *hex, uint8_t pk[KN_PK_BYTES])
{
    return kn_unhex(pk, KN_PK_BYTES, hex, strlen(hex)) == 0;
}

/* ---------------------------------------------------------------- names */

static json_t *flag_names_json(uint32_t flags)
{
    json_t *list = json_array();
    for (uint32_t bit = 1; bit & LEDGER_CUR_FLAGS_ALL; bit <<= 1)
        if (flags & bit) json_array_append_new(list, json_string(ledger_flag_name(bit)));
    return list;
}

static json_t *account_flags_json(uint8_t flags)
{
    json_t *list = json_array();
    if (flags & LEDGER_ACCF_AUTHORISED) json_array_append_new(list, json_string("authorised"));
    if (flags & LEDGER_ACCF_FROZEN) json_array_append_new(list, json_string("frozen"));
    if (flags & LEDGER_ACCF_CLOSED) json_array_append_new(list, json_string("closed"));
    return list;
}

static json_t *role_names_json(uint32_t mask)
{
    json_t *list = json_array();
    for (uint32_t role = 1; role <= LEDGER_ROLE_MAX; role++)
        if (mask & (1u << role)) json_array_append_new(list, json_string(ledger_role_name(role)));
    return list;
}

/* ---------------------------------------------------------------- scales */

/* The scale of a currency for display next to its amounts: views list many
 * amounts of few currencies, so the last one looked up is kept. */
typedef struct scale_cache {
    store_txn *t;
    char code[LEDGER_CODE_MAX + 1];
    int scale; /* -1: unknown */
} scale_cache;

static int scale_of(scale_cache *sc, const char *code)
{
    ledger_currency c;
    if (strcmp(sc->code, code) == 0) return sc->scale;
    snprintf(sc->code, sizeof sc->code, "%s", code);
    sc->scale = ledger_currency_get(sc->t, code, &c) == 0 ? c.scale : -1;
    return sc->scale;
}

static void set_scale(json_t *o, scale_cache *sc, const char *code)
{
    int scale = scale_of(sc, code);
    json_object_set_new(o, "scale", scale >= 0 ? json_integer(scale) : json_null());
}

/* ---------------------------------------------------------------- accounts */

typedef struct account_ctx {
    scale_cache sc;
    json_t *accounts, *balances, *roles;
} account_ctx;

static void add_account(void *ctx, const ledger_account *a)
{
    account_ctx *ac = ctx;
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:I}", "currency", a->currency, "sub", a->sub, "kind",
                          ledger_account_kind_name(a->kind), "flags", account_flags_json(a->flags),
                          "balance", (json_int_t)a->balance);
    /* The issuing account has no floor: INT64_MIN stands for none. */
    json_object_set_new(o, "floor", a->floor == INT64_MIN ? json_null() : json_integer(a->floor));
    set_scale(o, &ac->sc, a->currency);
    json_array_append_new(ac->accounts, o);
    /* The short form that clients summing balances per currency read. */
    json_t *b = json_pack("{s:s,s:s,s:I}", "currency", a->currency, "sub", a->sub, "balance",
                          (json_int_t)a->balance);
    set_scale(b, &ac->sc, a->currency);
    json_array_append_new(ac->balances, b);
}

static void add_roles(void *ctx, const ledger_roles *r)
{
    account_ctx *ac = ctx;
    json_array_append_new(ac->roles,
                          json_pack("{s:s,s:o,s:s,s:I}", "currency", r->currency, "roles",
                                    role_names_json(r->mask), "category", r->category,
                                    "credit_limit", (json_int_t)r->credit_limit));
}

static void get_account(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    uint8_t pk[KN_PK_BYTES];
    if (!parse_pk(p->seg[1], pk)) {
        node__api_error(req, 400, KN_EINVAL, "account id is a public key: 64 hex digits");
        return;
    }
    account_ctx ctx = {{t, "", -1}, json_array(), json_array(), json_array()};
    json_t *o = json_pack("{s:o,s:o,s:o,s:o}", "account", hex_json(pk, KN_PK_BYTES), "balances",
                          ctx.balances, "accounts", ctx.accounts, "roles", ctx.roles);
    if (ledger_accounts_each(t, pk, add_account, &ctx) ||
        ledger_roles_each(t, pk, add_roles, &ctx)) {
        json_decref(o);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, o, NULL);
}

/* ---------------------------------------------------------------- history */

/* ?cursor=HEX&limit=N, each at most once and nothing else. NULL or the problem. */
static const char *parse_page(const char *query, uint8_t cursor[LEDGER_CURSOR_BYTES],
                              bool *has_cursor, uint32_t *limit)
{
    static const char *const names[] = {"cursor", "limit", NULL};
    uint32_t seen = 0;
    api_param prm;
    *has_cursor = false;
    *limit = API_HISTORY_LIMIT_DEFAULT;
    for (const char *q = query; next_param(&q, &prm);) {
        char num[8];
        switch (param_which(&prm, names, &seen)) {
        case 0:
            if (kn_unhex(cursor, LEDGER_CURSOR_BYTES, prm.value, prm.value_len))
                return "cursor must be the next_cursor of an earlier page";
            *has_cursor = true;
            break;
        case 1:
            if (prm.value_len == 0 || prm.value_len >= sizeof num ||
                strspn(prm.value, "0123456789") < prm.value_len)
                return "limit must be 1 to 500";
            snprintf(num, sizeof num, "%.*s", (int)prm.value_len, prm.value);
            *limit = (uint32_t)strtoul(num, NULL, 10);
            if (*limit < 1 || *limit > LEDGER_HISTORY_PAGE_MAX) return "limit must be 1 to 500";
            break;
        default: return "the parameters are cursor and limit, each at most once";
        }
    }
    return NULL;
}

typedef struct history_ctx {
    scale_cache sc;
    json_t *list;
} history_ctx;

static void add_movement(void *ctx, const ledger_movement *m)
{
    history_ctx *hc = ctx;
    json_t *o =
        json_pack("{s:I,s:i,s:i,s:o,s:s,s:s,s:s,s:I,s:o,s:s}", "height", (json_int_t)m->height,
                  "index", (int)m->index, "op", (int)m->op, "tx", hex_json(m->tx_id, KN_HASH_BYTES),
                  "kind", ledger_op_name(m->kind), "currency", m->currency, "sub", m->sub, "amount",
                  (json_int_t)m->amount, "counterparty", hex_json(m->counterparty, KN_PK_BYTES),
                  "counterparty_sub", m->counterparty_sub);
    set_scale(o, &hc->sc, m->currency);
    json_array_append_new(hc->list, o);
}

static void get_transfers(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    uint8_t pk[KN_PK_BYTES], cursor[LEDGER_CURSOR_BYTES], next[LEDGER_CURSOR_BYTES];
    bool has_cursor, more = false;
    uint32_t limit;
    const char *problem = parse_page(net_http_query(req), cursor, &has_cursor, &limit);
    if (!parse_pk(p->seg[1], pk)) problem = "account id is a public key: 64 hex digits";
    if (problem) {
        node__api_error(req, 400, KN_EINVAL, problem);
        return;
    }
    history_ctx ctx = {{t, "", -1}, json_array()};
    int rc = ledger_history_page(t, pk, has_cursor ? cursor : NULL, limit, add_movement, &ctx,
                                 &more, next);
    if (rc) {
        json_decref(ctx.list);
        read_failed(req, rc, KN_EINVAL, 400);
        return;
    }
    respond_json(req, 200,
                 json_pack("{s:o,s:o,s:o}", "account", hex_json(pk, KN_PK_BYTES), "movements",
                           ctx.list, "next_cursor",
                           more ? hex_json(next, LEDGER_CURSOR_BYTES) : json_null()),
                 NULL);
}

/* ---------------------------------------------------------------- currencies */

/* What GET /v1/currencies lists per currency. */
static json_t *currency_json(store_txn *t, const ledger_currency *c)
{
    int64_t supply = 0, holders = 0;
    if (ledger_supply_get(t, c->code, &supply)) supply = 0;
    if (ledger_holders_get(t, c->code, &holders)) holders = 0;
    return json_pack("{s:s,s:s,s:s,s:i,s:I,s:o,s:i,s:I,s:I}", "code", c->code, "name", c->name,
                     "city", c->city, "scale", (int)c->scale, "max_supply",
                     (json_int_t)c->max_supply, "flags", flag_names_json(c->flags),
                     "issuer_threshold", (int)c->issuer_threshold, "supply", (json_int_t)supply,
                     "holders", (json_int_t)holders);
}

static json_t *stats_json(const ledger_currency_stats *s)
{
    json_t *kinds = json_object();
    for (uint32_t k = 1; k <= LEDGER_ACC_KIND_MAX; k++)
        json_object_set_new(kinds, ledger_account_kind_name(k), json_integer(s->holders[k]));
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "supply", (json_int_t)s->supply,
                     "issued", (json_int_t)s->issued, "retired", (json_int_t)s->retired, "redeemed",
                     (json_int_t)s->redeemed, "fees", (json_int_t)s->fees, "demurrage",
                     (json_int_t)s->demurrage, "clawed_back", (json_int_t)s->clawed_back,
                     "outstanding", (json_int_t)s->outstanding, "holders_by_kind", kinds);
}

static void add_key(void *ctx, const uint8_t pk[KN_PK_BYTES])
{
    if (json_array_size(ctx) < API_LIST_MAX) json_array_append_new(ctx, hex_json(pk, KN_PK_BYTES));
}

static void add_programme_id(void *ctx, const ledger_programme *p)
{
    if (json_array_size(ctx) < API_LIST_MAX) json_array_append_new(ctx, json_string(p->id));
}

/* The full view of one currency; NULL when a read fails. */
static json_t *currency_full_json(store_txn *t, const ledger_currency *c)
{
    static const struct {
        const char *name;
        uint32_t role;
    } lists[] = {{"issuer_admins", LEDGER_ROLE_ISSUER_ADMIN},
                 {"auditors", LEDGER_ROLE_AUDITOR},
                 {"programme_managers", LEDGER_ROLE_PROGRAMME_MANAGER}};
    ledger_currency_stats stats;
    if (ledger_currency_stats_get(t, c->code, &stats)) return NULL;
    json_t *o = currency_json(t, c), *ids = json_array();
    json_object_set_new(o, "fee_bps", json_integer(c->fee_bps));
    json_object_set_new(o, "early_fee_bps", json_integer(c->early_fee_bps));
    json_object_set_new(o, "early_days", json_integer(c->early_days));
    json_object_set_new(o, "demurrage_bps", json_integer(c->demurrage_bps));
    json_object_set_new(o, "demurrage_period_ms", json_integer((json_int_t)c->demurrage_period_ms));
    json_object_set_new(o, "stats", stats_json(&stats));
    int rc = 0;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        json_t *keys = json_array();
        json_object_set_new(o, lists[i].name, keys);
        if (!rc) rc = ledger_role_holders_each(t, c->code, lists[i].role, add_key, keys);
    }
    json_object_set_new(o, "programmes", ids);
    if (!rc) rc = ledger_programmes_each(t, c->code, add_programme_id, ids);
    if (rc) json_decref(o);
    return rc ? NULL : o;
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

static void get_currency_list(net_http_req *req, store_txn *t)
{
    currencies_ctx ctx = {t, json_array()};
    if (ledger_currencies_each(t, add_currency, &ctx)) {
        json_decref(ctx.list);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, json_pack("{s:o}", "currencies", ctx.list), NULL);
}

/* Answers 404 unknown_currency (or 500) unless the currency exists. */
static bool find_currency(net_http_req *req, store_txn *t, const char *code, ledger_currency *c)
{
    int rc = ledger_currency_get(t, code, c);
    if (rc == 0) return true;
    if (rc == KN_ENOCURRENCY || rc == KN_ENOTFOUND)
        node__api_error(req, 404, KN_ENOCURRENCY, NULL);
    else
        node__api_error(req, 500, KN_ESTORE, NULL);
    return false;
}

/* ---------------------------------------------------------------- programmes */

/* Where a programme stands at block time now_ms. */
static const char *programme_state(const ledger_programme *p, const ledger_programme_stats *s,
                                   uint64_t now_ms)
{
    if (s->has_expired) return "expired";
    if (now_ms < p->start_ms) return "upcoming";
    if (now_ms < p->end_ms) return "active";
    if (now_ms - p->end_ms < p->grace_ms) return "grace";
    return "ended";
}

static void add_spent(void *ctx, const char *category, int64_t amount)
{
    json_object_set_new(ctx, category, json_integer(amount));
}

/* A programme's definition, figures and account balance; NULL when a read fails. */
static json_t *programme_json(store_txn *t, const ledger_programme *p,
                              const ledger_programme_stats *s, int scale, uint64_t now_ms)
{
    static const uint8_t currency_owner[KN_PK_BYTES]; /* the currency's own accounts */
    ledger_account acc;
    int rc = ledger_account_get(t, p->currency, currency_owner, p->id, &acc);
    if (rc == KN_ENOACCOUNT)
        acc.balance = 0;
    else if (rc)
        return NULL;
    json_t *cats = json_array();
    for (uint32_t i = 0; i < p->n_categories; i++)
        json_array_append_new(cats, json_string(p->categories[i]));
    json_t *stats =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "funded", (json_int_t)s->funded, "disbursed",
                  (json_int_t)s->disbursed, "spent", (json_int_t)s->spent, "returned",
                  (json_int_t)s->returned, "expired", (json_int_t)s->expired, "beneficiaries",
                  (json_int_t)s->beneficiaries);
    return json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:o,s:b,s:I,s:s,s:o,s:I,s:i}", "currency",
                     p->currency, "id", p->id, "manager", hex_json(p->manager, KN_PK_BYTES),
                     "budget", (json_int_t)p->budget, "start_ms", (json_int_t)p->start_ms, "end_ms",
                     (json_int_t)p->end_ms, "cap", (json_int_t)p->cap, "period_ms",
                     (json_int_t)p->period_ms, "categories", cats, "p2p", p->p2p, "grace_ms",
                     (json_int_t)p->grace_ms, "state", programme_state(p, s, now_ms), "stats",
                     stats, "balance", (json_int_t)acc.balance, "scale", scale);
}

static uint64_t block_time_ms(store_txn *t)
{
    ledger_chain chain;
    return ledger_chain_get(t, &chain) == 0 ? chain.last_time_ms : 0;
}

typedef struct programmes_ctx {
    store_txn *t;
    json_t *list;
    int scale;
    uint64_t now_ms;
    int rc;
} programmes_ctx;

static void add_programme(void *ctx, const ledger_programme *p)
{
    programmes_ctx *pc = ctx;
    ledger_programme def;
    ledger_programme_stats stats;
    if (pc->rc || json_array_size(pc->list) >= API_LIST_MAX) return;
    pc->rc = ledger_programme_get(pc->t, p->currency, p->id, &def, &stats);
    json_t *o = pc->rc ? NULL : programme_json(pc->t, &def, &stats, pc->scale, pc->now_ms);
    if (!o && !pc->rc) pc->rc = KN_ESTORE;
    if (o) json_array_append_new(pc->list, o);
}

static void get_programmes(net_http_req *req, store_txn *t, const ledger_currency *c)
{
    programmes_ctx ctx = {t, json_array(), c->scale, block_time_ms(t), 0};
    int rc = ledger_programmes_each(t, c->code, add_programme, &ctx);
    if (rc || ctx.rc) {
        json_decref(ctx.list);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, json_pack("{s:s,s:o}", "currency", c->code, "programmes", ctx.list),
                 NULL);
}

static void get_programme(net_http_req *req, store_txn *t, const ledger_currency *c, const char *id)
{
    ledger_programme p;
    ledger_programme_stats stats;
    int rc = ledger_programme_get(t, c->code, id, &p, &stats);
    if (rc == KN_ENOPROGRAMME || rc == KN_ENOTFOUND) {
        node__api_error(req, 404, KN_ENOPROGRAMME, NULL);
        return;
    }
    json_t *o = rc ? NULL : programme_json(t, &p, &stats, c->scale, block_time_ms(t));
    json_t *spent = json_object();
    if (o)
        json_object_set_new(json_object_get(o, "stats"), "spent_by_category", spent);
    else
        json_decref(spent);
    if (!o || ledger_programme_spent_each(t, c->code, id, add_spent, spent)) {
        json_decref(o);
        node__api_error(req, 500, KN_ESTORE, NULL);
        return;
    }
    respond_json(req, 200, o, NULL);
}

/* /v1/currencies[/{code}[/programmes[/{id}]]] */
static void get_currencies(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    ledger_currency c;
    if (p->n == 1) {
        get_currency_list(req, t);
        return;
    }
    if (!find_currency(req, t, p->seg[1], &c)) return;
    if (p->n == 3) {
        get_programmes(req, t, &c);
    } else if (p->n == 4) {
        get_programme(req, t, &c, p->seg[3]);
    } else {
        json_t *o = currency_full_json(t, &c);
        if (o)
            respond_json(req, 200, o, NULL);
        else
            node__api_error(req, 500, KN_ESTORE, NULL);
    }
}

/* ---------------------------------------------------------------- between cities */

static const char *const exchange_mode_names[] = {
    [LEDGER_EXCHANGE_SEND] = "send", [LEDGER_EXCHANGE_DELIVER] = "deliver"};
static const char *const netting_names[] = {
    [LEDGER_NETTING_BILATERAL] = "bilateral", [LEDGER_NETTING_MULTILATERAL] = "multilateral"};
static const char *const direction_names[] = {
    [LEDGER_CLEARING_FUND] = "fund", [LEDGER_CLEARING_RETURN] = "return"};

/* The name of value v in one of the tables above; null for a value it lacks. */
#define ENUM_JSON(names, v) enum_json(names, sizeof names / sizeof names[0], v)

static json_t *enum_json(const char *const *names, size_t n, uint32_t v)
{
    return v < n && names[v] ? json_string(names[v]) : json_null();
}

typedef struct rates_ctx {
    json_t *list;
    uint64_t now_ms; /* the last block's time */
} rates_ctx;

/* Rates are few: at most one per ordered pair of currencies (and EUR). */
static void add_rate(void *ctx, const ledger_rate *r)
{
    rates_ctx *rc = ctx;
    bool in_force = r->start_ms <= rc->now_ms && rc->now_ms < r->end_ms;
    json_array_append_new(
        rc->list, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "base", r->base, "quote", r->quote,
                            "num", (json_int_t)r->num, "den", (json_int_t)r->den, "start_ms",
                            (json_int_t)r->start_ms, "end_ms", (json_int_t)r->end_ms, "set_height",
                            (json_int_t)r->set_height, "in_force", in_force));
}

static void get_rates(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    rates_ctx ctx = {json_array(), block_time_ms(t)};
    json_t *o = json_pack("{s:o}", "rates", ctx.list);
    respond_read(req, ledger_rates_each(t, add_rate, &ctx), o);
}

/* ---------------------------------------------------------------- evidence */

/* The block a vote is for, null for nil. */
static json_t *vote_block_json(const cons_vote *v)
{
    return v->nil ? json_null() : hex_json(v->block_id, KN_HASH_BYTES);
}

static const char *vote_type_name(uint8_t type)
{
    return type == CONS_PREVOTE ? "prevote" : "precommit";
}

/* The name the genesis gives the validator of that key ("" if none). */
static const char *validator_name(node *n, const uint8_t pk[KN_PK_BYTES])
{
    uint32_t i = cons_valset_find(&n->cfg->valset, pk);
    return i == CONS_NO_VALIDATOR ? "" : n->cfg->validators[i].name;
}

typedef struct evidence_ctx {
    node *n;
    json_t *list;
} evidence_ctx;

static void add_evidence(void *ctx, const ledger_evidence *e)
{
    evidence_ctx *x = ctx;
    json_array_append_new(
        x->list, json_pack("{s:s,s:o,s:i,s:I,s:i,s:s,s:o,s:o,s:I}", "validator",
                           validator_name(x->n, e->validator_pk), "validator_key",
                           hex_json(e->validator_pk, KN_PK_BYTES), "validator_index",
                           (int)e->a.validator, "height", (json_int_t)e->a.height, "round",
                           (int)e->a.round, "type", vote_type_name(e->a.type), "block_a",
                           vote_block_json(&e->a), "block_b", vote_block_json(&e->b),
                           "recorded_height", (json_int_t)e->recorded_height));
}

/* GET /v1/evidence: every equivocation recorded on the ledger, in key order
 * (validator, height, round, type). */
static void get_evidence(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    (void)p;
    evidence_ctx ctx = {n, json_array()};
    json_t *o = json_pack("{s:o}", "evidence", ctx.list);
    respond_read(req, ledger_evidence_each(t, add_evidence, &ctx), o);
}

/* A cycle's summary; what only a closed cycle has is null while it is open. */
static json_t *cycle_json(const ledger_cycle *c)
{
    const char *state = c->settled ? "settled" : c->closed ? "closed" : "open";
    return json_pack(
        "{s:I,s:s,s:b,s:b,s:I,s:o,s:o,s:o,s:I,s:I,s:I,s:I}", "number", (json_int_t)c->number,
        "state", state, "closed", c->closed, "settled", c->settled, "opened_ms",
        (json_int_t)c->opened_ms, "closed_ms",
        c->closed ? json_integer((json_int_t)c->closed_ms) : json_null(), "closed_height",
        c->closed ? json_integer((json_int_t)c->closed_height) : json_null(), "netting",
        c->closed ? ENUM_JSON(netting_names, c->netting) : json_null(), "exchanges",
        (json_int_t)c->exchanges, "value", (json_int_t)c->value, "obligations",
        (json_int_t)c->obligations, "settled_count", (json_int_t)c->settled_count);
}

/* Newest first, the newest API_LIST_MAX of them. */
static void get_cycle_list(net_http_req *req, store_txn *t)
{
    uint64_t current = 0;
    json_t *list = json_array();
    int rc = ledger_cycle_current(t, &current);
    for (uint64_t k = current; !rc && k >= 1 && json_array_size(list) < API_LIST_MAX; k--) {
        ledger_cycle c;
        rc = ledger_cycle_get(t, k, &c);
        if (!rc) json_array_append_new(list, cycle_json(&c));
    }
    respond_read(req, rc, json_pack("{s:I,s:o}", "current", (json_int_t)current, "cycles", list));
}

typedef struct positions_ctx {
    store_txn *t;
    json_t *list;
    int rc;
} positions_ctx;

static void add_position(void *ctx, const char *code, int64_t position)
{
    positions_ctx *pc = ctx;
    ledger_currency c;
    int rc = ledger_currency_get(pc->t, code, &c);
    if (rc && !pc->rc) pc->rc = rc;
    json_array_append_new(pc->list, json_pack("{s:s,s:s,s:I}", "currency", code, "city",
                                              rc ? "" : c.city, "position", (json_int_t)position));
}

static void add_obligation(void *ctx, const ledger_obligation *o)
{
    json_array_append_new(
        ctx, json_pack("{s:s,s:s,s:I,s:b,s:o,s:o}", "debtor", o->debtor, "creditor", o->creditor,
                       "amount", (json_int_t)o->amount, "settled", o->settled, "ref",
                       o->settled ? json_string(o->ref) : json_null(), "settled_height",
                       o->settled ? json_integer((json_int_t)o->settled_height) : json_null()));
}

/* One cycle with its positions and its obligations, whose list takes the place
 * of their count (empty while the cycle is open). */
static void get_cycle(net_http_req *req, store_txn *t, const char *arg)
{
    uint64_t number;
    ledger_cycle c;
    if (!parse_height(arg, &number)) {
        node__api_error(req, 400, KN_EINVAL, "cycle must be a decimal number");
        return;
    }
    int rc = ledger_cycle_get(t, number, &c);
    if (rc) {
        read_failed(req, rc, KN_ENOCYCLE, 404);
        return;
    }
    json_t *o = cycle_json(&c);
    positions_ctx pc = {t, json_array(), 0};
    json_object_set_new(o, "positions", pc.list);
    json_t *obligations = json_array();
    json_object_set_new(o, "obligations", obligations);
    rc = ledger_cycle_positions_each(t, number, add_position, &pc);
    if (!rc) rc = pc.rc;
    if (!rc && c.closed) rc = ledger_cycle_obligations_each(t, number, add_obligation, obligations);
    respond_read(req, rc, o);
}

/* /v1/cycles[/{n}] */
static void get_cycles(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    if (p->n == 1)
        get_cycle_list(req, t);
    else
        get_cycle(req, t, p->seg[1]);
}

/* ---------------------------------------------------------------- reports */

/* Days since 1970-01-01 of a Gregorian date from 1970 on, and back
 * (H. Hinnant's days_from_civil and civil_from_days, in unsigned arithmetic
 * since no year here is before 1970). */
static uint32_t days_from_civil(uint32_t y, uint32_t m, uint32_t d)
{
    y -= m <= 2;
    uint32_t era = y / 400, yoe = y % 400;
    uint32_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    uint32_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(uint32_t days, uint32_t *y, uint32_t *m, uint32_t *d)
{
    uint32_t z = days + 719468;
    uint32_t era = z / 146097, doe = z % 146097;
    uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint32_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = era * 400 + yoe + (*m <= 2);
}

#define API_DATE_BYTES 36 /* "YYYY-MM-DD", with room for any uint32_t in each field */
#define API_YEAR_MIN 1970
#define API_YEAR_MAX 9999

static void format_day(char out[API_DATE_BYTES], uint32_t day)
{
    uint32_t y, m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, API_DATE_BYTES, "%04u-%02u-%02u", (unsigned)y, (unsigned)m, (unsigned)d);
}

/* "YYYY-MM-DD" exactly, a real date from 1970 to 9999. */
static bool parse_day(const char *s, size_t n, uint32_t *day)
{
    static const char shape[] = "dddd-dd-dd";
    if (n != sizeof shape - 1) return false;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != '-') return false;
    uint32_t y = (uint32_t)atoi(s), m = (uint32_t)atoi(s + 5), d = (uint32_t)atoi(s + 8);
    if (y < API_YEAR_MIN || y > API_YEAR_MAX || m < 1 || m > 12 || d < 1 || d > 31) return false;
    /* A day past the month's end (Feb 30) comes back as another date. */
    uint32_t days = days_from_civil(y, m, d), y2, m2, d2;
    civil_from_days(days, &y2, &m2, &d2);
    if (y2 != y || m2 != m || d2 != d) return false;
    *day = days;
    return true;
}

/* A ratio in basis points as a decimal with four places: 18234 is "1.8234". */
static void bps_text(char out[32], int64_t bps)
{
    uint64_t mag = bps < 0 ? -(uint64_t)bps : (uint64_t)bps;
    snprintf(out, 32, "%s%" PRIu64 ".%04" PRIu64, bps < 0 ? "-" : "", mag / LEDGER_BPS,
             mag % LEDGER_BPS);
}

/* The figures of a report in the order its JSON (and so its CSV) gives them:
 * amounts, the spending by category after the spending, and the ratios
 * (offset of the *_bps field). */
enum figure_kind { FIGURE_AMOUNT, FIGURE_CATEGORIES, FIGURE_RATIO };

typedef struct report_figure {
    const char *name;
    uint8_t kind;
    size_t offset;
} report_figure;

/* clang-format off: three figures a line */
#define AMOUNT(f) {#f, FIGURE_AMOUNT, offsetof(ledger_report, f)}
#define RATIO(f) {#f, FIGURE_RATIO, offsetof(ledger_report, f##_bps)}
static const report_figure report_figures[] = {
    AMOUNT(issued), AMOUNT(retired), AMOUNT(treasury_paid),
    AMOUNT(disbursed), AMOUNT(injected), AMOUNT(spent),
    {"spent_by_category", FIGURE_CATEGORIES, 0},
    AMOUNT(respent), AMOUNT(other_payments), AMOUNT(returned),
    AMOUNT(redeemed), AMOUNT(fees), AMOUNT(demurrage),
    AMOUNT(clawed_back), AMOUNT(expired), AMOUNT(reversed),
    AMOUNT(exchanged_in), AMOUNT(exchanged_out), AMOUNT(outstanding_start),
    AMOUNT(outstanding_end), AMOUNT(outstanding_avg),
    RATIO(lm3), RATIO(retention), RATIO(velocity),
};
/* clang-format on */
#undef AMOUNT
#undef RATIO
#define N_REPORT_FIGURES (sizeof report_figures / sizeof report_figures[0])

static int64_t figure_value(const ledger_report *r, const report_figure *f)
{
    int64_t v;
    memcpy(&v, (const char *)r + f->offset, sizeof v);
    return v;
}

/* A report's JSON: every field by its C name, the spending by category, the
 * ratios also as decimals, the period as dates. Takes spent. */
static json_t *report_json(const ledger_report *r, json_t *spent, int scale)
{
    char from[API_DATE_BYTES], to[API_DATE_BYTES], ratio[32], bps_name[32];
    format_day(from, r->from_day);
    format_day(to, r->to_day);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:i}", "currency", r->currency, "from", from, "to",
                          to, "from_day", (json_int_t)r->from_day, "to_day", (json_int_t)r->to_day,
                          "scale", scale);
    for (size_t i = 0; i < N_REPORT_FIGURES; i++) {
        const report_figure *f = &report_figures[i];
        int64_t v = figure_value(r, f);
        switch (f->kind) {
        case FIGURE_AMOUNT: json_object_set_new(o, f->name, json_integer(v)); break;
        case FIGURE_CATEGORIES: json_object_set(o, f->name, spent); break;
        case FIGURE_RATIO:
            bps_text(ratio, v);
            snprintf(bps_name, sizeof bps_name, "%s_bps", f->name);
            json_object_set_new(o, bps_name, json_integer(v));
            json_object_set_new(o, f->name, json_string(ratio));
            break;
        default: KN_REQUIRE(!"report figure of no kind");
        }
    }
    json_decref(spent);
    return o;
}

/* A CSV field: quoted, with quotes doubled, when it holds , " CR or LF. */
static void csv_field(kn_buf *b, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        kn_buf_append(b, s, strlen(s));
        return;
    }
    kn_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') kn_buf_append(b, "\"", 1);
        kn_buf_append(b, s, 1);
    }
    kn_buf_append(b, "\"", 1);
}

#define REPORT_CSV_HEADER "currency,from,to,figure,value\n"

/* One row: the report's "currency,from,to," prefix, then figure and value. */
static void csv_row(kn_buf *b, const kn_buf *prefix, const char *figure, const char *value)
{
    kn_buf_append(b, prefix->data, prefix->len);
    csv_field(b, figure);
    kn_buf_append(b, ",", 1);
    kn_buf_append(b, value, strlen(value));
    kn_buf_append(b, "\n", 1);
}

/* A report's rows: its JSON flattened, one row per member in the same order
 * after currency, from and to (which every row starts with), the spending by
 * category as one row per category. */
static void report_csv(kn_buf *b, const json_t *rep)
{
    char value[32], figure[LEDGER_CATEGORY_MAX + 8];
    const char *key, *category;
    const json_t *v, *amount;
    kn_buf prefix = {0};
    static const char *const fields[] = {"currency", "from", "to"};
    for (size_t i = 0; i < 3; i++) {
        csv_field(&prefix, json_string_value(json_object_get(rep, fields[i])));
        kn_buf_append(&prefix, ",", 1);
    }
    json_object_foreach((json_t *)rep, key, v)
    {
        if (json_is_object(v)) {
            json_object_foreach((json_t *)v, category, amount)
            {
                snprintf(figure, sizeof figure, "spent:%s", category);
                snprintf(value, sizeof value, "%" JSON_INTEGER_FORMAT, json_integer_value(amount));
                csv_row(b, &prefix, figure, value);
            }
        } else if (json_is_integer(v)) {
            snprintf(value, sizeof value, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            csv_row(b, &prefix, key, value);
        } else if (strcmp(key, "currency") && strcmp(key, "from") && strcmp(key, "to")) {
            csv_row(b, &prefix, key, json_string_value(v));
        }
    }
    kn_buf_free(&prefix);
}

typedef struct report_query {
    uint32_t from_day, to_day; /* [from, to) */
    bool csv;
} report_query;

/* ?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|csv, each at most once, over the
 * defaults already in rq. NULL or the problem. */
static const char *parse_report_query(const char *query, report_query *rq)
{
    static const char *const names[] = {"from", "to", "format", NULL};
    uint32_t seen = 0;
    api_param prm;
    for (const char *q = query; next_param(&q, &prm);) {
        int which = param_which(&prm, names, &seen);
        switch (which) {
        case 0:
        case 1:
            if (!parse_day(prm.value, prm.value_len, which == 0 ? &rq->from_day : &rq->to_day))
                return "from and to are dates YYYY-MM-DD from 1970 to 9999";
            break;
        case 2:
            rq->csv = value_is(&prm, "csv");
            if (!rq->csv && !value_is(&prm, "json")) return "format must be json or csv";
            break;
        default: return "the parameters are from, to and format, each at most once";
        }
    }
    if (rq->from_day >= rq->to_day) return "from must come before to (to is excluded)";
    return NULL;
}

typedef struct reports_ctx {
    store_txn *t;
    const report_query *rq;
    json_t *list; /* JSON: the reports */
    kn_buf csv;   /* CSV: the header and the rows */
    int rc;
} reports_ctx;

static void add_report(void *ctx, const ledger_currency *c)
{
    reports_ctx *rc = ctx;
    ledger_report r;
    if (rc->rc) return;
    json_t *spent = json_object();
    rc->rc = ledger_report_get(rc->t, c->code, rc->rq->from_day, rc->rq->to_day, &r, add_spent,
                               spent);
    if (rc->rc) {
        json_decref(spent);
        return;
    }
    json_t *rep = report_json(&r, spent, c->scale);
    if (rc->rq->csv) report_csv(&rc->csv, rep);
    json_array_append_new(rc->list, rep);
}

static void respond_csv(net_http_req *req, const kn_buf *b)
{
    count_response(200);
    net_http_respond(req, 200, "text/csv; charset=utf-8", b->data, b->len, NULL);
}

/* /v1/reports[/{code}]: the period defaults to the whole chain, from the
 * genesis day to the day of the last block. */
static void get_reports(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    ledger_currency c;
    report_query rq = {(uint32_t)(n->cfg->genesis.time_ms / LEDGER_DAY_MS),
                       (uint32_t)(block_time_ms(t) / LEDGER_DAY_MS + 1), false};
    const char *problem = parse_report_query(net_http_query(req), &rq);
    bool one = p->n == 2;
    if (problem) {
        node__api_error(req, 400, KN_EINVAL, problem);
        return;
    }
    if (one && !find_currency(req, t, p->seg[1], &c)) return;
    reports_ctx ctx = {t, &rq, json_array(), {0}, 0};
    kn_buf_append(&ctx.csv, REPORT_CSV_HEADER, strlen(REPORT_CSV_HEADER));
    int rc = 0;
    if (one)
        add_report(&ctx, &c);
    else
        rc = ledger_currencies_each(t, add_report, &ctx);
    if (!rc) rc = ctx.rc;
    if (rc)
        node__api_error(req, 500, KN_ESTORE, NULL);
    else if (rq.csv)
        respond_csv(req, &ctx.csv);
    else if (one)
        respond_json(req, 200, json_incref(json_array_get(ctx.list, 0)), NULL);
    else
        respond_json(req, 200, json_pack("{s:O}", "reports", ctx.list), NULL);
    json_decref(ctx.list);
    kn_buf_free(&ctx.csv);
}

/* ---------------------------------------------------------------- transactions */

/* A transfer's or an exchange's memo commitment, null when it has none. */
static json_t *memo_json(const ledger_op *op)
{
    return op->has_link ? hex_json(op->link, KN_HASH_BYTES) : json_null();
}

/* The fields of the operations that move money. */
static void op_money_json(json_t *o, const ledger_op *op)
{
    json_object_set_new(o, "amount", json_integer((json_int_t)op->amount));
    switch (op->kind) {
    case LEDGER_OP_ISSUE:
    case LEDGER_OP_RETIRE: json_object_set_new(o, "ref", json_string(op->ref)); break;
    case LEDGER_OP_TRANSFER:
        json_object_update_new(o, json_pack("{s:o,s:s,s:o,s:o}", "from",
                                            hex_json(op->from, KN_PK_BYTES), "programme",
                                            op->programme, "to", hex_json(op->to, KN_PK_BYTES),
                                            "memo", memo_json(op)));
        break;
    case LEDGER_OP_EXCHANGE:
        json_object_update_new(
            o, json_pack("{s:o,s:s,s:o,s:o,s:I,s:o}", "from", hex_json(op->from, KN_PK_BYTES),
                         "to_currency", op->counter, "to", hex_json(op->to, KN_PK_BYTES), "mode",
                         ENUM_JSON(exchange_mode_names, op->mode), "send_max",
                         (json_int_t)op->limit, "memo", memo_json(op)));
        break;
    case LEDGER_OP_SETTLE:
        json_object_update_new(o, json_pack("{s:s,s:I,s:s}", "creditor", op->counter, "cycle",
                                            (json_int_t)op->cycle, "ref", op->ref));
        break;
    case LEDGER_OP_CLEARING:
        json_object_set_new(o, "direction", ENUM_JSON(direction_names, op->mode));
        break;
    case LEDGER_OP_REDEEM:
        json_object_update_new(o, json_pack("{s:o,s:s}", "from", hex_json(op->from, KN_PK_BYTES),
                                            "payout_ref", op->ref));
        break;
    case LEDGER_OP_REVERSE:
        json_object_update_new(o, json_pack("{s:o,s:i,s:s}", "original",
                                            hex_json(op->link, KN_HASH_BYTES), "op", (int)op->role,
                                            "ref", op->ref));
        break;
    case LEDGER_OP_FUND: json_object_set_new(o, "programme", json_string(op->programme)); break;
    case LEDGER_OP_CLAWBACK:
        json_object_update_new(o, json_pack("{s:o,s:s,s:s}", "subject",
                                            hex_json(op->from, KN_PK_BYTES), "programme",
                                            op->programme, "case", op->ref));
        break;
    default: KN_REQUIRE(!"not an operation that moves money");
    }
}

/* Roles and account actions. */
static void op_party_json(json_t *o, const ledger_op *op)
{
    bool action = op->kind == LEDGER_OP_ACCOUNT;
    json_object_set_new(
        o, action ? "action" : "role",
        json_string(action ? ledger_action_name(op->role) : ledger_role_name(op->role)));
    json_object_set_new(o, "subject", hex_json(op->from, KN_PK_BYTES));
    if (op->kind != LEDGER_OP_GRANT) return;
    json_object_set_new(o, "category", json_string(op->ref));
    json_object_set_new(o, "credit_limit", json_integer((json_int_t)op->amount));
}

static void op_currency_json(json_t *o, const ledger_currency *c)
{
    json_t *admins = json_array();
    for (uint32_t i = 0; i < c->n_issuer_admins; i++)
        json_array_append_new(admins, hex_json(c->issuer_admins[i], KN_PK_BYTES));
    json_object_update_new(
        o, json_pack("{s:s,s:s,s:i,s:I,s:o,s:o,s:i,s:i,s:i,s:i,s:i,s:I}", "name", c->name, "city",
                     c->city, "scale", (int)c->scale, "max_supply", (json_int_t)c->max_supply,
                     "flags", flag_names_json(c->flags), "issuer_admins", admins,
                     "issuer_threshold", (int)c->issuer_threshold, "fee_bps", (int)c->fee_bps,
                     "early_fee_bps", (int)c->early_fee_bps, "early_days", (int)c->early_days,
                     "demurrage_bps", (int)c->demurrage_bps, "demurrage_period_ms",
                     (json_int_t)c->demurrage_period_ms));
}

static void op_programme_json(json_t *o, const ledger_programme *p)
{
    json_t *cats = json_array();
    for (uint32_t i = 0; i < p->n_categories; i++)
        json_array_append_new(cats, json_string(p->categories[i]));
    json_object_update_new(o, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o,s:b,s:I}", "programme", p->id,
                                        "budget", (json_int_t)p->budget, "start_ms",
                                        (json_int_t)p->start_ms, "end_ms", (json_int_t)p->end_ms,
                                        "cap", (json_int_t)p->cap, "period_ms",
                                        (json_int_t)p->period_ms, "categories", cats, "p2p", p->p2p,
                                        "grace_ms", (json_int_t)p->grace_ms));
}

static void op_disburse_json(json_t *o, const ledger_tx *tx, const ledger_op *op)
{
    json_t *payees = json_array();
    for (uint32_t i = 0; i < tx->n_payees; i++)
        json_array_append_new(payees, json_pack("{s:o,s:I}", "beneficiary",
                                                hex_json(tx->payees[i].pk, KN_PK_BYTES), "amount",
                                                (json_int_t)tx->payees[i].amount));
    json_object_update_new(o, json_pack("{s:s,s:s,s:o}", "programme", op->programme, "batch",
                                        op->ref, "payees", payees));
}

/* One operation with the fields its kind uses (ledger.h lists them). */
static json_t *op_json(const ledger_tx *tx, const ledger_op *op)
{
    json_t *o = json_pack("{s:s,s:s}", "kind", ledger_op_name(op->kind), "currency", op->currency);
    switch (op->kind) {
    case LEDGER_OP_CURRENCY: op_currency_json(o, &tx->currency_def); break;
    case LEDGER_OP_PROGRAMME: op_programme_json(o, &tx->programme_def); break;
    case LEDGER_OP_DISBURSE: op_disburse_json(o, tx, op); break;
    case LEDGER_OP_EXPIRE: json_object_set_new(o, "programme", json_string(op->programme)); break;
    case LEDGER_OP_RATE:
        json_object_update_new(o, json_pack("{s:s,s:I,s:I,s:I,s:I}", "quote", op->counter, "num",
                                            (json_int_t)op->num, "den", (json_int_t)op->den,
                                            "start_ms", (json_int_t)op->start_ms, "end_ms",
                                            (json_int_t)op->end_ms));
        break;
    case LEDGER_OP_CLOSE:
        json_object_update_new(o, json_pack("{s:I,s:o}", "cycle", (json_int_t)op->cycle, "netting",
                                            ENUM_JSON(netting_names, op->mode)));
        break;
    case LEDGER_OP_GRANT:
    case LEDGER_OP_REVOKE:
    case LEDGER_OP_ACCOUNT: op_party_json(o, op); break;
    case LEDGER_OP_EVIDENCE:
        json_object_update_new(
            o, json_pack("{s:i,s:I,s:i,s:s,s:o,s:o}", "validator_index",
                         (int)tx->evidence[0].validator, "height",
                         (json_int_t)tx->evidence[0].height, "round", (int)tx->evidence[0].round,
                         "type", vote_type_name(tx->evidence[0].type), "block_a",
                         vote_block_json(&tx->evidence[0]), "block_b",
                         vote_block_json(&tx->evidence[1])));
        break;
    default: op_money_json(o, op); break;
    }
    return o;
}

/* The operations and signers of a transaction, from its bytes. */
static void add_tx_body(json_t *o, const uint8_t *bytes, size_t len)
{
    static ledger_tx tx; /* loop thread only */
    if (ledger_tx_decode(bytes, len, &tx)) return;
    json_t *ops = json_array(), *signers = json_array();
    for (uint32_t i = 0; i < tx.n_ops; i++)
        json_array_append_new(ops, op_json(&tx, &tx.ops[i]));
    for (uint32_t i = 0; i < tx.n_sigs; i++)
        json_array_append_new(signers, hex_json(tx.sigs[i].pk, KN_PK_BYTES));
    json_object_set_new(o, "ops", ops);
    json_object_set_new(o, "signers", signers);
}

/* The committed transaction's bytes, from its block. */
static void add_committed_body(json_t *o, store_txn *t, const ledger_tx_record *rec)
{
    const uint8_t *p;
    size_t len;
    ledger_block_view v;
    if (ledger_block_get(t, rec->height, &p, &len) || ledger_block_decode(p, len, &v)) return;
    if (rec->index < v.hdr.n_txs) add_tx_body(o, v.txs[rec->index].p, v.txs[rec->index].n);
    ledger_block_view_free(&v);
}

static void get_tx(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    uint8_t id[KN_HASH_BYTES];
    ledger_tx_record rec;
    node__mp_entry *e;
    if (kn_unhex(id, sizeof id, p->seg[1], strlen(p->seg[1]))) {
        node__api_error(req, 400, KN_EINVAL, "transaction id must be 64 hex digits");
    } else if (ledger_tx_record_get(t, id, &rec) == 0) {
        json_t *o = record_json(id, &rec);
        add_committed_body(o, t, &rec);
        respond_json(req, 200, o, NULL);
    } else if ((e = node__mempool_find(&n->mempool, id))) {
        json_t *o = json_pack("{s:o,s:s}", "id", hex_json(id, KN_HASH_BYTES), "status", "pending");
        add_tx_body(o, e->bytes, e->len);
        respond_json(req, 202, o, NULL);
    } else {
        node__api_error(req, 404, KN_ENOTFOUND, "no such transaction");
    }
}

static void get_accounts(node *n, net_http_req *req, store_txn *t, const api_path *p)
{
    if (p->n == 2)
        get_account(n, req, t, p);
    else
        get_transfers(n, req, t, p);
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

static void get_block(node *n, net_http_req *req, store_txn *t, const api_path *path)
{
    const char *arg = path->seg[1];
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

/* How many equivocations the committed ledger has recorded (null when the
 * store cannot be read). */
static json_t *evidence_recorded_json(node *n)
{
    store_txn *t;
    uint64_t count = 0;
    if (store_begin(n->store, false, &t)) return json_null();
    int rc = ledger_evidence_count(t, &count);
    store_abort(t);
    return rc ? json_null() : json_integer((json_int_t)count);
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
    json_object_set_new(o, "evidence_recorded", evidence_recorded_json(n));
    respond_json(req, 200, o, NULL);
}

/* ---------------------------------------------------------------- routing */

typedef void (*read_handler)(node *n, net_http_req *req, store_txn *t, const api_path *p);

static void with_read_txn(node *n, net_http_req *req, read_handler h, const api_path *p)
{
    store_txn *t;
    if (store_begin(n->store, false, &t)) {
        node__api_error(req, 503, KN_ESTORE, NULL);
        return;
    }
    h(n, req, t, p);
    store_abort(t);
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

/* The route of a /v1/ path split into p: accounts, currencies, cycles and
 * reports each cover their sub-resources (the metrics count them under one
 * route). */
static enum node_api_route route_of_v1(const api_path *p)
{
    if (seg_is(p, 0, "txs") && p->n == 2) return NODE_ROUTE_TXS_GET;
    if (seg_is(p, 0, "blocks") && p->n == 2) return NODE_ROUTE_BLOCKS;
    if (seg_is(p, 0, "accounts") && (p->n == 2 || (p->n == 3 && seg_is(p, 2, "transfers"))))
        return NODE_ROUTE_ACCOUNTS;
    if (seg_is(p, 0, "currencies") && (p->n <= 2 || seg_is(p, 2, "programmes")))
        return NODE_ROUTE_CURRENCIES;
    if (seg_is(p, 0, "rates") && p->n == 1) return NODE_ROUTE_RATES;
    if (seg_is(p, 0, "cycles") && p->n <= 2) return NODE_ROUTE_CYCLES;
    if (seg_is(p, 0, "reports") && p->n <= 2) return NODE_ROUTE_REPORTS;
    if (seg_is(p, 0, "evidence") && p->n == 1) return NODE_ROUTE_EVIDENCE;
    return NODE_ROUTE_OTHER;
}

/* The route of a path, whatever the method; TXS_POST takes POST, the others GET. */
static enum node_api_route route_of(const char *path, api_path *p)
{
    p->n = 0;
    if (strcmp(path, "/v1/txs") == 0) return NODE_ROUTE_TXS_POST;
    if (strcmp(path, "/v1/txs/batch") == 0) return NODE_ROUTE_TXS_BATCH;
    if (strcmp(path, "/v1/status") == 0) return NODE_ROUTE_STATUS;
    if (strcmp(path, "/v1/events") == 0) return NODE_ROUTE_EVENTS;
    if (strcmp(path, "/metrics") == 0) return NODE_ROUTE_METRICS;
    if (strcmp(path, "/dashboard") == 0 || strcmp(path, "/") == 0) return NODE_ROUTE_DASHBOARD;
    if (!split_path(path, p)) return NODE_ROUTE_OTHER;
    return route_of_v1(p);
}

void node__api_handle(void *ctx, net_http_req *req)
{
    node *n = ctx;
    api_node = n;
    static api_path p; /* loop thread only */
    const char *method = net_http_method(req);
    enum node_api_route route = route_of(net_http_path(req), &p);
    n->health.api_requests[route]++;
    bool post = route == NODE_ROUTE_TXS_POST || route == NODE_ROUTE_TXS_BATCH;
    size_t body_len;
    (void)net_http_body(req, &body_len);
    if (route == NODE_ROUTE_OTHER) {
        node__api_error(req, 404, KN_ENOTFOUND, "no such route");
        return;
    }
    if (strcmp(method, post ? "POST" : "GET") != 0) {
        static const char *const allow_get[] = {"allow", "GET", NULL};
        static const char *const allow_post[] = {"allow", "POST", NULL};
        node__api_error_headers(req, 405, KN_EMETHOD, NULL, post ? allow_post : allow_get);
        return;
    }
    /* The HTTP layer's limit is the larger of the two (node.c). */
    if (route != NODE_ROUTE_TXS_BATCH && body_len > n->cfg->api_body_max_bytes) {
        node__api_error(req, 413, KN_ETOOBIG, "the body is over api_body_max_bytes");
        return;
    }
    switch (route) {
    case NODE_ROUTE_TXS_POST: post_txs(n, req); break;
    case NODE_ROUTE_TXS_BATCH: post_txs_batch(n, req); break;
    case NODE_ROUTE_STATUS: get_status(n, req); break;
    case NODE_ROUTE_TXS_GET: with_read_txn(n, req, get_tx, &p); break;
    case NODE_ROUTE_ACCOUNTS: with_read_txn(n, req, get_accounts, &p); break;
    case NODE_ROUTE_CURRENCIES: with_read_txn(n, req, get_currencies, &p); break;
    case NODE_ROUTE_BLOCKS: with_read_txn(n, req, get_block, &p); break;
    case NODE_ROUTE_RATES: with_read_txn(n, req, get_rates, &p); break;
    case NODE_ROUTE_CYCLES: with_read_txn(n, req, get_cycles, &p); break;
    case NODE_ROUTE_REPORTS: with_read_txn(n, req, get_reports, &p); break;
    case NODE_ROUTE_EVIDENCE: with_read_txn(n, req, get_evidence, &p); break;
    case NODE_ROUTE_METRICS: get_metrics(n, req); break;
    case NODE_ROUTE_DASHBOARD: get_dashboard(n, req); break;
    case NODE_ROUTE_EVENTS: node__events_subscribe(n, req); break;
    default: KN_REQUIRE(!"route without a handler");
    }
}
