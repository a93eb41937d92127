/*
 * Reports: a currency's figures over a period of days, added up from the
 * daily figures the rules keep ("F" and "G" records, see internal.h), in
 * integers only, so every node computes the same report from the same state.
 * docs/REPORTS.md defines each figure and works an example through.
 */
#include <stdlib.h>
#include <string.h>

#include "node/ledger/internal.h"

typedef struct category_sum {
    char name[LEDGER_CATEGORY_MAX + 1];
    int64_t amount;
} category_sum;

typedef struct categories {
    uint32_t n, cap;
    category_sum *c;
} categories;

/* Where each figure lands in the report. */
static int64_t *figure_of(ledger_report *r, uint8_t figure)
{
    switch (figure) {
    case LEDGER__FG_ISSUED: return &r->issued;
    case LEDGER__FG_RETIRED: return &r->retired;
    case LEDGER__FG_TREASURY_PAID: return &r->treasury_paid;
    case LEDGER__FG_DISBURSED: return &r->disbursed;
    case LEDGER__FG_SPENT: return &r->spent;
    case LEDGER__FG_RESPENT: return &r->respent;
    case LEDGER__FG_OTHER: return &r->other_payments;
    case LEDGER__FG_RETURNED: return &r->returned;
    case LEDGER__FG_REDEEMED: return &r->redeemed;
    case LEDGER__FG_FEES: return &r->fees;
    case LEDGER__FG_DEMURRAGE: return &r->demurrage;
    case LEDGER__FG_CLAWED: return &r->clawed_back;
    case LEDGER__FG_EXPIRED: return &r->expired;
    case LEDGER__FG_REVERSED: return &r->reversed;
    case LEDGER__FG_EXCHANGED_IN: return &r->exchanged_in;
    case LEDGER__FG_EXCHANGED_OUT: return &r->exchanged_out;
    default: KN_REQUIRE(!"unknown figure");
    }
}

/* Daily figures are flows, which over a long period could in principle pass
 * int64: sums stop at its ends rather than wrap. */
static void add_to(int64_t *sum, int64_t v)
{
    if (!kn_add_i64(*sum, v, sum)) *sum = v > 0 ? INT64_MAX : INT64_MIN;
}

static uint32_t key_day(const uint8_t *k, size_t at)
{
    return (uint32_t)k[at] << 24 | (uint32_t)k[at + 1] << 16 | (uint32_t)k[at + 2] << 8 | k[at + 3];
}

/* The money keys hold, followed day by day: before the period, at its end,
 * and the sum of each of its days' closing figures (a day without movement
 * closes where the one before it did). */
typedef struct held {
    int64_t now;
    uint32_t day; /* first day of the period not yet added to `days` */
    __int128 days;
} held;

static void held_until(held *h, uint32_t day)
{
    if (day > h->day) h->days += (__int128)h->now * (day - h->day);
    if (day > h->day) h->day = day;
}

static int add_figures(store_txn *t, ledger_report *r)
{
    ledger__key prefix;
    ledger__key_tag(&prefix, 'F');
    ledger__key_str(&prefix, r->currency);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, NULL, 0, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    held h = {0, r->from_day, 0};
    bool before = true;
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl == (size_t)prefix.n + 5);
        uint32_t day = key_day(k, prefix.n);
        uint8_t figure = k[kl - 1];
        int64_t amount;
        if (day >= r->to_day) break;
        amount = ledger__amount_of(v, vl);
        if (day >= r->from_day && before) {
            r->outstanding_start = h.now;
            before = false;
        }
        if (figure == LEDGER__FG_HELD) {
            held_until(&h, day);
            add_to(&h.now, amount);
            /* The day closes with its change in: counted from the next one on. */
            if (day >= r->from_day) {
                h.days += h.now;
                h.day = day + 1;
            }
        } else if (day >= r->from_day) {
            add_to(figure_of(r, figure), amount);
        }
    }
    store_iter_close(it);
    if (before) r->outstanding_start = h.now;
    held_until(&h, r->to_day);
    r->outstanding_end = h.now;
    r->outstanding_avg = (int64_t)(h.days / (r->to_day - r->from_day));
    return store_error(t);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const category_sum *)a)->name, ((const category_sum *)b)->name);
}

static void category_add(categories *cs, const char *name, int64_t amount)
{
    for (uint32_t i = 0; i < cs->n; i++) {
        if (strcmp(cs->c[i].name, name) == 0) {
            add_to(&cs->c[i].amount, amount);
            return;
        }
    }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 16;
        cs->c = realloc(cs->c, cs->cap * sizeof cs->c[0]);
        KN_REQUIRE(cs->c != NULL);
    }
    strcpy(cs->c[cs->n].name, name);
    cs->c[cs->n++].amount = amount;
}

/* Spending by merchant category over the period, in name order. */
static int categories_each(store_txn *t, const ledger_report *r,
                           void (*cb)(void *ctx, const char *category, int64_t amount), void *ctx)
{
    ledger__key prefix, start;
    ledger__key_tag(&prefix, 'G');
    ledger__key_str(&prefix, r->currency);
    start = prefix;
    ledger__key_u32(&start, r->from_day);
    store_iter *it;
    int rc = store_iter_open(t, STORE_STATE, prefix.b, prefix.n, start.b, start.n, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    categories cs = {0};
    while (store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl > (size_t)prefix.n + 5);
        if (key_day(k, prefix.n) >= r->to_day) break;
        char name[LEDGER_CATEGORY_MAX + 1];
        size_t n = k[prefix.n + 4];
        int64_t amount;
        KN_REQUIRE(n <= LEDGER_CATEGORY_MAX && kl == prefix.n + 5 + n);
        amount = ledger__amount_of(v, vl);
        memcpy(name, k + prefix.n + 5, n);
        name[n] = '\0';
        category_add(&cs, name, amount);
    }
    store_iter_close(it);
    if (cs.n) qsort(cs.c, cs.n, sizeof cs.c[0], by_name);
    for (uint32_t i = 0; i < cs.n && !store_error(t); i++) cb(ctx, cs.c[i].name, cs.c[i].amount);
    free(cs.c);
    return store_error(t);
}

/* floor(10000 * num / den), 0 when den is 0. */
static int64_t bps(__int128 num, __int128 den)
{
    return den > 0 ? (int64_t)(num * LEDGER_BPS / den) : 0;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The local multiplier over three rounds, retention and velocity. */
static void ratios(ledger_report *r)
{
    int64_t r1 = r->injected, r2 = min64(r->spent, r1), r3 = min64(r->respent, r2);
    __int128 local = (__int128)r->spent + r->respent + r->other_payments;
    r->lm3_bps = bps((__int128)r1 + r2 + r3, r1);
    r->retention_bps = bps(local, local + r->redeemed + r->fees + r->exchanged_out);
    r->velocity_bps = bps(local, r->outstanding_avg);
}

int ledger_report_get(store_txn *t, const char *code, uint32_t from_day, uint32_t to_day,
                      ledger_report *out,
                      void (*cb)(void *ctx, const char *category, int64_t amount), void *ctx)
{
    ledger_currency cur;
    int rc = ledger_currency_get(t, code, &cur);
    if (rc) return rc;
    if (from_day >= to_day) return KN_EINVAL;
    memset(out, 0, sizeof *out);
    strcpy(out->currency, cur.code);
    out->from_day = from_day;
    out->to_day = to_day;
    rc = add_figures(t, out);
    if (rc) return rc;
    out->injected = out->treasury_paid;
    add_to(&out->injected, out->disbursed);
    ratios(out);
    return cb ? categories_each(t, out, cb, ctx) : 0;
}
