/* cold.c — `tailor experiment cold-items`: how well the content side
 * recommends items nobody has touched yet. A share of the items with
 * events is hidden: all their events leave the training data, so for
 * every collaborative model they are cold. Each user who had a hidden
 * item is then given the hidden items ranked by what the content says
 * about them against what the user had before:
 *   - graph: the item's neighbours in the knowledge graph (genres, tags,
 *     origin, ...), each weighted by how rare it is (idf), against the
 *     same weights summed over the user's training items;
 *   - text: the cosine of the item's vector (tailor index build: its
 *     title, text and tags embedded) with the mean of the user's;
 *   - text + graph: the two rankings fused by reciprocal rank;
 *   - random: the floor.
 * Recall@k and NDCG@k over those users, with 95% intervals. This is the
 * item cold-start protocol of the content-based literature (rank among the
 * cold items only); a collaborative model cannot rank them at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "know/know.h"

enum { C_RANDOM, C_GRAPH, C_TEXT, C_FUSED, N_COLD };
static const char *const COLD_NAME[N_COLD] = {"random", "graph neighbours", "text vectors", "text + graph"};

eval_cold_params eval_cold_default_params(void) {
    return (eval_cold_params){.hide = 0.1, .k = 20, .min_events = 5, .seed = 42, .index = NULL};
}

typedef struct cold_score {
    double s;
    int32_t c; /* candidate position */
} cold_score;

static int by_score(const void *a, const void *b) {
    const cold_score *x = a, *y = b;
    return x->s != y->s ? (x->s < y->s ? 1 : -1) : (x->c > y->c) - (x->c < y->c);
}

typedef struct cold_stat {
    double sum, sq;
    int n;
} cold_stat;

static void stat_add(cold_stat *s, double x) { s->sum += x, s->sq += x * x, s->n++; }
static double stat_mean(const cold_stat *s) { return s->n ? s->sum / s->n : 0; }
static double stat_ci(const cold_stat *s) {
    if (s->n < 2) return 0;
    double m = stat_mean(s), var = (s->sq - s->n * m * m) / (s->n - 1);
    return 1.96 * sqrt(var > 0 ? var : 0) / sqrt(s->n);
}

/* Ranks of the candidates (0 = best) under score. */
static void ranks_of(const double *score, int nc, cold_score *buf, int *rank) {
    for (int c = 0; c < nc; c++) buf[c] = (cold_score){score[c], c};
    qsort(buf, (size_t)nc, sizeof *buf, by_score);
    for (int r = 0; r < nc; r++) rank[buf[r].c] = r;
}

int eval_cold_items(store *s, eval_cold_params p, FILE *f, sb *json, tailor_error *err) {
    store_view v;
    int rc = store_view_build(s, store_view_default_params(), &v, err);
    if (rc) return rc;
    kg_graph g = {0};
    const kg_index *x = p.index;
    bool have_graph = false, have_text = x && x->n > 0;
    rc = kg_load(s, &g, err);
    if (!rc) have_graph = g.n_triples > 0;
    if (!rc && !have_graph && !have_text)
        rc = err_set(err, TAILOR_EINVAL,
                     "the store has no knowledge graph and no item index: nothing describes a cold item (tailor kg "
                     "derive, tailor import kg, tailor index build)");
    if (rc) {
        kg_deinit(&g);
        store_view_deinit(&v);
        return rc;
    }
    /* Items with enough events are eligible; a share of them is hidden. */
    int32_t ni = v.n_items, nu = v.n_users;
    int32_t *count = xcalloc((size_t)ni + 1, sizeof *count);
    for (int64_t a = 0; a < v.nnz; a++) count[v.indices[a]]++;
    int32_t *eligible = xmalloc(((size_t)ni + 1) * sizeof *eligible), ne = 0;
    for (int32_t i = 0; i < ni; i++)
        if (count[i] >= p.min_events) eligible[ne++] = i;
    rng g_rng;
    rng_seed(&g_rng, p.seed);
    for (int32_t i = ne - 1; i > 0; i--) {
        int32_t j = (int32_t)rng_below(&g_rng, (uint64_t)i + 1), t = eligible[i];
        eligible[i] = eligible[j], eligible[j] = t;
    }
    int nc = (int)(ne * p.hide);
    if (nc < 2) {
        free(count), free(eligible);
        kg_deinit(&g), store_view_deinit(&v);
        return err_set(err, TAILOR_EINVAL, "too few items with %d events to hide %.0f%% of them", p.min_events,
                       p.hide * 100);
    }
    int32_t *cand_of = xmalloc(((size_t)ni + 1) * sizeof *cand_of); /* item -> candidate, or -1 */
    for (int32_t i = 0; i < ni; i++) cand_of[i] = -1;
    for (int c = 0; c < nc; c++) cand_of[eligible[c]] = c;

    /* Graph features: an item's neighbour entities with idf weights. */
    int32_t *ent_of = xmalloc(((size_t)ni + 1) * sizeof *ent_of);
    double *idf = have_graph ? kg_neighbour_idf(&g) : NULL;
    for (int32_t i = 0; i < ni; i++) ent_of[i] = have_graph ? kg_item_entity(&g, v.item_ext[i]) : -1;
    /* Text features: the index row of each item. */
    int64_t *row_of = xmalloc(((size_t)ni + 1) * sizeof *row_of);
    for (int32_t i = 0; i < ni; i++) row_of[i] = -1;
    for (int64_t r = 0; have_text && r < x->n; r++) {
        int32_t i = store_view_item(&v, x->ids[r]);
        if (i >= 0) row_of[i] = r;
    }

    cold_stat recall[N_COLD] = {{0}}, ndcg[N_COLD] = {{0}};
    double *profile = have_graph ? xcalloc((size_t)g.n_entities + 1, sizeof *profile) : NULL;
    int dim = have_text ? x->dim : 1;
    double *uvec = xcalloc((size_t)dim, sizeof *uvec);
    double *score[N_COLD];
    int *rank[N_COLD];
    for (int m = 0; m < N_COLD; m++) score[m] = xcalloc((size_t)nc, sizeof(double)), rank[m] = xcalloc((size_t)nc, sizeof(int));
    cold_score *buf = xmalloc((size_t)nc * sizeof *buf);
    bool *truth = xcalloc((size_t)nc, sizeof *truth);
    int users = 0;
    for (int32_t u = 0; u < nu; u++) {
        int n_truth = 0, n_train = 0;
        for (int64_t a = v.indptr[u]; a < v.indptr[u + 1]; a++) {
            int32_t c = cand_of[v.indices[a]];
            if (c >= 0) truth[c] = true, n_truth++;
            else n_train++;
        }
        if (!n_truth || !n_train) {
            for (int64_t a = v.indptr[u]; a < v.indptr[u + 1]; a++)
                if (cand_of[v.indices[a]] >= 0) truth[cand_of[v.indices[a]]] = false;
            continue;
        }
        users++;
        /* The user's profile from the training items only. */
        memset(uvec, 0, (size_t)dim * sizeof *uvec);
        for (int64_t a = v.indptr[u]; a < v.indptr[u + 1]; a++) {
            int32_t i = v.indices[a];
            if (cand_of[i] >= 0) continue;
            if (have_graph) kg_profile_add(&g, idf, ent_of[i], profile);
            if (have_text && row_of[i] >= 0)
                for (int d = 0; d < dim; d++) uvec[d] += x->vec[(size_t)row_of[i] * dim + d];
        }
        for (int c = 0; c < nc; c++) {
            int32_t i = eligible[c];
            score[C_RANDOM][c] = rng_uniform(&g_rng);
            score[C_GRAPH][c] = have_graph ? kg_profile_score(&g, idf, ent_of[i], profile) : 0;
            double ts = 0;
            if (have_text && row_of[i] >= 0)
                for (int d = 0; d < dim; d++) ts += uvec[d] * x->vec[(size_t)row_of[i] * dim + d];
            score[C_TEXT][c] = ts; /* the mean's length is the same for every candidate */
        }
        ranks_of(score[C_GRAPH], nc, buf, rank[C_GRAPH]);
        ranks_of(score[C_TEXT], nc, buf, rank[C_TEXT]);
        for (int c = 0; c < nc; c++) score[C_FUSED][c] = 1.0 / (60 + rank[C_GRAPH][c]) + 1.0 / (60 + rank[C_TEXT][c]);
        for (int m = 0; m < N_COLD; m++) {
            if ((m == C_GRAPH && !have_graph) || (m == C_TEXT && !have_text) ||
                (m == C_FUSED && !(have_graph && have_text)))
                continue;
            ranks_of(score[m], nc, buf, rank[m]);
            double hits = 0, dcg = 0, idcg = 0;
            for (int r = 0; r < p.k && r < nc; r++) {
                if (truth[buf[r].c]) hits++, dcg += 1 / log2(r + 2.0);
                if (r < n_truth) idcg += 1 / log2(r + 2.0);
            }
            stat_add(&recall[m], hits / (n_truth < p.k ? n_truth : p.k));
            stat_add(&ndcg[m], idcg > 0 ? dcg / idcg : 0);
        }
        /* Clear what this user set. */
        for (int64_t a = v.indptr[u]; a < v.indptr[u + 1]; a++) {
            int32_t i = v.indices[a];
            if (cand_of[i] >= 0) truth[cand_of[i]] = false;
            else if (have_graph) kg_profile_clear(&g, ent_of[i], profile);
        }
    }

    fprintf(f, "cold items: %d of %d items with >= %d events hidden (all their events), %d users had one\n", nc, ne,
            p.min_events, users);
    fprintf(f, "each user's hidden items ranked among all %d hidden items by content against the training history\n\n",
            nc);
    fprintf(f, "| %-18s | recall@%-3d | ±95%%   | ndcg@%-3d | ±95%%   |\n", "method", p.k, p.k);
    fprintf(f, "|--------------------|-----------:|-------:|---------:|-------:|\n");
    sb_printf(json, "{\"experiment\":\"cold-items\",\"hidden\":%d,\"eligible\":%d,\"users\":%d,\"k\":%d,\"seed\":%llu,"
                    "\"graph\":%s,\"text\":%s,\"results\":[",
              nc, ne, users, p.k, (unsigned long long)p.seed, have_graph ? "true" : "false", have_text ? "true" : "false");
    int shown = 0;
    for (int m = 0; m < N_COLD; m++) {
        if (!recall[m].n) continue;
        fprintf(f, "| %-18s | %10.4f | %6.4f | %8.4f | %6.4f |\n", COLD_NAME[m], stat_mean(&recall[m]),
                stat_ci(&recall[m]), stat_mean(&ndcg[m]), stat_ci(&ndcg[m]));
        sb_printf(json, "%s{\"method\":\"%s\",\"recall\":{\"mean\":%.6f,\"ci95\":%.6f},\"ndcg\":{\"mean\":%.6f,\"ci95\":%.6f}}",
                  shown++ ? "," : "", COLD_NAME[m], stat_mean(&recall[m]), stat_ci(&recall[m]), stat_mean(&ndcg[m]),
                  stat_ci(&ndcg[m]));
    }
    sb_puts(json, "]}");
    if (!have_text) fprintf(f, "\n(no item index: tailor index build adds the text rows)\n");
    if (!have_graph) fprintf(f, "\n(no knowledge graph: tailor kg derive or tailor import kg adds the graph rows)\n");
    for (int m = 0; m < N_COLD; m++) free(score[m]), free(rank[m]);
    free(buf), free(truth), free(uvec), free(profile), free(row_of), free(idf), free(ent_of), free(cand_of);
    free(count), free(eligible);
    kg_deinit(&g);
    store_view_deinit(&v);
    return users ? 0 : err_set(err, TAILOR_EINVAL, "no user has both a hidden item and a training item");
}
