/*
 * Transactions: the canonical format (see ledger.h), ids, signing and the
 * stateless signature checks.
 *
 * The decoder reads through the strict cursor, so every value has exactly one
 * accepted form; with fixed array positions and signatures in strictly
 * increasing key order, a transaction has exactly one accepted byte string.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define TX_VERSION 1
#define TX_FIELDS 6
#define BODY_FIELDS 5
#define ISSUE_FIELDS 6
#define TRANSFER_FIELDS 5

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

/* ---------------------------------------------------------------- encoding */

static void encode_op(const ledger_op *op, kn_buf *b)
{
    bool issue = op->kind == LEDGER_OP_ISSUE;
    KN_REQUIRE(issue || op->kind == LEDGER_OP_TRANSFER);
    kn_w_array(b, issue ? ISSUE_FIELDS : TRANSFER_FIELDS);
    kn_w_uint(b, op->kind);
    kn_w_str(b, op->currency, strlen(op->currency));
    kn_w_bin(b, op->from, KN_PK_BYTES);
    kn_w_bin(b, op->to, KN_PK_BYTES);
    kn_w_uint(b, op->amount);
    if (issue) kn_w_str(b, op->ref, strlen(op->ref));
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
    for (uint32_t i = 0; i < tx->n_ops; i++) encode_op(&tx->ops[i], b);
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

static int decode_op(kn_cur *c, ledger_op *op)
{
    uint32_t fields;
    uint64_t kind;
    int rc = kn_r_array(c, &fields);
    if (!rc) rc = kn_r_uint(c, &kind);
    if (rc) return rc;
    if (kind != LEDGER_OP_ISSUE && kind != LEDGER_OP_TRANSFER) return KN_EUNKNOWNOP;
    op->kind = (uint8_t)kind;
    if (fields != (kind == LEDGER_OP_ISSUE ? ISSUE_FIELDS : TRANSFER_FIELDS)) return KN_EDECODE;
    rc = ledger__r_text(c, op->currency, 1, LEDGER_CODE_MAX);
    if (!rc) rc = kn_r_bin_fixed(c, op->from, KN_PK_BYTES);
    if (!rc) rc = kn_r_bin_fixed(c, op->to, KN_PK_BYTES);
    if (!rc) rc = kn_r_uint(c, &op->amount);
    if (!rc && kind == LEDGER_OP_ISSUE) rc = ledger__r_text(c, op->ref, 0, LEDGER_REF_MAX);
    if (rc) return rc;
    if (op->amount == 0) return KN_EZEROAMOUNT;
    if (kind == LEDGER_OP_TRANSFER && memcmp(op->from, op->to, KN_PK_BYTES) == 0)
        return KN_ESELFPAY;
    return 0;
}

static int decode_ops(kn_cur *c, ledger_tx *tx)
{
    int rc = kn_r_array(c, &tx->n_ops);
    if (rc) return rc;
    if (tx->n_ops == 0) return KN_ENOOPS;
    if (tx->n_ops > LEDGER_OPS_MAX) return KN_ETOOBIG;
    for (uint32_t i = 0; i < tx->n_ops && !rc; i++) rc = decode_op(c, &tx->ops[i]);
    return rc;
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

int ledger_tx_decode(const uint8_t *p, size_t n, ledger_tx *tx)
{
    if (n > LEDGER_TX_BYTES_MAX) return KN_ETOOBIG;
    memset(tx, 0, sizeof *tx);
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

static bool has_signed(const ledger_tx *tx, const uint8_t pk[KN_PK_BYTES])
{
    for (uint32_t i = 0; i < tx->n_sigs; i++)
        if (memcmp(tx->sigs[i].pk, pk, KN_PK_BYTES) == 0) return true;
    return false;
}

int ledger_tx_verify(const ledger_tx *tx, const char *chain_id)
{
    if (strcmp(tx->chain_id, chain_id) != 0) return KN_EWRONGCHAIN;
    kn_buf body = {0};
    ledger_tx_body(tx, &body);
    int rc = 0;
    for (uint32_t i = 0; i < tx->n_sigs && !rc; i++)
        rc = kn_verify(tx->sigs[i].sig, tx->sigs[i].pk, KN_DOMAIN_TX, chain_id, body.data,
                       body.len);
    kn_buf_free(&body);
    if (rc) return KN_EBADSIG;
    /* Issue is authorised by the issuer key, a transfer by its payer; whether
     * that issuer key really issues the currency is a state rule (rules.c). */
    for (uint32_t i = 0; i < tx->n_ops; i++)
        if (!has_signed(tx, tx->ops[i].from)) return KN_EWRONGSIGNER;
    return 0;
}
