/* cmd_recommend.c — `tailor recommend | similar | search`: serving a trained
 * model (the active one unless --model names another) and the catalogue's
 * full-text search, with attribute filters, explanations in the terms the
 * model can give, and a popularity fallback for users a model knows
 * nothing about. Every item shown is an item of the catalogue. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int parse_k(const cli_args *a, long *k) {
    if (!cli_opt_int(a, "k", 10, 1, 100000, k)) return cli_usage_error(a, "-k must be a number from 1 to 100000");
    return 0;
}

static char *item_title(store *s, const char *ext) {
    int64_t id;
    store_item it;
    char *t = NULL;
    if (store_item_find(s, ext, &id, NULL) == 0 && store_item_get(s, id, &it, NULL) == 0) {
        t = it.title ? xstrdup(it.title) : NULL;
        store_item_deinit(&it);
    }
    return t ? t : xstrdup(ext);
}

static const char *model_label(const cli_served *sv, char *buf, size_t n) {
    if (strcmp(sv->row.name, sv->m->kind->name)) snprintf(buf, n, "%s (%s)", sv->row.name, sv->m->kind->name);
    else snprintf(buf, n, "%s", sv->row.name);
    return buf;
}

/* ---- attribute filters --------------------------------------------------- */

typedef struct cli_filter {
    int n;
    char keys[8][64], vals[8][128];
} cli_filter;

static int filter_parse(const cli_args *a, cli_filter *f) {
    int nf;
    const char *const *v = cli_opt_all(a, "filter", &nf);
    memset(f, 0, sizeof *f);
    if (nf > 8) return cli_usage_error(a, "at most 8 --filter");
    for (int i = 0; i < nf; i++) {
        const char *eq = strchr(v[i], '=');
        if (!eq || eq == v[i] || eq - v[i] >= 64 || strlen(eq + 1) >= 128)
            return cli_usage_error(a, "--filter expects KEY=VALUE, not '%s'", v[i]);
        snprintf(f->keys[i], sizeof f->keys[i], "%.*s", (int)(eq - v[i]), v[i]);
        snprintf(f->vals[i], sizeof f->vals[i], "%s", eq + 1);
    }
    f->n = nf;
    return 0;
}

static bool json_matches(const cJSON *v, const char *want) {
    if (cJSON_IsString(v)) return !strcmp(v->valuestring, want);
    if (cJSON_IsNumber(v)) {
        double d;
        return parse_f64(want, strlen(want), &d) && d == v->valuedouble;
    }
    if (cJSON_IsBool(v)) return !strcmp(want, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (json_matches(e, want)) return true;
    }
    return false;
}

typedef struct filter_pass {
    const cli_filter *f;
    const hmap *index;      /* item ext id -> slot in allowed */
    unsigned char *allowed; /* per slot */
    hmap keys;              /* attribute names seen in the catalogue */
} filter_pass;

static int filter_item(void *ctx, const char *ext, const char *title, const char *attributes) {
    filter_pass *p = ctx;
    cJSON *o = attributes ? cJSON_Parse(attributes) : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) hmap_put(&p->keys, it->string, strlen(it->string), 1);
    int64_t slot;
    if (hmap_get(p->index, ext, strlen(ext), &slot)) {
        bool ok = true;
        for (int k = 0; k < p->f->n && ok; k++)
            ok = o && json_matches(cJSON_GetObjectItemCaseSensitive(o, p->f->keys[k]), p->f->vals[k]);
        p->allowed[slot] = ok;
    }
    cJSON_Delete(o);
    (void)title;
    return 0;
}

static int key_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One pass over the catalogue: allowed[slot] for the items of index, and an
 * error listing the attributes that exist when a key names none of them
 * (a typo must not look like "nothing matches"). */
static int filter_apply(const cli_args *a, store *s, const cli_filter *f, const hmap *index, unsigned char *allowed) {
    filter_pass p = {.f = f, .index = index, .allowed = allowed};
    hmap_init(&p.keys, 32);
    tailor_error err = {0};
    int rc = store_items_each(s, filter_item, &p, &err);
    if (rc) {
        hmap_deinit(&p.keys);
        return cli_fail(&err);
    }
    int code = 0;
    for (int k = 0; k < f->n && !code; k++) {
        int64_t dummy;
        if (hmap_get(&p.keys, f->keys[k], strlen(f->keys[k]), &dummy)) continue;
        VEC(char *) names = {0};
        for (size_t i = 0; i < p.keys.cap; i++) {
            const hmap_slot *sl = &p.keys.slots[i];
            if (!sl->hash) continue;
            const char *key;
            if (sl->klen > sizeof sl->key) memcpy(&key, sl->key, sizeof key);
            else key = sl->key;
            vec_push(&names, xstrndup(key, sl->klen));
        }
        if (names.len) qsort(names.data, names.len, sizeof *names.data, key_cmp);
        sb l;
        sb_init(&l);
        for (size_t i = 0; i < names.len; i++) sb_printf(&l, "%s%s", i ? ", " : "", names.data[i]);
        code = cli_usage_error(a, "--filter %s=...: no item has an attribute '%s' (%s%s)", f->keys[k], f->keys[k],
                               names.len ? "attributes: " : "the catalogue has no attributes", sb_str(&l));
        sb_deinit(&l);
        for (size_t i = 0; i < names.len; i++) free(names.data[i]);
        vec_free(&names);
    }
    hmap_deinit(&p.keys);
    return code;
}

static bool filter_allows(void *ctx, int32_t item) { return ((unsigned char *)ctx)[item]; }

/* ---- recommend ----------------------------------------------------------- */

typedef struct hist_ctx {
    cli_served *sv;
    VEC(int32_t) items;
    VEC(float) vals;
    int64_t unknown; /* events on items the model was not trained with */
} hist_ctx;

static int hist_add(void *ctx, const char *item_ext, double value, int64_t ts) {
    hist_ctx *h = ctx;
    int64_t i;
    (void)ts;
    if (!hmap_get(&h->sv->items, item_ext, strlen(item_ext), &i)) {
        h->unknown++;
        return 0;
    }
    vec_push(&h->items, (int32_t)i);
    vec_push(&h->vals, isnan(value) ? 1.0f : (float)value);
    return 0;
}

/* Items of --history: each must be in the catalogue; ones the model was
 * not trained with are left out (and counted). */
static int history_parse(const cli_args *a, const char *list, hist_ctx *h) {
    char *copy = xstrdup(list);
    int code = 0;
    for (char *tok = strtok(copy, ","); tok && !code; tok = strtok(NULL, ",")) {
        int64_t i;
        if (hmap_get(&h->sv->items, tok, strlen(tok), &i)) {
            vec_push(&h->items, (int32_t)i);
            vec_push(&h->vals, 1.0f);
        } else if (store_item_find(h->sv->s, tok, &i, NULL) == 0) {
            h->unknown++;
        } else {
            fprintf(stderr, "tailor: item '%s' not found in %s\n", tok, a->db_path);
            code = EX_NOINPUT;
        }
    }
    free(copy);
    return code;
}

/* The history items with the largest positive contributions, best first. */
static int top_contrib(const float *contrib, size_t n, int *top, int want) {
    int got = 0;
    for (size_t q = 0; q < n; q++) {
        if (!(contrib[q] > 0)) continue;
        if (got == want && !(contrib[q] > contrib[top[got - 1]])) continue;
        int t = got < want ? got++ : want - 1;
        while (t > 0 && contrib[q] > contrib[top[t - 1]]) {
            top[t] = top[t - 1];
            t--;
        }
        top[t] = (int)q;
    }
    return got;
}

int cmd_recommend(cli_args *a) {
    const char *user = cli_opt_get(a, "user"), *history = cli_opt_get(a, "history");
    if (!user == !history) return cli_usage_error(a, "give --user ID or --history IDS (one of them)");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    cli_filter f;
    if ((code = filter_parse(a, &f))) return code;
    cli_served sv;
    if ((code = cli_served_open(a, cli_opt_get(a, "model"), &sv))) return code;
    const rec_model *m = sv.m;
    tailor_error err = {0};
    hist_ctx h = {.sv = &sv};
    int32_t uidx = -1;
    if (user) {
        for (int32_t u = 0; u < m->n_users; u++)
            if (!strcmp(m->user_ext[u], user)) uidx = u;
        if (store_user_history(sv.s, user, hist_add, &h, &err)) {
            if (err.code == TAILOR_ENOTFOUND) snprintf(err.msg, sizeof err.msg, "user '%s' not found in %s", user, a->db_path);
            code = cli_fail(&err);
        }
    } else {
        code = history_parse(a, history, &h);
    }
    unsigned char *allowed = NULL;
    if (!code && f.n) {
        allowed = xcalloc((size_t)m->n_items + 1, 1);
        code = filter_apply(a, sv.s, &f, &sv.items, allowed);
    }
    if (code) {
        free(allowed);
        vec_free(&h.items);
        vec_free(&h.vals);
        cli_served_close(&sv);
        return code;
    }
    rec_topk_params tp = {.k = (int)k, .exclude_history = true, .filter = allowed ? filter_allows : NULL,
                          .filter_ctx = allowed};
    int32_t *items = xmalloc((size_t)k * sizeof *items);
    float *scores = xmalloc((size_t)k * sizeof *scores);
    /* Nothing the model knows about this user: what is popular, said so. */
    bool fallback = uidx < 0 && h.items.len == 0;
    int got;
    rec_explain_style style = m->kind->explain_style;
    if (fallback && m->popularity) {
        float *pop = xmalloc(((size_t)m->n_items + 1) * sizeof *pop);
        for (int32_t i = 0; i < m->n_items; i++)
            pop[i] = allowed && !allowed[i] ? -INFINITY : (float)m->popularity[i];
        got = rec_topk_scores(pop, m->n_items, (int)k, items, scores);
        free(pop);
        style = REC_EXPLAIN_POPULARITY;
    } else {
        got = rec_topk(m, uidx, h.items.data, h.vals.data, h.items.len, tp, items, scores, NULL);
    }
    bool json = cli_flag(a, "json"), explain = cli_flag(a, "explain");
    char label[160];
    model_label(&sv, label, sizeof label);
    float *contrib = xmalloc((h.items.len + 1) * sizeof *contrib);
    sb out;
    sb_init(&out);
    if (json) {
        sb_puts(&out, "{\"model\":");
        sb_json_str(&out, sv.row.name, strlen(sv.row.name));
        sb_puts(&out, ",\"kind\":");
        sb_json_str(&out, m->kind->name, strlen(m->kind->name));
        if (fallback) sb_printf(&out, ",\"fallback\":\"%s\"", m->popularity ? "popularity" : "none");
        sb_puts(&out, ",\"items\":[");
    } else {
        if (user) printf("%s for user %s (%zu items in history", label, user, h.items.len);
        else printf("%s for a history of %zu items (", label, h.items.len);
        if (h.unknown) printf("%s%lld not known to the model", user || h.items.len ? "; " : "", (long long)h.unknown);
        if (user && uidx < 0 && h.items.len) printf("; not in the training data: folded in");
        printf("):\n");
        if (fallback)
            printf("%s\n", m->popularity ? "  the model knows none of this history: the most popular items instead"
                                         : "  the model knows none of this history, and its file (from an older tailor)"
                                           " has no popularity to fall back on: retrain it");
    }
    static const char *const styles[] = {"none", "history", "attention", "popularity"};
    for (int r = 0; r < got; r++) {
        const char *ext = m->item_ext[items[r]];
        char *title = item_title(sv.s, ext);
        int top[3], ntop = 0;
        if (explain && (style == REC_EXPLAIN_HISTORY || style == REC_EXPLAIN_ATTENTION) && m->kind->explain &&
            h.items.len) {
            m->kind->explain(m, uidx, h.items.data, h.vals.data, h.items.len, items[r], contrib);
            ntop = top_contrib(contrib, h.items.len, top, 3);
        }
        if (json) {
            sb_printf(&out, "%s{\"rank\":%d,\"item\":", r ? "," : "", r + 1);
            sb_json_str(&out, ext, strlen(ext));
            sb_puts(&out, ",\"title\":");
            sb_json_str(&out, title, strlen(title));
            sb_printf(&out, ",\"score\":%.6g", scores[r]);
            if (explain) {
                sb_printf(&out, ",\"explanation\":\"%s\"", styles[style]);
                if (style == REC_EXPLAIN_POPULARITY)
                    sb_printf(&out, ",\"users\":%u", fallback ? m->popularity[items[r]] : (unsigned)scores[r]);
                sb_puts(&out, ",\"because\":[");
                for (int t = 0; t < ntop; t++) {
                    const char *he = m->item_ext[h.items.data[top[t]]];
                    char *ht = item_title(sv.s, he);
                    sb_printf(&out, "%s{\"item\":", t ? "," : "");
                    sb_json_str(&out, he, strlen(he));
                    sb_puts(&out, ",\"title\":");
                    sb_json_str(&out, ht, strlen(ht));
                    sb_printf(&out, ",\"weight\":%.6g}", contrib[top[t]]);
                    free(ht);
                }
                sb_putc(&out, ']');
            }
            sb_putc(&out, '}');
        } else {
            printf("%3d. %-50s %10.4f  [%s]\n", r + 1, title, scores[r], ext);
            if (explain && style == REC_EXPLAIN_POPULARITY) {
                /* pop's score is its (windowed) user count; elsewhere the
                 * training data's count. */
                unsigned users = !fallback ? (unsigned)scores[r] : m->popularity[items[r]];
                long window = (long)rec_param_i64(m, "window");
                if (!fallback && window > 0)
                    printf("       popular: %u users in the last %ld s of the training data\n", users, window);
                else printf("       popular: %u users in the training data\n", users);
            } else if (explain && style == REC_EXPLAIN_NONE) {
                if (r == 0) printf("       (%s gives no reasons for its recommendations)\n", m->kind->name);
            } else if (explain) {
                for (int t = 0; t < ntop; t++) {
                    char *ht = item_title(sv.s, m->item_ext[h.items.data[top[t]]]);
                    if (style == REC_EXPLAIN_ATTENTION) printf("       reads your taste from %s (attention %.2f)\n", ht, contrib[top[t]]);
                    else printf("       because of %s (%.3f)\n", ht, contrib[top[t]]);
                    free(ht);
                }
                if (!ntop) printf("       (no history item adds to this score)\n");
            }
        }
        free(title);
    }
    if (json) printf("%s]}\n", sb_str(&out));
    else if (got == 0) printf("(nothing to recommend: every item is excluded%s)\n", f.n ? " or filtered out" : "");
    sb_deinit(&out);
    free(contrib);
    free(items);
    free(scores);
    free(allowed);
    vec_free(&h.items);
    vec_free(&h.vals);
    cli_served_close(&sv);
    return EX_OK;
}

/* ---- similar ------------------------------------------------------------- */

/* Without --model: the active model if it has item similarity, else the
 * newest model that has (said on stderr). */
static int similar_model(const cli_args *a, cli_served *sv) {
    const char *name = cli_opt_get(a, "model");
    int code = cli_served_open(a, name, sv);
    if (code || sv->m->kind->similar) return code;
    char why[256];
    snprintf(why, sizeof why, "model '%s' (%s) has no item similarity: %s", sv->row.name, sv->m->kind->name,
             sv->m->kind->explain_style == REC_EXPLAIN_POPULARITY
                 ? "it ranks every item by how many users had it, the same list for everyone"
                 : "it learns no relation between items");
    if (name) {
        fprintf(stderr, "tailor: %s\n", why);
        cli_served_close(sv);
        return EX_USAGE;
    }
    store_model *ms;
    size_t n;
    const char *other = NULL;
    if (store_models_list(sv->s, &ms, &n, NULL) == 0) {
        for (size_t i = n; i-- > 0 && !other;) {
            const rec_kind *k = rec_kind_find(ms[i].kind);
            if (k && k->similar) other = ms[i].name;
        }
    }
    char *pick = other ? xstrdup(other) : NULL;
    store_models_free(ms, n);
    cli_served_close(sv);
    if (!pick) {
        fprintf(stderr, "tailor: %s; train itemknn, als, bpr, ease or sasrec for similar items\n", why);
        return EX_CONFIG;
    }
    if (!a->quiet) fprintf(stderr, "%s; using '%s'\n", why, pick);
    code = cli_served_open(a, pick, sv);
    free(pick);
    return code;
}

int cmd_similar(cli_args *a) {
    const char *item = cli_opt_get(a, "item");
    if (!item) return cli_usage_error(a, "give --item ID");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    cli_served sv;
    if ((code = similar_model(a, &sv))) return code;
    int64_t idx;
    if (!hmap_get(&sv.items, item, strlen(item), &idx)) {
        bool in_store = store_item_find(sv.s, item, &idx, NULL) == 0;
        fprintf(stderr, "tailor: item '%s' %s\n", item,
                in_store ? "is newer than the model (retrain it to include the item)" : "not found");
        cli_served_close(&sv);
        return EX_NOINPUT;
    }
    const rec_model *m = sv.m;
    float *scores = xmalloc((size_t)m->n_items * sizeof *scores);
    m->kind->similar(m, (int32_t)idx, scores);
    scores[idx] = -INFINITY;
    int32_t *items = xmalloc((size_t)k * sizeof *items);
    float *top = xmalloc((size_t)k * sizeof *top);
    int got = rec_topk_scores(scores, m->n_items, (int)k, items, top);
    char *t0 = item_title(sv.s, item), label[160];
    model_label(&sv, label, sizeof label);
    if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        sb_puts(&o, "{\"model\":");
        sb_json_str(&o, sv.row.name, strlen(sv.row.name));
        sb_puts(&o, ",\"item\":");
        sb_json_str(&o, item, strlen(item));
        sb_puts(&o, ",\"similar\":[");
        for (int r = 0; r < got; r++) {
            const char *ext = m->item_ext[items[r]];
            char *title = item_title(sv.s, ext);
            sb_printf(&o, "%s{\"item\":", r ? "," : "");
            sb_json_str(&o, ext, strlen(ext));
            sb_puts(&o, ",\"title\":");
            sb_json_str(&o, title, strlen(title));
            sb_printf(&o, ",\"score\":%.6g}", top[r]);
            free(title);
        }
        printf("%s]}\n", sb_str(&o));
        sb_deinit(&o);
    } else {
        printf("items like %s, by %s:\n", t0, label);
        for (int r = 0; r < got; r++) {
            const char *ext = m->item_ext[items[r]];
            char *title = item_title(sv.s, ext);
            printf("%3d. %-50s %8.4f  [%s]\n", r + 1, title, top[r], ext);
            free(title);
        }
    }
    free(t0);
    free(scores);
    free(items);
    free(top);
    cli_served_close(&sv);
    return EX_OK;
}

/* ---- search -------------------------------------------------------------- */

int cmd_search(cli_args *a) {
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    cli_filter f;
    if ((code = filter_parse(a, &f))) return code;
    sb q;
    sb_init(&q);
    for (int i = 0; i < a->npos; i++) sb_printf(&q, "%s%s", i ? " " : "", a->pos[i]);
    store *s = cli_open_store(a, true, &code);
    if (!s) {
        sb_deinit(&q);
        return code;
    }
    tailor_error err = {0};
    store_hit *hits;
    size_t n;
    if (store_search(s, sb_str(&q), &hits, &n, &err)) {
        sb_deinit(&q);
        store_close(s);
        return cli_fail(&err);
    }
    /* Hits are item rows; filters work on external ids. */
    store_item *it = xcalloc(n + 1, sizeof *it);
    hmap index;
    hmap_init(&index, n + 1);
    for (size_t i = 0; i < n; i++)
        if (store_item_get(s, hits[i].id, &it[i], NULL) == 0) hmap_put(&index, it[i].ext_id, strlen(it[i].ext_id), (int64_t)i);
    unsigned char *allowed = NULL;
    if (f.n) {
        allowed = xcalloc(n + 1, 1);
        code = filter_apply(a, s, &f, &index, allowed);
    }
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
        if (!it[i].ext_id || (allowed && !allowed[i])) continue;
        const char *title = it[i].title ? it[i].title : it[i].ext_id;
        shown++;
        if (json) {
            sb_printf(&o, "%s{\"rank\":%ld,\"item\":", shown > 1 ? "," : "", shown);
            sb_json_str(&o, it[i].ext_id, strlen(it[i].ext_id));
            sb_puts(&o, ",\"title\":");
            if (it[i].title) sb_json_str(&o, it[i].title, strlen(it[i].title));
            else sb_puts(&o, "null");
            sb_printf(&o, ",\"score\":%.4f}", hits[i].score);
        } else {
            printf("%3ld. %-50s %8.3f  [%s]\n", shown, title, hits[i].score, it[i].ext_id);
        }
    }
    if (!code) {
        if (json) printf("%s]}\n", sb_str(&o));
        else if (!shown) printf("no item matches '%s'%s\n", sb_str(&q), n ? " with these filters" : "");
    }
    sb_deinit(&o);
    for (size_t i = 0; i < n; i++) store_item_deinit(&it[i]);
    free(it);
    free(hits);
    free(allowed);
    hmap_deinit(&index);
    sb_deinit(&q);
    store_close(s);
    return code;
}
