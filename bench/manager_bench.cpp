// Manager (issue 7): a local proxy call (list.append, dict set and get) in a loop, beside
// CPython's manager measured in the same run by bench/run_manager_bench.sh
// (bench/peers/cpython_manager.py).
#include <string>

#include <benchmark/benchmark.h>

#include "bench_main.hpp"
#include <mproc/mproc.hpp>

namespace {

void BM_ManagerListAppend(benchmark::State& state) {
  mproc::Manager manager;
  auto l = manager.list<int>();
  int i = 0;
  for (auto _ : state) l.append(i++);
  if (l.size() != static_cast<std::size_t>(i)) state.SkipWithError("lost appends");
}

void BM_ManagerDictSetGet(benchmark::State& state) {
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  int i = 0;
  for (auto _ : state) {
    d.set("k", i);
    if (d.get("k") != i++) state.SkipWithError("wrong value");
  }
  state.SetItemsProcessed(state.iterations() * 2);  // two calls an iteration
}

BENCHMARK(BM_ManagerListAppend)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ManagerDictSetGet)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

MPROC_BENCHMARK_MAIN();
