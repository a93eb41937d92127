/* The daemon's own pieces: the signing guard, the bounded mempool, the choice
 * of a catch-up peer, and the configuration loader's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/internal.h"

/* ---------------------------------------------------------------- signing guard */

static node__signed at(uint64_t h, uint32_t r, uint8_t step, uint8_t block)
{
    node__signed s = {.height = h, .round = r, .step = step};
    memset(s.block_id, block, sizeof s.block_id);
    return s;
}

static void guard_allows_only_forward_or_identical(void **state)
{
    node__signed last = at(5, 2, 2, 0xaa);
    assert_true(node__may_sign(&last, &(node__signed){0}) == false);
    node__signed same = at(5, 2, 2, 0xaa);
    assert_true(node__may_sign(&last, &same));
    node__signed conflicting = at(5, 2, 2, 0xbb);
    assert_false(node__may_sign(&last, &conflicting));
    node__signed nil_vote = at(5, 2, 2, 0);
    nil_vote.nil = true;
    assert_false(node__may_sign(&last, &nil_vote));
    node__signed earlier_step = at(5, 2, 1, 0xaa);
    assert_false(node__may_sign(&last, &earlier_step));
    node__signed earlier_round = at(5, 1, 3, 0xaa);
    assert_false(node__may_sign(&last, &earlier_round));
    node__signed earlier_height = at(4, 9, 3, 0xaa);
    assert_false(node__may_sign(&last, &earlier_height));
    node__signed next_step = at(5, 2, 3, 0xbb);
    assert_true(node__may_sign(&last, &next_step));
    node__signed next_round = at(5, 3, 1, 0xcc);
    assert_true(node__may_sign(&last, &next_round));
    node__signed next_height = at(6, 0, 1, 0xdd);
    assert_true(node__may_sign(&last, &next_height));
}

/* ---------------------------------------------------------------- mempool */

static void id_of(uint8_t id[KN_HASH_BYTES], uint32_t i)
{
    kn_hash(id, "test", &i, sizeof i);
}

static void mempool_is_bounded_and_ordered(void **state)
{
    node__mempool mp;
    node__mempool_init(&mp, 3);
    uint8_t id[4][KN_HASH_BYTES];
    const uint8_t bytes[] = {1, 2, 3};
    for (uint32_t i = 0; i < 4; i++) id_of(id[i], i);
    for (uint32_t i = 0; i < 3; i++) assert_non_null(node__mempool_add(&mp, id[i], bytes, 3, 10));
    assert_null(node__mempool_add(&mp, id[3], bytes, 3, 10)); /* full */
    assert_int_equal(mp.count, 3);
    assert_null(node__mempool_find(&mp, id[3]));
    assert_int_equal(mp.bytes, 9);

    node__mempool_remove(&mp, node__mempool_find(&mp, id[1]));
    assert_null(node__mempool_find(&mp, id[1]));
    assert_non_null(node__mempool_add(&mp, id[3], bytes, 3, 10));
    /* Arrival order survives a removal from the middle. */
    assert_memory_equal(mp.head->id, id[0], KN_HASH_BYTES);
    assert_memory_equal(mp.head->next->id, id[2], KN_HASH_BYTES);
    assert_memory_equal(mp.tail->id, id[3], KN_HASH_BYTES);
    node__mempool_free(&mp);
}

/* ---------------------------------------------------------------- catch-up peer */

static void catchup_pick_stays_with_a_good_peer_and_takes_turns(void **state)
{
    static node_config cfg; /* large: not on the stack */
    static node n;
    memset(&cfg, 0, sizeof cfg);
    memset(&n, 0, sizeof n);
    cfg.valset.n = 4;
    cfg.self = 3;
    n.cfg = &cfg;
    n.chain.height = 10;
    for (uint32_t i = 0; i < 4; i++) n.peer[i] = (node__peer_state){.height = 50, .up = true};

    /* After a good batch the same peer again; otherwise the next one. */
    n.catchup_peer = 1;
    assert_int_equal(node__catchup_pick(&n, true), 1);
    assert_int_equal(node__catchup_pick(&n, false), 2);
    /* Turns go round every peer ahead, never to ourselves. */
    for (uint32_t round = 0, want = 0; round < 6; round++, want = (want + 1) % 3) {
        n.catchup_peer = (want + 2) % 3;
        assert_int_equal(node__catchup_pick(&n, false), want);
    }
    /* A peer that served nothing usable is believed at our height: passed
     * over even when it was the one to stay with. */
    n.catchup_peer = 2;
    n.peer[2].height = n.chain.height;
    assert_int_equal(node__catchup_pick(&n, true), 0);
    /* A peer whose link is down is not asked, however far ahead it says it is. */
    n.peer[0].up = false;
    n.peer[0].height = 1000;
    assert_int_equal(node__catchup_pick(&n, true), 1);
    /* Nobody ahead but ourselves: nobody to ask. */
    n.peer[1].height = n.chain.height;
    assert_int_equal(node__catchup_pick(&n, false), CONS_NO_VALIDATOR);
    assert_int_equal(node__catchup_pick(&n, true), CONS_NO_VALIDATOR);
}

/* ---------------------------------------------------------------- config */

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *node_json, node_config *cfg)
{
    write_file("node.json", node_json);
    char path[256];
    snprintf(path, sizeof path, "%s/node.json", dir);
    return node_config_load(path, cfg);
}

static int setup_config(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/koinon-config-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    kn_keypair val, other;
    kn_keypair_generate(&val);
    kn_keypair_generate(&other);
    char path[256], pk[65], other_pk[65], genesis[1024];
    snprintf(path, sizeof path, "%s/key.json", dir);
    if (kn_keyfile_write(path, &val)) return -1;
    snprintf(path, sizeof path, "%s/other.json", dir);
    if (kn_keyfile_write(path, &other)) return -1;
    kn_hex(pk, val.pk, 32);
    kn_hex(other_pk, other.pk, 32);
    snprintf(genesis, sizeof genesis,
             "{\"chain_id\":\"t\",\"genesis_time_ms\":1,\"validators\":[{\"name\":\"a\","
             "\"public_key\":\"%s\",\"power\":10,\"peer_address\":\"127.0.0.1:9\"}],"
             "\"admins\":[\"%s\"],\"currencies\":[{\"code\":\"SVQ\",\"max_supply\":100,"
             "\"issuer\":\"%s\"}]}",
             pk, other_pk, other_pk);
    write_file("genesis.json", genesis);
    return 0;
}

static int teardown_config(void **state)
{
    const char *names[] = {"key.json", "other.json", "genesis.json", "node.json"};
    char path[256];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

#define NODE_BASE "\"name\":\"a\",\"genesis\":\"genesis.json\",\"peer_listen\":\"127.0.0.1:9\","

static void config_defaults(void **state)
{
    static node_config cfg;
    assert_int_equal(load("{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\"}", &cfg), 0);
    assert_int_equal(cfg.self, 0);
    assert_int_equal(cfg.mempool_txs_max, 50000);
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_int_equal(cfg.api_port, 8);
    assert_string_equal(cfg.genesis.chain_id, "t");
    assert_int_equal(cfg.genesis.n_currencies, 1);
    assert_true(cfg.genesis.currencies[0].max_supply == 100);
    assert_int_equal(cfg.genesis.currencies[0].scale, 2);
}

static void config_refusals(void **state)
{
    static node_config cfg;
    static const char *const bad[] = {
        "{not json",
        /* no name */
        "{\"genesis\":\"genesis.json\",\"peer_listen\":\"127.0.0.1:9\",\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\"}",
        /* a port out of range, then a missing port */
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:70000\"}",
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1\"}",
        /* a limit out of range, a wrong type */
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\",\"mempool_txs_max\":0}",
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\",\"heartbeat_ms\":\"1s\"}",
        /* a heartbeat that would outlast the propose timeout */
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\",\"heartbeat_ms\":3000,\"timeout_propose_ms\":3000}",
        /* an unknown log level */
        "{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\",\"log_level\":\"loud\"}",
        /* a key that is not a validator, a key file that does not exist */
        "{" NODE_BASE "\"node_key\":\"other.json\",\"api_listen\":\"127.0.0.1:8\"}",
        "{" NODE_BASE "\"node_key\":\"missing.json\",\"api_listen\":\"127.0.0.1:8\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(bad[i], &cfg);
        if (rc != KN_ECONFIG) fail_msg("config %zu: expected bad_config, got %s", i, kn_errname(rc));
    }
}

static void config_defaults_issuer_key(void **state)
{
    static node_config cfg;
    assert_int_equal(load("{" NODE_BASE "\"node_key\":\"key.json\",\"api_listen\":\"127.0.0.1:8\"}", &cfg), 0);
    const ledger_currency *c = &cfg.genesis.currencies[0];
    /* The older single "issuer" is a one-admin list with threshold 1. */
    assert_int_equal(c->n_issuer_admins, 1);
    assert_int_equal(c->issuer_threshold, 1);
    assert_int_equal(c->flags, 0);
    assert_int_equal(c->fee_bps + c->early_fee_bps + c->early_days + c->demurrage_bps, 0);
    assert_true(c->demurrage_period_ms == 0);
    assert_int_equal(cfg.genesis.n_admins, 1);
    assert_int_equal(cfg.genesis.admin_threshold, 0);
}

/* A genesis with the validator of setup_config, the admins JSON list `admins`,
 * extra top-level fields `top` and the currencies JSON list `currencies`. */
static int load_genesis(const char *admins, const char *top, const char *currencies,
                        node_config *cfg)
{
    char text[4096], path[256];
    snprintf(text, sizeof text,
             "{\"chain_id\":\"t\",\"validators\":[{\"name\":\"a\",\"public_key\":\"%064d\","
             "\"power\":10,\"peer_address\":\"127.0.0.1:9\"}],\"admins\":%s,%s"
             "\"currencies\":%s}",
             1, admins, top, currencies);
    write_file("genesis-case.json", text);
    snprintf(path, sizeof path, "%s/genesis-case.json", dir);
    int rc = node_genesis_load(path, cfg);
    unlink(path);
    return rc;
}

#define KEY_A "\"" "aa00000000000000000000000000000000000000000000000000000000000000" "\""
#define KEY_B "\"" "bb00000000000000000000000000000000000000000000000000000000000000" "\""
#define KEY_C "\"" "cc00000000000000000000000000000000000000000000000000000000000000" "\""

static void genesis_full_currency(void **state)
{
    static node_config cfg;
    assert_int_equal(
        load_genesis("[" KEY_A "," KEY_B "," KEY_C "]", "\"admin_threshold\":2,",
                     "[{\"code\":\"SVQ\",\"name\":\"Giralda\",\"city\":\"Seville\",\"scale\":0,"
                     "\"max_supply\":1000,\"flags\":[\"freezable\",\"clawback\",\"demurrage\"],"
                     "\"issuer_admins\":[" KEY_A "," KEY_B "],\"issuer_threshold\":2,"
                     "\"fee_bps\":100,\"early_fee_bps\":300,\"early_days\":30,"
                     "\"demurrage_bps\":50,\"demurrage_period_ms\":86400000},"
                     "{\"code\":\"ATH\",\"scale\":18,\"max_supply\":5,\"issuer_admins\":[" KEY_C "]}]",
                     &cfg),
        0);
    assert_int_equal(cfg.genesis.n_admins, 3);
    assert_int_equal(cfg.genesis.admin_threshold, 2);
    assert_int_equal(cfg.genesis.n_currencies, 2);
    const ledger_currency *c = &cfg.genesis.currencies[0];
    assert_string_equal(c->name, "Giralda");
    assert_string_equal(c->city, "Seville");
    assert_int_equal(c->scale, 0);
    assert_int_equal(c->flags, LEDGER_CUR_FREEZABLE | LEDGER_CUR_CLAWBACK | LEDGER_CUR_DEMURRAGE);
    assert_int_equal(c->n_issuer_admins, 2);
    assert_int_equal(c->issuer_admins[0][0], 0xaa);
    assert_int_equal(c->issuer_admins[1][0], 0xbb);
    assert_int_equal(c->issuer_threshold, 2);
    assert_int_equal(c->fee_bps, 100);
    assert_int_equal(c->early_fee_bps, 300);
    assert_int_equal(c->early_days, 30);
    assert_int_equal(c->demurrage_bps, 50);
    assert_true(c->demurrage_period_ms == 86400000);
    c = &cfg.genesis.currencies[1];
    assert_int_equal(c->scale, 18);
    assert_int_equal(c->flags, 0);
    assert_int_equal(c->n_issuer_admins, 1);
    assert_int_equal(c->issuer_admins[0][0], 0xcc);
    assert_int_equal(c->issuer_threshold, 1);
}

static void genesis_refusals(void **state)
{
    static node_config cfg;
    static const char *const bad[] = {
        "{\"chain_id\":\"\",\"validators\":[]}",
        "{\"chain_id\":\"t\",\"validators\":[]}",
        "{\"chain_id\":\"t\",\"validators\":[{\"name\":\"a\",\"public_key\":\"00\",\"peer_address\":\"127.0.0.1:9\"}],\"currencies\":[]}",
        "{\"chain_id\":\"t\",\"validators\":[{\"name\":\"a\",\"public_key\":\"" 
        "0000000000000000000000000000000000000000000000000000000000000000\",\"power\":0,"
        "\"peer_address\":\"127.0.0.1:9\"}],\"currencies\":[]}",
    };
    char path[256];
    snprintf(path, sizeof path, "%s/genesis-bad.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file("genesis-bad.json", bad[i]);
        int rc = node_genesis_load(path, &cfg);
        if (rc != KN_ECONFIG) fail_msg("genesis %zu: expected bad_config, got %s", i, kn_errname(rc));
    }
    unlink(path);
}

static void genesis_currency_refusals(void **state)
{
    static node_config cfg;
#define CUR "{\"code\":\"SVQ\",\"max_supply\":100,"
    static const char *const bad[] = {
        /* no issuer at all; both forms at once; an empty list; a key twice; nine keys */
        "[" CUR "\"scale\":2}]",
        "[" CUR "\"issuer\":" KEY_A ",\"issuer_admins\":[" KEY_A "]}]",
        "[" CUR "\"issuer_admins\":[]}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "," KEY_A "]}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "," KEY_A "," KEY_A "," KEY_A "," KEY_A "," KEY_A
        "," KEY_A "," KEY_A "," KEY_B "]}]",
        "[" CUR "\"issuer_admins\":[\"abc\"]}]",
        /* thresholds out of 1..n */
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"issuer_threshold\":0}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "," KEY_B "],\"issuer_threshold\":3}]",
        /* an unknown flag, a flag twice, flags that are not a list */
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"flags\":[\"printing_press\"]}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"flags\":[\"p2p\",\"p2p\"]}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"flags\":\"p2p\"}]",
        /* fees over 100 %, a negative early_days, a demurrage period too short */
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"fee_bps\":10001}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"early_fee_bps\":20000}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"early_days\":-1}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"flags\":[\"demurrage\"],\"demurrage_bps\":10,"
        "\"demurrage_period_ms\":1000}]",
        /* scale beyond 18, no supply, no code, a code used twice */
        "[" CUR "\"issuer_admins\":[" KEY_A "],\"scale\":19}]",
        "[{\"code\":\"SVQ\",\"max_supply\":0,\"issuer_admins\":[" KEY_A "]}]",
        "[{\"max_supply\":10,\"issuer_admins\":[" KEY_A "]}]",
        "[" CUR "\"issuer_admins\":[" KEY_A "]}," CUR "\"issuer_admins\":[" KEY_B "]}]",
    };
#undef CUR
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load_genesis("[" KEY_A "]", "", bad[i], &cfg);
        if (rc != KN_ECONFIG) fail_msg("currency %zu: expected bad_config, got %s", i, kn_errname(rc));
    }
    /* The consortium threshold: at most the number of admins; admins distinct. */
    const char *ok = "[{\"code\":\"SVQ\",\"max_supply\":1,\"issuer_admins\":[" KEY_A "]}]";
    assert_int_equal(load_genesis("[" KEY_A "]", "\"admin_threshold\":2,", ok, &cfg), KN_ECONFIG);
    assert_int_equal(load_genesis("[]", "\"admin_threshold\":1,", ok, &cfg), KN_ECONFIG);
    assert_int_equal(load_genesis("[" KEY_A "," KEY_A "]", "", ok, &cfg), KN_ECONFIG);
    assert_int_equal(load_genesis("[" KEY_A "," KEY_B "]", "\"admin_threshold\":2,", ok, &cfg), 0);
}

int main(void)
{
    if (kn_crypto_init()) return 1;
    kn_log_setup(KN_LOG_ERROR + 1, false); /* the refusals log; keep the output readable */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(guard_allows_only_forward_or_identical),
        cmocka_unit_test(mempool_is_bounded_and_ordered),
        cmocka_unit_test(catchup_pick_stays_with_a_good_peer_and_takes_turns),
        cmocka_unit_test_setup_teardown(config_defaults, setup_config, teardown_config),
        cmocka_unit_test_setup_teardown(config_refusals, setup_config, teardown_config),
        cmocka_unit_test_setup_teardown(config_defaults_issuer_key, setup_config, teardown_config),
        cmocka_unit_test_setup_teardown(genesis_full_currency, setup_config, teardown_config),
        cmocka_unit_test_setup_teardown(genesis_refusals, setup_config, teardown_config),
        cmocka_unit_test_setup_teardown(genesis_currency_refusals, setup_config, teardown_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
