/* fuzz_csv.c — libFuzzer target for the delimited-text reader: the first
 * byte picks separator, quoting and encoding; the rest is the file. Every
 * record's fields are read back and checked against the buffer bounds. */
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const seps[] = {",", "\t", "|", "::", " ", ";", "ab", ","};
    ing_reader_params p = {.sep = seps[data[0] & 7],
                           .quoting = (data[0] >> 3) & 1,
                           .latin1 = (data[0] >> 4) & 1,
                           .check_utf8 = (data[0] >> 5) & 1};
    FILE *f = fmemopen((void *)(data + 1), size - 1, "rb");
    if (!f) return 0;
    ing_reader r;
    ing_reader_open_stream(&r, f, "fuzz.csv", p);
    tailor_error e = {0};
    int rc;
    size_t total = 0;
    while ((rc = ing_reader_next(&r, &e)) == 1) {
        for (size_t i = 0; i < ing_nfields(&r); i++) {
            const char *v = ing_field_str(&r, i);
            size_t n = ing_field_len(&r, i);
            if (v[n] != 0) __builtin_trap(); /* fields are NUL-terminated */
            if (p.check_utf8 && !p.latin1 && utf8_check(v, n) >= 0) __builtin_trap();
            total += n;
        }
        if (r.line < 1 || r.line > r.phys_line) __builtin_trap();
    }
    if (rc < 0 && e.msg[0] == 0) __builtin_trap(); /* errors always explain */
    ing_reader_close(&r);
    (void)total;
    return 0;
}
