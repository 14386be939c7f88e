/* cmd_rec.c — `tailor train | recommend | similar | eval | tune`: the
 * recommenders and the evaluation harness from the command line. Models
 * live in DB.models/NAME.tmod with a row in the models table. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "eval/eval.h"
#include "rec/rec.h"

static pool *cli_pool(const cli_args *a, int *code) {
    long t;
    if (!cli_opt_int(a, "threads", 0, 0, 256, &t)) {
        *code = cli_usage_error(a, "--threads must be a number from 1 to 256");
        return NULL;
    }
    return pool_new((int)t);
}

static int build_view(const cli_args *a, store *s, store_view *v) {
    store_view_params vp = store_view_default_params();
    vp.kind = cli_opt_get(a, "kind");
    const char *mv = cli_opt_get(a, "min-value");
    if (mv) {
        if (!parse_f64(mv, strlen(mv), &vp.min_value)) return cli_usage_error(a, "--min-value must be a number");
        vp.has_min_value = true;
    }
    tailor_error err = {0};
    if (store_view_build(s, vp, v, &err)) return cli_fail(&err);
    return 0;
}

static char *model_path(const char *db, const char *name) {
    sb p;
    sb_init(&p);
    sb_printf(&p, "%s.models", db);
    tailor_error err;
    mkdir_p(sb_str(&p), &err);
    sb_printf(&p, "/%s.tmod", name);
    return sb_take(&p);
}

static bool valid_name(const char *n) {
    if (!*n || strlen(n) > 64) return false;
    for (const char *c = n; *c; c++)
        if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
              (*c >= 'A' && *c <= 'Z')))
            return false;
    return n[0] != '.';
}

static void list_kinds(sb *out) {
    for (size_t i = 0; REC_KINDS[i]; i++) sb_printf(out, "%s%s", i ? ", " : "", REC_KINDS[i]->name);
}

/* Trains kind with params on the whole store and saves it as name. */
static int train_and_save(const cli_args *a, store *s, const rec_kind *kind, const rec_params *params,
                          const char *name, pool *tp) {
    store_view v;
    int code = build_view(a, s, &v);
    if (code) return code;
    tailor_error err = {0};
    rec_model *m;
    if (rec_model_new(kind, params, &m, &err)) {
        store_view_deinit(&v);
        return cli_fail(&err);
    }
    m->pool = tp;
    m->quiet = a->quiet;
    rec_data d = {v.n_users, v.n_items, v.indptr, v.indices, v.values, v.times};
    uint64_t t0 = timer_now_ns();
    int rc = rec_model_fit(m, &d, v.user_ext, v.item_ext, &err);
    double secs = timer_seconds_since(t0);
    char *path = model_path(a->db_path, name);
    if (!rc) rc = rec_model_save(m, path, &err);
    if (!rc) {
        sb pj, mj;
        sb_init(&pj);
        sb_init(&mj);
        rec_params_json(&m->params, &pj);
        sb_printf(&mj, "{\"train_s\":%.3f,\"users\":%d,\"items\":%d,\"interactions\":%lld}", secs, v.n_users,
                  v.n_items, (long long)v.nnz);
        store_model row = {.name = (char *)name, .kind = (char *)kind->name, .params = pj.buf,
                           .metrics = mj.buf, .file = path, .trained_at = (int64_t)time(NULL)};
        rc = store_model_put(s, &row, &err);
        if (!rc)
            printf("trained %s as '%s' on %d users, %d items, %lld interactions in %.2f s: %s\nparameters: %s\n",
                   kind->name, name, v.n_users, v.n_items, (long long)v.nnz, secs, path, sb_str(&pj));
        sb_deinit(&pj);
        sb_deinit(&mj);
    }
    free(path);
    rec_model_free(m);
    store_view_deinit(&v);
    return rc ? cli_fail(&err) : EX_OK;
}

static int parse_params(const cli_args *a, const char *opt, rec_params *p) {
    int n;
    const char *const *vals = cli_opt_all(a, opt, &n);
    for (int i = 0; i < n; i++)
        if (!rec_params_parse(p, vals[i])) return cli_usage_error(a, "--%s expects KEY=VALUE, not '%s'", opt, vals[i]);
    return 0;
}

int cmd_train(cli_args *a) {
    const rec_kind *kind = rec_kind_find(a->pos[0]);
    if (!kind) {
        sb k;
        sb_init(&k);
        list_kinds(&k);
        int rc = cli_usage_error(a, "no model '%s' (models: %s)", a->pos[0], sb_str(&k));
        sb_deinit(&k);
        return rc;
    }
    rec_params p = {0};
    int code = parse_params(a, "param", &p);
    if (code) return code;
    if (cli_opt_get(a, "seed")) rec_params_set(&p, "seed", cli_opt_get(a, "seed"));
    const char *name = cli_opt_get(a, "name") ? cli_opt_get(a, "name") : kind->name;
    if (!valid_name(name)) return cli_usage_error(a, "--name may use letters, digits, '-', '_' and '.'");
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    pool *tp = cli_pool(a, &code);
    if (!tp) {
        store_close(s);
        return code;
    }
    code = train_and_save(a, s, kind, &p, name, tp);
    pool_free(tp);
    store_close(s);
    return code;
}

/* ---- serving ----------------------------------------------------------- */

typedef struct served {
    store *s;
    rec_model *m;
    hmap items; /* item ext -> model index */
} served;

static int open_served(const cli_args *a, served *sv) {
    memset(sv, 0, sizeof *sv);
    int code;
    sv->s = cli_open_store(a, true, &code);
    if (!sv->s) return code;
    tailor_error err = {0};
    store_model row;
    const char *name = cli_opt_get(a, "model");
    int rc = name ? store_model_get(sv->s, name, &row, &err) : store_model_latest(sv->s, &row, &err);
    if (!rc) rc = rec_model_load(row.file, &sv->m, &err);
    if (!name && !rc && !a->quiet) fprintf(stderr, "model: %s (%s)\n", row.name, row.kind);
    store_model_deinit(&row);
    if (rc) {
        store_close(sv->s);
        return cli_fail(&err);
    }
    hmap_init(&sv->items, (size_t)sv->m->n_items);
    for (int32_t i = 0; i < sv->m->n_items; i++) hmap_put(&sv->items, sv->m->item_ext[i], strlen(sv->m->item_ext[i]), i);
    return 0;
}

static void close_served(served *sv) {
    rec_model_free(sv->m);
    hmap_deinit(&sv->items);
    store_close(sv->s);
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

typedef struct hist_ctx {
    served *sv;
    VEC(int32_t) items;
    VEC(float) vals;
} hist_ctx;

static int hist_add(void *ctx, const char *item_ext, double value, int64_t ts) {
    hist_ctx *h = ctx;
    int64_t i;
    if (!hmap_get(&h->sv->items, item_ext, strlen(item_ext), &i)) return 0; /* new since training */
    vec_push(&h->items, (int32_t)i);
    vec_push(&h->vals, isnan(value) ? 1.0f : (float)value);
    return 0;
}

/* Attribute filters: KEY=VALUE pairs an item must all match. */
typedef struct filter_ctx {
    served *sv;
    int n;
    char keys[8][64], vals[8][128];
    unsigned char *allowed; /* per model item */
} filter_ctx;

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

static int filter_item(void *ctx, const char *ext, const char *title, const char *attributes) {
    filter_ctx *f = ctx;
    int64_t i;
    if (!hmap_get(&f->sv->items, ext, strlen(ext), &i)) return 0;
    cJSON *o = attributes ? cJSON_Parse(attributes) : NULL;
    bool ok = true;
    for (int k = 0; k < f->n && ok; k++) ok = o && json_matches(cJSON_GetObjectItemCaseSensitive(o, f->keys[k]), f->vals[k]);
    cJSON_Delete(o);
    f->allowed[i] = ok;
    return 0;
}

static bool filter_allows(void *ctx, int32_t item) { return ((filter_ctx *)ctx)->allowed[item]; }

static int parse_k(const cli_args *a, long *k) {
    if (!cli_opt_int(a, "k", 10, 1, 100000, k)) return cli_usage_error(a, "-k must be a number from 1 to 100000");
    return 0;
}

int cmd_recommend(cli_args *a) {
    const char *user = cli_opt_get(a, "user"), *history = cli_opt_get(a, "history");
    if (!user == !history) return cli_usage_error(a, "give --user ID or --history IDS (one of them)");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    int nf;
    const char *const *filters = cli_opt_all(a, "filter", &nf);
    if (nf > 8) return cli_usage_error(a, "at most 8 --filter");
    served sv;
    if ((code = open_served(a, &sv))) return code;
    tailor_error err = {0};
    hist_ctx h = {.sv = &sv};
    int32_t uidx = -1;
    if (user) {
        for (int32_t u = 0; u < sv.m->n_users; u++)
            if (!strcmp(sv.m->user_ext[u], user)) uidx = u;
        int rc = store_user_history(sv.s, user, hist_add, &h, &err);
        if (rc) {
            close_served(&sv);
            return cli_fail(&err);
        }
    } else {
        char *copy = xstrdup(history);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
            int64_t i;
            if (!hmap_get(&sv.items, tok, strlen(tok), &i)) {
                fprintf(stderr, "tailor: item '%s' is not known to the model\n", tok);
                free(copy);
                vec_free(&h.items);
                vec_free(&h.vals);
                close_served(&sv);
                return EX_DATAERR;
            }
            vec_push(&h.items, (int32_t)i);
            vec_push(&h.vals, 1.0f);
        }
        free(copy);
    }
    filter_ctx fc = {.sv = &sv, .n = nf};
    rec_topk_params tp = {.k = (int)k, .exclude_history = true};
    if (nf) {
        for (int i = 0; i < nf; i++) {
            const char *eq = strchr(filters[i], '=');
            if (!eq || eq == filters[i] || eq - filters[i] >= 64 || strlen(eq + 1) >= 128) {
                vec_free(&h.items);
                vec_free(&h.vals);
                close_served(&sv);
                return cli_usage_error(a, "--filter expects KEY=VALUE, not '%s'", filters[i]);
            }
            snprintf(fc.keys[i], sizeof fc.keys[i], "%.*s", (int)(eq - filters[i]), filters[i]);
            snprintf(fc.vals[i], sizeof fc.vals[i], "%s", eq + 1);
        }
        fc.allowed = xcalloc((size_t)sv.m->n_items + 1, 1);
        store_items_each(sv.s, filter_item, &fc, &err);
        tp.filter = filter_allows;
        tp.filter_ctx = &fc;
    }
    int32_t *items = xmalloc((size_t)k * sizeof *items);
    float *scores = xmalloc((size_t)k * sizeof *scores);
    int got = rec_topk(sv.m, uidx, h.items.data, h.vals.data, h.items.len, tp, items, scores, NULL);
    bool json = cli_flag(a, "json"), explain = cli_flag(a, "explain");
    float *contrib = xmalloc((h.items.len + 1) * sizeof *contrib);
    sb out;
    sb_init(&out);
    if (json) sb_puts(&out, "{\"model\":"), sb_json_str(&out, sv.m->kind->name, strlen(sv.m->kind->name)), sb_puts(&out, ",\"items\":[");
    else if (user) printf("%s for user %s (%zu items in history%s):\n", sv.m->kind->name, user, h.items.len,
                          uidx < 0 ? "; not in the training data: folded in" : "");
    for (int r = 0; r < got; r++) {
        const char *ext = sv.m->item_ext[items[r]];
        char *title = item_title(sv.s, ext);
        /* Signals: the history items that contributed most. */
        int top[3] = {-1, -1, -1};
        if (explain && sv.m->kind->explain && h.items.len) {
            sv.m->kind->explain(sv.m, uidx, h.items.data, h.vals.data, h.items.len, items[r], contrib);
            for (size_t q = 0; q < h.items.len; q++) {
                if (!(contrib[q] > 0)) continue;
                for (int t = 0; t < 3; t++)
                    if (top[t] < 0 || contrib[q] > contrib[top[t]]) {
                        for (int z = 2; z > t; z--) top[z] = top[z - 1];
                        top[t] = (int)q;
                        break;
                    }
            }
        }
        if (json) {
            sb_printf(&out, "%s{\"rank\":%d,\"item\":", r ? "," : "", r + 1);
            sb_json_str(&out, ext, strlen(ext));
            sb_puts(&out, ",\"title\":");
            sb_json_str(&out, title, strlen(title));
            sb_printf(&out, ",\"score\":%.6g", scores[r]);
            if (explain) {
                sb_puts(&out, ",\"because\":[");
                for (int t = 0; t < 3 && top[t] >= 0; t++) {
                    const char *he = sv.m->item_ext[h.items.data[top[t]]];
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
            if (explain) {
                if (!sv.m->kind->explain) printf("       popular: %.0f users in the training data\n", scores[r]);
                for (int t = 0; t < 3 && top[t] >= 0; t++) {
                    char *ht = item_title(sv.s, sv.m->item_ext[h.items.data[top[t]]]);
                    printf("       because of %s (%.3f)\n", ht, contrib[top[t]]);
                    free(ht);
                }
            }
        }
        free(title);
    }
    if (json) printf("%s]}\n", sb_str(&out));
    else if (got == 0) printf("(nothing to recommend: every item is excluded)\n");
    sb_deinit(&out);
    free(contrib);
    free(items);
    free(scores);
    free(fc.allowed);
    vec_free(&h.items);
    vec_free(&h.vals);
    close_served(&sv);
    return EX_OK;
}

int cmd_similar(cli_args *a) {
    const char *item = cli_opt_get(a, "item");
    if (!item) return cli_usage_error(a, "give --item ID");
    long k;
    int code = parse_k(a, &k);
    if (code) return code;
    served sv;
    if ((code = open_served(a, &sv))) return code;
    int64_t idx;
    if (!sv.m->kind->similar) {
        fprintf(stderr, "tailor: model %s has no item similarity; use itemknn, als, bpr or ease\n", sv.m->kind->name);
        close_served(&sv);
        return EX_USAGE;
    }
    if (!hmap_get(&sv.items, item, strlen(item), &idx)) {
        fprintf(stderr, "tailor: item '%s' is not known to the model\n", item);
        close_served(&sv);
        return EX_DATAERR;
    }
    float *scores = xmalloc((size_t)sv.m->n_items * sizeof *scores);
    sv.m->kind->similar(sv.m, (int32_t)idx, scores);
    scores[idx] = -INFINITY;
    int32_t *items = xmalloc((size_t)k * sizeof *items);
    float *top = xmalloc((size_t)k * sizeof *top);
    int got = rec_topk_scores(scores, sv.m->n_items, (int)k, items, top);
    char *t0 = item_title(sv.s, item);
    bool json = cli_flag(a, "json");
    if (json) {
        sb o;
        sb_init(&o);
        sb_puts(&o, "{\"item\":");
        sb_json_str(&o, item, strlen(item));
        sb_puts(&o, ",\"similar\":[");
        for (int r = 0; r < got; r++) {
            const char *ext = sv.m->item_ext[items[r]];
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
        printf("items like %s (%s):\n", t0, sv.m->kind->name);
        for (int r = 0; r < got; r++) {
            const char *ext = sv.m->item_ext[items[r]];
            char *title = item_title(sv.s, ext);
            printf("%3d. %-50s %8.4f  [%s]\n", r + 1, title, top[r], ext);
            free(title);
        }
    }
    free(t0);
    free(scores);
    free(items);
    free(top);
    close_served(&sv);
    return EX_OK;
}

/* ---- evaluation -------------------------------------------------------- */

static int parse_eval_common(const cli_args *a, eval_split_params *sp, eval_protocol *proto);

/* --protocol full,sampled: the protocols to score each trained model under. */
static int parse_protocols(const cli_args *a, eval_protocol *protos, int *n) {
    const char *v = cli_opt_get(a, "protocol");
    eval_split_params sp;
    int code = parse_eval_common(a, &sp, &protos[0]);
    if (code) return code;
    *n = 1;
    if (!v || !strchr(v, ',')) return 0;
    if (strcmp(v, "full,sampled") && strcmp(v, "sampled,full"))
        return cli_usage_error(a, "--protocol must be full, sampled, or full,sampled");
    protos[1] = protos[0];
    protos[0].kind = v[0] == 'f' ? EVAL_FULL : EVAL_SAMPLED;
    protos[1].kind = v[0] == 'f' ? EVAL_SAMPLED : EVAL_FULL;
    *n = 2;
    return 0;
}

static int parse_eval_common(const cli_args *a, eval_split_params *sp, eval_protocol *proto) {
    *sp = eval_split_default_params();
    memset(proto, 0, sizeof *proto);
    proto->negatives = 100;
    const char *v;
    if ((v = cli_opt_get(a, "split")) && !eval_split_kind_parse(v, &sp->kind))
        return cli_usage_error(a, "--split must be loo, temporal or random");
    if ((v = cli_opt_get(a, "ratio")) && (!parse_f64(v, strlen(v), &sp->ratio) || sp->ratio <= 0 || sp->ratio >= 1))
        return cli_usage_error(a, "--ratio must be between 0 and 1");
    long x;
    if (!cli_opt_int(a, "kcore", 0, 0, 1000000, &x)) return cli_usage_error(a, "--kcore must be a number");
    sp->kcore = (int)x;
    if (!cli_opt_int(a, "seed", 42, 0, INT64_MAX, &x)) return cli_usage_error(a, "--seed must be a number");
    sp->seed = proto->seed = (uint64_t)x;
    if ((v = cli_opt_get(a, "protocol"))) {
        if (!strcmp(v, "sampled")) proto->kind = EVAL_SAMPLED;
        else if (!strncmp(v, "sampled,", 8) || !strncmp(v, "full,", 5)) proto->kind = EVAL_SAMPLED; /* a list: see parse_protocols */
        else if (strcmp(v, "full")) return cli_usage_error(a, "--protocol must be full, sampled, or full,sampled");
    }
    if (!cli_opt_int(a, "negatives", 100, 1, 1000000, &x)) return cli_usage_error(a, "--negatives must be a positive number");
    proto->negatives = (int)x;
    proto->pop_negatives = cli_flag(a, "pop-negatives");
    proto->neg_file = cli_opt_get(a, "neg-file");
    if ((proto->neg_file || proto->pop_negatives || cli_opt_get(a, "negatives")) && proto->kind != EVAL_SAMPLED)
        return cli_usage_error(a, "--negatives, --pop-negatives and --neg-file need --protocol sampled");
    return 0;
}

static int parse_ks(const cli_args *a, int *ks, int *nk) {
    const char *v = cli_opt_get(a, "k");
    *nk = 0;
    if (!v) {
        ks[(*nk)++] = 10;
        return 0;
    }
    char *copy = xstrdup(v);
    int rc = 0;
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
        int64_t k;
        if (*nk == EVAL_MAX_K || !parse_i64(t, strlen(t), &k) || k < 1 || k > 10000) {
            rc = cli_usage_error(a, "-k takes up to %d cut-offs from 1 to 10000, e.g. 10,20", EVAL_MAX_K);
            break;
        }
        ks[(*nk)++] = (int)k;
    }
    free(copy);
    return rc;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Opens the store and builds the evaluation split of its data. Returns 0
 * or an exit code (the store is closed then). */
static int open_split(const cli_args *a, eval_split_params sp, store **s, eval_split *split) {
    int code;
    *s = cli_open_store(a, true, &code);
    if (!*s) return code;
    store_view v;
    if ((code = build_view(a, *s, &v))) {
        store_close(*s);
        return code;
    }
    tailor_error err = {0};
    int rc = eval_split_build(&v, sp, split, &err);
    store_view_deinit(&v);
    if (rc) {
        store_close(*s);
        return cli_fail(&err);
    }
    return 0;
}

/* "out.json" -> "out.sampled.json" for the second protocol's outputs. */
static char *protocol_path(const char *path, const eval_protocol *p, int np, bool dir) {
    sb o;
    sb_init(&o);
    const char *tag = p->kind == EVAL_FULL ? "full" : "sampled";
    if (np == 1) sb_puts(&o, path);
    else if (dir) sb_printf(&o, "%s/%s", path, tag);
    else {
        const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
        if (dot && (!slash || dot > slash)) sb_printf(&o, "%.*s.%s%s", (int)(dot - path), path, tag, dot);
        else sb_printf(&o, "%s.%s", path, tag);
    }
    return sb_take(&o);
}

int cmd_eval(cli_args *a) {
    eval_split_params sp;
    eval_protocol protos[2];
    int np;
    int code = parse_eval_common(a, &sp, &protos[0]);
    if (code) return code;
    if ((code = parse_protocols(a, protos, &np))) return code;
    int ks[EVAL_MAX_K], nk;
    if ((code = parse_ks(a, ks, &nk))) return code;
    const char *models = cli_opt_get(a, "models") ? cli_opt_get(a, "models") : "pop,itemknn,als,bpr,ease";
    /* Models and their parameters, checked before any work. */
    const rec_kind *kinds[16];
    rec_params params[16];
    int nm = 0;
    char *copy = xstrdup(models);
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
        const rec_kind *k = rec_kind_find(t);
        if (!k || nm == 16) {
            sb l;
            sb_init(&l);
            list_kinds(&l);
            code = cli_usage_error(a, "no model '%s' (models: %s)", t, sb_str(&l));
            sb_deinit(&l);
            free(copy);
            return code;
        }
        kinds[nm] = k;
        memset(&params[nm], 0, sizeof params[nm]);
        rec_params_set(&params[nm], "seed", cli_opt_get(a, "seed") ? cli_opt_get(a, "seed") : "42");
        nm++;
    }
    free(copy);
    int npv;
    const char *const *pv = cli_opt_all(a, "param", &npv);
    for (int i = 0; i < npv; i++) {
        const char *dot = strchr(pv[i], '.');
        bool used = false;
        for (int m = 0; dot && m < nm; m++)
            if ((size_t)(dot - pv[i]) == strlen(kinds[m]->name) && !strncmp(pv[i], kinds[m]->name, (size_t)(dot - pv[i]))) {
                if (!rec_params_parse(&params[m], dot + 1)) return cli_usage_error(a, "--param expects MODEL.KEY=VALUE, not '%s'", pv[i]);
                used = true;
            }
        if (!used) return cli_usage_error(a, "--param '%s' names no model of --models (use MODEL.KEY=VALUE)", pv[i]);
    }
    store *s;
    eval_split split;
    if ((code = open_split(a, sp, &s, &split))) return code;
    tailor_error err = {0};
    if (cli_opt_get(a, "export-split") && eval_split_export(&split, cli_opt_get(a, "export-split"), &err)) {
        eval_split_free(&split);
        store_close(s);
        return cli_fail(&err);
    }
    pool *tp = cli_pool(a, &code);
    eval_result *res = xcalloc((size_t)nm * 2, sizeof *res); /* [protocol][model] */
    int done = 0, rc = 0;
    for (int m = 0; m < nm && !rc; m++) {
        rec_model *model;
        if ((rc = rec_model_new(kinds[m], &params[m], &model, &err))) break;
        model->quiet = a->quiet || !progress_enabled();
        if (!a->quiet) fprintf(stderr, "evaluating %s...\n", kinds[m]->name);
        for (int pi = 0; pi < np && !rc; pi++) {
            eval_run_params rp = {.ks = ks, .nk = nk, .validation = cli_flag(a, "validation"), .pool = tp,
                                  .trained = pi > 0};
            rc = eval_model(model, &split, &protos[pi], rp, &res[pi * nm + m], &err);
            if (pi > 0) res[pi * nm + m].train_s = res[m].train_s; /* one training serves both */
        }
        rec_model_free(model);
        if (!rc) done++;
    }
    const char *dataset = cli_opt_get(a, "name") ? cli_opt_get(a, "name") : base_name(a->db_path);
    for (int pi = 0; pi < np && !rc; pi++) {
        eval_report_info info = {dataset, &split, &sp, &protos[pi]};
        eval_result *r = res + pi * nm;
        if (pi) printf("\n");
        eval_print_table(stdout, &info, r, done);
        if (cli_opt_get(a, "json")) {
            sb j;
            sb_init(&j);
            eval_write_json(&j, &info, r, done);
            char *path = protocol_path(cli_opt_get(a, "json"), &protos[pi], np, false);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(j.buf, 1, j.len, f) != j.len) rc = err_set(&err, TAILOR_EIO, "cannot write %s", path);
            if (f) fclose(f);
            free(path);
            sb_deinit(&j);
        }
        if (!rc && cli_opt_get(a, "report")) {
            char *dir = protocol_path(cli_opt_get(a, "report"), &protos[pi], np, true);
            rc = eval_write_report(dir, &info, r, done, &err);
            free(dir);
        }
    }
    for (int m = 0; m < 2 * nm; m++) eval_result_free(&res[m]);
    free(res);
    pool_free(tp);
    eval_split_free(&split);
    store_close(s);
    return rc ? cli_fail(&err) : EX_OK;
}

/* ---- tuning ------------------------------------------------------------ */

int cmd_tune(cli_args *a) {
    const rec_kind *kind = rec_kind_find(a->pos[0]);
    if (!kind) return cli_usage_error(a, "no model '%s'", a->pos[0]);
    eval_split_params sp;
    eval_protocol proto;
    int code = parse_eval_common(a, &sp, &proto);
    if (code) return code;
    long k;
    if ((code = parse_k(a, &k))) return code;
    const char *metric = cli_opt_get(a, "metric") ? cli_opt_get(a, "metric") : "ndcg";
    int mi = -1;
    for (int i = 0; i < EVAL_M_PER_USER; i++)
        if (!strcmp(eval_metric_names[i], metric)) mi = i;
    if (mi < 0) return cli_usage_error(a, "--metric must be one of hr, recall, precision, ndcg, mrr, map");
    rec_params fixed = {0};
    if ((code = parse_params(a, "param", &fixed))) return code;
    rec_params_set(&fixed, "seed", cli_opt_get(a, "seed") ? cli_opt_get(a, "seed") : "42");
    /* The grid: names and value lists. */
    int ng;
    const char *const *gv = cli_opt_all(a, "grid", &ng);
    if (ng == 0) return cli_usage_error(a, "give at least one --grid KEY=V1,V2,...");
    char gnames[8][32], gvals[8][16][64];
    int gcount[8];
    if (ng > 8) return cli_usage_error(a, "at most 8 --grid parameters");
    size_t combos = 1;
    for (int g = 0; g < ng; g++) {
        const char *eq = strchr(gv[g], '=');
        if (!eq || eq == gv[g] || eq - gv[g] >= 32) return cli_usage_error(a, "--grid expects KEY=V1,V2,..., not '%s'", gv[g]);
        snprintf(gnames[g], sizeof gnames[g], "%.*s", (int)(eq - gv[g]), gv[g]);
        char *copy = xstrdup(eq + 1);
        gcount[g] = 0;
        for (char *t = strtok(copy, ","); t; t = strtok(NULL, ","))
            if (gcount[g] < 16 && strlen(t) < 64) snprintf(gvals[g][gcount[g]++], 64, "%s", t);
        free(copy);
        if (!gcount[g]) return cli_usage_error(a, "--grid %s has no values", gnames[g]);
        combos *= (size_t)gcount[g];
    }
    store *s;
    eval_split split;
    if ((code = open_split(a, sp, &s, &split))) return code;
    tailor_error err = {0};
    int rc = 0;
    pool *tp = cli_pool(a, &code);
    sb desc;
    sb_init(&desc);
    eval_protocol_describe(&proto, &desc);
    printf("tuning %s on the validation split (%s), %s, %s@%ld\n", kind->name, eval_split_kind_name(sp.kind),
           sb_str(&desc), metric, k);
    sb_deinit(&desc);
    double best = -1;
    rec_params best_p = fixed;
    int ks[1] = {(int)k};
    for (size_t c = 0; !rc && c < combos; c++) {
        rec_params p = fixed;
        size_t rest = c;
        sb label;
        sb_init(&label);
        for (int g = 0; g < ng; g++) {
            const char *val = gvals[g][rest % (size_t)gcount[g]];
            rest /= (size_t)gcount[g];
            rec_params_set(&p, gnames[g], val);
            sb_printf(&label, "%s%s=%s", g ? " " : "", gnames[g], val);
        }
        rec_model *m;
        if ((rc = rec_model_new(kind, &p, &m, &err))) {
            sb_deinit(&label);
            break;
        }
        m->quiet = true;
        eval_result r;
        eval_run_params rp = {.ks = ks, .nk = 1, .validation = true, .pool = tp};
        rc = eval_model(m, &split, &proto, rp, &r, &err);
        if (!rc) {
            const eval_stat *st = &r.stats[0][mi];
            printf("  %-40s %s@%ld %.4f [%.4f, %.4f]  (train %.2f s)\n", sb_str(&label), metric, k, st->mean, st->lo,
                   st->hi, r.train_s);
            if (st->mean > best) best = st->mean, best_p = p;
            eval_result_free(&r);
        }
        rec_model_free(m);
        sb_deinit(&label);
    }
    eval_split_free(&split);
    if (!rc) {
        sb bp;
        sb_init(&bp);
        rec_params_json(&best_p, &bp);
        printf("best on validation: %s (%s@%ld %.4f)\n", sb_str(&bp), metric, k, best);
        sb_deinit(&bp);
        const char *save = cli_opt_get(a, "save");
        if (save) {
            if (!valid_name(save)) rc = err_set(&err, TAILOR_EINVAL, "--save may use letters, digits, '-', '_' and '.'");
            else code = train_and_save(a, s, kind, &best_p, save, tp);
        }
    }
    pool_free(tp);
    store_close(s);
    return rc ? cli_fail(&err) : code;
}
