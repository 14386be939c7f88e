/* cpu.c — which vector kernel set this CPU runs, for the modules that
 * write their own (ALS's CG rows, the training softmax's exp, the vector
 * index): one CPUID check and one override, $TAILOR_LLM_KERNELS, the
 * engine-wide switch that makes every path testable on a machine that
 * runs it. (The LLM engine's own table, with AVX-VNNI, is in llm/quant.c.) */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static const char *const NAMES[CPU_SET_COUNT] = {"scalar", "avx2", "avx512"};

const char *cpu_set_name(cpu_set s) { return NAMES[s]; }

int cpu_set_named(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "scalar")) return CPU_SET_SCALAR;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CPU_SET_AVX2;
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) return CPU_SET_AVX512;
#endif
    return -1;
}

cpu_set cpu_set_best(void) {
    int forced = cpu_set_named(getenv("TAILOR_LLM_KERNELS"));
    if (forced >= 0) return (cpu_set)forced;
    if (cpu_set_named("avx512") >= 0) return CPU_SET_AVX512;
    if (cpu_set_named("avx2") >= 0) return CPU_SET_AVX2;
    return CPU_SET_SCALAR;
}
