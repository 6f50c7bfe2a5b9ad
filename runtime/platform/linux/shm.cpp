#include "platform/linux/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <thread>

namespace mproc::platform {
namespace {

// ---------------------------------------------------------------------------------------------
// Errors

class SegmentCategory final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "mproc.segment"; }

  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<SegmentErrc>(value)) {
      case SegmentErrc::bad_name:
        return "invalid shared memory name: use 1 to 253 characters after an optional leading '/', "
               "without '/' or NUL, and not '.' or '..'";
      case SegmentErrc::bad_magic:
        return "not an mproc segment (bad magic): the name belongs to another program, or its creator "
               "died before writing the header";
      case SegmentErrc::version_mismatch:
        return "segment layout version differs: it was created by an incompatible mproc build";
      case SegmentErrc::type_mismatch:
        return "segment holds another payload type (ABI hash mismatch): check the type both sides use";
      case SegmentErrc::kind_mismatch:
        return "segment holds another kind of mproc object than the one requested";
      case SegmentErrc::truncated:
        return "segment is smaller than its header says or than the payload type needs";
      case SegmentErrc::not_ready:
        return "segment was not published in time: its creator is still initialising it, or died "
               "before publishing";
      case SegmentErrc::too_large:
        return "requested segment size is too large";
      case SegmentErrc::not_sealed:
        return "descriptor is not a memfd sealed against shrinking; refusing to map it";
    }
    return "unknown mproc.segment error " + std::to_string(value);
  }

  // bad_name compares equal to std::errc::invalid_argument, as shm_open's EINVAL would.
  [[nodiscard]] std::error_condition default_error_condition(int value) const noexcept override {
    if (static_cast<SegmentErrc>(value) == SegmentErrc::bad_name) return std::errc::invalid_argument;
    return {value, *this};
  }
};

Unexpected segment_error(SegmentErrc e) noexcept {
  return unexpected(make_error_code(e));
}

// ---------------------------------------------------------------------------------------------
// Sizes and names

// Largest segment we create or map: it must fit in off_t (ftruncate) and in ptrdiff_t (pointer
// arithmetic over the mapping).
constexpr std::uint64_t kMaxSegmentSize =
    std::min<std::uint64_t>(static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()),
                            static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max()));

// glibc's shm_open refuses a name whose length plus its NUL reaches NAME_MAX (after the '/').
constexpr std::size_t kMaxNameLength = NAME_MAX - 2;

// memfd_create's limit: NAME_MAX minus the "memfd:" prefix the kernel adds (MFD_NAME_MAX_LEN).
constexpr std::size_t kMaxMemfdNameLength = NAME_MAX - 6;

Expected<std::uint64_t> file_size_of(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return unexpected_errno(errno);
  return static_cast<std::uint64_t>(st.st_size);
}

// ---------------------------------------------------------------------------------------------
// The header

std::uint32_t& shared_state_word(std::byte* segment) noexcept {
  return *reinterpret_cast<std::uint32_t*>(segment + offsetof(SegmentHeader, state));
}

// Copies the shared header into private memory with volatile reads, each byte read exactly once.
// Not memcpy: a peer may rewrite the header concurrently, and with a plain copy the compiler may
// re-read the shared bytes later instead of keeping the copy, so a value could change between its
// validation and its use. Everything after this works on the copy only.
SegmentHeader copy_header_once(const std::byte* segment) noexcept {
  SegmentHeader copy{};
  const auto* src = reinterpret_cast<const volatile unsigned char*>(segment);
  auto* dst = reinterpret_cast<unsigned char*>(&copy);
  for (std::size_t i = 0; i < sizeof(SegmentHeader); ++i) dst[i] = src[i];
  return copy;
}

// Validates a private header copy against the file it came from and what the opener expects.
// file_size >= sizeof(SegmentHeader) holds already.
std::error_code validate_header(const SegmentHeader& h, std::uint64_t file_size,
                                const SegmentSpec& spec) noexcept {
  if (h.magic != kSegmentMagic) return SegmentErrc::bad_magic;
  if (h.layout_version != kSegmentLayoutVersion || h.header_size != sizeof(SegmentHeader)) {
    return SegmentErrc::version_mismatch;
  }
  // No overflow: header_size == sizeof(SegmentHeader) <= file_size.
  if (h.payload_size == 0 || h.payload_size > file_size - h.header_size) return SegmentErrc::truncated;
  if (h.abi_hash != spec.abi_hash) return SegmentErrc::type_mismatch;
  if (h.kind != spec.kind) return SegmentErrc::kind_mismatch;
  if (h.payload_size < spec.min_payload_size) return SegmentErrc::truncated;
  return {};
}

// Sleeps between polls of a segment being created: 50 us doubling to 2 ms, never past the
// deadline. Sleeping is fine here: opening is setup, not a hot path.
class PollBackoff {
 public:
  explicit PollBackoff(std::chrono::nanoseconds timeout) noexcept {
    const auto now = std::chrono::steady_clock::now();
    const auto room = std::chrono::steady_clock::time_point::max() - now;
    deadline_ = timeout <= std::chrono::nanoseconds::zero() ? now
                : timeout >= room                           ? std::chrono::steady_clock::time_point::max()
                                                            : now + timeout;
  }
  [[nodiscard]] bool expired() const noexcept { return std::chrono::steady_clock::now() >= deadline_; }
  void sleep() noexcept {
    const auto left = deadline_ - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(step_, left));
    step_ = std::min(step_ * 2, std::chrono::microseconds(2000));
  }

 private:
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::microseconds step_{50};
};

// shm_open(O_CREAT | O_EXCL | O_RDWR, 0600), as CPython does. EEXIST leaves the existing segment
// alone; the caller unlinks the name only after this succeeded.
Expected<UniqueFd> create_exclusive(const std::string& name) noexcept {
  int fd = retry_eintr([&] { return ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600); });
  if (fd < 0) return unexpected_errno(errno);
  return UniqueFd(fd);
}

Expected<UniqueFd> open_existing(const std::string& name) noexcept {
  int fd = retry_eintr([&] { return ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0); });
  if (fd < 0) return unexpected_errno(errno);
  return UniqueFd(fd);
}

// Sizes a new named segment with its pages allocated, so that a full /dev/shm (64 MiB in a
// default Docker container) is ENOSPC now rather than SIGBUS when the payload is first touched.
Expected<void> allocate(int fd, std::uint64_t size) noexcept {
  const auto length = static_cast<off_t>(size);
  if (retry_eintr([&] { return ::fallocate(fd, 0, 0, length); }) == 0) return {};
  if (errno != EOPNOTSUPP) return unexpected_errno(errno);
  if (retry_eintr([&] { return ::ftruncate(fd, length); }) != 0) return unexpected_errno(errno);
  return {};
}

// Unlinks a segment this process has just created, on a later step's failure, and returns the
// error of that step.
Unexpected undo_create(const std::string& name, std::error_code error) noexcept {
  ::shm_unlink(name.c_str());
  return unexpected(error);
}

}  // namespace

const std::error_category& segment_category() noexcept {
  static const SegmentCategory category;
  return category;
}

// ---------------------------------------------------------------------------------------------
// Mappings

void Mapping::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

Expected<Mapping> map_shared(int fd, std::size_t size) noexcept {
  if (size == 0) return unexpected_errno(EINVAL);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return unexpected_errno(errno);
  return Mapping(p, size);
}

// ---------------------------------------------------------------------------------------------
// Anonymous segments

Expected<AnonymousSegment> create_anonymous(std::size_t size, std::string_view tag) noexcept {
  if (size == 0) return unexpected_errno(EINVAL);
  if (size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);
  std::string label = "mproc:";
  label.append(tag.substr(0, tag.find('\0')));
  if (label.size() > kMaxMemfdNameLength) label.resize(kMaxMemfdNameLength);

  int raw = ::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return unexpected_errno(errno);
  UniqueFd fd(raw);
  if (retry_eintr([&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); }) != 0) {
    return unexpected_errno(errno);
  }
  // Fixed size for good: nobody holding the descriptor can shrink it (SIGBUS for everyone mapping
  // it), grow it, or add further seals (F_SEAL_FUTURE_WRITE would break the next child's mmap).
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return unexpected_errno(errno);
  }
  auto mapping = map_shared(fd.get(), size);
  if (!mapping) return unexpected(mapping.error());
  return AnonymousSegment(std::move(fd), std::move(*mapping));
}

Expected<UniqueFd> create_growable(std::string_view tag) noexcept {
  std::string label = "mproc:";
  label.append(tag.substr(0, kMaxMemfdNameLength - label.size()));
  int raw = ::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return unexpected_errno(errno);
  UniqueFd fd(raw);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) return unexpected_errno(errno);
  return fd;
}

Expected<void> grow_file(int fd, std::uint64_t size) noexcept {
  if (size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);
  auto now = file_size_of(fd);
  if (!now) return unexpected(now.error());
  if (*now >= size) return {};
  if (retry_eintr([&] { return ::ftruncate(fd, static_cast<off_t>(size)); }) != 0)
    return unexpected_errno(errno);
  return {};
}

Expected<std::uint64_t> file_size(int fd) noexcept {
  return file_size_of(fd);
}

bool sealed_against_shrinking(int fd) noexcept {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
}

Expected<AnonymousSegment> map_anonymous_fd(UniqueFd fd) noexcept {
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) {
    if (errno == EINVAL) return segment_error(SegmentErrc::not_sealed);  // not a sealable file
    return unexpected_errno(errno);
  }
  if ((seals & F_SEAL_SHRINK) == 0) return segment_error(SegmentErrc::not_sealed);
  // Read after the seal check: from here on the size can only grow, never shrink under us.
  auto size = file_size_of(fd.get());
  if (!size) return unexpected(size.error());
  if (*size == 0) return segment_error(SegmentErrc::truncated);
  if (*size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);
  auto mapping = map_shared(fd.get(), static_cast<std::size_t>(*size));
  if (!mapping) return unexpected(mapping.error());
  return AnonymousSegment(std::move(fd), std::move(*mapping));
}

// ---------------------------------------------------------------------------------------------
// Named segments with a header

Expected<std::string> canonical_segment_name(std::string_view name) noexcept {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty() || name.size() > kMaxNameLength || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return segment_error(SegmentErrc::bad_name);
  }
  std::string canonical;
  canonical.reserve(name.size() + 1);
  canonical.push_back('/');
  canonical.append(name);
  return canonical;
}

void NamedSegment::publish() noexcept {
  if (published_) return;
  std::atomic_ref<std::uint32_t> state(shared_state_word(mapping_.data()));
  // [sync:shm.publish] release: makes the header and everything the creator wrote to the payload
  // visible; pairs with the [sync:shm.publish] acquire in open_named().
  state.store(kSegmentReady, std::memory_order_release);
  header_.state = kSegmentReady;
  published_ = true;
}

Expected<NamedSegment> create_named(std::string_view name, std::size_t payload_size,
                                    const SegmentSpec& spec) noexcept {
  auto canonical = canonical_segment_name(name);
  if (!canonical) return unexpected(canonical.error());
  if (payload_size == 0 || payload_size < spec.min_payload_size) return unexpected_errno(EINVAL);
  if (payload_size > kMaxSegmentSize - sizeof(SegmentHeader)) return segment_error(SegmentErrc::too_large);
  const std::size_t total = sizeof(SegmentHeader) + payload_size;

  auto fd = create_exclusive(*canonical);
  if (!fd) return unexpected(fd.error());
  // From here the name is ours: every failure unlinks it again.
  if (auto sized = allocate(fd->get(), total); !sized) return undo_create(*canonical, sized.error());
  auto mapping = map_shared(fd->get(), total);
  if (!mapping) return undo_create(*canonical, mapping.error());

  SegmentHeader header{};
  header.magic = kSegmentMagic;
  header.layout_version = kSegmentLayoutVersion;
  header.header_size = sizeof(SegmentHeader);
  header.abi_hash = spec.abi_hash;
  header.kind = spec.kind;
  header.reserved = 0;
  header.payload_size = payload_size;
  header.state = kSegmentInitialising;
  // Everything but state, which stays 0 (initialising) from fallocate until publish().
  std::memcpy(mapping->data(), &header, offsetof(SegmentHeader, state));
  return NamedSegment(std::move(*canonical), std::move(*mapping), header, /*published=*/false);
}

Expected<NamedSegment> open_named(std::string_view name, const SegmentSpec& spec,
                                  std::chrono::nanoseconds ready_timeout) noexcept {
  auto canonical = canonical_segment_name(name);
  if (!canonical) return unexpected(canonical.error());
  auto fd = open_existing(*canonical);
  if (!fd) return unexpected(fd.error());
  PollBackoff backoff(ready_timeout);

  // 1. Size. An empty file is a segment whose creator has not sized it yet (create_named sizes it
  // in one fallocate, so the size is either 0 or final). Anything else smaller than a header was
  // not made by create_named.
  std::uint64_t file_size = 0;
  for (;;) {
    auto size = file_size_of(fd->get());
    if (!size) return unexpected(size.error());
    file_size = *size;
    if (file_size != 0) break;
    if (backoff.expired()) return segment_error(SegmentErrc::not_ready);
    backoff.sleep();
  }
  if (file_size < sizeof(SegmentHeader)) return segment_error(SegmentErrc::truncated);
  if (file_size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);

  // 2. Map the whole file; the descriptor is not needed after that.
  auto mapping = map_shared(fd->get(), static_cast<std::size_t>(file_size));
  if (!mapping) return unexpected(mapping.error());
  fd->reset();

  // 3. Wait for publish(), then validate one private copy of the header.
  std::atomic_ref<std::uint32_t> state(shared_state_word(mapping->data()));
  for (;;) {
    // [sync:shm.publish] acquire: pairs with the [sync:shm.publish] release in
    // NamedSegment::publish(); once kSegmentReady is read, the header and the payload the creator
    // initialised are visible.
    const std::uint32_t seen = state.load(std::memory_order_acquire);
    const bool ready = seen == kSegmentReady;
    // A state that is neither value is garbage: report what the header says without waiting.
    if (ready || seen != kSegmentInitialising || backoff.expired()) {
      SegmentHeader copy = copy_header_once(mapping->data());
      if (auto error = validate_header(copy, file_size, spec)) return unexpected(error);
      if (!ready) return segment_error(SegmentErrc::not_ready);
      copy.state = kSegmentReady;
      return NamedSegment(std::move(*canonical), std::move(*mapping), copy, /*published=*/true);
    }
    backoff.sleep();
  }
}

Expected<void> unlink_named(std::string_view name) noexcept {
  auto canonical = canonical_segment_name(name);
  if (!canonical) return unexpected(canonical.error());
  if (::shm_unlink(canonical->c_str()) != 0) return unexpected_errno(errno);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Raw named segments

Expected<Mapping> create_raw_named(std::string_view name, std::size_t size) noexcept {
  auto canonical = canonical_segment_name(name);
  if (!canonical) return unexpected(canonical.error());
  if (size == 0) return unexpected_errno(EINVAL);
  if (size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);
  auto fd = create_exclusive(*canonical);
  if (!fd) return unexpected(fd.error());
  if (retry_eintr([&] { return ::ftruncate(fd->get(), static_cast<off_t>(size)); }) != 0) {
    return undo_create(*canonical, std::error_code(errno, std::system_category()));
  }
  auto mapping = map_shared(fd->get(), size);
  if (!mapping) return undo_create(*canonical, mapping.error());
  return std::move(*mapping);
}

Expected<Mapping> open_raw_named(std::string_view name) noexcept {
  auto canonical = canonical_segment_name(name);
  if (!canonical) return unexpected(canonical.error());
  auto fd = open_existing(*canonical);
  if (!fd) return unexpected(fd.error());
  auto size = file_size_of(fd->get());
  if (!size) return unexpected(size.error());
  if (*size == 0) return segment_error(SegmentErrc::truncated);
  if (*size > kMaxSegmentSize) return segment_error(SegmentErrc::too_large);
  return map_shared(fd->get(), static_cast<std::size_t>(*size));
}

}  // namespace mproc::platform
