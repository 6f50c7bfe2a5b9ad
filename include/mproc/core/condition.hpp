// ConditionCore: the waiter queue of mproc::Condition, in shared memory: one slot per waiting
// thread, woken in arrival order, robust to waiters that die.
//
// Why slots, not counters: CPython's multiprocessing.Condition counts sleepers and hands out
// anonymous wake tokens (three semaphores), and notify() then blocks until the woken sleepers
// acknowledge. A waiter that dies never acknowledges (notify hangs, bpo-6721's family), and a
// waiter that times out can be counted by a notify() whose token another waiter then never gets.
// A slot per waiter makes each notification addressed: it goes to one named waiter, which either
// takes it or was provably gone (timed out or dead) before it was sent.
//
// Slot states and who moves them (L: the caller holds the Condition's lock):
//
//   free --enqueue (L)--> waiting --notify (L, CAS)--> signaled --dequeue (L)--> free
//                            |--waiter's timeout (CAS, no lock)--> cancelled --dequeue (L)--> free
//   waiting/signaled/cancelled --notify or enqueue (L), once Presence says the holder died--> free
//
// Invariants:
//   1. Every transition except the timeout's happens under the Condition's lock, which also
//      guards next_seq_, high_water_ and each slot's seq; the two transitions out of `waiting`
//      are CASes, so a notify and a timeout racing on one slot have exactly one winner.
//   2. notify(n) signals at most n slots, each `waiting` when signalled: a waiter enqueued before
//      the notify (enqueue and notify both hold the lock) that has neither timed out nor died.
//      It picks the lowest seq first (FIFO) and passes over dead holders without counting them.
//   3. A waiter whose timeout CAS fails was signalled first, and reports true: a notification is
//      either taken by the waiter it was sent to or never sent, so a timeout cannot swallow one
//      meant for another waiter.
//   4. A waiter holds its slot's Presence marker from enqueue to dequeue. The marker outlives the
//      holder's death in a state Presence::holder_died() reports (for mproc::Condition: a robust,
//      process-shared pthread mutex, which the kernel marks when its owner dies). Dead holders'
//      slots are freed by notify (when it meets them) and by enqueue (when the table is full).
//   5. queued_ counts slots in `waiting` or `cancelled`: written under the lock, read racily.
//
// Memory ordering: the Condition's lock orders everything; a woken waiter re-acquires it before
// returning. The slot state is read and CASed relaxed: WaitWord's seq_cst epoch/sleepers pair
// carries the signal to a parking waiter (its invariant 4 needs the state change sequenced before
// notify, in any order), and the winner of a signal/timeout race is decided by the CAS itself.
//
// Capacity: a slot is constructed when first needed, so unused capacity costs address space only.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>

#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::core {

/// What a ConditionCore needs to tell a live waiter from a dead one. Marker lives in shared memory
/// inside each slot; init() prepares it once, claim()/release() bracket a waiter's stay (called
/// by the waiter's thread), and holder_died() reports whether the claimer is gone (resetting the
/// marker to unclaimed when it says true). All calls happen under the Condition's lock.
template <class P>
concept PresencePolicy =
    std::is_standard_layout_v<typename P::Marker> && std::is_trivially_destructible_v<typename P::Marker> &&
    requires(typename P::Marker& m) {
      { P::init(m) } noexcept;
      { P::claim(m) } noexcept -> std::same_as<bool>;
      { P::release(m) } noexcept;
      { P::holder_died(m) } noexcept -> std::same_as<bool>;
    };

template <detail::FutexPolicy Futex, PresencePolicy Presence, std::size_t Capacity>
class ConditionCore {
 public:
  static constexpr std::uint32_t kNoSlot = 0xffffffffU;
  static constexpr std::size_t kCapacity = Capacity;
  static_assert(Capacity > 0 && Capacity < kNoSlot, "slot indices are 32-bit");

  // User-provided, so that value-initialisation does not zero the whole slot table.
  ConditionCore() noexcept : next_seq_(0), high_water_(0) {}

  /// high_water_ bounded by the capacity: the field lives in shared memory, and a corrupt or
  /// hostile peer must not make the slot loops run off the end of storage_.
  [[nodiscard]] std::uint32_t slots_in_use() const noexcept {
    return std::min<std::uint32_t>(high_water_, Capacity);
  }
  ConditionCore(const ConditionCore&) = delete;
  ConditionCore& operator=(const ConditionCore&) = delete;
  ~ConditionCore() = default;

  /// Takes a slot for the calling thread, in the `waiting` state, behind every current waiter.
  /// Returns kNoSlot when all Capacity slots are held by live waiters. @pre the lock is held.
  [[nodiscard]] std::uint32_t enqueue() noexcept {
    std::uint32_t chosen = kNoSlot;
    for (std::uint32_t i = 0; i < slots_in_use() && chosen == kNoSlot; ++i) {
      if (state_of(i) == kFree && Presence::claim(slot(i).presence)) chosen = i;
    }
    if (chosen == kNoSlot && high_water_ < Capacity) {
      Slot* fresh = ::new (static_cast<void*>(storage_ + std::size_t{high_water_} * sizeof(Slot))) Slot;
      Presence::init(fresh->presence);
      if (Presence::claim(fresh->presence)) chosen = high_water_;
      ++high_water_;
    }
    for (std::uint32_t i = 0; i < slots_in_use() && chosen == kNoSlot; ++i) {  // full: reclaim the dead
      if (state_of(i) != kFree && Presence::holder_died(slot(i).presence)) {
        free_dead(i);
        if (Presence::claim(slot(i).presence)) chosen = i;
      }
    }
    if (chosen == kNoSlot) return kNoSlot;
    Slot& s = slot(chosen);
    s.seq = next_seq_++;
    // relaxed: the lock orders this for notify(); the waiter itself reads it next.
    s.state.store(kWaiting, std::memory_order_relaxed);
    add_queued(1);
    return chosen;
  }

  /// Waits, without the lock, until the slot is signalled or the deadline passes. Returns true when
  /// signalled; on timeout, cancels the slot, and returns true anyway if a notify got there first
  /// (invariant 3). @concurrent the slot's owner only; blocks.
  bool wait(std::uint32_t index, std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    return park(index, deadline) || !cancel(index);
  }

  /// wait()'s first half: sleeps until the slot is signalled (true) or the deadline passes (false).
  /// @concurrent the slot's owner only; blocks.
  bool park(std::uint32_t index, std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    Slot& s = slot(index);
    auto signaled = [&s] {
      // relaxed: WaitWord's seq_cst epoch orders the signal before this read (see the file
      // comment); the lock, re-acquired next, orders the data.
      return s.state.load(std::memory_order_relaxed) != kWaiting;
    };
    if (!deadline) {
      s.wake.wait(signaled);
      return true;
    }
    return s.wake.wait_until(signaled, *deadline);
  }

  /// wait()'s second half, after park() timed out: withdraws the slot from notify()'s reach.
  /// Returns false if a notify signalled it first (the caller then owns that notification).
  /// @concurrent the slot's owner only; never blocks.
  bool cancel(std::uint32_t index) noexcept {
    std::uint32_t expected = kWaiting;
    // relaxed: the CAS only decides who wins the slot (invariant 1); it publishes nothing.
    return slot(index).state.compare_exchange_strong(expected, kCancelled, std::memory_order_relaxed,
                                                     std::memory_order_relaxed);
  }

  /// Gives the slot back after wait() returned. @pre the lock is held, by the slot's owner.
  void dequeue(std::uint32_t index) noexcept {
    Slot& s = slot(index);
    // relaxed: under the lock; only the owner moves a slot out of `cancelled` or `signaled`.
    if (s.state.load(std::memory_order_relaxed) == kCancelled) add_queued(-1);
    Presence::release(s.presence);
    // relaxed: under the lock, which orders it for the next enqueue().
    s.state.store(kFree, std::memory_order_relaxed);
  }

  /// Signals up to n of the longest-waiting live waiters; returns how many. @pre the lock is held.
  std::size_t notify(std::size_t n) noexcept {
    std::size_t signaled = 0;
    if (n == 0 || queued_snapshot() == 0) return 0;
    if (n >= queued_snapshot()) {  // everyone: one pass, in slot order
      for (std::uint32_t i = 0; i < slots_in_use() && signaled < n; ++i) {
        if (state_of(i) == kWaiting && signal(i)) ++signaled;
      }
      return signaled;
    }
    while (signaled < n && queued_snapshot() != 0) {
      std::uint32_t oldest = kNoSlot;
      for (std::uint32_t i = 0; i < slots_in_use(); ++i) {
        if (state_of(i) == kWaiting && (oldest == kNoSlot || slot(i).seq < slot(oldest).seq)) oldest = i;
      }
      if (oldest == kNoSlot) break;
      if (signal(oldest)) ++signaled;
    }
    return signaled;
  }

  /// Slots in `waiting` or `cancelled` (timed out, not yet returned), racy. @concurrent any
  [[nodiscard]] std::uint32_t waiters_snapshot() const noexcept { return queued_snapshot(); }

 private:
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kWaiting = 1;
  static constexpr std::uint32_t kSignaled = 2;
  static constexpr std::uint32_t kCancelled = 3;

  struct Slot {
    std::atomic<std::uint32_t> state{kFree};
    std::uint32_t reserved{0};
    std::uint64_t seq{0};  // arrival order, under the lock
    WaitWord<Futex> wake;
    typename Presence::Marker presence;  // prepared by Presence::init
  };

  Slot& slot(std::uint32_t i) noexcept {
    return *std::launder(reinterpret_cast<Slot*>(storage_ + std::size_t{i} * sizeof(Slot)));
  }

  std::uint32_t state_of(std::uint32_t i) noexcept {
    // relaxed: under the lock; a concurrent timeout CAS is the only unlocked writer, and every
    // decision based on `waiting` is re-made by a CAS.
    return slot(i).state.load(std::memory_order_relaxed);
  }

  std::uint32_t queued_snapshot() const noexcept {
    // relaxed: a count kept under the lock; unlocked readers only observe it.
    return queued_.load(std::memory_order_relaxed);
  }

  void add_queued(int delta) noexcept {
    // relaxed: written under the lock only (a load and a store, not an RMW, for that reason).
    queued_.store(static_cast<std::uint32_t>(static_cast<int>(queued_snapshot()) + delta),
                  std::memory_order_relaxed);
  }

  // Signals one waiting slot, or frees it if its holder died. Returns whether a waiter was woken.
  bool signal(std::uint32_t i) noexcept {
    Slot& s = slot(i);
    if (Presence::holder_died(s.presence)) {
      free_dead(i);
      return false;
    }
    std::uint32_t expected = kWaiting;
    // relaxed: decides the race with the waiter's timeout CAS (invariant 1); WaitWord's notify
    // below orders the change before the waiter's re-check.
    if (!s.state.compare_exchange_strong(expected, kSignaled, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
      return false;  // it timed out just now; it leaves queued_ when it dequeues
    }
    add_queued(-1);
    s.wake.notify_one();
    return true;
  }

  // The slot's holder died (Presence says so, and has reset the marker): free it.
  void free_dead(std::uint32_t i) noexcept {
    const std::uint32_t state = state_of(i);
    if (state == kWaiting || state == kCancelled) add_queued(-1);
    // relaxed: under the lock; the dead holder no longer reads it.
    slot(i).state.store(kFree, std::memory_order_relaxed);
  }

  std::uint64_t next_seq_;    // under the lock
  std::uint32_t high_water_;  // under the lock: slots [0, high_water_) are constructed
  std::atomic<std::uint32_t> queued_{0};
  alignas(Slot) std::byte storage_[Capacity * sizeof(Slot)];  // NOLINT(modernize-avoid-c-arrays)
};

}  // namespace mproc::core
