// Shared-memory segments: the mappings every shared mproc object lives in.
//
// Three kinds, one per use:
//   - anonymous (memfd): shared with our own children by inheritance or SCM_RIGHTS; never in
//     /dev/shm, gone when the last descriptor and mapping go; sealed against shrinking.
//   - named with a header: for unrelated processes that meet by name. The segment starts with a
//     SegmentHeader (magic, layout version, payload ABI hash, kind, size) that open_named()
//     validates before handing out the payload, and that the creator publishes last.
//   - raw named: no header, for CPython's multiprocessing.shared_memory.SharedMemory, which reads
//     and writes the whole segment.
//
// Every mapping is MAP_SHARED, read-write. Every function returns Expected and never throws
// (they are noexcept: an allocation failure for a name terminates). Segment errors are in
// segment_category() ("mproc.segment"); errors of system calls stay in std::system_category()
// (ENOENT, EEXIST, EACCES, ...) so that the API layer maps them to FileNotFoundError & co.
//
// What a peer with write access can still do to a *named* segment: truncate it (the kernel then
// delivers SIGBUS to whoever touches the lost pages; named segments cannot be sealed, CPython has
// the same exposure) or scribble over the payload. Validation makes open_named() itself safe
// against any header content; the payload's protocol must tolerate scribbling on its own.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "mproc/core/layout.hpp"
#include "mproc/expected.hpp"
#include "platform/linux/fd.hpp"

namespace mproc::platform {

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a segment was refused. Values are stable (they may be logged or compared across builds).
enum class SegmentErrc {
  bad_name = 1,      ///< empty, too long, a '/' after the first character, a NUL, "." or ".."
  bad_magic,         ///< not an mproc segment (or its creator died before writing the header)
  version_mismatch,  ///< header from an incompatible mproc build (layout version or header size)
  type_mismatch,     ///< payload ABI hash differs: the segment holds another type
  kind_mismatch,     ///< the segment is another kind of object (a Queue opened as a Lock, ...)
  truncated,         ///< file smaller than the header says, or payload smaller than expected
  not_ready,         ///< the creator did not publish() within the wait
  too_large,         ///< a requested size does not fit in off_t / the address space
  not_sealed,        ///< a descriptor to map is not a memfd sealed against shrinking
};

/// The "mproc.segment" category.
const std::error_category& segment_category() noexcept;

inline std::error_code make_error_code(SegmentErrc e) noexcept {
  return {static_cast<int>(e), segment_category()};
}

}  // namespace mproc::platform

template <>
struct std::is_error_code_enum<mproc::platform::SegmentErrc> : std::true_type {};

namespace mproc::platform {

// ---------------------------------------------------------------------------------------------
// Mappings

/// Owns one mmap'd range; munmaps it on destruction. Move-only. An empty Mapping has
/// data() == nullptr and size() == 0.
class Mapping {
 public:
  Mapping() noexcept = default;
  /// Adopts [data, data + size), which must come from mmap.
  Mapping(void* data, std::size_t size) noexcept : data_(static_cast<std::byte*>(data)), size_(size) {}
  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  /// The mapped memory. Like std::span, constness of the handle does not extend to the bytes.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] bool valid() const noexcept { return data_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  /// Unmaps now (if mapped). munmap errors are ignored: with the range mmap returned it fails only
  /// on a programmer error, and there is nothing a caller could do.
  void reset() noexcept;

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED) of fd from offset 0. size must be > 0.
Expected<Mapping> map_shared(int fd, std::size_t size) noexcept;

// ---------------------------------------------------------------------------------------------
// Anonymous segments (memfd)

/// A memfd and its mapping. The descriptor is O_CLOEXEC; to hand it to a child, pass it over
/// SCM_RIGHTS or dup it without O_CLOEXEC for inheritance across exec (a fork()ed child
/// inherits the mapping itself). Its size is fixed: sealed F_SEAL_SHRINK | F_SEAL_GROW |
/// F_SEAL_SEAL, so no holder of the descriptor can truncate it under us (which would SIGBUS
/// every process touching the lost pages) or add seals such as F_SEAL_FUTURE_WRITE.
class AnonymousSegment {
 public:
  AnonymousSegment(UniqueFd fd, Mapping mapping) noexcept
      : fd_(std::move(fd)), mapping_(std::move(mapping)) {}

  /// The memfd, still owned by this object.
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] std::byte* data() const noexcept { return mapping_.data(); }
  [[nodiscard]] std::size_t size() const noexcept { return mapping_.size(); }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return mapping_.bytes(); }
  [[nodiscard]] const Mapping& mapping() const noexcept { return mapping_; }

 private:
  UniqueFd fd_;
  Mapping mapping_;
};

/// A new zero-filled memfd segment of size bytes, named "mproc:<tag>" (visible in
/// /proc/<pid>/fd and /proc/<pid>/maps for debugging; the tag is cut to the kernel's limit).
/// Errors: EINVAL for size 0, SegmentErrc::too_large, or memfd_create/ftruncate/fcntl/mmap errors.
Expected<AnonymousSegment> create_anonymous(std::size_t size, std::string_view tag) noexcept;

/// Maps a memfd received from a peer, sizing the mapping with fstat. Refuses (not_sealed) any
/// descriptor without F_SEAL_SHRINK: only memfd_create can make such a file, since tmpfs files
/// from shm_open start sealed with F_SEAL_SEAL, and other files cannot be sealed at all. Refuses
/// a size of 0 (truncated). Takes ownership of fd either way.
Expected<AnonymousSegment> map_anonymous_fd(UniqueFd fd) noexcept;

/// A new empty memfd, named "mproc:<tag>", that may grow but never shrink: sealed F_SEAL_SHRINK
/// | F_SEAL_SEAL, so that a peer holding it can make it larger (which costs memory, not safety)
/// but can neither truncate pages someone has mapped (a SIGBUS in every process touching them)
/// nor add F_SEAL_GROW. The Pool's spill area for chunks too large for a ring record.
Expected<UniqueFd> create_growable(std::string_view tag) noexcept;

/// Grows the file to at least size bytes (nothing when it is already that large).
Expected<void> grow_file(int fd, std::uint64_t size) noexcept;

/// The file's size (fstat).
Expected<std::uint64_t> file_size(int fd) noexcept;

/// Whether fd is a file sealed against shrinking (a growable memfd or a sealed segment).
bool sealed_against_shrinking(int fd) noexcept;

// ---------------------------------------------------------------------------------------------
// Named segments with a header

/// Incremented for each incompatible change of SegmentHeader or of a payload protocol that
/// does not otherwise change its type's abi_hash (a new meaning for an existing field, a new
/// state machine in the same bytes). Builds with different versions refuse each other's
/// segments (version_mismatch) rather than misreading them. Adding a field in `reserved` that old
/// readers may ignore is the only change that keeps the version.
inline constexpr std::uint32_t kSegmentLayoutVersion = 2;  // 2: RobustLockWord counts its sleepers beside the word

/// "MPROCSEG": the first 8 bytes of every named mproc segment.
inline constexpr std::array<char, 8> kSegmentMagic{'M', 'P', 'R', 'O', 'C', 'S', 'E', 'G'};

/// SegmentHeader::state values. A freshly ftruncated (zero-filled) segment reads as
/// "initialising", never as "ready".
inline constexpr std::uint32_t kSegmentInitialising = 0;
inline constexpr std::uint32_t kSegmentReady = 1;
static_assert(kSegmentReady != 0, "a zero-filled segment must not look published");

/// The first kCacheLine bytes of a named segment; the payload follows at offset header_size.
/// All fields are plain integers so that the header is trivially copyable (open_named() works on
/// a private copy) and zero-filled memory is a valid object; `state` is accessed only through
/// std::atomic_ref<std::uint32_t>.
struct alignas(kCacheLine) SegmentHeader {
  std::array<char, 8> magic;     ///< kSegmentMagic
  std::uint32_t layout_version;  ///< kSegmentLayoutVersion
  std::uint32_t header_size;     ///< sizeof(SegmentHeader); the payload's offset
  std::uint64_t abi_hash;        ///< SegmentSpec::abi_hash, usually mproc::abi_hash<Payload>()
  std::uint32_t kind;            ///< SegmentSpec::kind
  std::uint32_t reserved;        ///< written as 0, not checked
  std::uint64_t payload_size;    ///< bytes of payload after the header
  std::uint32_t state;           ///< kSegmentInitialising, then kSegmentReady (atomic_ref only)
};
MPROC_SHM_LAYOUT(SegmentHeader);
static_assert(std::is_trivially_copyable_v<SegmentHeader>, "open_named() copies the header");
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free, "state is shared between processes");
// The header is an ABI between separately built programs: its offsets are pinned.
static_assert(offsetof(SegmentHeader, layout_version) == 8 && offsetof(SegmentHeader, header_size) == 12 &&
                  offsetof(SegmentHeader, abi_hash) == 16 && offsetof(SegmentHeader, kind) == 24 &&
                  offsetof(SegmentHeader, payload_size) == 32 && offsetof(SegmentHeader, state) == 40,
              "SegmentHeader field offsets changed: bump kSegmentLayoutVersion");
static_assert(sizeof(SegmentHeader) == kCacheLine,
              "the header fills exactly one cache line so the payload starts on its own line");

/// What the creator declares and the opener expects. Both sides must pass equal specs.
struct SegmentSpec {
  std::uint64_t abi_hash = 0;          ///< mproc::abi_hash<Payload>() for a typed payload
  std::uint32_t kind = 0;              ///< which kind of mproc object (set by the API layer)
  std::uint64_t min_payload_size = 0;  ///< open refuses (truncated) a smaller payload_size
};

/// The spec of a segment whose payload is one T.
template <class T>
constexpr SegmentSpec segment_spec_for(std::uint32_t kind) noexcept {
  return SegmentSpec{abi_hash<T>(), kind, sizeof(T)};
}

/// How long open_named() waits by default for the creator's publish().
inline constexpr std::chrono::milliseconds kDefaultReadyTimeout{1000};

/// A mapped named segment with a validated header. Move-only; unmaps on destruction but never
/// unlinks (the name's lifetime is the caller's business: unlink_named()).
class NamedSegment {
 public:
  NamedSegment(std::string name, Mapping mapping, const SegmentHeader& header, bool published) noexcept
      : name_(std::move(name)), mapping_(std::move(mapping)), header_(header), published_(published) {}

  /// The canonical name, with its leading '/'.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// header().payload_size bytes at a kCacheLine-aligned address. Shared with every process
  /// that opened the segment.
  [[nodiscard]] std::span<std::byte> payload() const noexcept {
    return mapping_.bytes().subspan(header_.header_size, static_cast<std::size_t>(header_.payload_size));
  }
  /// This process's private copy of the header: what create_named() wrote, or what open_named()
  /// validated. Never re-read from the segment (a peer may change the shared copy at any time).
  [[nodiscard]] const SegmentHeader& header() const noexcept { return header_; }
  [[nodiscard]] const Mapping& mapping() const noexcept { return mapping_; }
  /// Whether this handle has seen the segment published (always true after open_named()).
  [[nodiscard]] bool published() const noexcept { return published_; }

  /// Creator only, after initialising the payload: marks the segment ready. Everything this
  /// process wrote to the payload before publish() is visible to a process whose open_named()
  /// succeeds. Idempotent; does not block.
  void publish() noexcept;

 private:
  std::string name_;
  Mapping mapping_;
  SegmentHeader header_;
  bool published_;
};

/// "/name" for name or "/name" if valid as a POSIX shared-memory name; bad_name otherwise.
/// Valid: 1..253 characters after the '/', none of them '/' or NUL, and not "." or "..".
/// (glibc refuses 254 or more; it would also strip repeated leading slashes, which we refuse so
/// that each segment has one spelling.)
Expected<std::string> canonical_segment_name(std::string_view name) noexcept;

/// Creates name exclusively (O_CREAT | O_EXCL, mode 0600) with a header and payload_size
/// zero-filled payload bytes, allocated up front (fallocate) so that a full /dev/shm fails here
/// with ENOSPC instead of as SIGBUS at first touch. The segment is *not* published: initialise
/// the payload, then call publish(); openers wait for that (up to their timeout).
/// Errors: bad_name; EINVAL for payload_size 0 or below spec.min_payload_size; too_large;
/// EEXIST if the name exists (that segment is left untouched); shm_open/fallocate/mmap errors
/// (the half-made segment is unlinked before returning them).
Expected<NamedSegment> create_named(std::string_view name, std::size_t payload_size,
                                    const SegmentSpec& spec) noexcept;

/// Opens and validates a segment made by create_named(), waiting up to ready_timeout (polling
/// with short sleeps: a setup path) for its creator to publish it. Validates a private copy of
/// the header taken once: magic (bad_magic), layout version and header size (version_mismatch),
/// file size against header_size + payload_size (truncated), abi_hash (type_mismatch), kind
/// (kind_mismatch), spec.min_payload_size (truncated); not_ready if unpublished at the deadline.
/// ENOENT if there is no such name. A zero-filled segment yields bad_magic or not_ready.
Expected<NamedSegment> open_named(std::string_view name, const SegmentSpec& spec,
                                  std::chrono::nanoseconds ready_timeout = kDefaultReadyTimeout) noexcept;

/// shm_unlink: removes the name (of a header or raw segment); mappings stay valid until unmapped.
/// Errors: bad_name, ENOENT.
Expected<void> unlink_named(std::string_view name) noexcept;

// ---------------------------------------------------------------------------------------------
// Raw named segments (CPython interop: no header)

/// As CPython's SharedMemory(name, create=True, size): shm_open(O_CREAT | O_EXCL | O_RDWR, 0600),
/// ftruncate (sparse, as CPython), mmap. Errors: bad_name, EINVAL for size 0, too_large, EEXIST,
/// system errors (the half-made segment is unlinked before returning them).
Expected<Mapping> create_raw_named(std::string_view name, std::size_t size) noexcept;

/// As CPython's SharedMemory(name): the mapping's size is the file's (fstat). Errors: bad_name,
/// ENOENT, truncated for an empty segment (CPython: "cannot mmap an empty file"), system errors.
Expected<Mapping> open_raw_named(std::string_view name) noexcept;

}  // namespace mproc::platform
