/* fuzz_gguf.c — libFuzzer target for the GGUF reader and the tokenizer
 * loader: arbitrary bytes are refused with a message or parsed into an
 * object whose tensors lie inside the buffer; a vocabulary that loads
 * tokenizes and detokenizes a fixed text without faults. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llm_gguf *g = NULL;
    tailor_error e = {0};
    if (llm_gguf_open_buffer(data, size, "fuzz.gguf", &g, &e) != 0) {
        if (!e.msg[0]) __builtin_trap();
        return 0;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const uint8_t *p = g->tensors[i].data;
        if (p < data || p + g->tensors[i].bytes > data + size) __builtin_trap();
    }
    llm_vocab *v = NULL;
    if (llm_vocab_load(g, &v, &e) == 0) {
        static const char text[] = "Hello, world! <s> 123 \xc3\xa9t\xc3\xa9 \xe4\xb8\xad";
        int32_t ids[256];
        int64_t n = llm_tokenize(v, text, sizeof text - 1, true, true, ids, 256);
        if (n > 256) __builtin_trap();
        sb s;
        sb_init(&s);
        if (n > 0) llm_detokenize(v, ids, n, true, &s);
        sb_deinit(&s);
        llm_vocab_free(v);
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    llm_gguf_free(g);
    return 0;
}
