// Python's multiprocessing.synchronize for C++: Lock and RLock (and Semaphore, BoundedSemaphore,
// Condition, Event, Barrier below them), on futex words in shared memory.
//
// Every object here is a cheap, copyable handle: copies (in this process, or passed to a child as
// a Process argument under any start method) refer to the same shared object, as Python
// references do, and the object lives until its last handle in any process is gone.
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
#include <cstdint>
#include <optional>

#include "mproc/codec.hpp"
#include "mproc/core/robust_lock.hpp"
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

}  // namespace detail

/// A non-recursive lock shared between processes (CPython's multiprocessing.Lock). Any process or
/// thread may release it, as in CPython. Meets the Lockable requirements (std::lock_guard,
/// std::unique_lock, std::scoped_lock).
class MPROC_API Lock {
 public:
  /// A new, unlocked lock.
  Lock();

  /// Blocks until acquired (block = true) or tries once (block = false); returns whether it is
  /// held. Throws OwnerDied, with the lock held, after taking it over from a dead owner.
  bool acquire(bool block = true);
  /// Blocks at most timeout (a negative timeout tries once); returns whether it is held.
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return block ? acquire_for(detail::to_timeout(timeout)) : acquire(false);
  }
  /// Releases; ValueError if the lock is not held (by anyone).
  void release();

  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }

  /// A racy observation, for tests and diagnostics: whether some process holds the lock now.
  [[nodiscard]] bool locked_snapshot() const noexcept;

  /// Internal: a handle to a lock that lives inside another shared object's block.
  Lock(detail::SharedBlock block, detail::LockState* state) noexcept
      : block_(std::move(block)), state_(state) {}

 private:
  friend struct codec<Lock>;
  bool acquire_for(std::chrono::nanoseconds timeout);

  detail::SharedBlock block_;
  detail::LockState* state_ = nullptr;
};

/// A recursive lock (CPython's multiprocessing.RLock): the thread that holds it may acquire it
/// again; it is free once released as many times. Only the owning thread may release it.
class MPROC_API RLock {
 public:
  RLock();

  bool acquire(bool block = true);
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return block ? acquire_for(detail::to_timeout(timeout)) : acquire(false);
  }
  /// ProcessError if the calling thread does not hold it.
  void release();

  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }

  /// Whether the calling thread holds it, and how many times (0: not held by this thread).
  [[nodiscard]] std::uint32_t depth_held_by_me() const noexcept;

  /// Internal: a handle to an RLock that lives inside another shared object's block (a Value's).
  RLock(detail::SharedBlock block, detail::RLockState* state) noexcept
      : block_(std::move(block)), state_(state) {}

 private:
  friend struct codec<RLock>;
  bool acquire_for(std::chrono::nanoseconds timeout);
  bool acquire_until(std::optional<std::chrono::steady_clock::time_point> deadline, bool block);

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
