/* Transaction commands: `koinon issue` and `koinon transfer`. Each builds one
 * ledger_tx with one operation, signs it with the given key and POSTs the
 * canonical msgpack to the node. */
#include "node/ledger/ledger.h"
#include "tools/internal.h"

#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PARSED (-1) /* parse_args: go on with the command */
#define EXPIRY_BLOCKS_DEFAULT 100
#define EXPIRY_BLOCKS_MAX 1000000

typedef struct tx_args {
    uint8_t kind; /* enum ledger_op_kind */
    const char *key_path;
    const char *currency;
    const char *ref;
    const char *chain_id; /* NULL: ask the node */
    char node[CLI_URL_MAX];
    uint8_t to[KN_PK_BYTES];
    bool to_given;
    uint64_t amount_minor;
    uint64_t nonce;
    bool nonce_given;
    uint64_t expiry_blocks;
    bool wait;
    bool json;
} tx_args;

static const char issue_usage[] =
    "usage: koinon issue --key FILE --currency CODE --to PUBKEY --amount MINOR [--ref TEXT]\n"
    "                    [--node URL] [--wait] [--nonce N] [--expiry-blocks N]\n"
    "                    [--chain-id ID] [--json]\n";
static const char transfer_usage[] =
    "usage: koinon transfer --key FILE --currency CODE --to PUBKEY --amount MINOR\n"
    "                       [--node URL] [--wait] [--nonce N] [--expiry-blocks N]\n"
    "                       [--chain-id ID] [--json]\n";
static const char common_help[] =
    "  --node URL          node API (default " CLI_NODE_DEFAULT ")\n"
    "  --wait              wait until the transaction is committed and show its result\n"
    "  --nonce N           transaction nonce (default: random)\n"
    "  --expiry-blocks N   the transaction expires N blocks after the current height\n"
    "                      (default 100)\n"
    "  --chain-id ID       chain id (default: the node's)\n"
    "  --json              print the node's JSON reply as is\n"
    "  --help              show this help\n\n"
    "Exit status: 0 submitted or committed ok, 1 error, 2 usage, 3 committed but\n"
    "rejected by the ledger rules.\n";
static const char issue_intro[] =
    "\nIssues new units of a currency to an account. The key must be the currency's\n"
    "issuer key.\n\n"
    "  --key FILE          the issuer's key file\n"
    "  --currency CODE     currency code, e.g. SVQ\n"
    "  --to PUBKEY         receiving account (hex public key)\n"
    "  --amount MINOR      amount in minor units (cents for scale 2)\n"
    "  --ref TEXT          reserve attestation reference (at most 64 bytes)\n";
static const char transfer_intro[] =
    "\nTransfers units of a currency from the key's account to another account.\n\n"
    "  --key FILE          the payer's key file\n"
    "  --currency CODE     currency code, e.g. SVQ\n"
    "  --to PUBKEY         receiving account (hex public key)\n"
    "  --amount MINOR      amount in minor units (cents for scale 2)\n";

static int show_help(uint8_t kind)
{
    bool issue = kind == LEDGER_OP_ISSUE;
    fputs(issue ? issue_usage : transfer_usage, stdout);
    fputs(issue ? issue_intro : transfer_intro, stdout);
    fputs(common_help, stdout);
    return CLI_EXIT_OK;
}

static bool valid_code(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= LEDGER_CODE_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == n;
}

/* Checks what the options cannot: required ones present, sizes within limits. */
static int check_args(const tx_args *a, const char *usage)
{
    if (!a->key_path) return cli_usage_error(usage, "--key FILE is required");
    if (!a->currency) return cli_usage_error(usage, "--currency CODE is required");
    if (!a->to_given) return cli_usage_error(usage, "--to PUBKEY is required");
    if (!a->amount_minor) return cli_usage_error(usage, "--amount MINOR is required");
    if (!valid_code(a->currency))
        return cli_usage_error(usage, "--currency must be 1 to %d letters or digits",
                               LEDGER_CODE_MAX);
    if (a->ref && strlen(a->ref) > LEDGER_REF_MAX)
        return cli_usage_error(usage, "--ref must be at most %d bytes", LEDGER_REF_MAX);
    if (a->chain_id && (!a->chain_id[0] || strlen(a->chain_id) > KN_CHAIN_ID_MAX))
        return cli_usage_error(usage, "--chain-id must be 1 to %d bytes", KN_CHAIN_ID_MAX);
    return PARSED;
}

static int parse_value(int c, const char *value, tx_args *a, const char *usage)
{
    switch (c) {
    case 'k': a->key_path = value; return PARSED;
    case 'c': a->currency = value; return PARSED;
    case 'i': a->chain_id = value; return PARSED;
    case 't':
        if (cli_parse_pk(value, a->to)) return cli_usage_error(usage, "--to must be 64 hex digits");
        a->to_given = true;
        return PARSED;
    case 'a':
        if (cli_parse_u64(value, 1, INT64_MAX, &a->amount_minor))
            return cli_usage_error(usage, "--amount must be a positive integer of minor units");
        return PARSED;
    case 'N':
        if (cli_parse_u64(value, 0, UINT64_MAX, &a->nonce))
            return cli_usage_error(usage, "--nonce must be an unsigned integer");
        a->nonce_given = true;
        return PARSED;
    case 'e':
        if (cli_parse_u64(value, 1, EXPIRY_BLOCKS_MAX, &a->expiry_blocks))
            return cli_usage_error(usage, "--expiry-blocks must be 1 to %d", EXPIRY_BLOCKS_MAX);
        return PARSED;
    case 'n':
        if (cli_parse_node(value, a->node))
            return cli_usage_error(usage, "--node must be an http:// or https:// URL");
        return PARSED;
    default: KN_REQUIRE(!"option without a case");
    }
}

static int parse_args(int argc, char **argv, tx_args *a)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"currency", required_argument, NULL, 'c'},
                                         {"to", required_argument, NULL, 't'},
                                         {"amount", required_argument, NULL, 'a'},
                                         {"ref", required_argument, NULL, 'r'},
                                         {"node", required_argument, NULL, 'n'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"nonce", required_argument, NULL, 'N'},
                                         {"expiry-blocks", required_argument, NULL, 'e'},
                                         {"chain-id", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool issue = a->kind == LEDGER_OP_ISSUE;
    const char *usage = issue ? issue_usage : transfer_usage;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': return show_help(a->kind);
        case 'w': a->wait = true; break;
        case 'j': a->json = true; break;
        case 'r':
            if (!issue) return cli_usage_error(usage, "unknown option '--ref'");
            a->ref = optarg;
            break;
        case '?':
        case ':': return cli_bad_option(c, argv, usage);
        default: /* every option that takes a value */
            if ((rc = parse_value(c, optarg, a, usage)) != PARSED) return rc;
            break;
        }
    }
    if (optind != argc) return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    return check_args(a, usage);
}

/* The current height and, unless given, the chain id from GET /v1/status. */
static int fetch_chain(const tx_args *a, char chain_id[KN_CHAIN_ID_MAX + 1], uint64_t *height)
{
    cli_reply r;
    if (cli_get_json(a->node, "/v1/status", false, &r)) return CLI_EXIT_FAIL;
    int64_t h;
    const char *id = a->chain_id ? a->chain_id : cli_jstr(r.json, "chain_id", "");
    int rc = 0;
    if (!cli_jint(r.json, "height", &h) || h < 0)
        rc = cli_fail(KN_EDECODE, "node status at %s has no height", a->node);
    else if (!id[0] || strlen(id) > KN_CHAIN_ID_MAX)
        rc = cli_fail(KN_EDECODE, "node status at %s has no usable chain_id", a->node);
    else {
        snprintf(chain_id, KN_CHAIN_ID_MAX + 1, "%s", id);
        *height = (uint64_t)h;
    }
    cli_reply_free(&r);
    return rc;
}

static int build_tx(const tx_args *a, const kn_keypair *kp, ledger_tx *tx, kn_buf *out)
{
    char chain_id[KN_CHAIN_ID_MAX + 1] = "";
    uint64_t height = 0;
    if (fetch_chain(a, chain_id, &height)) return CLI_EXIT_FAIL;

    memset(tx, 0, sizeof *tx);
    memcpy(tx->chain_id, chain_id, sizeof chain_id);
    tx->nonce = a->nonce;
    if (!a->nonce_given) randombytes_buf(&tx->nonce, sizeof tx->nonce);
    tx->expiry_height = height + a->expiry_blocks;
    tx->n_ops = 1;
    ledger_op *op = &tx->ops[0];
    op->kind = a->kind;
    snprintf(op->currency, sizeof op->currency, "%s", a->currency);
    memcpy(op->from, kp->pk, KN_PK_BYTES);
    memcpy(op->to, a->to, KN_PK_BYTES);
    op->amount = a->amount_minor;
    if (a->ref) snprintf(op->ref, sizeof op->ref, "%s", a->ref);

    int rc = ledger_tx_sign(tx, kp);
    if (rc) return cli_fail(rc, "cannot sign the transaction");
    ledger_tx_encode(tx, out);
    if (out->len > LEDGER_TX_BYTES_MAX)
        return cli_fail(KN_ETOOBIG, "transaction is %zu bytes, over the %d byte limit", out->len,
                        LEDGER_TX_BYTES_MAX);
    return 0;
}

static int report_committed(const tx_args *a, const json_t *reply, const char *id)
{
    int64_t height = -1;
    (void)cli_jint(reply, "height", &height);
    const json_t *result = json_object_get(reply, "result");
    const char *code = cli_jstr(result, "code", "?");
    bool ok = strcmp(code, "ok") == 0;
    if (!a->json && ok) printf("committed %s at height %" PRId64 ": ok\n", id, height);
    if (!a->json && !ok) {
        const char *message = cli_jstr(result, "message", kn_strerror(kn_errcode(code)));
        printf("committed %s at height %" PRId64 ": rejected: %s (%s)\n", id, height, message,
               code);
    }
    return ok ? CLI_EXIT_OK : CLI_EXIT_REJECTED;
}

static int report_reply(const tx_args *a, const cli_reply *r, const char *local_id)
{
    if (a->json) cli_print_body(r);
    if (r->status < 200 || r->status >= 300 || !json_is_object(r->json)) return cli_reply_error(r);
    const char *id = cli_jstr(r->json, "id", local_id);
    /* Both sides hash the same canonical body; a difference is a bug worth seeing. */
    if (strcmp(id, local_id) != 0)
        fprintf(stderr, "koinon: warning: node reports id %s for transaction %s\n", id, local_id);
    const char *status = cli_jstr(r->json, "status", "");
    if (strcmp(status, "committed") == 0) return report_committed(a, r->json, id);
    if (a->wait)
        return cli_fail(KN_ETIMEOUT, "transaction %s is %s, not committed yet", id,
                        status[0] ? status : "of unknown status");
    if (!a->json) printf("submitted %s\n", id);
    return CLI_EXIT_OK;
}

static int run_tx_command(int argc, char **argv, uint8_t kind)
{
    tx_args a = {.kind = kind, .expiry_blocks = EXPIRY_BLOCKS_DEFAULT};
    snprintf(a.node, sizeof a.node, "%s", CLI_NODE_DEFAULT);
    int rc = parse_args(argc, argv, &a);
    if (rc != PARSED) return rc;

    kn_keypair kp;
    if (cli_load_key(a.key_path, &kp)) return CLI_EXIT_FAIL;
    if (memcmp(kp.pk, a.to, KN_PK_BYTES) == 0) {
        kn_keypair_wipe(&kp);
        return cli_fail(KN_ESELFPAY, "--to is the key's own account");
    }
    static ledger_tx tx; /* about 2.5 KB of fixed arrays */
    kn_buf body = {0};
    rc = build_tx(&a, &kp, &tx, &body);
    kn_keypair_wipe(&kp);
    if (rc) goto out;

    char id[2 * KN_HASH_BYTES + 1];
    kn_hex(id, tx.id, KN_HASH_BYTES);
    cli_reply r;
    const char *path = a.wait ? "/v1/txs?wait=commit" : "/v1/txs";
    long timeout_ms = a.wait ? CLI_WAIT_TIMEOUT_MS : CLI_REQUEST_TIMEOUT_MS;
    rc = CLI_EXIT_FAIL;
    int err = cli_http(a.node, path, "application/msgpack", body.data, body.len, timeout_ms, &r);
    if (err == 0) {
        rc = report_reply(&a, &r, id);
        cli_reply_free(&r);
    } else if (err == KN_ETIMEOUT) {
        /* The node may have taken it before the answer was lost. */
        fprintf(stderr, "koinon: transaction %s may still commit; see `koinon tx %s`\n", id, id);
    }
out:
    kn_buf_free(&body);
    return rc;
}

int cmd_issue(int argc, char **argv)
{
    return run_tx_command(argc, argv, LEDGER_OP_ISSUE);
}

int cmd_transfer(int argc, char **argv)
{
    return run_tx_command(argc, argv, LEDGER_OP_TRANSFER);
}
