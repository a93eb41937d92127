/*
 * fuzz_proposal: cons_proposal_decode over arbitrary bytes, read as a stream
 * of proposals.
 *
 * Properties:
 *  - a refusal is KN_EDECODE or KN_ENONCANON and leaves both the cursor and
 *    the output proposal untouched;
 *  - a decoded proposal's proof-of-lock round is -1 or an earlier round, and
 *    cons_proposal_encode gives back exactly the bytes the decoder consumed.
 */
#include <string.h>

#include "consensus/consensus.h"
#include "tests/fuzz/fuzz.h"

#define POISON 0x5a

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    kn_cur c = kn_cur_make(data, size);
    kn_buf b = {0};
    for (;;) {
        cons_proposal p, poisoned;
        memset(&p, POISON, sizeof p);
        memcpy(&poisoned, &p, sizeof p);
        kn_cur before = c;
        int rc = cons_proposal_decode(&c, &p);
        if (rc) {
            FUZZ_CHECK(rc == KN_EDECODE || rc == KN_ENONCANON);
            FUZZ_CHECK(c.p == before.p && c.left == before.left);
            FUZZ_CHECK(memcmp(&p, &poisoned, sizeof p) == 0);
            break;
        }
        FUZZ_CHECK(c.left < before.left && c.p == before.p + (before.left - c.left));
        FUZZ_CHECK(p.pol_round >= -1 && (int64_t)p.pol_round < (int64_t)p.round);
        size_t n = before.left - c.left;
        kn_buf_reset(&b);
        cons_proposal_encode(&p, &b);
        FUZZ_CHECK(b.len == n && memcmp(b.data, before.p, n) == 0);
    }
    kn_buf_free(&b);
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_each(fuzz_seed_proposal, add, ctx);
}
