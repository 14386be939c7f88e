/* openai.c — /v1: the OpenAI API over the built-in engine, so that tools
 * written for OpenAI talk to tailor's model unchanged. Requests are read
 * strictly: a field this server does not implement is a 400 naming it,
 * never ignored. Tool calls and JSON-schema output are decoded under
 * grammars, so they are valid by construction. One request uses the model
 * at a time (the model holds one context). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/internal.h"

static atomic_uint_fast64_t next_id = 1;

/* The model, or NULL after a 503. */
static llm_backend *need_llm(srv_req *r) {
    llm_backend *b = srv_llm(r->srv);
    if (!b)
        srv_error(r, 503, "no_model",
                  "this server runs no language model: start it with tailor serve --model FILE.gguf");
    return b;
}

/* Refuses fields outside allowed; false after a 400. */
static bool fields_known(srv_req *r, const cJSON *j, const char *const *allowed) {
    const cJSON *f;
    cJSON_ArrayForEach(f, j) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(f->string, allowed[i]);
        if (!ok && !cJSON_IsNull(f)) {
            srv_error(r, 400, "unsupported_parameter", "'%s' is not supported by this server", f->string);
            return false;
        }
    }
    return true;
}

/* The requested model must be the one served ("default" names it too). */
static bool model_ok(srv_req *r, const cJSON *j) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (m && !cJSON_IsString(m)) {
        srv_error(r, 400, "invalid_request", "'model' is a string");
        return false;
    }
    if (!m || !strcmp(m->valuestring, srv_llm_name(r->srv)) || !strcmp(m->valuestring, "default")) return true;
    srv_error(r, 404, "model_not_found", "model '%s' is not served here (this server serves '%s')", m->valuestring,
              srv_llm_name(r->srv));
    return false;
}

/* A JSON number that is a whole number in [lo, hi] (compared before any
 * cast, so no value is out of an integer's range). */
static bool whole_in(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi && v->valuedouble == floor(v->valuedouble);
}

/* Sampling fields into p; false after a 400. */
static bool sampling_read(srv_req *r, const cJSON *j, llm_sampler_params *p, int32_t *max_tokens) {
    *p = llm_sampler_default_params();
    p->seed = timer_now_ns();
    *max_tokens = 0;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "temperature")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2) {
            srv_error(r, 400, "invalid_request", "'temperature' is a number from 0 to 2");
            return false;
        }
        p->temperature = (float)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "top_p")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 1) {
            srv_error(r, 400, "invalid_request", "'top_p' is a number in (0, 1]");
            return false;
        }
        p->top_p = (float)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "presence_penalty")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < -2 || v->valuedouble > 2) {
            srv_error(r, 400, "invalid_request", "'presence_penalty' is a number from -2 to 2");
            return false;
        }
        p->presence_penalty = (float)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "frequency_penalty")) && !cJSON_IsNull(v) &&
        (!cJSON_IsNumber(v) || v->valuedouble != 0)) {
        srv_error(r, 400, "unsupported_parameter", "'frequency_penalty' is not supported (presence_penalty is)");
        return false;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "seed")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
            srv_error(r, 400, "invalid_request", "'seed' is an integer");
            return false;
        }
        p->seed = (uint64_t)(int64_t)v->valuedouble;
    }
    const char *names[] = {"max_completion_tokens", "max_tokens"};
    for (int i = 0; i < 2; i++)
        if ((v = cJSON_GetObjectItemCaseSensitive(j, names[i])) && !cJSON_IsNull(v)) {
            if (!whole_in(v, 1, 1e6)) {
                srv_error(r, 400, "invalid_request", "'%s' is a positive integer", names[i]);
                return false;
            }
            *max_tokens = (int32_t)v->valuedouble;
        }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "n")) && !cJSON_IsNull(v) && (!cJSON_IsNumber(v) || v->valueint != 1)) {
        srv_error(r, 400, "unsupported_parameter", "'n' must be 1 (one choice per request)");
        return false;
    }
    return true;
}

static bool stream_flag(srv_req *r, const cJSON *j, bool *stream, bool *usage) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "stream");
    *stream = cJSON_IsTrue(v), *usage = false;
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        srv_error(r, 400, "invalid_request", "'stream' is true or false");
        return false;
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (o && !cJSON_IsNull(o)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "include_usage");
        if (!cJSON_IsObject(o) || (u && !cJSON_IsBool(u)) || cJSON_GetArraySize(o) != (u ? 1 : 0)) {
            srv_error(r, 400, "unsupported_parameter", "'stream_options' takes only include_usage");
            return false;
        }
        *usage = cJSON_IsTrue(u);
    }
    return true;
}

static void usage_json(sb *o, const llm_usage *u) {
    sb_printf(o, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
              (long long)u->prompt_tokens, (long long)u->completion_tokens,
              (long long)(u->prompt_tokens + u->completion_tokens));
}

/* ---- /v1/models ------------------------------------------------------------------ */

void oa_models(srv_req *r) {
    sb_puts(&r->out, "{\"object\":\"list\",\"data\":[");
    if (srv_llm(r->srv)) {
        sb_puts(&r->out, "{\"id\":");
        sb_json_str(&r->out, srv_llm_name(r->srv), strlen(srv_llm_name(r->srv)));
        sb_printf(&r->out, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"tailor\"}", (long long)time(NULL));
    }
    sb_puts(&r->out, "]}");
    srv_json(r, 200);
}

/* ---- /v1/chat/completions --------------------------------------------------------- */

typedef struct chat_in {
    VEC(llm_msg) msgs;
    VEC(char *) owned;
    VEC(llm_tool_def) tools;
    llm_tool_choice choice;
    char *schema; /* response_format: the schema (malloc'd), or NULL */
} chat_in;

static void chat_in_deinit(chat_in *c) {
    for (size_t i = 0; i < c->owned.len; i++) free(c->owned.data[i]);
    vec_free(&c->owned);
    vec_free(&c->msgs);
    vec_free(&c->tools);
    free(c->schema);
}

static char *own(chat_in *c, char *s) {
    vec_push(&c->owned, s);
    return s;
}

/* A message's content: a string, or an array of text parts. */
static bool content_read(srv_req *r, chat_in *c, const cJSON *v, int i, const char **out) {
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return true;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return true;
    }
    if (!cJSON_IsArray(v)) {
        srv_error(r, 400, "invalid_request", "messages[%d].content is a string or an array of text parts", i);
        return false;
    }
    sb t;
    sb_init(&t);
    const cJSON *p;
    cJSON_ArrayForEach(p, v) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "text"));
        if (!type || strcmp(type, "text") || !text) {
            srv_error(r, 400, "unsupported_parameter", "messages[%d].content: only text parts are supported", i);
            sb_deinit(&t);
            return false;
        }
        sb_puts(&t, text);
    }
    *out = own(c, t.buf ? sb_take(&t) : xstrdup(""));
    return true;
}

static bool messages_read(srv_req *r, const cJSON *arr, chat_in *c) {
    if (!cJSON_IsArray(arr) || !cJSON_GetArraySize(arr)) {
        srv_error(r, 400, "invalid_request", "'messages' is a non-empty array");
        return false;
    }
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        if (!cJSON_IsObject(m) || !role) {
            srv_error(r, 400, "invalid_request", "messages[%d] needs a role", i);
            return false;
        }
        if (!strcmp(role, "developer")) role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool")) {
            srv_error(r, 400, "invalid_request", "messages[%d].role '%s' is not system, developer, user, assistant or tool",
                      i, role);
            return false;
        }
        llm_msg msg = {.role = role};
        if (!content_read(r, c, cJSON_GetObjectItemCaseSensitive(m, "content"), i, &msg.content)) return false;
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (calls && !cJSON_IsNull(calls)) {
            if (strcmp(role, "assistant") || !cJSON_IsArray(calls)) {
                srv_error(r, 400, "invalid_request", "messages[%d].tool_calls is an array on an assistant message", i);
                return false;
            }
            /* Into the form the backends take: [{"name", "arguments": {...}}]. */
            cJSON *list = cJSON_CreateArray();
            const cJSON *tc;
            int k = 0;
            cJSON_ArrayForEach(tc, calls) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
                const char *args = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
                cJSON *parsed = args ? cJSON_Parse(args) : NULL;
                if (!name || !parsed) {
                    cJSON_Delete(parsed);
                    cJSON_Delete(list);
                    srv_error(r, 400, "invalid_request",
                              "messages[%d].tool_calls[%d] needs function.name and function.arguments (a JSON text)", i, k);
                    return false;
                }
                cJSON *one = cJSON_CreateObject();
                cJSON_AddStringToObject(one, "name", name);
                cJSON_AddItemToObject(one, "arguments", parsed);
                cJSON_AddItemToArray(list, one);
                k++;
            }
            msg.tool_calls = own(c, cJSON_PrintUnformatted(list));
            cJSON_Delete(list);
        }
        if (!strcmp(role, "tool")) {
            /* OpenAI names the call, not the tool: find the tool by the call's id. */
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "tool_call_id"));
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "name"));
            const cJSON *prev;
            cJSON_ArrayForEach(prev, arr) {
                const cJSON *tc;
                cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(prev, "tool_calls")) {
                    const char *pid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "id"));
                    if (id && pid && !strcmp(id, pid))
                        name = cJSON_GetStringValue(
                            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name"));
                }
            }
            msg.name = name;
        }
        vec_push(&c->msgs, msg);
        i++;
    }
    return true;
}

static bool tools_read(srv_req *r, const cJSON *j, chat_in *c) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
    const char *only = NULL;
    c->choice = LLM_TOOLS_AUTO;
    if (choice && !cJSON_IsNull(choice)) {
        const char *s = cJSON_GetStringValue(choice);
        if (s && !strcmp(s, "none")) c->choice = LLM_TOOLS_NONE;
        else if (s && !strcmp(s, "required")) c->choice = LLM_TOOLS_REQUIRED;
        else if (s && !strcmp(s, "auto")) c->choice = LLM_TOOLS_AUTO;
        else if (cJSON_IsObject(choice) &&
                 (only = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(choice, "function"), "name"))))
            c->choice = LLM_TOOLS_REQUIRED;
        else {
            srv_error(r, 400, "invalid_request",
                      "'tool_choice' is none, auto, required or {\"type\": \"function\", \"function\": {\"name\"}}");
            return false;
        }
    }
    if (!tools || cJSON_IsNull(tools)) return true;
    if (!cJSON_IsArray(tools)) {
        srv_error(r, 400, "invalid_request", "'tools' is an array");
        return false;
    }
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "type"));
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name"));
        const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "description"));
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (!type || strcmp(type, "function") || !name || (params && !cJSON_IsObject(params))) {
            srv_error(r, 400, "invalid_request", "tools[%d] is {\"type\": \"function\", \"function\": {\"name\", "
                                                 "\"description\", \"parameters\": a JSON schema}}", i);
            return false;
        }
        i++;
        if (only && strcmp(only, name)) continue;
        char *schema = params ? cJSON_PrintUnformatted(params) : xstrdup("{\"type\":\"object\",\"properties\":{}}");
        vec_push(&c->tools, ((llm_tool_def){name, desc ? desc : "", own(c, schema)}));
    }
    if (only && !c->tools.len) {
        srv_error(r, 400, "invalid_request", "tool_choice names '%s', which is not among the tools", only);
        return false;
    }
    return true;
}

static bool format_read(srv_req *r, const cJSON *j, chat_in *c) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    if (!f || cJSON_IsNull(f)) return true;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "type"));
    if (type && !strcmp(type, "text")) return true;
    if (type && !strcmp(type, "json_object")) {
        c->schema = xstrdup("{\"type\":\"object\"}");
    } else if (type && !strcmp(type, "json_schema")) {
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "json_schema"), "schema");
        if (!cJSON_IsObject(schema)) {
            srv_error(r, 400, "invalid_request", "response_format.json_schema.schema is a JSON schema (an object)");
            return false;
        }
        c->schema = cJSON_PrintUnformatted(schema);
    } else {
        srv_error(r, 400, "invalid_request", "response_format.type is text, json_object or json_schema");
        return false;
    }
    if (c->tools.len && c->choice != LLM_TOOLS_NONE) {
        srv_error(r, 400, "unsupported_parameter", "response_format with tools is not supported: use one or the other");
        return false;
    }
    return true;
}

/* A streamed reply: each piece of text goes out as one event, between the
 * chunk's head (id, model, ...) and its tail. */
/* {"id": "PREFIX-N", "object": OBJECT, "created", "model", then choices. */
static void reply_head(srv_req *r, sb *o, const char *prefix, const char *object, uint64_t id, long long created) {
    sb_printf(o, "{\"id\":\"%s-%llu\",\"object\":\"%s\",\"created\":%lld,\"model\":", prefix,
              (unsigned long long)id, object, created);
    sb_json_str(o, srv_llm_name(r->srv), strlen(srv_llm_name(r->srv)));
}

typedef struct chunk_stream {
    srv_stream *st;
    const char *head, *tail;
} chunk_stream;

static bool chunk_text(void *ud, const char *text, size_t n) {
    chunk_stream *cs = ud;
    sb e;
    sb_init(&e);
    sb_printf(&e, "data: %s", cs->head);
    sb_json_str(&e, text, n);
    sb_puts(&e, cs->tail);
    bool ok = srv_stream_write(cs->st, e.buf, e.len);
    sb_deinit(&e);
    return ok;
}

static void tool_calls_json(sb *o, const llm_reply *rep, uint64_t id) {
    sb_puts(o, "[");
    for (int i = 0; i < rep->n_calls; i++) {
        sb_printf(o, "%s{\"index\":%d,\"id\":\"call_%llu_%d\",\"type\":\"function\",\"function\":{\"name\":",
                  i ? "," : "", i, (unsigned long long)id, i);
        sb_json_str(o, rep->calls[i].name, strlen(rep->calls[i].name));
        sb_puts(o, ",\"arguments\":");
        sb_json_str(o, rep->calls[i].arguments, strlen(rep->calls[i].arguments));
        sb_puts(o, "}}");
    }
    sb_puts(o, "]");
}

/* logprobs: true, with top_logprobs: N alternatives a token (OpenAI
 * allows up to 20; a scorer may want every candidate, so up to 10,000).
 * *top_n -1: not asked. The answer only: not with tools, a schema or a
 * stream. */
static bool chat_logprobs_read(srv_req *r, const cJSON *j, const llm_backend *b, const chat_in *c, bool stream,
                               int *top_n) {
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(j, "top_logprobs");
    *top_n = -1;
    if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp)) {
        srv_error(r, 400, "invalid_request", "'logprobs' is true or false");
        return false;
    }
    if (top && !cJSON_IsNull(top) && !whole_in(top, 0, 10000)) {
        srv_error(r, 400, "invalid_request", "'top_logprobs' is an integer from 0 to 10000");
        return false;
    }
    if (!cJSON_IsTrue(lp)) {
        if (top && !cJSON_IsNull(top)) {
            srv_error(r, 400, "invalid_request", "'top_logprobs' needs 'logprobs': true");
            return false;
        }
        return true;
    }
    const char *why = stream ? "'logprobs' with 'stream' is not supported"
                      : c->tools.len && c->choice != LLM_TOOLS_NONE ? "'logprobs' with 'tools' is not supported"
                      : c->schema ? "'logprobs' with 'response_format' is not supported"
                      : !b->ops->chat_logprobs ? "this model does not report log-probabilities"
                                               : NULL;
    if (why) {
        srv_error(r, 400, "unsupported_parameter", "%s", why);
        return false;
    }
    *top_n = top && !cJSON_IsNull(top) ? (int)top->valuedouble : 0;
    return true;
}

/* A token's text and its UTF-8 bytes (a token may hold part of a
 * character), as the chat logprobs spell them. */
static void token_json(sb *o, const char *text, float logprob) {
    sb_puts(o, "{\"token\":");
    sb_json_str(o, text, strlen(text));
    sb_printf(o, ",\"logprob\":%.6g,\"bytes\":[", logprob);
    const unsigned char *b = (const unsigned char *)text;
    for (size_t i = 0; b[i]; i++) sb_printf(o, "%s%u", i ? "," : "", b[i]);
    sb_putc(o, ']');
}

/* The chat logprobs object: {"content": [token, top_logprobs], "refusal"}. */
static void chat_logprobs_json(sb *o, const llm_token_logprobs *lp, int n) {
    sb_puts(o, "{\"content\":[");
    for (int i = 0; i < n; i++) {
        if (i) sb_putc(o, ',');
        token_json(o, lp[i].text, lp[i].logprob);
        sb_puts(o, ",\"top_logprobs\":[");
        for (int k = 0; k < lp[i].n_top; k++) {
            if (k) sb_putc(o, ',');
            token_json(o, lp[i].top[k].text, lp[i].top[k].logprob);
            sb_putc(o, '}');
        }
        sb_puts(o, "]}");
    }
    sb_puts(o, "],\"refusal\":null}");
}

void oa_chat(srv_req *r) {
    static const char *const ALLOWED[] = {"model", "messages", "stream", "stream_options", "tools", "tool_choice",
                                          "parallel_tool_calls", "response_format", "temperature", "top_p",
                                          "max_tokens", "max_completion_tokens", "seed", "n", "presence_penalty",
                                          "frequency_penalty", "logprobs", "top_logprobs", "user", NULL};
    llm_backend *b = need_llm(r);
    cJSON *j = b ? srv_body_json(r, false) : NULL;
    if (!j) return;
    chat_in c = {0};
    llm_sampler_params sp;
    int32_t max_tokens;
    bool stream, with_usage;
    bool ok = fields_known(r, j, ALLOWED) && model_ok(r, j) && sampling_read(r, j, &sp, &max_tokens) &&
              stream_flag(r, j, &stream, &with_usage) &&
              messages_read(r, cJSON_GetObjectItemCaseSensitive(j, "messages"), &c) && tools_read(r, j, &c) &&
              format_read(r, j, &c);
    int top_n = -1;
    ok = ok && chat_logprobs_read(r, j, b, &c, stream, &top_n);
    if (ok && c.schema && !b->ops->complete_json) {
        srv_error(r, 400, "unsupported_parameter", "this model cannot decode under a schema");
        ok = false;
    }
    if (!ok) {
        chat_in_deinit(&c);
        cJSON_Delete(j);
        return;
    }
    uint64_t id = atomic_fetch_add(&next_id, 1);
    long long created = (long long)time(NULL);
    sb head;
    sb_init(&head);
    reply_head(r, &head, "chatcmpl", "chat.completion.chunk", id, created);
    sb_puts(&head, ",\"choices\":[{\"index\":0,\"delta\":");
    size_t delta_at = head.len;
    sb_puts(&head, "{\"content\":");
    chunk_stream cs = {.head = sb_str(&head), .tail = "},\"finish_reason\":null}]}\n\n"};
    if (stream) {
        cs.st = srv_stream_begin(r, "text/event-stream");
        srv_stream_printf(cs.st, "data: %.*s{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
                          (int)delta_at, cs.head);
    }
    llm_reply rep = {0};
    char *json = NULL;
    llm_usage u = {0};
    tailor_error err = {0};
    srv_llm_lock(r->srv);
    if (b->ops->set_sampling) b->ops->set_sampling(b, &sp, max_tokens);
    llm_token_logprobs *lp = NULL;
    int n_lp = 0;
    int rc = top_n >= 0  ? b->ops->chat_logprobs(b, c.msgs.data, (int)c.msgs.len, top_n, &rep.text, &lp, &n_lp, &err)
             : c.schema ? b->ops->complete_json(b, c.msgs.data, (int)c.msgs.len, c.schema,
                                                stream ? chunk_text : NULL, &cs, &json, &err)
                        : b->ops->complete(b, c.msgs.data, (int)c.msgs.len, c.tools.data, (int)c.tools.len, c.choice,
                                           stream ? chunk_text : NULL, &cs, &rep, &err);
    if (b->ops->last_usage) b->ops->last_usage(b, &u);
    if (b->ops->set_sampling) b->ops->set_sampling(b, NULL, 0);
    srv_llm_unlock(r->srv);
    srv_count_tokens(r->srv, u.completion_tokens, u.seconds);
    const char *finish = rep.n_calls ? "tool_calls" : u.truncated ? "length" : "stop";
    sb *o = &r->out;
    if (rc && !stream) {
        srv_fail(r, &err);
    } else if (rc) {
        sb_puts(o, "data: {\"error\":{\"code\":\"generation_failed\",\"message\":");
        sb_json_str(o, err.msg, strlen(err.msg));
        sb_puts(o, "}}\n\ndata: [DONE]\n\n");
        srv_stream_write(cs.st, o->buf, o->len);
    } else if (stream) {
        if (rep.n_calls) {
            sb_printf(o, "data: %.*s{\"tool_calls\":", (int)delta_at, cs.head);
            tool_calls_json(o, &rep, id);
            sb_puts(o, "},\"finish_reason\":null}]}\n\n");
        }
        sb_printf(o, "data: %.*s{},\"finish_reason\":\"%s\"}]}\n\n", (int)delta_at, cs.head, finish);
        if (with_usage) {
            sb_puts(o, "data: ");
            reply_head(r, o, "chatcmpl", "chat.completion.chunk", id, created);
            sb_puts(o, ",\"choices\":[],");
            usage_json(o, &u);
            sb_puts(o, "}\n\n");
        }
        sb_puts(o, "data: [DONE]\n\n");
        srv_stream_write(cs.st, o->buf, o->len);
    } else {
        reply_head(r, o, "chatcmpl", "chat.completion", id, created);
        sb_puts(o, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        const char *text = json ? json : rep.text;
        if (rep.n_calls || !text) sb_puts(o, "null");
        else sb_json_str(o, text, strlen(text));
        if (rep.n_calls) {
            sb_puts(o, ",\"tool_calls\":");
            tool_calls_json(o, &rep, id);
        }
        sb_puts(o, ",\"refusal\":null},\"logprobs\":");
        if (top_n >= 0) chat_logprobs_json(o, lp, n_lp);
        else sb_puts(o, "null");
        sb_printf(o, ",\"finish_reason\":\"%s\"}],", finish);
        usage_json(o, &u);
        sb_putc(o, '}');
        srv_json(r, 200);
    }
    if (stream) srv_stream_end(cs.st);
    free(json);
    llm_token_logprobs_free(lp, n_lp);
    llm_reply_deinit(&rep);
    sb_deinit(&head);
    chat_in_deinit(&c);
    cJSON_Delete(j);
}

/* ---- /v1/completions ------------------------------------------------------------- */

/* The legacy completions' logprobs object: tokens, token_logprobs,
 * top_logprobs (one object per token, text -> logprob, the first of equal
 * texts kept) and text_offset (from the prompt's start). */
static void logprobs_json(sb *o, const llm_token_logprobs *lp, int n, size_t offset) {
    sb_puts(o, "{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        if (i) sb_putc(o, ',');
        sb_json_str(o, lp[i].text, strlen(lp[i].text));
    }
    sb_puts(o, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) sb_printf(o, "%s%.6g", i ? "," : "", lp[i].logprob);
    sb_puts(o, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        sb_puts(o, i ? ",{" : "{");
        int w = 0;
        hmap seen;
        hmap_init(&seen, (size_t)lp[i].n_top);
        for (int k = 0; k < lp[i].n_top; k++) {
            int64_t at;
            const char *t = lp[i].top[k].text;
            if (hmap_get(&seen, t, strlen(t), &at)) continue;
            hmap_put(&seen, t, strlen(t), k);
            if (w++) sb_putc(o, ',');
            sb_json_str(o, lp[i].top[k].text, strlen(lp[i].top[k].text));
            sb_printf(o, ":%.6g", lp[i].top[k].logprob);
        }
        hmap_deinit(&seen);
        sb_putc(o, '}');
    }
    sb_puts(o, "],\"text_offset\":[");
    for (int i = 0; i < n; i++) {
        sb_printf(o, "%s%zu", i ? "," : "", offset);
        offset += strlen(lp[i].text);
    }
    sb_puts(o, "]}");
}

void oa_completions(srv_req *r) {
    static const char *const ALLOWED[] = {"model", "prompt", "stream", "stream_options", "temperature", "top_p",
                                          "max_tokens", "seed", "n", "stop", "presence_penalty", "frequency_penalty",
                                          "logprobs", "echo", "user", NULL};
    llm_backend *b = need_llm(r);
    cJSON *j = b ? srv_body_json(r, false) : NULL;
    if (!j) return;
    llm_sampler_params sp;
    int32_t max_tokens;
    bool stream, with_usage;
    const char *stop[4];
    int n_stop = 0;
    bool ok = fields_known(r, j, ALLOWED) && model_ok(r, j) && sampling_read(r, j, &sp, &max_tokens) &&
              stream_flag(r, j, &stream, &with_usage);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    if (ok && cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
    if (ok && !cJSON_IsString(p)) {
        srv_error(r, 400, "invalid_request", "'prompt' is a string (or an array of one)");
        ok = false;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "stop");
    if (ok && s && !cJSON_IsNull(s)) {
        if (cJSON_IsString(s)) stop[n_stop++] = s->valuestring;
        else if (cJSON_IsArray(s) && cJSON_GetArraySize(s) <= 4) {
            const cJSON *x;
            cJSON_ArrayForEach(x, s) {
                if (!cJSON_IsString(x)) ok = false;
                else stop[n_stop++] = x->valuestring;
            }
        } else ok = false;
        if (!ok) srv_error(r, 400, "invalid_request", "'stop' is a string or an array of up to 4 strings");
    }
    const cJSON *echo = cJSON_GetObjectItemCaseSensitive(j, "echo");
    if (ok && cJSON_IsTrue(echo)) {
        srv_error(r, 400, "unsupported_parameter", "'echo' is not supported");
        ok = false;
    }
    /* logprobs: N, the top N alternatives of every token (OpenAI allows up
     * to 5 here; a scorer may want every candidate, so up to 10,000). */
    const cJSON *lpj = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    int top_n = -1;
    if (ok && lpj && !cJSON_IsNull(lpj)) {
        if (!whole_in(lpj, 0, 10000)) {
            srv_error(r, 400, "invalid_request", "'logprobs' is an integer from 0 to 10000");
            ok = false;
        } else if (stream) {
            srv_error(r, 400, "unsupported_parameter", "'logprobs' with 'stream' is not supported");
            ok = false;
        } else if (!b->ops->complete_logprobs) {
            srv_error(r, 400, "unsupported_parameter", "this model does not report log-probabilities");
            ok = false;
        } else {
            top_n = (int)lpj->valuedouble;
        }
    }
    if (ok && !b->ops->complete_text) {
        srv_error(r, 400, "unsupported_parameter", "this model does not complete plain text");
        ok = false;
    }
    if (!ok) {
        cJSON_Delete(j);
        return;
    }
    uint64_t id = atomic_fetch_add(&next_id, 1);
    long long created = (long long)time(NULL);
    sb head;
    sb_init(&head);
    reply_head(r, &head, "cmpl", "text_completion", id, created);
    sb_puts(&head, ",\"choices\":[{\"text\":");
    chunk_stream ts = {.head = sb_str(&head), .tail = ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n"};
    if (stream) ts.st = srv_stream_begin(r, "text/event-stream");
    char *text = NULL;
    llm_usage u = {0};
    tailor_error err = {0};
    srv_llm_lock(r->srv);
    if (b->ops->set_sampling) b->ops->set_sampling(b, &sp, max_tokens ? max_tokens : 16);
    llm_token_logprobs *lp = NULL;
    int n_lp = 0;
    int rc = top_n >= 0 ? b->ops->complete_logprobs(b, p->valuestring, top_n, stop, n_stop, &text, &lp, &n_lp, &err)
                        : b->ops->complete_text(b, p->valuestring, stop, n_stop, stream ? chunk_text : NULL, &ts, &text,
                                                &err);
    if (b->ops->last_usage) b->ops->last_usage(b, &u);
    if (b->ops->set_sampling) b->ops->set_sampling(b, NULL, 0);
    srv_llm_unlock(r->srv);
    srv_count_tokens(r->srv, u.completion_tokens, u.seconds);
    const char *finish = u.truncated ? "length" : "stop";
    sb *o = &r->out;
    if (rc && !stream) {
        srv_fail(r, &err);
    } else if (stream) {
        if (rc) {
            sb_puts(o, "data: {\"error\":{\"code\":\"generation_failed\",\"message\":");
            sb_json_str(o, err.msg, strlen(err.msg));
            sb_puts(o, "}}\n\n");
        } else {
            sb_printf(o, "data: %s\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]", ts.head, finish);
            if (with_usage) {
                sb_putc(o, ',');
                usage_json(o, &u);
            }
            sb_puts(o, "}\n\n");
        }
        sb_puts(o, "data: [DONE]\n\n");
        srv_stream_write(ts.st, o->buf, o->len);
        srv_stream_end(ts.st);
    } else {
        sb_puts(o, ts.head);
        sb_json_str(o, text, strlen(text));
        sb_puts(o, ",\"index\":0,\"logprobs\":");
        if (top_n >= 0) logprobs_json(o, lp, n_lp, strlen(p->valuestring));
        else sb_puts(o, "null");
        sb_printf(o, ",\"finish_reason\":\"%s\"}],", finish);
        usage_json(o, &u);
        sb_putc(o, '}');
        srv_json(r, 200);
    }
    free(text);
    llm_token_logprobs_free(lp, n_lp);
    sb_deinit(&head);
    cJSON_Delete(j);
}

/* ---- /v1/embeddings ---------------------------------------------------------------- */

static void base64(sb *o, const unsigned char *p, size_t n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        sb_putc(o, T[v >> 18 & 63]);
        sb_putc(o, T[v >> 12 & 63]);
        sb_putc(o, i + 1 < n ? T[v >> 6 & 63] : '=');
        sb_putc(o, i + 2 < n ? T[v & 63] : '=');
    }
}

void oa_embeddings(srv_req *r) {
    static const char *const ALLOWED[] = {"model", "input", "encoding_format", "dimensions", "user", NULL};
    llm_backend *b = need_llm(r);
    cJSON *j = b ? srv_body_json(r, false) : NULL;
    if (!j) return;
    bool ok = fields_known(r, j, ALLOWED) && model_ok(r, j);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
    int n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    if (ok && (n < 1 || n > 256)) {
        srv_error(r, 400, "invalid_request", "'input' is a string or an array of 1-256 strings");
        ok = false;
    }
    for (int i = 0; ok && cJSON_IsArray(in) && i < n; i++)
        if (!cJSON_IsString(cJSON_GetArrayItem(in, i))) {
            srv_error(r, 400, "unsupported_parameter", "input[%d]: only strings are supported (not token arrays)", i);
            ok = false;
        }
    const char *fmt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "encoding_format"));
    if (ok && fmt && strcmp(fmt, "float") && strcmp(fmt, "base64")) {
        srv_error(r, 400, "invalid_request", "'encoding_format' is float or base64");
        ok = false;
    }
    if (ok && !b->ops->embed) {
        srv_error(r, 400, "unsupported_parameter", "this model gives no embeddings");
        ok = false;
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(j, "dimensions");
    sb *o = &r->out;
    if (ok) sb_puts(o, "{\"object\":\"list\",\"data\":[");
    int64_t tokens = 0;
    for (int i = 0; ok && i < n; i++) {
        const char *text = cJSON_IsString(in) ? in->valuestring : cJSON_GetArrayItem(in, i)->valuestring;
        float *v = NULL;
        int32_t dim = 0;
        tailor_error err = {0};
        srv_llm_lock(r->srv);
        int rc = b->ops->embed(b, text, strlen(text), &v, &dim, &err);
        srv_llm_unlock(r->srv);
        tokens += b->ops->count_tokens(b, text, strlen(text));
        if (!rc && dims && !cJSON_IsNull(dims) && (!cJSON_IsNumber(dims) || dims->valueint != dim)) {
            srv_error(r, 400, "unsupported_parameter", "'dimensions' can only be this model's %d", dim);
            ok = false;
        } else if (rc) {
            srv_fail(r, &err);
            ok = false;
        } else {
            sb_printf(o, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
            if (fmt && !strcmp(fmt, "base64")) {
                sb_putc(o, '"');
                base64(o, (const unsigned char *)v, (size_t)dim * sizeof *v); /* little-endian float32, as OpenAI */
                sb_putc(o, '"');
            } else {
                sb_putc(o, '[');
                for (int32_t d = 0; d < dim; d++) sb_printf(o, "%s%.9g", d ? "," : "", v[d]);
                sb_putc(o, ']');
            }
            sb_putc(o, '}');
        }
        free(v);
    }
    if (ok) {
        sb_puts(o, "],\"model\":");
        sb_json_str(o, srv_llm_name(r->srv), strlen(srv_llm_name(r->srv)));
        sb_printf(o, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)tokens, (long long)tokens);
        srv_json(r, 200);
    }
    cJSON_Delete(j);
}
