/* backend.c — what every LLM backend shares: the reply it hands back.
 * The backends themselves: the rules in src/agent/rules.c (no model); the
 * built-in engine and OpenAI-compatible servers come next. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

void llm_token_logprobs_free(llm_token_logprobs *v, int n) {
    for (int i = 0; v && i < n; i++) {
        free(v[i].text);
        for (int k = 0; k < v[i].n_top; k++) free(v[i].top[k].text);
        free(v[i].top);
    }
    free(v);
}

void llm_reply_deinit(llm_reply *r) {
    free(r->text);
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].name);
        free(r->calls[i].arguments);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}
