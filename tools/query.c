/* Read commands: `koinon account`, `history`, `tx`, `block`, `status`,
 * `currencies`, `currency`, `programmes`, `programme`, `rates`, `cycles`,
 * `cycle`, `report`, `evidence`. Each GETs one resource and prints a compact view of it
 * (amounts in major units with the raw minor units beside them), or with
 * --json the node's JSON as it arrived. */
#include "tools/internal.h"

#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PARSED (-1) /* parse_query: go on with the command */
#define HISTORY_LIMIT_MAX 500
#define CURSOR_HEX_LEN 32
#define UNIT_SCALE 2 /* positions and settlements are in euro cents */

/* What a read command accepts besides --node, --json and --help. */
typedef struct query_spec {
    const char *usage, *help;
    uint32_t min_args, max_args; /* positional arguments */
    bool with_key;               /* --key FILE, in place of a PUBKEY argument */
    bool with_page;              /* --limit N, --cursor C */
    bool with_period;            /* --from DATE, --to DATE, --csv */
} query_spec;

typedef struct query_args {
    char node[CLI_URL_MAX];
    bool json;
    const char *key_path;
    const char *args[2];
    uint32_t n_args;
    const char *limit, *cursor;
    const char *from, *to; /* YYYY-MM-DD */
    bool csv;
} query_args;

#define NODE_HELP                                              \
    "  --node URL   node API (default " CLI_NODE_DEFAULT ")\n" \
    "  --json       print the node's JSON reply as is\n"       \
    "  --help       show this help\n"

/* An option parse_query knows that this command does not take. */
static int not_for_command(const query_spec *spec, const struct option *opts, int c)
{
    while (opts->name && opts->val != c)
        opts++;
    return cli_usage_error(spec->usage, "unknown option '--%s'", opts->name ? opts->name : "?");
}

static int parse_query(int argc, char **argv, const query_spec *spec, query_args *q)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},   {"json", no_argument, NULL, 'j'},
        {"key", required_argument, NULL, 'k'},    {"limit", required_argument, NULL, 'l'},
        {"cursor", required_argument, NULL, 'c'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},     {"csv", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},         {0}};
    snprintf(q->node, sizeof q->node, "%s", CLI_NODE_DEFAULT);
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': return cli_help(spec->help);
        case 'j': q->json = true; break;
        case 'n':
            if (cli_parse_node(optarg, q->node))
                return cli_usage_error(spec->usage, "--node must be an http:// or https:// URL");
            break;
        case 'k':
            if (!spec->with_key) return not_for_command(spec, opts, c);
            q->key_path = optarg;
            break;
        case 'l':
        case 'c':
            if (!spec->with_page) return not_for_command(spec, opts, c);
            *(c == 'l' ? &q->limit : &q->cursor) = optarg;
            break;
        case 'f':
        case 't':
        case 'C':
            if (!spec->with_period) return not_for_command(spec, opts, c);
            if (c == 'C')
                q->csv = true;
            else
                *(c == 'f' ? &q->from : &q->to) = optarg;
            break;
        default: return cli_bad_option(c, argv, spec->usage);
        }
    }
    for (; optind < argc; optind++) {
        if (q->n_args == spec->max_args)
            return cli_usage_error(spec->usage, "unexpected argument '%s'", argv[optind]);
        q->args[q->n_args++] = argv[optind];
    }
    if (q->n_args < spec->min_args) return cli_usage_error(spec->usage, "an argument is missing");
    return PARSED;
}

/* GETs path from the node and prints the reply with print, or with --json as
 * it arrived. Returns the exit status. */
static int show_reply(const query_args *q, const char *path, void (*print)(const json_t *reply))
{
    cli_reply r;
    if (cli_get_json(q->node, path, q->json, &r)) return CLI_EXIT_FAIL;
    if (!q->json) print(r.json);
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}

/* A command without arguments that shows one resource at path. */
static int show_resource(int argc, char **argv, const query_spec *spec, const char *path,
                         void (*print)(const json_t *reply))
{
    query_args q = {0};
    int rc = parse_query(argc, argv, spec, &q);
    return rc != PARSED ? rc : show_reply(&q, path, print);
}

/* The key of PUBKEY or --key FILE (exactly one of them) as hex. */
static int key_hex(const query_args *q, const char *usage, char hex[2 * KN_PK_BYTES + 1])
{
    uint8_t pk[KN_PK_BYTES];
    if (!q->n_args == !q->key_path) return cli_usage_error(usage, "give PUBKEY or --key FILE");
    if (q->key_path) {
        kn_keypair kp;
        if (cli_load_key(q->key_path, &kp)) return CLI_EXIT_FAIL;
        memcpy(pk, kp.pk, KN_PK_BYTES);
        kn_keypair_wipe(&kp);
    } else if (cli_parse_pk(q->args[0], pk)) {
        return cli_usage_error(usage, "PUBKEY must be 64 hex digits");
    }
    kn_hex(hex, pk, KN_PK_BYTES);
    return 0;
}

/* Currency codes and programme ids go into paths: letters, digits, . _ - only. */
static bool path_safe(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 16 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* "2024-05-01 12:00:00.123 UTC" */
static void format_time(char *out, size_t cap, int64_t time_ms)
{
    time_t secs = (time_t)(time_ms / 1000);
    struct tm tm;
    if (time_ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, cap, "%" PRId64 " ms", time_ms);
        return;
    }
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03d UTC", day, (int)(time_ms % 1000));
}

/* A member printed as it is: number or string ("-" when absent). */
static void print_scalar(const char *label, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        printf("%-12s%" JSON_INTEGER_FORMAT "\n", label, json_integer_value(v));
    else
        printf("%-12s%s\n", label, json_is_string(v) ? json_string_value(v) : "-");
}

/* An amount in major units with its raw minor units: "12.34 (1234)". A scale
 * outside 0..18 (or none) prints minor units alone. */
static void amount_text(char *out, size_t cap, int64_t amount_minor, int64_t scale)
{
    if (scale < 0 || scale > 18) {
        snprintf(out, cap, "%" PRId64 " minor", amount_minor);
        return;
    }
    char major[48];
    cli_format_amount(major, sizeof major, amount_minor, (unsigned)scale);
    snprintf(out, cap, "%s (%" PRId64 ")", major, amount_minor);
}

/* The amount member key of obj, at the scale member of obj (or at scale). */
static const char *amount_of(const json_t *obj, const char *key, int64_t scale, char *buf,
                             size_t cap)
{
    int64_t amount;
    if (!cli_jint(obj, key, &amount)) return "-";
    if (scale < 0 && !cli_jint(obj, "scale", &scale)) scale = -1;
    amount_text(buf, cap, amount, scale);
    return buf;
}

/* Each element of the array member key of reply through line, or "none"
 * alone when it is empty. */
static void print_list(const json_t *reply, const char *key, const char *none,
                       void (*line)(const json_t *element))
{
    const json_t *list = json_object_get(reply, key), *element;
    size_t i;
    if (json_array_size(list) == 0) printf("%s\n", none);
    json_array_foreach(list, i, element) line(element);
}

/* Strings of a JSON array joined with ", " (none when empty). */
static void join_list(const json_t *list, char *out, size_t cap, const char *none)
{
    size_t len = 0, i;
    const json_t *v;
    snprintf(out, cap, "%s", none);
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || len >= cap) continue;
        len +=
            (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", json_string_value(v));
    }
}

/* ---------------------------------------------------------------- account */

static const char account_usage[] =
    "usage: koinon account PUBKEY | --key FILE [--node URL] [--json]\n";
static const char account_help[] =
    "usage: koinon account PUBKEY | --key FILE [--node URL] [--json]\n\n"
    "Shows a key's accounts in every currency (its main account and its aid from each\n"
    "programme) with kind, flags and balance, and the roles it holds. The all-zero key\n"
    "shows the currencies' own accounts (issuing, treasury, programmes, fees).\n\n"
    "  --key FILE   take the key from a key file\n" NODE_HELP;

static void print_accounts(const json_t *reply)
{
    const json_t *accounts = json_object_get(reply, "accounts"), *a, *r;
    size_t i;
    char amount[80], flags[64];
    printf("account %s\n", cli_jstr(reply, "account", "?"));
    if (json_array_size(accounts) == 0) printf("no accounts\n");
    json_array_foreach(accounts, i, a)
    {
        const char *sub = cli_jstr(a, "sub", "");
        join_list(json_object_get(a, "flags"), flags, sizeof flags, "");
        printf("  %-6s %-14s %-17s %24s%s%s%s\n", cli_jstr(a, "currency", "?"),
               cli_jstr(a, "kind", "?"), sub[0] ? sub : "main",
               amount_of(a, "balance", -1, amount, sizeof amount), flags[0] ? "  [" : "", flags,
               flags[0] ? "]" : "");
    }
    const json_t *roles = json_object_get(reply, "roles");
    if (json_array_size(roles)) printf("roles\n");
    json_array_foreach(roles, i, r)
    {
        char names[160];
        int64_t limit = 0;
        const char *code = cli_jstr(r, "currency", "");
        const char *category = cli_jstr(r, "category", "");
        join_list(json_object_get(r, "roles"), names, sizeof names, "-");
        printf("  %-6s %s", code[0] ? code : "(all)", names);
        if (category[0]) printf("  category %s", category);
        if (cli_jint(r, "credit_limit", &limit) && limit) printf("  credit limit %" PRId64, limit);
        printf("\n");
    }
}

int cmd_account(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = account_usage, .help = account_help, .max_args = 1, .with_key = true};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    char hex[2 * KN_PK_BYTES + 1], path[128];
    if ((rc = key_hex(&q, account_usage, hex))) return rc;
    snprintf(path, sizeof path, "/v1/accounts/%s", hex);
    return show_reply(&q, path, print_accounts);
}

/* ---------------------------------------------------------------- history */

static const char history_usage[] =
    "usage: koinon history PUBKEY | --key FILE [--limit N] [--cursor C] [--node URL] [--json]\n";
static const char history_help[] =
    "usage: koinon history PUBKEY | --key FILE [--limit N] [--cursor C] [--node URL] [--json]\n\n"
    "Shows the movements of a key's accounts, newest first: received (+) and paid (-),\n"
    "with the transaction and the counterparty. Demurrage and redemption fees show as\n"
    "their own movements.\n\n"
    "  --key FILE   take the key from a key file\n"
    "  --limit N    movements per page, 1..500 (default 50)\n"
    "  --cursor C   continue from the cursor an earlier page printed\n" NODE_HELP;

/* "ab12cd34ef56/aid1", "#treasury": who was on the other side. */
static void counterparty_text(const json_t *m, char *out, size_t cap)
{
    const char *pk = cli_jstr(m, "counterparty", "?");
    const char *sub = cli_jstr(m, "counterparty_sub", "");
    if (strspn(pk, "0") == strlen(pk)) /* the currency's own accounts */
        snprintf(out, cap, "%s", sub[0] ? sub : "(currency)");
    else
        snprintf(out, cap, "%.16s%s%s", pk, sub[0] ? "/" : "", sub);
}

static void print_history(const json_t *reply, const char *hex)
{
    const json_t *moves = json_object_get(reply, "movements"), *m;
    size_t i;
    if (json_array_size(moves) == 0)
        printf("no movements\n");
    else
        printf("%8s %-6s %-10s %-6s %-17s %24s  %s\n", "height", "tx", "kind", "cur", "account",
               "amount", "counterparty");
    json_array_foreach(moves, i, m)
    {
        char amount[80], other[96];
        int64_t height = 0, op = 0;
        const char *sub = cli_jstr(m, "sub", "");
        (void)cli_jint(m, "height", &height);
        (void)cli_jint(m, "op", &op);
        counterparty_text(m, other, sizeof other);
        printf("%8" PRId64 " %.6s %-10s %-6s %-17s %24s  %s\n", height, cli_jstr(m, "tx", "?"),
               cli_jstr(m, "kind", "?"), cli_jstr(m, "currency", "?"), sub[0] ? sub : "main",
               amount_of(m, "amount", -1, amount, sizeof amount), other);
    }
    const char *next = cli_jstr(reply, "next_cursor", NULL);
    if (next) printf("more: koinon history %s --cursor %s\n", hex, next);
}

int cmd_history(int argc, char **argv)
{
    static const query_spec spec = {.usage = history_usage,
                                    .help = history_help,
                                    .max_args = 1,
                                    .with_key = true,
                                    .with_page = true};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    char hex[2 * KN_PK_BYTES + 1], path[256];
    uint64_t limit = 50;
    if ((rc = key_hex(&q, history_usage, hex))) return rc;
    if (q.limit && cli_parse_u64(q.limit, 1, HISTORY_LIMIT_MAX, &limit))
        return cli_usage_error(history_usage, "--limit must be 1 to %d", HISTORY_LIMIT_MAX);
    if (q.cursor && (strlen(q.cursor) != CURSOR_HEX_LEN ||
                     strspn(q.cursor, "0123456789abcdefABCDEF") != CURSOR_HEX_LEN))
        return cli_usage_error(history_usage, "--cursor must be a cursor an earlier page printed");
    int len = snprintf(path, sizeof path, "/v1/accounts/%s/transfers?limit=%" PRIu64, hex, limit);
    if (q.cursor) snprintf(path + len, sizeof path - (size_t)len, "&cursor=%s", q.cursor);
    cli_reply r;
    if (cli_get_json(q.node, path, q.json, &r)) return CLI_EXIT_FAIL;
    if (!q.json) print_history(r.json, hex);
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- tx */

static const char tx_usage[] = "usage: koinon tx ID [--node URL] [--json]\n";
static const char tx_help[] =
    "usage: koinon tx ID [--node URL] [--json]\n\n"
    "Shows a transaction's status, its operations and, once committed, its result.\n\n" NODE_HELP;

static void print_result(const json_t *result)
{
    if (!json_is_object(result)) {
        printf("%-12s-\n", "result");
        return;
    }
    const char *code = cli_jstr(result, "code", "?");
    if (strcmp(code, "ok") == 0) {
        printf("%-12sok\n", "result");
        return;
    }
    const char *message = cli_jstr(result, "message", kn_strerror(kn_errcode(code)));
    printf("%-12srejected: %s (%s)\n", "result", message, code);
}

/* One operation on one line: its kind and currency, then its fields. */
static void print_op(const json_t *op)
{
    const char *key;
    const json_t *v;
    printf("%-12s%s %s", "", cli_jstr(op, "kind", "?"), cli_jstr(op, "currency", ""));
    json_object_foreach((json_t *)op, key, v)
    {
        if (strcmp(key, "kind") == 0 || strcmp(key, "currency") == 0) continue;
        if (json_is_string(v) && json_string_length(v))
            printf(" %s=%s", key, json_string_value(v));
        else if (json_is_integer(v))
            printf(" %s=%" JSON_INTEGER_FORMAT, key, json_integer_value(v));
        else if (json_is_boolean(v))
            printf(" %s=%s", key, json_is_true(v) ? "true" : "false");
        else if (json_is_array(v))
            printf(" %s=[%zu]", key, json_array_size(v));
    }
    printf("\n");
}

int cmd_tx(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = tx_usage, .help = tx_help, .min_args = 1, .max_args = 1};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    uint8_t id[KN_HASH_BYTES];
    if (cli_parse_hash(q.args[0], id)) return cli_usage_error(tx_usage, "ID must be 64 hex digits");

    char hex[2 * KN_HASH_BYTES + 1], path[128];
    kn_hex(hex, id, KN_HASH_BYTES);
    snprintf(path, sizeof path, "/v1/txs/%s", hex);
    cli_reply r;
    if (cli_get_json(q.node, path, q.json, &r)) return CLI_EXIT_FAIL;
    if (!q.json) {
        print_scalar("id", r.json, "id");
        print_scalar("status", r.json, "status");
        if (json_object_get(r.json, "height")) {
            print_scalar("height", r.json, "height");
            print_scalar("index", r.json, "index");
            print_result(json_object_get(r.json, "result"));
        }
        size_t i;
        const json_t *op;
        if (json_object_get(r.json, "ops")) printf("%-12s\n", "operations");
        json_array_foreach(json_object_get(r.json, "ops"), i, op) print_op(op);
    }
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- block */

#define BLOCK_TXS_SHOWN 50

static const char block_usage[] = "usage: koinon block HEIGHT|latest [--node URL] [--json]\n";
static const char block_help[] =
    "usage: koinon block HEIGHT|latest [--node URL] [--json]\n\n"
    "Shows a committed block and its commit certificate.\n\n" NODE_HELP;

static void print_certificate(const json_t *cert)
{
    if (!json_is_object(cert)) {
        printf("%-12s-\n", "certificate");
        return;
    }
    const json_t *sigs = json_object_get(cert, "signatures");
    int64_t round = -1;
    (void)cli_jint(cert, "round", &round);
    printf("%-12sround %" PRId64 ", %zu signatures:", "certificate", round, json_array_size(sigs));
    size_t i;
    const json_t *s;
    json_array_foreach(sigs, i, s)
    {
        int64_t index = -1;
        const char *name = cli_jstr(s, "name", NULL);
        if (name)
            printf(" %s", name);
        else if (cli_jint(s, "validator", &index))
            printf(" #%" PRId64, index);
    }
    printf("\n");
}

static void print_block(const json_t *b)
{
    int64_t time_ms;
    char when[64] = "-";
    if (cli_jint(b, "time_ms", &time_ms)) format_time(when, sizeof when, time_ms);
    print_scalar("height", b, "height");
    print_scalar("id", b, "id");
    printf("%-12s%s\n", "time", when);
    print_scalar("proposer", b, "proposer");
    print_scalar("prev_id", b, "prev_id");
    print_scalar("state_hash", b, "state_hash");
    const json_t *txs = json_object_get(b, "txs");
    printf("%-12s%zu\n", "txs", json_array_size(txs));
    size_t i;
    const json_t *t;
    json_array_foreach(txs, i, t)
    {
        if (i == BLOCK_TXS_SHOWN) {
            printf("%-12s... and %zu more (see --json)\n", "", json_array_size(txs) - i);
            break;
        }
        printf("%-12s%s\n", "", json_is_string(t) ? json_string_value(t) : "?");
    }
    print_certificate(json_object_get(b, "certificate"));
}

int cmd_block(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = block_usage, .help = block_help, .min_args = 1, .max_args = 1};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    const char *arg = q.args[0];
    uint64_t height;
    char path[64];
    if (strcmp(arg, "latest") == 0)
        snprintf(path, sizeof path, "/v1/blocks/latest");
    else if (cli_parse_u64(arg, 0, INT64_MAX, &height) == 0)
        snprintf(path, sizeof path, "/v1/blocks/%" PRIu64, height);
    else
        return cli_usage_error(block_usage, "HEIGHT must be a block height or 'latest'");

    return show_reply(&q, path, print_block);
}

/* ---------------------------------------------------------------- status */

static const char status_usage[] =
    "usage: koinon status [--node URL] [--json] [--watch [--interval MS]]\n";
static const char status_help[] =
    "usage: koinon status [--node URL] [--json] [--watch [--interval MS]]\n\n"
    "Shows a node's view of the chain and of the validators.\n\n"
    "  --watch        redraw a compact live view until Ctrl-C\n"
    "  --interval MS  time between redraws with --watch (default 1000)\n" NODE_HELP;

/* A member as text for display: string, integer or boolean. */
static const char *scalar_text(const json_t *obj, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v)) return json_is_true(v) ? "true" : "false";
    return "-";
}

static void print_validators(const json_t *vals)
{
    printf("%-12s%zu\n", "validators", json_array_size(vals));
    size_t i;
    const json_t *v;
    json_array_foreach(vals, i, v)
    {
        char power[32];
        const json_t *online = json_object_get(v, "online");
        printf("  %-10s %-10s %s  power %s  %s\n", cli_jstr(v, "name", "?"),
               cli_jstr(v, "city", "-"), cli_jstr(v, "public_key", "?"),
               scalar_text(v, "power", power, sizeof power),
               !json_is_boolean(online) ? "-"
               : json_is_true(online)   ? "online"
                                        : "offline");
    }
}

static void print_status(const json_t *s)
{
    char a[32], b[32], c[32], d[32];
    const json_t *mempool = json_object_get(s, "mempool");
    printf("%-12s%s\n", "chain", cli_jstr(s, "chain_id", "-"));
    printf("%-12s%s  (version %s)\n", "node", cli_jstr(s, "node", "-"),
           cli_jstr(s, "version", "-"));
    printf("%-12s%s  (round %s, step %s)\n", "height", scalar_text(s, "height", a, sizeof a),
           scalar_text(s, "round", b, sizeof b), scalar_text(s, "step", c, sizeof c));
    printf("%-12s%s\n", "last block", cli_jstr(s, "last_block_id", "-"));
    printf("%-12s%s / %s\n", "mempool", scalar_text(mempool, "size", a, sizeof a),
           scalar_text(mempool, "max", d, sizeof d));
    printf("%-12s%s recorded on the ledger (koinon evidence)\n", "evidence",
           scalar_text(s, "evidence_recorded", a, sizeof a));
    print_validators(json_object_get(s, "validators"));
}

/* The compact live view: consensus position, votes of the round, and one line
 * per validator. */
static void print_watch(const json_t *s)
{
    const json_t *cons = json_object_get(s, "consensus");
    const json_t *blocks = json_object_get(s, "recent_blocks");
    char a[32], b[32], c[32], prevotes[256], precommits[256];
    join_list(json_object_get(cons, "prevotes"), prevotes, sizeof prevotes, "-");
    join_list(json_object_get(cons, "precommits"), precommits, sizeof precommits, "-");
    int64_t t0, t1;
    size_t nb = json_array_size(blocks);
    char interval[32] = "-";
    if (nb >= 2 && cli_jint(json_array_get(blocks, nb - 1), "time_ms", &t1) &&
        cli_jint(json_array_get(blocks, nb - 2), "time_ms", &t0))
        snprintf(interval, sizeof interval, "%" PRId64 " ms", t1 - t0);
    printf("%s  node %s  height %s  round %s  step %s  last interval %s\n",
           cli_jstr(s, "chain_id", "-"), cli_jstr(s, "node", "-"),
           scalar_text(s, "height", a, sizeof a), scalar_text(s, "round", b, sizeof b),
           scalar_text(s, "step", c, sizeof c), interval);
    printf("prevoted: %s   precommitted: %s\n\n", prevotes, precommits);
    printf("%-10s %-10s %-8s %8s %7s %9s\n", "validator", "city", "state", "height", "missed",
           "proposed");
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(s, "validators"), i, v)
    {
        const json_t *online = json_object_get(v, "online");
        printf("%-10s %-10s %-8s %8s %7s %9s\n", cli_jstr(v, "name", "?"), cli_jstr(v, "city", "-"),
               json_is_true(online) ? "online" : "OFFLINE", scalar_text(v, "height", a, sizeof a),
               scalar_text(v, "missed_recent", b, sizeof b), scalar_text(v, "proposed", c, sizeof c));
    }
    const json_t *mempool = json_object_get(s, "mempool");
    printf("\nmempool %s / %s\n", scalar_text(mempool, "size", a, sizeof a),
           scalar_text(mempool, "max", b, sizeof b));
}

static volatile sig_atomic_t watch_stop;

static void on_watch_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

/* Redraws until SIGINT or SIGTERM, then exits 0: a watch ends by being stopped. */
static int watch_status(const char *node, uint32_t interval_ms)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_watch_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!watch_stop) {
        cli_reply r;
        printf("\033[H\033[2J");
        if (cli_get_json(node, "/v1/status", false, &r) == 0) {
            print_watch(r.json);
            cli_reply_free(&r);
        } else {
            printf("node %s unreachable; retrying\n", node);
        }
        fflush(stdout);
        struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return CLI_EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    char node[CLI_URL_MAX];
    bool json = false, watch = false;
    uint64_t interval_ms = 1000;
    snprintf(node, sizeof node, "%s", CLI_NODE_DEFAULT);
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': return cli_help(status_help);
        case 'j': json = true; break;
        case 'w': watch = true; break;
        case 'i':
            if (cli_parse_u64(optarg, 100, 3600000, &interval_ms))
                return cli_usage_error(status_usage, "--interval must be 100..3600000 ms");
            break;
        case 'n':
            if (cli_parse_node(optarg, node))
                return cli_usage_error(status_usage, "--node must be an http:// or https:// URL");
            break;
        default: return cli_bad_option(c, argv, status_usage);
        }
    }
    if (optind != argc) return cli_usage_error(status_usage, "unexpected argument '%s'", argv[optind]);
    if (watch && json) return cli_usage_error(status_usage, "--watch and --json do not go together");
    if (watch) return watch_status(node, (uint32_t)interval_ms);
    cli_reply r;
    if (cli_get_json(node, "/v1/status", json, &r)) return CLI_EXIT_FAIL;
    if (!json) print_status(r.json);
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- currencies */

static const char currencies_usage[] = "usage: koinon currencies [--node URL] [--json]\n";
static const char currencies_help[] = "usage: koinon currencies [--node URL] [--json]\n\n"
                                      "Lists the currencies with their city, circulating and "
                                      "maximum supply, and flags.\n\n" NODE_HELP;

static int64_t scale_in(const json_t *obj)
{
    int64_t scale;
    return cli_jint(obj, "scale", &scale) && scale >= 0 && scale <= 18 ? scale : 0;
}

static void print_currency_line(const json_t *c)
{
    int64_t scale = scale_in(c), supply, max_supply;
    char supply_text[48] = "?", max_text[48] = "?", flags[160];
    if (cli_jint(c, "supply", &supply))
        cli_format_amount(supply_text, sizeof supply_text, supply, (unsigned)scale);
    if (cli_jint(c, "max_supply", &max_supply))
        cli_format_amount(max_text, sizeof max_text, max_supply, (unsigned)scale);
    join_list(json_object_get(c, "flags"), flags, sizeof flags, "-");
    printf("%-5s %-24s %-10s supply %s of %s  flags %s\n", cli_jstr(c, "code", "?"),
           cli_jstr(c, "name", "-"), cli_jstr(c, "city", "-"), supply_text, max_text, flags);
}

static void print_currencies(const json_t *reply)
{
    print_list(reply, "currencies", "no currencies", print_currency_line);
}

int cmd_currencies(int argc, char **argv)
{
    static const query_spec spec = {.usage = currencies_usage, .help = currencies_help};
    return show_resource(argc, argv, &spec, "/v1/currencies", print_currencies);
}

/* ---------------------------------------------------------------- currency */

static const char currency_usage[] = "usage: koinon currency CODE [--node URL] [--json]\n";
static const char currency_help[] =
    "usage: koinon currency CODE [--node URL] [--json]\n\n"
    "Shows a currency: its flags and fee policy, its figures (supply, issued, retired,\n"
    "redeemed, fees, demurrage, clawed back, outstanding, holders by kind of account),\n"
    "its issuer admins, auditors, programme managers and programmes.\n\n" NODE_HELP;

static void print_keys(const char *label, const json_t *list)
{
    size_t i;
    const json_t *k;
    if (json_array_size(list) == 0) printf("%-14s-\n", label);
    json_array_foreach(list, i, k) printf("%-14s%s\n", i ? "" : label, json_string_value(k));
}

static void print_figures(const json_t *stats, int64_t scale)
{
    static const char *const figures[] = {"supply", "issued",    "retired",     "redeemed",
                                          "fees",   "demurrage", "clawed_back", "outstanding"};
    char amount[80];
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        printf("%-14s%s\n", figures[i], amount_of(stats, figures[i], scale, amount, sizeof amount));
    const char *kind;
    const json_t *n;
    printf("%-14s", "holders");
    json_object_foreach((json_t *)json_object_get(stats, "holders_by_kind"), kind,
                        n) if (json_integer_value(n) > 0)
        printf("%s %" JSON_INTEGER_FORMAT "  ", kind, json_integer_value(n));
    printf("\n");
}

static void print_currency(const json_t *c)
{
    int64_t scale = scale_in(c), v1 = 0, v2 = 0, v3 = 0;
    char flags[160], programmes[512], amount[80];
    join_list(json_object_get(c, "flags"), flags, sizeof flags, "none");
    join_list(json_object_get(c, "programmes"), programmes, sizeof programmes, "-");
    printf("%-14s%s  %s, %s\n", "currency", cli_jstr(c, "code", "?"), cli_jstr(c, "name", "-"),
           cli_jstr(c, "city", "-"));
    printf("%-14s%" PRId64 "\n%-14s%s\n", "scale", scale, "flags", flags);
    printf("%-14s%s\n", "max supply", amount_of(c, "max_supply", scale, amount, sizeof amount));
    (void)cli_jint(c, "fee_bps", &v1);
    (void)cli_jint(c, "early_fee_bps", &v2);
    (void)cli_jint(c, "early_days", &v3);
    printf("%-14s%" PRId64 " bps; %" PRId64 " bps on money held under %" PRId64 " days\n",
           "redeem fee", v1, v2, v3);
    (void)cli_jint(c, "demurrage_bps", &v1);
    (void)cli_jint(c, "demurrage_period_ms", &v2);
    if (v1) printf("%-14s%" PRId64 " bps per %" PRId64 " ms\n", "demurrage", v1, v2);
    print_figures(json_object_get(c, "stats"), scale);
    (void)cli_jint(c, "issuer_threshold", &v1);
    printf("%-14s%" PRId64 " of the issuer admins\n", "issuer quorum", v1);
    print_keys("issuer admins", json_object_get(c, "issuer_admins"));
    print_keys("auditors", json_object_get(c, "auditors"));
    print_keys("managers", json_object_get(c, "programme_managers"));
    printf("%-14s%s\n", "programmes", programmes);
}

int cmd_currency(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = currency_usage, .help = currency_help, .min_args = 1, .max_args = 1};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    if (!path_safe(q.args[0]) || strlen(q.args[0]) > 12)
        return cli_usage_error(currency_usage, "CODE must be 1 to 12 letters or digits");
    char path[64];
    snprintf(path, sizeof path, "/v1/currencies/%s", q.args[0]);
    return show_reply(&q, path, print_currency);
}

/* ---------------------------------------------------------------- programmes */

static const char programmes_usage[] = "usage: koinon programmes CODE [--node URL] [--json]\n";
static const char programmes_help[] =
    "usage: koinon programmes CODE [--node URL] [--json]\n\n"
    "Lists a currency's aid programmes with their state and figures.\n\n" NODE_HELP;
static const char programme_usage[] = "usage: koinon programme CODE ID [--node URL] [--json]\n";
static const char programme_help[] =
    "usage: koinon programme CODE ID [--node URL] [--json]\n\n"
    "Shows an aid programme: its rules, budget, funding, disbursements, spending by\n"
    "merchant category, returns and expiry, beneficiaries and its account's balance.\n\n" NODE_HELP;

static void print_programme_line(const json_t *p)
{
    int64_t scale = scale_in(p);
    const json_t *st = json_object_get(p, "stats");
    char budget[80], funded[80], disbursed[80], spent[80], balance[80];
    printf("%-16s %-8s budget %s  funded %s  disbursed %s  spent %s  balance %s\n",
           cli_jstr(p, "id", "?"), cli_jstr(p, "state", "?"),
           amount_of(p, "budget", scale, budget, sizeof budget),
           amount_of(st, "funded", scale, funded, sizeof funded),
           amount_of(st, "disbursed", scale, disbursed, sizeof disbursed),
           amount_of(st, "spent", scale, spent, sizeof spent),
           amount_of(p, "balance", scale, balance, sizeof balance));
}

static void print_programme_rules(const json_t *p, int64_t scale)
{
    int64_t t, period = 0, grace = 0;
    char when[64] = "-", until[64] = "-", cap[80], cats[256];
    if (cli_jint(p, "start_ms", &t)) format_time(when, sizeof when, t);
    if (cli_jint(p, "end_ms", &t)) format_time(until, sizeof until, t);
    (void)cli_jint(p, "period_ms", &period);
    (void)cli_jint(p, "grace_ms", &grace);
    join_list(json_object_get(p, "categories"), cats, sizeof cats, "any");
    printf("%-14s%s\n%-14s%s\n%-14s%" PRId64 " ms after the end\n", "start", when, "end", until,
           "grace", grace);
    printf("%-14s%s", "cap", amount_of(p, "cap", scale, cap, sizeof cap));
    if (period) printf(" per %" PRId64 " ms", period);
    printf("\n%-14s%s\n%-14s%s\n", "categories", cats, "p2p",
           json_is_true(json_object_get(p, "p2p")) ? "yes" : "no");
}

static void print_programme(const json_t *p)
{
    static const char *const figures[] = {"funded", "disbursed", "spent", "returned", "expired"};
    int64_t scale = scale_in(p), n = 0;
    const json_t *st = json_object_get(p, "stats"), *v;
    char amount[80];
    const char *cat;
    printf("%-14s%s/%s (%s)\n", "programme", cli_jstr(p, "currency", "?"), cli_jstr(p, "id", "?"),
           cli_jstr(p, "state", "?"));
    printf("%-14s%s\n", "manager", cli_jstr(p, "manager", "-"));
    printf("%-14s%s\n", "budget", amount_of(p, "budget", scale, amount, sizeof amount));
    print_programme_rules(p, scale);
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        printf("%-14s%s\n", figures[i], amount_of(st, figures[i], scale, amount, sizeof amount));
    json_object_foreach((json_t *)json_object_get(st, "spent_by_category"), cat, v)
    {
        amount_text(amount, sizeof amount, json_integer_value(v), scale);
        printf("%-14s%s: %s\n", "", cat, amount);
    }
    (void)cli_jint(st, "beneficiaries", &n);
    printf("%-14s%" PRId64 "\n", "beneficiaries", n);
    printf("%-14s%s\n", "balance", amount_of(p, "balance", scale, amount, sizeof amount));
}

static void print_programmes(const json_t *reply)
{
    print_list(reply, "programmes", "no programmes", print_programme_line);
}

int cmd_programmes(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = programmes_usage, .help = programmes_help, .min_args = 1, .max_args = 1};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    if (!path_safe(q.args[0]) || strlen(q.args[0]) > 12)
        return cli_usage_error(programmes_usage, "CODE must be 1 to 12 letters or digits");
    char path[96];
    snprintf(path, sizeof path, "/v1/currencies/%s/programmes", q.args[0]);
    return show_reply(&q, path, print_programmes);
}

int cmd_programme(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = programme_usage, .help = programme_help, .min_args = 2, .max_args = 2};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    if (!path_safe(q.args[0]) || strlen(q.args[0]) > 12 || !path_safe(q.args[1]))
        return cli_usage_error(
            programme_usage, "CODE is 1 to 12 letters or digits, ID 1 to 16 of A-Z a-z 0-9 . _ -");
    char path[128];
    snprintf(path, sizeof path, "/v1/currencies/%s/programmes/%s", q.args[0], q.args[1]);
    return show_reply(&q, path, print_programme);
}

/* ---------------------------------------------------------------- rates */

static const char rates_usage[] = "usage: koinon rates [--node URL] [--json]\n";
static const char rates_help[] =
    "usage: koinon rates [--node URL] [--json]\n\n"
    "Lists the exchange rates: a minor unit of BASE is NUM/DEN minor units of QUOTE\n"
    "(euro cents for EUR) for block times from its start until its end; whether it\n"
    "is in force at the last block's time, and the height of the block that set it.\n\n" NODE_HELP;

static void print_rate(const json_t *r)
{
    int64_t num = 0, den = 0, t;
    char rate[48], from[64] = "-", until[64] = "-", height[32];
    (void)cli_jint(r, "num", &num);
    (void)cli_jint(r, "den", &den);
    snprintf(rate, sizeof rate, "%" PRId64 "/%" PRId64, num, den);
    if (cli_jint(r, "start_ms", &t)) format_time(from, sizeof from, t);
    if (cli_jint(r, "end_ms", &t)) format_time(until, sizeof until, t);
    printf("%-6s %-6s %-27s %-29s %-29s %8s  %s\n", cli_jstr(r, "base", "?"),
           cli_jstr(r, "quote", "?"), rate, from, until,
           scalar_text(r, "set_height", height, sizeof height),
           json_is_true(json_object_get(r, "in_force")) ? "yes" : "no");
}

static void print_rates(const json_t *reply)
{
    if (json_array_size(json_object_get(reply, "rates")))
        printf("%-6s %-6s %-27s %-29s %-29s %8s  %s\n", "base", "quote", "rate", "from", "until",
               "set at", "in force");
    print_list(reply, "rates", "no rates", print_rate);
}

int cmd_rates(int argc, char **argv)
{
    static const query_spec spec = {.usage = rates_usage, .help = rates_help};
    return show_resource(argc, argv, &spec, "/v1/rates", print_rates);
}

/* ---------------------------------------------------------------- evidence */

static const char evidence_usage[] = "usage: koinon evidence [--node URL] [--json]\n";
static const char evidence_help[] =
    "usage: koinon evidence [--node URL] [--json]\n\n"
    "Lists the equivocations recorded on the ledger: the validator that signed two\n"
    "conflicting votes, their height, round and type, the two blocks voted for (nil\n"
    "for a vote for no block), and the height of the block that recorded them.\n\n" NODE_HELP;

/* A block id shortened for the table; "nil" for a vote for no block. */
static const char *block_text(const json_t *e, const char *key, char *out, size_t cap)
{
    const char *id = cli_jstr(e, key, NULL);
    if (!id) return "nil";
    snprintf(out, cap, "%.16s", id);
    return out;
}

static void print_evidence_one(const json_t *e)
{
    char a[24], b[24], height[32], round[32], at[32];
    const char *name = cli_jstr(e, "validator", "");
    printf("%-12s %.16s  %8s %5s %-9s %-16s %-16s %8s\n", name[0] ? name : "?",
           cli_jstr(e, "validator_key", "?"), scalar_text(e, "height", height, sizeof height),
           scalar_text(e, "round", round, sizeof round), cli_jstr(e, "type", "?"),
           block_text(e, "block_a", a, sizeof a), block_text(e, "block_b", b, sizeof b),
           scalar_text(e, "recorded_height", at, sizeof at));
}

static void print_evidence(const json_t *reply)
{
    if (json_array_size(json_object_get(reply, "evidence")))
        printf("%-12s %-16s  %8s %5s %-9s %-16s %-16s %8s\n", "validator", "key", "height",
               "round", "type", "block a", "block b", "recorded");
    print_list(reply, "evidence", "no evidence recorded", print_evidence_one);
}

int cmd_evidence(int argc, char **argv)
{
    static const query_spec spec = {.usage = evidence_usage, .help = evidence_help};
    return show_resource(argc, argv, &spec, "/v1/evidence", print_evidence);
}

/* ---------------------------------------------------------------- cycles */

static const char cycles_usage[] = "usage: koinon cycles [--node URL] [--json]\n";
static const char cycles_help[] =
    "usage: koinon cycles [--node URL] [--json]\n\n"
    "Lists the settlement cycles from the first to the open one: state (open, closed,\n"
    "settled), exchanges counted, their value in euros, and how many of the payments\n"
    "that settle a closed cycle are recorded as made.\n\n" NODE_HELP;
static const char cycle_usage[] = "usage: koinon cycle N [--node URL] [--json]\n";
static const char cycle_help[] =
    "usage: koinon cycle N [--node URL] [--json]\n\n"
    "Shows settlement cycle N: when it opened and closed, its netting, the net\n"
    "position of each currency in euros (positive: owed to the city), and once\n"
    "closed the payments between cities that settle it, with their references.\n\n" NODE_HELP;

static bool cycle_open(const json_t *c)
{
    return strcmp(cli_jstr(c, "state", "open"), "open") == 0;
}

/* "1 of 3": obligations recorded as settled, of those a closed cycle has (a
 * count in the list of cycles, the list itself in the view of one). */
static const char *settled_text(const json_t *c, char *out, size_t cap)
{
    const json_t *obligations = json_object_get(c, "obligations");
    int64_t settled = 0, total = (int64_t)json_array_size(obligations);
    if (cycle_open(c)) return "-";
    (void)cli_jint(c, "settled_count", &settled);
    (void)cli_jint(c, "obligations", &total);
    snprintf(out, cap, "%" PRId64 " of %" PRId64, settled, total);
    return out;
}

static void print_cycle_line(const json_t *c)
{
    char number[32], exchanges[32], value[80], settled[48];
    printf("%6s  %-8s %9s %26s  %s\n", scalar_text(c, "number", number, sizeof number),
           cli_jstr(c, "state", "?"), scalar_text(c, "exchanges", exchanges, sizeof exchanges),
           amount_of(c, "value", UNIT_SCALE, value, sizeof value),
           settled_text(c, settled, sizeof settled));
}

/* Oldest first; the node lists them newest first. */
static void print_cycles(const json_t *reply)
{
    const json_t *list = json_object_get(reply, "cycles");
    printf("%6s  %-8s %9s %26s  %s\n", "cycle", "state", "exchanges", "value (EUR)", "settled");
    for (size_t i = json_array_size(list); i > 0; i--)
        print_cycle_line(json_array_get(list, i - 1));
}

int cmd_cycles(int argc, char **argv)
{
    static const query_spec spec = {.usage = cycles_usage, .help = cycles_help};
    return show_resource(argc, argv, &spec, "/v1/cycles", print_cycles);
}

static void print_cycle_positions(const json_t *positions)
{
    size_t i;
    const json_t *p;
    char amount[80];
    printf("%-12s%s\n", "positions", json_array_size(positions) ? "in EUR" : "none");
    json_array_foreach(positions, i, p)
        printf("  %-12s %-24s %26s\n", cli_jstr(p, "currency", "?"), cli_jstr(p, "city", "-"),
               amount_of(p, "position", UNIT_SCALE, amount, sizeof amount));
}

static void print_obligations(const json_t *obligations)
{
    size_t i;
    const json_t *o;
    char amount[80], height[32];
    printf("%-12s%s\n", "obligations", json_array_size(obligations) ? "in EUR" : "none");
    json_array_foreach(obligations, i, o)
    {
        printf("  %-12s -> %-12s %26s  ", cli_jstr(o, "debtor", "?"), cli_jstr(o, "creditor", "?"),
               amount_of(o, "amount", UNIT_SCALE, amount, sizeof amount));
        if (json_is_true(json_object_get(o, "settled")))
            printf("settled at height %s, ref %s\n",
                   scalar_text(o, "settled_height", height, sizeof height),
                   cli_jstr(o, "ref", "-"));
        else
            printf("not settled\n");
    }
}

static void print_cycle(const json_t *c)
{
    int64_t t;
    char number[32], when[64] = "-", value[80], settled[48];
    printf("%-12s%s (%s", "cycle", scalar_text(c, "number", number, sizeof number),
           cli_jstr(c, "state", "?"));
    if (json_is_string(json_object_get(c, "netting")))
        printf(", %s netting", cli_jstr(c, "netting", "?"));
    printf(")\n");
    if (cli_jint(c, "opened_ms", &t)) format_time(when, sizeof when, t);
    printf("%-12s%s\n", "opened", when);
    if (cli_jint(c, "closed_ms", &t)) {
        format_time(when, sizeof when, t);
        printf("%-12s%s at height %s\n", "closed", when,
               scalar_text(c, "closed_height", number, sizeof number));
    }
    print_scalar("exchanges", c, "exchanges");
    printf("%-12sEUR %s\n", "value", amount_of(c, "value", UNIT_SCALE, value, sizeof value));
    printf("%-12s%s\n", "settled", settled_text(c, settled, sizeof settled));
    print_cycle_positions(json_object_get(c, "positions"));
    if (!cycle_open(c)) print_obligations(json_object_get(c, "obligations"));
}

int cmd_cycle(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = cycle_usage, .help = cycle_help, .min_args = 1, .max_args = 1};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    uint64_t number;
    if (cli_parse_u64(q.args[0], 1, INT64_MAX, &number))
        return cli_usage_error(cycle_usage, "N must be a cycle number, 1 or more");
    char path[64];
    snprintf(path, sizeof path, "/v1/cycles/%" PRIu64, number);
    return show_reply(&q, path, print_cycle);
}

/* ---------------------------------------------------------------- report */

static const char report_usage[] =
    "usage: koinon report [CODE] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--csv] [--node URL]\n"
    "         [--json]\n";
static const char report_help[] =
    "usage: koinon report [CODE] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--csv] [--node URL]\n"
    "         [--json]\n\n"
    "Shows a currency's figures over a period of UTC days, or every currency's when\n"
    "CODE is left out: money issued, injected, spent and spent again locally,\n"
    "returned, redeemed, exchanged in and out, outstanding, spending by merchant\n"
    "category, the local multiplier (LM3), retention and velocity.\n\n"
    "  --from DAY   first day of the period (default: the genesis day)\n"
    "  --to DAY     the day after the period (default: the day after the last block's)\n"
    "  --csv        print the node's CSV (currency,from,to,figure,value) as is\n" NODE_HELP;

/* A date goes into the query string: the node checks it, this keeps it clean. */
static bool date_shaped(const char *s)
{
    return strlen(s) == 10 && strspn(s, "0123456789-") == 10;
}

/* One report: its integer figures as amounts (the *_bps ones are the ratios
 * below them), the spending by category, and the ratios. */
static void print_report(const json_t *rep)
{
    int64_t scale = scale_in(rep);
    const char *key;
    const json_t *v;
    char amount[80];
    printf("%-20s%s, %s to %s (excluded)\n", "report", cli_jstr(rep, "currency", "?"),
           cli_jstr(rep, "from", "?"), cli_jstr(rep, "to", "?"));
    json_object_foreach((json_t *)rep, key, v)
    {
        size_t n = strlen(key);
        bool bps = n > 4 && strcmp(key + n - 4, "_bps") == 0;
        bool meta = strcmp(key, "from_day") == 0 || strcmp(key, "to_day") == 0 ||
                    strcmp(key, "scale") == 0 || strcmp(key, "currency") == 0 ||
                    strcmp(key, "from") == 0 || strcmp(key, "to") == 0;
        if (meta || bps) continue;
        if (json_is_integer(v)) {
            amount_text(amount, sizeof amount, json_integer_value(v), scale);
            printf("%-20s%s\n", key, amount);
        } else if (json_is_string(v)) {
            printf("%-20s%s\n", key, json_string_value(v));
        } else if (json_is_object(v)) {
            const char *category;
            const json_t *spent;
            json_object_foreach((json_t *)v, category, spent)
            {
                amount_text(amount, sizeof amount, json_integer_value(spent), scale);
                printf("  at %-16s%s\n", category, amount);
            }
        }
    }
}

static void print_reports(const json_t *reply)
{
    const json_t *list = json_object_get(reply, "reports"), *rep;
    size_t i;
    if (!list) {
        print_report(reply);
        return;
    }
    if (json_array_size(list) == 0) printf("no currencies\n");
    json_array_foreach(list, i, rep)
    {
        if (i) printf("\n");
        print_report(rep);
    }
}

/* --csv: the body as it arrived, which is not JSON. */
static int print_csv(const char *node, const char *path)
{
    cli_reply r;
    if (cli_http(node, path, NULL, NULL, 0, CLI_REQUEST_TIMEOUT_MS, &r)) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    if (r.status >= 200 && r.status < 300)
        cli_print_body(&r);
    else
        rc = cli_reply_error(&r);
    cli_reply_free(&r);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    static const query_spec spec = {
        .usage = report_usage, .help = report_help, .max_args = 1, .with_period = true};
    query_args q = {0};
    int rc = parse_query(argc, argv, &spec, &q);
    if (rc != PARSED) return rc;
    const char *code = q.n_args ? q.args[0] : NULL;
    if (code && (!path_safe(code) || strlen(code) > 12))
        return cli_usage_error(report_usage, "CODE must be 1 to 12 letters or digits");
    if ((q.from && !date_shaped(q.from)) || (q.to && !date_shaped(q.to)))
        return cli_usage_error(report_usage, "--from and --to are dates YYYY-MM-DD");
    if (q.csv && q.json)
        return cli_usage_error(report_usage, "--csv and --json do not go together");
    char path[128];
    int len = snprintf(path, sizeof path, "/v1/reports%s%s?format=%s", code ? "/" : "",
                       code ? code : "", q.csv ? "csv" : "json");
    if (q.from) len += snprintf(path + len, sizeof path - (size_t)len, "&from=%s", q.from);
    if (q.to) snprintf(path + len, sizeof path - (size_t)len, "&to=%s", q.to);
    if (q.csv) return print_csv(q.node, path);
    return show_reply(&q, path, print_reports);
}
