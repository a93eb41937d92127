/* Key files and devnet layout: `koinon keygen`, `koinon pubkey`, `koinon init`. */
#include "tools/internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- keygen, pubkey */

/* Writes a fresh key file and returns its public key; reports failures. */
static int write_new_key(const char *path, uint8_t pk[KN_PK_BYTES])
{
    kn_keypair kp;
    kn_keypair_generate(&kp);
    errno = 0;
    int rc = kn_keyfile_write(path, &kp);
    int saved = errno;
    memcpy(pk, kp.pk, KN_PK_BYTES);
    kn_keypair_wipe(&kp);
    if (rc == 0) return 0;
    if (saved == EEXIST) return cli_fail(rc, "%s already exists, refusing to overwrite it", path);
    return cli_fail(rc, "cannot write key file %s: %s", path,
                    saved ? strerror(saved) : kn_strerror(rc));
}

static const char keygen_usage[] = "usage: koinon keygen --out FILE\n";
static const char keygen_help[] =
    "usage: koinon keygen --out FILE\n\n"
    "Writes a new Ed25519 key file (mode 0600) and prints its public key in hex.\n"
    "Refuses to overwrite an existing file.\n\n"
    "  --out FILE   where to write the key file\n"
    "  --help       show this help\n";

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': return cli_help(keygen_help);
        default: return cli_bad_option(c, argv, keygen_usage);
        }
    }
    if (optind != argc)
        return cli_usage_error(keygen_usage, "unexpected argument '%s'", argv[optind]);
    if (!out) return cli_usage_error(keygen_usage, "--out FILE is required");

    uint8_t pk[KN_PK_BYTES];
    if (write_new_key(out, pk)) return CLI_EXIT_FAIL;
    char hex[2 * KN_PK_BYTES + 1];
    kn_hex(hex, pk, KN_PK_BYTES);
    printf("%s\n", hex);
    return CLI_EXIT_OK;
}

static const char pubkey_usage[] = "usage: koinon pubkey --key FILE\n";
static const char pubkey_help[] = "usage: koinon pubkey --key FILE\n\n"
                                  "Prints the public key (hex) of a key file.\n\n"
                                  "  --key FILE   the key file\n"
                                  "  --help       show this help\n";

int cmd_pubkey(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *key = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 'h': return cli_help(pubkey_help);
        default: return cli_bad_option(c, argv, pubkey_usage);
        }
    }
    if (optind != argc)
        return cli_usage_error(pubkey_usage, "unexpected argument '%s'", argv[optind]);
    if (!key) return cli_usage_error(pubkey_usage, "--key FILE is required");

    kn_keypair kp;
    if (cli_load_key(key, &kp)) return CLI_EXIT_FAIL;
    char hex[2 * KN_PK_BYTES + 1];
    kn_hex(hex, kp.pk, KN_PK_BYTES);
    kn_keypair_wipe(&kp);
    printf("%s\n", hex);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- devnet layout */

typedef struct demo_city {
    const char *name; /* node directory and validator name */
    const char *city;
    const char *code; /* currency code */
    const char *currency;
} demo_city;

static const demo_city demo_cities[CLI_VALIDATORS_MAX] = {
    {"seville", "Seville", "SVQ", "Seville Giralda"},
    {"athens", "Athens", "ATH", "Athens Drachmi"},
    {"lisbon", "Lisbon", "LIS", "Lisbon Tostao"},
    {"turin", "Turin", "TRN", "Turin Soldo"},
    {"tunis", "Tunis", "TUN", "Tunis Dinar Local"},
    {"amman", "Amman", "AMM", "Amman Qirsh"},
    {"bethlehem", "Bethlehem", "BTH", "Bethlehem Shekel Local"},
};

#define DEMO_SCALE 2
#define DEMO_MAX_SUPPLY 100000000000LL /* one billion units in cents */
#define DEMO_POWER 10
/* Redemption fees of the demo currencies: 1 %, or 3 % on money received less
 * than 30 days before; freezable and with clawback, as a city would start. */
#define DEMO_FEE_BPS 100
#define DEMO_EARLY_FEE_BPS 300
#define DEMO_EARLY_DAYS 30

/* The keys init makes, kept as public keys only. The programme manager and
 * auditor keys are not in the genesis (an issuer admin grants their roles), so
 * only their files are made. */
typedef struct devnet_keys {
    uint8_t admin[KN_PK_BYTES];
    uint8_t issuer[CLI_VALIDATORS_MAX][KN_PK_BYTES];
    uint8_t node[CLI_VALIDATORS_MAX][KN_PK_BYTES];
} devnet_keys;

static int path_join(char *out, const char *dir, const char *name)
{
    if (snprintf(out, CLI_PATH_MAX, "%s/%s", dir, name) < CLI_PATH_MAX) return 0;
    return cli_fail(KN_EINVAL, "path %s/%s is too long", dir, name);
}

/* Creates a directory; one that exists already is fine. */
static int make_dir(const char *path, mode_t mode)
{
    struct stat st;
    if (mkdir(path, mode) == 0) return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return cli_fail(KN_EIO, "cannot create directory %s: %s", path, strerror(errno));
}

/* Writes JSON through a temporary file and a rename, so a reader never sees half
 * a file. Takes the reference to obj. */
static int write_json(const char *path, json_t *obj)
{
    char tmp[CLI_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!obj) return cli_fail(KN_ENOMEM, "cannot build %s", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && json_dumpf(obj, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF &&
              fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (f && fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    json_decref(obj);
    if (ok && rename(tmp, path) == 0) return 0;
    if (ok) saved = errno;
    unlink(tmp);
    return cli_fail(KN_EIO, "cannot write %s: %s", path, strerror(saved));
}

static json_t *hex_string(const uint8_t *p, size_t n)
{
    char hex[2 * KN_HASH_BYTES + 1];
    KN_REQUIRE(n <= KN_HASH_BYTES);
    kn_hex(hex, p, n);
    return json_string(hex);
}

static json_t *address(uint32_t port)
{
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", port);
    return json_string(text);
}

/* node.json: paths are relative to the file's own directory. */
static json_t *node_config(const cli_init_params *p, uint32_t i)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, "
                     "s:i, s:i}",
                     "name", demo_cities[i].name, "genesis", "../genesis.json", "node_key",
                     "node_key.json", "data_dir", "data", "peer_listen",
                     address(p->base_port + CLI_PEER_PORT_OFFSET + i), "api_listen",
                     address(p->base_port + i), "log_level", "info", "log_format", "text",
                     "mempool_txs_max", 50000, "block_txs_max", 5000, "heartbeat_ms", 1000,
                     "timeout_propose_ms", 3000, "timeout_prevote_ms", 1000, "timeout_precommit_ms",
                     1000, "timeout_delta_ms", 500, "map_size_mb", 4096);
}

/* A demo city's currency, its one issuer admin signing alone. */
static json_t *currency_json(const demo_city *c, const uint8_t issuer[KN_PK_BYTES])
{
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:[s,s], s:[o], s:i, s:i, s:i, s:i, s:i, s:i}",
                     "code", c->code, "name", c->currency, "city", c->city, "scale", DEMO_SCALE,
                     "max_supply", (json_int_t)DEMO_MAX_SUPPLY, "flags", "freezable", "clawback",
                     "issuer_admins", hex_string(issuer, KN_PK_BYTES), "issuer_threshold", 1,
                     "fee_bps", DEMO_FEE_BPS, "early_fee_bps", DEMO_EARLY_FEE_BPS, "early_days",
                     DEMO_EARLY_DAYS, "demurrage_bps", 0, "demurrage_period_ms", 0);
}

static json_t *genesis_json(const cli_init_params *p, const devnet_keys *k)
{
    json_t *validators = json_array(), *currencies = json_array();
    for (uint32_t i = 0; i < p->validators; i++) {
        const demo_city *c = &demo_cities[i];
        json_array_append_new(validators,
                              json_pack("{s:s, s:s, s:o, s:i, s:o, s:o}", "name", c->name, "city",
                                        c->city, "public_key", hex_string(k->node[i], KN_PK_BYTES),
                                        "power", DEMO_POWER, "peer_address",
                                        address(p->base_port + CLI_PEER_PORT_OFFSET + i),
                                        "api_address", address(p->base_port + i)));
        json_array_append_new(currencies, currency_json(c, k->issuer[i]));
    }
    json_t *admins = json_array();
    json_array_append_new(admins, hex_string(k->admin, KN_PK_BYTES));
    return json_pack("{s:s, s:I, s:o, s:o, s:i, s:o}", "chain_id", p->chain_id, "genesis_time_ms",
                     (json_int_t)kn_now_ms(), "validators", validators, "admins", admins,
                     "admin_threshold", 1, "currencies", currencies);
}

/* Writes keys/<role>-<code in lower case>.json for one city; returns its
 * public key. */
static int write_city_key(const char *keys, const char *role, const demo_city *c,
                          uint8_t pk[KN_PK_BYTES])
{
    char file[32], path[CLI_PATH_MAX];
    snprintf(file, sizeof file, "%s-%c%c%c.json", role, c->code[0] | 0x20, c->code[1] | 0x20,
             c->code[2] | 0x20);
    if (path_join(path, keys, file) || write_new_key(path, pk)) return CLI_EXIT_FAIL;
    return 0;
}

/* The admin key, then per city its people's keys (issuer, manager, auditor),
 * node directory, node key and node.json. */
static int make_keys_and_nodes(const cli_init_params *p, devnet_keys *k)
{
    char keys[CLI_PATH_MAX], path[CLI_PATH_MAX], node_dir[CLI_PATH_MAX];
    uint8_t unused[KN_PK_BYTES];
    if (path_join(keys, p->dir, "keys") || make_dir(keys, 0700)) return CLI_EXIT_FAIL;
    if (path_join(path, keys, "admin.json") || write_new_key(path, k->admin)) return CLI_EXIT_FAIL;
    for (uint32_t i = 0; i < p->validators; i++) {
        const demo_city *c = &demo_cities[i];
        if (write_city_key(keys, "issuer", c, k->issuer[i]) ||
            write_city_key(keys, "manager", c, unused) ||
            write_city_key(keys, "auditor", c, unused))
            return CLI_EXIT_FAIL;
        if (path_join(node_dir, p->dir, c->name) || make_dir(node_dir, 0700)) return CLI_EXIT_FAIL;
        if (path_join(path, node_dir, "node_key.json") || write_new_key(path, k->node[i]))
            return CLI_EXIT_FAIL;
        if (path_join(path, node_dir, "node.json") || write_json(path, node_config(p, i)))
            return CLI_EXIT_FAIL;
    }
    return 0;
}

int cli_init_devnet(const cli_init_params *p)
{
    KN_REQUIRE(p->validators >= 1 && p->validators <= CLI_VALIDATORS_MAX);
    char genesis[CLI_PATH_MAX];
    struct stat st;
    if (path_join(genesis, p->dir, "genesis.json")) return CLI_EXIT_FAIL;
    if (stat(genesis, &st) == 0)
        return cli_fail(KN_EIO, "%s already exists, refusing to overwrite it", genesis);
    if (make_dir(p->dir, 0755)) return CLI_EXIT_FAIL;

    devnet_keys k;
    if (make_keys_and_nodes(p, &k)) return CLI_EXIT_FAIL;
    /* genesis.json last: its presence means the directory is complete. */
    return write_json(genesis, genesis_json(p, &k));
}

static bool valid_chain_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > KN_CHAIN_ID_MAX) return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int cli_init_check(const cli_init_params *p, const char *usage)
{
    if (!valid_chain_id(p->chain_id))
        return cli_usage_error(usage, "--chain-id must be 1 to %d letters, digits, '.', '_' or '-'",
                               KN_CHAIN_ID_MAX);
    if (p->base_port + CLI_PEER_PORT_OFFSET + p->validators - 1 > 65535)
        return cli_usage_error(usage, "--base-port %u leaves no room for %u peer ports",
                               p->base_port, p->validators);
    return 0;
}

static const char init_usage[] =
    "usage: koinon init --out DIR [--validators N] [--chain-id ID] [--base-port P]\n";
static const char init_help[] =
    "usage: koinon init --out DIR [--validators N] [--chain-id ID] [--base-port P]\n\n"
    "Creates a devnet directory: DIR/genesis.json, DIR/keys/admin.json (the\n"
    "consortium admin), and for each validator DIR/<city>/node.json and\n"
    "DIR/<city>/node_key.json. Each demo city runs one validator and issues one\n"
    "currency (freezable, with clawback, redemption fee 1 %, 3 % within 30 days),\n"
    "with the keys of its people in DIR/keys/ (<code> in lower case, e.g. svq):\n"
    "  issuer-<code>.json    the currency's issuer admin (in the genesis)\n"
    "  manager-<code>.json   a programme manager to grant (koinon grant)\n"
    "  auditor-<code>.json   an auditor to grant, for clawbacks\n"
    "Refuses to touch a DIR that already has a genesis.json.\n\n"
    "  --out DIR         the directory to create or fill\n"
    "  --validators N    number of validators, 1 to 7 (default 4)\n"
    "  --chain-id ID     chain id (default koinon-devnet)\n"
    "  --base-port P     API port of the first validator (default 8700); validator i\n"
    "                    serves the API on P+i and talks to peers on P+100+i\n"
    "  --help            show this help\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},      {"validators", required_argument, NULL, 'n'},
        {"chain-id", required_argument, NULL, 'c'}, {"base-port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},           {0}};
    cli_init_params p = {NULL, CLI_VALIDATORS_DEFAULT, CLI_CHAIN_ID_DEFAULT, CLI_BASE_PORT_DEFAULT};
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, ":o:n:c:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': p.dir = optarg; break;
        case 'c': p.chain_id = optarg; break;
        case 'n':
            if (cli_parse_u64(optarg, 1, CLI_VALIDATORS_MAX, &v))
                return cli_usage_error(init_usage, "--validators must be 1 to %d",
                                       CLI_VALIDATORS_MAX);
            p.validators = (uint32_t)v;
            break;
        case 'p':
            if (cli_parse_u64(optarg, 1, 65535, &v))
                return cli_usage_error(init_usage, "--base-port must be a port number");
            p.base_port = (uint32_t)v;
            break;
        case 'h': return cli_help(init_help);
        default: return cli_bad_option(c, argv, init_usage);
        }
    }
    if (optind != argc)
        return cli_usage_error(init_usage, "unexpected argument '%s'", argv[optind]);
    if (!p.dir) return cli_usage_error(init_usage, "--out DIR is required");
    if (cli_init_check(&p, init_usage)) return CLI_EXIT_USAGE;
    if (cli_init_devnet(&p)) return CLI_EXIT_FAIL;
    printf("created %s: chain %s, %u validators, genesis %s/genesis.json\n", p.dir, p.chain_id,
           p.validators, p.dir);
    return CLI_EXIT_OK;
}
