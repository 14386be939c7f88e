/* cmd_models.c — `tailor models list|show|activate|remove`, and opening a
 * trained model for the commands that serve it. A model is a row of the
 * models table (what it is, what it was trained on, its last evaluation,
 * whether it is the active one) and a file beside the database. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "personalize/personalize.h"
#include "rec/rec.h"

/* ---- models list / show ------------------------------------------------- */

static void human_bytes(char *buf, size_t n, double b) {
    if (b < 0) snprintf(buf, n, "missing");
    else if (b >= 1024.0 * 1048576) snprintf(buf, n, "%.1f GiB", b / (1024.0 * 1048576));
    else if (b >= 1048576) snprintf(buf, n, "%.1f MiB", b / 1048576);
    else snprintf(buf, n, "%.0f KiB", b / 1024 < 1 && b > 0 ? 1 : b / 1024);
}

static void format_time(char *buf, size_t n, int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M", &tm);
}

/* The headline figure of an evaluation: the first ndcg@K in its metrics. */
static bool eval_headline(const char *evaluation, char *label, size_t ln, double *value) {
    cJSON *e = evaluation ? cJSON_Parse(evaluation) : NULL;
    bool found = false;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(e, "metrics"), *it;
    cJSON_ArrayForEach(it, metrics) {
        if (!strncmp(it->string, "ndcg@", 5) && cJSON_IsNumber(it)) {
            snprintf(label, ln, "%s", it->string);
            *value = it->valuedouble;
            found = true;
            break;
        }
    }
    cJSON_Delete(e);
    return found;
}

int cmd_models_list(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    store_model *ms;
    size_t n;
    if (store_models_list(s, &ms, &n, &err)) {
        store_close(s);
        return cli_fail(&err);
    }
    if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        sb_putc(&o, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) sb_putc(&o, ',');
            pz_model_json(s, &ms[i], &o);
        }
        printf("%s]\n", sb_str(&o));
        sb_deinit(&o);
    } else if (!n) {
        printf("no trained models in %s (tailor train MODEL makes one)\n", a->db_path);
    } else {
        printf("  %-20s %-8s %-16s %10s  %s\n", "name", "kind", "trained", "file", "last evaluation");
        for (size_t i = 0; i < n; i++) {
            char when[32], size[32], label[32], ev[64] = "-";
            double v;
            format_time(when, sizeof when, ms[i].trained_at);
            human_bytes(size, sizeof size, pz_model_file_size(s, &ms[i]));
            if (eval_headline(ms[i].evaluation, label, sizeof label, &v)) snprintf(ev, sizeof ev, "%s %.4f", label, v);
            printf("%c %-20s %-8s %-16s %10s  %s\n", ms[i].active ? '*' : ' ', ms[i].name, ms[i].kind, when, size, ev);
        }
        printf("(* = active: what recommend and similar use unless --model names another)\n");
    }
    store_models_free(ms, n);
    store_close(s);
    return EX_OK;
}

static void print_json_object(const char *title, const char *json) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o || !cJSON_IsObject(o) || !o->child) {
        cJSON_Delete(o);
        return;
    }
    printf("%s\n", title);
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
        printf("  %-22s %s\n", it->string, v ? v : it->valuestring);
        free(v);
    }
    cJSON_Delete(o);
}

int cmd_models_show(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    store_model m;
    int rc = a->npos ? store_model_get(s, a->pos[0], &m, &err) : store_model_active(s, &m, &err);
    if (rc) {
        store_close(s);
        return cli_fail(&err);
    }
    if (cli_flag(a, "json")) {
        sb o;
        sb_init(&o);
        pz_model_json(s, &m, &o);
        printf("%s\n", sb_str(&o));
        sb_deinit(&o);
    } else {
        char when[32], size[32];
        format_time(when, sizeof when, m.trained_at);
        double bytes = pz_model_file_size(s, &m);
        human_bytes(size, sizeof size, bytes);
        char *path = store_path_resolve(s, m.file ? m.file : "");
        const rec_kind *k = rec_kind_find(m.kind);
        printf("model      %s%s\nkind       %s%s%s\ntrained    %s\nfile       %s (%s)\n", m.name,
               m.active ? " (active)" : "", m.kind, k ? ": " : "", k ? k->summary : "", when, path, size);
        free(path);
        print_json_object("parameters", m.params);
        print_json_object("training data and time", m.metrics);
        if (m.evaluation) {
            cJSON *e = cJSON_Parse(m.evaluation);
            const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "description"));
            printf("last evaluation%s%s\n", desc ? ": " : "", desc ? desc : "");
            const cJSON *it;
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(e, "metrics")) {
                if (cJSON_IsNumber(it)) printf("  %-22s %.4f\n", it->string, it->valuedouble);
            }
            cJSON_Delete(e);
        } else {
            printf("last evaluation: none (tailor eval --models %s)\n", m.name);
        }
    }
    store_model_deinit(&m);
    store_close(s);
    return EX_OK;
}

int cmd_models_activate(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    store_model m;
    /* Refuse a model whose file cannot be served. */
    int rc = store_model_get(s, a->pos[0], &m, &err);
    if (!rc) {
        char *path = store_path_resolve(s, m.file ? m.file : "");
        rec_model *rm;
        rc = rec_model_load(path, &rm, &err);
        if (!rc) rec_model_free(rm);
        free(path);
        store_model_deinit(&m);
    }
    if (!rc) rc = store_model_activate(s, a->pos[0], &err);
    store_close(s);
    if (rc) return cli_fail(&err);
    printf("active model: %s\n", a->pos[0]);
    return EX_OK;
}

int cmd_models_remove(cli_args *a) {
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    store_model m;
    int rc = store_model_get(s, a->pos[0], &m, &err);
    if (!rc) rc = store_model_remove(s, a->pos[0], &err);
    if (rc) {
        store_close(s);
        return cli_fail(&err);
    }
    /* The row is gone (committed) before the file: a crash in between
     * leaves a stray file, never a row without its file. */
    char *path = store_path_resolve(s, m.file ? m.file : "");
    if (unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "tailor: warning: could not delete %s: %s\n", path, strerror(errno));
    printf("removed model %s (%s)\n", m.name, path);
    store_model active;
    if (m.active && store_model_active(s, &active, NULL) == 0) {
        printf("active model is now %s\n", active.name);
        store_model_deinit(&active);
    }
    free(path);
    store_model_deinit(&m);
    store_close(s);
    return EX_OK;
}
