// RobustLockWord: a lock in one 64-bit word of shared memory that survives the death of its
// owner. The core of mproc::Lock, RLock and every Value's lock.
//
// The word holds the owner's identity, never a bare flag:
//
//   bits  0-30  owner pid (Linux pids are below 2^22)        0 and 0: unlocked
//   bit   31    kWaiters: someone sleeps (or may sleep) on the futex
//   bits 32-63  owner stamp (low bits of its start time): tells a dead owner from a newcomer
//               that reused its pid
//
// The futex is the word's low half (little-endian: the first four bytes), which is where the
// pid and the waiters bit live, so a sleeper is woken by any change of owner.
//
// Algorithm (after Drepper, "Futexes Are Tricky", mutex 3, with the owner in the word):
//   lock:   1. CAS 0 -> self. Done (no system call) unless the lock is held.
//           2. Retry step 1 a few times, yielding the core between tries.
//           3. Set kWaiters (CAS), then futex-wait on the low half for at most one liveness slice.
//           4. After each slice, ask whether the owner still runs. If not, CAS its word to
//              self | kWaiters: the lock is ours, and the caller learns the owner died.
//           5. A lock taken after sleeping is taken as self | kWaiters: other sleepers may exist.
//   unlock: exchange with 0; if kWaiters was set, wake one sleeper.
// Any process may unlock (CPython's Lock allows release by another process); RLock adds the
// owner check on top.
//
// Memory ordering: everything an owner did before unlock() is visible to the next owner after
// its lock() returns ([sync:lock.handoff]).
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <new>
#include <optional>
#include <thread>

#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/liveness.hpp"

namespace mproc::core {

/// What a blocking acquisition ended with.
enum class LockResult {
  acquired,    ///< the lock is held by the caller
  owner_died,  ///< the lock is held by the caller; its previous owner died holding it
  timed_out,   ///< the lock is not held
};

template <detail::FutexPolicy Futex = detail::SharedFutex, class Liveness = detail::ProcessLiveness>
class RobustLockWord {
 public:
  static constexpr std::uint64_t kWaiters = std::uint64_t{1} << 31;
  static constexpr std::uint64_t kPidMask = kWaiters - 1;
  /// How long a waiter sleeps before it checks that the owner still runs.
  static constexpr std::chrono::milliseconds kLivenessSlice{10};
  /// Tries (each followed by a yield) before sleeping. Few, on purpose: measured on the 2-core
  /// machine with 4 processes contending (docs/benchmarks.md), 4 yielding tries gave about 1.9e8
  /// locked increments/s; 4, 16 and 128 pause-instruction spins gave about 1e8, 6e7 and 4e7
  /// (spinners take the line from the owner and the core from the process they wait for), and no
  /// spin at all about 5e6 (every release then wakes a sleeper).
  static constexpr int kSpinIterations = 4;

  /// One attempt, never blocks. @concurrent any
  [[nodiscard]] bool try_lock(std::uint64_t self) noexcept {
    std::uint64_t expected = 0;
    // [sync:lock.handoff] acquire on success: pairs with the release exchange in unlock().
    return word_.compare_exchange_strong(expected, self, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }

  /// Blocks until the lock is held or the deadline passes (nullopt: no deadline).
  /// @concurrent any
  LockResult lock(std::uint64_t self,
                  std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    for (int i = 0; i < kSpinIterations; ++i) {
      // relaxed: only a hint of whether to try the CAS, which orders what matters.
      if (word_.load(std::memory_order_relaxed) == 0 && try_lock(self)) return LockResult::acquired;
      // Yield, not pause: with more processes than cores the owner may be waiting for this very
      // core, and a pause loop only burns the time it needs (measured: 2.1 ms against 4.2 ms for
      // seed 001's 4 x 100k increments on 2 cores). With a core to spare, yield returns at once.
      std::this_thread::yield();
    }
    for (;;) {
      // relaxed: the value only chooses the next CAS; each CAS re-reads it atomically.
      std::uint64_t seen = word_.load(std::memory_order_relaxed);
      if (seen == 0) {
        // [sync:lock.handoff] acquire on success: pairs with the release exchange in unlock().
        if (word_.compare_exchange_weak(seen, self | kWaiters, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          return LockResult::acquired;
        }
        continue;
      }
      if ((seen & kWaiters) == 0) {
        // relaxed: announcing a sleeper publishes no data; unlock() reads the bit in its exchange.
        if (!word_.compare_exchange_weak(seen, seen | kWaiters, std::memory_order_relaxed)) continue;
        seen |= kWaiters;
      }
      auto slice_end = std::chrono::steady_clock::now() + kLivenessSlice;
      if (deadline && *deadline < slice_end) slice_end = *deadline;
      const auto woke = Futex::wait_until(low_half(), static_cast<std::uint32_t>(seen), slice_end);
      if (woke != detail::FutexWaitResult::timed_out) continue;
      if (!Liveness::alive(seen & ~kWaiters)) {
        // [sync:lock.handoff] acquire on success: the dead owner released nothing; what it wrote
        // before dying is as visible as it will ever be.
        if (word_.compare_exchange_strong(seen, self | kWaiters, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
          return LockResult::owner_died;
        }
        continue;
      }
      if (deadline && std::chrono::steady_clock::now() >= *deadline) {
        return try_lock(self) ? LockResult::acquired : LockResult::timed_out;
      }
    }
  }

  /// Releases the lock, whoever holds it; false if it was not locked. @concurrent any
  bool unlock() noexcept {
    // [sync:lock.handoff] release: publishes the critical section to the next owner's acquire.
    const std::uint64_t old = word_.exchange(0, std::memory_order_release);
    if (old == 0) return false;
    if ((old & kWaiters) != 0) Futex::wake(low_half(), 1);
    return true;
  }

  /// The owner's identity (0 when unlocked): a racy snapshot. @concurrent any
  [[nodiscard]] std::uint64_t owner_snapshot() const noexcept {
    // relaxed: stale as soon as it is read; callers only compare it with their own identity,
    // which no other process can write.
    return word_.load(std::memory_order_relaxed) & ~kWaiters;
  }

 private:
  // The futex is the low 32 bits of the word. std::atomic<uint64_t> is a plain 8-byte object
  // (lock-free, no padding), and on a little-endian machine its first four bytes are the low
  // half; the kernel compares those four bytes as FUTEX_WAIT's value.
  std::atomic<std::uint32_t>& low_half() noexcept {
    return *std::launder(reinterpret_cast<std::atomic<std::uint32_t>*>(&word_));
  }

  std::atomic<std::uint64_t> word_{0};

  static_assert(std::endian::native == std::endian::little, "the futex is the lock word's low half");
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free && sizeof(std::atomic<std::uint64_t>) == 8,
                "the lock word is shared between processes: it must be a plain lock-free 8-byte atomic");
};

}  // namespace mproc::core
