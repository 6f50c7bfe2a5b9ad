// Process behaviour that must hold under every start method: the exit-code matrix, arguments,
// names, parents, join with a timeout, signals, sentinels.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/process.hpp"

using namespace std::chrono_literals;

namespace {

class StartMethods : public testing::TestWithParam<mproc::StartMethod> {
 protected:
  mproc::Context ctx() const { return mproc::get_context(GetParam()); }
};

std::string method_name(const testing::TestParamInfo<mproc::StartMethod>& info) {
  return std::string(mproc::to_string(info.param));
}

void returns_normally() {}
void exits_with(int code) {
  throw mproc::SystemExit(code);
}
void calls_exit(int code) {
  std::exit(code);
}
void calls_underscore_exit(int code) {
  _exit(code);
}
void throws_runtime_error() {
  throw std::runtime_error("boom");
}
void throws_int() {
  throw 42;
}
void aborts() {
  std::abort();
}
void sleeps_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

struct Point {
  int x;
  double y;
  std::string label;
  std::vector<int> values;
  friend bool operator==(const Point&, const Point&) = default;
};

void check_arguments(std::string s, std::vector<int> v, Point p, std::map<std::string, int> m,
                     std::optional<int> none) {
  const bool ok = s == "hello" && v == std::vector<int>{1, 2, 3} && p == Point{7, 2.5, "seven", {4, 5}} &&
                  m == std::map<std::string, int>{{"a", 1}, {"b", 2}} && !none.has_value();
  throw mproc::SystemExit(ok ? 0 : 42);
}

void check_identity(std::string expected_name, int parent_pid, std::string parent_name) {
  auto parent = mproc::parent_process();
  const bool ok = mproc::current_process().name() == expected_name && parent.has_value() &&
                  parent->pid() == parent_pid && parent->name() == parent_name && parent->is_alive() &&
                  mproc::current_process().pid() == static_cast<int>(getpid()) &&
                  mproc::current_process().is_alive();
  throw mproc::SystemExit(ok ? 0 : 43);
}

// Starts a grandchild and checks its generated name ("Process-N:1").
void start_grandchild(int method) {
  const auto ctx = mproc::get_context(static_cast<mproc::StartMethod>(method));
  const std::string me = mproc::current_process().name();
  auto p = ctx.Process(check_identity, me + ":1", static_cast<int>(getpid()), me);
  p.start();
  p.join();
  throw mproc::SystemExit(*p.exitcode());
}

TEST_P(StartMethods, ExitCodeMatrix) {
  struct Case {
    mproc::Process process;
    int expected;
  };
  std::vector<Case> cases;
  cases.push_back({ctx().Process(returns_normally), 0});
  cases.push_back({ctx().Process(exits_with, 7), 7});
  cases.push_back({ctx().Process(exits_with, 0), 0});
  cases.push_back({ctx().Process(calls_exit, 3), 3});
  cases.push_back({ctx().Process(calls_underscore_exit, 5), 5});
  cases.push_back({ctx().Process(throws_runtime_error), 1});
  cases.push_back({ctx().Process(throws_int), 1});
  cases.push_back({ctx().Process(aborts), -SIGABRT});
  for (auto& c : cases) c.process.start();
  for (auto& c : cases) {
    c.process.join();
    EXPECT_EQ(c.process.exitcode(), c.expected) << c.process.repr();
    EXPECT_FALSE(c.process.is_alive());
    EXPECT_EQ(c.process.start_method(), GetParam());
  }
}

TEST_P(StartMethods, ArgumentsOfSeveralTypesArrive) {
  auto p = ctx().Process(check_arguments, std::string("hello"), std::vector<int>{1, 2, 3},
                         Point{7, 2.5, "seven", {4, 5}}, std::map<std::string, int>{{"a", 1}, {"b", 2}},
                         std::optional<int>());
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(StartMethods, CaptureLessLambdaTarget) {
  auto p = ctx().Process([](int a, int b) { throw mproc::SystemExit(a + b); }, 2, 3);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 5);
}

TEST_P(StartMethods, ChildSeesItsNameAndParent) {
  auto named = ctx().Process({.name = "worker-7"}, check_identity, std::string("worker-7"),
                             static_cast<int>(getpid()), std::string("MainProcess"));
  named.start();
  named.join();
  EXPECT_EQ(named.exitcode(), 0);

  auto unnamed = ctx().Process(check_identity, std::string("placeholder"), 0, std::string());
  const std::string generated = unnamed.name();
  EXPECT_EQ(generated.rfind("Process-", 0), 0u) << generated;
  auto p = ctx().Process(check_identity,
                         generated.substr(0, 8) + std::to_string(std::stoi(generated.substr(8)) + 1),
                         static_cast<int>(getpid()), std::string("MainProcess"));
  EXPECT_EQ(p.name(), generated.substr(0, 8) + std::to_string(std::stoi(generated.substr(8)) + 1));
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(StartMethods, GrandchildNamesFollowCPython) {
  auto p = ctx().Process(start_grandchild, static_cast<int>(GetParam()));
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(StartMethods, JoinWithTimeoutOnASleepingChild) {
  auto p = ctx().Process(sleeps_ms, 10'000);
  p.start();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(100ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.join(0ms));
  EXPECT_FALSE(p.join(-5ms));  // a negative timeout polls, as in CPython
  p.terminate();
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
  EXPECT_FALSE(p.is_alive());
  p.terminate();  // a no-op once ended
  p.kill();
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST_P(StartMethods, KillEndsTheChild) {
  auto p = ctx().Process(sleeps_ms, 10'000);
  p.start();
  p.kill();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_NE(p.repr().find("exitcode=-SIGKILL"), std::string::npos) << p.repr();
}

TEST_P(StartMethods, SentinelBecomesReadableWhenTheChildEnds) {
  auto p = ctx().Process(sleeps_ms, 50);
  p.start();
  pollfd fd{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(poll(&fd, 1, 0), 0) << "readable while the child still runs";
  ASSERT_EQ(poll(&fd, 1, 10'000), 1);
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(StartMethods, ActiveChildrenListsRunningChildrenAndReapsEndedOnes) {
  auto sleeper = ctx().Process(sleeps_ms, 10'000);
  auto quick = ctx().Process(returns_normally);
  sleeper.start();
  quick.start();
  while (quick.is_alive()) std::this_thread::sleep_for(1ms);
  auto children = mproc::active_children();
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children[0].pid(), sleeper.pid());
  sleeper.kill();
  sleeper.join();
  EXPECT_TRUE(mproc::active_children().empty());
}

TEST_P(StartMethods, ManyChildrenAtOnce) {
  std::vector<mproc::Process> processes;
  for (int i = 0; i < 16; ++i) processes.push_back(ctx().Process(exits_with, i));
  for (auto& p : processes) p.start();
  for (int i = 0; i < 16; ++i) {
    processes[i].join();
    EXPECT_EQ(processes[i].exitcode(), i);
  }
}

TEST_P(StartMethods, DaemonFlagIsInheritedAndRefusesChildren) {
  auto p = ctx().Process(
      {.daemon = true},
      [](int method) {
        const bool is_daemon = mproc::current_process().daemon();
        try {
          mproc::get_context(static_cast<mproc::StartMethod>(method)).Process(returns_normally).start();
        } catch (const mproc::ProcessError& e) {
          const bool message_ok =
              std::string(e.what()) == "daemonic processes are not allowed to have children";
          throw mproc::SystemExit(is_daemon && message_ok ? 0 : 2);
        }
        throw mproc::SystemExit(3);
      },
      static_cast<int>(GetParam()));
  EXPECT_TRUE(p.daemon());
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(All, StartMethods,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         method_name);

}  // namespace
