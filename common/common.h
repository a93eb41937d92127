/*
 * common: the small foundation every Koinon module shares.
 *
 * Owns: the error table (one X-macro that yields codes, API names and messages),
 * growable byte buffers and the bounds-checked read cursor, the canonical msgpack
 * writer and strict reader, hashing and signing with a domain string, key files,
 * hex, and the structured logger.
 *
 * Invariants: nothing here reads the clock except kn_log() and kn_now_ms(); nothing
 * here touches libuv or LMDB, so the pure modules (consensus, ledger rules) may
 * link it.
 *
 * Canonical encoding: signed things are msgpack arrays with fixed positions. The
 * writer (msgpack-c's packer) always emits the shortest form; the reader here
 * refuses every other form, so a value decodes only from its one canonical byte
 * string and re-encodes to the same bytes.
 *
 *     kn_buf b = {0};
 *     kn_w_array(&b, 2); kn_w_uint(&b, 7); kn_w_bin(&b, key, 32);
 *     kn_cur c = kn_cur_make(b.data, b.len);
 *     uint32_t n; uint64_t v;
 *     if (kn_r_array(&c, &n) || n != 2 || kn_r_uint(&c, &v)) ...
 *     kn_buf_free(&b);
 */
#ifndef KOINON_COMMON_H
#define KOINON_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KN_MUST __attribute__((warn_unused_result))

/* ---------------------------------------------------------------- errors */

/* X(NAME, api_code, message). Codes are negative, in table order. The api_code is
 * what clients see in {"error":{"code":...}}. */
#define KN_ERRNO_MAP(X)                                                              \
    X(NOMEM, "out_of_memory", "out of memory")                                       \
    X(INVAL, "invalid_argument", "invalid argument")                                 \
    X(DECODE, "malformed", "malformed encoding")                                     \
    X(NONCANON, "non_canonical", "encoding is not canonical")                        \
    X(TOOBIG, "too_large", "value exceeds its size limit")                           \
    X(BADSIG, "bad_signature", "signature does not verify")                          \
    X(WRONGSIGNER, "wrong_signer", "operation is not signed by the key it requires") \
    X(WRONGCHAIN, "wrong_chain", "transaction is for another chain")                 \
    X(OVERDRAFT, "insufficient_funds", "balance is lower than the amount")           \
    X(NOCURRENCY, "unknown_currency", "no such currency")                            \
    X(NOACCOUNT, "unknown_account", "no such account")                               \
    X(DUPTX, "duplicate_transaction", "transaction was already accepted")            \
    X(EXPIRED, "expired", "transaction expiry height has passed")                    \
    X(NOTFOUND, "not_found", "not found")                                            \
    X(IO, "io_error", "input/output error")                                          \
    X(STORE, "storage_error", "storage error")                                       \
    X(FULL, "mempool_full", "mempool is full, retry later")                          \
    X(OVERFLOW, "overflow", "amount arithmetic overflows")                           \
    X(SUPPLY, "max_supply_exceeded", "issue would exceed the maximum supply")        \
    X(ZEROAMOUNT, "zero_amount", "amount must be positive")                          \
    X(SELFPAY, "self_transfer", "payer and payee are the same account")              \
    X(NOOPS, "no_operations", "transaction has no operations")                       \
    X(UNKNOWNOP, "unknown_operation", "unknown operation kind")                      \
    X(PEERDENIED, "peer_not_allowed", "peer key is not in the validator set")        \
    X(HANDSHAKE, "handshake_failed", "peer handshake failed")                        \
    X(CONFIG, "bad_config", "configuration is invalid")                              \
    X(BADCERT, "bad_certificate", "commit certificate does not verify")              \
    X(BADBLOCK, "bad_block", "block is invalid")                                     \
    X(CLOSED, "closed", "connection or service is closed")                           \
    X(TIMEOUT, "timeout", "timed out")                                               \
    X(DOUBLESIGN, "double_sign", "refusing to sign a conflicting vote")              \
    X(BUSY, "busy", "resource is busy, retry later")                                 \
    X(METHOD, "method_not_allowed", "method not allowed on this route")              \
    X(UNAUTHORISED, "not_authorised", "no signer holds the role this operation needs") \
    X(QUORUM, "quorum_not_met", "fewer signatures than the role's threshold")        \
    X(FROZEN, "account_frozen", "account is frozen")                                 \
    X(ACCCLOSED, "account_closed", "account is closed")                              \
    X(NOTAUTHACC, "account_not_authorised", "currency requires an authorised account") \
    X(ROUTE, "route_not_allowed", "payment route is not allowed")                    \
    X(CATEGORY, "category_not_allowed", "merchant category not allowed by the programme") \
    X(NOPROGRAMME, "unknown_programme", "no such programme")                         \
    X(INACTIVE, "programme_not_active", "programme is not running at this time")     \
    X(PROGEXPIRED, "programme_expired", "programme has expired")                     \
    X(NOTENDED, "programme_not_ended", "programme's end and grace period have not passed") \
    X(BUDGET, "budget_exceeded", "programme budget would be exceeded")               \
    X(CAP, "cap_exceeded", "beneficiary cap for the period would be exceeded")      \
    X(DUPBATCH, "duplicate_batch", "batch id was already disbursed")                 \
    X(EXISTS, "already_exists", "already exists")                                    \
    X(NONZERO, "balance_not_zero", "account balance is not zero")                    \
    X(FORBIDDEN, "not_allowed_by_currency", "the currency's flags forbid this operation") \
    X(REVERSAL, "reversal_exceeds_original", "reversals would exceed the original amount") \
    X(NOTRANSFER, "unknown_transfer", "no such transfer to reverse")                 \
    X(NOROLE, "role_not_held", "key does not hold that role")                        \
    X(LASTADMIN, "quorum_impossible", "fewer role holders would remain than the threshold") \
    X(NOTBENEFICIARY, "not_a_beneficiary", "key is not a beneficiary of the currency") \
    X(UNKNOWNPAIR, "unknown_pair", "no exchange rate was ever set for this pair")    \
    X(RATEEXPIRED, "rate_expired", "the exchange rate's validity window has ended")  \
    X(NORATE, "missing_rate", "no exchange rate in force at this time")              \
    X(NOEXCHANGE, "exchange_not_allowed", "payer or receiver may not exchange")      \
    X(SENDMAX, "send_max_exceeded", "the exchange would cost more than the send-max") \
    X(TOOSMALL, "amount_too_small", "the amount converts to zero at this rate")      \
    X(CLEARINGFLOOR, "clearing_below_floor", "the clearing account would go below its floor") \
    X(NOCYCLE, "unknown_cycle", "no such settlement cycle")                          \
    X(CYCLECLOSED, "cycle_closed", "settlement cycle is already closed")             \
    X(CYCLEOPEN, "cycle_open", "settlement cycle is not closed yet")                 \
    X(NOOBLIGATION, "unknown_obligation", "the cycle has no such settlement obligation") \
    X(SETTLEAMOUNT, "settlement_mismatch", "settlement amount differs from the obligation") \
    X(SETTLED, "already_settled", "the obligation is already settled")            \
    X(BADEVIDENCE, "bad_evidence", "the votes are not two validly signed conflicting votes of one validator") \
    X(EVIDENCEKNOWN, "evidence_known", "this equivocation is already recorded")

enum {
    KN_OK = 0,
    KN__ERR_BASE = -1000,
#define KN__ENUM(name, code, msg) KN_E##name,
    KN_ERRNO_MAP(KN__ENUM)
#undef KN__ENUM
    KN__ERR_END
};

/* Message for an error code (or for errno-style negatives it does not know). */
const char *kn_strerror(int err);
/* Stable snake_case name of an error for APIs ("insufficient_funds"). */
const char *kn_errname(int err);
/* Parses an api name back to its code; 0 when unknown. */
int kn_errcode(const char *name);

/* A broken invariant: log and abort at once. Never for peer or client input. */
#define KN_REQUIRE(cond)                                                          \
    do {                                                                          \
        if (!(cond)) kn__fail(__FILE__, __LINE__, #cond);                          \
    } while (0)
_Noreturn void kn__fail(const char *file, int line, const char *what);

/* ---------------------------------------------------------------- bytes */

/* Growable buffer. Zero-initialise to use; kn_buf_free releases it. Allocation
 * failure aborts (the node cannot make progress without memory). */
typedef struct kn_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} kn_buf;

void kn_buf_reserve(kn_buf *b, size_t extra);
void kn_buf_append(kn_buf *b, const void *p, size_t n);
void kn_buf_reset(kn_buf *b);
void kn_buf_free(kn_buf *b);

/* Read cursor over borrowed bytes. Every read checks bounds; a failed read
 * leaves the cursor where it was and returns KN_EDECODE. */
typedef struct kn_cur {
    const uint8_t *p;
    size_t left;
} kn_cur;

static inline kn_cur kn_cur_make(const void *p, size_t n)
{
    kn_cur c = {(const uint8_t *)p, n};
    return c;
}

KN_MUST int kn_cur_take(kn_cur *c, size_t n, const uint8_t **out);

/* ---------------------------------------------------------------- msgpack */

/* Writers: shortest forms via msgpack-c. */
void kn_w_array(kn_buf *b, uint32_t n);
void kn_w_uint(kn_buf *b, uint64_t v);
void kn_w_int(kn_buf *b, int64_t v);
void kn_w_bool(kn_buf *b, bool v);
void kn_w_nil(kn_buf *b);
void kn_w_bin(kn_buf *b, const void *p, size_t n);
void kn_w_str(kn_buf *b, const char *s, size_t n);

/* Strict readers: accept only the canonical (shortest) form of each value;
 * KN_EDECODE on truncation or type mismatch, KN_ENONCANON on a longer form. */
KN_MUST int kn_r_array(kn_cur *c, uint32_t *n);
KN_MUST int kn_r_uint(kn_cur *c, uint64_t *v);
KN_MUST int kn_r_int(kn_cur *c, int64_t *v);
KN_MUST int kn_r_bool(kn_cur *c, bool *v);
/* True (and consumed) when the next value is nil. */
bool kn_r_nil(kn_cur *c);
/* Borrowed pointer into the cursor's bytes. */
KN_MUST int kn_r_bin(kn_cur *c, const uint8_t **p, size_t *n);
/* Exactly n bytes of bin. */
KN_MUST int kn_r_bin_fixed(kn_cur *c, uint8_t *out, size_t n);
KN_MUST int kn_r_str(kn_cur *c, const char **s, size_t *n);
/* Skips one value of any type (nested arrays/maps up to a fixed depth). */
KN_MUST int kn_r_skip(kn_cur *c);

/* ---------------------------------------------------------------- crypto */

#define KN_HASH_BYTES 32
#define KN_PK_BYTES 32
#define KN_SK_BYTES 64
#define KN_SIG_BYTES 64
#define KN_CHAIN_ID_MAX 64

/* Domain strings: one per kind of signed or hashed object. */
#define KN_DOMAIN_TX "koinon/tx/v1"
#define KN_DOMAIN_PROPOSAL "koinon/proposal/v1"
#define KN_DOMAIN_VOTE "koinon/vote/v1"
#define KN_DOMAIN_BLOCK "koinon/block/v1"
#define KN_DOMAIN_HANDSHAKE "koinon/handshake/v1"
#define KN_DOMAIN_STATE "koinon/state/v1"

typedef struct kn_keypair {
    uint8_t pk[KN_PK_BYTES];
    uint8_t sk[KN_SK_BYTES];
} kn_keypair;

/* Must be called once before any crypto; idempotent. */
KN_MUST int kn_crypto_init(void);

/* BLAKE2b-256 of (domain, 0x00, data). */
void kn_hash(uint8_t out[KN_HASH_BYTES], const char *domain, const void *data, size_t n);

/* The digest that gets signed: BLAKE2b-256 of (domain, 0x00, chain_id, 0x00, msg).
 * Binding the domain and the chain id means a signature for one kind of object or
 * one chain never verifies as another. */
void kn_sign_digest(uint8_t out[KN_HASH_BYTES], const char *domain, const char *chain_id,
                    const void *msg, size_t n);
void kn_sign(uint8_t sig[KN_SIG_BYTES], const kn_keypair *kp, const char *domain,
             const char *chain_id, const void *msg, size_t n);
/* 0 or KN_EBADSIG. */
KN_MUST int kn_verify(const uint8_t sig[KN_SIG_BYTES], const uint8_t pk[KN_PK_BYTES],
                      const char *domain, const char *chain_id, const void *msg, size_t n);

void kn_keypair_generate(kn_keypair *kp);
/* Writes a JSON key file with mode 0600 (fails with KN_EIO if it exists). */
KN_MUST int kn_keyfile_write(const char *path, const kn_keypair *kp);
KN_MUST int kn_keyfile_read(const char *path, kn_keypair *kp);
void kn_keypair_wipe(kn_keypair *kp);

/* ---------------------------------------------------------------- hex */

/* out must hold 2*n+1 bytes; always NUL-terminated. */
void kn_hex(char *out, const uint8_t *p, size_t n);
/* Exactly n bytes from 2*n hex digits; KN_EINVAL otherwise. */
KN_MUST int kn_unhex(uint8_t *out, size_t n, const char *hex, size_t hex_len);

/* ---------------------------------------------------------------- time, logs */

uint64_t kn_now_ms(void); /* wall clock, milliseconds since the epoch */
uint64_t kn_mono_ms(void); /* monotonic clock, milliseconds */
uint64_t kn_mono_us(void); /* monotonic clock, microseconds */

enum kn_log_level { KN_LOG_DEBUG, KN_LOG_INFO, KN_LOG_WARN, KN_LOG_ERROR };

/* Global settings: minimum level and output format (key=value or JSON). */
void kn_log_setup(enum kn_log_level min, bool json);
/* Per-module switches, e.g. "net=debug,cons=warn": a module listed here logs at
 * its own minimum level instead of the global one. KN_EINVAL for a malformed
 * list or more than KN_LOG_MODULES_MAX entries (nothing is changed then). */
#define KN_LOG_MODULES_MAX 16
KN_MUST int kn_log_modules(const char *spec);
/* Parses "debug", "info", "warn" or "error"; KN_EINVAL otherwise. */
KN_MUST int kn_log_level_parse(const char *name, size_t len, enum kn_log_level *out);
/* One line per event: ts, level, module, msg, then the caller's key=value pairs
 * (fmt produces them, e.g. "height=%llu peer=%s"). */
void kn_log(enum kn_log_level level, const char *module, const char *msg, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));

#define KN_DEBUG(mod, msg, ...) kn_log(KN_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define KN_INFO(mod, msg, ...) kn_log(KN_LOG_INFO, mod, msg, __VA_ARGS__)
#define KN_WARN(mod, msg, ...) kn_log(KN_LOG_WARN, mod, msg, __VA_ARGS__)
#define KN_ERROR(mod, msg, ...) kn_log(KN_LOG_ERROR, mod, msg, __VA_ARGS__)

/* Checked arithmetic for amounts. */
static inline KN_MUST bool kn_add_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline KN_MUST bool kn_sub_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_sub_overflow(a, b, out);
}

#endif
