/* Replays a fuzz target's corpus (tests/fuzz/corpus/NAME/) as a criterion test, so every normal build
 * runs the inputs the fuzzer found interesting; the libFuzzer build is the one that searches. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t replay_file(const char *dir, const char *name) {
        char path[4096];
        FILE *f;
        char *buf;
        long n;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "re");
        cr_assert_not_null(f, "%s", path);
        cr_assert_eq(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        buf = malloc(n > 0 ? n : 1);
        cr_assert_eq(fread(buf, 1, n, f), (size_t) n);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *) buf, n);
        free(buf);
        return 1;
}

Test(fuzz_corpus, every_input_replays_without_crashing) {
        DIR *d = opendir(FUZZ_CORPUS_DIR);
        struct dirent *de;
        size_t n = 0;

        cr_assert_not_null(d, "cannot open %s", FUZZ_CORPUS_DIR);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n += replay_file(FUZZ_CORPUS_DIR, de->d_name);
        closedir(d);
        cr_assert_gt(n, 0, "empty corpus in %s", FUZZ_CORPUS_DIR);
}
