/* test.h — the tiny harness every unit test uses: CHECK macros that count
 * failures, a runner that prints "N passed, M failed", temp folders, and
 * the shared-data lookup that fails loudly when ../shared/data is missing. */
#ifndef TAILOR_TEST_H
#define TAILOR_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_checks, t_failed_checks, t_passed, t_failed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        t_checks++;                                                                 \
        if (!(cond)) {                                                              \
            t_failed_checks++;                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                      \
        long long ta_ = (long long)(a), tb_ = (long long)(b);                                 \
        t_checks++;                                                                           \
        if (ta_ != tb_) {                                                                     \
            t_failed_checks++;                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n",      \
                    __FILE__, __LINE__, #a, ta_, #b, tb_);                                    \
        }                                                                                     \
    } while (0)

#define CHECK_STR(a, b)                                                                      \
    do {                                                                                     \
        const char *ta_ = (a), *tb_ = (b);                                                   \
        t_checks++;                                                                          \
        if (!ta_ || !tb_ || strcmp(ta_, tb_)) {                                              \
            t_failed_checks++;                                                               \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s = \"%s\", expected \"%s\"\n",       \
                    __FILE__, __LINE__, #a, ta_ ? ta_ : "(null)", tb_ ? tb_ : "(null)");     \
        }                                                                                    \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                       \
    do {                                                                                  \
        const char *th_ = (hay), *tn_ = (needle);                                         \
        t_checks++;                                                                       \
        if (!th_ || !strstr(th_, tn_)) {                                                  \
            t_failed_checks++;                                                            \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: \"%s\" does not contain \"%s\"\n", \
                    __FILE__, __LINE__, th_ ? th_ : "(null)", tn_);                       \
        }                                                                                 \
    } while (0)

#define RUN(fn)                                                       \
    do {                                                              \
        int before_ = t_failed_checks;                                \
        fn();                                                         \
        if (t_failed_checks == before_) t_passed++;                   \
        else {                                                        \
            t_failed++;                                               \
            fprintf(stderr, "FAIL %s\n", #fn);                        \
        }                                                             \
    } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    if (t_checks == 0) {
        fprintf(stderr, "no checks ran\n");
        return 1;
    }
    return t_failed ? 1 : 0;
}

/* The shared datasets folder; exits with a clear message when missing:
 * a test that needs data never passes without it. */
static inline const char *test_data_dir(void) {
    const char *d = getenv("TAILOR_TEST_DATA");
    if (!d || access(d, R_OK) != 0) {
        fprintf(stderr,
                "FATAL: the shared datasets folder is missing (TAILOR_TEST_DATA=%s). These tests\n"
                "need ../shared/data beside the checkout (or TAILOR_TEST_DATA set to it).\n",
                d ? d : "(unset)");
        exit(2);
    }
    return d;
}

/* A shared-data file path; exits like test_data_dir when it is missing. */
static inline char *test_data_path(const char *rel) {
    const char *d = test_data_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", d, rel);
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "FATAL: shared data file %s is missing\n", p);
        exit(2);
    }
    return p;
}

/* A fresh temporary folder (malloc'd path); removed by test_rmtree. */
static inline char *test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/tailor-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        exit(2);
    }
    return strdup(tmpl);
}

static inline void test_rmtree(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Writes text to dir/name and returns the malloc'd path. */
static inline char *test_write(const char *dir, const char *name, const char *text) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

#endif
