// Every misuse CPython reports (often with a bare assert) is a typed mproc error here, with a
// message that says what happened.
#include <poll.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "expect_error.hpp"
#include "mproc/process.hpp"

using namespace std::chrono_literals;

namespace {

void returns_normally() {}
void sleeps_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

TEST(ProcessErrors, StartingTwice) {
  mproc::Process p(returns_normally);
  p.start();
  expect_error<mproc::ProcessError>([&] { p.start(); }, "cannot start a process twice");
  p.join();
  expect_error<mproc::ProcessError>([&] { p.start(); }, "cannot start a process twice");
}

TEST(ProcessErrors, JoiningBeforeStart) {
  mproc::Process p(returns_normally);
  expect_error<mproc::ProcessError>([&] { p.join(); }, "can only join a started process");
  expect_error<mproc::ProcessError>([&] { (void)p.join(10ms); }, "can only join a started process");
}

TEST(ProcessErrors, SignalsBeforeStart) {
  mproc::Process p(returns_normally);
  expect_error<mproc::ProcessError>([&] { p.terminate(); },
                                    "cannot terminate a process that has not been started");
  expect_error<mproc::ProcessError>([&] { p.kill(); }, "cannot kill a process that has not been started");
  expect_error<mproc::ProcessError>([&] { (void)p.sentinel(); }, "process not started");
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_EQ(p.pid(), std::nullopt);
}

TEST(ProcessErrors, ClosingARunningProcess) {
  mproc::Process p(sleeps_ms, 10'000);
  p.start();
  expect_error<mproc::ProcessError>(
      [&] { p.close(); },
      "Cannot close a process while it is still running. You should first call join() or terminate().");
  p.kill();
  p.join();
  p.close();
  p.close();  // idempotent
}

TEST(ProcessErrors, EveryAccessorButNameAfterClose) {
  mproc::Process p({.name = "closed-one"}, returns_normally);
  p.start();
  p.join();
  p.close();
  const std::string closed = "process object is closed";
  expect_error<mproc::ProcessError>([&] { p.start(); }, closed);
  expect_error<mproc::ProcessError>([&] { p.join(); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.is_alive(); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.exitcode(); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.pid(); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.sentinel(); }, closed);
  expect_error<mproc::ProcessError>([&] { p.terminate(); }, closed);
  expect_error<mproc::ProcessError>([&] { p.kill(); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.daemon(); }, closed);
  expect_error<mproc::ProcessError>([&] { p.set_daemon(true); }, closed);
  expect_error<mproc::ProcessError>([&] { (void)p.start_method(); }, closed);
  EXPECT_EQ(p.name(), "closed-one");
  EXPECT_EQ(p.repr(), "<Process name='closed-one' closed>");
}

TEST(ProcessErrors, CloseBeforeStartIsAllowed) {
  mproc::Process p(returns_normally);
  p.close();
  expect_error<mproc::ProcessError>([&] { p.start(); }, "process object is closed");
}

TEST(ProcessErrors, SettingDaemonAfterStart) {
  mproc::Process p(returns_normally);
  p.set_daemon(false);
  p.start();
  expect_error<mproc::ProcessError>([&] { p.set_daemon(true); }, "process has already started");
  p.join();
}

TEST(ProcessErrors, TheCurrentProcessCannotBeJoined) {
  expect_error<mproc::ProcessError>([] { mproc::current_process().join(); }, "can only join a child process");
  EXPECT_TRUE(mproc::current_process().is_alive());
  EXPECT_EQ(mproc::current_process().name(), "MainProcess");
  EXPECT_FALSE(mproc::parent_process().has_value());
}

TEST(ProcessErrors, SetStartMethodTwiceWithoutForce) {
  mproc::set_start_method(mproc::StartMethod::spawn, /*force=*/true);
  expect_error<mproc::ProcessError>([] { mproc::set_start_method(mproc::StartMethod::fork); },
                                    "context has already been set");
  mproc::set_start_method(mproc::StartMethod::forkserver, /*force=*/true);
  EXPECT_EQ(mproc::get_start_method(), mproc::StartMethod::forkserver);
  EXPECT_EQ(mproc::get_all_start_methods().front(), mproc::StartMethod::forkserver);
  EXPECT_EQ(mproc::get_context().start_method(), mproc::StartMethod::forkserver);
  mproc::set_start_method(mproc::StartMethod::fork, /*force=*/true);
}

TEST(ProcessErrors, TheDefaultIsFixedOnceUsed) {
  // get_start_method() fixes the default, as in CPython; querying a Process does not.
  mproc::Process p(returns_normally);
  (void)p.start_method();
  EXPECT_EQ(mproc::get_start_method_if_set(), std::nullopt);
  (void)mproc::get_start_method();
  ASSERT_TRUE(mproc::get_start_method_if_set().has_value());
  expect_error<mproc::ProcessError>([] { mproc::set_start_method(mproc::StartMethod::spawn); },
                                    "context has already been set");
}

TEST(ProcessErrors, UnknownStartMethodName) {
  expect_error<mproc::ValueError>([] { (void)mproc::parse_start_method("bogus"); },
                                  "cannot find context for 'bogus'");
  EXPECT_EQ(mproc::parse_start_method("forkserver"), mproc::StartMethod::forkserver);
}

TEST(ProcessErrors, CapturingLambdaNeedsFork) {
  int captured = 4;
  auto by_fork =
      mproc::get_context(mproc::StartMethod::fork).Process([captured] { throw mproc::SystemExit(captured); });
  by_fork.start();
  by_fork.join();
  EXPECT_EQ(by_fork.exitcode(), 4);

  for (auto method : {mproc::StartMethod::spawn, mproc::StartMethod::forkserver}) {
    auto p = mproc::get_context(method).Process([captured] { throw mproc::SystemExit(captured); });
    try {
      p.start();
      ADD_FAILURE() << "a capturing lambda started under " << mproc::to_string(method);
    } catch (const mproc::ProcessError& e) {
      EXPECT_NE(std::string(e.what()).find("capturing lambda"), std::string::npos) << e.what();
    }
    EXPECT_EQ(p.pid(), std::nullopt);
  }
}

struct Pro : mproc::Process {
  explicit Pro(std::string n) : Process({.name = std::move(n)}) {}
  void run() override { throw mproc::SystemExit(name() == "p1" ? 9 : 8); }
};

TEST(ProcessErrors, SubclassWorksUnderForkAndIsRefusedUnderSpawn) {
  mproc::set_start_method(mproc::StartMethod::fork, /*force=*/true);
  Pro p("p1");
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 9);

  mproc::set_start_method(mproc::StartMethod::spawn, /*force=*/true);
  Pro q("p2");
  try {
    q.start();
    ADD_FAILURE() << "a subclass started under spawn";
  } catch (const mproc::ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("Pro"), std::string::npos) << e.what();
  }
  mproc::set_start_method(mproc::StartMethod::fork, /*force=*/true);
}

TEST(ProcessErrors, ASubclassMovedIntoAPlainProcessIsRefused) {
  std::vector<mproc::Process> processes;
  processes.push_back(Pro("p1"));  // slices: Pro::run() is lost
  try {
    processes[0].start();
    ADD_FAILURE() << "a sliced subclass started (it would have run the base run())";
  } catch (const mproc::ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("moved out of a"), std::string::npos) << e.what();
  }
  Pro moved(Pro("p1"));  // subclass to subclass is fine
  moved.start();
  moved.join();
  EXPECT_EQ(moved.exitcode(), 9);
}

void check_literal(std::string text) {
  throw mproc::SystemExit(text == "hello" ? 0 : 1);
}

TEST(ProcessErrors, StringLiteralArgumentsBecomeStrings) {
  for (auto method : {mproc::StartMethod::fork, mproc::StartMethod::spawn}) {
    auto p = mproc::get_context(method).Process(check_literal, "hello");
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
  }
}

TEST(ProcessErrors, CpuCountIsPositive) {
  EXPECT_GE(mproc::cpu_count(), 1);
}

void watch_parent(int) {
  auto parent = mproc::parent_process();
  if (!parent) throw mproc::SystemExit(2);
  const bool alive = parent->is_alive() && !parent->join(std::chrono::milliseconds(20));
  pollfd fd{parent->sentinel(), POLLIN, 0};
  const bool quiet = poll(&fd, 1, 0) == 0;
  throw mproc::SystemExit(alive && quiet ? 0 : 3);
}

TEST(ProcessErrors, ParentProcessIsWatchable) {
  for (auto method : {mproc::StartMethod::fork, mproc::StartMethod::spawn, mproc::StartMethod::forkserver}) {
    auto p = mproc::get_context(method).Process(watch_parent, 0);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0) << mproc::to_string(method);
  }
}

TEST(ProcessErrors, MovedFromProcess) {
  mproc::Process a(returns_normally);
  mproc::Process b(std::move(a));
  expect_error<mproc::ProcessError>([&] { a.start(); },
                                    "use of a moved-from Process");  // NOLINT(bugprone-use-after-move)
  b.start();
  b.join();
  EXPECT_EQ(b.exitcode(), 0);
}

}  // namespace
