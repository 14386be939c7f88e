/* table.c — one interface over "CSV/TSV with a header row" and JSON Lines,
 * so the generic importers map columns by name whatever the format.
 * JSONL rows are parsed one line at a time with cJSON; values are handed
 * out as text (numbers in their JSON spelling). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

struct ing_table {
    ing_table_format fmt;
    ing_reader r;
    /* CSV: header names. JSONL: names asked for through ing_table_col. */
    VEC(char *) names;
    cJSON *row;      /* JSONL: current row */
    bool pending;    /* JSONL: row was read ahead by open, not yet returned */
    sb scratch;      /* JSONL: text of the last value handed out */
    char numbuf[64]; /* JSONL: number spelling */
};

static ing_table_format format_from_name(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".ndjson") || !strcmp(dot, ".json")))
        return ING_TABLE_JSONL;
    if (dot && (!strcmp(dot, ".tsv") || !strcmp(dot, ".tab"))) return ING_TABLE_TSV;
    return ING_TABLE_CSV;
}

int ing_table_open(ing_table **out, const char *path, ing_table_format fmt, tailor_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errno == ENOENT ? TAILOR_ENOTFOUND : TAILOR_EIO, "cannot open %s: %s",
                       path, strerror(errno));
    return ing_table_open_stream(out, f, path, fmt, err);
}

int ing_table_open_stream(ing_table **out, FILE *f, const char *path, ing_table_format fmt,
                          tailor_error *err) {
    *out = NULL;
    ing_table *t = xcalloc(1, sizeof *t);
    t->fmt = fmt == ING_TABLE_AUTO ? format_from_name(path) : fmt;
    ing_reader_params p = ing_csv_params();
    if (t->fmt == ING_TABLE_TSV) p.sep = "\t", p.quoting = false;
    ing_reader_open_stream(&t->r, f, path, p);
    sb_init(&t->scratch);
    int rc;
    if (t->fmt != ING_TABLE_JSONL) {
        rc = ing_reader_next(&t->r, err);
        if (rc == 0) rc = err_data(err, path, 1, NULL, "empty file: expected a header row");
        if (rc < 0) {
            ing_table_close(t);
            return rc;
        }
        for (size_t i = 0; i < ing_nfields(&t->r); i++) {
            const char *name = ing_field_str(&t->r, i);
            /* A UTF-8 byte order mark before the first name is common. */
            if (i == 0 && !strncmp(name, "\xEF\xBB\xBF", 3)) name += 3;
            vec_push(&t->names, xstrdup(name));
        }
    } else {
        /* Read the first row ahead so column names can be resolved against
         * its keys; ing_table_next returns it first. */
        rc = ing_table_next(t, err);
        if (rc < 0) {
            ing_table_close(t);
            return rc;
        }
        t->pending = rc == 1;
    }
    *out = t;
    return 0;
}

void ing_table_close(ing_table *t) {
    if (!t) return;
    ing_reader_close(&t->r);
    for (size_t i = 0; i < t->names.len; i++) free(t->names.data[i]);
    vec_free(&t->names);
    cJSON_Delete(t->row);
    sb_deinit(&t->scratch);
    free(t);
}

int ing_table_col(ing_table *t, const char *name) {
    for (size_t i = 0; i < t->names.len; i++)
        if (!strcmp(t->names.data[i], name)) return (int)i;
    /* JSONL: a key of the first row (or of the current row) is a column. */
    if (t->fmt != ING_TABLE_JSONL || !cJSON_GetObjectItemCaseSensitive(t->row, name)) return -1;
    vec_push(&t->names, xstrdup(name));
    return (int)t->names.len - 1;
}

size_t ing_table_ncols(const ing_table *t) {
    if (t->fmt == ING_TABLE_JSONL) return (size_t)cJSON_GetArraySize(t->row);
    return t->names.len;
}

const char *ing_table_colname(const ing_table *t, size_t i) {
    if (t->fmt == ING_TABLE_JSONL) {
        const cJSON *c = cJSON_GetArrayItem(t->row, (int)i);
        return c ? c->string : NULL;
    }
    return i < t->names.len ? t->names.data[i] : NULL;
}

int ing_table_next(ing_table *t, tailor_error *err) {
    if (t->fmt != ING_TABLE_JSONL) {
        int rc = ing_reader_next(&t->r, err);
        if (rc <= 0) return rc;
        if (ing_nfields(&t->r) != t->names.len) {
            if (ing_nfields(&t->r) < t->names.len)
                return ing_reader_short(&t->r, t->names.len, t->names.data[ing_nfields(&t->r)],
                                        err);
            return err_data(err, t->r.path, t->r.line, NULL,
                            "expected %zu fields (as in the header), found %zu",
                            t->names.len, ing_nfields(&t->r));
        }
        return 1;
    }
    if (t->pending) {
        t->pending = false;
        return 1;
    }
    const char *line;
    size_t len;
    for (;;) {
        int rc = ing_reader_line(&t->r, &line, &len, err);
        if (rc <= 0) return rc;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k < len) break; /* skip blank lines */
    }
    t->r.line = t->r.phys_line;
    int64_t bad = utf8_check(line, len);
    if (bad >= 0)
        return err_data(err, t->r.path, t->r.line, NULL,
                        "invalid UTF-8 (byte 0x%02x at column %lld)",
                        (unsigned char)line[bad], (long long)bad + 1);
    cJSON_Delete(t->row);
    const char *end = NULL;
    t->row = cJSON_ParseWithLengthOpts(line, len, &end, false);
    if (!t->row) {
        long long col = end ? (long long)(end - line) + 1 : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= line && ep <= line + len) col = (long long)(ep - line) + 1;
        return err_data(err, t->r.path, t->r.line, NULL, "invalid JSON near column %lld%s", col,
                        t->r.last_had_newline ? "" : " (the file ends inside this line: truncated?)");
    }
    size_t rest = (size_t)(end - line);
    while (rest < len && (line[rest] == ' ' || line[rest] == '\t')) rest++;
    if (rest != len) {
        cJSON_Delete(t->row);
        t->row = NULL;
        return err_data(err, t->r.path, t->r.line, NULL,
                        "unexpected text after the JSON value at column %zu", rest + 1);
    }
    if (!cJSON_IsObject(t->row)) {
        cJSON_Delete(t->row);
        t->row = NULL;
        return err_data(err, t->r.path, t->r.line, NULL, "expected a JSON object per line");
    }
    return 1;
}

static const cJSON *table_json_value(ing_table *t, int col) {
    if (!t->row || col < 0 || (size_t)col >= t->names.len) return NULL;
    return cJSON_GetObjectItemCaseSensitive(t->row, t->names.data[col]);
}

bool ing_table_get(ing_table *t, int col, const char **val, size_t *len) {
    if (col < 0) return false;
    if (t->fmt != ING_TABLE_JSONL) {
        if ((size_t)col >= ing_nfields(&t->r)) return false;
        *val = ing_field_str(&t->r, (size_t)col);
        *len = ing_field_len(&t->r, (size_t)col);
        return *len > 0;
    }
    const cJSON *v = table_json_value(t, col);
    if (!v || cJSON_IsNull(v)) return false;
    if (cJSON_IsString(v)) {
        *val = v->valuestring;
        *len = strlen(v->valuestring);
        return *len > 0;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d > -9.2e18 && d < 9.2e18 && d == (double)(int64_t)d) /* range first: the cast is UB outside */
            snprintf(t->numbuf, sizeof t->numbuf, "%lld", (long long)(int64_t)d);
        else
            snprintf(t->numbuf, sizeof t->numbuf, "%.17g", d);
        *val = t->numbuf;
        *len = strlen(t->numbuf);
        return true;
    }
    if (cJSON_IsBool(v)) {
        *val = cJSON_IsTrue(v) ? "true" : "false";
        *len = strlen(*val);
        return true;
    }
    char *s = json_print(v);
    sb_clear(&t->scratch);
    sb_puts(&t->scratch, s);
    cJSON_free(s);
    *val = sb_str(&t->scratch);
    *len = t->scratch.len;
    return true;
}

bool ing_table_is_json(ing_table *t, int col) {
    if (t->fmt != ING_TABLE_JSONL) return false;
    const cJSON *v = table_json_value(t, col);
    return v && (cJSON_IsArray(v) || cJSON_IsObject(v) || cJSON_IsNumber(v) || cJSON_IsBool(v));
}

int64_t ing_table_line(const ing_table *t) { return t->r.line; }
const char *ing_table_path(const ing_table *t) { return t->r.path; }
uint64_t ing_table_bytes_done(const ing_table *t) { return t->r.bytes_done; }
uint64_t ing_table_file_size(const ing_table *t) { return t->r.file_size; }
