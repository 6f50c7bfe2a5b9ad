// Pool (issue 5): every API form, CPython's errors, ordering, and the failures where CPython
// hangs (a throwing task, a dying worker, a throwing initializer, terminate with work pending).
// Each test bounds its waits, so a regression fails instead of hanging the suite.
#include "mproc/pool.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"

// A worker that a task ends with std::exit() leaves the objects on its stack unfreed, which
// LeakSanitizer (make test-asan) reports as that child's leaks, turning its exit code 3 into 23.
// Leak checking stays on in the test process itself.
static const pid_t g_test_pid = getpid();
extern "C" __attribute__((visibility("default"))) int __lsan_is_turned_off() {
  return getpid() != g_test_pid ? 1 : 0;
}

namespace {

using namespace std::chrono_literals;

int square(int x) {
  return x * x;
}
int add(int a, int b) {
  return a + b;
}
std::string greet(std::string name) {
  return "hello " + name;
}
int get_pid(int) {
  return static_cast<int>(getpid());
}

std::size_t length_of(std::string s) {
  return s.size();
}
std::string big_string(std::size_t n) {
  return std::string(n, static_cast<char>('a' + n % 26));
}
long long sum_of(std::vector<int> v) {
  return std::accumulate(v.begin(), v.end(), 0LL);
}

int fail_on_three(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}

// Fails on odd items, the later ones after a delay: map must still report the first item's error.
int fail_on_odd(int x) {
  if (x % 2 == 0) return x;
  std::this_thread::sleep_for(std::chrono::milliseconds(x == 1 ? 200 : 0));
  throw std::domain_error("odd: " + std::to_string(x));
}

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// Kills its own worker when asked to: the pool must fail this task and keep working.
int die_on_negative(int x) {
  if (x == -9) ::kill(getpid(), SIGKILL);
  if (x == -1) std::exit(3);
  if (x == -2) std::abort();
  if (x == -3) throw mproc::SystemExit(4);
  return x;
}

void throwing_initializer() {
  throw std::runtime_error("no database");
}

std::atomic<int> g_initialized{0};
void counting_initializer() {
  g_initialized = 42;
}
int initialized_value(int) {
  return g_initialized.load();
}

// Fork workers are copies of this process: a pool started before these tests' work must not see
// later changes of the parent's memory, and every pool must be gone at the end of its test.
class PoolTest : public testing::Test {};

TEST_F(PoolTest, MapSquares) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3, 4, 5}), (std::vector<int>{1, 4, 9, 16, 25}));
  EXPECT_EQ(pool.map(square, {6, 7}), (std::vector<int>{36, 49}));
  EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
}

TEST_F(PoolTest, MapKeepsOrderOverManyChunks) {
  mproc::Pool pool(2);
  std::vector<int> items(10'000);
  std::iota(items.begin(), items.end(), 0);
  for (std::ptrdiff_t chunksize : {1, 7, 64, 100'000}) {
    const auto r = pool.map(square, items, chunksize);
    ASSERT_EQ(r.size(), items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
      ASSERT_EQ(r[i], square(items[i])) << "chunksize " << chunksize;
  }
}

TEST_F(PoolTest, StringsAndCaptureless) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.map(greet, std::vector<std::string>{"a", "b"}),
            (std::vector<std::string>{"hello a", "hello b"}));
  auto twice = [](int x) { return 2 * x; };
  EXPECT_EQ(pool.map(twice, std::vector<int>{1, 2}), (std::vector<int>{2, 4}));
  EXPECT_EQ(pool.apply([](int a, std::string b) { return b + std::to_string(a); }, 7, "x"), "x7");
}

TEST_F(PoolTest, StarmapApplyAndAsync) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}), (std::vector<int>{3, 7}));
  EXPECT_EQ(pool.starmap(add, std::vector<std::pair<int, int>>{{5, 6}}), (std::vector<int>{11}));
  EXPECT_EQ(pool.apply(add, 1, 2), 3);
  mproc::AsyncResult<int> ar = pool.apply_async(add, 20, 22);
  EXPECT_EQ(ar.get(5s), 42);
  EXPECT_TRUE(ar.ready());
  EXPECT_TRUE(ar.successful());
  EXPECT_EQ(ar.get(), 42);  // again: the same value
  auto all = pool.map_async(square, std::vector<int>{1, 2, 3});
  all.wait();
  EXPECT_EQ(all.get(), (std::vector<int>{1, 4, 9}));
  auto stars = pool.starmap_async(add, std::vector<std::tuple<int, int>>{{1, 1}});
  EXPECT_TRUE(stars.wait(5s));
  EXPECT_EQ(stars.get(), (std::vector<int>{2}));
}

TEST_F(PoolTest, ImapOrderedAndUnordered) {
  mproc::Pool pool(2);
  std::vector<int> items{50, 1, 1, 1};
  std::vector<int> ordered;
  for (int x : pool.imap(sleep_ms, items)) ordered.push_back(x);
  EXPECT_EQ(ordered, items);
  std::vector<int> unordered;
  for (int x : pool.imap_unordered(sleep_ms, items)) unordered.push_back(x);
  ASSERT_EQ(unordered.size(), items.size());
  EXPECT_NE(unordered.front(), 50) << "the slow item finished first although others were quicker";
  EXPECT_EQ(std::multiset<int>(unordered.begin(), unordered.end()),
            std::multiset<int>(items.begin(), items.end()));
  auto it = pool.imap(square, std::vector<int>{3, 4}, 2);
  EXPECT_EQ(it.next(5s), 9);
  EXPECT_EQ(it.next(), 16);
  EXPECT_EQ(it.next(), std::nullopt);
}

TEST_F(PoolTest, ImapTimeout) {
  mproc::Pool pool(1);
  auto it = pool.imap(sleep_ms, std::vector<int>{2000});
  EXPECT_THROW(it.next(10ms), mproc::TimeoutError);
  pool.terminate();
}

TEST_F(PoolTest, Callbacks) {
  mproc::Pool pool(2);
  std::atomic<int> got{0};
  std::atomic<bool> failed{false};
  std::string message;
  auto ar = pool.apply_async(add, std::tuple{2, 3}, [&](const int& r) { got = r; });
  EXPECT_EQ(ar.get(5s), 5);
  EXPECT_EQ(got.load(), 5) << "get() returned before the callback ran (CPython runs it first)";
  auto bad = pool.map_async(fail_on_three, std::vector<int>{1, 2, 3}, 1, nullptr, [&](const mproc::Error& e) {
    message = e.what();
    failed = true;
  });
  EXPECT_THROW(bad.get(5s), mproc::RemoteError);
  EXPECT_TRUE(failed.load());
  EXPECT_NE(message.find("three is not allowed"), std::string::npos) << message;
  std::vector<int> seen;
  std::atomic<bool> done{false};
  auto m = pool.map_async(square, std::vector<int>{2, 3}, std::nullopt, [&](const std::vector<int>& r) {
    seen = r;
    done = true;
  });
  m.wait();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(seen, (std::vector<int>{4, 9}));
}

TEST_F(PoolTest, RemoteErrorCarriesTypeMessageAndPlace) {
  mproc::Pool pool(2);
  try {
    pool.apply(fail_on_three, 3);
    FAIL() << "no error";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::invalid_argument");
    EXPECT_EQ(e.message(), "three is not allowed");
    EXPECT_NE(e.where().find("PoolWorker-"), std::string::npos) << e.where();
    EXPECT_NE(std::string(e.what()).find("std::invalid_argument: three is not allowed"), std::string::npos);
  }
  auto r = pool.apply_async(fail_on_three, 3);
  r.wait();
  EXPECT_FALSE(r.successful());
  // map throws the first failing item's error; the pool keeps working afterwards.
  EXPECT_THROW(pool.map(fail_on_three, std::vector<int>{1, 2, 3, 4}, 1), mproc::RemoteError);
  EXPECT_EQ(pool.apply(add, 1, 1), 2);
  try {
    pool.map(fail_on_odd, std::vector<int>{0, 1, 2, 3, 4, 5}, 1);
    ADD_FAILURE() << "no error";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.message(), "odd: 1") << "map reports the first failing item's error, not the first to fail";
    EXPECT_EQ(e.type_name(), "std::domain_error");
  }
}

TEST_F(PoolTest, CPythonErrors) {
  expect_error<mproc::ValueError>([] { mproc::Pool p(0); }, "Number of processes must be at least 1");
  expect_error<mproc::ValueError>([] { mproc::Pool p({.processes = 1, .maxtasksperchild = 0}); },
                                  "maxtasksperchild must be a positive int or None");
  mproc::Pool pool(1);
  expect_error<mproc::ValueError>([&] { pool.join(); }, "Pool is still running");
  expect_error<mproc::ValueError>([&] { (void)pool.imap(square, std::vector<int>{1}, 0); },
                                  "Chunksize must be 1+, not 0");
  auto slow = pool.apply_async(sleep_ms, 1000);
  EXPECT_THROW(slow.get(10ms), mproc::TimeoutError);
  expect_error<mproc::ValueError>([&] { (void)slow.successful(); }, "<mproc.pool.AsyncResult> not ready");
  pool.close();
  pool.close();  // idempotent
  expect_error<mproc::ValueError>([&] { pool.apply(add, 1, 2); }, "Pool not running");
  expect_error<mproc::ValueError>([&] { pool.map(square, std::vector<int>{1}); }, "Pool not running");
  pool.join();
  EXPECT_EQ(slow.get(), 1000) << "close + join finishes the submitted work";
}

TEST_F(PoolTest, WorkerDeathFailsItsTaskAndThePoolGoesOn) {
  mproc::Pool pool(2);
  const int before = pool.apply(get_pid, 0);
  for (int how : {-9, -1, -2, -3}) {
    auto r = pool.apply_async(die_on_negative, how);
    try {
      r.get(20s);
      ADD_FAILURE() << "no error for " << how;
    } catch (const mproc::WorkerDied& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("died while running this task"), std::string::npos) << what;
      const std::map<int, std::string> expected{
          {-9, "SIGKILL"}, {-1, "exited with code 3"}, {-2, "SIGABRT"}, {-3, "exited with code 4"}};
      EXPECT_NE(what.find(expected.at(how)), std::string::npos) << what;
    } catch (const mproc::TimeoutError&) {
      ADD_FAILURE() << "the task of a dead worker hung (" << how << ")";
    }
    EXPECT_EQ(pool.apply(add, 2, 2), 4) << "the pool goes on after " << how;
  }
  (void)before;
  std::uint64_t respawns = 0;
  for (const auto& s : pool.stats()) respawns += s.respawns;
  EXPECT_EQ(respawns, 4U);
  pool.close();
  pool.join();
}

TEST_F(PoolTest, KillDuringLongMapFailsOnlyThatChunk) {
  mproc::Pool pool(2);
  auto r = pool.map_async(sleep_ms, std::vector<int>{1500, 1500}, 1);
  std::this_thread::sleep_for(300ms);
  const auto stats = pool.stats();
  ASSERT_GT(stats[0].pid, 0);
  ::kill(stats[0].pid, SIGKILL);
  EXPECT_THROW(r.get(20s), mproc::WorkerDied);
  EXPECT_EQ(pool.apply(add, 1, 2), 3);
}

TEST_F(PoolTest, ThrowingInitializerBreaksThePool) {
  mproc::Pool pool({.processes = 2, .initializer = throwing_initializer});
  auto r = pool.apply_async(add, 1, 2);
  EXPECT_THROW(r.get(20s), mproc::BrokenPool);
  EXPECT_TRUE(mproc_test::eventually([&] {
    try {
      pool.apply_async(add, 1, 2);
      return false;
    } catch (const mproc::BrokenPool& e) {
      return std::string(e.what()).find("no database") != std::string::npos;
    }
  }));
}

TEST_F(PoolTest, InitializerRunsInEachWorker) {
  g_initialized = 0;
  mproc::Pool pool({.processes = 2, .initializer = counting_initializer});
  EXPECT_EQ(pool.map(initialized_value, std::vector<int>{0, 0, 0, 0}, 1), (std::vector<int>{42, 42, 42, 42}));
  EXPECT_EQ(g_initialized.load(), 0) << "the initializer ran in the parent";
}

TEST_F(PoolTest, MaxTasksPerChildReplacesWorkers) {
  mproc::Pool pool({.processes = 1, .maxtasksperchild = 1});
  std::set<int> pids;
  for (int i = 0; i < 3; ++i) pids.insert(pool.apply(get_pid, 0));
  EXPECT_EQ(pids.size(), 3U) << "maxtasksperchild=1: each task gets a new worker";
}

TEST_F(PoolTest, TerminateFailsPendingAndLeavesNoProcess) {
  std::vector<int> pids;
  mproc::AsyncResult<int> pending = [&] {
    mproc::Pool pool(2);
    auto r = pool.apply_async(sleep_ms, 10'000);
    EXPECT_TRUE(mproc_test::eventually([&] {
      const auto stats = pool.stats();
      return std::all_of(stats.begin(), stats.end(), [](const mproc::WorkerStats& s) { return s.pid != 0; });
    }));
    for (const auto& s : pool.stats()) pids.push_back(s.pid);
    return r;
  }();  // the destructor terminates
  EXPECT_THROW(pending.get(5s), mproc::ProcessError);
  for (int pid : pids) EXPECT_NE(::kill(pid, 0), 0) << "worker " << pid << " is still there";
}

TEST_F(PoolTest, IdleWorkersSteal) {
  mproc::Pool pool(2);
  pool.set_ring_override(0);  // every chunk into worker 0's ring
  const auto r = pool.map(sleep_ms, std::vector<int>(20, 20), 1);
  EXPECT_EQ(r.size(), 20U);
  const auto stats = pool.stats();
  EXPECT_GT(stats[1].stolen, 0U) << "worker 1 never stole from worker 0's ring";
  EXPECT_EQ(stats[1].stolen, stats[1].tasks) << "worker 1 had no ring of its own to run";
}

TEST_F(PoolTest, CentralQueueMode) {
  mproc::Pool pool({.processes = 2, .scheduling = mproc::Scheduling::central_queue});
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}, 1), (std::vector<int>{1, 4, 9}));
}

TEST_F(PoolTest, ManyPipelinedApplyAsync) {
  mproc::Pool pool(2);
  std::vector<mproc::AsyncResult<int>> results;
  for (int i = 0; i < 50'000; ++i) results.push_back(pool.apply_async(add, i, 1));
  long long sum = 0;
  for (auto& r : results) sum += r.get(30s);
  EXPECT_EQ(sum, 50'000LL * 49'999 / 2 + 50'000);
}

void nothing() {}

// Kills every worker at once while each runs a chunk: each chunk fails with its own worker's pid.
TEST_F(PoolTest, TwoWorkersDyingAtOnceFailTheirOwnChunks) {
  mproc::Pool pool(2);
  auto r0 = pool.apply_async(sleep_ms, 5000);
  auto r1 = pool.apply_async(sleep_ms, 5000);
  std::vector<int> pids;
  ASSERT_TRUE(mproc_test::eventually([&] {
    const auto stats = pool.stats();
    pids.clear();
    for (const auto& w : stats) pids.push_back(w.pid);
    return std::all_of(pids.begin(), pids.end(), [](int pid) { return pid != 0; });
  }));
  std::this_thread::sleep_for(100ms);  // both chunks taken
  for (int pid : pids) ::kill(pid, SIGKILL);
  std::set<std::string> named;
  for (auto* r : {&r0, &r1}) {
    try {
      r->get(20s);
      ADD_FAILURE() << "no error";
    } catch (const mproc::WorkerDied& e) {
      for (int pid : pids) {
        if (std::string(e.what()).find("(pid " + std::to_string(pid) + ")") != std::string::npos) {
          named.insert(std::to_string(pid));
        }
      }
    }
  }
  EXPECT_EQ(named.size(), 2U) << "each chunk names the worker that ran it";
  EXPECT_EQ(pool.apply(add, 1, 2), 3);
}

// Another thread starting processes reaps a dead worker before the pool sees it: the pool
// still finds its chunk, by pid.
TEST_F(PoolTest, WorkerDeathWhileOtherProcessesStart) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(sleep_ms, 5000);
  ASSERT_TRUE(mproc_test::eventually([&] { return pool.stats()[0].pid != 0; }));
  const int pid = pool.stats()[0].pid;
  std::atomic<bool> stop{false};
  std::thread starter([&] {
    while (!stop) {
      mproc::Process p(nothing);
      p.start();
      p.join();
      (void)mproc::active_children();
    }
  });
  std::this_thread::sleep_for(50ms);
  ::kill(pid, SIGKILL);
  EXPECT_THROW(r.get(20s), mproc::WorkerDied);
  stop = true;
  starter.join();
}

TEST_F(PoolTest, TerminateFromACallback) {
  mproc::Pool pool(2);
  auto r = pool.apply_async(add, std::tuple{1, 2}, [&](const int&) { pool.terminate(); });
  EXPECT_EQ(r.get(10s), 3);
  expect_error<mproc::ValueError>([&] { pool.apply(add, 1, 2); }, "Pool not running");
}

TEST_F(PoolTest, DestroyedInACallback) {
  auto pool = std::make_unique<mproc::Pool>(2);
  std::atomic<bool> destroyed{false};
  auto r = pool->apply_async(add, std::tuple{1, 2}, [&](const int&) {
    pool.reset();
    destroyed = true;
  });
  EXPECT_EQ(r.get(10s), 3);
  EXPECT_TRUE(destroyed.load());
}

TEST_F(PoolTest, JoinFromACallbackIsAnError) {
  mproc::Pool pool(1);
  std::string message;
  auto r = pool.apply_async(add, std::tuple{1, 2}, [&](const int&) {
    pool.close();
    try {
      pool.join();
    } catch (const mproc::ProcessError& e) {
      message = e.what();
    }
  });
  EXPECT_EQ(r.get(10s), 3);
  EXPECT_EQ(message, "join() cannot be called from a Pool callback: the thread that runs it must go on");
  pool.join();
}

// terminate() while another thread is still submitting a map: that map either throws "Pool not
// running" or gives a result that fails; nothing waits forever.
TEST_F(PoolTest, TerminateWhileAnotherThreadSubmits) {
  mproc::Pool pool(2);
  std::vector<int> items(200'000, 1);
  std::atomic<int> outcome{0};  // 1: threw at submission, 2: the result failed, 3: it succeeded
  std::thread submitter([&] {
    try {
      auto r = pool.map_async(sleep_ms, items, 1);
      try {
        r.get(20s);
        outcome = 3;
      } catch (const mproc::ProcessError&) {
        outcome = 2;
      }
    } catch (const mproc::ValueError& e) {
      EXPECT_EQ(std::string(e.what()), "Pool not running");
      outcome = 1;
    }
  });
  std::this_thread::sleep_for(20ms);
  pool.terminate();
  submitter.join();
  EXPECT_TRUE(outcome == 1 || outcome == 2) << outcome;
}

// Arguments and results larger than a ring record (about 1 MiB): arguments go through the spill
// area, results cross the result ring in parts; the spill area is given back afterwards.
TEST_F(PoolTest, LargeArgumentsAndResults) {
  mproc::Pool pool(2);
  const std::vector<std::string> items{std::string(3 << 20, 'x'), "small", std::string(5 << 20, 'y')};
  EXPECT_EQ(pool.map(length_of, items, 1), (std::vector<std::size_t>{3U << 20, 5, 5U << 20}));
  EXPECT_EQ(pool.map(length_of, items, 3), (std::vector<std::size_t>{3U << 20, 5, 5U << 20}))
      << "chunks are cut after an item takes them past 256 KiB: {3 MiB}, then {small, 5 MiB}";
  std::vector<int> numbers(4 << 20, 1);
  EXPECT_EQ(pool.apply(sum_of, numbers), 4LL << 20);
  const auto big = pool.map(big_string, std::vector<std::size_t>{7 << 20, 10, 3 << 20}, 1);
  ASSERT_EQ(big.size(), 3U);
  EXPECT_EQ(big[0], big_string(7 << 20));
  EXPECT_EQ(big[1], big_string(10));
  EXPECT_EQ(big[2], big_string(3 << 20));
  // One chunk whose results take 6 MiB.
  const auto all = pool.map(big_string, std::vector<std::size_t>{2 << 20, 2 << 20, 2 << 20}, 3);
  for (const auto& r : all) EXPECT_EQ(r, big_string(2 << 20));
  EXPECT_EQ(pool.spill_bytes(), 0U) << "the spill area was given back";
}

class PoolStartMethodTest : public testing::TestWithParam<mproc::StartMethod> {};

TEST_P(PoolStartMethodTest, EveryFormWorks) {
  g_initialized = 0;
  mproc::Pool pool({.processes = 2, .initializer = counting_initializer, .start_method = GetParam()});
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}, 1), (std::vector<int>{1, 4, 9}));
  EXPECT_EQ(pool.apply([](int a, std::string b) { return b + std::to_string(a); }, 7, "x"), "x7");
  EXPECT_EQ(pool.starmap(add, std::vector<std::pair<int, int>>{{1, 2}}), (std::vector<int>{3}));
  EXPECT_EQ(pool.map(initialized_value, std::vector<int>{0, 0}, 1), (std::vector<int>{42, 42}));
  EXPECT_THROW(pool.apply(fail_on_three, 3), mproc::RemoteError);
  EXPECT_THROW(pool.apply(die_on_negative, -9), mproc::WorkerDied);
  EXPECT_EQ(pool.apply(add, 2, 3), 5);
  EXPECT_EQ(pool.apply(length_of, std::string(2 << 20, 'z')), 2U << 20)
      << "the spill area reached this worker";
  EXPECT_EQ(pool.apply(big_string, std::size_t{3} << 20), big_string(3 << 20));
  pool.close();
  pool.join();
}

INSTANTIATE_TEST_SUITE_P(Methods, PoolStartMethodTest,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         [](const testing::TestParamInfo<mproc::StartMethod>& p) {
                           return std::string(mproc::to_string(p.param));
                         });

}  // namespace
