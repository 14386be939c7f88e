/* test_datasets.c — the dataset cache: --from a folder or a zip, digest
 * checks, a real HTTP download from a one-shot server on loopback, the
 * offline failure, and unsafe zip entries. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <zip.h>

#include "ingest/ingest.h"
#include "test.h"

static char *g_dir;

/* Builds DIR/NAME.zip holding top/FILE for each file of src_dir (or one
 * extra entry with an unsafe name). Returns the zip path. */
static char *make_zip(const char *dir, const char *name, const char *top, const char *src_dir,
                      const char *unsafe_entry) {
    char zn[256];
    snprintf(zn, sizeof zn, "%s.zip", name);
    char *zp = path_join(dir, zn);
    int zerr;
    zip_t *z = zip_open(zp, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    const char *files[] = {"u.data", "u.item", "u.user", "u.genre", NULL};
    for (int i = 0; files[i]; i++) {
        char *src = path_join(src_dir, files[i]);
        char entry[256];
        snprintf(entry, sizeof entry, "%s/%s", top, files[i]);
        zip_source_t *zs = zip_source_file(z, src, 0, -1);
        zip_file_add(z, entry, zs, ZIP_FL_OVERWRITE);
        free(src);
    }
    if (unsafe_entry) {
        zip_source_t *zs = zip_source_buffer(z, "x", 1, 0);
        zip_file_add(z, unsafe_entry, zs, ZIP_FL_OVERWRITE);
    }
    zip_close(z);
    return zp;
}

static void test_table(void) {
    size_t n;
    const ing_dataset *d = ing_datasets(&n);
    CHECK_EQ(n, 4);
    CHECK_STR(d[0].name, "ml-latest-small");
    CHECK(ing_dataset_find("ml-1m") != NULL);
    CHECK(ing_dataset_find("ml-1m")->md5 != NULL);
    CHECK(ing_dataset_find("ml-latest-small")->sha256 != NULL);
    CHECK(ing_dataset_find("imagenet") == NULL);
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    char *c = ing_cache_dir();
    CHECK_STR(c, "/x/cache/tailor");
    free(c);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    c = ing_cache_dir();
    CHECK_STR(c, "/home/someone/.cache/tailor");
    free(c);
}

static void test_from_folder(void) {
    const ing_dataset *d = ing_dataset_find("ml-100k");
    char *cache = path_join(g_dir, "cache1");
    ing_fetch_params p = {.dir = cache, .from = test_data_dir()};
    char *out = NULL;
    tailor_error e = {0};
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), 0);
    char *want = path_join(cache, "ml-100k");
    CHECK_STR(out, want);
    CHECK_STR(ing_movielens_detect(out), "ml-100k");
    char *sha_src = test_data_path("ml-100k/u.data");
    char *sha_dst = path_join(out, "u.data");
    char a[65], b[65];
    CHECK_EQ(ing_sha256_file(sha_src, a, &e), 0);
    CHECK_EQ(ing_sha256_file(sha_dst, b, &e), 0);
    CHECK_STR(a, b);
    CHECK_STR(a, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490");
    free(out);
    /* Cached now: no --from needed, no network touched. */
    ing_fetch_params again = {.dir = cache, .base_url = "http://127.0.0.1:1"};
    CHECK_EQ(ing_dataset_fetch(d, again, &out, &e), 0);
    CHECK_STR(out, want);
    free(out);
    char *cached = NULL;
    CHECK(ing_dataset_cached(d, cache, &cached));
    CHECK_STR(cached, want);
    free(cached);
    /* --from a folder without the dataset. */
    ing_fetch_params none = {.dir = cache, .from = g_dir};
    const ing_dataset *d1 = ing_dataset_find("ml-1m");
    CHECK_EQ(ing_dataset_fetch(d1, none, &out, &e), TAILOR_ENOTFOUND);
    CHECK_CONTAINS(e.msg, "found neither ml-1m.zip, nor a ml-1m/ folder");
    free(sha_src);
    free(sha_dst);
    free(want);
    free(cache);
}

static void test_from_zip(void) {
    const ing_dataset *d = ing_dataset_find("ml-100k");
    char *src = test_data_path("ml-100k");
    char *zdir = path_join(g_dir, "zips");
    tailor_error e = {0};
    mkdir_p(zdir, &e);
    char *zp = make_zip(zdir, "ml-100k", "ml-100k", src, NULL);
    char sha[65];
    CHECK_EQ(ing_sha256_file(zp, sha, &e), 0);
    char *cache = path_join(g_dir, "cache2");
    char *out = NULL;
    /* Our zip is not GroupLens' zip: the published MD5 rejects it. */
    ing_fetch_params p = {.dir = cache, .from = zdir};
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), TAILOR_ECHECKSUM);
    CHECK_CONTAINS(e.msg, "does not match GroupLens' published 0e33842e24a9c977be4e0107933c0723");
    char *final = path_join(cache, "ml-100k");
    CHECK(!dir_exists(final));
    /* With its own SHA-256 given, it verifies and unpacks. */
    p.sha256 = sha;
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), 0);
    CHECK_STR(out, final);
    CHECK_STR(ing_movielens_detect(final), "ml-100k");
    free(out);
    /* A wrong SHA-256 is refused. */
    p.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    p.force = true;
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), TAILOR_ECHECKSUM);
    CHECK_CONTAINS(e.msg, "SHA-256");
    /* Unsafe entry names are refused. */
    char *bad = make_zip(zdir, "ml-100k", "ml-100k", src, "ml-100k/../../evil");
    CHECK_EQ(ing_sha256_file(bad, sha, &e), 0);
    p.sha256 = sha;
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), TAILOR_EDATA);
    CHECK_CONTAINS(e.msg, "unsafe entry name");
    free(bad);
    free(final);
    free(cache);
    free(zp);
    free(zdir);
    free(src);
}

/* A one-shot HTTP/1.0 server on 127.0.0.1 that answers one request with
 * the given body (or 404 when body is NULL). */
typedef struct http_once {
    int fd, port;
    const char *body;
    size_t len;
    pthread_t th;
} http_once;

static void *http_serve(void *arg) {
    http_once *h = arg;
    int c = accept(h->fd, NULL, NULL);
    if (c < 0) return NULL;
    char req[4096];
    ssize_t got = 0, n;
    while ((n = read(c, req + got, sizeof req - 1 - (size_t)got)) > 0) {
        got += n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    char hdr[256];
    if (h->body) {
        int hl = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n", h->len);
        if (write(c, hdr, (size_t)hl) < 0) goto done;
        size_t off = 0;
        while (off < h->len) {
            ssize_t w = write(c, h->body + off, h->len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
    } else {
        const char *nf = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        if (write(c, nf, strlen(nf)) < 0) goto done;
    }
done:
    close(c);
    return NULL;
}

static void http_start(http_once *h) {
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(h->fd, (struct sockaddr *)&a, sizeof a) || listen(h->fd, 1)) {
        perror("bind");
        exit(2);
    }
    socklen_t al = sizeof a;
    getsockname(h->fd, (struct sockaddr *)&a, &al);
    h->port = ntohs(a.sin_port);
    pthread_create(&h->th, NULL, http_serve, h);
}

static void http_stop(http_once *h) {
    pthread_join(h->th, NULL);
    close(h->fd);
}

static void test_download(void) {
    const ing_dataset *d = ing_dataset_find("ml-100k");
    char *src = test_data_path("ml-100k");
    char *zdir = path_join(g_dir, "served");
    tailor_error e = {0};
    mkdir_p(zdir, &e);
    char *zp = make_zip(zdir, "ml-100k", "ml-100k", src, NULL);
    char sha[65];
    ing_sha256_file(zp, sha, &e);
    sb body;
    sb_init(&body);
    CHECK_EQ(file_read(zp, &body, &e), 0);

    http_once h = {.body = body.buf, .len = body.len};
    http_start(&h);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h.port);
    char *cache = path_join(g_dir, "cache3");
    ing_fetch_params p = {.dir = cache, .base_url = url, .sha256 = sha};
    char *out = NULL;
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), 0);
    http_stop(&h);
    CHECK_STR(ing_movielens_detect(out ? out : ""), "ml-100k");
    /* The partial download is gone; only the unpacked folder stays. */
    char *part = path_join(cache, "ml-100k.zip.part");
    CHECK(!file_exists(part));
    free(part);
    free(out);

    http_once h404 = {.body = NULL};
    http_start(&h404);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h404.port);
    p.base_url = url;
    p.force = true;
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), TAILOR_EIO);
    CHECK_CONTAINS(e.msg, "404");
    http_stop(&h404);

    /* Offline: refused connection fails at once and suggests --from. */
    p.base_url = "http://127.0.0.1:1";
    uint64_t t0 = timer_now_ns();
    CHECK_EQ(ing_dataset_fetch(d, p, &out, &e), TAILOR_ENETWORK);
    CHECK(timer_seconds_since(t0) < 10);
    CHECK_CONTAINS(e.msg, "tailor datasets fetch ml-100k --from DIR");
    sb_deinit(&body);
    free(cache);
    free(zp);
    free(zdir);
    free(src);
}

int main(void) {
    g_dir = test_tmpdir();
    RUN(test_table);
    RUN(test_from_folder);
    RUN(test_from_zip);
    RUN(test_download);
    test_rmtree(g_dir);
    free(g_dir);
    return test_summary();
}
