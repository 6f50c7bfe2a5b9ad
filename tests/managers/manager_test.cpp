// Manager (issue 7): list, dict and Namespace proxies from several processes under every start
// method, the errors' kinds, shutdown, a client that dies mid-session, and seed 001's example.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/managers.hpp"
#include "mproc/process.hpp"

namespace {

using namespace std::chrono_literals;

void append_name(mproc::ListProxy<std::string> shared_list) {
  shared_list.append(mproc::current_process().name());
}

void count_words(mproc::DictProxy<std::string, int> counts, std::vector<std::string> words) {
  for (const auto& w : words) counts.set(w, counts.get(w, 0) + 1);
}

void fill_namespace(mproc::NamespaceProxy ns) {
  ns.set("x", 42);
  ns.set("name", std::string("child"));
}

class ManagerTest : public testing::TestWithParam<mproc::StartMethod> {};

// Seed 001: four workers append their names to one manager.list().
TEST_P(ManagerTest, SeedOnesFourWorkers) {
  mproc::Manager manager({.start_method = GetParam()});
  auto shared_list = manager.list<std::string>();
  mproc_test::Children children;
  std::vector<std::string> expected;
  for (int i = 0; i < 4; ++i) {
    auto& p = children.start(mproc::get_context(GetParam()).Process(append_name, shared_list));
    expected.push_back(p.name());
  }
  children.expect_all_exit(0);
  auto names = shared_list.to_vector();
  std::sort(names.begin(), names.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected);
}

TEST_P(ManagerTest, DictAndNamespaceFromChildren) {
  mproc::Manager manager({.start_method = GetParam()});
  auto counts = manager.dict<std::string, int>();
  auto ns = manager.Namespace();
  mproc_test::Children children;
  children.start(
      mproc::get_context(GetParam()).Process(count_words, counts, std::vector<std::string>{"a", "b", "a"}));
  children.start(mproc::get_context(GetParam()).Process(fill_namespace, ns));
  children.expect_all_exit(0);
  EXPECT_EQ(counts.get("a"), 2);
  EXPECT_EQ(counts.get("b"), 1);
  EXPECT_EQ(counts.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ns.get<int>("x"), 42);
  EXPECT_EQ(ns.get<std::string>("name"), "child");
}

INSTANTIATE_TEST_SUITE_P(Methods, ManagerTest,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         [](const testing::TestParamInfo<mproc::StartMethod>& p) {
                           return std::string(mproc::to_string(p.param));
                         });

TEST(Manager, ListSemanticsAndErrors) {
  mproc::Manager manager;
  auto l = manager.list<int>({1, 2, 3});
  EXPECT_EQ(l.size(), 3U);
  EXPECT_EQ(l[0], 1);
  EXPECT_EQ(l[-1], 3);
  l.set(1, 20);
  EXPECT_EQ(l.to_vector(), (std::vector<int>{1, 20, 3}));
  EXPECT_EQ(l.pop(), 3);
  EXPECT_EQ(l.pop(0), 1);
  expect_error<mproc::IndexError>([&] { (void)l[5]; }, "list index out of range");
  expect_error<mproc::IndexError>([&] { l.set(-3, 0); }, "list assignment index out of range");
  l.clear();
  expect_error<mproc::IndexError>([&] { (void)l.pop(); }, "pop from empty list");
}

TEST(Manager, DictAndNamespaceErrors) {
  mproc::Manager manager;
  auto d = manager.dict<std::string, double>();
  d.set("pi", 3.14);
  d.set("e", 2.71);
  d.set("pi", 3.1416);  // replaces, keeps its place
  EXPECT_EQ(d.keys(), (std::vector<std::string>{"pi", "e"}));
  EXPECT_EQ(d.values(), (std::vector<double>{3.1416, 2.71}));
  EXPECT_TRUE(d.contains("e"));
  d.erase("pi");
  EXPECT_EQ(d.size(), 1U);
  EXPECT_THROW((void)d.get("pi"), mproc::KeyError);
  EXPECT_THROW(d.erase("pi"), mproc::KeyError);
  EXPECT_EQ(d.get("pi", 1.0), 1.0);
  auto ns = manager.Namespace();
  expect_error<mproc::AttributeError>([&] { (void)ns.get<int>("missing"); },
                                      "'Namespace' object has no attribute 'missing'");
  ns.set("v", std::string("text"));
  EXPECT_THROW((void)ns.get<std::vector<int>>("v"), mproc::DecodeError) << "stored as another type";
}

TEST(Manager, ShutdownAndAfter) {
  auto manager = std::make_unique<mproc::Manager>();
  auto l = manager->list<int>();
  l.append(1);
  manager->shutdown();
  manager->shutdown();  // idempotent
  EXPECT_THROW((void)manager->list<int>(), mproc::ProcessError);
  EXPECT_THROW(l.append(2), mproc::ProcessError) << "a proxy of a stopped manager";
}

void die_mid_session(mproc::ListProxy<int> l) {
  l.append(1);
  ::kill(getpid(), SIGKILL);
}

TEST(Manager, AClientThatDiesDoesNotStopTheServer) {
  mproc::Manager manager;
  auto l = manager.list<int>();
  mproc_test::Children children;
  auto& p = children.start(mproc::Process(die_mid_session, l));
  ASSERT_TRUE(p.join(20s));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  l.append(2);
  EXPECT_EQ(l.to_vector(), (std::vector<int>{1, 2}));
}

void use_shared(mproc::Queue<int> q, mproc::Lock lock, mproc::Value<int> counter, mproc::Event done) {
  for (int i = 0; i < 100; ++i) {
    std::lock_guard guard(lock);
    counter.value() += 1;
  }
  q.put(7);
  done.set();
}

TEST(Manager, QueuesLocksAndValuesFromChildren) {
  mproc::Manager manager;
  auto q = manager.Queue<int>();
  auto lock = manager.Lock();
  auto counter = manager.Value<int>(0);
  auto done = manager.Event();
  auto arr = manager.Array<double>({1.0, 2.0});
  auto sem = manager.Semaphore(2);
  auto barrier = manager.Barrier(1);
  mproc_test::Children children;
  children.start(mproc::Process(use_shared, q, lock, counter, done));
  children.start(mproc::Process(use_shared, q, lock, counter, done));
  children.expect_all_exit(0);
  EXPECT_EQ(counter.value(), 200);
  EXPECT_EQ(q.get(5s), 7);
  EXPECT_EQ(q.get(5s), 7);
  EXPECT_TRUE(done.is_set());
  EXPECT_EQ(arr[1], 2.0);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_EQ(barrier.wait(), 0U);
  manager.shutdown();
  expect_error<mproc::ProcessError>([&] { (void)manager.Lock(); }, "the manager has shut down");
}

}  // namespace
