/* datasets.c — the public datasets tailor knows, and their download cache.
 * A fetch downloads NAME.zip with libcurl (or takes it from --from), checks
 * its size and digest, unpacks it with libzip into CACHE/NAME.tmp and
 * renames that to CACHE/NAME only when everything succeeded, so a cache
 * entry is either whole or absent. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "ingest/ingest.h"

#define GROUPLENS_URL "https://files.grouplens.org/datasets/movielens"

/* GroupLens publishes MD5 sums (NAME.zip.md5) for the frozen datasets; the
 * SHA-256 is pinned where an independent record of it exists. */
static const ing_dataset DATASETS[] = {
    {"ml-latest-small",
     "MovieLens latest small: 100,836 ratings and 3,683 tags, 610 users, 9,742 movies",
     GROUPLENS_URL "/ml-latest-small.zip", "ml-latest-small", 0,
     "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", NULL},
    {"ml-100k", "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies (1998)",
     GROUPLENS_URL "/ml-100k.zip", "ml-100k", 0, NULL, "0e33842e24a9c977be4e0107933c0723"},
    {"ml-1m", "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies (2003)",
     GROUPLENS_URL "/ml-1m.zip", "ml-1m", 0, NULL, "c4d9eecfca2ab87c1945afe126590906"},
    {"ml-20m", "MovieLens 20M: 20,000,263 ratings and 465,564 tags, 138,493 users, 27,278 movies",
     GROUPLENS_URL "/ml-20m.zip", "ml-20m", 0, NULL, "cd245b17a1ae2cc31bb14903e1204af3"},
};

const ing_dataset *ing_datasets(size_t *n) {
    *n = sizeof DATASETS / sizeof DATASETS[0];
    return DATASETS;
}

const ing_dataset *ing_dataset_find(const char *name) {
    size_t n;
    const ing_dataset *d = ing_datasets(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(d[i].name, name)) return &d[i];
    return NULL;
}

char *ing_cache_dir(void) {
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x) return path_join(x, "tailor");
    const char *h = getenv("HOME");
    char *c = path_join(h && *h ? h : ".", ".cache");
    char *r = path_join(c, "tailor");
    free(c);
    return r;
}

bool ing_dataset_cached(const ing_dataset *d, const char *root, char **out_dir) {
    char *dir = path_join(root, d->name);
    if (ing_movielens_detect(dir)) {
        *out_dir = dir;
        return true;
    }
    free(dir);
    return false;
}

static int digest_file(const char *path, const EVP_MD *md, char *out_hex, tailor_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, TAILOR_EIO, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, md, NULL);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    bool bad = ferror(f);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(ctx, d, &dl);
    EVP_MD_CTX_free(ctx);
    if (bad) return err_set(err, TAILOR_EIO, "%s: read error", path);
    for (unsigned i = 0; i < dl; i++) snprintf(out_hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int ing_sha256_file(const char *path, char out_hex[65], tailor_error *err) {
    return digest_file(path, EVP_sha256(), out_hex, err);
}

/* Checks a zip against the table (or the override). */
static int verify_zip(const ing_dataset *d, const char *zip, const char *sha_override,
                      tailor_error *err) {
    struct stat st;
    if (stat(zip, &st) != 0) return err_set(err, TAILOR_EIO, "cannot stat %s", zip);
    if (d->size && (uint64_t)st.st_size != d->size)
        return err_set(err, TAILOR_ECHECKSUM, "%s: %lld bytes, expected %llu (incomplete download?)",
                       zip, (long long)st.st_size, (unsigned long long)d->size);
    char sha[65];
    int rc = ing_sha256_file(zip, sha, err);
    if (rc) return rc;
    const char *want = sha_override ? sha_override : d->sha256;
    if (want) {
        if (strcasecmp(sha, want) != 0)
            return err_set(err, TAILOR_ECHECKSUM,
                           "%s: SHA-256 %s does not match the expected %s (corrupt or different "
                           "file; pass --sha256 HEX for a mirror's repackaged copy)",
                           zip, sha, want);
        log_info("%s: SHA-256 %s verified", zip, sha);
    } else if (d->md5) {
        char md5[33];
        if ((rc = digest_file(zip, EVP_md5(), md5, err))) return rc;
        if (strcasecmp(md5, d->md5) != 0)
            return err_set(err, TAILOR_ECHECKSUM,
                           "%s: MD5 %s does not match GroupLens' published %s (corrupt or "
                           "different file)",
                           zip, md5, d->md5);
        log_info("%s: MD5 verified (published by GroupLens); SHA-256 %s", zip, sha);
    }
    fprintf(stderr, "%s: %lld bytes, SHA-256 %s\n", d->name, (long long)st.st_size, sha);
    return 0;
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *c = path_join(path, e->d_name);
        remove_tree(c);
        free(c);
    }
    closedir(d);
    rmdir(path);
}

/* Unpacks the zip's top folder (d->zip_dir) into dest, refusing entries
 * that would escape it. */
static int unzip_into(const ing_dataset *d, const char *zip_path, const char *dest,
                      tailor_error *err) {
    int zerr = 0;
    zip_t *z = zip_open(zip_path, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        err_set(err, TAILOR_EDATA, "%s: not a readable zip: %s", zip_path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return TAILOR_EDATA;
    }
    int rc = mkdir_p(dest, err);
    size_t prefix = strlen(d->zip_dir);
    zip_int64_t n = zip_get_num_entries(z, 0);
    size_t files = 0;
    for (zip_int64_t i = 0; !rc && i < n; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!name) continue;
        if (strstr(name, "..") || name[0] == '/') {
            rc = err_set(err, TAILOR_EDATA, "%s: unsafe entry name '%s'", zip_path, name);
            break;
        }
        if (strncmp(name, d->zip_dir, prefix) != 0 || name[prefix] != '/') continue;
        const char *rel = name + prefix + 1;
        if (!*rel || rel[strlen(rel) - 1] == '/') continue; /* folders */
        if (strchr(rel, '/')) continue; /* nested folders: not part of the data */
        char *out = path_join(dest, rel);
        zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
        FILE *f = zf ? fopen(out, "wb") : NULL;
        if (!zf || !f) {
            rc = err_set(err, TAILOR_EIO, "cannot extract %s from %s", name, zip_path);
        } else {
            char buf[1 << 16];
            zip_int64_t got;
            while ((got = zip_fread(zf, buf, sizeof buf)) > 0)
                if (fwrite(buf, 1, (size_t)got, f) != (size_t)got) {
                    rc = err_set(err, TAILOR_EIO, "cannot write %s", out);
                    break;
                }
            if (got < 0) rc = err_set(err, TAILOR_EDATA, "%s: corrupt entry %s", zip_path, name);
        }
        if (f && fclose(f) != 0 && !rc) rc = err_set(err, TAILOR_EIO, "cannot write %s", out);
        if (zf) zip_fclose(zf);
        free(out);
        files++;
    }
    zip_discard(z);
    if (!rc && files == 0)
        rc = err_set(err, TAILOR_EDATA, "%s: no files under %s/ in the zip", zip_path, d->zip_dir);
    return rc;
}

static int copy_file(const char *from, const char *to, tailor_error *err) {
    FILE *in = fopen(from, "rb");
    if (!in) return err_set(err, TAILOR_EIO, "cannot open %s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return err_set(err, TAILOR_EIO, "cannot create %s: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = err_set(err, TAILOR_EIO, "cannot write %s", to);
            break;
        }
    fclose(in);
    if (fclose(out) != 0 && !rc) rc = err_set(err, TAILOR_EIO, "cannot write %s", to);
    return rc;
}

static int copy_dir_files(const char *from, const char *to, tailor_error *err) {
    int rc = mkdir_p(to, err);
    if (rc) return rc;
    DIR *d = opendir(from);
    if (!d) return err_set(err, TAILOR_EIO, "cannot read %s", from);
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        char *src = path_join(from, e->d_name);
        if (file_exists(src)) {
            char *dst = path_join(to, e->d_name);
            rc = copy_file(src, dst, err);
            free(dst);
        }
        free(src);
    }
    closedir(d);
    return rc;
}

typedef struct dl_progress {
    progress bar;
} dl_progress;

static int dl_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    dl_progress *p = ud;
    if (dltotal > 0 && p->bar.total != (uint64_t)dltotal) progress_set_total(&p->bar, (uint64_t)dltotal);
    progress_update(&p->bar, (uint64_t)dlnow);
    return 0;
}

static int download(const char *url, const char *dest, const ing_dataset *d, tailor_error *err) {
    FILE *f = fopen(dest, "wb");
    if (!f) return err_set(err, TAILOR_EIO, "cannot create %s: %s", dest, strerror(errno));
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(f);
        return err_set(err, TAILOR_EINTERNAL, "curl_easy_init failed");
    }
    char cerr[CURL_ERROR_SIZE] = {0};
    dl_progress dp;
    progress_begin(&dp.bar, d->name, d->size);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    /* Offline machines fail at name resolution or connect: quickly. */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tailor/" TAILOR_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, dl_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &dp);
    CURLcode cr = curl_easy_perform(c);
    progress_end(&dp.bar);
    curl_off_t announced = -1, got = 0;
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
    curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &got);
    curl_easy_cleanup(c);
    bool werr = fclose(f) != 0;
    if (cr != CURLE_OK) {
        unlink(dest);
        bool net = cr == CURLE_COULDNT_RESOLVE_HOST || cr == CURLE_COULDNT_CONNECT ||
                   cr == CURLE_OPERATION_TIMEDOUT || cr == CURLE_COULDNT_RESOLVE_PROXY ||
                   cr == CURLE_SSL_CONNECT_ERROR || cr == CURLE_RECV_ERROR ||
                   cr == CURLE_SEND_ERROR;
        return err_set(err, net ? TAILOR_ENETWORK : TAILOR_EIO,
                       "cannot download %s: %s. If this machine is offline, get %s.zip "
                       "elsewhere and run: tailor datasets fetch %s --from DIR "
                       "(DIR holding %s.zip or the unpacked %s/ folder)",
                       url, cerr[0] ? cerr : curl_easy_strerror(cr), d->name, d->name, d->name,
                       d->name);
    }
    if (werr) {
        unlink(dest);
        return err_set(err, TAILOR_EIO, "cannot write %s", dest);
    }
    /* The size the server announced must have arrived whole. */
    if (announced >= 0 && got != announced) {
        unlink(dest);
        return err_set(err, TAILOR_ECHECKSUM, "%s: received %lld of %lld bytes", url,
                       (long long)got, (long long)announced);
    }
    return 0;
}

int ing_dataset_fetch(const ing_dataset *d, ing_fetch_params p, char **out_dir,
                      tailor_error *err) {
    *out_dir = NULL;
    char *root = p.dir ? xstrdup(p.dir) : ing_cache_dir();
    char *final = path_join(root, d->name);
    int rc = 0;
    if (!p.force && ing_movielens_detect(final)) {
        *out_dir = final;
        free(root);
        return 0;
    }
    if ((rc = mkdir_p(root, err))) goto out;
    sb tmp_name;
    sb_init(&tmp_name);
    sb_printf(&tmp_name, "%s.tmp.%d", d->name, (int)getpid());
    char *tmp = path_join(root, sb_str(&tmp_name));
    sb_deinit(&tmp_name);
    remove_tree(tmp);

    if (p.from) {
        char *zip = NULL;
        sb zn;
        sb_init(&zn);
        sb_printf(&zn, "%s.zip", d->name);
        char *zp = path_join(p.from, sb_str(&zn));
        sb_deinit(&zn);
        char *sub = path_join(p.from, d->name);
        if (file_exists(zp)) {
            zip = zp;
            zp = NULL;
            rc = verify_zip(d, zip, p.sha256, err);
            if (!rc) rc = unzip_into(d, zip, tmp, err);
        } else if (ing_movielens_detect(sub)) {
            rc = copy_dir_files(sub, tmp, err);
        } else if (ing_movielens_detect(p.from)) {
            rc = copy_dir_files(p.from, tmp, err);
        } else {
            rc = err_set(err, TAILOR_ENOTFOUND,
                         "--from %s: found neither %s.zip, nor a %s/ folder, nor the dataset's "
                         "files themselves",
                         p.from, d->name, d->name);
        }
        free(zp);
        free(sub);
        free(zip);
    } else {
        const char *base = p.base_url ? p.base_url : getenv("TAILOR_DATASETS_URL");
        char *url;
        if (base && *base) {
            sb u;
            sb_init(&u);
            sb_printf(&u, "%s/%s.zip", base, d->name);
            url = sb_take(&u);
        } else {
            url = xstrdup(d->url);
        }
        sb zn;
        sb_init(&zn);
        sb_printf(&zn, "%s.zip.part", d->name);
        char *zip = path_join(root, sb_str(&zn));
        sb_deinit(&zn);
        fprintf(stderr, "downloading %s\n", url);
        rc = download(url, zip, d, err);
        if (!rc) rc = verify_zip(d, zip, p.sha256, err);
        if (!rc) rc = unzip_into(d, zip, tmp, err);
        unlink(zip);
        free(zip);
        free(url);
    }
    if (!rc && !ing_movielens_detect(tmp))
        rc = err_set(err, TAILOR_EDATA, "%s: unpacked, but the MovieLens files are not there",
                     d->name);
    if (!rc) {
        remove_tree(final);
        if (rename(tmp, final) != 0)
            rc = err_set(err, TAILOR_EIO, "cannot move %s to %s: %s", tmp, final, strerror(errno));
    }
    if (rc) remove_tree(tmp);
    free(tmp);
out:
    if (!rc) *out_dir = final;
    else free(final);
    free(root);
    return rc;
}
