/* hmap.c — string-keyed open-addressing hash map (int64 values).
 * Load factor stays under 1/2; hash 0 is reserved for empty slots. Keys are
 * copied into the map's arena, so callers may pass transient buffers. */
#include <stdlib.h>
#include <string.h>

#include "base.h"

uint64_t hmap_hash(const void *key, size_t len) {
    /* FNV-1a, then a murmur finalizer to spread low bits (ids are often
     * short decimal strings that differ in one character). */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static void hmap_alloc(hmap *m, size_t cap) {
    m->cap = cap;
    m->hashes = xcalloc(cap, sizeof *m->hashes);
    m->keys = xmalloc(cap * sizeof *m->keys);
    m->klens = xmalloc(cap * sizeof *m->klens);
    m->vals = xmalloc(cap * sizeof *m->vals);
}

void hmap_init(hmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->len = 0;
    hmap_alloc(m, cap);
    arena_init(&m->keys_arena, 0);
}

void hmap_deinit(hmap *m) {
    free(m->hashes);
    free(m->keys);
    free(m->klens);
    free(m->vals);
    arena_deinit(&m->keys_arena);
    memset(m, 0, sizeof *m);
}

static size_t hmap_find(const hmap *m, uint64_t h, const char *key, size_t len) {
    size_t mask = m->cap - 1, i = h & mask;
    for (;;) {
        if (m->hashes[i] == 0) return i;
        if (m->hashes[i] == h && m->klens[i] == len &&
            memcmp(m->keys[i], key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

bool hmap_get(const hmap *m, const char *key, size_t len, int64_t *val) {
    size_t i = hmap_find(m, hmap_hash(key, len), key, len);
    if (m->hashes[i] == 0) return false;
    if (val) *val = m->vals[i];
    return true;
}

static void hmap_grow(hmap *m) {
    hmap old = *m;
    hmap_alloc(m, old.cap * 2);
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.hashes[i]) continue;
        size_t j = hmap_find(m, old.hashes[i], old.keys[i], old.klens[i]);
        m->hashes[j] = old.hashes[i];
        m->keys[j] = old.keys[i];
        m->klens[j] = old.klens[i];
        m->vals[j] = old.vals[i];
    }
    free(old.hashes);
    free(old.keys);
    free(old.klens);
    free(old.vals);
}

void hmap_put(hmap *m, const char *key, size_t len, int64_t val) {
    uint64_t h = hmap_hash(key, len);
    size_t i = hmap_find(m, h, key, len);
    if (m->hashes[i]) {
        m->vals[i] = val;
        return;
    }
    if ((m->len + 1) * 2 > m->cap) {
        hmap_grow(m);
        i = hmap_find(m, h, key, len);
    }
    m->hashes[i] = h;
    m->keys[i] = arena_strndup(&m->keys_arena, key, len);
    m->klens[i] = (uint32_t)len;
    m->vals[i] = val;
    m->len++;
}
