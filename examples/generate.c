/* generate.c — greedy text generation through libtailor's public LLM API:
 * load a GGUF model, tokenize, decode, sample, print.
 *   cc generate.c $(pkg-config --cflags --libs tailor) -o generate
 *   ./generate model.gguf "Once upon a time" 64 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tailor.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N\n", argv[0]);
        return 64;
    }
    tailor_error err = {0};
    tailor_llm_model *model = NULL;
    if (tailor_llm_model_load(argv[1], tailor_llm_model_default_params(), &model, &err) != TAILOR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tailor_llm_ctx_params cp = tailor_llm_ctx_default_params();
    cp.n_threads = 1;
    tailor_llm_ctx *ctx = NULL;
    if (tailor_llm_ctx_new(model, cp, &ctx, &err) != TAILOR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        tailor_llm_model_free(model);
        return 1;
    }
    int n = atoi(argv[3]);
    int32_t ids[4096];
    int64_t nt = tailor_llm_tokenize(model, argv[2], strlen(argv[2]), 1, 0, ids, 4096 - n);
    tailor_llm_sampler_params sp = tailor_llm_sampler_default_params();
    sp.temperature = 0; /* greedy */
    tailor_llm_sampler *s = tailor_llm_sampler_new(model, sp);
    int rc = tailor_llm_decode(ctx, ids, (int32_t)nt, &err);
    for (int i = 0; i < n && rc == TAILOR_OK; i++) {
        int32_t tok = tailor_llm_sample(s, tailor_llm_logits(ctx), ids, nt);
        if (tailor_llm_token_is_eog(model, tok)) break;
        ids[nt++] = tok;
        char piece[256];
        int32_t len = tailor_llm_token_to_piece(model, tok, piece, sizeof piece);
        if (len > 0) fwrite(piece, 1, (size_t)len, stdout);
        rc = tailor_llm_decode(ctx, &tok, 1, &err);
    }
    putchar('\n');
    if (rc != TAILOR_OK) fprintf(stderr, "%s\n", err.msg);
    tailor_llm_sampler_free(s);
    tailor_llm_ctx_free(ctx);
    tailor_llm_model_free(model);
    return rc == TAILOR_OK ? 0 : 1;
}
