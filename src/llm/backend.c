/* backend.c — what every LLM backend shares: the reply it hands back.
 * The backends themselves: the rules in src/agent/rules.c (no model); the
 * built-in engine and OpenAI-compatible servers come next. */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

void llm_reply_deinit(llm_reply *r) {
    free(r->text);
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].name);
        free(r->calls[i].arguments);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}
