/*
 * Between cities: the arithmetic of an exchange, the rate and cycle records,
 * and the netting that turns a closed cycle's records into the payments the
 * cities owe each other (docs/LEDGER.md, "Between cities").
 *
 * The rules (rules.c) write the records; everything here only reads them, so
 * the obligations a settlement is checked against are the very ones the API
 * lists.
 */
#include <string.h>

#include "node/ledger/internal.h"

#define RATE_FIELDS 5
#define SETTLEMENT_FIELDS 2

/* ---------------------------------------------------------------- amounts */

int ledger_exchange_amounts(uint64_t num, uint64_t den, uint8_t mode, uint64_t amount,
                            uint64_t *pay, uint64_t *get)
{
    KN_REQUIRE(num && den && (mode == LEDGER_EXCHANGE_SEND || mode == LEDGER_EXCHANGE_DELIVER));
    unsigned __int128 a = amount;
    unsigned __int128 p, g;
    if (mode == LEDGER_EXCHANGE_SEND) {
        p = a;
        g = a * num / den; /* what arrives rounds down */
    } else {
        g = a;
        p = (a * den + num - 1) / num; /* what is paid rounds up */
    }
    if (p > INT64_MAX || g > INT64_MAX) return KN_EOVERFLOW;
    if (g == 0) return KN_ETOOSMALL;
    *pay = (uint64_t)p;
    *get = (uint64_t)g;
    return 0;
}

/* ---------------------------------------------------------------- rates */

void ledger__rate_encode(const ledger_rate *r, kn_buf *b)
{
    kn_w_array(b, RATE_FIELDS);
    kn_w_uint(b, r->num);
    kn_w_uint(b, r->den);
    kn_w_uint(b, r->start_ms);
    kn_w_uint(b, r->end_ms);
    kn_w_uint(b, r->set_height);
}

int ledger__rate_decode(const uint8_t *p, size_t n, ledger_rate *r)
{
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != RATE_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(&c, &r->num);
    if (!rc) rc = kn_r_uint(&c, &r->den);
    if (!rc) rc = kn_r_uint(&c, &r->start_ms);
    if (!rc) rc = kn_r_uint(&c, &r->end_ms);
    if (!rc) rc = kn_r_uint(&c, &r->set_height);
    return rc ? rc : (c.left ? KN_EDECODE : 0);
}

int ledger_rate_get(store_txn *t, const char *base, const char *quote, ledger_rate *out)
{
    if (strlen(base) > LEDGER_CODE_MAX || strlen(quote) > LEDGER_CODE_MAX) return KN_ENOTFOUND;
    ledger__key k;
    ledger__key_rate(&k, base, quote);
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    strcpy(out->base, base);
    strcpy(out->quote, quote);
    KN_REQUIRE(ledger__rate_decode(p, n, out) == 0); /* the ledger wrote it */
    return 0;
}

/* A length-prefixed string of a key at *off (see the layout in internal.h). */
static void key_str(const uint8_t *k, size_t kl, size_t *off, char *out, size_t max)
{
    KN_REQUIRE(*off < kl);
    size_t n = k[*off];
    KN_REQUIRE(n <= max && *off + 1 + n <= kl);
    memcpy(out, k + *off + 1, n);
    out[n] = '\0';
    *off += 1 + n;
}

int ledger_rates_each(store_txn *t, void (*cb)(void *ctx, const ledger_rate *r), void *ctx)
{
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, "E", 1, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        ledger_rate r = {0};
        size_t off = 1;
        key_str(k, kl, &off, r.base, LEDGER_CODE_MAX);
        key_str(k, kl, &off, r.quote, LEDGER_CODE_MAX);
        KN_REQUIRE(off == kl && ledger__rate_decode(v, vl, &r) == 0);
        cb(ctx, &r);
    }
    store_iter_close(it);
    return store_error(t);
}

/* ---------------------------------------------------------------- cycles */

int ledger_cycle_current(store_txn *t, uint64_t *number)
{
    ledger__key k;
    int64_t v = 0;
    ledger__key_tag(&k, 'Y');
    int rc = ledger__get_cell(t, &k, &v);
    *number = v ? (uint64_t)v : 1;
    return rc;
}

int ledger_cycle_get(store_txn *t, uint64_t number, ledger_cycle *out)
{
    uint64_t current;
    int rc = ledger_cycle_current(t, &current);
    if (rc) return rc;
    if (number == 0 || number > current) return KN_ENOCYCLE;
    int64_t f[LEDGER__CY_FIELD_MAX + 1] = {0};
    for (uint8_t field = 1; field <= LEDGER__CY_FIELD_MAX && !rc; field++) {
        ledger__key k;
        ledger__key_cycle(&k, number, field);
        rc = ledger__get_cell(t, &k, &f[field]);
    }
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->number = number;
    out->closed = number < current;
    out->opened_ms = (uint64_t)f[LEDGER__CY_OPENED_MS];
    out->closed_ms = (uint64_t)f[LEDGER__CY_CLOSED_MS];
    out->closed_height = (uint64_t)f[LEDGER__CY_CLOSED_HEIGHT];
    out->netting = (uint8_t)f[LEDGER__CY_NETTING];
    out->exchanges = f[LEDGER__CY_EXCHANGES];
    out->value = f[LEDGER__CY_VALUE];
    out->obligations = f[LEDGER__CY_OBLIGATIONS];
    out->settled_count = f[LEDGER__CY_SETTLED];
    out->settled = out->closed && out->settled_count == out->obligations;
    return 0;
}

/* Calls cb for each (code, amount) cell under a cycle's prefix with one code. */
static int cycle_cells(store_txn *t, char tag, uint64_t cycle,
                       void (*cb)(void *ctx, const char *code, int64_t amount), void *ctx)
{
    ledger__key prefix;
    ledger__key_tag(&prefix, tag);
    ledger__key_u64(&prefix, cycle);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        char code[LEDGER_CODE_MAX + 1];
        size_t off = prefix.n;
        int64_t amount;
        key_str(k, kl, &off, code, LEDGER_CODE_MAX);
        KN_REQUIRE(off == kl);
        amount = ledger__amount_of(v, vl);
        cb(ctx, code, amount);
    }
    store_iter_close(it);
    return store_error(t);
}

int ledger_cycle_positions_each(store_txn *t, uint64_t number,
                                void (*cb)(void *ctx, const char *code, int64_t position),
                                void *ctx)
{
    ledger_cycle cy;
    int rc = ledger_cycle_get(t, number, &cy);
    return rc ? rc : cycle_cells(t, 'o', number, cb, ctx);
}

/* ---------------------------------------------------------------- netting */

typedef struct ledger_position {
    char code[LEDGER_CODE_MAX + 1];
    int64_t amount; /* still to pay (debtors) or to receive (creditors) */
} ledger_position;

typedef struct positions {
    uint32_t n_debtors, n_creditors;
    ledger_position debtors[LEDGER_CURRENCIES_MAX], creditors[LEDGER_CURRENCIES_MAX];
} positions;

static void position_add(void *ctx, const char *code, int64_t amount)
{
    positions *ps = ctx;
    if (amount == 0) return;
    bool owes = amount < 0;
    uint32_t *n = owes ? &ps->n_debtors : &ps->n_creditors;
    KN_REQUIRE(*n < LEDGER_CURRENCIES_MAX);
    ledger_position *p = owes ? &ps->debtors[*n] : &ps->creditors[*n];
    strcpy(p->code, code);
    p->amount = owes ? -amount : amount;
    (*n)++;
}

/* Each debtor pays creditors in turn, the smaller of what it still owes and
 * what the creditor is still owed: at most one payment fewer than the
 * currencies with a position, and circles of obligations cancel out. */
static int multilateral(store_txn *t, uint64_t cycle,
                        void (*cb)(void *ctx, const ledger_obligation *o), void *ctx)
{
    positions ps = {0};
    int rc = cycle_cells(t, 'o', cycle, position_add, &ps);
    uint32_t d = 0, c = 0;
    while (!rc && d < ps.n_debtors && c < ps.n_creditors) {
        ledger_position *debtor = &ps.debtors[d], *creditor = &ps.creditors[c];
        ledger_obligation o = {0};
        strcpy(o.debtor, debtor->code);
        strcpy(o.creditor, creditor->code);
        o.amount = debtor->amount < creditor->amount ? debtor->amount : creditor->amount;
        cb(ctx, &o);
        debtor->amount -= o.amount;
        creditor->amount -= o.amount;
        d += debtor->amount == 0;
        c += creditor->amount == 0;
    }
    /* The positions sum to zero, so both sides run out together. */
    KN_REQUIRE(rc || (d == ps.n_debtors && c == ps.n_creditors));
    return rc;
}

/* For each pair, what one owes the other less what the other owes it, paid by
 * whichever owes more. A pair is met from both of its records; it is paid from
 * the side with the larger record, so once. */
static int bilateral(store_txn *t, uint64_t cycle,
                     void (*cb)(void *ctx, const ledger_obligation *o), void *ctx)
{
    ledger__key prefix;
    ledger__key_tag(&prefix, 'e');
    ledger__key_u64(&prefix, cycle);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    while (!rc && store_iter_next(it, &k, &kl, &v, &vl)) {
        ledger_obligation o = {0};
        size_t off = prefix.n;
        int64_t owed, back;
        key_str(k, kl, &off, o.debtor, LEDGER_CODE_MAX);
        key_str(k, kl, &off, o.creditor, LEDGER_CODE_MAX);
        KN_REQUIRE(off == kl);
        owed = ledger__amount_of(v, vl);
        ledger__key other;
        ledger__key_pair(&other, 'e', cycle, o.creditor, o.debtor);
        rc = ledger__get_cell(t, &other, &back);
        o.amount = owed - back;
        if (!rc && o.amount > 0) cb(ctx, &o);
    }
    store_iter_close(it);
    return rc ? rc : store_error(t);
}

int ledger__obligations(store_txn *t, uint64_t cycle, uint8_t netting,
                        void (*cb)(void *ctx, const ledger_obligation *o), void *ctx)
{
    KN_REQUIRE(netting == LEDGER_NETTING_BILATERAL || netting == LEDGER_NETTING_MULTILATERAL);
    return netting == LEDGER_NETTING_BILATERAL ? bilateral(t, cycle, cb, ctx)
                                               : multilateral(t, cycle, cb, ctx);
}

void ledger__settlement_encode(const char *ref, uint64_t height, kn_buf *b)
{
    kn_w_array(b, SETTLEMENT_FIELDS);
    kn_w_str(b, ref, strlen(ref));
    kn_w_uint(b, height);
}

typedef struct with_settlement {
    store_txn *t;
    uint64_t cycle;
    void (*cb)(void *ctx, const ledger_obligation *o);
    void *ctx;
} with_settlement;

/* Adds the settlement record of an obligation, if any. */
static void settlement_add(void *ctx, const ledger_obligation *o)
{
    with_settlement *w = ctx;
    ledger_obligation full = *o;
    ledger__key k;
    const uint8_t *p;
    size_t n;
    ledger__key_pair(&k, 'Z', w->cycle, o->debtor, o->creditor);
    if (store_get(w->t, STORE_STATE, k.b, k.n, &p, &n) == 0) {
        kn_cur c = kn_cur_make(p, n);
        uint32_t fields;
        int rc = kn_r_array(&c, &fields);
        if (!rc) rc = ledger__r_text(&c, full.ref, 1, LEDGER_REF_MAX);
        if (!rc) rc = kn_r_uint(&c, &full.settled_height);
        KN_REQUIRE(rc == 0 && fields == SETTLEMENT_FIELDS && c.left == 0);
        full.settled = true;
    }
    w->cb(w->ctx, &full);
}

int ledger_cycle_obligations_each(store_txn *t, uint64_t number,
                                  void (*cb)(void *ctx, const ledger_obligation *o), void *ctx)
{
    ledger_cycle cy;
    int rc = ledger_cycle_get(t, number, &cy);
    if (rc) return rc;
    if (!cy.closed) return KN_ECYCLEOPEN;
    with_settlement w = {t, number, cb, ctx};
    rc = ledger__obligations(t, number, cy.netting, settlement_add, &w);
    return rc ? rc : store_error(t);
}
