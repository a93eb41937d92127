/* The mempool: verified transactions waiting for a block, in arrival order, with
 * a hash index by id. Bounded by a count; the loop thread alone touches it. */
#include "node/internal.h"

#include <stdlib.h>
#include <string.h>

static uint32_t bucket_of(const node__mempool *mp, const uint8_t id[KN_HASH_BYTES])
{
    uint64_t h;
    memcpy(&h, id, sizeof h); /* ids are hashes: any 8 bytes are uniform */
    return (uint32_t)(h & (mp->n_buckets - 1));
}

void node__mempool_init(node__mempool *mp, uint32_t max)
{
    memset(mp, 0, sizeof *mp);
    mp->max = max;
    mp->n_buckets = 64;
    while (mp->n_buckets < 2 * max) mp->n_buckets *= 2;
    mp->buckets = calloc(mp->n_buckets, sizeof *mp->buckets);
    KN_REQUIRE(mp->buckets != NULL);
}

void node__mempool_free(node__mempool *mp)
{
    while (mp->head) node__mempool_remove(mp, mp->head);
    free(mp->buckets);
    mp->buckets = NULL;
}

node__mp_entry *node__mempool_find(const node__mempool *mp, const uint8_t id[KN_HASH_BYTES])
{
    for (node__mp_entry *e = mp->buckets[bucket_of(mp, id)]; e; e = e->bucket_next)
        if (memcmp(e->id, id, KN_HASH_BYTES) == 0) return e;
    return NULL;
}

node__mp_entry *node__mempool_add(node__mempool *mp, const uint8_t id[KN_HASH_BYTES],
                                  const uint8_t *bytes, uint32_t len, uint64_t expiry_height)
{
    KN_REQUIRE(node__mempool_find(mp, id) == NULL);
    if (mp->count >= mp->max) return NULL;
    node__mp_entry *e = malloc(sizeof *e + len);
    KN_REQUIRE(e != NULL);
    memset(e, 0, sizeof *e);
    memcpy(e->bytes, bytes, len);
    memcpy(e->id, id, KN_HASH_BYTES);
    e->len = len;
    e->expiry_height = expiry_height;

    e->prev = mp->tail;
    if (mp->tail) mp->tail->next = e;
    else mp->head = e;
    mp->tail = e;
    uint32_t b = bucket_of(mp, id);
    e->bucket_next = mp->buckets[b];
    mp->buckets[b] = e;
    mp->count++;
    mp->bytes += len;
    return e;
}

void node__mempool_remove(node__mempool *mp, node__mp_entry *e)
{
    KN_REQUIRE(e->clients == NULL);
    node__mp_entry **link = &mp->buckets[bucket_of(mp, e->id)];
    while (*link != e) link = &(*link)->bucket_next;
    *link = e->bucket_next;
    if (e->prev) e->prev->next = e->next;
    else mp->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else mp->tail = e->prev;
    mp->count--;
    mp->bytes -= e->len;
    free(e);
}
