/* The error table's three views: messages, API names, and names back to codes. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KN__MSG(name, code, msg) msg,
#define KN__NAME(name, code, msg) code,
static const char *const messages[] = {KN_ERRNO_MAP(KN__MSG)};
static const char *const names[] = {KN_ERRNO_MAP(KN__NAME)};
#undef KN__MSG
#undef KN__NAME

#define N_ERRORS (sizeof(messages) / sizeof(messages[0]))

static int table_index(int err)
{
    int i = err - (KN__ERR_BASE + 1);
    return (i >= 0 && (size_t)i < N_ERRORS) ? i : -1;
}

const char *kn_strerror(int err)
{
    if (err == 0) return "ok";
    int i = table_index(err);
    if (i >= 0) return messages[i];
    return err < 0 ? strerror(-err) : "unknown error";
}

const char *kn_errname(int err)
{
    if (err == 0) return "ok";
    int i = table_index(err);
    return i >= 0 ? names[i] : "internal";
}

int kn_errcode(const char *name)
{
    for (size_t i = 0; i < N_ERRORS; i++)
        if (strcmp(names[i], name) == 0) return KN__ERR_BASE + 1 + (int)i;
    return 0;
}

void kn__fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "koinon: invariant broken at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}
