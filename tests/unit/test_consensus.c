/* consensus: encodings, signatures, validator sets, certificates, and the
 * Tendermint core driven by hand and as a small deterministic network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "consensus/consensus.h"

#define CHAIN "koinon-test"
#define NV 4

static kn_keypair keys[CONS_VALIDATORS_MAX];
static const cons_config cfg = {.timeout_propose_ms = 1000,
                                .timeout_prevote_ms = 1000,
                                .timeout_precommit_ms = 1000,
                                .timeout_delta_ms = 500};

/* ---------------------------------------------------------------- fixtures */

/* Keys from fixed seeds, so every run signs the same bytes. */
static void make_keys(void)
{
    for (uint32_t i = 0; i < CONS_VALIDATORS_MAX; i++) {
        uint8_t seed[crypto_sign_SEEDBYTES];
        memset(seed, (int)(i + 1), sizeof seed);
        crypto_sign_seed_keypair(keys[i].pk, keys[i].sk, seed);
    }
}

static cons_valset make_valset(const uint64_t *powers, uint32_t n)
{
    cons_valset vs;
    memset(&vs, 0, sizeof vs);
    vs.n = n;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(vs.v[i].pk, keys[i].pk, KN_PK_BYTES);
        vs.v[i].power = powers[i];
    }
    assert_int_equal(cons_valset_init(&vs), 0);
    return vs;
}

static cons_valset equal4(void)
{
    static const uint64_t powers[NV] = {1, 1, 1, 1};
    return make_valset(powers, NV);
}

static void block(uint8_t id[KN_HASH_BYTES], uint8_t tag)
{
    memset(id, tag, KN_HASH_BYTES);
}

/* tag 0 means a nil vote. */
static cons_vote vote(uint8_t type, uint64_t h, uint32_t r, uint8_t tag, uint32_t validator)
{
    cons_vote v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.height = h;
    v.round = r;
    v.nil = tag == 0;
    if (tag) block(v.block_id, tag);
    v.validator = validator;
    cons_vote_sign(&v, &keys[validator], CHAIN);
    return v;
}

static cons_proposal proposal(uint64_t h, uint32_t r, int32_t pol, uint8_t tag, uint32_t proposer)
{
    cons_proposal p;
    memset(&p, 0, sizeof p);
    p.height = h;
    p.round = r;
    p.pol_round = pol;
    block(p.block_id, tag);
    p.proposer = proposer;
    cons_proposal_sign(&p, &keys[proposer], CHAIN);
    return p;
}

static void expect_timeout(const cons_action *a, uint8_t step, uint64_t h, uint32_t r,
                           uint32_t duration_ms)
{
    assert_int_equal(a->kind, CONS_ACT_SCHEDULE_TIMEOUT);
    assert_int_equal(a->u.timeout.step, step);
    assert_int_equal(a->u.timeout.height, h);
    assert_int_equal(a->u.timeout.round, r);
    assert_int_equal(a->u.timeout.duration_ms, duration_ms);
}

/* tag 0: a nil vote. */
static void expect_vote(const cons_action *a, uint8_t type, uint64_t h, uint32_t r, uint8_t tag,
                        uint32_t self)
{
    uint8_t id[KN_HASH_BYTES] = {0};
    if (tag) block(id, tag);
    assert_int_equal(a->kind, CONS_ACT_BROADCAST_VOTE);
    assert_int_equal(a->u.vote.type, type);
    assert_int_equal(a->u.vote.height, h);
    assert_int_equal(a->u.vote.round, r);
    assert_int_equal(a->u.vote.nil, tag == 0);
    assert_memory_equal(a->u.vote.block_id, id, KN_HASH_BYTES);
    assert_int_equal(a->u.vote.validator, self);
}

static void feed_vote(cons_state *c, uint8_t type, uint64_t h, uint32_t r, uint8_t tag,
                      uint32_t validator, cons_actions *out)
{
    cons_vote v = vote(type, h, r, tag, validator);
    cons_on_vote(c, &v, out);
}

static void feed_votes_silent(cons_state *c, uint8_t type, uint32_t r, uint8_t tag,
                              uint32_t from, uint32_t to)
{
    cons_actions acts;
    for (uint32_t i = from; i <= to; i++) {
        feed_vote(c, type, 1, r, tag, i, &acts);
        assert_int_equal(acts.n, 0);
    }
}

/* ---------------------------------------------------------------- encodings */

static void vote_roundtrip(void **state)
{
    for (uint8_t tag = 0; tag < 2; tag++) {
        cons_vote v = vote(CONS_PRECOMMIT, 300, 70000, tag ? 0xab : 0, 3), d;
        kn_buf b = {0}, again = {0};
        cons_vote_encode(&v, &b);
        kn_cur c = kn_cur_make(b.data, b.len);
        assert_int_equal(cons_vote_decode(&c, &d), 0);
        assert_int_equal(c.left, 0);
        assert_int_equal(d.type, CONS_PRECOMMIT);
        assert_int_equal(d.height, 300);
        assert_int_equal(d.round, 70000);
        assert_int_equal(d.nil, tag == 0);
        assert_memory_equal(d.block_id, v.block_id, KN_HASH_BYTES);
        assert_int_equal(d.validator, 3);
        assert_memory_equal(d.sig, v.sig, KN_SIG_BYTES);
        cons_vote_encode(&d, &again);
        assert_int_equal(again.len, b.len);
        assert_memory_equal(again.data, b.data, b.len);
        kn_buf_free(&b);
        kn_buf_free(&again);
    }
}

static void proposal_roundtrip(void **state)
{
    static const int32_t pols[] = {-1, 0, 4};
    for (size_t i = 0; i < 3; i++) {
        cons_proposal p = proposal(9, 5, pols[i], 0x11, 2), d;
        kn_buf b = {0};
        cons_proposal_encode(&p, &b);
        kn_cur c = kn_cur_make(b.data, b.len);
        assert_int_equal(cons_proposal_decode(&c, &d), 0);
        assert_int_equal(c.left, 0);
        assert_int_equal(d.height, 9);
        assert_int_equal(d.round, 5);
        assert_int_equal(d.pol_round, pols[i]);
        assert_memory_equal(d.block_id, p.block_id, KN_HASH_BYTES);
        assert_int_equal(d.proposer, 2);
        assert_memory_equal(d.sig, p.sig, KN_SIG_BYTES);
        kn_buf_free(&b);
    }
}

/* Every strict prefix fails and leaves the cursor and the output untouched. */
static void truncations_rejected(void **state)
{
    cons_vote v = vote(CONS_PREVOTE, 1, 0, 0x22, 1), vd;
    cons_proposal p = proposal(1, 3, 1, 0x22, 1), pd;
    kn_buf vb = {0}, pb = {0};
    cons_vote_encode(&v, &vb);
    cons_proposal_encode(&p, &pb);
    for (size_t len = 0; len < vb.len; len++) {
        memset(&vd, 0x5a, sizeof vd);
        kn_cur c = kn_cur_make(vb.data, len);
        assert_int_not_equal(cons_vote_decode(&c, &vd), 0);
        assert_int_equal(c.left, len);
        assert_ptr_equal(c.p, vb.data);
        assert_int_equal(vd.height, 0x5a5a5a5a5a5a5a5aull);
    }
    for (size_t len = 0; len < pb.len; len++) {
        kn_cur c = kn_cur_make(pb.data, len);
        assert_int_not_equal(cons_proposal_decode(&c, &pd), 0);
        assert_int_equal(c.left, len);
    }
    kn_buf_free(&vb);
    kn_buf_free(&pb);
}

/* A vote written field by field, so single fields can be made wrong. */
static void raw_vote(kn_buf *b, uint32_t fields, uint64_t type, const uint8_t *height_raw,
                     size_t height_len, uint64_t round)
{
    uint8_t id[KN_HASH_BYTES], sig[KN_SIG_BYTES] = {0};
    block(id, 0x33);
    kn_w_array(b, fields);
    kn_w_uint(b, type);
    kn_buf_append(b, height_raw, height_len);
    kn_w_uint(b, round);
    kn_w_bin(b, id, sizeof id);
    kn_w_uint(b, 1);
    if (fields >= 6) kn_w_bin(b, sig, sizeof sig);
    if (fields >= 7) kn_w_uint(b, 0); /* trailing element inside the array */
}

static int decode_raw(uint32_t fields, uint64_t type, const uint8_t *h, size_t hl, uint64_t round)
{
    kn_buf b = {0};
    cons_vote v;
    raw_vote(&b, fields, type, h, hl, round);
    kn_cur c = kn_cur_make(b.data, b.len);
    int rc = cons_vote_decode(&c, &v);
    kn_buf_free(&b);
    return rc;
}

static void malformed_votes_rejected(void **state)
{
    static const uint8_t h5[] = {0x05};
    static const uint8_t h5_long[] = {0xcd, 0x00, 0x05}; /* 5 as uint16 */
    assert_int_equal(decode_raw(6, CONS_PREVOTE, h5, 1, 0), 0); /* the control */
    assert_int_equal(decode_raw(6, CONS_PREVOTE, h5_long, 3, 0), KN_ENONCANON);
    assert_int_equal(decode_raw(7, CONS_PREVOTE, h5, 1, 0), KN_EDECODE);
    assert_int_equal(decode_raw(5, CONS_PREVOTE, h5, 1, 0), KN_EDECODE);
    assert_int_equal(decode_raw(6, 0, h5, 1, 0), KN_EDECODE);
    assert_int_equal(decode_raw(6, 3, h5, 1, 0), KN_EDECODE);
    assert_int_equal(decode_raw(6, 258, h5, 1, 0), KN_EDECODE);
    assert_int_equal(decode_raw(6, CONS_PREVOTE, h5, 1, 1ull << 32), KN_EDECODE);
}

static int decode_proposal_pol(uint32_t round, int64_t pol)
{
    uint8_t id[KN_HASH_BYTES] = {0}, sig[KN_SIG_BYTES] = {0};
    kn_buf b = {0};
    cons_proposal p;
    kn_w_array(&b, 6);
    kn_w_uint(&b, 1);
    kn_w_uint(&b, round);
    kn_w_int(&b, pol);
    kn_w_bin(&b, id, sizeof id);
    kn_w_uint(&b, 0);
    kn_w_bin(&b, sig, sizeof sig);
    kn_cur c = kn_cur_make(b.data, b.len);
    int rc = cons_proposal_decode(&c, &p);
    kn_buf_free(&b);
    return rc;
}

static void malformed_proposals_rejected(void **state)
{
    assert_int_equal(decode_proposal_pol(3, 2), 0);
    assert_int_equal(decode_proposal_pol(3, -1), 0);
    assert_int_equal(decode_proposal_pol(3, 3), KN_EDECODE);  /* not an earlier round */
    assert_int_equal(decode_proposal_pol(3, -2), KN_EDECODE);
    assert_int_equal(decode_proposal_pol(0, 0), KN_EDECODE);
}

static void cert_fill(cons_cert *cert, uint64_t h, uint32_t r, uint8_t tag,
                      const uint32_t *signers, uint32_t n)
{
    memset(cert, 0, sizeof *cert);
    cert->height = h;
    cert->round = r;
    block(cert->block_id, tag);
    cert->n_sigs = n;
    for (uint32_t i = 0; i < n; i++) {
        cons_vote v = vote(CONS_PRECOMMIT, h, r, tag, signers[i]);
        cert->sigs[i].validator = signers[i];
        memcpy(cert->sigs[i].sig, v.sig, KN_SIG_BYTES);
    }
}

static int cert_decode_bytes(const cons_cert *cert, cons_cert *out)
{
    kn_buf b = {0};
    cons_cert_encode(cert, &b);
    kn_cur c = kn_cur_make(b.data, b.len);
    int rc = cons_cert_decode(&c, out);
    if (!rc) assert_int_equal(c.left, 0);
    kn_buf_free(&b);
    return rc;
}

static void cert_roundtrip_and_order(void **state)
{
    static const uint32_t ok[] = {0, 2, 3}, unsorted[] = {0, 3, 2}, dup[] = {0, 2, 2};
    cons_cert cert, d;
    cert_fill(&cert, 12, 1, 0x44, ok, 3);
    assert_int_equal(cert_decode_bytes(&cert, &d), 0);
    assert_int_equal(d.height, 12);
    assert_int_equal(d.round, 1);
    assert_memory_equal(d.block_id, cert.block_id, KN_HASH_BYTES);
    assert_int_equal(d.n_sigs, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(d.sigs[i].validator, ok[i]);
        assert_memory_equal(d.sigs[i].sig, cert.sigs[i].sig, KN_SIG_BYTES);
    }
    cert_fill(&cert, 12, 1, 0x44, unsorted, 3);
    assert_int_equal(cert_decode_bytes(&cert, &d), KN_EDECODE);
    cert_fill(&cert, 12, 1, 0x44, dup, 3);
    assert_int_equal(cert_decode_bytes(&cert, &d), KN_EDECODE);

    /* 65 signatures: refused at the count, before any element is read. */
    kn_buf b = {0};
    uint8_t id[KN_HASH_BYTES] = {0};
    kn_w_array(&b, 4);
    kn_w_uint(&b, 1);
    kn_w_uint(&b, 0);
    kn_w_bin(&b, id, sizeof id);
    kn_w_array(&b, CONS_VALIDATORS_MAX + 1);
    kn_cur c = kn_cur_make(b.data, b.len);
    assert_int_equal(cons_cert_decode(&c, &d), KN_ETOOBIG);
    assert_int_equal(c.left, b.len);
    kn_buf_free(&b);
}

/* ---------------------------------------------------------------- signatures */

static void vote_signature_binds_everything(void **state)
{
    cons_valset vs = equal4();
    cons_vote v = vote(CONS_PREVOTE, 8, 2, 0x55, 1);
    assert_int_equal(cons_vote_verify(&v, &vs, CHAIN), 0);
    assert_int_equal(cons_vote_verify(&v, &vs, "koinon-other"), KN_EBADSIG);
    kn_buf b = {0};
    cons_vote_encode(&v, &b);
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x01;
        kn_cur c = kn_cur_make(b.data, b.len);
        cons_vote d;
        if (cons_vote_decode(&c, &d) == 0)
            assert_int_not_equal(cons_vote_verify(&d, &vs, CHAIN), 0);
        b.data[i] ^= 0x01;
    }
    kn_buf_free(&b);
    cons_vote bad = v;
    bad.validator = NV;
    assert_int_equal(cons_vote_verify(&bad, &vs, CHAIN), KN_EINVAL);
    bad = v;
    bad.type = 3;
    assert_int_equal(cons_vote_verify(&bad, &vs, CHAIN), KN_EINVAL);
}

static void proposal_signature_binds_everything(void **state)
{
    cons_valset vs = equal4();
    cons_proposal p = proposal(8, 2, 1, 0x66, 3);
    assert_int_equal(cons_proposal_verify(&p, &vs, CHAIN), 0);
    assert_int_equal(cons_proposal_verify(&p, &vs, "koinon-other"), KN_EBADSIG);
    kn_buf b = {0};
    cons_proposal_encode(&p, &b);
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x01;
        kn_cur c = kn_cur_make(b.data, b.len);
        cons_proposal d;
        if (cons_proposal_decode(&c, &d) == 0)
            assert_int_not_equal(cons_proposal_verify(&d, &vs, CHAIN), 0);
        b.data[i] ^= 0x01;
    }
    kn_buf_free(&b);
    /* A vote signature never passes as a proposal signature (domains differ). */
    cons_vote v = vote(CONS_PREVOTE, 8, 2, 0x66, 3);
    memcpy(p.sig, v.sig, KN_SIG_BYTES);
    assert_int_equal(cons_proposal_verify(&p, &vs, CHAIN), KN_EBADSIG);
}

/* ---------------------------------------------------------------- validator sets */

static void count_slots(const cons_valset *vs, uint32_t counts[CONS_VALIDATORS_MAX])
{
    memset(counts, 0, CONS_VALIDATORS_MAX * sizeof counts[0]);
    for (uint32_t i = 0; i < vs->schedule_len; i++) counts[vs->schedule[i]]++;
}

static void proposer_rotation(void **state)
{
    uint32_t counts[CONS_VALIDATORS_MAX];
    cons_valset vs = equal4();
    assert_int_equal(vs.schedule_len, 4);
    assert_int_equal(vs.total_power, 4);
    for (uint32_t r = 0; r < 4; r++) assert_int_equal(cons_proposer(&vs, 1, r), (1 + r) % 4);
    assert_int_not_equal(cons_proposer(&vs, 7, 0), cons_proposer(&vs, 7, 1));
    assert_int_equal(cons_proposer(&vs, 7, 1), cons_proposer(&vs, 8, 0));
    assert_int_equal(cons_proposer(&vs, UINT64_MAX, UINT32_MAX),
                     vs.schedule[((UINT64_MAX % 4) + (UINT32_MAX % 4)) % 4]);

    static const uint64_t w31[] = {3, 1}, w30_10[] = {30, 10};
    cons_valset a = make_valset(w31, 2), b = make_valset(w30_10, 2);
    static const uint8_t smooth[] = {0, 0, 1, 0};
    assert_int_equal(a.schedule_len, 4);
    assert_memory_equal(a.schedule, smooth, 4);
    count_slots(&a, counts);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 1);
    assert_int_equal(b.schedule_len, 4); /* divided by the gcd */
    assert_memory_equal(b.schedule, smooth, 4);
}

static void schedule_capped(void **state)
{
    uint32_t counts[CONS_VALIDATORS_MAX];
    static const uint64_t big[] = {10000, 1};
    cons_valset vs = make_valset(big, 2);
    assert_true(vs.schedule_len <= CONS_SCHEDULE_MAX);
    assert_int_equal(vs.schedule_len, 4094 * 10000 / 10001 + 1);
    count_slots(&vs, counts);
    assert_int_equal(counts[1], 1); /* scaled to nothing, kept at one slot */
    assert_int_equal(counts[0], vs.schedule_len - 1);
    assert_int_equal(vs.total_power, 10001); /* voting power is untouched */
}

static void valset_rejects_bad_sets(void **state)
{
    cons_valset vs;
    memset(&vs, 0, sizeof vs);
    assert_int_equal(cons_valset_init(&vs), KN_EINVAL);
    vs.n = 2;
    vs.v[0].power = 1;
    assert_int_equal(cons_valset_init(&vs), KN_EINVAL); /* a zero power */
    vs.v[0].power = UINT64_MAX;
    vs.v[1].power = 1;
    assert_int_equal(cons_valset_init(&vs), KN_EINVAL); /* overflow */
    vs.n = CONS_VALIDATORS_MAX + 1;
    assert_int_equal(cons_valset_init(&vs), KN_EINVAL);

    cons_valset ok = equal4();
    assert_int_equal(cons_valset_find(&ok, keys[2].pk), 2);
    assert_int_equal(cons_valset_find(&ok, keys[NV].pk), CONS_NO_VALIDATOR);
}

static void quorum_by_power(void **state)
{
    static const uint64_t p[] = {10, 10, 10, 1};
    cons_valset vs = make_valset(p, 4);
    assert_true(cons_quorum(&vs, 30));   /* three big ones */
    assert_false(cons_quorum(&vs, 11));  /* one big and the small one */
    assert_false(cons_quorum(&vs, 20));
    assert_true(cons_quorum(&vs, 21));   /* 63 > 62 */
    assert_true(cons_one_third(&vs, 11));
    assert_false(cons_one_third(&vs, 10));

    static const uint64_t huge[] = {UINT64_MAX / 2, UINT64_MAX / 2};
    cons_valset h = make_valset(huge, 2);
    assert_true(cons_quorum(&h, h.total_power));
    assert_false(cons_quorum(&h, UINT64_MAX / 2));
    assert_true(cons_one_third(&h, UINT64_MAX / 2));
}

/* ---------------------------------------------------------------- certificates */

static void cert_verify_rules(void **state)
{
    static const uint64_t p[] = {10, 10, 10, 1};
    static const uint32_t three[] = {0, 1, 2}, all[] = {0, 1, 2, 3}, weak[] = {0, 3},
                          dup[] = {0, 1, 1}, unsorted[] = {1, 0, 2};
    cons_valset vs = make_valset(p, 4);
    cons_cert cert;
    cert_fill(&cert, 5, 2, 0x77, three, 3);
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), 0);
    cert_fill(&cert, 5, 2, 0x77, all, 4);
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), 0);

    cert_fill(&cert, 5, 2, 0x77, weak, 2); /* 11 of 31 */
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
    cert_fill(&cert, 5, 2, 0x77, dup, 3); /* 30 if the repeat counted */
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
    cert_fill(&cert, 5, 2, 0x77, unsorted, 3);
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);

    cert_fill(&cert, 5, 2, 0x77, three, 3);
    cert.sigs[2].sig[10] ^= 0x04;
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
    cert_fill(&cert, 5, 2, 0x77, three, 3);
    cert.block_id[0] ^= 0x01;
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
    cert_fill(&cert, 5, 2, 0x77, three, 3);
    cert.round = 3;
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
    cert_fill(&cert, 5, 2, 0x77, three, 3);
    assert_int_equal(cons_cert_verify(&cert, &vs, "koinon-other"), KN_EBADCERT);
    cert.sigs[2].validator = 4;
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), KN_EBADCERT);
}

/* ---------------------------------------------------------------- the core by hand */

static cons_state *start_core(const cons_valset *vs, uint32_t self, cons_actions *acts)
{
    cons_state *c = cons_new(vs, self, &cfg);
    assert_non_null(c);
    cons_start_height(c, 1, acts);
    return c;
}


/* A proposal for height 1 signed by the rightful proposer of round r. */
static void feed_proposal(cons_state *c, const cons_valset *vs, uint32_t r, int32_t pol,
                          uint8_t tag, cons_actions *out)
{
    cons_proposal p = proposal(1, r, pol, tag, cons_proposer(vs, 1, r));
    cons_on_proposal(c, &p, true, out);
}

static void expect_none(const cons_actions *acts)
{
    assert_int_equal(acts->n, 0);
}

/* Proposer of (1, 0) asks for a value, proposes it once, and ignores stale answers. */
static void proposer_needs_value(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    uint8_t a_id[KN_HASH_BYTES];
    block(a_id, 0xa1);
    uint32_t self = cons_proposer(&vs, 1, 0);
    cons_state *c = start_core(&vs, self, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_NEED_VALUE);
    assert_int_equal(acts.a[0].u.need_value.height, 1);
    assert_int_equal(acts.a[0].u.need_value.round, 0);
    cons_on_value(c, 1, 1, a_id, &acts);
    expect_none(&acts); /* wrong round */
    cons_on_value(c, 1, 0, a_id, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_BROADCAST_PROPOSAL);
    assert_int_equal(acts.a[0].u.proposal.height, 1);
    assert_int_equal(acts.a[0].u.proposal.round, 0);
    assert_int_equal(acts.a[0].u.proposal.pol_round, -1);
    assert_int_equal(acts.a[0].u.proposal.proposer, self);
    assert_memory_equal(acts.a[0].u.proposal.block_id, a_id, KN_HASH_BYTES);
    cons_on_value(c, 1, 0, a_id, &acts);
    expect_none(&acts); /* one proposal per round */
    /* Its own proposal comes back signed: now it prevotes, and not before. */
    feed_proposal(c, &vs, 0, -1, 0xa1, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 0, 0xa1, self);
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 0); /* not counted until fed back */
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xa1, self, &acts);
    expect_none(&acts);
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 1ull << self);
    cons_free(c);
}

/* Messages the core must ignore: wrong proposer, other heights, bad indexes. */
static void ignores_foreign_messages(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_state *c = start_core(&vs, 0, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 0, 1000);
    uint32_t wrong = (cons_proposer(&vs, 1, 0) + 1) % NV;
    cons_proposal p = proposal(1, 0, -1, 0xb1, wrong);
    cons_on_proposal(c, &p, true, &acts);
    expect_none(&acts);
    p = proposal(2, 0, -1, 0xb1, cons_proposer(&vs, 2, 0));
    cons_on_proposal(c, &p, true, &acts);
    expect_none(&acts);
    cons_vote v = vote(CONS_PREVOTE, 1, 0, 0xb1, 1);
    v.validator = NV;
    cons_on_vote(c, &v, &acts);
    expect_none(&acts);
    for (uint32_t i = 1; i < NV; i++) {
        feed_vote(c, CONS_PREVOTE, 2, 0, 0xb1, i, &acts); /* next height: ignored */
        expect_none(&acts);
    }
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 0);
    assert_int_equal(cons_step(c), CONS_STEP_PROPOSE);
    /* The rightful proposer is heard; an invalid block (below) gets a nil prevote. */
    feed_proposal(c, &vs, 0, -1, 0xb1, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 0, 0xb1, 0);
    cons_free(c);

    c = start_core(&vs, 0, &acts);
    p = proposal(1, 0, -1, 0xb2, cons_proposer(&vs, 1, 0));
    cons_on_proposal(c, &p, false, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 0, 0, 0);
    cons_free(c);
}

/* Round 0: locks on A. Round 1: B without a proof of lock gets a nil prevote.
 * Round 2: B with pol_round 1, where +2/3 prevoted B, gets a prevote for B. */
static void lock_and_unlock(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_safety s;
    uint8_t a_id[KN_HASH_BYTES];
    block(a_id, 0xa0);
    cons_state *c = start_core(&vs, 0, &acts);
    for (uint32_t r = 0; r < 3; r++) assert_int_not_equal(cons_proposer(&vs, 1, r), 0);

    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 0, 0xa0, 0);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 0, 1);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xa0, 2, &acts);
    assert_int_equal(acts.n, 2);
    expect_timeout(&acts.a[0], CONS_STEP_PREVOTE, 1, 0, 1000);
    expect_vote(&acts.a[1], CONS_PRECOMMIT, 1, 0, 0xa0, 0);
    cons_safety_get(c, &s);
    assert_int_equal(s.step, CONS_STEP_PRECOMMIT);
    assert_int_equal(s.locked_round, 0);
    assert_memory_equal(s.locked_block, a_id, KN_HASH_BYTES);
    assert_int_equal(s.valid_round, 0);

    /* Only its own precommit is for A: no commit, only the timeout. */
    feed_votes_silent(c, CONS_PRECOMMIT, 0, 0xa0, 0, 0);
    feed_votes_silent(c, CONS_PRECOMMIT, 0, 0, 2, 2);
    feed_vote(c, CONS_PRECOMMIT, 1, 0, 0, 3, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PRECOMMIT, 1, 0, 1000);
    cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, 0, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 1, 1500); /* grows with the round */

    feed_proposal(c, &vs, 1, -1, 0xb0, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 1, 0, 0); /* locked on A */
    feed_votes_silent(c, CONS_PRECOMMIT, 1, 0, 1, 2);
    feed_vote(c, CONS_PRECOMMIT, 1, 1, 0, 3, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PRECOMMIT, 1, 1, 1500);
    cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, 1, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 2, 2000);

    /* Prevotes for B in round 1 arrive late; the proof needs all three. */
    feed_votes_silent(c, CONS_PREVOTE, 1, 0xb0, 1, 2);
    feed_proposal(c, &vs, 2, 1, 0xb0, &acts);
    expect_none(&acts);
    feed_vote(c, CONS_PREVOTE, 1, 1, 0xb0, 3, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 2, 0xb0, 0);
    cons_safety_get(c, &s);
    assert_int_equal(s.locked_round, 0); /* the lock moves only with a precommit */
    cons_free(c);
}

/* Locked on A in round 0, a proposal of A in round 1 without proof still gets a
 * prevote for A; a pol_round proof for B older than the lock does not move it. */
static void lock_keeps_own_value(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_state *c = start_core(&vs, 0, &acts);
    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 1, 2);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xa0, 3, &acts);
    assert_int_equal(acts.n, 2);
    expect_vote(&acts.a[1], CONS_PRECOMMIT, 1, 0, 0xa0, 0);
    cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, 0, &acts);
    feed_proposal(c, &vs, 1, -1, 0xa0, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 1, 0xa0, 0);
    cons_free(c);
}

/* The proof of the valid value is the signed prevotes for it in the valid
 * round, and nothing else: not the nil prevote beside them. */
static void valid_proof_is_the_quorum(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_vote proof[CONS_VALIDATORS_MAX];
    uint8_t a_id[KN_HASH_BYTES];
    block(a_id, 0xa0);
    cons_state *c = start_core(&vs, 0, &acts);
    assert_int_equal(cons_valid_proof(c, proof), 0);
    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 0, 1);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0, 3, &acts); /* a quorum of prevotes, not for A */
    assert_int_equal(cons_valid_proof(c, proof), 0);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xa0, 2, &acts);
    assert_int_equal(cons_valid_proof(c, proof), 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(proof[i].validator, i);
        assert_int_equal(proof[i].type, CONS_PREVOTE);
        assert_memory_equal(proof[i].block_id, a_id, KN_HASH_BYTES);
        assert_int_equal(cons_vote_verify(&proof[i], &vs, CHAIN), 0);
    }
    cons_free(c);
}

/* After a stall long enough to push round 1 out of the window, a proposal that
 * cites round 1 as its proof of lock makes room for round 1's prevotes again:
 * without them the height could never end. */
static void cited_round_kept_after_long_stall(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    uint32_t r0 = 0;
    while (cons_proposer(&vs, 1, r0 + 20) == 0) r0++; /* core 0 must not propose */
    cons_state *c = start_core(&vs, 0, &acts);
    for (uint32_t r = 0; r < r0 + 20; r++) {
        feed_votes_silent(c, CONS_PRECOMMIT, r, 0, 1, 2);
        feed_vote(c, CONS_PRECOMMIT, 1, r, 0, 3, &acts);
        cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, r, &acts);
    }
    uint32_t r = r0 + 20;
    assert_int_equal(cons_round(c), r);
    feed_proposal(c, &vs, r, 1, 0xb0, &acts);
    expect_none(&acts); /* no proof yet */
    feed_votes_silent(c, CONS_PREVOTE, 1, 0xb0, 1, 2);
    feed_vote(c, CONS_PREVOTE, 1, 1, 0xb0, 3, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, r, 0xb0, 0);
    cons_free(c);
}

/* Field by field: struct padding is not part of a vote. */
static void expect_same_vote(const cons_vote *a, const cons_vote *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->round, b->round);
    assert_int_equal(a->nil, b->nil);
    assert_memory_equal(a->block_id, b->block_id, KN_HASH_BYTES);
    assert_int_equal(a->validator, b->validator);
    assert_memory_equal(a->sig, b->sig, KN_SIG_BYTES);
}

/* Two different prevotes from validator 1: evidence once; the second one counts
 * for its own block too (other nodes may have seen it first and relay it as a
 * proof of lock), and neither counts twice in "+2/3 of any kind". */
static void equivocation_evidence_once(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_state *c = start_core(&vs, 0, &acts);
    feed_proposal(c, &vs, 0, -1, 0xb0, &acts);
    assert_int_equal(acts.n, 1);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xb0, 0, 0);
    cons_vote first = vote(CONS_PREVOTE, 1, 0, 0xa0, 1);
    cons_vote second = vote(CONS_PREVOTE, 1, 0, 0xb0, 1);
    cons_on_vote(c, &first, &acts);
    expect_none(&acts);
    cons_on_vote(c, &second, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_EVIDENCE);
    expect_same_vote(&acts.a[0].u.evidence.a, &first);
    expect_same_vote(&acts.a[0].u.evidence.b, &second);
    cons_on_vote(c, &second, &acts); /* its second vote again */
    expect_none(&acts);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0, 1, &acts); /* a third, nil */
    expect_none(&acts);
    cons_on_vote(c, &first, &acts); /* an exact duplicate */
    expect_none(&acts);
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 0x3); /* 0 and 1, once each */
    /* B: 0, 1's second vote and 2, a quorum: the timeout, then the precommit. */
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xb0, 2, &acts);
    assert_int_equal(acts.n, 2);
    expect_timeout(&acts.a[0], CONS_STEP_PREVOTE, 1, 0, 1000);
    expect_vote(&acts.a[1], CONS_PRECOMMIT, 1, 0, 0xb0, 0);
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 0x7);
    cons_free(c);
}

/* Twins can make three different votes of one validator: the third one takes
 * the second's place only when it is for the block the round's proposal needs. */
static void third_vote_counts_for_the_proposal(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_state *c = start_core(&vs, 0, &acts);
    feed_proposal(c, &vs, 0, -1, 0xc0, &acts);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 0, 0xc0, 0);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xc0, 0, 0);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 1, 1);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xb0, 1, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_EVIDENCE); /* reported once */
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xd0, 1, &acts); /* not wanted: ignored */
    expect_none(&acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xc0, 1, 1); /* wanted: counts */
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xc0, 2, &acts);
    assert_int_equal(acts.n, 2);
    expect_timeout(&acts.a[0], CONS_STEP_PREVOTE, 1, 0, 1000);
    expect_vote(&acts.a[1], CONS_PRECOMMIT, 1, 0, 0xc0, 0);
    cons_free(c);
}

/* f+1 power in a later round pulls the core there. */
static void round_skip_on_one_third(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_state *c = start_core(&vs, 0, &acts);
    feed_vote(c, CONS_PREVOTE, 1, 5, 0, 1, &acts);
    expect_none(&acts);
    assert_int_equal(cons_round(c), 0);
    feed_vote(c, CONS_PRECOMMIT, 1, 5, 0, 2, &acts);
    assert_int_equal(cons_round(c), 5);
    assert_int_equal(cons_step(c), CONS_STEP_PROPOSE);
    assert_int_not_equal(cons_proposer(&vs, 1, 5), 0);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 5, 1000 + 5 * 500);
    assert_int_equal(cons_voted_mask(c, CONS_PREVOTE), 0x2);
    assert_int_equal(cons_voted_mask(c, CONS_PRECOMMIT), 0x4);
    cons_free(c);
}

/* A long stall: rounds far beyond the window still make progress, and a commit
 * in a late round still yields a certificate. */
static void long_stall_keeps_working(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_cert cert;
    cons_state *c = start_core(&vs, 0, &acts);
    for (uint32_t r = 0; r < 40; r++) {
        feed_votes_silent(c, CONS_PRECOMMIT, r, 0, 1, 2);
        feed_vote(c, CONS_PRECOMMIT, 1, r, 0, 3, &acts);
        assert_int_equal(acts.n, 1);
        expect_timeout(&acts.a[0], CONS_STEP_PRECOMMIT, 1, r, 1000 + r * 500);
        cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, r, &acts);
        assert_int_equal(cons_round(c), r + 1);
    }
    assert_int_equal(cons_commit_cert(c, &cert), KN_ENOTFOUND);
    feed_proposal(c, &vs, 40, -1, 0xc0, &acts);
    feed_votes_silent(c, CONS_PRECOMMIT, 40, 0xc0, 1, 2);
    feed_vote(c, CONS_PRECOMMIT, 1, 40, 0xc0, 3, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_COMMIT);
    assert_int_equal(acts.a[0].u.commit.round, 40);
    assert_int_equal(cons_commit_cert(c, &cert), 0);
    assert_int_equal(cert.n_sigs, 3);
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), 0);
    cons_free(c);
}

/* An observer follows and commits but never speaks. */
static void observer_never_votes(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_cert cert;
    uint8_t a_id[KN_HASH_BYTES];
    block(a_id, 0xd0);
    cons_state *c = start_core(&vs, CONS_NO_VALIDATOR, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 0, 1000);
    feed_proposal(c, &vs, 0, -1, 0xd0, &acts);
    expect_none(&acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xd0, 0, 1);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xd0, 2, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PREVOTE, 1, 0, 1000);
    feed_votes_silent(c, CONS_PRECOMMIT, 0, 0xd0, 1, 2);
    feed_vote(c, CONS_PRECOMMIT, 1, 0, 0xd0, 3, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_COMMIT);
    assert_int_equal(acts.a[0].u.commit.height, 1);
    assert_int_equal(acts.a[0].u.commit.round, 0);
    assert_memory_equal(acts.a[0].u.commit.block_id, a_id, KN_HASH_BYTES);
    assert_int_equal(cons_commit_cert(c, &cert), 0);
    assert_int_equal(cert.n_sigs, 3);
    assert_int_equal(cert.sigs[0].validator, 1);
    assert_int_equal(cert.sigs[2].validator, 3);
    assert_int_equal(cons_cert_verify(&cert, &vs, CHAIN), 0);
    /* Decided: later events are stored at most, never acted on. */
    cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, 0, &acts);
    expect_none(&acts);
    assert_int_equal(cons_round(c), 0);
    cons_free(c);
}

/* Restart at prevote: no second prevote in that round, a precommit still comes.
 * Restart at precommit: no second precommit; the lock survives. */
static void restore_never_revotes(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_safety s;
    cons_state *c = start_core(&vs, 0, &acts);
    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    assert_int_equal(acts.n, 1);
    cons_safety_get(c, &s);
    cons_free(c);
    assert_int_equal(s.height, 1);
    assert_int_equal(s.step, CONS_STEP_PREVOTE);

    c = cons_new(&vs, 0, &cfg);
    cons_restore(c, &s);
    cons_start_height(c, 1, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PREVOTE, 1, 0, 1000);
    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    expect_none(&acts);
    cons_on_timeout(c, CONS_STEP_PROPOSE, 1, 0, &acts);
    expect_none(&acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 1, 2);
    feed_vote(c, CONS_PREVOTE, 1, 0, 0xa0, 3, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PRECOMMIT, 1, 0, 0xa0, 0);
    cons_safety_get(c, &s);
    cons_free(c);
    assert_int_equal(s.step, CONS_STEP_PRECOMMIT);

    c = cons_new(&vs, 0, &cfg);
    cons_restore(c, &s);
    cons_start_height(c, 1, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PRECOMMIT, 1, 0, 1000);
    feed_proposal(c, &vs, 0, -1, 0xa0, &acts);
    expect_none(&acts);
    feed_votes_silent(c, CONS_PREVOTE, 0, 0xa0, 1, 3);
    cons_on_timeout(c, CONS_STEP_PREVOTE, 1, 0, &acts);
    expect_none(&acts);
    cons_on_timeout(c, CONS_STEP_PRECOMMIT, 1, 0, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 1, 1500);
    feed_proposal(c, &vs, 1, -1, 0xb0, &acts);
    assert_int_equal(acts.n, 1);
    expect_vote(&acts.a[0], CONS_PREVOTE, 1, 1, 0, 0); /* still locked on A */
    cons_free(c);

    /* Restored state of an older height: the next height starts afresh. */
    c = cons_new(&vs, 0, &cfg);
    cons_restore(c, &s);
    cons_start_height(c, 2, &acts);
    assert_int_equal(cons_round(c), 0);
    cons_safety_get(c, &s);
    assert_int_equal(s.height, 2);
    assert_int_equal(s.locked_round, -1);
    cons_free(c);
}

/* A restarted proposer at step propose re-sends only its valid value. */
static void restore_proposer_stays_silent(void **state)
{
    cons_valset vs = equal4();
    cons_actions acts;
    cons_safety s = {.height = 1, .round = 0, .step = CONS_STEP_PROPOSE,
                     .locked_round = -1, .valid_round = -1};
    uint32_t self = cons_proposer(&vs, 1, 0);
    cons_state *c = cons_new(&vs, self, &cfg);
    cons_restore(c, &s);
    cons_start_height(c, 1, &acts);
    assert_int_equal(acts.n, 1);
    expect_timeout(&acts.a[0], CONS_STEP_PROPOSE, 1, 0, 1000);
    cons_free(c);

    s.round = 2;
    s.valid_round = 1;
    block(s.valid_block, 0xe0);
    self = cons_proposer(&vs, 1, 2);
    c = cons_new(&vs, self, &cfg);
    cons_restore(c, &s);
    cons_start_height(c, 1, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, CONS_ACT_BROADCAST_PROPOSAL);
    assert_int_equal(acts.a[0].u.proposal.round, 2);
    assert_int_equal(acts.a[0].u.proposal.pol_round, 1);
    assert_memory_equal(acts.a[0].u.proposal.block_id, s.valid_block, KN_HASH_BYTES);
    cons_free(c);
}

/* ---------------------------------------------------------------- a small network */

#define QUEUE_MAX 4096
#define TIMERS_MAX 1024
#define HEIGHTS_MAX 8
#define EVENTS_MAX 100000

typedef struct sim_msg {
    uint32_t to;
    bool is_vote;
    cons_vote vote;
    cons_proposal proposal;
} sim_msg;

typedef struct sim_timer {
    bool live;
    uint32_t node;
    uint8_t step;
    uint64_t height;
    uint32_t round;
    uint64_t at_ms;
} sim_timer;

typedef struct sim {
    cons_valset vs;
    cons_state *c[NV];
    sim_msg q[QUEUE_MAX];
    size_t head, tail;
    sim_timer timers[TIMERS_MAX];
    uint64_t now_ms;
    uint32_t mute;    /* proposals of this node are lost */
    uint64_t target;  /* last height to commit */
    uint64_t committed[NV];
    uint32_t commit_round[NV][HEIGHTS_MAX + 1];
    uint8_t commit_block[NV][HEIGHTS_MAX + 1][KN_HASH_BYTES];
    unsigned timeouts_fired;
} sim;

static void value_for(uint8_t id[KN_HASH_BYTES], uint64_t h, uint32_t r, uint32_t node)
{
    memset(id, 0, KN_HASH_BYTES);
    id[0] = (uint8_t)h;
    id[1] = (uint8_t)r;
    id[2] = (uint8_t)(node + 1);
}

static void sim_send(sim *s, const cons_vote *v, const cons_proposal *p)
{
    for (uint32_t to = 0; to < NV; to++) {
        assert_true(s->tail - s->head < QUEUE_MAX);
        sim_msg *m = &s->q[s->tail++ % QUEUE_MAX];
        m->to = to;
        m->is_vote = v != NULL;
        if (v) m->vote = *v;
        if (p) m->proposal = *p;
    }
}

static void sim_timer_add(sim *s, uint32_t node, const cons_action *a)
{
    for (size_t i = 0; i < TIMERS_MAX; i++) {
        sim_timer *t = &s->timers[i];
        if (t->live) continue;
        *t = (sim_timer){true, node, a->u.timeout.step, a->u.timeout.height, a->u.timeout.round,
                         s->now_ms + a->u.timeout.duration_ms};
        return;
    }
    fail_msg("timer table full");
}

static void sim_handle(sim *s, uint32_t node, const cons_actions *acts);

static void sim_commit(sim *s, uint32_t node, const cons_action *a)
{
    uint64_t h = a->u.commit.height;
    cons_cert cert;
    cons_actions next;
    assert_int_equal(h, s->committed[node] + 1);
    assert_true(h <= HEIGHTS_MAX);
    s->committed[node] = h;
    s->commit_round[node][h] = a->u.commit.round;
    memcpy(s->commit_block[node][h], a->u.commit.block_id, KN_HASH_BYTES);
    assert_int_equal(cons_commit_cert(s->c[node], &cert), 0);
    assert_int_equal(cons_cert_verify(&cert, &s->vs, CHAIN), 0);
    assert_memory_equal(cert.block_id, a->u.commit.block_id, KN_HASH_BYTES);
    if (h >= s->target) return;
    cons_start_height(s->c[node], h + 1, &next);
    sim_handle(s, node, &next);
}

static void sim_handle(sim *s, uint32_t node, const cons_actions *acts)
{
    for (uint32_t i = 0; i < acts->n; i++) {
        const cons_action *a = &acts->a[i];
        cons_actions next;
        cons_vote v;
        cons_proposal p;
        uint8_t id[KN_HASH_BYTES];
        switch (a->kind) {
        case CONS_ACT_BROADCAST_PROPOSAL:
            p = a->u.proposal;
            assert_int_equal(p.proposer, node);
            cons_proposal_sign(&p, &keys[node], CHAIN);
            if (node != s->mute) sim_send(s, NULL, &p);
            break;
        case CONS_ACT_BROADCAST_VOTE:
            v = a->u.vote;
            assert_int_equal(v.validator, node);
            cons_vote_sign(&v, &keys[node], CHAIN);
            sim_send(s, &v, NULL);
            break;
        case CONS_ACT_SCHEDULE_TIMEOUT: sim_timer_add(s, node, a); break;
        case CONS_ACT_NEED_VALUE:
            value_for(id, a->u.need_value.height, a->u.need_value.round, node);
            cons_on_value(s->c[node], a->u.need_value.height, a->u.need_value.round, id, &next);
            sim_handle(s, node, &next);
            break;
        case CONS_ACT_COMMIT: sim_commit(s, node, a); break;
        default: fail_msg("unexpected action %d", a->kind);
        }
    }
}

static bool sim_done(const sim *s)
{
    for (uint32_t i = 0; i < NV; i++)
        if (s->committed[i] < s->target) return false;
    return true;
}

/* Delivers every queued message (checking signatures like a driver), and only
 * when the network is quiet fires the earliest timer. */
static void sim_step(sim *s)
{
    cons_actions acts;
    if (s->head != s->tail) {
        sim_msg m = s->q[s->head++ % QUEUE_MAX];
        if (m.is_vote) {
            assert_int_equal(cons_vote_verify(&m.vote, &s->vs, CHAIN), 0);
            cons_on_vote(s->c[m.to], &m.vote, &acts);
        } else {
            assert_int_equal(cons_proposal_verify(&m.proposal, &s->vs, CHAIN), 0);
            cons_on_proposal(s->c[m.to], &m.proposal, true, &acts);
        }
        sim_handle(s, m.to, &acts);
        return;
    }
    sim_timer *next = NULL;
    for (size_t i = 0; i < TIMERS_MAX; i++)
        if (s->timers[i].live && (!next || s->timers[i].at_ms < next->at_ms)) next = &s->timers[i];
    assert_non_null(next);
    next->live = false;
    s->now_ms = next->at_ms;
    s->timeouts_fired++;
    cons_on_timeout(s->c[next->node], next->step, next->height, next->round, &acts);
    sim_handle(s, next->node, &acts);
}

static void sim_run(sim *s, uint64_t target, uint32_t mute)
{
    memset(s, 0, sizeof *s);
    s->vs = equal4();
    s->target = target;
    s->mute = mute;
    for (uint32_t i = 0; i < NV; i++) {
        s->c[i] = cons_new(&s->vs, i, &cfg);
        assert_non_null(s->c[i]);
    }
    for (uint32_t i = 0; i < NV; i++) {
        cons_actions acts;
        cons_start_height(s->c[i], 1, &acts);
        sim_handle(s, i, &acts);
    }
    for (int events = 0; !sim_done(s); events++) {
        assert_true(events < EVENTS_MAX);
        sim_step(s);
    }
    for (uint32_t i = 0; i < NV; i++) cons_free(s->c[i]);
}

static void network_commits_in_round0(void **state)
{
    static sim s;
    sim_run(&s, 5, CONS_NO_VALIDATOR);
    assert_int_equal(s.timeouts_fired, 0);
    for (uint64_t h = 1; h <= 5; h++) {
        uint8_t want[KN_HASH_BYTES];
        value_for(want, h, 0, cons_proposer(&s.vs, h, 0));
        for (uint32_t i = 0; i < NV; i++) {
            assert_int_equal(s.commit_round[i][h], 0);
            assert_memory_equal(s.commit_block[i][h], want, KN_HASH_BYTES);
        }
    }
}

static void network_silent_proposer(void **state)
{
    static sim s;
    cons_valset vs = equal4();
    uint32_t mute = cons_proposer(&vs, 1, 0);
    uint32_t next = cons_proposer(&vs, 1, 1);
    assert_int_not_equal(mute, next);
    sim_run(&s, 2, mute);
    assert_true(s.timeouts_fired >= 2);
    uint8_t want[KN_HASH_BYTES];
    value_for(want, 1, 1, next);
    for (uint32_t i = 0; i < NV; i++) {
        assert_int_equal(s.commit_round[i][1], 1);
        assert_memory_equal(s.commit_block[i][1], want, KN_HASH_BYTES);
        assert_int_equal(s.committed[i], 2);
    }
}

/* Found by fuzzing: a pol_round above INT32_MAX once passed the "earlier
 * round" check (with a round above it) and wrapped to a negative int32. */
static void proposal_pol_round_must_fit_int32(void **state)
{
    kn_buf b = {0};
    uint8_t block_id[KN_HASH_BYTES] = {0x3c}, sig[KN_SIG_BYTES] = {0};
    kn_w_array(&b, 6);
    kn_w_uint(&b, 16);
    kn_w_uint(&b, 2147483649u);
    kn_w_int(&b, 2147483648);
    kn_w_bin(&b, block_id, sizeof block_id);
    kn_w_uint(&b, 0);
    kn_w_bin(&b, sig, sizeof sig);
    kn_cur c = kn_cur_make(b.data, b.len);
    cons_proposal p;
    assert_int_equal(cons_proposal_decode(&c, &p), KN_EDECODE);
    assert_int_equal(c.left, b.len);
    kn_buf_free(&b);
}

int main(void)
{
    if (kn_crypto_init()) return 1;
    make_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vote_roundtrip),
        cmocka_unit_test(proposal_roundtrip),
        cmocka_unit_test(proposal_pol_round_must_fit_int32),
        cmocka_unit_test(truncations_rejected),
        cmocka_unit_test(malformed_votes_rejected),
        cmocka_unit_test(malformed_proposals_rejected),
        cmocka_unit_test(cert_roundtrip_and_order),
        cmocka_unit_test(vote_signature_binds_everything),
        cmocka_unit_test(proposal_signature_binds_everything),
        cmocka_unit_test(proposer_rotation),
        cmocka_unit_test(schedule_capped),
        cmocka_unit_test(valset_rejects_bad_sets),
        cmocka_unit_test(quorum_by_power),
        cmocka_unit_test(cert_verify_rules),
        cmocka_unit_test(proposer_needs_value),
        cmocka_unit_test(ignores_foreign_messages),
        cmocka_unit_test(lock_and_unlock),
        cmocka_unit_test(lock_keeps_own_value),
        cmocka_unit_test(valid_proof_is_the_quorum),
        cmocka_unit_test(cited_round_kept_after_long_stall),
        cmocka_unit_test(equivocation_evidence_once),
        cmocka_unit_test(third_vote_counts_for_the_proposal),
        cmocka_unit_test(round_skip_on_one_third),
        cmocka_unit_test(long_stall_keeps_working),
        cmocka_unit_test(observer_never_votes),
        cmocka_unit_test(restore_never_revotes),
        cmocka_unit_test(restore_proposer_stays_silent),
        cmocka_unit_test(network_commits_in_round0),
        cmocka_unit_test(network_silent_proposer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
