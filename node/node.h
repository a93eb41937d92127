/*
 * node: the daemon koinond. Wires the modules together: configuration, the
 * consensus driver, the mempool and its verification pool, block execution
 * through the ledger, catch-up, and the client API handlers.
 *
 * Owns: the event loop thread's state. Everything in node/ except the
 * verification workers runs on that one thread, so the consensus core, the
 * mempool and the store's single writer need no locks.
 *
 *     node_config cfg;
 *     if (node_config_load("devnet/seville/node.json", &cfg)) ...
 *     return node_run(&cfg);   // until SIGINT or SIGTERM
 */
#ifndef KOINON_NODE_H
#define KOINON_NODE_H

#include "common/common.h"
#include "consensus/consensus.h"
#include "node/ledger/ledger.h"

#define NODE_PATH_MAX 1024
#define NODE_NAME_MAX 63

typedef struct node_validator_info {
    char name[NODE_NAME_MAX + 1];
    char city[NODE_NAME_MAX + 1];
    char peer_host[64];
    uint16_t peer_port;
    char api_address[96];
} node_validator_info;

typedef struct node_config {
    char config_path[NODE_PATH_MAX];
    char name[NODE_NAME_MAX + 1];
    char data_dir[NODE_PATH_MAX];
    char log_file[NODE_PATH_MAX]; /* "" logs to stderr */
    char peer_host[64];
    uint16_t peer_port;
    char api_host[64];
    uint16_t api_port;
    enum kn_log_level log_level;
    bool log_json;
    char log_modules[256]; /* per-module levels, "net=debug,cons=warn" */

    uint32_t mempool_txs_max;
    uint32_t block_txs_max;
    uint32_t heartbeat_ms;   /* an empty block at least this often */
    uint32_t drift_ms;       /* how far a block time may run ahead of our clock */
    uint32_t wait_commit_ms; /* longest POST /v1/txs?wait=commit */
    uint64_t map_size_bytes;
    size_t api_body_max_bytes;       /* a request to any route but the batch one */
    size_t api_batch_body_max_bytes; /* POST /v1/txs/batch */
    cons_config timeouts;

    ledger_genesis genesis;
    cons_valset valset;
    node_validator_info validators[CONS_VALIDATORS_MAX];
    uint32_t self; /* index of our key in the validator set, or CONS_NO_VALIDATOR */
    kn_keypair key;
} node_config;

/* Reads node.json and the genesis file it names (paths relative to node.json).
 * KN_ECONFIG with a logged reason for anything missing or malformed. */
KN_MUST int node_config_load(const char *path, node_config *cfg);

/* Parses a genesis file into the ledger genesis, the validator set and the
 * validators' names and addresses (shared with the command-line tool's tests). */
KN_MUST int node_genesis_load(const char *path, node_config *cfg);

/* Runs the node until SIGINT or SIGTERM; returns the exit status. */
int node_run(node_config *cfg);

#endif
