/*
 * fuzz_cert: cons_cert_decode over arbitrary bytes, read as a stream of
 * commit certificates.
 *
 * Properties:
 *  - a refusal is KN_EDECODE, KN_ENONCANON or KN_ETOOBIG and leaves both the
 *    cursor and the output certificate untouched;
 *  - a decoded certificate holds at most CONS_VALIDATORS_MAX signatures in
 *    strictly increasing validator order, and cons_cert_encode gives back
 *    exactly the bytes the decoder consumed.
 */
#include <string.h>

#include "consensus/consensus.h"
#include "tests/fuzz/fuzz.h"

#define POISON 0x3c

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cons_cert cert, poisoned;
    fuzz_init();
    kn_cur c = kn_cur_make(data, size);
    kn_buf b = {0};
    for (;;) {
        memset(&cert, POISON, sizeof cert);
        memcpy(&poisoned, &cert, sizeof cert);
        kn_cur before = c;
        int rc = cons_cert_decode(&c, &cert);
        if (rc) {
            FUZZ_CHECK(rc == KN_EDECODE || rc == KN_ENONCANON || rc == KN_ETOOBIG);
            FUZZ_CHECK(c.p == before.p && c.left == before.left);
            FUZZ_CHECK(memcmp(&cert, &poisoned, sizeof cert) == 0);
            break;
        }
        FUZZ_CHECK(c.left < before.left && c.p == before.p + (before.left - c.left));
        FUZZ_CHECK(cert.n_sigs <= CONS_VALIDATORS_MAX);
        for (uint32_t i = 1; i < cert.n_sigs; i++)
            FUZZ_CHECK(cert.sigs[i - 1].validator < cert.sigs[i].validator);
        size_t n = before.left - c.left;
        kn_buf_reset(&b);
        cons_cert_encode(&cert, &b);
        FUZZ_CHECK(b.len == n && memcmp(b.data, before.p, n) == 0);
    }
    kn_buf_free(&b);
    return 0;
}

void fuzz_target_seeds(fuzz_seed_cb add, void *ctx)
{
    fuzz_seed_each(fuzz_seed_cert, add, ctx);
}
