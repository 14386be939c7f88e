/* test_base.c — unit tests for src/base: errors, arenas, vectors, hash
 * map, string builder, UTF-8, number parsing, JSON helpers, progress
 * formatting, thread pool, timers, files. */
#include <cjson/cJSON.h>
#include <math.h>

#include "base/base.h"
#include "test.h"

static void test_errors(void) {
    tailor_error e = {0};
    CHECK_EQ(err_set(&e, TAILOR_EIO, "disk %d", 3), TAILOR_EIO);
    CHECK_EQ(e.code, TAILOR_EIO);
    CHECK_STR(e.msg, "disk 3");
    CHECK_EQ(err_data(&e, "u.data", 12, "rating", "'x' is not a number"), TAILOR_EDATA);
    CHECK_STR(e.msg, "u.data:12: field 'rating': 'x' is not a number");
    err_data(&e, "f.csv", 0, NULL, "empty");
    CHECK_STR(e.msg, "f.csv: empty");
    err_prefix(&e, "import");
    CHECK_STR(e.msg, "import: f.csv: empty");
    CHECK_STR(tailor_strerror(TAILOR_ECHECKSUM), "checksum mismatch");
    CHECK_STR(tailor_strerror(12345), "unknown error");
    CHECK_EQ(err_set(NULL, TAILOR_EINVAL, "ignored"), TAILOR_EINVAL);
    err_clear(&e);
    CHECK_EQ(e.code, 0);
    CHECK_STR(e.msg, "");
    /* Long messages are truncated, never overflowed. */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    err_set(&e, TAILOR_EDATA, "%s", big);
    CHECK_EQ(strlen(e.msg), sizeof e.msg - 1);
}

static void test_arena(void) {
    arena a;
    arena_init(&a, 128);
    char *p1 = arena_alloc(&a, 10), *p2 = arena_alloc(&a, 10);
    CHECK(((uintptr_t)p1 & 15) == 0);
    CHECK(((uintptr_t)p2 & 15) == 0);
    CHECK(p2 != p1);
    memset(p1, 1, 10);
    char *big = arena_alloc(&a, 10000); /* larger than a chunk */
    memset(big, 2, 10000);
    char *p3 = arena_alloc(&a, 16);
    CHECK(p3 != NULL);
    CHECK_STR(arena_strdup(&a, "hello"), "hello");
    CHECK_STR(arena_strndup(&a, "hello", 3), "hel");
    arena_reset(&a);
    CHECK(arena_alloc(&a, 8) != NULL);
    arena_deinit(&a);
}

static void test_vec(void) {
    VEC(int) v = {0};
    for (int i = 0; i < 1000; i++) vec_push(&v, i * i);
    CHECK_EQ(v.len, 1000);
    CHECK_EQ(v.data[999], 999 * 999);
    CHECK(v.cap >= 1000);
    vec_free(&v);
    CHECK(v.data == NULL && v.len == 0);
}

static void test_hmap(void) {
    hmap m;
    hmap_init(&m, 0);
    char key[32];
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(key, sizeof key, "id%d", i);
        hmap_put(&m, key, (size_t)n, i * 3);
    }
    CHECK_EQ(m.len, 50000);
    int64_t v = -1;
    CHECK(hmap_get(&m, "id12345", 7, &v));
    CHECK_EQ(v, 12345 * 3);
    CHECK(!hmap_get(&m, "id50000", 7, &v));
    CHECK(!hmap_get(&m, "id1", 2, &v)); /* prefix is a different key */
    hmap_put(&m, "id7", 3, -5);
    CHECK(hmap_get(&m, "id7", 3, &v));
    CHECK_EQ(v, -5);
    CHECK_EQ(m.len, 50000);
    /* Keys are copied: binary keys with NULs work. */
    int64_t bin = 42;
    hmap_put(&m, (const char *)&bin, sizeof bin, 9);
    CHECK(hmap_get(&m, (const char *)&bin, sizeof bin, &v));
    CHECK_EQ(v, 9);
    CHECK(hmap_get(&m, "", 0, &v) == false);
    /* Keys longer than the in-slot space live in the arena. */
    const char *longk = "a-rather-long-external-identifier-0001";
    hmap_put(&m, longk, strlen(longk), 123);
    char copy[64];
    strcpy(copy, longk);
    CHECK(hmap_get(&m, copy, strlen(copy), &v));
    CHECK_EQ(v, 123);
    copy[strlen(copy) - 1] = '2';
    CHECK(!hmap_get(&m, copy, strlen(copy), &v));
    hmap_deinit(&m);
    hmap empty = {0};
    CHECK(!hmap_get(&empty, "x", 1, &v));
}

static void test_sb(void) {
    sb s;
    sb_init(&s);
    CHECK_STR(sb_str(&s), "");
    sb_puts(&s, "a");
    sb_printf(&s, "%d-%s", 42, "x");
    sb_putc(&s, '!');
    CHECK_STR(sb_str(&s), "a42-x!");
    sb_clear(&s);
    sb_json_str(&s, "q\"\\\n\x01", 5);
    CHECK_STR(sb_str(&s), "\"q\\\"\\\\\\n\\u0001\"");
    for (int i = 0; i < 1000; i++) sb_puts(&s, "0123456789");
    CHECK_EQ(s.len, 10000 + 15);
    char *t = sb_take(&s);
    CHECK_EQ(strlen(t), 10015);
    free(t);
    CHECK_STR(sb_str(&s), "");
    sb_deinit(&s);
}

static void test_utf8(void) {
    CHECK_EQ(utf8_check("plain", 5), -1);
    CHECK_EQ(utf8_check("Mis\xc3\xa9rables", 11), -1);
    CHECK_EQ(utf8_check("\xe2\x82\xac \xf0\x9f\x98\x80", 8), -1);
    CHECK_EQ(utf8_check("Mis\xe9rables", 10), 3);   /* Latin-1 byte */
    CHECK_EQ(utf8_check("ab\xc0\xaf", 4), 2);        /* overlong */
    CHECK_EQ(utf8_check("\xed\xa0\x80", 3), 0);      /* surrogate */
    CHECK_EQ(utf8_check("\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
    CHECK_EQ(utf8_check("ok\xe2\x82", 4), 2);        /* truncated */
    CHECK_EQ(utf8_check("\x80", 1), 0);              /* stray continuation */
    sb s;
    sb_init(&s);
    latin1_to_utf8(&s, "Mis\xe9rables \xff", 12);
    CHECK_STR(sb_str(&s), "Mis\xc3\xa9rables \xc3\xbf");
    CHECK_EQ(utf8_check(s.buf, s.len), -1);
    sb_deinit(&s);
}

static void test_parse_numbers(void) {
    int64_t i;
    double d;
    CHECK(parse_i64("123", 3, &i) && i == 123);
    CHECK(parse_i64("-9223372036854775808", 20, &i) && i == INT64_MIN);
    CHECK(parse_i64("9223372036854775807", 19, &i) && i == INT64_MAX);
    CHECK(!parse_i64("9223372036854775808", 19, &i));
    CHECK(!parse_i64("", 0, &i));
    CHECK(!parse_i64("-", 1, &i));
    CHECK(!parse_i64("12a", 3, &i));
    CHECK(!parse_i64(" 12", 3, &i));
    CHECK(parse_f64("4.5", 3, &d) && d == 4.5);
    CHECK(parse_f64("3", 1, &d) && d == 3.0);
    CHECK(parse_f64("-1e3", 4, &d) && d == -1000.0);
    CHECK(!parse_f64("4.5x", 4, &d));
    CHECK(!parse_f64("abc", 3, &d));
    CHECK(!parse_f64("nan", 3, &d));
    CHECK(!parse_f64("inf", 3, &d));
    CHECK(!parse_f64("", 0, &d));
    CHECK(!parse_f64(" 1", 2, &d));
    CHECK(!parse_f64(".", 1, &d));
    CHECK(!parse_f64("1.2.3", 5, &d));
    CHECK(parse_f64("4.", 2, &d) && d == 4.0);
    CHECK(parse_f64("-0.5", 4, &d) && d == -0.5);
    CHECK(parse_f64("1234567890123456789", 19, &d) && d == 1234567890123456789.0);
    /* The fast decimal path rounds exactly like strtod. */
    uint64_t x = 88172645463325252ULL;
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char buf[64];
        int decimals = (int)(x % 9);
        int n = snprintf(buf, sizeof buf, "%.*f", decimals, (double)(x % 100000000) / 1000.0);
        double want = strtod(buf, NULL);
        if (!parse_f64(buf, (size_t)n, &d) || d != want) {
            CHECK(d == want);
            fprintf(stderr, "  mismatch on %s\n", buf);
            break;
        }
    }
}

static void test_json(void) {
    cJSON *o = cJSON_Parse("{\"a\":\"x\",\"n\":3,\"f\":2.5,\"s\":\"3\"}");
    tailor_error e = {0};
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    CHECK_EQ(json_get_str(o, "a", true, &s, &e), 0);
    CHECK_STR(s, "x");
    CHECK_EQ(json_get_i64(o, "n", true, &i, &e), 0);
    CHECK_EQ(i, 3);
    CHECK_EQ(json_get_f64(o, "f", true, &d, &e), 0);
    CHECK(d == 2.5);
    CHECK_EQ(json_get_i64(o, "f", true, &i, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "'f': expected an integer");
    CHECK_EQ(json_get_f64(o, "s", true, &d, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "'s': expected a number");
    CHECK_EQ(json_get_str(o, "missing", true, &s, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "'missing': missing");
    i = 77;
    CHECK_EQ(json_get_i64(o, "missing", false, &i, &e), 0);
    CHECK_EQ(i, 77);
    char *p = json_print(o);
    CHECK_STR(p, "{\"a\":\"x\",\"n\":3,\"f\":2.5,\"s\":\"3\"}");
    cJSON_free(p);
    cJSON_Delete(o);
}

static void test_progress_format(void) {
    progress p;
    progress_set_quiet(true);
    progress_begin(&p, "import", 1000);
    CHECK(!p.active); /* quiet: never draws */
    p.done = 250;
    char buf[256];
    progress_format(&p, p.start_ns + 1000000000ULL, buf, sizeof buf);
    CHECK_CONTAINS(buf, "import [");
    CHECK_CONTAINS(buf, " 25% 250/1000 250/s ETA 3s");
    p.total = 0;
    progress_format(&p, p.start_ns + 2000000000ULL, buf, sizeof buf);
    CHECK_CONTAINS(buf, "import 250 125/s 2s");
    progress_update(&p, 300);
    CHECK_EQ(p.done, 300);
    progress_end(&p);
    progress_set_quiet(false);
}

typedef struct sum_ctx {
    const int64_t *v;
    int64_t partial[8];
    size_t begins[8];
} sum_ctx;

static void sum_fn(void *ctx, size_t b, size_t e, int thread) {
    sum_ctx *c = ctx;
    int64_t s = 0;
    for (size_t i = b; i < e; i++) s += c->v[i];
    c->partial[thread] = s;
    c->begins[thread] = b;
}

static void test_pool(void) {
    enum { N = 100003 };
    int64_t *v = malloc(N * sizeof *v);
    int64_t want = 0;
    for (int i = 0; i < N; i++) v[i] = i % 97, want += v[i];
    for (int threads = 1; threads <= 4; threads++) {
        pool *p = pool_new(threads);
        CHECK_EQ(pool_threads(p), threads);
        for (int rep = 0; rep < 20; rep++) {
            sum_ctx c = {.v = v};
            pool_for(p, N, sum_fn, &c);
            int64_t got = 0;
            for (int t = 0; t < threads; t++) got += c.partial[t];
            CHECK_EQ(got, want);
            /* Deterministic chunking: thread t always starts at the same index. */
            CHECK_EQ(c.begins[threads - 1], (size_t)(threads - 1) * (N / threads) +
                                                 ((size_t)(threads - 1) < N % threads ? (size_t)(threads - 1) : N % threads));
        }
        sum_ctx c = {.v = v};
        pool_for(p, 0, sum_fn, &c); /* empty job is a no-op */
        CHECK_EQ(c.partial[0], 0);
        pool_free(p);
    }
    pool *d = pool_new(0);
    CHECK(pool_threads(d) >= 1);
    pool_free(d);
    free(v);
}

static void test_timer(void) {
    uint64_t a = timer_now_ns();
    usleep(2000);
    uint64_t b = timer_now_ns();
    CHECK(b > a);
    CHECK(timer_seconds_since(a) >= 0.002);
}

static void test_files(void) {
    char *dir = test_tmpdir();
    char *deep = path_join(dir, "a/b/c");
    tailor_error e = {0};
    CHECK_EQ(mkdir_p(deep, &e), 0);
    CHECK(dir_exists(deep));
    CHECK_EQ(mkdir_p(deep, &e), 0); /* idempotent */
    CHECK(!file_exists(deep));
    char *f = test_write(deep, "x.txt", "hi");
    CHECK(file_exists(f));
    char *j = path_join("a/", "b");
    CHECK_STR(j, "a/b");
    free(j);
    j = path_join("a", "b");
    CHECK_STR(j, "a/b");
    free(j);
    char *blocked = path_join(f, "sub");
    CHECK_EQ(mkdir_p(blocked, &e), TAILOR_EIO);
    CHECK_CONTAINS(e.msg, "cannot create directory");
    free(blocked);
    free(f);
    free(deep);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_errors);
    RUN(test_arena);
    RUN(test_vec);
    RUN(test_hmap);
    RUN(test_sb);
    RUN(test_utf8);
    RUN(test_parse_numbers);
    RUN(test_json);
    RUN(test_progress_format);
    RUN(test_pool);
    RUN(test_timer);
    RUN(test_files);
    return test_summary();
}
