/* sasrec.c — self-attentive sequential recommendation (Kang & McAuley
 * 2018), trained in C on the kernels of src/nn.
 *
 * Architecture as in the authors' PyTorch port: item embedding E (row 0 =
 * padding) scaled by sqrt(C) plus a learned position embedding, dropout; per
 * block Q = LN(x), causal attention (queries from Q, keys and values from x,
 * padded keys masked), x = Q + attention, y = LN(x), x = y + FFN(y) with
 * ReLU and dropout, padded positions zeroed; a final LN. A position's
 * output scores every item by a dot product with its embedding. Losses:
 * BCE with one sampled negative per position (the paper) or full softmax
 * cross-entropy. Sequences come from the training matrix in time order.
 * Early stopping holds out each user's last training item and keeps the
 * weights with the best validation NDCG@10 (full ranking, or against fixed
 * sampled negatives). Big products run on OpenBLAS with the pool's thread
 * count, the other ops on the pool; at a fixed thread count the result is
 * reproducible bit for bit for a seed. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "rec/linalg.h"
#include "rec/rec.h"

typedef struct sas_layout { /* offsets into the parameter array */
    size_t E, P, lnw, lnb;
    size_t blk; /* first block; blocks follow each other */
    size_t blk_size;
    size_t total;
} sas_layout;

/* Within a block. */
enum { B_LNA_W, B_LNA_B, B_WQ, B_BQ, B_WK, B_BK, B_WV, B_BV, B_WO, B_BO, B_LNF_W, B_LNF_B, B_W1, B_B1, B_W2, B_B2, B_N };

typedef struct sas_state {
    pool *pool; /* borrowed during fit: attention, layer norm, softmax and AdamW run on it */
    int T, L, NH, C, epochs, batch, patience, eval_every;
    float lr, dropout, l2;
    bool ce, valid_sampled;
    sas_layout lay;
    size_t boff[B_N];
    float *params; /* lay.total */
} sas_state;

static const rec_param_spec SAS_PARAMS[] = {
    {"max_len", "50", "longest history used (older items are cut)"},
    {"blocks", "2", "transformer blocks"},
    {"heads", "1", "attention heads"},
    {"hidden", "64", "embedding and hidden size"},
    {"dropout", "0.5", "dropout rate"},
    {"epochs", "200", "maximum epochs"},
    {"batch", "128", "sequences per batch"},
    {"lr", "0.001", "Adam learning rate"},
    {"l2", "0", "weight decay (AdamW, not on embeddings of padding)"},
    {"loss", "bce", "bce (one negative per position, as the paper) or ce (full softmax)"},
    {"valid", "full", "early stopping on validation NDCG@10 under full ranking (full) or against 100 uniform negatives (sampled)"},
    {"patience", "5", "early stopping: evaluations without improvement before stopping (0 = off)"},
    {"eval_every", "5", "epochs between validation evaluations"},
    {NULL, NULL, NULL},
};

static void sas_layout_init(sas_state *s, int32_t n_items) {
    size_t C = (size_t)s->C, o = 0;
    s->lay.E = o, o += ((size_t)n_items + 1) * C;
    s->lay.P = o, o += (size_t)s->T * C;
    s->lay.lnw = o, o += C;
    s->lay.lnb = o, o += C;
    size_t sizes[B_N] = {C, C, C * C, C, C * C, C, C * C, C, C * C, C, C, C, C * C, C, C * C, C};
    size_t bo = 0;
    for (int i = 0; i < B_N; i++) s->boff[i] = bo, bo += sizes[i];
    s->lay.blk = o;
    s->lay.blk_size = bo;
    o += bo * (size_t)s->L;
    s->lay.total = o;
}

static int sas_init(rec_model *m, tailor_error *err) {
    sas_state *s = xcalloc(1, sizeof *s);
    m->impl = s;
    s->T = (int)rec_param_i64(m, "max_len");
    s->L = (int)rec_param_i64(m, "blocks");
    s->NH = (int)rec_param_i64(m, "heads");
    s->C = (int)rec_param_i64(m, "hidden");
    s->epochs = (int)rec_param_i64(m, "epochs");
    s->batch = (int)rec_param_i64(m, "batch");
    s->patience = (int)rec_param_i64(m, "patience");
    s->eval_every = (int)rec_param_i64(m, "eval_every");
    s->lr = (float)rec_param_f64(m, "lr");
    s->dropout = (float)rec_param_f64(m, "dropout");
    s->l2 = (float)rec_param_f64(m, "l2");
    const char *loss = rec_param_str(m, "loss");
    if (!strcmp(loss, "ce")) s->ce = true;
    else if (strcmp(loss, "bce")) return err_set(err, TAILOR_EINVAL, "sasrec: loss must be bce or ce, not '%s'", loss);
    const char *valid = rec_param_str(m, "valid");
    if (!strcmp(valid, "sampled")) s->valid_sampled = true;
    else if (strcmp(valid, "full"))
        return err_set(err, TAILOR_EINVAL, "sasrec: valid must be full or sampled, not '%s'", valid);
    if (s->T < 1 || s->T > 4096 || s->L < 1 || s->L > 16 || s->NH < 1 || s->C < 1 || s->C % s->NH ||
        s->epochs < 0 || s->batch < 1 || s->lr <= 0 || s->dropout < 0 || s->dropout >= 1 || s->eval_every < 1)
        return err_set(err, TAILOR_EINVAL,
                       "sasrec: need 1 <= max_len <= 4096, 1 <= blocks <= 16, hidden divisible by heads, "
                       "batch >= 1, lr > 0, 0 <= dropout < 1, eval_every >= 1");
    return 0;
}

/* ---- activations of one forward pass ----------------------------------- */

typedef struct sas_blk_act {
    float *xin, *Q, *amean, *arstd, *q, *k, *v, *att, *a, *x1, *y, *fmean, *frstd, *h1, *m1, *h1d, *h2, *h3, *m2;
} sas_blk_act;

typedef struct sas_act {
    int B, T;              /* batch and window of this pass (T <= max_len): the
                            * rightmost T positions of the max_len window */
    int32_t *seq;          /* [B,T] item rows (0 = padding) */
    unsigned char *valid;  /* [B,T] */
    float *x0, *m0;        /* embedding sum and its dropout mask */
    sas_blk_act *blk;      /* L */
    float *xL, *F, *lmean, *lrstd;
    float *buf;            /* one block of memory */
} sas_act;

static void sas_act_init(sas_act *a, const sas_state *s, int B, bool train) {
    size_t N = (size_t)B * s->T, C = (size_t)s->C, NC = N * C;
    size_t att = (size_t)B * s->NH * s->T * s->T;
    size_t per_blk = NC * 14 + 4 * N + att;
    size_t total = 2 * NC + (size_t)s->L * per_blk + 2 * NC + 2 * N;
    a->B = B;
    a->T = s->T;
    a->seq = xcalloc(N, sizeof *a->seq);
    a->valid = xcalloc(N, 1);
    a->buf = xcalloc(total, sizeof(float));
    a->blk = xcalloc((size_t)s->L, sizeof *a->blk);
    float *p = a->buf;
#define TAKE(n) (p += (n), p - (n))
    a->x0 = TAKE(NC), a->m0 = TAKE(NC);
    for (int l = 0; l < s->L; l++) {
        sas_blk_act *b = &a->blk[l];
        b->xin = TAKE(NC), b->Q = TAKE(NC), b->q = TAKE(NC), b->k = TAKE(NC), b->v = TAKE(NC), b->a = TAKE(NC);
        b->x1 = TAKE(NC), b->y = TAKE(NC), b->h1 = TAKE(NC), b->m1 = TAKE(NC), b->h1d = TAKE(NC), b->h2 = TAKE(NC);
        b->h3 = TAKE(NC), b->m2 = TAKE(NC);
        b->amean = TAKE(N), b->arstd = TAKE(N), b->fmean = TAKE(N), b->frstd = TAKE(N);
        b->att = TAKE(att);
    }
    a->xL = TAKE(NC), a->F = TAKE(NC), a->lmean = TAKE(N), a->lrstd = TAKE(N);
#undef TAKE
    (void)train;
}

static void sas_act_free(sas_act *a) {
    free(a->seq);
    free(a->valid);
    free(a->buf);
    free(a->blk);
}

/* Attention per sequence on the pool: sequences are independent, so each
 * thread takes a contiguous range of the batch (the same partition for the
 * same sizes: deterministic). */
typedef struct sas_att_job {
    const sas_state *s;
    sas_blk_act *b;
    sas_act *a;
    float *dq, *dk, *dv, *dout; /* backward only */
    bool backward;
} sas_att_job;

static void sas_att_rows(void *ctx, size_t begin, size_t end, int thread) {
    sas_att_job *j = ctx;
    int T = j->a->T, C = j->s->C, NH = j->s->NH;
    size_t tc = (size_t)T * C, att = (size_t)NH * T * T;
    float *scratch = j->backward ? xmalloc((size_t)T * sizeof *scratch) : NULL;
    for (size_t b = begin; b < end; b++) {
        if (!j->backward)
            nn_attention_forward(j->b->a + b * tc, j->b->att + b * att, j->b->q + b * tc, j->b->k + b * tc,
                                 j->b->v + b * tc, j->a->valid + b * T, 1, T, C, NH);
        else
            nn_attention_backward(j->dq + b * tc, j->dk + b * tc, j->dv + b * tc, j->dout + b * tc, j->b->att + b * att,
                                  j->b->q + b * tc, j->b->k + b * tc, j->b->v + b * tc, 1, T, C, NH, scratch);
    }
    free(scratch);
}

static void sas_attention(const sas_state *s, sas_act *a, sas_blk_act *b, bool backward, float *dq, float *dk,
                          float *dv, float *dout) {
    sas_att_job j = {s, b, a, dq, dk, dv, dout, backward};
    if (s->pool && a->B > 1) pool_for(s->pool, (size_t)a->B, sas_att_rows, &j);
    else sas_att_rows(&j, 0, (size_t)a->B, 0);
}

/* Forward through the blocks; a->seq and a->valid must be filled. */
static void sas_forward(const sas_state *s, const float *P, sas_act *a, bool train, rng *g) {
    int B = a->B, T = a->T, C = s->C, off = s->T - a->T;
    size_t N = (size_t)B * T, NC = N * C;
    float dp = train ? s->dropout : 0, scale = sqrtf((float)C);
    const float *E = P + s->lay.E, *pos = P + s->lay.P;
    for (size_t n = 0; n < N; n++) {
        float *x = a->x0 + n * C;
        const float *e = E + (size_t)a->seq[n] * C, *pe = pos + (off + n % T) * C;
        for (int i = 0; i < C; i++) x[i] = e[i] * scale + pe[i];
    }
    float *x = a->blk[0].xin;
    nn_dropout_forward(x, a->m0, a->x0, NC, dp, g);
    for (size_t n = 0; n < N; n++)
        if (!a->valid[n]) memset(x + n * C, 0, (size_t)C * sizeof *x);
    for (int l = 0; l < s->L; l++) {
        sas_blk_act *b = &a->blk[l];
        const float *W = P + s->lay.blk + (size_t)l * s->lay.blk_size;
        const size_t *o = s->boff;
        nn_layernorm_forward_pool(s->pool, b->Q, b->amean, b->arstd, b->xin, W + o[B_LNA_W], W + o[B_LNA_B], (int)N,
                                  C, 1e-8f);
        nn_matmul_forward(b->q, b->Q, W + o[B_WQ], W + o[B_BQ], (int)N, C, C);
        nn_matmul_forward(b->k, b->xin, W + o[B_WK], W + o[B_BK], (int)N, C, C);
        nn_matmul_forward(b->v, b->xin, W + o[B_WV], W + o[B_BV], (int)N, C, C);
        sas_attention(s, a, b, false, NULL, NULL, NULL, NULL);
        nn_matmul_forward(b->x1, b->a, W + o[B_WO], W + o[B_BO], (int)N, C, C);
        for (size_t i = 0; i < NC; i++) b->x1[i] += b->Q[i];
        nn_layernorm_forward_pool(s->pool, b->y, b->fmean, b->frstd, b->x1, W + o[B_LNF_W], W + o[B_LNF_B], (int)N,
                                  C, 1e-8f);
        nn_matmul_forward(b->h1, b->y, W + o[B_W1], W + o[B_B1], (int)N, C, C);
        nn_dropout_forward(b->h1d, b->m1, b->h1, NC, dp, g);
        nn_relu_forward(b->h2, b->h1d, NC);
        nn_matmul_forward(b->h3, b->h2, W + o[B_W2], W + o[B_B2], (int)N, C, C);
        float *next = l + 1 < s->L ? a->blk[l + 1].xin : a->xL;
        nn_dropout_forward(next, b->m2, b->h3, NC, dp, g);
        for (size_t n = 0; n < N; n++) {
            float *xn = next + n * C;
            const float *yn = b->y + n * C;
            if (!a->valid[n]) memset(xn, 0, (size_t)C * sizeof *xn);
            else
                for (int i = 0; i < C; i++) xn[i] += yn[i];
        }
    }
    nn_layernorm_forward_pool(s->pool, a->F, a->lmean, a->lrstd, a->xL, P + s->lay.lnw, P + s->lay.lnb, (int)N, C,
                              1e-8f);
}

/* Backward from dF (gradient of the loss w.r.t. the final outputs). dP
 * receives the parameter gradients; work holds 6 * N * C floats. */
static void sas_backward(const sas_state *s, const float *P, float *dP, sas_act *a, float *dF, float *work) {
    int B = a->B, T = a->T, C = s->C, off = s->T - a->T;
    size_t N = (size_t)B * T, NC = N * C;
    float *dx = work, *dy = work + NC, *dh = work + 2 * NC, *dh2 = work + 3 * NC, *dQ = work + 4 * NC,
          *dqkv = work + 5 * NC;
    memset(dx, 0, NC * sizeof *dx);
    nn_layernorm_backward_pool(s->pool, dx, dP + s->lay.lnw, dP + s->lay.lnb, dF, a->xL, P + s->lay.lnw, a->lmean,
                               a->lrstd, (int)N, C);
    for (int l = s->L - 1; l >= 0; l--) {
        sas_blk_act *b = &a->blk[l];
        const float *W = P + s->lay.blk + (size_t)l * s->lay.blk_size;
        float *dW = dP + s->lay.blk + (size_t)l * s->lay.blk_size;
        const size_t *o = s->boff;
        /* x_out = (y + drop(h3)) on valid positions */
        for (size_t n = 0; n < N; n++)
            if (!a->valid[n]) memset(dx + n * C, 0, (size_t)C * sizeof *dx);
        memcpy(dy, dx, NC * sizeof *dy);
        memset(dh, 0, NC * sizeof *dh);
        nn_dropout_backward(dh, dx, b->m2, NC); /* dh = d h3 */
        memset(dh2, 0, NC * sizeof *dh2);
        nn_matmul_backward(dh2, dW + o[B_W2], dW + o[B_B2], dh, b->h2, W + o[B_W2], (int)N, C, C);
        memset(dh, 0, NC * sizeof *dh);
        nn_relu_backward(dh, dh2, b->h1d, NC); /* d h1d */
        memset(dh2, 0, NC * sizeof *dh2);
        nn_dropout_backward(dh2, dh, b->m1, NC); /* d h1 */
        nn_matmul_backward(dy, dW + o[B_W1], dW + o[B_B1], dh2, b->y, W + o[B_W1], (int)N, C, C);
        /* y = LN_f(x1) */
        memset(dh, 0, NC * sizeof *dh); /* d x1 */
        nn_layernorm_backward_pool(s->pool, dh, dW + o[B_LNF_W], dW + o[B_LNF_B], dy, b->x1, W + o[B_LNF_W], b->fmean,
                                   b->frstd, (int)N, C);
        /* x1 = Q + a Wo */
        memcpy(dQ, dh, NC * sizeof *dQ);
        memset(dh2, 0, NC * sizeof *dh2); /* d a */
        nn_matmul_backward(dh2, dW + o[B_WO], dW + o[B_BO], dh, b->a, W + o[B_WO], (int)N, C, C);
        /* attention: dq, dk, dv share dqkv (3 passes to keep memory at 6 NC) */
        float *dq = dqkv, *dk = dy, *dv = dh; /* dy and dh are free now */
        memset(dq, 0, NC * sizeof *dq);
        memset(dk, 0, NC * sizeof *dk);
        memset(dv, 0, NC * sizeof *dv);
        sas_attention(s, a, b, true, dq, dk, dv, dh2);
        /* inputs: q from Q, k and v from xin */
        memset(dx, 0, NC * sizeof *dx);
        nn_matmul_backward(dQ, dW + o[B_WQ], dW + o[B_BQ], dq, b->Q, W + o[B_WQ], (int)N, C, C);
        nn_matmul_backward(dx, dW + o[B_WK], dW + o[B_BK], dk, b->xin, W + o[B_WK], (int)N, C, C);
        nn_matmul_backward(dx, dW + o[B_WV], dW + o[B_BV], dv, b->xin, W + o[B_WV], (int)N, C, C);
        nn_layernorm_backward_pool(s->pool, dx, dW + o[B_LNA_W], dW + o[B_LNA_B], dQ, b->xin, W + o[B_LNA_W], b->amean,
                                   b->arstd, (int)N, C);
    }
    /* embeddings: xin0 = drop(E[seq] * sqrt(C) + Ppos) on valid positions */
    float scale = sqrtf((float)C);
    for (size_t n = 0; n < N; n++) {
        if (!a->valid[n]) continue;
        const float *g = dx + n * C, *mk = a->m0 + n * C;
        float *de = dP + s->lay.E + (size_t)a->seq[n] * C, *dp = dP + s->lay.P + (off + n % T) * C;
        for (int i = 0; i < C; i++) {
            float gi = g[i] * mk[i];
            de[i] += gi * scale;
            dp[i] += gi;
        }
    }
}

/* ---- training ---------------------------------------------------------- */

typedef struct sas_seqs {
    int32_t n_users;
    int64_t *ptr;   /* user -> items in time order (item rows, 1-based) */
    int32_t *items;
} sas_seqs;

typedef struct ts_item {
    int64_t ts;
    int32_t item;
} ts_item;

static int ts_cmp(const void *a, const void *b) {
    const ts_item *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* Sequences from a CSR matrix, by (time, item). */
static void sas_seqs_build(const int64_t *ptr, const int32_t *idx, const int64_t *times, int32_t n_users,
                           sas_seqs *out) {
    out->n_users = n_users;
    out->ptr = xmalloc(((size_t)n_users + 1) * sizeof *out->ptr);
    memcpy(out->ptr, ptr, ((size_t)n_users + 1) * sizeof *out->ptr);
    int64_t nnz = ptr[n_users];
    out->items = xmalloc((size_t)(nnz ? nnz : 1) * sizeof *out->items);
    VEC(ts_item) row = {0};
    for (int32_t u = 0; u < n_users; u++) {
        row.len = 0;
        for (int64_t a = ptr[u]; a < ptr[u + 1]; a++) {
            ts_item t = {times ? times[a] : a, idx[a] + 1};
            vec_push(&row, t);
        }
        qsort(row.data, row.len, sizeof(ts_item), ts_cmp);
        for (size_t k = 0; k < row.len; k++) out->items[ptr[u] + (int64_t)k] = row.data[k].item;
    }
    vec_free(&row);
}

/* Fills row b of the batch with the last T items of seq[0..len) (left
 * padding). */
static void fill_row(const sas_state *s, sas_act *a, int b, const int32_t *seq, int64_t len) {
    int T = a->T;
    int64_t take = len < T ? len : T;
    int32_t *dst = a->seq + (size_t)b * T;
    unsigned char *v = a->valid + (size_t)b * T;
    memset(dst, 0, (size_t)T * sizeof *dst);
    memset(v, 0, (size_t)T);
    for (int64_t i = 0; i < take; i++) {
        dst[T - take + i] = seq[len - take + i];
        v[T - take + i] = 1;
    }
}

/* Scores of every item (out[n_items]) from the last position of a sequence. */
static void sas_score_seq(const sas_state *s, const float *P, int32_t n_items, const int32_t *seq, int64_t len,
                          float *out) {
    sas_act a;
    sas_act_init(&a, s, 1, false);
    a.T = len < s->T ? (int)len : s->T; /* only the positions that hold items */
    fill_row(s, &a, 0, seq, len);
    sas_forward(s, P, &a, false, NULL);
    const float *f = a.F + (size_t)(a.T - 1) * s->C;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_items, s->C, 1.0f, P + s->lay.E + s->C, s->C, f, 1, 0.0f, out, 1);
    sas_act_free(&a);
}

/* Early stopping's validation set: each chosen user's last training item is
 * the target, ranked against every item (full) or against SAS_VNEG items
 * the user never had, drawn once before training so that every evaluation
 * sees the same ones (sampled). */
enum { SAS_VNEG = 100 };

typedef struct sas_valid {
    VEC(int32_t) users;
    int32_t *neg; /* users.len * SAS_VNEG items (0-based, -1 past the last); NULL for full */
} sas_valid;

static void sas_valid_init(sas_valid *v, const sas_state *s, const sas_seqs *q, const rec_data *d, rng *g) {
    memset(v, 0, sizeof *v);
    /* evenly spaced users: at most 2,000 for full ranking (enough to rank
     * epochs), 5,000 for the noisier sampled metric */
    int32_t cap = s->valid_sampled ? 5000 : 2000, step = q->n_users > cap ? q->n_users / cap : 1;
    for (int32_t u = 0; u < q->n_users; u += step)
        if (q->ptr[u + 1] - q->ptr[u] >= 3) vec_push(&v->users, u);
    if (!s->valid_sampled) return;
    v->neg = xmalloc(v->users.len * SAS_VNEG * sizeof *v->neg);
    unsigned char *chosen = xcalloc((size_t)d->n_items, 1);
    for (size_t k = 0; k < v->users.len; k++) {
        int32_t *out = v->neg + k * SAS_VNEG;
        int n = rec_draw_negatives(d->indptr, d->indices, v->users.data[k], d->n_items, SAS_VNEG, NULL, g, chosen,
                                   out);
        for (int i = 0; i < n; i++) chosen[out[i]] = 0;
        for (int i = n; i < SAS_VNEG; i++) out[i] = -1; /* a user who had nearly every item */
    }
    free(chosen);
}

static void sas_valid_deinit(sas_valid *v) {
    vec_free(&v->users);
    free(v->neg);
}

/* Validation NDCG@10 of the held-out items. */
static double sas_validate(const sas_state *s, const float *P, const sas_seqs *q, const sas_valid *v,
                           int32_t n_items) {
    float *scores = xmalloc((size_t)n_items * sizeof *scores);
    double sum = 0;
    int32_t top[10];
    float ts[10];
    for (size_t k = 0; k < v->users.len; k++) {
        int32_t u = v->users.data[k];
        int64_t len = q->ptr[u + 1] - q->ptr[u];
        const int32_t *seq = q->items + q->ptr[u];
        int32_t target = seq[len - 1] - 1;
        sas_score_seq(s, P, n_items, seq, len - 1, scores);
        if (v->neg) { /* rank among the negatives; ties count against the target */
            int above = 0;
            for (const int32_t *ng = v->neg + k * SAS_VNEG; ng < v->neg + (k + 1) * SAS_VNEG && *ng >= 0; ng++)
                above += scores[*ng] >= scores[target];
            if (above < 10) sum += 1 / log2(above + 2.0);
            continue;
        }
        for (int64_t i = 0; i < len - 1; i++) scores[seq[i] - 1] = -INFINITY;
        int got = rec_topk_scores(scores, n_items, 10, top, ts);
        for (int r = 0; r < got; r++)
            if (top[r] == target) sum += 1 / log2(r + 2.0);
    }
    free(scores);
    return v->users.len ? sum / (double)v->users.len : 0;
}

static int sas_fit(rec_model *m, const rec_data *d, tailor_error *err) {
    sas_state *s = m->impl;
    int32_t ni = d->n_items;
    sas_layout_init(s, ni);
    int C = s->C, T = s->T;
    free(s->params);
    s->params = xcalloc(s->lay.total, sizeof(float));
    float *P = s->params;
    rng g;
    rng_seed(&g, m->seed);
    /* Initialisation: small normal weights, unit LayerNorm scales. */
    nn_init_normal(P, s->lay.total, 0.02f, &g);
    memset(P + s->lay.E, 0, (size_t)C * sizeof(float)); /* padding row */
    for (int i = 0; i < C; i++) P[s->lay.lnw + i] = 1, P[s->lay.lnb + i] = 0;
    for (int l = 0; l < s->L; l++) {
        float *W = P + s->lay.blk + (size_t)l * s->lay.blk_size;
        for (int i = 0; i < C; i++) {
            W[s->boff[B_LNA_W] + i] = 1, W[s->boff[B_LNA_B] + i] = 0;
            W[s->boff[B_LNF_W] + i] = 1, W[s->boff[B_LNF_B] + i] = 0;
        }
    }
    sas_seqs q;
    sas_seqs_build(d->indptr, d->indices, d->times, d->n_users, &q);
    /* Training users: at least 2 items (with early stopping 3: the last
     * one validates). */
    int hold = s->patience > 0 ? 1 : 0;
    sas_valid val;
    rng vg; /* its own stream: the training draws do not depend on it */
    rng_seed(&vg, m->seed ^ 0x5a5a5a5aULL);
    sas_valid_init(&val, s, &q, d, &vg);
    VEC(int32_t) users = {0};
    for (int32_t u = 0; u < q.n_users; u++)
        if (q.ptr[u + 1] - q.ptr[u] >= 2 + hold) vec_push(&users, u);
    if (users.len == 0) {
        free(q.ptr);
        free(q.items);
        vec_free(&users);
        sas_valid_deinit(&val);
        return err_set(err, TAILOR_EDATA, "sasrec: no user has enough interactions to train on");
    }
    float *grad = xcalloc(s->lay.total, sizeof(float)), *mom = xcalloc(s->lay.total, sizeof(float)),
          *vel = xcalloc(s->lay.total, sizeof(float)), *best = NULL;
    int B = s->batch;
    sas_act a;
    sas_act_init(&a, s, B, true);
    size_t N = (size_t)B * T, NC = N * C;
    float *dF = xmalloc(NC * sizeof *dF), *work = xmalloc(6 * NC * sizeof *work);
    int32_t *pos = xmalloc(N * sizeof *pos), *neg = xmalloc(N * sizeof *neg);
    float *lp = xmalloc(N * sizeof *lp), *ln_ = xmalloc(N * sizeof *ln_), *dlp = xmalloc(N * sizeof *dlp),
          *dln = xmalloc(N * sizeof *dln);
    /* CE: logits of the valid positions only. */
    float *logits = s->ce ? xmalloc(N * (size_t)ni * sizeof *logits) : NULL, *Fv = s->ce ? xmalloc(NC * sizeof *Fv) : NULL;
    int32_t *vrow = xmalloc(N * sizeof *vrow), *tgt = xmalloc(N * sizeof *tgt);
    nn_adamw opt = {.lr = s->lr, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-9f, .weight_decay = s->l2, .t = 0};
    openblas_set_num_threads(m->pool ? pool_threads(m->pool) : 1);
    s->pool = m->pool;
    progress bar;
    char label[96] = "sasrec";
    uint64_t t_ep = timer_now_ns();
    progress_begin(&bar, label, (uint64_t)s->epochs);
    if (m->quiet) bar.active = false;
    double best_ndcg = -1;
    int bad = 0;
    size_t nbatches = (users.len + (size_t)B - 1) / (size_t)B;
    size_t *order = xmalloc(nbatches * sizeof *order);
    for (int ep = 0; ep < s->epochs; ep++) {
        /* Shuffle users (seeded), then sort runs of 32 batches by length so
         * a batch holds similar lengths and its window is as short as its
         * longest sequence; batches are visited in a shuffled order. */
        for (size_t i = users.len; i > 1; i--) {
            size_t j = (size_t)rng_below(&g, i);
            int32_t t = users.data[i - 1];
            users.data[i - 1] = users.data[j], users.data[j] = t;
        }
        size_t run = (size_t)B * 32;
        for (size_t r0 = 0; r0 < users.len; r0 += run) {
            size_t r1 = r0 + run < users.len ? r0 + run : users.len;
            for (size_t i = r0 + 1; i < r1; i++) { /* insertion sort by length, stable */
                int32_t u = users.data[i];
                int64_t lu = q.ptr[u + 1] - q.ptr[u];
                size_t j = i;
                while (j > r0 && q.ptr[users.data[j - 1] + 1] - q.ptr[users.data[j - 1]] > lu) {
                    users.data[j] = users.data[j - 1];
                    j--;
                }
                users.data[j] = u;
            }
        }
        for (size_t i = 0; i < nbatches; i++) order[i] = i;
        for (size_t i = nbatches; i > 1; i--) {
            size_t j = (size_t)rng_below(&g, i), t = order[i - 1];
            order[i - 1] = order[j], order[j] = t;
        }
        double ep_loss = 0;
        int nb = 0;
        for (size_t bi = 0; bi < nbatches; bi++) {
            size_t start = order[bi] * (size_t)B;
            int bn = (int)(users.len - start < (size_t)B ? users.len - start : (size_t)B);
            int Tb = 1;
            for (int b = 0; b < bn; b++) {
                int32_t u = users.data[start + (size_t)b];
                int64_t inputs = q.ptr[u + 1] - q.ptr[u] - hold - 1;
                if (inputs > Tb) Tb = inputs < s->T ? (int)inputs : s->T;
            }
            a.B = bn;
            a.T = Tb;
            T = Tb;
            N = (size_t)bn * Tb, NC = N * C;
            memset(a.seq, 0, N * sizeof *a.seq);
            memset(a.valid, 0, N);
            for (size_t i = 0; i < N; i++) pos[i] = 0, neg[i] = 0;
            for (int b = 0; b < bn; b++) {
                int32_t u = users.data[start + (size_t)b];
                const int32_t *seq = q.items + q.ptr[u];
                int64_t len = q.ptr[u + 1] - q.ptr[u] - hold; /* training part */
                /* inputs seq[0..len-1), targets seq[1..len) */
                fill_row(s, &a, b, seq, len - 1);
                int64_t take = len - 1 < T ? len - 1 : T;
                for (int64_t i = 0; i < take; i++) {
                    size_t at = (size_t)b * T + (size_t)(T - take + i);
                    pos[at] = seq[len - take + i];
                    /* a negative the user never had */
                    for (int tries = 0; tries < 50; tries++) {
                        int32_t c = (int32_t)rng_below(&g, (uint64_t)ni) + 1;
                        if (!rec_csr_has(d->indptr, d->indices, u, c - 1)) {
                            neg[at] = c;
                            break;
                        }
                    }
                    if (!neg[at]) neg[at] = 1;
                }
            }
            sas_forward(s, P, &a, true, &g);
            memset(grad, 0, s->lay.total * sizeof *grad);
            memset(dF, 0, NC * sizeof *dF);
            const float *E = P + s->lay.E;
            float *dE = grad + s->lay.E;
            float loss;
            if (!s->ce) {
                for (size_t n = 0; n < N; n++) {
                    if (!a.valid[n]) {
                        lp[n] = ln_[n] = 0;
                        continue;
                    }
                    const float *f = a.F + n * C;
                    float sp = 0, sn = 0;
                    for (int i = 0; i < C; i++) sp += f[i] * E[(size_t)pos[n] * C + i], sn += f[i] * E[(size_t)neg[n] * C + i];
                    lp[n] = sp, ln_[n] = sn;
                }
                loss = nn_bce_pairs(lp, ln_, a.valid, dlp, dln, (int)N);
                for (size_t n = 0; n < N; n++) {
                    if (!a.valid[n]) continue;
                    float *df = dF + n * C;
                    const float *f = a.F + n * C, *ep_ = E + (size_t)pos[n] * C, *en = E + (size_t)neg[n] * C;
                    float *dep = dE + (size_t)pos[n] * C, *den = dE + (size_t)neg[n] * C;
                    for (int i = 0; i < C; i++) {
                        df[i] += dlp[n] * ep_[i] + dln[n] * en[i];
                        dep[i] += dlp[n] * f[i];
                        den[i] += dln[n] * f[i];
                    }
                }
            } else {
                int nv = 0;
                for (size_t n = 0; n < N; n++)
                    if (a.valid[n]) {
                        memcpy(Fv + (size_t)nv * C, a.F + n * C, (size_t)C * sizeof *Fv);
                        vrow[nv] = (int32_t)n;
                        tgt[nv] = pos[n] - 1;
                        nv++;
                    }
                /* logits [nv, ni] = Fv @ E[1..]^T */
                nn_matmul_forward(logits, Fv, E + C, NULL, nv, C, ni);
                loss = nn_softmax_ce_pool(s->pool, logits, tgt, nv, ni);
                float *dFv = work; /* free until backward */
                memset(dFv, 0, (size_t)nv * C * sizeof *dFv);
                nn_matmul_backward(dFv, dE + C, NULL, logits, Fv, E + C, nv, C, ni);
                for (int r = 0; r < nv; r++) memcpy(dF + (size_t)vrow[r] * C, dFv + (size_t)r * C, (size_t)C * sizeof *dF);
            }
            sas_backward(s, P, grad, &a, dF, work);
            memset(grad + s->lay.E, 0, (size_t)C * sizeof *grad); /* padding stays zero */
            nn_clip_grad_norm(grad, s->lay.total, 5.0f);
            opt.t++;
            nn_adamw_step_pool(s->pool, &opt, P, grad, mom, vel, s->lay.total, s->l2 > 0);
            ep_loss += loss;
            nb++;
        }
        /* the bar shows the last epoch's loss and time */
        snprintf(label, sizeof label, "sasrec loss %.4f, %.1f s/epoch", nb ? ep_loss / nb : 0, timer_seconds_since(t_ep));
        t_ep = timer_now_ns();
        progress_update(&bar, (uint64_t)ep + 1);
        log_info("sasrec epoch %d loss %.4f", ep + 1, nb ? ep_loss / nb : 0);
        if (s->patience > 0 && ((ep + 1) % s->eval_every == 0 || ep + 1 == s->epochs)) {
            double v = sas_validate(s, P, &q, &val, ni);
            log_info("sasrec epoch %d validation ndcg@10 %.4f", ep + 1, v);
            if (v > best_ndcg) {
                best_ndcg = v;
                bad = 0;
                if (!best) best = xmalloc(s->lay.total * sizeof *best);
                memcpy(best, P, s->lay.total * sizeof *best);
            } else if (++bad >= s->patience) {
                break;
            }
        }
    }
    progress_end(&bar);
    s->pool = NULL;
    free(order);
    if (best) memcpy(P, best, s->lay.total * sizeof *best);
    openblas_set_num_threads(1);
    sas_act_free(&a);
    free(best), free(grad), free(mom), free(vel), free(dF), free(work), free(pos), free(neg);
    free(lp), free(ln_), free(dlp), free(dln), free(logits), free(Fv), free(vrow), free(tgt);
    free(q.ptr), free(q.items);
    vec_free(&users);
    sas_valid_deinit(&val);
    return 0;
}

static void sas_score(const rec_model *m, int32_t user, const int32_t *hist, const float *vals, size_t n,
                      float *out) {
    const sas_state *s = m->impl;
    /* The history arrives in item order from the training matrix or as
     * given; order it by the model's notion of time is not possible here,
     * so callers pass sequences in time order (the CLI and the evaluation
     * do: see rec_topk's docs). */
    int32_t *seq = xmalloc((n ? n : 1) * sizeof *seq);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (hist[i] >= 0 && hist[i] < m->n_items) seq[k++] = hist[i] + 1;
    if (k == 0) memset(out, 0, (size_t)m->n_items * sizeof *out);
    else sas_score_seq(s, s->params, m->n_items, seq, (int64_t)k, out);
    free(seq);
}

/* The attention the last position (the one that scores items) pays to each
 * history item in the last block, averaged over heads: which recent items
 * the model reads the user's taste from. Items beyond max_len get none. */
static void sas_explain(const rec_model *m, int32_t user, const int32_t *hist, const float *vals, size_t n,
                        int32_t item, float *contrib) {
    const sas_state *s = m->impl;
    memset(contrib, 0, n * sizeof *contrib);
    int32_t *seq = xmalloc((n ? n : 1) * sizeof *seq);
    size_t *from = xmalloc((n ? n : 1) * sizeof *from), k = 0;
    for (size_t i = 0; i < n; i++)
        if (hist[i] >= 0 && hist[i] < m->n_items) seq[k] = hist[i] + 1, from[k++] = i;
    if (k) {
        sas_act a;
        sas_act_init(&a, s, 1, false);
        a.T = k < (size_t)s->T ? (int)k : s->T;
        fill_row(s, &a, 0, seq, (int64_t)k);
        sas_forward(s, s->params, &a, false, NULL);
        int T = a.T;
        const float *att = a.blk[s->L - 1].att;
        for (int h = 0; h < s->NH; h++)
            for (int j = 0; j < T; j++)
                contrib[from[k - (size_t)T + (size_t)j]] += att[((size_t)h * T + (size_t)(T - 1)) * T + j] / (float)s->NH;
        sas_act_free(&a);
    }
    free(seq);
    free(from);
    (void)user, (void)vals, (void)item;
}

static void sas_similar(const rec_model *m, int32_t item, float *out) {
    const sas_state *s = m->impl;
    la_cosine_rows(s->params + s->lay.E + s->C, m->n_items, s->C, item, out); /* item rows start at 1 */
}

static void sas_save(const rec_model *m, sb *out) {
    const sas_state *s = m->impl;
    rec_write_array(out, s->params, sizeof(float), s->lay.total);
}

static int sas_load(rec_model *m, const char *buf, size_t n, tailor_error *err) {
    sas_state *s = m->impl;
    sas_layout_init(s, m->n_items);
    rec_reader r = {buf, n};
    void *p = NULL;
    if (!rec_read_array(&r, sizeof(float), (int64_t)s->lay.total, &p, NULL) || r.left) {
        free(p);
        return err_set(err, TAILOR_EDATA, "sasrec: bad payload");
    }
    free(s->params);
    s->params = p;
    return 0;
}

static void sas_free(rec_model *m) {
    sas_state *s = m->impl;
    if (s) free(s->params);
    free(s);
}

const rec_kind REC_SASREC = {
    .name = "sasrec",
    .auto_grid = "dropout=0.2,0.5 loss=bce,ce",
    .summary = "SASRec: self-attentive sequential recommendation (transformer trained in C)",
    .params = SAS_PARAMS,
    .init = sas_init,
    .fit = sas_fit,
    .score = sas_score,
    .similar = sas_similar,
    .explain = sas_explain,
    .explain_style = REC_EXPLAIN_ATTENTION,
    .save = sas_save,
    .load = sas_load,
    .free = sas_free,
    .sequential = true,
};

/* ---- gradient check (tests) -------------------------------------------- */

/* The training loss of one batch, without dropout, for the check below. */
static float sas_batch_loss(const sas_state *s, const float *P, sas_act *a, const int32_t *pos, const int32_t *neg,
                            int32_t ni, float *dF, float *lp, float *ln_, float *dlp, float *dln) {
    size_t N = (size_t)a->B * s->T;
    int C = s->C;
    sas_forward(s, P, a, false, NULL);
    const float *E = P + s->lay.E;
    if (!s->ce) {
        for (size_t n = 0; n < N; n++) {
            lp[n] = ln_[n] = 0;
            if (!a->valid[n]) continue;
            for (int i = 0; i < C; i++)
                lp[n] += a->F[n * C + i] * E[(size_t)pos[n] * C + i], ln_[n] += a->F[n * C + i] * E[(size_t)neg[n] * C + i];
        }
        float loss = nn_bce_pairs(lp, ln_, a->valid, dlp, dln, (int)N);
        if (dF)
            for (size_t n = 0; n < N; n++)
                for (int i = 0; i < C && a->valid[n]; i++)
                    dF[n * C + i] = dlp[n] * E[(size_t)pos[n] * C + i] + dln[n] * E[(size_t)neg[n] * C + i];
        return loss;
    }
    float *logits = xmalloc(N * (size_t)ni * sizeof *logits);
    int32_t *t = xmalloc(N * sizeof *t);
    for (size_t n = 0; n < N; n++) t[n] = a->valid[n] ? pos[n] - 1 : -1;
    nn_matmul_forward(logits, a->F, E + C, NULL, (int)N, C, ni);
    float loss = nn_softmax_ce(logits, t, (int)N, ni);
    if (dF) {
        memset(dF, 0, N * C * sizeof *dF);
        nn_matmul_backward(dF, NULL, NULL, logits, a->F, E + C, (int)N, C, ni);
    }
    free(logits);
    free(t);
    return loss;
}

double rec_sasrec_gradcheck(bool ce, uint64_t seed) {
    sas_state s = {.T = 5, .L = 2, .NH = 2, .C = 8, .ce = ce, .dropout = 0};
    int32_t ni = 7;
    sas_layout_init(&s, ni);
    float *P = xmalloc(s.lay.total * sizeof *P), *grad = xcalloc(s.lay.total, sizeof *grad);
    rng g;
    rng_seed(&g, seed);
    nn_init_normal(P, s.lay.total, 0.5f, &g);
    sas_act a;
    sas_act_init(&a, &s, 2, false);
    int32_t seqs[2][5] = {{0, 0, 3, 1, 6}, {2, 4, 5, 7, 1}}, pos[10], neg[10];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 5; t++) {
            a.seq[b * 5 + t] = seqs[b][t];
            a.valid[b * 5 + t] = seqs[b][t] != 0;
            pos[b * 5 + t] = 1 + (seqs[b][t] + 2) % ni;
            neg[b * 5 + t] = 1 + (seqs[b][t] + 4) % ni;
        }
    size_t N = 10, NC = N * s.C;
    float *dF = xcalloc(NC, sizeof *dF), *work = xmalloc(6 * NC * sizeof *work);
    float lp[10], ln_[10], dlp[10], dln[10];
    sas_batch_loss(&s, P, &a, pos, neg, ni, dF, lp, ln_, dlp, dln);
    sas_backward(&s, P, grad, &a, dF, work);
    /* The output embedding's gradient (the loss's own use of E) */
    if (!ce) {
        for (size_t n = 0; n < N; n++)
            for (int i = 0; i < s.C && a.valid[n]; i++) {
                grad[s.lay.E + (size_t)pos[n] * s.C + i] += dlp[n] * a.F[n * s.C + i];
                grad[s.lay.E + (size_t)neg[n] * s.C + i] += dln[n] * a.F[n * s.C + i];
            }
    } else {
        float *logits = xmalloc(N * (size_t)ni * sizeof *logits);
        int32_t t[10];
        for (size_t n = 0; n < N; n++) t[n] = a.valid[n] ? pos[n] - 1 : -1;
        nn_matmul_forward(logits, a.F, P + s.lay.E + s.C, NULL, (int)N, s.C, ni);
        nn_softmax_ce(logits, t, (int)N, ni);
        nn_matmul_backward(NULL, grad + s.lay.E + s.C, NULL, logits, a.F, P + s.lay.E + s.C, (int)N, s.C, ni);
        free(logits);
    }
    /* Central differences on every parameter with a visible gradient. */
    double worst = 0;
    for (size_t i = 0; i < s.lay.total; i++) {
        if (i >= s.lay.P && i < s.lay.P + (size_t)s.T * s.C && fabsf(grad[i]) < 1e-30f) continue;
        float keep = P[i], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
        P[i] = keep + h;
        double lp1 = sas_batch_loss(&s, P, &a, pos, neg, ni, NULL, lp, ln_, dlp, dln);
        P[i] = keep - h;
        double lm1 = sas_batch_loss(&s, P, &a, pos, neg, ni, NULL, lp, ln_, dlp, dln);
        P[i] = keep;
        double l0 = sas_batch_loss(&s, P, &a, pos, neg, ni, NULL, lp, ln_, dlp, dln);
        double num = (lp1 - lm1) / (2 * h);
        if (fabs(num) < 1e-3 && fabs(grad[i]) < 1e-3) continue;
        /* A ReLU kink inside [keep - h, keep + h] makes the one-sided
         * slopes disagree: finite differences say nothing there. */
        double fwd = (lp1 - l0) / h, bwd = (l0 - lm1) / h;
        if (fabs(fwd - bwd) > 0.1 * (fabs(fwd) + fabs(bwd))) continue;
        double err = fabs(num - grad[i]) / (fabs(num) + fabs(grad[i]));
        if (err > worst) worst = err;
    }
    sas_act_free(&a);
    free(P), free(grad), free(dF), free(work);
    return worst;
}
