/* import.c — what every importer shares: the transaction, the in-memory
 * external-id maps (users, items, kinds), the duplicate policy and the
 * progress bar. Maps hold one entry per user/item/kind — what is kept —
 * never one per event. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/import_internal.h"

/* A pending event REPLACE dropped (kind 0 is no kind). */
#define DROPPED_KIND 0
/* seen's values: 0 for a stored event; (gen << 24) | (place in pending + 1)
 * for a pending one, which is pending only while gen is current. */
#define SEEN_PENDING(c, v) ((uint64_t)(v) >> 24 == (c)->gen)

static int ctx_flush(ing_ctx *c, tailor_error *err);

static int seen_stored(void *ctx, int64_t user_id, int64_t item_id, int64_t kind) {
    ing_ctx *c = ctx;
    int64_t key[3] = {user_id, item_id, kind};
    hmap_put(&c->seen, (const char *)key, sizeof key, 0);
    return 0;
}

/* An event whose (user, item, kind) is there already: ERROR refuses it,
 * SKIP counts it and sets *skip, REPLACE lets it through. */
static int on_duplicate(ing_ctx *c, bool *skip, tailor_error *err) {
    *skip = false;
    if (c->dup == STORE_DUP_ERROR)
        return err_set(err, TAILOR_EEXISTS,
                       "duplicate event for this user, item and kind "
                       "(use --on-duplicate keep, skip or replace)");
    if (c->dup == STORE_DUP_SKIP) {
        c->st->skipped++;
        *skip = true;
    }
    return 0;
}

static int event_in_memory(ing_ctx *c, const store_event *ev, tailor_error *err) {
    int64_t key[3] = {ev->user_id, ev->item_id, ev->kind}, where;
    if (hmap_get(&c->seen, (const char *)key, sizeof key, &where)) {
        bool skip;
        int rc = on_duplicate(c, &skip, err);
        if (rc || skip) return rc;
        /* REPLACE: the newest earlier one goes (older ones went when it came). */
        if (SEEN_PENDING(c, where)) c->pending[(where & 0xffffff) - 1].kind = DROPPED_KIND;
        else vec_push(&c->gone, *ev);
        c->st->replaced++;
    }
    hmap_put(&c->seen, (const char *)key, sizeof key, (int64_t)(((uint64_t)c->gen << 24) | (c->npending + 1)));
    c->pending[c->npending++] = *ev;
    c->st->events++;
    return c->npending == STORE_EVENT_FLUSH ? ctx_flush(c, err) : 0;
}

int ing_ctx_begin(ing_ctx *c, store *s, store_dup_policy dup, ing_stats *st,
                  const char *label, uint64_t total_bytes, int64_t expected_events,
                  tailor_error *err) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->dup = dup;
    c->st = st;
    memset(st, 0, sizeof *st);
    c->t0 = timer_now_ns();
    c->pending = xmalloc(STORE_EVENT_FLUSH * sizeof *c->pending);
    hmap_init(&c->users, 1024);
    hmap_init(&c->items, 1024);
    hmap_init(&c->kinds, 16);
    /* Bulk mode drops the events index (whoever needs it next rebuilds
     * it: a sort of the whole table), so it is used only when the import at
     * least doubles the table. */
    c->seen_in_memory = dup != STORE_DUP_KEEP && store_lookups_remote(s);
    c->gen = 1;
    c->bulk = (dup == STORE_DUP_KEEP || c->seen_in_memory) && expected_events >= 10000 &&
              expected_events >= store_events_count(s);
    int rc = c->bulk ? store_events_bulk_begin(s, err) : 0;
    if (!rc) rc = store_begin(s, err);
    if (!rc && c->bulk) rc = store_events_bulk_drop_indexes(s, err);
    if (c->seen_in_memory) hmap_init(&c->seen, 1024);
    if (!rc && c->seen_in_memory) rc = store_events_keys_each(s, seen_stored, c, err);
    if (!rc) rc = store_idmap_load(s, "users", &c->users, err);
    if (!rc) rc = store_idmap_load(s, "items", &c->items, err);
    if (rc) {
        store_rollback(s);
        if (c->bulk) store_events_bulk_finish(s);
        if (c->seen_in_memory) hmap_deinit(&c->seen);
        vec_free(&c->gone);
        hmap_deinit(&c->users);
        hmap_deinit(&c->items);
        hmap_deinit(&c->kinds);
        free(c->pending);
        return rc;
    }
    progress_begin(&c->bar, label, total_bytes);
    return 0;
}

static int ctx_flush(ing_ctx *c, tailor_error *err) {
    int rc = 0;
    if (c->gone.len) rc = store_events_delete_same(c->s, c->gone.data, c->gone.len, err);
    c->gone.len = 0;
    size_t n = 0;
    for (size_t i = 0; i < c->npending; i++)
        if (c->pending[i].kind != DROPPED_KIND) c->pending[n++] = c->pending[i];
    if (!rc) rc = store_events_add(c->s, c->pending, n, err);
    c->npending = 0;
    c->gen++; /* what was pending is stored now */
    return rc;
}

int ing_ctx_end(ing_ctx *c, int rc, tailor_error *err) {
    if (rc == 0 && c->npending) rc = ctx_flush(c, err);
    if (rc == 0 && c->bulk) rc = store_events_bulk_restore(c->s, err);
    progress_end(&c->bar);
    if (rc == 0) rc = store_commit(c->s, err);
    if (rc != 0) store_rollback(c->s);
    if (c->bulk) store_events_bulk_finish(c->s);
    if (c->seen_in_memory) hmap_deinit(&c->seen);
    vec_free(&c->gone);
    hmap_deinit(&c->users);
    hmap_deinit(&c->items);
    hmap_deinit(&c->kinds);
    free(c->pending);
    c->st->seconds = timer_seconds_since(c->t0);
    return rc;
}

void ing_ctx_progress(ing_ctx *c, uint64_t bytes_done) {
    if ((++c->tick & 4095) == 0) progress_update(&c->bar, bytes_done);
}

/* Adds or reuses an entity. define = the row comes from a catalogue file, so
 * the duplicate policy applies; otherwise an existing row is simply reused. */
static int ctx_entity(ing_ctx *c, bool is_user, const char *ext, size_t len,
                      const char *title, const char *text, const char *attrs, bool define,
                      int64_t *id, tailor_error *err) {
    hmap *m = is_user ? &c->users : &c->items;
    int64_t have;
    bool exists = hmap_get(m, ext, len, &have);
    if (exists && !define) {
        *id = have;
        return 0;
    }
    if (exists) {
        if (c->dup == STORE_DUP_ERROR)
            return err_set(err, TAILOR_EEXISTS,
                           "%s '%.*s' already exists (use --on-duplicate skip or replace)",
                           is_user ? "user" : "item", (int)len, ext);
        *id = have;
        if (c->dup == STORE_DUP_REPLACE) {
            c->st->replaced++;
            char *e = xstrndup(ext, len);
            int rc = is_user ? store_user_put(c->s, e, attrs, STORE_DUP_REPLACE, NULL, NULL, err)
                             : store_item_put(c->s, e, title, text, attrs, STORE_DUP_REPLACE,
                                              NULL, NULL, err);
            free(e);
            return rc;
        }
        c->st->skipped++;
        return 0;
    }
    /* Absent from the map of stored rows: a plain insert. */
    int rc = is_user ? store_user_add(c->s, ext, len, attrs, id, err)
                     : store_item_add(c->s, ext, len, title, text, attrs, id, err);
    if (rc) return rc;
    hmap_put(m, ext, len, *id);
    if (is_user) c->st->users++;
    else c->st->items++;
    return 0;
}

int ing_user(ing_ctx *c, const char *ext, size_t len, const char *attrs, bool define,
             int64_t *id, tailor_error *err) {
    return ctx_entity(c, true, ext, len, NULL, NULL, attrs, define, id, err);
}

int ing_item(ing_ctx *c, const char *ext, size_t len, const char *title, const char *text,
             const char *attrs, bool define, int64_t *id, tailor_error *err) {
    return ctx_entity(c, false, ext, len, title, text, attrs, define, id, err);
}

bool ing_user_known(ing_ctx *c, const char *ext, size_t len, int64_t *id) {
    return hmap_get(&c->users, ext, len, id);
}

bool ing_item_known(ing_ctx *c, const char *ext, size_t len, int64_t *id) {
    return hmap_get(&c->items, ext, len, id);
}

int ing_kind(ing_ctx *c, const char *name, size_t len, int64_t *id, tailor_error *err) {
    if (hmap_get(&c->kinds, name, len, id)) return 0;
    char *n = xstrndup(name, len);
    int rc = store_kind_id(c->s, n, true, id, err);
    free(n);
    if (!rc) hmap_put(&c->kinds, name, len, *id);
    return rc;
}

int ing_event(ing_ctx *c, const store_event *ev, tailor_error *err) {
    if (c->dup == STORE_DUP_KEEP) {
        c->pending[c->npending++] = *ev;
        c->st->events++;
        return c->npending == STORE_EVENT_FLUSH ? ctx_flush(c, err) : 0;
    }
    if (c->seen_in_memory) return event_in_memory(c, ev, err);
    bool found;
    int rc = store_event_find(c->s, ev, &found, err);
    if (rc) return rc;
    if (found) {
        bool skip;
        if ((rc = on_duplicate(c, &skip, err)) || skip) return rc;
        if ((rc = store_event_delete_same(c->s, ev, err))) return rc;
        c->st->replaced++;
    }
    rc = store_event_add(c->s, ev, err);
    if (!rc) c->st->events++;
    return rc;
}

int ing_tag(ing_ctx *c, int64_t user_id, int64_t item_id, const char *tag, int64_t ts,
            tailor_error *err) {
    bool inserted;
    int rc = store_tag_add(c->s, user_id, item_id, tag, ts, c->dup, &inserted, err);
    if (rc) return rc;
    if (inserted) c->st->tags++;
    else if (c->dup == STORE_DUP_REPLACE) c->st->replaced++;
    else c->st->skipped++;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so parsing needs no timezone state. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool ing_parse_time(const char *s, size_t n, int64_t *out) {
    if (parse_i64(s, n, out)) return true;
    double d;
    if (parse_f64(s, n, &d) && d > -1e15 && d < 1e15) {
        *out = (int64_t)d;
        return true;
    }
    /* YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM] */
    int y, mo, da, h = 0, mi = 0, se = 0;
    if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &da) || mo < 1 || mo > 12 || da < 1 || da > 31)
        return false;
    size_t i = 10;
    if (i < n && (s[i] == 'T' || s[i] == ' ')) {
        if (n < i + 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &h) ||
            !digits(s + i + 4, 2, &mi) || h > 23 || mi > 59)
            return false;
        i += 6;
        if (i < n && s[i] == ':') {
            if (n < i + 3 || !digits(s + i + 1, 2, &se) || se > 60) return false;
            i += 3;
            if (i < n && s[i] == '.') {
                i++;
                while (i < n && s[i] >= '0' && s[i] <= '9') i++;
            }
        }
    }
    int64_t offset = 0;
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om = 0;
        int sign = s[i] == '-' ? -1 : 1;
        if (n < i + 3 || !digits(s + i + 1, 2, &oh)) return false;
        i += 3;
        if (i < n && s[i] == ':') i++;
        if (i + 2 <= n && digits(s + i, 2, &om)) i += 2;
        offset = sign * (oh * 3600 + om * 60);
    }
    if (i != n) return false;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)da) * 86400 + h * 3600 + mi * 60 + se -
           offset;
    return true;
}
