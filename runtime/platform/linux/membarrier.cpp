// membarrier(2) for detail::light_barrier / heavy_barrier (include/mproc/detail/barrier.hpp).
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "mproc/detail/barrier.hpp"

namespace mproc::detail {

std::atomic<bool> g_light_barriers{false};

namespace {

long membarrier(int cmd) noexcept {
  return ::syscall(SYS_membarrier, cmd, 0U, 0);
}

// Whether the kernel offers global expedited membarrier: asked once.
bool kernel_supports() noexcept {
  static const bool supported = [] {
    const long commands = membarrier(MEMBARRIER_CMD_QUERY);
    return commands > 0 && (commands & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
           (commands & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0;
  }();
  return supported;
}

bool register_self() noexcept {
  return kAsymmetricBarriers && kernel_supports() &&
         membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
}

// A forked child has a new address space: register it again before it runs anything (the
// registration belongs to the memory map; whether fork copies it is not documented).
void reregister_in_child() noexcept {
  // relaxed: the child is single-threaded while fork's handlers run.
  if (g_light_barriers.load(std::memory_order_relaxed))
    g_light_barriers.store(register_self(), std::memory_order_relaxed);
}

[[maybe_unused]] const int g_atfork = ::pthread_atfork(nullptr, nullptr, reregister_in_child);

}  // namespace

bool enable_light_barriers() noexcept {
  // relaxed: see light_barrier(); registration itself is a system call, ordered by the kernel.
  if (!g_light_barriers.load(std::memory_order_relaxed) && register_self()) {
    g_light_barriers.store(true, std::memory_order_relaxed);  // relaxed: as above
  }
  return g_light_barriers.load(std::memory_order_relaxed);  // relaxed: as above
}

void heavy_barrier() noexcept {
  if (kAsymmetricBarriers && kernel_supports() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return;
  // [sync:wait_word.fence] seq_cst fence: pairs with light_barrier(), a fence in every process then.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace mproc::detail
