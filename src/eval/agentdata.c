/* agentdata.c — data for a language model that drives the agent, and the
 * measure of how well a backend calls its tools.
 *
 * `tailor experiment agent-data` writes conversations made from the
 * catalogue: a request in one of many phrasings (recommendations with
 * categories, years and counts, similar items, an item's details, likes,
 * dislikes, standing constraints, searches, the profile), the tool call
 * that serves it, the tool's real result and a short answer. Each is what
 * the agent itself sends a backend: a scripted backend stands in for the
 * model, records the messages and tools the agent gives it, and replies
 * with the call the phrasing means (labels by construction, not by the
 * rules backend). Output is OpenAI's fine-tuning format with "tools" and
 * "tool_calls", which `tailor llm finetune` renders as the local backend
 * renders a conversation. The last phrasings of every family never go into
 * the training file: they make the held-out set.
 *
 * `tailor experiment tool-calls` runs such a file's requests (or the agent
 * suite's, tests/agent-suite.jsonl) through the agent with any backend and
 * counts the turns that call the right tool, with arguments holding the
 * ones meant, and with exactly those (items compared as the tools resolve
 * them). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "eval/eval.h"

/* ---- the catalogue's words ----------------------------------------------- */

typedef struct slots {
    const char *cat_key; /* the categorical attribute requests name ("genres") */
    VEC(const char *) values;
    VEC(char *) names, plurals; /* per value: how people say it */
    const char *year_key;
    int year_lo, year_hi;
    VEC(char *) titles; /* popular items, as people write them */
    VEC(char *) words;  /* topics: frequent words of popular titles */
} slots;

static void slots_deinit(slots *s) {
    for (size_t i = 0; i < s->names.len; i++) free(s->names.data[i]), free(s->plurals.data[i]);
    for (size_t i = 0; i < s->titles.len; i++) free(s->titles.data[i]);
    for (size_t i = 0; i < s->words.len; i++) free(s->words.data[i]);
    vec_free(&s->values);
    vec_free(&s->names);
    vec_free(&s->plurals);
    vec_free(&s->titles);
    vec_free(&s->words);
}

/* "Sci-Fi" -> "sci-fi", "Film-Noir" -> "film noir"; plurals by the usual
 * English endings ("comedies", "westerns"); mass nouns keep their form. */
static void value_words(const char *v, char **name, char **plural) {
    sb n;
    sb_init(&n);
    for (const char *p = v; *p; p++) sb_putc(&n, (char)tolower((unsigned char)*p));
    if (!strcmp(v, "Film-Noir")) sb_clear(&n), sb_puts(&n, "film noir");
    *name = xstrdup(sb_str(&n));
    static const char *const MASS[] = {"sci-fi", "film noir", "animation", "horror", "romance", "action", "children",
                                       "adventure", "fantasy", "imax", "crime", "war"};
    bool mass = false;
    for (size_t i = 0; i < sizeof MASS / sizeof *MASS; i++) mass |= !strcmp(*name, MASS[i]);
    if (!mass && n.len > 1 && n.buf[n.len - 1] == 'y') n.len--, sb_puts(&n, "ies");
    else if (!mass) sb_putc(&n, 's');
    *plural = xstrdup(sb_str(&n));
    sb_deinit(&n);
}

/* The length of a title without its " (1999)". */
static size_t without_year(const char *t) {
    size_t n = strlen(t);
    return n > 7 && t[n - 1] == ')' && t[n - 6] == '(' && t[n - 7] == ' ' ? n - 7 : n;
}

/* "Matrix, The (1999)" -> "The Matrix"; NULL when the title is unusable. */
static char *spoken_title(const char *t) {
    size_t n = without_year(t);
    if (n < 3 || memchr(t, '"', n) || memchr(t, '[', n)) return NULL;
    sb o;
    sb_init(&o);
    static const char *const ARTICLES[] = {", The", ", A", ", An"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(ARTICLES[i]);
        if (n > k && !memcmp(t + n - k, ARTICLES[i], k)) {
            sb_printf(&o, "%s %.*s", ARTICLES[i] + 2, (int)(n - k), t);
            return sb_take(&o);
        }
    }
    sb_append(&o, t, n);
    return sb_take(&o);
}

typedef struct pop_item {
    const pz_item_info *it;
    uint32_t pop;
} pop_item;

static int by_pop(const void *a, const void *b) {
    const pop_item *x = a, *y = b;
    return x->pop != y->pop ? (x->pop < y->pop ? 1 : -1) : (x->it->row > y->it->row) - (x->it->row < y->it->row);
}

static int slots_load(pz_engine *e, slots *s, tailor_error *err) {
    int na = 0;
    const pz_attr *attrs = pz_attributes(e, &na);
    for (int i = 0; i < na; i++) {
        if (!attrs[i].numeric && !s->cat_key && attrs[i].n_values >= 3) s->cat_key = attrs[i].key;
        if (attrs[i].numeric && !s->year_key && strstr(attrs[i].key, "year"))
            s->year_key = attrs[i].key, s->year_lo = (int)attrs[i].lo, s->year_hi = (int)attrs[i].hi;
    }
    for (int i = 0; i < na; i++)
        if (s->cat_key && !strcmp(attrs[i].key, s->cat_key))
            for (int v = 0; v < attrs[i].n_values; v++) {
                const char *x = attrs[i].values[v];
                if (!isalpha((unsigned char)x[0])) continue; /* "(no genres listed)" */
                char *name, *plural;
                value_words(x, &name, &plural);
                vec_push(&s->values, x);
                vec_push(&s->names, name);
                vec_push(&s->plurals, plural);
            }
    size_t n = pz_items(e);
    pop_item *p = xcalloc(n + 1, sizeof *p);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const pz_item_info *it = pz_item_at(e, i);
        if (it && it->title) p[m++] = (pop_item){it, pz_popularity(e, it->id)};
    }
    qsort(p, m, sizeof *p, by_pop);
    /* Titles the tools resolve back to the same item (the more popular of
     * two with one name is the one a name means). */
    for (size_t i = 0; i < m && s->titles.len < 400; i++) {
        char *t = spoken_title(p[i].it->title);
        if (t && pz_item_named(e, t) == p[i].it) vec_push(&s->titles, t);
        else free(t);
    }
    /* Topics: words of four letters or more in at least three of the 3,000
     * most popular titles, neither filler nor a category's name. */
    static const char *const STOP[] = {"with", "from", "part", "that", "this", "into", "movie", "film", "your", "about",
                                       "what"};
    hmap count;
    hmap_init(&count, 4096);
    VEC(char *) seen = {0};
    VEC(int64_t) counts = {0};
    for (size_t i = 0; i < m && i < 3000; i++) {
        const char *t = p[i].it->title;
        size_t len = without_year(t);
        for (size_t a = 0; a < len;) {
            while (a < len && !isalpha((unsigned char)t[a])) a++;
            size_t b = a;
            while (b < len && isalpha((unsigned char)t[b])) b++;
            if (b - a >= 4) {
                char w[64];
                size_t k = b - a < sizeof w - 1 ? b - a : sizeof w - 1;
                for (size_t j = 0; j < k; j++) w[j] = (char)tolower((unsigned char)t[a + j]);
                w[k] = 0;
                bool stop = false;
                for (size_t j = 0; j < sizeof STOP / sizeof *STOP; j++) stop |= !strcmp(w, STOP[j]);
                for (size_t j = 0; j < s->names.len; j++) stop |= !strncmp(w, s->names.data[j], 4);
                int64_t at;
                if (!stop && hmap_get(&count, w, k, &at)) counts.data[at]++;
                else if (!stop) {
                    hmap_put(&count, w, k, (int64_t)counts.len);
                    vec_push(&seen, xstrdup(w));
                    vec_push(&counts, 1);
                }
            }
            a = b;
        }
    }
    for (size_t i = 0; i < seen.len; i++) {
        if (counts.data[i] >= 3 && s->words.len < 80) vec_push(&s->words, seen.data[i]);
        else free(seen.data[i]);
    }
    vec_free(&seen);
    vec_free(&counts);
    hmap_deinit(&count);
    free(p);
    if (!s->cat_key || s->values.len < 3 || s->titles.len < 20)
        return err_set(err, TAILOR_EINVAL,
                       "the catalogue needs a categorical attribute with 3 or more values and 20 titled items to make "
                       "requests from (found %zu values, %zu titles)",
                       s->values.len, s->titles.len);
    return 0;
}

/* ---- phrasings ------------------------------------------------------------- */

/* A family of phrasings of one request; {g} a category (plural: {G}), {n}
 * a count, {d} a decade, {y} and {z} years, {t} a title, {w} a topic. The
 * last `held` phrasings of each family make the held-out set. */
typedef struct family {
    const char *tool;
    const char *kind; /* what the arguments hold */
    int held;
    const char *say[10];
} family;

static const family FAMILIES[] = {
    {"recommend", "", 1,
     {"recommend me something", "what should I watch tonight?", "suggest a movie", "any recommendations?",
      "I need something to watch", "what would you recommend?", "pick a film for me", NULL}},
    {"recommend", "g", 2,
     {"{G}", "some {g} movies", "I want to watch a {g} film", "any good {g} movies?", "suggest {g} films",
      "show me {g} movies please", "I'm in the mood for {g}", "got any {G} for me?", NULL}},
    {"recommend", "gn", 1,
     {"give me {n} {g} movies", "{n} {g} films please", "top {n} {g} movies", "list {n} {g} movies",
      "I'd like {n} {g} films", NULL}},
    {"recommend", "gd", 1,
     {"{g} movies from the {d}", "{g} films of the {d}", "I'd like {g} movies from the {d}",
      "show me {g} from the {d}", "{G} from the {d}", NULL}},
    {"recommend", "d", 1,
     {"movies from the {d}", "something from the {d}", "films made in the {d}", "what was good in the {d}?", NULL}},
    {"recommend", "b", 1, {"movies before {y}", "films made before {y}", "anything older than {y}", "something from before {y}", NULL}},
    {"recommend", "a", 1, {"movies after {y}", "films released after {y}", "anything newer than {y}", "something made after {y}", NULL}},
    {"recommend", "yz", 1,
     {"movies between {y} and {z}", "films from {y} to {z}", "something released between {y} and {z}",
      "anything from {y} to {z}", NULL}},
    {"similar_items", "t", 2,
     {"something like {t}", "movies similar to {t}", "more like {t}", "I want films like {t}",
      "anything in the style of {t}", "what else is like {t}?", "recommend films like {t}", NULL}},
    {"item_info", "t", 1,
     {"tell me about {t}", "what is {t} about?", "info on {t}", "describe {t}", "what's {t}?", NULL}},
    {"user_profile", "like", 1, {"I loved {t}", "I really liked {t}", "{t} was great", "I enjoyed {t} a lot", NULL}},
    {"user_profile", "dislike", 1,
     {"I hated {t}", "I didn't like {t}", "{t} was boring", "I did not enjoy {t}", NULL}},
    {"user_profile", "not", 1,
     {"no {g} please", "never show me {g} movies", "I don't want any {g}", "no more {G}", "please, no {g}", NULL}},
    {"search", "w", 1,
     {"movies about {w}", "films with {w}", "search for {w}", "find something about {w}", "anything about {w}?", NULL}},
    {"user_profile", "show", 1,
     {"what do you know about me", "show my profile", "what have I told you?", "what are my preferences?", NULL}},
};
enum { N_FAMILIES = sizeof FAMILIES / sizeof FAMILIES[0] };

static int family_size(const family *f) {
    int n = 0;
    while (n < 10 && f->say[n]) n++;
    return n;
}

static const char *const NUMBER[] = {"", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"};
static const char *const DECADE[] = {"twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties"};

/* One request of family f, phrasing k: its text and the call's arguments. */
static void make_request(const family *f, int k, const slots *s, rng *g, sb *text, cJSON *args) {
    int gi = (int)rng_below(g, s->values.len), n = 2 + (int)rng_below(g, 9);
    int lo = s->year_lo > 1920 ? s->year_lo : 1920, hi = s->year_hi > lo + 20 ? s->year_hi : lo + 20;
    int dec = (lo / 10 + 1 + (int)rng_below(g, (uint64_t)((hi / 10) - (lo / 10) - 1 > 0 ? (hi / 10) - (lo / 10) - 1 : 1))) * 10;
    int y = lo + 5 + (int)rng_below(g, (uint64_t)(hi - lo - 10)), z = y + 2 + (int)rng_below(g, 15);
    if (z > hi) z = hi;
    const char *title = s->titles.data[rng_below(g, s->titles.len)];
    const char *word = s->words.len ? s->words.data[rng_below(g, s->words.len)] : "love";
    char decade[32];
    int style = (int)rng_below(g, 3);
    if (style == 0 || dec >= 2000) snprintf(decade, sizeof decade, "%ds", dec);
    else if (style == 1) snprintf(decade, sizeof decade, "%02ds", dec % 100);
    else snprintf(decade, sizeof decade, "%s", dec >= 1920 && dec <= 1990 ? DECADE[(dec - 1920) / 10] : "");
    if (!decade[0]) snprintf(decade, sizeof decade, "%ds", dec);
    char num[16];
    if (rng_below(g, 2)) snprintf(num, sizeof num, "%d", n);
    else snprintf(num, sizeof num, "%s", NUMBER[n]);
    for (const char *p = f->say[k]; *p; p++) {
        if (*p != '{' || !p[1] || p[2] != '}') {
            sb_putc(text, *p);
            continue;
        }
        switch (p[1]) {
        case 'g': sb_puts(text, s->names.data[gi]); break;
        case 'G': sb_puts(text, s->plurals.data[gi]); break;
        case 'n': sb_puts(text, num); break;
        case 'd': sb_puts(text, decade); break;
        case 'y': sb_printf(text, "%d", y); break;
        case 'z': sb_printf(text, "%d", z); break;
        case 't': sb_puts(text, title); break;
        case 'w': sb_puts(text, word); break;
        }
        p += 2;
    }
    char kmin[80], kmax[80];
    snprintf(kmin, sizeof kmin, "%s_min", s->year_key ? s->year_key : "year");
    snprintf(kmax, sizeof kmax, "%s_max", s->year_key ? s->year_key : "year");
    const char *kind = f->kind;
    if (!strcmp(f->tool, "user_profile")) {
        cJSON_AddStringToObject(args, "action", !strcmp(kind, "not") ? "constraint" : kind);
        if (!strcmp(kind, "like") || !strcmp(kind, "dislike")) cJSON_AddStringToObject(args, "item", title);
        if (!strcmp(kind, "not")) {
            cJSON_AddStringToObject(args, "attribute", s->cat_key);
            cJSON_AddStringToObject(args, "op", "not");
            cJSON_AddStringToObject(args, "value", s->values.data[gi]);
        }
        return;
    }
    if (strchr(kind, 't')) cJSON_AddStringToObject(args, "item", title);
    if (strchr(kind, 'w')) cJSON_AddStringToObject(args, "query", word);
    /* recommend needs a count: 5, the tools' default, when none is said */
    if (strchr(kind, 'n') || !strcmp(f->tool, "recommend")) cJSON_AddNumberToObject(args, "k", strchr(kind, 'n') ? n : 5);
    if (strchr(kind, 'g')) {
        cJSON *arr = cJSON_AddArrayToObject(args, s->cat_key);
        cJSON_AddItemToArray(arr, cJSON_CreateString(s->values.data[gi]));
    }
    if (strchr(kind, 'd')) cJSON_AddNumberToObject(args, kmin, dec), cJSON_AddNumberToObject(args, kmax, dec + 9);
    if (!strcmp(kind, "b")) cJSON_AddNumberToObject(args, kmax, y - 1);
    if (!strcmp(kind, "a")) cJSON_AddNumberToObject(args, kmin, y + 1);
    if (!strcmp(kind, "yz")) cJSON_AddNumberToObject(args, kmin, y), cJSON_AddNumberToObject(args, kmax, z);
}

/* ---- the scripted backend -------------------------------------------------- */

/* Stands in for the model: records what the agent sends and replies with
 * the call a phrasing means, then with a short answer from its result. */
typedef struct script {
    const char *tool;
    const cJSON *args;
    cJSON *messages, *tools; /* what the agent sent, as OpenAI's format has it */
    int round;
} script;

static void record(script *s, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools) {
    cJSON_Delete(s->messages);
    s->messages = cJSON_CreateArray();
    int call_no = 0;
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", msgs[i].role);
        if (msgs[i].tool_calls) {
            cJSON_AddNullToObject(m, "content");
            cJSON *calls = cJSON_Parse(msgs[i].tool_calls), *c, *out = cJSON_AddArrayToObject(m, "tool_calls");
            cJSON_ArrayForEach(c, calls) {
                char id[32], *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "arguments"));
                snprintf(id, sizeof id, "call_%d", ++call_no);
                cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", id);
                cJSON_AddStringToObject(o, "type", "function");
                cJSON_AddStringToObject(f, "name", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name")));
                cJSON_AddStringToObject(f, "arguments", args ? args : "{}");
                cJSON_AddItemToObject(o, "function", f);
                cJSON_AddItemToArray(out, o);
                free(args);
            }
            cJSON_Delete(calls);
        } else {
            cJSON_AddStringToObject(m, "content", msgs[i].content ? msgs[i].content : "");
        }
        if (!strcmp(msgs[i].role, "tool")) {
            char id[32];
            snprintf(id, sizeof id, "call_%d", call_no);
            cJSON_AddStringToObject(m, "tool_call_id", id);
            if (msgs[i].name) cJSON_AddStringToObject(m, "name", msgs[i].name);
        }
        cJSON_AddItemToArray(s->messages, m);
    }
    if (!s->tools) {
        s->tools = cJSON_CreateArray();
        for (int i = 0; i < n_tools; i++) {
            cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "function");
            cJSON_AddStringToObject(f, "name", tools[i].name);
            cJSON_AddStringToObject(f, "description", tools[i].description);
            cJSON_AddItemToObject(f, "parameters", cJSON_Parse(tools[i].schema));
            cJSON_AddItemToObject(o, "function", f);
            cJSON_AddItemToArray(s->tools, o);
        }
    }
}

/* A short answer from a tool's result: how many items, or what changed. */
static char *answer_for(const char *tool, const llm_msg *last) {
    cJSON *r = last && last->content ? cJSON_Parse(last->content) : NULL;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(r, "items");
    int n = cJSON_GetArraySize(items);
    sb o;
    sb_init(&o);
    if (cJSON_GetObjectItemCaseSensitive(r, "error")) sb_puts(&o, "Sorry, I could not do that.");
    else if (!strcmp(tool, "item_info")) sb_puts(&o, "Here is what I know about it.");
    else if (!strcmp(tool, "user_profile")) sb_puts(&o, "Done: your profile is up to date.");
    else if (n == 0) sb_puts(&o, "I found nothing that fits.");
    else if (n == 1) sb_puts(&o, "Here is one pick for you.");
    else sb_printf(&o, "Here are %d picks for you.", n);
    cJSON_Delete(r);
    return sb_take(&o);
}

static int script_complete(llm_backend *b, const llm_msg *msgs, int n, const llm_tool_def *tools, int n_tools,
                           llm_tool_choice choice, llm_stream_fn cb, void *ud, llm_reply *out, tailor_error *err) {
    (void)err;
    script *s = b->impl;
    memset(out, 0, sizeof *out);
    record(s, msgs, n, tools, n_tools);
    if (s->round++ == 0 && choice != LLM_TOOLS_NONE) {
        out->calls = xcalloc(1, sizeof *out->calls);
        out->calls[0].name = xstrdup(s->tool);
        out->calls[0].arguments = cJSON_PrintUnformatted(s->args);
        out->n_calls = 1;
        return 0;
    }
    out->text = answer_for(s->tool, n ? &msgs[n - 1] : NULL);
    if (cb) cb(ud, out->text, strlen(out->text));
    return 0;
}

/* A token is about four bytes of such text: the budget is the agent's
 * concern, and every example here is one short turn. */
static int32_t script_count(llm_backend *b, const char *text, size_t n) {
    (void)b, (void)text;
    return (int32_t)(n / 4 + 1);
}
static int32_t script_ctx(llm_backend *b) {
    (void)b;
    return 1 << 20;
}

static const llm_backend_ops SCRIPT_OPS = {.name = "script", .complete = script_complete,
                                           .count_tokens = script_count, .context_size = script_ctx};

int eval_agent_data(pz_engine *e, const char *dir, int n, uint64_t seed, FILE *f, tailor_error *err) {
    slots s = {0};
    int rc = slots_load(e, &s, err);
    if (!rc) rc = mkdir_p(dir, err);
    char *paths[2] = {path_join(dir, "train.jsonl"), path_join(dir, "heldout.jsonl")};
    FILE *out[2] = {NULL, NULL};
    for (int i = 0; i < 2 && !rc; i++)
        if (!(out[i] = fopen(paths[i], "w"))) rc = err_set(err, TAILOR_EIO, "%s: %s", paths[i], strerror(errno));
    rng g;
    rng_seed(&g, seed);
    script sc = {0};
    llm_backend b = {&SCRIPT_OPS, &sc};
    int written[2] = {0, 0}, refused = 0, want[2] = {n, n / 5 > 50 ? n / 5 : 50};
    for (int set = 0; set < 2 && !rc; set++)
        for (int tries = 0; written[set] < want[set] && tries < want[set] * 4 && !rc; tries++) {
            const family *fam = &FAMILIES[rng_below(&g, N_FAMILIES)];
            int size = family_size(fam), train = size - fam->held;
            int k = set == 0 ? (int)rng_below(&g, (uint64_t)train) : train + (int)rng_below(&g, (uint64_t)fam->held);
            sb text;
            sb_init(&text);
            cJSON *args = cJSON_CreateObject();
            make_request(fam, k, &s, &g, &text, args);
            cJSON_Delete(sc.messages);
            sc = (script){.tool = fam->tool, .args = args, .tools = sc.tools};
            agent *a = NULL; /* stored turns: profile facts need a session (removed by the caller) */
            agent_reply r = {0};
            rc = agent_new(e, &b, agent_default_params(), &a, err);
            if (!rc) rc = agent_turn(a, sb_str(&text), NULL, NULL, &r, err);
            /* Only calls the tool ran (arguments valid, the item found). */
            if (!rc && r.n_calls == 1 && r.calls[0].ok) {
                cJSON *ex = cJSON_CreateObject();
                cJSON_AddItemToObject(ex, "messages", cJSON_Duplicate(sc.messages, true));
                cJSON *am = cJSON_CreateObject();
                cJSON_AddStringToObject(am, "role", "assistant");
                cJSON_AddStringToObject(am, "content", r.text ? r.text : "");
                cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(ex, "messages"), am);
                cJSON_AddItemToObject(ex, "tools", cJSON_Duplicate(sc.tools, true));
                char *line = cJSON_PrintUnformatted(ex);
                fprintf(out[set], "%s\n", line);
                free(line);
                cJSON_Delete(ex);
                written[set]++;
            } else if (!rc) {
                refused++;
            }
            if (!rc) agent_reply_deinit(&r);
            agent_free(a);
            cJSON_Delete(args);
            sb_deinit(&text);
        }
    for (int i = 0; i < 2; i++)
        if (out[i] && fclose(out[i]) && !rc) rc = err_set(err, TAILOR_EIO, "%s: %s", paths[i], strerror(errno));
    if (!rc)
        fprintf(f,
                "wrote %d training conversations to %s and %d held-out ones (phrasings never in training) to %s; "
                "%d requests left out (their tool refused them: an item with no such title, a search with no match)\n",
                written[0], paths[0], written[1], paths[1], refused);
    cJSON_Delete(sc.messages);
    cJSON_Delete(sc.tools);
    free(paths[0]), free(paths[1]);
    slots_deinit(&s);
    return rc;
}

/* ---- the measure ---------------------------------------------------------- */

/* Whether got holds what want holds: items as the tools resolve them,
 * lists as sets, numbers by value, text without regard to case. */
static bool same_value(pz_engine *e, const char *key, const cJSON *want, const cJSON *got) {
    if (!got) return false;
    if (!strcmp(key, "item") && cJSON_IsString(want) && cJSON_IsString(got)) {
        const pz_item_info *a = pz_item_named(e, want->valuestring), *b = pz_item_named(e, got->valuestring);
        return a && a == b;
    }
    if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want)) return false;
        const cJSON *x, *y;
        cJSON_ArrayForEach(x, want) {
            bool found = false;
            cJSON_ArrayForEach(y, got) found |= same_value(e, "", x, y);
            if (!found) return false;
        }
        return true;
    }
    if (cJSON_IsNumber(want)) return cJSON_IsNumber(got) && fabs(want->valuedouble - got->valuedouble) < 1e-9;
    if (cJSON_IsString(want)) return cJSON_IsString(got) && !strcasecmp(want->valuestring, got->valuestring);
    return cJSON_Compare(want, got, true);
}

/* A count of 5 is what the tools take when none is given. */
static bool is_default(const cJSON *x) { return x && !strcmp(x->string, "k") && cJSON_IsNumber(x) && x->valuedouble == 5; }

/* Every argument wanted (a default count given or not alike); with exact,
 * no other either. */
static bool same_args(pz_engine *e, const cJSON *want, const cJSON *got, bool exact) {
    if (!cJSON_IsObject(got)) return false;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(got, x->string);
        if (!(y ? same_value(e, x->string, x, y) : is_default(x))) return false;
    }
    if (exact)
        cJSON_ArrayForEach(x, got) if (!cJSON_GetObjectItemCaseSensitive(want, x->string) && !is_default(x)) return false;
    return true;
}

/* A line's request and the call it means: a conversation (its first user
 * message and first call) or a suite line {"request", "tool" ("": no
 * call), "arguments"}. want is malloc'd (NULL on a bad line). */
static const char *line_request(const cJSON *ex, const char **tool, cJSON **want) {
    const char *request = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ex, "request"));
    *tool = NULL;
    *want = NULL;
    if (request) {
        *tool = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ex, "tool"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(ex, "arguments");
        *want = cJSON_IsObject(args) ? cJSON_Duplicate(args, true) : cJSON_CreateObject();
        return *tool ? request : NULL;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(ex, "messages")) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        if (role && !strcmp(role, "user") && !request)
            request = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), 0), "function");
        if (fn && !*tool) {
            *tool = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
            *want = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments")));
        }
    }
    return *tool && *want ? request : NULL;
}

int eval_tool_calls(pz_engine *e, llm_backend *b, const char *path, int limit, FILE *f, sb *json, tailor_error *err) {
    sb text;
    sb_init(&text);
    int rc = file_read(path, &text, err);
    int total = 0, tool_ok = 0, holds = 0, exact = 0, valid = 0, calls = 0, lines = 0, failed = 0;
    double ms = 0;
    for (char *line = text.buf; !rc && line && *line && (limit <= 0 || total < limit);) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lines++;
        if (!line[strspn(line, " \t\r")]) { /* blank lines are skipped, as llm finetune skips them */
            line = nl ? nl + 1 : NULL;
            continue;
        }
        cJSON *ex = cJSON_Parse(line), *want = NULL;
        const char *tool = NULL, *request = line_request(ex, &tool, &want);
        if (!request) {
            rc = err_set(err, TAILOR_EDATA, "%s:%d: neither a conversation with a request and a tool call nor "
                                            "{\"request\", \"tool\", \"arguments\"}", path, lines);
        } else {
            agent *a = NULL;
            agent_reply r = {0};
            uint64_t t0 = timer_now_ns();
            rc = agent_new(e, b, agent_default_params(), &a, err);
            /* A turn the backend fails counts as a miss, said, and the
             * measure goes on. */
            tailor_error te = {0};
            if (!rc && agent_turn(a, request, NULL, NULL, &r, &te)) {
                total++, failed++;
                if (f && failed <= 5) fprintf(f, "  failed: '%s': %s\n", request, te.msg);
            } else if (!rc) {
                ms += timer_seconds_since(t0) * 1000;
                total++;
                /* The turn's first call of the tool meant (as the agent's
                 * test suite counts), else its first call; "" means:
                 * answered without a tool. */
                const agent_call *c = r.n_calls ? &r.calls[0] : NULL;
                for (int i = 0; i < r.n_calls && *tool; i++)
                    if (!strcmp(r.calls[i].name, tool)) {
                        c = &r.calls[i];
                        break;
                    }
                cJSON *got = c ? cJSON_Parse(c->arguments) : NULL;
                bool right_tool = *tool ? c && !strcmp(c->name, tool) : !c;
                bool held = right_tool && (!*tool || same_args(e, want, got, false));
                bool right = right_tool && (!*tool || same_args(e, want, got, true));
                tool_ok += right_tool, holds += held, exact += right;
                calls += c != NULL, valid += c && c->ok;
                if (!right && f && total - exact <= 12) { /* the first misses, to see what goes wrong */
                    char *w = cJSON_PrintUnformatted(want);
                    fprintf(f, "  miss: '%s': want %s %s, got %s %s\n", request, *tool ? tool : "(no call)", w,
                            c ? c->name : "no call", c ? c->arguments : "");
                    free(w);
                }
                cJSON_Delete(got);
                agent_reply_deinit(&r);
            }
            agent_free(a);
        }
        cJSON_Delete(want);
        cJSON_Delete(ex);
        line = nl ? nl + 1 : NULL;
    }
    sb_deinit(&text);
    if (!rc && total == 0) rc = err_set(err, TAILOR_EDATA, "%s: no requests", path);
    if (rc) return rc;
    fprintf(f,
            "%s backend, %d requests from %s: right tool %.1f%%, right tool holding the arguments %.1f%%, right tool "
            "and exactly the arguments %.1f%%; %d of %d calls ran; %d turns failed; %.1f ms per turn\n",
            b->ops->name, total, path, 100.0 * tool_ok / total, 100.0 * holds / total, 100.0 * exact / total, valid,
            calls, failed, ms / (total > failed ? total - failed : 1));
    sb_printf(json,
              "{\"backend\": \"%s\", \"requests\": %d, \"right_tool\": %.4f, \"holds_arguments\": %.4f, "
              "\"right_call\": %.4f, \"calls\": %d, \"calls_ran\": %d, \"failed_turns\": %d, \"ms_per_turn\": %.2f}",
              b->ops->name, total, (double)tool_ok / total, (double)holds / total, (double)exact / total, calls, valid,
              failed, ms / (total > failed ? total - failed : 1));
    return 0;
}
