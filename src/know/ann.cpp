// ann.cpp — the Faiss side of ann.h. Every Faiss call is inside a try:
// a C++ exception must never cross into C.
#include "know/ann.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <omp.h>

struct kg_ann {
    faiss::Index *index;
    kg_ann_kind kind;
};

static int fail(char *msg, size_t len, const char *what) {
    if (msg && len) std::snprintf(msg, len, "%s", what);
    return -1;
}

static kg_ann_kind kind_of(faiss::Index *ix) {
    if (dynamic_cast<faiss::IndexHNSW *>(ix)) return KG_ANN_HNSW;
    if (dynamic_cast<faiss::IndexIVF *>(ix)) return KG_ANN_IVF;
    return KG_ANN_FLAT;
}

extern "C" int kg_ann_build(const float *vec, int64_t n, int dim, kg_ann_kind kind, kg_ann **out, char *msg,
                            size_t len) {
    *out = nullptr;
    kg_ann *a = new kg_ann{nullptr, kind};
    try {
        if (kind == KG_ANN_HNSW) {
            auto *h = new faiss::IndexHNSWFlat(dim, 32, faiss::METRIC_INNER_PRODUCT);
            h->hnsw.efConstruction = 80;
            a->index = h;
        } else if (kind == KG_ANN_IVF) {
            // 4 sqrt(n) cells, with the 39 training points per cell
            // k-means wants.
            int64_t cells = (int64_t)(4 * std::sqrt((double)n));
            if (cells > n / 39) cells = n / 39;
            if (cells < 1) cells = 1;
            auto *q = new faiss::IndexFlatIP(dim);
            auto *ivf = new faiss::IndexIVFFlat(q, dim, (size_t)cells, faiss::METRIC_INNER_PRODUCT);
            ivf->own_fields = true;
            ivf->cp.verbose = false;
            ivf->train(n, vec);
            a->index = ivf;
        } else {
            a->index = new faiss::IndexFlatIP(dim);
        }
        a->index->add(n, vec);
    } catch (const std::exception &e) {
        delete a->index;
        delete a;
        return fail(msg, len, e.what());
    }
    *out = a;
    return 0;
}

extern "C" int kg_ann_search(kg_ann *a, const float *Q, int nq, int k, int effort, int64_t *out, float *scores,
                             char *msg, size_t len) {
    try {
        if (auto *h = dynamic_cast<faiss::IndexHNSW *>(a->index)) {
            faiss::SearchParametersHNSW p;
            p.efSearch = effort > 0 ? effort : 128;
            if (p.efSearch < k) p.efSearch = k;
            h->search(nq, Q, k, scores, out, &p);
        } else if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(a->index)) {
            faiss::SearchParametersIVF p;
            p.nprobe = (size_t)(effort > 0 ? effort : 16);
            if (p.nprobe > ivf->nlist) p.nprobe = ivf->nlist;
            ivf->search(nq, Q, k, scores, out, &p);
        } else {
            a->index->search(nq, Q, k, scores, out);
        }
    } catch (const std::exception &e) {
        return fail(msg, len, e.what());
    }
    return 0;
}

extern "C" int kg_ann_save(const kg_ann *a, const char *path, char *msg, size_t len) {
    std::string tmp = std::string(path) + ".tmp";
    try {
        faiss::write_index(a->index, tmp.c_str());
    } catch (const std::exception &e) {
        std::remove(tmp.c_str());
        return fail(msg, len, e.what());
    }
    if (std::rename(tmp.c_str(), path)) {
        std::remove(tmp.c_str());
        return fail(msg, len, "cannot rename the written index into place");
    }
    return 0;
}

extern "C" int kg_ann_load(const char *path, kg_ann **out, char *msg, size_t len) {
    *out = nullptr;
    try {
        faiss::Index *ix = faiss::read_index(path);
        *out = new kg_ann{ix, kind_of(ix)};
    } catch (const std::exception &e) {
        return fail(msg, len, e.what());
    }
    return 0;
}

extern "C" void kg_ann_free(kg_ann *a) {
    if (!a) return;
    delete a->index;
    delete a;
}

extern "C" int64_t kg_ann_count(const kg_ann *a) { return a->index->ntotal; }
extern "C" int kg_ann_dim(const kg_ann *a) { return a->index->d; }
extern "C" kg_ann_kind kg_ann_kind_of(const kg_ann *a) { return a->kind; }
extern "C" void kg_ann_threads(int n) { omp_set_num_threads(n > 0 ? n : 1); }
