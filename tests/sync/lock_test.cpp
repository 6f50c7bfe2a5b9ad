// Lock, RLock, Value, Array: CPython's semantics and errors, use across processes under fork and
// spawn, the seeds' locked counter, and what happens when a holder is killed.
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "expect_error.hpp"
#include "mproc/detail/liveness.hpp"
#include "mproc/process.hpp"
#include "mproc/sharedctypes.hpp"
#include "mproc/synchronize.hpp"

using namespace std::chrono_literals;

namespace {

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn};

// Waits until a shared flag reaches a value (a child's "I hold it now"), bounded.
bool wait_for_flag(const mproc::RawValue<int>& flag, int value) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::atomic_ref<int>(flag.value()).load() != value) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

void set_flag(const mproc::RawValue<int>& flag, int value) {
  std::atomic_ref<int>(flag.value()).store(value);
}

TEST(Lock, AcquireReleaseAndCPythonErrors) {
  mproc::Lock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.locked_snapshot());
  EXPECT_FALSE(lock.acquire(false));  // not recursive
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(lock.acquire(true, 50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_FALSE(lock.acquire(true, -1s));  // a negative timeout tries once, as in CPython
  lock.release();
  EXPECT_FALSE(lock.locked_snapshot());
  expect_error<mproc::ValueError>([&] { lock.release(); }, "semaphore or lock released too many times");
  {
    std::lock_guard guard(lock);  // Lockable
    EXPECT_FALSE(lock.try_lock());
  }
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(Lock, CopiesShareOneLock) {
  mproc::Lock a;
  mproc::Lock b = a;
  a.acquire();
  EXPECT_FALSE(b.acquire(false));
  b.release();  // another handle (or process) may release it, as in CPython
  EXPECT_TRUE(a.acquire(false));
  a.release();
}

void hold_then_release(mproc::Lock lock, mproc::RawValue<int> flag) {
  lock.acquire();
  set_flag(flag, 1);
  std::this_thread::sleep_for(100ms);
  lock.release();
}

void release_from_here(mproc::Lock lock) {
  lock.release();
}

TEST(Lock, WorksAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    mproc::Lock lock;
    mproc::RawValue<int> flag(0);
    auto holder = ctx.Process(hold_then_release, lock, flag);
    holder.start();
    ASSERT_TRUE(wait_for_flag(flag, 1));
    EXPECT_FALSE(lock.acquire(false));
    EXPECT_TRUE(lock.acquire(true, 10s));  // blocks until the child releases
    holder.join();
    EXPECT_EQ(holder.exitcode(), 0);
    // A lock held here may be released by another process.
    auto releaser = ctx.Process(release_from_here, lock);
    releaser.start();
    releaser.join();
    EXPECT_EQ(releaser.exitcode(), 0);
    EXPECT_TRUE(lock.acquire(false));
    lock.release();
  }
}

// Seed 001: four processes each add 100000 to a shared counter under a lock.
void increment(mproc::Value<int> count, mproc::Lock lock) {
  for (int i = 0; i < 100000; ++i) {
    lock.acquire();
    count.value() += 1;
    lock.release();
  }
}

void increment_with_own_lock(mproc::Value<int> count) {
  for (int i = 0; i < 100000; ++i) {
    std::lock_guard guard(count.get_lock());
    count.value() += 1;
  }
}

void increment_unlocked(mproc::Value<int> count) {
  for (int i = 0; i < 100000; ++i) count.value() += 1;
}

void increment_atomically(mproc::Value<long> count) {
  for (int i = 0; i < 100000; ++i) count.fetch_add(1);
}

template <class F, class... Args>
void run_four(mproc::StartMethod method, F f, const Args&... args) {
  std::vector<mproc::Process> processes;
  for (int i = 0; i < 4; ++i) processes.push_back(mproc::get_context(method).Process(f, args...));
  for (auto& p : processes) p.start();
  for (auto& p : processes) {
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
  }
}

TEST(Value, SeedLockedCounterIsExact) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    mproc::Value<int> count(0);
    mproc::Lock lock;
    run_four(method, increment, count, lock);
    EXPECT_EQ(count.value(), 400000);

    mproc::Value<int> own(0);
    run_four(method, increment_with_own_lock, own);
    EXPECT_EQ(own.value(), 400000);

    mproc::Value<long> atomic(0);
    run_four(method, increment_atomically, atomic);
    EXPECT_EQ(atomic.load(), 400000);
  }
}

TEST(Value, WithoutTheLockUpdatesMayBeLost) {
  // Seed 001's point: the run without a lock is allowed to lose updates, never required to.
  mproc::Value<int> count(0);
  run_four(mproc::StartMethod::fork, increment_unlocked, count);
  EXPECT_GT(count.value(), 0);
  EXPECT_LE(count.value(), 400000);
}

struct Pair {
  int a;
  double b;
};

void write_shared(mproc::Value<double> pi, mproc::Array<int> arr, mproc::RawArray<char> raw,
                  mproc::RawValue<Pair> pair) {
  pi.value() = 3.25;
  for (std::size_t i = 0; i < arr.size(); ++i) arr[i] = static_cast<int>(i * i);
  raw[0] = 'x';
  pair.value().a += 1;
  pair.value().b *= 2;
}

TEST(Value, ValuesAndArraysAreSharedWithChildren) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    mproc::Value<double> pi(3.14);
    mproc::Array<int> arr(10);
    mproc::RawArray<char> raw(4);
    mproc::RawValue<Pair> pair(Pair{1, 1.5});
    for (int x : arr) EXPECT_EQ(x, 0);
    auto p = mproc::get_context(method).Process(write_shared, pi, arr, raw, pair);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(pi.value(), 3.25);
    std::span<int> s = arr;
    ASSERT_EQ(s.size(), 10u);
    for (std::size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], static_cast<int>(i * i));
    EXPECT_EQ(raw[0], 'x');
    EXPECT_EQ(pair.value().a, 2);
    EXPECT_EQ(pair.value().b, 3.0);
  }
  mproc::Array<double> xs({1.0, 2.0});
  EXPECT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[1], 2.0);
  EXPECT_THROW(xs.at(2), mproc::ValueError);
}

TEST(Value, ADecoderRefusesAnotherType) {
  mproc::Value<int> v(1);
  std::vector<std::byte> bytes;
  mproc::Encoder out(bytes);
  out.put(v);
  const std::vector<int> fds = out.fds();
  mproc::Decoder as_int(bytes, fds);
  EXPECT_EQ(as_int.get<mproc::Value<int>>().value(), 1);
  mproc::Decoder as_double(bytes, fds);
  EXPECT_THROW(as_double.get<mproc::Value<double>>(), mproc::DecodeError);
  mproc::Decoder as_array(bytes, fds);
  EXPECT_THROW(as_array.get<mproc::Array<int>>(), mproc::DecodeError);
}

TEST(RLock, RecursionAndOwnership) {
  mproc::RLock rlock;
  EXPECT_TRUE(rlock.acquire());
  EXPECT_TRUE(rlock.acquire());
  EXPECT_EQ(rlock.depth_held_by_me(), 2u);
  std::thread other([&] {
    EXPECT_FALSE(rlock.acquire(false));
    expect_error<mproc::ProcessError>([&] { rlock.release(); },
                                      "attempt to release recursive lock not owned by thread");
  });
  other.join();
  rlock.release();
  rlock.release();
  EXPECT_EQ(rlock.depth_held_by_me(), 0u);
  expect_error<mproc::ProcessError>([&] { rlock.release(); },
                                    "attempt to release recursive lock not owned by thread");
  std::thread taker([&] {
    EXPECT_TRUE(rlock.acquire(true, 1s));
    rlock.release();
  });
  taker.join();
}

void release_foreign_rlock(mproc::RLock rlock) {
  try {
    rlock.release();
  } catch (const mproc::ProcessError&) {
    throw mproc::SystemExit(0);
  }
  throw mproc::SystemExit(1);
}

TEST(RLock, AnotherProcessCannotReleaseIt) {
  for (auto method : kMethods) {
    mproc::RLock rlock;
    rlock.acquire();
    auto p = mproc::get_context(method).Process(release_foreign_rlock, rlock);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0) << mproc::to_string(method);
    EXPECT_EQ(rlock.depth_held_by_me(), 1u);
    rlock.release();
  }
}

// --- kill the holder -------------------------------------------------------------------------

void hold_forever(mproc::Lock lock, mproc::RawValue<int> flag) {
  lock.acquire();
  set_flag(flag, 1);
  for (;;) std::this_thread::sleep_for(1s);
}

void hold_rlock_forever(mproc::RLock rlock, mproc::RawValue<int> flag) {
  rlock.acquire();
  rlock.acquire();
  set_flag(flag, 1);
  for (;;) std::this_thread::sleep_for(1s);
}

void hold_value_forever(mproc::Value<int> value, mproc::RawValue<int> flag) {
  value.acquire();
  value.value() = -1;  // a half-done update the next owner must repair
  set_flag(flag, 1);
  for (;;) std::this_thread::sleep_for(1s);
}

// Starts f(handle, flag) in a child, waits until it holds the lock, SIGKILLs it.
template <class F, class H>
void kill_holder(mproc::StartMethod method, F f, const H& handle) {
  mproc::RawValue<int> flag(0);
  auto holder = mproc::get_context(method).Process(f, handle, flag);
  holder.start();
  const bool holding = wait_for_flag(flag, 1);
  holder.kill();
  holder.join();
  ASSERT_TRUE(holding) << "the child never took the lock";
  EXPECT_EQ(holder.exitcode(), -SIGKILL);
}

TEST(KillTheHolder, LockIsTakenOverWithOwnerDied) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    mproc::Lock lock;
    kill_holder(method, hold_forever, lock);
    EXPECT_FALSE(lock.acquire(false)) << "a try does not wait for the liveness check";
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(lock.acquire(true, 5s), mproc::OwnerDied);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    // OwnerDied means we hold it: it is usable from here on.
    EXPECT_FALSE(lock.acquire(false));
    lock.release();
    EXPECT_TRUE(lock.acquire(true, 1s));
    lock.release();
  }
}

TEST(KillTheHolder, RLockIsTakenOverWithOwnerDied) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    mproc::RLock rlock;
    kill_holder(method, hold_rlock_forever, rlock);
    EXPECT_THROW(rlock.acquire(), mproc::OwnerDied);
    EXPECT_EQ(rlock.depth_held_by_me(), 1u) << "the dead owner's depth is not inherited";
    rlock.release();
    EXPECT_EQ(rlock.depth_held_by_me(), 0u);
  }
}

TEST(KillTheHolder, ValueLockIsTakenOverAndTheValueRepaired) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    mproc::Value<int> count(10);
    kill_holder(method, hold_value_forever, count);
    try {
      std::lock_guard guard(count.get_lock());
      ADD_FAILURE() << "no OwnerDied";
    } catch (const mproc::OwnerDied&) {
      EXPECT_EQ(count.value(), -1);  // what the dead owner left
      count.value() = 10;            // repaired, under the lock
      count.release();
    }
    run_four(method, increment_with_own_lock, count);
    EXPECT_EQ(count.value(), 400010);
  }
}

TEST(Liveness, IdentitiesTellTheLivingFromTheDeadAndFromNewcomers) {
  const std::uint64_t self = mproc::detail::process_identity();
  EXPECT_EQ(static_cast<std::uint32_t>(self), static_cast<std::uint32_t>(getpid()));
  EXPECT_TRUE(mproc::detail::process_alive(self));
  // The same pid with another start time is a newcomer, not the owner.
  EXPECT_FALSE(mproc::detail::process_alive(self ^ (std::uint64_t{1} << 40)));
  // A child that exited but is not reaped yet (a zombie) is dead.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  std::this_thread::sleep_for(50ms);
  const std::uint64_t zombie = (self & 0xffffffff00000000ULL) | static_cast<std::uint32_t>(child);
  EXPECT_FALSE(mproc::detail::process_alive(zombie));
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(mproc::detail::process_alive(zombie));
}

// A process whose main thread called pthread_exit is a zombie in /proc/<pid>/stat while its other
// threads run on: it still runs (a robust lock it holds must not be taken), its main thread does
// not (a lane it owned may be), and once the last thread exits, the process does not either.
TEST(Liveness, AProcessWhoseMainThreadExitedRunsOnInItsOtherThreads) {
  int tids[2];
  int release[2];
  ASSERT_EQ(::pipe(tids), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(tids[0]);
    ::close(release[1]);
    std::thread([out = tids[1], in = release[0]] {
      const auto tid = static_cast<pid_t>(::syscall(SYS_gettid));
      (void)!::write(out, &tid, sizeof tid);
      char c;
      (void)!::read(in, &c, 1);  // until the parent closes its end
      _exit(0);
    }).detach();
    // The main thread's own exit, as pthread_exit's, without unwinding through the test framework.
    ::syscall(SYS_exit, 0);
  }
  ::close(tids[1]);
  ::close(release[0]);
  pid_t worker = 0;
  const bool got_tid = ::read(tids[0], &worker, sizeof worker) == static_cast<ssize_t>(sizeof worker);
  // Field n (3 or more, counted after the command name) of the child's /proc/<pid>/stat; "" if gone.
  const auto stat_field = [&](int n) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto paren = line.rfind(')');
    std::istringstream fields(paren == std::string::npos ? std::string() : line.substr(paren + 1));
    std::string field;
    for (int i = 3; i <= n && fields >> field; ++i) {
    }
    return field;
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stat_field(3) != "Z" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  const char state = stat_field(3).empty() ? '?' : stat_field(3)[0];
  // The child's full identity, stamp included (its start time, field 22).
  const std::uint64_t identity =
      (std::uint64_t{static_cast<std::uint32_t>(std::strtoull(stat_field(22).c_str(), nullptr, 10))} << 32) |
      static_cast<std::uint32_t>(child);
  const bool process_runs = mproc::detail::process_alive(static_cast<std::uint32_t>(child)) &&
                            mproc::detail::process_alive(identity) &&
                            !mproc::detail::process_alive(identity ^ (std::uint64_t{1} << 40));
  const bool main_runs =
      mproc::detail::thread_alive(static_cast<std::uint32_t>(child), static_cast<std::uint32_t>(child));
  const bool worker_runs =
      mproc::detail::thread_alive(static_cast<std::uint32_t>(child), static_cast<std::uint32_t>(worker));
  ::close(release[1]);  // the worker exits, and with it the process
  while (::waitid(P_PID, static_cast<id_t>(child), nullptr, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  const bool zombie_runs = mproc::detail::process_alive(static_cast<std::uint32_t>(child));
  ::waitpid(child, nullptr, 0);
  ::close(tids[0]);
  ASSERT_TRUE(got_tid);
  ASSERT_EQ(state, 'Z') << "the main thread's exit did not show in /proc: the test shows nothing";
  EXPECT_TRUE(process_runs);
  EXPECT_FALSE(main_runs);
  EXPECT_TRUE(worker_runs);
  EXPECT_FALSE(zombie_runs);
}

// The lock core with threads: the same code that runs across processes, here where
// ThreadSanitizer can see it (build with MPROC_SANITIZE=thread).
TEST(RobustLockWord, ThreadsNeverShareTheCriticalSection) {
  mproc::core::RobustLockWord<> word;
  long counter = 0;  // plain: a data race here is what TSan would report
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        ASSERT_EQ(word.lock(mproc::detail::process_identity(), std::nullopt),
                  mproc::core::LockResult::acquired);
        ++counter;
        word.unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 80000);
}

struct DeadOwners {
  static inline std::atomic<std::uint64_t> dead{0};
  static std::uint64_t self() noexcept { return 0; }
  static bool alive(std::uint64_t id) noexcept { return id != dead.load(); }
};

TEST(RobustLockWord, AWaiterTakesOverFromADeadOwner) {
  mproc::core::RobustLockWord<mproc::detail::SharedFutex, DeadOwners> word;
  ASSERT_TRUE(word.try_lock(42));
  DeadOwners::dead = 42;
  EXPECT_EQ(word.lock(7, std::nullopt), mproc::core::LockResult::owner_died);
  EXPECT_EQ(word.owner_snapshot(), 7u);
  EXPECT_TRUE(word.unlock());
  EXPECT_FALSE(word.unlock());
  ASSERT_TRUE(word.try_lock(9));
  DeadOwners::dead = 0;
  EXPECT_EQ(word.lock(7, std::chrono::steady_clock::now() + 30ms), mproc::core::LockResult::timed_out);
}

// The real futex, counting what the lock asks of it. Knobs: report wakes without delivering them
// (a woken sleeper that died), dawdle on the way into the kernel (wakes then find nobody), and
// stretch the lock's 10 ms slices to `long_slice`, so that a slice that runs out means a lost
// wake-up and never a slow scheduler.
template <int Tag>
struct CountingFutex {
  static inline std::atomic<int> waits{0};
  static inline std::atomic<int> timeouts{0};
  static inline std::atomic<int> stalls{0};  // waits that lasted over half a long slice
  static inline std::atomic<int> wakes{0};
  static inline std::atomic<int> empty_wakes{0};
  static inline std::atomic<bool> swallow_wakes{false};
  static inline std::atomic<bool> slow_way_in{false};
  static inline std::atomic<bool> long_slices{false};
  static constexpr auto kLongSlice = 2s;

  // Each test starts from zero counts and no knobs (the statics outlive a test under --gtest_repeat).
  static void reset() {
    waits = timeouts = stalls = wakes = empty_wakes = 0;
    swallow_wakes = slow_way_in = long_slices = false;
  }

  static mproc::detail::FutexWaitResult wait(const std::atomic<std::uint32_t>& w, std::uint32_t e) noexcept {
    ++waits;
    return mproc::detail::futex_wait(w, e);
  }
  static mproc::detail::FutexWaitResult wait_until(const std::atomic<std::uint32_t>& w, std::uint32_t e,
                                                   std::chrono::steady_clock::time_point d) noexcept {
    if (++waits % 2 == 0 && slow_way_in) std::this_thread::sleep_for(200us);  // parked, not yet queued
    const auto start = std::chrono::steady_clock::now();
    if (long_slices) d = start + kLongSlice;
    const auto result = mproc::detail::futex_wait_until(w, e, d);
    if (result == mproc::detail::FutexWaitResult::timed_out) ++timeouts;
    if (std::chrono::steady_clock::now() - start > kLongSlice / 2) ++stalls;
    return result;
  }
  static int wake(const std::atomic<std::uint32_t>& w, int count) noexcept {
    ++wakes;
    if (swallow_wakes) return 1;
    const int woken = mproc::detail::futex_wake(w, count);
    if (woken == 0) ++empty_wakes;
    return woken;
  }
};

struct AlwaysAlive {
  static std::uint64_t self() noexcept { return 0; }
  static bool alive(std::uint64_t) noexcept { return true; }
};

// Whether thread `tid` (of this process, or the process `tid` itself) is blocked in futex(2):
// what a test waits for before it releases, so that the waiter is really asleep in the kernel.
// nullopt when /proc/<tid>/syscall cannot be read (it needs ptrace access to another process:
// Yama's ptrace_scope 2 or 3, some sandboxes).
std::optional<bool> in_futex_call(pid_t tid) {
  std::ifstream syscall("/proc/" + std::to_string(tid) + "/syscall");
  std::string first;  // the system call's number, or "running"
  if (!(syscall >> first)) return std::nullopt;
  return first == std::to_string(SYS_futex);
}

// Waits (up to 10 s) until tid is in futex(2); nullopt as above.
std::optional<bool> eventually_in_futex_call(pid_t tid) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    const auto in = in_futex_call(tid);
    if (!in || *in) return in;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

TEST(RobustLockWord, AnUnlockWithNobodyAsleepMakesNoSystemCall) {
  using Futex = CountingFutex<1>;
  Futex::reset();
  mproc::core::RobustLockWord<Futex, AlwaysAlive> word;
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(word.try_lock(7));
    ASSERT_TRUE(word.unlock());
  }
  EXPECT_FALSE(word.unlock());  // a free lock is not released twice
  EXPECT_EQ(Futex::wakes.load(), 0);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

// Sleepers are counted apart from the word, and an unlock releases with a plain store: the
// handshake between them (robust_lock.hpp) must never leave the lock free while everyone sleeps.
// Holders hold for tens of microseconds, so every waiter sleeps at times; with the slices
// stretched to 2 s, a wait of a second or more is a lost wake-up. The second run has sleepers
// dawdle on their way into the kernel, so that wakes find nobody queued and the waker must hand
// the token back.
template <class Futex>
void expect_sleepers_woken(bool slow_way_in) {
  Futex::reset();
  Futex::slow_way_in = slow_way_in;
  Futex::long_slices = true;
  mproc::core::RobustLockWord<Futex, AlwaysAlive> word;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        ASSERT_EQ(word.lock(static_cast<std::uint64_t>(t + 1), std::nullopt),
                  mproc::core::LockResult::acquired);
        ++counter;
        std::this_thread::sleep_for(20us);
        ASSERT_TRUE(word.unlock());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 1600);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
  ASSERT_GT(Futex::waits.load(), 100) << "the waiters never slept: the test shows nothing";
  EXPECT_EQ(Futex::stalls.load(), 0) << "waits of a second or more: lost wake-ups";
  if (slow_way_in) {
    EXPECT_GT(Futex::empty_wakes.load(), 0) << "no wake found the queue empty: the test shows nothing";
  }
}

TEST(RobustLockWord, SleepersAreWokenNotLeftToTheirSlice) {
  expect_sleepers_woken<CountingFutex<2>>(false);
}

TEST(RobustLockWord, SleepersOnTheirWayInAreNotLeftAsleep) {
  expect_sleepers_woken<CountingFutex<4>>(true);
}

// The woken sleeper hands the waking token back; one that dies first (here: a wake reported but
// never delivered) must not leave the others asleep for good. They wait out a slice, free the
// token, and wake-ups work again.
TEST(RobustLockWord, ALostWakeCostsOneSliceNotTheLock) {
  using Futex = CountingFutex<3>;
  Futex::reset();
  mproc::core::RobustLockWord<Futex, AlwaysAlive> word;
  ASSERT_TRUE(word.try_lock(1));
  std::atomic<pid_t> sleeper_tid{0};
  std::atomic<int> phase{0};
  std::atomic<bool> again{false};
  std::thread sleeper([&] {
    sleeper_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    EXPECT_EQ(word.lock(2, std::nullopt), mproc::core::LockResult::acquired);
    phase = 1;
    EXPECT_TRUE(word.unlock());
    while (!again.load()) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(word.lock(2, std::nullopt), mproc::core::LockResult::acquired);
    phase = 2;
    EXPECT_TRUE(word.unlock());
  });
  while (sleeper_tid.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(eventually_in_futex_call(sleeper_tid.load()), true);  // a thread of ours: always readable
  Futex::swallow_wakes = true;
  ASSERT_TRUE(word.unlock());  // the wake is "delivered" to nobody: the token stays taken
  while (phase.load() != 1) std::this_thread::sleep_for(1ms);
  EXPECT_GE(Futex::timeouts.load(), 1) << "the sleeper got the lock without waiting out its slice";
  Futex::swallow_wakes = false;
  // The token is free again: the next sleeper is woken, not left to its (now 2 s) slice.
  Futex::long_slices = true;
  while (!word.try_lock(1)) std::this_thread::sleep_for(1ms);
  again = true;
  ASSERT_EQ(eventually_in_futex_call(sleeper_tid.load()), true);
  const int wakes_before = Futex::wakes.load();
  ASSERT_TRUE(word.unlock());
  EXPECT_EQ(Futex::wakes.load(), wakes_before + 1) << "the unlock did not wake the parked sleeper";
  sleeper.join();
  EXPECT_EQ(phase.load(), 2);
  EXPECT_EQ(Futex::stalls.load(), 0);
}

// A woken sleeper that dies before handing the token back, with no other sleeper whose slice could
// run out: the unlocks themselves recover the token (every 1024 absorbed). Here the "dead"
// sleeper is a swallowed wake, and the live sleeper's slice is stretched to 2 s, so only that
// recovery can wake it in time.
TEST(RobustLockWord, UnlocksRecoverATokenNobodyHandsBack) {
  using Futex = CountingFutex<6>;
  Futex::reset();
  Futex::long_slices = true;
  mproc::core::RobustLockWord<Futex, AlwaysAlive> word;
  ASSERT_TRUE(word.try_lock(1));
  std::atomic<pid_t> sleeper_tid{0};
  std::atomic<bool> took{false};
  std::thread sleeper([&] {
    sleeper_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    EXPECT_EQ(word.lock(2, std::nullopt), mproc::core::LockResult::acquired);
    took = true;
    EXPECT_TRUE(word.unlock());
  });
  while (sleeper_tid.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(eventually_in_futex_call(sleeper_tid.load()), true);
  Futex::swallow_wakes = true;
  ASSERT_TRUE(word.unlock());  // the token is taken for a wake nobody receives
  Futex::swallow_wakes = false;
  for (int i = 0; i < 1100 && !took.load(); ++i) {
    if (word.try_lock(1)) ASSERT_TRUE(word.unlock());
  }
  sleeper.join();
  EXPECT_TRUE(took.load());
  EXPECT_EQ(Futex::stalls.load(), 0) << "the sleeper waited out its slice: the token was not recovered";
}

// A waiter killed while it sleeps leaves its counts behind; they only filter wakes, so nothing
// hangs, but every later unlock would make a FUTEX_WAKE that finds nobody. The first such wake
// takes back the counts of the dead (the sleeper slots).
TEST(RobustLockWord, AKilledSleepersCountsAreTakenBack) {
  using Futex = CountingFutex<5>;
  Futex::reset();
  using Word = mproc::core::RobustLockWord<Futex>;
  void* memory = ::mmap(nullptr, sizeof(Word), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto* word = new (memory) Word();
  ASSERT_TRUE(word->try_lock(mproc::detail::process_identity()));
  const pid_t child = ::fork();
  if (child == 0) {
    word->lock(mproc::detail::process_identity(), std::nullopt);
    _exit(0);
  }
  ASSERT_GT(child, 0);
  const std::optional<bool> in_kernel = eventually_in_futex_call(child);
  const bool counted = word->sleepers_snapshot() == 1;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  if (!in_kernel) {
    ::munmap(memory, sizeof(Word));
    GTEST_SKIP() << "/proc/<pid>/syscall of a child is not readable here (ptrace_scope)";
  }
  ASSERT_TRUE(*in_kernel && counted);
  EXPECT_EQ(word->sleepers_snapshot(), 1u);  // the dead sleeper's count
  ASSERT_TRUE(word->unlock());               // finds nobody in the kernel, takes the counts back
  EXPECT_EQ(word->sleepers_snapshot(), 0u);
  const int wakes_before = Futex::wakes.load();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(word->try_lock(mproc::detail::process_identity()));
    ASSERT_TRUE(word->unlock());
  }
  EXPECT_EQ(Futex::wakes.load(), wakes_before);
  ::munmap(memory, sizeof(Word));
}

}  // namespace

// --- from the independent review --------------------------------------------------------------

namespace {

// A futex whose wakes never arrive: what the others see when the one woken waiter is killed
// before it takes what it was woken for.
struct LostWakes {
  static mproc::detail::FutexWaitResult wait(const std::atomic<std::uint32_t>& w, std::uint32_t e) noexcept {
    return mproc::detail::futex_wait(w, e);
  }
  static mproc::detail::FutexWaitResult wait_until(const std::atomic<std::uint32_t>& w, std::uint32_t e,
                                                   std::chrono::steady_clock::time_point d) noexcept {
    return mproc::detail::futex_wait_until(w, e, d);
  }
  static int wake(const std::atomic<std::uint32_t>&, int) noexcept { return 0; }
};

TEST(Review, ASemaphoreWaiterSeesAUnitEvenIfItsWakeIsLost) {
  mproc::core::SemaphoreCore<LostWakes> sem(0, 10);
  std::atomic<bool> took{false};
  std::thread waiter([&] {
    EXPECT_TRUE(sem.acquire(std::nullopt));
    took = true;
  });
  std::this_thread::sleep_for(100ms);  // parked by now
  ASSERT_TRUE(sem.release());
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!took && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(took.load()) << "a lost wake left the waiter asleep with a unit free";
  if (!took) {
    ASSERT_TRUE(sem.release());  // let the thread finish before the test ends
  }
  waiter.join();
}

TEST(Review, AnUnreadableProcDoesNotMakeALiveOwnerDead) {
  // With no descriptor left, /proc/<pid>/stat cannot be opened; the owner is alive all the same.
  const std::uint64_t parent = mproc::detail::process_identity();
  const pid_t child = fork();
  if (child == 0) {
    rlimit none{0, 0};
    setrlimit(RLIMIT_NOFILE, &none);
    _exit(mproc::detail::process_alive(parent) ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a live owner was declared dead";
}

TEST(Review, ArrayLengthsThatWouldOverflowAreRefused) {
  EXPECT_THROW(mproc::Array<int>(std::numeric_limits<std::size_t>::max() / 2), mproc::ValueError);
  EXPECT_THROW(mproc::RawArray<double>(std::numeric_limits<std::size_t>::max() / 4), mproc::ValueError);
}

TEST(Review, ADecoderRefusesAPrimitiveOfAnotherType) {
  mproc::Semaphore sem(1);
  std::vector<std::byte> bytes;
  mproc::Encoder out(bytes);
  out.put(sem);
  const std::vector<int> fds = out.fds();
  mproc::Decoder as_event(bytes, fds);
  EXPECT_THROW(as_event.get<mproc::Event>(), mproc::DecodeError);
  mproc::Decoder as_semaphore(bytes, fds);
  EXPECT_EQ(as_semaphore.get<mproc::Semaphore>().get_value(), 1);
}

TEST(Review, AMovedFromHandleStaysUsable) {
  mproc::Lock a;
  mproc::Lock b(std::move(a));
  a.acquire();  // NOLINT(bugprone-use-after-move): a move of a handle is a copy, by design
  EXPECT_FALSE(b.acquire(false));
  b.release();
  mproc::Value<int> v(5);
  mproc::Value<int> w = std::move(v);
  v.value() += 1;  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(w.value(), 6);
}

void wait_on_a_lock_held_elsewhere(mproc::Condition cond) {
  try {
    cond.wait(std::chrono::milliseconds(10));
  } catch (const mproc::ProcessError&) {
    throw mproc::SystemExit(0);
  }
  throw mproc::SystemExit(1);
}

TEST(Review, AConditionOverALockHeldByAnotherProcessRefusesToWait) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  lock.acquire();
  auto p = mproc::get_context(mproc::StartMethod::fork).Process(wait_on_a_lock_held_elsewhere, cond);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << "a process that does not hold the lock was let into wait()";
  lock.release();
}

}  // namespace
