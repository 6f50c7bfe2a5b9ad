// The plain-data pickle codec: CPython's own pickles (protocols 2, 4 and 5, made by
// pickle.dumps on Python 3.11 and pasted here as hex) load to the expected values, dumps round
// trips, typed conversions check their types, and everything that would call or build anything
// (GLOBAL, REDUCE, sets, instances, recursive structures, truncation) is refused.
#include "mproc/pickle.hpp"

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "expect_error.hpp"

namespace {

namespace pk = mproc::pickle;

std::vector<std::byte> unhex(const std::string& hex) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

pk::Value str(const char* s) {
  return pk::Value(std::string(s));
}

TEST(Pickle, LoadsCPythonsProtocol4) {
  // pickle.dumps([1, "a", {"k": 2.5}], protocol=4)
  const auto v =
      pk::loads(unhex("8004951b000000000000005d94284b018c0161947d948c016b9447400400000000000073652e"));
  const pk::Value expected(
      pk::List{pk::Value(std::int64_t{1}), str("a"), pk::Value(pk::Dict{{{str("k"), pk::Value(2.5)}}})});
  EXPECT_EQ(v, expected);
  using Item = std::variant<long, std::string, std::map<std::string, double>>;
  const auto typed = pk::from_value<std::vector<Item>>(v);
  ASSERT_EQ(typed.size(), 3U);
  EXPECT_EQ(std::get<long>(typed[0]), 1);
  EXPECT_EQ(std::get<std::string>(typed[1]), "a");
  EXPECT_EQ((std::get<std::map<std::string, double>>(typed[2])), (std::map<std::string, double>{{"k", 2.5}}));
}

TEST(Pickle, Scalars) {
  // (None, True, False, -1, 255, 65535, 2**31-1, -2**31, 2**40, -2**40, 2**63, 2**100, -2**100, 1.5, "é",
  // b"\0\xff")
  const auto v =
      pk::loads(unhex("8004956700000000000000284e88894affffffff4bff4dffff4affffff7f4a000000808a06000000000001"
                      "8a060000000000ff8a0900"
                      "00000000000080008a0d000000000000000000000000108a0d000000000000000000000000f0473ff80000"
                      "000000008c02c3a99443"
                      "0200ff9474942e"));
  const auto& t = std::get<pk::Tuple>(v.v).items;
  ASSERT_EQ(t.size(), 16U);
  EXPECT_EQ(t[0], pk::Value(pk::None{}));
  EXPECT_EQ(t[1], pk::Value(true));
  EXPECT_EQ(t[2], pk::Value(false));
  EXPECT_EQ(pk::from_value<int>(t[3]), -1);
  EXPECT_EQ(pk::from_value<int>(t[4]), 255);
  EXPECT_EQ(pk::from_value<int>(t[5]), 65535);
  EXPECT_EQ(pk::from_value<std::int32_t>(t[6]), INT32_MAX);
  EXPECT_EQ(pk::from_value<std::int32_t>(t[7]), INT32_MIN);
  EXPECT_EQ(pk::from_value<std::int64_t>(t[8]), std::int64_t{1} << 40);
  EXPECT_EQ(pk::from_value<std::int64_t>(t[9]), -(std::int64_t{1} << 40));
  EXPECT_TRUE(std::holds_alternative<pk::BigInt>(t[10].v)) << "2**63 does not fit int64";
  EXPECT_TRUE(std::holds_alternative<pk::BigInt>(t[11].v));
  EXPECT_THROW((void)pk::from_value<std::int64_t>(t[11]), mproc::ValueError);
  EXPECT_EQ(pk::from_value<double>(t[13]), 1.5);
  EXPECT_EQ(pk::from_value<std::string>(t[14]), "\xc3\xa9");
  EXPECT_EQ(pk::from_value<pk::Bytes>(t[15]).data, (std::vector<std::byte>{std::byte{0}, std::byte{0xff}}));
  expect_error<mproc::ValueError>([&] { (void)pk::from_value<std::uint8_t>(t[3]); },
                                  "int -1 does not fit the C++ type");
  expect_error<mproc::ValueError>([&] { (void)pk::from_value<std::string>(t[3]); },
                                  "a pickled int where str was expected");
}

TEST(Pickle, OtherProtocolsAndTheMemo) {
  // protocol 5: [1, "a"]; protocol 2: {"a": [1, (2,)]} (BINUNICODE, BINPUT); x = [1, 2]; [x, x]
  EXPECT_EQ(pk::loads(unhex("8005950b000000000000005d94284b018c016194652e")),
            pk::Value(pk::List{pk::Value(std::int64_t{1}), str("a")}));
  EXPECT_EQ((pk::from_value<std::map<std::string, std::tuple<int, std::tuple<int>>>>(
                pk::loads(unhex("80027d710058010000006171015d7102284b014b0285710365732e")))),
            (std::map<std::string, std::tuple<int, std::tuple<int>>>{{"a", {1, {2}}}}));
  const auto shared = pk::from_value<std::vector<std::vector<int>>>(
      pk::loads(unhex("8004950f000000000000005d94285d94284b014b02656801652e")));
  EXPECT_EQ(shared, (std::vector<std::vector<int>>{{1, 2}, {1, 2}})) << "the memo refers to the filled list";
}

TEST(Pickle, RoundTrip) {
  const std::map<std::string, std::vector<std::optional<double>>> m{{"x", {1.5, std::nullopt}}, {"y", {}}};
  EXPECT_EQ((pk::from_value<std::remove_cvref_t<decltype(m)>>(pk::loads(pk::dumps(pk::to_value(m))))), m);
  for (std::int64_t i : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{255}, std::int64_t{256},
                         std::int64_t{-129}, std::int64_t{1} << 33, INT64_MIN, INT64_MAX}) {
    EXPECT_EQ(pk::from_value<std::int64_t>(pk::loads(pk::dumps(pk::to_value(i)))), i);
  }
  const std::string long_text(70'000, 'z');
  EXPECT_EQ(pk::from_value<std::string>(pk::loads(pk::dumps(pk::to_value(long_text)))), long_text);
  const auto t = std::make_tuple(1, std::string("two"), 3.0, true, std::vector<int>{}, std::make_pair(4, 5));
  EXPECT_EQ(pk::from_value<std::remove_cvref_t<decltype(t)>>(pk::loads(pk::dumps(pk::to_value(t)))), t);
  const std::uint64_t big = UINT64_MAX;
  EXPECT_TRUE(std::holds_alternative<pk::BigInt>(pk::loads(pk::dumps(pk::to_value(big))).v));
}

TEST(Pickle, RefusesWhatWouldRunOrBuild) {
  expect_error<mproc::DecodeError>(
      [] { (void)pk::loads(unhex("636f730a73797374656d0a2853276563686f206869270a74522e")); },  // os.system
      "pickle: opcode 0x63 (GLOBAL) is not allowed: only None, bool, int, float, str, bytes, list, tuple and "
      "dict are "
      "loaded");
  EXPECT_THROW((void)pk::loads(unhex("80049507000000000000008f94284b01902e")), mproc::DecodeError);  // a set
  EXPECT_THROW(
      (void)pk::loads(unhex(
          "80049522000000000000008c086275696c74696e73948c09457863657074696f6e9493948c017894859452942e")),
      mproc::DecodeError);  // Exception("x"): STACK_GLOBAL, REDUCE
  EXPECT_THROW((void)pk::loads(unhex("80049506000000000000005d946800612e")), mproc::DecodeError);  // l = [l]
  EXPECT_THROW((void)pk::loads(unhex("8004958c")), mproc::DecodeError);          // truncated
  EXPECT_THROW((void)pk::loads(unhex("80045800ffffff2e")), mproc::DecodeError);  // a length past the end
  EXPECT_THROW((void)pk::loads(unhex("8004612e")), mproc::DecodeError);          // APPEND on nothing
  EXPECT_THROW((void)pk::loads(unhex("80044b014b022e")), mproc::DecodeError);    // two items at STOP
  EXPECT_THROW((void)pk::loads({}), mproc::DecodeError);
}

}  // namespace
