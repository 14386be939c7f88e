/* gen_events.c — writes a synthetic events CSV for the import benchmark:
 * N rows of user_id,item_id,timestamp,rating with skewed (power-law) item
 * popularity, a fixed user and item universe (so memory kept by the import
 * does not depend on N), and a fixed seed.
 * usage: gen_events N USERS ITEMS > file.csv */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: gen_events N USERS ITEMS\n");
        return 64;
    }
    long long n = atoll(argv[1]), users = atoll(argv[2]), items = atoll(argv[3]);
    static char buf[1 << 20];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    printf("user_id,item_id,timestamp,rating\n");
    long long ts = 1500000000;
    for (long long k = 0; k < n; k++) {
        long long u = (long long)(next() % (uint64_t)users) + 1;
        double x = (double)(next() >> 11) / 9007199254740992.0;
        long long i = (long long)(pow(x, 3.0) * (double)items) + 1; /* skewed */
        ts += (long long)(next() % 3);
        int r = (int)(next() % 10) + 1;
        printf("%lld,%lld,%lld,%d.%d\n", u, i, ts, r / 2, r % 2 ? 5 : 0);
    }
    return 0;
}
