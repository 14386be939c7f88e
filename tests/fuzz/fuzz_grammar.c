/* fuzz_grammar.c — libFuzzer target for the grammar engine. The first byte
 * chooses: 0 mod 4 or 2 mod 4, the input is GBNF text (refused with a
 * message, or compiled and then fed the rest of the input as generated
 * text); 1 mod 4, it is a JSON schema, whose grammar (when the schema is
 * supported) must always compile and accept nothing the validator
 * rejects; 3 mod 4, it is lines of names, whose trie of rules must compile
 * and match each name it kept, whole and not cut short. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    tailor_error e = {0};
    llm_grammar *g = NULL;
    if ((data[0] & 1) == 0) {
        /* Split: grammar, then a NUL, then text to feed. */
        const char *nul = memchr(text, 0, n);
        size_t gn = nul ? (size_t)(nul - text) : n;
        if (llm_grammar_parse(text, gn, NULL, &g, &e) != 0) {
            if (!e.msg[0]) __builtin_trap();
            return 0;
        }
        if (nul) {
            const char *s = nul + 1;
            size_t sn = n - gn - 1;
            for (size_t i = 0; i < sn; i++) llm_grammar_accept_text(g, s + i, 1);
            llm_grammar_complete(g);
        }
        llm_grammar_free(g);
        return 0;
    }
    if ((data[0] & 3) == 3) {
        char *buf = malloc(n + 1);
        memcpy(buf, text, n);
        buf[n] = 0;
        const char *names[64];
        size_t k = 0;
        for (char *p = buf, *q; p && k < 64; p = q) {
            q = strchr(p, '\n');
            if (q) *q++ = 0;
            names[k++] = p;
        }
        sb gbnf;
        sb_init(&gbnf);
        llm_grammar_trie(names, k, "root", &gbnf);
        if (llm_grammar_parse(gbnf.buf, gbnf.len, NULL, &g, &e) != 0) __builtin_trap();
        for (size_t i = 0; i < k; i++) {
            size_t len = strlen(names[i]);
            if (!len || len > LLM_TRIE_MAX_LEN || utf8_check(names[i], len) >= 0) continue;
            llm_grammar_reset(g);
            if (!llm_grammar_accept_text(g, names[i], len) || !llm_grammar_complete(g)) __builtin_trap();
            llm_grammar_reset(g);
            if (llm_grammar_accept_text(g, names[i], len - 1) && llm_grammar_complete(g)) {
                /* the name cut short is complete only if it is a name too */
                bool listed = false;
                for (size_t j = 0; j < k && !listed; j++) listed = strlen(names[j]) == len - 1 && !memcmp(names[j], names[i], len - 1);
                if (!listed && len > 1) __builtin_trap();
            }
        }
        llm_grammar_free(g);
        sb_deinit(&gbnf);
        free(buf);
        return 0;
    }
    char *schema = malloc(n + 1);
    memcpy(schema, text, n);
    schema[n] = 0;
    sb gbnf;
    sb_init(&gbnf);
    if (llm_schema_to_gbnf(schema, &gbnf, &e) == 0) {
        /* A supported schema always gives a grammar that compiles. */
        if (llm_grammar_parse(gbnf.buf, gbnf.len, NULL, &g, &e) != 0) __builtin_trap();
        llm_grammar_free(g);
        llm_schema_validate(schema, "{}", &e);
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    sb_deinit(&gbnf);
    free(schema);
    return 0;
}
