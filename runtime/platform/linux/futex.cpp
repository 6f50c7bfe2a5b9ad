// The shared futex wrapper: mproc's only futex(2) call site (see include/mproc/detail/futex.hpp).
#include "mproc/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace mproc::detail {
namespace {

// The operations carry no FUTEX_PRIVATE_FLAG on purpose: the words live in shared memory and the
// waker may be another process (futex.hpp explains it). FUTEX_WAIT_BITSET without
// FUTEX_CLOCK_REALTIME takes an absolute CLOCK_MONOTONIC deadline, so retrying after EINTR does not
// stretch the timeout, unlike FUTEX_WAIT's relative one. FUTEX_WAKE matches any bitset.
constexpr int kWaitOp = FUTEX_WAIT;
constexpr int kWaitUntilOp = FUTEX_WAIT_BITSET;
constexpr int kWakeOp = FUTEX_WAKE;

long futex(const std::atomic<std::uint32_t>& word, int op, std::uint32_t value, const timespec* timeout,
           std::uint32_t bitset) noexcept {
  return ::syscall(SYS_futex, static_cast<const void*>(&word), op, value, timeout, nullptr, bitset);
}

// A failed futex call that no correct program can cause. write(2) rather than stdio, and the
// strerror*_np tables rather than strerror(): this may run in a forked child of a threaded parent.
[[noreturn]] void die(const char* call, const std::atomic<std::uint32_t>& word, int errnum) noexcept {
  const char* name = ::strerrorname_np(errnum);
  const char* description = ::strerrordesc_np(errnum);
  std::array<char, 256> message{};
  const int length = std::snprintf(message.data(), message.size(),
                                   "mproc: %s on the futex word at %p failed with %s (%s); a futex word "
                                   "must be a mapped, 4-byte aligned std::atomic<uint32_t>. Aborting.\n",
                                   call, static_cast<const void*>(&word), name ? name : "an unknown errno",
                                   description ? description : "?");
  if (length > 0) {
    [[maybe_unused]] ssize_t ignored = ::write(
        STDERR_FILENO, message.data(), std::min(static_cast<std::size_t>(length), message.size() - 1));
  }
  std::abort();
}

// steady_clock is CLOCK_MONOTONIC in libstdc++ and libc++ on Linux, so its time since epoch is the
// kernel's monotonic time. A deadline before the clock's epoch becomes 0 (long past; a negative
// tv_sec would be EINVAL).
timespec to_monotonic_timespec(std::chrono::steady_clock::time_point deadline) noexcept {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch());
  if (since_epoch.count() <= 0) return timespec{0, 0};
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  return timespec{static_cast<time_t>(seconds.count()), static_cast<long>((since_epoch - seconds).count())};
}

}  // namespace

FutexWaitResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  for (;;) {
    if (futex(word, kWaitOp, expected, nullptr, 0) == 0) return FutexWaitResult::woken;
    switch (errno) {
      case EINTR:
        continue;  // the kernel compares the word again, so a change made by a signal handler is seen
      case EAGAIN:
        return FutexWaitResult::value_mismatch;
      default:
        die("futex(FUTEX_WAIT)", word, errno);
    }
  }
}

FutexWaitResult futex_wait_until(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                 std::chrono::steady_clock::time_point deadline) noexcept {
  const timespec until = to_monotonic_timespec(deadline);
  for (;;) {
    if (futex(word, kWaitUntilOp, expected, &until, FUTEX_BITSET_MATCH_ANY) == 0) {
      return FutexWaitResult::woken;
    }
    switch (errno) {
      case EINTR:
        continue;  // same absolute deadline: the retry only waits for the time that is left
      case EAGAIN:
        return FutexWaitResult::value_mismatch;
      case ETIMEDOUT:
        return FutexWaitResult::timed_out;
      default:
        die("futex(FUTEX_WAIT_BITSET)", word, errno);
    }
  }
}

FutexWaitResult futex_wait_for(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                               std::chrono::nanoseconds relative) noexcept {
  if (relative <= std::chrono::nanoseconds::zero()) {
    // Relaxed is enough since this is only the snapshot the kernel would have compared; the caller
    // re-checks its own condition with its own ordering.
    return word.load(std::memory_order_relaxed) == expected ? FutexWaitResult::timed_out
                                                            : FutexWaitResult::value_mismatch;
  }
  const auto now = std::chrono::steady_clock::now();
  if (relative >= std::chrono::steady_clock::time_point::max() - now) return futex_wait(word, expected);
  return futex_wait_until(word, expected, now + relative);
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  // FUTEX_WAKE with a count of 0 still wakes one waiter, so it must never reach the kernel.
  if (count <= 0) return 0;
  const long woken = futex(word, kWakeOp, static_cast<std::uint32_t>(count), nullptr, 0);
  if (woken < 0) die("futex(FUTEX_WAKE)", word, errno);
  return static_cast<int>(woken);
}

int futex_wake_all(const std::atomic<std::uint32_t>& word) noexcept {
  return futex_wake(word, INT_MAX);
}

}  // namespace mproc::detail
