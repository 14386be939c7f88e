/* cmd_llm.c — `tailor llm ...`: inspect GGUF files, tokenize, generate,
 * chat, embed and benchmark with the built-in engine. Generated text goes
 * to stdout; everything else (progress, timings) to stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "llm/llm.h"

static void print_kv_value(const llm_gguf_kv *kv) {
    switch (kv->type) {
    case LLM_GGUF_STR:
        if (kv->v.str.n > 200) printf("\"%.200s...\" (%llu bytes)", kv->v.str.s, (unsigned long long)kv->v.str.n);
        else printf("\"%s\"", kv->v.str.s);
        break;
    case LLM_GGUF_ARR: {
        printf("[%s x %llu]", llm_gguf_vtype_name(kv->arr_type), (unsigned long long)kv->n);
        if (kv->arr_type == LLM_GGUF_STR && kv->n) {
            const llm_str *s = kv->v.arr;
            printf(" \"%s\"%s", s[0].s, kv->n > 1 ? ", ..." : "");
        }
        break;
    }
    case LLM_GGUF_F32: case LLM_GGUF_F64: printf("%g", kv->v.f); break;
    case LLM_GGUF_BOOL: printf("%s", kv->v.u ? "true" : "false"); break;
    case LLM_GGUF_I8: case LLM_GGUF_I16: case LLM_GGUF_I32: case LLM_GGUF_I64:
        printf("%lld", (long long)kv->v.i);
        break;
    default: printf("%llu", (unsigned long long)kv->v.u); break;
    }
}

int cmd_llm_info(cli_args *a) {
    tailor_error err = {0};
    llm_gguf *g;
    if (llm_gguf_open(a->pos[0], &g, &err) < 0) return cli_fail(&err);
    printf("file: %s\nGGUF version: %u\nalignment: %u\nmetadata: %lld keys\n", a->pos[0], g->version,
           g->alignment, (long long)g->n_kv);
    for (int64_t i = 0; i < g->n_kv; i++) {
        printf("  %-40s ", g->kv[i].key);
        print_kv_value(&g->kv[i]);
        putchar('\n');
    }
    printf("tensors: %lld\n", (long long)g->n_tensors);
    size_t total = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const llm_tensor *t = &g->tensors[i];
        char shape[96];
        int o = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? " x " : "", (long long)t->ne[d]);
        const llm_type_info *ti = llm_type_get(t->type);
        printf("  %-32s %-8s %-20s %12zu bytes\n", t->name, ti->name, shape, t->bytes);
        total += t->bytes;
    }
    printf("tensor data: %.2f MiB\n", (double)total / (1 << 20));
    llm_gguf_free(g);
    return 0;
}

int cmd_llm_tokenize(cli_args *a) {
    const char *model = cli_opt_get(a, "model"), *file = cli_opt_get(a, "file");
    if (!model) return cli_usage_error(a, "--model is required");
    if ((file != NULL) == (a->npos == 1)) return cli_usage_error(a, "give either TEXT or --file");
    tailor_error err = {0};
    sb text;
    sb_init(&text);
    if (file) {
        if (file_read(file, &text, &err) < 0) {
            sb_deinit(&text);
            return cli_fail(&err);
        }
    } else {
        sb_puts(&text, a->pos[0]);
    }
    llm_gguf *g;
    if (llm_gguf_open(model, &g, &err) < 0) {
        sb_deinit(&text);
        return cli_fail(&err);
    }
    llm_vocab *v;
    if (llm_vocab_load(g, &v, &err) < 0) {
        llm_gguf_free(g);
        sb_deinit(&text);
        return cli_fail(&err);
    }
    int64_t cap = (int64_t)text.len + 8;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    int64_t n = llm_tokenize(v, text.buf ? text.buf : "", text.len, !cli_flag(a, "no-bos"),
                             cli_flag(a, "special"), ids, cap);
    if (n < 0) {
        cap = -n;
        ids = xrealloc(ids, sizeof(int32_t) * (size_t)cap);
        n = llm_tokenize(v, text.buf ? text.buf : "", text.len, !cli_flag(a, "no-bos"),
                         cli_flag(a, "special"), ids, cap);
    }
    bool pieces = cli_flag(a, "pieces");
    sb p;
    sb_init(&p);
    for (int64_t i = 0; i < n; i++) {
        if (pieces) {
            sb_clear(&p);
            llm_token_piece(v, ids[i], true, &p);
            printf("%6d '%s'\n", ids[i], p.buf ? p.buf : "");
        } else {
            printf(i ? " %d" : "%d", ids[i]);
        }
    }
    if (!pieces) putchar('\n');
    sb_deinit(&p);
    free(ids);
    llm_vocab_free(v);
    llm_gguf_free(g);
    sb_deinit(&text);
    return 0;
}

/* ---- generation -------------------------------------------------------- */

static bool stream_stdout(void *ud, const char *text, size_t n) {
    (void)ud;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return true;
}

/* Options shared by run and chat: model, context, threads, sampling. */
static int load_engine(cli_args *a, llm_model **m, llm_ctx **c) {
    const char *path = cli_opt_get(a, "model");
    if (!path) return cli_usage_error(a, "--model is required");
    long threads, n_ctx;
    if (!cli_opt_int(a, "threads", 0, 0, 1024, &threads)) return cli_usage_error(a, "bad --threads");
    if (!cli_opt_int(a, "ctx", 0, 0, 1 << 20, &n_ctx)) return cli_usage_error(a, "bad --ctx");
    tailor_error err = {0};
    if (llm_model_load(path, m, &err) < 0) return cli_fail(&err);
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    cp.n_ctx = (int32_t)n_ctx;
    if (llm_ctx_new(*m, cp, c, &err) < 0) {
        llm_model_free(*m);
        return cli_fail(&err);
    }
    return 0;
}

static int parse_sampling(cli_args *a, llm_sampler_params *sp) {
    const char *v;
    double x;
    long l;
    *sp = llm_sampler_default_params();
#define FOPT(name, field, lo, hi)                                                    \
    if ((v = cli_opt_get(a, name))) {                                                \
        if (!parse_f64(v, strlen(v), &x) || x < (lo) || x > (hi))                    \
            return cli_usage_error(a, "--%s must be a number in [%g, %g]", name, (double)(lo), (double)(hi)); \
        sp->field = (float)x;                                                        \
    }
    FOPT("temp", temperature, 0, 100)
    FOPT("top-p", top_p, 0, 1)
    FOPT("min-p", min_p, 0, 1)
    FOPT("repeat-penalty", repeat_penalty, 0, 100)
    FOPT("presence-penalty", presence_penalty, -100, 100)
#undef FOPT
    if (!cli_opt_int(a, "top-k", sp->top_k, 0, 1 << 30, &l)) return cli_usage_error(a, "bad --top-k");
    sp->top_k = (int32_t)l;
    if ((v = cli_opt_get(a, "seed"))) {
        int64_t s;
        if (!parse_i64(v, strlen(v), &s) || s < 0) return cli_usage_error(a, "bad --seed");
        sp->seed = (uint64_t)s;
    } else {
        sp->seed = timer_now_ns();
    }
    return 0;
}

int cmd_llm_run(cli_args *a) {
    const char *prompt = cli_opt_get(a, "prompt"), *file = cli_opt_get(a, "file");
    if ((prompt != NULL) == (file != NULL)) return cli_usage_error(a, "give either --prompt or --file");
    llm_gen_params gp = llm_gen_default_params();
    int rc;
    if ((rc = parse_sampling(a, &gp.sampling)) != 0) return rc;
    long n;
    if (!cli_opt_int(a, "n-predict", 128, -1, 1 << 30, &n)) return cli_usage_error(a, "bad -n");
    gp.n_predict = (int32_t)n;
    int nstop;
    gp.stop = cli_opt_all(a, "stop", &nstop);
    gp.n_stop = nstop;
    gp.stop_at_eog = !cli_flag(a, "ignore-eos");
    tailor_error err = {0};
    sb text;
    sb_init(&text);
    if (file) {
        if (file_read(file, &text, &err) < 0) {
            sb_deinit(&text);
            return cli_fail(&err);
        }
    } else {
        sb_puts(&text, prompt);
    }
    llm_model *m;
    llm_ctx *c;
    if ((rc = load_engine(a, &m, &c)) != 0) {
        sb_deinit(&text);
        return rc;
    }
    int64_t cap = (int64_t)text.len + 8;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    int64_t np = llm_tokenize(m->vocab, text.buf ? text.buf : "", text.len, !cli_flag(a, "no-bos"),
                              cli_flag(a, "special"), ids, cap);
    if (np == 0) { /* an empty prompt still needs a first token */
        ids[0] = llm_vocab_bos(m->vocab);
        np = ids[0] >= 0 ? 1 : 0;
    }
    llm_gen_stats st;
    rc = llm_generate(c, ids, np, &gp, stream_stdout, NULL, &st, &err);
    putchar('\n');
    fflush(stdout);
    if (rc < 0) rc = cli_fail(&err);
    else if (!a->quiet)
        fprintf(stderr, "prompt: %lld tokens in %.3f s (%.1f tok/s); generated: %lld tokens in %.3f s (%.1f tok/s)\n",
                (long long)st.prompt_tokens, st.prompt_s, st.prompt_s > 0 ? st.prompt_tokens / st.prompt_s : 0,
                (long long)st.gen_tokens, st.gen_s, st.gen_s > 0 ? st.gen_tokens / st.gen_s : 0);
    free(ids);
    sb_deinit(&text);
    llm_ctx_free(c);
    llm_model_free(m);
    return rc;
}
