// Run by process_test.cpp as a whole program, for behaviour that only shows at a process's exit
// or at its start. Each mode prints what the test checks. An atexit handler registered before
// mproc::init() runs after mproc's own exit handling (atexit runs handlers in reverse), so its
// "parent exit" line shows whether the children were joined before the program ended.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "mproc/process.hpp"

namespace {

void sleep_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

void slow_then_print(int ms, std::string text) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void throws_boom() {
  throw std::runtime_error("boom");
}

void print_parent_exit() {
  std::printf("parent exit\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::atexit(print_parent_exit);
  mproc::init(argc, argv);
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "daemon-at-exit") == 0) {
    // The daemon must be terminated at exit; the other child must be waited for.
    mproc::Process daemon({.daemon = true}, sleep_forever);
    mproc::Process worker(slow_then_print, 300, std::string("non-daemon done"));
    daemon.start();
    worker.start();
    std::printf("daemon pid %d\n", *daemon.pid());
    std::fflush(stdout);
    return 0;
  }
  if (std::strcmp(mode, "dropped-handle") == 0) {
    {
      mproc::Process p(slow_then_print, 300, std::string("dropped child done"));
      p.start();
    }  // the handle goes away while the child runs
    std::printf("handle dropped\n");
    std::fflush(stdout);
    return 0;
  }
  if (std::strcmp(mode, "threads-warning") == 0) {
    std::thread t([] { std::this_thread::sleep_for(std::chrono::milliseconds(500)); });
    for (int i = 0; i < 3; ++i) {
      mproc::Process p([] {});
      p.start();
      p.join();
    }
    t.join();
    return 0;
  }
  if (std::strcmp(mode, "throws") == 0) {
    mproc::Process p(throws_boom);
    p.start();
    p.join();
    std::printf("exitcode %d\n", *p.exitcode());
    return 0;
  }
  std::fprintf(stderr, "usage: %s daemon-at-exit|dropped-handle|threads-warning|throws\n", argv[0]);
  return 2;
}
