/* serving.c — the tables the server reads and writes beside the data:
 * API keys (hashes only), client event ids (idempotent retries) and the
 * summary of a user. Every statement here is short; the server calls them
 * once per request. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "store/store_internal.h"


static void key_from_row(sdb_stmt *st, store_key *k) {
    k->id = sdb_col_int64(st, 0);
    k->name = store_col_strdup(st, 1);
    k->role = store_col_strdup(st, 2);
    k->user = store_col_strdup(st, 3);
    k->prefix = store_col_strdup(st, 4);
    k->rate = sdb_col_double(st, 5);
    k->created_at = sdb_col_int64(st, 6);
    k->revoked_at = sdb_col_int64(st, 7);
}

static void key_hash(const char *key, uint8_t out[32]) { SHA256((const unsigned char *)key, strlen(key), out); }

int store_key_add(store *s, const store_key *k, const char *key, int64_t *id, tailor_error *err) {
    uint8_t hash[32];
    key_hash(key, hash);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.12s", key); /* what lists show */
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO api_keys (name, role, user_ext, prefix, hash, rate, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st) != SDB_OK)
        return store_db_err(s, err, "api key");
    store_bind_text(st, 1, k->name);
    store_bind_text(st, 2, k->role);
    store_bind_text(st, 3, k->user);
    store_bind_text(st, 4, prefix);
    sdb_bind_blob(st, 5, hash, 32);
    sdb_bind_double(st, 6, k->rate);
    sdb_bind_int64(st, 7, (int64_t)time(NULL));
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "add api key");
    sdb_finalize(st);
    if (!rc && id) *id = sdb_last_id(s->db);
    return rc;
}

int store_key_create(store *s, const store_key *k, char key_out[STORE_KEY_LEN + 1], int64_t *id, tailor_error *err) {
    static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[24];
    if (RAND_bytes(raw, sizeof raw) != 1) return err_set(err, TAILOR_EINTERNAL, "no random bytes for a key");
    memcpy(key_out, "tlr_", 4);
    size_t n = 4;
    for (size_t i = 0; i < sizeof raw; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int sh = 18; sh >= 0; sh -= 6) key_out[n++] = B64URL[v >> sh & 63];
    }
    key_out[n] = 0;
    return store_key_add(s, k, key_out, id, err);
}

/* Every request reads this: a cached statement. */
int store_key_find(store *s, const char *key, store_key *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    uint8_t hash[32];
    key_hash(key, hash);
    sdb_stmt *st = store_stmt(s, ST_KEY_FIND, err);
    if (!st) return TAILOR_EDB;
    sdb_bind_blob(st, 1, hash, 32);
    int step = sdb_step(st), rc = 0;
    if (step == SDB_ROW) key_from_row(st, out);
    else if (step == SDB_DONE) rc = err_set(err, TAILOR_ENOTFOUND, "no such key");
    else rc = store_db_err(s, err, "api keys");
    sdb_reset(st);
    return rc;
}

int store_keys_list(store *s, store_key **out, size_t *n, tailor_error *err) {
    *out = NULL;
    *n = 0;
    sdb_stmt *st;
    if (sdb_prepare(s->db, STORE_KEY_SELECT " ORDER BY id", &st) != SDB_OK)
        return store_db_err(s, err, "api keys");
    VEC(store_key) v = {0};
    int step;
    while ((step = sdb_step(st)) == SDB_ROW) {
        store_key k;
        key_from_row(st, &k);
        vec_push(&v, k);
    }
    sdb_finalize(st);
    if (step != SDB_DONE) {
        store_keys_free(v.data, v.len);
        return store_db_err(s, err, "api keys");
    }
    *out = v.data;
    *n = v.len;
    return 0;
}

int store_key_revoke(store *s, const char *which, tailor_error *err) {
    store_key *keys;
    size_t n;
    int rc = store_keys_list(s, &keys, &n, err);
    if (rc) return rc;
    /* An id or a prefix names one key; a name must name one key in force. */
    int64_t id = 0, as_id = 0;
    int live = 0, dead = 0;
    bool numeric = parse_i64(which, strlen(which), &as_id), exact = false, revoked = false;
    for (size_t i = 0; i < n && !exact; i++) {
        if ((numeric && keys[i].id == as_id) || !strcmp(keys[i].prefix, which)) {
            exact = true, id = keys[i].id, revoked = keys[i].revoked_at != 0;
        } else if (keys[i].name && !strcmp(keys[i].name, which)) {
            if (keys[i].revoked_at) dead++;
            else live++, id = keys[i].id;
        }
    }
    store_keys_free(keys, n);
    if ((exact && revoked) || (!exact && !live && dead))
        return err_set(err, TAILOR_EEXISTS, "key '%s' is revoked already", which);
    if (!exact && !live)
        return err_set(err, TAILOR_ENOTFOUND, "no key with id, prefix or name '%s' (tailor keys list)", which);
    if (!exact && live > 1)
        return err_set(err, TAILOR_EINVAL, "%d keys are named '%s'; revoke one by its id or prefix", live, which);
    sdb_stmt *st;
    if (sdb_prepare(s->db, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1", &st) != SDB_OK)
        return store_db_err(s, err, "api keys");
    sdb_bind_int64(st, 1, id);
    sdb_bind_int64(st, 2, (int64_t)time(NULL));
    rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "revoke key");
    sdb_finalize(st);
    return rc;
}

void store_key_deinit(store_key *k) {
    free(k->name);
    free(k->role);
    free(k->user);
    free(k->prefix);
    memset(k, 0, sizeof *k);
}

void store_keys_free(store_key *k, size_t n) {
    for (size_t i = 0; i < n; i++) store_key_deinit(&k[i]);
    free(k);
}

int store_event_claim(store *s, int64_t user_id, const char *client_id, bool *fresh, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO event_ids (user_id, client_id) VALUES (?1, ?2)"
                           " ON CONFLICT DO NOTHING", &st) != SDB_OK)
        return store_db_err(s, err, "event ids");
    sdb_bind_int64(st, 1, user_id);
    sdb_bind_text_static(st, 2, client_id, -1);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "claim event id");
    sdb_finalize(st);
    if (!rc) *fresh = sdb_changes(s->db) == 1;
    return rc;
}

int store_user_info_get(store *s, const char *ext_id, store_user_info *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    int rc = store_events_index_ensure(s, err);
    if (rc) return rc;
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT u.id, u.attributes, (SELECT count(*) FROM events WHERE user_id = u.id),"
                           " (SELECT coalesce(min(ts), 0) FROM events WHERE user_id = u.id),"
                           " (SELECT coalesce(max(ts), 0) FROM events WHERE user_id = u.id)"
                           " FROM users u WHERE u.ext_id = ?1", &st) != SDB_OK)
        return store_db_err(s, err, "users");
    sdb_bind_text_static(st, 1, ext_id, -1);
    int step = sdb_step(st);
    if (step == SDB_ROW) {
        out->id = sdb_col_int64(st, 0);
        out->attributes = store_col_strdup(st, 1);
        out->events = sdb_col_int64(st, 2);
        out->first_ts = sdb_col_int64(st, 3);
        out->last_ts = sdb_col_int64(st, 4);
    } else if (step == SDB_DONE) {
        rc = err_set(err, TAILOR_ENOTFOUND, "unknown user '%s'", ext_id);
    } else {
        rc = store_db_err(s, err, "users");
    }
    sdb_finalize(st);
    return rc;
}

char *store_user_ext(store *s, int64_t id) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT ext_id FROM users WHERE id = ?1", &st) != SDB_OK) return NULL;
    sdb_bind_int64(st, 1, id);
    char *ext = sdb_step(st) == SDB_ROW ? store_col_strdup(st, 0) : NULL;
    sdb_finalize(st);
    return ext;
}

/* ---- the knowledge graph ------------------------------------------------------ */

int store_kg_link(store *s, const char *entity, int64_t item_id, store_dup_policy dup, bool *inserted,
                  tailor_error *err) {
    const char *sql = dup == STORE_DUP_REPLACE ? "INSERT INTO kg_items (entity, item_id) VALUES (?1, ?2)"
                                                 " ON CONFLICT (entity) DO UPDATE SET item_id = excluded.item_id"
                      : dup == STORE_DUP_SKIP ? "INSERT INTO kg_items (entity, item_id) VALUES (?1, ?2)"
                                                " ON CONFLICT DO NOTHING"
                                              : "INSERT INTO kg_items (entity, item_id) VALUES (?1, ?2)";
    sdb_stmt *st;
    if (sdb_prepare(s->db, sql, &st) != SDB_OK) return store_db_err(s, err, "kg items");
    sdb_bind_text_static(st, 1, entity, -1);
    sdb_bind_int64(st, 2, item_id);
    int step = sdb_step(st), rc = 0;
    if (step == SDB_UNIQUE || step == SDB_UNIQUE)
        rc = err_set(err, TAILOR_EEXISTS, "entity '%s' is linked to an item already", entity);
    else if (step != SDB_DONE) rc = store_db_err(s, err, "link entity");
    if (!rc && inserted) *inserted = sdb_changes(s->db) > 0;
    sdb_finalize(st);
    return rc;
}

int store_kg_each(store *s, store_triple_fn cb, void *ctx, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT head, relation, tail FROM kg_triples WHERE accepted = 1 ORDER BY id", &st) != SDB_OK)
        return store_db_err(s, err, "kg triples");
    int rc = 0, step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW)
        rc = cb(ctx, sdb_col_text(st, 0), sdb_col_text(st, 1),
                sdb_col_text(st, 2));
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "kg triples");
    sdb_finalize(st);
    return rc;
}

int store_kg_links_each(store *s, store_link_fn cb, void *ctx, tailor_error *err) {
    sdb_stmt *st;
    /* In the order they were linked (SQLite's rowid; PostgreSQL has no
     * such order: by entity). */
    if (sdb_prepare(s->db,
                    store_is_pg(s) ? "SELECT k.entity, i.ext_id FROM kg_items k JOIN items i ON i.id = k.item_id"
                                     " ORDER BY k.entity"
                                   : "SELECT k.entity, i.ext_id FROM kg_items k JOIN items i ON i.id = k.item_id"
                                     " ORDER BY k.rowid",
                    &st) != SDB_OK)
        return store_db_err(s, err, "kg items");
    int rc = 0, step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW)
        rc = cb(ctx, sdb_col_text(st, 0), sdb_col_text(st, 1));
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "kg items");
    sdb_finalize(st);
    return rc;
}

int store_kg_tags_derive(store *s, int64_t *added, tailor_error *err) {
    int rc = store_exec(s,
                        "INSERT INTO kg_triples (head, relation, tail, source, confidence)"
                        " SELECT DISTINCT 'item:' || i.ext_id, 'tag', 'tag:' || lower(trim(t.tag)), 'catalogue', 1.0"
                        " FROM tags t JOIN items i ON i.id = t.item_id WHERE trim(t.tag) <> '' ON CONFLICT DO NOTHING",
                        err);
    if (!rc && added) *added += sdb_changes(s->db);
    return rc;
}

int store_kg_propose(store *s, const char *head, const char *relation, const char *tail, const char *source,
                     double confidence, bool *inserted, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "INSERT INTO kg_triples (head, relation, tail, source, confidence, accepted)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT DO NOTHING", &st) != SDB_OK)
        return store_db_err(s, err, "kg proposals");
    sdb_bind_text_static(st, 1, head, -1);
    sdb_bind_text_static(st, 2, relation, -1);
    sdb_bind_text_static(st, 3, tail, -1);
    sdb_bind_text_static(st, 4, source, -1);
    sdb_bind_double(st, 5, confidence < 0 ? 0 : confidence > 1 ? 1 : confidence);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "propose triple");
    if (!rc && inserted) *inserted = sdb_changes(s->db) > 0;
    sdb_finalize(st);
    return rc;
}

int store_kg_accept(store *s, double min_confidence, const char *source, int64_t *accepted, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "UPDATE kg_triples SET accepted = 1 WHERE accepted = 0 AND confidence >= ?1"
                           " AND (?2 IS NULL OR source = ?2)", &st) != SDB_OK)
        return store_db_err(s, err, "kg accept");
    sdb_bind_double(st, 1, min_confidence);
    store_bind_text(st, 2, source);
    int rc = sdb_step(st) == SDB_DONE ? 0 : store_db_err(s, err, "kg accept");
    if (!rc && accepted) *accepted = sdb_changes(s->db);
    sdb_finalize(st);
    return rc;
}

int store_kg_pending_each(store *s, store_proposal_fn cb, void *ctx, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT head, relation, tail, source, confidence FROM kg_triples WHERE accepted = 0"
                           " ORDER BY confidence DESC, id", &st) != SDB_OK)
        return store_db_err(s, err, "kg proposals");
    int rc = 0, step;
    while (!rc && (step = sdb_step(st)) == SDB_ROW)
        rc = cb(ctx, sdb_col_text(st, 0), sdb_col_text(st, 1),
                sdb_col_text(st, 2), sdb_col_text(st, 3),
                sdb_col_double(st, 4));
    if (!rc && step != SDB_DONE) rc = store_db_err(s, err, "kg proposals");
    sdb_finalize(st);
    return rc;
}

int store_item_tags(store *s, int64_t item_id, sb *out, tailor_error *err) {
    sdb_stmt *st;
    if (sdb_prepare(s->db, "SELECT DISTINCT lower(trim(tag)) FROM tags WHERE item_id = ?1 ORDER BY 1", &st) != SDB_OK)
        return store_db_err(s, err, "tags");
    sdb_bind_int64(st, 1, item_id);
    int step, n = 0;
    while ((step = sdb_step(st)) == SDB_ROW) sb_printf(out, "%s%s", n++ ? ", " : "", sdb_col_text(st, 0));
    sdb_finalize(st);
    return step == SDB_DONE ? 0 : store_db_err(s, err, "tags");
}
