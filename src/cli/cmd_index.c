/* cmd_index.c — `tailor index build` and the vector side of `tailor
 * search --mode vectors|hybrid`: options to the knowledge layer's item
 * index (src/know/index.c) and back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "know/know.h"
#include "personalize/personalize.h"

static char *index_path(const cli_args *a) {
    return cli_opt_get(a, "index") ? xstrdup(cli_opt_get(a, "index")) : kg_index_default_path(a->files);
}

/* --pooling: the file's unless named; false when unknown. */
static bool pooling_opt(const cli_args *a, llm_pooling *out) {
    const char *p = cli_opt_get(a, "pooling");
    *out = !p ? LLM_POOL_MODEL : !strcmp(p, "last") ? LLM_POOL_LAST : !strcmp(p, "cls") ? LLM_POOL_CLS : LLM_POOL_MEAN;
    return !p || !strcmp(p, "mean") || !strcmp(p, "last") || !strcmp(p, "cls");
}

int cmd_index_build(cli_args *a) {
    const char *model = cli_opt_get(a, "model");
    if (!model) return cli_usage_error(a, "--model FILE.gguf: the model that embeds the items (an embedding model, or any GGUF the engine runs)");
    llm_pooling pooling;
    if (!pooling_opt(a, &pooling)) return cli_usage_error(a, "--pooling is mean, last or cls");
    const char *approx = cli_opt_get(a, "approximate") ? cli_opt_get(a, "approximate") : "auto";
    kg_ann_kind kind = KG_ANN_HNSW;
    bool want_ann = strcmp(approx, "none") != 0, auto_ann = !strcmp(approx, "auto");
    if (want_ann && !auto_ann && (!kg_ann_kind_parse(approx, &kind) || kind == KG_ANN_FLAT))
        return cli_usage_error(a, "--approximate is hnsw, ivf, none or auto");
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    kg_embedder em;
    kg_index x = {0};
    char *path = index_path(a), *abs = realpath(model, NULL), *dir = xstrdup(path), *slash = strrchr(dir, '/');
    uint64_t t0 = timer_now_ns();
    int rc = kg_embedder_open(&em, model, pooling, &err);
    if (!rc) {
        rc = kg_index_build(s, &em, abs ? abs : model, a->quiet, &x, &err);
        kg_embedder_close(&em);
    }
    double secs = timer_seconds_since(t0);
    if (!rc)
        printf("indexed %lld items in %.1f s (%.0f/s): %d-dimensional vectors of %s in %s\n", (long long)x.n, secs,
               x.n / (secs > 0 ? secs : 1), x.dim, model, path);
    /* Below ~50,000 items an exact scan takes a few milliseconds: no
     * approximation is worth its recall loss there. */
    if (!rc && want_ann && (!auto_ann || x.n >= 50000)) {
        t0 = timer_now_ns();
        rc = kg_index_build_ann(&x, kind, &err);
        if (!rc) {
            kg_ann_threads(1);
            double ms_exact, ms_ann, recall = kg_index_recall(&x, 10, 200, 42, NULL, &ms_exact, &ms_ann);
            printf("approximate index (Faiss %s) in %.1f s: recall@10 %.3f against exact search over 200 queries; "
                   "%.3f ms per query against %.3f ms exact (1 thread)\n",
                   kg_ann_kind_name(kind), timer_seconds_since(t0), recall, ms_ann, ms_exact);
        }
    }
    if (!rc && slash) *slash = 0, rc = mkdir_p(dir, &err);
    if (!rc) rc = kg_index_save(&x, path, &err);
    kg_index_free(&x);
    free(path);
    free(abs);
    free(dir);
    store_close(s);
    return rc ? cli_fail(&err) : 0;
}

int cli_vector_hits(cli_args *a, store *s, pz_engine *e, const char *query, bool hybrid, store_hit **hits, size_t *n,
                    tailor_error *err) {
    llm_pooling pooling;
    if (!pooling_opt(a, &pooling)) return err_set(err, TAILOR_EINVAL, "--pooling is mean, last or cls");
    char *path = index_path(a);
    kg_index x;
    int rc = kg_index_load(path, &x, err);
    if (rc == TAILOR_EIO || rc == TAILOR_ENOTFOUND)
        rc = err_set(err, TAILOR_ENOTFOUND, "no vector index %s (tailor index build --model FILE.gguf makes one)", path);
    free(path);
    if (rc) return rc;
    kg_embedder em;
    char **ids = NULL;
    double *sc = NULL;
    int got = 0;
    if (!cli_opt_get(a, "pooling")) pooling = x.pooling; /* the query as the items were */
    rc = kg_embedder_open(&em, cli_opt_get(a, "model") ? cli_opt_get(a, "model") : x.model, pooling, err);
    if (!rc) {
        rc = kg_index_query(s, &x, &em, query, hybrid, 200, &ids, &sc, &got, err);
        kg_embedder_close(&em);
    }
    if (!rc) { /* as the word search's hits, for the printing they share */
        *hits = xmalloc(((size_t)got + 1) * sizeof **hits);
        *n = 0;
        for (int i = 0; i < got; i++) {
            const pz_item_info *it = pz_item(e, ids[i]);
            if (it) (*hits)[(*n)++] = (store_hit){it->row, sc[i]};
        }
    }
    kg_hits_free(ids, sc, got);
    kg_index_free(&x);
    return rc;
}
