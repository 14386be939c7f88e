/* view.c — builds the dense in-memory views models train on.
 * One pass over users, one over items, one over events (in rowid order, no
 * index needed), then a counting sort by user and a sort by time within each
 * user: O(events) plus small per-user sorts. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

store_view_params store_view_default_params(void) {
    return (store_view_params){.kind = NULL, .min_value = 0, .has_min_value = false};
}

/* Maps store row ids to dense indexes: a direct array when ids are compact
 * (the usual case), a hash map otherwise. */
typedef struct rowid_map {
    int32_t *direct; /* rowid -> index, -1 if absent */
    int64_t max_id;
    hmap sparse;
    bool use_direct;
} rowid_map;

static int32_t rowid_map_get(const rowid_map *m, int64_t rowid) {
    if (m->use_direct) return rowid >= 0 && rowid <= m->max_id ? m->direct[rowid] : -1;
    int64_t v;
    return hmap_get(&m->sparse, (const char *)&rowid, sizeof rowid, &v) ? (int32_t)v : -1;
}

static void rowid_map_deinit(rowid_map *m) {
    free(m->direct);
    if (!m->use_direct) hmap_deinit(&m->sparse);
}

static int load_entities(store *s, const char *table, int32_t *n, int64_t **rowids,
                         char ***exts, hmap *index, rowid_map *rmap, arena *strings,
                         tailor_error *err) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT id, ext_id FROM %s ORDER BY id", table);
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK)
        return store_db_err(s, err, table);
    VEC(int64_t) ids = {0};
    VEC(char *) ext = {0};
    int rc;
    while ((rc = sdb_step(st)) == SDB_ROW) {
        vec_push(&ids, sdb_col_int64(st, 0));
        const char *e = sdb_col_text(st, 1);
        vec_push(&ext, arena_strndup(strings, e, (size_t)sdb_col_bytes(st, 1)));
    }
    sdb_finalize(st);
    if (rc != SDB_DONE) {
        vec_free(&ids);
        vec_free(&ext);
        return store_db_err(s, err, table);
    }
    if (ids.len > INT32_MAX) {
        vec_free(&ids);
        vec_free(&ext);
        return err_set(err, TAILOR_EUNSUPPORTED, "too many %s for a view", table);
    }
    *n = (int32_t)ids.len;
    *rowids = ids.data ? ids.data : xcalloc(1, sizeof(int64_t));
    *exts = ext.data ? ext.data : xcalloc(1, sizeof(char *));
    hmap_init(index, ids.len);
    int64_t max_id = ids.len ? ids.data[ids.len - 1] : 0;
    rmap->max_id = max_id;
    rmap->use_direct = max_id <= 4 * (int64_t)ids.len + 1024;
    if (rmap->use_direct) {
        rmap->direct = xmalloc(((size_t)max_id + 1) * sizeof(int32_t));
        memset(rmap->direct, 0xff, ((size_t)max_id + 1) * sizeof(int32_t));
    } else {
        rmap->direct = NULL;
        hmap_init(&rmap->sparse, ids.len);
    }
    for (size_t i = 0; i < ids.len; i++) {
        hmap_put(index, (*exts)[i], strlen((*exts)[i]), (int64_t)i);
        if (rmap->use_direct) rmap->direct[ids.data[i]] = (int32_t)i;
        else hmap_put(&rmap->sparse, (const char *)&ids.data[i], sizeof(int64_t), (int64_t)i);
    }
    return 0;
}

/* Sort key within one user's events. */
typedef struct seq_ev {
    int64_t ts;
    int32_t item;
    float value;
    int64_t order; /* insertion order: the final tie-break */
} seq_ev;

static int seq_ev_cmp(const void *a, const void *b) {
    const seq_ev *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* For the CSR row: by item, and for equal items the latest event last. */
static int seq_ev_item_cmp(const void *a, const void *b) {
    const seq_ev *x = a, *y = b;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

int store_view_build(store *s, store_view_params params, store_view *v, tailor_error *err) {
    memset(v, 0, sizeof *v);
    arena_init(&v->strings, 0);
    rowid_map umap = {0}, imap = {0};
    int rc = load_entities(s, "users", &v->n_users, &v->user_rowid, &v->user_ext,
                           &v->user_index, &umap, &v->strings, err);
    if (rc) {
        arena_deinit(&v->strings);
        return rc;
    }
    rc = load_entities(s, "items", &v->n_items, &v->item_rowid, &v->item_ext, &v->item_index,
                       &imap, &v->strings, err);
    if (rc) {
        rowid_map_deinit(&umap);
        free(v->user_rowid);
        free(v->user_ext);
        hmap_deinit(&v->user_index);
        arena_deinit(&v->strings);
        return rc;
    }

    int64_t kind = 0;
    if (params.kind) {
        rc = store_kind_id(s, params.kind, false, &kind, err);
        if (rc) goto fail;
    }
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT user_id, item_id, value, ts FROM events"
                           " WHERE (?1 = 0 OR kind = ?1) AND (?2 = 0 OR value >= ?3)", &st) != SDB_OK) {
        rc = store_db_err(s, err, "events");
        goto fail;
    }
    sdb_bind_int64(st, 1, kind);
    sdb_bind_int64(st, 2, params.has_min_value);
    sdb_bind_double(st, 3, params.min_value);

    VEC(int32_t) eu = {0};
    VEC(seq_ev) ev = {0};
    int step;
    while ((step = sdb_step(st)) == SDB_ROW) {
        int32_t u = rowid_map_get(&umap, sdb_col_int64(st, 0));
        int32_t i = rowid_map_get(&imap, sdb_col_int64(st, 1));
        if (u < 0 || i < 0) continue; /* cannot happen with foreign keys on */
        seq_ev e = {.ts = sdb_col_int64(st, 3),
                    .item = i,
                    .value = sdb_col_null(st, 2)
                                 ? 1.0f
                                 : (float)sdb_col_double(st, 2),
                    .order = (int64_t)ev.len};
        vec_push(&eu, u);
        vec_push(&ev, e);
    }
    sdb_finalize(st);
    if (step != SDB_DONE) {
        vec_free(&eu);
        vec_free(&ev);
        rc = store_db_err(s, err, "events");
        goto fail;
    }

    /* Counting sort by user. */
    size_t n = ev.len, nu = (size_t)v->n_users;
    v->n_events = (int64_t)n;
    v->seq_ptr = xcalloc(nu + 1, sizeof(int64_t));
    for (size_t k = 0; k < n; k++) v->seq_ptr[eu.data[k] + 1]++;
    for (size_t u = 0; u < nu; u++) v->seq_ptr[u + 1] += v->seq_ptr[u];
    seq_ev *sorted = xmalloc((n ? n : 1) * sizeof *sorted);
    int64_t *fill = xmalloc((nu + 1) * sizeof *fill);
    memcpy(fill, v->seq_ptr, (nu + 1) * sizeof *fill);
    for (size_t k = 0; k < n; k++) sorted[fill[eu.data[k]]++] = ev.data[k];
    free(fill);
    vec_free(&eu);
    vec_free(&ev);

    v->seq_items = xmalloc((n ? n : 1) * sizeof(int32_t));
    v->seq_times = xmalloc((n ? n : 1) * sizeof(int64_t));
    v->indptr = xcalloc(nu + 1, sizeof(int64_t));
    v->indices = xmalloc((n ? n : 1) * sizeof(int32_t));
    v->values = xmalloc((n ? n : 1) * sizeof(float));
    v->times = xmalloc((n ? n : 1) * sizeof(int64_t));
    int64_t nnz = 0;
    for (size_t u = 0; u < nu; u++) {
        seq_ev *row = sorted + v->seq_ptr[u];
        size_t len = (size_t)(v->seq_ptr[u + 1] - v->seq_ptr[u]);
        qsort(row, len, sizeof *row, seq_ev_cmp);
        for (size_t k = 0; k < len; k++) {
            v->seq_items[v->seq_ptr[u] + (int64_t)k] = row[k].item;
            v->seq_times[v->seq_ptr[u] + (int64_t)k] = row[k].ts;
        }
        qsort(row, len, sizeof *row, seq_ev_item_cmp);
        for (size_t k = 0; k < len; k++) {
            if (k + 1 < len && row[k + 1].item == row[k].item) continue; /* keep the latest */
            v->indices[nnz] = row[k].item;
            v->values[nnz] = row[k].value;
            v->times[nnz] = row[k].ts;
            nnz++;
        }
        v->indptr[u + 1] = nnz;
    }
    v->nnz = nnz;
    free(sorted);
    rowid_map_deinit(&umap);
    rowid_map_deinit(&imap);
    return 0;

fail:
    rowid_map_deinit(&umap);
    rowid_map_deinit(&imap);
    store_view_deinit(v);
    return rc;
}

void store_view_deinit(store_view *v) {
    free(v->user_rowid);
    free(v->item_rowid);
    free(v->user_ext);
    free(v->item_ext);
    if (v->user_index.cap) hmap_deinit(&v->user_index);
    if (v->item_index.cap) hmap_deinit(&v->item_index);
    free(v->indptr);
    free(v->indices);
    free(v->values);
    free(v->times);
    free(v->seq_ptr);
    free(v->seq_items);
    free(v->seq_times);
    arena_deinit(&v->strings);
    memset(v, 0, sizeof *v);
}

int32_t store_view_user(const store_view *v, const char *ext_id) {
    int64_t i;
    return hmap_get(&v->user_index, ext_id, strlen(ext_id), &i) ? (int32_t)i : -1;
}

int32_t store_view_item(const store_view *v, const char *ext_id) {
    int64_t i;
    return hmap_get(&v->item_index, ext_id, strlen(ext_id), &i) ? (int32_t)i : -1;
}
