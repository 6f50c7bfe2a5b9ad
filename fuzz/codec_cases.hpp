// The types fuzz/codec_decode.cpp decodes, shared with the corpus generator
// (fuzz/make_codec_corpus.cpp): an input's first byte, modulo the number of cases, picks the case.
// Append new cases at the end: the committed corpus names cases by their index.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace mproc_fuzz {

enum class Color : std::uint8_t { red, green, blue };

struct Point {
  std::int32_t x;
  std::optional<std::string> label;
  friend bool operator==(const Point&, const Point&) = default;
};

/// A plain aggregate (Boost.PFR reflection) with a field of most kinds, one of them nested.
struct Record {
  Color color;
  bool flag;
  double score;
  std::string name;
  std::vector<std::int16_t> samples;
  std::array<char, 3> code;
  Point where;
  std::chrono::milliseconds timeout;
  friend bool operator==(const Record&, const Record&) = default;
};

/// What a successful decode of a case's type must satisfy besides "encoding it and decoding that
/// gives an equal value" (see check_round_trip in codec_decode.cpp).
enum Property : unsigned {
  kNone = 0,
  /// Every value has one encoding: re-encoding a decoded value gives back the input bytes.
  /// Not for maps and sets, whose input may repeat keys or list them out of order.
  kCanonical = 1,
  /// Holds floating-point values, so NaN != NaN: values are compared by their encodings.
  kFloats = 2,
  /// Unordered containers: equal values may encode their elements in different orders.
  kUnordered = 4,
};

template <class T, unsigned Properties>
struct Case {
  using type = T;
  static constexpr unsigned properties = Properties;
};

using Cases = std::tuple<
    /*  0 */ Case<int, kCanonical>,
    /*  1 */ Case<std::string, kCanonical>,
    /*  2 */ Case<std::vector<std::uint32_t>, kCanonical>,
    /*  3 */ Case<std::map<std::string, std::int64_t>, kNone>,
    /*  4 */ Case<std::optional<std::string>, kCanonical>,
    /*  5 */ Case<std::variant<int, std::string, std::vector<double>>, kCanonical | kFloats>,
    /*  6 */ Case<std::tuple<int, std::string>, kCanonical>,
    /*  7 */ Case<std::vector<std::map<std::string, std::vector<std::string>>>, kNone>,
    /*  8 */ Case<Record, kCanonical | kFloats>,
    /*  9 */ Case<std::array<std::uint16_t, 4>, kCanonical>,
    /* 10 */ Case<std::unordered_map<std::int32_t, std::string>, kUnordered>,
    /* 11 */ Case<std::set<std::string>, kNone>,
    /* 12 */ Case<std::unordered_set<std::int64_t>, kUnordered>,
    /* 13 */ Case<std::vector<std::variant<std::monostate, bool, std::int8_t>>, kCanonical>,
    /* 14 */ Case<std::vector<std::monostate>, kCanonical>,
    /* 15 */ Case<std::vector<std::optional<Record>>, kCanonical | kFloats>,
    /* 16 */ Case<std::pair<bool, std::vector<bool>>, kCanonical>>;

inline constexpr std::size_t kCaseCount = std::tuple_size_v<Cases>;

template <std::size_t I>
using CaseType = typename std::tuple_element_t<I, Cases>::type;

/// Calls f.template operator()<Case>() for the case at index (< kCaseCount).
template <class F>
void with_case(std::size_t index, F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((I == index ? (f.template operator()<std::tuple_element_t<I, Cases>>(), 0) : 0), ...);
  }(std::make_index_sequence<kCaseCount>{});
}

}  // namespace mproc_fuzz
