/* gguf.c — GGUF v2/v3 reader over mmap, and writer.
 * The reader trusts nothing: every count, length, type and offset is checked
 * against the bytes that are really there before it is used, so a truncated
 * or hostile file gives an error naming the byte offset and the field.
 * Metadata (keys, strings, arrays) is copied into an arena; tensor data is
 * left in the mapping. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/llm.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
/* Limits far above any real model, so that a hostile count fails cleanly
 * instead of asking for terabytes. */
#define GGUF_MAX_STRING (64u << 20)
#define GGUF_MAX_ITEMS (1ull << 32)

static const struct {
    const char *name;
    int size; /* 0: variable */
} VTYPES[LLM_GGUF_NTYPES] = {
    [LLM_GGUF_U8] = {"u8", 1},   [LLM_GGUF_I8] = {"i8", 1},     [LLM_GGUF_U16] = {"u16", 2},
    [LLM_GGUF_I16] = {"i16", 2}, [LLM_GGUF_U32] = {"u32", 4},   [LLM_GGUF_I32] = {"i32", 4},
    [LLM_GGUF_F32] = {"f32", 4}, [LLM_GGUF_BOOL] = {"bool", 1}, [LLM_GGUF_STR] = {"string", 0},
    [LLM_GGUF_ARR] = {"array", 0}, [LLM_GGUF_U64] = {"u64", 8}, [LLM_GGUF_I64] = {"i64", 8},
    [LLM_GGUF_F64] = {"f64", 8},
};

const char *llm_gguf_vtype_name(uint32_t t) {
    return t < LLM_GGUF_NTYPES ? VTYPES[t].name : "unknown";
}

/* ---- reader ------------------------------------------------------------ */

typedef struct cursor {
    const uint8_t *p;
    size_t n, off;
    const char *name; /* file name for messages */
    tailor_error *err;
} cursor;

static int cur_fail(cursor *c, const char *what) {
    return err_set(c->err, TAILOR_EDATA, "%s: offset %zu: %s", c->name, c->off, what);
}

static int cur_bytes(cursor *c, void *dst, size_t n, const char *what) {
    if (n > c->n - c->off) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: file truncated (need %zu bytes, %zu left)", what, n,
                 c->n - c->off);
        return cur_fail(c, msg);
    }
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) { return cur_bytes(c, v, 4, what); }
static int cur_u64(cursor *c, uint64_t *v, const char *what) { return cur_bytes(c, v, 8, what); }

static int cur_str(cursor *c, arena *a, llm_str *out, const char *what) {
    uint64_t len = 0;
    if (cur_u64(c, &len, what) < 0) return c->err->code;
    if (len > GGUF_MAX_STRING || len > c->n - c->off) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: string length %llu exceeds the file", what,
                 (unsigned long long)len);
        return cur_fail(c, msg);
    }
    char *s = arena_alloc(a, (size_t)len + 1);
    memcpy(s, c->p + c->off, (size_t)len);
    s[len] = 0;
    c->off += (size_t)len;
    out->s = s;
    out->n = len;
    return 0;
}

static int read_value(cursor *c, arena *a, llm_gguf_kv *kv, const char *key) {
    char what[300];
    snprintf(what, sizeof what, "key '%s'", key);
    switch (kv->type) {
    case LLM_GGUF_STR: return cur_str(c, a, &kv->v.str, what);
    case LLM_GGUF_ARR: {
        if (cur_u32(c, &kv->arr_type, what) < 0) return c->err->code;
        if (cur_u64(c, &kv->n, what) < 0) return c->err->code;
        if (kv->arr_type >= LLM_GGUF_NTYPES || kv->arr_type == LLM_GGUF_ARR) {
            snprintf(what, sizeof what, "key '%s': bad array element type %u", key, kv->arr_type);
            return cur_fail(c, what);
        }
        if (kv->n > GGUF_MAX_ITEMS) {
            snprintf(what, sizeof what, "key '%s': array length %llu too large", key,
                     (unsigned long long)kv->n);
            return cur_fail(c, what);
        }
        if (kv->arr_type == LLM_GGUF_STR) {
            /* Each string needs at least its 8-byte length. */
            if (kv->n > (c->n - c->off) / 8) {
                snprintf(what, sizeof what, "key '%s': %llu strings cannot fit in the file", key,
                         (unsigned long long)kv->n);
                return cur_fail(c, what);
            }
            llm_str *arr = arena_alloc(a, (size_t)kv->n * sizeof *arr + 1);
            for (uint64_t i = 0; i < kv->n; i++)
                if (cur_str(c, a, &arr[i], what) < 0) return c->err->code;
            kv->v.arr = arr;
            return 0;
        }
        size_t es = (size_t)VTYPES[kv->arr_type].size;
        if (kv->n > (c->n - c->off) / es) {
            snprintf(what, sizeof what, "key '%s': array of %llu items exceeds the file", key,
                     (unsigned long long)kv->n);
            return cur_fail(c, what);
        }
        void *arr = arena_alloc(a, (size_t)kv->n * es + 1);
        cur_bytes(c, arr, (size_t)kv->n * es, what);
        if (kv->arr_type == LLM_GGUF_BOOL)
            for (uint64_t i = 0; i < kv->n; i++)
                if (((uint8_t *)arr)[i] > 1) {
                    snprintf(what, sizeof what, "key '%s': bool array item %llu is %u", key,
                             (unsigned long long)i, ((uint8_t *)arr)[i]);
                    return cur_fail(c, what);
                }
        kv->v.arr = arr;
        return 0;
    }
    default: {
        int size = VTYPES[kv->type].size;
        uint8_t b[8] = {0};
        if (cur_bytes(c, b, (size_t)size, what) < 0) return c->err->code;
        switch (kv->type) {
        case LLM_GGUF_U8: kv->v.u = b[0]; break;
        case LLM_GGUF_I8: kv->v.i = (int8_t)b[0]; break;
        case LLM_GGUF_BOOL:
            if (b[0] > 1) {
                snprintf(what, sizeof what, "key '%s': bool value %u", key, b[0]);
                return cur_fail(c, what);
            }
            kv->v.u = b[0];
            break;
        case LLM_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
        case LLM_GGUF_I16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
        case LLM_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
        case LLM_GGUF_I32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
        case LLM_GGUF_F32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
        case LLM_GGUF_U64: memcpy(&kv->v.u, b, 8); break;
        case LLM_GGUF_I64: memcpy(&kv->v.i, b, 8); break;
        case LLM_GGUF_F64: memcpy(&kv->v.f, b, 8); break;
        default: break;
        }
        return 0;
    }
    }
}

static int gguf_parse(llm_gguf *g, tailor_error *err) {
    cursor c = {g->map, g->size, 0, g->path, err};
    uint32_t magic = 0;
    if (cur_u32(&c, &magic, "magic") < 0) return err->code;
    if (magic != GGUF_MAGIC)
        return err_set(err, TAILOR_EDATA, "%s: not a GGUF file (bad magic)", g->path);
    if (cur_u32(&c, &g->version, "version") < 0) return err->code;
    if (g->version != 2 && g->version != 3)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)",
                       g->path, g->version);
    uint64_t nt = 0, nkv = 0;
    if (cur_u64(&c, &nt, "tensor count") < 0 || cur_u64(&c, &nkv, "metadata count") < 0)
        return err->code;
    /* A key/value needs at least 8+4 bytes, a tensor info 8+4+8+4+8. */
    if (nkv > g->size / 12) return cur_fail(&c, "metadata count exceeds the file");
    if (nt > g->size / 32) return cur_fail(&c, "tensor count exceeds the file");
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kv = xcalloc((size_t)nkv + 1, sizeof *g->kv);
    g->tensors = xcalloc((size_t)nt + 1, sizeof *g->tensors);
    hmap_init(&g->kv_index, (size_t)nkv);
    hmap_init(&g->tensor_index, (size_t)nt);

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < g->n_kv; i++) {
        llm_gguf_kv *kv = &g->kv[i];
        llm_str key;
        if (cur_str(&c, &g->strings, &key, "metadata key") < 0) return err->code;
        kv->key = key.s;
        if (cur_u32(&c, &kv->type, "value type") < 0) return err->code;
        if (kv->type >= LLM_GGUF_NTYPES) {
            char msg[300];
            snprintf(msg, sizeof msg, "key '%s': unknown value type %u", key.s, kv->type);
            return cur_fail(&c, msg);
        }
        if (read_value(&c, &g->strings, kv, key.s) < 0) return err->code;
        int64_t dup;
        if (hmap_get(&g->kv_index, key.s, key.n, &dup)) {
            char msg[300];
            snprintf(msg, sizeof msg, "key '%s' appears twice", key.s);
            return cur_fail(&c, msg);
        }
        hmap_put(&g->kv_index, key.s, key.n, i);
    }
    const llm_gguf_kv *al = llm_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != LLM_GGUF_U32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)) || al->v.u > 65536)
            return err_set(err, TAILOR_EDATA, "%s: general.alignment must be a power of two u32",
                           g->path);
        g->alignment = (uint32_t)al->v.u;
    }

    for (int64_t i = 0; i < g->n_tensors; i++) {
        llm_tensor *t = &g->tensors[i];
        llm_str name;
        if (cur_str(&c, &g->strings, &name, "tensor name") < 0) return err->code;
        t->name = name.s;
        char msg[400];
        if (cur_u32(&c, &t->n_dims, "tensor dims") < 0) return err->code;
        if (t->n_dims < 1 || t->n_dims > 4) {
            snprintf(msg, sizeof msg, "tensor '%s': %u dimensions (1 to 4 allowed)", name.s, t->n_dims);
            return cur_fail(&c, msg);
        }
        uint64_t count = 1;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne = 0;
            if (cur_u64(&c, &ne, "tensor shape") < 0) return err->code;
            if (ne == 0 || ne > (1ull << 40) || count > (1ull << 48) / ne) {
                snprintf(msg, sizeof msg, "tensor '%s': dimension %u of size %llu", name.s, d,
                         (unsigned long long)ne);
                return cur_fail(&c, msg);
            }
            t->ne[d] = (int64_t)ne;
            count *= ne;
        }
        uint32_t type = 0;
        if (cur_u32(&c, &type, "tensor type") < 0) return err->code;
        const llm_type_info *ti = llm_type_get(type);
        if (!ti) {
            snprintf(msg, sizeof msg, "tensor '%s': unknown type %u", name.s, type);
            return cur_fail(&c, msg);
        }
        t->type = (llm_type)type;
        if (t->ne[0] % ti->block) {
            snprintf(msg, sizeof msg, "tensor '%s': row of %lld is not a multiple of %s's block of %d",
                     name.s, (long long)t->ne[0], ti->name, ti->block);
            return cur_fail(&c, msg);
        }
        t->bytes = (size_t)(count / (uint64_t)ti->block * (uint64_t)ti->bytes);
        if (cur_u64(&c, &t->offset, "tensor offset") < 0) return err->code;
        if (t->offset % g->alignment) {
            snprintf(msg, sizeof msg, "tensor '%s': offset %llu not aligned to %u", name.s,
                     (unsigned long long)t->offset, g->alignment);
            return cur_fail(&c, msg);
        }
        int64_t dup;
        if (hmap_get(&g->tensor_index, name.s, name.n, &dup)) {
            snprintf(msg, sizeof msg, "tensor '%s' appears twice", name.s);
            return cur_fail(&c, msg);
        }
        hmap_put(&g->tensor_index, name.s, name.n, i);
    }
    size_t data = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors > 0 && data > g->size)
        return err_set(err, TAILOR_EDATA, "%s: file truncated before the tensor data", g->path);
    g->data_offset = data;
    size_t avail = g->size > data ? g->size - data : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        llm_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->bytes > avail - t->offset)
            return err_set(err, TAILOR_EDATA,
                           "%s: tensor '%s': data [%llu, +%zu) lies beyond the end of the file "
                           "(%zu data bytes): file truncated or corrupt",
                           g->path, t->name, (unsigned long long)t->offset, t->bytes, avail);
        t->data = (const uint8_t *)g->map + data + t->offset;
    }
    return 0;
}

static llm_gguf *gguf_alloc(const char *name) {
    llm_gguf *g = xcalloc(1, sizeof *g);
    g->path = xstrdup(name);
    arena_init(&g->strings, 0);
    return g;
}

int llm_gguf_open_buffer(const void *buf, size_t n, const char *name, llm_gguf **out,
                         tailor_error *err) {
    llm_gguf *g = gguf_alloc(name);
    g->map = (void *)buf;
    g->size = n;
    int rc = gguf_parse(g, err);
    g->map = NULL; /* borrowed, never unmapped; tensor data points into it */
    if (rc < 0) {
        llm_gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int llm_gguf_open(const char *path, llm_gguf **out, tailor_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, errno == ENOENT ? TAILOR_ENOTFOUND : TAILOR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, TAILOR_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return err_set(err, TAILOR_EDATA, "%s: file truncated (%lld bytes, not a GGUF file)", path,
                       (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return err_set(err, TAILOR_EIO, "%s: mmap: %s", path, strerror(errno));
    llm_gguf *g = gguf_alloc(path);
    g->map = map;
    g->size = (size_t)st.st_size;
    int rc = gguf_parse(g, err);
    if (rc < 0) {
        llm_gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void llm_gguf_free(llm_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    if (g->kv) hmap_deinit(&g->kv_index);
    if (g->tensors) hmap_deinit(&g->tensor_index);
    free(g->kv);
    free(g->tensors);
    arena_deinit(&g->strings);
    free(g->path);
    free(g);
}

const llm_gguf_kv *llm_gguf_find(const llm_gguf *g, const char *key) {
    int64_t i;
    if (!g->kv || !hmap_get(&g->kv_index, key, strlen(key), &i)) return NULL;
    return &g->kv[i];
}

const llm_tensor *llm_gguf_tensor(const llm_gguf *g, const char *name) {
    int64_t i;
    if (!g->tensors || !hmap_get(&g->tensor_index, name, strlen(name), &i)) return NULL;
    return &g->tensors[i];
}

static bool kv_int(const llm_gguf_kv *kv, int64_t *out) {
    switch (kv->type) {
    case LLM_GGUF_U8: case LLM_GGUF_U16: case LLM_GGUF_U32:
        *out = (int64_t)kv->v.u;
        return true;
    case LLM_GGUF_U64:
        if (kv->v.u > INT64_MAX) return false;
        *out = (int64_t)kv->v.u;
        return true;
    case LLM_GGUF_I8: case LLM_GGUF_I16: case LLM_GGUF_I32: case LLM_GGUF_I64:
        *out = kv->v.i;
        return true;
    default: return false;
    }
}

bool llm_gguf_get_u32(const llm_gguf *g, const char *key, uint32_t *out) {
    const llm_gguf_kv *kv = llm_gguf_find(g, key);
    int64_t v;
    if (!kv || !kv_int(kv, &v) || v < 0 || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

bool llm_gguf_get_f32(const llm_gguf *g, const char *key, float *out) {
    const llm_gguf_kv *kv = llm_gguf_find(g, key);
    if (!kv) return false;
    if (kv->type == LLM_GGUF_F32 || kv->type == LLM_GGUF_F64) {
        *out = (float)kv->v.f;
        return true;
    }
    int64_t v;
    if (!kv_int(kv, &v)) return false;
    *out = (float)v;
    return true;
}

bool llm_gguf_get_bool(const llm_gguf *g, const char *key, bool *out) {
    const llm_gguf_kv *kv = llm_gguf_find(g, key);
    if (!kv || kv->type != LLM_GGUF_BOOL) return false;
    *out = kv->v.u != 0;
    return true;
}

const char *llm_gguf_get_str(const llm_gguf *g, const char *key) {
    const llm_gguf_kv *kv = llm_gguf_find(g, key);
    return kv && kv->type == LLM_GGUF_STR ? kv->v.str.s : NULL;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct wtensor {
    char *name;
    llm_type type;
    uint32_t n_dims;
    int64_t ne[4];
    const void *data;
    size_t bytes;
} wtensor;

struct llm_gguf_writer {
    sb meta; /* serialized key/values */
    int64_t n_kv;
    VEC(wtensor) tensors;
};

llm_gguf_writer *llm_gguf_writer_new(void) {
    llm_gguf_writer *w = xcalloc(1, sizeof *w);
    sb_init(&w->meta);
    return w;
}

void llm_gguf_writer_free(llm_gguf_writer *w) {
    if (!w) return;
    sb_deinit(&w->meta);
    for (size_t i = 0; i < w->tensors.len; i++) free(w->tensors.data[i].name);
    vec_free(&w->tensors);
    free(w);
}

static void put_u32(sb *s, uint32_t v) { sb_append(s, (const char *)&v, 4); }
static void put_u64(sb *s, uint64_t v) { sb_append(s, (const char *)&v, 8); }
static void put_str(sb *s, const char *str, uint64_t n) {
    put_u64(s, n);
    sb_append(s, str, (size_t)n);
}

static void w_key(llm_gguf_writer *w, const char *key, uint32_t type) {
    put_str(&w->meta, key, strlen(key));
    put_u32(&w->meta, type);
    w->n_kv++;
}

void llm_gguf_set_u32(llm_gguf_writer *w, const char *key, uint32_t v) {
    w_key(w, key, LLM_GGUF_U32);
    put_u32(&w->meta, v);
}
void llm_gguf_set_i32(llm_gguf_writer *w, const char *key, int32_t v) {
    w_key(w, key, LLM_GGUF_I32);
    sb_append(&w->meta, (const char *)&v, 4);
}
void llm_gguf_set_f32(llm_gguf_writer *w, const char *key, float v) {
    w_key(w, key, LLM_GGUF_F32);
    sb_append(&w->meta, (const char *)&v, 4);
}
void llm_gguf_set_bool(llm_gguf_writer *w, const char *key, bool v) {
    w_key(w, key, LLM_GGUF_BOOL);
    sb_putc(&w->meta, v ? 1 : 0);
}
void llm_gguf_set_str(llm_gguf_writer *w, const char *key, const char *v) {
    w_key(w, key, LLM_GGUF_STR);
    put_str(&w->meta, v, strlen(v));
}
void llm_gguf_set_arr(llm_gguf_writer *w, const char *key, uint32_t type, const void *data,
                      uint64_t n) {
    w_key(w, key, LLM_GGUF_ARR);
    put_u32(&w->meta, type);
    put_u64(&w->meta, n);
    sb_append(&w->meta, data, (size_t)(n * (uint64_t)VTYPES[type].size));
}
void llm_gguf_set_arr_str(llm_gguf_writer *w, const char *key, const llm_str *v, uint64_t n) {
    w_key(w, key, LLM_GGUF_ARR);
    put_u32(&w->meta, LLM_GGUF_STR);
    put_u64(&w->meta, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->meta, v[i].s, v[i].n);
}

void llm_gguf_set_kv(llm_gguf_writer *w, const llm_gguf_kv *kv) {
    switch (kv->type) {
    case LLM_GGUF_STR:
        w_key(w, kv->key, LLM_GGUF_STR);
        put_str(&w->meta, kv->v.str.s, kv->v.str.n);
        return;
    case LLM_GGUF_ARR:
        if (kv->arr_type == LLM_GGUF_STR) llm_gguf_set_arr_str(w, kv->key, kv->v.arr, kv->n);
        else llm_gguf_set_arr(w, kv->key, kv->arr_type, kv->v.arr, kv->n);
        return;
    default: {
        w_key(w, kv->key, kv->type);
        uint8_t b[8];
        int size = VTYPES[kv->type].size;
        switch (kv->type) {
        case LLM_GGUF_F32: { float f = (float)kv->v.f; memcpy(b, &f, 4); break; }
        case LLM_GGUF_F64: memcpy(b, &kv->v.f, 8); break;
        case LLM_GGUF_I8: case LLM_GGUF_I16: case LLM_GGUF_I32: case LLM_GGUF_I64:
            memcpy(b, &kv->v.i, 8); /* little-endian: the low bytes come first */
            break;
        default: memcpy(b, &kv->v.u, 8); break;
        }
        sb_append(&w->meta, (const char *)b, (size_t)size);
        return;
    }
    }
}

void llm_gguf_add_tensor(llm_gguf_writer *w, const char *name, llm_type type, uint32_t n_dims,
                         const int64_t *ne, const void *data) {
    wtensor t = {xstrdup(name), type, n_dims, {1, 1, 1, 1}, data, 0};
    int64_t count = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        t.ne[d] = ne[d];
        count *= ne[d];
    }
    const llm_type_info *ti = llm_type_get(type);
    t.bytes = (size_t)(count / ti->block * ti->bytes);
    vec_push(&w->tensors, t);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int llm_gguf_writer_write(llm_gguf_writer *w, const char *path, tailor_error *err) {
    sb head;
    sb_init(&head);
    put_u32(&head, GGUF_MAGIC);
    put_u32(&head, 3);
    put_u64(&head, w->tensors.len);
    put_u64(&head, (uint64_t)w->n_kv);
    sb_append(&head, w->meta.buf ? w->meta.buf : "", w->meta.len);
    uint64_t off = 0;
    for (size_t i = 0; i < w->tensors.len; i++) {
        wtensor *t = &w->tensors.data[i];
        put_str(&head, t->name, strlen(t->name));
        put_u32(&head, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&head, (uint64_t)t->ne[d]);
        put_u32(&head, t->type);
        put_u64(&head, off);
        off = align_up(off + t->bytes, GGUF_DEFAULT_ALIGNMENT);
    }
    while (head.len % GGUF_DEFAULT_ALIGNMENT) sb_putc(&head, 0);

    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err_set(err, TAILOR_EIO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        sb_deinit(&head);
        return err->code;
    }
    bool ok = fwrite(head.buf, 1, head.len, f) == head.len;
    static const char zeros[GGUF_DEFAULT_ALIGNMENT];
    for (size_t i = 0; ok && i < w->tensors.len; i++) {
        wtensor *t = &w->tensors.data[i];
        ok = fwrite(t->data, 1, t->bytes, f) == t->bytes;
        size_t pad = (size_t)(align_up(t->bytes, GGUF_DEFAULT_ALIGNMENT) - t->bytes);
        if (ok && pad && i + 1 < w->tensors.len) ok = fwrite(zeros, 1, pad, f) == pad;
    }
    if (fclose(f) != 0) ok = false;
    sb_deinit(&head);
    if (!ok || rename(tmp, path) != 0) {
        err_set(err, TAILOR_EIO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return err->code;
    }
    free(tmp);
    return 0;
}
