/*
 * test_url.c: replica URL parsing (storage/backend/url.c).
 *
 * What a user relies on: every documented URL form parses to the right
 * scheme/host/port/path/params; every malformed URL is refused with a
 * message saying what is wrong; secrets never appear in the redacted form
 * nor in any error message; query parameters are found under snake_case,
 * camelCase and kebab-case spellings.
 */
#include <string.h>

#include "storage/backend/url.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

typedef struct valid_case {
    const char *zUrl;
    const char *zScheme, *zUser, *zPassword, *zHost;
    int port;
    const char *zPath;
    const char *zRedacted;
} valid_case;

static const valid_case valid[] = {
    {"file:///var/lib/replica", "file", 0, 0, 0, 0, "/var/lib/replica",
     "file:///var/lib/replica"},
    {"file:///var/lib/replica/", "file", 0, 0, 0, 0, "/var/lib/replica", 0},
    {"file://localhost/srv/r", "file", 0, 0, 0, 0, "/srv/r", 0},
    {"file://LocalHost/srv/r", "file", 0, 0, 0, 0, "/srv/r", 0},
    {"file:/srv/r", "file", 0, 0, 0, 0, "/srv/r", 0},
    {"FILE:///srv//a/./b/", "file", 0, 0, 0, 0, "/srv/a/b", 0},
    {"file:///srv/with%20space", "file", 0, 0, 0, 0, "/srv/with space", 0},
    {"file:///", "file", 0, 0, 0, 0, "/", 0},
    {"/abs/dir", "file", 0, 0, 0, 0, "/abs/dir", "/abs/dir"},
    {"/abs/dir/", "file", 0, 0, 0, 0, "/abs/dir", 0},
    {"/abs/100%/x?y#z", "file", 0, 0, 0, 0, "/abs/100%/x?y#z", 0},
    {"s3://bucket/db", "s3", 0, 0, "bucket", 0, "db", 0},
    {"s3://bucket", "s3", 0, 0, "bucket", 0, "", 0},
    {"s3://bucket/", "s3", 0, 0, "bucket", 0, "", 0},
    {"s3://my-bucket/a/b/?region=us-east-1", "s3", 0, 0, "my-bucket", 0, "a/b",
     0},
    {"S3://bucket.s3.us-west-2.amazonaws.com/db", "s3", 0, 0,
     "bucket.s3.us-west-2.amazonaws.com", 0, "db", 0},
    {"s3://bucket.localhost:9000/db", "s3", 0, 0, "bucket.localhost", 9000,
     "db", 0},
    {"gs://bkt/path/to/db", "gs", 0, 0, "bkt", 0, "path/to/db", 0},
    {"abs://account@container/db", "abs", 0, 0, "account@container", 0, "db",
     0},
    {"abs://container/db", "abs", 0, 0, "container", 0, "db", 0},
    {"sftp://alice@example.com/backups/db", "sftp", "alice", 0, "example.com",
     0, "backups/db", 0},
    {"sftp://alice:s3cr%40t@10.0.0.1:2222/db", "sftp", "alice", "s3cr@t",
     "10.0.0.1", 2222, "db", "sftp://alice:REDACTED@10.0.0.1:2222/db"},
    {"sftp://[::1]:22/db", "sftp", 0, 0, "::1", 22, "db", 0},
    {"sftp://bob@[fe80::1]/x", "sftp", "bob", 0, "fe80::1", 0, "x", 0},
    {"webdav://127.0.0.1:8080/dav/db", "webdav", 0, 0, "127.0.0.1", 8080,
     "dav/db", 0},
    {"webdavs://u:p@dav.example.org/db", "webdavs", "u", "p", "dav.example.org",
     0, "db", "webdavs://u:REDACTED@dav.example.org/db"},
    {"webdav://host:65535/", "webdav", 0, 0, "host", 65535, "", 0},
    {"webdav://host:1", "webdav", 0, 0, "host", 1, "", 0},
};

typedef struct invalid_case {
    const char *zUrl;
    const char *zMsg; /* expected substring of the message */
} invalid_case;

static const invalid_case invalid[] = {
    {"", "empty replica URL"},
    {"ftp://x", "litestream: unknown URL scheme 'ftp' in 'ftp://x' (expected "
                "file, s3, gs, abs, sftp, webdav, webdavs, oss, nats)"},
    {"http://host/x", "unknown URL scheme 'http'"},
    {"rel/dir", "litestream: file replica path must be absolute: 'rel/dir'"},
    {"./rel", "must be absolute: './rel'"},
    {"db", "must be absolute: 'db'"},
    {"file:rel/dir", "must be absolute: 'rel/dir'"},
    {"file://", "has no path"},
    {"file:", "has no path"},
    {"file://host/dir", "file URL names host 'host'"},
    {"file://rel/dir", "expected file:///abs/dir"},
    {"file://:8/dir", "file URL names host ':8'"},
    {"file:///a/../b", "must not contain '..' segments: '/a/../b'"},
    {"file:///a/%2e%2e/b", "'..' segments"},
    {"/a/b/..", "'..' segments"},
    {"s3://bucket/a/../b", "'..' segments"},
    {"s3://", "litestream: malformed URL 's3://' (missing bucket)"},
    {"s3:///path", "missing bucket"},
    {"gs://", "missing bucket"},
    {"abs://", "missing container"},
    {"sftp:///x", "missing host"},
    {"webdav://:80/x", "missing host"},
    {"s3:bucket/db", "expected s3://bucket/path"},
    {"://x", "missing scheme"},
    {":x", "missing scheme"},
    {"s 3://x", "contains a space"},
    {"1s3://x", "malformed URL scheme"},
    {"s3://buck et/db", "contains a space"},
    {"webdav://ho st:80/x", "contains a space"},
    {"s3://bu$cket/db", "invalid character '$'"},
    {"sftp://host:0/x", "out of range 1-65535"},
    {"sftp://host:65536/x", "out of range 1-65535"},
    {"sftp://host:99999999999999999999/x", "out of range"},
    {"sftp://host:22a/x", "port '22a' is not a number"},
    {"sftp://host:-1/x", "is not a number"},
    {"sftp://host:/x", "missing port number"},
    {"sftp://[::1/x", "bad IPv6 literal"},
    {"sftp://[zz]/x", "IPv6"},
    {"sftp://[::1]x/y", "unexpected text after IPv6"},
    {"s3://user:pw@bucket/db", "s3 URLs take no user name or password"},
    {"file://u@/x", "file URL names host"},
    {"s3://bucket/a%zzb", "invalid percent-escape"},
    {"s3://bucket/a%4", "invalid percent-escape"},
    {"s3://bucket/a%00b", "control character"},
    {"s3://bucket/a?x=%0a", "control character"},
    {"s3://bucket/a?=v", "query parameter without a name"},
    {"s3://bucket/db#frag", "fragments are not supported"},
    {"s3://bucket/db\n", "control character 0x0a at offset 14"},
    {"/abs\tdir", "control character 0x09"},
    {"s3://bucket/\x7f", "control character 0x7f"},
};

/* c with control characters escaped, for TAP descriptions. */
static const char *
show(const char *z)
{
    static char buf[256];
    size_t j = 0;
    for (; *z && j + 5 < sizeof(buf); z++) {
        unsigned char c = (unsigned char)*z;
        if (c < 0x20 || c == 0x7f)
            j += (size_t)snprintf(buf + j, sizeof(buf) - j, "\\x%02x", c);
        else
            buf[j++] = (char)c;
    }
    buf[j] = 0;
    return buf;
}

static void
test_valid(void)
{
    size_t i;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const valid_case *c = &valid[i];
        ls_url *u = NULL;
        char *zErr = NULL;
        int rc = url_parse(c->zUrl, &u, &zErr);
        if (!ok(rc == SQLITE_OK && u != NULL && zErr == NULL, "parses %s",
                c->zUrl)) {
            diag("rc=%d err=%s", rc, zErr ? zErr : "(none)");
            sqlite3_free(zErr);
            continue;
        }
#define STREQ(a, b) ((a) == NULL ? (b) == NULL : (b) != NULL && !strcmp(a, b))
        ok(STREQ(u->scheme, c->zScheme), "%s: scheme %s", c->zUrl, u->scheme);
        ok(STREQ(u->user, c->zUser), "%s: user %s", c->zUrl,
           u->user ? u->user : "NULL");
        ok(STREQ(u->password, c->zPassword), "%s: password", c->zUrl);
        ok(STREQ(u->host, c->zHost), "%s: host %s", c->zUrl,
           u->host ? u->host : "NULL");
        ok(u->port == c->port, "%s: port %d", c->zUrl, u->port);
        ok(STREQ(u->path, c->zPath), "%s: path '%s'", c->zUrl, u->path);
        ok(STREQ(u->redacted, c->zRedacted ? c->zRedacted : c->zUrl),
           "%s: redacted '%s'", c->zUrl, u->redacted);
        url_free(u);
    }
}

static void
test_invalid(void)
{
    size_t i;
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        const invalid_case *c = &invalid[i];
        ls_url *u = (ls_url *)1;
        char *zErr = NULL;
        int rc = url_parse(c->zUrl, &u, &zErr);
        ok(rc == SQLITE_ERROR && u == NULL && zErr != NULL &&
               strstr(zErr, c->zMsg) != NULL &&
               strncmp(zErr, "litestream: ", 12) == 0,
           "refuses '%s': %s", show(c->zUrl), zErr ? zErr : "(no message)");
        sqlite3_free(zErr);
    }
    /* A NULL URL and a NULL pzErr are fine too. */
    ls_url *u = NULL;
    ok(url_parse(NULL, &u, NULL) == SQLITE_ERROR && u == NULL,
       "NULL URL refused");
    ok(url_parse("ftp://x", &u, NULL) == SQLITE_ERROR, "NULL pzErr accepted");
}

static void
test_params(void)
{
    ls_url *u = NULL;
    char *zErr = NULL;
    int rc = url_parse("s3://b/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000"
                       "&forcePathStyle=true&skip-verify=1&region=us+east"
                       "&flag&&sse_kms_key_id=k1&region=second&e=a%2Bb",
                       &u, &zErr);
    if (!ok(rc == SQLITE_OK, "parses a URL with parameters")) {
        diag("%s", zErr);
        sqlite3_free(zErr);
        return;
    }
    const char *v;
    v = url_param(u, "endpoint");
    ok(v && !strcmp(v, "http://127.0.0.1:9000"), "endpoint decoded: %s", v);
    v = url_param(u, "force_path_style");
    ok(v && !strcmp(v, "true"), "camelCase found by snake_case key");
    v = url_param(u, "skip_verify");
    ok(v && !strcmp(v, "1"), "kebab-case found by snake_case key");
    ok(url_param(u, "skipVerify") == v, "camelCase key finds kebab-case");
    v = url_param(u, "region");
    ok(v && !strcmp(v, "us east"), "'+' is a space; first duplicate wins");
    v = url_param(u, "flag");
    ok(v && !strcmp(v, ""), "bare parameter has empty value");
    v = url_param(u, "sse_kms_key_id");
    ok(v && !strcmp(v, "k1"), "snake_case exact match");
    v = url_param(u, "e");
    ok(v && !strcmp(v, "a+b"), "%%2B decodes to '+'");
    ok(url_param(u, "missing") == NULL, "absent parameter is NULL");
    ok(url_param(u, "force_path_style_") != NULL &&
           url_param(u, "forcepath") == NULL,
       "separators are ignored, letters are not");
    ok(u->nparam == 8, "8 parameters (empty part skipped): %d", u->nparam);
    ok(!strcmp(u->redacted, "s3://b/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000"
                            "&forcePathStyle=true&skip-verify=1&region=us+"
                            "east&flag&&sse_kms_key_id=k1&region=second&e=a"
                            "%2Bb"),
       "nothing secret: redacted form is the URL");
    url_free(u);
}

static void
test_redaction(void)
{
    static const char *const secrets[] = {
        "hunter2",  "AKIAsecret", "tok123",   "sigvalue",
        "sasvalue", "acctkey",    "passw0rd", "ssecust",
    };
    const char *zUrl =
        "sftp://me:hunter2@host:22/p?key=%2Fhome%2Fme%2Fid&"
        "secret_access_key=AKIAsecret&sessionToken=tok123&sig=sigvalue&"
        "sas=sasvalue&account-key=acctkey&password=passw0rd&"
        "sseCustomerKey=ssecust&region=eu&sv=2020-01-01";
    ls_url *u = NULL;
    char *zErr = NULL;
    size_t i;
    int leaked = 0;

    if (!ok(url_parse(zUrl, &u, &zErr) == SQLITE_OK, "parses secret URL")) {
        diag("%s", zErr);
        sqlite3_free(zErr);
        return;
    }
    for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (strstr(u->redacted, secrets[i]))
            leaked = 1;
    ok(!leaked, "no secret in redacted: %s", u->redacted);
    ok(strstr(u->redacted, "me:REDACTED@host") != NULL, "password redacted");
    ok(strstr(u->redacted, "region=eu") && strstr(u->redacted, "sv=2020"),
       "harmless parameters kept");
    ok(!strcmp(u->password, "hunter2"), "password still available decoded");
    ok(!strcmp(url_param(u, "secret_access_key"), "AKIAsecret"),
       "secret parameter still available decoded");
    url_free(u);

    /* Error messages quote the URL redacted. */
    u = NULL;
    ok(url_parse("webdav://u:topsecret@host:99999/x?token=abc", &u, &zErr) ==
           SQLITE_ERROR,
       "bad port refused");
    ok(zErr && !strstr(zErr, "topsecret") && !strstr(zErr, "abc") &&
           strstr(zErr, "REDACTED"),
       "message hides secrets: %s", zErr);
    sqlite3_free(zErr);
    ok(url_parse("ftp://u:topsecret@x/?sig=abc", &u, &zErr) == SQLITE_ERROR &&
           zErr && !strstr(zErr, "topsecret") && !strstr(zErr, "abc"),
       "unknown-scheme message hides secrets: %s", zErr);
    sqlite3_free(zErr);

    char *z = url_redact("s3://b/x?X-Amz-Signature=zz&X-Amz-Credential=cc"
                         "&signPayload=true&keyPath=/k#frag");
    ok(z && !strstr(z, "zz") && !strstr(z, "cc") && !strstr(z, "frag") &&
           strstr(z, "signPayload=true") && strstr(z, "keyPath=/k"),
       "url_redact: %s", z);
    sqlite3_free(z);
    z = url_redact("/plain/path?password=x");
    ok(z && !strcmp(z, "/plain/path?password=x"),
       "plain paths are not URLs: kept as is");
    sqlite3_free(z);

    ok(url_param_is_secret("AccountKey") && url_param_is_secret("key") &&
           url_param_is_secret("sas_token") && !url_param_is_secret("key_id") &&
           !url_param_is_secret("region") &&
           !url_param_is_secret("sign_payload"),
       "secret parameter names");
}

static void
test_long_key(void)
{
    char zUrl[400], zKey[260];
    ls_url *u = NULL;

    memset(zKey, 'k', 250);
    zKey[250] = 0;
    snprintf(zUrl, sizeof(zUrl), "s3://b/p?%s=v", zKey);
    ok(url_parse(zUrl, &u, NULL) == SQLITE_OK && url_param(u, zKey) &&
           !strcmp(url_param(u, zKey), "v") && strstr(u->redacted, "=REDACTED"),
       "a 250-character parameter name is found (and hidden)");
    url_free(u);
}

int
main(void)
{
    api_init();
    test_valid();
    test_invalid();
    test_params();
    test_redaction();
    test_long_key();
    url_free(NULL);
    return tap_done();
}
