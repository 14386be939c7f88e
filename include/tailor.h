/* tailor.h — the public C API of libtailor.
 *
 * Everything a C program needs to embed tailor: status codes, the error
 * struct, and opaque handles with open/close pairs. Internals live in each
 * module's own header under src/ and never leak through this file.
 * Functions return 0 on success or a negative tailor_status; on failure they
 * leave their objects as they were and, when given one, fill a tailor_error.
 */
#ifndef TAILOR_H
#define TAILOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAILOR_VERSION_MAJOR 0
#define TAILOR_VERSION_MINOR 1
#define TAILOR_VERSION_PATCH 0
#define TAILOR_VERSION_STRING "0.1.0"

/* Status codes, generated from one list: name, value, description. */
#define TAILOR_STATUS_LIST(X)                                         \
    X(TAILOR_OK, 0, "success")                                        \
    X(TAILOR_ENOMEM, -1, "out of memory")                             \
    X(TAILOR_EIO, -2, "input/output error")                           \
    X(TAILOR_EDATA, -3, "invalid data")                               \
    X(TAILOR_ENOTFOUND, -4, "not found")                              \
    X(TAILOR_EINVAL, -5, "invalid argument")                          \
    X(TAILOR_EDB, -6, "database error")                               \
    X(TAILOR_ENETWORK, -7, "network unavailable")                     \
    X(TAILOR_ECHECKSUM, -8, "checksum mismatch")                      \
    X(TAILOR_EUNSUPPORTED, -9, "unsupported")                         \
    X(TAILOR_EEXISTS, -10, "already exists")                          \
    X(TAILOR_EINTERNAL, -11, "internal error")

typedef enum tailor_status {
#define TAILOR_X_ENUM(name, value, desc) name = value,
    TAILOR_STATUS_LIST(TAILOR_X_ENUM)
#undef TAILOR_X_ENUM
} tailor_status;

/* A human-readable error. When the cause is data, msg names
 * file:line: field 'name': reason. The caller owns the struct (usually on
 * its stack); functions only write into it. */
typedef struct tailor_error {
    int code;       /* a tailor_status */
    char msg[1024]; /* NUL-terminated, empty when code == TAILOR_OK */
} tailor_error;

/* The library's version string, e.g. "0.1.0". Static storage. */
const char *tailor_version(void);

/* The description of a status code. Static storage; never NULL. */
const char *tailor_strerror(int code);

/* ---- store ------------------------------------------------------------- */

typedef struct tailor_store tailor_store; /* opaque */

/* Opens (creating if needed) the SQLite store at path and brings its schema
 * up to date. *out is owned by the caller; release it with
 * tailor_store_close. */
int tailor_store_open(const char *path, tailor_store **out, tailor_error *err);
void tailor_store_close(tailor_store *store);

typedef struct tailor_store_counts {
    int64_t users, items, events, tags, kg_triples, models;
} tailor_store_counts;

int tailor_store_counts_get(tailor_store *store, tailor_store_counts *out,
                            tailor_error *err);

/* ---- import ------------------------------------------------------------ */

/* Imports a MovieLens directory (ml-100k, ml-1m, ml-latest-small or
 * ml-latest layouts, detected from the files present). One transaction: on
 * any error the store is left exactly as it was. */
int tailor_import_movielens(tailor_store *store, const char *dir,
                            tailor_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TAILOR_H */
