// Helpers of the tests that make named segments (shared memory, named queues and connections):
// unique segment names that the leak check in test_main.cpp watches
// ("mproc-test-<pid>-<n>-<label>"), an RAII guard that unlinks them even when an assertion fails,
// a way to run a command and read its output, and byte helpers.
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "platform/linux/shm.hpp"

namespace mproc_shm_test {

/// "mproc-test-<pid>-<n>-<label>": unique in this process and across parallel test processes.
inline std::string unique_name(std::string_view label) {
  static std::atomic<int> counter{0};
  // relaxed is enough: the counter only needs distinct values, no ordering.
  const int n = counter.fetch_add(1, std::memory_order_relaxed);
  return "mproc-test-" + std::to_string(::getpid()) + "-" + std::to_string(n) + "-" + std::string(label);
}

/// A unique segment name, unlinked when the guard goes out of scope (a missing name is fine).
class ShmName {
 public:
  explicit ShmName(std::string_view label) : name_(unique_name(label)) {}
  ShmName(const ShmName&) = delete;
  ShmName& operator=(const ShmName&) = delete;
  ~ShmName() { (void)mproc::platform::unlink_named(name_); }
  [[nodiscard]] const std::string& str() const { return name_; }
  operator std::string_view() const { return name_; }  // NOLINT: implicit for convenience

 private:
  std::string name_;
};

/// Unlinks a name chosen elsewhere (a generated "psm_..." name) at scope exit.
class Unlinker {
 public:
  explicit Unlinker(std::string name) : name_(std::move(name)) {}
  Unlinker(const Unlinker&) = delete;
  Unlinker& operator=(const Unlinker&) = delete;
  ~Unlinker() { (void)mproc::platform::unlink_named(name_); }

 private:
  std::string name_;
};

/// The bytes of a string (payloads in the tests read better as text).
inline std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

/// Lower-case hex of some bytes, to compare layouts with what CPython prints.
inline std::string hex(std::span<const std::byte> data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (auto b : data) {
    const auto c = std::to_integer<unsigned>(b);
    out.push_back(kHex[c >> 4U]);
    out.push_back(kHex[c & 0xfU]);
  }
  return out;
}

/// Whether /dev/shm/<name> exists.
inline bool segment_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

struct CommandResult {
  int exit_code = -1;  ///< the exit status, or -1 if the command did not exit normally
  std::string output;  ///< stdout and stderr, interleaved
};

/// Runs a shell command, capturing stdout and stderr.
inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

}  // namespace mproc_shm_test
