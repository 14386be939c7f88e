/* complete.c — a language model asked for the missing tail of (head,
 * relation, ?), through any backend (the built-in engine or a remote
 * server): unconstrained, it answers in words and the answer may name no
 * entity at all; constrained, its answer is decoded as one of the graph's
 * entity names (a JSON string enum, compiled into a trie), so it cannot
 * name anything else. Several samples vote (self-consistency). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "know/know.h"

void kg_asker_init(kg_asker *a, llm_backend *b, const kg_graph *g, int samples, bool constrained) {
    memset(a, 0, sizeof *a);
    a->b = b, a->g = g, a->samples = samples > 0 ? samples : 5, a->constrained = constrained;
    if (constrained) a->schema = xcalloc((size_t)g->n_relations + 1, sizeof *a->schema);
}

void kg_asker_deinit(kg_asker *a) {
    for (int32_t r = 0; a->schema && r < a->g->n_relations; r++) free(a->schema[r]);
    free(a->schema);
    memset(a, 0, sizeof *a);
}

/* The names r leads to, as a JSON schema of a string enum. */
static const char *range_schema(kg_asker *a, int32_t r) {
    if (a->schema[r]) return a->schema[r];
    unsigned char *in = kg_relation_range(a->g, r);
    sb s;
    sb_init(&s);
    sb_puts(&s, "{\"type\":\"string\",\"enum\":[");
    bool first = true;
    for (int32_t e = 0; e < a->g->n_entities; e++) {
        if (!in[e]) continue;
        if (!first) sb_putc(&s, ',');
        sb_json_str(&s, a->g->entity[e], strlen(a->g->entity[e]));
        first = false;
    }
    sb_puts(&s, "]}");
    free(in);
    return a->schema[r] = sb_take(&s);
}

/* The entity an answer names (whole, case and surrounding blanks and
 * punctuation ignored), or -1. */
static int32_t entity_of_answer(const kg_graph *g, const char *text) {
    while (*text && (isspace((unsigned char)*text) || *text == '"')) text++;
    size_t n = strlen(text);
    while (n && (isspace((unsigned char)text[n - 1]) || strchr("\".,;", text[n - 1]))) n--;
    char *t = xstrndup(text, n);
    int32_t e = kg_entity(g, t);
    for (int32_t i = 0; e < 0 && i < g->n_entities; i++)
        if (!strcasecmp(g->entity[i], t)) e = i;
    free(t);
    return e;
}

static void name_of(const kg_graph *g, int32_t e, kg_title_fn title, void *ctx, sb *o) {
    const char *t = g->item[e] && title ? title(ctx, g->item[e]) : NULL;
    sb_puts(o, t ? t : g->entity[e]);
}

int kg_ask(kg_asker *a, int32_t h, int32_t r, kg_title_fn title, void *ctx, int *votes, int *non_entities,
           tailor_error *err) {
    *non_entities = 0;
    sb q;
    sb_init(&q);
    sb_puts(&q, "Complete the fact with one entity of the knowledge graph.\nHead: ");
    name_of(a->g, h, title, ctx, &q);
    sb_printf(&q, "\nRelation: %s\nTail:", a->g->relation[r]);
    llm_msg msgs[] = {{.role = "system", .content = "You complete the facts of a knowledge graph. Answer with the tail "
                                                     "entity only, exactly as the graph names it."},
                      {.role = "user", .content = sb_str(&q)}};
    int rc = 0;
    for (int s = 0; s < a->samples && !rc; s++) {
        if (a->constrained) {
            char *out = NULL;
            rc = a->b->ops->complete_json(a->b, msgs, 2, range_schema(a, r), NULL, NULL, &out, err);
            if (!rc) {
                int32_t e = entity_of_answer(a->g, out);
                if (e >= 0) votes[e]++;
                else (*non_entities)++; /* cannot happen: the grammar allows names only */
            }
            free(out);
        } else {
            llm_reply rep;
            rc = a->b->ops->complete(a->b, msgs, 2, NULL, 0, LLM_TOOLS_NONE, NULL, NULL, &rep, err);
            if (!rc) {
                /* The first line is the answer. */
                char *t = rep.text ? rep.text : "";
                char *nl = strchr(t, '\n');
                if (nl) *nl = 0;
                int32_t e = entity_of_answer(a->g, t);
                if (e >= 0) votes[e]++;
                else (*non_entities)++;
                llm_reply_deinit(&rep);
            }
        }
    }
    sb_deinit(&q);
    return rc;
}

/* ---- proposals ------------------------------------------------------------------ */

static const char *const METHODS[] = {"transe", "distmult", "llm", "combined"};

bool kg_method_parse(const char *s, kg_method *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, METHODS[i])) {
            *out = (kg_method)i;
            return true;
        }
    return false;
}

const char *kg_method_name(kg_method m) { return METHODS[m]; }

int kg_complete(store *s, const kg_graph *g, kg_complete_params p, kg_title_fn title, void *ctx, int64_t *asked,
                int64_t *proposed, tailor_error *err) {
    *asked = *proposed = 0;
    bool llm = p.method == KG_METHOD_LLM, combined = p.method == KG_METHOD_COMBINED;
    if ((llm || combined) && !p.llm) return err_set(err, TAILOR_EINVAL, "%s asks a language model: none given", METHODS[p.method]);
    if (p.relation < 0 || p.relation >= g->n_relations) return err_set(err, TAILOR_EINVAL, "no such relation");
    int samples = p.samples > 0 ? p.samples : 5;
    kge_model km = {0};
    int rc = 0;
    if (!llm) {
        kg_triple *tr;
        size_t n;
        kg_triples(g, &tr, &n);
        kge_params kp = kge_default_params(p.method == KG_METHOD_DISTMULT ? KGE_DISTMULT : KGE_TRANSE);
        if (p.epochs > 0) kp.epochs = p.epochs;
        if (p.seed) kp.seed = p.seed;
        rc = kge_train(tr, n, g->n_entities, g->n_relations, kp, p.quiet, &km, err);
        free(tr);
    }
    kg_asker ask = {0};
    if (p.llm) kg_asker_init(&ask, p.llm, g, samples, true);
    float *fs = xmalloc(((size_t)g->n_entities + 1) * sizeof *fs);
    int *votes = xcalloc((size_t)g->n_entities + 1, sizeof *votes);
    unsigned char *range = kg_relation_range(g, p.relation); /* only what the relation leads to elsewhere */
    if (!rc) rc = store_begin(s, err);
    bool in_tx = !rc;
    for (int32_t h = 0; h < g->n_entities && *asked < p.limit && !rc; h++) {
        if (!g->item[h]) continue;
        bool has = false;
        for (int64_t k = g->adj_ptr[h]; k < g->adj_ptr[h + 1] && !has; k++)
            has = g->adj[k].rel == p.relation && !g->adj[k].inverse;
        if (has) continue;
        (*asked)++;
        double z = 0, mx = -INFINITY;
        if (!llm) {
            kge_tail_scores(&km, h, p.relation, fs);
            for (int32_t e = 0; e < g->n_entities; e++) mx = fmax(mx, fs[e]);
            for (int32_t e = 0; e < g->n_entities; e++) z += exp(fs[e] - mx);
        }
        if (p.llm) {
            int non;
            memset(votes, 0, (size_t)g->n_entities * sizeof *votes);
            if ((rc = kg_ask(&ask, h, p.relation, title, ctx, votes, &non, err))) break;
        }
        double best = 0;
        int32_t top = -1;
        for (int32_t e = 0; e < g->n_entities; e++) {
            if (e == h || !range[e]) continue; /* nothing is its own tail */
            double pr = llm        ? (double)votes[e] / samples
                        : combined ? 0.5 * exp(fs[e] - mx) / z + 0.5 * (double)votes[e] / samples
                                   : exp(fs[e] - mx) / z;
            if (pr > best) best = pr, top = e;
        }
        if (top < 0) continue;
        bool added = false;
        rc = store_kg_propose(s, g->entity[h], g->relation[p.relation], g->entity[top], METHODS[p.method], best, &added,
                              err);
        *proposed += added;
    }
    if (in_tx && !rc) rc = store_commit(s, err);
    else if (in_tx) store_rollback(s);
    free(fs);
    free(votes);
    free(range);
    kg_asker_deinit(&ask);
    kge_free(&km);
    return rc;
}
