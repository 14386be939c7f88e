/* jsonschema.c — JSON Schema to GBNF, and validation of JSON values
 * against the same subset of JSON Schema.
 *
 * The grammar is what makes a tool call valid by construction: decoded
 * under it, a model can only write JSON that the schema accepts. Two
 * choices make every generation end: lengths are bounded (strings, arrays,
 * whitespace), and objects have exactly the declared properties, in the
 * declared order (required ones always, optional ones or not), so a model
 * cannot wander into endless keys. Integer ranges are exact in the grammar
 * (digit patterns); a number's range is exact for non-negative integer
 * bounds and otherwise enforced by its sign only, which the validator
 * completes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

typedef struct sg {
    const cJSON *root;
    sb rules;   /* rule definitions, one per line */
    int next;   /* helper rule counter */
    tailor_error *err;
    int rc;
    VEC(char *) refs; /* $ref targets already emitted */
} sg;

static int sg_fail(sg *g, const char *path, const char *msg) {
    if (!g->rc) g->rc = err_set(g->err, TAILOR_EUNSUPPORTED, "JSON schema at %s: %s", path, msg);
    return g->rc;
}

/* A new rule name; its body is written by the caller. */
static void sg_name(sg *g, char *out, size_t n, const char *hint) {
    snprintf(out, n, "%s-%d", hint, g->next++);
}

/* A GBNF string literal of text. */
static void gbnf_literal(sb *o, const char *s, size_t n) {
    sb_putc(o, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') sb_printf(o, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) sb_printf(o, "\\x%02X", c);
        else sb_putc(o, (char)c);
    }
    sb_putc(o, '"');
}

/* The JSON text of a value, as a GBNF literal. */
static void json_literal(sb *o, const cJSON *v) {
    char *t = cJSON_PrintUnformatted(v);
    gbnf_literal(o, t, strlen(t));
    free(t);
}

static const char *const BASE_RULES =
    "ws ::= \" \"?\n"
    "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
    /* Bounded so that every value parses back exactly: integers below
     * 10^15 (doubles hold them), exponents of two digits. */
    "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,14})\n"
    "number ::= integer (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})?\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n";

/* ---- integer ranges as digit patterns --------------------------------- */

/* Alternatives matching the decimal numbers in [lo, hi] of equal length
 * (strings of digits). */
static void digits_range(sb *o, const char *lo, const char *hi, size_t n, bool *first) {
    if (n == 0) return;
    size_t i = 0;
    while (i < n && lo[i] == hi[i]) i++;
    if (i == n) {
        sb_printf(o, "%s\"%.*s\"", *first ? "" : " | ", (int)n, lo);
        *first = false;
        return;
    }
    /* Common prefix lo[0..i), then lo[i] < hi[i]. */
    bool lo_rest_min = true, hi_rest_max = true;
    for (size_t k = i + 1; k < n; k++) lo_rest_min &= lo[k] == '0', hi_rest_max &= hi[k] == '9';
    char pre[32];
    snprintf(pre, sizeof pre, "%.*s", (int)i, lo);
    size_t rest = n - i - 1;
    if (lo_rest_min && hi_rest_max) {
        sb_printf(o, "%s%s%s%s[%c-%c]", *first ? "" : " | ", i ? "\"" : "", pre, i ? "\" " : "", lo[i], hi[i]);
        if (rest) sb_printf(o, " [0-9]{%zu}", rest);
        *first = false;
        return;
    }
    /* lo[i] followed by lo's rest up to 99..9 */
    char a[32], b[32];
    snprintf(a, sizeof a, "%s", lo);
    snprintf(b, sizeof b, "%.*s", (int)(i + 1), lo);
    for (size_t k = i + 1; k < n; k++) b[k] = '9';
    b[n] = 0;
    digits_range(o, a, b, n, first);
    if (hi[i] - lo[i] > 1) {
        sb_printf(o, "%s%s%s%s[%c-%c]", *first ? "" : " | ", i ? "\"" : "", pre, i ? "\" " : "", lo[i] + 1, hi[i] - 1);
        if (rest) sb_printf(o, " [0-9]{%zu}", rest);
        *first = false;
    }
    snprintf(a, sizeof a, "%.*s", (int)(i + 1), hi);
    for (size_t k = i + 1; k < n; k++) a[k] = '0';
    a[n] = 0;
    digits_range(o, a, hi, n, first);
}

/* Alternatives for the non-negative integers in [lo, hi]. */
static void uint_range(sb *o, unsigned long long lo, unsigned long long hi, bool *first) {
    char ls[32], hs[32];
    while (lo <= hi) {
        snprintf(ls, sizeof ls, "%llu", lo);
        size_t n = strlen(ls);
        unsigned long long top = n >= 19 ? hi : 1;
        if (n < 19) {
            for (size_t k = 0; k < n; k++) top *= 10;
            top -= 1; /* the largest number of n digits */
        }
        unsigned long long end = top < hi ? top : hi;
        snprintf(hs, sizeof hs, "%llu", end);
        digits_range(o, ls, hs, n, first);
        if (end == hi) break;
        lo = end + 1;
    }
}

/* An integer in [lo, hi] (either may be absent). */
static void int_rule(sb *o, bool has_lo, long long lo, bool has_hi, long long hi) {
    const long long BIG = 999999999999999LL; /* 15 digits, as the integer rule */
    if (!has_lo) lo = -BIG;
    if (!has_hi) hi = BIG;
    bool first = true;
    if (lo < 0) {
        long long nhi = hi < 0 ? hi : -1;
        /* -x for x in [-nhi, -lo] */
        sb tmp;
        sb_init(&tmp);
        bool f2 = true;
        uint_range(&tmp, (unsigned long long)(-nhi), (unsigned long long)(-lo), &f2);
        sb_printf(o, "\"-\" (%s)", sb_str(&tmp));
        sb_deinit(&tmp);
        first = false;
    }
    if (hi >= 0) {
        if (!first) sb_puts(o, " | ");
        bool f2 = true;
        sb tmp;
        sb_init(&tmp);
        uint_range(&tmp, (unsigned long long)(lo > 0 ? lo : 0), (unsigned long long)hi, &f2);
        sb_printf(o, "(%s)", sb_str(&tmp));
        sb_deinit(&tmp);
    }
}

/* ---- schema -> rules --------------------------------------------------- */

static void sg_schema(sg *g, const cJSON *s, const char *path, char *name, size_t nn);

static const cJSON *sg_resolve(sg *g, const char *ref, const char *path) {
    const char *p = NULL;
    if (!strncmp(ref, "#/$defs/", 8)) p = ref + 8;
    else if (!strncmp(ref, "#/definitions/", 14)) p = ref + 14;
    const cJSON *defs = p ? cJSON_GetObjectItemCaseSensitive(g->root, ref[2] == '$' ? "$defs" : "definitions") : NULL;
    const cJSON *d = defs ? cJSON_GetObjectItemCaseSensitive(defs, p) : NULL;
    if (!d) sg_fail(g, path, "$ref must name an entry of $defs or definitions in the same schema");
    return d;
}

static int64_t int_of(const cJSON *v, bool *has) {
    *has = cJSON_IsNumber(v);
    return *has ? (int64_t)v->valuedouble : 0;
}

/* A rule for an object's properties: exactly those declared, in order. */
static void sg_object(sg *g, const cJSON *s, const char *path, const char *name) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    int n = cJSON_GetArraySize(props);
    if (n > 64) {
        sg_fail(g, path, "more than 64 properties");
        return;
    }
    char kv[64][64];
    bool required[64];
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        char sub[512], rn[64];
        snprintf(sub, sizeof sub, "%s.%s", path, p->string);
        sg_schema(g, p, sub, rn, sizeof rn);
        if (g->rc) return;
        sg_name(g, kv[i], sizeof kv[i], "kv");
        sb_printf(&g->rules, "%s ::= ", kv[i]);
        sb lit; /* the key as JSON text, then as a GBNF literal */
        sb_init(&lit);
        sb_json_str(&lit, p->string, strlen(p->string));
        gbnf_literal(&g->rules, lit.buf, lit.len);
        sb_deinit(&lit);
        sb_printf(&g->rules, " ws \":\" ws %s\n", rn);
        required[i] = false;
        const cJSON *r;
        cJSON_ArrayForEach(r, req) if (cJSON_IsString(r) && !strcmp(r->valuestring, p->string)) required[i] = true;
        i++;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r) || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring)) {
            sg_fail(g, path, "a required property is not among the properties");
            return;
        }
    }
    /* after_i: properties i.. when one is already written (each with a
     * comma); first_i: the same when none is. */
    char after[65][64], first[65][64];
    for (int k = n; k >= 0; k--) {
        sg_name(g, after[k], sizeof after[k], "after");
        sg_name(g, first[k], sizeof first[k], "first");
        if (k == n) {
            sb_printf(&g->rules, "%s ::= \"\"\n%s ::= \"\"\n", after[k], first[k]);
            continue;
        }
        if (required[k]) {
            sb_printf(&g->rules, "%s ::= \",\" ws %s %s\n", after[k], kv[k], after[k + 1]);
            sb_printf(&g->rules, "%s ::= %s %s\n", first[k], kv[k], after[k + 1]);
        } else {
            sb_printf(&g->rules, "%s ::= (\",\" ws %s)? %s\n", after[k], kv[k], after[k + 1]);
            sb_printf(&g->rules, "%s ::= %s %s | %s\n", first[k], kv[k], after[k + 1], first[k + 1]);
        }
    }
    sb_printf(&g->rules, "%s ::= \"{\" ws %s ws \"}\"\n", name, first[0]);
}

static void sg_array(sg *g, const cJSON *s, const char *path, const char *name) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    char in[64];
    char sub[512];
    snprintf(sub, sizeof sub, "%s[]", path);
    if (items) sg_schema(g, items, sub, in, sizeof in);
    else sg_schema(g, NULL, sub, in, sizeof in);
    if (g->rc) return;
    bool hmin, hmax;
    int64_t mn = int_of(cJSON_GetObjectItemCaseSensitive(s, "minItems"), &hmin);
    int64_t mx = int_of(cJSON_GetObjectItemCaseSensitive(s, "maxItems"), &hmax);
    if (!hmin || mn < 0) mn = 0;
    if (!hmax) mx = mn > LLM_SCHEMA_MAX_ITEMS ? mn : LLM_SCHEMA_MAX_ITEMS;
    if (mx < mn) {
        sg_fail(g, path, "maxItems is below minItems");
        return;
    }
    if (mx > 1000) {
        sg_fail(g, path, "maxItems above 1000");
        return;
    }
    if (mx == 0) {
        sb_printf(&g->rules, "%s ::= \"[\" ws \"]\"\n", name);
        return;
    }
    /* [ item ("," item){min-1, max-1} ] or empty when min is 0 */
    int64_t lo = mn > 0 ? mn - 1 : 0, hi = mx - 1;
    sb_printf(&g->rules, "%s ::= \"[\" ws %s%s (\",\" ws %s){%lld,%lld} ws %s\"]\"\n", name, mn == 0 ? "(" : "", in, in,
              (long long)lo, (long long)hi, mn == 0 ? ")? " : "");
}

static void sg_string(sg *g, const cJSON *s, const char *path, const char *name) {
    bool hmin, hmax;
    int64_t mn = int_of(cJSON_GetObjectItemCaseSensitive(s, "minLength"), &hmin);
    int64_t mx = int_of(cJSON_GetObjectItemCaseSensitive(s, "maxLength"), &hmax);
    if (cJSON_GetObjectItemCaseSensitive(s, "pattern")) {
        sg_fail(g, path, "pattern is not supported (use enum, or lengths)");
        return;
    }
    if (!hmin || mn < 0) mn = 0;
    if (!hmax) mx = mn > LLM_SCHEMA_MAX_STRING ? mn : LLM_SCHEMA_MAX_STRING;
    if (mx < mn) {
        sg_fail(g, path, "maxLength is below minLength");
        return;
    }
    if (mx > 100000) {
        sg_fail(g, path, "maxLength above 100000");
        return;
    }
    sb_printf(&g->rules, "%s ::= \"\\\"\" char{%lld,%lld} \"\\\"\"\n", name, (long long)mn, (long long)mx);
}

static void sg_number(sg *g, const cJSON *s, const char *path, const char *name, bool integer) {
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");
    const cJSON *xmn = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum"),
                *xmx = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    double lo = -INFINITY, hi = INFINITY;
    if (cJSON_IsNumber(mn)) lo = mn->valuedouble;
    if (cJSON_IsNumber(xmn)) lo = fmax(lo, integer ? floor(xmn->valuedouble) + 1 : xmn->valuedouble);
    if (cJSON_IsNumber(mx)) hi = mx->valuedouble;
    if (cJSON_IsNumber(xmx)) hi = fmin(hi, integer ? ceil(xmx->valuedouble) - 1 : xmx->valuedouble);
    if (lo > hi) {
        sg_fail(g, path, "the range is empty");
        return;
    }
    if (integer) {
        if (isfinite(lo)) lo = ceil(lo);
        if (isfinite(hi)) hi = floor(hi);
        if ((isfinite(lo) && fabs(lo) > 999999999999999.0) || (isfinite(hi) && fabs(hi) > 999999999999999.0)) {
            sg_fail(g, path, "integer bounds beyond 15 digits");
            return;
        }
        sb_printf(&g->rules, "%s ::= ", name);
        int_rule(&g->rules, isfinite(lo), (long long)lo, isfinite(hi), (long long)hi);
        sb_putc(&g->rules, '\n');
        return;
    }
    /* Non-negative integer bounds: exact (an integer part below hi with any
     * fraction, or hi itself); otherwise the sign, and the validator. */
    if (isfinite(lo) && lo >= 0 && isfinite(hi) && lo == floor(lo) && hi == floor(hi) && hi <= 9e15 &&
        !cJSON_IsNumber(xmn) && !cJSON_IsNumber(xmx) && hi <= 999999999999999.0) {
        sb_printf(&g->rules, "%s ::= ", name);
        if (hi > lo) {
            sb_putc(&g->rules, '(');
            int_rule(&g->rules, true, (long long)lo, true, (long long)hi - 1);
            sb_puts(&g->rules, ") (\".\" [0-9]{1,15})? | ");
        }
        sb_printf(&g->rules, "\"%lld\" (\".\" \"0\"{1,15})?\n", (long long)hi);
        return;
    }
    if (lo >= 0) sb_printf(&g->rules, "%s ::= (\"0\" | [1-9] [0-9]{0,14}) (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})?\n", name);
    else if (hi <= 0) sb_printf(&g->rules, "%s ::= \"-\" (\"0\" | [1-9] [0-9]{0,14}) (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})? | \"0\"\n", name);
    else sb_printf(&g->rules, "%s ::= number\n", name);
}

/* Any JSON value, nested at most 4 deep (so that generation ends). */
static void sg_any(sg *g, char *name, size_t nn) {
    for (int d = 4; d >= 0; d--) {
        char nm[32], inner[32];
        snprintf(nm, sizeof nm, "any%d", d);
        snprintf(inner, sizeof inner, "any%d", d + 1);
        if (!strstr(sb_str(&g->rules), nm)) {
            if (d == 4)
                sb_printf(&g->rules, "%s ::= \"\\\"\" char{0,%d} \"\\\"\" | number | boolean | null\n", nm,
                          LLM_SCHEMA_MAX_STRING);
            else
                sb_printf(&g->rules,
                          "%s ::= \"\\\"\" char{0,%d} \"\\\"\" | number | boolean | null | \"[\" ws (%s (\",\" ws %s){0,%d})? ws \"]\""
                          " | \"{\" ws (\"\\\"\" char{0,64} \"\\\"\" ws \":\" ws %s (\",\" ws \"\\\"\" char{0,64} \"\\\"\" ws \":\" ws %s){0,%d})? ws \"}\"\n",
                          nm, LLM_SCHEMA_MAX_STRING, inner, inner, LLM_SCHEMA_MAX_ITEMS - 1, inner, inner,
                          LLM_SCHEMA_MAX_ITEMS - 1);
        }
    }
    snprintf(name, nn, "any0");
}

static const char *const KNOWN[] = {"type", "properties", "required", "additionalProperties", "items", "minItems",
                                    "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                                    "exclusiveMaximum", "enum", "const", "anyOf", "oneOf", "$ref", "$defs",
                                    "definitions", "description", "title", "default", "examples", "$schema",
                                    "$id", "format", "pattern", NULL};

/* Writes the rules of schema s and its name into name. */
static void sg_schema(sg *g, const cJSON *s, const char *path, char *name, size_t nn) {
    if (g->rc) return;
    if (!s || cJSON_IsTrue(s) || (cJSON_IsObject(s) && !s->child)) {
        sg_any(g, name, nn);
        return;
    }
    if (!cJSON_IsObject(s)) {
        sg_fail(g, path, "a schema must be an object (or true)");
        return;
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, s) {
        bool known = false;
        for (int i = 0; KNOWN[i] && !known; i++) known = !strcmp(k->string, KNOWN[i]);
        if (!known) {
            char msg[128];
            snprintf(msg, sizeof msg, "keyword '%.60s' is not supported", k->string);
            sg_fail(g, path, msg);
            return;
        }
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (cJSON_IsString(ref)) {
        /* One rule per definition, so that recursive schemas work. */
        snprintf(name, nn, "ref-");
        size_t at = 4;
        for (const char *c = ref->valuestring; *c && at + 1 < nn; c++)
            name[at++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')) ? *c : '-';
        name[at] = 0;
        for (size_t i = 0; i < g->refs.len; i++)
            if (!strcmp(g->refs.data[i], name)) return;
        vec_push(&g->refs, xstrdup(name));
        const cJSON *d = sg_resolve(g, ref->valuestring, path);
        if (!d) return;
        char inner[64];
        sg_schema(g, d, ref->valuestring, inner, sizeof inner);
        sb_printf(&g->rules, "%s ::= %s\n", name, inner);
        return;
    }
    sg_name(g, name, nn, "v");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (cJSON_IsArray(en) || cn) {
        if (cJSON_IsArray(en) && !en->child) {
            sg_fail(g, path, "enum is empty");
            return;
        }
        /* Many strings (entity or item names): one trie, so that a decoding
         * step follows the few names that share what is written so far
         * rather than every alternative. */
        int n_str = 0;
        bool all_str = !cn;
        const cJSON *x;
        if (!cn) cJSON_ArrayForEach(x, en) all_str &= cJSON_IsString(x), n_str++;
        if (all_str && n_str >= 16) {
            const char **lits = xmalloc((size_t)n_str * sizeof *lits);
            int nl = 0;
            cJSON_ArrayForEach(x, en) {
                char *js = cJSON_PrintUnformatted(x); /* the JSON spelling, quotes included */
                js[strlen(js) - 1] = 0;
                lits[nl++] = js + 1;
            }
            char trie[160];
            snprintf(trie, sizeof trie, "%s-names", name);
            sb_printf(&g->rules, "%s ::= \"\\\"\" %s \"\\\"\"\n", name, trie);
            llm_grammar_trie(lits, (size_t)n_str, trie, &g->rules);
            for (int i = 0; i < nl; i++) free((char *)lits[i] - 1);
            free(lits);
            return;
        }
        sb_printf(&g->rules, "%s ::= ", name);
        if (cn) json_literal(&g->rules, cn);
        const cJSON *e, *list = cn ? NULL : en;
        bool first = !cn;
        cJSON_ArrayForEach(e, list) {
            if (!first) sb_puts(&g->rules, " | ");
            json_literal(&g->rules, e);
            first = false;
        }
        sb_putc(&g->rules, '\n');
        return;
    }
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!any) any = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    if (any) {
        if (!cJSON_IsArray(any) || !any->child) {
            sg_fail(g, path, "anyOf/oneOf must be a non-empty array");
            return;
        }
        sb alts;
        sb_init(&alts);
        const cJSON *a;
        int i = 0;
        cJSON_ArrayForEach(a, any) {
            char sub[512], rn[64];
            snprintf(sub, sizeof sub, "%s/anyOf[%d]", path, i++);
            sg_schema(g, a, sub, rn, sizeof rn);
            sb_printf(&alts, "%s%s", alts.len ? " | " : "", rn);
        }
        sb_printf(&g->rules, "%s ::= %s\n", name, sb_str(&alts));
        sb_deinit(&alts);
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsArray(type)) { /* ["string", "null"]: one alternative each */
        sb alts;
        sb_init(&alts);
        const cJSON *t;
        cJSON_ArrayForEach(t, type) {
            cJSON *one = cJSON_Duplicate(s, true);
            cJSON_ReplaceItemInObjectCaseSensitive(one, "type", cJSON_Duplicate(t, false));
            char rn[64];
            sg_schema(g, one, path, rn, sizeof rn);
            cJSON_Delete(one);
            sb_printf(&alts, "%s%s", alts.len ? " | " : "", rn);
        }
        sb_printf(&g->rules, "%s ::= %s\n", name, sb_str(&alts));
        sb_deinit(&alts);
        return;
    }
    const char *t = cJSON_IsString(type) ? type->valuestring : NULL;
    if (!t) {
        if (cJSON_GetObjectItemCaseSensitive(s, "properties")) t = "object";
        else if (cJSON_GetObjectItemCaseSensitive(s, "items")) t = "array";
        else {
            char inner[64];
            sg_any(g, inner, sizeof inner);
            sb_printf(&g->rules, "%s ::= %s\n", name, inner);
            return;
        }
    }
    if (!strcmp(t, "object")) sg_object(g, s, path, name);
    else if (!strcmp(t, "array")) sg_array(g, s, path, name);
    else if (!strcmp(t, "string")) sg_string(g, s, path, name);
    else if (!strcmp(t, "integer")) sg_number(g, s, path, name, true);
    else if (!strcmp(t, "number")) sg_number(g, s, path, name, false);
    else if (!strcmp(t, "boolean")) sb_printf(&g->rules, "%s ::= boolean\n", name);
    else if (!strcmp(t, "null")) sb_printf(&g->rules, "%s ::= null\n", name);
    else sg_fail(g, path, "unknown type");
}

int llm_schema_to_gbnf(const char *schema_json, sb *out, tailor_error *err) {
    /* JSON is UTF-8 (RFC 8259); its strings become literals of characters. */
    int64_t bad = utf8_check(schema_json, strlen(schema_json));
    if (bad >= 0) return err_set(err, TAILOR_EDATA, "JSON schema: not valid UTF-8 (byte %lld)", (long long)bad);
    cJSON *s = cJSON_Parse(schema_json);
    if (!s) return err_set(err, TAILOR_EDATA, "JSON schema: not valid JSON (near byte %ld)",
                           (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - schema_json : 0));
    sg g = {.root = s, .err = err};
    sb_init(&g.rules);
    char name[64];
    sg_schema(&g, s, "$", name, sizeof name);
    if (!g.rc) {
        sb_printf(out, "root ::= %s\n", name);
        sb_puts(out, BASE_RULES);
        sb_puts(out, sb_str(&g.rules));
    }
    for (size_t i = 0; i < g.refs.len; i++) free(g.refs.data[i]);
    vec_free(&g.refs);
    sb_deinit(&g.rules);
    cJSON_Delete(s);
    return g.rc;
}

/* ---- validation -------------------------------------------------------- */

typedef struct sv {
    const cJSON *root;
    tailor_error *err;
    int depth;
} sv;

static int sv_fail(sv *v, const char *path, const char *what) {
    return err_set(v->err, TAILOR_EDATA, "%s: %s", path, what);
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool type_is(const cJSON *x, const char *t) {
    if (!strcmp(t, "object")) return cJSON_IsObject(x);
    if (!strcmp(t, "array")) return cJSON_IsArray(x);
    if (!strcmp(t, "string")) return cJSON_IsString(x);
    if (!strcmp(t, "number")) return cJSON_IsNumber(x);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && fabs(x->valuedouble) < 9.1e15;
    if (!strcmp(t, "boolean")) return cJSON_IsBool(x);
    if (!strcmp(t, "null")) return cJSON_IsNull(x);
    return false;
}

static int sv_check(sv *v, const cJSON *s, const cJSON *x, const char *path) {
    if (!s || cJSON_IsTrue(s)) return 0;
    if (cJSON_IsFalse(s)) return sv_fail(v, path, "no value is allowed here");
    if (++v->depth > 64) return sv_fail(v, path, "nested too deeply");
    int rc = 0;
    char msg[256];
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (cJSON_IsString(ref)) {
        const char *r = ref->valuestring, *p = !strncmp(r, "#/$defs/", 8) ? r + 8 : !strncmp(r, "#/definitions/", 14) ? r + 14 : NULL;
        const cJSON *defs = p ? cJSON_GetObjectItemCaseSensitive(v->root, r[2] == '$' ? "$defs" : "definitions") : NULL;
        const cJSON *d = defs ? cJSON_GetObjectItemCaseSensitive(defs, p) : NULL;
        rc = d ? sv_check(v, d, x, path) : sv_fail(v, path, "the schema's $ref names nothing");
        v->depth--;
        return rc;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(type) && !type_is(x, type->valuestring)) {
        snprintf(msg, sizeof msg, "must be %s %s", strchr("aeiou", type->valuestring[0]) ? "an" : "a", type->valuestring);
        rc = sv_fail(v, path, msg);
    } else if (cJSON_IsArray(type)) {
        bool any = false;
        const cJSON *t;
        cJSON_ArrayForEach(t, type) any |= cJSON_IsString(t) && type_is(x, t->valuestring);
        if (!any) rc = sv_fail(v, path, "has none of the allowed types");
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (!rc && cJSON_IsArray(en)) {
        bool any = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, en) any |= cJSON_Compare(e, x, true);
        if (!any) rc = sv_fail(v, path, "is not one of the allowed values");
    }
    if (!rc && cn && !cJSON_Compare(cn, x, true)) rc = sv_fail(v, path, "is not the required value");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!any) any = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    if (!rc && cJSON_IsArray(any)) {
        tailor_error first = {0};
        bool ok = false;
        const cJSON *a;
        cJSON_ArrayForEach(a, any) {
            tailor_error e = {0};
            tailor_error *keep = v->err;
            v->err = &e;
            if (!sv_check(v, a, x, path)) ok = true;
            else if (!first.msg[0]) first = e;
            v->err = keep;
            if (ok) break;
        }
        if (!ok) {
            snprintf(msg, sizeof msg, "matches none of the alternatives (first: %.180s)", first.msg);
            rc = sv_fail(v, path, msg);
        }
    }
    if (!rc && cJSON_IsString(x)) {
        size_t n = utf8_chars(x->valuestring);
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minLength"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
        if (cJSON_IsNumber(mn) && (double)n < mn->valuedouble) {
            snprintf(msg, sizeof msg, "is shorter than %g characters", mn->valuedouble);
            rc = sv_fail(v, path, msg);
        } else if (cJSON_IsNumber(mx) && (double)n > mx->valuedouble) {
            snprintf(msg, sizeof msg, "is longer than %g characters", mx->valuedouble);
            rc = sv_fail(v, path, msg);
        }
    }
    if (!rc && cJSON_IsNumber(x)) {
        double d = x->valuedouble;
        const cJSON *b;
        if ((b = cJSON_GetObjectItemCaseSensitive(s, "minimum")) && cJSON_IsNumber(b) && d < b->valuedouble)
            snprintf(msg, sizeof msg, "must be at least %g", b->valuedouble), rc = sv_fail(v, path, msg);
        else if ((b = cJSON_GetObjectItemCaseSensitive(s, "maximum")) && cJSON_IsNumber(b) && d > b->valuedouble)
            snprintf(msg, sizeof msg, "must be at most %g", b->valuedouble), rc = sv_fail(v, path, msg);
        else if ((b = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum")) && cJSON_IsNumber(b) && d <= b->valuedouble)
            snprintf(msg, sizeof msg, "must be above %g", b->valuedouble), rc = sv_fail(v, path, msg);
        else if ((b = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum")) && cJSON_IsNumber(b) && d >= b->valuedouble)
            snprintf(msg, sizeof msg, "must be below %g", b->valuedouble), rc = sv_fail(v, path, msg);
    }
    if (!rc && cJSON_IsArray(x)) {
        int n = cJSON_GetArraySize(x);
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems"), *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
        if (cJSON_IsNumber(mn) && n < mn->valuedouble)
            snprintf(msg, sizeof msg, "has fewer than %g items", mn->valuedouble), rc = sv_fail(v, path, msg);
        else if (cJSON_IsNumber(mx) && n > mx->valuedouble)
            snprintf(msg, sizeof msg, "has more than %g items", mx->valuedouble), rc = sv_fail(v, path, msg);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items"), *e;
        int i = 0;
        cJSON_ArrayForEach(e, x) {
            if (rc || !items) break;
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%d]", path, i++);
            rc = sv_check(v, items, e, sub);
        }
    }
    if (!rc && cJSON_IsObject(x)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties"), *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties"), *r, *m;
        cJSON_ArrayForEach(r, req) {
            if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(x, r->valuestring)) {
                snprintf(msg, sizeof msg, "lacks the required property '%.100s'", r->valuestring);
                rc = sv_fail(v, path, msg);
                break;
            }
        }
        cJSON_ArrayForEach(m, x) {
            if (rc) break;
            char sub[512];
            snprintf(sub, sizeof sub, "%s.%s", path, m->string);
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, m->string);
            if (ps) rc = sv_check(v, ps, m, sub);
            else if (cJSON_IsFalse(addl)) {
                snprintf(msg, sizeof msg, "has a property '%.100s' the schema does not allow", m->string);
                rc = sv_fail(v, path, msg);
            } else if (cJSON_IsObject(addl)) rc = sv_check(v, addl, m, sub);
        }
    }
    v->depth--;
    return rc;
}

int llm_schema_validate(const char *schema_json, const char *json, tailor_error *err) {
    cJSON *s = cJSON_Parse(schema_json);
    if (!s) return err_set(err, TAILOR_EDATA, "JSON schema: not valid JSON");
    cJSON *x = cJSON_Parse(json);
    int rc;
    if (!x) rc = err_set(err, TAILOR_EDATA, "$: not valid JSON");
    else {
        sv v = {.root = s, .err = err};
        rc = sv_check(&v, s, x, "$");
    }
    cJSON_Delete(x);
    cJSON_Delete(s);
    return rc;
}
