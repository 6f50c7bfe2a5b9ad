// Event wake-up latency (issue 3), against the raw mechanisms it is built on, between two
// processes:
//   * spinning: a ping-pong of two Events (set, the other side's wait returns, it clears and sets
//     back) against the same ping-pong of a raw shared cache line; per round trip.
//   * sleeping: one set() to a waiter that is parked in the kernel, one way, timed from just
//     before set() to the waiter's return (both read CLOCK_MONOTONIC), against a raw futex wake
//     of a raw futex wait; the setter lets the waiter settle for 200 us before each set.
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>

#include <benchmark/benchmark.h>

#include "bench_main.hpp"
#include "bench_support.hpp"
#include <mproc/mproc.hpp>

namespace {

using mproc_bench::now_ns;
using mproc_bench::pause_cpu;
using mproc_bench::shared_region;

constexpr int kRoundTrips = 20'000;

// Pins the calling process to one CPU, so that the two sides of a ping-pong run on two cores
// (STYLE.md point 8); the benchmark restores the parent's mask when it ends.
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

struct Pinned {
  cpu_set_t saved;
  Pinned() {
    sched_getaffinity(0, sizeof saved, &saved);
    pin_to(0);
  }
  ~Pinned() { sched_setaffinity(0, sizeof saved, &saved); }
};

// An iteration is a batch of kRoundTrips; this reports the seconds per round trip.
void per_round_trip(benchmark::State& state) {
  state.counters["round_trip"] = benchmark::Counter(
      kRoundTrips, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

struct alignas(128) Line {
  std::atomic<std::uint32_t> value{0};
};

struct PingPong {
  Line ping;
  Line pong;
};

void BM_RawCacheLineRoundTrip(benchmark::State& state) {
  auto* s = shared_region<PingPong>();
  Pinned pinned;
  const pid_t child = fork();
  if (child == 0) {
    pin_to(1);
    for (std::uint32_t i = 1;; ++i) {
      while (s->ping.value.load(std::memory_order_acquire) != i) pause_cpu();
      s->pong.value.store(i, std::memory_order_release);
      if (i == 0xffffffffu) break;
    }
    _exit(0);
  }
  std::uint32_t i = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kRoundTrips; ++k) {
      ++i;
      s->ping.value.store(i, std::memory_order_release);
      while (s->pong.value.load(std::memory_order_acquire) != i) pause_cpu();
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  per_round_trip(state);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  munmap(s, sizeof *s);
}

void BM_EventRoundTripSpinning(benchmark::State& state) {
  mproc::Event ping;
  mproc::Event pong;
  Pinned pinned;
  const pid_t child = fork();
  if (child == 0) {
    pin_to(1);
    for (;;) {
      ping.wait();
      ping.clear();
      pong.set();
    }
  }
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kRoundTrips; ++k) {
      ping.set();
      pong.wait();
      pong.clear();
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  per_round_trip(state);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

struct Latency {
  Line word;  // raw futex word / Event stand-in
  Line ack;   // the waiter's "measured" count
  std::atomic<std::int64_t> woke_ns{0};
};

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, nullptr, nullptr, 0);
}

void BM_RawFutexWakeLatency(benchmark::State& state) {
  auto* s = shared_region<Latency>();
  Pinned pinned;
  const pid_t child = fork();
  if (child == 0) {
    pin_to(1);
    for (std::uint32_t i = 1;; ++i) {
      while (s->word.value.load(std::memory_order_acquire) != i) futex(&s->word.value, FUTEX_WAIT, i - 1);
      s->woke_ns.store(now_ns(), std::memory_order_relaxed);
      s->ack.value.store(i, std::memory_order_release);
    }
  }
  std::uint32_t i = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the waiter is asleep by now
    ++i;
    const std::int64_t t0 = now_ns();
    s->word.value.store(i, std::memory_order_release);
    futex(&s->word.value, FUTEX_WAKE, 1);
    while (s->ack.value.load(std::memory_order_acquire) != i) sched_yield();
    state.SetIterationTime(static_cast<double>(s->woke_ns.load(std::memory_order_relaxed) - t0) * 1e-9);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  munmap(s, sizeof *s);
}

void BM_EventWakeLatencySleeping(benchmark::State& state) {
  mproc::Event event;
  auto* s = shared_region<Latency>();
  Pinned pinned;
  const pid_t child = fork();
  if (child == 0) {
    pin_to(1);
    for (std::uint32_t i = 1;; ++i) {
      event.wait();
      s->woke_ns.store(now_ns(), std::memory_order_relaxed);
      event.clear();
      s->ack.value.store(i, std::memory_order_release);
    }
  }
  std::uint32_t i = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // past the spin: parked
    ++i;
    const std::int64_t t0 = now_ns();
    event.set();
    while (s->ack.value.load(std::memory_order_acquire) != i) sched_yield();
    state.SetIterationTime(static_cast<double>(s->woke_ns.load(std::memory_order_relaxed) - t0) * 1e-9);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  munmap(s, sizeof *s);
}

BENCHMARK(BM_RawCacheLineRoundTrip)->UseManualTime()->Unit(benchmark::kNanosecond);
BENCHMARK(BM_EventRoundTripSpinning)->UseManualTime()->Unit(benchmark::kNanosecond);
BENCHMARK(BM_RawFutexWakeLatency)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2000);
BENCHMARK(BM_EventWakeLatencySleeping)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2000);

}  // namespace

MPROC_BENCHMARK_MAIN()
