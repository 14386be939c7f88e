/* cmd_rec.c — `tailor train | eval | tune`: training recommenders (with
 * their parameters chosen by hand, by a grid, or by --auto) and the
 * evaluation harness from the command line. Models live in
 * DB.models/NAME.tmod beside the database, with a row in the models table. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cli/cli.h"
#include "know/know.h"
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

static void mib(char *buf, size_t n, double bytes) {
    if (bytes >= 1024.0 * 1048576) snprintf(buf, n, "%.1f GiB", bytes / (1024.0 * 1048576));
    else snprintf(buf, n, "%.0f MiB", bytes / 1048576 < 1 ? 1 : bytes / 1048576);
}

/* Says what a large fit will need, and refuses when the model file cannot
 * fit on the disk (before hours of work, not after). */
static int check_footprint(const cli_args *a, const rec_model *m, const store_view *v, const char *dir) {
    if (!m->kind->footprint) return 0;
    double train_b, file_b;
    m->kind->footprint(m, v->n_users, v->n_items, v->nnz, &train_b, &file_b);
    struct statvfs fs;
    if (statvfs(dir, &fs) == 0 && (double)fs.f_bavail * (double)fs.f_frsize < file_b) {
        char need[32], have[32];
        mib(need, sizeof need, file_b);
        mib(have, sizeof have, (double)fs.f_bavail * (double)fs.f_frsize);
        fprintf(stderr, "tailor: %s: the model file will take about %s, but %s has %s free\n", m->kind->name, need,
                dir, have);
        return EX_CANTCREAT;
    }
    if (!a->quiet && (train_b >= 64.0 * 1048576 || file_b >= 64.0 * 1048576)) {
        char t[32], f[32];
        mib(t, sizeof t, train_b);
        mib(f, sizeof f, file_b);
        fprintf(stderr, "%s on %d users and %d items: about %s of memory while training, a %s model file\n",
                m->kind->name, v->n_users, v->n_items, t, f);
    }
    return 0;
}

/* Trains kind with params on the whole store and saves it as name;
 * extra (may be NULL) is a JSON member list added to the training record. */
static int train_and_save(const cli_args *a, store *s, const rec_kind *kind, const rec_params *params,
                          const char *name, pool *tp, const char *extra) {
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
    char *rel = store_model_relpath(s, name), *path = store_path_resolve(s, rel);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = 0;
    int rc = mkdir_p(dir, &err);
    if (!rc && (code = check_footprint(a, m, &v, dir))) rc = -1;
    double secs = 0;
    if (!rc) {
        kg_rec_graph kg;
        rc = kg_rec_graph_load(s, kind, v.item_ext, v.n_items, &kg, &err);
        rec_data d = {v.n_users, v.n_items, v.indptr, v.indices, v.values, v.times, kg.g.n_entities ? &kg.g : NULL};
        uint64_t t0 = timer_now_ns();
        if (!rc) rc = rec_model_fit(m, &d, v.user_ext, v.item_ext, &err);
        secs = timer_seconds_since(t0);
        kg_rec_graph_free(&kg);
    }
    if (!rc) rc = rec_model_save(m, path, &err);
    if (!rc) {
        sb pj, mj;
        sb_init(&pj);
        sb_init(&mj);
        rec_params_json(&m->params, &pj);
        /* What it was trained on: the data's size and the filters. */
        sb_printf(&mj, "{\"train_s\":%.3f,\"users\":%d,\"items\":%d,\"interactions\":%lld,\"events\":%lld,", secs,
                  v.n_users, v.n_items, (long long)v.nnz, (long long)v.n_events);
        sb_puts(&mj, "\"event_kind\":");
        if (cli_opt_get(a, "kind")) sb_json_str(&mj, cli_opt_get(a, "kind"), strlen(cli_opt_get(a, "kind")));
        else sb_puts(&mj, "null");
        sb_printf(&mj, ",\"min_value\":%s,\"seed\":%llu%s%s}",
                  cli_opt_get(a, "min-value") ? cli_opt_get(a, "min-value") : "null", (unsigned long long)m->seed,
                  extra ? "," : "", extra ? extra : "");
        store_model row = {.name = (char *)name, .kind = (char *)kind->name, .params = pj.buf,
                           .metrics = mj.buf, .file = rel, .trained_at = (int64_t)time(NULL)};
        rc = store_model_put(s, &row, !cli_flag(a, "no-activate"), &err);
        store_model now;
        if (!rc && store_model_active(s, &now, NULL) == 0) {
            printf("trained %s as '%s' on %d users, %d items, %lld interactions in %.2f s: %s%s\nparameters: %s\n",
                   kind->name, name, v.n_users, v.n_items, (long long)v.nnz, secs, path,
                   strcmp(now.name, name) ? "" : " (active)", sb_str(&pj));
            if (strcmp(now.name, name))
                printf("active model stays '%s' (tailor models activate %s switches)\n", now.name, name);
            store_model_deinit(&now);
        }
        sb_deinit(&pj);
        sb_deinit(&mj);
    }
    free(dir);
    free(path);
    free(rel);
    rec_model_free(m);
    store_view_deinit(&v);
    if (rc == -1) return code;
    return rc ? cli_fail(&err) : EX_OK;
}

static int parse_params(const cli_args *a, const char *opt, rec_params *p) {
    int n;
    const char *const *vals = cli_opt_all(a, opt, &n);
    for (int i = 0; i < n; i++)
        if (!rec_params_parse(p, vals[i])) return cli_usage_error(a, "--%s expects KEY=VALUE, not '%s'", opt, vals[i]);
    return 0;
}

/* ---- grids and tuning --------------------------------------------------- */

typedef struct rec_grid {
    int n;
    char names[8][32], vals[8][16][64];
    int count[8];
    size_t combos;
} rec_grid;

/* Adds "KEY=V1,V2,..." to the grid; false when malformed or full. */
static bool grid_add(rec_grid *g, const char *spec, size_t len) {
    const char *eq = memchr(spec, '=', len);
    if (g->n == 8 || !eq || eq == spec || eq - spec >= 32) return false;
    int i = g->n;
    snprintf(g->names[i], sizeof g->names[i], "%.*s", (int)(eq - spec), spec);
    g->count[i] = 0;
    const char *p = eq + 1, *end = spec + len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t l = (size_t)((c ? c : end) - p);
        if (l == 0 || l >= 64 || g->count[i] == 16) return false;
        snprintf(g->vals[i][g->count[i]++], 64, "%.*s", (int)l, p);
        p = c ? c + 1 : end;
    }
    if (!g->count[i]) return false;
    g->n++;
    g->combos = 1;
    for (int k = 0; k < g->n; k++) g->combos *= (size_t)g->count[k];
    return true;
}

static void grid_combo(const rec_grid *g, size_t c, rec_params *p, sb *label) {
    for (int k = 0; k < g->n; k++) {
        const char *val = g->vals[k][c % (size_t)g->count[k]];
        c /= (size_t)g->count[k];
        rec_params_set(p, g->names[k], val);
        sb_printf(label, "%s%s=%s", k ? " " : "", g->names[k], val);
    }
}

typedef struct tune_result {
    rec_params best;
    double best_score;
    size_t tried;
    sb json; /* [{"params":{...},"score":x,"train_s":t}, ...] */
} tune_result;

/* Scores every combination of the grid (on top of fixed) on the split's
 * validation targets, printing a line for each, until the time budget
 * (seconds; 0 = none) would be passed by the next one. */
static int tune_grid(const rec_kind *kind, const rec_params *fixed, const rec_grid *g, const eval_split *split,
                     const eval_protocol *proto, int metric, int k, double budget, pool *tp, tune_result *out,
                     tailor_error *err) {
    out->best = *fixed;
    out->best_score = -1;
    out->tried = 0;
    sb_init(&out->json);
    sb_putc(&out->json, '[');
    uint64_t t0 = timer_now_ns();
    int ks[1] = {k}, rc = 0;
    for (size_t c = 0; !rc && c < g->combos; c++) {
        double spent = timer_seconds_since(t0);
        if (budget > 0 && c > 0 && spent + spent / (double)c > budget) {
            printf("  (time budget of %.0f s reached: %zu of %zu combinations tried)\n", budget, c, g->combos);
            break;
        }
        rec_params p = *fixed;
        sb label;
        sb_init(&label);
        grid_combo(g, c, &p, &label);
        rec_model *m;
        if ((rc = rec_model_new(kind, &p, &m, err))) {
            sb_deinit(&label);
            break;
        }
        m->quiet = true;
        eval_result r;
        eval_run_params rp = {.ks = ks, .nk = 1, .validation = true, .pool = tp};
        rc = eval_model(m, split, proto, rp, &r, err);
        if (!rc) {
            const eval_stat *st = &r.stats[0][metric];
            printf("  %-40s %s@%d %.4f [%.4f, %.4f]  (train %.2f s)\n", sb_str(&label), eval_metric_names[metric], k,
                   st->mean, st->lo, st->hi, r.train_s);
            fflush(stdout);
            sb pj;
            sb_init(&pj);
            rec_params_json(&p, &pj);
            sb_printf(&out->json, "%s{\"params\":%s,\"%s@%d\":%.6f,\"train_s\":%.3f}", c ? "," : "", sb_str(&pj),
                      eval_metric_names[metric], k, st->mean, r.train_s);
            sb_deinit(&pj);
            if (st->mean > out->best_score) out->best_score = st->mean, out->best = p;
            out->tried++;
            eval_result_free(&r);
        }
        rec_model_free(m);
        sb_deinit(&label);
    }
    sb_putc(&out->json, ']');
    return rc;
}

/* train --auto: the kind's own grid (minus the parameters given with
 * --param) tuned on a leave-one-out validation split of the same data. */
static int auto_params(const cli_args *a, store *s, const rec_kind *kind, rec_params *p, pool *tp, sb *extra) {
    double budget = 120;
    const char *b = cli_opt_get(a, "budget");
    if (b && (!parse_f64(b, strlen(b), &budget) || budget <= 0))
        return cli_usage_error(a, "--budget takes seconds, e.g. 300");
    rec_grid g = {0};
    for (const char *spec = kind->auto_grid; spec && *spec;) {
        size_t l = strcspn(spec, " ");
        char name[32];
        const char *eq = memchr(spec, '=', l);
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - spec) : 0, spec);
        if (!rec_params_get(p, name)) grid_add(&g, spec, l); /* given with --param: fixed */
        spec += l + (spec[l] == ' ');
    }
    if (!g.n) {
        printf("%s: nothing to tune%s; training with %s\n", kind->name,
               kind->auto_grid ? " (every tuned parameter was given)" : "", kind->auto_grid ? "them" : "its defaults");
        return 0;
    }
    eval_split_params sp = eval_split_default_params();
    if (cli_opt_get(a, "seed")) sp.seed = strtoull(cli_opt_get(a, "seed"), NULL, 10);
    eval_protocol proto = {.kind = EVAL_FULL, .seed = sp.seed, .negatives = 100};
    store_view v;
    int code = build_view(a, s, &v);
    if (code) return code;
    eval_split split;
    tailor_error err = {0};
    int rc = eval_split_build(&v, sp, &split, &err);
    store_view_deinit(&v);
    if (!rc && kind->needs_graph) rc = eval_split_graph(&split, s, &err);
    if (rc) return cli_fail(&err);
    printf("choosing %s's parameters: %zu combinations on the validation split (leave-one-out, each user's "
           "second-last item), full ranking, ndcg@10, time budget %.0f s\n",
           kind->name, g.combos, budget);
    tune_result tr;
    uint64_t t0 = timer_now_ns();
    rc = tune_grid(kind, p, &g, &split, &proto, EVAL_M_NDCG, 10, budget, tp, &tr, &err);
    eval_split_free(&split);
    if (!rc && tr.tried) {
        *p = tr.best;
        sb bp;
        sb_init(&bp);
        rec_params_json(&tr.best, &bp);
        printf("chosen: %s (validation ndcg@10 %.4f, %zu of %zu tried in %.0f s)\n", sb_str(&bp), tr.best_score,
               tr.tried, g.combos, timer_seconds_since(t0));
        sb_printf(extra, "\"auto\":{\"metric\":\"ndcg@10\",\"split\":\"loo validation\",\"budget_s\":%.0f,"
                         "\"best\":%s,\"tried\":%s}",
                  budget, sb_str(&bp), sb_str(&tr.json));
        sb_deinit(&bp);
    }
    sb_deinit(&tr.json);
    return rc ? cli_fail(&err) : 0;
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
    if (cli_opt_get(a, "budget") && !cli_flag(a, "auto")) return cli_usage_error(a, "--budget goes with --auto");
    /* Parameters are checked before any work. */
    tailor_error err = {0};
    rec_model *check;
    if (rec_model_new(kind, &p, &check, &err)) return cli_fail(&err);
    rec_model_free(check);
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    pool *tp = cli_pool(a, &code);
    if (!tp) {
        store_close(s);
        return code;
    }
    sb extra;
    sb_init(&extra);
    if (cli_flag(a, "auto")) code = auto_params(a, s, kind, &p, tp, &extra);
    if (!code) code = train_and_save(a, s, kind, &p, name, tp, extra.len ? sb_str(&extra) : NULL);
    sb_deinit(&extra);
    pool_free(tp);
    store_close(s);
    return code;
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
        else if (!strcmp(v, "ctr")) proto->kind = EVAL_CTR;
        else if (!strncmp(v, "sampled,", 8) || !strncmp(v, "full,", 5)) proto->kind = EVAL_SAMPLED; /* a list: see parse_protocols */
        else if (strcmp(v, "full") && strcmp(v, "ctr"))
            return cli_usage_error(a, "--protocol must be full, sampled, full,sampled or ctr");
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
static int open_split(const cli_args *a, eval_split_params sp, const rec_kind *kind, store **s, eval_split *split) {
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
    if (!rc && kind->needs_graph && (rc = eval_split_graph(split, *s, &err))) eval_split_free(split);
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

/* A model of --models: a saved model (its kind and parameters) when one
 * has the name, else a kind with its defaults. */
typedef struct eval_entry {
    char label[72];
    const rec_kind *kind;
    rec_params params;
    bool saved, overridden; /* a saved model; --param changed it */
} eval_entry;

static int params_from_json(const char *json, rec_params *p) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *it;
    bool ok = o != NULL;
    cJSON_ArrayForEach(it, o) {
        char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
        ok = ok && rec_params_set(p, it->string, v ? v : it->valuestring);
        free(v);
    }
    cJSON_Delete(o);
    return ok;
}

/* The evaluation record of a saved model: where and how, and the means. */
static void evaluation_json(sb *o, const eval_report_info *info, const eval_result *r) {
    sb d;
    sb_init(&d);
    eval_protocol_describe(info->protocol, &d);
    sb_printf(o, "{\"at\":%lld,\"dataset\":", (long long)time(NULL));
    sb_json_str(o, info->dataset, strlen(info->dataset));
    sb_printf(o, ",\"split\":\"%s\",\"protocol\":\"%s\",\"users\":%lld,\"description\":",
              eval_split_kind_name(info->split_params->kind), info->protocol->kind == EVAL_FULL ? "full" : "sampled",
              (long long)r->n_users);
    sb_clear(&d);
    sb_printf(&d, "%s split, ", eval_split_kind_name(info->split_params->kind));
    eval_protocol_describe(info->protocol, &d);
    sb_printf(&d, ", %lld users", (long long)r->n_users);
    sb_json_str(o, d.buf, d.len);
    sb_puts(o, ",\"metrics\":{");
    for (int ki = 0; ki < r->nk; ki++)
        for (int mi = 0; mi < EVAL_M_PER_USER; mi++)
            sb_printf(o, "%s\"%s@%d\":%.6f", ki || mi ? "," : "", eval_metric_names[mi], r->ks[ki],
                      r->stats[ki][mi].mean);
    sb_puts(o, "}}");
    sb_deinit(&d);
}

/* An untrained model of an evaluation entry, saying so on stderr. */
static int entry_model(const cli_args *a, const eval_entry *e, rec_model **out, tailor_error *err) {
    int rc = rec_model_new(e->kind, &e->params, out, err);
    if (rc) return rc;
    (*out)->quiet = a->quiet || !progress_enabled();
    if (!a->quiet) fprintf(stderr, "evaluating %s...\n", e->label);
    return 0;
}

/* eval --protocol ctr: the knowledge-graph papers' protocol (ctr.c). */
static int eval_ctr_cli(cli_args *a, store *s, const eval_entry *ent, int nm, uint64_t seed) {
    store_view v;
    int code = build_view(a, s, &v);
    if (code) return code;
    tailor_error err = {0};
    kg_graph g;
    eval_ctr_split split;
    int rc = kg_load(s, &g, &err);
    if (!rc) {
        rc = eval_ctr_split_build(&v, &g, seed, &split, &err);
        kg_deinit(&g);
    }
    store_view_deinit(&v);
    if (rc) return cli_fail(&err);
    pool *tp = cli_pool(a, &code);
    eval_ctr_result *res = xcalloc((size_t)nm + 1, sizeof *res);
    int done = 0;
    for (int m = 0; m < nm && !rc; m++) {
        rec_model *model;
        if ((rc = entry_model(a, &ent[m], &model, &err))) break;
        rc = eval_ctr_model(model, &split, tp, &res[m], &err);
        snprintf(res[m].model, sizeof res[m].model, "%s", ent[m].label);
        rec_model_free(model);
        if (!rc) done++;
    }
    const char *dataset = cli_opt_get(a, "name") ? cli_opt_get(a, "name") : base_name(a->files);
    if (!rc) eval_ctr_print(stdout, dataset, &split, seed, res, done);
    if (!rc && cli_opt_get(a, "json")) {
        sb j;
        sb_init(&j);
        eval_ctr_json(&j, dataset, &split, seed, res, done);
        FILE *f = fopen(cli_opt_get(a, "json"), "wb");
        if (!f || fwrite(j.buf, 1, j.len, f) != j.len) rc = err_set(&err, TAILOR_EIO, "cannot write %s", cli_opt_get(a, "json"));
        if (f) fclose(f);
        sb_deinit(&j);
    }
    free(res);
    pool_free(tp);
    eval_ctr_split_free(&split);
    return rc ? cli_fail(&err) : EX_OK;
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
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    /* Models and their parameters, every one checked before any work. */
    eval_entry ent[16];
    int nm = 0;
    char *copy = xstrdup(models);
    tailor_error err = {0};
    for (char *t = strtok(copy, ","); t && !code; t = strtok(NULL, ",")) {
        if (nm == 16) {
            code = cli_usage_error(a, "at most 16 models");
            break;
        }
        eval_entry *e = &ent[nm];
        memset(e, 0, sizeof *e);
        store_model row;
        if (store_model_get(s, t, &row, NULL) == 0) {
            e->kind = rec_kind_find(row.kind);
            e->saved = e->kind && params_from_json(row.params, &e->params);
            store_model_deinit(&row);
        }
        if (!e->saved) e->kind = rec_kind_find(t);
        if (!e->kind) {
            sb l;
            sb_init(&l);
            list_kinds(&l);
            code = cli_usage_error(a, "no model '%s': neither a saved model nor a kind (%s)", t, sb_str(&l));
            sb_deinit(&l);
            break;
        }
        snprintf(e->label, sizeof e->label, "%s", t);
        if (!e->saved || cli_opt_get(a, "seed"))
            rec_params_set(&e->params, "seed", cli_opt_get(a, "seed") ? cli_opt_get(a, "seed") : "42");
        nm++;
    }
    free(copy);
    int npv;
    const char *const *pv = cli_opt_all(a, "param", &npv);
    for (int i = 0; i < npv && !code; i++) {
        const char *dot = strchr(pv[i], '.');
        bool used = false;
        for (int m = 0; dot && m < nm && !code; m++)
            if ((size_t)(dot - pv[i]) == strlen(ent[m].label) && !strncmp(pv[i], ent[m].label, (size_t)(dot - pv[i]))) {
                if (!rec_params_parse(&ent[m].params, dot + 1))
                    code = cli_usage_error(a, "--param expects MODEL.KEY=VALUE, not '%s'", pv[i]);
                used = ent[m].overridden = true;
            }
        if (!used && !code)
            code = cli_usage_error(a, "--param '%s' names no model of --models (use MODEL.KEY=VALUE)", pv[i]);
    }
    for (int m = 0; m < nm && !code; m++) {
        rec_model *check;
        if (rec_model_new(ent[m].kind, &ent[m].params, &check, &err)) code = cli_fail(&err);
        else rec_model_free(check);
    }
    if (code) {
        store_close(s);
        return code;
    }
    if (protos[0].kind == EVAL_CTR) {
        code = eval_ctr_cli(a, s, ent, nm, sp.seed);
        store_close(s);
        return code;
    }
    store_view v;
    eval_split split;
    if ((code = build_view(a, s, &v))) {
        store_close(s);
        return code;
    }
    int rc = eval_split_build(&v, sp, &split, &err);
    store_view_deinit(&v);
    bool graph = false;
    for (int m = 0; m < nm; m++) graph |= ent[m].kind->needs_graph;
    if (!rc && graph && (rc = eval_split_graph(&split, s, &err))) eval_split_free(&split);
    if (rc) {
        store_close(s);
        return cli_fail(&err);
    }
    if (cli_opt_get(a, "export-split") && eval_split_export(&split, cli_opt_get(a, "export-split"), &err)) {
        eval_split_free(&split);
        store_close(s);
        return cli_fail(&err);
    }
    pool *tp = cli_pool(a, &code);
    eval_result *res = xcalloc((size_t)nm * 2, sizeof *res); /* [protocol][model] */
    int done = 0;
    for (int m = 0; m < nm && !rc; m++) {
        rec_model *model;
        if ((rc = entry_model(a, &ent[m], &model, &err))) break;
        for (int pi = 0; pi < np && !rc; pi++) {
            eval_run_params rp = {.ks = ks, .nk = nk, .validation = cli_flag(a, "validation"), .pool = tp,
                                  .trained = pi > 0};
            eval_result *r = &res[pi * nm + m];
            rc = eval_model(model, &split, &protos[pi], rp, r, &err);
            snprintf(r->model, sizeof r->model, "%s", ent[m].label);
            if (pi > 0) r->train_s = res[m].train_s; /* one training serves both */
        }
        rec_model_free(model);
        if (!rc) done++;
    }
    const char *dataset = cli_opt_get(a, "name") ? cli_opt_get(a, "name") : base_name(a->files);
    for (int pi = 0; pi < np && !rc; pi++) {
        eval_report_info info = {dataset, &split, &sp, &protos[pi]};
        eval_result *r = res + pi * nm;
        if (pi) printf("\n");
        eval_print_table(stdout, &info, r, done, cli_flag(a, "wide"));
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
    /* Saved models keep their last evaluation (the first protocol's), unless
     * --param changed what was evaluated or it ran on validation. */
    for (int m = 0; m < done && !rc && !cli_flag(a, "validation"); m++) {
        if (!ent[m].saved || ent[m].overridden) continue;
        eval_report_info info = {dataset, &split, &sp, &protos[0]};
        sb j;
        sb_init(&j);
        evaluation_json(&j, &info, &res[m]);
        rc = store_model_set_evaluation(s, ent[m].label, sb_str(&j), &err);
        sb_deinit(&j);
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
    if (!kind) {
        sb l;
        sb_init(&l);
        list_kinds(&l);
        int rc = cli_usage_error(a, "no model '%s' (models: %s)", a->pos[0], sb_str(&l));
        sb_deinit(&l);
        return rc;
    }
    eval_split_params sp;
    eval_protocol proto;
    int code = parse_eval_common(a, &sp, &proto);
    if (!code && proto.kind == EVAL_CTR) return cli_usage_error(a, "tune ranks: --protocol is full or sampled");
    if (code) return code;
    long k;
    if (!cli_opt_int(a, "k", 10, 1, 10000, &k)) return cli_usage_error(a, "-k must be a number from 1 to 10000");
    const char *metric = cli_opt_get(a, "metric") ? cli_opt_get(a, "metric") : "ndcg";
    int mi = -1;
    for (int i = 0; i < EVAL_M_PER_USER; i++)
        if (!strcmp(eval_metric_names[i], metric)) mi = i;
    if (mi < 0) return cli_usage_error(a, "--metric must be one of hr, recall, precision, ndcg, mrr, map");
    rec_params fixed = {0};
    if ((code = parse_params(a, "param", &fixed))) return code;
    rec_params_set(&fixed, "seed", cli_opt_get(a, "seed") ? cli_opt_get(a, "seed") : "42");
    int ng;
    const char *const *gv = cli_opt_all(a, "grid", &ng);
    if (ng == 0) return cli_usage_error(a, "give at least one --grid KEY=V1,V2,...");
    rec_grid g = {0};
    for (int i = 0; i < ng; i++)
        if (!grid_add(&g, gv[i], strlen(gv[i])))
            return cli_usage_error(a, "--grid expects KEY=V1,V2,... (at most 8 keys of 16 values), not '%s'", gv[i]);
    /* Every combination's parameters are checked before any work. */
    tailor_error err = {0};
    for (size_t c = 0; c < g.combos; c++) {
        rec_params p = fixed;
        sb label;
        sb_init(&label);
        grid_combo(&g, c, &p, &label);
        sb_deinit(&label);
        rec_model *m;
        if (rec_model_new(kind, &p, &m, &err)) return cli_fail(&err);
        rec_model_free(m);
    }
    const char *save = cli_opt_get(a, "save");
    if (save && !valid_name(save)) return cli_usage_error(a, "--save may use letters, digits, '-', '_' and '.'");
    store *s;
    eval_split split;
    if ((code = open_split(a, sp, kind, &s, &split))) return code;
    pool *tp = cli_pool(a, &code);
    sb desc;
    sb_init(&desc);
    eval_protocol_describe(&proto, &desc);
    printf("tuning %s on the validation split (%s), %s, %s@%ld\n", kind->name, eval_split_kind_name(sp.kind),
           sb_str(&desc), metric, k);
    sb_deinit(&desc);
    tune_result tr;
    int rc = tune_grid(kind, &fixed, &g, &split, &proto, mi, (int)k, 0, tp, &tr, &err);
    eval_split_free(&split);
    code = EX_OK;
    if (!rc) {
        sb bp;
        sb_init(&bp);
        rec_params_json(&tr.best, &bp);
        printf("best on validation: %s (%s@%ld %.4f)\n", sb_str(&bp), metric, k, tr.best_score);
        sb_deinit(&bp);
        if (save) {
            sb extra;
            sb_init(&extra);
            sb_printf(&extra, "\"tune\":{\"metric\":\"%s@%ld\",\"tried\":%s}", metric, k, sb_str(&tr.json));
            code = train_and_save(a, s, kind, &tr.best, save, tp, sb_str(&extra));
            sb_deinit(&extra);
        }
    }
    sb_deinit(&tr.json);
    pool_free(tp);
    store_close(s);
    return rc ? cli_fail(&err) : code;
}
