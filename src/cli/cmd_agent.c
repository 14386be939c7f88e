/* cmd_agent.c — `tailor ask` (one turn, for scripts) and `tailor chat` (a
 * conversation with line editing and history): the agent over the rules
 * backend, which needs no language model. A session lives in the store,
 * so successive `ask --session S` calls continue one conversation. */
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"

typedef struct chat_face {
    store *s;
    pz_engine *e;
    llm_backend *b;
    agent *a;
} chat_face;

static void face_close(chat_face *f) {
    agent_free(f->a);
    if (f->b) f->b->ops->free(f->b);
    pz_engine_free(f->e);
    store_close(f->s);
}

static int face_open(cli_args *a, chat_face *f) {
    memset(f, 0, sizeof *f);
    agent_params p = agent_default_params();
    p.user = cli_opt_get(a, "user");
    p.model = cli_opt_get(a, "recommender");
    const char *sess = cli_opt_get(a, "session");
    if (sess) {
        int64_t id;
        if (!parse_i64(sess, strlen(sess), &id) || id <= 0) return cli_usage_error(a, "--session takes a session id");
        p.session = id;
    }
    int code;
    f->s = cli_open_store(a, true, &code);
    if (!f->s) return code;
    tailor_error err = {0};
    int rc = pz_engine_new(f->s, &f->e, &err);
    const char *model = cli_opt_get(a, "model");
    if (!rc && model) {
        /* A GGUF model answers and calls the tools (constrained decoding). */
        llm_local_params lp = llm_local_default_params();
        lp.model = model;
        lp.chat_format = cli_opt_get(a, "chat-template");
        long x;
        const char *v;
        if ((v = cli_opt_get(a, "temp"))) {
            double t;
            if (!parse_f64(v, strlen(v), &t) || t < 0 || t > 100) code = cli_usage_error(a, "--temp takes a number from 0 to 100");
            lp.sampling.temperature = (float)t;
        }
        if (!cli_opt_int(a, "seed", 0, 0, INT64_MAX, &x)) code = cli_usage_error(a, "bad --seed");
        lp.sampling.seed = cli_opt_get(a, "seed") ? (uint64_t)x : timer_now_ns();
        if (!cli_opt_int(a, "ctx", 0, 0, 1 << 20, &x)) code = cli_usage_error(a, "bad --ctx");
        lp.ctx.n_ctx = (int32_t)x;
        if (!cli_opt_int(a, "threads", 0, 0, 256, &x)) code = cli_usage_error(a, "bad --threads");
        lp.ctx.n_threads = (int32_t)x;
        if (code) {
            face_close(f);
            return code;
        }
        rc = llm_local_backend_new(&lp, &f->b, &err);
    } else if (!rc) {
        rc = agent_rules_new(f->e, &f->b, &err);
    }
    if (!rc) rc = agent_new(f->e, f->b, p, &f->a, &err);
    if (rc) {
        face_close(f);
        return cli_fail(&err);
    }
    return 0;
}

static bool stream_out(void *ud, const char *text, size_t n) {
    (void)ud;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return true;
}

static void print_calls(const agent_reply *r) {
    for (int i = 0; i < r->n_calls; i++)
        fprintf(stderr, "[tool %s %s: %.1f ms%s]\n", r->calls[i].name, r->calls[i].arguments, r->calls[i].ms,
                r->calls[i].ok ? "" : ", refused");
}

int cmd_ask(cli_args *a) {
    sb text;
    sb_init(&text);
    for (int i = 0; i < a->npos; i++) sb_printf(&text, "%s%s", i ? " " : "", a->pos[i]);
    chat_face f;
    int code = face_open(a, &f);
    if (code) {
        sb_deinit(&text);
        return code;
    }
    bool json = cli_flag(a, "json");
    agent_reply r;
    tailor_error err = {0};
    int rc = agent_turn(f.a, sb_str(&text), json ? NULL : stream_out, NULL, &r, &err);
    if (rc) {
        code = cli_fail(&err);
    } else {
        if (json) {
            sb o;
            sb_init(&o);
            agent_reply_json(&r, &o);
            printf("%s\n", sb_str(&o));
            sb_deinit(&o);
        } else {
            printf("\n");
            fflush(stdout);
            if (cli_flag(a, "verbose")) print_calls(&r);
            if (!a->quiet) fprintf(stderr, "(session %lld)\n", (long long)r.session);
        }
        agent_reply_deinit(&r);
    }
    face_close(&f);
    sb_deinit(&text);
    return code;
}

int cmd_chat(cli_args *a) {
    chat_face f;
    int code = face_open(a, &f);
    if (code) return code;
    bool tty = isatty(STDIN_FILENO), verbose = cli_flag(a, "verbose");
    if (!a->quiet)
        fprintf(stderr, "tailor chat (%s backend), session %lld%s%s; /exit or Ctrl-D leaves\n", f.b->ops->name,
                (long long)agent_session(f.a), cli_opt_get(a, "user") ? ", user " : "",
                cli_opt_get(a, "user") ? cli_opt_get(a, "user") : "");
    if (tty) using_history();
    char buf[4096];
    for (;;) {
        char *line = NULL;
        if (tty) {
            line = readline("> ");
            if (!line) break;
            if (*line) add_history(line);
        } else {
            if (!fgets(buf, sizeof buf, stdin)) break;
            buf[strcspn(buf, "\r\n")] = 0;
            line = strdup(buf);
        }
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        }
        if (!*line) {
            free(line);
            continue;
        }
        agent_reply r;
        tailor_error err = {0};
        if (agent_turn(f.a, line, stream_out, NULL, &r, &err)) {
            fprintf(stderr, "tailor: %s\n", err.msg);
        } else {
            printf("\n");
            fflush(stdout);
            if (verbose) print_calls(&r);
            agent_reply_deinit(&r);
        }
        fflush(stdout);
        free(line);
    }
    face_close(&f);
    return EX_OK;
}
