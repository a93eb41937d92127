/*
 * store: the LMDB environment, its named tables, and the transaction type with
 * a sticky error (after Knot DNS's knot_lmdb.h).
 *
 * Owns every call into LMDB. Choices made here, and why:
 *   - MDB_NOTLS: read transactions belong to the store_txn, not to the thread,
 *     so the loop thread may hold a read transaction while it opens another
 *     (or a write transaction), and a reader may be handed to a worker thread.
 *     A store_txn itself is never used by two threads at once.
 *   - Full durability: no MDB_NOSYNC or MDB_NOMETASYNC, so store_commit()
 *     returning 0 means the data and the meta page are on disk. The node
 *     persists its safety state before it signs (STYLE.md, "durability before
 *     speech"), which is only true with synchronous commits.
 *   - One write transaction at a time: LMDB serialises writers with a mutex,
 *     and the node is the only writer, from its loop thread.
 *   - All tables are opened in store_open() in one write transaction, so the
 *     DBI handles are valid for every later transaction of the environment.
 *   - Iterators are tracked by their transaction and ended with it: one that
 *     is still open when its transaction ends yields nothing more, and closing
 *     it afterwards only frees it.
 *
 * Errors: MDB_NOTFOUND is KN_ENOTFOUND and is not sticky (absence is an answer,
 * not a failure). Every other failure is logged once and becomes the
 * transaction's sticky error: later operations return it and store_commit()
 * aborts and returns it, so half a block can never be committed.
 */
#include "store/store.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#define MOD "store"

static const char *const table_names[STORE_TABLES_N] = {
    [STORE_META] = "meta",   [STORE_BLOCKS] = "blocks", [STORE_CERTS] = "certs",
    [STORE_TXS] = "txs",     [STORE_STATE] = "state",
};

struct store_env {
    MDB_env *env;
    MDB_dbi dbi[STORE_TABLES_N];
};

struct store_txn {
    store_env *env;
    MDB_txn *txn;
    store_txn *parent; /* NULL for a top-level transaction */
    bool write;
    bool has_child; /* a child is open: this txn must not be used until it ends */
    int err;        /* sticky: 0 or the first failure */
    store_iter *iters; /* open iterators, ended with the txn (see end_iters) */
};

struct store_iter {
    store_txn *t; /* NULL once the txn has ended */
    store_iter *prev, *next;
    MDB_cursor *cursor;
    bool started;
    bool done;
    size_t plen, slen;
    uint8_t prefix[STORE_KEY_MAX];
    uint8_t start[STORE_KEY_MAX];
};

/* Maps an LMDB return code to a Koinon error and logs real failures. */
static int map_error(int rc, const char *op)
{
    if (rc == MDB_SUCCESS) return 0;
    if (rc == MDB_NOTFOUND) return KN_ENOTFOUND;
    if (rc == MDB_MAP_FULL) {
        KN_ERROR(MOD, "database map is full", "op=%s hint=\"raise the map size\"", op);
        return KN_ESTORE;
    }
    KN_ERROR(MOD, "lmdb operation failed", "op=%s rc=%d err=\"%s\"", op, rc, mdb_strerror(rc));
    return KN_ESTORE;
}

/* Records a failure as the sticky error; absence never poisons a txn. */
static int fail(store_txn *t, int err)
{
    if (err && err != KN_ENOTFOUND && t->err == 0) t->err = err;
    return err;
}

/* The common preamble of every operation: a usable txn and a valid table. */
static int usable(store_txn *t, enum store_table tab)
{
    KN_REQUIRE(t != NULL && !t->has_child);
    KN_REQUIRE((unsigned)tab < STORE_TABLES_N);
    return t->err;
}

static int check_key(store_txn *t, size_t klen)
{
    if (klen == 0) return fail(t, KN_EINVAL);
    if (klen > STORE_KEY_MAX) return fail(t, KN_ETOOBIG);
    return 0;
}

/* ---------------------------------------------------------------- environment */

static int open_tables(store_env *e)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (rc) return map_error(rc, "txn_begin");
    for (int i = 0; i < STORE_TABLES_N && rc == 0; i++)
        rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &e->dbi[i]);
    if (rc) {
        mdb_txn_abort(txn);
        return map_error(rc, "dbi_open");
    }
    return map_error(mdb_txn_commit(txn), "txn_commit");
}

static int env_open(store_env *e, const char *dir, uint64_t map_size_bytes)
{
    int rc = map_error(mdb_env_create(&e->env), "env_create");
    if (rc) return rc;
    rc = map_error(mdb_env_set_maxdbs(e->env, STORE_TABLES_N), "set_maxdbs");
    if (!rc) rc = map_error(mdb_env_set_mapsize(e->env, (size_t)map_size_bytes), "set_mapsize");
    if (!rc) rc = map_error(mdb_env_open(e->env, dir, MDB_NOTLS, 0600), "env_open");
    if (!rc) {
        /* Reader slots of a process that crashed are freed here, not left to fill. */
        int dead = 0;
        (void)mdb_reader_check(e->env, &dead);
        rc = open_tables(e);
    }
    if (rc) mdb_env_close(e->env);
    return rc;
}

int store_open(const char *dir, uint64_t map_size_bytes, store_env **out)
{
    if (!dir || map_size_bytes == 0) return KN_EINVAL;
    store_env *e = calloc(1, sizeof *e);
    if (!e) return KN_ENOMEM;
    int rc = env_open(e, dir, map_size_bytes);
    if (rc) {
        KN_ERROR(MOD, "cannot open store", "dir=%s", dir);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void store_close(store_env *env)
{
    if (!env) return;
    mdb_env_close(env->env);
    free(env);
}

uint64_t store_used_bytes(store_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(env->env, &info) || mdb_env_stat(env->env, &st)) return 0;
    return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* ---------------------------------------------------------------- transactions */

static int begin(store_env *env, store_txn *parent, bool write, store_txn **out)
{
    store_txn *t = calloc(1, sizeof *t);
    if (!t) return KN_ENOMEM;
    int rc = mdb_txn_begin(env->env, parent ? parent->txn : NULL, write ? 0 : MDB_RDONLY,
                           &t->txn);
    if (rc) {
        free(t);
        return map_error(rc, "txn_begin");
    }
    t->env = env;
    t->parent = parent;
    t->write = write;
    *out = t;
    return 0;
}

int store_begin(store_env *env, bool write, store_txn **out)
{
    KN_REQUIRE(env != NULL && out != NULL);
    return begin(env, NULL, write, out);
}

int store_begin_child(store_txn *parent, store_txn **out)
{
    KN_REQUIRE(parent != NULL && out != NULL && !parent->has_child);
    if (!parent->write) return KN_EINVAL;
    if (parent->err) return parent->err;
    int rc = begin(parent->env, parent, true, out);
    if (rc) return rc;
    parent->has_child = true;
    return 0;
}

/* LMDB frees a write txn's cursors when it ends, and a cursor must not outlive
 * its txn's use; closing them here makes an iterator closed after its txn a
 * harmless free instead of a double free. */
static void end_iters(store_txn *t)
{
    for (store_iter *it = t->iters; it; it = it->next) {
        mdb_cursor_close(it->cursor);
        it->cursor = NULL;
        it->t = NULL;
        it->done = true;
    }
    t->iters = NULL;
}

static void finish(store_txn *t)
{
    if (t->parent) t->parent->has_child = false;
    free(t);
}

int store_commit(store_txn *t)
{
    KN_REQUIRE(t != NULL && !t->has_child);
    int rc = t->err;
    end_iters(t);
    if (rc) {
        /* The child's own failure stays in the child: its writes are dropped
         * and the parent goes on without them. */
        mdb_txn_abort(t->txn);
    } else {
        rc = map_error(mdb_txn_commit(t->txn), "txn_commit");
        /* But if LMDB fails to merge a child into its parent, the parent's
         * state is unknown, so the parent may no longer commit. */
        if (rc && t->parent) (void)fail(t->parent, rc);
    }
    finish(t);
    return rc;
}

void store_abort(store_txn *t)
{
    if (!t) return;
    KN_REQUIRE(!t->has_child);
    end_iters(t);
    mdb_txn_abort(t->txn);
    finish(t);
}

int store_error(const store_txn *t)
{
    return t->err;
}

/* ---------------------------------------------------------------- operations */

int store_get(store_txn *t, enum store_table tab, const void *key, size_t klen,
              const uint8_t **val, size_t *vlen)
{
    int rc = usable(t, tab);
    if (!rc) rc = check_key(t, klen);
    if (rc) return rc;
    MDB_val k = {klen, (void *)key}, v;
    rc = map_error(mdb_get(t->txn, t->env->dbi[tab], &k, &v), "get");
    if (rc) return fail(t, rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

int store_put(store_txn *t, enum store_table tab, const void *key, size_t klen, const void *val,
              size_t vlen)
{
    int rc = usable(t, tab);
    if (!rc) rc = check_key(t, klen);
    if (rc) return rc;
    if (!t->write) return fail(t, KN_EINVAL);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return fail(t, map_error(mdb_put(t->txn, t->env->dbi[tab], &k, &v, 0), "put"));
}

int store_del(store_txn *t, enum store_table tab, const void *key, size_t klen)
{
    int rc = usable(t, tab);
    if (!rc) rc = check_key(t, klen);
    if (rc) return rc;
    if (!t->write) return fail(t, KN_EINVAL);
    MDB_val k = {klen, (void *)key};
    rc = map_error(mdb_del(t->txn, t->env->dbi[tab], &k, NULL), "del");
    return rc == KN_ENOTFOUND ? 0 : fail(t, rc);
}

/* ---------------------------------------------------------------- iterators */

static bool below_prefix(const uint8_t *start, size_t slen, const uint8_t *prefix, size_t plen)
{
    if (plen == 0) return false;
    int cmp = memcmp(start, prefix, slen < plen ? slen : plen);
    return cmp < 0 || (cmp == 0 && slen < plen);
}

int store_iter_open(store_txn *t, enum store_table tab, const void *prefix, size_t plen,
                    const void *start, size_t slen, store_iter **out)
{
    int rc = usable(t, tab);
    if (rc) return rc;
    if (plen > STORE_KEY_MAX || (start && (slen == 0 || slen > STORE_KEY_MAX)))
        return KN_EINVAL;
    store_iter *it = calloc(1, sizeof *it);
    if (!it) return fail(t, KN_ENOMEM);
    rc = map_error(mdb_cursor_open(t->txn, t->env->dbi[tab], &it->cursor), "cursor_open");
    if (rc) {
        free(it);
        return fail(t, rc);
    }
    it->t = t;
    it->next = t->iters;
    if (t->iters) t->iters->prev = it;
    t->iters = it;
    it->plen = plen;
    if (plen) memcpy(it->prefix, prefix, plen);
    /* A start key below the prefix would begin outside it: the prefix wins. */
    if (start && !below_prefix(start, slen, prefix, plen)) {
        it->slen = slen;
        memcpy(it->start, start, slen);
    }
    *out = it;
    return 0;
}

/* Positions the cursor on the first candidate key. */
static int first(store_iter *it, MDB_val *k, MDB_val *v)
{
    if (it->slen) {
        k->mv_size = it->slen;
        k->mv_data = it->start;
    } else if (it->plen) {
        k->mv_size = it->plen;
        k->mv_data = it->prefix;
    } else {
        return mdb_cursor_get(it->cursor, k, v, MDB_FIRST);
    }
    return mdb_cursor_get(it->cursor, k, v, MDB_SET_RANGE);
}

bool store_iter_next(store_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                     size_t *vlen)
{
    if (it->done || !it->t || it->t->err) return false;
    KN_REQUIRE(!it->t->has_child);
    MDB_val k, v;
    int rc = it->started ? mdb_cursor_get(it->cursor, &k, &v, MDB_NEXT) : first(it, &k, &v);
    it->started = true;
    rc = map_error(rc, "cursor_get");
    if (!rc && (k.mv_size < it->plen || memcmp(k.mv_data, it->prefix, it->plen) != 0))
        rc = KN_ENOTFOUND;
    if (rc) {
        (void)fail(it->t, rc);
        it->done = true;
        return false;
    }
    *key = k.mv_data;
    *klen = k.mv_size;
    *val = v.mv_data;
    *vlen = v.mv_size;
    return true;
}

void store_iter_close(store_iter *it)
{
    if (!it) return;
    if (it->t) {
        mdb_cursor_close(it->cursor);
        if (it->prev) it->prev->next = it->next;
        else it->t->iters = it->next;
        if (it->next) it->next->prev = it->prev;
    }
    free(it);
}
