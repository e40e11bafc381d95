/*
 * storage/backend/objlist.h: the growing list of objects that the listing
 * decoders of the sftp and webdav backends (sftp_list.c, webdav_list.c)
 * build from what a server sends.
 *
 * Threads: a list belongs to one thread.
 */
#ifndef LITESTREAM_OBJLIST_H
#define LITESTREAM_OBJLIST_H

#include "storage/backend/backend.h"

/* Start it zeroed: objlist l = {0}. */
typedef struct objlist {
    backend_obj *a;
    int n, cap;
} objlist;

/*
 * A zeroed slot for one more object, l->a[l->n]: the caller fills it and
 * increments l->n to keep it (the key sqlite3_malloc'd).  NULL when out of
 * memory.
 */
backend_obj *objlist_slot(objlist *l);

/*
 * Ends the list.  With rc SQLITE_OK: sorts it by key (strcmp) into *objs
 * and *n (NULL and 0 when empty; free with backend_objs_free()).  Any other
 * rc: frees it, *objs NULL, *n 0.  Returns rc.
 */
int objlist_finish(objlist *l, int rc, backend_obj **objs, int *n);

#endif
