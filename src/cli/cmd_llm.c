/* cmd_llm.c — `tailor llm ...`: inspect GGUF files, tokenize, generate,
 * chat, embed and benchmark with the built-in engine. Generated text goes
 * to stdout; everything else (progress, timings) to stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "nn/nn.h"
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
    /* -m like every other llm command, or the file as an argument. */
    const char *file = cli_opt_get(a, "model");
    if (!file == !a->npos) return cli_usage_error(a, "give the model file once: -m MODEL or MODEL");
    if (!file) file = a->pos[0];
    tailor_error err = {0};
    llm_gguf *g;
    if (llm_gguf_open(file, &g, &err) < 0) return cli_fail(&err);
    printf("file: %s\nGGUF version: %u\nalignment: %u\nmetadata: %lld keys\n", file, g->version,
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

/* The text of a command: --file's contents, or the given string. */
static int read_text(const char *file, const char *str, sb *out) {
    sb_init(out);
    if (!file) {
        sb_puts(out, str);
        return 0;
    }
    tailor_error err = {0};
    if (file_read(file, out, &err) < 0) {
        sb_deinit(out);
        return cli_fail(&err);
    }
    return 0;
}

int cmd_llm_tokenize(cli_args *a) {
    const char *model = cli_opt_get(a, "model"), *file = cli_opt_get(a, "file");
    if (!model) return cli_usage_error(a, "--model is required");
    if ((file != NULL) == (a->npos == 1)) return cli_usage_error(a, "give either TEXT or --file");
    sb text;
    int rc = read_text(file, file ? NULL : a->pos[0], &text);
    if (rc != 0) return rc;
    tailor_error err = {0};
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
    int64_t n;
    int32_t *ids = llm_tokenize_alloc(v, text.buf ? text.buf : "", text.len, !cli_flag(a, "no-bos"),
                                      cli_flag(a, "special"), &n);
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

/* --lora FILE [--lora-scale S]: the adapter, applied by c; an exit code. */
int cli_lora_opts(cli_args *a, llm_ctx *c) {
    const char *lora = cli_opt_get(a, "lora"), *sc = cli_opt_get(a, "lora-scale");
    double scale = 1;
    if (sc && (!parse_f64(sc, strlen(sc), &scale) || !isfinite(scale)))
        return cli_usage_error(a, "--lora-scale takes a number (1 = as trained, 0 = off)");
    if (sc && !lora) return cli_usage_error(a, "--lora-scale goes with --lora FILE");
    tailor_error err = {0};
    if (lora && llm_ctx_load_lora(c, lora, (float)scale, &err)) return cli_fail(&err);
    return 0;
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
    const char *kv = cli_opt_get(a, "kv-type");
    if (kv) {
        int t = llm_type_from_name(kv);
        if (t != LLM_TYPE_F32 && t != LLM_TYPE_F16 && t != LLM_TYPE_Q8_0) {
            llm_model_free(*m);
            return cli_usage_error(a, "--kv-type is f32, f16 or q8_0");
        }
        cp.kv_type = (llm_type)t;
    }
    if (llm_ctx_new(*m, cp, c, &err) < 0) {
        llm_model_free(*m);
        return cli_fail(&err);
    }
    int code = cli_lora_opts(a, *c);
    if (code) {
        llm_ctx_free(*c);
        llm_model_free(*m);
    }
    return code;
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

/* --grammar FILE.gbnf or --json-schema FILE: the grammar generation keeps
 * to (NULL when neither is given; *code set on failure). */
static llm_grammar *load_grammar(const cli_args *a, int *code) {
    const char *gfile = cli_opt_get(a, "grammar"), *sfile = cli_opt_get(a, "json-schema");
    *code = 0;
    if (!gfile && !sfile) return NULL;
    if (gfile && sfile) {
        *code = cli_usage_error(a, "give --grammar or --json-schema, not both");
        return NULL;
    }
    tailor_error err = {0};
    sb src, gbnf;
    sb_init(&src);
    sb_init(&gbnf);
    int rc = file_read(gfile ? gfile : sfile, &src, &err);
    if (!rc && sfile) rc = llm_schema_to_gbnf(src.buf ? src.buf : "", &gbnf, &err);
    llm_grammar *g = NULL;
    const sb *text = sfile ? &gbnf : &src;
    if (!rc) rc = llm_grammar_parse(text->buf ? text->buf : "", text->len, NULL, &g, &err);
    if (rc) {
        err_prefix(&err, "%s", gfile ? gfile : sfile);
        *code = cli_fail(&err);
    }
    sb_deinit(&src);
    sb_deinit(&gbnf);
    return g;
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
    gp.grammar = load_grammar(a, &rc);
    if (rc) return rc;
    sb text;
    if ((rc = read_text(file, prompt, &text)) != 0) {
        llm_grammar_free(gp.grammar);
        return rc;
    }
    llm_model *m;
    llm_ctx *c;
    if ((rc = load_engine(a, &m, &c)) != 0) {
        llm_grammar_free(gp.grammar);
        sb_deinit(&text);
        return rc;
    }
    int64_t np;
    int32_t *ids = llm_tokenize_alloc(m->vocab, text.buf ? text.buf : "", text.len, !cli_flag(a, "no-bos"),
                                      cli_flag(a, "special"), &np);
    if (np == 0) { /* an empty prompt still needs a first token */
        ids[0] = llm_vocab_bos(m->vocab);
        np = ids[0] >= 0 ? 1 : 0;
    }
    llm_gen_stats st;
    rc = llm_generate(c, ids, np, &gp, stream_stdout, NULL, &st, &err);
    putchar('\n');
    fflush(stdout);
    if (rc < 0) rc = cli_fail(&err);
    else if (gp.grammar && !llm_grammar_complete(gp.grammar)) {
        /* Never hand on a partial structure as if it were whole. */
        fprintf(stderr, "tailor: the output stopped after %lld tokens, before the grammar's text was complete "
                        "(raise -n)\n", (long long)st.gen_tokens);
        rc = EX_DATAERR;
    }
    if (rc == 0 && !a->quiet) {
        fprintf(stderr, "prompt: %lld tokens in %.3f s (%.1f tok/s); generated: %lld tokens in %.3f s (%.1f tok/s)\n",
                (long long)st.prompt_tokens, st.prompt_s, st.prompt_s > 0 ? st.prompt_tokens / st.prompt_s : 0,
                (long long)st.gen_tokens, st.gen_s, st.gen_s > 0 ? st.gen_tokens / st.gen_s : 0);
        if (gp.grammar)
            fprintf(stderr, "grammar: %lld of %lld tokens drawn again under the mask; %zu matcher states\n",
                    (long long)st.masked, (long long)st.gen_tokens, llm_grammar_states(gp.grammar));
    }
    free(ids);
    sb_deinit(&text);
    llm_grammar_free(gp.grammar);
    llm_ctx_free(c);
    llm_model_free(m);
    return rc;
}

/* ---- synth and bench --------------------------------------------------- */

/* A file of the shared data folder: $TAILOR_DATA, else ../shared/data
 * beside the source tree, beside the checkout the program was built in
 * (build/release/tailor -> ../../../shared/data), or beside the current
 * directory. malloc'd path, or NULL (tried: the folders looked in). */
static char *shared_data_file(const char *file, sb *tried) {
    char exe[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
    }
    char *exe_root = n > 0 ? path_join(exe, "../../../shared/data") : NULL;
    const char *roots[] = {getenv("TAILOR_DATA"), TAILOR_SOURCE_DIR "/../shared/data", exe_root, "../shared/data",
                           "shared/data"};
    char *found = NULL;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0] && !found; i++) {
        if (!roots[i]) continue;
        char *p = path_join(roots[i], file);
        if (file_exists(p)) found = p;
        else free(p), sb_printf(tried, "%s%s", tried->len ? ", " : "", roots[i]);
    }
    free(exe_root);
    return found;
}

int cmd_llm_synth(cli_args *a) {
    const char *shape = cli_opt_get(a, "shape"), *type = cli_opt_get(a, "type"), *vocab = cli_opt_get(a, "vocab");
    if (!shape) return cli_usage_error(a, "--shape is required (%s)", llm_shape_names());
    const llm_shape *s = llm_shape_find(shape);
    if (!s) return cli_usage_error(a, "unknown shape '%s' (known: %s)", shape, llm_shape_names());
    llm_ftype ft;
    if (llm_ftype_from_name(type ? type : "q8_0", &ft) < 0)
        return cli_usage_error(a, "unknown --type '%s' (%s)", type, llm_ftype_names());
    long seed;
    if (!cli_opt_int(a, "seed", 42, 0, INT64_MAX, &seed)) return cli_usage_error(a, "bad --seed");
    char *dflt = NULL;
    if (!vocab) {
        /* The shared fixtures: GPT-2 BPE for BPE shapes, Llama-2 SPM
         * otherwise; looked for where a checkout's data folder can be. */
        const char *file = s->pre ? "tokenizer-refs-llamacpp/ggml-vocab-gpt-2.gguf"
                                  : "tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf";
        sb tried;
        sb_init(&tried);
        dflt = shared_data_file(file, &tried);
        if (!dflt) {
            int code = cli_usage_error(a, "no vocabulary given and %s not found (looked in %s): give --vocab FILE.gguf "
                                          "(any GGUF with a tokenizer) or set TAILOR_DATA to the shared data folder",
                                       file, sb_str(&tried));
            sb_deinit(&tried);
            return code;
        }
        sb_deinit(&tried);
        vocab = dflt;
    }
    tailor_error err = {0};
    uint64_t t0 = timer_now_ns();
    int rc = llm_synth(s, &ft, vocab, a->pos[0], (uint64_t)seed, &err);
    free(dflt);
    if (rc < 0) return cli_fail(&err);
    if (!a->quiet)
        fprintf(stderr, "wrote %s (%s, %s) in %.1f s\n", a->pos[0], s->name, ft.name, timer_seconds_since(t0));
    return 0;
}

int cmd_llm_quantize(cli_args *a) {
    llm_ftype ft;
    if (llm_ftype_from_name(a->pos[2], &ft) < 0)
        return cli_usage_error(a, "unknown type '%s' (%s)", a->pos[2], llm_ftype_names());
    long threads;
    if (!cli_opt_int(a, "threads", 0, 0, 1024, &threads)) return cli_usage_error(a, "bad --threads");
    if (strcmp(a->pos[0], a->pos[1]) == 0) return cli_usage_error(a, "IN and OUT must differ");
    progress_set_quiet(a->quiet);
    tailor_error err = {0};
    uint64_t t0 = timer_now_ns();
    if (llm_quantize(a->pos[0], a->pos[1], &ft, (int)threads, &err) < 0) return cli_fail(&err);
    if (!a->quiet) fprintf(stderr, "wrote %s (%s) in %.1f s\n", a->pos[1], ft.name, timer_seconds_since(t0));
    return 0;
}

/* Weight bytes read per generated token: every matrix once, the embedding
 * only as the output layer (one row of it is looked up). */
static size_t bytes_per_token(const llm_model *m) {
    size_t n = m->output->bytes;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        const llm_tensor *ts[] = {L->wq, L->wk, L->wv, L->wo, L->ffn_gate, L->ffn_up, L->ffn_down};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) n += ts[i]->bytes;
    }
    return n;
}

/* The file type (Q4_K_M, ...) when the file says, else the FFN's type. */
static const char *model_type_name(const llm_model *m) {
    uint32_t ft;
    const char *n = llm_gguf_get_u32(m->gguf, "general.file_type", &ft) ? llm_ftype_name((int)ft) : NULL;
    return n ? n : llm_type_get(m->layers[0].ffn_up->type)->name;
}

int cmd_llm_bench(cli_args *a) {
    long n_pp, n_tg, reps;
    if (!cli_opt_int(a, "prompt", 512, 0, 1 << 20, &n_pp)) return cli_usage_error(a, "bad -p");
    if (!cli_opt_int(a, "gen", 64, 0, 1 << 20, &n_tg)) return cli_usage_error(a, "bad -n");
    if (!cli_opt_int(a, "reps", 3, 1, 1000, &reps)) return cli_usage_error(a, "bad -r");
    int nthr = 0;
    long thr[16];
    const char *tl = cli_opt_get(a, "threads");
    if (!tl) tl = "1,2";
    for (const char *p = tl; *p && nthr < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024) return cli_usage_error(a, "bad --threads list '%s'", tl);
        thr[nthr++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return cli_usage_error(a, "bad --threads list '%s'", tl);
    }
    const char *path = cli_opt_get(a, "model");
    if (!path) return cli_usage_error(a, "--model is required");
    /* --ttft P,C: the agent's turn: a P-token prompt from nothing, and the
     * same prompt with its first C tokens already in the cache. */
    long t_prompt = 0, t_cached = 0;
    const char *tt = cli_opt_get(a, "ttft");
    if (tt && (sscanf(tt, "%ld,%ld", &t_prompt, &t_cached) != 2 || t_prompt < 1 || t_cached < 0 ||
               t_cached >= t_prompt || t_prompt > (1 << 20)))
        return cli_usage_error(a, "--ttft takes PROMPT,CACHED tokens (e.g. 1500,1200; CACHED < PROMPT)");
    tailor_error err = {0};
    llm_model *m;
    if (llm_model_load(path, &m, &err) < 0) return cli_fail(&err);
    bool json = cli_flag(a, "json"), no_bw = cli_flag(a, "no-bandwidth");
    size_t bpt = bytes_per_token(m);
    const char *name = llm_gguf_get_str(m->gguf, "general.name");
    if (!name) name = path;
    if (!json)
        printf("%-16s %-7s %3s %9s %8s %9s %7s %8s %8s %6s\n", "model", "type", "thr", "pp tok/s", "ttft s",
               "tg tok/s", "MB/tok", "tg GB/s", "read GB/s", "bound");
    rng r;
    rng_seed(&r, 1);
    long n_toks = (n_pp > t_prompt ? n_pp : t_prompt) + 1;
    int32_t *toks = xmalloc(sizeof(int32_t) * (size_t)n_toks);
    for (long i = 0; i < n_toks; i++) toks[i] = (int32_t)rng_below(&r, (uint64_t)m->hp.n_vocab);
    int rc = 0;
    for (int ti = 0; ti < nthr; ti++) {
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_threads = (int32_t)thr[ti];
        cp.n_ctx = (int32_t)(n_pp > n_tg ? n_pp : n_tg) + 16;
        if (t_prompt + 16 > cp.n_ctx) cp.n_ctx = (int32_t)t_prompt + 16;
        llm_ctx *c;
        if (llm_ctx_new(m, cp, &c, &err) < 0) {
            rc = cli_fail(&err);
            break;
        }
        /* Warm-up: touch every weight page once. */
        llm_decode(c, toks, 4, false, &err);
        double pp_s = 0, tg_s = 0;
        for (long rep = 0; rep < reps && rc == 0; rep++) {
            if (n_pp > 0) {
                llm_ctx_truncate(c, 0);
                uint64_t t0 = timer_now_ns();
                if (llm_decode(c, toks, (int32_t)n_pp, false, &err) < 0) rc = cli_fail(&err);
                pp_s += timer_seconds_since(t0);
            }
            if (n_tg > 0) {
                llm_ctx_truncate(c, 0);
                uint64_t t0 = timer_now_ns();
                for (long i = 0; i < n_tg && rc == 0; i++)
                    if (llm_decode(c, &toks[i % (n_pp + 1)], 1, false, &err) < 0) rc = cli_fail(&err);
                tg_s += timer_seconds_since(t0);
            }
        }
        double cold_s = 0, warm_s = 0;
        for (long rep = 0; rep < reps && rc == 0 && t_prompt; rep++) {
            llm_ctx_truncate(c, 0);
            uint64_t t0 = timer_now_ns();
            if (llm_decode(c, toks, (int32_t)t_prompt, false, &err) < 0) rc = cli_fail(&err);
            cold_s += timer_seconds_since(t0);
            llm_ctx_truncate(c, (int32_t)t_cached); /* the prefix stays, the rest is new */
            t0 = timer_now_ns();
            if (!rc && llm_decode(c, toks + t_cached, (int32_t)(t_prompt - t_cached), false, &err) < 0)
                rc = cli_fail(&err);
            warm_s += timer_seconds_since(t0);
        }
        double pp = pp_s > 0 ? (double)(n_pp * reps) / pp_s : 0, tg = tg_s > 0 ? (double)(n_tg * reps) / tg_s : 0;
        /* The bound: tokens/s <= read bandwidth / bytes read per token,
         * with the bandwidth measured now, at this thread count. */
        double bw = no_bw ? 0 : llm_read_bandwidth_gbs((int)thr[ti]);
        double pct = bw > 0 ? 100.0 * tg * (double)bpt / 1e9 / bw : 0;
        double ttft = pp_s > 0 ? pp_s / (double)reps : 0;
        if (json)
            printf("{\"model\": \"%s\", \"type\": \"%s\", \"threads\": %ld, \"pp\": {\"tokens\": %ld, \"tok_s\": %.2f}, "
                   "\"tg\": {\"tokens\": %ld, \"tok_s\": %.2f}, \"bytes_per_token\": %zu, \"bandwidth_gbs\": %.2f, "
                   "\"percent_of_bound\": %.1f, \"ttft_s\": %.4f, \"agent_ttft\": {\"prompt\": %ld, \"cached\": %ld, "
                   "\"cold_s\": %.4f, \"cached_s\": %.4f}}\n",
                   name, model_type_name(m), thr[ti], n_pp, pp, n_tg, tg, bpt, bw, pct, ttft, t_prompt, t_cached,
                   t_prompt ? cold_s / reps : 0, t_prompt ? warm_s / reps : 0);
        else
            printf("%-16s %-7s %3ld %9.1f %8.3f %9.1f %7.1f %8.2f %8.1f %5.0f%%\n", name, model_type_name(m), thr[ti], pp,
                   ttft, tg, (double)bpt / 1e6, tg * (double)bpt / 1e9, bw, pct);
        if (t_prompt && !json)
            printf("  ttft: %ld-token prompt %.3f s; with the first %ld cached %.3f s (%.1fx sooner)\n", t_prompt,
                   cold_s / reps, t_cached, warm_s / reps, warm_s > 0 ? cold_s / warm_s : 0);
        fflush(stdout);
        llm_ctx_free(c);
    }
    free(toks);
    llm_model_free(m);
    return rc;
}

/* ---- chat and embed ---------------------------------------------------- */

typedef struct chat_sink {
    sb reply;
} chat_sink;

static bool stream_chat(void *ud, const char *text, size_t n) {
    chat_sink *s = ud;
    sb_append(&s->reply, text, n);
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return true;
}

typedef VEC(llm_chat_msg) msg_vec;

int cmd_llm_chat(cli_args *a) {
    llm_gen_params gp = llm_gen_default_params();
    int rc;
    if ((rc = parse_sampling(a, &gp.sampling)) != 0) return rc;
    long n;
    if (!cli_opt_int(a, "n-predict", -1, -1, 1 << 30, &n)) return cli_usage_error(a, "bad -n");
    gp.n_predict = (int32_t)n;
    llm_model *m;
    llm_ctx *c;
    if ((rc = load_engine(a, &m, &c)) != 0) return rc;
    const char *tmpl = cli_opt_get(a, "chat-template");
    const char *format = llm_chat_detect(tmpl ? tmpl : m->chat_template);
    tailor_error err = {0};
    if (!format) {
        if (tmpl) err_set(&err, TAILOR_EINVAL, "unknown chat template '%s' (known: %s)", tmpl, llm_chat_formats());
        else
            err_set(&err, TAILOR_EUNSUPPORTED, "%s: no recognised chat template in the model; give --chat-template (%s)",
                    cli_opt_get(a, "model"), llm_chat_formats());
        llm_ctx_free(c);
        llm_model_free(m);
        return cli_fail(&err);
    }
    const llm_str *eos = llm_vocab_text(m->vocab, llm_vocab_eos(m->vocab));
    msg_vec msgs = {0};
    VEC(char *) owned = {0}; /* message texts owned here */
    const char *sys = cli_opt_get(a, "system");
    if (sys) vec_push(&msgs, ((llm_chat_msg){"system", sys}));
    const char *once = cli_opt_get(a, "prompt");
    bool tty = isatty(0);
    if (!once && !a->quiet)
        fprintf(stderr, "chatting with %s (%s template, context %d tokens); /exit or Ctrl-D leaves\n",
                cli_opt_get(a, "model"), format, llm_ctx_n_ctx(c));
    int32_t n_cached = 0;
    char line[8192];
    rc = 0;
    for (;;) {
        const char *user;
        if (once) {
            if (msgs.len && strcmp(msgs.data[msgs.len - 1].role, "assistant") == 0) break;
            user = once;
        } else {
            if (tty) fputs("> ", stderr);
            if (!fgets(line, sizeof line, stdin)) break;
            line[strcspn(line, "\n")] = 0;
            if (!line[0]) continue;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            char *u = xstrdup(line);
            vec_push(&owned, u);
            user = u;
        }
        vec_push(&msgs, ((llm_chat_msg){"user", user}));
        sb text;
        sb_init(&text);
        if (llm_chat_format(format, eos ? eos->s : NULL, msgs.data, (int)msgs.len, true, &text, &err) < 0) {
            rc = cli_fail(&err);
            sb_deinit(&text);
            break;
        }
        int64_t nt;
        int32_t *ids = llm_tokenize_alloc(m->vocab, text.buf, text.len, true, true, &nt);
        sb_deinit(&text);
        /* Keep the cached prefix of the conversation: only new tokens are decoded. */
        int32_t keep = n_cached < nt ? n_cached : (int32_t)nt - 1;
        llm_ctx_truncate(c, keep);
        keep = llm_ctx_n_past(c);
        chat_sink sink;
        sb_init(&sink.reply);
        llm_gen_params p = gp;
        int32_t room = llm_ctx_n_ctx(c) - (int32_t)nt;
        if (room <= 0) {
            err_set(&err, TAILOR_EINVAL, "the conversation (%lld tokens) no longer fits the context of %d; use --ctx",
                    (long long)nt, llm_ctx_n_ctx(c));
            rc = cli_fail(&err);
            free(ids);
            sb_deinit(&sink.reply);
            break;
        }
        if (p.n_predict < 0 || p.n_predict > room) p.n_predict = room;
        llm_gen_stats st;
        if (llm_generate(c, ids + keep, nt - keep, &p, stream_chat, &sink, &st, &err) < 0) {
            rc = cli_fail(&err);
            free(ids);
            sb_deinit(&sink.reply);
            break;
        }
        putchar('\n');
        fflush(stdout);
        n_cached = (int32_t)nt;
        free(ids);
        char *reply = sb_take(&sink.reply);
        if (!reply) reply = xstrdup("");
        vec_push(&owned, reply);
        vec_push(&msgs, ((llm_chat_msg){"assistant", reply}));
        if (!a->quiet)
            fprintf(stderr, "[%lld new prompt tokens, %lld generated, %.1f tok/s]\n", (long long)(nt - keep),
                    (long long)st.gen_tokens, st.gen_s > 0 ? st.gen_tokens / st.gen_s : 0);
    }
    for (size_t i = 0; i < owned.len; i++) free(owned.data[i]);
    vec_free(&owned);
    vec_free(&msgs);
    llm_ctx_free(c);
    llm_model_free(m);
    return rc;
}

int cmd_llm_embed(cli_args *a) {
    const char *pool_s = cli_opt_get(a, "pooling");
    llm_pooling pooling = LLM_POOL_MODEL; /* BERT files name theirs; mean otherwise */
    if (pool_s && strcmp(pool_s, "last") == 0) pooling = LLM_POOL_LAST;
    else if (pool_s && strcmp(pool_s, "cls") == 0) pooling = LLM_POOL_CLS;
    else if (pool_s && strcmp(pool_s, "mean") == 0) pooling = LLM_POOL_MEAN;
    else if (pool_s) return cli_usage_error(a, "--pooling is mean, last or cls");
    const char *file = cli_opt_get(a, "file");
    if ((file != NULL) == (a->npos > 0)) return cli_usage_error(a, "give TEXT arguments or --file");
    tailor_error err = {0};
    sb all;
    sb_init(&all);
    VEC(char *) texts = {0};
    if (file) {
        if (file_read(file, &all, &err) < 0) {
            sb_deinit(&all);
            return cli_fail(&err);
        }
        for (char *p = all.buf; p && *p;) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = 0;
            if (*p) vec_push(&texts, p);
            p = nl ? nl + 1 : NULL;
        }
    } else {
        for (int i = 0; i < a->npos; i++) vec_push(&texts, a->pos[i]);
    }
    llm_model *m;
    llm_ctx *c;
    int rc;
    if ((rc = load_engine(a, &m, &c)) != 0) {
        vec_free(&texts);
        sb_deinit(&all);
        return rc;
    }
    bool json = cli_flag(a, "json");
    int D = m->hp.n_embd;
    float *v = xmalloc(sizeof(float) * (size_t)D);
    if (json) putchar('[');
    for (size_t i = 0; i < texts.len; i++) {
        if (llm_embed(c, texts.data[i], strlen(texts.data[i]), pooling, v, &err) < 0) {
            err_prefix(&err, "text %zu", i + 1);
            rc = cli_fail(&err);
            break;
        }
        if (json) putchar('[');
        for (int d = 0; d < D; d++) printf(json ? "%s%.7g" : "%s%.7g", d ? (json ? ", " : " ") : "", v[d]);
        if (json) printf("]%s", i + 1 < texts.len ? ",\n " : "");
        else putchar('\n');
    }
    if (json) puts("]");
    free(v);
    vec_free(&texts);
    sb_deinit(&all);
    llm_ctx_free(c);
    llm_model_free(m);
    return rc;
}

/* ---- train ---------------------------------------------------------------- */

int cmd_llm_train(cli_args *a) {
    const char *data = cli_opt_get(a, "data"), *vocab = cli_opt_get(a, "vocab");
    if (!data) return cli_usage_error(a, "--data FILE is required (text: one document per line)");
    llm_train_params p = llm_train_default_params();
    long ctx, batch, steps, warmup, eval_every, ckpt_every, threads, seed, until;
    double lr = p.lr, val = p.val_share;
    const char *v;
    if (!cli_opt_int(a, "ctx", p.ctx, 8, 1 << 16, &ctx) || !cli_opt_int(a, "batch", p.batch, 1, 4096, &batch) ||
        !cli_opt_int(a, "steps", p.steps, 1, INT64_MAX, &steps) || !cli_opt_int(a, "warmup", -1, -1, INT32_MAX, &warmup) ||
        !cli_opt_int(a, "eval-every", p.eval_every, 0, INT32_MAX, &eval_every) ||
        !cli_opt_int(a, "checkpoint-every", p.ckpt_every, 0, INT32_MAX, &ckpt_every) ||
        !cli_opt_int(a, "threads", 0, 0, 1024, &threads) || !cli_opt_int(a, "seed", 42, 0, INT64_MAX, &seed) ||
        !cli_opt_int(a, "until", 0, 0, INT64_MAX, &until))
        return cli_usage_error(a, "a numeric option is out of range (see --help)");
    if ((v = cli_opt_get(a, "lr")) && (!parse_f64(v, strlen(v), &lr) || !(lr > 0) || lr > 1))
        return cli_usage_error(a, "--lr takes a rate in (0, 1]");
    if ((v = cli_opt_get(a, "val")) && (!parse_f64(v, strlen(v), &val) || val < 0 || val >= 0.5))
        return cli_usage_error(a, "--val takes a share in [0, 0.5)");
    p.data = data, p.ctx = (int)ctx, p.batch = (int)batch, p.steps = steps, p.warmup = (int)warmup;
    p.eval_every = (int)eval_every, p.ckpt_every = (int)ckpt_every, p.threads = (int)threads;
    p.seed = (uint64_t)seed, p.lr = (float)lr, p.val_share = val, p.quiet = a->quiet;
    p.checkpoint = cli_opt_get(a, "checkpoint");
    p.resume = cli_flag(a, "resume");
    p.until = until;
    if (p.resume && !p.checkpoint) return cli_usage_error(a, "--resume continues from --checkpoint FILE");
    /* The tokenizer: trained here (--bpe N), a GGUF file's, or the shared
     * Llama-2 one. */
    char *dflt = NULL;
    long bpe = 0;
    if (!cli_opt_int(a, "bpe", 0, 0, 1 << 20, &bpe) || (bpe && bpe < 260))
        return cli_usage_error(a, "--bpe takes a vocabulary size of at least 260");
    if (bpe && vocab) return cli_usage_error(a, "give --bpe N (train a tokenizer) or --vocab FILE, not both");
    if (cli_opt_get(a, "tool-prompt") && strcmp(cli_opt_get(a, "tool-prompt"), "brief"))
        return cli_usage_error(a, "--tool-prompt takes brief");
    if (!bpe && cli_opt_get(a, "chat-template"))
        return cli_usage_error(a, "--chat-template goes with --bpe (a given --vocab keeps its own template)");
    if (bpe) {
        sb text, path;
        sb_init(&text);
        sb_init(&path);
        sb_printf(&path, "%s.tokenizer.gguf", a->pos[0]);
        tailor_error e0 = {0};
        int rc0 = file_read(data, &text, &e0);
        uint64_t t0 = timer_now_ns();
        if (!rc0)
            rc0 = llm_bpe_train(text.buf, text.len, (int)bpe, cli_opt_get(a, "chat-template"), sb_str(&path), a->quiet, &e0);
        sb_deinit(&text);
        if (rc0) {
            sb_deinit(&path);
            return cli_fail(&e0);
        }
        if (!a->quiet) fprintf(stderr, "trained a byte-level BPE tokenizer of %ld tokens in %.1f s: %s\n", bpe,
                               timer_seconds_since(t0), sb_str(&path));
        dflt = sb_take(&path);
        vocab = dflt;
    }
    if (!vocab) {
        sb tried;
        sb_init(&tried);
        dflt = shared_data_file("tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf", &tried);
        if (!dflt) {
            int code = cli_usage_error(a, "no --vocab given and the shared Llama-2 vocabulary is not found (looked in %s)",
                                       sb_str(&tried));
            sb_deinit(&tried);
            return code;
        }
        sb_deinit(&tried);
        vocab = dflt;
    }
    tailor_error err = {0};
    llm_model *tokm = NULL;
    int rc = llm_model_load_ex(vocab, true, &tokm, &err);
    if (rc) {
        free(dflt);
        return cli_fail(&err);
    }
    nn_llama_config c;
    const char *arch = "llama", *shape = cli_opt_get(a, "shape"), *config = cli_opt_get(a, "config");
    int code = !shape == !config ? cli_usage_error(a, "give --shape NAME (%s) or --config FILE.json", llm_shape_names())
                                 : 0;
    nn_llama *m = NULL;
    if (!code && (llm_train_shape(shape, config, tokm->hp.n_vocab, &c, &arch, &err) || nn_llama_new(&c, &m, &err)))
        code = cli_fail(&err);
    if (code) {
        llm_model_free(tokm);
        free(dflt);
        return code;
    }
    llm_train_init(m, (uint64_t)seed);
    m->checkpoint = cli_flag(a, "activation-checkpointing");
    /* What training holds: parameters, gradients, AdamW's two moments, and
     * the activations of one batch (logits included). */
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    int nthreads = p.threads > 0 ? p.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    double state = (double)m->n_params * 16 + (double)nn_llama_bytes_per_token(&c, p.ctx, m->checkpoint) * p.batch * p.ctx;
    /* The bound adds what the process held before (the tokenizer, the
     * program) and OpenBLAS's buffer of 32 MiB per thread. */
    double bound = state + ru0.ru_maxrss * 1024.0 + 32.0 * 1048576 * nthreads;
    if (!a->quiet)
        fprintf(stderr, "%s: %s, %d layers, width %d, %d heads (%d kv), ff %d, vocabulary %d: %.2fM parameters; "
                        "training state %.0f MiB (weights, gradients, AdamW moments, one batch's activations), "
                        "memory bound %.0f MiB\n",
                a->pos[0], arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.n_vocab, m->n_params / 1e6,
                state / 1048576, bound / 1048576);
    llm_train_report r;
    rc = llm_train_run(m, tokm->vocab, p, &r, &err);
    if (!rc) {
        const char *base = strrchr(a->pos[0], '/');
        rc = llm_train_write(m, arch, base ? base + 1 : a->pos[0], tokm->gguf, p.ctx, cli_opt_get(a, "tool-prompt"),
                             a->pos[0], &err);
    }
    if (!rc) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("trained %lld steps%s on %lld tokens (%lld windows, %lld held out) in %.1f s: %.0f tokens/s; loss %.4f -> "
               "%.4f, validation %.4f; peak RSS %.0f MiB (bound %.0f MiB); wrote %s\n",
               (long long)r.steps, r.resumed_at ? " (resumed)" : "", (long long)r.data_tokens,
               (long long)r.train_windows, (long long)r.val_windows, r.seconds, r.tokens / (r.seconds > 0 ? r.seconds : 1),
               r.first_loss, r.loss, r.val_loss, ru.ru_maxrss / 1024.0, bound / 1048576, a->pos[0]);
    }
    nn_llama_free(m);
    llm_model_free(tokm);
    free(dflt);
    return rc ? cli_fail(&err) : 0;
}

/* ---- finetune ------------------------------------------------------------- */

int cmd_llm_finetune(cli_args *a) {
    const char *base_path = cli_opt_get(a, "model"), *data = cli_opt_get(a, "data"), *outp = cli_opt_get(a, "out");
    if (!base_path || !data || !outp)
        return cli_usage_error(a, "-m BASE.gguf, --data FILE.jsonl and -o OUT.gguf are required");
    bool full = cli_flag(a, "full"), merge = cli_flag(a, "merge");
    if (full && (merge || cli_opt_get(a, "lora-rank") || cli_opt_get(a, "lora-targets")))
        return cli_usage_error(a, "--full trains every weight: no --lora-* options, no --merge");
    llm_finetune_params p = llm_finetune_default_params();
    long rank, epochs, steps, ctx, batch, threads, seed, warmup, eval_every;
    double alpha = 0, lr = p.lr, val = p.val_share;
    const char *v;
    if (!cli_opt_int(a, "lora-rank", 8, 1, 64, &rank)) return cli_usage_error(a, "--lora-rank takes 1 to 64");
    if (!cli_opt_int(a, "epochs", p.epochs, 1, 100000, &epochs) || !cli_opt_int(a, "steps", 0, 0, INT64_MAX, &steps) ||
        !cli_opt_int(a, "ctx", p.ctx, 8, 1 << 16, &ctx) || !cli_opt_int(a, "batch", p.batch, 1, 4096, &batch) ||
        !cli_opt_int(a, "threads", 0, 0, 1024, &threads) || !cli_opt_int(a, "seed", 42, 0, INT64_MAX, &seed) ||
        !cli_opt_int(a, "warmup", -1, -1, INT32_MAX, &warmup) ||
        !cli_opt_int(a, "eval-every", 0, 0, INT32_MAX, &eval_every))
        return cli_usage_error(a, "a numeric option is out of range (see --help)");
    if ((v = cli_opt_get(a, "lora-alpha")) && (!parse_f64(v, strlen(v), &alpha) || !(alpha > 0)))
        return cli_usage_error(a, "--lora-alpha takes a positive number");
    if (!cli_opt_get(a, "lora-alpha")) alpha = 2.0 * rank;
    if ((v = cli_opt_get(a, "lr")) && (!parse_f64(v, strlen(v), &lr) || !(lr > 0) || lr > 1))
        return cli_usage_error(a, "--lr takes a rate in (0, 1]");
    if ((v = cli_opt_get(a, "val")) && (!parse_f64(v, strlen(v), &val) || val < 0 || val >= 0.5))
        return cli_usage_error(a, "--val takes a share in [0, 0.5)");
    if (eval_every > 0 && val == 0) return cli_usage_error(a, "--eval-every needs held-out examples (--val above 0)");
    /* --lora-targets attn_q,attn_v,...: the slots of every layer. */
    static const char *const SLOT[NN_LORA_SLOTS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down"};
    unsigned targets = 0;
    char *list = xstrdup(cli_opt_get(a, "lora-targets") ? cli_opt_get(a, "lora-targets") : "attn_q,attn_v");
    for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
        int k = -1;
        for (int i = 0; i < NN_LORA_SLOTS; i++)
            if (!strcmp(t, SLOT[i])) k = i;
        if (k < 0) {
            int code = cli_usage_error(a, "unknown --lora-targets entry '%s' (attn_q, attn_k, attn_v, attn_output, "
                                          "ffn_gate, ffn_up, ffn_down)", t);
            free(list);
            return code;
        }
        targets |= 1u << k;
    }
    free(list);
    p.data = data, p.chat_format = cli_opt_get(a, "chat-template"), p.ctx = (int)ctx, p.batch = (int)batch;
    p.epochs = (int)epochs, p.steps = steps, p.lr = (float)lr, p.val_share = val, p.seed = (uint64_t)seed;
    p.threads = (int)threads, p.warmup = (int)warmup, p.quiet = a->quiet, p.eval_every = (int)eval_every;
    tailor_error err = {0};
    llm_model *base = NULL;
    nn_llama *m = NULL;
    int rc = llm_model_load(base_path, &base, &err);
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    /* An adapter trains on the base as the file has it (QLoRA-style);
     * merging and full training need every weight in F32. */
    bool frozen = !full && !merge;
    if (!rc) rc = frozen ? llm_train_frozen(base, &m, &err) : llm_train_from_model(base, &m, &err);
    if (rc) {
        llm_model_free(base);
        return cli_fail(&err);
    }
    if (!full) nn_llama_add_lora(m, (int)rank, (float)alpha, targets, (uint64_t)seed);
    m->checkpoint = cli_flag(a, "activation-checkpointing");
    size_t weights = nn_llama_n_weights(&m->c), trained = full ? m->n_params : m->lora->n_params;
    if (!a->quiet)
        fprintf(stderr, "%s: %.2fM parameters (%s), %s: %.3fM trained\n", base_path, weights / 1e6,
                frozen ? "frozen in the file's types, dequantized one matrix at a time" : "in F32",
                full ? "every weight" : "LoRA", trained / 1e6);
    llm_train_report r;
    rc = llm_finetune_run(m, base, p, &r, &err);
    const char *name = strrchr(outp, '/') ? strrchr(outp, '/') + 1 : outp;
    if (!rc && !full && !merge) rc = llm_train_write_lora(m, base, name, outp, &err);
    if (!rc && (full || merge)) {
        if (merge) llm_train_merge_lora(m);
        /* The context it was trained at, when that is longer than the base's. */
        int n_ctx = base->hp.n_ctx_train > (int)ctx ? base->hp.n_ctx_train : (int)ctx;
        rc = llm_train_write(m, base->arch_name, name, base->gguf, n_ctx, NULL, outp, &err);
    }
    if (!rc) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        int nthreads = p.threads > 0 ? p.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        double bound = llm_finetune_bound(m, base, &r, full, nthreads, ru0.ru_maxrss * 1024.0);
        printf("fine-tuned %lld steps on %lld examples (%lld held out, %lld tokens) in %.1f s (%.0f tokens/s with "
               "padding): loss %.4f -> %.4f, validation %.4f; peak RSS %.0f MiB (bound %.0f MiB); wrote %s (%s)\n",
               (long long)r.steps, (long long)r.train_windows, (long long)r.val_windows, (long long)r.data_tokens,
               r.seconds, r.tokens / (r.seconds > 0 ? r.seconds : 1), r.first_loss, r.loss, r.val_loss,
               ru.ru_maxrss / 1024.0, bound / 1048576, outp,
               full ? "the whole model" : merge ? "the base with the adapter merged" : "a LoRA adapter");
        if (p.eval_every > 0)
            printf("kept the weights of step %lld, the lowest of %d validation losses (%.4f; the last step's %.4f)\n",
                   (long long)r.best_step, r.evals, r.val_loss, r.last_val_loss);
    }
    nn_llama_free(m);
    llm_model_free(base);
    return rc ? cli_fail(&err) : 0;
}
