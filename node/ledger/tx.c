/*
 * Transactions: the canonical format (see ledger.h), ids, signing and the
 * stateless signature checks.
 *
 * The decoder reads through the strict cursor, so every value has exactly one
 * accepted form; with fixed array positions and signatures in strictly
 * increasing key order, a transaction has exactly one accepted byte string.
 */
#include <sodium.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "node/ledger/internal.h"

#define TX_VERSION 1
#define TX_FIELDS 6
#define BODY_FIELDS 5
#define CURRENCY_FIELDS 14
#define PROGRAMME_FIELDS 11
#define EARLY_DAYS_MAX 36500

/* Fields of each operation, its kind included. */
static const uint8_t op_fields[LEDGER_OP_KIND_MAX + 1] = {
    [LEDGER_OP_ISSUE] = 4,     [LEDGER_OP_TRANSFER] = 7, [LEDGER_OP_CURRENCY] = CURRENCY_FIELDS,
    [LEDGER_OP_GRANT] = 6,     [LEDGER_OP_REVOKE] = 4,   [LEDGER_OP_ACCOUNT] = 4,
    [LEDGER_OP_RETIRE] = 4,    [LEDGER_OP_PROGRAMME] = PROGRAMME_FIELDS,
    [LEDGER_OP_FUND] = 4,      [LEDGER_OP_DISBURSE] = 5, [LEDGER_OP_REDEEM] = 5,
    [LEDGER_OP_REVERSE] = 6,   [LEDGER_OP_CLAWBACK] = 6, [LEDGER_OP_EXPIRE] = 3,
    [LEDGER_OP_RATE] = 7,      [LEDGER_OP_EXCHANGE] = 9, [LEDGER_OP_CLOSE] = 4,
    [LEDGER_OP_SETTLE] = 6,    [LEDGER_OP_CLEARING] = 4, [LEDGER_OP_EVIDENCE] = 4,
};

int ledger__r_text(kn_cur *c, char *out, size_t min, size_t max)
{
    kn_cur save = *c;
    const char *s;
    size_t n;
    int rc = kn_r_str(c, &s, &n);
    if (rc) return rc;
    if (n > max) rc = KN_ETOOBIG;
    else if (n < min || memchr(s, 0, n)) rc = KN_EDECODE;
    if (rc) {
        *c = save;
        return rc;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

bool ledger__id_ok(const char *id, size_t min)
{
    size_t n = strlen(id);
    if (n < min || n > LEDGER_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

/* ---------------------------------------------------------------- the sticky reader */

/* A cursor with a sticky error: each read is skipped once one has failed, so
 * a decoder reads its fields in a row and checks the error once. */
typedef struct rd {
    kn_cur c;
    int rc;
} rd;

static void fail(rd *r, bool bad, int err)
{
    if (!r->rc && bad) r->rc = err;
}

static void r_uint(rd *r, uint64_t *v, uint64_t max)
{
    if (!r->rc) r->rc = kn_r_uint(&r->c, v);
    fail(r, *v > max, KN_EINVAL);
}

static void r_u32(rd *r, uint32_t *v, uint32_t max)
{
    uint64_t u = 0;
    r_uint(r, &u, max);
    *v = (uint32_t)u;
}

/* An amount that moves money: positive and within int64. */
static void r_amount(rd *r, uint64_t *v)
{
    if (!r->rc) r->rc = kn_r_uint(&r->c, v);
    fail(r, *v == 0, KN_EZEROAMOUNT);
    fail(r, *v > INT64_MAX, KN_EOVERFLOW);
}

static void r_text(rd *r, char *out, size_t min, size_t max)
{
    if (!r->rc) r->rc = ledger__r_text(&r->c, out, min, max);
}

static void r_code(rd *r, char *code)
{
    r_text(r, code, 1, LEDGER_CODE_MAX);
}

/* A programme id: min 0 also admits "" (a key's main account). */
static void r_programme(rd *r, char *id, size_t min)
{
    r_text(r, id, min, LEDGER_ID_MAX);
    fail(r, !ledger__id_ok(id, min), KN_EINVAL);
}

static void r_pk(rd *r, uint8_t pk[KN_PK_BYTES])
{
    if (!r->rc) r->rc = kn_r_bin_fixed(&r->c, pk, KN_PK_BYTES);
}

/* A key that acts: the all-zero key names the currency itself. */
static void r_party(rd *r, uint8_t pk[KN_PK_BYTES])
{
    r_pk(r, pk);
    fail(r, sodium_is_zero(pk, KN_PK_BYTES), KN_EINVAL);
}

static void r_array(rd *r, uint32_t *n, uint32_t max)
{
    if (!r->rc) r->rc = kn_r_array(&r->c, n);
    fail(r, *n > max, KN_ETOOBIG);
}

/* ---------------------------------------------------------------- currency and programme */

int ledger__currency_check(const ledger_currency *cur)
{
    bool demurrage = cur->flags & LEDGER_CUR_DEMURRAGE;
    size_t n = strnlen(cur->code, LEDGER_CODE_MAX + 1);
    if (n == 0 || n > LEDGER_CODE_MAX || cur->scale > 18) return KN_EINVAL;
    if (cur->max_supply == 0 || cur->max_supply > INT64_MAX) return KN_EINVAL;
    if (cur->flags & ~(uint32_t)LEDGER_CUR_FLAGS_ALL) return KN_EINVAL;
    if (cur->n_issuer_admins == 0 || cur->n_issuer_admins > LEDGER_SIGS_MAX) return KN_EINVAL;
    if (cur->issuer_threshold == 0 || cur->issuer_threshold > cur->n_issuer_admins)
        return KN_EINVAL;
    for (uint32_t i = 0; i < cur->n_issuer_admins; i++) {
        if (sodium_is_zero(cur->issuer_admins[i], KN_PK_BYTES)) return KN_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(cur->issuer_admins[i], cur->issuer_admins[j], KN_PK_BYTES) == 0)
                return KN_EINVAL;
    }
    if (cur->fee_bps > LEDGER_BPS || cur->early_fee_bps > LEDGER_BPS ||
        cur->early_days > EARLY_DAYS_MAX)
        return KN_EINVAL;
    if (demurrage && (cur->demurrage_bps == 0 || cur->demurrage_bps > LEDGER_BPS ||
                      cur->demurrage_period_ms < LEDGER_DEMURRAGE_PERIOD_MIN_MS))
        return KN_EINVAL;
    if (!demurrage && (cur->demurrage_bps || cur->demurrage_period_ms)) return KN_EINVAL;
    return 0;
}

void ledger__currency_encode(const ledger_currency *cur, uint8_t lead, kn_buf *b)
{
    kn_w_array(b, CURRENCY_FIELDS);
    kn_w_uint(b, lead);
    kn_w_str(b, cur->code, strlen(cur->code));
    kn_w_str(b, cur->name, strlen(cur->name));
    kn_w_str(b, cur->city, strlen(cur->city));
    kn_w_uint(b, cur->scale);
    kn_w_uint(b, cur->max_supply);
    kn_w_uint(b, cur->flags);
    kn_w_array(b, cur->n_issuer_admins);
    for (uint32_t i = 0; i < cur->n_issuer_admins; i++)
        kn_w_bin(b, cur->issuer_admins[i], KN_PK_BYTES);
    kn_w_uint(b, cur->issuer_threshold);
    kn_w_uint(b, cur->fee_bps);
    kn_w_uint(b, cur->early_fee_bps);
    kn_w_uint(b, cur->early_days);
    kn_w_uint(b, cur->demurrage_bps);
    kn_w_uint(b, cur->demurrage_period_ms);
}

/* The fields after the lead (already read by the caller). */
static void read_currency(rd *r, ledger_currency *cur)
{
    uint64_t scale = 0;
    r_code(r, cur->code);
    r_text(r, cur->name, 0, LEDGER_NAME_MAX);
    r_text(r, cur->city, 0, LEDGER_NAME_MAX);
    r_uint(r, &scale, UINT8_MAX);
    cur->scale = (uint8_t)scale;
    r_uint(r, &cur->max_supply, UINT64_MAX);
    r_u32(r, &cur->flags, UINT32_MAX);
    r_array(r, &cur->n_issuer_admins, LEDGER_SIGS_MAX);
    for (uint32_t i = 0; i < cur->n_issuer_admins && !r->rc; i++) r_pk(r, cur->issuer_admins[i]);
    r_u32(r, &cur->issuer_threshold, UINT32_MAX);
    r_u32(r, &cur->fee_bps, UINT32_MAX);
    r_u32(r, &cur->early_fee_bps, UINT32_MAX);
    r_u32(r, &cur->early_days, UINT32_MAX);
    r_u32(r, &cur->demurrage_bps, UINT32_MAX);
    r_uint(r, &cur->demurrage_period_ms, UINT64_MAX);
    if (!r->rc) r->rc = ledger__currency_check(cur);
}

int ledger__currency_decode(const uint8_t *p, size_t n, uint8_t lead, ledger_currency *cur)
{
    rd r = {kn_cur_make(p, n), 0};
    uint32_t fields = 0;
    uint64_t got = 0;
    memset(cur, 0, sizeof *cur);
    r_array(&r, &fields, CURRENCY_FIELDS);
    fail(&r, fields != CURRENCY_FIELDS, KN_EDECODE);
    r_uint(&r, &got, UINT8_MAX);
    fail(&r, got != lead, KN_EDECODE);
    read_currency(&r, cur);
    fail(&r, r.c.left != 0, KN_EDECODE);
    return r.rc;
}

static int programme_check(const ledger_programme *pg)
{
    if (!ledger__id_ok(pg->id, 1) || pg->budget == 0 || pg->budget > INT64_MAX) return KN_EINVAL;
    if (pg->start_ms >= pg->end_ms || pg->cap > INT64_MAX) return KN_EINVAL;
    if (pg->grace_ms > UINT64_MAX - pg->end_ms) return KN_EINVAL;
    for (uint32_t i = 0; i < pg->n_categories; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(pg->categories[i], pg->categories[j]) == 0) return KN_EINVAL;
    return 0;
}

void ledger__programme_encode(const ledger_programme *pg, uint8_t lead, bool with_manager,
                              kn_buf *b)
{
    kn_w_array(b, PROGRAMME_FIELDS + with_manager);
    kn_w_uint(b, lead);
    kn_w_str(b, pg->currency, strlen(pg->currency));
    kn_w_str(b, pg->id, strlen(pg->id));
    kn_w_uint(b, pg->budget);
    kn_w_uint(b, pg->start_ms);
    kn_w_uint(b, pg->end_ms);
    kn_w_uint(b, pg->cap);
    kn_w_uint(b, pg->period_ms);
    kn_w_array(b, pg->n_categories);
    for (uint32_t i = 0; i < pg->n_categories; i++)
        kn_w_str(b, pg->categories[i], strlen(pg->categories[i]));
    kn_w_bool(b, pg->p2p);
    kn_w_uint(b, pg->grace_ms);
    if (with_manager) kn_w_bin(b, pg->manager, KN_PK_BYTES);
}

static void read_programme(rd *r, ledger_programme *pg)
{
    r_code(r, pg->currency);
    r_programme(r, pg->id, 1);
    r_uint(r, &pg->budget, UINT64_MAX);
    r_uint(r, &pg->start_ms, UINT64_MAX);
    r_uint(r, &pg->end_ms, UINT64_MAX);
    r_uint(r, &pg->cap, UINT64_MAX);
    r_uint(r, &pg->period_ms, UINT64_MAX);
    r_array(r, &pg->n_categories, LEDGER_CATEGORIES_MAX);
    for (uint32_t i = 0; i < pg->n_categories; i++)
        r_text(r, pg->categories[i], 1, LEDGER_CATEGORY_MAX);
    if (!r->rc) r->rc = kn_r_bool(&r->c, &pg->p2p);
    r_uint(r, &pg->grace_ms, UINT64_MAX);
    if (!r->rc) r->rc = programme_check(pg);
}

int ledger__programme_decode(const uint8_t *p, size_t n, uint8_t lead, bool with_manager,
                             ledger_programme *pg)
{
    rd r = {kn_cur_make(p, n), 0};
    uint32_t fields = 0;
    uint64_t got = 0;
    memset(pg, 0, sizeof *pg);
    r_array(&r, &fields, PROGRAMME_FIELDS + 1);
    fail(&r, fields != PROGRAMME_FIELDS + (uint32_t)with_manager, KN_EDECODE);
    r_uint(&r, &got, UINT8_MAX);
    fail(&r, got != lead, KN_EDECODE);
    read_programme(&r, pg);
    if (with_manager) r_pk(&r, pg->manager);
    fail(&r, r.c.left != 0, KN_EDECODE);
    return r.rc;
}

/* ---------------------------------------------------------------- operations */

static void w_code(kn_buf *b, const char *s)
{
    kn_w_str(b, s, strlen(s));
}

static void encode_payees(const ledger_tx *tx, kn_buf *b)
{
    kn_w_array(b, tx->n_payees);
    for (uint32_t i = 0; i < tx->n_payees; i++) {
        kn_w_array(b, 2);
        kn_w_bin(b, tx->payees[i].pk, KN_PK_BYTES);
        kn_w_uint(b, tx->payees[i].amount);
    }
}

/* The fields after [kind, currency] of the operations of a few fields each. */
static void encode_op_rest(const ledger_tx *tx, const ledger_op *op, kn_buf *b)
{
    switch (op->kind) {
    case LEDGER_OP_ISSUE:
    case LEDGER_OP_RETIRE: kn_w_uint(b, op->amount); w_code(b, op->ref); break;
    case LEDGER_OP_TRANSFER:
        kn_w_bin(b, op->from, KN_PK_BYTES);
        w_code(b, op->programme);
        kn_w_bin(b, op->to, KN_PK_BYTES);
        kn_w_uint(b, op->amount);
        kn_w_bin(b, op->link, op->has_link ? KN_HASH_BYTES : 0);
        break;
    case LEDGER_OP_GRANT:
        kn_w_uint(b, op->role);
        kn_w_bin(b, op->from, KN_PK_BYTES);
        w_code(b, op->ref);
        kn_w_uint(b, op->amount);
        break;
    case LEDGER_OP_REVOKE:
    case LEDGER_OP_ACCOUNT: kn_w_uint(b, op->role); kn_w_bin(b, op->from, KN_PK_BYTES); break;
    case LEDGER_OP_FUND: w_code(b, op->programme); kn_w_uint(b, op->amount); break;
    case LEDGER_OP_DISBURSE:
        w_code(b, op->programme);
        w_code(b, op->ref);
        encode_payees(tx, b);
        break;
    case LEDGER_OP_REDEEM:
        kn_w_bin(b, op->from, KN_PK_BYTES);
        kn_w_uint(b, op->amount);
        w_code(b, op->ref);
        break;
    case LEDGER_OP_REVERSE:
        kn_w_bin(b, op->link, KN_HASH_BYTES);
        kn_w_uint(b, op->role);
        kn_w_uint(b, op->amount);
        w_code(b, op->ref);
        break;
    case LEDGER_OP_CLAWBACK:
        kn_w_bin(b, op->from, KN_PK_BYTES);
        w_code(b, op->programme);
        kn_w_uint(b, op->amount);
        w_code(b, op->ref);
        break;
    case LEDGER_OP_EXPIRE: w_code(b, op->programme); break;
    case LEDGER_OP_RATE:
        w_code(b, op->counter);
        kn_w_uint(b, op->num);
        kn_w_uint(b, op->den);
        kn_w_uint(b, op->start_ms);
        kn_w_uint(b, op->end_ms);
        break;
    case LEDGER_OP_EXCHANGE:
        kn_w_bin(b, op->from, KN_PK_BYTES);
        w_code(b, op->counter);
        kn_w_bin(b, op->to, KN_PK_BYTES);
        kn_w_uint(b, op->mode);
        kn_w_uint(b, op->amount);
        kn_w_uint(b, op->limit);
        kn_w_bin(b, op->link, op->has_link ? KN_HASH_BYTES : 0);
        break;
    case LEDGER_OP_CLOSE: kn_w_uint(b, op->cycle); kn_w_uint(b, op->mode); break;
    case LEDGER_OP_SETTLE:
        w_code(b, op->counter);
        kn_w_uint(b, op->cycle);
        kn_w_uint(b, op->amount);
        w_code(b, op->ref);
        break;
    case LEDGER_OP_CLEARING: kn_w_uint(b, op->mode); kn_w_uint(b, op->amount); break;
    case LEDGER_OP_EVIDENCE:
        cons_vote_encode(&tx->evidence[0], b);
        cons_vote_encode(&tx->evidence[1], b);
        break;
    default: KN_REQUIRE(!"unknown operation kind");
    }
}

static void encode_op(const ledger_tx *tx, const ledger_op *op, kn_buf *b)
{
    if (op->kind == LEDGER_OP_CURRENCY) {
        ledger__currency_encode(&tx->currency_def, LEDGER_OP_CURRENCY, b);
        return;
    }
    if (op->kind == LEDGER_OP_PROGRAMME) {
        ledger__programme_encode(&tx->programme_def, LEDGER_OP_PROGRAMME, false, b);
        return;
    }
    KN_REQUIRE(op->kind >= 1 && op->kind <= LEDGER_OP_KIND_MAX);
    kn_w_array(b, op_fields[op->kind]);
    kn_w_uint(b, op->kind);
    w_code(b, op->currency);
    encode_op_rest(tx, op, b);
}

/* The fields shared by the body and the full transaction, after the array head. */
static void encode_fields(const ledger_tx *tx, kn_buf *b)
{
    KN_REQUIRE(tx->n_ops <= LEDGER_OPS_MAX && tx->n_sigs <= LEDGER_SIGS_MAX);
    kn_w_uint(b, TX_VERSION);
    kn_w_str(b, tx->chain_id, strlen(tx->chain_id));
    kn_w_uint(b, tx->nonce);
    kn_w_uint(b, tx->expiry_height);
    kn_w_array(b, tx->n_ops);
    for (uint32_t i = 0; i < tx->n_ops; i++) encode_op(tx, &tx->ops[i], b);
}

void ledger_tx_body(const ledger_tx *tx, kn_buf *b)
{
    kn_w_array(b, BODY_FIELDS);
    encode_fields(tx, b);
}

void ledger_tx_encode(const ledger_tx *tx, kn_buf *b)
{
    kn_w_array(b, TX_FIELDS);
    encode_fields(tx, b);
    kn_w_array(b, tx->n_sigs);
    for (uint32_t i = 0; i < tx->n_sigs; i++) {
        kn_w_array(b, 2);
        kn_w_bin(b, tx->sigs[i].pk, KN_PK_BYTES);
        kn_w_bin(b, tx->sigs[i].sig, KN_SIG_BYTES);
    }
}

/* ---------------------------------------------------------------- decoding */

static void read_payees(rd *r, ledger_tx *tx)
{
    r_array(r, &tx->n_payees, LEDGER_PAYEES_MAX);
    fail(r, tx->n_payees == 0, KN_EINVAL);
    for (uint32_t i = 0; i < tx->n_payees && !r->rc; i++) {
        uint32_t fields = 0;
        r_array(r, &fields, 2);
        fail(r, fields != 2, KN_EDECODE);
        r_party(r, tx->payees[i].pk);
        r_amount(r, &tx->payees[i].amount);
    }
}

static void read_grant(rd *r, ledger_op *op, bool grant)
{
    r_u32(r, &op->role, LEDGER_ROLE_MAX);
    fail(r, op->role == 0, KN_EINVAL);
    r_party(r, op->from);
    if (grant) {
        r_text(r, op->ref, 0, LEDGER_CATEGORY_MAX);
        r_uint(r, &op->amount, INT64_MAX);
        bool merchant = op->role == LEDGER_ROLE_MERCHANT;
        fail(r, merchant != (op->ref[0] != '\0'), KN_EINVAL);
        /* Reports list spending at SSE entities under "sse". */
        fail(r, merchant && strcmp(op->ref, "sse") == 0, KN_EINVAL);
        fail(r, op->amount && op->role != LEDGER_ROLE_SSE, KN_EINVAL);
    }
    /* The consortium admin role alone is held for the whole consortium. */
    bool consortium = op->role == LEDGER_ROLE_CONSORTIUM_ADMIN;
    fail(r, consortium != (op->currency[0] == '\0'), KN_EINVAL);
}

/* A memo commitment: empty, or 32 bytes. */
static void r_memo(rd *r, ledger_op *op)
{
    const uint8_t *memo = NULL;
    size_t memo_len = 0;
    if (!r->rc) r->rc = kn_r_bin(&r->c, &memo, &memo_len);
    fail(r, memo_len != 0 && memo_len != KN_HASH_BYTES, KN_EINVAL);
    if (r->rc) return;
    op->has_link = memo_len != 0;
    if (op->has_link) memcpy(op->link, memo, KN_HASH_BYTES);
}

static void read_transfer(rd *r, ledger_op *op)
{
    r_pk(r, op->from); /* all zero: the treasury pays */
    r_programme(r, op->programme, 0);
    fail(r, sodium_is_zero(op->from, KN_PK_BYTES) && op->programme[0], KN_EINVAL);
    r_pk(r, op->to);
    r_amount(r, &op->amount);
    r_memo(r, op);
    fail(r, memcmp(op->from, op->to, KN_PK_BYTES) == 0, KN_ESELFPAY);
}

/* Rates are exact fractions of bounded terms, with a window that is not empty. */
static void read_rate(rd *r, ledger_op *op)
{
    r_code(r, op->counter);
    r_uint(r, &op->num, LEDGER_RATE_TERM_MAX);
    r_uint(r, &op->den, LEDGER_RATE_TERM_MAX);
    r_uint(r, &op->start_ms, INT64_MAX);
    r_uint(r, &op->end_ms, INT64_MAX);
    fail(r, op->num == 0 || op->den == 0 || op->start_ms >= op->end_ms, KN_EINVAL);
    fail(r, strcmp(op->currency, op->counter) == 0, KN_EINVAL);
}

static void read_exchange(rd *r, ledger_op *op)
{
    uint64_t mode = 0;
    r_party(r, op->from);
    r_code(r, op->counter);
    r_party(r, op->to);
    r_uint(r, &mode, LEDGER_EXCHANGE_DELIVER);
    op->mode = (uint8_t)mode;
    r_amount(r, &op->amount);
    r_uint(r, &op->limit, INT64_MAX);
    r_memo(r, op);
    fail(r, mode == 0 || strcmp(op->currency, op->counter) == 0, KN_EINVAL);
    /* A send-max bounds what a delivery costs; a send costs its amount. */
    fail(r, mode == LEDGER_EXCHANGE_SEND && op->limit, KN_EINVAL);
}

/* The fields after [kind, currency]. */
static void read_op_rest(rd *r, ledger_tx *tx, ledger_op *op)
{
    switch (op->kind) {
    case LEDGER_OP_ISSUE:
    case LEDGER_OP_RETIRE:
        r_amount(r, &op->amount);
        r_text(r, op->ref, op->kind == LEDGER_OP_ISSUE, LEDGER_REF_MAX);
        break;
    case LEDGER_OP_TRANSFER: read_transfer(r, op); break;
    case LEDGER_OP_GRANT: read_grant(r, op, true); break;
    case LEDGER_OP_REVOKE: read_grant(r, op, false); break;
    case LEDGER_OP_ACCOUNT:
        r_u32(r, &op->role, LEDGER_ACCOUNT_ACTION_MAX);
        fail(r, op->role == 0, KN_EINVAL);
        r_party(r, op->from);
        break;
    case LEDGER_OP_FUND: r_programme(r, op->programme, 1); r_amount(r, &op->amount); break;
    case LEDGER_OP_DISBURSE:
        r_programme(r, op->programme, 1);
        r_text(r, op->ref, 1, LEDGER_BATCH_MAX);
        read_payees(r, tx);
        break;
    case LEDGER_OP_REDEEM:
        r_party(r, op->from);
        r_amount(r, &op->amount);
        r_text(r, op->ref, 1, LEDGER_REF_MAX);
        break;
    case LEDGER_OP_REVERSE:
        if (!r->rc) r->rc = kn_r_bin_fixed(&r->c, op->link, KN_HASH_BYTES);
        r_u32(r, &op->role, LEDGER_OPS_MAX - 1);
        r_amount(r, &op->amount);
        r_text(r, op->ref, 0, LEDGER_REF_MAX);
        break;
    case LEDGER_OP_CLAWBACK:
        r_party(r, op->from);
        r_programme(r, op->programme, 0);
        r_amount(r, &op->amount);
        r_text(r, op->ref, 1, LEDGER_REF_MAX);
        break;
    case LEDGER_OP_EXPIRE: r_programme(r, op->programme, 1); break;
    case LEDGER_OP_RATE: read_rate(r, op); break;
    case LEDGER_OP_EXCHANGE: read_exchange(r, op); break;
    case LEDGER_OP_CLOSE: {
        uint64_t netting = 0;
        r_uint(r, &op->cycle, UINT64_MAX);
        r_uint(r, &netting, LEDGER_NETTING_MULTILATERAL);
        op->mode = (uint8_t)netting;
        fail(r, op->cycle == 0 || netting == 0, KN_EINVAL);
        break;
    }
    case LEDGER_OP_SETTLE:
        r_code(r, op->counter);
        r_uint(r, &op->cycle, UINT64_MAX);
        r_amount(r, &op->amount);
        r_text(r, op->ref, 1, LEDGER_REF_MAX);
        fail(r, op->cycle == 0 || strcmp(op->currency, op->counter) == 0, KN_EINVAL);
        break;
    case LEDGER_OP_CLEARING: {
        uint64_t direction = 0;
        r_uint(r, &direction, LEDGER_CLEARING_RETURN);
        op->mode = (uint8_t)direction;
        r_amount(r, &op->amount);
        fail(r, direction == 0, KN_EINVAL);
        break;
    }
    case LEDGER_OP_EVIDENCE:
        /* Only the shape here; whether the votes conflict and verify is the
         * rule's (bad_evidence), so that a refusal is recorded like any other. */
        if (!r->rc) r->rc = cons_vote_decode(&r->c, &tx->evidence[0]);
        if (!r->rc) r->rc = cons_vote_decode(&r->c, &tx->evidence[1]);
        break;
    default: KN_REQUIRE(!"unknown operation kind");
    }
}

static void read_op(rd *r, ledger_tx *tx, ledger_op *op)
{
    uint32_t fields = 0;
    uint64_t kind = 0;
    r_array(r, &fields, UINT32_MAX);
    if (!r->rc) r->rc = kn_r_uint(&r->c, &kind);
    fail(r, kind == 0 || kind > LEDGER_OP_KIND_MAX, KN_EUNKNOWNOP);
    fail(r, fields != op_fields[kind <= LEDGER_OP_KIND_MAX ? kind : 0], KN_EDECODE);
    if (r->rc) return;
    op->kind = (uint8_t)kind;
    if (kind == LEDGER_OP_CURRENCY) {
        read_currency(r, &tx->currency_def);
        strcpy(op->currency, tx->currency_def.code);
    } else if (kind == LEDGER_OP_PROGRAMME) {
        read_programme(r, &tx->programme_def);
        strcpy(op->currency, tx->programme_def.currency);
    } else {
        /* "" names the consortium: its admin role, its settlement cycles and
         * the evidence against its validators. */
        bool any = kind == LEDGER_OP_GRANT || kind == LEDGER_OP_REVOKE;
        bool consortium = kind == LEDGER_OP_CLOSE || kind == LEDGER_OP_EVIDENCE;
        r_text(r, op->currency, any || consortium ? 0 : 1, LEDGER_CODE_MAX);
        fail(r, consortium && op->currency[0], KN_EINVAL);
        read_op_rest(r, tx, op);
    }
}

/* The payloads beside the operations exist once per transaction; an expiry
 * (which sweeps a whole programme), a cycle's close (which reads the cycle's
 * records as the store holds them) and evidence (which needs no signer, so
 * must not carry operations that do) stand alone. */
static int ops_shape_check(const ledger_tx *tx)
{
    uint32_t per_kind[LEDGER_OP_KIND_MAX + 1] = {0};
    for (uint32_t i = 0; i < tx->n_ops; i++) per_kind[tx->ops[i].kind]++;
    if (per_kind[LEDGER_OP_CURRENCY] > 1 || per_kind[LEDGER_OP_PROGRAMME] > 1 ||
        per_kind[LEDGER_OP_DISBURSE] > 1)
        return KN_EINVAL;
    if ((per_kind[LEDGER_OP_EXPIRE] || per_kind[LEDGER_OP_CLOSE] || per_kind[LEDGER_OP_EVIDENCE]) &&
        tx->n_ops > 1)
        return KN_EINVAL;
    return 0;
}

static int decode_ops(kn_cur *c, ledger_tx *tx)
{
    rd r = {*c, 0};
    r_array(&r, &tx->n_ops, LEDGER_OPS_MAX);
    fail(&r, tx->n_ops == 0, KN_ENOOPS);
    for (uint32_t i = 0; i < tx->n_ops && !r.rc; i++) read_op(&r, tx, &tx->ops[i]);
    *c = r.c;
    return r.rc ? r.rc : ops_shape_check(tx);
}

/* Signatures in strictly increasing key order: no duplicates, one order. */
static int decode_sigs(kn_cur *c, ledger_tx *tx)
{
    int rc = kn_r_array(c, &tx->n_sigs);
    if (rc) return rc;
    if (tx->n_sigs > LEDGER_SIGS_MAX) return KN_ETOOBIG;
    for (uint32_t i = 0; i < tx->n_sigs; i++) {
        uint32_t fields;
        ledger_sig *s = &tx->sigs[i];
        rc = kn_r_array(c, &fields);
        if (!rc && fields != 2) rc = KN_EDECODE;
        if (!rc) rc = kn_r_bin_fixed(c, s->pk, KN_PK_BYTES);
        if (!rc) rc = kn_r_bin_fixed(c, s->sig, KN_SIG_BYTES);
        if (!rc && i > 0 && memcmp(tx->sigs[i - 1].pk, s->pk, KN_PK_BYTES) >= 0)
            rc = KN_ENONCANON;
        if (rc) return rc;
    }
    return 0;
}

/* An evidence transaction: its one operation is evidence (ops_shape_check
 * keeps evidence alone). */
static bool evidence_tx(const ledger_tx *tx)
{
    return tx->n_ops == 1 && tx->ops[0].kind == LEDGER_OP_EVIDENCE;
}

_Static_assert(offsetof(ledger_tx, evidence) ==
                   offsetof(ledger_tx, payees) + sizeof(((ledger_tx *)0)->payees),
               "ledger_tx_decode clears around the payees");

int ledger_tx_decode(const uint8_t *p, size_t n, ledger_tx *tx)
{
    if (n > LEDGER_TX_BYTES_MAX) return KN_ETOOBIG;
    /* Everything is cleared but the payees, nearly half the struct and read
     * only up to n_payees: a block decodes thousands of transactions. */
    memset(tx, 0, offsetof(ledger_tx, payees));
    memset(&tx->evidence, 0, sizeof *tx - offsetof(ledger_tx, evidence));
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    uint64_t version;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != TX_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &version);
    if (!rc && version != TX_VERSION) rc = KN_EDECODE;
    if (!rc) rc = ledger__r_text(&c, tx->chain_id, 1, KN_CHAIN_ID_MAX);
    if (!rc) rc = kn_r_uint(&c, &tx->nonce);
    if (!rc) rc = kn_r_uint(&c, &tx->expiry_height);
    if (!rc) rc = decode_ops(&c, tx);
    if (rc) return rc;
    size_t body_end = n - c.left;
    rc = decode_sigs(&c, tx);
    if (rc) return rc;
    if (c.left != 0) return KN_EDECODE;
    /* Evidence has no signer; a signature would only make a second byte form. */
    if (evidence_tx(tx) && tx->n_sigs) return KN_EINVAL;
    /* The body is the transaction without its last field: the same bytes after
     * a 5-array head instead of the 6-array head (both one byte, fixarray). */
    uint8_t body[LEDGER_TX_BYTES_MAX];
    body[0] = 0x90 | BODY_FIELDS;
    memcpy(body + 1, p + 1, body_end - 1);
    kn_hash(tx->id, KN_DOMAIN_TX, body, body_end);
    return 0;
}

/* ---------------------------------------------------------------- signatures */

int ledger_tx_sign(ledger_tx *tx, const kn_keypair *kp)
{
    uint32_t at = 0;
    while (at < tx->n_sigs && memcmp(tx->sigs[at].pk, kp->pk, KN_PK_BYTES) < 0) at++;
    bool replace = at < tx->n_sigs && memcmp(tx->sigs[at].pk, kp->pk, KN_PK_BYTES) == 0;
    if (!replace && tx->n_sigs == LEDGER_SIGS_MAX) return KN_ETOOBIG;
    kn_buf body = {0};
    ledger_tx_body(tx, &body);
    if (!replace) {
        memmove(&tx->sigs[at + 1], &tx->sigs[at], (tx->n_sigs - at) * sizeof tx->sigs[0]);
        tx->n_sigs++;
        memcpy(tx->sigs[at].pk, kp->pk, KN_PK_BYTES);
    }
    kn_sign(tx->sigs[at].sig, kp, KN_DOMAIN_TX, tx->chain_id, body.data, body.len);
    kn_hash(tx->id, KN_DOMAIN_TX, body.data, body.len);
    kn_buf_free(&body);
    return 0;
}

bool ledger_tx_signed_by(const ledger_tx *tx, const uint8_t pk[KN_PK_BYTES])
{
    for (uint32_t i = 0; i < tx->n_sigs; i++)
        if (memcmp(tx->sigs[i].pk, pk, KN_PK_BYTES) == 0) return true;
    return false;
}

int ledger_tx_verify(const ledger_tx *tx, const char *chain_id)
{
    if (strcmp(tx->chain_id, chain_id) != 0) return KN_EWRONGCHAIN;
    if (evidence_tx(tx)) return tx->n_sigs == 0 ? 0 : KN_EWRONGSIGNER;
    if (tx->n_sigs == 0) return KN_EWRONGSIGNER;
    kn_buf body = {0};
    ledger_tx_body(tx, &body);
    int rc = 0;
    for (uint32_t i = 0; i < tx->n_sigs && !rc; i++)
        rc = kn_verify(tx->sigs[i].sig, tx->sigs[i].pk, KN_DOMAIN_TX, chain_id, body.data,
                       body.len);
    kn_buf_free(&body);
    return rc ? KN_EBADSIG : 0;
}

/* ---------------------------------------------------------------- evidence */

bool ledger_evidence_order(const cons_vote *a, const cons_vote *b)
{
    if (a->nil != b->nil) return a->nil;
    int c = a->nil ? 0 : memcmp(a->block_id, b->block_id, KN_HASH_BYTES);
    if (c) return c < 0;
    /* Not a conflict; still a total order, for determinism. */
    kn_buf x = {0}, y = {0};
    cons_vote_encode(a, &x);
    cons_vote_encode(b, &y);
    c = x.len != y.len ? (x.len < y.len ? -1 : 1) : memcmp(x.data, y.data, x.len);
    kn_buf_free(&x);
    kn_buf_free(&y);
    return c < 0;
}

void ledger_evidence_tx(ledger_tx *tx, const char *chain_id, const cons_vote *a,
                        const cons_vote *b)
{
    memset(tx, 0, sizeof *tx);
    snprintf(tx->chain_id, sizeof tx->chain_id, "%s", chain_id);
    tx->nonce = 0;
    tx->expiry_height = a->height > UINT64_MAX - LEDGER_EVIDENCE_EXPIRY_BLOCKS
                            ? UINT64_MAX
                            : a->height + LEDGER_EVIDENCE_EXPIRY_BLOCKS;
    tx->n_ops = 1;
    tx->ops[0].kind = LEDGER_OP_EVIDENCE;
    bool ab = ledger_evidence_order(a, b);
    tx->evidence[0] = ab ? *a : *b;
    tx->evidence[1] = ab ? *b : *a;
    /* A nil vote's block id is not signed: zero it, so the bytes are one. */
    for (int i = 0; i < 2; i++)
        if (tx->evidence[i].nil) memset(tx->evidence[i].block_id, 0, KN_HASH_BYTES);
    kn_buf body = {0};
    ledger_tx_body(tx, &body);
    kn_hash(tx->id, KN_DOMAIN_TX, body.data, body.len);
    kn_buf_free(&body);
}

/* ---------------------------------------------------------------- names */

static const char *const role_names[LEDGER_ROLE_MAX + 1] = {
    [LEDGER_ROLE_CONSORTIUM_ADMIN] = "consortium_admin",
    [LEDGER_ROLE_ISSUER_ADMIN] = "issuer_admin",
    [LEDGER_ROLE_PROGRAMME_MANAGER] = "programme_manager",
    [LEDGER_ROLE_AUDITOR] = "auditor",
    [LEDGER_ROLE_MERCHANT] = "merchant",
    [LEDGER_ROLE_SSE] = "sse",
    [LEDGER_ROLE_BENEFICIARY] = "beneficiary",
    [LEDGER_ROLE_CLEARING] = "clearing",
};

static const char *const op_names[LEDGER_OP_KIND_MAX + 1] = {
    [LEDGER_OP_ISSUE] = "issue",         [LEDGER_OP_TRANSFER] = "transfer",
    [LEDGER_OP_CURRENCY] = "currency",   [LEDGER_OP_GRANT] = "grant",
    [LEDGER_OP_REVOKE] = "revoke",       [LEDGER_OP_ACCOUNT] = "account",
    [LEDGER_OP_RETIRE] = "retire",       [LEDGER_OP_PROGRAMME] = "programme",
    [LEDGER_OP_FUND] = "fund",           [LEDGER_OP_DISBURSE] = "disburse",
    [LEDGER_OP_REDEEM] = "redeem",       [LEDGER_OP_REVERSE] = "reverse",
    [LEDGER_OP_CLAWBACK] = "clawback",   [LEDGER_OP_EXPIRE] = "expire",
    [LEDGER_OP_RATE] = "rate",           [LEDGER_OP_EXCHANGE] = "exchange",
    [LEDGER_OP_CLOSE] = "close",         [LEDGER_OP_SETTLE] = "settle",
    [LEDGER_OP_CLEARING] = "clearing",   [LEDGER_OP_EVIDENCE] = "evidence",
};

static const char *const action_names[LEDGER_ACCOUNT_ACTION_MAX + 1] = {
    [LEDGER_ACCOUNT_AUTHORISE] = "authorise",
    [LEDGER_ACCOUNT_FREEZE] = "freeze",
    [LEDGER_ACCOUNT_UNFREEZE] = "unfreeze",
    [LEDGER_ACCOUNT_CLOSE] = "close",
};

static const char *const flag_names[] = {
    "auth_required", "freezable", "clawback", "p2p", "holder_redeem", "demurrage", "mutual_credit",
};

static const char *const kind_names[LEDGER_ACC_KIND_MAX + 1] = {
    [LEDGER_ACC_ISSUING] = "issuing",     [LEDGER_ACC_TREASURY] = "treasury",
    [LEDGER_ACC_PROGRAMME] = "programme", [LEDGER_ACC_BENEFICIARY] = "beneficiary",
    [LEDGER_ACC_MERCHANT] = "merchant",   [LEDGER_ACC_SSE] = "sse",
    [LEDGER_ACC_CLEARING] = "clearing",   [LEDGER_ACC_FEES] = "fees",
    [LEDGER_ACC_DEMURRAGE] = "demurrage", [LEDGER_ACC_HOLDER] = "holder",
    [LEDGER_ACC_CLEARING_HOUSE] = "clearing_house",
};

static const char *name_of(const char *const *names, size_t n, uint32_t v)
{
    return v < n && names[v] ? names[v] : "unknown";
}

static uint32_t parse_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 1; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0) return (uint32_t)i;
    return 0;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

const char *ledger_role_name(uint32_t role)
{
    return name_of(role_names, N_OF(role_names), role);
}

uint32_t ledger_role_parse(const char *name)
{
    return parse_of(role_names, N_OF(role_names), name);
}

const char *ledger_op_name(uint32_t kind)
{
    if (kind == LEDGER_MOVE_DEMURRAGE) return "demurrage";
    if (kind == LEDGER_MOVE_FEE) return "fee";
    return name_of(op_names, N_OF(op_names), kind);
}

const char *ledger_action_name(uint32_t action)
{
    return name_of(action_names, N_OF(action_names), action);
}

uint32_t ledger_action_parse(const char *name)
{
    return parse_of(action_names, N_OF(action_names), name);
}

const char *ledger_account_kind_name(uint32_t kind)
{
    return name_of(kind_names, N_OF(kind_names), kind);
}

const char *ledger_flag_name(uint32_t flag)
{
    for (size_t i = 0; i < N_OF(flag_names); i++)
        if (flag == 1u << i) return flag_names[i];
    return "unknown";
}

uint32_t ledger_flag_parse(const char *name)
{
    for (size_t i = 0; i < N_OF(flag_names); i++)
        if (strcmp(flag_names[i], name) == 0) return 1u << i;
    return 0;
}
