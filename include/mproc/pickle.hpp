// A pickle codec for plain data, so that Python's `conn.send([1, "a", {"k": 2.5}])` arrives in C++
// as a typed value and back (Listener/Client, include/mproc/listener.hpp).
//
//   auto v = mproc::pickle::loads(bytes);                          // a pickle::Value
//   auto x = mproc::pickle::from_value<std::vector<std::variant<long, std::string,
//                                       std::map<std::string, double>>>>(v);
//   std::vector<std::byte> out = mproc::pickle::dumps(mproc::pickle::to_value(x));
//
// Only plain data: None, bool, int (any size), float, str, bytes, list, tuple, dict, and the
// memo that refers to them again. Any other opcode (GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ,
// persistent ids, extensions, ...) is a DecodeError naming it: loading never calls or builds
// anything, so a hostile pickle can only be refused. Nesting is limited to 1000 levels, and every
// length is checked against the bytes that remain before anything is allocated.
//
// dumps writes protocol 4 (what CPython's multiprocessing sends by default), without frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc::pickle {

struct Value;

struct None {
  friend bool operator==(None, None) { return true; }
};
/// Python's bytes (as opposed to str).
struct Bytes {
  std::vector<std::byte> data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};
/// An int too large for 64 bits: little-endian two's complement, as LONG1 carries it.
struct BigInt {
  std::vector<std::uint8_t> bytes;
  friend bool operator==(const BigInt&, const BigInt&) = default;
};
using List = std::vector<Value>;
struct Tuple {
  std::vector<Value> items;
};
/// A dict, in insertion order.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
};

inline bool operator==(const Tuple& a, const Tuple& b);
inline bool operator==(const Dict& a, const Dict& b);

struct Value {
  std::variant<None, bool, std::int64_t, BigInt, double, std::string, Bytes, List, Tuple, Dict> v;
  Value() = default;
  template <class T>
    requires std::is_constructible_v<decltype(v), T&&>
  Value(T&& x) : v(std::forward<T>(x)) {}  // NOLINT: a Value is what it holds
  friend bool operator==(const Value&, const Value&) = default;
  /// Python's type name ("int", "str", ...), for messages.
  [[nodiscard]] MPROC_API const char* type_name() const noexcept;
};

// Defined once Value is complete (a pair of Values needs it).
inline bool operator==(const Tuple& a, const Tuple& b) {
  return a.items == b.items;
}
inline bool operator==(const Dict& a, const Dict& b) {
  return a.items == b.items;
}

MPROC_API Value loads(std::span<const std::byte> bytes);
MPROC_API std::vector<std::byte> dumps(const Value& value);

// --- typed values ----------------------------------------------------------------------------

namespace detail {
template <class T>
inline constexpr bool is_vector = false;
template <class E, class A>
inline constexpr bool is_vector<std::vector<E, A>> = true;
template <class T>
inline constexpr bool is_map = false;
template <class K, class V, class C, class A>
inline constexpr bool is_map<std::map<K, V, C, A>> = true;
template <class K, class V, class H, class E, class A>
inline constexpr bool is_map<std::unordered_map<K, V, H, E, A>> = true;
template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;
template <class T>
inline constexpr bool is_variant = false;
template <class... T>
inline constexpr bool is_variant<std::variant<T...>> = true;
template <class T>
inline constexpr bool is_tuple_like = false;
template <class... T>
inline constexpr bool is_tuple_like<std::tuple<T...>> = true;
template <class A, class B>
inline constexpr bool is_tuple_like<std::pair<A, B>> = true;

[[noreturn]] MPROC_API void wrong_type(const Value& got, const char* wanted);
}  // namespace detail

/// The C++ value of a pickled one: bool, integers (range-checked), floating point (an int is
/// accepted too), std::string (str), Bytes, std::monostate / None (None), std::optional<T> (None or
/// T), std::vector<T> (list or tuple), std::tuple / std::pair (tuple or list of that length),
/// std::map / std::unordered_map (dict), std::variant (the first alternative that fits), Value.
/// ValueError naming both types when it does not fit.
template <class T>
T from_value(const Value& value) {
  if constexpr (std::is_same_v<T, Value>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (auto* b = std::get_if<bool>(&value.v)) return *b;
    detail::wrong_type(value, "bool");
  } else if constexpr (std::is_integral_v<T>) {
    if (auto* i = std::get_if<std::int64_t>(&value.v)) {
      if constexpr (std::is_signed_v<T>) {
        if (*i >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
            *i <= static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
          return static_cast<T>(*i);
        }
      } else {
        if (*i >= 0 && static_cast<std::uint64_t>(*i) <= std::numeric_limits<T>::max())
          return static_cast<T>(*i);
      }
      throw ValueError("int " + std::to_string(*i) + " does not fit the C++ type");
    }
    if (std::holds_alternative<BigInt>(value.v)) throw ValueError("int does not fit 64 bits");
    detail::wrong_type(value, "int");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto* d = std::get_if<double>(&value.v)) return static_cast<T>(*d);
    if (auto* i = std::get_if<std::int64_t>(&value.v)) return static_cast<T>(*i);
    detail::wrong_type(value, "float");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (auto* s = std::get_if<std::string>(&value.v)) return *s;
    detail::wrong_type(value, "str");
  } else if constexpr (std::is_same_v<T, Bytes>) {
    if (auto* b = std::get_if<Bytes>(&value.v)) return *b;
    detail::wrong_type(value, "bytes");
  } else if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, None>) {
    if (std::holds_alternative<None>(value.v)) return T{};
    detail::wrong_type(value, "None");
  } else if constexpr (detail::is_optional<T>) {
    if (std::holds_alternative<None>(value.v)) return std::nullopt;
    return from_value<typename T::value_type>(value);
  } else if constexpr (detail::is_vector<T>) {
    const std::vector<Value>* items = nullptr;
    if (auto* l = std::get_if<List>(&value.v)) items = l;
    if (auto* t = std::get_if<Tuple>(&value.v)) items = &t->items;
    if (items == nullptr) detail::wrong_type(value, "list");
    T out;
    out.reserve(items->size());
    for (const Value& item : *items) out.push_back(from_value<typename T::value_type>(item));
    return out;
  } else if constexpr (detail::is_tuple_like<T>) {
    const std::vector<Value>* items = nullptr;
    if (auto* l = std::get_if<List>(&value.v)) items = l;
    if (auto* t = std::get_if<Tuple>(&value.v)) items = &t->items;
    if (items == nullptr) detail::wrong_type(value, "tuple");
    constexpr std::size_t n = std::tuple_size_v<T>;
    if (items->size() != n)
      throw ValueError("a tuple of " + std::to_string(items->size()) + " items, not " + std::to_string(n));
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return T{from_value<std::tuple_element_t<I, T>>((*items)[I])...};
    }(std::make_index_sequence<n>{});
  } else if constexpr (detail::is_map<T>) {
    auto* d = std::get_if<Dict>(&value.v);
    if (d == nullptr) detail::wrong_type(value, "dict");
    T out;
    for (const auto& [k, v] : d->items) {
      out.insert_or_assign(from_value<typename T::key_type>(k), from_value<typename T::mapped_type>(v));
    }
    return out;
  } else if constexpr (detail::is_variant<T>) {
    std::optional<T> out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (([&] {
         if (out) return;
         try {
           out.emplace(std::in_place_index<I>, from_value<std::variant_alternative_t<I, T>>(value));
         } catch (const ValueError&) {
         }
       }()),
       ...);
    }(std::make_index_sequence<std::variant_size_v<T>>{});
    if (!out) detail::wrong_type(value, "one of the variant's types");
    return std::move(*out);
  } else {
    static_assert(sizeof(T) == 0, "mproc::pickle::from_value: unsupported type");
  }
}

/// The pickled form of a C++ value (the types from_value reads).
template <class T>
Value to_value(const T& x) {
  if constexpr (std::is_same_v<T, Value>) {
    return x;
  } else if constexpr (std::is_same_v<T, bool>) {
    return Value(x);
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8) {
      if (x > static_cast<T>(std::numeric_limits<std::int64_t>::max())) {
        BigInt big;
        std::uint64_t u = x;
        for (int i = 0; i < 8; ++i) big.bytes.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
        big.bytes.push_back(0);  // positive
        return Value(std::move(big));
      }
    }
    return Value(static_cast<std::int64_t>(x));
  } else if constexpr (std::is_floating_point_v<T>) {
    return Value(static_cast<double>(x));
  } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Bytes>) {
    return Value(x);
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return Value(std::string(std::string_view(x)));
  } else if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, None> ||
                       std::is_same_v<T, std::nullptr_t>) {
    return Value(None{});
  } else if constexpr (detail::is_optional<T>) {
    return x ? to_value(*x) : Value(None{});
  } else if constexpr (detail::is_vector<T>) {
    List out;
    out.reserve(x.size());
    for (const auto& item : x) out.push_back(to_value(item));
    return Value(std::move(out));
  } else if constexpr (detail::is_tuple_like<T>) {
    Tuple out;
    std::apply([&](const auto&... items) { (out.items.push_back(to_value(items)), ...); }, x);
    return Value(std::move(out));
  } else if constexpr (detail::is_map<T>) {
    Dict out;
    for (const auto& [k, v] : x) out.items.emplace_back(to_value(k), to_value(v));
    return Value(std::move(out));
  } else if constexpr (detail::is_variant<T>) {
    return std::visit([](const auto& alt) { return to_value(alt); }, x);
  } else {
    static_assert(sizeof(T) == 0, "mproc::pickle::to_value: unsupported type");
  }
}

}  // namespace mproc::pickle
