// Fuzz target: mproc's codec decoding bytes it must not trust.
//
// The first input byte picks a type (fuzz/codec_cases.hpp), the rest is decoded as that type with
// mproc::loads<T>. The oracle, from the contract in mproc/codec.hpp:
//   1. every input either decodes or throws mproc::DecodeError; any other exception (bad_alloc,
//      length_error, ...), a crash, a sanitizer report or an allocation over libFuzzer's
//      -malloc_limit_mb is a bug;
//   2. a decoded value survives a round trip: encoding it and decoding the encoding gives an equal
//      value (compared by encoding where NaN != NaN), and re-encoding that gives the same bytes
//      (except for unordered containers);
//   3. for types whose values have a single encoding (kCanonical), the encoding of the decoded
//      value is the input itself: the decoder accepts nothing non-canonical, such as a bool byte 2.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <span>
#include <typeinfo>
#include <vector>

#include "codec_cases.hpp"
#include "mproc/codec.hpp"

namespace {

// Found while writing this target: the codec copied any enum byte for byte, but an enum without a
// fixed underlying type cannot hold every value of its size (UBSan: "load of value 255, which is
// not a valid value for type"). Such enums are now rejected at compile time.
enum Unfixed { kUnfixedA, kUnfixedB };
enum Fixed : int { kFixedA };
static_assert(!mproc::Encodable<Unfixed> && mproc::Encodable<Fixed> && mproc::Encodable<mproc_fuzz::Color>);

[[noreturn]] void fail(const char* what, std::size_t case_index) {
  std::fprintf(stderr, "codec_decode: case %zu: %s\n", case_index, what);
  std::abort();
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return std::ranges::equal(a, b);
}

template <class Case>
void check(std::size_t case_index, std::span<const std::byte> input) {
  using T = typename Case::type;
  constexpr unsigned kProperties = Case::properties;

  std::optional<T> decoded;
  try {
    decoded.emplace(mproc::loads<T>(input));
  } catch (const mproc::DecodeError&) {
    return;  // rejected: the documented outcome for bytes that are not a T
  }

  // From here on any exception is a bug: what the encoder wrote, the decoder must read.
  const std::vector<std::byte> encoded = mproc::dumps(*decoded);
  if ((kProperties & mproc_fuzz::kCanonical) != 0 && !same_bytes(encoded, input)) {
    fail("re-encoding the decoded value does not give back the input", case_index);
  }
  const T again = mproc::loads<T>(encoded);
  if constexpr ((kProperties & mproc_fuzz::kFloats) == 0) {
    if (!(again == *decoded)) fail("decode(encode(value)) != value", case_index);
  }
  if constexpr ((kProperties & mproc_fuzz::kUnordered) == 0) {
    if (!same_bytes(mproc::dumps(again), encoded)) {
      fail("encode(decode(encode(value))) != encode(value)", case_index);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t case_index = data[0] % mproc_fuzz::kCaseCount;
  const auto input = std::as_bytes(std::span(data + 1, size - 1));
  try {
    mproc_fuzz::with_case(case_index, [&]<class Case>() { check<Case>(case_index, input); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_decode: case %zu: unexpected exception %s: %s\n", case_index,
                 typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    fail("unexpected exception of a type not derived from std::exception", case_index);
  }
  return 0;
}
