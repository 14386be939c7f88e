/* reader.c — streaming record reader for delimited text.
 * Reads the file in 1 MiB blocks; a record is one physical line unless a
 * quoted CSV field spans lines. Field bytes are unquoted, converted and
 * validated into one reusable buffer, so memory is bounded by the longest
 * record, not by the file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ingest/ingest.h"

enum { ING_BLOCK = 1 << 20 };

ing_reader_params ing_csv_params(void) {
    return (ing_reader_params){.sep = ",", .quoting = true, .latin1 = false, .check_utf8 = true};
}

int ing_reader_open(ing_reader *r, const char *path, ing_reader_params p, tailor_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        memset(r, 0, sizeof *r);
        return err_set(err, errno == ENOENT ? TAILOR_ENOTFOUND : TAILOR_EIO,
                       "cannot open %s: %s", path, strerror(errno));
    }
    ing_reader_open_stream(r, f, path, p);
    return 0;
}

void ing_reader_open_stream(ing_reader *r, FILE *f, const char *name, ing_reader_params p) {
    memset(r, 0, sizeof *r);
    r->f = f;
    struct stat stt;
    if (fstat(fileno(f), &stt) == 0 && S_ISREG(stt.st_mode)) r->file_size = (uint64_t)stt.st_size;
    r->path = xstrdup(name);
    r->p = p;
    if (!r->p.sep || !*r->p.sep) r->p.sep = ",";
    r->buf_cap = ING_BLOCK;
    r->buf = xmalloc(r->buf_cap);
    sb_init(&r->rec);
}

void ing_reader_close(ing_reader *r) {
    if (r->f) fclose(r->f);
    free(r->path);
    free(r->buf);
    sb_deinit(&r->rec);
    vec_free(&r->fields);
    memset(r, 0, sizeof *r);
}

/* Ensures the buffer holds more bytes after buf_start, moving the unread
 * tail to the front and doubling when one line fills it. */
static int reader_fill(ing_reader *r, tailor_error *err) {
    if (r->eof) return 0;
    if (r->buf_start > 0) {
        memmove(r->buf, r->buf + r->buf_start, r->buf_end - r->buf_start);
        r->buf_end -= r->buf_start;
        r->buf_start = 0;
    }
    if (r->buf_end == r->buf_cap) {
        if (r->buf_cap >= (size_t)1 << 30)
            return err_data(err, r->path, r->phys_line + 1, NULL, "line longer than 1 GiB");
        r->buf_cap *= 2;
        r->buf = xrealloc(r->buf, r->buf_cap);
    }
    size_t n = fread(r->buf + r->buf_end, 1, r->buf_cap - r->buf_end, r->f);
    if (n == 0) {
        if (ferror(r->f)) return err_set(err, TAILOR_EIO, "%s: read error", r->path);
        r->eof = true;
        return 0;
    }
    r->buf_end += n;
    return 1;
}

int ing_reader_line(ing_reader *r, const char **line, size_t *len, tailor_error *err) {
    size_t scanned = 0;
    for (;;) {
        char *start = r->buf + r->buf_start;
        size_t avail = r->buf_end - r->buf_start;
        char *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - start);
            r->buf_start += l + 1;
            r->bytes_done += l + 1;
            if (l && start[l - 1] == '\r') l--;
            r->phys_line++;
            r->last_had_newline = true;
            *line = start;
            *len = l;
            return 1;
        }
        scanned = avail;
        int rc = reader_fill(r, err);
        if (rc < 0) return rc;
        if (rc == 0) {
            avail = r->buf_end - r->buf_start;
            if (avail == 0) return 0;
            /* Last line without a newline. */
            start = r->buf + r->buf_start;
            r->buf_start = r->buf_end;
            r->bytes_done += avail;
            if (start[avail - 1] == '\r') avail--;
            r->phys_line++;
            r->last_had_newline = false;
            *line = start;
            *len = avail;
            return 1;
        }
    }
}

static void reader_end_field(ing_reader *r, size_t start) {
    ing_field f = {start, r->rec.len - start};
    sb_putc(&r->rec, 0);
    vec_push(&r->fields, f);
}

static int reader_check_fields(ing_reader *r, tailor_error *err) {
    /* A NUL byte would silently cut the text short wherever it is used as
     * a C string: binary data is refused. */
    for (size_t i = 0; i < r->fields.len; i++)
        if (memchr(ing_field_str(r, i), 0, ing_field_len(r, i)))
            return err_data(err, r->path, r->line, NULL, "field %zu: NUL byte (binary data?)", i + 1);
    if (r->p.latin1 || !r->p.check_utf8) return 0;
    for (size_t i = 0; i < r->fields.len; i++) {
        int64_t bad = utf8_check(ing_field_str(r, i), ing_field_len(r, i));
        if (bad >= 0)
            return err_data(err, r->path, r->line, NULL,
                            "field %zu: invalid UTF-8 (byte 0x%02x at offset %lld of the field)",
                            i + 1, (unsigned char)ing_field_str(r, i)[bad], (long long)bad);
    }
    return 0;
}

static void reader_append(ing_reader *r, const char *s, size_t n) {
    if (r->p.latin1) latin1_to_utf8(&r->rec, s, n);
    else sb_append(&r->rec, s, n);
}

int ing_reader_next(ing_reader *r, tailor_error *err) {
    const char *line;
    size_t len;
    int rc;
    do { /* skip empty lines */
        rc = ing_reader_line(r, &line, &len, err);
        if (rc <= 0) return rc;
    } while (len == 0);
    r->line = r->phys_line;
    sb_clear(&r->rec);
    r->fields.len = 0;
    const char *sep = r->p.sep;
    size_t seplen = strlen(sep);

    if (!r->p.quoting) {
        size_t start = 0, fstart = r->rec.len;
        for (size_t i = 0; i + seplen <= len;) {
            if (memcmp(line + i, sep, seplen) == 0) {
                reader_append(r, line + start, i - start);
                reader_end_field(r, fstart);
                i += seplen;
                start = i;
                fstart = r->rec.len;
            } else {
                i++;
            }
        }
        reader_append(r, line + start, len - start);
        reader_end_field(r, fstart);
        return reader_check_fields(r, err) ? TAILOR_EDATA : 1;
    }

    /* RFC 4180: a field starting with " runs to the matching " ("" is a
     * literal quote) and may span lines. */
    size_t i = 0;
    for (;;) {
        size_t fstart = r->rec.len;
        if (i < len && line[i] == '"') {
            i++;
            for (;;) {
                const char *q = memchr(line + i, '"', len - i);
                if (!q) {
                    reader_append(r, line + i, len - i);
                    sb_putc(&r->rec, '\n');
                    rc = ing_reader_line(r, &line, &len, err);
                    if (rc < 0) return rc;
                    if (rc == 0)
                        return err_data(err, r->path, r->line, NULL,
                                        "field %zu: quoted field not closed before end of file "
                                        "(truncated?)",
                                        r->fields.len + 1);
                    i = 0;
                    continue;
                }
                size_t qi = (size_t)(q - line);
                reader_append(r, line + i, qi - i);
                if (qi + 1 < len && line[qi + 1] == '"') {
                    sb_putc(&r->rec, '"');
                    i = qi + 2;
                    continue;
                }
                i = qi + 1;
                break;
            }
            if (i < len && !(len - i >= seplen && memcmp(line + i, sep, seplen) == 0))
                return err_data(err, r->path, r->phys_line, NULL,
                                "field %zu: unexpected character after closing quote",
                                r->fields.len + 1);
        } else {
            size_t j = i;
            while (j < len && !(len - j >= seplen && memcmp(line + j, sep, seplen) == 0)) j++;
            reader_append(r, line + i, j - i);
            i = j;
        }
        reader_end_field(r, fstart);
        if (i >= len) break;
        i += seplen; /* at a separator */
        if (i >= len) { /* trailing separator: one more empty field */
            reader_end_field(r, r->rec.len);
            break;
        }
    }
    return reader_check_fields(r, err) ? TAILOR_EDATA : 1;
}

int ing_reader_short(const ing_reader *r, size_t expected, const char *field,
                     tailor_error *err) {
    return err_data(err, r->path, r->line, field, "missing: expected %zu fields, found %zu%s",
                    expected, ing_nfields(r),
                    r->last_had_newline ? "" : " (the file ends inside this line: truncated?)");
}
