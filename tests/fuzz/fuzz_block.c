/*
 * fuzz_block: ledger_block_decode over arbitrary bytes.
 *
 * The decoder is structural: it decodes the header strictly and keeps each
 * transaction and the last certificate as a borrowed slice of the input. So a
 * full round trip is sound: the block array head, ledger_header_encode of the
 * decoded header, the transaction array head, the slices and the certificate
 * (or nil) must give back exactly the input, and each slice must point at its
 * own place in the input.
 *
 * Properties:
 *  - a refusal is KN_EDECODE, KN_ENONCANON or KN_ETOOBIG;
 *  - the round trip above, and the block id is the hash of the re-encoded
 *    header;
 *  - each transaction slice that ledger_tx_decode accepts re-encodes to
 *    itself, and so does the certificate if cons_cert_decode accepts it (these
 *    reach the inner decoders with the framing of a real block around them).
 */
#include <string.h>

#include "node/ledger/ledger.h"
#include "tests/fuzz/fuzz.h"

#define BLOCK_FIELDS 3

/* Appends slice s to b after checking that it sits at offset b->len of data. */
static void append_slice(kn_buf *b, const uint8_t *data, size_t size, ledger_slice s)
{
    FUZZ_CHECK(s.n > 0 && s.p >= data && s.p <= data + size);
    FUZZ_CHECK((size_t)(s.p - data) == b->len && s.n <= size - b->len);
    kn_buf_append(b, s.p, s.n);
}

static void check_tx_slice(ledger_slice s)
{
    static ledger_tx tx;
    FUZZ_CHECK(s.n <= LEDGER_TX_BYTES_MAX);
    if (ledger_tx_decode(s.p, s.n, &tx)) return;
    kn_buf b = {0};
    ledger_tx_encode(&tx, &b);
    FUZZ_CHECK(b.len == s.n && memcmp(b.data, s.p, s.n) == 0);
    kn_buf_free(&b);
}

static void check_cert_slice(ledger_slice s)
{
    static cons_cert cert;
    kn_cur c = kn_cur_make(s.p, s.n);
    if (cons_cert_decode(&c, &cert) || c.left) return;
    kn_buf b = {0};
    cons_cert_encode(&cert, &b);
    FUZZ_CHECK(b.len == s.n && memcmp(b.data, s.p, s.n) == 0);
    kn_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ledger_block_view v;
    fuzz_init();
    int rc = ledger_block_decode(data, size, &v);
    if (rc) {
        FUZZ_CHECK(rc == KN_EDECODE || rc == KN_ENONCANON || rc == KN_ETOOBIG);
        return 0;
    }
    FUZZ_CHECK(v.hdr.n_txs <= LEDGER_BLOCK_TXS_MAX);
    FUZZ_CHECK(v.hdr.n_txs == 0 || v.txs != NULL);

    kn_buf b = {0};
    kn_w_array(&b, BLOCK_FIELDS);
    size_t header_at = b.len;
    ledger_header_encode(&v.hdr, &b);
    uint8_t block_id[KN_HASH_BYTES];
    kn_hash(block_id, KN_DOMAIN_BLOCK, b.data + header_at, b.len - header_at);
    FUZZ_CHECK(memcmp(block_id, v.block_id, KN_HASH_BYTES) == 0);
    FUZZ_CHECK(b.len <= size && memcmp(b.data, data, b.len) == 0);

    kn_w_array(&b, v.hdr.n_txs);
    for (uint32_t i = 0; i < v.hdr.n_txs; i++) {
        append_slice(&b, data, size, v.txs[i]);
        check_tx_slice(v.txs[i]);
    }
    if (v.last_cert.n) {
        append_slice(&b, data, size, v.last_cert);
        check_cert_slice(v.last_cert);
    } else {
        kn_w_nil(&b);
    }
    FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
    kn_buf_free(&b);
    ledger_block_view_free(&v);
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_each(fuzz_seed_block, add, ctx);
}
