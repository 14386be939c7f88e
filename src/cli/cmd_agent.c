/* cmd_agent.c — `tailor ask` (one turn, for scripts) and `tailor chat` (a
 * conversation with line editing and history): the agent over the rules
 * backend, which needs no language model. A session lives in the store,
 * so successive `ask --session S` calls continue one conversation. */
#include <editline/readline.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "eval/eval.h"
#include "know/know.h"

typedef struct chat_face {
    store *s;
    pz_engine *e;
    llm_backend *b;
    agent *a;
    kg_index *x;
    kg_retriever r;
    bool retrieving;
} chat_face;

static void face_close(chat_face *f) {
    agent_free(f->a);
    if (f->retrieving) kg_retriever_close(&f->r);
    kg_index_close(f->x);
    if (f->b) f->b->ops->free(f->b);
    pz_engine_free(f->e);
    store_close(f->s);
}

/* The language model the options name (--model or --llm-url), or NULL
 * when they name none; returns an exit code. */
int cli_backend_new(cli_args *a, const char *threads_opt, llm_backend **out) {
    *out = NULL;
    const char *model = cli_opt_get(a, "model"), *url = cli_opt_get(a, "llm-url");
    if (model && url) return cli_usage_error(a, "give --model FILE or --llm-url URL, not both");
    if (cli_opt_get(a, "lora") && !model) return cli_usage_error(a, "--lora applies to a local --model");
    const char *v = cli_opt_get(a, "temp");
    double temp = -1;
    if (v && (!parse_f64(v, strlen(v), &temp) || temp < 0 || temp > (url ? 2 : 100)))
        return cli_usage_error(a, "--temp takes a number from 0 to %d", url ? 2 : 100);
    long seed, ctx, threads;
    if (!cli_opt_int(a, "seed", 0, 0, INT64_MAX, &seed)) return cli_usage_error(a, "bad --seed");
    if (!cli_opt_int(a, "ctx", 0, 0, 1 << 20, &ctx)) return cli_usage_error(a, "bad --ctx");
    if (!cli_opt_int(a, threads_opt, 0, 0, 256, &threads)) return cli_usage_error(a, "bad --%s", threads_opt);
    tailor_error err = {0};
    int rc = 0;
    if (url) {
        llm_remote_params rp = llm_remote_default_params();
        rp.url = url;
        if (cli_opt_get(a, "llm-model")) rp.model = cli_opt_get(a, "llm-model");
        if (temp >= 0) rp.sampling.temperature = (float)temp;
        if (cli_opt_get(a, "seed")) rp.sampling.seed = (uint64_t)seed;
        rc = llm_remote_backend_new(&rp, out, &err);
    } else if (model) {
        /* A GGUF model answers and calls the tools (constrained decoding). */
        llm_local_params lp = llm_local_default_params();
        lp.model = model;
        lp.chat_format = cli_opt_get(a, "chat-template");
        lp.lora = cli_opt_get(a, "lora");
        const char *ls = cli_opt_get(a, "lora-scale");
        double scale = 1;
        if (ls && (!parse_f64(ls, strlen(ls), &scale) || !isfinite(scale)))
            return cli_usage_error(a, "--lora-scale takes a number (1 = as trained, 0 = off)");
        lp.lora_scale = (float)scale;
        if (temp >= 0) lp.sampling.temperature = (float)temp;
        lp.sampling.seed = cli_opt_get(a, "seed") ? (uint64_t)seed : timer_now_ns();
        lp.ctx.n_ctx = (int32_t)ctx;
        lp.ctx.n_threads = (int32_t)threads;
        rc = llm_local_backend_new(&lp, out, &err);
    }
    return rc ? cli_fail(&err) : 0;
}

/* The store, the engine and the backend the options name (no agent yet). */
static int backend_open(cli_args *a, chat_face *f) {
    memset(f, 0, sizeof *f);
    int code = cli_backend_new(a, "threads", &f->b);
    if (code) return code;
    f->s = cli_open_store(a, true, &code);
    if (!f->s) {
        if (f->b) f->b->ops->free(f->b);
        f->b = NULL;
        return code;
    }
    tailor_error err = {0};
    int rc = pz_engine_new(f->s, &f->e, &err);
    if (!rc && !f->b) rc = agent_rules_new(f->e, &f->b, &err);
    if (rc) {
        face_close(f);
        return cli_fail(&err);
    }
    return 0;
}

static int face_open(cli_args *a, chat_face *f) {
    agent_params p = agent_default_params();
    p.user = cli_opt_get(a, "user");
    p.model = cli_opt_get(a, "recommender");
    if (cli_opt_get(a, "memory") && !agent_memory_parse(cli_opt_get(a, "memory"), &p.memory))
        return cli_usage_error(a, "--memory is truncate, summarize or retrieve");
    const char *sess = cli_opt_get(a, "session");
    if (sess) {
        int64_t id;
        if (!parse_i64(sess, strlen(sess), &id) || id <= 0) return cli_usage_error(a, "--session takes a session id");
        p.session = id;
    }
    int code = backend_open(a, f);
    if (code) return code;
    tailor_error err = {0};
    /* The item index, when there is one, lets the search tool find by
     * meaning too; without it (or its model) the agent searches words. */
    const char *ix = cli_opt_get(a, "index");
    int rc = kg_index_open_for(a->files, ix, &f->x, &err);
    if (!rc && f->x) {
        rc = kg_retriever_open(&f->r, f->x, NULL, &err);
        f->retrieving = rc == 0;
        if (rc && !ix) { /* the default index's model is gone: words only */
            log_warn("the vector index's model is not usable (%s): the agent searches words only", err.msg);
            rc = 0, err = (tailor_error){0};
        }
    }
    if (rc) {
        face_close(f);
        return cli_fail(&err);
    }
    if (f->retrieving) p.retriever = &f->r;
    if (agent_new(f->e, f->b, p, &f->a, &err)) {
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

/* --json FILE: the experiment's figures. */
static int write_json_opt(const cli_args *a, const sb *json, tailor_error *err) {
    const char *path = cli_opt_get(a, "json");
    if (!path) return 0;
    FILE *o = fopen(path, "wb");
    int rc = !o || fprintf(o, "%s\n", sb_str(json)) < 0 ? err_set(err, TAILOR_EIO, "cannot write %s", path) : 0;
    if (o) fclose(o);
    return rc;
}

/* experiment hallucination: the graph's completion methods, with the
 * language model the options name (none: the embedding rows). */
static int experiment_hallucination(cli_args *a) {
    eval_halluc_params p = eval_halluc_default_params();
    long queries, samples, epochs;
    if (!cli_opt_int(a, "queries", 200, 1, 1000000, &queries)) return cli_usage_error(a, "--queries takes a number");
    if (!cli_opt_int(a, "samples", 5, 1, 100, &samples)) return cli_usage_error(a, "--samples takes 1 to 100");
    if (!cli_opt_int(a, "epochs", 100, 0, 100000, &epochs)) return cli_usage_error(a, "--epochs takes a number");
    p.queries = (int)queries, p.samples = (int)samples, p.kge_epochs = (int)epochs;
    p.report_dir = cli_opt_get(a, "report");
    if (cli_opt_get(a, "seed")) p.seed = strtoull(cli_opt_get(a, "seed"), NULL, 10);
    llm_backend *b;
    int code = cli_backend_new(a, "threads", &b);
    if (code) return code;
    store *s = cli_open_store(a, true, &code);
    if (!s) {
        if (b) b->ops->free(b);
        return code;
    }
    tailor_error err = {0};
    pz_engine *e = NULL;
    pz_engine_new(s, &e, NULL);
    p.llm = b;
    sb json;
    sb_init(&json);
    int rc = eval_hallucination(s, e, p, stdout, &json, &err);
    if (!rc) rc = write_json_opt(a, &json, &err);
    sb_deinit(&json);
    pz_engine_free(e);
    store_close(s);
    if (b) b->ops->free(b);
    return rc ? cli_fail(&err) : EX_OK;
}

/* experiment cold-items: content against items without events. */
static int experiment_cold(cli_args *a) {
    eval_cold_params p = eval_cold_default_params();
    long k, min_events;
    double hide = p.hide;
    const char *h = cli_opt_get(a, "hide");
    if (h && (!parse_f64(h, strlen(h), &hide) || hide <= 0 || hide >= 1))
        return cli_usage_error(a, "--hide takes a share between 0 and 1");
    if (!cli_opt_int(a, "k", 20, 1, 1000, &k)) return cli_usage_error(a, "-k takes 1 to 1000");
    if (!cli_opt_int(a, "min-events", 5, 1, 1000000, &min_events)) return cli_usage_error(a, "--min-events takes a number");
    p.hide = hide, p.k = (int)k, p.min_events = (int)min_events;
    if (cli_opt_get(a, "seed")) p.seed = strtoull(cli_opt_get(a, "seed"), NULL, 10);
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    kg_index *x = NULL;
    sb json;
    sb_init(&json);
    int rc = kg_index_open_for(a->files, cli_opt_get(a, "index"), &x, &err);
    p.index = x;
    if (!rc) rc = eval_cold_items(s, p, stdout, &json, &err);
    if (!rc) rc = write_json_opt(a, &json, &err);
    sb_deinit(&json);
    kg_index_close(x);
    store_close(s);
    return rc ? cli_fail(&err) : EX_OK;
}

/* experiment llm-ranker, icl-shots, llm-generative, llm-vs-traditional:
 * the language model (and its adapter) the options name, then the one
 * library function of the experiment. */
static int experiment_llm_ranker(cli_args *a, bool icl) {
    eval_llmrank_params p = eval_llmrank_default_params();
    long cands, hist, users, ctx, threads, shots;
    if (!cli_opt_int(a, "shots", 0, 0, 20, &shots)) return cli_usage_error(a, "--shots takes 0 to 20");
    if (strcmp(a->pos[0], "llm-ranker") && strcmp(a->pos[0], "llm-generative") && cli_opt_get(a, "export"))
        return cli_usage_error(a, "%s measures; --export is llm-ranker's and llm-generative's", a->pos[0]);
    if (!cli_opt_int(a, "candidates", 20, 2, 26, &cands)) return cli_usage_error(a, "--candidates takes 2 to 26");
    if (!cli_opt_int(a, "history", 10, 1, 200, &hist)) return cli_usage_error(a, "--history takes 1 to 200");
    if (!cli_opt_int(a, "users", 200, 1, 10000000, &users)) return cli_usage_error(a, "--users takes a number");
    if (!cli_opt_int(a, "ctx", 2048, 64, 1 << 20, &ctx)) return cli_usage_error(a, "bad --ctx");
    if (!cli_opt_int(a, "threads", 0, 0, 1024, &threads)) return cli_usage_error(a, "bad --threads");
    p.candidates = (int)cands, p.history = (int)hist, p.users = (int)users;
    if (cli_opt_get(a, "retriever")) p.retriever = cli_opt_get(a, "retriever");
    if (cli_opt_get(a, "seed")) p.seed = strtoull(cli_opt_get(a, "seed"), NULL, 10);
    p.export_path = cli_opt_get(a, "export");
    const char *model = cli_opt_get(a, "model"), *url = cli_opt_get(a, "llm-url");
    bool versus = !strcmp(a->pos[0], "llm-vs-traditional"), ranks = icl || !strcmp(a->pos[0], "llm-ranker");
    long top;
    if (!cli_opt_int(a, "top-logprobs", 20, 1, 10000, &top)) return cli_usage_error(a, "--top-logprobs takes 1 to 10000");
    p.top_logprobs = (int)top;
    if (model && url) return cli_usage_error(a, "give --model FILE or --llm-url URL, not both");
    p.ids_path = cli_opt_get(a, "ids");
    if (p.ids_path && strcmp(a->pos[0], "llm-generative"))
        return cli_usage_error(a, "--ids is llm-generative's (items written as semantic IDs)");
    if (url && !ranks)
        return cli_usage_error(a, "%s decodes with a local model (--model); --llm-url serves llm-ranker and icl-shots",
                               a->pos[0]);
    if (!p.export_path && !model && !url && !versus)
        return cli_usage_error(a, "--model FILE.gguf or --llm-url URL ranks (or --export FILE writes %s)",
                               ranks ? "examples" : "the training text");
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    llm_model *m = NULL;
    llm_ctx *c = NULL;
    int rc = 0;
    if (!p.export_path && model) {
        llm_ctx_params cp = llm_ctx_default_params();
        cp.n_ctx = (int32_t)ctx, cp.n_threads = (int32_t)threads;
        rc = llm_model_load(model, &m, &err);
        if (!rc) rc = llm_ctx_new(m, cp, &c, &err);
        if (!rc && (code = cli_lora_opts(a, c))) {
            llm_ctx_free(c);
            llm_model_free(m);
            store_close(s);
            return code;
        }
        p.lm = m, p.ctx = c;
    }
    llm_backend *b = NULL;
    if (!p.export_path && url && (code = cli_backend_new(a, "threads", &b))) {
        store_close(s);
        return code;
    }
    p.backend = b;
    sb json;
    sb_init(&json);
    p.quiet = a->quiet;
    p.shots = (int)shots;

    const char *name = a->pos[0], *base = strrchr(a->files, '/');
    if (!rc && icl) rc = eval_llm_icl_shots(s, p, stdout, &json, &err);
    else if (!rc && !strcmp(name, "llm-generative")) rc = eval_llm_generative(s, p, stdout, &json, &err);
    else if (!rc && !strcmp(name, "llm-vs-traditional"))
        rc = eval_llm_vs_traditional(s, p, cli_opt_get(a, "models") ? cli_opt_get(a, "models") : "pop,als,ease,sasrec",
                                     base ? base + 1 : a->files, cli_opt_get(a, "report"), stdout, &json, &err);
    else if (!rc) rc = eval_llm_ranker(s, p, stdout, &json, &err);
    if (!rc) rc = write_json_opt(a, &json, &err);
    sb_deinit(&json);
    if (b) b->ops->free(b);
    llm_ctx_free(c);
    llm_model_free(m);
    store_close(s);
    return rc ? cli_fail(&err) : EX_OK;
}

/* experiment agent-data: conversations for fine-tuning a model to drive
 * the agent, made with the rules-free scripted backend of agentdata.c. */
static int experiment_agent_data(cli_args *a) {
    const char *dir = cli_opt_get(a, "export");
    long n, seed;
    if (!dir) return cli_usage_error(a, "agent-data needs --export DIR (train.jsonl and heldout.jsonl go there)");
    if (!cli_opt_int(a, "examples", 2000, 10, 10000000, &n) || !cli_opt_int(a, "seed", 42, 0, INT64_MAX, &seed))
        return cli_usage_error(a, "--examples and --seed take numbers");
    store *s = NULL;
    pz_engine *e = NULL;
    tailor_error err = {0};
    int rc = store_open(a->db_path, store_default_params(), &s, &err);
    if (!rc) rc = pz_engine_new(s, &e, &err);
    int64_t before = rc ? 0 : store_sessions_last(s);
    if (!rc) rc = eval_agent_data(e, dir, (int)n, (uint64_t)seed, stdout, &err);
    if (s) store_sessions_delete_after(s, before, NULL); /* the scripted turns' sessions and facts */
    pz_engine_free(e);
    store_close(s);
    return rc ? cli_fail(&err) : EX_OK;
}

/* experiment semantic-ids: codes learned from a recommender's item
 * vectors, and the training sequences written in them. */
static int experiment_semantic_ids(cli_args *a) {
    eval_llmrank_params p = eval_llmrank_default_params();
    const char *dir = cli_opt_get(a, "export");
    long levels, codebook, seed;
    if (!dir) return cli_usage_error(a, "semantic-ids needs --export DIR (codes.tsv and train.txt go there)");
    if (!cli_opt_int(a, "levels", 3, 1, 8, &levels)) return cli_usage_error(a, "--levels takes 1 to 8");
    if (!cli_opt_int(a, "codebook", 64, 2, 4096, &codebook)) return cli_usage_error(a, "--codebook takes 2 to 4096");
    if (!cli_opt_int(a, "seed", 42, 0, INT64_MAX, &seed)) return cli_usage_error(a, "bad --seed");
    p.id_levels = (int)levels, p.id_codebook = (int)codebook, p.seed = (uint64_t)seed;
    p.id_balanced = !cli_flag(a, "unbalanced");
    if (cli_opt_get(a, "retriever")) p.retriever = cli_opt_get(a, "retriever");
    int code;
    store *s = cli_open_store(a, true, &code);
    if (!s) return code;
    tailor_error err = {0};
    int rc = eval_semantic_ids(s, p, dir, stdout, &err);
    store_close(s);
    return rc ? cli_fail(&err) : EX_OK;
}

int cmd_experiment(cli_args *a) {
    const char *name = a->pos[0];
    if (!strcmp(name, "semantic-ids")) return experiment_semantic_ids(a);
    if (!strcmp(name, "llm-ranker") || !strcmp(name, "icl-shots") || !strcmp(name, "llm-generative") ||
        !strcmp(name, "llm-vs-traditional"))
        return experiment_llm_ranker(a, name[0] == 'i');
    if (!strcmp(name, "hallucination")) return experiment_hallucination(a);
    if (!strcmp(name, "cold-items")) return experiment_cold(a);
    if (!strcmp(name, "agent-data")) return experiment_agent_data(a);
    bool latency = !strcmp(name, "tool-latency"), stress = !strcmp(name, "context-stress"),
         calls = !strcmp(name, "tool-calls");
    if (!latency && !stress && !calls)
        return cli_usage_error(a,
                               "no experiment '%s' (experiments: tool-latency, context-stress, tool-calls, agent-data, "
                               "hallucination, cold-items, llm-ranker, icl-shots, llm-generative, semantic-ids, "
                               "llm-vs-traditional)",
                               name);
    if (calls && !cli_opt_get(a, "data"))
        return cli_usage_error(a, "tool-calls needs --data FILE (conversations, as agent-data writes them)");
    long rounds, budget, turns, users;
    if (!cli_opt_int(a, "rounds", 10, 1, 10000, &rounds)) return cli_usage_error(a, "--rounds takes a number");
    if (!cli_opt_int(a, "users", 0, 0, INT32_MAX, &users)) return cli_usage_error(a, "--users takes a number");
    if (!cli_opt_int(a, "budget", 2000, 100, 1 << 20, &budget)) return cli_usage_error(a, "--budget takes tokens");
    if (!cli_opt_int(a, "turns", 120, 10, 320, &turns)) return cli_usage_error(a, "--turns takes 10 to 320");
    chat_face f;
    int code = backend_open(a, &f);
    if (code) return code;
    tailor_error err = {0};
    int64_t before = store_sessions_last(f.s);
    sb json;
    sb_init(&json);
    int rc = latency ? eval_tool_latency(f.e, f.b, (int)rounds, stdout, &json, &err)
             : calls ? eval_tool_calls(f.e, f.b, cli_opt_get(a, "data"), (int)users, stdout, &json, &err)
                     : eval_context_stress(f.e, f.b, (int32_t)budget, (int)turns, cli_opt_get(a, "report"), stdout,
                                           &json, &err);
    if (!rc) rc = write_json_opt(a, &json, &err);
    sb_deinit(&json);
    /* The experiments' sessions (and their facts) are measurements, not
     * conversations: they go. */
    store_sessions_delete_after(f.s, before, NULL);
    face_close(&f);
    return rc ? cli_fail(&err) : EX_OK;
}
