/* Transaction commands: `koinon issue`, `transfer`, `grant`, `disburse`, ...
 *
 * One table holds every command: the operation it builds, the options it takes
 * beyond the common ones and which of them it needs, and for the few that need
 * more than plain fields a filler. Everything else is shared: the option parser,
 * the generic filling of an operation's fields, loading every --key, signing
 * with each (a quorum is several signatures on one transaction), encoding, and
 * the POST to the node with the report of its answer. */
#include "node/ledger/ledger.h"
#include "tools/internal.h"

#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSED (-1) /* parse_args: go on with the command */
#define EXPIRY_BLOCKS_DEFAULT 100
#define EXPIRY_BLOCKS_MAX 1000000
#define GIVEN_MAX 512 /* options on one command line */
#define USAGE_BYTES_MAX 512
#define DAYS_MAX 36500 /* so that days * LEDGER_DAY_MS cannot overflow */
#define EARLY_DAYS_MAX 36500
#define PAYEE_LINE_MAX 256 /* a line of a --file batch */
/* A transfer memo never leaves the machine: only its salted hash does. */
#define MEMO_DOMAIN "koinon/memo/v1"
#define MEMO_SALT_BYTES 16
#define MEMO_BYTES_MAX 1024

/* clang-format off: the options in groups, as the commands use them */
enum opt_id {
    O_KEY,
    O_CURRENCY,
    O_AMOUNT,
    O_REF,
    O_TO,
    O_PROGRAMME,
    O_BATCH,
    O_FILE,
    O_MEMO,
    O_PAYOUT_REF,
    O_TX,
    O_OP,
    O_FROM,
    O_CASE,
    O_CATEGORY,
    O_CREDIT_LIMIT,
    O_CODE,
    O_NAME,
    O_CITY,
    O_SCALE,
    O_MAX_SUPPLY,
    O_FLAGS,
    O_ISSUER_ADMIN,
    O_THRESHOLD,
    O_FEE_BPS,
    O_EARLY_FEE_BPS,
    O_EARLY_DAYS,
    O_DEMURRAGE_BPS,
    O_DEMURRAGE_PERIOD_MS,
    O_QUOTE,
    O_RATE,
    O_ID,
    O_BUDGET,
    O_START,
    O_START_MS,
    O_END_MS,
    O_DAYS,
    O_CAP,
    O_PERIOD_MS,
    O_PERIOD_DAYS,
    O_P2P,
    O_GRACE_MS,
    O_GRACE_DAYS,
    O_TO_CURRENCY,
    O_DELIVER,
    O_SEND_MAX,
    O_CYCLE,
    O_NETTING,
    O_DEBTOR,
    O_CREDITOR,
    /* Every command takes these. */
    O_NODE,
    O_WAIT,
    O_NONCE,
    O_EXPIRY_BLOCKS,
    O_CHAIN_ID,
    O_JSON,
    O_OUT,
    O_HELP,
    O_COUNT
};
/* clang-format on */
_Static_assert(O_COUNT <= 64, "option masks are 64 bits");

#define B(o) (1ull << (o))
#define OPT_VAL_BASE 256 /* getopt_long values: OPT_VAL_BASE + enum opt_id */

typedef struct opt_def {
    const char *name;
    bool takes_value;
    uint32_t repeat_max; /* 0: at most once */
    const char *help;
} opt_def;

static const opt_def opt_defs[O_COUNT] = {
    [O_KEY] = {"key", true, LEDGER_SIGS_MAX,
               "--key FILE              a key that signs; repeat it for every signer a quorum\n"
               "                          needs (at most 8)"},
    [O_CURRENCY] = {"currency", true, 0, "--currency CODE         currency code, e.g. SVQ"},
    [O_AMOUNT] = {"amount", true, 0,
                  "--amount MINOR          amount in minor units (cents for scale 2)"},
    [O_REF] = {"ref", true, 0, "--ref TEXT              reference, at most 64 bytes"},
    [O_TO] = {"to", true, LEDGER_PAYEES_MAX,
              "--to PUBKEY             the payee (transfer: a public key or 'treasury';\n"
              "                          exchange: a public key;\n"
              "                          disburse: PUBKEY:AMOUNT, once per beneficiary)"},
    [O_PROGRAMME] = {"programme", true, 0, "--programme ID          aid programme id"},
    [O_BATCH] = {"batch", true, 0,
                 "--batch ID              batch id, unique in the programme (1..32 bytes)"},
    [O_FILE] = {"file", true, 0,
                "--file FILE             the batch: lines \"PUBKEY AMOUNT\" or \"PUBKEY,AMOUNT\"; "
                "# comments"},
    [O_MEMO] = {"memo", true, 0,
                "--memo TEXT             commit to a memo: only a salted hash goes on the ledger;\n"
                "                          keep the printed salt to prove the memo later"},
    [O_PAYOUT_REF] = {"payout-ref", true, 0,
                      "--payout-ref TEXT       reference of the euro payout, at most 64 bytes"},
    [O_TX] = {"tx", true, 0, "--tx TXID               id of the original transaction"},
    [O_OP] = {"op", true, 0, "--op N                  index of the transfer in it (default 0)"},
    [O_FROM] = {"from", true, 0, "--from PUBKEY|treasury  clawback: the key whose money is taken back;\n"
                                 "                        transfer: 'treasury' to pay from the treasury"},
    [O_CASE] = {"case", true, 0, "--case REF              case reference, at most 64 bytes"},
    [O_CATEGORY] = {"category", true, LEDGER_CATEGORIES_MAX,
                    "--category CAT          merchant category (programme-create: an allowed one,\n"
                    "                          repeatable; none means any)"},
    [O_CREDIT_LIMIT] = {"credit-limit", true, 0,
                        "--credit-limit MINOR    sse: mutual-credit limit in minor units"},
    [O_CODE] = {"code", true, 0,
                "--code CODE             the new currency's code (1..12 letters or digits)"},
    [O_NAME] = {"name", true, 0, "--name TEXT             its name"},
    [O_CITY] = {"city", true, 0, "--city TEXT             the issuing city"},
    [O_SCALE] = {"scale", true, 0,
                 "--scale N               decimal places of a minor unit (0..18)"},
    [O_MAX_SUPPLY] = {"max-supply", true, 0, "--max-supply MINOR      maximum circulating supply"},
    [O_FLAGS] = {"flags", true, 0,
                 "--flags LIST            comma-separated: auth_required, freezable, clawback,\n"
                 "                          p2p, holder_redeem, demurrage, mutual_credit"},
    [O_ISSUER_ADMIN] = {"issuer-admin", true, LEDGER_SIGS_MAX,
                        "--issuer-admin PUBKEY   a first issuer admin (repeatable, 1..8)"},
    [O_THRESHOLD] = {"threshold", true, 0,
                     "--threshold M           issuer admins that must sign (the issuer quorum)"},
    [O_FEE_BPS] = {"fee-bps", true, 0,
                   "--fee-bps N             redemption fee in basis points (default 0)"},
    [O_EARLY_FEE_BPS] =
        {"early-fee-bps", true, 0,
         "--early-fee-bps N       fee for money received less than --early-days ago"},
    [O_EARLY_DAYS] = {"early-days", true, 0,
                      "--early-days N          days money must be held to avoid the early fee"},
    [O_DEMURRAGE_BPS] = {"demurrage-bps", true, 0,
                         "--demurrage-bps N       demurrage per period in basis points"},
    [O_DEMURRAGE_PERIOD_MS] = {"demurrage-period-ms", true, 0,
                               "--demurrage-period-ms N demurrage period (at least 60000)"},
    [O_ID] = {"id", true, 0, "--id ID                 programme id: 1..16 of A-Z a-z 0-9 . _ -"},
    [O_BUDGET] = {"budget", true, 0, "--budget MINOR          the programme's budget"},
    [O_START] = {"start", true, 0, "--start now             start at the current time"},
    [O_START_MS] = {"start-ms", true, 0,
                    "--start-ms T            start, ms since the epoch (block time)"},
    [O_END_MS] = {"end-ms", true, 0, "--end-ms T              end, ms since the epoch"},
    [O_DAYS] = {"days", true, 0,
                "--days D                end D days after the start (rate-set: after the\n"
                "                          last block's time)"},
    [O_CAP] = {"cap", true, 0,
               "--cap MINOR             per beneficiary per period (default 0: none)"},
    [O_PERIOD_MS] = {"period-ms", true, 0,
                     "--period-ms N           cap period (default 0: the whole programme)"},
    [O_PERIOD_DAYS] = {"period-days", true, 0, "--period-days D         cap period in days"},
    [O_P2P] = {"p2p", false, 0,
               "--p2p                   beneficiaries may pay each other from the aid"},
    [O_GRACE_MS] = {"grace-ms", true, 0,
                    "--grace-ms N            time after the end before expiry (default 0)"},
    [O_GRACE_DAYS] = {"grace-days", true, 0, "--grace-days D          grace period in days"},
    [O_QUOTE] = {"quote", true, 0,
                 "--quote CODE|EUR        the quote currency, or EUR for the unit of account"},
    [O_RATE] = {"rate", true, 0,
                "--rate NUM/DEN          a minor unit of the base is NUM/DEN minor units of the\n"
                "                          quote (integers 1..10^12)"},
    [O_TO_CURRENCY] = {"to-currency", true, 0,
                       "--to-currency CODE      the currency the payee receives"},
    [O_DELIVER] = {"deliver", false, 0,
                   "--deliver               --amount is what arrives (default: what is paid)"},
    [O_SEND_MAX] = {"send-max", true, 0,
                    "--send-max MINOR        with --deliver: pay at most this much"},
    [O_CYCLE] = {"cycle", true, 0, "--cycle N               settlement cycle number"},
    [O_NETTING] = {"netting", true, 0,
                   "--netting MODE          bilateral or multilateral (default multilateral)"},
    [O_DEBTOR] = {"debtor", true, 0, "--debtor CODE           the currency whose city pays"},
    [O_CREDITOR] = {"creditor", true, 0, "--creditor CODE         the currency whose city is paid"},
    [O_NODE] = {"node", true, 0, "--node URL              node API (default " CLI_NODE_DEFAULT ")"},
    [O_WAIT] = {"wait", false, 0,
                "--wait                  wait until committed and show the result"},
    [O_NONCE] = {"nonce", true, 0, "--nonce N               transaction nonce (default: random)"},
    [O_EXPIRY_BLOCKS] =
        {"expiry-blocks", true, 0,
         "--expiry-blocks N       expire N blocks after the current height (default 100)"},
    [O_CHAIN_ID] = {"chain-id", true, 0, "--chain-id ID           chain id (default: the node's)"},
    [O_JSON] = {"json", false, 0, "--json                  print the node's JSON reply as is"},
    [O_OUT] = {"out", true, 0,
               "--out FILE              write the signed bytes to FILE instead of sending them\n"
               "                          (the node is still asked for the chain id and height)"},
    [O_HELP] = {"help", false, 0, "--help                  show this help"},
};

#define COMMON_OPTS                                                                                \
    (B(O_NODE) | B(O_WAIT) | B(O_NONCE) | B(O_EXPIRY_BLOCKS) | B(O_CHAIN_ID) | B(O_JSON) |         \
     B(O_OUT) | B(O_HELP))

typedef struct tx_args tx_args;

typedef struct tx_command {
    const char *name;
    uint8_t kind;        /* enum ledger_op_kind */
    uint32_t action;     /* account commands: enum ledger_account_action;
                            clearing commands: enum ledger_clearing_direction */
    uint8_t n_pos;       /* positional arguments */
    bool signer_is_from; /* op.from is the first --key: transfer, redeem, close-account */
    uint64_t opts;       /* options beyond the common ones */
    uint64_t required;
    const char *synopsis;
    const char *intro;
    /* Fills what the generic filler does not; NULL when nothing is left. */
    void (*fill)(tx_args *a, ledger_tx *tx);
} tx_command;

typedef struct given_opt {
    uint8_t id; /* enum opt_id */
    const char *value;
} given_opt;

struct tx_args {
    const tx_command *cmd;
    char usage[USAGE_BYTES_MAX];
    given_opt given[GIVEN_MAX]; /* in command-line order */
    uint32_t n_given;
    uint32_t count[O_COUNT];
    const char *pos[2];
    uint32_t n_pos;
    int status; /* sticky: 0, or the exit status of the first problem reported */
    /* The common options, parsed. */
    char node[CLI_URL_MAX];
    const char *chain_id; /* NULL: ask the node */
    uint64_t nonce, expiry_blocks;
    bool nonce_given, wait, json;
    const char *out; /* --out FILE: write the signed bytes there, send nothing */
    /* transfer and exchange --memo */
    bool has_memo;
    uint8_t memo_salt[MEMO_SALT_BYTES];
    /* rate-set --days: op.end_ms holds the days in ms until the last block's
     * time is known (fetch_chain asks the node). */
    bool end_from_block;
};

/* ---------------------------------------------------------------- reporting */

/* Reports a usage problem once: later ones are consequences of the first. */
static void usage(tx_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void usage(tx_args *a, const char *fmt, ...)
{
    if (a->status) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->status = cli_usage_error(a->usage, "%s", msg);
}

static const char *val(const tx_args *a, int id)
{
    for (uint32_t i = 0; i < a->n_given; i++)
        if (a->given[i].id == id) return a->given[i].value;
    return NULL;
}

static bool has(const tx_args *a, int id)
{
    return a->count[id] > 0;
}

/* ---------------------------------------------------------------- field readers */

static bool valid_code(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= LEDGER_CODE_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == n;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= LEDGER_ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Each reader leaves out alone when the option is absent (the required ones
 * were checked by the parser) and reports a bad value through usage(). */
static void get_u64(tx_args *a, int id, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = val(a, id);
    if (a->status || !s || cli_parse_u64(s, min, max, out) == 0) return;
    usage(a, "--%s must be an integer from %" PRIu64 " to %" PRIu64, opt_defs[id].name, min, max);
}

static void get_u32(tx_args *a, int id, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = *out;
    get_u64(a, id, min, max, &v);
    *out = (uint32_t)v;
}

static void get_text(tx_args *a, int id, size_t min, size_t max, char *out)
{
    const char *s = val(a, id);
    if (a->status || !s) return;
    size_t n = strlen(s);
    if (n < min || n > max) {
        usage(a, "--%s must be %zu to %zu bytes", opt_defs[id].name, min, max);
        return;
    }
    memcpy(out, s, n + 1);
}

static void get_code(tx_args *a, int id, char out[LEDGER_CODE_MAX + 1])
{
    const char *s = val(a, id);
    if (a->status || !s) return;
    if (!valid_code(s))
        usage(a, "--%s must be 1 to %d letters or digits", opt_defs[id].name, LEDGER_CODE_MAX);
    else
        memcpy(out, s, strlen(s) + 1);
}

static void get_id(tx_args *a, int id, char out[LEDGER_ID_MAX + 1])
{
    const char *s = val(a, id);
    if (a->status || !s) return;
    if (!valid_id(s))
        usage(a, "--%s must be 1 to %d of A-Z a-z 0-9 . _ -", opt_defs[id].name, LEDGER_ID_MAX);
    else
        memcpy(out, s, strlen(s) + 1);
}

static void get_pk(tx_args *a, const char *s, const char *what, uint8_t out[KN_PK_BYTES])
{
    if (a->status || !s) return;
    if (cli_parse_pk(s, out) || sodium_is_zero(out, KN_PK_BYTES))
        usage(a, "%s must be a public key of 64 hex digits", what);
}

/* ---------------------------------------------------------------- per-command fillers */

/* The payer a transfer's signer stands for: its own key, or with --from
 * treasury the currency's treasury (signed by the issuer quorum). */
static bool treasury_pays(const tx_args *a)
{
    return a->cmd->kind == LEDGER_OP_TRANSFER && has(a, O_FROM);
}

/* The fields of the operation that map one to one to options; the op kinds
 * share the ledger_op fields (see ledger.h), so one filler serves them all. */
static void fill_generic(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    const tx_command *cmd = a->cmd;
    op->kind = cmd->kind;
    if (cmd->kind == LEDGER_OP_ACCOUNT) op->role = cmd->action;
    if (cmd->kind == LEDGER_OP_CLEARING) op->mode = (uint8_t)cmd->action;
    get_code(a, O_CURRENCY, op->currency);
    get_code(a, O_DEBTOR, op->currency);
    get_code(a, O_QUOTE, op->counter);
    get_code(a, O_TO_CURRENCY, op->counter);
    get_code(a, O_CREDITOR, op->counter);
    /* rate, exchange and settle name two currencies, which the ledger wants distinct. */
    int counter_id = has(a, O_QUOTE) ? O_QUOTE : has(a, O_TO_CURRENCY) ? O_TO_CURRENCY : O_CREDITOR;
    if (!a->status && op->counter[0] && strcmp(op->currency, op->counter) == 0)
        usage(a, "--%s must be another currency", opt_defs[counter_id].name);
    get_u64(a, O_AMOUNT, 1, INT64_MAX, &op->amount);
    get_u64(a, O_SEND_MAX, 1, INT64_MAX, &op->limit);
    get_u64(a, O_CYCLE, 1, INT64_MAX, &op->cycle);
    get_id(a, O_PROGRAMME, op->programme);
    bool ref_needed = cmd->kind == LEDGER_OP_ISSUE || cmd->kind == LEDGER_OP_SETTLE;
    get_text(a, O_REF, ref_needed, LEDGER_REF_MAX, op->ref);
    get_text(a, O_PAYOUT_REF, 1, LEDGER_REF_MAX, op->ref);
    get_text(a, O_CASE, 1, LEDGER_REF_MAX, op->ref);
    get_text(a, O_BATCH, 1, LEDGER_BATCH_MAX, op->ref);
    if (!treasury_pays(a)) get_pk(a, val(a, O_FROM), "--from", op->from);
    get_u32(a, O_OP, 0, LEDGER_OPS_MAX - 1, &op->role);
    if (!a->status && has(a, O_TX) && cli_parse_hash(val(a, O_TX), op->link))
        usage(a, "--tx must be a transaction id of 64 hex digits");
    /* grant, revoke and the account actions name their subject first or alone. */
    if (cmd->n_pos) get_pk(a, a->pos[cmd->n_pos - 1], "PUBKEY", op->from);
}

static void fill_flags(tx_args *a, uint32_t *flags)
{
    const char *list = val(a, O_FLAGS);
    if (a->status || !list) return;
    char name[32];
    for (const char *p = list; *p && !a->status;) {
        size_t n = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
        uint32_t bit = n < sizeof name ? ledger_flag_parse(name) : 0;
        if (!bit) usage(a, "--flags: unknown flag '%.*s'", (int)n, p);
        *flags |= bit;
        p += n + (p[n] == ',');
    }
}

static void fill_currency(tx_args *a, ledger_tx *tx)
{
    ledger_currency *c = &tx->currency_def;
    get_code(a, O_CODE, c->code);
    memcpy(tx->ops[0].currency, c->code, sizeof c->code);
    get_text(a, O_NAME, 0, LEDGER_NAME_MAX, c->name);
    get_text(a, O_CITY, 0, LEDGER_NAME_MAX, c->city);
    uint32_t scale = 0;
    get_u32(a, O_SCALE, 0, 18, &scale);
    c->scale = (uint8_t)scale;
    get_u64(a, O_MAX_SUPPLY, 1, INT64_MAX, &c->max_supply);
    fill_flags(a, &c->flags);
    for (uint32_t i = 0; i < a->n_given && !a->status; i++) {
        if (a->given[i].id != O_ISSUER_ADMIN) continue;
        uint8_t *pk = c->issuer_admins[c->n_issuer_admins];
        get_pk(a, a->given[i].value, "--issuer-admin", pk);
        for (uint32_t j = 0; j < c->n_issuer_admins && !a->status; j++)
            if (memcmp(c->issuer_admins[j], pk, KN_PK_BYTES) == 0)
                usage(a, "--issuer-admin lists a key twice");
        c->n_issuer_admins++;
    }
    get_u32(a, O_THRESHOLD, 1, c->n_issuer_admins, &c->issuer_threshold);
    get_u32(a, O_FEE_BPS, 0, LEDGER_BPS, &c->fee_bps);
    get_u32(a, O_EARLY_FEE_BPS, 0, LEDGER_BPS, &c->early_fee_bps);
    get_u32(a, O_EARLY_DAYS, 0, EARLY_DAYS_MAX, &c->early_days);
    get_u32(a, O_DEMURRAGE_BPS, 1, LEDGER_BPS, &c->demurrage_bps);
    get_u64(a, O_DEMURRAGE_PERIOD_MS, LEDGER_DEMURRAGE_PERIOD_MIN_MS, INT64_MAX,
            &c->demurrage_period_ms);
    bool demurrage = c->flags & LEDGER_CUR_DEMURRAGE;
    if (demurrage != (c->demurrage_bps && c->demurrage_period_ms))
        usage(a, "the demurrage flag goes with --demurrage-bps and --demurrage-period-ms");
}

/* A time given either in ms or in days (ms_id, days_id); false when neither. */
static bool get_ms_or_days(tx_args *a, int ms_id, int days_id, uint64_t *ms)
{
    if (has(a, ms_id) && has(a, days_id))
        usage(a, "give --%s or --%s, not both", opt_defs[ms_id].name, opt_defs[days_id].name);
    uint64_t days = 0;
    get_u64(a, ms_id, 0, INT64_MAX, ms);
    get_u64(a, days_id, 0, DAYS_MAX, &days);
    if (has(a, days_id)) *ms = days * LEDGER_DAY_MS;
    return has(a, ms_id) || has(a, days_id);
}

static void fill_programme_times(tx_args *a, ledger_programme *p)
{
    const char *start = val(a, O_START);
    if (has(a, O_START) == has(a, O_START_MS))
        usage(a, "give --start now or --start-ms T");
    else if (start && strcmp(start, "now") != 0)
        usage(a, "--start takes only 'now'; use --start-ms T for another time");
    p->start_ms = start ? kn_now_ms() : 0;
    get_u64(a, O_START_MS, 0, INT64_MAX, &p->start_ms);
    uint64_t end_ms = 0;
    if (!get_ms_or_days(a, O_END_MS, O_DAYS, &end_ms)) usage(a, "give --end-ms T or --days D");
    p->end_ms = has(a, O_DAYS) ? p->start_ms + end_ms : end_ms;
    if (!a->status && p->end_ms <= p->start_ms) usage(a, "the end must come after the start");
    get_ms_or_days(a, O_PERIOD_MS, O_PERIOD_DAYS, &p->period_ms);
    get_ms_or_days(a, O_GRACE_MS, O_GRACE_DAYS, &p->grace_ms);
}

static void fill_programme(tx_args *a, ledger_tx *tx)
{
    ledger_programme *p = &tx->programme_def;
    memcpy(p->currency, tx->ops[0].currency, sizeof p->currency);
    get_id(a, O_ID, p->id);
    memcpy(tx->ops[0].programme, p->id, sizeof p->id);
    get_u64(a, O_BUDGET, 1, INT64_MAX, &p->budget);
    get_u64(a, O_CAP, 0, INT64_MAX, &p->cap);
    p->p2p = has(a, O_P2P);
    fill_programme_times(a, p);
    for (uint32_t i = 0; i < a->n_given && !a->status; i++) {
        const char *cat = a->given[i].value;
        if (a->given[i].id != O_CATEGORY) continue;
        if (!cat[0] || strlen(cat) > LEDGER_CATEGORY_MAX)
            usage(a, "--category must be 1 to %d bytes", LEDGER_CATEGORY_MAX);
        for (uint32_t j = 0; j < p->n_categories && !a->status; j++)
            if (strcmp(p->categories[j], cat) == 0) usage(a, "--category '%s' given twice", cat);
        if (!a->status)
            snprintf(p->categories[p->n_categories++], LEDGER_CATEGORY_MAX + 1, "%s", cat);
    }
}

/* ROLE (the first positional) and the currency it is held in. */
static void fill_role(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    op->role = ledger_role_parse(a->pos[0]);
    bool consortium = op->role == LEDGER_ROLE_CONSORTIUM_ADMIN;
    if (!op->role)
        usage(a,
              "unknown role '%s' (consortium_admin, issuer_admin, programme_manager, auditor, "
              "merchant, sse, beneficiary, clearing)",
              a->pos[0]);
    else if (consortium && op->currency[0])
        usage(a, "consortium_admin is held for the whole consortium: leave out --currency");
    else if (!consortium && !op->currency[0])
        usage(a, "--currency CODE is required for the role %s", a->pos[0]);
}

static void fill_grant(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    fill_role(a, tx);
    get_text(a, O_CATEGORY, 1, LEDGER_CATEGORY_MAX, op->ref);
    get_u64(a, O_CREDIT_LIMIT, 0, INT64_MAX, &op->amount);
    if (a->status) return;
    /* The ledger refuses these shapes outright; say so before signing. */
    if (a->count[O_CATEGORY] > 1) usage(a, "--category is given once for a grant");
    if ((op->role == LEDGER_ROLE_MERCHANT) != has(a, O_CATEGORY))
        usage(a, "a merchant grant takes --category CAT, and only a merchant grant does");
    if (has(a, O_CREDIT_LIMIT) && op->role != LEDGER_ROLE_SSE)
        usage(a, "--credit-limit goes only with the role sse");
}

/* issue --to PUBKEY: the treasury pays the new money on in the same
 * transaction, so it lands in PUBKEY's account or not at all. */
static void fill_issue(tx_args *a, ledger_tx *tx)
{
    if (!has(a, O_TO)) return;
    if (a->count[O_TO] > 1) {
        usage(a, "an issue has one --to");
        return;
    }
    ledger_op *pay = &tx->ops[tx->n_ops++];
    pay->kind = LEDGER_OP_TRANSFER;
    memcpy(pay->currency, tx->ops[0].currency, sizeof pay->currency);
    pay->amount = tx->ops[0].amount;
    get_pk(a, val(a, O_TO), "--to", pay->to);
}

/* --memo TEXT: the operation carries a salted hash of it (transfer, exchange). */
static void fill_memo(tx_args *a, ledger_op *op)
{
    const char *memo = val(a, O_MEMO);
    if (a->status || !memo) return;
    size_t n = strlen(memo);
    if (n == 0 || n > MEMO_BYTES_MAX) {
        usage(a, "--memo must be 1 to %d bytes", MEMO_BYTES_MAX);
        return;
    }
    /* The salt keeps a short or guessable memo from being found by hashing
     * candidates; whoever is shown salt and memo can check the commitment. */
    uint8_t input[MEMO_SALT_BYTES + MEMO_BYTES_MAX];
    randombytes_buf(a->memo_salt, MEMO_SALT_BYTES);
    memcpy(input, a->memo_salt, MEMO_SALT_BYTES);
    memcpy(input + MEMO_SALT_BYTES, memo, n);
    kn_hash(op->link, MEMO_DOMAIN, input, MEMO_SALT_BYTES + n);
    op->has_link = true;
    a->has_memo = true;
}

static void fill_transfer(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    const char *to = val(a, O_TO);
    if (treasury_pays(a) && strcmp(val(a, O_FROM), "treasury") != 0)
        usage(a, "a transfer's --from can only be 'treasury' (otherwise the payer is the key)");
    else if (treasury_pays(a) && has(a, O_PROGRAMME))
        usage(a, "the treasury pays from no programme");
    else if (a->count[O_TO] > 1)
        usage(a, "a transfer has one --to");
    else if (strcmp(to, "treasury") != 0)
        get_pk(a, to, "--to", op->to);
    fill_memo(a, op);
}

/* --rate NUM/DEN: both integers from 1 to LEDGER_RATE_TERM_MAX. */
static void get_rate(tx_args *a, ledger_op *op)
{
    const char *rate = val(a, O_RATE);
    if (a->status || !rate) return;
    const char *slash = strchr(rate, '/');
    char num[24];
    size_t n = slash ? (size_t)(slash - rate) : sizeof num;
    if (n < sizeof num) snprintf(num, sizeof num, "%.*s", (int)n, rate);
    if (n >= sizeof num || cli_parse_u64(num, 1, LEDGER_RATE_TERM_MAX, &op->num) ||
        cli_parse_u64(slash + 1, 1, LEDGER_RATE_TERM_MAX, &op->den))
        usage(a, "--rate must be NUM/DEN, two integers from 1 to %" PRIu64,
              (uint64_t)LEDGER_RATE_TERM_MAX);
}

static void fill_rate(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    get_rate(a, op);
    get_u64(a, O_START_MS, 0, INT64_MAX, &op->start_ms);
    if (!get_ms_or_days(a, O_END_MS, O_DAYS, &op->end_ms)) usage(a, "give --end-ms T or --days D");
    a->end_from_block = has(a, O_DAYS);
    if (!a->status && !a->end_from_block && op->end_ms <= op->start_ms)
        usage(a, "the end must come after the start");
}

static void fill_exchange(tx_args *a, ledger_tx *tx)
{
    ledger_op *op = &tx->ops[0];
    op->mode = has(a, O_DELIVER) ? LEDGER_EXCHANGE_DELIVER : LEDGER_EXCHANGE_SEND;
    if (has(a, O_SEND_MAX) && !has(a, O_DELIVER))
        usage(a, "--send-max goes only with --deliver (without it --amount is what is paid)");
    else if (a->count[O_TO] > 1)
        usage(a, "an exchange has one --to");
    get_pk(a, val(a, O_TO), "--to", op->to);
    fill_memo(a, op);
}

static void fill_close(tx_args *a, ledger_tx *tx)
{
    const char *netting = val(a, O_NETTING);
    ledger_op *op = &tx->ops[0];
    op->mode = LEDGER_NETTING_MULTILATERAL;
    if (!netting || strcmp(netting, "multilateral") == 0) return;
    if (strcmp(netting, "bilateral") == 0)
        op->mode = LEDGER_NETTING_BILATERAL;
    else
        usage(a, "--netting must be bilateral or multilateral");
}

/* One beneficiary: a public key and an amount, each given as text. */
static bool parse_payee(const char *pk, size_t pk_len, const char *amount, ledger_payee *out)
{
    return kn_unhex(out->pk, KN_PK_BYTES, pk, pk_len) == 0 &&
           !sodium_is_zero(out->pk, KN_PK_BYTES) &&
           cli_parse_u64(amount, 1, INT64_MAX, &out->amount) == 0;
}

static void add_payee(tx_args *a, ledger_tx *tx, const char *pk, size_t pk_len, const char *amount,
                      const char *where)
{
    if (a->status) return;
    if (tx->n_payees == LEDGER_PAYEES_MAX) {
        usage(a, "%s: a batch holds at most %d beneficiaries; split it into several batches", where,
              LEDGER_PAYEES_MAX);
        return;
    }
    if (!parse_payee(pk, pk_len, amount, &tx->payees[tx->n_payees]))
        usage(a, "%s: expected a public key (64 hex digits) and a positive amount", where);
    else
        tx->n_payees++;
}

/* A line "PUBKEY AMOUNT" or "PUBKEY,AMOUNT", after its comment is cut. */
static void add_payee_line(tx_args *a, ledger_tx *tx, char *line, const char *where)
{
    line[strcspn(line, "#\r\n")] = '\0';
    char *pk = line + strspn(line, " \t");
    if (!*pk) return;
    size_t pk_len = strcspn(pk, " \t,");
    char *amount = pk + pk_len;
    amount += strspn(amount, " \t");
    if (*amount == ',') amount++;
    amount += strspn(amount, " \t");
    char *end = amount + strcspn(amount, " \t");
    if (end[strspn(end, " \t")] != '\0') {
        usage(a, "%s: expected PUBKEY AMOUNT and nothing after it", where);
        return;
    }
    *end = '\0';
    add_payee(a, tx, pk, pk_len, amount, where);
}

static void read_payee_file(tx_args *a, ledger_tx *tx, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        a->status = cli_fail(KN_EIO, "cannot read %s", path);
        return;
    }
    char line[PAYEE_LINE_MAX], where[CLI_PATH_MAX + 32];
    for (unsigned no = 1; !a->status && fgets(line, sizeof line, f); no++) {
        snprintf(where, sizeof where, "%s line %u", path, no);
        if (!strchr(line, '\n') && !feof(f))
            usage(a, "%s: line too long", where);
        else
            add_payee_line(a, tx, line, where);
    }
    fclose(f);
}

static void fill_disburse(tx_args *a, ledger_tx *tx)
{
    if (has(a, O_TO) == has(a, O_FILE)) {
        usage(a, "give the batch with --to PUBKEY:AMOUNT (repeated) or with --file FILE");
        return;
    }
    if (has(a, O_FILE)) read_payee_file(a, tx, val(a, O_FILE));
    for (uint32_t i = 0; i < a->n_given && !a->status; i++) {
        const char *s = a->given[i].value;
        if (a->given[i].id != O_TO) continue;
        const char *colon = strchr(s, ':');
        if (!colon)
            usage(a, "--to %s: expected PUBKEY:AMOUNT", s);
        else
            add_payee(a, tx, s, (size_t)(colon - s), colon + 1, "--to");
    }
    if (!a->status && tx->n_payees == 0) usage(a, "the batch is empty");
}

/* ---------------------------------------------------------------- the commands */

#define K B(O_KEY)
#define CUR B(O_CURRENCY)
#define AMT B(O_AMOUNT)
#define PROG B(O_PROGRAMME)

static const tx_command tx_commands[] = {
    {"currency-create", LEDGER_OP_CURRENCY, 0, 0, false,
     K | B(O_CODE) | B(O_NAME) | B(O_CITY) | B(O_SCALE) | B(O_MAX_SUPPLY) | B(O_FLAGS) |
         B(O_ISSUER_ADMIN) | B(O_THRESHOLD) | B(O_FEE_BPS) | B(O_EARLY_FEE_BPS) | B(O_EARLY_DAYS) |
         B(O_DEMURRAGE_BPS) | B(O_DEMURRAGE_PERIOD_MS),
     K | B(O_CODE) | B(O_NAME) | B(O_CITY) | B(O_SCALE) | B(O_MAX_SUPPLY) | B(O_ISSUER_ADMIN) |
         B(O_THRESHOLD),
     "--code CODE --name TEXT --city TEXT --scale N --max-supply MINOR\n"
     "         [--flags LIST] --issuer-admin PUBKEY... --threshold M [--fee-bps N]\n"
     "         [--early-fee-bps N --early-days N] [--demurrage-bps N --demurrage-period-ms N]\n"
     "         --key FILE...",
     "Creates a currency. Signed by the consortium quorum of consortium admins.", fill_currency},
    {"grant", LEDGER_OP_GRANT, 0, 2, false, K | CUR | B(O_CATEGORY) | B(O_CREDIT_LIMIT), K,
     "ROLE PUBKEY --currency CODE [--category CAT] [--credit-limit MINOR] --key FILE...",
     "Grants a role in a currency (consortium_admin: without --currency). Who must sign\n"
     "depends on the role: see docs/LEDGER.md.",
     fill_grant},
    {"revoke", LEDGER_OP_REVOKE, 0, 2, false, K | CUR, K,
     "ROLE PUBKEY --currency CODE --key FILE...",
     "Revokes a role; signed like the grant of that role.", fill_role},
    {"authorise", LEDGER_OP_ACCOUNT, LEDGER_ACCOUNT_AUTHORISE, 1, false, K | CUR, K | CUR,
     "PUBKEY --currency CODE --key FILE...",
     "Opens PUBKEY's main account authorised. Signed by one issuer admin.", NULL},
    {"freeze", LEDGER_OP_ACCOUNT, LEDGER_ACCOUNT_FREEZE, 1, false, K | CUR, K | CUR,
     "PUBKEY --currency CODE --key FILE...",
     "Freezes PUBKEY's account (freezable currencies). Signed by one issuer admin.", NULL},
    {"unfreeze", LEDGER_OP_ACCOUNT, LEDGER_ACCOUNT_UNFREEZE, 1, false, K | CUR, K | CUR,
     "PUBKEY --currency CODE --key FILE...",
     "Unfreezes PUBKEY's account. Signed by one issuer admin.", NULL},
    {"close-account", LEDGER_OP_ACCOUNT, LEDGER_ACCOUNT_CLOSE, 0, true, K | CUR, K | CUR,
     "--currency CODE --key FILE", "Closes the key's own main account, which must be empty.", NULL},
    {"issue", LEDGER_OP_ISSUE, 0, 0, false, K | CUR | AMT | B(O_REF) | B(O_TO),
     K | CUR | AMT | B(O_REF), "--currency CODE --amount MINOR --ref TEXT [--to PUBKEY] --key FILE...",
     "Issues new money into the currency's treasury against a reserve attestation\n"
     "(--ref); with --to the treasury pays it on to PUBKEY in the same transaction.\n"
     "Signed by the issuer quorum.",
     fill_issue},
    {"retire", LEDGER_OP_RETIRE, 0, 0, false, K | CUR | AMT | B(O_REF), K | CUR | AMT | B(O_REF),
     "--currency CODE --amount MINOR --ref TEXT --key FILE...",
     "Takes money out of the treasury and out of circulation. Signed by the issuer quorum.", NULL},
    {"programme-create", LEDGER_OP_PROGRAMME, 0, 0, false,
     K | CUR | B(O_ID) | B(O_BUDGET) | B(O_START) | B(O_START_MS) | B(O_END_MS) | B(O_DAYS) |
         B(O_CAP) | B(O_PERIOD_MS) | B(O_PERIOD_DAYS) | B(O_CATEGORY) | B(O_P2P) | B(O_GRACE_MS) |
         B(O_GRACE_DAYS),
     K | CUR | B(O_ID) | B(O_BUDGET),
     "--currency CODE --id ID --budget MINOR (--start now | --start-ms T)\n"
     "         (--end-ms T | --days D) [--cap MINOR] [--period-ms N | --period-days D]\n"
     "         [--category CAT...] [--p2p] [--grace-ms N | --grace-days D] --key FILE",
     "Creates an aid programme. Signed by a programme manager. Times are block times in\n"
     "ms since the epoch.",
     fill_programme},
    {"fund", LEDGER_OP_FUND, 0, 0, false, K | CUR | PROG | AMT, K | CUR | PROG | AMT,
     "--currency CODE --programme ID --amount MINOR --key FILE...",
     "Moves money from the treasury to the programme's account, within its budget.\n"
     "Signed by the issuer quorum.",
     NULL},
    {"disburse", LEDGER_OP_DISBURSE, 0, 0, false, K | CUR | PROG | B(O_BATCH) | B(O_TO) | B(O_FILE),
     K | CUR | PROG | B(O_BATCH),
     "--currency CODE --programme ID --batch ID\n"
     "         (--to PUBKEY:AMOUNT... | --file FILE) --key FILE",
     "Pays a batch of beneficiaries (at most 128) from the programme's account, all or\n"
     "nothing; a batch id is never paid twice. Signed by a programme manager.",
     fill_disburse},
    {"transfer", LEDGER_OP_TRANSFER, 0, 0, true,
     K | CUR | B(O_TO) | AMT | PROG | B(O_MEMO) | B(O_FROM), K | CUR | B(O_TO) | AMT,
     "--currency CODE --to PUBKEY|treasury --amount MINOR [--programme ID]\n"
     "         [--from treasury] [--memo TEXT] --key FILE...",
     "Pays from the key's main account, or with --programme from its aid from that\n"
     "programme, to PUBKEY's main account or to the treasury. With --from treasury the\n"
     "treasury pays, signed by the issuer quorum.",
     fill_transfer},
    {"redeem", LEDGER_OP_REDEEM, 0, 0, true, K | CUR | AMT | B(O_PAYOUT_REF),
     K | CUR | AMT | B(O_PAYOUT_REF), "--currency CODE --amount MINOR --payout-ref TEXT --key FILE",
     "Turns the key's local money into euros paid off-ledger, less the redemption fee.", NULL},
    {"reverse", LEDGER_OP_REVERSE, 0, 0, false, K | CUR | B(O_TX) | B(O_OP) | AMT | B(O_REF),
     K | CUR | B(O_TX) | AMT,
     "--currency CODE --tx TXID [--op N] --amount MINOR [--ref TEXT] --key FILE...",
     "Sends (part of) a transfer back to its payer. Signed by the original payee or the\n"
     "issuer quorum.",
     NULL},
    {"clawback", LEDGER_OP_CLAWBACK, 0, 0, false, K | CUR | B(O_FROM) | PROG | AMT | B(O_CASE),
     K | CUR | B(O_FROM) | AMT | B(O_CASE),
     "--currency CODE --from PUBKEY [--programme ID] --amount MINOR --case REF\n"
     "         --key issuer.json... --key auditor.json",
     "Takes money back into the treasury (currencies with the clawback flag). Signed by\n"
     "the issuer quorum and an auditor.",
     NULL},
    {"expire", LEDGER_OP_EXPIRE, 0, 0, false, K | CUR | PROG, K | CUR | PROG,
     "--currency CODE --programme ID --key FILE",
     "Returns an ended programme's unspent aid to the treasury, after its grace period.\n"
     "Signed by a programme manager or an issuer admin.",
     NULL},
    {"rate-set", LEDGER_OP_RATE, 0, 0, false,
     K | CUR | B(O_QUOTE) | B(O_RATE) | B(O_START_MS) | B(O_END_MS) | B(O_DAYS),
     K | CUR | B(O_QUOTE) | B(O_RATE),
     "--currency BASE --quote CODE|EUR --rate NUM/DEN [--start-ms T]\n"
     "         (--end-ms T | --days D) --key FILE...",
     "Sets the exchange rate of a pair: a minor unit of BASE is NUM/DEN minor units of\n"
     "the quote currency (euro cents with --quote EUR), in force for block times from\n"
     "--start-ms (default 0) until the end. A new rate for the pair replaces the old\n"
     "one; the other direction is a rate of its own. Signed by the consortium quorum.",
     fill_rate},
    {"exchange", LEDGER_OP_EXCHANGE, 0, 0, true,
     K | CUR | B(O_TO_CURRENCY) | B(O_TO) | AMT | B(O_DELIVER) | B(O_SEND_MAX) | B(O_MEMO),
     K | CUR | B(O_TO_CURRENCY) | B(O_TO) | AMT,
     "--currency CODE --to-currency CODE --to PUBKEY --amount MINOR\n"
     "         [--deliver [--send-max MINOR]] [--memo TEXT] --key FILE",
     "Pays from the key's main account in one currency to PUBKEY's main account in\n"
     "another, through the two currencies' clearing accounts at the pair's rate. By\n"
     "default --amount is what the key pays and what arrives is rounded down; with\n"
     "--deliver it is what arrives and what is paid is rounded up. Payer and payee are\n"
     "merchants, SSE entities or clearing agents. Signed by the payer.",
     fill_exchange},
    {"clearing-fund", LEDGER_OP_CLEARING, LEDGER_CLEARING_FUND, 0, false, K | CUR | AMT,
     K | CUR | AMT, "--currency CODE --amount MINOR --key FILE...",
     "Moves money from the treasury to the currency's clearing account, the float that\n"
     "pays out exchanges into the currency. Signed by the issuer quorum.",
     NULL},
    {"clearing-return", LEDGER_OP_CLEARING, LEDGER_CLEARING_RETURN, 0, false, K | CUR | AMT,
     K | CUR | AMT, "--currency CODE --amount MINOR --key FILE...",
     "Moves money from the currency's clearing account back to the treasury. Signed by\n"
     "the issuer quorum.",
     NULL},
    {"cycle-close", LEDGER_OP_CLOSE, 0, 0, false, K | B(O_CYCLE) | B(O_NETTING), K | B(O_CYCLE),
     "--cycle N [--netting bilateral|multilateral] --key FILE...",
     "Closes the open settlement cycle N, which fixes its positions and the payments\n"
     "that settle them, and opens cycle N + 1. Bilateral netting nets each pair of\n"
     "currencies; multilateral netting settles each currency's net position once.\n"
     "Signed by the consortium quorum.",
     fill_close},
    {"settle", LEDGER_OP_SETTLE, 0, 0, false,
     K | B(O_CYCLE) | B(O_DEBTOR) | B(O_CREDITOR) | AMT | B(O_REF),
     K | B(O_CYCLE) | B(O_DEBTOR) | B(O_CREDITOR) | AMT | B(O_REF),
     "--cycle N --debtor CODE --creditor CODE --amount MINOR --ref TEXT --key FILE",
     "Records that the debtor currency's city paid the creditor's city one obligation\n"
     "of the closed cycle N off the ledger (see `koinon cycle N`). --amount is in euro\n"
     "cents and must be the obligation's; --ref is the payment's reference. Signed by\n"
     "one issuer admin of the creditor currency.",
     NULL},
};

#define N_TX_COMMANDS (sizeof tx_commands / sizeof tx_commands[0])

static const tx_command *find_tx_command(const char *name)
{
    for (size_t i = 0; i < N_TX_COMMANDS; i++)
        if (strcmp(tx_commands[i].name, name) == 0) return &tx_commands[i];
    return NULL;
}

static int show_help(const tx_args *a)
{
    const tx_command *cmd = a->cmd;
    fputs(a->usage, stdout);
    printf("\n%s\n\nOptions:\n", cmd->intro);
    for (int id = 0; id < O_COUNT; id++)
        if ((cmd->opts | COMMON_OPTS) & B(id)) printf("  %s\n", opt_defs[id].help);
    fputs("\nAmounts are integers in minor units. Exit status: 0 submitted or committed ok,\n"
          "1 error, 2 usage, 3 committed but rejected by the ledger rules.\n",
          stdout);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- parsing */

static void build_long_opts(struct option *out)
{
    for (int id = 0; id < O_COUNT; id++) {
        out[id].name = opt_defs[id].name;
        out[id].has_arg = opt_defs[id].takes_value ? required_argument : no_argument;
        out[id].flag = NULL;
        out[id].val = OPT_VAL_BASE + id;
    }
    memset(&out[O_COUNT], 0, sizeof out[O_COUNT]);
}

static int take_option(tx_args *a, int id, const char *value)
{
    const opt_def *d = &opt_defs[id];
    if (!((a->cmd->opts | COMMON_OPTS) & B(id))) {
        return cli_usage_error(a->usage, "unknown option '--%s' for %s", d->name, a->cmd->name);
    }
    if (d->repeat_max && a->count[id] == d->repeat_max)
        return cli_usage_error(a->usage, "--%s is given at most %u times", d->name, d->repeat_max);
    if (!d->repeat_max && a->count[id] == 1)
        return cli_usage_error(a->usage, "--%s is given twice", d->name);
    if (a->n_given == GIVEN_MAX) return cli_usage_error(a->usage, "too many options");
    a->count[id]++;
    a->given[a->n_given++] = (given_opt){(uint8_t)id, value};
    return PARSED;
}

/* The common options into their typed fields. */
static int parse_common(tx_args *a)
{
    const char *node = val(a, O_NODE), *chain = val(a, O_CHAIN_ID);
    if (node && cli_parse_node(node, a->node))
        return cli_usage_error(a->usage, "--node must be an http:// or https:// URL");
    if (chain && (!chain[0] || strlen(chain) > KN_CHAIN_ID_MAX))
        return cli_usage_error(a->usage, "--chain-id must be 1 to %d bytes", KN_CHAIN_ID_MAX);
    a->chain_id = chain;
    a->nonce_given = has(a, O_NONCE);
    if (a->nonce_given && cli_parse_u64(val(a, O_NONCE), 0, UINT64_MAX, &a->nonce))
        return cli_usage_error(a->usage, "--nonce must be an unsigned integer");
    if (has(a, O_EXPIRY_BLOCKS) &&
        cli_parse_u64(val(a, O_EXPIRY_BLOCKS), 1, EXPIRY_BLOCKS_MAX, &a->expiry_blocks))
        return cli_usage_error(a->usage, "--expiry-blocks must be 1 to %d", EXPIRY_BLOCKS_MAX);
    a->wait = has(a, O_WAIT);
    a->json = has(a, O_JSON);
    a->out = val(a, O_OUT);
    if (a->out && !a->out[0]) return cli_usage_error(a->usage, "--out needs a file name");
    if (a->out && a->wait) return cli_usage_error(a->usage, "--out sends nothing: no --wait");
    return PARSED;
}

static int parse_args(int argc, char **argv, tx_args *a)
{
    static struct option long_opts[O_COUNT + 1];
    build_long_opts(long_opts);
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        if (c == 'h' || c == OPT_VAL_BASE + O_HELP) return show_help(a);
        if (c < OPT_VAL_BASE) return cli_bad_option(c, argv, a->usage);
        if ((rc = take_option(a, c - OPT_VAL_BASE, optarg)) != PARSED) return rc;
    }
    for (; optind < argc; optind++) {
        if (a->n_pos == a->cmd->n_pos)
            return cli_usage_error(a->usage, "unexpected argument '%s'", argv[optind]);
        a->pos[a->n_pos++] = argv[optind];
    }
    if (a->n_pos < a->cmd->n_pos) return cli_usage_error(a->usage, "an argument is missing");
    for (int id = 0; id < O_COUNT; id++)
        if ((a->cmd->required & B(id)) && !has(a, id))
            return cli_usage_error(a->usage, "--%s is required", opt_defs[id].name);
    return parse_common(a);
}

/* ---------------------------------------------------------------- signing */

/* Where the chain stands, as the node's status tells it. */
typedef struct chain_tip {
    char chain_id[KN_CHAIN_ID_MAX + 1]; /* --chain-id when given */
    uint64_t height;
    uint64_t time_ms; /* of the last block */
} chain_tip;

static int fetch_chain(const tx_args *a, chain_tip *tip)
{
    cli_reply r;
    if (cli_get_json(a->node, "/v1/status", false, &r)) return CLI_EXIT_FAIL;
    int64_t h, time_ms;
    const char *id = a->chain_id ? a->chain_id : cli_jstr(r.json, "chain_id", "");
    int rc = 0;
    if (!cli_jint(r.json, "height", &h) || h < 0)
        rc = cli_fail(KN_EDECODE, "node status at %s has no height", a->node);
    else if (!cli_jint(r.json, "last_block_time_ms", &time_ms) || time_ms < 0)
        rc = cli_fail(KN_EDECODE, "node status at %s has no last block time", a->node);
    else if (!id[0] || strlen(id) > KN_CHAIN_ID_MAX)
        rc = cli_fail(KN_EDECODE, "node status at %s has no usable chain_id", a->node);
    else {
        snprintf(tip->chain_id, sizeof tip->chain_id, "%s", id);
        tip->height = (uint64_t)h;
        tip->time_ms = (uint64_t)time_ms;
    }
    cli_reply_free(&r);
    return rc;
}

/* rate-set --days D: the window ends D days after the last block's time. */
static int end_after_block(const tx_args *a, const chain_tip *tip, ledger_op *op)
{
    op->end_ms += tip->time_ms; /* both far below 2^63: no overflow */
    if (op->end_ms <= op->start_ms)
        return cli_usage_error(a->usage, "--days D ends before --start-ms");
    return 0;
}

/* Loads every --key into keys (the caller wipes them). */
static int load_keys(const tx_args *a, kn_keypair *keys, uint32_t *n)
{
    for (uint32_t i = 0; i < a->n_given; i++) {
        if (a->given[i].id != O_KEY) continue;
        if (cli_load_key(a->given[i].value, &keys[*n])) return CLI_EXIT_FAIL;
        (*n)++;
    }
    return 0;
}

/* Chain id, nonce and expiry, then one signature per key, then the bytes. */
static int sign_tx(const tx_args *a, const chain_tip *tip, const kn_keypair *keys, uint32_t n_keys,
                   ledger_tx *tx, kn_buf *out)
{
    memcpy(tx->chain_id, tip->chain_id, sizeof tip->chain_id);
    tx->nonce = a->nonce;
    if (!a->nonce_given) randombytes_buf(&tx->nonce, sizeof tx->nonce);
    tx->expiry_height = tip->height + a->expiry_blocks;
    for (uint32_t i = 0; i < n_keys; i++) {
        int rc = ledger_tx_sign(tx, &keys[i]);
        if (rc) return cli_fail(rc, "cannot sign the transaction");
    }
    ledger_tx_encode(tx, out);
    if (out->len > LEDGER_TX_BYTES_MAX)
        return cli_fail(KN_ETOOBIG, "transaction is %zu bytes, over the %d byte limit", out->len,
                        LEDGER_TX_BYTES_MAX);
    return 0;
}

/* Builds and signs the transaction: options first (usage errors need no key
 * file), then the keys, then what depends on the signer and on the chain. */
static int build_tx(tx_args *a, ledger_tx *tx, kn_buf *body)
{
    memset(tx, 0, sizeof *tx);
    tx->n_ops = 1;
    fill_generic(a, tx);
    if (a->cmd->fill && !a->status) a->cmd->fill(a, tx);
    if (a->status) return a->status;

    static kn_keypair keys[LEDGER_SIGS_MAX];
    uint32_t n_keys = 0;
    int rc = load_keys(a, keys, &n_keys);
    ledger_op *op = &tx->ops[0];
    if (!rc && a->cmd->signer_is_from && !treasury_pays(a))
        memcpy(op->from, keys[0].pk, KN_PK_BYTES);
    if (!rc && op->kind == LEDGER_OP_TRANSFER && memcmp(op->from, op->to, KN_PK_BYTES) == 0)
        rc = cli_fail(KN_ESELFPAY, "--to is the key's own account");
    chain_tip tip;
    if (!rc) rc = fetch_chain(a, &tip);
    if (!rc && a->end_from_block) rc = end_after_block(a, &tip, op);
    if (!rc) rc = sign_tx(a, &tip, keys, n_keys, tx, body);
    for (uint32_t i = 0; i < n_keys; i++)
        kn_keypair_wipe(&keys[i]);
    return rc;
}

/* ---------------------------------------------------------------- submission */

static int report_committed(const tx_args *a, const json_t *reply, const char *id)
{
    int64_t height = -1;
    (void)cli_jint(reply, "height", &height);
    const json_t *result = json_object_get(reply, "result");
    const char *code = cli_jstr(result, "code", "?");
    bool ok = strcmp(code, "ok") == 0;
    if (!a->json && ok) printf("committed %s at height %" PRId64 ": ok\n", id, height);
    if (!a->json && !ok) {
        const char *message = cli_jstr(result, "message", kn_strerror(kn_errcode(code)));
        printf("committed %s at height %" PRId64 ": rejected: %s (%s)\n", id, height, message,
               code);
    }
    return ok ? CLI_EXIT_OK : CLI_EXIT_REJECTED;
}

static int report_reply(const tx_args *a, const cli_reply *r, const char *local_id)
{
    if (a->json) cli_print_body(r);
    if (r->status < 200 || r->status >= 300 || !json_is_object(r->json)) return cli_reply_error(r);
    const char *id = cli_jstr(r->json, "id", local_id);
    /* Both sides hash the same canonical body; a difference is a bug worth seeing. */
    if (strcmp(id, local_id) != 0)
        fprintf(stderr, "koinon: warning: node reports id %s for transaction %s\n", id, local_id);
    const char *status = cli_jstr(r->json, "status", "");
    if (strcmp(status, "committed") == 0) return report_committed(a, r->json, id);
    if (a->wait)
        return cli_fail(KN_ETIMEOUT, "transaction %s is %s, not committed yet", id,
                        status[0] ? status : "of unknown status");
    if (!a->json) printf("submitted %s\n", id);
    return CLI_EXIT_OK;
}

/* The salt is what lets the payer prove the memo later: it is printed before
 * the transaction leaves, so that it is not lost whatever the node answers.
 * With --json, stdout is the node's reply alone and this goes to stderr. */
static void print_memo(const tx_args *a, const ledger_tx *tx)
{
    char salt[2 * MEMO_SALT_BYTES + 1], commitment[2 * KN_HASH_BYTES + 1];
    kn_hex(salt, a->memo_salt, MEMO_SALT_BYTES);
    kn_hex(commitment, tx->ops[0].link, KN_HASH_BYTES);
    FILE *f = a->json ? stderr : stdout;
    fprintf(f, "memo salt %s\nmemo commitment %s\n", salt, commitment);
    fflush(f);
}

static int submit(const tx_args *a, const ledger_tx *tx, const kn_buf *body)
{
    char id[2 * KN_HASH_BYTES + 1];
    kn_hex(id, tx->id, KN_HASH_BYTES);
    if (a->has_memo) print_memo(a, tx);
    cli_reply r;
    const char *path = a->wait ? "/v1/txs?wait=commit" : "/v1/txs";
    long timeout_ms = a->wait ? CLI_WAIT_TIMEOUT_MS : CLI_REQUEST_TIMEOUT_MS;
    int err = cli_http(a->node, path, "application/msgpack", body->data, body->len, timeout_ms, &r);
    if (err == KN_ETIMEOUT) /* the node may have taken it before the answer was lost */
        fprintf(stderr, "koinon: transaction %s may still commit; see `koinon tx %s`\n", id, id);
    if (err) return CLI_EXIT_FAIL;
    int rc = report_reply(a, &r, id);
    cli_reply_free(&r);
    return rc;
}

/* --out: the signed bytes go to a file (e.g. to be sent later, or many at
 * once to POST /v1/txs/batch); the id is printed. */
static int write_out(const tx_args *a, const ledger_tx *tx, const kn_buf *body)
{
    char id[2 * KN_HASH_BYTES + 1];
    kn_hex(id, tx->id, KN_HASH_BYTES);
    if (a->has_memo) print_memo(a, tx);
    FILE *f = fopen(a->out, "wb");
    bool ok = f && fwrite(body->data, 1, body->len, f) == body->len;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) return cli_fail(KN_EIO, "cannot write %s", a->out);
    if (a->json) printf("{\"id\":\"%s\",\"bytes\":%zu}\n", id, body->len);
    else printf("wrote %s (%zu bytes) to %s\n", id, body->len, a->out);
    return CLI_EXIT_OK;
}

int cmd_transaction(int argc, char **argv)
{
    static tx_args a; /* the option list is large; one command per process */
    memset(&a, 0, sizeof a);
    a.cmd = find_tx_command(argv[0]);
    KN_REQUIRE(a.cmd != NULL);
    a.expiry_blocks = EXPIRY_BLOCKS_DEFAULT;
    snprintf(a.node, sizeof a.node, "%s", CLI_NODE_DEFAULT);
    snprintf(a.usage, sizeof a.usage,
             "usage: koinon %s %s\n         [--node URL] [--wait] [--nonce N] [--expiry-blocks N] "
             "[--chain-id ID] [--json] [--out FILE]\n",
             a.cmd->name, a.cmd->synopsis);
    int rc = parse_args(argc, argv, &a);
    if (rc != PARSED) return rc;

    static ledger_tx tx; /* about 9 KB of fixed arrays */
    kn_buf body = {0};
    rc = build_tx(&a, &tx, &body);
    if (!rc) rc = a.out ? write_out(&a, &tx, &body) : submit(&a, &tx, &body);
    kn_buf_free(&body);
    return rc;
}
