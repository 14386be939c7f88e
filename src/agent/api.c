/* api.c — the public agent API of include/tailor.h over src/agent. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "tailor.h"

struct tailor_agent {
    pz_engine *e;
    llm_backend *b;
    agent *a;
};

tailor_agent_params tailor_agent_default_params(void) {
    tailor_agent_params p;
    memset(&p, 0, sizeof p);
    return p;
}

void tailor_agent_free(tailor_agent *t) {
    if (!t) return;
    agent_free(t->a);
    if (t->b) t->b->ops->free(t->b);
    pz_engine_free(t->e);
    free(t);
}

int tailor_agent_new(tailor_store *st, tailor_agent_params p, tailor_agent **out, tailor_error *err) {
    *out = NULL;
    if (p.gguf && p.llm_url) return err_set(err, TAILOR_EINVAL, "agent: give a GGUF model or a server URL, not both");
    agent_params ap = agent_default_params();
    ap.user = p.user;
    ap.session = p.session;
    ap.model = p.recommender;
    if (p.memory && !agent_memory_parse(p.memory, &ap.memory))
        return err_set(err, TAILOR_EINVAL, "agent: memory is truncate, summarize or retrieve, not '%s'", p.memory);
    tailor_agent *t = calloc(1, sizeof *t);
    if (!t) return err_set(err, TAILOR_ENOMEM, "out of memory");
    int rc = pz_engine_new(st, &t->e, err);
    if (!rc && p.gguf) {
        llm_local_params lp = llm_local_default_params();
        lp.model = p.gguf;
        lp.chat_format = p.chat_format;
        rc = llm_local_backend_new(&lp, &t->b, err);
    } else if (!rc && p.llm_url) {
        llm_remote_params rp = llm_remote_default_params();
        rp.url = p.llm_url;
        if (p.llm_model) rp.model = p.llm_model;
        rc = llm_remote_backend_new(&rp, &t->b, err);
    } else if (!rc) {
        rc = agent_rules_new(t->e, &t->b, err);
    }
    if (!rc) rc = agent_new(t->e, t->b, ap, &t->a, err);
    if (rc) {
        tailor_agent_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int64_t tailor_agent_session(const tailor_agent *t) { return agent_session(t->a); }

typedef struct relay {
    tailor_stream_fn cb;
    void *ud;
} relay;

static bool relay_text(void *ud, const char *text, size_t n) {
    relay *r = ud;
    return r->cb(r->ud, text, n) != 0;
}

int tailor_agent_turn(tailor_agent *t, const char *text, tailor_stream_fn cb, void *user_data, char **json_out,
                      tailor_error *err) {
    if (json_out) *json_out = NULL;
    relay r = {cb, user_data};
    agent_reply rep;
    int rc = agent_turn(t->a, text, cb ? relay_text : NULL, &r, &rep, err);
    if (rc) return rc;
    if (json_out) {
        sb o;
        sb_init(&o);
        agent_reply_json(&rep, &o);
        *json_out = sb_take(&o);
    }
    agent_reply_deinit(&rep);
    return 0;
}

void tailor_free(void *p) { free(p); }
