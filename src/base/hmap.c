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

enum { HMAP_INLINE = sizeof(((hmap_slot *)0)->key) };
_Static_assert(sizeof(hmap_slot) == 32, "two slots per cache line");

static const char *slot_key(const hmap_slot *sl) {
    if (sl->klen <= HMAP_INLINE) return sl->key;
    const char *p;
    memcpy(&p, sl->key, sizeof p);
    return p;
}

void hmap_init(hmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->len = 0;
    m->cap = cap;
    m->slots = xcalloc(cap, sizeof *m->slots);
    arena_init(&m->keys_arena, 0);
}

void hmap_deinit(hmap *m) {
    free(m->slots);
    arena_deinit(&m->keys_arena);
    memset(m, 0, sizeof *m);
}

static size_t hmap_find(const hmap *m, uint64_t h, const char *key, size_t len) {
    size_t mask = m->cap - 1, i = h & mask;
    for (;;) {
        const hmap_slot *sl = &m->slots[i];
        if (sl->hash == 0) return i;
        if (sl->hash == h && sl->klen == len && memcmp(slot_key(sl), key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

bool hmap_get(const hmap *m, const char *key, size_t len, int64_t *val) {
    if (!m->cap) return false;
    size_t i = hmap_find(m, hmap_hash(key, len), key, len);
    if (m->slots[i].hash == 0) return false;
    if (val) *val = m->slots[i].val;
    return true;
}

static void hmap_grow(hmap *m) {
    hmap_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].hash) continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].hash) j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void hmap_put(hmap *m, const char *key, size_t len, int64_t val) {
    uint64_t h = hmap_hash(key, len);
    size_t i = hmap_find(m, h, key, len);
    if (m->slots[i].hash) {
        m->slots[i].val = val;
        return;
    }
    if ((m->len + 1) * 2 > m->cap) {
        hmap_grow(m);
        i = hmap_find(m, h, key, len);
    }
    hmap_slot *sl = &m->slots[i];
    sl->hash = h;
    sl->klen = (uint32_t)len;
    sl->val = val;
    if (len <= HMAP_INLINE) {
        memcpy(sl->key, key, len);
    } else {
        const char *p = arena_strndup(&m->keys_arena, key, len);
        memcpy(sl->key, &p, sizeof p);
    }
    m->len++;
}
