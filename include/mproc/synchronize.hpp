// Python's multiprocessing.synchronize for C++: Lock and RLock (and Semaphore, BoundedSemaphore,
// Condition, Event, Barrier below them), on futex words in shared memory.
//
// Every object here is a cheap, copyable handle: copies (in this process, or passed to a child as
// a Process argument under any start method) refer to the same shared object, as Python
// references do, and the object lives until its last handle in any process is gone. Moving a
// handle copies it, so that a moved-from handle stays usable instead of pointing into memory its
// last owner may unmap.
//
// Dead owners: a process that dies holding a Lock or RLock does not block the others forever
// (CPython's do, bpo-44138). The next acquire takes the lock over after noticing the death (within
// about 10 ms of waiting) and throws mproc::OwnerDied, WITH THE LOCK HELD, so that the caller can
// repair what the dead owner left half-done:
//
//   try {
//     lock.acquire();
//   } catch (const mproc::OwnerDied&) {
//     repair_shared_state();   // we hold the lock here
//   }
//   ...critical section...
//   lock.release();
//
// With std::lock_guard, catch OwnerDied around the guard's construction and release (or adopt
// the lock with std::lock_guard(lock, std::adopt_lock)) in the handler.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "mproc/codec.hpp"
#include "mproc/core/barrier.hpp"
#include "mproc/core/event.hpp"
#include "mproc/core/robust_lock.hpp"
#include "mproc/core/semaphore.hpp"
#include "mproc/detail/shared_block.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc {

namespace detail {

struct LockState {
  core::RobustLockWord<> word;
};
MPROC_SHM_LAYOUT(LockState);

struct RLockState {
  core::RobustLockWord<> word;
  std::atomic<std::uint32_t> owner_thread;  // written by the owner only, while it holds word
  std::uint32_t depth;                      // written and read by the owner only
};
MPROC_SHM_LAYOUT(RLockState);

/// A negative timeout means 0, as in CPython; a century or more means no deadline.
MPROC_API std::optional<std::chrono::steady_clock::time_point> deadline_after(
    std::chrono::nanoseconds timeout);

template <class Rep, class Period>
std::chrono::nanoseconds to_timeout(std::chrono::duration<Rep, Period> timeout) {
  if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(std::chrono::hours(876'000))) {
    return std::chrono::nanoseconds::max();
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
}

/// The Lockable trio (std::lock_guard, std::unique_lock, std::scoped_lock) for a handle that
/// has CPython's acquire() and release(): one definition instead of one per class.
template <class Derived>
class LockableByAcquire {
 public:
  void lock() { self().acquire(); }
  bool try_lock() { return self().acquire(false); }
  void unlock() { self().release(); }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace detail

/// A non-recursive lock shared between processes (CPython's multiprocessing.Lock). Any process or
/// thread may release it, as in CPython. Meets the Lockable requirements (std::lock_guard,
/// std::unique_lock, std::scoped_lock).
class MPROC_API Lock : public detail::LockableByAcquire<Lock> {
 public:
  // A handle (see the file comment): a move copies.
  Lock(const Lock&) = default;
  Lock& operator=(const Lock&) = default;

  /// A new, unlocked lock.
  Lock();

  /// Blocks until acquired (block = true) or tries once (block = false); returns whether it is
  /// held. Throws OwnerDied, with the lock held, after taking it over from a dead owner.
  bool acquire(bool block = true) {
    // A free lock is taken inline, one CAS and no call: the lock of a hot loop (seed 001's
    // locked counter) pays nothing else.
    if (state_->word.try_lock(detail::cached_process_identity())) return true;
    return block && acquire_contended();
  }
  /// Blocks at most timeout (a negative timeout tries once); returns whether it is held.
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return block ? acquire_for(detail::to_timeout(timeout)) : acquire(false);
  }
  /// Releases; ValueError if the lock is not held (by anyone).
  void release() {
    if (!state_->word.unlock()) throw_not_held();
  }

  /// A racy observation, for tests and diagnostics: whether some process holds the lock now.
  [[nodiscard]] bool locked_snapshot() const noexcept;
  /// Whether this process holds the lock now (any of its threads: a Lock has no owning thread).
  [[nodiscard]] bool held_by_this_process() const noexcept;

  /// Internal: a handle to a lock that lives inside another shared object's block.
  Lock(detail::SharedBlock block, detail::LockState* state) noexcept
      : block_(std::move(block)), state_(state) {}

 private:
  friend struct codec<Lock>;
  bool acquire_for(std::chrono::nanoseconds timeout);
  bool acquire_contended();
  [[noreturn]] static void throw_not_held();

  detail::SharedBlock block_;
  detail::LockState* state_ = nullptr;
};

/// A recursive lock (CPython's multiprocessing.RLock): the thread that holds it may acquire it
/// again; it is free once released as many times. Only the owning thread may release it.
class MPROC_API RLock : public detail::LockableByAcquire<RLock> {
 public:
  // A handle (see the file comment): a move copies.
  RLock(const RLock&) = default;
  RLock& operator=(const RLock&) = default;

  RLock();

  /// Blocks until held (block = true) or tries once; returns whether it is held. The owning thread
  /// re-acquires at once. Throws OwnerDied, with the lock held, after taking it over from a dead
  /// owner.
  bool acquire(bool block = true) {
    // Inline, as Lock's: a re-acquisition and a free lock cost no call (the Value's own lock in
    // a hot loop is this one).
    const std::uint64_t self = detail::cached_process_identity();
    const std::uint32_t thread = detail::cached_thread_id();
    if (held_by(self, thread)) {
      ++state_->depth;
      return true;
    }
    if (state_->word.try_lock(self)) {
      take(thread);
      return true;
    }
    return block && acquire_until(std::nullopt, true);
  }
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return block ? acquire_for(detail::to_timeout(timeout)) : acquire(false);
  }
  /// ProcessError if the calling thread does not hold it.
  void release() {
    if (!held_by(detail::cached_process_identity(), detail::cached_thread_id())) throw_not_owner();
    if (--state_->depth > 0) return;
    // relaxed: ordered before the word's release by unlock()'s [sync:lock.handoff].
    state_->owner_thread.store(0, std::memory_order_relaxed);
    state_->word.unlock();
  }

  /// Whether the calling thread holds it, and how many times (0: not held by this thread).
  [[nodiscard]] std::uint32_t depth_held_by_me() const noexcept {
    return held_by(detail::cached_process_identity(), detail::cached_thread_id()) ? state_->depth : 0;
  }

  /// Internal: a handle to an RLock that lives inside another shared object's block (a Value's).
  RLock(detail::SharedBlock block, detail::RLockState* state) noexcept
      : block_(std::move(block)), state_(state) {}

 private:
  friend struct codec<RLock>;
  bool acquire_for(std::chrono::nanoseconds timeout);
  bool acquire_until(std::optional<std::chrono::steady_clock::time_point> deadline, bool block);
  [[noreturn]] static void throw_not_owner();

  // Only the owner writes owner_thread and depth, and only while holding the word; if the word
  // names this process and owner_thread this thread, this thread wrote both (invariant: the owner
  // clears owner_thread before it releases the word). The full identity (pid and start-time
  // stamp): a newcomer that reused a dead owner's pid, with a thread whose id matches the dead
  // owner's, must not pass for the owner.
  [[nodiscard]] bool held_by(std::uint64_t self, std::uint32_t thread) const noexcept {
    // relaxed: meaningful only when this thread wrote it, as above.
    return state_->word.owner_snapshot() == self &&
           state_->owner_thread.load(std::memory_order_relaxed) == thread;
  }
  // Records the calling thread as the owner of a word it has just taken.
  void take(std::uint32_t thread) noexcept {
    // relaxed: read back only by this thread (held_by); other threads compare it with their own
    // id, which this value never equals.
    state_->owner_thread.store(thread, std::memory_order_relaxed);
    state_->depth = 1;
  }

  detail::SharedBlock block_;
  detail::RLockState* state_ = nullptr;
};

template <>
struct MPROC_API codec<Lock> {
  static void encode(Encoder& out, const Lock& lock);
  static Lock decode(Decoder& in);
};

template <>
struct MPROC_API codec<RLock> {
  static void encode(Encoder& out, const RLock& lock);
  static RLock decode(Decoder& in);
};

}  // namespace mproc

// --- Semaphore, BoundedSemaphore, Condition, Event, Barrier -----------------------------------
//
// The same handle model as Lock and RLock: cheap copies of one shared object, passable to a
// Process under every start method. docs/synchronize.md gives each one's semantics, what survives
// a crash, and where it departs from CPython.

namespace mproc {

namespace detail {

struct SemaphoreState {
  core::SemaphoreCore<> core;
};
MPROC_SHM_LAYOUT(SemaphoreState);

struct EventState {
  core::EventCore<> core;
};
MPROC_SHM_LAYOUT(EventState);

/// The Barrier's core, followed in its block by one identity slot per party.
struct BarrierState {
  core::BarrierCore<> core;
};
MPROC_SHM_LAYOUT(BarrierState);

/// Defined in runtime/sync/condition.cpp (its waiter slots hold pthread mutexes, which the public
/// headers do not expose).
struct ConditionState;

}  // namespace detail

/// A counting semaphore shared between processes (CPython's multiprocessing.Semaphore): acquire()
/// takes a unit, waiting while there is none; release() adds one. Unbounded above, up to
/// SEM_VALUE_MAX (2147483647). Units have no owner: any process or thread may release, and a
/// process that dies holding units does not give them back (as in CPython). Meets Lockable.
class MPROC_API Semaphore : public detail::LockableByAcquire<Semaphore> {
 public:
  // A handle (see the file comment): a move copies.
  Semaphore(const Semaphore&) = default;
  Semaphore& operator=(const Semaphore&) = default;

  /// ValueError if value < 0 or above SEM_VALUE_MAX.
  explicit Semaphore(int value = 1);

  /// Takes a unit: waits for one (block = true) or tries once (block = false). Returns whether it
  /// took one. @concurrent any; blocks (spin, then futex sleep).
  bool acquire(bool block = true);
  /// Waits at most timeout (negative: try once, as in CPython). With block = false, the timeout is
  /// ignored and acquire tries once.
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return block ? acquire_for(detail::to_timeout(timeout)) : acquire(false);
  }
  /// Adds a unit, waking one waiter. OSError (EOVERFLOW) at SEM_VALUE_MAX; BoundedSemaphore:
  /// ValueError above its initial value. @concurrent any; never blocks.
  void release();
  /// The count now; racy (CPython's get_value()).
  [[nodiscard]] int get_value() const noexcept;

 protected:
  Semaphore(int value, int max_value, const char* kind);
  Semaphore(detail::SharedBlock block, detail::SemaphoreState* state) noexcept
      : block_(std::move(block)), state_(state) {}
  bool acquire_for(std::chrono::nanoseconds timeout);

  detail::SharedBlock block_;
  detail::SemaphoreState* state_ = nullptr;

 private:
  friend struct codec<Semaphore>;
};

/// A semaphore whose count may not exceed its initial value (CPython's BoundedSemaphore):
/// releasing above it throws ValueError("semaphore or lock released too many times") and changes
/// nothing. The check is exact under concurrency (it is part of the count's CAS).
class MPROC_API BoundedSemaphore : public Semaphore {
 public:
  // A handle (see the file comment): a move copies.
  BoundedSemaphore(const BoundedSemaphore&) = default;
  BoundedSemaphore& operator=(const BoundedSemaphore&) = default;

  explicit BoundedSemaphore(int value = 1);

 private:
  friend struct codec<BoundedSemaphore>;
  BoundedSemaphore(detail::SharedBlock block, detail::SemaphoreState* state) noexcept
      : Semaphore(std::move(block), state) {}
};

/// A condition variable shared between processes (CPython's multiprocessing.Condition), over a
/// Lock or RLock (by default a new RLock, as in CPython). Meets Lockable (it locks its lock).
///
/// wait() must be called with the lock held, by the calling thread for an RLock (by anyone, for a
/// Lock, which has no thread owner): it releases the lock completely (an RLock held recursively
/// too), sleeps until notified or timed out, then re-acquires the lock to the same depth.
/// notify(n) wakes at most n of the threads waiting at the time of the call, longest-waiting
/// first; a waiter that times out never takes a notification meant for another one; a waiter that
/// died (SIGKILL) is skipped without counting. Waits have no spurious wake-ups.
///
/// At most kMaxWaiters threads (in all processes) may wait at once; one more gets ProcessError.
/// If the lock is taken over from a dead owner while a waiter re-acquires it, wait() throws
/// OwnerDied with the lock held at its full depth (see the top of this file).
class MPROC_API Condition : public detail::LockableByAcquire<Condition> {
 public:
  // A handle (see the file comment): a move copies.
  Condition(const Condition&) = default;
  Condition& operator=(const Condition&) = default;

  static constexpr std::size_t kMaxWaiters = 1024;

  /// Over a new RLock.
  Condition();
  explicit Condition(Lock lock);
  explicit Condition(RLock lock);

  bool acquire(bool block = true);
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return rlock_ ? rlock_->acquire(block, timeout) : lock_->acquire(block, timeout);
  }
  void release();
  /// Waits until notified; returns true. ProcessError("must acquire() condition before using
  /// wait()") without the lock. @concurrent any thread holding the lock; blocks.
  bool wait();
  /// Waits at most timeout (negative: 0); returns false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::deadline_after(detail::to_timeout(timeout)));
  }

  /// Waits until predicate() is true; returns its last value (CPython's wait_for).
  template <class Predicate>
  auto wait_for(Predicate predicate) -> decltype(predicate()) {
    auto result = predicate();
    while (!result) {
      wait();
      result = predicate();
    }
    return result;
  }
  /// As above, giving up at the timeout; returns the predicate's last value (false-ish then).
  template <class Predicate, class Rep, class Period>
  auto wait_for(Predicate predicate, std::chrono::duration<Rep, Period> timeout) -> decltype(predicate()) {
    const auto deadline = detail::deadline_after(detail::to_timeout(timeout));
    auto result = predicate();
    while (!result) {
      if (deadline && std::chrono::steady_clock::now() >= *deadline) break;
      wait_until(deadline);
      result = predicate();
    }
    return result;
  }

  /// Wakes at most n waiters. ProcessError("lock is not owned") without the lock.
  /// @concurrent any thread holding the lock; never blocks.
  void notify(std::size_t n = 1);
  void notify_all();

  /// Threads waiting now (those timing out included until they return); racy, for tests.
  [[nodiscard]] std::size_t waiters_snapshot() const noexcept;

 private:
  friend struct codec<Condition>;
  Condition(std::optional<Lock> lock, std::optional<RLock> rlock, detail::SharedBlock block,
            detail::ConditionState* state) noexcept;
  bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline);
  [[nodiscard]] bool owned_by_caller() const noexcept;
  void make_state();

  std::optional<Lock> lock_;  // exactly one of lock_ and rlock_ is set
  std::optional<RLock> rlock_;
  detail::SharedBlock block_;
  detail::ConditionState* state_ = nullptr;
};

/// A flag shared between processes (CPython's multiprocessing.Event). Not Lockable.
/// Everything done before set() is visible to a thread whose wait() or is_set() returns true.
class MPROC_API Event {
 public:
  // A handle (see the file comment): a move copies.
  Event(const Event&) = default;
  Event& operator=(const Event&) = default;

  Event();

  /// @concurrent any; never blocks. set() wakes every waiter (no system call if none sleeps).
  void set() noexcept;
  void clear() noexcept;
  [[nodiscard]] bool is_set() const noexcept;

  /// Waits until the flag is set; returns true. @concurrent any; blocks.
  bool wait();
  /// Waits at most timeout (negative: 0). Returns true if the flag is set, or was set during the
  /// wait (even if cleared again since: threading.Event's rule); false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::deadline_after(detail::to_timeout(timeout)));
  }

 private:
  friend struct codec<Event>;
  Event(detail::SharedBlock block, detail::EventState* state) noexcept
      : block_(std::move(block)), state_(state) {}
  bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline);

  detail::SharedBlock block_;
  detail::EventState* state_ = nullptr;
};

/// A barrier for a fixed number of parties (CPython's multiprocessing.Barrier, which is
/// threading.Barrier's logic on shared state). Each round, wait() returns once `parties` threads
/// (in any processes) have called it; each gets a distinct index 0 .. parties-1 (the last to
/// arrive gets parties-1). Everything a party did before wait() is visible to all after it.
///
/// Broken: abort(), a wait that times out, or reset() while parties wait makes every waiter throw
/// BrokenBarrierError, and every later wait() too, until reset(). A timeout breaks the barrier for
/// everyone, as in CPython.
///
/// Dead parties: a party killed while waiting does not hang the others. If the rest arrive, the
/// round passes without it; parties of the next round notice the death within about 10 ms and go
/// on. A party that dies before arriving is just missing: the others wait until their timeout (and
/// forever without one), as in CPython.
///
/// Differences from CPython: Barrier(0) is a ValueError (CPython accepts it, and every wait() then
/// blocks forever); there is no `action` callable (a function cannot cross to a spawned process
/// with a shared object); a timeout while waiting for the previous round to drain breaks the
/// barrier (CPython ignores the timeout there).
class MPROC_API Barrier {
 public:
  // A handle (see the file comment): a move copies.
  Barrier(const Barrier&) = default;
  Barrier& operator=(const Barrier&) = default;

  static constexpr std::size_t kMaxParties = std::size_t{1} << 20;

  /// ValueError("parties must be > 0") for 0, or above kMaxParties.
  explicit Barrier(std::size_t parties);
  /// With a default timeout for wait() (CPython's timeout= argument).
  template <class Rep, class Period>
  Barrier(std::size_t parties, std::chrono::duration<Rep, Period> timeout)
      : Barrier(parties, detail::to_timeout(timeout), 0) {}

  /// Waits for the round (with the default timeout, if any); returns this party's index.
  /// BrokenBarrierError if the barrier is or becomes broken. @concurrent any; blocks.
  std::size_t wait();
  /// With this timeout (negative: 0) instead of the default.
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::deadline_after(detail::to_timeout(timeout)));
  }

  /// Back to the initial state; current waiters get BrokenBarrierError. @concurrent any
  void reset() noexcept;
  /// Breaks the barrier until reset(). @concurrent any
  void abort() noexcept;

  [[nodiscard]] std::size_t parties() const noexcept;
  /// Parties waiting in the current round (racy).
  [[nodiscard]] std::size_t n_waiting() const noexcept;
  /// Whether the barrier is broken (racy).
  [[nodiscard]] bool broken() const noexcept;

 private:
  friend struct codec<Barrier>;
  Barrier(std::size_t parties, std::chrono::nanoseconds default_timeout, int);
  Barrier(detail::SharedBlock block, detail::BarrierState* state, std::uint32_t parties) noexcept
      : block_(std::move(block)), state_(state), parties_(parties) {}
  std::size_t wait_until(std::optional<std::chrono::steady_clock::time_point> deadline);

  detail::SharedBlock block_;
  detail::BarrierState* state_ = nullptr;
  std::uint32_t parties_ = 0;  // validated against the block once; the core's copy is shared memory
};

template <>
struct MPROC_API codec<Semaphore> {
  static void encode(Encoder& out, const Semaphore& sem);
  static Semaphore decode(Decoder& in);
};

template <>
struct MPROC_API codec<BoundedSemaphore> {
  static void encode(Encoder& out, const BoundedSemaphore& sem);
  static BoundedSemaphore decode(Decoder& in);
};

template <>
struct MPROC_API codec<Condition> {
  static void encode(Encoder& out, const Condition& cond);
  static Condition decode(Decoder& in);
};

template <>
struct MPROC_API codec<Event> {
  static void encode(Encoder& out, const Event& event);
  static Event decode(Decoder& in);
};

template <>
struct MPROC_API codec<Barrier> {
  static void encode(Encoder& out, const Barrier& barrier);
  static Barrier decode(Decoder& in);
};

}  // namespace mproc
