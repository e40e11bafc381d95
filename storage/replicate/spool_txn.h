/*
 * storage/replicate/spool_txn.h: turning a captured transaction (rep_txn)
 * into one spool record.  Replicator thread only (and the application
 * thread in replicator_close(), after the thread has stopped).
 */
#ifndef LITESTREAM_SPOOL_TXN_H
#define LITESTREAM_SPOOL_TXN_H

#include "storage/replicate/replicator_int.h"

/*
 * Converts the captured WAL frames of t into one spool record of r's
 * spool (newest copy of each page wins, pages beyond the commit dropped)
 * and appends it, fsynced when do_sync.  REP_FULL becomes a full-image
 * marker, REP_IMAGE an image record; REP_WALREF frames are read (and
 * validated) from the WAL, or become a marker when the WAL no longer holds
 * them.  t stays the caller's.  SQLITE_OK, or the spool's error with
 * *pzErr (sqlite3_mprintf'd) when it has a message.
 */
int rep_spool_txn(replicator *r, const rep_txn *t, int do_sync, char **pzErr);

#endif
