/* Configuration: node.json and the genesis file, read with jansson. Every field
 * has a default except the ones that identify the node and its chain. */
#include "node/node.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_ERR(path, what)                                                     \
    (KN_ERROR("config", "invalid configuration", "file=%s problem=\"%s\"", path, what), \
     KN_ECONFIG)

static int copy_str(char *dst, size_t cap, json_t *obj, const char *key, const char *dflt)
{
    json_t *v = json_object_get(obj, key);
    const char *s = v ? json_string_value(v) : dflt;
    if (!s || strlen(s) >= cap) return KN_ECONFIG;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t dflt, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return KN_ECONFIG;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_hex32(json_t *obj, const char *key, uint8_t out[32])
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? kn_unhex(out, 32, s, strlen(s)) : KN_ECONFIG;
}

/* "host:port" into its parts. */
static int split_address(const char *addr, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || (size_t)(colon - addr) >= host_cap || colon == addr) return KN_ECONFIG;
    unsigned long p = strtoul(colon + 1, NULL, 10);
    if (p == 0 || p > 65535) return KN_ECONFIG;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* Resolves rel against the directory of base into out. */
static int resolve_path(const char *base, const char *rel, char *out, size_t cap)
{
    if (rel[0] == '/') return snprintf(out, cap, "%s", rel) < (int)cap ? 0 : KN_ECONFIG;
    char tmp[NODE_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", base);
    return snprintf(out, cap, "%s/%s", dirname(tmp), rel) < (int)cap ? 0 : KN_ECONFIG;
}

static int load_validator(json_t *jv, node_config *cfg, uint32_t i)
{
    node_validator_info *info = &cfg->validators[i];
    uint64_t power;
    if (copy_str(info->name, sizeof info->name, jv, "name", NULL) ||
        copy_str(info->city, sizeof info->city, jv, "city", "") ||
        get_hex32(jv, "public_key", cfg->valset.v[i].pk) ||
        get_uint(jv, "power", 1, UINT32_MAX, &power) || power == 0 ||
        split_address(json_string_value(json_object_get(jv, "peer_address")), info->peer_host,
                      sizeof info->peer_host, &info->peer_port) ||
        copy_str(info->api_address, sizeof info->api_address, jv, "api_address", ""))
        return KN_ECONFIG;
    cfg->valset.v[i].power = power;
    return 0;
}

/* A list of hex public keys into keys[]: min_n to max_n entries, no key
 * twice. */
static int load_keys(json_t *list, uint32_t min_n, uint32_t max_n, uint8_t (*keys)[KN_PK_BYTES],
                     uint32_t *n)
{
    if (!json_is_array(list) || json_array_size(list) < min_n || json_array_size(list) > max_n)
        return KN_ECONFIG;
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *s = json_string_value(item);
        if (!s || kn_unhex(keys[i], KN_PK_BYTES, s, strlen(s))) return KN_ECONFIG;
        for (size_t j = 0; j < i; j++)
            if (memcmp(keys[j], keys[i], KN_PK_BYTES) == 0) return KN_ECONFIG;
    }
    *n = (uint32_t)json_array_size(list);
    return 0;
}

/* "flags": a list of flag names (ledger_flag_parse), each at most once. */
static const char *load_flags(json_t *jc, uint32_t *flags)
{
    json_t *list = json_object_get(jc, "flags");
    *flags = 0;
    if (!list) return NULL;
    if (!json_is_array(list)) return "flags must be a list of flag names";
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *s = json_string_value(item);
        uint32_t bit = s ? ledger_flag_parse(s) : 0;
        if (bit == 0)
            return "flags has an unknown flag (auth_required, freezable, clawback, p2p, "
                   "holder_redeem, demurrage, mutual_credit)";
        if (*flags & bit) return "flags lists a flag twice";
        *flags |= bit;
    }
    return NULL;
}

/* The issuer admins: "issuer_admins" (1..8 keys), or the older single "issuer". */
static const char *load_issuers(json_t *jc, ledger_currency *c)
{
    json_t *admins = json_object_get(jc, "issuer_admins");
    json_t *single = json_object_get(jc, "issuer");
    if (admins && single) return "give issuer_admins or issuer, not both";
    if (single) {
        const char *s = json_string_value(single);
        if (!s || kn_unhex(c->issuer_admins[0], KN_PK_BYTES, s, strlen(s)))
            return "issuer must be a public key of 64 hex digits";
        c->n_issuer_admins = 1;
        return NULL;
    }
    if (!admins) return "issuer_admins missing";
    if (load_keys(admins, 1, LEDGER_SIGS_MAX, c->issuer_admins, &c->n_issuer_admins))
        return "issuer_admins must list 1 to 8 distinct public keys (64 hex digits)";
    return NULL;
}

/* The fee and demurrage policy; every field defaults to 0. */
static const char *load_policy(json_t *jc, ledger_currency *c)
{
    uint64_t fee, early_fee, early_days, dem_bps;
    if (get_uint(jc, "fee_bps", 0, LEDGER_BPS, &fee) ||
        get_uint(jc, "early_fee_bps", 0, LEDGER_BPS, &early_fee))
        return "fee_bps and early_fee_bps must be 0 to 10000";
    if (get_uint(jc, "early_days", 0, UINT32_MAX, &early_days))
        return "early_days must be a non-negative integer";
    if (get_uint(jc, "demurrage_bps", 0, LEDGER_BPS, &dem_bps))
        return "demurrage_bps must be 0 to 10000";
    if (get_uint(jc, "demurrage_period_ms", 0, INT64_MAX, &c->demurrage_period_ms))
        return "demurrage_period_ms must be a non-negative integer";
    if ((c->flags & LEDGER_CUR_DEMURRAGE) &&
        c->demurrage_period_ms < LEDGER_DEMURRAGE_PERIOD_MIN_MS)
        return "a demurrage currency needs demurrage_period_ms of at least 60000";
    c->fee_bps = (uint32_t)fee;
    c->early_fee_bps = (uint32_t)early_fee;
    c->early_days = (uint32_t)early_days;
    c->demurrage_bps = (uint32_t)dem_bps;
    return NULL;
}

/* One currency of the genesis. Returns a problem text or NULL. */
static const char *load_currency(json_t *jc, ledger_currency *c)
{
    uint64_t scale, threshold;
    const char *problem;
    if (!json_is_object(jc)) return "not an object";
    if (copy_str(c->code, sizeof c->code, jc, "code", NULL) || c->code[0] == '\0')
        return "code missing or longer than 12";
    if (copy_str(c->name, sizeof c->name, jc, "name", "") ||
        copy_str(c->city, sizeof c->city, jc, "city", ""))
        return "name and city must be strings of at most 63 bytes";
    if (get_uint(jc, "scale", 2, 18, &scale)) return "scale must be 0 to 18";
    if (get_uint(jc, "max_supply", 0, INT64_MAX, &c->max_supply) || c->max_supply == 0)
        return "max_supply must be a positive integer";
    c->scale = (uint8_t)scale;
    if ((problem = load_flags(jc, &c->flags)) || (problem = load_issuers(jc, c)) ||
        (problem = load_policy(jc, c)))
        return problem;
    if (get_uint(jc, "issuer_threshold", 1, c->n_issuer_admins, &threshold) || threshold == 0)
        return "issuer_threshold must be 1 to the number of issuer admins";
    c->issuer_threshold = (uint32_t)threshold;
    return NULL;
}

static int load_currencies(json_t *curs, const char *path, ledger_genesis *g)
{
    size_t i;
    json_t *item;
    g->n_currencies = (uint32_t)json_array_size(curs);
    json_array_foreach(curs, i, item)
    {
        ledger_currency *c = &g->currencies[i];
        const char *problem = load_currency(item, c);
        for (size_t j = 0; !problem && j < i; j++)
            if (strcmp(g->currencies[j].code, c->code) == 0) problem = "code used twice";
        if (!problem) continue;
        char what[192];
        snprintf(what, sizeof what, "currency %zu (%s): %s", i, c->code[0] ? c->code : "?",
                 problem);
        return CONFIG_ERR(path, what);
    }
    return 0;
}

/* The consortium admins and their threshold (0: a majority). */
static int load_admins(json_t *root, const char *path, ledger_genesis *g)
{
    json_t *admins = json_object_get(root, "admins");
    uint64_t threshold;
    if (admins && load_keys(admins, 0, LEDGER_ADMINS_MAX, g->admins, &g->n_admins))
        return CONFIG_ERR(path, "admins must list at most 16 distinct public keys (64 hex digits)");
    if (get_uint(root, "admin_threshold", 0, g->n_admins, &threshold))
        return CONFIG_ERR(path, "admin_threshold must be 0 (a majority) to the number of admins");
    g->admin_threshold = (uint32_t)threshold;
    return 0;
}

static int load_genesis_lists(json_t *root, const char *path, node_config *cfg)
{
    json_t *vals = json_object_get(root, "validators");
    json_t *curs = json_object_get(root, "currencies");
    if (!json_is_array(vals) || json_array_size(vals) == 0 ||
        json_array_size(vals) > CONS_VALIDATORS_MAX)
        return CONFIG_ERR(path, "validators must be a list of 1 to 64 entries");
    if (!json_is_array(curs) || json_array_size(curs) > LEDGER_CURRENCIES_MAX)
        return CONFIG_ERR(path, "currencies must be a list of at most 64 entries");

    size_t i;
    json_t *item;
    cfg->valset.n = (uint32_t)json_array_size(vals);
    json_array_foreach(vals, i, item)
    {
        if (load_validator(item, cfg, (uint32_t)i)) return CONFIG_ERR(path, "bad validator entry");
    }
    if (load_currencies(curs, path, &cfg->genesis) || load_admins(root, path, &cfg->genesis))
        return KN_ECONFIG;
    if (cons_valset_init(&cfg->valset)) return CONFIG_ERR(path, "bad validator powers");
    /* The ledger keeps the validator set too: the evidence rule checks votes. */
    cfg->genesis.n_validators = cfg->valset.n;
    memcpy(cfg->genesis.validators, cfg->valset.v, sizeof cfg->valset.v[0] * cfg->valset.n);
    return 0;
}

int node_genesis_load(const char *path, node_config *cfg)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        KN_ERROR("config", "cannot read genesis", "file=%s line=%d problem=\"%s\"", path,
                 jerr.line, jerr.text);
        return KN_ECONFIG;
    }
    int rc = 0;
    ledger_genesis *g = &cfg->genesis;
    memset(g, 0, sizeof *g);
    memset(&cfg->valset, 0, sizeof cfg->valset);
    if (copy_str(g->chain_id, sizeof g->chain_id, root, "chain_id", NULL) || !g->chain_id[0])
        rc = CONFIG_ERR(path, "chain_id missing or longer than 64");
    else if (get_uint(root, "genesis_time_ms", 0, INT64_MAX, &g->time_ms))
        rc = CONFIG_ERR(path, "genesis_time_ms must be a non-negative integer");
    else
        rc = load_genesis_lists(root, path, cfg);
    json_decref(root);
    return rc;
}

/* Numeric settings: name, default, maximum, and where the value goes. */
typedef struct limit_field {
    const char *name;
    uint64_t dflt, min, max;
    uint32_t *u32;
    uint64_t *u64;
} limit_field;

static int load_limits(json_t *root, node_config *cfg)
{
    uint64_t map_size_mb = 0, body_max = 0, batch_body_max = 0;
    const limit_field fields[] = {
        {"mempool_txs_max", 50000, 1, 1000000, &cfg->mempool_txs_max, NULL},
        {"block_txs_max", 5000, 1, LEDGER_BLOCK_TXS_MAX, &cfg->block_txs_max, NULL},
        {"heartbeat_ms", 1000, 10, 600000, &cfg->heartbeat_ms, NULL},
        {"drift_ms", 5000, 0, 600000, &cfg->drift_ms, NULL},
        {"wait_commit_ms", 30000, 1, 600000, &cfg->wait_commit_ms, NULL},
        {"timeout_propose_ms", 3000, 1, 600000, &cfg->timeouts.timeout_propose_ms, NULL},
        {"timeout_prevote_ms", 1000, 1, 600000, &cfg->timeouts.timeout_prevote_ms, NULL},
        {"timeout_precommit_ms", 1000, 1, 600000, &cfg->timeouts.timeout_precommit_ms, NULL},
        {"timeout_delta_ms", 500, 0, 600000, &cfg->timeouts.timeout_delta_ms, NULL},
        {"map_size_mb", 4096, 16, 1u << 20, NULL, &map_size_mb},
        {"api_body_max_bytes", 1u << 20, 1024, 64u << 20, NULL, &body_max},
        {"api_batch_body_max_bytes", 8u << 20, 1024, 64u << 20, NULL, &batch_body_max},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const limit_field *f = &fields[i];
        uint64_t v;
        if (get_uint(root, f->name, f->dflt, f->max, &v) || v < f->min) {
            KN_ERROR("config", "setting out of range", "name=%s min=%llu max=%llu", f->name,
                     (unsigned long long)f->min, (unsigned long long)f->max);
            return KN_ECONFIG;
        }
        if (f->u32) *f->u32 = (uint32_t)v;
        else *f->u64 = v;
    }
    if (cfg->heartbeat_ms >= cfg->timeouts.timeout_propose_ms) {
        /* Validators would give up on a proposer that is only waiting for its
         * heartbeat, and every empty block would cost a round change. */
        KN_ERROR("config", "heartbeat_ms must be below timeout_propose_ms", "heartbeat_ms=%u timeout_propose_ms=%u",
                 cfg->heartbeat_ms, cfg->timeouts.timeout_propose_ms);
        return KN_ECONFIG;
    }
    cfg->map_size_bytes = map_size_mb << 20;
    cfg->api_body_max_bytes = (size_t)body_max;
    cfg->api_batch_body_max_bytes = (size_t)batch_body_max;
    return 0;
}

static int load_logging(json_t *root, node_config *cfg, const char *path)
{
    char level[16], format[16], file[NODE_PATH_MAX];
    if (copy_str(level, sizeof level, root, "log_level", "info") ||
        copy_str(format, sizeof format, root, "log_format", "text") ||
        copy_str(file, sizeof file, root, "log_file", "") ||
        copy_str(cfg->log_modules, sizeof cfg->log_modules, root, "log_modules", ""))
        return KN_ECONFIG;
    if (kn_log_level_parse(level, strlen(level), &cfg->log_level)) return KN_ECONFIG;
    if (strcmp(format, "text") && strcmp(format, "json")) return KN_ECONFIG;
    cfg->log_json = strcmp(format, "json") == 0;
    cfg->log_file[0] = '\0';
    return file[0] ? resolve_path(path, file, cfg->log_file, sizeof cfg->log_file) : 0;
}

static int load_node_fields(json_t *root, const char *path, node_config *cfg)
{
    char rel[NODE_PATH_MAX], genesis_path[NODE_PATH_MAX], key_path[NODE_PATH_MAX];
    if (copy_str(cfg->name, sizeof cfg->name, root, "name", NULL))
        return CONFIG_ERR(path, "name missing");
    if (copy_str(rel, sizeof rel, root, "data_dir", "data") ||
        resolve_path(path, rel, cfg->data_dir, sizeof cfg->data_dir))
        return CONFIG_ERR(path, "bad data_dir");
    if (copy_str(rel, sizeof rel, root, "genesis", "../genesis.json") ||
        resolve_path(path, rel, genesis_path, sizeof genesis_path))
        return CONFIG_ERR(path, "bad genesis path");
    if (copy_str(rel, sizeof rel, root, "node_key", "node_key.json") ||
        resolve_path(path, rel, key_path, sizeof key_path))
        return CONFIG_ERR(path, "bad node_key path");
    if (split_address(json_string_value(json_object_get(root, "peer_listen")), cfg->peer_host,
                      sizeof cfg->peer_host, &cfg->peer_port))
        return CONFIG_ERR(path, "peer_listen must be host:port");
    if (split_address(json_string_value(json_object_get(root, "api_listen")), cfg->api_host,
                      sizeof cfg->api_host, &cfg->api_port))
        return CONFIG_ERR(path, "api_listen must be host:port");
    if (load_limits(root, cfg)) return CONFIG_ERR(path, "a limit or timeout is out of range");
    if (load_logging(root, cfg, path)) return CONFIG_ERR(path, "bad log_level, log_format or log_file");
    if (kn_keyfile_read(key_path, &cfg->key)) return CONFIG_ERR(key_path, "cannot read node key");
    return node_genesis_load(genesis_path, cfg);
}

int node_config_load(const char *path, node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->config_path, sizeof cfg->config_path, "%s", path);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        KN_ERROR("config", "cannot read configuration", "file=%s line=%d problem=\"%s\"", path,
                 jerr.line, jerr.text);
        return KN_ECONFIG;
    }
    int rc = load_node_fields(root, path, cfg);
    json_decref(root);
    if (rc) return rc;
    cfg->self = cons_valset_find(&cfg->valset, cfg->key.pk);
    if (cfg->self == CONS_NO_VALIDATOR) return CONFIG_ERR(path, "node key is not a validator in the genesis");
    return 0;
}
