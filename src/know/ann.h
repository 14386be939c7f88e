/* ann.h — approximate nearest-neighbour search through Faiss (Debian's
 * libfaiss-dev, C++ only: its C API is not built into the package).
 * ann.cpp is the one C++ file of tailor; this header is the boundary, so
 * it uses plain C types and reports errors as text. know.h wraps it for
 * the rest of tailor; nothing else includes it.
 *
 * Vectors are unit length and scored by inner product (the cosine). */
#ifndef TAILOR_KNOW_ANN_H
#define TAILOR_KNOW_ANN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kg_ann kg_ann;
/* flat: exact (Faiss's IndexFlatIP, the yardstick of the benchmarks);
 * hnsw: a graph (M 32, efConstruction 80), no training; ivf: inverted
 * lists over k-means cells (4 sqrt(n), at most n / 39), trained on the
 * vectors themselves. */
typedef enum kg_ann_kind { KG_ANN_FLAT = 0, KG_ANN_HNSW, KG_ANN_IVF } kg_ann_kind;

/* 0, or -1 with the reason in msg. */
int kg_ann_build(const float *vec, int64_t n, int dim, kg_ann_kind kind, kg_ann **out, char *msg, size_t len);
/* The k best of each of nq queries (Q: nq x dim): out/scores nq x k, best
 * first, -1 rows where the index found fewer. effort: HNSW's efSearch or
 * IVF's probed cells (0 = the default: 128 and 16). */
int kg_ann_search(kg_ann *a, const float *Q, int nq, int k, int effort, int64_t *out, float *scores, char *msg,
                  size_t len);
int kg_ann_save(const kg_ann *a, const char *path, char *msg, size_t len);
int kg_ann_load(const char *path, kg_ann **out, char *msg, size_t len);
void kg_ann_free(kg_ann *a);
int64_t kg_ann_count(const kg_ann *a);
int kg_ann_dim(const kg_ann *a);
kg_ann_kind kg_ann_kind_of(const kg_ann *a);
/* Threads Faiss uses (OpenMP), for all indexes. */
void kg_ann_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
