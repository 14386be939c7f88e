/* bpe.c — a byte-level BPE tokenizer trained on a text (GPT-2's scheme):
 * words split as the pre-tokenizer it is written with (GPT-2's regex,
 * digits one by one: llama.cpp's smollm type) roughly does — a run of
 * letters or of other marks with the space before it, a digit alone —
 * counted; starting
 * from the 256 bytes, the most frequent adjacent pair over all words is
 * merged, again and again, until the vocabulary has its size. Token texts
 * use GPT-2's byte-to-character map, so the result is a `gpt2` tokenizer
 * the engine and llama.cpp read; every byte stays a token, so any text
 * encodes. Ties between pairs go to the smaller pair of ids, so a text
 * and a size always give the same tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

typedef struct bpe_word {
    int32_t *sym;
    int n;
    int64_t count;
} bpe_word;
typedef VEC(bpe_word) bpe_words;

static int char_class(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return 1; /* letters (and UTF-8) */
    if (c >= '0' && c <= '9') return 2;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 0;
    return 3;
}

/* The text's words and their counts (a word keeps the space before it). */
static void count_words(const char *text, size_t len, hmap *index, bpe_words *words) {
    size_t i = 0;
    while (i < len) {
        size_t b = i;
        /* A digit is a word of its own (the smollm pre-tokenizer splits
         * every digit first); a space joins the word after it otherwise. */
        int next = i + 1 < len ? char_class((unsigned char)text[i + 1]) : 0;
        if (text[i] == ' ' && next != 0 && next != 2) i++;
        int cls = char_class((unsigned char)text[i]);
        i++;
        while (cls != 2 && i < len && char_class((unsigned char)text[i]) == cls && (cls != 0 || text[i] == text[i - 1]))
            i++;
        int64_t at;
        if (hmap_get(index, text + b, i - b, &at)) {
            words->data[at].count++;
            continue;
        }
        bpe_word w = {xmalloc((i - b) * sizeof(int32_t)), (int)(i - b), 1};
        for (size_t k = b; k < i; k++) w.sym[k - b] = (unsigned char)text[k];
        vec_push(words, w);
        hmap_put(index, text + b, i - b, (int64_t)words->len - 1);
    }
}

/* The byte-level text of bytes. */
static void token_text(const uint16_t *byte_cp, const unsigned char *bytes, size_t n, sb *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_cp[bytes[i]];
        if (cp < 0x80) sb_putc(out, (char)cp);
        else if (cp < 0x800) sb_putc(out, (char)(0xC0 | (cp >> 6))), sb_putc(out, (char)(0x80 | (cp & 0x3F)));
        else sb_putc(out, (char)(0xE0 | (cp >> 12))), sb_putc(out, (char)(0x80 | ((cp >> 6) & 0x3F))),
            sb_putc(out, (char)(0x80 | (cp & 0x3F)));
    }
}

int llm_bpe_train(const char *text, size_t len, int vocab_size, const char *chat_format, const char *path, bool quiet,
                  tailor_error *err) {
    if (vocab_size < 260 || vocab_size > 1 << 20)
        return err_set(err, TAILOR_EINVAL, "a BPE vocabulary holds 260 to %d tokens (the 256 bytes and more)", 1 << 20);
    bool chatml = chat_format && !strcmp(chat_format, "chatml");
    if (chat_format && !chatml)
        return err_set(err, TAILOR_EUNSUPPORTED, "a trained tokenizer takes the chatml template only (not %s)", chat_format);
    static const char *const CHATML[] = {"<|im_start|>", "<|im_end|>"};
    int n_special = chatml ? 2 : 0;
    hmap index;
    hmap_init(&index, 1024);
    bpe_words words = {0};
    count_words(text, len, &index, &words);
    hmap_deinit(&index);
    /* Each token's bytes. */
    int n_merges_max = vocab_size - 256 - 1 - n_special; /* ids for <|endoftext|> and the chat markers */
    VEC(sb) bytes = {0};
    for (int b = 0; b < 256; b++) {
        sb x;
        sb_init(&x);
        sb_putc(&x, (char)b);
        vec_push(&bytes, x);
    }
    VEC(int32_t) ma = {0}, mb = {0};
    progress bar;
    if (!quiet) progress_begin(&bar, "BPE merges", (uint64_t)n_merges_max);
    hmap pairs;
    for (int m = 0; m < n_merges_max; m++) {
        /* Pair counts over the words (re-counted each merge: the words are
         * the text's distinct ones, far fewer than its tokens). */
        hmap_init(&pairs, 4096);
        int64_t best_count = 0;
        int32_t best_a = -1, best_b = -1;
        VEC(int64_t) counts = {0};
        for (size_t w = 0; w < words.len; w++)
            for (int k = 0; k + 1 < words.data[w].n; k++) {
                int32_t key[2] = {words.data[w].sym[k], words.data[w].sym[k + 1]};
                int64_t at;
                if (!hmap_get(&pairs, (const char *)key, sizeof key, &at)) {
                    at = (int64_t)counts.len;
                    vec_push(&counts, 0);
                    hmap_put(&pairs, (const char *)key, sizeof key, at);
                }
                counts.data[at] += words.data[w].count;
                int64_t c = counts.data[at];
                if (c > best_count || (c == best_count && (key[0] < best_a || (key[0] == best_a && key[1] < best_b))))
                    best_count = c, best_a = key[0], best_b = key[1];
            }
        vec_free(&counts);
        hmap_deinit(&pairs);
        if (best_count < 2) break; /* nothing repeats: more merges would only memorise */
        int32_t id = (int32_t)bytes.len;
        sb nb;
        sb_init(&nb);
        sb_append(&nb, bytes.data[best_a].buf, bytes.data[best_a].len);
        sb_append(&nb, bytes.data[best_b].buf, bytes.data[best_b].len);
        vec_push(&bytes, nb);
        vec_push(&ma, best_a);
        vec_push(&mb, best_b);
        for (size_t w = 0; w < words.len; w++) {
            bpe_word *x = &words.data[w];
            int o = 0;
            for (int k = 0; k < x->n; k++) {
                if (k + 1 < x->n && x->sym[k] == best_a && x->sym[k + 1] == best_b) x->sym[o++] = id, k++;
                else x->sym[o++] = x->sym[k];
            }
            x->n = o;
        }
        if (!quiet) progress_update(&bar, (uint64_t)m + 1);
    }
    if (!quiet) progress_end(&bar);
    /* The GGUF: tokens (bytes, merges, <|endoftext|>), types, merges. */
    uint16_t byte_cp[256];
    int16_t cp_byte[512];
    llm_byte_alphabet(byte_cp, cp_byte);
    size_t n_tok = bytes.len + 1 + (size_t)n_special;
    llm_str *tv = xcalloc(n_tok, sizeof *tv), *mv = xcalloc(ma.len + 1, sizeof *mv);
    int32_t *types = xcalloc(n_tok, sizeof *types);
    arena names;
    arena_init(&names, 0);
    sb t;
    sb_init(&t);
    for (size_t i = 0; i < bytes.len; i++) {
        sb_clear(&t);
        token_text(byte_cp, (const unsigned char *)bytes.data[i].buf, bytes.data[i].len, &t);
        tv[i].s = arena_strndup(&names, t.buf, t.len), tv[i].n = t.len;
        types[i] = 1;
    }
    tv[bytes.len].s = "<|endoftext|>", tv[bytes.len].n = 13;
    types[bytes.len] = 3;
    for (int i = 0; i < n_special; i++) {
        tv[bytes.len + 1 + (size_t)i].s = CHATML[i], tv[bytes.len + 1 + (size_t)i].n = strlen(CHATML[i]);
        types[bytes.len + 1 + (size_t)i] = 3;
    }
    for (size_t m = 0; m < ma.len; m++) {
        sb_clear(&t);
        sb_append(&t, tv[ma.data[m]].s, tv[ma.data[m]].n);
        sb_putc(&t, ' ');
        sb_append(&t, tv[mb.data[m]].s, tv[mb.data[m]].n);
        mv[m].s = arena_strndup(&names, t.buf, t.len), mv[m].n = t.len;
    }
    /* Two merges may make the same bytes by different paths: the token
     * list must stay free of repeats (the reader refuses them). */
    hmap seen;
    hmap_init(&seen, n_tok);
    int rc = 0;
    for (size_t i = 0; i < n_tok && !rc; i++) {
        int64_t at;
        if (hmap_get(&seen, tv[i].s, tv[i].n, &at)) {
            char buf[64];
            snprintf(buf, sizeof buf, "<|unused_%zu|>", i);
            tv[i].s = arena_strdup(&names, buf), tv[i].n = strlen(buf), types[i] = 5;
        }
        hmap_put(&seen, tv[i].s, tv[i].n, (int64_t)i);
    }
    hmap_deinit(&seen);
    llm_gguf_writer *w = llm_gguf_writer_new();
    llm_gguf_set_str(w, "general.architecture", "llama");
    llm_gguf_set_str(w, "general.name", "tailor byte-level BPE");
    llm_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    /* GPT-2's regex with every digit apart, and no clean-up of spaces
     * when decoding: text comes back exactly (llama.cpp's smollm type). */
    llm_gguf_set_str(w, "tokenizer.ggml.pre", "smollm");
    llm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tv, n_tok);
    llm_gguf_set_arr(w, "tokenizer.ggml.token_type", LLM_GGUF_I32, types, n_tok);
    llm_gguf_set_arr_str(w, "tokenizer.ggml.merges", mv, ma.len);
    llm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bytes.len);
    llm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)bytes.len);
    llm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (chatml)
        llm_gguf_set_str(w, "tokenizer.chat_template",
                         "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                         "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                         "}}{% endif %}");
    if (llm_gguf_writer_write(w, path, err) < 0) rc = err->code;
    llm_gguf_writer_free(w);
    sb_deinit(&t);
    arena_deinit(&names);
    free(tv), free(mv), free(types);
    for (size_t i = 0; i < bytes.len; i++) sb_deinit(&bytes.data[i]);
    vec_free(&bytes);
    vec_free(&ma);
    vec_free(&mb);
    for (size_t i = 0; i < words.len; i++) free(words.data[i].sym);
    vec_free(&words);
    return rc;
}
