/*
 * fuzz_vote: cons_vote_decode over arbitrary bytes, read as a stream of votes.
 *
 * Properties:
 *  - a refusal is KN_EDECODE or KN_ENONCANON and leaves both the cursor and
 *    the output vote untouched (codec.c promises both);
 *  - a decoded vote has a known type, a nil vote has an all-zero block id, and
 *    cons_vote_encode gives back exactly the bytes the decoder consumed.
 */
#include <string.h>

#include "consensus/consensus.h"
#include "tests/fuzz/fuzz.h"

#define POISON 0xa5

static const uint8_t zero_id[KN_HASH_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    kn_cur c = kn_cur_make(data, size);
    kn_buf b = {0};
    for (;;) {
        cons_vote v, poisoned;
        memset(&v, POISON, sizeof v);
        memcpy(&poisoned, &v, sizeof v);
        kn_cur before = c;
        int rc = cons_vote_decode(&c, &v);
        if (rc) {
            FUZZ_CHECK(rc == KN_EDECODE || rc == KN_ENONCANON);
            FUZZ_CHECK(c.p == before.p && c.left == before.left);
            FUZZ_CHECK(memcmp(&v, &poisoned, sizeof v) == 0);
            break;
        }
        FUZZ_CHECK(c.left < before.left && c.p == before.p + (before.left - c.left));
        FUZZ_CHECK(v.type == CONS_PREVOTE || v.type == CONS_PRECOMMIT);
        if (v.nil) FUZZ_CHECK(memcmp(v.block_id, zero_id, KN_HASH_BYTES) == 0);
        size_t n = before.left - c.left;
        kn_buf_reset(&b);
        cons_vote_encode(&v, &b);
        FUZZ_CHECK(b.len == n && memcmp(b.data, before.p, n) == 0);
    }
    kn_buf_free(&b);
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_each(fuzz_seed_vote, add, ctx);
    /* Two votes back to back: the decoder must stop at the first one's end. */
    kn_buf b = {0};
    KN_REQUIRE(fuzz_seed_vote(&b, 0) && fuzz_seed_vote(&b, 1));
    add(ctx, b.data, b.len);
    kn_buf_free(&b);
}
