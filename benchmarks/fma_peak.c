/* This CPU's peak fp32 throughput: every core runs independent chains of vector fused multiply-adds
 * (enough chains to cover the FMA latency on every FMA port), nothing touches memory. Built by
 * benchmarks/cpu_peak.py with -O3 -march=native -ffp-contract=fast -fopenmp; prints GFLOPS. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef WIDTH
#define WIDTH 16 /* floats per vector: 16 = 512 bits (AVX-512); the compiler splits it on narrower units */
#endif
#define CHAINS 12 /* accumulators in flight per core: at least FMA latency (4) x FMA ports (2) */

typedef float vec __attribute__((vector_size(WIDTH * sizeof(float))));

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 50000000L;
    int threads = omp_get_max_threads();
    double best = 0.0;
    float sink = 0.0f;
    for (int repeat = 0; repeat < 5; repeat++) {
        double start = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
        {
            vec a, b;
            for (int i = 0; i < WIDTH; i++) {
                a[i] = 1.0f + 1e-3f * (float)i;
                b[i] = 0.999999f;
            }
            /* twelve named accumulators, so that each lives in a register */
            vec c0 = a, c1 = a * 2, c2 = a * 3, c3 = a * 4, c4 = a * 5, c5 = a * 6;
            vec c6 = a * 7, c7 = a * 8, c8 = a * 9, c9 = a * 10, c10 = a * 11, c11 = a * 12;
            for (long i = 0; i < iterations; i++) {
                c0 = c0 * b + a; c1 = c1 * b + a; c2 = c2 * b + a; c3 = c3 * b + a;
                c4 = c4 * b + a; c5 = c5 * b + a; c6 = c6 * b + a; c7 = c7 * b + a;
                c8 = c8 * b + a; c9 = c9 * b + a; c10 = c10 * b + a; c11 = c11 * b + a;
            }
            vec total = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
            for (int i = 0; i < WIDTH; i++) sink += total[i];
        }
        double seconds = omp_get_wtime() - start;
        double gflops = 2.0 * WIDTH * CHAINS * (double)iterations * threads / seconds / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("%.1f %d %.3g\n", best, threads, (double)sink);
    return 0;
}
