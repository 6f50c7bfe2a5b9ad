// Who holds a lock, and whether it still runs: the identities that mproc's robust locks store in
// their lock words, and the liveness check a waiter makes when an owner keeps it waiting.
#pragma once

#include <atomic>
#include <cstdint>

#include "mproc/export.hpp"

namespace mproc::detail {

/// This process's identity: its pid in the low 32 bits and a stamp from its start time in the
/// high 32. A pid alone can be reused after its process dies; (pid, start time) cannot, so a
/// waiter never mistakes a newcomer for a dead owner. Cached; recomputed after fork.
MPROC_API std::uint64_t process_identity() noexcept;

/// process_identity()'s cache: 0 until computed in this process (a fork child starts at 0).
/// Read inline by the locks' fast paths, so that an uncontended acquire makes no call.
MPROC_API extern std::atomic<std::uint64_t> process_identity_cache;

/// process_identity(), without a call once computed.
inline std::uint64_t cached_process_identity() noexcept {
  // relaxed: every thread of a process computes the same value; 0 falls back to the call.
  const std::uint64_t id = process_identity_cache.load(std::memory_order_relaxed);
  return id != 0 ? id : process_identity();
}

/// Whether the process with this identity still runs: false once it has exited (a zombie
/// counts as exited, but not a process whose main thread alone exited while other threads run)
/// or its pid belongs to a process started at another time.
MPROC_API bool process_alive(std::uint64_t identity) noexcept;

/// Whether thread `tid` of process `pid` still runs: false once the thread has exited or its
/// process has (a zombie counts as exited). A tid can be reused after its thread exits, which
/// can only make a dead thread look alive, never the reverse.
MPROC_API bool thread_alive(std::uint32_t pid, std::uint32_t tid) noexcept;

/// The calling thread's id (gettid), cached per thread.
MPROC_API std::uint32_t thread_id() noexcept;

/// thread_id(), without a call once this thread has asked in this process (a forked child's
/// thread keeps its thread_local values, so the cache is keyed by the process identity).
inline std::uint32_t cached_thread_id() noexcept {
  struct Cache {
    std::uint64_t process = 0;
    std::uint32_t tid = 0;
  };
  thread_local Cache cache;
  const std::uint64_t process = cached_process_identity();
  if (cache.process != process) [[unlikely]] {
    cache.tid = thread_id();
    cache.process = process;
  }
  return cache.tid;
}

/// The liveness policy of the robust lock cores (tests substitute their own).
struct ProcessLiveness {
  static std::uint64_t self() noexcept { return process_identity(); }
  static bool alive(std::uint64_t identity) noexcept { return process_alive(identity); }
};

}  // namespace mproc::detail
