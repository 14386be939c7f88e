/* membw.c — the machine's read bandwidth (the bound token generation runs
 * into), through the same measurement `tailor llm bench` uses.
 * Usage: membw [THREADS...] (default 1 2) */
#include <stdio.h>
#include <stdlib.h>

#include "llm/llm.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? argc - 1 : 2;
    for (int i = 0; i < n; i++) {
        int t = argc > 1 ? atoi(argv[i + 1]) : i + 1;
        if (t < 1 || t > 256) return 64;
        printf("read bandwidth, %d thread%s: %.1f GB/s\n", t, t > 1 ? "s" : "", llm_read_bandwidth_gbs(t));
    }
    return 0;
}
