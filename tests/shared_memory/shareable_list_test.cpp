// mproc::ShareableList: CPython's layout byte for byte, its semantics and errors (api-anchors
// section 9, item 15 of section 17), trailing NULs kept (gh-96779), corrupt segments refused,
// and use from child processes under every start method. Interop with real CPython processes is
// in cpython_interop_test.cpp.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/process.hpp"
#include "mproc/shared_memory.hpp"
#include "shm_test_support.hpp"

namespace {

using mproc::Bytes;
using mproc::ShareableList;
using mproc::SharedMemory;
using Item = ShareableList::Item;
using mproc_shm_test::bytes;
using mproc_shm_test::hex;
using mproc_shm_test::segment_exists;
using mproc_shm_test::ShmName;
using mproc_shm_test::Unlinker;

std::string segment_hex(const ShareableList& list) {
  auto view = list.shm().buf();
  return hex(view.span());
}

/// The list CPython 3.11-3.13 builds for [1, 2.5, True, "str", b"bytes", None, "", b"x"*8],
/// dumped with bytes(sl.shm.buf).hex() (the probe is in docs/shared_memory.md).
constexpr std::string_view kCPythonBytes =
    "0800000000000000"                                                  // N = 8
    "0000000000000000080000000000000010000000000000001800000000000000"  // offsets 0, 8, 16, 24
    "20000000000000002800000000000000300000000000000038000000000000004800000000000000"  // 32..72
    "0100000000000000"                                                                  // 1
    "0000000000000440"                                                                  // 2.5
    "0000000000000001"                                                                  // True at byte 7
    "7374720000000000"                                                                  // "str"
    "6279746573000000"                                                                  // b"bytes"
    "0000000000000000"                                                                  // None
    "0000000000000000"                                                                  // ""
    "78787878787878780000000000000000"  // b"x"*8 in a 16-byte slot
    "7100000000000000"
    "6400000000000000"
    "787878787878783f"
    "3873000000000000"  // q d xxxxxxx? 8s
    "3873000000000000"
    "7878787878783f78"
    "3873000000000000"
    "3136730000000000"   // 8s xxxxxx?x 8s 16s
    "0000000102030102";  // codes

// ---------------------------------------------------------------------------------------------
// Layout

TEST(ShareableListLayout, BytesAreCPythons) {
  ShmName name("layout");
  auto list =
      ShareableList::create({1, 2.5, true, "str", bytes("bytes"), nullptr, "", bytes("xxxxxxxx")}, name);
  EXPECT_EQ(list.shm().size(), 224U);
  EXPECT_EQ(segment_hex(list), kCPythonBytes);
  EXPECT_EQ(list.format(), "qdxxxxxxx?8s8sxxxxxx?x8s16s");
  list.shm().close();
  list.shm().unlink();
}

TEST(ShareableListLayout, AttachReadsCPythonsBytes) {
  // Lay down CPython's bytes by hand in a raw segment and read them as a list.
  ShmName name("cpython-bytes");
  auto shm = SharedMemory::create(kCPythonBytes.size() / 2, name);
  {
    auto view = shm.buf();
    for (std::size_t i = 0; i < view.size(); ++i) {
      view[i] = static_cast<std::byte>(std::stoi(std::string(kCPythonBytes.substr(2 * i, 2)), nullptr, 16));
    }
  }
  auto list = ShareableList::attach(name);
  ASSERT_EQ(list.size(), 8U);
  const std::vector<Item> expected{std::int64_t{1}, 2.5,     true,          std::string("str"),
                                   bytes("bytes"),  nullptr, std::string(), bytes("xxxxxxxx")};
  EXPECT_EQ(list.to_vector(), expected);
  EXPECT_EQ(list.repr(), "ShareableList([1, 2.5, True, 'str', b'bytes', None, '', b'xxxxxxxx'], name='" +
                             name.str() + "')");
  shm.unlink();
}

TEST(ShareableListLayout, EmptyListIsSixteenZeroBytes) {
  ShmName name("empty");
  auto list = ShareableList::create({}, name);
  EXPECT_EQ(list.size(), 0U);
  EXPECT_EQ(segment_hex(list), std::string(32, '0'));
  EXPECT_EQ(list.format(), "");
  auto same = ShareableList::attach(name);
  EXPECT_EQ(same.size(), 0U);
  list.shm().unlink();
}

TEST(ShareableListLayout, StrSlotsAreSizedInUtf8Bytes) {
  // CPython sizes by characters and truncates multi-byte text (gh-88336); here "💥💥" (8 bytes,
  // 2 characters) gets a 16-byte slot and comes back whole.
  ShmName name("utf8");
  const std::string text = "\xf0\x9f\x92\xa5\xf0\x9f\x92\xa5";
  auto list = ShareableList::create({text}, name);
  EXPECT_EQ(list.format(), "16s");
  EXPECT_EQ(list[0].as<std::string>(), text);
  list.shm().unlink();
}

// ---------------------------------------------------------------------------------------------
// Reading and writing

TEST(ShareableList, InitializerListMakesAGeneratedTrackedList) {
  ShareableList list{1, 2.5, true, std::string("str"), Bytes{std::byte{1}}, nullptr};
  Unlinker guard(list.shm().name());
  EXPECT_EQ(list.shm().name().substr(0, 4), "psm_");
  EXPECT_EQ(list.size(), 6U);
  EXPECT_EQ(list[0].as<std::int64_t>(), 1);
  EXPECT_EQ(list[1].as<double>(), 2.5);
  EXPECT_EQ(list[2].as<bool>(), true);
  EXPECT_EQ(list[3].as<std::string>(), "str");
  EXPECT_EQ(list[4].as<Bytes>(), Bytes{std::byte{1}});
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(list[5].get()));
  list.shm().unlink();
}

TEST(ShareableList, AttachedListSeesWritesBothWays) {
  ShmName name("both-ways");
  auto list = ShareableList::create({0, 0.0, false, "abcdefgh"}, name);
  auto same = ShareableList::attach(name);
  list[0] = 7;
  same[1] = -1.25;
  list[2] = true;
  same[3] = "xyz";
  EXPECT_EQ(same[0], 7);
  EXPECT_EQ(list[1], -1.25);
  EXPECT_EQ(same[2], true);
  EXPECT_EQ(list[3].as<std::string>(), "xyz");
  EXPECT_EQ(list.format(), same.format());
  EXPECT_EQ(list.format(), "qdxxxxxxx?16s");
  list.shm().unlink();
}

TEST(ShareableList, NegativeIndicesCountFromTheEnd) {
  ShmName name("negative");
  auto list = ShareableList::create({1, 2, 3}, name);
  EXPECT_EQ(list[-1], 3);
  EXPECT_EQ(list.get(-3), Item(1));
  list[-2] = 20;
  EXPECT_EQ(list[1], 20);
  EXPECT_EQ(list[std::size_t{2}], 3);
  list.shm().unlink();
}

TEST(ShareableList, IndexErrorsUseCPythonsMessages) {
  ShmName name("index-errors");
  auto list = ShareableList::create({1, 2, 3}, name);
  for (long i : {3L, 100L, -4L, std::numeric_limits<long>::min()}) {
    try {
      (void)list.get(i);
      FAIL() << "read index " << i;
    } catch (const mproc::IndexError& e) {
      EXPECT_STREQ(e.what(), "index out of range");
    }
    try {
      list[i] = 5;
      FAIL() << "wrote index " << i;
    } catch (const mproc::IndexError& e) {
      EXPECT_STREQ(e.what(), "assignment index out of range");
    }
  }
  EXPECT_THROW((void)list[std::numeric_limits<std::size_t>::max()].get(), mproc::IndexError);
  list.shm().unlink();
}

TEST(ShareableList, StrOrBytesLongerThanTheSlotIsValueError) {
  ShmName name("overflow");
  auto list = ShareableList::create({"abc", 1}, name);  // slots of 8 and 8
  try {
    list[0] = "abcdefghi";
    FAIL() << "9 bytes went into an 8-byte slot";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "bytes/str item exceeds available storage");
  }
  EXPECT_EQ(list[0].as<std::string>(), "abc") << "a refused write changes nothing";
  list[0] = "abcdefgh";  // exactly the slot: allowed, as CPython's
  EXPECT_EQ(list[0].as<std::string>(), "abcdefgh");
  EXPECT_THROW(list[1] = bytes("123456789"), mproc::ValueError);
  list.shm().unlink();
}

TEST(ShareableList, ASlotMayChangeTypeIfTheNewValueFits) {
  ShmName name("retype");
  auto list = ShareableList::create({1, "a long string slot", nullptr}, name);
  list[0] = "xy";
  EXPECT_EQ(list[0].as<std::string>(), "xy");
  list[1] = 3.5;
  EXPECT_EQ(list[1].as<double>(), 3.5);
  list[1] = bytes("back to bytes");
  EXPECT_EQ(list[1].as<Bytes>(), bytes("back to bytes"));
  list[2] = true;
  EXPECT_EQ(list[2].as<bool>(), true);
  list[0] = nullptr;
  EXPECT_EQ(list.format(), "xxxxxx?x24sxxxxxxx?");
  list.shm().unlink();
}

TEST(ShareableList, ExtremeNumbersRoundTrip) {
  ShmName name("numbers");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto list = ShareableList::create(
      {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), -0.0,
       std::numeric_limits<double>::infinity(), nan, 5e-324},
      name);
  EXPECT_EQ(list[0].as<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(list[1].as<std::int64_t>(), std::numeric_limits<std::int64_t>::max());
  EXPECT_TRUE(std::signbit(list[2].as<double>()));
  EXPECT_EQ(list[3].as<double>(), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(list[4].as<double>()));
  EXPECT_EQ(list[5].as<double>(), 5e-324);
  EXPECT_EQ(list.repr(),
            "ShareableList([-9223372036854775808, 9223372036854775807, -0.0, inf, nan, 5e-324], name='" +
                name.str() + "')");
  list.shm().unlink();
}

TEST(ShareableList, CountAndIndexUsePythonEquality) {
  ShmName name("count");
  auto list = ShareableList::create(
      {1, 1.0, true, "1", bytes("1"), nullptr, 2, std::numeric_limits<double>::quiet_NaN()}, name);
  EXPECT_EQ(list.count(1), 3U) << "1 == 1.0 == True in Python";
  EXPECT_EQ(list.count(true), 3U);
  EXPECT_EQ(list.count(std::string("1")), 1U) << "str is never equal to bytes";
  EXPECT_EQ(list.count(bytes("1")), 1U);
  EXPECT_EQ(list.count(nullptr), 1U);
  EXPECT_EQ(list.count(0), 0U);
  EXPECT_EQ(list.count(std::numeric_limits<double>::quiet_NaN()), 0U) << "nan != nan";
  EXPECT_EQ(list.index(2.0), 6U);
  EXPECT_EQ(list.index(nullptr), 5U);
  try {
    (void)list.index(99);
    FAIL() << "index of a missing value";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "99 not in this container");
  }
  EXPECT_THROW((void)list.index(std::string("2")), mproc::ValueError);
  list.shm().unlink();
}

TEST(ShareableList, PythonEqualityOfNumbersIsExact) {
  EXPECT_TRUE(ShareableList::equal(std::int64_t{1} << 53, 9007199254740992.0));
  EXPECT_FALSE(ShareableList::equal((std::int64_t{1} << 53) + 1, 9007199254740992.0))
      << "no lossy conversion to double, as Python's int == float";
  EXPECT_FALSE(ShareableList::equal(std::numeric_limits<std::int64_t>::max(), 9223372036854775808.0));
  EXPECT_TRUE(ShareableList::equal(false, 0.0));
  EXPECT_FALSE(ShareableList::equal(0.5, false));
  EXPECT_FALSE(ShareableList::equal(std::string(), Bytes{}));
}

TEST(ShareableList, IterationAndToVector) {
  ShmName name("iterate");
  auto list = ShareableList::create({1, "two", 3.0}, name);
  std::vector<Item> seen;
  for (const Item& item : list) seen.push_back(item);
  EXPECT_EQ(seen, list.to_vector());
  EXPECT_EQ(seen.size(), 3U);
  EXPECT_EQ(std::get<std::string>(seen[1]), "two");
  static_assert(std::input_iterator<ShareableList::Iterator>);
  list.shm().unlink();
}

TEST(ShareableList, ReprQuotesAsPython) {
  ShmName name("repr");
  auto list =
      ShareableList::create({"it's", "say \"hi\"", "both ' \"", bytes(std::string("\x00\x7f\x80\n\\", 5)),
                             "tab\t", 1e16, 1e-5, 123.456, 100.0, 0.1},
                            name);
  EXPECT_EQ(list.repr(),
            "ShareableList([\"it's\", 'say \"hi\"', 'both \\' \"', b'\\x00\\x7f\\x80\\n\\\\', 'tab\\t', "
            "1e+16, 1e-05, "
            "123.456, 100.0, 0.1], name='" +
                name.str() + "')");
  list.shm().unlink();
}

// ---------------------------------------------------------------------------------------------
// Trailing NULs (gh-96779): kept, with a format CPython can read and overwrite

TEST(ShareableListNuls, TrailingNulsOfBytesAndStrAreKept) {
  ShmName name("nuls");
  const Bytes b = bytes(std::string("x\0\0", 3));
  const std::string s("ab\0", 3);
  auto list =
      ShareableList::create({b, s, bytes(std::string("\0", 1)), bytes(std::string("\0mid\0dle", 8))}, name);
  EXPECT_EQ(list[0].as<Bytes>(), b);
  EXPECT_EQ(list[1].as<std::string>(), s);
  EXPECT_EQ(list[2].as<Bytes>(), bytes(std::string("\0", 1)));
  EXPECT_EQ(list[3].as<Bytes>(), bytes(std::string("\0mid\0dle", 8))) << "inner NULs are plain data";
  EXPECT_EQ(list.format(), "3sx3sx1sx16s") << "NUL-ended values record their length";
  // Overwriting with and without trailing NULs switches the format back and forth.
  list[0] = bytes("abcdefg");
  EXPECT_EQ(list[0].as<Bytes>(), bytes("abcdefg"));
  list[0] = bytes(std::string("abcdef\0", 7));
  EXPECT_EQ(list[0].as<Bytes>(), bytes(std::string("abcdef\0", 7)));
  EXPECT_EQ(list.format().substr(0, 3), "7sx");
  auto same = ShareableList::attach(name);
  EXPECT_EQ(same[0].as<Bytes>(), bytes(std::string("abcdef\0", 7)));
  list.shm().unlink();
}

TEST(ShareableListNuls, ANulEndedValueThatFillsItsSlotIsValueError) {
  ShmName name("nul-full");
  auto list = ShareableList::create({bytes("1234567")}, name);  // an 8-byte slot
  EXPECT_THROW(list[0] = bytes(std::string("1234567\0", 8)), mproc::ValueError);
  EXPECT_EQ(list[0].as<Bytes>(), bytes("1234567"));
  list[0] = bytes("12345678");  // fills the slot, no trailing NUL: fine
  EXPECT_EQ(list[0].as<Bytes>(), bytes("12345678"));
  list.shm().unlink();
}

TEST(ShareableListNuls, ALongNulEndedValueUpToTheFormatLimit) {
  ShmName name("nul-long");
  Bytes big(999'999, std::byte{1});
  big.back() = std::byte{0};
  auto list = ShareableList::create({big}, name);
  EXPECT_EQ(list.format(), "999999sx");
  EXPECT_EQ(list[0].as<Bytes>(), big);
  list.shm().unlink();
  Bytes bigger(1'000'000, std::byte{1});
  bigger.back() = std::byte{0};
  ShmName other("nul-too-long");
  EXPECT_THROW((void)ShareableList::create({bigger}, other), mproc::ValueError);
  EXPECT_FALSE(segment_exists(other.str())) << "a refused list creates no segment";
}

TEST(ShareableListNuls, PaddedFormatsFromCPythonAreStripped) {
  // A value CPython wrote ("8s", the whole slot) is NUL-padded: its trailing NULs are padding.
  ShmName name("padded");
  auto list = ShareableList::create({bytes("abc")}, name);
  {
    auto view = list.shm().buf();
    // data area at 8 * (1 + 2) = 24: "ab\0" then padding, as CPython writes b"ab\0"
    std::memcpy(view.data() + 24, "ab\0\0\0\0\0\0", 8);
  }
  EXPECT_EQ(list[0].as<Bytes>(), bytes("ab"));
  list.shm().unlink();
}

TEST(ShareableListNuls, TooLongItemsAreValueErrorBeforeAnySegmentExists) {
  ShmName name("too-long");
  EXPECT_THROW((void)ShareableList::create({std::string(9'999'992, 'a')}, name), mproc::ValueError);
  EXPECT_FALSE(segment_exists(name.str()));
}

// ---------------------------------------------------------------------------------------------
// Closed and corrupt lists

TEST(ShareableListErrors, UseAfterCloseIsValueError) {
  ShmName name("closed");
  auto list = ShareableList::create({1}, name);
  list.shm().close();
  EXPECT_THROW((void)list[0].get(), mproc::ValueError);
  EXPECT_THROW(list[0] = 2, mproc::ValueError);
  EXPECT_THROW((void)list.format(), mproc::ValueError);
  EXPECT_EQ(list.size(), 1U);
  list.shm().unlink();
}

TEST(ShareableListErrors, SegmentsThatAreNotListsAreDecodeError) {
  auto attach_bytes = [](const std::string& label, const std::vector<std::uint64_t>& words) {
    ShmName name(label);
    auto shm = SharedMemory::create(std::max<std::size_t>(words.size(), 1) * 8, name);
    std::memcpy(shm.buf().data(), words.data(), words.size() * 8);
    try {
      (void)ShareableList::attach(name);
      shm.unlink();
      return std::string("attached");
    } catch (const mproc::DecodeError& e) {
      shm.unlink();
      return std::string(e.what());
    }
  };
  EXPECT_NE(attach_bytes("tiny", {0}).find("fewer than"), std::string::npos);
  EXPECT_NE(attach_bytes("count", {1'000'000, 0, 8}).find("item count"), std::string::npos);
  EXPECT_NE(attach_bytes("negative", {~std::uint64_t{0}, 0}).find("item count"), std::string::npos);
  // CPython 3.8's layout: item sizes where offsets belong.
  EXPECT_NE(attach_bytes("py38", {1, 8, 7, 0x71, 0}).find("3.8"), std::string::npos);
  EXPECT_NE(attach_bytes("small-slot", {1, 0, 4, 0, 0}).find("smaller than 8"), std::string::npos);
  EXPECT_NE(attach_bytes("past-end", {1, 0, 800, 0, 0}).find("need more"), std::string::npos);
  // A valid header is accepted; a bad format is then reported when the item is read.
  EXPECT_EQ(attach_bytes("ok", {1, 0, 8, 0, 0x71, 0}), "attached");
}

TEST(ShareableListErrors, ACorruptItemIsDecodeError) {
  ShmName name("corrupt-item");
  auto list = ShareableList::create({1, bytes("abc")}, name);
  {
    auto view = list.shm().buf();
    // formats start at 8 * 4 + 16 = 48
    std::memcpy(view.data() + 48, "zz\0\0\0\0\0\0", 8);  // item 0: unknown format
    std::memcpy(view.data() + 56, "99s\0\0\0\0\0", 8);   // item 1: longer than its 8-byte slot
  }
  EXPECT_THROW((void)list[0].get(), mproc::DecodeError);
  EXPECT_THROW((void)list[1].get(), mproc::DecodeError);
  list[0] = 5;  // a write repairs it
  EXPECT_EQ(list[0], 5);
  {
    auto view = list.shm().buf();
    view[64] = std::byte{1};  // item 0's code: str, with format "q"
  }
  EXPECT_THROW((void)list[0].get(), mproc::DecodeError);
  list.shm().unlink();
}

// ---------------------------------------------------------------------------------------------
// Child processes, under every start method

void child_updates_list(ShareableList list, std::int64_t value) {
  list[0] = value;
  list[1] = "from child";
  list[2] = bytes(std::string("c\0", 2));
  if (list[3] != 2.5) throw std::runtime_error("child read a wrong float");
}

std::string method_name(const testing::TestParamInfo<mproc::StartMethod>& info) {
  return std::string(mproc::to_string(info.param));
}

class ShareableListChildren : public testing::TestWithParam<mproc::StartMethod> {};

TEST_P(ShareableListChildren, ChildWritesParentReads) {
  ShmName name("list-child");
  auto list = ShareableList::create({0, std::string(16, ' '), bytes("01234567"), 2.5}, name);
  auto p = mproc::get_context(GetParam()).Process(child_updates_list, list, std::int64_t{99});
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(list[0], 99);
  EXPECT_EQ(list[1].as<std::string>(), "from child");
  EXPECT_EQ(list[2].as<Bytes>(), bytes(std::string("c\0", 2)));
  EXPECT_TRUE(segment_exists(name.str()));
  list.shm().unlink();
}

INSTANTIATE_TEST_SUITE_P(All, ShareableListChildren,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         method_name);

}  // namespace
