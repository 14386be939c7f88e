/* fuzz_jsonl.c — libFuzzer target for the table reader: JSON Lines (and
 * CSV with a header when the first byte is odd). Reads every row and asks
 * for a few columns, as the importers do. */
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ing_table_format fmt = data[0] & 1 ? ING_TABLE_CSV : ING_TABLE_JSONL;
    FILE *f = fmemopen((void *)(data + 1), size - 1, "rb");
    if (!f) return 0;
    ing_table *t = NULL;
    tailor_error e = {0};
    if (ing_table_open_stream(&t, f, "fuzz.jsonl", fmt, &e) != 0) {
        if (e.msg[0] == 0) __builtin_trap();
        return 0;
    }
    static const char *const names[] = {"user_id", "item_id", "timestamp", "value", "a", ""};
    int cols[6];
    for (int k = 0; k < 6; k++) cols[k] = ing_table_col(t, names[k]);
    int rc;
    while ((rc = ing_table_next(t, &e)) == 1) {
        for (int k = 0; k < 6; k++) {
            const char *v;
            size_t n;
            if (ing_table_get(t, cols[k], &v, &n) && strlen(v) < n) __builtin_trap();
            int64_t ts;
            if (cols[k] >= 0 && ing_table_get(t, cols[k], &v, &n)) ing_parse_time(v, n, &ts);
        }
        for (size_t k = 0; k < ing_table_ncols(t); k++) (void)ing_table_colname(t, k);
    }
    if (rc < 0 && e.msg[0] == 0) __builtin_trap();
    ing_table_close(t);
    return 0;
}
