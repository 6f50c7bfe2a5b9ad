// Shared-memory layout vocabulary: the cache-line constant, cache padding, the compile-time checks
// that every type placed in a segment passes, and the ABI fingerprint a segment header stores.
//
// Header-only and standard-library-only, like everything in include/mproc/core/.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace mproc {

/// The one cache-line size of mproc's shared-memory layouts.
///
/// Not std::hardware_destructive_interference_size: its value follows -mtune (GCC warns about
/// using it in a public ABI), and a shared-memory layout *is* an ABI between programs built
/// separately, possibly by different compilers. 128 rather than 64 because x86-64's adjacent-line
/// prefetcher pulls cache lines in pairs (and some aarch64 cores have 128-byte lines); crossbeam's
/// CachePadded and folly's hardware_destructive_interference_size choose 128 for the same reason.
/// Changing it changes every layout: bump kSegmentLayoutVersion (runtime/platform/linux/shm.hpp).
inline constexpr std::size_t kCacheLine = 128;

/// T alone on its own cache line(s): aligned to kCacheLine and padded at the tail to a multiple
/// of it, so nothing placed before or after shares a line with value.
///
/// An aggregate (`CachePadded<std::atomic<std::uint32_t>> head{};` value-initialises). Standard
/// layout, trivial destruction and the other properties of T are preserved.
template <class T>
struct alignas(kCacheLine) CachePadded {
  T value;

  T& operator*() noexcept { return value; }
  const T& operator*() const noexcept { return value; }
  T* operator->() noexcept { return &value; }
  const T* operator->() const noexcept { return &value; }
};

/// True when std::atomic<T> never falls back to a lock. Only such atomics may live in shared
/// memory: [atomics.lockfree] says lock-free atomics are address-free, i.e. they work through two
/// mappings of one page at different addresses; a lock-based atomic's hidden lock is per-process.
template <class T>
inline constexpr bool kLockFreeAtomic = std::atomic<T>::is_always_lock_free;

namespace detail {

template <class T>
struct ShmMemberOk
    : std::bool_constant<!std::is_pointer_v<T> && !std::is_member_pointer_v<T> && !std::is_reference_v<T>> {};
template <class T>
struct ShmMemberOk<const T> : ShmMemberOk<T> {};
template <class T>
struct ShmMemberOk<volatile T> : ShmMemberOk<T> {};
template <class T>
struct ShmMemberOk<const volatile T> : ShmMemberOk<T> {};
template <class T, std::size_t N>
struct ShmMemberOk<T[N]> : ShmMemberOk<T> {};  // NOLINT(modernize-avoid-c-arrays): matches T[N]
template <class T>
struct ShmMemberOk<std::atomic<T>> : std::bool_constant<kLockFreeAtomic<T> && ShmMemberOk<T>::value> {};
template <class T>
struct ShmMemberOk<CachePadded<T>> : ShmMemberOk<T> {};

}  // namespace detail

/// What MPROC_SHM_LAYOUT checks, as a concept so that tests (and templates) can ask without
/// failing to compile. See MPROC_SHM_LAYOUT for what cannot be checked.
template <class T>
concept ShmLayout = std::is_standard_layout_v<std::remove_all_extents_t<T>> &&
                    std::is_trivially_destructible_v<std::remove_all_extents_t<T>> &&
                    (alignof(T) <= kCacheLine) && detail::ShmMemberOk<T>::value;

/// MPROC_SHM_LAYOUT(T): compile-time proof that T may be placed in a shared-memory segment.
/// Use it after T's definition (T must be complete), at namespace or class scope.
///
/// Checked:
///   - standard layout: one well-defined layout that offsetof can pin and another compiler
///     reproduces (no virtual functions, no mixed access control);
///   - trivial destruction: nobody runs a destructor on shared memory, whichever process
///     unmaps last;
///   - alignof(T) <= kCacheLine: segment payloads start at a kCacheLine-aligned offset;
///   - T itself (or its array element) is not a pointer, member pointer or reference, and if it
///     is std::atomic<U> or CachePadded<...std::atomic<U>> then U is always lock-free.
/// Not checkable generically (C++20 cannot enumerate a struct's members), so on the author:
///   - no pointers inside T: mappings land at different addresses in different processes, store
///     offsets from the segment base instead. Apply MPROC_SHM_LAYOUT to member types, too;
///   - every std::atomic member is lock-free: static_assert(kLockFreeAtomic<U>) per member type,
///     or wrap members as CachePadded<std::atomic<U>> and check that type;
///   - pinned offsets: static_assert(offsetof(T, member) == N, "why") for every field whose
///     position is part of the protocol, and the cache-line separation of fields written by
///     different sides.
#define MPROC_SHM_LAYOUT(...)                                                                              \
  static_assert(std::is_standard_layout_v<std::remove_all_extents_t<__VA_ARGS__>>,                         \
                #__VA_ARGS__ " must be standard layout to be placed in shared memory");                    \
  static_assert(std::is_trivially_destructible_v<std::remove_all_extents_t<__VA_ARGS__>>,                  \
                #__VA_ARGS__ " must be trivially destructible: no process runs destructors on a segment"); \
  static_assert(alignof(__VA_ARGS__) <= ::mproc::kCacheLine,                                               \
                #__VA_ARGS__ " is over-aligned: segment payloads are only kCacheLine-aligned");            \
  static_assert(::mproc::detail::ShmMemberOk<__VA_ARGS__>::value, #__VA_ARGS__                             \
                " is a pointer/reference or a non-lock-free atomic: invalid in another "                   \
                "process's mapping")

namespace detail {

/// T's name as the compiler spells it, cut out of __PRETTY_FUNCTION__.
template <class T>
constexpr std::string_view type_name() noexcept {
  // GCC:   "... type_name() [with T = ns::Foo; std::string_view = ...]"
  // Clang: "... type_name() [T = ns::Foo]"
  constexpr std::string_view pretty = __PRETTY_FUNCTION__;
  constexpr std::string_view key = "T = ";
  constexpr std::size_t start = pretty.find(key) + key.size();
  constexpr std::size_t semicolon = pretty.find(';', start);
  constexpr std::size_t end = semicolon != std::string_view::npos ? semicolon : pretty.rfind(']');
  static_assert(pretty.find(key) != std::string_view::npos && end > start,
                "unknown __PRETTY_FUNCTION__ format: teach mproc::detail::type_name this compiler");
  return pretty.substr(start, end - start);
}

inline constexpr std::uint64_t kFnvOffsetBasis = 14695981039346656037ULL;
inline constexpr std::uint64_t kFnvPrime = 1099511628211ULL;

constexpr std::uint64_t fnv1a(std::uint64_t hash, std::string_view bytes) noexcept {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

constexpr std::uint64_t fnv1a(std::uint64_t hash, std::uint64_t value) noexcept {
  for (int i = 0; i < 8; ++i) {  // little-endian byte order, whatever the host's
    hash ^= (value >> (8 * i)) & 0xFF;
    hash *= kFnvPrime;
  }
  return hash;
}

constexpr bool is_identifier_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/// GCC's spellings of builtin types, and the (Clang) spelling hashed in their place.
struct Spelling {
  std::string_view gcc;
  std::string_view canonical;
};
inline constexpr std::array<Spelling, 7> kGccSpellings{{
    {"long long unsigned int", "unsigned long long"},
    {"long long int", "long long"},
    {"long unsigned int", "unsigned long"},
    {"short unsigned int", "unsigned short"},
    {"long int", "long"},
    {"short int", "short"},
    {"__int128 unsigned", "unsigned __int128"},
}};

/// The GCC spelling that starts at name[i] as a whole word, or nullptr. name[i] starts a word.
constexpr const Spelling* gcc_spelling_at(std::string_view name, std::size_t i) noexcept {
  for (const Spelling& s : kGccSpellings) {
    const std::size_t after = i + s.gcc.size();
    if (name.substr(i, s.gcc.size()) == s.gcc && (after == name.size() || !is_identifier_char(name[after]))) {
      return &s;
    }
  }
  return nullptr;
}

/// Whether the space at name[i] is part of the name: only between two identifier characters
/// ("unsigned int"). Elsewhere the compilers disagree ("int [3]", "A<B<int> >").
constexpr bool is_significant_space(std::string_view name, std::size_t i) noexcept {
  return i > 0 && i + 1 < name.size() && is_identifier_char(name[i - 1]) && is_identifier_char(name[i + 1]);
}

/// FNV-1a over a type name in one canonical spelling, so that GCC and Clang builds of the same
/// type agree (checked for builtin integers, std:: templates, enums, arrays and non-type template
/// arguments): GCC's "long unsigned int" is hashed as Clang's "unsigned long", Clang's literal
/// suffixes (NT<4UL>) are dropped as GCC prints none, and spaces count only between two identifier
/// characters (GCC's "int [3]" and "A<B<int> >" are Clang's "int[3]" and "A<B<int>>").
/// Unnamed namespaces and lambdas still differ between compilers; they have no place in an ABI.
constexpr std::uint64_t fnv1a_type_name(std::uint64_t hash, std::string_view name) noexcept {
  std::size_t i = 0;
  while (i < name.size()) {
    const bool word_start = i == 0 || !is_identifier_char(name[i - 1]);
    if (const Spelling* s = word_start ? gcc_spelling_at(name, i) : nullptr) {
      hash = fnv1a(hash, s->canonical);
      i += s->gcc.size();
    } else if (word_start && name[i] >= '0' && name[i] <= '9') {  // an integer literal
      const std::size_t digits_end = std::min(name.find_first_not_of("0123456789", i), name.size());
      hash = fnv1a(hash, name.substr(i, digits_end - i));
      i = std::min(name.find_first_not_of("uUlL", digits_end), name.size());  // drop the suffix
    } else if (name[i] == ' ' && !is_significant_space(name, i)) {
      ++i;
    } else {
      hash = fnv1a(hash, name.substr(i, 1));
      ++i;
    }
  }
  return hash;
}

template <class T>
concept HasShmVersion = requires {
  { T::kShmVersion } -> std::convertible_to<std::uint32_t>;
};

}  // namespace detail

/// A stable fingerprint of T as a shared-memory payload: FNV-1a over T's spelled name, sizeof(T)
/// and alignof(T), plus T::kShmVersion when T declares one. A segment header stores it, so that
/// opening a segment of type A as type B fails (SegmentErrc::type_mismatch) instead of
/// reinterpreting A's bytes.
///
/// It is a fingerprint, not a proof: reordering or retyping members without changing the size
/// is invisible to it. A type whose layout changes in place should declare
/// `static constexpr std::uint32_t kShmVersion = N;` and bump N with every such change.
/// Renaming or moving T to another namespace changes the hash (old and new builds then refuse
/// each other's segments, which is the safe direction).
template <class T>
constexpr std::uint64_t abi_hash() noexcept {
  std::uint64_t h = detail::fnv1a_type_name(detail::kFnvOffsetBasis, detail::type_name<T>());
  h = detail::fnv1a(h, std::uint64_t{sizeof(T)});
  h = detail::fnv1a(h, std::uint64_t{alignof(T)});
  if constexpr (detail::HasShmVersion<T>) h = detail::fnv1a(h, std::uint64_t{T::kShmVersion});
  return h;
}

}  // namespace mproc
