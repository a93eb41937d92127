/*
 * fuzz_tx: ledger_tx_decode over arbitrary bytes.
 *
 * Properties:
 *  - a refusal is one of the errors ledger.h documents;
 *  - a decoded transaction re-encodes (ledger_tx_encode) to exactly the input:
 *    the format has one accepted byte string per transaction;
 *  - its id is the hash of its body as ledger_tx_body writes it;
 *  - the stateless signature checks run on it without trouble and answer with
 *    one of their documented results.
 */
#include <string.h>

#include "node/ledger/ledger.h"
#include "tests/fuzz/fuzz.h"

static bool documented_decode_error(int rc)
{
    switch (rc) {
    case KN_EDECODE:
    case KN_ENONCANON:
    case KN_ETOOBIG:
    case KN_ENOOPS:
    case KN_EUNKNOWNOP:
    case KN_EZEROAMOUNT:
    case KN_ESELFPAY:
    case KN_EINVAL:
    case KN_EOVERFLOW: return true;
    default: return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ledger_tx tx;
    fuzz_init();
    int rc = ledger_tx_decode(data, size, &tx);
    if (rc) {
        FUZZ_CHECK(documented_decode_error(rc));
        return 0;
    }
    FUZZ_CHECK(size <= LEDGER_TX_BYTES_MAX);
    FUZZ_CHECK(tx.n_ops >= 1 && tx.n_ops <= LEDGER_OPS_MAX && tx.n_sigs <= LEDGER_SIGS_MAX);

    kn_buf b = {0};
    ledger_tx_encode(&tx, &b);
    FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);

    uint8_t id[KN_HASH_BYTES];
    kn_buf_reset(&b);
    ledger_tx_body(&tx, &b);
    kn_hash(id, KN_DOMAIN_TX, b.data, b.len);
    FUZZ_CHECK(memcmp(id, tx.id, KN_HASH_BYTES) == 0);
    kn_buf_free(&b);

    rc = ledger_tx_verify(&tx, tx.chain_id);
    FUZZ_CHECK(rc == 0 || rc == KN_EBADSIG || rc == KN_EWRONGSIGNER);
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_each(fuzz_seed_tx, add, ctx);
}
