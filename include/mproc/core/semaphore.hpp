// SemaphoreCore: a counting semaphore in one 32-bit word of shared memory, with an upper bound.
// The core of mproc::Semaphore and mproc::BoundedSemaphore.
//
// Algorithm: the count is the only state. acquire is a CAS loop that takes one unit when the
// count is positive; release is a CAS loop that adds one unit unless the count is at the bound,
// then wakes one waiter through a WaitWord (no system call when nobody is parked). A waiter spins,
// yields, then parks on the WaitWord, re-trying the CAS each time it looks (WaitWord's ready()).
//
// Invariants:
//   1. 0 <= value_ <= max_value_ at every moment: both bounds are checked inside the CAS that
//      changes the count, so concurrent releases cannot overshoot (CPython's BoundedSemaphore
//      checks before posting and can).
//   2. No lost wake-up: a release that finds a parked waiter wakes one; a woken waiter that loses
//      the unit to a spinning acquirer parks again, and the unit it lost was consumed, so the count
//      of units never exceeds the count of wake-ups owed (WaitWord invariants 1-5 for the rest).
//   3. No owner: a unit is not tied to the process that took it. A process that dies holding units
//      takes them with it (CPython's semaphores behave the same); see docs/synchronize.md.
//
// Memory ordering: everything a releaser did before release() is visible to the acquirer whose
// acquire takes that unit ([sync:semaphore.count]).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::core {

template <detail::FutexPolicy Futex = detail::SharedFutex>
class SemaphoreCore {
 public:
  /// POSIX's SEM_VALUE_MAX on Linux, CPython's bound for every SemLock.
  static constexpr std::uint32_t kValueMax = 2147483647;

  /// @pre initial <= max_value <= kValueMax (the handles check and throw).
  SemaphoreCore(std::uint32_t initial, std::uint32_t max_value) noexcept
      : value_(initial), max_value_(max_value) {}
  SemaphoreCore(const SemaphoreCore&) = delete;
  SemaphoreCore& operator=(const SemaphoreCore&) = delete;
  ~SemaphoreCore() = default;

  /// Takes a unit if one is free. @concurrent any; never blocks.
  [[nodiscard]] bool try_acquire() noexcept {
    // relaxed: only the CAS's first guess; the CAS re-reads the count atomically.
    std::uint32_t seen = value_.load(std::memory_order_relaxed);
    while (seen != 0) {
      // [sync:semaphore.count] acquire on success: pairs with the release CAS in release(), so the
      // releaser's writes are visible to whoever takes its unit.
      if (value_.compare_exchange_weak(seen, seen - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  /// Takes a unit, waiting until `deadline` (nullopt: no deadline). Returns whether it took one.
  /// @concurrent any; blocks (spin, yield, then futex sleep).
  bool acquire(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    if (try_acquire()) return true;
    auto take = [this] { return try_acquire(); };
    // Sleep in bounded slices even without a deadline: release() wakes one sleeper, and if that
    // one is killed before it takes the unit, the others must still see the unit (a slice later).
    for (;;) {
      auto slice_end = std::chrono::steady_clock::now() + kRecheckSlice;
      if (deadline && *deadline < slice_end) slice_end = *deadline;
      if (waiters_.wait_until(take, slice_end)) return true;
      if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
    }
  }

  /// How long a waiter sleeps before it looks at the count again on its own.
  static constexpr std::chrono::milliseconds kRecheckSlice{50};

  /// Adds a unit and wakes one waiter. Returns false, changing nothing, when the count is already
  /// at its bound. @concurrent any; never blocks.
  [[nodiscard]] bool release() noexcept {
    // relaxed: only the CAS's first guess; the CAS re-reads the count atomically.
    std::uint32_t seen = value_.load(std::memory_order_relaxed);
    do {
      if (seen >= max_value_) return false;
      // [sync:semaphore.count] release: publishes the releaser's writes to the acquire CAS in
      // try_acquire() that takes this unit.
    } while (
        !value_.compare_exchange_weak(seen, seen + 1, std::memory_order_release, std::memory_order_relaxed));
    waiters_.notify_one();
    return true;
  }

  /// The count now: a racy observation (CPython's get_value()). @concurrent any
  [[nodiscard]] std::uint32_t value_snapshot() const noexcept {
    // relaxed: stale as soon as it is read, and it orders nothing.
    return value_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] std::uint32_t max_value() const noexcept { return max_value_; }

  /// Waiters parked or about to park (a racy observer for tests).
  [[nodiscard]] std::uint32_t sleepers_snapshot() const noexcept { return waiters_.sleepers_snapshot(); }

 private:
  std::atomic<std::uint32_t> value_;
  std::uint32_t max_value_;  // written once by the constructor, before the block is shared
  WaitWord<Futex> waiters_;
};

static_assert(std::is_standard_layout_v<SemaphoreCore<>> && std::is_trivially_destructible_v<SemaphoreCore<>>,
              "SemaphoreCore lives in shared memory: standard layout, trivially destructible");
static_assert(sizeof(SemaphoreCore<>) == 16,
              "SemaphoreCore's layout is shared-memory ABI: {value, max, WaitWord}");

}  // namespace mproc::core
