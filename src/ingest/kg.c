/* kg.c — knowledge-graph imports: triples (head, relation, tail) from
 * headerless TSV/CSV or JSON Lines, an optional map from entities to
 * catalogue items (KGCN's item_index2entity_id: item, then entity) and an
 * optional relation-name table, all in one transaction like every import;
 * and the triples a catalogue implies (its categorical and numeric
 * attributes, its tags), so that any catalogue has a graph. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/import_internal.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

/* Headerless rows of two or three fields: TSV unless the name says CSV. */
static int rows_open(ing_reader *r, const char *path, tailor_error *err) {
    ing_reader_params p = ing_csv_params();
    if (!ends_with(path, ".csv")) p.sep = "\t", p.quoting = false;
    return ing_reader_open(r, path, p, err);
}

typedef VEC(char *) names_vec;

/* A relation-name table: id, name. */
static int load_relation_names(const char *path, hmap *ids, arena *a, names_vec *names, tailor_error *err) {
    ing_reader r;
    int rc = rows_open(&r, path, err);
    if (rc) return rc;
    while ((rc = ing_reader_next(&r, err)) == 1) {
        if (ing_nfields(&r) < 2) {
            rc = ing_reader_short(&r, 2, "name", err);
            break;
        }
        hmap_put(ids, ing_field_str(&r, 0), ing_field_len(&r, 0), (int64_t)names->len);
        vec_push(names, arena_strdup(a, ing_field_str(&r, 1)));
    }
    ing_reader_close(&r);
    return rc < 0 ? rc : 0;
}

/* Adds a triple; counts what the duplicate policy kept out. */
static int add_triple(ing_ctx *c, const char *h, const char *rel, const char *t, const char *src, const char *path,
                      int64_t line, tailor_error *err) {
    if (!*h || !*rel || !*t)
        return err_data(err, path, line, !*h ? "head" : !*rel ? "relation" : "tail", "empty value");
    store_dup_policy dup = c->dup == STORE_DUP_KEEP ? STORE_DUP_SKIP : c->dup; /* a set of facts has no twins */
    bool added = false;
    int rc = store_kg_add(c->s, h, rel, t, src, 1.0, dup, &added, err);
    if (rc == TAILOR_EEXISTS)
        return err_data(err, path, line, NULL, "triple (%s, %s, %s) exists already (--on-duplicate skip keeps it)", h,
                        rel, t);
    c->st->triples += added;
    c->st->skipped += !rc && !added;
    return rc;
}

static int import_triples(ing_ctx *c, const char *path, const hmap *rel_ids, char *const *rel_names,
                          tailor_error *err) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json")) {
        ing_table *t;
        int rc = ing_table_open(&t, path, ING_TABLE_JSONL, err);
        if (rc) return rc;
        int ch = ing_table_col(t, "head"), cr = ing_table_col(t, "relation"), ct = ing_table_col(t, "tail");
        while ((rc = ing_table_next(t, err)) == 1) {
            const char *v[3];
            size_t n[3];
            int cols[3] = {ch, cr, ct};
            static const char *const names[3] = {"head", "relation", "tail"};
            char *s[3] = {0};
            rc = 0;
            for (int k = 0; k < 3 && !rc; k++) {
                if (!ing_table_get(t, cols[k], &v[k], &n[k]))
                    rc = err_data(err, path, ing_table_line(t), names[k], "missing value");
                else s[k] = xstrndup(v[k], n[k]);
            }
            int64_t rid;
            const char *rel = !rc && rel_ids && hmap_get(rel_ids, s[1], strlen(s[1]), &rid) ? rel_names[rid] : s[1];
            if (!rc) rc = add_triple(c, s[0], rel, s[2], "import", path, ing_table_line(t), err);
            for (int k = 0; k < 3; k++) free(s[k]);
            if (rc) break;
            ing_ctx_progress(c, ing_table_bytes_done(t));
        }
        ing_table_close(t);
        return rc < 0 ? rc : 0;
    }
    ing_reader r;
    int rc = rows_open(&r, path, err);
    if (rc) return rc;
    bool first = true;
    while ((rc = ing_reader_next(&r, err)) == 1) {
        rc = 0;
        if (ing_nfields(&r) < 3) {
            rc = ing_reader_short(&r, 3, ing_nfields(&r) < 2 ? "relation" : "tail", err);
            break;
        }
        if (ing_nfields(&r) > 3) {
            rc = err_data(err, path, r.line, NULL, "expected 3 fields (head, relation, tail), found %zu",
                          ing_nfields(&r));
            break;
        }
        const char *h = ing_field_str(&r, 0), *rel = ing_field_str(&r, 1), *t = ing_field_str(&r, 2);
        if (first && !strcasecmp(h, "head") && !strcasecmp(rel, "relation") && !strcasecmp(t, "tail")) {
            first = false; /* a header row */
            continue;
        }
        first = false;
        int64_t rid;
        if (rel_ids && hmap_get(rel_ids, rel, ing_field_len(&r, 1), &rid)) rel = rel_names[rid];
        if ((rc = add_triple(c, h, rel, t, "import", path, r.line, err))) break;
        ing_ctx_progress(c, r.bytes_done);
    }
    ing_reader_close(&r);
    return rc < 0 ? rc : 0;
}

/* The entity map: item external id, then entity. Unknown items are
 * created (as an event log creates them). */
static int import_links(ing_ctx *c, const char *path, tailor_error *err) {
    ing_reader r;
    int rc = rows_open(&r, path, err);
    if (rc) return rc;
    while ((rc = ing_reader_next(&r, err)) == 1) {
        rc = 0;
        if (ing_nfields(&r) != 2) {
            rc = ing_nfields(&r) < 2 ? ing_reader_short(&r, 2, "entity", err)
                                     : err_data(err, path, r.line, NULL, "expected 2 fields (item, entity), found %zu",
                                                ing_nfields(&r));
            break;
        }
        const char *item = ing_field_str(&r, 0), *entity = ing_field_str(&r, 1);
        if (!*item || !*entity) {
            rc = err_data(err, path, r.line, !*item ? "item" : "entity", "empty value");
            break;
        }
        int64_t iid;
        rc = ing_item(c, item, ing_field_len(&r, 0), NULL, NULL, NULL, false, &iid, err);
        bool inserted = false;
        if (!rc) rc = store_kg_link(c->s, entity, iid, c->dup == STORE_DUP_KEEP ? STORE_DUP_ERROR : c->dup, &inserted, err);
        if (rc == TAILOR_EEXISTS) {
            rc = err_data(err, path, r.line, "entity", "'%s' is linked to an item already (--on-duplicate skip or replace)",
                          entity);
            break;
        }
        if ((rc = ing_at(err, rc, path, r.line))) break;
        c->st->links += inserted;
    }
    ing_reader_close(&r);
    return rc < 0 ? rc : 0;
}

int ing_kg(store *s, const char *path, ing_kg_params p, ing_stats *st, tailor_error *err) {
    hmap rel_ids;
    arena a;
    names_vec rel_names = {0};
    hmap_init(&rel_ids, 64);
    arena_init(&a, 0);
    int rc = p.relation_names ? load_relation_names(p.relation_names, &rel_ids, &a, &rel_names, err) : 0;
    ing_ctx c;
    if (!rc) rc = ing_ctx_begin(&c, s, p.dup, st, "import kg", 0, 0, err);
    if (!rc) {
        rc = import_triples(&c, path, p.relation_names ? &rel_ids : NULL, rel_names.data, err);
        if (!rc && p.entity_map) rc = import_links(&c, p.entity_map, err);
        rc = ing_ctx_end(&c, rc, err);
    }
    hmap_deinit(&rel_ids);
    arena_deinit(&a);
    vec_free(&rel_names);
    return rc;
}

/* ---- the catalogue's own graph ------------------------------------------------ */

typedef struct derive_ctx {
    ing_ctx *c;
    sb ent;
    int rc;
    tailor_error *err;
} derive_ctx;

static int derive_value(derive_ctx *d, const char *head, const char *key, const cJSON *v) {
    char num[64];
    const char *text = NULL;
    if (cJSON_IsString(v)) text = v->valuestring;
    else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble)) {
        snprintf(num, sizeof num, "%.0f", v->valuedouble);
        text = num;
    }
    if (!text || !*text || strlen(text) > 200) return 0;
    sb_clear(&d->ent);
    sb_printf(&d->ent, "%s:%s", key, text);
    bool added = false;
    int rc = store_kg_add(d->c->s, head, key, sb_str(&d->ent), "catalogue", 1.0, STORE_DUP_SKIP, &added, d->err);
    d->c->st->triples += added;
    return rc;
}

/* Attributes worth a node: categorical text values and whole numbers
 * (years), not identifiers (imdb_id, tmdb_id: one item each). */
static bool derive_key(const char *key) { return !ends_with(key, "_id") && !ends_with(key, "id"); }

static int derive_item(void *ctx, const store_item *it) {
    derive_ctx *d = ctx;
    char head[512];
    snprintf(head, sizeof head, "item:%s", it->ext_id);
    bool inserted = false;
    int rc = store_kg_link(d->c->s, head, it->id, STORE_DUP_SKIP, &inserted, d->err);
    d->c->st->links += inserted;
    cJSON *a = it->attributes ? cJSON_Parse(it->attributes) : NULL;
    const cJSON *f;
    cJSON_ArrayForEach(f, a) {
        if (rc || !derive_key(f->string)) continue;
        if (cJSON_IsArray(f)) {
            const cJSON *x;
            cJSON_ArrayForEach(x, f) if (!rc) rc = derive_value(d, head, f->string, x);
        } else {
            rc = derive_value(d, head, f->string, f);
        }
    }
    cJSON_Delete(a);
    return rc;
}

int ing_kg_derive(store *s, ing_stats *st, tailor_error *err) {
    ing_ctx c;
    int rc = ing_ctx_begin(&c, s, STORE_DUP_SKIP, st, "kg derive", 0, 0, err);
    if (rc) return rc;
    derive_ctx d = {.c = &c, .err = err};
    sb_init(&d.ent);
    rc = store_items_each(s, derive_item, &d, err);
    /* Tags: item -tag-> tag:TEXT (lower case, so spellings meet). */
    if (!rc) rc = store_kg_tags_derive(s, &st->triples, err);
    sb_deinit(&d.ent);
    return ing_ctx_end(&c, rc, err);
}
