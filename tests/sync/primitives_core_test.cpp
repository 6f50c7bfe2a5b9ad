// The cores of Semaphore, Event, Condition and Barrier (include/mproc/core/) with threads: the same
// code that runs across processes, here where ThreadSanitizer can see it (build with
// -DMPROC_SANITIZE=thread), and property tests (rapidcheck) against simple models.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "mproc/core/barrier.hpp"
#include "mproc/core/condition.hpp"
#include "mproc/core/event.hpp"
#include "mproc/core/semaphore.hpp"
#include "mproc/synchronize.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using Semaphore = mproc::core::SemaphoreCore<>;
using Event = mproc::core::EventCore<>;

/// Polls pred until it holds or the timeout passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

/// Threads that are always joined, even when an assertion returns early.
class Threads {
 public:
  Threads() = default;
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
  ~Threads() { join(); }
  template <class F>
  void start(F&& f) {
    threads_.emplace_back(std::forward<F>(f));
  }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  std::vector<std::thread> threads_;
};

// --- SemaphoreCore -----------------------------------------------------------------------------

TEST(SemaphoreCore, AtMostValueThreadsInsideAndNoLostUpdates) {
  Semaphore mutex(1, 1);
  Semaphore pair(2, 2);
  long counter = 0;  // plain: TSan reports a race if the semaphore does not order it
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  Threads threads;
  for (int t = 0; t < 4; ++t) {
    threads.start([&] {
      for (int i = 0; i < 5000; ++i) {
        ASSERT_TRUE(mutex.acquire(std::nullopt));
        ++counter;
        ASSERT_TRUE(mutex.release());
        ASSERT_TRUE(pair.acquire(std::nullopt));
        const int now = inside.fetch_add(1) + 1;
        int seen = most_inside.load();
        while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
        ASSERT_TRUE(pair.release());
      }
    });
  }
  threads.join();
  EXPECT_EQ(counter, 20000);
  EXPECT_LE(most_inside.load(), 2);
  EXPECT_EQ(mutex.value_snapshot(), 1u);
  EXPECT_EQ(pair.value_snapshot(), 2u);
}

RC_GTEST_PROP(SemaphoreCore, SequentialOperationsMatchABoundedCounter, ()) {
  const auto max = *rc::gen::inRange<std::uint32_t>(1, 6);
  const auto initial = *rc::gen::inRange<std::uint32_t>(0, max + 1);
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 3));
  Semaphore sem(initial, max);
  std::uint32_t model = initial;
  for (const int op : ops) {
    if (op == 0) {
      RC_ASSERT(sem.try_acquire() == (model > 0));
      if (model > 0) --model;
    } else if (op == 1) {
      RC_ASSERT(sem.acquire(Clock::now()) == (model > 0));  // a deadline already past
      if (model > 0) --model;
    } else {
      RC_ASSERT(sem.release() == (model < max));
      if (model < max) ++model;
    }
    RC_ASSERT(sem.value_snapshot() == model);
  }
}

// The same model through the public handles (BoundedSemaphore's bound, Semaphore's errors).
RC_GTEST_PROP(SemaphoreHandle, SequentialOperationsMatchABoundedCounter, ()) {
  const auto max = *rc::gen::inRange(1, 6);
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 3));
  mproc::BoundedSemaphore sem(max);
  int model = max;
  for (const int op : ops) {
    if (op == 0) {
      RC_ASSERT(sem.acquire(false) == (model > 0));
      if (model > 0) --model;
    } else if (op == 1) {
      RC_ASSERT(sem.acquire(true, 0ms) == (model > 0));
      if (model > 0) --model;
    } else if (model < max) {
      sem.release();
      ++model;
    } else {
      RC_ASSERT_THROWS_AS(sem.release(), mproc::ValueError);
    }
    RC_ASSERT(sem.get_value() == model);
  }
}

// Blocking acquirers on threads: each release wakes exactly one of them; none wakes without one.
RC_GTEST_PROP(SemaphoreCore, BlockedAcquirersAreReleasedOnePerRelease, ()) {
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 3));
  Semaphore sem(0, Semaphore::kValueMax);
  std::uint32_t value = 0;
  int blocked = 0;
  int expected_done = 0;
  std::atomic<int> done{0};
  Threads threads;
  struct Unblock {  // on any exit, before the threads are joined: free the ones still blocked
    Semaphore& sem;
    int& blocked;
    ~Unblock() {
      for (; blocked > 0; --blocked) static_cast<void>(sem.release());
    }
  } unblock{sem, blocked};
  for (const int op : ops) {
    if (op == 0) {  // a thread that blocks (or takes a free unit at once)
      threads.start([&] {
        if (sem.acquire(Clock::now() + 20s)) done.fetch_add(1);  // bounded, so a failing test ends
      });
      if (value > 0) {
        --value;
        ++expected_done;
      } else {
        ++blocked;
      }
    } else if (op == 1) {
      RC_ASSERT(sem.try_acquire() == (value > 0));
      if (value > 0) --value;
    } else {
      RC_ASSERT(sem.release());
      if (blocked > 0) {
        --blocked;
        ++expected_done;
      } else {
        ++value;
      }
    }
    // Quiescence: every thread that can finish has finished, and its unit is taken.
    RC_ASSERT(eventually([&] { return done.load() == expected_done; }, 5s));
    if (blocked > 0) RC_ASSERT(eventually([&] { return sem.value_snapshot() == 0; }, 5s));
    RC_ASSERT(sem.value_snapshot() == value);
  }
  expected_done += blocked;
  for (; blocked > 0; --blocked) RC_ASSERT(sem.release());
  threads.join();
  RC_ASSERT(done.load() == expected_done);
}

// --- EventCore ---------------------------------------------------------------------------------

TEST(EventCore, SetPublishesAndWakesEveryWaiter) {
  Event ev;
  int payload = 0;  // plain: set() must publish it to the waiters
  std::atomic<int> saw{0};
  Threads threads;
  for (int t = 0; t < 3; ++t) {
    threads.start([&] {
      if (ev.wait_until(std::nullopt) && payload == 42) saw.fetch_add(1);
    });
  }
  payload = 42;
  ev.set();
  threads.join();
  EXPECT_EQ(saw.load(), 3);
  EXPECT_TRUE(ev.is_set());
  EXPECT_TRUE(ev.wait_until(Clock::now()));
  ev.clear();
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(ev.wait_until(Clock::now() + 5ms));
}

/// The shared futex, with a hook that runs inside every wake, before the kernel wakes anyone.
struct HookedFutex {
  static inline std::function<void()> before_wake;
  static mproc::detail::FutexWaitResult wait(const std::atomic<std::uint32_t>& word,
                                             std::uint32_t expected) noexcept {
    return mproc::detail::SharedFutex::wait(word, expected);
  }
  static mproc::detail::FutexWaitResult wait_until(const std::atomic<std::uint32_t>& word,
                                                   std::uint32_t expected,
                                                   Clock::time_point deadline) noexcept {
    return mproc::detail::SharedFutex::wait_until(word, expected, deadline);
  }
  static int wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
    if (before_wake) before_wake();
    return mproc::detail::SharedFutex::wake(word, count);
  }
};

TEST(EventCore, APulseReleasesTheSleepers) {
  // set() then clear() before any sleeper runs: everyone waiting at the time still returns true
  // (threading.Event's rule). The hook clears the flag inside set(), before the futex wake.
  mproc::core::EventCore<HookedFutex> ev;
  HookedFutex::before_wake = [&ev] { ev.clear(); };
  std::atomic<int> released{0};
  Threads threads;
  for (int t = 0; t < 3; ++t) {
    threads.start([&] {
      if (ev.wait_until(Clock::now() + 20s)) released.fetch_add(1);
    });
  }
  ASSERT_TRUE(eventually([&] { return ev.sleepers_snapshot() == 3; }));
  std::this_thread::sleep_for(50ms);  // parked, not just announced
  const auto t0 = Clock::now();
  ev.set();
  threads.join();
  HookedFutex::before_wake = nullptr;
  EXPECT_EQ(released.load(), 3);
  EXPECT_LT(Clock::now() - t0, 10s);
  EXPECT_FALSE(ev.is_set());
}

// --- ConditionCore -----------------------------------------------------------------------------

/// A presence double: a marker holds its claimer's id; the test names one id "dead".
struct TestPresence {
  static inline thread_local std::uint32_t me = 1;
  static inline std::atomic<std::uint32_t> dead{0};
  struct Marker {
    std::atomic<std::uint32_t> holder;
  };
  static void init(Marker& m) noexcept { m.holder.store(0); }
  static bool claim(Marker& m) noexcept {
    std::uint32_t expected = 0;
    return m.holder.compare_exchange_strong(expected, me);
  }
  static void release(Marker& m) noexcept { m.holder.store(0); }
  static bool holder_died(Marker& m) noexcept {
    const std::uint32_t holder = m.holder.load();
    if (holder != 0 && holder != dead.load()) return false;
    m.holder.store(0);
    return true;
  }
};

template <std::size_t N>
using Condition = mproc::core::ConditionCore<mproc::detail::SharedFutex, TestPresence, N>;

TEST(ConditionCore, FifoNotifyAndATimeoutNeverSwallowsANotification) {
  auto cond = std::make_unique<Condition<8>>();
  const auto past = Clock::now();
  const std::uint32_t a = cond->enqueue();
  const std::uint32_t b = cond->enqueue();
  const std::uint32_t c = cond->enqueue();
  EXPECT_EQ(cond->waiters_snapshot(), 3u);
  EXPECT_EQ(cond->notify(1), 1u);
  EXPECT_TRUE(cond->wait(a, past)) << "the longest waiter is notified first";
  EXPECT_FALSE(cond->wait(b, past)) << "b times out, unnotified";
  EXPECT_EQ(cond->notify(1), 1u) << "the notification skips the timed-out b";
  EXPECT_TRUE(cond->wait(c, past));
  EXPECT_EQ(cond->notify(5), 0u) << "nobody is left waiting";
  for (auto slot : {a, b, c}) cond->dequeue(slot);
  EXPECT_EQ(cond->waiters_snapshot(), 0u);
  EXPECT_EQ(cond->notify(1), 0u);

  // The narrow race, made deterministic: the timeout fires (park() returns false), a notify gets in
  // before the waiter withdraws, and the withdrawal must then fail so the waiter reports it.
  const std::uint32_t d = cond->enqueue();
  const std::uint32_t e = cond->enqueue();
  EXPECT_FALSE(cond->park(d, past));
  EXPECT_EQ(cond->notify(1), 1u);
  EXPECT_FALSE(cond->cancel(d)) << "the notification sent to d after its timeout would be lost";
  EXPECT_FALSE(cond->park(e, past));
  EXPECT_TRUE(cond->cancel(e)) << "e was never notified";
  EXPECT_EQ(cond->notify(1), 0u) << "a cancelled waiter is not notified";
  cond->dequeue(d);
  cond->dequeue(e);
  EXPECT_EQ(cond->waiters_snapshot(), 0u);
}

TEST(ConditionCore, DeadWaitersAreSkippedAndTheirSlotsReclaimed) {
  auto cond = std::make_unique<Condition<3>>();
  const auto past = Clock::now();
  TestPresence::me = 7;
  const std::uint32_t ghost = cond->enqueue();  // "dies" waiting: it never calls wait()
  TestPresence::me = 1;
  const std::uint32_t live = cond->enqueue();
  TestPresence::dead = 7;
  EXPECT_EQ(cond->notify(1), 1u);
  EXPECT_TRUE(cond->wait(live, past)) << "notify passed over the dead waiter";
  cond->dequeue(live);
  EXPECT_EQ(cond->waiters_snapshot(), 0u) << "the dead waiter's slot was freed";
  static_cast<void>(ghost);

  // A full table: a slot whose holder died is reclaimed for the newcomer.
  TestPresence::me = 8;
  const std::uint32_t s1 = cond->enqueue();
  TestPresence::me = 9;
  const std::uint32_t s2 = cond->enqueue();
  const std::uint32_t s3 = cond->enqueue();
  EXPECT_NE(s3, Condition<3>::kNoSlot);
  EXPECT_EQ(cond->enqueue(), Condition<3>::kNoSlot) << "capacity 3";
  TestPresence::dead = 8;
  EXPECT_EQ(cond->enqueue(), s1) << "the dead holder's slot is reused";
  TestPresence::me = 1;
  TestPresence::dead = 0;
  static_cast<void>(s2);
}

TEST(ConditionCore, RacingTimeoutsAndNotifiesDeliverEachSignalExactlyOnce) {
  // Waiters with tiny random timeouts race a notifier: every signal notify() reports sent must be
  // received by exactly one waiter that returns true, and no waiter returns true without one.
  auto cond = std::make_unique<Condition<16>>();
  std::mutex lock;  // the Condition's lock
  std::atomic<long> received{0};
  long sent = 0;  // under lock
  std::atomic<int> running{4};
  Threads threads;
  for (int t = 0; t < 4; ++t) {
    threads.start([&, t] {
      std::minstd_rand rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; i < 400; ++i) {
        std::uint32_t slot = 0;
        {
          std::lock_guard guard(lock);
          slot = cond->enqueue();
        }
        const bool got = cond->wait(slot, Clock::now() + std::chrono::microseconds(rng() % 300));
        {
          std::lock_guard guard(lock);
          cond->dequeue(slot);
        }
        if (got) received.fetch_add(1);
      }
      running.fetch_sub(1);
    });
  }
  threads.start([&] {
    std::minstd_rand rng(99);
    while (running.load() > 0) {
      {
        std::lock_guard guard(lock);
        sent += static_cast<long>(cond->notify(1 + rng() % 2));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100));
    }
  });
  threads.join();
  EXPECT_GT(sent, 0);
  EXPECT_EQ(received.load(), sent);
  EXPECT_EQ(cond->waiters_snapshot(), 0u);
}

// --- BarrierCore -------------------------------------------------------------------------------

struct AllAlive {
  static std::uint64_t self() noexcept { return 1; }
  static bool alive(std::uint64_t) noexcept { return true; }
};
using Barrier = mproc::core::BarrierCore<mproc::detail::SharedFutex, AllAlive>;
constexpr std::uint64_t kSelf = 1;

/// A BarrierCore with its slots, in ordinary memory.
class BarrierBox {
 public:
  explicit BarrierBox(std::uint32_t parties, std::int64_t timeout_ns = -1)
      : memory_((Barrier::bytes_for(parties) + 7) / 8),
        barrier_(new(memory_.data()) Barrier(parties, timeout_ns)) {}
  Barrier& operator*() const noexcept { return *barrier_; }
  Barrier* operator->() const noexcept { return barrier_; }

 private:
  std::vector<std::uint64_t> memory_;
  Barrier* barrier_;
};

// The party count lives in shared memory, where a hostile process could rewrite it after a
// handle validated it: every operation is bounded by the caller's slot limit instead. A core that
// claims 5000 parties over slots for 2 passes its round at 2 and never touches slot 2 or beyond
// (ASan would report it: the vector holds exactly two slots).
TEST(BarrierCore, TheCallersSlotLimitBoundsAPartyCountRewrittenInSharedMemory) {
  std::vector<std::uint64_t> memory((Barrier::bytes_for(2) + 7) / 8);
  auto* barrier = new (memory.data()) Barrier(2, -1);
  // The hostile rewrite: the count is the first uint32 after the lock, word and wait word whose
  // value is 2; find it rather than assume the layout.
  auto* words = reinterpret_cast<std::uint32_t*>(memory.data());
  std::size_t at = 0;
  for (std::size_t i = 0; i * sizeof(std::uint32_t) < sizeof(Barrier); ++i) {
    if (words[i] == 2) at = i;
  }
  ASSERT_NE(at, 0U);
  words[at] = 5000;
  ASSERT_EQ(barrier->parties(), 5000U);
  std::optional<std::uint32_t> theirs;
  std::thread other([&] { theirs = barrier->wait(kSelf + 1, std::nullopt, 2); });
  const auto mine = barrier->wait(kSelf, std::nullopt, 2);
  other.join();
  ASSERT_TRUE(mine && theirs);  // the round passed at the caller's limit, not at 5000
  EXPECT_EQ(*mine + *theirs, 1U);
  barrier->abort(kSelf, 2);
  barrier->reset(kSelf, 2);
}

RC_GTEST_PROP(BarrierCore, EveryRoundHandsOutEachIndexOnce, ()) {
  const auto parties = *rc::gen::inRange<std::uint32_t>(1, 5);
  const auto rounds = *rc::gen::inRange(1, 8);
  BarrierBox barrier(parties);
  std::vector<std::vector<std::uint32_t>> index(static_cast<std::size_t>(rounds),
                                                std::vector<std::uint32_t>(parties));
  std::vector<int> payload(parties, 0);  // plain: each round must publish every party's write
  std::atomic<bool> ordered{true};
  {
    Threads threads;
    for (std::uint32_t p = 0; p < parties; ++p) {
      threads.start([&, p] {
        for (int r = 0; r < rounds; ++r) {
          payload[p] = r + 1;
          const auto got = barrier->wait(kSelf, Clock::now() + 20s);
          index[static_cast<std::size_t>(r)][p] = got.value_or(999);
          for (std::uint32_t q = 0; q < parties; ++q) {
            if (payload[q] < r + 1) ordered = false;
          }
          // Nobody writes payload for round r + 1 before everyone has read round r's.
          static_cast<void>(barrier->wait(kSelf, Clock::now() + 20s));
        }
      });
    }
  }
  RC_ASSERT(ordered.load());
  std::vector<std::uint32_t> expected(parties);
  std::iota(expected.begin(), expected.end(), 0U);
  for (auto& round : index) {
    std::sort(round.begin(), round.end());
    RC_ASSERT(round == expected);
  }
  RC_ASSERT(!barrier->broken_snapshot());
  RC_ASSERT(barrier->n_waiting_snapshot() == 0U);
}

// CPython's Barrier as a model: arrivals, zero-timeout arrivals, abort and reset, each applied
// to the real core with a thread per blocked arrival, then compared once everything settled.
RC_GTEST_PROP(BarrierCore, MatchesCPythonsStateMachine, ()) {
  const auto parties = *rc::gen::inRange<std::uint32_t>(1, 5);
  enum Op { kArrive, kArriveTimeout, kAbort, kReset };
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 4));
  BarrierBox barrier(parties);
  bool broken = false;  // the model
  std::uint32_t waiting = 0;
  struct Pending {
    std::thread thread;
    std::optional<std::uint32_t> result;
  };
  std::vector<std::unique_ptr<Pending>> pending;
  // Joins the blocked arrivals, which the last operation released, and returns their results.
  auto settle = [&] {
    std::vector<std::optional<std::uint32_t>> results;
    for (auto& p : pending) {
      p->thread.join();
      results.push_back(p->result);
    }
    pending.clear();
    waiting = 0;
    return results;
  };
  auto all_broken = [](const std::vector<std::optional<std::uint32_t>>& results) {
    return std::all_of(results.begin(), results.end(), [](const auto& r) { return !r.has_value(); });
  };
  auto cleanup = [&] {
    barrier->abort(kSelf);
    settle();
  };
  for (const int op : ops) {
    if (op == kArrive || op == kArriveTimeout) {
      if (broken) {
        RC_ASSERT(!barrier->wait(kSelf, std::nullopt).has_value());
      } else if (waiting + 1 == parties) {  // the last arrival: the round passes
        const auto mine =
            barrier->wait(kSelf, op == kArriveTimeout ? std::optional(Clock::now()) : std::nullopt);
        auto results = settle();
        RC_ASSERT(mine == std::optional<std::uint32_t>(parties - 1));
        std::set<std::uint32_t> indices{*mine};
        for (const auto& r : results) {
          if (!r) {
            cleanup();
            RC_FAIL("a waiter failed although the round passed");
          }
          indices.insert(*r);
        }
        RC_ASSERT(indices.size() == parties);
      } else if (op == kArriveTimeout) {  // times out at once and breaks the barrier
        RC_ASSERT(!barrier->wait(kSelf, Clock::now()).has_value());
        RC_ASSERT(all_broken(settle()));
        broken = true;
      } else {  // blocks
        auto p = std::make_unique<Pending>();
        Pending* raw = p.get();
        raw->thread =
            std::thread([&barrier, raw] { raw->result = barrier->wait(kSelf, Clock::now() + 20s); });
        pending.push_back(std::move(p));
        ++waiting;
        if (!eventually([&] { return barrier->n_waiting_snapshot() == waiting; }, 5s)) {
          cleanup();
          RC_FAIL("a blocked arrival was not counted");
        }
      }
    } else if (op == kAbort) {
      barrier->abort(kSelf);
      RC_ASSERT(all_broken(settle()));
      broken = true;
    } else {
      barrier->reset(kSelf);
      RC_ASSERT(all_broken(settle()));
      broken = false;
    }
    if (barrier->broken_snapshot() != broken || barrier->n_waiting_snapshot() != (broken ? 0 : waiting)) {
      cleanup();
      RC_FAIL("the barrier's state differs from the model");
    }
  }
  cleanup();
}

// --- No FUTEX_WAKE when nobody sleeps ------------------------------------------------------------

/// The shared futex, counting the wake calls that would reach the kernel.
struct CountingFutex {
  static inline std::atomic<int> wakes{0};
  static mproc::detail::FutexWaitResult wait(const std::atomic<std::uint32_t>& word,
                                             std::uint32_t expected) noexcept {
    return mproc::detail::SharedFutex::wait(word, expected);
  }
  static mproc::detail::FutexWaitResult wait_until(const std::atomic<std::uint32_t>& word,
                                                   std::uint32_t expected,
                                                   Clock::time_point deadline) noexcept {
    return mproc::detail::SharedFutex::wait_until(word, expected, deadline);
  }
  static int wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
    wakes.fetch_add(1);
    return mproc::detail::SharedFutex::wake(word, count);
  }
};

TEST(Cores, NoWakeSystemCallWhenNobodySleeps) {
  CountingFutex::wakes = 0;
  mproc::core::SemaphoreCore<CountingFutex> sem(0, 10);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sem.release());
  ASSERT_TRUE(sem.try_acquire());
  mproc::core::EventCore<CountingFutex> ev;
  ev.set();
  ev.clear();
  ev.set();
  auto cond = std::make_unique<mproc::core::ConditionCore<CountingFutex, TestPresence, 4>>();
  const std::uint32_t slot = cond->enqueue();
  EXPECT_EQ(cond->notify(1), 1u);  // its waiter has not parked: no wake call
  EXPECT_TRUE(cond->wait(slot, Clock::now()));
  cond->dequeue(slot);
  std::vector<std::uint64_t> memory((mproc::core::BarrierCore<CountingFutex, AllAlive>::bytes_for(1) + 7) /
                                    8);
  auto* barrier = new (memory.data()) mproc::core::BarrierCore<CountingFutex, AllAlive>(1, -1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(barrier->wait(kSelf, std::nullopt), std::optional<std::uint32_t>(0));
  EXPECT_EQ(CountingFutex::wakes.load(), 0);

  // And one when someone does sleep.
  while (sem.try_acquire()) {
  }
  std::thread sleeper([&] { static_cast<void>(sem.acquire(Clock::now() + 20s)); });
  ASSERT_TRUE(eventually([&] { return sem.sleepers_snapshot() == 1; }));
  ASSERT_TRUE(sem.release());
  sleeper.join();
  EXPECT_EQ(CountingFutex::wakes.load(), 1);
}

}  // namespace
