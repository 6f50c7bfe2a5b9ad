// The spill area of a Pool: where the arguments of a chunk too large for a ring record go.
//
// One memfd per pool, made before the workers (fork workers inherit it, spawn and forkserver
// workers receive it with their arguments). It only grows (sealed against shrinking, so that no
// holder can truncate pages another has mapped), and the parent hands out regions of it: a
// spilled task record carries the region's offset and size instead of the arguments, the worker
// maps the file (again, when it has grown past its mapping) and decodes in place, and the parent
// gives the region back when the chunk is done. The kernel frees the file with its last
// descriptor, so nothing outlives the pool's processes, whatever happens to them.
//
// Results take the other way: a result larger than a record crosses the result ring in parts
// (pool_shared.hpp, kResultPart), which the parent puts together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>

#include "platform/linux/fd.hpp"
#include "platform/linux/shm.hpp"

namespace mproc::detail {

/// The parent's side: a first-fit allocator over the growing file. Not thread-safe (the pool's
/// mutex guards it).
class SpillArena {
 public:
  /// Creates the (empty) file. Throws OSError.
  SpillArena();

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  /// Copies the concatenation of parts into a new region; returns its offset. Grows the file when
  /// no free region is large enough. Throws OSError (for instance when memory runs out).
  std::uint64_t store(std::span<const std::span<const std::byte>> parts);
  /// Gives a region back (an offset store() returned; others are ignored).
  void release(std::uint64_t offset) noexcept;
  /// Bytes handed out and not given back (tests).
  [[nodiscard]] std::uint64_t in_use() const noexcept;

 private:
  std::uint64_t allocate(std::uint64_t size);

  platform::UniqueFd fd_;
  platform::Mapping map_;
  std::uint64_t size_ = 0;
  std::map<std::uint64_t, std::uint64_t> free_;  // offset -> length, coalesced
  std::map<std::uint64_t, std::uint64_t> used_;  // offset -> length
};

/// A worker's side: maps the file, and maps it again when a region lies past the mapping.
class SpillView {
 public:
  explicit SpillView(int fd) noexcept : fd_(fd) {}
  /// [offset, offset + size) of the file, or nullopt when it lies outside the file (a corrupt
  /// record) or the file cannot be mapped.
  std::optional<std::span<const std::byte>> bytes(std::uint64_t offset, std::uint64_t size) noexcept;

 private:
  int fd_;
  platform::Mapping map_;
};

}  // namespace mproc::detail
