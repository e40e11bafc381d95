/*
 * nats_cli.c: the nats backend (storage/backend/nats_store.c) driven from
 * the command line, for test/integration/test_nats.py: one handle, one
 * command per line on stdin, one answer line per command on stdout.
 *
 *   nats_cli URL < commands
 *
 *   put KEY FILE [CREATED_MS]   -> ok
 *   get KEY OFF LEN FILE        -> ok N            (LEN -1: to the end)
 *   list PREFIX|. [deep]        -> ok N KEY:SIZE:CREATED_MS ...
 *   del KEY...                  -> ok
 *   counters                    -> ok put get list delete bytes_up bytes_down
 *
 * A failure answers "err CODE MESSAGE" (CODE the SQLite result code's name,
 * MESSAGE backend_errmsg()).  Exits 0 after the last command.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/backend.h"
#include "test/unit/api_init.h"

static const char *
rc_name(int rc)
{
    switch (rc) {
    case SQLITE_NOTFOUND:
        return "NOTFOUND";
    case SQLITE_IOERR:
        return "IOERR";
    case SQLITE_AUTH:
        return "AUTH";
    case SQLITE_CANTOPEN:
        return "CANTOPEN";
    case SQLITE_CORRUPT:
        return "CORRUPT";
    case SQLITE_FULL:
        return "FULL";
    default:
        return "ERROR";
    }
}

static int
cmd_put(backend *b, char **av, int ac)
{
    FILE *f = ac >= 3 ? fopen(av[2], "rb") : NULL;
    long n;
    uint8_t *p;
    int rc;

    if (f == NULL)
        return printf("err ERROR cannot read the file\n"), 1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    rc = backend_put(b, av[1], p, (size_t)n,
                     ac >= 4 ? strtoll(av[3], NULL, 10) : 1700000000000LL);
    free(p);
    if (rc == SQLITE_OK)
        printf("ok\n");
    return rc;
}

static int
cmd_get(backend *b, char **av, int ac)
{
    uint8_t *p = NULL;
    size_t n = 0;
    long long len = ac >= 4 ? strtoll(av[3], NULL, 10) : -1;
    int rc = backend_get(b, av[1], ac >= 3 ? strtoull(av[2], NULL, 10) : 0,
                         len < 0 ? UINT64_MAX : (uint64_t)len, &p, &n);
    FILE *f;

    if (rc == SQLITE_OK && ac >= 5 && (f = fopen(av[4], "wb")) != NULL) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
    if (rc == SQLITE_OK)
        printf("ok %zu\n", n);
    sqlite3_free(p);
    return rc;
}

static int
cmd_list(backend *b, char **av, int ac)
{
    backend_obj *o = NULL;
    const char *zPre = ac >= 2 && strcmp(av[1], ".") != 0 ? av[1] : "";
    int n = 0, i, rc;

    if (ac >= 3 && b->vt->list_tree)
        rc = b->vt->list_tree(b, zPre, &o, &n);
    else
        rc = backend_list(b, zPre, &o, &n);
    if (rc == SQLITE_OK) {
        printf("ok %d", n);
        for (i = 0; i < n; i++)
            printf(" %s:%llu:%lld", o[i].key, (unsigned long long)o[i].size,
                   (long long)o[i].created_ms);
        printf("\n");
    }
    backend_objs_free(o, n);
    return rc;
}

static int
run(backend *b, char *zLine)
{
    char *av[64];
    int ac = 0, rc;
    const backend_counters *c;

    for (char *t = strtok(zLine, " \n"); t && ac < 64; t = strtok(NULL, " \n"))
        av[ac++] = t;
    if (ac == 0)
        return 0;
    if (!strcmp(av[0], "put"))
        rc = cmd_put(b, av, ac);
    else if (!strcmp(av[0], "get"))
        rc = cmd_get(b, av, ac);
    else if (!strcmp(av[0], "list"))
        rc = cmd_list(b, av, ac);
    else if (!strcmp(av[0], "del")) {
        rc = backend_del(b, (const char *const *)av + 1, ac - 1);
        if (rc == SQLITE_OK)
            printf("ok\n");
    } else if (!strcmp(av[0], "counters")) {
        c = backend_get_counters(b);
        printf("ok %llu %llu %llu %llu %llu %llu\n",
               (unsigned long long)c->n_put, (unsigned long long)c->n_get,
               (unsigned long long)c->n_list, (unsigned long long)c->n_delete,
               (unsigned long long)c->bytes_up,
               (unsigned long long)c->bytes_down);
        rc = SQLITE_OK;
    } else {
        printf("err ERROR unknown command %s\n", av[0]);
        return 1;
    }
    if (rc != SQLITE_OK && rc != 1)
        printf("err %s %s\n", rc_name(rc), backend_errmsg(b));
    fflush(stdout);
    return rc;
}

int
main(int argc, char **argv)
{
    backend *b = NULL;
    char *zErr = NULL, line[4096];

    api_init();
    if (argc < 2) {
        fprintf(stderr, "usage: nats_cli URL < commands\n");
        return 2;
    }
    if (backend_open(argv[1], &b, &zErr) != SQLITE_OK) {
        printf("err OPEN %s\n", zErr ? zErr : "?");
        sqlite3_free(zErr);
        return 0;
    }
    while (fgets(line, sizeof(line), stdin))
        run(b, line);
    backend_close(b);
    return 0;
}
