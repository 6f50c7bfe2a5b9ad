// RobustLockWord: a lock in one 64-bit word of shared memory that survives the death of its
// owner. The core of mproc::Lock, RLock and every Value's lock.
//
// The word holds the owner's identity, never a bare flag:
//
//   bits  0-31  owner pid (Linux pids are below 2^22)        0 and 0: unlocked
//   bits 32-63  owner stamp (low bits of its start time): tells a dead owner from a newcomer
//               that reused its pid
//
// The futex is the word's low half (little-endian: the first four bytes), where the pid lives,
// so a sleeper is woken by any change of owner. Sleepers are counted apart, in sleepers_.
//
// Algorithm (Drepper's "Futexes Are Tricky" mutex, with the owner in the word and the waiters
// flag moved out of it so that unlock needs no read-modify-write):
//   lock:   1. CAS 0 -> self. Done (no system call) unless the lock is held.
//           2. Retry step 1 a few times, yielding the core between tries.
//           3. Count itself in sleepers_ (L1), run the heavy barrier (L2: membarrier), then
//              loop: read the word (L3); if free, CAS it to self; else futex-wait on the low
//              half (L4) for at most one liveness slice.
//           4. After each slice, ask whether the owner still runs. If not, CAS its word to
//              self: the lock is ours, and the caller learns the owner died.
//           5. Uncount itself once it holds the lock or gives up.
//   unlock: store 0 (U1), light barrier (U2: a compiler barrier in a registered process), read
//           sleepers_ (U3); if nonzero, wake one sleeper (U4).
// Any process may unlock (CPython's Lock allows release by another process); RLock adds the
// owner check on top.
//
// Why no sleeper is lost ([sync:lock.sleepers]): L1 -> L2 -> L3 and U1 -> U2 -> U3 are the two
// halves of a Dekker pattern, ordered as WaitWord's (wait_word.hpp, invariants 3-5): either U1 is
// visible to L3 (or to the kernel's compare in L4, which reads the word again) and the sleeper
// does not sleep on the old owner, or U3 sees the count from L1 and U4 looks further. U4 keeps
// unlocks off the wake system call while the sleepers are not yet in the kernel or a woken one
// has not yet run; wake_one() says why that loses nothing ([sync:lock.parked], [sync:lock.waking]).
//
// What the release store gives up: unlock() reads the word, then stores 0. Two processes that
// release one lock at the same moment can both succeed where an exchange would have told one of
// them "not locked"; releasing a lock one does not hold is a race in the caller either way (the
// exchange could release a third process's fresh acquisition just the same), and CPython's own
// check (sem_getvalue, then sem_post) is as racy. Measured in docs/benchmarks.md (issue 3,
// session 8): the exchange was a fifth of an uncontended acquire+release.
//
// Kills (none hangs anyone; every futex wait is bounded by a 10 ms liveness slice):
//   * the owner, holding the lock: a sleeper's slice runs out, the owner is found dead, the lock
//     taken over (step 4);
//   * a releaser between U1 and U4, or inside wake_one() holding the token: a sleeper waits out
//     one slice, then frees the token and wakes the next;
//   * a sleeper, on its way in or inside the futex call: its counts stay behind, so every later
//     unlock would pay a read-modify-write, or a FUTEX_WAKE that finds nobody, for the lock's
//     lifetime. Sleepers record themselves in four slots, and a wake that finds nobody, or a
//     slice that runs out, takes back the counts of recorded sleepers whose process is dead;
//   * a sleeper after its wake, before it handed the token back: one slice, as above.
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
#include "mproc/detail/barrier.hpp"
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
  /// How long a waiter sleeps before it checks that the owner still runs.
  static constexpr std::chrono::milliseconds kLivenessSlice{10};
  /// Tries (each followed by a yield) before sleeping. Measured on the 2-core machine with 4
  /// processes contending (docs/benchmarks.md, issue 3): yields, not pauses (4, 16 and 128
  /// pause-instruction spins gave about 1e8, 6e7 and 4e7 locked increments/s against 1.9e8 for 4
  /// yields: spinners take the line from the owner and the core from the process they wait for);
  /// no tries at all gave 5e6 (every release then wakes a sleeper). 16, not 4, since a sleep
  /// costs a membarrier (9 us here): the Value's own RLock slept 135 times per 400,000 locked
  /// increments with 4 tries and 5 with 16; 64 was no better.
  static constexpr int kSpinIterations = 16;

  /// One attempt, never blocks. `self` is the caller's identity; its low 32 bits (the futex
  /// value sleepers compare) must be nonzero, as a pid is. @concurrent any
  [[nodiscard]] bool try_lock(std::uint64_t self) noexcept {
    std::uint64_t expected = 0;
    // [sync:lock.handoff] acquire on success: pairs with the release store in unlock().
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
      if (deadline && std::chrono::steady_clock::now() >= *deadline) {
        return try_lock(self) ? LockResult::acquired : LockResult::timed_out;
      }
      // Yield, not pause: with more processes than cores the owner may be waiting for this very
      // core, and a pause loop only burns the time it needs (measured: 2.1 ms against 4.2 ms for
      // seed 001's 4 x 100k increments on 2 cores). With a core to spare, yield returns at once.
      std::this_thread::yield();
    }
    const CountedSleeper counted(sleepers_);  // L1, L2 [sync:lock.sleepers]
    SleeperSlot slot(*this, Liveness::self());
    for (;;) {
      // relaxed: the value only chooses the next CAS (which orders what matters) or the futex's
      // expected value (which the kernel compares again).
      std::uint64_t seen = word_.load(std::memory_order_relaxed);  // L3
      if (seen == 0) {
        if (try_lock(self)) return LockResult::acquired;
        continue;
      }
      auto slice_end = std::chrono::steady_clock::now() + kLivenessSlice;
      if (deadline && *deadline < slice_end) slice_end = *deadline;
      // [sync:lock.parked] seq_cst RMW (P1): counts this sleeper as parked before the kernel
      // compares the word; pairs with the RMW on parked_ in wake_one().
      parked_.fetch_add(1, std::memory_order_seq_cst);
      slot.mark_parked(true);
      const auto woke = Futex::wait_until(low_half(), static_cast<std::uint32_t>(seen), slice_end);  // L4
      slot.mark_parked(false);
      // relaxed: withdraws our own count; a wake_one() that still reads it wakes needlessly.
      parked_.fetch_sub(1, std::memory_order_relaxed);
      if (woke == detail::FutexWaitResult::woken) {
        // [sync:lock.waking] seq_cst RMW: hands the waking token back, after every unlock that
        // found it taken; the re-read of the word (L3) then sees their release stores.
        waking_.exchange(0, std::memory_order_seq_cst);
        continue;
      }
      if (woke == detail::FutexWaitResult::value_mismatch) continue;
      // The slice (or the deadline) ran out without a wake. If the token is taken, its sleeper may
      // have died before handing it back: free it, and wake one sleeper for the unlocks it
      // absorbed. Sleepers that died leave their counts behind: take those back too.
      recover_token();
      if (!Liveness::alive(seen)) {
        // [sync:lock.handoff] acquire on success: the dead owner released nothing; what it wrote
        // before dying is as visible as it will ever be.
        if (word_.compare_exchange_strong(seen, self, std::memory_order_acquire, std::memory_order_relaxed)) {
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
    // relaxed: only tells a release of a free lock apart (see the file comment on the race).
    if (word_.load(std::memory_order_relaxed) == 0) return false;
    // [sync:lock.handoff] release: publishes the critical section to the next owner's acquire.
    word_.store(0, std::memory_order_release);  // U1
    detail::light_barrier();                    // U2 [sync:lock.sleepers]
    // relaxed: the barrier pair orders it against a sleeper's count (the file comment).
    if (sleepers_.load(std::memory_order_relaxed) != 0) wake_one();  // U3, U4
    return true;
  }

  /// Processes counted as sleeping or about to sleep: a racy observer for tests.
  [[nodiscard]] std::uint32_t sleepers_snapshot() const noexcept {
    // relaxed: stale as soon as it is read; orders nothing.
    return sleepers_.load(std::memory_order_relaxed);
  }

  /// The owner's identity (0 when unlocked): a racy snapshot. @concurrent any
  [[nodiscard]] std::uint64_t owner_snapshot() const noexcept {
    // relaxed: stale as soon as it is read; callers only compare it with their own identity,
    // which no other process can write.
    return word_.load(std::memory_order_relaxed);
  }

 private:
  // The futex is the low 32 bits of the word. std::atomic<uint64_t> is a plain 8-byte object
  // (lock-free, no padding), and on a little-endian machine its first four bytes are the low
  // half; the kernel compares those four bytes as FUTEX_WAIT's value.
  std::atomic<std::uint32_t>& low_half() noexcept {
    return *std::launder(reinterpret_cast<std::atomic<std::uint32_t>*>(&word_));
  }

  // U4, taken only while some process counts itself in sleepers_ (the rest of the time unlock()
  // ends at U3). Two filters keep it off the FUTEX_WAKE system call, which a sleeper would make
  // an unlock pay over and over (measured in docs/benchmarks.md, issue 3, session 8):
  //   * parked_: a sleeper counted in sleepers_ is mostly on its way (the membarrier alone takes
  //     microseconds), not queued in the kernel. It counts itself in parked_ (P1) only just
  //     before the futex call, so parked_ == 0 means that no sleeper can queue on the old owner:
  //     P1 and this RMW are ordered, and P1 before the kernel's compare, so the compare sees U1.
  //   * waking_, the token: a woken sleeper can wait long for a core (2 cores, 4 processes). The
  //     unlock that raises the token from 0 wakes; later unlocks only add to it; the woken sleeper
  //     hands it back (exchange to 0) before it re-reads the word, which then shows their stores,
  //     so the lock is never free while every sleeper sleeps. If the wake found nobody queued,
  //     the waker hands the token back itself and wakes again for unlocks it absorbed meanwhile.
  [[gnu::noinline]] void wake_one() noexcept {
    // [sync:lock.parked] seq_cst RMW: a read ordered after U1; pairs with a sleeper's P1.
    if (parked_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
    // [sync:lock.waking] seq_cst RMW: orders U1 before the token's next holder reads the word.
    const std::uint32_t absorbed = waking_.fetch_add(1, std::memory_order_seq_cst);
    if (absorbed != 0) {
      // A woken sleeper has yet to run. After 1024 unlocks without one, it may have died before
      // handing the token back, with nobody else asleep to let a slice run out: recover here.
      if (absorbed % 1024 == 1023) recover_token();
      return;
    }
    bool reclaimed = false;
    for (;;) {
      if (Futex::wake(low_half(), 1) != 0) return;  // the woken sleeper hands the token back
      // Nobody in the kernel although parked_ says someone is at the futex call: on its way in,
      // or killed there. Take back the counts of the dead, once per call (a sleeper of another
      // process marked parked costs a /proc read; the healthy case, a sleeper a few instructions
      // from the kernel, is rare on this path).
      if (!reclaimed) reclaim_dead_sleepers(true);
      reclaimed = true;
      // [sync:lock.waking] seq_cst RMW: as above.
      if (waking_.exchange(0, std::memory_order_seq_cst) <= 1) return;
      // [sync:lock.waking] seq_cst RMW: as above.
      if (waking_.fetch_add(1, std::memory_order_seq_cst) != 0) return;
    }
  }

  // Who sleeps, so that the counts of a sleeper killed while it waited can be taken back (the
  // counts only filter wakes, so one left too high costs every later unlock a system call, for the
  // lock's lifetime). A slot holds the sleeper's process identity, with kParkedFlag while it is
  // counted in parked_. Each flag is raised after its count and lowered before it, so a slot never
  // claims more than the counts hold: taking back what a dead sleeper's slot says never takes
  // back a live sleeper's count. Sleepers beyond the slots go unrecorded (their counts, if they
  // die, stay).
  static constexpr std::uint64_t kParkedFlag = std::uint64_t{1} << 31;  // pids are below 2^22
  static constexpr int kSleeperSlots = 4;

  class SleeperSlot {
   public:
    SleeperSlot(RobustLockWord& lock, std::uint64_t self) noexcept : lock_(lock), self_(self) {
      if (self_ == 0) return;  // no identity to record (a test's liveness policy)
      for (auto& slot : lock_.slots_) {
        std::uint64_t expected = 0;
        // relaxed: the slot is a record for reclaim_dead_sleepers(), which orders nothing by it.
        if (slot.compare_exchange_strong(expected, self_, std::memory_order_relaxed)) {
          slot_ = &slot;
          return;
        }
      }
    }
    ~SleeperSlot() {
      // relaxed: as above; cleared before CountedSleeper withdraws the count.
      if (slot_ != nullptr) slot_->store(0, std::memory_order_relaxed);
    }
    void mark_parked(bool parked) noexcept {
      // relaxed: as above.
      if (slot_ != nullptr) slot_->store(parked ? self_ | kParkedFlag : self_, std::memory_order_relaxed);
    }
    SleeperSlot(const SleeperSlot&) = delete;
    SleeperSlot& operator=(const SleeperSlot&) = delete;

   private:
    RobustLockWord& lock_;
    std::uint64_t self_;
    std::atomic<std::uint64_t>* slot_ = nullptr;
  };

  // What a slice that ran out (or a token held through 1024 unlocks) calls for: the token's
  // sleeper may have died before handing it back, so free it and wake one sleeper for the unlocks
  // it absorbed; and take back the counts of sleepers that died. A live woken sleeper that has
  // not run yet only costs one needless wake.
  void recover_token() noexcept {
    reclaim_dead_sleepers(false);
    // [sync:lock.waking] seq_cst RMW: as in wake_one().
    if (waking_.exchange(0, std::memory_order_seq_cst) != 0) Futex::wake(low_half(), 1);
  }

  // Takes back the counts of recorded sleepers whose process no longer runs. `parked_only`: look
  // only at slots marked parked (what a wake that found nobody can blame).
  void reclaim_dead_sleepers(bool parked_only) noexcept {
    const std::uint64_t self = Liveness::self();
    for (auto& slot : slots_) {
      // relaxed: a record of who sleeps; the CAS below decides who takes it back.
      std::uint64_t seen = slot.load(std::memory_order_relaxed);
      if (seen == 0 || (parked_only && (seen & kParkedFlag) == 0)) continue;
      const std::uint64_t who = seen & ~kParkedFlag;
      if (who == self || Liveness::alive(who)) continue;
      // relaxed: only one reclaimer wins the slot; the counts are filters, not data.
      if (!slot.compare_exchange_strong(seen, 0, std::memory_order_relaxed)) continue;
      // relaxed: the dead sleeper's own decrements, made for it.
      if ((seen & kParkedFlag) != 0) parked_.fetch_sub(1, std::memory_order_relaxed);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  std::atomic<std::uint64_t> word_{0};
  std::atomic<std::uint32_t> sleepers_{0};
  std::atomic<std::uint32_t> parked_{0};                  // sleepers at or in the futex call (P1 to L4's end)
  std::atomic<std::uint32_t> waking_{0};                  // the waking token (wake_one)
  std::uint32_t reserved_ = 0;                            // keeps the slots 8-byte aligned, spelled out
  std::atomic<std::uint64_t> slots_[kSleeperSlots] = {};  // SleeperSlot

  static_assert(std::endian::native == std::endian::little, "the futex is the lock word's low half");
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free && sizeof(std::atomic<std::uint64_t>) == 8,
                "the lock word is shared between processes: it must be a plain lock-free 8-byte atomic");
};

}  // namespace mproc::core
