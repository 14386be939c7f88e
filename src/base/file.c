/* file.c — small filesystem helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"

bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *path_join(const char *a, const char *b) {
    sb s;
    sb_init(&s);
    sb_puts(&s, a);
    if (s.len && s.buf[s.len - 1] != '/') sb_putc(&s, '/');
    sb_puts(&s, b);
    return sb_take(&s);
}

int file_read(const char *path, sb *out, tailor_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errno == ENOENT ? TAILOR_ENOTFOUND : TAILOR_EIO, "cannot open %s: %s",
                       path, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_append(out, buf, n);
    bool bad = ferror(f);
    fclose(f);
    return bad ? err_set(err, TAILOR_EIO, "%s: read error", path) : 0;
}

int mkdir_p(const char *path, tailor_error *err) {
    char *p = xstrdup(path);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            err_set(err, TAILOR_EIO, "cannot create directory %s: %s", p, strerror(e));
            free(p);
            return TAILOR_EIO;
        }
        *c = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = err_set(err, TAILOR_EIO, "cannot create directory %s: %s", p, strerror(errno));
    free(p);
    return rc;
}
