/* generic.c — `import events` and `import items` over any CSV/TSV with a
 * header row or JSON Lines file, with columns chosen by name. Unnamed
 * columns of an items file become the item's attributes. */
#include <stdlib.h>
#include <string.h>

#include "ingest/import_internal.h"

/* The column given by flag (must exist), or the first default present. */
static int pick_col(ing_table *t, const char *flag_name, const char *given,
                    const char *const *defaults, bool required, int *col, const char **name,
                    tailor_error *err) {
    *col = -1;
    *name = NULL;
    if (given) {
        *col = ing_table_col(t, given);
        *name = given;
        if (*col < 0)
            return err_data(err, ing_table_path(t), 1, NULL,
                            "no column '%s' (given with --%s) in the header", given, flag_name);
        return 0;
    }
    for (size_t i = 0; defaults[i]; i++) {
        /* JSONL has no header: the first default stands for the key. */
        int c = ing_table_col(t, defaults[i]);
        if (c >= 0) {
            *col = c;
            *name = defaults[i];
            return 0;
        }
    }
    if (!required) return 0;
    sb names;
    sb_init(&names);
    for (size_t i = 0; defaults[i]; i++) sb_printf(&names, "%s%s", i ? ", " : "", defaults[i]);
    int rc = err_data(err, ing_table_path(t), 1, NULL,
                      "no %s column: none of %s is in the header; name it with --%s COLUMN",
                      flag_name, sb_str(&names), flag_name);
    sb_deinit(&names);
    return rc;
}

int ing_events(store *s, const char *path, ing_events_params p, ing_stats *st,
               tailor_error *err) {
    ing_table *t;
    int rc = ing_table_open(&t, path, p.format, err);
    if (rc) return rc;
    static const char *const d_user[] = {"user_id", "user", "userId", "userid", NULL};
    static const char *const d_item[] = {"item_id", "item", "itemId", "itemid", "movieId", NULL};
    static const char *const d_time[] = {"timestamp", "time", "ts", "date", NULL};
    static const char *const d_value[] = {"value", "rating", "score", NULL};
    static const char *const d_kind[] = {"kind", "event", "event_type", "type", NULL};
    int cu, ci, ct, cv, ck;
    const char *nu, *ni, *nt, *nv, *nk;
    rc = pick_col(t, "user", p.user_col, d_user, true, &cu, &nu, err);
    if (!rc) rc = pick_col(t, "item", p.item_col, d_item, true, &ci, &ni, err);
    if (!rc) rc = pick_col(t, "time", p.time_col, d_time, false, &ct, &nt, err);
    if (!rc) rc = pick_col(t, "value", p.value_col, d_value, false, &cv, &nv, err);
    if (!rc) rc = pick_col(t, "kind", p.kind_col, d_kind, false, &ck, &nk, err);
    if (rc) {
        ing_table_close(t);
        return rc;
    }
    ing_ctx c;
    /* A rough count: event rows are rarely shorter than 32 bytes. */
    uint64_t size = ing_table_file_size(t);
    if ((rc = ing_ctx_begin(&c, s, p.dup, st, "import", size, (int64_t)(size / 32), err))) {
        ing_table_close(t);
        return rc;
    }
    const char *dk = p.default_kind ? p.default_kind : "interaction";
    int64_t default_kind;
    rc = ing_kind(&c, dk, strlen(dk), &default_kind, err);
    /* Without a time column the file's order is the order of events: row r
     * gets the time base + r, after every stored event, so a later import
     * comes after an earlier one in every user's sequence. */
    int64_t base = 0;
    if (!rc && ct < 0) rc = store_events_max_ts(s, &base, err);
    int64_t row = 0;
    while (!rc && (rc = ing_table_next(t, err)) == 1) {
        rc = 0;
        row++;
        const char *path_ = ing_table_path(t);
        int64_t line = ing_table_line(t);
        const char *v;
        size_t vl;
        store_event ev = {.kind = default_kind, .ts = base + row};
        /* Values are used before the next get: JSONL numbers share one
         * buffer. */
        if (!ing_table_get(t, cu, &v, &vl)) {
            rc = err_data(err, path_, line, nu, "missing value");
            break;
        }
        if ((rc = ing_at(err, ing_user(&c, v, vl, NULL, false, &ev.user_id, err), path_, line)))
            break;
        if (!ing_table_get(t, ci, &v, &vl)) {
            rc = err_data(err, path_, line, ni, "missing value");
            break;
        }
        if ((rc = ing_at(err, ing_item(&c, v, vl, NULL, NULL, NULL, false, &ev.item_id, err),
                         path_, line)))
            break;
        /* A time column, once there, must be filled: an order cannot be
         * guessed for one row. Without one, rows keep file order. */
        if (ct >= 0) {
            if (!ing_table_get(t, ct, &v, &vl)) {
                rc = err_data(err, path_, line, nt, "missing value");
                break;
            }
            if (!ing_parse_time(v, vl, &ev.ts)) {
                rc = err_data(err, path_, line, nt,
                              "'%.*s' is not a time (unix seconds or ISO 8601 date/time)", (int)vl,
                              v);
                break;
            }
        }
        if (cv >= 0 && ing_table_get(t, cv, &v, &vl)) {
            if (!parse_f64(v, vl, &ev.value)) {
                rc = err_data(err, path_, line, nv, "'%.*s' is not a number", (int)vl, v);
                break;
            }
            ev.has_value = true;
        }
        if (ck >= 0 && ing_table_get(t, ck, &v, &vl) &&
            (rc = ing_at(err, ing_kind(&c, v, vl, &ev.kind, err), path_, line)))
            break;
        if ((rc = ing_at(err, ing_event(&c, &ev, err), path_, line))) break;
        ing_ctx_progress(&c, ing_table_bytes_done(t));
    }
    if (rc > 0) rc = 0;
    if (!rc && ct < 0 && row > 0) st->ts_first = base + 1, st->ts_last = base + row;
    ing_table_close(t);
    return ing_ctx_end(&c, rc, err);
}

int ing_items(store *s, const char *path, ing_items_params p, ing_stats *st, tailor_error *err) {
    ing_table *t;
    int rc = ing_table_open(&t, path, p.format, err);
    if (rc) return rc;
    static const char *const d_id[] = {"item_id", "id", "item", "itemId", "movieId", NULL};
    static const char *const d_title[] = {"title", "name", NULL};
    static const char *const d_text[] = {"text", "description", "overview", "summary", NULL};
    int cid, cti, ctx;
    const char *nid, *nti, *ntx;
    rc = pick_col(t, "id", p.id_col, d_id, true, &cid, &nid, err);
    if (!rc) rc = pick_col(t, "title", p.title_col, d_title, false, &cti, &nti, err);
    if (!rc) rc = pick_col(t, "text", p.text_col, d_text, false, &ctx, &ntx, err);
    if (rc) {
        ing_table_close(t);
        return rc;
    }
    ing_ctx c;
    if ((rc = ing_ctx_begin(&c, s, p.dup, st, "import", ing_table_file_size(t), 0, err))) {
        ing_table_close(t);
        return rc;
    }
    sb attrs;
    sb_init(&attrs);
    while (!rc && (rc = ing_table_next(t, err)) == 1) {
        rc = 0;
        const char *path_ = ing_table_path(t);
        int64_t line = ing_table_line(t);
        const char *v;
        size_t vl;
        char *id = NULL, *title = NULL, *text = NULL;
        if (!ing_table_get(t, cid, &v, &vl)) {
            rc = err_data(err, path_, line, nid, "missing value");
            break;
        }
        id = xstrndup(v, vl);
        if (cti >= 0 && ing_table_get(t, cti, &v, &vl)) title = xstrndup(v, vl);
        if (ctx >= 0 && ing_table_get(t, ctx, &v, &vl)) text = xstrndup(v, vl);
        /* Every other column is an attribute. */
        sb_clear(&attrs);
        sb_putc(&attrs, '{');
        size_t n = ing_table_ncols(t), na = 0;
        for (size_t k = 0; k < n; k++) {
            const char *name = ing_table_colname(t, k);
            if (!name || (nid && !strcmp(name, nid)) || (nti && !strcmp(name, nti)) ||
                (ntx && !strcmp(name, ntx)))
                continue;
            int col = ing_table_col(t, name);
            if (!ing_table_get(t, col, &v, &vl)) continue;
            if (na++) sb_putc(&attrs, ',');
            sb_json_str(&attrs, name, strlen(name));
            sb_putc(&attrs, ':');
            if (ing_table_is_json(t, col)) sb_append(&attrs, v, vl);
            else sb_json_str(&attrs, v, vl);
        }
        sb_putc(&attrs, '}');
        int64_t iid;
        rc = ing_at(err,
                    ing_item(&c, id, strlen(id), title, text, na ? sb_str(&attrs) : NULL, true,
                             &iid, err),
                    path_, line);
        free(id);
        free(title);
        free(text);
        ing_ctx_progress(&c, ing_table_bytes_done(t));
    }
    if (rc > 0) rc = 0;
    sb_deinit(&attrs);
    ing_table_close(t);
    return ing_ctx_end(&c, rc, err);
}

int ing_event_batch(store *s, const ing_event_in *evs, size_t n, ing_batch_result *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    int rc = store_begin(s, err);
    for (size_t i = 0; i < n && !rc; i++) {
        const ing_event_in *e = &evs[i];
        store_event ev = {.value = e->value, .has_value = e->has_value, .ts = e->ts};
        rc = store_item_find(s, e->item, &ev.item_id, err);
        if (rc == TAILOR_ENOTFOUND) {
            err_set(err, TAILOR_ENOTFOUND, "events[%zu]: unknown item '%s' (items come from the catalogue)", i, e->item);
            break;
        }
        bool fresh_user = false, fresh = true;
        if (!rc) rc = store_user_put(s, e->user, NULL, STORE_DUP_SKIP, &ev.user_id, &fresh_user, err);
        if (!rc) rc = store_kind_id(s, e->kind ? e->kind : "interaction", true, &ev.kind, err);
        if (!rc && e->client_id) rc = store_event_claim(s, ev.user_id, e->client_id, &fresh, err);
        if (!rc && fresh) rc = store_event_add(s, &ev, err);
        if (!rc) out->new_users += fresh_user, out->stored += fresh, out->duplicates += !fresh;
    }
    if (!rc) rc = store_commit(s, err);
    if (rc) {
        store_rollback(s);
        memset(out, 0, sizeof *out);
    }
    return rc;
}
