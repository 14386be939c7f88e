/* embed.c — the smallest program that embeds libtailor: open a store,
 * import a MovieLens folder, print what is in it.
 *   cc embed.c $(pkg-config --cflags --libs tailor) -o embed
 *   ./embed my.db path/to/ml-100k */
#include <stdio.h>
#include <tailor.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DB MOVIELENS_DIR\n", argv[0]);
        return 64;
    }
    tailor_error err = {0};
    tailor_store *store = NULL;
    if (tailor_store_open(argv[1], &store, &err) != TAILOR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = tailor_import_movielens(store, argv[2], &err);
    if (rc != TAILOR_OK) fprintf(stderr, "import: %s (%s)\n", err.msg, tailor_strerror(rc));
    tailor_store_counts c;
    if (tailor_store_counts_get(store, &c, &err) == TAILOR_OK)
        printf("libtailor %s: %lld users, %lld items, %lld events\n", tailor_version(),
               (long long)c.users, (long long)c.items, (long long)c.events);
    tailor_store_close(store);
    return rc == TAILOR_OK ? 0 : 1;
}
