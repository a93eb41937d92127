/*
 * fuzz: what every fuzz target under tests/fuzz/ shares.
 *
 * Each target is one file with LLVMFuzzerTestOneInput() that feeds arbitrary
 * bytes to one decoder and checks its properties (no crash, cursor and output
 * untouched on error, and decode-then-encode gives back exactly the bytes that
 * were consumed). A broken property calls FUZZ_CHECK, which aborts, so libFuzzer
 * or the replay driver records the input.
 *
 * Each target also lists its seeds: valid encodings built with the real
 * encoders and deterministic keys. The replay driver (standalone.c) mutates
 * them for `make test`; with --write-corpus it writes them out as the starting
 * corpus for `make fuzz`.
 */
#ifndef KOINON_FUZZ_H
#define KOINON_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* The entry point libFuzzer calls (and the replay driver). Always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property: print where and what, then abort. */
#define FUZZ_CHECK(cond)                                                          \
    do {                                                                          \
        if (!(cond)) fuzz__fail(__FILE__, __LINE__, #cond);                        \
    } while (0)
_Noreturn void fuzz__fail(const char *file, int line, const char *what);

/* Initialises libsodium once; every target calls it first. */
void fuzz_init(void);

/* Seeds: a target hands each of its seed inputs to add (which copies it). */
typedef void (*fuzz_seed_cb)(void *ctx, const uint8_t *p, size_t n);
void fuzz_target_seeds(fuzz_seed_cb add, void *ctx);

/* Seed encodings built with the real encoders, appended to b. Each builder
 * has a few variants (0, 1, ...) that take different encoding forms; they
 * return false once variant is past the last one. Deterministic: fixed keys,
 * fixed contents, Ed25519 signatures. */
bool fuzz_seed_tx(kn_buf *b, int variant);
bool fuzz_seed_block(kn_buf *b, int variant);
bool fuzz_seed_vote(kn_buf *b, int variant);
bool fuzz_seed_proposal(kn_buf *b, int variant);
bool fuzz_seed_cert(kn_buf *b, int variant);
/* Loose msgpack values covering every type and every length form. */
bool fuzz_seed_values(kn_buf *b, int variant);

/* Calls add for every variant of one seed builder above. */
void fuzz_seed_each(bool (*build)(kn_buf *b, int variant), fuzz_seed_cb add, void *ctx);
/* Calls add for every variant of every seed builder above. */
void fuzz_seed_all_encodings(fuzz_seed_cb add, void *ctx);

#define FUZZ_CHAIN_ID "koinon-fuzz"

#endif
