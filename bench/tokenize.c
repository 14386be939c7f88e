/* tokenize.c — the token stream `tailor llm train` trains on (every
 * non-empty line a document, with the vocabulary's BOS), as int32 values
 * in a file, so bench/llama_torch.py trains on exactly the same tokens.
 * usage: bench_tokenize VOCAB.gguf TEXT OUT.bin */
#include <stdio.h>
#include <stdlib.h>

#include "llm/llm.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_tokenize VOCAB.gguf TEXT OUT.bin\n");
        return 64;
    }
    tailor_error err = {0};
    llm_model *m;
    int64_t n;
    int32_t *ids = NULL;
    if (llm_model_load_ex(argv[1], true, &m, &err) || !(ids = llm_train_tokens(m->vocab, argv[2], &n, NULL, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 66;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(ids, 4, (size_t)n, f) != (size_t)n || fclose(f)) return 73;
    printf("%lld tokens, vocabulary %d\n", (long long)n, m->hp.n_vocab);
    free(ids);
    llm_model_free(m);
    return 0;
}
