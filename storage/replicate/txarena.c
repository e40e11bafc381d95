/*
 * storage/replicate/txarena.c: chunked storage of captured transactions
 * (txarena.h).
 */
#include "storage/replicate/txarena.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK_SIZE (1u << 20)
#define ALIGN      16
#define SPARES_MAX 2 /* chunks kept for reuse, per process */

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

/*
 * Chunks come from mmap, not the C allocator: a 1 MiB block freed by the
 * replicator thread would otherwise sit in the allocator's heap, and the
 * application's own small allocations would be carved out of it (slower,
 * on the writer's thread).  A few freed chunks are kept for reuse, so a
 * steady write load touches the same pages instead of faulting in new
 * ones.
 */
static pthread_mutex_t spares_mu = PTHREAD_MUTEX_INITIALIZER;
static txchunk *spares[SPARES_MAX];
static int n_spares;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;

/* fork(): the child must not inherit the lock held by a thread that does
 * not exist there. */
static void
spares_prepare(void)
{
    pthread_mutex_lock(&spares_mu);
}

static void
spares_parent(void)
{
    pthread_mutex_unlock(&spares_mu);
}

static void
spares_child(void)
{
    pthread_mutex_init(&spares_mu, NULL);
}

static void
spares_init(void)
{
    pthread_atfork(spares_prepare, spares_parent, spares_child);
}

static txchunk *
chunk_new(void)
{
    txchunk *c = NULL;
    pthread_once(&spares_once, spares_init);
    pthread_mutex_lock(&spares_mu);
    if (n_spares > 0)
        c = spares[--n_spares];
    pthread_mutex_unlock(&spares_mu);
    if (!c) {
        void *m = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        c = m;
    }
    c->refs = 1; /* the capturing side's */
    c->used = 0;
    return c;
}

static void
chunk_unref(txchunk *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_lock(&spares_mu);
    if (n_spares < SPARES_MAX) {
        spares[n_spares++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&spares_mu);
    if (c)
        munmap(c, CHUNK_SIZE);
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
        txchunk *n = chunk_new();
        if (!n)
            return NULL;
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
        txchunk *n = chunk_new();
        if (!n)
            return NULL;
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
