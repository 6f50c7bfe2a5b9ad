// Named queue segments (runtime-private): created and validated through the platform's named
// segments, unlinked by the process that created them when its last handle goes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "platform/linux/shm.hpp"

namespace mproc::detail {

/// What kind of named object a segment holds (SegmentHeader::kind): a queue, whatever its T.
inline constexpr std::uint32_t kNamedQueueKind = 0x51554555;  // "UEUQ"

class NamedRegion {
 public:
  NamedRegion(platform::NamedSegment segment, bool owner);
  ~NamedRegion();
  NamedRegion(const NamedRegion&) = delete;
  NamedRegion& operator=(const NamedRegion&) = delete;

  platform::NamedSegment& segment() noexcept { return segment_; }
  [[nodiscard]] std::span<std::byte> payload() const noexcept { return segment_.payload(); }
  /// Whether this process made the segment and will unlink it with its last handle.
  [[nodiscard]] bool owned_here() const noexcept;
  /// This process will not unlink the segment (someone else still uses it; the last user or a
  /// later creator takes care of it).
  void disown() noexcept { owner_ = 0; }
  /// The name as the user spelled it (without the leading '/').
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  platform::NamedSegment segment_;
  std::uint64_t owner_;  // the creating process's identity (0: not the owner); a forked child differs
  std::string name_;
};

/// `what` names the kind of object in messages ("Queue", "Connection").
/// Creates `name` (FileExistsError if it exists; ValueError for a bad name) with `size`
/// zero-filled payload bytes; publish() its segment once the payload is initialised.
std::shared_ptr<NamedRegion> create_named_region(std::string_view name, std::size_t size,
                                                 std::uint64_t type_hash, std::uint32_t kind,
                                                 const char* what);
/// Opens `name`, validated: FileNotFoundError, or ValueError naming what does not match (another
/// type of message, another kind of object, another mproc layout version).
std::shared_ptr<NamedRegion> open_named_region(std::string_view name, std::uint64_t type_hash,
                                               std::uint32_t kind, std::size_t min_size, const char* what);

}  // namespace mproc::detail
