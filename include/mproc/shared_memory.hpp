// mproc::SharedMemory and mproc::ShareableList: Python's multiprocessing.shared_memory for C++.
//
//   auto shm = mproc::SharedMemory::create(4096);              // name "psm_1a2b3c4d", mode 0600
//   auto other = mproc::SharedMemory::attach(shm.name());      // any process; size from the segment
//   { auto view = shm.buf(); view[0] = std::byte{42}; }        // a counted view of the bytes
//   shm.close();                                               // unmap (every copy of this handle)
//   shm.unlink();                                              // remove the name (once, anywhere)
//
//   mproc::ShareableList list{1, 2.5, true, std::string("str"), mproc::Bytes{}, nullptr};
//   auto same = mproc::ShareableList::attach(list.shm().name());
//   list[0] = 7;  std::int64_t seven = list[0].as<std::int64_t>();
//
// Both are interoperable with CPython (3.9 to 3.13): a segment made by either side is attached by
// the other, and ShareableList uses CPython's byte layout (docs/shared_memory.md spells it out).
//
// Cross-process guarantees: none beyond the memory itself. Writes through one mapping are visible
// to every other mapping of the segment, but nothing orders them: guard data that several
// processes write with an mproc::Lock (or atomics placed in the segment), as in CPython.
//
// Lifetime (docs/shared_memory.md, "Who unlinks"):
//   * close() unmaps; unlink() removes the name. Neither happens when a process merely attaches
//     and exits: attaching never registers the segment for removal (CPython gh-82300).
//   * A segment created with track = true (the default, as CPython 3.13's) and never unlinked is
//     unlinked when its creating process exits normally (exit() or a return from main()), with a
//     warning on stderr. Processes started by mproc end with _exit() and leave theirs alone. Pass
//     {.track = false} for a segment that must outlive its creator.
//
// Handles: SharedMemory and ShareableList are cheap copyable handles. Copies in one process share
// one mapping, as Python references share one object: close() through any copy closes it for all.
// Passed to a Process target they reach the child under every start method (fork copies the
// handle; spawn and forkserver send the name and the child attaches).
//
// Thread safety: a handle and its copies may be used from several threads; close() racing with
// buf() is safe (one of them wins). The bytes themselves are not synchronized.
#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc {

/// Python's bytes. (The same alias may be declared by other mproc headers.)
using Bytes = std::vector<std::byte>;

namespace detail {
struct SharedMemoryState;
}  // namespace detail

/// Options of a segment's creator.
struct SharedMemoryOptions {
  /// Unlink the segment when this (creating) process exits normally, unless unlink() was called
  /// first: CPython 3.13's track=True. Attaching never tracks, whatever this says.
  bool track = true;
};

/// A named POSIX shared-memory segment (/dev/shm/<name>), as CPython's SharedMemory.
class MPROC_API SharedMemory {
 public:
  class View;

  /// Creates a segment of size bytes (zero-filled) under a generated name, "psm_" and 8 random hex
  /// digits as CPython's, retrying on a collision. size <= 0: ValueError.
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  static SharedMemory create(I size, SharedMemoryOptions options = {}) {
    return create_generated(checked_size(size), options);
  }

  /// Creates name exclusively (O_CREAT | O_EXCL, mode 0600). Errors: ValueError for size <= 0 or
  /// an invalid name ("/" inside, longer than 253, "." or ".."); FileExistsError if name exists
  /// (that segment is left alone); OSError for the rest (ENOSPC, ...). A leading '/' is optional.
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  static SharedMemory create(I size, std::string_view name, SharedMemoryOptions options = {}) {
    return create_named(checked_size(size), name, options);
  }

  /// Maps an existing segment, whatever created it; its size is the segment's. Errors:
  /// FileNotFoundError if there is no such name; ValueError for an invalid name or an empty
  /// segment (CPython: "cannot mmap an empty file"); OSError for the rest.
  static SharedMemory attach(std::string_view name);

  /// The name without its leading '/', as CPython's .name. Valid after close().
  [[nodiscard]] const std::string& name() const;
  /// Bytes in the segment. Valid after close().
  [[nodiscard]] std::size_t size() const;

  /// A counted view of the bytes (Python's .buf): close() refuses to unmap while one is alive.
  /// A std::span taken from a View is not counted: keep the View alive while using the span.
  /// After close(): ValueError. Never blocks.
  [[nodiscard]] View buf() const;

  /// Unmaps the segment in this process, for this handle and every copy of it. Idempotent.
  /// A View still alive: BufferError("cannot close exported pointers exist"), and nothing changes.
  /// Does not remove the name; other processes' mappings are not affected.
  void close();

  /// Removes the name (shm_unlink); mappings stay valid until closed. Call it once, from any
  /// process. A second call, or a name already removed: FileNotFoundError. Stops this process's
  /// tracking of the name either way.
  void unlink();

  /// "SharedMemory('psm_1a2b3c4d', size=4096)", as CPython's repr.
  [[nodiscard]] std::string repr() const;

 private:
  explicit SharedMemory(std::shared_ptr<detail::SharedMemoryState> state) noexcept
      : state_(std::move(state)) {}

  template <class I>
  static std::size_t checked_size(I size) {
    if constexpr (std::is_signed_v<I>) {
      if (size < 0) throw ValueError("'size' must be a positive integer");
    }
    if (size == 0) throw ValueError("'size' must be a positive number different from zero");
    if constexpr (sizeof(I) > sizeof(std::size_t)) {
      if (static_cast<std::uintmax_t>(size) > SIZE_MAX) throw ValueError("'size' is too large");
    }
    return static_cast<std::size_t>(size);
  }
  static SharedMemory create_generated(std::size_t size, SharedMemoryOptions options);
  static SharedMemory create_named(std::size_t size, std::string_view name, SharedMemoryOptions options);
  detail::SharedMemoryState& state() const;

  std::shared_ptr<detail::SharedMemoryState> state_;  // null only in a moved-from handle
};

/// A counted view of a SharedMemory's bytes: Python's memoryview of .buf. While any View (or copy
/// of one) is alive, close() throws BufferError and the mapping stays valid: a View keeps the
/// mapping alive even after the last SharedMemory handle is gone. Copying a View counts again;
/// moving transfers. A default-constructed or released View is empty and counts nothing.
class MPROC_API SharedMemory::View {
 public:
  View() noexcept = default;
  View(const View& other) noexcept;
  View(View&& other) noexcept;
  View& operator=(const View& other) noexcept;
  View& operator=(View&& other) noexcept;
  ~View() { release(); }

  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::byte* begin() const noexcept { return data_; }
  [[nodiscard]] std::byte* end() const noexcept { return data_ + size_; }
  /// Unchecked, as std::span's.
  [[nodiscard]] std::byte& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Checked: IndexError("index out of range").
  [[nodiscard]] std::byte& at(std::size_t i) const;

  /// The bytes, not counted: valid only while this View (or another counted one) is alive. A
  /// View is also a contiguous range that converts to std::span<std::byte> implicitly, even from
  /// a temporary (`std::span<std::byte> s = shm.buf();`): such a span is not counted either.
  [[nodiscard]] std::span<std::byte> span() const noexcept { return {data_, size_}; }

  /// Drops the count now (Python's memoryview.release()); the View becomes empty. Idempotent.
  void release() noexcept;

 private:
  friend class SharedMemory;
  View(std::shared_ptr<detail::SharedMemoryState> state, std::byte* data, std::size_t size) noexcept
      : state_(std::move(state)), data_(data), size_(size) {}

  std::shared_ptr<detail::SharedMemoryState> state_;  // null when empty
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// CPython's ShareableList: a fixed-length list of int, float, bool, str, bytes and None in one
/// SharedMemory segment, in CPython's layout, so that C++ and Python processes read and write the
/// same list. Items are Item variants: std::int64_t (int), double (float), bool, std::string (str,
/// stored as its bytes: keep it UTF-8 for Python readers), Bytes (bytes), std::nullptr_t (None).
///
/// Differences from CPython (docs/shared_memory.md):
///   * Trailing NUL bytes of str and bytes values are kept (CPython strips them, gh-96779). A
///     value ending in NUL is stored with the format "<n>sx", which CPython reads (stripping) and
///     overwrites correctly; one that fills its whole slot, or is 1,000,000 bytes or longer, cannot
///     record its length and is refused with ValueError.
///   * str slots are sized by UTF-8 bytes, not characters (CPython gh-88336 truncates).
///   * count(), index() and operator== compare as Python's ==: numbers by value across int,
///     float and bool (1 == 1.0 == true), str never equal to bytes.
///
/// No operation is atomic: a reader racing with a writer of the same item may see a torn value or
/// a DecodeError. Guard shared writes with a Lock, as in CPython.
class MPROC_API ShareableList {
 public:
  using Item = std::variant<std::int64_t, double, bool, std::string, Bytes, std::nullptr_t>;
  class Reference;
  class Iterator;

  /// A new list holding items, under a generated name, tracked (see SharedMemoryOptions).
  ShareableList(std::initializer_list<Item> items);
  explicit ShareableList(const std::vector<Item>& items, SharedMemoryOptions options = {});
  /// A new list under name. Errors as SharedMemory::create; ValueError for a str/bytes item too
  /// long for a slot format (9,999,991 bytes at most).
  static ShareableList create(const std::vector<Item>& items, std::string_view name,
                              SharedMemoryOptions options = {});
  /// Attaches to a list created by mproc or CPython >= 3.9 (3.8's layout is refused). Errors as
  /// SharedMemory::attach; DecodeError if the segment does not hold a valid list layout.
  static ShareableList attach(std::string_view name);

  /// The fixed number of items.
  [[nodiscard]] std::size_t size() const noexcept { return offsets_ ? offsets_->size() - 1 : 0; }

  /// Item at index; negative indices count from the end, as in Python. IndexError("index out of
  /// range") outside; DecodeError if the stored item is corrupt; ValueError after shm().close().
  template <std::integral I>
  [[nodiscard]] Item get(I index) const {
    return get_at(position(index), "index out of range");
  }
  /// Replaces the item at index. A str/bytes value must fit the slot the item was created with
  /// (ValueError "bytes/str item exceeds available storage"); any type may replace any other
  /// that fits, as in CPython. IndexError("assignment index out of range").
  template <std::integral I>
  void set(I index, Item value) {
    set_at(position(index), "assignment index out of range", value);
  }
  /// list[i] reads and writes: `list[0] = 7; Item v = list[0];`.
  template <std::integral I>
  [[nodiscard]] Reference operator[](I index);
  template <std::integral I>
  [[nodiscard]] Item operator[](I index) const {
    return get(index);
  }

  /// How many items compare equal to value (Python's ==).
  [[nodiscard]] std::size_t count(const Item& value) const;
  /// The first index whose item equals value; ValueError("<repr> not in this container").
  [[nodiscard]] std::size_t index(const Item& value) const;
  /// The struct formats of the items, concatenated: CPython's .format ("qd8s...").
  [[nodiscard]] std::string format() const;
  /// Every item, in order: Python's list(sl).
  [[nodiscard]] std::vector<Item> to_vector() const;
  /// "ShareableList([1, 2.5, True, 'str', b'', None], name='psm_...')", as CPython's repr.
  [[nodiscard]] std::string repr() const;

  /// The segment: shm().close() and shm().unlink() end the list as in CPython.
  [[nodiscard]] SharedMemory& shm() noexcept { return shm_; }
  [[nodiscard]] const SharedMemory& shm() const noexcept { return shm_; }

  [[nodiscard]] Iterator begin() const noexcept;
  [[nodiscard]] Iterator end() const noexcept;

  /// Python's == between two items (what count() and index() use).
  [[nodiscard]] static bool equal(const Item& a, const Item& b) noexcept;
  /// Python's repr of an item: 1, 2.5, True, 'str', b'\x00', None.
  [[nodiscard]] static std::string item_repr(const Item& item);

 private:
  /// An index as Python normalizes it; size() (out of range) when it is outside.
  template <std::integral I>
  std::size_t position(I index) const noexcept {
    const std::size_t n = size();
    if constexpr (std::is_signed_v<I>) {
      if (index < 0) {
        const auto back = static_cast<std::uintmax_t>(-(static_cast<std::intmax_t>(index) + 1)) + 1;
        return back <= n ? n - static_cast<std::size_t>(back) : n;
      }
    }
    return static_cast<std::uintmax_t>(index) < n ? static_cast<std::size_t>(index) : n;
  }
  Item get_at(std::size_t position, const char* range_error) const;
  void set_at(std::size_t position, const char* range_error, const Item& value);

  ShareableList(SharedMemory shm, std::shared_ptr<const std::vector<std::uint64_t>> offsets) noexcept
      : shm_(std::move(shm)), offsets_(std::move(offsets)) {}
  /// Creates the segment (under name, or a generated one when name is null) and writes items.
  static ShareableList create_list(const std::vector<Item>& items, const std::string_view* name,
                                   SharedMemoryOptions options);

  SharedMemory shm_;
  /// The N + 1 offsets of the items from the start of the data area, read once at attach (or
  /// written at creation) and validated: they never change for the life of the list.
  std::shared_ptr<const std::vector<std::uint64_t>> offsets_;
};

/// list[i]: reads the item when converted, writes it when assigned. Refers to the list object;
/// it must not outlive it (as std::vector<bool>::reference).
class ShareableList::Reference {
 public:
  [[nodiscard]] Item get() const { return list_->get_at(position_, "index out of range"); }
  operator Item() const { return get(); }  // NOLINT: implicit on purpose, as a reference would be
  /// The item as T (std::int64_t, double, bool, std::string, Bytes, std::nullptr_t);
  /// std::bad_variant_access if it holds another type.
  template <class T>
  [[nodiscard]] T as() const {
    return std::get<T>(get());
  }
  Reference& operator=(const Item& value) {
    list_->set_at(position_, "assignment index out of range", value);
    return *this;
  }
  /// Copies the other item's value (not the reference).
  Reference& operator=(const Reference& other) { return *this = other.get(); }
  Reference(const Reference&) = default;
  ~Reference() = default;

  /// Python's ==.
  friend bool operator==(const Reference& r, const Item& value) { return equal(r.get(), value); }

 private:
  friend class ShareableList;
  Reference(ShareableList* list, std::size_t position) noexcept : list_(list), position_(position) {}
  ShareableList* list_;
  std::size_t position_;
};

/// Iterates the items by value (each dereference reads the segment).
class ShareableList::Iterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using iterator_concept = std::forward_iterator_tag;
  using value_type = Item;
  using difference_type = std::ptrdiff_t;
  using reference = Item;

  Iterator() noexcept = default;
  Item operator*() const { return list_->get_at(position_, "index out of range"); }
  Iterator& operator++() noexcept {
    ++position_;
    return *this;
  }
  Iterator operator++(int) noexcept {
    Iterator old = *this;
    ++position_;
    return old;
  }
  friend bool operator==(const Iterator& a, const Iterator& b) noexcept { return a.position_ == b.position_; }

 private:
  friend class ShareableList;
  Iterator(const ShareableList* list, std::size_t position) noexcept : list_(list), position_(position) {}
  const ShareableList* list_ = nullptr;
  std::size_t position_ = 0;
};

}  // namespace mproc

/// A View's iterators are pointers into the mapping, which does not move when the View object
/// goes: a span or iterator may outlive it (uncounted, as documented on View::span()).
template <>
inline constexpr bool std::ranges::enable_borrowed_range<mproc::SharedMemory::View> = true;

namespace mproc {

template <std::integral I>
ShareableList::Reference ShareableList::operator[](I index) {
  return Reference(this, position(index));
}

inline ShareableList::Iterator ShareableList::begin() const noexcept {
  return Iterator(this, 0);
}
inline ShareableList::Iterator ShareableList::end() const noexcept {
  return Iterator(this, size());
}

/// A SharedMemory argument of a Process target, or a queue item: the name travels and the
/// receiving process attaches (CPython pickles it as (name, False, size)). Under fork the handle
/// is copied instead and shares the parent's mapping.
template <>
struct codec<SharedMemory> {
  static void encode(Encoder& out, const SharedMemory& shm) { out.put(shm.name()); }
  static SharedMemory decode(Decoder& in) { return SharedMemory::attach(in.get<std::string>()); }
};

/// As SharedMemory: the name travels, the receiver attaches (CPython pickles ShareableList by name).
template <>
struct codec<ShareableList> {
  static void encode(Encoder& out, const ShareableList& list) { out.put(list.shm().name()); }
  static ShareableList decode(Decoder& in) { return ShareableList::attach(in.get<std::string>()); }
};

}  // namespace mproc
