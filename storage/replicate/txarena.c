/*
 * storage/replicate/txarena.c: chunked storage of captured transactions
 * (txarena.h).
 */
#include "storage/replicate/txarena.h"
#include "storage/base/mem.h"

#include <stdint.h>
#include <string.h>

#define CHUNK_SIZE (4u << 20)
#define ALIGN      16

struct txchunk {
    uint32_t refs; /* atomic: transactions in it, +1 while current */
    uint32_t used;
    _Alignas(ALIGN) uint8_t data[];
};

static size_t
round_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static void
chunk_unref(txchunk *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ls_free(c);
}

rep_txn *
txarena_alloc(txchunk **cur, size_t frames_bytes)
{
    size_t need = round_up(sizeof(rep_txn)) + round_up(frames_bytes);
    size_t room = CHUNK_SIZE - round_up(sizeof(txchunk));
    if (need > room / 4)
        return NULL; /* big: its own allocation */
    txchunk *c = *cur;
    if (!c || c->used + need > room) {
        txchunk *n = ls_malloc(CHUNK_SIZE);
        if (!n)
            return NULL;
        n->refs = 1; /* the capturing side's */
        n->used = 0;
        if (c)
            chunk_unref(c);
        *cur = c = n;
    }
    uint8_t *p = c->data + c->used;
    c->used += (uint32_t)need;
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    rep_txn *t = (rep_txn *)(void *)p;
    memset(t, 0, sizeof(*t));
    t->frames = p + round_up(sizeof(rep_txn));
    t->arena = c;
    return t;
}

uint8_t *
txarena_reserve(txchunk **cur, size_t min_avail, size_t *avail)
{
    size_t room = CHUNK_SIZE - round_up(sizeof(txchunk));
    size_t hdr = round_up(sizeof(rep_txn));
    txchunk *c = *cur;
    if (!c || c->used + hdr + min_avail > room) {
        txchunk *n = ls_malloc(CHUNK_SIZE);
        if (!n)
            return NULL;
        n->refs = 1;
        n->used = 0;
        if (c)
            chunk_unref(c);
        *cur = c = n;
    }
    *avail = room - c->used - hdr;
    return c->data + c->used + hdr;
}

rep_txn *
txarena_commit(txchunk *c, uint8_t *buf, size_t used)
{
    size_t hdr = round_up(sizeof(rep_txn));
    rep_txn *t = (rep_txn *)(void *)(buf - hdr);
    c->used = (uint32_t)((buf - c->data) + round_up(used));
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    memset(t, 0, sizeof(*t));
    t->frames = buf;
    t->arena = c;
    return t;
}

void
txarena_release(rep_txn *t)
{
    chunk_unref(t->arena);
}

void
txarena_retire(txchunk **cur)
{
    if (*cur) {
        chunk_unref(*cur);
        *cur = NULL;
    }
}
