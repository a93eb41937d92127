/* koinon: the command-line tool. This file holds the table of subcommands and
 * the helpers every subcommand uses to report errors and parse arguments. */
#include "tools/internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"keygen", "write a new Ed25519 key file and print its public key", cmd_keygen},
    {"pubkey", "print the public key of a key file", cmd_pubkey},
    {"init", "create genesis, keys and node configurations for a local devnet", cmd_init},
    {"devnet", "run a local devnet, one koinond per validator", cmd_devnet},
    /* Transactions (txcmd.c): one table there says what each one builds. */
    {"currency-create", "create a currency (consortium quorum)", cmd_transaction},
    {"grant", "grant a role in a currency", cmd_transaction},
    {"revoke", "revoke a role", cmd_transaction},
    {"authorise", "authorise an account (issuer admin)", cmd_transaction},
    {"freeze", "freeze an account (issuer admin)", cmd_transaction},
    {"unfreeze", "unfreeze an account (issuer admin)", cmd_transaction},
    {"close-account", "close the key's own empty account", cmd_transaction},
    {"issue", "issue new money into the treasury (issuer quorum)", cmd_transaction},
    {"retire", "take money out of the treasury and circulation (issuer quorum)", cmd_transaction},
    {"programme-create", "create an aid programme (programme manager)", cmd_transaction},
    {"fund", "fund a programme from the treasury (issuer quorum)", cmd_transaction},
    {"disburse", "pay a batch of beneficiaries from a programme", cmd_transaction},
    {"transfer", "pay from the key's account or its aid", cmd_transaction},
    {"redeem", "turn local money into euros paid off-ledger", cmd_transaction},
    {"reverse", "send (part of) a transfer back", cmd_transaction},
    {"clawback", "take money back (issuer quorum and an auditor)", cmd_transaction},
    {"expire", "return an ended programme's unspent aid", cmd_transaction},
    {"rate-set", "set the exchange rate of a pair of currencies (consortium quorum)",
     cmd_transaction},
    {"exchange", "pay into another currency through the clearing accounts", cmd_transaction},
    {"clearing-fund", "move money from the treasury to the clearing account (issuer quorum)",
     cmd_transaction},
    {"clearing-return", "move money from the clearing account to the treasury (issuer quorum)",
     cmd_transaction},
    {"cycle-close", "close the open settlement cycle (consortium quorum)", cmd_transaction},
    {"settle", "record the off-ledger payment of a cycle's obligation", cmd_transaction},
    /* Reads (query.c). */
    {"account", "show a key's accounts, balances and roles", cmd_account},
    {"history", "show a key's movements, newest first", cmd_history},
    {"tx", "show a transaction's status, result and operations", cmd_tx},
    {"block", "show a block by height, or the latest one", cmd_block},
    {"status", "show a node's view of the chain", cmd_status},
    {"currencies", "list the currencies and their supply", cmd_currencies},
    {"currency", "show a currency: rules, figures, admins and programmes", cmd_currency},
    {"programmes", "list a currency's aid programmes", cmd_programmes},
    {"programme", "show an aid programme and its figures", cmd_programme},
    {"rates", "list the exchange rates and whether each is in force", cmd_rates},
    {"cycles", "list the settlement cycles", cmd_cycles},
    {"cycle", "show a settlement cycle: positions and obligations", cmd_cycle},
    {"report", "show a currency's figures over a period (or every currency's)", cmd_report},
    {"evidence", "list the equivocations of validators recorded on the ledger", cmd_evidence},
    /* The benchmark (bench.c). */
    {"bench", "measure a network's committed transfers/s and latency beside this machine's ceiling",
     cmd_bench},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f)
{
    fprintf(f, "usage: koinon <command> [options]\n"
               "       koinon <command> --help\n"
               "       koinon --version\n\n"
               "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        printf("koinon %s\n", KOINON_VERSION);
        return CLI_EXIT_OK;
    }
    const command *cmd = find_command(first);
    if (!cmd) {
        fprintf(stderr, "koinon: unknown command or option '%s' (invalid_argument)\n", first);
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (kn_crypto_init() != 0) return cli_fail(KN_EINVAL, "cannot initialise libsodium");
    if (cli_http_init() != 0) return cli_fail(KN_EINVAL, "cannot initialise libcurl");
    return cmd->run(argc - 1, argv + 1);
}

/* ---------------------------------------------------------------- messages */

int cli_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("koinon: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%s)\n", kn_errname(err));
    va_end(ap);
    return CLI_EXIT_FAIL;
}

void cli_error_text(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("koinon: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%s)\n", code);
    va_end(ap);
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("koinon: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%s)\n%s", kn_errname(KN_EINVAL), usage);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_bad_option(int c, char **argv, const char *usage)
{
    /* getopt_long leaves the offending word just before optind. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    if (c == ':') return cli_usage_error(usage, "option '%s' needs a value", word);
    /* A long option with a value it does not take ("--wait=1") also lands here. */
    if (strchr(word, '='))
        return cli_usage_error(usage, "unknown option '%s', or one that takes no value", word);
    if (strncmp(word, "--", 2) != 0 && optopt)
        return cli_usage_error(usage, "unknown option '-%c'", optopt);
    return cli_usage_error(usage, "unknown option '%s'", word);
}

int cli_help(const char *text)
{
    fputs(text, stdout);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- arguments */

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return KN_EINVAL; /* no sign, no spaces */
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return KN_EINVAL;
    *out = v;
    return 0;
}

int cli_parse_pk(const char *hex, uint8_t pk[KN_PK_BYTES])
{
    return kn_unhex(pk, KN_PK_BYTES, hex, strlen(hex));
}

int cli_parse_hash(const char *hex, uint8_t id[KN_HASH_BYTES])
{
    return kn_unhex(id, KN_HASH_BYTES, hex, strlen(hex));
}

int cli_parse_node(const char *url, char *out)
{
    size_t scheme;
    if (strncmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return KN_EINVAL;
    size_t n = strlen(url);
    while (n > scheme && url[n - 1] == '/') n--;
    /* Paths are appended to it, so a query or fragment would swallow them. */
    if (n == scheme || n >= CLI_URL_MAX || strpbrk(url, "?# ")) return KN_EINVAL;
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

int cli_load_key(const char *path, kn_keypair *kp)
{
    int rc = kn_keyfile_read(path, kp);
    if (rc == KN_EIO) return cli_fail(rc, "cannot read key file %s", path);
    if (rc) return cli_fail(rc, "%s is not a valid key file", path);
    return 0;
}
