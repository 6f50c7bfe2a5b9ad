// The shared futex: mproc's only way to put a thread to sleep until a 32-bit word in (shared)
// memory changes, and to wake it from any process that maps the same memory.
//
// Why mproc has its own wrapper: libstdc++'s std::atomic::wait, folly's and abseil's futexes all
// pass FUTEX_PRIVATE_FLAG. A private futex is keyed on (address space, virtual address), so a
// FUTEX_WAKE from another process, or through a second mapping of the same memory, never finds the
// sleeper: a waiter parked that way on a word in shared memory sleeps until its timeout, or
// forever. These futexes are shared (keyed on the backing page and offset), which costs the kernel
// a page lookup per call and works across fork, mmap(MAP_SHARED) and shm_open mappings alike.
// The implementation (runtime/platform/linux/futex.cpp) is the project's only futex(2) call site.
//
// Error model: these calls cannot fail in a correct program. EINTR is retried inside, EAGAIN is
// FutexWaitResult::value_mismatch, ETIMEDOUT is FutexWaitResult::timed_out; any other errno
// (EFAULT: the word is not mapped, EINVAL: it is misaligned) is a programmer error and aborts with
// a message naming the call.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>

#include "mproc/export.hpp"

namespace mproc::detail {

// The futex ABI reads and compares a plain aligned u32 at the atomic's address. Lock-free atomics
// are also address-free ([atomics.lockfree]), which is what makes them valid across mappings.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be lock-free atomics: a lock-based atomic has no u32 for the kernel");
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  alignof(std::atomic<std::uint32_t>) == alignof(std::uint32_t),
              "the futex ABI needs std::atomic<uint32_t> to be exactly a 4-byte-aligned uint32_t");

/// What ended a futex wait. None of them proves that the caller's condition holds: wake-ups may
/// be spurious (futex(2)), so callers always re-check their condition in a loop.
enum class FutexWaitResult {
  woken,           ///< a FUTEX_WAKE (or a spurious wake-up) ended the wait
  value_mismatch,  ///< the word did not hold `expected` when the kernel checked it (EAGAIN)
  timed_out,       ///< the timeout passed (or was already over) with the word unchanged
};

/// Sleeps while `word` holds `expected`, with no timeout. The kernel compares and enqueues
/// atomically with respect to futex_wake(), so a wake issued after the word was changed is
/// never lost. @concurrent any; blocks.
MPROC_API FutexWaitResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept;

/// futex_wait() for at most `relative`. A zero or negative `relative` returns at once:
/// value_mismatch if the word differs from `expected`, timed_out otherwise. Signals do not stretch
/// the timeout (retries keep the absolute deadline). @concurrent any; bounded blocking.
MPROC_API FutexWaitResult futex_wait_for(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                         std::chrono::nanoseconds relative) noexcept;

/// futex_wait() until `deadline` on std::chrono::steady_clock (CLOCK_MONOTONIC on Linux). A
/// deadline already past returns at once. @concurrent any; bounded blocking.
MPROC_API FutexWaitResult futex_wait_until(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                           std::chrono::steady_clock::time_point deadline) noexcept;

/// Wakes up to `count` waiters parked on `word`, in this or any other process; returns how many
/// were woken. `count` <= 0 wakes nobody and makes no system call. The caller changes the word
/// (or whatever its waiters re-check) before waking. @concurrent any; never blocks.
MPROC_API int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;

/// Wakes every waiter parked on `word`; returns how many were woken. @concurrent any.
MPROC_API int futex_wake_all(const std::atomic<std::uint32_t>& word) noexcept;

/// The futex policy the lock-free cores are templated on (their testability seam): the real
/// SharedFutex below, or a test double that counts calls or hands control to a scheduler.
template <class F>
concept FutexPolicy = requires(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                               std::chrono::steady_clock::time_point deadline, int count) {
  { F::wait(word, expected) } -> std::same_as<FutexWaitResult>;
  { F::wait_until(word, expected, deadline) } -> std::same_as<FutexWaitResult>;
  { F::wake(word, count) } -> std::same_as<int>;
};

/// The production policy: shared futexes, valid across processes.
struct SharedFutex {
  static FutexWaitResult wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
    return futex_wait(word, expected);
  }
  static FutexWaitResult wait_until(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                    std::chrono::steady_clock::time_point deadline) noexcept {
    return futex_wait_until(word, expected, deadline);
  }
  static int wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
    return futex_wake(word, count);
  }
};
static_assert(FutexPolicy<SharedFutex>);

}  // namespace mproc::detail
