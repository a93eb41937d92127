/*
 * The money rules, applied atomically per transaction (docs/LEDGER.md states
 * each rule, its signers and its error).
 *
 * Atomicity comes from an overlay, not from an LMDB child transaction: every
 * account, role set and figure an operation reads or writes goes through a
 * small in-memory write set of the transaction, and only when every operation
 * has passed its rules is the set written to the store. A rule failure
 * therefore writes nothing (the second operation failing leaves the first
 * undone), a store failure lands as the sticky error of the caller's
 * transaction, and the hot path of a block does not pay for a nested LMDB
 * transaction each. Later operations of one transaction see the effects of
 * earlier ones.
 *
 * Before anything is written, the write set is checked for conservation: in
 * every currency the balance changes sum to zero. A mismatch is a bug in these
 * rules and aborts. The counts that summarise the state (accounts with money
 * by kind, role holders, a programme's beneficiaries) are derived from the
 * write set at the same point, so no rule can forget one.
 */
#include <string.h>

#include "node/ledger/internal.h"

/* A disbursement touches per beneficiary its roles, its main account (frozen
 * or not), its sub-account and its cap figure, and indexes each new
 * beneficiary; other operations up to about 24 accounts, roles and figures
 * each (an exchange between two demurrage currencies). A transaction that
 * needs more is refused with KN_ETOOBIG, never half applied. */
#define OVERLAY_MAX (4 * LEDGER_PAYEES_MAX + 32 * LEDGER_OPS_MAX)
#define LEGS_MAX (2 * LEDGER_PAYEES_MAX + 8 * LEDGER_OPS_MAX)
#define RAWS_MAX (LEDGER_PAYEES_MAX + 2 * LEDGER_OPS_MAX)
#define ARENA_BYTES 8192
#define MOVE_RECORD_FIELDS 7
#define TRANSFER_RECORD_FIELDS 5

static const uint8_t zero_pk[KN_PK_BYTES];

enum entry_type { E_ACCOUNT = 1, E_CELL, E_ROLES };

typedef union value {
    ledger_account acct;
    int64_t cell;
    ledger_roles roles;
} value;

typedef struct entry {
    uint8_t type;
    bool existed; /* a record was in the store before this transaction */
    bool dirty;   /* written by this transaction */
    ledger__key key;
    value before, after;
} entry;

/* One side of a movement of money, for the account history. */
typedef struct leg {
    uint16_t op;
    uint8_t kind;
    uint8_t owner[KN_PK_BYTES];
    uint8_t counterparty[KN_PK_BYTES];
    char currency[LEDGER_CODE_MAX + 1];
    char sub[LEDGER_SUB_MAX + 1];
    char counterparty_sub[LEDGER_SUB_MAX + 1];
    int64_t amount;
} leg;

/* A record written as is and never read back by the same transaction. */
typedef struct raw {
    ledger__key key;
    uint32_t off, len;
} raw;

typedef struct rules {
    store_txn *t;
    ledger__exec *ex;
    const ledger_tx *tx;
    uint64_t height, time_ms;
    uint32_t index; /* of the transaction in its block */
    uint32_t op;    /* the operation being applied */
    const ledger_currency *new_currency;   /* created by an earlier operation */
    const ledger_programme *new_programme; /* likewise */
    bool quiet_to; /* the sweep lists the treasury's side once, in total */
    bool check_only; /* ledger_tx_check: the rules run, nothing is written */
    uint32_t n, n_legs, n_raws, arena_used;
    entry e[OVERLAY_MAX];
    leg legs[LEGS_MAX];
    raw raws[RAWS_MAX];
    uint8_t arena[ARENA_BYTES];
} rules;

static int flush(rules *R);

/* ---------------------------------------------------------------- the overlay */

static int read_entry(rules *R, entry *e)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(R->t, STORE_STATE, e->key.b, e->key.n, &p, &n);
    if (rc && rc != KN_ENOTFOUND) return rc;
    e->existed = rc == 0;
    if (!e->existed) return 0;
    kn_cur c = kn_cur_make(p, n);
    switch (e->type) {
    case E_ACCOUNT: rc = ledger__account_decode(p, n, &e->before.acct); break;
    case E_ROLES: rc = ledger__roles_decode(p, n, &e->before.roles); break;
    case E_CELL: rc = kn_r_int(&c, &e->before.cell); rc = rc ? rc : (c.left ? KN_EDECODE : 0); break;
    default: KN_REQUIRE(!"unknown entry type");
    }
    KN_REQUIRE(rc == 0); /* the ledger wrote it */
    return 0;
}

/* The overlay entry of a key, read from the store on first use; absent
 * records read as zero. */
static int load(rules *R, uint8_t type, const ledger__key *k, entry **out)
{
    for (uint32_t i = 0; i < R->n; i++) {
        entry *e = &R->e[i];
        if (e->key.n == k->n && memcmp(e->key.b, k->b, k->n) == 0) {
            KN_REQUIRE(e->type == type);
            *out = e;
            return 0;
        }
    }
    if (R->n == OVERLAY_MAX) return KN_ETOOBIG;
    entry *e = &R->e[R->n];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->key = *k;
    int rc = read_entry(R, e);
    if (rc) return rc;
    e->after = e->before;
    R->n++;
    *out = e;
    return 0;
}

static int cell_add(rules *R, const ledger__key *k, int64_t delta)
{
    entry *e;
    int rc = load(R, E_CELL, k, &e);
    if (rc) return rc;
    if (!kn_add_i64(e->after.cell, delta, &e->after.cell)) return KN_EOVERFLOW;
    e->dirty = true;
    return 0;
}

static int stat_add(rules *R, const char *code, uint8_t stat, int64_t delta)
{
    ledger__key k;
    ledger__key_stat(&k, code, stat);
    return cell_add(R, &k, delta);
}

static int pstat_add(rules *R, const char *code, const char *id, uint8_t stat, int64_t delta)
{
    ledger__key k;
    ledger__key_pstat(&k, code, id, stat);
    return cell_add(R, &k, delta);
}

static int pstat_get(rules *R, const char *code, const char *id, uint8_t stat, int64_t *v)
{
    ledger__key k;
    entry *e;
    ledger__key_pstat(&k, code, id, stat);
    int rc = load(R, E_CELL, &k, &e);
    if (!rc) *v = e->after.cell;
    return rc;
}

static void raw_put(rules *R, const ledger__key *k, const kn_buf *val)
{
    KN_REQUIRE(R->n_raws < RAWS_MAX && R->arena_used + val->len <= ARENA_BYTES);
    raw *w = &R->raws[R->n_raws++];
    w->key = *k;
    w->off = R->arena_used;
    w->len = (uint32_t)val->len;
    memcpy(R->arena + w->off, val->data, val->len);
    R->arena_used += w->len;
}

/* ---------------------------------------------------------------- lookups */

static int currency_get(rules *R, const char *code, ledger_currency *cur)
{
    if (R->new_currency && strcmp(R->new_currency->code, code) == 0) {
        *cur = *R->new_currency;
        return 0;
    }
    return ledger_currency_get(R->t, code, cur);
}

static int programme_get(rules *R, const char *code, const char *id, ledger_programme *pg)
{
    const ledger_programme *np = R->new_programme;
    if (np && strcmp(np->currency, code) == 0 && strcmp(np->id, id) == 0) {
        *pg = *np;
        return 0;
    }
    return ledger_programme_get(R->t, code, id, pg, NULL);
}

static int roles_load(rules *R, const char *code, const uint8_t pk[KN_PK_BYTES], entry **out)
{
    ledger__key k;
    ledger__key_roles(&k, code, pk);
    int rc = load(R, E_ROLES, &k, out);
    if (!rc) {
        strcpy((*out)->before.roles.currency, code);
        strcpy((*out)->after.roles.currency, code);
    }
    return rc;
}

static int has_role(rules *R, const char *code, const uint8_t pk[KN_PK_BYTES], uint32_t role,
                    bool *yes)
{
    entry *e;
    int rc = roles_load(R, code, pk, &e);
    if (!rc) *yes = e->after.roles.mask >> role & 1;
    return rc;
}

/* How many of the transaction's signers hold role in code. */
static int signers_with(rules *R, const char *code, uint32_t role, uint32_t *count)
{
    *count = 0;
    for (uint32_t i = 0; i < R->tx->n_sigs; i++) {
        bool yes;
        int rc = has_role(R, code, R->tx->sigs[i].pk, role, &yes);
        if (rc) return rc;
        *count += yes;
    }
    return 0;
}

/* At least one signer holds role_a or role_b. */
static int signed_by_role(rules *R, const char *code, uint32_t role_a, uint32_t role_b)
{
    uint32_t a, b = 0;
    int rc = signers_with(R, code, role_a, &a);
    if (!rc && role_b) rc = signers_with(R, code, role_b, &b);
    if (rc) return rc;
    return a + b ? 0 : KN_EUNAUTHORISED;
}

static int quorum_of(rules *R, const char *code, uint32_t role, uint32_t threshold)
{
    uint32_t n;
    int rc = signers_with(R, code, role, &n);
    if (rc) return rc;
    if (n == 0) return KN_EUNAUTHORISED;
    return n < threshold ? KN_EQUORUM : 0;
}

static int consortium_threshold(rules *R, uint32_t *threshold)
{
    uint32_t n;
    return ledger_consortium_get(R->t, threshold, &n);
}

static int consortium_quorum(rules *R)
{
    uint32_t threshold;
    int rc = consortium_threshold(R, &threshold);
    return rc ? rc : quorum_of(R, "", LEDGER_ROLE_CONSORTIUM_ADMIN, threshold);
}

static int issuer_quorum(rules *R, const ledger_currency *cur)
{
    return quorum_of(R, cur->code, LEDGER_ROLE_ISSUER_ADMIN, cur->issuer_threshold);
}

/* ---------------------------------------------------------------- accounts */

static int account_load(rules *R, const char *code, const uint8_t owner[KN_PK_BYTES],
                        const char *sub, entry **out)
{
    ledger__key k;
    ledger__key_account(&k, code, owner, sub);
    int rc = load(R, E_ACCOUNT, &k, out);
    if (rc) return rc;
    /* The record holds the values; the identity is the key's. */
    ledger_account *acct[] = {&(*out)->before.acct, &(*out)->after.acct};
    for (size_t i = 0; i < 2; i++) {
        strcpy(acct[i]->currency, code);
        memcpy(acct[i]->owner, owner, KN_PK_BYTES);
        strcpy(acct[i]->sub, sub);
    }
    return 0;
}

static bool account_exists(const entry *e)
{
    return e->existed || e->dirty;
}

/* Opens an absent account of the given kind at this block time. */
static void account_open(rules *R, entry *e, uint8_t kind, uint8_t flags)
{
    if (account_exists(e)) return;
    ledger_account *a = &e->after.acct;
    a->kind = kind;
    a->flags = flags;
    a->floor = kind == LEDGER_ACC_ISSUING ? INT64_MIN : 0;
    a->demurrage_ms = R->time_ms;
    e->dirty = true;
}

static int system_account(rules *R, const char *code, const char *sub, entry **out)
{
    int rc = account_load(R, code, zero_pk, sub, out);
    KN_REQUIRE(rc || account_exists(*out)); /* created with the currency */
    return rc;
}

/* ---------------------------------------------------------------- daily figures */

static int figure_add(rules *R, const char *code, uint8_t figure, int64_t amount)
{
    ledger__key k;
    ledger__key_figure(&k, code, ledger__day(R->time_ms), figure);
    return cell_add(R, &k, amount);
}

static bool business_kind(uint8_t kind)
{
    return kind == LEDGER_ACC_MERCHANT || kind == LEDGER_ACC_SSE;
}

/* A payment between keys: the first round of spending (from aid or a holder
 * to a business), business to business, or other. */
static uint8_t payment_figure(const ledger_account *f, const ledger_account *t)
{
    bool first = f->kind == LEDGER_ACC_BENEFICIARY || f->kind == LEDGER_ACC_HOLDER;
    if (!business_kind(t->kind)) return LEDGER__FG_OTHER;
    if (business_kind(f->kind)) return LEDGER__FG_RESPENT;
    return first ? LEDGER__FG_SPENT : LEDGER__FG_OTHER;
}

/* Which daily figure a movement adds to (none for moves between the
 * currency's own accounts). */
static uint8_t movement_figure(const ledger_account *f, const ledger_account *t, uint8_t kind)
{
    bool from_key = !sodium_is_zero(f->owner, KN_PK_BYTES);
    bool to_key = !sodium_is_zero(t->owner, KN_PK_BYTES);
    static const uint8_t by_kind[LEDGER_OP_KIND_MAX + 1] = {
        [LEDGER_OP_ISSUE] = LEDGER__FG_ISSUED,       [LEDGER_OP_RETIRE] = LEDGER__FG_RETIRED,
        [LEDGER_OP_DISBURSE] = LEDGER__FG_DISBURSED, [LEDGER_OP_REDEEM] = LEDGER__FG_REDEEMED,
        [LEDGER_OP_CLAWBACK] = LEDGER__FG_CLAWED,    [LEDGER_OP_EXPIRE] = LEDGER__FG_EXPIRED,
        [LEDGER_OP_REVERSE] = LEDGER__FG_REVERSED,
    };
    if (!from_key && !to_key && kind != LEDGER_OP_ISSUE && kind != LEDGER_OP_RETIRE) return 0;
    if (kind == LEDGER_MOVE_FEE) return LEDGER__FG_FEES;
    if (kind == LEDGER_MOVE_DEMURRAGE) return LEDGER__FG_DEMURRAGE;
    if (kind == LEDGER_OP_EXCHANGE)
        return from_key ? LEDGER__FG_EXCHANGED_OUT : LEDGER__FG_EXCHANGED_IN;
    if (kind == LEDGER_OP_TRANSFER && !from_key) return LEDGER__FG_TREASURY_PAID;
    if (kind == LEDGER_OP_TRANSFER && !to_key) return LEDGER__FG_RETURNED;
    if (kind == LEDGER_OP_TRANSFER) return payment_figure(f, t);
    return kind <= LEDGER_OP_KIND_MAX ? by_kind[kind] : 0;
}

/* Spending at a merchant's category ("sse" for an SSE entity). */
static int category_add(rules *R, const ledger_account *t, int64_t amount)
{
    entry *payee;
    int rc = roles_load(R, t->currency, t->owner, &payee);
    if (rc) return rc;
    ledger__key k;
    const char *category = t->kind == LEDGER_ACC_SSE ? "sse" : payee->after.roles.category;
    ledger__key_category(&k, t->currency, ledger__day(R->time_ms), category);
    return cell_add(R, &k, amount);
}

/* The day's figures of one movement, and the change of the money keys hold. */
static int count_movement(rules *R, const ledger_account *f, const ledger_account *t,
                          int64_t amount, uint8_t kind)
{
    bool from_key = !sodium_is_zero(f->owner, KN_PK_BYTES);
    bool to_key = !sodium_is_zero(t->owner, KN_PK_BYTES);
    uint8_t figure = movement_figure(f, t, kind);
    int rc = figure ? figure_add(R, f->currency, figure, amount) : 0;
    if (!rc && figure == LEDGER__FG_SPENT) rc = category_add(R, t, amount);
    if (!rc && from_key != to_key) rc = figure_add(R, f->currency, LEDGER__FG_HELD,
                                                   to_key ? amount : -amount);
    return rc;
}

/* ---------------------------------------------------------------- history */

static void add_leg(rules *R, const ledger_account *a, const ledger_account *cp, int64_t amount,
                    uint8_t kind)
{
    KN_REQUIRE(R->n_legs < LEGS_MAX);
    leg *l = &R->legs[R->n_legs++];
    l->op = (uint16_t)R->op;
    l->kind = kind;
    memcpy(l->owner, a->owner, KN_PK_BYTES);
    memcpy(l->counterparty, cp->owner, KN_PK_BYTES);
    strcpy(l->currency, a->currency);
    strcpy(l->sub, a->sub);
    strcpy(l->counterparty_sub, cp->sub);
    l->amount = amount;
}

/* Moves amount between two accounts of one currency, keeping the payer at or
 * above its floor, and lists the movement in both histories. */
static int move(rules *R, entry *from, entry *to, int64_t amount, uint8_t kind)
{
    ledger_account *f = &from->after.acct, *t = &to->after.acct;
    KN_REQUIRE(amount > 0 && strcmp(f->currency, t->currency) == 0 && from != to);
    int64_t nf, nt;
    if (!kn_sub_i64(f->balance, amount, &nf) || nf < f->floor) return KN_EOVERDRAFT;
    if (!kn_add_i64(t->balance, amount, &nt)) return KN_EOVERFLOW;
    f->balance = nf;
    t->balance = nt;
    t->received_ms = R->time_ms;
    from->dirty = to->dirty = true;
    add_leg(R, f, t, -amount, kind);
    if (!R->quiet_to) add_leg(R, t, f, amount, kind);
    return count_movement(R, f, t, amount, kind);
}

/* Demurrage of a key's account for the whole periods since it was last
 * charged: balance * bps * k / 10000, rounded down, at most the balance. The
 * clock moves by whole periods only, so no part of a period is lost. */
static int charge_demurrage(rules *R, const ledger_currency *cur, entry *e)
{
    ledger_account *a = &e->after.acct;
    if (!(cur->flags & LEDGER_CUR_DEMURRAGE) || !account_exists(e) ||
        sodium_is_zero(a->owner, KN_PK_BYTES) || R->time_ms <= a->demurrage_ms)
        return 0;
    uint64_t periods = (R->time_ms - a->demurrage_ms) / cur->demurrage_period_ms;
    if (periods == 0) return 0;
    a->demurrage_ms += periods * cur->demurrage_period_ms;
    e->dirty = true;
    if (a->balance <= 0) return 0;
    __int128 due = (__int128)a->balance * cur->demurrage_bps * periods / LEDGER_BPS;
    int64_t charge = due > a->balance ? a->balance : (int64_t)due;
    if (charge == 0) return 0;
    entry *sink;
    int rc = system_account(R, cur->code, LEDGER_SUB_DEMURRAGE, &sink);
    if (!rc) rc = move(R, e, sink, charge, LEDGER_MOVE_DEMURRAGE);
    return rc ? rc : stat_add(R, cur->code, LEDGER__ST_DEMURRAGE, charge);
}

/* A key's account about to move money: it must exist and not be closed;
 * demurrage due is charged first. */
static int use_account(rules *R, const ledger_currency *cur, const uint8_t owner[KN_PK_BYTES],
                       const char *sub, entry **out)
{
    int rc = account_load(R, cur->code, owner, sub, out);
    if (rc) return rc;
    if (!account_exists(*out)) return KN_ENOACCOUNT;
    if ((*out)->after.acct.flags & LEDGER_ACCF_CLOSED) return KN_EACCCLOSED;
    return charge_demurrage(R, cur, *out);
}

/* A key's main account about to receive money: opened on first receipt unless
 * the currency requires authorisation; never a frozen or closed one. */
static int receiving_account(rules *R, const ledger_currency *cur,
                             const uint8_t owner[KN_PK_BYTES], entry **out)
{
    int rc = account_load(R, cur->code, owner, "", out);
    if (rc) return rc;
    entry *e = *out;
    const ledger_account *a = &e->after.acct;
    if (!account_exists(e)) {
        if (cur->flags & LEDGER_CUR_AUTH_REQUIRED) return KN_ENOTAUTHACC;
        entry *roles;
        rc = roles_load(R, cur->code, owner, &roles);
        if (rc) return rc;
        account_open(R, e, ledger__main_kind(roles->after.roles.mask), 0);
        return 0;
    }
    if (a->flags & LEDGER_ACCF_CLOSED) return KN_EACCCLOSED;
    if (a->flags & LEDGER_ACCF_FROZEN) return KN_EFROZEN;
    if ((cur->flags & LEDGER_CUR_AUTH_REQUIRED) && !(a->flags & LEDGER_ACCF_AUTHORISED))
        return KN_ENOTAUTHACC;
    return charge_demurrage(R, cur, e);
}

/* A frozen key may only pay back to its issuer; its sub-accounts freeze with it. */
static int frozen_check(rules *R, const char *code, const uint8_t owner[KN_PK_BYTES],
                        bool to_treasury)
{
    entry *main;
    int rc = account_load(R, code, owner, "", &main);
    if (rc) return rc;
    bool frozen = account_exists(main) && (main->after.acct.flags & LEDGER_ACCF_FROZEN);
    return frozen && !to_treasury ? KN_EFROZEN : 0;
}

/* ---------------------------------------------------------------- currencies */

/* A new currency with its own accounts and first issuer admins. */
static int create_currency(rules *R, const ledger_currency *def)
{
    ledger_currency existing;
    if (strcmp(def->code, LEDGER_UNIT) == 0) return KN_EEXISTS; /* the unit of account's */
    int rc = currency_get(R, def->code, &existing);
    if (rc != KN_ENOCURRENCY) return rc ? rc : KN_EEXISTS;
    uint32_t count = 0;
    ledger__key k;
    rc = ledger__currencies_count(R->t, &count);
    if (rc) return rc;
    if (count >= LEDGER_CURRENCIES_MAX) return KN_ETOOBIG;
    kn_buf b = {0};
    ledger__currency_encode(def, 1, &b);
    ledger__key_currency(&k, def->code);
    raw_put(R, &k, &b);
    kn_buf_free(&b);
    R->new_currency = def;
    static const struct {
        const char *sub;
        uint8_t kind;
    } own[] = {{LEDGER_SUB_ISSUING, LEDGER_ACC_ISSUING},
               {LEDGER_SUB_TREASURY, LEDGER_ACC_TREASURY},
               {LEDGER_SUB_FEES, LEDGER_ACC_FEES},
               {LEDGER_SUB_DEMURRAGE, LEDGER_ACC_DEMURRAGE},
               {LEDGER_SUB_CLEARING, LEDGER_ACC_CLEARING_HOUSE}};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        entry *e;
        rc = account_load(R, def->code, zero_pk, own[i].sub, &e);
        if (rc) return rc;
        account_open(R, e, own[i].kind, LEDGER_ACCF_AUTHORISED);
    }
    for (uint32_t i = 0; i < def->n_issuer_admins; i++) {
        entry *roles;
        rc = roles_load(R, def->code, def->issuer_admins[i], &roles);
        if (rc) return rc;
        roles->after.roles.mask |= 1u << LEDGER_ROLE_ISSUER_ADMIN;
        roles->dirty = true;
    }
    return 0;
}

static int op_currency(rules *R)
{
    int rc = consortium_quorum(R);
    return rc ? rc : create_currency(R, &R->tx->currency_def);
}

static int op_issue(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    int rc = issuer_quorum(R, cur);
    if (rc) return rc;
    entry *issuing, *treasury;
    rc = system_account(R, cur->code, LEDGER_SUB_ISSUING, &issuing);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    if (rc) return rc;
    int64_t supply = -issuing->after.acct.balance;
    KN_REQUIRE(supply >= 0);
    if (op->amount > cur->max_supply - (uint64_t)supply) return KN_ESUPPLY;
    rc = move(R, issuing, treasury, (int64_t)op->amount, op->kind);
    return rc ? rc : stat_add(R, cur->code, LEDGER__ST_ISSUED, (int64_t)op->amount);
}

static int op_retire(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    int rc = issuer_quorum(R, cur);
    if (rc) return rc;
    entry *issuing, *treasury;
    rc = system_account(R, cur->code, LEDGER_SUB_ISSUING, &issuing);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    /* Money made by mutual credit may sit in the treasury; it was never
     * issued, so it cannot be retired. */
    if (!rc && op->amount > (uint64_t)-issuing->after.acct.balance) rc = KN_EOVERDRAFT;
    if (!rc) rc = move(R, treasury, issuing, (int64_t)op->amount, op->kind);
    return rc ? rc : stat_add(R, cur->code, LEDGER__ST_RETIRED, (int64_t)op->amount);
}

/* ---------------------------------------------------------------- roles */

/* Who may grant or revoke each role (docs/LEDGER.md). */
static int role_authority(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    switch (op->role) {
    case LEDGER_ROLE_CONSORTIUM_ADMIN:
    case LEDGER_ROLE_ISSUER_ADMIN: return consortium_quorum(R);
    case LEDGER_ROLE_PROGRAMME_MANAGER:
    case LEDGER_ROLE_AUDITOR: return issuer_quorum(R, cur);
    case LEDGER_ROLE_SSE:
        if (op->kind == LEDGER_OP_GRANT && op->amount) return issuer_quorum(R, cur);
        return signed_by_role(R, cur->code, LEDGER_ROLE_ISSUER_ADMIN, 0);
    case LEDGER_ROLE_MERCHANT:
    case LEDGER_ROLE_CLEARING: return signed_by_role(R, cur->code, LEDGER_ROLE_ISSUER_ADMIN, 0);
    case LEDGER_ROLE_BENEFICIARY:
        return signed_by_role(R, cur->code, LEDGER_ROLE_ISSUER_ADMIN,
                              LEDGER_ROLE_PROGRAMME_MANAGER);
    default: return KN_EINVAL;
    }
}

/* The main account follows the roles: its kind, its authorisation (a granted
 * role vouches for the key) and its mutual-credit floor. */
static int main_follows_roles(rules *R, const ledger_currency *cur, const ledger_op *op,
                              const ledger_roles *roles)
{
    entry *e;
    int rc = account_load(R, cur->code, op->from, "", &e);
    if (rc) return rc;
    bool grant = op->kind == LEDGER_OP_GRANT;
    if (!account_exists(e) && !grant) return 0;
    account_open(R, e, LEDGER_ACC_HOLDER, 0);
    ledger_account *a = &e->after.acct;
    a->kind = ledger__main_kind(roles->mask);
    if (grant) a->flags |= LEDGER_ACCF_AUTHORISED;
    int64_t floor = roles->mask >> LEDGER_ROLE_SSE & 1 ? -(int64_t)roles->credit_limit : 0;
    if (a->balance < floor) return KN_ENONZERO;
    a->floor = floor;
    e->dirty = true;
    return 0;
}

/* Revoking an admin must leave at least the threshold of them. */
static int admins_left_check(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    uint32_t threshold;
    if (op->role == LEDGER_ROLE_CONSORTIUM_ADMIN) {
        int rc = consortium_threshold(R, &threshold);
        if (rc) return rc;
    } else if (op->role == LEDGER_ROLE_ISSUER_ADMIN) {
        threshold = cur->issuer_threshold;
    } else {
        return 0;
    }
    ledger__key k;
    entry *count;
    ledger__key_count(&k, op->currency, (uint8_t)op->role);
    int rc = load(R, E_CELL, &k, &count);
    if (rc) return rc;
    return count->after.cell - 1 < (int64_t)threshold ? KN_ELASTADMIN : 0;
}

static int op_role(rules *R, const ledger_op *op)
{
    ledger_currency cur;
    memset(&cur, 0, sizeof cur);
    bool consortium = op->role == LEDGER_ROLE_CONSORTIUM_ADMIN;
    int rc = consortium ? 0 : currency_get(R, op->currency, &cur);
    if (rc) return rc;
    if (op->role == LEDGER_ROLE_SSE && op->amount && !(cur.flags & LEDGER_CUR_MUTUAL_CREDIT))
        return KN_EFORBIDDEN;
    rc = role_authority(R, op, &cur);
    entry *roles;
    if (!rc) rc = roles_load(R, op->currency, op->from, &roles);
    if (rc) return rc;
    ledger_roles *r = &roles->after.roles;
    uint32_t bit = 1u << op->role;
    if (op->kind == LEDGER_OP_REVOKE) {
        if (!(r->mask & bit)) return KN_ENOROLE;
        rc = admins_left_check(R, op, &cur);
        if (rc) return rc;
        r->mask &= ~bit;
        if (op->role == LEDGER_ROLE_MERCHANT) r->category[0] = '\0';
        if (op->role == LEDGER_ROLE_SSE) r->credit_limit = 0;
    } else {
        r->mask |= bit;
        if (op->role == LEDGER_ROLE_MERCHANT) strcpy(r->category, op->ref);
        if (op->role == LEDGER_ROLE_SSE) r->credit_limit = op->amount;
    }
    roles->dirty = true;
    return consortium ? 0 : main_follows_roles(R, &cur, op, r);
}

static int op_account(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    bool close = op->role == LEDGER_ACCOUNT_CLOSE;
    int rc = close ? (ledger_tx_signed_by(R->tx, op->from) ? 0 : KN_EWRONGSIGNER)
                   : signed_by_role(R, cur->code, LEDGER_ROLE_ISSUER_ADMIN, 0);
    if (rc) return rc;
    bool freeze = op->role == LEDGER_ACCOUNT_FREEZE || op->role == LEDGER_ACCOUNT_UNFREEZE;
    if (freeze && !(cur->flags & LEDGER_CUR_FREEZABLE)) return KN_EFORBIDDEN;
    entry *e;
    rc = account_load(R, cur->code, op->from, "", &e);
    if (rc) return rc;
    ledger_account *a = &e->after.acct;
    if (op->role == LEDGER_ACCOUNT_AUTHORISE) {
        entry *roles;
        rc = roles_load(R, cur->code, op->from, &roles);
        if (rc) return rc;
        account_open(R, e, ledger__main_kind(roles->after.roles.mask), 0);
        a->flags |= LEDGER_ACCF_AUTHORISED;
        e->dirty = true;
        return 0;
    }
    if (!account_exists(e)) return KN_ENOACCOUNT;
    if (a->flags & LEDGER_ACCF_CLOSED) return KN_EACCCLOSED;
    if (close && (a->flags & LEDGER_ACCF_FROZEN)) return KN_EFROZEN;
    if (close && a->balance != 0) return KN_ENONZERO;
    if (op->role == LEDGER_ACCOUNT_FREEZE) a->flags |= LEDGER_ACCF_FROZEN;
    else if (op->role == LEDGER_ACCOUNT_UNFREEZE) a->flags &= (uint8_t)~LEDGER_ACCF_FROZEN;
    else a->flags |= LEDGER_ACCF_CLOSED;
    e->dirty = true;
    return 0;
}

/* ---------------------------------------------------------------- programmes */

static int op_programme(rules *R, const ledger_currency *cur)
{
    const ledger_programme *def = &R->tx->programme_def;
    int rc = signed_by_role(R, cur->code, LEDGER_ROLE_PROGRAMME_MANAGER, 0);
    if (rc) return rc;
    ledger_programme existing;
    rc = programme_get(R, cur->code, def->id, &existing);
    if (rc != KN_ENOPROGRAMME) return rc ? rc : KN_EEXISTS;
    /* The manager of record: the first signer who holds the role. */
    ledger_programme pg = *def;
    for (uint32_t i = 0; i < R->tx->n_sigs; i++) {
        bool yes;
        rc = has_role(R, cur->code, R->tx->sigs[i].pk, LEDGER_ROLE_PROGRAMME_MANAGER, &yes);
        if (rc) return rc;
        if (!yes) continue;
        memcpy(pg.manager, R->tx->sigs[i].pk, KN_PK_BYTES);
        break;
    }
    ledger__key k;
    kn_buf b = {0};
    ledger__programme_encode(&pg, 1, true, &b);
    ledger__key_programme(&k, cur->code, def->id);
    raw_put(R, &k, &b);
    kn_buf_free(&b);
    R->new_programme = def;
    entry *acct;
    rc = account_load(R, cur->code, zero_pk, def->id, &acct);
    if (!rc) account_open(R, acct, LEDGER_ACC_PROGRAMME, LEDGER_ACCF_AUTHORISED);
    return rc;
}

/* The programme named by op, refused once it has expired. */
static int live_programme(rules *R, const ledger_op *op, ledger_programme *pg)
{
    int rc = programme_get(R, op->currency, op->programme, pg);
    int64_t expired;
    if (!rc) rc = pstat_get(R, op->currency, op->programme, LEDGER__PS_HAS_EXPIRED, &expired);
    if (rc) return rc;
    return expired ? KN_EPROGEXPIRED : 0;
}

static int op_fund(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    ledger_programme pg;
    int rc = issuer_quorum(R, cur);
    if (!rc) rc = live_programme(R, op, &pg);
    int64_t funded;
    if (!rc) rc = pstat_get(R, cur->code, pg.id, LEDGER__PS_FUNDED, &funded);
    if (rc) return rc;
    if (op->amount > pg.budget - (uint64_t)funded) return KN_EBUDGET;
    entry *treasury, *acct;
    rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    if (!rc) rc = system_account(R, cur->code, pg.id, &acct);
    if (!rc) rc = move(R, treasury, acct, (int64_t)op->amount, op->kind);
    return rc ? rc : pstat_add(R, cur->code, pg.id, LEDGER__PS_FUNDED, (int64_t)op->amount);
}

/* One beneficiary of a batch: the role, not frozen, within the cap. */
static int disburse_one(rules *R, const ledger_currency *cur, const ledger_programme *pg,
                        entry *from, const ledger_payee *payee)
{
    bool beneficiary;
    int rc = has_role(R, pg->currency, payee->pk, LEDGER_ROLE_BENEFICIARY, &beneficiary);
    if (rc) return rc;
    if (!beneficiary) return KN_ENOTBENEFICIARY;
    rc = frozen_check(R, pg->currency, payee->pk, false);
    if (rc) return rc;
    if (pg->cap) {
        uint64_t period = pg->period_ms ? (R->time_ms - pg->start_ms) / pg->period_ms : 0;
        ledger__key k;
        entry *got;
        ledger__key_tag(&k, 'q');
        ledger__key_str(&k, pg->currency);
        ledger__key_str(&k, pg->id);
        ledger__key_raw(&k, payee->pk, KN_PK_BYTES);
        ledger__key_u64(&k, period);
        rc = load(R, E_CELL, &k, &got);
        if (rc) return rc;
        if (payee->amount > pg->cap - (uint64_t)got->after.cell) return KN_ECAP;
        got->after.cell += (int64_t)payee->amount;
        got->dirty = true;
    }
    entry *sub;
    rc = account_load(R, pg->currency, payee->pk, pg->id, &sub);
    if (rc) return rc;
    account_open(R, sub, LEDGER_ACC_BENEFICIARY, LEDGER_ACCF_AUTHORISED);
    rc = charge_demurrage(R, cur, sub);
    return rc ? rc : move(R, from, sub, (int64_t)payee->amount, LEDGER_OP_DISBURSE);
}

static int op_disburse(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    ledger_programme pg;
    int rc = signed_by_role(R, cur->code, LEDGER_ROLE_PROGRAMME_MANAGER, 0);
    if (!rc) rc = live_programme(R, op, &pg);
    if (rc) return rc;
    if (R->time_ms < pg.start_ms || R->time_ms >= pg.end_ms) return KN_EINACTIVE;
    ledger__key k;
    entry *batch;
    ledger__key_tag(&k, 'd');
    ledger__key_str(&k, cur->code);
    ledger__key_str(&k, pg.id);
    ledger__key_str(&k, op->ref);
    rc = load(R, E_CELL, &k, &batch);
    if (rc) return rc;
    if (batch->existed) return KN_EDUPBATCH;
    batch->after.cell = 1;
    batch->dirty = true;
    __int128 total = 0;
    for (uint32_t i = 0; i < R->tx->n_payees; i++) total += R->tx->payees[i].amount;
    int64_t disbursed, funded;
    rc = pstat_get(R, cur->code, pg.id, LEDGER__PS_DISBURSED, &disbursed);
    if (rc) return rc;
    if (total > (__int128)pg.budget - disbursed) return KN_EBUDGET;
    entry *from;
    rc = system_account(R, cur->code, pg.id, &from);
    for (uint32_t i = 0; i < R->tx->n_payees && !rc; i++)
        rc = disburse_one(R, cur, &pg, from, &R->tx->payees[i]);
    if (!rc) rc = pstat_get(R, cur->code, pg.id, LEDGER__PS_FUNDED, &funded);
    KN_REQUIRE(rc || disbursed + total <= funded); /* the programme account held it */
    return rc ? rc : pstat_add(R, cur->code, pg.id, LEDGER__PS_DISBURSED, (int64_t)total);
}

/* ---------------------------------------------------------------- transfers */

static bool business(uint32_t mask)
{
    uint32_t roles = 1u << LEDGER_ROLE_MERCHANT | 1u << LEDGER_ROLE_SSE | 1u << LEDGER_ROLE_CLEARING;
    return mask & roles;
}

/* Aid leaves a sub-account only while its programme runs, for a merchant of an
 * allowed category or (if the programme allows it) another beneficiary. The
 * category spent at is returned for the programme's figures. */
static int aid_route(rules *R, const ledger_op *op, const ledger_roles *payee,
                     const char **category)
{
    ledger_programme pg;
    int rc = live_programme(R, op, &pg);
    if (rc) return rc;
    if (R->time_ms < pg.start_ms || R->time_ms >= pg.end_ms) return KN_EINACTIVE;
    if (payee->mask >> LEDGER_ROLE_MERCHANT & 1) {
        bool allowed = pg.n_categories == 0;
        for (uint32_t i = 0; i < pg.n_categories && !allowed; i++)
            allowed = strcmp(pg.categories[i], payee->category) == 0;
        *category = payee->category;
        return allowed ? 0 : KN_ECATEGORY;
    }
    if (payee->mask >> LEDGER_ROLE_BENEFICIARY & 1) {
        *category = "p2p";
        return pg.p2p ? 0 : KN_EROUTE;
    }
    return KN_EROUTE;
}

/* Who may pay whom (docs/LEDGER.md, "Spending routes"). */
static int route_check(rules *R, const ledger_op *op, const ledger_currency *cur,
                       const char **category)
{
    entry *payer, *payee;
    int rc = roles_load(R, cur->code, op->from, &payer);
    if (!rc) rc = roles_load(R, cur->code, op->to, &payee);
    if (rc) return rc;
    if (op->programme[0]) return aid_route(R, op, &payee->after.roles, category);
    if (business(payer->after.roles.mask) || business(payee->after.roles.mask)) return 0;
    return cur->flags & LEDGER_CUR_P2P ? 0 : KN_EROUTE;
}

/* Keeps what a reversal needs: [code, from, sub, to, amount]. */
static void record_transfer(rules *R, const ledger_op *op)
{
    ledger__key k;
    kn_buf b = {0};
    ledger__key_tag(&k, 'X');
    ledger__key_raw(&k, R->tx->id, KN_HASH_BYTES);
    ledger__key_u16(&k, (uint16_t)R->op);
    kn_w_array(&b, TRANSFER_RECORD_FIELDS);
    kn_w_str(&b, op->currency, strlen(op->currency));
    kn_w_bin(&b, op->from, KN_PK_BYTES);
    kn_w_str(&b, op->programme, strlen(op->programme));
    kn_w_bin(&b, op->to, KN_PK_BYTES);
    kn_w_uint(&b, op->amount);
    raw_put(R, &k, &b);
    kn_buf_free(&b);
}

/* The treasury pays out on the issuer quorum: a sale of local money for euros,
 * a grant, a payment of the city. */
static int treasury_pays(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    entry *from, *to;
    int rc = issuer_quorum(R, cur);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &from);
    if (!rc) rc = receiving_account(R, cur, op->to, &to);
    if (!rc) rc = move(R, from, to, (int64_t)op->amount, op->kind);
    if (!rc) record_transfer(R, op);
    return rc;
}

/* A key's account about to pay: not frozen (but to the treasury), open, and
 * authorised where the currency requires it. */
static int paying_account(rules *R, const ledger_currency *cur, const uint8_t owner[KN_PK_BYTES],
                          const char *sub, bool to_treasury, entry **out)
{
    int rc = frozen_check(R, cur->code, owner, to_treasury);
    if (!rc) rc = use_account(R, cur, owner, sub, out);
    if (!rc && (cur->flags & LEDGER_CUR_AUTH_REQUIRED) &&
        !((*out)->after.acct.flags & LEDGER_ACCF_AUTHORISED))
        rc = KN_ENOTAUTHACC;
    return rc;
}

static int op_transfer(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    if (sodium_is_zero(op->from, KN_PK_BYTES)) return treasury_pays(R, op, cur);
    if (!ledger_tx_signed_by(R->tx, op->from)) return KN_EWRONGSIGNER;
    bool to_treasury = sodium_is_zero(op->to, KN_PK_BYTES);
    const char *category = NULL;
    entry *from, *to;
    int rc = paying_account(R, cur, op->from, op->programme, to_treasury, &from);
    if (rc) return rc;
    if (to_treasury) {
        rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &to);
        if (!rc && op->programme[0]) {
            ledger_programme pg;
            rc = live_programme(R, op, &pg);
        }
    } else {
        rc = route_check(R, op, cur, &category);
        if (!rc) rc = receiving_account(R, cur, op->to, &to);
    }
    if (!rc) rc = move(R, from, to, (int64_t)op->amount, op->kind);
    if (rc) return rc;
    record_transfer(R, op);
    if (!op->programme[0]) return 0;
    int64_t amount = (int64_t)op->amount;
    if (to_treasury) return pstat_add(R, cur->code, op->programme, LEDGER__PS_RETURNED, amount);
    ledger__key k;
    ledger__key_tag(&k, 'u');
    ledger__key_str(&k, cur->code);
    ledger__key_str(&k, op->programme);
    ledger__key_str(&k, category);
    rc = cell_add(R, &k, amount);
    return rc ? rc : pstat_add(R, cur->code, op->programme, LEDGER__PS_SPENT, amount);
}

/* ---------------------------------------------------------------- redemption */

static int op_redeem(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    if (!ledger_tx_signed_by(R->tx, op->from)) return KN_EWRONGSIGNER;
    entry *roles, *from, *fees, *issuing;
    int rc = roles_load(R, cur->code, op->from, &roles);
    if (rc) return rc;
    uint32_t may = 1u << LEDGER_ROLE_MERCHANT | 1u << LEDGER_ROLE_SSE;
    if (!(roles->after.roles.mask & may) && !(cur->flags & LEDGER_CUR_HOLDER_REDEEM))
        return KN_EFORBIDDEN;
    rc = frozen_check(R, cur->code, op->from, false);
    if (!rc) rc = use_account(R, cur, op->from, "", &from);
    if (rc) return rc;
    const ledger_account *a = &from->after.acct;
    /* Credit is not redeemable: only money held, and never more than was
     * issued against the reserve (money made by mutual credit is not). */
    if (a->balance < 0 || op->amount > (uint64_t)a->balance) return KN_EOVERDRAFT;
    uint64_t window = (uint64_t)cur->early_days * LEDGER_DAY_MS;
    bool early = a->received_ms && R->time_ms - a->received_ms < window;
    uint32_t bps = early ? cur->early_fee_bps : cur->fee_bps;
    int64_t fee = (int64_t)((__int128)op->amount * bps / LEDGER_BPS);
    int64_t out = (int64_t)op->amount - fee;
    rc = system_account(R, cur->code, LEDGER_SUB_FEES, &fees);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_ISSUING, &issuing);
    if (!rc && out > -issuing->after.acct.balance) rc = KN_EOVERDRAFT;
    if (!rc && fee) rc = move(R, from, fees, fee, LEDGER_MOVE_FEE);
    if (!rc && out) rc = move(R, from, issuing, out, op->kind);
    if (!rc) rc = stat_add(R, cur->code, LEDGER__ST_FEES, fee);
    return rc ? rc : stat_add(R, cur->code, LEDGER__ST_REDEEMED, out);
}

/* ---------------------------------------------------------------- corrections */

typedef struct original {
    char currency[LEDGER_CODE_MAX + 1];
    uint8_t from[KN_PK_BYTES];
    char sub[LEDGER_ID_MAX + 1];
    uint8_t to[KN_PK_BYTES];
    uint64_t amount;
} original;

static int original_get(rules *R, const ledger_op *op, original *o)
{
    ledger__key k;
    ledger__key_tag(&k, 'X');
    ledger__key_raw(&k, op->link, KN_HASH_BYTES);
    ledger__key_u16(&k, (uint16_t)op->role);
    const uint8_t *p;
    size_t n;
    int rc = store_get(R->t, STORE_STATE, k.b, k.n, &p, &n);
    if (rc) return rc == KN_ENOTFOUND ? KN_ENOTRANSFER : rc;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    rc = kn_r_array(&c, &fields);
    if (!rc) rc = ledger__r_text(&c, o->currency, 1, LEDGER_CODE_MAX);
    if (!rc) rc = kn_r_bin_fixed(&c, o->from, KN_PK_BYTES);
    if (!rc) rc = ledger__r_text(&c, o->sub, 0, LEDGER_ID_MAX);
    if (!rc) rc = kn_r_bin_fixed(&c, o->to, KN_PK_BYTES);
    if (!rc) rc = kn_r_uint(&c, &o->amount);
    KN_REQUIRE(rc == 0 && fields == TRANSFER_RECORD_FIELDS && c.left == 0);
    return strcmp(o->currency, op->currency) == 0 ? 0 : KN_ENOTRANSFER;
}

/* Where a reversal lands: the account that paid, or the treasury once the aid
 * programme it came from has expired (its unspent aid went there too). */
static int reversal_target(rules *R, const ledger_currency *cur, const original *o, entry **to,
                           bool *to_treasury)
{
    int64_t expired = 0;
    int rc = o->sub[0] ? pstat_get(R, cur->code, o->sub, LEDGER__PS_HAS_EXPIRED, &expired) : 0;
    if (rc) return rc;
    *to_treasury = expired || sodium_is_zero(o->from, KN_PK_BYTES);
    if (*to_treasury) return system_account(R, cur->code, LEDGER_SUB_TREASURY, to);
    rc = account_load(R, cur->code, o->from, o->sub, to);
    if (rc) return rc;
    return (*to)->after.acct.flags & LEDGER_ACCF_CLOSED ? KN_EACCCLOSED : 0;
}

static int op_reverse(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    original o;
    int rc = original_get(R, op, &o);
    if (rc) return rc;
    /* Money paid back to the treasury is a return, not a payment to refund. */
    if (sodium_is_zero(o.to, KN_PK_BYTES)) return KN_EROUTE;
    if (!ledger_tx_signed_by(R->tx, o.to)) rc = issuer_quorum(R, cur);
    if (rc) return rc;
    ledger__key k;
    entry *done, *from, *to;
    ledger__key_tag(&k, 'x');
    ledger__key_raw(&k, op->link, KN_HASH_BYTES);
    ledger__key_u16(&k, (uint16_t)op->role);
    rc = load(R, E_CELL, &k, &done);
    if (rc) return rc;
    if (op->amount > o.amount - (uint64_t)done->after.cell) return KN_EREVERSAL;
    done->after.cell += (int64_t)op->amount;
    done->dirty = true;
    bool to_treasury;
    rc = use_account(R, cur, o.to, "", &from);
    if (!rc) rc = reversal_target(R, cur, &o, &to, &to_treasury);
    if (!rc) rc = move(R, from, to, (int64_t)op->amount, op->kind);
    if (rc || !o.sub[0]) return rc;
    /* Aid spent and refunded: no longer spent; after expiry, returned. */
    rc = pstat_add(R, cur->code, o.sub, LEDGER__PS_SPENT, -(int64_t)op->amount);
    if (!rc && to_treasury)
        rc = pstat_add(R, cur->code, o.sub, LEDGER__PS_RETURNED, (int64_t)op->amount);
    return rc;
}

static int op_clawback(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    if (!(cur->flags & LEDGER_CUR_CLAWBACK)) return KN_EFORBIDDEN;
    int rc = issuer_quorum(R, cur);
    if (!rc) rc = signed_by_role(R, cur->code, LEDGER_ROLE_AUDITOR, 0);
    if (rc) return rc;
    entry *from, *treasury;
    rc = account_load(R, cur->code, op->from, op->programme, &from);
    if (rc) return rc;
    if (!account_exists(from)) return KN_ENOACCOUNT;
    rc = charge_demurrage(R, cur, from);
    if (!rc && (from->after.acct.balance < 0 || op->amount > (uint64_t)from->after.acct.balance))
        rc = KN_EOVERDRAFT;
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    if (!rc) rc = move(R, from, treasury, (int64_t)op->amount, op->kind);
    if (!rc) rc = stat_add(R, cur->code, LEDGER__ST_CLAWED, (int64_t)op->amount);
    if (!rc && op->programme[0])
        rc = pstat_add(R, cur->code, op->programme, LEDGER__PS_RETURNED, (int64_t)op->amount);
    return rc;
}

/* ---------------------------------------------------------------- expiry */

#define SWEEP_CHUNK 128

/* Up to SWEEP_CHUNK beneficiaries of a programme after `after` (NULL: from the
 * first), in key order. */
static int sweep_collect(rules *R, const char *code, const char *id, const uint8_t *after,
                         uint8_t (*pks)[KN_PK_BYTES], uint32_t *n)
{
    ledger__key prefix, start;
    ledger__key_tag(&prefix, 'B');
    ledger__key_str(&prefix, code);
    ledger__key_str(&prefix, id);
    start = prefix;
    if (after) ledger__key_raw(&start, after, KN_PK_BYTES);
    store_iter *it;
    int rc = store_iter_open(R->t, STORE_STATE, prefix.b, prefix.n, start.b, start.n, &it);
    if (rc) return rc;
    const uint8_t *k, *v;
    size_t kl, vl;
    *n = 0;
    while (*n < SWEEP_CHUNK && store_iter_next(it, &k, &kl, &v, &vl)) {
        KN_REQUIRE(kl == (size_t)prefix.n + KN_PK_BYTES);
        if (after && memcmp(k + prefix.n, after, KN_PK_BYTES) == 0) continue;
        memcpy(pks[(*n)++], k + prefix.n, KN_PK_BYTES);
    }
    store_iter_close(it);
    return store_error(R->t);
}

static void overlay_reset(rules *R)
{
    R->n = R->n_legs = R->n_raws = R->arena_used = 0;
}

/* Every beneficiary's unspent aid back to the treasury, written a chunk at a
 * time: past the checks nothing but a store error can fail, so the chunks
 * written before the last one can never be left half done by a rule. */
static int sweep_beneficiaries(rules *R, const ledger_currency *cur, const char *id,
                               int64_t *total)
{
    uint8_t pks[SWEEP_CHUNK][KN_PK_BYTES], last[KN_PK_BYTES];
    bool have_last = false;
    for (;;) {
        uint32_t n;
        int rc = sweep_collect(R, cur->code, id, have_last ? last : NULL, pks, &n);
        for (uint32_t i = 0; i < n && !rc; i++) {
            entry *sub, *treasury;
            rc = account_load(R, cur->code, pks[i], id, &sub);
            if (!rc) rc = charge_demurrage(R, cur, sub);
            if (rc || sub->after.acct.balance <= 0) continue;
            int64_t amount = sub->after.acct.balance;
            rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
            if (!rc) rc = move(R, sub, treasury, amount, LEDGER_OP_EXPIRE);
            *total += amount;
        }
        if (rc || n < SWEEP_CHUNK) return rc;
        rc = flush(R);
        if (rc) return rc;
        overlay_reset(R);
        memcpy(last, pks[n - 1], KN_PK_BYTES);
        have_last = true;
    }
}

static int op_expire(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    ledger_programme pg;
    int rc = signed_by_role(R, cur->code, LEDGER_ROLE_PROGRAMME_MANAGER, LEDGER_ROLE_ISSUER_ADMIN);
    if (!rc) rc = live_programme(R, op, &pg);
    if (rc) return rc;
    if (R->time_ms < pg.end_ms + pg.grace_ms) return KN_ENOTENDED;
    int64_t swept = 0;
    R->quiet_to = true;
    rc = sweep_beneficiaries(R, cur, pg.id, &swept);
    entry *acct, *treasury;
    if (!rc) rc = system_account(R, cur->code, pg.id, &acct);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    int64_t rest = rc ? 0 : acct->after.acct.balance;
    if (!rc && rest > 0) rc = move(R, acct, treasury, rest, LEDGER_OP_EXPIRE);
    R->quiet_to = false;
    if (rc) return rc;
    if (swept + rest > 0) add_leg(R, &treasury->after.acct, &acct->after.acct, swept + rest,
                                  LEDGER_OP_EXPIRE);
    rc = pstat_add(R, cur->code, pg.id, LEDGER__PS_HAS_EXPIRED, 1);
    if (!rc) rc = pstat_add(R, cur->code, pg.id, LEDGER__PS_EXPIRED, swept + rest);
    return rc ? rc : pstat_add(R, cur->code, pg.id, LEDGER__PS_RETURNED, swept + rest);
}

/* ---------------------------------------------------------------- between cities */

/* The pair's rate as this transaction sees it: set by an earlier operation of
 * the transaction (the last one wins, as in the store), else the stored one. */
static int rate_get(rules *R, const char *base, const char *quote, ledger_rate *out)
{
    for (uint32_t i = R->op; i-- > 0;) {
        const ledger_op *op = &R->tx->ops[i];
        if (op->kind != LEDGER_OP_RATE || strcmp(op->currency, base) != 0 ||
            strcmp(op->counter, quote) != 0)
            continue;
        *out = (ledger_rate){.num = op->num, .den = op->den, .start_ms = op->start_ms,
                             .end_ms = op->end_ms, .set_height = R->height};
        strcpy(out->base, base);
        strcpy(out->quote, quote);
        return 0;
    }
    return ledger_rate_get(R->t, base, quote, out);
}

/* The pair's rate in force at the block time; `never` when none was set. */
static int rate_in_force(rules *R, const char *base, const char *quote, int never, ledger_rate *r)
{
    int rc = rate_get(R, base, quote, r);
    if (rc) return rc == KN_ENOTFOUND ? never : rc;
    if (R->time_ms < r->start_ms) return KN_ENORATE;
    return R->time_ms >= r->end_ms ? KN_ERATEEXPIRED : 0;
}

static int op_rate(rules *R, const ledger_op *op)
{
    ledger_currency quote;
    int rc = consortium_quorum(R);
    if (!rc && strcmp(op->counter, LEDGER_UNIT) != 0) rc = currency_get(R, op->counter, &quote);
    if (rc) return rc;
    if (op->end_ms <= R->time_ms) return KN_ERATEEXPIRED;
    ledger_rate r = {.num = op->num, .den = op->den, .start_ms = op->start_ms,
                     .end_ms = op->end_ms, .set_height = R->height};
    ledger__key k;
    kn_buf b = {0};
    ledger__rate_encode(&r, &b);
    ledger__key_rate(&k, op->currency, op->counter);
    raw_put(R, &k, &b);
    kn_buf_free(&b);
    return 0;
}

static int cycle_cell(rules *R, uint64_t cycle, uint8_t field, entry **out)
{
    ledger__key k;
    ledger__key_cycle(&k, cycle, field);
    return load(R, E_CELL, &k, out);
}

static int cycle_add(rules *R, uint64_t cycle, uint8_t field, int64_t delta)
{
    ledger__key k;
    ledger__key_cycle(&k, cycle, field);
    return cell_add(R, &k, delta);
}

/* The open cycle's number, in a cell the close moves on. */
static int open_cycle(rules *R, entry **cell, uint64_t *cycle)
{
    ledger__key k;
    ledger__key_tag(&k, 'Y');
    int rc = load(R, E_CELL, &k, cell);
    if (!rc) *cycle = (*cell)->after.cell ? (uint64_t)(*cell)->after.cell : 1;
    return rc;
}

/* Only merchants, SSE entities and clearing agents trade across currencies. */
static int may_exchange(rules *R, const char *code, const uint8_t pk[KN_PK_BYTES])
{
    entry *roles;
    int rc = roles_load(R, code, pk, &roles);
    return rc ? rc : business(roles->after.roles.mask) ? 0 : KN_ENOEXCHANGE;
}

/* An exchange's value in the unit of account goes into the open cycle: the
 * payer's currency owes it, the receiver's is owed it. */
static int count_exchange(rules *R, const char *debtor, const char *creditor, int64_t worth)
{
    entry *open;
    uint64_t cycle;
    ledger__key k;
    int rc = open_cycle(R, &open, &cycle);
    if (rc) return rc;
    ledger__key_pair(&k, 'e', cycle, debtor, creditor);
    rc = cell_add(R, &k, worth);
    ledger__key_position(&k, cycle, debtor);
    if (!rc) rc = cell_add(R, &k, -worth);
    ledger__key_position(&k, cycle, creditor);
    if (!rc) rc = cell_add(R, &k, worth);
    if (!rc) rc = cycle_add(R, cycle, LEDGER__CY_EXCHANGES, 1);
    return rc ? rc : cycle_add(R, cycle, LEDGER__CY_VALUE, worth);
}

/* What the exchange pays, delivers and is worth, at the rates in force. */
static int exchange_quote(rules *R, const ledger_op *op, uint64_t *pay, uint64_t *get,
                          uint64_t *worth)
{
    ledger_rate pair, unit;
    uint64_t paid;
    int rc = rate_in_force(R, op->currency, op->counter, KN_EUNKNOWNPAIR, &pair);
    if (rc) return rc;
    rc = rate_in_force(R, op->currency, LEDGER_UNIT, KN_ENORATE, &unit);
    if (rc == KN_ERATEEXPIRED) rc = KN_ENORATE;
    if (!rc) rc = ledger_exchange_amounts(pair.num, pair.den, op->mode, op->amount, pay, get);
    if (rc) return rc;
    if (op->limit && *pay > op->limit) return KN_ESENDMAX;
    return ledger_exchange_amounts(unit.num, unit.den, LEDGER_EXCHANGE_SEND, *pay, &paid, worth);
}

static int op_exchange(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    if (!ledger_tx_signed_by(R->tx, op->from)) return KN_EWRONGSIGNER;
    ledger_currency to_cur;
    uint64_t pay, get, worth;
    int rc = currency_get(R, op->counter, &to_cur);
    if (!rc) rc = may_exchange(R, cur->code, op->from);
    if (!rc) rc = may_exchange(R, to_cur.code, op->to);
    if (!rc) rc = exchange_quote(R, op, &pay, &get, &worth);
    entry *from, *in, *out, *to;
    if (!rc) rc = paying_account(R, cur, op->from, "", false, &from);
    /* Only money held crosses a border: credit is not backed by euros. */
    if (!rc && (from->after.acct.balance < 0 || pay > (uint64_t)from->after.acct.balance))
        rc = KN_EOVERDRAFT;
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_CLEARING, &in);
    if (!rc) rc = move(R, from, in, (int64_t)pay, op->kind);
    if (!rc) rc = system_account(R, to_cur.code, LEDGER_SUB_CLEARING, &out);
    if (rc) return rc;
    const ledger_account *o = &out->after.acct;
    if (o->balance < o->floor || (uint64_t)(o->balance - o->floor) < get)
        return KN_ECLEARINGFLOOR;
    rc = receiving_account(R, &to_cur, op->to, &to);
    if (!rc) rc = move(R, out, to, (int64_t)get, op->kind);
    return rc ? rc : count_exchange(R, cur->code, to_cur.code, (int64_t)worth);
}

/* The issuer quorum keeps the clearing account's float. */
static int op_clearing(rules *R, const ledger_op *op, const ledger_currency *cur)
{
    entry *treasury, *clearing;
    int rc = issuer_quorum(R, cur);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_TREASURY, &treasury);
    if (!rc) rc = system_account(R, cur->code, LEDGER_SUB_CLEARING, &clearing);
    if (rc) return rc;
    bool fund = op->mode == LEDGER_CLEARING_FUND;
    return move(R, fund ? treasury : clearing, fund ? clearing : treasury, (int64_t)op->amount,
                op->kind);
}

static void count_obligation(void *ctx, const ledger_obligation *o)
{
    (void)o;
    (*(int64_t *)ctx)++;
}

/* Fixes the open cycle's obligations under the chosen netting and opens the
 * next cycle. Alone in its transaction, so the cycle's records are the
 * store's. */
static int op_close(rules *R, const ledger_op *op)
{
    entry *open;
    uint64_t cycle;
    int rc = consortium_quorum(R);
    if (!rc) rc = open_cycle(R, &open, &cycle);
    if (rc) return rc;
    if (op->cycle < cycle) return KN_ECYCLECLOSED;
    if (op->cycle > cycle) return KN_ENOCYCLE;
    int64_t obligations = 0;
    rc = ledger__obligations(R->t, cycle, op->mode, count_obligation, &obligations);
    if (!rc) rc = cycle_add(R, cycle, LEDGER__CY_CLOSED_MS, (int64_t)R->time_ms);
    if (!rc) rc = cycle_add(R, cycle, LEDGER__CY_CLOSED_HEIGHT, (int64_t)R->height);
    if (!rc) rc = cycle_add(R, cycle, LEDGER__CY_NETTING, op->mode);
    if (!rc) rc = cycle_add(R, cycle, LEDGER__CY_OBLIGATIONS, obligations);
    if (!rc) rc = cycle_add(R, cycle + 1, LEDGER__CY_OPENED_MS, (int64_t)R->time_ms);
    if (rc) return rc;
    open->after.cell = (int64_t)(cycle + 1);
    open->dirty = true;
    return 0;
}

typedef struct wanted {
    const char *debtor, *creditor;
    int64_t amount;
    bool found;
} wanted;

static void find_obligation(void *ctx, const ledger_obligation *o)
{
    wanted *w = ctx;
    if (strcmp(o->debtor, w->debtor) != 0 || strcmp(o->creditor, w->creditor) != 0) return;
    w->amount = o->amount;
    w->found = true;
}

/* Records, on the creditor's word, the off-ledger payment of one obligation. */
static int op_settle(rules *R, const ledger_op *op)
{
    ledger_currency creditor;
    entry *open, *netting, *settled;
    uint64_t cycle;
    int rc = currency_get(R, op->counter, &creditor);
    if (!rc) rc = signed_by_role(R, creditor.code, LEDGER_ROLE_ISSUER_ADMIN, 0);
    if (!rc) rc = open_cycle(R, &open, &cycle);
    if (rc) return rc;
    if (op->cycle > cycle) return KN_ENOCYCLE;
    if (op->cycle == cycle) return KN_ECYCLEOPEN;
    wanted w = {op->currency, op->counter, 0, false};
    rc = cycle_cell(R, op->cycle, LEDGER__CY_NETTING, &netting);
    if (!rc) rc = ledger__obligations(R->t, op->cycle, (uint8_t)netting->after.cell,
                                      find_obligation, &w);
    if (rc) return rc;
    if (!w.found) return KN_ENOOBLIGATION;
    ledger__key k;
    ledger__key_pair(&k, 'S', op->cycle, op->currency, op->counter);
    rc = load(R, E_CELL, &k, &settled);
    if (rc) return rc;
    if (settled->after.cell) return KN_ESETTLED;
    if ((int64_t)op->amount != w.amount) return KN_ESETTLEAMOUNT;
    settled->after.cell = w.amount;
    settled->dirty = true;
    kn_buf b = {0};
    ledger__settlement_encode(op->ref, R->height, &b);
    ledger__key_pair(&k, 'Z', op->cycle, op->currency, op->counter);
    raw_put(R, &k, &b);
    kn_buf_free(&b);
    return cycle_add(R, op->cycle, LEDGER__CY_SETTLED, 1);
}

/* ---------------------------------------------------------------- evidence */

/* Two conflicting signed votes of one validator: recorded once, by anyone
 * (evidence.c checks them against the validator set of the state). */
static int op_evidence(rules *R)
{
    ledger__key k;
    kn_buf rec = {0};
    int rc = ledger__evidence_check(R->t, R->tx, R->height, &k, &rec);
    if (!rc) {
        raw_put(R, &k, &rec);
        ledger__key_evidence_count(&k);
        rc = cell_add(R, &k, 1);
    }
    kn_buf_free(&rec);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

static int apply_op(rules *R, const ledger_op *op)
{
    if (op->kind == LEDGER_OP_CURRENCY) return op_currency(R);
    if (op->kind == LEDGER_OP_EVIDENCE) return op_evidence(R);
    if (op->kind == LEDGER_OP_GRANT || op->kind == LEDGER_OP_REVOKE) return op_role(R, op);
    if (op->kind == LEDGER_OP_CLOSE) return op_close(R, op);
    ledger_currency cur;
    int rc = currency_get(R, op->currency, &cur);
    if (rc) return rc;
    switch (op->kind) {
    case LEDGER_OP_ISSUE: return op_issue(R, op, &cur);
    case LEDGER_OP_RETIRE: return op_retire(R, op, &cur);
    case LEDGER_OP_TRANSFER: return op_transfer(R, op, &cur);
    case LEDGER_OP_ACCOUNT: return op_account(R, op, &cur);
    case LEDGER_OP_PROGRAMME: return op_programme(R, &cur);
    case LEDGER_OP_FUND: return op_fund(R, op, &cur);
    case LEDGER_OP_DISBURSE: return op_disburse(R, op, &cur);
    case LEDGER_OP_REDEEM: return op_redeem(R, op, &cur);
    case LEDGER_OP_REVERSE: return op_reverse(R, op, &cur);
    case LEDGER_OP_CLAWBACK: return op_clawback(R, op, &cur);
    case LEDGER_OP_EXPIRE: return op_expire(R, op, &cur);
    case LEDGER_OP_RATE: return op_rate(R, op);
    case LEDGER_OP_EXCHANGE: return op_exchange(R, op, &cur);
    case LEDGER_OP_SETTLE: return op_settle(R, op);
    case LEDGER_OP_CLEARING: return op_clearing(R, op, &cur);
    default: return KN_EUNKNOWNOP;
    }
}

/* ---------------------------------------------------------------- write-out */

/* Conservation of the write set: in each currency the balance changes sum to
 * zero, and no account ends below its floor. */
static void check_conservation(const rules *R)
{
    for (uint32_t i = 0; i < R->n; i++) {
        const entry *ei = &R->e[i];
        if (ei->type != E_ACCOUNT) continue;
        const char *code = ei->after.acct.currency;
        bool first = true;
        for (uint32_t j = 0; j < i && first; j++)
            first = R->e[j].type != E_ACCOUNT || strcmp(R->e[j].after.acct.currency, code) != 0;
        if (!first) continue;
        __int128 sum = 0;
        for (uint32_t j = i; j < R->n; j++) {
            const entry *e = &R->e[j];
            if (e->type != E_ACCOUNT || strcmp(e->after.acct.currency, code) != 0) continue;
            KN_REQUIRE(e->after.acct.balance >= e->after.acct.floor);
            sum += (__int128)e->after.acct.balance - e->before.acct.balance;
        }
        KN_REQUIRE(sum == 0);
    }
}

static void put_true(rules *R, const ledger__key *k, bool yes)
{
    kn_buf b = {0};
    kn_w_bool(&b, yes);
    raw_put(R, k, &b);
    kn_buf_free(&b);
}

/* Counts of accounts with money by kind, and a programme's beneficiaries. */
static int derive_account(rules *R, const entry *e)
{
    const ledger_account *b = &e->before.acct, *a = &e->after.acct;
    ledger__key k;
    int rc = 0;
    bool had = e->existed && b->balance > 0, has = a->balance > 0;
    if (had && (!has || b->kind != a->kind)) {
        ledger__key_holders(&k, a->currency, b->kind);
        rc = cell_add(R, &k, -1);
    }
    if (!rc && has && (!had || b->kind != a->kind)) {
        ledger__key_holders(&k, a->currency, a->kind);
        rc = cell_add(R, &k, 1);
    }
    if (rc || e->existed || a->kind != LEDGER_ACC_BENEFICIARY) return rc;
    ledger__key_tag(&k, 'B');
    ledger__key_str(&k, a->currency);
    ledger__key_str(&k, a->sub);
    ledger__key_raw(&k, a->owner, KN_PK_BYTES);
    put_true(R, &k, true);
    return pstat_add(R, a->currency, a->sub, LEDGER__PS_BENEFICIARIES, 1);
}

/* The role index and the number of holders of each role. */
static int derive_roles(rules *R, const entry *e)
{
    const ledger_roles *a = &e->after.roles;
    uint32_t before = e->existed ? e->before.roles.mask : 0, changed = before ^ a->mask;
    uint8_t pk[KN_PK_BYTES];
    memcpy(pk, e->key.b + 1, KN_PK_BYTES); /* "r" pk code */
    for (uint32_t role = 1; role <= LEDGER_ROLE_MAX; role++) {
        if (!(changed >> role & 1)) continue;
        bool holds = a->mask >> role & 1;
        ledger__key k;
        ledger__key_tag(&k, 'R');
        ledger__key_str(&k, a->currency);
        ledger__key_raw(&k, (uint8_t[]){(uint8_t)role}, 1);
        ledger__key_raw(&k, pk, KN_PK_BYTES);
        put_true(R, &k, holds);
        ledger__key_count(&k, a->currency, (uint8_t)role);
        int rc = cell_add(R, &k, holds ? 1 : -1);
        if (rc) return rc;
    }
    return 0;
}

static int derive(rules *R)
{
    uint32_t n = R->n; /* entries added below are counts, not accounts or roles */
    for (uint32_t i = 0; i < n; i++) {
        const entry *e = &R->e[i];
        if (!e->dirty) continue;
        int rc = e->type == E_ACCOUNT ? derive_account(R, e)
                 : e->type == E_ROLES ? derive_roles(R, e)
                                      : 0;
        if (rc) return rc;
    }
    return 0;
}

static void encode_entry(const entry *e, kn_buf *b)
{
    switch (e->type) {
    case E_ACCOUNT: ledger__account_encode(&e->after.acct, b); break;
    case E_ROLES: ledger__roles_encode(&e->after.roles, b); break;
    case E_CELL: kn_w_int(b, e->after.cell); break;
    default: KN_REQUIRE(!"unknown entry type");
    }
}

/* History keys invert the cursor so that a forward scan is newest first. */
static int write_leg(rules *R, const leg *l, uint16_t seq, kn_buf *b)
{
    ledger__key k;
    ledger__key_tag(&k, 'H');
    ledger__key_raw(&k, l->owner, KN_PK_BYTES);
    ledger__key_u64(&k, ~R->height);
    ledger__key_u32(&k, ~R->index);
    ledger__key_u16(&k, (uint16_t)~l->op);
    ledger__key_u16(&k, (uint16_t)~seq);
    kn_buf_reset(b);
    kn_w_array(b, MOVE_RECORD_FIELDS);
    kn_w_str(b, l->currency, strlen(l->currency));
    kn_w_str(b, l->sub, strlen(l->sub));
    kn_w_int(b, l->amount);
    kn_w_uint(b, l->kind);
    kn_w_bin(b, l->counterparty, KN_PK_BYTES);
    kn_w_str(b, l->counterparty_sub, strlen(l->counterparty_sub));
    kn_w_bin(b, R->tx->id, KN_HASH_BYTES);
    return ledger__put(R->t, R->ex, STORE_STATE, k.b, k.n, b->data, b->len);
}

/* A leg's place among the legs of the same owner in the same operation, so
 * that each history key is unique. */
static uint16_t leg_seq(const rules *R, uint32_t i)
{
    uint16_t seq = 0;
    const leg *l = &R->legs[i];
    for (uint32_t j = 0; j < i; j++)
        seq += R->legs[j].op == l->op && memcmp(R->legs[j].owner, l->owner, KN_PK_BYTES) == 0;
    return seq;
}

/* Writes the write set, once checked. */
static int write_set(rules *R)
{
    kn_buf val = {0};
    kn_buf_reserve(&val, 128);
    for (uint32_t i = 0; i < R->n && !store_error(R->t); i++) {
        const entry *e = &R->e[i];
        if (!e->dirty) continue;
        kn_buf_reset(&val);
        encode_entry(e, &val);
        if (ledger__put(R->t, R->ex, STORE_STATE, e->key.b, e->key.n, val.data, val.len)) break;
    }
    for (uint32_t i = 0; i < R->n_raws && !store_error(R->t); i++) {
        const raw *w = &R->raws[i];
        if (ledger__put(R->t, R->ex, STORE_STATE, w->key.b, w->key.n, R->arena + w->off, w->len))
            break;
    }
    for (uint32_t i = 0; i < R->n_legs && !store_error(R->t); i++)
        if (write_leg(R, &R->legs[i], leg_seq(R, i), &val)) break;
    kn_buf_free(&val);
    return store_error(R->t);
}

/* The checks of the whole write set (conservation, then the counts and
 * indexes derived from it); then its writes. */
static int check_set(rules *R)
{
    check_conservation(R);
    return derive(R);
}

static int flush(rules *R)
{
    int rc = check_set(R);
    return rc || R->check_only ? rc : write_set(R);
}

/* The rules' state, too big for a callback's stack frame in the daemon: one
 * per thread, reset for each transaction. */
static rules *rules_begin(store_txn *t, ledger__exec *ex, const ledger_tx *tx, uint64_t height,
                          uint32_t index, uint64_t time_ms)
{
    static _Thread_local rules R;
    R.t = t;
    R.ex = ex;
    R.tx = tx;
    R.height = height;
    R.index = index;
    R.time_ms = time_ms;
    R.op = 0;
    R.quiet_to = false;
    R.check_only = false;
    R.new_currency = NULL;
    R.new_programme = NULL;
    overlay_reset(&R);
    return &R;
}

/* Every operation on the write set, then the checks of the whole set;
 * nothing is written. */
static int run_rules(rules *R)
{
    if (R->height > R->tx->expiry_height) return KN_EEXPIRED;
    for (R->op = 0; R->op < R->tx->n_ops; R->op++) {
        int rc = apply_op(R, &R->tx->ops[R->op]);
        if (rc) return rc;
    }
    return check_set(R);
}

int ledger__tx_apply(store_txn *t, ledger__exec *ex, const ledger_tx *tx, uint64_t height,
                     uint32_t index, uint64_t time_ms)
{
    /* Block execution has looked the id up already, admission just before. */
    rules *R = rules_begin(t, ex, tx, height, index, time_ms);
    int rc = run_rules(R);
    return rc ? rc : write_set(R);
}

/* KN_EDUPTX when the transaction is committed already, 0 when it is not. */
static int not_committed(store_txn *t, const ledger_tx *tx)
{
    const uint8_t *p;
    size_t n;
    int rc = store_get(t, STORE_TXS, tx->id, KN_HASH_BYTES, &p, &n);
    if (rc == 0) return KN_EDUPTX;
    return rc == KN_ENOTFOUND ? 0 : rc;
}

int ledger_tx_check(store_txn *t, const ledger_tx *tx, uint64_t height, uint64_t time_ms)
{
    int rc = not_committed(t, tx);
    if (rc) return rc;
    rules *R = rules_begin(t, NULL, tx, height, 0, time_ms);
    R->check_only = true;
    return run_rules(R);
}

/* The genesis: the validator set, the consortium admins, their threshold and
 * the first currencies, written through the same overlay as any transaction
 * (so the counts and indexes the rules keep exist from the start), without a
 * signer. */
int ledger__genesis_state(store_txn *t, const ledger_genesis *g, uint32_t threshold)
{
    static const ledger_tx none;
    rules *R = rules_begin(t, NULL, &none, 0, 0, g->time_ms);
    ledger__key k;
    kn_buf b = {0};
    kn_w_array(&b, 1);
    kn_w_uint(&b, threshold);
    ledger__key_tag(&k, 'g');
    raw_put(R, &k, &b);
    for (uint32_t i = 0; i < g->n_validators; i++) {
        kn_buf_reset(&b);
        ledger__validator_encode(&g->validators[i], &b);
        ledger__key_validator(&k, i);
        raw_put(R, &k, &b);
    }
    kn_buf_free(&b);
    int rc = cycle_add(R, 1, LEDGER__CY_OPENED_MS, (int64_t)g->time_ms);
    for (uint32_t i = 0; i < g->n_admins && !rc; i++) {
        entry *roles;
        rc = roles_load(R, "", g->admins[i], &roles);
        if (rc) return rc;
        roles->after.roles.mask |= 1u << LEDGER_ROLE_CONSORTIUM_ADMIN;
        roles->dirty = true;
    }
    if (!rc) rc = flush(R);
    for (uint32_t i = 0; i < g->n_currencies && !rc; i++) {
        overlay_reset(R);
        rc = create_currency(R, &g->currencies[i]);
        if (!rc) rc = flush(R);
    }
    return rc;
}

bool ledger_rule_error(int err)
{
    switch (err) {
    case KN_EOVERDRAFT:
    case KN_ENOCURRENCY:
    case KN_ENOACCOUNT:
    case KN_ESUPPLY:
    case KN_EOVERFLOW:
    case KN_EEXPIRED:
    case KN_EWRONGSIGNER:
    case KN_EUNAUTHORISED:
    case KN_EQUORUM:
    case KN_EFROZEN:
    case KN_EACCCLOSED:
    case KN_ENOTAUTHACC:
    case KN_EROUTE:
    case KN_ECATEGORY:
    case KN_ENOPROGRAMME:
    case KN_EINACTIVE:
    case KN_EPROGEXPIRED:
    case KN_ENOTENDED:
    case KN_EBUDGET:
    case KN_ECAP:
    case KN_EDUPBATCH:
    case KN_EEXISTS:
    case KN_ENONZERO:
    case KN_EFORBIDDEN:
    case KN_EREVERSAL:
    case KN_ENOTRANSFER:
    case KN_ENOROLE:
    case KN_ELASTADMIN:
    case KN_ENOTBENEFICIARY:
    case KN_EUNKNOWNPAIR:
    case KN_ERATEEXPIRED:
    case KN_ENORATE:
    case KN_ENOEXCHANGE:
    case KN_ESENDMAX:
    case KN_ETOOSMALL:
    case KN_ECLEARINGFLOOR:
    case KN_ENOCYCLE:
    case KN_ECYCLECLOSED:
    case KN_ECYCLEOPEN:
    case KN_ENOOBLIGATION:
    case KN_ESETTLEAMOUNT:
    case KN_ESETTLED:
    case KN_EBADEVIDENCE:
    case KN_EEVIDENCEKNOWN: return true;
    default: return false;
    }
}

int ledger_tx_apply(store_txn *t, const ledger_tx *tx, uint64_t height, uint64_t time_ms)
{
    int rc = not_committed(t, tx);
    return rc ? rc : ledger__tx_apply(t, NULL, tx, height, 0, time_ms);
}
