/* lora.c — LoRA adapters in llama.cpp's adapter GGUF format, applied at
 * run time: for every weight W with a pair (A, B) the forward pass adds
 * s·B·(A·x) to W·x, with s = scale·alpha/rank (scale when alpha is 0), as
 * llama.cpp does; the base weights stay untouched (and mapped, shared).
 *
 * The file: general.type = adapter, adapter.type = lora, the base's
 * general.architecture, adapter.lora.alpha; tensors "<W>.lora_a" (ne
 * [n_in, r]) and "<W>.lora_b" (ne [r, n_out]) for base tensors W of shape
 * [n_in, n_out]. Every check llama.cpp makes at load is made here, each
 * failure naming the file and the tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

static const char *const SLOT_NAME[LLM_LORA_SLOTS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                       "ffn_gate", "ffn_up", "ffn_down"};

void llm_lora_free(llm_lora *l) {
    if (!l) return;
    free(l->pairs);
    llm_gguf_free(l->gguf);
    free(l);
}

/* The pair slot of base tensor name ("blk.3.attn_q.weight", "output.weight"), or NULL. */
static llm_lora_pair *slot_of(llm_lora *l, const char *name) {
    if (!strcmp(name, "output.weight")) return &l->output;
    int layer, used = 0;
    char what[64];
    if (sscanf(name, "blk.%d.%63[^.].weight%n", &layer, what, &used) != 2 || name[used] != 0) return NULL;
    if (layer < 0 || layer >= l->n_layer) return NULL;
    for (int s = 0; s < LLM_LORA_SLOTS; s++)
        if (!strcmp(what, SLOT_NAME[s])) return &l->pairs[(size_t)layer * LLM_LORA_SLOTS + s];
    return NULL;
}

int llm_lora_load(const llm_model *base, const char *path, llm_lora **out, tailor_error *err) {
    *out = NULL;
    if (base->arch == LLM_ARCH_BERT || base->vocab_only)
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: adapters apply to decoder models loaded with weights",
                       base->gguf->path);
    llm_lora *l = xcalloc(1, sizeof *l);
    if (llm_gguf_open(path, &l->gguf, err) < 0) {
        free(l);
        return err->code;
    }
    const llm_gguf *g = l->gguf;
    const char *type = llm_gguf_get_str(g, "general.type"), *atype = llm_gguf_get_str(g, "adapter.type"),
               *arch = llm_gguf_get_str(g, "general.architecture");
    int rc = 0;
    if (!type || strcmp(type, "adapter"))
        rc = err_set(err, TAILOR_EDATA, "%s: not an adapter (general.type is %s%s%s, not 'adapter')", path,
                     type ? "'" : "", type ? type : "missing", type ? "'" : "");
    else if (!atype || strcmp(atype, "lora"))
        rc = err_set(err, TAILOR_EUNSUPPORTED, "%s: adapter.type is %s, and only 'lora' adapters are supported", path,
                     atype ? atype : "missing");
    else if (!arch || strcmp(arch, base->arch_name))
        rc = err_set(err, TAILOR_EINVAL, "%s: an adapter for '%s', and the model is '%s' (%s)", path,
                     arch ? arch : "?", base->arch_name, base->gguf->path);
    if (!rc && !llm_gguf_get_f32(g, "adapter.lora.alpha", &l->alpha)) l->alpha = 0;
    l->n_layer = base->hp.n_layer;
    l->pairs = xcalloc((size_t)l->n_layer * LLM_LORA_SLOTS + 1, sizeof *l->pairs);
    for (int64_t i = 0; !rc && i < g->n_tensors; i++) {
        const llm_tensor *t = &g->tensors[i];
        size_t n = strlen(t->name);
        bool is_a = n > 7 && !strcmp(t->name + n - 7, ".lora_a"), is_b = n > 7 && !strcmp(t->name + n - 7, ".lora_b");
        if (!is_a && !is_b) {
            if (n > 12 && !strcmp(t->name + n - 12, "_norm.weight")) continue; /* llama.cpp skips these too */
            rc = err_set(err, TAILOR_EDATA, "%s: tensor '%s' is not a LoRA tensor (names end in .lora_a or .lora_b)",
                         path, t->name);
            break;
        }
        char wname[160];
        snprintf(wname, sizeof wname, "%.*s", (int)(n - 7), t->name);
        llm_lora_pair *p = slot_of(l, wname);
        if (!strcmp(wname, "token_embd.weight"))
            rc = err_set(err, TAILOR_EUNSUPPORTED, "%s: '%s': adapters of the token embedding are not supported yet",
                         path, t->name);
        else if (!p || !llm_gguf_tensor(base->gguf, wname))
            rc = err_set(err, TAILOR_EINVAL, "%s: '%s' adapts '%s', which %s does not have", path, t->name, wname,
                         base->gguf->path);
        else if (!llm_type_get(t->type)->supported || t->n_dims > 2)
            rc = err_set(err, TAILOR_EUNSUPPORTED, "%s: tensor '%s' has type %s, which tailor cannot compute", path,
                         t->name, llm_type_get(t->type)->name);
        else if (is_a ? p->a != NULL : p->b != NULL)
            rc = err_set(err, TAILOR_EDATA, "%s: tensor '%s' appears twice", path, t->name);
        else if (is_a) p->a = t;
        else p->b = t;
    }
    /* Every pair whole, and shaped for its weight. */
    for (size_t i = 0; !rc && i <= (size_t)l->n_layer * LLM_LORA_SLOTS; i++) {
        llm_lora_pair *p = i < (size_t)l->n_layer * LLM_LORA_SLOTS ? &l->pairs[i] : &l->output;
        if (!p->a && !p->b) continue;
        const llm_tensor *any = p->a ? p->a : p->b;
        char wname[160];
        snprintf(wname, sizeof wname, "%.*s", (int)(strlen(any->name) - 7), any->name);
        const llm_tensor *w = llm_gguf_tensor(base->gguf, wname);
        if (!p->a || !p->b)
            rc = err_set(err, TAILOR_EDATA, "%s: '%s' has no %s", path, any->name, p->a ? ".lora_b" : ".lora_a");
        else if (p->a->ne[0] != w->ne[0] || p->b->ne[1] != w->ne[1] || p->a->ne[1] != p->b->ne[0])
            rc = err_set(err, TAILOR_EDATA,
                         "%s: '%s' [%lld, %lld] and '%s' [%lld, %lld] do not fit '%s' [%lld, %lld] (A is [n_in, r], "
                         "B [r, n_out])",
                         path, p->a->name, (long long)p->a->ne[0], (long long)p->a->ne[1], p->b->name,
                         (long long)p->b->ne[0], (long long)p->b->ne[1], wname, (long long)w->ne[0], (long long)w->ne[1]);
        else {
            l->n_pairs++;
            if (p->a->ne[1] > l->max_rank) l->max_rank = (int32_t)p->a->ne[1];
            if (p->b->ne[1] > l->max_out) l->max_out = p->b->ne[1];
        }
    }
    if (!rc && !l->n_pairs) rc = err_set(err, TAILOR_EDATA, "%s: the adapter holds no LoRA pair", path);
    if (rc) {
        llm_lora_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

float llm_lora_factor(const llm_lora *l, const llm_lora_pair *p, float scale) {
    /* llama.cpp: alpha / rank, the rank read from B's first dimension. */
    return l->alpha != 0 ? scale * l->alpha / (float)p->b->ne[0] : scale;
}
