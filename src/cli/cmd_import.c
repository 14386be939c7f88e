/* cmd_import.c — `tailor import ...`: flags to importer params, a one-line
 * summary on success, the importer's file:line message on failure. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ingest/ingest.h"

static void print_stats(const char *what, const ing_stats *st) {
    double rate = st->seconds > 0 ? (double)st->events / st->seconds : 0;
    printf("imported %s: %lld users, %lld items, %lld events, %lld tags", what,
           (long long)st->users, (long long)st->items, (long long)st->events, (long long)st->tags);
    if (st->triples || st->links)
        printf(", %lld triples, %lld entities linked to items", (long long)st->triples, (long long)st->links);
    if (st->skipped) printf(", %lld duplicates skipped", (long long)st->skipped);
    if (st->replaced) printf(", %lld duplicates replaced", (long long)st->replaced);
    printf(" in %.2f s", st->seconds);
    if (st->events) printf(" (%.0f events/s)", rate);
    printf("\n");
    if (st->ts_first)
        printf("no time column: events keep the file's order, with times %lld..%lld (after every stored event)\n",
               (long long)st->ts_first, (long long)st->ts_last);
}

static bool parse_format(const cli_args *a, ing_table_format *out) {
    const char *f = cli_opt_get(a, "format");
    *out = ING_TABLE_AUTO;
    if (!f) return true;
    if (!strcmp(f, "csv")) *out = ING_TABLE_CSV;
    else if (!strcmp(f, "tsv")) *out = ING_TABLE_TSV;
    else if (!strcmp(f, "jsonl") || !strcmp(f, "ndjson")) *out = ING_TABLE_JSONL;
    else return false;
    return true;
}

typedef int (*import_fn)(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st,
                         tailor_error *err);

static int run_import(cli_args *a, store_dup_policy def_dup, import_fn fn) {
    store_dup_policy dup;
    if (!cli_dup_policy(a, def_dup, &dup))
        return cli_usage_error(a, "--on-duplicate must be error, skip, replace or keep");
    int code;
    store *s = cli_open_store(a, false, &code);
    if (!s) return code;
    ing_stats st;
    tailor_error err = {0};
    int rc = fn(s, a, dup, &st, &err);
    store_close(s);
    if (rc) {
        fprintf(stderr, "tailor: import failed, database unchanged: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    print_stats(a->npos ? a->pos[0] : "the catalogue's own triples", &st);
    return EX_OK;
}

static int do_movielens(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st,
                        tailor_error *err) {
    ing_movielens_params p = {.dup = dup};
    return ing_movielens(s, a->pos[0], p, st, err);
}

int cmd_import_movielens(cli_args *a) { return run_import(a, STORE_DUP_ERROR, do_movielens); }

static int do_sequences(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st,
                        tailor_error *err) {
    ing_sequences_params p = {.attributes = cli_opt_get(a, "attributes"),
                              .kind = cli_opt_get(a, "kind"),
                              .dup = dup};
    return ing_sequences(s, a->pos[0], p, st, err);
}

int cmd_import_sequences(cli_args *a) { return run_import(a, STORE_DUP_KEEP, do_sequences); }

static int do_events(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st,
                     tailor_error *err) {
    ing_events_params p = {.user_col = cli_opt_get(a, "user"),
                           .item_col = cli_opt_get(a, "item"),
                           .time_col = cli_opt_get(a, "time"),
                           .value_col = cli_opt_get(a, "value"),
                           .kind_col = cli_opt_get(a, "kind"),
                           .default_kind = cli_opt_get(a, "default-kind"),
                           .dup = dup};
    parse_format(a, &p.format);
    return ing_events(s, a->pos[0], p, st, err);
}

int cmd_import_events(cli_args *a) {
    ing_table_format f;
    if (!parse_format(a, &f)) return cli_usage_error(a, "--format must be csv, tsv or jsonl");
    return run_import(a, STORE_DUP_KEEP, do_events);
}

static int do_items(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st,
                    tailor_error *err) {
    ing_items_params p = {.id_col = cli_opt_get(a, "id"),
                          .title_col = cli_opt_get(a, "title"),
                          .text_col = cli_opt_get(a, "text"),
                          .dup = dup};
    parse_format(a, &p.format);
    return ing_items(s, a->pos[0], p, st, err);
}

int cmd_import_items(cli_args *a) {
    ing_table_format f;
    if (!parse_format(a, &f)) return cli_usage_error(a, "--format must be csv, tsv or jsonl");
    if (cli_opt_get(a, "on-duplicate") && !strcmp(cli_opt_get(a, "on-duplicate"), "keep"))
        return cli_usage_error(a, "--on-duplicate keep applies to events; items use error, skip or replace");
    return run_import(a, STORE_DUP_ERROR, do_items);
}

static int do_kg(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st, tailor_error *err) {
    ing_kg_params p = {.entity_map = cli_opt_get(a, "entity-map"),
                       .relation_names = cli_opt_get(a, "relation-names"),
                       .dup = dup};
    return ing_kg(s, a->pos[0], p, st, err);
}

int cmd_import_kg(cli_args *a) { return run_import(a, STORE_DUP_ERROR, do_kg); }

static int do_kg_derive(store *s, const cli_args *a, store_dup_policy dup, ing_stats *st, tailor_error *err) {
    (void)a, (void)dup;
    return ing_kg_derive(s, st, err);
}

int cmd_kg_derive(cli_args *a) { return run_import(a, STORE_DUP_SKIP, do_kg_derive); }
