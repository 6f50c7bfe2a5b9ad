// EventCore: a flag that processes wait for (the core of mproc::Event).
//
// One 32-bit word: bit 0 is the flag; bits 1-31 count the set() calls that changed it (mod 2^31).
// A waiter returns when the flag is set or the count moved since it started waiting, so a set()
// that is followed at once by clear() still releases everyone who was waiting when it happened
// (threading.Event's rule; see docs/synchronize.md for multiprocessing.Event's difference).
//
// Invariants:
//   1. The word changes only by set() (0 -> 1 with count + 1, in one CAS) and clear() (1 -> 0).
//   2. A waiter that started at word w0 returns true iff it sees bit 0 set, or a count other than
//      w0's: either way a set() happened after it started (or before, with the flag still up).
//   3. The count wraps after 2^31 set() calls; a waiter that sleeps through exactly a multiple of
//      2^31 set/clear pairs would miss them (as WaitWord's invariant 6): accepted.
//
// Memory ordering: everything done before set() is visible after a wait() that returns true or an
// is_set() that returns true ([sync:event.flag]).
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
class EventCore {
 public:
  static constexpr std::uint32_t kSetBit = 1;
  static constexpr std::uint32_t kCountStep = 2;

  constexpr EventCore() noexcept = default;
  EventCore(const EventCore&) = delete;
  EventCore& operator=(const EventCore&) = delete;
  ~EventCore() = default;

  /// Sets the flag and wakes every waiter; does nothing (no wake) if it is already set.
  /// @concurrent any; never blocks.
  void set() noexcept {
    // relaxed: only the CAS's first guess; the CAS re-reads the word atomically.
    std::uint32_t seen = word_.load(std::memory_order_relaxed);
    do {
      if ((seen & kSetBit) != 0) return;
      // [sync:event.flag] release: publishes the setter's writes to the acquire loads in is_set()
      // and in wait_until()'s ready(); failure is relaxed since it only refreshes the guess.
    } while (!word_.compare_exchange_weak(seen, (seen | kSetBit) + kCountStep, std::memory_order_release,
                                          std::memory_order_relaxed));
    waiters_.notify_all();
  }

  /// Lowers the flag. @concurrent any; never blocks.
  void clear() noexcept {
    // relaxed: clearing publishes nothing; an RMW keeps the set() count intact.
    word_.fetch_and(~kSetBit, std::memory_order_relaxed);
  }

  /// @concurrent any
  [[nodiscard]] bool is_set() const noexcept {
    // [sync:event.flag] acquire: pairs with the release CAS in set().
    return (word_.load(std::memory_order_acquire) & kSetBit) != 0;
  }

  /// Returns true once the flag is set (or was set since the call began), false at the deadline.
  /// @concurrent any; blocks (spin, yield, then futex sleep).
  bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    // [sync:event.flag] acquire: pairs with the release CAS in set().
    const std::uint32_t start = word_.load(std::memory_order_acquire);
    if ((start & kSetBit) != 0) return true;
    auto fired = [this, start] {
      // [sync:event.flag] acquire: pairs with the release CAS in set().
      const std::uint32_t now = word_.load(std::memory_order_acquire);
      return (now & kSetBit) != 0 || (now >> 1) != (start >> 1);
    };
    if (!deadline) {
      waiters_.wait(fired);
      return true;
    }
    return waiters_.wait_until(fired, *deadline);
  }

  /// Waiters parked or about to park (a racy observer for tests).
  [[nodiscard]] std::uint32_t sleepers_snapshot() const noexcept { return waiters_.sleepers_snapshot(); }

 private:
  std::atomic<std::uint32_t> word_{0};
  WaitWord<Futex> waiters_;
};

static_assert(std::is_standard_layout_v<EventCore<>> && std::is_trivially_destructible_v<EventCore<>>,
              "EventCore lives in shared memory: standard layout, trivially destructible");
static_assert(sizeof(EventCore<>) == 12, "EventCore's layout is shared-memory ABI: {word, WaitWord}");

}  // namespace mproc::core
