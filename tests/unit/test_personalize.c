/* test_personalize.c — the personalize engine over a small store: models by
 * name and the active one (swapped without a new engine), conditions and
 * exclusions, seen items, the popularity fallback, novelty, explanations,
 * similar items, grounding: nothing outside the catalogue comes back; the
 * places for items without events (cold), filled through the graph. */
#include <unistd.h>

#include "ingest/ingest.h"
#include "personalize/personalize.h"
#include "test.h"
#include "test_train.h"
#include "test_db.h"

static char *g_dir;

/* Two taste groups of 10 users: group A has items a0..a5 (genre "Drama",
 * years 1990..1995), group B b0..b5 ("Comedy", 2000..2005); user uN lacks
 * one item of its group. a0 and b0 are the most popular. */
static store *make_store(const char *name) {
    char *p = path_join(g_dir, name);
    store *s = NULL;
    tailor_error e = {0};
    CHECK_EQ(store_open(p, store_default_params(), &s, &e), 0);
    free(p);
    if (!s) return NULL;
    store_begin(s, &e);
    int64_t items[12];
    for (int i = 0; i < 12; i++) {
        char id[8], title[32], attrs[96];
        snprintf(id, sizeof id, "%c%d", i < 6 ? 'a' : 'b', i % 6);
        snprintf(title, sizeof title, "%s %d", i < 6 ? "Drama" : "Comedy", i % 6);
        snprintf(attrs, sizeof attrs, "{\"genres\":[\"%s\"],\"year\":%d}", i < 6 ? "Drama" : "Comedy",
                 (i < 6 ? 1990 : 2000) + i % 6);
        store_item_put(s, id, title, NULL, attrs, STORE_DUP_ERROR, &items[i], NULL, &e);
    }
    for (int u = 0; u < 20; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        int64_t uid;
        store_user_put(s, id, NULL, STORE_DUP_ERROR, &uid, NULL, &e);
        int base = u < 10 ? 0 : 6, miss = base + 1 + u % 5;
        for (int i = base; i < base + 6; i++) {
            if (i == miss) continue;
            store_event ev = {uid, items[i], 5, 1, true, 100 + i};
            store_event_add(s, &ev, &e);
        }
    }
    CHECK_EQ(store_commit(s, &e), 0);
    return s;
}

static bool has_item(const pz_result *r, const char *id) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].id, id)) return true;
    return false;
}

static void test_recommend(void) {
    store *s = make_store("p.db");
    if (!s) return;
    test_train(s, "pop", "pop", NULL, true);
    test_train(s, "itemknn", "knn", "k=5", false);
    pz_engine *e;
    tailor_error err = {0};
    CHECK_EQ(pz_engine_new(s, &e, &err), 0);
    pz_result r;
    /* By name: u1 (group A, lacks a2) gets a2 first, with its reasons. */
    pz_query q = {.model = "knn", .user = "u1", .k = 3, .explain = true};
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(r.n >= 1 && !strcmp(r.items[0].id, "a2"));
    CHECK_STR(r.model, "knn");
    CHECK(r.style == REC_EXPLAIN_HISTORY && r.items[0].n_because > 0);
    if (r.n && r.items[0].n_because) CHECK(r.items[0].because[0].id[0] == 'a');
    for (int i = 0; i < r.n; i++) CHECK(strcmp(r.items[i].id, "a0") != 0); /* seen */
    pz_result_deinit(&r);
    /* Conditions in code: a Comedy from 2003 on only, and not b4. */
    q.conds[0] = (pz_cond){"genres", PZ_IS, "comedy"};
    CHECK(pz_cond_parse("year>=2003", &q.conds[1]));
    CHECK(pz_cond_parse("year!=2004", &q.conds[2]));
    q.n_conds = 3;
    q.k = 10;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(r.n == 2 && has_item(&r, "b3") && has_item(&r, "b5"));
    pz_result_deinit(&r);
    CHECK(pz_cond_parse("year<=1991", &q.conds[0]));
    q.n_conds = 1;
    q.include_seen = true;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(r.n == 2 && has_item(&r, "a0") && has_item(&r, "a1")); /* seen items allowed back */
    pz_result_deinit(&r);
    q.include_seen = false;
    const char *ex[] = {"a2"};
    q.n_conds = 0;
    q.exclude = ex;
    q.n_exclude = 1;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(!has_item(&r, "a2"));
    pz_result_deinit(&r);
    q.exclude = NULL, q.n_exclude = 0;
    /* A typo is an error that lists the attributes. */
    q.conds[0] = (pz_cond){"genre", PZ_IS, "Comedy"};
    q.n_conds = 1;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), TAILOR_EINVAL);
    CHECK_CONTAINS(err.msg, "no item has an attribute 'genre' (attributes: genres, year)");
    q.n_conds = 0;
    /* Unknown user, item, model. */
    q.user = "nobody";
    CHECK_EQ(pz_recommend(e, &q, &r, &err), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "user 'nobody' not found");
    q.user = NULL;
    const char *h[] = {"zz"};
    q.history = h, q.n_history = 1;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), TAILOR_ENOTFOUND);
    q.model = "nope";
    q.n_history = 0;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), TAILOR_ENOTFOUND);
    /* A newcomer: the most popular items, said so. */
    int64_t uid;
    store_user_put(s, "new", NULL, STORE_DUP_ERROR, &uid, NULL, &err);
    q.model = "knn";
    q.user = "new";
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(r.fallback && r.style == REC_EXPLAIN_POPULARITY);
    CHECK(r.n >= 2 && r.items[0].popularity == 10 && r.items[1].popularity == 10);
    pz_result_deinit(&r);
    /* Novelty moves less popular items up. */
    q.user = "u1";
    q.k = 1;
    q.novelty = 0;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    uint32_t pop0 = r.n ? r.items[0].popularity : 0;
    pz_result_deinit(&r);
    q.model = "pop";
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    uint32_t popular = r.n ? r.items[0].popularity : 0;
    pz_result_deinit(&r);
    q.novelty = 1;
    CHECK_EQ(pz_recommend(e, &q, &r, &err), 0);
    CHECK(r.n == 1 && r.items[0].popularity < popular);
    pz_result_deinit(&r);
    (void)pop0;
    /* The active model, swapped under a live engine. */
    pz_query qa = {.user = "u1", .k = 1};
    CHECK_EQ(pz_recommend(e, &qa, &r, &err), 0);
    CHECK_STR(r.model, "pop");
    pz_result_deinit(&r);
    CHECK_EQ(store_model_activate(s, "knn", &err), 0);
    CHECK_EQ(pz_recommend(e, &qa, &r, &err), 0);
    CHECK_STR(r.model, "knn");
    pz_result_deinit(&r);
    /* Similar: pop has none; the newest model that has it serves. */
    CHECK_EQ(store_model_activate(s, "pop", &err), 0);
    sb note;
    sb_init(&note);
    CHECK_EQ(pz_similar(e, NULL, "b1", 2, NULL, 0, &r, &note, &err), 0);
    CHECK_CONTAINS(sb_str(&note), "using 'knn'");
    CHECK(r.n == 2 && r.items[0].id[0] == 'b' && !has_item(&r, "b1"));
    pz_result_deinit(&r);
    CHECK_EQ(pz_similar(e, "pop", "b1", 2, NULL, 0, &r, NULL, &err), TAILOR_EINVAL);
    sb_deinit(&note);
    pz_engine_free(e);
    /* Grounding: an item removed from the catalogue after training is never
     * returned, though the model still knows it. */
    CHECK_EQ(query_int(s, "DELETE FROM items WHERE ext_id = 'a2' RETURNING 1"), 1);
    CHECK_EQ(pz_engine_new(s, &e, &err), 0);
    pz_query qg = {.model = "knn", .user = "u1", .k = 12};
    CHECK_EQ(pz_recommend(e, &qg, &r, &err), 0);
    CHECK(r.n > 0 && !has_item(&r, "a2"));
    for (int i = 0; i < r.n; i++) CHECK(pz_item(e, r.items[i].id) != NULL);
    pz_result_deinit(&r);
    pz_engine_free(e);
    store_close(s);
}

/* Cold items: two items without events, one a Drama, one a Western. A
 * Drama fan's last place goes to the new Drama, with the genre path as its
 * reason; the Western (no neighbour in their history) never comes; with
 * cold 0, or the new Drama excluded, or already had, it does not come. */
static void test_cold(void) {
    store *s = make_store("cold.db");
    if (!s) return;
    tailor_error e = {0};
    int64_t row;
    CHECK_EQ(store_item_put(s, "n1", "New Drama", NULL, "{\"genres\":[\"Drama\"],\"year\":2030}", STORE_DUP_ERROR, &row,
                            NULL, &e),
             0);
    CHECK_EQ(store_item_put(s, "n2", "New Western", NULL, "{\"genres\":[\"Western\"],\"year\":2031}", STORE_DUP_ERROR,
                            &row, NULL, &e),
             0);
    test_train(s, "itemknn", "knn", "k=5", true);
    ing_stats st;
    CHECK_EQ(ing_kg_derive(s, &st, &e), 0);
    pz_engine *eng;
    CHECK_EQ(pz_engine_new(s, &eng, &e), 0);
    pz_query q = {.user = "u0", .k = 4, .cold = 1, .explain = true};
    pz_result r;
    CHECK_EQ(pz_recommend(eng, &q, &r, &e), 0);
    CHECK_EQ(r.n, 4);
    CHECK_EQ(r.n_cold, 1);
    CHECK_STR(r.items[r.n - 1].id, "n1");
    CHECK(r.items[r.n - 1].cold);
    CHECK(r.items[r.n - 1].n_because > 0);
    CHECK_CONTAINS(r.items[r.n - 1].because[0].path, "Drama");
    CHECK(!has_item(&r, "n2"));
    for (int i = 0; i < r.n - 1; i++) CHECK(!r.items[i].cold);
    sb o;
    sb_init(&o);
    pz_result_json(&r, true, &o);
    CHECK_CONTAINS(sb_str(&o), "\"cold\":true,\"explanation\":\"paths\"");
    sb_deinit(&o);
    pz_result_deinit(&r);
    /* Asking for more places than there are fitting new items: only n1. */
    q.cold = 3;
    CHECK_EQ(pz_recommend(eng, &q, &r, &e), 0);
    CHECK_EQ(r.n_cold, 1);
    CHECK(!has_item(&r, "n2"));
    pz_result_deinit(&r);
    q.cold = 0;
    CHECK_EQ(pz_recommend(eng, &q, &r, &e), 0);
    CHECK(!has_item(&r, "n1"));
    pz_result_deinit(&r);
    const char *ex[] = {"n1"};
    q.cold = 1, q.exclude = ex, q.n_exclude = 1;
    CHECK_EQ(pz_recommend(eng, &q, &r, &e), 0);
    CHECK_EQ(r.n_cold, 0);
    pz_result_deinit(&r);
    /* An anonymous history that holds n1 already. */
    const char *hist[] = {"a0", "n1"};
    pz_query h = {.history = hist, .n_history = 2, .k = 4, .cold = 1};
    CHECK_EQ(pz_recommend(eng, &h, &r, &e), 0);
    CHECK(!has_item(&r, "n1"));
    pz_result_deinit(&r);
    pz_engine_free(eng);
    store_close(s);
}

int main(void) {
    g_dir = test_tmpdir();
    RUN(test_recommend);
    RUN(test_cold);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
