/*
 * ledger: transactions, blocks and the money rules, as pure deterministic
 * functions over a store transaction.
 *
 * Owns: the canonical transaction and block formats (msgpack), transaction ids,
 * signature rules, the ledger state layout in STORE_STATE, block execution into
 * the store (blocks, certificates, transaction results, chain metadata) and the
 * state hash that all validators must agree on.
 *
 * Invariants: integers only; for every currency the balances, the issuing
 * account's negative balance included, sum to zero; no holder account is ever
 * negative; a transaction id is committed at most once. Rule failures return an
 * error code and leave the state as it was; broken invariants abort.
 *
 * Formats (canonical msgpack, see common.h):
 *   tx       [1, chain_id str, nonce uint, expiry_height uint, [op...], [[pk bin32, sig bin64]...]]
 *   body     [1, chain_id, nonce, expiry_height, [op...]]        (what is signed and hashed)
 *   issue    [1, currency str, issuer bin32, to bin32, amount uint, reserve_ref str]
 *   transfer [2, currency str, from bin32, to bin32, amount uint]
 *   header   [1, chain_id, height, time_ms, prev_id bin32, state_hash bin32,
 *             txs_hash bin32, last_cert_hash bin32, proposer uint, n_txs uint]
 *   block    [header, [tx...], last_cert | nil]
 * The tx id is kn_hash(KN_DOMAIN_TX, body); signatures are kn_sign(KN_DOMAIN_TX,
 * chain_id, body) and are listed in strictly increasing public key order. The
 * block id is kn_hash(KN_DOMAIN_BLOCK, header bytes); txs_hash is the hash of the
 * concatenated tx ids; last_cert_hash is the hash of the certificate bytes the
 * block carries for the previous block (zeros at height 1): any valid
 * certificate is accepted, since each validator gathers its own quorum of
 * precommits; state_hash is the state after the previous block.
 */
#ifndef KOINON_LEDGER_H
#define KOINON_LEDGER_H

#include "common/common.h"
#include "consensus/consensus.h"
#include "store/store.h"

#define LEDGER_CODE_MAX 12     /* currency code length */
#define LEDGER_NAME_MAX 63     /* currency and city names */
#define LEDGER_REF_MAX 64      /* reserve attestation reference */
#define LEDGER_OPS_MAX 16      /* operations per transaction */
#define LEDGER_SIGS_MAX 8      /* signatures per transaction */
#define LEDGER_TX_BYTES_MAX 4096
#define LEDGER_CURRENCIES_MAX 64
#define LEDGER_ADMINS_MAX 16

enum ledger_op_kind { LEDGER_OP_ISSUE = 1, LEDGER_OP_TRANSFER = 2 };

typedef struct ledger_op {
    uint8_t kind; /* enum ledger_op_kind */
    char currency[LEDGER_CODE_MAX + 1];
    uint8_t from[KN_PK_BYTES]; /* transfer: payer; issue: the issuer key */
    uint8_t to[KN_PK_BYTES];
    uint64_t amount; /* minor units, > 0 */
    char ref[LEDGER_REF_MAX + 1]; /* issue only */
} ledger_op;

typedef struct ledger_sig {
    uint8_t pk[KN_PK_BYTES];
    uint8_t sig[KN_SIG_BYTES];
} ledger_sig;

typedef struct ledger_tx {
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t nonce;
    uint64_t expiry_height; /* last height at which it may commit */
    uint32_t n_ops;
    ledger_op ops[LEDGER_OPS_MAX];
    uint32_t n_sigs;
    ledger_sig sigs[LEDGER_SIGS_MAX];
    uint8_t id[KN_HASH_BYTES]; /* set by decode and by ledger_tx_sign */
} ledger_tx;

/* Body bytes (what is signed) and full bytes. */
void ledger_tx_body(const ledger_tx *tx, kn_buf *b);
void ledger_tx_encode(const ledger_tx *tx, kn_buf *b);
/* Decodes exactly one transaction filling all of [p, p+n): KN_EDECODE,
 * KN_ENONCANON, KN_ETOOBIG (over LEDGER_TX_BYTES_MAX or the op/sig limits),
 * KN_ENOOPS, KN_EUNKNOWNOP, KN_EZEROAMOUNT, KN_ESELFPAY. Sets tx->id. */
KN_MUST int ledger_tx_decode(const uint8_t *p, size_t n, ledger_tx *tx);
/* Adds kp's signature (keeping the order) and sets tx->id. KN_ETOOBIG when full. */
KN_MUST int ledger_tx_sign(ledger_tx *tx, const kn_keypair *kp);
/* Stateless checks: chain id matches (KN_EWRONGCHAIN), every signature verifies
 * (KN_EBADSIG), and every operation's authorising key (issue: issuer, transfer:
 * from) has signed (KN_EWRONGSIGNER). The expensive part: run off the loop. */
KN_MUST int ledger_tx_verify(const ledger_tx *tx, const char *chain_id);

/* ---------------------------------------------------------------- genesis */

typedef struct ledger_currency {
    char code[LEDGER_CODE_MAX + 1];
    char name[LEDGER_NAME_MAX + 1];
    char city[LEDGER_NAME_MAX + 1];
    uint8_t scale; /* decimal places of a minor unit */
    uint64_t max_supply;
    uint8_t issuer[KN_PK_BYTES];
} ledger_currency;

typedef struct ledger_genesis {
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t time_ms;
    uint32_t n_currencies;
    ledger_currency currencies[LEDGER_CURRENCIES_MAX];
    uint32_t n_admins;
    uint8_t admins[LEDGER_ADMINS_MAX][KN_PK_BYTES];
} ledger_genesis;

/* Writes the genesis state into an empty store (height 0, state hash from the
 * genesis). KN_EINVAL if the store already has a chain, or for a bad genesis
 * (duplicate or empty currency code, zero max supply). */
KN_MUST int ledger_genesis_apply(store_txn *t, const ledger_genesis *g);

/* ---------------------------------------------------------------- state reads */

typedef struct ledger_chain {
    uint64_t height; /* last committed height, 0 before the first block */
    uint8_t last_block_id[KN_HASH_BYTES];
    uint8_t state_hash[KN_HASH_BYTES]; /* after the last committed block */
    uint64_t last_time_ms;
    uint8_t last_cert_hash[KN_HASH_BYTES];
} ledger_chain;

/* KN_ENOTFOUND before genesis. */
KN_MUST int ledger_chain_get(store_txn *t, ledger_chain *out);
KN_MUST int ledger_currency_get(store_txn *t, const char *code, ledger_currency *out);
/* Circulating supply: minus the issuing account's balance. */
KN_MUST int ledger_supply_get(store_txn *t, const char *code, int64_t *supply);
/* Holder accounts with a positive balance; KN_ENOCURRENCY for an unknown code. */
KN_MUST int ledger_holders_get(store_txn *t, const char *code, int64_t *holders);
/* An absent account has balance 0 (returns 0); KN_ENOCURRENCY for an unknown code. */
KN_MUST int ledger_balance_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                               int64_t *balance);
/* Calls cb for each currency in which pk holds a (possibly zero) account. */
KN_MUST int ledger_balances_each(store_txn *t, const uint8_t pk[KN_PK_BYTES],
                                 void (*cb)(void *ctx, const char *code, int64_t balance),
                                 void *ctx);
/* Every currency in code order. */
KN_MUST int ledger_currencies_each(store_txn *t, void (*cb)(void *ctx, const ledger_currency *c),
                                   void *ctx);

typedef struct ledger_tx_record {
    uint64_t height;
    uint32_t index;
    int32_t result; /* 0 or a KN_E* rule error */
} ledger_tx_record;
KN_MUST int ledger_tx_record_get(store_txn *t, const uint8_t id[KN_HASH_BYTES],
                                 ledger_tx_record *out);

/* ---------------------------------------------------------------- blocks */

typedef struct ledger_header {
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t height;
    uint64_t time_ms;
    uint8_t prev_id[KN_HASH_BYTES];
    uint8_t state_hash[KN_HASH_BYTES];
    uint8_t txs_hash[KN_HASH_BYTES];
    uint8_t last_cert_hash[KN_HASH_BYTES];
    uint32_t proposer; /* validator index */
    uint32_t n_txs;
} ledger_header;

typedef struct ledger_slice {
    const uint8_t *p;
    size_t n;
} ledger_slice;

/* A decoded block borrowing its bytes. txs is allocated by ledger_block_decode
 * and freed by ledger_block_view_free; block_id is computed. */
typedef struct ledger_block_view {
    ledger_header hdr;
    uint8_t block_id[KN_HASH_BYTES];
    ledger_slice *txs; /* hdr.n_txs slices, each one full tx encoding */
    ledger_slice last_cert; /* n == 0 when nil */
} ledger_block_view;

#define LEDGER_BLOCK_TXS_MAX 20000
#define LEDGER_BLOCK_BYTES_MAX (16u << 20)

void ledger_header_encode(const ledger_header *h, kn_buf *b);
/* Builds a block: the header's txs_hash and n_txs are computed from txs (the tx
 * ids are given in ids), last_cert_hash from cert_bytes. Writes the block id. */
void ledger_block_build(ledger_header *h, const ledger_slice *txs,
                        const uint8_t (*ids)[KN_HASH_BYTES], uint32_t n_txs,
                        const ledger_slice *last_cert, kn_buf *block,
                        uint8_t block_id[KN_HASH_BYTES]);
/* Structural decode only (no signature or state checks). Recomputes nothing
 * but the block id; KN_EDECODE/KN_ENONCANON/KN_ETOOBIG. */
KN_MUST int ledger_block_decode(const uint8_t *p, size_t n, ledger_block_view *out);
void ledger_block_view_free(ledger_block_view *v);
/* Decodes every transaction of a block into *txs and their ids into *ids (both
 * allocated here, freed by the caller with free()). KN_EBADBLOCK if one does
 * not decode; nothing is allocated then. */
KN_MUST int ledger_block_txs(const ledger_block_view *v, ledger_tx **txs,
                             uint8_t (**ids)[KN_HASH_BYTES]);

/* Checks a proposed block at chain tip `chain` against the validator set:
 * chain id, height = tip + 1, prev_id, state_hash, last_cert_hash, a last
 * certificate that verifies for the previous block (from height 2 on), time
 * strictly after the previous block, proposer index in range, txs_hash and
 * n_txs matching the transactions. Transaction signatures and per-tx state are
 * checked by the caller (verification is cached). KN_EBADBLOCK or KN_EBADCERT. */
KN_MUST int ledger_block_check(const ledger_block_view *v, const ledger_chain *chain,
                               const cons_valset *vs, const char *chain_id,
                               const uint8_t (*ids)[KN_HASH_BYTES]);

/* Executes a decided block in t: applies each transaction (already decoded and
 * signature-checked by the caller, in txs) with its rules, records each result,
 * stores the block bytes and its certificate, advances the chain metadata and
 * the state hash, and checks supply conservation of every touched currency.
 * A transaction that breaks a rule is recorded with its error and changes
 * nothing else; a duplicate or expired transaction is recorded as such only if
 * its id was never committed before. Returns 0 or a store error (t is then
 * poisoned). */
KN_MUST int ledger_block_execute(store_txn *t, const ledger_block_view *v,
                                 const uint8_t *block_bytes, size_t block_len,
                                 const ledger_tx *txs, const uint8_t *cert_bytes,
                                 size_t cert_len);

/* Stored block and certificate of a height (pointers valid for the txn). */
KN_MUST int ledger_block_get(store_txn *t, uint64_t height, const uint8_t **p, size_t *n);
KN_MUST int ledger_cert_get(store_txn *t, uint64_t height, const uint8_t **p, size_t *n);

/* Applies one transaction's operations atomically inside t: the operations
 * are computed on a small in-memory write set and written only when all of
 * them pass. Returns 0, or the rule error with no change (KN_EDUPTX for an id
 * already committed). Used by block execution and by admission to the
 * mempool, which runs it in a scratch transaction that is never committed. */
KN_MUST int ledger_tx_apply(store_txn *t, const ledger_tx *tx, uint64_t height);

/* Sums every balance of every currency from a full scan and aborts if any
 * currency does not sum to zero or a holder is negative. For tests and debug
 * builds: costs a scan of the whole state. */
void ledger_check_invariants(store_txn *t);

/* The consensus safety state, stored in STORE_META. */
KN_MUST int ledger_safety_put(store_txn *t, const cons_safety *s);
KN_MUST int ledger_safety_get(store_txn *t, cons_safety *out);

#endif
