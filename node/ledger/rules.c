/*
 * The money rules: issue and transfer, applied atomically per transaction.
 *
 * Atomicity comes from an overlay, not from an LMDB child transaction: every
 * amount an operation reads or writes goes through a small in-memory write set
 * of the transaction, and only when every operation has passed its rules is
 * the set written to the store. A rule failure therefore writes nothing (the
 * second operation failing leaves the first undone), a store failure lands as
 * the sticky error of the caller's transaction, and the hot path of a block
 * (thousands of transactions) does not pay for a nested LMDB transaction each.
 * Later operations of one transaction see the effects of earlier ones.
 *
 * Before anything is written, the write set is checked for conservation: per
 * currency, the holders' balance changes sum to the change of the holders'
 * total, which is the opposite of the issuing account's change. A mismatch is a
 * bug in these rules and aborts.
 */
#include <string.h>

#include "node/ledger/internal.h"

/* Per operation at most: two balances, the issuing account, the holders' total,
 * and the holder count of its currency. */
#define OVERLAY_MAX (5 * LEDGER_OPS_MAX)

enum entry_kind { ENTRY_BALANCE = 1, ENTRY_ISSUING, ENTRY_HOLDERS, ENTRY_COUNT };

typedef struct entry {
    uint8_t kind;
    bool existed; /* a record was in the store before this transaction */
    bool dirty;   /* written by this transaction */
    uint8_t klen;
    uint8_t key[LEDGER__KEY_MAX];
    char code[LEDGER_CODE_MAX + 1];
    int64_t before, after;
} entry;

typedef struct overlay {
    uint32_t n;
    entry e[OVERLAY_MAX];
} overlay;

static size_t entry_key(uint8_t key[LEDGER__KEY_MAX], uint8_t kind, const char *code,
                        const uint8_t *pk)
{
    switch (kind) {
    case ENTRY_BALANCE: return ledger__key_balance(key, pk, code);
    case ENTRY_ISSUING: return ledger__key_issuing(key, code);
    case ENTRY_HOLDERS: return ledger__key_holders(key, code);
    case ENTRY_COUNT: return ledger__key_holder_count(key, code);
    default: KN_REQUIRE(!"unknown overlay entry kind");
    }
}

/* The overlay entry of one amount, read from the store on first use. */
static int load(store_txn *t, overlay *ov, uint8_t kind, const char *code, const uint8_t *pk,
                entry **out)
{
    uint8_t key[LEDGER__KEY_MAX];
    size_t klen = entry_key(key, kind, code, pk);
    for (uint32_t i = 0; i < ov->n; i++) {
        if (ov->e[i].klen == klen && memcmp(ov->e[i].key, key, klen) == 0) {
            *out = &ov->e[i];
            return 0;
        }
    }
    KN_REQUIRE(ov->n < OVERLAY_MAX);
    entry *e = &ov->e[ov->n];
    int rc = ledger__get_amount(t, key, klen, &e->before);
    if (rc && rc != KN_ENOTFOUND) return rc;
    e->existed = rc == 0;
    if (!e->existed) e->before = 0;
    e->after = e->before;
    e->dirty = false;
    e->kind = kind;
    e->klen = (uint8_t)klen;
    memcpy(e->key, key, klen);
    strcpy(e->code, code);
    ov->n++;
    *out = e;
    return 0;
}

static void set(entry *e, int64_t v)
{
    e->after = v;
    e->dirty = true;
}

/* ---------------------------------------------------------------- operations */

static int op_issue(store_txn *t, overlay *ov, const ledger_op *op)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, op->currency, &cur);
    if (rc) return rc;
    if (memcmp(op->from, cur.issuer, KN_PK_BYTES) != 0) return KN_EWRONGSIGNER;
    if (op->amount == 0) return KN_EZEROAMOUNT;
    entry *iss, *hold, *to;
    rc = load(t, ov, ENTRY_ISSUING, op->currency, NULL, &iss);
    if (!rc) rc = load(t, ov, ENTRY_HOLDERS, op->currency, NULL, &hold);
    if (!rc) rc = load(t, ov, ENTRY_BALANCE, op->currency, op->to, &to);
    if (rc) return rc;
    KN_REQUIRE(iss->existed && hold->existed);
    KN_REQUIRE(iss->after <= 0 && iss->after > INT64_MIN && hold->after == -iss->after);
    uint64_t supply = (uint64_t)-iss->after;
    if (op->amount > cur.max_supply || supply > cur.max_supply - op->amount) return KN_ESUPPLY;
    if (op->amount > INT64_MAX) return KN_EOVERFLOW;
    int64_t amount = (int64_t)op->amount, new_iss, new_hold, new_to;
    if (!kn_sub_i64(iss->after, amount, &new_iss) || !kn_add_i64(hold->after, amount, &new_hold) ||
        !kn_add_i64(to->after, amount, &new_to))
        return KN_EOVERFLOW;
    set(iss, new_iss);
    set(hold, new_hold);
    set(to, new_to);
    return 0;
}

static int op_transfer(store_txn *t, overlay *ov, const ledger_op *op)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, op->currency, &cur);
    if (rc) return rc;
    if (memcmp(op->from, op->to, KN_PK_BYTES) == 0) return KN_ESELFPAY;
    if (op->amount == 0) return KN_EZEROAMOUNT;
    entry *from, *to;
    rc = load(t, ov, ENTRY_BALANCE, op->currency, op->from, &from);
    if (rc) return rc;
    /* A key that never held the currency has no account to pay from; one that
     * holds zero has an account and is merely short. */
    if (!from->existed && !from->dirty) return KN_ENOACCOUNT;
    KN_REQUIRE(from->after >= 0);
    if (op->amount > (uint64_t)from->after) return KN_EOVERDRAFT;
    rc = load(t, ov, ENTRY_BALANCE, op->currency, op->to, &to);
    if (rc) return rc;
    int64_t amount = (int64_t)op->amount, new_to;
    if (!kn_add_i64(to->after, amount, &new_to)) return KN_EOVERFLOW;
    set(from, from->after - amount);
    set(to, new_to);
    return 0;
}

static int apply_op(store_txn *t, overlay *ov, const ledger_op *op)
{
    switch (op->kind) {
    case LEDGER_OP_ISSUE: return op_issue(t, ov, op);
    case LEDGER_OP_TRANSFER: return op_transfer(t, ov, op);
    default: return KN_EUNKNOWNOP;
    }
}

/* ---------------------------------------------------------------- write-out */

/* Conservation of one transaction's write set, per currency (see the top). */
static void check_conservation(const overlay *ov)
{
    for (uint32_t i = 0; i < ov->n; i++) {
        bool first = true;
        for (uint32_t j = 0; j < i && first; j++) first = strcmp(ov->e[j].code, ov->e[i].code) != 0;
        if (!first) continue;
        __int128 balances = 0, holders = 0, issuing = 0;
        for (uint32_t j = i; j < ov->n; j++) {
            const entry *e = &ov->e[j];
            if (strcmp(e->code, ov->e[i].code) != 0) continue;
            __int128 delta = (__int128)e->after - e->before;
            KN_REQUIRE(e->kind != ENTRY_BALANCE || e->after >= 0);
            if (e->kind == ENTRY_BALANCE) balances += delta;
            else if (e->kind == ENTRY_HOLDERS) holders += delta;
            else if (e->kind == ENTRY_ISSUING) issuing += delta;
        }
        KN_REQUIRE(balances == holders && issuing == -holders);
    }
}

/* Keeps each currency's count of holders with a positive balance: a balance
 * that rises from zero adds one, one that falls to zero removes one. */
static int count_holders(store_txn *t, overlay *ov)
{
    uint32_t n = ov->n; /* entries added below are counts, not balances */
    for (uint32_t i = 0; i < n; i++) {
        const entry *e = &ov->e[i];
        if (e->kind != ENTRY_BALANCE || (e->before > 0) == (e->after > 0)) continue;
        char code[LEDGER_CODE_MAX + 1];
        strcpy(code, e->code);
        int64_t change = e->after > 0 ? 1 : -1;
        entry *count;
        int rc = load(t, ov, ENTRY_COUNT, code, NULL, &count);
        if (rc) return rc;
        KN_REQUIRE(count->after + change >= 0);
        set(count, count->after + change);
    }
    return 0;
}

static int flush(store_txn *t, ledger__exec *ex, overlay *ov)
{
    check_conservation(ov);
    int rc = count_holders(t, ov);
    if (rc) return rc;
    kn_buf val = {0};
    kn_buf_reserve(&val, 16);
    for (uint32_t i = 0; i < ov->n; i++) {
        const entry *e = &ov->e[i];
        if (!e->dirty) continue;
        kn_buf_reset(&val);
        kn_w_int(&val, e->after);
        if (ledger__put(t, ex, STORE_STATE, e->key, e->klen, val.data, val.len)) break;
        ledger__touch(ex, e->code);
    }
    kn_buf_free(&val);
    return store_error(t);
}

int ledger__tx_apply(store_txn *t, ledger__exec *ex, const ledger_tx *tx, uint64_t height)
{
    KN_REQUIRE(tx->n_ops >= 1 && tx->n_ops <= LEDGER_OPS_MAX);
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_TXS, tx->id, KN_HASH_BYTES, &p, &n);
    if (rc == 0) return KN_EDUPTX;
    if (rc != KN_ENOTFOUND) return rc;
    if (tx->expiry_height < height) return KN_EEXPIRED;
    overlay ov; /* about 5 KB of stack; only n needs initialising */
    ov.n = 0;
    for (uint32_t i = 0; i < tx->n_ops; i++) {
        rc = apply_op(t, &ov, &tx->ops[i]);
        if (rc) return rc;
    }
    return flush(t, ex, &ov);
}

int ledger_tx_apply(store_txn *t, const ledger_tx *tx, uint64_t height)
{
    return ledger__tx_apply(t, NULL, tx, height);
}
