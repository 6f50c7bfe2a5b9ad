// main() of mproc's Google Benchmark binaries: mproc::init first (spawn and forkserver children
// of a benchmark re-run the binary and take over there), then Google Benchmark as usual.
#pragma once

#include <benchmark/benchmark.h>

#include <mproc/process.hpp>

#define MPROC_BENCHMARK_MAIN()                                        \
  int main(int argc, char** argv) {                                   \
    mproc::init(argc, argv);                                          \
    benchmark::Initialize(&argc, argv);                               \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    benchmark::RunSpecifiedBenchmarks();                              \
    benchmark::Shutdown();                                            \
    return 0;                                                         \
  }
