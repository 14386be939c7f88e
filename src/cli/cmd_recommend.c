/* cmd_recommend.c — `tailor recommend | similar | search`: the personalize
 * engine (trained models, conditions, popularity fallback, explanations)
 * and the catalogue's full-text search from the command line. Every item
 * shown is an item of the catalogue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "personalize/personalize.h"

static int parse_k(const cli_args *a, long *k) {
    if (!cli_opt_int(a, "k", 10, 1, 100000, k)) return cli_usage_error(a, "-k must be a number from 1 to 100000");
    return 0;
}

/* --filter KEY=VALUE (also KEY!=VALUE, KEY>=N, KEY<=N), repeatable. */
static int parse_filters(const cli_args *a, pz_cond *conds, int *n) {
    int nf;
    const char *const *v = cli_opt_all(a, "filter", &nf);
    if (nf > PZ_MAX_CONDS) return cli_usage_error(a, "at most %d --filter", PZ_MAX_CONDS);
    for (int i = 0; i < nf; i++)
        if (!pz_cond_parse(v[i], &conds[i]))
            return cli_usage_error(a, "--filter expects KEY=VALUE, KEY!=VALUE, KEY>=N or KEY<=N, not '%s'", v[i]);
    *n = nf;
    return 0;
}

/* Opens the store and an engine over it; 0 or an exit code. */
static int open_engine(const cli_args *a, store **s, pz_engine **e) {
    int code;
    *s = cli_open_store(a, true, &code);
    if (!*s) return code;
    tailor_error err = {0};
    if (pz_engine_new(*s, e, &err)) {
        store_close(*s);
        return cli_fail(&err);
    }
    return 0;
}

static const char *model_label(const pz_result *r, char *buf, size_t n) {
    if (strcmp(r->model, r->kind)) snprintf(buf, n, "%s (%s)", r->model, r->kind);
    else snprintf(buf, n, "%s", r->model);
    return buf;
}

int cmd_recommend(cli_args *a) {
    const char *user = cli_opt_get(a, "user"), *history = cli_opt_get(a, "history");
    if (!user == !history) return cli_usage_error(a, "give --user ID or --history IDS (one of them)");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    pz_query q = {.model = cli_opt_get(a, "model"), .user = user, .k = (int)k, .explain = cli_flag(a, "explain")};
    if ((code = parse_filters(a, q.conds, &q.n_conds))) return code;
    const char *nv = cli_opt_get(a, "novelty");
    if (nv && (!parse_f64(nv, strlen(nv), &q.novelty) || q.novelty < 0 || q.novelty > 1))
        return cli_usage_error(a, "--novelty takes a number from 0 to 1");
    long cold;
    if (!cli_opt_int(a, "cold", 0, 0, 1000, &cold)) return cli_usage_error(a, "--cold takes a number of places");
    q.cold = (int)cold;
    VEC(char *) hist = {0};
    char *copy = history ? xstrdup(history) : NULL;
    for (char *t = copy ? strtok(copy, ",") : NULL; t; t = strtok(NULL, ",")) vec_push(&hist, t);
    q.history = (const char *const *)hist.data;
    q.n_history = hist.len;
    store *s;
    pz_engine *e;
    if ((code = open_engine(a, &s, &e))) {
        free(copy);
        vec_free(&hist);
        return code;
    }
    tailor_error err = {0};
    pz_result r;
    int rc = pz_recommend(e, &q, &r, &err);
    if (rc) {
        code = cli_fail(&err);
    } else if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        sb_putc(&o, '{');
        pz_result_json(&r, q.explain, &o);
        printf("%s}\n", sb_str(&o));
        sb_deinit(&o);
    } else {
        char label[160];
        model_label(&r, label, sizeof label);
        if (user) printf("%s for user %s (%lld items in history", label, user, (long long)r.history_used);
        else printf("%s for a history of %lld items (", label, (long long)r.history_used);
        if (r.history_unknown)
            printf("%s%lld not known to the model", user || r.history_used ? "; " : "", (long long)r.history_unknown);
        printf("):\n");
        if (r.fallback) printf("  the model knows none of this history: the most popular items instead\n");
        for (int i = 0; i < r.n; i++) {
            const pz_rec *x = &r.items[i];
            printf("%3d. %-50s %10.4f  [%s]%s\n", i + 1, x->title, x->score, x->id, x->cold ? "  new" : "");
            if (!q.explain) continue;
            rec_explain_style style = x->cold ? REC_EXPLAIN_PATHS : r.style;
            if (x->cold) printf("       nobody has had it yet: placed by what the knowledge graph links it to\n");
            if (style == REC_EXPLAIN_POPULARITY) {
                if (r.pop_window > 0)
                    printf("       popular: %u users in the last %lld s of the training data\n", x->popularity,
                           (long long)r.pop_window);
                else printf("       popular: %u users in the training data\n", x->popularity);
            } else if (style == REC_EXPLAIN_NONE) {
                if (i == 0) printf("       (%s gives no reasons for its recommendations)\n", r.kind);
            } else {
                for (int b = 0; b < x->n_because; b++) {
                    if (style == REC_EXPLAIN_ATTENTION)
                        printf("       reads your taste from %s (attention %.2f)\n", x->because[b].title,
                               x->because[b].weight);
                    else if (style == REC_EXPLAIN_PATHS)
                        printf("       linked to %s: %s\n", x->because[b].title, x->because[b].path);
                    else printf("       because of %s (%.3f)\n", x->because[b].title, x->because[b].weight);
                }
                if (!x->n_because)
                    printf(style == REC_EXPLAIN_PATHS ? "       (no path of up to 3 links to your history in the graph)\n"
                                                      : "       (no history item adds to this score)\n");
            }
        }
        if (r.n == 0) printf("(nothing to recommend: every item is excluded%s)\n", q.n_conds ? " or filtered out" : "");
    }
    if (!rc) pz_result_deinit(&r);
    pz_engine_free(e);
    store_close(s);
    free(copy);
    vec_free(&hist);
    return code;
}

int cmd_similar(cli_args *a) {
    const char *item = cli_opt_get(a, "item");
    if (!item) return cli_usage_error(a, "give --item ID");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    pz_cond conds[PZ_MAX_CONDS];
    int nc = 0;
    if ((code = parse_filters(a, conds, &nc))) return code;
    store *s;
    pz_engine *e;
    if ((code = open_engine(a, &s, &e))) return code;
    tailor_error err = {0};
    pz_result r;
    sb note;
    sb_init(&note);
    int rc = pz_similar(e, cli_opt_get(a, "model"), item, (int)k, conds, nc, &r, &note, &err);
    if (note.len && !a->quiet) fprintf(stderr, "%s\n", sb_str(&note));
    if (rc) {
        code = cli_fail(&err);
    } else if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        sb_puts(&o, "{\"item\":");
        sb_json_str(&o, item, strlen(item));
        sb_putc(&o, ',');
        pz_result_json(&r, false, &o);
        printf("%s}\n", sb_str(&o));
        sb_deinit(&o);
    } else {
        char label[160];
        const pz_item_info *it = pz_item(e, item);
        printf("items like %s, by %s:\n", it && it->title ? it->title : item, model_label(&r, label, sizeof label));
        for (int i = 0; i < r.n; i++) printf("%3d. %-50s %8.4f  [%s]\n", i + 1, r.items[i].title, r.items[i].score, r.items[i].id);
    }
    if (!rc) pz_result_deinit(&r);
    sb_deinit(&note);
    pz_engine_free(e);
    store_close(s);
    return code;
}

/* ---- search -------------------------------------------------------------- */

int cmd_search(cli_args *a) {
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    pz_cond conds[PZ_MAX_CONDS];
    int nc = 0;
    if ((code = parse_filters(a, conds, &nc))) return code;
    sb q;
    sb_init(&q);
    for (int i = 0; i < a->npos; i++) sb_printf(&q, "%s%s", i ? " " : "", a->pos[i]);
    store *s;
    pz_engine *e;
    if ((code = open_engine(a, &s, &e))) {
        sb_deinit(&q);
        return code;
    }
    tailor_error err = {0};
    store_hit *hits = NULL;
    size_t n = 0;
    sb known;
    sb_init(&known);
    for (int i = 0; i < nc && !code; i++)
        if (!pz_attribute_known(e, conds[i].key, &known)) {
            err_set(&err, TAILOR_EINVAL, "no item has an attribute '%s' (%s%s)", conds[i].key,
                    known.len ? "attributes: " : "the catalogue has no attributes", sb_str(&known));
            code = cli_fail(&err);
        }
    sb_deinit(&known);
    const char *mode = cli_opt_get(a, "mode") ? cli_opt_get(a, "mode") : "words";
    bool vectors = !strcmp(mode, "vectors"), hybrid = !strcmp(mode, "hybrid");
    if (!code && !vectors && !hybrid && strcmp(mode, "words"))
        code = cli_usage_error(a, "--mode is words (default), vectors or hybrid");
    if (!code && !vectors && !hybrid && store_search(s, sb_str(&q), &hits, &n, &err)) code = cli_fail(&err);
    if (!code && (vectors || hybrid) && cli_vector_hits(a, s, e, sb_str(&q), hybrid, &hits, &n, &err))
        code = cli_fail(&err);
    bool json = cli_flag(a, "json");
    sb o;
    sb_init(&o);
    if (json) {
        sb_puts(&o, "{\"query\":");
        sb_json_str(&o, q.buf, q.len);
        sb_printf(&o, ",\"matches\":%zu,\"items\":[", n);
    }
    long shown = 0;
    for (size_t i = 0; i < n && shown < k && !code; i++) {
        store_item row;
        if (store_item_get(s, hits[i].id, &row, NULL)) continue;
        const pz_item_info *it = pz_item(e, row.ext_id);
        store_item_deinit(&row);
        if (!it || !pz_item_passes(it, conds, nc)) continue;
        shown++;
        if (json) {
            sb_printf(&o, "%s{\"rank\":%ld,\"item\":", shown > 1 ? "," : "", shown);
            sb_json_str(&o, it->id, strlen(it->id));
            sb_puts(&o, ",\"title\":");
            if (it->title) sb_json_str(&o, it->title, strlen(it->title));
            else sb_puts(&o, "null");
            sb_printf(&o, ",\"score\":%.4f}", hits[i].score);
        } else {
            printf("%3ld. %-50s %8.3f  [%s]\n", shown, it->title ? it->title : it->id, hits[i].score, it->id);
        }
    }
    if (!code) {
        if (json) printf("%s]}\n", sb_str(&o));
        else if (!shown) printf("no item matches '%s'%s\n", sb_str(&q), n ? " with these filters" : "");
    }
    sb_deinit(&o);
    free(hits);
    sb_deinit(&q);
    pz_engine_free(e);
    store_close(s);
    return code;
}
