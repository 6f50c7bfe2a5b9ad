// Named queues: their segments (runtime/platform/linux/shm.hpp's validated named segments) and
// who unlinks them.
#include "queues/named.hpp"

#include <string>

#include "mproc/detail/liveness.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {

NamedRegion::NamedRegion(platform::NamedSegment segment, bool owner)
    : segment_(std::move(segment)),
      owner_(owner ? process_identity() : 0),
      name_(segment_.name().substr(1)) {}

bool NamedRegion::owned_here() const noexcept {
  return owner_ != 0 && owner_ == process_identity();
}

NamedRegion::~NamedRegion() {
  // Only the creating process unlinks, and only once its last handle goes: a forked child holds
  // copies of the parent's handles but does not own the name.
  if (owner_ != 0 && owner_ == process_identity()) (void)platform::unlink_named(segment_.name());
}

namespace {

[[noreturn]] void throw_named_error(std::error_code code, std::string_view name, const char* action,
                                    const char* what_kind) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on the chained form.
  std::string what = "cannot ";
  what.append(action).append(" ").append(what_kind).append(" '").append(name).append("'");
  if (code.category() == platform::segment_category()) {
    switch (static_cast<platform::SegmentErrc>(code.value())) {
      case platform::SegmentErrc::type_mismatch:
        throw ValueError(what + ": it carries another message type");
      case platform::SegmentErrc::kind_mismatch:
        throw ValueError(what + ": it is not a " + what_kind);
      case platform::SegmentErrc::version_mismatch:
        throw ValueError(what + ": it was made by an incompatible mproc build");
      default:
        throw ValueError(what + ": " + code.message());
    }
  }
  throw_os_error(code, what);
}

}  // namespace

std::shared_ptr<NamedRegion> create_named_region(std::string_view name, std::size_t size,
                                                 std::uint64_t type_hash, std::uint32_t kind,
                                                 const char* what) {
  auto segment = platform::create_named(name, size, platform::SegmentSpec{type_hash, kind, size});
  if (!segment) throw_named_error(segment.error(), name, "create", what);
  return std::make_shared<NamedRegion>(std::move(*segment), /*owner=*/true);
}

std::shared_ptr<NamedRegion> open_named_region(std::string_view name, std::uint64_t type_hash,
                                               std::uint32_t kind, std::size_t min_size, const char* what) {
  auto segment = platform::open_named(name, platform::SegmentSpec{type_hash, kind, min_size});
  if (!segment) throw_named_error(segment.error(), name, "open", what);
  return std::make_shared<NamedRegion>(std::move(*segment), /*owner=*/false);
}

}  // namespace mproc::detail
