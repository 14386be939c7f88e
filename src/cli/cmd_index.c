/* cmd_index.c — `tailor index build` (every item's title, text and tags
 * embedded by a GGUF model into DB.index/items.tvec) and the vector side
 * of `tailor search --mode vectors|hybrid`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "know/know.h"
#include "llm/llm.h"
#include "personalize/personalize.h"

static char *index_path(const cli_args *a) {
    if (cli_opt_get(a, "index")) return xstrdup(cli_opt_get(a, "index"));
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.index/items.tvec", a->db_path);
    return sb_take(&p);
}

typedef struct embedder {
    llm_model *m;
    llm_ctx *c;
    llm_pooling pooling;
} embedder;

static int embedder_open(embedder *em, const char *path, const char *pooling, tailor_error *err) {
    memset(em, 0, sizeof *em);
    em->pooling = !pooling ? LLM_POOL_MODEL : !strcmp(pooling, "last") ? LLM_POOL_LAST
                  : !strcmp(pooling, "cls")                     ? LLM_POOL_CLS
                                                                : LLM_POOL_MEAN;
    int rc = llm_model_load(path, &em->m, err);
    if (!rc) rc = llm_ctx_new(em->m, llm_ctx_default_params(), &em->c, err);
    if (rc) llm_model_free(em->m), em->m = NULL;
    return rc;
}

static void embedder_close(embedder *em) {
    llm_ctx_free(em->c);
    llm_model_free(em->m);
}

typedef struct build_ctx {
    store *s;
    embedder *em;
    VEC(char *) ids;
    VEC(float) vec;
    sb text;
    int rc;
    tailor_error *err;
    progress bar;
    uint64_t done;
} build_ctx;

static int embed_item(void *ctx, const store_item *it) {
    build_ctx *b = ctx;
    sb_clear(&b->text);
    if (it->title) sb_puts(&b->text, it->title);
    if (it->text) sb_printf(&b->text, "%s%s", b->text.len ? ". " : "", it->text);
    sb tags;
    sb_init(&tags);
    store_item_tags(b->s, it->id, &tags, NULL);
    if (tags.len) sb_printf(&b->text, "%sTags: %s", b->text.len ? ". " : "", sb_str(&tags));
    sb_deinit(&tags);
    if (!b->text.len) sb_puts(&b->text, it->ext_id);
    int32_t d = (int32_t)b->em->m->hp.n_embd;
    size_t at = b->vec.len;
    vec_reserve(&b->vec, at + (size_t)d);
    int rc = llm_embed(b->em->c, b->text.buf, b->text.len, b->em->pooling, b->vec.data + at, b->err);
    if (rc) return rc;
    b->vec.len += (size_t)d;
    vec_push(&b->ids, xstrdup(it->ext_id));
    progress_update(&b->bar, ++b->done);
    return 0;
}

int cmd_index_build(cli_args *a) {
    const char *model = cli_opt_get(a, "model");
    if (!model) return cli_usage_error(a, "--model FILE.gguf: the model that embeds the items (an embedding model, or any GGUF the engine runs)");
    const char *pooling = cli_opt_get(a, "pooling");
    if (pooling && strcmp(pooling, "mean") && strcmp(pooling, "last") && strcmp(pooling, "cls"))
        return cli_usage_error(a, "--pooling is mean, last or cls");
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_store_counts counts;
    tailor_error err = {0};
    embedder em;
    int rc = store_counts(s, &counts, &err);
    if (!rc) rc = embedder_open(&em, model, pooling, &err);
    if (rc) {
        store_close(s);
        return cli_fail(&err);
    }
    build_ctx b = {.s = s, .em = &em, .err = &err};
    sb_init(&b.text);
    progress_begin(&b.bar, "embedding items", (uint64_t)counts.items);
    uint64_t t0 = timer_now_ns();
    rc = store_items_each(s, embed_item, &b, &err);
    progress_end(&b.bar);
    double secs = timer_seconds_since(t0);
    char *path = index_path(a), *abs = realpath(model, NULL);
    if (!rc) {
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0, rc = mkdir_p(dir, &err);
        free(dir);
    }
    if (!rc) {
        kg_index x = {.model = abs ? abs : xstrdup(model), .dim = (int32_t)em.m->hp.n_embd, .n = (int64_t)b.ids.len,
                      .ids = b.ids.data, .vec = b.vec.data};
        rc = kg_index_save(&x, path, &err);
        if (!rc)
            printf("indexed %lld items in %.1f s (%.0f/s): %d-dimensional vectors of %s in %s\n", (long long)x.n, secs,
                   x.n / (secs > 0 ? secs : 1), x.dim, model, path);
        free(x.model);
    } else {
        free(abs);
    }
    for (size_t i = 0; i < b.ids.len; i++) free(b.ids.data[i]);
    vec_free(&b.ids);
    vec_free(&b.vec);
    sb_deinit(&b.text);
    free(path);
    embedder_close(&em);
    store_close(s);
    return rc ? cli_fail(&err) : 0;
}

int cli_vector_hits(cli_args *a, store *s, pz_engine *e, const char *query, bool hybrid, store_hit **hits, size_t *n,
                    tailor_error *err) {
    char *path = index_path(a);
    kg_index x;
    int rc = kg_index_load(path, &x, err);
    if (rc == TAILOR_EIO || rc == TAILOR_ENOTFOUND)
        rc = err_set(err, TAILOR_ENOTFOUND, "no vector index %s (tailor index build --model FILE.gguf makes one)", path);
    free(path);
    if (rc) return rc;
    const char *model = cli_opt_get(a, "model") ? cli_opt_get(a, "model") : x.model;
    embedder em;
    rc = embedder_open(&em, model, cli_opt_get(a, "pooling"), err);
    float *q = NULL;
    if (!rc && (int32_t)em.m->hp.n_embd != x.dim)
        rc = err_set(err, TAILOR_EINVAL, "%s makes %d-dimensional vectors; the index holds %d (built with %s)", model,
                     (int)em.m->hp.n_embd, x.dim, x.model);
    if (!rc) {
        q = xmalloc((size_t)x.dim * sizeof *q);
        rc = llm_embed(em.c, query, strlen(query), em.pooling, q, err);
    }
    if (!rc) {
        enum { DEPTH = 200 };
        int64_t rows[DEPTH];
        float sc[DEPTH];
        int got = kg_index_search(&x, q, DEPTH, NULL, rows, sc);
        const char *vids[DEPTH], *wids[DEPTH];
        int nw = 0;
        for (int i = 0; i < got; i++) vids[i] = x.ids[rows[i]];
        for (size_t i = 0; hybrid && i < *n && nw < DEPTH; i++) {
            const pz_item_info *it = pz_item_by_row(e, (*hits)[i].id);
            if (it) wids[nw++] = it->id;
        }
        char *fused[2 * DEPTH];
        double fs[2 * DEPTH];
        int nf = hybrid ? kg_rrf(wids, nw, vids, got, 60, fused, fs, 2 * DEPTH) : 0;
        store_hit *out = xmalloc((size_t)(hybrid ? nf : got) * sizeof *out + 1);
        size_t k = 0;
        for (int i = 0; i < (hybrid ? nf : got); i++) {
            const pz_item_info *it = pz_item(e, hybrid ? fused[i] : vids[i]);
            if (it) out[k++] = (store_hit){it->row, hybrid ? fs[i] : sc[i]};
        }
        for (int i = 0; i < nf; i++) free(fused[i]);
        free(*hits);
        *hits = out;
        *n = k;
    }
    (void)s;
    free(q);
    if (em.m) embedder_close(&em);
    kg_index_free(&x);
    return rc;
}
