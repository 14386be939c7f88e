/* error.c — status strings and tailor_error helpers.
 * Messages are truncated, never overflowed; every helper accepts a NULL err. */
#include <stdio.h>
#include <string.h>

#include "base.h"

const char *tailor_version(void) { return TAILOR_VERSION_STRING; }

const char *tailor_strerror(int code) {
    switch (code) {
#define TAILOR_X_STR(name, value, desc) \
    case value: return desc;
        TAILOR_STATUS_LIST(TAILOR_X_STR)
#undef TAILOR_X_STR
    }
    return "unknown error";
}

static int err_vset(tailor_error *err, int code, const char *fmt, va_list ap) {
    if (!err) return code;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int err_set(tailor_error *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int err_data(tailor_error *err, const char *file, int64_t line,
             const char *field, const char *fmt, ...) {
    if (!err) return TAILOR_EDATA;
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    char where[256];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%lld", file ? file : "<input>",
                 (long long)line);
    else
        snprintf(where, sizeof where, "%s", file ? file : "<input>");
    if (field)
        return err_set(err, TAILOR_EDATA, "%s: field '%s': %s", where, field, why);
    return err_set(err, TAILOR_EDATA, "%s: %s", where, why);
}

void err_prefix(tailor_error *err, const char *fmt, ...) {
    if (!err) return;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
}

void err_clear(tailor_error *err) {
    if (!err) return;
    err->code = TAILOR_OK;
    err->msg[0] = 0;
}
