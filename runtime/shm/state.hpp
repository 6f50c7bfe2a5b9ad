// The state every copy of a SharedMemory handle (and every View of it) shares in one process.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "platform/linux/shm.hpp"

namespace mproc::detail {

struct SharedMemoryState {
  SharedMemoryState(std::string segment_name, platform::Mapping segment) noexcept
      : name(std::move(segment_name)),
        data(segment.data()),
        size(segment.size()),
        mapping(std::move(segment)) {}

  const std::string name;  ///< without the leading '/'
  std::byte* const data;   ///< where the segment is mapped; unmapped (dangling) once closed
  const std::size_t size;  ///< bytes in the segment, also after close
  /// Unmapped by close() (once kClosed is set) or by the destructor, when no handle or View is left.
  platform::Mapping mapping;

  /// kClosed, plus the number of live Views in the low bits. Invariants:
  ///   1. kClosed is set at most once, by close(), and only when the count is 0;
  ///   2. the count grows only while kClosed is clear (buf() checks both in one CAS) or from a
  ///      live View (a copy), so once kClosed is set it stays 0;
  ///   3. mapping is reset only after kClosed is set, so a counted View always sees it mapped.
  std::atomic<std::uint64_t> views{0};
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;
};

}  // namespace mproc::detail
