// BarrierCore: CPython's threading.Barrier state machine in shared memory, robust to parties that
// die inside it. The core of mproc::Barrier.
//
// The state is one 64-bit word, {phase, count, generation}, and one identity slot per party:
//
//   bits  0-1   phase: filling (parties arrive), draining (the round passed; parties are
//               leaving), resetting (reset() broke the round; parties are leaving), broken
//   bits  2-31  count: parties inside wait() (arrived and not yet left)
//   bits 32-63  generation: rounds that passed (mod 2^32)
//
// Transitions are CPython's (Lib/threading.py, Barrier), made under a small internal robust lock
// (RobustLockWord): arrive (index = count, count + 1, and the last arrival turns the phase to
// draining and bumps the generation), leave (count - 1; the last to leave a draining or resetting
// round turns it back to filling), break (phase = broken: abort() or a timeout), reset. Waiting is
// outside the lock, on a WaitWord. Parties arriving while a round drains wait for it, as in
// CPython, so a round's outcome cannot be overwritten before each of its parties has read it.
//
// Invariants:
//   1. Outside the internal lock, slot i holds the identity of the party that arrived i-th in the
//      current round and has not left, or 0; count equals the number of non-zero slots, and in the
//      filling phase the non-zero slots are exactly [0, count).
//   2. The generation changes only when a round passes, and no round can pass while a party of the
//      previous round is still inside (draining blocks arrivals). So a waiter that arrived in
//      generation g passed iff it sees a generation other than g when it leaves; it failed
//      otherwise (broken, or reset while it waited).
//   3. Every critical section writes slots first and the word last, in one store. A process that
//      dies inside one leaves either the old word or the new one; the next locker learns it from
//      the lock (owner_died) and repairs: it recomputes count from the slots, clears slots a dying
//      arrival wrote past count, and wakes everyone (the dead holder may not have).
//   4. A party killed inside wait() never leaves. If the round passes anyway (the others arrive),
//      its slot keeps the round draining; parties that arrive next wait in slices of
//      kLivenessSlice and, after each, leave on behalf of every member whose process has died
//      (Liveness::alive). Nobody hangs on a dead party; a party that dies before arriving is
//      simply missing, and the others wait for it until their timeout, as in CPython.
//   5. A waiter for a round re-checks the word at least every kRecheckSlice even when nobody wakes
//      it, so a process killed between its state change and its wake call delays the others by at
//      most that slice.
//
// Memory ordering: everything a party did before wait() is visible to every party after its
// wait() returns: arrivals and leavings all pass through the internal lock, whose acquire/release
// chain ([sync:lock.handoff]) orders them; [sync:barrier.state] orders the word for the lock-free
// readers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>

#include "mproc/core/robust_lock.hpp"
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/liveness.hpp"

namespace mproc::core {

template <detail::FutexPolicy Futex = detail::SharedFutex, class Liveness = detail::ProcessLiveness>
class BarrierCore {
 public:
  enum class Phase : std::uint32_t { filling = 0, draining = 1, resetting = 2, broken = 3 };

  /// The count field's capacity.
  static constexpr std::uint32_t kMaxParties = (std::uint32_t{1} << 30) - 1;
  /// How long an arrival blocked by a draining round waits before checking for dead members.
  static constexpr std::chrono::milliseconds kLivenessSlice{10};
  /// The longest a waiter sleeps without re-checking the word (invariant 5).
  static constexpr std::chrono::seconds kRecheckSlice{1};

  /// Bytes a barrier for `parties` occupies: the core, then one identity slot per party.
  static constexpr std::size_t bytes_for(std::uint32_t parties) noexcept {
    return sizeof(BarrierCore) + std::size_t{parties} * sizeof(std::uint64_t);
  }

  /// Constructs a barrier and its identity slots. @pre *this is placed in memory that holds at
  /// least bytes_for(parties) bytes (the slots follow it), and 1 <= parties <= kMaxParties.
  /// default_timeout_ns < 0 means no default timeout.
  BarrierCore(std::uint32_t parties, std::int64_t default_timeout_ns) noexcept
      : parties_(parties), default_timeout_ns_(default_timeout_ns) {
    std::uninitialized_value_construct_n(reinterpret_cast<std::uint64_t*>(this + 1), parties);
  }
  BarrierCore(const BarrierCore&) = delete;
  BarrierCore& operator=(const BarrierCore&) = delete;
  ~BarrierCore() = default;

  /// Waits for the round to pass. Returns this party's arrival index (0 .. parties-1; the last to
  /// arrive gets parties-1), or nullopt when the barrier is or becomes broken: abort(), reset()
  /// while waiting, or the deadline (which breaks the barrier for everyone, as in CPython).
  /// `self` identifies the caller's process (Liveness::self()); it must not be 0.
  /// @concurrent any; blocks.
  ///
  /// `slot_limit` is how many identity slots the caller's mapping really holds (the handle
  /// validated it against its block): parties_ lives in shared memory, where a hostile or broken
  /// process could rewrite it, so every loop and index is bounded by the smaller of the two,
  /// read once per call. Threads sharing trusted memory leave it at the maximum.
  std::optional<std::uint32_t> wait(std::uint64_t self,
                                    std::optional<std::chrono::steady_clock::time_point> deadline,
                                    std::uint32_t slot_limit = kMaxParties) noexcept {
    const std::uint32_t parties = slot_count(slot_limit);
    lock(self, parties);
    State s = load_locked();
    // CPython's _enter: a round that is still draining or resetting must empty first.
    while (s.phase == Phase::draining || s.phase == Phase::resetting) {
      lock_.unlock();
      auto slice_end = std::chrono::steady_clock::now() + kLivenessSlice;
      if (deadline && *deadline < slice_end) slice_end = *deadline;
      const bool moved = changed_.wait_until(
          [this] {
            const Phase p = unpack(load_ordered()).phase;
            return p == Phase::filling || p == Phase::broken;
          },
          slice_end);
      lock(self, parties);
      if (!moved) reap_dead_members(self, parties);
      s = load_locked();
      if ((s.phase == Phase::draining || s.phase == Phase::resetting) && deadline &&
          std::chrono::steady_clock::now() >= *deadline) {
        break_locked(s);  // a timeout breaks the barrier wherever it happens (CPython ignores it here)
        lock_.unlock();
        changed_.notify_all();
        return std::nullopt;
      }
    }
    if (s.phase == Phase::broken) {
      lock_.unlock();
      return std::nullopt;
    }

    const std::uint32_t index = s.count;
    const std::uint32_t generation = s.generation;
    if (index >= parties) {  // a corrupt count (a hostile or broken peer): break, never index past
      store_locked({Phase::broken, s.count, s.generation});
      lock_.unlock();
      return std::nullopt;
    }
    slots()[index] = self;  // invariant 3: slot first, then the word
    if (index + 1 == parties) {
      store_locked({Phase::draining, index + 1, generation + 1});  // the round passes
      leave_locked(index);
      lock_.unlock();
      changed_.notify_all();
      return index;
    }
    store_locked({Phase::filling, index + 1, generation});
    lock_.unlock();

    auto released = [this, generation] {
      const State now = unpack(load_ordered());
      return now.generation != generation || now.phase != Phase::filling;
    };
    for (;;) {  // invariant 5: re-check at least every kRecheckSlice
      auto slice_end = std::chrono::steady_clock::now() + kRecheckSlice;
      if (deadline && *deadline < slice_end) slice_end = *deadline;
      if (changed_.wait_until(released, slice_end)) break;
      if (deadline && std::chrono::steady_clock::now() >= *deadline) break;
    }

    lock(self, parties);
    s = load_locked();
    const bool passed = s.generation != generation;  // invariant 2
    bool wake = false;
    if (!passed && s.phase == Phase::filling) wake = break_locked(s);  // our timeout breaks the round
    wake = leave_locked(index) || wake;
    lock_.unlock();
    if (wake) changed_.notify_all();
    return passed ? std::optional<std::uint32_t>(index) : std::nullopt;
  }

  /// Breaks the barrier: every waiter and every later wait() fails until reset().
  /// @concurrent any; never blocks for long (the internal lock's critical sections are short).
  void abort(std::uint64_t self, std::uint32_t slot_limit = kMaxParties) noexcept {
    lock(self, slot_count(slot_limit));
    State s = load_locked();
    const bool wake = break_locked(s);
    lock_.unlock();
    if (wake) changed_.notify_all();
  }

  /// Returns the barrier to its initial state. Parties waiting now fail (BrokenBarrierError);
  /// parties arriving while they leave wait for them, as in CPython. @concurrent any
  void reset(std::uint64_t self, std::uint32_t slot_limit = kMaxParties) noexcept {
    lock(self, slot_count(slot_limit));
    State s = load_locked();
    if (s.count > 0) {
      if (s.phase == Phase::filling || s.phase == Phase::broken) s.phase = Phase::resetting;
    } else {
      s.phase = Phase::filling;
    }
    store_locked(s);
    lock_.unlock();
    changed_.notify_all();
  }

  /// Whether the barrier is broken now (racy). @concurrent any
  [[nodiscard]] bool broken_snapshot() const noexcept {
    return unpack(load_snapshot()).phase == Phase::broken;
  }

  /// Parties waiting in the filling round now (CPython's n_waiting; racy). @concurrent any
  [[nodiscard]] std::uint32_t n_waiting_snapshot() const noexcept {
    const State s = unpack(load_snapshot());
    return s.phase == Phase::filling ? s.count : 0;
  }

  /// The party count as stored in shared memory (handles validate it once, when they attach).
  [[nodiscard]] std::uint32_t parties() const noexcept { return parties_; }
  [[nodiscard]] std::int64_t default_timeout_ns() const noexcept { return default_timeout_ns_; }

 private:
  struct State {
    Phase phase;
    std::uint32_t count;
    std::uint32_t generation;
  };

  static State unpack(std::uint64_t word) noexcept {
    return {static_cast<Phase>(word & 3), static_cast<std::uint32_t>((word >> 2) & kMaxParties),
            static_cast<std::uint32_t>(word >> 32)};
  }
  static std::uint64_t pack(State s) noexcept {
    return static_cast<std::uint64_t>(s.phase) | (std::uint64_t{s.count} << 2) |
           (std::uint64_t{s.generation} << 32);
  }

  // The identity slots follow the core (the constructor constructs them).
  std::uint64_t* slots() noexcept { return std::launder(reinterpret_cast<std::uint64_t*>(this + 1)); }

  // The slots this call may touch: parties_ (shared, read once) bounded by the caller's limit.
  [[nodiscard]] std::uint32_t slot_count(std::uint32_t slot_limit) const noexcept {
    const std::uint32_t stored = parties_;
    return stored < slot_limit ? stored : slot_limit;
  }

  void lock(std::uint64_t self, std::uint32_t parties) noexcept {
    if (lock_.lock(self, std::nullopt) == LockResult::owner_died) repair_locked(parties);
  }

  State load_locked() const noexcept {
    // relaxed: read under the internal lock, whose acquire ([sync:lock.handoff]) ordered every
    // store to the word (all stores are made under it).
    return unpack(word_.load(std::memory_order_relaxed));
  }

  std::uint64_t load_ordered() const noexcept {
    // [sync:barrier.state] acquire: pairs with the release store in store_locked(), so a waiter
    // that sees the round pass also sees what the parties did before arriving.
    return word_.load(std::memory_order_acquire);
  }

  std::uint64_t load_snapshot() const noexcept {
    // relaxed: an observation for n_waiting/broken, stale as soon as it is read; orders nothing.
    return word_.load(std::memory_order_relaxed);
  }

  void store_locked(State s) noexcept {
    // [sync:barrier.state] release: publishes the slots and the caller's writes to the acquire
    // load in load_ordered() (waiters outside the lock).
    word_.store(pack(s), std::memory_order_release);
  }

  // Returns whether waiters must be woken (the phase changed).
  bool break_locked(State s) noexcept {
    if (s.phase == Phase::broken) return false;
    s.phase = Phase::broken;
    store_locked(s);
    return true;
  }

  // CPython's _exit: the party in slot `index` leaves. Returns whether waiters must be woken.
  bool leave_locked(std::uint32_t index) noexcept {
    slots()[index] = 0;  // invariant 3: slot first, then the word
    State s = load_locked();
    s.count -= 1;
    const bool emptied = s.count == 0 && (s.phase == Phase::draining || s.phase == Phase::resetting);
    if (emptied) s.phase = Phase::filling;
    store_locked(s);
    return emptied;
  }

  // Invariant 4: leave on behalf of members whose process has died.
  void reap_dead_members(std::uint64_t self, std::uint32_t parties) noexcept {
    bool wake = false;
    for (std::uint32_t i = 0; i < parties; ++i) {
      const std::uint64_t member = slots()[i];
      if (member != 0 && member != self && !Liveness::alive(member)) wake = leave_locked(i) || wake;
    }
    if (wake) changed_.notify_all();
  }

  // Invariant 3: the previous holder of the internal lock died inside a critical section.
  void repair_locked(std::uint32_t parties) noexcept {
    State s = load_locked();
    if (s.phase == Phase::filling) {
      for (std::uint32_t i = s.count; i < parties; ++i) slots()[i] = 0;
    } else {
      std::uint32_t present = 0;
      for (std::uint32_t i = 0; i < parties; ++i) present += slots()[i] != 0 ? 1 : 0;
      s.count = present;
      if (present == 0 && (s.phase == Phase::draining || s.phase == Phase::resetting))
        s.phase = Phase::filling;
      store_locked(s);
    }
    changed_.notify_all();
  }

  RobustLockWord<Futex, Liveness> lock_;  // guards the slots and every store to word_
  std::atomic<std::uint64_t> word_{0};    // {phase, count, generation}; read lock-free by waiters
  WaitWord<Futex> changed_;               // notified when the phase or generation changes
  std::uint32_t parties_;                 // immutable
  std::int64_t default_timeout_ns_;       // immutable; < 0: none
};

static_assert(std::is_standard_layout_v<BarrierCore<>> && std::is_trivially_destructible_v<BarrierCore<>>,
              "BarrierCore lives in shared memory: standard layout, trivially destructible");
static_assert(sizeof(BarrierCore<>) % alignof(std::uint64_t) == 0,
              "the identity slots follow the core: its size must keep them 8-byte aligned");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the barrier word is shared between processes: it must be lock-free");

}  // namespace mproc::core
