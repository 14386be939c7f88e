/* test_train.h — trains a recommender on everything in a store and saves it
 * as a model row, as `tailor train` does (tests that serve need one). */
#ifndef TAILOR_TEST_TRAIN_H
#define TAILOR_TEST_TRAIN_H

#include "rec/rec.h"
#include "store/store.h"
#include "test.h"

/* kind with parameters "k=v,..." (or NULL) saved as name; activate makes it
 * the active model. Each call gets a later training time than the last. */
static inline void test_train(store *s, const char *kind, const char *name, const char *params, bool activate) {
    tailor_error e = {0};
    store_view v;
    CHECK_EQ(store_view_build(s, store_view_default_params(), &v, &e), 0);
    rec_params p = {0};
    if (params) rec_params_parse(&p, params);
    rec_model *m = NULL;
    CHECK_EQ(rec_model_new(rec_kind_find(kind), &p, &m, &e), 0);
    m->quiet = true;
    rec_data d = {v.n_users, v.n_items, v.indptr, v.indices, v.values, v.times, NULL};
    CHECK_EQ(rec_model_fit(m, &d, v.user_ext, v.item_ext, &e), 0);
    char *rel = store_model_relpath(s, name), *abs = store_path_resolve(s, rel), *dir = xstrdup(abs);
    *strrchr(dir, '/') = 0;
    mkdir_p(dir, &e);
    CHECK_EQ(rec_model_save(m, abs, &e), 0);
    static int64_t clock = 1700000000;
    store_model row = {.name = (char *)name, .kind = (char *)kind, .params = "{}", .file = rel,
                       .trained_at = ++clock};
    CHECK_EQ(store_model_put(s, &row, activate, &e), 0);
    free(rel);
    free(abs);
    free(dir);
    rec_model_free(m);
    store_view_deinit(&v);
}

#endif
