/*
 * ledger internals shared between the files of node/ledger/ (never included
 * from outside this folder).
 *
 * Files: tx.c (transaction format, ids, signatures), block.c (header and block
 * format, block checks), state.c (state layout, reads, genesis, safety state,
 * the invariant scan), rules.c (the money rules over a per-transaction
 * overlay), exec.c (block execution and the state hash), evidence.c (the
 * validator set in the state, the evidence rule's checks and its reads).
 *
 * State layout. STORE_STATE keys start with a tag byte; `code`, `id`, `sub`,
 * `batch` and `category` are written as one length byte and the bytes (so no key
 * is a prefix of another), pk and tx ids are raw 32 bytes, numbers big-endian,
 * every amount or count a canonical msgpack int:
 *   "g"                       -> consortium [admin_threshold]
 *   "c" code bytes            -> currency (ledger__currency_encode, lead 1); the code
 *                                is the rest of the key, so currencies list in code order
 *   "A" owner code sub        -> account [kind, flags, balance, floor, demurrage_ms,
 *                                received_ms]; keyed by owner first, so the accounts
 *                                of one key are one prefix scan
 *   "r" pk code               -> roles [mask, category, credit_limit] (code "" for
 *                                the consortium admin role)
 *   "R" code role pk          -> true: the holders of one role, for listing
 *   "k" code role             -> number of holders of the role
 *   "s" code stat             -> currency figure (enum ledger__stat)
 *   "n" code kind             -> accounts of that kind with a positive balance
 *   "P" code id               -> programme (ledger__programme_encode, lead 1, with manager)
 *   "p" code id stat          -> programme figure (enum ledger__pstat)
 *   "B" code id pk            -> true: the programme's beneficiaries, for the sweep
 *   "q" code id pk period u64 -> disbursed to pk in that cap period
 *   "d" code id batch         -> true: the batch was disbursed
 *   "u" code id category      -> aid spent at that merchant category
 *   "X" tx_id op u16          -> transfer [code, from, sub, to, amount], for reversals
 *   "x" tx_id op u16          -> amount reversed so far
 *   "E" base quote            -> rate [num, den, start_ms, end_ms, set_height]
 *   "Y"                       -> the open settlement cycle's number (absent: 1)
 *   "y" cycle u64 field       -> cycle figure (enum ledger__cycle_field)
 *   "o" cycle u64 code        -> the currency's position in the cycle (unit of account)
 *   "e" cycle u64 debtor creditor -> value of the debtor's exchanges into the creditor's
 *                                currency in the cycle
 *   "S" cycle u64 debtor creditor -> amount settled of that obligation
 *   "Z" cycle u64 debtor creditor -> settlement [ref, height]
 *   "F" code day u32 figure   -> the currency's figure of that UTC day (enum ledger__figure)
 *   "G" code day u32 category -> spent at that merchant category that day
 *   "H" owner cursor          -> movement [code, sub, amount, kind, counterparty,
 *                                counterparty_sub, tx_id]; cursor = height u64,
 *                                index u32, op u16, leg u16, so a reverse scan of
 *                                one owner is the account history newest first
 *   "V" index u32             -> validator [pk bin32, power], written at genesis
 *   "W" validator u32 height u64 round u32 type u8
 *                             -> evidence [vote, vote, recorded_height]: the two
 *                                votes (wire form) in canonical order; one record
 *                                per equivocation, whichever order it came in
 *   "w"                       -> number of evidence records
 * Invariant per currency: the balances of all its accounts sum to zero, and the
 * counts and figures match the accounts and records they summarise
 * (ledger_check_invariants verifies it from a full scan).
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

#define LEDGER__KEY_MAX 96

/* A state key under construction (see the layout above). */
typedef struct ledger__key {
    uint8_t n;
    uint8_t b[LEDGER__KEY_MAX];
} ledger__key;

void ledger__key_tag(ledger__key *k, char tag);
void ledger__key_raw(ledger__key *k, const void *p, size_t n);
void ledger__key_str(ledger__key *k, const char *s); /* length byte, then the bytes */
void ledger__key_u64(ledger__key *k, uint64_t v);
void ledger__key_u32(ledger__key *k, uint32_t v);
void ledger__key_u16(ledger__key *k, uint16_t v);

enum ledger__stat {
    LEDGER__ST_ISSUED = 1,
    LEDGER__ST_RETIRED,
    LEDGER__ST_REDEEMED,
    LEDGER__ST_FEES,
    LEDGER__ST_DEMURRAGE,
    LEDGER__ST_CLAWED,
};

enum ledger__pstat {
    LEDGER__PS_FUNDED = 1,
    LEDGER__PS_DISBURSED,
    LEDGER__PS_SPENT,
    LEDGER__PS_RETURNED,
    LEDGER__PS_EXPIRED,
    LEDGER__PS_BENEFICIARIES,
    LEDGER__PS_HAS_EXPIRED,
};

enum ledger__cycle_field {
    LEDGER__CY_OPENED_MS = 1,
    LEDGER__CY_CLOSED_MS,
    LEDGER__CY_CLOSED_HEIGHT,
    LEDGER__CY_NETTING,
    LEDGER__CY_EXCHANGES,
    LEDGER__CY_VALUE,
    LEDGER__CY_OBLIGATIONS,
    LEDGER__CY_SETTLED,
    LEDGER__CY_FIELD_MAX = LEDGER__CY_SETTLED
};

/* Daily figures of a currency (ledger_report names each). */
enum ledger__figure {
    LEDGER__FG_ISSUED = 1,
    LEDGER__FG_RETIRED,
    LEDGER__FG_TREASURY_PAID,
    LEDGER__FG_DISBURSED,
    LEDGER__FG_SPENT,
    LEDGER__FG_RESPENT,
    LEDGER__FG_OTHER,
    LEDGER__FG_RETURNED,
    LEDGER__FG_REDEEMED,
    LEDGER__FG_FEES,
    LEDGER__FG_DEMURRAGE,
    LEDGER__FG_CLAWED,
    LEDGER__FG_EXPIRED,
    LEDGER__FG_REVERSED,
    LEDGER__FG_EXCHANGED_IN,
    LEDGER__FG_EXCHANGED_OUT,
    LEDGER__FG_HELD, /* change of the money held by keys */
    LEDGER__FG_MAX = LEDGER__FG_HELD
};

/* Keys of the records above. */
void ledger__key_currency(ledger__key *k, const char *code);
void ledger__key_account(ledger__key *k, const char *code, const uint8_t owner[KN_PK_BYTES],
                         const char *sub);
void ledger__key_roles(ledger__key *k, const char *code, const uint8_t pk[KN_PK_BYTES]);
void ledger__key_stat(ledger__key *k, const char *code, uint8_t stat);
void ledger__key_count(ledger__key *k, const char *code, uint8_t role); /* "k" */
void ledger__key_holders(ledger__key *k, const char *code, uint8_t kind); /* "n" */
void ledger__key_pstat(ledger__key *k, const char *code, const char *id, uint8_t stat);
void ledger__key_programme(ledger__key *k, const char *code, const char *id);
void ledger__key_rate(ledger__key *k, const char *base, const char *quote);
void ledger__key_cycle(ledger__key *k, uint64_t cycle, uint8_t field);
void ledger__key_position(ledger__key *k, uint64_t cycle, const char *code);
/* tag 'e' (owed), 'S' (settled) or 'Z' (settlement record) */
void ledger__key_pair(ledger__key *k, char tag, uint64_t cycle, const char *debtor,
                      const char *creditor);
void ledger__key_figure(ledger__key *k, const char *code, uint32_t day, uint8_t figure);
void ledger__key_category(ledger__key *k, const char *code, uint32_t day, const char *category);

/* Rate records. */
void ledger__rate_encode(const ledger_rate *r, kn_buf *b);
/* Fills the value fields of r (its pair is the caller's). */
KN_MUST int ledger__rate_decode(const uint8_t *p, size_t n, ledger_rate *r);

/* The obligations of cycle under netting, from the cycle's records as the
 * store holds them, without their settlement state: cb gets each (settled
 * false, no ref) in a fixed order. The same function decides them for the
 * rules and shows them to readers. */
KN_MUST int ledger__obligations(store_txn *t, uint64_t cycle, uint8_t netting,
                                void (*cb)(void *ctx, const ledger_obligation *o), void *ctx);

/* A settlement record: [ref, height]. */
void ledger__settlement_encode(const char *ref, uint64_t height, kn_buf *b);

/* UTC day of a block time. */
static inline uint32_t ledger__day(uint64_t time_ms)
{
    return (uint32_t)(time_ms / LEDGER_DAY_MS);
}

/* Account values, roles and their encodings. */
void ledger__account_encode(const ledger_account *a, kn_buf *b);
/* Fills the value fields of a (its identity is the caller's). */
KN_MUST int ledger__account_decode(const uint8_t *p, size_t n, ledger_account *a);
void ledger__roles_encode(const ledger_roles *r, kn_buf *b);
KN_MUST int ledger__roles_decode(const uint8_t *p, size_t n, ledger_roles *r);
/* The kind of a key's main account for the roles it holds. */
uint8_t ledger__main_kind(uint32_t role_mask);

/* Currency and programme encodings shared by operations and stored records:
 * the same fields after a lead (the operation kind, or the record version). */
KN_MUST int ledger__currency_check(const ledger_currency *cur);
void ledger__currency_encode(const ledger_currency *cur, uint8_t lead, kn_buf *b);
KN_MUST int ledger__currency_decode(const uint8_t *p, size_t n, uint8_t lead,
                                    ledger_currency *cur);
void ledger__programme_encode(const ledger_programme *pg, uint8_t lead, bool with_manager,
                              kn_buf *b);
KN_MUST int ledger__programme_decode(const uint8_t *p, size_t n, uint8_t lead,
                                     bool with_manager, ledger_programme *pg);
/* A programme id of min..LEDGER_ID_MAX bytes of A-Z a-z 0-9 . _ - */
bool ledger__id_ok(const char *id, size_t min);

/* Reads a string of min..max bytes without NUL into out (NUL-terminated; out
 * holds max + 1). KN_ETOOBIG when longer, KN_EDECODE when shorter or holding a
 * NUL (a NUL would not survive the round trip through a C string). */
KN_MUST int ledger__r_text(kn_cur *c, char *out, size_t min, size_t max);

/* Stored int64 amount: 0, KN_ENOTFOUND, or a store error. A stored value that
 * does not decode is a broken invariant (the ledger wrote it). */
KN_MUST int ledger__get_amount(store_txn *t, const uint8_t *key, size_t klen, int64_t *out);
/* The amount of a stored cell's value bytes (as an iterator returns them). */
int64_t ledger__amount_of(const uint8_t *p, size_t n);
/* Same, with an absent record reading as 0. */
KN_MUST int ledger__get_cell(store_txn *t, const ledger__key *k, int64_t *out);

KN_MUST int ledger__currencies_count(store_txn *t, uint32_t *n);

/* Writes the genesis state (consortium admins and threshold, the first
 * currencies) through the rules' write path. */
KN_MUST int ledger__genesis_state(store_txn *t, const ledger_genesis *g, uint32_t threshold);

/* Writes the chain metadata (STORE_META "chain"). */
KN_MUST int ledger__chain_put(store_txn *t, const ledger_chain *ch);

/* Block execution context: the running state hash. NULL outside a block. */
typedef struct ledger__exec {
    crypto_generichash_state hash;
} ledger__exec;

/* The one write path for STORE_STATE and STORE_TXS: puts, and feeds the write
 * into ex's state hash when ex is not NULL. */
KN_MUST int ledger__put(store_txn *t, ledger__exec *ex, enum store_table tab, const void *key,
                        size_t klen, const void *val, size_t vlen);

/* Rules with an execution context (exec.c passes one; ledger_tx_apply NULL)
 * and the transaction's index in its block (for the account history). The
 * caller has made sure the id was never committed. */
KN_MUST int ledger__tx_apply(store_txn *t, ledger__exec *ex, const ledger_tx *tx,
                             uint64_t height, uint32_t index, uint64_t time_ms);

/* Evidence (evidence.c). The validator records of the genesis, and the
 * evidence rule: checks the transaction's two votes against the state and, on
 * success, fills the record's key and value (for the rules to write). 0,
 * KN_EBADEVIDENCE, KN_EEVIDENCEKNOWN or a store error. */
void ledger__key_validator(ledger__key *k, uint32_t index);
void ledger__validator_encode(const cons_validator *v, kn_buf *b);
KN_MUST int ledger__evidence_check(store_txn *t, const ledger_tx *tx, uint64_t height,
                                   ledger__key *key, kn_buf *record);
void ledger__key_evidence_count(ledger__key *k);

/* txs_hash of a block: kn_hash(KN_DOMAIN_BLOCK, concatenated ids). */
void ledger__txs_hash(uint8_t out[KN_HASH_BYTES], const uint8_t (*ids)[KN_HASH_BYTES],
                      uint32_t n);

#endif
