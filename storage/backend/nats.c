/*
 * storage/backend/nats.c: the connection to a NATS JetStream object store
 * (nats.h) over libnats, the only file that includes it.
 *
 * libnats 3.4 has JetStream but no object-store API, so this file speaks
 * the object-store layout itself (storage/backend/nats_meta.h): objects
 * are chunk messages on "$O.<bucket>.C.<nuid>" and a metadata message on
 * "$O.<bucket>.M.<base64url(name)>" in the stream "OBJ_<bucket>", created
 * when missing with the settings the NATS clients give an object store.
 * Reads are JetStream direct gets (the last message of a subject, or the
 * next one at or after a sequence), writes acknowledged publishes.
 *
 * Invariants:
 *   1. libnats never reconnects on its own: a transport failure or a
 *      timeout drops the connection (SQLITE_IOERR) and the next call
 *      connects again, reading the credentials from the environment anew.
 *   2. Refused credentials and permission violations are SQLITE_AUTH with
 *      a message that says what to allow or set.  A permission violation
 *      surfaces in libnats as a request timeout; the connection's last
 *      error tells the two apart.
 *   3. No message shows the password, token or credentials.
 *   4. libnats is loaded with dlopen() at the first connection, not linked:
 *      litestream.so runs on machines without it, and only a nats:// URL
 *      needs it (its absence is then a clear SQLITE_CANTOPEN).
 *
 * Threads: one caller thread per connection; libnats runs threads of its
 * own for it.
 */
#include "storage/backend/nats.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "storage/base/sqlite.h"

/*
 * libnats, loaded when the first nats connection is made (invariant 4):
 * the functions this file calls, resolved from LITESTREAM_NATS_SONAME (the
 * soname of the libnats the build found, e.g. "libnats.so.3.4": the same
 * ABI as the headers), or from the file the environment variable
 * LITESTREAM_NATS_LIBRARY names.
 */
#define NATS_API(X)                                                            \
    X(jsCtx_Destroy)                                                           \
    X(jsDirectGetMsgOptions_Init)                                              \
    X(jsOptions_Init)                                                          \
    X(jsPubAck_Destroy)                                                        \
    X(jsPubOptions_Init)                                                       \
    X(jsStreamConfig_Init)                                                     \
    X(jsStreamInfo_Destroy)                                                    \
    X(js_AddStream)                                                            \
    X(js_DirectGetMsg)                                                         \
    X(js_GetStreamInfo)                                                        \
    X(js_PublishMsg)                                                           \
    X(js_PurgeStream)                                                          \
    X(natsConnection_Close)                                                    \
    X(natsConnection_Connect)                                                  \
    X(natsConnection_Destroy)                                                  \
    X(natsConnection_GetLastError)                                             \
    X(natsConnection_JetStream)                                                \
    X(natsMsgHeader_Set)                                                       \
    X(natsMsg_Create)                                                          \
    X(natsMsg_Destroy)                                                         \
    X(natsMsg_GetData)                                                         \
    X(natsMsg_GetDataLength)                                                   \
    X(natsMsg_GetSequence)                                                     \
    X(natsMsg_GetTime)                                                         \
    X(natsOptions_Create)                                                      \
    X(natsOptions_Destroy)                                                     \
    X(natsOptions_SetAllowReconnect)                                           \
    X(natsOptions_SetName)                                                     \
    X(natsOptions_SetTimeout)                                                  \
    X(natsOptions_SetToken)                                                    \
    X(natsOptions_SetURL)                                                      \
    X(natsOptions_SetUserCredentialsFromFiles)                                 \
    X(natsOptions_SetUserInfo)                                                 \
    X(natsStatus_GetText)                                                      \
    X(nats_GetLastError)

#define NATS_API_DECL(f) __typeof__(&f) f;
static struct {
    NATS_API(NATS_API_DECL)
} nl;
static pthread_once_t nl_once = PTHREAD_ONCE_INIT;
static char nl_err[300]; /* why libnats is not there; "" when loaded */

static void
nl_load(void)
{
    const char *zLib = getenv("LITESTREAM_NATS_LIBRARY");
    void *h = dlopen(zLib && zLib[0] ? zLib : LITESTREAM_NATS_SONAME,
                     RTLD_NOW | RTLD_LOCAL);

    if (h == NULL) {
        snprintf(nl_err, sizeof(nl_err), "%s", dlerror());
        return;
    }
#define NATS_API_LOAD(f)                                                       \
    if (nl_err[0] == 0 && (*(void **)&nl.f = dlsym(h, #f)) == NULL)            \
        snprintf(nl_err, sizeof(nl_err), "%s has no %s",                       \
                 LITESTREAM_NATS_SONAME, #f);
    NATS_API(NATS_API_LOAD)
}

/* Loads libnats once; SQLITE_CANTOPEN with a message when it cannot. */
static int
nl_ready(nats_conn *nb)
{
    pthread_once(&nl_once, nl_load);
    if (nl_err[0] == 0)
        return SQLITE_OK;
    return nats_conn_err(
        nb, SQLITE_CANTOPEN,
        sqlite3_mprintf("litestream: the nats backend needs libnats "
                        "(%s; Debian and Ubuntu: apt-get install libnats3.4, "
                        "or name the file in LITESTREAM_NATS_LIBRARY): %s",
                        LITESTREAM_NATS_SONAME, nl_err));
}

struct nats_conn {
    char *zUrl;    /* nats://host:port */
    char *zHost;   /* host:port, for messages */
    char *zUser;   /* from the URL, or NULL */
    char *zPass;   /* from the URL, or NULL; never shown */
    char *zCreds;  /* ?creds= (a file), or NULL */
    char *zBucket; /* the bucket */
    char *zStream; /* OBJ_<bucket> */
    int64_t timeout_ms;
    natsConnection *nc;
    jsCtx *js;
    int ready; /* the stream was found or created */
    char *zErr;
};

int
nats_conn_err(nats_conn *nb, int rc, char *zMsg)
{
    sqlite3_free(nb->zErr);
    nb->zErr =
        zMsg ? zMsg : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc));
    return rc;
}

const char *
nats_conn_errmsg(nats_conn *c)
{
    return c->zErr ? c->zErr : "not an error";
}

const char *
nats_conn_bucket(const nats_conn *c)
{
    return c->zBucket;
}

static void
nb_drop(nats_conn *nb)
{
    if (nb->js)
        nl.jsCtx_Destroy(nb->js);
    nb->js = NULL;
    if (nb->nc) {
        nl.natsConnection_Close(nb->nc);
        nl.natsConnection_Destroy(nb->nc);
    }
    nb->nc = NULL;
    nb->ready = 0;
}

/*
 * libnats's last error of this thread without its "(file.c:123): " prefix,
 * or zElse.
 */
static const char *
last_error(const char *zElse)
{
    const char *z = nl.nats_GetLastError(NULL);

    if (z == NULL || z[0] == 0)
        return zElse;
    if (z[0] == '(' && strstr(z, "): "))
        z = strstr(z, "): ") + 3;
    return z;
}

/* The environment variable z, or NULL when unset or empty. */
static const char *
env(const char *z)
{
    const char *v = getenv(z);
    return v && v[0] ? v : NULL;
}

/*
 * Maps a libnats failure of the operation zWhat to a result code and a
 * message.  A permission violation shows as a timeout of the request: the
 * connection's last error tells them apart.
 */
static int
nb_fail(nats_conn *nb, natsStatus s, jsErrCode ec, const char *zWhat)
{
    const char *zLast = NULL;
    natsStatus last =
        nb->nc ? nl.natsConnection_GetLastError(nb->nc, &zLast) : NATS_OK;
    const char *zText = nl.natsStatus_GetText(s);
    int rc = SQLITE_IOERR;
    char *z;

    if (s == NATS_NOT_PERMITTED ||
        (s == NATS_TIMEOUT && last == NATS_NOT_PERMITTED)) {
        z = sqlite3_mprintf(
            "litestream: NATS %s on %s refused: %s (allow this user to "
            "publish to '$O.%s.>' and '$JS.API.>' and to subscribe to "
            "'_INBOX.>')",
            zWhat, nb->zHost, zLast && zLast[0] ? zLast : zText, nb->zBucket);
        nb_drop(nb);
        return nats_conn_err(nb, SQLITE_AUTH, z);
    }
    if (s == NATS_CONNECTION_AUTH_FAILED) {
        z = sqlite3_mprintf(
            "litestream: NATS server %s refused the credentials (%s): "
            "give USER:PASSWORD in the URL or set LITESTREAM_NATS_USERNAME "
            "and LITESTREAM_NATS_PASSWORD, LITESTREAM_NATS_TOKEN or "
            "LITESTREAM_NATS_CREDS",
            nb->zHost, last_error(zText));
        nb_drop(nb);
        return nats_conn_err(nb, SQLITE_AUTH, z);
    }
    if (s == NATS_NOT_FOUND && (ec == 0 || ec == JSNoMessageFoundErr))
        return nats_conn_err(
            nb, SQLITE_NOTFOUND,
            sqlite3_mprintf("litestream: NATS %s: not found", zWhat));
    if (ec == JSStorageResourcesExceededErr ||
        ec == JSInsufficientResourcesErr || ec == JSMaximumStreamsLimitErr)
        rc = SQLITE_FULL;
    else if (ec == JSNotEnabledErr || ec == JSNotEnabledForAccountErr)
        rc = SQLITE_CANTOPEN; /* a setting of the server, not a moment */
    if (s == NATS_NO_RESPONDERS)
        zText = "no responders (is JetStream enabled on the server, "
                "nats-server -js?)";
    else if (s == NATS_NO_SERVER)
        zText = "no server available (is nats-server running there? "
                "retried)";
    if (ec)
        z = sqlite3_mprintf("litestream: NATS %s on %s failed: %s "
                            "(JetStream error %d)",
                            zWhat, nb->zHost, zText, (int)ec);
    else
        z = sqlite3_mprintf("litestream: NATS %s on %s failed: %s", zWhat,
                            nb->zHost, zText);
    if (rc == SQLITE_IOERR)
        nb_drop(nb); /* transient: reconnect on the next attempt */
    return nats_conn_err(nb, rc, z);
}

/* Sets the credentials: URL, then the LITESTREAM_NATS_* variables. */
static natsStatus
nb_auth(nats_conn *nb, natsOptions *o)
{
    const char *zUser = nb->zUser ? nb->zUser : env("LITESTREAM_NATS_USERNAME");
    const char *zPass = nb->zUser ? nb->zPass : env("LITESTREAM_NATS_PASSWORD");
    const char *zToken = env("LITESTREAM_NATS_TOKEN");
    const char *zCreds = nb->zCreds ? nb->zCreds : env("LITESTREAM_NATS_CREDS");
    natsStatus s = NATS_OK;

    if (zUser)
        s = nl.natsOptions_SetUserInfo(o, zUser, zPass ? zPass : "");
    if (s == NATS_OK && zToken)
        s = nl.natsOptions_SetToken(o, zToken);
    if (s == NATS_OK && zCreds)
        s = nl.natsOptions_SetUserCredentialsFromFiles(o, zCreds, NULL);
    return s;
}

const char *
nats_conn_credential(const nats_conn *nb)
{
    if (nb->zUser)
        return nb->zCreds ? "the user and password in the URL, and the "
                            "credentials file of ?creds="
                          : "the user and password in the URL";
    if (nb->zCreds)
        return "the credentials file of ?creds=";
    if (env("LITESTREAM_NATS_CREDS"))
        return "the credentials file in LITESTREAM_NATS_CREDS";
    if (env("LITESTREAM_NATS_TOKEN"))
        return "the token in LITESTREAM_NATS_TOKEN";
    if (env("LITESTREAM_NATS_USERNAME"))
        return "LITESTREAM_NATS_USERNAME and LITESTREAM_NATS_PASSWORD";
    return "no credentials";
}

static int nb_stream(nats_conn *nb, int create);

int
nats_conn_ready(nats_conn *nb, int create)
{
    natsOptions *o = NULL;
    jsOptions jo;
    natsStatus s;

    if (nb->nc == NULL && nl_ready(nb) != SQLITE_OK)
        return SQLITE_CANTOPEN;
    if (nb->nc == NULL) {
        s = nl.natsOptions_Create(&o);
        if (s == NATS_OK)
            s = nl.natsOptions_SetURL(o, nb->zUrl);
        if (s == NATS_OK)
            s = nl.natsOptions_SetTimeout(o, nb->timeout_ms);
        if (s == NATS_OK)
            s = nl.natsOptions_SetAllowReconnect(o, false);
        if (s == NATS_OK)
            s = nl.natsOptions_SetName(o, "litestream");
        if (s == NATS_OK)
            s = nb_auth(nb, o);
        if (s == NATS_OK)
            s = nl.natsConnection_Connect(&nb->nc, o);
        nl.natsOptions_Destroy(o);
        if (s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED)
            return nb_fail(nb, s, 0, "connect");
        if (s == NATS_ERR && last_error(NULL))
            return nats_conn_err(
                nb, SQLITE_CANTOPEN,
                sqlite3_mprintf("litestream: NATS connect to %s: "
                                "%s",
                                nb->zHost, last_error("")));
        if (s != NATS_OK)
            return nb_fail(nb, s, 0, "connect");
        nl.jsOptions_Init(&jo);
        jo.Wait = nb->timeout_ms;
        s = nl.natsConnection_JetStream(&nb->js, nb->nc, &jo);
        if (s != NATS_OK)
            return nb_fail(nb, s, 0, "JetStream context");
    }
    return nb->ready ? SQLITE_OK : nb_stream(nb, create);
}

static int
nb_stream(nats_conn *nb, int create)
{
    char *azSubj[2] = {sqlite3_mprintf("$O.%s.C.>", nb->zBucket),
                       sqlite3_mprintf("$O.%s.M.>", nb->zBucket)};
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    jsErrCode ec = 0;
    natsStatus s;
    int rc = SQLITE_OK;

    if (!azSubj[0] || !azSubj[1]) {
        rc = nats_conn_err(nb, SQLITE_NOMEM, NULL);
        goto out;
    }
    s = nl.js_GetStreamInfo(&si, nb->js, nb->zStream, NULL, &ec);
    if (s == NATS_NOT_FOUND && !create) {
        rc = nats_conn_err(nb, SQLITE_NOTFOUND,
                           sqlite3_mprintf("litestream: NATS bucket '%s' "
                                           "does not exist on %s (the first "
                                           "upload creates it)",
                                           nb->zBucket, nb->zHost));
        goto out;
    }
    if (s == NATS_NOT_FOUND) {
        nl.jsStreamConfig_Init(&cfg);
        cfg.Name = nb->zStream;
        cfg.Subjects = (const char **)azSubj;
        cfg.SubjectsLen = 2;
        cfg.Storage = js_FileStorage;
        cfg.Discard = js_DiscardNew;
        cfg.MaxBytes = -1;
        cfg.Replicas = 1;
        cfg.AllowRollup = true;
        cfg.AllowDirect = true;
        ec = 0;
        s = nl.js_AddStream(&si, nb->js, &cfg, NULL, &ec);
        if (s != NATS_OK && ec == JSStreamNameExistErr)
            s = nl.js_GetStreamInfo(&si, nb->js, nb->zStream, NULL, &ec);
    }
    if (s != NATS_OK) {
        rc = nb_fail(nb, s, ec, "stream lookup/creation of the bucket");
        goto out;
    }
    if (!si->Config->AllowDirect || !si->Config->AllowRollup) {
        rc = nats_conn_err(
            nb, SQLITE_CANTOPEN,
            sqlite3_mprintf("litestream: NATS stream '%s' on %s is not "
                            "an object store this backend can use "
                            "(it needs allow_direct and "
                            "allow_rollup_hdrs; create the bucket "
                            "with a current client or let "
                            "litestream create it)",
                            nb->zStream, nb->zHost));
        goto out;
    }
    nb->ready = 1;
out:
    nl.jsStreamInfo_Destroy(si);
    sqlite3_free(azSubj[0]);
    sqlite3_free(azSubj[1]);
    return rc;
}

/*
 * Direct get: the last message of zLast, or the first message of zNext at
 * or after sequence seq.  SQLITE_NOTFOUND when there is none.
 */
static int
nb_dget(nats_conn *nb, const char *zLast, const char *zNext, uint64_t seq,
        natsMsg **pMsg)
{
    jsDirectGetMsgOptions dg;
    natsStatus s;

    *pMsg = NULL;
    nl.jsDirectGetMsgOptions_Init(&dg);
    dg.LastBySubject = zLast;
    dg.NextBySubject = zNext;
    dg.Sequence = zNext ? (seq ? seq : 1) : seq;
    s = nl.js_DirectGetMsg(pMsg, nb->js, nb->zStream, NULL, &dg);
    if (s == NATS_NOT_FOUND)
        return SQLITE_NOTFOUND;
    if (s != NATS_OK)
        return nb_fail(nb, s, 0, "direct get");
    return SQLITE_OK;
}

/* The newest metadata of zName; SQLITE_NOTFOUND when it has none. */
int
nats_conn_meta(nats_conn *nb, const char *zName, nats_meta *m)
{
    char *zEnc = nats_b64url(zName, strlen(zName)), *zWhy = NULL;
    char *zSubj =
        zEnc ? sqlite3_mprintf("$O.%s.M.%s", nb->zBucket, zEnc) : NULL;
    natsMsg *msg = NULL;
    int rc;

    memset(m, 0, sizeof(*m));
    if (zSubj == NULL)
        return nats_conn_err(nb, SQLITE_NOMEM, NULL);
    rc = nb_dget(nb, zSubj, NULL, 0, &msg);
    if (rc == SQLITE_OK) {
        rc = nats_meta_decode(nl.natsMsg_GetData(msg),
                              (size_t)nl.natsMsg_GetDataLength(msg), m, &zWhy);
        if (rc != SQLITE_OK)
            nats_conn_err(nb, rc, zWhy);
        else if (m->created_ms < 0)
            m->created_ms = nl.natsMsg_GetTime(msg) / 1000000;
    }
    nl.natsMsg_Destroy(msg);
    sqlite3_free(zSubj);
    sqlite3_free(zEnc);
    return rc;
}

int
nats_conn_pub(nats_conn *nb, const char *zKind, const char *zToken,
              const void *data, size_t n, const char *zWhat)
{
    char *zSubj = sqlite3_mprintf("$O.%s.%s.%s", nb->zBucket, zKind, zToken);
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode ec = 0;
    natsMsg *msg = NULL;
    natsStatus s;

    if (zSubj == NULL)
        return nats_conn_err(nb, SQLITE_NOMEM, NULL);
    nl.jsPubOptions_Init(&po);
    po.ExpectStream = nb->zStream;
    s = nl.natsMsg_Create(&msg, zSubj, NULL, data, (int)n);
    if (s == NATS_OK && zKind[0] == 'M')
        s = nl.natsMsgHeader_Set(msg, "Nats-Rollup", "sub");
    if (s == NATS_OK)
        s = nl.js_PublishMsg(&pa, nb->js, msg, &po, &ec);
    nl.jsPubAck_Destroy(pa);
    nl.natsMsg_Destroy(msg);
    sqlite3_free(zSubj);
    return s == NATS_OK ? SQLITE_OK : nb_fail(nb, s, ec, zWhat);
}

int
nats_conn_purge(nats_conn *nb, const char *zNuid, int quiet)
{
    char *zSubj = sqlite3_mprintf("$O.%s.C.%s", nb->zBucket, zNuid);
    jsOptions jo;
    jsErrCode ec = 0;
    natsStatus s;

    if (zSubj == NULL)
        return quiet ? SQLITE_NOMEM : nats_conn_err(nb, SQLITE_NOMEM, NULL);
    if (nb->js == NULL) {
        sqlite3_free(zSubj);
        return SQLITE_IOERR;
    }
    nl.jsOptions_Init(&jo);
    jo.Wait = nb->timeout_ms;
    jo.Stream.Purge.Subject = zSubj;
    s = nl.js_PurgeStream(nb->js, nb->zStream, &jo, &ec);
    sqlite3_free(zSubj);
    if (s == NATS_OK)
        return SQLITE_OK;
    return quiet ? SQLITE_IOERR : nb_fail(nb, s, ec, "purge of chunks");
}

int
nats_conn_names(nats_conn *nb, char ***pazName, int *pn)
{
    char *zFilter = sqlite3_mprintf("$O.%s.M.>", nb->zBucket);
    size_t nTok = zFilter ? strlen(zFilter) - 1 : 0;
    jsStreamInfo *si = NULL;
    jsOptions jo;
    jsErrCode ec = 0;
    natsStatus s;
    char **az = NULL;
    int rc = SQLITE_OK, i, n = 0;

    *pazName = NULL;
    *pn = 0;
    if (zFilter == NULL)
        return nats_conn_err(nb, SQLITE_NOMEM, NULL);
    nl.jsOptions_Init(&jo);
    jo.Wait = nb->timeout_ms;
    jo.Stream.Info.SubjectsFilter = zFilter;
    s = nl.js_GetStreamInfo(&si, nb->js, nb->zStream, &jo, &ec);
    if (s != NATS_OK) {
        rc = nb_fail(nb, s, ec, "LIST (stream info)");
        goto out;
    }
    if (si->State.Subjects && si->State.Subjects->Count > 0) {
        az = sqlite3_malloc64(sizeof(char *) *
                              (size_t)si->State.Subjects->Count);
        if (az == NULL) {
            rc = nats_conn_err(nb, SQLITE_NOMEM, NULL);
            goto out;
        }
    }
    for (i = 0; az && i < si->State.Subjects->Count; i++) {
        const char *zSubj = si->State.Subjects->List[i].Subject;
        uint8_t *zName = NULL;
        size_t nName = 0;
        if (strlen(zSubj) <= nTok ||
            nats_b64url_decode(zSubj + nTok, &zName, &nName) != SQLITE_OK)
            continue; /* not a name an object-store client writes */
        if (strlen((char *)zName) != nName) {
            sqlite3_free(zName);
            continue;
        }
        az[n++] = (char *)zName;
    }
    *pazName = az;
    *pn = n;
    az = NULL;
out:
    sqlite3_free(az);
    nl.jsStreamInfo_Destroy(si);
    sqlite3_free(zFilter);
    return rc;
}

void
nats_conn_names_free(char **azName, int n)
{
    int i;

    for (i = 0; azName && i < n; i++)
        sqlite3_free(azName[i]);
    sqlite3_free(azName);
}

/* --- the chunk source (nats_read.h) ------------------------------------ */

static int
chunk_fill(natsMsg *msg, nats_chunk *c)
{
    c->msg = msg;
    c->data = (const uint8_t *)nl.natsMsg_GetData(msg);
    c->n = (uint64_t)nl.natsMsg_GetDataLength(msg);
    c->seq = nl.natsMsg_GetSequence(msg);
    return SQLITE_OK;
}

static int
src_next(void *ctx, uint64_t seq, nats_chunk *c)
{
    nats_conn_src *s = ctx;
    natsMsg *msg = NULL;
    int rc = nb_dget(s->c, NULL, s->zSubj, seq, &msg);
    return rc == SQLITE_OK ? chunk_fill(msg, c) : rc;
}

static int
src_last(void *ctx, nats_chunk *c)
{
    nats_conn_src *s = ctx;
    natsMsg *msg = NULL;
    int rc = nb_dget(s->c, s->zSubj, NULL, 0, &msg);
    return rc == SQLITE_OK ? chunk_fill(msg, c) : rc;
}

static void
src_release(void *ctx, nats_chunk *c)
{
    (void)ctx;
    nl.natsMsg_Destroy(c->msg);
    memset(c, 0, sizeof(*c));
}

int
nats_conn_src_init(nats_conn *c, const char *zNuid, nats_conn_src *s)
{
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->zSubj = sqlite3_mprintf("$O.%s.C.%s", c->zBucket, zNuid);
    s->src.ctx = s;
    s->src.xNext = src_next;
    s->src.xLast = src_last;
    s->src.xRelease = src_release;
    return s->zSubj ? SQLITE_OK : nats_conn_err(c, SQLITE_NOMEM, NULL);
}

void
nats_conn_src_clear(nats_conn_src *s)
{
    sqlite3_free(s->zSubj);
    s->zSubj = NULL;
}

/* --- life ----------------------------------------------------------------- */

int
nats_conn_new(const nats_conn_cfg *cfg, nats_conn **out)
{
    nats_conn *c = sqlite3_malloc64(sizeof(*c));
    int v6 = strchr(cfg->host, ':') != NULL;

    *out = NULL;
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    c->zHost = sqlite3_mprintf(v6 ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
    c->zUrl = sqlite3_mprintf("nats://%s", c->zHost ? c->zHost : "");
    c->zUser = cfg->user ? sqlite3_mprintf("%s", cfg->user) : NULL;
    c->zPass = cfg->password ? sqlite3_mprintf("%s", cfg->password) : NULL;
    c->zCreds = cfg->creds ? sqlite3_mprintf("%s", cfg->creds) : NULL;
    c->zBucket = sqlite3_mprintf("%s", cfg->bucket);
    c->zStream = sqlite3_mprintf("OBJ_%s", cfg->bucket);
    c->timeout_ms = cfg->timeout_ms;
    if (!c->zHost || !c->zUrl || !c->zBucket || !c->zStream ||
        (cfg->user && !c->zUser) || (cfg->password && !c->zPass) ||
        (cfg->creds && !c->zCreds)) {
        nats_conn_free(c);
        return SQLITE_NOMEM;
    }
    *out = c;
    return SQLITE_OK;
}

void
nats_conn_free(nats_conn *c)
{
    if (c == NULL)
        return;
    nb_drop(c);
    sqlite3_free(c->zUrl);
    sqlite3_free(c->zHost);
    sqlite3_free(c->zUser);
    sqlite3_free(c->zPass);
    sqlite3_free(c->zCreds);
    sqlite3_free(c->zBucket);
    sqlite3_free(c->zStream);
    sqlite3_free(c->zErr);
    sqlite3_free(c);
}
