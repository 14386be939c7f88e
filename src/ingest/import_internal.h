/* import_internal.h — private to src/ingest/: the context every importer
 * runs in (transaction, id maps, duplicate policy, progress). */
#ifndef TAILOR_IMPORT_INTERNAL_H
#define TAILOR_IMPORT_INTERNAL_H

#include "ingest/ingest.h"

typedef struct ing_ctx {
    store *s;
    store_dup_policy dup;
    ing_stats *st;
    hmap users, items, kinds; /* external id -> row id */
    progress bar;
    uint64_t t0, tick;
    bool bulk; /* foreign-key checks off, events index dropped */
    /* A remote store (PostgreSQL): duplicates are found in this map of
     * (user, item, kind) -> where the newest such event is (stored, or its
     * place in pending: SEEN_PENDING) instead of a look-up per event, and
     * events go in batches; REPLACE deletes the stored ones in one
     * statement per batch (gone) and drops pending ones in place. */
    bool seen_in_memory;
    hmap seen;
    uint32_t gen;  /* batches flushed so far + 1 */
    VEC(store_event) gone;
    /* KEEP policy (and seen_in_memory): events wait here and go in as one
     * multi-row insert (one COPY on PostgreSQL). */
    store_event *pending; /* STORE_EVENT_FLUSH of them */
    size_t npending;
} ing_ctx;

/* Opens the transaction and loads the id maps. expected_events estimates
 * how many events the import adds: when that is large next to what is
 * stored and duplicates are kept, the load runs in bulk mode. */
int ing_ctx_begin(ing_ctx *c, store *s, store_dup_policy dup, ing_stats *st,
                  const char *label, uint64_t total_bytes, int64_t expected_events,
                  tailor_error *err);
/* Commits when rc == 0, else rolls back; returns the final status. */
int ing_ctx_end(ing_ctx *c, int rc, tailor_error *err);
void ing_ctx_progress(ing_ctx *c, uint64_t bytes_done);

int ing_user(ing_ctx *c, const char *ext, size_t len, const char *attrs, bool define,
             int64_t *id, tailor_error *err);
int ing_item(ing_ctx *c, const char *ext, size_t len, const char *title, const char *text,
             const char *attrs, bool define, int64_t *id, tailor_error *err);
bool ing_user_known(ing_ctx *c, const char *ext, size_t len, int64_t *id);
bool ing_item_known(ing_ctx *c, const char *ext, size_t len, int64_t *id);
int ing_kind(ing_ctx *c, const char *name, size_t len, int64_t *id, tailor_error *err);
/* Adds an event under the context's duplicate policy. */
int ing_event(ing_ctx *c, const store_event *ev, tailor_error *err);
/* Adds a tag under the context's duplicate policy. */
int ing_tag(ing_ctx *c, int64_t user_id, int64_t item_id, const char *tag, int64_t ts,
            tailor_error *err);



/* Prefixes err with "PATH:LINE" for row-level failures that did not
 * already name their place (duplicates, database errors); returns rc. */
static inline int ing_at(tailor_error *err, int rc, const char *path, int64_t line) {
    if (rc && rc != TAILOR_EDATA) {
        err_prefix(err, "%s:%lld", path, (long long)line);
        if (err && rc != TAILOR_EDB) err->code = rc;
    }
    return rc;
}
#endif
