/*
 * codec.c: the canonical bytes of votes, proposals and commit certificates (what
 * is signed and what goes on the wire), their strict decoders, and signing and
 * verification. Decoders read through kn_r_* only, so every accepted message has
 * exactly one byte form; on any error the cursor is left where it was and the
 * output is untouched.
 */
#include "consensus/consensus.h"

#include <string.h>

#define VOTE_SIGNED_FIELDS 4
#define VOTE_WIRE_FIELDS 6
#define PROPOSAL_SIGNED_FIELDS 4
#define PROPOSAL_WIRE_FIELDS 6
#define CERT_FIELDS 4
#define CERT_SIG_FIELDS 2

/* ---------------------------------------------------------------- readers */

static int read_array_len(kn_cur *c, uint32_t want)
{
    uint32_t n;
    int rc = kn_r_array(c, &n);
    if (rc) return rc;
    return n == want ? 0 : KN_EDECODE;
}

static int read_u32(kn_cur *c, uint32_t *out)
{
    uint64_t v;
    int rc = kn_r_uint(c, &v);
    if (rc) return rc;
    if (v > UINT32_MAX) return KN_EDECODE;
    *out = (uint32_t)v;
    return 0;
}

/* ---------------------------------------------------------------- votes */

static bool vote_type_known(uint8_t type)
{
    return type == CONS_PREVOTE || type == CONS_PRECOMMIT;
}

static void write_vote_fields(const cons_vote *v, kn_buf *b)
{
    kn_w_uint(b, v->type);
    kn_w_uint(b, v->height);
    kn_w_uint(b, v->round);
    if (v->nil) kn_w_nil(b);
    else kn_w_bin(b, v->block_id, KN_HASH_BYTES);
}

void cons_vote_sign_bytes(const cons_vote *v, kn_buf *b)
{
    kn_w_array(b, VOTE_SIGNED_FIELDS);
    write_vote_fields(v, b);
}

void cons_vote_encode(const cons_vote *v, kn_buf *b)
{
    kn_w_array(b, VOTE_WIRE_FIELDS);
    write_vote_fields(v, b);
    kn_w_uint(b, v->validator);
    kn_w_bin(b, v->sig, KN_SIG_BYTES);
}

static int read_vote(kn_cur *c, cons_vote *v)
{
    uint64_t type;
    int rc = read_array_len(c, VOTE_WIRE_FIELDS);
    if (!rc) rc = kn_r_uint(c, &type);
    if (rc) return rc;
    if (type > UINT8_MAX || !vote_type_known((uint8_t)type)) return KN_EDECODE;
    v->type = (uint8_t)type;
    if ((rc = kn_r_uint(c, &v->height)) || (rc = read_u32(c, &v->round))) return rc;
    v->nil = kn_r_nil(c);
    if (!v->nil && (rc = kn_r_bin_fixed(c, v->block_id, KN_HASH_BYTES))) return rc;
    if ((rc = read_u32(c, &v->validator))) return rc;
    return kn_r_bin_fixed(c, v->sig, KN_SIG_BYTES);
}

int cons_vote_decode(kn_cur *c, cons_vote *v)
{
    kn_cur save = *c;
    cons_vote tmp = {0};
    int rc = read_vote(c, &tmp);
    if (rc) {
        *c = save;
        return rc;
    }
    *v = tmp;
    return 0;
}

void cons_vote_sign(cons_vote *v, const kn_keypair *kp, const char *chain_id)
{
    kn_buf b = {0};
    cons_vote_sign_bytes(v, &b);
    kn_sign(v->sig, kp, KN_DOMAIN_VOTE, chain_id, b.data, b.len);
    kn_buf_free(&b);
}

int cons_vote_verify(const cons_vote *v, const cons_valset *vs, const char *chain_id)
{
    if (!vote_type_known(v->type) || v->validator >= vs->n) return KN_EINVAL;
    kn_buf b = {0};
    cons_vote_sign_bytes(v, &b);
    int rc = kn_verify(v->sig, vs->v[v->validator].pk, KN_DOMAIN_VOTE, chain_id, b.data, b.len);
    kn_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- proposals */

static void write_proposal_fields(const cons_proposal *p, kn_buf *b)
{
    kn_w_uint(b, p->height);
    kn_w_uint(b, p->round);
    kn_w_int(b, p->pol_round);
    kn_w_bin(b, p->block_id, KN_HASH_BYTES);
}

void cons_proposal_sign_bytes(const cons_proposal *p, kn_buf *b)
{
    kn_w_array(b, PROPOSAL_SIGNED_FIELDS);
    write_proposal_fields(p, b);
}

void cons_proposal_encode(const cons_proposal *p, kn_buf *b)
{
    kn_w_array(b, PROPOSAL_WIRE_FIELDS);
    write_proposal_fields(p, b);
    kn_w_uint(b, p->proposer);
    kn_w_bin(b, p->sig, KN_SIG_BYTES);
}

static int read_proposal(kn_cur *c, cons_proposal *p)
{
    int64_t pol;
    int rc = read_array_len(c, PROPOSAL_WIRE_FIELDS);
    if (!rc) rc = kn_r_uint(c, &p->height);
    if (!rc) rc = read_u32(c, &p->round);
    if (!rc) rc = kn_r_int(c, &pol);
    if (rc) return rc;
    /* A proof-of-lock round is -1 or an earlier round of the same height, and
     * must fit the int32 it is kept in. */
    if (pol < -1 || pol >= (int64_t)p->round || pol > INT32_MAX) return KN_EDECODE;
    p->pol_round = (int32_t)pol;
    if ((rc = kn_r_bin_fixed(c, p->block_id, KN_HASH_BYTES))) return rc;
    if ((rc = read_u32(c, &p->proposer))) return rc;
    return kn_r_bin_fixed(c, p->sig, KN_SIG_BYTES);
}

int cons_proposal_decode(kn_cur *c, cons_proposal *p)
{
    kn_cur save = *c;
    cons_proposal tmp = {0};
    int rc = read_proposal(c, &tmp);
    if (rc) {
        *c = save;
        return rc;
    }
    *p = tmp;
    return 0;
}

void cons_proposal_sign(cons_proposal *p, const kn_keypair *kp, const char *chain_id)
{
    kn_buf b = {0};
    cons_proposal_sign_bytes(p, &b);
    kn_sign(p->sig, kp, KN_DOMAIN_PROPOSAL, chain_id, b.data, b.len);
    kn_buf_free(&b);
}

int cons_proposal_verify(const cons_proposal *p, const cons_valset *vs, const char *chain_id)
{
    if (p->proposer >= vs->n) return KN_EINVAL;
    kn_buf b = {0};
    cons_proposal_sign_bytes(p, &b);
    int rc = kn_verify(p->sig, vs->v[p->proposer].pk, KN_DOMAIN_PROPOSAL, chain_id, b.data,
                       b.len);
    kn_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- certificates */

void cons_cert_encode(const cons_cert *cert, kn_buf *b)
{
    KN_REQUIRE(cert->n_sigs <= CONS_VALIDATORS_MAX);
    kn_w_array(b, CERT_FIELDS);
    kn_w_uint(b, cert->height);
    kn_w_uint(b, cert->round);
    kn_w_bin(b, cert->block_id, KN_HASH_BYTES);
    kn_w_array(b, cert->n_sigs);
    for (uint32_t i = 0; i < cert->n_sigs; i++) {
        kn_w_array(b, CERT_SIG_FIELDS);
        kn_w_uint(b, cert->sigs[i].validator);
        kn_w_bin(b, cert->sigs[i].sig, KN_SIG_BYTES);
    }
}

/* Strictly increasing validator order is part of the canonical form: it makes
 * the encoding unique and a repeated signer impossible to express. */
static int read_cert_sigs(kn_cur *c, cons_cert *cert)
{
    int rc = kn_r_array(c, &cert->n_sigs);
    if (rc) return rc;
    if (cert->n_sigs > CONS_VALIDATORS_MAX) return KN_ETOOBIG;
    for (uint32_t i = 0; i < cert->n_sigs; i++) {
        cons_cert_sig *s = &cert->sigs[i];
        if ((rc = read_array_len(c, CERT_SIG_FIELDS)) || (rc = read_u32(c, &s->validator)) ||
            (rc = kn_r_bin_fixed(c, s->sig, KN_SIG_BYTES)))
            return rc;
        if (i > 0 && s->validator <= cert->sigs[i - 1].validator) return KN_EDECODE;
    }
    return 0;
}

int cons_cert_decode(kn_cur *c, cons_cert *cert)
{
    kn_cur save = *c;
    cons_cert tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = read_array_len(c, CERT_FIELDS);
    if (!rc) rc = kn_r_uint(c, &tmp.height);
    if (!rc) rc = read_u32(c, &tmp.round);
    if (!rc) rc = kn_r_bin_fixed(c, tmp.block_id, KN_HASH_BYTES);
    if (!rc) rc = read_cert_sigs(c, &tmp);
    if (rc) {
        *c = save;
        return rc;
    }
    *cert = tmp;
    return 0;
}

/* Order, membership and power are checked before any signature so that a
 * certificate that cannot be a quorum costs no Ed25519 verification. */
static bool cert_signers_quorum(const cons_cert *cert, const cons_valset *vs)
{
    uint64_t power = 0;
    if (cert->n_sigs > CONS_VALIDATORS_MAX) return false;
    for (uint32_t i = 0; i < cert->n_sigs; i++) {
        uint32_t v = cert->sigs[i].validator;
        if (v >= vs->n || (i > 0 && v <= cert->sigs[i - 1].validator)) return false;
        power += vs->v[v].power; /* distinct members: cannot exceed total_power */
    }
    return cons_quorum(vs, power);
}

int cons_cert_verify(const cons_cert *cert, const cons_valset *vs, const char *chain_id)
{
    if (!cert_signers_quorum(cert, vs)) return KN_EBADCERT;
    cons_vote precommit = {.type = CONS_PRECOMMIT, .height = cert->height, .round = cert->round};
    memcpy(precommit.block_id, cert->block_id, KN_HASH_BYTES);
    kn_buf b = {0};
    cons_vote_sign_bytes(&precommit, &b);
    int rc = 0;
    for (uint32_t i = 0; i < cert->n_sigs && !rc; i++) {
        const cons_cert_sig *s = &cert->sigs[i];
        if (kn_verify(s->sig, vs->v[s->validator].pk, KN_DOMAIN_VOTE, chain_id, b.data, b.len))
            rc = KN_EBADCERT;
    }
    kn_buf_free(&b);
    return rc;
}
