/* Read commands: `koinon account`, `tx`, `block`, `status`, `currencies`. Each
 * GETs one resource and prints a compact view of it, or with --json the node's
 * JSON as it arrived. */
#include "tools/internal.h"

#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PARSED (-1) /* parse_query: go on with the command */

typedef struct query_args {
    char node[CLI_URL_MAX];
    bool json;
    const char *key_path; /* account only */
    const char *arg;      /* the one positional argument, if any */
} query_args;

#define NODE_HELP                                              \
    "  --node URL   node API (default " CLI_NODE_DEFAULT ")\n" \
    "  --json       print the node's JSON reply as is\n"       \
    "  --help       show this help\n"

/* Parses --node, --json, --help (and --key when with_key) and at most one
 * positional argument, which is required when arg_required. */
static int parse_query(int argc, char **argv, const char *usage, const char *help, bool with_key,
                       bool arg_required, query_args *q)
{
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    snprintf(q->node, sizeof q->node, "%s", CLI_NODE_DEFAULT);
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': return cli_help(help);
        case 'j': q->json = true; break;
        case 'n':
            if (cli_parse_node(optarg, q->node))
                return cli_usage_error(usage, "--node must be an http:// or https:// URL");
            break;
        case 'k':
            if (!with_key) return cli_usage_error(usage, "unknown option '--key'");
            q->key_path = optarg;
            break;
        default: return cli_bad_option(c, argv, usage);
        }
    }
    if (optind < argc) q->arg = argv[optind++];
    if (optind != argc) return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (arg_required && !q->arg) return cli_usage_error(usage, "an argument is missing");
    if (!arg_required && !with_key && q->arg)
        return cli_usage_error(usage, "unexpected argument '%s'", q->arg);
    return PARSED;
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

/* ---------------------------------------------------------------- account */

static const char account_usage[] =
    "usage: koinon account PUBKEY | --key FILE [--node URL] [--json]\n";
static const char account_help[] =
    "usage: koinon account PUBKEY | --key FILE [--node URL] [--json]\n\n"
    "Shows the balances of an account, given as a hex public key or a key file.\n\n"
    "  --key FILE   take the account from a key file\n" NODE_HELP;

static void print_balances(const json_t *reply)
{
    const json_t *balances = json_object_get(reply, "balances");
    size_t i;
    const json_t *b;
    if (json_array_size(balances) == 0) printf("no balances\n");
    json_array_foreach(balances, i, b)
    {
        int64_t amount, scale;
        const char *code = cli_jstr(b, "currency", "?");
        if (!cli_jint(b, "balance", &amount)) {
            printf("%-5s ?\n", code);
            continue;
        }
        if (!cli_jint(b, "scale", &scale) || scale < 0 || scale > 18) {
            printf("%-5s %" PRId64 " minor\n", code, amount);
            continue;
        }
        char text[48];
        cli_format_amount(text, sizeof text, amount, (unsigned)scale);
        printf("%-5s %s  (%" PRId64 " minor)\n", code, text, amount);
    }
}

int cmd_account(int argc, char **argv)
{
    query_args q = {0};
    int rc = parse_query(argc, argv, account_usage, account_help, true, false, &q);
    if (rc != PARSED) return rc;
    if (!q.arg == !q.key_path) return cli_usage_error(account_usage, "give PUBKEY or --key FILE");

    uint8_t pk[KN_PK_BYTES];
    if (q.key_path) {
        kn_keypair kp;
        if (cli_load_key(q.key_path, &kp)) return CLI_EXIT_FAIL;
        memcpy(pk, kp.pk, KN_PK_BYTES);
        kn_keypair_wipe(&kp);
    } else if (cli_parse_pk(q.arg, pk)) {
        return cli_usage_error(account_usage, "PUBKEY must be 64 hex digits");
    }
    char hex[2 * KN_PK_BYTES + 1], path[128];
    kn_hex(hex, pk, KN_PK_BYTES);
    snprintf(path, sizeof path, "/v1/accounts/%s", hex);
    cli_reply r;
    if (cli_get_json(q.node, path, q.json, &r)) return CLI_EXIT_FAIL;
    if (!q.json) print_balances(r.json);
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- tx */

static const char tx_usage[] = "usage: koinon tx ID [--node URL] [--json]\n";
static const char tx_help[] =
    "usage: koinon tx ID [--node URL] [--json]\n\n"
    "Shows a transaction's status and, once committed, its result.\n\n" NODE_HELP;

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

int cmd_tx(int argc, char **argv)
{
    query_args q = {0};
    int rc = parse_query(argc, argv, tx_usage, tx_help, false, true, &q);
    if (rc != PARSED) return rc;
    uint8_t id[KN_HASH_BYTES];
    if (cli_parse_hash(q.arg, id)) return cli_usage_error(tx_usage, "ID must be 64 hex digits");

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
    query_args q = {0};
    int rc = parse_query(argc, argv, block_usage, block_help, false, true, &q);
    if (rc != PARSED) return rc;
    uint64_t height;
    char path[64];
    if (strcmp(q.arg, "latest") == 0)
        snprintf(path, sizeof path, "/v1/blocks/latest");
    else if (cli_parse_u64(q.arg, 0, INT64_MAX, &height) == 0)
        snprintf(path, sizeof path, "/v1/blocks/%" PRIu64, height);
    else
        return cli_usage_error(block_usage, "HEIGHT must be a block height or 'latest'");

    cli_reply r;
    if (cli_get_json(q.node, path, q.json, &r)) return CLI_EXIT_FAIL;
    if (!q.json) print_block(r.json);
    cli_reply_free(&r);
    return CLI_EXIT_OK;
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
    print_validators(json_object_get(s, "validators"));
}

/* Names in a JSON array joined with commas ("-" when empty). */
static void join_names(const json_t *list, char *out, size_t cap)
{
    size_t len = 0, i;
    const json_t *v;
    snprintf(out, cap, "-");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || len >= cap) continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "", json_string_value(v));
    }
}

/* The compact live view: consensus position, votes of the round, and one line
 * per validator. */
static void print_watch(const json_t *s)
{
    const json_t *cons = json_object_get(s, "consensus");
    const json_t *blocks = json_object_get(s, "recent_blocks");
    char a[32], b[32], c[32], prevotes[256], precommits[256];
    join_names(json_object_get(cons, "prevotes"), prevotes, sizeof prevotes);
    join_names(json_object_get(cons, "precommits"), precommits, sizeof precommits);
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
                                      "maximum supply, and issuer.\n\n" NODE_HELP;

static void print_currency(const json_t *c)
{
    int64_t scale = 0, supply, max_supply;
    char supply_text[48] = "?", max_text[48] = "?";
    if (!cli_jint(c, "scale", &scale) || scale < 0 || scale > 18) scale = 0;
    if (cli_jint(c, "supply", &supply))
        cli_format_amount(supply_text, sizeof supply_text, supply, (unsigned)scale);
    if (cli_jint(c, "max_supply", &max_supply))
        cli_format_amount(max_text, sizeof max_text, max_supply, (unsigned)scale);
    printf("%-5s %-24s %-10s supply %s of %s  issuer %s\n", cli_jstr(c, "code", "?"),
           cli_jstr(c, "name", "-"), cli_jstr(c, "city", "-"), supply_text, max_text,
           cli_jstr(c, "issuer", "?"));
}

int cmd_currencies(int argc, char **argv)
{
    query_args q = {0};
    int rc = parse_query(argc, argv, currencies_usage, currencies_help, false, false, &q);
    if (rc != PARSED) return rc;
    cli_reply r;
    if (cli_get_json(q.node, "/v1/currencies", q.json, &r)) return CLI_EXIT_FAIL;
    if (!q.json) {
        const json_t *list = json_object_get(r.json, "currencies");
        size_t i;
        const json_t *c;
        if (json_array_size(list) == 0) printf("no currencies\n");
        json_array_foreach(list, i, c) print_currency(c);
    }
    cli_reply_free(&r);
    return CLI_EXIT_OK;
}
