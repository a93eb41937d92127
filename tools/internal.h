/*
 * tools/internal.h: what the files of the `koinon` command-line tool share.
 * Never included outside tools/.
 *
 * Every subcommand is a function `int cmd_x(int argc, char **argv)` that gets the
 * arguments from its own name on (argv[0] is "issue", ...), parses them with
 * getopt_long and returns the process exit status:
 *
 *   0  success            2  usage error (unknown flag, bad or missing argument)
 *   1  operating error    3  a transaction was committed but rejected by the rules
 *
 * Errors go to stderr as one line, `koinon: <message> (<code>)`, where code is an
 * api name from the common error table (or the one the node sent). Output meant
 * for scripts (`--json`) is the node's JSON exactly as it arrived.
 *
 * Talking to a node goes through cli_http() (one libcurl request, a bounded reply)
 * and cli_get_json() (a GET whose error replies are already reported).
 */
#ifndef KOINON_TOOLS_INTERNAL_H
#define KOINON_TOOLS_INTERNAL_H

#include "common/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef KOINON_VERSION
#define KOINON_VERSION "0.1.0"
#endif

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_REJECTED = 3 };

#define CLI_NODE_DEFAULT "http://127.0.0.1:8700"
#define CLI_URL_MAX 512
#define CLI_PATH_MAX 4096
/* A reply bigger than this is refused: a block of LEDGER_BLOCK_TXS_MAX ids in hex
 * is about 1.4 MB, so this leaves ample room. */
#define CLI_REPLY_BYTES_MAX (16u << 20)
#define CLI_CONNECT_TIMEOUT_MS 5000
#define CLI_REQUEST_TIMEOUT_MS 15000
/* The node holds a ?wait=commit request for up to its wait_commit_ms (30 s by
 * default); the client waits a little longer so the node's answer wins. */
#define CLI_WAIT_TIMEOUT_MS 45000

#define CLI_VALIDATORS_MAX 7
#define CLI_VALIDATORS_DEFAULT 4
#define CLI_CHAIN_ID_DEFAULT "koinon-devnet"
#define CLI_BASE_PORT_DEFAULT 8700
/* Peer ports sit this far above API ports. */
#define CLI_PEER_PORT_OFFSET 100

/* ---------------------------------------------------------------- commands */

int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_devnet(int argc, char **argv);
/* Every transaction command (issue, transfer, grant, ...): argv[0] names it. */
int cmd_transaction(int argc, char **argv);
int cmd_account(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_tx(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_currencies(int argc, char **argv);
int cmd_currency(int argc, char **argv);
int cmd_programmes(int argc, char **argv);
int cmd_programme(int argc, char **argv);
int cmd_rates(int argc, char **argv);
int cmd_cycles(int argc, char **argv);
int cmd_evidence(int argc, char **argv);
int cmd_cycle(int argc, char **argv);
int cmd_report(int argc, char **argv);
/* The benchmark (bench.c). */
int cmd_bench(int argc, char **argv);

/* ---------------------------------------------------------------- messages, arguments */

/* Prints `koinon: <message> (<api name of err>)` and returns CLI_EXIT_FAIL. */
int cli_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints `koinon: <message> (<code>)` with a code given as text (a node's answer). */
void cli_error_text(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints `koinon: <message> (invalid_argument)` and the usage text to stderr;
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports what getopt_long returned for a bad option (':' missing argument, '?'
 * unknown option); returns CLI_EXIT_USAGE. Needs an optstring that starts with ':'. */
int cli_bad_option(int c, char **argv, const char *usage);
/* Prints help text to stdout; returns CLI_EXIT_OK. */
int cli_help(const char *text);

/* Parsers for arguments: 0 or KN_EINVAL; nothing is written on failure. */
KN_MUST int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
KN_MUST int cli_parse_pk(const char *hex, uint8_t pk[KN_PK_BYTES]);
KN_MUST int cli_parse_hash(const char *hex, uint8_t id[KN_HASH_BYTES]);
/* "http://host:port" without a trailing slash into out[CLI_URL_MAX]. */
KN_MUST int cli_parse_node(const char *url, char *out);

/* Reads a key file, reporting failures; returns 0 or CLI_EXIT_FAIL. The caller
 * wipes kp with kn_keypair_wipe. */
int cli_load_key(const char *path, kn_keypair *kp);

/* ---------------------------------------------------------------- devnet layout (keys.c) */

typedef struct cli_init_params {
    const char *dir;
    uint32_t validators; /* 1..CLI_VALIDATORS_MAX */
    const char *chain_id;
    uint32_t base_port;
} cli_init_params;

/* Checks the chain id and that every port fits; reports a usage error and
 * returns CLI_EXIT_USAGE, or 0. */
int cli_init_check(const cli_init_params *p, const char *usage);
/* Creates a devnet directory: genesis.json, admin and issuer keys, and one
 * directory per validator with node.json and node_key.json. Refuses (KN_EIO,
 * reported) when dir/genesis.json exists. Returns 0 or CLI_EXIT_FAIL. */
int cli_init_devnet(const cli_init_params *p);

/* ---------------------------------------------------------------- HTTP (http.c) */

/* Call once at start-up, before any request. */
KN_MUST int cli_http_init(void);

typedef struct cli_reply {
    long status;        /* HTTP status */
    long retry_after_s; /* from Retry-After, -1 when absent */
    kn_buf body;        /* raw body as received */
    json_t *json;       /* the body parsed, NULL when it is not JSON */
} cli_reply;

/* One request to node (as from cli_parse_node) + path. body NULL makes a GET,
 * otherwise a POST of n bytes with content_type. On 0, out holds the reply
 * whatever its status and the caller frees it with cli_reply_free. When no reply
 * arrives the failure is reported (`cannot reach node at URL: ...`) and
 * KN_ECLOSED, KN_ETIMEOUT or KN_ETOOBIG is returned with out empty. */
KN_MUST int cli_http(const char *node, const char *path, const char *content_type, const void *body,
                     size_t n, long timeout_ms, cli_reply *out);
void cli_reply_free(cli_reply *r);

/* Reports a reply that is not a 2xx JSON object: the node's error envelope
 * (`koinon: <message> (<code>)`), "node busy, retry" for 503, or the bare HTTP
 * status. Returns CLI_EXIT_FAIL. */
int cli_reply_error(const cli_reply *r);

/* GET node + path expecting a JSON object. With raw, the body is also copied to
 * stdout as it arrived, error replies included. Returns 0 with *r holding the
 * reply (free it), or CLI_EXIT_FAIL after reporting (r is then already freed). */
int cli_get_json(const char *node, const char *path, bool raw, cli_reply *r);

/* Copies a reply body to stdout, adding a final newline if it lacks one. */
void cli_print_body(const cli_reply *r);

/* Reading JSON leniently for display: missing or mistyped members give the
 * fallback (strings) or false (numbers). */
const char *cli_jstr(const json_t *obj, const char *key, const char *fallback);
bool cli_jint(const json_t *obj, const char *key, int64_t *out);

/* Writes amount_minor as a decimal with scale places ("-12.34") into out. */
void cli_format_amount(char *out, size_t cap, int64_t amount_minor, unsigned scale);

#endif
