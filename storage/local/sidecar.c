/*
 * storage/local/sidecar.c: the sidecar directory, its memory-mapped position
 * page and config.json (sidecar.h, JSON through storage/base/json.h).
 *
 * Threads: the position page is written by application threads holding the
 * WAL write lock and read by anyone; the shared counters are atomics.
 */
#include "storage/local/sidecar.h"
#include "storage/backend/url.h"
#include "storage/base/fsutil.h"
#include "storage/base/json.h"
#include "storage/base/sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POS_MAGIC 0x4c535031u /* "LSP1" */
#define POS_SIZE  4096

typedef struct pos_page {
    uint32_t magic;
    uint32_t version;
    uint64_t seq; /* seqlock: odd while a writer is mid-update */
    ls_cap cap;
    _Alignas(64) uint64_t spooled_txid;
    uint64_t replicated_txid;
    int64_t replicated_ms;
    uint64_t txid_floor;
    /* The replicated TXID of replicas 2..LS_MAX_REPLICAS of a URL list
     * (slot i for replica i + 1; the first replica's are above, so a
     * single URL and older sidecars read as before).  Zero: unknown. */
    uint64_t more_txid[LS_MAX_REPLICAS - 1];
    int64_t more_ms[LS_MAX_REPLICAS - 1];
    /* The process whose queue names WAL frames by reference (zero-copy
     * capture), or 0: another process waits before restarting the WAL. */
    _Alignas(64) int32_t refs_pid;
} pos_page;

_Static_assert(sizeof(pos_page) <= POS_SIZE, "the position page is one page");

struct sidecar {
    char *zDir;
    pos_page *pos;
    int ship_fd;
    int ship_held;
    int users_fd; /* users.lock: a read lock (OFD) while open */
    dev_t dev;    /* the directory's identity: a removal is noticed */
    ino_t ino;
};

static char *
dir_of(const char *zDbPath)
{
    return sqlite3_mprintf("%s-litestream", zDbPath);
}

int
sidecar_exists(const char *zDbPath)
{
    char *z = dir_of(zDbPath);
    struct stat st;
    int r = z && stat(z, &st) == 0 && S_ISDIR(st.st_mode);
    sqlite3_free(z);
    return r;
}

int
sidecar_config_exists(const char *zDbPath)
{
    char *z = sqlite3_mprintf("%s-litestream/config.json", zDbPath);
    struct stat st;
    int r = z && stat(z, &st) == 0 && S_ISREG(st.st_mode);
    sqlite3_free(z);
    return r;
}

/*
 * users.lock: every process with the sidecar open holds a read lock on its
 * first byte, on its own open file description (OFD lock: another
 * descriptor, even in this process, counts as another user).  A failure
 * only means "not alone" for everybody (sidecar_alone).  No allocation:
 * also called in a fork handler.
 */
static void
users_open(sidecar *sc)
{
    char z[4096];
    int n = snprintf(z, sizeof(z), "%s/users.lock", sc->zDir);
    if (sc->users_fd >= 0)
        close(sc->users_fd);
    sc->users_fd = n > 0 && (size_t)n < sizeof(z)
                       ? open(z, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
                       : -1;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_len = 1};
    if (sc->users_fd >= 0 && fcntl(sc->users_fd, F_OFD_SETLK, &fl) != 0) {
        close(sc->users_fd);
        sc->users_fd = -1;
    }
}

int
sidecar_alone(sidecar *sc)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1};
    return sc->users_fd >= 0 && fcntl(sc->users_fd, F_OFD_GETLK, &fl) == 0 &&
           fl.l_type == F_UNLCK;
}

void
sidecar_refs_fence(sidecar *sc, int32_t pid)
{
    __atomic_store_n(&sc->pos->refs_pid, pid, __ATOMIC_SEQ_CST);
}

void
sidecar_refs_unfence(sidecar *sc, int32_t pid)
{
    int32_t want = pid;
    __atomic_compare_exchange_n(&sc->pos->refs_pid, &want, 0, 0,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

int
sidecar_refs_wait(sidecar *sc, int32_t self, int timeout_ms)
{
    for (int waited = 0;; waited++) {
        int32_t pid = __atomic_load_n(&sc->pos->refs_pid, __ATOMIC_SEQ_CST);
        if (pid == 0 || pid == self)
            return 1;
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            /* Died with its references: its queue is gone anyway. */
            sidecar_refs_unfence(sc, pid);
            return 1;
        }
        if (waited >= timeout_ms)
            return 0;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int
sidecar_open(const char *zDbPath, sidecar **out, char **pzErr)
{
    int rc = SQLITE_OK;
    int fd = -1;
    char *zPos = NULL, *zSpool = NULL, *zShip = NULL;
    sidecar *sc = sqlite3_malloc64(sizeof(*sc));
    *out = NULL;
    if (!sc)
        return SQLITE_NOMEM;
    memset(sc, 0, sizeof(*sc));
    sc->ship_fd = -1;
    sc->users_fd = -1;
    sc->zDir = dir_of(zDbPath);
    zPos = sqlite3_mprintf("%s/position", sc->zDir);
    zSpool = sqlite3_mprintf("%s/spool", sc->zDir);
    zShip = sqlite3_mprintf("%s/ship.lock", sc->zDir);
    if (!sc->zDir || !zPos || !zSpool || !zShip) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if ((mkdir(sc->zDir, 0700) && errno != EEXIST) ||
        (mkdir(zSpool, 0700) && errno != EEXIST)) {
        *pzErr = sqlite3_mprintf("litestream: cannot create '%s': %s", sc->zDir,
                                 strerror(errno));
        rc = SQLITE_CANTOPEN;
        goto out;
    }
    struct stat st;
    if (stat(sc->zDir, &st) == 0) {
        sc->dev = st.st_dev;
        sc->ino = st.st_ino;
    }
    fd = open(zPos, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, POS_SIZE) != 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot open '%s': %s", zPos,
                                 strerror(errno));
        rc = SQLITE_CANTOPEN;
        goto out;
    }
    /* The page's blocks exist before it is mapped: a store into a hole of
     * a full filesystem would be SIGBUS, here it is an error. */
    int e = posix_fallocate(fd, 0, POS_SIZE);
    if (e == ENOSPC || e == EDQUOT) {
        *pzErr = sqlite3_mprintf("litestream: cannot open '%s': %s (the "
                                 "sidecar's disk is full)",
                                 zPos, strerror(e));
        rc = SQLITE_FULL;
        goto out;
    }
    sc->pos = mmap(NULL, POS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sc->pos == MAP_FAILED) {
        sc->pos = NULL;
        *pzErr = sqlite3_mprintf("litestream: cannot map '%s': %s", zPos,
                                 strerror(errno));
        rc = SQLITE_IOERR;
        goto out;
    }
    /* A fresh page is all zeros: magic 0 means "never captured". */
    if (__atomic_load_n(&sc->pos->magic, __ATOMIC_ACQUIRE) != POS_MAGIC) {
        uint32_t zero = 0;
        __atomic_compare_exchange_n(&sc->pos->magic, &zero, POS_MAGIC, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    sc->ship_fd = open(zShip, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sc->ship_fd < 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot open '%s': %s", zShip,
                                 strerror(errno));
        rc = SQLITE_CANTOPEN;
        goto out;
    }
    users_open(sc);
out:
    if (fd >= 0)
        close(fd);
    sqlite3_free(zPos);
    sqlite3_free(zSpool);
    sqlite3_free(zShip);
    if (rc != SQLITE_OK)
        sidecar_close(sc);
    else
        *out = sc;
    return rc;
}

void
sidecar_close(sidecar *sc)
{
    if (!sc)
        return;
    if (sc->pos)
        munmap(sc->pos, POS_SIZE);
    if (sc->ship_fd >= 0)
        close(sc->ship_fd); /* releases the flock */
    if (sc->users_fd >= 0)
        close(sc->users_fd); /* and the users lock */
    sqlite3_free(sc->zDir);
    sqlite3_free(sc);
}

const char *
sidecar_dir(const sidecar *sc)
{
    return sc->zDir;
}

int
sidecar_cap_read(sidecar *sc, ls_cap *out)
{
    pos_page *p = sc->pos;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t s1 = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            /* A writer is mid-update, or died there.  Writers only run
             * under the WAL write lock, which our caller usually holds: in
             * that case the sequence can only be odd because one died. */
            if (tries > 100)
                return 0;
            continue;
        }
        memcpy(out, &p->cap, sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->seq, __ATOMIC_RELAXED) == s1)
            return (out->flags & CAP_VALID) != 0;
    }
    return 0;
}

void
sidecar_cap_write(sidecar *sc, const ls_cap *cap)
{
    pos_page *p = sc->pos;
    uint64_t s = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
    s |= 1; /* odd: mid-update (also repairs a writer that died) */
    __atomic_store_n(&p->seq, s, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(&p->cap, cap, sizeof(*cap));
    __atomic_store_n(&p->seq, s + 1, __ATOMIC_RELEASE);
}

uint64_t
sidecar_spooled(sidecar *sc)
{
    return __atomic_load_n(&sc->pos->spooled_txid, __ATOMIC_ACQUIRE);
}

void
sidecar_set_spooled(sidecar *sc, uint64_t txid)
{
    uint64_t cur = sidecar_spooled(sc);
    while (cur < txid &&
           !__atomic_compare_exchange_n(&sc->pos->spooled_txid, &cur, txid, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

uint64_t
sidecar_replicated(sidecar *sc)
{
    return __atomic_load_n(&sc->pos->replicated_txid, __ATOMIC_ACQUIRE);
}

int64_t
sidecar_replicated_at(sidecar *sc)
{
    return __atomic_load_n(&sc->pos->replicated_ms, __ATOMIC_ACQUIRE);
}

void
sidecar_set_replicated(sidecar *sc, uint64_t txid, int64_t at_ms)
{
    __atomic_store_n(&sc->pos->replicated_ms, at_ms, __ATOMIC_RELEASE);
    __atomic_store_n(&sc->pos->replicated_txid, txid, __ATOMIC_RELEASE);
}

uint64_t
sidecar_replicated_n(sidecar *sc, int n)
{
    if (n <= 0 || n >= LS_MAX_REPLICAS)
        return sidecar_replicated(sc);
    return __atomic_load_n(&sc->pos->more_txid[n - 1], __ATOMIC_ACQUIRE);
}

int64_t
sidecar_replicated_at_n(sidecar *sc, int n)
{
    if (n <= 0 || n >= LS_MAX_REPLICAS)
        return sidecar_replicated_at(sc);
    return __atomic_load_n(&sc->pos->more_ms[n - 1], __ATOMIC_ACQUIRE);
}

void
sidecar_set_replicated_n(sidecar *sc, int n, uint64_t txid, int64_t at_ms)
{
    if (n <= 0 || n >= LS_MAX_REPLICAS) {
        sidecar_set_replicated(sc, txid, at_ms);
        return;
    }
    __atomic_store_n(&sc->pos->more_ms[n - 1], at_ms, __ATOMIC_RELEASE);
    __atomic_store_n(&sc->pos->more_txid[n - 1], txid, __ATOMIC_RELEASE);
}

uint64_t
sidecar_txid_above(sidecar *sc)
{
    uint64_t f = __atomic_load_n(&sc->pos->txid_floor, __ATOMIC_ACQUIRE);
    uint64_t s = __atomic_load_n(&sc->pos->spooled_txid, __ATOMIC_ACQUIRE);
    uint64_t r = __atomic_load_n(&sc->pos->replicated_txid, __ATOMIC_ACQUIRE);
    return f > s ? (f > r ? f : r) : (s > r ? s : r);
}

uint64_t
sidecar_txid_floor(sidecar *sc)
{
    return __atomic_load_n(&sc->pos->txid_floor, __ATOMIC_ACQUIRE);
}

void
sidecar_set_txid_floor(sidecar *sc, uint64_t txid)
{
    __atomic_store_n(&sc->pos->txid_floor, txid, __ATOMIC_RELEASE);
}

void
sidecar_after_fork(sidecar *sc)
{
    /* The inherited descriptor shares the parent's lock: get our own.
     * Called in a fork handler of the child: no allocation (SQLite's
     * allocator mutex may have been held by another thread of the parent
     * at the fork, and would stay locked here for ever). */
    if (sc->ship_fd >= 0) {
        char z[4096];
        int n = snprintf(z, sizeof(z), "%s/ship.lock", sc->zDir);
        close(sc->ship_fd);
        sc->ship_fd = n > 0 && (size_t)n < sizeof(z)
                          ? open(z, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
                          : -1;
    }
    sc->ship_held = 0;
    if (sc->users_fd >= 0)
        users_open(sc); /* the parent's lock is the parent's */
}

int
sidecar_ship_trylock(sidecar *sc)
{
    if (sc->ship_held)
        return 1;
    if (sc->ship_fd >= 0 && flock(sc->ship_fd, LOCK_EX | LOCK_NB) == 0)
        sc->ship_held = 1;
    return sc->ship_held;
}

void
sidecar_ship_unlock(sidecar *sc)
{
    if (sc->ship_held && sc->ship_fd >= 0)
        flock(sc->ship_fd, LOCK_UN);
    sc->ship_held = 0;
}

int
sidecar_url_current(sidecar *sc, const char *zDbPath, const char *zUrl,
                    int64_t since_ns, sidecar_seen *seen, char **pzNow)
{
    struct stat st;
    char *zPath = sqlite3_mprintf("%s/config.json", sc->zDir);
    int rc = zPath ? stat(zPath, &st) : -1;
    sqlite3_free(zPath);
    if (rc != 0)
        return 1; /* no settings file: nothing says otherwise */
    int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (seen->mtime_ns == m && seen->size == (int64_t)st.st_size &&
        seen->ino == (int64_t)st.st_ino)
        return seen->current;
    seen->mtime_ns = m;
    seen->size = (int64_t)st.st_size;
    seen->ino = (int64_t)st.st_ino;
    ls_config c;
    sidecar_config_read(zDbPath, &c);
    if (c.zUrl == NULL) {
        /* Unreadable right now (or being replaced): the previous verdict
         * stands, and the file is read again next time. */
        seen->mtime_ns = 0;
        return seen->current || m < since_ns;
    }
    seen->current = strcmp(c.zUrl, zUrl) == 0 || m < since_ns;
    if (!seen->current && pzNow)
        *pzNow = url_redact(c.zUrl && c.zUrl[0] ? c.zUrl : "(none)");
    sqlite3_free(c.zUrl);
    return seen->current;
}

void
sidecar_config_defaults(ls_config *c)
{
    c->zUrl = NULL;
    c->sync_ms = LS_DEFAULT_SYNC_MS;
    c->spool_limit = LS_DEFAULT_SPOOL_LIMIT;
    pitr_defaults(&c->pitr);
    c->durability = LS_DURABILITY_LOCAL;
    c->durability_ms = LS_DEFAULT_DURABILITY_MS;
}

/* A positive millisecond count, or PITR_OFF where off is allowed. */
static void
config_ms(json_t *root, const char *zKey, int allow_off, int64_t *out)
{
    json_t *v = json_object_get(root, zKey);
    if (json_is_integer(v) &&
        (json_integer_value(v) > 0 ||
         (allow_off && json_integer_value(v) == PITR_OFF)))
        *out = json_integer_value(v);
}

/* The PITR settings of config.json (defaults already in p). */
static void
config_read_pitr(json_t *root, ls_pitr *p)
{
    json_t *lv = json_object_get(root, "levels_ms");
    size_t n = json_array_size(lv);
    if (n >= 1 && n <= TIMEFMT_MAX_LEVELS) {
        int64_t a[TIMEFMT_MAX_LEVELS];
        size_t i;
        for (i = 0; i < n; i++) {
            json_t *e = json_array_get(lv, i);
            if (!json_is_integer(e) || json_integer_value(e) <= 0 ||
                (i > 0 && json_integer_value(e) <= a[i - 1]))
                break;
            a[i] = json_integer_value(e);
        }
        if (i == n) {
            memcpy(p->levels, a, sizeof(a[0]) * n);
            p->nlevels = (int)n;
        }
    }
    config_ms(root, "snapshot_interval_ms", 0, &p->snapshot_ms);
    config_ms(root, "snapshot_retention_ms", 1, &p->snapshot_retention_ms);
    config_ms(root, "l0_retention_ms", 1, &p->l0_retention_ms);
}

static void
config_write_pitr(json_t *root, const ls_pitr *p)
{
    json_t *lv = json_array();
    for (int i = 0; i < p->nlevels; i++)
        json_array_append_new(lv, json_integer(p->levels[i]));
    json_object_set_new(root, "levels_ms", lv);
    json_object_set_new(root, "snapshot_interval_ms",
                        json_integer(p->snapshot_ms));
    json_object_set_new(root, "snapshot_retention_ms",
                        json_integer(p->snapshot_retention_ms));
    json_object_set_new(root, "l0_retention_ms",
                        json_integer(p->l0_retention_ms));
}

void
sidecar_config_read(const char *zDbPath, ls_config *c)
{
    char *zPath = sqlite3_mprintf("%s-litestream/config.json", zDbPath);
    json_t *root = zPath ? json_load_file(zPath, 0, NULL) : NULL;
    sidecar_config_defaults(c);
    if (root) {
        const char *u = json_string_value(json_object_get(root, "url"));
        json_t *si = json_object_get(root, "sync_interval_ms");
        json_t *sl = json_object_get(root, "spool_limit");
        if (u && u[0])
            c->zUrl = sqlite3_mprintf("%s", u);
        if (json_is_integer(si) && json_integer_value(si) > 0)
            c->sync_ms = (int)json_integer_value(si);
        if (json_is_integer(sl) && json_integer_value(sl) > 0)
            c->spool_limit = json_integer_value(sl);
        config_read_pitr(root, &c->pitr);
        json_t *du = json_object_get(root, "durability");
        json_t *dt = json_object_get(root, "durability_timeout_ms");
        if (json_is_integer(du) && json_integer_value(du) >= 0 &&
            json_integer_value(du) <= LS_DURABILITY_REMOTE_ALL)
            c->durability = (int)json_integer_value(du);
        if (json_is_integer(dt) && json_integer_value(dt) > 0 &&
            json_integer_value(dt) <= INT32_MAX)
            c->durability_ms = (int)json_integer_value(dt);
        json_decref(root);
    }
    sqlite3_free(zPath);
}

int
sidecar_config_write(sidecar *sc, const ls_config *c, char **pzErr)
{
    int rc = SQLITE_OK;
    char *zPath = sqlite3_mprintf("%s/config.json", sc->zDir);
    /* A temporary name of this writer's own: two processes setting the
     * URL at once must not rename each other's file away. */
    static unsigned seq;
    char *zTmp =
        sqlite3_mprintf("%s/config.json.%d-%u.tmp", sc->zDir, (int)getpid(),
                        __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    json_t *root = json_object();
    char *text = NULL;
    int fd = -1;
    if (!zPath || !zTmp || !root) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    json_object_set_new(root, "url", json_string(c->zUrl ? c->zUrl : ""));
    json_object_set_new(root, "sync_interval_ms", json_integer(c->sync_ms));
    json_object_set_new(root, "spool_limit", json_integer(c->spool_limit));
    config_write_pitr(root, &c->pitr);
    json_object_set_new(root, "durability", json_integer(c->durability));
    json_object_set_new(root, "durability_timeout_ms",
                        json_integer(c->durability_ms));
    text = json_dumps(root, JSON_INDENT(2));
    if (!text) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    fd = open(zTmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
        fsync(fd) != 0 || rename(zTmp, zPath) != 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot write '%s': %s", zPath,
                                 strerror(errno));
        rc = SQLITE_IOERR;
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc != SQLITE_OK && zTmp)
        unlink(zTmp); /* nothing left behind */
    free(text);       /* allocated by jansson */
    json_decref(root);
    sqlite3_free(zPath);
    sqlite3_free(zTmp);
    return rc;
}

/*
 * The position file of a sidecar created again: a copy of this process's
 * page, put in place atomically (link() of a complete file: a process
 * that opens the database meanwhile never maps a half-written page), or
 * the one another process put there first; then mapped over the old page
 * at the same address, so every reader of sc->pos follows.  A capture
 * that lands on the old page in between only costs a recapture.
 */
static int
position_adopt(sidecar *sc, char **pzErr)
{
    int rc = SQLITE_IOERR;
    char *zPos = sqlite3_mprintf("%s/position", sc->zDir);
    char *zTmp = sqlite3_mprintf("%s/position.%d.tmp", sc->zDir, (int)getpid());
    int fd = -1;
    if (!zPos || !zTmp) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    fd = open(zTmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fs_pwrite_all(fd, sc->pos, POS_SIZE, 0) != 0 ||
        (link(zTmp, zPos) != 0 && errno != EEXIST))
        goto fail;
    close(fd);
    fd = open(zPos, O_RDWR | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, POS_SIZE) != 0 ||
        mmap(sc->pos, POS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
             fd, 0) == MAP_FAILED)
        goto fail;
    rc = SQLITE_OK;
    goto out;
fail:
    *pzErr = sqlite3_mprintf("litestream: cannot create '%s' again: %s", zPos,
                             strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (zTmp)
        unlink(zTmp);
    sqlite3_free(zPos);
    sqlite3_free(zTmp);
    return rc;
}

int
sidecar_recreate(sidecar *sc, const ls_config *c, int *pAgain, char **pzErr)
{
    struct stat st;
    *pAgain = 0;
    if (stat(sc->zDir, &st) == 0 && st.st_dev == sc->dev &&
        st.st_ino == sc->ino)
        return SQLITE_OK;
    char *zSpool = sqlite3_mprintf("%s/spool", sc->zDir);
    char *zShip = sqlite3_mprintf("%s/ship.lock", sc->zDir);
    char *zCfg = sqlite3_mprintf("%s/config.json", sc->zDir);
    int rc = SQLITE_NOMEM;
    if (!zSpool || !zShip || !zCfg)
        goto out;
    rc = SQLITE_CANTOPEN;
    if ((mkdir(sc->zDir, 0700) && errno != EEXIST) ||
        (mkdir(zSpool, 0700) && errno != EEXIST) || stat(sc->zDir, &st)) {
        *pzErr = sqlite3_mprintf("litestream: cannot create '%s' again: %s",
                                 sc->zDir, strerror(errno));
        goto out;
    }
    rc = position_adopt(sc, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    /* The ship lock on the new file: this process gives the old one up. */
    int fd = open(zShip, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sc->ship_fd >= 0)
        close(sc->ship_fd); /* never keep shipping on the removed file */
    sc->ship_fd = fd;
    sc->ship_held = 0;
    users_open(sc);
    if (fd < 0) {
        rc = SQLITE_CANTOPEN;
        *pzErr = sqlite3_mprintf("litestream: cannot create '%s' again: %s",
                                 zShip, strerror(errno));
        goto out;
    }
    /* Only a process whose URL is still the database's writes it back. */
    if (c->zUrl && access(zCfg, F_OK) != 0) {
        rc = sidecar_config_write(sc, c, pzErr);
        if (rc != SQLITE_OK)
            goto out; /* the whole check runs again next time */
    }
    sc->dev = st.st_dev;
    sc->ino = st.st_ino;
    *pAgain = 1;
out:
    sqlite3_free(zSpool);
    sqlite3_free(zShip);
    sqlite3_free(zCfg);
    return rc;
}
