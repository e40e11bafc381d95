/*
 * storage/backend/file.c: the file backend (file:///abs/dir, or a plain
 * absolute path).  Objects are regular files under the root directory; a
 * key "ltx/0/x.ltx" is the file "<root>/ltx/0/x.ltx".
 *
 * Invariants:
 *   1. put() is atomic and durable: the bytes go to a unique
 *      "<key>.<pid>-<n>.tmp" (O_EXCL), which is fsynced, given the object's
 *      creation time as mtime, renamed over the key, and the directory is
 *      fsynced.  Directories it creates are fsynced into their parent.
 *      A reader therefore sees the old object, the new one, or none, never a
 *      partial one; a crash leaves at most a stray ".tmp", which list()
 *      never shows.
 *   2. list() shows regular files only, never dotfiles nor "*.tmp", sorted
 *      by key; created_ms is the file's mtime.
 *   3. Keys are relative and may not contain ".." segments (SQLITE_MISUSE),
 *      so nothing outside the root is ever touched.
 *
 * Threads: a handle is used by one thread at a time (backend.h); distinct
 * handles on the same root may run concurrently (temporary names are unique
 * per process and call).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/base/fsutil.h"
#include "storage/backend/backend.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

typedef struct file_backend {
    backend base;
    char *root; /* absolute directory, no trailing slash (except "/") */
    char *zErr; /* message of the last failure, or NULL */
    backend_counters counters;
} file_backend;

/* Source of the unique part of temporary names. */
static unsigned long file_tmp_counter;

/* Replaces the handle's message; returns rc. */
static int
file_err(file_backend *fb, int rc, const char *zFmt, ...)
{
    va_list ap;
    char *z;

    va_start(ap, zFmt);
    z = sqlite3_vmprintf(zFmt, ap);
    va_end(ap);
    sqlite3_free(fb->zErr);
    fb->zErr = z;
    return rc;
}

/* SQLite code for a failed write-side system call. */
static int
file_errno_rc(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return SQLITE_FULL;
    case EACCES:
    case EPERM:
    case EROFS:
        return SQLITE_CANTOPEN;
    case ENOMEM:
        return SQLITE_NOMEM;
    default:
        return SQLITE_IOERR;
    }
}

/* Records a failed write-side call on path (a directory if isDir). */
static int
file_write_err(file_backend *fb, int e, const char *zPath, int isDir)
{
    int rc = file_errno_rc(e);

    if (rc == SQLITE_FULL)
        return file_err(fb, rc,
                        "litestream: replica disk full writing "
                        "'%s': %s",
                        zPath, strerror(e));
    if (rc == SQLITE_CANTOPEN)
        return file_err(fb, rc,
                        "litestream: cannot write replica "
                        "directory '%s': %s",
                        zPath, strerror(e));
    return file_err(fb, rc, "litestream: cannot write replica %s '%s': %s",
                    isDir ? "directory" : "file", zPath, strerror(e));
}

/* SQLITE_OK if key is a relative name without ".." segments. */
static int
file_key_check(file_backend *fb, const char *key)
{
    const char *z = key;

    if (key == NULL || key[0] == 0 || key[0] == '/')
        return file_err(fb, SQLITE_MISUSE,
                        "litestream: invalid object key "
                        "'%s'",
                        key ? key : "");
    while (*z) {
        size_t n = strcspn(z, "/");
        if (n == 2 && z[0] == '.' && z[1] == '.')
            return file_err(fb, SQLITE_MISUSE,
                            "litestream: invalid object "
                            "key '%s'",
                            key);
        z += n;
        if (*z == '/')
            z++;
    }
    return SQLITE_OK;
}

/* "<root>/<rel>" (rel may be ""), or NULL if out of memory. */
static char *
file_path(const file_backend *fb, const char *rel)
{
    const char *zSep = strcmp(fb->root, "/") == 0 ? "" : "/";
    return sqlite3_mprintf("%s%s%s", fb->root, rel[0] ? zSep : "", rel);
}

/* fsyncs a directory; 0 or errno. */
static int
file_fsync_dir(const char *zDir)
{
    int fd = open(zDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = 0;

    if (fd < 0)
        return errno;
    if (fsync(fd) != 0 && errno != EINVAL)
        e = errno;
    close(fd);
    return e;
}

/*
 * Creates directory zDir and its missing parents (mode 0755), fsyncing each
 * new directory into its parent.
 */
static int
file_mkdirs(file_backend *fb, char *zDir)
{
    struct stat st;
    char *zSlash;
    int e;

    if (stat(zDir, &st) == 0 && S_ISDIR(st.st_mode))
        return SQLITE_OK;
    for (zSlash = zDir + 1;; zSlash++) {
        if (*zSlash != '/' && *zSlash != 0)
            continue;
        char c = *zSlash;
        *zSlash = 0;
        e = mkdir(zDir, 0755) == 0 ? 0 : errno;
        if (e == 0) {
            char *zLast = strrchr(zDir, '/');
            *zLast = 0;
            e = file_fsync_dir(zLast == zDir ? "/" : zDir);
            *zLast = '/';
        } else if (e == EEXIST) {
            e = 0;
        }
        if (e != 0) {
            int rc = file_write_err(fb, e, zDir, 1);
            *zSlash = c;
            return rc;
        }
        *zSlash = c;
        if (c == 0)
            return SQLITE_OK;
    }
}

/* The directory that holds zPath (sqlite3_malloc'd in *pzDir), created
 * if missing.  zPath may be NULL (out of memory). */
static int
file_parent_dir(file_backend *fb, const char *zPath, char **pzDir)
{
    char *zDir = zPath ? sqlite3_mprintf("%s", zPath) : NULL;
    *pzDir = zDir;
    if (!zDir)
        return file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
    *strrchr(zDir, '/') = 0;
    if (zDir[0] == 0)
        strcpy(zDir, "/");
    return file_mkdirs(fb, zDir);
}

/* Sets the object's mtime to its creation time (ms; <= 0: leave it). */
static int
file_set_time(int fd, int64_t created_ms)
{
    struct timespec ts[2];
    if (created_ms <= 0)
        return 0;
    ts[0].tv_sec = (time_t)(created_ms / 1000);
    ts[0].tv_nsec = (long)(created_ms % 1000) * 1000000L;
    ts[1] = ts[0];
    return futimens(fd, ts) == 0 ? 0 : errno;
}

/* Writes, times and fsyncs the new temporary file zTmp; 0 or errno. */
static int
file_put_tmp(const char *zTmp, const void *data, size_t n, int64_t created_ms)
{
    int fd, e;

    fd = open(zTmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    e = fs_write_all(fd, data, n);
    if (e == 0)
        e = file_set_time(fd, created_ms);
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    return e;
}

static int
file_put(backend *b, const char *key, const void *data, size_t n,
         int64_t created_ms)
{
    file_backend *fb = (file_backend *)b;
    char *zPath = NULL, *zDir = NULL, *zTmp = NULL;
    int rc, e, tmpMade = 0;

    rc = file_key_check(fb, key);
    if (rc != SQLITE_OK)
        goto out;
    zPath = file_path(fb, key);
    zTmp = zPath ? sqlite3_mprintf("%s.%d-%lu.tmp", zPath, (int)getpid(),
                                   __atomic_add_fetch(&file_tmp_counter, 1,
                                                      __ATOMIC_RELAXED))
                 : NULL;
    if (zTmp == NULL) {
        rc = file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
        goto out;
    }
    rc = file_parent_dir(fb, zPath, &zDir);
    if (rc != SQLITE_OK)
        goto out;
    e = file_put_tmp(zTmp, data, n, created_ms);
    tmpMade = e != EEXIST;
    if (e == 0 && rename(zTmp, zPath) != 0)
        e = errno;
    if (e == 0) {
        tmpMade = 0;
        e = file_fsync_dir(zDir);
    }
    if (e != 0) {
        rc = file_write_err(fb, e, e == EACCES || e == EPERM ? zDir : zPath,
                            e == EACCES || e == EPERM);
        goto out;
    }
    fb->counters.n_put++;
    fb->counters.bytes_up += n;
out:
    if (tmpMade)
        unlink(zTmp);
    sqlite3_free(zTmp);
    sqlite3_free(zDir);
    sqlite3_free(zPath);
    return rc;
}

/* Copies n bytes of src_fd into a new temporary file beside zPath, then
 * renames it to zPath; 0 or errno. */
static int
file_copy_in(int src_fd, uint64_t n, const char *zPath, const char *zDir,
             int64_t created_ms)
{
    char *zTmp = sqlite3_mprintf(
        "%s.%d-%lu.tmp", zPath, (int)getpid(),
        __atomic_add_fetch(&file_tmp_counter, 1, __ATOMIC_RELAXED));
    uint8_t *buf = sqlite3_malloc64(1 << 20);
    int fd = -1, e = 0;
    if (!zTmp || !buf) {
        e = ENOMEM;
        goto out;
    }
    fd = open(zTmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
        goto out;
    }
    for (uint64_t o = 0; o < n && e == 0;) {
        size_t k = n - o < (1u << 20) ? (size_t)(n - o) : (1u << 20);
        ssize_t r = pread(src_fd, buf, k, (off_t)o);
        if (r <= 0)
            e = r < 0 ? errno : EIO;
        else
            e = fs_write_all(fd, buf, (size_t)r);
        o += r > 0 ? (uint64_t)r : 0;
    }
    if (e == 0)
        e = file_set_time(fd, created_ms);
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (e == 0 && rename(zTmp, zPath) != 0)
        e = errno;
    if (e == 0)
        e = file_fsync_dir(zDir);
out:
    if (fd >= 0)
        close(fd);
    if (e != 0 && zTmp)
        unlink(zTmp);
    sqlite3_free(zTmp);
    sqlite3_free(buf);
    return e;
}

/*
 * put_file: the object is already a finished local file.  Same filesystem:
 * time it, fsync it and rename it into place (no copy).  Otherwise copy it
 * through file_put's temporary-file path in 1 MiB pieces.
 */
static int
file_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
              int64_t created_ms)
{
    file_backend *fb = (file_backend *)b;
    char *zPath = NULL, *zDir = NULL;
    int rc, e = 0, fd = -1;

    rc = file_key_check(fb, key);
    if (rc != SQLITE_OK)
        goto out;
    zPath = file_path(fb, key);
    rc = file_parent_dir(fb, zPath, &zDir);
    if (rc != SQLITE_OK)
        goto out;
    fd = open(zSrc, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
    } else {
        e = file_set_time(fd, created_ms);
        if (e == 0 && fsync(fd) != 0)
            e = errno;
    }
    if (e == 0 && rename(zSrc, zPath) == 0) {
        e = file_fsync_dir(zDir);
    } else if (e == 0 && errno == EXDEV) {
        /* Another filesystem: stream a copy to a temporary file beside the
         * object, then rename that (memory bounded by the piece). */
        e = file_copy_in(fd, n, zPath, zDir, created_ms);
    } else if (e == 0) {
        e = errno;
    }
    if (e != 0) {
        rc = file_write_err(fb, e, e == EACCES || e == EPERM ? zDir : zPath,
                            e == EACCES || e == EPERM);
        goto out;
    }
    fb->counters.n_put++;
    fb->counters.bytes_up += n;
out:
    if (fd >= 0)
        close(fd);
    sqlite3_free(zDir);
    sqlite3_free(zPath);
    return rc;
}

static int
file_get(backend *b, const char *key, uint64_t offset, uint64_t len,
         uint8_t **out, size_t *nOut)
{
    file_backend *fb = (file_backend *)b;
    char *zPath = NULL;
    uint8_t *buf = NULL;
    struct stat st;
    uint64_t n = 0;
    int rc, fd = -1, e;

    *out = NULL;
    *nOut = 0;
    rc = file_key_check(fb, key);
    if (rc != SQLITE_OK)
        goto out;
    zPath = file_path(fb, key);
    if (zPath == NULL) {
        rc = file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
        goto out;
    }
    fd = open(zPath, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        e = errno;
        rc = (e == ENOENT || e == ENOTDIR) ? SQLITE_NOTFOUND : SQLITE_IOERR;
        if (rc == SQLITE_NOTFOUND)
            rc = file_err(fb, rc, "litestream: object '%s' not found in '%s'",
                          key, fb->root);
        else
            rc = file_err(fb, rc, "litestream: cannot read '%s': %s", zPath,
                          strerror(e));
        goto out;
    }
    if (offset < (uint64_t)st.st_size)
        n = (uint64_t)st.st_size - offset;
    if (len < n)
        n = len;
    buf = sqlite3_malloc64(n ? n : 1);
    if (buf == NULL) {
        rc = file_err(fb, SQLITE_NOMEM,
                      "litestream: out of memory reading "
                      "'%s'",
                      zPath);
        goto out;
    }
    e = fs_pread_all(fd, buf, (size_t)n, offset);
    if (e != 0) {
        rc = file_err(fb, SQLITE_IOERR, "litestream: cannot read '%s': %s",
                      zPath, strerror(e));
        goto out;
    }
    fb->counters.n_get++;
    fb->counters.bytes_down += n;
    *out = buf;
    *nOut = (size_t)n;
    buf = NULL;
out:
    if (fd >= 0)
        close(fd);
    sqlite3_free(buf);
    sqlite3_free(zPath);
    return rc;
}

static int
file_obj_cmp(const void *a, const void *b)
{
    return strcmp(((const backend_obj *)a)->key, ((const backend_obj *)b)->key);
}

static int
file_listable(const char *zName)
{
    size_t n = strlen(zName);
    return zName[0] != '.' && !(n >= 4 && strcmp(zName + n - 4, ".tmp") == 0);
}

/* Appends one entry to *pObjs (capacity *pCap); SQLITE_OK or NOMEM. */
static int
file_list_add(backend_obj **pObjs, int *pN, int *pCap, const char *zName,
              const struct stat *st)
{
    backend_obj *o;

    if (*pN == *pCap) {
        int nCap = *pCap ? *pCap * 2 : 64;
        o = sqlite3_realloc64(*pObjs, sizeof(backend_obj) * (size_t)nCap);
        if (o == NULL)
            return SQLITE_NOMEM;
        *pObjs = o;
        *pCap = nCap;
    }
    o = &(*pObjs)[*pN];
    o->key = sqlite3_mprintf("%s", zName);
    if (o->key == NULL)
        return SQLITE_NOMEM;
    o->size = (uint64_t)st->st_size;
    o->created_ms =
        (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    (*pN)++;
    return SQLITE_OK;
}

/* Lists the regular files (dirs 0) or the directories (dirs 1) directly
 * under prefix. */
static int
file_list_kind(backend *b, const char *prefix, int dirs, backend_obj **objs,
               int *n)
{
    file_backend *fb = (file_backend *)b;
    backend_obj *a = NULL;
    int na = 0, cap = 0, rc = SQLITE_OK;
    char *zDir = NULL;
    DIR *d = NULL;
    struct dirent *de;

    *objs = NULL;
    *n = 0;
    if (prefix[0] && (rc = file_key_check(fb, prefix)) != SQLITE_OK)
        goto out;
    zDir = file_path(fb, prefix);
    if (zDir == NULL) {
        rc = file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
        goto out;
    }
    d = opendir(zDir);
    if (d == NULL) {
        if (errno != ENOENT && errno != ENOTDIR)
            rc = file_err(fb,
                          file_errno_rc(errno) == SQLITE_CANTOPEN
                              ? SQLITE_CANTOPEN
                              : SQLITE_IOERR,
                          "litestream: cannot read replica directory "
                          "'%s': %s",
                          zDir, strerror(errno));
        goto out; /* a missing prefix is an empty list */
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        if (!file_listable(de->d_name))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 ||
            !(dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
            continue; /* vanished meanwhile, or not of the kind asked */
        rc = file_list_add(&a, &na, &cap, de->d_name, &st);
        if (rc != SQLITE_OK) {
            rc = file_err(fb, rc, "litestream: out of memory listing '%s'",
                          zDir);
            goto out;
        }
    }
    if (errno != 0) {
        rc = file_err(fb, SQLITE_IOERR,
                      "litestream: cannot read replica "
                      "directory '%s': %s",
                      zDir, strerror(errno));
        goto out;
    }
    if (na > 1)
        qsort(a, (size_t)na, sizeof(*a), file_obj_cmp);
out:
    if (d)
        closedir(d);
    sqlite3_free(zDir);
    if (rc == SQLITE_OK) {
        fb->counters.n_list++;
        *objs = a;
        *n = na;
    } else {
        backend_objs_free(a, na);
    }
    return rc;
}

static int
file_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return file_list_kind(b, prefix, 0, objs, n);
}

static int
file_list_dirs(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return file_list_kind(b, prefix, 1, objs, n);
}

static int
file_del(backend *b, const char *const *keys, int n)
{
    file_backend *fb = (file_backend *)b;
    char *zPath = NULL, *zDir = NULL;
    int i, rc = SQLITE_OK, e;

    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        rc = file_key_check(fb, keys[i]);
        if (rc != SQLITE_OK)
            break;
        sqlite3_free(zPath);
        zPath = file_path(fb, keys[i]);
        if (zPath == NULL) {
            rc = file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
            break;
        }
        if (unlink(zPath) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            rc = file_write_err(fb, errno, zPath, 0);
            break;
        }
        fb->counters.n_delete++;
        *strrchr(zPath, '/') = 0;
        if (zDir && strcmp(zDir, zPath) != 0) {
            e = file_fsync_dir(zDir[0] ? zDir : "/");
            if (e != 0)
                rc = file_write_err(fb, e, zDir, 1);
        }
        if (zDir == NULL || strcmp(zDir, zPath) != 0) {
            sqlite3_free(zDir);
            zDir = zPath;
            zPath = NULL;
        }
    }
    if (zDir && (e = file_fsync_dir(zDir[0] ? zDir : "/")) != 0 &&
        rc == SQLITE_OK)
        rc = file_write_err(fb, e, zDir, 1);
    sqlite3_free(zPath);
    sqlite3_free(zDir);
    return rc;
}

/*
 * rename_excl: renameat2(RENAME_NOREPLACE), atomic on the local
 * filesystems (ext4, xfs, btrfs, tmpfs); where the filesystem refuses the
 * flag (EINVAL: NFS, some FUSE), link() + unlink(), which is exclusive on
 * the target but lets two renames of one source both succeed.
 */
static int
file_rename_excl(backend *b, const char *zFrom, const char *zTo)
{
    file_backend *fb = (file_backend *)b;
    char *zA = NULL, *zB = NULL;
    int rc = file_key_check(fb, zFrom);

    if (rc == SQLITE_OK)
        rc = file_key_check(fb, zTo);
    if (rc != SQLITE_OK)
        return rc;
    zA = file_path(fb, zFrom);
    zB = file_path(fb, zTo);
    if (zA == NULL || zB == NULL) {
        rc = file_err(fb, SQLITE_NOMEM, "litestream: out of memory");
    } else if (renameat2(AT_FDCWD, zA, AT_FDCWD, zB, RENAME_NOREPLACE) != 0 &&
               (errno != EINVAL || link(zA, zB) != 0 || unlink(zA) != 0)) {
        rc = errno == ENOENT   ? SQLITE_NOTFOUND
             : errno == EEXIST ? SQLITE_CONSTRAINT
                               : file_write_err(fb, errno, zB, 0);
    } else {
        *strrchr(zB, '/') = 0;
        int e = file_fsync_dir(zB[0] ? zB : "/");
        if (e != 0)
            rc = file_write_err(fb, e, zB, 1);
    }
    sqlite3_free(zA);
    sqlite3_free(zB);
    return rc;
}

static int
file_open(const ls_url *u, backend **out, char **pzErr)
{
    file_backend *fb = sqlite3_malloc64(sizeof(*fb));

    *out = NULL;
    if (fb == NULL)
        return SQLITE_NOMEM;
    memset(fb, 0, sizeof(*fb));
    fb->base.vt = &backend_file_vtab;
    fb->root = sqlite3_mprintf("%s", u->path);
    if (fb->root == NULL) {
        sqlite3_free(fb);
        return SQLITE_NOMEM;
    }
    *out = &fb->base;
    return SQLITE_OK;
}

static void
file_close(backend *b)
{
    file_backend *fb = (file_backend *)b;

    if (fb == NULL)
        return;
    sqlite3_free(fb->base.url);
    sqlite3_free(fb->root);
    sqlite3_free(fb->zErr);
    sqlite3_free(fb);
}

static const char *
file_errmsg(backend *b)
{
    file_backend *fb = (file_backend *)b;
    return fb->zErr ? fb->zErr : "";
}

static const backend_counters *
file_counters(backend *b)
{
    return &((file_backend *)b)->counters;
}

const backend_vtab backend_file_vtab = {
    .name = "file",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC | BACKEND_CAP_EXACT_TIME,
    .level_fmt = "ltx/%d/",
    .open = file_open,
    .close = file_close,
    .put = file_put,
    .put_file = file_put_file,
    .get = file_get,
    .list = file_list,
    .list_dirs = file_list_dirs,
    .del = file_del,
    .errmsg = file_errmsg,
    .counters = file_counters,
    .rename_excl = file_rename_excl,
};
