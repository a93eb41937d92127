/*
 * ledger internals shared between the files of node/ledger/ (never included
 * from outside this folder).
 *
 * Files: tx.c (transaction format, ids, signatures), block.c (header and block
 * format, block checks), state.c (state layout, reads, genesis, safety state,
 * the invariant scan), rules.c (the money rules over a per-transaction
 * overlay), exec.c (block execution and the state hash).
 *
 * State layout. STORE_STATE (codes are 1..LEDGER_CODE_MAX bytes without NUL,
 * pk is 32 raw bytes, every amount is a canonical msgpack int):
 *   "c" code          -> currency [1, code, name, city, scale, max_supply, issuer bin32]
 *   "i" code          -> issuing account balance, int <= 0 (minus the supply)
 *   "h" code          -> holders' total, int >= 0: the sum of every "b" balance of
 *                        the currency, kept by the rules so that supply
 *                        conservation is checked per block without a scan
 *   "b" pk code       -> holder balance, int >= 0. Keyed by key first, so the
 *                        accounts of one key are one prefix scan. A record exists
 *                        once the key has received the currency (implicit
 *                        accounts); a zero balance keeps its record.
 *   "n" code          -> number of holder accounts with a positive balance (absent: 0)
 *   "a" pk            -> consortium admin, msgpack true
 * The issuing account is not any key's account: the issuer key may also hold
 * an ordinary "b" balance without the two being confused.
 * Invariant per currency: "i" + "h" == 0, "h" == sum of its "b" records, and
 * "n" == the number of its "b" records above zero.
 *
 * STORE_META:
 *   "chain"   -> [height, last_block_id bin32, state_hash bin32, last_time_ms,
 *                 last_cert_hash bin32]
 *   "genesis" -> the canonical genesis encoding (see state.c)
 *   "safety"  -> [height, round, step, locked_round int, locked_block bin32,
 *                 valid_round int, valid_block bin32]
 * STORE_TXS: tx id -> [height, index, result int]. STORE_BLOCKS and STORE_CERTS:
 * store_height_key(height) -> bytes.
 *
 * Hashes (all BLAKE2b-256 via kn_hash, so each is H(domain, 0x00, data)):
 *   block id        kn_hash(KN_DOMAIN_BLOCK, header bytes)
 *   txs_hash        kn_hash(KN_DOMAIN_BLOCK, id_1 || ... || id_n)
 *   last_cert_hash  kn_hash(KN_DOMAIN_BLOCK, certificate bytes); zeros at height 1
 *   genesis state   kn_hash(KN_DOMAIN_STATE, genesis encoding)
 *   block state     H(KN_DOMAIN_STATE, 0x00, previous state hash, block id, then
 *                   for every write to STORE_STATE or STORE_TXS in order:
 *                   table byte, key length u32 BE, key, value length u32 BE, value)
 * The three block-level hashes share a domain; their inputs cannot be confused
 * (a header is a 10-array, a certificate a 4-array, ids a run of hashes).
 */
#ifndef KOINON_LEDGER_INTERNAL_H
#define KOINON_LEDGER_INTERNAL_H

#include <sodium.h>

#include "node/ledger/ledger.h"

#define LEDGER__KEY_MAX (1 + KN_PK_BYTES + LEDGER_CODE_MAX)

/* State key builders; each returns the key length. */
size_t ledger__key_currency(uint8_t key[LEDGER__KEY_MAX], const char *code);
size_t ledger__key_issuing(uint8_t key[LEDGER__KEY_MAX], const char *code);
size_t ledger__key_holders(uint8_t key[LEDGER__KEY_MAX], const char *code);
size_t ledger__key_holder_count(uint8_t key[LEDGER__KEY_MAX], const char *code);
size_t ledger__key_balance(uint8_t key[LEDGER__KEY_MAX], const uint8_t pk[KN_PK_BYTES],
                           const char *code);

/* Reads a string of min..max bytes without NUL into out (NUL-terminated; out
 * holds max + 1). KN_ETOOBIG when longer, KN_EDECODE when shorter or holding a
 * NUL (a NUL would not survive the round trip through a C string). */
KN_MUST int ledger__r_text(kn_cur *c, char *out, size_t min, size_t max);

/* Stored int64 amount: 0, KN_ENOTFOUND, or a store error. A stored value that
 * does not decode is a broken invariant (the ledger wrote it). */
KN_MUST int ledger__get_amount(store_txn *t, const uint8_t *key, size_t klen, int64_t *out);

/* Writes the chain metadata (STORE_META "chain"). */
KN_MUST int ledger__chain_put(store_txn *t, const ledger_chain *ch);

/* Block execution context: the running state hash and the currencies whose
 * supply must be checked at the end of the block. NULL outside a block. */
typedef struct ledger__exec {
    crypto_generichash_state hash;
    uint32_t n_touched;
    char touched[LEDGER_CURRENCIES_MAX][LEDGER_CODE_MAX + 1];
} ledger__exec;

/* The one write path for STORE_STATE and STORE_TXS: puts, and feeds the write
 * into ex's state hash when ex is not NULL. */
KN_MUST int ledger__put(store_txn *t, ledger__exec *ex, enum store_table tab, const void *key,
                        size_t klen, const void *val, size_t vlen);
void ledger__touch(ledger__exec *ex, const char *code);

/* Rules with an execution context (exec.c passes one; ledger_tx_apply NULL). */
KN_MUST int ledger__tx_apply(store_txn *t, ledger__exec *ex, const ledger_tx *tx,
                             uint64_t height);

/* txs_hash of a block: kn_hash(KN_DOMAIN_BLOCK, concatenated ids). */
void ledger__txs_hash(uint8_t out[KN_HASH_BYTES], const uint8_t (*ids)[KN_HASH_BYTES],
                      uint32_t n);

#endif
