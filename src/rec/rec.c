/* rec.c — the model table, parameters, top-k selection and the model file.
 * File layout (little-endian): "TLRMODEL" | u32 version | u32 len + kind |
 * u32 len + params JSON | u32 n_users | u32 n_items | id maps | u64 len +
 * payload | SHA-256 of everything before it. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec/rec.h"

extern const rec_kind REC_POP, REC_ITEMKNN, REC_ALS, REC_BPR, REC_EASE, REC_SASREC, REC_KGCN;

/* Adding a model: one file with its rec_kind, one row here. */
const rec_kind *const REC_KINDS[] = {&REC_POP, &REC_ITEMKNN, &REC_ALS, &REC_BPR, &REC_EASE, &REC_SASREC, &REC_KGCN, NULL};

const rec_kind *rec_kind_find(const char *name) {
    for (size_t i = 0; REC_KINDS[i]; i++)
        if (!strcmp(REC_KINDS[i]->name, name)) return REC_KINDS[i];
    return NULL;
}

/* ---- parameters -------------------------------------------------------- */

bool rec_params_set(rec_params *p, const char *name, const char *value) {
    if (strlen(name) >= sizeof p->names[0] || strlen(value) >= sizeof p->values[0]) return false;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->names[i], name)) {
            strcpy(p->values[i], value);
            return true;
        }
    if (p->n == REC_MAX_PARAMS) return false;
    strcpy(p->names[p->n], name);
    strcpy(p->values[p->n], value);
    p->n++;
    return true;
}

bool rec_params_parse(rec_params *p, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || eq - kv >= 32) return false;
    char name[32];
    memcpy(name, kv, (size_t)(eq - kv));
    name[eq - kv] = 0;
    return rec_params_set(p, name, eq + 1);
}

const char *rec_params_get(const rec_params *p, const char *name) {
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->names[i], name)) return p->values[i];
    return NULL;
}

void rec_params_json(const rec_params *p, sb *out) {
    sb_putc(out, '{');
    for (size_t i = 0; i < p->n; i++) {
        if (i) sb_putc(out, ',');
        sb_json_str(out, p->names[i], strlen(p->names[i]));
        sb_putc(out, ':');
        double d;
        if (parse_f64(p->values[i], strlen(p->values[i]), &d)) sb_puts(out, p->values[i]);
        else sb_json_str(out, p->values[i], strlen(p->values[i]));
    }
    sb_putc(out, '}');
}

double rec_param_f64(const rec_model *m, const char *name) {
    const char *v = rec_params_get(&m->params, name);
    return v ? atof(v) : 0;
}

int64_t rec_param_i64(const rec_model *m, const char *name) {
    const char *v = rec_params_get(&m->params, name);
    return v ? atoll(v) : 0;
}

const char *rec_param_str(const rec_model *m, const char *name) {
    const char *v = rec_params_get(&m->params, name);
    return v ? v : "";
}

int rec_model_new(const rec_kind *kind, const rec_params *p, rec_model **out, tailor_error *err) {
    *out = NULL;
    /* Models call OpenBLAS from the pool's threads: its own threads would
     * only compete with them (fits that want them set them around the call). */
    openblas_set_num_threads(1);
    rec_model *m = xcalloc(1, sizeof *m);
    m->kind = kind;
    m->seed = 42;
    arena_init(&m->ext_strings, 0);
    hmap_init(&m->item_index, 16);
    /* Defaults first, then the given values, each checked against the
     * kind's list. */
    for (const rec_param_spec *s = kind->params; s && s->name; s++)
        rec_params_set(&m->params, s->name, s->def);
    for (size_t i = 0; p && i < p->n; i++) {
        bool known = false;
        for (const rec_param_spec *s = kind->params; s && s->name; s++)
            known |= !strcmp(s->name, p->names[i]);
        if (!strcmp(p->names[i], "seed")) {
            m->seed = strtoull(p->values[i], NULL, 10);
            continue;
        }
        if (!known) {
            sb names;
            sb_init(&names);
            for (const rec_param_spec *s = kind->params; s && s->name; s++)
                sb_printf(&names, "%s%s", names.len ? ", " : "", s->name);
            err_set(err, TAILOR_EINVAL, "model %s has no parameter '%s' (it has: %s, seed)",
                    kind->name, p->names[i], names.len ? sb_str(&names) : "none");
            sb_deinit(&names);
            rec_model_free(m);
            return TAILOR_EINVAL;
        }
        double d;
        const char *v = p->values[i];
        if (!parse_f64(v, strlen(v), &d)) {
            /* Every numeric default demands a numeric value. */
            for (const rec_param_spec *s = kind->params; s && s->name; s++)
                if (!strcmp(s->name, p->names[i]) && parse_f64(s->def, strlen(s->def), &d)) {
                    err_set(err, TAILOR_EINVAL, "model %s: parameter %s=%s is not a number",
                            kind->name, p->names[i], v);
                    rec_model_free(m);
                    return TAILOR_EINVAL;
                }
        }
        rec_params_set(&m->params, p->names[i], v);
    }
    int rc = kind->init ? kind->init(m, err) : 0;
    if (rc) {
        rec_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void rec_model_free(rec_model *m) {
    if (!m) return;
    if (m->kind->free) m->kind->free(m);
    free(m->user_ext);
    free(m->item_ext);
    free(m->popularity);
    hmap_deinit(&m->item_index);
    arena_deinit(&m->ext_strings);
    free(m);
}

static char **copy_ext(arena *a, char *const *src, int32_t n) {
    char **dst = xcalloc((size_t)n + 1, sizeof *dst);
    for (int32_t i = 0; i < n; i++) {
        if (src) {
            dst[i] = arena_strdup(a, src[i]);
        } else {
            char buf[24];
            snprintf(buf, sizeof buf, "%d", i);
            dst[i] = arena_strdup(a, buf);
        }
    }
    return dst;
}

static void index_items(rec_model *m) {
    hmap_deinit(&m->item_index);
    hmap_init(&m->item_index, (size_t)m->n_items);
    for (int32_t i = 0; i < m->n_items; i++) hmap_put(&m->item_index, m->item_ext[i], strlen(m->item_ext[i]), i);
}

int rec_model_fit(rec_model *m, const rec_data *d, char *const *user_ext, char *const *item_ext,
                  tailor_error *err) {
    m->n_users = d->n_users;
    m->n_items = d->n_items;
    free(m->user_ext);
    free(m->item_ext);
    arena_reset(&m->ext_strings);
    m->user_ext = copy_ext(&m->ext_strings, user_ext, d->n_users);
    m->item_ext = copy_ext(&m->ext_strings, item_ext, d->n_items);
    index_items(m);
    free(m->popularity);
    m->popularity = xcalloc((size_t)d->n_items + 1, sizeof *m->popularity);
    for (int64_t k = 0; k < rec_data_nnz(d); k++) m->popularity[d->indices[k]]++;
    return m->kind->fit(m, d, err);
}

/* ---- top-k ------------------------------------------------------------- */

/* "a ranks before b": higher score, then lower index. */
static inline bool rank_before(float sa, int32_t a, float sb_, int32_t b) {
    return sa > sb_ || (sa == sb_ && a < b);
}

int rec_topk_scores(const float *scores, int32_t n_items, int k, int32_t *items, float *out_scores) {
    if (k <= 0) return 0;
    /* A min-heap of the best k so far: the root is the worst kept. */
    int n = 0;
    for (int32_t i = 0; i < n_items; i++) {
        float s = scores[i];
        if (s == -INFINITY || isnan(s)) continue;
        if (n < k) {
            int c = n++;
            while (c > 0) {
                int par = (c - 1) / 2;
                if (!rank_before(out_scores[par], items[par], s, i)) break;
                items[c] = items[par], out_scores[c] = out_scores[par];
                c = par;
            }
            items[c] = i, out_scores[c] = s;
        } else if (rank_before(s, i, out_scores[0], items[0])) {
            int c = 0;
            for (;;) {
                int l = 2 * c + 1, r = l + 1, w = c;
                float ws = s;
                int32_t wi = i;
                if (l < n && rank_before(ws, wi, out_scores[l], items[l])) w = l, ws = out_scores[l], wi = items[l];
                if (r < n && rank_before(ws, wi, out_scores[r], items[r])) w = r;
                if (w == c) break;
                items[c] = items[w], out_scores[c] = out_scores[w];
                c = w;
            }
            items[c] = i, out_scores[c] = s;
        }
    }
    /* Heap sort into best-first order. */
    for (int end = n - 1; end > 0; end--) {
        int32_t ti = items[0];
        float ts = out_scores[0];
        items[0] = items[end], out_scores[0] = out_scores[end];
        int c = 0;
        for (;;) {
            int l = 2 * c + 1, r = l + 1, w = c;
            if (l < end && rank_before(out_scores[w], items[w], out_scores[l], items[l])) w = l;
            if (r < end && rank_before(out_scores[w], items[w], out_scores[r], items[r])) w = r;
            if (w == c) break;
            int32_t xi = items[c];
            float xs = out_scores[c];
            items[c] = items[w], out_scores[c] = out_scores[w];
            items[w] = xi, out_scores[w] = xs;
            c = w;
        }
        items[end] = ti, out_scores[end] = ts;
    }
    return n;
}

int rec_topk(const rec_model *m, int32_t user, const int32_t *hist, const float *vals, size_t n,
             rec_topk_params p, int32_t *items, float *scores, float *scratch) {
    float *buf = scratch ? scratch : xmalloc((size_t)m->n_items * sizeof *buf);
    m->kind->score(m, user, hist, vals, n, buf);
    if (p.exclude_history)
        for (size_t i = 0; i < n; i++)
            if (hist[i] >= 0 && hist[i] < m->n_items) buf[hist[i]] = -INFINITY;
    if (p.filter)
        for (int32_t i = 0; i < m->n_items; i++)
            if (buf[i] != -INFINITY && !p.filter(p.filter_ctx, i)) buf[i] = -INFINITY;
    int got = rec_topk_scores(buf, m->n_items, p.k, items, scores);
    if (!scratch) free(buf);
    return got;
}

/* ---- model files ------------------------------------------------------- */

#define REC_MAGIC "TLRMODEL"
/* Version 2 adds the users per item after the id maps; version 1 files
 * still load (without them). */
#define REC_FILE_VERSION 2u

static void put_u32(sb *o, uint32_t v) { sb_append(o, (const char *)&v, 4); }
static void put_str(sb *o, const char *s) {
    put_u32(o, (uint32_t)strlen(s));
    sb_puts(o, s);
}

void rec_write_array(sb *out, const void *data, size_t elem, size_t count) {
    uint64_t c = count;
    sb_append(out, (const char *)&c, 8);
    if (count) sb_append(out, data, elem * count);
}

bool rec_read(rec_reader *r, void *dst, size_t n) {
    if (r->left < n) return false;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

bool rec_read_array(rec_reader *r, size_t elem, int64_t expect, void **out, size_t *count) {
    uint64_t c;
    *out = NULL;
    if (!rec_read(r, &c, 8)) return false;
    if (expect >= 0 && c != (uint64_t)expect) return false;
    if (elem && c > r->left / elem) return false;
    *out = xmalloc(c * elem > 0 ? (size_t)(c * elem) : 1);
    if (count) *count = (size_t)c;
    return rec_read(r, *out, (size_t)c * elem);
}

static void sha256(const void *data, size_t n, unsigned char out[32]) {
    unsigned int len = 32;
    EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

int rec_model_save(const rec_model *m, const char *path, tailor_error *err) {
    sb o;
    sb_init(&o);
    sb_append(&o, REC_MAGIC, 8);
    put_u32(&o, REC_FILE_VERSION);
    put_str(&o, m->kind->name);
    sb pj;
    sb_init(&pj);
    rec_params_json(&m->params, &pj);
    put_str(&o, sb_str(&pj));
    sb_deinit(&pj);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)m->seed);
    put_str(&o, seed);
    put_u32(&o, (uint32_t)m->n_users);
    put_u32(&o, (uint32_t)m->n_items);
    for (int32_t i = 0; i < m->n_users; i++) put_str(&o, m->user_ext[i]);
    for (int32_t i = 0; i < m->n_items; i++) put_str(&o, m->item_ext[i]);
    for (int32_t i = 0; i < m->n_items; i++) put_u32(&o, m->popularity ? m->popularity[i] : 0);
    /* The payload goes straight after its length, patched in afterwards:
     * one copy of a large model in memory, not two. */
    size_t at = o.len;
    uint64_t plen = 0;
    sb_append(&o, (const char *)&plen, 8);
    m->kind->save(m, &o);
    plen = o.len - at - 8;
    memcpy(o.buf + at, &plen, 8);
    unsigned char sum[32];
    sha256(o.buf, o.len, sum);
    sb_append(&o, (const char *)sum, 32);

    sb tmp;
    sb_init(&tmp);
    sb_printf(&tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(sb_str(&tmp), "wb");
    int rc = 0;
    if (!f || fwrite(o.buf, 1, o.len, f) != o.len) rc = err_set(err, TAILOR_EIO, "cannot write %s: %s", sb_str(&tmp), strerror(errno));
    if (f && fclose(f) != 0 && !rc) rc = err_set(err, TAILOR_EIO, "cannot write %s", sb_str(&tmp));
    if (!rc && rename(sb_str(&tmp), path) != 0)
        rc = err_set(err, TAILOR_EIO, "cannot rename %s to %s: %s", sb_str(&tmp), path, strerror(errno));
    if (rc) unlink(sb_str(&tmp));
    sb_deinit(&tmp);
    sb_deinit(&o);
    return rc;
}

static bool read_u32(rec_reader *r, uint32_t *v) { return rec_read(r, v, 4); }

/* Reads a length-prefixed string into the arena; limit bounds its length. */
static char *read_str(rec_reader *r, arena *a, uint32_t limit) {
    uint32_t n;
    if (!read_u32(r, &n) || n > limit || n > r->left) return NULL;
    char *s = arena_strndup(a, r->p, n);
    r->p += n;
    r->left -= n;
    return s;
}

int rec_model_load(const char *path, rec_model **out, tailor_error *err) {
    *out = NULL;
    sb buf;
    sb_init(&buf);
    int rc = file_read(path, &buf, err);
    if (rc) {
        sb_deinit(&buf);
        return rc;
    }
    arena tmp;
    arena_init(&tmp, 0);
    rec_model *m = NULL;
#define BAD(...)                                                 \
    do {                                                         \
        rc = err_set(err, TAILOR_EDATA, __VA_ARGS__);            \
        goto done;                                               \
    } while (0)
    if (buf.len < 8 + 4 + 32 || memcmp(buf.buf, REC_MAGIC, 8) != 0)
        BAD("%s: not a tailor model file", path);
    unsigned char sum[32];
    sha256(buf.buf, buf.len - 32, sum);
    if (memcmp(sum, buf.buf + buf.len - 32, 32) != 0) BAD("%s: checksum mismatch (corrupt or truncated)", path);
    rec_reader r = {buf.buf + 8, buf.len - 8 - 32};
    uint32_t version, nu, ni;
    if (!read_u32(&r, &version)) BAD("%s: truncated header", path);
    if (version < 1 || version > REC_FILE_VERSION) BAD("%s: model file version %u, this tailor reads %u", path, version, REC_FILE_VERSION);
    char *kname = read_str(&r, &tmp, 64), *pjson = read_str(&r, &tmp, 1 << 16), *seed = read_str(&r, &tmp, 32);
    if (!kname || !pjson || !seed) BAD("%s: truncated header", path);
    const rec_kind *kind = rec_kind_find(kname);
    if (!kind) BAD("%s: unknown model kind '%s'", path, kname);
    /* Parameters: a flat JSON object written by rec_params_json. */
    rec_params p = {0};
    {
        char *s = pjson;
        while (*s && *s != '}') {
            char *k1 = strchr(s, '"');
            if (!k1) break;
            char *k2 = strchr(k1 + 1, '"');
            if (!k2 || k2[1] != ':') BAD("%s: bad parameter list", path);
            *k2 = 0;
            char *v = k2 + 2, *end;
            if (*v == '"') {
                v++;
                end = strchr(v, '"');
                if (!end) BAD("%s: bad parameter list", path);
                *end++ = 0;
            } else {
                end = v + strcspn(v, ",}");
                char c = *end;
                *end = 0;
                if (!rec_params_set(&p, k1 + 1, v)) BAD("%s: bad parameter list", path);
                *end = c;
                s = end;
                continue;
            }
            if (!rec_params_set(&p, k1 + 1, v)) BAD("%s: bad parameter list", path);
            s = end;
        }
    }
    rec_params_set(&p, "seed", seed);
    if ((rc = rec_model_new(kind, &p, &m, err))) goto done;
    if (!read_u32(&r, &nu) || !read_u32(&r, &ni) || nu > INT32_MAX || ni > INT32_MAX)
        BAD("%s: truncated header", path);
    m->n_users = (int32_t)nu;
    m->n_items = (int32_t)ni;
    /* Each id takes at least 4 bytes: refuse counts the file cannot hold. */
    if ((uint64_t)nu + ni > r.left / 4) BAD("%s: id maps larger than the file", path);
    m->user_ext = xcalloc((size_t)nu + 1, sizeof(char *));
    m->item_ext = xcalloc((size_t)ni + 1, sizeof(char *));
    for (uint32_t i = 0; i < nu; i++)
        if (!(m->user_ext[i] = read_str(&r, &m->ext_strings, 4096))) BAD("%s: truncated user ids", path);
    for (uint32_t i = 0; i < ni; i++)
        if (!(m->item_ext[i] = read_str(&r, &m->ext_strings, 4096))) BAD("%s: truncated item ids", path);
    index_items(m);
    if (version >= 2) {
        if (r.left / 4 < ni) BAD("%s: truncated popularity", path);
        m->popularity = xmalloc(((size_t)ni + 1) * sizeof *m->popularity);
        if (ni) rec_read(&r, m->popularity, (size_t)ni * 4);
    }
    uint64_t plen;
    if (!rec_read(&r, &plen, 8) || plen != r.left) BAD("%s: payload size mismatch", path);
    if ((rc = kind->load(m, r.p, r.left, err))) {
        err_prefix(err, "%s", path);
        goto done;
    }
#undef BAD
done:
    if (rc) rec_model_free(m);
    else *out = m;
    arena_deinit(&tmp);
    sb_deinit(&buf);
    return rc;
}

int rec_draw_negatives(const int64_t *ptr, const int32_t *idx, int32_t u, int32_t ni, int want,
                       const double *cdf, rng *g, unsigned char *chosen, int32_t *out) {
    int64_t seen = ptr[u + 1] - ptr[u];
    if (want > ni - seen) want = (int)(ni - seen);
    int got = 0;
    for (int tries = 0; got < want && tries < 1000000; tries++) {
        int32_t it;
        if (cdf) {
            double x = rng_uniform(g) * cdf[ni - 1];
            int32_t lo = 0, hi = ni - 1;
            while (lo < hi) {
                int32_t mid = (lo + hi) / 2;
                if (cdf[mid] <= x) lo = mid + 1;
                else hi = mid;
            }
            it = lo;
        } else {
            it = (int32_t)rng_below(g, (uint64_t)ni);
        }
        if (chosen[it] || rec_csr_has(ptr, idx, u, it)) continue;
        chosen[it] = 1;
        out[got++] = it;
    }
    return got;
}
