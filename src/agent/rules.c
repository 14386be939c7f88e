/* rules.c — the rules backend: a conversational recommender with no
 * language model, so that `tailor chat` works on a fresh machine. It reads
 * a request with the catalogue itself — the values of its categorical
 * attributes (genres, with plurals and common synonyms), years and decades,
 * titles (full-text search), "like X", "not X / no X", "only ...", "more",
 * "why", likes and dislikes — turns it into calls of the same tools an LLM
 * would call, and writes the answer from their results. It implements the
 * backend interface, so the agent cannot tell it from a model. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/agent.h"

typedef struct lex {
    char *form;        /* lowercase words, single spaces */
    const char *attr;  /* attribute key */
    const char *value; /* the catalogue's value */
} lex;

typedef struct rules {
    pz_engine *e;
    bool built;
    VEC(lex) lex;
    const char *year_key; /* the numeric attribute years go to (NULL: none) */
    double year_lo, year_hi;
} rules;

/* Words people use for values that catalogues hold under other names. */
static const char *const SYNONYMS[][2] = {
    {"funny", "comedy"},          {"comedic", "comedy"},       {"humor", "comedy"},
    {"humour", "comedy"},         {"laugh", "comedy"},         {"scary", "horror"},
    {"frightening", "horror"},    {"spooky", "horror"},        {"romantic", "romance"},
    {"love story", "romance"},    {"love stories", "romance"}, {"animated", "animation"},
    {"cartoon", "animation"},     {"cartoons", "animation"},   {"anime", "animation"},
    {"kids", "children"},         {"kid", "children"},         {"family", "children"},
    {"children's", "children"},   {"childrens", "children"},   {"science fiction", "sci-fi"},
    {"scifi", "sci-fi"},          {"sci fi", "sci-fi"},        {"noir", "film-noir"},
    {"film noir", "film-noir"},   {"docs", "documentary"},     {"documentaries", "documentary"},
    {"suspense", "thriller"},     {"thrilling", "thriller"},   {"cowboy", "western"},
    {"gangster", "crime"},        {"heist", "crime"},          {"dramatic", "drama"},
    {"whodunit", "mystery"},      {"mysteries", "mystery"},    {"fantasies", "fantasy"},
    {"musicals", "musical"},      {"action-packed", "action"}, {"imax", "imax"},
};

static void lowercase(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static void lex_add(rules *r, const char *form, const char *attr, const char *value) {
    char *f = xstrdup(form);
    lowercase(f);
    for (size_t i = 0; i < r->lex.len; i++)
        if (!strcmp(r->lex.data[i].form, f)) {
            free(f);
            return;
        }
    vec_push(&r->lex, ((lex){f, attr, value}));
}

/* The vocabulary of the catalogue: every categorical value with its
 * plurals and spellings, and the synonyms whose target exists. */
static void build(rules *r) {
    if (r->built) return;
    r->built = true;
    int n;
    const pz_attr *at = pz_attributes(r->e, &n);
    for (int i = 0; i < n; i++) {
        if (at[i].numeric) {
            if (!strcasecmp(at[i].key, "year") || (!r->year_key && strstr(at[i].key, "year")))
                r->year_key = at[i].key, r->year_lo = at[i].lo, r->year_hi = at[i].hi;
            continue;
        }
        for (int v = 0; v < at[i].n_values; v++) {
            const char *val = at[i].values[v];
            if (!isalpha((unsigned char)val[0])) continue; /* "(no genres listed)" */
            char f[160];
            snprintf(f, sizeof f, "%s", val);
            lex_add(r, f, at[i].key, val);
            size_t l = strlen(f);
            char p[170];
            snprintf(p, sizeof p, "%s%s", f, (l && f[l - 1] == 's') || (l && f[l - 1] == 'x') ? "es" : "s");
            lex_add(r, p, at[i].key, val);
            if (l > 1 && f[l - 1] == 'y' && !strchr("aeiou", f[l - 2])) {
                snprintf(p, sizeof p, "%.*sies", (int)l - 1, f);
                lex_add(r, p, at[i].key, val);
            }
            if (strchr(f, '-')) { /* sci-fi: "sci fi", "scifi" */
                char sp[160], nosp[160];
                size_t a = 0, b = 0;
                for (size_t k = 0; f[k]; k++) {
                    sp[a++] = f[k] == '-' ? ' ' : f[k];
                    if (f[k] != '-') nosp[b++] = f[k];
                }
                sp[a] = nosp[b] = 0;
                lex_add(r, sp, at[i].key, val);
                lex_add(r, nosp, at[i].key, val);
            }
            for (size_t s = 0; s < sizeof SYNONYMS / sizeof SYNONYMS[0]; s++)
                if (!strcasecmp(SYNONYMS[s][1], val)) lex_add(r, SYNONYMS[s][0], at[i].key, val);
        }
    }
}

/* ---- reading a request ------------------------------------------------------- */

#define MAX_WORDS 128

typedef struct words {
    char buf[1024];
    char *w[MAX_WORDS];
    int n;
    unsigned char used[MAX_WORDS]; /* consumed by a recognised phrase */
} words;

/* Lowercase words: letters, digits, and ' - inside words. */
static void split(const char *text, words *w) {
    memset(w, 0, sizeof *w);
    snprintf(w->buf, sizeof w->buf, "%s", text);
    lowercase(w->buf);
    char *p = w->buf;
    while (*p && w->n < MAX_WORDS) {
        while (*p && !(isalnum((unsigned char)*p) || (unsigned char)*p >= 0x80 || *p == '\'')) p++;
        if (!*p) break;
        char *s = p;
        while (*p && (isalnum((unsigned char)*p) || (unsigned char)*p >= 0x80 || *p == '\'' || *p == '-')) p++;
        char *e = p;
        while (e > s && (e[-1] == '-' || e[-1] == '\'')) e--;
        if (*p) *p++ = 0;
        *e = 0;
        if (*s == '\'') s++; /* '90s */
        if (*s) w->w[w->n++] = s;
    }
}

static bool is(const words *w, int i, const char *word) { return i >= 0 && i < w->n && !strcmp(w->w[i], word); }

static bool is_any(const words *w, int i, const char *const *list) {
    for (; *list; list++)
        if (is(w, i, *list)) return true;
    return false;
}

static int find_word(const words *w, const char *word) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->w[i], word)) return i;
    return -1;
}

/* Whether words i.. start with the phrase (space-separated). */
static int phrase_at(const words *w, int i, const char *phrase) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s", phrase);
    int k = 0;
    for (char *sv_ = NULL, *t = strtok_r(buf, " ", &sv_); t; t = strtok_r(NULL, " ", &sv_), k++)
        if (!is(w, i + k, t)) return 0;
    return k;
}

static int find_phrase(const words *w, const char *phrase, int *len) {
    for (int i = 0; i < w->n; i++) {
        int l = phrase_at(w, i, phrase);
        if (l) {
            if (len) *len = l;
            return i;
        }
    }
    return -1;
}

/* What one request asks for. */
typedef struct req {
    pz_cond conds[PZ_MAX_CONDS];
    int n_conds;
    bool standing[PZ_MAX_CONDS]; /* stated as a rule ("no horror", "only before 2000") */
    int k;
    double novelty;
    bool has_novelty;
} req;

static void add_cond(req *q, const char *key, pz_op op, const char *value, bool standing) {
    for (int i = 0; i < q->n_conds; i++)
        if (!strcmp(q->conds[i].key, key) && q->conds[i].op == op && !strcasecmp(q->conds[i].value, value)) return;
    if (q->n_conds == PZ_MAX_CONDS) return;
    pz_cond *c = &q->conds[q->n_conds];
    snprintf(c->key, sizeof c->key, "%s", key);
    c->op = op;
    snprintf(c->value, sizeof c->value, "%s", value);
    q->standing[q->n_conds++] = standing;
}

static const char *const NEGATORS[] = {"no", "not", "without", "except", "excluding", "exclude", "avoid",
                                       "nothing", "never", "don't", "dont", "hate", "minus", "isn't", NULL};

/* A negator shortly before word i (and no "but" in between turning it
 * around: "no horror but comedy"). */
static bool negated(const words *w, int i) {
    for (int j = i - 1; j >= 0 && j >= i - 3; j--) {
        if (is(w, j, "but") || is(w, j, "and") || is(w, j, "or")) {
            /* "no horror or thrillers": the negation carries over a list */
            if (is(w, j, "but")) return false;
            continue;
        }
        if (is_any(w, j, NEGATORS)) return true;
        if (is(w, j, "than") && is(w, j - 1, "other")) return true;
    }
    return false;
}

/* "only" before word i: a standing rule of inclusion. */
static bool only_before(const words *w, int i) {
    for (int j = i - 1; j >= 0 && j >= i - 3; j--)
        if (is(w, j, "only") || is(w, j, "just")) return true;
    return false;
}

static bool from_now_on(const words *w) {
    return find_phrase(w, "from now on", NULL) >= 0 || find_word(w, "always") >= 0 || find_word(w, "anymore") >= 0 ||
           find_phrase(w, "any more", NULL) >= 0 || find_word(w, "never") >= 0;
}

static void read_values(rules *r, words *w, req *q) {
    for (int i = 0; i < w->n; i++) {
        if (w->used[i]) continue;
        const lex *best = NULL;
        int best_len = 0;
        for (size_t k = 0; k < r->lex.len; k++) {
            int l = phrase_at(w, i, r->lex.data[k].form);
            if (l > best_len) best = &r->lex.data[k], best_len = l;
        }
        if (!best) continue;
        bool neg = negated(w, i);
        bool standing = neg || only_before(w, i) || from_now_on(w);
        add_cond(q, best->attr, neg ? PZ_NOT : PZ_IS, best->value, standing);
        for (int k = 0; k < best_len; k++) w->used[i + k] = 1;
        i += best_len - 1;
    }
}

static bool year_word(const char *s, int *y) {
    if (strlen(s) != 4) return false;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    *y = atoi(s);
    return *y >= 1800 && *y <= 2100;
}

/* "90s", "1990s", "90's", "nineties": the first year of the decade. */
static bool decade_word(const char *s, int *y) {
    static const char *const names[] = {"twenties", "thirties", "forties", "fifties", "sixties", "seventies",
                                        "eighties", "nineties"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(s, names[i])) return (*y = 1920 + 10 * i), true;
    size_t l = strlen(s);
    char d[8];
    size_t n = 0;
    for (size_t i = 0; i < l && n < 6; i++)
        if (s[i] != '\'') d[n++] = s[i];
    d[n] = 0;
    if (n < 3 || d[n - 1] != 's') return false;
    d[--n] = 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)d[i])) return false;
    if (n == 2) {
        int v = atoi(d);
        if (v % 10) return false;
        *y = v >= 30 ? 1900 + v : 2000 + v;
        return true;
    }
    if (n == 4) {
        int v = atoi(d);
        if (v % 10) return false;
        *y = v;
        return true;
    }
    return false;
}

static void year_cond(rules *r, req *q, pz_op op, int year, bool standing) {
    if (!r->year_key) return;
    char v[16];
    snprintf(v, sizeof v, "%d", year);
    add_cond(q, r->year_key, op, v, standing);
}

/* A one-sided bound; negated ("nothing before 1990") it is the other side. */
static void year_bound(rules *r, req *q, pz_op op, int year, bool standing, bool neg) {
    if (neg) year_cond(r, q, op == PZ_GE ? PZ_LE : PZ_GE, op == PZ_GE ? year - 1 : year + 1, standing);
    else year_cond(r, q, op, year, standing);
}

static bool year_or_decade(const char *s, int *lo, int *hi) {
    int y;
    if (year_word(s, &y)) return (*lo = *hi = y), true;
    if (decade_word(s, &y)) return (*lo = y, *hi = y + 9), true;
    return false;
}

static void read_years(rules *r, words *w, req *q) {
    if (!r->year_key) return;
    bool standing_all = from_now_on(w);
    for (int i = 0; i < w->n; i++) {
        int lo, hi, lo2, hi2;
        bool neg = negated(w, i) || negated(w, i - 1);
        bool standing = standing_all || only_before(w, i) || neg; /* "nothing before 1990" is a rule */
        const char *prev = i > 0 ? w->w[i - 1] : "", *prev2 = i > 1 ? w->w[i - 2] : "";
        const char *rel = !strcmp(prev, "the") ? prev2 : prev; /* "before the 90s" */
        if (year_or_decade(w->w[i], &lo, &hi)) {
            w->used[i] = 1;
            bool than = !strcmp(prev, "than");
            bool older = than && (is(w, i - 2, "older") || is(w, i - 2, "earlier"));
            bool newer = than && (is(w, i - 2, "newer") || is(w, i - 2, "later"));
            bool range_next = (is(w, i + 1, "and") && !strcmp(rel, "between")) || is(w, i + 1, "to");
            if (range_next && i + 2 < w->n && year_or_decade(w->w[i + 2], &lo2, &hi2)) {
                year_cond(r, q, PZ_GE, lo, standing);
                year_cond(r, q, PZ_LE, hi2, standing);
                w->used[i + 2] = 1;
                i += 2;
            } else if (!strcmp(rel, "before") || !strcmp(rel, "pre") || older) {
                year_bound(r, q, PZ_LE, lo - 1, standing, neg);
            } else if (!strcmp(rel, "until") || !strcmp(rel, "till")) {
                year_bound(r, q, PZ_LE, hi, standing, neg);
            } else if (!strcmp(rel, "after") || !strcmp(rel, "post") || newer) {
                year_bound(r, q, PZ_GE, hi + 1, standing, neg);
            } else if (!strcmp(rel, "since")) {
                year_bound(r, q, PZ_GE, lo, standing, neg);
            } else if (is(w, i + 1, "or") && (is(w, i + 2, "later") || is(w, i + 2, "newer") || is(w, i + 2, "after"))) {
                year_bound(r, q, PZ_GE, lo, standing, neg);
            } else if (is(w, i + 1, "or") && (is(w, i + 2, "earlier") || is(w, i + 2, "older") || is(w, i + 2, "before"))) {
                year_bound(r, q, PZ_LE, hi, standing, neg);
            } else if (is(w, i + 1, "onwards") || is(w, i + 1, "onward") || (is(w, i + 1, "on") && !is(w, i + 2, "the"))) {
                year_bound(r, q, PZ_GE, lo, standing, neg);
            } else if (!than) {
                year_cond(r, q, PZ_GE, lo, standing);
                year_cond(r, q, PZ_LE, hi, standing);
            }
            continue;
        }
        /* "1990-1995" */
        const char *dash = strchr(w->w[i], '-');
        if (dash && dash - w->w[i] == 4) {
            char a[8], b[8];
            snprintf(a, sizeof a, "%.4s", w->w[i]);
            snprintf(b, sizeof b, "%.4s", dash + 1);
            int y, y2;
            if (year_word(a, &y) && year_word(b, &y2)) {
                year_cond(r, q, PZ_GE, y, standing);
                year_cond(r, q, PZ_LE, y2, standing);
                w->used[i] = 1;
            }
            continue;
        }
        static const char *const recent[] = {"recent", "new", "newer", "newest", "latest", "modern", NULL};
        static const char *const old[] = {"old", "older", "oldies", "classic", "classics", "vintage", NULL};
        if (is_any(w, i, recent) && !is(w, i + 1, "to") && !is(w, i + 1, "than")) {
            year_bound(r, q, PZ_GE, (int)r->year_hi - 5, standing, neg);
            w->used[i] = 1;
        } else if (is_any(w, i, old) && !is(w, i + 1, "than")) {
            year_bound(r, q, PZ_LE, 1979, standing, neg);
            w->used[i] = 1;
        }
    }
}

static int number_word(const char *s) {
    static const char *const n[] = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                    "eighteen", "nineteen", "twenty"};
    for (int i = 0; i < 20; i++)
        if (!strcmp(s, n[i])) return i + 1;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return 0;
        v = v * 10 + (*p - '0');
        if (v > 1000) return 0;
    }
    return v;
}

static void read_count(words *w, req *q) {
    q->k = 5;
    for (int i = 0; i < w->n; i++) {
        if (w->used[i]) continue;
        int v = number_word(w->w[i]);
        if (v >= 1 && v <= 50 && !(is(w, i, "one") && (is(w, i - 1, "this") || is(w, i - 1, "that") || is(w, i - 1, "the")))) {
            q->k = v;
            w->used[i] = 1;
            return;
        }
        if (phrase_at(w, i, "a couple")) q->k = 2;
        if (phrase_at(w, i, "a few")) q->k = 3;
    }
}

static void read_novelty(words *w, req *q) {
    static const char *const niche[] = {"obscure", "underrated", "unknown", "niche", "gems", "overlooked", NULL};
    for (int i = 0; i < w->n; i++) {
        if (is_any(w, i, niche) || (is(w, i, "less") && (is(w, i + 1, "popular") || is(w, i + 1, "known"))) ||
            (is(w, i, "lesser") && is(w, i + 1, "known")) || (is(w, i, "not") && is(w, i + 1, "mainstream")) ||
            (is(w, i, "off") && is(w, i + 1, "the") && is(w, i + 2, "beaten"))) {
            q->novelty = 0.7, q->has_novelty = true;
            w->used[i] = 1;
            if (i + 1 < w->n) w->used[i + 1] = 1;
        } else if ((is(w, i, "popular") || is(w, i, "mainstream") || is(w, i, "blockbusters") || is(w, i, "hits")) &&
                   !is(w, i - 1, "less") && !is(w, i - 1, "not")) {
            q->novelty = 0, q->has_novelty = true;
        }
    }
}

/* ---- titles ------------------------------------------------------------------ */

static const pz_item_info *title_of(rules *r, const char *phrase) {
    return strlen(phrase) < 2 ? NULL : pz_item_named(r->e, phrase);
}

/* The words from i to the end (or to a stop word), as a phrase. */
static void rest_phrase(const words *w, int i, char *out, size_t n) {
    static const char *const stops[] = {"but", "please", "and", "from", "in", "with", "without", "except", "for",
                                        "that", "which", "only", "before", "after", "since", "about", NULL};
    out[0] = 0;
    size_t at = 0;
    for (int k = i; k < w->n; k++) {
        if (k > i && is_any(w, k, stops)) break;
        at += (size_t)snprintf(out + at, at < n ? n - at : 0, "%s%s", at ? " " : "", w->w[k]);
        if (at >= n) break;
    }
}

/* ---- tool calls ---------------------------------------------------------------- */

static void add_call(llm_reply *out, const char *name, sb *args) {
    out->calls = realloc(out->calls, ((size_t)out->n_calls + 1) * sizeof *out->calls);
    out->calls[out->n_calls].name = xstrdup(name);
    out->calls[out->n_calls].arguments = sb_take(args);
    if (!out->calls[out->n_calls].arguments) out->calls[out->n_calls].arguments = xstrdup("{}");
    out->n_calls++;
}

/* Filter arguments (KEY, not_KEY, KEY_min, KEY_max) from conditions,
 * each written as ",\"name\":value". */
static void filter_args(const req *q, sb *o, bool standing_too) {
    char done[PZ_MAX_CONDS][80];
    int nd = 0;
    for (int i = 0; i < q->n_conds; i++) {
        const pz_cond *c = &q->conds[i];
        if (q->standing[i] && !standing_too) continue;
        char name[80];
        if (c->op == PZ_GE || c->op == PZ_LE) {
            snprintf(name, sizeof name, "%s_%s", c->key, c->op == PZ_GE ? "min" : "max");
            sb_printf(o, ",\"%s\":%s", name, c->value);
            continue;
        }
        snprintf(name, sizeof name, "%s%s", c->op == PZ_NOT ? "not_" : "", c->key);
        bool seen = false;
        for (int d = 0; d < nd && !seen; d++) seen = !strcmp(done[d], name);
        if (seen) continue;
        snprintf(done[nd++], sizeof done[0], "%s", name);
        sb_printf(o, ",\"%s\":[", name);
        int k = 0;
        for (int j = i; j < q->n_conds; j++) {
            if ((q->standing[j] && !standing_too) || strcmp(q->conds[j].key, c->key) || q->conds[j].op != c->op) continue;
            if (k++) sb_putc(o, ',');
            sb_json_str(o, q->conds[j].value, strlen(q->conds[j].value));
        }
        sb_putc(o, ']');
    }
}

/* Standing conditions become user_profile constraint calls. */
static void standing_calls(const req *q, llm_reply *out) {
    for (int i = 0; i < q->n_conds; i++) {
        if (!q->standing[i]) continue;
        const pz_cond *c = &q->conds[i];
        sb a;
        sb_init(&a);
        sb_puts(&a, "{\"action\":\"constraint\",\"attribute\":");
        sb_json_str(&a, c->key, strlen(c->key));
        sb_printf(&a, ",\"op\":\"%s\",\"value\":",
                  c->op == PZ_IS ? "is" : c->op == PZ_NOT ? "not" : c->op == PZ_GE ? ">=" : "<=");
        if (c->op == PZ_GE || c->op == PZ_LE) sb_puts(&a, c->value);
        else sb_json_str(&a, c->value, strlen(c->value));
        sb_putc(&a, '}');
        add_call(out, "user_profile", &a);
    }
}

/* The last list call of the conversation before index end (name and
 * arguments), and the ids it and earlier lists showed. */
static const llm_msg *last_list_call(const llm_msg *msgs, int end) {
    for (int i = end - 1; i >= 0; i--)
        if (msgs[i].tool_calls && (strstr(msgs[i].tool_calls, "\"recommend\"") || strstr(msgs[i].tool_calls, "\"search\"") ||
                                   strstr(msgs[i].tool_calls, "\"similar_items\"")))
            return &msgs[i];
    return NULL;
}

/* The ids the conversation's lists showed, the most recent first (at most
 * 50: what the tools' exclude lists take). */
static void shown_ids(const llm_msg *msgs, int end, sb *o, int *count) {
    for (int i = end - 1; i >= 0 && *count < 50; i--) {
        if (strcmp(msgs[i].role, "tool") || !msgs[i].content) continue;
        cJSON *r = cJSON_Parse(msgs[i].content);
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "items")) {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "id"));
            if (!id || *count >= 50) continue;
            sb_printf(o, "%s", *count ? "," : "");
            sb_json_str(o, id, strlen(id));
            (*count)++;
        }
        cJSON_Delete(r);
    }
}

/* Words that say nothing about what to show. */
static const char *const FILLER[] = {
    "i", "me", "my", "we", "you", "a", "an", "the", "some", "any", "something", "anything", "movie", "movies", "film",
    "films", "show", "shows", "item", "items", "recommend", "recommendation", "recommendations", "suggest",
    "suggestion", "suggestions", "please", "want", "wanna", "would", "like", "to", "watch", "see", "give", "can",
    "could", "should", "what", "for", "tonight", "good", "great", "best", "top", "with", "and", "or", "of", "from",
    "in", "on", "is", "are", "be", "it", "that", "this", "let's", "lets", "get", "need", "looking", "look", "find",
    "search", "about", "pick", "picks", "some", "few", "couple", "again", "also", "too", "really", "very", "just",
    "only", "now", "then", "maybe", "one", "ones", "more", "other", "others", "another", "list", "titles", "title",
    "watching", "seen", "have", "has", "do", "did", "feel", "feeling", "mood", "kind", "sort", "type", "genre",
    "genres", "year", "years", "era", "made", "released", "set", "stuff", "things", "thing", "new", "old", "but",
    "no", "not", "without", "hey", "hi", "hello", "thanks", "thank", "ok", "okay", "yes", "sure", "fun", "nice",
    "cool", "tell", "us", "our", "less", "popular", "known", "lesser", "so", "much", "many", "all", "d", "m", "ll",
    "s", "t", "than", "before", "after", "since", "between", "until", "onwards", "later", "earlier", "older",
    "newer", "either", "neither", "nor", "those", "these", "them", "am", "was", "were", "will", "shall", "may",
    "might", "must", "into", "as", "at", "by", "up", "out", "off", "over", "under", "again", "further", "once",
    "here", "there", "when", "where", "why", "how", "which", "who", "whom", "whose", "if", "else", "instead",
    "mainstream", "blockbusters", "hits", "obscure", "underrated", "gems", "hidden", "unknown", "niche",
    "overlooked", "beaten", "path", "track", "enjoy", "love", "prefer", "favorite", "favourite", "don't", "dont",
    "never", "always", "anymore", "exclude", "excluding", "except", "avoid", "nothing", "hate", "minus", "isn't",
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "decade", "century", "featuring",
    "starring", "involving", "called", "named", "titled", NULL};

static bool leftover(const words *w, char *out, size_t n) {
    out[0] = 0;
    size_t at = 0;
    for (int i = 0; i < w->n; i++) {
        if (w->used[i] || is_any(w, i, FILLER) || number_word(w->w[i])) continue;
        at += (size_t)snprintf(out + at, at < n ? n - at : 0, "%s%s", at ? " " : "", w->w[i]);
        if (at >= n) break;
    }
    return out[0] != 0;
}

static int decide(rules *r, const llm_msg *msgs, int n, llm_reply *out) {
    build(r);
    const char *text = msgs[n - 1].content ? msgs[n - 1].content : "";
    words w;
    split(text, &w);
    if (w.n == 0) {
        out->text = xstrdup("Tell me what you are in the mood for: a genre, a decade, a title you liked. "
                            "I can also search, tell you about a title, and remember what you never want to see.");
        return 0;
    }
    static const char *const greet[] = {"hi", "hello", "hey", "hiya", "greetings", "yo", NULL};
    static const char *const thanks[] = {"thanks", "thank", "cheers", "thx", NULL};
    if ((is_any(&w, 0, greet) && w.n <= 3) || (is(&w, 0, "good") && (is(&w, 1, "morning") || is(&w, 1, "evening")) && w.n <= 3)) {
        out->text = xstrdup("Hello! Tell me what you feel like watching (a genre, a decade, a title you liked), "
                            "or ask for recommendations.");
        return 0;
    }
    if (is_any(&w, 0, thanks) && w.n <= 4) {
        out->text = xstrdup("You're welcome. Ask for more any time.");
        return 0;
    }
    if (is(&w, 0, "help") || find_phrase(&w, "what can you do", NULL) >= 0) {
        out->text = xstrdup("I can recommend items for you (\"three comedies from the 90s\"), find similar ones "
                            "(\"something like Toy Story\"), search (\"films about time travel\"), tell you about a "
                            "title, remember what you liked and what you never want (\"no horror\"), show \"more\", "
                            "and say \"why\".");
        return 0;
    }
    /* why: answered from the last results */
    if (is(&w, 0, "why") || find_phrase(&w, "explain", NULL) >= 0) {
        const llm_msg *last = NULL;
        for (int i = n - 2; i >= 0 && !last; i--)
            if (!strcmp(msgs[i].role, "tool") && msgs[i].content && strstr(msgs[i].content, "\"items\"")) last = &msgs[i];
        sb t;
        sb_init(&t);
        cJSON *res = last ? cJSON_Parse(last->content) : NULL;
        const cJSON *x, *items = cJSON_GetObjectItemCaseSensitive(res, "items");
        if (!cJSON_GetArraySize(items)) sb_puts(&t, "I have not shown you anything yet to explain.");
        else sb_puts(&t, "Here is why:");
        cJSON_ArrayForEach(x, items) {
            const char *title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "title"));
            const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "reason"));
            sb_printf(&t, "\n- %s: %s", title ? title : "?", reason ? reason : "it scored high for you");
        }
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(res, "standing");
        if (cJSON_GetArraySize(f)) {
            sb_puts(&t, "\n(Your standing constraints applied:");
            cJSON_ArrayForEach(x, f) sb_printf(&t, " %s", x->valuestring);
            sb_puts(&t, ")");
        }
        cJSON_Delete(res);
        out->text = sb_take(&t);
        return 0;
    }
    /* forget / reset */
    if (is(&w, 0, "forget") || is(&w, 0, "reset") || find_phrase(&w, "start over", NULL) >= 0 ||
        find_phrase(&w, "clear my", NULL) >= 0) {
        sb a;
        sb_init(&a);
        const char *what = find_word(&w, "constraints") >= 0 || find_word(&w, "rules") >= 0 ? "constraint"
                           : find_word(&w, "likes") >= 0                                     ? "like"
                           : find_word(&w, "dislikes") >= 0                                  ? "dislike"
                                                                                             : "all";
        sb_printf(&a, "{\"action\":\"forget\",\"value\":\"%s\"}", what);
        add_call(out, "user_profile", &a);
        return 0;
    }
    if (find_phrase(&w, "about me", NULL) >= 0 || find_phrase(&w, "my profile", NULL) >= 0 ||
        find_phrase(&w, "my constraints", NULL) >= 0 || find_phrase(&w, "what do i like", NULL) >= 0) {
        sb a;
        sb_init(&a);
        sb_puts(&a, "{\"action\":\"show\"}");
        add_call(out, "user_profile", &a);
        return 0;
    }
    /* likes and dislikes of titles: "I loved Heat", "I didn't like Cats" */
    static const char *const like_v[] = {"liked", "loved", "enjoyed", "like", "love", "adore", "adored", "enjoy", NULL};
    static const char *const dislike_v[] = {"hated", "disliked", "hate", "dislike", "detest", NULL};
    for (int i = 0; i < w.n; i++) {
        bool neg = is(&w, i - 1, "didn't") || is(&w, i - 1, "don't") || is(&w, i - 1, "dont") ||
                   is(&w, i - 1, "didnt") || (is(&w, i - 1, "not") && is(&w, i - 2, "did")) ||
                   (is(&w, i - 1, "not") && is(&w, i - 2, "do"));
        bool lk = is_any(&w, i, like_v), dk = is_any(&w, i, dislike_v) || (lk && neg);
        if (!(lk || dk) || !(is(&w, i - 1, "i") || is(&w, i - 2, "i") || is(&w, i - 3, "i") || is(&w, i - 1, "we")))
            continue;
        if (is(&w, i + 1, "to")) continue; /* "I'd like to watch" */
        char ph[256];
        rest_phrase(&w, i + 1, ph, sizeof ph);
        const pz_item_info *it = title_of(r, ph);
        if (!it) break; /* a genre or a wish, read below */
        sb a;
        sb_init(&a);
        sb_printf(&a, "{\"action\":\"%s\",\"item\":", dk ? "dislike" : "like");
        sb_json_str(&a, it->id, strlen(it->id));
        sb_putc(&a, '}');
        add_call(out, "user_profile", &a);
        return 0;
    }
    /* tell me about X */
    static const char *const info_p[] = {"tell me about", "tell me more about", "what is", "what's", "whats",
                                         "info on", "info about", "information about", "information on",
                                         "details on", "details about", "details of", "describe", "who is in",
                                         "who's in", "who stars in", "who directed", NULL};
    for (int p = 0; info_p[p]; p++) {
        int len, at = find_phrase(&w, info_p[p], &len);
        if (at < 0) continue;
        char ph[256];
        rest_phrase(&w, at + len, ph, sizeof ph);
        const pz_item_info *it = title_of(r, ph);
        if (!it) continue;
        sb a;
        sb_init(&a);
        sb_puts(&a, "{\"item\":");
        sb_json_str(&a, it->id, strlen(it->id));
        sb_putc(&a, '}');
        add_call(out, "item_info", &a);
        return 0;
    }
    req q = {0};
    /* like X / similar to X */
    static const char *const sim_p[] = {"similar to", "like", "resembling", "in the vein of", "such as", "same as",
                                        "along the lines of", "reminds me of", NULL};
    const pz_item_info *sim = NULL;
    for (int p = 0; sim_p[p] && !sim; p++) {
        int len, at = find_phrase(&w, sim_p[p], &len);
        if (at < 0) continue;
        if (!strcmp(sim_p[p], "like") && (is(&w, at - 1, "i") || is(&w, at - 1, "would") || is(&w, at - 1, "i'd") ||
                                           is(&w, at - 1, "d") || is(&w, at + 1, "to")))
            continue; /* "I'd like", "like to" */
        char ph[256];
        rest_phrase(&w, at + len, ph, sizeof ph);
        sim = title_of(r, ph);
        if (sim) {
            /* its words are the title's, not filters */
            char tb[256];
            snprintf(tb, sizeof tb, "%s", ph);
            int cnt = 0;
            for (char *sv_ = NULL, *t = strtok_r(tb, " ", &sv_); t; t = strtok_r(NULL, " ", &sv_)) cnt++;
            for (int k = 0; k < len + cnt && at + k < w.n; k++) w.used[at + k] = 1;
        }
    }
    read_years(r, &w, &q);
    read_values(r, &w, &q);
    read_count(&w, &q);
    read_novelty(&w, &q);
    standing_calls(&q, out);
    bool more = find_word(&w, "more") >= 0 || find_word(&w, "another") >= 0 || find_word(&w, "others") >= 0 ||
                find_word(&w, "else") >= 0 || find_word(&w, "next") >= 0 || find_phrase(&w, "other ones", NULL) >= 0 ||
                find_word(&w, "different") >= 0;
    if (sim) {
        sb a;
        sb_init(&a);
        sb_puts(&a, "{\"item\":");
        sb_json_str(&a, sim->id, strlen(sim->id));
        sb_printf(&a, ",\"k\":%d}", q.k);
        add_call(out, "similar_items", &a);
        return 0;
    }
    int nreq = 0;
    for (int i = 0; i < q.n_conds; i++) nreq += !q.standing[i];
    char rest[256];
    bool words_left = leftover(&w, rest, sizeof rest);
    /* A title that holds a genre word ("Star Wars"): the words name an
     * item, not a filter. */
    if (words_left && nreq) {
        char content[256];
        size_t at = 0;
        for (int i = 0; i < w.n && at < sizeof content; i++)
            if (!is_any(&w, i, FILLER) && !number_word(w.w[i]))
                at += (size_t)snprintf(content + at, sizeof content - at, "%s%s", at ? " " : "", w.w[i]);
        if (title_of(r, content)) {
            sb a;
            sb_init(&a);
            sb_puts(&a, "{\"query\":");
            sb_json_str(&a, content, strlen(content));
            sb_printf(&a, ",\"k\":%d}", q.k);
            add_call(out, "search", &a);
            return 0;
        }
    }
    const llm_msg *prev = last_list_call(msgs, n - 1);
    /* "more": the last list again, without what was shown */
    if (more && prev && !words_left) {
        cJSON *calls = cJSON_Parse(prev->tool_calls);
        const cJSON *c0 = cJSON_GetArrayItem(calls, 0);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c0, "name"));
        cJSON *args = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c0, "arguments"), true);
        if (!cJSON_IsObject(args)) {
            cJSON_Delete(args);
            args = cJSON_CreateObject();
        }
        {
            sb ex;
            sb_init(&ex);
            int cnt = 0;
            sb_putc(&ex, '[');
            shown_ids(msgs, n - 1, &ex, &cnt);
            sb_putc(&ex, ']');
            cJSON_DeleteItemFromObject(args, "exclude");
            if (name && strcmp(name, "search")) cJSON_AddItemToObject(args, "exclude", cJSON_Parse(sb_str(&ex)));
            sb_deinit(&ex);
            /* new filters of this message join the old ones */
            if (nreq) {
                sb extra;
                sb_init(&extra);
                sb_putc(&extra, '{');
                filter_args(&q, &extra, false);
                sb_putc(&extra, '}');
                if (extra.buf[1] == ',') memmove(extra.buf + 1, extra.buf + 2, extra.len - 1);
                cJSON *ex2 = cJSON_Parse(sb_str(&extra)), *it2;
                cJSON_ArrayForEach(it2, ex2) {
                    cJSON_DeleteItemFromObject(args, it2->string);
                    cJSON_AddItemToObject(args, it2->string, cJSON_Duplicate(it2, true));
                }
                cJSON_Delete(ex2);
                sb_deinit(&extra);
            }
        }
        char *at = cJSON_PrintUnformatted(args);
        sb a;
        sb_init(&a);
        sb_puts(&a, at);
        free(at);
        add_call(out, name ? name : "recommend", &a);
        cJSON_Delete(args);
        cJSON_Delete(calls);
        return 0;
    }
    /* search: words that are no genre, year or filler ("films about time travel") */
    static const char *const search_p[] = {"about", "with", "featuring", "starring", "find", "search", "involving",
                                           "where", "set", "titled", "called", "named", NULL};
    bool search_word = false;
    for (int i = 0; i < w.n && !search_word; i++) search_word = is_any(&w, i, search_p);
    if (words_left && (search_word || nreq == 0)) {
        sb a;
        sb_init(&a);
        sb_puts(&a, "{\"query\":");
        sb_json_str(&a, rest, strlen(rest));
        sb_printf(&a, ",\"k\":%d", q.k);
        filter_args(&q, &a, false);
        sb_putc(&a, '}');
        add_call(out, "search", &a);
        return 0;
    }
    if (nreq == 0 && out->n_calls > 0 && !more && find_word(&w, "recommend") < 0 && find_word(&w, "suggest") < 0 &&
        find_word(&w, "want") < 0 && find_word(&w, "show") < 0 && find_word(&w, "give") < 0)
        return 0; /* only standing rules were stated: nothing to list yet */
    sb a;
    sb_init(&a);
    sb_printf(&a, "{\"k\":%d", q.k);
    filter_args(&q, &a, false);
    if (q.has_novelty) sb_printf(&a, ",\"novelty\":%g", q.novelty);
    if (more) {
        sb ex;
        sb_init(&ex);
        int cnt = 0;
        shown_ids(msgs, n - 1, &ex, &cnt);
        if (cnt) sb_printf(&a, ",\"exclude\":[%s]", sb_str(&ex));
        sb_deinit(&ex);
    }
    sb_putc(&a, '}');
    add_call(out, "recommend", &a);
    return 0;
}

/* ---- answers -------------------------------------------------------------------- */

static void list_answer(const char *name, const cJSON *res, sb *t) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(res, "items"), *x;
    int n = cJSON_GetArraySize(items);
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(res, "filters"), *standing = cJSON_GetObjectItemCaseSensitive(res, "standing");
    sb f;
    sb_init(&f);
    cJSON_ArrayForEach(x, filters) sb_printf(&f, "%s%s", f.len ? ", " : "", x->valuestring);
    cJSON_ArrayForEach(x, standing) sb_printf(&f, "%s%s (standing)", f.len ? ", " : "", x->valuestring);
    if (!n) {
        sb_printf(t, "I found nothing that fits%s%s%s.", f.len ? " (" : "", sb_str(&f), f.len ? ")" : "");
        if (cJSON_GetArraySize(standing)) sb_puts(t, " Say \"forget my constraints\" to drop the standing ones.");
        sb_deinit(&f);
        return;
    }
    const char *like = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "like_title"));
    if (!strcmp(name, "similar_items")) sb_printf(t, "If you like %s, try:", like ? like : "that");
    else if (!strcmp(name, "search")) sb_printf(t, "Here is what I found%s%s%s:", f.len ? " (" : "", sb_str(&f), f.len ? ")" : "");
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "fallback")))
        sb_printf(t, "I don't know your taste yet, so here is what is popular%s%s%s:", f.len ? " (" : "", sb_str(&f),
                  f.len ? ")" : "");
    else sb_printf(t, "Here are %d picks for you%s%s%s:", n, f.len ? " (" : "", sb_str(&f), f.len ? ")" : "");
    int i = 0;
    cJSON_ArrayForEach(x, items) {
        const char *title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "title"));
        const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "reason"));
        sb_printf(t, "\n%d. %s", ++i, title ? title : "?");
        if (reason && strcmp(name, "search")) sb_printf(t, " — %s", reason);
    }
    sb_deinit(&f);
}

static void profile_answer(const cJSON *res, sb *t) {
    const char *changed = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "changed"));
    if (changed) {
        if (!strncmp(changed, "like ", 5)) sb_printf(t, "Noted: you liked %s.", changed + 5);
        else if (!strncmp(changed, "dislike ", 8)) sb_printf(t, "Noted: you did not like %s; I will not show it again.", changed + 8);
        else if (!strncmp(changed, "constraint ", 11)) sb_printf(t, "From now on: %s.", changed + 11);
        else sb_printf(t, "Done: %s.", changed);
        return;
    }
    const cJSON *x;
    sb_puts(t, "What I know of your taste:");
    int n = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(res, "likes")) sb_printf(t, "%s%s", n++ ? ", " : "\n- liked: ", x->valuestring);
    n = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(res, "dislikes")) sb_printf(t, "%s%s", n++ ? ", " : "\n- did not like: ", x->valuestring);
    n = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(res, "constraints")) sb_printf(t, "%s%s", n++ ? ", " : "\n- always: ", x->valuestring);
    if (t->len == strlen("What I know of your taste:")) sb_puts(t, " nothing yet.");
}

static void answer(const llm_msg *msgs, int n, sb *t) {
    int start = n;
    while (start > 0 && strcmp(msgs[start - 1].role, "user")) start--;
    /* The last list result is the answer's core; profile changes are
     * said first. */
    const llm_msg *list = NULL;
    const char *list_name = NULL;
    for (int i = start; i < n; i++) {
        if (strcmp(msgs[i].role, "tool")) continue;
        cJSON *res = cJSON_Parse(msgs[i].content ? msgs[i].content : "");
        const char *error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "error"));
        const char *name = msgs[i].name ? msgs[i].name : "";
        if (error) sb_printf(t, "%sI could not do that: %s.", t->len ? "\n" : "", error);
        else if (!strcmp(name, "user_profile")) {
            if (t->len) sb_putc(t, '\n');
            profile_answer(res, t);
        } else if (!strcmp(name, "item_info")) {
            const char *title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "title"));
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "text"));
            sb_printf(t, "%s%s", t->len ? "\n" : "", title ? title : "?");
            /* Found by description, not by name: say so. */
            if (cJSON_GetObjectItemCaseSensitive(res, "note")) sb_puts(t, " (the nearest match to that description)");
            const cJSON *x;
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(res, "attributes")) {
                if (cJSON_IsString(x)) sb_printf(t, "\n- %s: %s", x->string, x->valuestring);
                else if (cJSON_IsNumber(x)) sb_printf(t, "\n- %s: %g", x->string, x->valuedouble);
                else if (cJSON_IsArray(x)) {
                    sb_printf(t, "\n- %s:", x->string);
                    const cJSON *y;
                    int k = 0;
                    cJSON_ArrayForEach(y, x) if (cJSON_IsString(y)) sb_printf(t, "%s %s", k++ ? "," : "", y->valuestring);
                }
            }
            if (text) sb_printf(t, "\n%s", text);
        } else {
            list = &msgs[i], list_name = name;
        }
        cJSON_Delete(res);
    }
    if (list) {
        cJSON *res = cJSON_Parse(list->content);
        if (t->len) sb_putc(t, '\n');
        list_answer(list_name, res, t);
        cJSON_Delete(res);
    }
    if (!t->len) sb_puts(t, "Done.");
}

static int rules_complete(llm_backend *b, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                          llm_tool_choice choice, llm_stream_fn cb, void *ud, llm_reply *out, tailor_error *err) {
    rules *r = b->impl;
    memset(out, 0, sizeof *out);
    (void)tools, (void)err;
    if (n == 0) return 0;
    /* Tool results after the last user message: time to answer. */
    bool answered = false;
    for (int i = n - 1; i >= 0 && strcmp(msgs[i].role, "user"); i--) answered |= !strcmp(msgs[i].role, "tool");
    if (!answered && choice != LLM_TOOLS_NONE && n_tools > 0) {
        decide(r, msgs, n, out);
        if (out->n_calls) return 0;
    }
    sb t;
    sb_init(&t);
    if (out->text) {
        sb_puts(&t, out->text);
        free(out->text);
    } else {
        answer(msgs, n, &t);
    }
    out->text = sb_take(&t);
    if (cb && out->text) cb(ud, out->text, strlen(out->text));
    return 0;
}

static int32_t rules_count(llm_backend *b, const char *text, size_t n) {
    (void)b, (void)text;
    return (int32_t)(n / 4 + 1); /* no tokenizer: what context budgets need */
}

static int32_t rules_ctx(llm_backend *b) {
    (void)b;
    return 1 << 20;
}

static void rules_free(llm_backend *b) {
    rules *r = b->impl;
    for (size_t i = 0; i < r->lex.len; i++) free(r->lex.data[i].form);
    vec_free(&r->lex);
    free(r);
    free(b);
}

static const llm_backend_ops RULES_OPS = {.name = "rules", .complete = rules_complete, .set_mentions = NULL,
                                         .count_tokens = rules_count, .context_size = rules_ctx, .free = rules_free};

int agent_rules_new(pz_engine *e, llm_backend **out, tailor_error *err) {
    (void)err;
    rules *r = xcalloc(1, sizeof *r);
    r->e = e;
    llm_backend *b = xcalloc(1, sizeof *b);
    b->ops = &RULES_OPS;
    b->impl = r;
    *out = b;
    return 0;
}
