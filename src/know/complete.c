/* complete.c — a language model asked for the missing tail of (head,
 * relation, ?), through any backend (the built-in engine or a remote
 * server): unconstrained, it answers in words and the answer may name no
 * entity at all; constrained, its answer is decoded as one of the graph's
 * entity names (a JSON string enum, compiled into a trie), so it cannot
 * name anything else. Several samples vote (self-consistency). */
#include <ctype.h>
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
