/* vocab.c — tokenizers read from GGUF metadata: SentencePiece-style
 * (`llama`: score-driven bigram merges, byte fallback, leading space),
 * byte-level BPE (`gpt2`: ranked merges after a PCRE2 pre-tokenizer chosen
 * by tokenizer.ggml.pre) and WordPiece (`bert`: NFD, lower case, greedy
 * longest match, accents stripped, with libunistring's Unicode tables). Special tokens are split out first; the rules
 * (which tokens are special, BOS/EOS, space handling, detokenization
 * clean-up) follow the reference engine so token ids match it exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "llm/llm.h"

#define MAX_REGEX 8

/* Pre-tokenizers: the regexes are applied one after another, each splitting
 * the pieces left by the previous one (matches and the gaps between them
 * both become pieces). */
#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                            \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CJK "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
/* DeepSeek LLM's letter class, as listed in its tokenizer (Latin, Greek,
 * Cyrillic, Armenian, Georgian, Cherokee and other cased scripts). */
#define RX_DEEPSEEK_LETTERS                                                                  \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}"          \
    "\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}"       \
    "\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}"               \
    "\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}" \
    "\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}"             \
    "\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"             \
    "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}"      \
    "\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}"     \
    "\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}"             \
    "\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}"      \
    "\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}"      \
    "\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}"               \
    "\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}"              \
    "\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}"             \
    "\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}"             \
    "\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}"         \
    "\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}"     \
    "\\x{1e900}-\\x{1e943}]+"

typedef struct pre_tok {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    const char *regex[MAX_REGEX];
    bool ignore_merges, add_bos, clean_spaces;
} pre_tok;

static const pre_tok PRE_TOKS[] = {
    {"default",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false, true},
    {"llama3|llama-v3|llama-bpe|falcon3", {RX_LLAMA3}, true, true, true},
    {"dbrx|smaug-bpe", {RX_LLAMA3}, false, false, true},
    {"deepseek-llm",
     {"[\\r\\n]", RX_DEEPSEEK_LETTERS,
      "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
      "\\s+$", RX_CJK, "\\p{N}+"},
     false, false, false},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}, false, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, false, false, true},
    {"starcoder|refact|codeshell|exaone|minerva-7b", {"\\p{N}", RX_GPT2}, false, false, true},
    {"command-r|smollm", {"\\p{N}", RX_GPT2}, false, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
     "roberta-bpe|mpt|olmo|jais",
     {RX_GPT2}, false, false, true},
    {"qwen2|megrez", {RX_QWEN2}, false, false, false},
    {"stablelm2", {RX_QWEN2}, false, false, true},
    {"chatglm-bpe", {RX_LLAMA3}, false, false, true},
    {"poro-chat", {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{0964}\\x{06d4}\\x{060c})]+"},
     false, false, false},
    {"bloom|gpt3-finnish",
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{0964}\\x{06d4}\\x{060c})]+"},
     false, false, true},
    {"viking",
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{0964}\\x{06d4}\\x{060c})]+", "\\p{N}"},
     false, false, false},
};

typedef struct tok_data {
    llm_str text;
    float score;
    int attr;
} tok_data;

struct llm_vocab {
    llm_vocab_kind kind;
    const char *pre_name;
    const pre_tok *pre;
    int32_t n;
    tok_data *tok;
    hmap tok_index; /* text -> id */
    hmap merges;    /* "left right" -> rank */
    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;
    int32_t *special; /* control/user/unknown ids, longest text first */
    int32_t n_special;
    int32_t *eog;
    int32_t n_eog;
    int32_t byte_tok[256]; /* SPM byte fallback */
    uint16_t byte_cp[256];  /* BPE: byte -> code point of its alphabet */
    int16_t cp_byte[512];   /* BPE: and back (-1: not in the alphabet) */
    int64_t max_len;       /* WPM: longest token text */
    pcre2_code *rx[MAX_REGEX];
    int n_rx;
    arena mem;
};

/* ---- UTF-8 helpers ----------------------------------------------------- */

static size_t utf8_len(unsigned char c) {
    static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others are moved to U+0100 onwards in byte order. Fills both directions
 * (cp_byte: -1 for code points outside the alphabet). */
void llm_byte_alphabet(uint16_t byte_cp[256], int16_t cp_byte[512]) {
    for (int i = 0; i < 512; i++) cp_byte[i] = -1;
    unsigned moved = 0;
    for (unsigned b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        byte_cp[b] = (uint16_t)(keep ? b : 256 + moved++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

static uint32_t utf8_decode(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t l = utf8_len(u[0]);
    if (l > n) l = n;
    *len = l;
    if (l == 1) return u[0];
    uint32_t cp = u[0] & (0xFF >> (l + 1));
    for (size_t i = 1; i < l; i++) cp = (cp << 6) | (u[i] & 0x3F);
    return cp;
}

/* ---- loading ----------------------------------------------------------- */

int32_t llm_vocab_find(const llm_vocab *v, const char *text, size_t n) {
    int64_t id;
    return hmap_get(&v->tok_index, text, n, &id) ? (int32_t)id : -1;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const llm_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint64_t lx = v->tok[x].text.n, ly = v->tok[y].text.n;
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static int get_id(const llm_gguf *g, const char *key, int32_t n, int32_t *id) {
    uint32_t x;
    if (llm_gguf_get_u32(g, key, &x) && x < (uint32_t)n) *id = (int32_t)x;
    return 0;
}

int llm_vocab_load(const llm_gguf *g, llm_vocab **out, tailor_error *err) {
    const char *model = llm_gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) return err_set(err, TAILOR_EDATA, "%s: no tokenizer (tokenizer.ggml.model missing)", g->path);
    llm_vocab_kind kind;
    if (strcmp(model, "llama") == 0) kind = LLM_VOCAB_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = LLM_VOCAB_BPE;
    else if (strcmp(model, "bert") == 0) kind = LLM_VOCAB_WPM;
    else
        return err_set(err, TAILOR_EUNSUPPORTED, "%s: tokenizer model '%s' is not supported (llama, gpt2 and bert are)",
                       g->path, model);
    const llm_gguf_kv *toks = llm_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != LLM_GGUF_ARR || toks->arr_type != LLM_GGUF_STR || toks->n == 0 ||
        toks->n > INT32_MAX)
        return err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.tokens must be a non-empty string array", g->path);
    int32_t n = (int32_t)toks->n;
    const llm_gguf_kv *scores = llm_gguf_find(g, "tokenizer.ggml.scores");
    if (scores && (scores->type != LLM_GGUF_ARR || scores->arr_type != LLM_GGUF_F32 || scores->n != toks->n))
        return err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.scores must be %d f32 values", g->path, n);
    const llm_gguf_kv *types = llm_gguf_find(g, "tokenizer.ggml.token_type");
    if (types && (types->type != LLM_GGUF_ARR || types->arr_type != LLM_GGUF_I32 || types->n != toks->n))
        return err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.token_type must be %d i32 values", g->path, n);

    llm_vocab *v = xcalloc(1, sizeof *v);
    arena_init(&v->mem, 0);
    v->kind = kind;
    v->n = n;
    v->tok = xcalloc((size_t)n, sizeof *v->tok);
    hmap_init(&v->tok_index, (size_t)n);
    const llm_str *texts = toks->v.arr;
    for (int32_t i = 0; i < n; i++) {
        v->tok[i].text = texts[i];
        if (texts[i].n == 0) { /* as the reference: an empty token gets a placeholder text */
            char buf[32];
            int l = snprintf(buf, sizeof buf, "[EMPTY_%d]", i);
            v->tok[i].text.s = arena_strndup(&v->mem, buf, (size_t)l);
            v->tok[i].text.n = (uint64_t)l;
        }
        if (scores) v->tok[i].score = ((const float *)scores->v.arr)[i];
        int attr = LLM_TOK_NORMAL;
        if (types) switch (((const int32_t *)types->v.arr)[i]) {
            case 1: attr = LLM_TOK_NORMAL; break;
            case 2: attr = LLM_TOK_UNKNOWN; break;
            case 3: attr = LLM_TOK_CONTROL; break;
            case 4: attr = LLM_TOK_USER; break;
            case 5: attr = LLM_TOK_UNUSED; break;
            case 6: attr = LLM_TOK_BYTE; break;
            default: attr = 0; break; /* undefined */
            }
        v->tok[i].attr = attr;
        /* Two ids with one text: no text -> id map can hold both, and
         * llama.cpp refuses such a file; so do we, by name. */
        int64_t dup;
        if (hmap_get(&v->tok_index, v->tok[i].text.s, v->tok[i].text.n, &dup)) {
            err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.tokens[%d] '%.*s' repeats token %lld (token texts must be unique)",
                    g->path, i, (int)(v->tok[i].text.n < 80 ? v->tok[i].text.n : 80), v->tok[i].text.s, (long long)dup);
            llm_vocab_free(v);
            return err->code;
        }
        hmap_put(&v->tok_index, v->tok[i].text.s, v->tok[i].text.n, i);
    }

    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = -1;
    const char *pre = llm_gguf_get_str(g, "tokenizer.ggml.pre");
    if (kind == LLM_VOCAB_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
        v->pre_name = "default";
    } else if (kind == LLM_VOCAB_WPM) {
        /* [CLS] text [SEP]; [UNK] for words that cannot be spelled. */
        v->bos = 101 < n ? 101 : -1, v->sep = 102 < n ? 102 : -1, v->unk = 100 < n ? 100 : -1;
        v->add_bos = true;
        v->clean_spaces = true;
        v->pre_name = "default";
        for (int32_t i = 0; i < n; i++)
            if ((int64_t)v->tok[i].text.n > v->max_len) v->max_len = (int64_t)v->tok[i].text.n;
    } else {
        v->bos = v->eos = 11 < n ? 11 : -1;
        v->clean_spaces = true;
        v->pre_name = pre ? pre : "default";
        for (size_t i = 0; i < sizeof PRE_TOKS / sizeof PRE_TOKS[0]; i++)
            if (name_in(PRE_TOKS[i].names, v->pre_name)) v->pre = &PRE_TOKS[i];
        if (!v->pre) {
            err_set(err, TAILOR_EUNSUPPORTED, "%s: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)",
                    g->path, v->pre_name);
            llm_vocab_free(v);
            return err->code;
        }
        llm_byte_alphabet(v->byte_cp, v->cp_byte);
        v->ignore_merges = v->pre->ignore_merges;
        v->add_bos = v->pre->add_bos;
        v->clean_spaces = v->pre->clean_spaces;
        for (int i = 0; i < MAX_REGEX && v->pre->regex[i]; i++) {
            int ec;
            PCRE2_SIZE eo;
            v->rx[i] = pcre2_compile((PCRE2_SPTR)v->pre->regex[i], PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
            if (!v->rx[i]) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(ec, msg, sizeof msg);
                err_set(err, TAILOR_EINTERNAL, "pre-tokenizer '%s': regex %d: %s at %zu",
                        v->pre_name, i, (const char *)msg, (size_t)eo);
                llm_vocab_free(v);
                return err->code;
            }
            pcre2_jit_compile(v->rx[i], PCRE2_JIT_COMPLETE); /* optional speed-up */
            v->n_rx = i + 1;
        }
        const llm_gguf_kv *merges = llm_gguf_find(g, "tokenizer.ggml.merges");
        if (merges && (merges->type != LLM_GGUF_ARR || merges->arr_type != LLM_GGUF_STR)) {
            err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.merges must be a string array", g->path);
            llm_vocab_free(v);
            return err->code;
        }
        hmap_init(&v->merges, merges ? (size_t)merges->n : 1);
        if (merges) {
            const llm_str *m = merges->v.arr;
            for (uint64_t i = 0; i < merges->n; i++) {
                const char *sp = m[i].n > 1 ? memchr(m[i].s + 1, ' ', m[i].n - 1) : NULL;
                if (!sp) {
                    err_set(err, TAILOR_EDATA, "%s: tokenizer.ggml.merges[%llu] '%s' has no space",
                            g->path, (unsigned long long)i, m[i].s);
                    llm_vocab_free(v);
                    return err->code;
                }
                int64_t old;
                if (!hmap_get(&v->merges, m[i].s, m[i].n, &old)) hmap_put(&v->merges, m[i].s, m[i].n, (int64_t)i);
            }
        }
    }
    get_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos);
    get_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos);
    get_id(g, "tokenizer.ggml.eot_token_id", n, &v->eot);
    get_id(g, "tokenizer.ggml.eom_token_id", n, &v->eom);
    get_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk);
    get_id(g, "tokenizer.ggml.seperator_token_id", n, &v->sep);
    get_id(g, "tokenizer.ggml.padding_token_id", n, &v->pad);
    llm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    llm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    llm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);

    /* End-of-generation tokens: EOS/EOT/EOM and the usual end-of-turn texts
     * (which become control tokens, as in the reference). */
    static const char *const EOG_TEXTS[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<|eom_id|>", "<EOT>"};
    v->eog = arena_alloc(&v->mem, sizeof(int32_t) * 16);
    for (size_t i = 0; i < sizeof EOG_TEXTS / sizeof *EOG_TEXTS; i++) {
        int32_t id = llm_vocab_find(v, EOG_TEXTS[i], strlen(EOG_TEXTS[i]));
        if (id >= 0) {
            v->tok[id].attr = v->tok[id].attr & LLM_TOK_CONTROL ? v->tok[id].attr : LLM_TOK_CONTROL;
            v->eog[v->n_eog++] = id;
            if (v->eot < 0 && i != 5) v->eot = id;
        }
    }
    int32_t extra[3] = {v->eos, v->eot, v->eom};
    for (int i = 0; i < 3; i++) {
        if (extra[i] < 0) continue;
        bool seen = false;
        for (int j = 0; j < v->n_eog; j++) seen |= v->eog[j] == extra[i];
        if (!seen) v->eog[v->n_eog++] = extra[i];
    }

    v->special = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int32_t i = 0; i < n; i++)
        if (v->tok[i].attr & (LLM_TOK_CONTROL | LLM_TOK_USER | LLM_TOK_UNKNOWN)) v->special[v->n_special++] = i;
    qsort_r(v->special, (size_t)v->n_special, sizeof(int32_t), cmp_special, v);

    if (kind == LLM_VOCAB_SPM)
        for (int b = 0; b < 256; b++) {
            char hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = llm_vocab_find(v, hex, 6);
            if (id < 0) {
                char c = (char)b;
                id = llm_vocab_find(v, &c, 1);
            }
            v->byte_tok[b] = id >= 0 ? id : v->unk;
        }
    *out = v;
    return 0;
}

void llm_vocab_free(llm_vocab *v) {
    if (!v) return;
    for (int i = 0; i < MAX_REGEX; i++) pcre2_code_free(v->rx[i]);
    if (v->tok) hmap_deinit(&v->tok_index);
    if (v->kind == LLM_VOCAB_BPE && v->merges.slots) hmap_deinit(&v->merges);
    free(v->tok);
    free(v->special);
    arena_deinit(&v->mem);
    free(v);
}

int32_t llm_vocab_size(const llm_vocab *v) { return v->n; }
int32_t llm_vocab_bos(const llm_vocab *v) { return v->bos; }
int32_t llm_vocab_eos(const llm_vocab *v) { return v->eos; }
bool llm_vocab_add_bos(const llm_vocab *v) { return v->add_bos; }
bool llm_vocab_add_space_prefix(const llm_vocab *v) { return v->add_space_prefix; }
const char *llm_vocab_kind_name(const llm_vocab *v) {
    return v->kind == LLM_VOCAB_SPM ? "SPM" : v->kind == LLM_VOCAB_BPE ? "BPE" : "WPM";
}
const char *llm_vocab_pre_name(const llm_vocab *v) { return v->pre_name; }
const llm_str *llm_vocab_text(const llm_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? &v->tok[id].text : NULL;
}

bool llm_vocab_is_eog(const llm_vocab *v, int32_t id) {
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return true;
    return false;
}

/* ---- output buffer ----------------------------------------------------- */

typedef struct tok_out {
    int32_t *ids;
    int64_t n, cap;
} tok_out;

static void out_push(tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ---- merge machinery shared by SPM and BPE ----------------------------- */

typedef struct sym {
    int prev, next;
    const char *text;
    size_t n;
} sym;

typedef struct bigram {
    int left, right;
    float score; /* SPM: higher first */
    int rank;    /* BPE: lower first */
    size_t size;
} bigram;

typedef struct heap {
    bigram *a;
    size_t n, cap;
    bool spm;
} heap;

/* true when x should come out before y */
static bool bg_before(const heap *h, const bigram *x, const bigram *y) {
    if (h->spm) {
        if (x->score != y->score) return x->score > y->score;
    } else if (x->rank != y->rank) {
        return x->rank < y->rank;
    }
    return x->left < y->left;
}

static void heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->a = xrealloc(h->a, h->cap * sizeof *h->a);
    }
    size_t i = h->n++;
    h->a[i] = b;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(h, &h->a[i], &h->a[p])) break;
        bigram t = h->a[i];
        h->a[i] = h->a[p];
        h->a[p] = t;
        i = p;
    }
}

static bigram heap_pop(heap *h) {
    bigram top = h->a[0];
    h->a[0] = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && bg_before(h, &h->a[l], &h->a[m])) m = l;
        if (r < h->n && bg_before(h, &h->a[r], &h->a[m])) m = r;
        if (m == i) break;
        bigram t = h->a[i];
        h->a[i] = h->a[m];
        h->a[m] = t;
        i = m;
    }
    return top;
}

typedef struct session {
    const llm_vocab *v;
    VEC(sym) syms;
    heap q;
    sb key;
} session;

static void split_chars(session *s, const char *text, size_t n) {
    s->syms.len = 0;
    size_t off = 0;
    int idx = 0;
    while (off < n) {
        size_t l = utf8_len((unsigned char)text[off]);
        if (l > n - off) l = n - off;
        sym y = {idx - 1, off + l == n ? -1 : idx + 1, text + off, l};
        vec_push(&s->syms, y);
        off += l;
        idx++;
    }
}

static int bpe_rank(session *s, const sym *l, const sym *r) {
    sb_clear(&s->key);
    sb_append(&s->key, l->text, l->n);
    sb_putc(&s->key, ' ');
    sb_append(&s->key, r->text, r->n);
    int64_t rank;
    return hmap_get(&s->v->merges, s->key.buf, s->key.len, &rank) ? (int)rank : -1;
}

/* Queues the merge of two neighbours when the tokenizer allows it: SPM
 * when their text is a token (by its score), BPE when they form a ranked
 * merge. */
static void try_bigram(session *s, int left, int right) {
    if (left < 0 || right < 0) return;
    sym *l = &s->syms.data[left], *r = &s->syms.data[right];
    bigram b = {left, right, 0, 0, l->n + r->n};
    if (s->q.spm) {
        int32_t id = llm_vocab_find(s->v, l->text, b.size);
        if (id < 0) return;
        b.score = s->v->tok[id].score;
    } else if ((b.rank = bpe_rank(s, l, r)) < 0) {
        return;
    }
    heap_push(&s->q, b);
}

/* Splits text into characters and merges the best pair until none is left;
 * the symbols that remain are the pieces. */
static void merge(session *s, const char *text, size_t n, bool spm) {
    split_chars(s, text, n);
    s->q.n = 0;
    s->q.spm = spm;
    for (size_t i = 1; i < s->syms.len; i++) try_bigram(s, (int)i - 1, (int)i);
    while (s->q.n) {
        bigram b = heap_pop(&s->q);
        sym *l = &s->syms.data[b.left], *r = &s->syms.data[b.right];
        /* Stale: one side merged since (a symbol only grows or empties). */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->syms.data[r->next].prev = b.left;
        try_bigram(s, l->prev, b.left);
        try_bigram(s, b.left, l->next);
    }
}

/* ---- SPM --------------------------------------------------------------- */

/* Every merge makes a vocabulary token, so a final symbol is either a token
 * or an unmerged character that falls back to its bytes. */
static void spm_emit(session *s, const sym *y, tok_out *o) {
    int32_t id = llm_vocab_find(s->v, y->text, y->n);
    if (id >= 0) {
        out_push(o, id);
        return;
    }
    for (size_t j = 0; j < y->n; j++) out_push(o, s->v->byte_tok[(unsigned char)y->text[j]]);
}

static void spm_tokenize(session *s, const char *text, size_t n, tok_out *o) {
    merge(s, text, n, true);
    for (int i = s->syms.len ? 0 : -1; i != -1; i = s->syms.data[i].next) spm_emit(s, &s->syms.data[i], o);
}

/* ---- BPE --------------------------------------------------------------- */

/* One pre-tokenized word, already in the byte-level alphabet. */
static void bpe_word(session *s, const char *w, size_t n, tok_out *o) {
    if (s->v->ignore_merges) {
        int32_t id = llm_vocab_find(s->v, w, n);
        if (id >= 0) {
            out_push(o, id);
            return;
        }
    }
    merge(s, w, n, false);
    for (size_t i = 0; i < s->syms.len; i++) {
        sym *y = &s->syms.data[i];
        if (y->n == 0) continue;
        int32_t id = llm_vocab_find(s->v, y->text, y->n);
        if (id >= 0) {
            out_push(o, id);
            continue;
        }
        for (size_t j = 0; j < y->n; j++) {
            int32_t bid = llm_vocab_find(s->v, y->text + j, 1);
            if (bid >= 0) out_push(o, bid);
        }
    }
}

typedef struct span {
    size_t off, len;
} span;
typedef VEC(span) span_vec;

/* Splits text by the pre-tokenizer's regexes into spans (byte offsets). */
static void pre_split(const llm_vocab *v, const char *text, size_t n, span_vec *out) {
    span_vec cur = {0}, next = {0};
    span all = {0, n};
    vec_push(&cur, all);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    for (int r = 0; r < v->n_rx; r++) {
        next.len = 0;
        for (size_t k = 0; k < cur.len; k++) {
            span sp = cur.data[k];
            const char *sub = text + sp.off;
            size_t start = 0, pos = 0;
            while (pos <= sp.len) {
                int rc = pcre2_match(v->rx[r], (PCRE2_SPTR)sub, sp.len, pos, 0, md, NULL);
                if (rc < 0) break;
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: step one character on */
                    pos = ms + (ms < sp.len ? utf8_len((unsigned char)sub[ms]) : 1);
                    continue;
                }
                if (ms > start) {
                    span g = {sp.off + start, ms - start};
                    vec_push(&next, g);
                }
                span m = {sp.off + ms, me - ms};
                vec_push(&next, m);
                start = pos = me;
            }
            if (start < sp.len) {
                span g = {sp.off + start, sp.len - start};
                vec_push(&next, g);
            }
        }
        span_vec t = cur;
        cur = next;
        next = t;
    }
    pcre2_match_data_free(md);
    vec_free(&next);
    *out = cur;
}

static void bpe_tokenize(session *s, const char *text, size_t n, tok_out *o) {
    span_vec spans = {0};
    pre_split(s->v, text, n, &spans);
    sb word;
    sb_init(&word);
    for (size_t k = 0; k < spans.len; k++) {
        sb_clear(&word);
        for (size_t i = 0; i < spans.data[k].len; i++) {
            char u[4];
            size_t l = utf8_put(s->v->byte_cp[(unsigned char)text[spans.data[k].off + i]], u);
            sb_append(&word, u, l);
        }
        bpe_word(s, word.buf, word.len, o);
    }
    sb_deinit(&word);
    vec_free(&spans);
}

/* ---- WordPiece --------------------------------------------------------- */

static bool wpm_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest match of one word (with its phantom-space prefix). */
static void wpm_word(const llm_vocab *v, const char *w, size_t n, tok_out *o) {
    int64_t before = o->n;
    for (size_t i = 0; i < n;) {
        size_t j = i + (size_t)v->max_len + 1 < n ? i + (size_t)v->max_len + 1 : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = llm_vocab_find(v, w + i, j - i)) >= 0) break;
        if (id < 0) { /* a piece cannot be spelled: the whole word is unknown */
            o->n = before;
            break;
        }
        out_push(o, id);
        i = j;
    }
    if (o->n == before && v->unk >= 0) out_push(o, v->unk);
}

/* NFD, lower case, drop controls, split at whitespace, and make each
 * punctuation mark, ASCII symbol and CJK ideograph its own word. */
static void wpm_tokenize(const llm_vocab *v, const char *text, size_t n, tok_out *o) {
    size_t ncp = 0;
    uint32_t *cps = u8_to_u32((const uint8_t *)text, n, NULL, &ncp);
    size_t nn = 0;
    uint32_t *nfd = cps ? u32_normalize(UNINORM_NFD, cps, ncp, NULL, &nn) : NULL;
    free(cps);
    sb word;
    sb_init(&word);
    sb_append(&word, "\xe2\x96\x81", 3);
    for (size_t i = 0; nfd && i <= nn; i++) {
        uint32_t c = i < nn ? nfd[i] : ' ';
        bool flush = false, alone = false;
        if (uc_is_property_white_space(c)) {
            flush = true;
        } else if (c == 0 || c == 0xFFFD || uc_is_general_category(c, UC_CATEGORY_C) ||
                   uc_is_general_category(c, UC_CATEGORY_Mn)) {
            continue; /* controls, and accents (lower-cased BERT strips them) */
        } else if (uc_is_general_category(c, UC_CATEGORY_P) || (c < 0x7F && uc_is_general_category(c, UC_CATEGORY_S)) ||
                   wpm_chinese(c)) {
            alone = true;
        }
        if ((flush || alone) && word.len > 3) {
            wpm_word(v, word.buf, word.len, o);
            word.len = 3;
        }
        if (flush) continue;
        char u[8];
        size_t l = utf8_put(uc_tolower(c), u);
        sb_append(&word, u, l);
        if (alone) {
            wpm_word(v, word.buf, word.len, o);
            word.len = 3;
        }
    }
    sb_deinit(&word);
    free(nfd);
}

/* ---- special-token partition and the entry point ----------------------- */

typedef struct frag {
    int32_t token; /* -1: raw text */
    size_t off, len;
} frag;
typedef VEC(frag) frag_vec;

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static void partition(const llm_vocab *v, const char *text, size_t n, bool parse_special,
                      frag_vec *out) {
    frag_vec cur = {0}, next = {0};
    if (n) {
        frag f = {-1, 0, n};
        vec_push(&cur, f);
    }
    for (int32_t si = 0; si < v->n_special; si++) {
        int32_t id = v->special[si];
        const tok_data *t = &v->tok[id];
        if (!parse_special && (t->attr & (LLM_TOK_CONTROL | LLM_TOK_UNKNOWN))) continue;
        next.len = 0;
        for (size_t k = 0; k < cur.len; k++) {
            frag f = cur.data[k];
            if (f.token >= 0) {
                vec_push(&next, f);
                continue;
            }
            size_t off = f.off, len = f.len;
            for (;;) {
                const char *m = len >= t->text.n ? memmem(text + off, len, t->text.s, t->text.n) : NULL;
                if (!m) {
                    if (len) {
                        frag r = {-1, off, len};
                        vec_push(&next, r);
                    }
                    break;
                }
                size_t mo = (size_t)(m - text);
                size_t left = mo - off;
                if (t->attr & LLM_TOK_LSTRIP)
                    while (left > 0 && is_space(text[off + left - 1])) left--;
                if (left) {
                    frag l = {-1, off, left};
                    vec_push(&next, l);
                }
                frag sp = {id, 0, 0};
                vec_push(&next, sp);
                size_t roff = mo + t->text.n, rlen = off + len - roff;
                if (t->attr & LLM_TOK_RSTRIP)
                    while (rlen > 0 && is_space(text[roff])) roff++, rlen--;
                off = roff;
                len = rlen;
                if (!len) break;
            }
        }
        frag_vec tmp = cur;
        cur = next;
        next = tmp;
    }
    vec_free(&next);
    *out = cur;
}

int64_t llm_tokenize(const llm_vocab *v, const char *text, size_t n, bool add_special,
                     bool parse_special, int32_t *out, int64_t cap) {
    tok_out o = {out, 0, cap};
    frag_vec frags = {0};
    partition(v, text, n, parse_special, &frags);
    session s = {.v = v};
    sb_init(&s.key);
    if (add_special && v->add_bos && v->bos >= 0) out_push(&o, v->bos);
    if (v->kind == LLM_VOCAB_SPM) {
        bool prev_special = true; /* the first text gets the space prefix */
        sb t;
        sb_init(&t);
        for (size_t k = 0; k < frags.len; k++) {
            frag f = frags.data[k];
            if (f.token >= 0) {
                out_push(&o, f.token);
                prev_special = true;
                continue;
            }
            sb_clear(&t);
            if (v->add_space_prefix && prev_special) sb_append(&t, "\xe2\x96\x81", 3);
            for (size_t i = 0; i < f.len; i++) {
                char c = text[f.off + i];
                if (c == ' ') sb_append(&t, "\xe2\x96\x81", 3);
                else sb_putc(&t, c);
            }
            spm_tokenize(&s, t.buf, t.len, &o);
            prev_special = false;
        }
        sb_deinit(&t);
    } else {
        for (size_t k = 0; k < frags.len; k++) {
            frag f = frags.data[k];
            if (f.token >= 0) out_push(&o, f.token);
            else if (v->kind == LLM_VOCAB_WPM) wpm_tokenize(v, text + f.off, f.len, &o);
            else bpe_tokenize(&s, text + f.off, f.len, &o);
        }
    }
    if (add_special && v->kind == LLM_VOCAB_WPM && v->sep >= 0) out_push(&o, v->sep);
    else if (add_special && v->add_eos && v->eos >= 0) out_push(&o, v->eos);
    vec_free(&frags);
    vec_free(&s.syms);
    free(s.q.a);
    sb_deinit(&s.key);
    return o.n <= cap ? o.n : -o.n;
}

int32_t *llm_tokenize_alloc(const llm_vocab *v, const char *text, size_t n, bool add_special, bool parse_special,
                            int64_t *count) {
    int64_t cap = (int64_t)n + 8; /* enough unless special tokens add many */
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    int64_t got = llm_tokenize(v, text, n, add_special, parse_special, ids, cap);
    if (got < 0) {
        ids = xrealloc(ids, sizeof(int32_t) * (size_t)-got);
        got = llm_tokenize(v, text, n, add_special, parse_special, ids, -got);
    }
    *count = got;
    return ids;
}

/* ---- detokenization ---------------------------------------------------- */

static void piece(const llm_vocab *v, int32_t id, bool special, sb *out) {
    if (id < 0 || id >= v->n) return;
    const tok_data *t = &v->tok[id];
    if (!special && (t->attr & (LLM_TOK_UNKNOWN | LLM_TOK_CONTROL))) return;
    if (t->attr & (LLM_TOK_UNKNOWN | LLM_TOK_CONTROL | LLM_TOK_USER)) {
        sb_append(out, t->text.s, t->text.n);
        return;
    }
    if (v->kind != LLM_VOCAB_BPE) {
        if (t->attr & LLM_TOK_NORMAL) {
            for (uint64_t i = 0; i < t->text.n; i++) {
                if (i + 2 < t->text.n && memcmp(t->text.s + i, "\xe2\x96\x81", 3) == 0) {
                    sb_putc(out, ' ');
                    i += 2;
                } else {
                    sb_putc(out, t->text.s[i]);
                }
            }
        } else if ((t->attr & LLM_TOK_BYTE) && t->text.n == 6) {
            sb_putc(out, (char)strtol(t->text.s + 3, NULL, 16));
        }
        return;
    }
    if (t->attr & LLM_TOK_NORMAL) {
        for (uint64_t i = 0; i < t->text.n;) {
            size_t l;
            uint32_t cp = utf8_decode(t->text.s + i, t->text.n - i, &l);
            int b = cp < 512 ? v->cp_byte[cp] : -1;
            if (b >= 0) sb_putc(out, (char)b);
            else sb_append(out, t->text.s + i, l); /* not in the alphabet: keep as is */
            i += l;
        }
    }
}

void llm_token_piece(const llm_vocab *v, int32_t id, bool special, sb *out) { piece(v, id, special, out); }

void llm_detokenize(const llm_vocab *v, const int32_t *ids, int64_t n, bool special, sb *out) {
    size_t start = out->len;
    bool remove_space = v->add_space_prefix;
    for (int64_t i = 0; i < n; i++) {
        size_t before = out->len;
        piece(v, ids[i], special, out);
        if (remove_space && out->len > before && out->buf[before] == ' ') {
            memmove(out->buf + before, out->buf + before + 1, out->len - before - 1);
            out->len--;
            out->buf[out->len] = 0;
        }
        remove_space = false;
    }
    if (!v->clean_spaces || out->len == start) return;
    /* The reference's clean-up: no space before ?!., ; " ' " -> "'";
     * " 's", " 'm", " 're", " 've" lose their space. */
    char *t = out->buf + start;
    size_t total = out->len - start, k = 1;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) k--;
        t[k++] = x;
    }
    total = k;
    k = 1;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
            k--;
            t[++i] = 0;
        }
        t[k++] = x;
    }
    total = k;
    k = 1;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < total) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') k--;
            else if (i + 2 < total) {
                char x2 = t[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) k--;
            }
        }
        t[k++] = x;
    }
    out->len = start + k;
    out->buf[out->len] = 0;
}
