/* log.c — leveled logging to stderr, level from TAILOR_LOG.
 * Debug lines carry file:line; others only the level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base.h"

static log_level g_level = LOG_LEVEL_WARN;

void log_set_level(log_level lvl) { g_level = lvl; }
log_level log_get_level(void) { return g_level; }

void log_init_from_env(void) {
    const char *v = getenv("TAILOR_LOG");
    if (!v || !*v) return;
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(v, names[i]) == 0) {
            g_level = (log_level)i;
            return;
        }
    fprintf(stderr, "tailor: TAILOR_LOG=%s is not one of debug, info, warn, error, off\n", v);
}

void log_write(log_level lvl, const char *file, int line, const char *fmt, ...) {
    static const char *tags[] = {"debug", "info", "warning", "error"};
    if ((lvl < g_level && lvl != LOG_LEVEL_ERROR) || lvl > LOG_LEVEL_ERROR) return;
    /* One fprintf per line keeps lines whole when threads log together. */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lvl == LOG_LEVEL_DEBUG) {
        const char *base = strrchr(file, '/');
        fprintf(stderr, "tailor: %s: %s:%d: %s\n", tags[lvl], base ? base + 1 : file, line, msg);
    } else {
        fprintf(stderr, "tailor: %s: %s\n", tags[lvl], msg);
    }
}
