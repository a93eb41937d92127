/*
 * Blocks: the header and block formats (ledger.h), block ids, building a
 * proposal, the structural decoder and the header checks a validator makes
 * before it votes for a block.
 *
 * On the last certificate: a block at height h >= 2 carries a commit
 * certificate for block h-1, and its header commits to those exact bytes in
 * last_cert_hash. Validators accept any certificate that verifies for block
 * h-1, not only the one they stored themselves: each node assembles its own
 * +2/3 of precommits, so two honest nodes may hold different (equally valid)
 * certificates, and insisting on one's own would stall every height whose
 * proposer saw a different quorum.
 */
#include <stdlib.h>
#include <string.h>

#include "node/ledger/internal.h"

#define HEADER_VERSION 1
#define HEADER_FIELDS 10
#define BLOCK_FIELDS 3

static const uint8_t zero_hash[KN_HASH_BYTES];

void ledger__txs_hash(uint8_t out[KN_HASH_BYTES], const uint8_t (*ids)[KN_HASH_BYTES], uint32_t n)
{
    kn_hash(out, KN_DOMAIN_BLOCK, ids, (size_t)n * KN_HASH_BYTES);
}

void ledger_header_encode(const ledger_header *h, kn_buf *b)
{
    kn_w_array(b, HEADER_FIELDS);
    kn_w_uint(b, HEADER_VERSION);
    kn_w_str(b, h->chain_id, strlen(h->chain_id));
    kn_w_uint(b, h->height);
    kn_w_uint(b, h->time_ms);
    kn_w_bin(b, h->prev_id, KN_HASH_BYTES);
    kn_w_bin(b, h->state_hash, KN_HASH_BYTES);
    kn_w_bin(b, h->txs_hash, KN_HASH_BYTES);
    kn_w_bin(b, h->last_cert_hash, KN_HASH_BYTES);
    kn_w_uint(b, h->proposer);
    kn_w_uint(b, h->n_txs);
}

void ledger_block_build(ledger_header *h, const ledger_slice *txs,
                        const uint8_t (*ids)[KN_HASH_BYTES], uint32_t n_txs,
                        const ledger_slice *last_cert, kn_buf *block,
                        uint8_t block_id[KN_HASH_BYTES])
{
    KN_REQUIRE(n_txs <= LEDGER_BLOCK_TXS_MAX);
    bool has_cert = last_cert && last_cert->n;
    h->n_txs = n_txs;
    ledger__txs_hash(h->txs_hash, ids, n_txs);
    memset(h->last_cert_hash, 0, KN_HASH_BYTES);
    if (has_cert) kn_hash(h->last_cert_hash, KN_DOMAIN_BLOCK, last_cert->p, last_cert->n);
    kn_w_array(block, BLOCK_FIELDS);
    size_t header_at = block->len;
    ledger_header_encode(h, block);
    kn_hash(block_id, KN_DOMAIN_BLOCK, block->data + header_at, block->len - header_at);
    kn_w_array(block, n_txs);
    for (uint32_t i = 0; i < n_txs; i++) kn_buf_append(block, txs[i].p, txs[i].n);
    if (has_cert) kn_buf_append(block, last_cert->p, last_cert->n);
    else kn_w_nil(block);
}

/* ---------------------------------------------------------------- decoding */

static int decode_header(kn_cur *c, ledger_header *h)
{
    uint32_t fields;
    uint64_t version, proposer, n_txs;
    int rc = kn_r_array(c, &fields);
    if (!rc && fields != HEADER_FIELDS) rc = KN_EDECODE;
    if (!rc) rc = kn_r_uint(c, &version);
    if (!rc && version != HEADER_VERSION) rc = KN_EDECODE;
    if (!rc) rc = ledger__r_text(c, h->chain_id, 1, KN_CHAIN_ID_MAX);
    if (!rc) rc = kn_r_uint(c, &h->height);
    if (!rc) rc = kn_r_uint(c, &h->time_ms);
    if (!rc) rc = kn_r_bin_fixed(c, h->prev_id, KN_HASH_BYTES);
    if (!rc) rc = kn_r_bin_fixed(c, h->state_hash, KN_HASH_BYTES);
    if (!rc) rc = kn_r_bin_fixed(c, h->txs_hash, KN_HASH_BYTES);
    if (!rc) rc = kn_r_bin_fixed(c, h->last_cert_hash, KN_HASH_BYTES);
    if (!rc) rc = kn_r_uint(c, &proposer);
    if (!rc) rc = kn_r_uint(c, &n_txs);
    if (rc) return rc;
    if (proposer > UINT32_MAX) return KN_EDECODE;
    if (n_txs > LEDGER_BLOCK_TXS_MAX) return KN_ETOOBIG;
    h->proposer = (uint32_t)proposer;
    h->n_txs = (uint32_t)n_txs;
    return 0;
}

/* One msgpack value as a slice of the cursor's bytes. */
static int take_value(kn_cur *c, ledger_slice *s)
{
    kn_cur before = *c;
    int rc = kn_r_skip(c);
    if (rc) return rc;
    s->p = before.p;
    s->n = before.left - c->left;
    return 0;
}

static int decode_body(kn_cur *c, ledger_block_view *out)
{
    uint32_t count;
    int rc = kn_r_array(c, &count);
    if (rc) return rc;
    if (count > LEDGER_BLOCK_TXS_MAX) return KN_ETOOBIG;
    if (count != out->hdr.n_txs) return KN_EDECODE;
    if (count) {
        out->txs = calloc(count, sizeof *out->txs);
        KN_REQUIRE(out->txs != NULL);
    }
    for (uint32_t i = 0; i < count; i++) {
        rc = take_value(c, &out->txs[i]);
        if (rc) return rc;
        if (out->txs[i].n > LEDGER_TX_BYTES_MAX) return KN_ETOOBIG;
    }
    if (!kn_r_nil(c)) {
        rc = take_value(c, &out->last_cert);
        if (rc) return rc;
    }
    return c->left ? KN_EDECODE : 0;
}

int ledger_block_decode(const uint8_t *p, size_t n, ledger_block_view *out)
{
    memset(out, 0, sizeof *out);
    if (n > LEDGER_BLOCK_BYTES_MAX) return KN_ETOOBIG;
    kn_cur c = kn_cur_make(p, n);
    uint32_t fields;
    int rc = kn_r_array(&c, &fields);
    if (!rc && fields != BLOCK_FIELDS) rc = KN_EDECODE;
    if (rc) return rc;
    kn_cur header_at = c;
    rc = decode_header(&c, &out->hdr);
    size_t header_len = header_at.left - c.left;
    if (!rc) rc = decode_body(&c, out);
    if (rc) {
        ledger_block_view_free(out);
        return rc;
    }
    kn_hash(out->block_id, KN_DOMAIN_BLOCK, header_at.p, header_len);
    return 0;
}

void ledger_block_view_free(ledger_block_view *v)
{
    free(v->txs);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- checks */

static int check_last_cert(const ledger_block_view *v, const cons_valset *vs,
                           const char *chain_id)
{
    const ledger_header *h = &v->hdr;
    if (h->height == 1) {
        bool none = v->last_cert.n == 0 && memcmp(h->last_cert_hash, zero_hash, KN_HASH_BYTES) == 0;
        return none ? 0 : KN_EBADBLOCK;
    }
    if (v->last_cert.n == 0) return KN_EBADBLOCK;
    uint8_t hash[KN_HASH_BYTES];
    kn_hash(hash, KN_DOMAIN_BLOCK, v->last_cert.p, v->last_cert.n);
    if (memcmp(hash, h->last_cert_hash, KN_HASH_BYTES) != 0) return KN_EBADBLOCK;
    cons_cert cert;
    kn_cur c = kn_cur_make(v->last_cert.p, v->last_cert.n);
    if (cons_cert_decode(&c, &cert) || c.left) return KN_EBADCERT;
    if (cert.height != h->height - 1 || memcmp(cert.block_id, h->prev_id, KN_HASH_BYTES) != 0)
        return KN_EBADCERT;
    return cons_cert_verify(&cert, vs, chain_id) ? KN_EBADCERT : 0;
}

int ledger_block_check(const ledger_block_view *v, const ledger_chain *chain,
                       const cons_valset *vs, const char *chain_id,
                       const uint8_t (*ids)[KN_HASH_BYTES])
{
    const ledger_header *h = &v->hdr;
    if (strcmp(h->chain_id, chain_id) != 0) return KN_EBADBLOCK;
    if (h->height != chain->height + 1) return KN_EBADBLOCK;
    if (memcmp(h->prev_id, chain->last_block_id, KN_HASH_BYTES) != 0) return KN_EBADBLOCK;
    if (memcmp(h->state_hash, chain->state_hash, KN_HASH_BYTES) != 0) return KN_EBADBLOCK;
    if (h->time_ms <= chain->last_time_ms) return KN_EBADBLOCK;
    if (h->proposer >= vs->n) return KN_EBADBLOCK;
    uint8_t txs_hash[KN_HASH_BYTES];
    ledger__txs_hash(txs_hash, ids, h->n_txs);
    if (memcmp(txs_hash, h->txs_hash, KN_HASH_BYTES) != 0) return KN_EBADBLOCK;
    return check_last_cert(v, vs, chain_id);
}

int ledger_block_txs_decode(const ledger_block_view *v, ledger_block_txs *bt)
{
    uint32_t n = v->hdr.n_txs;
    if (n + 1 > bt->cap) {
        bt->txs = realloc(bt->txs, sizeof *bt->txs * (n + 1));
        bt->ids = realloc(bt->ids, KN_HASH_BYTES * (size_t)(n + 1));
        KN_REQUIRE(bt->txs != NULL && bt->ids != NULL);
        bt->cap = n + 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ledger_tx_decode(v->txs[i].p, v->txs[i].n, &bt->txs[i])) return KN_EBADBLOCK;
        memcpy(bt->ids[i], bt->txs[i].id, KN_HASH_BYTES);
    }
    return 0;
}

void ledger_block_txs_free(ledger_block_txs *bt)
{
    free(bt->txs);
    free(bt->ids);
    *bt = (ledger_block_txs){0};
}
