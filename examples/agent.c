/* agent.c — a conversation with tailor's agent through the public API:
 * open a store, create an agent (the rules backend: no language model
 * needed), send a few messages, print the answers as they stream and the
 * items of the last one as JSON.
 *   cc agent.c $(pkg-config --cflags --libs tailor) -o agent
 *   ./agent ml.db "three comedies from the 90s" "more" */
#include <stdio.h>
#include <tailor.h>

static int print_text(void *ud, const char *text, size_t n) {
    (void)ud;
    fwrite(text, 1, n, stdout);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DB MESSAGE...\n", argv[0]);
        return 64;
    }
    tailor_error err = {0};
    tailor_store *store;
    if (tailor_store_open(argv[1], &store, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tailor_agent *agent;
    if (tailor_agent_new(store, tailor_agent_default_params(), &agent, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        tailor_store_close(store);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        char *json = NULL;
        printf("> %s\n", argv[i]);
        rc = tailor_agent_turn(agent, argv[i], print_text, NULL, i + 1 == argc ? &json : NULL, &err);
        printf("\n\n");
        if (rc) fprintf(stderr, "%s\n", err.msg);
        if (json) printf("%s\n", json);
        tailor_free(json);
    }
    printf("session %lld\n", (long long)tailor_agent_session(agent));
    tailor_agent_free(agent);
    tailor_store_close(store);
    return rc ? 1 : 0;
}
