/*
 * replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over every file of
 * a corpus directory (argv[1]) and reports one TAP line per file.  Built with
 * any compiler, so the corpus is exercised on every test run (and under
 * ASan+UBSan in the sanitizer configuration); a crash fails the suite.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!ok(d != NULL, "corpus directory %s exists", argv[1]))
        return tap_done();
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    ok(n > 0, "corpus holds %zu inputs", n);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        size_t len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            len = (size_t)ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = malloc(len ? len : 1);
            len = fread(buf, 1, len, f);
            fclose(f);
        }
        if (ok(f != NULL, "read %s", names[i]))
            LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        free(names[i]);
    }
    free(names);
    return tap_done();
}
