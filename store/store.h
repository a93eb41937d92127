/*
 * store: the one LMDB environment of a node, behind a small transaction type.
 *
 * Owns: the environment and its named tables (blocks, certificates, transactions
 * with their results, ledger state, metadata including the consensus safety
 * state). Only this module includes <lmdb.h>.
 *
 * Invariants: a write transaction carries a sticky error: once any operation in
 * it fails, every later operation returns that error and store_commit() aborts
 * and returns it, so a half-written block can never be committed. Commits are
 * durable (fsync) when store_commit() returns 0. Child transactions nest inside a
 * write transaction and let a caller undo one piece (one ledger transaction)
 * without undoing the rest.
 *
 *     store_env *env;  store_txn *t;
 *     if (store_open("data", 1ull << 30, &env)) ...
 *     if (store_begin(env, true, &t)) ...
 *     (void)store_put(t, STORE_META, "k", 1, "v", 1);
 *     if (store_commit(t)) ...     // frees t either way
 *     store_close(env);
 */
#ifndef KOINON_STORE_H
#define KOINON_STORE_H

#include "common/common.h"

enum store_table {
    STORE_META = 0, /* chain metadata and the consensus safety state */
    STORE_BLOCKS,   /* big-endian height -> block bytes */
    STORE_CERTS,    /* big-endian height -> commit certificate bytes */
    STORE_TXS,      /* tx id -> [height, index, result code] */
    STORE_STATE,    /* ledger state, keys chosen by node/ledger */
    STORE_TABLES_N
};

#define STORE_KEY_MAX 511 /* LMDB's default key size limit */

typedef struct store_env store_env;
typedef struct store_txn store_txn;
typedef struct store_iter store_iter;

/* Opens (creating when needed) the environment in directory dir, which must
 * exist. map_size_bytes bounds the database size. */
KN_MUST int store_open(const char *dir, uint64_t map_size_bytes, store_env **out);
void store_close(store_env *env);

/* Bytes of the data file in use (pages in use times page size). */
uint64_t store_used_bytes(store_env *env);

/* Begins a transaction; one write transaction at a time per environment. Read
 * transactions see the last committed state and may run beside a writer. */
KN_MUST int store_begin(store_env *env, bool write, store_txn **out);
/* A child of a write transaction; the parent must not be used until the child
 * is committed or aborted. A child's sticky error does not poison the parent. */
KN_MUST int store_begin_child(store_txn *parent, store_txn **out);
/* Commits and frees t; returns the sticky error (after aborting) if there was one. */
KN_MUST int store_commit(store_txn *t);
/* Aborts and frees t. */
void store_abort(store_txn *t);
/* The sticky error, 0 if none. */
int store_error(const store_txn *t);

/* KN_ENOTFOUND when absent. *val points into the map and stays valid until the
 * transaction ends or the key is written in it. */
KN_MUST int store_get(store_txn *t, enum store_table tab, const void *key, size_t klen,
                      const uint8_t **val, size_t *vlen);
KN_MUST int store_put(store_txn *t, enum store_table tab, const void *key, size_t klen,
                      const void *val, size_t vlen);
/* Deleting an absent key is not an error. */
KN_MUST int store_del(store_txn *t, enum store_table tab, const void *key, size_t klen);

/* Iterates keys that start with prefix (plen may be 0: all keys), in key order,
 * optionally starting at the first key >= start (NULL: from the prefix). */
KN_MUST int store_iter_open(store_txn *t, enum store_table tab, const void *prefix, size_t plen,
                            const void *start, size_t slen, store_iter **out);
/* False at the end (or on error, which is then sticky on the txn). */
bool store_iter_next(store_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                     size_t *vlen);
void store_iter_close(store_iter *it);

/* Big-endian height keys, so LMDB's byte order is height order. */
static inline void store_height_key(uint8_t key[8], uint64_t height)
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (uint8_t)height;
        height >>= 8;
    }
}

#endif
