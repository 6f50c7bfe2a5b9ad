// Start + join of one child that does nothing, for each start method, beside the raw system
// calls each method is built on (the controls): fork + waitpid, and posix_spawn + waitpid of this
// same binary running an empty main. Run by bench/run_process_bench.sh, which adds CPython.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <benchmark/benchmark.h>

#include <mproc/mproc.hpp>

extern char** environ;

namespace {

constexpr const char* kEmptyChildFlag = "--bench-empty-child";
const char* g_argv0 = "process_bench";

void empty_target() {}

void BM_RawForkWaitpid(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("child failed");
  }
}

void BM_RawPosixSpawnSelf(benchmark::State& state) {
  char* args[] = {const_cast<char*>(g_argv0), const_cast<char*>(kEmptyChildFlag), nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args, environ) != 0)
      state.SkipWithError("spawn");
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("child failed");
  }
}

void BM_ProcessStartJoin(benchmark::State& state, mproc::StartMethod method) {
  const auto ctx = mproc::get_context(method);
  {  // the forkserver starts on first use: keep that out of the timing, as CPython's figure does
    auto warm = ctx.Process(empty_target);
    warm.start();
    warm.join();
  }
  for (auto _ : state) {
    auto p = ctx.Process(empty_target);
    p.start();
    p.join();
    if (p.exitcode() != 0) state.SkipWithError("child failed");
  }
}

BENCHMARK(BM_RawForkWaitpid)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ProcessStartJoin, fork, mproc::StartMethod::fork)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_RawPosixSpawnSelf)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ProcessStartJoin, spawn, mproc::StartMethod::spawn)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_ProcessStartJoin, forkserver, mproc::StartMethod::forkserver)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], kEmptyChildFlag) == 0) return 0;  // the raw-spawn control's child
  mproc::init(argc, argv);
  g_argv0 = argv[0];
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
