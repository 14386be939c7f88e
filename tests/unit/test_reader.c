/* test_reader.c — the delimited-text and JSON Lines readers on small,
 * hand-written inputs: quoting, multi-line fields, CRLF, separators,
 * Latin-1, invalid UTF-8, truncation, and the time parser. */
#include "ingest/ingest.h"
#include "test.h"

static char *g_dir;

/* Reads every record of text and joins fields with '|' and records with
 * '\n'; returns the error message instead on failure. */
static char *read_all(const char *text, ing_reader_params p) {
    char *path = test_write(g_dir, "in.txt", text);
    ing_reader r;
    tailor_error e = {0};
    sb out;
    sb_init(&out);
    if (ing_reader_open(&r, path, p, &e) == 0) {
        int rc;
        while ((rc = ing_reader_next(&r, &e)) == 1) {
            sb_printf(&out, "%lld:", (long long)r.line);
            for (size_t i = 0; i < ing_nfields(&r); i++)
                sb_printf(&out, "%s%s", i ? "|" : "", ing_field_str(&r, i));
            sb_putc(&out, '\n');
        }
        if (rc < 0) {
            sb_clear(&out);
            sb_printf(&out, "ERR %s", e.msg);
        }
        ing_reader_close(&r);
    }
    free(path);
    return sb_take(&out);
}

static void test_csv_basic(void) {
    char *s = read_all("a,b,c\n1,2,3\n", ing_csv_params());
    CHECK_STR(s, "1:a|b|c\n2:1|2|3\n");
    free(s);
    /* CRLF, blank lines skipped (line numbers still count), no final newline. */
    s = read_all("a,b\r\n\r\n1,2\r\nx,y", ing_csv_params());
    CHECK_STR(s, "1:a|b\n3:1|2\n4:x|y\n");
    free(s);
    /* Empty fields and a trailing separator. */
    s = read_all(",x,\n", ing_csv_params());
    CHECK_STR(s, "1:|x|\n");
    free(s);
}

static void test_csv_quotes(void) {
    char *s = read_all("1,\"Heat, the movie\",\"say \"\"hi\"\"\"\n", ing_csv_params());
    CHECK_STR(s, "1:1|Heat, the movie|say \"hi\"\n");
    free(s);
    /* A quoted field spanning lines keeps its newline; the record's line is
     * its first line, the next record's line is counted right. */
    s = read_all("1,\"two\nlines\",z\n2,b,c\n", ing_csv_params());
    CHECK_STR(s, "1:1|two\nlines|z\n3:2|b|c\n");
    free(s);
    s = read_all("1,\"open\n2,b,c\n", ing_csv_params());
    CHECK_CONTAINS(s, "in.txt:1: field 2: quoted field not closed before end of file");
    free(s);
    s = read_all("1,\"a\"b,c\n", ing_csv_params());
    CHECK_CONTAINS(s, "in.txt:1: field 2: unexpected character after closing quote");
    free(s);
}

static void test_separators_and_encodings(void) {
    ing_reader_params p = {.sep = "::", .quoting = false, .latin1 = true};
    char *s = read_all("1::Mis\xe9rables (1995)::Drama\n", p);
    CHECK_STR(s, "1:1|Mis\xc3\xa9rables (1995)|Drama\n");
    free(s);
    ing_reader_params t = {.sep = "\t", .quoting = false, .check_utf8 = true};
    s = read_all("1\t2\t\"3\"\n", t);
    CHECK_STR(s, "1:1|2|\"3\"\n");
    free(s);
    s = read_all("ok,fine\nbad,Mis\xe9rables\n", ing_csv_params());
    CHECK_CONTAINS(s, "in.txt:2: field 2: invalid UTF-8 (byte 0xe9 at offset 3 of the field)");
    free(s);
}

static void test_nul_bytes(void) {
    char *path = path_join(g_dir, "nul.csv");
    FILE *f = fopen(path, "wb");
    fwrite("a,b\nx,y\0z\n", 1, 11, f);
    fclose(f);
    ing_reader r;
    tailor_error e = {0};
    CHECK_EQ(ing_reader_open(&r, path, ing_csv_params(), &e), 0);
    CHECK_EQ(ing_reader_next(&r, &e), 1);
    CHECK_EQ(ing_reader_next(&r, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "nul.csv:2: field 2: NUL byte");
    ing_reader_close(&r);
    free(path);
}

static void test_long_lines(void) {
    /* A record longer than the 1 MiB block grows the buffer. */
    size_t n = 3u << 20;
    char *big = malloc(n + 16);
    memset(big, 'x', n);
    strcpy(big + n, ",y\nz\n");
    char *s = read_all(big, ing_csv_params());
    CHECK_EQ(strlen(s), n + strlen("1:|y\n2:z\n"));
    CHECK_CONTAINS(s, "|y\n2:z\n");
    free(s);
    free(big);
}

static void test_short_record_message(void) {
    char *path = test_write(g_dir, "short.csv", "a,b,c\n1,2");
    ing_reader r;
    tailor_error e = {0};
    CHECK_EQ(ing_reader_open(&r, path, ing_csv_params(), &e), 0);
    CHECK_EQ(ing_reader_next(&r, &e), 1);
    CHECK_EQ(ing_reader_next(&r, &e), 1);
    ing_reader_short(&r, 3, "c", &e);
    CHECK_CONTAINS(e.msg, "short.csv:2: field 'c': missing: expected 3 fields, found 2 (the file ends inside this line: truncated?)");
    CHECK_EQ(ing_reader_next(&r, &e), 0);
    ing_reader_close(&r);
    CHECK_EQ(ing_reader_open(&r, "/nonexistent/x.csv", ing_csv_params(), &e), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(e.msg, "cannot open /nonexistent/x.csv");
    free(path);
}

static void test_table_csv(void) {
    char *path = test_write(g_dir, "t.csv", "\xEF\xBB\xBFuser,item,rating\nu1,i1,4\nu2,i2\n");
    ing_table *t;
    tailor_error e = {0};
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), 0);
    CHECK_EQ(ing_table_col(t, "user"), 0); /* BOM stripped */
    CHECK_EQ(ing_table_col(t, "rating"), 2);
    CHECK_EQ(ing_table_col(t, "nope"), -1);
    CHECK_EQ(ing_table_next(t, &e), 1);
    const char *v;
    size_t n;
    CHECK(ing_table_get(t, 1, &v, &n) && n == 2 && !strncmp(v, "i1", 2));
    CHECK_EQ(ing_table_next(t, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "t.csv:3: field 'rating': missing: expected 3 fields, found 2");
    ing_table_close(t);
    free(path);
    path = test_write(g_dir, "empty.csv", "");
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "empty file: expected a header row");
    free(path);
}

static void test_table_jsonl(void) {
    char *path = test_write(g_dir, "t.jsonl",
                            "{\"user\": 7, \"item\": \"b\", \"tags\": [1, 2], \"score\": 2.5}\n"
                            "\n"
                            "{\"user\": \"u\", \"item\": null}\n"
                            "{\"user\": 1,\n");
    ing_table *t;
    tailor_error e = {0};
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), 0);
    int cu = ing_table_col(t, "user"), ci = ing_table_col(t, "item"), ct = ing_table_col(t, "tags");
    int cs = ing_table_col(t, "score");
    CHECK(cu >= 0 && ci >= 0 && ct >= 0 && cs >= 0);
    CHECK_EQ(ing_table_col(t, "absent"), -1);
    CHECK_EQ(ing_table_next(t, &e), 1);
    const char *v;
    size_t n;
    CHECK(ing_table_get(t, cu, &v, &n));
    CHECK_STR(v, "7");
    CHECK(ing_table_get(t, ct, &v, &n));
    CHECK_STR(v, "[1,2]");
    CHECK(ing_table_is_json(t, ct));
    CHECK(ing_table_get(t, cs, &v, &n));
    CHECK_STR(v, "2.5");
    CHECK_EQ(ing_table_line(t), 1);
    CHECK_EQ(ing_table_next(t, &e), 1);
    CHECK_EQ(ing_table_line(t), 3);
    CHECK(!ing_table_get(t, ci, &v, &n)); /* null = absent */
    CHECK_EQ(ing_table_next(t, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "t.jsonl:4: invalid JSON");
    ing_table_close(t);
    free(path);
    /* Huge numbers keep their spelling (found by fuzzing: the integer
     * check must not cast them). */
    path = test_write(g_dir, "big.jsonl", "{\"v\": 1.2222e23, \"w\": -5}\n");
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), 0);
    int cv = ing_table_col(t, "v"), cw = ing_table_col(t, "w");
    CHECK_EQ(ing_table_next(t, &e), 1);
    CHECK(ing_table_get(t, cv, &v, &n));
    CHECK_STR(v, "1.2222e+23");
    CHECK(ing_table_get(t, cw, &v, &n));
    CHECK_STR(v, "-5");
    ing_table_close(t);
    free(path);
    path = test_write(g_dir, "arr.jsonl", "[1,2]\n");
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "arr.jsonl:1: expected a JSON object per line");
    free(path);
    path = test_write(g_dir, "bad.jsonl", "{\"a\":1}\n{\"a\":\"\xff\"}\n");
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), 0);
    CHECK_EQ(ing_table_next(t, &e), 1);
    CHECK_EQ(ing_table_next(t, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "bad.jsonl:2: invalid UTF-8");
    ing_table_close(t);
    free(path);
    path = test_write(g_dir, "two.jsonl", "{\"a\":1} {\"a\":2}\n");
    CHECK_EQ(ing_table_open(&t, path, ING_TABLE_AUTO, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "two.jsonl:1: unexpected text after the JSON value");
    free(path);
}

static void test_parse_time(void) {
    int64_t t;
    CHECK(ing_parse_time("874965758", 9, &t) && t == 874965758);
    CHECK(ing_parse_time("1.5e9", 5, &t) && t == 1500000000);
    CHECK(ing_parse_time("1970-01-02", 10, &t) && t == 86400);
    CHECK(ing_parse_time("2000-03-01T00:00:00Z", 20, &t) && t == 951868800);
    CHECK(ing_parse_time("2000-03-01 01:30", 16, &t) && t == 951868800 + 5400);
    CHECK(ing_parse_time("2000-03-01T02:00:00.250+02:00", 29, &t) && t == 951868800);
    CHECK(ing_parse_time("1969-12-31T23:59:59Z", 20, &t) && t == -1);
    CHECK(!ing_parse_time("2000-13-01", 10, &t));
    CHECK(!ing_parse_time("yesterday", 9, &t));
    CHECK(!ing_parse_time("2000-03-01T25:00", 16, &t));
    CHECK(!ing_parse_time("2000-03-01X", 11, &t));
}

int main(void) {
    g_dir = test_tmpdir();
    RUN(test_csv_basic);
    RUN(test_csv_quotes);
    RUN(test_separators_and_encodings);
    RUN(test_nul_bytes);
    RUN(test_long_lines);
    RUN(test_short_record_message);
    RUN(test_table_csv);
    RUN(test_table_jsonl);
    RUN(test_parse_time);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
