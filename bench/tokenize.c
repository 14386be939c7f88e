/* tokenize.c — the token stream `tailor llm train` trains on (every
 * non-empty line a document, with the vocabulary's BOS), as int32 values
 * in a file, so bench/llama_torch.py trains on exactly the same tokens.
 * usage: bench_tokenize VOCAB.gguf TEXT OUT.bin */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_tokenize VOCAB.gguf TEXT OUT.bin\n");
        return 64;
    }
    tailor_error err = {0};
    llm_model *m;
    sb text;
    sb_init(&text);
    if (llm_model_load_ex(argv[1], true, &m, &err) || file_read(argv[2], &text, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 66;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f) return 73;
    long total = 0;
    for (char *line = text.buf; line && line < text.buf + text.len;) {
        char *nl = memchr(line, '\n', (size_t)(text.buf + text.len - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(text.buf + text.len - line);
        if (len && line[len - 1] == '\r') len--;
        if (len) {
            int64_t n;
            int32_t *ids = llm_tokenize_alloc(m->vocab, line, len, true, false, &n);
            fwrite(ids, 4, (size_t)n, f);
            total += n;
            free(ids);
        }
        line = nl ? nl + 1 : NULL;
    }
    fclose(f);
    printf("%ld tokens, vocabulary %d\n", total, m->hp.n_vocab);
    sb_deinit(&text);
    llm_model_free(m);
    return 0;
}
