// Semaphore, BoundedSemaphore, Condition, Event, Barrier through their public handles: CPython's
// semantics and error messages, timeouts, use across processes under fork and spawn, and what
// happens when a process is SIGKILLed inside one of them.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/process.hpp"
#include "mproc/sharedctypes.hpp"
#include "mproc/synchronize.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using mproc_test::Children;
using mproc_test::eventually;

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn};

[[noreturn]] void exit_with(bool ok) {
  throw mproc::SystemExit(ok ? 0 : 1);
}

// --- Semaphore ---------------------------------------------------------------------------------

TEST(Semaphore, CountsAndTimesOutAsInCPython) {
  mproc::Semaphore sem(2);
  EXPECT_EQ(sem.get_value(), 2);
  EXPECT_TRUE(sem.acquire());
  EXPECT_TRUE(sem.acquire(true, 1s));
  EXPECT_EQ(sem.get_value(), 0);
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false, 10s)) << "block=false ignores the timeout";
  auto t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(true, 100ms));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
  t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(true, -1s)) << "a negative timeout means 0";
  EXPECT_LT(Clock::now() - t0, 50ms);
  sem.release();
  sem.release();
  sem.release();  // unbounded above: Semaphore(2) + 3 releases
  EXPECT_EQ(sem.get_value(), 3);
  {
    std::lock_guard guard(sem);  // Lockable
    EXPECT_EQ(sem.get_value(), 2);
  }
  EXPECT_EQ(sem.get_value(), 3);
  mproc::Semaphore copy = sem;  // a handle: copies share the count
  EXPECT_TRUE(copy.try_lock());
  EXPECT_EQ(sem.get_value(), 2);
  EXPECT_EQ(mproc::Semaphore().get_value(), 1) << "CPython's default value is 1";
}

TEST(Semaphore, Errors) {
  expect_error<mproc::ValueError>([] { mproc::Semaphore sem(-1); }, "Semaphore initial value must be >= 0");
  expect_error<mproc::ValueError>([] { mproc::BoundedSemaphore sem(-1); },
                                  "BoundedSemaphore initial value must be >= 0");
  mproc::BoundedSemaphore bsem(1);
  expect_error<mproc::ValueError>([&] { bsem.release(); }, "semaphore or lock released too many times");
  EXPECT_EQ(bsem.get_value(), 1) << "a refused release changes nothing";
  EXPECT_TRUE(bsem.acquire());
  bsem.release();
  mproc::BoundedSemaphore two(2);
  EXPECT_TRUE(two.acquire());
  two.release();
  EXPECT_THROW(two.release(), mproc::ValueError);
  EXPECT_EQ(two.get_value(), 2);
  mproc::Semaphore full(2147483647);
  try {
    full.release();
    ADD_FAILURE() << "released past SEM_VALUE_MAX";
  } catch (const mproc::OSError& e) {
    EXPECT_EQ(e.code().value(), EOVERFLOW);
  }
}

void take_three(mproc::Semaphore sem, mproc::Semaphore done) {
  for (int i = 0; i < 3; ++i) {
    if (!sem.acquire(true, 10s)) exit_with(false);
  }
  done.release();
  exit_with(true);
}

void over_release(mproc::BoundedSemaphore bsem) {
  try {
    bsem.release();
  } catch (const mproc::ValueError&) {
    exit_with(true);
  }
  exit_with(false);
}

TEST(Semaphore, WorksAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    Children children;
    mproc::Semaphore sem(0);
    mproc::Semaphore done(0);
    children.start(ctx.Process(take_three, sem, done));
    std::this_thread::sleep_for(20ms);  // let it block, so that the releases must wake it
    for (int i = 0; i < 3; ++i) sem.release();
    EXPECT_TRUE(done.acquire(true, 10s));
    mproc::BoundedSemaphore bsem(1);
    children.start(ctx.Process(over_release, bsem));
    children.expect_all_exit(0);
    EXPECT_EQ(sem.get_value(), 0);
    EXPECT_EQ(bsem.get_value(), 1);
  }
}

void count_under_semaphore(mproc::Semaphore mutex, mproc::RawValue<int> counter) {
  for (int i = 0; i < 20000; ++i) {
    std::lock_guard guard(mutex);
    counter.value() += 1;  // plain: only the semaphore protects it
  }
}

TEST(Semaphore, ASemaphoreOfOneIsAMutexAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    mproc::Semaphore mutex(1);
    mproc::RawValue<int> counter(0);
    for (int i = 0; i < 4; ++i)
      children.start(mproc::get_context(method).Process(count_under_semaphore, mutex, counter));
    children.expect_all_exit(0, 60s);
    EXPECT_EQ(counter.value(), 80000);
    EXPECT_EQ(mutex.get_value(), 1);
  }
}

void take_and_hang(mproc::Semaphore sem, mproc::Event taken) {
  sem.acquire();
  taken.set();
  for (;;) std::this_thread::sleep_for(1s);
}

TEST(Semaphore, AProcessThatDiesHoldingAUnitTakesItWith) {
  // Documented behaviour (as CPython's): units have no owner, so nobody can give them back.
  Children children;
  mproc::Semaphore sem(1);
  mproc::Event taken;
  auto& child =
      children.start(mproc::get_context(mproc::StartMethod::fork).Process(take_and_hang, sem, taken));
  ASSERT_TRUE(taken.wait(10s));
  child.kill();
  child.join();
  EXPECT_EQ(sem.get_value(), 0);
  EXPECT_FALSE(sem.acquire(true, 50ms));
  sem.release();  // the usual repair: whoever knows the holder died gives the unit back
  EXPECT_TRUE(sem.acquire(false));
}

// --- Condition ---------------------------------------------------------------------------------

TEST(Condition, ErrorsWithoutTheLock) {
  mproc::Condition cond;
  expect_error<mproc::ProcessError>([&] { cond.wait(); }, "must acquire() condition before using wait()");
  expect_error<mproc::ProcessError>([&] { cond.wait(10ms); }, "must acquire() condition before using wait()");
  expect_error<mproc::ProcessError>([&] { cond.notify(); }, "lock is not owned");
  expect_error<mproc::ProcessError>([&] { cond.notify_all(); }, "lock is not owned");
  // The default lock is an RLock: held by another thread is not held by this one.
  cond.acquire();
  std::thread other([&] {
    expect_error<mproc::ProcessError>([&] { cond.wait(10ms); },
                                      "must acquire() condition before using wait()");
    expect_error<mproc::ProcessError>([&] { cond.notify(); }, "lock is not owned");
  });
  other.join();
  cond.release();

  mproc::Condition over_lock{mproc::Lock()};
  expect_error<mproc::ProcessError>([&] { over_lock.wait(10ms); },
                                    "must acquire() condition before using wait()");
  expect_error<mproc::ProcessError>([&] { over_lock.notify(2); }, "lock is not owned");
  EXPECT_EQ(over_lock.waiters_snapshot(), 0u) << "a refused wait leaves no waiter behind";
}

TEST(Condition, TimedWaitsReturnFalseAfterTheTimeout) {
  mproc::Condition cond;
  std::lock_guard guard(cond);
  auto t0 = Clock::now();
  EXPECT_FALSE(cond.wait(100ms));
  auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
  t0 = Clock::now();
  EXPECT_FALSE(cond.wait(-5s)) << "negative: 0";
  EXPECT_LT(Clock::now() - t0, 50ms);
  int calls = 0;
  t0 = Clock::now();
  const int last = cond.wait_for(
      [&] {
        ++calls;
        return 0;
      },
      60ms);
  EXPECT_EQ(last, 0) << "wait_for returns the predicate's last value";
  EXPECT_GE(Clock::now() - t0, 60ms);
  EXPECT_GE(calls, 2);
  EXPECT_EQ(cond.wait_for([] { return 7; }, 1s), 7);
  EXPECT_EQ(cond.waiters_snapshot(), 0u);
}

TEST(Condition, WaitReleasesARecursiveRLockFullyAndRestoresTheDepth) {
  mproc::RLock rlock;
  mproc::Condition cond(rlock);
  rlock.acquire();
  rlock.acquire();
  rlock.acquire();
  bool other_got_it = false;
  std::thread other([&] {
    // Only possible if wait() released all three levels.
    if (cond.acquire(true, 5s)) {
      other_got_it = true;
      cond.notify();
      cond.release();
    }
  });
  EXPECT_TRUE(cond.wait(10s));
  other.join();
  EXPECT_TRUE(other_got_it);
  EXPECT_EQ(rlock.depth_held_by_me(), 3u);
  rlock.release();
  rlock.release();
  rlock.release();
  EXPECT_EQ(rlock.depth_held_by_me(), 0u);
}

TEST(Condition, NotifyNWakesAtMostNAndTimeoutsDoNotSwallowNotifications) {
  mproc::Condition cond{mproc::Lock()};
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      std::lock_guard guard(cond);
      if (cond.wait(20s)) woken.fetch_add(1);
    });
  }
  // One more waiter that times out while the others wait: it must not take their notifications.
  std::thread quitter([&] {
    std::lock_guard guard(cond);
    EXPECT_FALSE(cond.wait(1ms));
  });
  quitter.join();
  ASSERT_TRUE(eventually([&] { return cond.waiters_snapshot() == 3; }));
  {
    std::lock_guard guard(cond);
    cond.notify(2);
  }
  EXPECT_TRUE(eventually([&] { return woken.load() == 2; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(woken.load(), 2) << "notify(2) woke more than 2";
  EXPECT_EQ(cond.waiters_snapshot(), 1u);
  {
    std::lock_guard guard(cond);
    cond.notify_all();
  }
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 3);
  std::lock_guard guard(cond);
  cond.notify();  // nobody waits: a no-op
}

void wait_for_ready(mproc::Condition cond, mproc::RawValue<int> ready, mproc::Semaphore woke) {
  bool ok = false;
  {
    std::lock_guard guard(cond);
    ok = cond.wait_for([&] { return ready.value() == 1; }, 20s);
  }
  woke.release();
  exit_with(ok);
}

TEST(Condition, WorksAcrossProcessesOverRLockAndLock) {
  for (auto method : kMethods) {
    for (bool over_lock : {false, true}) {
      SCOPED_TRACE(std::string(mproc::to_string(method)) + (over_lock ? " Lock" : " RLock"));
      Children children;
      mproc::Condition cond = over_lock ? mproc::Condition(mproc::Lock()) : mproc::Condition();
      mproc::RawValue<int> ready(0);
      mproc::Semaphore woke(0);
      for (int i = 0; i < 3; ++i) {
        children.start(mproc::get_context(method).Process(wait_for_ready, cond, ready, woke));
      }
      ASSERT_TRUE(eventually([&] { return cond.waiters_snapshot() == 3; }));
      {
        std::lock_guard guard(cond);
        ready.value() = 1;
        cond.notify(2);
      }
      EXPECT_TRUE(woke.acquire(true, 10s));
      EXPECT_TRUE(woke.acquire(true, 10s));
      EXPECT_FALSE(woke.acquire(true, 100ms)) << "notify(2) woke a third waiter";
      {
        std::lock_guard guard(cond);
        cond.notify_all();
      }
      EXPECT_TRUE(woke.acquire(true, 10s));
      children.expect_all_exit(0);
    }
  }
}

void wait_forever_on(mproc::Condition cond, mproc::Semaphore woke) {
  {
    std::lock_guard guard(cond);
    cond.wait();
  }
  woke.release();
  exit_with(true);
}

TEST(Condition, AKilledWaiterDoesNotTakeNotificationsFromTheLiving) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    Children children;
    mproc::Condition cond;
    mproc::Semaphore woke(0);
    // The victim waits first, so FIFO order would hand it the next notification.
    auto& victim = children.start(ctx.Process(wait_forever_on, cond, woke));
    ASSERT_TRUE(eventually([&] { return cond.waiters_snapshot() == 1; }));
    children.start(ctx.Process(wait_forever_on, cond, woke));
    children.start(ctx.Process(wait_forever_on, cond, woke));
    ASSERT_TRUE(eventually([&] { return cond.waiters_snapshot() == 3; }));
    victim.kill();
    victim.join();
    ASSERT_EQ(victim.exitcode(), -SIGKILL);
    {
      std::lock_guard guard(cond);
      cond.notify();  // must reach a live waiter, not the dead one
    }
    EXPECT_TRUE(woke.acquire(true, 10s)) << "the notification went to the dead waiter";
    EXPECT_FALSE(woke.acquire(true, 100ms)) << "notify() woke two";
    {
      std::lock_guard guard(cond);
      cond.notify_all();
    }
    EXPECT_TRUE(woke.acquire(true, 10s));
    EXPECT_TRUE(eventually([&] { return cond.waiters_snapshot() == 0; }))
        << "the dead waiter's slot was not freed";
    // The Condition keeps working.
    std::thread t([&] {
      std::lock_guard guard(cond);
      EXPECT_TRUE(cond.wait(10s));
    });
    ASSERT_TRUE(eventually([&] { return cond.waiters_snapshot() == 1; }));
    {
      std::lock_guard guard(cond);
      cond.notify();
    }
    t.join();
  }
}

// --- Event ---------------------------------------------------------------------------------------

TEST(Event, SetClearWaitAsInCPython) {
  mproc::Event ev;
  EXPECT_FALSE(ev.is_set());
  auto t0 = Clock::now();
  EXPECT_FALSE(ev.wait(100ms));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
  t0 = Clock::now();
  EXPECT_FALSE(ev.wait(-1s));
  EXPECT_LT(Clock::now() - t0, 50ms);
  ev.set();
  EXPECT_TRUE(ev.is_set());
  EXPECT_TRUE(ev.wait(0ms));
  EXPECT_TRUE(ev.wait());
  ev.set();  // idempotent
  ev.clear();
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(ev.wait(1ms));
  mproc::Event copy = ev;
  copy.set();
  EXPECT_TRUE(ev.is_set());
}

void wait_then_answer(mproc::Event ev, mproc::Event answer) {
  if (!ev.wait(20s)) exit_with(false);
  answer.set();
  exit_with(true);
}

TEST(Event, WorksAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    mproc::Event ev;
    mproc::Event answer;
    for (int i = 0; i < 2; ++i)
      children.start(mproc::get_context(method).Process(wait_then_answer, ev, answer));
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(answer.is_set());
    ev.set();
    EXPECT_TRUE(answer.wait(10s));
    children.expect_all_exit(0);
  }
}

// --- Barrier -------------------------------------------------------------------------------------

TEST(Barrier, ConstructionAndObservers) {
  expect_error<mproc::ValueError>([] { mproc::Barrier b(0); }, "parties must be > 0");
  EXPECT_THROW(mproc::Barrier(mproc::Barrier::kMaxParties + 1), mproc::ValueError);
  mproc::Barrier one(1);
  EXPECT_EQ(one.wait(), 0u);
  EXPECT_EQ(one.wait(), 0u);
  mproc::Barrier b(3);
  EXPECT_EQ(b.parties(), 3u);
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, ATimeoutBreaksItForEveryoneUntilReset) {
  mproc::Barrier barrier(3);
  std::atomic<bool> partner_broken{false};
  Clock::time_point partner_done{};
  std::thread partner([&] {
    try {
      barrier.wait(30s);
    } catch (const mproc::BrokenBarrierError&) {
      partner_broken = true;
    }
    partner_done = Clock::now();
  });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
  const auto t0 = Clock::now();
  EXPECT_THROW(barrier.wait(100ms), mproc::BrokenBarrierError);
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
  partner.join();
  EXPECT_TRUE(partner_broken) << "the timeout did not break the other waiter";
  EXPECT_LT(partner_done - t0, 5s) << "the other waiter was not broken by the timeout but by its own";
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_THROW(barrier.wait(), mproc::BrokenBarrierError) << "broken is sticky";
  EXPECT_THROW(barrier.wait(10s), mproc::BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  std::vector<std::size_t> indices(3);
  std::vector<std::thread> parties;
  for (int i = 0; i < 3; ++i)
    parties.emplace_back([&, i] { indices[static_cast<std::size_t>(i)] = barrier.wait(10s); });
  for (auto& t : parties) t.join();
  EXPECT_EQ(std::set<std::size_t>(indices.begin(), indices.end()), (std::set<std::size_t>{0, 1, 2}));
}

TEST(Barrier, DefaultTimeoutFromTheConstructor) {
  mproc::Barrier barrier(2, 50ms);
  const auto t0 = Clock::now();
  EXPECT_THROW(barrier.wait(), mproc::BrokenBarrierError);
  EXPECT_GE(Clock::now() - t0, 50ms);
  EXPECT_TRUE(barrier.broken());
  mproc::Barrier negative(2, -1s);
  const auto t1 = Clock::now();
  EXPECT_THROW(negative.wait(), mproc::BrokenBarrierError);
  EXPECT_LT(Clock::now() - t1, 1s);
}

TEST(Barrier, ResetWhileWaitingBreaksTheWaitersOnly) {
  mproc::Barrier barrier(3);
  std::atomic<int> broken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      try {
        barrier.wait(20s);
      } catch (const mproc::BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 2; }));
  const auto t0 = Clock::now();
  barrier.reset();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_LT(Clock::now() - t0, 5s) << "reset() did not wake the waiters";
  EXPECT_FALSE(barrier.broken()) << "reset() leaves the barrier usable";
}

void barrier_rounds(mproc::Barrier barrier, mproc::RawArray<int> seen, int rounds) {
  const std::size_t parties = barrier.parties();
  for (int r = 0; r < rounds; ++r) {
    const std::size_t index = barrier.wait(20s);
    std::atomic_ref<int>(seen[static_cast<std::size_t>(r) * parties + index]).fetch_add(1);
  }
  exit_with(true);
}

TEST(Barrier, EveryRoundHandsOutEachIndexOnceAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    constexpr int kRounds = 20;
    constexpr std::size_t kParties = 3;
    Children children;
    mproc::Barrier barrier(kParties);
    mproc::RawArray<int> seen(kRounds * kParties);
    for (std::size_t i = 0; i + 1 < kParties; ++i) {
      children.start(mproc::get_context(method).Process(barrier_rounds, barrier, seen, kRounds));
    }
    for (int r = 0; r < kRounds; ++r) {  // this process is the third party
      const std::size_t index = barrier.wait(20s);
      std::atomic_ref<int>(seen[static_cast<std::size_t>(r) * kParties + index]).fetch_add(1);
    }
    children.expect_all_exit(0);
    for (std::size_t i = 0; i < seen.size(); ++i)
      EXPECT_EQ(seen[i], 1) << "round " << i / kParties << " index " << i % kParties;
  }
}

void wait_expect_broken(mproc::Barrier barrier) {
  try {
    barrier.wait(20s);
  } catch (const mproc::BrokenBarrierError&) {
    exit_with(true);
  }
  exit_with(false);
}

TEST(Barrier, AbortBreaksEveryWaiterAcrossProcessesAndIsStickyUntilReset) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    mproc::Barrier barrier(3);
    for (int i = 0; i < 2; ++i)
      children.start(mproc::get_context(method).Process(wait_expect_broken, barrier));
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 2; }));
    barrier.abort();
    children.expect_all_exit(0, 5s);  // promptly: their own timeout is 20 s
    EXPECT_TRUE(barrier.broken());
    EXPECT_THROW(barrier.wait(1s), mproc::BrokenBarrierError);
    barrier.reset();
    EXPECT_FALSE(barrier.broken());
    Children more;
    for (int i = 0; i < 2; ++i)
      more.start(mproc::get_context(method).Process(barrier_rounds, barrier, mproc::RawArray<int>(3), 1));
    EXPECT_NO_THROW(barrier.wait(20s));
    more.expect_all_exit(0);
  }
}

void wait_on_barrier(mproc::Barrier barrier) {
  barrier.wait();
  exit_with(true);
}

TEST(Barrier, AMemberKilledWhileWaitingHangsNobody) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    Children victims;
    Children children;
    mproc::Barrier barrier(3);
    auto& victim = victims.start(ctx.Process(wait_on_barrier, barrier));
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
    victim.kill();
    victim.join();
    ASSERT_EQ(victim.exitcode(), -SIGKILL);
    // The dead party had arrived: the round passes with the two live ones.
    std::size_t other_index = 99;
    std::thread other([&] { other_index = barrier.wait(10s); });
    const std::size_t mine = barrier.wait(10s);
    other.join();
    EXPECT_EQ((std::set<std::size_t>{mine, other_index}), (std::set<std::size_t>{1, 2}));
    // Its slot keeps that round draining; the next round notices the death and proceeds.
    const auto t0 = Clock::now();
    children.start(ctx.Process(wait_on_barrier, barrier));
    std::thread again([&] { other_index = barrier.wait(10s); });
    EXPECT_NO_THROW(static_cast<void>(barrier.wait(10s)));
    again.join();
    EXPECT_LT(Clock::now() - t0, 8s);
    EXPECT_FALSE(barrier.broken());
    children.expect_all_exit(0);
  }
}

void exit_without_arriving() {}

TEST(Barrier, AMemberThatDiesBeforeArrivingLeavesTheOthersToTheirTimeout) {
  // Documented behaviour (as CPython's): a party that never arrives cannot be told from a slow one.
  Children children;
  auto& absent = children.start(mproc::get_context(mproc::StartMethod::fork).Process(exit_without_arriving));
  absent.join();
  mproc::Barrier barrier(2);
  const auto t0 = Clock::now();
  EXPECT_THROW(barrier.wait(100ms), mproc::BrokenBarrierError);
  EXPECT_GE(Clock::now() - t0, 100ms);
}

}  // namespace
