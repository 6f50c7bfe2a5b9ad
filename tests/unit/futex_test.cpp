// Tests of the shared futex wrapper (mproc/detail/futex.hpp) and of the spin-then-park WaitWord
// (mproc/core/wait_word.hpp): results and timeouts of each call, waking across threads and across
// forked processes (which only a shared futex can do), and ping-pong stress that turns a lost
// wake-up into a failed deadline rather than a hang.
#include "mproc/detail/futex.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/core/wait_word.hpp"

namespace mproc::detail {
// Lets GoogleTest print FutexWaitResult by name in failure messages.
void PrintTo(FutexWaitResult result, std::ostream* out) {
  switch (result) {
    case FutexWaitResult::woken:
      *out << "woken";
      return;
    case FutexWaitResult::value_mismatch:
      *out << "value_mismatch";
      return;
    case FutexWaitResult::timed_out:
      *out << "timed_out";
      return;
  }
  *out << "FutexWaitResult(" << static_cast<int>(result) << ")";
}
}  // namespace mproc::detail

namespace mproc {
namespace {

using namespace std::chrono_literals;
using detail::FutexWaitResult;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Test fixtures: a shared anonymous mapping, and a forked child that is always reaped.

/// One T in a fresh mmap(MAP_SHARED | MAP_ANONYMOUS) region, shared with children forked later.
template <class T>
class SharedMapping {
  static_assert(std::is_trivially_destructible_v<T>, "the mapping is unmapped, never destroyed");

 public:
  SharedMapping() {
    void* memory = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap");
    object_ = new (memory) T();
  }
  ~SharedMapping() { ::munmap(object_, sizeof(T)); }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  T& operator*() const noexcept { return *object_; }
  T* operator->() const noexcept { return object_; }

 private:
  T* object_ = nullptr;
};

/// A forked child that runs body() and _exits with its result. The destructor SIGKILLs and reaps
/// a child the test has not reaped, so a failed assertion never leaves a process behind.
class ForkedChild {
 public:
  template <class Body>
  explicit ForkedChild(Body body) : pid_(::fork()) {
    if (pid_ == 0) {
      int code = 100;
      try {
        code = body();
      } catch (...) {
        code = 101;
      }
      ::_exit(code);
    }
    if (pid_ < 0) throw std::system_error(errno, std::system_category(), "fork");
  }
  ~ForkedChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ForkedChild(const ForkedChild&) = delete;
  ForkedChild& operator=(const ForkedChild&) = delete;

  /// Reaps the child if it exits within `limit`: its wait status, or nullopt if it is still running.
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      int status = 0;
      const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
      if (reaped == pid_) {
        pid_ = -1;
        return status;
      }
      if (reaped < 0 && errno != EINTR) return std::nullopt;
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(1ms);
    }
  }

 private:
  pid_t pid_;
};

/// Expects that the child exited normally with code 0 within `limit`.
void expect_clean_exit(ForkedChild& child, std::chrono::milliseconds limit) {
  const std::optional<int> status = child.wait_for(limit);
  ASSERT_TRUE(status.has_value()) << "the child did not exit within " << limit.count() << " ms";
  ASSERT_TRUE(WIFEXITED(*status)) << "the child died of signal " << WTERMSIG(*status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

/// Calls futex_wake(word, 1) until it wakes a parked waiter or `limit` passes. Returns the number
/// the successful call woke (0 on timeout): proof that a waiter was parked and this call found it.
int wake_one_parked(const std::atomic<std::uint32_t>& word, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (const int woken = detail::futex_wake(word, 1); woken > 0) return woken;
    std::this_thread::sleep_for(1ms);
  }
  return 0;
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!predicate()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The futex wrapper.

TEST(FutexTest, WaitReturnsValueMismatchWhenTheWordDiffers) {
  const std::atomic<std::uint32_t> word{1};
  EXPECT_EQ(detail::futex_wait(word, 0), FutexWaitResult::value_mismatch);
  EXPECT_EQ(detail::futex_wait_for(word, 0, 1s), FutexWaitResult::value_mismatch);
  EXPECT_EQ(detail::futex_wait_until(word, 0, Clock::now() + 1s), FutexWaitResult::value_mismatch);
}

TEST(FutexTest, NonPositiveTimeoutsReturnAtOnce) {
  const std::atomic<std::uint32_t> word{7};
  const auto start = Clock::now();
  EXPECT_EQ(detail::futex_wait_for(word, 7, 0ns), FutexWaitResult::timed_out);
  EXPECT_EQ(detail::futex_wait_for(word, 7, -1s), FutexWaitResult::timed_out);
  EXPECT_EQ(detail::futex_wait_for(word, 8, 0ns), FutexWaitResult::value_mismatch);
  EXPECT_EQ(detail::futex_wait_until(word, 7, Clock::now() - 1s), FutexWaitResult::timed_out);
  EXPECT_EQ(detail::futex_wait_until(word, 7, Clock::time_point{}), FutexWaitResult::timed_out);
  EXPECT_EQ(detail::futex_wait_until(word, 7, Clock::time_point::min()), FutexWaitResult::timed_out);
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(FutexTest, HugeTimeoutsDoNotOverflow) {
  // A mismatching word returns at once; an overflowed or invalid timeout would abort (EINVAL).
  const std::atomic<std::uint32_t> word{1};
  EXPECT_EQ(detail::futex_wait_for(word, 0, std::chrono::nanoseconds::max()),
            FutexWaitResult::value_mismatch);
  EXPECT_EQ(detail::futex_wait_until(word, 0, Clock::time_point::max()), FutexWaitResult::value_mismatch);
}

TEST(FutexTest, WaitForTimesOutAfterTheTimeout) {
  const std::atomic<std::uint32_t> word{0};
  const auto start = Clock::now();
  EXPECT_EQ(detail::futex_wait_for(word, 0, 50ms), FutexWaitResult::timed_out);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 50ms + 2s);
}

TEST(FutexTest, WaitUntilTimesOutAtTheDeadline) {
  const std::atomic<std::uint32_t> word{0};
  const auto deadline = Clock::now() + 50ms;
  EXPECT_EQ(detail::futex_wait_until(word, 0, deadline), FutexWaitResult::timed_out);
  const auto now = Clock::now();
  EXPECT_GE(now, deadline);
  EXPECT_LT(now, deadline + 2s);
}

TEST(FutexTest, SteadyClockIsTheMonotonicClock) {
  // futex_wait_until hands steady_clock's time since epoch to the kernel as CLOCK_MONOTONIC.
  timespec monotonic{};
  ASSERT_EQ(::clock_gettime(CLOCK_MONOTONIC, &monotonic), 0);
  const auto steady = Clock::now().time_since_epoch();
  const auto kernel = std::chrono::seconds(monotonic.tv_sec) + std::chrono::nanoseconds(monotonic.tv_nsec);
  EXPECT_LT(std::chrono::abs(steady - kernel), 100ms);
}

TEST(FutexTest, WakeWithoutWaitersWakesNobody) {
  const std::atomic<std::uint32_t> word{0};
  EXPECT_EQ(detail::futex_wake(word, 1), 0);
  EXPECT_EQ(detail::futex_wake(word, 0), 0);
  EXPECT_EQ(detail::futex_wake(word, -1), 0);
  EXPECT_EQ(detail::futex_wake_all(word), 0);
}

TEST(FutexTest, WakeFromAnotherThreadEndsTheWait) {
  const std::atomic<std::uint32_t> word{0};
  std::atomic<FutexWaitResult> result{FutexWaitResult::timed_out};
  std::thread waiter([&] { result.store(detail::futex_wait_for(word, 0, 10s), std::memory_order_relaxed); });
  const int woken = wake_one_parked(word, 5000ms);
  waiter.join();
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(result.load(std::memory_order_relaxed), FutexWaitResult::woken);
}

TEST(FutexTest, WakeCountsAndWakeAllWakesEveryWaiter) {
  constexpr int kWaiters = 3;
  const std::atomic<std::uint32_t> word{0};
  std::atomic<int> woken_waiters{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      if (detail::futex_wait_for(word, 0, 10s) == FutexWaitResult::woken) {
        woken_waiters.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  int woken = 0;
  const auto deadline = Clock::now() + 5s;
  while (woken < kWaiters && Clock::now() < deadline) {
    woken += detail::futex_wake_all(word);
    std::this_thread::sleep_for(1ms);
  }
  for (auto& waiter : waiters) waiter.join();
  EXPECT_EQ(woken, kWaiters);
  EXPECT_EQ(woken_waiters.load(std::memory_order_relaxed), kWaiters);
}

// A private futex (FUTEX_PRIVATE_FLAG, as in std::atomic::wait) fails both tests below: the wake
// finds nobody, the child times out with exit code 2, and the assertions fail.
TEST(FutexTest, WakesAWaiterInAnotherProcess) {
  SharedMapping<std::atomic<std::uint32_t>> word;
  ForkedChild child([&] {
    switch (detail::futex_wait_for(*word, 0, 10s)) {
      case FutexWaitResult::woken:
        return 0;
      case FutexWaitResult::timed_out:
        return 2;
      case FutexWaitResult::value_mismatch:
        return 3;
    }
    return 4;
  });
  EXPECT_EQ(wake_one_parked(*word, 5000ms), 1) << "no FUTEX_WAKE found the child parked on the shared word";
  expect_clean_exit(child, 15000ms);
}

TEST(FutexTest, IsWokenByAnotherProcess) {
  SharedMapping<std::atomic<std::uint32_t>> word;
  ForkedChild child([&] { return wake_one_parked(*word, 5000ms) == 1 ? 0 : 2; });
  EXPECT_EQ(detail::futex_wait_for(*word, 0, 10s), FutexWaitResult::woken);
  expect_clean_exit(child, 15000ms);
}

// ---------------------------------------------------------------------------------------------
// WaitWord.

/// Counts the calls that reach the futex, then forwards them to the real shared futex.
struct CountingFutex {
  static inline std::atomic<int> waits{0};
  static inline std::atomic<int> wakes{0};

  static void reset() noexcept {
    waits.store(0, std::memory_order_relaxed);
    wakes.store(0, std::memory_order_relaxed);
  }
  static FutexWaitResult wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
    waits.fetch_add(1, std::memory_order_relaxed);
    return detail::SharedFutex::wait(word, expected);
  }
  static FutexWaitResult wait_until(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                    Clock::time_point deadline) noexcept {
    waits.fetch_add(1, std::memory_order_relaxed);
    return detail::SharedFutex::wait_until(word, expected, deadline);
  }
  static int wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
    wakes.fetch_add(1, std::memory_order_relaxed);
    return detail::SharedFutex::wake(word, count);
  }
};
static_assert(detail::FutexPolicy<CountingFutex>);

using CountingWaitWord = core::WaitWord<CountingFutex>;

class WaitWordTest : public ::testing::Test {
 protected:
  void SetUp() override { CountingFutex::reset(); }
  static int waits() { return CountingFutex::waits.load(std::memory_order_relaxed); }
  static int wakes() { return CountingFutex::wakes.load(std::memory_order_relaxed); }
};

TEST_F(WaitWordTest, ZeroBytesAreTheIdleState) {
  alignas(core::WaitWord<>) unsigned char storage[sizeof(core::WaitWord<>)];
  std::memset(storage, 0xA5, sizeof storage);
  auto* word = new (storage) core::WaitWord<>();
  const unsigned char zeros[sizeof storage] = {};
  EXPECT_EQ(std::memcmp(storage, zeros, sizeof storage), 0)
      << "a zero-filled segment must be an idle WaitWord";
  EXPECT_EQ(word->sleepers_snapshot(), 0u);
}

TEST_F(WaitWordTest, NotifyWithoutSleepersMakesNoWakeCall) {
  CountingWaitWord word;
  for (int i = 0; i < 1000; ++i) {
    word.notify_one();
    word.notify_all();
  }
  EXPECT_EQ(wakes(), 0);
}

TEST_F(WaitWordTest, ReadyConditionReturnsWithoutParking) {
  CountingWaitWord word;
  word.wait([] { return true; });
  EXPECT_TRUE(word.wait_until([] { return true; }, Clock::now() + 1s));
  EXPECT_TRUE(word.wait_until([] { return true; }, Clock::now() - 1s));
  EXPECT_EQ(waits(), 0);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

TEST_F(WaitWordTest, NotifyOneWakesAParkedWaiter) {
  CountingWaitWord word;
  std::atomic<std::uint32_t> flag{0};
  std::atomic<bool> returned_ready{false};
  std::thread waiter([&] {
    word.wait([&] { return flag.load(std::memory_order_acquire) != 0; });
    returned_ready.store(flag.load(std::memory_order_relaxed) != 0, std::memory_order_relaxed);
  });
  // Once counted as a sleeper the waiter cannot return before the flag is set, so the notify
  // below must find it: exactly one wake call, and no lost wake-up.
  const bool parked = eventually([&] { return word.sleepers_snapshot() == 1; }, 5000ms);
  flag.store(1, std::memory_order_release);
  word.notify_one();
  waiter.join();
  EXPECT_TRUE(parked);
  EXPECT_TRUE(returned_ready.load(std::memory_order_relaxed));
  EXPECT_EQ(wakes(), 1);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

TEST_F(WaitWordTest, NotifyAllWakesEveryParkedWaiter) {
  constexpr int kWaiters = 3;
  CountingWaitWord word;
  std::atomic<std::uint32_t> flag{0};
  std::atomic<int> ready_waiters{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      if (word.wait_until([&] { return flag.load(std::memory_order_acquire) != 0; }, Clock::now() + 10s)) {
        ready_waiters.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const bool parked = eventually([&] { return word.sleepers_snapshot() == kWaiters; }, 5000ms);
  flag.store(1, std::memory_order_release);
  const auto notified = Clock::now();
  word.notify_all();
  for (auto& waiter : waiters) waiter.join();
  EXPECT_TRUE(parked);
  EXPECT_EQ(ready_waiters.load(std::memory_order_relaxed), kWaiters);
  EXPECT_LT(Clock::now() - notified, 5s) << "the waiters ran into their deadline: a lost wake-up";
  EXPECT_EQ(wakes(), 1);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

TEST_F(WaitWordTest, WaitUntilTimesOut) {
  CountingWaitWord word;
  const auto deadline = Clock::now() + 50ms;
  EXPECT_FALSE(word.wait_until([] { return false; }, deadline));
  const auto now = Clock::now();
  EXPECT_GE(now, deadline);
  EXPECT_LT(now, deadline + 2s);
  EXPECT_GE(waits(), 1) << "a 50 ms wait must park rather than spin";
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

TEST_F(WaitWordTest, WaitUntilAPastDeadlineDoesNotPark) {
  CountingWaitWord word;
  const auto start = Clock::now();
  EXPECT_FALSE(word.wait_until([] { return false; }, start - 1s));
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_EQ(waits(), 0);
  EXPECT_EQ(word.sleepers_snapshot(), 0u);
}

// Ping-pong: a ball counter whose even values belong to group 0 and odd values to group 1. Each
// group's members wait on their own WaitWord for their parity, claim the turn with a CAS and
// notify the other group. With one player per group a single lost wake-up stalls the game until
// the deadline fails it (a mutant that reads the epoch after ready() fails it in most runs); four
// per group put more players than cores, the starvation case, and check progress and exactly-once
// turns (a lost wake-up there only delays: another member of the group takes the turn).
template <class Futex>
struct PingPong {
  std::atomic<std::uint64_t> ball{0};
  core::WaitWord<Futex> turn[2];
  std::atomic<std::uint64_t> claimed[2] = {0, 0};
};

/// xorshift32: cheap, seeded, and fork-safe.
inline std::uint32_t next_random(std::uint32_t& state) noexcept {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

/// What a player does before taking its turn, chosen so that the notify lands in the windows where
/// a wake-up can be lost. One turn in eight first waits (up to 20 ms) until the other side counts
/// a sleeper, i.e. until a waiter is between its announcement and its park, or parked: spinning
/// alone would hide that window on an idle machine, and yields can outlast any fixed think time on
/// a busy one. Every turn then thinks for 0 to ~2.5 spin budgets of pauses, which moves the notify
/// across the waiter's spin, yield, announce and park stages.
template <class Futex>
void before_turn(const core::WaitWord<Futex>& theirs, std::uint32_t& rng) noexcept {
  const std::uint32_t dice = next_random(rng);
  if (dice % 8 == 0) {
    const auto limit = Clock::now() + 20ms;
    while (theirs.sleepers_snapshot() == 0 && Clock::now() < limit) std::this_thread::yield();
  }
  const std::uint32_t pauses = (dice >> 3) % (5 * core::WaitWord<Futex>::kSpinIterations / 2);
  for (std::uint32_t i = 0; i < pauses; ++i) core::cpu_relax();
}

/// Plays for `group` until the ball reaches `turns` (even). False if a wait hit the deadline.
template <class Futex>
bool play(PingPong<Futex>& game, int group, std::uint64_t turns, Clock::time_point deadline,
          std::uint32_t seed) {
  core::WaitWord<Futex>& mine = game.turn[group];
  core::WaitWord<Futex>& theirs = game.turn[1 - group];
  std::uint32_t rng = seed;
  for (;;) {
    std::uint64_t ball = 0;
    const bool ready = mine.wait_until(
        [&] {
          ball = game.ball.load(std::memory_order_acquire);
          return ball >= turns || ball % 2 == static_cast<std::uint64_t>(group);
        },
        deadline);
    if (!ready) return false;
    if (ball >= turns) return true;
    before_turn(theirs, rng);
    if (game.ball.compare_exchange_strong(ball, ball + 1, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      game.claimed[group].fetch_add(1, std::memory_order_relaxed);
      if (ball + 1 == turns) {  // game over: release every waiter of both groups
        mine.notify_all();
        theirs.notify_all();
        return true;
      }
      theirs.notify_one();  // any one member of the other group can take the next turn
    }
  }
}

/// A distinct non-zero xorshift seed per player.
std::uint32_t seed_of(int group, int index) {
  return static_cast<std::uint32_t>(2 * index + group + 1) * 0x9E3779B9u;
}

class WaitWordPingPongTest : public ::testing::TestWithParam<int> {};

TEST_P(WaitWordPingPongTest, ThreadsLoseNoWakeUp) {
  const int per_group = GetParam();
  constexpr std::uint64_t kTurns = 20'000;
  CountingFutex::reset();
  PingPong<CountingFutex> game;
  std::atomic<int> timeouts{0};
  const auto deadline = Clock::now() + 30s;
  std::vector<std::thread> players;
  for (int group = 0; group < 2; ++group) {
    for (int i = 0; i < per_group; ++i) {
      players.emplace_back([&, group, i] {
        if (!play(game, group, kTurns, deadline, seed_of(group, i)))
          timeouts.fetch_add(1, std::memory_order_relaxed);
      });
    }
  }
  for (auto& player : players) player.join();
  EXPECT_EQ(timeouts.load(std::memory_order_relaxed), 0)
      << "a player waited until the deadline: a lost wake-up";
  EXPECT_EQ(game.ball.load(std::memory_order_relaxed), kTurns);
  EXPECT_EQ(game.claimed[0].load(std::memory_order_relaxed), kTurns / 2);
  EXPECT_EQ(game.claimed[1].load(std::memory_order_relaxed), kTurns / 2);
  EXPECT_EQ(game.turn[0].sleepers_snapshot(), 0u);
  EXPECT_EQ(game.turn[1].sleepers_snapshot(), 0u);
  // Without parks the test would not exercise the lost-wake-up window at all.
  EXPECT_GT(CountingFutex::waits.load(std::memory_order_relaxed), 0);
  RecordProperty("futex_waits", CountingFutex::waits.load(std::memory_order_relaxed));
  RecordProperty("futex_wakes", CountingFutex::wakes.load(std::memory_order_relaxed));
}

TEST_P(WaitWordPingPongTest, ProcessesLoseNoWakeUp) {
  const int per_group = GetParam();
  constexpr std::uint64_t kTurns = 20'000;
  SharedMapping<PingPong<detail::SharedFutex>> game;
  const auto deadline = Clock::now() + 30s;
  std::vector<std::unique_ptr<ForkedChild>> players;
  for (int group = 0; group < 2; ++group) {
    for (int i = 0; i < per_group; ++i) {
      players.push_back(std::make_unique<ForkedChild>(
          [&, group, i] { return play(*game, group, kTurns, deadline, seed_of(group, i)) ? 0 : 2; }));
    }
  }
  for (auto& player : players) expect_clean_exit(*player, 40000ms);
  EXPECT_EQ(game->ball.load(std::memory_order_relaxed), kTurns);
  EXPECT_EQ(game->claimed[0].load(std::memory_order_relaxed), kTurns / 2);
  EXPECT_EQ(game->claimed[1].load(std::memory_order_relaxed), kTurns / 2);
  EXPECT_EQ(game->turn[0].sleepers_snapshot(), 0u);
  EXPECT_EQ(game->turn[1].sleepers_snapshot(), 0u);
}

INSTANTIATE_TEST_SUITE_P(PlayersPerGroup, WaitWordPingPongTest, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return std::to_string(param.param) + "PerGroup";
                         });

}  // namespace
}  // namespace mproc
