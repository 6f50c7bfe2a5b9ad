// Named queues: their segments (runtime/platform/linux/shm.hpp's validated named segments) and
// who unlinks them.
#include <unistd.h>

#include <string>

#include "mproc/queues.hpp"
#include "platform/linux/shm.hpp"

namespace mproc::detail {

class NamedRegion {
 public:
  NamedRegion(platform::NamedSegment segment, bool owner)
      : segment_(std::move(segment)), owner_pid_(owner ? ::getpid() : 0), name_(segment_.name().substr(1)) {}
  ~NamedRegion() {
    // Only the creating process unlinks, and only once its last handle goes: a forked child
    // holds copies of the parent's handles but does not own the name.
    if (owner_pid_ != 0 && owner_pid_ == ::getpid()) (void)platform::unlink_named(segment_.name());
  }
  NamedRegion(const NamedRegion&) = delete;
  NamedRegion& operator=(const NamedRegion&) = delete;

  platform::NamedSegment& segment() noexcept { return segment_; }
  /// The name as the user spelled it (without the leading '/').
  const std::string& name() const noexcept { return name_; }

 private:
  platform::NamedSegment segment_;
  pid_t owner_pid_;
  std::string name_;
};

namespace {

[[noreturn]] void throw_named_error(std::error_code code, std::string_view name, const char* action) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on the chained form.
  std::string what = "cannot ";
  what.append(action).append(" Queue '").append(name).append("'");
  if (code.category() == platform::segment_category()) {
    switch (static_cast<platform::SegmentErrc>(code.value())) {
      case platform::SegmentErrc::type_mismatch:
        throw ValueError(what + ": it carries another message type");
      case platform::SegmentErrc::kind_mismatch:
        throw ValueError(what + ": it is not a Queue");
      case platform::SegmentErrc::version_mismatch:
        throw ValueError(what + ": it was made by an incompatible mproc build");
      default:
        throw ValueError(what + ": " + code.message());
    }
  }
  throw_os_error(code, what);
}

}  // namespace

NamedRegionRef create_named_region(std::string_view name, std::size_t size, std::uint64_t type_hash,
                                   std::uint32_t kind) {
  auto segment = platform::create_named(name, size, platform::SegmentSpec{type_hash, kind, size});
  if (!segment) throw_named_error(segment.error(), name, "create");
  auto region = std::make_shared<NamedRegion>(std::move(*segment), /*owner=*/true);
  const auto payload = region->segment().payload();
  return {std::move(region), payload};
}

void publish_named_region(NamedRegion& region) noexcept {
  region.segment().publish();
}

NamedRegionRef open_named_region(std::string_view name, std::uint64_t type_hash, std::uint32_t kind,
                                 std::size_t min_size) {
  auto segment = platform::open_named(name, platform::SegmentSpec{type_hash, kind, min_size});
  if (!segment) throw_named_error(segment.error(), name, "open");
  auto region = std::make_shared<NamedRegion>(std::move(*segment), /*owner=*/false);
  const auto payload = region->segment().payload();
  return {std::move(region), payload};
}

const std::string& named_region_name(const NamedRegion& region) noexcept {
  return region.name();
}

}  // namespace mproc::detail
