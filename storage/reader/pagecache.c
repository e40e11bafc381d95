/*
 * storage/reader/pagecache.c: the read replica's LRU page cache (pagecache.h).
 *
 * Entries are chained in a hash table keyed by (uid, pgno) and linked in
 * one LRU list (head = most recent).  Each entry is one allocation: the
 * header followed by the page bytes.
 *
 * Invariants:
 *   1. bytes == sum of the page sizes of all entries; after a put,
 *      bytes <= budget unless only the new entry is left.
 *   2. Every entry is in exactly one hash chain and in the LRU list.
 *   3. nbucket is a power of two >= count (the table grows by doubling):
 *      chains stay short, each hop being a cache miss.
 *
 * Threads: one owner thread.
 */
#include "storage/reader/pagecache.h"

#include <string.h>

#include "storage/base/sqlite.h"

typedef struct pc_entry pc_entry;
struct pc_entry {
    uint64_t uid;
    uint32_t pgno;
    uint32_t size;
    pc_entry *hnext;       /* hash chain */
    pc_entry *prev, *next; /* LRU list */
    /* page bytes follow */
};

struct pagecache {
    uint64_t budget, bytes;
    uint32_t count;
    uint32_t nbucket; /* power of two */
    pc_entry **buckets;
    pc_entry *head, *tail; /* most / least recently used */
};

#define PC_DATA(e) ((uint8_t *)((e) + 1))

static uint32_t
pc_hash(uint32_t nbucket, uint64_t uid, uint32_t pgno)
{
    uint64_t h = (uid * 0x9E3779B97F4A7C15ull) ^ (pgno * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 29;
    return (uint32_t)h & (nbucket - 1);
}

int
pagecache_open(uint64_t budget, pagecache **out)
{
    pagecache *c = sqlite3_malloc64(sizeof(*c));
    int rc = SQLITE_NOMEM;

    *out = NULL;
    if (c == NULL)
        goto out;
    memset(c, 0, sizeof(*c));
    c->budget = budget;
    c->nbucket = 256;
    c->buckets = sqlite3_malloc64(sizeof(pc_entry *) * c->nbucket);
    if (c->buckets == NULL)
        goto out;
    memset(c->buckets, 0, sizeof(pc_entry *) * c->nbucket);
    *out = c;
    c = NULL;
    rc = SQLITE_OK;
out:
    sqlite3_free(c);
    return rc;
}

void
pagecache_close(pagecache *c)
{
    pc_entry *e, *n;

    if (c == NULL)
        return;
    for (e = c->head; e; e = n) {
        n = e->next;
        sqlite3_free(e);
    }
    sqlite3_free(c->buckets);
    sqlite3_free(c);
}

static void
lru_unlink(pagecache *c, pc_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
lru_push(pagecache *c, pc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static pc_entry **
pc_slot(pagecache *c, uint64_t uid, uint32_t pgno)
{
    pc_entry **pp = &c->buckets[pc_hash(c->nbucket, uid, pgno)];
    while (*pp && ((*pp)->uid != uid || (*pp)->pgno != pgno))
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks and frees e. */
static void
pc_drop(pagecache *c, pc_entry *e)
{
    pc_entry **pp = pc_slot(c, e->uid, e->pgno);
    *pp = e->hnext;
    lru_unlink(c, e);
    c->bytes -= e->size;
    c->count--;
    sqlite3_free(e);
}

/* Doubles the table (best effort: stays as is if out of memory). */
static void
pc_grow(pagecache *c)
{
    uint32_t n = c->nbucket * 2, i;
    pc_entry **b = sqlite3_malloc64(sizeof(pc_entry *) * n), **old;
    pc_entry *e, *next;

    if (b == NULL)
        return;
    memset(b, 0, sizeof(pc_entry *) * n);
    old = c->buckets;
    c->buckets = b;
    for (i = 0; i < c->nbucket; i++)
        for (e = old[i]; e; e = next) {
            next = e->hnext;
            uint32_t h = pc_hash(n, e->uid, e->pgno);
            e->hnext = b[h];
            b[h] = e;
        }
    c->nbucket = n;
    sqlite3_free(old);
}

const uint8_t *
pagecache_get(pagecache *c, uint64_t uid, uint32_t pgno, uint32_t page_size)
{
    pc_entry *e = *pc_slot(c, uid, pgno);

    if (e == NULL || e->size != page_size)
        return NULL;
    if (c->head != e) {
        lru_unlink(c, e);
        lru_push(c, e);
    }
    return PC_DATA(e);
}

uint8_t *
pagecache_reserve(pagecache *c, uint64_t uid, uint32_t pgno, uint32_t page_size)
{
    pc_entry *e = *pc_slot(c, uid, pgno);

    if (e)
        pc_drop(c, e);
    while (c->tail && c->bytes + page_size > c->budget)
        pc_drop(c, c->tail);
    e = sqlite3_malloc64(sizeof(*e) + page_size);
    if (e == NULL)
        return NULL;
    e->uid = uid;
    e->pgno = pgno;
    e->size = page_size;
    if (c->count + 1 > c->nbucket)
        pc_grow(c);
    pc_entry **pp = &c->buckets[pc_hash(c->nbucket, uid, pgno)];
    e->hnext = *pp;
    *pp = e;
    lru_push(c, e);
    c->bytes += page_size;
    c->count++;
    return PC_DATA(e);
}

int
pagecache_put(pagecache *c, uint64_t uid, uint32_t pgno, uint32_t page_size,
              const void *page)
{
    uint8_t *p = pagecache_reserve(c, uid, pgno, page_size);

    if (p == NULL)
        return SQLITE_NOMEM;
    memcpy(p, page, page_size);
    return SQLITE_OK;
}

void
pagecache_drop(pagecache *c, uint64_t uid, uint32_t pgno)
{
    pc_entry *e = *pc_slot(c, uid, pgno);

    if (e)
        pc_drop(c, e);
}

uint32_t
pagecache_capacity(const pagecache *c, uint32_t page_size)
{
    uint64_t n = c->budget / (page_size ? page_size : 1);
    return n == 0 ? 1 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint64_t
pagecache_bytes(const pagecache *c)
{
    return c->bytes;
}

uint32_t
pagecache_count(const pagecache *c)
{
    return c->count;
}
