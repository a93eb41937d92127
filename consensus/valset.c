/*
 * valset.c: the validator set: its total power, the proposer schedule, lookups by
 * key, and the two power thresholds (quorum: more than 2/3; one third: f+1) that
 * every rule of the core is written in. Voting power, not head counts, decides.
 */
#include "consensus/consensus.h"

#include <string.h>

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* floor(a * b / d) without overflow; d > 0 and the result fits because callers
 * pass a <= d. */
static uint64_t mul_div(uint64_t a, uint64_t b, uint64_t d)
{
    __extension__ unsigned __int128 wide = (unsigned __int128)a * b;
    return (uint64_t)(wide / d);
}

/* Schedule weights: powers divided by their gcd, so 30:10 rotates like 3:1. When
 * the result is still longer than CONS_SCHEDULE_MAX the weights are scaled down
 * (each at least 1) to fit; this changes only who proposes how often, never the
 * voting power. Returns the schedule length. */
static uint32_t schedule_weights(const cons_valset *vs, uint64_t w[CONS_VALIDATORS_MAX])
{
    uint64_t g = 0, total = 0;
    for (uint32_t i = 0; i < vs->n; i++) g = gcd(vs->v[i].power, g);
    for (uint32_t i = 0; i < vs->n; i++) {
        w[i] = vs->v[i].power / g;
        total += w[i];
    }
    if (total <= CONS_SCHEDULE_MAX) return (uint32_t)total;
    /* Budget n slots for the "at least 1" round-ups so the sum stays within the cap. */
    uint64_t budget = CONS_SCHEDULE_MAX - vs->n, sum = 0;
    for (uint32_t i = 0; i < vs->n; i++) {
        w[i] = mul_div(w[i], budget, total);
        if (w[i] == 0) w[i] = 1;
        sum += w[i];
    }
    KN_REQUIRE(sum <= CONS_SCHEDULE_MAX);
    return (uint32_t)sum;
}

/* Smooth weighted round-robin (as in nginx): spreads each validator's turns
 * evenly over the schedule instead of giving one validator a long run. */
static void build_schedule(cons_valset *vs)
{
    uint64_t w[CONS_VALIDATORS_MAX];
    int64_t current[CONS_VALIDATORS_MAX] = {0};
    uint32_t len = schedule_weights(vs, w);
    for (uint32_t slot = 0; slot < len; slot++) {
        uint32_t best = 0;
        for (uint32_t i = 0; i < vs->n; i++) {
            current[i] += (int64_t)w[i];
            if (current[i] > current[best]) best = i;
        }
        current[best] -= (int64_t)len;
        vs->schedule[slot] = (uint8_t)best;
    }
    vs->schedule_len = len;
}

int cons_valset_init(cons_valset *vs)
{
    if (vs->n == 0 || vs->n > CONS_VALIDATORS_MAX) return KN_EINVAL;
    uint64_t total = 0;
    for (uint32_t i = 0; i < vs->n; i++) {
        if (vs->v[i].power == 0) return KN_EINVAL;
        if (__builtin_add_overflow(total, vs->v[i].power, &total)) return KN_EINVAL;
    }
    vs->total_power = total;
    build_schedule(vs);
    return 0;
}

uint32_t cons_proposer(const cons_valset *vs, uint64_t height, uint32_t round)
{
    KN_REQUIRE(vs->schedule_len > 0);
    uint64_t len = vs->schedule_len;
    /* (height + round) % len, written so that a height near UINT64_MAX cannot wrap. */
    uint64_t slot = (height % len + round % len) % len;
    return vs->schedule[slot];
}

uint32_t cons_valset_find(const cons_valset *vs, const uint8_t pk[KN_PK_BYTES])
{
    for (uint32_t i = 0; i < vs->n; i++)
        if (memcmp(vs->v[i].pk, pk, KN_PK_BYTES) == 0) return i;
    return CONS_NO_VALIDATOR;
}

/* power * 3 > total * 2, computed without overflow: with total = 3q + r the
 * smallest quorum is floor(2 * total / 3) + 1 = 2q + floor(2r / 3) + 1. */
bool cons_quorum(const cons_valset *vs, uint64_t power)
{
    uint64_t q = vs->total_power / 3, r = vs->total_power % 3;
    return power > 2 * q + (2 * r) / 3;
}

/* power * 3 > total, i.e. power > floor(total / 3). */
bool cons_one_third(const cons_valset *vs, uint64_t power)
{
    return power > vs->total_power / 3;
}
