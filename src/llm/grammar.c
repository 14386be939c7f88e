/* grammar.c — GBNF grammars (llama.cpp's syntax, so existing grammar files
 * work) compiled into a matcher that says which tokens can continue a valid
 * string.
 *
 * Parsing turns each rule into a flat list of elements: sequences of
 * terminals (character sets) and rule references, separated by ALT and
 * ended by END; repetitions become helper rules. Matching is a pushdown
 * automaton: a stack holds what is left to match (positions in the element
 * list, the next one on top), and the matcher keeps the set of stacks that
 * the text so far allows; an empty stack means the text is a complete
 * match. Characters are Unicode code points, decoded from the bytes that
 * tokens produce (a token may end inside a character).
 *
 * For speed the matcher is determinised lazily over bytes: every distinct
 * (set of stacks, pending UTF-8 bytes) is interned as a state, and every
 * (state, byte) transition is cached. A token mask walks a trie of the
 * vocabulary's byte strings from the current state, pruning at dead
 * transitions, and is cached per state: inside a JSON string, say, the
 * same state recurs at every step and its mask is computed once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

/* ---- grammar elements -------------------------------------------------- */

typedef enum ge_type {
    GE_END = 0,    /* end of a rule */
    GE_ALT,        /* start of another alternative */
    GE_RULE,       /* reference to rule value */
    GE_CHAR,       /* a character set: its first char (or range start) */
    GE_CHAR_NOT,   /* a negated set: its first char (or range start) */
    GE_RNG_UPPER,  /* upper bound of the range the previous element starts */
    GE_CHAR_ALT,   /* another char (or range start) of the same set */
    GE_ANY,        /* any character (.) */
} ge_type;

typedef struct ge {
    uint32_t type, value;
} ge;

typedef VEC(ge) ge_vec;
typedef VEC(uint32_t) u32_vec;

/* A matcher state: a set of stacks and the bytes of a character not yet
 * complete. */
typedef struct gstate {
    uint32_t set;
    uint8_t pn, need; /* pending bytes, and how many the character has */
    uint8_t pb[3];
} gstate;

enum { G_DEAD = UINT32_MAX, G_MAX_STATES = 1 << 20 };

/* The vocabulary as a trie of byte strings. */
typedef struct gnode {
    int32_t child, next; /* first child, next sibling (-1 = none) */
    int32_t tok;         /* first token ending here (-1), chained by tok_next */
    uint8_t byte;
} gnode;

struct llm_grammar {
    ge *els;
    uint32_t n_els;
    uint32_t *rule_start; /* n_rules */
    uint32_t n_rules, root;
    /* interned stacks and sets of stacks */
    u32_vec stack_data, stack_off, stack_len;
    hmap stack_index;
    u32_vec set_data, set_off, set_len;
    hmap set_index;
    VEC(gstate) states;
    hmap state_index;
    hmap trans; /* (state, byte) -> next state + 1 */
    uint32_t start, cur;
    /* vocabulary */
    const llm_vocab *vocab;
    int32_t n_vocab;
    VEC(gnode) trie;
    int32_t *tok_next;
    unsigned char *eog; /* per token */
    /* masks per state */
    hmap mask_index; /* state -> slot */
    VEC(unsigned char *) masks;
};

/* ---- parser ------------------------------------------------------------ */

typedef struct gparser {
    const char *src, *end, *p;
    VEC(char *) names; /* rule names, by id */
    hmap name_index;   /* name -> id */
    VEC(ge_vec) rules; /* rule bodies, by id */
    VEC(unsigned char) defined;
    tailor_error *err;
    int rc;
} gparser;

static int gp_fail(gparser *g, const char *at, const char *fmt, const char *what) {
    if (g->rc) return g->rc;
    int line = 1, col = 1;
    for (const char *q = g->src; q < at && q < g->end; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    char msg[160];
    snprintf(msg, sizeof msg, fmt, what);
    g->rc = err_set(g->err, TAILOR_EDATA, "grammar line %d, column %d: %s", line, col, msg);
    return g->rc;
}

static uint32_t gp_rule_id(gparser *g, const char *name, size_t n) {
    int64_t id;
    if (hmap_get(&g->name_index, name, n, &id)) return (uint32_t)id;
    hmap_put(&g->name_index, name, n, (int64_t)g->names.len);
    vec_push(&g->names, xstrndup(name, n));
    ge_vec empty = {0};
    vec_push(&g->rules, empty);
    vec_push(&g->defined, 0);
    return (uint32_t)(g->names.len - 1);
}

/* A fresh helper rule for a repetition or group: parent-N. */
static uint32_t gp_new_rule(gparser *g, const char *base) {
    char name[96];
    for (int i = (int)g->names.len;; i++) {
        snprintf(name, sizeof name, "%.60s-%d", base, i);
        int64_t taken;
        if (!hmap_get(&g->name_index, name, strlen(name), &taken)) break;
    }
    return gp_rule_id(g, name, strlen(name));
}

static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skips spaces and comments; newlines only when newline_ok. */
static void gp_space(gparser *g, bool newline_ok) {
    while (g->p < g->end) {
        char c = *g->p;
        if (c == ' ' || c == '\t' || ((c == '\n' || c == '\r') && newline_ok)) g->p++;
        else if (c == '#') {
            while (g->p < g->end && *g->p != '\n' && *g->p != '\r') g->p++;
        } else break;
    }
}

static int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or set: an escape or a UTF-8 sequence. */
static bool gp_char(gparser *g, uint32_t *cp) {
    const char *at = g->p;
    if (g->p >= g->end) return gp_fail(g, at, "unexpected end of input%s", ""), false;
    unsigned char c = (unsigned char)*g->p;
    if (c == '\\') {
        g->p++;
        if (g->p >= g->end) return gp_fail(g, at, "unfinished escape%s", ""), false;
        char e = *g->p++;
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t v = 0;
            for (int i = 0; i < digits; i++) {
                int h = g->p < g->end ? hex_val(*g->p) : -1;
                if (h < 0) return gp_fail(g, at, "bad \\%s escape: expected hex digits", e == 'x' ? "x" : e == 'u' ? "u" : "U"), false;
                v = v * 16 + (uint32_t)h;
                g->p++;
            }
            *cp = v;
            return true;
        }
        switch (e) {
        case 'n': *cp = '\n'; return true;
        case 'r': *cp = '\r'; return true;
        case 't': *cp = '\t'; return true;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': *cp = (uint32_t)e; return true;
        default: {
            char s[2] = {e, 0};
            return gp_fail(g, at, "unknown escape \\%s", s), false;
        }
        }
    }
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || g->p + len > g->end) return gp_fail(g, at, "invalid UTF-8%s", ""), false;
    uint32_t v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int i = 1; i < len; i++) {
        unsigned char d = (unsigned char)g->p[i];
        if ((d & 0xC0) != 0x80) return gp_fail(g, at, "invalid UTF-8%s", ""), false;
        v = (v << 6) | (d & 0x3F);
    }
    g->p += len;
    *cp = v;
    return true;
}

static void gp_alternates(gparser *g, const char *rule_name, ge_vec *out, bool nested);

/* A repetition of the elements out[from..] (the last item): x{min,max}
 * (max < 0: unbounded), written as helper rules as llama.cpp does. */
static void gp_repeat(gparser *g, const char *rule_name, ge_vec *out, size_t from, int min, int max) {
    size_t n = out->len - from;
    ge *item = xmalloc((n ? n : 1) * sizeof *item);
    memcpy(item, out->data + from, n * sizeof *item);
    out->len = from;
    for (int i = 0; i < min; i++)
        for (size_t k = 0; k < n; k++) vec_push(out, item[k]);
    if (max < 0) {
        /* star ::= item star | (empty) */
        uint32_t r = gp_new_rule(g, rule_name);
        ge_vec body = {0};
        for (size_t k = 0; k < n; k++) vec_push(&body, item[k]);
        vec_push(&body, ((ge){GE_RULE, r}));
        vec_push(&body, ((ge){GE_ALT, 0}));
        vec_push(&body, ((ge){GE_END, 0}));
        g->rules.data[r] = body;
        g->defined.data[r] = 1;
        vec_push(out, ((ge){GE_RULE, r}));
    } else if (max > min) {
        /* opt_1 ::= item opt_2 | ; ... ; opt_k ::= item | */
        uint32_t prev = UINT32_MAX;
        for (int i = max - min; i > 0; i--) {
            uint32_t r = gp_new_rule(g, rule_name);
            ge_vec body = {0};
            for (size_t k = 0; k < n; k++) vec_push(&body, item[k]);
            if (prev != UINT32_MAX) vec_push(&body, ((ge){GE_RULE, prev}));
            vec_push(&body, ((ge){GE_ALT, 0}));
            vec_push(&body, ((ge){GE_END, 0}));
            g->rules.data[r] = body;
            g->defined.data[r] = 1;
            prev = r;
        }
        vec_push(out, ((ge){GE_RULE, prev}));
    }
    free(item);
}

static bool gp_int(gparser *g, int *v) {
    const char *at = g->p;
    long x = 0;
    int digits = 0;
    while (g->p < g->end && *g->p >= '0' && *g->p <= '9' && digits < 6) x = x * 10 + (*g->p++ - '0'), digits++;
    if (!digits) return gp_fail(g, at, "expected a number%s", ""), false;
    *v = (int)x;
    return true;
}

static void gp_sequence(gparser *g, const char *rule_name, ge_vec *out, bool nested) {
    size_t last = out->len; /* where the last item starts */
    while (!g->rc && g->p < g->end) {
        const char *at = g->p;
        char c = *g->p;
        if (c == '"') {
            g->p++;
            last = out->len;
            while (!g->rc && g->p < g->end && *g->p != '"') {
                uint32_t cp;
                if (!gp_char(g, &cp)) return;
                vec_push(out, ((ge){GE_CHAR, cp}));
            }
            if (g->p >= g->end) {
                gp_fail(g, at, "unterminated string%s", "");
                return;
            }
            g->p++;
        } else if (c == '[') {
            g->p++;
            last = out->len;
            uint32_t start = GE_CHAR;
            if (g->p < g->end && *g->p == '^') g->p++, start = GE_CHAR_NOT;
            bool first = true;
            while (!g->rc && g->p < g->end && *g->p != ']') {
                uint32_t lo, hi;
                if (!gp_char(g, &lo)) return;
                vec_push(out, ((ge){first ? start : GE_CHAR_ALT, lo}));
                first = false;
                if (g->p + 1 < g->end && *g->p == '-' && g->p[1] != ']') {
                    g->p++;
                    if (!gp_char(g, &hi)) return;
                    if (hi < lo) {
                        gp_fail(g, at, "character range with its upper bound below its lower bound%s", "");
                        return;
                    }
                    vec_push(out, ((ge){GE_RNG_UPPER, hi}));
                }
            }
            if (g->p >= g->end) {
                gp_fail(g, at, "unterminated character set%s", "");
                return;
            }
            if (first) {
                gp_fail(g, at, "empty character set%s", "");
                return;
            }
            g->p++;
        } else if (is_word(c)) {
            const char *s = g->p;
            while (g->p < g->end && is_word(*g->p)) g->p++;
            last = out->len;
            vec_push(out, ((ge){GE_RULE, gp_rule_id(g, s, (size_t)(g->p - s))}));
        } else if (c == '(') {
            g->p++;
            gp_space(g, true);
            uint32_t r = gp_new_rule(g, rule_name);
            ge_vec body = {0};
            gp_alternates(g, rule_name, &body, true);
            g->rules.data[r] = body; /* the index may have moved: assign after */
            g->defined.data[r] = 1;
            if (g->rc) return;
            if (g->p >= g->end || *g->p != ')') {
                gp_fail(g, at, "expected ')' to close this group%s", "");
                return;
            }
            g->p++;
            last = out->len;
            vec_push(out, ((ge){GE_RULE, r}));
        } else if (c == '.') {
            g->p++;
            last = out->len;
            vec_push(out, ((ge){GE_ANY, 0}));
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == out->len) {
                gp_fail(g, at, "'%s' follows nothing to repeat", c == '*' ? "*" : c == '+' ? "+" : c == '?' ? "?" : "{");
                return;
            }
            g->p++;
            int min = 0, max = -1;
            if (c == '+') min = 1;
            else if (c == '?') max = 1;
            else if (c == '{') {
                gp_space(g, nested);
                if (!gp_int(g, &min)) return;
                gp_space(g, nested);
                max = min;
                if (g->p < g->end && *g->p == ',') {
                    g->p++;
                    gp_space(g, nested);
                    max = -1;
                    if (g->p < g->end && *g->p >= '0' && *g->p <= '9' && !gp_int(g, &max)) return;
                    gp_space(g, nested);
                }
                if (g->p >= g->end || *g->p != '}') {
                    gp_fail(g, at, "expected '}' to close the repetition%s", "");
                    return;
                }
                g->p++;
                if (max >= 0 && max < min) {
                    gp_fail(g, at, "repetition with its maximum below its minimum%s", "");
                    return;
                }
                /* Each bounded repeat is a rule: keep hostile files small. */
                if (min > 100000 || max > 100000) {
                    gp_fail(g, at, "repetition count above 100000%s", "");
                    return;
                }
            }
            gp_repeat(g, rule_name, out, last, min, max);
            last = out->len; /* a repetition is not repeated again */
        } else {
            break;
        }
        gp_space(g, nested);
    }
}

static void gp_alternates(gparser *g, const char *rule_name, ge_vec *out, bool nested) {
    gp_sequence(g, rule_name, out, nested);
    while (!g->rc && g->p < g->end && *g->p == '|') {
        vec_push(out, ((ge){GE_ALT, 0}));
        g->p++;
        gp_space(g, true);
        gp_sequence(g, rule_name, out, nested);
    }
    vec_push(out, ((ge){GE_END, 0}));
}

static void gp_rule(gparser *g) {
    const char *at = g->p;
    const char *s = g->p;
    while (g->p < g->end && is_word(*g->p)) g->p++;
    if (g->p == s) {
        char c[2] = {*at, 0};
        gp_fail(g, at, "expected a rule name, found '%s'", c);
        return;
    }
    char *name = xstrndup(s, (size_t)(g->p - s));
    uint32_t id = gp_rule_id(g, s, (size_t)(g->p - s));
    gp_space(g, false);
    if (g->end - g->p < 3 || memcmp(g->p, "::=", 3)) {
        gp_fail(g, g->p, "expected '::=' after the rule name '%s'", name);
        free(name);
        return;
    }
    g->p += 3;
    gp_space(g, true);
    if (g->defined.data[id]) {
        gp_fail(g, at, "rule '%s' is defined twice", name);
        free(name);
        return;
    }
    ge_vec body = {0};
    gp_alternates(g, name, &body, false);
    g->rules.data[id] = body;
    g->defined.data[id] = 1;
    free(name);
    if (g->rc) return;
    if (g->p < g->end && *g->p != '\n' && *g->p != '\r') {
        char c[2] = {*g->p, 0};
        gp_fail(g, g->p, "unexpected '%s' (expected the end of the line)", c);
        return;
    }
    gp_space(g, true);
}

/* ---- compiled grammar and stacks --------------------------------------- */

static bool is_end(const ge *e) { return e->type == GE_END || e->type == GE_ALT; }
static bool is_char(const ge *e) { return e->type == GE_CHAR || e->type == GE_CHAR_NOT || e->type == GE_ANY; }

/* Whether the set starting at pos matches cp. */
static bool match_char(const ge *e, uint32_t cp) {
    if (e->type == GE_ANY) return true;
    bool positive = e->type == GE_CHAR;
    do {
        if (e[1].type == GE_RNG_UPPER) {
            if (e->value <= cp && cp <= e[1].value) return positive;
            e += 2;
        } else {
            if (e->value == cp) return positive;
            e += 1;
        }
    } while (e->type == GE_CHAR_ALT);
    return !positive;
}

/* Whether some character in [lo, hi] can match the set at e. */
static bool match_range(const ge *e, uint32_t lo, uint32_t hi) {
    if (e->type == GE_ANY) return true;
    bool positive = e->type == GE_CHAR;
    do {
        uint32_t a = e->value, b = e[1].type == GE_RNG_UPPER ? e[1].value : a;
        if (positive && a <= hi && lo <= b) return true;
        if (!positive && a <= lo && hi <= b) return false; /* every candidate excluded */
        e += e[1].type == GE_RNG_UPPER ? 2 : 1;
    } while (e->type == GE_CHAR_ALT);
    return !positive;
}

/* The element after the character set at pos. */
static uint32_t after_char(const llm_grammar *g, uint32_t pos) {
    pos++;
    while (g->els[pos].type == GE_RNG_UPPER || g->els[pos].type == GE_CHAR_ALT) pos++;
    return pos;
}

static uint32_t intern(u32_vec *data, u32_vec *off, u32_vec *len, hmap *index, const uint32_t *v, uint32_t n) {
    int64_t id;
    if (hmap_get(index, (const char *)v, n * sizeof *v, &id)) return (uint32_t)id;
    vec_push(off, (uint32_t)data->len);
    vec_push(len, n);
    for (uint32_t i = 0; i < n; i++) vec_push(data, v[i]);
    hmap_put(index, (const char *)v, n * sizeof *v, (int64_t)(off->len - 1));
    return (uint32_t)(off->len - 1);
}

typedef struct expand_ctx {
    llm_grammar *g;
    u32_vec out; /* stack ids */
    u32_vec tmp;
    int depth;
} expand_ctx;

/* Expands the stack v[0..n) (top at the end) until its top is a character
 * set or it is empty; each result is interned into x->out. */
static void expand(expand_ctx *x, uint32_t *v, uint32_t n) {
    llm_grammar *g = x->g;
    if (n == 0 || is_char(&g->els[v[n - 1]])) {
        vec_push(&x->out, intern(&g->stack_data, &g->stack_off, &g->stack_len, &g->stack_index, v, n));
        return;
    }
    if (++x->depth > 4096) { /* left recursion is refused at compile time */
        x->depth--;
        return;
    }
    uint32_t top = v[n - 1];
    uint32_t rule = g->els[top].value;
    uint32_t *w = xmalloc(((size_t)n + 2) * sizeof *w);
    for (uint32_t alt = g->rule_start[rule];;) {
        uint32_t m = n - 1;
        memcpy(w, v, m * sizeof *w);
        if (!is_end(&g->els[top + 1])) w[m++] = top + 1;
        if (!is_end(&g->els[alt])) w[m++] = alt;
        expand(x, w, m);
        while (!is_end(&g->els[alt])) alt++;
        if (g->els[alt].type == GE_END) break;
        alt++;
    }
    free(w);
    x->depth--;
}

static int u32_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Interns a set of stack ids (sorted, unique); G_DEAD when empty. */
static uint32_t set_intern(llm_grammar *g, u32_vec *ids) {
    if (!ids->len) return G_DEAD;
    qsort(ids->data, ids->len, sizeof *ids->data, u32_cmp);
    size_t k = 0;
    for (size_t i = 0; i < ids->len; i++)
        if (!k || ids->data[k - 1] != ids->data[i]) ids->data[k++] = ids->data[i];
    ids->len = k;
    return intern(&g->set_data, &g->set_off, &g->set_len, &g->set_index, ids->data, (uint32_t)k);
}

static uint32_t state_intern(llm_grammar *g, gstate s) {
    if (s.set == G_DEAD) return G_DEAD;
    int64_t id;
    if (hmap_get(&g->state_index, (const char *)&s, sizeof s, &id)) return (uint32_t)id;
    if (g->states.len >= G_MAX_STATES) return G_DEAD; /* runaway grammar: refuse rather than grow */
    vec_push(&g->states, s);
    hmap_put(&g->state_index, (const char *)&s, sizeof s, (int64_t)(g->states.len - 1));
    return (uint32_t)(g->states.len - 1);
}

/* The set reached from set by one character. */
static uint32_t set_advance(llm_grammar *g, uint32_t set, uint32_t cp) {
    expand_ctx x = {.g = g};
    uint32_t off = g->set_off.data[set], n = g->set_len.data[set];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sid = g->set_data.data[off + i];
        uint32_t so = g->stack_off.data[sid], sl = g->stack_len.data[sid];
        if (!sl) continue;
        uint32_t top = g->stack_data.data[so + sl - 1];
        if (!match_char(&g->els[top], cp)) continue;
        x.tmp.len = 0;
        for (uint32_t k = 0; k + 1 < sl; k++) vec_push(&x.tmp, g->stack_data.data[so + k]);
        uint32_t next = after_char(g, top);
        if (!is_end(&g->els[next])) vec_push(&x.tmp, next);
        uint32_t *copy = xmalloc((x.tmp.len + 1) * sizeof *copy);
        if (x.tmp.len) memcpy(copy, x.tmp.data, x.tmp.len * sizeof *copy);
        expand(&x, copy, (uint32_t)x.tmp.len);
        free(copy);
    }
    uint32_t r = set_intern(g, &x.out);
    vec_free(&x.out);
    vec_free(&x.tmp);
    return r;
}

/* Whether a character beginning with the pending bytes can continue set. */
static bool set_viable(const llm_grammar *g, uint32_t set, const gstate *s) {
    uint32_t lo = 0, hi = 0;
    int rest = s->need - s->pn;
    uint32_t v = s->need == 2 ? s->pb[0] & 0x1F : s->need == 3 ? s->pb[0] & 0x0F : s->pb[0] & 0x07;
    for (int i = 1; i < s->pn; i++) v = (v << 6) | (s->pb[i] & 0x3F);
    lo = v << (6 * rest);
    hi = lo | ((1u << (6 * rest)) - 1);
    /* Only shortest forms: a prefix that can only end overlong (or beyond
     * U+10FFFF) is dead already. */
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (lo < min_cp[s->need]) lo = min_cp[s->need];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return false; /* surrogates are not characters */
    uint32_t off = g->set_off.data[set], n = g->set_len.data[set];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sid = g->set_data.data[off + i], sl = g->stack_len.data[sid];
        if (sl && match_range(&g->els[g->stack_data.data[g->stack_off.data[sid] + sl - 1]], lo, hi)) return true;
    }
    return false;
}

/* One byte from state st: the next state, or G_DEAD. Cached. */
static uint32_t step(llm_grammar *g, uint32_t st, unsigned char b) {
    uint64_t key = (uint64_t)st << 8 | b;
    int64_t got;
    if (hmap_get(&g->trans, (const char *)&key, sizeof key, &got)) return (uint32_t)(got - 1);
    gstate s = g->states.data[st], t = s;
    uint32_t next = G_DEAD;
    if (s.pn == 0) {
        if (b < 0x80) {
            t.set = set_advance(g, s.set, b);
            next = state_intern(g, t);
        } else {
            int need = (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
            if (need && b != 0xC0 && b != 0xC1 && b < 0xF5) {
                t.pn = 1, t.need = (uint8_t)need, t.pb[0] = b;
                if (set_viable(g, s.set, &t)) next = state_intern(g, t);
            }
        }
    } else if ((b & 0xC0) == 0x80) {
        if (s.pn + 1 == s.need) {
            uint32_t cp = s.need == 2 ? s.pb[0] & 0x1F : s.need == 3 ? s.pb[0] & 0x0F : s.pb[0] & 0x07;
            for (int i = 1; i < s.pn; i++) cp = (cp << 6) | (s.pb[i] & 0x3F);
            cp = (cp << 6) | (b & 0x3F);
            static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp >= min_cp[s.need] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF)) {
                gstate c = {.set = set_advance(g, s.set, cp)};
                next = state_intern(g, c);
            }
        } else {
            t.pb[t.pn++] = b;
            if (set_viable(g, s.set, &t)) next = state_intern(g, t);
        }
    }
    hmap_put(&g->trans, (const char *)&key, sizeof key, (int64_t)next + 1);
    return next;
}

/* ---- compile ----------------------------------------------------------- */

/* Rules that can match the empty string (a fixed point). */
static void nullable_rules(const llm_grammar *g, unsigned char *null) {
    memset(null, 0, g->n_rules);
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < g->n_rules; r++) {
            if (null[r]) continue;
            uint32_t p = g->rule_start[r];
            for (;;) {
                bool ok = true;
                uint32_t q = p;
                for (; !is_end(&g->els[q]); q++) {
                    if (g->els[q].type == GE_RULE) ok &= null[g->els[q].value] != 0;
                    else if (is_char(&g->els[q])) ok = false;
                }
                if (ok) {
                    null[r] = 1, changed = true;
                    break;
                }
                if (g->els[q].type == GE_END) break;
                p = q + 1;
            }
        }
    }
}

/* Left recursion would make expansion loop: find a rule that can reach
 * itself without consuming a character (a cycle in the graph of "rule a
 * can begin with rule b", found by depth-first search: linear, so a
 * grammar of many thousand rules compiles at once). Returns it, or -1. */
static int64_t left_recursive(const llm_grammar *g) {
    size_t n = g->n_rules;
    unsigned char *null = xmalloc(n + 1);
    nullable_rules(g, null);
    /* The edges, grouped by rule (CSR). */
    uint32_t *first = xcalloc(n + 1, sizeof *first);
    u32_vec to = {0};
    for (uint32_t r = 0; r < n; r++) {
        first[r] = (uint32_t)to.len;
        uint32_t p = g->rule_start[r];
        for (;;) {
            uint32_t q = p;
            for (; !is_end(&g->els[q]); q++) {
                if (g->els[q].type != GE_RULE) break;
                vec_push(&to, g->els[q].value);
                if (!null[g->els[q].value]) break;
            }
            while (!is_end(&g->els[q])) q++;
            if (g->els[q].type == GE_END) break;
            p = q + 1;
        }
    }
    first[n] = (uint32_t)to.len;
    /* colour: 0 unseen, 1 on the path, 2 done; the path holds (rule, next edge). */
    unsigned char *colour = xcalloc(n + 1, 1);
    uint32_t *path = xmalloc((2 * n + 2) * sizeof *path);
    int64_t bad = -1;
    for (uint32_t s = 0; s < n && bad < 0; s++) {
        if (colour[s]) continue;
        size_t depth = 0;
        path[0] = s, path[1] = first[s], colour[s] = 1, depth = 1;
        while (depth && bad < 0) {
            uint32_t r = path[2 * (depth - 1)], *e = &path[2 * (depth - 1) + 1];
            if (*e == first[r + 1]) {
                colour[r] = 2, depth--;
                continue;
            }
            uint32_t t = to.data[(*e)++];
            if (colour[t] == 1) bad = t;
            else if (!colour[t]) path[2 * depth] = t, path[2 * depth + 1] = first[t], colour[t] = 1, depth++;
        }
    }
    free(path);
    free(colour);
    vec_free(&to);
    free(first);
    free(null);
    return bad;
}

int llm_grammar_parse(const char *text, size_t n, const char *root, llm_grammar **out, tailor_error *err) {
    *out = NULL;
    gparser g = {.src = text, .end = text + n, .p = text, .err = err};
    hmap_init(&g.name_index, 64);
    if (!root) root = "root";
    gp_space(&g, true);
    while (!g.rc && g.p < g.end) gp_rule(&g);
    int64_t root_id = -1;
    for (size_t i = 0; i < g.names.len && !g.rc; i++) {
        if (!strcmp(g.names.data[i], root)) root_id = (int64_t)i;
        if (!g.defined.data[i]) g.rc = err_set(err, TAILOR_EDATA, "grammar: rule '%s' is used but not defined", g.names.data[i]);
    }
    if (!g.rc && root_id < 0) g.rc = err_set(err, TAILOR_EDATA, "grammar: no rule named '%s' (the start rule)", root);
    llm_grammar *gr = NULL;
    if (!g.rc) {
        gr = xcalloc(1, sizeof *gr);
        gr->n_rules = (uint32_t)g.rules.len;
        gr->rule_start = xmalloc(gr->n_rules * sizeof *gr->rule_start);
        size_t total = 0;
        for (size_t i = 0; i < g.rules.len; i++) total += g.rules.data[i].len;
        gr->els = xmalloc((total + 1) * sizeof *gr->els);
        for (size_t i = 0, at = 0; i < g.rules.len; i++) {
            gr->rule_start[i] = (uint32_t)at;
            memcpy(gr->els + at, g.rules.data[i].data, g.rules.data[i].len * sizeof *gr->els);
            at += g.rules.data[i].len;
        }
        gr->n_els = (uint32_t)total;
        gr->root = (uint32_t)root_id;
        int64_t lr = left_recursive(gr);
        if (lr >= 0) {
            g.rc = err_set(err, TAILOR_EDATA, "grammar: rule '%s' is left-recursive (it can start with itself)",
                           g.names.data[lr]);
            llm_grammar_free(gr);
            gr = NULL;
        }
    }
    for (size_t i = 0; i < g.names.len; i++) free(g.names.data[i]);
    for (size_t i = 0; i < g.rules.len; i++) vec_free(&g.rules.data[i]);
    vec_free(&g.names);
    hmap_deinit(&g.name_index);
    vec_free(&g.rules);
    vec_free(&g.defined);
    if (g.rc) return g.rc;
    hmap_init(&gr->stack_index, 256);
    hmap_init(&gr->set_index, 256);
    hmap_init(&gr->state_index, 256);
    hmap_init(&gr->trans, 1024);
    hmap_init(&gr->mask_index, 16);
    /* The start: the root rule, expanded. */
    expand_ctx x = {.g = gr};
    uint32_t *v = xmalloc(sizeof *v);
    /* The root's alternatives, each a stack of its own. */
    for (uint32_t alt = gr->rule_start[gr->root];;) {
        uint32_t m = 0;
        if (!is_end(&gr->els[alt])) v[m++] = alt;
        expand(&x, v, m);
        while (!is_end(&gr->els[alt])) alt++;
        if (gr->els[alt].type == GE_END) break;
        alt++;
    }
    free(v);
    gstate s0 = {.set = set_intern(gr, &x.out)};
    vec_free(&x.out);
    vec_free(&x.tmp);
    gr->start = gr->cur = state_intern(gr, s0);
    *out = gr;
    return 0;
}

void llm_grammar_free(llm_grammar *g) {
    if (!g) return;
    free(g->els);
    free(g->rule_start);
    vec_free(&g->stack_data);
    vec_free(&g->stack_off);
    vec_free(&g->stack_len);
    vec_free(&g->set_data);
    vec_free(&g->set_off);
    vec_free(&g->set_len);
    vec_free(&g->states);
    if (g->stack_index.slots) {
        hmap_deinit(&g->stack_index);
        hmap_deinit(&g->set_index);
        hmap_deinit(&g->state_index);
        hmap_deinit(&g->trans);
        hmap_deinit(&g->mask_index);
    }
    vec_free(&g->trie);
    free(g->tok_next);
    free(g->eog);
    for (size_t i = 0; i < g->masks.len; i++) free(g->masks.data[i]);
    vec_free(&g->masks);
    free(g);
}

void llm_grammar_reset(llm_grammar *g) { g->cur = g->start; }

/* Walks bytes from state st; G_DEAD when they cannot continue. */
static uint32_t walk(llm_grammar *g, uint32_t st, const char *s, size_t n) {
    for (size_t i = 0; i < n && st != G_DEAD; i++) st = step(g, st, (unsigned char)s[i]);
    return st;
}

bool llm_grammar_accept_text(llm_grammar *g, const char *s, size_t n) {
    uint32_t st = g->cur == G_DEAD ? G_DEAD : walk(g, g->cur, s, n);
    if (st == G_DEAD) return false;
    g->cur = st;
    return true;
}

bool llm_grammar_check_text(llm_grammar *g, const char *s, size_t n) {
    return g->cur != G_DEAD && walk(g, g->cur, s, n) != G_DEAD;
}

/* Whether a state's set holds an empty stack (complete) or a non-empty one. */
static bool set_has(const llm_grammar *g, uint32_t st, bool empty) {
    if (st == G_DEAD) return false;
    const gstate *s = &g->states.data[st];
    if (s->pn) return !empty;
    uint32_t off = g->set_off.data[s->set], n = g->set_len.data[s->set];
    for (uint32_t i = 0; i < n; i++)
        if ((g->stack_len.data[g->set_data.data[off + i]] == 0) == empty) return true;
    return false;
}

bool llm_grammar_complete(const llm_grammar *g) { return set_has(g, g->cur, true); }
bool llm_grammar_can_continue(const llm_grammar *g) { return set_has(g, g->cur, false); }

/* ---- tokens ------------------------------------------------------------ */

int llm_grammar_bind_vocab(llm_grammar *g, const llm_vocab *v) {
    if (g->vocab == v) return 0;
    g->vocab = v;
    g->n_vocab = llm_vocab_size(v);
    vec_free(&g->trie);
    free(g->tok_next);
    free(g->eog);
    for (size_t i = 0; i < g->masks.len; i++) free(g->masks.data[i]);
    g->masks.len = 0;
    hmap_deinit(&g->mask_index);
    hmap_init(&g->mask_index, 16);
    g->tok_next = xmalloc(((size_t)g->n_vocab + 1) * sizeof *g->tok_next);
    g->eog = xcalloc((size_t)g->n_vocab + 1, 1);
    vec_push(&g->trie, ((gnode){-1, -1, -1, 0}));
    sb piece;
    sb_init(&piece);
    for (int32_t t = 0; t < g->n_vocab; t++) {
        g->tok_next[t] = -1;
        g->eog[t] = llm_vocab_is_eog(v, t);
        sb_clear(&piece);
        llm_token_piece(v, t, false, &piece);
        if (!piece.len) continue; /* control tokens: never text of a grammar */
        int32_t node = 0;
        for (size_t i = 0; i < piece.len; i++) {
            uint8_t b = (uint8_t)piece.buf[i];
            int32_t c = g->trie.data[node].child;
            while (c >= 0 && g->trie.data[c].byte != b) c = g->trie.data[c].next;
            if (c < 0) {
                gnode nn = {-1, g->trie.data[node].child, -1, b};
                vec_push(&g->trie, nn);
                c = (int32_t)g->trie.len - 1;
                g->trie.data[node].child = c;
            }
            node = c;
        }
        g->tok_next[t] = g->trie.data[node].tok;
        g->trie.data[node].tok = t;
    }
    sb_deinit(&piece);
    return 0;
}

static void mask_walk(llm_grammar *g, int32_t node, uint32_t st, unsigned char *allowed) {
    for (int32_t c = g->trie.data[node].child; c >= 0; c = g->trie.data[c].next) {
        uint32_t nx = step(g, st, g->trie.data[c].byte);
        if (nx == G_DEAD) continue;
        for (int32_t t = g->trie.data[c].tok; t >= 0; t = g->tok_next[t]) allowed[t] = 1;
        mask_walk(g, c, nx, allowed);
    }
}

const unsigned char *llm_grammar_mask(llm_grammar *g) {
    int64_t slot;
    uint32_t st = g->cur;
    if (st != G_DEAD && hmap_get(&g->mask_index, (const char *)&st, sizeof st, &slot)) return g->masks.data[slot];
    unsigned char *m = xcalloc((size_t)g->n_vocab + 1, 1);
    if (st != G_DEAD) {
        mask_walk(g, 0, st, m);
        if (set_has(g, st, true))
            for (int32_t t = 0; t < g->n_vocab; t++) m[t] |= g->eog[t];
    }
    /* Bounded cache: a grammar with endless distinct states starts over. */
    if (g->masks.len >= 512) {
        for (size_t i = 0; i < g->masks.len; i++) free(g->masks.data[i]);
        g->masks.len = 0;
        hmap_deinit(&g->mask_index);
        hmap_init(&g->mask_index, 16);
    }
    vec_push(&g->masks, m);
    if (st != G_DEAD) hmap_put(&g->mask_index, (const char *)&st, sizeof st, (int64_t)(g->masks.len - 1));
    return m;
}

bool llm_grammar_token_allowed(llm_grammar *g, int32_t tok) {
    if (tok < 0 || tok >= g->n_vocab || g->cur == G_DEAD) return false;
    if (g->eog[tok]) return llm_grammar_complete(g);
    sb piece;
    sb_init(&piece);
    llm_token_piece(g->vocab, tok, false, &piece);
    bool ok = piece.len && walk(g, g->cur, piece.buf, piece.len) != G_DEAD;
    sb_deinit(&piece);
    return ok;
}

size_t llm_grammar_states(const llm_grammar *g) { return g->states.len; }

/* ---- combining grammars ----------------------------------------------- */

/* Copies GBNF text, renaming every rule: "root" becomes prefix and any other
 * name prefix-name. Literals, character sets and comments are copied as
 * they are, so several grammars can live in one file. */
void llm_grammar_rename(const char *src, const char *prefix, sb *out) {
    const char *p = src;
    while (*p) {
        char c = *p;
        if (c == '"' || c == '[') {
            char close = c == '"' ? '"' : ']';
            sb_putc(out, *p++);
            while (*p && *p != close) {
                if (*p == '\\' && p[1]) sb_putc(out, *p++);
                sb_putc(out, *p++);
            }
            if (*p) sb_putc(out, *p++);
        } else if (c == '#') {
            while (*p && *p != '\n') sb_putc(out, *p++);
        } else if (c == '{') { /* repetition counts are not names */
            while (*p && *p != '}') sb_putc(out, *p++);
            if (*p) sb_putc(out, *p++);
        } else if (is_word(c)) {
            const char *s = p;
            while (is_word(*p)) p++;
            if ((size_t)(p - s) == 4 && !strncmp(s, "root", 4)) sb_puts(out, prefix);
            else sb_printf(out, "%s-%.*s", prefix, (int)(p - s), s);
        } else {
            sb_putc(out, *p++);
        }
    }
}

/* ---- a trie of strings as rules --------------------------------------- */

typedef struct trie_gen {
    const char **s; /* sorted, unique */
    size_t *len;
    const char *rule;
    sb *out;
    uint32_t next; /* rules named so far */
} trie_gen;

static void put_literal(sb *out, const char *s, size_t n) {
    sb_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') sb_printf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) sb_printf(out, "\\x%02X", c);
        else sb_putc(out, (char)c);
    }
    sb_putc(out, '"');
}

/* The bytes common to s and t, backed off to a character boundary. */
static size_t common_chars(const char *s, size_t sn, const char *t, size_t tn, size_t from) {
    size_t d = from;
    while (d < sn && d < tn && s[d] == t[d]) d++;
    while (d > from && d < sn && ((unsigned char)s[d] & 0xC0) == 0x80) d--;
    return d;
}

/* The rule for strings [lo, hi), which share their first depth bytes:
 * one alternative per next character (its run of common bytes, then the
 * rule of what follows), and an empty one when a string ends here. */
static void trie_rule(trie_gen *t, uint32_t id, size_t lo, size_t hi, size_t depth) {
    sb line;
    sb_init(&line);
    if (id) sb_printf(&line, "%s-t%u ::= ", t->rule, id);
    else sb_printf(&line, "%s ::= ", t->rule);
    bool alt = false;
    typedef struct { size_t lo, hi, depth; uint32_t id; } pending;
    VEC(pending) kids = {0};
    for (size_t i = lo; i < hi;) {
        if (t->len[i] == depth) { /* sorted first: the string ends here */
            sb_puts(&line, alt ? " | \"\"" : "\"\"");
            alt = true;
            i++;
            continue;
        }
        /* The group that shares the next character. */
        unsigned char c = (unsigned char)t->s[i][depth];
        size_t clen = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        size_t j = i + 1;
        while (j < hi && t->len[j] >= depth + clen && !memcmp(t->s[j] + depth, t->s[i] + depth, clen)) j++;
        size_t d = common_chars(t->s[i], t->len[i], t->s[j - 1], t->len[j - 1], depth);
        if (alt) sb_puts(&line, " | ");
        alt = true;
        put_literal(&line, t->s[i] + depth, d - depth);
        if (j - i > 1 || t->len[i] > d) {
            pending k = {i, j, d, ++t->next};
            sb_printf(&line, " %s-t%u", t->rule, k.id);
            vec_push(&kids, k);
        }
        i = j;
    }
    sb_putc(&line, '\n');
    sb_append(t->out, line.buf, line.len);
    sb_deinit(&line);
    for (size_t k = 0; k < kids.len; k++) trie_rule(t, kids.data[k].id, kids.data[k].lo, kids.data[k].hi, kids.data[k].depth);
    vec_free(&kids);
}

static int str_ptr_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

size_t llm_grammar_trie(const char *const *strs, size_t n, const char *rule, sb *out) {
    const char **s = xmalloc((n + 1) * sizeof *s);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strs[i] ? strlen(strs[i]) : 0;
        if (len && len <= LLM_TRIE_MAX_LEN && utf8_check(strs[i], len) < 0) s[k++] = strs[i];
    }
    qsort(s, k, sizeof *s, str_ptr_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || strcmp(s[u - 1], s[i])) s[u++] = s[i];
    size_t *len = xmalloc((u + 1) * sizeof *len);
    for (size_t i = 0; i < u; i++) len[i] = strlen(s[i]);
    trie_gen t = {.s = s, .len = len, .rule = rule, .out = out};
    if (u) trie_rule(&t, 0, 0, u, 0);
    else sb_printf(out, "%s ::= [^\\x00-\\U0010FFFF]\n", rule); /* nothing: a rule no string matches */
    free(len);
    free(s);
    return u;
}
