/* ingest.h — getting data into the store: streaming readers for delimited
 * text and JSON Lines, the importers (MovieLens, sequences, generic events
 * and items) and the dataset download cache.
 *
 * Rules: readers stream (memory does not grow with file size); every
 * importer runs in one store transaction and on the first bad row reports
 * FILE:LINE: field 'NAME': reason and rolls back, leaving the store exactly
 * as it was.
 */
#ifndef TAILOR_INGEST_H
#define TAILOR_INGEST_H

#include <stdio.h>

#include "store/store.h"

/* ---- record reader: delimited text ------------------------------------- */

typedef struct ing_reader_params {
    const char *sep;  /* field separator: ",", "\t", "|", "::" ... */
    bool quoting;     /* RFC 4180 double quotes (CSV) */
    bool latin1;      /* input is ISO-8859-1: convert to UTF-8 */
    bool check_utf8;  /* reject invalid UTF-8 (ignored with latin1) */
} ing_reader_params;

ing_reader_params ing_csv_params(void); /* ",", quoting, UTF-8 checked */

typedef struct ing_field {
    size_t off, len; /* into the reader's record buffer */
} ing_field;

typedef struct ing_reader {
    FILE *f;
    char *path; /* for messages */
    ing_reader_params p;
    char *buf; /* raw input buffer */
    size_t buf_cap, buf_start, buf_end;
    bool eof;
    int64_t phys_line; /* physical lines consumed */
    int64_t line;      /* first physical line of the current record */
    bool last_had_newline;
    uint64_t bytes_done, file_size;
    sb rec; /* current record's field bytes, each NUL-terminated */
    VEC(ing_field) fields;
} ing_reader;

/* Opens path for reading; *r is initialised by this call. */
int ing_reader_open(ing_reader *r, const char *path, ing_reader_params p, tailor_error *err);
/* Same over an open stream (a pipe, fmemopen for fuzzing); the reader owns
 * f from now on and closes it. name is used in messages. */
void ing_reader_open_stream(ing_reader *r, FILE *f, const char *name, ing_reader_params p);
void ing_reader_close(ing_reader *r);
/* Reads the next non-empty record. Returns 1 with a record, 0 at end of
 * file, or a negative status with err naming the file and line. */
int ing_reader_next(ing_reader *r, tailor_error *err);
/* Reads the next physical line raw (no splitting, no conversion); the
 * pointer is valid until the next call. 1, 0 at EOF, or negative. */
int ing_reader_line(ing_reader *r, const char **line, size_t *len, tailor_error *err);
static inline size_t ing_nfields(const ing_reader *r) { return r->fields.len; }
static inline const char *ing_field_str(const ing_reader *r, size_t i) {
    return r->rec.buf + r->fields.data[i].off;
}
static inline size_t ing_field_len(const ing_reader *r, size_t i) {
    return r->fields.data[i].len;
}
/* Reports a short record: "expected N fields, found M" (and says when the
 * file ends without a newline, the usual sign of truncation). */
int ing_reader_short(const ing_reader *r, size_t expected, const char *field,
                     tailor_error *err);

/* ---- table reader: CSV/TSV with a header, or JSON Lines ---------------- */

typedef enum ing_table_format {
    ING_TABLE_AUTO = 0, /* from the file name: .jsonl/.ndjson/.json, .tsv, else CSV */
    ING_TABLE_CSV,
    ING_TABLE_TSV,
    ING_TABLE_JSONL,
} ing_table_format;

typedef struct ing_table ing_table;

/* Opens a table; for CSV/TSV the first row names the columns. */
int ing_table_open(ing_table **out, const char *path, ing_table_format fmt, tailor_error *err);
/* Same over an open stream, which the table then owns. */
int ing_table_open_stream(ing_table **out, FILE *f, const char *path, ing_table_format fmt,
                          tailor_error *err);
void ing_table_close(ing_table *t);
/* Column index of name, or -1. For JSONL every requested name gets an
 * index (a missing key is then an absent value, row by row). */
int ing_table_col(ing_table *t, const char *name);
/* Names of the CSV header (NULL-terminated array owned by the table; for
 * JSONL, the keys of the current row). */
size_t ing_table_ncols(const ing_table *t);
const char *ing_table_colname(const ing_table *t, size_t i);
/* 1 = row, 0 = end, negative = error. */
int ing_table_next(ing_table *t, tailor_error *err);
/* Value of column col in the current row as text (numbers in their JSON
 * spelling, arrays/objects as compact JSON). false when absent or empty. */
bool ing_table_get(ing_table *t, int col, const char **val, size_t *len);
/* Whether the value of col in the current row is JSON (array/object), so
 * attributes can embed it unquoted. */
bool ing_table_is_json(ing_table *t, int col);
int64_t ing_table_line(const ing_table *t);
const char *ing_table_path(const ing_table *t);
uint64_t ing_table_bytes_done(const ing_table *t);
uint64_t ing_table_file_size(const ing_table *t);

/* ---- importers --------------------------------------------------------- */

typedef struct ing_stats {
    int64_t users, items, events, tags; /* rows added */
    int64_t triples, links;             /* knowledge graph: triples, entity-item links added */
    int64_t skipped, replaced;          /* duplicates handled by the policy */
    int64_t ts_first, ts_last;          /* times given to rows without one (0 = none) */
    double seconds;
} ing_stats;

typedef struct ing_movielens_params {
    store_dup_policy dup; /* default: error */
} ing_movielens_params;

int ing_movielens(store *s, const char *dir, ing_movielens_params p, ing_stats *st,
                  tailor_error *err);
/* Which MovieLens layout dir holds: "ml-100k", "ml-1m", "ml-latest", or NULL. */
const char *ing_movielens_detect(const char *dir);

typedef struct ing_sequences_params {
    const char *attributes; /* item -> [attribute ids] JSON file, or NULL */
    const char *kind;       /* event kind name; default "interaction" */
    store_dup_policy dup;   /* default: keep */
} ing_sequences_params;

/* "user item [item ...]" per line: the SASRec ("user item", one
 * interaction a line) and S3-Rec (whole sequence a line) formats. Lines are
 * in time order; event times are positions (0, 1, 2, ...) per user. */
int ing_sequences(store *s, const char *path, ing_sequences_params p, ing_stats *st,
                  tailor_error *err);

typedef struct ing_events_params {
    const char *user_col, *item_col, *time_col, *value_col, *kind_col; /* NULL = default */
    const char *default_kind; /* when no kind column; default "interaction" */
    ing_table_format format;
    store_dup_policy dup; /* default: keep */
} ing_events_params;

int ing_events(store *s, const char *path, ing_events_params p, ing_stats *st,
               tailor_error *err);

typedef struct ing_items_params {
    const char *id_col, *title_col, *text_col; /* NULL = default */
    ing_table_format format;
    store_dup_policy dup; /* default: error */
} ing_items_params;

/* Columns other than id/title/text go into the item's attributes. */
int ing_items(store *s, const char *path, ing_items_params p, ing_stats *st,
              tailor_error *err);

/* One event as a client posts it (the server's POST /api/events). */
typedef struct ing_event_in {
    const char *user, *item;
    const char *kind;      /* NULL: interaction */
    const char *client_id; /* NULL: none; an id stored before for the user marks a retry, not stored twice */
    double value;
    bool has_value;
    int64_t ts;
} ing_event_in;

typedef struct ing_batch_result {
    int64_t stored, duplicates, new_users;
} ing_batch_result;

/* Appends events in one transaction: unknown users are created; an unknown
 * item is TAILOR_ENOTFOUND naming events[i], and nothing is stored. */
int ing_event_batch(store *s, const ing_event_in *evs, size_t n, ing_batch_result *out, tailor_error *err);

typedef struct ing_kg_params {
    const char *entity_map;     /* item, entity per line (KGCN's item_index2entity_id), or NULL */
    const char *relation_names; /* id, name per line: relations given by id are stored by name; or NULL */
    store_dup_policy dup;       /* default: error (keep means skip: a graph holds a fact once) */
} ing_kg_params;

/* Triples from headerless TSV (CSV when the name ends in .csv; a first row
 * "head relation tail" is a header) or JSON Lines {"head", "relation",
 * "tail"}; unknown items of the entity map are created. */
int ing_kg(store *s, const char *path, ing_kg_params p, ing_stats *st, tailor_error *err);
/* The catalogue's own triples: item:ID -KEY-> KEY:VALUE for every
 * categorical attribute value and whole number (genres, year), and
 * item:ID -tag-> tag:TEXT for every tag; each item linked to its entity.
 * Existing triples are kept (it can run again after new items). */
int ing_kg_derive(store *s, ing_stats *st, tailor_error *err);

/* Parses a time value: unix seconds (integer or decimal) or an ISO 8601
 * date/time ("2024-05-01", "2024-05-01T12:30:00Z", with an optional offset).
 * Returns false when it is neither. */
bool ing_parse_time(const char *s, size_t n, int64_t *out);

/* ---- datasets ---------------------------------------------------------- */

typedef struct ing_dataset {
    const char *name;    /* "ml-100k" */
    const char *summary; /* one line for `datasets list` */
    const char *url;     /* official download */
    const char *zip_dir; /* top folder inside the zip */
    uint64_t size;       /* bytes of the zip; 0 = not pinned */
    const char *sha256;  /* hex; NULL = not pinned */
    const char *md5;     /* hex published by GroupLens; NULL = none */
} ing_dataset;

const ing_dataset *ing_datasets(size_t *n);
const ing_dataset *ing_dataset_find(const char *name);

typedef struct ing_fetch_params {
    const char *dir;      /* cache root; NULL = $XDG_CACHE_HOME/tailor (or ~/.cache/tailor) */
    const char *from;     /* local folder holding NAME.zip or NAME/; no network */
    const char *sha256;   /* expected hash override (mirrors); NULL = the table's */
    const char *base_url; /* mirror URL prefix; NULL = $TAILOR_DATASETS_URL or official */
    bool force;           /* download again even if cached */
} ing_fetch_params;

/* Makes the dataset available under DIR/NAME and returns that path in
 * *out_dir (malloc'd). */
int ing_dataset_fetch(const ing_dataset *d, ing_fetch_params p, char **out_dir,
                      tailor_error *err);
/* The cache root the fetch would use (malloc'd). */
char *ing_cache_dir(void);
/* Whether NAME is already unpacked in the cache root; *out_dir malloc'd. */
bool ing_dataset_cached(const ing_dataset *d, const char *root, char **out_dir);
/* SHA-256 of a file as lowercase hex. */
int ing_sha256_file(const char *path, char out_hex[65], tailor_error *err);

#endif /* TAILOR_INGEST_H */
