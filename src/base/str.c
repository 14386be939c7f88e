/* str.c — string builder, UTF-8 validation, Latin-1 conversion and strict
 * number parsing. The builder's buffer is NUL-terminated after every append. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

void sb_init(sb *s) { s->buf = NULL, s->len = s->cap = 0; }
void sb_deinit(sb *s) { free(s->buf), sb_init(s); }
void sb_clear(sb *s) {
    s->len = 0;
    if (s->buf) s->buf[0] = 0;
}

static void sb_grow(sb *s, size_t extra) {
    size_t need = s->len + extra + 1;
    if (need <= s->cap) return;
    size_t nc = s->cap ? s->cap * 2 : 64;
    while (nc < need) nc *= 2;
    s->buf = xrealloc(s->buf, nc);
    s->cap = nc;
}

void sb_append(sb *s, const char *str, size_t n) {
    sb_grow(s, n);
    memcpy(s->buf + s->len, str, n);
    s->len += n;
    s->buf[s->len] = 0;
}

void sb_puts(sb *s, const char *str) { sb_append(s, str, strlen(str)); }
void sb_putc(sb *s, char c) { sb_append(s, &c, 1); }

void sb_vprintf(sb *s, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    sb_grow(s, (size_t)n);
    vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
    s->len += (size_t)n;
}

void sb_printf(sb *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(s, fmt, ap);
    va_end(ap);
}

void sb_json_str(sb *s, const char *str, size_t n) {
    sb_putc(s, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)str[i];
        switch (c) {
        case '"': sb_append(s, "\\\"", 2); break;
        case '\\': sb_append(s, "\\\\", 2); break;
        case '\n': sb_append(s, "\\n", 2); break;
        case '\r': sb_append(s, "\\r", 2); break;
        case '\t': sb_append(s, "\\t", 2); break;
        default:
            if (c < 0x20)
                sb_printf(s, "\\u%04x", c);
            else
                sb_putc(s, (char)c);
        }
    }
    sb_putc(s, '"');
}

const char *sb_str(const sb *s) { return s->buf ? s->buf : ""; }

char *sb_take(sb *s) {
    char *b = s->buf ? s->buf : xstrdup("");
    sb_init(s);
    return b;
}

int64_t utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) need = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) need = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) need = 3, cp = c & 0x07, min = 0x10000;
        else return (int64_t)i;
        if (i + need >= n) return (int64_t)i; /* truncated sequence */
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (int64_t)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (int64_t)i;
        i += need + 1;
    }
    return -1;
}

void latin1_to_utf8(sb *out, const char *s, size_t n) {
    sb_grow(out, n * 2);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out->buf[out->len++] = (char)c;
        } else {
            out->buf[out->len++] = (char)(0xC0 | (c >> 6));
            out->buf[out->len++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out->buf[out->len] = 0;
}

bool parse_i64(const char *s, size_t n, int64_t *out) {
    if (n == 0 || n > 20) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        if (++i == n) return false;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) return false;
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool parse_f64(const char *s, size_t n, double *out) {
    /* Fast path for plain decimals like "4.5" or "-12.25", the common case
     * in rating files: with at most 15 significant digits both the digits
     * and the power of ten are exact doubles, so one division rounds
     * correctly (Clinger's fast path). strtod for everything else. */
    {
        size_t i = 0;
        bool neg = false;
        if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
        uint64_t m = 0;
        int digits = 0, frac = -1;
        for (; i < n; i++) {
            unsigned d = (unsigned char)s[i] - '0';
            if (d <= 9) {
                m = m * 10 + d;
                digits++;
                if (frac >= 0) frac++;
            } else if (s[i] == '.' && frac < 0) {
                frac = 0;
            } else {
                break;
            }
        }
        if (i == n && digits > 0 && digits <= 15 && frac != 0) {
            static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                         1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
            double v = (double)m;
            if (frac > 0) v /= p10[frac];
            *out = neg ? -v : v;
            return true;
        }
    }
    if (n == 0 || n > 63) return false;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = 0;
    if (buf[0] == ' ' || buf[0] == '\t') return false;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}
