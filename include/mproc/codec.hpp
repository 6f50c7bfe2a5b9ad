// mproc's value codec: how arguments, queue items and results become bytes and back.
//
// Supported without user code:
//   * bool, arithmetic types, std::byte, std::chrono::duration, enums with a fixed underlying type
//     (every enum class; `enum E : int`): fixed-size copies;
//   * std::string, std::vector, std::array, std::optional, std::pair, std::tuple, std::variant,
//     std::monostate, std::map, std::unordered_map, std::set, std::unordered_set, nested freely;
//   * plain aggregates (structs with public fields and no user constructors), field by field,
//     by reflection (Boost.PFR).
// Anything else is a compile-time error that names the type (see require_encodable), unless the
// user specialises the customization point:
//
//   template <> struct mproc::codec<MyType> {
//     static void encode(mproc::Encoder& out, const MyType& v);
//     static MyType decode(mproc::Decoder& in);
//   };
//
// The format is for processes of the same build on the same machine (native byte order, no
// schema evolution). Decoding never trusts its input: every length is checked against the bytes
// that remain before anything is allocated, so corrupt or hostile bytes give mproc::DecodeError,
// never a crash or an unbounded allocation.
//
// File descriptors travel beside the bytes: an encoder may attach descriptors (add_fd) that the
// transport passes to the receiving process (inheritance under spawn, SCM_RIGHTS to the
// forkserver); the decoder hands them back by index.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>

#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc {

class Encoder;
class Decoder;

/// The customization point. The primary template serves the built-in types; specialise it for
/// your own types (encode and decode as static members).
template <class T>
struct codec;

/// Appends a value's bytes to a buffer.
class Encoder {
 public:
  explicit Encoder(std::vector<std::byte>& out) noexcept : out_(out) {}

  void write(const void* data, std::size_t size) {
    if (size == 0) return;  // data may be null (an empty vector's)
    const std::size_t old = out_.size();
    out_.resize(old + size);
    std::memcpy(out_.data() + old, data, size);
  }
  void put_size(std::size_t n) {
    const auto v = static_cast<std::uint64_t>(n);
    write(&v, sizeof v);
  }
  template <class T>
  void put(const T& value) {
    codec<T>::encode(*this, value);
  }
  /// Attaches a file descriptor (borrowed: the caller keeps it open until the message is sent);
  /// returns the index the decoder asks for.
  std::uint32_t add_fd(int fd) {
    fds_.push_back(fd);
    return static_cast<std::uint32_t>(fds_.size() - 1);
  }
  [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }

 private:
  std::vector<std::byte>& out_;
  std::vector<int> fds_;
};

/// Reads values from bytes it does not trust.
class Decoder {
 public:
  explicit Decoder(std::span<const std::byte> in, std::span<const int> fds = {}) noexcept
      : in_(in), fds_(fds) {}

  void read(void* data, std::size_t size) {
    const auto bytes = take(size);
    if (size != 0) std::memcpy(data, bytes.data(), size);  // an empty vector's data() may be null
  }
  std::span<const std::byte> take(std::size_t size) {
    if (size > in_.size() - pos_) fail_short(size);
    auto s = in_.subspan(pos_, size);
    pos_ += size;
    return s;
  }
  /// A count of elements, each at least min_element_size bytes encoded: rejected when the
  /// remaining input cannot hold that many, so a corrupt count cannot trigger a huge allocation.
  std::size_t get_size(std::size_t min_element_size) {
    std::uint64_t n = 0;
    read(&n, sizeof n);
    const std::uint64_t limit =
        min_element_size == 0 ? kMaxEmptyElements : (in_.size() - pos_) / min_element_size;
    if (n > limit) fail_count(n);
    return static_cast<std::size_t>(n);
  }
  template <class T>
  T get() {
    return codec<T>::decode(*this);
  }
  /// The descriptor attached at index (owned by the transport; dup it to keep it).
  [[nodiscard]] int fd(std::uint32_t index) const {
    if (index >= fds_.size()) fail_fd(index);
    return fds_[index];
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size() - pos_; }
  /// Throws DecodeError unless every byte was consumed.
  void expect_end() const {
    if (remaining() != 0) fail_trailing();
  }

  /// Elements of zero encoded size (std::monostate, empty structs) are capped at this count.
  static constexpr std::uint64_t kMaxEmptyElements = 1 << 20;

 private:
  [[noreturn]] MPROC_API void fail_short(std::size_t wanted) const;
  [[noreturn]] MPROC_API void fail_count(std::uint64_t count) const;
  [[noreturn]] MPROC_API void fail_fd(std::uint32_t index) const;
  [[noreturn]] MPROC_API void fail_trailing() const;

  std::span<const std::byte> in_;
  std::span<const int> fds_;
  std::size_t pos_ = 0;
};

namespace detail {

template <class T, template <class...> class Template>
inline constexpr bool is_specialization_v = false;
template <template <class...> class Template, class... Args>
inline constexpr bool is_specialization_v<Template<Args...>, Template> = true;

template <class T>
inline constexpr bool is_std_array_v = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array_v<std::array<T, N>> = true;

template <class T>
inline constexpr bool is_duration_v = false;
template <class Rep, class Period>
inline constexpr bool is_duration_v<std::chrono::duration<Rep, Period>> = true;

__extension__ using int128 = __int128;
__extension__ using uint128 = unsigned __int128;

/// An enum whose values are all those of its underlying type. Without a fixed underlying type
/// (`enum E { a, b }`), only the values of the smallest bit-field holding every enumerator exist:
/// loading another is undefined behaviour, and the decoder cannot know the enumerators to check.
/// List-initialisation from the underlying type compiles exactly when it is fixed.
template <class T>
concept FixedEnum = std::is_enum_v<T> && requires { T{std::underlying_type_t<T>{}}; };

/// Types copied byte for byte: every bit pattern of their size is a valid value. The 128-bit
/// integers are listed because strict -std=c++20 does not count them as arithmetic.
template <class T>
inline constexpr bool is_plain_scalar_v =
    (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) || FixedEnum<T> || std::is_same_v<T, std::byte> ||
    std::is_same_v<T, int128> || std::is_same_v<T, uint128>;

/// std::vector of plain scalars: copied in one block.
template <class T>
inline constexpr bool is_plain_vector_v = false;
template <class E, class A>
inline constexpr bool is_plain_vector_v<std::vector<E, A>> = is_plain_scalar_v<E>;

/// Structs encoded field by field through Boost.PFR.
template <class T>
inline constexpr bool is_reflectable_aggregate_v =
    std::is_class_v<T> && std::is_aggregate_v<T> && !is_std_array_v<T> && !std::is_union_v<T> &&
    !std::is_polymorphic_v<T>;

template <class T>
constexpr bool builtin_supported();

/// A user specialisation of codec<T> has no mproc_builtin member; the primary template does.
template <class T>
concept UserCodec = !requires { codec<T>::mproc_builtin; };

}  // namespace detail

/// A type the codec can encode and decode: built in, or with a user specialisation of codec<T>.
template <class T>
concept Encodable =
    detail::UserCodec<std::remove_cvref_t<T>> || detail::builtin_supported<std::remove_cvref_t<T>>();

namespace detail {

template <class... Ts>
constexpr bool all_encodable() {
  return (Encodable<Ts> && ...);
}

template <class T, std::size_t... I>
constexpr bool fields_encodable(std::index_sequence<I...>) {
  return all_encodable<boost::pfr::tuple_element_t<I, T>...>();
}

template <class T>
constexpr bool builtin_supported() {
  if constexpr (std::is_same_v<T, bool> || is_plain_scalar_v<T> || std::is_same_v<T, std::string> ||
                std::is_same_v<T, std::monostate>) {
    return true;
  } else if constexpr (is_duration_v<T>) {
    return std::is_arithmetic_v<typename T::rep>;
  } else if constexpr (is_std_array_v<T>) {
    return Encodable<typename T::value_type>;
  } else if constexpr (is_specialization_v<T, std::vector> || is_specialization_v<T, std::optional> ||
                       is_specialization_v<T, std::set> || is_specialization_v<T, std::unordered_set>) {
    return Encodable<typename T::value_type>;
  } else if constexpr (is_specialization_v<T, std::map> || is_specialization_v<T, std::unordered_map>) {
    return Encodable<typename T::key_type> && Encodable<typename T::mapped_type>;
  } else if constexpr (is_specialization_v<T, std::pair>) {
    return all_encodable<typename T::first_type, typename T::second_type>();
  } else if constexpr (is_specialization_v<T, std::tuple> || is_specialization_v<T, std::variant>) {
    return []<template <class...> class L, class... Ts>(std::type_identity<L<Ts...>>) {
      return all_encodable<Ts...>();
    }(std::type_identity<T>{});
  } else if constexpr (is_reflectable_aggregate_v<T>) {
    return fields_encodable<T>(std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
  } else {
    return false;
  }
}

/// The smallest number of bytes any value of T encodes to (bounds element counts on decode).
template <class T>
constexpr std::size_t min_encoded_size() {
  if constexpr (is_plain_scalar_v<T> || is_duration_v<T>) {
    return sizeof(T);
  } else if constexpr (std::is_same_v<T, bool> || is_specialization_v<T, std::optional>) {
    return 1;
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return 0;
  } else if constexpr (is_specialization_v<T, std::variant>) {
    return sizeof(std::uint32_t);
  } else if constexpr (is_std_array_v<T>) {
    return std::tuple_size_v<T> * min_encoded_size<typename T::value_type>();
  } else if constexpr (is_specialization_v<T, std::pair>) {
    return min_encoded_size<typename T::first_type>() + min_encoded_size<typename T::second_type>();
  } else if constexpr (is_specialization_v<T, std::tuple>) {
    return []<class... Ts>(std::type_identity<std::tuple<Ts...>>) {
      return (std::size_t{0} + ... + min_encoded_size<Ts>());
    }(std::type_identity<T>{});
  } else if constexpr (UserCodec<T>) {
    return 0;
  } else if constexpr (is_reflectable_aggregate_v<T>) {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      return (std::size_t{0} + ... + min_encoded_size<boost::pfr::tuple_element_t<I, T>>());
    }(std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
  } else {
    return sizeof(std::uint64_t);  // every container starts with its element count
  }
}

template <class T>
void encode_builtin(Encoder& out, const T& v);
template <class T>
T decode_builtin(Decoder& in);

template <class Variant, std::size_t... I>
Variant decode_variant(Decoder& in, std::size_t index, std::index_sequence<I...>) {
  using Maker = Variant (*)(Decoder&);
  static constexpr Maker makers[] = {+[](Decoder& d) {
    return Variant(std::in_place_index<I>, d.get<std::variant_alternative_t<I, Variant>>());
  }...};
  return makers[index](in);
}

template <class T>
void encode_builtin(Encoder& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    const auto b = static_cast<std::uint8_t>(v ? 1 : 0);
    out.write(&b, 1);
  } else if constexpr (is_plain_scalar_v<T>) {
    out.write(&v, sizeof v);
  } else if constexpr (is_duration_v<T>) {
    const auto count = v.count();
    out.write(&count, sizeof count);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
  } else if constexpr (std::is_same_v<T, std::string>) {
    out.put_size(v.size());
    out.write(v.data(), v.size());
  } else if constexpr (is_specialization_v<T, std::optional>) {
    out.put(v.has_value());
    if (v) out.put(*v);
  } else if constexpr (is_specialization_v<T, std::pair>) {
    out.put(v.first);
    out.put(v.second);
  } else if constexpr (is_specialization_v<T, std::tuple>) {
    std::apply([&](const auto&... e) { (out.put(e), ...); }, v);
  } else if constexpr (is_specialization_v<T, std::variant>) {
    const auto index = static_cast<std::uint32_t>(v.index());
    if (v.valueless_by_exception()) throw ValueError("mproc codec: cannot encode a valueless std::variant");
    out.write(&index, sizeof index);
    std::visit([&](const auto& alt) { out.put(alt); }, v);
  } else if constexpr (is_std_array_v<T>) {
    for (const auto& e : v) out.put(e);
  } else if constexpr (is_plain_vector_v<T>) {
    out.put_size(v.size());
    out.write(v.data(), v.size() * sizeof(typename T::value_type));
  } else if constexpr (is_specialization_v<T, std::map> || is_specialization_v<T, std::unordered_map>) {
    out.put_size(v.size());
    for (const auto& [key, value] : v) {
      out.put(key);
      out.put(value);
    }
  } else if constexpr (is_reflectable_aggregate_v<T>) {
    boost::pfr::for_each_field(v, [&](const auto& field) { out.put(field); });
  } else {  // vector, set, unordered_set
    out.put_size(v.size());
    for (const auto& e : v) out.put(e);
  }
}

template <class T>
T decode_builtin(Decoder& in) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = 0;
    in.read(&b, 1);
    if (b > 1) throw DecodeError("mproc codec: invalid bool byte " + std::to_string(b));
    return b == 1;
  } else if constexpr (is_plain_scalar_v<T>) {
    T v;
    in.read(&v, sizeof v);
    return v;
  } else if constexpr (is_duration_v<T>) {
    typename T::rep count;
    in.read(&count, sizeof count);
    return T(count);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return {};
  } else if constexpr (std::is_same_v<T, std::string>) {
    const std::size_t n = in.get_size(1);
    const auto bytes = in.take(n);
    return std::string(reinterpret_cast<const char*>(bytes.data()), n);
  } else if constexpr (is_specialization_v<T, std::optional>) {
    if (!in.get<bool>()) return std::nullopt;
    return T(in.get<typename T::value_type>());
  } else if constexpr (is_specialization_v<T, std::pair>) {
    auto first = in.get<typename T::first_type>();
    return T(std::move(first), in.get<typename T::second_type>());
  } else if constexpr (is_specialization_v<T, std::tuple>) {
    return []<class... Ts>(Decoder& d, std::type_identity<std::tuple<Ts...>>) {
      return std::tuple<Ts...>{d.get<Ts>()...};  // braced: evaluated left to right
    }(in, std::type_identity<T>{});
  } else if constexpr (is_specialization_v<T, std::variant>) {
    std::uint32_t index = 0;
    in.read(&index, sizeof index);
    constexpr std::size_t kAlternatives = std::variant_size_v<T>;
    if (index >= kAlternatives) {
      throw DecodeError("mproc codec: variant index " + std::to_string(index) + " out of range");
    }
    return decode_variant<T>(in, index, std::make_index_sequence<kAlternatives>{});
  } else if constexpr (is_std_array_v<T>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return T{((void)I, in.get<typename T::value_type>())...};
    }(std::make_index_sequence<std::tuple_size_v<T>>{});
  } else if constexpr (is_plain_vector_v<T>) {
    using E = typename T::value_type;
    const std::size_t n = in.get_size(sizeof(E));
    T v(n);
    in.read(v.data(), n * sizeof(E));
    return v;
  } else if constexpr (is_specialization_v<T, std::map> || is_specialization_v<T, std::unordered_map>) {
    using K = typename T::key_type;
    using V = typename T::mapped_type;
    const std::size_t n = in.get_size(min_encoded_size<K>() + min_encoded_size<V>());
    T m;
    for (std::size_t i = 0; i < n; ++i) {
      auto key = in.get<K>();
      m.insert_or_assign(std::move(key), in.get<V>());
    }
    return m;
  } else if constexpr (is_reflectable_aggregate_v<T>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return T{in.get<boost::pfr::tuple_element_t<I, T>>()...};
    }(std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
  } else {  // vector, set, unordered_set
    using E = typename T::value_type;
    const std::size_t n = in.get_size(min_encoded_size<E>());
    T c;
    // reserve() allocates sizeof(E) per element, which may be far more than its encoded
    // minimum: cap it by the input size so hostile counts cannot force a huge allocation.
    if constexpr (is_specialization_v<T, std::vector>) c.reserve(std::min(n, in.remaining()));
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (is_specialization_v<T, std::vector>) {
        c.push_back(in.get<E>());
      } else {
        c.insert(in.get<E>());
      }
    }
    return c;
  }
}

/// Instantiating this names T in the compiler's error: "required from ... [with T = YourType]".
template <class T>
struct type_is_not_serializable {
  static_assert(Encodable<T>,
                "mproc: this type cannot be serialized (see the 'with T = ...' line above). Use "
                "plain data, std containers, aggregates of them, or specialise mproc::codec<T>. An enum "
                "needs a fixed underlying type: enum class E, or enum E : int.");
  static constexpr bool value = true;
};

}  // namespace detail

/// Fails to compile, naming T, unless T is Encodable.
template <class T>
inline constexpr bool require_encodable = detail::type_is_not_serializable<std::remove_cvref_t<T>>::value;

template <class T>
struct codec {
  static constexpr bool mproc_builtin = true;
  static void encode(Encoder& out, const T& v) { detail::encode_builtin<T>(out, v); }
  static T decode(Decoder& in) { return detail::decode_builtin<T>(in); }
};

/// Encodes one value into a new buffer (descriptors attached by custom codecs are not allowed
/// here; use an Encoder directly to keep them).
template <class T>
std::vector<std::byte> dumps(const T& value) {
  static_assert(require_encodable<T>);
  std::vector<std::byte> out;
  Encoder enc(out);
  enc.put(value);
  return out;
}

/// Decodes exactly one value; trailing bytes are an error.
template <class T>
T loads(std::span<const std::byte> bytes) {
  static_assert(require_encodable<T>);
  Decoder dec(bytes);
  T value = dec.get<T>();
  dec.expect_end();
  return value;
}

}  // namespace mproc
