// Manager (issue 7): a local proxy call (list.append, dict set and get, a registered type's
// method) in a loop, beside
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

class Counter {
 public:
  void add(long n) { value_ += n; }
  [[nodiscard]] long value() const { return value_; }

 private:
  long value_ = 0;
};

// A registered type's method through BaseProxy::call (CPython's BaseManager.register and
// _callmethod): the name and signature check on every call.
void BM_RegisteredMethodCall(benchmark::State& state) {
  mproc::BaseManager manager;
  manager.register_type<Counter>(
      "Counter", mproc::Methods<Counter>().def("add", &Counter::add).def("value", &Counter::value));
  manager.start();
  auto counter = manager.create("Counter");
  long n = 0;
  for (auto _ : state) {
    counter.call("add", 1L);
    ++n;
  }
  if (counter.call<long>("value") != n) state.SkipWithError("lost calls");
}

// A queue in the server (BaseManager::Queue, CPython's manager.Queue()): a put and a get, two
// calls, an iteration.
void BM_ServerQueuePutGet(benchmark::State& state) {
  mproc::BaseManager manager;
  manager.start();
  auto q = manager.Queue<int>();
  int i = 0;
  for (auto _ : state) {
    q.put(i);
    if (q.get() != i++) state.SkipWithError("wrong item");
  }
  state.SetItemsProcessed(state.iterations() * 2);
}

BENCHMARK(BM_ManagerListAppend)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ManagerDictSetGet)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_RegisteredMethodCall)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ServerQueuePutGet)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

MPROC_BENCHMARK_MAIN();
