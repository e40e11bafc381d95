/*
 * test/unit/test_capture.c: the capture at unlock (vfs/capture.c), step by
 * step, on a real database opened through the litestream VFS in this
 * process.
 *
 * The test links the core library with `-Wl,--wrap=replicator_enqueue`:
 * every transaction the capture queues passes through
 * __wrap_replicator_enqueue below, which records it (TXID, flags, frames,
 * a copy of the frames) and hands it on to the real replicator.  Each case
 * commits one shape of transaction and checks what was queued:
 *   - a single-page commit: one TXID, queued in place, one frame;
 *   - a many-page commit: one TXID, every page once, the frames equal to
 *     the WAL's;
 *   - pages rewritten in one transaction (the cache spills, SQLite
 *     overwrites its own frames): one TXID, the copy follows the rewrites
 *     (equal to the WAL after the commit);
 *   - rollbacks (small, and spilled to the WAL): nothing queued, the
 *     position unchanged;
 *   - a savepoint rolled back inside a committed transaction: one TXID;
 *   - exclusive locking mode: one TXID per commit (captured at
 *     COMMIT_PHASETWO);
 *   - a transaction too big to copy (over BUF_MAX): queued by reference;
 *   - a commit the capture never saw (another VFS): re-read from the WAL;
 *   - the WAL restarted behind the position: a full image.
 * Those run with a second OFD lock on users.lock (as if another process had
 * the database open): the capture copies.  Then without it, the zero-copy
 * capture (docs/architecture.md 2.3): references to WAL ranges, through
 * replicator_enqueue_ref (wrapped the same way), including across a WAL
 * restart of our own and one behind its back.
 * And at the end the replica restores to the database.
 */
#include "test/unit/api_init.h" /* first: real SQLite calls inside */

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sql/sql.h"
#include "storage/local/wal.h"
#include "storage/replicate/replicator.h"
#include "test/tap.h"
#include "vfs/capture.h"
#include "vfs/connection.h"
#include "vfs/replicate.h"

/* ---- what the capture queued ------------------------------------------- */

typedef struct rec {
    uint64_t txid;
    uint32_t flags, nframes, page_size, commit, last_frame;
    uint8_t *frames; /* a copy (NULL for REP_WALREF / REP_FULL) */
} rec;

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static rec recs[64];
static int nrec;

void __real_replicator_enqueue(replicator *r, rep_txn *t);
void __wrap_replicator_enqueue(replicator *r, rep_txn *t);
int __real_replicator_enqueue_ref(replicator *r, const rep_txn *x);
int __wrap_replicator_enqueue_ref(replicator *r, const rep_txn *x);

int
__wrap_replicator_enqueue_ref(replicator *r, const rep_txn *x)
{
    pthread_mutex_lock(&rec_mu);
    if (nrec < (int)(sizeof(recs) / sizeof(recs[0])))
        recs[nrec++] = (rec){.txid = x->txid,
                             .flags = x->flags,
                             .nframes = x->nframes,
                             .page_size = x->page_size,
                             .commit = x->commit,
                             .last_frame = x->pos.frame};
    pthread_mutex_unlock(&rec_mu);
    return __real_replicator_enqueue_ref(r, x);
}

void
__wrap_replicator_enqueue(replicator *r, rep_txn *t)
{
    pthread_mutex_lock(&rec_mu);
    if (nrec < (int)(sizeof(recs) / sizeof(recs[0]))) {
        rec *x = &recs[nrec++];
        size_t n = (size_t)t->nframes * (WAL_FRAME_HDR_SIZE + t->page_size);
        *x = (rec){.txid = t->txid,
                   .flags = t->flags,
                   .nframes = t->nframes,
                   .page_size = t->page_size,
                   .commit = t->commit,
                   .last_frame = t->pos.frame};
        if (t->frames && (x->frames = malloc(n ? n : 1)) != NULL)
            memcpy(x->frames, t->frames, n);
    }
    pthread_mutex_unlock(&rec_mu);
    __real_replicator_enqueue(r, t);
}

static void
recs_clear(void)
{
    pthread_mutex_lock(&rec_mu);
    for (int i = 0; i < nrec; i++)
        free(recs[i].frames);
    nrec = 0;
    pthread_mutex_unlock(&rec_mu);
}

/* ---- the database ------------------------------------------------------ */

static char dir[256], dbpath[300], walpath[310];
static sqlite3 *db;

static int
exec(const char *zSql)
{
    char *zErr = NULL;
    int rc = sqlite3_exec(db, zSql, NULL, NULL, &zErr);
    if (rc != SQLITE_OK)
        diag("%s: %s", zSql, zErr ? zErr : sqlite3_errstr(rc));
    sqlite3_free(zErr);
    return rc;
}

static int64_t
int_of(const char *zSql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, zSql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The TXID of the captured position, per litestream_status(). */
static uint64_t
captured_txid(void)
{
    sqlite3_stmt *st = NULL;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT json_extract(litestream_status(), "
                           "'$.databases[0].txid')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 16);
    sqlite3_finalize(st);
    return v;
}

/* Does every frame of r equal the WAL file's frame at the same place? */
static int
frames_match_wal(const rec *r)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + r->page_size;
    uint8_t *f = malloc(fsz);
    int fd = open(walpath, O_RDONLY), same = f && fd >= 0 && r->frames;
    uint32_t first = r->last_frame - r->nframes + 1;
    for (uint32_t i = 0; same && i < r->nframes; i++) {
        off_t o = (off_t)wal_frame_offset(first + i, r->page_size);
        same = pread(fd, f, fsz, o) == (ssize_t)fsz &&
               memcmp(f, r->frames + i * fsz, fsz) == 0;
    }
    if (fd >= 0)
        close(fd);
    free(f);
    return same;
}

/* Distinct page numbers among r's frames; *commits: frames with a commit
 * field, *last_commits: whether the last one is the commit frame. */
static uint32_t
pages_of(const rec *r, uint32_t *commits, int *last_commits)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + r->page_size;
    uint32_t distinct = 0;
    *commits = 0;
    *last_commits = 0;
    for (uint32_t i = 0; r->frames && i < r->nframes; i++) {
        const uint8_t *f = r->frames + i * fsz;
        int seen = 0;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = wal_get32(r->frames + j * fsz) == wal_get32(f);
        distinct += !seen;
        if (wal_get32(f + 4)) {
            (*commits)++;
            *last_commits = i + 1 == r->nframes;
        }
    }
    return distinct;
}

/* One plain transaction (copied, not an image, not by reference). */
static int
plain(const rec *r)
{
    return (r->flags & (REP_FULL | REP_IMAGE | REP_WALREF)) == 0 && r->frames;
}

/* ---- the cases --------------------------------------------------------- */

static void
case_single_page(void)
{
    uint64_t before = captured_txid();
    uint32_t commits;
    int last;
    recs_clear();
    exec("UPDATE t SET v = v + 1 WHERE id = 1");
    ok(nrec == 1, "single page: one transaction queued (%d)", nrec);
    if (nrec != 1)
        return;
    ok(recs[0].txid == before + 1 && captured_txid() == before + 1,
       "single page: the next TXID (%llu after %llu), and the position "
       "says so",
       (unsigned long long)recs[0].txid, (unsigned long long)before);
    ok(plain(&recs[0]) && recs[0].nframes == 1 &&
           pages_of(&recs[0], &commits, &last) == 1 && commits == 1 && last,
       "single page: one frame, the commit frame (%u frames, flags %#x)",
       recs[0].nframes, recs[0].flags);
    ok(frames_match_wal(&recs[0]), "single page: the copy equals the WAL");
}

static void
case_many_pages(void)
{
    uint64_t before = captured_txid();
    uint32_t commits;
    int last;
    recs_clear();
    exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
         "WHERE i < 400) INSERT INTO big SELECT i, randomblob(1000) FROM n");
    ok(nrec == 1, "many pages: one transaction queued (%d)", nrec);
    if (nrec != 1)
        return;
    uint32_t distinct = pages_of(&recs[0], &commits, &last);
    ok(recs[0].txid == before + 1 && plain(&recs[0]),
       "many pages: the next TXID, copied");
    ok(recs[0].nframes > 100 && distinct == recs[0].nframes && commits == 1 &&
           last,
       "many pages: %u frames, each page once, one commit frame, last",
       recs[0].nframes);
    ok(frames_match_wal(&recs[0]), "many pages: the copy equals the WAL");
}

static void
case_rewritten(void)
{
    uint64_t before = captured_txid();
    uint32_t commits;
    int last;
    recs_clear();
    /* A cache smaller than the transaction: SQLite spills pages to the
     * WAL before the commit and rewrites those frames in place when the
     * same pages change again. */
    exec("PRAGMA cache_size = 5");
    exec("BEGIN");
    exec("UPDATE big SET v = randomblob(1000)");
    exec("UPDATE big SET v = randomblob(1000)");
    exec("COMMIT");
    exec("PRAGMA cache_size = -2000");
    ok(nrec == 1, "rewritten pages: one transaction queued (%d)", nrec);
    if (nrec != 1)
        return;
    uint32_t distinct = pages_of(&recs[0], &commits, &last);
    ok(recs[0].txid == before + 1 && commits == 1 && last,
       "rewritten pages: the next TXID, one commit frame, last "
       "(%u frames, %u pages)",
       recs[0].nframes, distinct);
    ok(frames_match_wal(&recs[0]),
       "rewritten pages: the copy followed the rewrites (equals the WAL)");
}

static void
case_rollbacks(void)
{
    uint64_t before = captured_txid();
    recs_clear();
    exec("BEGIN");
    exec("UPDATE t SET v = v + 1");
    exec("ROLLBACK");
    exec("PRAGMA cache_size = 5");
    exec("BEGIN");
    exec("UPDATE big SET v = randomblob(1000)");
    exec("ROLLBACK");
    exec("PRAGMA cache_size = -2000");
    ok(nrec == 0 && captured_txid() == before,
       "rollbacks (one spilled to the WAL): nothing queued, the position "
       "unchanged (%d queued)",
       nrec);
}

static void
case_savepoint(void)
{
    uint64_t before = captured_txid();
    recs_clear();
    exec("BEGIN");
    exec("INSERT INTO t(v) VALUES (100)");
    exec("SAVEPOINT s");
    exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
         "WHERE i < 50) INSERT INTO big SELECT i + 1000, randomblob(1000) "
         "FROM n");
    exec("ROLLBACK TO s");
    exec("RELEASE s");
    exec("COMMIT");
    ok(nrec == 1 && recs[0].txid == before + 1 && plain(&recs[0]) &&
           frames_match_wal(&recs[0]),
       "savepoint rolled back inside a commit: one TXID, equal to the WAL "
       "(%d queued)",
       nrec);
}

static void
case_exclusive(void)
{
    uint64_t before = captured_txid();
    int okay = 1;
    recs_clear();
    exec("PRAGMA locking_mode = EXCLUSIVE");
    for (int i = 0; i < 3; i++)
        exec("UPDATE t SET v = v + 1 WHERE id = 1");
    for (int i = 0; i < nrec; i++)
        okay = okay && recs[i].txid == before + 1 + (uint64_t)i;
    ok(nrec == 3 && okay,
       "exclusive locking mode: one TXID per commit (%d queued)", nrec);
    exec("PRAGMA locking_mode = NORMAL");
    exec("SELECT count(*) FROM t"); /* gives the exclusive lock up */
}

static void
case_by_reference(void)
{
    uint64_t before = captured_txid();
    recs_clear();
    /* More than BUF_MAX (64 MB) written by one transaction. */
    exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
         "WHERE i < 700) INSERT INTO big SELECT i + 2000, "
         "randomblob(100000) FROM n");
    ok(nrec == 1 && recs[0].txid == before + 1 &&
           (recs[0].flags & REP_WALREF) && !recs[0].frames,
       "a transaction over %u MB: one TXID, queued by reference (flags %#x)",
       BUF_MAX >> 20, nrec ? recs[0].flags : 0);
    exec("DELETE FROM big WHERE id > 2000");
    /* Let the replicator finish reading it (a read transaction of its own
     * that would hold off the checkpoints of the cases below). */
    int_of("SELECT litestream_sync('main', 300000)");
}

/*
 * Runs zSql on a connection that bypasses the litestream VFS: commits the
 * capture never sees.  With zAfter, then checkpoints and truncates the WAL
 * (retrying while a reader, the replicator's, is in the way) and runs
 * zAfter, which starts a new WAL.  That connection never checkpoints on
 * its own.
 */
static void
behind_the_back(const char *zSql, const char *zAfter)
{
    sqlite3 *other = NULL;
    sqlite3_stmt *st = NULL;
    int busy = 1;
    if (sqlite3_open_v2(dbpath, &other, SQLITE_OPEN_READWRITE, "unix") !=
            SQLITE_OK ||
        sqlite3_exec(other, "PRAGMA wal_autocheckpoint = 0", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(other, zSql, NULL, NULL, NULL) != SQLITE_OK)
        diag("behind the back: %s: %s", zSql, sqlite3_errmsg(other));
    for (int i = 0; zAfter && busy && i < 6000; i++) {
        if (sqlite3_prepare_v2(other, "PRAGMA wal_checkpoint(TRUNCATE)", -1,
                               &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            busy = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (busy)
            usleep(10000);
    }
    if (zAfter &&
        (busy || sqlite3_exec(other, zAfter, NULL, NULL, NULL) != SQLITE_OK))
        diag("behind the back: %s: %s", zAfter, sqlite3_errmsg(other));
    sqlite3_close(other);
}

static void
case_reread(void)
{
    uint64_t before = captured_txid();
    recs_clear();
    behind_the_back("UPDATE t SET v = v + 1 WHERE id = 2", NULL);
    exec("UPDATE t SET v = v + 1 WHERE id = 1");
    ok(nrec == 2 && recs[0].txid == before + 1 && recs[1].txid == before + 2 &&
           plain(&recs[0]) && plain(&recs[1]) && frames_match_wal(&recs[0]) &&
           frames_match_wal(&recs[1]),
       "a commit the capture did not see: re-read from the WAL and "
       "validated, one TXID per commit (%d queued, flags %#x)",
       nrec, nrec ? recs[0].flags : 0);
}

static void
case_lost_position(void)
{
    uint64_t before = captured_txid();
    recs_clear();
    /* The WAL restarted behind the capture's back: the position is in a
     * WAL that no longer exists. */
    behind_the_back("UPDATE t SET v = v + 1 WHERE id = 2",
                    "UPDATE t SET v = v + 1 WHERE id = 3");
    exec("UPDATE t SET v = v + 1 WHERE id = 1");
    ok(nrec == 1 && recs[0].txid == before + 1 &&
           (recs[0].flags & (REP_FULL | REP_IMAGE)),
       "the WAL restarted behind the capture: the next TXID is a full "
       "image (%d queued, flags %#x)",
       nrec, nrec ? recs[0].flags : 0);
}

/* Another "process" with the database open: a second OFD read lock on
 * users.lock (sidecar_alone counts open file descriptions). */
static int other_user = -1;

static void
other_user_open(void)
{
    char z[400];
    snprintf(z, sizeof(z), "%s-litestream", dbpath);
    mkdir(z, 0700);
    snprintf(z, sizeof(z), "%s-litestream/users.lock", dbpath);
    other_user = open(z, O_RDWR | O_CREAT, 0600);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_len = 1};
    if (other_user < 0 || fcntl(other_user, F_OFD_SETLK, &fl) != 0)
        diag("cannot lock %s", z);
}

/* One commit; whether the capture queued it by reference. */
static int
commit_by_ref(void)
{
    recs_clear();
    exec("UPDATE t SET v = v + 1 WHERE id = 1");
    return nrec == 1 && (recs[0].flags & REP_WALREF);
}

static void
case_zero_copy(void)
{
    int n = 0, okay = 1;
    ok(!commit_by_ref(), "another user has the database open: copied");
    close(other_user); /* alone now: the replicator notices at a pass */
    for (n = 0; n < 3000 && !commit_by_ref(); n++)
        usleep(10000);
    ok(n < 3000, "alone: the next commits are queued by reference (%d)", n);
    uint64_t before = captured_txid();
    recs_clear();
    for (int i = 0; i < 5; i++)
        exec("UPDATE t SET v = v + 1 WHERE id = 2");
    for (int i = 0; i < nrec; i++)
        okay = okay && (recs[i].flags & REP_WALREF) && !recs[i].frames &&
               recs[i].txid == before + 1 + (uint64_t)i &&
               recs[i].nframes == 1 &&
               (i == 0 || recs[i].last_frame == recs[i - 1].last_frame + 1);
    ok(nrec == 5 && okay,
       "zero-copy: one reference per commit, consecutive TXIDs and frames "
       "(%d queued)",
       nrec);
    /* Our own restart: the references are spooled first (invariant 4). */
    exec("PRAGMA wal_checkpoint(PASSIVE)");
    exec("UPDATE t SET v = v + 1 WHERE id = 3");
    exec("UPDATE t SET v = v + 1 WHERE id = 3");
    /* A restart behind the capture's back (no extension, no fence): the
     * references still queued fail validation, a full image covers them. */
    behind_the_back("UPDATE t SET v = v + 1 WHERE id = 2",
                    "UPDATE t SET v = v + 1 WHERE id = 3");
    exec("UPDATE t SET v = v + 1 WHERE id = 1");
    exec("UPDATE t SET v = v + 1 WHERE id = 2");
}

static void
check_restore(void)
{
    char out[400], zSql[900];
    snprintf(out, sizeof(out), "%s/restored.db", dir);
    int64_t rep = int_of("SELECT litestream_sync('main', 60000)");
    ok(rep == (int64_t)captured_txid(),
       "litestream_sync() reaches the captured TXID (%lld)", (long long)rep);
    snprintf(zSql, sizeof(zSql),
             "SELECT json_valid(litestream_restore('file://%s/replica', "
             "'%s'))",
             dir, out);
    ok(int_of(zSql) == 1, "the replica restores");
    snprintf(zSql, sizeof(zSql), "ATTACH '%s' AS r", out);
    exec(zSql);
    ok(int_of("SELECT (SELECT count(*) FROM (SELECT * FROM t EXCEPT "
              "SELECT * FROM r.t)) + (SELECT count(*) FROM (SELECT * FROM "
              "big EXCEPT SELECT * FROM r.big)) + abs((SELECT count(*) FROM "
              "big) - (SELECT count(*) FROM r.big))") == 0,
       "the restored database equals the database");
    exec("DETACH r");
}

int
main(void)
{
    char zSql[400];
    api_init();
    snprintf(dir, sizeof(dir), "%s", "/tmp/ls-capture-XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    snprintf(dbpath, sizeof(dbpath), "%s/app.db", dir);
    snprintf(walpath, sizeof(walpath), "%s-wal", dbpath);
    ok(vfs_replicate_register() == SQLITE_OK, "the litestream VFS registers");
    ok(sqlite3_open(dbpath, &db) == SQLITE_OK, "a database opens through it");
    vfs_attach_connection(db, 1);
    ok(sql_register(db) == SQLITE_OK, "the SQL functions register");
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA wal_autocheckpoint = 0");
    exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    exec("CREATE TABLE big(id INTEGER PRIMARY KEY, v)");
    exec("INSERT INTO t(v) VALUES (1), (2), (3)");
    snprintf(zSql, sizeof(zSql), "PRAGMA litestream_url = 'file://%s/replica'",
             dir);
    other_user_open();
    ok(exec(zSql) == SQLITE_OK, "replication starts");

    case_single_page();
    case_many_pages();
    case_rewritten();
    case_rollbacks();
    case_savepoint();
    case_exclusive();
    exec("PRAGMA wal_checkpoint(TRUNCATE)");
    case_single_page(); /* from a restarted WAL */
    case_by_reference();
    case_reread();
    case_lost_position();
    case_zero_copy();
    check_restore();

    recs_clear();
    sqlite3_close(db);
    snprintf(zSql, sizeof(zSql), "rm -rf '%s'", dir);
    if (system(zSql) != 0)
        diag("cannot remove %s", dir);
    return tap_done();
}
