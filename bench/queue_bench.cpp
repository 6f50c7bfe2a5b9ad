// Queue and Pipe between processes (issue 4): the peers mproc's Queue and Pipe are measured
// against, in the same run; mproc's own cases go next to them under parallel names (BM_Mproc*).
//   *_1P1C, *_2P2C: K 8-byte values from P producer processes to C consumer processes, timed from
//     a common start line to the last process's end (process creation is not the queue's cost);
//     every consumer folds what it got into a checksum, checked against 1..K inside the benchmark,
//     so a lost, duplicated or torn message fails the run. Both sides spin (pause and retry); the
//     *_Yield variants, not a target's peers, yield the core after 100 pauses.
//   *_PingPong: per round trip; over two spsc_queues with both sides spinning, and a raw
//     FUTEX_WAKE/FUTEX_WAIT on two shared words with both sides sleeping.
//   BM_InterprocessMessageQueue/<bytes>: Boost.Interprocess's named message_queue, 1P1C.
// Nothing is pinned: the machine has 2 cores shared with other work, and the 2P2C runs have more
// processes than cores anyway, so figures are what the scheduler gives; compare ratios of one run.
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include "bench_main.hpp"
#include "bench_support.hpp"
#include <mproc/connection.hpp>
#include <mproc/queues.hpp>

namespace {

using mproc_bench::now_ns;
using mproc_bench::pause_cpu;
using mproc_bench::release_region;
using mproc_bench::shared_region;

constexpr std::uint64_t kValues = 1'000'000;         // 8-byte values per 1P1C / 2P2C run
constexpr int kSpinRoundTrips = 100'000;             // round trips per iteration, both sides spinning
constexpr int kSleepRoundTrips = 20'000;             // round trips per iteration, both sides sleeping
constexpr std::uint64_t kSmallMessages = 1'000'000;  // message_queue messages of <= 1 KiB per run
constexpr std::uint64_t kLargeMessages = 200'000;    // message_queue messages of 4 KiB per run
constexpr std::size_t kMessageQueueSlots = 1024;     // message_queue max_num_msg
// A run that takes longer has lost a message (a consumer spins for one that never comes) or a
// process; its children are killed and the benchmark reports an error instead of hanging.
constexpr std::chrono::seconds kRunDeadline{30};

// Capacity 1024 values for both Boost queues: a ring a few lines long would make the producer
// wait on the consumer's every step; far larger ones only measure cache misses. spsc_queue keeps
// 1025 slots (8 KiB, one always empty); queue keeps 1025 nodes (one dummy) of a cache line each.
constexpr std::size_t kCapacity = 1024;
// spsc_queue as shipped: its two indices are on separate lines, but read_index_ shares a line
// with the first slots, and every push and pop loads the other side's index (no cached copy):
// costs that a ring with cached indices and padded slots avoids.
using SpscQueue = boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<kCapacity>>;
// With capacity<> the queue's nodes live inside the object (compiletime_sized_freelist_storage)
// and every link, head_, tail_ and the freelist top, is a 16-bit index plus a 16-bit ABA tag
// (tagged_index), found from `this`: no pointer is stored, so the object is address-free and works
// in MAP_SHARED memory across fork (checked by mapping one memfd at two addresses, pushing
// through one and popping through the other). Without capacity<> it stores raw node pointers and
// allocates from the process's heap, which no other process can read. The 16-bit index caps the
// capacity at 65534, and the 16-bit tag lets ABA through in principle if a process stalls between
// its read and its compare-exchange while the same word is updated 65536 times.
using MpmcQueue = boost::lockfree::queue<std::uint64_t, boost::lockfree::fixed_sized<true>,
                                         boost::lockfree::capacity<kCapacity>>;

// A std::atomic that is not lock-free takes a lock from libatomic's table in the process's own
// memory, which excludes nobody in another process: both queues' words must be lock-free.
static_assert(std::atomic<std::size_t>::is_always_lock_free, "spsc_queue's indices must be lock-free");
static_assert(std::atomic<boost::lockfree::detail::tagged_index>::is_always_lock_free,
              "queue's tagged indices must be lock-free to work between processes");

// How a side waits while its queue is full or empty. Spin is what Boost.Lockfree is made for, a
// core per process. SpinThenYield gives the core away after kSpinsBeforeYield pauses: with more
// processes than cores (2P2C on 2 cores) the one being waited for may be queued behind the waiter,
// and pure spinning then measures the scheduler's time slices, not the queue.
constexpr int kSpinsBeforeYield = 100;

struct Spin {
  void operator()() { pause_cpu(); }
};

struct SpinThenYield {
  int spins = 0;
  void operator()() {
    if (++spins < kSpinsBeforeYield) {
      pause_cpu();
    } else {
      spins = 0;
      sched_yield();
    }
  }
};

// What a consumer got: the count, sum and sum of squares (mod 2^64) of the values. A lost or
// duplicated value changes the count; a loss hidden by a duplicate changes a sum.
struct Checksum {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t sum_sq = 0;

  void add(std::uint64_t v) {
    ++count;
    sum += v;
    sum_sq += v * v;
  }
  Checksum& operator+=(const Checksum& other) {
    count += other.count;
    sum += other.sum;
    sum_sq += other.sum_sq;
    return *this;
  }
  bool operator==(const Checksum&) const = default;
};

// The checksum of the values 1..n, each once.
Checksum expected_checksum(std::uint64_t n) {
  Checksum c;
  for (std::uint64_t v = 1; v <= n; ++v) c.add(v);
  return c;
}

// Forked children, named by pidfds so that the parent sleeps until one exits or the deadline
// passes, without reaping anybody else's child. Whatever still runs when the set is destroyed is
// killed and reaped: a failed run leaves no process behind.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (pidfds_[i] < 0) continue;
      kill(pids_[i], SIGKILL);
      reap(i);
    }
  }

  // Runs body() in a new child, which exits 0 if it returns true and 1 if it returns false or
  // throws. The child leaves by _exit: the parent's atexit handlers and destructors are not its.
  // It is killed with the parent too, so a killed benchmark leaves no spinning child behind.
  template <class F>
  bool spawn(F body) {
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);  // the parent died before prctl
      bool ok = false;
      try {
        ok = body();
      } catch (...) {
      }
      _exit(ok ? 0 : 1);
    }
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return false;
    }
    pids_.push_back(pid);
    pidfds_.push_back(pidfd);
    return true;
  }

  // Waits for every child; true if all exited with 0 before `deadline` (from now). The first
  // failure or the deadline kills the others (a consumer would otherwise wait forever for values
  // from a dead producer).
  bool wait_all(std::chrono::steady_clock::duration deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    bool ok = true;
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<std::size_t> index;
      for (std::size_t i = 0; i < pids_.size(); ++i) {
        if (pidfds_[i] >= 0) {
          fds.push_back({pidfds_[i], POLLIN, 0});
          index.push_back(i);
        }
      }
      if (fds.empty()) return ok;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (!ok || left.count() <= 0) break;
      if (poll(fds.data(), fds.size(), static_cast<int>(left.count()) + 1) < 0 && errno != EINTR) break;
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if (fds[k].revents != 0) ok = reap(index[k]) && ok;
      }
    }
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (pidfds_[i] >= 0) kill(pids_[i], SIGKILL);
    }
    return false;
  }

  // Non-blocking: has any child exited already? For the ping-pong's slow path, where the parent
  // itself is one side and would spin forever on a dead partner.
  bool any_exited() const {
    for (int fd : pidfds_) {
      pollfd p{fd, POLLIN, 0};
      if (fd >= 0 && poll(&p, 1, 0) == 1) return true;
    }
    return false;
  }

 private:
  bool reap(std::size_t i) {
    int status = 0;
    const bool reaped = waitpid(pids_[i], &status, 0) == pids_[i];
    close(pidfds_[i]);
    pidfds_[i] = -1;
    return reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  std::vector<pid_t> pids_;
  std::vector<int> pidfds_;
};

// The start line: children get ready, the parent starts the clock and releases them at once, and
// each child notes when it finished. Its accesses are relaxed: fork already published everything
// the children read, the flags carry no data, and the parent reads last_end_ns after reaping.
struct StartLine {
  std::atomic<int> ready;
  std::atomic<int> go;
  std::atomic<std::int64_t> last_end_ns;
};

bool pin_self_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

// Runs body(i) for i in [0, n) in n forked children from a common start; returns the seconds from
// the start to the last child's end, or a negative number if a child failed or the run passed
// kRunDeadline.
//
// When there are at least n CPUs, child i is pinned to the i-th of them, for every queue alike
// (mproc's and the peers'): left to the scheduler, two spinning partners now and then share one
// core for a while, and a run's figure then swings 3-4x with where they landed (measured on the
// 2-core VM: Boost's spsc_queue 1P1C moved between 4e7 and 1.4e8 msg/s unpinned, 1.3-1.4e8 pinned).
// More children than CPUs (2P2C on 2 cores) are left to the scheduler.
template <class F>
double run_in_children(int n, F body) {
  auto* line = shared_region<StartLine>();
  const std::vector<int> cpus = allowed_cpus();
  const bool pin = static_cast<int>(cpus.size()) >= n;
  bool ok = true;
  {
    Children children;
    for (int i = 0; i < n && ok; ++i) {
      ok = children.spawn([line, &body, i, pin, &cpus] {
        // A child that cannot pin itself still reports ready (the parent waits for all), then
        // fails the run instead of measuring unpinned.
        const bool pinned = !pin || pin_self_to(cpus[static_cast<std::size_t>(i)]);
        line->ready.fetch_add(1, std::memory_order_relaxed);
        while (line->go.load(std::memory_order_relaxed) == 0) sched_yield();
        if (!pinned) return false;
        const bool done = body(i);
        const std::int64_t end = now_ns();
        std::int64_t seen = line->last_end_ns.load(std::memory_order_relaxed);
        while (seen < end && !line->last_end_ns.compare_exchange_weak(seen, end, std::memory_order_relaxed)) {
        }
        return done;
      });
    }
    while (ok && line->ready.load(std::memory_order_relaxed) < n) sched_yield();
    const std::int64_t start = now_ns();
    line->go.store(1, std::memory_order_relaxed);
    ok = ok && children.wait_all(kRunDeadline);
    if (ok) {
      const double seconds =
          static_cast<double>(line->last_end_ns.load(std::memory_order_relaxed) - start) * 1e-9;
      release_region(line);
      return seconds;
    }
  }
  release_region(line);
  return -1;
}

// Reports one iteration of a cross-process run: its time, or (a negative time: a process failed
// or the deadline passed; or a failed delivery check) the error that ends the benchmark. False:
// stop iterating.
bool report_run(benchmark::State& state, double seconds, bool delivered, const char* error) {
  if (seconds < 0 || !delivered) {
    state.SkipWithError(error);
    return false;
  }
  state.SetIterationTime(seconds);
  return true;
}

// ---- 8-byte values, 1 producer to 1 consumer, Boost.Lockfree spsc_queue ----

struct SpscRun {
  SpscQueue queue;
  Checksum received;  // written by the consumer when it is done
};

template <class Wait>
void boost_spsc_queue_1p1c(benchmark::State& state) {
  const Checksum expected = expected_checksum(kValues);
  for (auto _ : state) {
    auto* s = shared_region<SpscRun>();
    const double seconds = run_in_children(2, [s](int role) {
      if (role == 0) {
        for (std::uint64_t v = 1; v <= kValues; ++v) {
          for (Wait wait; !s->queue.push(v);) wait();
        }
      } else {
        Checksum got;
        std::uint64_t v = 0;
        for (std::uint64_t i = 0; i < kValues; ++i) {
          for (Wait wait; !s->queue.pop(v);) wait();
          got.add(v);
        }
        s->received = got;
      }
      return true;
    });
    const bool ok = seconds >= 0 && s->received == expected;
    release_region(s);
    if (!report_run(state, seconds, ok, "a value was lost or duplicated, or a process failed")) break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kValues));
}

// Both sides spinning: the peer named in issue 4.
void BM_BoostSpscQueue_1P1C(benchmark::State& state) {
  boost_spsc_queue_1p1c<Spin>(state);
}

// Not a target's peer: the same with yielding waits. When other work holds one of the 2 cores,
// both spinners share the other and each full ring costs a time slice; this shows how much of a
// slow run is that (compare the two in one run before trusting the spinning figure).
void BM_BoostSpscQueue_1P1C_Yield(benchmark::State& state) {
  boost_spsc_queue_1p1c<SpinThenYield>(state);
}

// ---- 8-byte values, 2 producers to 2 consumers, Boost.Lockfree queue ----

constexpr int kProducers = 2;
constexpr int kConsumers = 2;

struct MpmcRun {
  MpmcQueue queue;
  std::atomic<int> producers_done;
  Checksum received[kConsumers];
};

template <class Wait>
void boost_lockfree_queue_2p2c(benchmark::State& state) {
  const Checksum expected = expected_checksum(kValues);
  for (auto _ : state) {
    auto* s = shared_region<MpmcRun>();
    if (!s->queue.is_lock_free()) {
      release_region(s);
      state.SkipWithError("boost::lockfree::queue is not lock-free here, so not usable between processes");
      break;
    }
    const double seconds = run_in_children(kProducers + kConsumers, [s](int role) {
      if (role < kProducers) {
        // Producer p sends its own share of 1..kValues.
        const std::uint64_t share = kValues / kProducers;
        const std::uint64_t first = static_cast<std::uint64_t>(role) * share + 1;
        const std::uint64_t last = role == kProducers - 1 ? kValues : first + share - 1;
        for (std::uint64_t v = first; v <= last; ++v) {
          for (Wait wait; !s->queue.push(v);) wait();
        }
        // release: every push above happens before a consumer's acquire load that sees the count.
        s->producers_done.fetch_add(1, std::memory_order_release);
      } else {
        // Consumers do not know their share: each pops until the queue is empty after both
        // producers finished. A per-value shared counter instead would add a contended line to
        // every pop that the queue itself does not need.
        Checksum got;
        std::uint64_t v = 0;
        Wait wait;
        for (;;) {
          if (s->queue.pop(v)) {
            got.add(v);
            wait = Wait{};
          } else if (s->producers_done.load(std::memory_order_acquire) == kProducers) {
            // Every push is visible now: an empty pop after this means everything is taken.
            while (s->queue.pop(v)) got.add(v);
            break;
          } else {
            wait();
          }
        }
        s->received[role - kProducers] = got;
      }
      return true;
    });
    Checksum got;
    for (const Checksum& c : s->received) got += c;
    const bool ok = seconds >= 0 && got == expected;
    release_region(s);
    if (!report_run(state, seconds, ok, "a value was lost or duplicated, or a process failed")) break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kValues));
}

// Both sides spinning, as the spsc_queue case: the peer named in issue 4.
void BM_BoostLockfreeQueue_2P2C(benchmark::State& state) {
  boost_lockfree_queue_2p2c<Spin>(state);
}

// Not a target's peer: the same run with yielding waits, what a user of the Boost queue on an
// oversubscribed machine would write: 4 processes on 2 cores, so the fairer bar for a Queue that
// sleeps when it must wait.
void BM_BoostLockfreeQueue_2P2C_Yield(benchmark::State& state) {
  boost_lockfree_queue_2p2c<SpinThenYield>(state);
}

// ---- Ping-pong round trips ----

// An iteration is a batch of `round_trips`; this reports the seconds per round trip (the
// "round_trip" counter, as in event_bench) and the round trips as items.
void per_round_trip(benchmark::State& state, int round_trips) {
  state.counters["round_trip"] = benchmark::Counter(
      round_trips, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * round_trips);
}

struct SpscPingPong {
  SpscQueue ping;  // parent -> child
  SpscQueue pong;  // child -> parent
};

// Both sides spinning: the parent sends 1, 2, ... and the child echoes each; 0 stops the child.
// The child checks the sequence, the parent checks every echo.
void BM_BoostSpscQueue_PingPong(benchmark::State& state) {
  auto* s = shared_region<SpscPingPong>();
  Children children;
  children.spawn([s] {
    std::uint64_t expected = 1;
    for (;;) {
      std::uint64_t v = 0;
      while (!s->ping.pop(v)) pause_cpu();
      if (v == 0) return true;
      if (v != expected++) return false;
      while (!s->pong.push(v)) pause_cpu();
    }
  });
  std::uint64_t i = 0;
  bool ok = true;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kSpinRoundTrips && ok; ++k) {
      ++i;
      while (!s->ping.push(i)) pause_cpu();
      std::uint64_t v = 0;
      // The liveness check is off the fast path: only after ~1M empty polls (milliseconds).
      for (std::uint32_t spins = 1; !s->pong.pop(v); ++spins) {
        pause_cpu();
        if ((spins & 0xfffff) == 0 && children.any_exited()) {
          ok = false;
          break;
        }
      }
      ok = ok && v == i;
    }
    if (!ok) {
      state.SkipWithError("an echo was lost or wrong, or the child died");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (ok) {
    while (!s->ping.push(0)) pause_cpu();
    if (!children.wait_all(kRunDeadline)) state.SkipWithError("the child saw a broken sequence");
  }
  per_round_trip(state, kSpinRoundTrips);
  release_region(s);
}

// One futex word per direction, on its own line so the two sides do not share one.
struct alignas(128) FutexWord {
  std::atomic<std::uint32_t> value{0};
};

struct FutexPingPong {
  FutexWord ping;
  FutexWord pong;
};

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}

// Waits until `word` holds `want`, sleeping in FUTEX_WAIT at once (no spin: this is the sleeping
// control); false if the partner process has exited. The 100 ms timeout is only there to notice
// that: a wake-up comes long before it, and arming it costs a timer, small beside a wake-up.
bool futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t want, const Children& partner) {
  const timespec tick{0, 100'000'000};
  for (;;) {
    // acquire: pairs with the release store in futex_post() of the side that set `want`.
    const std::uint32_t seen = word.load(std::memory_order_acquire);
    if (seen == want) return true;
    if (futex(&word, FUTEX_WAIT, seen, &tick) < 0 && errno == ETIMEDOUT && partner.any_exited()) return false;
  }
}

// release: pairs with the acquire load in futex_wait_for(). The wake is unconditional: a raw
// round trip is a store, a FUTEX_WAKE and a FUTEX_WAIT on each side.
void futex_post(std::atomic<std::uint32_t>& word, std::uint32_t value) {
  word.store(value, std::memory_order_release);
  futex(&word, FUTEX_WAKE, 1, nullptr);
}

// Both sides sleeping: the raw futex round trip that mproc's sleeping Pipe ping-pong is held to
// (at most 1.2x). The parent posts i on ping, the child answers i on pong; 0 stops the child.
void BM_RawFutex_PingPong(benchmark::State& state) {
  auto* s = shared_region<FutexPingPong>();
  Children children;
  children.spawn([s] {
    for (std::uint32_t i = 1;; ++i) {
      // The child waits for i or the stop value 0; anything else is a broken sequence.
      for (;;) {
        // acquire: pairs with the parent's release store in futex_post().
        const std::uint32_t seen = s->ping.value.load(std::memory_order_acquire);
        if (seen == i) break;
        if (seen == 0 && i > 1) return true;
        if (seen != i - 1) return false;
        const timespec tick{0, 100'000'000};  // as the parent's, so both sides pay the same
        futex(&s->ping.value, FUTEX_WAIT, seen, &tick);
      }
      futex_post(s->pong.value, i);
    }
  });
  std::uint32_t i = 0;
  bool ok = true;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kSleepRoundTrips && ok; ++k) {
      ++i;
      futex_post(s->ping.value, i);
      ok = futex_wait_for(s->pong.value, i, children);
    }
    if (!ok) {
      state.SkipWithError("the child died");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (ok) {
    futex_post(s->ping.value, 0);
    if (!children.wait_all(kRunDeadline)) state.SkipWithError("the child saw a broken sequence");
  }
  per_round_trip(state, kSleepRoundTrips);
  release_region(s);
}

// ---- Boost.Interprocess message_queue, 1 producer to 1 consumer ----

namespace bip = boost::interprocess;

// Message i (from 1) carries i in its first and last 8 bytes: the consumer checks both, in order
// (one producer, one priority: FIFO), and the size, so a lost, reordered or truncated message
// fails the run. The rest of the payload is left as it is, as a real sender's would be.
void stamp(char* message, std::size_t size, std::uint64_t i) {
  std::memcpy(message, &i, sizeof i);
  std::memcpy(message + size - sizeof i, &i, sizeof i);
}

bool stamped(const char* message, std::size_t size, std::uint64_t i) {
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::memcpy(&head, message, sizeof head);
  std::memcpy(&tail, message + size - sizeof tail, sizeof tail);
  return head == i && tail == i;
}

void BM_InterprocessMessageQueue(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::uint64_t messages = size <= 1024 ? kSmallMessages : kLargeMessages;
  const std::string name = "mproc_bench_mq_" + std::to_string(getpid());
  for (auto _ : state) {
    double seconds = -1;
    try {
      bip::message_queue::remove(name.c_str());
      bip::message_queue queue(bip::create_only, name.c_str(), kMessageQueueSlots, size);
      // The name is removed as soon as the queue exists: the children inherit the mapping by
      // fork and never open it, so nothing is left in /dev/shm even if this process is killed.
      bip::message_queue::remove(name.c_str());
      // Allocated here, not in the children: each child's copy is its own after fork.
      std::vector<char> message(size, 'x');
      seconds = run_in_children(2, [&queue, &message, size, messages](int role) {
        if (role == 0) {
          for (std::uint64_t i = 1; i <= messages; ++i) {
            stamp(message.data(), size, i);
            queue.send(message.data(), size, 0);
          }
          return true;
        }
        for (std::uint64_t i = 1; i <= messages; ++i) {
          bip::message_queue::size_type received = 0;
          unsigned int priority = 0;
          queue.receive(message.data(), size, received, priority);
          if (received != size || !stamped(message.data(), size, i)) return false;
        }
        return true;
      });
    } catch (const bip::interprocess_exception&) {
      seconds = -1;
    }
    bip::message_queue::remove(name.c_str());
    if (!report_run(state, seconds, true, "a message was lost, reordered or truncated, or a process failed"))
      break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * messages * size));
}

// ---- mproc::Queue: the same runs through the Python-like API ----

// 8-byte values, 1 producer process to 1 consumer process, blocking put() and get(): the peer is
// BM_BoostSpscQueue_1P1C (spinning, no way to sleep).
void mproc_queue_1p1c(benchmark::State& state, const mproc::QueueOptions& options) {
  const Checksum expected = expected_checksum(kValues);
  for (auto _ : state) {
    mproc::Queue<std::uint64_t> queue(options);
    auto* received = shared_region<Checksum>();
    const double seconds = run_in_children(2, [&queue, received](int role) {
      if (role == 0) {
        for (std::uint64_t v = 1; v <= kValues; ++v) queue.put(v);
      } else {
        Checksum got;
        for (std::uint64_t i = 0; i < kValues; ++i) got.add(queue.get());
        *received = got;
      }
      return true;
    });
    const bool ok = seconds >= 0 && *received == expected;
    release_region(received);
    if (!report_run(state, seconds, ok, "a value was lost or duplicated, or a process failed")) break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kValues));
}

void BM_MprocQueue_1P1C(benchmark::State& state) {
  mproc_queue_1p1c(state, {});
}

// The same with QueueOptions::spsc: the single-producer ring behind the Queue API.
void BM_MprocQueueSpsc_1P1C(benchmark::State& state) {
  mproc_queue_1p1c(state, {.spsc = true});
}

// The same with QueueOptions::lanes: each producing thread writes a single-producer ring of its own.
void BM_MprocQueueLanes_1P1C(benchmark::State& state) {
  mproc_queue_1p1c(state, {.lanes = 4});
}

struct MprocMpmcRun {
  Checksum received[kConsumers];
};

// 2 producers, 2 consumers, blocking get(). Each producer puts one 0 (a stop value: real values
// start at 1) per consumer after its own values, and a consumer stops at its kProducers-th: a
// protocol that needs only FIFO per producer, which lanes keep (a stop value put by the last
// producer to finish could overtake the other's values there). Peer: BM_BoostLockfreeQueue_2P2C.
void mproc_queue_2p2c(benchmark::State& state, const mproc::QueueOptions& options) {
  const Checksum expected = expected_checksum(kValues);
  for (auto _ : state) {
    mproc::Queue<std::uint64_t> queue(options);
    auto* s = shared_region<MprocMpmcRun>();
    const double seconds = run_in_children(kProducers + kConsumers, [&queue, s](int role) {
      if (role < kProducers) {
        const std::uint64_t share = kValues / kProducers;
        const std::uint64_t first = static_cast<std::uint64_t>(role) * share + 1;
        const std::uint64_t last = role == kProducers - 1 ? kValues : first + share - 1;
        for (std::uint64_t v = first; v <= last; ++v) queue.put(v);
        for (int c = 0; c < kConsumers; ++c) queue.put(0);
      } else {
        Checksum got;
        for (int stops = 0; stops < kProducers;) {
          const std::uint64_t v = queue.get();
          if (v == 0) {
            ++stops;
          } else {
            got.add(v);
          }
        }
        s->received[role - kProducers] = got;
      }
      return true;
    });
    Checksum got;
    for (const Checksum& c : s->received) got += c;
    const bool ok = seconds >= 0 && got == expected;
    release_region(s);
    if (!report_run(state, seconds, ok, "a value was lost or duplicated, or a process failed")) break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kValues));
}

void BM_MprocQueue_2P2C(benchmark::State& state) {
  mproc_queue_2p2c(state, {});
}

// The same on lanes (QueueOptions::lanes).
void BM_MprocQueueLanes_2P2C(benchmark::State& state) {
  mproc_queue_2p2c(state, {.lanes = 4});
}

// std::string messages of 64 and 4096 bytes, 1 producer to 1 consumer, stamped and checked like
// the message_queue run (peer: BM_InterprocessMessageQueue of the same size).
void mproc_queue_string(benchmark::State& state, const mproc::QueueOptions& options) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::uint64_t messages = size <= 1024 ? kSmallMessages : kLargeMessages;
  for (auto _ : state) {
    mproc::Queue<std::string> queue(options);
    const double seconds = run_in_children(2, [&queue, size, messages](int role) {
      std::string message(size, 'x');
      if (role == 0) {
        for (std::uint64_t i = 1; i <= messages; ++i) {
          stamp(message.data(), size, i);
          queue.put(message);
        }
        return true;
      }
      for (std::uint64_t i = 1; i <= messages; ++i) {
        message = queue.get();
        if (message.size() != size || !stamped(message.data(), size, i)) return false;
      }
      return true;
    });
    if (!report_run(state, seconds, true, "a message was lost, reordered or truncated, or a process failed"))
      break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * messages * size));
}

void BM_MprocQueueString(benchmark::State& state) {
  mproc_queue_string(state, {});
}

// The same on lanes (QueueOptions::lanes).
void BM_MprocQueueLanesString(benchmark::State& state) {
  mproc_queue_string(state, {.lanes = 4});
}

// ---- mproc::Pipe --------------------------------------------------------------------------------

// 8-byte values through a one-way Pipe, 1 producer to 1 consumer (peer: BM_BoostSpscQueue_1P1C).
void BM_MprocPipe_1P1C(benchmark::State& state) {
  const Checksum expected = expected_checksum(kValues);
  for (auto _ : state) {
    auto [reader, writer] = mproc::Pipe(false);
    auto* received = shared_region<Checksum>();
    const double seconds = run_in_children(2, [&reader, &writer, received](int role) {
      if (role == 0) {
        for (std::uint64_t v = 1; v <= kValues; ++v) writer.send(v);
      } else {
        Checksum got;
        for (std::uint64_t i = 0; i < kValues; ++i) got.add(reader.recv<std::uint64_t>());
        *received = got;
      }
      return true;
    });
    const bool ok = seconds >= 0 && *received == expected;
    release_region(received);
    if (!report_run(state, seconds, ok, "a value was lost or duplicated, or a process failed")) break;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kValues));
}

// Round trips over a duplex Pipe, the child echoing (peer: BM_BoostSpscQueue_PingPong). Both
// sides answer within WaitWord's spin phase, so neither sleeps.
void BM_MprocPipe_PingPongSpin(benchmark::State& state) {
  auto [mine, theirs] = mproc::Pipe();
  Children children;
  children.spawn([&theirs] {
    for (std::uint64_t expected = 1;; ++expected) {
      const auto v = theirs.recv<std::uint64_t>();
      if (v == 0) return true;
      if (v != expected) return false;
      theirs.send(v);
    }
  });
  theirs.close();
  std::uint64_t i = 0;
  bool ok = true;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kSpinRoundTrips && ok; ++k) {
      mine.send(++i);
      ok = mine.recv<std::uint64_t>() == i;
    }
    if (!ok) {
      state.SkipWithError("an echo was lost or wrong");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  mine.send(std::uint64_t{0});
  if (!children.wait_all(kRunDeadline)) state.SkipWithError("the child saw a broken sequence");
  per_round_trip(state, kSpinRoundTrips);
}

// The transport cost of one loaned message of n bytes: loan, commit, a view on the other side,
// its release; the payload is not touched (that is the user's work, the point of a loan is that
// the transport adds no copy). Constant in n is the target. Same process: no cross-core traffic
// for the payload either way.
void BM_MprocPipeLoanCommit(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto [reader, writer] = mproc::Pipe(false, mproc::PipeOptions{.capacity = 1U << 23});
  for (auto _ : state) {
    auto loan = writer.loan(n);
    benchmark::DoNotOptimize(loan.data().data());
    loan.commit();
    auto view = reader.recv_view();
    benchmark::DoNotOptimize(view.bytes().data());
  }
  state.SetItemsProcessed(state.iterations());
}

// The same n bytes with a copy in and out (send_bytes, recv_bytes_into): what a loan saves.
void BM_MprocPipeCopy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto [reader, writer] = mproc::Pipe(false, mproc::PipeOptions{.capacity = 1U << 23});
  std::vector<std::byte> out(n, std::byte{1});
  std::vector<std::byte> in(n);
  for (auto _ : state) {
    writer.send_bytes(out);
    benchmark::DoNotOptimize(reader.recv_bytes_into(in));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// ---- One way to a parked receiver: "both sides sleeping" ----------------------------------------

// The sender waits 200 us before each message, so the receiver has spun, yielded and parked in
// the kernel; the time is from just before the send to the receiver's return, read from one
// clock. Both sides are pinned (parent on CPU 0, child on CPU 1), as in event_bench, so that the
// wake always crosses cores. The raw control parks on a bare FUTEX_WAIT and is woken by a bare
// FUTEX_WAKE; the "both sides sleeping" round trip is two of these one-way trips.
constexpr int kSleepingWakes = 2000;

struct WakeTimes {
  FutexWord word;
  FutexWord ack;
  std::atomic<std::int64_t> woke_ns{0};
};

// Restores the parent's affinity when a pinned benchmark ends.
class PinnedParent {
 public:
  PinnedParent() {
    sched_getaffinity(0, sizeof saved_, &saved_);
    pin_self_to(0);
  }
  ~PinnedParent() { sched_setaffinity(0, sizeof saved_, &saved_); }
  PinnedParent(const PinnedParent&) = delete;
  PinnedParent& operator=(const PinnedParent&) = delete;

 private:
  cpu_set_t saved_{};
};

void BM_RawFutex_WakeSleeping(benchmark::State& state) {
  auto* s = shared_region<WakeTimes>();
  PinnedParent pinned;
  Children children;
  children.spawn([s] {
    pin_self_to(1);
    for (std::uint32_t i = 1;; ++i) {
      // acquire: pairs with the parent's release store before its FUTEX_WAKE.
      while (s->word.value.load(std::memory_order_acquire) != i) {
        if (s->word.value.load(std::memory_order_relaxed) == 0 && i > 1) return true;  // relaxed: stop flag
        futex(&s->word.value, FUTEX_WAIT, i - 1, nullptr);
      }
      s->woke_ns.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after ack's acquire
      s->ack.value.store(i, std::memory_order_release);       // release: publishes woke_ns
    }
  });
  std::uint32_t i = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    ++i;
    const std::int64_t t0 = now_ns();
    s->word.value.store(i, std::memory_order_release);  // release: pairs with the child's acquire
    futex(&s->word.value, FUTEX_WAKE, 1, nullptr);
    // acquire: pairs with the child's release of ack.
    while (s->ack.value.load(std::memory_order_acquire) != i) sched_yield();
    state.SetIterationTime(static_cast<double>(s->woke_ns.load(std::memory_order_relaxed) - t0) * 1e-9);
  }
  s->word.value.store(0, std::memory_order_release);  // release: the stop value
  futex(&s->word.value, FUTEX_WAKE, 1, nullptr);
  if (!children.wait_all(kRunDeadline)) state.SkipWithError("the child failed");
  release_region(s);
}

void BM_MprocPipe_WakeSleeping(benchmark::State& state) {
  auto* s = shared_region<WakeTimes>();
  auto [reader, writer] = mproc::Pipe(false);
  PinnedParent pinned;
  Children children;
  children.spawn([s, &reader] {
    pin_self_to(1);
    for (std::uint32_t i = 1;; ++i) {
      const auto v = reader.recv<std::uint32_t>();
      s->woke_ns.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after ack's acquire
      if (v == 0) return true;
      if (v != i) return false;
      s->ack.value.store(i, std::memory_order_release);  // release: publishes woke_ns
    }
  });
  std::uint32_t i = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    ++i;
    const std::int64_t t0 = now_ns();
    writer.send(i);
    // acquire: pairs with the child's release of ack.
    while (s->ack.value.load(std::memory_order_acquire) != i) sched_yield();
    state.SetIterationTime(static_cast<double>(s->woke_ns.load(std::memory_order_relaxed) - t0) * 1e-9);
  }
  writer.send(std::uint32_t{0});
  if (!children.wait_all(kRunDeadline)) state.SkipWithError("the child saw a broken sequence");
  release_region(s);
}

BENCHMARK(BM_BoostSpscQueue_1P1C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_1P1C_Yield)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostLockfreeQueue_2P2C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostLockfreeQueue_2P2C_Yield)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_PingPong)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawFutex_PingPong)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_InterprocessMessageQueue)->Arg(64)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueue_1P1C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueueSpsc_1P1C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueue_2P2C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueueLanes_1P1C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueueLanes_2P2C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueueString)->Arg(64)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocQueueLanesString)->Arg(64)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocPipe_1P1C)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprocPipe_PingPongSpin)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawFutex_WakeSleeping)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(kSleepingWakes);
BENCHMARK(BM_MprocPipe_WakeSleeping)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(kSleepingWakes);
BENCHMARK(BM_MprocPipeLoanCommit)->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20);
BENCHMARK(BM_MprocPipeCopy)->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20);

}  // namespace

MPROC_BENCHMARK_MAIN()
