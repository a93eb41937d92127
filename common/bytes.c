/* Growable buffers and the bounds-checked cursor. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

void kn_buf_reserve(kn_buf *b, size_t extra)
{
    KN_REQUIRE(b->len + extra >= b->len);
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    KN_REQUIRE(p != NULL);
    b->data = p;
    b->cap = cap;
}

void kn_buf_append(kn_buf *b, const void *p, size_t n)
{
    if (n == 0) return;
    kn_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void kn_buf_reset(kn_buf *b)
{
    b->len = 0;
}

void kn_buf_free(kn_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int kn_cur_take(kn_cur *c, size_t n, const uint8_t **out)
{
    if (n > c->left) return KN_EDECODE;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}
