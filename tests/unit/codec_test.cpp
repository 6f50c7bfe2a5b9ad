// The codec: round trips of every supported kind of type, rejection of hostile bytes, and
// properties (rapidcheck) over random values and random garbage.
#include "mproc/codec.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace {

enum class Color : std::uint8_t { red, green };

struct Inner {
  std::string label;
  std::vector<double> values;
  friend bool operator==(const Inner&, const Inner&) = default;
};

struct Outer {
  int id;
  bool flag;
  Color color;
  Inner inner;
  std::optional<Inner> maybe;
  std::array<std::int16_t, 3> triple;
  friend bool operator==(const Outer&, const Outer&) = default;
};

struct Empty {
  friend bool operator==(const Empty&, const Empty&) = default;
};

struct HasPointer {
  int* p;
};

template <class T>
T round_trip(const T& value) {
  return mproc::loads<T>(mproc::dumps(value));
}

// What cannot be serialized is known at compile time.
static_assert(mproc::Encodable<int>);
static_assert(mproc::Encodable<std::string>);
static_assert(mproc::Encodable<Outer>);
static_assert(mproc::Encodable<std::map<std::string, std::vector<std::optional<Outer>>>>);
static_assert(mproc::Encodable<std::variant<std::monostate, int, std::string>>);
static_assert(!mproc::Encodable<int*>);
static_assert(!mproc::Encodable<HasPointer>);
static_assert(!mproc::Encodable<std::unique_ptr<int>>);
static_assert(!mproc::Encodable<std::vector<int*>>);
static_assert(!mproc::Encodable<std::tuple<int, void*>>);

TEST(Codec, ScalarsRoundTrip) {
  EXPECT_EQ(round_trip(42), 42);
  EXPECT_EQ(round_trip(-7LL), -7LL);
  EXPECT_EQ(round_trip(2.5), 2.5);
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip(false), false);
  EXPECT_EQ(round_trip(Color::green), Color::green);
  EXPECT_EQ(round_trip(std::byte{0xab}), std::byte{0xab});
  EXPECT_EQ(round_trip(std::chrono::milliseconds(1500)), std::chrono::milliseconds(1500));
  using U128 = mproc::detail::uint128;
  const U128 big = (static_cast<U128>(1) << 100) + 5;
  EXPECT_TRUE(round_trip(big) == big);
}

TEST(Codec, ContainersRoundTrip) {
  EXPECT_EQ(round_trip(std::string("hello\0world", 11)), std::string("hello\0world", 11));
  EXPECT_EQ(round_trip(std::string()), std::string());
  EXPECT_EQ(round_trip(std::vector<int>{1, 2, 3}), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(round_trip(std::vector<std::string>{"a", "", "ccc"}), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(round_trip(std::array<int, 3>{4, 5, 6}), (std::array<int, 3>{4, 5, 6}));
  EXPECT_EQ(round_trip(std::optional<int>()), std::optional<int>());
  EXPECT_EQ(round_trip(std::optional<int>(3)), std::optional<int>(3));
  EXPECT_EQ(round_trip(std::pair<int, std::string>(1, "x")), (std::pair<int, std::string>(1, "x")));
  EXPECT_EQ(round_trip(std::tuple<int, double, std::string>(1, 2.0, "three")),
            (std::tuple<int, double, std::string>(1, 2.0, "three")));
  using V = std::variant<std::monostate, int, std::string>;
  EXPECT_EQ(round_trip(V()), V());
  EXPECT_EQ(round_trip(V(std::string("s"))), V(std::string("s")));
  const std::map<std::string, int> m{{"a", 1}, {"b", 2}};
  EXPECT_EQ(round_trip(m), m);
  const std::unordered_map<int, std::vector<int>> um{{1, {1}}, {2, {2, 2}}};
  EXPECT_EQ(round_trip(um), um);
  const std::set<std::string> s{"x", "y"};
  EXPECT_EQ(round_trip(s), s);
  EXPECT_EQ(round_trip(std::vector<Empty>(3)), std::vector<Empty>(3));
}

TEST(Codec, AggregatesRoundTripByReflection) {
  const Outer o{7, true, Color::red, {"inner", {1.5, 2.5}}, Inner{"maybe", {}}, {1, -2, 3}};
  EXPECT_EQ(round_trip(o), o);
  const std::vector<Outer> many(5, o);
  EXPECT_EQ(round_trip(many), many);
}

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

TEST(Codec, HostileInputIsRejectedNotTrusted) {
  // Truncated: a string that claims more bytes than follow.
  auto truncated = mproc::dumps(std::string("hello"));
  truncated.pop_back();
  EXPECT_THROW(mproc::loads<std::string>(truncated), mproc::DecodeError);
  // A count that would allocate terabytes: rejected before any allocation.
  std::vector<std::byte> huge(8, std::byte{0xff});
  EXPECT_THROW(mproc::loads<std::vector<std::uint64_t>>(huge), mproc::DecodeError);
  EXPECT_THROW(mproc::loads<std::vector<std::string>>(huge), mproc::DecodeError);
  EXPECT_THROW(mproc::loads<std::vector<Empty>>(huge), mproc::DecodeError);
  // A bool that is neither 0 nor 1 would be undefined behaviour if copied.
  EXPECT_THROW(mproc::loads<bool>(bytes_of({2})), mproc::DecodeError);
  // A variant index out of range.
  EXPECT_THROW((mproc::loads<std::variant<int, double>>(bytes_of({5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}))),
               mproc::DecodeError);
  // Trailing bytes.
  auto trailing = mproc::dumps(1);
  trailing.push_back(std::byte{0});
  EXPECT_THROW(mproc::loads<int>(trailing), mproc::DecodeError);
  // Empty input.
  EXPECT_THROW(mproc::loads<int>({}), mproc::DecodeError);
}

TEST(Codec, DescriptorsAreCarriedBesideTheBytes) {
  std::vector<std::byte> buf;
  mproc::Encoder enc(buf);
  enc.put(enc.add_fd(17));
  enc.put(enc.add_fd(42));
  ASSERT_EQ(enc.fds(), (std::vector<int>{17, 42}));
  const int received[] = {100, 101};
  mproc::Decoder dec(buf, received);
  EXPECT_EQ(dec.fd(dec.get<std::uint32_t>()), 100);
  EXPECT_EQ(dec.fd(dec.get<std::uint32_t>()), 101);
  mproc::Decoder missing(buf);
  EXPECT_THROW((void)missing.fd(missing.get<std::uint32_t>()), mproc::DecodeError);
}

RC_GTEST_PROP(CodecProperties, NestedValuesRoundTrip,
              (const std::vector<std::string>& strings, const std::map<int, std::vector<double>>& map,
               const std::string& text, bool present, int id)) {
  const auto maybe = present ? std::optional<std::string>(text) : std::nullopt;
  const auto value = std::make_tuple(strings, map, maybe, id);
  RC_ASSERT(round_trip(value) == value);
}

RC_GTEST_PROP(CodecProperties, AggregatesRoundTrip,
              (int id, bool flag, const std::string& label, const std::vector<double>& values)) {
  const Outer o{id, flag, flag ? Color::green : Color::red, {label, values}, std::nullopt, {1, 2, 3}};
  RC_ASSERT(round_trip(o) == o);
}

RC_GTEST_PROP(CodecProperties, GarbageNeverCrashesTheDecoder, (const std::vector<std::uint8_t>& garbage)) {
  std::vector<std::byte> bytes;
  for (std::uint8_t b : garbage) bytes.push_back(static_cast<std::byte>(b));
  try {
    (void)mproc::loads<std::tuple<std::string, std::vector<Outer>, std::map<std::string, std::set<int>>>>(
        bytes);
  } catch (const mproc::DecodeError&) {
    // Rejected: the only acceptable failure.
  }
}

RC_GTEST_PROP(CodecProperties, EveryTruncationIsRejected, (const std::vector<std::string>& strings)) {
  const auto full = mproc::dumps(strings);
  const auto cut = *rc::gen::inRange<std::size_t>(0, full.size() == 0 ? 1 : full.size());
  if (cut >= full.size()) return;
  RC_ASSERT_THROWS_AS(mproc::loads<std::vector<std::string>>(std::span(full).first(cut)), mproc::DecodeError);
}

}  // namespace
