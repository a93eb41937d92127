/*
 * standalone.c: runs a fuzz target without libFuzzer, for `make test`.
 *
 *   fuzz_<target> [--runs N] [--seed S]     replay N deterministic inputs
 *   fuzz_<target> FILE...                   run the target on each file
 *   fuzz_<target> --write-corpus DIR        write the target's seeds to DIR
 *
 * The inputs are the target's seeds as they are, pure random bytes, and
 * (mostly) seeds put through a few random mutations: bit flips, interesting
 * bytes, insertions, deletions, truncation, duplicated or spliced chunks. A
 * seed reproduces a run exactly. On a crash the signal handler prints the run
 * number and the input in hex before the process dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

#define RUNS_DEFAULT 20000
#define SEEDS_MAX 64
#define INPUT_BYTES_MAX 8192
#define RANDOM_BYTES_MAX 512
#define MUTATIONS_MAX 4
#define FILE_BYTES_MAX (1u << 20)

typedef struct seed_set {
    uint32_t n;
    kn_buf seeds[SEEDS_MAX];
} seed_set;

static void add_seed(void *ctx, const uint8_t *p, size_t n)
{
    seed_set *s = ctx;
    KN_REQUIRE(s->n < SEEDS_MAX);
    kn_buf *b = &s->seeds[s->n++];
    memset(b, 0, sizeof *b);
    kn_buf_append(b, p, n);
}

/* ---------------------------------------------------------------- crash report */

static const uint8_t *current_input;
static size_t current_len;
static uint64_t current_run;

static void write_str(const char *s)
{
    ssize_t rc = write(STDERR_FILENO, s, strlen(s));
    (void)rc;
}

static void on_crash(int sig)
{
    static const char digits[] = "0123456789abcdef";
    char num[24];
    int at = (int)sizeof num - 1;
    num[at] = '\0';
    uint64_t r = current_run;
    do {
        num[--at] = (char)('0' + r % 10);
        r /= 10;
    } while (r && at > 0);
    write_str("fuzz: crash in run ");
    write_str(num + at);
    write_str(", input (hex): ");
    for (size_t i = 0; current_input && i < current_len; i++) {
        char hex[2] = {digits[current_input[i] >> 4], digits[current_input[i] & 15]};
        ssize_t rc = write(STDERR_FILENO, hex, 2);
        (void)rc;
    }
    write_str("\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run_one(const uint8_t *p, size_t n, uint64_t run)
{
    current_input = p;
    current_len = n;
    current_run = run;
    (void)LLVMFuzzerTestOneInput(p, n);
    current_input = NULL;
}

/* ---------------------------------------------------------------- mutations */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: fine for test inputs, and one 64-bit seed reproduces a run. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng_next() % n) : 0;
}

/* Bytes that sit on the reader's boundaries: fix/8/16/32-bit tags and the
 * values just around each width limit. */
static const uint8_t interesting[] = {0x00, 0x01, 0x1f, 0x20, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                      0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6,
                                      0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd9,
                                      0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

static void mutate_once(kn_buf *in, const seed_set *s)
{
    size_t len = in->len;
    size_t at = rng_below(len + 1);
    switch (rng_below(7)) {
    case 0:
        if (len) in->data[rng_below(len)] ^= (uint8_t)(1u << rng_below(8));
        break;
    case 1:
        if (len) in->data[rng_below(len)] = interesting[rng_below(sizeof interesting)];
        break;
    case 2: /* insert a byte */
        if (len < INPUT_BYTES_MAX) {
            kn_buf_reserve(in, 1);
            memmove(in->data + at + 1, in->data + at, len - at);
            in->data[at] = (uint8_t)rng_next();
            in->len++;
        }
        break;
    case 3: { /* delete a run */
        size_t n = rng_below(len - at + 1);
        if (n > 16) n = 1 + n % 16;
        memmove(in->data + at, in->data + at + n, len - at - n);
        in->len -= n;
        break;
    }
    case 4: in->len = at; break;
    case 5: { /* duplicate a chunk of the input at another place */
        uint8_t chunk[32];
        size_t from = rng_below(len), n = 1 + rng_below(sizeof chunk);
        if (!len || len + n > INPUT_BYTES_MAX || from + n > len) break;
        memcpy(chunk, in->data + from, n);
        kn_buf_reserve(in, n);
        memmove(in->data + at + n, in->data + at, len - at);
        memcpy(in->data + at, chunk, n);
        in->len += n;
        break;
    }
    default: { /* splice: a chunk of another seed over this one */
        const kn_buf *o = &s->seeds[rng_below(s->n)];
        if (!o->len) break;
        size_t from = rng_below(o->len), n = 1 + rng_below(o->len - from);
        if (at + n > INPUT_BYTES_MAX) break;
        if (at + n > in->len) {
            kn_buf_reserve(in, at + n - in->len);
            in->len = at + n;
        }
        memcpy(in->data + at, o->data + from, n);
        break;
    }
    }
}

static void make_input(kn_buf *in, const seed_set *s)
{
    kn_buf_reset(in);
    uint64_t kind = rng_below(100);
    if (kind < 10 || s->n == 0) {
        size_t n = rng_below(RANDOM_BYTES_MAX + 1);
        kn_buf_reserve(in, n + 1);
        for (size_t i = 0; i < n; i++) in->data[i] = (uint8_t)rng_next();
        in->len = n;
        return;
    }
    const kn_buf *seed = &s->seeds[rng_below(s->n)];
    kn_buf_append(in, seed->data, seed->len);
    if (kind < 15) return;
    size_t mutations = 1 + rng_below(MUTATIONS_MAX);
    for (size_t i = 0; i < mutations; i++) mutate_once(in, s);
}

/* ---------------------------------------------------------------- modes */

static int replay(const seed_set *s, uint64_t runs, uint64_t seed)
{
    rng_state = seed;
    kn_buf in = {0};
    kn_buf_reserve(&in, INPUT_BYTES_MAX);
    for (uint32_t i = 0; i < s->n; i++) run_one(s->seeds[i].data, s->seeds[i].len, i);
    for (uint64_t run = 0; run < runs; run++) {
        make_input(&in, s);
        run_one(in.data, in.len, run);
    }
    kn_buf_free(&in);
    printf("fuzz: %u seeds and %llu mutated or random inputs passed (seed %llu)\n", s->n,
           (unsigned long long)runs, (unsigned long long)seed);
    return 0;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    kn_buf b = {0};
    kn_buf_reserve(&b, FILE_BYTES_MAX);
    b.len = fread(b.data, 1, FILE_BYTES_MAX, f);
    fclose(f);
    run_one(b.data, b.len, 0);
    kn_buf_free(&b);
    printf("fuzz: %s passed\n", path);
    return 0;
}

static int write_corpus(const seed_set *s, const char *dir)
{
    for (uint32_t i = 0; i < s->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%02u", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(s->seeds[i].data, 1, s->seeds[i].len, f) != s->seeds[i].len) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            if (f) fclose(f);
            return 1;
        }
        fclose(f);
    }
    printf("fuzz: wrote %u seeds to %s\n", s->n, dir);
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--runs N] [--seed S] | --write-corpus DIR | FILE...\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static seed_set seeds;
    uint64_t runs = RUNS_DEFAULT, seed = 1;
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_crash);
    fuzz_init();
    fuzz_target_seeds(add_seed, &seeds);
    int files = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--runs") && has_value) {
            if (!parse_u64(argv[++i], &runs)) return usage(argv[0]);
        } else if (!strcmp(argv[i], "--seed") && has_value) {
            if (!parse_u64(argv[++i], &seed)) return usage(argv[0]);
        } else if (!strcmp(argv[i], "--write-corpus") && has_value) {
            return write_corpus(&seeds, argv[i + 1]);
        } else if (argv[i][0] == '-') {
            return usage(argv[0]);
        } else {
            files++;
            rc |= run_file(argv[i]);
        }
    }
    if (!files) rc = replay(&seeds, runs, seed);
    for (uint32_t i = 0; i < seeds.n; i++) kn_buf_free(&seeds.seeds[i]);
    return rc;
}
