/*
 * test_crypto.c: the crypto helpers of storage/backend/sigv4.c that the abs
 * and gs backends use: base64 (both alphabets), the HMAC-SHA256 of Azure's
 * Shared Key, and the RS256 signature of a service-account JWT.
 *
 * Expected values: base64 from RFC 4648 section 10; HMAC-SHA256 from RFC
 * 4231 test case 2 (base64 of its hex); the Shared Key signature of a
 * List Blobs request with Azurite's published dev account key, computed
 * with Python's hmac module; the RS256 signature with a test key made for
 * this file by `openssl genpkey` and computed by `openssl dgst -sha256
 * -sign` (RSASSA-PKCS1-v1_5 is deterministic).  The abs and gs-sa
 * integration suites check the same code against Azurite's verifier and
 * a token endpoint that verifies the JWT.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "storage/backend/sigv4.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

static const char rsa_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBALfMIBLuUHn6EYVM\n"
    "rqSjbQw2+fRQ/Pd9n4J3JV3QwbQUN62q8K2ZZUI6Nco1X3b1FeYEwrS3IxmJcQlS\n"
    "QDAWAc/0FWT5M8HWuqVy/9YadK5lgNibK6z1FZrWU3YRSUTsuzXsk4ZS+RuvX/O0\n"
    "qH6ff2Ko8f9gn0jUlLsY1MlKm5qZAgMBAAECgYBG4K/pvP9J2paRGh4rHV67HCRO\n"
    "BEFZS5eMn1fIku1v/W/vSAFiYMo8vOfrX6O94wub1XAkco9VlLwDhTV9la8Ck/YP\n"
    "4e/AoUdNg8aoPoeWw+MPRWEWS6GpsTbujkMVT3OfPG2EMN5EImzbdQdn7wuwSUFq\n"
    "12cVT2ZEDAFfo87NkQJBAOlV/aJvqUBoOMaFNMaXXpQec0Zx7JuGPV+0aLs5lG0I\n"
    "fOCn5Nb/xqE1MVFUya8YziTfXXbffPfqfzOk0IGiOkUCQQDJplXDs3z9RxoZIp2g\n"
    "49o1/b+md1N9/u/f8LpIis5s/WZcIJ8Zl7xOq8nlIFdO/iSObZK4iAGvRPSxbAW9\n"
    "G65FAkEAmEqNjjU+zFC5rahHN86X5iixqCq2+RL2f75qFLiSDU/a4W3zR/gMli73\n"
    "j1O9htCzyxEWGX3oPI8KkpRhmhpd2QJAD7EuA2i4VU1vLn2PHrIcjQ8OFvo6ORfZ\n"
    "uueU14hVwA2IJas0Nl2kfcrIj1gQ80i7t4m3XTzYRLdtA1GQsMKysQJBAJ0gASP0\n"
    "hqL2/DWjMCKO67u9xUlxY/bTHjzYXkw+RUJ+bmZujpsm3pwwJImX7rTkKgZhLSQ5\n"
    "b/fJ2aMgFQKxzRE=\n"
    "-----END PRIVATE KEY-----\n";

static const char ec_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTj5fAEgXL95TwsOe\n"
    "VoaGLeQuyL7i9CJjE8TIKngiKIehRANCAASsTYySGGfMOzoq8tvg5z0Cp778TsHp\n"
    "5Hux2GZmI1b/4pD1R424gSyNvBx1jQlZ23citH3lyTJSm4c47x/A6NUs\n"
    "-----END PRIVATE KEY-----\n";

static void
test_base64(void)
{
    static const char *const in[] = {"",     "f",     "fo",    "foo",
                                     "foob", "fooba", "foobar"};
    static const char *const std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const url[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                      "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const char *const bad[] = {
        "", "Zm9", "Zm9v!A==", "Z===", "Zm 9v", "Zm9v\n", "Zg=a", "-_-_"};
    for (int i = 0; i < 7; i++) {
        char *a = sigv4_base64(in[i], strlen(in[i]), 0);
        char *b = sigv4_base64(in[i], strlen(in[i]), 1);
        ok(a && !strcmp(a, std[i]), "base64('%s') = %s", in[i], a);
        ok(b && !strcmp(b, url[i]), "base64url('%s') = %s", in[i], b);
        sqlite3_free(a);
        sqlite3_free(b);
        if (i == 0)
            continue;
        uint8_t *p = NULL;
        size_t n = 0;
        int rc = sigv4_base64_decode(std[i], &p, &n);
        ok(rc == SQLITE_OK && n == strlen(in[i]) && !memcmp(p, in[i], n),
           "decode('%s') = '%.*s'", std[i], (int)n, p ? (char *)p : "");
        sqlite3_free(p);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *p = (uint8_t *)"x";
        size_t n = 9;
        int rc = sigv4_base64_decode(bad[i], &p, &n);
        ok(rc == SQLITE_ERROR && p == NULL && n == 0,
           "decode refuses bad input %d (not base64)", (int)i);
    }
    /* The binary bytes '+' and '/' stand for, both ways. */
    static const uint8_t bin[] = {0xfb, 0xff, 0xbf};
    char *z = sigv4_base64(bin, 3, 0), *zu = sigv4_base64(bin, 3, 1);
    ok(z && zu && !strcmp(z, "+/+/") && !strcmp(zu, "-_-_"),
       "62 and 63: %s / %s", z, zu);
    sqlite3_free(z);
    sqlite3_free(zu);
}

static void
test_hmac(void)
{
    static const char sts[] =
        "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 07 Dec 2026 01:43:00 "
        "GMT\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/"
        "ctr\ncomp:list\nrestype:container";
    uint8_t *key = NULL;
    size_t nkey = 0;
    char *z = sigv4_hmac_base64("Jefe", 4, "what do ya want for nothing?");

    ok(z && !strcmp(z, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="),
       "HMAC-SHA256 of RFC 4231 case 2: %s", z);
    sqlite3_free(z);
    ok(sigv4_base64_decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
                           "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
                           &key, &nkey) == SQLITE_OK &&
           nkey == 64,
       "Azurite's account key decodes to 64 bytes");
    z = sigv4_hmac_base64(key, nkey, sts);
    ok(z && !strcmp(z, "GjV9iFjsDJv5Osp6ggSWCPlWUQ/3ylIlJARYbWfyzzY="),
       "Shared Key signature of a List Blobs request: %s", z);
    sqlite3_free(z);
    sqlite3_free(key);
    ok(sigv4_hmac_base64(NULL, 0, "x") == NULL, "no key: NULL");
}

static void
test_rs256(void)
{
    char *z = NULL;
    int rc = sigv4_rs256(rsa_pem, "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0", &z);

    ok(rc == SQLITE_OK && z &&
           !strcmp(z, "tjFqq956rk_a0Xafwblat9KlkxQzC5ctU5XYLOoza-zKje8TAS9sV_"
                      "yRXfr0eoDUJaxk-"
                      "Mh47n10F0rAOBYinNAnqYXua1CAqsHaXTeSmhLJUkIlmYVohBkEfeN4w"
                      "o-2eYgL8h5vHD3XTgKhuOn_1qyJ7UmVLfJ0yCPlUYtL_pA"),
       "RS256 signature as openssl dgst -sha256 -sign: %.16s...", z);
    sqlite3_free(z);
    z = (char *)"x";
    ok(sigv4_rs256("not a key", "m", &z) == SQLITE_ERROR && z == NULL,
       "text that is no PEM: SQLITE_ERROR");
    ok(sigv4_rs256(ec_pem, "m", &z) == SQLITE_ERROR && z == NULL,
       "an EC key: SQLITE_ERROR (RS256 needs RSA)");
    ok(sigv4_rs256("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE "
                   "KEY-----\n",
                   "m", &z) == SQLITE_ERROR,
       "a damaged PEM: SQLITE_ERROR");
}

int
main(void)
{
    api_init();
    test_base64();
    test_hmac();
    test_rs256();
    return tap_done();
}
