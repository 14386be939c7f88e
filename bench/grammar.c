/* grammar.c — what constrained decoding costs: generation under a JSON
 * schema's grammar against plain generation of as many tokens, alternated
 * in one process (same model, same context, same sampler settings). The
 * first constrained run starts with cold caches (the vocabulary trie, the
 * matcher states and their masks are built as they are met); later runs
 * reuse them, as an agent's session does turn after turn.
 *   usage: bench_grammar MODEL.gguf SCHEMA.json [runs] [threads]
 * Prints one JSON line per pair and a summary line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

static bool sink(void *ud, const char *text, size_t n) {
    (void)ud, (void)text, (void)n;
    return true;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf SCHEMA.json [runs] [threads]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 6, threads = argc > 4 ? atoi(argv[4]) : 2;
    tailor_error e = {0};
    sb schema, gbnf;
    sb_init(&schema);
    sb_init(&gbnf);
    llm_model *m = NULL;
    llm_ctx *c = NULL;
    llm_grammar *g = NULL;
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = threads;
    if (file_read(argv[2], &schema, &e) || llm_schema_to_gbnf(sb_str(&schema), &gbnf, &e) ||
        llm_grammar_parse(gbnf.buf, gbnf.len, NULL, &g, &e) || llm_model_load(argv[1], &m, &e) ||
        llm_ctx_new(m, cp, &c, &e)) {
        fprintf(stderr, "bench_grammar: %s\n", e.msg);
        return 1;
    }
    const char *prompt_text = "Describe a film as JSON:";
    int64_t np = 0;
    int32_t *prompt = llm_tokenize_alloc(m->vocab, prompt_text, strlen(prompt_text), true, false, &np);
    double *ratio = malloc((size_t)runs * sizeof *ratio);
    int warm = 0;
    double cold = 0;
    for (int r = 0; r < runs; r++) {
        llm_gen_params gp = llm_gen_default_params();
        gp.sampling.seed = (uint64_t)r + 1;
        gp.n_predict = 512;
        gp.grammar = g;
        llm_grammar_reset(g);
        llm_ctx_truncate(c, 0);
        llm_gen_stats sg, sp;
        if (llm_generate(c, prompt, np, &gp, sink, NULL, &sg, &e)) {
            fprintf(stderr, "bench_grammar: %s\n", e.msg);
            return 1;
        }
        gp.grammar = NULL;
        gp.stop_at_eog = false;
        gp.n_predict = (int32_t)sg.gen_tokens;
        llm_ctx_truncate(c, 0);
        if (llm_generate(c, prompt, np, &gp, sink, NULL, &sp, &e)) {
            fprintf(stderr, "bench_grammar: %s\n", e.msg);
            return 1;
        }
        double tg = (double)sg.gen_tokens / sg.gen_s, tp = (double)sp.gen_tokens / sp.gen_s;
        printf("{\"run\": %d, \"tokens\": %lld, \"masked\": %lld, \"constrained_tok_s\": %.2f, \"plain_tok_s\": %.2f, "
               "\"ratio\": %.3f, \"states\": %zu}\n",
               r, (long long)sg.gen_tokens, (long long)sg.masked, tg, tp, tg / tp, llm_grammar_states(g));
        if (r == 0) cold = tg / tp;
        else ratio[warm++] = tg / tp;
    }
    qsort(ratio, (size_t)warm, sizeof *ratio, cmp_d);
    printf("{\"summary\": true, \"threads\": %d, \"cold_ratio\": %.3f, \"warm_median_ratio\": %.3f}\n", threads, cold,
           warm ? ratio[warm / 2] : 0.0);
    free(ratio);
    free(prompt);
    llm_grammar_free(g);
    llm_ctx_free(c);
    llm_model_free(m);
    sb_deinit(&schema);
    sb_deinit(&gbnf);
    return 0;
}
