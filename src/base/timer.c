/* timer.c — monotonic clock helpers. */
#include <time.h>

#include "base.h"

uint64_t timer_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double timer_seconds_since(uint64_t start_ns) {
    return (double)(timer_now_ns() - start_ns) / 1e9;
}
