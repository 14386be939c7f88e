/* cmd_datasets.c — `tailor datasets list|fetch`. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "ingest/ingest.h"

int cmd_datasets_list(cli_args *a) {
    char *root = cli_opt_get(a, "dir") ? xstrdup(cli_opt_get(a, "dir")) : ing_cache_dir();
    size_t n;
    const ing_dataset *d = ing_datasets(&n);
    printf("%-16s %-7s %s\n", "name", "cached", "description");
    for (size_t i = 0; i < n; i++) {
        char *dir = NULL;
        bool cached = ing_dataset_cached(&d[i], root, &dir);
        printf("%-16s %-7s %s\n", d[i].name, cached ? "yes" : "no", d[i].summary);
        free(dir);
    }
    printf("\ncache: %s\n", root);
    free(root);
    return EX_OK;
}

int cmd_datasets_fetch(cli_args *a) {
    const ing_dataset *d = ing_dataset_find(a->pos[0]);
    if (!d) return cli_usage_error(a, "unknown dataset '%s' ('tailor datasets list' shows them)", a->pos[0]);
    ing_fetch_params p = {.dir = cli_opt_get(a, "dir"),
                          .from = cli_opt_get(a, "from"),
                          .sha256 = cli_opt_get(a, "sha256"),
                          .base_url = cli_opt_get(a, "url"),
                          .force = cli_flag(a, "force")};
    char *dir = NULL;
    tailor_error err = {0};
    if (ing_dataset_fetch(d, p, &dir, &err)) return cli_fail(&err);
    printf("%s\n", dir);
    free(dir);
    return EX_OK;
}
