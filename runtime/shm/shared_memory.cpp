// SharedMemory and its View: a named raw segment (runtime/platform/linux/shm.hpp) behind a shared,
// counted handle.
#include "mproc/shared_memory.hpp"

#include <array>
#include <cerrno>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <utility>

#include "platform/linux/shm.hpp"
#include "shm/state.hpp"
#include "shm/tracker.hpp"

namespace mproc {
namespace {

using detail::SharedMemoryState;

/// CPython's _make_filename: "psm_" and 8 hex digits (FreeBSD limits names to 14 characters,
/// the leading '/' included).
std::string generated_name() {
  static constexpr std::array<char, 16> kHex{'0', '1', '2', '3', '4', '5', '6', '7',
                                             '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::random_device random;
  std::uint32_t bits = random();
  std::string name = "psm_";
  for (int i = 0; i < 8; ++i) {
    name.push_back(kHex[bits & 0xfU]);
    bits >>= 4U;
  }
  return name;
}

/// Throws what CPython raises for a failed shm_open/ftruncate/mmap/shm_unlink: FileExistsError,
/// FileNotFoundError, PermissionError, OSError; ValueError for what CPython rejects as a value.
[[noreturn]] void throw_shm_error(std::error_code code, const std::string& what) {
  if (code.category() == platform::segment_category()) {
    switch (static_cast<platform::SegmentErrc>(code.value())) {
      case platform::SegmentErrc::bad_name:
        throw ValueError(what + ": " + code.message());
      case platform::SegmentErrc::truncated:
        throw ValueError(what + ": cannot mmap an empty file");
      case platform::SegmentErrc::too_large:
        throw ValueError(what + ": 'size' is too large");
      default:
        break;
    }
  }
  throw_os_error(code, what);
}

std::string quoted(std::string_view name) {
  std::string out = "'";
  out.append(name);
  out.push_back('\'');
  return out;
}

/// The name as SharedMemory reports it (validated, without its leading '/').
std::string checked_name(std::string_view name, const char* action) {
  auto canonical = platform::canonical_segment_name(name);
  if (!canonical)
    throw_shm_error(canonical.error(), std::string("cannot ") + action + " SharedMemory " + quoted(name));
  return canonical->substr(1);
}

/// The state of a segment this process has just created; unlinks it again if even this fails.
std::shared_ptr<SharedMemoryState> adopt_created(const std::string& name, platform::Mapping mapping,
                                                 SharedMemoryOptions options) {
  try {
    auto state = std::make_shared<SharedMemoryState>(name, std::move(mapping));
    if (options.track) detail::track_segment(name);
    return state;
  } catch (...) {
    (void)platform::unlink_named(name);
    throw;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SharedMemory

SharedMemory SharedMemory::create_generated(std::size_t size, SharedMemoryOptions options) {
  // CPython retries forever; 64 collisions in a 2^32 space means something else is wrong.
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string name = generated_name();
    auto mapping = platform::create_raw_named(name, size);
    if (!mapping) {
      if (mapping.error() == std::errc::file_exists) continue;
      throw_shm_error(mapping.error(), "cannot create SharedMemory " + quoted(name));
    }
    return SharedMemory(adopt_created(name, std::move(*mapping), options));
  }
  throw FileExistsError(EEXIST, "cannot create SharedMemory: 64 generated names were all taken");
}

SharedMemory SharedMemory::create_named(std::size_t size, std::string_view name,
                                        SharedMemoryOptions options) {
  std::string checked = checked_name(name, "create");
  auto mapping = platform::create_raw_named(checked, size);
  if (!mapping) throw_shm_error(mapping.error(), "cannot create SharedMemory " + quoted(checked));
  return SharedMemory(adopt_created(checked, std::move(*mapping), options));
}

SharedMemory SharedMemory::attach(std::string_view name) {
  std::string checked = checked_name(name, "attach");
  auto mapping = platform::open_raw_named(checked);
  if (!mapping) throw_shm_error(mapping.error(), "cannot attach SharedMemory " + quoted(checked));
  // Never tracked: an attacher's exit must not destroy the segment (gh-82300).
  return SharedMemory(std::make_shared<SharedMemoryState>(std::move(checked), std::move(*mapping)));
}

SharedMemoryState& SharedMemory::state() const {
  if (!state_) throw ValueError("SharedMemory handle is empty (moved from)");
  return *state_;
}

const std::string& SharedMemory::name() const {
  return state().name;
}

std::size_t SharedMemory::size() const {
  return state().size;
}

SharedMemory::View SharedMemory::buf() const {
  auto& s = state();
  // relaxed: only the starting guess of the CAS below.
  std::uint64_t seen = s.views.load(std::memory_order_relaxed);
  do {
    if ((seen & SharedMemoryState::kClosed) != 0) {
      throw ValueError("SharedMemory " + quoted(s.name) + " is closed");
    }
    // relaxed: exclusion from close() comes from the single modification order of `views`
    // (invariant 1: close() cannot set kClosed over this count); the data pointer read below is
    // immutable, and what the View then accesses is ordered before the unmap by
    // [sync:shm_view.release].
  } while (
      !s.views.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed, std::memory_order_relaxed));
  return View(state_, s.data, s.size);
}

void SharedMemory::close() {
  auto& s = state();
  // relaxed: only the starting guess of the CAS below.
  std::uint64_t seen = s.views.load(std::memory_order_relaxed);
  for (;;) {
    if ((seen & SharedMemoryState::kClosed) != 0) return;  // closed already: idempotent
    if (seen != 0) throw BufferError("cannot close exported pointers exist");
    // [sync:shm_view.release] acquire: pairs with the release decrement in View::release(), so
    // every access through a View happens before the unmap below.
    if (s.views.compare_exchange_weak(seen, SharedMemoryState::kClosed, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      break;
    }
  }
  s.mapping.reset();  // invariant 3: only after kClosed is set
}

void SharedMemory::unlink() {
  const auto& s = state();
  auto removed = platform::unlink_named(s.name);
  // Untracked once the name is gone, by this call or by someone else's (ENOENT); a failure that
  // leaves the segment in place (EACCES) keeps it tracked, so the exit handler still tries.
  if (removed || removed.error() == std::errc::no_such_file_or_directory) detail::untrack_segment(s.name);
  if (!removed) throw_shm_error(removed.error(), "cannot unlink SharedMemory " + quoted(s.name));
}

std::string SharedMemory::repr() const {
  const auto& s = state();
  return "SharedMemory(" + quoted(s.name) + ", size=" + std::to_string(s.size) + ")";
}

// ---------------------------------------------------------------------------------------------
// SharedMemory::View

SharedMemory::View::View(const View& other) noexcept
    : state_(other.state_), data_(other.data_), size_(other.size_) {
  // relaxed: other is a live View, so the count is already non-zero and close() cannot succeed
  // until this copy's own release; that release orders this copy's accesses ([sync:shm_view.release]).
  if (state_) state_->views.fetch_add(1, std::memory_order_relaxed);
}

SharedMemory::View::View(View&& other) noexcept
    : state_(std::move(other.state_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedMemory::View& SharedMemory::View::operator=(const View& other) noexcept {
  if (this != &other) {
    View copy(other);
    *this = std::move(copy);
  }
  return *this;
}

SharedMemory::View& SharedMemory::View::operator=(View&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

std::byte& SharedMemory::View::at(std::size_t i) const {
  if (i >= size_) throw IndexError("index out of range");
  return data_[i];
}

void SharedMemory::View::release() noexcept {
  if (!state_) return;
  // [sync:shm_view.release] release: this View's reads and writes of the bytes happen before
  // close()'s acquire CAS that sees the count reach 0, and so before the unmap.
  state_->views.fetch_sub(1, std::memory_order_release);
  state_.reset();
  data_ = nullptr;
  size_ = 0;
}

}  // namespace mproc
