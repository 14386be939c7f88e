/* cli.h — the `tailor` program: one table of subcommands (name, arguments,
 * summary, options, handler) that drives parsing, dispatch and --help.
 * Handlers return a sysexits.h code; only main() exits. */
#ifndef TAILOR_CLI_H
#define TAILOR_CLI_H

#include <sysexits.h>

#include "base/base.h"
#include "store/store.h"

typedef struct cli_opt {
    const char *name; /* long name without dashes */
    char short_name;  /* 0 = none */
    const char *arg;  /* metavariable, NULL for a flag */
    const char *help;
} cli_opt;

#define CLI_MAX_OPTS 40

typedef struct cli_args {
    const struct cli_cmd *cmd;
    const char *db_path; /* --db, $TAILOR_DB, or ./tailor.db (a file, or a postgresql:// URL) */
    char *files;         /* store_files_base(db_path): PREFIX.models/, .index/, .reports/ */
    bool quiet;
    /* Values of the command's options, by index in cmd->opts; flags are
     * "1" when given. Repeated options keep the last value. */
    const char *values[CLI_MAX_OPTS];
    /* Every occurrence of repeatable options (--param a=1 --param b=2). */
    const char *multi[CLI_MAX_OPTS][32];
    int nmulti[CLI_MAX_OPTS];
    int npos;
    char **pos; /* positional arguments */
} cli_args;

typedef int (*cli_handler)(cli_args *a);

typedef struct cli_cmd {
    const char *name;    /* "import movielens" */
    const char *usage;   /* positional arguments, e.g. "DIR" */
    const char *summary; /* one line */
    const char *details; /* more help text, may be NULL */
    int min_pos, max_pos;
    cli_opt opts[CLI_MAX_OPTS]; /* ends at the first entry with name NULL */
    cli_handler handler;
} cli_cmd;

const char *cli_opt_get(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);
/* All values given for a repeatable option, in order; *n receives how many. */
const char *const *cli_opt_all(const cli_args *a, const char *name, int *n);
/* Parses a positive integer option (or def when absent); false when bad. */
bool cli_opt_int(const cli_args *a, const char *name, long def, long min, long max, long *out);
/* Maps a tailor_status to a sysexits code. */
int cli_exit_code(int status);
/* Prints "tailor: MESSAGE" for err and returns its exit code. */
int cli_fail(const tailor_error *err);
/* Prints a usage error for the command and returns EX_USAGE. */
int cli_usage_error(const cli_args *a, const char *fmt, ...) BASE_PRINTF(2, 3);
/* Opens the store named by --db, reporting errors; NULL on failure.
 * must_exist: refuse to create a new database (commands that only read). */
store *cli_open_store(const cli_args *a, bool must_exist, int *exit_code);
/* Parses --on-duplicate (or returns def); false on an unknown value. */
bool cli_dup_policy(const cli_args *a, store_dup_policy def, store_dup_policy *out);

/* The language model --model or --llm-url names (NULL when neither), its
 * threads from the option threads_opt; returns an exit code (cmd_agent.c). */
struct llm_backend;
int cli_backend_new(cli_args *a, const char *threads_opt, struct llm_backend **out);
struct llm_ctx;
/* --lora FILE [--lora-scale S] applied to c; 0 or an exit code. */
int cli_lora_opts(cli_args *a, struct llm_ctx *c);

/* Handlers. */
int cmd_version(cli_args *a);
int cmd_stats(cli_args *a);
int cmd_import_movielens(cli_args *a);
int cmd_import_sequences(cli_args *a);
int cmd_import_events(cli_args *a);
int cmd_import_items(cli_args *a);
int cmd_datasets_list(cli_args *a);
int cmd_datasets_fetch(cli_args *a);
int cmd_help(cli_args *a);
int cmd_train(cli_args *a);
int cmd_recommend(cli_args *a);
int cmd_similar(cli_args *a);
int cmd_search(cli_args *a);
int cmd_ask(cli_args *a);
int cmd_chat(cli_args *a);
int cmd_serve(cli_args *a);
int cmd_import_kg(cli_args *a);
int cmd_kg_derive(cli_args *a);
int cmd_kg_stats(cli_args *a);
int cmd_kg_neighbours(cli_args *a);
int cmd_kg_paths(cli_args *a);
int cmd_kg_complete(cli_args *a);
int cmd_index_build(cli_args *a);
/* search --mode vectors|hybrid: *hits (malloc'd) are the nearest items of
 * the vector index, or those fused with the word search (cmd_index.c). */
struct pz_engine;
int cli_vector_hits(cli_args *a, store *s, struct pz_engine *e, const char *query, bool hybrid, store_hit **hits,
                    size_t *n, tailor_error *err);
int cmd_kg_proposals(cli_args *a);
int cmd_kg_accept(cli_args *a);
int cmd_keys_create(cli_args *a);
int cmd_keys_list(cli_args *a);
int cmd_keys_revoke(cli_args *a);
int cmd_experiment(cli_args *a);
int cmd_models_list(cli_args *a);
int cmd_models_show(cli_args *a);
int cmd_models_activate(cli_args *a);
int cmd_models_remove(cli_args *a);
int cmd_eval(cli_args *a);
int cmd_tune(cli_args *a);
int cmd_llm_info(cli_args *a);
int cmd_llm_tokenize(cli_args *a);
int cmd_llm_run(cli_args *a);
int cmd_llm_synth(cli_args *a);
int cmd_llm_train(cli_args *a);
int cmd_llm_finetune(cli_args *a);
int cmd_llm_quantize(cli_args *a);
int cmd_llm_bench(cli_args *a);
int cmd_llm_chat(cli_args *a);
int cmd_llm_embed(cli_args *a);

#endif
