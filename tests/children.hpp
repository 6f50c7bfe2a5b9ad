// Test helpers for tests that start child processes: a scope that kills and joins them, and a
// bounded poll.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "mproc/process.hpp"

namespace mproc_test {

using namespace std::chrono_literals;

/// Children started through it are killed (if still running) and joined when it goes out of
/// scope, whether the test passed or an ASSERT returned early.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (auto& p : processes_) {
      if (p.is_alive()) p.kill();
      p.join();
    }
  }

  mproc::Process& start(mproc::Process p) {
    processes_.push_back(std::move(p));
    processes_.back().start();
    return processes_.back();
  }

  /// Joins every child (bounded) and expects each to have exited with `code`.
  void expect_all_exit(int code, std::chrono::seconds timeout = 20s) {
    for (auto& p : processes_) {
      EXPECT_TRUE(p.join(timeout)) << p.repr() << " did not end";
      EXPECT_EQ(p.exitcode(), code) << p.repr();
    }
  }

 private:
  std::deque<mproc::Process> processes_;  // a deque: references from start() stay valid
};

/// Polls pred until it holds or the timeout passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace mproc_test
