// SpillArena and SpillView (spill.hpp).
#include "pool/spill.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "mproc/errors.hpp"

namespace mproc::detail {

namespace {

constexpr std::uint64_t kPage = 4096;

std::uint64_t round_to_pages(std::uint64_t n) {
  return (n + kPage - 1) / kPage * kPage;
}

}  // namespace

SpillArena::SpillArena() {
  auto fd = platform::create_growable("pool-spill");
  if (!fd) throw_os_error(fd.error(), "memfd_create of a pool's spill area");
  fd_ = std::move(*fd);
}

std::uint64_t SpillArena::allocate(std::uint64_t size) {
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < size) continue;
    const std::uint64_t offset = it->first;
    const std::uint64_t rest = it->second - size;
    free_.erase(it);
    if (rest != 0) free_.emplace(offset + size, rest);
    return offset;
  }
  // Grow: at least double, so that a run of large chunks costs few remaps.
  const std::uint64_t old_size = size_;
  const std::uint64_t new_size = std::max(old_size * 2, old_size + size);
  if (auto grown = platform::grow_file(fd_.get(), new_size); !grown) {
    throw_os_error(grown.error(), "growing a pool's spill area to " + std::to_string(new_size) + " bytes");
  }
  auto mapping = platform::map_shared(fd_.get(), new_size);
  if (!mapping) throw_os_error(mapping.error(), "mmap of a pool's spill area");
  map_ = std::move(*mapping);
  size_ = new_size;
  // The new space joins the free list (merged with a free region that ended at the old size).
  std::uint64_t start = old_size;
  std::uint64_t length = new_size - old_size;
  if (!free_.empty()) {
    auto last = std::prev(free_.end());
    if (last->first + last->second == old_size) {
      start = last->first;
      length += last->second;
      free_.erase(last);
    }
  }
  if (length > size) free_.emplace(start + size, length - size);
  return start;
}

std::uint64_t SpillArena::store(std::span<const std::span<const std::byte>> parts) {
  std::uint64_t total = 0;
  for (const auto& p : parts) total += p.size();
  const std::uint64_t size = round_to_pages(std::max<std::uint64_t>(total, 1));
  const std::uint64_t offset = allocate(size);
  used_.emplace(offset, size);
  std::byte* out = map_.data() + offset;
  for (const auto& p : parts) {
    if (!p.empty()) std::memcpy(out, p.data(), p.size());
    out += p.size();
  }
  return offset;
}

void SpillArena::release(std::uint64_t offset) noexcept {
  auto it = used_.find(offset);
  if (it == used_.end()) return;
  std::uint64_t start = it->first;
  std::uint64_t length = it->second;
  used_.erase(it);
  // Coalesce with the free neighbours on both sides.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + length) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  free_.emplace(start, length);
}

std::uint64_t SpillArena::in_use() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [offset, length] : used_) n += length;
  return n;
}

std::optional<std::span<const std::byte>> SpillView::bytes(std::uint64_t offset,
                                                           std::uint64_t size) noexcept {
  if (offset > UINT64_MAX - size) return std::nullopt;
  const std::uint64_t end = offset + size;
  if (end > map_.size()) {
    // The file only grows (sealed against shrinking), so a mapping of its current size stays
    // valid; a region past the file's end is a corrupt record.
    if (!platform::sealed_against_shrinking(fd_)) return std::nullopt;
    auto file = platform::file_size(fd_);
    if (!file || *file < end || *file == 0) return std::nullopt;
    auto mapping = platform::map_shared(fd_, static_cast<std::size_t>(*file));
    if (!mapping) return std::nullopt;
    map_ = std::move(*mapping);
  }
  return std::span<const std::byte>(map_.data() + offset, static_cast<std::size_t>(size));
}

}  // namespace mproc::detail
