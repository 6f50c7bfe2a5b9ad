// Asymmetric memory barriers: a nearly free one for the frequent side of a Dekker pattern and a
// system call for the rare side (Linux membarrier(2), as liburcu and folly's
// asymmetricLightBarrier do).
//
// WaitWord's notify (every put of a queue) and park (a consumer about to sleep) are the two sides
// of a store-buffer pattern: each stores, then loads what the other stored. Both need a full
// barrier between their store and their load, and on x86 that costs a notifier an mfence per
// message. With membarrier, the parking side (already on its way into the kernel) asks the kernel
// to run a full barrier on every CPU that runs a registered process, so a registered notifier
// only needs to keep the compiler from reordering.
//
// Rules:
//   * light_barrier() is a compiler barrier only once this process registered with
//     MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED (mproc::init does, and again in a forked child);
//     until then, or where the kernel lacks membarrier, it is a seq_cst fence.
//   * heavy_barrier() is membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) where the kernel offers it
//     (it reaches every registered process, whether the caller is registered or not), else a
//     seq_cst fence. So a light barrier is never paired with a fence that cannot cover it.
//   * ThreadSanitizer does not model membarrier: under TSan both are seq_cst fences.
#pragma once

#include <atomic>

#include "mproc/export.hpp"

namespace mproc::detail {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kAsymmetricBarriers = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kAsymmetricBarriers = false;
#else
inline constexpr bool kAsymmetricBarriers = true;
#endif
#else
inline constexpr bool kAsymmetricBarriers = true;
#endif

/// True once this process is registered for global expedited membarrier (set by
/// enable_light_barriers()).
MPROC_API extern std::atomic<bool> g_light_barriers;

/// Registers this process (idempotent) and reports whether light barriers are now in effect.
MPROC_API bool enable_light_barriers() noexcept;

/// A full barrier for the waiting (rare) side. @concurrent any; a system call when available.
MPROC_API void heavy_barrier() noexcept;

/// A full barrier for the notifying (frequent) side, valid against heavy_barrier().
inline void light_barrier() noexcept {
  // relaxed: the flag is set once per process, before any notify that relies on it can run
  // (mproc::init runs before the caller's threads; a forked child re-registers before fork returns).
  if (kAsymmetricBarriers && g_light_barriers.load(std::memory_order_relaxed)) {
    // [sync:wait_word.fence] compiler barrier: the waiter's membarrier supplies the CPU barrier.
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    // [sync:wait_word.fence] seq_cst fence: pairs with heavy_barrier()'s fence or membarrier.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace mproc::detail
