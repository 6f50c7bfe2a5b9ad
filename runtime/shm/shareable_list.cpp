// ShareableList in CPython's layout (Lib/multiprocessing/shared_memory.py, identical in 3.9 to
// 3.13). With N items, all integers native-endian int64 ("q"):
//
//   offset 0                      N
//   8                             N + 1 item offsets, relative to the data area; offsets[0] = 0
//   D = 8 (N + 2)                 the data area: item i occupies [D + offsets[i], D + offsets[i+1])
//   F = D + offsets[N]            N struct formats, 8 bytes each, NUL-padded ("q", "16s", ...)
//   F + 8 N                       N back-transform codes, one signed byte each
//   F + 9 N                       end (the segment may be larger)
//
// Codes: 0 = the value as its format unpacks it (int "q", float "d", bool "xxxxxxx?"), 1 = str
// (UTF-8), 2 = bytes, 3 = None (format "xxxxxx?x"). A str or bytes slot has 8 (len / 8 + 1)
// bytes and the format "<slot>s"; other slots have 8. Each write stores what CPython's
// struct.pack_into(format, ...) stores: the format, the code, then the data.
//
// mproc's one addition (gh-96779): a str or bytes value ending in NUL is stored with the format
// "<len>sx" so that its length survives. CPython reads that format (and strips, as it always
// does), and its writes replace it, because only formats ending in "s" are kept by its
// __setitem__. Readers here take "<n>s" with n == slot as NUL-padded (CPython's own) and
// "<n>s" with n < slot or "<n>sx" as exact.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "mproc/shared_memory.hpp"

namespace mproc {
namespace {

using Item = ShareableList::Item;

constexpr std::size_t kWord = 8;          // counts, offsets, numbers; CPython's _alignment
constexpr std::size_t kFormatSize = 8;    // each item's struct format, NUL-padded
constexpr std::size_t kFormatDigits = 7;  // the most digits a slot or length format has

enum Code : std::int8_t { kPlain = 0, kStr = 1, kBytes = 2, kNone = 3 };

constexpr std::string_view kIntFormat = "q";
constexpr std::string_view kFloatFormat = "d";
constexpr std::string_view kBoolFormat = "xxxxxxx?";
constexpr std::string_view kNoneFormat = "xxxxxx?x";

/// The largest str/bytes slot whose "<slot>s" format fits in 8 bytes, and so the longest value.
constexpr std::size_t kMaxSlot = 9'999'992;
/// The longest value ending in NUL whose exact-length format "<len>sx" fits in 8 bytes.
constexpr std::size_t kMaxExactLength = 999'999;

constexpr std::size_t digits(std::size_t n) noexcept {
  return n < 10 ? 1 : 1 + digits(n / 10);
}
static_assert(kMaxSlot % kWord == 0 && digits(kMaxSlot) + 1 == kFormatSize &&
                  digits(kMaxSlot + kWord) + 1 > kFormatSize,
              "kMaxSlot must be the largest 8-byte multiple whose \"<slot>s\" fits the 8-byte format field");
static_assert(digits(kMaxExactLength) + 2 == kFormatSize && digits(kMaxExactLength + 1) + 2 > kFormatSize,
              "kMaxExactLength must be the largest length whose \"<len>sx\" fits the 8-byte format field");

/// Copies bytes a peer may be rewriting, each read exactly once (volatile): everything that
/// bounds a later access (counts, offsets, formats) is validated on such a private copy, never
/// re-read from the segment.
void copy_once(void* to, const std::byte* from, std::size_t n) noexcept {
  const auto* src = reinterpret_cast<const volatile unsigned char*>(from);
  auto* dst = static_cast<unsigned char*>(to);
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
}

std::uint64_t read_word(const std::byte* at) noexcept {
  std::int64_t v = 0;
  copy_once(&v, at, sizeof v);
  return static_cast<std::uint64_t>(v);
}

void write_word(std::byte* at, std::uint64_t value) noexcept {
  const auto v = static_cast<std::int64_t>(value);
  std::memcpy(at, &v, sizeof v);
}

/// Where things are, from the count and the (validated, private) offsets.
struct Layout {
  const std::vector<std::uint64_t>& offsets;

  [[nodiscard]] std::size_t count() const noexcept { return offsets.size() - 1; }
  [[nodiscard]] std::size_t data_start() const noexcept { return (count() + 2) * kWord; }
  [[nodiscard]] std::size_t slot_offset(std::size_t i) const noexcept { return data_start() + offsets[i]; }
  [[nodiscard]] std::size_t slot_size(std::size_t i) const noexcept { return offsets[i + 1] - offsets[i]; }
  [[nodiscard]] std::size_t formats_start() const noexcept { return data_start() + offsets[count()]; }
  [[nodiscard]] std::size_t format_offset(std::size_t i) const noexcept {
    return formats_start() + i * kFormatSize;
  }
  [[nodiscard]] std::size_t code_offset(std::size_t i) const noexcept {
    return formats_start() + count() * kFormatSize + i;
  }
  [[nodiscard]] std::size_t total() const noexcept { return formats_start() + count() * (kFormatSize + 1); }
};

// ---------------------------------------------------------------------------------------------
// Encoding one item

/// What struct.pack_into(format, buf, slot, value) writes, and the code beside it.
struct Encoded {
  // Set by construction, not assignment, from the string_view constants: GCC 12 at -O3 reports a
  // false -Wrestrict inside std::string::operator=(string_view) (GCC PR 105329).
  std::string format;
  std::int8_t code = kPlain;
  std::vector<std::byte> data;
};

std::span<const std::byte> bytes_of(const Item& item) noexcept {
  if (const auto* s = std::get_if<std::string>(&item)) return std::as_bytes(std::span(s->data(), s->size()));
  const auto& b = std::get<Bytes>(item);
  return {b.data(), b.size()};
}

bool is_text_or_bytes(const Item& item) noexcept {
  return std::holds_alternative<std::string>(item) || std::holds_alternative<Bytes>(item);
}

template <class T>
std::vector<std::byte> word_of(T value) {
  static_assert(sizeof(T) == kWord);
  std::vector<std::byte> out(kWord);
  std::memcpy(out.data(), &value, kWord);
  return out;
}

/// The slot CPython gives an item at creation: 8 bytes, or 8 (len / 8 + 1) for str and bytes
/// (CPython counts str in characters, gh-88336; here it is UTF-8 bytes, never less).
std::size_t creation_slot(const Item& item) {
  if (!is_text_or_bytes(item)) return kWord;
  const std::size_t length = bytes_of(item).size();
  if (length >= kMaxSlot) {
    throw ValueError("a ShareableList str/bytes item holds at most " + std::to_string(kMaxSlot - 1) +
                     " bytes (its slot's struct format must fit in 8 characters); this one has " +
                     std::to_string(length));
  }
  return kWord * (length / kWord + 1);
}

Encoded encode(const Item& item, std::size_t slot) {
  Encoded e;
  switch (item.index()) {
    case 0:  // std::int64_t
      e.format = std::string(kIntFormat);
      e.data = word_of(std::get<std::int64_t>(item));
      return e;
    case 1:  // double
      e.format = std::string(kFloatFormat);
      e.data = word_of(std::get<double>(item));
      return e;
    case 2:  // bool: seven pad bytes, then the bool
      e.format = std::string(kBoolFormat);
      e.data.assign(kWord, std::byte{0});
      e.data[7] = std::byte{static_cast<unsigned char>(std::get<bool>(item) ? 1 : 0)};
      return e;
    case 5:  // None: packs None as the bool False at byte 6
      e.format = std::string(kNoneFormat);
      e.code = kNone;
      e.data.assign(kWord, std::byte{0});
      return e;
    default:
      break;
  }
  const auto value = bytes_of(item);
  e.code = std::holds_alternative<std::string>(item) ? kStr : kBytes;
  if (value.size() > slot) throw ValueError("bytes/str item exceeds available storage");
  if (value.empty() || value.back() != std::byte{0}) {
    // CPython's own format: the whole slot, NUL-padded; readers strip the padding.
    if (slot > kMaxSlot)
      throw ValueError("a ShareableList slot of " + std::to_string(slot) + " bytes cannot be written");
    e.format = std::to_string(slot) + "s";
    e.data.assign(value.begin(), value.end());
    e.data.resize(slot, std::byte{0});
    return e;
  }
  // Ends in NUL: the exact length goes in the format, "<len>sx" (one pad byte after the value).
  if (value.size() >= slot || value.size() > kMaxExactLength) {
    throw ValueError("a ShareableList str/bytes value ending in a NUL byte must be shorter than its slot (" +
                     std::to_string(slot) + " bytes) and at most " + std::to_string(kMaxExactLength) +
                     " bytes, so that its length can be recorded (this one has " +
                     std::to_string(value.size()) + "; CPython would strip its trailing NULs, gh-96779)");
  }
  e.format = std::to_string(value.size()) + "sx";
  e.data.assign(value.begin(), value.end());
  e.data.push_back(std::byte{0});
  return e;
}

/// Writes the format, the code, then the data, in CPython's order.
void store(std::byte* base, const Layout& layout, std::size_t i, const Encoded& e) {
  std::array<char, kFormatSize> format{};
  std::memcpy(format.data(), e.format.data(), e.format.size());
  std::memcpy(base + layout.format_offset(i), format.data(), kFormatSize);
  std::memcpy(base + layout.code_offset(i), &e.code, 1);
  std::memcpy(base + layout.slot_offset(i), e.data.data(), e.data.size());
}

// ---------------------------------------------------------------------------------------------
// Decoding one item

enum class Kind { integer, real, boolean, none_format, padded, exact };

struct Format {
  Kind kind;
  std::size_t length = 0;  // padded, exact: bytes to read
};

std::string_view stripped_format(const std::array<char, kFormatSize>& raw) noexcept {
  std::string_view f(raw.data(), raw.size());
  while (!f.empty() && f.back() == '\0') f.remove_suffix(1);
  return f;
}

std::optional<std::size_t> parse_count(std::string_view digits) noexcept {
  if (digits.empty() || digits.size() > kFormatDigits) return std::nullopt;
  std::size_t n = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

std::optional<Format> parse_format(std::string_view f, std::size_t slot) noexcept {
  if (f == kIntFormat) return Format{Kind::integer};
  if (f == kFloatFormat) return Format{Kind::real};
  if (f == kBoolFormat) return Format{Kind::boolean};
  if (f == kNoneFormat) return Format{Kind::none_format};
  if (f.ends_with("sx")) {
    const auto n = parse_count(f.substr(0, f.size() - 2));
    if (!n || *n + 1 > slot) return std::nullopt;
    return Format{Kind::exact, *n};
  }
  if (f.ends_with("s")) {
    const auto n = parse_count(f.substr(0, f.size() - 1));
    if (!n || *n > slot) return std::nullopt;
    return Format{*n == slot ? Kind::padded : Kind::exact, *n};
  }
  return std::nullopt;
}

[[noreturn]] void corrupt(const std::string& name, std::size_t i, std::string_view why) {
  throw DecodeError("ShareableList '" + name + "': item " + std::to_string(i) + " " + std::string(why) +
                    " (written concurrently, or the segment is not a ShareableList)");
}

Item decode(const std::byte* base, const Layout& layout, std::size_t i, const std::string& name) {
  std::array<char, kFormatSize> raw{};
  copy_once(raw.data(), base + layout.format_offset(i), kFormatSize);
  std::int8_t code = 0;
  copy_once(&code, base + layout.code_offset(i), 1);
  const std::string_view f = stripped_format(raw);
  const std::size_t slot = layout.slot_size(i);
  const auto format = parse_format(f, slot);
  if (!format) corrupt(name, i, "has an unknown format '" + std::string(f) + "'");
  const std::byte* at = base + layout.slot_offset(i);

  if (code == kNone) return nullptr;  // CPython ignores the format of a None
  const bool text = format->kind == Kind::padded || format->kind == Kind::exact;
  if (code == kPlain && !text) {
    switch (format->kind) {
      case Kind::integer: {
        std::int64_t v = 0;
        std::memcpy(&v, at, sizeof v);
        return v;
      }
      case Kind::real: {
        double v = 0;
        std::memcpy(&v, at, sizeof v);
        return v;
      }
      case Kind::boolean:
        return std::to_integer<int>(at[7]) != 0;
      default:  // "xxxxxx?x" with code 0: CPython unpacks the bool at byte 6
        return std::to_integer<int>(at[6]) != 0;
    }
  }
  if ((code == kStr || code == kBytes) && text) {
    std::size_t length = format->length;
    if (format->kind == Kind::padded) {
      // CPython's padding: strip trailing NULs (a value ending in NUL is stored "exact" here).
      while (length > 0 && at[length - 1] == std::byte{0}) --length;
    }
    if (code == kStr) return std::string(reinterpret_cast<const char*>(at), length);
    return Bytes(at, at + length);
  }
  corrupt(name, i, "has code " + std::to_string(code) + " with format '" + std::string(f) + "'");
}

// ---------------------------------------------------------------------------------------------
// Python's float repr: the shortest round-trip digits, positional for exponents in [-4, 16),
// scientific with a two-digit exponent otherwise.

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::array<char, 64> buffer{};
  const auto result =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), v, std::chars_format::scientific);
  std::string_view sci(buffer.data(), static_cast<std::size_t>(result.ptr - buffer.data()));
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const auto e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exponent);
  const auto n = static_cast<int>(digits.size());
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-exponent - 1), '0');
      out += digits;
    } else if (n > exponent + 1) {
      out += digits.substr(0, static_cast<std::size_t>(exponent + 1));
      out += '.';
      out += digits.substr(static_cast<std::size_t>(exponent + 1));
    } else {
      out += digits;
      out.append(static_cast<std::size_t>(exponent + 1 - n), '0');
      out += ".0";
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (n > 1) {
    out += '.';
    out += digits.substr(1);
  }
  out += exponent < 0 ? "e-" : "e+";
  const int magnitude = exponent < 0 ? -exponent : exponent;
  if (magnitude < 10) out += '0';
  out += std::to_string(magnitude);
  return out;
}

/// Python's repr of str (bytes >= 0x80 are passed through: UTF-8 shows as itself) or bytes.
std::string quoted_repr(std::span<const std::byte> value, bool is_bytes) {
  bool single = false;
  bool dbl = false;
  for (auto b : value) {
    single = single || b == std::byte{'\''};
    dbl = dbl || b == std::byte{'"'};
  }
  const char quote = single && !dbl ? '"' : '\'';
  std::string out = is_bytes ? "b" : "";
  out.push_back(quote);
  static constexpr std::string_view kHex = "0123456789abcdef";
  for (auto b : value) {
    const auto c = std::to_integer<unsigned char>(b);
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f || (is_bytes && c >= 0x80)) {
      out += "\\x";
      out.push_back(kHex[c >> 4U]);
      out.push_back(kHex[c & 0xfU]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back(quote);
  return out;
}

/// Python's float == int: exact, never through a lossy conversion.
bool float_equals_int(double d, std::int64_t i) noexcept {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (!std::isfinite(d) || d != std::trunc(d) || d < -kTwo63 || d >= kTwo63) return false;
  return static_cast<std::int64_t>(d) == i;
}

std::optional<std::int64_t> as_integer(const Item& item) noexcept {
  if (const auto* i = std::get_if<std::int64_t>(&item)) return *i;
  if (const auto* b = std::get_if<bool>(&item)) return *b ? 1 : 0;
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ShareableList

ShareableList::ShareableList(std::initializer_list<Item> items)
    : ShareableList(create_list(std::vector<Item>(items), nullptr, {})) {}

ShareableList::ShareableList(const std::vector<Item>& items, SharedMemoryOptions options)
    : ShareableList(create_list(items, nullptr, options)) {}

ShareableList ShareableList::create(const std::vector<Item>& items, std::string_view name,
                                    SharedMemoryOptions options) {
  return create_list(items, &name, options);
}

ShareableList ShareableList::create_list(const std::vector<Item>& items, const std::string_view* name,
                                         SharedMemoryOptions options) {
  // Everything that can fail on the items fails before the segment exists.
  auto offsets = std::make_shared<std::vector<std::uint64_t>>();
  offsets->reserve(items.size() + 1);
  offsets->push_back(0);
  std::vector<Encoded> encoded;
  encoded.reserve(items.size());
  for (const auto& item : items) {
    const std::size_t slot = creation_slot(item);
    encoded.push_back(encode(item, slot));
    offsets->push_back(offsets->back() + slot);  // no overflow: items.size() slots below 10 MB each
  }
  const Layout layout{*offsets};

  SharedMemory shm = name != nullptr ? SharedMemory::create(layout.total(), *name, options)
                                     : SharedMemory::create(layout.total(), options);
  try {
    auto view = shm.buf();
    std::byte* base = view.data();
    write_word(base, items.size());
    for (std::size_t i = 0; i < offsets->size(); ++i) write_word(base + kWord * (i + 1), (*offsets)[i]);
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      std::memcpy(base + layout.slot_offset(i), encoded[i].data.data(), encoded[i].data.size());
    }
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      std::array<char, kFormatSize> format{};
      std::memcpy(format.data(), encoded[i].format.data(), encoded[i].format.size());
      std::memcpy(base + layout.format_offset(i), format.data(), kFormatSize);
    }
    for (std::size_t i = 0; i < encoded.size(); ++i)
      std::memcpy(base + layout.code_offset(i), &encoded[i].code, 1);
  } catch (...) {
    // CPython leaks the segment when construction fails part-way; this does not.
    try {
      shm.close();
      shm.unlink();
    } catch (const Error&) {
    }
    throw;
  }
  return ShareableList(std::move(shm), std::move(offsets));
}

ShareableList ShareableList::attach(std::string_view name) {
  SharedMemory shm = SharedMemory::attach(name);
  const auto view = shm.buf();
  const std::byte* base = view.data();
  const std::size_t total = view.size();
  auto refuse = [&](const std::string& why) -> void {
    throw DecodeError("SharedMemory '" + shm.name() + "' does not hold a ShareableList: " + why);
  };
  if (total < 2 * kWord) refuse("it has " + std::to_string(total) + " bytes, fewer than an empty list's 16");
  const std::uint64_t count = read_word(base);
  // (count + 2) words must fit: the count, the offsets.
  if (count > total / kWord - 2)
    refuse("its item count " + std::to_string(static_cast<std::int64_t>(count)) + " does not fit");
  auto offsets = std::make_shared<std::vector<std::uint64_t>>(count + 1);
  for (std::size_t i = 0; i <= count; ++i) (*offsets)[i] = read_word(base + kWord * (i + 1));
  if ((*offsets)[0] != 0) {
    refuse("its first item offset is not 0 (CPython 3.8 wrote item sizes there: its lists are not readable)");
  }
  for (std::size_t i = 0; i < count; ++i) {
    if ((*offsets)[i + 1] < (*offsets)[i] || (*offsets)[i + 1] - (*offsets)[i] < kWord) {
      refuse("item " + std::to_string(i) + " has a slot smaller than 8 bytes");
    }
  }
  const std::size_t data_start = (count + 2) * kWord;
  // No overflow: every term is checked against total before it is added.
  if ((*offsets)[count] > total - data_start ||
      count * (kFormatSize + 1) > total - data_start - (*offsets)[count]) {
    refuse("its items and formats need more than its " + std::to_string(total) + " bytes");
  }
  return ShareableList(std::move(shm), std::move(offsets));
}

ShareableList::Item ShareableList::get_at(std::size_t position, const char* range_error) const {
  if (position >= size()) throw IndexError(range_error);
  const auto view = shm_.buf();
  return decode(view.data(), Layout{*offsets_}, position, shm_.name());
}

void ShareableList::set_at(std::size_t position, const char* range_error, const Item& value) {
  if (position >= size()) throw IndexError(range_error);
  const auto view = shm_.buf();
  const Layout layout{*offsets_};
  store(view.data(), layout, position, encode(value, layout.slot_size(position)));
}

std::size_t ShareableList::count(const Item& value) const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < size(); ++i) n += equal(value, get_at(i, "index out of range")) ? 1 : 0;
  return n;
}

std::size_t ShareableList::index(const Item& value) const {
  for (std::size_t i = 0; i < size(); ++i) {
    if (equal(value, get_at(i, "index out of range"))) return i;
  }
  throw ValueError(item_repr(value) + " not in this container");
}

std::string ShareableList::format() const {
  const auto view = shm_.buf();
  const Layout layout{*offsets_};
  std::string out;
  for (std::size_t i = 0; i < size(); ++i) {
    std::array<char, kFormatSize> raw{};
    copy_once(raw.data(), view.data() + layout.format_offset(i), kFormatSize);
    out += stripped_format(raw);
  }
  return out;
}

std::vector<ShareableList::Item> ShareableList::to_vector() const {
  std::vector<Item> items;
  items.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) items.push_back(get_at(i, "index out of range"));
  return items;
}

std::string ShareableList::repr() const {
  std::string out = "ShareableList([";
  for (std::size_t i = 0; i < size(); ++i) {
    if (i != 0) out += ", ";
    out += item_repr(get_at(i, "index out of range"));
  }
  return out + "], name='" + shm_.name() + "')";
}

bool ShareableList::equal(const Item& a, const Item& b) noexcept {
  const auto ia = as_integer(a);
  const auto ib = as_integer(b);
  const auto* da = std::get_if<double>(&a);
  const auto* db = std::get_if<double>(&b);
  if (ia && ib) return *ia == *ib;
  if (da && db) return *da == *db;
  if (da && ib) return float_equals_int(*da, *ib);
  if (ia && db) return float_equals_int(*db, *ia);
  return a.index() == b.index() && a == b;
}

std::string ShareableList::item_repr(const Item& item) {
  switch (item.index()) {
    case 0:
      return std::to_string(std::get<std::int64_t>(item));
    case 1:
      return float_repr(std::get<double>(item));
    case 2:
      return std::get<bool>(item) ? "True" : "False";
    case 3:
    case 4:
      return quoted_repr(bytes_of(item), item.index() == 4);
    default:
      return "None";
  }
}

}  // namespace mproc
