/*
 * vfs/auto.c: the rules of litestream_auto (auto.h): which databases
 * replicate by themselves, to where.
 *
 * Invariants:
 *   1. A rule's directory is absolute, exists and has its symlinks
 *      resolved (realpath) when the rule is set; a database matches when
 *      its own real path is below it, so a symlink or '..' cannot take a
 *      database out of (or a path outside into) a directory it is not in.
 *   2. A rule only ever starts replication of a database whose sidecar
 *      has no config.json (never configured): a URL set with PRAGMA
 *      litestream_url, or replication stopped with PRAGMA litestream_url
 *      = '', wins over every rule.
 *   3. What a rule does is exactly PRAGMA main.litestream_url run on the
 *      connection being opened (vfs/pragma.c): the same checks, the same
 *      stored setting.  auto_mu is never held while SQL runs.
 *
 * Threads: application threads (the one opening a connection, the one
 * calling litestream_auto()).
 */
#include "vfs/auto.h"
#include "storage/backend/url.h"
#include "storage/base/json.h"
#include "storage/local/sidecar.h"
#include "vfs/registry.h"
#include "vfs/replicate.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct auto_rule {
    char *zDir;     /* real path, no trailing slash (but "/") */
    char *zUrl;     /* as given */
    char *zPattern; /* NULL: every database */
} auto_rule;

static pthread_mutex_t auto_mu = PTHREAD_MUTEX_INITIALIZER;
static auto_rule *rules; /* under auto_mu */
static int nrules;       /* under auto_mu; also read atomically */

/* fork(): the child gets a consistent copy of the rules. */
static void
atfork_lock(void)
{
    pthread_mutex_lock(&auto_mu);
}

static void
atfork_unlock(void)
{
    pthread_mutex_unlock(&auto_mu);
}

static void
install_atfork(void)
{
    pthread_atfork(atfork_lock, atfork_unlock, atfork_unlock);
}

static void
rule_free(auto_rule *r)
{
    sqlite3_free(r->zDir);
    sqlite3_free(r->zUrl);
    sqlite3_free(r->zPattern);
    memset(r, 0, sizeof(*r));
}

/* Appends zRel to sqlite3_str s, percent-escaping what a URL path may not
 * hold literally ('/' stays a separator). */
static void
append_escaped(sqlite3_str *s, const char *zRel)
{
    for (const unsigned char *p = (const unsigned char *)zRel; *p; p++) {
        int c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || strchr("-._~/", c))
            sqlite3_str_appendchar(s, 1, (char)c);
        else
            sqlite3_str_appendf(s, "%%%02X", c);
    }
}

/*
 * The replica URL of the database at zRel (relative to the rule's
 * directory): zUrl's path with "/zRel" appended, before its query.  A
 * plain path is taken literally, so zRel is appended as it is.
 * sqlite3_malloc'd, or NULL when out of memory.
 */
static char *
child_url(const char *zUrl, const char *zRel)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    int plain = zUrl[0] == '/';
    size_t q = plain ? strlen(zUrl) : strcspn(zUrl, "?");
    size_t n = q;
    while (n > 1 && zUrl[n - 1] == '/')
        n--;
    sqlite3_str_append(s, zUrl, (int)n);
    if (zUrl[n - 1] != '/')
        sqlite3_str_appendchar(s, 1, '/');
    if (plain)
        sqlite3_str_appendall(s, zRel);
    else
        append_escaped(s, zRel);
    sqlite3_str_appendall(s, zUrl + q);
    return sqlite3_str_finish(s);
}

/* The directory of a rule, checked and resolved into *pzReal. */
static int
check_dir(const char *zDir, char **pzReal, char **pzErr)
{
    struct stat st;
    if (zDir[0] != '/') {
        *pzErr = sqlite3_mprintf("litestream_auto: dir must be an absolute "
                                 "path, not '%s' (databases are matched by "
                                 "their absolute path)",
                                 zDir);
        return SQLITE_ERROR;
    }
    char *z = realpath(zDir, NULL);
    if (!z || stat(z, &st) != 0 || !S_ISDIR(st.st_mode)) {
        int e = z ? ENOTDIR : errno;
        *pzErr =
            sqlite3_mprintf("litestream_auto: directory '%s' %s: %s", zDir,
                            e == ENOENT ? "does not exist" : "cannot be used",
                            e == ENOENT ? "create it first" : strerror(e));
        free(z);
        return SQLITE_ERROR;
    }
    *pzReal = sqlite3_mprintf("%s", z);
    free(z);
    return *pzReal ? SQLITE_OK : SQLITE_NOMEM;
}

/* Is file replica u the directory zDir itself (each database's replica
 * would then be the database file)? */
static int
replica_is_dir(const ls_url *u, const char *zDir)
{
    if (strcmp(u->scheme, "file") != 0)
        return 0;
    char *z = realpath(u->path, NULL);
    int same = strcmp(z ? z : u->path, zDir) == 0;
    free(z);
    return same;
}

/* The URL of a rule for directory zDir (real): it parses, and so does a
 * database's URL under it. */
static int
check_url(const char *zUrl, const char *zDir, char **pzErr)
{
    ls_url *u = NULL;
    char *zErr = NULL, *zChild = NULL;
    int rc = url_parse(zUrl, &u, &zErr);
    if (rc == SQLITE_OK && replica_is_dir(u, zDir)) {
        zErr = sqlite3_mprintf("the replica directory is '%s' itself, where "
                               "each database's replica would be the "
                               "database: choose another directory",
                               zDir);
        rc = SQLITE_ERROR;
    }
    url_free(u);
    if (rc == SQLITE_OK) {
        u = NULL;
        zChild = child_url(zUrl, "tenant/app.db");
        rc = zChild ? url_parse(zChild, &u, &zErr) : SQLITE_NOMEM;
        url_free(u);
        sqlite3_free(zChild);
    }
    if (rc != SQLITE_OK) {
        const char *z = zErr ? zErr : sqlite3_errstr(rc);
        if (strncmp(z, "litestream: ", 12) == 0)
            z += 12;
        *pzErr = sqlite3_mprintf("litestream_auto: bad replica URL: %s "
                                 "(each database replicates to "
                                 "<url>/<path relative to dir>)",
                                 z);
    }
    sqlite3_free(zErr);
    return rc;
}

static int
check_pattern(const char *zPattern, char **pzErr)
{
    if (zPattern && (!zPattern[0] || zPattern[0] == '/')) {
        *pzErr = sqlite3_mprintf("litestream_auto: the pattern is a glob "
                                 "matched against the path relative to dir "
                                 "(e.g. '*.db' or 'tenants/*/data.db'), not "
                                 "'%s'",
                                 zPattern);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

/* Removes rule i (or every rule, i < 0).  Caller holds auto_mu. */
static void
remove_rules(int i)
{
    for (int k = 0; k < nrules; k++)
        if (i < 0 || k == i)
            rule_free(&rules[k]);
    if (i < 0) {
        sqlite3_free(rules);
        rules = NULL;
        __atomic_store_n(&nrules, 0, __ATOMIC_RELEASE);
    } else {
        rules[i] = rules[nrules - 1];
        __atomic_store_n(&nrules, nrules - 1, __ATOMIC_RELEASE);
    }
}

/* Replaces the rule of r->zDir, or adds r (taking its strings). */
static int
put_rule(auto_rule *r)
{
    int rc = SQLITE_OK;
    pthread_mutex_lock(&auto_mu);
    int i = 0;
    while (i < nrules && strcmp(rules[i].zDir, r->zDir) != 0)
        i++;
    if (i == nrules) {
        auto_rule *a =
            sqlite3_realloc64(rules, sizeof(*rules) * (size_t)(nrules + 1));
        if (a) {
            rules = a;
            memset(&rules[i], 0, sizeof(*rules));
        } else {
            rc = SQLITE_NOMEM;
        }
    }
    if (rc == SQLITE_OK) {
        rule_free(&rules[i]);
        rules[i] = *r;
        memset(r, 0, sizeof(*r));
        if (i == nrules)
            __atomic_store_n(&nrules, nrules + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&auto_mu);
    return rc;
}

int
vfs_auto_set(const char *zDir, const char *zUrl, const char *zPattern,
             char **pzErr)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    auto_rule r = {0};
    int rc = SQLITE_OK;
    pthread_once(&once, install_atfork);
    *pzErr = NULL;
    if (!zDir) {
        pthread_mutex_lock(&auto_mu);
        remove_rules(-1);
        pthread_mutex_unlock(&auto_mu);
        return SQLITE_OK;
    }
    rc = check_dir(zDir, &r.zDir, pzErr);
    if (rc == SQLITE_OK && zUrl)
        rc = check_url(zUrl, r.zDir, pzErr);
    if (rc == SQLITE_OK && zUrl)
        rc = check_pattern(zPattern, pzErr);
    if (rc == SQLITE_OK && !zUrl) {
        pthread_mutex_lock(&auto_mu);
        for (int i = 0; i < nrules; i++)
            if (strcmp(rules[i].zDir, r.zDir) == 0) {
                remove_rules(i);
                break;
            }
        pthread_mutex_unlock(&auto_mu);
    } else if (rc == SQLITE_OK) {
        r.zUrl = sqlite3_mprintf("%s", zUrl);
        r.zPattern = zPattern ? sqlite3_mprintf("%s", zPattern) : NULL;
        if (!r.zUrl || (zPattern && !r.zPattern))
            rc = SQLITE_NOMEM;
        else
            rc = put_rule(&r);
    }
    if (rc == SQLITE_NOMEM && !*pzErr)
        *pzErr = sqlite3_mprintf("litestream_auto: out of memory");
    rule_free(&r);
    return rc;
}

char *
vfs_auto_rules_json(void)
{
    json_t *a = json_array();
    int bad = !a;
    pthread_mutex_lock(&auto_mu);
    for (int i = 0; i < nrules && !bad; i++) {
        json_t *o = json_object();
        char *zShow = url_redact(rules[i].zUrl);
        ls_json_set(o, "dir", ls_json_text(rules[i].zDir), &bad);
        ls_json_set(o, "url", ls_json_text(zShow), &bad);
        ls_json_set(o, "pattern", ls_json_text(rules[i].zPattern), &bad);
        sqlite3_free(zShow);
        if (json_array_append_new(a, o) != 0)
            bad = 1;
    }
    pthread_mutex_unlock(&auto_mu);
    char *z = bad ? NULL : ls_json_dump(a);
    json_decref(a);
    return z;
}

int
vfs_auto_env(char **pzErr)
{
    const char *zDir = getenv("LITESTREAM_AUTO_DIR");
    const char *zUrl = getenv("LITESTREAM_AUTO_URL");
    const char *zPat = getenv("LITESTREAM_AUTO_PATTERN");
    char *zErr = NULL;
    if (zDir && !zDir[0])
        zDir = NULL;
    if (zUrl && !zUrl[0])
        zUrl = NULL;
    if (!zDir && !zUrl)
        return SQLITE_OK;
    if (!zDir || !zUrl) {
        *pzErr = sqlite3_mprintf("litestream: LITESTREAM_AUTO_%s is set but "
                                 "LITESTREAM_AUTO_%s is not: set both (the "
                                 "directory and the replica URL) or neither",
                                 zDir ? "DIR" : "URL", zDir ? "URL" : "DIR");
        return SQLITE_ERROR;
    }
    int rc = vfs_auto_set(zDir, zUrl, zPat && zPat[0] ? zPat : NULL, &zErr);
    if (rc != SQLITE_OK)
        *pzErr = sqlite3_mprintf("litestream: LITESTREAM_AUTO_DIR='%s', "
                                 "LITESTREAM_AUTO_URL: %s",
                                 zDir, zErr ? zErr : sqlite3_errstr(rc));
    sqlite3_free(zErr);
    return rc;
}

/* Does zRel (relative to the rule's directory) match zPattern?  A pattern
 * with a '/' is matched against the whole relative path ('*' stops at
 * '/'), one without against the file's name only. */
static int
pattern_matches(const char *zPattern, const char *zRel)
{
    if (!zPattern)
        return 1;
    if (strchr(zPattern, '/'))
        return fnmatch(zPattern, zRel, FNM_PATHNAME) == 0;
    const char *zName = strrchr(zRel, '/');
    return fnmatch(zPattern, zName ? zName + 1 : zRel, 0) == 0;
}

/*
 * The URL the rules give the database at real path zReal (the most
 * specific directory whose pattern matches), with that rule's directory
 * in *pzDir; NULL when no rule matches (or out of memory).
 */
static char *
match(const char *zReal, char **pzDir)
{
    char *zUrl = NULL;
    size_t best = 0;
    pthread_mutex_lock(&auto_mu);
    for (int i = 0; i < nrules; i++) {
        const char *zDir = rules[i].zDir;
        size_t n = strlen(zDir);
        if (n == 1) /* the root */
            n = 0;
        if (strncmp(zReal, zDir, n) != 0 || zReal[n] != '/' || !zReal[n + 1])
            continue;
        if (n + 1 <= best || !pattern_matches(rules[i].zPattern, zReal + n + 1))
            continue;
        sqlite3_free(zUrl);
        sqlite3_free(*pzDir);
        zUrl = child_url(rules[i].zUrl, zReal + n + 1);
        *pzDir = sqlite3_mprintf("%s", zDir);
        best = n + 1;
    }
    pthread_mutex_unlock(&auto_mu);
    return zUrl;
}

/* Records why the rule could not start replication of d. */
static void
note_failure(ls_db *d, const char *zUrl, const char *zDir, const char *zWhy)
{
    char *zShow = url_redact(zUrl);
    if (strncmp(zWhy, "litestream: ", 12) == 0)
        zWhy += 12;
    registry_note_error(
        d, sqlite3_mprintf("litestream: litestream_auto (rule for '%s') "
                           "could not start replicating '%s' to '%s': %s "
                           "(tried again when a connection that may write "
                           "opens it)",
                           zDir, registry_path(d), zShow ? zShow : "?", zWhy));
    sqlite3_free(zShow);
}

void
vfs_auto_attach(sqlite3 *db, sqlite3_file *f)
{
    ls_db *d = vfs_db_of_file(f);
    char *zReal = NULL, *zUrl = NULL, *zDir = NULL, *zSql = NULL;
    char *zErr = NULL;
    if (!d || __atomic_load_n(&nrules, __ATOMIC_ACQUIRE) == 0)
        return;
    replicator *r = registry_replicator(d);
    registry_replicator_done(d, r);
    /* Configured once (a URL, or stopped on purpose): not ours to touch. */
    if (r || sidecar_config_exists(registry_path(d)))
        return;
    zReal = realpath(registry_path(d), NULL);
    if (zReal)
        zUrl = match(zReal, &zDir);
    if (!zUrl)
        goto out;
    zSql = sqlite3_mprintf("PRAGMA main.litestream_url = %Q", zUrl);
    if (!zSql)
        goto out;
    if (sqlite3_exec(db, zSql, NULL, NULL, &zErr) != SQLITE_OK) {
        note_failure(d, zUrl, zDir, zErr ? zErr : sqlite3_errmsg(db));
        /* The open succeeds: SQLite fails an open whose automatic
         * extensions leave an error on the connection. */
        sqlite3_exec(db, "", NULL, NULL, NULL);
    }
out:
    sqlite3_free(zErr);
    sqlite3_free(zSql);
    sqlite3_free(zUrl);
    sqlite3_free(zDir);
    free(zReal);
}
