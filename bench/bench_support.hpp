// Helpers the cross-process benchmarks share: a zeroed shared region that forked children
// inherit (for the controls and peers, which bring no shared memory of their own), one clock
// read, and the spin hint.
#pragma once

#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <new>

namespace mproc_bench {

/// A zeroed MAP_SHARED region holding a T built in place; nullptr if mmap fails.
template <class T>
T* shared_region() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : new (p) T{};
}

/// Destroys the T and unmaps its region.
template <class T>
void release_region(T* p) {
  p->~T();
  munmap(p, sizeof(T));
}

/// steady_clock in nanoseconds: the same clock in every process of the machine.
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The x86 pause instruction, between polls of a spinning control.
inline void pause_cpu() {
  __builtin_ia32_pause();
}

}  // namespace mproc_bench
