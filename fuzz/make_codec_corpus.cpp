// Writes fuzz/corpus/codec_decode/'s seeds from the real encoder, so that they follow the wire
// format of this build: valid values of every case in fuzz/codec_cases.hpp, each also truncated by
// one byte, and hand-made corruptions (huge counts, bad bool bytes and variant indices, trailing
// bytes). Build and run it when the format or the cases change:
//
//   cmake --build build/test --target make_codec_corpus
//   build/test/fuzz/make_codec_corpus fuzz/corpus/codec_decode
//
// Files are named <case>-<what>; it overwrites its own files and leaves the others (reproducers
// of past bugs, inputs found by fuzzing) alone.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec_cases.hpp"
#include "mproc/codec.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;
using namespace mproc_fuzz;

fs::path g_dir;
int g_written = 0;

void write_input(std::size_t case_index, const std::string& what, const Bytes& payload) {
  char prefix[8];
  std::snprintf(prefix, sizeof prefix, "%02zu-", case_index);
  std::ofstream out(g_dir / (prefix + what), std::ios::binary | std::ios::trunc);
  const auto selector = static_cast<char>(case_index);
  out.write(&selector, 1);
  out.write(reinterpret_cast<const char*>(payload.data()), static_cast<std::streamsize>(payload.size()));
  if (!out) throw std::runtime_error("cannot write " + (g_dir / (prefix + what)).string());
  ++g_written;
}

/// A valid encoding of value as case I, and the same without its last byte (truncated).
template <std::size_t I>
void valid(const std::string& what, const CaseType<I>& value) {
  const Bytes bytes = mproc::dumps(value);
  write_input(I, what, bytes);
  if (!bytes.empty()) write_input(I, what + "-truncated", Bytes(bytes.begin(), bytes.end() - 1));
}

/// Bytes built by hand with the encoder's primitives, for encodings the encoder never writes.
template <class... Parts>
Bytes raw(const Parts&... parts) {
  Bytes out;
  mproc::Encoder enc(out);
  (enc.put(parts), ...);
  return out;
}

Bytes with(Bytes bytes, std::size_t offset, std::byte value) {
  bytes.at(offset) = value;
  return bytes;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr std::uint64_t kHuge = std::uint64_t{1} << 60;

Record sample_record() {
  return Record{Color::green,
                true,
                2.5,
                "ring",
                {-1, 0, 7},
                {'a', 'b', 'c'},
                Point{-3, "here"},
                std::chrono::milliseconds(1500)};
}

void write_all() {
  valid<0>("int", -123456);
  write_input(0, "int-trailing-byte", raw(7, std::uint8_t{0}));

  valid<1>("string-empty", "");
  valid<1>("string", "hello, mproc");
  write_input(1, "string-huge-length", raw(kHuge) + raw(std::uint8_t{'x'}));
  write_input(1, "string-length-minus-one", raw(std::numeric_limits<std::uint64_t>::max()));

  valid<2>("vector-u32", {1, 2, 0xffffffff});
  // A count whose byte size overflows size_t: 2^62 * 4 == 0 (mod 2^64).
  write_input(2, "vector-u32-count-overflows", raw(std::uint64_t{1} << 62) + raw(std::uint32_t{1}));

  valid<3>("map", {{"a", 1}, {"b", -2}, {"long key", std::numeric_limits<std::int64_t>::min()}});
  // Keys out of order and repeated: accepted, the last value wins.
  write_input(3, "map-unsorted-duplicates",
              raw(std::uint64_t{3}, std::string("z"), std::int64_t{1}, std::string("a"), std::int64_t{2},
                  std::string("z"), std::int64_t{3}));

  valid<4>("optional-empty", std::nullopt);
  valid<4>("optional", "x");
  write_input(4, "optional-bool-2", with(mproc::dumps(std::optional<std::string>("x")), 0, std::byte{2}));

  valid<5>("variant-int", 42);
  valid<5>("variant-string", std::string("alt"));
  valid<5>("variant-doubles", std::vector<double>{0.0, -1.5, std::numeric_limits<double>::quiet_NaN()});
  write_input(5, "variant-index-3", raw(std::uint32_t{3}, 42));
  write_input(5, "variant-index-max", raw(std::numeric_limits<std::uint32_t>::max(), 42));

  valid<6>("tuple", {7, "seven"});

  valid<7>("nested", {{{"k", {"v1", "v2"}}, {"empty", {}}}, {}, {{"", {""}}}});
  write_input(7, "nested-inner-huge", raw(std::uint64_t{1}, std::uint64_t{1}, std::string("k"), kHuge));

  valid<8>("record", sample_record());
  // The bool field follows the one-byte Color.
  write_input(8, "record-bool-7", with(mproc::dumps(sample_record()), 1, std::byte{7}));

  valid<9>("array-u16", {1, 2, 3, 65535});

  valid<10>("unordered-map", {{1, "one"}, {-2, "minus two"}});

  valid<11>("set", {"a", "b", "c"});
  write_input(11, "set-duplicates", raw(std::uint64_t{2}, std::string("a"), std::string("a")));

  valid<12>("unordered-set", {1, -1, std::numeric_limits<std::int64_t>::max()});

  valid<13>("vector-variants", {std::monostate{}, true, std::int8_t{-8}});
  write_input(13, "vector-variants-bool-2", raw(std::uint64_t{1}, std::uint32_t{1}, std::uint8_t{2}));

  valid<14>("monostates", std::vector<std::monostate>(3));
  // Elements of zero encoded size are capped at Decoder::kMaxEmptyElements.
  write_input(14, "monostates-at-cap", raw(mproc::Decoder::kMaxEmptyElements));
  write_input(14, "monostates-over-cap", raw(mproc::Decoder::kMaxEmptyElements + 1));

  valid<15>("vector-optional-records", {std::nullopt, sample_record()});

  valid<16>("pair-bools", {true, {true, false, true}});
  write_input(16, "pair-bools-count-huge", raw(true, kHuge));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <corpus directory>\n";
    return 2;
  }
  g_dir = argv[1];
  fs::create_directories(g_dir);
  write_all();
  std::cout << "make_codec_corpus: wrote " << g_written << " inputs to " << g_dir.string() << "\n";
  return 0;
}
