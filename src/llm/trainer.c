/* trainer.c — `tailor llm train`: a language model of the engine's
 * architectures trained from scratch on a text file. Every non-empty line
 * is a document, tokenized with the vocabulary's BOS; the documents run on
 * in one stream cut into windows of ctx + 1 tokens; a share of the windows
 * (the last ones) is held out for validation. Batches are drawn from a
 * seeded shuffle per epoch, so batch s is a function of (seed, s) alone
 * and a run resumed from a checkpoint continues exactly where it stopped.
 * AdamW (no decay on norms and biases), linear warm-up then cosine decay
 * to a tenth of the rate, the gradient clipped by its global norm. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"
#include "nn/nn.h"

llm_train_params llm_train_default_params(void) {
    return (llm_train_params){.ctx = 128, .batch = 16, .steps = 1000, .lr = 1e-3f, .weight_decay = 0.1f,
                              .clip = 1.0f, .warmup = -1, .val_share = 0.05, .eval_every = 100,
                              .ckpt_every = 200, .seed = 42, .threads = 0};
}

void llm_train_init(nn_llama *m, uint64_t seed) {
    /* GPT-2's: N(0, 0.02), the projections into the residual stream
     * scaled by 1/sqrt(2 L); norms at 1, biases at 0. */
    rng g;
    rng_seed(&g, seed);
    const nn_llama_config *c = &m->c;
    size_t D = (size_t)c->n_embd, S = D / (size_t)c->n_head, DQ = (size_t)c->n_head * S,
           DKV = (size_t)c->n_head_kv * S, F = (size_t)c->n_ff, V = (size_t)c->n_vocab;
    float proj = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    nn_init_normal(m->p.tok_embd, V * D, 0.02f, &g);
    for (int l = 0; l < c->n_layer; l++) {
        nn_llama_layer *P = &m->p.layers[l];
        for (size_t i = 0; i < D; i++) P->attn_norm[i] = P->ffn_norm[i] = 1;
        nn_init_normal(P->wq, DQ * D, 0.02f, &g);
        nn_init_normal(P->wk, DKV * D, 0.02f, &g);
        nn_init_normal(P->wv, DKV * D, 0.02f, &g);
        if (P->bq) memset(P->bq, 0, DQ * 4), memset(P->bk, 0, DKV * 4), memset(P->bv, 0, DKV * 4);
        nn_init_normal(P->wo, D * DQ, proj, &g);
        nn_init_normal(P->gate, F * D, 0.02f, &g);
        nn_init_normal(P->up, F * D, 0.02f, &g);
        nn_init_normal(P->down, D * F, proj, &g);
    }
    for (size_t i = 0; i < D; i++) m->p.output_norm[i] = 1;
    if (!c->tied) nn_init_normal(m->p.output, V * D, 0.02f, &g);
}

/* ---- data ------------------------------------------------------------------ */

typedef struct tr_data {
    int32_t *tok;
    int64_t n;
    int64_t n_train, n_val; /* windows */
    int T;
} tr_data;

int32_t *llm_train_tokens(const llm_vocab *v, const char *path, int64_t *n, int64_t *docs_out, tailor_error *err) {
    sb text;
    sb_init(&text);
    *n = 0;
    if (file_read(path, &text, err)) {
        sb_deinit(&text);
        return NULL;
    }
    VEC(int32_t) all = {0};
    int64_t docs = 0;
    for (char *line = text.buf; line && line < text.buf + text.len;) {
        char *nl = memchr(line, '\n', (size_t)(text.buf + text.len - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(text.buf + text.len - line);
        if (len && line[len - 1] == '\r') len--;
        if (len) {
            int64_t cnt;
            int32_t *ids = llm_tokenize_alloc(v, line, len, true, false, &cnt);
            for (int64_t i = 0; i < cnt; i++) vec_push(&all, ids[i]);
            free(ids);
            docs++;
        }
        line = nl ? nl + 1 : NULL;
    }
    sb_deinit(&text);
    *n = (int64_t)all.len;
    if (docs_out) *docs_out = docs;
    return all.data ? all.data : xcalloc(1, sizeof(int32_t));
}

static int load_data(const llm_vocab *v, const char *path, int T, double val_share, tr_data *d, tailor_error *err) {
    memset(d, 0, sizeof *d);
    d->T = T;
    int64_t docs;
    d->tok = llm_train_tokens(v, path, &d->n, &docs, err);
    if (!d->tok) return err->code;
    int64_t windows = d->n > T ? (d->n - 1) / T : 0;
    d->n_val = (int64_t)(windows * val_share);
    if (val_share > 0 && windows >= 2 && d->n_val == 0) d->n_val = 1;
    d->n_train = windows - d->n_val;
    if (d->n_train < 1) {
        free(d->tok);
        return err_set(err, TAILOR_EINVAL, "%s: %lld tokens in %lld lines make no training window of %d tokens", path,
                       (long long)d->n, (long long)docs, T + 1);
    }
    return 0;
}

/* Window w of the epoch's shuffle (Fisher-Yates seeded by seed and epoch). */
typedef struct tr_order {
    int64_t epoch;
    int64_t *perm;
} tr_order;

static int64_t window_at(const tr_data *d, tr_order *o, uint64_t seed, int64_t k) {
    int64_t epoch = k / d->n_train, at = k % d->n_train;
    if (!o->perm || o->epoch != epoch) {
        if (!o->perm) o->perm = xmalloc((size_t)d->n_train * sizeof *o->perm);
        for (int64_t i = 0; i < d->n_train; i++) o->perm[i] = i;
        rng g;
        rng_seed(&g, seed * 1000003u + (uint64_t)epoch);
        for (int64_t i = d->n_train - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(&g, (uint64_t)i + 1), t = o->perm[i];
            o->perm[i] = o->perm[j], o->perm[j] = t;
        }
        o->epoch = epoch;
    }
    return o->perm[at];
}

static void fill_window(const tr_data *d, int64_t w, int32_t *tok, int32_t *tgt) {
    const int32_t *s = d->tok + w * d->T;
    memcpy(tok, s, (size_t)d->T * 4);
    memcpy(tgt, s + 1, (size_t)d->T * 4);
}

/* ---- checkpoints --------------------------------------------------------------- */

#define CKPT_MAGIC "TLRCKPT1"

static int ckpt_save(const char *path, const nn_llama *m, const float *mom, const float *var, int64_t step,
                     tailor_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    size_t n = m->n_params;
    bool ok = f && fwrite(CKPT_MAGIC, 1, 8, f) == 8 && fwrite(&m->c, sizeof m->c, 1, f) == 1 &&
              fwrite(&step, 8, 1, f) == 1 && fwrite(&n, 8, 1, f) == 1 && fwrite(m->params, 4, n, f) == n &&
              fwrite(mom, 4, n, f) == n && fwrite(var, 4, n, f) == n;
    if (f && fclose(f)) ok = false;
    if (ok && rename(tmp, path)) ok = false;
    if (!ok) remove(tmp);
    return ok ? 0 : err_set(err, TAILOR_EIO, "cannot write the checkpoint %s", path);
}

static int ckpt_load(const char *path, nn_llama *m, float *mom, float *var, int64_t *step, tailor_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, TAILOR_ENOTFOUND, "no checkpoint %s", path);
    char magic[8];
    nn_llama_config c;
    size_t n = 0;
    bool ok = fread(magic, 1, 8, f) == 8 && !memcmp(magic, CKPT_MAGIC, 8) && fread(&c, sizeof c, 1, f) == 1 &&
              fread(step, 8, 1, f) == 1 && fread(&n, 8, 1, f) == 1;
    bool same = ok && !memcmp(&c, &m->c, sizeof c) && n == m->n_params;
    ok = same && fread(m->params, 4, n, f) == n && fread(mom, 4, n, f) == n && fread(var, 4, n, f) == n;
    fclose(f);
    if (!ok)
        return err_set(err, TAILOR_EDATA, "%s: %s", path,
                       same ? "truncated or damaged checkpoint"
                            : "a checkpoint of another model shape (or not a checkpoint): start without --resume");
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

/* The parameter ranges AdamW decays (matrices) and does not (norms, biases). */
static void adamw_all(nn_adamw *o, nn_llama *m, float *mom, float *var) {
    const nn_llama_config *c = &m->c;
    size_t D = (size_t)c->n_embd, S = D / (size_t)c->n_head, DQ = (size_t)c->n_head * S,
           DKV = (size_t)c->n_head_kv * S, F = (size_t)c->n_ff, V = (size_t)c->n_vocab;
#define STEP(ptr, n, decay)                                                                        \
    do {                                                                                           \
        size_t at = (size_t)((ptr) - m->params);                                                   \
        nn_adamw_step(o, m->params + at, m->grads + at, mom + at, var + at, (n), (decay));         \
    } while (0)
    STEP(m->p.tok_embd, V * D, true);
    for (int l = 0; l < c->n_layer; l++) {
        nn_llama_layer *P = &m->p.layers[l];
        STEP(P->attn_norm, D, false);
        STEP(P->wq, DQ * D, true);
        STEP(P->wk, DKV * D, true);
        STEP(P->wv, DKV * D, true);
        if (P->bq) STEP(P->bq, DQ + 2 * DKV, false); /* bq, bk, bv lie together */
        STEP(P->wo, D * DQ, true);
        STEP(P->ffn_norm, D, false);
        STEP(P->gate, 3 * F * D, true); /* gate, up, down */
    }
    STEP(m->p.output_norm, D, false);
    if (!c->tied) STEP(m->p.output, V * D, true);
#undef STEP
}

static double val_loss(nn_llama *m, const tr_data *d, int B, int32_t *tok, int32_t *tgt) {
    int64_t n = d->n_val < 64 ? d->n_val : 64;
    double sum = 0;
    int64_t done = 0;
    for (int64_t w0 = 0; w0 < n; w0 += B) {
        int b = (int)(n - w0 < B ? n - w0 : B);
        for (int i = 0; i < b; i++) fill_window(d, d->n_train + w0 + i, tok + (size_t)i * d->T, tgt + (size_t)i * d->T);
        sum += nn_llama_forward(m, tok, tgt, b, d->T) * b;
        done += b;
    }
    return done ? sum / done : NAN;
}

int llm_train_run(nn_llama *m, const llm_vocab *v, llm_train_params p, llm_train_report *out, tailor_error *err) {
    memset(out, 0, sizeof *out);
    out->val_loss = NAN;
    tr_data d;
    int rc = load_data(v, p.data, p.ctx, p.val_share, &d, err);
    if (rc) return rc;
    out->train_windows = d.n_train, out->val_windows = d.n_val, out->data_tokens = d.n;
    int B = p.batch, T = p.ctx;
    int warmup = p.warmup >= 0 ? p.warmup : (int)(p.steps / 20);
    float *mom = xcalloc(m->n_params, 4), *var = xcalloc(m->n_params, 4);
    int64_t step = 0;
    if (p.checkpoint && p.resume) {
        rc = ckpt_load(p.checkpoint, m, mom, var, &step, err);
        if (rc) {
            free(mom), free(var), free(d.tok);
            return rc;
        }
        out->resumed_at = step;
    }
    openblas_set_num_threads(p.threads > 0 ? p.threads : openblas_get_num_procs());
    pool *tp = pool_new(p.threads);
    m->pool = tp;
    int32_t *tok = xmalloc((size_t)B * T * 4), *tgt = xmalloc((size_t)B * T * 4);
    tr_order order = {0};
    nn_adamw o = {.lr = p.lr, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = p.weight_decay, .t = step};
    progress bar;
    char label[128] = "training";
    if (!p.quiet)
        progress_begin(&bar, label, (uint64_t)((p.until > 0 && p.until < p.steps ? p.until : p.steps) - step) * (uint64_t)B *
                                        (uint64_t)T);
    uint64_t t0 = timer_now_ns();
    double ema = NAN;
    int64_t stop = p.until > 0 && p.until < p.steps ? p.until : p.steps;
    for (; step < stop; step++) {
        for (int i = 0; i < B; i++)
            fill_window(&d, window_at(&d, &order, p.seed, step * B + i), tok + (size_t)i * T, tgt + (size_t)i * T);
        memset(m->grads, 0, m->n_params * 4);
        float loss = nn_llama_forward(m, tok, tgt, B, T);
        nn_llama_backward(m);
        nn_clip_grad_norm(m->grads, m->n_params, p.clip);
        /* warm-up, then cosine from lr down to lr / 10 */
        double lr = p.lr;
        if (step < warmup) lr = p.lr * (double)(step + 1) / warmup;
        else if (p.steps > warmup)
            lr = p.lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (double)(step - warmup) / (double)(p.steps - warmup))));
        o.lr = (float)lr;
        o.t = step + 1;
        adamw_all(&o, m, mom, var);
        ema = isnan(ema) ? loss : 0.95 * ema + 0.05 * loss;
        out->loss = loss;
        if (out->first_loss == 0) out->first_loss = loss;
        bool last = step + 1 == stop;
        if (d.n_val && ((p.eval_every > 0 && (step + 1) % p.eval_every == 0) || last)) {
            out->val_loss = val_loss(m, &d, B, tok, tgt);
            if (!p.quiet && progress_enabled()) fprintf(stderr, "\r\033[K");
            if (!p.quiet)
                fprintf(stderr, "step %lld: train loss %.4f, validation loss %.4f\n", (long long)step + 1, ema,
                        out->val_loss);
        }
        if (p.checkpoint && ((p.ckpt_every > 0 && (step + 1) % p.ckpt_every == 0) || last)) {
            rc = ckpt_save(p.checkpoint, m, mom, var, step + 1, err);
            if (rc) break;
        }
        snprintf(label, sizeof label, "step %lld/%lld loss %.3f", (long long)step + 1, (long long)p.steps, ema);
        if (!p.quiet) progress_update(&bar, (uint64_t)(step + 1 - out->resumed_at) * (uint64_t)B * (uint64_t)T);
        out->steps = step + 1;
    }
    if (!p.quiet) progress_end(&bar);
    out->seconds = timer_seconds_since(t0);
    out->tokens = (out->steps - out->resumed_at) * (int64_t)B * T;
    openblas_set_num_threads(1); /* idle OpenBLAS threads spin beside the engine's */
    m->pool = NULL;
    pool_free(tp);
    free(order.perm);
    free(tok), free(tgt), free(mom), free(var), free(d.tok);
    return rc;
}

/* ---- fine-tuning ------------------------------------------------------------- */

llm_finetune_params llm_finetune_default_params(void) {
    return (llm_finetune_params){.ctx = 256, .batch = 8, .epochs = 3, .lr = 1e-3f, .clip = 1.0f, .warmup = -1,
                                 .val_share = 0.1, .seed = 42};
}

/* One example: its tokens and, per position, the target (the next token
 * where it is part of what the model should say, else -1). */
typedef struct ft_example {
    int32_t *tok, *tgt;
    int n;
} ft_example;

/* The tokens of a conversation's first k messages in the chat format;
 * with tools (or tool calls) as the local backend renders a conversation,
 * so a model learns the prompts it will be given. */
static int32_t *render(const llm_model *m, const char *format, const llm_msg *msgs, int k, const llm_tool_def *tools,
                       int n_tools, bool with_tools, int64_t *n, tailor_error *err) {
    sb text;
    sb_init(&text);
    int rc;
    if (with_tools) {
        rc = llm_chat_render_tools(m, format, msgs, k, tools, n_tools, false, &text, err);
    } else {
        const llm_str *eos = llm_vocab_text(m->vocab, llm_vocab_eos(m->vocab));
        char eos_text[128] = "";
        if (eos) snprintf(eos_text, sizeof eos_text, "%.*s", (int)eos->n, eos->s);
        llm_chat_msg *cm = xcalloc((size_t)k + 1, sizeof *cm);
        for (int i = 0; i < k; i++) cm[i] = (llm_chat_msg){msgs[i].role, msgs[i].content};
        rc = llm_chat_format(format, eos_text, cm, k, false, &text, err);
        free(cm);
    }
    int32_t *ids = rc ? NULL : llm_tokenize_alloc(m->vocab, text.buf, text.len, true, true, n);
    sb_deinit(&text);
    return ids;
}

/* OpenAI's function-calling form of an example: "tools" ([{"type":
 * "function", "function": {"name", "description", "parameters"}}]),
 * assistant messages with "tool_calls" ([{"id", "type", "function":
 * {"name", "arguments": JSON text}}]) and "tool" messages holding a
 * result. Fills msgs and tools; every string they point to is in owned. */
typedef VEC(char *) str_vec;
static int parse_tool_example(const cJSON *j, const cJSON *arr, llm_msg *msgs, llm_tool_def **tools, int *n_tools,
                              str_vec *owned, tailor_error *err) {
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(j, "tools"), *d;
    int nd = cJSON_IsArray(defs) ? cJSON_GetArraySize(defs) : 0, i = 0;
    *tools = xcalloc((size_t)nd + 1, sizeof **tools);
    *n_tools = nd;
    cJSON_ArrayForEach(d, (cJSON_IsArray(defs) ? defs : NULL)) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "function");
        if (!f) f = d;
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name")),
                   *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "description"));
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (!name) return err_set(err, TAILOR_EDATA, "tools[%d] has no function name", i);
        char *schema = params ? cJSON_PrintUnformatted(params) : xstrdup("{\"type\": \"object\"}");
        vec_push(owned, schema);
        (*tools)[i++] = (llm_tool_def){name, desc ? desc : "", schema};
    }
    int n = cJSON_GetArraySize(arr);
    for (i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(arr, i);
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "role")),
                   *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "content"));
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(x, "tool_calls");
        bool assistant = role && !strcmp(role, "assistant"), tool = role && !strcmp(role, "tool");
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && !assistant && !tool))
            return err_set(err, TAILOR_EDATA, "messages[%d] needs a \"role\": system, user, assistant or tool", i);
        if (!content && !(assistant && cJSON_IsArray(calls)))
            return err_set(err, TAILOR_EDATA, "messages[%d] needs \"content\" (or, from the assistant, \"tool_calls\")", i);
        msgs[i] = (llm_msg){role, content, NULL, NULL};
        if (assistant && cJSON_IsArray(calls)) {
            cJSON *out = cJSON_CreateArray();
            const cJSON *c;
            int k = 0;
            cJSON_ArrayForEach(c, calls) {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
                if (!f) f = c;
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
                const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
                cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring)
                                : cJSON_IsObject(args) ? cJSON_Duplicate(args, true)
                                                       : NULL;
                if (!name || !cJSON_IsObject(parsed)) {
                    cJSON_Delete(parsed);
                    cJSON_Delete(out);
                    return err_set(err, TAILOR_EDATA,
                                   "messages[%d].tool_calls[%d] needs a function name and arguments (a JSON object)", i, k);
                }
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", name);
                cJSON_AddItemToObject(o, "arguments", parsed);
                cJSON_AddItemToArray(out, o);
                k++;
            }
            char *t = cJSON_PrintUnformatted(out);
            cJSON_Delete(out);
            vec_push(owned, t);
            msgs[i].tool_calls = t;
        }
        if (tool) { /* the tool's name: given, or that of the call it answers */
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "name")),
                       *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "tool_call_id"));
            for (int b = i - 1; b >= 0 && !name && id; b--) {
                const cJSON *prev = cJSON_GetArrayItem(arr, b), *c;
                cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(prev, "tool_calls")) {
                    const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
                    if (cid && !strcmp(cid, id))
                        name = cJSON_GetStringValue(
                            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "function"), "name"));
                }
            }
            msgs[i].name = name ? name : "tool";
        }
    }
    return 0;
}

/* A JSON line: {"messages": [{"role", "content"}...]} (loss on the
 * assistant's turns) or {"prompt", "completion"} (loss on the completion
 * and the EOS after it). */
static int parse_example(const llm_model *m, const char *format, const char *line, size_t len, int ctx, ft_example *ex,
                         tailor_error *err) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(err, TAILOR_EDATA, "not a JSON object");
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt"),
                *completion = cJSON_GetObjectItemCaseSensitive(j, "completion");
    VEC(int32_t) tok = {0}, keep = {0};
    int rc = 0;
    bool with_tools = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "tools"));
    const cJSON *x0;
    cJSON_ArrayForEach(x0, (cJSON_IsArray(msgs) ? msgs : NULL)) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x0, "role"));
        with_tools |= cJSON_GetObjectItemCaseSensitive(x0, "tool_calls") || (role && !strcmp(role, "tool"));
    }
    if (cJSON_IsArray(msgs)) {
        int n = cJSON_GetArraySize(msgs), nd = 0;
        llm_msg *lm = xcalloc((size_t)n + 1, sizeof *lm);
        llm_tool_def *defs = NULL;
        str_vec owned = {0};
        if (with_tools) rc = parse_tool_example(j, msgs, lm, &defs, &nd, &owned, err);
        for (int i = 0; i < n && !rc && !with_tools; i++) {
            const cJSON *x = cJSON_GetArrayItem(msgs, i);
            const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "role")),
                       *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "content"));
            if (!role || !content || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")))
                rc = err_set(err, TAILOR_EDATA, "messages[%d] needs \"role\" (system, user or assistant) and \"content\"",
                             i);
            lm[i] = (llm_msg){role, content, NULL, NULL};
        }
        /* Each message's tokens are what rendering it adds to the ones
         * before (the formats close every turn with special tokens, so
         * the earlier tokens stay a prefix). */
        int64_t prev = 0;
        for (int i = 0; i < n && !rc; i++) {
            int64_t cnt;
            int32_t *ids = render(m, format, lm, i + 1, defs, nd, with_tools, &cnt, err);
            if (!ids) {
                rc = err->code ? err->code : TAILOR_EDATA;
                break;
            }
            int64_t same = 0;
            while (same < prev && same < cnt && ids[same] == tok.data[same]) same++;
            tok.len = keep.len = (size_t)same;
            bool learn = !strcmp(lm[i].role, "assistant");
            for (int64_t t = same; t < cnt; t++) {
                vec_push(&tok, ids[t]);
                vec_push(&keep, learn ? 1 : 0);
            }
            prev = cnt;
            free(ids);
        }
        for (size_t i = 0; i < owned.len; i++) free(owned.data[i]);
        vec_free(&owned);
        free(defs);
        free(lm);
    } else if (cJSON_IsString(prompt) && cJSON_IsString(completion)) {
        int64_t np, nc;
        int32_t *p = llm_tokenize_alloc(m->vocab, prompt->valuestring, strlen(prompt->valuestring), true, false, &np);
        int32_t *c = llm_tokenize_alloc(m->vocab, completion->valuestring, strlen(completion->valuestring), false, false, &nc);
        for (int64_t t = 0; t < np; t++) {
            vec_push(&tok, p[t]);
            vec_push(&keep, 0);
        }
        for (int64_t t = 0; t < nc; t++) {
            vec_push(&tok, c[t]);
            vec_push(&keep, 1);
        }
        if (llm_vocab_eos(m->vocab) >= 0) {
            vec_push(&tok, llm_vocab_eos(m->vocab));
            vec_push(&keep, 1);
        }
        free(p), free(c);
    } else {
        rc = err_set(err, TAILOR_EDATA, "an example has \"messages\" or \"prompt\" and \"completion\"");
    }
    cJSON_Delete(j);
    if (!rc) {
        int n = tok.len > (size_t)ctx ? ctx : (int)tok.len;
        ex->n = n;
        ex->tok = xmalloc(((size_t)n + 1) * 4), ex->tgt = xmalloc(((size_t)n + 1) * 4);
        for (int t = 0; t < n; t++) {
            ex->tok[t] = tok.data[t];
            ex->tgt[t] = t + 1 < n && keep.data[t + 1] ? tok.data[t + 1] : -1;
        }
        bool any = false;
        for (int t = 0; t < n; t++) any |= ex->tgt[t] >= 0;
        if (!any) {
            free(ex->tok), free(ex->tgt);
            rc = err_set(err, TAILOR_EDATA, "nothing to learn within %d tokens (no assistant turn or completion)", ctx);
        }
    }
    vec_free(&tok);
    vec_free(&keep);
    return rc;
}

static void examples_free(ft_example *ex, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(ex[i].tok), free(ex[i].tgt);
    free(ex);
}

static double lr_at(double lr, int64_t step, int64_t steps, int64_t warmup) {
    if (step < warmup) return lr * (double)(step + 1) / (double)warmup;
    if (steps <= warmup) return lr;
    return lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (double)(step - warmup) / (double)(steps - warmup))));
}

static int batch_width(const ft_example *ex, const int64_t *idx, int b) {
    int T = 1;
    for (int i = 0; i < b; i++) T = ex[idx[i]].n > T ? ex[idx[i]].n : T;
    return T;
}

/* B examples into tok/tgt of width T, padded (pad token, no target). */
static void fill_batch(const ft_example *ex, const int64_t *idx, int b, int T, int32_t pad, int32_t *tok, int32_t *tgt) {
    for (int i = 0; i < b; i++) {
        const ft_example *e = &ex[idx[i]];
        for (int t = 0; t < T; t++) {
            tok[(size_t)i * T + t] = t < e->n ? e->tok[t] : pad;
            tgt[(size_t)i * T + t] = t < e->n ? e->tgt[t] : -1;
        }
    }
}

/* The held-out examples' loss on what should be said (examples n_train..,
 * n_val of them, in batches of B). */
static double ft_val_loss(nn_llama *m, const ft_example *ex, int64_t n_train, int64_t n_val, int B, int32_t pad,
                          int64_t *idx, int32_t *tok, int32_t *tgt) {
    double sum = 0;
    for (int64_t v0 = 0; v0 < n_val; v0 += B) {
        int b = (int)(n_val - v0 < B ? n_val - v0 : B);
        for (int i = 0; i < b; i++) idx[i] = n_train + v0 + i;
        int Tb = batch_width(ex, idx, b);
        fill_batch(ex, idx, b, Tb, pad, tok, tgt);
        sum += nn_llama_forward(m, tok, tgt, b, Tb) * b;
    }
    return sum / (double)n_val;
}

int llm_finetune_run(nn_llama *m, const llm_model *base, llm_finetune_params p, llm_train_report *out,
                     tailor_error *err) {
    memset(out, 0, sizeof *out);
    out->val_loss = NAN;
    const char *format = llm_chat_detect(p.chat_format ? p.chat_format : base->chat_template);
    sb text;
    sb_init(&text);
    int rc = file_read(p.data, &text, err);
    VEC(ft_example) ex = {0};
    int64_t line_no = 0;
    for (char *line = text.buf; !rc && line && line < text.buf + text.len; ) {
        char *nl = memchr(line, '\n', (size_t)(text.buf + text.len - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(text.buf + text.len - line);
        line_no++;
        bool blank = true;
        for (size_t i = 0; i < len; i++) blank &= line[i] == ' ' || line[i] == '\t' || line[i] == '\r';
        if (!blank) {
            ft_example e;
            bool chat = memmem(line, len, "\"messages\"", 10) != NULL;
            if (chat && !format)
                rc = err_set(err, TAILOR_EINVAL, "%s has no recognised chat template: name one with --chat-template (%s)",
                             base->gguf->path, llm_chat_formats());
            else rc = parse_example(base, format, line, len, p.ctx, &e, err);
            if (rc) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err->msg);
                rc = err_set(err, TAILOR_EDATA, "%s:%lld: %s", p.data, (long long)line_no, msg);
            } else vec_push(&ex, e);
        }
        line = nl ? nl + 1 : NULL;
    }
    sb_deinit(&text);
    if (!rc && ex.len < 2) rc = err_set(err, TAILOR_EINVAL, "%s: %zu examples; fine-tuning needs at least 2", p.data, ex.len);
    if (rc) {
        examples_free(ex.data, (int64_t)ex.len);
        return rc;
    }
    /* The last examples are held out. */
    int64_t n_val = (int64_t)((double)ex.len * p.val_share), n_train = (int64_t)ex.len - n_val;
    out->train_windows = n_train, out->val_windows = n_val;
    for (size_t i = 0; i < ex.len; i++) out->data_tokens += ex.data[i].n;
    int B = p.batch < n_train ? p.batch : (int)n_train, T = 1;
    for (size_t i = 0; i < ex.len; i++) T = ex.data[i].n > T ? ex.data[i].n : T;
    out->batch = B, out->width = T;
    int64_t per_epoch = (n_train + B - 1) / B, steps = p.steps > 0 ? p.steps : per_epoch * p.epochs;
    int64_t warmup = p.warmup >= 0 ? p.warmup : steps / 20;
    bool lora = m->lora != NULL;
    size_t np = lora ? m->lora->n_params : m->n_params;
    float *params = lora ? m->lora->params : m->params, *grads = lora ? m->lora->grads : m->grads;
    float *mom = xcalloc(np + 1, 4), *var = xcalloc(np + 1, 4);
    int32_t *tok = xmalloc((size_t)B * T * 4), *tgt = xmalloc((size_t)B * T * 4);
    int64_t *idx = xmalloc((size_t)B * sizeof *idx), *perm = xmalloc((size_t)n_train * sizeof *perm);
    int32_t pad = llm_vocab_eos(base->vocab) >= 0 ? llm_vocab_eos(base->vocab) : 0;
    nn_adamw o = {.lr = p.lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = lora ? 0.0f : 0.01f};
    openblas_set_num_threads(p.threads > 0 ? p.threads : openblas_get_num_procs());
    pool *tp = pool_new(p.threads);
    m->pool = tp;
    progress bar;
    char label[128] = "fine-tuning";
    if (!p.quiet) progress_begin(&bar, label, (uint64_t)steps);
    uint64_t t0 = timer_now_ns();
    rng g;
    double ema = NAN;
    float *best = NULL; /* the trained weights at the best validation so far, when not the current ones */
    for (int64_t step = 0; step < steps; step++) {
        int64_t epoch = step * B / n_train, at = step * B % n_train;
        if (step == 0 || at < B) { /* a new epoch's shuffle */
            rng_seed(&g, p.seed * 1000003u + (uint64_t)epoch);
            for (int64_t i = 0; i < n_train; i++) perm[i] = i;
            for (int64_t i = n_train - 1; i > 0; i--) {
                int64_t j = (int64_t)rng_below(&g, (uint64_t)i + 1), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
        }
        for (int i = 0; i < B; i++) idx[i] = perm[(at + i) % n_train];
        int Tb = batch_width(ex.data, idx, B); /* padded to the batch's longest, not the data's */
        fill_batch(ex.data, idx, B, Tb, pad, tok, tgt);
        memset(grads, 0, np * 4);
        float loss = nn_llama_forward(m, tok, tgt, B, Tb);
        out->tokens += (int64_t)B * Tb;
        nn_llama_backward(m);
        nn_clip_grad_norm(grads, np, p.clip);
        o.lr = (float)lr_at(p.lr, step, steps, warmup);
        o.t = step + 1;
        nn_adamw_step(&o, params, grads, mom, var, np, !lora);
        ema = isnan(ema) ? loss : 0.9 * ema + 0.1 * loss;
        if (step == 0) out->first_loss = loss;
        out->loss = loss;
        out->steps = step + 1;
        /* Validation every eval_every steps and at the end; with
         * eval_every the best weights so far are kept aside. */
        bool last = step + 1 == steps;
        if (n_val && (last || (p.eval_every > 0 && (step + 1) % p.eval_every == 0))) {
            double v = ft_val_loss(m, ex.data, n_train, n_val, B, pad, idx, tok, tgt);
            out->evals++;
            out->last_val_loss = v;
            bool better = isnan(out->val_loss) || v < out->val_loss;
            if (better) out->val_loss = v, out->best_step = step + 1;
            if (p.eval_every > 0) {
                if (better && !last) {
                    if (!best) best = xmalloc(np * 4 + 4);
                    memcpy(best, params, np * 4);
                }
                if (!p.quiet && progress_enabled()) fprintf(stderr, "\r\033[K");
                if (!p.quiet)
                    fprintf(stderr, "step %lld: train loss %.4f, validation loss %.4f%s\n", (long long)step + 1, ema, v,
                            better ? " (best so far)" : "");
            }
        }
        snprintf(label, sizeof label, "step %lld/%lld loss %.3f", (long long)step + 1, (long long)steps, ema);
        if (!p.quiet) progress_update(&bar, (uint64_t)step + 1);
        (void)epoch;
    }
    if (!p.quiet) progress_end(&bar);
    out->seconds = timer_seconds_since(t0);
    if (best) { /* the best validation's weights are the ones written */
        if (out->best_step != out->steps) memcpy(params, best, np * 4);
        free(best);
    }
    openblas_set_num_threads(1);
    m->pool = NULL;
    pool_free(tp);
    free(tok), free(tgt), free(idx), free(perm), free(mom), free(var);
    examples_free(ex.data, (int64_t)ex.len);
    return 0;
}

double llm_finetune_bound(const nn_llama *m, const llm_model *base, const llm_train_report *r, bool full, int threads,
                          double held_before) {
    /* The mapped file; the weights in F32 (with gradients and both moments
     * for full training) or, frozen, the norms and the one matrix
     * dequantized at a time; the header of a written model (built, then
     * copied, each grown by doubling); the pairs' training state; one
     * batch's activations, logits and backward scratch; OpenBLAS's 32 MiB
     * per thread; 1% for malloc's arenas and page rounding. */
    double weights = (double)nn_llama_n_weights(&m->c);
    bool frozen = m->src.rows != NULL;
    double f32 = frozen ? 4.0 * (double)m->n_params + 4.0 * (double)m->wbuf_cap
                        : (full ? 16.0 : 4.0) * weights + 4.0 * (double)base->gguf->data_offset;
    double trained = m->lora ? (double)m->lora->n_params : (double)m->n_params;
    double bound = held_before + (double)base->gguf->size + f32 + (m->lora ? 16.0 * trained : 0) +
                   (r->evals > 1 ? 4.0 * trained : 0) + /* the best validation's weights, kept aside */
                   (double)nn_llama_bytes_per_token(&m->c, r->width, m->checkpoint) * r->batch * r->width +
                   32.0 * 1048576 * threads;
    return bound * 1.01;
}
