/* hallucination.c — `tailor experiment hallucination`: hide a share of the
 * graph's true triples, ask each method for the tail of every hidden (head,
 * relation, ?), and count how often it is right (hits@1, hits@10, MRR,
 * filtered: other true tails do not count against it) and how often it
 * states something false: a top answer that names no entity, or an entity
 * that is not a true tail. Methods: TransE and DistMult trained on the
 * rest; a language model asked freely and under the constraint of the
 * entity names (samples vote); the constrained model and TransE combined. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "personalize/personalize.h"

enum { M_TRANSE, M_DISTMULT, M_LLM_FREE, M_LLM_CONSTRAINED, M_COMBINED, N_METHODS };
static const char *const METHOD[N_METHODS] = {"transe", "distmult", "llm (free text)", "llm (entity names)",
                                              "llm + transe"};

typedef struct row {
    double hits1, hits10, rr, non_entity, false_entity;
    int n;
    bool ran;
} row;

typedef struct cand {
    int32_t e;
    double s;
} cand;

static int by_s(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->s != y->s ? (x->s < y->s ? 1 : -1) : (x->e > y->e) - (x->e < y->e);
}

static void key_of(int32_t h, int32_t r, int32_t t, char k[12]) {
    memcpy(k, &h, 4), memcpy(k + 4, &r, 4), memcpy(k + 8, &t, 4);
}

static bool is_true(const hmap *truth, int32_t h, int32_t r, int32_t t) {
    char k[12];
    int64_t v;
    key_of(h, r, t, k);
    return hmap_get(truth, k, 12, &v);
}

/* Scores every candidate of a query (score NAN: not a candidate); ranks the
 * true tail with the other true tails filtered out; the top answer. */
static void score_query(row *w, const hmap *truth, const kg_triple *q, const double *score, int32_t n_ent,
                        bool non_entity_top, cand *buf) {
    int n = 0;
    for (int32_t e = 0; e < n_ent; e++)
        if (!isnan(score[e]) && (e == q->t || !is_true(truth, q->h, q->r, e))) buf[n++] = (cand){e, score[e]};
    qsort(buf, (size_t)n, sizeof *buf, by_s);
    int rank = 0;
    for (int i = 0; i < n && !rank; i++)
        if (buf[i].e == q->t) rank = i + 1;
    w->n++;
    w->hits1 += rank == 1, w->hits10 += rank >= 1 && rank <= 10, w->rr += rank ? 1.0 / rank : 0;
    /* The top answer, over the unfiltered candidates: is it stated falsely? */
    double best = -INFINITY;
    int32_t top = -1;
    for (int32_t e = 0; e < n_ent; e++)
        if (!isnan(score[e]) && score[e] > best) best = score[e], top = e;
    if (non_entity_top || top < 0) w->non_entity++;
    else if (!is_true(truth, q->h, q->r, top)) w->false_entity++;
}

static const char *title_of(void *ctx, const char *item) {
    const pz_item_info *it = ctx ? pz_item(ctx, item) : NULL;
    return it && it->title ? it->title : NULL;
}

static void svg(sb *o, const row *rows) {
    int W = 720, H = 360, L = 60, T = 40, B = 70, ph = H - T - B, n = 0;
    for (int m = 0; m < N_METHODS; m++) n += rows[m].ran;
    int gw = (W - L - 20) / (n ? n : 1);
    sb_printf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                 "font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
              W, H, W, H);
    sb_printf(o, "<text x=\"%d\" y=\"22\" font-size=\"15\">Completing hidden triples: right (hits@1) and false "
                 "(non-entity, wrong entity)</text>\n", L);
    for (int i = 0; i <= 4; i++) {
        int y = T + ph - ph * i / 4;
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%d\" "
                     "text-anchor=\"end\">%d%%</text>\n", L, y, W - 20, y, L - 6, y + 4, 25 * i);
    }
    static const char *const COL[3] = {"#4c78a8", "#e45756", "#f58518"};
    int g = 0;
    for (int m = 0; m < N_METHODS; m++) {
        if (!rows[m].ran) continue;
        double v[3] = {rows[m].hits1 / rows[m].n, rows[m].non_entity / rows[m].n, rows[m].false_entity / rows[m].n};
        int x0 = L + g * gw + gw / 8, bw = gw / 4;
        for (int k = 0; k < 3; k++) {
            int h = (int)(v[k] * ph);
            sb_printf(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", x0 + k * bw, T + ph - h,
                      bw - 2, h, COL[k]);
        }
        sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", L + g * gw + gw / 2, T + ph + 18,
                  METHOD[m]);
        g++;
    }
    sb_printf(o, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">hits@1</text>"
                 "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">non-entity</text>"
                 "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">false entity</text>\n",
              L, H - 28, COL[0], L + 14, H - 19, L + 90, H - 28, COL[1], L + 104, H - 19, L + 200, H - 28, COL[2],
              L + 214, H - 19);
    sb_puts(o, "</svg>\n");
}

eval_halluc_params eval_halluc_default_params(void) {
    return (eval_halluc_params){.hide = 0.1, .queries = 200, .samples = 5, .kge_epochs = 100, .seed = 42};
}

int eval_hallucination(store *s, pz_engine *titles, eval_halluc_params p, FILE *f, sb *json, tailor_error *err) {
    kg_graph g;
    int rc = kg_load(s, &g, err);
    if (rc) return rc;
    if (g.n_triples < 20) {
        kg_deinit(&g);
        return err_set(err, TAILOR_EINVAL, "the store's knowledge graph has %lld triples: too few to hide some (tailor "
                                           "import kg, or tailor kg derive)", (long long)g.n_triples);
    }
    kg_triple *tr;
    size_t n;
    kg_triples(&g, &tr, &n);
    hmap truth;
    hmap_init(&truth, n * 2);
    for (size_t i = 0; i < n; i++) {
        char k[12];
        key_of(tr[i].h, tr[i].r, tr[i].t, k);
        hmap_put(&truth, k, 12, 1);
    }
    rng r;
    rng_seed(&r, p.seed);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        kg_triple x = tr[i - 1];
        tr[i - 1] = tr[j], tr[j] = x;
    }
    size_t hidden = (size_t)(n * p.hide), nq = hidden < (size_t)p.queries ? hidden : (size_t)p.queries;
    const kg_triple *train = tr + hidden, *q = tr;
    size_t n_train = n - hidden;
    row rows[N_METHODS] = {0};
    kge_model km[2] = {0};
    for (int k = 0; k < 2 && !rc; k++) {
        kge_params kp = kge_default_params(k ? KGE_DISTMULT : KGE_TRANSE);
        kp.epochs = p.kge_epochs, kp.seed = p.seed;
        rc = kge_train(train, n_train, g.n_entities, g.n_relations, kp, true, &km[k], err);
    }
    double *score = xmalloc(((size_t)g.n_entities + 1) * sizeof *score);
    float *fs = xmalloc(((size_t)g.n_entities + 1) * sizeof *fs);
    cand *buf = xmalloc(((size_t)g.n_entities + 1) * sizeof *buf);
    int *votes = xmalloc(((size_t)g.n_entities + 1) * sizeof *votes);
    kg_asker free_a = {0}, con_a = {0};
    if (p.llm) {
        kg_asker_init(&free_a, p.llm, &g, p.samples, false);
        kg_asker_init(&con_a, p.llm, &g, p.samples, true);
        if (p.llm->ops->set_sampling) {
            llm_sampler_params sp = llm_sampler_default_params();
            sp.temperature = 1.0f;
            sp.seed = p.seed;
            p.llm->ops->set_sampling(p.llm, &sp, 32);
        }
    }
    uint64_t t0 = timer_now_ns();
    for (size_t i = 0; i < nq && !rc; i++) {
        const kg_triple *x = &q[i];
        for (int k = 0; k < 2; k++) {
            kge_tail_scores(&km[k], x->h, x->r, fs);
            for (int32_t e = 0; e < g.n_entities; e++) score[e] = fs[e];
            score_query(&rows[k], &truth, x, score, g.n_entities, false, buf);
            rows[k].ran = true;
        }
        if (!p.llm) continue;
        int non;
        /* Free text: only the entities it named are candidates. */
        memset(votes, 0, (size_t)g.n_entities * sizeof *votes);
        if ((rc = kg_ask(&free_a, x->h, x->r, title_of, titles, votes, &non, err))) break;
        int best = 0;
        for (int32_t e = 0; e < g.n_entities; e++) score[e] = votes[e] ? votes[e] : NAN, best = votes[e] > best ? votes[e] : best;
        score_query(&rows[M_LLM_FREE], &truth, x, score, g.n_entities, non > best, buf);
        rows[M_LLM_FREE].ran = true;
        memset(votes, 0, (size_t)g.n_entities * sizeof *votes);
        if ((rc = kg_ask(&con_a, x->h, x->r, title_of, titles, votes, &non, err))) break;
        for (int32_t e = 0; e < g.n_entities; e++) score[e] = votes[e] ? votes[e] : NAN;
        score_query(&rows[M_LLM_CONSTRAINED], &truth, x, score, g.n_entities, false, buf);
        rows[M_LLM_CONSTRAINED].ran = true;
        /* Combined: half TransE's softmax over entities, half the votes' share. */
        kge_tail_scores(&km[0], x->h, x->r, fs);
        double mx = -INFINITY, z = 0;
        for (int32_t e = 0; e < g.n_entities; e++) mx = fmax(mx, fs[e]);
        for (int32_t e = 0; e < g.n_entities; e++) z += exp(fs[e] - mx);
        for (int32_t e = 0; e < g.n_entities; e++)
            score[e] = 0.5 * exp(fs[e] - mx) / z + 0.5 * (double)votes[e] / p.samples;
        score_query(&rows[M_COMBINED], &truth, x, score, g.n_entities, false, buf);
        rows[M_COMBINED].ran = true;
        if (f && !(i % 20) && p.llm) fprintf(stderr, "\r%zu of %zu questions", i, nq);
    }
    double secs = timer_seconds_since(t0);
    if (p.llm && p.llm->ops->set_sampling) p.llm->ops->set_sampling(p.llm, NULL, 0);
    if (!rc) {
        if (p.llm && f) fprintf(stderr, "\r%zu of %zu questions\n", nq, nq);
        fprintf(f,
                "hallucination: %lld triples, %d entities, %d relations; %zu hidden (%.0f%%), %zu asked; embeddings "
                "trained on the other %zu (%d epochs)%s\n\n",
                (long long)g.n_triples, g.n_entities, g.n_relations, hidden, p.hide * 100, nq, n_train, p.kge_epochs,
                p.llm ? "" : "; no language model given (-m FILE.gguf or --llm-url URL adds its rows)");
        fprintf(f, "%-20s %8s %8s %8s %12s %13s\n", "method", "hits@1", "hits@10", "MRR", "non-entity", "false entity");
        sb_printf(json, "{\"experiment\":\"hallucination\",\"triples\":%lld,\"entities\":%d,\"hidden\":%zu,\"asked\":%zu,"
                        "\"samples\":%d,\"seconds\":%.2f,\"methods\":[",
                  (long long)g.n_triples, g.n_entities, hidden, nq, p.samples, secs);
        bool first = true;
        for (int m = 0; m < N_METHODS; m++) {
            if (!rows[m].ran) continue;
            const row *w = &rows[m];
            fprintf(f, "%-20s %8.4f %8.4f %8.4f %11.1f%% %12.1f%%\n", METHOD[m], w->hits1 / w->n, w->hits10 / w->n,
                    w->rr / w->n, 100 * w->non_entity / w->n, 100 * w->false_entity / w->n);
            sb_printf(json, "%s{\"method\":\"%s\",\"hits@1\":%.6f,\"hits@10\":%.6f,\"mrr\":%.6f,\"non_entity\":%.6f,"
                            "\"false_entity\":%.6f}",
                      first ? "" : ",", METHOD[m], w->hits1 / w->n, w->hits10 / w->n, w->rr / w->n,
                      w->non_entity / w->n, w->false_entity / w->n);
            first = false;
        }
        sb_puts(json, "]}");
        fprintf(f, "(filtered ranks: other true tails of the same head and relation are left out; non-entity: the top "
                   "answer names nothing in the graph; false entity: it names an entity that is not a true tail)\n");
        if (p.report_dir) {
            sb o;
            sb_init(&o);
            svg(&o, rows);
            rc = mkdir_p(p.report_dir, err);
            char *path = path_join(p.report_dir, "hallucination.svg");
            FILE *out = rc ? NULL : fopen(path, "wb");
            if (!rc && (!out || fwrite(o.buf, 1, o.len, out) != o.len)) rc = err_set(err, TAILOR_EIO, "cannot write %s", path);
            if (out) fclose(out);
            free(path);
            sb_deinit(&o);
        }
    }
    kg_asker_deinit(&free_a);
    kg_asker_deinit(&con_a);
    kge_free(&km[0]);
    kge_free(&km[1]);
    free(score);
    free(fs);
    free(buf);
    free(votes);
    free(tr);
    hmap_deinit(&truth);
    kg_deinit(&g);
    return rc;
}
