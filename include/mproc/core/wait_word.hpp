// WaitWord: how every mproc primitive blocks. A waiter spins briefly, yields a few times, then
// parks on a shared futex; a notifier skips the FUTEX_WAKE system call when nobody is parked.
//
// Why spin first: on the measured 2-core VM a futex sleep/wake round trip costs 33-46 us while a
// spinning one costs 50-113 ns (docs/architecture.md). Why the spin is bounded: with two cores the
// process a waiter waits for may need the waiter's core, so after the budget it yields, then parks
// (tests run more processes than cores and must not livelock).
//
// A WaitWord does not own the condition it waits for. The caller keeps that state in its own
// atomics (a ring index, a lock word, a flag) and passes a predicate `ready()` that reads it:
//
//   // waiter                                   // notifier
//   ww.wait([&] {                               ready_flag.store(1, std::memory_order_release);
//     return ready_flag.load(acquire) != 0;     ww.notify_one();
//   });
//
// Memory ordering: if the notifier changes the state with release (or stronger) and ready() reads
// it with acquire, everything the notifier did before that change is visible to the waiter once
// wait() returns, in this process or another one mapping the same memory. The ordering must come
// from the state itself because ready() may return true while spinning, before any WaitWord access.
//
// Lost wake-ups are impossible by these invariants (the [sync:wait_word.*] tags below refer to them):
//
//   1. A parking waiter performs, in this order: (W1) sleepers_ += 1, (F1) a heavy barrier,
//      (W2) e = epoch_, (W3) ready(), (W4) futex_wait(epoch_, e). It decrements sleepers_ only
//      after it stops parking, so from W1 to its return it counts as "parked or about to park".
//   2. A notifier performs, in this order: (N1) change the state ready() reads (any memory order),
//      (F2) a light barrier, (N2) s = sleepers_, and only if s != 0: (N3) epoch_ += 1 (seq_cst),
//      (N4) futex_wake(epoch_).
//   3. F1 and F2 (detail/barrier.hpp) are seq_cst fences, or F1 is membarrier(2) and F2 a compiler
//      barrier in a registered process; either way F1 and F2 order the two sides like two seq_cst
//      fences: one precedes the other. W1 -> F1 -> W3 and N1 -> F2 -> N2 are the two halves of a
//      Dekker (store-buffer) pattern: without the barriers both loads could miss the other side's
//      store (x86 store buffers allow it) and the waiter would park while the notifier skips the
//      wake. (membarrier runs a full barrier on every CPU running a registered process, between
//      its accesses before and after that point, so the notifier's N1 -> N2 is split at some
//      point that the waiter's F1 orders against its own W1 and W3.)
//   4. If F2 precedes F1: N1 is sequenced before F2 and W3 after F1, so W3 reads N1's change or a
//      later one ([atomics.fences]): ready() is true and the waiter does not park.
//   5. If F1 precedes F2: likewise N2 reads W1's increment or a later value, and the waiter's own
//      decrement comes only after it stops parking, so s != 0 and the notifier bumps the epoch and
//      calls futex_wake. If W2 read the epoch from before N3, the kernel's compare-and-enqueue in
//      W4 either sees the bumped epoch (value_mismatch) or has already queued the waiter, which
//      the wake then finds (futex(2) orders the two calls). If W2 read N3 or later, N3 (a release
//      RMW) synchronizes with W2 (an acquire load), so N1 happens before W3: ready() is true.
//   6. The epoch wraps after 2^32 notifies that found a sleeper. A waiter held up between W2 and
//      W4 (preempted, stopped) while exactly a multiple of 2^32 of them happen would park on a
//      matching stale epoch (ABA) until the next notify. That takes hours of nonstop wake-ups
//      (each a system call); it is accepted.
//
// Cost when nobody sleeps: notify_*() is one load of a line that only parking waiters write, plus
// a compiler barrier after mproc::init (a seq_cst fence before it, or without membarrier): no RMW
// on a shared line, no system call. A waiter pays a membarrier system call on its way to sleep
// (about 0.5 us with the other cores idle, 9 us on the 2-core VM when the other core runs a
// registered process: an interrupt to it). wait() on a ready condition is one call of ready(). Measured in
// docs/benchmarks.md (issue 4): the notify that always bumped the epoch cost the queue ring a contended RMW
// per message on each side.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <concepts>
#include <cstdint>
#include <optional>
#include <thread>
#include <type_traits>

#include "mproc/detail/barrier.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::core {

/// Tells the CPU that the caller is spinning: x86 `pause` (about 25 ns on the measured EPYC, up to
/// 140 cycles on recent Intel parts) frees pipeline resources for the sibling hyperthread and
/// avoids the memory-order mis-speculation when the spun-on line changes; aarch64 `yield` is the
/// equivalent hint. Elsewhere it does nothing: the caller's atomic loads keep the loop honest.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

/// The waiting half of mproc's sleeper handshake (WaitWord's invariants 1-5; RobustLockWord's
/// [sync:lock.sleepers] is the same pattern): counts the caller in a shared sleeper count, then runs
/// the heavy barrier, for the object's lifetime, i.e. from before the caller's last look at the
/// condition until it has stopped sleeping, including when that look throws. The other half, in
/// the notifier: change the condition, light barrier, read the count, wake only if nonzero.
class CountedSleeper {
 public:
  explicit CountedSleeper(std::atomic<std::uint32_t>& sleepers) noexcept : sleepers_(sleepers) {
    // [sync:wait_word.announce] seq_cst RMW (W1): announces the sleeper; read by the notifier's
    // load of the count (N2) after its fence. Invariants 3 and 5.
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    // [sync:wait_word.fence] heavy barrier (F1): orders W1 before the caller's re-check of its
    // condition; pairs with the notifier's light barrier (F2). Invariants 3-5.
    detail::heavy_barrier();
  }
  ~CountedSleeper() {
    // Relaxed is enough since this only withdraws our own announcement once we no longer sleep; a
    // notifier that still reads the old count just makes one needless (harmless) wake call.
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }
  CountedSleeper(const CountedSleeper&) = delete;
  CountedSleeper& operator=(const CountedSleeper&) = delete;

 private:
  std::atomic<std::uint32_t>& sleepers_;
};

/// Spin-then-park waiting on a condition kept elsewhere, valid across processes.
///
/// Placement: lives in shared memory; standard layout, trivially destructible, 8 bytes, and a
/// zero-filled region (a fresh ftruncate'd segment) is a valid idle WaitWord.
/// Futex: the policy that parks and wakes (detail::SharedFutex in production; tests substitute
/// counting or scheduling doubles).
///
/// One WaitWord should serve one condition. notify_one() wakes at most one parked waiter, so use
/// it only when any single waiter can consume the change; otherwise use notify_all().
template <detail::FutexPolicy Futex = detail::SharedFutex>
class WaitWord {
 public:
  /// Pause iterations before yielding: 128 x ~25 ns is ~3 us on the measured machine, a tenth of a
  /// futex round trip, and longer than the 50-113 ns a spinning round trip takes, so a partner that
  /// is running answers within the budget while a descheduled one costs little.
  static constexpr int kSpinIterations = 128;
  /// std::this_thread::yield() rounds after spinning (~0.5 us each when nobody else is runnable):
  /// they hand the core to a partner that shares it (2 cores, more processes) before the waiter
  /// pays for a park. On a busy machine one yield may last a scheduler slice, which is the point:
  /// the core went to someone else. Go's runtime lock (4 x 30 pauses, 1 yield, then futex) and
  /// parking_lot's SpinWait (short spins, then up to 7 yields) follow the same scheme.
  static constexpr int kYieldIterations = 4;

  constexpr WaitWord() noexcept = default;
  ~WaitWord() = default;  // trivial: shared memory is unmapped, never destroyed
  WaitWord(const WaitWord&) = delete;
  WaitWord& operator=(const WaitWord&) = delete;

  /// Returns once ready() is true. ready() is called repeatedly, from this thread only, and should
  /// read the condition with acquire if the waiter needs data published before it.
  /// @concurrent any; blocks.
  template <class Ready>
    requires std::predicate<Ready&>
  void wait(Ready ready) noexcept(std::is_nothrow_invocable_v<Ready&>) {
    if (spin(ready, nullptr)) return;
    const CountedSleeper announced(sleepers_);  // W1, F1
    for (;;) {
      // [sync:wait_word.epoch] seq_cst load (W2): reads the epoch before re-checking ready(); pairs
      // with the seq_cst fetch_add in notify() (N3). See invariants 3-5.
      const std::uint32_t seen = epoch_.load(std::memory_order_seq_cst);
      if (ready()) return;        // W3
      Futex::wait(epoch_, seen);  // W4
    }
  }

  /// Like wait() but gives up at `deadline` (steady_clock). Returns ready() as last observed: true
  /// when the condition holds, false on timeout. @concurrent any; bounded blocking.
  template <class Ready>
    requires std::predicate<Ready&>
  bool wait_until(Ready ready, std::chrono::steady_clock::time_point deadline) noexcept(
      std::is_nothrow_invocable_v<Ready&>) {
    if (spin(ready, &deadline)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return ready();
    const CountedSleeper announced(sleepers_);  // W1, F1
    for (;;) {
      // [sync:wait_word.epoch] seq_cst load (W2): pairs with the seq_cst fetch_add in notify() (N3).
      const std::uint32_t seen = epoch_.load(std::memory_order_seq_cst);
      if (ready()) return true;  // W3
      if (Futex::wait_until(epoch_, seen, deadline) == detail::FutexWaitResult::timed_out) return ready();
    }
  }

  /// One bounded wait: wait_until(ready, the earlier of the deadline and now + slice). Returns
  /// nullopt, without waiting, if the deadline has already passed; else what wait_until returned.
  /// For callers that must look at something between waits (a dead peer, a closed handle).
  /// @concurrent any; bounded blocking.
  template <class Ready>
    requires std::predicate<Ready&>
  std::optional<bool> wait_slice(
      Ready ready, std::optional<std::chrono::steady_clock::time_point> deadline,
      std::chrono::steady_clock::duration slice) noexcept(std::is_nothrow_invocable_v<Ready&>) {
    const auto now = std::chrono::steady_clock::now();
    if (deadline && now >= *deadline) return std::nullopt;
    auto end = now + slice;
    if (deadline && *deadline < end) end = *deadline;
    return wait_until(ready, end);
  }

  /// Wakes one parked waiter, if any. Call it after changing the state ready() reads.
  /// @concurrent any; never blocks; no system call when nobody is parked.
  void notify_one() noexcept { notify(1); }

  /// Wakes every parked waiter. @concurrent any; never blocks; no system call when nobody is parked.
  void notify_all() noexcept { notify(INT_MAX); }

  /// Waiters parked or about to park, a racy observer for tests and statistics.
  [[nodiscard]] std::uint32_t sleepers_snapshot() const noexcept {
    // Relaxed is enough since the value is stale as soon as it is read and orders nothing.
    return sleepers_.load(std::memory_order_relaxed);
  }

 private:
  // The bounded busy phase: returns true as soon as ready(), false when the budget (or the
  // deadline, checked between yields only: the pause phase lasts a few microseconds) is spent.
  template <class Ready>
  static bool spin(Ready& ready, const std::chrono::steady_clock::time_point* deadline) {
    for (int i = 0; i < kSpinIterations; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    for (int i = 0; i < kYieldIterations; ++i) {
      if (ready()) return true;
      if (deadline != nullptr && std::chrono::steady_clock::now() >= *deadline) return false;
      std::this_thread::yield();
    }
    return false;
  }

  void notify(int count) noexcept {
    // [sync:wait_word.fence] light barrier (F2): orders the caller's state change (N1) before the
    // sleepers_ load; pairs with the waiter's heavy barrier (F1). Invariants 3-5.
    detail::light_barrier();
    // [sync:wait_word.announce] load after the fence (N2): sees every waiter whose ready() could
    // have missed N1. Invariant 5.
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
    // [sync:wait_word.epoch] seq_cst RMW (N3): releases N1 to a waiter whose epoch load (W2) reads
    // it; changes the futex word so that a waiter between W2 and W4 does not sleep. Invariant 5.
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    Futex::wake(epoch_, count);
  }

  std::atomic<std::uint32_t> epoch_{0};     // bumped by every notify; the futex word waiters park on
  std::atomic<std::uint32_t> sleepers_{0};  // waiters parked or about to park
};

static_assert(std::is_standard_layout_v<WaitWord<>>,
              "WaitWord lives in shared memory: it must be standard layout");
static_assert(
    std::is_trivially_destructible_v<WaitWord<>>,
    "WaitWord lives in shared memory that is unmapped, not destroyed: it must be trivially destructible");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "WaitWord's atomics are shared between processes: they must be lock-free (hence address-free)");
static_assert(sizeof(WaitWord<>) == 2 * sizeof(std::uint32_t) &&
                  alignof(WaitWord<>) == alignof(std::uint32_t),
              "WaitWord's layout is part of the shared-memory ABI: {epoch, sleepers}, 8 bytes");

}  // namespace mproc::core
