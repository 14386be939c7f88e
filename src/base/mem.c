/* mem.c — checked allocation and arenas.
 * Arena chunks are singly linked, newest first; allocations are 16-byte
 * aligned and never freed one by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

_Noreturn void base_oom(size_t size) {
    fprintf(stderr, "tailor: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) base_oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) base_oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) base_oom(n);
    return q;
}

char *xstrndup(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

struct arena_chunk {
    arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena *a, size_t chunk_size) {
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
}

void arena_deinit(arena *a) {
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}

void arena_reset(arena *a) {
    if (!a->head) return;
    arena_chunk *c = a->head->next;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head->next = NULL;
    a->head->used = 0;
}

void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > a->chunk_size ? n : a->chunk_size;
        c = xmalloc(sizeof *c + sz);
        c->size = sz;
        c->used = 0;
        /* An oversized chunk goes behind the head so the head's free space
         * stays usable for later small allocations. */
        if (a->head && n > a->chunk_size) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *arena_strdup(arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }
