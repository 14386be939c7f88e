/* cmd_kg.c — `tailor kg stats|neighbours|paths`: the knowledge graph of the
 * store (its accepted triples) as a person looks at it: what is there, what
 * an entity is linked to, and how an item connects to what a user had. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "know/know.h"
#include "personalize/personalize.h"

typedef struct kg_face {
    store *s;
    pz_engine *e;
    kg_graph g;
} kg_face;

static int open_graph(cli_args *a, kg_face *f) {
    memset(f, 0, sizeof *f);
    int code;
    f->s = cli_open_store(a, true, &code);
    if (!f->s) return code;
    tailor_error err = {0};
    int rc = pz_engine_new(f->s, &f->e, &err);
    if (!rc) rc = kg_load(f->s, &f->g, &err);
    if (rc) {
        pz_engine_free(f->e);
        store_close(f->s);
        return cli_fail(&err);
    }
    if (!f->g.n_triples) {
        kg_deinit(&f->g);
        pz_engine_free(f->e);
        store_close(f->s);
        err_set(&err, TAILOR_ENOTFOUND, "%s has no knowledge graph yet (tailor import kg TRIPLES, or tailor kg derive)",
                a->db_path);
        return cli_fail(&err);
    }
    return 0;
}

static void close_graph(kg_face *f) {
    kg_deinit(&f->g);
    pz_engine_free(f->e);
    store_close(f->s);
}

static const char *title_of(void *ctx, const char *item) {
    const pz_item_info *it = pz_item(ctx, item);
    return it && it->title ? it->title : NULL;
}

/* The entity an argument names: an entity, or (--item) an item's. */
static int32_t entity_arg(cli_args *a, kg_face *f, const char *name, bool item, int *code) {
    int32_t e = item ? kg_item_entity(&f->g, name) : kg_entity(&f->g, name);
    if (e < 0) {
        tailor_error err = {0};
        err_set(&err, TAILOR_ENOTFOUND, item ? "item '%s' has no entity in the graph" : "no entity '%s' in the graph",
                name);
        *code = cli_fail(&err);
    }
    (void)a;
    return e;
}

typedef struct rel_count {
    int32_t rel;
    int64_t n;
} rel_count;

static int by_count(const void *x, const void *y) {
    const rel_count *a = x, *b = y;
    return a->n != b->n ? (a->n > b->n ? -1 : 1) : a->rel - b->rel;
}

int cmd_kg_stats(cli_args *a) {
    kg_face f;
    int code = open_graph(a, &f);
    if (code) return code;
    const kg_graph *g = &f.g;
    rel_count *rc = xcalloc((size_t)g->n_relations + 1, sizeof *rc);
    for (int32_t r = 0; r < g->n_relations; r++) rc[r].rel = r;
    int64_t items = 0, max_deg = 0;
    for (int32_t e = 0; e < g->n_entities; e++) {
        items += g->item[e] != NULL;
        if (kg_degree(g, e) > max_deg) max_deg = kg_degree(g, e);
        for (int64_t k = g->adj_ptr[e]; k < g->adj_ptr[e + 1]; k++)
            if (!g->adj[k].inverse) rc[g->adj[k].rel].n++;
    }
    qsort(rc, (size_t)g->n_relations, sizeof *rc, by_count);
    if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        sb_printf(&o, "{\"triples\":%lld,\"entities\":%d,\"relations\":%d,\"items\":%lld,\"max_degree\":%lld,\"by_relation\":{",
                  (long long)g->n_triples, g->n_entities, g->n_relations, (long long)items, (long long)max_deg);
        for (int32_t r = 0; r < g->n_relations; r++) {
            if (r) sb_putc(&o, ',');
            sb_json_str(&o, g->relation[rc[r].rel], strlen(g->relation[rc[r].rel]));
            sb_printf(&o, ":%lld", (long long)rc[r].n);
        }
        printf("%s}}\n", sb_str(&o));
        sb_deinit(&o);
    } else {
        printf("triples    %lld\nentities   %d (%lld of them catalogue items)\nrelations  %d\nmax degree %lld\n",
               (long long)g->n_triples, g->n_entities, (long long)items, g->n_relations, (long long)max_deg);
        printf("\ntriples by relation:\n");
        for (int32_t r = 0; r < g->n_relations && r < 15; r++)
            printf("  %-50s %8lld\n", g->relation[rc[r].rel], (long long)rc[r].n);
        if (g->n_relations > 15) printf("  (%d more: --json lists all)\n", g->n_relations - 15);
    }
    free(rc);
    close_graph(&f);
    return 0;
}

int cmd_kg_neighbours(cli_args *a) {
    kg_face f;
    int code = open_graph(a, &f);
    if (code) return code;
    bool item = cli_flag(a, "item");
    int32_t e = entity_arg(a, &f, a->pos[0], item, &code);
    const char *rname = cli_opt_get(a, "relation");
    int32_t rel = rname ? kg_relation(&f.g, rname) : -1;
    if (!code && rname && rel < 0) {
        tailor_error err = {0};
        err_set(&err, TAILOR_ENOTFOUND, "no relation '%s' in the graph (tailor kg stats lists them)", rname);
        code = cli_fail(&err);
    }
    long k;
    if (!code && !cli_opt_int(a, "k", 50, 1, 1000000, &k)) code = cli_usage_error(a, "-k takes a positive number");
    if (code) {
        close_graph(&f);
        return code;
    }
    const kg_graph *g = &f.g;
    bool json = cli_flag(a, "json");
    sb o;
    sb_init(&o);
    if (json) {
        sb_puts(&o, "{\"entity\":");
        sb_json_str(&o, g->entity[e], strlen(g->entity[e]));
        sb_printf(&o, ",\"degree\":%lld,\"neighbours\":[", (long long)kg_degree(g, e));
    } else {
        printf("%s", g->entity[e]);
        if (g->item[e] && title_of(f.e, g->item[e])) printf(" (%s)", title_of(f.e, g->item[e]));
        printf(": %lld links\n", (long long)kg_degree(g, e));
    }
    long shown = 0;
    for (int64_t i = g->adj_ptr[e]; i < g->adj_ptr[e + 1] && shown < k; i++) {
        const kg_edge *x = &g->adj[i];
        if (rel >= 0 && x->rel != rel) continue;
        const char *t = g->item[x->to] ? title_of(f.e, g->item[x->to]) : NULL;
        if (json) {
            sb_printf(&o, "%s{\"relation\":", shown ? "," : "");
            sb_json_str(&o, g->relation[x->rel], strlen(g->relation[x->rel]));
            sb_printf(&o, ",\"direction\":\"%s\",\"entity\":", x->inverse ? "in" : "out");
            sb_json_str(&o, g->entity[x->to], strlen(g->entity[x->to]));
            sb_puts(&o, ",\"item\":");
            if (g->item[x->to]) sb_json_str(&o, g->item[x->to], strlen(g->item[x->to]));
            else sb_puts(&o, "null");
            sb_puts(&o, ",\"title\":");
            if (t) sb_json_str(&o, t, strlen(t));
            else sb_puts(&o, "null");
            sb_putc(&o, '}');
        } else {
            printf("  %s %-45s %s%s%s%s\n", x->inverse ? "<-" : "->", g->relation[x->rel], g->entity[x->to],
                   t ? " (" : "", t ? t : "", t ? ")" : "");
        }
        shown++;
    }
    if (json) printf("%s]}\n", sb_str(&o));
    sb_deinit(&o);
    close_graph(&f);
    return 0;
}

typedef struct hist_targets {
    const kg_graph *g;
    VEC(int32_t) entities;
    VEC(double) values;
} hist_targets;

static int add_target(void *ctx, const char *item, double value, int64_t ts) {
    (void)ts;
    hist_targets *h = ctx;
    int32_t e = kg_item_entity(h->g, item);
    if (e >= 0) {
        vec_push(&h->entities, e);
        vec_push(&h->values, value);
    }
    return 0;
}

int cmd_kg_paths(cli_args *a) {
    const char *item = cli_opt_get(a, "item"), *user = cli_opt_get(a, "user"), *to = cli_opt_get(a, "to");
    if (!item || !user == !to) return cli_usage_error(a, "give --item ID and one of --user ID or --to ITEM,ITEM...");
    long hops, k;
    if (!cli_opt_int(a, "hops", 3, 1, KG_MAX_HOPS, &hops)) return cli_usage_error(a, "--hops takes 1 to 3");
    if (!cli_opt_int(a, "k", 5, 1, 100, &k)) return cli_usage_error(a, "-k takes 1 to 100");
    kg_face f;
    int code = open_graph(a, &f);
    if (code) return code;
    int32_t from = entity_arg(a, &f, item, true, &code);
    hist_targets h = {.g = &f.g};
    tailor_error err = {0};
    if (!code && user) {
        int rc = store_user_history(f.s, user, add_target, &h, &err);
        if (rc) code = cli_fail(&err);
    } else if (!code) {
        char *copy = xstrdup(to);
        for (char *sv = NULL, *t = strtok_r(copy, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) add_target(&h, t, NAN, 0);
        free(copy);
    }
    if (!code) {
        kg_path_params p = kg_path_default_params();
        p.max_hops = (int)hops;
        p.max_paths = (int)k;
        kg_path *paths = xcalloc((size_t)k, sizeof *paths);
        int n;
        uint64_t t0 = timer_now_ns();
        kg_paths(&f.g, from, h.entities.data, h.entities.len, p, paths, &n);
        double ms = timer_seconds_since(t0) * 1000;
        bool json = cli_flag(a, "json");
        sb o;
        sb_init(&o);
        if (json) sb_printf(&o, "{\"targets\":%zu,\"ms\":%.3f,\"paths\":[", h.entities.len, ms);
        else printf("%zu target items in the graph; %d paths (%.2f ms):\n", h.entities.len, n, ms);
        for (int i = 0; i < n; i++) {
            sb line;
            sb_init(&line);
            kg_path_text(&f.g, &paths[i], title_of, f.e, &line);
            double value = NAN;
            int32_t end = paths[i].node[paths[i].hops];
            for (size_t j = 0; j < h.entities.len; j++)
                if (h.entities.data[j] == end) value = h.values.data[j];
            if (json) {
                sb_printf(&o, "%s{\"hops\":%d,\"weight\":%.6g,\"text\":", i ? "," : "", paths[i].hops, paths[i].weight);
                sb_json_str(&o, line.buf, line.len);
                sb_puts(&o, ",\"target\":");
                sb_json_str(&o, f.g.item[end], strlen(f.g.item[end]));
                if (isnan(value)) sb_puts(&o, ",\"value\":null}");
                else sb_printf(&o, ",\"value\":%g}", value);
            } else {
                printf("  %s", sb_str(&line));
                if (!isnan(value)) printf("  [value %g]", value);
                printf("\n");
            }
            sb_deinit(&line);
        }
        if (json) printf("%s]}\n", sb_str(&o));
        else if (!n) printf("  no path of at most %ld hops\n", hops);
        sb_deinit(&o);
        free(paths);
    }
    vec_free(&h.entities);
    vec_free(&h.values);
    close_graph(&f);
    return code;
}

/* ---- proposals: kg complete, kg proposals, kg accept -------------------------- */

int cmd_kg_complete(cli_args *a) {
    const char *rname = cli_opt_get(a, "relation"), *method = cli_opt_get(a, "method");
    if (!rname) return cli_usage_error(a, "--relation names the relation to complete (tailor kg stats lists them)");
    kg_complete_params p = {.method = KG_METHOD_TRANSE, .quiet = a->quiet};
    if (method && !kg_method_parse(method, &p.method))
        return cli_usage_error(a, "--method is transe, distmult, llm or combined");
    long limit, samples, epochs;
    if (!cli_opt_int(a, "limit", 100, 1, 1000000, &limit)) return cli_usage_error(a, "--limit takes a number");
    if (!cli_opt_int(a, "samples", 5, 1, 100, &samples)) return cli_usage_error(a, "--samples takes 1 to 100");
    if (!cli_opt_int(a, "epochs", 100, 1, 100000, &epochs)) return cli_usage_error(a, "--epochs takes a number");
    p.limit = limit, p.samples = (int)samples, p.epochs = (int)epochs;
    if (cli_opt_get(a, "seed")) p.seed = strtoull(cli_opt_get(a, "seed"), NULL, 10);
    int code = cli_backend_new(a, "threads", &p.llm);
    if (code) return code;
    if ((p.method == KG_METHOD_LLM || p.method == KG_METHOD_COMBINED) && !p.llm)
        return cli_usage_error(a, "--method %s asks a language model: give --model FILE.gguf or --llm-url URL",
                               kg_method_name(p.method));
    kg_face f;
    if ((code = open_graph(a, &f))) {
        if (p.llm) p.llm->ops->free(p.llm);
        return code;
    }
    tailor_error err = {0};
    p.relation = kg_relation(&f.g, rname);
    int64_t asked = 0, proposed = 0;
    int rc = p.relation < 0
                 ? err_set(&err, TAILOR_ENOTFOUND, "no relation '%s' in the graph (tailor kg stats lists them)", rname)
                 : kg_complete(f.s, &f.g, p, title_of, f.e, &asked, &proposed, &err);
    if (!rc)
        printf("%lld items without '%s' asked; %lld facts proposed by %s, waiting for tailor kg accept (tailor kg "
               "proposals lists them)\n",
               (long long)asked, rname, (long long)proposed, kg_method_name(p.method));
    close_graph(&f);
    if (p.llm) p.llm->ops->free(p.llm);
    return rc ? cli_fail(&err) : 0;
}

typedef struct prop_out {
    sb o;
    bool json;
    long n, k;
} prop_out;

static int print_proposal(void *ctx, const char *h, const char *r, const char *t, const char *src, double conf) {
    prop_out *p = ctx;
    if (p->n++ >= p->k) return 0;
    if (p->json) {
        sb_printf(&p->o, "%s{\"head\":", p->n > 1 ? "," : "");
        sb_json_str(&p->o, h, strlen(h));
        sb_puts(&p->o, ",\"relation\":");
        sb_json_str(&p->o, r, strlen(r));
        sb_puts(&p->o, ",\"tail\":");
        sb_json_str(&p->o, t, strlen(t));
        sb_puts(&p->o, ",\"source\":");
        sb_json_str(&p->o, src, strlen(src));
        sb_printf(&p->o, ",\"confidence\":%.4f}", conf);
    } else {
        printf("  %.3f  %-10s %s -%s-> %s\n", conf, src, h, r, t);
    }
    return 0;
}

int cmd_kg_proposals(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    prop_out p = {.json = cli_flag(a, "json")};
    sb_init(&p.o);
    if (!cli_opt_int(a, "k", 50, 1, 10000000, &p.k)) {
        store_close(s);
        return cli_usage_error(a, "-k takes a number");
    }
    tailor_error err = {0};
    if (!p.json) printf("proposed facts, most confident first (confidence, source, fact):\n");
    int rc = store_kg_pending_each(s, print_proposal, &p, &err);
    if (!rc && p.json) printf("{\"pending\":%ld,\"proposals\":[%s]}\n", p.n, sb_str(&p.o));
    else if (!rc) printf("%ld waiting%s\n", p.n, p.n > p.k ? " (-k shows more)" : "");
    sb_deinit(&p.o);
    store_close(s);
    return rc ? cli_fail(&err) : 0;
}

int cmd_kg_accept(cli_args *a) {
    const char *v = cli_opt_get(a, "min-confidence");
    double min = 1.0;
    if (v && (!parse_f64(v, strlen(v), &min) || min < 0 || min > 1))
        return cli_usage_error(a, "--min-confidence takes a number from 0 to 1");
    if (!v && !cli_flag(a, "all")) return cli_usage_error(a, "give --min-confidence X, or --all");
    if (cli_flag(a, "all")) min = 0;
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    int64_t n = 0;
    tailor_error err = {0};
    int rc = store_kg_accept(s, min, cli_opt_get(a, "source"), &n, &err);
    store_close(s);
    if (rc) return cli_fail(&err);
    printf("accepted %lld proposed facts: the graph's queries and models see them from now on\n", (long long)n);
    return 0;
}
