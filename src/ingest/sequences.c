/* sequences.c — importer for "user item [item ...]" lines (SASRec, S3-Rec)
 * and the S3-Rec item -> attribute-ids JSON. Each line's items follow the
 * user's earlier lines in time; the event time is the position in the
 * user's sequence, since these files carry no timestamps. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/import_internal.h"

/* Reads the whole attributes file (a single JSON object: small next to the
 * sequences) and returns it parsed. */
static int load_attributes(const char *path, cJSON **out, tailor_error *err) {
    sb buf;
    sb_init(&buf);
    int rc = file_read(path, &buf, err);
    if (rc) {
        sb_deinit(&buf);
        return rc;
    }
    int64_t bad = utf8_check(sb_str(&buf), buf.len);
    if (bad >= 0) {
        sb_deinit(&buf);
        return err_data(err, path, 0, NULL, "invalid UTF-8 at byte offset %lld", (long long)bad);
    }
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(sb_str(&buf), buf.len, &end, false);
    long long off = end ? (long long)(end - sb_str(&buf)) : 0;
    sb_deinit(&buf);
    if (!*out) return err_data(err, path, 0, NULL, "invalid JSON near byte offset %lld", off);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return err_data(err, path, 0, NULL, "expected a JSON object {\"item\": [attribute ids]}");
    }
    return 0;
}

int ing_sequences(store *s, const char *path, ing_sequences_params p, ing_stats *st,
                  tailor_error *err) {
    cJSON *attrs = NULL;
    int rc;
    if (p.attributes && (rc = load_attributes(p.attributes, &attrs, err))) return rc;
    ing_reader r;
    ing_reader_params rp = {.sep = " ", .quoting = false, .check_utf8 = true};
    if ((rc = ing_reader_open(&r, path, rp, err))) {
        cJSON_Delete(attrs);
        return rc;
    }
    ing_ctx c;
    if ((rc = ing_ctx_begin(&c, s, p.dup, st, "import", r.file_size, (int64_t)(r.file_size / 8), err))) {
        ing_reader_close(&r);
        cJSON_Delete(attrs);
        return rc;
    }
    const char *kname = p.kind ? p.kind : "interaction";
    int64_t kind;
    rc = ing_kind(&c, kname, strlen(kname), &kind, err);
    /* Next position per user: a user may span several lines. */
    hmap next_pos;
    hmap_init(&next_pos, 1024);
    sb a;
    sb_init(&a);
    while (!rc && (rc = ing_reader_next(&r, err)) == 1) {
        rc = 0;
        /* Tabs and repeated spaces also separate: drop empty fields. */
        size_t nf = 0;
        for (size_t k = 0; k < ing_nfields(&r); k++)
            if (ing_field_len(&r, k)) r.fields.data[nf++] = r.fields.data[k];
        r.fields.len = nf;
        if (nf < 2) {
            rc = err_data(err, r.path, r.line, nf ? "item" : "user",
                          "missing: expected a user id and at least one item id%s",
                          r.last_had_newline ? "" : " (the file ends inside this line: truncated?)");
            break;
        }
        store_event ev = {.kind = kind, .has_value = false};
        const char *u = ing_field_str(&r, 0);
        size_t ul = ing_field_len(&r, 0);
        if ((rc = ing_at(err, ing_user(&c, u, ul, NULL, false, &ev.user_id, err), r.path, r.line)))
            break;
        int64_t pos = 0;
        hmap_get(&next_pos, u, ul, &pos);
        for (size_t k = 1; k < nf && !rc; k++) {
            const char *it = ing_field_str(&r, k);
            size_t il = ing_field_len(&r, k);
            int64_t iid;
            if (!ing_item_known(&c, it, il, &iid)) {
                const char *attr_json = NULL;
                sb_clear(&a);
                const cJSON *lst = attrs ? cJSON_GetObjectItemCaseSensitive(attrs, it) : NULL;
                if (lst) {
                    char *js = json_print(lst);
                    sb_printf(&a, "{\"attributes\":%s}", js);
                    cJSON_free(js);
                    attr_json = sb_str(&a);
                }
                rc = ing_at(err, ing_item(&c, it, il, NULL, NULL, attr_json, false, &iid, err),
                            r.path, r.line);
                if (rc) break;
            }
            ev.item_id = iid;
            ev.ts = pos++;
            rc = ing_at(err, ing_event(&c, &ev, err), r.path, r.line);
        }
        hmap_put(&next_pos, u, ul, pos);
        ing_ctx_progress(&c, r.bytes_done);
    }
    if (rc > 0) rc = 0;
    sb_deinit(&a);
    hmap_deinit(&next_pos);
    ing_reader_close(&r);
    cJSON_Delete(attrs);
    return ing_ctx_end(&c, rc, err);
}
