/* test_rec.c — every recommender on a tiny synthetic dataset with a known
 * answer, save/load round trips, the CG solver against the exact one,
 * explanations, filters, parameter checks, and damaged model files. */
#include <math.h>

#include "rec/rec.h"
#include "test.h"

static char *g_dir;

/* Two taste groups: users 0..9 like items 0..5, users 10..19 like items
 * 6..11; every user has the first item of its group and misses one other
 * (user u misses item 1 + u % 5 of its group). Items 0 and 6 are the most
 * popular (10 users each). */
enum { NU = 20, NI = 12 };
static int64_t g_ptr[NU + 1];
static int32_t g_idx[NU * NI];
static float g_val[NU * NI];
static int64_t g_ts[NU * NI];
static rec_data g_data;

static int missing_item(int u) { return (u < 10 ? 0 : 6) + 1 + (u % 5); }

static void build_data(void) {
    int64_t n = 0;
    for (int u = 0; u < NU; u++) {
        g_ptr[u] = n;
        int base = u < 10 ? 0 : 6;
        for (int i = base; i < base + 6; i++) {
            if (i == missing_item(u)) continue;
            g_idx[n] = i, g_val[n] = 1, g_ts[n] = n, n++;
        }
    }
    g_ptr[NU] = n;
    g_data = (rec_data){NU, NI, g_ptr, g_idx, g_val, g_ts, NULL};
}

static rec_model *make(const char *kind, const char *const *kv, int n) {
    rec_params p = {0};
    for (int i = 0; i < n; i++) rec_params_parse(&p, kv[i]);
    rec_model *m = NULL;
    tailor_error e = {0};
    if (rec_model_new(rec_kind_find(kind), &p, &m, &e)) {
        fprintf(stderr, "%s: %s\n", kind, e.msg);
        return NULL;
    }
    if (rec_model_fit(m, &g_data, NULL, NULL, &e)) {
        fprintf(stderr, "%s fit: %s\n", kind, e.msg);
        rec_model_free(m);
        return NULL;
    }
    return m;
}

static int top1(const rec_model *m, int32_t user) {
    int32_t item;
    float score;
    rec_topk_params tp = {.k = 1, .exclude_history = true};
    int64_t b = g_ptr[user], e = g_ptr[user + 1];
    int got = rec_topk(m, user, g_idx + b, g_val + b, (size_t)(e - b), tp, &item, &score, NULL);
    return got == 1 ? item : -1;
}

static void check_known_answer(const char *kind, const char *const *kv, int n) {
    rec_model *m = make(kind, kv, n);
    CHECK(m != NULL);
    if (!m) return;
    int right = 0;
    for (int u = 0; u < NU; u++) {
        int t = top1(m, u);
        right += t == missing_item(u);
        if (t != missing_item(u)) fprintf(stderr, "  %s: user %d gets %d, not %d\n", kind, u, t, missing_item(u));
    }
    if (right < NU) fprintf(stderr, "  %s: %d of %d users get their missing item first\n", kind, right, NU);
    CHECK_EQ(right, NU);
    /* Anonymous history: the first user's items, folded in. */
    int64_t b = g_ptr[1], e = g_ptr[2];
    int32_t item;
    float score;
    rec_topk_params tp = {.k = 1, .exclude_history = true};
    CHECK_EQ(rec_topk(m, -1, g_idx + b, g_val + b, (size_t)(e - b), tp, &item, &score, NULL), 1);
    CHECK_EQ(item, missing_item(1));
    rec_model_free(m);
}

static void test_known_answers(void) {
    const char *knn[] = {"k=5"};
    check_known_answer("itemknn", knn, 1);
    const char *knn2[] = {"similarity=asymmetric", "alpha=0.3", "weighting=bm25", "shrink=1"};
    check_known_answer("itemknn", knn2, 4);
    const char *knn3[] = {"weighting=tfidf"};
    check_known_answer("itemknn", knn3, 1);
    const char *als[] = {"factors=4", "iterations=10", "alpha=10", "reg=0.1"};
    check_known_answer("als", als, 4);
    const char *alsx[] = {"factors=4", "iterations=10", "alpha=10", "reg=0.1", "solver=cholesky"};
    check_known_answer("als", alsx, 5);
    const char *ease[] = {"lambda=1"};
    check_known_answer("ease", ease, 1);
    const char *bpr[] = {"factors=8", "epochs=300", "lr=0.05", "reg=0.001"};
    check_known_answer("bpr", bpr, 4);
}

static void test_pop(void) {
    rec_model *m = make("pop", NULL, 0);
    CHECK(m != NULL);
    if (!m) return;
    float s[NI];
    m->kind->score(m, 0, NULL, NULL, 0, s);
    CHECK(s[0] == 10.0f);
    CHECK(s[6] == 10.0f);
    CHECK(m->kind->explain_style == REC_EXPLAIN_POPULARITY);
    CHECK(m->popularity && m->popularity[0] == 10 && m->popularity[1] == 8);
    CHECK(s[1] == 8.0f); /* missed by users 0 and 5 */
    int32_t items[3];
    float sc[3];
    CHECK_EQ(rec_topk_scores(s, NI, 3, items, sc), 3);
    CHECK_EQ(items[0], 0);
    rec_model_free(m);
    /* A window keeps only the newest events. */
    const char *w[] = {"window=5"};
    m = make("pop", w, 1);
    m->kind->score(m, 0, NULL, NULL, 0, s);
    float total = 0;
    for (int i = 0; i < NI; i++) total += s[i];
    CHECK(total == 6.0f); /* times newest-5 .. newest */
    rec_model_free(m);
}

static void test_topk_ties_and_filter(void) {
    float s[6] = {1, 2, 2, 0, -INFINITY, 2};
    int32_t it[6];
    float sc[6];
    CHECK_EQ(rec_topk_scores(s, 6, 10, it, sc), 5);
    CHECK_EQ(it[0], 1);
    CHECK_EQ(it[1], 2);
    CHECK_EQ(it[2], 5);
    CHECK_EQ(it[3], 0);
    CHECK_EQ(it[4], 3);
    CHECK_EQ(rec_topk_scores(s, 6, 2, it, sc), 2);
    CHECK_EQ(it[1], 2);
    CHECK_EQ(rec_topk_scores(s, 6, 0, it, sc), 0);
}

static bool only_even(void *ctx, int32_t item) { return item % 2 == 0; }

static void test_filter_and_explain(void) {
    const char *knn[] = {"k=0"};
    rec_model *m = make("itemknn", knn, 1);
    if (!m) {
        CHECK(0);
        return;
    }
    int32_t items[NI];
    float sc[NI];
    rec_topk_params tp = {.k = NI, .exclude_history = true, .filter = only_even};
    int64_t b = g_ptr[0], e = g_ptr[1];
    int got = rec_topk(m, 0, g_idx + b, g_val + b, (size_t)(e - b), tp, items, sc, NULL);
    CHECK(got > 0);
    for (int r = 0; r < got; r++) CHECK(items[r] % 2 == 0);
    for (int r = 0; r < got; r++)
        for (int64_t h = b; h < e; h++) CHECK(items[r] != g_idx[h]);
    /* kNN explanations add up to the score. */
    float score[NI], contrib[NI];
    m->kind->score(m, 0, g_idx + b, g_val + b, (size_t)(e - b), score);
    m->kind->explain(m, 0, g_idx + b, g_val + b, (size_t)(e - b), 0, contrib);
    float sum = 0;
    for (int64_t h = 0; h < e - b; h++) sum += contrib[h];
    CHECK(fabsf(sum - score[0]) < 1e-5f);
    rec_model_free(m);
    /* ALS explanations: the exact decomposition of the fold-in score. */
    const char *alsx[] = {"factors=4", "iterations=5", "alpha=10", "solver=cholesky"};
    m = make("als", alsx, 4);
    m->kind->score(m, -1, g_idx + b, g_val + b, (size_t)(e - b), score);
    m->kind->explain(m, -1, g_idx + b, g_val + b, (size_t)(e - b), 3, contrib);
    sum = 0;
    for (int64_t h = 0; h < e - b; h++) sum += contrib[h];
    CHECK(fabsf(sum - score[3]) < 1e-3f * (1 + fabsf(score[3])));
    rec_model_free(m);
}

static void test_cg_matches_exact(void) {
    /* With as many CG steps as factors, CG solves each system exactly (in
     * exact arithmetic): the two solvers follow the same path. */
    const char *cg[] = {"factors=6", "iterations=8", "alpha=5", "reg=0.5", "cg_steps=12"};
    const char *ex[] = {"factors=6", "iterations=8", "alpha=5", "reg=0.5", "solver=cholesky"};
    rec_model *a = make("als", cg, 5), *b = make("als", ex, 5);
    CHECK(a && b);
    if (!a || !b) return;
    float sa[NI], sb_[NI];
    double maxdiff = 0, maxabs = 0;
    for (int u = 0; u < NU; u++) {
        a->kind->score(a, u, NULL, NULL, 0, sa);
        b->kind->score(b, u, NULL, NULL, 0, sb_);
        for (int i = 0; i < NI; i++) {
            maxdiff = fmax(maxdiff, fabs(sa[i] - sb_[i]));
            maxabs = fmax(maxabs, fabs(sb_[i]));
        }
    }
    if (maxdiff > 1e-3 * maxabs) fprintf(stderr, "  cg vs exact: max diff %g of %g\n", maxdiff, maxabs);
    CHECK(maxdiff <= 1e-3 * maxabs);
    rec_model_free(a);
    rec_model_free(b);
}

static void test_als_kernels(void) {
    /* Each vector set against the scalar twin: sums in another order only. */
    const char *sets[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        double d = rec_als_kernel_check(sets[i], 7 + i);
        if (d < 0) {
            fprintf(stderr, "  als kernels: this CPU cannot run %s (not tested here)\n", sets[i]);
            continue;
        }
        if (d > 2e-6) fprintf(stderr, "  als kernels %s: relative difference %g\n", sets[i], d);
        CHECK(d <= 2e-6);
        if (i == 0) CHECK(d == 0);
    }
}

static void roundtrip(const char *kind, const char *const *kv, int n) {
    rec_model *m = make(kind, kv, n);
    if (!m) {
        CHECK(0);
        return;
    }
    char *path = path_join(g_dir, "m.tmod");
    tailor_error e = {0};
    CHECK_EQ(rec_model_save(m, path, &e), 0);
    rec_model *l = NULL;
    CHECK_EQ(rec_model_load(path, &l, &e), 0);
    if (!l) {
        fprintf(stderr, "%s\n", e.msg);
        rec_model_free(m);
        free(path);
        return;
    }
    CHECK_STR(l->kind->name, kind);
    CHECK_EQ(l->n_users, NU);
    CHECK_EQ(l->n_items, NI);
    CHECK_STR(rec_params_get(&l->params, kv ? "factors" : "window") ? "ok" : "ok", "ok");
    float s1[NI], s2[NI];
    for (int u = -1; u < NU; u++) {
        int64_t b = g_ptr[u < 0 ? 0 : u], en = g_ptr[(u < 0 ? 0 : u) + 1];
        m->kind->score(m, u, g_idx + b, g_val + b, (size_t)(en - b), s1);
        l->kind->score(l, u, g_idx + b, g_val + b, (size_t)(en - b), s2);
        CHECK(memcmp(s1, s2, sizeof s1) == 0);
    }
    for (size_t i = 0; i < m->params.n; i++)
        CHECK_STR(rec_params_get(&l->params, m->params.names[i]), m->params.values[i]);
    CHECK_STR(l->item_ext[3], "3");
    /* The users per item travel with the model (the popularity fallback). */
    CHECK(l->popularity && m->popularity);
    if (l->popularity && m->popularity) CHECK(memcmp(l->popularity, m->popularity, NI * sizeof *m->popularity) == 0);
    rec_model_free(l);
    rec_model_free(m);
    free(path);
}

static void test_save_load(void) {
    roundtrip("pop", NULL, 0);
    const char *knn[] = {"k=3", "similarity=asymmetric"};
    roundtrip("itemknn", knn, 2);
    const char *als[] = {"factors=5", "iterations=3"};
    roundtrip("als", als, 2);
    const char *bpr[] = {"factors=5", "epochs=3"};
    roundtrip("bpr", bpr, 2);
    const char *ease[] = {"lambda=3"};
    roundtrip("ease", ease, 1);
    const char *sas[] = {"hidden=8", "blocks=1", "epochs=2", "patience=0", "max_len=4"};
    roundtrip("sasrec", sas, 5);
}

/* EASE's blocked factorisation and inverse (several 256-column blocks)
 * against a float64 Gauss-Jordan inverse of the same Gram matrix; half
 * precision storage rounds what is served and halves the file. */
static void test_ease_blocked(void) {
    enum { EU = 400, EI = 300 };
    static int64_t ptr[EU + 1];
    static int32_t idx[EU * 40];
    static float val[EU * 40];
    rng g;
    rng_seed(&g, 7);
    int64_t n = 0;
    unsigned char has[EI];
    for (int u = 0; u < EU; u++) {
        ptr[u] = n;
        memset(has, 0, sizeof has);
        int len = 10 + (int)rng_below(&g, 30);
        for (int t = 0; t < len; t++) has[(u * 7 + (int)rng_below(&g, 60)) % EI] = 1; /* overlapping windows */
        for (int i = 0; i < EI; i++)
            if (has[i]) idx[n] = i, val[n] = 1, n++;
    }
    ptr[EU] = n;
    rec_data d = {EU, EI, ptr, idx, val, NULL, NULL};
    double lambda = 10;
    double *A = calloc((size_t)EI * 2 * EI, sizeof *A); /* [G | I] */
    for (int u = 0; u < EU; u++)
        for (int64_t a = ptr[u]; a < ptr[u + 1]; a++)
            for (int64_t b = ptr[u]; b < ptr[u + 1]; b++) A[(size_t)idx[a] * 2 * EI + idx[b]] += 1;
    for (int i = 0; i < EI; i++) A[(size_t)i * 2 * EI + i] += lambda, A[(size_t)i * 2 * EI + EI + i] = 1;
    for (int c = 0; c < EI; c++) { /* symmetric positive definite: no pivoting needed */
        double *rc = A + (size_t)c * 2 * EI, piv = rc[c];
        for (int j = 0; j < 2 * EI; j++) rc[j] /= piv;
        for (int r = 0; r < EI; r++) {
            if (r == c) continue;
            double *rr = A + (size_t)r * 2 * EI, f = rr[c];
            if (f != 0)
                for (int j = 0; j < 2 * EI; j++) rr[j] -= f * rc[j];
        }
    }
    rec_params p = {0};
    rec_params_parse(&p, "lambda=10");
    rec_params_parse(&p, "storage=f32");
    rec_model *m32 = NULL, *m16 = NULL;
    tailor_error e = {0};
    CHECK_EQ(rec_model_new(rec_kind_find("ease"), &p, &m32, &e), 0);
    rec_params_parse(&p, "storage=f16");
    CHECK_EQ(rec_model_new(rec_kind_find("ease"), &p, &m16, &e), 0);
    if (!m32 || !m16) return;
    m32->quiet = m16->quiet = true;
    CHECK_EQ(rec_model_fit(m32, &d, NULL, NULL, &e), 0);
    CHECK_EQ(rec_model_fit(m16, &d, NULL, NULL, &e), 0);
    double worst = 0, big = 0, worst16 = 0;
    float s32[EI], s16[EI];
    for (int h = 0; h < EI; h++) {
        int32_t one[1] = {h};
        m32->kind->score(m32, -1, one, NULL, 1, s32);
        m16->kind->score(m16, -1, one, NULL, 1, s16);
        for (int j = 0; j < EI; j++) {
            const double *P = A + EI; /* the inverse's columns start at EI */
            double want = h == j ? 0 : -P[(size_t)h * 2 * EI + j] / P[(size_t)j * 2 * EI + j];
            worst = fmax(worst, fabs(s32[j] - want));
            big = fmax(big, fabs(want));
            worst16 = fmax(worst16, fabs(s16[j] - s32[j]) - fabs(s32[j]) / 1024);
        }
    }
    if (worst > 1e-4 * big) fprintf(stderr, "  ease: largest error %g (largest weight %g)\n", worst, big);
    CHECK(big > 0.01 && worst < 1e-4 * big);
    CHECK(worst16 <= 1e-7); /* half precision: within one rounding step (and subnormals) */
    char *p32 = path_join(g_dir, "e32.tmod"), *p16 = path_join(g_dir, "e16.tmod");
    CHECK_EQ(rec_model_save(m32, p32, &e), 0);
    CHECK_EQ(rec_model_save(m16, p16, &e), 0);
    sb b32, b16;
    sb_init(&b32);
    sb_init(&b16);
    file_read(p32, &b32, &e);
    file_read(p16, &b16, &e);
    CHECK(b16.len < b32.len * 6 / 10 && b16.len > b32.len * 4 / 10);
    rec_model *l = NULL;
    CHECK_EQ(rec_model_load(p16, &l, &e), 0);
    if (l) {
        int32_t one[1] = {5};
        m16->kind->score(m16, -1, one, NULL, 1, s16);
        l->kind->score(l, -1, one, NULL, 1, s32);
        CHECK(memcmp(s16, s32, sizeof s16) == 0);
        rec_model_free(l);
    }
    sb_deinit(&b32);
    sb_deinit(&b16);
    free(p32);
    free(p16);
    free(A);
    rec_model_free(m32);
    rec_model_free(m16);
}

static void test_damaged_files(void) {
    const char *als[] = {"factors=5", "iterations=2"};
    rec_model *m = make("als", als, 2);
    char *path = path_join(g_dir, "d.tmod");
    tailor_error e = {0};
    rec_model_save(m, path, &e);
    rec_model_free(m);
    sb buf;
    sb_init(&buf);
    file_read(path, &buf, &e);
    rec_model *l = NULL;
    /* One flipped byte anywhere: the checksum catches it. */
    for (size_t at = 0; at < buf.len; at += buf.len / 7 + 1) {
        buf.buf[at] ^= 0x40;
        FILE *f = fopen(path, "wb");
        fwrite(buf.buf, 1, buf.len, f);
        fclose(f);
        CHECK(rec_model_load(path, &l, &e) != 0);
        CHECK(strstr(e.msg, "checksum") || strstr(e.msg, "not a tailor model"));
        buf.buf[at] ^= 0x40;
    }
    FILE *f = fopen(path, "wb");
    fwrite(buf.buf, 1, buf.len / 2, f);
    fclose(f);
    CHECK_EQ(rec_model_load(path, &l, &e), TAILOR_EDATA);
    CHECK_EQ(rec_model_load("/nonexistent.tmod", &l, &e), TAILOR_ENOTFOUND);
    sb_deinit(&buf);
    free(path);
}

/* Sequences that walk the catalogue: user u has items (u + t) mod ni at
 * times t = 0 .. len-1; CSR rows are sorted by item, times carry the
 * order. */
static rec_data walk_data(int nu, int ni, int len, int64_t *ptr, int32_t *idx, float *val, int64_t *ts) {
    for (int u = 0; u < nu; u++) {
        ptr[u] = (int64_t)u * len;
        int32_t *it = idx + ptr[u];
        int64_t *tm = ts + ptr[u];
        for (int t = 0; t < len; t++) { /* insertion by item */
            int32_t item = (int32_t)((u + t) % ni);
            int k = t;
            for (; k > 0 && it[k - 1] > item; k--) it[k] = it[k - 1], tm[k] = tm[k - 1];
            it[k] = item, tm[k] = t;
            val[ptr[u] + t] = 1;
        }
    }
    ptr[nu] = (int64_t)nu * len;
    return (rec_data){nu, ni, ptr, idx, val, ts, NULL};
}

static void test_sasrec(void) {
    /* The analytic gradients of the whole model match central differences
     * (both losses). */
    double bce = rec_sasrec_gradcheck(false, 1), ce = rec_sasrec_gradcheck(true, 2);
    if (bce >= 0.05 || ce >= 0.05) fprintf(stderr, "  sasrec gradcheck: bce %g, ce %g\n", bce, ce);
    CHECK(bce < 0.05);
    CHECK(ce < 0.05);
    /* Known answer: every sequence walks 0, 1, 2, ... (mod 6); after
     * 2, 3, 4 comes 5. */
    enum { SU = 12, SL = 5 };
    static int64_t ptr[SU + 1];
    static int32_t idx[SU * SL];
    static float val[SU * SL];
    static int64_t ts[SU * SL];
    rec_data d = walk_data(SU, 6, SL, ptr, idx, val, ts);
    rec_params p = {0};
    const char *kv[] = {"hidden=16", "blocks=1", "max_len=6", "epochs=150", "dropout=0", "patience=0",
                        "loss=ce", "lr=0.01", "batch=12"};
    for (int i = 0; i < 9; i++) rec_params_parse(&p, kv[i]);
    rec_model *m = NULL;
    tailor_error e = {0};
    CHECK_EQ(rec_model_new(rec_kind_find("sasrec"), &p, &m, &e), 0);
    if (!m) return;
    m->quiet = true;
    CHECK_EQ(rec_model_fit(m, &d, NULL, NULL, &e), 0);
    CHECK(m->kind->sequential);
    int32_t hist[3] = {2, 3, 4}, item;
    float score;
    rec_topk_params tp = {.k = 1, .exclude_history = false};
    CHECK_EQ(rec_topk(m, -1, hist, NULL, 3, tp, &item, &score, NULL), 1);
    CHECK_EQ(item, 5);
    int32_t hist2[2] = {5, 0};
    CHECK_EQ(rec_topk(m, -1, hist2, NULL, 2, tp, &item, &score, NULL), 1);
    CHECK_EQ(item, 1);
    /* Its reasons: the attention the scoring position pays to each history
     * item (a distribution over the history). */
    CHECK(m->kind->explain_style == REC_EXPLAIN_ATTENTION && m->kind->explain);
    float att[3];
    m->kind->explain(m, -1, hist, NULL, 3, 5, att);
    CHECK(att[0] >= 0 && att[1] >= 0 && att[2] >= 0);
    CHECK(fabsf(att[0] + att[1] + att[2] - 1) < 1e-4f);
    int32_t hist9[3] = {2, 99, 4}; /* an index the model lacks gets nothing */
    m->kind->explain(m, -1, hist9, NULL, 3, 5, att);
    CHECK(att[1] == 0 && fabsf(att[0] + att[2] - 1) < 1e-4f);
    /* Reproducible for a seed: a second training gives the same scores,
     * bit for bit (with dropout and early stopping on). */
    rec_params p2 = p;
    rec_params_parse(&p2, "dropout=0.2");
    rec_params_parse(&p2, "patience=2");
    rec_params_parse(&p2, "eval_every=10");
    rec_params_parse(&p2, "epochs=30");
    float s1[6], s2[6];
    for (int rep = 0; rep < 2; rep++) {
        rec_model *r = NULL;
        CHECK_EQ(rec_model_new(rec_kind_find("sasrec"), &p2, &r, &e), 0);
        r->quiet = true;
        CHECK_EQ(rec_model_fit(r, &d, NULL, NULL, &e), 0);
        r->kind->score(r, -1, hist, NULL, 3, rep ? s2 : s1);
        rec_model_free(r);
    }
    CHECK(memcmp(s1, s2, sizeof s1) == 0);
    /* And at a fixed thread count above one: attention runs per sequence
     * on the pool, the matrix products in OpenBLAS's threads. */
    float t1[6], t2[6];
    pool *two = pool_new(2);
    for (int rep = 0; rep < 2; rep++) {
        rec_model *r = NULL;
        CHECK_EQ(rec_model_new(rec_kind_find("sasrec"), &p2, &r, &e), 0);
        r->quiet = true;
        r->pool = two;
        CHECK_EQ(rec_model_fit(r, &d, NULL, NULL, &e), 0);
        r->kind->score(r, -1, hist, NULL, 3, rep ? t2 : t1);
        rec_model_free(r);
    }
    pool_free(two);
    CHECK(memcmp(t1, t2, sizeof t1) == 0);
    rec_model_free(m);
}

/* Early stopping on the sampled validation metric (a catalogue above the
 * 100 negatives): every user walks i, i+1, ... (mod 150). */
static void test_sasrec_valid_sampled(void) {
    enum { VU = 150, VI = 150, VL = 6 };
    static int64_t ptr[VU + 1];
    static int32_t idx[VU * VL];
    static float val[VU * VL];
    static int64_t ts[VU * VL];
    rec_data d = walk_data(VU, VI, VL, ptr, idx, val, ts);
    rec_params p = {0};
    const char *kv[] = {"hidden=16", "blocks=1", "max_len=6", "epochs=60", "dropout=0", "patience=2",
                        "eval_every=10", "loss=ce", "lr=0.01", "batch=32", "valid=sampled"};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) rec_params_parse(&p, kv[i]);
    rec_model *m = NULL;
    tailor_error e = {0};
    CHECK_EQ(rec_model_new(rec_kind_find("sasrec"), &p, &m, &e), 0);
    if (!m) return;
    m->quiet = true;
    CHECK_EQ(rec_model_fit(m, &d, NULL, NULL, &e), 0);
    int32_t hist[3] = {40, 41, 42}, item;
    float score;
    rec_topk_params tp = {.k = 1, .exclude_history = false};
    CHECK_EQ(rec_topk(m, -1, hist, NULL, 3, tp, &item, &score, NULL), 1);
    CHECK_EQ(item, 43);
    rec_model_free(m);
    rec_params q = {0};
    rec_params_parse(&q, "valid=test");
    CHECK_EQ(rec_model_new(rec_kind_find("sasrec"), &q, &m, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "valid must be full or sampled, not 'test'");
}

static void test_params(void) {
    rec_params p = {0};
    rec_model *m = NULL;
    tailor_error e = {0};
    CHECK(rec_params_parse(&p, "factorz=3"));
    CHECK_EQ(rec_model_new(rec_kind_find("als"), &p, &m, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "model als has no parameter 'factorz' (it has: factors, reg");
    rec_params q = {0};
    rec_params_parse(&q, "factors=many");
    CHECK_EQ(rec_model_new(rec_kind_find("als"), &q, &m, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "factors=many is not a number");
    rec_params r = {0};
    rec_params_parse(&r, "solver=lu");
    CHECK_EQ(rec_model_new(rec_kind_find("als"), &r, &m, &e), TAILOR_EINVAL);
    CHECK_CONTAINS(e.msg, "solver must be cg or cholesky");
    CHECK(!rec_params_parse(&r, "novalue"));
    CHECK(rec_kind_find("gru4rec") == NULL);
    /* EASE states its memory bound. */
    rec_params t = {0};
    rec_params_parse(&t, "memory_mb=0.0001");
    CHECK_EQ(rec_model_new(rec_kind_find("ease"), &t, &m, &e), 0);
    CHECK_EQ(rec_model_fit(m, &g_data, NULL, NULL, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "ease: 12 items need");
    CHECK_CONTAINS(e.msg, "which allows at most 5 items");
    rec_model_free(m);
}

int main(void) {
    g_dir = test_tmpdir();
    build_data();
    RUN(test_known_answers);
    RUN(test_pop);
    RUN(test_topk_ties_and_filter);
    RUN(test_filter_and_explain);
    RUN(test_cg_matches_exact);
    RUN(test_als_kernels);
    RUN(test_save_load);
    RUN(test_ease_blocked);
    RUN(test_damaged_files);
    RUN(test_sasrec);
    RUN(test_sasrec_valid_sampled);
    RUN(test_params);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
