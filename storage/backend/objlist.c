/*
 * storage/backend/objlist.c: the object list of the listing decoders
 * (objlist.h).
 *
 * Invariants: l->a holds l->cap slots, the first l->n filled; it grows by
 * doubling from 32.
 *
 * Threads: a list belongs to one thread.
 */
#include "storage/backend/objlist.h"

#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"

backend_obj *
objlist_slot(objlist *l)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 32;
        backend_obj *p = sqlite3_realloc64(l->a, (uint64_t)cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        l->a = p;
        l->cap = cap;
    }
    memset(&l->a[l->n], 0, sizeof(l->a[l->n]));
    return &l->a[l->n];
}

static int
objlist_cmp(const void *a, const void *b)
{
    return strcmp(((const backend_obj *)a)->key, ((const backend_obj *)b)->key);
}

int
objlist_finish(objlist *l, int rc, backend_obj **objs, int *n)
{
    *objs = NULL;
    *n = 0;
    if (rc != SQLITE_OK || l->n == 0) {
        for (int i = 0; i < l->n; i++)
            sqlite3_free(l->a[i].key);
        sqlite3_free(l->a);
    } else {
        if (l->n > 1)
            qsort(l->a, (size_t)l->n, sizeof(*l->a), objlist_cmp);
        *objs = l->a;
        *n = l->n;
    }
    memset(l, 0, sizeof(*l));
    return rc;
}
