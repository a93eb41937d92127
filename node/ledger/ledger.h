/*
 * ledger: transactions, blocks and the money rules, as pure deterministic
 * functions over a store transaction.
 *
 * Owns: the canonical transaction and block formats (msgpack), transaction ids,
 * the money rules of municipal currencies (roles, currencies, accounts, aid
 * programmes, spending routes, redemption, corrections, demurrage and mutual
 * credit), the record of validators' equivocation (evidence, checked against
 * the validator set the genesis keeps in the state), the ledger state layout
 * in STORE_STATE, block execution into the
 * store (blocks, certificates, transaction results, chain metadata) and the
 * state hash that all validators must agree on. docs/LEDGER.md states every
 * rule with its authorisation and its error.
 *
 * Invariants: integers only; in every currency the balances of all accounts,
 * the issuing account's negative balance included, sum to zero; no account is
 * below its floor; a programme never disburses beyond its budget nor a
 * beneficiary beyond its cap; reversals never exceed their original; a
 * transaction id is committed at most once. Rule failures return an error code
 * and leave the state as it was; broken invariants abort.
 *
 * Formats (canonical msgpack, see common.h):
 *   tx       [1, chain_id str, nonce uint, expiry_height uint, [op...], [[pk bin32, sig bin64]...]]
 *   body     [1, chain_id, nonce, expiry_height, [op...]]        (what is signed and hashed)
 *   header   [1, chain_id, height, time_ms, prev_id bin32, state_hash bin32,
 *             txs_hash bin32, last_cert_hash bin32, proposer uint, n_txs uint]
 *   block    [header, [tx...], last_cert | nil]
 * Operations, each an array led by its kind (see enum ledger_op_kind):
 *   issue      [1, code, amount, reserve_ref]
 *   transfer   [2, code, from bin32, programme, to bin32, amount, memo bin(0|32)]
 *   currency   [3, code, name, city, scale, max_supply, flags, [issuer_admin bin32...],
 *               issuer_threshold, fee_bps, early_fee_bps, early_days,
 *               demurrage_bps, demurrage_period_ms]
 *   grant      [4, code, role, subject bin32, category, credit_limit]
 *   revoke     [5, code, role, subject bin32]
 *   account    [6, code, action, subject bin32]
 *   retire     [7, code, amount, ref]
 *   programme  [8, code, id, budget, start_ms, end_ms, cap, period_ms,
 *               [category...], p2p bool, grace_ms]
 *   fund       [9, code, programme, amount]
 *   disburse   [10, code, programme, batch_id, [[beneficiary bin32, amount]...]]
 *   redeem     [11, code, from bin32, amount, payout_ref]
 *   reverse    [12, code, original tx id bin32, op index, amount, ref]
 *   clawback   [13, code, subject bin32, programme, amount, case_ref]
 *   expire     [14, code, programme]
 *   rate       [15, base code, quote code, num, den, start_ms, end_ms]
 *   exchange   [16, code, from bin32, to code, to bin32, mode, amount, send_max,
 *               memo bin(0|32)]
 *   close      [17, "", cycle, netting]
 *   settle     [18, debtor code, creditor code, cycle, amount, ref]
 *   clearing   [19, code, direction, amount]
 *   evidence   [20, "", vote, vote]   (each vote as on the wire, see consensus.h:
 *               [type, height, round, block_id | nil, validator, sig bin64])
 * Strings are UTF-8 without NUL; `programme` is "" for a key's main account.
 * An evidence operation stands alone in a transaction without signatures: the
 * two votes authenticate it (ledger_evidence_tx builds the canonical one).
 * The tx id is kn_hash(KN_DOMAIN_TX, body); signatures are kn_sign(KN_DOMAIN_TX,
 * chain_id, body) and are listed in strictly increasing public key order. The
 * block id is kn_hash(KN_DOMAIN_BLOCK, header bytes); txs_hash is the hash of the
 * concatenated tx ids; last_cert_hash is the hash of the certificate bytes the
 * block carries for the previous block (zeros at height 1): any valid
 * certificate is accepted, since each validator gathers its own quorum of
 * precommits; state_hash is the state after the previous block.
 *
 * Usage: a client fills a ledger_tx, signs it with every key its operations
 * need (ledger_tx_sign) and encodes it; a node decodes it, verifies the
 * signatures off the loop (ledger_tx_verify), prechecks it against committed
 * state (ledger_tx_apply in a scratch transaction), and the decided block
 * applies it for good (ledger_block_execute).
 */
#ifndef KOINON_LEDGER_H
#define KOINON_LEDGER_H

#include "common/common.h"
#include "consensus/consensus.h"
#include "store/store.h"

#define LEDGER_CODE_MAX 12      /* currency code length */
#define LEDGER_NAME_MAX 63      /* currency and city names */
#define LEDGER_REF_MAX 64       /* reserve, payout, case and reversal references */
#define LEDGER_ID_MAX 16        /* programme ids */
#define LEDGER_BATCH_MAX 32     /* disbursement batch ids */
#define LEDGER_CATEGORY_MAX 16  /* merchant categories */
#define LEDGER_CATEGORIES_MAX 8 /* allowed categories per programme */
#define LEDGER_OPS_MAX 16       /* operations per transaction */
#define LEDGER_SIGS_MAX 8       /* signatures per transaction */
#define LEDGER_PAYEES_MAX 128   /* beneficiaries per disbursement batch */
#define LEDGER_TX_BYTES_MAX 8192
#define LEDGER_CURRENCIES_MAX 64
#define LEDGER_ADMINS_MAX 16
#define LEDGER_BPS 10000 /* basis points in one */
#define LEDGER_DEMURRAGE_PERIOD_MIN_MS 60000
#define LEDGER_DAY_MS 86400000ull

enum ledger_op_kind {
    LEDGER_OP_ISSUE = 1,
    LEDGER_OP_TRANSFER = 2,
    LEDGER_OP_CURRENCY = 3,
    LEDGER_OP_GRANT = 4,
    LEDGER_OP_REVOKE = 5,
    LEDGER_OP_ACCOUNT = 6,
    LEDGER_OP_RETIRE = 7,
    LEDGER_OP_PROGRAMME = 8,
    LEDGER_OP_FUND = 9,
    LEDGER_OP_DISBURSE = 10,
    LEDGER_OP_REDEEM = 11,
    LEDGER_OP_REVERSE = 12,
    LEDGER_OP_CLAWBACK = 13,
    LEDGER_OP_EXPIRE = 14,
    LEDGER_OP_RATE = 15,
    LEDGER_OP_EXCHANGE = 16,
    LEDGER_OP_CLOSE = 17,
    LEDGER_OP_SETTLE = 18,
    LEDGER_OP_CLEARING = 19,
    LEDGER_OP_EVIDENCE = 20,
    LEDGER_OP_KIND_MAX = 20
};

/* Exchange between currencies (docs/LEDGER.md, "Between cities"). */
#define LEDGER_UNIT "EUR"             /* the unit of account: positions in euro cents */
#define LEDGER_RATE_TERM_MAX 1000000000000ull /* a rate's numerator and denominator */

enum ledger_exchange_mode {
    LEDGER_EXCHANGE_SEND = 1,    /* the payer pays exactly amount; what arrives rounds down */
    LEDGER_EXCHANGE_DELIVER = 2, /* exactly amount arrives; what is paid rounds up */
};

enum ledger_netting {
    LEDGER_NETTING_BILATERAL = 1,    /* one payment per pair of currencies, netted */
    LEDGER_NETTING_MULTILATERAL = 2, /* each position settled once: circles cancel */
};

enum ledger_clearing_direction {
    LEDGER_CLEARING_FUND = 1,   /* treasury to the clearing account */
    LEDGER_CLEARING_RETURN = 2, /* clearing account back to the treasury */
};

/* Roles, granted per currency (consortium admin: for the whole consortium,
 * with the code ""). Who may grant which is in docs/LEDGER.md. */
enum ledger_role {
    LEDGER_ROLE_CONSORTIUM_ADMIN = 1,
    LEDGER_ROLE_ISSUER_ADMIN = 2,
    LEDGER_ROLE_PROGRAMME_MANAGER = 3,
    LEDGER_ROLE_AUDITOR = 4,
    LEDGER_ROLE_MERCHANT = 5,
    LEDGER_ROLE_SSE = 6,
    LEDGER_ROLE_BENEFICIARY = 7,
    LEDGER_ROLE_CLEARING = 8,
    LEDGER_ROLE_MAX = 8
};

/* Currency flags, fixed at creation. */
enum ledger_currency_flag {
    LEDGER_CUR_AUTH_REQUIRED = 1 << 0, /* accounts must be authorised to hold it */
    LEDGER_CUR_FREEZABLE = 1 << 1,
    LEDGER_CUR_CLAWBACK = 1 << 2,
    LEDGER_CUR_P2P = 1 << 3,           /* person-to-person payments */
    LEDGER_CUR_HOLDER_REDEEM = 1 << 4, /* any holder may redeem, not only merchants and SSE */
    LEDGER_CUR_DEMURRAGE = 1 << 5,
    LEDGER_CUR_MUTUAL_CREDIT = 1 << 6, /* SSE accounts may go negative within a granted limit */
    LEDGER_CUR_FLAGS_ALL = (1 << 7) - 1
};

enum ledger_account_action {
    LEDGER_ACCOUNT_AUTHORISE = 1,
    LEDGER_ACCOUNT_FREEZE = 2,
    LEDGER_ACCOUNT_UNFREEZE = 3,
    LEDGER_ACCOUNT_CLOSE = 4,
    LEDGER_ACCOUNT_ACTION_MAX = 4
};

typedef struct ledger_currency {
    char code[LEDGER_CODE_MAX + 1];
    char name[LEDGER_NAME_MAX + 1];
    char city[LEDGER_NAME_MAX + 1];
    uint8_t scale; /* decimal places of a minor unit, 0..18 */
    uint64_t max_supply;
    uint32_t flags; /* enum ledger_currency_flag */
    /* The first issuer admins (granted at creation; later ones by grant) and
     * how many of them must sign issue, retire, fund, clawback and credit. */
    uint32_t n_issuer_admins;
    uint8_t issuer_admins[LEDGER_SIGS_MAX][KN_PK_BYTES];
    uint32_t issuer_threshold;
    /* Redemption fee: fee_bps of the amount, or early_fee_bps when the account
     * last received money less than early_days ago. Rounded down. */
    uint32_t fee_bps, early_fee_bps, early_days;
    /* Demurrage (with LEDGER_CUR_DEMURRAGE): demurrage_bps of the balance per
     * whole period held, charged when the account is next used. */
    uint32_t demurrage_bps;
    uint64_t demurrage_period_ms;
} ledger_currency;

typedef struct ledger_programme {
    char currency[LEDGER_CODE_MAX + 1];
    char id[LEDGER_ID_MAX + 1];
    uint8_t manager[KN_PK_BYTES]; /* the programme manager who created it */
    uint64_t budget;
    uint64_t start_ms, end_ms; /* disbursing and spending in [start, end) */
    uint64_t cap;              /* per beneficiary per period; 0: no cap */
    uint64_t period_ms;        /* cap period from start_ms; 0: the whole programme */
    uint32_t n_categories;     /* 0: any merchant category */
    char categories[LEDGER_CATEGORIES_MAX][LEDGER_CATEGORY_MAX + 1];
    bool p2p;          /* beneficiaries may pay each other from the aid */
    uint64_t grace_ms; /* after end: then unspent aid returns to the treasury */
} ledger_programme;

typedef struct ledger_payee {
    uint8_t pk[KN_PK_BYTES];
    uint64_t amount;
} ledger_payee;

/* One operation. Which fields an operation uses is listed beside each; the
 * rest stay zero. */
typedef struct ledger_op {
    uint8_t kind;                        /* enum ledger_op_kind */
    char currency[LEDGER_CODE_MAX + 1];  /* "" for grant/revoke of consortium admins and for
                                            close; settle: the debtor's currency */
    char programme[LEDGER_ID_MAX + 1];   /* transfer (payer's), fund, disburse, clawback, expire */
    uint8_t from[KN_PK_BYTES];           /* transfer and redeem: payer; grant, revoke,
                                            account, clawback: the subject */
    uint8_t to[KN_PK_BYTES];             /* transfer: payee (all zero: the treasury) */
    uint64_t amount;                     /* minor units, > 0 where an amount is moved;
                                            grant: the SSE credit limit; settle: euro cents */
    uint32_t role;                       /* grant, revoke: enum ledger_role;
                                            account: enum ledger_account_action;
                                            reverse: the original's op index */
    char ref[LEDGER_REF_MAX + 1];        /* issue, retire, redeem, reverse, clawback:
                                            reference; grant: merchant category;
                                            disburse: batch id */
    uint8_t link[KN_HASH_BYTES];         /* transfer, exchange: memo commitment;
                                            reverse: original tx id */
    bool has_link;                       /* transfer, exchange: a memo commitment is present */
    char counter[LEDGER_CODE_MAX + 1];   /* rate: quote currency or LEDGER_UNIT; exchange:
                                            the receiver's currency; settle: the creditor's */
    uint64_t num, den;                   /* rate: a minor unit of currency is num/den of counter */
    uint64_t start_ms, end_ms;           /* rate: in force for block times in [start, end) */
    uint64_t limit;                      /* exchange: send-max in currency (0: none) */
    uint64_t cycle;                      /* close, settle: the settlement cycle */
    uint8_t mode;                        /* exchange: enum ledger_exchange_mode; close: enum
                                            ledger_netting; clearing: enum
                                            ledger_clearing_direction */
} ledger_op;

typedef struct ledger_sig {
    uint8_t pk[KN_PK_BYTES];
    uint8_t sig[KN_SIG_BYTES];
} ledger_sig;

/* A transaction. The big, rare payloads sit beside the operations: at most one
 * currency or programme definition (for its creating operation) and at most
 * one disbursement batch per transaction. */
typedef struct ledger_tx {
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t nonce;
    uint64_t expiry_height; /* last height at which it may commit */
    uint32_t n_ops;
    ledger_op ops[LEDGER_OPS_MAX];
    ledger_currency currency_def; /* the currency operation's fields */
    ledger_programme programme_def; /* the programme operation's fields */
    uint32_t n_payees;
    ledger_payee payees[LEDGER_PAYEES_MAX]; /* the disburse operation's batch */
    cons_vote evidence[2]; /* the evidence operation's two votes */
    uint32_t n_sigs;
    ledger_sig sigs[LEDGER_SIGS_MAX];
    uint8_t id[KN_HASH_BYTES]; /* set by decode and by ledger_tx_sign */
} ledger_tx;

/* Body bytes (what is signed) and full bytes. */
void ledger_tx_body(const ledger_tx *tx, kn_buf *b);
void ledger_tx_encode(const ledger_tx *tx, kn_buf *b);
/* Decodes exactly one transaction filling all of [p, p+n): KN_EDECODE,
 * KN_ENONCANON, KN_ETOOBIG (over LEDGER_TX_BYTES_MAX or a count limit),
 * KN_ENOOPS, KN_EUNKNOWNOP, KN_EZEROAMOUNT, KN_ESELFPAY, KN_EOVERFLOW (an
 * amount beyond int64), KN_EINVAL (a field
 * out of its range, two definitions or two batches in one transaction, an
 * expire that is not alone). Sets tx->id. */
KN_MUST int ledger_tx_decode(const uint8_t *p, size_t n, ledger_tx *tx);
/* Adds kp's signature (keeping the order) and sets tx->id. KN_ETOOBIG when full. */
KN_MUST int ledger_tx_sign(ledger_tx *tx, const kn_keypair *kp);
/* Stateless checks: chain id matches (KN_EWRONGCHAIN), there is at least one
 * signature (KN_EWRONGSIGNER) and every signature verifies (KN_EBADSIG). Who
 * had to sign is a state rule (roles), checked by ledger_tx_apply. The
 * expensive part: run off the loop. An evidence transaction has no signature
 * (its votes are checked by the rule, against the validator set in the state). */
KN_MUST int ledger_tx_verify(const ledger_tx *tx, const char *chain_id);

/* True when pk is among the transaction's signers. */
bool ledger_tx_signed_by(const ledger_tx *tx, const uint8_t pk[KN_PK_BYTES]);

/* Names for the API and the CLI ("merchant", "issuer_admin", "beneficiary",
 * "authorise", "transfer", ...), and back: 0 for an unknown name. */
const char *ledger_role_name(uint32_t role);
uint32_t ledger_role_parse(const char *name);
const char *ledger_op_name(uint32_t kind);
const char *ledger_action_name(uint32_t action);
uint32_t ledger_action_parse(const char *name);
const char *ledger_flag_name(uint32_t flag); /* one bit */
uint32_t ledger_flag_parse(const char *name);

/* ---------------------------------------------------------------- genesis */

typedef struct ledger_genesis {
    char chain_id[KN_CHAIN_ID_MAX + 1];
    uint64_t time_ms;
    uint32_t n_currencies;
    ledger_currency currencies[LEDGER_CURRENCIES_MAX];
    uint32_t n_admins; /* the consortium admins */
    uint8_t admins[LEDGER_ADMINS_MAX][KN_PK_BYTES];
    uint32_t admin_threshold; /* consortium admins that must sign; 0 means a majority */
    /* The validator set, kept in the state so that the evidence rule can check
     * votes by validator index. 0 validators: no evidence can be recorded. */
    uint32_t n_validators;
    cons_validator validators[CONS_VALIDATORS_MAX];
} ledger_genesis;

/* Writes the genesis state into an empty store (height 0, state hash from the
 * genesis). KN_EINVAL if the store already has a chain, or for a bad genesis
 * (a currency that its creating operation would refuse, a duplicate code, a
 * threshold above the number of admins). */
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
/* The consortium admin threshold and count. */
KN_MUST int ledger_consortium_get(store_txn *t, uint32_t *threshold, uint32_t *n_admins);
KN_MUST int ledger_currency_get(store_txn *t, const char *code, ledger_currency *out);
/* Every currency in code order. */
KN_MUST int ledger_currencies_each(store_txn *t, void (*cb)(void *ctx, const ledger_currency *c),
                                   void *ctx);

enum ledger_account_kind {
    LEDGER_ACC_ISSUING = 1,   /* the currency's; its negative balance is the supply */
    LEDGER_ACC_TREASURY = 2,  /* the currency's; issues land here */
    LEDGER_ACC_PROGRAMME = 3, /* one per aid programme; disbursements leave from it */
    LEDGER_ACC_BENEFICIARY = 4, /* a key's aid from one programme */
    LEDGER_ACC_MERCHANT = 5,
    LEDGER_ACC_SSE = 6,
    LEDGER_ACC_CLEARING = 7,
    LEDGER_ACC_FEES = 8,      /* the currency's redemption fees */
    LEDGER_ACC_DEMURRAGE = 9, /* the currency's demurrage sink */
    LEDGER_ACC_HOLDER = 10,   /* a key's own money without a business role */
    LEDGER_ACC_CLEARING_HOUSE = 11, /* the currency's: exchanges pass through it */
    LEDGER_ACC_KIND_MAX = 11
};
const char *ledger_account_kind_name(uint32_t kind);

enum ledger_account_flag {
    LEDGER_ACCF_AUTHORISED = 1 << 0,
    LEDGER_ACCF_FROZEN = 1 << 1,
    LEDGER_ACCF_CLOSED = 1 << 2
};

/* Names of the currency's own accounts, in place of a programme id. */
#define LEDGER_SUB_ISSUING "#issuing"
#define LEDGER_SUB_TREASURY "#treasury"
#define LEDGER_SUB_FEES "#fees"
#define LEDGER_SUB_DEMURRAGE "#demurrage"
#define LEDGER_SUB_CLEARING "#clearing"
#define LEDGER_SUB_MAX 17 /* the longest of a programme id and the names above */

/* An account: (currency, owner key, sub). A key's main account has sub "";
 * its aid from a programme sits in the sub-account named by the programme id.
 * The currency's own accounts have the all-zero owner and sub a programme id
 * (the programme's account) or one of the LEDGER_SUB_ names. */
typedef struct ledger_account {
    char currency[LEDGER_CODE_MAX + 1];
    uint8_t owner[KN_PK_BYTES];
    char sub[LEDGER_SUB_MAX + 1];
    uint8_t kind;  /* enum ledger_account_kind */
    uint8_t flags; /* enum ledger_account_flag */
    int64_t balance;
    int64_t floor;          /* lowest balance allowed: 0, minus a credit limit, or INT64_MIN (issuing) */
    uint64_t demurrage_ms;  /* demurrage charged up to this block time */
    uint64_t received_ms;   /* block time of the last credit */
} ledger_account;

/* One account; KN_ENOCURRENCY for an unknown code, KN_ENOACCOUNT when absent. */
KN_MUST int ledger_account_get(store_txn *t, const char *code, const uint8_t owner[KN_PK_BYTES],
                               const char *sub, ledger_account *out);
/* Main-account balance of pk: 0 when absent; KN_ENOCURRENCY for an unknown code. */
KN_MUST int ledger_balance_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                               int64_t *balance);
/* Calls cb for every account of owner (all currencies, main accounts before
 * sub-accounts of one currency). The all-zero owner lists the currencies'
 * own accounts. */
KN_MUST int ledger_accounts_each(store_txn *t, const uint8_t owner[KN_PK_BYTES],
                                 void (*cb)(void *ctx, const ledger_account *a), void *ctx);

/* Roles of a key in a currency ("" for the consortium admin role). */
typedef struct ledger_roles {
    char currency[LEDGER_CODE_MAX + 1];
    uint32_t mask;                          /* bit (1 << role) per role held */
    char category[LEDGER_CATEGORY_MAX + 1]; /* merchant category */
    uint64_t credit_limit;                  /* SSE mutual credit limit */
} ledger_roles;
/* KN_ENOTFOUND when pk holds no role in code. */
KN_MUST int ledger_roles_get(store_txn *t, const char *code, const uint8_t pk[KN_PK_BYTES],
                             ledger_roles *out);
KN_MUST int ledger_roles_each(store_txn *t, const uint8_t pk[KN_PK_BYTES],
                              void (*cb)(void *ctx, const ledger_roles *r), void *ctx);
/* Holders of one role in a currency, in key order. */
KN_MUST int ledger_role_holders_each(store_txn *t, const char *code, uint32_t role,
                                     void (*cb)(void *ctx, const uint8_t pk[KN_PK_BYTES]),
                                     void *ctx);

/* Figures of a currency, kept by the rules as they apply. */
typedef struct ledger_currency_stats {
    int64_t supply;       /* minus the issuing account's balance */
    int64_t issued;       /* ever issued */
    int64_t retired;      /* taken back out of the treasury */
    int64_t redeemed;     /* paid out in euros (amount redeemed less fees) */
    int64_t fees;         /* redemption fees collected */
    int64_t demurrage;    /* demurrage collected */
    int64_t clawed_back;
    int64_t outstanding;  /* held by keys: the supply less the currency's own accounts */
    int64_t holders[LEDGER_ACC_KIND_MAX + 1]; /* accounts with a positive balance, by kind */
} ledger_currency_stats;
KN_MUST int ledger_currency_stats_get(store_txn *t, const char *code, ledger_currency_stats *out);
/* Circulating supply: minus the issuing account's balance. */
KN_MUST int ledger_supply_get(store_txn *t, const char *code, int64_t *supply);
/* Accounts of keys (not the currency's own) with a positive balance. */
KN_MUST int ledger_holders_get(store_txn *t, const char *code, int64_t *holders);

typedef struct ledger_programme_stats {
    int64_t funded;    /* moved from the treasury to the programme account */
    int64_t disbursed; /* to beneficiaries */
    int64_t spent;     /* by beneficiaries, from the aid */
    int64_t returned;  /* back to the treasury at expiry, reversals and clawbacks */
    int64_t expired;   /* swept at expiry: unspent aid and the programme account's rest
                          (part of returned) */
    int64_t beneficiaries;
    bool has_expired;
} ledger_programme_stats;
/* KN_ENOCURRENCY, KN_ENOPROGRAMME. */
KN_MUST int ledger_programme_get(store_txn *t, const char *code, const char *id,
                                 ledger_programme *out, ledger_programme_stats *stats);
KN_MUST int ledger_programmes_each(store_txn *t, const char *code,
                                   void (*cb)(void *ctx, const ledger_programme *p), void *ctx);
/* Aid spent per merchant category ("p2p" for payments between beneficiaries). */
KN_MUST int ledger_programme_spent_each(store_txn *t, const char *code, const char *id,
                                        void (*cb)(void *ctx, const char *category,
                                                   int64_t amount),
                                        void *ctx);

/* One movement of money on one account, as the account history lists it. */
typedef struct ledger_movement {
    uint64_t height;
    uint32_t index; /* of the transaction in its block */
    uint32_t op;    /* of the operation in its transaction */
    uint8_t tx_id[KN_HASH_BYTES];
    uint8_t kind; /* enum ledger_op_kind; demurrage charges have LEDGER_MOVE_DEMURRAGE */
    char currency[LEDGER_CODE_MAX + 1];
    char sub[LEDGER_SUB_MAX + 1]; /* the account of the owner that moved */
    int64_t amount; /* positive: received; negative: paid */
    uint8_t counterparty[KN_PK_BYTES];
    char counterparty_sub[LEDGER_SUB_MAX + 1];
} ledger_movement;
#define LEDGER_MOVE_DEMURRAGE 100
#define LEDGER_MOVE_FEE 101
#define LEDGER_CURSOR_BYTES 16 /* height u64, index u32, op u16, leg u16, big-endian */
#define LEDGER_HISTORY_PAGE_MAX 500

/* Newest first: up to limit movements of owner's accounts older than cursor
 * (NULL: from the newest). *more is set when older ones remain, next is then
 * the cursor to pass for them. */
KN_MUST int ledger_history_page(store_txn *t, const uint8_t owner[KN_PK_BYTES],
                                const uint8_t *cursor, uint32_t limit,
                                void (*cb)(void *ctx, const ledger_movement *m), void *ctx,
                                bool *more, uint8_t next[LEDGER_CURSOR_BYTES]);

typedef struct ledger_tx_record {
    uint64_t height;
    uint32_t index;
    int32_t result; /* 0 or a KN_E* rule error */
} ledger_tx_record;
KN_MUST int ledger_tx_record_get(store_txn *t, const uint8_t id[KN_HASH_BYTES],
                                 ledger_tx_record *out);

/* ---------------------------------------------------------------- between cities */

/* The rate of a pair: a minor unit of base is num/den minor units of quote,
 * in force for block times in [start_ms, end_ms). quote is a currency or
 * LEDGER_UNIT. */
typedef struct ledger_rate {
    char base[LEDGER_CODE_MAX + 1];
    char quote[LEDGER_CODE_MAX + 1];
    uint64_t num, den;
    uint64_t start_ms, end_ms;
    uint64_t set_height; /* the height of the block that set it */
} ledger_rate;
/* KN_ENOTFOUND when no rate was ever set for the pair (an exchange over it is
 * refused with KN_EUNKNOWNPAIR). Rates list in key order: base code by
 * length then bytes, then quote likewise. */
KN_MUST int ledger_rate_get(store_txn *t, const char *base, const char *quote, ledger_rate *out);
KN_MUST int ledger_rates_each(store_txn *t, void (*cb)(void *ctx, const ledger_rate *r),
                              void *ctx);

/* What an exchange of amount at num/den pays and delivers, rounded in favour
 * of the clearing accounts: sending, *pay = amount and *get = floor(amount *
 * num / den); delivering, *get = amount and *pay = ceil(amount * den / num).
 * KN_ETOOSMALL when *get would be zero, KN_EOVERFLOW beyond int64. */
KN_MUST int ledger_exchange_amounts(uint64_t num, uint64_t den, uint8_t mode, uint64_t amount,
                                    uint64_t *pay, uint64_t *get);

/* A settlement cycle. Cycle 1 opens at genesis; closing cycle k opens k + 1,
 * where later exchanges count. */
typedef struct ledger_cycle {
    uint64_t number;
    bool closed, settled;
    uint64_t opened_ms;     /* block time it opened (genesis time for cycle 1) */
    uint64_t closed_ms, closed_height;
    uint8_t netting;        /* enum ledger_netting, once closed */
    int64_t exchanges;      /* exchanges counted in the cycle */
    int64_t value;          /* their total value in the unit of account */
    int64_t obligations;    /* settlement payments the netting requires, once closed */
    int64_t settled_count;  /* of those, recorded as made */
} ledger_cycle;
/* The open cycle's number. */
KN_MUST int ledger_cycle_current(store_txn *t, uint64_t *number);
/* KN_ENOCYCLE for 0 or a cycle not opened yet. */
KN_MUST int ledger_cycle_get(store_txn *t, uint64_t number, ledger_cycle *out);
/* Net position of each currency with exchanges in the cycle, in the unit of
 * account: positive is owed to the currency's city, negative owed by it. They
 * sum to zero. In key order: codes by length, then bytes. */
KN_MUST int ledger_cycle_positions_each(store_txn *t, uint64_t number,
                                        void (*cb)(void *ctx, const char *code, int64_t position),
                                        void *ctx);

/* One payment a closed cycle requires: debtor's city pays creditor's city
 * amount (unit of account) off the ledger. */
typedef struct ledger_obligation {
    char debtor[LEDGER_CODE_MAX + 1];
    char creditor[LEDGER_CODE_MAX + 1];
    int64_t amount;
    bool settled;
    char ref[LEDGER_REF_MAX + 1]; /* the settlement payment's reference, once settled */
    uint64_t settled_height;
} ledger_obligation;
/* The obligations of a closed cycle under its netting; KN_ENOCYCLE, KN_ECYCLEOPEN. */
KN_MUST int ledger_cycle_obligations_each(store_txn *t, uint64_t number,
                                          void (*cb)(void *ctx, const ledger_obligation *o),
                                          void *ctx);

/* Figures of one currency over the days [from_day, to_day) (days since
 * 1970-01-01 in block time, UTC), from the daily figures the rules keep.
 * docs/REPORTS.md explains each with a worked example. */
typedef struct ledger_report {
    char currency[LEDGER_CODE_MAX + 1];
    uint32_t from_day, to_day;
    int64_t issued, retired;
    int64_t treasury_paid;  /* the treasury paying keys */
    int64_t disbursed;      /* aid to beneficiaries */
    int64_t injected;       /* treasury_paid + disbursed: round 1 */
    int64_t spent;          /* beneficiaries and holders at merchants and SSE entities: round 2 */
    int64_t respent;        /* merchants and SSE entities paying each other: round 3 */
    int64_t other_payments; /* other payments between keys (p2p, to holders) */
    int64_t returned;       /* keys paying the treasury */
    int64_t redeemed;       /* paid out in euros, fees excluded */
    int64_t fees, demurrage, clawed_back, expired, reversed;
    int64_t exchanged_in, exchanged_out; /* through the clearing account */
    int64_t outstanding_start, outstanding_end; /* held by keys before and after the period */
    int64_t outstanding_avg; /* mean of the outstanding at the end of each day */
    int64_t lm3_bps;         /* (R1 + R2 + R3) / R1 with each round capped by the one before */
    int64_t retention_bps;   /* local payments / (local payments + redeemed + fees + exchanged out) */
    int64_t velocity_bps;    /* local payments / outstanding_avg */
} ledger_report;
/* KN_ENOCURRENCY; KN_EINVAL unless from_day < to_day. cb (may be NULL) gets
 * the spending by merchant category ("sse" for SSE entities) in name order. */
KN_MUST int ledger_report_get(store_txn *t, const char *code, uint32_t from_day, uint32_t to_day,
                              ledger_report *out,
                              void (*cb)(void *ctx, const char *category, int64_t amount),
                              void *ctx);

/* ---------------------------------------------------------------- evidence */

/* How long an evidence transaction may wait: it expires this many heights
 * after the height of its votes. */
#define LEDGER_EVIDENCE_EXPIRY_BLOCKS 1000

/* Builds the canonical evidence transaction of two conflicting votes: chain
 * id, nonce 0, expiry the votes' height + LEDGER_EVIDENCE_EXPIRY_BLOCKS, one
 * evidence operation with the votes in canonical order (ledger_evidence_order),
 * no signature; sets tx->id. Every node that sees the same equivocation builds
 * the same bytes and id. Nothing is checked here: the rule does it. */
void ledger_evidence_tx(ledger_tx *tx, const char *chain_id, const cons_vote *a,
                        const cons_vote *b);
/* True when a comes before b in the canonical order of two votes: a vote for
 * nil first, then block ids in byte order (then validator, height, round,
 * type and signature, so the order is total). */
bool ledger_evidence_order(const cons_vote *a, const cons_vote *b);

/* One recorded equivocation: the two votes in canonical order (a before b),
 * the validator's public key from the state's validator set, and the height
 * of the block that recorded it. */
typedef struct ledger_evidence {
    cons_vote a, b;
    uint8_t validator_pk[KN_PK_BYTES];
    uint64_t recorded_height;
} ledger_evidence;
KN_MUST int ledger_evidence_count(store_txn *t, uint64_t *count);
/* Every recorded equivocation, in key order: validator index, height, round,
 * type. */
KN_MUST int ledger_evidence_each(store_txn *t, void (*cb)(void *ctx, const ledger_evidence *e),
                                 void *ctx);
/* The validator set the genesis stored: KN_ENOTFOUND for an index beyond it. */
KN_MUST int ledger_validator_get(store_txn *t, uint32_t index, cons_validator *out);

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
/* The decoded transactions of a block and their ids. Kept from block to block
 * by a caller that decodes many: a block's worth is megabytes, and memory
 * freshly mapped costs a page fault per page, which costs more than decoding. */
typedef struct ledger_block_txs {
    ledger_tx *txs;
    uint8_t (*ids)[KN_HASH_BYTES];
    uint32_t cap;
} ledger_block_txs;

/* Decodes every transaction of the block into bt, growing it when needed.
 * KN_EBADBLOCK if one does not decode. */
KN_MUST int ledger_block_txs_decode(const ledger_block_view *v, ledger_block_txs *bt);
void ledger_block_txs_free(ledger_block_txs *bt);

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

/* Applies one transaction's operations atomically inside t at block time
 * time_ms: the operations are computed on an in-memory write set and written
 * only when all of them pass. Returns 0, or the rule error with no change
 * (KN_EDUPTX for an id already committed). */
KN_MUST int ledger_tx_apply(store_txn *t, const ledger_tx *tx, uint64_t height,
                            uint64_t time_ms);

/* The same rules as ledger_tx_apply, against t (which may be read-only),
 * writing nothing: the mempool's admission check, each transaction alone
 * against the committed state. */
KN_MUST int ledger_tx_check(store_txn *t, const ledger_tx *tx, uint64_t height,
                            uint64_t time_ms);

/* True for the errors ledger_tx_apply returns when a transaction breaks a rule
 * of the state (as opposed to a malformed transaction or a store failure). */
bool ledger_rule_error(int err);

/* Checks every invariant from a full scan and aborts on the first broken one:
 * each currency's balances sum to zero and match its supply and counts, no
 * account is below its floor, no programme disbursed beyond its budget or
 * funding, no beneficiary beyond its cap, no reversal beyond its original.
 * For tests and debug builds: costs a scan of the whole state. */
void ledger_check_invariants(store_txn *t);

/* The consensus safety state, stored in STORE_META. */
KN_MUST int ledger_safety_put(store_txn *t, const cons_safety *s);
KN_MUST int ledger_safety_get(store_txn *t, cons_safety *out);

/* The restart record of the height in progress (restart.c): the safety state,
 * every vote this node signed at the height (type, height, round and block;
 * validator and signature are not kept, Ed25519 signs them again identically)
 * and the valid value: the bytes of the block the core holds as its valid
 * value with the signed prevotes that prove it (cons_valid_proof).
 * ledger_restart_put writes s, the votes kept plus those acts is about to
 * sign, and valid (the value of s->valid_round) unless it is NULL. */
typedef struct ledger_valid_value {
    ledger_slice block;
    const cons_vote *proof;
    uint32_t n_proof;
} ledger_valid_value;

KN_MUST int ledger_restart_put(store_txn *t, const cons_safety *s, const cons_vote *kept,
                               uint32_t n_kept, const cons_actions *acts,
                               const ledger_valid_value *valid);
/* The stored votes of `height`, up to cap of them (validator and sig zero);
 * *n is 0 when there are none. */
KN_MUST int ledger_own_votes_get(store_txn *t, uint64_t height, cons_vote *out, uint32_t cap,
                                 uint32_t *n);
/* KN_ENOTFOUND when none was ever stored; block borrows the transaction's
 * memory. The block names its own height and the proof's signatures are as
 * stored: callers check both. */
KN_MUST int ledger_valid_value_get(store_txn *t, uint32_t *round, ledger_slice *block,
                                   cons_vote proof[CONS_VALIDATORS_MAX], uint32_t *n_proof);

#endif
