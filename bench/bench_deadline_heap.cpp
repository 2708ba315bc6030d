// work in progress
#include <benchmark/benchmark.h>
BENCHMARK_MAIN();
