/* chat.c — chat templates and embeddings.
 * Templates: the common formats, recognised from tokenizer.chat_template by
 * the markers they contain (the file's Jinja text is not executed), or
 * named explicitly. The output is text with special-token literals, to be
 * tokenized with special parsing on. Embeddings: mean or last-token
 * pooling of the final-norm hidden states, L2-normalised. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

static const char *const FORMATS[] = {"chatml", "llama3", "llama2", "mistral", "zephyr", "phi3"};

const char *llm_chat_formats(void) { return "chatml, llama3, llama2, mistral, zephyr, phi3"; }

const char *llm_chat_detect(const char *tmpl) {
    if (!tmpl) return NULL;
    for (size_t i = 0; i < sizeof FORMATS / sizeof *FORMATS; i++)
        if (strcmp(tmpl, FORMATS[i]) == 0) return FORMATS[i];
    if (strstr(tmpl, "<|im_start|>")) return "chatml";
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>")) return "llama3";
    if (strstr(tmpl, "[INST]")) return strstr(tmpl, "<<SYS>>") ? "llama2" : "mistral";
    if (strstr(tmpl, "<|assistant|>") && strstr(tmpl, "<|end|>")) return "phi3";
    if (strstr(tmpl, "<|user|>")) return "zephyr";
    return NULL;
}

static void put_trimmed(sb *out, const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    sb_append(out, s, n);
}

int llm_chat_format(const char *format, const char *eos_text, const llm_chat_msg *msgs, int n, bool add_assistant,
                    sb *out, tailor_error *err) {
    const char *f = llm_chat_detect(format);
    if (!f) return err_set(err, TAILOR_EUNSUPPORTED, "unknown chat template '%.60s' (known: %s)", format ? format : "",
                           llm_chat_formats());
    if (!eos_text) eos_text = "</s>";
    if (strcmp(f, "chatml") == 0) {
        for (int i = 0; i < n; i++) sb_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", msgs[i].role, msgs[i].content);
        if (add_assistant) sb_puts(out, "<|im_start|>assistant\n");
    } else if (strcmp(f, "llama3") == 0) {
        for (int i = 0; i < n; i++) {
            sb_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", msgs[i].role);
            put_trimmed(out, msgs[i].content);
            sb_puts(out, "<|eot_id|>");
        }
        if (add_assistant) sb_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    } else if (strcmp(f, "llama2") == 0 || strcmp(f, "mistral") == 0) {
        /* [INST] user [/INST] answer</s>[INST] ...; a system message goes
         * inside the first instruction (in <<SYS>> for Llama 2). */
        bool sys_block = strcmp(f, "llama2") == 0, inside = true;
        sb_puts(out, "[INST] ");
        for (int i = 0; i < n; i++) {
            if (!inside) {
                inside = true;
                sb_puts(out, "[INST] ");
            }
            if (strcmp(msgs[i].role, "system") == 0) {
                if (sys_block) sb_printf(out, "<<SYS>>\n%s\n<</SYS>>\n\n", msgs[i].content);
                else sb_printf(out, "%s\n", msgs[i].content);
            } else if (strcmp(msgs[i].role, "user") == 0) {
                sb_printf(out, "%s [/INST]", msgs[i].content);
            } else {
                sb_printf(out, "%s%s", msgs[i].content, eos_text);
                inside = false;
            }
        }
    } else if (strcmp(f, "zephyr") == 0) {
        for (int i = 0; i < n; i++) sb_printf(out, "<|%s|>\n%s%s\n", msgs[i].role, msgs[i].content, eos_text);
        if (add_assistant) sb_puts(out, "<|assistant|>\n");
    } else { /* phi3 */
        for (int i = 0; i < n; i++) sb_printf(out, "<|%s|>\n%s<|end|>\n", msgs[i].role, msgs[i].content);
        if (add_assistant) sb_puts(out, "<|assistant|>\n");
    }
    return 0;
}

int llm_embed(llm_ctx *c, const char *text, size_t n, llm_pooling pooling, float *out, tailor_error *err) {
    const llm_model *m = llm_ctx_model(c);
    int64_t nt;
    /* BERT: special-token text is parsed, as llama.cpp's embedding does. */
    int32_t *ids = llm_tokenize_alloc(m->vocab, text, n, true, m->arch == LLM_ARCH_BERT, &nt);
    if (m->arch == LLM_ARCH_BERT) { /* [CLS] ... [SEP] through the encoder */
        int D = m->hp.n_embd;
        float *h = nt > 0 ? xmalloc((size_t)nt * (size_t)D * sizeof *h) : NULL;
        int rc = nt > 0 ? llm_bert_forward(m, ids, (int)nt, h, NULL, err) : err_set(err, TAILOR_EINVAL, "embed: the text has no tokens");
        free(ids);
        if (rc) {
            free(h);
            return rc;
        }
        if (pooling == LLM_POOL_MODEL) pooling = llm_bert_pooling(m) == 1 ? LLM_POOL_MEAN : LLM_POOL_CLS;
        const float *row = pooling == LLM_POOL_CLS ? h : pooling == LLM_POOL_LAST ? h + (size_t)(nt - 1) * D : NULL;
        for (int i = 0; i < D; i++) {
            if (row) out[i] = row[i];
            else {
                float s = 0; /* a float mean, as llama.cpp's pooling matmul */
                for (int64_t t = 0; t < nt; t++) s += h[(size_t)t * D + i] / (float)nt;
                out[i] = s;
            }
        }
        free(h);
        double sum = 0;
        for (int i = 0; i < D; i++) sum += (double)(out[i] * out[i]);
        float norm = sum > 0 ? (float)(1.0 / sqrt(sum)) : 0;
        for (int i = 0; i < D; i++) out[i] *= norm;
        return 0;
    }
    if (pooling == LLM_POOL_MODEL || pooling == LLM_POOL_CLS) pooling = LLM_POOL_MEAN;
    if (nt <= 0) {
        free(ids);
        return err_set(err, TAILOR_EINVAL, "embed: the text has no tokens");
    }
    if (nt > llm_ctx_n_ctx(c)) {
        free(ids);
        return err_set(err, TAILOR_EINVAL, "embed: %lld tokens exceed the context of %d", (long long)nt,
                       llm_ctx_n_ctx(c));
    }
    llm_ctx_truncate(c, 0);
    int rc = llm_decode(c, ids, (int32_t)nt, false, err);
    free(ids);
    if (rc < 0) return rc;
    int D = m->hp.n_embd;
    const float *h = llm_ctx_hidden(c);
    if (pooling == LLM_POOL_LAST) {
        memcpy(out, h + (size_t)(nt - 1) * (size_t)D, sizeof(float) * (size_t)D);
    } else {
        for (int i = 0; i < D; i++) {
            double s = 0;
            for (int64_t t = 0; t < nt; t++) s += h[(size_t)t * (size_t)D + (size_t)i];
            out[i] = (float)(s / (double)nt);
        }
    }
    double norm = 0;
    for (int i = 0; i < D; i++) norm += (double)out[i] * out[i];
    norm = sqrt(norm);
    if (norm > 0)
        for (int i = 0; i < D; i++) out[i] = (float)(out[i] / norm);
    llm_ctx_truncate(c, 0);
    return 0;
}
