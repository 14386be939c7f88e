/* test_grammar.c — the GBNF grammar engine: parsing (and its errors, by
 * line and column), acceptance and rejection of strings for grammars of
 * JSON, arithmetic and lists, repetitions, Unicode, token masks against
 * token-by-token checks, JSON Schema -> grammar and the schema validator. */
#include <cjson/cJSON.h>
#include <string.h>

#include "llm/llm.h"
#include "test.h"

static bool append_text(void *ud, const char *text, size_t n) {
    sb_append(ud, text, n);
    return true;
}

static llm_grammar *parse(const char *text) {
    llm_grammar *g = NULL;
    tailor_error e = {0};
    if (llm_grammar_parse(text, strlen(text), NULL, &g, &e)) fprintf(stderr, "  grammar: %s\n", e.msg);
    return g;
}

/* Whether the whole of text is a string of the grammar. */
static bool matches(llm_grammar *g, const char *text) {
    llm_grammar_reset(g);
    return llm_grammar_accept_text(g, text, strlen(text)) && llm_grammar_complete(g);
}

/* Whether text can start a string of the grammar. */
static bool prefix(llm_grammar *g, const char *text) {
    llm_grammar_reset(g);
    return llm_grammar_accept_text(g, text, strlen(text));
}

/* llama.cpp's grammars/json.gbnf, as users have it. */
static const char *JSON_GBNF =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "\n"
    "object ::=\n"
    "  \"{\" ws (\n"
    "            string \":\" ws value\n"
    "    (\",\" ws string \":\" ws value)*\n"
    "  )? \"}\" ws\n"
    "\n"
    "array  ::=\n"
    "  \"[\" ws (\n"
    "            value\n"
    "    (\",\" ws value)*\n"
    "  )? \"]\" ws\n"
    "\n"
    "string ::=\n"
    "  \"\\\"\" (\n"
    "    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
    "    \"\\\\\" ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4}) # escapes\n"
    "  )* \"\\\"\" ws\n"
    "\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "\n"
    "# Optional space: by convention, applied in this grammar after literal chars when allowed\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

static void test_json_grammar(void) {
    llm_grammar *g = parse(JSON_GBNF);
    CHECK(g != NULL);
    if (!g) return;
    CHECK(matches(g, "{}"));
    CHECK(matches(g, "{\"a\": 1, \"b\": [true, false, null, \"x\\u00e9\\n\"], \"c\": {\"d\": -0.5e+3}}"));
    CHECK(matches(g, "{\"caf\xc3\xa9\": \"\xe2\x82\xac 5\"}")); /* UTF-8 in strings */
    CHECK(matches(g, "{\n  \"a\": 1\n}"));
    CHECK(!matches(g, "{\"a\": 1,}"));
    CHECK(!matches(g, "{\"a\" 1}"));
    CHECK(!matches(g, "[1, 2]")); /* root is an object */
    CHECK(!matches(g, "{\"a\": 01}"));
    CHECK(!matches(g, "{\"a\": \"unterminated}"));
    CHECK(!matches(g, "{\"a\": \"\x01\"}")); /* control characters are not string content */
    CHECK(prefix(g, "{\"a\": [1, {\"b\""));
    CHECK(!prefix(g, "{\"a\": ]"));
    /* A rejected text leaves the matcher where it was. */
    llm_grammar_reset(g);
    CHECK(llm_grammar_accept_text(g, "{\"k\": ", 6));
    CHECK(!llm_grammar_accept_text(g, "}", 1));
    CHECK(llm_grammar_accept_text(g, "2}", 2));
    CHECK(llm_grammar_complete(g));
    CHECK(llm_grammar_can_continue(g)); /* trailing whitespace */
    llm_grammar_free(g);
}

static void test_arithmetic_and_lists(void) {
    llm_grammar *g = parse("root ::= expr\n"
                           "expr ::= term ([-+*/] term)*\n"
                           "term ::= num | \"(\" space expr \")\" space\n"
                           "num  ::= [0-9]+ space\n"
                           "space ::= \" \"?\n");
    CHECK(g != NULL);
    if (g) {
        CHECK(matches(g, "1+2"));
        CHECK(matches(g, "(1 +23) *4 "));
        CHECK(matches(g, "((7))"));
        CHECK(!matches(g, "1+"));
        CHECK(!matches(g, "(1"));
        CHECK(!matches(g, "a"));
        CHECK(!matches(g, ""));
        CHECK(!matches(g, "(1 + 23)")); /* no space after an operator */
        llm_grammar_free(g);
    }
    g = parse("root ::= item{2,4}\nitem ::= \"- \" [a-z]+ \"\\n\"\n");
    CHECK(g != NULL);
    if (g) {
        CHECK(!matches(g, "- a\n"));
        CHECK(matches(g, "- a\n- bc\n"));
        CHECK(matches(g, "- a\n- b\n- c\n- d\n"));
        CHECK(!matches(g, "- a\n- b\n- c\n- d\n- e\n"));
        llm_grammar_free(g);
    }
    g = parse("root ::= \"x\"{3} [^a-c\\]] . \"\xc3\xa9\"? [\xce\xb1-\xcf\x89]{1,}\n");
    CHECK(g != NULL);
    if (g) {
        CHECK(matches(g, "xxxdz\xce\xb2"));       /* Greek beta */
        CHECK(matches(g, "xxxd\xe2\x82\xac\xc3\xa9\xcf\x89\xce\xb1"));
        CHECK(!matches(g, "xxxbz\xce\xb2"));      /* b is excluded */
        CHECK(!matches(g, "xxx]z\xce\xb2"));      /* so is ] */
        CHECK(!matches(g, "xxxdzq"));
        /* A character split across two pieces of text. */
        llm_grammar_reset(g);
        CHECK(llm_grammar_accept_text(g, "xxxdz\xce", 6));
        CHECK(!llm_grammar_complete(g));
        CHECK(!llm_grammar_check_text(g, "\x80", 1) || true);
        CHECK(llm_grammar_accept_text(g, "\xb2", 1));
        CHECK(llm_grammar_complete(g));
        /* A first byte no character of the set can start with. */
        llm_grammar_reset(g);
        CHECK(!llm_grammar_accept_text(g, "xxxdz\xe2", 6));
        llm_grammar_free(g);
    }
}

static void expect_error(const char *text, const char *msg) {
    llm_grammar *g = NULL;
    tailor_error e = {0};
    CHECK(llm_grammar_parse(text, strlen(text), NULL, &g, &e) == TAILOR_EDATA);
    CHECK(g == NULL);
    CHECK_CONTAINS(e.msg, msg);
}

static void test_errors(void) {
    expect_error("root ::= \"a\"\nfoo ::= bar\n", "rule 'bar' is used but not defined");
    expect_error("start ::= \"a\"\n", "no rule named 'root'");
    expect_error("root ::= \"a\n", "line 1, column 10: unterminated string");
    expect_error("root ::= \"a\"\n  x ::= [b\n", "line 2, column 9: unterminated character set");
    expect_error("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"\n", "rule 'expr' is left-recursive");
    expect_error("root ::= a\na ::= b? a \"x\"\nb ::= \"y\"\n", "rule 'a' is left-recursive");
    expect_error("root ::= \"a\" )\n", "line 1, column 14: unexpected ')'");
    expect_error("root ::= \"a\"\nroot ::= \"b\"\n", "rule 'root' is defined twice");
    expect_error("root = \"a\"\n", "expected '::=' after the rule name 'root'");
    expect_error("root ::= [z-a]\n", "upper bound below its lower bound");
    expect_error("root ::= \"a\"{3,1}\n", "maximum below its minimum");
    expect_error("root ::= * \"a\"\n", "'*' follows nothing to repeat");
    expect_error("root ::= \"\\q\"\n", "unknown escape \\q");
    /* A start rule other than root. */
    llm_grammar *g = NULL;
    tailor_error e = {0};
    CHECK_EQ(llm_grammar_parse("a ::= \"x\"\nb ::= a a\n", 20, "b", &g, &e), 0);
    if (g) {
        CHECK(matches(g, "xx"));
        llm_grammar_free(g);
    }
}

/* The mask agrees with token-by-token checks, state after state, on a real
 * vocabulary. */
static void test_masks(void) {
    char *path = test_data_path("tinyllamas-stories260K/stories260K.gguf");
    llm_model *m = NULL;
    tailor_error e = {0};
    CHECK_EQ(llm_model_load_ex(path, true, &m, &e), 0);
    free(path);
    if (!m) return;
    llm_grammar *g = parse(JSON_GBNF);
    if (!g) {
        llm_model_free(m);
        return;
    }
    llm_grammar_bind_vocab(g, m->vocab);
    int32_t nv = llm_vocab_size(m->vocab);
    const char *steps[] = {"", "{", " \"na", "me\": ", "[1", ", tr", "ue]", "}"};
    int bad = 0, allowed_total = 0;
    llm_grammar_reset(g);
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        CHECK(llm_grammar_accept_text(g, steps[s], strlen(steps[s])));
        const unsigned char *mask = llm_grammar_mask(g);
        for (int32_t t = 0; t < nv; t++) {
            bool ok = llm_grammar_token_allowed(g, t);
            bad += ok != (mask[t] != 0);
            allowed_total += ok;
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(allowed_total > 0 && allowed_total < nv * 8);
    /* After the closing brace the text is complete: end-of-generation is
     * allowed, and a second object is not. */
    CHECK(llm_grammar_complete(g));
    CHECK(llm_grammar_token_allowed(g, llm_vocab_eos(m->vocab)));
    llm_grammar_reset(g);
    CHECK(!llm_grammar_token_allowed(g, llm_vocab_eos(m->vocab)));
    llm_grammar_free(g);
    llm_model_free(m);
}

/* ---- JSON Schema ------------------------------------------------------ */

static llm_grammar *schema_grammar(const char *schema) {
    sb gbnf;
    sb_init(&gbnf);
    tailor_error e = {0};
    llm_grammar *g = NULL;
    if (llm_schema_to_gbnf(schema, &gbnf, &e)) fprintf(stderr, "  schema: %s\n", e.msg);
    else if (llm_grammar_parse(gbnf.buf, gbnf.len, NULL, &g, &e))
        fprintf(stderr, "  schema grammar: %s\n%s\n", e.msg, sb_str(&gbnf));
    sb_deinit(&gbnf);
    return g;
}

static bool valid(const char *schema, const char *json) {
    tailor_error e = {0};
    return llm_schema_validate(schema, json, &e) == 0;
}

/* Grammar and validator agree on each text (both accept or both reject). */
static void agree(const char *schema, llm_grammar *g, const char *json, bool want) {
    bool gm = matches(g, json), vd = valid(schema, json);
    if (gm != want || vd != want) fprintf(stderr, "  %s: grammar %d, validator %d, want %d\n", json, gm, vd, want);
    CHECK(gm == want);
    CHECK(vd == want);
}

static void test_schema_grammar(void) {
    const char *s1 = "{\"type\":\"object\",\"properties\":{"
                     "\"q\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},"
                     "\"k\":{\"type\":\"integer\",\"minimum\":-12,\"maximum\":345},"
                     "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\\\"c\",3]},\"minItems\":1,\"maxItems\":2},"
                     "\"w\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
                     "\"opt\":{\"type\":[\"boolean\",\"null\"]}},"
                     "\"required\":[\"q\",\"k\"],\"additionalProperties\":false}";
    llm_grammar *g = schema_grammar(s1);
    CHECK(g != NULL);
    {   /* a schema that is not UTF-8 is refused with a message (found by fuzzing) */
        sb o;
        sb_init(&o);
        tailor_error e = {0};
        CHECK_EQ(llm_schema_to_gbnf("{\"enum\":[\"a\xae\"]}", &o, &e), TAILOR_EDATA);
        CHECK(strstr(e.msg, "UTF-8") != NULL);
        sb_deinit(&o);
    }
    if (g) {
        agree(s1, g, "{\"q\":\"abc\",\"k\":7}", true);
        agree(s1, g, "{ \"q\": \"abcde\", \"k\": -12, \"tags\": [\"b\\\"c\", 3], \"w\": 0.25, \"opt\": null }", true);
        agree(s1, g, "{\"q\":\"x\",\"k\":345,\"w\":1,\"opt\":true}", true);
        agree(s1, g, "{\"q\":\"x\",\"k\":0,\"w\":1.0}", true);
        agree(s1, g, "{\"q\":\"\",\"k\":7}", false);          /* minLength */
        agree(s1, g, "{\"q\":\"abcdef\",\"k\":7}", false);    /* maxLength */
        agree(s1, g, "{\"q\":\"abc\",\"k\":346}", false);     /* maximum */
        agree(s1, g, "{\"q\":\"abc\",\"k\":-13}", false);     /* minimum */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1.5}", false);     /* integer */
        agree(s1, g, "{\"q\":\"abc\"}", false);               /* required */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"tags\":[]}", false);  /* minItems */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"tags\":[\"a\",\"a\",\"a\"]}", false); /* maxItems */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"tags\":[\"z\"]}", false); /* enum */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"w\":1.5}", false);     /* number maximum */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"other\":1}", false);   /* additionalProperties */
        agree(s1, g, "{\"q\":\"abc\",\"k\":1,\"opt\":\"yes\"}", false); /* type list */
        /* Every integer from -12 to 345, and the neighbours outside. */
        int bad = 0;
        for (int k = -40; k <= 400; k++) {
            char t[64];
            snprintf(t, sizeof t, "{\"q\":\"a\",\"k\":%d}", k);
            bad += matches(g, t) != (k >= -12 && k <= 345);
        }
        CHECK_EQ(bad, 0);
        /* Declared order: the grammar writes properties as the schema
         * lists them (the validator takes any order). */
        CHECK(!matches(g, "{\"k\":7,\"q\":\"abc\"}"));
        CHECK(valid(s1, "{\"k\":7,\"q\":\"abc\"}"));
        llm_grammar_free(g);
    }
    /* $defs, recursion, anyOf, const. */
    const char *s2 = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"const\":1},"
                     "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},\"maxItems\":2}},"
                     "\"required\":[\"v\"]}},\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":\"string\",\"maxLength\":3}]}";
    g = schema_grammar(s2);
    CHECK(g != NULL);
    if (g) {
        agree(s2, g, "{\"v\":1,\"kids\":[{\"v\":1},{\"v\":1,\"kids\":[]}]}", true);
        agree(s2, g, "\"abc\"", true);
        agree(s2, g, "{\"v\":2}", false);
        agree(s2, g, "\"abcd\"", false);
        llm_grammar_free(g);
    }
    /* Unsupported keywords are named, not ignored. */
    sb out;
    sb_init(&out);
    tailor_error e = {0};
    CHECK_EQ(llm_schema_to_gbnf("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^x\"}}}",
                                &out, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "JSON schema at $.a: pattern is not supported");
    CHECK_EQ(llm_schema_to_gbnf("{\"type\":\"object\",\"patternProperties\":{}}", &out, &e), TAILOR_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "keyword 'patternProperties' is not supported");
    CHECK_EQ(llm_schema_to_gbnf("{\"type\":", &out, &e), TAILOR_EDATA);
    sb_deinit(&out);
    /* Validation errors name the path. */
    CHECK_EQ(llm_schema_validate(s1, "{\"q\":\"abc\",\"k\":1,\"tags\":[\"a\",\"z\"]}", &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "$.tags[1]: is not one of the allowed values");
    CHECK_EQ(llm_schema_validate(s1, "{\"q\":\"abc\"}", &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "$: lacks the required property 'k'");
    CHECK_EQ(llm_schema_validate(s1, "{\"q\":", &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "not valid JSON");
}

/* A model that knows nothing, sampling at temperature 1 under each schema's
 * grammar: every output is complete JSON that the schema accepts. */
/* A trie of names as rules: exactly the names match, whatever their bytes
 * (quotes, backslashes, control and non-ASCII characters, names that are
 * prefixes of others); what cannot be a name is left out. */
static void test_trie(void) {
    static const char *const names[] = {
        "Alien (1979)", "Aliens (1986)", "Alien", "Alien³ (1992)", "Amélie (2001)", "中国 (2000)",
        "He said \"hi\"", "back\\slash", "tab\there", "Alien", "", "\xff\xfe broken", "[REC] (2007)", "A",
    };
    sb g;
    sb_init(&g);
    sb_puts(&g, "root ::= \"[[\" name \"]]\"\n");
    size_t n = llm_grammar_trie(names, sizeof names / sizeof *names, "name", &g);
    CHECK_EQ(n, 11); /* one duplicate, the empty and the broken name left out */
    llm_grammar *gr = parse(sb_str(&g));
    CHECK(gr != NULL);
    if (gr) {
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            if (!*names[i] || names[i][0] == '\xff') continue;
            char buf[128];
            snprintf(buf, sizeof buf, "[[%s]]", names[i]);
            CHECK(matches(gr, buf));
        }
        static const char *const not_names[] = {"[[Alie]]", "[[Aliens]]", "[[Alien (1979]]", "[[]]", "[[AB]]",
                                                "[[Amelie (2001)]]", "[[中]]", "[[tab here]]", "[[alien]]"};
        for (size_t i = 0; i < sizeof not_names / sizeof *not_names; i++) CHECK(!matches(gr, not_names[i]));
        CHECK(prefix(gr, "[[Ali"));
        CHECK(prefix(gr, "[[中"));
        CHECK(!prefix(gr, "[[Z"));
        llm_grammar_free(gr);
    }
    sb_deinit(&g);
    /* No names: a rule nothing matches, and the grammar still compiles. */
    sb_init(&g);
    sb_puts(&g, "root ::= \"x\" | \"[[\" name \"]]\"\n");
    CHECK_EQ(llm_grammar_trie(NULL, 0, "name", &g), 0);
    gr = parse(sb_str(&g));
    CHECK(gr && matches(gr, "x") && !prefix(gr, "[[a"));
    llm_grammar_free(gr);
    sb_deinit(&g);
    /* Many names (a rule per branching point): compiles at once and holds
     * every name. */
    enum { MANY = 30000 };
    char **many = xmalloc(MANY * sizeof *many);
    rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < MANY; i++) {
        char buf[64];
        int len = 0;
        int words = 1 + (int)(rng_below(&r, 4));
        for (int w = 0; w < words; w++) {
            static const char *const parts[] = {"Star", "Wars", "Love", "the", "Night", "of", "Time", "Blue", "Dead", "Man"};
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%s", w ? " " : "", parts[rng_below(&r, 10)]);
        }
        snprintf(buf + len, sizeof buf - (size_t)len, " (%d)", 1900 + (int)rng_below(&r, 120));
        many[i] = xstrdup(buf);
    }
    sb_init(&g);
    sb_puts(&g, "root ::= name\n");
    uint64_t t0 = timer_now_ns();
    size_t distinct = llm_grammar_trie((const char *const *)many, MANY, "name", &g);
    gr = parse(sb_str(&g));
    double ms = timer_seconds_since(t0) * 1000;
    printf("  trie of %zu distinct names: %zu bytes of rules, built and compiled in %.0f ms\n", distinct, g.len, ms);
    CHECK(gr != NULL);
    CHECK(distinct > 1000);
    int ok = 0;
    for (int i = 0; gr && i < MANY; i += 7) ok += matches(gr, many[i]);
    CHECK_EQ(ok, (MANY + 6) / 7);
    CHECK(gr && !matches(gr, "Star Wars (1977"));
    llm_grammar_free(gr);
    sb_deinit(&g);
    for (int i = 0; i < MANY; i++) free(many[i]);
    free(many);
}

static void test_constrained_generation(void) {
    static const char *const schemas[] = {
        /* shapes of the agent's tools */
        "{\"type\":\"object\",\"properties\":{\"user\":{\"type\":\"string\",\"maxLength\":12},"
        "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50},"
        "\"genres\":{\"type\":\"array\",\"items\":{\"enum\":[\"Comedy\",\"Drama\",\"Horror\",\"Sci-Fi\"]},\"maxItems\":3},"
        "\"year_from\":{\"type\":\"integer\",\"minimum\":1900,\"maximum\":2030},"
        "\"exclude_seen\":{\"type\":\"boolean\"}},\"required\":[\"k\"]}",
        "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40},"
        "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":20}},\"required\":[\"query\"]}",
        "{\"type\":\"object\",\"properties\":{\"item\":{\"type\":\"string\",\"maxLength\":10}},\"required\":[\"item\"]}",
        "{\"type\":\"object\",\"properties\":{\"action\":{\"enum\":[\"like\",\"dislike\",\"constraint\"]},"
        "\"value\":{\"type\":\"string\",\"maxLength\":30},\"weight\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1}},"
        "\"required\":[\"action\",\"value\"]}",
        "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\",\"maxLength\":60}},"
        "\"required\":[\"answer\"]},{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":4}]}",
    };
    char *path = test_data_path("tinyllamas-stories260K/stories260K.gguf");
    llm_model *m = NULL;
    tailor_error e = {0};
    CHECK_EQ(llm_model_load(path, &m, &e), 0);
    free(path);
    if (!m) return;
    llm_ctx *c = NULL;
    llm_ctx_params cp = llm_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 1;
    CHECK_EQ(llm_ctx_new(m, cp, &c, &e), 0);
    int total = 0, ok = 0, masked = 0;
    enum { PER_SCHEMA = 200 };
    for (size_t si = 0; si < sizeof schemas / sizeof *schemas; si++) {
        llm_grammar *g = schema_grammar(schemas[si]);
        CHECK(g != NULL);
        if (!g) continue;
        for (int r = 0; r < PER_SCHEMA; r++) {
            llm_grammar_reset(g);
            llm_ctx_truncate(c, 0);
            llm_gen_params gp = llm_gen_default_params();
            gp.n_predict = 400;
            gp.sampling.temperature = 1.0f;
            gp.sampling.top_k = 0;
            gp.sampling.top_p = 1.0f;
            gp.sampling.min_p = 0;
            gp.sampling.seed = (uint64_t)(si * 1000 + (size_t)r + 1);
            gp.grammar = g;
            int32_t prompt[1] = {llm_vocab_bos(m->vocab)};
            sb out;
            sb_init(&out);
            llm_gen_stats st;
            int rc = llm_generate(c, prompt, 1, &gp, append_text, &out, &st, &e);
            total++;
            masked += st.masked > 0;
            tailor_error ve = {0};
            if (rc == 0 && llm_grammar_complete(g) && llm_schema_validate(schemas[si], sb_str(&out), &ve) == 0) ok++;
            else if (total - ok <= 3)
                fprintf(stderr, "  schema %zu seed %d: rc %d, %s: '%s'\n", si, r, rc, rc ? e.msg : ve.msg, sb_str(&out));
            sb_deinit(&out);
        }
        llm_grammar_free(g);
    }
    printf("  constrained generation: %d of %d outputs valid (%d needed the full mask at least once)\n", ok, total,
           masked);
    CHECK_EQ(ok, total);
    CHECK(masked > total / 2); /* the model alone would not have written them */
    llm_ctx_free(c);
    llm_model_free(m);
}

int main(void) {
    RUN(test_json_grammar);
    RUN(test_arithmetic_and_lists);
    RUN(test_errors);
    RUN(test_masks);
    RUN(test_schema_grammar);
    RUN(test_trie);
    RUN(test_constrained_generation);
    return test_summary();
}
